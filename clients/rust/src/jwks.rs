//! The JWKS (RFC 7517, Ed25519 keys as RFC 8037 `OKP`) that verifies access tokens:
//! where it comes from ([`JwksSource`], [`GrpcJwks`]) and its keys parsed once
//! ([`KeySet`]). A key is the generated [`pb::Jwk`] whichever way it was fetched.

use std::{collections::HashMap, future::Future};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use ed25519_dalek::VerifyingKey;
use serde::Deserialize;
use tonic::transport::Channel;

pub use crate::pb::Jwk;
use crate::pb::{self, session_service_client::SessionServiceClient};

/// Reads the `{"keys": [...]}` document of `/.well-known/jwks.json` into the keys
/// `GetJwks` returns, for a [`JwksSource`] over HTTP. A member a key lacks, or holds as
/// other than a string, reads as empty (that key is then skipped by [`KeySet::new`]).
pub fn jwks_from_json(document: &[u8]) -> Result<Vec<Jwk>, serde_json::Error> {
    #[derive(Deserialize)]
    struct Document {
        keys: Vec<serde_json::Map<String, serde_json::Value>>,
    }
    let document: Document = serde_json::from_slice(document)?;
    Ok(document
        .keys
        .iter()
        .map(|members| {
            let member = |name: &str| {
                members
                    .get(name)
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            Jwk {
                kty: member("kty"),
                crv: member("crv"),
                kid: member("kid"),
                x: member("x"),
                alg: member("alg"),
                r#use: member("use"),
            }
        })
        .collect())
}

/// The usable keys of a JWKS by `kid`, each parsed once.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: HashMap<String, VerifyingKey>,
}

impl KeySet {
    /// Keeps the Ed25519 signature keys that have a `kid` and a valid, non-weak public
    /// key, and skips the rest: a key of a kind this verifier does not know must not
    /// stop it from using those it does. Of two keys with one `kid`, the first counts.
    pub fn new(jwks: &[Jwk]) -> Self {
        let mut keys = HashMap::with_capacity(jwks.len());
        for jwk in jwks {
            let signs_ed25519 = (jwk.kty.as_str(), jwk.crv.as_str()) == ("OKP", "Ed25519")
                && ["", "EdDSA"].contains(&jwk.alg.as_str())
                && ["", "sig"].contains(&jwk.r#use.as_str());
            if !signs_ed25519 || jwk.kid.is_empty() || keys.contains_key(&jwk.kid) {
                continue;
            }
            if let Some(key) = public_key(&jwk.x) {
                keys.insert(jwk.kid.clone(), key);
            }
        }
        Self { keys }
    }

    pub fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.get(kid)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

fn public_key(x: &str) -> Option<VerifyingKey> {
    let mut bytes = [0u8; 32];
    if URL_SAFE_NO_PAD.decode_slice(x, &mut bytes).ok()? != 32 {
        return None;
    }
    let key = VerifyingKey::from_bytes(&bytes).ok()?;
    (!key.is_weak()).then_some(key)
}

/// Where a [`Verifier`](crate::Verifier) gets the JWKS. [`GrpcJwks`] asks
/// `SessionService.GetJwks`; an HTTP one fetches `/.well-known/jwks.json` and reads it
/// with [`jwks_from_json`].
pub trait JwksSource: Send + Sync {
    /// Fetches the current key set; the error says why it could not.
    fn fetch(&self) -> impl Future<Output = Result<Vec<Jwk>, String>> + Send;
}

/// The JWKS from `SessionService.GetJwks`, which needs no API key.
#[derive(Debug, Clone)]
pub struct GrpcJwks {
    client: SessionServiceClient<Channel>,
}

impl GrpcJwks {
    /// Over `channel`, e.g. [`Client::channel`](crate::Client::channel).
    pub fn new(channel: Channel) -> Self {
        Self {
            client: SessionServiceClient::new(channel),
        }
    }
}

impl JwksSource for GrpcJwks {
    async fn fetch(&self) -> Result<Vec<Jwk>, String> {
        let response = self
            .client
            .clone()
            .get_jwks(pb::GetJwksRequest {})
            .await
            .map_err(|status| format!("GetJwks: {:?}: {}", status.code(), status.message()))?;
        Ok(response.into_inner().keys)
    }
}
