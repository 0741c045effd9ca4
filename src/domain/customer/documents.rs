//! Legal documents and tax identifiers: format checks only, not proof of identity.

use serde::{Deserialize, Serialize};

/// A validated legal document. `kind` is the request's `type` (`eu_vat`, `br_cpf`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegalDocument {
    pub kind: String,
    pub country: String,
    pub value: String,
    /// `YYYY-MM-DD`, or empty.
    pub issued_date: String,
}

#[derive(Debug, Clone, Default)]
pub struct LegalDocumentFields<'a> {
    pub kind: &'a str,
    pub country: &'a str,
    pub value: &'a str,
    pub issued_date: &'a str,
}
