//! The second factor (SPEC §12): TOTP codes (RFC 6238: HMAC-SHA-1, 6 digits, 30 s
//! steps, one step of skew either way) and one-time recovery codes.
//!
//! A code is accepted once: the store keeps the last step a code was accepted for and
//! accepts a code only for a later step (`Totp::matching_step` finds which step a code
//! belongs to; the store does the once). Recovery codes are kept as SHA-256 digests of
//! their normalised text.

use rand::Rng as _;
use sha2::{Digest as _, Sha256};
use totp_rs::{Algorithm, Builder, Secret};
use zeroize::Zeroizing;

/// Bytes of a TOTP secret (160 bits, RFC 4226's recommendation for HMAC-SHA-1).
pub const SECRET_BYTES: usize = 20;
/// Seconds a code is current for.
pub const STEP_SECONDS: u64 = 30;
/// Recovery codes issued at confirmation.
pub const RECOVERY_CODES: usize = 10;
/// Characters of a recovery code (without its dash): 10 from a 32-letter alphabet,
/// 50 bits.
const RECOVERY_CODE_CHARS: usize = 10;
/// No 0/o, 1/l/i: codes are read from paper and typed by people.
const RECOVERY_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// A user's TOTP generator, built from the secret's bytes.
pub struct Totp {
    inner: totp_rs::Totp,
}

impl Totp {
    /// `secret`: the raw bytes; `issuer`, `account`: what an authenticator app shows.
    pub fn new(secret: &[u8], issuer: &str, account: &str) -> Result<Totp, String> {
        // An `otpauth` label cannot hold ':'; the app then shows the issuer alone.
        let account: String = account.chars().filter(|c| *c != ':').collect();
        let issuer: String = issuer.chars().filter(|c| *c != ':').collect();
        Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(6)
            .with_skew(1)
            .with_step_duration(STEP_SECONDS)
            .with_secret(secret.to_vec())
            .with_account_name(account)
            .with_issuer(Some(issuer))
            .build()
            .map(|inner| Totp { inner })
            .map_err(|e| e.to_string())
    }

    /// A fresh random secret.
    pub fn generate_secret() -> Zeroizing<Vec<u8>> {
        let mut secret = Zeroizing::new(vec![0u8; SECRET_BYTES]);
        rand::rngs::OsRng.fill(secret.as_mut_slice());
        secret
    }

    /// The secret as base32 (RFC 4648, no padding), for typing into an app.
    pub fn secret_base32(secret: &[u8]) -> String {
        Secret::from(secret.to_vec()).to_base32()
    }

    /// The `otpauth://totp/...` URI of the secret.
    pub fn uri(&self) -> Result<String, String> {
        self.inner.to_url().map_err(|e| e.to_string())
    }

    /// The step (unix time / 30) within one step of `unix_time` whose code `code` is;
    /// `None` for any other text.
    pub fn matching_step(&self, code: &str, unix_time: u64) -> Option<u64> {
        if !is_totp_code(code) {
            return None;
        }
        self.inner.check(code, unix_time)
    }

    /// The code of the step containing `unix_time` (tests and tools).
    pub fn code_at(&self, unix_time: u64) -> String {
        self.inner.generate(unix_time).to_string()
    }
}

/// Six ASCII digits: the shape of a TOTP code (anything else may be a recovery code).
pub fn is_totp_code(code: &str) -> bool {
    code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit())
}

/// Ten fresh recovery codes, as shown to the user (`abcde-fghjk`).
pub fn generate_recovery_codes() -> Vec<String> {
    let mut rng = rand::rngs::OsRng;
    (0..RECOVERY_CODES)
        .map(|_| {
            let chars: String = (0..RECOVERY_CODE_CHARS)
                .map(|_| RECOVERY_ALPHABET[rng.gen_range(0..RECOVERY_ALPHABET.len())] as char)
                .collect();
            format!("{}-{}", &chars[..5], &chars[5..])
        })
        .collect()
}

/// The stored digest of a presented recovery code (case, dashes and spaces ignored),
/// or `None` when the text cannot be one.
pub fn recovery_code_digest(code: &str) -> Option<String> {
    let normal: String = code
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let valid = normal.len() == RECOVERY_CODE_CHARS
        && normal.bytes().all(|b| RECOVERY_ALPHABET.contains(&b));
    valid.then(|| hex::encode(Sha256::digest(normal.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 (secret "12345678901234567890"), the last six digits
    /// of its eight-digit values.
    #[test]
    fn codes_match_the_rfc_6238_test_vectors() {
        let totp = Totp::new(b"12345678901234567890", "tenancy", "a@example.com").unwrap();
        for (time, code) in [
            (59u64, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
            (20_000_000_000, "353130"),
        ] {
            assert_eq!(totp.code_at(time), code, "at {time}");
            assert_eq!(totp.matching_step(code, time), Some(time / 30));
        }
    }

    #[test]
    fn a_code_matches_one_step_either_side_and_no_further() {
        let totp = Totp::new(&Totp::generate_secret(), "tenancy", "a@example.com").unwrap();
        let now = 1_700_000_000u64;
        let step = now / 30;
        let code = totp.code_at(now);
        assert_eq!(totp.matching_step(&code, now), Some(step));
        assert_eq!(totp.matching_step(&code, now + 30), Some(step));
        assert_eq!(totp.matching_step(&code, now - 30), Some(step));
        assert_eq!(totp.matching_step(&code, now + 60), None);
        assert_eq!(totp.matching_step(&code, now - 60), None);
        for bad in ["", "12345", "1234567", "12345a", " 123456", "１２３４５６"] {
            assert_eq!(totp.matching_step(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn the_uri_names_the_issuer_and_account_and_carries_the_secret() {
        let secret = Totp::generate_secret();
        let totp = Totp::new(&secret, "tenancy", "a:b@example.com").unwrap();
        let uri = totp.uri().unwrap();
        assert!(uri.starts_with("otpauth://totp/"), "{uri}");
        assert!(uri.contains(&Totp::secret_base32(&secret)), "{uri}");
        assert!(uri.contains("issuer=tenancy"), "{uri}");
    }

    #[test]
    fn recovery_codes_are_random_and_read_back_in_any_case_or_spacing() {
        let codes = generate_recovery_codes();
        assert_eq!(codes.len(), 10);
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 10);
        let code = &codes[0];
        let digest = recovery_code_digest(code).unwrap();
        assert_eq!(
            recovery_code_digest(&code.to_uppercase()),
            Some(digest.clone())
        );
        assert_eq!(
            recovery_code_digest(&code.replace('-', " ")),
            Some(digest.clone())
        );
        assert_ne!(recovery_code_digest(&codes[1]), Some(digest));
        for bad in ["", "abc", "abcde-fghjk-x", "abcde-fghj0", "ÄÄÄÄÄ-ÄÄÄÄÄ"] {
            assert_eq!(recovery_code_digest(bad), None, "{bad:?}");
        }
    }
}
