//! Users: the people who act on customers and accounts, and the rules for their fields.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    Result,
    id::Id,
    violations::{Refused, Violations},
};

pub const MAX_EMAIL_LEN: usize = 254;
pub const MAX_NAME_LEN: usize = 100;
pub const DEFAULT_LANGUAGE: &str = "en";

/// A syntactically valid email address, lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Email(String);

impl Email {
    /// RFC 5321/5322 syntax (no display name, no domain literal), a dotted domain and at
    /// most 254 characters; the address is lower-cased.
    pub fn parse(text: &str) -> Result<Email, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("is required".into());
        }
        if text.chars().count() > MAX_EMAIL_LEN {
            return Err(format!("must be at most {MAX_EMAIL_LEN} characters"));
        }
        let options = email_address::Options::default()
            .without_display_text()
            .without_domain_literal();
        let address = email_address::EmailAddress::parse_with_options(text, options)
            .map_err(|e| format!("is not a valid email address: {e}"))?;
        if !address.domain().contains('.') || address.domain().ends_with('.') {
            return Err("is not a valid email address: the domain needs a dot".into());
        }
        // One spelling per domain: `bücher.example` and `xn--bcher-kva.example` are the
        // same mailbox host, so both are stored in ASCII (IDNA, UTS #46) form.
        let domain = idna::domain_to_ascii(address.domain())
            .map_err(|_| "is not a valid email address: the domain is not a valid IDNA name")?;
        let normalised = format!("{}@{domain}", address.local_part().to_lowercase());
        if normalised.chars().count() > MAX_EMAIL_LEN {
            return Err(format!("must be at most {MAX_EMAIL_LEN} characters"));
        }
        Ok(Email(normalised))
    }

    /// An address read back from the database, where only `parse` results are
    /// written: checking it again would cost a point read more than its query.
    pub(crate) fn from_stored(text: String) -> Email {
        Email(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or_default()
    }
}

/// A first or last name: 1..100 characters after trimming.
pub fn parse_name(text: &str) -> Result<String, String> {
    let trimmed = text.trim();
    match trimmed.chars().count() {
        0 => Err("is required".into()),
        n if n > MAX_NAME_LEN => Err(format!("must be at most {MAX_NAME_LEN} characters")),
        _ if trimmed.chars().any(char::is_control) => {
            Err("must not contain control characters".into())
        }
        _ => Ok(trimmed.to_string()),
    }
}

/// A BCP 47 language tag, in canonical case (`pt-BR`); empty means the default `en`.
pub fn parse_language(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(DEFAULT_LANGUAGE.to_string());
    }
    let tag = language_tags::LanguageTag::parse(text)
        .map_err(|e| format!("is not a BCP 47 language tag: {e}"))?;
    tag.validate()
        .map_err(|e| format!("is not a valid BCP 47 language tag: {e}"))?;
    // language-tags writes the tag in BCP 47's canonical case (`pt-BR`, `zh-Hant-TW`).
    Ok(tag.as_str().to_string())
}

/// Whether a user may sign in and act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserStatus {
    Active,
    Inactive,
}

impl UserStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Inactive => "inactive",
        }
    }

    pub fn from_db(text: &str) -> Option<Self> {
        match text {
            "active" => Some(UserStatus::Active),
            "inactive" => Some(UserStatus::Inactive),
            _ => None,
        }
    }
}

/// A user as stored; the password hash is not part of it and never leaves the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: Id,
    pub email: Email,
    pub first_name: String,
    pub last_name: String,
    pub language: String,
    pub status: UserStatus,
    pub has_password: bool,
    pub last_login_time: Option<DateTime<Utc>>,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    pub revision: i64,
    /// The email was proven by `VerifyEmail`; a change of email clears it. (Defaults
    /// for events written before it existed.)
    #[serde(default)]
    pub email_verified: bool,
    /// Sign-in needs a second factor (a TOTP code or a recovery code).
    #[serde(default)]
    pub totp_enabled: bool,
}

/// The profile of a user to create, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct NewUser {
    pub email: Email,
    pub first_name: String,
    pub last_name: String,
    pub language: String,
    pub status: UserStatus,
}

/// The raw profile fields of a request, before validation. A status holding a number
/// outside the enum is `None` and in `refused`, which validation reports with every
/// other violation.
#[derive(Debug, Clone, Default)]
pub struct UserFields<'a> {
    /// The fields that could not be read: a number outside `UserStatus` (the status is
    /// `None` here).
    pub refused: Refused,
    pub email: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub language: &'a str,
    /// `None` when the request left the status unspecified or it was refused.
    pub status: Option<UserStatus>,
}

impl NewUser {
    /// Validates every field, reporting all violations under `prefix` (`user`).
    pub fn parse(prefix: &str, fields: &UserFields<'_>) -> Result<NewUser> {
        fields.refused.over(Self::parse_read(prefix, fields))
    }

    /// `parse` of the fields that could be read.
    fn parse_read(prefix: &str, fields: &UserFields<'_>) -> Result<NewUser> {
        let mut violations = Violations::new();
        let email = violations.check(&format!("{prefix}.email"), Email::parse(fields.email));
        let first_name = violations.check(
            &format!("{prefix}.first_name"),
            parse_name(fields.first_name),
        );
        let last_name =
            violations.check(&format!("{prefix}.last_name"), parse_name(fields.last_name));
        let language = violations.check(
            &format!("{prefix}.language"),
            parse_language(fields.language),
        );
        violations.finish()?;
        match (email, first_name, last_name, language) {
            (Some(email), Some(first_name), Some(last_name), Some(language)) => Ok(NewUser {
                email,
                first_name,
                last_name,
                language,
                status: fields.status.unwrap_or(UserStatus::Active),
            }),
            _ => unreachable!("violations.finish() returned early"),
        }
    }
}

/// The fields an update changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserChanges {
    pub email: Option<Email>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub language: Option<String>,
    pub status: Option<UserStatus>,
}

/// Fields a caller may name in an update mask.
const MUTABLE_FIELDS: [&str; 5] = ["email", "first_name", "last_name", "language", "status"];
/// Fields a caller may name but that the service computes; they are ignored (AIP-203).
const OUTPUT_ONLY_FIELDS: [&str; 7] = [
    "uuid",
    "ulid",
    "has_password",
    "last_login_time",
    "create_time",
    "update_time",
    "etag",
];

impl UserChanges {
    /// Validates an update: `paths` is the update mask (`*` = every mutable field).
    /// Refused fields are violations whatever the mask names.
    pub fn parse(paths: &[String], fields: &UserFields<'_>) -> Result<UserChanges> {
        fields.refused.over(Self::parse_read(paths, fields))
    }

    /// `parse` of the fields that could be read.
    fn parse_read(paths: &[String], fields: &UserFields<'_>) -> Result<UserChanges> {
        let mut violations = Violations::new();
        if paths.is_empty() {
            violations.add(
                "update_mask",
                "is required: name the fields to change, or `*`",
            );
        }
        let full = paths.iter().any(|p| p == "*");
        if full && paths.len() > 1 {
            violations.add("update_mask", "`*` cannot be combined with other paths");
        }
        for path in paths {
            if path != "*"
                && !MUTABLE_FIELDS.contains(&path.as_str())
                && !OUTPUT_ONLY_FIELDS.contains(&path.as_str())
            {
                violations.add("update_mask", format!("`{path}` is not a field of User"));
            }
        }
        let wants = |name: &str| full || paths.iter().any(|p| p == name);
        let mut changes = UserChanges::default();
        if wants("email") {
            changes.email = violations.check("user.email", Email::parse(fields.email));
        }
        if wants("first_name") {
            changes.first_name = violations.check("user.first_name", parse_name(fields.first_name));
        }
        if wants("last_name") {
            changes.last_name = violations.check("user.last_name", parse_name(fields.last_name));
        }
        if wants("language") {
            changes.language = violations.check("user.language", parse_language(fields.language));
        }
        if wants("status") {
            match fields.status {
                Some(status) => changes.status = Some(status),
                None => violations.add(
                    "user.status",
                    "is required when `status` is in the update mask",
                ),
            }
        }
        violations.finish()?;
        Ok(changes)
    }

    pub fn apply(&self, user: &mut User) {
        if let Some(email) = &self.email {
            user.email = email.clone();
        }
        if let Some(first_name) = &self.first_name {
            user.first_name = first_name.clone();
        }
        if let Some(last_name) = &self.last_name {
            user.last_name = last_name.clone();
        }
        if let Some(language) = &self.language {
            user.language = language.clone();
        }
        if let Some(status) = self.status {
            user.status = status;
        }
    }
}

/// Filters of `ListUsers`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserFilter {
    /// Lower-cased prefix of the email, first name or last name.
    pub query: Option<String>,
    pub customer_id: Option<Id>,
    pub account_id: Option<Id>,
}

impl UserFilter {
    /// The canonical text page tokens are bound to.
    pub fn canonical(&self) -> String {
        format!(
            "ListUsers|q={}|c={}|a={}",
            self.query.as_deref().unwrap_or(""),
            self.customer_id.map(|i| i.to_string()).unwrap_or_default(),
            self.account_id.map(|i| i.to_string()).unwrap_or_default()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_checked_and_lower_cased() {
        assert_eq!(
            Email::parse(" Ana@Example.COM ").unwrap().as_str(),
            "ana@example.com"
        );
        for bad in [
            "",
            "ana",
            "ana@",
            "@example.com",
            "Ana <ana@example.com>",
            "ana@[127.0.0.1]",
            "ana@localhost",
            "a b@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad} should be rejected");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
        assert_eq!(
            Email::parse("Q@BÜCHER.example").unwrap().as_str(),
            "q@xn--bcher-kva.example"
        );
        assert_eq!(
            Email::parse("q@xn--bcher-kva.example").unwrap(),
            Email::parse("q@bücher.example").unwrap()
        );
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(parse_name("  Ana ").unwrap(), "Ana");
        assert!(parse_name("   ").is_err());
        assert!(parse_name(&"é".repeat(100)).is_ok());
        assert!(parse_name(&"é".repeat(101)).is_err());
    }

    #[test]
    fn languages_are_bcp47_in_canonical_case() {
        assert_eq!(parse_language("").unwrap(), "en");
        assert_eq!(parse_language("pt-br").unwrap(), "pt-BR");
        assert_eq!(parse_language("zh-hant-tw").unwrap(), "zh-Hant-TW");
        assert!(parse_language("not a tag").is_err());
        assert!(parse_language("en_US").is_err());
    }

    #[test]
    fn a_new_user_reports_every_bad_field() {
        let fields = UserFields {
            email: "bad",
            first_name: "",
            last_name: "",
            language: "??",
            ..Default::default()
        };
        let Err(super::super::Error::InvalidArgument(list)) = NewUser::parse("user", &fields)
        else {
            panic!("expected invalid argument");
        };
        let named: Vec<_> = list.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            named,
            [
                "user.email",
                "user.first_name",
                "user.last_name",
                "user.language"
            ]
        );
    }

    #[test]
    fn a_refused_status_is_reported_once_with_the_other_violations() {
        let mut refused = Violations::new();
        refused.add("user.status", "99 is not a UserStatus");
        let fields = UserFields {
            refused: refused.into_refused(),
            email: "bad",
            ..Default::default()
        };
        let named = |outcome: Result<UserChanges>| match outcome {
            Err(super::super::Error::InvalidArgument(list)) => {
                list.into_iter().map(|v| v.field).collect::<Vec<_>>()
            }
            other => panic!("expected invalid argument, got {other:?}"),
        };
        let mask = ["status".to_string(), "email".to_string()];
        assert_eq!(
            named(UserChanges::parse(&mask, &fields)),
            ["user.status", "user.email"]
        );
        assert_eq!(
            named(UserChanges::parse(&["language".into()], &fields)),
            ["user.status"]
        );
        assert!(NewUser::parse("user", &fields).is_err());
    }

    #[test]
    fn an_update_needs_a_known_mask() {
        let fields = UserFields::default();
        assert!(UserChanges::parse(&[], &fields).is_err());
        assert!(UserChanges::parse(&["nickname".into()], &fields).is_err());
        let only_ignored = UserChanges::parse(&["create_time".into()], &fields).unwrap();
        assert_eq!(only_ignored, UserChanges::default());
    }
}
