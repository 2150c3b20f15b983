//! Routing changes to the live viewers that may see them.
//!
//! A change concerns one campaign, and an Administrador sees a few of the
//! fifty. Broadcasting every change to every stream woke all of them for each
//! commit, only for most to find it outside their scope: with 1,000 open tabs
//! and 200 transitions a second that was 200,000 wake-ups a second, and on
//! the 2-core machine the last tab heard of a change hundreds of
//! milliseconds late. The router keeps each viewer under the campaigns its
//! scope allows (Super Administradores under "everything"), so a change
//! wakes exactly the streams that show it.
//!
//! Publishing never waits: each viewer has a bounded queue, and a viewer
//! whose queue is full is marked as lagging and told to resynchronise
//! (reload what it shows) instead of slowing writers down.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use uuid::Uuid;

use super::Change;
use crate::domain::Scope;

/// Changes queued per viewer before it must resynchronise.
const QUEUE: usize = 512;

struct Route {
    viewer: u64,
    tx: mpsc::Sender<(u64, Change)>,
    lagged: Arc<AtomicBool>,
}

#[derive(Default)]
struct Routes {
    next_viewer: u64,
    by_campaign: HashMap<Uuid, Vec<Route>>,
    everything: Vec<Route>,
    /// Each viewer's scope, to find its routes again.
    scopes: HashMap<u64, Scope>,
}

impl Routes {
    fn add(
        &mut self,
        viewer: u64,
        scope: &Scope,
        tx: &mpsc::Sender<(u64, Change)>,
        lagged: &Arc<AtomicBool>,
    ) {
        let route = || Route {
            viewer,
            tx: tx.clone(),
            lagged: lagged.clone(),
        };
        match scope {
            Scope::All => self.everything.push(route()),
            Scope::Campaigns(ids) => {
                for id in ids {
                    self.by_campaign.entry(*id).or_default().push(route());
                }
            }
        }
        self.scopes.insert(viewer, scope.clone());
    }

    fn remove(&mut self, viewer: u64) {
        match self.scopes.remove(&viewer) {
            Some(Scope::All) => self.everything.retain(|r| r.viewer != viewer),
            Some(Scope::Campaigns(ids)) => {
                for id in ids {
                    if let Some(routes) = self.by_campaign.get_mut(&id) {
                        routes.retain(|r| r.viewer != viewer);
                        if routes.is_empty() {
                            self.by_campaign.remove(&id);
                        }
                    }
                }
            }
            None => {}
        }
    }
}

/// The viewers of one instance, by campaign. Clones share the same table.
#[derive(Clone, Default)]
pub struct Router {
    routes: Arc<Mutex<Routes>>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router").finish_non_exhaustive()
    }
}

impl Router {
    fn routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        // A panic while holding the lock leaves the table consistent (every
        // method finishes its edits before anything can panic), so a
        // poisoned lock is still usable.
        self.routes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `change` (with its feed sequence number `id`) for every viewer
    /// whose scope allows its campaign.
    pub fn route(&self, id: u64, change: Change) {
        let routes = self.routes();
        let of_campaign = routes.by_campaign.get(&change.campaign_id);
        for route in of_campaign.into_iter().flatten().chain(&routes.everything) {
            if let Err(mpsc::error::TrySendError::Full(_)) = route.tx.try_send((id, change)) {
                route.lagged.store(true, Ordering::Release);
            }
        }
    }

    /// Registers a viewer with `scope`; it receives changes until the
    /// returned [`Changes`] is dropped.
    pub fn join(&self, scope: &Scope) -> Changes {
        let (tx, rx) = mpsc::channel(QUEUE);
        let lagged = Arc::new(AtomicBool::new(false));
        let viewer = {
            let mut routes = self.routes();
            routes.next_viewer += 1;
            let viewer = routes.next_viewer;
            routes.add(viewer, scope, &tx, &lagged);
            viewer
        };
        Changes {
            router: self.clone(),
            viewer,
            tx,
            rx,
            lagged,
        }
    }

    /// How many viewers are registered (for tests and metrics).
    pub fn viewers(&self) -> usize {
        self.routes().scopes.len()
    }
}

/// One viewer's queue of changes within its scope.
pub struct Changes {
    router: Router,
    viewer: u64,
    tx: mpsc::Sender<(u64, Change)>,
    rx: mpsc::Receiver<(u64, Change)>,
    lagged: Arc<AtomicBool>,
}

impl Changes {
    /// The next change, or `None` if changes were dropped because this
    /// viewer fell behind (the queue is emptied: the viewer must reload).
    pub async fn recv(&mut self) -> Option<(u64, Change)> {
        if self.lagged.swap(false, Ordering::AcqRel) {
            while self.rx.try_recv().is_ok() {}
            return None;
        }
        // The router holds a sender while this viewer is registered, and
        // this struct holds one too, so the queue never closes under us.
        let received = self.rx.recv().await;
        if self.lagged.swap(false, Ordering::AcqRel) {
            while self.rx.try_recv().is_ok() {}
            return None;
        }
        received
    }

    /// Follows the viewer's new scope from now on.
    pub fn rescope(&mut self, scope: &Scope) {
        let mut routes = self.router.routes();
        routes.remove(self.viewer);
        routes.add(self.viewer, scope, &self.tx, &self.lagged);
    }
}

impl Drop for Changes {
    fn drop(&mut self) {
        self.router.routes().remove(self.viewer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(campaign: Uuid) -> Change {
        Change {
            conversation_id: Uuid::now_v7(),
            campaign_id: campaign,
            version: 1,
        }
    }

    #[tokio::test]
    async fn a_change_reaches_only_the_viewers_of_its_campaign() {
        let router = Router::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let mut of_a = router.join(&Scope::Campaigns(vec![a]));
        let mut of_b = router.join(&Scope::Campaigns(vec![b]));
        let mut of_all = router.join(&Scope::All);
        let sent = change(a);
        router.route(7, sent);
        assert_eq!(of_a.recv().await, Some((7, sent)));
        assert_eq!(of_all.recv().await, Some((7, sent)));
        assert!(of_b.rx.try_recv().is_err(), "b's viewer must not hear of a");
    }

    #[tokio::test]
    async fn a_rescoped_viewer_follows_its_new_campaigns_only() {
        let router = Router::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let mut viewer = router.join(&Scope::Campaigns(vec![a]));
        viewer.rescope(&Scope::Campaigns(vec![b]));
        router.route(1, change(a));
        let of_b = change(b);
        router.route(2, of_b);
        assert_eq!(viewer.recv().await, Some((2, of_b)));
    }

    #[tokio::test]
    async fn a_viewer_that_falls_behind_is_told_to_reload_and_then_continues() {
        let router = Router::default();
        let a = Uuid::now_v7();
        let mut viewer = router.join(&Scope::Campaigns(vec![a]));
        for i in 0..(QUEUE as u64 + 10) {
            router.route(i, change(a));
        }
        assert_eq!(viewer.recv().await, None, "lag reported first");
        let next = change(a);
        router.route(10_000, next);
        assert_eq!(viewer.recv().await, Some((10_000, next)));
    }

    #[test]
    fn a_dropped_viewer_leaves_no_route() {
        let router = Router::default();
        let a = Uuid::now_v7();
        let viewer = router.join(&Scope::Campaigns(vec![a, Uuid::now_v7()]));
        let super_viewer = router.join(&Scope::All);
        assert_eq!(router.viewers(), 2);
        drop(viewer);
        drop(super_viewer);
        assert_eq!(router.viewers(), 0);
        let routes = router.routes();
        assert!(routes.by_campaign.is_empty() && routes.everything.is_empty());
    }
}
