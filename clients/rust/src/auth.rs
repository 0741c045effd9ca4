//! The API key on every call.

use tonic::{Request, Status, metadata::AsciiMetadataValue, service::Interceptor};

/// An interceptor that sets `authorization: Bearer <key>` on every request.
///
/// [`connect`](crate::connect) installs it; use it directly to wrap a channel of your own:
/// `UserServiceClient::with_interceptor(channel, ApiKey::new(key)?)`.
#[derive(Clone)]
pub struct ApiKey {
    header: AsciiMetadataValue,
}

/// The key cannot be sent as a metadata value (empty, or not visible ASCII).
#[derive(Debug, thiserror::Error)]
#[error("an API key must be non-empty visible ASCII without spaces")]
pub struct InvalidApiKey;

impl ApiKey {
    pub fn new(key: &str) -> Result<Self, InvalidApiKey> {
        // Checked here rather than by the server: a key with a space or a control
        // character would otherwise fail every call with an opaque transport error.
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(InvalidApiKey);
        }
        let mut header: AsciiMetadataValue =
            format!("Bearer {key}").parse().map_err(|_| InvalidApiKey)?;
        // Keeps the key out of HPACK's tables and out of debug output.
        header.set_sensitive(true);
        Ok(Self { header })
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(..)")
    }
}

impl Interceptor for ApiKey {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.header.clone());
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_carries_the_bearer_key() {
        let mut key = ApiKey::new("k3y-abc").unwrap();
        let request = key.call(Request::new(())).unwrap();
        assert_eq!(
            request.metadata().get("authorization").unwrap(),
            "Bearer k3y-abc"
        );
    }

    #[test]
    fn a_key_set_by_the_caller_is_replaced_not_doubled() {
        let mut key = ApiKey::new("right").unwrap();
        let mut request = Request::new(());
        request
            .metadata_mut()
            .insert("authorization", "Bearer wrong".parse().unwrap());
        let request = key.call(request).unwrap();
        let values: Vec<_> = request.metadata().get_all("authorization").iter().collect();
        assert_eq!(values, ["Bearer right"]);
    }

    #[test]
    fn keys_that_cannot_be_sent_are_refused() {
        for bad in ["", "with space", "tab\tkey", "nul\0key", "é"] {
            assert!(ApiKey::new(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn debug_output_hides_the_key() {
        let key = ApiKey::new("secret-key").unwrap();
        assert!(!format!("{key:?}").contains("secret"));
    }
}
