//! `SessionService`.

use tonic::{Request, Response, Status};

use super::{
    convert::{sessions::session_at, timestamp},
    pb,
};
use crate::{
    app::{App, sessions::IssuedSession},
    domain::password::Password,
    signing::Jwks,
};

pub struct SessionApi {
    app: App,
}

impl SessionApi {
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

/// The parts of a sign-in's or a refresh's answer.
fn issued_parts(
    issued: IssuedSession,
) -> (
    Option<pb::Session>,
    String,
    String,
    Option<prost_types::Timestamp>,
) {
    (
        Some(session_at(&issued.session, chrono::Utc::now())),
        issued.access_token,
        issued.refresh_token.secret().to_string(),
        Some(timestamp(issued.access_token_expire_time)),
    )
}

impl From<&Jwks> for pb::GetJwksResponse {
    fn from(jwks: &Jwks) -> Self {
        pb::GetJwksResponse {
            keys: jwks
                .keys
                .iter()
                .map(|key| pb::Jwk {
                    kty: key.kty.clone(),
                    crv: key.crv.clone(),
                    kid: key.kid.clone(),
                    x: key.x.clone(),
                    alg: key.alg.clone(),
                    r#use: key.use_.clone(),
                })
                .collect(),
        }
    }
}

#[tonic::async_trait]
impl pb::session_service_server::SessionService for SessionApi {
    async fn create_session(
        &self,
        request: Request<pb::CreateSessionRequest>,
    ) -> Result<Response<pb::CreateSessionResponse>, Status> {
        let request = request.into_inner();
        let issued = self
            .app
            .create_session(
                &request.email,
                &Password::new(request.password),
                &request.customer_id,
                &request.totp_code,
            )
            .await?;
        let (session, access_token, refresh_token, access_token_expire_time) = issued_parts(issued);
        Ok(Response::new(pb::CreateSessionResponse {
            session,
            access_token,
            refresh_token,
            access_token_expire_time,
        }))
    }

    async fn refresh_session(
        &self,
        request: Request<pb::RefreshSessionRequest>,
    ) -> Result<Response<pb::RefreshSessionResponse>, Status> {
        let request = request.into_inner();
        let issued = self
            .app
            .refresh_session(&request.refresh_token, &request.customer_id)
            .await?;
        let (session, access_token, refresh_token, access_token_expire_time) = issued_parts(issued);
        Ok(Response::new(pb::RefreshSessionResponse {
            session,
            access_token,
            refresh_token,
            access_token_expire_time,
        }))
    }

    async fn revoke_session(
        &self,
        request: Request<pb::RevokeSessionRequest>,
    ) -> Result<Response<pb::RevokeSessionResponse>, Status> {
        self.app
            .revoke_session(&request.into_inner().session_id)
            .await?;
        Ok(Response::new(pb::RevokeSessionResponse {}))
    }

    async fn list_sessions(
        &self,
        request: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        let request = request.into_inner();
        let (sessions, next_page_token) = self
            .app
            .list_sessions(&request.user_id, request.page_size, &request.page_token)
            .await?;
        let now = chrono::Utc::now();
        Ok(Response::new(pb::ListSessionsResponse {
            sessions: sessions
                .iter()
                .map(|session| session_at(session, now))
                .collect(),
            next_page_token,
        }))
    }

    async fn revoke_user_sessions(
        &self,
        request: Request<pb::RevokeUserSessionsRequest>,
    ) -> Result<Response<pb::RevokeUserSessionsResponse>, Status> {
        let revoked = self
            .app
            .revoke_user_sessions(&request.into_inner().user_id)
            .await?;
        Ok(Response::new(pb::RevokeUserSessionsResponse {
            revoked_count: i32::try_from(revoked).unwrap_or(i32::MAX),
        }))
    }

    async fn get_jwks(
        &self,
        _request: Request<pb::GetJwksRequest>,
    ) -> Result<Response<pb::GetJwksResponse>, Status> {
        Ok(Response::new((&self.app.jwks()).into()))
    }
}
