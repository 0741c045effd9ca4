//! `UserService`.

use tonic::{Request, Response, Status};

use super::{convert, pb, request_key};
use crate::{
    app::{
        App,
        members::{AcceptorRequest, AccessCheck, TargetRef},
        users::UserLookup,
    },
    domain::{Error, membership::MembershipTarget, password::Password},
};

pub struct UserApi {
    app: App,
}

impl UserApi {
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

#[tonic::async_trait]
impl pb::user_service_server::UserService for UserApi {
    async fn create_user(
        &self,
        request: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::CreateUserResponse>, Status> {
        let request = request.into_inner();
        let key = request_key(
            &self.app,
            "CreateUser",
            &request,
            &request.request_id,
            |r| r.request_id.clear(),
        )?;
        let fields = convert::user_fields(request.user.as_ref());
        let user = self
            .app
            .create_user(&fields, &Password::new(request.password.clone()), key)
            .await?;
        Ok(Response::new(pb::CreateUserResponse {
            user: Some((&user).into()),
        }))
    }

    async fn get_user(
        &self,
        request: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::GetUserResponse>, Status> {
        use pb::get_user_request::Lookup;
        let request = request.into_inner();
        let lookup = match &request.lookup {
            Some(Lookup::UserId(id)) => UserLookup::Id(id),
            Some(Lookup::Email(email)) => UserLookup::Email(email),
            None => return Err(Error::invalid("lookup", "set one of user_id or email").into()),
        };
        let user = self.app.get_user(lookup).await?;
        Ok(Response::new(pb::GetUserResponse {
            user: Some((&user).into()),
        }))
    }

    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        let r = request.into_inner();
        let (users, next_page_token) = self
            .app
            .list_users(
                &r.query,
                &r.customer_id,
                &r.account_id,
                r.page_size,
                &r.page_token,
            )
            .await?;
        Ok(Response::new(pb::ListUsersResponse {
            users: users.iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn update_user(
        &self,
        request: Request<pb::UpdateUserRequest>,
    ) -> Result<Response<pb::UpdateUserResponse>, Status> {
        let r = request.into_inner();
        let mask = r.update_mask.map(|m| m.paths).unwrap_or_default();
        let fields = convert::user_fields(r.user.as_ref());
        let user = self
            .app
            .update_user(&r.user_id, &r.etag, &mask, &fields)
            .await?;
        Ok(Response::new(pb::UpdateUserResponse {
            user: Some((&user).into()),
        }))
    }

    async fn delete_user(
        &self,
        request: Request<pb::DeleteUserRequest>,
    ) -> Result<Response<pb::DeleteUserResponse>, Status> {
        let r = request.into_inner();
        self.app.delete_user(&r.user_id, &r.etag).await?;
        Ok(Response::new(pb::DeleteUserResponse {}))
    }

    async fn set_password(
        &self,
        request: Request<pb::SetPasswordRequest>,
    ) -> Result<Response<pb::SetPasswordResponse>, Status> {
        let r = request.into_inner();
        self.app
            .set_password(&r.user_id, &Password::new(r.password))
            .await?;
        Ok(Response::new(pb::SetPasswordResponse {}))
    }

    async fn change_password(
        &self,
        request: Request<pb::ChangePasswordRequest>,
    ) -> Result<Response<pb::ChangePasswordResponse>, Status> {
        let r = request.into_inner();
        self.app
            .change_password(
                &r.user_id,
                &Password::new(r.current_password),
                &Password::new(r.new_password),
            )
            .await?;
        Ok(Response::new(pb::ChangePasswordResponse {}))
    }

    async fn authenticate_user(
        &self,
        request: Request<pb::AuthenticateUserRequest>,
    ) -> Result<Response<pb::AuthenticateUserResponse>, Status> {
        let r = request.into_inner();
        let (user, memberships) = self
            .app
            .authenticate(&r.email, &Password::new(r.password), &r.totp_code)
            .await?;
        Ok(Response::new(pb::AuthenticateUserResponse {
            user: Some((&user).into()),
            memberships: memberships.iter().map(Into::into).collect(),
        }))
    }

    async fn list_user_memberships(
        &self,
        request: Request<pb::ListUserMembershipsRequest>,
    ) -> Result<Response<pb::ListUserMembershipsResponse>, Status> {
        let memberships = self
            .app
            .list_user_memberships(&request.into_inner().user_id)
            .await?;
        Ok(Response::new(pb::ListUserMembershipsResponse {
            memberships: memberships.iter().map(Into::into).collect(),
        }))
    }

    async fn accept_invitation(
        &self,
        request: Request<pb::AcceptInvitationRequest>,
    ) -> Result<Response<pb::AcceptInvitationResponse>, Status> {
        use pb::accept_invitation_request::Acceptor;
        let r = request.into_inner();
        let key = request_key(&self.app, "AcceptInvitation", &r, &r.request_id, |r| {
            r.request_id.clear()
        })?;
        let acceptor = r.acceptor.as_ref().map(|acceptor| match acceptor {
            Acceptor::UserId(id) => AcceptorRequest::UserId(id),
            Acceptor::NewUser(new) => AcceptorRequest::NewUser {
                first_name: &new.first_name,
                last_name: &new.last_name,
                password: Password::new(new.password.clone()),
            },
        });
        let (membership, user) = self.app.accept_invitation(&r.token, acceptor, key).await?;
        Ok(Response::new(pb::AcceptInvitationResponse {
            membership: Some((&membership).into()),
            user: Some((&user).into()),
        }))
    }

    async fn check_access(
        &self,
        request: Request<pb::CheckAccessRequest>,
    ) -> Result<Response<pb::CheckAccessResponse>, Status> {
        use pb::check_access_request::Target;
        let r = request.into_inner();
        let target = r.target.as_ref().map(|target| match target {
            Target::CustomerId(id) => TargetRef::Customer(id),
            Target::AccountId(id) => TargetRef::Account(id),
        });
        let decision = self
            .app
            .check_access(&r.user_id, target, &r.permission)
            .await?;
        Ok(Response::new(pb::CheckAccessResponse {
            allowed: decision.allowed,
            reason: decision.reason.to_string(),
        }))
    }

    async fn batch_check_access(
        &self,
        request: Request<pb::BatchCheckAccessRequest>,
    ) -> Result<Response<pb::BatchCheckAccessResponse>, Status> {
        use pb::access_check::Target;
        let r = request.into_inner();
        let checks: Vec<AccessCheck<'_>> = r
            .checks
            .iter()
            .map(|check| AccessCheck {
                target: check.target.as_ref().map(|target| match target {
                    Target::CustomerId(id) => TargetRef::Customer(id),
                    Target::AccountId(id) => TargetRef::Account(id),
                }),
                permission: &check.permission,
            })
            .collect();
        let decisions = self.app.batch_check_access(&r.user_id, &checks).await?;
        Ok(Response::new(pb::BatchCheckAccessResponse {
            results: decisions
                .into_iter()
                .map(|decision| pb::CheckAccessResponse {
                    allowed: decision.allowed,
                    reason: decision.reason.to_string(),
                })
                .collect(),
        }))
    }

    async fn list_accessible_resources(
        &self,
        request: Request<pb::ListAccessibleResourcesRequest>,
    ) -> Result<Response<pb::ListAccessibleResourcesResponse>, Status> {
        use pb::accessible_resource::Resource;
        let r = request.into_inner();
        let (targets, next_page_token) = self
            .app
            .list_accessible_resources(
                &r.user_id,
                &r.permission,
                convert::resource_kind(r.resource_type),
                r.page_size,
                &r.page_token,
            )
            .await?;
        Ok(Response::new(pb::ListAccessibleResourcesResponse {
            resources: targets
                .into_iter()
                .map(|target| pb::AccessibleResource {
                    resource: Some(match target {
                        MembershipTarget::Customer(id) => Resource::CustomerId(id.to_string()),
                        MembershipTarget::Account(id) => Resource::AccountId(id.to_string()),
                    }),
                })
                .collect(),
            next_page_token,
        }))
    }

    async fn request_password_reset(
        &self,
        request: Request<pb::RequestPasswordResetRequest>,
    ) -> Result<Response<pb::RequestPasswordResetResponse>, Status> {
        let issued = self
            .app
            .request_password_reset(&request.into_inner().email)
            .await?;
        Ok(Response::new(pb::RequestPasswordResetResponse {
            token: issued
                .token
                .map(|token| token.secret().to_string())
                .unwrap_or_default(),
            expire_time: Some(convert::timestamp(issued.expire_time)),
        }))
    }

    async fn reset_password(
        &self,
        request: Request<pb::ResetPasswordRequest>,
    ) -> Result<Response<pb::ResetPasswordResponse>, Status> {
        let request = request.into_inner();
        self.app
            .reset_password(&request.token, &Password::new(request.new_password))
            .await?;
        Ok(Response::new(pb::ResetPasswordResponse {}))
    }

    async fn request_email_verification(
        &self,
        request: Request<pb::RequestEmailVerificationRequest>,
    ) -> Result<Response<pb::RequestEmailVerificationResponse>, Status> {
        let issued = self
            .app
            .request_email_verification(&request.into_inner().user_id)
            .await?;
        Ok(Response::new(pb::RequestEmailVerificationResponse {
            token: issued
                .token
                .map(|token| token.secret().to_string())
                .unwrap_or_default(),
            expire_time: Some(convert::timestamp(issued.expire_time)),
        }))
    }

    async fn verify_email(
        &self,
        request: Request<pb::VerifyEmailRequest>,
    ) -> Result<Response<pb::VerifyEmailResponse>, Status> {
        let user = self.app.verify_email(&request.into_inner().token).await?;
        Ok(Response::new(pb::VerifyEmailResponse {
            user: Some((&user).into()),
        }))
    }

    async fn enroll_totp(
        &self,
        request: Request<pb::EnrollTotpRequest>,
    ) -> Result<Response<pb::EnrollTotpResponse>, Status> {
        let (secret, otpauth_uri) = self.app.enroll_totp(&request.into_inner().user_id).await?;
        Ok(Response::new(pb::EnrollTotpResponse {
            secret,
            otpauth_uri,
        }))
    }

    async fn confirm_totp(
        &self,
        request: Request<pb::ConfirmTotpRequest>,
    ) -> Result<Response<pb::ConfirmTotpResponse>, Status> {
        let request = request.into_inner();
        let recovery_codes = self
            .app
            .confirm_totp(&request.user_id, &request.code)
            .await?;
        Ok(Response::new(pb::ConfirmTotpResponse { recovery_codes }))
    }

    async fn disable_totp(
        &self,
        request: Request<pb::DisableTotpRequest>,
    ) -> Result<Response<pb::DisableTotpResponse>, Status> {
        self.app.disable_totp(&request.into_inner().user_id).await?;
        Ok(Response::new(pb::DisableTotpResponse {}))
    }
}
