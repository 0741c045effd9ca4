//! SessionService's use cases (SPEC §11): a sign-in that yields a session, its refresh,
//! revocation and listing, and the keys that verify its access tokens.
//!
//! The key ring lives here: built at start from the stored keys (rotating them first),
//! then rebuilt after a rotation pass every `--signing-key-refresh-seconds` (at most 30),
//! so every instance publishes a successor within that time of its creation (long before
//! it signs: a successor is published at least a minute ahead) and signs with the key the
//! database says.

use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::{App, users::parse_id};
use crate::{
    domain::{
        Error, Result,
        id::Id,
        membership::PERMISSIONS,
        password::Password,
        session::{Lifetimes, RefreshToken, RevokeReason, Session, presented_digest},
        violations::Violations,
    },
    signing::{
        AccessClaims, Audience, Jwks, KeyRing, KeyRingError, MasterKey, RotationPlan,
        RotationPolicy, Sealed, SigningKeyRecord, WrongMasterKey, plan_forced_rotation,
        plan_rotation, sign,
    },
    store::{REFRESH_REFUSED, SessionGrant, Store},
};

/// What access tokens say about their issuer, and the keys that sign them.
pub struct TokenSettings {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub lifetimes: Lifetimes,
    /// How long a key signs before a successor is made; `None`: never by itself.
    pub rotation_period: Option<Duration>,
    /// How often each instance runs a rotation pass and rebuilds its ring: shorter than
    /// the time a successor is published before it signs.
    pub refresh_every: Duration,
}

/// The signing side of the use cases: the ring (rebuilt as keys rotate), the master key
/// that opens it, and the token settings.
pub struct Signing {
    ring: RwLock<Arc<KeyRing>>,
    master: MasterKey,
    issuer: String,
    audience: Audience,
    pub(super) lifetimes: Lifetimes,
    policy: RotationPolicy,
    automatic: bool,
    refresh_every: Duration,
}

/// A session as a sign-in or a refresh answers it: the tokens are shown this once.
#[derive(Debug)]
pub struct IssuedSession {
    pub session: Session,
    pub access_token: String,
    pub access_token_expire_time: DateTime<Utc>,
    pub refresh_token: RefreshToken,
}

impl Signing {
    /// Rotates the stored keys as due (making the first one on a new database), then
    /// opens them. A master key that does not open them stops here, before any token
    /// is issued.
    pub async fn start(
        store: &Store,
        master: MasterKey,
        settings: TokenSettings,
    ) -> std::result::Result<Signing, String> {
        let policy = RotationPolicy {
            rotation_period: settings
                .rotation_period
                .unwrap_or(RotationPolicy::default().rotation_period),
            ..RotationPolicy::default()
        };
        let empty = KeyRing::open(&[], &master).map_err(|e| e.to_string())?;
        let signing = Signing {
            ring: RwLock::new(Arc::new(empty)),
            master,
            issuer: settings.issuer,
            audience: Audience::new(settings.audiences),
            lifetimes: settings.lifetimes,
            policy,
            automatic: settings.rotation_period.is_some(),
            refresh_every: settings.refresh_every,
        };
        signing
            .refresh(store, false)
            .await
            .map_err(|e| format!("the signing keys: {e}"))?;
        Ok(signing)
    }

    /// One rotation pass (scheduled, or `forced` as `signing-keys rotate` asks), then
    /// the ring rebuilt from what is stored.
    pub async fn refresh(&self, store: &Store, forced: bool) -> Result<()> {
        let now = store.database_clock().await?;
        let (policy, automatic) = (self.policy, self.automatic);
        rotate_opened(store, &self.master, now, |records| {
            let mut plan = if forced {
                plan_forced_rotation(records, now, &policy)
            } else {
                plan_rotation(records, now, &policy)
            };
            // With rotation off, only the first key is made; retirements of keys that an
            // operator's rotation superseded still happen.
            if !automatic && !forced && !records.is_empty() {
                plan.add_key_signing_from = None;
            }
            // The first key signs from a little before now: an instance whose clock lags
            // the database's would otherwise have no key to sign with at first.
            if records.is_empty() {
                plan.add_key_signing_from = plan
                    .add_key_signing_from
                    .map(|from| from - chrono::Duration::minutes(5));
            }
            plan
        })
        .await?;
        let records = store.signing_key_records().await?;
        let ring = KeyRing::open(&records, &self.master).map_err(unopened)?;
        *self.ring.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(ring);
        Ok(())
    }

    /// The `iss` of access tokens (also the issuer an authenticator app shows).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Seals a secret at rest under the master key, bound to `associated_data`.
    pub fn seal(&self, plaintext: &[u8], associated_data: &[u8]) -> Sealed {
        self.master.seal(plaintext, associated_data)
    }

    /// Opens what `seal` sealed with the same `associated_data`.
    pub fn open(
        &self,
        sealed: &Sealed,
        associated_data: &[u8],
    ) -> std::result::Result<zeroize::Zeroizing<Vec<u8>>, WrongMasterKey> {
        self.master.open(sealed, associated_data)
    }

    fn ring(&self) -> Arc<KeyRing> {
        self.ring.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The JWKS document at `now`.
    pub fn jwks(&self, now: DateTime<Utc>) -> Jwks {
        Jwks::published(&self.ring(), now)
    }

    /// Signs the access token of `grant`, valid from `now` for the access-token lifetime.
    fn access_token(
        &self,
        grant: &SessionGrant,
        now: DateTime<Utc>,
    ) -> Result<(String, DateTime<Utc>)> {
        let expires = now
            + chrono::Duration::from_std(self.lifetimes.access_token).map_err(Error::internal)?;
        let (permissions, owner) = match &grant.membership {
            Some(membership) if membership.owner => {
                (PERMISSIONS.iter().map(|p| p.to_string()).collect(), true)
            }
            Some(membership) => (membership.permissions.clone(), false),
            None => (Vec::new(), false),
        };
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: grant.user.id.uuid(),
            sid: grant.session.id.uuid(),
            iat: now.timestamp(),
            exp: expires.timestamp(),
            jti: Id::generate().uuid(),
            email: grant.user.email.as_str().to_string(),
            email_verified: grant.user.email_verified,
            customer_id: grant.session.customer_id.map(|id| id.uuid()),
            permissions,
            owner,
            roles: grant
                .membership
                .as_ref()
                .map(|membership| membership.roles.clone())
                .unwrap_or_default(),
        };
        let token = sign(&self.ring(), &claims, now).map_err(Error::internal)?;
        Ok((
            token,
            chrono::DateTime::from_timestamp(claims.exp, 0).unwrap_or(expires),
        ))
    }
}

/// One stored signing key as `tenancy signing-keys list` shows it.
#[derive(Debug, Clone)]
pub struct KeyStatus {
    pub kid: String,
    /// `pending` (published, signs later), `signing`, `superseded` (a newer key signs;
    /// retired at the next rotation pass), `retired` (published until its last token
    /// expired).
    pub state: &'static str,
    pub created_at: DateTime<Utc>,
    pub signs_from: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
    pub published_until: Option<DateTime<Utc>>,
}

/// The stored keys, oldest first, after checking that `master` opens them.
pub async fn list_signing_keys(store: &Store, master: &MasterKey) -> Result<Vec<KeyStatus>> {
    let records = store.signing_key_records().await?;
    let ring = KeyRing::open(&records, master).map_err(unopened)?;
    let now = store.database_clock().await?;
    let signing = ring.signing_key(now).map(|key| key.kid().to_string());
    let mut keys: Vec<KeyStatus> = records
        .iter()
        .map(|record| {
            let schedule = &record.schedule;
            KeyStatus {
                kid: record.kid.clone(),
                state: if signing.as_deref() == Some(record.kid.as_str()) {
                    "signing"
                } else if schedule.retired_at.is_some() {
                    "retired"
                } else if schedule.signs_from > now {
                    "pending"
                } else {
                    "superseded"
                },
                created_at: schedule.created_at,
                signs_from: schedule.signs_from,
                retired_at: schedule.retired_at,
                published_until: schedule.published_until,
            }
        })
        .collect();
    keys.sort_by_key(|key| (key.signs_from, key.created_at));
    Ok(keys)
}

/// Adds a successor key now (`tenancy signing-keys rotate`): published at once, it
/// signs `publish_ahead` later (the longest access-token lifetime of the servers), and
/// the current key then retires. Answers the new key's id, or `None` when a successor
/// was already pending. A master key that does not open the stored keys changes nothing.
pub async fn rotate_signing_keys(
    store: &Store,
    master: &MasterKey,
    publish_ahead: Duration,
) -> Result<Option<String>> {
    let now = store.database_clock().await?;
    let policy = RotationPolicy {
        max_access_token_lifetime: publish_ahead,
        ..RotationPolicy::default()
    };
    rotate_opened(store, master, now, |records| RotationPlan {
        // Only the successor: the servers' passes retire and drop keys after the
        // longest lifetime any token may have, not after this run's `publish_ahead`
        // (a key retired here would leave the JWKS while its last tokens are valid).
        retire: Vec::new(),
        drop: Vec::new(),
        ..plan_forced_rotation(records, now, &policy)
    })
    .await
}

/// Applies the rotation that `plan` makes of the stored keys, in the store's lock, once
/// `master` opens every one of them: an instance or a command started with another
/// master key changes nothing (a key it sealed would lock the right one out). Answers
/// the id of the key it added, if any.
async fn rotate_opened(
    store: &Store,
    master: &MasterKey,
    now: DateTime<Utc>,
    plan: impl FnOnce(&[SigningKeyRecord]) -> RotationPlan,
) -> Result<Option<String>> {
    let mut refused = None;
    let mut added = None;
    store
        .rotate_signing_keys(|records| {
            if let Err(error) = KeyRing::open(records, master) {
                refused = Some(error);
                return (RotationPlan::default(), None);
            }
            let plan = plan(records);
            let key = plan.new_key(master, now);
            added = key.as_ref().map(|key| key.kid.clone());
            (plan, key)
        })
        .await?;
    match refused {
        Some(error) => Err(unopened(error)),
        None => Ok(added),
    }
}

/// The stored keys do not open with this master key: the operator must start with the
/// right one (the message says which key was expected).
fn unopened(error: KeyRingError) -> Error {
    Error::FailedPrecondition {
        kind: "SIGNING_KEYS_NOT_OPENED",
        subject: "signing keys".into(),
        description: error.to_string(),
    }
}

/// Rotates and rebuilds the ring every `refresh_every` until shutdown.
pub(super) async fn refresh_ring(
    store: Store,
    signing: Arc<Signing>,
    mut shutting_down: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(signing.refresh_every) => {}
            _ = shutting_down.wait_for(|down| *down) => return,
        }
        if let Err(error) = signing.refresh(&store, false).await {
            tracing::warn!(%error, "refreshing the signing keys failed; the current ones stay");
        }
    }
}

impl App {
    /// Signs a user in (exactly as `authenticate` does: one lockout, one answer for
    /// every wrong credential) and starts a session, acting in `customer_id` when given
    /// (`PermissionDenied` unless the user may: said only after the password was right).
    pub async fn create_session(
        &self,
        email: &str,
        password: &Password,
        customer_id: &str,
        totp_code: &str,
    ) -> Result<IssuedSession> {
        let customer = optional_id("customer_id", customer_id)?;
        let (user, _) = self.authenticate(email, password, totp_code).await?;
        let refresh_token = RefreshToken::generate();
        let grant = self
            .store
            .create_session(
                user,
                customer,
                refresh_token.digest(),
                &self.signing.lifetimes,
            )
            .await?;
        self.issue(grant, refresh_token).await
    }

    /// Redeems a refresh token for new tokens, switching the active customer to
    /// `customer_id` when given. A malformed token is refused like an unknown one.
    pub async fn refresh_session(
        &self,
        refresh_token: &str,
        customer_id: &str,
    ) -> Result<IssuedSession> {
        let customer = optional_id("customer_id", customer_id)?;
        let presented =
            presented_digest(refresh_token).ok_or(Error::Unauthenticated(REFRESH_REFUSED))?;
        let issued = RefreshToken::generate();
        let grant = self
            .store
            .refresh_session(
                &presented,
                issued.digest(),
                customer,
                &self.signing.lifetimes,
            )
            .await?;
        self.issue(grant, issued).await
    }

    /// Signs the access token of `grant`, whose `permissions` claim is the membership's
    /// effective permissions: its own and its roles' (the rule `CheckAccess` applies).
    async fn issue(
        &self,
        mut grant: SessionGrant,
        refresh_token: RefreshToken,
    ) -> Result<IssuedSession> {
        if let (Some(membership), Some(customer_id)) =
            (grant.membership.as_mut(), grant.session.customer_id)
            && !membership.roles.is_empty()
        {
            let roles = self
                .store
                .role_grants(customer_id, &membership.roles)
                .await?;
            membership.permissions = crate::domain::role::effective_permissions(
                &membership.permissions,
                roles.iter().map(|role| role.permissions.as_slice()),
            );
        }
        let (access_token, access_token_expire_time) =
            self.signing.access_token(&grant, chrono::Utc::now())?;
        Ok(IssuedSession {
            session: grant.session,
            access_token,
            access_token_expire_time,
            refresh_token,
        })
    }

    /// Ends one session (sign-out).
    pub async fn revoke_session(&self, session_id: &str) -> Result<()> {
        let id = parse_id("session_id", session_id)?;
        self.store.revoke_session(id, RevokeReason::SignedOut).await
    }

    /// Ends every active session of a user; answers how many.
    pub async fn revoke_user_sessions(&self, user_id: &str) -> Result<u64> {
        let id = parse_id("user_id", user_id)?;
        self.store
            .revoke_user_sessions(id, RevokeReason::UserSessionsRevoked)
            .await
    }

    /// A page of a user's sessions, newest first.
    pub async fn list_sessions(
        &self,
        user_id: &str,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<Session>, String)> {
        let mut violations = Violations::new();
        let id = violations.check("user_id", Id::parse(user_id));
        // Bound to the user as given: a token of another user's list is refused.
        let canonical = format!(
            "ListSessions|{}",
            id.map(|id| id.to_string()).unwrap_or_default()
        );
        let page = self.page_request(&mut violations, &canonical, page_size, page_token)?;
        violations.finish()?;
        let (Some(id), Some(page)) = (id, page) else {
            return Err(Error::internal(
                "a list request validated without its values",
            ));
        };
        self.store.get_user(id).await?;
        let sessions = self.store.list_sessions(id, page).await?;
        Ok(self.page_answer(&canonical, sessions))
    }

    /// The keys that verify access tokens now.
    pub fn jwks(&self) -> Jwks {
        self.signing.jwks(chrono::Utc::now())
    }
}

/// An optional resource id: empty is `None`.
fn optional_id(field: &str, text: &str) -> Result<Option<Id>> {
    if text.is_empty() {
        Ok(None)
    } else {
        parse_id(field, text).map(Some)
    }
}
