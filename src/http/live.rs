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
//!
//! A session also ends by time (its lifetime, or its idle timeout, see
//! [`SessionPolicy`]) with no event announcing it. So the stream keeps the
//! moment its session would end by the recorded times and reads the session
//! again then: still open (other requests of the session recorded activity
//! meanwhile), it waits for the new moment; ended, the stream says `expired`
//! and closes. A stream is one long request, so it never counts as activity
//! itself: an open tab does not keep an abandoned session alive.

use std::pin::Pin;
use std::time::Duration;

use actix_web::web::Bytes;
use chrono::Utc;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{Instant, Interval, MissedTickBehavior, Sleep};
use uuid::Uuid;

use crate::db::{Principal, SessionRecord, Store};
use crate::domain::Scope;
use crate::live::Event;
use crate::services::auth::sessions::SessionPolicy;

/// How often an idle stream sends a comment, so dead connections are noticed
/// and proxies keep it open.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// How soon the session is read again when reading it failed.
const SESSION_RETRY: Duration = Duration::from_secs(30);

/// Past the moment a session ends by its recorded times, before it is read
/// again: the policy's comparisons are strict, so the read must come after.
const SESSION_END_SLACK: Duration = Duration::from_millis(250);

struct Viewer {
    store: Store,
    policy: SessionPolicy,
    session_id: Uuid,
    user_id: Uuid,
    scope: Scope,
    changes: crate::live::fanout::Changes,
    rx: tokio::sync::broadcast::Receiver<(u64, Event)>,
    keepalive: Interval,
    /// When the session would end by its recorded times; read again then.
    session_ends: Pin<Box<Sleep>>,
    greeted: bool,
    finished: bool,
}

/// A session as the stream judges it.
enum Session {
    /// Open, with its principal, until about `ends_in` from now unless more
    /// activity is recorded.
    Open(Principal, Duration),
    /// Expired, closed, or its user may no longer use the console.
    Ended,
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
    /// Reads the session and judges it by the policy, as a request would.
    async fn judge_session(&self) -> crate::db::StoreResult<Session> {
        let now = Utc::now();
        Ok(match self.store.session_record(self.session_id).await? {
            Some(SessionRecord {
                principal: Some(principal),
                created_at,
                last_seen_at,
                ..
            }) if self.policy.is_open(created_at, last_seen_at, now) => {
                let ends =
                    (created_at.0 + self.policy.lifetime).min(last_seen_at.0 + self.policy.idle);
                let ends_in = (ends - now).to_std().unwrap_or_default();
                Session::Open(principal, ends_in)
            }
            _ => Session::Ended,
        })
    }

    /// Reads the session again when it would have ended: `Some(frame)` to
    /// send (`expired`), or `None` while it stays open.
    async fn recheck_session(&mut self) -> Option<Bytes> {
        match self.judge_session().await {
            Ok(Session::Open(_, ends_in)) => {
                self.recheck_after(ends_in + SESSION_END_SLACK);
                None
            }
            Ok(Session::Ended) => {
                self.finished = true;
                Some(frame(None, "expired", "{}"))
            }
            Err(e) => {
                tracing::warn!(error = ?e, "live stream could not read its session again");
                self.recheck_after(SESSION_RETRY);
                None
            }
        }
    }

    /// Reads the session again `after` from now.
    fn recheck_after(&mut self, after: Duration) {
        self.session_ends.as_mut().reset(Instant::now() + after);
    }

    /// After an access change concerning this viewer (event `id`): the
    /// frame to send when what the viewer may see changed (`resync`) or
    /// the session ended (`expired`), or `None`.
    async fn access_changed(&mut self, id: u64) -> Option<Bytes> {
        match self.judge_session().await {
            Ok(Session::Open(principal, ends_in)) => {
                self.recheck_after(ends_in + SESSION_END_SLACK);
                let changed = principal.scope != self.scope;
                self.scope = principal.scope;
                // What is visible changed: reload it.
                changed.then(|| {
                    self.changes.rescope(&self.scope);
                    frame(Some(id), "resync", "{}")
                })
            }
            Ok(Session::Ended) => {
                self.finished = true;
                Some(frame(Some(id), "expired", "{}"))
            }
            Err(e) => {
                tracing::warn!(error = ?e, "live stream could not re-read its scope");
                self.finished = true;
                Some(frame(Some(id), "resync", "{}"))
            }
        }
    }

    /// The next frame to send, or `None` when the stream ends.
    async fn next_frame(&mut self) -> Option<Bytes> {
        if self.finished {
            return None;
        }
        if !self.greeted {
            self.greeted = true;
            if let Some(expired) = self.recheck_session().await {
                return Some(expired);
            }
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
                        if user_id.is_none_or(|u| u == self.user_id)
                            && let Some(frame) = self.access_changed(id).await
                        {
                            return Some(frame);
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
                () = &mut self.session_ends => {
                    if let Some(expired) = self.recheck_session().await {
                        return Some(expired);
                    }
                }
            }
        }
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        crate::telemetry::METRICS.stream_closed();
    }
}

/// The stream of frames for `principal`'s tab, whose session is held to
/// `policy`.
pub fn stream(
    store: Store,
    policy: SessionPolicy,
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
        policy,
        // Set when the stream greets, from the session's recorded times.
        session_ends: Box::pin(tokio::time::sleep(SESSION_RETRY)),
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
