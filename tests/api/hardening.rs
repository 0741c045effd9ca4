//! Hardening (issue 6): hostile input at the edge, secrets kept out of request
//! fingerprints, request ids scoped to their caller, and abuse of sign-in.

mod deadlines;
mod input;
mod retries;
mod secrets;
mod server_limits;
mod sign_in;

use sea_orm::{ConnectionTrait as _, Database, QueryResult, Statement};

use crate::helpers::TestApp;

/// Rows of `sql` on the test's database, read beside the server.
async fn rows(app: &TestApp, sql: &str) -> Vec<QueryResult> {
    let db = Database::connect(&app.database.url)
        .await
        .expect("connect to the test database");
    let rows = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect("query");
    let _ = db.close().await;
    rows
}

/// The number in the first column of the one row of `sql`.
async fn count(app: &TestApp, sql: &str) -> i64 {
    let rows = rows(app, sql).await;
    let row = rows.first().expect("one row");
    row.try_get_by_index::<i64>(0).expect("a count")
}
