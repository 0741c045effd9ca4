//! Database migrations, one file per change (`m<date>_<verb>_<noun>.rs`). They run on
//! start and through `tenancy migrate`, on SQLite and PostgreSQL alike.
//!
//! Times are stored as microseconds since the Unix epoch in BIGINT columns: SQLite keeps
//! chrono timestamps as text whose fraction length varies, which would make range
//! comparisons (retention, lockout windows) compare wrongly.

pub use sea_orm_migration::prelude::*;

mod m20261123_000001_create_foundation;
mod m20261123_000002_create_users;
mod m20261201_000003_create_customers;
mod m20261201_000004_create_accounts;
mod m20261201_000005_constrain_memberships;
mod m20261201_000010_add_throttle_attempt_times;
mod m20261206_000030_create_relay_state;
mod m20261207_000031_create_pending_events;
mod m20261208_000032_index_pending_events_by_transaction;
mod m20261210_000033_add_relay_stream_sequence;
mod m20261210_000034_create_sessions;
mod m20261210_000035_create_signing_keys;
mod m20261210_000036_add_user_recovery;
mod m20261211_000037_create_roles;
mod m20261212_000038_index_memberships_by_user_target;

/// Applies every migration in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_create_foundation::Migration),
            Box::new(m20261123_000002_create_users::Migration),
            Box::new(m20261201_000003_create_customers::Migration),
            Box::new(m20261201_000004_create_accounts::Migration),
            Box::new(m20261201_000005_constrain_memberships::Migration),
            Box::new(m20261201_000010_add_throttle_attempt_times::Migration),
            Box::new(m20261206_000030_create_relay_state::Migration),
            Box::new(m20261207_000031_create_pending_events::Migration),
            Box::new(m20261208_000032_index_pending_events_by_transaction::Migration),
            Box::new(m20261210_000033_add_relay_stream_sequence::Migration),
            Box::new(m20261210_000034_create_sessions::Migration),
            Box::new(m20261210_000035_create_signing_keys::Migration),
            Box::new(m20261210_000036_add_user_recovery::Migration),
            Box::new(m20261211_000037_create_roles::Migration),
            Box::new(m20261212_000038_index_memberships_by_user_target::Migration),
        ]
    }
}
