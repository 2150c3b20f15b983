//! The router: where a conversation goes when the bot hands it to a human,
//! and when waiting conversations are assigned.
//!
//! The decision itself is the pure [`route`](crate::domain::conversation::route)
//! over the pure [`within_schedule`] rule; this module gathers their inputs
//! (the campaign's hours and time zone, its connected agents and their load)
//! and applies the resulting transitions through the Store's compare-and-set.
//! A background task re-checks every campaign each minute, so waiting
//! conversations are assigned when a schedule opens.
//!
//! A deactivated campaign is closed to the router: neither the scheduler,
//! nor an agent connecting (also through another campaign they belong to),
//! nor a hand-off assigns its conversations until it is reactivated. (The
//! integration API refuses its tokens before that: see `routes::api`.)

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::db::{Store, StoreResult};
use crate::domain::conversation::{self as rules, route};
use crate::domain::schedule::within_schedule;
use crate::domain::{Conversation, HandoffOutcome, Scope};
use crate::services::error::{ATTEMPTS, ServiceError};

/// How often waiting conversations are re-checked.
pub const TICK: Duration = Duration::from_secs(60);
/// Waiting conversations assigned per campaign and pass, at most.
const BATCH: i64 = 500;

/// Whether the campaign's schedule is open at `now`. An unknown time zone is
/// read as the default one (and logged); an unknown or inactive campaign is
/// closed.
pub async fn campaign_open(
    store: &Store,
    campaign_id: Uuid,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let Some((timezone, days)) = store.campaign_hours(campaign_id).await? else {
        return Ok(false);
    };
    let tz = timezone.parse().unwrap_or_else(|_| {
        tracing::warn!(%campaign_id, %timezone, "unknown campaign time zone; using the default");
        chrono_tz::America::Mexico_City
    });
    Ok(within_schedule(&days, tz, now))
}

/// The router's decision for a hand-off in `campaign_id` at `now`.
pub async fn decide(
    store: &Store,
    campaign_id: Uuid,
    now: DateTime<Utc>,
) -> StoreResult<HandoffOutcome> {
    decide_without(store, campaign_id, None, now).await
}

/// The router's decision for a conversation an administrator gives back to
/// it: as [`decide`], but never its current agent (`current`), whom the
/// administrator is taking it from.
pub async fn decide_without(
    store: &Store,
    campaign_id: Uuid,
    current: Option<Uuid>,
    now: DateTime<Utc>,
) -> StoreResult<HandoffOutcome> {
    if !campaign_open(store, campaign_id, now).await? {
        return Ok(route(false, &[]));
    }
    let mut agents = store.connected_agent_loads(campaign_id).await?;
    agents.retain(|(id, _)| Some(*id) != current);
    Ok(route(true, &agents))
}

/// The bot hands conversation `id` to a human: out of hours, agents offline,
/// or assigned to the least busy connected agent. Retries a bounded number
/// of times when someone else changes the conversation meanwhile.
pub async fn handoff(store: &Store, scope: &Scope, id: Uuid) -> Result<Conversation, ServiceError> {
    for _ in 0..ATTEMPTS {
        let conversation = store
            .conversation_state(scope, id)
            .await?
            .ok_or(ServiceError::NotFound)?;
        let now = Utc::now();
        // Refuse before gathering the router's inputs.
        rules::handoff(&conversation, HandoffOutcome::OutOfHours, now)?;
        let outcome = decide(store, conversation.campaign_id, now).await?;
        let transition = rules::handoff(&conversation, outcome, now)?;
        if store.apply_transition(&transition).await?.is_ok() {
            tracing::info!(
                folio = conversation.folio,
                ?outcome,
                "conversation handed off"
            );
            return Ok(transition.applied_to(&conversation));
        }
    }
    Err(ServiceError::Busy)
}

/// Assigns the campaign's waiting conversations, oldest first, each to the
/// connected agent with the fewest open conversations at that moment, if the
/// schedule is open and someone is connected. Returns how many it assigned.
pub async fn assign_waiting(
    store: &Store,
    campaign_id: Uuid,
    now: DateTime<Utc>,
) -> StoreResult<usize> {
    if !campaign_open(store, campaign_id, now).await? {
        return Ok(0);
    }
    let mut agents = store.connected_agent_loads(campaign_id).await?;
    if agents.is_empty() {
        return Ok(0);
    }
    let mut assigned = 0;
    for conversation in store.waiting_conversations(campaign_id, BATCH).await? {
        let HandoffOutcome::Assign(agent) = route(true, &agents) else {
            break;
        };
        let Ok(transition) = rules::assign_waiting(&conversation, agent, Utc::now()) else {
            continue;
        };
        // A conflict means someone else (an administrator, another
        // instance) changed it since it was listed: leave it to them.
        if store.apply_transition(&transition).await?.is_ok() {
            assigned += 1;
            if let Some(load) = agents.iter_mut().find(|(id, _)| *id == agent) {
                load.1 += 1;
            }
        }
    }
    if assigned > 0 {
        tracing::info!(%campaign_id, assigned, "waiting conversations assigned");
    }
    Ok(assigned)
}

/// One pass over every active campaign.
pub async fn assign_all_waiting(store: &Store) -> StoreResult<usize> {
    let mut total = 0;
    for campaign_id in store.active_campaign_ids().await? {
        total += assign_waiting(store, campaign_id, Utc::now()).await?;
    }
    Ok(total)
}

/// Re-checks waiting conversations every [`TICK`] (the first pass after one
/// tick) until the store's pools close. Errors are logged, never fatal.
pub fn spawn_scheduler(store: Store) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + TICK, TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if store.is_closed() {
                break;
            }
            if let Err(e) = assign_all_waiting(&store).await {
                tracing::warn!(error = ?e, "could not assign waiting conversations");
            }
        }
    });
}
