//! `StreamEvents`: replay from a sequence, then follow live.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::App;
use crate::domain::{Error, Result, event::Event};

/// Events in sequence order; ends when the server shuts down or the receiver goes.
pub type EventStream = ReceiverStream<Result<Event>>;

const BATCH: u64 = 500;
const POLL: Duration = Duration::from_millis(500);

impl App {
    /// Opens a stream of the events after `after_sequence`. Resuming before the oldest
    /// kept event, or after the newest, is `OUT_OF_RANGE`: the consumer must resync.
    pub async fn stream_events(&self, after_sequence: i64) -> Result<EventStream> {
        if after_sequence < 0 {
            return Err(Error::invalid("after_sequence", "must not be negative"));
        }
        let (pruned_through, last) = self.store.event_bounds().await?;
        if after_sequence < pruned_through {
            return Err(Error::OutOfRange(format!(
                "events up to {pruned_through} are no longer kept; resynchronise, then resume from a later sequence"
            )));
        }
        if after_sequence > last {
            return Err(Error::OutOfRange(format!(
                "the newest event is {last}; {after_sequence} is after it"
            )));
        }
        let (sender, receiver) = mpsc::channel(BATCH as usize);
        let store = self.store.clone();
        let mut shutting_down = self.shutting_down.clone();
        let mut committed = store.subscribe_events();
        tokio::spawn(async move {
            let mut cursor = after_sequence;
            loop {
                let batch = match store.events_after(cursor, BATCH).await {
                    Ok(batch) => batch,
                    Err(error) => {
                        let _ = sender.send(Err(error)).await;
                        return;
                    }
                };
                let full = batch.len() as u64 == BATCH;
                for event in batch {
                    cursor = event.sequence;
                    if sender.send(Ok(event)).await.is_err() {
                        return;
                    }
                }
                if full {
                    continue;
                }
                // Wake on a local commit at once; other instances' commits are found by
                // the poll.
                tokio::select! {
                    _ = committed.changed() => {}
                    _ = tokio::time::sleep(POLL) => {}
                    _ = sender.closed() => return,
                    _ = shutting_down.wait_for(|down| *down) => return,
                }
            }
        });
        Ok(ReceiverStream::new(receiver))
    }
}
