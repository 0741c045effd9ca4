//! Refusals that more than one kind of write raises: a customer's registration domains
//! keep an email out of its members and owners, and a customer that is not active
//! takes nothing new under it.

use crate::domain::{
    Error,
    customer::Customer,
    id::Id,
    user::{Email, User},
};

/// The `FAILED_PRECONDITION` of an email outside `allowed_domains_registration`; the
/// subject names the user when one exists, else the email.
pub fn email_not_admitted(email: &Email, user_id: Option<Id>) -> Error {
    Error::FailedPrecondition {
        kind: "EMAIL_DOMAIN_NOT_ALLOWED",
        subject: match user_id {
            Some(id) => format!("users/{id}"),
            None => format!("emails/{}", email.as_str()),
        },
        description: format!(
            "the email domain {} is not in the customer's allowed_domains_registration",
            email.domain()
        ),
    }
}

/// `user` may not join or own the customer: its email domain is not admitted.
pub fn user_not_admitted(user: &User) -> Error {
    email_not_admitted(&user.email, Some(user.id))
}

pub fn customer_not_active(customer: &Customer) -> Error {
    let status = customer.status.as_str().to_uppercase();
    Error::FailedPrecondition {
        kind: "CUSTOMER_NOT_ACTIVE",
        subject: format!("customers/{}", customer.id),
        description: format!("the customer is {status}: nothing new can be created under it"),
    }
}
