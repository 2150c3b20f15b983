//! Bulk Cancelar/Reasignar: running a job item by item through the same
//! transition rules and compare-and-set as the modal, and summing up what
//! happened to each item.
//!
//! A job is persisted before any item is touched, and every item's outcome
//! as soon as it is known, so the progress survives a reload and a restart:
//! a worker picks up running jobs whose lease expired (the instance that
//! held it stopped). Every history row a job writes carries the job's id, in
//! the transition's own transaction, so a resumed job recognises a change it
//! made itself just before a crash (and reports it applied, not "ya estaba
//! cerrada") without ever applying it twice.
//!
//! A job acts only while its creator may act. Before each item is changed
//! (each attempt), the worker asks whether the creator is still active,
//! still an administrator, and still has the conversation's campaign, from
//! a per-user view of their access that the change feed's access epoch
//! keeps exact, like the principals of the pages ([`CreatorAccess`]). The
//! first item the creator may no longer act on stops the whole job for good
//! (status "stopped", one audit row): what it already did stays, nothing
//! after is touched, also in campaigns the creator kept; a job that acts
//! for someone who lost part of their access is not theirs to finish. The
//! worker resuming a job on another instance after a restart asks the same
//! question. At most the item being applied as access changes still
//! completes, as a request in flight would.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;

use crate::db::{
    ApplyWith, AuditEntry, BulkAction, BulkItem, BulkJob, CreatorStanding, ItemOutcome, Store,
    StoreResult, Ts,
};
use crate::domain::admin::AuditAction;
use crate::domain::conversation::{self as rules};
use crate::domain::{
    AgentCandidate, Conversation, Invalid, Lookup, Role, Transition, TransitionError,
};
use crate::live::Feed;
use crate::live::cache::EpochCache;

/// Jobs up to this size run within the request; larger ones in the background.
pub const INLINE_MAX: usize = 25;
/// The most conversations one job may act on.
pub const MAX_ITEMS: usize = 5000;
pub use crate::domain::conversation::REASON_NOT_FOUND;
/// How long an instance holds a job before another may take it over.
const LEASE: Duration = Duration::from_secs(30);
/// How often running jobs without a live lease are looked for.
const WORKER_TICK: Duration = Duration::from_secs(5);
/// Attempts per item when others keep changing the conversation.
const ATTEMPTS: usize = 3;

/// A short Spanish reason for the summary, singular and plural, by key.
pub fn reason_text(key: &str, n: usize) -> String {
    let (one, many) = match key {
        "cancelled" => ("cancelada", "canceladas"),
        "reassigned" => ("reasignada", "reasignadas"),
        "already_final" => ("ya estaba cerrada", "ya estaban cerradas"),
        REASON_NOT_FOUND => ("no encontrada", "no encontradas"),
        "conflict" => (
            "otro cambio la modificó al mismo tiempo",
            "otros cambios las modificaron al mismo tiempo",
        ),
        "category_missing" => ("falta la categoría", "falta la categoría"),
        "category_not_in_campaign" => (
            "la categoría no pertenece a su campaña",
            "la categoría no pertenece a su campaña",
        ),
        "category_inactive" => (
            "la categoría está desactivada",
            "la categoría está desactivada",
        ),
        "subcategory_not_of_category" => (
            "la subcategoría no pertenece a la categoría",
            "la subcategoría no pertenece a la categoría",
        ),
        "subcategory_inactive" => (
            "la subcategoría está desactivada",
            "la subcategoría está desactivada",
        ),
        "comment_too_long" => (
            "el comentario es demasiado largo",
            "el comentario es demasiado largo",
        ),
        "comment_nul" => (
            "el comentario tiene un carácter nulo",
            "el comentario tiene un carácter nulo",
        ),
        "agent_missing" => ("falta el agente", "falta el agente"),
        "not_an_agent" => ("el usuario no es un agente", "el usuario no es un agente"),
        "agent_not_in_campaign" => (
            "el agente no pertenece a su campaña",
            "el agente no pertenece a su campaña",
        ),
        "agent_inactive" => ("el agente está desactivado", "el agente está desactivado"),
        "same_agent" => (
            "ya estaba asignada a ese agente",
            "ya estaban asignadas a ese agente",
        ),
        "agent_offline_unconfirmed" => {
            ("el agente está desconectado", "el agente está desconectado")
        }
        _ => ("omitida", "omitidas"),
    };
    if n == 1 { one.into() } else { many.into() }
}

/// The reason key of the first invalid field.
pub fn invalid_key(invalid: Invalid) -> &'static str {
    match invalid {
        Invalid::CategoryMissing => "category_missing",
        Invalid::CategoryNotInCampaign => "category_not_in_campaign",
        Invalid::CategoryInactive => "category_inactive",
        Invalid::SubcategoryNotOfCategory => "subcategory_not_of_category",
        Invalid::SubcategoryInactive => "subcategory_inactive",
        Invalid::CommentTooLong(_) => "comment_too_long",
        Invalid::CommentNul => "comment_nul",
        Invalid::AgentMissing => "agent_missing",
        Invalid::NotAnAgent => "not_an_agent",
        Invalid::AgentNotInCampaign => "agent_not_in_campaign",
        Invalid::AgentInactive => "agent_inactive",
        Invalid::SameAgent => "same_agent",
        // A job confirms its agent (see `process_item`); kept for completeness.
        Invalid::AgentOfflineUnconfirmed => "agent_offline_unconfirmed",
    }
}

/// "18 canceladas, 2 omitidas: ya estaban cerradas, 1 omitida: la categoría
/// no pertenece a su campaña". `settled` are (outcome, reason key) of the
/// processed items; skipped groups keep the order they first appear in.
pub fn summary(action: BulkAction, settled: &[(ItemOutcome, String)]) -> String {
    let applied = settled
        .iter()
        .filter(|(o, _)| *o == ItemOutcome::Applied)
        .count();
    let applied_key = match action {
        BulkAction::Cancel => "cancelled",
        BulkAction::Reassign => "reassigned",
    };
    let mut parts = vec![format!("{applied} {}", reason_text(applied_key, applied))];
    let mut groups: Vec<(&str, usize)> = Vec::new();
    for (_, key) in settled.iter().filter(|(o, _)| *o != ItemOutcome::Applied) {
        match groups.iter_mut().find(|(k, _)| k == key) {
            Some(group) => group.1 += 1,
            None => groups.push((key, 1)),
        }
    }
    for (key, n) in groups {
        let word = if n == 1 { "omitida" } else { "omitidas" };
        parts.push(format!("{n} {word}: {}", reason_text(key, n)));
    }
    parts.join(", ")
}

/// Job creators' current access, by user: read from the database once,
/// then trusted while the change feed's access epoch is unchanged (any
/// deactivation, role change or assignment change, here or announced by
/// another instance, moves it), and at most [`crate::services::auth::principals::TTL`].
/// A job has no session, so this is the per-user counterpart of the pages'
/// principal cache; checking an item costs a map look-up.
pub struct CreatorAccess {
    cache: EpochCache<Uuid, CreatorStanding>,
}

impl CreatorAccess {
    pub fn new(feed: Feed) -> CreatorAccess {
        CreatorAccess {
            cache: EpochCache::new(feed, crate::services::auth::principals::TTL),
        }
    }

    /// `user`'s access now (`None`: no such user).
    async fn standing(&self, store: &Store, user: Uuid) -> StoreResult<Option<CreatorStanding>> {
        self.cache
            .get_or_load(user, || store.creator_standing(user))
            .await
    }
}

/// Why a job's creator may no longer act on its next item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LostAccess {
    /// The user no longer exists.
    Gone,
    Deactivated,
    /// No longer an Administrador or Super Administrador.
    Demoted(Role),
    /// No longer has the campaign of conversation `folio`.
    Campaign {
        campaign_id: Uuid,
        folio: i64,
    },
}

impl LostAccess {
    /// Whether (and why not) `standing` may still act, on the conversation
    /// `(campaign, folio)` when one is given.
    pub fn of(standing: Option<&CreatorStanding>, on: Option<(Uuid, i64)>) -> Option<LostAccess> {
        let Some(standing) = standing else {
            return Some(LostAccess::Gone);
        };
        if !standing.active {
            return Some(LostAccess::Deactivated);
        }
        if !standing.role.may_use_console() {
            return Some(LostAccess::Demoted(standing.role));
        }
        match on {
            Some((campaign_id, folio)) if !standing.scope.allows(campaign_id) => {
                Some(LostAccess::Campaign { campaign_id, folio })
            }
            _ => None,
        }
    }

    /// The reason, for the audit row.
    fn text(&self) -> String {
        match self {
            LostAccess::Gone => "el usuario ya no existe".into(),
            LostAccess::Deactivated => "el usuario está desactivado".into(),
            LostAccess::Demoted(role) => {
                format!(
                    "el usuario ya no es Administrador (ahora es {})",
                    role.label()
                )
            }
            LostAccess::Campaign { folio, .. } => {
                format!("el usuario ya no tiene la campaña de la conversación {folio}")
            }
        }
    }

    fn campaign(&self) -> Option<Uuid> {
        match self {
            LostAccess::Campaign { campaign_id, .. } => Some(*campaign_id),
            _ => None,
        }
    }
}

/// Runs a job to the end, or until its creator may no longer act, if this
/// instance can take it (nobody else holds it).
pub async fn process(store: &Store, access: &CreatorAccess, job_id: Uuid) -> StoreResult<()> {
    process_observing(store, access, job_id, |_| {
        std::future::ready(ControlFlow::Continue(()))
    })
    .await
}

/// [`process`], awaiting `before_item(position)` before each item is
/// looked at. `Break` leaves the job as an instance that stopped there
/// would: running, its lease held until it expires, the item untouched.
/// Tests use it to change the world at an exact point of a job.
pub async fn process_observing<F, Fut>(
    store: &Store,
    access: &CreatorAccess,
    job_id: Uuid,
    mut before_item: F,
) -> StoreResult<()>
where
    F: FnMut(i64) -> Fut,
    Fut: Future<Output = ControlFlow<()>>,
{
    let now = Utc::now();
    if !store
        .claim_bulk_job(job_id, Ts::new(now), lease_from(now))
        .await?
    {
        return Ok(());
    }
    let Some(job) = store.bulk_job(job_id).await? else {
        return Ok(());
    };
    let (category, subcategory) =
        crate::services::conversations::closure_lookups(store, job.category_id, job.subcategory_id)
            .await?;
    let agent_name = match job.agent_id {
        Some(id) => store.user_name(id).await?,
        None => None,
    };
    let mut candidates: HashMap<Uuid, Lookup<AgentCandidate>> = HashMap::new();
    loop {
        let items = store.pending_bulk_items(job.id, 50).await?;
        if items.is_empty() {
            break;
        }
        for item in &items {
            if before_item(item.position).await.is_break() {
                return Ok(());
            }
            let ctx = ItemContext {
                job: &job,
                access,
                category,
                subcategory,
                agent_name: agent_name.as_deref(),
            };
            if let Some(lost) = process_item(store, &ctx, item, &mut candidates).await? {
                return stop(store, &job, &lost).await;
            }
        }
        store
            .renew_bulk_lease(job.id, lease_from(Utc::now()))
            .await?;
    }
    store.finish_bulk_job(job.id, Ts::now()).await?;
    tracing::info!(job = %job.id, total = job.total, "bulk job finished");
    Ok(())
}

fn lease_from(now: chrono::DateTime<Utc>) -> Ts {
    Ts::new(now + chrono::Duration::from_std(LEASE).unwrap_or_default())
}

/// Stops `job` because its creator lost access, with an audit row naming the
/// job and the creator.
async fn stop(store: &Store, job: &BulkJob, lost: &LostAccess) -> StoreResult<()> {
    let (done, total) = store.bulk_progress(job.id).await?;
    let name = store
        .user_name(job.created_by)
        .await?
        .unwrap_or_else(|| "usuario eliminado".into());
    let summary = format!(
        "Acción en lote {} ({}) de «{name}» detenida: {}. Procesadas {done} de {total}; \
         {} sin procesar.",
        job.id,
        job.action.label(),
        lost.text(),
        total - done
    );
    let audit = AuditEntry::by(
        job.created_by,
        AuditAction::BulkStop,
        job.id,
        lost.campaign(),
        summary,
    );
    if store.stop_bulk_job(job.id, Ts::now(), &audit).await? {
        tracing::warn!(
            job = %job.id, user = %job.created_by, reason = ?lost, done, total,
            "bulk job stopped: its creator lost access"
        );
    }
    Ok(())
}

struct ItemContext<'a> {
    job: &'a BulkJob,
    access: &'a CreatorAccess,
    category: Lookup<crate::domain::CategoryRef>,
    subcategory: Lookup<crate::domain::SubcategoryRef>,
    agent_name: Option<&'a str>,
}

/// How an item ends: its outcome, the reason key the summary counts and the
/// message people read.
struct Settlement {
    outcome: ItemOutcome,
    reason: String,
    message: String,
}

impl Settlement {
    fn new(outcome: ItemOutcome, reason: &str, message: impl Into<String>) -> Settlement {
        Settlement {
            outcome,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }

    fn not_found() -> Settlement {
        Settlement::new(
            ItemOutcome::NotFound,
            REASON_NOT_FOUND,
            crate::domain::conversation::NOT_FOUND,
        )
    }

    /// The job's change applied to the conversation numbered `folio`.
    fn applied(ctx: &ItemContext<'_>, folio: i64) -> Settlement {
        let (reason, message) = match ctx.job.action {
            BulkAction::Cancel => ("cancelled", format!("Conversación {folio} cancelada")),
            BulkAction::Reassign => (
                "reassigned",
                format!(
                    "Conversación {folio} reasignada a {}",
                    ctx.agent_name.unwrap_or("otro agente")
                ),
            ),
        };
        Settlement::new(ItemOutcome::Applied, reason, message)
    }

    /// Why the rules refused the change.
    fn refused(error: TransitionError) -> Settlement {
        match error {
            TransitionError::Invalid(list) => {
                let key = list.first().map_or("omitted", |i| invalid_key(*i));
                let message = list
                    .iter()
                    .map(|i| i.message())
                    .collect::<Vec<_>>()
                    .join(". ");
                Settlement::new(ItemOutcome::Invalid, key, message)
            }
            TransitionError::NotAllowedFrom(status) => Settlement::new(
                ItemOutcome::AlreadyFinal,
                "already_final",
                TransitionError::refusal(status),
            ),
            TransitionError::NotTheAssignedAgent => Settlement::new(
                ItemOutcome::Invalid,
                "omitted",
                "No se puede hacer en esta conversación",
            ),
        }
    }

    fn conflict() -> Settlement {
        Settlement::new(
            ItemOutcome::Conflict,
            "conflict",
            "Otro cambio la modificó al mismo tiempo; inténtala de nuevo",
        )
    }
}

/// Records how `item` of the job ended; nothing lost access.
async fn settle(
    store: &Store,
    ctx: &ItemContext<'_>,
    item: &BulkItem,
    settlement: Settlement,
) -> StoreResult<Option<LostAccess>> {
    let Settlement {
        outcome,
        reason,
        message,
    } = settlement;
    store
        .settle_bulk_item(
            ctx.job.id,
            item.position,
            outcome,
            &reason,
            &message,
            Ts::now(),
        )
        .await?;
    Ok(None)
}

/// Whether the job's creator lost access (to the conversation `on`, when
/// one is given).
async fn lost_access(
    store: &Store,
    ctx: &ItemContext<'_>,
    on: Option<(Uuid, i64)>,
) -> StoreResult<Option<LostAccess>> {
    let standing = ctx.access.standing(store, ctx.job.created_by).await?;
    Ok(LostAccess::of(standing.as_ref(), on))
}

/// The agent a reassignment names, as a candidate in `campaign_id`,
/// looked up once per campaign for the whole job.
async fn agent_in(
    store: &Store,
    job: &BulkJob,
    campaign_id: Uuid,
    candidates: &mut HashMap<Uuid, Lookup<AgentCandidate>>,
) -> StoreResult<Lookup<AgentCandidate>> {
    let Some(agent_id) = job.agent_id else {
        return Ok(Lookup::NotChosen);
    };
    if let Some(found) = candidates.get(&campaign_id) {
        return Ok(*found);
    }
    let found = store
        .agent_candidate(agent_id, campaign_id)
        .await?
        .map_or(Lookup::Unknown, Lookup::Found);
    candidates.insert(campaign_id, found);
    Ok(found)
}

/// The job's change on `conversation` as the rules decide it now.
async fn decide(
    store: &Store,
    ctx: &ItemContext<'_>,
    conversation: &Conversation,
    candidates: &mut HashMap<Uuid, Lookup<AgentCandidate>>,
) -> StoreResult<Result<Transition, TransitionError>> {
    let job = ctx.job;
    let now = Utc::now();
    Ok(match job.action {
        BulkAction::Cancel => rules::cancel(
            conversation,
            job.created_by,
            ctx.category,
            ctx.subcategory,
            &job.comment,
            now,
        ),
        BulkAction::Reassign => {
            let agent = agent_in(store, job, conversation.campaign_id, candidates).await?;
            // The job's preview named the agent, connected or not.
            rules::reassign(
                conversation,
                job.created_by,
                agent,
                rules::OfflineAgent::Confirmed,
                &job.comment,
                now,
            )
        }
    })
}

/// Settles one item, or answers why its creator may no longer act (then
/// nothing was done to it): load the conversation, check the creator's
/// access, decide, apply; again on the new state when another change won.
async fn process_item(
    store: &Store,
    ctx: &ItemContext<'_>,
    item: &BulkItem,
    candidates: &mut HashMap<Uuid, Lookup<AgentCandidate>>,
) -> StoreResult<Option<LostAccess>> {
    let job = ctx.job;
    let Some(conversation_id) = item.conversation_id else {
        return settle(store, ctx, item, Settlement::not_found()).await;
    };
    for attempt in 0..ATTEMPTS {
        // The creator's scope when the job was made: nothing outside it is
        // touched or revealed, even if their assignments changed since.
        let Some(conversation) = store
            .conversation_state(&job.scope, conversation_id)
            .await?
        else {
            // Nothing to change, but a job whose creator lost access
            // records nothing more either.
            if let Some(why) = lost_access(store, ctx, None).await? {
                return Ok(Some(why));
            }
            return settle(store, ctx, item, Settlement::not_found()).await;
        };
        let applied = Settlement::applied(ctx, conversation.folio);
        // Resumed after a crash: did this job change it before it could
        // settle the item? Its history row says so exactly.
        if attempt == 0 && store.bulk_job_changed(job.id, conversation_id).await? {
            return settle(store, ctx, item, applied).await;
        }
        // May the creator still act on it? Asked before every attempt, right
        // before deciding and applying.
        let on = Some((conversation.campaign_id, conversation.folio));
        if let Some(why) = lost_access(store, ctx, on).await? {
            return Ok(Some(why));
        }
        let transition = match decide(store, ctx, &conversation, candidates).await? {
            Ok(transition) => transition,
            Err(refused) => return settle(store, ctx, item, Settlement::refused(refused)).await,
        };
        let with = ApplyWith {
            bulk_job_id: Some(job.id),
            ..ApplyWith::default()
        };
        if store
            .apply_transition_with(&transition, with)
            .await?
            .is_ok()
        {
            return settle(store, ctx, item, applied).await;
        }
        // Someone else changed it meanwhile: decide again on the new state.
    }
    settle(store, ctx, item, Settlement::conflict()).await
}

/// Runs a job in the background.
pub fn start(store: Store, access: Arc<CreatorAccess>, job_id: Uuid) {
    tokio::spawn(async move {
        if let Err(e) = process(&store, &access, job_id).await {
            tracing::warn!(job = %job_id, error = ?e, "bulk job interrupted; another pass will resume it");
        }
    });
}

/// Resumes running jobs nobody holds (an instance stopped mid-job) every
/// few seconds, until the store's pools close. A resumed job checks its
/// creator's access like any other.
pub fn spawn_worker(store: Store, access: Arc<CreatorAccess>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(WORKER_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if store.is_closed() {
                break;
            }
            let orphaned = match store.orphaned_bulk_jobs(Ts::now()).await {
                Ok(ids) => ids,
                Err(e) => {
                    tracing::warn!(error = ?e, "could not look for unfinished bulk jobs");
                    continue;
                }
            };
            for job_id in orphaned {
                if let Err(e) = process(&store, &access, job_id).await {
                    tracing::warn!(job = %job_id, error = ?e, "could not resume a bulk job");
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_counts_applied_items_and_groups_the_skipped_ones_by_reason() {
        let mut settled = vec![(ItemOutcome::Applied, "cancelled".to_owned()); 18];
        settled.push((ItemOutcome::AlreadyFinal, "already_final".into()));
        settled.push((ItemOutcome::Invalid, "category_not_in_campaign".into()));
        settled.push((ItemOutcome::AlreadyFinal, "already_final".into()));
        assert_eq!(
            summary(BulkAction::Cancel, &settled),
            "18 canceladas, 2 omitidas: ya estaban cerradas, \
             1 omitida: la categoría no pertenece a su campaña"
        );
        assert_eq!(
            summary(
                BulkAction::Reassign,
                &[
                    (ItemOutcome::Applied, "reassigned".into()),
                    (ItemOutcome::NotFound, REASON_NOT_FOUND.into())
                ]
            ),
            "1 reasignada, 1 omitida: no encontrada"
        );
    }

    #[test]
    fn a_creator_may_act_only_while_active_an_administrator_and_assigned() {
        let (mine, other) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let admin = CreatorStanding {
            name: "Ana".into(),
            role: Role::Admin,
            active: true,
            scope: crate::domain::Scope::Campaigns(vec![mine]),
        };
        assert_eq!(LostAccess::of(Some(&admin), None), None);
        assert_eq!(LostAccess::of(Some(&admin), Some((mine, 10001))), None);
        assert_eq!(
            LostAccess::of(Some(&admin), Some((other, 10002))),
            Some(LostAccess::Campaign {
                campaign_id: other,
                folio: 10002
            })
        );
        let inactive = CreatorStanding {
            active: false,
            ..admin.clone()
        };
        assert_eq!(
            LostAccess::of(Some(&inactive), Some((mine, 10001))),
            Some(LostAccess::Deactivated)
        );
        let agent = CreatorStanding {
            role: Role::Agent,
            ..admin.clone()
        };
        assert_eq!(
            LostAccess::of(Some(&agent), Some((mine, 10001))),
            Some(LostAccess::Demoted(Role::Agent))
        );
        let boss = CreatorStanding {
            role: Role::SuperAdmin,
            scope: crate::domain::Scope::All,
            ..admin
        };
        assert_eq!(LostAccess::of(Some(&boss), Some((other, 10002))), None);
        assert_eq!(LostAccess::of(None, None), Some(LostAccess::Gone));
    }

    #[test]
    fn every_invalid_field_has_a_reason() {
        for invalid in [
            Invalid::CategoryMissing,
            Invalid::CategoryNotInCampaign,
            Invalid::CategoryInactive,
            Invalid::SubcategoryNotOfCategory,
            Invalid::SubcategoryInactive,
            Invalid::CommentTooLong(2000),
            Invalid::CommentNul,
            Invalid::AgentMissing,
            Invalid::NotAnAgent,
            Invalid::AgentNotInCampaign,
            Invalid::AgentInactive,
            Invalid::SameAgent,
        ] {
            assert_ne!(
                reason_text(invalid_key(invalid), 1),
                "omitida",
                "{invalid:?}"
            );
        }
    }
}
