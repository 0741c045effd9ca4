//! `Account` and effective limits, between protobuf and the domain.

use super::{
    keep, pb,
    structs::{limits_struct, to_json_object, to_struct},
    timestamp,
};
use crate::domain::{
    Error, Result,
    account::{Account, AccountFields, AccountStatus, ServiceType},
    etag,
    limits::{EffectiveLimit, LimitSource},
    violations::{Read, Violations},
};

/// A request's account status: unspecified is `None`; a number outside the enum is an
/// error at `field`.
pub fn account_status(field: &str, value: i32) -> Result<Option<AccountStatus>> {
    match pb::AccountStatus::try_from(value) {
        Ok(pb::AccountStatus::Unspecified) => Ok(None),
        Ok(pb::AccountStatus::Active) => Ok(Some(AccountStatus::Active)),
        Ok(pb::AccountStatus::Inactive) => Ok(Some(AccountStatus::Inactive)),
        Ok(pb::AccountStatus::Suspended) => Ok(Some(AccountStatus::Suspended)),
        Ok(pb::AccountStatus::Terminated) => Ok(Some(AccountStatus::Terminated)),
        Err(_) => Err(Error::invalid(
            field,
            format!("{value} is not an AccountStatus"),
        )),
    }
}

pub fn service_type(field: &str, value: i32) -> Result<Option<ServiceType>> {
    match pb::ServiceType::try_from(value) {
        Ok(pb::ServiceType::Unspecified) => Ok(None),
        Ok(pb::ServiceType::VideoStreaming) => Ok(Some(ServiceType::VideoStreaming)),
        Ok(pb::ServiceType::WebMeeting) => Ok(Some(ServiceType::WebMeeting)),
        Err(_) => Err(Error::invalid(
            field,
            format!("{value} is not a ServiceType"),
        )),
    }
}

/// The enum filters of `ListAccounts`; a number outside its enum is refused, for
/// validation to report with the request's other violations.
pub fn account_filters(
    r: &pb::ListAccountsRequest,
) -> Read<(Option<AccountStatus>, Option<ServiceType>)> {
    let mut violations = Violations::new();
    let status = keep(&mut violations, account_status("status", r.status)).flatten();
    let kind = keep(
        &mut violations,
        service_type("service_type", r.service_type),
    )
    .flatten();
    Read {
        value: (status, kind),
        refused: violations.into_refused(),
    }
}

/// The writable fields of a request's `Account`; a missing message reads as empty.
/// Numbers outside an enum and non-finite numbers in a Struct are not errors here: they
/// are the fields' `refused`, which validation reports with the request's other
/// violations.
pub fn account_fields(account: Option<&pb::Account>) -> AccountFields<'_> {
    let Some(a) = account else {
        return AccountFields::default();
    };
    let mut violations = Violations::new();
    let status = keep(&mut violations, account_status("account.status", a.status)).flatten();
    let kind = keep(
        &mut violations,
        service_type("account.service_type", a.service_type),
    )
    .flatten();
    let settings = keep(
        &mut violations,
        to_json_object("account.account_settings", a.account_settings.as_ref()),
    )
    .flatten();
    let metadata = keep(
        &mut violations,
        to_json_object("account.account_metadata", a.account_metadata.as_ref()),
    )
    .flatten();
    AccountFields {
        refused: violations.into_refused(),
        external_id: &a.external_id,
        name: &a.name,
        service_type: kind,
        status,
        settings,
        metadata,
    }
}

impl From<&Account> for pb::Account {
    fn from(a: &Account) -> Self {
        pb::Account {
            uuid: a.id.to_string(),
            ulid: a.id.ulid(),
            customer_id: a.customer_id.to_string(),
            external_id: a.external_id.clone().unwrap_or_default(),
            name: a.name.clone(),
            service_type: match a.service_type {
                ServiceType::VideoStreaming => pb::ServiceType::VideoStreaming,
                ServiceType::WebMeeting => pb::ServiceType::WebMeeting,
            } as i32,
            status: match a.status {
                AccountStatus::Active => pb::AccountStatus::Active,
                AccountStatus::Inactive => pb::AccountStatus::Inactive,
                AccountStatus::Suspended => pb::AccountStatus::Suspended,
                AccountStatus::Terminated => pb::AccountStatus::Terminated,
            } as i32,
            account_settings: Some(limits_struct(&a.settings)),
            account_metadata: Some(to_struct(&a.metadata)),
            owner_user_id: a.owner_user_id.to_string(),
            create_time: Some(timestamp(a.create_time)),
            update_time: Some(timestamp(a.update_time)),
            etag: etag::format(a.revision),
        }
    }
}

impl From<&EffectiveLimit> for pb::EffectiveLimit {
    fn from(limit: &EffectiveLimit) -> Self {
        pb::EffectiveLimit {
            key: limit.key.clone(),
            value: i64::try_from(limit.value).unwrap_or(i64::MAX),
            source: match limit.source {
                LimitSource::None => pb::LimitSource::None,
                LimitSource::Account => pb::LimitSource::Account,
                LimitSource::Customer => pb::LimitSource::Customer,
            } as i32,
        }
    }
}
