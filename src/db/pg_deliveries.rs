//! PostgreSQL's group commit of customer messages: the deliveries waiting
//! are written together, with one multi-row statement per step.
//!
//! One delivery alone is four statements (the contact upsert, the look-up,
//! the write, the commit), and under load PostgreSQL spent its time on the
//! statements' fixed cost, not on the rows (BENCHMARKS.md, items 28-29). A
//! lane here takes every delivery waiting (up to [`MAX_BATCH`]) and runs the
//! same three steps of [`super::inbound`] over arrays: the upsert of every
//! contact, the look-up of every state, the decisions in Rust
//! ([`delivery::decide`], as for one), and one statement of data-modifying CTEs
//! for every write. Answers and live changes go out after the commit.
//!
//! A batch holds **one delivery per contact and per message id**, so every
//! decision reads what the deliveries before it committed (the contact's
//! lock orders them, as for one): a second message of a contact waits for
//! the lane's next batch. Meanwhile the other lane may write a third one:
//! like concurrent requests, messages of one contact arriving within a
//! batch's time of each other are not kept in arrival order.
//!
//! Locks are taken in one order by every batch, on every instance: the
//! contacts in key order (the upsert's rows are sorted), then each batch's
//! conversations, which only a holder of their contact's lock updates here,
//! then the status totals of new conversations, by campaign and channel
//! (the rows are inserted in that order, and their triggers fire at the statement's end
//! in it: what PostgreSQL does, not what it documents). A transition locks
//! one conversation and then its campaign's totals, the same order. Should
//! a deadlock happen anyway, PostgreSQL aborts one side and the batch falls
//! back as below.
//!
//! A transition locks the conversation, not the contact, so one may close a
//! conversation that the look-up read open before the batch writes. The
//! write statement therefore touches only conversations still open (the
//! update waits for a transition holding the row, then reads the row it
//! left) and writes each message, delivery record and change only where its
//! conversation was touched or is new: a customer message never lands on a
//! closed conversation. A delivery whose conversation closed is decided
//! again by the lane's next batch, whose look-up sees it closed and starts a
//! new conversation linked to it (see [`Written::Closed`]); this costs no
//! statement or round trip when nothing closed.
//!
//! A batch the database refuses (a foreign key, a deadlock, a delivery of
//! one of its message ids committed first by another lane or instance) is
//! rolled back and each of its deliveries runs alone in a transaction of
//! its own ([`inbound::deliver_postgres_alone`]), so one delivery's failure
//! is its own and nothing is ever half written. A batch that cannot reach
//! the database, or whose commit fails, answers the error to every
//! delivery (see [`Failed`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use tokio::sync::{Mutex, mpsc, oneshot};
use uuid::Uuid;

use super::api::{InboundMessage, InboundOutcome};
use super::delivery::{
    self, Decision, DeliveryPlan, DeliveryState, FirstOutcome, NewIds, PgWriter, Target,
    delivery_state_columns, refresh_contact,
};
use super::inbound;
use super::transcripts::insert_message_into;
use super::{ChannelAuth, StoreResult, Ts};
use crate::live::{Change, Event};

/// Most deliveries written together.
const MAX_BATCH: usize = 64;

/// Batches a delivery may be decided in before it runs alone: each further
/// one means a transition closed its conversation between the look-up and
/// the write, and the next look-up sees it closed, so a second batch is
/// nearly always the last.
const BATCH_ATTEMPTS: u8 = 3;

/// Batches written at once: while one lane's batch runs, the next collects
/// what arrives meanwhile.
const LANES: usize = 2;

/// Every contact of the batch, created or refreshed as [`inbound`] does for
/// one, in key order (the lock order, see the module docs). `$1` channels,
/// `$2` message ids, `$3` new contact ids, `$4` addresses, `$5` names, `$6`
/// folded names, `$7` instants.
const UPSERT_CONTACTS: &str = concat!(
    "insert into contacts (id, channel_id, external_id, name, name_key, created_at) \
     select u.contact_id, u.channel_id, u.address, u.name, u.name_key, u.at \
     from unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::text[], $6::text[], \
     $7::timestamptz[]) as u(channel_id, message_id, contact_id, address, name, name_key, at) \
     where not exists (select 1 from inbound_messages p \
     where p.channel_id = u.channel_id and p.message_id = u.message_id) \
     order by u.channel_id, u.address ",
    refresh_contact!()
);

/// Every delivery's [`DeliveryState`], in the batch's order. `$1` channels,
/// `$2` message ids, `$3` addresses.
const DELIVERY_STATES: &str = concat!(
    "select ",
    delivery_state_columns!(),
    " from unnest($1::uuid[], $2::text[], $3::text[]) with ordinality \
     as u(channel_id, message_id, address, i) \
     left join contacts k on k.channel_id = u.channel_id and k.external_id = u.address \
     left join conversations l on l.id = (select c.id from conversations c \
     where c.contact_id = k.id order by c.started_at desc, c.folio desc limit 1) \
     left join inbound_messages p on p.channel_id = u.channel_id and p.message_id = u.message_id \
     left join conversations pc on pc.id = p.conversation_id \
     order by u.i"
);

/// Every write of the batch, in one statement. Activity on open
/// conversations: `$1` ids, `$2` the messages' instants (set, as for one
/// delivery, never merged with the stored one: the automatic cancellation's
/// guard relies on every customer message moving the activity), **only
/// while the conversation is still open**: the look-up read it open, but a
/// transition may have closed it since (it locks the row, and this update
/// waits for it and then sees the closed row), and a message must never
/// land on a closed conversation. New conversations, inserted by campaign
/// (the totals' lock order): `$3` ids, `$4` campaigns, `$5` channels, `$6`
/// contacts, `$7` instants, `$8` the conversations they reactivate, `$9`
/// their `created` history rows. Every message: `$10` row ids, `$11`
/// conversations, `$12` message ids, `$13` texts, `$14` instants, `$15`
/// channels, `$16` whether it started its conversation. `$17` the changes'
/// entries in the change log. A message, its delivery record and its change
/// are written only if its conversation was (`written`): touched, or new.
/// `created` comes after `message` on purpose: PostgreSQL runs the
/// statements no one reads from last-written first, and the order their rows
/// are inserted in is the order of their events in the log (a conversation
/// is created, then its first message is received).
/// Answers how many delivery records were inserted (fewer than written: a
/// concurrent delivery of one of them won), the new conversations' folios,
/// and the open conversations actually touched (the others closed after the
/// look-up: their deliveries are decided again).
const WRITE_ALL: &str = concat!(
    "with touched as (update conversations c set last_activity_at = greatest(c.last_activity_at, u.at) \
     from unnest($1::uuid[], $2::timestamptz[]) as u(id, at) where c.id = u.id and c.is_open \
     returning c.id), \
     conversation as (insert into conversations (id, campaign_id, channel_id, contact_id, \
     status, is_open, version, agent_id, started_at, last_activity_at, reactivates_id) \
     select n.id, n.campaign_id, n.channel_id, n.contact_id, 'icr', true, 1, null::uuid, \
     n.at, n.at, n.reactivates_id \
     from unnest($3::uuid[], $4::uuid[], $5::uuid[], $6::uuid[], $7::timestamptz[], $8::uuid[]) \
     as n(id, campaign_id, channel_id, contact_id, at, reactivates_id) \
     order by n.campaign_id, n.channel_id returning id, folio), \
     written as (select id from touched union all select id from conversation), \
     message as (",
    insert_message_into!(),
    "select m.id, m.conversation_id, 'inbound', 'customer', m.message_id, null::uuid, m.text, \
     m.at \
     from unnest($10::uuid[], $11::uuid[], $12::text[], $13::text[], $14::timestamptz[]) \
     as m(id, conversation_id, message_id, text, at) \
     where m.conversation_id in (select id from written)), \
     created as (insert into conversation_events (id, conversation_id, at, kind, from_status, \
     to_status, from_agent_id, to_agent_id, category_id, subcategory_id, comment, actor_kind, \
     actor_id) \
     select e.id, e.conversation_id, e.at, 'created', null::text, 'icr', null::uuid, null::uuid, \
     null::uuid, null::uuid, null::text, 'customer', null::uuid \
     from unnest($9::uuid[], $3::uuid[], $7::timestamptz[]) as e(id, conversation_id, at)), \
     claim as (insert into inbound_messages (channel_id, message_id, conversation_id, \
     received_at, started_conversation) \
     select d.channel_id, d.message_id, d.conversation_id, d.at, d.started \
     from unnest($15::uuid[], $12::text[], $11::uuid[], $14::timestamptz[], $16::bool[]) \
     as d(channel_id, message_id, conversation_id, at, started) \
     where d.conversation_id in (select id from written) \
     on conflict (channel_id, message_id) do nothing returning 1), \
     announce as (insert into change_log (payload) select a.payload \
     from unnest($17::text[], $11::uuid[]) with ordinality as a(payload, conversation_id, i) \
     where a.conversation_id in (select id from written) order by a.i returning 1) \
     select (select count(*) from claim), \
     coalesce((select array_agg(id order by folio) from conversation), '{}'), \
     coalesce((select array_agg(folio order by folio) from conversation), '{}'), \
     (select count(*) from announce), \
     coalesce((select array_agg(id) from touched), '{}')"
);

/// A delivery waiting for its batch, with where its answer goes.
struct Job {
    channel: ChannelAuth,
    message: InboundMessage,
    now: Ts,
    reply: oneshot::Sender<StoreResult<InboundOutcome>>,
    /// Batches that decided it already (see [`BATCH_ATTEMPTS`]).
    attempts: u8,
}

/// The queue of the batching lanes (see the module docs).
#[derive(Clone, Debug)]
pub struct PgDeliveries {
    queue: mpsc::UnboundedSender<Job>,
    /// Deliveries handed to the queue so far (see [`PgDeliveries::queued_total`]).
    queued: Arc<AtomicU64>,
    /// What a delivery alone writes with (see [`inbound::deliver_postgres_alone`]).
    pub(super) writer: PgWriter,
    /// Deliveries committed by a batch (written or replayed), for tests.
    batched: Arc<AtomicU64>,
}

impl PgDeliveries {
    /// Starts [`LANES`] batching lanes writing through `writer`.
    pub(super) fn start(writer: PgWriter) -> Self {
        let (queue, jobs) = mpsc::unbounded_channel::<Job>();
        let jobs = Arc::new(Mutex::new(jobs));
        let batched = Arc::new(AtomicU64::new(0));
        for _ in 0..LANES {
            tokio::spawn(lane(writer.clone(), jobs.clone(), batched.clone()));
        }
        PgDeliveries {
            queue,
            queued: Default::default(),
            writer,
            batched,
        }
    }

    /// How many deliveries have been queued since start. A readiness signal
    /// for tests: a delivery counted here is queued, so tests wait for it
    /// instead of sleeping.
    pub fn queued_total(&self) -> u64 {
        self.queued.load(Ordering::SeqCst)
    }

    /// Deliveries committed by a batch since start.
    pub(super) fn batched(&self) -> u64 {
        self.batched.load(Ordering::Relaxed)
    }

    /// Records a customer message with the next batch and waits for its
    /// commit.
    pub(super) async fn deliver(
        &self,
        channel: ChannelAuth,
        message: InboundMessage,
        now: Ts,
    ) -> StoreResult<InboundOutcome> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job {
                channel,
                message,
                now,
                reply,
                attempts: 0,
            })
            .map_err(|_| sqlx::Error::PoolClosed)?;
        self.queued
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // The batch runs to its end even if this request goes away.
        answer.await.map_err(|_| sqlx::Error::PoolClosed)?
    }
}

/// One lane: takes what is waiting, writes it, answers; until the queue
/// closes. A delivery that cannot join a batch (see [`Batch::admit`]), or
/// whose conversation closed before its batch wrote (see [`WRITE_ALL`]), is
/// among the first of the lane's next one.
async fn lane(
    writer: PgWriter,
    jobs: Arc<Mutex<mpsc::UnboundedReceiver<Job>>>,
    batched: Arc<AtomicU64>,
) {
    let mut waiting: Vec<Job> = Vec::new();
    let mut arrived = Vec::with_capacity(MAX_BATCH);
    loop {
        let room = MAX_BATCH.saturating_sub(waiting.len());
        if waiting.is_empty() {
            if jobs.lock().await.recv_many(&mut arrived, room).await == 0 {
                return;
            }
        } else if let Ok(mut jobs) = jobs.try_lock() {
            // With deliveries of its own to write, a lane only takes what is
            // already there: the queue's lock may be held by another lane
            // waiting for new ones, which means there are none.
            while arrived.len() < room {
                match jobs.try_recv() {
                    Ok(job) => arrived.push(job),
                    Err(_) => break,
                }
            }
        }
        let mut batch = Batch::default();
        let mut deferred = Vec::new();
        for job in waiting.drain(..).chain(arrived.drain(..)) {
            if let Some(job) = batch.admit(job) {
                deferred.push(job);
            }
        }
        // Deliveries to decide again arrived before the deferred ones.
        waiting = run_batch(&writer, batch.jobs, &batched).await;
        waiting.append(&mut deferred);
    }
}

/// Deliveries that may share a batch: one per contact and per message id.
#[derive(Default)]
struct Batch {
    jobs: Vec<Job>,
    contacts: HashSet<(Uuid, String)>,
    message_ids: HashSet<(Uuid, String)>,
}

impl Batch {
    /// Adds `job`, or gives it back when its contact or its message id
    /// already has a delivery in the batch.
    fn admit(&mut self, job: Job) -> Option<Job> {
        let contact = (job.channel.id, job.message.from.clone());
        let message_id = (job.channel.id, job.message.message_id.clone());
        if self.contacts.contains(&contact) || self.message_ids.contains(&message_id) {
            return Some(job);
        }
        self.contacts.insert(contact);
        self.message_ids.insert(message_id);
        self.jobs.push(job);
        None
    }
}

/// How one delivery of a committed batch ended.
enum Written {
    /// Written: what to answer and the change to publish.
    Applied(InboundOutcome, Change),
    /// Processed before: its first outcome.
    Seen(FirstOutcome),
    /// Nothing written: the open conversation it continued was closed by a
    /// transition after the look-up. Decided again by a later batch, whose
    /// look-up sees it closed and so starts a new conversation.
    Closed,
}

/// Why a batch did not commit, and so how its deliveries are answered.
enum Failed {
    /// The database refused part of it (a foreign key, a deadlock), or a
    /// concurrent delivery claimed one of its message ids first: nothing
    /// was written, and each delivery runs alone, which fails only the one
    /// at fault and answers a lost claim with the winner's outcome.
    RunAlone(Option<sqlx::Error>),
    /// The database could not be reached, or the commit's fate is unknown:
    /// every delivery answers the error (503), and the channel's retry gets
    /// the first outcome if the batch did commit. Running each alone would
    /// wait for the pool once per delivery, or answer committed deliveries
    /// as retries without publishing them.
    Answer(sqlx::Error),
}

impl From<sqlx::Error> for Failed {
    /// Before the commit: a refusal by the database fails a delivery, any
    /// other error the batch.
    fn from(e: sqlx::Error) -> Failed {
        match e {
            sqlx::Error::Database(_) => Failed::RunAlone(Some(e)),
            e => Failed::Answer(e),
        }
    }
}

/// Writes `jobs` in one transaction and answers them (see [`Failed`] for
/// when it does not commit); returns the deliveries to decide again (see
/// [`Written::Closed`]).
async fn run_batch(writer: &PgWriter, jobs: Vec<Job>, batched: &AtomicU64) -> Vec<Job> {
    let mut again = Vec::new();
    match write_batch(writer, &jobs).await {
        Ok(written) => {
            let committed = written
                .iter()
                .filter(|w| !matches!(w, Written::Closed))
                .count();
            batched.fetch_add(committed as u64, Ordering::Relaxed);
            for (mut job, written) in jobs.into_iter().zip(written) {
                let outcome = match written {
                    Written::Applied(outcome, change) => {
                        writer.publish(Event::Changed(change));
                        outcome
                    }
                    Written::Seen(first) => first.replay(),
                    Written::Closed if job.attempts + 1 < BATCH_ATTEMPTS => {
                        job.attempts += 1;
                        again.push(job);
                        continue;
                    }
                    Written::Closed => {
                        let answer = inbound::deliver_postgres_alone(
                            writer,
                            &job.channel,
                            &job.message,
                            job.now,
                        )
                        .await;
                        let _ = job.reply.send(answer);
                        continue;
                    }
                };
                let _ = job.reply.send(Ok(outcome));
            }
        }
        Err(Failed::RunAlone(e)) => {
            if let Some(e) = e {
                tracing::debug!(error = %e, size = jobs.len(), "a batch of deliveries failed; retrying each alone");
            }
            for job in jobs {
                let answer =
                    inbound::deliver_postgres_alone(writer, &job.channel, &job.message, job.now)
                        .await;
                let _ = job.reply.send(answer);
            }
        }
        Err(Failed::Answer(e)) => {
            tracing::warn!(error = %e, size = jobs.len(), "a batch of deliveries could not commit");
            for job in jobs {
                let _ = job.reply.send(Err(same_error(&e).into()));
            }
        }
    }
    again
}

/// An error like `e` for each delivery of a failed batch (sqlx's errors
/// cannot be cloned): the pool's own, or a protocol error with its text.
/// Each is one the API answers 503 (see [`super::StoreError::is_unavailable`]).
fn same_error(e: &sqlx::Error) -> sqlx::Error {
    match e {
        sqlx::Error::PoolTimedOut => sqlx::Error::PoolTimedOut,
        sqlx::Error::PoolClosed => sqlx::Error::PoolClosed,
        other => sqlx::Error::Protocol(other.to_string()),
    }
}

/// The batch's three steps in one transaction, and every delivery's answer.
async fn write_batch(writer: &PgWriter, jobs: &[Job]) -> Result<Vec<Written>, Failed> {
    let ids: Vec<NewIds> = jobs.iter().map(|_| NewIds::new()).collect();
    let mut tx = writer.pool.begin().await?;
    let states = look_up(&mut tx, jobs, &ids).await?;

    let mut writes = Writes::default();
    let mut decided = Vec::with_capacity(jobs.len());
    for ((job, state), ids) in jobs.iter().zip(&states).zip(&ids) {
        let decision = delivery::decide(state, &job.channel, &job.message, ids, job.now)
            .map_err(Failed::Answer)?;
        if let Decision::Write(plan) = &decision {
            writes.add(plan, writer.feed.notification(Event::Changed(plan.change)));
        }
        decided.push(decision);
    }
    let (folios, touched): (HashMap<Uuid, i64>, HashSet<Uuid>) = if writes.messages() == 0 {
        Default::default()
    } else {
        let (claimed, new_ids, folios, _, touched): (i64, Vec<Uuid>, Vec<i64>, i64, Vec<Uuid>) =
            writes
                .bind(sqlx::query_as(WRITE_ALL))
                .fetch_one(&mut *tx)
                .await?;
        // A delivery whose conversation closed wrote nothing, claim included.
        let closed = writes.continued().saturating_sub(touched.len());
        if claimed != writes.messages().saturating_sub(closed) as i64 {
            tx.rollback().await?;
            return Err(Failed::RunAlone(None));
        }
        (
            new_ids.into_iter().zip(folios).collect(),
            touched.into_iter().collect(),
        )
    };
    // Every answer before the commit: nothing can fail after it.
    let written = decided
        .into_iter()
        .map(|decision| {
            Ok(match decision {
                Decision::Replay(first) => Written::Seen(first),
                Decision::Write(DeliveryPlan {
                    target: Target::Append(open),
                    ..
                }) if !touched.contains(&open.id) => Written::Closed,
                Decision::Write(plan) => {
                    let folio = folios.get(&plan.conversation_id()).copied();
                    Written::Applied(plan.outcome(folio)?, plan.change)
                }
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(Failed::Answer)?;
    tx.commit().await.map_err(Failed::Answer)?;
    Ok(written)
}

/// The batch's first two steps: every contact upserted, then every
/// delivery's [`DeliveryState`], in the batch's order.
async fn look_up(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    jobs: &[Job],
    ids: &[NewIds],
) -> Result<Vec<DeliveryState>, Failed> {
    let channels: Vec<Uuid> = jobs.iter().map(|j| j.channel.id).collect();
    let message_ids: Vec<&str> = jobs.iter().map(|j| j.message.message_id.as_str()).collect();
    let addresses: Vec<&str> = jobs.iter().map(|j| j.message.from.as_str()).collect();
    let instants: Vec<DateTime<Utc>> = jobs.iter().map(|j| j.now.0).collect();
    let names: Vec<Option<&str>> = jobs.iter().map(|j| j.message.name.as_deref()).collect();
    let name_keys: Vec<Option<String>> = names
        .iter()
        .map(|name| name.map(crate::domain::text::fold))
        .collect();

    sqlx::query(UPSERT_CONTACTS)
        .bind(&channels)
        .bind(&message_ids)
        .bind(ids.iter().map(|i| i.contact).collect::<Vec<_>>())
        .bind(&addresses)
        .bind(&names)
        .bind(&name_keys)
        .bind(&instants)
        .execute(&mut **tx)
        .await?;
    let states: Vec<DeliveryState> = sqlx::query_as(DELIVERY_STATES)
        .bind(&channels)
        .bind(&message_ids)
        .bind(&addresses)
        .fetch_all(&mut **tx)
        .await?;
    if states.len() != jobs.len() {
        return Err(Failed::Answer(sqlx::Error::Protocol(
            "the look-up answered another number of deliveries".into(),
        )));
    }
    Ok(states)
}

/// The columns of [`WRITE_ALL`], gathered delivery by delivery.
#[derive(Default)]
struct Writes<'a> {
    touched: Vec<Uuid>,
    touched_at: Vec<DateTime<Utc>>,
    started: Vec<Uuid>,
    started_campaign: Vec<Uuid>,
    started_channel: Vec<Uuid>,
    started_contact: Vec<Uuid>,
    started_at: Vec<DateTime<Utc>>,
    started_reactivates: Vec<Option<Uuid>>,
    started_event: Vec<Uuid>,
    message_row: Vec<Uuid>,
    message_conversation: Vec<Uuid>,
    message_id: Vec<&'a str>,
    message_text: Vec<&'a str>,
    message_at: Vec<DateTime<Utc>>,
    message_channel: Vec<Uuid>,
    message_started: Vec<bool>,
    changes: Vec<String>,
}

impl<'a> Writes<'a> {
    /// Adds the rows of `plan`, and its change log entry `change`.
    fn add(&mut self, plan: &DeliveryPlan<'a>, change: String) {
        let at = plan.at.0;
        match &plan.target {
            Target::Append(open) => {
                self.touched.push(open.id);
                self.touched_at.push(at);
            }
            Target::Start(new) => {
                self.started.push(new.id);
                self.started_campaign.push(new.campaign_id);
                self.started_channel.push(new.channel_id);
                self.started_contact.push(new.contact_id);
                self.started_at.push(at);
                self.started_reactivates.push(new.reactivates_id);
                self.started_event.push(new.created_event_id);
            }
        }
        self.message_row.push(plan.message_row_id);
        self.message_conversation.push(plan.conversation_id());
        self.message_id.push(plan.message_id);
        self.message_text.push(plan.text);
        self.message_at.push(at);
        self.message_channel.push(plan.channel_id);
        self.message_started.push(plan.starts());
        self.changes.push(change);
    }

    fn messages(&self) -> usize {
        self.message_row.len()
    }

    /// Deliveries continuing an open conversation (one per conversation:
    /// a batch holds one delivery per contact).
    fn continued(&self) -> usize {
        self.touched.len()
    }

    fn bind<'q, O>(
        &'q self,
        query: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
        query
            .bind(&self.touched)
            .bind(&self.touched_at)
            .bind(&self.started)
            .bind(&self.started_campaign)
            .bind(&self.started_channel)
            .bind(&self.started_contact)
            .bind(&self.started_at)
            .bind(&self.started_reactivates)
            .bind(&self.started_event)
            .bind(&self.message_row)
            .bind(&self.message_conversation)
            .bind(&self.message_id)
            .bind(&self.message_text)
            .bind(&self.message_at)
            .bind(&self.message_channel)
            .bind(&self.message_started)
            .bind(&self.changes)
    }
}
