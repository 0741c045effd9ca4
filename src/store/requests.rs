//! Idempotency records: the first result of a create, keyed by its `request_id`.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait as _, DbErr, EntityTrait as _, QueryFilter as _,
    sea_query::{Expr, OnConflict},
};
use serde::{Serialize, de::DeserializeOwned};

use super::{Store, WriteTx, db_error, entities::request_id, now, to_micros};
use crate::domain::{Error, Result, idempotency::RequestKey};

impl Store {
    /// The first result stored under `key`, if any. A request id reused with another
    /// body is an error.
    pub async fn replay<T: DeserializeOwned>(&self, key: &RequestKey) -> Result<Option<T>> {
        let query = request_id::Entity::find_by_id(key.request_id.uuid());
        let row = self.find_one(query).await?;
        decode(row, key)
    }

    /// Claims `key` for `tx` as its first statement, or returns the first result
    /// stored under it. The claim is a row inserted with an empty response: a
    /// concurrent create with the same request id waits at its own claim until this
    /// transaction ends, then finds the result (committed) or claims it anew (rolled
    /// back). So concurrent retries of one request run one create and all get its
    /// result; `remember` fills the response before the commit.
    ///
    /// On the transaction's own connection: a transaction that waited for a second
    /// connection could exhaust the pool when as many creates run at once.
    pub(crate) async fn replay_in<T: DeserializeOwned>(
        &self,
        tx: &WriteTx,
        key: &RequestKey,
    ) -> Result<Option<T>> {
        let claim = request_id::Entity::insert(request_id::ActiveModel {
            request_id: Set(key.request_id.uuid()),
            fingerprint: Set(key.fingerprint.clone()),
            response: Set(String::new()),
            create_time: Set(to_micros(now())),
        })
        .on_conflict(
            OnConflict::column(request_id::Column::RequestId)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(tx.txn())
        .await;
        match claim {
            Ok(1) => return Ok(None),
            Ok(_) | Err(DbErr::RecordNotInserted) => {}
            Err(err) => return Err(db_error(err)),
        }
        let row = request_id::Entity::find_by_id(key.request_id.uuid())
            .one(tx.txn())
            .await
            .map_err(db_error)?;
        decode(row, key)
    }

    /// Stores `response` as the first result of `key`, claimed by `replay_in` in the
    /// same transaction.
    pub(crate) async fn remember<T: Serialize>(
        &self,
        tx: &WriteTx,
        key: &RequestKey,
        response: &T,
    ) -> Result<()> {
        let filled = request_id::Entity::update_many()
            .col_expr(
                request_id::Column::Response,
                Expr::value(serde_json::to_string(response).map_err(Error::internal)?),
            )
            .filter(request_id::Column::RequestId.eq(key.request_id.uuid()))
            .exec(tx.txn())
            .await
            .map_err(db_error)?;
        if filled.rows_affected != 1 {
            return Err(Error::internal(
                "a request id was remembered without a claim",
            ));
        }
        Ok(())
    }

    /// Forgets request ids recorded before `cutoff`.
    pub async fn prune_request_ids(&self, cutoff: DateTime<Utc>) -> Result<u64> {
        let tx = self.begin().await?;
        let deleted = request_id::Entity::delete_many()
            .filter(request_id::Column::CreateTime.lt(to_micros(cutoff)))
            .exec(tx.txn())
            .await
            .map_err(db_error)?
            .rows_affected;
        self.commit(tx).await?;
        Ok(deleted)
    }
}

fn decode<T: DeserializeOwned>(
    row: Option<request_id::Model>,
    key: &RequestKey,
) -> Result<Option<T>> {
    match row {
        None => Ok(None),
        Some(row) if row.fingerprint != key.fingerprint => Err(RequestKey::mismatch()),
        Some(row) => serde_json::from_str(&row.response)
            .map(Some)
            .map_err(Error::internal),
    }
}
