//! Roles: a named set of permissions a customer defines once and assigns to the
//! memberships and invitations of itself and of its accounts (SPEC section 13).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Result, id::Id, membership::PERMISSIONS, violations::Violations};

/// Longest role description, in characters.
pub const MAX_DESCRIPTION: usize = 1024;

/// A customer's role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Role {
    pub id: Id,
    pub customer_id: Id,
    pub name: String,
    pub description: String,
    /// In catalogue order, each once.
    pub permissions: Vec<String>,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    pub revision: i64,
}

/// A role name: 1 to 64 characters of `[a-z0-9_.-]`.
pub fn parse_name(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("is required".into());
    }
    if text.len() > 64 {
        return Err("must be at most 64 characters".into());
    }
    if !text
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err("must use only `a-z`, `0-9`, `_`, `.` and `-`".into());
    }
    Ok(text.to_string())
}

/// A description: at most 1024 characters, no control characters but newline and tab
/// (PostgreSQL refuses NUL in text; the others have no place in a description).
pub fn parse_description(text: &str) -> Result<String, String> {
    if text.chars().count() > MAX_DESCRIPTION {
        return Err(format!("must be at most {MAX_DESCRIPTION} characters"));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err("must not contain control characters".into());
    }
    Ok(text.to_string())
}

/// A role's permissions: each from the catalogue and each once (a repeat is a
/// violation, naming its index); returned in catalogue order.
pub fn parse_role_permissions(
    violations: &mut Violations,
    field: &str,
    permissions: &[String],
) -> Option<Vec<String>> {
    let mut ok = true;
    for (i, permission) in permissions.iter().enumerate() {
        if !PERMISSIONS.contains(&permission.as_str()) {
            violations.add(
                format!("{field}[{i}]"),
                format!("is not a permission; known: {}", PERMISSIONS.join(", ")),
            );
            ok = false;
        } else if permissions[..i].contains(permission) {
            violations.add(format!("{field}[{i}]"), "repeats an earlier permission");
            ok = false;
        }
    }
    ok.then(|| {
        PERMISSIONS
            .iter()
            .filter(|known| permissions.iter().any(|p| p == **known))
            .map(|p| p.to_string())
            .collect()
    })
}

/// The role names of a membership or invitation request: each a valid name, each once,
/// in request order (so later violations can name their index; the store sorts them).
pub fn parse_role_names(
    violations: &mut Violations,
    field: &str,
    names: &[String],
) -> Option<Vec<String>> {
    let mut ok = true;
    for (i, name) in names.iter().enumerate() {
        if let Err(problem) = parse_name(name) {
            violations.add(format!("{field}[{i}]"), problem);
            ok = false;
        } else if names[..i].contains(name) {
            violations.add(format!("{field}[{i}]"), "repeats an earlier role");
            ok = false;
        }
    }
    ok.then(|| names.to_vec())
}

/// Effective permissions: `direct` and every permission of `roles`, in catalogue order.
pub fn effective_permissions<'a>(
    direct: &[String],
    roles: impl IntoIterator<Item = &'a [String]> + Clone,
) -> Vec<String> {
    PERMISSIONS
        .iter()
        .filter(|known| {
            direct.iter().any(|p| p == **known)
                || roles
                    .clone()
                    .into_iter()
                    .any(|r| r.iter().any(|p| p == **known))
        })
        .map(|p| p.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_lowercase_words() {
        assert!(parse_name("billing-admin").is_ok());
        assert!(parse_name("a.b_c-9").is_ok());
        assert!(parse_name(&"a".repeat(64)).is_ok());
        for bad in ["", "Admin", "a b", "a\0b", "é", &"a".repeat(65)] {
            assert!(parse_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn repeated_and_unknown_entries_are_named_by_index() {
        let mut violations = Violations::new();
        let names = ["a".to_string(), "B".into(), "a".into()];
        assert!(parse_role_names(&mut violations, "roles", &names).is_none());
        let perms = [
            "rooms.read".to_string(),
            "rooms.fly".into(),
            "rooms.read".into(),
        ];
        assert!(parse_role_permissions(&mut violations, "role.permissions", &perms).is_none());
        let Err(crate::domain::Error::InvalidArgument(list)) = violations.finish() else {
            panic!("expected invalid argument");
        };
        let fields: Vec<_> = list.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "roles[1]",
                "roles[2]",
                "role.permissions[1]",
                "role.permissions[2]"
            ]
        );
    }

    #[test]
    fn effective_permissions_are_the_union() {
        let direct = vec!["rooms.read".to_string()];
        let role = vec!["billing.read".to_string(), "rooms.read".to_string()];
        assert_eq!(
            effective_permissions(&direct, [role.as_slice()]),
            ["billing.read", "rooms.read"]
        );
    }
}
