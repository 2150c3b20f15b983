//! What every request shares: the Store, settings it reads, and every cache
//! the handlers keep. It sits below `http` (every handler takes it) and
//! holds data, not route logic: the handlers that use a cache own the code
//! that fills it.

use std::sync::Mutex;

use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::db::{
    CampaignOption, ChannelToken, Cursor, IntegrationToken, ListFilter, PersonOption, Store,
    ViewCounts,
};
use crate::domain::{CategoryRef, Scope, SubcategoryRef};
use crate::live::cache::EpochCache;

/// Shared by every request.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub timezone: chrono_tz::Tz,
    /// Message texts are kept this many days (`RELEVO_TRANSCRIPT_DAYS`).
    pub transcript_days: u32,
    pub metrics: crate::config::MetricsAccess,
    /// Whose forwarding headers name the client (see `auth::client_addr`).
    pub trusted_proxies: crate::config::TrustedProxies,
    /// `RELEVO_WEBHOOK_ALLOW`: where a webhook may be saved to deliver.
    pub webhook_allow: std::sync::Arc<crate::config::WebhookAllow>,
    /// Password verifications run by logins (for `/metrics`).
    pub password_checks: std::sync::Arc<crate::services::auth::password::VerifyCounter>,
    /// Signed-in principals, invalidated by the change feed.
    pub principals: std::sync::Arc<crate::services::auth::principals::PrincipalCache>,
    /// The Mensajes filter options (campaigns, agents) per scope.
    pub filter_options:
        std::sync::Arc<crate::live::cache::EpochCache<crate::domain::Scope, FilterChoices>>,
    /// Mensajes views (page and counts) per scope, filters and cursor.
    pub views: std::sync::Arc<ViewCache>,
    /// What API tokens authenticate, by token hash (see `http::api`).
    pub tokens: std::sync::Arc<TokenCache>,
    /// Closure categories named by Cancelar forms (see `http::actions`).
    pub closure_refs: std::sync::Arc<ClosureRefs>,
    /// Bulk job creators' current access, checked before each item.
    pub bulk_access: std::sync::Arc<crate::services::bulk::CreatorAccess>,
    /// The CSV exports running (see `http::export`).
    pub exports: std::sync::Arc<ExportSlots>,
    /// How Mensajes results were sent (for `/metrics`).
    pub results_sent: std::sync::Arc<ResultsSent>,
    /// How often an open Mensajes tab asks for its counts again.
    pub counts_refresh: std::time::Duration,
}

/// Mensajes results sent from the bytes kept with their view, and those
/// rendered for their request (a view's first request, a search, or a
/// request with a notice); and kept results compressed again, smaller,
/// once their view was asked again (see `crate::compression`).
#[derive(Default)]
pub struct ResultsSent {
    pub kept: std::sync::atomic::AtomicU64,
    pub rendered: std::sync::atomic::AtomicU64,
    pub recompressed: std::sync::atomic::AtomicU64,
}

impl ResultsSent {
    /// The counts since start.
    pub fn counts(&self) -> crate::telemetry::ResultsSentCounts {
        use std::sync::atomic::Ordering::Relaxed;
        crate::telemetry::ResultsSentCounts {
            kept: self.kept.load(Relaxed),
            rendered: self.rendered.load(Relaxed),
            recompressed: self.recompressed.load(Relaxed),
        }
    }
}

/// The campaigns and agents a scope may filter by.
#[derive(Debug, Clone)]
pub struct FilterChoices {
    pub campaigns: Vec<CampaignOption>,
    pub agents: Vec<PersonOption>,
    /// Each campaign's minutes without activity after which an open
    /// conversation is stuck (kept here: an edit is an administrative
    /// write, which reloads the choices).
    pub stale_thresholds: Vec<(Uuid, i64)>,
}

/// A Mensajes view as the database answered it (the page and the counts),
/// and its results as the first request rendered them.
pub struct View {
    pub answer: ViewCounts,
    /// The results fragment and the filter query string it was rendered for
    /// (its links repeat the query), compressed. Rendered at the
    /// view's first request: a kept view lives at most [`VIEW_TTL`], so its
    /// relative times ("hace 5 min") are at most that old (the browser's
    /// script refreshes them anyway).
    pub results: std::sync::OnceLock<(String, std::sync::Arc<crate::compression::Kept>)>,
}

impl From<ViewCounts> for View {
    fn from(answer: ViewCounts) -> View {
        View {
            answer,
            results: std::sync::OnceLock::new(),
        }
    }
}

/// Cached Mensajes views, by scope, filters and cursor.
pub type ViewCache = crate::live::cache::ViewCache<(Scope, ListFilter, Option<Cursor>), View>;

/// Longest a cached view is trusted without any event (see
/// [`crate::live::cache::ViewCache`]).
pub const VIEW_TTL: std::time::Duration = std::time::Duration::from_secs(10);

/// What API tokens authenticate, by the token's hash, so that a busy channel
/// is not looked up in the database on every message. Only tokens that
/// authenticate are kept, with their campaign's active flag, and only until
/// the next administrative write on any instance (a rotation, a revocation,
/// a deactivated channel or campaign: see `EpochCache::following_directory`)
/// or a minute without any. A campaign's deactivation (or reactivation)
/// moves the epoch synchronously as it is published, so its tokens are
/// refused (or accepted) from the next call on.
pub struct TokenCache {
    pub(crate) channels: EpochCache<String, ChannelToken>,
    pub(crate) integrations: EpochCache<String, IntegrationToken>,
}

impl TokenCache {
    pub fn new(feed: &crate::live::Feed) -> TokenCache {
        let ttl = std::time::Duration::from_secs(60);
        TokenCache {
            channels: EpochCache::following_directory(feed.clone(), ttl),
            integrations: EpochCache::following_directory(feed.clone(), ttl),
        }
    }
}

/// The closure categories and sub-categories forms name, by id, so that a
/// confirmation does not look its category up again: kept only while no
/// administrative write (a deactivation, a move) has happened on any
/// instance (see `EpochCache::following_directory`), or a minute.
pub struct ClosureRefs {
    pub(crate) categories: EpochCache<Uuid, CategoryRef>,
    pub(crate) subcategories: EpochCache<Uuid, SubcategoryRef>,
}

impl ClosureRefs {
    pub fn new(feed: &crate::live::Feed) -> ClosureRefs {
        let ttl = std::time::Duration::from_secs(60);
        ClosureRefs {
            categories: EpochCache::following_directory(feed.clone(), ttl),
            subcategories: EpochCache::following_directory(feed.clone(), ttl),
        }
    }
}

/// Exports reading the database at once. One: an export's read is short and
/// the others wait for their turn, so exports never hold more than one
/// pooled connection, whatever the pool's size (SQLite's read pool has four
/// on a two-core machine; four exports reading together would take it all).
pub const READS_AT_ONCE: usize = 1;

/// The exports running on this instance, for the limits above.
pub struct ExportSlots {
    pub(crate) running: Mutex<ExportsRunning>,
    /// Turns to read the database (see [`READS_AT_ONCE`]).
    pub(crate) reads: Semaphore,
}

#[derive(Default)]
pub struct ExportsRunning {
    pub(crate) total: usize,
    pub(crate) per_person: std::collections::HashMap<Uuid, usize>,
}

impl Default for ExportSlots {
    fn default() -> Self {
        ExportSlots {
            running: Mutex::default(),
            reads: Semaphore::new(READS_AT_ONCE),
        }
    }
}
