//! Sessions end by the rules of SPEC §11, in the transaction of the change that ends
//! them, each with a `session.revoked` event naming the reason: sign-out, "everywhere",
//! the user INACTIVE or deleted, the password changed or set, the membership of the
//! active customer removed, the customer INACTIVE or TERMINATED. Tokens never reach an
//! event or the log.

use tenancy_client::pb;
use tonic::Code;

use super::{customer_with_owner, refresh, session_events, sign_in, user_with_password};
use crate::customers::set_status;
use crate::helpers::{Backend, GOOD_PASSWORD, TestApp, spawn_app};
use crate::members::add;
use tenancy_client::pb::add_customer_user_request::Member;

/// Signs `email` in (acting in `customer`) and answers (session id, refresh token).
async fn session_of(app: &TestApp, email: &str, customer: &str) -> (String, String) {
    let signed_in = sign_in(app, email, customer).await.expect("sign in");
    (
        signed_in.session.expect("session").uuid,
        signed_in.refresh_token,
    )
}

/// The session's refresh is refused and its `session.revoked` event says `reason`.
async fn assert_revoked(app: &TestApp, (session, token): &(String, String), reason: &str) {
    let refused = refresh(app, token, "").await.expect_err("revoked");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    let events = session_events(app).await;
    let revoked: Vec<_> = events
        .iter()
        .filter(|(kind, id, _)| kind == "session.revoked" && id == session)
        .collect();
    assert_eq!(
        revoked.len(),
        1,
        "one session.revoked for {session}: {events:?}"
    );
    assert_eq!(revoked[0].2.as_deref(), Some(reason));
}

async fn assert_alive(app: &TestApp, (_, token): &mut (String, String)) {
    *token = refresh(app, token, "")
        .await
        .expect("still alive")
        .refresh_token;
}

async fn user_changes_end_every_session_of_the_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut users = app.users.clone();

    let inactive = user_with_password(&app, "inactive").await;
    let inactive_session = session_of(&app, &inactive.email, "").await;
    let mut bystander = user_with_password(&app, "bystander").await;
    let mut bystander_session = session_of(&app, &bystander.email, "").await;
    users
        .update_user(pb::UpdateUserRequest {
            user_id: inactive.uuid.clone(),
            user: Some(pb::User {
                status: pb::UserStatus::Inactive as i32,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["status".into()],
            }),
            etag: String::new(),
        })
        .await
        .expect("deactivate");
    assert_revoked(&app, &inactive_session, "user_inactive").await;

    let set = user_with_password(&app, "set").await;
    let set_sessions = [
        session_of(&app, &set.email, "").await,
        session_of(&app, &set.email, "").await,
    ];
    users
        .set_password(pb::SetPasswordRequest {
            user_id: set.uuid.clone(),
            password: "another good password 77".into(),
        })
        .await
        .expect("set password");
    for session in &set_sessions {
        assert_revoked(&app, session, "password_changed").await;
    }

    let changed = user_with_password(&app, "changed").await;
    let changed_session = session_of(&app, &changed.email, "").await;
    users
        .change_password(pb::ChangePasswordRequest {
            user_id: changed.uuid.clone(),
            current_password: GOOD_PASSWORD.into(),
            new_password: "another good password 77".into(),
        })
        .await
        .expect("change password");
    assert_revoked(&app, &changed_session, "password_changed").await;

    let deleted = user_with_password(&app, "deleted").await;
    let deleted_session = session_of(&app, &deleted.email, "").await;
    users
        .delete_user(pb::DeleteUserRequest {
            user_id: deleted.uuid.clone(),
            etag: String::new(),
        })
        .await
        .expect("delete");
    assert_revoked(&app, &deleted_session, "user_deleted").await;

    // A profile change ends nothing; nor did the others' changes end this one.
    users
        .update_user(pb::UpdateUserRequest {
            user_id: bystander.uuid.clone(),
            user: Some(pb::User {
                first_name: "Bia".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["first_name".into()],
            }),
            etag: String::new(),
        })
        .await
        .expect("rename");
    bystander.first_name = "Bia".into();
    assert_alive(&app, &mut bystander_session).await;
}

async fn membership_and_customer_changes_end_the_sessions_acting_in_that_customer(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let (customer, owner_email) = customer_with_owner(&app, "removed").await;
    let (other, _) = customer_with_owner(&app, "other").await;
    let member = user_with_password(&app, "member").await;
    add(
        &app,
        &customer.uuid,
        Member::UserId(member.uuid.clone()),
        &["rooms.read"],
    )
    .await
    .expect("add member");
    add(
        &app,
        &other.uuid,
        Member::UserId(member.uuid.clone()),
        &["rooms.read"],
    )
    .await
    .expect("add member");
    let in_customer = session_of(&app, &member.email, &customer.uuid).await;
    let mut in_other = session_of(&app, &member.email, &other.uuid).await;
    let mut user_level = session_of(&app, &member.email, "").await;
    app.customers
        .clone()
        .remove_customer_user(pb::RemoveCustomerUserRequest {
            customer_id: customer.uuid.clone(),
            user_id: member.uuid.clone(),
            etag: String::new(),
        })
        .await
        .expect("remove");
    assert_revoked(&app, &in_customer, "membership_removed").await;
    assert_alive(&app, &mut in_other).await;
    assert_alive(&app, &mut user_level).await;

    let owner_session = session_of(&app, &owner_email, &customer.uuid).await;
    set_status(&app, &customer.uuid, pb::CustomerStatus::Suspended).await;
    let mut still = owner_session.clone();
    assert_alive(&app, &mut still).await;
    set_status(&app, &customer.uuid, pb::CustomerStatus::Inactive).await;
    assert_revoked(&app, &still, "customer_inactive").await;

    let (terminated, terminated_owner) = customer_with_owner(&app, "terminated").await;
    let terminated_member = user_with_password(&app, "tmember").await;
    add(
        &app,
        &terminated.uuid,
        Member::UserId(terminated_member.uuid.clone()),
        &["rooms.read"],
    )
    .await
    .expect("add member");
    let sessions = [
        session_of(&app, &terminated_owner, &terminated.uuid).await,
        session_of(&app, &terminated_member.email, &terminated.uuid).await,
    ];
    set_status(&app, &terminated.uuid, pb::CustomerStatus::Terminated).await;
    for session in &sessions {
        assert_revoked(&app, session, "customer_terminated").await;
    }
    assert_alive(&app, &mut user_level).await;
}

async fn sign_out_and_sign_out_everywhere_end_sessions_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = user_with_password(&app, "signout").await;
    let one = session_of(&app, &user.email, "").await;
    let mut sessions = app.sessions.clone();
    sessions
        .revoke_session(pb::RevokeSessionRequest {
            session_id: one.0.clone(),
        })
        .await
        .expect("sign out");
    sessions
        .revoke_session(pb::RevokeSessionRequest {
            session_id: one.0.clone(),
        })
        .await
        .expect("a second sign-out changes nothing");
    assert_revoked(&app, &one, "signed_out").await;
    let missing = sessions
        .revoke_session(pb::RevokeSessionRequest {
            session_id: uuid::Uuid::now_v7().to_string(),
        })
        .await
        .expect_err("no such session");
    assert_eq!(missing.code(), Code::NotFound);

    let others = [
        session_of(&app, &user.email, "").await,
        session_of(&app, &user.email, "").await,
        session_of(&app, &user.email, "").await,
    ];
    let count = sessions
        .revoke_user_sessions(pb::RevokeUserSessionsRequest {
            user_id: user.uuid.clone(),
        })
        .await
        .expect("everywhere")
        .into_inner()
        .revoked_count;
    assert_eq!(count, 3, "the three active ones, not the signed-out one");
    for session in &others {
        assert_revoked(&app, session, "user_sessions_revoked").await;
    }
}

async fn no_token_reaches_an_event(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = user_with_password(&app, "secret").await;
    let signed_in = sign_in(&app, &user.email, "").await.expect("sign in");
    let refreshed = refresh(&app, &signed_in.refresh_token, "")
        .await
        .expect("refresh");
    app.sessions
        .clone()
        .revoke_user_sessions(pb::RevokeUserSessionsRequest {
            user_id: user.uuid.clone(),
        })
        .await
        .expect("revoke");
    let mut stream = app
        .events
        .clone()
        .stream_events(pb::StreamEventsRequest { after_sequence: 0 })
        .await
        .expect("stream")
        .into_inner();
    app.sequenced().await;
    let head = app.log_bounds().await.expect("bounds").1;
    let mut seen = String::new();
    loop {
        let event = stream
            .message()
            .await
            .expect("event")
            .expect("open")
            .event
            .expect("event");
        seen.push_str(&format!("{event:?}"));
        if event.sequence >= head {
            break;
        }
    }
    for secret in [
        &signed_in.access_token,
        &signed_in.refresh_token,
        &refreshed.access_token,
        &refreshed.refresh_token,
    ] {
        assert!(!seen.contains(secret.as_str()), "a token is in an event");
    }
    assert!(seen.contains("session.created") && seen.contains("session.revoked"));
}

crate::on_both_backends!(
    user_changes_end_every_session_of_the_user,
    membership_and_customer_changes_end_the_sessions_acting_in_that_customer,
    sign_out_and_sign_out_everywhere_end_sessions_once,
    no_token_reaches_an_event,
);
