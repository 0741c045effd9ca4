//! API key use cases: issue, list, revoke, authenticate, and the first-start admin key.

use super::App;
use crate::{
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
    pub async fn authenticate_key(&self, secret: &str) -> Result<Caller> {
        self.store
            .caller_by_digest(&api_key::digest(secret))
            .await?
            .ok_or(Error::Unauthenticated("the API key is not valid"))
    }
}
