//! Applying transitions, and the look-ups the transition rules need.
//!
//! A transition is applied as a compare-and-set in one transaction: the
//! conversation row is updated only if its `version` is still the one the
//! transition was computed from, and the history row is inserted in the same
//! transaction. Zero rows updated means someone else changed the conversation
//! first; the caller gets a [`Conflict`] naming that change.
//!
//! Both are one statement's work for the database: on SQLite one script
//! (the history row is inserted only `where changes() = 1`) inside the
//! transaction of a group commit (see [`super::group_commit`]); on
//! PostgreSQL one statement of data-modifying CTEs, which also writes the
//! change log entry for other instances and, in autocommit, is its own
//! transaction: one round trip where it took five.

use sqlx::QueryBuilder;
use uuid::Uuid;

use super::backend::{Args, Backend};
use super::conversations::{
    CONVERSATION_BY_ID, ConversationRow, HistoryRow, LATEST_EVENT_SELECT, row_columns, row_joins,
    scoped_by_folio,
};
use super::row::from_row;
use super::transcripts::{
    MessageRow, TranscriptPage, TranscriptPosition, page_of, push_page_query,
};
use super::{StoreResult, Ts, with_read, with_read_connection};
use crate::domain::{AgentCandidate, CategoryRef, Role, Scope, SubcategoryRef, Transition};
use crate::live::{Change, Event};

/// Someone else changed the conversation after it was loaded.
#[derive(Debug, Clone)]
pub struct Conflict {
    /// The latest history row: who did what, and when.
    pub latest: Option<HistoryRow>,
}

/// An active closure category with its active sub-categories.
#[derive(Debug, Clone)]
pub struct CategoryOption {
    pub id: Uuid,
    pub name: String,
    pub subcategories: Vec<(Uuid, String)>,
}

from_row! {
    /// An agent a conversation may be reassigned to, with their load.
    #[derive(Debug, Clone)]
    pub struct AgentOption {
        pub id: Uuid,
        pub name: String,
        pub connected: bool,
        /// Open conversations assigned to them now, in any campaign.
        pub open_count: i64,
    }
}

from_row! {
    struct CandidateRow {
        id: Uuid,
        #[try_from(String)]
        role: Role,
        active: bool,
        connected: bool,
        in_campaign: bool,
    }
}

impl CandidateRow {
    fn into_candidate(self) -> AgentCandidate {
        AgentCandidate {
            id: self.id,
            role: self.role,
            active: self.active,
            connected: self.connected,
            in_campaign: self.in_campaign,
        }
    }
}

/// User `$1` as a candidate agent for a conversation of campaign `$2`.
const AGENT_CANDIDATE: &str = "select u.id, u.role, u.active, u.connected, \
     exists (select 1 from campaign_members m where m.user_id = u.id and m.campaign_id = $2) \
     as in_campaign from users u where u.id = $1";

/// The compare-and-set: `$1` conversation, `$2` the version the transition
/// was computed from, `$3`-`$12` the new state, `$13` the activity it must
/// still have (null: any). `$later` is the dialect's two-argument maximum.
///
/// `status_since` moves only when the status does (the row's old values are
/// what the right-hand sides read). The activity, the closing time and
/// `status_since` never go back before the activity already recorded: the
/// transition's instant is taken before it waits for the row, and a
/// customer message committed in between (stamped a moment later) must not
/// appear after the closing that followed it.
///
/// A macro because the statement is one text for both backends but for the
/// maximum's name, and `concat!` builds the `const` statements from
/// literals only; it expands to a string literal, nothing else.
macro_rules! compare_and_set {
    ($later:literal) => {
        concat!(
            "update conversations set \
             status = $3, is_open = $4, version = version + 1, agent_id = $5, \
             last_activity_at = ",
            $later,
            "($6, last_activity_at), \
             status_since = case when status = $3 then status_since else ",
            $later,
            "($6, last_activity_at) end, \
             closed_at = case when $7 is null then null else ",
            $later,
            "($7, last_activity_at) end, closed_by = $8, closer_kind = $9, \
             closure_category_id = $10, closure_subcategory_id = $11, closure_comment = $12 \
             where id = $1 and version = $2 and ($13 is null or last_activity_at = $13)"
        )
    };
}

/// The history row's columns; its values (`$14`-`$24`) follow in each
/// backend's statement, written only if the compare-and-set updated the row.
/// A macro, as [`compare_and_set!`], to be a literal for `concat!`.
macro_rules! event_columns {
    () => {
        "insert into conversation_events (id, conversation_id, at, kind, from_status, to_status, \
         from_agent_id, to_agent_id, category_id, subcategory_id, comment, actor_kind, actor_id, \
         bulk_job_id, auto_cancel_rule_id) "
    };
}

/// SQLite: the compare-and-set and its history row in one hand-off to the
/// connection's thread. `changes()` is the number of rows the update
/// changed itself (the count triggers' writes are not included), so the
/// history row is written exactly when the update won; the script changes
/// 2 rows or none.
const SQLITE_APPLY: &str = concat!(
    compare_and_set!("max"),
    "; ",
    event_columns!(),
    "select $14, $1, (select last_activity_at from conversations where id = $1), $15, $16, $3, $17, $5, $18, $19, $20, $21, $22, $23, $24 where changes() = 1"
);

/// PostgreSQL: the compare-and-set (`changed`, the row as written), its
/// history row and its entry in the change log for other instances
/// (`announce`, see [`crate::live`]) as
/// data-modifying CTEs of one statement, in autocommit: one round trip, and
/// atomic (a statement is a transaction). The final `select` follows.
/// A macro, as [`compare_and_set!`], to be a literal for `concat!` in the
/// two statements that start with it.
macro_rules! postgres_apply_ctes {
    () => {
        concat!(
            "with changed as (",
            compare_and_set!("greatest"),
            " returning *), event as (",
            event_columns!(),
            "select $14, id, last_activity_at, $15, $16, $3, $17, $5, $18, $19, $20, $21, $22, $23, $24 \
             from changed), announce as (insert into change_log (payload) select $25 from changed \
             returning 1) "
        )
    };
}

/// PostgreSQL: answers how many rows were updated (1: applied, 0: someone
/// else won and nothing was written).
const POSTGRES_APPLY: &str = concat!(
    postgres_apply_ctes!(),
    "select (select count(*) from changed), (select count(*) from announce)"
);

/// PostgreSQL: answers with the conversation as the console shows it once
/// changed (no row: someone else won and nothing was written), so the
/// console's reply to a cancel or a reassignment needs no second read:
/// under load that read was a third of the statements of a cancel on the
/// database's two cores. The names come from the rows the statement did
/// not change, the conversation from what the update wrote.
const POSTGRES_APPLY_SHOWING: &str = concat!(
    postgres_apply_ctes!(),
    row_columns!(),
    "changed c",
    row_joins!(),
    "where (select count(*) from announce) = 1"
);

/// What one application of a transition adds to the plain compare-and-set.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApplyWith {
    /// Also require `last_activity_at` to still be this instant. Customer
    /// messages deliberately leave the `version` alone (an administrator's
    /// open form must not go stale because the customer wrote), but they do
    /// move the activity: a change justified by the customer's silence (the
    /// automatic cancellation) measured it, and must not apply once they
    /// have written since.
    pub activity_at: Option<Ts>,
    /// The bulk job applying the transition, written on its history row so
    /// a job resumed after a crash recognises exactly its own change.
    pub bulk_job_id: Option<Uuid>,
    /// The automatic-cancellation rule applying the transition, written on
    /// its history row so history names the rule that cancelled.
    pub auto_cancel_rule_id: Option<Uuid>,
}

/// What one transition writes: the compare-and-set's new state and its
/// history row, by name. Built once from the domain's pure [`Transition`]
/// and bound in one place ([`TransitionWrite::arguments`]) for every
/// backend's statement, which number the same values `$1`-`$24`.
#[derive(Debug, Clone)]
pub(super) struct TransitionWrite {
    // The compare-and-set's key (`$1`, `$2`).
    pub(super) conversation_id: Uuid,
    pub(super) expected_version: i64,
    // The new state (`$3`-`$12`): the closure fields only when it closes.
    pub(super) status: &'static str,
    pub(super) is_open: bool,
    pub(super) agent_id: Option<Uuid>,
    /// Never stored earlier than the activity already recorded (see
    /// [`compare_and_set!`]).
    pub(super) at: Ts,
    pub(super) closed_at: Option<Ts>,
    pub(super) closed_by: Option<Uuid>,
    pub(super) closer_kind: Option<&'static str>,
    pub(super) closure_category_id: Option<Uuid>,
    pub(super) closure_subcategory_id: Option<Uuid>,
    pub(super) closure_comment: Option<String>,
    /// `$13`: the activity the row must still have (`None`: any).
    pub(super) activity_at: Option<Ts>,
    // The history row (`$14`-`$24`); its `to_status` and `to_agent_id` are
    // the new state's `$3` and `$5`.
    pub(super) event_id: Uuid,
    pub(super) event_kind: &'static str,
    pub(super) from_status: &'static str,
    pub(super) from_agent_id: Option<Uuid>,
    pub(super) category_id: Option<Uuid>,
    pub(super) subcategory_id: Option<Uuid>,
    pub(super) comment: Option<String>,
    pub(super) actor_kind: &'static str,
    pub(super) actor_id: Option<Uuid>,
    pub(super) bulk_job_id: Option<Uuid>,
    pub(super) auto_cancel_rule_id: Option<Uuid>,
}

impl TransitionWrite {
    /// What applying `t` (with the extras of `with`) writes.
    pub(super) fn new(t: &Transition, with: ApplyWith) -> TransitionWrite {
        let (at, closes) = (Ts::new(t.at), t.closes());
        TransitionWrite {
            conversation_id: t.conversation_id,
            expected_version: t.expected_version,
            status: t.to_status.as_str(),
            is_open: t.to_status.is_open(),
            agent_id: t.to_agent,
            at,
            closed_at: closes.then_some(at),
            closed_by: if closes { t.actor.user_id() } else { None },
            closer_kind: closes.then(|| t.actor.kind().as_str()),
            closure_category_id: if closes { t.category_id } else { None },
            closure_subcategory_id: if closes { t.subcategory_id } else { None },
            closure_comment: if closes { t.comment.clone() } else { None },
            activity_at: with.activity_at,
            event_id: Uuid::now_v7(),
            event_kind: t.kind.as_str(),
            from_status: t.from_status.as_str(),
            from_agent_id: t.from_agent,
            category_id: t.category_id,
            subcategory_id: t.subcategory_id,
            comment: t.comment.clone(),
            actor_kind: t.actor.kind().as_str(),
            actor_id: t.actor.user_id(),
            bulk_job_id: with.bulk_job_id,
            auto_cancel_rule_id: with.auto_cancel_rule_id,
        }
    }

    /// The statement's arguments `$1`-`$24`, in the numbering of
    /// [`compare_and_set!`] and [`event_columns!`] (both backends).
    pub(super) fn arguments<DB: Backend>(&self) -> Args<DB> {
        Args::default()
            .add(self.conversation_id)
            .add(self.expected_version)
            .add(self.status)
            .add(self.is_open)
            .add(self.agent_id)
            .add(self.at)
            .add(self.closed_at)
            .add(self.closed_by)
            .add(self.closer_kind)
            .add(self.closure_category_id)
            .add(self.closure_subcategory_id)
            .add(self.closure_comment.as_deref())
            .add(self.activity_at)
            .add(self.event_id)
            .add(self.event_kind)
            .add(self.from_status)
            .add(self.from_agent_id)
            .add(self.category_id)
            .add(self.subcategory_id)
            .add(self.comment.as_deref())
            .add(self.actor_kind)
            .add(self.actor_id)
            .add(self.bulk_job_id)
            .add(self.auto_cancel_rule_id)
    }

    /// PostgreSQL's arguments: `$1`-`$24`, then `$25` the change log entry
    /// for other instances.
    fn postgres_arguments(
        &self,
        notification: &str,
    ) -> Result<sqlx::postgres::PgArguments, sqlx::Error> {
        self.arguments::<sqlx::Postgres>()
            .add(notification)
            .finish()
    }
}

/// Applies `t` on SQLite inside the open transaction `tx`: true when the
/// compare-and-set held (the script changed the conversation and inserted
/// its history row), false when the conversation had changed (the script
/// wrote nothing, so the transaction may go on with other writes).
pub(super) async fn apply_sqlite(
    tx: &mut sqlx::SqliteConnection,
    t: &Transition,
    with: ApplyWith,
) -> Result<bool, sqlx::Error> {
    let args = TransitionWrite::new(t, with)
        .arguments::<sqlx::Sqlite>()
        .finish()?;
    let written = sqlx::query_with(SQLITE_APPLY, args)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    match written {
        2 => Ok(true),
        0 => Ok(false),
        other => Err(sqlx::Error::Protocol(format!(
            "a transition changed {other} rows instead of 2 or 0"
        ))),
    }
}

/// Conversation `id` as the console shows it, read on `tx`: a console
/// transition's answer, read in the batch's transaction right after the
/// write (see [`Store::apply_transition_showing`](super::Store::apply_transition_showing)).
pub(super) async fn changed_row(
    tx: &mut sqlx::SqliteConnection,
    id: Uuid,
) -> Result<ConversationRow, sqlx::Error> {
    sqlx::query_as(CONVERSATION_BY_ID)
        .bind(id)
        .fetch_one(&mut *tx)
        .await
}

/// Applies `t` on PostgreSQL inside the open transaction `tx`, with its
/// change log entry (`notification`): true when the compare-and-set held,
/// false when the conversation had changed (nothing was written). For a
/// write that must commit together with a transition (an agent's first
/// reply and its message); alone, a transition is its own statement in
/// autocommit.
pub(super) async fn apply_postgres(
    tx: &mut sqlx::PgConnection,
    t: &Transition,
    with: ApplyWith,
    notification: &str,
) -> Result<bool, sqlx::Error> {
    let args = TransitionWrite::new(t, with).postgres_arguments(notification)?;
    let (updated, _): (i64, i64) = sqlx::query_as_with(POSTGRES_APPLY, args)
        .fetch_one(&mut *tx)
        .await?;
    Ok(updated == 1)
}

/// The live change a transition `t` makes once applied.
fn changed(t: &Transition) -> Event {
    Event::Changed(Change {
        conversation_id: t.conversation_id,
        campaign_id: t.campaign_id,
        version: t.expected_version + 1,
    })
}

impl super::Store {
    /// Applies `transition` if the conversation is still at
    /// `transition.expected_version`; otherwise changes nothing and returns
    /// the change that won.
    pub async fn apply_transition(&self, t: &Transition) -> StoreResult<Result<(), Conflict>> {
        self.apply_transition_with(t, ApplyWith::default()).await
    }

    /// [`apply_transition`](Self::apply_transition) with the extra condition
    /// and link of `with`, in the same statement and transaction.
    pub async fn apply_transition_with(
        &self,
        t: &Transition,
        with: ApplyWith,
    ) -> StoreResult<Result<(), Conflict>> {
        let (store, t) = (self.clone(), t.clone());
        self.on_write_lane(async move {
            let outcome = match &store {
                // With the next group commit (see [`super::group_commit`]).
                super::Store::Sqlite(pools) => pools.group_commit.apply(t.clone(), with).await?,
                super::Store::Postgres(pg) => {
                    let args = store.postgres_arguments(&t, with)?;
                    let (updated, _): (i64, i64) = sqlx::query_as_with(POSTGRES_APPLY, args)
                        .fetch_one(&pg.pool)
                        .await?;
                    if updated == 1 { Ok(()) } else { Err(()) }
                }
            };
            store.settle(&t, outcome).await
        })
        .await
    }

    /// [`apply_transition`](Self::apply_transition), answering with the
    /// conversation as it now is, names included, for the console to show.
    /// On PostgreSQL that is the transition's own statement; on SQLite it
    /// is read right after the write, in the batch's transaction. It was
    /// read after the commit from the read pool, to keep the one writer's
    /// work short, but under the console benchmark that read waited in
    /// the read pool's queue with the lists (a cancel's median was three
    /// times a list's), while on the writer it is one look-up by primary
    /// key for a few transitions a second.
    pub async fn apply_transition_showing(
        &self,
        t: &Transition,
    ) -> StoreResult<Result<ConversationRow, Conflict>> {
        let (store, t) = (self.clone(), t.clone());
        self.on_write_lane(async move {
            let outcome = match &store {
                super::Store::Sqlite(pools) => pools.group_commit.apply_showing(t.clone()).await?,
                super::Store::Postgres(pg) => {
                    let args = store.postgres_arguments(&t, ApplyWith::default())?;
                    let row: Option<ConversationRow> =
                        sqlx::query_as_with(POSTGRES_APPLY_SHOWING, args)
                            .fetch_optional(&pg.pool)
                            .await?;
                    row.ok_or(())
                }
            };
            store.settle(&t, outcome).await
        })
        .await
    }

    /// `t`'s arguments for PostgreSQL, with the change log entry of its
    /// event for other instances.
    fn postgres_arguments(
        &self,
        t: &Transition,
        with: ApplyWith,
    ) -> Result<sqlx::postgres::PgArguments, sqlx::Error> {
        TransitionWrite::new(t, with).postgres_arguments(&self.feed().notification(changed(t)))
    }

    /// After `t` was applied (`Ok`) or lost its compare-and-set
    /// (`Err(())`): publishes the change, or answers with the change that
    /// won.
    async fn settle<T>(
        &self,
        t: &Transition,
        outcome: Result<T, ()>,
    ) -> StoreResult<Result<T, Conflict>> {
        match outcome {
            Ok(answer) => {
                self.publish(changed(t));
                crate::telemetry::METRICS.transition_applied(t.kind.as_str());
                Ok(Ok(answer))
            }
            Err(()) => Ok(Err(Conflict {
                latest: self.latest_event(t.conversation_id).await?,
            })),
        }
    }

    /// The most recent history row of a conversation.
    pub async fn latest_event(&self, conversation_id: Uuid) -> StoreResult<Option<HistoryRow>> {
        Ok(with_read!(self, |pool| {
            sqlx::query_as(LATEST_EVENT_SELECT)
                .bind(conversation_id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// A closure category by id, for the rules to check.
    pub async fn category_ref(&self, id: Uuid) -> StoreResult<Option<CategoryRef>> {
        let row: Option<(Uuid, Uuid, bool)> = with_read!(self, |pool| {
            sqlx::query_as("select id, campaign_id, active from closure_categories where id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(id, campaign_id, active)| CategoryRef {
            id,
            campaign_id,
            active,
        }))
    }

    /// A sub-category by id, for the rules to check.
    pub async fn subcategory_ref(&self, id: Uuid) -> StoreResult<Option<SubcategoryRef>> {
        let row: Option<(Uuid, Uuid, bool)> = with_read!(self, |pool| {
            sqlx::query_as(
                "select id, category_id, active from closure_subcategories where id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(|(id, category_id, active)| SubcategoryRef {
            id,
            category_id,
            active,
        }))
    }

    /// A user proposed as the new agent of a conversation of `campaign_id`.
    pub async fn agent_candidate(
        &self,
        id: Uuid,
        campaign_id: Uuid,
    ) -> StoreResult<Option<AgentCandidate>> {
        let row: Option<CandidateRow> = with_read!(self, |pool| {
            sqlx::query_as(AGENT_CANDIDATE)
                .bind(id)
                .bind(campaign_id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(CandidateRow::into_candidate))
    }

    /// Conversation `folio`, if `scope` covers it, and with `agent` the
    /// user it is being reassigned to (see [`Self::agent_candidate`]):
    /// what a posted Cancelar/Reasignar decides on, read on one
    /// connection. A reassignment waited for a read connection twice under
    /// load, where a cancel (whose category is cached) waits once.
    pub async fn conversation_with_candidate(
        &self,
        scope: &Scope,
        folio: i64,
        agent: Option<Uuid>,
    ) -> StoreResult<Option<(ConversationRow, Option<AgentCandidate>)>> {
        with_read_connection!(self, |conn| {
            let Some(row) = scoped_by_folio!(&mut *conn, scope, folio)? else {
                return Ok(None);
            };
            let candidate = match agent {
                Some(agent) => sqlx::query_as::<_, CandidateRow>(AGENT_CANDIDATE)
                    .bind(agent)
                    .bind(row.campaign_id)
                    .fetch_optional(&mut *conn)
                    .await?
                    .map(CandidateRow::into_candidate),
                None => None,
            };
            Ok(Some((row, candidate)))
        })
    }

    /// The closure options (see [`Self::closure_options`]) of conversation
    /// `folio`'s campaign, if `scope` covers it: the form's sub-category
    /// list, read on one connection.
    pub async fn closure_options_of(
        &self,
        scope: &Scope,
        folio: i64,
    ) -> StoreResult<Option<Vec<CategoryOption>>> {
        let rows = with_read_connection!(self, |conn| {
            let Some(row) = scoped_by_folio!(&mut *conn, scope, folio)? else {
                return Ok(None);
            };
            let rows: Vec<CategoryOptionRow> = sqlx::query_as(CLOSURE_OPTIONS)
                .bind(row.campaign_id)
                .fetch_all(&mut *conn)
                .await?;
            Ok(Some(rows))
        })?;
        Ok(rows.map(category_options))
    }

    /// The active categories of a campaign, each with its active sub-categories,
    /// in their configured order.
    pub async fn closure_options(&self, campaign_id: Uuid) -> StoreResult<Vec<CategoryOption>> {
        let rows: Vec<CategoryOptionRow> = with_read!(self, |pool| {
            sqlx::query_as(CLOSURE_OPTIONS)
                .bind(campaign_id)
                .fetch_all(pool)
                .await?
        });
        Ok(category_options(rows))
    }

    /// Active agents of a campaign other than `except`, connected ones first.
    pub async fn reassign_options(
        &self,
        campaign_id: Uuid,
        except: Option<Uuid>,
    ) -> StoreResult<Vec<AgentOption>> {
        let agents: Vec<AgentOption> = with_read!(self, |pool| {
            sqlx::query_as(REASSIGN_OPTIONS)
                .bind(campaign_id)
                .fetch_all(pool)
                .await?
        });
        Ok(without(agents, except))
    }

    /// The conversation `of` names, if the scope covers it, with what the
    /// Cancelar/Reasignar form offers for it (its campaign's categories
    /// and agents, see [`Self::closure_options`] and
    /// [`Self::reassign_options`]) and its last `recent` messages: the
    /// form's reads, on one connection (see [`with_read_connection!`]).
    /// Asked one by one, the form waited for a read connection twice
    /// under load, and took three of them at once.
    pub async fn action_form(
        &self,
        scope: &Scope,
        of: FormOf,
        recent: usize,
    ) -> StoreResult<Option<ActionFormReads>> {
        let limit = i64::try_from(recent).unwrap_or(i64::MAX).saturating_add(1);
        let read = with_read_connection!(self, |conn| {
            let row = match of {
                FormOf::Folio(folio) => scoped_by_folio!(&mut *conn, scope, folio)?,
                FormOf::Row(row) => Some(*row),
            };
            match row {
                None => Ok(None),
                Some(row) => {
                    let categories: Vec<CategoryOptionRow> = sqlx::query_as(CLOSURE_OPTIONS)
                        .bind(row.campaign_id)
                        .fetch_all(&mut *conn)
                        .await?;
                    let agents: Vec<AgentOption> = sqlx::query_as(REASSIGN_OPTIONS)
                        .bind(row.campaign_id)
                        .fetch_all(&mut *conn)
                        .await?;
                    let mut qb = QueryBuilder::new("");
                    push_page_query(&mut qb, row.id, TranscriptPosition::Latest, limit);
                    let messages: Vec<MessageRow> =
                        qb.build_query_as().fetch_all(&mut *conn).await?;
                    Ok(Some((row, categories, agents, messages)))
                }
            }
        })?;
        Ok(read.map(|(row, categories, agents, messages)| {
            let except = row.agent_id;
            ActionFormReads {
                row,
                categories: category_options(categories),
                agents: without(agents, except),
                recent: page_of(messages, TranscriptPosition::Latest, recent),
            }
        }))
    }
}

/// A category and one of its active sub-categories (none: a category
/// without any), as [`CLOSURE_OPTIONS`] reads them.
type CategoryOptionRow = (Uuid, String, Option<Uuid>, Option<String>);

/// A campaign's (`$1`) active categories with their active
/// sub-categories, in their configured order.
const CLOSURE_OPTIONS: &str = "select c.id, c.name, s.id, s.name from closure_categories c \
     left join closure_subcategories s on s.category_id = c.id and s.active \
     where c.campaign_id = $1 and c.active \
     order by c.position, c.name_key, c.id, s.position, s.name_key";

/// A campaign's (`$1`) active agents with their open load, connected ones
/// first.
const REASSIGN_OPTIONS: &str = "select u.id, u.name, u.connected, \
       (select count(*) from conversations c where c.agent_id = u.id and c.is_open) \
       as open_count \
     from users u \
     join campaign_members m on m.user_id = u.id and m.campaign_id = $1 \
     where u.role = 'agent' and u.active \
     order by u.connected desc, open_count, u.name, u.id";

/// Which conversation [`Store::action_form`](super::Store::action_form)
/// reads the form of.
#[derive(Debug, Clone)]
pub enum FormOf {
    /// The conversation of this folio, read first and checked against the
    /// scope.
    Folio(i64),
    /// This row, already read in the scope: the form of a refused post
    /// shows the conversation as it was decided on, and only its options
    /// and messages are read. Boxed: a row is many times a folio's size.
    Row(Box<ConversationRow>),
}

/// What the Cancelar/Reasignar form reads (see [`Store::action_form`](super::Store::action_form)).
#[derive(Debug, Clone)]
pub struct ActionFormReads {
    pub row: ConversationRow,
    pub categories: Vec<CategoryOption>,
    pub agents: Vec<AgentOption>,
    /// The last messages, oldest first.
    pub recent: TranscriptPage,
}

/// `agents` without `except` (the agent who has the conversation now).
fn without(agents: Vec<AgentOption>, except: Option<Uuid>) -> Vec<AgentOption> {
    agents
        .into_iter()
        .filter(|a| Some(a.id) != except)
        .collect()
}

/// Categories with their sub-categories, from [`CLOSURE_OPTIONS`]' rows
/// (a category's rows are together, in order).
fn category_options(rows: Vec<CategoryOptionRow>) -> Vec<CategoryOption> {
    let mut options: Vec<CategoryOption> = Vec::new();
    for (id, name, sub_id, sub_name) in rows {
        if options.last().is_none_or(|o| o.id != id) {
            options.push(CategoryOption {
                id,
                name,
                subcategories: Vec::new(),
            });
        }
        if let (Some(sub_id), Some(sub_name), Some(last)) = (sub_id, sub_name, options.last_mut()) {
            last.subcategories.push((sub_id, sub_name));
        }
    }
    options
}
