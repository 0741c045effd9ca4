//! API key use cases: issue, list, revoke, authenticate, and the first-start admin key.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::watch;

use super::App;
use crate::{
    cache::Caches,
    domain::{
        Error, Result,
        api_key::{self, ADMIN_SCOPE, ApiKey, Caller, MIN_KEY_LEN},
        id::Id,
        violations::Violations,
    },
    store::Store,
};

/// A key just created: the only moment its secret is known.
#[derive(Debug, Clone)]
pub struct IssuedKey {
    pub key: ApiKey,
    pub secret: String,
}

/// Creates a key named `name` with `scopes` (validated) on `store`.
pub async fn issue_key(store: &Store, name: &str, scopes: &[String]) -> Result<IssuedKey> {
    let mut violations = Violations::new();
    if name.trim().is_empty() {
        violations.add("name", "is required");
    }
    if scopes.is_empty() {
        violations.add("scope", "at least one scope is required");
    }
    let mut checked = Vec::new();
    for scope in scopes {
        if let Some(scope) = violations.check("scope", api_key::parse_scope(scope)) {
            checked.push(scope);
        }
    }
    violations.finish()?;
    let secret = api_key::generate_secret();
    let key = store
        .create_api_key(name.trim(), &checked, &api_key::digest(&secret))
        .await?;
    Ok(IssuedKey { key, secret })
}

pub async fn list_keys(store: &Store) -> Result<Vec<ApiKey>> {
    store.list_api_keys().await
}

pub async fn revoke_key(store: &Store, id: &str) -> Result<ApiKey> {
    let id = Id::parse(id).map_err(|e| Error::invalid("id", e))?;
    store.revoke_api_key(id).await
}

/// On start: installs `TENANCY_ADMIN_KEY` when given, else creates an admin key if the
/// database has none. Returns a generated secret, which the caller prints once.
pub async fn bootstrap_admin_key(store: &Store, given: Option<&str>) -> Result<Option<IssuedKey>> {
    if let Some(given) = given.map(str::trim).filter(|k| !k.is_empty()) {
        if given.len() < MIN_KEY_LEN {
            return Err(Error::invalid(
                "TENANCY_ADMIN_KEY",
                format!("must be at least {MIN_KEY_LEN} characters"),
            ));
        }
        let digest = api_key::digest(given);
        if !store.api_key_exists(&digest).await? {
            match store
                .create_api_key("admin (TENANCY_ADMIN_KEY)", &[ADMIN_SCOPE.into()], &digest)
                .await
            {
                // Another instance installed it at the same moment.
                Ok(_) | Err(Error::AlreadyExists { .. }) => {}
                Err(other) => return Err(other),
            }
        }
        return Ok(None);
    }
    let secret = api_key::generate_secret();
    let key = store
        .create_first_api_key(
            "admin (first start)",
            &[ADMIN_SCOPE.into()],
            &api_key::digest(&secret),
        )
        .await?;
    Ok(key.map(|key| IssuedKey { key, secret }))
}

impl App {
    /// The caller a bearer key belongs to; unknown and revoked keys are refused alike.
    /// Live keys are answered from memory, and so are unknown ones (a client retrying
    /// a bad key, or a flood of made-up ones, costs no read each): a key revoked by any
    /// process stops working here, and a key created by any process starts working,
    /// within the cache's staleness bound.
    pub async fn authenticate_key(&self, secret: &str) -> Result<Caller> {
        const INVALID: Error = Error::Unauthenticated("the API key is not valid");
        let digest = api_key::digest(secret);
        let (keys, unknown) = (&self.caches.keys, &self.caches.unknown_keys);
        let fresh = self.caches.key_revocations.is_fresh();
        if let Some(caller) = keys.get(&digest, fresh) {
            return Ok(caller);
        }
        if unknown.get(&digest, fresh).is_some() {
            return Err(INVALID);
        }
        let (ticket, unknown_ticket) = (keys.ticket(), unknown.ticket());
        let Some(caller) = self.store.caller_by_digest(&digest).await? else {
            unknown.insert(unknown_ticket, digest, (), Vec::new());
            return Err(INVALID);
        };
        keys.insert(ticket, digest, caller.clone(), vec![caller.key_id]);
        Ok(caller)
    }
}

/// Polls the key and revocation counts every `every`: any change (a key created or
/// revoked by this or another process, the CLI included) empties the caches of live
/// and of unknown keys and publishes the revoked ids to open streams, and each poll
/// confirms the caches' freshness as of its start. Keys are few and their changes rare,
/// so emptying the caches costs one read per key in use.
pub(crate) async fn watch_revocations(
    store: Store,
    caches: Arc<Caches>,
    every: Duration,
    mut shutting_down: watch::Receiver<bool>,
) {
    let mut seen = None;
    let mut failing = false;
    loop {
        let started = Instant::now();
        match poll_revocations(&store, &caches, &mut seen).await {
            Ok(()) => {
                caches.key_revocations.confirm(started);
                if failing {
                    failing = false;
                    tracing::info!("the API key watch reads the database again");
                }
            }
            Err(error) => {
                if !failing {
                    failing = true;
                    tracing::warn!(%error, "the API key watch cannot read the database");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutting_down.wait_for(|down| *down) => return,
        }
    }
}

/// One poll of the watch; `seen` is the revocation state last applied.
async fn poll_revocations(
    store: &Store,
    caches: &Caches,
    seen: &mut Option<(i64, i64, Option<i64>)>,
) -> Result<()> {
    let state = store.api_key_changes().await?;
    // Also on the first poll: a key cached before it may have been revoked (or an
    // unknown one created) in between.
    if *seen != Some(state) {
        caches.keys.clear();
        caches.unknown_keys.clear();
        let revoked = store.revoked_api_key_ids().await?;
        caches.revoked_keys.send_replace(Arc::new(revoked));
        *seen = Some(state);
    }
    Ok(())
}
