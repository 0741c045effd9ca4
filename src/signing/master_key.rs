//! The master key: 32 bytes that seal every secret tenancy keeps at rest (the signing
//! keys' private halves, TOTP secrets), and the fingerprint that tells a start with the
//! wrong one apart.

use std::{fmt, str::FromStr};

use base64::{
    Engine as _, alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig, general_purpose::STANDARD},
};
use chacha20poly1305::{
    AeadInOut as _, KeyInit as _, Tag, XChaCha20Poly1305, XNonce,
    aead::{Error as AeadError, inout::InOutBuf},
};
use hmac::{Hmac, Mac as _};
use rand::RngCore as _;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::master_key_sources::MasterKeyError;

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// The first byte of every [`Sealed`]: the algorithm, so another can be added later.
const SEALED_V1: u8 = 1;
const FINGERPRINT_LABEL: &[u8] = b"tenancy master key fingerprint v1";

/// Accepts the base64 of `openssl rand -base64 32` with or without its padding.
const KEY_TEXT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The 32-byte key that seals secrets at rest (XChaCha20-Poly1305). Zeroed on drop;
/// its `Debug` shows only the [`Fingerprint`].
pub struct MasterKey {
    bytes: Zeroizing<[u8; KEY_LEN]>,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

/// A secret sealed by [`MasterKey::seal`]: `version ‖ nonce (24) ‖ ciphertext ‖ tag (16)`.
/// The store keeps [`Sealed::as_bytes`] as is and gives it back with [`Sealed::from_bytes`].
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed(Vec<u8>);

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed({} bytes)", self.0.len())
    }
}

impl Sealed {
    /// Takes stored bytes back; whether they open is only known to [`MasterKey::open`].
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// [`MasterKey::open`] failed: the ciphertext was sealed under another master key, for
/// other associated data (another row), or was altered. These cannot be told apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the master key does not open this secret (another master key, another row, or altered bytes)"
)]
pub struct WrongMasterKey;

/// Names a master key without revealing it: the first 8 bytes of
/// HMAC-SHA256(key, fixed label), shown as 16 hex digits. Stored beside what the key
/// sealed, so a start with another key is named before anything is decrypted.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 8]);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// A stored fingerprint is not 16 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a master key fingerprint is 16 hex digits, got {0:?}")]
pub struct MalformedFingerprint(pub String);

impl FromStr for Fingerprint {
    type Err = MalformedFingerprint;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0; 8];
        hex::decode_to_slice(text, &mut bytes).map_err(|_| MalformedFingerprint(text.into()))?;
        Ok(Self(bytes))
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self {
            bytes: Zeroizing::new(bytes),
        }
    }

    /// A new random key (the operating system's generator).
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0; KEY_LEN]);
        rand::rngs::OsRng.fill_bytes(bytes.as_mut());
        Self { bytes }
    }

    /// Parses the base64 of 32 bytes (surrounding white space ignored). `origin` names
    /// where the text came from (the variable or the file) in the error.
    pub fn from_base64(text: &str, origin: &str) -> Result<Self, MasterKeyError> {
        let decoded = Zeroizing::new(KEY_TEXT.decode(text.trim()).map_err(|e| {
            MasterKeyError::Malformed {
                origin: origin.into(),
                problem: format!("it is not base64 ({e})"),
            }
        })?);
        let bytes: [u8; KEY_LEN] =
            decoded
                .as_slice()
                .try_into()
                .map_err(|_| MasterKeyError::Malformed {
                    origin: origin.into(),
                    problem: format!("it decodes to {} bytes, not {KEY_LEN}", decoded.len()),
                })?;
        Ok(Self::from_bytes(bytes))
    }

    /// The key as the text [`MasterKey::from_base64`] reads (standard base64, padded).
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.bytes.as_ref()))
    }

    /// Encrypts `plaintext` under a fresh random nonce. `associated_data` is not stored
    /// but must be given again to [`MasterKey::open`]: it binds the ciphertext to its
    /// row (e.g. `b"signing key " + kid`, `b"totp secret " + user uuid`), so a
    /// ciphertext copied into another row does not open there.
    pub fn seal(&self, plaintext: &[u8], associated_data: &[u8]) -> Sealed {
        let mut nonce = [0; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut out = Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + TAG_LEN);
        out.push(SEALED_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let tag = self
            .cipher()
            .encrypt_inout_detached(
                &XNonce::from(nonce),
                associated_data,
                InOutBuf::from(&mut out[1 + NONCE_LEN..]),
            )
            // The only failure is a plaintext past 256 GiB.
            .unwrap_or_else(|AeadError| panic!("a sealed secret is {} bytes", plaintext.len()));
        out.extend_from_slice(&tag);
        Sealed(out)
    }

    /// Decrypts what [`MasterKey::seal`] made with the same key and associated data;
    /// the plaintext is zeroed when dropped.
    pub fn open(
        &self,
        sealed: &Sealed,
        associated_data: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, WrongMasterKey> {
        let bytes = sealed.as_bytes();
        let (&version, rest) = bytes.split_first().ok_or(WrongMasterKey)?;
        if version != SEALED_V1 || rest.len() < NONCE_LEN + TAG_LEN {
            return Err(WrongMasterKey);
        }
        let (nonce, rest) = rest.split_at(NONCE_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        let nonce = XNonce::try_from(nonce).map_err(|_| WrongMasterKey)?;
        let tag = Tag::try_from(tag).map_err(|_| WrongMasterKey)?;
        let mut plaintext = Zeroizing::new(ciphertext.to_vec());
        self.cipher()
            .decrypt_inout_detached(
                &nonce,
                associated_data,
                InOutBuf::from(plaintext.as_mut_slice()),
                &tag,
            )
            .map_err(|AeadError| WrongMasterKey)?;
        Ok(plaintext)
    }

    pub fn fingerprint(&self) -> Fingerprint {
        let mut mac = <Hmac<Sha256>>::new_from_slice(self.bytes.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(FINGERPRINT_LABEL);
        let digest = mac.finalize().into_bytes();
        let mut short = [0; 8];
        short.copy_from_slice(&digest[..8]);
        Fingerprint(short)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&(*self.bytes).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> MasterKey {
        MasterKey::from_bytes([byte; KEY_LEN])
    }

    #[test]
    fn a_sealed_secret_opens_with_the_same_key_and_associated_data() {
        let master = key(7);
        let sealed = master.seal(b"the secret", b"signing key k1");
        assert!(!sealed.as_bytes().windows(10).any(|w| w == b"the secret"));
        let opened = master.open(&sealed, b"signing key k1").unwrap();
        assert_eq!(opened.as_slice(), b"the secret");
    }

    #[test]
    fn sealing_twice_uses_a_fresh_nonce_each_time() {
        let master = key(7);
        assert_ne!(master.seal(b"same", b"row"), master.seal(b"same", b"row"));
    }

    #[test]
    fn another_master_key_does_not_open_a_secret() {
        let sealed = key(7).seal(b"the secret", b"row 1");
        assert_eq!(key(8).open(&sealed, b"row 1"), Err(WrongMasterKey));
    }

    #[test]
    fn a_secret_moved_to_another_row_does_not_open() {
        let master = key(7);
        let sealed = master.seal(b"the secret", b"totp secret user-1");
        assert_eq!(
            master.open(&sealed, b"totp secret user-2"),
            Err(WrongMasterKey)
        );
    }

    #[test]
    fn altered_or_truncated_bytes_do_not_open() {
        let master = key(7);
        let sealed = master.seal(b"the secret", b"row");
        for i in 0..sealed.as_bytes().len() {
            let mut bytes = sealed.as_bytes().to_vec();
            bytes[i] ^= 1;
            assert_eq!(
                master.open(&Sealed::from_bytes(bytes), b"row"),
                Err(WrongMasterKey)
            );
        }
        let short = Sealed::from_bytes(sealed.as_bytes()[..20].to_vec());
        assert_eq!(master.open(&short, b"row"), Err(WrongMasterKey));
    }

    #[test]
    fn the_fingerprint_tells_keys_apart_and_reads_back_from_its_text() {
        let fingerprint = key(7).fingerprint();
        assert_eq!(fingerprint, key(7).fingerprint());
        assert_ne!(fingerprint, key(8).fingerprint());
        assert_eq!(fingerprint.to_string().len(), 16);
        assert_eq!(
            fingerprint.to_string().parse::<Fingerprint>(),
            Ok(fingerprint)
        );
        assert!("not hex".parse::<Fingerprint>().is_err());
    }

    #[test]
    fn debug_never_shows_the_key_bytes() {
        let master = MasterKey::generate();
        assert_eq!(
            format!("{master:?}"),
            format!(
                "MasterKey {{ fingerprint: Fingerprint({}), .. }}",
                master.fingerprint()
            )
        );
    }
}
