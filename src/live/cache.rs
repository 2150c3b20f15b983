//! [`EpochCache`]: values derived from who may see what, trusted only while
//! the feed's access epoch is unchanged.
//!
//! Any access change (a role, an activation, an assignment, a campaign's
//! active flag, a logout), whether committed through this instance or
//! announced by another one, bumps the epoch synchronously as it is
//! published; every entry stored under an older epoch is ignored, so the
//! next request reads the database again. Entries also expire after a TTL
//! (what is not an access change, such as a rename, shows within it).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Feed;

/// Beyond this many entries the cache starts over (bounded memory).
const CAPACITY: usize = 10_000;

pub struct EpochCache<K, V> {
    feed: Feed,
    ttl: Duration,
    entries: Mutex<HashMap<K, (V, Instant, u64)>>,
}

impl<K: Eq + Hash, V: Clone> EpochCache<K, V> {
    pub fn new(feed: Feed, ttl: Duration) -> Self {
        EpochCache {
            feed,
            ttl,
            entries: Mutex::default(),
        }
    }

    /// The epoch to read before loading a value to `put`: a change racing
    /// the load then makes the stored value stale at once.
    pub fn epoch(&self) -> u64 {
        self.feed.access_epoch()
    }

    pub fn get(&self, key: &K) -> Option<V> {
        let epoch = self.feed.access_epoch();
        let entries = self.entries.lock().ok()?;
        entries
            .get(key)
            .filter(|(_, at, seen)| *seen == epoch && at.elapsed() < self.ttl)
            .map(|(value, _, _)| value.clone())
    }

    pub fn put(&self, key: K, value: V, epoch: u64) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CAPACITY {
                entries.clear();
            }
            entries.insert(key, (value, Instant::now(), epoch));
        }
    }

    pub fn remove(&self, key: &K) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::Event;

    #[test]
    fn an_access_change_makes_every_entry_stale_at_once() {
        let feed = Feed::new();
        let cache = EpochCache::new(feed.clone(), Duration::from_secs(60));
        cache.put(1, "a", cache.epoch());
        assert_eq!(cache.get(&1), Some("a"));
        feed.publish(Event::AccessChanged { user_id: None });
        assert_eq!(cache.get(&1), None);
    }

    #[test]
    fn a_value_loaded_before_a_change_is_not_trusted_after_it() {
        let feed = Feed::new();
        let cache = EpochCache::new(feed.clone(), Duration::from_secs(60));
        let epoch = cache.epoch();
        feed.publish(Event::Resync);
        cache.put(1, "a", epoch);
        assert_eq!(cache.get(&1), None);
    }

    #[test]
    fn entries_expire() {
        let cache = EpochCache::new(Feed::new(), Duration::ZERO);
        cache.put(1, "a", cache.epoch());
        assert_eq!(cache.get(&1), None);
    }
}
