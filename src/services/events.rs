//! The event feed: reading a campaign's events after a cursor (waiting for
//! them when asked), the PostgreSQL sequencer that gives committed events
//! their cursors, and the retention purge (`RELEVO_EVENT_DAYS`).
//!
//! Delivery is at least once from the consumer's side: the feed never
//! skips an event, and a consumer that comes back with the last `next` it
//! stored gets everything after it. When a campaign is quiet, `next`
//! follows the whole log's high-water mark, so a live consumer's cursor
//! never falls behind the purge only because other campaigns were busy.

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::db::{EventPage, Store, StoreResult, Ts};
use crate::domain::transcript::retention_cutoff;

/// Default `limit` of a page, and the most one page holds.
pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1000;
/// The longest `wait` of a long poll.
pub const MAX_WAIT: Duration = Duration::from_secs(25);
/// A long poll reads again at least this often, even without a wake-up
/// (a wake-up lost to a dropped LISTEN connection delays, never loses).
const RECHECK: Duration = Duration::from_millis(1000);
/// The sequencer runs at least this often without a wake-up. Every change
/// wakes it (other instances' through the change log, which their
/// transactions write), so this only bounds a lost wake-up; it is not
/// shorter because each run is a few statements, logged at debug level.
const SEQUENCE_EVERY: Duration = Duration::from_secs(5);
/// How long the sequencer waits before trying again after a failure.
const SEQUENCE_RETRY: Duration = Duration::from_millis(500);
/// Events one purge statement deletes, at most, and batches per pass.
pub const PURGE_BATCH: i64 = 500;
pub const PURGE_MAX_BATCHES: usize = 40;
/// How often the background purge runs (the first pass at start).
pub const PURGE_EVERY: Duration = Duration::from_secs(600);

/// Why a cursor cannot be read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorError {
    /// After the newest event: no consumer was ever given it.
    Future { high_water: i64 },
    /// Events after it were purged: the consumer may have missed some.
    Expired { oldest_kept: i64 },
}

/// A page of the feed and the cursor to come back with.
#[derive(Debug, Clone)]
pub struct FeedPage {
    pub page: EventPage,
    pub next: i64,
}

/// Where the consumer goes on from after reading `page` from `after`: its
/// last event when the page is full (there may be more of its campaign),
/// otherwise the log's high-water mark of the read (every event up to it
/// was visible, and none of them was the campaign's beyond the page).
pub(crate) fn next_cursor(after: i64, page: &EventPage, limit: i64) -> i64 {
    match page.events.last() {
        Some(last) if page.events.len() as i64 >= limit => last.cursor,
        Some(last) => last.cursor.max(page.high_water),
        None => after.max(page.high_water),
    }
}

/// Checks a consumer's cursor against the log's marks.
pub(crate) fn check_cursor(after: Option<i64>, page: &EventPage) -> Result<(), CursorError> {
    let Some(after) = after else {
        return Ok(());
    };
    if after > page.high_water {
        return Err(CursorError::Future {
            high_water: page.high_water,
        });
    }
    if after < page.purged_through {
        return Err(CursorError::Expired {
            oldest_kept: page.purged_through + 1,
        });
    }
    Ok(())
}

/// Reads `campaign`'s events after `after` (none: from the oldest kept),
/// waiting up to `wait` for one when there is none yet (not while the
/// instance shuts down: the consumer comes back, to another instance).
pub async fn read(
    store: &Store,
    campaign: Uuid,
    after: Option<i64>,
    limit: i64,
    wait: Duration,
) -> StoreResult<Result<FeedPage, CursorError>> {
    let deadline = tokio::time::Instant::now() + wait.min(MAX_WAIT);
    let mut woken = store.event_log_watch();
    loop {
        woken.borrow_and_update();
        let page = store.event_page(campaign, after, limit).await?;
        if let Err(e) = check_cursor(after, &page) {
            return Ok(Err(e));
        }
        let now = tokio::time::Instant::now();
        if !page.events.is_empty() || now >= deadline || store.feed().shutting_down() {
            let next = next_cursor(after.unwrap_or(0), &page, limit);
            return Ok(Ok(FeedPage { page, next }));
        }
        let nap = (deadline - now).min(RECHECK);
        // A closed channel (the feed is gone) only ends the nap early.
        let _ = tokio::time::timeout(nap, woken.changed()).await;
    }
}

/// PostgreSQL: numbers committed events after every change this instance
/// hears of (its own, and other instances' through the change log), and at
/// least every [`SEQUENCE_EVERY`]; wakes this instance's long polls when
/// the log's high-water mark moved, whoever numbered the events. Nothing
/// on SQLite, whose trigger numbers each event as it writes it.
pub fn spawn_sequencer(store: Store) {
    if !matches!(store, Store::Postgres(_)) {
        return;
    }
    tokio::spawn(async move {
        let mut changes = store.feed().committed_changes();
        let mut seen = -1;
        loop {
            if store.is_closed() {
                break;
            }
            // Marked seen before the run, not after: a commit that lands
            // while it runs (after its snapshot) wakes the next run at
            // once instead of waiting up to SEQUENCE_EVERY.
            changes.borrow_and_update();
            match store.sequence_events().await {
                Ok(high_water) if high_water != seen => {
                    seen = high_water;
                    store.feed().event_log_advanced();
                }
                Ok(_) => {}
                Err(e) if e.is_unavailable() => tokio::time::sleep(SEQUENCE_RETRY).await,
                Err(e) => {
                    tracing::warn!(error = ?e, "numbering events failed");
                    tokio::time::sleep(SEQUENCE_RETRY).await;
                }
            }
            let _ = tokio::time::timeout(SEQUENCE_EVERY, changes.changed()).await;
        }
    });
}

/// Deletes events older than `days` at `now`, a batch at a time, at most
/// `max_batches` batches (`None`: until none is left). Returns how many.
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
        let n = store.purge_events(cutoff, PURGE_BATCH).await?;
        purged += n;
        batches += 1;
        if n < PURGE_BATCH as u64 {
            break;
        }
    }
    Ok(purged)
}

/// Purges events older than `days` every [`PURGE_EVERY`] (the first pass
/// right away), a bounded pass each time, until the store's pools close.
pub fn spawn_purge(store: Store, days: u32) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PURGE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if store.is_closed() {
                break;
            }
            match purge_older_than(&store, days, Utc::now(), Some(PURGE_MAX_BATCHES)).await {
                Ok(0) => {}
                Ok(purged) => tracing::info!(purged, days, "events purged"),
                Err(e) => tracing::warn!(error = ?e, "purging events failed"),
            }
        }
    });
}
