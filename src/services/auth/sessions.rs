//! When sessions end, and the purge of expired ones: the bookkeeping of
//! sessions that is not HTTP (the cookie glue is `http::auth::session`).

use chrono::{DateTime, TimeDelta, Utc};

use crate::db::{SessionLimits, Store, Ts};

/// How long a session lasts at most, however active (the cookie's Max-Age
/// is the same, but a copied cookie is refused by the server).
pub const LIFETIME: TimeDelta = TimeDelta::hours(12);

/// How often a session's activity (`last_seen_at`) is written, at most.
///
/// Writing it on every request would make every page view a write (and
/// SQLite has one writer), so it is written only when the recorded value is
/// at least this old; in between, requests are served from the principal
/// cache, whose entries are trusted only while the recorded activity is
/// younger than this. The idle timeout counts from the recorded activity,
/// which is at most this much older than the last request: a session ends
/// between `idle - ACTIVITY_GRANULARITY` and `idle` after its last request.
pub const ACTIVITY_GRANULARITY: TimeDelta = TimeDelta::seconds(60);

/// Expired sessions stay this long before they are purged, so a user who
/// comes back the next morning is told that the session expired (rather
/// than that it was closed). They are refused all the same.
pub const PURGE_GRACE: TimeDelta = TimeDelta::hours(24);
/// How often expired sessions are purged.
pub const PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(600);
/// Sessions deleted per statement, and statements per pass, at most (so a
/// pass is bounded and never holds the writer for long).
const PURGE_BATCH: i64 = 500;
const PURGE_MAX_BATCHES: usize = 20;

/// Wrong current passwords typed in one session's "Cambiar mi contraseña"
/// before the session ends (a copied cookie cannot guess the password).
pub const PASSWORD_ATTEMPTS: i32 = 5;

/// When sessions end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// Since the start, whatever the activity ([`LIFETIME`]).
    pub lifetime: TimeDelta,
    /// Since the last recorded activity.
    pub idle: TimeDelta,
}

impl SessionPolicy {
    pub fn new(idle: std::time::Duration) -> SessionPolicy {
        SessionPolicy {
            lifetime: LIFETIME,
            idle: TimeDelta::from_std(idle).unwrap_or(LIFETIME).min(LIFETIME),
        }
    }

    pub fn with_idle_minutes(minutes: u32) -> SessionPolicy {
        SessionPolicy::new(std::time::Duration::from_secs(u64::from(minutes) * 60))
    }

    /// Whether a session started at `created_at`, with its last activity
    /// recorded at `last_seen_at`, is still open at `now`.
    pub fn is_open(&self, created_at: Ts, last_seen_at: Ts, now: DateTime<Utc>) -> bool {
        now - created_at.0 < self.lifetime && now - last_seen_at.0 < self.idle
    }

    /// Which sessions are open at `now` (the same rule as
    /// [`is_open`](Self::is_open), for queries).
    pub fn open_at(&self, now: DateTime<Utc>) -> SessionLimits {
        SessionLimits {
            started_after: Ts::new(now - self.lifetime),
            seen_after: Ts::new(now - self.idle),
        }
    }

    /// What the purge at `now` keeps: sessions that were open
    /// [`PURGE_GRACE`] ago.
    pub fn purge_limits(&self, now: DateTime<Utc>) -> SessionLimits {
        self.open_at(now - PURGE_GRACE)
    }
}

/// Deletes sessions expired more than [`PURGE_GRACE`] ago every
/// [`PURGE_EVERY`], in bounded batches, until the store's pools close.
/// Errors are logged, never fatal. Several instances may run it: a
/// session deleted twice is deleted once.
pub fn spawn_purge(store: Store, policy: SessionPolicy) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PURGE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if store.is_closed() {
                break;
            }
            let mut purged = 0;
            for _ in 0..PURGE_MAX_BATCHES {
                let limits = policy.purge_limits(Utc::now());
                match store.purge_expired_sessions(limits, PURGE_BATCH).await {
                    Ok(deleted) => {
                        purged += deleted;
                        if deleted < PURGE_BATCH as u64 {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = ?e, "purging expired sessions failed");
                        break;
                    }
                }
            }
            if purged > 0 {
                tracing::info!(purged, "expired sessions purged");
            }
        }
    });
}
