//! The audit log: writing a row inside the transaction of the change it
//! records, and the filtered, keyset-paged Auditoría view. Also the keyset
//! page shapes every administration list shares.

use uuid::Uuid;

use super::{StoreResult, Ts, with_read};
use crate::domain::admin::{AuditAction, AuditObject};

/// Rows per page of the administration lists.
pub const ADMIN_PAGE_SIZE: i64 = 50;

/// A position in a keyset-paged administration list: the id of the row the
/// page continues from; its sort key is read from the table, so the URL
/// carries no names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageCursor {
    /// The rows after this one (the next page).
    After(Uuid),
    /// The rows before this one (the previous page).
    Before(Uuid),
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
    pub(crate) fn from_fetched(mut rows: Vec<T>, cursor: Option<PageCursor>) -> AdminPage<T> {
        let more = rows.len() as i64 > ADMIN_PAGE_SIZE;
        rows.truncate(ADMIN_PAGE_SIZE as usize);
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
}

/// Any number; only its use as the one advisory-lock key of account writes matters.
const ACCOUNTS_LOCK_KEY: i64 = 0x5245_4c45_564f_0001;

macro_rules! impl_admin_tx {
    ($db:ty, $lock:expr) => {
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
                    .await?;
                Ok(())
            }

            async fn lock_accounts(&mut self) -> Result<(), sqlx::Error> {
                if let Some(sql) = $lock {
                    sqlx::query(sql)
                        .bind(ACCOUNTS_LOCK_KEY)
                        .execute(&mut **self)
                        .await?;
                }
                Ok(())
            }
        }
    };
}

impl_admin_tx!(sqlx::Sqlite, None::<&'static str>);
impl_admin_tx!(sqlx::Postgres, Some("select pg_advisory_xact_lock($1)"));

/// The Auditoría filters, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub actor_id: Option<Uuid>,
    pub object: Option<AuditObject>,
    pub campaign_id: Option<Uuid>,
    pub from: Option<Ts>,
    pub before: Option<Ts>,
}

/// One row of the Auditoría view.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    pub id: Uuid,
    pub at: Ts,
    pub actor_name: Option<String>,
    pub action: String,
    pub object_kind: String,
    pub campaign_name: Option<String>,
    pub summary: String,
}

const AUDIT_SELECT: &str = "select a.id, a.at, u.name as actor_name, a.action, a.object_kind, \
    p.name as campaign_name, a.summary from audit_log a \
    left join users u on u.id = a.actor_id \
    left join campaigns p on p.id = a.campaign_id where 1 = 1";

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
            let (op, order) = match cursor {
                Some(PageCursor::Before(_)) => (" > ", " order by a.at asc, a.id asc"),
                _ => (" < ", " order by a.at desc, a.id desc"),
            };
            if let Some(PageCursor::After(id) | PageCursor::Before(id)) = cursor {
                qb.push(" and (a.at, a.id)");
                qb.push(op);
                qb.push("((select at from audit_log where id = ");
                qb.push_bind(id);
                qb.push("), ");
                qb.push_bind(id);
                qb.push(")");
            }
            qb.push(order);
            qb.push(" limit ");
            qb.push_bind(ADMIN_PAGE_SIZE + 1);
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
