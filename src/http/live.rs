//! One Server-Sent Events stream per Mensajes tab.
//!
//! A stream follows the changes its viewer's scope allows (routed to it by
//! campaign, see `live::router`) and the broadcast of events for everyone;
//! the scope is re-read only when an access change concerns the viewer, so a
//! campaign taken from an Administrador stops their events at once. A viewer
//! that falls behind, or any gap in the feed, gets `resync`; a session that
//! ended gets `expired` and the stream closes; while the database is out of
//! reach viewers get `offline`; when the instance shuts down they get
//! `reconnect` and the stream closes so the browser moves elsewhere.

use std::time::Duration;

use actix_web::web::Bytes;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{Interval, MissedTickBehavior};
use uuid::Uuid;

use crate::db::{Principal, Store};
use crate::domain::Scope;
use crate::live::Event;

/// How often an idle stream sends a comment, so dead connections are noticed
/// and proxies keep it open.
const KEEPALIVE: Duration = Duration::from_secs(15);

struct Viewer {
    store: Store,
    session_id: Uuid,
    user_id: Uuid,
    scope: Scope,
    changes: crate::live::fanout::Changes,
    rx: tokio::sync::broadcast::Receiver<(u64, Event)>,
    keepalive: Interval,
    greeted: bool,
    finished: bool,
}

fn frame(id: Option<u64>, event: &str, data: &str) -> Bytes {
    let mut text = String::with_capacity(data.len() + 48);
    if let Some(id) = id {
        text.push_str(&format!("id: {id}\n"));
    }
    text.push_str(&format!("event: {event}\ndata: {data}\n\n"));
    Bytes::from(text)
}

impl Viewer {
    /// The next frame to send, or `None` when the stream ends.
    async fn next_frame(&mut self) -> Option<Bytes> {
        if self.finished {
            return None;
        }
        if !self.greeted {
            self.greeted = true;
            // Tell the browser how soon to reconnect after a drop.
            return Some(Bytes::from_static(
                b"retry: 2000\nevent: hello\ndata: {}\n\n",
            ));
        }
        loop {
            tokio::select! {
                change = self.changes.recv() => match change {
                    // Routed by campaign; checked again, as a guard.
                    Some((id, change)) => {
                        if self.scope.allows(change.campaign_id) {
                            let data = serde_json::json!({
                                "id": change.conversation_id,
                                "version": change.version,
                            });
                            return Some(frame(Some(id), "change", &data.to_string()));
                        }
                    }
                    None => {
                        crate::telemetry::METRICS.events_lagged(1);
                        tracing::debug!("live viewer fell behind; asking it to resync");
                        return Some(frame(None, "resync", "{}"));
                    }
                },
                received = self.rx.recv() => match received {
                    // Changes arrive through `changes`, never here; directory
                    // changes are not broadcast (they concern cached views).
                    Ok((_, Event::Changed(_) | Event::DirectoryChanged)) => {}
                    Ok((id, Event::AccessChanged { user_id })) => {
                        if user_id.is_none_or(|u| u == self.user_id) {
                            match self.store.principal(self.session_id).await {
                                Ok(Some(principal)) => {
                                    let changed = principal.scope != self.scope;
                                    self.scope = principal.scope;
                                    if changed {
                                        self.changes.rescope(&self.scope);
                                        // What is visible changed: reload it.
                                        return Some(frame(Some(id), "resync", "{}"));
                                    }
                                }
                                Ok(None) => {
                                    self.finished = true;
                                    return Some(frame(Some(id), "expired", "{}"));
                                }
                                Err(e) => {
                                    tracing::warn!(error = ?e, "live stream could not re-read its scope");
                                    self.finished = true;
                                    return Some(frame(Some(id), "resync", "{}"));
                                }
                            }
                        }
                    }
                    Ok((id, Event::Resync)) => return Some(frame(Some(id), "resync", "{}")),
                    Ok((id, Event::Offline)) => return Some(frame(Some(id), "offline", "{}")),
                    Ok((id, Event::Shutdown)) => {
                        self.finished = true;
                        return Some(frame(Some(id), "reconnect", "{}"));
                    }
                    Err(RecvError::Lagged(missed)) => {
                        crate::telemetry::METRICS.events_lagged(missed);
                        tracing::debug!(missed, "live viewer fell behind; asking it to resync");
                        return Some(frame(None, "resync", "{}"));
                    }
                    Err(RecvError::Closed) => return None,
                },
                _ = self.keepalive.tick() => return Some(Bytes::from_static(b": keepalive\n\n")),
            }
        }
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        crate::telemetry::METRICS.stream_closed();
    }
}

/// The stream of frames for `principal`'s tab.
pub fn stream(
    store: Store,
    principal: &Principal,
) -> impl futures_util::Stream<Item = Result<Bytes, actix_web::Error>> + 'static {
    let mut keepalive = tokio::time::interval(KEEPALIVE);
    keepalive.set_missed_tick_behavior(MissedTickBehavior::Delay);
    keepalive.reset();
    crate::telemetry::METRICS.stream_opened();
    let viewer = Viewer {
        changes: store.feed().follow(&principal.scope),
        rx: store.feed().subscribe(),
        store,
        session_id: principal.session_id,
        user_id: principal.user_id,
        scope: principal.scope.clone(),
        keepalive,
        greeted: false,
        finished: false,
    };
    futures_util::stream::unfold(viewer, |mut viewer| async move {
        let frame = viewer.next_frame().await?;
        Some((Ok(frame), viewer))
    })
}
