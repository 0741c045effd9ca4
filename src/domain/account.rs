//! Accounts: one per service a customer uses, with quotas in `account_settings`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    Error, Result,
    id::Id,
    limits::{ACCOUNT_LIMIT_KEYS, Limits, parse_limits},
    metadata::{JsonObject, parse_metadata},
    violations::{Refused, Violations},
};

pub const MAX_ACCOUNT_NAME_LEN: usize = 100;
pub const MAX_EXTERNAL_ID_LEN: usize = 250;

/// Where an account is in its lifecycle: the customer's four states, with the same
/// rule that nothing leaves TERMINATED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AccountStatus {
    Active,
    Inactive,
    Suspended,
    Terminated,
}

impl AccountStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::Inactive => "inactive",
            AccountStatus::Suspended => "suspended",
            AccountStatus::Terminated => "terminated",
        }
    }

    pub fn from_db(text: &str) -> Option<Self> {
        match text {
            "active" => Some(AccountStatus::Active),
            "inactive" => Some(AccountStatus::Inactive),
            "suspended" => Some(AccountStatus::Suspended),
            "terminated" => Some(AccountStatus::Terminated),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ServiceType {
    VideoStreaming,
    WebMeeting,
}

impl ServiceType {
    pub fn as_str(&self) -> &'static str {
        match self {
            ServiceType::VideoStreaming => "video_streaming",
            ServiceType::WebMeeting => "web_meeting",
        }
    }

    pub fn from_db(text: &str) -> Option<Self> {
        match text {
            "video_streaming" => Some(ServiceType::VideoStreaming),
            "web_meeting" => Some(ServiceType::WebMeeting),
            _ => None,
        }
    }
}

/// An account as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub id: Id,
    pub customer_id: Id,
    pub external_id: Option<String>,
    pub name: String,
    pub service_type: ServiceType,
    pub status: AccountStatus,
    /// The quota keys of `ACCOUNT_LIMIT_KEYS` the caller set.
    pub settings: Limits,
    pub metadata: JsonObject,
    pub owner_user_id: Id,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    pub revision: i64,
}

/// An account to create, validated; the store adds the id, the customer and the owner.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAccount {
    pub external_id: Option<String>,
    pub name: String,
    pub service_type: ServiceType,
    pub status: AccountStatus,
    pub settings: Limits,
    pub metadata: JsonObject,
}

/// The raw fields of a request's `Account`. Enums left unspecified are `None`, and so
/// are enums holding a number outside the enum: those are in `refused`, which validation
/// reports with every other violation.
#[derive(Debug, Clone, Default)]
pub struct AccountFields<'a> {
    /// The fields that could not be read: a number outside an enum (the enum is `None`
    /// here), a non-finite number in a Struct (the object is `None`).
    pub refused: Refused,
    pub external_id: &'a str,
    pub name: &'a str,
    pub service_type: Option<ServiceType>,
    pub status: Option<AccountStatus>,
    pub settings: Option<JsonObject>,
    pub metadata: Option<JsonObject>,
}

fn parse_name(text: &str) -> Result<String, String> {
    let trimmed = text.trim();
    match trimmed.chars().count() {
        0 => Err("is required".into()),
        n if n > MAX_ACCOUNT_NAME_LEN => {
            Err(format!("must be at most {MAX_ACCOUNT_NAME_LEN} characters"))
        }
        _ if trimmed.chars().any(char::is_control) => {
            Err("must not contain control characters".into())
        }
        _ => Ok(trimmed.to_string()),
    }
}

fn parse_external_id(text: &str) -> Result<Option<String>, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    if trimmed.chars().count() > MAX_EXTERNAL_ID_LEN {
        return Err(format!("must be at most {MAX_EXTERNAL_ID_LEN} characters"));
    }
    if trimmed.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(Some(trimmed.to_string()))
}

/// Parses the objects of `fields` into `violations`, returning what was valid.
fn parse_objects(
    prefix: &str,
    fields: &AccountFields<'_>,
    violations: &mut Violations,
) -> Result<(Option<Limits>, Option<JsonObject>)> {
    let settings = match parse_limits(
        &format!("{prefix}.account_settings"),
        &ACCOUNT_LIMIT_KEYS,
        fields.settings.as_ref(),
    ) {
        Ok(settings) => Some(settings),
        Err(error) => {
            violations.absorb(error)?;
            None
        }
    };
    let metadata = match parse_metadata(
        &format!("{prefix}.account_metadata"),
        fields.metadata.as_ref(),
    ) {
        Ok(metadata) => Some(metadata),
        Err(error) => {
            violations.absorb(error)?;
            None
        }
    };
    Ok((settings, metadata))
}

impl NewAccount {
    /// Validates every field of a create, reporting all violations under `prefix`.
    pub fn parse(prefix: &str, fields: &AccountFields<'_>) -> Result<NewAccount> {
        fields.refused.over(Self::parse_read(prefix, fields))
    }

    /// `parse` of the fields that could be read.
    fn parse_read(prefix: &str, fields: &AccountFields<'_>) -> Result<NewAccount> {
        let mut violations = Violations::new();
        let name = violations.check(&format!("{prefix}.name"), parse_name(fields.name));
        let external_id = violations.check(
            &format!("{prefix}.external_id"),
            parse_external_id(fields.external_id),
        );
        if fields.service_type.is_none() {
            violations.add(
                format!("{prefix}.service_type"),
                "is required: VIDEO_STREAMING or WEB_MEETING",
            );
        }
        let (settings, metadata) = parse_objects(prefix, fields, &mut violations)?;
        violations.finish()?;
        match (name, external_id, fields.service_type, settings, metadata) {
            (Some(name), Some(external_id), Some(service_type), Some(settings), Some(metadata)) => {
                Ok(NewAccount {
                    external_id,
                    name,
                    service_type,
                    status: fields.status.unwrap_or(AccountStatus::Active),
                    settings,
                    metadata,
                })
            }
            _ => unreachable!("violations.finish() returned early"),
        }
    }
}

/// Fields a caller may name in an update mask.
const MUTABLE_FIELDS: [&str; 6] = [
    "external_id",
    "name",
    "service_type",
    "status",
    "account_settings",
    "account_metadata",
];
/// Fields a caller may name but that the service computes; they are ignored (AIP-203).
const OUTPUT_ONLY_FIELDS: [&str; 7] = [
    "uuid",
    "ulid",
    "customer_id",
    "owner_user_id",
    "create_time",
    "update_time",
    "etag",
];

impl Account {
    /// The account after an update (`paths` = the mask, `*` = every writable field);
    /// leaving TERMINATED is a `FailedPrecondition`. Refused fields are violations
    /// whatever the mask names. The store bumps revision and time.
    pub fn changed(&self, paths: &[String], fields: &AccountFields<'_>) -> Result<Account> {
        fields.refused.over(self.changed_read(paths, fields))
    }

    /// `changed` with the fields that could be read.
    fn changed_read(&self, paths: &[String], fields: &AccountFields<'_>) -> Result<Account> {
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
                violations.add("update_mask", format!("`{path}` is not a field of Account"));
            }
        }
        let wants = |name: &str| full || paths.iter().any(|p| p == name);
        let mut next = self.clone();
        if wants("name")
            && let Some(name) = violations.check("account.name", parse_name(fields.name))
        {
            next.name = name;
        }
        if wants("external_id")
            && let Some(external_id) =
                violations.check("account.external_id", parse_external_id(fields.external_id))
        {
            next.external_id = external_id;
        }
        if wants("service_type") {
            match fields.service_type {
                Some(service_type) => next.service_type = service_type,
                None => violations.add(
                    "account.service_type",
                    "is required when `service_type` is in the update mask",
                ),
            }
        }
        if wants("status") {
            match fields.status {
                Some(status) => next.status = status,
                None => violations.add(
                    "account.status",
                    "is required when `status` is in the update mask",
                ),
            }
        }
        // Fields outside the mask are ignored, however bad (AIP-134).
        if wants("account_settings") {
            match parse_limits(
                "account.account_settings",
                &ACCOUNT_LIMIT_KEYS,
                fields.settings.as_ref(),
            ) {
                Ok(settings) => next.settings = settings,
                Err(error) => violations.absorb(error)?,
            }
        }
        if wants("account_metadata") {
            match parse_metadata("account.account_metadata", fields.metadata.as_ref()) {
                Ok(metadata) => next.metadata = metadata,
                Err(error) => violations.absorb(error)?,
            }
        }
        violations.finish()?;
        if self.status == AccountStatus::Terminated && next.status != AccountStatus::Terminated {
            return Err(Error::FailedPrecondition {
                kind: "ACCOUNT_TERMINATED",
                subject: format!("accounts/{}", self.id),
                description: "a TERMINATED account cannot change its status".into(),
            });
        }
        Ok(next)
    }
}

/// Filters of `ListAccounts`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccountFilter {
    pub customer_id: Option<Id>,
    pub status: Option<AccountStatus>,
    pub service_type: Option<ServiceType>,
}

impl AccountFilter {
    /// The canonical text page tokens are bound to.
    pub fn canonical(&self) -> String {
        format!(
            "ListAccounts|c={}|s={}|t={}",
            self.customer_id.map(|i| i.to_string()).unwrap_or_default(),
            self.status.map(|s| s.as_str()).unwrap_or(""),
            self.service_type.map(|t| t.as_str()).unwrap_or("")
        )
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields<'a>(name: &'a str) -> AccountFields<'a> {
        AccountFields {
            name,
            service_type: Some(ServiceType::WebMeeting),
            ..Default::default()
        }
    }

    fn object(value: serde_json::Value) -> JsonObject {
        value.as_object().cloned().expect("an object")
    }

    #[test]
    fn a_new_account_reports_every_bad_field() {
        let mut bad = AccountFields {
            name: " ",
            external_id: &"x".repeat(251),
            ..Default::default()
        };
        bad.settings = Some(object(json!({"max_rooms": -1, "color": "red"})));
        bad.metadata = Some(object(json!({"deep": {"a": {"b": 1}}})));
        let Err(Error::InvalidArgument(list)) = NewAccount::parse("account", &bad) else {
            panic!("expected invalid argument");
        };
        let mut named: Vec<_> = list.iter().map(|v| v.field.as_str()).collect();
        named.sort();
        assert_eq!(
            named,
            [
                "account.account_metadata.deep",
                "account.account_settings.max_rooms",
                "account.external_id",
                "account.name",
                "account.service_type",
            ]
        );
    }

    #[test]
    fn settings_keep_only_the_six_quota_keys() {
        let mut good = fields("Meetings");
        good.settings = Some(object(
            json!({"max_rooms": 3, "max_accounts": 9, "theme": "dark", "record_expiration": 0}),
        ));
        let account = NewAccount::parse("account", &good).unwrap();
        assert_eq!(
            account.settings.0.keys().collect::<Vec<_>>(),
            ["max_rooms", "record_expiration"]
        );
        assert_eq!(account.status, AccountStatus::Active);
    }

    #[test]
    fn nothing_leaves_terminated() {
        let account = Account {
            id: Id::generate(),
            customer_id: Id::generate(),
            external_id: None,
            name: "A".into(),
            service_type: ServiceType::WebMeeting,
            status: AccountStatus::Terminated,
            settings: Limits::default(),
            metadata: JsonObject::new(),
            owner_user_id: Id::generate(),
            create_time: Utc::now(),
            update_time: Utc::now(),
            revision: 1,
        };
        let active = AccountFields {
            status: Some(AccountStatus::Active),
            ..Default::default()
        };
        assert!(matches!(
            account.changed(&["status".into()], &active),
            Err(Error::FailedPrecondition { .. })
        ));
        let mut renamed = fields("Renamed");
        renamed.settings = Some(object(json!({"max_rooms": -1})));
        let renamed = account.changed(&["name".into()], &renamed).unwrap();
        assert_eq!(
            renamed.name, "Renamed",
            "a bad field outside the mask is ignored"
        );
        assert!(account.changed(&[], &active).is_err());
        assert!(account.changed(&["color".into()], &active).is_err());
    }
}
