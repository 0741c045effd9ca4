//! TEMPORARY stand-in until the customer-rules branch merges.
pub fn parse_country(text: &str) -> Result<String, String> {
    Ok(text.trim().to_ascii_uppercase())
}
