//! Etags: the revision counter of a resource, written as an opaque string.

use super::error::Error;

/// The etag a resource at `revision` carries.
pub fn format(revision: i64) -> String {
    format!("W/\"{revision}\"")
}

/// The revision an etag from a request expects, `None` when the caller sent none.
/// `field` names the request field for the error.
pub fn parse(field: &str, etag: &str) -> Result<Option<i64>, Error> {
    let etag = etag.trim();
    if etag.is_empty() {
        return Ok(None);
    }
    etag.strip_prefix("W/\"")
        .and_then(|rest| rest.strip_suffix('"'))
        .and_then(|digits| digits.parse::<i64>().ok())
        .map(Some)
        .ok_or_else(|| Error::invalid(field, "is not an etag this service issued"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trips_and_rejects_foreign_etags() {
        assert_eq!(super::parse("etag", &super::format(7)).unwrap(), Some(7));
        assert_eq!(super::parse("etag", "").unwrap(), None);
        assert!(super::parse("etag", "\"7\"").is_err());
    }
}
