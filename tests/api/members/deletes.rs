//! Deleting a customer or an account removes everything it owns, invitations of every
//! status included, in one change with an event each; the users stay.

use tenancy_client::pb::{self, add_customer_user_request::Member};

use super::invitations::{accept, invite, new_user};
use super::{add, add_account_member, perms};
use crate::customers::{self, events, kinds, personal, set_status};
use crate::helpers::{Backend, GOOD_PASSWORD, TestApp, spawn_app, unique_email};

/// Rows in `table`: each test has a database of its own.
async fn rows_in(app: &TestApp, table: &str) -> i64 {
    use sea_orm::{ConnectionTrait as _, Database, Statement};
    let db = Database::connect(&app.database.url).await.unwrap();
    let sql = format!("SELECT COUNT(*) AS n FROM {table}");
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap();
    let count = row.try_get::<i64>("", "n").unwrap();
    db.close().await.unwrap();
    count
}

/// A customer invitation in each status: pending, revoked and accepted.
async fn customer_invitations_of_every_status(app: &TestApp, customer: &pb::Customer) {
    let owner = customer.owner_user_id.as_str();
    invite(app, &customer.uuid, &unique_email("pending"), owner)
        .await
        .unwrap();
    let (revoked, _) = invite(app, &customer.uuid, &unique_email("revoked"), owner)
        .await
        .unwrap();
    app.customers
        .clone()
        .revoke_customer_invitation(pb::RevokeCustomerInvitationRequest {
            customer_id: customer.uuid.clone(),
            invitation_id: revoked.uuid,
        })
        .await
        .unwrap();
    let (_, token) = invite(app, &customer.uuid, &unique_email("accepted"), owner)
        .await
        .unwrap();
    accept(app, &token, new_user()).await.unwrap();
}

async fn invite_to_account(app: &TestApp, account: &pb::Account, email: &str) -> (String, String) {
    let created = app
        .accounts
        .clone()
        .create_account_invitation(pb::CreateAccountInvitationRequest {
            roles: Vec::new(),
            account_id: account.uuid.clone(),
            email: email.into(),
            permissions: perms(&["recordings.read"]),
            inviter_user_id: account.owner_user_id.clone(),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    (created.invitation.unwrap().uuid, created.token)
}

/// An account with a member of its own and an invitation in each status.
async fn account_with_members_and_invitations(
    app: &TestApp,
    customer: &pb::Customer,
    name: &str,
) -> pb::Account {
    let account = crate::accounts::create(app, &customer.uuid, name).await;
    let member = crate::users::create(app, &unique_email("accmember"), GOOD_PASSWORD).await;
    add_account_member(app, &account.uuid, &member.uuid, &["recordings.read"])
        .await
        .unwrap();
    invite_to_account(app, &account, &unique_email("accpending")).await;
    let (revoked, _) = invite_to_account(app, &account, &unique_email("accrevoked")).await;
    app.accounts
        .clone()
        .revoke_account_invitation(pb::RevokeAccountInvitationRequest {
            account_id: account.uuid.clone(),
            invitation_id: revoked,
        })
        .await
        .unwrap();
    let (_, token) = invite_to_account(app, &account, &unique_email("accaccepted")).await;
    accept(app, &token, new_user()).await.unwrap();
    crate::accounts::get(app, &account.uuid).await.unwrap()
}

fn count(kinds: &[String], kind: &str) -> usize {
    kinds.iter().filter(|k| *k == kind).count()
}

async fn deleting_a_customer_removes_every_child_row_and_keeps_the_users(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = customers::create(&app, personal(&unique_email("delwhole"))).await;
    let member = crate::users::create(&app, &unique_email("member"), GOOD_PASSWORD).await;
    add(
        &app,
        &customer.uuid,
        Member::UserId(member.uuid.clone()),
        &["rooms.read"],
    )
    .await
    .unwrap();
    customer_invitations_of_every_status(&app, &customer).await;
    account_with_members_and_invitations(&app, &customer, "A").await;
    account_with_members_and_invitations(&app, &customer, "B").await;

    assert_eq!(rows_in(&app, "invitations").await, 9, "before the delete");
    let terminated = set_status(&app, &customer.uuid, pb::CustomerStatus::Terminated).await;
    let before = events(&app).await.len();
    app.customers
        .clone()
        .delete_customer(pb::DeleteCustomerRequest {
            customer_id: customer.uuid.clone(),
            etag: terminated.etag,
        })
        .await
        .expect("a terminated customer with invitations is deleted");

    for table in ["accounts", "memberships", "invitations"] {
        assert_eq!(
            rows_in(&app, table).await,
            0,
            "{table} of the deleted customer remain"
        );
    }
    let deleted = kinds(&events(&app).await.split_off(before));
    // Three invitations of the customer and three of each account.
    assert_eq!(count(&deleted, "invitation.deleted"), 9, "{deleted:?}");
    // The customer's owner, member and accepted invitee; each account's owner,
    // member and accepted invitee.
    assert_eq!(count(&deleted, "membership.deleted"), 9, "{deleted:?}");
    assert_eq!(count(&deleted, "account.deleted"), 2, "{deleted:?}");
    assert_eq!(deleted.last().map(String::as_str), Some("customer.deleted"));
    assert!(crate::users::get(&app, &member.uuid).await.is_ok());
    assert!(
        crate::users::get(&app, &customer.owner_user_id)
            .await
            .is_ok()
    );
}

async fn deleting_an_account_removes_its_members_and_invitations_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let customer = customers::create(&app, personal(&unique_email("delacc"))).await;
    customer_invitations_of_every_status(&app, &customer).await;
    let doomed = account_with_members_and_invitations(&app, &customer, "Doomed").await;
    let kept = account_with_members_and_invitations(&app, &customer, "Kept").await;

    let terminated = app
        .accounts
        .clone()
        .update_account(pb::UpdateAccountRequest {
            account_id: doomed.uuid.clone(),
            account: Some(pb::Account {
                status: pb::AccountStatus::Terminated as i32,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["status".into()],
            }),
            etag: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap();
    let before = events(&app).await.len();
    app.accounts
        .clone()
        .delete_account(pb::DeleteAccountRequest {
            account_id: doomed.uuid.clone(),
            etag: terminated.etag,
        })
        .await
        .expect("a terminated account with invitations is deleted");

    let deleted = kinds(&events(&app).await.split_off(before));
    assert_eq!(count(&deleted, "invitation.deleted"), 3, "{deleted:?}");
    assert_eq!(count(&deleted, "membership.deleted"), 3, "{deleted:?}");
    assert_eq!(deleted.last().map(String::as_str), Some("account.deleted"));
    // The customer's own rows and the other account's stay.
    assert_eq!(rows_in(&app, "invitations").await, 6);
    assert_eq!(rows_in(&app, "memberships").await, 5);
    let kept_invitations = app
        .accounts
        .clone()
        .list_account_invitations(pb::ListAccountInvitationsRequest {
            account_id: kept.uuid.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .invitations;
    assert_eq!(kept_invitations.len(), 3);
}

crate::on_both_backends!(
    deleting_a_customer_removes_every_child_row_and_keeps_the_users,
    deleting_an_account_removes_its_members_and_invitations_only,
);
