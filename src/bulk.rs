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

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::time::Duration;

use chrono::Utc;
use uuid::Uuid;

use crate::db::{ApplyWith, BulkAction, BulkItem, BulkJob, ItemOutcome, Store, StoreResult, Ts};
use crate::domain::conversation::{self as rules};
use crate::domain::{AgentCandidate, Invalid, Lookup, TransitionError};

/// Jobs up to this size run within the request; larger ones in the background.
pub const INLINE_MAX: usize = 25;
/// The most conversations one job may act on.
pub const MAX_ITEMS: usize = 5000;
/// The reason key of an item that does not exist in the creator's scope.
pub const REASON_NOT_FOUND: &str = "not_found";
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
        Invalid::AgentMissing => "agent_missing",
        Invalid::NotAnAgent => "not_an_agent",
        Invalid::AgentNotInCampaign => "agent_not_in_campaign",
        Invalid::AgentInactive => "agent_inactive",
        Invalid::SameAgent => "same_agent",
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

/// Runs a job to the end if this instance can take it (nobody else holds it).
pub async fn process(store: &Store, job_id: Uuid) -> StoreResult<()> {
    process_observing(store, job_id, |_| {
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
        crate::service::closure_lookups(store, job.category_id, job.subcategory_id).await?;
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
                category,
                subcategory,
                agent_name: agent_name.as_deref(),
            };
            process_item(store, &ctx, item, &mut candidates).await?;
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

struct ItemContext<'a> {
    job: &'a BulkJob,
    category: Lookup<crate::domain::CategoryRef>,
    subcategory: Lookup<crate::domain::SubcategoryRef>,
    agent_name: Option<&'a str>,
}

async fn process_item(
    store: &Store,
    ctx: &ItemContext<'_>,
    item: &BulkItem,
    candidates: &mut HashMap<Uuid, Lookup<AgentCandidate>>,
) -> StoreResult<()> {
    let job = ctx.job;
    let settle = |outcome: ItemOutcome, reason: String, message: String| async move {
        store
            .settle_bulk_item(job.id, item.position, outcome, &reason, &message, Ts::now())
            .await
    };
    let not_found = || {
        (
            ItemOutcome::NotFound,
            REASON_NOT_FOUND.to_owned(),
            crate::routes::mensajes::NOT_FOUND.to_owned(),
        )
    };
    let Some(conversation_id) = item.conversation_id else {
        let (o, r, m) = not_found();
        return settle(o, r, m).await;
    };
    let applied_key = match job.action {
        BulkAction::Cancel => "cancelled",
        BulkAction::Reassign => "reassigned",
    };
    for attempt in 0..ATTEMPTS {
        // The creator's scope when the job was made: nothing outside it is
        // touched or revealed, even if their assignments changed since.
        let Some(conversation) = store
            .conversation_state(&job.scope, conversation_id)
            .await?
        else {
            let (o, r, m) = not_found();
            return settle(o, r, m).await;
        };
        let applied_message = || match job.action {
            BulkAction::Cancel => format!("Conversación {} cancelada", conversation.folio),
            BulkAction::Reassign => format!(
                "Conversación {} reasignada a {}",
                conversation.folio,
                ctx.agent_name.unwrap_or("otro agente")
            ),
        };
        // Resumed after a crash: did this job change it before it could
        // settle the item? Its history row says so exactly.
        if attempt == 0 && store.bulk_job_changed(job.id, conversation_id).await? {
            return settle(ItemOutcome::Applied, applied_key.into(), applied_message()).await;
        }
        let now = Utc::now();
        let computed = match job.action {
            BulkAction::Cancel => rules::cancel(
                &conversation,
                job.created_by,
                ctx.category,
                ctx.subcategory,
                &job.comment,
                now,
            ),
            BulkAction::Reassign => {
                let agent = match job.agent_id {
                    None => Lookup::NotChosen,
                    Some(agent_id) => match candidates.get(&conversation.campaign_id) {
                        Some(found) => *found,
                        None => {
                            let found = store
                                .agent_candidate(agent_id, conversation.campaign_id)
                                .await?
                                .map_or(Lookup::Unknown, Lookup::Found);
                            candidates.insert(conversation.campaign_id, found);
                            found
                        }
                    },
                };
                rules::reassign(&conversation, job.created_by, agent, &job.comment, now)
            }
        };
        let transition = match computed {
            Ok(t) => t,
            Err(TransitionError::Invalid(list)) => {
                let key = list.first().map_or("omitted", |i| invalid_key(*i));
                let message = list
                    .iter()
                    .map(|i| i.message())
                    .collect::<Vec<_>>()
                    .join(". ");
                return settle(ItemOutcome::Invalid, key.into(), message).await;
            }
            Err(TransitionError::NotAllowedFrom(status)) => {
                return settle(
                    ItemOutcome::AlreadyFinal,
                    "already_final".into(),
                    TransitionError::refusal(status),
                )
                .await;
            }
            Err(TransitionError::NotTheAssignedAgent) => {
                return settle(
                    ItemOutcome::Invalid,
                    "omitted".into(),
                    "No se puede hacer en esta conversación".into(),
                )
                .await;
            }
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
            return settle(ItemOutcome::Applied, applied_key.into(), applied_message()).await;
        }
        // Someone else changed it meanwhile: decide again on the new state.
    }
    settle(
        ItemOutcome::Conflict,
        "conflict".into(),
        "Otro cambio la modificó al mismo tiempo; inténtala de nuevo".into(),
    )
    .await
}

/// Runs a job in the background.
pub fn start(store: Store, job_id: Uuid) {
    tokio::spawn(async move {
        if let Err(e) = process(&store, job_id).await {
            tracing::warn!(job = %job_id, error = ?e, "bulk job interrupted; another pass will resume it");
        }
    });
}

/// Resumes running jobs nobody holds (an instance stopped mid-job) every
/// few seconds, until the store's pools close.
pub fn spawn_worker(store: Store) {
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
                if let Err(e) = process(&store, job_id).await {
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
    fn every_invalid_field_has_a_reason() {
        for invalid in [
            Invalid::CategoryMissing,
            Invalid::CategoryNotInCampaign,
            Invalid::CategoryInactive,
            Invalid::SubcategoryNotOfCategory,
            Invalid::SubcategoryInactive,
            Invalid::CommentTooLong(2000),
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
