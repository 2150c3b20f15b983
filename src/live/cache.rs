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
//!
//! Why these are not `moka` caches: an entry is valid only under the epoch
//! or stamp read *before* its load, and a new stamp must replace the entry
//! in the same step that decides to load (so concurrent misses share one
//! load). In moka the stamp would have to join the key, leaving every
//! superseded view to occupy capacity until its TTL while the admission
//! policy may refuse the new stamp's entry in favour of its own stale
//! predecessors; and its read path costs more on this workload: the hit path
//! (64 hot keys, 2 threads, release build) took 241–298 ns per read here
//! against 705–856 ns for `moka::sync::Cache` 0.12 (see BENCHMARKS.md,
//! "Libraries").

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

    /// The value under `key`, or `load`'s, remembered when it is `Some`
    /// (what does not exist yet may be created by another process, which
    /// announces nothing here).
    pub async fn get_or_load<E, F, Fut>(&self, key: K, load: F) -> Result<Option<V>, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Option<V>, E>>,
    {
        if let Some(value) = self.get(&key) {
            return Ok(Some(value));
        }
        let epoch = self.epoch();
        let found = load().await?;
        if let Some(value) = &found {
            self.put(key, value.clone(), epoch);
        }
        Ok(found)
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
/// the next request for a view it may affect reads the database again. An
/// entry is made under the stamp read *before* loading, so a view loaded
/// while a change was being published is stale at once. The TTL only
/// bounds what no event announces (someone editing the database by hand).
///
/// Loads are shared: requests for a view that is being loaded under the
/// same stamp wait for that load instead of running the same query again.
/// In a busy centre the stamp of an Administrador's campaigns moves many
/// times a second, and without sharing every one of the viewers that
/// missed at once ran the query (at 100 changes a second in the viewer's
/// campaigns, 6 % of views came from memory; see BENCHMARKS.md).
pub struct ViewCache<K, V> {
    feed: Feed,
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<K, ViewEntry<V>>>,
    hits: std::sync::atomic::AtomicU64,
    misses: std::sync::atomic::AtomicU64,
}

/// A view (loaded, or being loaded), the stamp read before loading it, and
/// when the entry was made.
struct ViewEntry<V> {
    value: std::sync::Arc<tokio::sync::OnceCell<std::sync::Arc<V>>>,
    stamp: u64,
    at: Instant,
}

impl<K: Eq + Hash + Clone, V> ViewCache<K, V> {
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

    /// The view under `key` (of `scope`): from memory if nothing it shows
    /// may have changed since it was loaded, from the load in flight under
    /// the current stamp if there is one, or from `load`.
    pub async fn get_or_load<E, F, Fut>(
        &self,
        key: &K,
        scope: &crate::domain::Scope,
        load: F,
    ) -> Result<std::sync::Arc<V>, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<V, E>>,
    {
        use std::sync::atomic::Ordering::Relaxed;
        let stamp = self.feed.view_stamp(scope);
        let cell = self.cell(key, stamp);
        if let Some(value) = cell.get() {
            self.hits.fetch_add(1, Relaxed);
            return Ok(value.clone());
        }
        let mut loaded = false;
        let value = cell
            .get_or_try_init(|| async {
                loaded = true;
                load().await.map(std::sync::Arc::new)
            })
            .await?;
        // A request that waited for another's load is served from memory.
        if loaded {
            self.misses.fetch_add(1, Relaxed);
        } else {
            self.hits.fetch_add(1, Relaxed);
        }
        Ok(value.clone())
    }

    /// The entry for `key` under `stamp`: the current one, or a new, empty
    /// one replacing a stale one.
    fn cell(
        &self,
        key: &K,
        stamp: u64,
    ) -> std::sync::Arc<tokio::sync::OnceCell<std::sync::Arc<V>>> {
        if self.capacity == 0 {
            // The cache is off (`RELEVO_VIEW_CACHE=0`): every request loads
            // its view, and nothing is kept or shared.
            return Default::default();
        }
        let Ok(mut entries) = self.entries.lock() else {
            // A poisoned lock: load without sharing.
            return Default::default();
        };
        if let Some(entry) = entries.get(key)
            && entry.stamp == stamp
            && entry.at.elapsed() < self.ttl
        {
            return entry.value.clone();
        }
        if entries.len() >= self.capacity {
            // Stale entries go first; if every entry is current, start over.
            let now = Instant::now();
            entries.retain(|_, e| now.duration_since(e.at) < self.ttl);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        let value: std::sync::Arc<tokio::sync::OnceCell<std::sync::Arc<V>>> = Default::default();
        entries.insert(
            key.clone(),
            ViewEntry {
                value: value.clone(),
                stamp,
                at: Instant::now(),
            },
        );
        value
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

    /// The view under `key`, and whether it had to be loaded.
    async fn view(
        cache: &ViewCache<u32, &'static str>,
        key: u32,
        scope: &Scope,
        value: &'static str,
    ) -> (&'static str, bool) {
        let mut loaded = false;
        let got = cache
            .get_or_load(&key, scope, || async {
                loaded = true;
                Ok::<_, ()>(value)
            })
            .await
            .unwrap();
        (*got, loaded)
    }

    #[tokio::test]
    async fn a_view_is_stale_after_a_change_of_its_campaigns_only() {
        let (feed, cache) = view_cache();
        let (mine, other) = (uuid::Uuid::from_u128(1), uuid::Uuid::from_u128(2));
        let scope = Scope::Campaigns(vec![mine]);
        assert_eq!(view(&cache, 1, &scope, "a").await, ("a", true));
        assert_eq!(view(&cache, 1, &scope, "b").await, ("a", false));
        feed.publish(change_of(other));
        assert_eq!(
            view(&cache, 1, &scope, "b").await,
            ("a", false),
            "another campaign"
        );
        feed.publish(change_of(mine));
        assert_eq!(view(&cache, 1, &scope, "b").await, ("b", true));
        assert_eq!(cache.counts(), (2, 2));
    }

    #[tokio::test]
    async fn every_change_makes_an_unscoped_view_stale() {
        let (feed, cache) = view_cache();
        view(&cache, 1, &Scope::All, "a").await;
        feed.publish(change_of(uuid::Uuid::from_u128(7)));
        assert_eq!(view(&cache, 1, &Scope::All, "b").await, ("b", true));
    }

    #[tokio::test]
    async fn directory_access_resync_and_outage_events_make_every_view_stale() {
        for event in [
            Event::DirectoryChanged,
            Event::AccessChanged { user_id: None },
            Event::Resync,
            Event::Offline,
        ] {
            let (feed, cache) = view_cache();
            let scope = Scope::Campaigns(vec![uuid::Uuid::from_u128(1)]);
            view(&cache, 1, &scope, "a").await;
            feed.publish(event);
            assert_eq!(view(&cache, 1, &scope, "b").await, ("b", true), "{event:?}");
        }
    }

    #[tokio::test]
    async fn a_view_loaded_while_its_campaign_changed_is_never_served() {
        let (feed, cache) = view_cache();
        let scope = Scope::Campaigns(vec![uuid::Uuid::from_u128(1)]);
        let during = cache
            .get_or_load(&1, &scope, || async {
                // The change is published while the view is being read.
                feed.publish(change_of(uuid::Uuid::from_u128(1)));
                Ok::<_, ()>("loaded during the change")
            })
            .await
            .unwrap();
        assert_eq!(*during, "loaded during the change");
        assert_eq!(view(&cache, 1, &scope, "after").await, ("after", true));
    }

    #[tokio::test]
    async fn requests_for_a_view_being_loaded_share_the_load() {
        let (_, cache) = view_cache();
        let cache = std::sync::Arc::new(cache);
        let loads = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let (release, wait) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let (cache, loads, mut wait) = (cache.clone(), loads.clone(), wait.clone());
            tasks.push(tokio::spawn(async move {
                *cache
                    .get_or_load(&1, &Scope::All, || async move {
                        loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let _ = wait.wait_for(|go| *go).await;
                        Ok::<_, ()>("v")
                    })
                    .await
                    .unwrap()
            }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        release.send(true).unwrap();
        for task in tasks {
            assert_eq!(task.await.unwrap(), "v");
        }
        assert_eq!(loads.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(cache.counts(), (9, 1));
    }

    #[tokio::test]
    async fn a_failed_load_is_not_kept() {
        let (_, cache) = view_cache();
        let failed = cache
            .get_or_load(&1, &Scope::All, || async {
                Err::<&str, _>("database down")
            })
            .await;
        assert_eq!(failed.unwrap_err(), "database down");
        assert_eq!(view(&cache, 1, &Scope::All, "v").await, ("v", true));
    }

    #[tokio::test]
    async fn a_view_cache_of_no_views_loads_every_view() {
        let cache = ViewCache::new(Feed::new(), Duration::from_secs(60), 0);
        assert_eq!(view(&cache, 1, &Scope::All, "a").await, ("a", true));
        assert_eq!(view(&cache, 1, &Scope::All, "b").await, ("b", true));
        assert!(cache.entries.lock().unwrap().is_empty());
        assert_eq!(cache.counts(), (0, 2));
    }

    #[tokio::test]
    async fn the_view_cache_stays_within_its_capacity() {
        let (_, cache) = view_cache();
        for key in 0..10 {
            view(&cache, key, &Scope::All, "v").await;
        }
        assert!(cache.entries.lock().unwrap().len() <= 4);
        assert_eq!(view(&cache, 9, &Scope::All, "w").await, ("v", false));
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
