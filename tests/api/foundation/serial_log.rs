//! The log as a serial history (issue 26, SPEC §8): when two transactions change the
//! same row, the one whose change took effect first has the lower sequences, whatever
//! order PostgreSQL handed out their transaction ids in; each resource's revisions rise
//! along the log, and a consumer applying it in order ends where the database is.

use std::{collections::HashMap, time::Duration};

use sea_orm::{ConnectionTrait as _, Database, TransactionTrait as _};
use tenancy::domain::event::{Event, EventResource};
use tenancy_client::pb;

use crate::accounts;
use crate::customers::{self, personal};
use crate::helpers::{Backend, TestApp, spawn_app, unique_email};

/// Renames an account through UpdateAccount (no etag).
async fn rename(app: &TestApp, account_id: &str, name: &str) -> Result<pb::Account, tonic::Status> {
    app.accounts
        .clone()
        .update_account(pb::UpdateAccountRequest {
            account_id: account_id.into(),
            account: Some(pb::Account {
                name: name.into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["name".into()],
            }),
            etag: String::new(),
        })
        .await
        .map(|r| r.into_inner().account.expect("an account"))
}

fn terminate_request(customer_id: &str) -> pb::UpdateCustomerRequest {
    pb::UpdateCustomerRequest {
        customer_id: customer_id.into(),
        customer: Some(pb::Customer {
            status: pb::CustomerStatus::Terminated as i32,
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["status".into()],
        }),
        etag: String::new(),
    }
}

/// One account event: (sequence, type, revision, status, name).
type AccountStep = (i64, String, i64, String, String);

/// Each account's events in log order.
fn account_histories(log: &[Event]) -> HashMap<String, Vec<AccountStep>> {
    let mut histories: HashMap<String, Vec<_>> = HashMap::new();
    for event in log {
        if let EventResource::Account(account) = &event.resource {
            histories
                .entry(account.id.uuid().to_string())
                .or_default()
                .push((
                    event.sequence,
                    event.kind.clone(),
                    account.revision,
                    account.status.as_str().to_string(),
                    account.name.clone(),
                ));
        }
    }
    histories
}

/// PostgreSQL: the termination cascade takes its transaction id first (it locks the
/// customer, then a trigger holds it there), an UpdateAccount on one of its accounts
/// takes a later id and commits first, then the cascade changes that account and
/// commits. A side session keeps the sequencer from numbering either until both have
/// committed, so both land in one batch (the events carry one numbering time). The log
/// must put the update first: ordering by transaction id put the cascade first.
async fn a_cascade_that_took_its_id_first_but_committed_last_is_numbered_after(backend: Backend) {
    let Backend::Postgres(_) = backend else {
        return; // SQLite numbers each transaction inside its commit, one writer at a time.
    };
    let app = spawn_app(backend).await;
    let customer = customers::create(&app, personal(&unique_email("serial"))).await;
    let account = accounts::create(&app, &customer.uuid, "before").await;
    let db = Database::connect(&app.database.url).await.expect("connect");
    for sql in [
        "CREATE OR REPLACE FUNCTION hold_status_change() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN PERFORM pg_sleep(0.8); RETURN NEW; END $$",
        "CREATE TRIGGER hold_status_change BEFORE UPDATE ON customers FOR EACH ROW \
         WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION hold_status_change()",
    ] {
        db.execute_unprepared(sql).await.expect(sql);
    }
    app.sequenced().await;

    // The sequencer's statement inserts into `events`: SHARE mode keeps it waiting,
    // while writers (which insert only into `pending_events`) go on.
    let hold = db.begin().await.expect("begin");
    hold.execute_unprepared("LOCK TABLE events IN SHARE MODE")
        .await
        .expect("lock events");
    let cascade = tokio::spawn({
        let mut customers = app.customers.clone();
        let id = customer.uuid.clone();
        async move { customers.update_customer(terminate_request(&id)).await }
    });
    // The cascade now holds the customer row (and its transaction id) in the trigger.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let renamed = rename(&app, &account.uuid, "renamed while the cascade waited")
        .await
        .expect("rename");
    let terminated = cascade.await.expect("join").expect("terminate");
    assert_eq!(
        terminated.into_inner().customer.expect("customer").status,
        pb::CustomerStatus::Terminated as i32
    );
    hold.commit().await.expect("release the sequencer");

    let log = app.log_after(0, 10_000).await.expect("log");
    let history = &account_histories(&log)[&account.uuid];
    let renamed_event = history
        .iter()
        .find(|(_, kind, ..)| kind == "account.updated")
        .expect("the rename's event");
    let cascade_event = history
        .iter()
        .find(|(_, kind, ..)| kind == "account.status_changed")
        .expect("the cascade's event");
    let time_of = |sequence: i64| {
        log.iter()
            .find(|e| e.sequence == sequence)
            .expect("in the log")
            .time
    };
    assert_eq!(
        time_of(renamed_event.0),
        time_of(cascade_event.0),
        "the injection must put both transactions in one sequencer batch"
    );
    assert!(
        renamed_event.0 < cascade_event.0,
        "the update committed first and must come first: {history:?}"
    );
    let final_account = accounts::get(&app, &account.uuid).await.expect("get");
    let last = history.last().expect("events");
    assert_eq!(last.1, "account.status_changed");
    assert_eq!(final_account.etag, format!("W/\"{}\"", last.2));
    assert_eq!(final_account.name, renamed.name);
    assert_eq!(
        last.4, renamed.name,
        "the cascade's event carries the rename"
    );
}

/// A consumer applying the log in order ends where the database is: 40 rounds of a
/// TERMINATE cascade racing a tight loop of UpdateAccount on the customer's accounts;
/// every account's revisions rise along the log and its last event equals GetAccount.
async fn a_cascade_racing_account_updates_leaves_every_account_history_in_revision_order(
    backend: Backend,
) {
    const ROUNDS: usize = 40;
    const ACCOUNTS: usize = 3;
    let app = spawn_app(backend).await;
    let mut all_accounts = Vec::new();
    for round in 0..ROUNDS {
        let customer =
            customers::create(&app, personal(&unique_email(&format!("race{round}")))).await;
        let mut ids = Vec::new();
        for a in 0..ACCOUNTS {
            ids.push(
                accounts::create(&app, &customer.uuid, &format!("r{round}a{a}"))
                    .await
                    .uuid,
            );
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let updaters: Vec<_> = ids
            .iter()
            .map(|id| {
                let (app_accounts, id, stop) = (app.accounts.clone(), id.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut accounts = app_accounts;
                    let mut n = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        n += 1;
                        let _ = accounts
                            .update_account(pb::UpdateAccountRequest {
                                account_id: id.clone(),
                                account: Some(pb::Account {
                                    name: format!("name {n}"),
                                    ..Default::default()
                                }),
                                update_mask: Some(prost_types::FieldMask {
                                    paths: vec!["name".into()],
                                }),
                                etag: String::new(),
                            })
                            .await;
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(15)).await;
        app.customers
            .clone()
            .update_customer(terminate_request(&customer.uuid))
            .await
            .expect("terminate");
        tokio::time::sleep(Duration::from_millis(10)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for updater in updaters {
            updater.await.expect("updater");
        }
        all_accounts.extend(ids);
    }

    let log = app.log_after(0, 1_000_000).await.expect("log");
    let histories = account_histories(&log);
    let mut out_of_order = Vec::new();
    for id in &all_accounts {
        let history = &histories[id];
        if history.windows(2).any(|pair| pair[1].2 <= pair[0].2) {
            out_of_order.push(id.clone());
        }
        let current = accounts::get(&app, id).await.expect("get");
        let last = history.last().expect("an account has events");
        assert_eq!(
            (current.etag.clone(), current.name.clone()),
            (format!("W/\"{}\"", last.2), last.4.clone()),
            "the last event of {id} is not the account as stored"
        );
        assert_eq!(
            current.status,
            pb::AccountStatus::Inactive as i32,
            "terminated"
        );
        assert_eq!(last.3, "inactive", "the last event of {id} says INACTIVE");
    }
    assert!(
        out_of_order.is_empty(),
        "{} of {} accounts have revisions out of order along the log",
        out_of_order.len(),
        all_accounts.len()
    );
}

crate::on_both_backends!(
    a_cascade_that_took_its_id_first_but_committed_last_is_numbered_after,
    a_cascade_racing_account_updates_leaves_every_account_history_in_revision_order,
);
