//! TEMPORARY stand-ins until the customer-rules branch merges (replaced wholesale).
use rand::Rng as _;
pub fn generate_customer_key() -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rngs::OsRng;
    (0..10)
        .map(|_| DIGITS[rng.gen_range(0..36)] as char)
        .collect()
}
pub fn collision_subdomain(slug: &str, key: &str) -> String {
    format!("{slug}-{key}")
}
pub fn parse_hostname(text: &str) -> Result<String, String> {
    Ok(text.trim().to_ascii_lowercase())
}
