//! `UserService`.

use tonic::{Request, Response, Status};

use super::{convert, pb, request_key};
use crate::{
    app::{
        App,
        members::{AcceptorRequest, TargetRef},
        users::UserLookup,
    },
    domain::{Error, password::Password},
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
            .authenticate(&r.email, &Password::new(r.password))
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
}
