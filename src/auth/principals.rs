//! Signed-in principals, cached per session.
//!
//! Every request needs its user's current role, active flag and campaigns;
//! reading them costs two queries. They are kept in an [`EpochCache`], so
//! any access change — through this instance or announced by another —
//! makes the user's next request read them again.

use std::time::Duration;

use uuid::Uuid;

use crate::db::Principal;
use crate::live::Feed;
use crate::live::cache::EpochCache;

/// How long a principal may be reused at most.
pub const TTL: Duration = Duration::from_secs(30);

/// Session id → principal.
pub type PrincipalCache = EpochCache<Uuid, Principal>;

pub fn new_cache(feed: Feed) -> PrincipalCache {
    EpochCache::new(feed, TTL)
}
