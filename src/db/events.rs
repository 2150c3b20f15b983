//! The ordered event log (`events`): reading a campaign's page after a
//! cursor, the PostgreSQL sequencer that numbers committed events, and the
//! retention purge.
//!
//! Events are written by triggers (migration 0019) in the transaction of
//! the change they describe, on every write path; nothing here writes one.
//! The public id of an event is its `cursor`:
//!
//! - SQLite has one writer, so insertion order is commit order, and the
//!   trigger gives each row its cursor as it inserts it.
//! - On PostgreSQL insertion order is not commit order, so rows are
//!   inserted without a cursor and [`Store::sequence_events`] numbers the
//!   committed ones afterwards, under a transaction-level advisory lock
//!   (several instances take turns): each run's cursors follow every
//!   earlier run's and commit together, so a reader never sees a cursor
//!   whose predecessors are still invisible to it.
//!
//! The purge deletes a prefix of the cursor order (the oldest events, up to
//! the first one that is not old enough) and records the highest cursor it
//! deleted (`event_log_state.purged_through`) in the same transaction: a
//! cursor below that mark may have missed an event; any other may not.

use uuid::Uuid;

use super::row::from_row;
use super::{Store, StoreResult, Ts, with_read, with_write};

/// The advisory lock the sequencers of all instances take turns on.
const SEQUENCER_LOCK: i64 = 0x7265_6c65_766f_0021;
/// Events numbered per sequencer transaction, at most.
pub const SEQUENCE_BATCH: i64 = 5000;

from_row! {
    /// An event as the feed answers it, with the names and message it
    /// refers to (the message's text is null once purged).
    #[derive(Debug, Clone)]
    pub struct EventRow {
        pub cursor: i64,
        #[try_from(String)]
        pub kind: EventType,
        pub occurred_at: Ts,
        pub conversation_id: Uuid,
        pub folio: i64,
        pub campaign_id: Uuid,
        pub channel_id: Uuid,
        pub status: String,
        pub agent_id: Option<Uuid>,
        pub previous_status: Option<String>,
        pub previous_agent_id: Option<Uuid>,
        pub actor_kind: String,
        pub actor_id: Option<Uuid>,
        pub actor_name: Option<String>,
        pub category_id: Option<Uuid>,
        pub category_name: Option<String>,
        pub subcategory_id: Option<Uuid>,
        pub subcategory_name: Option<String>,
        pub comment: Option<String>,
        pub reactivates_id: Option<Uuid>,
        /// The customer: the contact's id and its address on the channel
        /// (a phone number or the channel's code), where a nudge goes.
        pub contact_id: Uuid,
        pub contact_external_id: String,
        pub message_id: Option<Uuid>,
        pub message_author: Option<String>,
        pub message_direction: Option<String>,
        pub channel_message_id: Option<String>,
        pub message_text: Option<String>,
    }
}

/// The stored `events.type` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Created,
    Reactivated,
    HandedOff,
    OutOfHours,
    AgentsOffline,
    Assigned,
    Reassigned,
    FirstReply,
    Resolved,
    Cancelled,
    MessageReceived,
    MessageSent,
    CustomerNudge,
}

impl EventType {
    pub const ALL: [EventType; 13] = [
        EventType::Created,
        EventType::Reactivated,
        EventType::HandedOff,
        EventType::OutOfHours,
        EventType::AgentsOffline,
        EventType::Assigned,
        EventType::Reassigned,
        EventType::FirstReply,
        EventType::Resolved,
        EventType::Cancelled,
        EventType::MessageReceived,
        EventType::MessageSent,
        EventType::CustomerNudge,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Created => "created",
            EventType::Reactivated => "reactivated",
            EventType::HandedOff => "handed_off",
            EventType::OutOfHours => "out_of_hours",
            EventType::AgentsOffline => "agents_offline",
            EventType::Assigned => "assigned",
            EventType::Reassigned => "reassigned",
            EventType::FirstReply => "first_reply",
            EventType::Resolved => "resolved",
            EventType::Cancelled => "cancelled",
            EventType::MessageReceived => "message_received",
            EventType::MessageSent => "message_sent",
            EventType::CustomerNudge => "customer_nudge",
        }
    }

    /// Whether the event closes the conversation (and carries its closure).
    pub fn closes(self) -> bool {
        matches!(self, EventType::Resolved | EventType::Cancelled)
    }
}

impl TryFrom<String> for EventType {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == value)
            .ok_or_else(|| format!("unknown event type {value:?}"))
    }
}

/// A page of one campaign's events, read in one snapshot with the log's
/// marks.
#[derive(Debug, Clone)]
pub struct EventPage {
    pub events: Vec<EventRow>,
    /// The newest cursor of the whole log (any campaign) in that snapshot:
    /// every event up to it was visible to the read.
    pub high_water: i64,
    /// The highest cursor purged: a cursor below it may have missed events.
    pub purged_through: i64,
}

/// A campaign's page: the index `events_campaign_cursor_idx` in order.
pub const EVENT_PAGE: &str = "select e.cursor, e.type as kind, e.occurred_at, e.conversation_id, \
    e.folio, e.campaign_id, e.channel_id, e.status, e.agent_id, e.previous_status, \
    e.previous_agent_id, e.actor_kind, e.actor_id, e.actor_name, e.category_id, \
    cc.name as category_name, e.subcategory_id, cs.name as subcategory_name, e.comment, \
    e.reactivates_id, c.contact_id, k.external_id as contact_external_id, \
    e.message_id, m.author as message_author, \
    m.direction as message_direction, m.message_id as channel_message_id, \
    m.text as message_text \
    from events e \
    join conversations c on c.id = e.conversation_id \
    join contacts k on k.id = c.contact_id \
    left join closure_categories cc on cc.id = e.category_id \
    left join closure_subcategories cs on cs.id = e.subcategory_id \
    left join messages m on m.id = e.message_id \
    where e.campaign_id = $1 and e.cursor > $2 \
    order by e.cursor \
    limit $3";

/// The log's marks: the newest cursor (never below the purge's mark, even
/// when every event is gone) and the purge's mark.
const MARKS: &str = "select coalesce((select max(cursor) from events), 0) as high_water, \
    purged_through from event_log_state where id = 1";

/// PostgreSQL's sequencer step, under the advisory lock: the committed rows
/// without a cursor, in insertion order, numbered after the newest cursor.
/// Read committed: the statement sees every row committed before it began.
const SEQUENCE: &str = "with base as ( \
        select greatest(coalesce((select max(cursor) from events), 0), \
            (select purged_through from event_log_state where id = 1)) as b \
    ), ready as ( \
        select seq from events where cursor is null order by seq limit $1 \
    ), numbered as ( \
        select r.seq, base.b + row_number() over (order by r.seq) as c \
        from ready r cross join base \
    ) \
    update events e set cursor = n.c from numbered n where e.seq = n.seq";

/// The purge's bound: within the oldest `$2` numbered events, the newest one
/// that is older than `$1` with every event before it older too.
const PURGE_BOUND: &str = "with head as ( \
        select cursor, occurred_at from events where cursor is not null \
        order by cursor limit $2 \
    ) \
    select max(cursor) from head \
    where cursor < coalesce((select min(cursor) from head where occurred_at >= $1), \
        9223372036854775807)";

impl Store {
    /// Up to `limit` events of `campaign` after `after` (none: from the
    /// oldest kept), with the log's marks, all in one snapshot.
    pub async fn event_page(
        &self,
        campaign: Uuid,
        after: Option<i64>,
        limit: i64,
    ) -> StoreResult<EventPage> {
        let after = after.unwrap_or(0);
        let (events, (high_water, purged_through)) = match self {
            // A deferred transaction reads one WAL snapshot from its first read.
            Store::Sqlite(pools) => {
                let mut tx = pools.read.begin().await?;
                let marks: (i64, i64) = sqlx::query_as(MARKS).fetch_one(&mut *tx).await?;
                let events: Vec<EventRow> = sqlx::query_as(EVENT_PAGE)
                    .bind(campaign)
                    .bind(after)
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?;
                tx.commit().await?;
                (events, marks)
            }
            Store::Postgres(pg) => {
                let mut tx = pg
                    .pool
                    .begin_with("begin isolation level repeatable read read only")
                    .await?;
                let marks: (i64, i64) = sqlx::query_as(MARKS).fetch_one(&mut *tx).await?;
                let events: Vec<EventRow> = sqlx::query_as(EVENT_PAGE)
                    .bind(campaign)
                    .bind(after)
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?;
                tx.commit().await?;
                (events, marks)
            }
        };
        Ok(EventPage {
            events,
            high_water: high_water.max(purged_through),
            purged_through,
        })
    }

    /// What a long poll waits on before reading again: every commit on
    /// SQLite (its events are readable at once), every advance of the
    /// sequencer on PostgreSQL. Subscribe before reading.
    pub fn event_log_watch(&self) -> tokio::sync::watch::Receiver<u64> {
        match self {
            Store::Sqlite(pools) => pools.feed.committed_changes(),
            Store::Postgres(pg) => pg.feed.event_log_watch(),
        }
    }

    /// The newest cursor of the log (never below the purge's mark).
    pub async fn event_high_water(&self) -> StoreResult<i64> {
        let (high, purged): (i64, i64) =
            with_read!(self, |pool| sqlx::query_as(MARKS).fetch_one(pool).await?);
        Ok(high.max(purged))
    }

    /// Numbers the committed events that have no cursor yet (PostgreSQL; a
    /// no-op on SQLite, whose trigger numbers each row) and returns the
    /// high-water mark afterwards.
    pub async fn sequence_events(&self) -> StoreResult<i64> {
        let Store::Postgres(pg) = self else {
            return self.event_high_water().await;
        };
        loop {
            let mut tx = pg.pool.begin().await?;
            sqlx::query("select pg_advisory_xact_lock($1)")
                .bind(SEQUENCER_LOCK)
                .execute(&mut *tx)
                .await?;
            let numbered = sqlx::query(SEQUENCE)
                .bind(SEQUENCE_BATCH)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            if numbered < SEQUENCE_BATCH as u64 {
                return self.event_high_water().await;
            }
        }
    }

    /// Deletes the oldest events, at most `batch`, that occurred before
    /// `older_than` (a prefix of the cursor order), and records the highest
    /// cursor deleted, in one transaction. Returns how many were deleted.
    pub async fn purge_events(&self, older_than: Ts, batch: i64) -> StoreResult<u64> {
        Ok(with_write!(self, |pool| {
            let mut tx = super::backend::begin_write(pool).await?;
            let bound: Option<i64> = sqlx::query_scalar(PURGE_BOUND)
                .bind(older_than)
                .bind(batch)
                .fetch_one(&mut *tx)
                .await?;
            let Some(bound) = bound else {
                return Ok(0);
            };
            let deleted = sqlx::query("delete from events where cursor <= $1")
                .bind(bound)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query(
                "update event_log_state set purged_through = $1 \
                 where id = 1 and purged_through < $1",
            )
            .bind(bound)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            deleted
        }))
    }

    /// The database's plans for a page of the feed and a purge batch (see
    /// `explain_transcript` for how they are read).
    pub async fn explain_events(
        &self,
        campaign: Uuid,
    ) -> StoreResult<Vec<(&'static str, Vec<String>)>> {
        let statements = [("feed page", EVENT_PAGE), ("purge bound", PURGE_BOUND)];
        let mut plans = Vec::new();
        match self {
            Store::Sqlite(pools) => {
                for (name, sql) in statements {
                    let query = sqlx::AssertSqlSafe(format!("explain query plan {sql}"));
                    let q = sqlx::query_as::<_, (i64, i64, i64, String)>(query);
                    let q = if name == "feed page" {
                        q.bind(campaign).bind(0i64).bind(100i64)
                    } else {
                        q.bind(Ts::now()).bind(500i64)
                    };
                    let steps = q.fetch_all(&pools.read).await?;
                    plans.push((name, steps.into_iter().map(|s| s.3).collect()));
                }
            }
            Store::Postgres(pg) => {
                // Detector aids for this connection only, as for transcripts:
                // with sequential scans and sorts discouraged, a plan that
                // still scans or sorts has no index serving it in order.
                let mut conn = pg.pool.acquire().await?;
                sqlx::query("set enable_seqscan = off")
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("set enable_sort = off")
                    .execute(&mut *conn)
                    .await?;
                for (name, sql) in statements {
                    let query = sqlx::AssertSqlSafe(format!("explain {sql}"));
                    let q = sqlx::query_scalar::<_, String>(query);
                    let q = if name == "feed page" {
                        q.bind(campaign).bind(0i64).bind(100i64)
                    } else {
                        q.bind(Ts::now()).bind(500i64)
                    };
                    let steps = q.fetch_all(&mut *conn).await;
                    match steps {
                        Ok(steps) => plans.push((name, steps)),
                        Err(e) => {
                            sqlx::query("reset enable_seqscan")
                                .execute(&mut *conn)
                                .await?;
                            sqlx::query("reset enable_sort").execute(&mut *conn).await?;
                            return Err(e.into());
                        }
                    }
                }
                // The connection goes back to the pool as it came.
                sqlx::query("reset enable_seqscan")
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("reset enable_sort").execute(&mut *conn).await?;
            }
        }
        Ok(plans)
    }
}
