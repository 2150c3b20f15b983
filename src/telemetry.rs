//! Logs and metrics.
//!
//! Logs: `RUST_LOG` filters (default `info`); `RELEVO_LOG_FORMAT=json` writes
//! one JSON object per line. Every request runs in a span carrying its id
//! (also returned as `X-Request-Id`), the client address (through trusted
//! proxies, see `auth::client_addr`), method and route *pattern* — never the
//! concrete path or query, which may hold names, phones or searches.
//!
//! Metrics: a small process-wide registry rendered in the Prometheus text
//! format at `/metrics` (see `routes::pages::metrics`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{Error, HttpMessage};
use tracing_actix_web::RequestId;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; a second call is a no-op (tests).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("RELEVO_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    } else {
        builder.try_init()
    };
}

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (bucket, bound) in self.counts.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }
}

/// The process-wide counters.
#[derive(Default)]
pub struct Metrics {
    /// (route, method, status) → latency histogram.
    requests: Mutex<BTreeMap<(String, String, u16), Histogram>>,
    /// Transition kind → count.
    transitions: Mutex<BTreeMap<&'static str, u64>>,
    open_streams: AtomicI64,
    lagged_events: AtomicU64,
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::default);

impl Metrics {
    pub fn transition_applied(&self, kind: &'static str) {
        if let Ok(mut map) = self.transitions.lock() {
            *map.entry(kind).or_default() += 1;
        }
    }

    pub fn stream_opened(&self) {
        self.open_streams.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stream_closed(&self) {
        self.open_streams.fetch_sub(1, Ordering::Relaxed);
    }

    /// A live viewer missed `n` events and was told to resync.
    pub fn events_lagged(&self, n: u64) {
        self.lagged_events.fetch_add(n, Ordering::Relaxed);
    }

    fn request(&self, route: String, method: String, status: u16, seconds: f64) {
        if let Ok(mut map) = self.requests.lock() {
            map.entry((route, method, status))
                .or_default()
                .observe(seconds);
        }
    }

    /// The Prometheus text exposition, with `pools` as (name, size, idle).
    pub fn render(&self, pools: &[(&str, u32, usize)]) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP relevo_http_requests_total Requests by route pattern, method and status.\n",
        );
        out.push_str("# TYPE relevo_http_requests_total counter\n");
        let requests = self.requests.lock().map(|m| m.clone()).unwrap_or_default();
        for ((route, method, status), h) in &requests {
            let _ = writeln!(
                out,
                "relevo_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {}",
                escape(route),
                h.count
            );
        }
        out.push_str("# HELP relevo_http_request_duration_seconds Request latency by route pattern, method and status.\n");
        out.push_str("# TYPE relevo_http_request_duration_seconds histogram\n");
        for ((route, method, status), h) in &requests {
            let labels = format!(
                "route=\"{}\",method=\"{method}\",status=\"{status}\"",
                escape(route)
            );
            for (bound, count) in BUCKETS.iter().zip(h.counts) {
                let _ = writeln!(
                    out,
                    "relevo_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "relevo_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "relevo_http_request_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "relevo_http_request_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
        out.push_str(
            "# HELP relevo_transitions_total Conversation transitions applied, by kind.\n",
        );
        out.push_str("# TYPE relevo_transitions_total counter\n");
        let transitions = self
            .transitions
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default();
        for (kind, count) in transitions {
            let _ = writeln!(out, "relevo_transitions_total{{kind=\"{kind}\"}} {count}");
        }
        out.push_str("# HELP relevo_live_streams Open live (SSE) streams.\n");
        out.push_str("# TYPE relevo_live_streams gauge\n");
        let _ = writeln!(
            out,
            "relevo_live_streams {}",
            self.open_streams.load(Ordering::Relaxed)
        );
        out.push_str("# HELP relevo_live_lagged_events_total Events live viewers missed (each followed by a resync).\n");
        out.push_str("# TYPE relevo_live_lagged_events_total counter\n");
        let _ = writeln!(
            out,
            "relevo_live_lagged_events_total {}",
            self.lagged_events.load(Ordering::Relaxed)
        );
        out.push_str("# HELP relevo_db_pool_connections Database pool connections.\n");
        out.push_str("# TYPE relevo_db_pool_connections gauge\n");
        for (name, size, idle) in pools {
            let _ = writeln!(
                out,
                "relevo_db_pool_connections{{pool=\"{name}\",state=\"open\"}} {size}"
            );
            let _ = writeln!(
                out,
                "relevo_db_pool_connections{{pool=\"{name}\",state=\"idle\"}} {idle}"
            );
        }
        out
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Requests of this process in flight, from the handler's start until the
/// response's body has been sent (or dropped): a download still streaming
/// is being handled. A graceful stop waits for them.
static HANDLING: AtomicUsize = AtomicUsize::new(0);

/// How many requests are being handled right now.
pub fn requests_being_handled() -> usize {
    HANDLING.load(Ordering::SeqCst)
}

/// One request counted in [`HANDLING`] until dropped, even if its future is.
struct Handling;

impl Handling {
    fn enter() -> Handling {
        HANDLING.fetch_add(1, Ordering::SeqCst);
        Handling
    }
}

impl Drop for Handling {
    fn drop(&mut self) {
        HANDLING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body that keeps its request counted in [`HANDLING`] until it
/// has been sent or dropped.
struct InFlight {
    body: BoxBody,
    _handling: Handling,
}

impl MessageBody for InFlight {
    type Error = <BoxBody as MessageBody>::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}

/// Middleware: counts and times every request by route pattern, logs one
/// line per request (inside the request span), returns the request id, and
/// keeps the request in flight until its body has been sent.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let handling = Handling::enter();
    let started = Instant::now();
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().to_string();
    let request_id = req.extensions().get::<RequestId>().map(ToString::to_string);
    let mut res = next.call(req).await?;
    let status = res.status().as_u16();
    let seconds = started.elapsed().as_secs_f64();
    METRICS.request(route.clone(), method.clone(), status, seconds);
    tracing::info!(%method, %route, status, millis = seconds * 1000.0, "request");
    if let Some(id) = request_id.and_then(|id| HeaderValue::from_str(&id).ok()) {
        res.headers_mut()
            .insert(HeaderName::from_static("x-request-id"), id);
    }
    Ok(res.map_body(move |_, body| InFlight {
        body: body.boxed(),
        _handling: handling,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_histograms_and_gauges() {
        let metrics = Metrics::default();
        metrics.request("/mensajes".into(), "GET".into(), 200, 0.003);
        metrics.transition_applied("cancelled");
        metrics.stream_opened();
        let text = metrics.render(&[("sqlite_read", 2, 1)]);
        assert!(text.contains(
            "relevo_http_request_duration_seconds_bucket{route=\"/mensajes\",method=\"GET\",status=\"200\",le=\"0.005\"} 1"
        ));
        assert!(text.contains("relevo_transitions_total{kind=\"cancelled\"} 1"));
        assert!(text.contains("relevo_live_streams 1"));
        assert!(text.contains("relevo_db_pool_connections{pool=\"sqlite_read\",state=\"open\"} 2"));
    }
}
