//! API keys, stored as SHA-256 digests.

use sea_orm::{
    ActiveValue::Set, ColumnTrait as _, EntityTrait as _, PaginatorTrait as _, QueryFilter as _,
    QueryOrder as _,
};

use super::{Store, db_error, entities::api_key, from_micros, is_unique_violation, now, to_micros};
use crate::domain::{
    Error, Result,
    api_key::{ApiKey, Caller},
    id::Id,
};

fn key_from_row(row: api_key::Model) -> ApiKey {
    ApiKey {
        id: Id::from_uuid(row.id),
        name: row.name,
        scopes: row.scopes.split_whitespace().map(str::to_string).collect(),
        create_time: from_micros(row.create_time),
        revoke_time: row.revoke_time.map(from_micros),
    }
}

impl Store {
    /// Stores a key by its digest; the secret itself is never stored.
    pub async fn create_api_key(
        &self,
        name: &str,
        scopes: &[String],
        digest: &str,
    ) -> Result<ApiKey> {
        let row = api_key::ActiveModel {
            id: Set(Id::generate().uuid()),
            name: Set(name.to_string()),
            digest: Set(digest.to_string()),
            scopes: Set(scopes.join(" ")),
            create_time: Set(to_micros(now())),
            revoke_time: Set(None),
        };
        let tx = self.begin().await?;
        let inserted = api_key::Entity::insert(row)
            .exec_with_returning(tx.txn())
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    Error::AlreadyExists {
                        resource: "API key",
                        field: "digest",
                        reason: "API_KEY_EXISTS",
                    }
                } else {
                    db_error(e)
                }
            })?;
        self.commit(tx).await?;
        Ok(key_from_row(inserted))
    }

    /// Stores a key only if no key exists yet, atomically: instances starting together
    /// on an empty database create one first key between them, not one each. `None`
    /// when a key existed.
    pub async fn create_first_api_key(
        &self,
        name: &str,
        scopes: &[String],
        digest: &str,
    ) -> Result<Option<ApiKey>> {
        use sea_orm::{ConnectionTrait as _, DbBackend};
        // On SQLite the IMMEDIATE transaction holds the write lock; PostgreSQL takes a
        // transaction-scoped advisory lock (the table has no row to lock yet).
        let tx = self.begin().await?;
        if self.backend() == DbBackend::Postgres {
            tx.txn()
                .execute_unprepared(&format!(
                    "SELECT pg_advisory_xact_lock({})",
                    super::advisory_lock::FIRST_ADMIN_KEY
                ))
                .await
                .map_err(db_error)?;
        }
        let existing = api_key::Entity::find()
            .count(tx.txn())
            .await
            .map_err(db_error)?;
        if existing > 0 {
            return Ok(None);
        }
        let inserted = api_key::Entity::insert(api_key::ActiveModel {
            id: Set(Id::generate().uuid()),
            name: Set(name.to_string()),
            digest: Set(digest.to_string()),
            scopes: Set(scopes.join(" ")),
            create_time: Set(to_micros(now())),
            revoke_time: Set(None),
        })
        .exec_with_returning(tx.txn())
        .await
        .map_err(db_error)?;
        self.commit(tx).await?;
        Ok(Some(key_from_row(inserted)))
    }

    pub async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        let query = api_key::Entity::find().order_by_asc(api_key::Column::Id);
        let rows = self.read(|| query.clone().all(&self.db)).await?;
        Ok(rows.into_iter().map(key_from_row).collect())
    }

    pub async fn count_api_keys(&self) -> Result<u64> {
        api_key::Entity::find()
            .count(&self.db)
            .await
            .map_err(db_error)
    }

    pub async fn api_key_exists(&self, digest: &str) -> Result<bool> {
        let query = api_key::Entity::find().filter(api_key::Column::Digest.eq(digest));
        let found = self.find_one(query).await?;
        Ok(found.is_some())
    }

    /// Revokes a key. Servers verify keys from memory: it stops working on every instance
    /// within their cache staleness bound (they poll `api_key_changes`).
    pub async fn revoke_api_key(&self, id: Id) -> Result<ApiKey> {
        let tx = self.begin().await?;
        let row = api_key::Entity::find_by_id(id.uuid())
            .one(tx.txn())
            .await
            .map_err(db_error)?
            .ok_or(Error::NotFound {
                resource: "API key",
            })?;
        let mut active: api_key::ActiveModel = row.into();
        active.revoke_time = Set(Some(to_micros(now())));
        let updated = api_key::Entity::update(active)
            .exec(tx.txn())
            .await
            .map_err(db_error)?;
        self.commit(tx).await?;
        Ok(key_from_row(updated))
    }

    /// The caller a presented key's digest belongs to, if the key exists and is live.
    pub async fn caller_by_digest(&self, digest: &str) -> Result<Option<Caller>> {
        let query = api_key::Entity::find()
            .filter(api_key::Column::Digest.eq(digest))
            .filter(api_key::Column::RevokeTime.is_null());
        let row = self.find_one(query).await?;
        Ok(row.map(|row| {
            let key = key_from_row(row);
            Caller {
                key_id: key.id,
                scopes: key.scopes,
            }
        }))
    }

    /// The ids of every revoked key, so open streams of a revoked key can be ended
    /// without a read per stream.
    pub async fn revoked_api_key_ids(&self) -> Result<std::collections::HashSet<Id>> {
        let query = api_key::Entity::find().filter(api_key::Column::RevokeTime.is_not_null());
        let rows = self.read(|| query.clone().all(&self.db)).await?;
        Ok(rows.into_iter().map(|row| Id::from_uuid(row.id)).collect())
    }

    /// `(keys, revoked keys, latest revoke_time)`: changes whenever a key is created or
    /// revoked (keys are never deleted), so the caches of live and of unknown keys poll
    /// it to learn of creations and revocations by any process. The count and the time
    /// are both compared, as instances' clocks may disagree about the latest time.
    pub async fn api_key_changes(&self) -> Result<(i64, i64, Option<i64>)> {
        use sea_orm::Statement;
        let statement = Statement::from_string(
            self.backend(),
            "SELECT COUNT(*) AS total, COUNT(revoke_time) AS revoked, \
             MAX(revoke_time) AS latest FROM api_keys",
        );
        let row = self
            .query_one(statement)
            .await?
            .ok_or_else(|| Error::internal("an aggregate returned no row"))?;
        let total: i64 = row.try_get("", "total").map_err(db_error)?;
        let revoked: i64 = row.try_get("", "revoked").map_err(db_error)?;
        let latest: Option<i64> = row.try_get("", "latest").map_err(db_error)?;
        Ok((total, revoked, latest))
    }
}
