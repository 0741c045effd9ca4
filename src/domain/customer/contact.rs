//! Addresses and telephones of a customer.

use std::collections::HashSet;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::domain::{geo::parse_country, violations::Violations};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AddressType {
    Postal,
    Billing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TelephoneType {
    Landline,
    Mobile,
}

/// A validated address. Empty optional parts are empty strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub address_type: AddressType,
    pub default: bool,
    pub country: String,
    pub state: String,
    pub postal_code: String,
    pub city: String,
    pub address_line1: String,
    pub address_line2: String,
    pub po_box: String,
    pub building_number: String,
    pub complement: String,
}

/// A validated telephone: `number` in E.164 (`+14155551234`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Telephone {
    pub telephone_type: TelephoneType,
    pub default: bool,
    pub number: String,
    pub telephone_extension: String,
}

#[derive(Debug, Clone, Default)]
pub struct AddressFields<'a> {
    pub address_type: Option<AddressType>,
    pub default: bool,
    pub country: &'a str,
    pub state: &'a str,
    pub postal_code: &'a str,
    pub city: &'a str,
    pub address_line1: &'a str,
    pub address_line2: &'a str,
    pub po_box: &'a str,
    pub building_number: &'a str,
    pub complement: &'a str,
}

#[derive(Debug, Clone, Default)]
pub struct TelephoneFields<'a> {
    pub telephone_type: Option<TelephoneType>,
    pub default: bool,
    pub number: &'a str,
    pub telephone_extension: &'a str,
}

pub const MAX_ADDRESSES: usize = 20;
pub const MAX_TELEPHONES: usize = 20;
pub const MAX_EXTENSION_DIGITS: usize = 10;
/// Longer input is no telephone number; refusing it early keeps the parser's work small.
const MAX_NUMBER_INPUT_LEN: usize = 64;

/// Validates the addresses: at most 20, each with a type and an ISO country (required:
/// addresses are for taxes and shipping, which need the country), parts trimmed and
/// bounded, at most one default per `address_type`. Violations name
/// `{field}[i].{part}`.
pub fn parse_addresses(
    violations: &mut Violations,
    field: &str,
    entries: &[AddressFields<'_>],
) -> Vec<Address> {
    if entries.len() > MAX_ADDRESSES {
        violations.add(field, format!("must have at most {MAX_ADDRESSES} entries"));
    }
    let mut defaults = HashSet::new();
    let mut addresses = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let at = |part: &str| format!("{field}[{index}].{part}");
        let address_type = entry.address_type;
        if address_type.is_none() {
            violations.add(at("address_type"), "is required: POSTAL or BILLING");
        }
        if let Some(kind) = address_type
            && entry.default
            && !defaults.insert(kind)
        {
            violations.add(
                at("default"),
                "only one address of each type may be the default",
            );
        }
        let country = violations.check(&at("country"), parse_country(entry.country));
        let mut text = |part: &str, value: &str, max: usize| {
            violations
                .check(&at(part), bounded_text(value, max))
                .unwrap_or_default()
        };
        let state = text("state", entry.state, 100);
        let postal_code = text("postal_code", entry.postal_code, 20);
        let city = text("city", entry.city, 100);
        let address_line1 = text("address_line1", entry.address_line1, 200);
        let address_line2 = text("address_line2", entry.address_line2, 200);
        let po_box = text("po_box", entry.po_box, 20);
        let building_number = text("building_number", entry.building_number, 20);
        let complement = text("complement", entry.complement, 200);
        if let (Some(address_type), Some(country)) = (address_type, country) {
            addresses.push(Address {
                address_type,
                default: entry.default,
                country,
                state,
                postal_code,
                city,
                address_line1,
                address_line2,
                po_box,
                building_number,
                complement,
            });
        }
    }
    addresses
}

/// Validates the telephones: at most 20, each with a type and a number stored in E.164,
/// parsed with `country` (the customer's) as the default region, so a national number
/// needs one; an extension of at most 10 digits (written in the number, `ext. 12`, when
/// the field is empty); at most one default. Violations name `{field}[i].{part}`.
pub fn parse_telephones(
    violations: &mut Violations,
    field: &str,
    entries: &[TelephoneFields<'_>],
    country: Option<&str>,
) -> Vec<Telephone> {
    if entries.len() > MAX_TELEPHONES {
        violations.add(field, format!("must have at most {MAX_TELEPHONES} entries"));
    }
    let region = country.and_then(|code| phonenumber::country::Id::from_str(code).ok());
    let mut has_default = false;
    let mut telephones = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let at = |part: &str| format!("{field}[{index}].{part}");
        let telephone_type = entry.telephone_type;
        if telephone_type.is_none() {
            violations.add(at("telephone_type"), "is required: LANDLINE or MOBILE");
        }
        if entry.default && std::mem::replace(&mut has_default, true) {
            violations.add(at("default"), "only one telephone may be the default");
        }
        let parsed = violations.check(&at("number"), parse_number(entry.number, region));
        let extension = match (&parsed, entry.telephone_extension.trim()) {
            (Some((_, Some(in_number))), "") => in_number.clone(),
            (_, given) => given.to_string(),
        };
        let extension = violations.check(&at("telephone_extension"), check_extension(extension));
        if let (Some(telephone_type), Some((number, _)), Some(telephone_extension)) =
            (telephone_type, parsed, extension)
        {
            telephones.push(Telephone {
                telephone_type,
                default: entry.default,
                number,
                telephone_extension,
            });
        }
    }
    telephones
}

/// The number in E.164 and the extension written in it, if any.
fn parse_number(
    text: &str,
    region: Option<phonenumber::country::Id>,
) -> Result<(String, Option<String>), String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("is required".into());
    }
    if text.len() > MAX_NUMBER_INPUT_LEN {
        return Err(format!("must be at most {MAX_NUMBER_INPUT_LEN} characters"));
    }
    let number = phonenumber::parse(region, text).map_err(|e| match e {
        phonenumber::ParseError::InvalidCountryCode if region.is_none() => {
            "has no country code: write it as +<country code> <number> (a national number needs the customer's country)".to_string()
        }
        other => format!("is not a telephone number: {other}"),
    })?;
    if !number.is_valid() {
        return Err("is not a valid telephone number for its country".into());
    }
    let e164 = number.format().mode(phonenumber::Mode::E164).to_string();
    Ok((e164, number.extension().map(|ext| ext.to_string())))
}

fn check_extension(extension: String) -> Result<String, String> {
    if extension.len() > MAX_EXTENSION_DIGITS || !extension.bytes().all(|b| b.is_ascii_digit()) {
        Err(format!("must be at most {MAX_EXTENSION_DIGITS} digits"))
    } else {
        Ok(extension)
    }
}

/// Optional free text: trimmed, at most `max` characters, no control characters.
pub(crate) fn bounded_text(text: &str, max: usize) -> Result<String, String> {
    let text = text.trim();
    if text.chars().count() > max {
        Err(format!("must be at most {max} characters"))
    } else if text.chars().any(char::is_control) {
        Err("must not contain control characters".into())
    } else {
        Ok(text.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Error;

    fn fields(violations: Violations) -> Vec<String> {
        match violations.finish() {
            Err(Error::InvalidArgument(list)) => list.into_iter().map(|v| v.field).collect(),
            _ => Vec::new(),
        }
    }

    fn phone<'a>(number: &'a str, default: bool) -> TelephoneFields<'a> {
        TelephoneFields {
            telephone_type: Some(TelephoneType::Mobile),
            default,
            number,
            telephone_extension: "",
        }
    }

    #[test]
    fn numbers_are_stored_in_e164_with_the_country_as_default_region() {
        let mut violations = Violations::new();
        let entries = [
            phone("(11) 98765-4321", true),
            phone("+1 415 555 2671", false),
            TelephoneFields {
                telephone_extension: "123",
                ..phone("+44 20 7946 0958", false)
            },
        ];
        let got = parse_telephones(&mut violations, "t", &entries, Some("BR"));
        assert!(violations.is_empty(), "{violations:?}");
        let numbers: Vec<_> = got.iter().map(|t| t.number.as_str()).collect();
        assert_eq!(numbers, ["+5511987654321", "+14155552671", "+442079460958"]);
        assert_eq!(got[2].telephone_extension, "123");
        assert!(got[0].default && !got[1].default);
    }

    #[test]
    fn a_national_number_without_a_country_is_a_violation() {
        let mut violations = Violations::new();
        let entries = [
            phone("(11) 98765-4321", false),
            phone("+55 11 98765-4321", false),
        ];
        let got = parse_telephones(&mut violations, "t", &entries, None);
        assert_eq!(got.len(), 1);
        assert_eq!(fields(violations), ["t[0].number"]);
    }

    #[test]
    fn telephone_rules_each_name_their_field() {
        let mut violations = Violations::new();
        let too_many: Vec<_> = (0..21).map(|_| phone("+14155552671", false)).collect();
        parse_telephones(&mut violations, "many", &too_many, None);
        let entries = [
            TelephoneFields {
                telephone_type: None,
                ..phone("+14155552671", true)
            },
            phone("+14155552671", true),
            phone("12", false),
            phone("not a number", false),
            TelephoneFields {
                telephone_extension: "12345678901",
                ..phone("+14155552671", false)
            },
            TelephoneFields {
                telephone_extension: "12a",
                ..phone("+14155552671", false)
            },
            phone("+1 415 555 2671 ext. 77", false),
        ];
        let got = parse_telephones(&mut violations, "t", &entries, Some("US"));
        assert_eq!(
            fields(violations),
            [
                "many",
                "t[0].telephone_type",
                "t[1].default",
                "t[2].number",
                "t[3].number",
                "t[4].telephone_extension",
                "t[5].telephone_extension"
            ]
        );
        assert_eq!(
            got.last().map(|t| t.telephone_extension.as_str()),
            Some("77")
        );
    }

    fn address<'a>(address_type: AddressType, default: bool) -> AddressFields<'a> {
        AddressFields {
            address_type: Some(address_type),
            default,
            country: "br",
            city: " São Paulo ",
            address_line1: "Av. Paulista, 1000",
            ..Default::default()
        }
    }

    #[test]
    fn addresses_allow_one_default_per_type() {
        let mut violations = Violations::new();
        let entries = [
            address(AddressType::Postal, true),
            address(AddressType::Billing, true),
            address(AddressType::Postal, false),
        ];
        let got = parse_addresses(&mut violations, "a", &entries);
        assert!(violations.is_empty());
        assert_eq!(got.len(), 3);
        assert_eq!(
            (got[0].country.as_str(), got[0].city.as_str()),
            ("BR", "São Paulo")
        );

        let mut violations = Violations::new();
        let entries = [
            address(AddressType::Billing, true),
            address(AddressType::Billing, true),
        ];
        parse_addresses(&mut violations, "a", &entries);
        assert_eq!(fields(violations), ["a[1].default"]);
    }

    #[test]
    fn address_rules_each_name_their_field() {
        let mut violations = Violations::new();
        let long = "x".repeat(201);
        let entries = [
            AddressFields {
                address_type: None,
                ..address(AddressType::Postal, false)
            },
            AddressFields {
                country: "",
                ..address(AddressType::Postal, false)
            },
            AddressFields {
                country: "XX",
                ..address(AddressType::Postal, false)
            },
            AddressFields {
                address_line1: &long,
                ..address(AddressType::Postal, false)
            },
            AddressFields {
                postal_code: "0123456789012345678901",
                ..address(AddressType::Postal, false)
            },
            AddressFields {
                city: "a\u{0}b",
                ..address(AddressType::Postal, false)
            },
        ];
        let got = parse_addresses(&mut violations, "a", &entries);
        let too_many: Vec<_> = (0..21)
            .map(|_| address(AddressType::Postal, false))
            .collect();
        parse_addresses(&mut violations, "many", &too_many);
        assert_eq!(
            fields(violations),
            [
                "a[0].address_type",
                "a[1].country",
                "a[2].country",
                "a[3].address_line1",
                "a[4].postal_code",
                "a[5].city",
                "many"
            ]
        );
        assert_eq!(
            got.len(),
            3,
            "entries whose only faults are text parts are still built"
        );
    }

    #[test]
    fn odd_input_is_refused_without_panicking() {
        // A fixed pseudo-random walk over characters that numbers and their decorations
        // are made of, so a parser panic shows up here and not in a request.
        let alphabet: Vec<char> = "+0123456789 ()-./#*;=xet\u{ff11}\u{0661}a"
            .chars()
            .collect();
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |bound: usize| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            (state >> 33) as usize % bound
        };
        for round in 0..2_000 {
            let length = next(30);
            let text: String = (0..length)
                .map(|_| alphabet[next(alphabet.len())])
                .collect();
            let region = [None, Some("US"), Some("BR"), Some("AQ")][round % 4];
            let mut violations = Violations::new();
            parse_telephones(&mut violations, "t", &[phone(&text, false)], region);
        }
    }
}
