//! Account use cases: create under a customer's quota, read, list, update, delete, and
//! the effective limits.

use std::sync::Arc;

use super::{App, once_more_on_contention, users::parse_id};
use crate::{
    domain::{
        Result,
        account::{Account, AccountFields, AccountFilter, AccountStatus, NewAccount, ServiceType},
        etag,
        id::Id,
        idempotency::RequestKey,
        limits::EffectiveLimit,
        password::Password,
        user::{Email, NewUser, UserStatus, parse_language, parse_name},
        violations::{Read, Violations},
    },
    store::AccountOwner,
};

/// Who a `CreateAccount` request names as owner, as sent.
pub enum OwnerRequest<'a> {
    /// Neither: the customer's owner.
    Default,
    UserId(&'a str),
    NewOwner {
        email: &'a str,
        first_name: &'a str,
        last_name: &'a str,
        password: Password,
    },
}

impl App {
    pub async fn create_account(
        &self,
        customer_id: &str,
        fields: &AccountFields<'_>,
        owner: OwnerRequest<'_>,
        key: Option<RequestKey>,
    ) -> Result<Account> {
        let mut violations = Violations::new();
        let customer_id = violations.check("customer_id", Id::parse(customer_id));
        let new = match NewAccount::parse("account", fields) {
            Ok(new) => Some(new),
            Err(error) => {
                violations.absorb(error)?;
                None
            }
        };
        let owner = match owner {
            OwnerRequest::Default => Some(OwnerChoice::CustomerOwner),
            OwnerRequest::UserId(id) => violations
                .check("owner_user_id", Id::parse(id))
                .map(OwnerChoice::User),
            OwnerRequest::NewOwner {
                email,
                first_name,
                last_name,
                password,
            } => {
                let email = violations.check("new_owner.email", Email::parse(email));
                let first_name = violations.check("new_owner.first_name", parse_name(first_name));
                let last_name = violations.check("new_owner.last_name", parse_name(last_name));
                if password.is_empty() {
                    violations.add("new_owner.password", "is required for a new owner");
                } else if let Some(email) = &email {
                    violations.check("new_owner.password", password.check_policy(email.as_str()));
                }
                match (email, first_name, last_name) {
                    (Some(email), Some(first_name), Some(last_name)) => Some(OwnerChoice::New(
                        NewUser {
                            email,
                            first_name,
                            last_name,
                            language: parse_language("").unwrap_or_else(|_| "en".into()),
                            status: UserStatus::Active,
                        },
                        password,
                    )),
                    _ => None,
                }
            }
        };
        violations.finish()?;
        let (customer_id, new, owner) = (
            customer_id.expect("validated above"),
            new.expect("validated above"),
            owner.expect("validated above"),
        );
        if let Some(key) = &key
            && let Some(first) = self.store.replay::<Account>(key).await?
        {
            return Ok(first);
        }
        let owner = match owner {
            OwnerChoice::CustomerOwner => AccountOwner::CustomerOwner,
            OwnerChoice::User(id) => AccountOwner::User(id),
            OwnerChoice::New(new_user, password) => AccountOwner::NewUser {
                new_user,
                password_hash: self.hasher.hash(&password).await?,
            },
        };
        once_more_on_contention(|| {
            self.store
                .create_account(customer_id, &new, &owner, key.as_ref())
        })
        .await
    }

    pub async fn get_account(&self, id: &str) -> Result<Account> {
        self.store.get_account(parse_id("account_id", id)?).await
    }

    /// `filters` holds the enum filters read (`status`, `service_type`); the ones that
    /// could not be read are reported with the request's other violations.
    pub async fn list_accounts(
        &self,
        customer_id: &str,
        filters: Read<(Option<AccountStatus>, Option<ServiceType>)>,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<Account>, String)> {
        let Read {
            value: (status, service_type),
            refused,
        } = filters;
        let mut violations = Violations::new();
        let customer_id = if customer_id.trim().is_empty() {
            None
        } else {
            violations.check("customer_id", Id::parse(customer_id))
        };
        let filter = AccountFilter {
            customer_id,
            status,
            service_type,
        };
        let canonical = filter.canonical();
        let page = self.page_request(&mut violations, &canonical, page_size, page_token)?;
        refused.over(violations.finish())?;
        let page = self
            .store
            .list_accounts(&filter, page.expect("validated above"))
            .await?;
        Ok(self.page_answer(&canonical, page))
    }

    pub async fn update_account(
        &self,
        id: &str,
        etag_text: &str,
        mask: &[String],
        fields: &AccountFields<'_>,
    ) -> Result<Account> {
        let mut violations = Violations::new();
        let id = violations.check("account_id", Id::parse(id));
        let expected = match etag::parse("etag", etag_text) {
            Ok(expected) => expected,
            Err(error) => {
                violations.absorb(error)?;
                None
            }
        };
        // The fields are validated against the stored account, so a bad id or etag is
        // reported before that; the fields that could not be read are reported with it.
        if let Err(error) = violations.finish() {
            return fields.refused.over(Err(error));
        }
        let id = id.expect("validated above");
        once_more_on_contention(|| {
            self.store
                .update_account(id, expected, |current| current.changed(mask, fields))
        })
        .await
    }

    pub async fn delete_account(&self, id: &str, etag_text: &str) -> Result<()> {
        let id = parse_id("account_id", id)?;
        let expected = etag::parse("etag", etag_text)?;
        once_more_on_contention(|| self.store.delete_account(id, expected)).await
    }

    pub async fn effective_limits(&self, account_id: &str) -> Result<Vec<EffectiveLimit>> {
        let account_id = parse_id("account_id", account_id)?;
        let cache = &self.caches.limits;
        if let Some(limits) = cache.get(&account_id, self.caches.changes.is_fresh()) {
            return Ok(Vec::clone(&limits));
        }
        let ticket = cache.ticket();
        let (customer_id, limits) = self.store.effective_limits(account_id).await?;
        cache.insert(
            ticket,
            account_id,
            Arc::new(limits.clone()),
            vec![account_id, customer_id],
        );
        Ok(limits)
    }
}

enum OwnerChoice {
    CustomerOwner,
    User(Id),
    New(NewUser, Password),
}
