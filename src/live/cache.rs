//! Caches kept exact by the change feed.
//!
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
    /// Follows the directory epoch (which also moves with access) rather
    /// than the access epoch alone.
    directory: bool,
    ttl: Duration,
    entries: Mutex<HashMap<K, (V, Instant, u64)>>,
}

impl<K: Eq + Hash, V: Clone> EpochCache<K, V> {
    pub fn new(feed: Feed, ttl: Duration) -> Self {
        EpochCache {
            feed,
            directory: false,
            ttl,
            entries: Mutex::default(),
        }
    }

    /// A cache of values that any administrative write may change (such as
    /// what a token authenticates), trusted only while the feed's directory
    /// epoch is unchanged.
    pub fn following_directory(feed: Feed, ttl: Duration) -> Self {
        EpochCache {
            directory: true,
            ..EpochCache::new(feed, ttl)
        }
    }

    /// The epoch to read before loading a value to `put`: a change racing
    /// the load then makes the stored value stale at once.
    pub fn epoch(&self) -> u64 {
        if self.directory {
            self.feed.directory_epoch()
        } else {
            self.feed.access_epoch()
        }
    }

    pub fn get(&self, key: &K) -> Option<V> {
        let epoch = self.epoch();
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

/// Mensajes views (a page and its status counts) as the database answered
/// them, keyed by scope, filters and cursor, and trusted only while the
/// feed's [view stamp](Feed::view_stamp) of the scope is unchanged.
///
/// Administrators keep the same few views open all day, and most of what
/// they reload has not changed: every change of a campaign, access change,
/// directory change, resync or outage, committed here or announced by
/// another instance, moves the stamp synchronously as it is published, so
/// the next request for a view it may affect reads the database again. A
/// view loaded while a change was being published is stored under the
/// stamp read *before* loading, so it is stale at once. The TTL only bounds
/// what no event announces (someone editing the database by hand).
///
/// Searches are not cached: their keys rarely repeat.
/// A cached view, when it was stored, and the stamp read before loading it.
type ViewEntry<V> = (std::sync::Arc<V>, Instant, u64);

pub struct ViewCache<K, V> {
    feed: Feed,
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<K, ViewEntry<V>>>,
    hits: std::sync::atomic::AtomicU64,
    misses: std::sync::atomic::AtomicU64,
}

impl<K: Eq + Hash, V> ViewCache<K, V> {
    pub fn new(feed: Feed, ttl: Duration, capacity: usize) -> Self {
        ViewCache {
            feed,
            ttl,
            capacity,
            entries: Mutex::default(),
            hits: Default::default(),
            misses: Default::default(),
        }
    }

    /// The stamp to read before loading a value of `scope` to `put`.
    pub fn stamp(&self, scope: &crate::domain::Scope) -> u64 {
        self.feed.view_stamp(scope)
    }

    /// The value stored under `key` if nothing it shows may have changed.
    pub fn get(&self, key: &K, scope: &crate::domain::Scope) -> Option<std::sync::Arc<V>> {
        use std::sync::atomic::Ordering::Relaxed;
        let stamp = self.feed.view_stamp(scope);
        let found = self.entries.lock().ok().and_then(|entries| {
            entries
                .get(key)
                .filter(|(_, at, seen)| *seen == stamp && at.elapsed() < self.ttl)
                .map(|(value, _, _)| value.clone())
        });
        match &found {
            Some(_) => self.hits.fetch_add(1, Relaxed),
            None => self.misses.fetch_add(1, Relaxed),
        };
        found
    }

    /// Stores `value`, loaded after reading `stamp`.
    pub fn put(&self, key: K, value: std::sync::Arc<V>, stamp: u64) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= self.capacity {
                // Stale entries go first; if every entry is current, start over.
                let now = Instant::now();
                entries.retain(|_, (_, at, _)| now.duration_since(*at) < self.ttl);
                if entries.len() >= self.capacity {
                    entries.clear();
                }
            }
            entries.insert(key, (value, Instant::now(), stamp));
        }
    }

    /// (hits, misses) since start, for `/metrics`.
    pub fn counts(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.hits.load(Relaxed), self.misses.load(Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Scope;
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

    fn view_cache() -> (Feed, ViewCache<u32, &'static str>) {
        let feed = Feed::new();
        let cache = ViewCache::new(feed.clone(), Duration::from_secs(60), 4);
        (feed, cache)
    }

    fn change_of(campaign: uuid::Uuid) -> Event {
        Event::Changed(crate::live::Change {
            conversation_id: uuid::Uuid::now_v7(),
            campaign_id: campaign,
            version: 2,
        })
    }

    #[test]
    fn a_view_is_stale_after_a_change_of_its_campaigns_only() {
        let (feed, cache) = view_cache();
        let (mine, other) = (uuid::Uuid::from_u128(1), uuid::Uuid::from_u128(2));
        let scope = Scope::Campaigns(vec![mine]);
        cache.put(1, "a".into(), cache.stamp(&scope));
        assert_eq!(cache.get(&1, &scope).as_deref(), Some(&"a"));
        feed.publish(change_of(other));
        assert_eq!(
            cache.get(&1, &scope).as_deref(),
            Some(&"a"),
            "another campaign"
        );
        feed.publish(change_of(mine));
        assert_eq!(cache.get(&1, &scope), None);
    }

    #[test]
    fn every_change_makes_an_unscoped_view_stale() {
        let (feed, cache) = view_cache();
        cache.put(1, "a".into(), cache.stamp(&Scope::All));
        feed.publish(change_of(uuid::Uuid::from_u128(7)));
        assert_eq!(cache.get(&1, &Scope::All), None);
    }

    #[test]
    fn directory_access_resync_and_outage_events_make_every_view_stale() {
        for event in [
            Event::DirectoryChanged,
            Event::AccessChanged { user_id: None },
            Event::Resync,
            Event::Offline,
        ] {
            let (feed, cache) = view_cache();
            let scope = Scope::Campaigns(vec![uuid::Uuid::from_u128(1)]);
            cache.put(1, "a".into(), cache.stamp(&scope));
            feed.publish(event);
            assert_eq!(cache.get(&1, &scope), None, "{event:?}");
        }
    }

    #[test]
    fn a_view_loaded_while_its_campaign_changed_is_never_served() {
        let (feed, cache) = view_cache();
        let scope = Scope::Campaigns(vec![uuid::Uuid::from_u128(1)]);
        let stamp = cache.stamp(&scope);
        feed.publish(change_of(uuid::Uuid::from_u128(1)));
        cache.put(1, "loaded during the change".into(), stamp);
        assert_eq!(cache.get(&1, &scope), None);
    }

    #[test]
    fn the_view_cache_stays_within_its_capacity() {
        let (_, cache) = view_cache();
        for key in 0..10 {
            cache.put(key, "v".into(), cache.stamp(&Scope::All));
        }
        assert!(cache.entries.lock().unwrap().len() <= 4);
        assert_eq!(cache.get(&9, &Scope::All).as_deref(), Some(&"v"));
    }

    #[test]
    fn a_directory_cache_forgets_at_any_administrative_write() {
        let feed = Feed::new();
        let cache = EpochCache::following_directory(feed.clone(), Duration::from_secs(60));
        cache.put(1, "token", cache.epoch());
        feed.publish(Event::DirectoryChanged);
        assert_eq!(cache.get(&1), None);
        cache.put(1, "token", cache.epoch());
        feed.publish(Event::AccessChanged { user_id: None });
        assert_eq!(cache.get(&1), None);
    }
}
