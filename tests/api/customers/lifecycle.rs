//! The status lifecycle: any move but out of TERMINATED, the termination cascade, and
//! deletion of a terminated customer with everything it owns.

use tenancy_client::pb;
use tonic::Code;
use tonic_types::StatusExt as _;

use super::{create, events, get, kinds, personal, set_status, update};
use crate::helpers::{Backend, TestApp, spawn_app, unique_email};

async fn memberships_of(app: &TestApp, user_id: &str) -> Vec<pb::Membership> {
    app.users
        .clone()
        .list_user_memberships(pb::ListUserMembershipsRequest {
            user_id: user_id.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .memberships
}

async fn delete(app: &TestApp, id: &str, etag: &str) -> Result<(), tonic::Status> {
    app.customers
        .clone()
        .delete_customer(pb::DeleteCustomerRequest {
            customer_id: id.into(),
            etag: etag.into(),
        })
        .await
        .map(|_| ())
}

async fn any_status_may_move_to_any_other_but_terminated_is_final(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = create(&app, personal(&unique_email("life"))).await;
    use pb::CustomerStatus::*;
    for status in [
        Inactive, Suspended, Active, Suspended, Inactive, Active, Terminated,
    ] {
        let updated = set_status(&app, &created.uuid, status).await;
        assert_eq!(updated.status, status as i32);
    }
    assert_eq!(
        kinds(&events(&app).await).last().unwrap(),
        "customer.status_changed"
    );
    for status in [Active, Inactive, Suspended] {
        let error = update(
            &app,
            &created.uuid,
            pb::Customer {
                status: status as i32,
                ..Default::default()
            },
            &["status"],
            "",
        )
        .await
        .unwrap_err();
        assert_eq!(error.code(), Code::FailedPrecondition, "{status:?}");
    }
    // Other fields of a terminated customer may still be corrected.
    let renamed = update(
        &app,
        &created.uuid,
        pb::Customer {
            first_name: "Still".into(),
            ..Default::default()
        },
        &["first_name"],
        "",
    )
    .await
    .unwrap();
    assert_eq!(renamed.status, Terminated as i32);
    let error = update(
        &app,
        &created.uuid,
        pb::Customer::default(),
        &["status"],
        "",
    )
    .await
    .unwrap_err();
    assert_eq!(
        error.code(),
        Code::InvalidArgument,
        "status in the mask needs a value"
    );
}

async fn terminating_makes_every_membership_inactive_in_the_same_change(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = create(&app, personal(&unique_email("term"))).await;
    let owner = created.owner_user_id.clone();
    assert_eq!(
        memberships_of(&app, &owner).await[0].status,
        pb::MembershipStatus::Active as i32
    );
    let before = events(&app).await.len();
    set_status(&app, &created.uuid, pb::CustomerStatus::Terminated).await;
    let memberships = memberships_of(&app, &owner).await;
    assert_eq!(memberships.len(), 1);
    assert_eq!(memberships[0].status, pb::MembershipStatus::Inactive as i32);
    let new_events = events(&app).await.split_off(before);
    assert_eq!(
        kinds(&new_events),
        ["membership.updated", "customer.status_changed"]
    );
    // Sign-in lists active memberships only.
    let signed_in = app
        .users
        .clone()
        .authenticate_user(pb::AuthenticateUserRequest {
            email: created.email.clone(),
            password: crate::helpers::GOOD_PASSWORD.into(),
            totp_code: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(signed_in.memberships.is_empty());
}

async fn deleting_a_customer_that_is_not_terminated_is_a_failed_precondition(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = create(&app, personal(&unique_email("del"))).await;
    use pb::CustomerStatus::*;
    for status in [Active, Inactive, Suspended] {
        let current = set_status(&app, &created.uuid, status).await;
        let error = delete(&app, &created.uuid, "").await.unwrap_err();
        assert_eq!(error.code(), Code::FailedPrecondition, "{status:?}");
        let failure = error
            .get_details_precondition_failure()
            .expect("a PreconditionFailure");
        assert_eq!(failure.violations[0].r#type, "CUSTOMER_NOT_TERMINATED");
        assert_eq!(get(&app, &created.uuid).await.unwrap(), current);
    }
}

async fn deleting_a_terminated_customer_removes_what_it_owns_and_keeps_users(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut customer = personal(&unique_email("gone"));
    customer.subdomain = "gone-co".into();
    let created = create(&app, customer).await;
    let owner = created.owner_user_id.clone();
    let terminated = set_status(&app, &created.uuid, pb::CustomerStatus::Terminated).await;
    let before = events(&app).await.len();
    delete(&app, &created.uuid, &terminated.etag).await.unwrap();

    assert_eq!(
        get(&app, &created.uuid).await.unwrap_err().code(),
        Code::NotFound
    );
    assert!(memberships_of(&app, &owner).await.is_empty());
    assert!(crate::users::get(&app, &owner).await.is_ok(), "users stay");
    let new_events = events(&app).await.split_off(before);
    assert_eq!(
        kinds(&new_events),
        ["membership.deleted", "customer.deleted"]
    );
    assert!(
        new_events
            .iter()
            .all(|e| e.customer_id.map(|id| id.to_string()) == Some(created.uuid.clone()))
    );
    // Its unique values are free again.
    let mut again = personal(&created.email);
    again.subdomain = "gone-co".into();
    create(&app, again).await;
    assert_eq!(
        delete(&app, &created.uuid, "").await.unwrap_err().code(),
        Code::NotFound
    );
}

async fn the_owner_of_a_customer_cannot_be_deleted(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = create(&app, personal(&unique_email("owns"))).await;
    let status = crate::users::delete(&app, &created.owner_user_id, "")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        crate::users::get(&app, &created.owner_user_id)
            .await
            .is_ok()
    );
}

crate::on_both_backends!(
    any_status_may_move_to_any_other_but_terminated_is_final,
    terminating_makes_every_membership_inactive_in_the_same_change,
    deleting_a_customer_that_is_not_terminated_is_a_failed_precondition,
    deleting_a_terminated_customer_removes_what_it_owns_and_keeps_users,
    the_owner_of_a_customer_cannot_be_deleted,
    a_refused_write_releases_its_row_at_once,
);

/// A write refused after it locked its row must release the row at once: the next write
/// of that row (on another pooled connection) must not wait for the refused one's
/// connection to be reused.
async fn a_refused_write_releases_its_row_at_once(backend: Backend) {
    let mut database = backend.fresh_database().await;
    database.max_connections = 3;
    let app = crate::helpers::spawn_app_on(database, crate::helpers::test_serve_args()).await;
    let created = create(&app, personal(&unique_email("locks"))).await;
    for round in 0..30 {
        let refused = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            delete(&app, &created.uuid, ""),
        )
        .await
        .unwrap_or_else(|_| panic!("round {round}: the refused delete hung"));
        assert_eq!(refused.unwrap_err().code(), Code::FailedPrecondition);
        let renamed = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            update(
                &app,
                &created.uuid,
                pb::Customer {
                    first_name: format!("Round{round}"),
                    ..Default::default()
                },
                &["first_name"],
                "",
            ),
        )
        .await
        .unwrap_or_else(|_| panic!("round {round}: the update waited on a refused write's lock"));
        assert!(renamed.is_ok(), "round {round}: {renamed:?}");
    }
}
