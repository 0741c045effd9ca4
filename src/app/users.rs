//! User use cases: profile CRUD, passwords and sign-in.

use std::sync::atomic::Ordering;

use super::App;
use crate::hashing::Verification;
use crate::{
    domain::{
        Error, Result, etag,
        id::Id,
        idempotency::RequestKey,
        membership::Membership,
        password::Password,
        user::{Email, NewUser, User, UserChanges, UserFields, UserFilter},
        violations::Violations,
    },
    store::{Attempt, Credentials},
};

/// The one answer every failed sign-in gets, whatever the reason.
pub const SIGN_IN_FAILED: &str = "the email or password is incorrect, or this user cannot sign in";

/// How a request names a user.
pub enum UserLookup<'a> {
    Id(&'a str),
    Email(&'a str),
}

/// Parses a resource id field of a request.
pub fn parse_id(field: &str, text: &str) -> Result<Id> {
    Id::parse(text).map_err(|e| Error::invalid(field, e))
}

impl App {
    /// Creates a user; `password` may be empty (the user then cannot sign in).
    pub async fn create_user(
        &self,
        fields: &UserFields<'_>,
        password: &Password,
        key: Option<RequestKey>,
    ) -> Result<User> {
        let mut violations = Violations::new();
        let new = match NewUser::parse("user", fields) {
            Ok(new) => Some(new),
            Err(error) => {
                violations.absorb(error)?;
                None
            }
        };
        if !password.is_empty() {
            violations.check("password", password.check_policy(fields.email.trim()));
        }
        violations.finish()?;
        let new = new.expect("validated above");
        if let Some(key) = &key
            && let Some(first) = self.store.replay::<User>(key).await?
        {
            return Ok(first);
        }
        let hash = if password.is_empty() {
            None
        } else {
            Some(self.hasher.hash(password).await?)
        };
        self.store.create_user(new, hash, key.as_ref()).await
    }

    pub async fn get_user(&self, lookup: UserLookup<'_>) -> Result<User> {
        match lookup {
            UserLookup::Id(id) => self.store.get_user(parse_id("user_id", id)?).await,
            UserLookup::Email(email) => {
                let email = Email::parse(email).map_err(|e| Error::invalid("email", e))?;
                self.store.get_user_by_email(&email).await
            }
        }
    }

    /// A page of users and the token of the next one (empty at the end).
    pub async fn list_users(
        &self,
        query: &str,
        customer_id: &str,
        account_id: &str,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<User>, String)> {
        let mut violations = Violations::new();
        let optional_id = |violations: &mut Violations, field: &str, text: &str| {
            if text.trim().is_empty() {
                None
            } else {
                violations.check(field, Id::parse(text))
            }
        };
        let filter = UserFilter {
            query: Some(query.trim().to_lowercase()).filter(|q| !q.is_empty()),
            customer_id: optional_id(&mut violations, "customer_id", customer_id),
            account_id: optional_id(&mut violations, "account_id", account_id),
        };
        let canonical = filter.canonical();
        let page = self.page_request(&mut violations, &canonical, page_size, page_token)?;
        violations.finish()?;
        let page = self
            .store
            .list_users(&filter, page.expect("validated above"))
            .await?;
        Ok(self.page_answer(&canonical, page))
    }

    pub async fn update_user(
        &self,
        id: &str,
        etag_text: &str,
        mask: &[String],
        fields: &UserFields<'_>,
    ) -> Result<User> {
        let mut violations = Violations::new();
        let id = violations.check("user_id", Id::parse(id));
        let expected = match etag::parse("etag", etag_text) {
            Ok(expected) => expected,
            Err(error) => {
                violations.absorb(error)?;
                None
            }
        };
        let changes = match UserChanges::parse(mask, fields) {
            Ok(changes) => Some(changes),
            Err(error) => {
                violations.absorb(error)?;
                None
            }
        };
        violations.finish()?;
        let (id, changes) = (id.expect("validated"), changes.expect("validated"));
        self.store.update_user(id, expected, &changes).await
    }

    pub async fn delete_user(&self, id: &str, etag_text: &str) -> Result<()> {
        let id = parse_id("user_id", id)?;
        let expected = etag::parse("etag", etag_text)?;
        self.store.delete_user(id, expected).await
    }

    /// Operator reset: sets a new password without the old one.
    pub async fn set_password(&self, id: &str, password: &Password) -> Result<User> {
        let id = parse_id("user_id", id)?;
        let user = self.store.get_user(id).await?;
        password
            .check_policy(user.email.as_str())
            .map_err(|e| Error::invalid("password", e))?;
        let hash = self.hasher.hash(password).await?;
        self.store.set_password_hash(id, hash).await
    }

    /// The user changes their own password; the current one must be right.
    pub async fn change_password(
        &self,
        id: &str,
        current: &Password,
        new: &Password,
    ) -> Result<User> {
        let id = parse_id("user_id", id)?;
        let mut violations = Violations::new();
        if current.is_empty() {
            violations.add("current_password", "is required");
        }
        let credentials = self.store.credentials_by_id(id).await?;
        violations.check(
            "new_password",
            new.check_policy(credentials.user.email.as_str()),
        );
        violations.finish()?;
        // The current password is a guess like a sign-in's: it shares the throttle.
        let email = credentials.user.email.as_str();
        let attempt = self
            .store
            .reserve_sign_in_attempt(email, self.throttle)
            .await?;
        let verification = self
            .verify_counted(
                email,
                attempt,
                current,
                credentials.password_hash.as_deref(),
            )
            .await?;
        if !verification.matches {
            return Err(Error::Unauthenticated("the current password is incorrect"));
        }
        let hash = self.hasher.hash(new).await?;
        self.store.set_password_hash(id, hash).await
    }

    /// Signs a user in. Unknown email, wrong password, inactive and locked users all get
    /// `SIGN_IN_FAILED` after one argon2 verification, so neither the answer nor its
    /// timing tells them apart.
    pub async fn authenticate(
        &self,
        email: &str,
        password: &Password,
        totp_code: &str,
    ) -> Result<(User, Vec<Membership>)> {
        let mut violations = Violations::new();
        if email.trim().is_empty() {
            violations.add("email", "is required");
        }
        if password.is_empty() {
            violations.add("password", "is required");
        }
        violations.finish()?;
        // An address that can never be valid (too long, NUL, no domain) belongs to no
        // user: it gets the same verification and answer as an unknown one, and no
        // throttle row, so such guesses cannot fill the table.
        if email.contains('\0') {
            return self.fail_sign_in(password).await;
        }
        let email = match Email::parse(email) {
            Ok(email) => email.as_str().to_string(),
            Err(_) => return self.fail_sign_in(password).await,
        };

        let (attempt, credentials) = self.store.reserve_sign_in(&email, self.throttle).await?;
        let stored_hash = credentials
            .as_ref()
            .and_then(|c| c.password_hash.as_deref());
        let verification = self
            .verify_counted(&email, attempt, password, stored_hash)
            .await?;
        let (user, verified_hash) = match credentials {
            Some(Credentials {
                user,
                password_hash: Some(hash),
            }) if verification.matches => (user, hash),
            _ => return Err(Error::Unauthenticated(SIGN_IN_FAILED)),
        };
        if user.status != crate::domain::user::UserStatus::Active {
            return Err(Error::Unauthenticated(SIGN_IN_FAILED));
        }
        // Asked for only once the password was right (SPEC §12).
        if user.totp_enabled {
            self.check_second_factor(&user, &email, totp_code).await?;
        }
        let rehashed = if verification.needs_rehash {
            match self.hasher.hash(password).await {
                Ok(hash) => Some(hash),
                // The password is right; a busy pool only postpones the re-hash.
                Err(Error::ResourceExhausted(_)) => None,
                Err(error) => return Err(error),
            }
        } else {
            None
        };
        self.store
            .record_sign_in(user.id, &email, &verified_hash, rehashed)
            .await?
            .ok_or(Error::Unauthenticated(SIGN_IN_FAILED))
    }

    /// A sign-in that cannot succeed, at the cost of a real one: the dummy verification.
    async fn fail_sign_in<T>(&self, password: &Password) -> Result<T> {
        self.hasher.verify(password, None).await?;
        Err(Error::Unauthenticated(SIGN_IN_FAILED))
    }

    /// Verifies a password under the throttle of `email` after `attempt` was reserved:
    /// a locked email is checked against the dummy hash and never matches (same cost,
    /// same answer); a mismatch counts as a failure; a check the full pool turned away
    /// gives its slot back, so load alone locks no one out.
    async fn verify_counted(
        &self,
        email: &str,
        attempt: Attempt,
        password: &Password,
        stored_hash: Option<&str>,
    ) -> Result<Verification> {
        let stored_hash = if attempt == Attempt::Locked {
            None
        } else {
            stored_hash
        };
        let verification = match self.hasher.verify(password, stored_hash).await {
            Ok(verification) => verification,
            Err(error) => {
                self.store.release_sign_in_attempt(email, attempt).await?;
                return Err(error);
            }
        };
        if attempt == Attempt::Locked {
            self.sign_ins.refused_locked.fetch_add(1, Ordering::Relaxed);
        }
        if !verification.matches
            && self
                .store
                .record_sign_in_failure(email, self.throttle)
                .await?
        {
            self.sign_ins.lockouts.fetch_add(1, Ordering::Relaxed);
        }
        Ok(verification)
    }

    pub async fn list_user_memberships(&self, id: &str) -> Result<Vec<Membership>> {
        let id = parse_id("user_id", id)?;
        self.store.get_user(id).await?;
        self.store.memberships_of_user(id, false).await
    }
}
