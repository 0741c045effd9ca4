//! One-time secrets handed to a caller once and kept only as digests: refresh tokens
//! (sessions), password-reset and email-verification tokens.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

/// Bytes of randomness in a token.
const TOKEN_BYTES: usize = 32;

/// 32 random bytes from the OS CSPRNG, URL-safe base64 (43 characters). Only its
/// SHA-256 digest is stored: 256 random bits make a fast digest impossible to reverse.
pub struct SecretToken {
    secret: String,
}

impl SecretToken {
    pub fn generate() -> SecretToken {
        let mut bytes = [0u8; TOKEN_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        SecretToken {
            secret: URL_SAFE_NO_PAD.encode(bytes),
        }
    }

    /// The text given to the caller, once.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    pub fn digest(&self) -> String {
        digest_of(&self.secret)
    }
}

impl std::fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretToken(…)")
    }
}

/// The stored digest of a presented token, or `None` when the text cannot be one this
/// service issued (wrong length or alphabet): such a token is refused without a
/// database lookup.
pub fn presented_digest(text: &str) -> Option<String> {
    let decoded = URL_SAFE_NO_PAD.decode(text.as_bytes()).ok()?;
    (decoded.len() == TOKEN_BYTES && URL_SAFE_NO_PAD.encode(&decoded) == text)
        .then(|| digest_of(text))
}

fn digest_of(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_32_random_bytes_and_only_its_own_text_has_its_digest() {
        let token = SecretToken::generate();
        assert_eq!(token.secret().len(), 43);
        assert_eq!(presented_digest(token.secret()), Some(token.digest()));
        assert_ne!(token.secret(), SecretToken::generate().secret());
        assert!(!format!("{token:?}").contains(token.secret()));
    }

    #[test]
    fn malformed_tokens_have_no_digest() {
        let token = SecretToken::generate();
        let truncated = &token.secret()[..42];
        let padded = format!("{}=", token.secret());
        let longer = format!("{}AA", token.secret());
        for bad in [
            "",
            "x",
            truncated,
            &padded,
            &longer,
            "not base64 at all!!",
            "\0",
        ] {
            assert_eq!(presented_digest(bad), None, "{bad:?}");
        }
    }
}
