//! SQLite's group commit for the hot writes: customer messages and
//! transitions (console cancels and reassignments, bulk actions, automatic
//! cancellations).
//!
//! SQLite has one writer, and under load every write waited for the one
//! before it to begin, run and commit. A task on the write lane instead
//! takes every write waiting (up to [`MAX_BATCH`]) and runs them in one
//! transaction, in arrival order: each sees the ones before it, exactly as if
//! committed one by one, and the pages they share (the right edge of every
//! index, the status totals of a campaign) are written to the WAL once per
//! batch instead of once per write. Answers and live changes go out only
//! after the commit. If anything in a batch fails, the batch is rolled back
//! and each write is retried in a transaction of its own, so one bad write
//! fails alone and nothing is ever half applied.
//!
//! A write that changes nothing (a delivery already processed, a transition
//! whose compare-and-set lost) writes nothing at all, so it may share a
//! transaction with others without a savepoint.

use tokio::sync::{mpsc, oneshot};

use super::api::{InboundMessage, InboundOutcome};
use super::conversations::ConversationRow;
use super::inbound::{self, SqliteDelivery};
use super::transitions::{self, ApplyWith};
use super::{ChannelAuth, StoreResult, Ts};
use crate::domain::Transition;
use crate::live::Feed;

/// Most writes committed together.
const MAX_BATCH: usize = 64;

/// A write waiting for its batch, with where its answer goes.
enum Job {
    Delivery {
        channel: ChannelAuth,
        message: InboundMessage,
        now: Ts,
        reply: oneshot::Sender<StoreResult<InboundOutcome>>,
    },
    Transition {
        transition: Transition,
        with: ApplyWith,
        reply: TransitionReply,
    },
}

/// Where a transition's answer goes: `Err(())` when the compare-and-set
/// lost, otherwise nothing or the changed row, as the caller asked.
enum TransitionReply {
    Applied(oneshot::Sender<StoreResult<Result<(), ()>>>),
    /// The conversation as the console shows it once changed, read in the
    /// batch's transaction right after the write.
    Showing(oneshot::Sender<StoreResult<Result<ConversationRow, ()>>>),
}

impl TransitionReply {
    /// Answers that the compare-and-set lost.
    fn send_lost(self) {
        let _ = match self {
            TransitionReply::Applied(reply) => reply.send(Ok(Err(()))).map_err(drop),
            TransitionReply::Showing(reply) => reply.send(Ok(Err(()))).map_err(drop),
        };
    }

    /// Answers that the batch did not commit.
    fn send_failed(self, e: sqlx::Error) {
        let _ = match self {
            TransitionReply::Applied(reply) => reply.send(Err(e.into())).map_err(drop),
            TransitionReply::Showing(reply) => reply.send(Err(e.into())).map_err(drop),
        };
    }
}

/// What a job wrote, to answer once the batch has committed.
enum Written {
    Delivery(SqliteDelivery),
    Applied,
    /// Boxed: a row is several times a delivery's size.
    Shown(Box<ConversationRow>),
    /// The compare-and-set lost: nothing was written.
    Lost,
}

impl Job {
    /// Runs the job inside the batch's open transaction.
    async fn write(&self, tx: &mut sqlx::SqliteConnection) -> Result<Written, sqlx::Error> {
        Ok(match self {
            Job::Delivery {
                channel,
                message,
                now,
                ..
            } => Written::Delivery(inbound::deliver_sqlite(tx, channel, message, *now).await?),
            Job::Transition {
                transition,
                with,
                reply,
            } => {
                if !transitions::apply_sqlite(tx, transition, *with).await? {
                    Written::Lost
                } else if let TransitionReply::Showing(_) = reply {
                    Written::Shown(Box::new(
                        transitions::changed_row(tx, transition.conversation_id).await?,
                    ))
                } else {
                    Written::Applied
                }
            }
        })
    }

    /// Answers a committed job (a delivery's live change is published first;
    /// a transition's caller publishes its own).
    fn answer(self, feed: &Feed, written: Written) {
        match (self, written) {
            (Job::Delivery { reply, .. }, Written::Delivery(delivery)) => {
                let _ = reply.send(Ok(inbound::settle(feed, delivery)));
            }
            (
                Job::Transition {
                    reply: TransitionReply::Applied(reply),
                    ..
                },
                Written::Applied,
            ) => {
                let _ = reply.send(Ok(Ok(())));
            }
            (
                Job::Transition {
                    reply: TransitionReply::Showing(reply),
                    ..
                },
                Written::Shown(row),
            ) => {
                let _ = reply.send(Ok(Ok(*row)));
            }
            (Job::Transition { reply, .. }, Written::Lost) => reply.send_lost(),
            (job, _) => job.fail(sqlx::Error::Protocol(
                "a batched write answered for another kind of write".into(),
            )),
        }
    }

    /// Answers a job that did not commit.
    fn fail(self, e: sqlx::Error) {
        match self {
            Job::Delivery { reply, .. } => {
                let _ = reply.send(Err(e.into()));
            }
            Job::Transition { reply, .. } => reply.send_failed(e),
        }
    }
}

/// The queue of the batching task (see the module docs).
#[derive(Clone, Debug)]
pub struct GroupCommit {
    queue: mpsc::UnboundedSender<Job>,
    /// Writes handed to the queue so far (see [`GroupCommit::queued_total`]).
    queued: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl GroupCommit {
    /// Starts the batching task on `lane`, writing through `write` and
    /// publishing deliveries to `feed`. It ends when the last
    /// [`GroupCommit`] is dropped.
    pub fn start(lane: &super::write_lane::WriteLane, write: sqlx::SqlitePool, feed: Feed) -> Self {
        let (queue, mut jobs) = mpsc::unbounded_channel::<Job>();
        lane.spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
                run_batch(&write, &feed, std::mem::take(&mut batch)).await;
            }
        });
        GroupCommit {
            queue,
            queued: Default::default(),
        }
    }

    /// How many writes have been queued since start. A readiness signal
    /// for tests: a write counted here is in the queue (or in the batch
    /// waiting for the writer), so tests wait for it instead of sleeping.
    pub fn queued_total(&self) -> u64 {
        self.queued.load(std::sync::atomic::Ordering::SeqCst)
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
        self.submit(Job::Delivery {
            channel,
            message,
            now,
            reply,
        })?;
        // The batch runs to its end even if this request goes away.
        answer.await.map_err(|_| sqlx::Error::PoolClosed)?
    }

    /// Applies `transition` with the next batch and waits for its commit:
    /// `Ok` when applied, `Err(())` when the conversation had changed.
    pub(super) async fn apply(
        &self,
        transition: Transition,
        with: ApplyWith,
    ) -> StoreResult<Result<(), ()>> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Transition {
            transition,
            with,
            reply: TransitionReply::Applied(reply),
        })?;
        answer.await.map_err(|_| sqlx::Error::PoolClosed)?
    }

    /// [`Self::apply`], answering with the changed row.
    pub(super) async fn apply_showing(
        &self,
        transition: Transition,
    ) -> StoreResult<Result<ConversationRow, ()>> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Transition {
            transition,
            with: ApplyWith::default(),
            reply: TransitionReply::Showing(reply),
        })?;
        answer.await.map_err(|_| sqlx::Error::PoolClosed)?
    }

    fn submit(&self, job: Job) -> StoreResult<()> {
        self.queue.send(job).map_err(|_| sqlx::Error::PoolClosed)?;
        self.queued
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

/// Runs `jobs` in one transaction; on any failure, each in its own.
async fn run_batch(write: &sqlx::SqlitePool, feed: &Feed, jobs: Vec<Job>) {
    async fn all(write: &sqlx::SqlitePool, jobs: &[Job]) -> Result<Vec<Written>, sqlx::Error> {
        // The write lock from the start: a deferred transaction reads its
        // contact and conversation first, and when another instance on the
        // same file commits before this one writes, SQLite refuses the
        // upgrade at once ("database is locked", no busy wait). Found when
        // the contact trigram index (migration 0025) made commits longer.
        let mut tx = super::backend::begin_write(write).await?;
        let mut written = Vec::with_capacity(jobs.len());
        for job in jobs {
            written.push(job.write(&mut tx).await?);
        }
        tx.commit().await?;
        Ok(written)
    }
    match all(write, &jobs).await {
        Ok(written) => {
            for (job, written) in jobs.into_iter().zip(written) {
                job.answer(feed, written);
            }
        }
        Err(e) if jobs.len() == 1 => {
            if let Some(job) = jobs.into_iter().next() {
                job.fail(e);
            }
        }
        Err(e) => {
            tracing::debug!(error = %e, size = jobs.len(), "a batch of writes failed; retrying each alone");
            for job in jobs {
                match all(write, std::slice::from_ref(&job)).await {
                    Ok(mut written) => match written.pop() {
                        Some(one) => job.answer(feed, one),
                        None => job.fail(sqlx::Error::Protocol("a write answered nothing".into())),
                    },
                    Err(e) => job.fail(e),
                }
            }
        }
    }
}
