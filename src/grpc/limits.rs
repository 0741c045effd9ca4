//! The longest string each request field accepts, in characters, by the field's full
//! protobuf name. The edge check (`input`) refuses longer strings (and any NUL) before
//! a handler runs; the domain rules still decide what a valid value is. Each limit is at
//! least what SPEC allows for the field, so the edge never refuses a valid value.
//! A unit test fails when a string field of `proto/` is missing here: adding a field
//! means choosing its limit (and documenting it in the README's table).

/// Resource ids (a UUID is 36 characters, a ULID 26), request ids, customer keys.
pub const ID: usize = 64;
/// An entity tag (`W/"<revision>"`).
pub const ETAG: usize = 128;
/// RFC 5321: an address is at most 254 characters.
pub const EMAIL: usize = 254;
/// First and last names, account names (SPEC: 1..100).
pub const NAME: usize = 100;
pub const COMPANY_NAME: usize = 200;
/// `external_id`, `tenant_id`, legal document values (SPEC: at most 250).
pub const EXTERNAL_ID: usize = 250;
/// SPEC's password policy allows at most 128 characters.
pub const PASSWORD: usize = 128;
/// Invitation tokens (32 bytes in base64url are 43 characters).
pub const TOKEN: usize = 128;
/// A list's prefix search.
pub const QUERY: usize = 254;
pub const PAGE_TOKEN: usize = 1024;
pub const PERMISSION: usize = 64;
/// A role name (SPEC: 1..64 of `[a-z0-9_.-]`).
pub const ROLE_NAME: usize = 64;
/// A role's description (at most 1024 characters).
pub const ROLE_DESCRIPTION: usize = 1024;
/// ISO country and currency codes.
pub const CODE: usize = 16;
/// A BCP 47 tag (RFC 5646 asks implementations to support at least 35 characters).
pub const LANGUAGE: usize = 64;
/// A fully qualified domain name is at most 253 characters; origins add a scheme and port.
pub const HOSTNAME: usize = 300;
/// Subdomains (a DNS label, at most 63) and customer prefixes (at most 10), with slack
/// for the whitespace the domain rules trim.
pub const DNS_LABEL: usize = 100;
/// Postal codes, P.O. boxes, building numbers, telephone numbers and extensions,
/// document types and dates.
pub const SHORT_CODE: usize = 64;
/// Address lines, cities, states and other free text.
pub const FREE_TEXT: usize = 500;
/// One path of a `google.protobuf.FieldMask`.
pub const FIELD_MASK_PATH: usize = 256;
/// A key of a `google.protobuf.Struct` (metadata keys: SPEC allows 40).
pub const STRUCT_KEY: usize = 256;
/// A string value anywhere inside a `google.protobuf.Struct` (metadata values: SPEC
/// allows 500; settings hold URLs).
pub const STRUCT_STRING: usize = 2048;

/// Limits count characters after trimming leading and trailing whitespace (as the
/// domain rules do); this much whitespace around a value is accepted on top.
pub const PADDING: usize = 64;

/// What a field that is somehow missing from `TABLE` gets (the unit test keeps that
/// from happening).
pub const FALLBACK: usize = 1024;

/// Fields the edge leaves to their handler. A sign-in email that can never be valid is
/// a failed sign-in like any other (one uniform answer), not INVALID_ARGUMENT; so is a
/// refresh token that can never be valid (malformed, oversized, with NUL): one
/// UNAUTHENTICATED for every token that does not redeem.
pub const CHECKED_BY_HANDLER: &[&str] = &[
    "tenancy.v1.AuthenticateUserRequest.email",
    "tenancy.v1.CreateSessionRequest.email",
    "tenancy.v1.RefreshSessionRequest.refresh_token",
];

/// Every string field a request can carry, and its limit.
pub const TABLE: &[(&str, usize)] = &[
    ("google.protobuf.FieldMask.paths", FIELD_MASK_PATH),
    ("google.protobuf.Struct.FieldsEntry.key", STRUCT_KEY),
    ("google.protobuf.Value.string_value", STRUCT_STRING),
    ("tenancy.v1.AcceptInvitationRequest.request_id", ID),
    ("tenancy.v1.AcceptInvitationRequest.token", TOKEN),
    ("tenancy.v1.AcceptInvitationRequest.user_id", ID),
    ("tenancy.v1.Account.customer_id", ID),
    ("tenancy.v1.Account.etag", ETAG),
    ("tenancy.v1.Account.external_id", EXTERNAL_ID),
    ("tenancy.v1.Account.name", NAME),
    ("tenancy.v1.Account.owner_user_id", ID),
    ("tenancy.v1.Account.ulid", ID),
    ("tenancy.v1.Account.uuid", ID),
    ("tenancy.v1.AddAccountUserRequest.account_id", ID),
    ("tenancy.v1.AddAccountUserRequest.email", EMAIL),
    ("tenancy.v1.AddAccountUserRequest.permissions", PERMISSION),
    ("tenancy.v1.AddAccountUserRequest.user_id", ID),
    ("tenancy.v1.AddCustomerUserRequest.customer_id", ID),
    ("tenancy.v1.AddCustomerUserRequest.email", EMAIL),
    ("tenancy.v1.AddCustomerUserRequest.permissions", PERMISSION),
    ("tenancy.v1.AddCustomerUserRequest.user_id", ID),
    ("tenancy.v1.Address.address_line1", FREE_TEXT),
    ("tenancy.v1.Address.address_line2", FREE_TEXT),
    ("tenancy.v1.Address.building_number", SHORT_CODE),
    ("tenancy.v1.Address.city", FREE_TEXT),
    ("tenancy.v1.Address.complement", FREE_TEXT),
    ("tenancy.v1.Address.country", CODE),
    ("tenancy.v1.Address.po_box", SHORT_CODE),
    ("tenancy.v1.Address.postal_code", SHORT_CODE),
    ("tenancy.v1.Address.state", FREE_TEXT),
    ("tenancy.v1.AuthenticateUserRequest.email", EMAIL),
    ("tenancy.v1.AuthenticateUserRequest.password", PASSWORD),
    (
        "tenancy.v1.ChangePasswordRequest.current_password",
        PASSWORD,
    ),
    ("tenancy.v1.ChangePasswordRequest.new_password", PASSWORD),
    ("tenancy.v1.ChangePasswordRequest.user_id", ID),
    ("tenancy.v1.CheckAccessRequest.account_id", ID),
    ("tenancy.v1.CheckAccessRequest.customer_id", ID),
    ("tenancy.v1.CheckAccessRequest.permission", PERMISSION),
    ("tenancy.v1.CheckAccessRequest.user_id", ID),
    ("tenancy.v1.CreateAccountInvitationRequest.account_id", ID),
    ("tenancy.v1.CreateAccountInvitationRequest.email", EMAIL),
    (
        "tenancy.v1.CreateAccountInvitationRequest.inviter_user_id",
        ID,
    ),
    (
        "tenancy.v1.CreateAccountInvitationRequest.permissions",
        PERMISSION,
    ),
    ("tenancy.v1.CreateAccountInvitationRequest.request_id", ID),
    ("tenancy.v1.CreateAccountRequest.customer_id", ID),
    ("tenancy.v1.CreateAccountRequest.owner_user_id", ID),
    ("tenancy.v1.CreateAccountRequest.request_id", ID),
    ("tenancy.v1.CreateCustomerInvitationRequest.customer_id", ID),
    ("tenancy.v1.CreateCustomerInvitationRequest.email", EMAIL),
    (
        "tenancy.v1.CreateCustomerInvitationRequest.inviter_user_id",
        ID,
    ),
    (
        "tenancy.v1.CreateCustomerInvitationRequest.permissions",
        PERMISSION,
    ),
    ("tenancy.v1.CreateCustomerInvitationRequest.request_id", ID),
    ("tenancy.v1.CreateCustomerRequest.owner_user_id", ID),
    ("tenancy.v1.CreateCustomerRequest.password", PASSWORD),
    ("tenancy.v1.CreateCustomerRequest.request_id", ID),
    ("tenancy.v1.CreateUserRequest.password", PASSWORD),
    ("tenancy.v1.CreateUserRequest.request_id", ID),
    ("tenancy.v1.Customer.allowed_domains_origins", HOSTNAME),
    ("tenancy.v1.Customer.allowed_domains_registration", HOSTNAME),
    ("tenancy.v1.Customer.company_name", COMPANY_NAME),
    ("tenancy.v1.Customer.country", CODE),
    ("tenancy.v1.Customer.currency", CODE),
    ("tenancy.v1.Customer.customer_key", ID),
    ("tenancy.v1.Customer.customer_prefix", DNS_LABEL),
    ("tenancy.v1.Customer.email", EMAIL),
    ("tenancy.v1.Customer.etag", ETAG),
    ("tenancy.v1.Customer.external_id", EXTERNAL_ID),
    ("tenancy.v1.Customer.first_name", NAME),
    ("tenancy.v1.Customer.hostname", HOSTNAME),
    ("tenancy.v1.Customer.language", LANGUAGE),
    ("tenancy.v1.Customer.last_name", NAME),
    ("tenancy.v1.Customer.owner_user_id", ID),
    ("tenancy.v1.Customer.subdomain", DNS_LABEL),
    ("tenancy.v1.Customer.tenant_id", EXTERNAL_ID),
    ("tenancy.v1.Customer.ulid", ID),
    ("tenancy.v1.Customer.uuid", ID),
    ("tenancy.v1.DeleteAccountRequest.account_id", ID),
    ("tenancy.v1.DeleteAccountRequest.etag", ETAG),
    ("tenancy.v1.DeleteCustomerRequest.customer_id", ID),
    ("tenancy.v1.DeleteCustomerRequest.etag", ETAG),
    ("tenancy.v1.DeleteUserRequest.etag", ETAG),
    ("tenancy.v1.DeleteUserRequest.user_id", ID),
    ("tenancy.v1.GetAccountRequest.account_id", ID),
    ("tenancy.v1.GetCustomerRequest.customer_id", ID),
    ("tenancy.v1.GetCustomerRequest.customer_key", ID),
    ("tenancy.v1.GetCustomerRequest.email", EMAIL),
    ("tenancy.v1.GetCustomerRequest.external_id", EXTERNAL_ID),
    ("tenancy.v1.GetCustomerRequest.hostname", HOSTNAME),
    ("tenancy.v1.GetCustomerRequest.subdomain", DNS_LABEL),
    ("tenancy.v1.GetEffectiveLimitsRequest.account_id", ID),
    ("tenancy.v1.GetUserRequest.email", EMAIL),
    ("tenancy.v1.GetUserRequest.user_id", ID),
    ("tenancy.v1.LegalDocument.country", CODE),
    ("tenancy.v1.LegalDocument.issued_date", SHORT_CODE),
    ("tenancy.v1.LegalDocument.type", SHORT_CODE),
    ("tenancy.v1.LegalDocument.value", EXTERNAL_ID),
    ("tenancy.v1.ListAccountInvitationsRequest.account_id", ID),
    (
        "tenancy.v1.ListAccountInvitationsRequest.page_token",
        PAGE_TOKEN,
    ),
    ("tenancy.v1.ListAccountUsersRequest.account_id", ID),
    ("tenancy.v1.ListAccountUsersRequest.page_token", PAGE_TOKEN),
    ("tenancy.v1.ListAccountsRequest.customer_id", ID),
    ("tenancy.v1.ListAccountsRequest.page_token", PAGE_TOKEN),
    ("tenancy.v1.ListCustomerInvitationsRequest.customer_id", ID),
    (
        "tenancy.v1.ListCustomerInvitationsRequest.page_token",
        PAGE_TOKEN,
    ),
    ("tenancy.v1.ListCustomerUsersRequest.customer_id", ID),
    ("tenancy.v1.ListCustomerUsersRequest.page_token", PAGE_TOKEN),
    ("tenancy.v1.ListCustomersRequest.country", CODE),
    ("tenancy.v1.ListCustomersRequest.page_token", PAGE_TOKEN),
    ("tenancy.v1.ListCustomersRequest.query", QUERY),
    ("tenancy.v1.ListUserMembershipsRequest.user_id", ID),
    ("tenancy.v1.ListUsersRequest.account_id", ID),
    ("tenancy.v1.ListUsersRequest.customer_id", ID),
    ("tenancy.v1.ListUsersRequest.page_token", PAGE_TOKEN),
    ("tenancy.v1.ListUsersRequest.query", QUERY),
    ("tenancy.v1.NewOwner.email", EMAIL),
    ("tenancy.v1.NewOwner.first_name", NAME),
    ("tenancy.v1.NewOwner.last_name", NAME),
    ("tenancy.v1.NewOwner.password", PASSWORD),
    ("tenancy.v1.NewUser.first_name", NAME),
    ("tenancy.v1.NewUser.last_name", NAME),
    ("tenancy.v1.NewUser.password", PASSWORD),
    ("tenancy.v1.RemoveAccountUserRequest.account_id", ID),
    ("tenancy.v1.RemoveAccountUserRequest.etag", ETAG),
    ("tenancy.v1.RemoveAccountUserRequest.user_id", ID),
    ("tenancy.v1.RemoveCustomerUserRequest.customer_id", ID),
    ("tenancy.v1.RemoveCustomerUserRequest.etag", ETAG),
    ("tenancy.v1.RemoveCustomerUserRequest.user_id", ID),
    ("tenancy.v1.ResendAccountInvitationRequest.account_id", ID),
    (
        "tenancy.v1.ResendAccountInvitationRequest.invitation_id",
        ID,
    ),
    ("tenancy.v1.ResendCustomerInvitationRequest.customer_id", ID),
    (
        "tenancy.v1.ResendCustomerInvitationRequest.invitation_id",
        ID,
    ),
    ("tenancy.v1.RevokeAccountInvitationRequest.account_id", ID),
    (
        "tenancy.v1.RevokeAccountInvitationRequest.invitation_id",
        ID,
    ),
    ("tenancy.v1.RevokeCustomerInvitationRequest.customer_id", ID),
    (
        "tenancy.v1.RevokeCustomerInvitationRequest.invitation_id",
        ID,
    ),
    ("tenancy.v1.SetPasswordRequest.password", PASSWORD),
    ("tenancy.v1.SetPasswordRequest.user_id", ID),
    ("tenancy.v1.Telephone.number", SHORT_CODE),
    ("tenancy.v1.Telephone.telephone_extension", SHORT_CODE),
    ("tenancy.v1.UpdateAccountRequest.account_id", ID),
    ("tenancy.v1.UpdateAccountRequest.etag", ETAG),
    ("tenancy.v1.UpdateAccountUserRequest.account_id", ID),
    ("tenancy.v1.UpdateAccountUserRequest.etag", ETAG),
    (
        "tenancy.v1.UpdateAccountUserRequest.permissions",
        PERMISSION,
    ),
    ("tenancy.v1.UpdateAccountUserRequest.user_id", ID),
    ("tenancy.v1.UpdateCustomerRequest.customer_id", ID),
    ("tenancy.v1.UpdateCustomerRequest.etag", ETAG),
    ("tenancy.v1.UpdateCustomerUserRequest.customer_id", ID),
    ("tenancy.v1.UpdateCustomerUserRequest.etag", ETAG),
    (
        "tenancy.v1.UpdateCustomerUserRequest.permissions",
        PERMISSION,
    ),
    ("tenancy.v1.UpdateCustomerUserRequest.user_id", ID),
    ("tenancy.v1.UpdateUserRequest.etag", ETAG),
    ("tenancy.v1.UpdateUserRequest.user_id", ID),
    ("tenancy.v1.User.email", EMAIL),
    ("tenancy.v1.User.etag", ETAG),
    ("tenancy.v1.User.first_name", NAME),
    ("tenancy.v1.User.language", LANGUAGE),
    ("tenancy.v1.User.last_name", NAME),
    ("tenancy.v1.User.ulid", ID),
    ("tenancy.v1.User.uuid", ID),
    ("tenancy.v1.CreateSessionRequest.customer_id", ID),
    ("tenancy.v1.CreateSessionRequest.email", EMAIL),
    ("tenancy.v1.CreateSessionRequest.password", PASSWORD),
    ("tenancy.v1.CreateSessionRequest.totp_code", SHORT_CODE),
    ("tenancy.v1.ListSessionsRequest.page_token", PAGE_TOKEN),
    ("tenancy.v1.ListSessionsRequest.user_id", ID),
    ("tenancy.v1.RefreshSessionRequest.customer_id", ID),
    ("tenancy.v1.RefreshSessionRequest.refresh_token", TOKEN),
    ("tenancy.v1.RevokeSessionRequest.session_id", ID),
    ("tenancy.v1.RevokeUserSessionsRequest.user_id", ID),
    ("tenancy.v1.AuthenticateUserRequest.totp_code", SHORT_CODE),
    ("tenancy.v1.ConfirmTotpRequest.code", SHORT_CODE),
    ("tenancy.v1.ConfirmTotpRequest.user_id", ID),
    ("tenancy.v1.DisableTotpRequest.user_id", ID),
    ("tenancy.v1.EnrollTotpRequest.user_id", ID),
    ("tenancy.v1.RequestEmailVerificationRequest.user_id", ID),
    ("tenancy.v1.RequestPasswordResetRequest.email", EMAIL),
    ("tenancy.v1.ResetPasswordRequest.new_password", PASSWORD),
    ("tenancy.v1.ResetPasswordRequest.token", TOKEN),
    ("tenancy.v1.VerifyEmailRequest.token", TOKEN),
    // Roles and bulk access checks (SPEC section 13).
    ("tenancy.v1.AccessCheck.account_id", ID),
    ("tenancy.v1.AccessCheck.customer_id", ID),
    ("tenancy.v1.AccessCheck.permission", PERMISSION),
    ("tenancy.v1.AddAccountUserRequest.roles", ROLE_NAME),
    ("tenancy.v1.AddCustomerUserRequest.roles", ROLE_NAME),
    ("tenancy.v1.BatchCheckAccessRequest.user_id", ID),
    ("tenancy.v1.CreateAccountInvitationRequest.roles", ROLE_NAME),
    (
        "tenancy.v1.CreateCustomerInvitationRequest.roles",
        ROLE_NAME,
    ),
    ("tenancy.v1.CreateCustomerRoleRequest.customer_id", ID),
    ("tenancy.v1.CreateCustomerRoleRequest.request_id", ID),
    ("tenancy.v1.DeleteCustomerRoleRequest.etag", ETAG),
    ("tenancy.v1.DeleteCustomerRoleRequest.role_id", ID),
    ("tenancy.v1.GetCustomerRoleRequest.role_id", ID),
    (
        "tenancy.v1.ListAccessibleResourcesRequest.page_token",
        PAGE_TOKEN,
    ),
    (
        "tenancy.v1.ListAccessibleResourcesRequest.permission",
        PERMISSION,
    ),
    ("tenancy.v1.ListAccessibleResourcesRequest.user_id", ID),
    ("tenancy.v1.ListCustomerRolesRequest.customer_id", ID),
    ("tenancy.v1.ListCustomerRolesRequest.page_token", PAGE_TOKEN),
    ("tenancy.v1.Role.customer_id", ID),
    ("tenancy.v1.Role.description", ROLE_DESCRIPTION),
    ("tenancy.v1.Role.etag", ETAG),
    ("tenancy.v1.Role.name", ROLE_NAME),
    ("tenancy.v1.Role.permissions", PERMISSION),
    ("tenancy.v1.Role.ulid", ID),
    ("tenancy.v1.Role.uuid", ID),
    ("tenancy.v1.UpdateAccountUserRequest.roles", ROLE_NAME),
    ("tenancy.v1.UpdateCustomerRoleRequest.etag", ETAG),
    ("tenancy.v1.UpdateCustomerRoleRequest.role_id", ID),
    ("tenancy.v1.UpdateCustomerUserRequest.roles", ROLE_NAME),
];

/// The limit of the string field `full_name` (`tenancy.v1.Address.city`).
pub fn of(full_name: &str) -> Option<usize> {
    TABLE
        .iter()
        .find(|(name, _)| *name == full_name)
        .map(|(_, max)| *max)
}
