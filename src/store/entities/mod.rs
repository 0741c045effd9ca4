//! sea-orm entities, one per table. They never leave `store/`.

pub mod account;
pub mod api_key;
pub mod customer;
pub mod event;
pub mod invitation;
pub mod membership;
pub mod pending_event;
pub mod recovery_code;
pub mod request_id;
pub mod role;
pub mod session;
pub mod session_token;
pub mod setting;
pub mod signing_key;
pub mod user;
pub mod user_token;
pub mod user_totp;
