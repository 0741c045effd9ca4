//! `AccountService`: accounts, their limits, members and invitations.

use tonic::{Request, Response, Status};

use super::{convert, members::may_transfer, pb, request_key};
use crate::{
    app::{
        App,
        accounts::OwnerRequest,
        members::{MemberLookup, TargetRef},
    },
    domain::password::Password,
};

pub struct AccountApi {
    app: App,
}

impl AccountApi {
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

#[tonic::async_trait]
impl pb::account_service_server::AccountService for AccountApi {
    async fn create_account(
        &self,
        request: Request<pb::CreateAccountRequest>,
    ) -> Result<Response<pb::CreateAccountResponse>, Status> {
        use pb::create_account_request::Owner;
        let request = request.into_inner();
        let key = request_key(
            &self.app,
            "CreateAccount",
            &request,
            &request.request_id,
            |r| r.request_id.clear(),
        )?;
        let fields = convert::account_fields(request.account.as_ref());
        let owner = match &request.owner {
            None => OwnerRequest::Default,
            Some(Owner::OwnerUserId(id)) => OwnerRequest::UserId(id),
            Some(Owner::NewOwner(new)) => OwnerRequest::NewOwner {
                email: &new.email,
                first_name: &new.first_name,
                last_name: &new.last_name,
                password: Password::new(new.password.clone()),
            },
        };
        let account = self
            .app
            .create_account(&request.customer_id, &fields, owner, key)
            .await?;
        Ok(Response::new(pb::CreateAccountResponse {
            account: Some((&account).into()),
        }))
    }

    async fn get_account(
        &self,
        request: Request<pb::GetAccountRequest>,
    ) -> Result<Response<pb::GetAccountResponse>, Status> {
        let account = self
            .app
            .get_account(&request.into_inner().account_id)
            .await?;
        Ok(Response::new(pb::GetAccountResponse {
            account: Some((&account).into()),
        }))
    }

    async fn list_accounts(
        &self,
        request: Request<pb::ListAccountsRequest>,
    ) -> Result<Response<pb::ListAccountsResponse>, Status> {
        let r = request.into_inner();
        let (accounts, next_page_token) = self
            .app
            .list_accounts(
                &r.customer_id,
                convert::account_filters(&r),
                r.page_size,
                &r.page_token,
            )
            .await?;
        Ok(Response::new(pb::ListAccountsResponse {
            accounts: accounts.iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn update_account(
        &self,
        request: Request<pb::UpdateAccountRequest>,
    ) -> Result<Response<pb::UpdateAccountResponse>, Status> {
        let r = request.into_inner();
        let mask = r.update_mask.map(|m| m.paths).unwrap_or_default();
        let fields = convert::account_fields(r.account.as_ref());
        let account = self
            .app
            .update_account(&r.account_id, &r.etag, &mask, &fields)
            .await?;
        Ok(Response::new(pb::UpdateAccountResponse {
            account: Some((&account).into()),
        }))
    }

    async fn delete_account(
        &self,
        request: Request<pb::DeleteAccountRequest>,
    ) -> Result<Response<pb::DeleteAccountResponse>, Status> {
        let r = request.into_inner();
        self.app.delete_account(&r.account_id, &r.etag).await?;
        Ok(Response::new(pb::DeleteAccountResponse {}))
    }

    async fn get_effective_limits(
        &self,
        request: Request<pb::GetEffectiveLimitsRequest>,
    ) -> Result<Response<pb::GetEffectiveLimitsResponse>, Status> {
        let limits = self
            .app
            .effective_limits(&request.into_inner().account_id)
            .await?;
        Ok(Response::new(pb::GetEffectiveLimitsResponse {
            limits: limits.iter().map(Into::into).collect(),
        }))
    }

    async fn add_account_user(
        &self,
        request: Request<pb::AddAccountUserRequest>,
    ) -> Result<Response<pb::AddAccountUserResponse>, Status> {
        use pb::add_account_user_request::Member;
        let transfer = may_transfer(&request);
        let r = request.into_inner();
        let member = r.member.as_ref().map(|member| match member {
            Member::UserId(id) => MemberLookup::UserId(id),
            Member::Email(email) => MemberLookup::Email(email),
        });
        let membership = self
            .app
            .add_member(
                TargetRef::Account(&r.account_id),
                member,
                &r.permissions,
                &r.roles,
                r.owner,
                transfer,
            )
            .await?;
        Ok(Response::new(pb::AddAccountUserResponse {
            membership: Some((&membership).into()),
        }))
    }

    async fn update_account_user(
        &self,
        request: Request<pb::UpdateAccountUserRequest>,
    ) -> Result<Response<pb::UpdateAccountUserResponse>, Status> {
        let transfer = may_transfer(&request);
        let r = request.into_inner();
        let membership = self
            .app
            .update_member(
                TargetRef::Account(&r.account_id),
                &r.user_id,
                &r.permissions,
                &r.roles,
                r.owner,
                &r.etag,
                transfer,
            )
            .await?;
        Ok(Response::new(pb::UpdateAccountUserResponse {
            membership: Some((&membership).into()),
        }))
    }

    async fn remove_account_user(
        &self,
        request: Request<pb::RemoveAccountUserRequest>,
    ) -> Result<Response<pb::RemoveAccountUserResponse>, Status> {
        let r = request.into_inner();
        self.app
            .remove_member(TargetRef::Account(&r.account_id), &r.user_id, &r.etag)
            .await?;
        Ok(Response::new(pb::RemoveAccountUserResponse {}))
    }

    async fn list_account_users(
        &self,
        request: Request<pb::ListAccountUsersRequest>,
    ) -> Result<Response<pb::ListAccountUsersResponse>, Status> {
        let r = request.into_inner();
        let (memberships, next_page_token) = self
            .app
            .list_members(
                TargetRef::Account(&r.account_id),
                r.page_size,
                &r.page_token,
            )
            .await?;
        Ok(Response::new(pb::ListAccountUsersResponse {
            memberships: memberships.iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn create_account_invitation(
        &self,
        request: Request<pb::CreateAccountInvitationRequest>,
    ) -> Result<Response<pb::CreateAccountInvitationResponse>, Status> {
        let r = request.into_inner();
        let key = request_key(
            &self.app,
            "CreateAccountInvitation",
            &r,
            &r.request_id,
            |r| r.request_id.clear(),
        )?;
        let (invitation, token) = self
            .app
            .create_invitation(
                TargetRef::Account(&r.account_id),
                &r.email,
                &r.permissions,
                &r.roles,
                &r.inviter_user_id,
                key,
            )
            .await?;
        Ok(Response::new(pb::CreateAccountInvitationResponse {
            invitation: Some((&invitation).into()),
            token,
        }))
    }

    async fn list_account_invitations(
        &self,
        request: Request<pb::ListAccountInvitationsRequest>,
    ) -> Result<Response<pb::ListAccountInvitationsResponse>, Status> {
        let r = request.into_inner();
        let (invitations, next_page_token) = self
            .app
            .list_invitations(
                TargetRef::Account(&r.account_id),
                convert::invitation_filter(r.status),
                r.page_size,
                &r.page_token,
            )
            .await?;
        Ok(Response::new(pb::ListAccountInvitationsResponse {
            invitations: invitations.iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn revoke_account_invitation(
        &self,
        request: Request<pb::RevokeAccountInvitationRequest>,
    ) -> Result<Response<pb::RevokeAccountInvitationResponse>, Status> {
        let r = request.into_inner();
        let invitation = self
            .app
            .revoke_invitation(TargetRef::Account(&r.account_id), &r.invitation_id)
            .await?;
        Ok(Response::new(pb::RevokeAccountInvitationResponse {
            invitation: Some((&invitation).into()),
        }))
    }

    async fn resend_account_invitation(
        &self,
        request: Request<pb::ResendAccountInvitationRequest>,
    ) -> Result<Response<pb::ResendAccountInvitationResponse>, Status> {
        let r = request.into_inner();
        let (invitation, token) = self
            .app
            .resend_invitation(TargetRef::Account(&r.account_id), &r.invitation_id)
            .await?;
        Ok(Response::new(pb::ResendAccountInvitationResponse {
            invitation: Some((&invitation).into()),
            token,
        }))
    }
}
