//! Collects every violated field of a request, so a caller learns all of them at once.

use super::error::{Error, FieldViolation};

/// The fields of a request that could not be read into domain values (a number outside
/// its enum, a number JSON cannot hold), found where the request is read and carried to
/// its validation, so that they are reported with every other violation of the request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refused(Vec<FieldViolation>);

impl Refused {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The outcome of validating a request that has these refused fields: never a
    /// value, but one `InvalidArgument` listing the refused fields and the violations
    /// validation found. Validation saw a refused field as absent, so what it says about
    /// that field ("is required") is dropped: each refused field is reported once, with
    /// the reason it was refused. A precondition the validation checked after its field
    /// rules yields to them; any other error is kept. Without refused fields the
    /// outcome is unchanged.
    pub fn over<T>(&self, outcome: Result<T, Error>) -> Result<T, Error> {
        if self.0.is_empty() {
            return outcome;
        }
        let mut all = self.0.clone();
        match outcome {
            Ok(_) | Err(Error::FailedPrecondition { .. }) => {}
            Err(Error::InvalidArgument(found)) => all.extend(
                found
                    .into_iter()
                    .filter(|found| !self.0.iter().any(|refused| refused.field == found.field)),
            ),
            Err(other) => return Err(other),
        }
        Err(Error::InvalidArgument(all))
    }
}

/// A value read from a request, and the fields that could not be read into it (they read
/// as absent in `value`): a list request's enum filters, read where the request is read
/// and validated with its other fields, which reports `refused` with the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Read<T> {
    pub value: T,
    pub refused: Refused,
}

/// Accumulates field violations; `finish` turns a non-empty set into one error.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    /// Keeps the value of `result`, or records its error under `field`.
    pub fn check<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(description) => {
                self.add(field, description);
                None
            }
        }
    }

    /// Takes over the violations of a nested error, or keeps a non-validation error.
    pub fn absorb(&mut self, error: Error) -> Result<(), Error> {
        match error {
            Error::InvalidArgument(list) => {
                self.0.extend(list);
                Ok(())
            }
            other => Err(other),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// These violations as the refused fields of a request (see `Refused`).
    pub fn into_refused(self) -> Refused {
        Refused(self.0)
    }

    pub fn finish(self) -> Result<(), Error> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidArgument(self.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> Refused {
        let mut violations = Violations::new();
        violations.add(
            "customer.customer_type",
            "99 is not a value of CustomerType",
        );
        violations.into_refused()
    }

    fn fields<T>(outcome: Result<T, Error>) -> Vec<String> {
        match outcome {
            Err(Error::InvalidArgument(list)) => list.into_iter().map(|v| v.field).collect(),
            Err(other) => panic!("expected invalid argument, got {other:?}"),
            Ok(_) => panic!("expected invalid argument, got a value"),
        }
    }

    #[test]
    fn refused_fields_join_the_others_once() {
        let mut found = Violations::new();
        found.add(
            "customer.customer_type",
            "is required: BUSINESS or PERSONAL",
        );
        found.add("customer.email", "is not an email address");
        assert_eq!(
            fields(refused().over::<()>(found.finish())),
            ["customer.customer_type", "customer.email"]
        );
    }

    #[test]
    fn refused_fields_never_validate_and_come_before_a_precondition() {
        assert_eq!(fields(refused().over(Ok(1))), ["customer.customer_type"]);
        let terminated = Error::FailedPrecondition {
            kind: "CUSTOMER_TERMINATED",
            subject: "customers/x".into(),
            description: "final".into(),
        };
        assert_eq!(
            fields(refused().over::<()>(Err(terminated))),
            ["customer.customer_type"]
        );
    }

    #[test]
    fn without_refused_fields_the_outcome_is_unchanged() {
        assert!(matches!(Refused::default().over(Ok(1)), Ok(1)));
        let outcome = Refused::default().over::<()>(Err(Error::NotFound {
            resource: "customer",
        }));
        assert!(matches!(outcome, Err(Error::NotFound { .. })));
    }
}
