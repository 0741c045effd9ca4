//! Member and invitation writes that PostgreSQL rolls back for colliding with a
//! concurrent write (deadlock_detected, serialization_failure) are run once more inside
//! the server; a second collision reaches the caller as retryable `ABORTED`, with
//! nothing written.
//!
//! The collision is injected: a trigger raises SQLSTATE 40P01 while a sequence, which
//! no rollback resets, is below a bound. SQLite has one writer at a time and never
//! reports such a collision, so these tests run on PostgreSQL only.

use sea_orm::{ConnectionTrait as _, Database, DatabaseConnection};
use tenancy_client::pb::add_customer_user_request::Member;
use tonic::Code;

use super::invitations::{accept, invite, new_user};
use super::{add, members_of};
use crate::customers::{self, personal};
use crate::helpers::{Backend, TestApp, error_reason, spawn_app, unique_email};

/// The next `failures` inserts into `table` fail as deadlocks.
async fn collide(app: &TestApp, table: &str, failures: i64) -> DatabaseConnection {
    let db = Database::connect(&app.database.url).await.expect("connect");
    for sql in [
        "DROP TRIGGER IF EXISTS collide ON memberships".to_string(),
        "DROP TRIGGER IF EXISTS collide ON invitations".to_string(),
        "DROP SEQUENCE IF EXISTS collisions".to_string(),
        "CREATE SEQUENCE collisions".to_string(),
        format!(
            "CREATE OR REPLACE FUNCTION collide() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF nextval('collisions') <= {failures} THEN \
             RAISE EXCEPTION 'collision injected by the test' USING ERRCODE = '40P01'; \
             END IF; RETURN NEW; END $$"
        ),
        format!(
            "CREATE TRIGGER collide BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION collide()"
        ),
    ] {
        db.execute_unprepared(&sql).await.expect(&sql);
    }
    db
}

async fn tries(db: &DatabaseConnection) -> i64 {
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT last_value FROM collisions",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index(0).unwrap()
}

async fn a_member_write_that_collides_once_is_run_again(backend: Backend) {
    let Backend::Postgres(_) = backend else {
        return;
    };
    let app = spawn_app(backend).await;
    let customer = customers::create(&app, personal(&unique_email("collide"))).await;

    let member = crate::users::create(&app, &unique_email("member"), "").await;
    let late = crate::users::create(&app, &unique_email("late"), "").await;

    let db = collide(&app, "memberships", 1).await;
    add(
        &app,
        &customer.uuid,
        Member::UserId(member.uuid.clone()),
        &["rooms.read"],
    )
    .await
    .expect("the second run of the write succeeds");
    assert_eq!(tries(&db).await, 2, "the write ran twice");
    assert_eq!(
        members_of(&app, &customer.uuid).await.len(),
        2,
        "owner and the new member"
    );

    // Twice in a row: the caller gets ABORTED, retryable, and nothing was written.
    let db = collide(&app, "memberships", 2).await;
    let refused = add(&app, &customer.uuid, Member::UserId(late.uuid.clone()), &[])
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Aborted, "{refused:?}");
    assert_eq!(error_reason(&refused).as_deref(), Some("CONCURRENT_WRITE"));
    assert!(refused.message().contains("safe to retry"), "{refused:?}");
    assert_eq!(tries(&db).await, 2, "one retry inside the server, no more");
    assert_eq!(members_of(&app, &customer.uuid).await.len(), 2);
}

async fn invitation_writes_that_collide_once_are_run_again(backend: Backend) {
    let Backend::Postgres(_) = backend else {
        return;
    };
    let app = spawn_app(backend).await;
    let customer = customers::create(&app, personal(&unique_email("collide-inv"))).await;

    let db = collide(&app, "invitations", 1).await;
    let email = unique_email("invited");
    let (invitation, token) = invite(&app, &customer.uuid, &email, "")
        .await
        .expect("the second run of the create succeeds");
    assert_eq!(tries(&db).await, 2);
    assert_eq!(invitation.email, email);

    // Accepting inserts the membership (and the user): collide there once.
    let db = collide(&app, "memberships", 1).await;
    let accepted = accept(&app, &token, new_user())
        .await
        .expect("the second run of the accept succeeds");
    assert_eq!(tries(&db).await, 2);
    assert_eq!(accepted.user.expect("a user").email, email);
    let members = members_of(&app, &customer.uuid).await;
    assert_eq!(members.len(), 2, "{members:?}");
}

crate::on_both_backends!(
    a_member_write_that_collides_once_is_run_again,
    invitation_writes_that_collide_once_are_run_again,
);
