//! Format checks of tax identifiers, per document type. Written by hand: no maintained
//! Rust crate covers these (the Python `stdnum` has no Rust counterpart). Check digits
//! are verified where SPEC asks for them or the algorithm is a few lines (CPF, CNPJ,
//! ABN, CUIT); the others are format checks. Values are stored compact: upper-case,
//! without spaces, dots, dashes or slashes.

use std::sync::LazyLock;

use regex::Regex;

/// A checked value, and the country it belongs to.
#[derive(Debug, PartialEq, Eq)]
pub struct Checked {
    pub value: String,
    pub country: String,
}

/// Which part of the document a failure is about.
#[derive(Debug, PartialEq, Eq)]
pub enum Fault {
    Value(String),
    Country(String),
}

/// EU VAT prefixes (VIES), the ISO country each belongs to, and the format of the rest.
/// Greece is `EL`; `XI` is Northern Ireland, which VIES still serves.
const EU_VAT: [(&str, &str, &str); 28] = [
    ("AT", "AT", r"U\d{8}"),
    ("BE", "BE", r"[01]\d{9}"),
    ("BG", "BG", r"\d{9,10}"),
    ("CY", "CY", r"\d{8}[A-Z]"),
    ("CZ", "CZ", r"\d{8,10}"),
    ("DE", "DE", r"\d{9}"),
    ("DK", "DK", r"\d{8}"),
    ("EE", "EE", r"\d{9}"),
    ("EL", "GR", r"\d{9}"),
    ("ES", "ES", r"[0-9A-Z]\d{7}[0-9A-Z]"),
    ("FI", "FI", r"\d{8}"),
    ("FR", "FR", r"[0-9A-HJ-NP-Z]{2}\d{9}"),
    ("HR", "HR", r"\d{11}"),
    ("HU", "HU", r"\d{8}"),
    ("IE", "IE", r"\d{7}[A-W][A-IW]?|\d[A-Z+*]\d{5}[A-W]"),
    ("IT", "IT", r"\d{11}"),
    ("LT", "LT", r"\d{9}|\d{12}"),
    ("LU", "LU", r"\d{8}"),
    ("LV", "LV", r"\d{11}"),
    ("MT", "MT", r"\d{8}"),
    ("NL", "NL", r"\d{9}B\d{2}"),
    ("PL", "PL", r"\d{10}"),
    ("PT", "PT", r"\d{9}"),
    ("RO", "RO", r"[1-9]\d{1,9}"),
    ("SE", "SE", r"\d{10}01"),
    ("SI", "SI", r"\d{8}"),
    ("SK", "SK", r"\d{10}"),
    ("XI", "GB", r"\d{9}|\d{12}|GD[0-4]\d{2}|HA[5-9]\d{2}"),
];

fn anchored(pattern: &str) -> Regex {
    // Every pattern is a constant of this file, covered by the tests below.
    Regex::new(&format!("^(?:{pattern})$")).expect("constant pattern")
}

static EU_VAT_FORMATS: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    EU_VAT
        .iter()
        .map(|(_, _, pattern)| anchored(pattern))
        .collect()
});

/// Per type: its country and the format of the compact value.
fn national_format(kind: &str) -> Option<(&'static str, &'static Regex)> {
    static FORMATS: LazyLock<Vec<(&str, &str, Regex)>> = LazyLock::new(|| {
        [
            ("br_cpf", "BR", r"\d{11}"),
            // Since July 2026 new CNPJs may hold letters in the first twelve places.
            ("br_cnpj", "BR", r"[0-9A-Z]{12}\d{2}"),
            (
                "gb_vat",
                "GB",
                r"GB(?:\d{9}|\d{12}|GD[0-4]\d{2}|HA[5-9]\d{2})",
            ),
            ("ch_vat", "CH", r"CHE\d{9}(?:MWST|TVA|IVA|TPV)?"),
            ("no_vat", "NO", r"NO\d{9}MVA"),
            ("us_ein", "US", r"\d{9}"),
            ("ca_bn", "CA", r"\d{9}(?:[A-Z]{2}\d{4})?"),
            ("au_abn", "AU", r"\d{11}"),
            (
                "in_gst",
                "IN",
                r"(?:0[1-9]|[12]\d|3[0-8]|97|99)[A-Z]{5}\d{4}[A-Z][1-9A-Z]Z[0-9A-Z]",
            ),
            ("mx_rfc", "MX", r"[A-ZÑ&]{3,4}\d{6}[A-Z0-9]{3}"),
            ("ar_cuit", "AR", r"(?:20|23|24|25|26|27|30|33|34)\d{9}"),
        ]
        .into_iter()
        .map(|(kind, country, pattern)| (kind, country, anchored(pattern)))
        .collect()
    });
    FORMATS
        .iter()
        .find(|(name, _, _)| *name == kind)
        .map(|(_, country, format)| (*country, format))
}

/// The shapes a caller may write these in, before compacting: SPEC names them.
static BR_CPF_INPUT: LazyLock<Regex> =
    LazyLock::new(|| anchored(r"\d{3}\.\d{3}\.\d{3}-\d{2}|\d{11}"));
static BR_CNPJ_INPUT: LazyLock<Regex> = LazyLock::new(|| {
    anchored(r"[0-9A-Z]{2}\.[0-9A-Z]{3}\.[0-9A-Z]{3}/[0-9A-Z]{4}-\d{2}|[0-9A-Z]{12}\d{2}")
});

/// Whether `kind` is a national type this module checks (every type but `eu_vat` and
/// `other`).
pub fn is_national(kind: &str) -> bool {
    national_format(kind).is_some()
}

/// Checks `value` (trimmed, non-empty) as a document of `kind` (`eu_vat` or a national
/// type), `country` being the document's ISO country if the caller gave one.
pub fn check(kind: &str, value: &str, country: Option<&str>) -> Result<Checked, Fault> {
    let compact: String = value
        .chars()
        .filter(|c| !matches!(c, ' ' | '.' | '-' | '/'))
        .flat_map(char::to_uppercase)
        .collect();
    if kind == "eu_vat" {
        return check_eu_vat(&compact, country);
    }
    let Some((home, format)) = national_format(kind) else {
        return Err(Fault::Value(format!("`{kind}` is not a document type")));
    };
    if let Some(country) = country
        && country != home
    {
        return Err(Fault::Country(format!("a {kind} is issued in {home}")));
    }
    let upper = value.to_uppercase();
    let shape_ok = match kind {
        "br_cpf" => BR_CPF_INPUT.is_match(&upper),
        "br_cnpj" => BR_CNPJ_INPUT.is_match(&upper),
        _ => true,
    };
    let compact = match kind {
        "gb_vat" if !compact.starts_with("GB") => format!("GB{compact}"),
        "no_vat" => {
            let digits = compact.trim_start_matches("NO").trim_end_matches("MVA");
            format!("NO{digits}MVA")
        }
        _ => compact,
    };
    if !shape_ok || !format.is_match(&compact) {
        return Err(Fault::Value(format!("is not in the format of a {kind}")));
    }
    let sound = match kind {
        "br_cpf" => cpf_is_sound(&compact),
        "br_cnpj" => cnpj_is_sound(&compact),
        "au_abn" => abn_is_sound(&compact),
        "ar_cuit" => cuit_is_sound(&compact),
        "mx_rfc" => rfc_date_is_sound(&compact),
        "us_ein" => ein_prefix_is_sound(&compact),
        _ => true,
    };
    if !sound {
        return Err(Fault::Value(format!(
            "is not a valid {kind}: its check digits or date do not match"
        )));
    }
    Ok(Checked {
        value: compact,
        country: home.to_string(),
    })
}

fn check_eu_vat(compact: &str, country: Option<&str>) -> Result<Checked, Fault> {
    let prefix = compact.get(..2).unwrap_or_default();
    if prefix == "GR" {
        return Err(Fault::Value(
            "Greek VAT numbers start with `EL`, not `GR`".into(),
        ));
    }
    let Some(index) = EU_VAT.iter().position(|(p, _, _)| *p == prefix) else {
        return Err(Fault::Value(
            "must start with the member state's VAT prefix, such as `DE` or `EL`".into(),
        ));
    };
    let (_, home, _) = EU_VAT[index];
    if let Some(country) = country
        && country != home
    {
        return Err(Fault::Value(format!(
            "the prefix `{prefix}` belongs to {home}, not to the document's country {country}"
        )));
    }
    let body = compact.get(2..).unwrap_or_default();
    let matches = EU_VAT_FORMATS.get(index).is_some_and(|f| f.is_match(body));
    // Spain's format allows a letter at either end but needs at least one.
    let spanish_letter = prefix != "ES" || body.bytes().any(|b| b.is_ascii_alphabetic());
    if !matches || !spanish_letter {
        return Err(Fault::Value(format!(
            "is not in the format of a {prefix} VAT number"
        )));
    }
    Ok(Checked {
        value: compact.to_string(),
        country: home.to_string(),
    })
}

/// Digit values, `0`-`9` as 0..9 and `A`-`Z` as 17..42 (ASCII - 48), as the
/// alphanumeric CNPJ defines them; the same as the digits for numeric values.
fn values(text: &str) -> Vec<u32> {
    text.bytes()
        .map(|b| u32::from(b.saturating_sub(b'0')))
        .collect()
}

fn weighted(digits: &[u32], weights: &[u32]) -> u32 {
    digits.iter().zip(weights).map(|(d, w)| d * w).sum()
}

fn all_same(text: &str) -> bool {
    text.bytes().all(|b| Some(&b) == text.as_bytes().first())
}

fn cpf_is_sound(cpf: &str) -> bool {
    let d = values(cpf);
    if d.len() != 11 || all_same(cpf) {
        return false;
    }
    let check = |n: usize| {
        let weights: Vec<u32> = (2..=n as u32 + 1).rev().collect();
        (weighted(&d[..n], &weights) * 10 % 11) % 10
    };
    check(9) == d[9] && check(10) == d[10]
}

fn cnpj_is_sound(cnpj: &str) -> bool {
    let d = values(cnpj);
    if d.len() != 14 || all_same(cnpj) {
        return false;
    }
    let check = |n: usize| {
        let weights = &[6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2][13 - n..];
        match weighted(&d[..n], weights) % 11 {
            0 | 1 => 0,
            r => 11 - r,
        }
    };
    check(12) == d[12] && check(13) == d[13]
}

fn abn_is_sound(abn: &str) -> bool {
    let mut d = values(abn);
    let Some(first) = d.first_mut().filter(|first| **first > 0) else {
        return false;
    };
    *first -= 1;
    weighted(&d, &[10, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19]).is_multiple_of(89)
}

fn cuit_is_sound(cuit: &str) -> bool {
    let d = values(cuit);
    if d.len() != 11 {
        return false;
    }
    match 11 - weighted(&d[..10], &[5, 4, 3, 2, 7, 6, 5, 4, 3, 2]) % 11 {
        11 => d[10] == 0,
        10 => false,
        check => d[10] == check,
    }
}

/// The six digits of an RFC are the date of birth or incorporation, `YYMMDD`.
fn rfc_date_is_sound(rfc: &str) -> bool {
    let chars: Vec<char> = rfc.chars().collect();
    let start = chars.len().saturating_sub(9);
    let date: String = chars.iter().skip(start).take(6).collect();
    // Tried in both centuries, since `YY` = 00 is a leap year as 2000 but not as 1900.
    chrono::NaiveDate::parse_from_str(&format!("20{date}"), "%Y%m%d").is_ok()
        || chrono::NaiveDate::parse_from_str(&format!("19{date}"), "%Y%m%d").is_ok()
}

/// EINs start with an IRS campus number; these were never assigned.
fn ein_prefix_is_sound(ein: &str) -> bool {
    const UNASSIGNED: [&str; 17] = [
        "00", "07", "08", "09", "17", "18", "19", "28", "29", "49", "69", "70", "78", "79", "89",
        "96", "97",
    ];
    !UNASSIGNED.contains(&ein.get(..2).unwrap_or_default())
}

#[cfg(test)]
#[path = "tax_ids_tests.rs"]
mod tests;
