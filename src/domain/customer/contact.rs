//! Addresses and telephones of a customer.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AddressType {
    Postal,
    Billing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TelephoneType {
    Landline,
    Mobile,
}

/// A validated address. Empty optional parts are empty strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub address_type: AddressType,
    pub default: bool,
    pub country: String,
    pub state: String,
    pub postal_code: String,
    pub city: String,
    pub address_line1: String,
    pub address_line2: String,
    pub po_box: String,
    pub building_number: String,
    pub complement: String,
}

/// A validated telephone: `number` in E.164 (`+14155551234`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Telephone {
    pub telephone_type: TelephoneType,
    pub default: bool,
    pub number: String,
    pub telephone_extension: String,
}

#[derive(Debug, Clone, Default)]
pub struct AddressFields<'a> {
    pub address_type: Option<AddressType>,
    pub default: bool,
    pub country: &'a str,
    pub state: &'a str,
    pub postal_code: &'a str,
    pub city: &'a str,
    pub address_line1: &'a str,
    pub address_line2: &'a str,
    pub po_box: &'a str,
    pub building_number: &'a str,
    pub complement: &'a str,
}

#[derive(Debug, Clone, Default)]
pub struct TelephoneFields<'a> {
    pub telephone_type: Option<TelephoneType>,
    pub default: bool,
    pub number: &'a str,
    pub telephone_extension: &'a str,
}
