//! What of a create request enters its idempotency fingerprint: the encoded request
//! without its secret fields. A fingerprint is stored beside the server secret that keys
//! it, so a password in it could be guessed at HMAC speed from a copy of the database;
//! without them, a retry that differs only in a secret replays the first result.
//!
//! Fields are recognised by name, anywhere in the request (`new_owner.password`,
//! `new_user.password`), so a request added to `proto/` is covered without its handler
//! doing anything.

use std::sync::LazyLock;

use prost::encoding::{decode_varint, encode_varint};
use prost_reflect::{DescriptorPool, MessageDescriptor};

use super::input::descriptor_pool;
use crate::domain::{Error, Result};

/// Names of the fields that never enter a fingerprint.
pub const SECRET_FIELDS: &[&str] = &["password", "current_password", "new_password", "token"];

/// Secret fields that enter a fingerprint as their SHA-256 digest: an invitation token
/// names what is accepted, so a request id reused with another token must not replay
/// the first acceptance. The database already keeps each token's digest, so the
/// fingerprint reveals nothing more.
const DIGESTED_FIELDS: &[&str] = &["token"];

static POOL: LazyLock<Option<DescriptorPool>> = LazyLock::new(|| descriptor_pool().ok());

/// The input message of the RPC named `method` (`CreateUser`, or a full path such as
/// `/tenancy.v1.UserService/CreateUser`) in any service.
fn input_of(method: &str) -> Option<MessageDescriptor> {
    let pool = POOL.as_ref()?;
    let method = method.rsplit(['/', '.']).next().unwrap_or(method);
    pool.services()
        .flat_map(|service| service.methods().collect::<Vec<_>>())
        .find(|m| m.name() == method)
        .map(|m| m.input())
}

/// `encoded` (a `method` request, as prost encodes it) without its secret fields.
pub fn without_secrets(method: &str, encoded: &[u8]) -> Result<Vec<u8>> {
    let input = input_of(method)
        .ok_or_else(|| Error::internal(format!("{method} is not an RPC of proto/")))?;
    let mut out = Vec::with_capacity(encoded.len());
    strip(&input, encoded, &mut out)?;
    Ok(out)
}

/// Copies the fields of one message, dropping secret ones and rewriting nested
/// messages that held some. Field order and bytes are kept, so the output is as
/// deterministic as prost's encoding.
fn strip(message: &MessageDescriptor, mut bytes: &[u8], out: &mut Vec<u8>) -> Result<()> {
    let malformed = |what: &str| Error::internal(format!("cannot fingerprint the request: {what}"));
    while !bytes.is_empty() {
        let start = bytes;
        let key = decode_varint(&mut bytes).map_err(|_| malformed("bad tag"))?;
        let (number, wire_type) = ((key >> 3) as u32, key & 7);
        let payload: Option<&[u8]> = match wire_type {
            0 => {
                decode_varint(&mut bytes).map_err(|_| malformed("bad varint"))?;
                None
            }
            1 | 5 => {
                let width = if wire_type == 1 { 8 } else { 4 };
                bytes = bytes.get(width..).ok_or_else(|| malformed("truncated"))?;
                None
            }
            2 => {
                let len = decode_varint(&mut bytes).map_err(|_| malformed("bad length"))?;
                let len = usize::try_from(len).map_err(|_| malformed("bad length"))?;
                let payload = bytes.get(..len).ok_or_else(|| malformed("truncated"))?;
                bytes = &bytes[len..];
                Some(payload)
            }
            _ => return Err(malformed("unsupported wire type")),
        };
        let raw = &start[..start.len() - bytes.len()];
        let field = message.get_field(number);
        if let Some(name) = field
            .as_ref()
            .map(|f| f.name())
            .filter(|name| SECRET_FIELDS.contains(name))
        {
            if let (true, Some(payload)) = (DIGESTED_FIELDS.contains(&name), payload) {
                use sha2::Digest as _;
                let digest = sha2::Sha256::digest(payload);
                encode_varint(key, out);
                encode_varint(digest.len() as u64, out);
                out.extend_from_slice(&digest);
            }
            continue;
        }
        let nested = field
            .as_ref()
            .and_then(|f| f.kind().as_message().cloned())
            // The well-known types hold no secrets.
            .filter(|m| !m.full_name().starts_with("google.protobuf."));
        match (nested, payload) {
            (Some(nested), Some(payload)) => {
                let mut inner = Vec::with_capacity(payload.len());
                strip(&nested, payload, &mut inner)?;
                encode_varint(key, out);
                encode_varint(inner.len() as u64, out);
                out.extend_from_slice(&inner);
            }
            _ => out.extend_from_slice(raw),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;
    use crate::grpc::pb;

    #[test]
    fn secrets_anywhere_in_a_request_are_dropped_and_the_rest_is_kept() {
        let accept = |token: &str, password: &str, last_name: &str| pb::AcceptInvitationRequest {
            token: token.into(),
            acceptor: Some(pb::accept_invitation_request::Acceptor::NewUser(
                pb::NewUser {
                    first_name: "Ana".into(),
                    last_name: last_name.into(),
                    password: password.into(),
                },
            )),
            ..Default::default()
        };
        let strip = |r: &pb::AcceptInvitationRequest| {
            without_secrets("AcceptInvitation", &r.encode_to_vec()).unwrap()
        };
        assert_eq!(
            without_secrets(
                "/tenancy.v1.UserService/AcceptInvitation",
                &accept("t", "p", "S").encode_to_vec()
            )
            .unwrap(),
            strip(&accept("t", "q", "S"))
        );
        let first = strip(&accept("t1", "first secret", "Silva"));
        assert_eq!(first, strip(&accept("t1", "other secret", "Silva")));
        assert_ne!(first, strip(&accept("t1", "first secret", "Souza")));
        // Another token is another request; the token itself is not kept, its digest is.
        assert_ne!(first, strip(&accept("t2", "first secret", "Silva")));
        let digest = {
            use sha2::Digest as _;
            sha2::Sha256::digest(b"t1")
        };
        assert!(first.windows(digest.len()).any(|w| w == digest.as_slice()));
        assert!(
            !first
                .windows(b"first secret".len())
                .any(|w| w == b"first secret")
        );
    }

    #[test]
    fn every_password_and_token_field_of_the_contract_is_secret() {
        let pool = descriptor_pool().unwrap();
        for message in pool.all_messages() {
            for field in message.fields() {
                let name = field.name();
                let secret_looking = field.kind() == prost_reflect::Kind::String
                    && (name.contains("password") || name == "token");
                assert_eq!(
                    SECRET_FIELDS.contains(&name),
                    secret_looking,
                    "{} should be a secret field",
                    field.full_name()
                );
            }
        }
        let create_account = pb::CreateAccountRequest {
            customer_id: "c".into(),
            owner: Some(pb::create_account_request::Owner::NewOwner(pb::NewOwner {
                email: "a@example.com".into(),
                password: "one".into(),
                ..Default::default()
            })),
            ..Default::default()
        };
        let mut other = create_account.clone();
        if let Some(pb::create_account_request::Owner::NewOwner(owner)) = other.owner.as_mut() {
            owner.password = "two".into();
        }
        assert_eq!(
            without_secrets("CreateAccount", &create_account.encode_to_vec()).unwrap(),
            without_secrets("CreateAccount", &other.encode_to_vec()).unwrap()
        );
    }
}
