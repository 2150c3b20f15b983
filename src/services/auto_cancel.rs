//! Cancelación automática: per campaign, rules such as "cancel conversations
//! in ICR with no customer message for 30 minutes", applied by a background
//! task through the same transition rules as an administrator's cancel, with
//! actor kind `system`.
//!
//! Several instances may run the task against one database. Nothing elects
//! a leader: every cancellation is the Store's compare-and-set on the
//! conversation's version, so of two instances that find the same stale
//! conversation exactly one applies it (the other sees a conflict and moves
//! on), and a nudge is recorded under a unique key (rule, conversation,
//! silence) so exactly one instance sends it.
//!
//! The measured silence is part of that compare-and-set: a customer message
//! does not move the version (so it never makes an administrator's open
//! form stale) but always moves `last_activity_at`, so a cancellation for a
//! customer's silence also requires the activity it measured to be
//! unchanged. A customer who writes between the measurement and the update
//! is never cancelled.
//!
//! A nudge ("aviso") is recorded as an outbound message of the conversation
//! and, in the same transaction, as an item of its channel's outbox, which
//! the channel's connector collects through the integration API (the server
//! makes no outbound calls). A rule with a nudge sends it `lead` minutes
//! before the window ends and cancels only once the nudge is at least
//! `lead` minutes old, so the customer always gets that long to answer.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::db::{ApplyWith, AutoCancelRule, Stale, StaleConversation, Store, StoreResult, Ts};
use crate::domain::conversation::{self as rules};
use crate::domain::{CategoryRef, Invalid, Lookup, SubcategoryRef, TransitionError};

// The rules' pure parts (limits, parsing, labels) are domain rules the
// Store also needs; re-exported so callers keep one path.
pub use crate::domain::auto_cancel::*;

/// How often the rules are applied.
pub const TICK: Duration = Duration::from_secs(60);
/// Conversations handled per rule and query.
const BATCH: i64 = 200;
/// Queries per rule and pass, at most (so one pass is bounded).
const MAX_BATCHES: usize = 50;
/// The queries a rule runs at `now`.
pub fn targets(rule: &AutoCancelRule, now: DateTime<Utc>) -> (Stale, Option<Stale>) {
    let minutes = chrono::Duration::minutes;
    let cutoff = Ts::new(now - minutes(rule.window_minutes));
    match (rule.nudge_text.as_ref(), rule.nudge_lead_minutes) {
        (Some(_), Some(lead)) => (
            Stale::Cancel {
                cutoff,
                nudged_by: Some(Ts::new(now - minutes(lead))),
            },
            Some(Stale::Nudge {
                cutoff: Ts::new(now - minutes((rule.window_minutes - lead).max(0))),
            }),
        ),
        _ => (
            Stale::Cancel {
                cutoff,
                nudged_by: None,
            },
            None,
        ),
    }
}

/// What a dry run or a pass found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassReport {
    pub cancelled: usize,
    pub nudged: usize,
    /// Changed by someone else (another instance, an administrator) first.
    pub conflicts: usize,
    /// Refused by the closure rules (e.g. the rule's category was deactivated).
    pub refused: usize,
}

/// The dry run: how many conversations `rule` would cancel, and nudge, now.
pub async fn preview(
    store: &Store,
    rule: &AutoCancelRule,
    now: DateTime<Utc>,
) -> StoreResult<(i64, i64)> {
    let (cancel, nudge) = targets(rule, now);
    let cancels = store.count_stale(rule, cancel).await?;
    let nudges = match nudge {
        Some(which) => store.count_stale(rule, which).await?,
        None => 0,
    };
    Ok((cancels, nudges))
}

/// A rule's closure (category, sub-category, history comment), looked up
/// once per pass.
#[derive(Debug, Clone)]
pub struct RuleClosure {
    category: Lookup<CategoryRef>,
    subcategory: Lookup<SubcategoryRef>,
    comment: String,
}

impl RuleClosure {
    pub async fn load(store: &Store, rule: &AutoCancelRule) -> StoreResult<RuleClosure> {
        let (category, subcategory) = crate::services::conversations::closure_lookups(
            store,
            Some(rule.category_id),
            rule.subcategory_id,
        )
        .await?;
        Ok(RuleClosure {
            category,
            subcategory,
            comment: history_comment(&rule.name, rule.comment.as_deref()),
        })
    }
}

/// What became of one stale conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancelled {
    Yes,
    /// Changed since it was measured (another instance cancelled it, an
    /// administrator acted, the customer wrote): left as it is now.
    Changed,
    /// The closure rules refuse the rule's closure (e.g. its category was
    /// deactivated); the same holds for every conversation of the rule.
    Refused(Vec<Invalid>),
}

/// Cancels one conversation found stale, as the system, only if it is still
/// exactly as measured: the same version and, for a customer's silence, the
/// same last activity, both checked by the update itself.
pub async fn cancel_stale(
    store: &Store,
    rule: &AutoCancelRule,
    closure: &RuleClosure,
    stale: &StaleConversation,
    now: DateTime<Utc>,
) -> StoreResult<Cancelled> {
    let transition = match rules::system_cancel(
        &stale.conversation,
        rule.status,
        closure.category,
        closure.subcategory,
        &closure.comment,
        now,
    ) {
        Ok(t) => t,
        Err(TransitionError::Invalid(list)) => return Ok(Cancelled::Refused(list)),
        Err(_) => return Ok(Cancelled::Changed),
    };
    let with = ApplyWith {
        activity_at: stale.activity_guard(rule.measure),
        auto_cancel_rule_id: Some(rule.id),
        ..ApplyWith::default()
    };
    Ok(
        match store.apply_transition_with(&transition, with).await? {
            Ok(()) => Cancelled::Yes,
            Err(_) => Cancelled::Changed,
        },
    )
}

/// Applies one rule at `now`: nudges first, then cancellations.
pub async fn apply_rule(
    store: &Store,
    rule: &AutoCancelRule,
    now: DateTime<Utc>,
) -> StoreResult<PassReport> {
    let mut report = PassReport::default();
    let (cancel, nudge) = targets(rule, now);
    if let (Some(which), Some(text)) = (nudge, rule.nudge_text.as_deref()) {
        for _ in 0..MAX_BATCHES {
            let batch = store.stale_conversations(rule, which, BATCH).await?;
            let mut recorded_in_batch = 0;
            for stale in &batch {
                if store.record_nudge(rule, stale, text, Ts::new(now)).await? {
                    recorded_in_batch += 1;
                }
            }
            report.nudged += recorded_in_batch;
            // A batch where nothing could be recorded would come back the same.
            if recorded_in_batch == 0 || (batch.len() as i64) < BATCH {
                break;
            }
        }
    }
    let closure = RuleClosure::load(store, rule).await?;
    for _ in 0..MAX_BATCHES {
        let batch = store.stale_conversations(rule, cancel, BATCH).await?;
        let mut applied_in_batch = 0;
        for stale in &batch {
            match cancel_stale(store, rule, &closure, stale, now).await? {
                Cancelled::Yes => {
                    report.cancelled += 1;
                    applied_in_batch += 1;
                }
                Cancelled::Changed => report.conflicts += 1,
                Cancelled::Refused(list) => {
                    tracing::warn!(rule = %rule.id, ?list, "automatic rule refused by the closure rules; skipped");
                    report.refused += batch.len();
                    return Ok(report);
                }
            }
        }
        if applied_in_batch == 0 || (batch.len() as i64) < BATCH {
            break;
        }
    }
    if report.cancelled > 0 || report.nudged > 0 {
        tracing::info!(rule = %rule.id, cancelled = report.cancelled, nudged = report.nudged, conflicts = report.conflicts, "automatic cancellation pass");
    }
    Ok(report)
}

/// One pass over every active rule at `now`. A rule that fails is logged
/// and the others still run.
pub async fn run_pass(store: &Store, now: DateTime<Utc>) -> StoreResult<PassReport> {
    let mut total = PassReport::default();
    for rule in store.active_auto_cancel_rules().await? {
        match apply_rule(store, &rule, now).await {
            Ok(r) => {
                total.cancelled += r.cancelled;
                total.nudged += r.nudged;
                total.conflicts += r.conflicts;
                total.refused += r.refused;
            }
            Err(e) if e.is_unavailable() => return Err(e),
            Err(e) => tracing::warn!(rule = %rule.id, error = ?e, "automatic rule failed"),
        }
    }
    Ok(total)
}

/// Applies the rules every [`TICK`] until the store's pools close. Errors
/// are logged, never fatal.
pub fn spawn(store: Store) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + TICK, TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if store.is_closed() {
                break;
            }
            if let Err(e) = run_pass(&store, Utc::now()).await {
                tracing::warn!(error = ?e, "automatic cancellation pass failed");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::text::COMMENT_MAX_CHARS;

    #[test]
    fn a_window_is_a_whole_number_of_minutes_from_one_to_thirty_days() {
        assert_eq!(parse_window("30"), Ok(30));
        assert_eq!(parse_window(" 240 "), Ok(240));
        for bad in ["0", "-5", "", "1.5", "abc", "43201", "99999999999999999999"] {
            assert!(parse_window(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_window("0").unwrap_err(),
            "La ventana debe ser de al menos 1 minuto"
        );
        assert_eq!(
            parse_window("-1").unwrap_err(),
            "La ventana debe ser de al menos 1 minuto"
        );
    }

    #[test]
    fn a_nudge_needs_text_and_a_lead_shorter_than_the_window() {
        assert_eq!(parse_nudge("", "", Some(30)), Ok(None));
        assert_eq!(
            parse_nudge(" ¿Sigues ahí? ", "10", Some(30)),
            Ok(Some(("¿Sigues ahí?".into(), 10)))
        );
        assert_eq!(parse_nudge("", "10", Some(30)).unwrap_err().0, "aviso");
        assert_eq!(
            parse_nudge("Hola", "", Some(30)).unwrap_err().0,
            "aviso_minutos"
        );
        assert_eq!(
            parse_nudge("Hola", "0", Some(30)).unwrap_err().0,
            "aviso_minutos"
        );
        assert_eq!(
            parse_nudge("Hola", "30", Some(30)).unwrap_err().0,
            "aviso_minutos"
        );
        assert_eq!(
            parse_nudge("Hola\u{0}", "10", Some(30)).unwrap_err().0,
            "aviso"
        );
    }

    #[test]
    fn the_history_comment_names_the_rule_and_fits_the_limit() {
        assert_eq!(
            history_comment("ICR 30 min", None),
            "Cancelación automática «ICR 30 min»"
        );
        assert_eq!(
            history_comment("ICR", Some(" reinicia el flujo ")),
            "Cancelación automática «ICR»: reinicia el flujo"
        );
        let long = "x".repeat(5000);
        assert_eq!(
            history_comment("r", Some(&long)).chars().count(),
            COMMENT_MAX_CHARS
        );
    }

    #[test]
    fn windows_read_in_days_hours_and_minutes() {
        assert_eq!(window_label(30), "30 min");
        assert_eq!(window_label(240), "4 h");
        assert_eq!(window_label(1440 + 90), "1 d 1 h 30 min");
    }
}
