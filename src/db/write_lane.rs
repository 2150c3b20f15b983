//! The SQLite write lane: a thread of its own on which the hot write
//! transactions run.
//!
//! SQLite takes one writer at a time (the write pool has one connection), and
//! every statement of a transaction is a round trip between the async task
//! that holds the connection and the connection's own thread. Run on a
//! request's actix worker, each reply waits until that worker is done with
//! whatever else it is serving, with the write lock held all along, so under
//! load the lock was held mostly by waiting. On the lane the task holding the
//! connection is woken at once: the lock is held for the statements only.
//!
//! The lane also checkpoints the WAL in the background, so that the writer
//! never has to (see [`WriteLane::spawn_checkpoints`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sqlx::SqlitePool;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// A handle to the lane; clones share one thread, which ends when the last
/// clone is dropped.
#[derive(Clone, Debug)]
pub struct WriteLane {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    handle: Handle,
    /// Dropped with the last clone: the lane's thread then stops.
    _stop: oneshot::Sender<()>,
}

impl WriteLane {
    /// Starts the lane's thread with a single-threaded runtime of its own.
    pub fn start() -> std::io::Result<WriteLane> {
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("sqlite-write-lane".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = handle_tx.send(Err(e));
                        return;
                    }
                };
                let _ = handle_tx.send(Ok(runtime.handle().clone()));
                // Either outcome (a stop, or every sender gone) ends the lane.
                let _ = runtime.block_on(stop_rx);
            })?;
        let handle = handle_tx_result(handle_rx.recv())?;
        Ok(WriteLane {
            inner: Arc::new(Inner {
                handle,
                _stop: stop_tx,
            }),
        })
    }

    /// Runs `work` on the lane and waits for its result. The work completes
    /// even if the caller stops waiting (a client that disconnects mid-cancel
    /// leaves a transaction that either committed or did not, never half).
    pub async fn run<F, T>(&self, work: F) -> T
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        match self.inner.handle.spawn(work).await {
            Ok(value) => value,
            // A panic in the work is the caller's panic, as if run here.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Cancelled: only when the lane stops, which needs every handle
            // (this one included) to be gone first.
            Err(e) => unreachable!("write lane stopped while in use: {e}"),
        }
    }
}

impl WriteLane {
    /// Runs `task` on the lane in the background (for the lane's own
    /// long-running tasks, such as group commit).
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.inner.handle.spawn(task);
    }
}

/// How often the lane checkpoints the WAL.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// WAL frames (pages) past which the writer restarts the WAL: 512 MiB.
/// Each restart holds every writer while it copies, fsyncs and waits for
/// readers (about 80 ms under load on the nineteenth session's machine):
/// at 256 MiB a run of 2,000 cancels a second met one every few seconds,
/// and SQLite's cancel p99 was 81–91 ms over HTTP and 88–94 ms for the
/// statement alone; at 512 MiB 29–38 and 21 ms, and 1 GiB measured no
/// better (32–39 ms) for twice the file (see BENCHMARKS.md).
const WAL_RESTART_FRAMES: i64 = 131_072;

impl WriteLane {
    /// Checkpoints the WAL every [`CHECKPOINT_EVERY`], for as long as the
    /// lane runs.
    ///
    /// Through `reader`: `PASSIVE` never waits for readers or the writer and
    /// copies what it can, so the writer never does the copying and its
    /// fsync. Under a steady stream of commits that copy is never complete,
    /// though (frames keep arriving while it runs), and SQLite starts the
    /// WAL over only after a complete one: the file grew for as long as the
    /// load lasted. So once the WAL holds [`WAL_RESTART_FRAMES`], a `RESTART`
    /// checkpoint runs through `writer`, the one write connection, between
    /// two write transactions: it copies what the passive one could not,
    /// waits for readers of the old frames, and the next commit starts the
    /// WAL from its beginning (reusing the file's blocks). It holds every
    /// writer for its duration (tens of milliseconds under load: done on
    /// every tick it doubled ingest's p99), so it only bounds the file under
    /// sustained heavy writing; any pause in the writes lets the passive
    /// checkpoint complete and the WAL restart without it.
    pub fn spawn_checkpoints(&self, reader: SqlitePool, writer: SqlitePool) {
        self.inner.handle.spawn(async move {
            let mut every = tokio::time::interval(CHECKPOINT_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                if reader.is_closed() || writer.is_closed() {
                    return;
                }
                // (busy, frames in the WAL, frames checkpointed)
                let passive: Result<(i64, i64, i64), _> =
                    sqlx::query_as("pragma wal_checkpoint(passive)")
                        .fetch_one(&reader)
                        .await;
                let frames = match passive {
                    Ok((_, frames, _)) => frames,
                    Err(e) => {
                        tracing::debug!(error = %e, "WAL checkpoint skipped");
                        continue;
                    }
                };
                if frames >= WAL_RESTART_FRAMES
                    && let Err(e) = sqlx::query("pragma wal_checkpoint(restart)")
                        .execute(&writer)
                        .await
                {
                    tracing::debug!(error = %e, "WAL restart skipped");
                }
            }
        });
    }
}

fn handle_tx_result(
    received: Result<std::io::Result<Handle>, std::sync::mpsc::RecvError>,
) -> std::io::Result<Handle> {
    received.map_err(|_| std::io::Error::other("the write lane's thread did not start"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_on_the_lane_thread_and_returns_its_value() {
        let lane = WriteLane::start().unwrap();
        let name = lane
            .run(async { std::thread::current().name().map(str::to_owned) })
            .await;
        assert_eq!(name.as_deref(), Some("sqlite-write-lane"));
        assert_eq!(lane.run(async { 40 + 2 }).await, 42);
    }

    #[tokio::test]
    async fn the_lane_thread_ends_with_its_last_handle() {
        let lane = WriteLane::start().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        lane.run(async move {
            struct Signal(std::sync::mpsc::Sender<()>);
            impl Drop for Signal {
                fn drop(&mut self) {
                    let _ = self.0.send(());
                }
            }
            // Parked in the lane's thread-local storage: dropped when the
            // thread exits.
            thread_local!(static SIGNAL: std::cell::RefCell<Option<Signal>> = const { std::cell::RefCell::new(None) });
            SIGNAL.with(|s| *s.borrow_mut() = Some(Signal(tx)));
        })
        .await;
        drop(lane);
        rx.recv_timeout(std::time::Duration::from_secs(5))
            .expect("the lane's thread ended");
    }
}
