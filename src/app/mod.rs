//! Use cases: each public method is one thing a caller can ask for. They validate with
//! `domain`, hash on the password pool, and persist through `store`.

pub mod accounts;
pub mod api_keys;
pub mod customers;
pub mod members;
mod events;
pub mod users;

use tokio::sync::watch;

use crate::{
    domain::{Result, page::PageTokens},
    hashing::PasswordHasher,
    store::{Store, ThrottlePolicy},
};

pub use events::{EventSettings, EventStream};

/// Everything a use case needs; cheap to clone.
#[derive(Clone)]
pub struct App {
    pub store: Store,
    hasher: PasswordHasher,
    secret: [u8; 32],
    page_tokens: PageTokens,
    throttle: ThrottlePolicy,
    invitation_ttl: std::time::Duration,
    /// Becomes `true` when the server starts shutting down; long streams end then.
    shutting_down: watch::Receiver<bool>,
    events: events::EventFeed,
}

/// Settings of the use cases that are not about connections.
#[derive(Debug, Clone, Copy)]
pub struct AppSettings {
    pub throttle: ThrottlePolicy,
    pub events: EventSettings,
    /// How long an invitation token stays valid.
    pub invitation_ttl: std::time::Duration,
}

impl App {
    /// Builds the use cases over a migrated store, and starts the event feed (which
    /// stops when `shutting_down` turns true).
    pub async fn new(
        store: Store,
        hasher: PasswordHasher,
        settings: AppSettings,
        shutting_down: watch::Receiver<bool>,
    ) -> Result<App> {
        let secret = store.server_secret().await?;
        let events =
            events::EventFeed::start(store.clone(), settings.events, shutting_down.clone()).await?;
        Ok(App {
            store,
            hasher,
            secret,
            page_tokens: PageTokens::new(secret),
            throttle: settings.throttle,
            invitation_ttl: settings.invitation_ttl,
            shutting_down,
            events,
        })
    }

    /// The key that makes request fingerprints unforgeable.
    pub fn secret(&self) -> &[u8; 32] {
        &self.secret
    }
}
