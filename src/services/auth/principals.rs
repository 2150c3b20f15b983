//! Signed-in principals, cached per session.
//!
//! Every request needs its user's current role, active flag and campaigns;
//! reading them costs two queries. They are kept in an [`EpochCache`], so
//! any access change — through this instance or announced by another —
//! makes the user's next request read them again. Ending sessions (logout,
//! "Cerrar las demás sesiones", a password change, a deactivation) is such
//! a change.
//!
//! An entry also carries its session's start and last recorded activity,
//! and is served only while the session is open by the [`SessionPolicy`]
//! and its recorded activity is recent (see [`PrincipalCache::get`]): a
//! cached principal never outlives its session.

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::db::{Principal, Ts};
use crate::live::Feed;
use crate::live::cache::EpochCache;
use crate::services::auth::sessions::{ACTIVITY_GRANULARITY, SessionPolicy};

/// How long a principal may be reused at most.
pub const TTL: Duration = Duration::from_secs(30);

/// A principal with the times of its session.
#[derive(Debug, Clone)]
pub struct CachedSession {
    pub principal: Principal,
    pub created_at: Ts,
    /// The activity recorded in the database when this entry was made.
    pub last_seen_at: Ts,
}

/// Session id → principal, trusted only while the session is open.
pub struct PrincipalCache {
    entries: EpochCache<Uuid, CachedSession>,
    policy: SessionPolicy,
}

impl PrincipalCache {
    /// The policy the sessions are held to.
    pub fn policy(&self) -> SessionPolicy {
        self.policy
    }

    /// The principal of `session_id`, if its entry may be trusted at `now`:
    /// no access change since it was loaded, younger than [`TTL`], its
    /// session open, and its recorded activity younger than
    /// [`ACTIVITY_GRANULARITY`]. Past that, the caller reads the session
    /// again and records the activity, so the session's lifetime and idle
    /// timeout are judged against the database at least once a minute, and
    /// no entry is served past the session's end.
    pub fn get(&self, session_id: &Uuid, now: DateTime<Utc>) -> Option<Principal> {
        let entry = self.entries.get(session_id)?;
        let recent = now - entry.last_seen_at.0 < ACTIVITY_GRANULARITY;
        (recent
            && self
                .policy
                .is_open(entry.created_at, entry.last_seen_at, now))
        .then_some(entry.principal)
    }

    /// The epoch to read before loading an entry to [`put`](Self::put).
    pub fn epoch(&self) -> u64 {
        self.entries.epoch()
    }

    pub fn put(&self, session_id: Uuid, entry: CachedSession, epoch: u64) {
        self.entries.put(session_id, entry, epoch);
    }

    pub fn remove(&self, session_id: &Uuid) {
        self.entries.remove(session_id);
    }
}

/// The cache for sessions that end after `idle` without activity (and 12 h
/// after they started).
pub fn new_cache(feed: Feed, idle: Duration) -> PrincipalCache {
    PrincipalCache {
        entries: EpochCache::new(feed, TTL),
        policy: SessionPolicy::new(idle),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::domain::{Role, Scope};

    fn entry(started: DateTime<Utc>, seen: DateTime<Utc>) -> CachedSession {
        CachedSession {
            principal: Principal {
                user_id: Uuid::now_v7(),
                session_id: Uuid::now_v7(),
                name: "Laura".into(),
                email: "laura@relevo.demo".into(),
                role: Role::Admin,
                scope: Scope::Campaigns(Vec::new()),
            },
            created_at: Ts::new(started),
            last_seen_at: Ts::new(seen),
        }
    }

    fn cache() -> PrincipalCache {
        new_cache(Feed::new(), Duration::from_secs(120 * 60))
    }

    #[test]
    fn a_cached_principal_is_served_while_its_session_is_open() {
        let cache = cache();
        let now = Utc::now();
        let id = Uuid::now_v7();
        cache.put(id, entry(now - TimeDelta::hours(1), now), cache.epoch());
        assert!(cache.get(&id, now + TimeDelta::seconds(20)).is_some());
    }

    #[test]
    fn a_cached_principal_is_not_served_past_its_sessions_lifetime() {
        let cache = cache();
        let now = Utc::now();
        let id = Uuid::now_v7();
        let started = now - TimeDelta::hours(12) + TimeDelta::seconds(10);
        cache.put(id, entry(started, now), cache.epoch());
        assert!(cache.get(&id, now).is_some());
        assert!(cache.get(&id, now + TimeDelta::seconds(10)).is_none());
    }

    #[test]
    fn a_cached_principal_is_not_served_once_its_recorded_activity_is_a_minute_old() {
        let cache = cache();
        let now = Utc::now();
        let id = Uuid::now_v7();
        cache.put(
            id,
            entry(now - TimeDelta::hours(1), now - TimeDelta::seconds(59)),
            cache.epoch(),
        );
        assert!(cache.get(&id, now).is_some());
        assert!(cache.get(&id, now + TimeDelta::seconds(1)).is_none());
    }

    #[test]
    fn ending_sessions_anywhere_makes_cached_principals_stale() {
        let feed = Feed::new();
        let cache = new_cache(feed.clone(), Duration::from_secs(120 * 60));
        let now = Utc::now();
        let id = Uuid::now_v7();
        cache.put(id, entry(now, now), cache.epoch());
        feed.publish(crate::live::Event::AccessChanged {
            user_id: Some(Uuid::now_v7()),
        });
        assert!(cache.get(&id, now).is_none());
    }
}
