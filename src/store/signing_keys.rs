//! The keys that sign access tokens, as `signing::SigningKeyRecord`s: the store keeps
//! them (private halves sealed, as the signing module made them) and applies rotation
//! plans under a lock, so instances that rotate at once make one key, not two.

use base64::{
    Engine as _,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait as _, ConnectionTrait as _, EntityTrait as _, QueryFilter as _,
    sea_query::Expr,
};

use super::{Store, advisory_lock, db_error, entities::signing_key, from_micros, to_micros};
use crate::{
    domain::{Error, Result},
    signing::{KeySchedule, RotationPlan, Sealed, SigningKeyRecord},
};

fn record_from_row(row: signing_key::Model) -> Result<SigningKeyRecord> {
    let public_key: [u8; 32] = URL_SAFE_NO_PAD
        .decode(&row.public_key)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| Error::internal(format!("signing key {}: bad public key", row.kid)))?;
    let sealed = STANDARD
        .decode(&row.private_key)
        .map_err(|_| Error::internal(format!("signing key {}: bad sealed key", row.kid)))?;
    Ok(SigningKeyRecord {
        public_key,
        private_key: Sealed::from_bytes(sealed),
        sealed_under: row
            .sealed_under
            .parse()
            .map_err(|e| Error::internal(format!("signing key {}: {e}", row.kid)))?,
        schedule: KeySchedule {
            created_at: from_micros(row.created_at),
            signs_from: from_micros(row.signs_from),
            retired_at: row.retired_at.map(from_micros),
            published_until: row.published_until.map(from_micros),
        },
        kid: row.kid,
    })
}

impl Store {
    /// Every stored signing key.
    pub async fn signing_key_records(&self) -> Result<Vec<SigningKeyRecord>> {
        let rows = self
            .read(|| signing_key::Entity::find().all(&self.db))
            .await?;
        rows.into_iter().map(record_from_row).collect()
    }

    /// Runs `plan` over the stored keys under a lock (one instance at a time) and
    /// applies what it answers in the same transaction: inserts its new key, records
    /// its retirements, deletes the keys it drops. Answers whether anything changed.
    pub async fn rotate_signing_keys<F>(&self, plan: F) -> Result<bool>
    where
        F: FnOnce(&[SigningKeyRecord]) -> (RotationPlan, Option<SigningKeyRecord>),
    {
        // On SQLite the IMMEDIATE transaction holds the database's write lock.
        let tx = self.begin().await?;
        if self.backend() == sea_orm::DbBackend::Postgres {
            tx.txn()
                .execute_unprepared(&format!(
                    "SELECT pg_advisory_xact_lock({})",
                    advisory_lock::SIGNING_KEYS
                ))
                .await
                .map_err(db_error)?;
        }
        let records = signing_key::Entity::find()
            .all(tx.txn())
            .await
            .map_err(db_error)?
            .into_iter()
            .map(record_from_row)
            .collect::<Result<Vec<_>>>()?;
        let (plan, new_key) = plan(&records);
        if plan.is_empty() {
            return Ok(false);
        }
        if let Some(key) = new_key {
            signing_key::Entity::insert(signing_key::ActiveModel {
                kid: Set(key.kid.clone()),
                public_key: Set(URL_SAFE_NO_PAD.encode(key.public_key)),
                private_key: Set(STANDARD.encode(key.private_key.as_bytes())),
                sealed_under: Set(key.sealed_under.to_string()),
                created_at: Set(to_micros(key.schedule.created_at)),
                signs_from: Set(to_micros(key.schedule.signs_from)),
                retired_at: Set(key.schedule.retired_at.map(to_micros)),
                published_until: Set(key.schedule.published_until.map(to_micros)),
            })
            .exec_without_returning(tx.txn())
            .await
            .map_err(db_error)?;
        }
        for retirement in &plan.retire {
            signing_key::Entity::update_many()
                .col_expr(
                    signing_key::Column::RetiredAt,
                    Expr::value(to_micros(retirement.retired_at)),
                )
                .col_expr(
                    signing_key::Column::PublishedUntil,
                    Expr::value(to_micros(retirement.published_until)),
                )
                .filter(signing_key::Column::Kid.eq(retirement.kid.as_str()))
                .exec(tx.txn())
                .await
                .map_err(db_error)?;
        }
        if !plan.drop.is_empty() {
            signing_key::Entity::delete_many()
                .filter(signing_key::Column::Kid.is_in(plan.drop.iter().cloned()))
                .exec(tx.txn())
                .await
                .map_err(db_error)?;
        }
        self.commit(tx).await?;
        Ok(true)
    }

    /// The database's clock now: instances agree on when keys sign by it.
    pub async fn database_clock(&self) -> Result<DateTime<Utc>> {
        let sql = format!("SELECT {} AS now", self.database_now());
        let row = self
            .query_one(sea_orm::Statement::from_string(self.backend(), sql))
            .await?
            .ok_or_else(|| Error::internal("the clock query answered no row"))?;
        Ok(from_micros(
            row.try_get::<i64>("", "now").map_err(db_error)?,
        ))
    }
}
