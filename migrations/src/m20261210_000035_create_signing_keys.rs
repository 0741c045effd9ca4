//! The Ed25519 keys that sign access tokens (SPEC §11): the public half in the clear,
//! the private half sealed under the master key, and when each key signs, retires and
//! leaves the JWKS. Every instance reads the same rows, so all sign with the same key.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SigningKeys {
    Table,
    /// The RFC 7638 thumbprint of the public key.
    Kid,
    /// base64url of the 32-byte public key.
    PublicKey,
    /// base64 of the sealed private key (nonce, ciphertext, tag).
    PrivateKey,
    /// Fingerprint of the master key the private key is sealed under.
    SealedUnder,
    /// Times in microseconds since the epoch.
    CreatedAt,
    SignsFrom,
    RetiredAt,
    PublishedUntil,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SigningKeys::Table)
                    .if_not_exists()
                    .col(string(SigningKeys::Kid).primary_key())
                    .col(string(SigningKeys::PublicKey))
                    .col(text(SigningKeys::PrivateKey))
                    .col(string(SigningKeys::SealedUnder))
                    .col(big_integer(SigningKeys::CreatedAt))
                    .col(big_integer(SigningKeys::SignsFrom))
                    .col(big_integer_null(SigningKeys::RetiredAt))
                    .col(big_integer_null(SigningKeys::PublishedUntil))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SigningKeys::Table).to_owned())
            .await
    }
}
