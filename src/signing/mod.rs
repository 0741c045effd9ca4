//! Signing: the master key that seals secrets at rest, the ring of Ed25519 keys that
//! sign access tokens (pending, signing, retired), the rotation planner, the access
//! tokens themselves and the JWKS that lets other services verify them offline.
//!
//! No tonic, no sea-orm: the store keeps [`SigningKeyRecord`]s (private halves sealed
//! under the [`MasterKey`]) and runs [`plan_rotation`] under a lock; the app opens a
//! [`KeyRing`] from the records and calls [`sign`]; the edge serves [`Jwks::published`].

mod jwks;
mod keys;
mod master_key;
mod master_key_sources;
mod rotation;
mod tokens;

pub use jwks::{Jwk, Jwks, VerifyingKeys};
pub use keys::{KeyRing, KeyRingError, KeySchedule, RingKey, SigningKeyRecord, thumbprint};
pub use master_key::{Fingerprint, MalformedFingerprint, MasterKey, Sealed, WrongMasterKey};
pub use master_key_sources::{
    GENERATED_FILE_NAME, MASTER_KEY_ENV, MASTER_KEY_FILE_FLAG, MasterKeyError, MasterKeyOrigin,
    MasterKeySources,
};
pub use rotation::{Retirement, RotationPlan, RotationPolicy, plan_forced_rotation, plan_rotation};
pub use tokens::{
    AccessClaims, Audience, Expected, MAX_TOKEN_BYTES, SignError, TOKEN_TYPE, VerifyError, sign,
    verify,
};
