//! Row converters that several stores share: users, memberships and customers are read
//! by the customer, account, member and invitation stores alike. Keeping them here, and
//! the refusals in `domain::refusals`, lets imports in `store/` run one way: each store
//! module depends on this one and on `domain`, never on another store module (except
//! `invitations`, which takes its target's lock through `members`).

use serde::de::DeserializeOwned;

use super::{
    entities::{customer, membership, user},
    from_micros,
};
use crate::domain::{
    Error, Result,
    customer::{Customer, CustomerStatus, CustomerType},
    id::Id,
    membership::{Membership, MembershipStatus, MembershipTarget},
    user::{Email, User, UserStatus},
};

pub(super) fn user_from_row(row: &user::Model) -> Result<User> {
    Ok(User {
        id: Id::from_uuid(row.id),
        email: Email::from_stored(row.email.clone()),
        first_name: row.first_name.clone(),
        last_name: row.last_name.clone(),
        language: row.language.clone(),
        status: UserStatus::from_db(&row.status)
            .ok_or_else(|| Error::internal("unknown stored user status"))?,
        has_password: row.password_hash.is_some(),
        last_login_time: row.last_login_time.map(from_micros),
        create_time: from_micros(row.create_time),
        update_time: from_micros(row.update_time),
        revision: row.revision,
        email_verified: row.email_verified,
        totp_enabled: row.totp_enabled,
    })
}

pub(super) fn membership_from_row(row: membership::Model) -> Result<Membership> {
    let target = match (row.customer_id, row.account_id) {
        (Some(customer), None) => MembershipTarget::Customer(Id::from_uuid(customer)),
        (None, Some(account)) => MembershipTarget::Account(Id::from_uuid(account)),
        _ => return Err(Error::internal("membership names neither or both targets")),
    };
    Ok(Membership {
        user_id: Id::from_uuid(row.user_id),
        target,
        owner: row.owner,
        permissions: serde_json::from_str(&row.permissions).map_err(Error::internal)?,
        roles: serde_json::from_str(&row.roles).map_err(Error::internal)?,
        status: MembershipStatus::from_db(&row.status)
            .ok_or_else(|| Error::internal("unknown membership status"))?,
        create_time: from_micros(row.create_time),
        revision: row.revision,
    })
}

fn from_json<T: DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::internal(format!("stored customer JSON: {e}")))
}

pub(super) fn customer_from_row(row: &customer::Model) -> Result<Customer> {
    Ok(Customer {
        id: Id::from_uuid(row.id),
        external_id: row.external_id.clone(),
        tenant_id: row.tenant_id.clone(),
        customer_key: row.customer_key.clone(),
        customer_prefix: row.customer_prefix.clone(),
        status: CustomerStatus::from_db(&row.status)
            .ok_or_else(|| Error::internal("unknown stored customer status"))?,
        email: Email::from_stored(row.email.clone()),
        first_name: row.first_name.clone(),
        last_name: row.last_name.clone(),
        company_name: row.company_name.clone(),
        customer_type: CustomerType::from_db(&row.customer_type)
            .ok_or_else(|| Error::internal("unknown stored customer type"))?,
        hostname: row.hostname.clone(),
        subdomain: row.subdomain.clone(),
        country: row.country.clone(),
        currency: row.currency.clone(),
        language: row.language.clone(),
        delinquent: row.delinquent,
        allowed_domains_origins: from_json(&row.allowed_domains_origins)?,
        allowed_domains_registration: from_json(&row.allowed_domains_registration)?,
        settings: from_json(&row.settings)?,
        metadata: from_json(&row.metadata)?,
        limits: from_json(&row.limits)?,
        addresses: from_json(&row.addresses)?,
        telephones: from_json(&row.telephones)?,
        legal_documents: from_json(&row.legal_documents)?,
        owner_user_id: Id::from_uuid(row.owner_user_id),
        create_time: from_micros(row.create_time),
        update_time: from_micros(row.update_time),
        revision: row.revision,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    /// The store modules that each store module names (`members::LockedTarget`,
    /// `super::rows::…`), read from the source.
    fn module_references() -> BTreeMap<String, BTreeSet<String>> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/store");
        let sources: BTreeMap<String, String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
            .filter(|path| path.file_stem().unwrap() != "mod")
            .map(|path| {
                let name = path.file_stem().unwrap().to_string_lossy().into_owned();
                // Comments may name other modules; only code counts.
                let code: String = std::fs::read_to_string(&path)
                    .unwrap()
                    .lines()
                    .filter(|line| !line.trim_start().starts_with("//"))
                    .map(|line| format!("{line}\n"))
                    .collect();
                (name, code)
            })
            .collect();
        let names: Vec<String> = sources.keys().cloned().collect();
        sources
            .iter()
            .map(|(module, text)| {
                let named = names
                    .iter()
                    .filter(|other| *other != module)
                    .filter(|other| {
                        text.match_indices(&format!("{other}::")).any(|(at, _)| {
                            !text[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_')
                        })
                    })
                    .cloned()
                    .collect();
                (module.clone(), named)
            })
            .collect()
    }

    #[test]
    fn store_modules_import_each_other_one_way() {
        let references = module_references();
        assert!(
            references["invitations"].contains("members"),
            "the reader must see imports"
        );
        // Depth-first search for a module that reaches itself.
        fn reaches(
            from: &str,
            target: &str,
            references: &BTreeMap<String, BTreeSet<String>>,
            seen: &mut BTreeSet<String>,
        ) -> bool {
            references[from].iter().any(|next| {
                next == target
                    || (seen.insert(next.clone()) && reaches(next, target, references, seen))
            })
        }
        for module in references.keys() {
            assert!(
                !reaches(module, module, &references, &mut BTreeSet::new()),
                "store/{module}.rs reaches itself through {:?}: imports in store/ must run one way",
                references[module]
            );
        }
    }
}
