//! Domain names: the customer's own `hostname`, the CORS origins and the email domains
//! allowed to register. All are stored in ASCII (punycode), lower-case, so a Unicode
//! name and its punycode form are the same value.

use std::collections::HashSet;

use crate::domain::violations::Violations;

pub const MAX_HOSTNAME_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;
pub const MAX_DOMAIN_LIST_LEN: usize = 50;

/// A fully qualified domain name (IDNA, UTS #46), returned in ASCII lower-case
/// (`Bücher.example` and `xn--bcher-kva.example` both give `xn--bcher-kva.example`).
/// At least two labels of letters, digits and inner `-`, at most 253 characters; one
/// trailing dot is dropped; IP addresses are refused.
pub fn parse_hostname(text: &str) -> Result<String, String> {
    let text = text.trim();
    let text = text.strip_suffix('.').unwrap_or(text);
    if text.is_empty() {
        return Err("is required".into());
    }
    if text.len() > 4 * MAX_HOSTNAME_LEN {
        return Err(format!("must be at most {MAX_HOSTNAME_LEN} characters"));
    }
    // STD3 rules keep ASCII to letters, digits and `-`, so `:`, `/`, `@`, `_`, `*` and
    // spaces fail here, IPv6 literals included.
    let ascii = idna::domain_to_ascii_cow(text.as_bytes(), idna::AsciiDenyList::STD3)
        .map_err(|_| "is not a valid domain name".to_string())?;
    if ascii.len() > MAX_HOSTNAME_LEN {
        return Err(format!("must be at most {MAX_HOSTNAME_LEN} characters"));
    }
    let labels: Vec<&str> = ascii.split('.').collect();
    if labels.len() < 2 {
        return Err("must be a fully qualified domain name, such as `app.example.com`".into());
    }
    for label in &labels {
        if label.is_empty() || label.len() > MAX_LABEL_LEN {
            return Err(format!("each label must be 1..{MAX_LABEL_LEN} characters"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label must not start or end with `-`".into());
        }
    }
    // No top-level domain is numeric, so this refuses IPv4 addresses in every spelling.
    if labels
        .last()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("must be a domain name, not an IP address".into());
    }
    Ok(ascii.into_owned())
}

/// One CORS origin: `http(s)://host[:port]` or a bare domain, returned as
/// `scheme://host[:port]` (default ports dropped) or the bare domain, host as in
/// `parse_hostname`. Paths (other than `/`), queries, fragments and credentials are
/// refused: an origin has none.
pub fn parse_origin(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("must not be empty".into());
    }
    if !text.contains("://") {
        return parse_hostname(text);
    }
    let url = url::Url::parse(text).map_err(|e| format!("is not a valid origin: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must use http or https".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain credentials".into());
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err("must be only `scheme://host[:port]`, without a path or query".into());
    }
    let host = match url.host() {
        Some(url::Host::Domain(domain)) => parse_hostname(domain)?,
        Some(_) => return Err("must be a domain name, not an IP address".into()),
        None => return Err("must have a host".into()),
    };
    // `Url` already drops the scheme's default port.
    Ok(match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    })
}

/// Validates a list of at most 50 entries with `parse`, reporting `{field}[i]`, and
/// drops duplicates (after normalisation), keeping the first.
pub(crate) fn parse_domain_list(
    violations: &mut Violations,
    field: &str,
    entries: &[String],
    parse: fn(&str) -> Result<String, String>,
) -> Vec<String> {
    if entries.len() > MAX_DOMAIN_LIST_LEN {
        violations.add(
            field,
            format!(
                "must have at most {MAX_DOMAIN_LIST_LEN} entries, has {}",
                entries.len()
            ),
        );
    }
    let mut seen = HashSet::new();
    let mut kept = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        if let Some(value) = violations.check(&format!("{field}[{index}]"), parse(entry))
            && seen.insert(value.clone())
        {
            kept.push(value);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unicode_and_punycode_hostnames_give_one_ascii_lower_case_value() {
        let punycode = Ok("xn--bcher-kva.example".to_string());
        assert_eq!(parse_hostname("Bücher.Example"), punycode);
        assert_eq!(parse_hostname("XN--BCHER-KVA.example"), punycode);
        assert_eq!(parse_hostname("bücher.example."), punycode);
        assert_eq!(parse_hostname(" App.Acme.COM "), Ok("app.acme.com".into()));
    }

    #[test]
    fn hostnames_must_be_fqdns_of_valid_labels_and_not_ips() {
        let label63 = "a".repeat(63);
        assert!(parse_hostname(&format!("{label63}.com")).is_ok());
        let long = format!("{}com", format!("{label63}.").repeat(4));
        assert!(long.len() > 253 && parse_hostname(&long).is_err());
        for bad in [
            "",
            "localhost",
            "a..com",
            "-a.com",
            "a-.com",
            &format!("{}a.com", label63),
            "a_b.com",
            "a b.com",
            "http://a.com",
            "a.com/x",
            "a.com:80",
            "*.a.com",
            "192.168.0.1",
            "10.1",
            "[::1]",
            "::1",
            "user@a.com",
            "xn--zz.com",
            ".",
        ] {
            assert!(parse_hostname(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn origins_are_normalised_and_keep_only_scheme_host_and_port() {
        assert_eq!(
            parse_origin("HTTPS://App.Acme.com"),
            Ok("https://app.acme.com".into())
        );
        assert_eq!(
            parse_origin("https://app.acme.com:443/"),
            Ok("https://app.acme.com".into())
        );
        assert_eq!(
            parse_origin("http://acme.com:80"),
            Ok("http://acme.com".into())
        );
        assert_eq!(
            parse_origin("http://acme.com:8080"),
            Ok("http://acme.com:8080".into())
        );
        assert_eq!(
            parse_origin("https://bücher.example"),
            Ok("https://xn--bcher-kva.example".into())
        );
        assert_eq!(parse_origin("Acme.com"), Ok("acme.com".into()));
        for bad in [
            "",
            "ftp://acme.com",
            "https://acme.com/path",
            "https://acme.com?q=1",
            "https://acme.com#x",
            "https://u:p@acme.com",
            "https://127.0.0.1",
            "https://[::1]",
            "https://localhost",
            "https://",
            "acme.com/path",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn lists_are_bounded_normalised_and_deduplicated() {
        let mut violations = Violations::new();
        let entries = [
            "https://A.com".to_string(),
            "https://a.com:443".into(),
            "b.com".into(),
        ];
        let kept = parse_domain_list(&mut violations, "f", &entries, parse_origin);
        assert!(violations.is_empty());
        assert_eq!(kept, ["https://a.com", "b.com"]);

        let fifty_one: Vec<String> = (0..51).map(|i| format!("d{i}.com")).collect();
        let mut violations = Violations::new();
        let bad = ["ok.com".to_string(), "not a domain".into()];
        parse_domain_list(&mut violations, "f", &fifty_one, parse_hostname);
        parse_domain_list(&mut violations, "g", &bad, parse_hostname);
        let Err(crate::domain::Error::InvalidArgument(list)) = violations.finish() else {
            panic!("expected violations");
        };
        let fields: Vec<_> = list.into_iter().map(|v| v.field).collect();
        assert_eq!(fields, ["f", "g[1]"]);
    }
}
