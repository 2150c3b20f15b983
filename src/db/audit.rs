//! The audit log: writing a row inside the transaction of the change it
//! records ([`admin_write!`]), and the filtered, keyset-paged Auditoría view.
//! Also what every administration write and list shares: why a write was
//! refused ([`Refusal`]) and the keyset page shapes. They live here, below
//! `admin`, `accounts` and `categories`, so those import only downward.

use uuid::Uuid;

use super::row::from_row;
use super::{StoreError, StoreResult, Ts, with_read};
use crate::domain::admin::{AuditAction, AuditObject};

/// Why an administrative write did not happen (nothing was written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The object does not exist (or not under the given parent).
    NotFound,
    /// A unique name or e-mail is taken (also when another write won a race).
    Duplicate,
    /// The change would leave no active Super Administrador.
    LastSuperAdmin,
    /// Any other rule, with its Spanish message.
    Invalid(String),
}

/// The outcome of an administrative write.
pub type AdminResult<T> = StoreResult<Result<T, Refusal>>;

/// Whether a statement failed on a unique index.
pub(crate) fn is_unique(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// Rows per page of the administration lists.
pub const ADMIN_PAGE_SIZE: i64 = 50;

/// A position in a keyset-paged administration list: usually the id of the
/// row the page continues from, whose sort key is read from the table, so
/// the URL carries no names; or the sort key itself when it is one number
/// (a category's position).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageCursor<K = Uuid> {
    /// The rows after this one (the next page).
    After(K),
    /// The rows before this one (the previous page).
    Before(K),
}

/// The sort key of a keyset-paged list.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Keyset {
    /// The key's columns, most significant first; together they are unique.
    pub columns: &'static [&'static str],
    /// Reads the cursor row's key columns but the last by its id (the last
    /// column), e.g. `select name_key from campaigns where id = `; `None`
    /// when the key is one column and the cursor is its value.
    pub lookup: Option<&'static str>,
    /// Whether the list shows the largest key first.
    pub descending: bool,
}

impl Keyset {
    /// Appends the condition of the rows past `cursor` (`where …` already
    /// pushed), the order that reads them, and a limit one past `page`, so
    /// [`AdminPage::from_fetched`] can tell whether more follow.
    pub(crate) fn push_page<DB, K>(
        &self,
        qb: &mut sqlx::QueryBuilder<DB>,
        cursor: Option<PageCursor<K>>,
        page: i64,
    ) where
        DB: sqlx::Database,
        K: Copy + for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
        i64: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    {
        // Going back reads the other way from the cursor, then the page is reversed.
        let backward = matches!(cursor, Some(PageCursor::Before(_)));
        let ascending = backward == self.descending;
        if let Some(PageCursor::After(key) | PageCursor::Before(key)) = cursor {
            let op = if ascending { " > " } else { " < " };
            match self.lookup {
                Some(lookup) => {
                    qb.push(format!(" and ({}){op}((", self.columns.join(", ")));
                    qb.push(lookup);
                    qb.push_bind(key);
                    qb.push("), ");
                    qb.push_bind(key);
                    qb.push(")");
                }
                None => {
                    qb.push(format!(" and {}{op}", self.columns.join(", ")));
                    qb.push_bind(key);
                }
            }
        }
        let direction = if ascending { " asc" } else { " desc" };
        let order: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("{c}{direction}"))
            .collect();
        qb.push(format!(" order by {} limit ", order.join(", ")));
        qb.push_bind(page + 1);
    }
}

/// A keyset-paged list of the rows under one parent row (a campaign's
/// channels, its categories…), as one query that serves the page and, with
/// an `explain` prefix, shows its plan.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChildList {
    /// The select, ending in `where <parent column> = `.
    pub select: &'static str,
    pub keyset: Keyset,
}

impl ChildList {
    /// The query of the page at `cursor` under `parent`, after `prefix`.
    pub(crate) fn query<DB, K>(
        &self,
        prefix: &str,
        parent: Uuid,
        cursor: Option<PageCursor<K>>,
    ) -> sqlx::QueryBuilder<DB>
    where
        DB: sqlx::Database,
        <DB as sqlx::Database>::Arguments: Default,
        K: Copy + for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
        Uuid: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
        i64: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    {
        let mut qb = sqlx::QueryBuilder::new(prefix);
        qb.push(self.select);
        qb.push_bind(parent);
        self.keyset.push_page(&mut qb, cursor, ADMIN_PAGE_SIZE);
        qb
    }
}

impl super::Store {
    /// One page of `list` under `parent`.
    pub(crate) async fn child_page<T, K>(
        &self,
        list: &ChildList,
        parent: Uuid,
        cursor: Option<PageCursor<K>>,
    ) -> StoreResult<AdminPage<T>>
    where
        T: Send
            + Unpin
            + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
            + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
        K: Copy
            + Send
            + for<'t> sqlx::Encode<'t, sqlx::Sqlite>
            + sqlx::Type<sqlx::Sqlite>
            + for<'t> sqlx::Encode<'t, sqlx::Postgres>
            + sqlx::Type<sqlx::Postgres>,
    {
        let rows: Vec<T> = with_read!(self, |pool| {
            let mut qb = list.query("", parent, cursor);
            qb.build_query_as().fetch_all(pool).await?
        });
        Ok(AdminPage::from_fetched(rows, cursor))
    }

    /// The row `id` of `list` (a list of one table, unaliased), if it is
    /// under `parent`.
    pub(crate) async fn child<T>(
        &self,
        list: &ChildList,
        parent: Uuid,
        id: Uuid,
    ) -> StoreResult<Option<T>>
    where
        T: Send
            + Unpin
            + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
            + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
    {
        Ok(with_read!(self, |pool| {
            let mut qb = sqlx::QueryBuilder::new(list.select);
            qb.push_bind(parent);
            qb.push(" and id = ");
            qb.push_bind(id);
            qb.build_query_as().fetch_optional(pool).await?
        }))
    }
}

/// One page of an administration list.
#[derive(Debug, Clone)]
pub struct AdminPage<T> {
    pub rows: Vec<T>,
    pub has_prev: bool,
    pub has_next: bool,
}

impl<T> AdminPage<T> {
    /// Builds the page from up to `ADMIN_PAGE_SIZE + 1` rows fetched in the
    /// direction of `cursor` (reversed for `Before`).
    pub(crate) fn from_fetched<K>(rows: Vec<T>, cursor: Option<PageCursor<K>>) -> AdminPage<T> {
        AdminPage::from_fetched_sized(rows, cursor, ADMIN_PAGE_SIZE)
    }

    /// [`AdminPage::from_fetched`] for pages of `size` rows.
    pub(crate) fn from_fetched_sized<K>(
        mut rows: Vec<T>,
        cursor: Option<PageCursor<K>>,
        size: i64,
    ) -> AdminPage<T> {
        let more = rows.len() as i64 > size;
        rows.truncate(size as usize);
        match cursor {
            Some(PageCursor::Before(_)) => {
                rows.reverse();
                AdminPage {
                    rows,
                    has_prev: more,
                    has_next: true,
                }
            }
            Some(PageCursor::After(_)) => AdminPage {
                rows,
                has_prev: true,
                has_next: more,
            },
            None => AdminPage {
                rows,
                has_prev: false,
                has_next: more,
            },
        }
    }
}

/// What one administrative change records. Never holds a password.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub actor_id: Option<Uuid>,
    pub action: AuditAction,
    pub object_id: Option<Uuid>,
    pub campaign_id: Option<Uuid>,
    /// A readable Spanish before/after summary.
    pub summary: String,
}

impl AuditEntry {
    /// A change `actor` made to `object` (of `campaign`, when it belongs to one).
    pub fn by(
        actor: Uuid,
        action: AuditAction,
        object: Uuid,
        campaign: Option<Uuid>,
        summary: String,
    ) -> AuditEntry {
        AuditEntry {
            actor_id: Some(actor),
            action,
            object_id: Some(object),
            campaign_id: campaign,
            summary,
        }
    }
}

const INSERT_AUDIT: &str = "insert into audit_log \
    (id, at, actor_id, action, object_kind, object_id, summary, campaign_id) \
    values ($1, $2, $3, $4, $5, $6, $7, $8)";

/// What administration writes need inside their transaction, on either backend.
pub(crate) trait AdminTx {
    /// Writes the audit row of the change this transaction makes.
    fn audit(
        &mut self,
        at: Ts,
        entry: &AuditEntry,
    ) -> impl std::future::Future<Output = Result<(), sqlx::Error>> + Send;

    /// Serialises the writes that change who may administer (roles, active
    /// flags), so the last-Super-Administrador rule holds when two of them
    /// race. SQLite already has a single writer.
    fn lock_accounts(
        &mut self,
    ) -> impl std::future::Future<Output = Result<(), sqlx::Error>> + Send;

    /// Serialises the writes under one parent row that read before they
    /// write (the next position, a count against a maximum), so two racing
    /// ones cannot both take the same place. SQLite already has a single writer.
    fn lock_parent(
        &mut self,
        parent: Parent,
        id: Uuid,
    ) -> impl std::future::Future<Output = Result<(), sqlx::Error>> + Send;
}

/// A row whose children are ordered or counted.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Parent {
    /// A campaign, parent of its categories.
    Campaign,
    /// A category, parent of its sub-categories.
    Category,
}

impl Parent {
    /// PostgreSQL: the row lock taken until the transaction ends. `no key
    /// update`, not `update`: it queues writers of the same children but lets
    /// other transactions share the row's key, which every insert referencing
    /// it does (an audit row names its campaign). With `for update`, adding a
    /// sub-category (category locked, then the campaign's key shared) and
    /// moving a category (campaign locked, then the category updated)
    /// deadlocked, and PostgreSQL failed one of them.
    fn pg_lock(self) -> &'static str {
        match self {
            Parent::Campaign => "select 1 from campaigns where id = $1 for no key update",
            Parent::Category => "select 1 from closure_categories where id = $1 for no key update",
        }
    }
}

/// Any number; only its use as the one advisory-lock key of account writes matters.
const ACCOUNTS_LOCK_KEY: i64 = 0x5245_4c45_564f_0001;

/// Implements [`AdminTx`] for one backend's transaction.
///
/// A macro because the two implementations differ only in the backend type
/// and in whether it already serialises writes; one generic impl would need
/// sqlx's encode, executor and `Send` bounds spelled out for every bound
/// type. Each method evaluates to the statement's `Result`.
macro_rules! impl_admin_tx {
    ($db:ty, $serialised:expr) => {
        impl AdminTx for sqlx::Transaction<'_, $db> {
            async fn audit(&mut self, at: Ts, entry: &AuditEntry) -> Result<(), sqlx::Error> {
                sqlx::query(INSERT_AUDIT)
                    .bind(Uuid::now_v7())
                    .bind(at)
                    .bind(entry.actor_id)
                    .bind(entry.action.as_str())
                    .bind(entry.action.object().as_str())
                    .bind(entry.object_id.map(|id| id.to_string()))
                    .bind(&entry.summary)
                    .bind(entry.campaign_id)
                    .execute(&mut **self)
                    .await
                    .map(drop)
            }

            async fn lock_accounts(&mut self) -> Result<(), sqlx::Error> {
                if $serialised {
                    Ok(())
                } else {
                    sqlx::query("select pg_advisory_xact_lock($1)")
                        .bind(ACCOUNTS_LOCK_KEY)
                        .execute(&mut **self)
                        .await
                        .map(drop)
                }
            }

            async fn lock_parent(&mut self, parent: Parent, id: Uuid) -> Result<(), sqlx::Error> {
                if $serialised {
                    Ok(())
                } else {
                    sqlx::query(parent.pg_lock())
                        .bind(id)
                        .execute(&mut **self)
                        .await
                        .map(drop)
                }
            }
        }
    };
}

// SQLite serialises every write through its single writer connection.
impl_admin_tx!(sqlx::Sqlite, true);
impl_admin_tx!(sqlx::Postgres, false);

/// What the body of an [`admin_write!`] decided.
#[derive(Debug)]
pub(crate) enum Written<T> {
    /// Nothing to change: nothing is written, and `T` is the answer.
    Unchanged(T),
    /// A change: its one audit row is written with it, and `T` is the answer.
    Changed(T, AuditEntry),
}

/// Why the body of an [`admin_write!`] stopped before deciding: a rule
/// refused the write, or the database failed. Either way nothing is written.
#[derive(Debug)]
pub(crate) enum WriteError {
    Refused(Refusal),
    Store(StoreError),
}

impl From<Refusal> for WriteError {
    fn from(refusal: Refusal) -> WriteError {
        WriteError::Refused(refusal)
    }
}

impl From<sqlx::Error> for WriteError {
    fn from(e: sqlx::Error) -> WriteError {
        WriteError::Store(e.into())
    }
}

/// For a statement that may break a unique name: the violation refuses the
/// write as a duplicate (also when another write won a race); anything else
/// is a database failure.
pub(crate) fn duplicate(e: sqlx::Error) -> WriteError {
    if is_unique(&e) {
        WriteError::Refused(Refusal::Duplicate)
    } else {
        e.into()
    }
}

/// Pins the body of an [`admin_write!`] to its result type, so `?` inside
/// it knows what it converts to.
pub(crate) fn write_body<T, F>(body: F) -> F
where
    F: std::future::Future<Output = Result<Written<T>, WriteError>>,
{
    body
}

/// Runs one administrative write as one transaction and evaluates to its
/// [`AdminResult`](AdminResult), so a store method says only
/// what it reads and changes.
///
/// `$body` reads and writes through `$tx` and evaluates to
/// `Result<Written<T>, WriteError>` (`?` works on database errors and
/// refusals). [`finish_write`] then settles the transaction: a change
/// writes exactly one audit row in the same transaction and announces it
/// there too: `$access` when it is an event (a change of who may see what),
/// otherwise `DirectoryChanged` (names that lists show may have changed, so
/// cached views on every instance are stale); then commits, and publishes
/// the event only once committed. No change, a refusal or an error rolls
/// back: nothing, not even an audit row, is written.
///
/// A macro because `$body` is compiled once per backend, against that
/// backend's transaction (see [`with_write!`](super::with_write)); it
/// evaluates to the `AdminResult` and leaves the caller only through it.
macro_rules! admin_write {
    ($store:expr, $now:expr, $access:expr, |$tx:ident| $body:expr) => {{
        #[allow(unused_imports)]
        use $crate::db::NotifyInTx as _;
        #[allow(unused_imports)]
        use $crate::db::audit::{AdminTx as _, WriteError, Written};
        let store: &$crate::db::Store = $store;
        let announce: $crate::live::Event = Option::<$crate::live::Event>::from($access)
            .unwrap_or($crate::live::Event::DirectoryChanged);
        $crate::db::with_write!(store, |pool| {
            match $crate::db::backend::begin_write(pool).await {
                Err(e) => Err($crate::db::StoreError::from(e)),
                Ok(mut $tx) => {
                    let outcome = $crate::db::audit::write_body(async { $body }).await;
                    $crate::db::audit::finish_write(store, $tx, $now, announce, outcome).await
                }
            }
        })
    }};
}

/// Settles the transaction of an [`admin_write!`] after its body decided
/// (`outcome`): commits a change with its audit row and announcement, then
/// publishes `announce`; anything else drops `tx`, which rolls it back.
pub(crate) async fn finish_write<DB, T>(
    store: &super::Store,
    mut tx: sqlx::Transaction<'static, DB>,
    at: Ts,
    announce: crate::live::Event,
    outcome: Result<Written<T>, WriteError>,
) -> AdminResult<T>
where
    DB: sqlx::Database,
    sqlx::Transaction<'static, DB>: AdminTx + super::NotifyInTx,
{
    use super::NotifyInTx as _;
    let (answer, entry) = match outcome {
        Err(WriteError::Store(e)) => return Err(e),
        Err(WriteError::Refused(refusal)) => return Ok(Err(refusal)),
        Ok(Written::Unchanged(answer)) => return Ok(Ok(answer)),
        Ok(Written::Changed(answer, entry)) => (answer, entry),
    };
    tx.audit(at, &entry).await?;
    tx.notify_change(&store.feed().notification(announce))
        .await?;
    tx.commit().await?;
    store.publish(announce);
    Ok(Ok(answer))
}

pub(crate) use admin_write;

/// The Auditoría filters, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub actor_id: Option<Uuid>,
    pub object: Option<AuditObject>,
    pub campaign_id: Option<Uuid>,
    pub from: Option<Ts>,
    pub before: Option<Ts>,
}

from_row! {
    /// One row of the Auditoría view.
    #[derive(Debug, Clone)]
    pub struct AuditRow {
        pub id: Uuid,
        pub at: Ts,
        pub actor_name: Option<String>,
        pub action: String,
        pub object_kind: String,
        pub campaign_name: Option<String>,
        pub summary: String,
    }
}

const AUDIT_SELECT: &str = "select a.id, a.at, u.name as actor_name, a.action, a.object_kind, \
    p.name as campaign_name, a.summary from audit_log a \
    left join users u on u.id = a.actor_id \
    left join campaigns p on p.id = a.campaign_id where 1 = 1";

/// Auditoría: newest first, under each filter's `audit_log_*_idx`.
const AUDIT_BY_TIME: Keyset = Keyset {
    columns: &["a.at", "a.id"],
    lookup: Some("select at from audit_log where id = "),
    descending: true,
};

impl super::Store {
    /// One page of the audit log, newest first.
    pub async fn audit_page(
        &self,
        filter: &AuditFilter,
        cursor: Option<PageCursor>,
    ) -> StoreResult<AdminPage<AuditRow>> {
        let rows: Vec<AuditRow> = with_read!(self, |pool| {
            let mut qb = sqlx::QueryBuilder::new(AUDIT_SELECT);
            if let Some(actor) = filter.actor_id {
                qb.push(" and a.actor_id = ");
                qb.push_bind(actor);
            }
            if let Some(object) = filter.object {
                qb.push(" and a.object_kind = ");
                qb.push_bind(object.as_str());
            }
            if let Some(campaign) = filter.campaign_id {
                qb.push(" and a.campaign_id = ");
                qb.push_bind(campaign);
            }
            if let Some(from) = filter.from {
                qb.push(" and a.at >= ");
                qb.push_bind(from);
            }
            if let Some(before) = filter.before {
                qb.push(" and a.at < ");
                qb.push_bind(before);
            }
            AUDIT_BY_TIME.push_page(&mut qb, cursor, ADMIN_PAGE_SIZE);
            qb.build_query_as().fetch_all(pool).await?
        });
        Ok(AdminPage::from_fetched(rows, cursor))
    }

    /// Users who may appear as actors (the administrator roles), by name.
    pub async fn audit_actors(&self) -> StoreResult<Vec<(Uuid, String)>> {
        Ok(with_read!(self, |pool| {
            sqlx::query_as(
                "select id, name from users where role in ('super_admin', 'admin') \
                 order by name, id",
            )
            .fetch_all(pool)
            .await?
        }))
    }
}
