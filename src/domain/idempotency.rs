//! `request_id` retries: a create carries the request id and a keyed fingerprint of its
//! body; a retry with the same body replays the first result, another body is refused.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{error::Error, id::Id};

/// The idempotency key of one create request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestKey {
    pub request_id: Id,
    /// HMAC of the method and the encoded request without its `request_id`. Keyed, so a
    /// stored fingerprint of a body holding a password cannot be brute-forced offline.
    pub fingerprint: String,
}

fn keyed(secret: &[u8; 32]) -> Hmac<Sha256> {
    <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length")
}

impl RequestKey {
    /// Builds the key from the request's `request_id` field (empty = no idempotency).
    /// A request id belongs to the API key that sent it (`caller`): the id stored is
    /// derived from both, so another key reusing it neither replays the first result
    /// nor learns that the id was used.
    pub fn new(
        secret: &[u8; 32],
        caller: Option<Id>,
        request_id: &str,
        method: &str,
        body_without_request_id: &[u8],
    ) -> Result<Option<Self>, Error> {
        if request_id.trim().is_empty() {
            return Ok(None);
        }
        let uuid = uuid::Uuid::try_parse(request_id.trim())
            .map_err(|_| Error::invalid("request_id", "must be a UUID"))?;
        let stored = match caller {
            Some(caller) => {
                let mut mac = keyed(secret);
                mac.update(b"request id of a caller\0");
                mac.update(caller.uuid().as_bytes());
                mac.update(uuid.as_bytes());
                let digest = mac.finalize().into_bytes();
                let mut bytes = [0u8; 16];
                bytes.copy_from_slice(&digest[..16]);
                uuid::Uuid::from_bytes(bytes)
            }
            None => uuid,
        };
        let mut mac = keyed(secret);
        mac.update(method.as_bytes());
        mac.update(&[0]);
        mac.update(body_without_request_id);
        Ok(Some(Self {
            request_id: Id::from_uuid(stored),
            fingerprint: hex::encode(mac.finalize().into_bytes()),
        }))
    }

    /// The error for a request id reused with another body.
    pub fn mismatch() -> Error {
        Error::invalid(
            "request_id",
            "was already used with a different request body",
        )
    }
}
