//! `CustomerService`: declared in the contract; its RPCs answer UNIMPLEMENTED until the
//! customer use cases land.

use super::pb;

pub struct CustomerApi;

impl pb::customer_service_server::CustomerService for CustomerApi {}
