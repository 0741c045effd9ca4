//! Use cases: each public method is one thing a caller can ask for. They validate with
//! `domain`, hash on the password pool, and persist through `store`.

pub mod accounts;
pub mod api_keys;
pub mod customers;
mod events;
pub mod users;

use tokio::sync::watch;

use crate::{
    domain::{Result, page::PageTokens},
    hashing::PasswordHasher,
    store::{Store, ThrottlePolicy},
};

pub use events::EventStream;

/// Everything a use case needs; cheap to clone.
#[derive(Clone)]
pub struct App {
    pub store: Store,
    hasher: PasswordHasher,
    secret: [u8; 32],
    page_tokens: PageTokens,
    throttle: ThrottlePolicy,
    /// Becomes `true` when the server starts shutting down; long streams end then.
    shutting_down: watch::Receiver<bool>,
}

/// Settings of the use cases that are not about connections.
#[derive(Debug, Clone, Copy)]
pub struct AppSettings {
    pub throttle: ThrottlePolicy,
}

impl App {
    /// Builds the use cases over a migrated store.
    pub async fn new(
        store: Store,
        hasher: PasswordHasher,
        settings: AppSettings,
        shutting_down: watch::Receiver<bool>,
    ) -> Result<App> {
        let secret = store.server_secret().await?;
        Ok(App {
            store,
            hasher,
            secret,
            page_tokens: PageTokens::new(secret),
            throttle: settings.throttle,
            shutting_down,
        })
    }

    /// The key that makes request fingerprints unforgeable.
    pub fn secret(&self) -> &[u8; 32] {
        &self.secret
    }
}
