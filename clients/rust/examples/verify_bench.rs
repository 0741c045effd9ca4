//! What offline verification costs over a bare Ed25519 verify of the same bytes:
//! `cargo run --release -p tenancy-client --example verify_bench -- [N]` (N = 20000).
//!
//! Signs one token like tenancy's (a customer session with a dozen permissions), then
//! times N `Verifier::verify` calls (keys cached: header, key lookup, signature, claims,
//! `exp`, `iss`, `aud`) and N `VerifyingKey::verify` calls on its signing input and
//! signature, alternating rounds so both see the same machine, and prints both rates
//! and their ratio (best round of each). The target is a ratio of at least 0.8.

use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _};
use tenancy_client::{Expected, JwksSource, Verifier, pb::Jwk};

const ROUNDS: usize = 5;
const SUB: &str = "0190a1b2-0000-7000-8000-000000000001";
const SID: &str = "0190a1b2-0000-7000-8000-000000000002";
const JTI: &str = "0190a1b2-0000-7000-8000-000000000003";
const CUSTOMER: &str = "0190a1b2-0000-7000-8000-000000000004";

/// The one key, served from memory: the bench measures verification, not fetching.
struct InMemory(Jwk);

impl JwksSource for InMemory {
    async fn fetch(&self) -> Result<Vec<Jwk>, String> {
        Ok(vec![self.0.clone()])
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u32 = std::env::args().nth(1).map_or(Ok(20_000), |n| n.parse())?;
    let key = SigningKey::from_bytes(&[42; 32]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let header = r#"{"alg":"EdDSA","typ":"at+jwt","kid":"01JBENCHKEY0000000000000000"}"#;
    // A customer owner's token with a dozen permissions: about 900 bytes, as tenancy signs.
    let permissions = [
        "customers",
        "accounts",
        "users",
        "members",
        "invitations",
        "events",
    ]
    .map(|noun| format!(r#""{noun}.read","{noun}.write""#))
    .join(",");
    let claims = format!(
        r#"{{"iss":"tenancy","aud":["tenancy","billing"],"sub":"{SUB}","sid":"{SID}","iat":{now},"exp":{exp},"jti":"{JTI}","email":"ada.lovelace@example.com","email_verified":true,"customer_id":"{CUSTOMER}","permissions":[{permissions}],"owner":true,"roles":["admin"]}}"#,
        exp = now + 300,
    );
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let signature = key.sign(input.as_bytes());
    let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()));
    let public = key.verifying_key();
    let jwk = Jwk {
        kty: "OKP".into(),
        crv: "Ed25519".into(),
        kid: "01JBENCHKEY0000000000000000".into(),
        x: URL_SAFE_NO_PAD.encode(public.as_bytes()),
        alg: "EdDSA".into(),
        r#use: "sig".into(),
    };
    let verifier = Verifier::new(InMemory(jwk), Expected::new("tenancy", "billing"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;

    let offline = || {
        runtime.block_on(async {
            let started = Instant::now();
            for _ in 0..n {
                let claims = verifier.verify(black_box(&token)).await;
                assert!(claims.is_ok(), "{claims:?}");
            }
            started.elapsed()
        })
    };
    let raw = || {
        let signature = Signature::from_bytes(&signature.to_bytes());
        let started = Instant::now();
        for _ in 0..n {
            let verified = public.verify(black_box(input.as_bytes()), black_box(&signature));
            assert!(verified.is_ok());
        }
        started.elapsed()
    };

    offline(); // fetches the JWKS once, and warms up
    let (mut best_offline, mut best_raw) = (Duration::MAX, Duration::MAX);
    for _ in 0..ROUNDS {
        best_raw = best_raw.min(raw());
        best_offline = best_offline.min(offline());
    }
    let rate = |elapsed: Duration| f64::from(n) / elapsed.as_secs_f64();
    println!(
        "token: {} bytes; {n} verifies per round, best of {ROUNDS}",
        token.len()
    );
    println!("raw Ed25519 verify:   {:>9.0} /s", rate(best_raw));
    println!("Verifier::verify:     {:>9.0} /s", rate(best_offline));
    println!(
        "ratio offline / raw:  {:.3} (target >= 0.8)",
        rate(best_offline) / rate(best_raw)
    );
    Ok(())
}
