//! `query` of `ListCustomers` and `ListUsers` on PostgreSQL is served by the
//! `text_pattern_ops` indexes of the customers migration, not by a scan: the SQL the
//! store issues is explained on a few thousand rows. On SQLite (whose LIKE scans, as
//! the migration says) only the answers are checked.

use std::time::{Duration, Instant};

use sea_orm::{
    ConnectionTrait as _, Database, DatabaseConnection, DbBackend, Statement, TransactionTrait as _,
};
use tenancy_client::pb;

use super::{business, create};
use crate::helpers::{Backend, TestApp, spawn_app, unique_email};

/// Seeded rows per table: enough that a scan costs the planner far more than an index.
const SEEDED: usize = 3_000;

/// The statement `store::customers::list_customers` sends for a `query` and nothing
/// else, as PostgreSQL logs it (`log_statement = 'all'` on a running server).
const LIST_CUSTOMERS_SQL: &str = r#"SELECT "customers"."id", "customers"."external_id", "customers"."tenant_id", "customers"."customer_key", "customers"."customer_prefix", "customers"."status", "customers"."email", "customers"."first_name", "customers"."last_name", "customers"."company_name", "customers"."first_name_lower", "customers"."last_name_lower", "customers"."company_name_lower", "customers"."customer_type", "customers"."hostname", "customers"."subdomain", "customers"."country", "customers"."currency", "customers"."language", "customers"."delinquent", "customers"."allowed_domains_origins", "customers"."allowed_domains_registration", "customers"."settings", "customers"."metadata", "customers"."limits", "customers"."addresses", "customers"."telephones", "customers"."legal_documents", "customers"."owner_user_id", "customers"."create_time", "customers"."update_time", "customers"."revision" FROM "customers" WHERE "customers"."email" LIKE $1 ESCAPE E'\\' OR "customers"."company_name_lower" LIKE $2 ESCAPE E'\\' OR "customers"."first_name_lower" LIKE $3 ESCAPE E'\\' OR "customers"."last_name_lower" LIKE $4 ESCAPE E'\\' ORDER BY "customers"."id" ASC LIMIT $5"#;

/// The same for `store::users::list_users`.
const LIST_USERS_SQL: &str = r#"SELECT "users"."id", "users"."email", "users"."first_name", "users"."last_name", "users"."first_name_lower", "users"."last_name_lower", "users"."language", "users"."status", "users"."password_hash", "users"."last_login_time", "users"."create_time", "users"."update_time", "users"."revision" FROM "users" WHERE "users"."email" LIKE $1 ESCAPE E'\\' OR "users"."first_name_lower" LIKE $2 ESCAPE E'\\' OR "users"."last_name_lower" LIKE $3 ESCAPE E'\\' ORDER BY "users"."id" ASC LIMIT $4"#;

const CUSTOMER_PATTERN_INDEXES: [&str; 4] = [
    "customers_email_pattern_idx",
    "customers_company_name_lower_pattern_idx",
    "customers_first_name_lower_pattern_idx",
    "customers_last_name_lower_pattern_idx",
];

const USER_PATTERN_INDEXES: [&str; 3] = [
    "users_email_pattern_idx",
    "users_first_name_lower_pattern_idx",
    "users_last_name_lower_pattern_idx",
];

/// Users and their customers, `SEEDED` of each, with md5-derived names (hex digits
/// after a one-letter tag), so that a prefix of two hex digits matches about 1/256 of
/// them. JSON columns hold valid empty values, so the API can read these rows.
fn seed_sql() -> String {
    format!(
        "INSERT INTO users (id, email, first_name, last_name, first_name_lower, last_name_lower, \
           language, status, password_hash, last_login_time, create_time, update_time, revision) \
         SELECT gen_random_uuid(), 'u' || md5('e' || g) || '@seed.example', 'F' || md5('f' || g), \
           'L' || md5('l' || g), 'f' || md5('f' || g), 'l' || md5('l' || g), 'en', 'active', \
           NULL, NULL, 0, 0, 1 \
         FROM generate_series(1, {SEEDED}) AS g; \
         INSERT INTO customers (id, external_id, tenant_id, customer_key, customer_prefix, status, \
           email, first_name, last_name, company_name, first_name_lower, last_name_lower, \
           company_name_lower, customer_type, hostname, subdomain, country, currency, language, \
           delinquent, allowed_domains_origins, allowed_domains_registration, settings, metadata, \
           limits, addresses, telephones, legal_documents, owner_user_id, create_time, \
           update_time, revision) \
         SELECT gen_random_uuid(), NULL, '', substr(md5('k' || u.email), 1, 10), 'S', 'active', \
           'c' || substr(u.email, 2), u.first_name, u.last_name, 'Co' || md5('c' || u.email), \
           u.first_name_lower, u.last_name_lower, 'co' || md5('c' || u.email), 'business', NULL, \
           's' || md5('s' || u.email), 'BR', NULL, 'en', false, '[]', '[]', '{{}}', '{{}}', '{{}}', \
           '[]', '[]', '[]', u.id, 0, 0, 1 \
         FROM users u WHERE u.email LIKE '%@seed.example'; \
         ANALYZE customers; ANALYZE users;"
    )
}

async fn seed(db: &DatabaseConnection) {
    db.execute_unprepared(&seed_sql()).await.expect("seed rows");
}

/// The plan of the first execution of `sql` prepared as the driver prepares it (typed
/// text parameters, the `LIMIT` a bigint), with `pattern` in every LIKE.
async fn explain_first_execution(
    db: &DatabaseConnection,
    sql: &str,
    likes: usize,
    pattern: &str,
) -> String {
    // PREPARE and EXPLAIN EXECUTE must share a session: a transaction holds one.
    let tx = db.begin().await.expect("begin");
    let types = vec!["text"; likes].join(", ");
    // PREPARE outlives a rollback (it belongs to the session), so each call names its
    // own statement and deallocates it.
    let name = format!("listing_{}", ulid::Ulid::new().to_string().to_lowercase());
    tx.execute_unprepared(&format!("PREPARE {name}({types}, bigint) AS {sql}"))
        .await
        .expect("prepare");
    let args = vec![format!("'{pattern}'"); likes].join(", ");
    let rows = tx
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            format!("EXPLAIN EXECUTE {name}({args}, 51)"),
        ))
        .await
        .expect("explain");
    let plan = rows
        .iter()
        .map(|row| row.try_get_by_index::<String>(0).expect("a plan line"))
        .collect::<Vec<_>>()
        .join("\n");
    tx.execute_unprepared(&format!("DEALLOCATE {name}"))
        .await
        .expect("deallocate");
    tx.rollback().await.expect("rollback");
    plan
}

async fn count(db: &DatabaseConnection, sql: &str) -> usize {
    let row = db
        .query_one_raw(Statement::from_string(DbBackend::Postgres, sql.to_string()))
        .await
        .expect("count")
        .expect("a row");
    let count = row.try_get_by_index::<i64>(0).expect("a count");
    usize::try_from(count).expect("a count is not negative")
}

async fn list_customers(app: &TestApp, query: &str) -> Vec<pb::Customer> {
    list_customers_page(app, query, 1000).await
}

async fn list_customers_page(app: &TestApp, query: &str, page_size: i32) -> Vec<pb::Customer> {
    app.customers
        .clone()
        .list_customers(pb::ListCustomersRequest {
            query: query.into(),
            page_size,
            ..Default::default()
        })
        .await
        .expect("list customers")
        .into_inner()
        .customers
}

async fn list_users(app: &TestApp, query: &str) -> Vec<pb::User> {
    app.users
        .clone()
        .list_users(pb::ListUsersRequest {
            query: query.into(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("list users")
        .into_inner()
        .users
}

/// Three customers (and their new owners) whose names start with `zeph`, through the
/// API; `query` finds them, in any case, and nothing else.
async fn create_zephyrs(app: &TestApp) -> Vec<String> {
    let mut ids = Vec::new();
    for (first, company) in [
        ("Zephyr", "Acme"),
        ("Ana", "Zephyrus Ltda"),
        ("Zepha", "Bolt"),
    ] {
        let mut customer = business(&unique_email("idx"), company);
        customer.first_name = first.into();
        ids.push(create(app, customer).await.uuid);
    }
    ids
}

async fn query_prefixes_are_answered_from_the_pattern_indexes(backend: Backend) {
    let app = spawn_app(backend.clone()).await;
    let zephyrs = create_zephyrs(&app).await;
    let found: Vec<String> = list_customers(&app, "ZEPH")
        .await
        .into_iter()
        .map(|c| c.uuid)
        .collect();
    assert_eq!(found, zephyrs, "customers by first or company name");
    let owners = list_users(&app, "zeph").await;
    assert_eq!(owners.len(), 2, "users by first name: {owners:?}");

    let Backend::Postgres(_) = backend else {
        return;
    };
    let db = Database::connect(&app.database.url).await.expect("connect");
    seed(&db).await;

    // The seeded rows are what the plans below are about: `query` reads them right.
    let expected = count(&db, "SELECT count(*) FROM customers WHERE email LIKE 'c0%'").await;
    assert!(expected > 0, "the seed gives matches for c0");
    assert_eq!(list_customers(&app, "c0").await.len(), expected);
    let expected = count(
        &db,
        "SELECT count(*) FROM users WHERE first_name_lower LIKE 'f0%'",
    )
    .await;
    assert!(expected > 0, "the seed gives matches for f0");
    assert_eq!(list_users(&app, "F0").await.len(), expected);

    let plan = explain_first_execution(&db, LIST_CUSTOMERS_SQL, 4, "zeph%").await;
    for index in CUSTOMER_PATTERN_INDEXES {
        assert!(
            plan.contains(index),
            "{index} unused by ListCustomers:\n{plan}"
        );
    }
    assert!(!plan.contains("Seq Scan"), "ListCustomers scans:\n{plan}");
    let plan = explain_first_execution(&db, LIST_USERS_SQL, 3, "zeph%").await;
    for index in USER_PATTERN_INDEXES {
        assert!(plan.contains(index), "{index} unused by ListUsers:\n{plan}");
    }
    assert!(!plan.contains("Seq Scan"), "ListUsers scans:\n{plan}");
}

crate::on_both_backends!(query_prefixes_are_answered_from_the_pattern_indexes);

/// Index scans PostgreSQL counted on `index` so far (its statistics lag a little).
async fn index_scans(db: &DatabaseConnection, index: &str) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            format!("SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = '{index}'"),
        ))
        .await
        .expect("index statistics")
        .expect("the index exists");
    row.try_get_by_index::<i64>(0).expect("idx_scan")
}

/// `index_scans` once the counts of earlier statements have arrived: a backend reports
/// its statistics when it has been idle a while (up to 10 s on PostgreSQL 15), so the
/// count must hold still for longer than that.
async fn settled_index_scans(db: &DatabaseConnection, index: &str) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut last = index_scans(db, index).await;
    let mut still_since = Instant::now();
    while still_since.elapsed() < Duration::from_secs(11) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = index_scans(db, index).await;
        if now != last {
            last = now;
            still_since = Instant::now();
        }
    }
    last
}

/// The steady state: the server's driver keeps each statement prepared per connection,
/// and after five executions PostgreSQL may switch it to a generic plan, which cannot
/// turn `LIKE $1` into an index range. Counted from PostgreSQL's index statistics over
/// many `ListCustomers` calls through the API, so a fix in the store (a statement
/// shape, or `plan_cache_mode` on its connections) makes this pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_queries_keep_using_the_pattern_indexes() {
    let Some(backend) = Backend::postgres().await else {
        return;
    };
    let app = spawn_app(backend).await;
    create_zephyrs(&app).await;
    let db = Database::connect(&app.database.url).await.expect("connect");
    seed(&db).await;
    // An operator types short prefixes before long ones: the broad ones make the
    // custom plans dearer, which is what tips PostgreSQL to the generic plan.
    for query in ["c", "c1", "f", "l0", "co9", "c2", "f3", "l"] {
        list_customers_page(&app, query, 0).await;
    }
    let index = CUSTOMER_PATTERN_INDEXES[0];
    let before = settled_index_scans(&db, index).await;
    const CALLS: i64 = 60;
    for call in 0..CALLS {
        // Three-character prefixes match a handful of the seeded emails each.
        list_customers_page(&app, &format!("c{:02x}", call), 0).await;
    }
    // Backends flush their statistics when idle, within seconds.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut scans = index_scans(&db, index).await - before;
    while scans < CALLS && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        scans = index_scans(&db, index).await - before;
    }
    assert!(
        scans >= CALLS,
        "{CALLS} ListCustomers calls with a query scanned {index} {scans} times"
    );
}
