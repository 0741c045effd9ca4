//! Resource identifiers: one 128-bit value that is a UUIDv7 and, written in Crockford
//! base32, the same bits as a ULID. Both forms sort by creation time, so ordering by id
//! is ordering by creation.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The identifier of any resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Id(Uuid);

impl Id {
    /// A fresh, time-ordered identifier.
    pub fn generate() -> Self {
        Id(Uuid::now_v7())
    }

    /// Accepts a UUID (hyphenated or not) or a ULID.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("is required".into());
        }
        if text.len() == 26
            && let Ok(ulid) = ulid::Ulid::from_string(text)
        {
            return Ok(Id(Uuid::from_u128(ulid.0)));
        }
        Uuid::try_parse(text)
            .map(Id)
            .map_err(|_| "must be a UUID or a ULID".to_string())
    }

    pub fn from_uuid(uuid: Uuid) -> Self {
        Id(uuid)
    }

    pub fn uuid(&self) -> Uuid {
        self.0
    }

    /// The canonical ULID spelling of the same 128 bits.
    pub fn ulid(&self) -> String {
        ulid::Ulid(self.0.as_u128()).to_string()
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_and_ulid_name_the_same_id() {
        let id = Id::generate();
        assert_eq!(id.uuid().get_version_num(), 7);
        assert_eq!(Id::parse(&id.ulid()).unwrap(), id);
        assert_eq!(Id::parse(&id.to_string()).unwrap(), id);
        assert_eq!(Id::parse(&id.uuid().simple().to_string()).unwrap(), id);
    }

    #[test]
    fn ids_sort_by_creation_in_both_forms() {
        let first = Id::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = Id::generate();
        assert!(first < second);
        assert!(first.ulid() < second.ulid());
        assert!(first.to_string() < second.to_string());
    }

    #[test]
    fn garbage_is_rejected() {
        assert!(Id::parse("").is_err());
        assert!(Id::parse("not-an-id").is_err());
        assert!(Id::parse("01ARZ3NDEKTSV4RRFFQ69G5FA!").is_err());
    }
}
