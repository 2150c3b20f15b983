//! Bulk Cancelar/Reasignar jobs: the selection resolved under the creator's
//! scope, one item per requested folio, and each item's outcome.
//!
//! A job and all its items are written in one transaction; each item's
//! outcome is written once (`where outcome is null`), so a job resumed by
//! another instance after a crash never reports an item twice. A job whose
//! creator lost access is stopped, with its audit row, in one transaction.

use uuid::Uuid;

use super::audit::{AdminTx, AuditEntry};
use super::conversations::{ListFilter, push_conditions};
use super::row::from_row;
use super::{StoreResult, Ts, with_read, with_write};
use crate::domain::{Role, Scope};

/// What a bulk job does to every item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkAction {
    Cancel,
    Reassign,
}

impl BulkAction {
    pub fn as_str(self) -> &'static str {
        match self {
            BulkAction::Cancel => "cancel",
            BulkAction::Reassign => "reassign",
        }
    }

    fn parse(value: &str) -> Option<BulkAction> {
        match value {
            "cancel" => Some(BulkAction::Cancel),
            "reassign" => Some(BulkAction::Reassign),
            _ => None,
        }
    }

    /// The Spanish name of the action.
    pub fn label(self) -> &'static str {
        match self {
            BulkAction::Cancel => "Cancelar",
            BulkAction::Reassign => "Reasignar",
        }
    }
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkStatus {
    /// Items remain; an instance works on it, or will resume it.
    Running,
    /// Every item was processed.
    Finished,
    /// Its creator lost access before it was done: the items left were not
    /// touched, and never will be (a job is not resumed once stopped, even
    /// if access is given back).
    Stopped,
}

impl BulkStatus {
    fn parse(value: &str) -> Option<BulkStatus> {
        match value {
            "running" => Some(BulkStatus::Running),
            "finished" => Some(BulkStatus::Finished),
            "stopped" => Some(BulkStatus::Stopped),
            _ => None,
        }
    }
}

/// A job creator's access as it is now: what decides whether the job may
/// still act for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatorStanding {
    pub name: String,
    pub role: Role,
    pub active: bool,
    /// Every campaign for a Super Administrador; an Administrador's active
    /// assigned campaigns (as their pages' scope); none for anyone else.
    pub scope: Scope,
}

/// How one item ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemOutcome {
    Applied,
    AlreadyFinal,
    Invalid,
    NotFound,
    Conflict,
}

impl ItemOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemOutcome::Applied => "applied",
            ItemOutcome::AlreadyFinal => "already_final",
            ItemOutcome::Invalid => "invalid",
            ItemOutcome::NotFound => "not_found",
            ItemOutcome::Conflict => "conflict",
        }
    }

    pub fn parse(value: &str) -> Option<ItemOutcome> {
        Some(match value {
            "applied" => ItemOutcome::Applied,
            "already_final" => ItemOutcome::AlreadyFinal,
            "invalid" => ItemOutcome::Invalid,
            "not_found" => ItemOutcome::NotFound,
            "conflict" => ItemOutcome::Conflict,
            _ => return None,
        })
    }
}

/// A job to create.
#[derive(Debug, Clone)]
pub struct NewBulkJob {
    pub created_by: Uuid,
    pub scope: Scope,
    pub action: BulkAction,
    pub category_id: Option<Uuid>,
    pub subcategory_id: Option<Uuid>,
    pub agent_id: Option<Uuid>,
    pub comment: String,
    /// (requested folio text, the conversation if it exists in scope)
    pub items: Vec<(String, Option<(i64, Uuid)>)>,
    pub at: Ts,
}

/// A job as stored.
#[derive(Debug, Clone)]
pub struct BulkJob {
    pub id: Uuid,
    pub created_by: Uuid,
    pub scope: Scope,
    pub action: BulkAction,
    pub category_id: Option<Uuid>,
    pub subcategory_id: Option<Uuid>,
    pub agent_id: Option<Uuid>,
    pub comment: String,
    pub total: i64,
    pub status: BulkStatus,
    pub created_at: Ts,
    /// When it finished or stopped.
    pub finished_at: Option<Ts>,
}

from_row! {
    struct JobRow {
        id: Uuid,
        created_by: Uuid,
        scope_all: bool,
        scope_campaigns: String,
        action: String,
        category_id: Option<Uuid>,
        subcategory_id: Option<Uuid>,
        agent_id: Option<Uuid>,
        comment: String,
        total: i64,
        status: String,
        created_at: Ts,
        finished_at: Option<Ts>,
    }
}

impl JobRow {
    fn into_job(self) -> Option<BulkJob> {
        let scope = if self.scope_all {
            Scope::All
        } else {
            Scope::Campaigns(
                self.scope_campaigns
                    .split(',')
                    .filter_map(|id| Uuid::parse_str(id).ok())
                    .collect(),
            )
        };
        Some(BulkJob {
            id: self.id,
            created_by: self.created_by,
            scope,
            action: BulkAction::parse(&self.action)?,
            category_id: self.category_id,
            subcategory_id: self.subcategory_id,
            agent_id: self.agent_id,
            comment: self.comment,
            total: self.total,
            status: BulkStatus::parse(&self.status)?,
            created_at: self.created_at,
            finished_at: self.finished_at,
        })
    }
}

from_row! {
    /// One item of a job, processed or not.
    #[derive(Debug, Clone)]
    pub struct BulkItem {
        pub position: i64,
        pub requested: String,
        pub conversation_id: Option<Uuid>,
        pub folio: Option<i64>,
        pub outcome: Option<String>,
        pub reason: Option<String>,
        pub message: Option<String>,
    }
}

const JOB_SELECT: &str = "select id, created_by, scope_all, scope_campaigns, action, category_id, \
    subcategory_id, agent_id, comment, total, status, created_at, finished_at from bulk_jobs \
    where id = $1";

/// Items of job `$1` in selection order.
const ITEMS_SELECT: &str = "select position, requested, conversation_id, folio, \
    outcome, reason, message from bulk_job_items where job_id = $1 order by position";

/// Unprocessed items of job `$1` in selection order, at most `$2`.
const PENDING_SELECT: &str = "select position, requested, conversation_id, folio, \
    outcome, reason, message from bulk_job_items \
    where job_id = $1 and outcome is null order by position limit $2";

impl super::Store {
    /// Of `folios`, those that exist in `scope`: (folio, id).
    pub async fn folios_in_scope(
        &self,
        scope: &Scope,
        folios: &[i64],
    ) -> StoreResult<Vec<(i64, Uuid)>> {
        if folios.is_empty() || matches!(scope, Scope::Campaigns(ids) if ids.is_empty()) {
            return Ok(Vec::new());
        }
        let mut found = Vec::with_capacity(folios.len());
        for chunk in folios.chunks(500) {
            let rows: Vec<(i64, Uuid)> = with_read!(self, |pool| {
                let mut qb = sqlx::QueryBuilder::new(
                    "select c.folio, c.id from conversations c where c.folio in (",
                );
                let mut list = qb.separated(", ");
                for folio in chunk {
                    list.push_bind(*folio);
                }
                qb.push(")");
                if let Scope::Campaigns(ids) = scope {
                    qb.push(" and c.campaign_id in (");
                    let mut list = qb.separated(", ");
                    for id in ids {
                        list.push_bind(*id);
                    }
                    qb.push(")");
                }
                qb.build_query_as().fetch_all(pool).await?
            });
            found.extend(rows);
        }
        Ok(found)
    }

    /// The conversations the Mensajes table shows under `filter` (every
    /// page), newest activity first, at most `limit`: (folio, id).
    pub async fn folios_matching(
        &self,
        scope: &Scope,
        filter: &ListFilter,
        limit: i64,
    ) -> StoreResult<Vec<(i64, Uuid)>> {
        if matches!(scope, Scope::Campaigns(ids) if ids.is_empty()) {
            return Ok(Vec::new());
        }
        Ok(with_read!(self, |pool| {
            let mut qb =
                sqlx::QueryBuilder::new("select c.folio, c.id from conversations c where 1 = 1");
            push_conditions(&mut qb, scope, filter, true);
            qb.push(" order by c.last_activity_at desc, c.folio desc limit ");
            qb.push_bind(limit);
            qb.build_query_as().fetch_all(pool).await?
        }))
    }

    /// How many conversations the Mensajes table shows under `filter`.
    pub async fn count_matching(&self, scope: &Scope, filter: &ListFilter) -> StoreResult<i64> {
        if matches!(scope, Scope::Campaigns(ids) if ids.is_empty()) {
            return Ok(0);
        }
        Ok(with_read!(self, |pool| {
            let mut qb =
                sqlx::QueryBuilder::new("select count(*) from conversations c where 1 = 1");
            push_conditions(&mut qb, scope, filter, true);
            qb.build_query_scalar().fetch_one(pool).await?
        }))
    }

    /// Writes a job and its items in one transaction; returns its id.
    pub async fn create_bulk_job(&self, job: &NewBulkJob) -> StoreResult<Uuid> {
        let id = Uuid::now_v7();
        let (scope_all, scope_campaigns) = match &job.scope {
            Scope::All => (true, String::new()),
            Scope::Campaigns(ids) => (
                false,
                ids.iter()
                    .map(Uuid::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        };
        with_write!(self, |pool| {
            let mut tx = super::backend::begin_write(pool).await?;
            sqlx::query(
                "insert into bulk_jobs (id, created_by, scope_all, scope_campaigns, action, \
                 category_id, subcategory_id, agent_id, comment, total, status, lease_until, \
                 created_at, finished_at) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'running', null, $11, null)",
            )
            .bind(id)
            .bind(job.created_by)
            .bind(scope_all)
            .bind(&scope_campaigns)
            .bind(job.action.as_str())
            .bind(job.category_id)
            .bind(job.subcategory_id)
            .bind(job.agent_id)
            .bind(&job.comment)
            .bind(job.items.len() as i64)
            .bind(job.at)
            .execute(&mut *tx)
            .await?;
            for (chunk_index, chunk) in job.items.chunks(400).enumerate() {
                let mut qb = sqlx::QueryBuilder::new(
                    "insert into bulk_job_items (job_id, position, requested, conversation_id, \
                     folio, outcome, reason, message, processed_at) ",
                );
                qb.push_values(
                    chunk.iter().enumerate(),
                    |mut b, (i, (requested, found))| {
                        let position = (chunk_index * 400 + i) as i64;
                        b.push_bind(id)
                            .push_bind(position)
                            .push_bind(requested.clone())
                            .push_bind(found.map(|(_, id)| id))
                            .push_bind(found.map(|(folio, _)| folio));
                        // Unknown or out-of-scope folios are settled at once.
                        if found.is_none() {
                            b.push_bind("not_found")
                                .push_bind(crate::domain::conversation::REASON_NOT_FOUND)
                                .push_bind(crate::domain::conversation::NOT_FOUND)
                                .push_bind(Some(job.at));
                        } else {
                            b.push_bind(None::<&str>)
                                .push_bind(None::<&str>)
                                .push_bind(None::<&str>)
                                .push_bind(None::<Ts>);
                        }
                    },
                );
                qb.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(id)
    }

    /// A job by id.
    pub async fn bulk_job(&self, id: Uuid) -> StoreResult<Option<BulkJob>> {
        let row: Option<JobRow> = with_read!(self, |pool| {
            sqlx::query_as(JOB_SELECT)
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.and_then(JobRow::into_job))
    }

    /// Every item of a job, in the order they were selected.
    pub async fn bulk_items(&self, job_id: Uuid) -> StoreResult<Vec<BulkItem>> {
        Ok(with_read!(self, |pool| {
            sqlx::query_as(ITEMS_SELECT)
                .bind(job_id)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Items not processed yet, in order, at most `limit`.
    pub async fn pending_bulk_items(&self, job_id: Uuid, limit: i64) -> StoreResult<Vec<BulkItem>> {
        Ok(with_read!(self, |pool| {
            sqlx::query_as(PENDING_SELECT)
                .bind(job_id)
                .bind(limit)
                .fetch_all(pool)
                .await?
        }))
    }

    /// (processed items, total) of a job.
    pub async fn bulk_progress(&self, job_id: Uuid) -> StoreResult<(i64, i64)> {
        let (done, total): (i64, i64) = with_read!(self, |pool| {
            sqlx::query_as(
                "select (select count(*) from bulk_job_items where job_id = $1 and outcome is not null), \
                 (select total from bulk_jobs where id = $1)",
            )
            .bind(job_id)
            .fetch_one(pool)
            .await?
        });
        Ok((done, total))
    }

    /// Takes the job for this instance until `lease_until`, unless another
    /// instance holds an unexpired lease. Returns whether it was taken.
    pub async fn claim_bulk_job(
        &self,
        job_id: Uuid,
        now: Ts,
        lease_until: Ts,
    ) -> StoreResult<bool> {
        let updated = with_write!(self, |pool| {
            sqlx::query(
                "update bulk_jobs set lease_until = $3 where id = $1 and status = 'running' \
                 and (lease_until is null or lease_until < $2)",
            )
            .bind(job_id)
            .bind(now)
            .bind(lease_until)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(updated == 1)
    }

    /// Extends the lease this instance holds.
    pub async fn renew_bulk_lease(&self, job_id: Uuid, lease_until: Ts) -> StoreResult<()> {
        with_write!(self, |pool| {
            sqlx::query(
                "update bulk_jobs set lease_until = $2 where id = $1 and status = 'running'",
            )
            .bind(job_id)
            .bind(lease_until)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Whether job `job_id` already changed the conversation: its history
    /// row carries the job's id, written in the transition's transaction, so
    /// this is exact even when the job stopped before settling the item.
    pub async fn bulk_job_changed(&self, job_id: Uuid, conversation_id: Uuid) -> StoreResult<bool> {
        Ok(with_read!(self, |pool| {
            sqlx::query_scalar(
                "select exists (select 1 from conversation_events \
                 where conversation_id = $1 and bulk_job_id = $2)",
            )
            .bind(conversation_id)
            .bind(job_id)
            .fetch_one(pool)
            .await?
        }))
    }

    /// Settles an item (once).
    #[allow(clippy::too_many_arguments)]
    pub async fn settle_bulk_item(
        &self,
        job_id: Uuid,
        position: i64,
        outcome: ItemOutcome,
        reason: &str,
        message: &str,
        at: Ts,
    ) -> StoreResult<()> {
        with_write!(self, |pool| {
            sqlx::query(
                "update bulk_job_items set outcome = $3, reason = $4, message = $5, processed_at = $6 \
                 where job_id = $1 and position = $2 and outcome is null",
            )
            .bind(job_id)
            .bind(position)
            .bind(outcome.as_str())
            .bind(reason)
            .bind(message)
            .bind(at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Stops a running job for good because its creator lost access, and
    /// writes `audit` in the same transaction. Returns whether it was
    /// running (a job stops once, whichever instance notices first).
    pub async fn stop_bulk_job(
        &self,
        job_id: Uuid,
        at: Ts,
        audit: &AuditEntry,
    ) -> StoreResult<bool> {
        Ok(with_write!(self, |pool| {
            let mut tx = super::backend::begin_write(pool).await?;
            let stopped = sqlx::query(
                "update bulk_jobs set status = 'stopped', finished_at = $2, lease_until = null \
                 where id = $1 and status = 'running'",
            )
            .bind(job_id)
            .bind(at)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if stopped {
                tx.audit(at, audit).await?;
            }
            tx.commit().await?;
            stopped
        }))
    }

    /// A user's access now, read from the database (see
    /// `bulk::CreatorAccess` for the cached view the worker uses); `None`
    /// if there is no such user.
    pub async fn creator_standing(&self, user_id: Uuid) -> StoreResult<Option<CreatorStanding>> {
        from_row! {
            struct Row {
                name: String,
                #[try_from(String)]
                role: Role,
                active: bool,
            }
        }
        let found: Option<(Row, Vec<Uuid>)> = with_read!(self, |pool| {
            let row: Option<Row> =
                sqlx::query_as("select name, role, active from users where id = $1")
                    .bind(user_id)
                    .fetch_optional(pool)
                    .await?;
            match row {
                Some(row) if row.role == Role::Admin => {
                    // The same campaigns as the principal's scope.
                    let campaigns: Vec<Uuid> = sqlx::query_scalar(
                        "select m.campaign_id from campaign_members m \
                         join campaigns c on c.id = m.campaign_id \
                         where m.user_id = $1 and c.active order by m.campaign_id",
                    )
                    .bind(user_id)
                    .fetch_all(pool)
                    .await?;
                    Some((row, campaigns))
                }
                Some(row) => Some((row, Vec::new())),
                None => None,
            }
        });
        Ok(found.map(|(row, campaigns)| CreatorStanding {
            scope: match row.role {
                Role::SuperAdmin => Scope::All,
                _ => Scope::Campaigns(campaigns),
            },
            name: row.name,
            role: row.role,
            active: row.active,
        }))
    }

    /// Marks a job finished.
    pub async fn finish_bulk_job(&self, job_id: Uuid, at: Ts) -> StoreResult<()> {
        with_write!(self, |pool| {
            sqlx::query(
                "update bulk_jobs set status = 'finished', finished_at = $2, lease_until = null \
                 where id = $1 and status = 'running'",
            )
            .bind(job_id)
            .bind(at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// A user's role, for the bulk form's check that an agent was chosen.
    pub async fn user_role(&self, id: Uuid) -> StoreResult<Option<crate::domain::Role>> {
        let role: Option<String> = with_read!(self, |pool| {
            sqlx::query_scalar("select role from users where id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        Ok(role.and_then(|r| crate::domain::Role::parse(&r)))
    }

    /// A user's name.
    pub async fn user_name(&self, id: Uuid) -> StoreResult<Option<String>> {
        Ok(with_read!(self, |pool| {
            sqlx::query_scalar("select name from users where id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Running jobs nobody holds a live lease on (after a crash or restart).
    pub async fn orphaned_bulk_jobs(&self, now: Ts) -> StoreResult<Vec<Uuid>> {
        Ok(with_read!(self, |pool| {
            sqlx::query_scalar(
                "select id from bulk_jobs where status = 'running' \
                 and (lease_until is null or lease_until < $1) order by created_at limit 20",
            )
            .bind(now)
            .fetch_all(pool)
            .await?
        }))
    }
}
