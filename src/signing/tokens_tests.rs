use serde_json::{Value, json};

use super::{
    super::{
        jwks::Jwks,
        keys::{
            KeyRing, SigningKeyRecord, private_key_binding,
            tests::{at, master, one_key_ring},
        },
    },
    *,
};

const LEEWAY: Duration = Duration::from_secs(60);

fn claims(now: DateTime<Utc>) -> AccessClaims {
    AccessClaims {
        iss: "tenancy".into(),
        aud: Audience::new(["billing"]),
        sub: Uuid::from_u128(1),
        sid: Uuid::from_u128(2),
        iat: now.timestamp(),
        exp: now.timestamp() + 300,
        jti: Uuid::from_u128(3),
        email: "ada@example.com".into(),
        email_verified: true,
        customer_id: Some(Uuid::from_u128(4)),
        permissions: vec!["customers.read".into(), "accounts.write".into()],
        owner: false,
        roles: vec!["support".into()],
    }
}

fn keys(ring: &KeyRing, now: DateTime<Utc>) -> VerifyingKeys {
    VerifyingKeys::from_jwks(&Jwks::published(ring, now))
}

fn expected() -> Expected<'static> {
    Expected {
        issuer: "tenancy",
        audience: "billing",
        leeway: LEEWAY,
    }
}

fn check(token: &str, ring: &KeyRing, now: DateTime<Utc>) -> Result<AccessClaims, VerifyError> {
    verify(token, &keys(ring, now), &expected(), now)
}

/// Signs any header and payload with the ring's key, as an attacker holding it (or a
/// buggy issuer) could.
fn signed_raw(ring: &KeyRing, header: &Value, payload: &Value) -> String {
    let header = serde_json::to_vec(header).unwrap();
    let payload = serde_json::to_vec(payload).unwrap();
    let len = encoded_len(header.len()) + encoded_len(payload.len()) + 2 + SIGNATURE_CHARS;
    compact(
        &ring.signing_key(at(0)).unwrap().signer,
        &header,
        &payload,
        len,
    )
}

fn part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn replace_part(token: &str, index: usize, json: &Value) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[index] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(json).unwrap());
    parts.join(".")
}

#[test]
fn a_signed_token_verifies_to_its_claims() {
    let ring = one_key_ring();
    let token = sign(&ring, &claims(at(0)), at(0)).unwrap();
    assert_eq!(check(&token, &ring, at(0)), Ok(claims(at(0))));
}

#[test]
fn the_header_names_eddsa_the_access_token_type_and_the_key() {
    let ring = one_key_ring();
    let token = sign(&ring, &claims(at(0)), at(0)).unwrap();
    let kid = ring.signing_key(at(0)).unwrap().kid();
    assert_eq!(
        part(&token, 0),
        json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid})
    );
}

#[test]
fn the_claims_are_exactly_those_of_the_spec() {
    let ring = one_key_ring();
    let mut user_level = claims(at(0));
    user_level.customer_id = None;
    let token = sign(&ring, &user_level, at(0)).unwrap();
    let payload = part(&token, 1);
    let mut names: Vec<&str> = payload
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "aud",
            "email",
            "email_verified",
            "exp",
            "iat",
            "iss",
            "jti",
            "owner",
            "permissions",
            "roles",
            "sid",
            "sub"
        ],
        "customer_id is absent for a user-level session"
    );
    assert_eq!(check(&token, &ring, at(0)), Ok(user_level));
}

#[test]
fn one_audience_is_a_string_and_several_an_array_and_both_are_read() {
    let one = serde_json::to_value(Audience::new(["billing"])).unwrap();
    assert_eq!(one, json!("billing"));
    let many = serde_json::to_value(Audience::new(["billing", "ledger"])).unwrap();
    assert_eq!(many, json!(["billing", "ledger"]));
    assert_eq!(
        serde_json::from_value::<Audience>(one).unwrap(),
        Audience::new(["billing"])
    );

    let ring = one_key_ring();
    let mut claims = claims(at(0));
    claims.aud = Audience::new(["ledger", "billing"]);
    let token = sign(&ring, &claims, at(0)).unwrap();
    assert_eq!(check(&token, &ring, at(0)), Ok(claims));
}

#[test]
fn an_altered_payload_signature_or_header_does_not_verify() {
    let ring = one_key_ring();
    let token = sign(&ring, &claims(at(0)), at(0)).unwrap();

    let mut payload = part(&token, 1);
    payload["owner"] = json!(true);
    let forged = replace_part(&token, 1, &payload);
    assert_eq!(check(&forged, &ring, at(0)), Err(VerifyError::BadSignature));

    let mut signature = URL_SAFE_NO_PAD
        .decode(token.rsplit('.').next().unwrap())
        .unwrap();
    signature[10] ^= 1;
    let (signed, _) = token.rsplit_once('.').unwrap();
    let forged = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(&signature));
    assert_eq!(check(&forged, &ring, at(0)), Err(VerifyError::BadSignature));

    let mut header = part(&token, 0);
    header["jku"] = json!("https://attacker.example/jwks.json");
    let forged = replace_part(&token, 0, &header);
    assert_eq!(check(&forged, &ring, at(0)), Err(VerifyError::BadSignature));
}

#[test]
fn a_token_naming_another_published_key_does_not_verify() {
    let old = SigningKeyRecord::generate(&master(), at(-10), at(-10));
    let new = SigningKeyRecord::generate(&master(), at(-5), at(60));
    let ring = KeyRing::open(&[old, new.clone()], &master()).unwrap();
    let token = sign(&ring, &claims(at(0)), at(0)).unwrap();
    let mut header = part(&token, 0);
    header["kid"] = json!(new.kid);
    let forged = replace_part(&token, 0, &header);
    assert_eq!(check(&forged, &ring, at(0)), Err(VerifyError::BadSignature));
}

#[test]
fn another_issuer_or_audience_is_refused() {
    let ring = one_key_ring();
    let token = sign(&ring, &claims(at(0)), at(0)).unwrap();
    let other_issuer = Expected {
        issuer: "someone-else",
        ..expected()
    };
    let other_audience = Expected {
        audience: "ledger",
        ..expected()
    };
    let wrong_issuer = VerifyError::WrongIssuer {
        found: "tenancy".into(),
    };
    for (expected, error) in [
        (other_issuer, wrong_issuer),
        (other_audience, VerifyError::WrongAudience),
    ] {
        let verified = verify(&token, &keys(&ring, at(0)), &expected, at(0));
        assert_eq!(verified, Err(error), "{expected:?}");
    }
}

#[test]
fn a_token_of_another_type_is_refused() {
    let ring = one_key_ring();
    let kid = ring.signing_key(at(0)).unwrap().kid().to_owned();
    let payload = serde_json::to_value(claims(at(0))).unwrap();
    for typ in [json!("JWT"), json!("id_token+jwt"), Value::Null] {
        let header = json!({"alg": "EdDSA", "typ": typ, "kid": kid});
        let token = signed_raw(&ring, &header, &payload);
        assert_eq!(
            check(&token, &ring, at(0)),
            Err(VerifyError::WrongType),
            "{typ}"
        );
    }
    let header = json!({"alg": "EdDSA", "typ": "application/AT+JWT", "kid": kid});
    let token = signed_raw(&ring, &header, &payload);
    assert!(
        check(&token, &ring, at(0)).is_ok(),
        "RFC 9068 allows the full media type"
    );
}

#[test]
fn another_algorithm_or_a_critical_extension_is_refused() {
    let ring = one_key_ring();
    let kid = ring.signing_key(at(0)).unwrap().kid().to_owned();
    let payload = serde_json::to_value(claims(at(0))).unwrap();
    for header in [
        json!({"alg": "none", "typ": "at+jwt", "kid": kid}),
        json!({"alg": "HS256", "typ": "at+jwt", "kid": kid}),
        json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid, "crit": ["exp"], "exp": 1}),
    ] {
        let token = signed_raw(&ring, &header, &payload);
        let error = check(&token, &ring, at(0)).unwrap_err();
        assert!(
            matches!(error, VerifyError::Malformed(_)),
            "{header}: {error:?}"
        );
    }
}

#[test]
fn a_token_is_refused_once_expired_beyond_the_leeway() {
    let ring = one_key_ring();
    let token = sign(&ring, &claims(at(0)), at(0)).unwrap();
    let exp = claims(at(0)).exp;
    let instant = |seconds| DateTime::from_timestamp(seconds, 0).unwrap();
    assert!(check(&token, &ring, instant(exp + 59)).is_ok());
    assert_eq!(
        check(&token, &ring, instant(exp + 60)),
        Err(VerifyError::Expired { exp })
    );
}

#[test]
fn a_token_naming_an_unknown_key_is_refused() {
    let ring = one_key_ring();
    let token = sign(&ring, &claims(at(0)), at(0)).unwrap();
    let elsewhere = one_key_ring();
    let kid = ring.signing_key(at(0)).unwrap().kid().to_owned();
    assert_eq!(
        check(&token, &elsewhere, at(0)),
        Err(VerifyError::UnknownKey { kid })
    );
}

#[test]
fn no_token_is_signed_before_a_key_signs() {
    let record = SigningKeyRecord::generate(&master(), at(0), at(60));
    let ring = KeyRing::open(&[record], &master()).unwrap();
    assert_eq!(
        sign(&ring, &claims(at(0)), at(0)),
        Err(SignError::NoSigningKey)
    );
}

#[test]
fn a_token_over_4_kib_is_refused() {
    let ring = one_key_ring();
    let signed = |n| {
        let mut claims = claims(at(0));
        claims.permissions = vec!["p".repeat(n)];
        sign(&ring, &claims, at(0))
    };
    // One more byte of claims at a time until refused.
    let refused_at = (0..MAX_TOKEN_BYTES)
        .find(|&n| signed(n).is_err())
        .expect("a token past 4 KiB was signed");
    let error = signed(refused_at).unwrap_err();
    assert!(
        matches!(error, SignError::TooLarge { bytes } if bytes > MAX_TOKEN_BYTES),
        "{error:?}"
    );
    let largest = signed(refused_at - 1).unwrap().len();
    assert!(
        (MAX_TOKEN_BYTES - 3..=MAX_TOKEN_BYTES).contains(&largest),
        "{largest}"
    );
}

#[test]
fn broken_forms_are_malformed() {
    let ring = one_key_ring();
    let token = sign(&ring, &claims(at(0)), at(0)).unwrap();
    let mut no_sid = part(&token, 1);
    no_sid.as_object_mut().unwrap().remove("sid");
    let mut empty_customer = part(&token, 1);
    empty_customer["customer_id"] = json!("");
    let mut oversized = part(&token, 1);
    oversized["permissions"] = json!(["p".repeat(MAX_TOKEN_BYTES)]);
    let kid = ring.signing_key(at(0)).unwrap().kid().to_owned();
    let header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid});
    for broken in [
        String::new(),
        "a.b".into(),
        format!("{token}.x"),
        format!("{token}x"),
        format!("!{token}"),
        signed_raw(&ring, &header, &oversized),
        signed_raw(&ring, &header, &no_sid),
        signed_raw(&ring, &header, &empty_customer),
    ] {
        let error = check(&broken, &ring, at(0)).unwrap_err();
        assert!(matches!(error, VerifyError::Malformed(_)), "{error:?}");
    }
}

#[test]
fn the_compact_form_matches_rfc_8037() {
    // RFC 8037 appendix A.4: Ed25519 is deterministic, so the signature is known.
    let seed = URL_SAFE_NO_PAD
        .decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
        .unwrap();
    let signer = SigningKey::from_bytes(&seed.try_into().unwrap());
    let header = br#"{"alg":"EdDSA"}"#;
    let payload = b"Example of Ed25519 signing";
    let len = encoded_len(header.len()) + encoded_len(payload.len()) + 2 + SIGNATURE_CHARS;
    assert_eq!(
        compact(&signer, header, payload, len),
        "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-\
         09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
    );
}

/// Another JOSE implementation (`jsonwebtoken`) reads our JWKS, agrees on the
/// thumbprint, verifies our token, and makes a token our `verify` accepts.
#[test]
fn another_jose_implementation_agrees() {
    use jsonwebtoken::{
        Algorithm, DecodingKey, EncodingKey, Header, Validation,
        jwk::{JwkSet, ThumbprintHash},
    };

    // jsonwebtoken checks `exp` against the real clock.
    let now = Utc::now();
    let record = SigningKeyRecord::generate(&master(), now, now);
    let ring = KeyRing::open(std::slice::from_ref(&record), &master()).unwrap();
    let jwks = serde_json::to_string(&Jwks::published(&ring, now)).unwrap();
    let theirs: JwkSet = serde_json::from_str(&jwks).unwrap();
    let jwk = theirs.find(&record.kid).unwrap();
    assert_eq!(jwk.thumbprint(ThumbprintHash::SHA256).unwrap(), record.kid);

    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&["tenancy"]);
    validation.set_audience(&["billing"]);
    let token = sign(&ring, &claims(now), now).unwrap();
    let decoded = jsonwebtoken::decode::<AccessClaims>(
        &token,
        &DecodingKey::from_jwk(jwk).unwrap(),
        &validation,
    )
    .unwrap();
    assert_eq!(decoded.claims, claims(now));
    assert_eq!(decoded.header.typ.as_deref(), Some("at+jwt"));

    // PKCS#8 (RFC 8410) of the seed: a fixed prefix, then the 32 bytes.
    let seed = master()
        .open(&record.private_key, &private_key_binding(&record.kid))
        .unwrap();
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(&seed);
    let mut header = Header::new(Algorithm::EdDSA);
    header.typ = Some("at+jwt".into());
    header.kid = Some(record.kid.clone());
    let token =
        jsonwebtoken::encode(&header, &claims(now), &EncodingKey::from_ed_der(&der)).unwrap();
    assert_eq!(check(&token, &ring, now), Ok(claims(now)));
}
