//! The Store: one code path over SQLite (the embedded default) and PostgreSQL.
//!
//! Every public method matches on the backend through [`with_read!`] or
//! [`with_write!`], so a method that forgets a backend does not compile. SQL
//! that both dialects accept is written once with `$N` placeholders; the few
//! dialect-specific statements live next to their backend.

mod accounts;
mod admin;
mod api;
mod audit;
mod auto_cancel;
mod backend;
mod bulk;
mod categories;
mod conversations;
mod delivery;
mod demo;
mod directory;
mod events;
mod group_commit;
mod inbound;
pub mod migrations;
mod outbox;
mod pg_deliveries;
mod reports;
mod row;
mod sessions;
mod throttle;
mod transcripts;
mod transitions;
mod ts;
mod webhooks;
mod write_lane;

use std::str::FromStr;
use std::time::Duration;

use crate::live::{Event, Feed};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use accounts::{AccountInput, AccountListRow, AccountRow, UserFilter};
pub use admin::{
    AdminResult, CampaignRecord, CampaignSummary, ChannelRecord, MemberRow, Refusal, TokenRecord,
};
pub use api::{
    ChannelAuth, ChannelToken, InboundMessage, InboundOutcome, IntegrationToken, random_token,
    token_hash,
};
pub use audit::{ADMIN_PAGE_SIZE, AdminPage, AuditEntry, AuditFilter, AuditRow, PageCursor};
pub use auto_cancel::{
    AutoCancelRule, NewAutoCancelRule, NudgeSent, RULE_IN_USE, Stale, StaleConversation,
};
pub use bulk::{
    BulkAction, BulkItem, BulkJob, BulkStatus, CreatorStanding, ItemOutcome, NewBulkJob,
};
pub use categories::{CategoryAdmin, Direction, SubcategoryAdmin};
pub use conversations::{
    BROAD_SEARCH_CONTACTS, COUNT_CAP, ClosureIds, ConversationKey, ConversationReads,
    ConversationRow, Cursor, HistoryRow, ListFilter, ListOrder, ListPage, RESTARTED_AS, Search,
    StatusFilter, TabCount, ViewCounts,
};
pub use demo::{
    DemoPlan, DemoSummary, PlannedCampaign, PlannedCategory, PlannedChannel, PlannedContact,
    PlannedConversation, PlannedMessage, PlannedUser,
};
pub use directory::{CampaignOption, ChannelOption, NewUser, PersonOption, UserRecord};
pub use events::{EVENT_PAGE, EventPage, EventRow, EventType, SEQUENCE_BATCH};
pub use outbox::{Acknowledged, OutboxItem, OutboxKind};
pub use reports::{Campaigns, ClosureCount, DayCount, ExportRow, ExportSource, ReportCounts};
pub use sessions::Principal;
pub use throttle::ThrottleState;
pub use transcripts::{
    BotTurn, MessageKey, MessageRow, RecordedMessage, TranscriptPage, TranscriptPosition,
};
pub use transitions::{ActionFormReads, AgentOption, ApplyWith, CategoryOption, Conflict, FormOf};
pub use ts::Ts;
pub use webhooks::{
    ATTEMPTS_KEPT, MAX_WEBHOOKS_PER_CAMPAIGN, WebhookAttempt, WebhookInput, WebhookJob,
    WebhookProgress, WebhookRecord, WebhookSettings, WebhookState,
};

// Session lifetime and the lists of open sessions (see `auth::session`).
pub use sessions::{SESSION_LIST_LIMIT, SessionLimits, SessionRecord, SessionRow};

/// Errors of the persistence layer. Their `Debug` (what the logs show)
/// leaves out a database error's detail: PostgreSQL's names the values of
/// the row at fault ("Failing row contains (…)"), which may be a message's
/// text, a name or a comment, and those never reach the logs.
#[derive(thiserror::Error)]
pub enum StoreError {
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database url (expected sqlite: or postgres:)")]
    UnsupportedUrl,
    #[error("{0}")]
    Conflict(String),
    #[error(
        "the database has migrations newer than this binary ({0:?}); upgrade relevo before starting it"
    )]
    NewerSchema(Vec<i64>),
}

impl std::fmt::Debug for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Database(sqlx::Error::Database(e)) => f
                .debug_struct("Database")
                .field("code", &e.code())
                .field("message", &e.message())
                .field("table", &e.table())
                .field("constraint", &e.constraint())
                .finish_non_exhaustive(),
            StoreError::Database(e) => f.debug_tuple("Database").field(e).finish(),
            StoreError::Migrate(e) => f.debug_tuple("Migrate").field(e).finish(),
            StoreError::UnsupportedUrl => f.write_str("UnsupportedUrl"),
            StoreError::Conflict(text) => f.debug_tuple("Conflict").field(text).finish(),
            StoreError::NewerSchema(versions) => {
                f.debug_tuple("NewerSchema").field(versions).finish()
            }
        }
    }
}

/// Which migrations of this binary a database has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationStatus {
    pub applied: Vec<i64>,
    /// Known to this binary, not applied yet.
    pub pending: Vec<i64>,
    /// Applied, but unknown to this binary (a newer Relevo migrated it).
    pub unknown: Vec<i64>,
    /// Recorded as failed part-way.
    pub failed: Vec<i64>,
}

impl StoreError {
    /// True when the database could not be reached or is going away (as
    /// opposed to a bad query): the request is answered 503 and may be retried.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Database(
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed
                | sqlx::Error::Protocol(_),
            ) => true,
            // PostgreSQL: connection exceptions (class 08), and the server
            // shutting down or starting up (57P01, 57P02, 57P03).
            StoreError::Database(sqlx::Error::Database(e)) => e
                .code()
                .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
            _ => false,
        }
    }

    /// The name of the unique constraint a write violated, if that is what failed.
    pub fn unique_violation(&self) -> Option<String> {
        match self {
            StoreError::Database(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Some(e.constraint().unwrap_or(e.message()).to_owned())
            }
            _ => None,
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// SQLite pools: many readers, one writer. Serialising writes in the pool
/// means a writer waits for the pool, never meets `SQLITE_BUSY` from a lock
/// upgrade, and every write transaction stays short.
#[derive(Clone, Debug)]
pub struct SqlitePools {
    pub read: SqlitePool,
    pub write: SqlitePool,
    pub feed: Feed,
    /// Where the hot write transactions run (see [`write_lane`]).
    pub lane: write_lane::WriteLane,
    /// Customer messages and transitions, committed in batches on the lane.
    pub(crate) group_commit: group_commit::GroupCommit,
}

impl PgStore {
    /// Customer messages queued for the batching lanes since start: what
    /// tests holding a lock wait for, instead of sleeping, to know a
    /// delivery is queued behind it.
    pub fn deliveries_queued_total(&self) -> u64 {
        self.deliveries.queued_total()
    }
}

/// The most connections of [`PgStore::walks`], the Mensajes views'.
const WALK_CONNECTIONS: u32 = 16;

/// The most connections of [`PgStore::pool`], every other statement's.
const GENERAL_CONNECTIONS: u32 = 8;

/// The most connections of [`PgStore::lookups`], the number searches'.
const LOOKUP_CONNECTIONS: u32 = 4;

impl SqlitePools {
    /// Writes queued for the group commit since start (customer messages
    /// and transitions): what tests holding the writer wait for, instead of
    /// sleeping, to know a write is queued behind it.
    pub fn group_commit_queued_total(&self) -> u64 {
        self.group_commit.queued_total()
    }
}

/// The PostgreSQL pool and this instance's change feed.
#[derive(Clone, Debug)]
pub struct PgStore {
    pub pool: PgPool,
    /// Connections planning without bitmap scans, and with a sort or a
    /// sequential scan the last resort, for the statements of Mensajes
    /// views (see `conversations::View::pool`), which are built to walk
    /// their order's index and stop at the page, as SQLite is told to.
    ///
    /// PostgreSQL multiplies the selectivities of a view's filters as if
    /// they were independent (a start date and the activity bound it
    /// implies, a status tab and "Agente desconectado"'s statuses, the
    /// name, the stuck cutoffs), so it expected one matching row where a
    /// status held 500, and read every row of the range by bitmap to sort
    /// them: 20,000 rows and a customer look-up for each of 9,500, 70 to
    /// 140 ms for a Super Administrador's "Abiertas · Agente desconectado ·
    /// desde-hasta" searched by a common name at 1,000,000 conversations.
    /// Without bitmaps, and with a sort costed as a last resort, the plan
    /// left walks each range in order and merges them, stopping at the
    /// page: 1,850 rows, 12 ms. A sequential scan is a last resort there
    /// too (as `tests/query_plans.rs` plans every view): with bitmaps off,
    /// a Rezagadas count capped at 1,001 read the table from its start
    /// instead (908,000 rows, 76 ms). Views over 20 ms: 126 of 17,280 to 10
    /// (BENCHMARKS.md). Not for the rest of Relevo's statements, nor for a
    /// view whose name search finds its customers through the trigram
    /// index, which only a bitmap scan reads.
    walks: PgPool,
    /// [`Self::walks`]' connections with one plan kept per statement
    /// (`plan_cache_mode = force_generic_plan`), for the views searched by
    /// a number (a folio or a phone's beginning; see
    /// `conversations::View::pool`).
    ///
    /// Such a view reads the conversations its search names, found by
    /// unique keys whatever the number (the folio, and the customers whose
    /// phone starts with it), and pages and counts only those: its plan
    /// does not depend on the values. Planned for its values, as the walks
    /// are, PostgreSQL planned it again on every run (a phone range's
    /// estimate, 0.5 % of all customers by default, made the generic plan
    /// look dearer than each custom one), about 0.9 ms of planning for 0.3
    /// of execution at 1,000,000 conversations; kept, 0.04 and 0.2 ms, and
    /// the `search` scenario went from 914 to 1,926 requests/s, its p99 from
    /// 62 to 24 ms (BENCHMARKS.md, "Number searches planned once").
    lookups: PgPool,
    pub feed: Feed,
    /// Wakes the other instances after a change is committed.
    pub announcer: crate::live::Announcer,
    /// Customer messages, committed in batches.
    pub(crate) deliveries: pg_deliveries::PgDeliveries,
}

/// The database the application runs on, chosen from `DATABASE_URL` at start.
///
/// Each backend carries the change feed, so the Store itself publishes every
/// committed change: no write path can forget to.
#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(SqlitePools),
    Postgres(PgStore),
}

/// Announces a change inside the transaction that makes it: a no-op on
/// SQLite (one instance per file), an entry in the change log on
/// PostgreSQL, read by the other instances when (and only if) the
/// transaction commits (see [`crate::live`]).
pub(crate) trait NotifyInTx {
    fn notify_change(
        &mut self,
        payload: &str,
    ) -> impl std::future::Future<Output = Result<(), sqlx::Error>> + Send;
}

impl NotifyInTx for sqlx::Transaction<'_, sqlx::Sqlite> {
    async fn notify_change(&mut self, _payload: &str) -> Result<(), sqlx::Error> {
        Ok(())
    }
}

impl NotifyInTx for sqlx::Transaction<'_, sqlx::Postgres> {
    async fn notify_change(&mut self, payload: &str) -> Result<(), sqlx::Error> {
        sqlx::query("insert into change_log (payload) values ($1)")
            .bind(payload)
            .execute(&mut **self)
            .await?;
        Ok(())
    }
}

/// Runs `$body` with `$pool` bound to a pool that may serve reads.
///
/// A macro because `$body` is compiled once per backend, with that pool's
/// own type: a closure generic over the pool type cannot be written, and
/// the match keeps a method that forgets a backend from compiling. Any `?`
/// or `return` in `$body` is written at the call site, and is the caller's.
macro_rules! with_read {
    ($store:expr, |$pool:ident| $body:expr) => {
        match $store {
            $crate::db::Store::Sqlite(pools) => {
                let $pool = &pools.read;
                $body
            }
            $crate::db::Store::Postgres(pg) => {
                let $pool = &pg.pool;
                $body
            }
        }
    };
}

/// Runs `$body` with `$conn` bound to one connection of a pool that may
/// serve reads (`&mut` the backend's connection), held until `$body`
/// ends: for a request that reads several statements, so that it waits
/// for a connection once rather than once per statement when the pool
/// is busy. It evaluates to `$body`, a `Result`, or to the error of
/// taking the connection. A macro for the reasons of [`with_read!`].
macro_rules! with_read_connection {
    ($store:expr, |$conn:ident| $body:expr) => {
        match $store {
            $crate::db::Store::Sqlite(pools) => match pools.read.acquire().await {
                Ok(mut held) => {
                    let $conn = &mut *held;
                    $body
                }
                Err(error) => Err($crate::db::StoreError::from(error)),
            },
            $crate::db::Store::Postgres(pg) => match pg.pool.acquire().await {
                Ok(mut held) => {
                    let $conn = &mut *held;
                    $body
                }
                Err(error) => Err($crate::db::StoreError::from(error)),
            },
        }
    };
}

/// Runs `$body` with `$pool` bound to the pool that takes writes (a macro
/// for the reasons of [`with_read!`]).
macro_rules! with_write {
    ($store:expr, |$pool:ident| $body:expr) => {
        match $store {
            $crate::db::Store::Sqlite(pools) => {
                let $pool = &pools.write;
                $body
            }
            $crate::db::Store::Postgres(pg) => {
                let $pool = &pg.pool;
                $body
            }
        }
    };
}

pub(crate) use {with_read, with_read_connection, with_write};

/// Per-connection SQLite setting that the connect options cannot express:
/// the query planner stability guarantee (QPSG).
///
/// The bundled SQLite is built with STAT4. Once `ANALYZE` (or `PRAGMA
/// optimize`) has written samples, a statement whose bound value is compared
/// with an indexed column is compiled again on every execution, because the
/// plan *could* depend on the value: under the `list` benchmark 18 % of the
/// server's CPU went to re-preparing statements sqlx had cached. Relevo's
/// queries are shaped for fixed index plans (checked by `tests/query_plans.rs`),
/// so plans that ignore bound values are what it wants, and cached
/// statements stay prepared.
async fn sqlite_session(conn: &mut sqlx::SqliteConnection) -> Result<(), sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    let db = handle.as_raw_handle().as_ptr();
    let mut now_enabled: std::ffi::c_int = 0;
    // SAFETY: `db` is this connection's open handle, held exclusively through
    // the lock for the duration of the call; SQLITE_DBCONFIG_ENABLE_QPSG takes
    // an int (1: enable) and an int pointer for the resulting setting.
    let rc = unsafe {
        libsqlite3_sys::sqlite3_db_config(
            db,
            libsqlite3_sys::SQLITE_DBCONFIG_ENABLE_QPSG,
            1 as std::ffi::c_int,
            &mut now_enabled as *mut std::ffi::c_int,
        )
    };
    if rc != libsqlite3_sys::SQLITE_OK || now_enabled != 1 {
        return Err(sqlx::Error::Configuration(
            format!("could not enable SQLite's query planner stability guarantee (code {rc})")
                .into(),
        ));
    }
    Ok(())
}

/// Compile-time options of the linked SQLite that serialise its connections
/// on a process-wide mutex, each with what to set instead. The repository's
/// `.cargo/config.toml` builds SQLite without them; a build made elsewhere
/// may not, and is warned about at start (see BENCHMARKS.md, "SQLite's
/// shared page cache").
const SQLITE_CONTENDED_BUILD: [(&str, bool, &str); 2] = [
    (
        "ENABLE_MEMORY_MANAGEMENT",
        true,
        "every connection's page cache is one cache behind one mutex",
    ),
    (
        "DEFAULT_MEMSTATUS=0",
        false,
        "every allocation is counted under one mutex",
    ),
];

/// What the linked SQLite was built with that makes its readers wait on
/// each other (empty: nothing).
pub fn sqlite_build_contention() -> Vec<&'static str> {
    SQLITE_CONTENDED_BUILD
        .iter()
        .filter(|(option, contended_when_used, _)| {
            let name = std::ffi::CString::new(*option).expect("no NUL in an option name");
            // SAFETY: a NUL-terminated string that outlives the call; the
            // function only reads it.
            let used = unsafe { libsqlite3_sys::sqlite3_compileoption_used(name.as_ptr()) } != 0;
            used == *contended_when_used
        })
        .map(|(_, _, why)| *why)
        .collect()
}

impl Store {
    /// Connects to `url` (`sqlite:` or `postgres:`), without migrating.
    pub async fn connect(url: &str) -> StoreResult<Store> {
        if url.starts_with("sqlite:") {
            Store::connect_sqlite(url).await
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Store::connect_postgres(url).await
        } else {
            Err(StoreError::UnsupportedUrl)
        }
    }

    /// The SQLite pools, the write lane and its group commit.
    async fn connect_sqlite(url: &str) -> StoreResult<Store> {
        for why in sqlite_build_contention() {
            tracing::warn!(
                "SQLite was built so that {why}: concurrent reads will queue; \
                 build Relevo from its repository (its .cargo/config.toml sets LIBSQLITE3_FLAGS)"
            );
        }
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5))
            // Sorters and statement journals in memory: with the default
            // (files), each trigger-bearing write of a multi-statement
            // transaction and many sorts created, wrote and unlinked a
            // file in /var/tmp (strace under ingest: one every few
            // messages). They are small and short-lived.
            .pragma("temp_store", "memory");
        // The writer never checkpoints the WAL itself (a checkpoint
        // copies pages back and fsyncs, with the write lock held); the
        // lane checkpoints in the background from a reader instead. Its
        // page cache is larger than a reader's: every write walks
        // several indexes of the largest tables.
        let write = SqlitePoolOptions::new()
            .after_connect(|conn, _| Box::pin(sqlite_session(conn)))
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(
                options
                    .clone()
                    .pragma("wal_autocheckpoint", "0")
                    .pragma("cache_size", "-16384"),
            )
            .await?;
        // Each SQLite connection is served by a thread of its own; more
        // readers than a few per core only adds context switches.
        let readers =
            std::thread::available_parallelism().map_or(4, |n| (n.get() * 2).max(4)) as u32;
        let read = SqlitePoolOptions::new()
            .after_connect(|conn, _| Box::pin(sqlite_session(conn)))
            .max_connections(readers)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options.read_only(false))
            .await?;
        let lane =
            write_lane::WriteLane::start().map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        lane.spawn_checkpoints(read.clone(), write.clone());
        let feed = Feed::new();
        let group_commit = group_commit::GroupCommit::start(&lane, write.clone(), feed.clone());
        Ok(Store::Sqlite(SqlitePools {
            read,
            write,
            feed,
            lane,
            group_commit,
        }))
    }

    /// The PostgreSQL pool and the batching lanes of deliveries.
    async fn connect_postgres(url: &str) -> StoreResult<Store> {
        // Relevo's queries are short index lookups; parallel workers only
        // add start-up cost and contention under many concurrent users.
        //
        // Plans: PostgreSQL's default, `plan_cache_mode = auto`.
        //
        // Until December 2026 this forced generic plans, so that a
        // statement met again on a connection was not planned again (the
        // Mensajes page took 2-10 ms to plan against 0.5 ms to run). But a
        // Mensajes statement's shape follows the view (its filters, how many
        // campaigns, channels or statuses it merges), the console has far
        // more shapes than the 100 statements sqlx keeps per connection, and
        // most views were planned anyway, while a generic plan guesses every
        // date range and search alike: a "desde-hasta" page walked the start
        // index over 158,000 rows. With `auto`, a statement's first five
        // runs on a connection are planned for their values, and PostgreSQL
        // keeps a generic plan after that only when it costs no more. On
        // 1,000,000 conversations (BENCHMARKS.md, "Plans for the values"):
        // views over 20 ms 3,561 to 2,963, the slowest 1,525 to 392 ms.
        // Keeping 500 statements per connection would halve the slow views
        // again, at about 200 MiB of PostgreSQL's memory per connection.
        //
        // No JIT compilation either: PostgreSQL compiles a statement whose
        // estimated cost passes `jit_above_cost`, and a page walk stopped by
        // its `limit` is estimated as the whole walk: at 1,000,000
        // conversations one Administrador's page was estimated at 850,000
        // and planned to be compiled by LLVM (46 functions, inlined and
        // optimised) to run in 2 ms.
        let options = PgConnectOptions::from_str(url)?
            .options([("max_parallel_workers_per_gather", "0"), ("jit", "off")]);
        // One pool of 16 served every statement until the Mensajes views
        // got their own (see `PgStore::walks`), four in five of a
        // console's reads. With 16 here as well, PostgreSQL ran up to 32
        // statements at once on the benchmark's two cores and the lists'
        // median rose from about 180 ms to 266; with 8, 210, and the live
        // tables' refreshes fell from 195 to 160 (BENCHMARKS.md).
        let pool = PgPoolOptions::new()
            .max_connections(GENERAL_CONNECTIONS)
            // While the server is down, fail a request within a few
            // seconds (503) rather than holding the browser.
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(options.clone())
            .await?;
        // Opened when first needed: a server without Mensajes views (the
        // API's alone) never does.
        let walk_options = options.options([
            ("enable_bitmapscan", "off"),
            ("enable_sort", "off"),
            ("enable_seqscan", "off"),
        ]);
        let walks = PgPoolOptions::new()
            .max_connections(WALK_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(3))
            .connect_lazy_with(walk_options.clone());
        let lookups = PgPoolOptions::new()
            .max_connections(LOOKUP_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(3))
            .connect_lazy_with(walk_options.options([("plan_cache_mode", "force_generic_plan")]));
        let writer = delivery::PgWriter {
            pool,
            feed: Feed::new(),
            announcer: Default::default(),
        };
        Ok(Store::Postgres(PgStore {
            deliveries: pg_deliveries::PgDeliveries::start(writer.clone()),
            pool: writer.pool,
            walks,
            lookups,
            feed: writer.feed,
            announcer: writer.announcer,
        }))
    }

    /// Applies the embedded migrations of this backend. Refuses, changing
    /// nothing, a database that a newer Relevo has migrated.
    pub async fn migrate(&self) -> StoreResult<()> {
        let status = self.migration_status().await?;
        if !status.unknown.is_empty() {
            return Err(StoreError::NewerSchema(status.unknown));
        }
        match self {
            Store::Sqlite(pools) => migrations::SQLITE.run(&pools.write).await?,
            Store::Postgres(pg) => migrations::POSTGRES.run(&pg.pool).await?,
        }
        Ok(())
    }

    /// This instance's change feed.
    pub fn feed(&self) -> &Feed {
        match self {
            Store::Sqlite(pools) => &pools.feed,
            Store::Postgres(pg) => &pg.feed,
        }
    }

    /// Starts following other instances' changes (PostgreSQL only: an SQLite
    /// file is served by one instance).
    pub fn start_listening(&self) {
        if let Store::Postgres(pg) = self {
            crate::live::spawn_pg_listener(pg.pool.clone(), pg.feed.clone());
            crate::live::spawn_pg_announcer(pg.pool.clone(), pg.announcer.clone(), &pg.feed);
        }
    }

    /// Runs a write transaction on the SQLite write lane (see
    /// [`write_lane`]); on PostgreSQL, where writers do not queue for one
    /// connection, right here.
    pub(crate) async fn on_write_lane<F, T>(&self, work: F) -> T
    where
        F: std::future::Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        match self {
            Store::Sqlite(pools) => pools.lane.run(work).await,
            Store::Postgres(_) => work.await,
        }
    }

    /// Publishes an event that has been committed.
    pub(crate) fn publish(&self, event: Event) {
        self.feed().publish(event);
        if let Store::Postgres(pg) = self {
            pg.announcer.committed();
        }
    }

    /// Which backend this is, for logs and the start-up banner.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Compares the applied migrations with this binary's.
    pub async fn migration_status(&self) -> StoreResult<MigrationStatus> {
        let migrator = match self {
            Store::Sqlite(_) => &migrations::SQLITE,
            Store::Postgres(_) => &migrations::POSTGRES,
        };
        let known: Vec<i64> = migrator.iter().map(|m| m.version).collect();
        let recorded: Result<Vec<(i64, bool)>, sqlx::Error> = with_read!(self, |pool| {
            sqlx::query_as("select version, success from _sqlx_migrations order by version")
                .fetch_all(pool)
                .await
        });
        let recorded = match recorded {
            Ok(rows) => rows,
            // A database never migrated has no bookkeeping table yet.
            Err(sqlx::Error::Database(e))
                if e.message().contains("no such table")
                    || e.code().as_deref() == Some("42P01") =>
            {
                Vec::new()
            }
            Err(e) => return Err(e.into()),
        };
        let applied: Vec<i64> = recorded
            .iter()
            .filter(|(_, ok)| *ok)
            .map(|(v, _)| *v)
            .collect();
        Ok(MigrationStatus {
            pending: known
                .iter()
                .copied()
                .filter(|v| !applied.contains(v))
                .collect(),
            unknown: applied
                .iter()
                .copied()
                .filter(|v| !known.contains(v))
                .collect(),
            failed: recorded
                .iter()
                .filter(|(_, ok)| !*ok)
                .map(|(v, _)| *v)
                .collect(),
            applied,
        })
    }

    /// SQLite's `PRAGMA integrity_check` result (`None` on PostgreSQL).
    pub async fn integrity_check(&self) -> StoreResult<Option<String>> {
        match self {
            Store::Sqlite(pools) => {
                let lines: Vec<String> = sqlx::query_scalar("pragma integrity_check")
                    .fetch_all(&pools.read)
                    .await?;
                Ok(Some(lines.join("; ")))
            }
            Store::Postgres(_) => Ok(None),
        }
    }

    /// Writes a consistent copy of the SQLite database to `path`.
    pub async fn vacuum_into(&self, path: &str) -> StoreResult<()> {
        match self {
            Store::Sqlite(pools) => {
                sqlx::query("vacuum into $1")
                    .bind(path)
                    .execute(&pools.read)
                    .await?;
                Ok(())
            }
            Store::Postgres(_) => Err(StoreError::Conflict(
                "vacuum into is SQLite only; use pg_dump".into(),
            )),
        }
    }

    /// (pool, open connections, idle connections), for `/metrics`.
    pub fn pool_usage(&self) -> Vec<(&'static str, u32, usize)> {
        match self {
            Store::Sqlite(pools) => vec![
                ("sqlite_read", pools.read.size(), pools.read.num_idle()),
                ("sqlite_write", pools.write.size(), pools.write.num_idle()),
            ],
            Store::Postgres(pg) => vec![
                ("postgres", pg.pool.size(), pg.pool.num_idle()),
                ("postgres_views", pg.walks.size(), pg.walks.num_idle()),
                ("postgres_lookups", pg.lookups.size(), pg.lookups.num_idle()),
            ],
        }
    }

    /// A cheap round trip, for `/readyz`.
    pub async fn ping(&self) -> StoreResult<()> {
        with_read!(self, |pool| {
            sqlx::query("select 1").execute(pool).await?;
        });
        Ok(())
    }

    /// Reads a value from `settings`.
    pub async fn setting(&self, key: &str) -> StoreResult<Option<String>> {
        let value = with_read!(self, |pool| {
            sqlx::query_scalar("select value from settings where key = $1")
                .bind(key)
                .fetch_optional(pool)
                .await?
        });
        Ok(value)
    }

    /// Stores `value` under `key` unless a value is already there, and returns
    /// the value that is stored: so concurrent instances agree on one.
    pub async fn setting_or_insert(&self, key: &str, value: &str) -> StoreResult<String> {
        with_write!(self, |pool| {
            sqlx::query(
                "insert into settings (key, value) values ($1, $2) on conflict (key) do nothing",
            )
            .bind(key)
            .bind(value)
            .execute(pool)
            .await?;
        });
        Ok(self.setting(key).await?.unwrap_or_else(|| value.to_owned()))
    }

    /// Closes every pool (for tests and shutdown).
    pub async fn close(&self) {
        match self {
            Store::Sqlite(pools) => {
                pools.read.close().await;
                pools.write.close().await;
            }
            Store::Postgres(pg) => {
                pg.pool.close().await;
                pg.walks.close().await;
                pg.lookups.close().await;
            }
        }
    }
}

#[cfg(test)]
mod sqlite_build_tests {
    /// Failed before `.cargo/config.toml` set LIBSQLITE3_FLAGS: the
    /// bundled SQLite shared one page cache between all connections.
    #[test]
    fn the_linked_sqlite_gives_each_connection_its_own_page_cache() {
        assert_eq!(super::sqlite_build_contention(), Vec::<&str>::new());
    }
}
