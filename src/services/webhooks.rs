//! Webhook deliveries: each switched-on webhook gets its campaign's events
//! of the types it subscribes to, in the log's order, as signed JSON POSTs.
//!
//! Every instance runs one dispatcher ([`spawn`]). When the event log
//! advances (or at least every [`POLL_EVERY`]) it looks for webhooks that
//! are behind and not waiting out a back-off, takes each one's lease, and
//! runs its deliveries in a task of its own: a page of events after the
//! webhook's cursor, one POST after another, then the cursor, the attempts
//! and the health in one transaction ([`Store::record_webhook_progress`]).
//!
//! Guarantees:
//! - **At least once.** The cursor is committed only after the batch's
//!   deliveries: a crash (even `kill -9`) delivers the batch again. A
//!   receiver drops repeats by `X-Relevo-Event-Id`.
//! - **In order.** One webhook's events go one at a time in cursor order,
//!   and a failed one is retried before any later one, so every
//!   conversation's events arrive in the order they happened.
//! - **One deliverer.** The lease (`webhooks.lease_owner`) keeps several
//!   PostgreSQL instances from delivering the same webhook at once; an
//!   instance that stalls past its lease loses it and cannot commit.
//! - **Bounded.** A request gets 10 s, no redirect is followed, no answer
//!   is read past 64 KiB; failures back off exponentially with jitter, and
//!   a webhook failing for 24 hours is switched off, with a notice on its
//!   page.

pub mod guard;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use uuid::Uuid;

use crate::config::WebhookAllow;
use crate::db::{EventRow, Store, Ts, WebhookAttempt, WebhookJob, WebhookProgress, WebhookState};
use crate::domain::webhook::{AfterFailure, after_failure, signature, subscribes};
use crate::services::events::{CursorError, check_cursor, next_cursor};

/// Renders an event as the JSON body of a delivery (the feed's shape; the
/// HTTP layer owns it, and the application passes it in).
pub type RenderEvent = fn(&EventRow) -> String;

/// Events read per batch (and committed together).
pub const BATCH: i64 = 100;
/// The dispatcher looks for work at least this often...
const POLL_EVERY: Duration = Duration::from_secs(1);
/// ...and at most this often: under a steady stream of events every commit
/// wakes it, and each pass costs a query and, per due webhook, a lease.
const MIN_PASS_INTERVAL: Duration = Duration::from_millis(100);
/// How long a lease lasts; renewed with every batch's progress. It is also
/// how long a crashed instance's webhooks wait before another takes them.
const LEASE: Duration = Duration::from_secs(30);
/// Progress is committed (and the lease renewed) at least this often
/// within a batch of slow deliveries: with one request's
/// [`REQUEST_TIMEOUT`] on top, well within [`LEASE`].
const COMMIT_EVERY: Duration = Duration::from_secs(10);
/// Batches one task runs before giving the webhook back (so a webhook that
/// never catches up does not hold a task and its lease forever).
const MAX_BATCHES_PER_RUN: usize = 50;
/// A delivery's whole request, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of an answer that is read.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// What the dispatcher and its delivery tasks share.
struct Deliverer {
    store: Store,
    client: reqwest::Client,
    allow: Arc<WebhookAllow>,
    render: RenderEvent,
    /// This instance's lease owner id.
    owner: Uuid,
    /// Webhooks this instance is delivering now.
    running: Mutex<HashSet<Uuid>>,
}

/// The HTTP client of deliveries: names resolved through the guard, no
/// redirect, no proxy from the environment, 10 s per request.
pub fn client(allow: Arc<WebhookAllow>) -> reqwest::Client {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(guard::GuardedResolver::new(allow)))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("Relevo-Webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the webhook client's settings are valid")
}

/// Starts this instance's dispatcher; it stops when the store closes.
pub fn spawn(store: Store, allow: WebhookAllow, render: RenderEvent) {
    let allow = Arc::new(allow);
    let deliverer = Arc::new(Deliverer {
        client: client(allow.clone()),
        store,
        allow,
        render,
        owner: Uuid::new_v4(),
        running: Mutex::new(HashSet::new()),
    });
    tokio::spawn(async move {
        let mut woken = deliverer.store.event_log_watch();
        loop {
            if deliverer.store.is_closed() {
                break;
            }
            woken.borrow_and_update();
            let pass = tokio::time::Instant::now();
            if let Err(e) = dispatch(&deliverer).await
                && !e.is_unavailable()
            {
                tracing::warn!(error = ?e, "looking for webhook deliveries failed");
            }
            let _ = tokio::time::timeout(POLL_EVERY, woken.changed()).await;
            tokio::time::sleep_until(pass + MIN_PASS_INTERVAL).await;
        }
    });
}

/// Leases every due webhook this instance is not already delivering and
/// starts its task.
async fn dispatch(deliverer: &Arc<Deliverer>) -> crate::db::StoreResult<()> {
    let now = Ts::now();
    for id in deliverer.store.due_webhooks(deliverer.owner, now).await? {
        if !deliverer.running.lock().expect("running set").insert(id) {
            continue;
        }
        let until = lease_until();
        let job = match deliverer
            .store
            .lease_webhook(id, deliverer.owner, now, until)
            .await
        {
            Ok(Some(job)) => job,
            Ok(None) => {
                deliverer.running.lock().expect("running set").remove(&id);
                continue;
            }
            Err(e) => {
                deliverer.running.lock().expect("running set").remove(&id);
                return Err(e);
            }
        };
        let task = deliverer.clone();
        tokio::spawn(async move {
            if let Err(e) = run(&task, job).await {
                tracing::warn!(webhook = %id, error = ?e, "delivering a webhook failed");
            }
            let _ = task.store.release_webhook(id, task.owner).await;
            task.running.lock().expect("running set").remove(&id);
        });
    }
    Ok(())
}

fn lease_until() -> Ts {
    Ts::new(Utc::now() + LEASE)
}

/// A number in 0..1 for the back-off's jitter.
fn jitter() -> f64 {
    (Uuid::new_v4().as_u128() as u64 >> 11) as f64 / (1u64 << 53) as f64
}

/// The failure streak a webhook carries from one attempt to the next.
struct Streak {
    failures: i32,
    since: Option<Ts>,
}

impl Streak {
    /// After a failed attempt with `error`: retry later, or switch off.
    fn failed(&mut self, error: String) -> WebhookState {
        self.failures = self.failures.saturating_add(1);
        let now = Utc::now();
        let since = self.since.map(|t| t.0).unwrap_or(now);
        self.since = Some(Ts::new(since));
        match after_failure(self.failures as u32, since, now, jitter()) {
            AfterFailure::RetryAt(at) => WebhookState::Failing {
                failures: self.failures,
                since: Ts::new(since),
                retry_at: Ts::new(at),
                error,
            },
            AfterFailure::SwitchOff => WebhookState::SwitchedOff { error },
        }
    }

    fn succeeded(&mut self) {
        self.failures = 0;
        self.since = None;
    }
}

/// Commits `progress`, renews the lease, and takes the webhook's settings
/// as they stand now into `job`, so a secret renewed or a URL or the event
/// types changed during a run apply from the next delivery on (the page
/// promises "Las entregas siguientes"). `false` if the lease was lost, or
/// the webhook was switched off meanwhile (by an administrator, or by this
/// progress after 24 hours of failures): the run stops.
async fn commit(
    deliverer: &Deliverer,
    job: &mut WebhookJob,
    progress: &WebhookProgress,
) -> crate::db::StoreResult<bool> {
    let Some(settings) = deliverer
        .store
        .record_webhook_progress(job.id, deliverer.owner, progress, Ts::now(), lease_until())
        .await?
    else {
        return Ok(false);
    };
    job.url = settings.url;
    job.event_types = settings.event_types;
    job.secret = settings.secret;
    Ok(settings.enabled)
}

/// Delivers a leased webhook's events, batch after batch, until it is
/// caught up, fails, loses its lease, is switched off or has run
/// [`MAX_BATCHES_PER_RUN`].
async fn run(deliverer: &Deliverer, mut job: WebhookJob) -> crate::db::StoreResult<()> {
    let mut cursor = job.cursor;
    let mut streak = Streak {
        failures: job.failures,
        since: job.failing_since,
    };
    for _ in 0..MAX_BATCHES_PER_RUN {
        let page = deliverer
            .store
            .event_page(job.campaign_id, Some(cursor), BATCH)
            .await?;
        let (progress, full) = match check_cursor(Some(cursor), &page) {
            Ok(()) => {
                let full = page.events.len() as i64 >= BATCH;
                match deliver_page(deliverer, &mut job, cursor, &page, &mut streak).await? {
                    Some(progress) => (progress, full),
                    None => return Ok(()),
                }
            }
            Err(CursorError::Expired { oldest_kept }) => (purged(cursor, oldest_kept), true),
            Err(CursorError::Future { high_water }) => {
                // Only after the database was restored from an older copy.
                tracing::warn!(webhook = %job.id, cursor, high_water, "webhook cursor is past the event log");
                return Ok(());
            }
        };
        let kept = commit(deliverer, &mut job, &progress).await?;
        if let WebhookState::SwitchedOff { .. } = progress.state {
            tracing::warn!(webhook = %job.id, "webhook switched off after failing for 24 hours");
        }
        if !kept || !matches!(progress.state, WebhookState::Healthy) || !full {
            return Ok(());
        }
        cursor = progress.cursor;
    }
    Ok(())
}

/// Going on from the oldest kept event when the webhook was off (or
/// failing) for longer than the log keeps events, with an attempt that
/// says what was lost.
fn purged(cursor: i64, oldest_kept: i64) -> WebhookProgress {
    WebhookProgress {
        cursor: oldest_kept - 1,
        attempts: vec![WebhookAttempt {
            id: Uuid::now_v7(),
            at: Ts::now(),
            event_id: oldest_kept - 1,
            event_type: "-".to_owned(),
            status_code: None,
            latency_ms: 0,
            error: Some(format!(
                "Los eventos {} a {} se eliminaron por la política de retención \
                 (RELEVO_EVENT_DAYS) antes de entregarse.",
                cursor + 1,
                oldest_kept - 1
            )),
        }],
        state: WebhookState::Healthy,
    }
}

/// Delivers the subscribed events of `page` (read after `cursor`) in
/// order, stopping at the first failure; commits along the way when the
/// deliveries are slow. Returns what is left to commit, or `None` if the
/// lease was lost or the webhook switched off at such a commit.
async fn deliver_page(
    deliverer: &Deliverer,
    job: &mut WebhookJob,
    cursor: i64,
    page: &crate::db::EventPage,
    streak: &mut Streak,
) -> crate::db::StoreResult<Option<WebhookProgress>> {
    let mut attempts = Vec::new();
    let mut done_through = cursor;
    let mut last_commit = Instant::now();
    for event in &page.events {
        if !subscribes(&job.event_types, event.kind.as_str()) {
            done_through = event.cursor;
            continue;
        }
        let attempt = deliver(deliverer, job, event).await;
        let error = attempt.error.clone();
        attempts.push(attempt);
        if let Some(error) = error {
            let state = streak.failed(error);
            return Ok(Some(WebhookProgress {
                cursor: done_through,
                attempts,
                state,
            }));
        }
        streak.succeeded();
        done_through = event.cursor;
        if last_commit.elapsed() >= COMMIT_EVERY {
            let progress = WebhookProgress {
                cursor: done_through,
                attempts: std::mem::take(&mut attempts),
                state: WebhookState::Healthy,
            };
            if !commit(deliverer, job, &progress).await? {
                return Ok(None);
            }
            last_commit = Instant::now();
        }
    }
    // All delivered: on to where the feed would go on (past the campaign's
    // quiet stretch of the log too).
    Ok(Some(WebhookProgress {
        cursor: next_cursor(cursor, page, BATCH),
        attempts,
        state: WebhookState::Healthy,
    }))
}

/// One signed POST of `event`, and how it went.
async fn deliver(deliverer: &Deliverer, job: &WebhookJob, event: &EventRow) -> WebhookAttempt {
    let at = Ts::now();
    let started = Instant::now();
    let outcome = post(deliverer, job, event).await;
    let latency_ms = started.elapsed().as_millis().min(i32::MAX as u128) as i32;
    let (status_code, error) = match outcome {
        Ok(status) => (Some(i32::from(status)), None),
        Err((status, error)) => (status.map(i32::from), Some(error)),
    };
    if let Some(error) = &error {
        tracing::info!(webhook = %job.id, event = event.cursor, status = ?status_code, latency_ms, error, "webhook delivery failed");
    } else {
        tracing::debug!(webhook = %job.id, event = event.cursor, status = ?status_code, latency_ms, "webhook delivered");
    }
    WebhookAttempt {
        id: Uuid::now_v7(),
        at,
        event_id: event.cursor,
        event_type: event.kind.as_str().to_owned(),
        status_code,
        latency_ms,
        error,
    }
}

/// Sends the request: `Ok(status)` for a 2xx answer, otherwise the status
/// (when one came) and a Spanish explanation.
async fn post(
    deliverer: &Deliverer,
    job: &WebhookJob,
    event: &EventRow,
) -> Result<u16, (Option<u16>, String)> {
    // Checked on every delivery: the list may have changed since the save.
    let url = guard::check_url(&deliverer.allow, &job.url).map_err(|r| (None, r.message()))?;
    let body = (deliverer.render)(event);
    let timestamp = Utc::now().timestamp();
    let sent = deliverer
        .client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-Relevo-Event-Id", event.cursor.to_string())
        .header("X-Relevo-Timestamp", timestamp.to_string())
        .header(
            "X-Relevo-Signature",
            signature(&job.secret, timestamp, body.as_bytes()),
        )
        .body(body)
        .send()
        .await;
    let mut response = sent.map_err(|e| (None, describe(&e)))?;
    let status = response.status();
    // Read (and drop) at most 64 KiB, so the connection can be reused
    // without a large or endless answer holding the delivery.
    let mut read = 0usize;
    while read <= MAX_ANSWER_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => read += chunk.len(),
            Ok(None) => break,
            Err(e) if status.is_success() => {
                tracing::debug!(error = %e, "reading a webhook answer failed");
                break;
            }
            Err(e) => return Err((Some(status.as_u16()), describe(&e))),
        }
    }
    if status.is_success() {
        Ok(status.as_u16())
    } else if status.is_redirection() {
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .unwrap_or("")
            .chars()
            .take(200)
            .collect::<String>();
        Err((
            Some(status.as_u16()),
            format!(
                "Respondió con una redirección {} a «{location}»: los webhooks no siguen \
                 redirecciones; usa la URL final.",
                status.as_u16()
            ),
        ))
    } else {
        Err((
            Some(status.as_u16()),
            format!("Respondió {status}: se espera un código 2xx."),
        ))
    }
}

/// A failed request, in Spanish, with the cause underneath.
fn describe(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut source = e.source();
    while let Some(inner) = source {
        if let Some(refused) = inner.downcast_ref::<guard::Refused>() {
            return refused.message();
        }
        source = inner.source();
    }
    let mut cause = String::new();
    let mut source = e.source();
    while let Some(inner) = source {
        cause = inner.to_string();
        source = inner.source();
    }
    let what = if e.is_timeout() {
        "Sin respuesta completa en 10 s".to_owned()
    } else if e.is_connect() {
        "No se pudo conectar".to_owned()
    } else {
        "La solicitud falló".to_owned()
    };
    if cause.is_empty() {
        what
    } else {
        format!("{what} ({cause})")
    }
}

#[cfg(test)]
mod tests {
    use crate::db::EventType;
    use crate::domain::webhook::EVENT_TYPES;

    #[test]
    fn the_form_offers_every_event_type_of_the_log() {
        let offered: Vec<&str> = EVENT_TYPES.iter().map(|(t, _)| *t).collect();
        let mut logged: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        let mut sorted = offered.clone();
        sorted.sort_unstable();
        logged.sort_unstable();
        assert_eq!(sorted, logged);
    }

    #[test]
    fn jitter_is_a_fraction() {
        for _ in 0..1000 {
            let j = super::jitter();
            assert!((0.0..1.0).contains(&j));
        }
    }
}
