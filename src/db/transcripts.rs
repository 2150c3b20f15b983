//! A conversation's transcript: how a message is written, how its pages are
//! read, the bot engine's turns, and the retention purge of message text.
//!
//! **One insert.** Every statement that writes a message starts with
//! [`insert_message_into!`] (its column list): the writers that write one
//! message at a time (agent replies, the first reply's transaction, bot
//! turns, nudges, the demo) run [`NewMessage::insert`], the same statement
//! on both backends; the customer deliveries, batched into scripts and
//! statements of CTEs ([`super::inbound`], [`super::pg_deliveries`]), write
//! the same columns from their own arguments. A column added to messages is
//! added here and in those two.
//!
//! **Pages.** A transcript is read a page at a time in `(at, id)` order
//! (keyset: no `OFFSET`), the latest page first: one statement per page,
//! served by `messages_transcript_idx` in the page's order and stopped at
//! its size (`tests/query_plans.rs` checks the plans on both backends).
//!
//! **Retention.** A purged message keeps its row (author, instant, ids);
//! its text becomes null and `text_purged_at` records when. Texts are purged
//! oldest first, a bounded batch per statement, never one still waiting in
//! its channel's outbox (the connector has yet to send it).

use sqlx::QueryBuilder;
use uuid::Uuid;

use super::backend::{Args, Backend};
use super::row::from_row;
use super::{NotifyInTx, StoreResult, Ts, with_read, with_write};
use crate::domain::transcript::Window;
use crate::domain::{Author, Conversation};
use crate::live::{Change, Event};

/// The start of every statement that writes a message: its column list
/// (id, conversation, direction, author, message id, agent, text, instant).
///
/// A macro so that `concat!` composes it into the customer deliveries'
/// `const` scripts and statements; it expands to a string literal.
macro_rules! insert_message_into {
    () => {
        "insert into messages (id, conversation_id, direction, author, message_id, agent_id, \
         text, at) "
    };
}
pub(super) use insert_message_into;

/// One message, every column bound (see [`NewMessage::insert`]).
const INSERT_MESSAGE: &str = concat!(
    insert_message_into!(),
    "values ($1, $2, $3, $4, $5, $6, $7, $8)"
);

/// A bot turn: written once per conversation and bot message id, whoever
/// retries (`messages_bot_message_key`).
const INSERT_BOT_MESSAGE: &str = concat!(
    insert_message_into!(),
    "values ($1, $2, $3, $4, $5, $6, $7, $8) \
     on conflict (conversation_id, message_id) where author = 'bot' do nothing"
);

/// A message about to be written.
#[derive(Debug, Clone, Copy)]
pub(super) struct NewMessage<'a> {
    pub(super) id: Uuid,
    pub(super) conversation_id: Uuid,
    pub(super) author: Author,
    /// The channel's (or the bot engine's) id of the message, if it has one.
    pub(super) message_id: Option<&'a str>,
    /// The agent who wrote it (agents' messages only).
    pub(super) agent_id: Option<Uuid>,
    pub(super) text: &'a str,
    pub(super) at: Ts,
}

impl NewMessage<'_> {
    fn arguments<DB: Backend>(&self) -> Args<DB> {
        Args::default()
            .add(self.id)
            .add(self.conversation_id)
            .add(self.author.direction())
            .add(self.author.as_str())
            .add(self.message_id)
            .add(self.agent_id)
            .add(self.text)
            .add(self.at)
    }

    /// The statement that writes this message, on the backend of the
    /// executor it runs on.
    pub(super) fn insert<'q, DB: Backend>(
        &self,
    ) -> Result<sqlx::query::Query<'q, DB, DB::Arguments>, sqlx::Error>
    where
        DB::Arguments: sqlx::IntoArguments<DB>,
    {
        Ok(sqlx::query_with::<DB, _>(
            INSERT_MESSAGE,
            self.arguments::<DB>().finish()?,
        ))
    }

    /// As [`insert`](Self::insert), for a bot turn: nothing is written (0
    /// rows) when the conversation has this bot message id already.
    fn insert_bot_turn<'q, DB: Backend>(
        &self,
    ) -> Result<sqlx::query::Query<'q, DB, DB::Arguments>, sqlx::Error>
    where
        DB::Arguments: sqlx::IntoArguments<DB>,
    {
        Ok(sqlx::query_with::<DB, _>(
            INSERT_BOT_MESSAGE,
            self.arguments::<DB>().finish()?,
        ))
    }
}

from_row! {
    /// A message as read back, with the name of the agent who wrote it.
    #[derive(Debug, Clone)]
    pub struct MessageRow {
        pub id: Uuid,
        #[try_from(String)]
        pub author: Author,
        /// `inbound` (the customer's) or `outbound`.
        pub direction: String,
        /// The channel's id (customer messages), the bot engine's (bot turns)
        /// or the nudge's key; none for agents' replies.
        pub message_id: Option<String>,
        pub agent_id: Option<Uuid>,
        pub agent_name: Option<String>,
        /// Null once purged by the retention policy.
        pub text: Option<String>,
        pub text_purged_at: Option<Ts>,
        pub at: Ts,
    }
}

impl MessageRow {
    /// Its place in the transcript.
    pub fn key(&self) -> MessageKey {
        MessageKey {
            at: self.at,
            id: self.id,
        }
    }
}

/// The columns of [`MessageRow`] and their source (`m` the messages), up
/// to the conversation's id: how a page's statement starts (see
/// [`push_page_query`]).
const MESSAGE_SELECT: &str = "select m.id, m.author, m.direction, m.message_id, m.agent_id, \
     u.name as agent_name, m.text, m.text_purged_at, m.at \
     from messages m left join users u on u.id = m.agent_id where m.conversation_id = ";

/// A message's place in its transcript (the keyset of the pages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageKey {
    pub at: Ts,
    pub id: Uuid,
}

/// Which page of a transcript.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TranscriptPosition {
    /// The latest messages.
    Latest,
    /// The messages just before this one (an older page).
    Before(MessageKey),
    /// The messages just after this one (a newer page).
    After(MessageKey),
}

/// A page of a transcript, oldest message first.
#[derive(Debug, Clone)]
pub struct TranscriptPage {
    pub messages: Vec<MessageRow>,
    /// Where the older page ends, if there are older messages.
    pub older: Option<MessageKey>,
    /// Where the newer page starts after, if there are newer messages.
    pub newer: Option<MessageKey>,
    /// The part of the status history this page tells.
    pub window: Window,
}

/// Appends the statement of a page at `position`, `limit` rows, in the
/// order it is read (newest first, or oldest first for a newer page).
/// Shared by [`Store::transcript_page`](super::Store::transcript_page) and
/// its plan's check, so the plan a test checks is the plan that serves.
pub(super) fn push_page_query<DB: Backend>(
    qb: &mut QueryBuilder<DB>,
    conversation_id: Uuid,
    position: TranscriptPosition,
    limit: i64,
) {
    qb.push(MESSAGE_SELECT);
    DB::push_bind(qb, conversation_id);
    let (key, comparison, order) = match position {
        TranscriptPosition::Latest => (None, "", "desc"),
        TranscriptPosition::Before(key) => (Some(key), "<", "desc"),
        TranscriptPosition::After(key) => (Some(key), ">", "asc"),
    };
    if let Some(key) = key {
        qb.push(format_args!(" and (m.at, m.id) {comparison} ("));
        DB::push_bind(qb, key.at);
        qb.push(", ");
        DB::push_bind(qb, key.id);
        qb.push(")");
    }
    qb.push(format_args!(" order by m.at {order}, m.id {order} limit "));
    DB::push_bind(qb, limit);
}

/// The page, from the rows read at `position` (at most `size + 1`: the
/// extra row says that there is more in the direction read).
pub(super) fn page_of(
    mut rows: Vec<MessageRow>,
    position: TranscriptPosition,
    size: usize,
) -> TranscriptPage {
    let more = rows.len() > size;
    let beyond = if more { rows.pop() } else { None };
    let first_key = |rows: &[MessageRow]| rows.first().map(MessageRow::key);
    let last_key = |rows: &[MessageRow]| rows.last().map(MessageRow::key);
    match position {
        TranscriptPosition::After(after) => {
            let from = first_key(&rows).unwrap_or(after);
            TranscriptPage {
                older: Some(from),
                newer: more.then(|| last_key(&rows)).flatten(),
                window: Window {
                    from: Some(from.at.0),
                    before: beyond.map(|row| row.at.0),
                },
                messages: rows,
            }
        }
        TranscriptPosition::Latest | TranscriptPosition::Before(_) => {
            rows.reverse();
            let newer = match position {
                TranscriptPosition::Before(before) => Some(last_key(&rows).unwrap_or(before)),
                _ => None,
            };
            let older = more.then(|| first_key(&rows)).flatten();
            TranscriptPage {
                window: Window {
                    from: older.map(|key| key.at.0),
                    before: match position {
                        TranscriptPosition::Before(before) => Some(before.at.0),
                        _ => None,
                    },
                },
                older,
                newer,
                messages: rows,
            }
        }
    }
}

/// The messages whose texts a purge batch takes: up to `$3` written before
/// `$1`, oldest first, never one whose outbox item is still pending (the
/// connector has yet to send it). A macro to be a literal in both
/// dialects' statements below.
macro_rules! purge_batch {
    () => {
        "select m.id from messages m where m.text is not null and m.at < $1 \
         and not exists (select 1 from outbox_messages o \
         where o.message_id = m.id and o.delivered_at is null) \
         order by m.at limit $3"
    };
}

/// SQLite: purges a batch (see [`purge_batch!`]), stamping it purged at
/// `$2`. The outer `text is not null` counts a row once.
const SQLITE_PURGE_TEXTS: &str = concat!(
    "update messages set text = null, text_purged_at = $2 \
     where text is not null and id in (",
    purge_batch!(),
    ")"
);

/// PostgreSQL: the same, the batch's ids taken first as an array, so each
/// row is then found by its key (a join could read every unpurged row).
/// The outer `text is not null` is checked again on a row another
/// instance purged meanwhile, which is then not counted twice.
const POSTGRES_PURGE_TEXTS: &str = concat!(
    "update messages set text = null, text_purged_at = $2 \
     where text is not null and id = any(array(",
    purge_batch!(),
    "))"
);

/// A bot turn of conversation `$1` with bot message id `$2`, if recorded.
const BOT_TURN: &str = "select id, at from messages \
    where conversation_id = $1 and message_id = $2 and author = 'bot'";

/// New activity on conversation `$1` at `$2` while it is open; answers the
/// version (what the live change names), none when it closed.
const TOUCH_IF_OPEN: &str = "update conversations set last_activity_at = \
    case when $2 > last_activity_at then $2 else last_activity_at end \
    where id = $1 and is_open returning version";

from_row! {
    /// A recorded message: its row id and instant.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct RecordedMessage {
        pub id: Uuid,
        pub at: Ts,
    }
}

/// How the transaction of a bot turn ended.
enum Written {
    /// Committed, with the change to publish.
    Committed(Event),
    /// Recorded before: nothing written.
    Seen(RecordedMessage),
    /// The conversation is closed: nothing written.
    Closed,
    /// A concurrent retry holds or wrote the bot message id: nothing written.
    Lost,
}

/// What recording a bot turn did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BotTurn {
    /// Written now.
    Recorded(RecordedMessage),
    /// Written before with this bot message id (a retry): nothing written.
    Repeated(RecordedMessage),
    /// The conversation is closed (Resuelta or Cancelada): nothing written.
    Closed,
}

impl super::Store {
    /// A page of conversation `conversation_id`'s transcript at `position`,
    /// at most `size` messages, oldest first: one indexed statement.
    pub async fn transcript_page(
        &self,
        conversation_id: Uuid,
        position: TranscriptPosition,
        size: usize,
    ) -> StoreResult<TranscriptPage> {
        let limit = i64::try_from(size).unwrap_or(i64::MAX).saturating_add(1);
        let rows: Vec<MessageRow> = with_read!(self, |pool| {
            let mut qb = QueryBuilder::new("");
            push_page_query(&mut qb, conversation_id, position, limit);
            qb.build_query_as().fetch_all(pool).await?
        });
        Ok(page_of(rows, position, size))
    }

    /// Records a bot turn on `conversation` (new activity, as an agent's
    /// reply is): once per bot message id, whoever retries; never on a
    /// closed conversation. Not a transition: status and version stay.
    pub async fn record_bot_message(
        &self,
        conversation: &Conversation,
        message_id: &str,
        text: &str,
        now: Ts,
    ) -> StoreResult<BotTurn> {
        let message = NewMessage {
            id: Uuid::now_v7(),
            conversation_id: conversation.id,
            author: Author::Bot,
            message_id: Some(message_id),
            agent_id: None,
            text,
            at: now,
        };
        let written = with_write!(self, |pool| {
            let mut tx = super::backend::begin_write(pool).await?;
            let seen: Option<RecordedMessage> = sqlx::query_as(BOT_TURN)
                .bind(conversation.id)
                .bind(message_id)
                .fetch_optional(&mut *tx)
                .await?;
            let version: Option<i64> = match seen {
                Some(_) => None,
                None => {
                    sqlx::query_scalar(TOUCH_IF_OPEN)
                        .bind(conversation.id)
                        .bind(now)
                        .fetch_optional(&mut *tx)
                        .await?
                }
            };
            let inserted = match version {
                Some(_) => message
                    .insert_bot_turn()?
                    .execute(&mut *tx)
                    .await?
                    .rows_affected(),
                None => 0,
            };
            match (seen, version) {
                (Some(first), _) => {
                    tx.rollback().await?;
                    Written::Seen(first)
                }
                (None, None) => {
                    tx.rollback().await?;
                    Written::Closed
                }
                (None, Some(_)) if inserted == 0 => {
                    tx.rollback().await?;
                    Written::Lost
                }
                (None, Some(version)) => {
                    let event = bot_change(conversation, version);
                    tx.notify_change(&self.feed().notification(event)).await?;
                    tx.commit().await?;
                    Written::Committed(event)
                }
            }
        });
        Ok(match written {
            Written::Committed(event) => {
                self.publish(event);
                BotTurn::Recorded(RecordedMessage {
                    id: message.id,
                    at: now,
                })
            }
            Written::Seen(first) => BotTurn::Repeated(first),
            Written::Closed => BotTurn::Closed,
            // A concurrent retry wrote it first: its answer, now committed.
            Written::Lost => match self.bot_turn(conversation.id, message_id).await? {
                Some(first) => BotTurn::Repeated(first),
                None => BotTurn::Closed,
            },
        })
    }

    /// The bot turn of a conversation with this bot message id, if recorded.
    async fn bot_turn(
        &self,
        conversation_id: Uuid,
        message_id: &str,
    ) -> StoreResult<Option<RecordedMessage>> {
        Ok(with_read!(self, |pool| {
            sqlx::query_as(BOT_TURN)
                .bind(conversation_id)
                .bind(message_id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Purges the texts of at most `batch` messages written before
    /// `older_than` (oldest first), in one statement, stamped purged at
    /// `now`; returns how many.
    pub async fn purge_message_texts(
        &self,
        older_than: Ts,
        now: Ts,
        batch: i64,
    ) -> StoreResult<u64> {
        let statement = match self {
            super::Store::Sqlite(_) => SQLITE_PURGE_TEXTS,
            super::Store::Postgres(_) => POSTGRES_PURGE_TEXTS,
        };
        Ok(with_write!(self, |pool| {
            sqlx::query(statement)
                .bind(older_than)
                .bind(now)
                .bind(batch)
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }

    /// The database's plans for a transcript's pages (the latest, an older
    /// and a newer one around `key`) and for a batch of the retention
    /// purge, one line per step, built by the code that serves them.
    /// `EXPLAIN QUERY PLAN` on SQLite, steps indented under their parent;
    /// `EXPLAIN` with sequential scans and sorts discouraged on PostgreSQL,
    /// so a small table still shows whether an index *can* serve each
    /// statement in its order.
    pub async fn explain_transcript(
        &self,
        conversation_id: Uuid,
        key: MessageKey,
    ) -> StoreResult<Vec<(&'static str, Vec<String>)>> {
        let pages = [
            ("latest page", TranscriptPosition::Latest),
            ("older page", TranscriptPosition::Before(key)),
            ("newer page", TranscriptPosition::After(key)),
        ];
        let mut plans = Vec::new();
        match self {
            super::Store::Sqlite(pools) => {
                for (name, position) in pages {
                    let mut qb = QueryBuilder::new("explain query plan ");
                    push_page_query(&mut qb, conversation_id, position, 51);
                    let steps: Vec<(i64, i64, i64, String)> =
                        qb.build_query_as().fetch_all(&pools.read).await?;
                    plans.push((name, indented(steps)));
                }
                let steps: Vec<(i64, i64, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(
                    format!("explain query plan {SQLITE_PURGE_TEXTS}"),
                ))
                .bind(key.at)
                .bind(key.at)
                .bind(500i64)
                .fetch_all(&pools.read)
                .await?;
                plans.push(("purge batch", indented(steps)));
            }
            super::Store::Postgres(pg) => {
                // Detector aids, for this connection only: with sequential
                // scans and sorts both discouraged, a plan that still scans
                // or sorts means that no index serves the statement in its
                // order (on a small table the planner would otherwise sort
                // a few rows, which says nothing of a long transcript).
                let mut conn = pg.pool.acquire().await?;
                sqlx::query("set enable_seqscan = off")
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("set enable_sort = off")
                    .execute(&mut *conn)
                    .await?;
                let explained = explain_postgres(&mut conn, conversation_id, key, &pages).await;
                // The connection goes back to the pool as it came.
                sqlx::query("reset enable_seqscan")
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("reset enable_sort").execute(&mut *conn).await?;
                plans = explained?;
            }
        }
        Ok(plans)
    }
}

/// The live change of a bot turn: activity, at the conversation's version.
fn bot_change(conversation: &Conversation, version: i64) -> Event {
    Event::Changed(Change {
        conversation_id: conversation.id,
        campaign_id: conversation.campaign_id,
        version,
    })
}

/// SQLite's plan rows (id, parent, unused, detail), each step indented
/// under its parent as the sqlite3 shell shows them.
fn indented(steps: Vec<(i64, i64, i64, String)>) -> Vec<String> {
    let mut depth: std::collections::HashMap<i64, usize> = Default::default();
    steps
        .into_iter()
        .map(|(id, parent, _, detail)| {
            let d = depth.get(&parent).map_or(0, |p| p + 1);
            depth.insert(id, d);
            format!("{}{detail}", "  ".repeat(d))
        })
        .collect()
}

/// PostgreSQL's plans of [`Store::explain_transcript`](super::Store::explain_transcript).
async fn explain_postgres(
    conn: &mut sqlx::PgConnection,
    conversation_id: Uuid,
    key: MessageKey,
    pages: &[(&'static str, TranscriptPosition)],
) -> Result<Vec<(&'static str, Vec<String>)>, sqlx::Error> {
    let mut plans = Vec::new();
    for (name, position) in pages {
        let mut qb = QueryBuilder::new("explain ");
        push_page_query(&mut qb, conversation_id, *position, 51);
        plans.push((*name, qb.build_query_scalar().fetch_all(&mut *conn).await?));
    }
    let purge = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "explain {POSTGRES_PURGE_TEXTS}"
    )))
    .bind(key.at)
    .bind(key.at)
    .bind(500i64)
    .fetch_all(&mut *conn)
    .await?;
    plans.push(("purge batch", purge));
    Ok(plans)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn row(minute: u32) -> MessageRow {
        MessageRow {
            id: Uuid::now_v7(),
            author: Author::Customer,
            direction: "inbound".into(),
            message_id: None,
            agent_id: None,
            agent_name: None,
            text: Some(format!("mensaje {minute}")),
            text_purged_at: None,
            at: Ts::new(Utc.with_ymd_and_hms(2026, 3, 1, 10, minute, 0).unwrap()),
        }
    }

    #[test]
    fn the_latest_page_is_read_newest_first_and_shown_oldest_first() {
        // Read for a page of 2: three rows, newest first.
        let rows = vec![row(9), row(8), row(7)];
        let page = page_of(rows, TranscriptPosition::Latest, 2);
        let minutes: Vec<_> = page.messages.iter().map(|m| m.at).collect();
        assert_eq!(minutes, vec![row(8).at, row(9).at]);
        assert_eq!(page.older.map(|k| k.at), Some(row(8).at));
        assert_eq!(page.newer, None);
        assert_eq!(page.window.from, Some(row(8).at.0));
        assert_eq!(page.window.before, None);
        // A short conversation is one page with the whole history.
        let page = page_of(vec![row(2), row(1)], TranscriptPosition::Latest, 2);
        assert_eq!(page.older, None);
        assert_eq!(page.window, Window::default());
    }

    #[test]
    fn an_older_page_ends_where_the_newer_one_starts() {
        let cursor = row(30).key();
        let page = page_of(
            vec![row(20), row(10)],
            TranscriptPosition::Before(cursor),
            2,
        );
        assert_eq!(page.older, None, "the first page");
        assert_eq!(page.newer.map(|k| k.at), Some(row(20).at));
        assert_eq!(page.window.from, None);
        assert_eq!(page.window.before, Some(cursor.at.0));
    }

    #[test]
    fn a_newer_page_reads_forward() {
        let cursor = row(5).key();
        let page = page_of(
            vec![row(6), row(7), row(8)],
            TranscriptPosition::After(cursor),
            2,
        );
        let minutes: Vec<_> = page.messages.iter().map(|m| m.at).collect();
        assert_eq!(minutes, vec![row(6).at, row(7).at]);
        assert_eq!(page.older.map(|k| k.at), Some(row(6).at));
        assert_eq!(page.newer.map(|k| k.at), Some(row(7).at));
        assert_eq!(page.window.from, Some(row(6).at.0));
        assert_eq!(page.window.before, Some(row(8).at.0));
        let last = page_of(vec![row(6)], TranscriptPosition::After(cursor), 2);
        assert_eq!(last.newer, None);
        assert_eq!(last.window.before, None);
    }
}
