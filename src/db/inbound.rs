//! Recording a customer message: the busiest write of the product (every
//! message of every channel), so it is shaped for few round trips.
//!
//! A delivery is one transaction in two steps, on both backends:
//!
//! 1. **Look-up**: create or refresh the contact (unless the delivery was
//!    already processed), then read in one statement what the decision
//!    needs: the contact, its latest conversation, and the first outcome of
//!    this `message_id` if there was one.
//! 2. **Write**, decided in Rust by [`conversation::continues`]: either new
//!    activity on the open conversation, or a new conversation in ICR with its
//!    `created` history row; then the message and the delivery record (and,
//!    on PostgreSQL, the change's entry in the change log).
//!
//! On SQLite each step is one multi-statement script (sqlx runs all of its
//! statements in one hand-off to the connection's thread, binding the shared
//! `$N` to every statement): four hand-offs per message with `begin` and
//! `commit`, where one statement each took ten. Writes are serialised on one
//! connection there, and the look-up reads inside the write transaction
//! (after every write committed before it or earlier in its group commit,
//! transitions included), so the look-up is authoritative for the
//! transaction: a conversation it reads open stays open until the write.
//!
//! On PostgreSQL the write step is one statement of data-modifying CTEs
//! (foreign keys are checked at its end, when every row exists). Concurrent
//! deliveries of one contact are ordered by the contact's row lock, taken by
//! the upsert; the look-up runs after it, so it sees what a delivery that
//! held the lock committed. Of two concurrent deliveries of the same
//! `message_id`, the one whose delivery record does not insert rolls back.
//! Transitions do not take the contact's lock, though: a cancel may commit
//! between the look-up and the write. So new activity is written only `where
//! is_open` (the update waits for a transition holding the row, then reads
//! the row it left), the message only if that update took it, and a
//! delivery whose conversation closed meanwhile is decided again, which
//! starts a new conversation: a customer message never lands on a closed
//! conversation ([`POSTGRES_CONTINUE`], and the batches' `WRITE_ALL`).
//!
//! [`conversation::continues`]: crate::domain::conversation::continues

use super::api::{InboundMessage, InboundOutcome};
use super::delivery::{
    self, Decision, DeliveryPlan, DeliveryState, FirstOutcome, NewIds, PgWriter, Target,
    delivery_state_columns, refresh_contact,
};
use super::transcripts::insert_message_into;
use super::{ChannelAuth, StoreResult, Ts};
use crate::live::{Change, Event};

/// Creates or refreshes the contact, unless this delivery was processed
/// already. `$1` channel, `$2` message id, `$3` new contact id, `$4` the
/// customer's address, `$5` name, `$6` its folded key, `$7` now. The first
/// `where` also keeps SQLite from reading `on conflict` as a join's `on`.
///
/// The contact row is rewritten only when the name the channel sent differs
/// from the stored one: nearly every message repeats the customer's profile
/// name, and rewriting an unchanged row cost a new row version (and, on
/// SQLite, its name index entry) per message. On PostgreSQL a conflicting
/// row is locked whether or not the `do update … where` holds, so the
/// contact's lock still orders concurrent deliveries.
///
/// The statement texts of this module are macros that expand to string
/// literals, so that `concat!` composes SQLite's scripts and PostgreSQL's
/// statements of CTEs from the same parts at compile time; none binds or
/// runs anything.
macro_rules! upsert_contact {
    () => {
        concat!(
            "insert into contacts (id, channel_id, external_id, name, name_key, created_at) \
             select $3, $1, $4, $5, $6, $7 \
             where not exists (select 1 from inbound_messages where channel_id = $1 and message_id = $2) ",
            refresh_contact!()
        )
    };
}

/// The decision's inputs as one row: the contact (`$1` channel, `$4`
/// address), its latest conversation, and this delivery's first outcome
/// (`$2` message id), each null when there is none. A literal for `concat!`
/// (see [`upsert_contact!`]), its placeholders as literals per statement.
macro_rules! delivery_state {
    ($channel:literal, $message_id:literal, $from:literal) => {
        concat!(
            "select ",
            delivery_state_columns!(),
            " from (select 1 as one) o \
             left join contacts k on k.channel_id = ",
            $channel,
            " and k.external_id = ",
            $from,
            " left join conversations l on l.id = (select c.id from conversations c \
             where c.contact_id = k.id order by c.started_at desc, c.folio desc limit 1) \
             left join inbound_messages p on p.channel_id = ",
            $channel,
            " and p.message_id = ",
            $message_id,
            " left join conversations pc on pc.id = p.conversation_id"
        )
    };
}

/// SQLite's look-up: the upsert and the state, in one hand-off.
const SQLITE_LOOK_UP: &str = concat!(upsert_contact!(), "; ", delivery_state!("$1", "$2", "$4"));

/// PostgreSQL's look-up is two statements: the state must be read after the
/// upsert took the contact's lock (a new snapshot), which one statement
/// cannot do.
const POSTGRES_UPSERT_CONTACT: &str = upsert_contact!();
const POSTGRES_DELIVERY_STATE: &str = delivery_state!("$1", "$2", "$3");

/// A new conversation (see [`DeliveryPlan::start_arguments`]). `$1` conversation id, `$2` campaign, `$3` channel,
/// `$4` contact, `$5` now, `$6` the conversation it reactivates, `$7`
/// history row id, `$8` message row id, `$9` message id, `$10` text.
/// A literal for `concat!` (see [`upsert_contact!`]).
macro_rules! insert_conversation {
    () => {
        "insert into conversations (id, campaign_id, channel_id, contact_id, status, is_open, \
         version, agent_id, started_at, last_activity_at, reactivates_id) \
         values ($1, $2, $3, $4, 'icr', true, 1, null, $5, $5, $6) returning folio"
    };
}
/// Its `created` history row (the same arguments), a literal for `concat!`.
macro_rules! insert_created_event {
    () => {
        "insert into conversation_events (id, conversation_id, at, kind, from_status, to_status, \
         from_agent_id, to_agent_id, category_id, subcategory_id, comment, actor_kind, actor_id) \
         values ($7, $1, $5, 'created', null, 'icr', null, null, null, null, null, 'customer', null)"
    };
}
/// Its message (the same arguments), a literal for `concat!`.
macro_rules! insert_inbound_message {
    () => {
        concat!(
            insert_message_into!(),
            "values ($8, $1, 'inbound', 'customer', $9, null, $10, $5)"
        )
    };
}
/// Its delivery record (the same arguments), `$started` as a literal; a
/// literal for `concat!`.
macro_rules! insert_delivery {
    ($started:literal) => {
        concat!(
            "insert into inbound_messages (channel_id, message_id, conversation_id, received_at, \
             started_conversation) values ($3, $9, $1, $5, ",
            $started,
            ")"
        )
    };
}

/// SQLite: a new conversation and its message, in one hand-off. The
/// delivery record has no `on conflict`: the look-up in this transaction
/// found it absent and no other writer can add it meanwhile, so a duplicate
/// would be a bug, and the primary key then fails the whole transaction.
const SQLITE_START: &str = concat!(
    insert_conversation!(),
    "; ",
    insert_created_event!(),
    "; ",
    insert_inbound_message!(),
    "; ",
    insert_delivery!("true")
);

/// SQLite: activity on the open conversation and the message (see
/// [`DeliveryPlan::append_arguments`]). `$1` conversation, `$2` now, `$3`
/// channel, `$4` message row id, `$5` message id, `$6` text.
const SQLITE_CONTINUE: &str = concat!(
    "update conversations set last_activity_at = max(last_activity_at, $2) where id = $1; ",
    insert_message_into!(),
    "values ($4, $1, 'inbound', 'customer', $5, null, $6, $2); \
     insert into inbound_messages (channel_id, message_id, conversation_id, received_at, \
     started_conversation) values ($3, $5, $1, $2, false)"
);

/// PostgreSQL: [`SQLITE_START`] as one statement, plus the change's entry in
/// the change log (`$11` payload, see [`crate::live`]). Answers the folio,
/// whether the delivery record was inserted (0: a concurrent retry won;
/// roll back), and that the conversation took the message (always 1).
const POSTGRES_START: &str = concat!(
    "with conversation as (",
    insert_conversation!(),
    "), created as (",
    insert_created_event!(),
    "), message as (",
    insert_inbound_message!(),
    "), claim as (",
    insert_delivery!("true"),
    " on conflict (channel_id, message_id) do nothing returning 1), \
     announce as (insert into change_log (payload) values ($11) returning 1) \
     select (select folio from conversation), (select count(*) from claim), \
     (select count(*) from announce)"
);

/// PostgreSQL: [`SQLITE_CONTINUE`] as one statement, with the same
/// numbering plus the change's entry in the change log (`$7` payload), and
/// written only while the conversation is still open: the look-up read it
/// open, but a transition may have closed it since (the update waits for
/// the transition's row lock and then sees the closed row). Answers, like
/// [`POSTGRES_START`], whether the delivery record was inserted, and then
/// whether the conversation took the message (0: it closed; nothing was
/// written, and the delivery is decided again).
const POSTGRES_CONTINUE: &str = concat!(
    "with touched as (update conversations \
     set last_activity_at = greatest(last_activity_at, $2) where id = $1 and is_open returning 1), \
     message as (",
    insert_message_into!(),
    "select $4, $1, 'inbound', 'customer', $5, null, $6, $2 from touched), \
     claim as (insert into inbound_messages (channel_id, message_id, conversation_id, \
     received_at, started_conversation) select $3, $5, $1, $2, false from touched \
     on conflict (channel_id, message_id) do nothing returning 1), \
     announce as (insert into change_log (payload) select $7 from touched returning 1) \
     select null::bigint, (select count(*) from claim), (select count(*) from announce)"
);

/// A delivery already processed: its first outcome, as stored.
const PROCESSED: &str = "select m.conversation_id, m.started_conversation, c.folio, \
    c.reactivates_id from inbound_messages m join conversations c on c.id = m.conversation_id \
    where m.channel_id = $1 and m.message_id = $2";

/// How a PostgreSQL delivery's transaction ended.
enum Delivery {
    /// Written and committed.
    Applied(InboundOutcome, Change),
    /// Already processed: nothing written. `None` when a concurrent retry
    /// won the race and its outcome is to be read after it committed.
    Seen(Option<FirstOutcome>),
    /// Nothing written: the open conversation it was to continue closed
    /// after the look-up (see [`POSTGRES_CONTINUE`]); decided again.
    Closed,
}

/// Transactions a delivery alone may take before it answers 503: each
/// further one means a transition closed its conversation between the
/// look-up and the write, and the next look-up sees it closed.
const ALONE_ATTEMPTS: usize = 3;

/// One SQLite delivery inside the open transaction `tx`: the look-up, then
/// the write. A delivery already processed writes nothing (the guarded
/// upsert leaves the contact alone), so it may share a transaction with
/// others.
pub(super) async fn deliver_sqlite(
    tx: &mut sqlx::SqliteConnection,
    channel: &ChannelAuth,
    message: &InboundMessage,
    now: Ts,
) -> Result<SqliteDelivery, sqlx::Error> {
    let ids = NewIds::new();
    let look_up =
        delivery::upsert_arguments::<sqlx::Sqlite>(channel, message, &ids, now).finish()?;
    let state: DeliveryState = sqlx::query_as_with(SQLITE_LOOK_UP, look_up)
        // Every row, so that every statement of the script runs.
        .fetch_all(&mut *tx)
        .await?
        .pop()
        .ok_or_else(|| sqlx::Error::Protocol("no delivery state".into()))?;
    let plan = match delivery::decide(&state, channel, message, &ids, now)? {
        Decision::Replay(first) => return Ok(Err(first)),
        Decision::Write(plan) => plan,
    };
    let folio = write_sqlite(tx, &plan).await?;
    Ok(Ok((plan.outcome(folio)?, plan.change)))
}

/// Writes `plan` on SQLite: the new conversation's folio when it starts one.
async fn write_sqlite(
    tx: &mut sqlx::SqliteConnection,
    plan: &DeliveryPlan<'_>,
) -> Result<Option<i64>, sqlx::Error> {
    Ok(match &plan.target {
        Target::Append(open) => {
            let args = plan.append_arguments::<sqlx::Sqlite>(open).finish()?;
            sqlx::query_with(SQLITE_CONTINUE, args)
                .execute(&mut *tx)
                .await?;
            None
        }
        Target::Start(new) => {
            let args = plan.start_arguments::<sqlx::Sqlite>(new).finish()?;
            sqlx::query_scalar_with(SQLITE_START, args)
                .fetch_all(&mut *tx)
                .await?
                .pop()
        }
    })
}

/// A SQLite delivery: written (with its change), or the first outcome.
pub(super) type SqliteDelivery = Result<(InboundOutcome, Change), FirstOutcome>;

/// What a committed delivery answers, after publishing its change.
pub(super) fn settle(feed: &crate::live::Feed, delivery: SqliteDelivery) -> InboundOutcome {
    match delivery {
        Ok((outcome, change)) => {
            feed.publish(Event::Changed(change));
            outcome
        }
        Err(first) => first.replay(),
    }
}

impl super::Store {
    /// Records a customer message on `channel`: continues the contact's open
    /// conversation there (new activity), or starts a new one in ICR linked
    /// to the contact's latest final conversation. A `message_id` already
    /// processed on the channel writes nothing and returns the first outcome.
    pub async fn record_customer_message(
        &self,
        channel: &ChannelAuth,
        message: &InboundMessage,
        now: Ts,
    ) -> StoreResult<InboundOutcome> {
        match self {
            // With the next group commit (see [`super::group_commit`]).
            super::Store::Sqlite(pools) => {
                pools
                    .group_commit
                    .deliver(*channel, message.clone(), now)
                    .await
            }
            // With the next batch (see [`super::pg_deliveries`]).
            super::Store::Postgres(pg) => {
                pg.deliveries.deliver(*channel, message.clone(), now).await
            }
        }
    }
}

impl super::Store {
    /// [`Store::record_customer_message`](super::Store::record_customer_message)
    /// by the writer a PostgreSQL batch falls back to: one delivery in a
    /// transaction of its own. SQLite has one writer, so there it is the
    /// same call. For the tests that hold every writer to one behaviour.
    #[doc(hidden)]
    pub async fn record_customer_message_alone(
        &self,
        channel: &ChannelAuth,
        message: &InboundMessage,
        now: Ts,
    ) -> StoreResult<InboundOutcome> {
        match self {
            super::Store::Sqlite(_) => self.record_customer_message(channel, message, now).await,
            super::Store::Postgres(pg) => {
                deliver_postgres_alone(&pg.deliveries.writer, channel, message, now).await
            }
        }
    }

    /// Deliveries PostgreSQL's batches have committed since start (0 on
    /// SQLite), so a test can tell the batch writer ran.
    #[doc(hidden)]
    pub fn deliveries_batched(&self) -> u64 {
        match self {
            super::Store::Sqlite(_) => 0,
            super::Store::Postgres(pg) => pg.deliveries.batched(),
        }
    }
}

/// A PostgreSQL delivery in a transaction of its own, statement by
/// statement: the path of a batch's deliveries when their batch could not
/// commit (see [`super::pg_deliveries`]).
pub(super) async fn deliver_postgres_alone(
    pg: &PgWriter,
    channel: &ChannelAuth,
    message: &InboundMessage,
    now: Ts,
) -> StoreResult<InboundOutcome> {
    for _ in 0..ALONE_ATTEMPTS {
        match deliver_postgres_once(pg, channel, message, now).await? {
            Delivery::Applied(outcome, change) => {
                pg.publish(Event::Changed(change));
                return Ok(outcome);
            }
            Delivery::Seen(Some(first)) => return Ok(first.replay()),
            Delivery::Seen(None) => {
                let first: FirstOutcome = sqlx::query_as(PROCESSED)
                    .bind(channel.id)
                    .bind(&message.message_id)
                    .fetch_one(&pg.pool)
                    .await?;
                return Ok(first.replay());
            }
            Delivery::Closed => continue,
        }
    }
    // Answered 503: the channel's retry is decided afresh.
    Err(sqlx::Error::Protocol("the conversation kept closing under a delivery".into()).into())
}

/// One transaction of [`deliver_postgres_alone`]: the look-up, the decision
/// and the write, committed only if the write went where it was decided.
async fn deliver_postgres_once(
    pg: &PgWriter,
    channel: &ChannelAuth,
    message: &InboundMessage,
    now: Ts,
) -> StoreResult<Delivery> {
    let ids = NewIds::new();
    let mut tx = pg.pool.begin().await?;
    let upsert =
        delivery::upsert_arguments::<sqlx::Postgres>(channel, message, &ids, now).finish()?;
    sqlx::query_with(POSTGRES_UPSERT_CONTACT, upsert)
        .execute(&mut *tx)
        .await?;
    let state: DeliveryState = sqlx::query_as(POSTGRES_DELIVERY_STATE)
        .bind(channel.id)
        .bind(&message.message_id)
        .bind(&message.from)
        .fetch_one(&mut *tx)
        .await?;
    let plan = match delivery::decide(&state, channel, message, &ids, now)? {
        Decision::Replay(first) => {
            tx.rollback().await?;
            return Ok(Delivery::Seen(Some(first)));
        }
        Decision::Write(plan) => plan,
    };
    let notification = pg.feed.notification(Event::Changed(plan.change));
    let args = match &plan.target {
        Target::Append(open) => plan.append_arguments::<sqlx::Postgres>(open),
        Target::Start(new) => plan.start_arguments::<sqlx::Postgres>(new),
    }
    .add(notification)
    .finish()?;
    let statement = match plan.target {
        Target::Append(_) => POSTGRES_CONTINUE,
        Target::Start(_) => POSTGRES_START,
    };
    let (folio, claimed, taken): (Option<i64>, i64, i64) = sqlx::query_as_with(statement, args)
        .fetch_one(&mut *tx)
        .await?;
    if taken == 0 {
        // The conversation closed after the look-up: nothing was written.
        tx.rollback().await?;
        return Ok(Delivery::Closed);
    }
    if claimed == 0 {
        // Another delivery of this message won: undo ours.
        tx.rollback().await?;
        return Ok(Delivery::Seen(None));
    }
    let outcome = plan.outcome(folio)?;
    tx.commit().await?;
    Ok(Delivery::Applied(outcome, plan.change))
}
