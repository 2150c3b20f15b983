//! A per-process cache of signed-in principals, kept exact by the change
//! feed.
//!
//! Every request needs its user's current role, active flag and campaigns.
//! Reading them costs two queries per request; instead the principal is kept
//! here, tagged with the feed's access epoch. Any access change (a role,
//! an activation, an assignment, a logout), whether committed through this
//! instance or announced by another one, bumps the epoch synchronously as it
//! is published, and every entry older than the epoch is ignored: the user's
//! next request reads the database again. Entries also expire after [`TTL`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::db::Principal;
use crate::live::Feed;

/// How long an entry may live at most.
pub const TTL: Duration = Duration::from_secs(30);
/// Beyond this many sessions the cache starts over (bounded memory).
const CAPACITY: usize = 10_000;

pub struct PrincipalCache {
    feed: Feed,
    entries: Mutex<HashMap<Uuid, (Principal, Instant, u64)>>,
}

impl PrincipalCache {
    pub fn new(feed: Feed) -> PrincipalCache {
        PrincipalCache {
            feed,
            entries: Mutex::default(),
        }
    }

    /// The cached principal of a session, if no access change happened since.
    pub fn get(&self, session_id: Uuid) -> Option<Principal> {
        let epoch = self.feed.access_epoch();
        let entries = self.entries.lock().ok()?;
        entries
            .get(&session_id)
            .filter(|(_, at, seen)| *seen == epoch && at.elapsed() < TTL)
            .map(|(p, _, _)| p.clone())
    }

    /// Keeps `principal`, read when the epoch was `epoch` (read the epoch
    /// *before* the database, so a change racing the read is not cached).
    pub fn put(&self, principal: &Principal, epoch: u64) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CAPACITY {
                entries.clear();
            }
            entries.insert(
                principal.session_id,
                (principal.clone(), Instant::now(), epoch),
            );
        }
    }

    pub fn epoch(&self) -> u64 {
        self.feed.access_epoch()
    }

    pub fn forget_session(&self, session_id: Uuid) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(&session_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Role, Scope};
    use crate::live::Event;

    fn principal(user: u128, session: u128) -> Principal {
        Principal {
            user_id: Uuid::from_u128(user),
            session_id: Uuid::from_u128(session),
            name: "Ana".into(),
            email: "ana@relevo.demo".into(),
            role: Role::Admin,
            scope: Scope::Campaigns(vec![]),
        }
    }

    #[test]
    fn an_access_change_makes_every_cached_principal_stale_at_once() {
        let feed = Feed::new();
        let cache = PrincipalCache::new(feed.clone());
        cache.put(&principal(1, 10), cache.epoch());
        assert!(cache.get(Uuid::from_u128(10)).is_some());
        feed.publish(Event::AccessChanged {
            user_id: Some(Uuid::from_u128(2)),
        });
        assert!(cache.get(Uuid::from_u128(10)).is_none());
    }

    #[test]
    fn a_principal_read_before_a_change_is_not_trusted_after_it() {
        let feed = Feed::new();
        let cache = PrincipalCache::new(feed.clone());
        let epoch = cache.epoch();
        feed.publish(Event::Resync);
        cache.put(&principal(1, 10), epoch);
        assert!(cache.get(Uuid::from_u128(10)).is_none());
    }
}
