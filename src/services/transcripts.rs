//! The retention policy of transcripts: message texts older than
//! `RELEVO_TRANSCRIPT_DAYS` are purged (the messages, their authors and
//! times, and the status history stay), in the background on every
//! instance and on demand with `relevo purge --older-than DAYS`.
//!
//! Each batch is one statement (its own transaction) of at most
//! [`BATCH`] messages, so the purge never holds the writer for long; a pass
//! takes at most [`MAX_BATCHES`] of them. Several instances may purge at
//! once: a text purged twice is counted once. Only counts are logged, and
//! `/metrics` counts the texts purged (`relevo_transcript_texts_purged`).

use chrono::{DateTime, Utc};

use crate::db::{Store, StoreResult, Ts};
use crate::domain::transcript::retention_cutoff;

/// Messages whose texts one statement purges, at most.
pub const BATCH: i64 = 500;
/// Batches per background pass, at most (20,000 texts).
pub const MAX_BATCHES: usize = 40;
/// How often the background purge runs (the first pass at start).
pub const EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Purges the texts of messages older than `days` days at `now`, a batch
/// at a time, at most `max_batches` batches (`None`: until none is left).
/// Returns how many texts were purged.
pub async fn purge_older_than(
    store: &Store,
    days: u32,
    now: DateTime<Utc>,
    max_batches: Option<usize>,
) -> StoreResult<u64> {
    let cutoff = Ts::new(retention_cutoff(now, days));
    let mut purged = 0;
    let mut batches = 0;
    while max_batches.is_none_or(|max| batches < max) {
        let n = store
            .purge_message_texts(cutoff, Ts::new(now), BATCH)
            .await?;
        crate::telemetry::METRICS.texts_purged(n);
        purged += n;
        batches += 1;
        if n < BATCH as u64 {
            break;
        }
    }
    Ok(purged)
}

/// Purges texts older than `days` every [`EVERY`] (the first pass right
/// away), a bounded pass each time, until the store's pools close. Errors
/// are logged, never fatal.
pub fn spawn_purge(store: Store, days: u32) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if store.is_closed() {
                break;
            }
            match purge_older_than(&store, days, Utc::now(), Some(MAX_BATCHES)).await {
                Ok(0) => {}
                Ok(purged) => tracing::info!(purged, days, "message texts purged"),
                Err(e) => tracing::warn!(error = ?e, "purging message texts failed"),
            }
        }
    });
}
