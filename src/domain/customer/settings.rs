//! `customer_settings`: the few keys the platform reads; the rest are dropped.

use std::str::FromStr;

use serde_json::Value;

use crate::domain::{Result, geo::parse_country, metadata::JsonObject, violations::Violations};

pub const SETTING_KEYS: [&str; 4] = ["url", "logo", "timezone", "locale"];
pub const MAX_URL_LEN: usize = 2048;

/// Keeps the recognised keys, each validated: `url` and `logo` absolute http(s) URLs,
/// `timezone` an IANA name (`America/Sao_Paulo`), `locale` as in `parse_locale`. Other
/// keys are dropped; `null` is an unset key. A recognised key with another value is a
/// violation at `{field}.{key}`.
pub fn parse_settings(field: &str, object: Option<&JsonObject>) -> Result<JsonObject> {
    let mut settings = JsonObject::new();
    let Some(object) = object else {
        return Ok(settings);
    };
    let mut violations = Violations::new();
    for (key, value) in object {
        let parse: fn(&str) -> Result<String, String> = match key.as_str() {
            "url" | "logo" => parse_web_url,
            "timezone" => parse_timezone,
            "locale" => parse_locale,
            _ => continue,
        };
        let path = format!("{field}.{key}");
        match value {
            Value::Null => {}
            Value::String(text) => {
                if let Some(value) = violations.check(&path, parse(text)) {
                    settings.insert(key.clone(), Value::String(value));
                }
            }
            _ => violations.add(path, "must be a string"),
        }
    }
    violations.finish()?;
    Ok(settings)
}

/// An absolute `http` or `https` URL with a host, in the `url` crate's normal form.
pub fn parse_web_url(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("must not be empty".into());
    }
    if text.len() > MAX_URL_LEN {
        return Err(format!("must be at most {MAX_URL_LEN} characters"));
    }
    let url = url::Url::parse(text).map_err(|e| format!("is not an absolute URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http or https URL".into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must have a host".into());
    }
    Ok(url.into())
}

/// An IANA time zone name, exactly as the tz database spells it (`Europe/Lisbon`).
pub fn parse_timezone(text: &str) -> Result<String, String> {
    let text = text.trim();
    chrono_tz::Tz::from_str(text)
        .map(|tz| tz.name().to_string())
        .map_err(|_| format!("`{text}` is not an IANA time zone name, such as `Europe/Lisbon`"))
}

/// A POSIX-style locale `language_TERRITORY` (`en_US`, `pt_BR`, `es_419`) or a bare
/// language (`fr`): a registered ISO 639 language of 2..3 letters and an ISO 3166-1
/// country or a UN M.49 three-digit region. `-` is accepted for `_`; the result is
/// `ll_TT` (language lower-case, territory upper-case). Script and variant parts are
/// refused, as the platform's locale files are per language and territory only.
pub fn parse_locale(text: &str) -> Result<String, String> {
    let bad = || format!("`{}` is not a locale like `en_US`", text.trim());
    let text = text.trim();
    let (language, territory) = match text.split_once(['_', '-']) {
        Some((language, territory)) => (language, Some(territory)),
        None => (text, None),
    };
    if !(2..=3).contains(&language.len()) || !language.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(bad());
    }
    let language = language.to_ascii_lowercase();
    // language-tags checks the subtag against the IANA registry.
    let registered = language_tags::LanguageTag::parse(&language)
        .ok()
        .is_some_and(|tag| tag.validate().is_ok());
    if !registered {
        return Err(bad());
    }
    let territory = match territory {
        None => return Ok(language),
        Some(code) if code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()) => {
            code.to_string()
        }
        Some(code) if code.len() == 2 => parse_country(code).map_err(|_| bad())?,
        Some(_) => return Err(bad()),
    };
    Ok(format!("{language}_{territory}"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::Error;

    fn object(value: Value) -> JsonObject {
        match value {
            Value::Object(map) => map,
            _ => panic!("test input must be an object"),
        }
    }

    #[test]
    fn recognised_keys_are_kept_normalised_and_others_dropped() {
        let input = object(json!({
            "url": "https://Acme.com", "logo": "http://cdn.acme.com/logo.png",
            "timezone": "America/Sao_Paulo", "locale": "pt-br", "theme": "dark", "x": 1
        }));
        let want = object(json!({
            "url": "https://acme.com/", "logo": "http://cdn.acme.com/logo.png",
            "timezone": "America/Sao_Paulo", "locale": "pt_BR"
        }));
        assert_eq!(parse_settings("s", Some(&input)).ok(), Some(want));
        let nulls = object(json!({"url": null}));
        assert_eq!(
            parse_settings("s", Some(&nulls)).ok(),
            Some(JsonObject::new())
        );
    }

    #[test]
    fn a_recognised_key_with_a_bad_value_is_a_violation_at_that_key() {
        let input = object(json!({
            "url": "ftp://acme.com", "logo": 5, "timezone": "Mars/Olympus", "locale": "english",
            "other": {"deep": [1]}
        }));
        let Err(Error::InvalidArgument(list)) = parse_settings("c.s", Some(&input)) else {
            panic!("expected violations");
        };
        let mut fields: Vec<_> = list.into_iter().map(|v| v.field).collect();
        fields.sort();
        assert_eq!(
            fields,
            ["c.s.locale", "c.s.logo", "c.s.timezone", "c.s.url"]
        );
    }

    #[test]
    fn urls_must_be_absolute_http_or_https() {
        assert!(parse_web_url("https://acme.com/a?b=c").is_ok());
        for bad in [
            "",
            "acme.com",
            "/logo.png",
            "mailto:a@acme.com",
            "javascript:alert(1)",
            "file:///etc/passwd",
            "https://",
        ] {
            assert!(parse_web_url(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn time_zones_are_iana_names() {
        assert_eq!(parse_timezone("Europe/Lisbon"), Ok("Europe/Lisbon".into()));
        assert_eq!(parse_timezone("UTC"), Ok("UTC".into()));
        for bad in ["", "Europe/Atlantis", "GMT+25", "europe/lisbon?"] {
            assert!(parse_timezone(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn locales_are_language_and_territory() {
        assert_eq!(parse_locale("en_US"), Ok("en_US".into()));
        assert_eq!(parse_locale("PT-br"), Ok("pt_BR".into()));
        assert_eq!(parse_locale("es_419"), Ok("es_419".into()));
        assert_eq!(parse_locale("fr"), Ok("fr".into()));
        for bad in [
            "",
            "e",
            "english",
            "en_XX",
            "en_USA",
            "zh_Hant_TW",
            "zz_US",
            "xq_US",
            "en_",
            "1n_US",
        ] {
            assert!(parse_locale(bad).is_err(), "{bad} was accepted");
        }
    }
}
