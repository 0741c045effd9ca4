//! Roles of customers (SPEC section 13): create, read, list, update, delete.

use super::{App, once_more_on_contention};
use crate::{
    domain::{
        Result, etag,
        id::Id,
        idempotency::RequestKey,
        role::{self, Role, parse_role_permissions},
        violations::Violations,
    },
    store::{NewRole, RoleChanges},
};

/// The fields of a `Role` message a request carries.
#[derive(Debug, Clone, Copy, Default)]
pub struct RoleFields<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub permissions: &'a [String],
}

impl App {
    /// Creates a role; `role` absent is a violation like its fields.
    pub async fn create_role(
        &self,
        customer_id: &str,
        fields: Option<RoleFields<'_>>,
        key: Option<RequestKey>,
    ) -> Result<Role> {
        let mut violations = Violations::new();
        let customer_id = violations.check("customer_id", Id::parse(customer_id));
        let new = match fields {
            None => {
                violations.add("role", "is required");
                None
            }
            Some(fields) => {
                let name = violations.check("role.name", role::parse_name(fields.name));
                let description = violations.check(
                    "role.description",
                    role::parse_description(fields.description),
                );
                let permissions =
                    parse_role_permissions(&mut violations, "role.permissions", fields.permissions);
                match (name, description, permissions) {
                    (Some(name), Some(description), Some(permissions)) => Some(NewRole {
                        name,
                        description,
                        permissions,
                    }),
                    _ => None,
                }
            }
        };
        violations.finish()?;
        let (customer_id, new) = (
            customer_id.expect("validated above"),
            new.expect("validated above"),
        );
        if let Some(key) = &key
            && let Some(first) = self.store.replay::<Role>(key).await?
        {
            return Ok(first);
        }
        once_more_on_contention(|| self.store.create_role(customer_id, &new, key.as_ref())).await
    }

    pub async fn get_role(&self, role_id: &str) -> Result<Role> {
        let mut violations = Violations::new();
        let id = violations.check("role_id", Id::parse(role_id));
        violations.finish()?;
        self.store.get_role(id.expect("validated above")).await
    }

    pub async fn list_roles(
        &self,
        customer_id: &str,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<Role>, String)> {
        let mut violations = Violations::new();
        let customer_id = violations.check("customer_id", Id::parse(customer_id));
        let canonical = format!(
            "ListCustomerRoles|{}",
            customer_id.map(|id| id.to_string()).unwrap_or_default()
        );
        let page = self.page_request(&mut violations, &canonical, page_size, page_token)?;
        violations.finish()?;
        let page = self
            .store
            .list_roles(
                customer_id.expect("validated above"),
                page.expect("validated above"),
            )
            .await?;
        Ok(self.page_answer(&canonical, page))
    }

    /// Changes the fields `mask` names: `description`, `permissions`, or `*` (both; the
    /// name must then be empty or unchanged). The name is fixed.
    pub async fn update_role(
        &self,
        role_id: &str,
        fields: Option<RoleFields<'_>>,
        mask: &[String],
        etag_text: &str,
    ) -> Result<Role> {
        let mut violations = Violations::new();
        let id = violations.check("role_id", Id::parse(role_id));
        let expected = match etag::parse("etag", etag_text) {
            Ok(expected) => expected,
            Err(error) => {
                violations.absorb(error)?;
                None
            }
        };
        let fields = fields.unwrap_or_default();
        let (mut description, mut permissions, mut name_kept) = (false, false, None);
        if mask.is_empty() {
            violations.add(
                "update_mask",
                "is required: name the fields to change, or `*`",
            );
        }
        for (i, path) in mask.iter().enumerate() {
            match path.as_str() {
                "description" => description = true,
                "permissions" => permissions = true,
                "*" => {
                    description = true;
                    permissions = true;
                    name_kept = Some(fields.name);
                }
                "name" => violations.add(
                    format!("update_mask.paths[{i}]"),
                    "a role's name is fixed at creation",
                ),
                _ => violations.add(
                    format!("update_mask.paths[{i}]"),
                    "is not a field of Role that can change (description, permissions)",
                ),
            }
        }
        let mut changes = RoleChanges::default();
        if description {
            changes.description = violations.check(
                "role.description",
                role::parse_description(fields.description),
            );
        }
        if permissions {
            changes.permissions =
                parse_role_permissions(&mut violations, "role.permissions", fields.permissions);
        }
        violations.finish()?;
        let id = id.expect("validated above");
        if let Some(name) = name_kept
            && !name.is_empty()
            && self.store.get_role(id).await?.name != name
        {
            return Err(crate::domain::Error::invalid(
                "role.name",
                "a role's name is fixed at creation",
            ));
        }
        once_more_on_contention(|| self.store.update_role(id, &changes, expected)).await
    }

    pub async fn delete_role(&self, role_id: &str, etag_text: &str) -> Result<()> {
        let mut violations = Violations::new();
        let id = violations.check("role_id", Id::parse(role_id));
        let expected = match etag::parse("etag", etag_text) {
            Ok(expected) => expected,
            Err(error) => {
                violations.absorb(error)?;
                None
            }
        };
        violations.finish()?;
        let id = id.expect("validated above");
        once_more_on_contention(|| self.store.delete_role(id, expected)).await
    }
}
