//! Cancelación automática: the rules, the conversations each rule finds
//! stale, and the nudges sent before cancelling.
//!
//! "Stale" is measured from a reference instant per conversation: the
//! customer's last message (or the start, for a conversation without
//! recorded messages), or the moment it entered its current status (its
//! latest history row into that status). The same query serves the dry run
//! and the background pass, so a preview counts exactly what a pass cancels.
//!
//! Creating, editing, switching and deleting a rule are administrative
//! writes ([`admin_write!`]): each writes one audit row, with its actor and
//! a readable summary, in the transaction of the change.

use uuid::Uuid;

use super::audit::{AdminResult, Refusal};
use super::audit::{AuditEntry, admin_write};
use super::outbox::OutboxKind;
use super::row::from_row;
use super::transcripts::NewMessage;
use super::{NotifyInTx, StoreResult, Ts, with_read, with_write};
use crate::domain::admin::AuditAction;
use crate::domain::auto_cancel::{Measure, closure_label, describe, nudge_label};
use crate::domain::{Author, Conversation, Scope, Status};

from_row! {
    /// A rule with the names it refers to.
    #[derive(Debug, Clone)]
    pub struct AutoCancelRule {
        pub id: Uuid,
        pub campaign_id: Uuid,
        pub campaign_name: String,
        pub name: String,
        #[try_from(String)]
        pub status: Status,
        #[try_from(String)]
        pub measure: Measure,
        pub window_minutes: i64,
        pub category_id: Uuid,
        pub category_name: String,
        pub category_active: bool,
        pub subcategory_id: Option<Uuid>,
        pub subcategory_name: Option<String>,
        pub comment: Option<String>,
        pub nudge_text: Option<String>,
        pub nudge_lead_minutes: Option<i64>,
        pub active: bool,
        pub created_at: Ts,
        /// Whether its campaign is active (the background pass skips the rules
        /// of an inactive campaign).
        pub campaign_active: bool,
        /// Whether it has nudged or cancelled a conversation: history refers to
        /// it then, so it can be switched off but not deleted.
        pub used: bool,
    }
}

impl AutoCancelRule {
    /// The rule as the audit log describes it: "«name» de «campaign»: what
    /// it cancels; cierre: …; aviso …; comentario «…»".
    fn audit_text(&self) -> String {
        format!(
            "«{}» de «{}»: {}",
            self.name,
            self.campaign_name,
            self.settings_text()
        )
    }

    /// What the rule does, its closure, nudge and comment.
    fn settings_text(&self) -> String {
        let mut parts = vec![
            describe(self.status, self.measure, self.window_minutes),
            format!("cierre: {}", self.closure()),
        ];
        if let Some(nudge) = self.nudge() {
            parts.push(format!("aviso {nudge}"));
        }
        if let Some(comment) = &self.comment {
            parts.push(format!("comentario «{comment}»"));
        }
        parts.join("; ")
    }

    /// "Flujo atascado › Sin respuesta".
    pub fn closure(&self) -> String {
        closure_label(&self.category_name, self.subcategory_name.as_deref())
    }

    /// "10 min antes: «¿Sigues ahí?»", if the rule nudges.
    pub fn nudge(&self) -> Option<String> {
        nudge_label(self.nudge_text.as_deref(), self.nudge_lead_minutes)
    }

    /// The audit summary of an edit from `self` to `after`: each setting
    /// that changed, before → after; `None` when nothing did.
    fn changes_to(&self, after: &AutoCancelRule) -> Option<String> {
        let mut changes = Vec::new();
        if self.name != after.name {
            changes.push(format!("nombre «{}» → «{}»", self.name, after.name));
        }
        let (before_rule, after_rule) = (
            describe(self.status, self.measure, self.window_minutes),
            describe(after.status, after.measure, after.window_minutes),
        );
        if before_rule != after_rule {
            changes.push(format!("condición: {before_rule} → {after_rule}"));
        }
        if (self.category_id, self.subcategory_id) != (after.category_id, after.subcategory_id) {
            changes.push(format!("cierre: {} → {}", self.closure(), after.closure()));
        }
        let none = || "sin aviso".to_owned();
        if (&self.nudge_text, self.nudge_lead_minutes)
            != (&after.nudge_text, after.nudge_lead_minutes)
        {
            changes.push(format!(
                "aviso: {} → {}",
                self.nudge().unwrap_or_else(none),
                after.nudge().unwrap_or_else(none)
            ));
        }
        if self.comment != after.comment {
            let shown = |c: &Option<String>| {
                c.as_ref()
                    .map_or_else(|| "sin comentario".to_owned(), |c| format!("«{c}»"))
            };
            changes.push(format!(
                "comentario: {} → {}",
                shown(&self.comment),
                shown(&after.comment)
            ));
        }
        (!changes.is_empty()).then(|| {
            format!(
                "Regla «{}» de «{}»: {}",
                self.name,
                self.campaign_name,
                changes.join("; ")
            )
        })
    }
}

/// A rule to create, already validated. Also the new settings of a rule
/// being edited (whose campaign never changes).
#[derive(Debug, Clone)]
pub struct NewAutoCancelRule {
    pub campaign_id: Uuid,
    pub name: String,
    pub status: Status,
    pub measure: Measure,
    pub window_minutes: i64,
    pub category_id: Uuid,
    pub subcategory_id: Option<Uuid>,
    pub comment: Option<String>,
    pub nudge_text: Option<String>,
    pub nudge_lead_minutes: Option<i64>,
    pub created_by: Uuid,
    pub at: Ts,
}

from_row! {
    /// A nudge sent to a conversation and whether its channel's connector
    /// has delivered it.
    #[derive(Debug, Clone)]
    pub struct NudgeSent {
        pub rule_id: Uuid,
        pub rule_name: String,
        /// Null once purged by the retention policy.
        pub text: Option<String>,
        pub sent_at: Ts,
        /// The outbox item (none for nudges recorded before the outbox existed).
        pub outbox_id: Option<Uuid>,
        pub delivered_at: Option<Ts>,
    }
}

/// Which conversations of a rule a query looks for.
#[derive(Debug, Clone, Copy)]
pub enum Stale {
    /// Silent since `cutoff` or earlier; when `nudged_by` is set, only those
    /// whose nudge for this silence was sent at `nudged_by` or earlier.
    Cancel { cutoff: Ts, nudged_by: Option<Ts> },
    /// Silent since `cutoff` or earlier and not nudged for this silence yet.
    Nudge { cutoff: Ts },
}

/// A stale conversation, the instant its silence is measured from, and its
/// activity when that was measured.
#[derive(Debug, Clone)]
pub struct StaleConversation {
    pub conversation: Conversation,
    pub since: Ts,
    pub activity_at: Ts,
}

impl StaleConversation {
    /// The activity a nudge or cancellation for this staleness requires to
    /// be unchanged, besides the version. A customer message does not move
    /// the version but always moves the activity, so under
    /// [`Measure::NoCustomerMessage`] this is what makes the measured silence
    /// part of the compare-and-set. Time in a status is already guarded by
    /// the version (entering a status is a transition).
    pub fn activity_guard(&self, measure: Measure) -> Option<Ts> {
        (measure == Measure::NoCustomerMessage).then_some(self.activity_at)
    }
}

from_row! {
    struct StaleRow {
        id: Uuid,
        folio: i64,
        campaign_id: Uuid,
        channel_id: Uuid,
        contact_id: Uuid,
        #[try_from(String)]
        status: Status,
        version: i64,
        agent_id: Option<Uuid>,
        last_activity_at: Ts,
        since: Ts,
    }
}

/// Conversation `$1` is still at version `$2` and, unless `$3` is null, its
/// activity still at `$3`.
const UNCHANGED: &str = "select id from conversations \
    where id = $1 and version = $2 and ($3 is null or last_activity_at = $3)";
const UNCHANGED_FOR_UPDATE: &str = "select id from conversations \
    where id = $1 and version = $2 and ($3 is null or last_activity_at = $3) for update";

const RULE_SELECT: &str = "select r.id, r.campaign_id, p.name as campaign_name, r.name, r.status, \
    r.measure, r.window_minutes, r.category_id, cat.name as category_name, \
    cat.active as category_active, r.subcategory_id, sub.name as subcategory_name, r.comment, \
    r.nudge_text, r.nudge_lead_minutes, r.active, r.created_at, p.active as campaign_active, \
    (exists (select 1 from auto_cancel_nudges n where n.rule_id = r.id) \
     or exists (select 1 from conversation_events e where e.auto_cancel_rule_id = r.id)) as used \
    from auto_cancel_rules r \
    join campaigns p on p.id = r.campaign_id \
    join closure_categories cat on cat.id = r.category_id \
    left join closure_subcategories sub on sub.id = r.subcategory_id ";

/// Why a rule that has acted cannot be deleted.
pub const RULE_IN_USE: &str = "Esta regla ya avisó o canceló conversaciones y su historial la \
    menciona: desactívala en lugar de eliminarla.";

/// Rule `$id` as [`RULE_SELECT`] reads it, inside the transaction `$tx` of
/// an [`admin_write!`]: `Result<Option<AutoCancelRule>, _>`. A macro so it
/// expands per backend.
macro_rules! rule_in_tx {
    ($tx:ident, $id:expr) => {{
        let mut qb = sqlx::QueryBuilder::new(RULE_SELECT);
        qb.push(" where r.id = ");
        qb.push_bind($id);
        qb.build_query_as::<AutoCancelRule>()
            .fetch_optional(&mut *$tx)
            .await
    }};
}

/// Takes rule `$id` of campaign `$campaign`'s row lock for the rest of the
/// transaction `$tx` (PostgreSQL; SQLite has one writer), so what the
/// change reads as "before" is what it replaces. Evaluates to
/// `Result<bool, _>`: false when no rule `$id` is of that campaign. A macro
/// so it expands per backend.
macro_rules! lock_rule {
    ($tx:ident, $id:expr, $campaign:expr, $at:expr) => {
        sqlx::query(
            "update auto_cancel_rules set updated_at = $3 where id = $1 and campaign_id = $2",
        )
        .bind($id)
        .bind($campaign)
        .bind($at)
        .execute(&mut *$tx)
        .await
        .map(|done| done.rows_affected() == 1)
    };
}

/// The instant a conversation `c`'s silence is measured from.
fn reference_sql(measure: Measure) -> &'static str {
    match measure {
        Measure::NoCustomerMessage => {
            "coalesce((select max(m.at) from messages m where m.conversation_id = c.id \
             and m.direction = 'inbound'), c.started_at)"
        }
        Measure::InStatus => {
            "coalesce((select max(e.at) from conversation_events e where e.conversation_id = c.id \
             and e.to_status = c.status), c.started_at)"
        }
    }
}

/// Builds the stale-conversation query of `rule`; `count` selects the
/// count only. A macro so it expands per backend: the query builder's type
/// is the backend's, and it evaluates to the builder.
macro_rules! stale_query {
    ($rule:expr, $which:expr, $count:expr, $limit:expr) => {{
        let rule: &AutoCancelRule = $rule;
        let count: bool = $count;
        let mut qb = sqlx::QueryBuilder::new(if count {
            "select count(*) from ("
        } else {
            "select s.id, s.folio, s.campaign_id, s.channel_id, s.contact_id, s.status, \
             s.version, s.agent_id, s.last_activity_at, s.since from ("
        });
        qb.push(
            "select c.id, c.folio, c.campaign_id, c.channel_id, c.contact_id, c.status, \
             c.version, c.agent_id, c.last_activity_at, ",
        );
        qb.push(reference_sql(rule.measure));
        qb.push(" as since from conversations c where c.campaign_id = ");
        qb.push_bind(rule.campaign_id);
        qb.push(" and c.status = ");
        qb.push_bind(rule.status.as_str());
        qb.push(") s where s.since <= ");
        match $which {
            Stale::Cancel { cutoff, nudged_by } => {
                qb.push_bind(cutoff);
                if let Some(nudged_by) = nudged_by {
                    qb.push(
                        " and exists (select 1 from auto_cancel_nudges n \
                         where n.conversation_id = s.id and n.since = s.since and n.rule_id = ",
                    );
                    qb.push_bind(rule.id);
                    qb.push(" and n.sent_at <= ");
                    qb.push_bind(nudged_by);
                    qb.push(")");
                }
            }
            Stale::Nudge { cutoff } => {
                qb.push_bind(cutoff);
                qb.push(
                    " and not exists (select 1 from auto_cancel_nudges n \
                     where n.conversation_id = s.id and n.since = s.since and n.rule_id = ",
                );
                qb.push_bind(rule.id);
                qb.push(")");
            }
        }
        if !count {
            qb.push(" order by s.since, s.folio limit ");
            qb.push_bind($limit);
        }
        qb
    }};
}

impl super::Store {
    /// The rules of the campaigns `scope` covers, by campaign and name.
    pub async fn auto_cancel_rules(&self, scope: &Scope) -> StoreResult<Vec<AutoCancelRule>> {
        if matches!(scope, Scope::Campaigns(ids) if ids.is_empty()) {
            return Ok(Vec::new());
        }
        Ok(with_read!(self, |pool| {
            let mut qb = sqlx::QueryBuilder::new(RULE_SELECT);
            qb.push(" where 1 = 1");
            if let Scope::Campaigns(ids) = scope {
                qb.push(" and r.campaign_id in (");
                let mut list = qb.separated(", ");
                for id in ids {
                    list.push_bind(*id);
                }
                qb.push(")");
            }
            qb.push(" order by p.name_key, r.name, r.id");
            qb.build_query_as().fetch_all(pool).await?
        }))
    }

    /// One rule, if `scope` covers its campaign.
    pub async fn auto_cancel_rule(
        &self,
        scope: &Scope,
        id: Uuid,
    ) -> StoreResult<Option<AutoCancelRule>> {
        let rule: Option<AutoCancelRule> = with_read!(self, |pool| {
            let mut qb = sqlx::QueryBuilder::new(RULE_SELECT);
            qb.push(" where r.id = ");
            qb.push_bind(id);
            qb.build_query_as().fetch_optional(pool).await?
        });
        Ok(rule.filter(|r| scope.allows(r.campaign_id)))
    }

    /// Active rules of active campaigns: what the background pass applies.
    pub async fn active_auto_cancel_rules(&self) -> StoreResult<Vec<AutoCancelRule>> {
        Ok(with_read!(self, |pool| {
            let mut qb = sqlx::QueryBuilder::new(RULE_SELECT);
            qb.push(" where r.active and p.active order by r.created_at, r.id");
            qb.build_query_as().fetch_all(pool).await?
        }))
    }

    /// Writes a new rule (active) and its audit row, by `rule.created_by`;
    /// returns its id. Refused when the campaign does not exist.
    pub async fn create_auto_cancel_rule(&self, rule: &NewAutoCancelRule) -> AdminResult<Uuid> {
        let id = Uuid::now_v7();
        let at = rule.at;
        admin_write!(self, at, None, |tx| {
            let exists: Option<Uuid> = sqlx::query_scalar("select id from campaigns where id = $1")
                .bind(rule.campaign_id)
                .fetch_optional(&mut *tx)
                .await?;
            exists.ok_or(Refusal::NotFound)?;
            sqlx::query(
                "insert into auto_cancel_rules (id, campaign_id, name, status, measure, \
                 window_minutes, category_id, subcategory_id, comment, nudge_text, \
                 nudge_lead_minutes, active, created_by, created_at, updated_at) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)",
            )
            .bind(id)
            .bind(rule.campaign_id)
            .bind(&rule.name)
            .bind(rule.status.as_str())
            .bind(rule.measure.as_str())
            .bind(rule.window_minutes)
            .bind(rule.category_id)
            .bind(rule.subcategory_id)
            .bind(rule.comment.as_deref())
            .bind(rule.nudge_text.as_deref())
            .bind(rule.nudge_lead_minutes)
            .bind(true)
            .bind(rule.created_by)
            .bind(at)
            .execute(&mut *tx)
            .await?;
            let created = rule_in_tx!(tx, id)?.ok_or(Refusal::NotFound)?;
            let summary = format!("Regla {} creada", created.audit_text());
            Ok(Written::Changed(
                id,
                AuditEntry::by(
                    rule.created_by,
                    AuditAction::RuleCreate,
                    id,
                    Some(rule.campaign_id),
                    summary,
                ),
            ))
        })
    }

    /// Changes rule `id` of campaign `rule.campaign_id` to the settings of
    /// `rule` (its `created_by` is ignored: `actor` makes the change), with
    /// one audit row listing what changed, before → after. `Ok(false)` when
    /// nothing changed (no row is written).
    pub async fn update_auto_cancel_rule(
        &self,
        actor: Uuid,
        id: Uuid,
        rule: &NewAutoCancelRule,
    ) -> AdminResult<bool> {
        let at = rule.at;
        admin_write!(self, at, None, |tx| {
            if !lock_rule!(tx, id, rule.campaign_id, at)? {
                return Err(Refusal::NotFound.into());
            }
            let before = rule_in_tx!(tx, id)?.ok_or(Refusal::NotFound)?;
            sqlx::query(
                "update auto_cancel_rules set name = $2, status = $3, measure = $4, \
                 window_minutes = $5, category_id = $6, subcategory_id = $7, comment = $8, \
                 nudge_text = $9, nudge_lead_minutes = $10, updated_at = $11 where id = $1",
            )
            .bind(id)
            .bind(&rule.name)
            .bind(rule.status.as_str())
            .bind(rule.measure.as_str())
            .bind(rule.window_minutes)
            .bind(rule.category_id)
            .bind(rule.subcategory_id)
            .bind(rule.comment.as_deref())
            .bind(rule.nudge_text.as_deref())
            .bind(rule.nudge_lead_minutes)
            .bind(at)
            .execute(&mut *tx)
            .await?;
            let after = rule_in_tx!(tx, id)?.ok_or(Refusal::NotFound)?;
            match before.changes_to(&after) {
                None => Ok(Written::Unchanged(false)),
                Some(summary) => Ok(Written::Changed(
                    true,
                    AuditEntry::by(
                        actor,
                        AuditAction::RuleUpdate,
                        id,
                        Some(rule.campaign_id),
                        summary,
                    ),
                )),
            }
        })
    }

    /// Switches rule `id` of `campaign_id` off or on, with its audit row;
    /// `Ok(false)` when it already was.
    pub async fn set_auto_cancel_rule_active(
        &self,
        actor: Uuid,
        campaign_id: Uuid,
        id: Uuid,
        active: bool,
        at: Ts,
    ) -> AdminResult<bool> {
        admin_write!(self, at, None, |tx| {
            if !lock_rule!(tx, id, campaign_id, at)? {
                return Err(Refusal::NotFound.into());
            }
            let rule = rule_in_tx!(tx, id)?.ok_or(Refusal::NotFound)?;
            if rule.active == active {
                return Ok(Written::Unchanged(false));
            }
            sqlx::query("update auto_cancel_rules set active = $2 where id = $1")
                .bind(id)
                .bind(active)
                .execute(&mut *tx)
                .await?;
            let (action, verb, before, after) = if active {
                (
                    AuditAction::RuleReactivate,
                    "reactivada",
                    "inactiva",
                    "activa",
                )
            } else {
                (
                    AuditAction::RuleDeactivate,
                    "desactivada",
                    "activa",
                    "inactiva",
                )
            };
            let summary = format!(
                "Regla {} {verb} (estado: {before} → {after})",
                rule.audit_text()
            );
            Ok(Written::Changed(
                true,
                AuditEntry::by(actor, action, id, Some(campaign_id), summary),
            ))
        })
    }

    /// Deletes rule `id` of `campaign_id`, with its audit row, if it has
    /// never nudged nor cancelled a conversation; otherwise refuses (history
    /// refers to it: switch it off instead), also when a pass applies it
    /// while this runs.
    pub async fn delete_auto_cancel_rule(
        &self,
        actor: Uuid,
        campaign_id: Uuid,
        id: Uuid,
        at: Ts,
    ) -> AdminResult<()> {
        admin_write!(self, at, None, |tx| {
            if !lock_rule!(tx, id, campaign_id, at)? {
                return Err(Refusal::NotFound.into());
            }
            let rule = rule_in_tx!(tx, id)?.ok_or(Refusal::NotFound)?;
            if rule.used {
                return Err(WriteError::Refused(Refusal::Invalid(
                    RULE_IN_USE.to_owned(),
                )));
            }
            sqlx::query("delete from auto_cancel_rules where id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    // A pass recorded a nudge or a cancellation of it meanwhile.
                    if matches!(&e, sqlx::Error::Database(d) if d.is_foreign_key_violation()) {
                        WriteError::Refused(Refusal::Invalid(RULE_IN_USE.to_owned()))
                    } else {
                        WriteError::from(e)
                    }
                })?;
            let summary = format!("Regla {} eliminada", rule.audit_text());
            Ok(Written::Changed(
                (),
                AuditEntry::by(
                    actor,
                    AuditAction::RuleDelete,
                    id,
                    Some(campaign_id),
                    summary,
                ),
            ))
        })
    }

    /// Conversations `rule` finds stale, oldest silence first, at most `limit`.
    pub async fn stale_conversations(
        &self,
        rule: &AutoCancelRule,
        which: Stale,
        limit: i64,
    ) -> StoreResult<Vec<StaleConversation>> {
        let rows: Vec<StaleRow> = with_read!(self, |pool| {
            stale_query!(rule, which, false, limit)
                .build_query_as()
                .fetch_all(pool)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(|r| StaleConversation {
                conversation: Conversation {
                    id: r.id,
                    folio: r.folio,
                    campaign_id: r.campaign_id,
                    channel_id: r.channel_id,
                    contact_id: r.contact_id,
                    status: r.status,
                    version: r.version,
                    agent_id: r.agent_id,
                },
                since: r.since,
                activity_at: r.last_activity_at,
            })
            .collect())
    }

    /// How many conversations `rule` finds stale (the dry run).
    pub async fn count_stale(&self, rule: &AutoCancelRule, which: Stale) -> StoreResult<i64> {
        Ok(with_read!(self, |pool| {
            stale_query!(rule, which, true, 0i64)
                .build_query_scalar()
                .fetch_one(pool)
                .await?
        }))
    }

    /// Records `rule`'s nudge to a stale conversation, as an outbound
    /// message of the conversation and an item of its channel's outbox (for
    /// the connector to deliver), in one transaction; unless it was recorded
    /// already for this silence (by this or another instance), or the
    /// conversation changed or saw activity since it was measured (the
    /// customer just wrote: no "¿sigues ahí?"). Returns whether this call
    /// recorded it.
    // long: one transaction written once for both backends inside `with_write!` (check unchanged, insert the message and the nudge record, enqueue the outbox item); split, each step would need either backend's transaction.
    pub async fn record_nudge(
        &self,
        rule: &AutoCancelRule,
        stale: &StaleConversation,
        text: &str,
        at: Ts,
    ) -> StoreResult<bool> {
        let conversation = &stale.conversation;
        let message_id = Uuid::now_v7();
        let nudge_key = format!("auto-cancel-nudge:{}", rule.id);
        let event = crate::live::Event::Changed(crate::live::Change {
            conversation_id: conversation.id,
            campaign_id: conversation.campaign_id,
            version: conversation.version,
        });
        let notification = self.feed().notification(event);
        // The transaction checks before it writes. SQLite: take the write
        // lock at the start, so the check is not of a snapshot another
        // connection may write past before this one can upgrade. PostgreSQL:
        // the row lock orders this after a customer message in flight (which
        // updates the row), so the check sees it.
        let unchanged = match self {
            super::Store::Sqlite(_) => UNCHANGED,
            super::Store::Postgres(_) => UNCHANGED_FOR_UPDATE,
        };
        let recorded = with_write!(self, |pool| {
            let mut tx = super::backend::begin_write(pool).await?;
            let still: Option<Uuid> = sqlx::query_scalar(unchanged)
                .bind(conversation.id)
                .bind(conversation.version)
                .bind(stale.activity_guard(rule.measure))
                .fetch_optional(&mut *tx)
                .await?;
            let inserted = if still.is_none() {
                0
            } else {
                NewMessage {
                    id: message_id,
                    conversation_id: conversation.id,
                    author: Author::System,
                    message_id: Some(&nudge_key),
                    agent_id: None,
                    text,
                    at,
                }
                .insert()?
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "insert into auto_cancel_nudges (rule_id, conversation_id, since, sent_at, message_id) \
                     values ($1, $2, $3, $4, $5) on conflict (rule_id, conversation_id, since) do nothing",
                )
                .bind(rule.id)
                .bind(conversation.id)
                .bind(stale.since)
                .bind(at)
                .bind(message_id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
            };
            if inserted == 1 {
                sqlx::query(super::outbox::INSERT_OUTBOX)
                    .bind(Uuid::now_v7())
                    .bind(conversation.channel_id)
                    .bind(conversation.id)
                    .bind(message_id)
                    .bind(OutboxKind::Nudge.as_str())
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                tx.notify_change(&notification).await?;
                tx.commit().await?;
                true
            } else {
                tx.rollback().await?;
                false
            }
        });
        if recorded {
            self.publish(event);
        }
        Ok(recorded)
    }
}

/// The nudges sent to conversation `$1` with their delivery state, oldest
/// first (see [`NudgeSent`]).
pub(super) const NUDGES_OF: &str = "select r.id as rule_id, r.name as rule_name, m.text, n.sent_at, \
     o.id as outbox_id, o.delivered_at \
     from auto_cancel_nudges n \
     join auto_cancel_rules r on r.id = n.rule_id \
     join messages m on m.id = n.message_id \
     left join outbox_messages o on o.message_id = n.message_id \
     where n.conversation_id = $1 order by n.sent_at, n.message_id";
