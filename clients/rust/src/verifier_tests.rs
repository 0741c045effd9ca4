//! The verifier against hand-made tokens signed by generated Ed25519 keys, and a JWKS
//! source that counts its fetches (on tokio's paused clock).

use std::sync::{
    Arc, Mutex as StdMutex,
    atomic::{AtomicUsize, Ordering},
};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use ed25519_dalek::{Signer as _, SigningKey};
use serde_json::{Value, json};

use super::*;
use crate::pb::Jwk;

const ISSUER: &str = "tenancy";
const AUDIENCE: &str = "billing";

/// A JWKS server in memory: the keys it publishes now, and how often it was asked.
#[derive(Clone, Default)]
struct FakeJwks {
    keys: Arc<StdMutex<Vec<Jwk>>>,
    fetches: Arc<AtomicUsize>,
    down: Arc<StdMutex<bool>>,
}

impl FakeJwks {
    fn publishing(keys: &[(&str, &SigningKey)]) -> Self {
        let fake = Self::default();
        for (kid, key) in keys {
            fake.publish(kid, key);
        }
        fake
    }

    fn publish(&self, kid: &str, key: &SigningKey) {
        self.keys.lock().unwrap().push(jwk(kid, key));
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

impl JwksSource for FakeJwks {
    async fn fetch(&self) -> Result<Vec<Jwk>, String> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        if *self.down.lock().unwrap() {
            return Err("connection refused".into());
        }
        Ok(self.keys.lock().unwrap().clone())
    }
}

fn jwk(kid: &str, key: &SigningKey) -> Jwk {
    Jwk {
        kty: "OKP".into(),
        crv: "Ed25519".into(),
        kid: kid.into(),
        x: URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
        alg: "EdDSA".into(),
        r#use: "sig".into(),
    }
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn claims() -> Value {
    let now = unix_now();
    json!({
        "iss": ISSUER, "aud": AUDIENCE,
        "sub": "0190a1b2-0000-7000-8000-000000000001",
        "sid": "0190a1b2-0000-7000-8000-000000000002",
        "iat": now, "exp": now + 300,
        "jti": "0190a1b2-0000-7000-8000-000000000003",
        "email": "ada@example.com", "email_verified": true,
        "customer_id": "0190a1b2-0000-7000-8000-000000000004",
        "permissions": ["customers.read"], "owner": false, "roles": [],
    })
}

fn header(kid: &str) -> Value {
    json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid})
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// A compact JWS of any header and claims, signed by `key`.
fn sign(key: &SigningKey, header: &Value, claims: &Value) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    let signature = key.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

fn with(mut claims: Value, name: &str, value: Value) -> Value {
    claims[name] = value;
    claims
}

fn verifier(source: FakeJwks) -> Verifier<FakeJwks> {
    Verifier::new(source, Expected::new(ISSUER, AUDIENCE))
}

#[tokio::test(start_paused = true)]
async fn a_good_token_verifies_to_its_claims() {
    let verifier = verifier(FakeJwks::publishing(&[("k1", &key(1))]));
    let claims = verifier
        .verify(&sign(&key(1), &header("k1"), &claims()))
        .await
        .unwrap();
    assert_eq!(claims.iss, ISSUER);
    assert!(claims.aud.contains(AUDIENCE));
    assert_eq!(
        claims.sub.to_string(),
        "0190a1b2-0000-7000-8000-000000000001"
    );
    assert_eq!(claims.permissions, ["customers.read"]);
    assert!(claims.customer_id.is_some());
}

#[tokio::test(start_paused = true)]
async fn aud_as_an_array_and_a_user_level_session_verify() {
    let verifier = verifier(FakeJwks::publishing(&[("k1", &key(1))]));
    let mut user_level = with(claims(), "aud", json!(["web", AUDIENCE]));
    user_level.as_object_mut().unwrap().remove("customer_id");
    let claims = verifier
        .verify(&sign(&key(1), &header("k1"), &user_level))
        .await
        .unwrap();
    assert_eq!(claims.aud.as_slice(), ["web", AUDIENCE]);
    assert_eq!(claims.customer_id, None);
}

#[tokio::test(start_paused = true)]
async fn a_tampered_payload_is_a_bad_signature() {
    let verifier = verifier(FakeJwks::publishing(&[("k1", &key(1))]));
    let token = sign(&key(1), &header("k1"), &claims());
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged = b64(&with(claims(), "permissions", json!(["customers.write"])));
    parts[1] = &forged;
    assert_eq!(
        verifier.verify(&parts.join(".")).await,
        Err(VerifyError::BadSignature)
    );
    // Another key's signature under the published kid, too.
    let other = sign(&key(2), &header("k1"), &claims());
    assert_eq!(
        verifier.verify(&other).await,
        Err(VerifyError::BadSignature)
    );
}

#[tokio::test(start_paused = true)]
async fn exp_is_checked_with_the_leeway() {
    let verifier = verifier(FakeJwks::publishing(&[("k1", &key(1))]));
    let now = unix_now();
    let sign_exp = |exp: i64| sign(&key(1), &header("k1"), &with(claims(), "exp", json!(exp)));
    // Default leeway 30 s: 20 s past exp still verifies, 31 s past does not.
    assert!(verifier.verify(&sign_exp(now - 20)).await.is_ok());
    assert_eq!(
        verifier.verify(&sign_exp(now - 31)).await,
        Err(VerifyError::Expired { exp: now - 31 })
    );
    let strict = Verifier::new(
        FakeJwks::publishing(&[("k1", &key(1))]),
        Expected::new(ISSUER, AUDIENCE).leeway(Duration::ZERO),
    );
    assert!(matches!(
        strict.verify(&sign_exp(now - 1)).await,
        Err(VerifyError::Expired { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn a_wrong_issuer_audience_or_type_is_named() {
    let verifier = verifier(FakeJwks::publishing(&[("k1", &key(1))]));
    let issuer = sign(
        &key(1),
        &header("k1"),
        &with(claims(), "iss", json!("evil")),
    );
    assert_eq!(
        verifier.verify(&issuer).await,
        Err(VerifyError::WrongIssuer {
            found: "evil".into()
        })
    );
    let audience = sign(
        &key(1),
        &header("k1"),
        &with(claims(), "aud", json!(["web", "mail"])),
    );
    assert_eq!(
        verifier.verify(&audience).await,
        Err(VerifyError::WrongAudience {
            expected: AUDIENCE.into()
        })
    );
    let untyped = json!({"alg": "EdDSA", "kid": "k1"});
    for header in [with(header("k1"), "typ", json!("JWT")), untyped] {
        let id_token = sign(&key(1), &header, &claims());
        assert_eq!(
            verifier.verify(&id_token).await,
            Err(VerifyError::WrongType)
        );
    }
    let media_type = with(header("k1"), "typ", json!("application/AT+JWT"));
    assert!(
        verifier
            .verify(&sign(&key(1), &media_type, &claims()))
            .await
            .is_ok()
    );
}

#[tokio::test(start_paused = true)]
async fn malformed_tokens_are_malformed() {
    let verifier = verifier(FakeJwks::publishing(&[("k1", &key(1))]));
    let good = sign(&key(1), &header("k1"), &claims());
    let hs256 = sign(
        &key(1),
        &with(header("k1"), "alg", json!("HS256")),
        &claims(),
    );
    let crit = sign(
        &key(1),
        &with(header("k1"), "crit", json!(["exp"])),
        &claims(),
    );
    let no_kid = sign(
        &key(1),
        &json!({"alg": "EdDSA", "typ": "at+jwt"}),
        &claims(),
    );
    let no_sub = {
        let mut claims = claims();
        claims.as_object_mut().unwrap().remove("sub");
        sign(&key(1), &header("k1"), &claims)
    };
    for token in [
        "",
        "a.b",
        &format!("{good}.x"),
        &format!("{good}A"),
        &hs256,
        &crit,
        &no_kid,
        &no_sub,
        &"a".repeat(MAX_TOKEN_BYTES_PLUS_ONE),
    ] {
        let result = verifier.verify(token).await;
        assert!(
            matches!(result, Err(VerifyError::Malformed(_))),
            "{token:.40}: {result:?}"
        );
    }
}

const MAX_TOKEN_BYTES_PLUS_ONE: usize = crate::token::MAX_TOKEN_BYTES + 1;

/// A token signed by `key(seed)` under `kid`.
fn token(seed: u8, kid: &str) -> String {
    sign(&key(seed), &header(kid), &claims())
}

#[tokio::test(start_paused = true)]
async fn an_unknown_kid_refetches_once_per_30_seconds() {
    let source = FakeJwks::publishing(&[("k1", &key(1))]);
    let verifier = verifier(source.clone());
    assert!(verifier.verify(&token(1, "k1")).await.is_ok());
    assert_eq!(source.fetches(), 1, "the first token fetches the set");

    // k2 is published after the set was cached: the first token naming it refetches.
    tokio::time::advance(Duration::from_secs(31)).await;
    source.publish("k2", &key(2));
    assert!(verifier.verify(&token(2, "k2")).await.is_ok());
    assert_eq!(source.fetches(), 2);

    // A kid still unknown within 30 s of that fetch does not refetch, and known kids go
    // on verifying from the cache meanwhile.
    tokio::time::advance(Duration::from_secs(29)).await;
    for kid in ["k3", "k4"] {
        let unknown = Err(VerifyError::UnknownKey { kid: kid.into() });
        assert_eq!(verifier.verify(&token(3, kid)).await, unknown);
    }
    assert!(verifier.verify(&token(1, "k1")).await.is_ok());
    assert_eq!(source.fetches(), 2, "no refetch within 30 s");

    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(verifier.verify(&token(3, "k3")).await.is_err());
    assert_eq!(
        source.fetches(),
        3,
        "30 s later an unknown kid refetches again"
    );
}

#[tokio::test(start_paused = true)]
async fn a_set_past_its_max_age_is_refetched_and_a_withdrawn_key_stops_verifying() {
    let source = FakeJwks::publishing(&[("k1", &key(1))]);
    let verifier = verifier(source.clone());
    let token = sign(&key(1), &header("k1"), &claims());
    verifier.verify(&token).await.unwrap();
    source.keys.lock().unwrap().clear();
    tokio::time::advance(Duration::from_secs(599)).await;
    verifier.verify(&token).await.unwrap();
    assert_eq!(source.fetches(), 1);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(
        verifier.verify(&token).await,
        Err(VerifyError::UnknownKey { kid: "k1".into() })
    );
    assert_eq!(source.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_failed_fetch_is_named_and_keeps_the_cached_keys() {
    let source = FakeJwks::publishing(&[("k1", &key(1))]);
    *source.down.lock().unwrap() = true;
    let verifier = verifier(source.clone());
    let token = sign(&key(1), &header("k1"), &claims());
    assert!(matches!(
        verifier.verify(&token).await,
        Err(VerifyError::JwksUnavailable(_))
    ));
    // Within 30 s the failure is not retried, and still named.
    assert!(matches!(
        verifier.verify(&token).await,
        Err(VerifyError::JwksUnavailable(_))
    ));
    assert_eq!(source.fetches(), 1);

    *source.down.lock().unwrap() = false;
    tokio::time::advance(Duration::from_secs(30)).await;
    verifier.verify(&token).await.unwrap();
    *source.down.lock().unwrap() = true;
    tokio::time::advance(Duration::from_secs(600)).await;
    verifier.verify(&token).await.unwrap();
    assert_eq!(
        source.fetches(),
        3,
        "the stale set was refetched, and kept on failure"
    );
}

#[test]
fn the_jwks_keeps_only_usable_ed25519_signature_keys() {
    let changed = |kid: &str, change: fn(&mut Jwk)| {
        let mut jwk = jwk(kid, &key(2));
        change(&mut jwk);
        jwk
    };
    let jwks = [
        changed("rsa", |k| k.kty = "RSA".into()),
        changed("enc", |k| k.r#use = "enc".into()),
        changed("weak", |k| k.x = URL_SAFE_NO_PAD.encode([0u8; 32])),
        changed("short", |k| k.x = "AAAA".into()),
        jwk("", &key(2)),
        jwk("good", &key(1)),
        jwk("good", &key(3)),
    ];
    let keys = KeySet::new(&jwks);
    assert_eq!(keys.len(), 1);
    assert_eq!(keys.get("good"), Some(&key(1).verifying_key()));

    // RFC 8037's example key, with a member this reader does not know.
    let json = br#"{"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k", "extra": 1,
        "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}, {"kty": 7}]}"#;
    let keys = crate::jwks::jwks_from_json(json).unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(KeySet::new(&keys).len(), 1);
}
