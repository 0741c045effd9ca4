//! Invitations: tokens shown once and stored as digests, who may invite, acceptance by
//! an existing or a new user, revocation, expiry, rotation, and the accept race.

use futures::future::join_all;
use sha2::{Digest as _, Sha256};
use tenancy_client::pb::{self, accept_invitation_request::Acceptor};
use tonic::Code;

use super::{members_of, perms};
use crate::customers::{self, events, kinds, personal, set_status};
use crate::helpers::{Backend, GOOD_PASSWORD, TestApp, error_reason, spawn_app, unique_email};

pub async fn invite(
    app: &TestApp,
    customer_id: &str,
    email: &str,
    inviter: &str,
) -> Result<(pb::Invitation, String), tonic::Status> {
    app.customers
        .clone()
        .create_customer_invitation(pb::CreateCustomerInvitationRequest {
            roles: Vec::new(),
            customer_id: customer_id.into(),
            email: email.into(),
            permissions: perms(&["rooms.read", "users.invite"]),
            inviter_user_id: inviter.into(),
            request_id: String::new(),
        })
        .await
        .map(|r| {
            let r = r.into_inner();
            (r.invitation.expect("an invitation"), r.token)
        })
}

pub fn new_user() -> Acceptor {
    Acceptor::NewUser(pb::NewUser {
        first_name: "Nova".into(),
        last_name: "Pessoa".into(),
        password: GOOD_PASSWORD.into(),
    })
}

pub async fn accept(
    app: &TestApp,
    token: &str,
    acceptor: Acceptor,
) -> Result<pb::AcceptInvitationResponse, tonic::Status> {
    app.users
        .clone()
        .accept_invitation(pb::AcceptInvitationRequest {
            token: token.into(),
            acceptor: Some(acceptor),
            request_id: String::new(),
        })
        .await
        .map(|r| r.into_inner())
}

async fn stored_digests(app: &TestApp) -> Vec<String> {
    use sea_orm::{ConnectionTrait as _, Database, Statement};
    let db = Database::connect(&app.database.url).await.unwrap();
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT token_digest FROM invitations",
        ))
        .await
        .unwrap();
    let digests = rows
        .into_iter()
        .map(|row| row.try_get::<String>("", "token_digest").unwrap())
        .collect();
    db.close().await.unwrap();
    digests
}

async fn an_invitation_token_is_shown_once_and_stored_as_its_digest(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = customers::create(&app, personal(&unique_email("inv"))).await;
    let email = unique_email("invitee");
    let before = events(&app).await.len();
    let (invitation, token) = invite(&app, &customer.uuid, &email, "").await.unwrap();
    assert_eq!(invitation.status, pb::InvitationStatus::Pending as i32);
    assert_eq!(invitation.email, email);
    assert!(invitation.inviter_user_id.is_empty(), "an operator invited");
    assert_eq!(token.len(), 43, "32 bytes, URL-safe base64");
    let expire = invitation.expire_time.unwrap().seconds - invitation.create_time.unwrap().seconds;
    assert!(
        (7 * 86400 - 5..=7 * 86400 + 5).contains(&expire),
        "{expire}"
    );
    assert_eq!(
        stored_digests(&app).await,
        [hex::encode(Sha256::digest(token.as_bytes()))]
    );
    let new_events = events(&app).await.split_off(before);
    assert_eq!(kinds(&new_events), ["invitation.created"]);
    assert!(
        !format!("{new_events:?}").contains(&token),
        "no token in events"
    );
    let listed = app
        .customers
        .clone()
        .list_customer_invitations(pb::ListCustomerInvitationsRequest {
            customer_id: customer.uuid.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.invitations, [invitation]);
    let again = invite(&app, &customer.uuid, &email, "").await.unwrap_err();
    assert_eq!(error_reason(&again).as_deref(), Some("INVITATION_PENDING"));
}

async fn only_the_owner_or_an_operator_invites_to_an_open_target(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = customers::create(&app, personal(&unique_email("who"))).await;
    let member = crate::users::create(&app, &unique_email("member"), "").await;
    super::add(
        &app,
        &customer.uuid,
        pb::add_customer_user_request::Member::UserId(member.uuid.clone()),
        &["users.invite"],
    )
    .await
    .unwrap();
    let denied = invite(&app, &customer.uuid, &unique_email("x"), &member.uuid)
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let (by_owner, _) = invite(
        &app,
        &customer.uuid,
        &unique_email("y"),
        &customer.owner_user_id,
    )
    .await
    .unwrap();
    assert_eq!(by_owner.inviter_user_id, customer.owner_user_id);
    let boss = format!(
        "boss-{}@corp.example",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    let mut closed = personal(&boss);
    closed.allowed_domains_registration = vec!["corp.example".into()];
    let closed = customers::create(&app, closed).await;
    let outsider = invite(&app, &closed.uuid, &unique_email("out"), "")
        .await
        .unwrap_err();
    assert_eq!(outsider.code(), Code::FailedPrecondition);
    use pb::CustomerStatus::*;
    for status in [Suspended, Inactive, Terminated] {
        set_status(&app, &customer.uuid, status).await;
        let error = invite(&app, &customer.uuid, &unique_email("late"), "")
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::FailedPrecondition, "{status:?}");
    }
}

async fn a_new_user_accepts_with_the_invited_email(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = customers::create(&app, personal(&unique_email("acc"))).await;
    let email = unique_email("fresh");
    let (invitation, token) = invite(&app, &customer.uuid, &email, "").await.unwrap();
    let before = events(&app).await.len();
    let accepted = accept(&app, &token, new_user()).await.unwrap();
    let user = accepted.user.unwrap();
    assert_eq!(user.email, email);
    assert!(user.has_password);
    let membership = accepted.membership.unwrap();
    // In catalogue order.
    assert_eq!(membership.permissions, ["users.invite", "rooms.read"]);
    assert_eq!(
        membership.target,
        Some(pb::membership::Target::CustomerId(customer.uuid.clone()))
    );
    assert_eq!(
        kinds(&events(&app).await.split_off(before)),
        ["user.created", "membership.created", "invitation.accepted"]
    );
    let twice = accept(&app, &token, new_user()).await.unwrap_err();
    assert_eq!(twice.code(), Code::FailedPrecondition);
    let listed = app
        .customers
        .clone()
        .list_customer_invitations(pb::ListCustomerInvitationsRequest {
            customer_id: customer.uuid.clone(),
            status: pb::InvitationStatus::Accepted as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.invitations.len(), 1);
    assert_eq!(listed.invitations[0].uuid, invitation.uuid);
    // The user signs in with the password they chose.
    app.users
        .clone()
        .authenticate_user(pb::AuthenticateUserRequest {
            email,
            password: GOOD_PASSWORD.into(),
            totp_code: String::new(),
        })
        .await
        .unwrap();
}

async fn an_existing_user_accepts_only_with_the_invited_email(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = customers::create(&app, personal(&unique_email("exist"))).await;
    let invited = crate::users::create(&app, &unique_email("invited"), "").await;
    let other = crate::users::create(&app, &unique_email("other"), "").await;
    let (_, token) = invite(&app, &customer.uuid, &invited.email, "")
        .await
        .unwrap();
    let before = events(&app).await.len();
    let wrong = accept(&app, &token, Acceptor::UserId(other.uuid.clone()))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::FailedPrecondition);
    let new = accept(&app, &token, new_user()).await.unwrap_err();
    assert_eq!(
        new.code(),
        Code::AlreadyExists,
        "the invited email has a user already"
    );
    assert_eq!(events(&app).await.len(), before, "nothing was created");
    let accepted = accept(&app, &token, Acceptor::UserId(invited.ulid.clone()))
        .await
        .unwrap();
    assert_eq!(accepted.user.unwrap().uuid, invited.uuid);
    assert_eq!(members_of(&app, &customer.uuid).await.len(), 2);
}

async fn revoked_expired_and_rotated_tokens_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = customers::create(&app, personal(&unique_email("rot"))).await;
    let (revoked, revoked_token) = invite(&app, &customer.uuid, &unique_email("r"), "")
        .await
        .unwrap();
    let after = app
        .customers
        .clone()
        .revoke_customer_invitation(pb::RevokeCustomerInvitationRequest {
            customer_id: customer.uuid.clone(),
            invitation_id: revoked.uuid.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .invitation
        .unwrap();
    assert_eq!(after.status, pb::InvitationStatus::Revoked as i32);
    assert_eq!(
        accept(&app, &revoked_token, new_user())
            .await
            .unwrap_err()
            .code(),
        Code::FailedPrecondition
    );
    let resend_revoked = app
        .customers
        .clone()
        .resend_customer_invitation(pb::ResendCustomerInvitationRequest {
            customer_id: customer.uuid.clone(),
            invitation_id: revoked.uuid.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(resend_revoked.code(), Code::FailedPrecondition);

    let (rotated, old_token) = invite(&app, &customer.uuid, &unique_email("o"), "")
        .await
        .unwrap();
    let resent = app
        .customers
        .clone()
        .resend_customer_invitation(pb::ResendCustomerInvitationRequest {
            customer_id: customer.uuid.clone(),
            invitation_id: rotated.ulid.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_ne!(resent.token, old_token);
    assert!(
        resent.invitation.unwrap().expire_time.unwrap().seconds
            >= rotated.expire_time.unwrap().seconds
    );
    assert_eq!(
        accept(&app, &old_token, new_user())
            .await
            .unwrap_err()
            .code(),
        Code::FailedPrecondition
    );
    accept(&app, &resent.token, new_user()).await.unwrap();

    let (expiring, expired_token) = invite(&app, &customer.uuid, &unique_email("e"), "")
        .await
        .unwrap();
    {
        use sea_orm::{ConnectionTrait as _, Database, Statement};
        let db = Database::connect(&app.database.url).await.unwrap();
        db.execute_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "UPDATE invitations SET expire_time = $1 WHERE id = $2",
            [
                1_i64.into(),
                uuid::Uuid::parse_str(&expiring.uuid).unwrap().into(),
            ],
        ))
        .await
        .unwrap();
        db.close().await.unwrap();
    }
    let before = events(&app).await.len();
    assert_eq!(
        accept(&app, &expired_token, new_user())
            .await
            .unwrap_err()
            .code(),
        Code::FailedPrecondition
    );
    assert_eq!(events(&app).await.len(), before);
    let expired = app
        .customers
        .clone()
        .list_customer_invitations(pb::ListCustomerInvitationsRequest {
            customer_id: customer.uuid.clone(),
            status: pb::InvitationStatus::Expired as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .invitations;
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].status, pb::InvitationStatus::Expired as i32);
    assert_eq!(
        accept(&app, "not-a-token", new_user())
            .await
            .unwrap_err()
            .code(),
        Code::FailedPrecondition
    );
}

async fn two_parallel_accepts_of_one_token_make_one_membership(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = customers::create(&app, personal(&unique_email("race"))).await;
    let invited = crate::users::create(&app, &unique_email("racer"), "").await;
    let (_, token) = invite(&app, &customer.uuid, &invited.email, "")
        .await
        .unwrap();
    let results =
        join_all((0..4).map(|_| accept(&app, &token, Acceptor::UserId(invited.uuid.clone()))))
            .await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    for error in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(error.code(), Code::FailedPrecondition, "{error:?}");
    }
    assert_eq!(members_of(&app, &customer.uuid).await.len(), 2);
}

async fn accepting_has_its_own_scope_that_cannot_manage_members(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = customers::create(&app, personal(&unique_email("scope"))).await;
    let (_, token) = invite(&app, &customer.uuid, &unique_email("signup"), "")
        .await
        .unwrap();
    let signup = app.key_with(&["invitations.accept"]).await;
    let writer = app.key_with(&["memberships.write"]).await;
    let refused = app
        .users_with_key(Some(&writer))
        .accept_invitation(pb::AcceptInvitationRequest {
            token: token.clone(),
            acceptor: Some(new_user()),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let accepted = app
        .users_with_key(Some(&signup))
        .accept_invitation(pb::AcceptInvitationRequest {
            token,
            acceptor: Some(new_user()),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let user_id = accepted.user.unwrap().uuid;
    let remove = app
        .customers_with_key(Some(&signup))
        .remove_customer_user(pb::RemoveCustomerUserRequest {
            customer_id: customer.uuid.clone(),
            user_id,
            etag: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(remove.code(), Code::PermissionDenied);
}

async fn account_invitations_work_like_customer_ones(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = customers::create(&app, personal(&unique_email("accinv"))).await;
    let account = crate::accounts::create(&app, &customer.uuid, "Acc").await;
    let created = app
        .accounts
        .clone()
        .create_account_invitation(pb::CreateAccountInvitationRequest {
            roles: Vec::new(),
            account_id: account.uuid.clone(),
            email: unique_email("accinvitee"),
            permissions: perms(&["recordings.read"]),
            inviter_user_id: account.owner_user_id.clone(),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let accepted = accept(&app, &created.token, new_user()).await.unwrap();
    assert_eq!(
        accepted.membership.unwrap().target,
        Some(pb::membership::Target::AccountId(account.uuid.clone()))
    );
}

crate::on_both_backends!(
    an_invitation_token_is_shown_once_and_stored_as_its_digest,
    only_the_owner_or_an_operator_invites_to_an_open_target,
    a_new_user_accepts_with_the_invited_email,
    an_existing_user_accepts_only_with_the_invited_email,
    revoked_expired_and_rotated_tokens_are_refused,
    two_parallel_accepts_of_one_token_make_one_membership,
    accepting_has_its_own_scope_that_cannot_manage_members,
    account_invitations_work_like_customer_ones,
);
