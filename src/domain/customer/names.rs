//! The customer's short names: the random `customer_key`, the `customer_prefix` and the
//! `subdomain`, given or generated from the names.

use rand::Rng as _;
use rand::distributions::Uniform;

pub const CUSTOMER_KEY_LEN: usize = 10;
pub const MAX_PREFIX_LEN: usize = 10;
/// Initials taken into a derived prefix.
const DERIVED_PREFIX_LEN: usize = 3;
/// Used when the names give no initial (only punctuation, say).
pub const FALLBACK_PREFIX: &str = "C";
pub const MAX_SUBDOMAIN_LEN: usize = 63;
/// Used when the names give no slug, or one on the reserved list.
pub const FALLBACK_SUBDOMAIN: &str = "customer";

const BASE36: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// Labels the platform keeps for itself or that would mislead a visitor.
pub const RESERVED_SUBDOMAINS: &[&str] = &[
    "about",
    "account",
    "accounts",
    "admin",
    "administrator",
    "api",
    "app",
    "apps",
    "assets",
    "auth",
    "autoconfig",
    "autodiscover",
    "billing",
    "blog",
    "cdn",
    "console",
    "dashboard",
    "dev",
    "dns",
    "docs",
    "email",
    "ftp",
    "git",
    "help",
    "imap",
    "internal",
    "localhost",
    "login",
    "logout",
    "mail",
    "media",
    "mx",
    "ns",
    "ns1",
    "ns2",
    "ns3",
    "ns4",
    "oauth",
    "pop",
    "pop3",
    "portal",
    "root",
    "security",
    "signin",
    "signup",
    "smtp",
    "sso",
    "staging",
    "static",
    "status",
    "support",
    "test",
    "webmail",
    "www",
];

/// A fresh `customer_key`: 10 lower-case base36 characters from the OS CSPRNG. `Uniform`
/// samples by rejection, so every character is equally likely (no modulo bias).
pub fn generate_customer_key() -> String {
    let alphabet = Uniform::new(0, BASE36.len());
    rand::rngs::OsRng
        .sample_iter(alphabet)
        .take(CUSTOMER_KEY_LEN)
        .map(|index| char::from(BASE36[index]))
        .collect()
}

/// A `customer_key` a caller names in a lookup: 10 base36 characters, lower-cased.
pub fn parse_customer_key(text: &str) -> Result<String, String> {
    let key = text.trim().to_ascii_lowercase();
    if key.is_empty() {
        return Err("is required".into());
    }
    if key.len() != CUSTOMER_KEY_LEN || !key.bytes().all(|b| BASE36.contains(&b)) {
        return Err(format!(
            "must be {CUSTOMER_KEY_LEN} characters of a-z and 0-9"
        ));
    }
    Ok(key)
}

/// The subdomain used when a generated slug is taken: `<slug>-<customer_key>`. Slugs are
/// cut so that this still fits one DNS label.
pub fn collision_subdomain(slug: &str, key: &str) -> String {
    format!("{slug}-{key}")
}

/// A subdomain a caller gives: one DNS label (`[a-z0-9-]`, 1..63, no leading or trailing
/// `-`), lower-cased, not reserved. `--` in the third and fourth places is refused too:
/// DNS keeps that shape for IDNA labels (`xn--`).
pub fn parse_subdomain(text: &str) -> Result<String, String> {
    let label = text.trim().to_ascii_lowercase();
    if label.is_empty() {
        return Err("is required".into());
    }
    if label.len() > MAX_SUBDOMAIN_LEN {
        return Err(format!("must be at most {MAX_SUBDOMAIN_LEN} characters"));
    }
    if !label
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("may contain only letters a-z, digits and `-`".into());
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err("must not start or end with `-`".into());
    }
    if label.get(2..4) == Some("--") {
        return Err("must not have `--` in the third and fourth places".into());
    }
    if RESERVED_SUBDOMAINS.contains(&label.as_str()) {
        return Err(format!("`{label}` is reserved"));
    }
    Ok(label)
}

/// The slug a subdomain is generated from: the name transliterated to ASCII and
/// slugified (`São Paulo Ltda` → `sao-paulo-ltda`), cut so that
/// `collision_subdomain(slug, key)` fits 63 characters. A slug that is empty or
/// reserved becomes `customer` or `<slug>-customer`.
pub fn generated_subdomain(name: &str) -> String {
    let room = MAX_SUBDOMAIN_LEN - CUSTOMER_KEY_LEN - 1;
    let slug = slug::slugify(name);
    // slugify yields only [a-z0-9-], so cutting at a byte index is a char boundary.
    let slug = slug[..slug.len().min(room)].trim_end_matches('-');
    if slug.is_empty() {
        FALLBACK_SUBDOMAIN.to_string()
    } else if parse_subdomain(slug).is_err() {
        let cut = &slug[..slug.len().min(room - FALLBACK_SUBDOMAIN.len() - 1)];
        format!("{}-{FALLBACK_SUBDOMAIN}", cut.trim_end_matches('-'))
    } else {
        slug.to_string()
    }
}

/// A prefix a caller gives: 1..10 of `[A-Z0-9]`. Lower-case is accepted and upper-cased,
/// since the prefix is a label for humans (`acme` and `ACME` mean the same).
pub fn parse_prefix(text: &str) -> Result<String, String> {
    let prefix = text.trim().to_ascii_uppercase();
    if prefix.is_empty() {
        return Err("is required".into());
    }
    if prefix.len() > MAX_PREFIX_LEN {
        return Err(format!("must be at most {MAX_PREFIX_LEN} characters"));
    }
    if !prefix
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return Err("may contain only letters A-Z and digits".into());
    }
    Ok(prefix)
}

/// The prefix derived from a name: the initials of its first three words, transliterated
/// to ASCII upper-case (`São Paulo Ltda` → `SPL`), or `C` when there are none.
pub fn derived_prefix(name: &str) -> String {
    let ascii = deunicode::deunicode(name);
    let initials: String = ascii
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter_map(|word| word.chars().next())
        .take(DERIVED_PREFIX_LEN)
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if initials.is_empty() {
        FALLBACK_PREFIX.to_string()
    } else {
        initials
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn customer_keys_are_ten_base36_characters_and_differ() {
        let keys: HashSet<String> = (0..1000).map(|_| generate_customer_key()).collect();
        assert_eq!(keys.len(), 1000);
        for key in &keys {
            assert_eq!(key.len(), CUSTOMER_KEY_LEN);
            assert!(key.bytes().all(|b| BASE36.contains(&b)), "{key}");
        }
    }

    #[test]
    fn customer_keys_named_in_lookups_are_checked() {
        let key = generate_customer_key();
        assert_eq!(parse_customer_key(&key.to_ascii_uppercase()), Ok(key));
        for bad in ["", "abc", "abcdefghijk", "abcdefghi-", "abcdéfghi"] {
            assert!(parse_customer_key(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn customer_key_characters_are_uniform() {
        // 36,000 keys = 360,000 characters, 10,000 expected per character (σ ≈ 99). A
        // byte taken modulo 36 would give the first four characters 8/7 of the rest.
        let mut counts = [0u32; 36];
        for _ in 0..36_000 {
            for b in generate_customer_key().bytes() {
                if let Some(index) = BASE36.iter().position(|c| *c == b) {
                    counts[index] += 1;
                }
            }
        }
        for (index, count) in counts.iter().enumerate() {
            assert!((9_500..=10_500).contains(count), "char {index}: {count}");
        }
    }

    #[test]
    fn subdomains_are_dns_labels_off_the_reserved_list() {
        assert_eq!(parse_subdomain("Acme-1"), Ok("acme-1".into()));
        assert_eq!(parse_subdomain(&"a".repeat(63)), Ok("a".repeat(63)));
        assert_eq!(parse_subdomain("0"), Ok("0".into()));
        for bad in [
            "",
            "-acme",
            "acme-",
            "ac me",
            "acme.io",
            "açme",
            "ac_me",
            "xn--bcher",
            "WWW",
            "api",
            "admin",
            "mail",
            "localhost",
        ] {
            assert!(parse_subdomain(bad).is_err(), "{bad} was accepted");
        }
        assert!(parse_subdomain(&"a".repeat(64)).is_err());
    }

    #[test]
    fn generated_subdomains_are_transliterated_slugs_that_leave_room_for_the_key() {
        assert_eq!(generated_subdomain("São Paulo Ltda"), "sao-paulo-ltda");
        assert_eq!(
            generated_subdomain("Müller & Söhne GmbH"),
            "muller-sohne-gmbh"
        );
        assert_eq!(generated_subdomain("  !!! "), "customer");
        assert_eq!(generated_subdomain("Admin"), "admin-customer");
        let long = generated_subdomain(&"word ".repeat(40));
        assert!(long.len() <= 52 && !long.ends_with('-'), "{long}");
        let collided = collision_subdomain(&long, &generate_customer_key());
        assert_eq!(parse_subdomain(&collided), Ok(collided.clone()));
        for name in ["José da Silva", "東京 株式会社", "a", "--x--", "WWW"] {
            let slug = generated_subdomain(name);
            assert_eq!(parse_subdomain(&slug), Ok(slug.clone()), "from {name}");
        }
    }

    #[test]
    fn prefixes_are_up_to_ten_upper_case_alphanumerics() {
        assert_eq!(parse_prefix("acme1"), Ok("ACME1".into()));
        assert_eq!(parse_prefix("ABCDEFGHIJ"), Ok("ABCDEFGHIJ".into()));
        for bad in ["", "ABCDEFGHIJK", "AC-ME", "AÇ", "A B"] {
            assert!(parse_prefix(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn derived_prefixes_are_up_to_three_ascii_initials() {
        assert_eq!(derived_prefix("São Paulo Ltda"), "SPL");
        assert_eq!(derived_prefix("Élodie Durand"), "ED");
        assert_eq!(derived_prefix("one two three four"), "OTT");
        assert_eq!(derived_prefix("O'Brien & Sons"), "OBS");
        assert_eq!(derived_prefix(" ... "), FALLBACK_PREFIX);
        assert_eq!(parse_prefix(&derived_prefix("Ærø 9")), Ok("A9".into()));
    }
}
