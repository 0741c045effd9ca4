//! Country and currency codes. The tables come from `iso_currency` (ISO 4217, with the
//! superseded codes flagged) and the `iso_country` crate it is built on (ISO 3166-1),
//! so the two lists are released together.

use std::str::FromStr;

/// An ISO 3166-1 alpha-2 code in any case, returned upper-case (`br` → `BR`). Empty is
/// `is required`: callers that allow no country check for empty first.
pub fn parse_country(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("is required".into());
    }
    let code = text.to_ascii_uppercase();
    // The crate's table also holds "" (its `Unspecified`), so the shape is checked here.
    if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err("must be an ISO 3166-1 alpha-2 country code, such as `BR`".into());
    }
    iso_country::Country::from_str(&code)
        .map(|_| code)
        .map_err(|_| format!("`{text}` is not an ISO 3166-1 alpha-2 country code"))
}

/// An active ISO 4217 alpha-3 code in any case, returned upper-case (`eur` → `EUR`).
/// Superseded codes (`HRK`, `BGN`) and the codes meaning "no currency" (`XXX`) and
/// "testing" (`XTS`) are refused: none of them can be a customer's currency.
pub fn parse_currency(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("is required".into());
    }
    let code = text.to_ascii_uppercase();
    let currency = iso_currency::Currency::from_code(&code)
        .ok_or_else(|| format!("`{text}` is not an ISO 4217 currency code"))?;
    if let Some(successor) = currency.is_superseded() {
        return Err(format!(
            "`{code}` is no longer an active ISO 4217 code; it was replaced by `{}`",
            successor.code()
        ));
    }
    if matches!(code.as_str(), "XXX" | "XTS") {
        return Err(format!("`{code}` is not a currency"));
    }
    Ok(code)
}

/// Empty is `None`; anything else must parse.
pub fn optional<T>(
    text: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<T>, String> {
    if text.trim().is_empty() {
        Ok(None)
    } else {
        parse(text).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countries_are_iso_alpha2_in_any_case_stored_upper_case() {
        assert_eq!(parse_country("BR"), Ok("BR".into()));
        assert_eq!(parse_country(" gb "), Ok("GB".into()));
        assert_eq!(parse_country("Ss"), Ok("SS".into()));
        for bad in ["", "XX", "UK", "EL", "BRA", "B", "1A", "É"] {
            assert!(parse_country(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn currencies_are_active_iso_4217_codes() {
        assert_eq!(parse_currency("EUR"), Ok("EUR".into()));
        assert_eq!(parse_currency("brl"), Ok("BRL".into()));
        assert_eq!(parse_currency("CHF"), Ok("CHF".into()));
        for bad in ["", "EU", "ABC", "HRK", "XXX", "XTS", "EURO"] {
            assert!(parse_currency(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn optional_maps_empty_to_none() {
        assert_eq!(optional("  ", parse_country), Ok(None));
        assert_eq!(optional("us", parse_country), Ok(Some("US".into())));
        assert!(optional("zz", parse_country).is_err());
    }
}
