//! The change feed: what the live Mensajes tables follow.
//!
//! Every committed change is published by the Store, after commit, to an
//! in-process `tokio::sync::broadcast`. On PostgreSQL the same transaction
//! also writes it to the `change_log` table, and every instance reads that
//! log and re-broadcasts what other instances committed, so a change made
//! through any instance reaches every instance's viewers, even if the
//! instance that made it stops right after its commit.
//!
//! The log replaced a `NOTIFY` inside each writing transaction: PostgreSQL
//! holds one database-wide lock from a notifying transaction's pre-commit
//! until its commit is flushed to disk, so no two writes could share a WAL
//! flush, and under customer messages most backends waited on that lock
//! (see BENCHMARKS.md). A `NOTIFY` is still sent, after the commit and
//! without a payload, only to wake the readers at once (several commits
//! share one, see [`Announcer`]); without it they read every
//! [`LOG_POLL`] anyway, so a lost wake-up delays a change but never loses it.
//!
//! Changes go only to the viewers whose scope allows their campaign (see
//! [`fanout`]); the rare events that concern everyone (access changes,
//! resync, offline, shutdown) go through the broadcast.
//!
//! Publishing never waits: a viewer that falls behind loses its place and is
//! told to resynchronise instead of slowing writers down.

pub mod cache;
pub mod fanout;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

/// The PostgreSQL notification channel that wakes the change log's readers.
pub const CHANNEL: &str = "relevo_changes";
/// How long a wake-up waits for more commits to share it.
const WAKE_DELAY: Duration = Duration::from_millis(10);
/// How often the change log is read without a wake-up.
pub const LOG_POLL: Duration = Duration::from_millis(500);
/// How long an id skipped in the change log is looked for: it was taken by a
/// transaction that had not committed yet when a later id was read (or that
/// rolled back, and never appears).
const GAP_WAIT: Duration = Duration::from_secs(30);
/// Most ids looked for at once; a larger gap makes viewers resync instead.
const MAX_GAPS: usize = 10_000;
/// How often an instance deletes old change log entries.
const LOG_CLEANUP: Duration = Duration::from_secs(60);
/// How long after an instance read an entry it deletes it: far longer than
/// any other reader is behind (one that lost its connection resyncs) or
/// than [`GAP_WAIT`].
const LOG_KEPT: Duration = Duration::from_secs(600);
/// Events kept for slow viewers before they must resynchronise.
const CAPACITY: usize = 4096;

/// A conversation changed (a transition, a new conversation, new activity).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub conversation_id: Uuid,
    pub campaign_id: Uuid,
    pub version: i64,
}

/// What the feed carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    Changed(Change),
    /// A user's rights or sessions changed (`None`: possibly anyone's); live
    /// streams re-read their viewer's scope before sending anything else.
    AccessChanged {
        user_id: Option<Uuid>,
    },
    /// Names or settings that lists show changed (an administrative write
    /// that is not an access change: a rename, a new category): nothing for
    /// live streams to do, but cached views are stale.
    DirectoryChanged,
    /// Changes may have been missed (the LISTEN connection came back after
    /// a gap): viewers reload what they show.
    Resync,
    /// The database cannot be reached: tables are not live until `Resync`.
    Offline,
    /// This instance is shutting down: viewers reconnect (to another instance).
    Shutdown,
}

/// A notification as sent between instances.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    instance: Uuid,
    event: Event,
}

/// The in-process feed, shared by the Store and every live stream.
#[derive(Clone, Debug)]
pub struct Feed {
    tx: broadcast::Sender<(u64, Event)>,
    router: fanout::Router,
    instance: Uuid,
    sequence: Arc<AtomicU64>,
    /// Bumped, synchronously with publishing, by every event after which
    /// cached rights may be wrong (see `auth::principals`).
    access_epoch: Arc<AtomicU64>,
    /// What cached Mensajes views are checked against (see [`cache::ViewCache`]).
    views: Arc<ViewGenerations>,
    /// Bumped by every published change: something may have been written
    /// to the event log (on SQLite, readable at once; on PostgreSQL, once
    /// the sequencer has numbered it).
    committed: Arc<watch::Sender<u64>>,
    /// Bumped when the event log's high-water mark may have advanced (see
    /// [`Feed::event_log_advanced`]): what long polls of the feed wait for.
    event_log: Arc<watch::Sender<u64>>,
    /// Set by [`Event::Shutdown`]: long polls answer at once instead of
    /// holding the graceful shutdown for up to their whole wait.
    shutting_down: Arc<std::sync::atomic::AtomicBool>,
}

/// Slots of [`ViewGenerations`]: campaigns share a slot only by hash, which
/// costs the other campaign a cache miss, never a stale view.
const VIEW_SLOTS: usize = 256;

/// Monotonic counters, bumped synchronously as events are published, whose
/// sum over a scope changes whenever anything a view of that scope shows
/// may have changed.
#[derive(Debug)]
struct ViewGenerations {
    /// Events after which any view may be wrong: access changes, directory
    /// changes, a resync, an outage.
    everything: AtomicU64,
    /// Every change of any campaign (what a Super Administrador sees).
    any_change: AtomicU64,
    /// Changes by campaign slot.
    slots: [AtomicU64; VIEW_SLOTS],
}

impl ViewGenerations {
    fn new() -> ViewGenerations {
        ViewGenerations {
            everything: AtomicU64::new(0),
            any_change: AtomicU64::new(0),
            slots: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    fn slot(campaign: Uuid) -> usize {
        let (high, low) = campaign.as_u64_pair();
        ((high ^ low) % VIEW_SLOTS as u64) as usize
    }
}

impl Default for Feed {
    fn default() -> Self {
        Feed::new()
    }
}

impl Feed {
    pub fn new() -> Feed {
        let (tx, _) = broadcast::channel(CAPACITY);
        Feed {
            tx,
            router: fanout::Router::default(),
            instance: Uuid::now_v7(),
            sequence: Arc::new(AtomicU64::new(0)),
            access_epoch: Arc::new(AtomicU64::new(0)),
            views: Arc::new(ViewGenerations::new()),
            committed: Arc::new(watch::Sender::new(0)),
            event_log: Arc::new(watch::Sender::new(0)),
            shutting_down: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        }
    }

    /// Whether this instance is shutting down (see [`Event::Shutdown`]).
    pub fn shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// Wakes whoever follows committed changes (the event log's sequencer).
    pub fn committed_changes(&self) -> watch::Receiver<u64> {
        self.committed.subscribe()
    }

    /// Tells long polls of the event feed that new events may be readable.
    pub fn event_log_advanced(&self) {
        self.event_log.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// What a long poll of the event feed waits on: subscribe *before*
    /// reading, so a commit between the read and the wait is not missed.
    pub fn event_log_watch(&self) -> watch::Receiver<u64> {
        self.event_log.subscribe()
    }

    /// Delivers to this instance's viewers (a change to those whose scope
    /// allows it, anything else to all); never blocks. Each event gets an
    /// increasing sequence number (the SSE event id).
    pub fn publish(&self, event: Event) {
        match event {
            Event::AccessChanged { .. } | Event::Resync | Event::Offline => {
                self.access_epoch.fetch_add(1, Ordering::SeqCst);
                self.views.everything.fetch_add(1, Ordering::SeqCst);
            }
            Event::DirectoryChanged => {
                self.views.everything.fetch_add(1, Ordering::SeqCst);
            }
            Event::Changed(change) => {
                self.views.slots[ViewGenerations::slot(change.campaign_id)]
                    .fetch_add(1, Ordering::SeqCst);
                self.views.any_change.fetch_add(1, Ordering::SeqCst);
                self.committed.send_modify(|n| *n = n.wrapping_add(1));
            }
            Event::Shutdown => {
                self.shutting_down.store(true, Ordering::SeqCst);
                self.committed.send_modify(|n| *n = n.wrapping_add(1));
                self.event_log.send_modify(|n| *n = n.wrapping_add(1));
            }
        }
        let id = self.sequence.fetch_add(1, Ordering::Relaxed) + 1;
        match event {
            Event::Changed(change) => self.router.route(id, change),
            // Only cached views care, and they were told above.
            Event::DirectoryChanged => {}
            // No subscriber is not an error: nobody is watching.
            _ => {
                let _ = self.tx.send((id, event));
            }
        }
    }

    /// Changes whenever rights may have changed anywhere.
    pub fn access_epoch(&self) -> u64 {
        self.access_epoch.load(Ordering::SeqCst)
    }

    /// Changes whenever rights or the directory (names, tokens, channels,
    /// categories: anything an administrative write changes) may have
    /// changed anywhere.
    pub fn directory_epoch(&self) -> u64 {
        self.views.everything.load(Ordering::SeqCst)
    }

    /// A number that changes whenever anything a Mensajes view of `scope`
    /// shows may have changed: read it before loading a view, and trust the
    /// view only while it is unchanged.
    pub fn view_stamp(&self, scope: &crate::domain::Scope) -> u64 {
        let views = &self.views;
        let everything = views.everything.load(Ordering::SeqCst);
        let changes = match scope {
            crate::domain::Scope::All => views.any_change.load(Ordering::SeqCst),
            crate::domain::Scope::Campaigns(ids) => ids
                .iter()
                .map(|id| views.slots[ViewGenerations::slot(*id)].load(Ordering::SeqCst))
                .fold(0u64, u64::wrapping_add),
        };
        everything.wrapping_add(changes)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<(u64, Event)> {
        self.tx.subscribe()
    }

    /// The changes a viewer with `scope` may see, from now on.
    pub fn follow(&self, scope: &crate::domain::Scope) -> fanout::Changes {
        self.router.join(scope)
    }

    /// The change log entry announcing `event` to other instances.
    pub fn notification(&self, event: Event) -> String {
        serde_json::to_string(&Envelope {
            instance: self.instance,
            event,
        })
        .unwrap_or_default()
    }

    /// Re-broadcasts a change log entry of another instance (ours are
    /// already published locally).
    fn receive(&self, payload: &str) {
        match serde_json::from_str::<Envelope>(payload) {
            Ok(envelope) if envelope.instance != self.instance => self.publish(envelope.event),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "ignoring a malformed change notification"),
        }
    }
}

/// Wakes the other instances' readers of the change log once changes have
/// been committed: [`Announcer::committed`] never waits, and the commits
/// made while a wake-up is being sent share the next one.
#[derive(Clone, Debug, Default)]
pub struct Announcer {
    poke: Arc<tokio::sync::Notify>,
}

impl Announcer {
    /// Something was written to the change log and committed.
    pub fn committed(&self) {
        self.poke.notify_one();
    }
}

/// Sends the wake-ups of `announcer` for the instance of `feed` until the
/// pool closes: at most one per [`WAKE_DELAY`], which the commits made
/// meanwhile share (one per commit was as many statements again as the
/// writes themselves).
pub fn spawn_pg_announcer(pool: PgPool, announcer: Announcer, feed: &Feed) {
    let instance = feed.instance.to_string();
    tokio::spawn(async move {
        while !pool.is_closed() {
            if tokio::time::timeout(Duration::from_secs(1), announcer.poke.notified())
                .await
                .is_err()
            {
                continue;
            }
            tokio::time::sleep(WAKE_DELAY).await;
            // The payload names the sender, whose own reader has nothing to
            // do; readers read the log itself. A failure only delays the
            // readers until their next poll.
            if let Err(e) = sqlx::query("select pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(&instance)
                .execute(&pool)
                .await
            {
                tracing::debug!(error = %e, "could not wake the other instances");
            }
        }
    });
}

/// Follows other instances' changes on PostgreSQL until the pool closes,
/// reconnecting with back-off; after any gap it asks viewers to resync.
pub fn spawn_pg_listener(pool: PgPool, feed: Feed) {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(250);
        let mut first = true;
        while !pool.is_closed() {
            match follow(&pool, &feed, &mut first).await {
                Ok(()) => backoff = Duration::from_millis(250),
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "change listener disconnected");
                    feed.publish(Event::Offline);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    });
}

/// Reads the change log from its current end on: whenever woken, and every
/// [`LOG_POLL`].
async fn follow(pool: &PgPool, feed: &Feed, first: &mut bool) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    let mut log = LogReader::from_end(pool).await?;
    if !std::mem::take(first) {
        feed.publish(Event::Resync);
    }
    tracing::info!("following the changes of other instances");
    let wake = tokio::sync::Notify::new();
    let own = feed.instance.to_string();
    let wake_ups = async {
        loop {
            // `try_recv` answers `None` when the connection was lost (it then
            // reconnects by itself): the log still has what was committed.
            match listener.try_recv().await? {
                Some(woken) if woken.payload() == own => {}
                Some(_) => wake.notify_one(),
                None => {
                    tracing::debug!("change listener reconnected");
                    wake.notify_one();
                }
            }
        }
        #[allow(unreachable_code)]
        Ok::<(), sqlx::Error>(())
    };
    let reads = async {
        loop {
            let _ = tokio::time::timeout(LOG_POLL, wake.notified()).await;
            if pool.is_closed() {
                return Ok(());
            }
            log.read(pool, feed).await?;
        }
    };
    tokio::select! {
        done = wake_ups => done,
        done = reads => done,
    }
}

/// Where an instance is in the change log.
struct LogReader {
    /// The highest id read.
    last: i64,
    /// Ids below `last` not read yet, with when they were first missed.
    missing: std::collections::BTreeMap<i64, std::time::Instant>,
    /// The highest id read, every [`LOG_CLEANUP`], oldest first: entries up
    /// to one read [`LOG_KEPT`] ago are deleted (by id, the table's one
    /// index, rather than by a time column needing another on every write).
    read_marks: std::collections::VecDeque<(std::time::Instant, i64)>,
}

impl LogReader {
    /// Starts after the entries already in the log.
    async fn from_end(pool: &PgPool) -> Result<LogReader, sqlx::Error> {
        let last: i64 = sqlx::query_scalar("select coalesce(max(id), 0) from change_log")
            .fetch_one(pool)
            .await?;
        Ok(LogReader {
            last,
            missing: Default::default(),
            read_marks: [(std::time::Instant::now(), last)].into(),
        })
    }

    /// Re-broadcasts the entries committed since the last read, and any
    /// missing one that has committed since.
    async fn read(&mut self, pool: &PgPool, feed: &Feed) -> Result<(), sqlx::Error> {
        let missing: Vec<i64> = self.missing.keys().copied().collect();
        let entries: Vec<(i64, String)> = sqlx::query_as(
            "select id, payload from change_log where id > $1 or id = any($2) order by id",
        )
        .bind(self.last)
        .bind(&missing)
        .fetch_all(pool)
        .await?;
        let now = std::time::Instant::now();
        for (id, payload) in entries {
            if id > self.last {
                let skipped = (id - self.last - 1) as usize;
                if self.missing.len() + skipped > MAX_GAPS {
                    tracing::warn!(
                        skipped,
                        "too many change log entries in flight; viewers will resync"
                    );
                    self.missing.clear();
                    feed.publish(Event::Resync);
                } else {
                    self.missing
                        .extend((self.last + 1..id).map(|gap| (gap, now)));
                }
                self.last = id;
            } else {
                self.missing.remove(&id);
            }
            feed.receive(&payload);
        }
        self.missing
            .retain(|_, since| now.duration_since(*since) < GAP_WAIT);
        if self
            .read_marks
            .back()
            .is_none_or(|(at, _)| now.duration_since(*at) >= LOG_CLEANUP)
        {
            self.read_marks.push_back((now, self.last));
        }
        let mut expired = None;
        while let Some(&(at, id)) = self.read_marks.front()
            && now.duration_since(at) >= LOG_KEPT
        {
            expired = Some(id);
            self.read_marks.pop_front();
        }
        if let Some(id) = expired {
            sqlx::query("delete from change_log where id <= $1")
                .bind(id)
                .execute(pool)
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_ignores_its_own_notifications() {
        let ours = Feed::new();
        let theirs = Feed::new();
        let mut rx = ours.subscribe();
        let event = Event::AccessChanged { user_id: None };
        ours.receive(&ours.notification(event));
        assert!(rx.try_recv().is_err());
        ours.receive(&theirs.notification(event));
        assert_eq!(rx.try_recv().unwrap().1, event);
    }

    #[test]
    fn publishing_without_viewers_is_fine() {
        Feed::new().publish(Event::Resync);
    }
}
