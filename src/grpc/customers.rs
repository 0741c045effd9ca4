//! `CustomerService`: customers, their members and their invitations.

use tonic::{Request, Response, Status};

use super::{convert, members::may_transfer, pb, request_key};
use crate::{
    app::{
        App,
        customers::CustomerLookup,
        members::{MemberLookup, TargetRef},
    },
    domain::password::Password,
};

pub struct CustomerApi {
    app: App,
}

impl CustomerApi {
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

#[tonic::async_trait]
impl pb::customer_service_server::CustomerService for CustomerApi {
    async fn create_customer(
        &self,
        request: Request<pb::CreateCustomerRequest>,
    ) -> Result<Response<pb::CreateCustomerResponse>, Status> {
        let request = request.into_inner();
        let key = request_key(
            &self.app,
            "CreateCustomer",
            &request,
            &request.request_id,
            |r| r.request_id.clear(),
        )?;
        let fields = convert::customer_fields(request.customer.as_ref());
        let customer = self
            .app
            .create_customer(
                &fields,
                &Password::new(request.password.clone()),
                &request.owner_user_id,
                key,
            )
            .await?;
        Ok(Response::new(pb::CreateCustomerResponse {
            customer: Some((&customer).into()),
        }))
    }

    async fn get_customer(
        &self,
        request: Request<pb::GetCustomerRequest>,
    ) -> Result<Response<pb::GetCustomerResponse>, Status> {
        use pb::get_customer_request::Lookup;
        let request = request.into_inner();
        let lookup = request.lookup.as_ref().map(|lookup| match lookup {
            Lookup::CustomerId(id) => CustomerLookup::Id(id),
            Lookup::Email(email) => CustomerLookup::Email(email),
            Lookup::ExternalId(external_id) => CustomerLookup::ExternalId(external_id),
            Lookup::CustomerKey(customer_key) => CustomerLookup::CustomerKey(customer_key),
            Lookup::Subdomain(subdomain) => CustomerLookup::Subdomain(subdomain),
            Lookup::Hostname(hostname) => CustomerLookup::Hostname(hostname),
        });
        let customer = self.app.get_customer(lookup).await?;
        Ok(Response::new(pb::GetCustomerResponse {
            customer: Some((&customer).into()),
        }))
    }

    async fn list_customers(
        &self,
        request: Request<pb::ListCustomersRequest>,
    ) -> Result<Response<pb::ListCustomersResponse>, Status> {
        let r = request.into_inner();
        let (customers, next_page_token) = self
            .app
            .list_customers(
                convert::customer_filters(&r),
                &r.country,
                &r.query,
                r.page_size,
                &r.page_token,
            )
            .await?;
        Ok(Response::new(pb::ListCustomersResponse {
            customers: customers.iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn update_customer(
        &self,
        request: Request<pb::UpdateCustomerRequest>,
    ) -> Result<Response<pb::UpdateCustomerResponse>, Status> {
        let r = request.into_inner();
        let mask = r.update_mask.map(|m| m.paths).unwrap_or_default();
        let fields = convert::customer_fields(r.customer.as_ref());
        let customer = self
            .app
            .update_customer(&r.customer_id, &r.etag, &mask, &fields)
            .await?;
        Ok(Response::new(pb::UpdateCustomerResponse {
            customer: Some((&customer).into()),
        }))
    }

    async fn delete_customer(
        &self,
        request: Request<pb::DeleteCustomerRequest>,
    ) -> Result<Response<pb::DeleteCustomerResponse>, Status> {
        let r = request.into_inner();
        self.app.delete_customer(&r.customer_id, &r.etag).await?;
        Ok(Response::new(pb::DeleteCustomerResponse {}))
    }

    async fn add_customer_user(
        &self,
        request: Request<pb::AddCustomerUserRequest>,
    ) -> Result<Response<pb::AddCustomerUserResponse>, Status> {
        use pb::add_customer_user_request::Member;
        let transfer = may_transfer(&request);
        let r = request.into_inner();
        let member = r.member.as_ref().map(|member| match member {
            Member::UserId(id) => MemberLookup::UserId(id),
            Member::Email(email) => MemberLookup::Email(email),
        });
        let membership = self
            .app
            .add_member(
                TargetRef::Customer(&r.customer_id),
                member,
                &r.permissions,
                &r.roles,
                r.owner,
                transfer,
            )
            .await?;
        Ok(Response::new(pb::AddCustomerUserResponse {
            membership: Some((&membership).into()),
        }))
    }

    async fn update_customer_user(
        &self,
        request: Request<pb::UpdateCustomerUserRequest>,
    ) -> Result<Response<pb::UpdateCustomerUserResponse>, Status> {
        let transfer = may_transfer(&request);
        let r = request.into_inner();
        let membership = self
            .app
            .update_member(
                TargetRef::Customer(&r.customer_id),
                &r.user_id,
                &r.permissions,
                &r.roles,
                r.owner,
                &r.etag,
                transfer,
            )
            .await?;
        Ok(Response::new(pb::UpdateCustomerUserResponse {
            membership: Some((&membership).into()),
        }))
    }

    async fn remove_customer_user(
        &self,
        request: Request<pb::RemoveCustomerUserRequest>,
    ) -> Result<Response<pb::RemoveCustomerUserResponse>, Status> {
        let r = request.into_inner();
        self.app
            .remove_member(TargetRef::Customer(&r.customer_id), &r.user_id, &r.etag)
            .await?;
        Ok(Response::new(pb::RemoveCustomerUserResponse {}))
    }

    async fn list_customer_users(
        &self,
        request: Request<pb::ListCustomerUsersRequest>,
    ) -> Result<Response<pb::ListCustomerUsersResponse>, Status> {
        let r = request.into_inner();
        let (memberships, next_page_token) = self
            .app
            .list_members(
                TargetRef::Customer(&r.customer_id),
                r.page_size,
                &r.page_token,
            )
            .await?;
        Ok(Response::new(pb::ListCustomerUsersResponse {
            memberships: memberships.iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn create_customer_invitation(
        &self,
        request: Request<pb::CreateCustomerInvitationRequest>,
    ) -> Result<Response<pb::CreateCustomerInvitationResponse>, Status> {
        let r = request.into_inner();
        let key = request_key(
            &self.app,
            "CreateCustomerInvitation",
            &r,
            &r.request_id,
            |r| r.request_id.clear(),
        )?;
        let (invitation, token) = self
            .app
            .create_invitation(
                TargetRef::Customer(&r.customer_id),
                &r.email,
                &r.permissions,
                &r.roles,
                &r.inviter_user_id,
                key,
            )
            .await?;
        Ok(Response::new(pb::CreateCustomerInvitationResponse {
            invitation: Some((&invitation).into()),
            token,
        }))
    }

    async fn list_customer_invitations(
        &self,
        request: Request<pb::ListCustomerInvitationsRequest>,
    ) -> Result<Response<pb::ListCustomerInvitationsResponse>, Status> {
        let r = request.into_inner();
        let (invitations, next_page_token) = self
            .app
            .list_invitations(
                TargetRef::Customer(&r.customer_id),
                convert::invitation_filter(r.status),
                r.page_size,
                &r.page_token,
            )
            .await?;
        Ok(Response::new(pb::ListCustomerInvitationsResponse {
            invitations: invitations.iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn revoke_customer_invitation(
        &self,
        request: Request<pb::RevokeCustomerInvitationRequest>,
    ) -> Result<Response<pb::RevokeCustomerInvitationResponse>, Status> {
        let r = request.into_inner();
        let invitation = self
            .app
            .revoke_invitation(TargetRef::Customer(&r.customer_id), &r.invitation_id)
            .await?;
        Ok(Response::new(pb::RevokeCustomerInvitationResponse {
            invitation: Some((&invitation).into()),
        }))
    }

    async fn resend_customer_invitation(
        &self,
        request: Request<pb::ResendCustomerInvitationRequest>,
    ) -> Result<Response<pb::ResendCustomerInvitationResponse>, Status> {
        let r = request.into_inner();
        let (invitation, token) = self
            .app
            .resend_invitation(TargetRef::Customer(&r.customer_id), &r.invitation_id)
            .await?;
        Ok(Response::new(pb::ResendCustomerInvitationResponse {
            invitation: Some((&invitation).into()),
            token,
        }))
    }

    async fn create_customer_role(
        &self,
        request: Request<pb::CreateCustomerRoleRequest>,
    ) -> Result<Response<pb::CreateCustomerRoleResponse>, Status> {
        let request = request.into_inner();
        let key = request_key(
            &self.app,
            "CreateCustomerRole",
            &request,
            &request.request_id,
            |r| r.request_id.clear(),
        )?;
        let role = self
            .app
            .create_role(
                &request.customer_id,
                convert::role_fields(request.role.as_ref()),
                key,
            )
            .await?;
        Ok(Response::new(pb::CreateCustomerRoleResponse {
            role: Some((&role).into()),
        }))
    }

    async fn get_customer_role(
        &self,
        request: Request<pb::GetCustomerRoleRequest>,
    ) -> Result<Response<pb::GetCustomerRoleResponse>, Status> {
        let role = self.app.get_role(&request.into_inner().role_id).await?;
        Ok(Response::new(pb::GetCustomerRoleResponse {
            role: Some((&role).into()),
        }))
    }

    async fn list_customer_roles(
        &self,
        request: Request<pb::ListCustomerRolesRequest>,
    ) -> Result<Response<pb::ListCustomerRolesResponse>, Status> {
        let r = request.into_inner();
        let (roles, next_page_token) = self
            .app
            .list_roles(&r.customer_id, r.page_size, &r.page_token)
            .await?;
        Ok(Response::new(pb::ListCustomerRolesResponse {
            roles: roles.iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn update_customer_role(
        &self,
        request: Request<pb::UpdateCustomerRoleRequest>,
    ) -> Result<Response<pb::UpdateCustomerRoleResponse>, Status> {
        let r = request.into_inner();
        let mask = r.update_mask.map(|m| m.paths).unwrap_or_default();
        let role = self
            .app
            .update_role(
                &r.role_id,
                convert::role_fields(r.role.as_ref()),
                &mask,
                &r.etag,
            )
            .await?;
        Ok(Response::new(pb::UpdateCustomerRoleResponse {
            role: Some((&role).into()),
        }))
    }

    async fn delete_customer_role(
        &self,
        request: Request<pb::DeleteCustomerRoleRequest>,
    ) -> Result<Response<pb::DeleteCustomerRoleResponse>, Status> {
        let r = request.into_inner();
        self.app.delete_role(&r.role_id, &r.etag).await?;
        Ok(Response::new(pb::DeleteCustomerRoleResponse {}))
    }
}
