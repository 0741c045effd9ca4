//! Legal documents and tax identifiers: format checks only, not proof of identity.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::contact::bounded_text;
use super::tax_ids::{self, Fault};
use crate::domain::{
    geo::{optional, parse_country},
    violations::Violations,
};

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

pub const MAX_LEGAL_DOCUMENTS: usize = 20;
pub const MAX_DOCUMENT_VALUE_LEN: usize = 250;

/// The document types, as the request's `type` spells them.
pub const DOCUMENT_TYPES: [&str; 13] = [
    "eu_vat", "br_cpf", "br_cnpj", "gb_vat", "ch_vat", "no_vat", "us_ein", "ca_bn", "au_abn",
    "in_gst", "mx_rfc", "ar_cuit", "other",
];

/// Validates the legal documents: at most 20; `type` one of `DOCUMENT_TYPES` (any case);
/// `value` required, at most 250 characters, checked per type (`tax_ids`) and stored
/// compact; `country` ISO 3166-1, taken from the type (or the VAT prefix) when empty and
/// required to match it when given (`other` keeps the caller's, or none);
/// `issued_date` `YYYY-MM-DD`, a real date not after `today`. Violations name
/// `{field}[i].{part}`.
pub fn parse_legal_documents(
    violations: &mut Violations,
    field: &str,
    entries: &[LegalDocumentFields<'_>],
    today: NaiveDate,
) -> Vec<LegalDocument> {
    if entries.len() > MAX_LEGAL_DOCUMENTS {
        violations.add(
            field,
            format!("must have at most {MAX_LEGAL_DOCUMENTS} entries"),
        );
    }
    let mut documents = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let at = |part: &str| format!("{field}[{index}].{part}");
        let kind = violations.check(&at("type"), parse_kind(entry.kind));
        let country = violations.check(&at("country"), optional(entry.country, parse_country));
        let value = violations.check(&at("value"), parse_value(entry.value));
        let issued_date = violations.check(
            &at("issued_date"),
            parse_issued_date(entry.issued_date, today),
        );
        let (Some(kind), Some(country), Some(value), Some(issued_date)) =
            (kind, country, value, issued_date)
        else {
            continue;
        };
        if kind == "other" {
            documents.push(LegalDocument {
                kind,
                country: country.unwrap_or_default(),
                value,
                issued_date,
            });
            continue;
        }
        match tax_ids::check(&kind, &value, country.as_deref()) {
            Ok(checked) => documents.push(LegalDocument {
                kind,
                country: checked.country,
                value: checked.value,
                issued_date,
            }),
            Err(Fault::Value(description)) => violations.add(at("value"), description),
            Err(Fault::Country(description)) => violations.add(at("country"), description),
        }
    }
    documents
}

fn parse_kind(text: &str) -> Result<String, String> {
    let kind = text.trim().to_ascii_lowercase();
    if kind.is_empty() {
        return Err("is required".into());
    }
    if DOCUMENT_TYPES.contains(&kind.as_str()) {
        Ok(kind)
    } else {
        Err(format!("must be one of {}", DOCUMENT_TYPES.join(", ")))
    }
}

fn parse_value(text: &str) -> Result<String, String> {
    let value = text.trim();
    if value.is_empty() {
        return Err("is required".into());
    }
    bounded_text(value, MAX_DOCUMENT_VALUE_LEN)
}

/// Empty stays empty; otherwise exactly `YYYY-MM-DD`, a real date, not after `today`.
fn parse_issued_date(text: &str, today: NaiveDate) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(String::new());
    }
    // chrono alone would accept `2024-1-5`; the shape is checked first.
    let shaped = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .filter(|_| shaped)
        .ok_or_else(|| "must be a date written YYYY-MM-DD".to_string())?;
    if date > today {
        return Err("must not be in the future".into());
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Error;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 1).unwrap_or_default()
    }

    fn doc<'a>(kind: &'a str, country: &'a str, value: &'a str) -> LegalDocumentFields<'a> {
        LegalDocumentFields {
            kind,
            country,
            value,
            issued_date: "",
        }
    }

    fn run(entries: &[LegalDocumentFields<'_>]) -> (Vec<LegalDocument>, Vec<String>) {
        let mut violations = Violations::new();
        let documents = parse_legal_documents(&mut violations, "d", entries, today());
        let fields = match violations.finish() {
            Err(Error::InvalidArgument(list)) => list.into_iter().map(|v| v.field).collect(),
            _ => Vec::new(),
        };
        (documents, fields)
    }

    #[test]
    fn valid_documents_are_stored_normalised_with_their_country() {
        let entries = [
            LegalDocumentFields {
                issued_date: "2026-12-01",
                ..doc("br_cpf", "", "123.456.789-09")
            },
            doc("EU_VAT", "gr", "EL 123 456 789"),
            doc("eu_vat", "", "ATU12345678"),
            doc("other", "", " Contract 42/2024 "),
            doc("other", "pt", "SO-1"),
        ];
        let (documents, fields) = run(&entries);
        assert!(fields.is_empty(), "{fields:?}");
        let got: Vec<_> = documents
            .iter()
            .map(|d| {
                (
                    d.kind.as_str(),
                    d.country.as_str(),
                    d.value.as_str(),
                    d.issued_date.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("br_cpf", "BR", "12345678909", "2026-12-01"),
                ("eu_vat", "GR", "EL123456789", ""),
                ("eu_vat", "AT", "ATU12345678", ""),
                ("other", "", "Contract 42/2024", ""),
                ("other", "PT", "SO-1", ""),
            ]
        );
    }

    #[test]
    fn each_document_rule_names_its_field() {
        let long = "x".repeat(251);
        let entries = [
            doc("", "", "1"),
            doc("passport", "", "1"),
            doc("other", "", ""),
            doc("other", "", &long),
            doc("other", "XX", "1"),
            doc("br_cpf", "", "123.456.789-87"),
            doc("br_cpf", "AR", "123.456.789-09"),
            doc("eu_vat", "FR", "DE123456789"),
            LegalDocumentFields {
                issued_date: "2026-12-02",
                ..doc("other", "", "1")
            },
            LegalDocumentFields {
                issued_date: "2026-02-30",
                ..doc("other", "", "1")
            },
            LegalDocumentFields {
                issued_date: "2026-2-3",
                ..doc("other", "", "1")
            },
            LegalDocumentFields {
                issued_date: "01/02/2026",
                ..doc("other", "", "1")
            },
        ];
        let (_, fields) = run(&entries);
        assert_eq!(
            fields,
            [
                "d[0].type",
                "d[1].type",
                "d[2].value",
                "d[3].value",
                "d[4].country",
                "d[5].value",
                "d[6].country",
                "d[7].value",
                "d[8].issued_date",
                "d[9].issued_date",
                "d[10].issued_date",
                "d[11].issued_date"
            ]
        );
        let too_many: Vec<_> = (0..21).map(|_| doc("other", "", "1")).collect();
        assert_eq!(run(&too_many).1, ["d"]);
    }
}
