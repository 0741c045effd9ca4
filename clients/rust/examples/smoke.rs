//! The clients' smoke scenario through tenancy-client (.ci/clients.sh):
//! `cargo run --release -p tenancy-client --example smoke -- http://HOST:PORT`, with
//! the API key in `TENANCY_SMOKE_KEY`.
//!
//! Health; a customer with its new owner; an account; a member; CheckAccess allowed
//! and denied; an INVALID_ARGUMENT read through `StatusDetails`; a create whose first
//! answer is lost, retried by `retry_create` with the same `request_id`, gets the
//! first resource; a session: sign-in as the owner, its access token verified offline
//! by `Verifier` (JWKS over gRPC), refreshed and verified again, revoked, and the
//! revoked session's refresh refused.

use std::sync::{Arc, Mutex};

use tenancy_client::{
    Expected, RetryPolicy, StatusDetails, Verifier, VerifyError, pb, retry_create, tonic,
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

type Failure = Box<dyn std::error::Error>;

const PASSWORD: &str = "correct horse battery staple 42";

fn check(condition: bool, message: impl std::fmt::Display) -> Result<(), Failure> {
    if condition {
        Ok(())
    } else {
        Err(format!("FAIL rust: {message}").into())
    }
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let endpoint = std::env::args()
        .nth(1)
        .ok_or("usage: smoke http://HOST:PORT")?;
    let key = std::env::var("TENANCY_SMOKE_KEY")?;
    let tag = &uuid_tag();
    let client = tenancy_client::Connector::new(endpoint, key)
        .timeout(std::time::Duration::from_secs(10))
        .connect()
        .await?;

    let health = HealthClient::new(client.channel())
        .check(HealthCheckRequest::default())
        .await?
        .into_inner();
    check(
        health.status == ServingStatus::Serving as i32,
        format!("health is {}", health.status),
    )?;
    println!("ok   rust: health SERVING");

    // The first attempt reaches the server but its answer is "lost": the helper
    // retries with the same request_id and gets the customer the first one made.
    let create = pb::CreateCustomerRequest {
        customer: Some(pb::Customer {
            email: format!("rs-owner-{tag}@example.com"),
            first_name: "Rs".into(),
            last_name: "Owner".into(),
            customer_type: pb::CustomerType::Personal as i32,
            ..Default::default()
        }),
        password: PASSWORD.into(),
        ..Default::default()
    };
    let sent = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let customers = client.customers();
    let policy = RetryPolicy {
        initial_backoff: std::time::Duration::from_millis(1),
        ..RetryPolicy::default()
    };
    let customer = retry_create(&policy, create, |request| {
        let mut customers = customers.clone();
        let sent = sent.clone();
        async move {
            let request_id = request.request_id.clone();
            let response = customers.create_customer(request).await?;
            let uuid = response
                .get_ref()
                .customer
                .as_ref()
                .map(|c| c.uuid.clone())
                .unwrap_or_default();
            let mut sent = sent.lock().unwrap();
            sent.push((request_id, uuid));
            if sent.len() == 1 {
                return Err(tonic::Status::unavailable(
                    "the answer was lost (simulated)",
                ));
            }
            Ok(response)
        }
    })
    .await?
    .customer
    .ok_or("CreateCustomer returned no customer")?;
    {
        let sent = sent.lock().unwrap();
        check(
            sent.len() == 2 && sent[0].0 == sent[1].0 && !sent[0].0.is_empty(),
            format!("attempts sent {sent:?}"),
        )?;
        check(
            customer.uuid == sent[0].1,
            format!(
                "the retry made {}, the first attempt {}",
                customer.uuid, sent[0].1
            ),
        )?;
    }
    check(
        !customer.owner_user_id.is_empty(),
        "the customer has no owner",
    )?;
    println!(
        "ok   rust: CreateCustomer with its owner {}; retried with the same request_id it gets the same customer",
        customer.owner_user_id
    );

    let account = client
        .accounts()
        .create_account(pb::CreateAccountRequest {
            customer_id: customer.uuid.clone(),
            account: Some(pb::Account {
                name: format!("rs {tag}"),
                service_type: pb::ServiceType::WebMeeting as i32,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await?
        .into_inner()
        .account
        .ok_or("CreateAccount returned no account")?;
    println!("ok   rust: CreateAccount {}", account.uuid);

    let member = client
        .users()
        .create_user(pb::CreateUserRequest {
            user: Some(pb::User {
                email: format!("rs-member-{tag}@example.com"),
                first_name: "Rs".into(),
                last_name: "Member".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await?
        .into_inner()
        .user
        .ok_or("CreateUser returned no user")?;
    client
        .accounts()
        .add_account_user(pb::AddAccountUserRequest {
            account_id: account.uuid.clone(),
            member: Some(pb::add_account_user_request::Member::UserId(
                member.uuid.clone(),
            )),
            permissions: vec!["rooms.read".into()],
            ..Default::default()
        })
        .await?;
    println!("ok   rust: AddAccountUser with rooms.read");

    let access = |permission: &str| pb::CheckAccessRequest {
        user_id: member.uuid.clone(),
        target: Some(pb::check_access_request::Target::AccountId(
            account.uuid.clone(),
        )),
        permission: permission.into(),
    };
    let allowed = client
        .users()
        .check_access(access("rooms.read"))
        .await?
        .into_inner();
    let denied = client
        .users()
        .check_access(access("rooms.write"))
        .await?
        .into_inner();
    check(
        allowed.allowed,
        format!("rooms.read was denied: {}", allowed.reason),
    )?;
    check(!denied.allowed, "rooms.write was allowed")?;
    println!("ok   rust: CheckAccess rooms.read allowed, rooms.write denied");

    let invalid = client
        .customers()
        .create_customer(pb::CreateCustomerRequest {
            customer: Some(pb::Customer {
                email: "not an email".into(),
                customer_type: pb::CustomerType::Personal as i32,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await;
    let status = match invalid {
        Ok(_) => return Err("FAIL rust: an invalid customer was created".into()),
        Err(status) => status,
    };
    let details = StatusDetails::from_status(&status);
    check(
        details.code == tonic::Code::InvalidArgument,
        format!("got {:?}", details.code),
    )?;
    let fields = details.violated_fields();
    check(
        fields.contains(&"customer.email") && fields.contains(&"customer.first_name"),
        format!("violations: {fields:?}"),
    )?;
    println!("ok   rust: INVALID_ARGUMENT names {}", fields.join(", "));

    sessions(&client, &customer).await
}

/// Sign-in, offline verification, refresh, sign-out (SPEC §11), as the customer's owner.
async fn sessions(client: &tenancy_client::Client, customer: &pb::Customer) -> Result<(), Failure> {
    let created = client
        .sessions()
        .create_session(pb::CreateSessionRequest {
            email: customer.email.clone(),
            password: PASSWORD.into(),
            customer_id: customer.uuid.clone(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let session = created.session.ok_or("CreateSession returned no session")?;
    // The server runs with the default issuer and audience, both `tenancy`.
    let verifier = Verifier::grpc(client.channel(), Expected::new("tenancy", "tenancy"));
    let claims = verifier.verify(&created.access_token).await?;
    check(
        claims.sub.to_string() == customer.owner_user_id
            && claims.sid.to_string() == session.uuid
            && claims.iss == "tenancy"
            && claims.aud.contains("tenancy")
            && claims.customer_id.map(|c| c.to_string()) == Some(customer.uuid.clone())
            && claims.owner,
        format!("claims {claims:?} for session {session:?}"),
    )?;
    let elsewhere = Verifier::grpc(client.channel(), Expected::new("tenancy", "billing"));
    let refused = elsewhere.verify(&created.access_token).await;
    check(
        matches!(refused, Err(VerifyError::WrongAudience { .. })),
        format!("a verifier for billing said {refused:?}"),
    )?;
    println!("ok   rust: CreateSession; its access token verifies offline, not for billing");

    let refreshed = client
        .sessions()
        .refresh_session(pb::RefreshSessionRequest {
            refresh_token: created.refresh_token.clone(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let again = verifier.verify(&refreshed.access_token).await?;
    check(
        again.sid == claims.sid && again.jti != claims.jti && again.sub == claims.sub,
        format!("refreshed claims {again:?}"),
    )?;
    println!("ok   rust: RefreshSession; the new access token verifies, same session");

    client
        .sessions()
        .revoke_session(pb::RevokeSessionRequest {
            session_id: session.uuid.clone(),
        })
        .await?;
    let refused = client
        .sessions()
        .refresh_session(pb::RefreshSessionRequest {
            refresh_token: refreshed.refresh_token,
            ..Default::default()
        })
        .await;
    check(
        matches!(&refused, Err(status) if status.code() == tonic::Code::Unauthenticated),
        format!("the revoked session's refresh got {refused:?}"),
    )?;
    println!("ok   rust: RevokeSession; the revoked session's refresh is UNAUTHENTICATED");
    Ok(())
}

/// A short random tag, so repeated runs against one database do not collide.
fn uuid_tag() -> String {
    format!(
        "{:x}",
        std::process::id() as u64
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
    )
}
