//! Account recovery, email verification and the second factor (SPEC §12): one-time
//! tokens for a password reset or an email's proof, TOTP enrollment with recovery
//! codes, and the second-factor check of a sign-in.

use std::time::Duration;

use base64::{Engine as _, engine::general_purpose::STANDARD};
use chrono::{DateTime, Utc};
use zeroize::Zeroizing;

use super::{App, users::parse_id};
use crate::{
    domain::{
        Error, Result,
        id::Id,
        password::Password,
        second_factor::{Totp, generate_recovery_codes, is_totp_code, recovery_code_digest},
        secret_token::{SecretToken, presented_digest},
        user::{Email, User, UserStatus},
        violations::Violations,
    },
    signing::Sealed,
    store::TokenPurpose,
};

/// How long one-time tokens live.
#[derive(Debug, Clone, Copy)]
pub struct RecoverySettings {
    /// A password-reset token (SPEC: 30 minutes by default).
    pub reset_ttl: Duration,
    /// An email-verification token (24 hours by default).
    pub verification_ttl: Duration,
}

/// A one-time token as `RequestPasswordReset` and `RequestEmailVerification` answer it.
#[derive(Debug)]
pub struct IssuedToken {
    /// `None`: the email belongs to no ACTIVE user (the answer keeps its shape).
    pub token: Option<SecretToken>,
    pub expire_time: DateTime<Utc>,
}

/// Binds a sealed TOTP secret to its user: copied to another user's row it does not open.
fn totp_binding(user: Id) -> Vec<u8> {
    let mut binding = b"tenancy totp secret ".to_vec();
    binding.extend_from_slice(user.uuid().as_bytes());
    binding
}

fn not_a_token(field: &str) -> Error {
    Error::invalid(field, "is not a token this service issued")
}

impl App {
    /// `RequestPasswordReset`: a reset token for the ACTIVE user with `email`; for any
    /// other email, the same answer without a token, after about the same work.
    pub async fn request_password_reset(&self, email: &str) -> Result<IssuedToken> {
        if email.trim().is_empty() {
            return Err(Error::invalid("email", "is required"));
        }
        let email = Email::parse(email).map_err(|e| Error::invalid("email", e))?;
        let expire_time = Utc::now()
            + chrono::Duration::from_std(self.recovery.reset_ttl).map_err(Error::internal)?;
        let token = SecretToken::generate();
        let user = self.store.credentials_by_email(email.as_str()).await?;
        match user {
            Some(found) if found.user.status == UserStatus::Active => {
                self.store
                    .issue_user_token(
                        found.user.id,
                        TokenPurpose::PasswordReset,
                        email.as_str(),
                        token.digest(),
                        expire_time,
                    )
                    .await?;
                Ok(IssuedToken {
                    token: Some(token),
                    expire_time,
                })
            }
            _ => {
                self.store.issue_no_user_token(token.digest()).await?;
                Ok(IssuedToken {
                    token: None,
                    expire_time,
                })
            }
        }
    }

    /// `ResetPassword`: the new password (policy checked) for the user the token was
    /// issued to; the token is used up, every session ends, the lockout is cleared.
    pub async fn reset_password(&self, token: &str, new_password: &Password) -> Result<()> {
        let mut violations = Violations::new();
        let digest = if token.is_empty() {
            violations.add("token", "is required");
            None
        } else {
            let digest = presented_digest(token);
            if digest.is_none() {
                violations.absorb(not_a_token("token"))?;
            }
            digest
        };
        if new_password.is_empty() {
            violations.add("new_password", "is required");
        }
        violations.finish()?;
        let digest = digest.ok_or_else(|| not_a_token("token"))?;
        let user = self
            .store
            .user_of_token(&digest, TokenPurpose::PasswordReset)
            .await?;
        new_password
            .check_policy(user.email.as_str())
            .map_err(|e| Error::invalid("new_password", e))?;
        let hash = self.hasher.hash(new_password).await?;
        self.store.reset_password(&digest, hash).await?;
        Ok(())
    }

    /// `RequestEmailVerification`: a token that proves the user's current email.
    pub async fn request_email_verification(&self, user_id: &str) -> Result<IssuedToken> {
        let id = parse_id("user_id", user_id)?;
        let user = self.store.get_user(id).await?;
        let expire_time = Utc::now()
            + chrono::Duration::from_std(self.recovery.verification_ttl)
                .map_err(Error::internal)?;
        let token = SecretToken::generate();
        self.store
            .issue_user_token(
                id,
                TokenPurpose::EmailVerification,
                user.email.as_str(),
                token.digest(),
                expire_time,
            )
            .await?;
        Ok(IssuedToken {
            token: Some(token),
            expire_time,
        })
    }

    /// `VerifyEmail`.
    pub async fn verify_email(&self, token: &str) -> Result<User> {
        if token.is_empty() {
            return Err(Error::invalid("token", "is required"));
        }
        let digest = presented_digest(token).ok_or_else(|| not_a_token("token"))?;
        self.store.verify_email(&digest).await
    }

    /// `EnrollTotp`: a new secret for the user (not yet on): its base32 text and its
    /// `otpauth://` URI. The secret is stored only sealed under the master key.
    pub async fn enroll_totp(&self, user_id: &str) -> Result<(String, String)> {
        let id = parse_id("user_id", user_id)?;
        let user = self.store.get_user(id).await?;
        let secret = Totp::generate_secret();
        let totp = Totp::new(&secret, self.signing.issuer(), user.email.as_str())
            .map_err(Error::internal)?;
        let uri = totp.uri().map_err(Error::internal)?;
        let sealed = self.signing.seal(&secret, &totp_binding(id));
        self.store
            .enroll_totp(id, STANDARD.encode(sealed.as_bytes()))
            .await?;
        Ok((Totp::secret_base32(&secret), uri))
    }

    /// `ConfirmTotp`: turns the enrolled secret on given a current code of it; answers
    /// the ten recovery codes (shown only here).
    pub async fn confirm_totp(&self, user_id: &str, code: &str) -> Result<Vec<String>> {
        let mut violations = Violations::new();
        let id = violations.check("user_id", Id::parse(user_id));
        if !is_totp_code(code) {
            violations.add("code", "must be the 6 digits of a current code");
        }
        violations.finish()?;
        let id = id.ok_or_else(|| Error::internal("validated above"))?;
        let user = self.store.get_user(id).await?;
        let stored = self.store.totp_of(id).await?;
        let Some(stored) = stored.filter(|stored| !stored.confirmed) else {
            return Err(Error::FailedPrecondition {
                kind: if user.totp_enabled {
                    "SECOND_FACTOR_ENABLED"
                } else {
                    "NO_TOTP_ENROLLMENT"
                },
                subject: format!("users/{id}"),
                description: "there is no second factor being enrolled: call EnrollTotp first"
                    .into(),
            });
        };
        let secret = self.open_totp_secret(id, &stored.sealed_secret)?;
        let totp = Totp::new(&secret, self.signing.issuer(), user.email.as_str())
            .map_err(Error::internal)?;
        let step = totp.matching_step(code, unix_now()).ok_or_else(|| {
            Error::invalid("code", "is not a current code of the enrolled secret")
        })?;
        let codes = generate_recovery_codes();
        let digests = codes
            .iter()
            .filter_map(|code| recovery_code_digest(code))
            .collect();
        self.store
            .confirm_totp(id, i64::try_from(step).map_err(Error::internal)?, digests)
            .await?;
        Ok(codes)
    }

    /// `DisableTotp`.
    pub async fn disable_totp(&self, user_id: &str) -> Result<User> {
        let id = parse_id("user_id", user_id)?;
        self.store.disable_totp(id).await
    }

    /// The second factor of a sign-in whose password was right, for a user who has one:
    /// a current TOTP code of a step not yet used, or an unused recovery code. A missing
    /// code is `SecondFactorRequired`; a wrong or replayed one too, and it counts as a
    /// failure of the email's sign-in lockout.
    pub(super) async fn check_second_factor(
        &self,
        user: &User,
        email: &str,
        code: &str,
    ) -> Result<()> {
        let code = code.trim();
        if code.is_empty() {
            return Err(Error::SecondFactorRequired { wrong_code: false });
        }
        let accepted = if is_totp_code(code) {
            match self.store.totp_of(user.id).await? {
                Some(stored) if stored.confirmed => {
                    let secret = self.open_totp_secret(user.id, &stored.sealed_secret)?;
                    let totp = Totp::new(&secret, self.signing.issuer(), user.email.as_str())
                        .map_err(Error::internal)?;
                    match totp.matching_step(code, unix_now()) {
                        Some(step) => {
                            self.store
                                .accept_totp_step(
                                    user.id,
                                    i64::try_from(step).map_err(Error::internal)?,
                                )
                                .await?
                        }
                        None => false,
                    }
                }
                _ => false,
            }
        } else {
            match recovery_code_digest(code) {
                Some(digest) => self.store.use_recovery_code(user.id, &digest).await?,
                None => false,
            }
        };
        if accepted {
            return Ok(());
        }
        if self
            .store
            .record_sign_in_failure(email, self.throttle)
            .await?
        {
            self.sign_ins
                .lockouts
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Err(Error::SecondFactorRequired { wrong_code: true })
    }

    fn open_totp_secret(&self, user: Id, stored: &str) -> Result<Zeroizing<Vec<u8>>> {
        let sealed = STANDARD
            .decode(stored)
            .map_err(|_| Error::internal("a stored TOTP secret is not base64"))?;
        self.signing
            .open(&Sealed::from_bytes(sealed), &totp_binding(user))
            .map_err(|e| Error::internal(format!("a stored TOTP secret: {e}")))
    }
}

fn unix_now() -> u64 {
    u64::try_from(Utc::now().timestamp()).unwrap_or(0)
}
