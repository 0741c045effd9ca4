//! Customer use cases: create with an owner, look up, list, update, delete.

use std::sync::Arc;

use chrono::{NaiveDate, Utc};

use super::{App, once_more_on_contention, users::parse_id};
use crate::{
    domain::{
        Error, Result,
        customer::{
            Customer, CustomerFields, CustomerFilter, CustomerKey, CustomerStatus, CustomerType,
            NewCustomer, domains,
        },
        etag,
        id::Id,
        idempotency::RequestKey,
        password::Password,
        user::{Email, NewUser, UserStatus},
        violations::{Read, Violations},
    },
    store::CustomerOwner,
};

/// How a `GetCustomer` request names the customer, as sent.
pub enum CustomerLookup<'a> {
    Id(&'a str),
    Email(&'a str),
    ExternalId(&'a str),
    CustomerKey(&'a str),
    Subdomain(&'a str),
    Hostname(&'a str),
}

/// How often an update without an etag is re-validated against a customer that a
/// concurrent write changed between our read and our write.
const UPDATE_RETRIES: usize = 5;

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

impl App {
    /// Creates a customer and its owner: the user `owner_user_id`, else the user with
    /// the customer's email, else a new user with `password`.
    pub async fn create_customer(
        &self,
        fields: &CustomerFields<'_>,
        password: &Password,
        owner_user_id: &str,
        key: Option<RequestKey>,
    ) -> Result<Customer> {
        let mut violations = Violations::new();
        let new = match NewCustomer::parse("customer", fields, today()) {
            Ok(new) => Some(new),
            Err(error) => {
                violations.absorb(error)?;
                None
            }
        };
        let owner_id = if owner_user_id.trim().is_empty() {
            None
        } else {
            violations.check("owner_user_id", Id::parse(owner_user_id))
        };
        // Whether a new owner must be made decides whether `password` is required, so
        // its violations are reported with the others.
        let mut needs_password = false;
        if owner_user_id.trim().is_empty()
            && let Ok(email) = Email::parse(fields.email)
            && !self.store.user_exists_by_email(&email).await?
        {
            needs_password = true;
            if password.is_empty() {
                violations.add(
                    "password",
                    "is required: no user has the customer's email, so a new owner user is created",
                );
            } else {
                violations.check("password", password.check_policy(email.as_str()));
            }
        }
        violations.finish()?;
        let new = new.expect("validated above");
        if let Some(key) = &key
            && let Some(first) = self.store.replay::<Customer>(key).await?
        {
            return Ok(first);
        }
        let owner = match owner_id {
            Some(id) => CustomerOwner::User(id),
            None => CustomerOwner::ByEmail {
                new_user: NewUser {
                    email: new.email.clone(),
                    first_name: new.first_name.clone(),
                    last_name: new.last_name.clone(),
                    language: new.language.clone(),
                    status: UserStatus::Active,
                },
                password_hash: if needs_password {
                    Some(self.hasher.hash(password).await?)
                } else {
                    None
                },
            },
        };
        once_more_on_contention(|| self.store.create_customer(&new, &owner, key.as_ref())).await
    }

    pub async fn get_customer(&self, lookup: Option<CustomerLookup<'_>>) -> Result<Customer> {
        let key = match lookup {
            None => {
                return Err(Error::invalid(
                    "lookup",
                    "is required: set one of customer_id, email, external_id, customer_key, subdomain, hostname",
                ));
            }
            Some(CustomerLookup::Id(id)) => CustomerKey::Id(parse_id("customer_id", id)?),
            Some(CustomerLookup::Email(email)) => {
                CustomerKey::Email(Email::parse(email).map_err(|e| Error::invalid("email", e))?)
            }
            Some(CustomerLookup::ExternalId(external_id)) => {
                CustomerKey::ExternalId(required("external_id", external_id)?.to_string())
            }
            Some(CustomerLookup::CustomerKey(customer_key)) => CustomerKey::CustomerKey(
                required("customer_key", customer_key)?.to_ascii_lowercase(),
            ),
            Some(CustomerLookup::Subdomain(subdomain)) => {
                CustomerKey::Subdomain(required("subdomain", subdomain)?.to_ascii_lowercase())
            }
            Some(CustomerLookup::Hostname(hostname)) => CustomerKey::Hostname(
                domains::parse_hostname(hostname).map_err(|e| Error::invalid("hostname", e))?,
            ),
        };
        let cache = &self.caches.customers;
        if let Some(customer) = cache.get(&key, self.caches.changes.is_fresh()) {
            return Ok(Customer::clone(&customer));
        }
        let ticket = cache.ticket();
        let customer = self.store.get_customer_by(&key).await?;
        // Not-found answers are not cached: a customer created elsewhere is found at once.
        cache.insert(ticket, key, Arc::new(customer.clone()), vec![customer.id]);
        Ok(customer)
    }

    /// A page of customers and the token of the next one (empty at the end).
    /// `filters` holds the enum filters read (`status`, `customer_type`); the ones that
    /// could not be read are reported with the request's other violations.
    pub async fn list_customers(
        &self,
        filters: Read<(Option<CustomerStatus>, Option<CustomerType>)>,
        country: &str,
        query: &str,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<Customer>, String)> {
        let Read {
            value: (status, customer_type),
            refused,
        } = filters;
        let mut violations = Violations::new();
        let country = if country.trim().is_empty() {
            None
        } else {
            violations.check("country", crate::domain::geo::parse_country(country))
        };
        let filter = CustomerFilter {
            status,
            customer_type,
            country,
            query: Some(query.trim().to_lowercase()).filter(|q| !q.is_empty()),
        };
        let canonical = filter.canonical();
        let page = self.page_request(&mut violations, &canonical, page_size, page_token)?;
        refused.over(violations.finish())?;
        let page = self
            .store
            .list_customers(&filter, page.expect("validated above"))
            .await?;
        Ok(self.page_answer(&canonical, page))
    }

    /// Applies the fields named by `mask`. Without an etag, a concurrent change between
    /// the read and the write makes the update start over on the new state, so the
    /// rules that span fields are always checked against what is written over.
    pub async fn update_customer(
        &self,
        id: &str,
        etag_text: &str,
        mask: &[String],
        fields: &CustomerFields<'_>,
    ) -> Result<Customer> {
        let mut violations = Violations::new();
        let id = violations.check("customer_id", Id::parse(id));
        let expected = match etag::parse("etag", etag_text) {
            Ok(expected) => expected,
            Err(error) => {
                violations.absorb(error)?;
                None
            }
        };
        // The fields are validated against the stored customer, so a bad id or etag is
        // reported before that; the fields that could not be read are reported with it.
        if let Err(error) = violations.finish() {
            return fields.refused.over(Err(error));
        }
        let id = id.expect("validated above");
        for _ in 0..UPDATE_RETRIES {
            let current = self.store.get_customer(id).await?;
            if expected.is_some_and(|expected| expected != current.revision) {
                return Err(Error::Aborted {
                    resource: "customer",
                });
            }
            let updated = current.changed(mask, fields, today())?;
            match once_more_on_contention(|| self.store.update_customer(&updated)).await {
                Err(Error::Aborted { .. }) if expected.is_none() => continue,
                other => return other,
            }
        }
        Err(Error::Aborted {
            resource: "customer",
        })
    }

    pub async fn delete_customer(&self, id: &str, etag_text: &str) -> Result<()> {
        let id = parse_id("customer_id", id)?;
        let expected = etag::parse("etag", etag_text)?;
        once_more_on_contention(|| self.store.delete_customer(id, expected)).await
    }
}

/// A lookup value that must not be blank.
fn required<'a>(field: &str, text: &'a str) -> Result<&'a str> {
    let text = text.trim();
    if text.is_empty() {
        Err(Error::invalid(field, "is required"))
    } else {
        Ok(text)
    }
}
