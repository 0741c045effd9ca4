//! `AccountService`: declared in the contract; its RPCs answer UNIMPLEMENTED until the
//! account use cases land.

use super::pb;

pub struct AccountApi;

impl pb::account_service_server::AccountService for AccountApi {}
