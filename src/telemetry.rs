//! Logs and metrics.
//!
//! Logs: `RUST_LOG` filters (default `info`); coloured only at a terminal;
//! `RELEVO_LOG_FORMAT=json` writes one JSON object per line. Every request
//! runs in a span carrying its id
//! (also returned as `X-Request-Id`), the client address (through trusted
//! proxies, see `auth::client_addr`), method and route *pattern* — never the
//! concrete path or query, which may hold names, phones or searches.
//!
//! Metrics: a process-wide `prometheus-client` registry, rendered in the
//! OpenMetrics text format at `/metrics` (see `routes::pages::metrics`)
//! together with what the server's state holds at that moment.

use std::pin::Pin;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{Error, HttpMessage};
use prometheus_client::encoding::{EncodeLabelSet, text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tracing_actix_web::RequestId;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; a second call is a no-op (tests).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("RELEVO_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    // Colours only for a person at a terminal: a log written to a file, a
    // pipe or the journal would carry their escape codes into every line.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
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

/// The labels of a request: its route *pattern* (never the concrete path,
/// which may hold names or phones), method and status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransitionLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// A latency histogram with [`BUCKETS`].
fn latency_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// Mensajes results sent from the bytes kept with their view, rendered for
/// their request, and kept results compressed again (`app::state::ResultsSent`
/// read at one moment).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResultsSentCounts {
    pub kept: u64,
    pub rendered: u64,
    pub recompressed: u64,
}

/// What `/metrics` reads from the application state when it is scraped
/// (it belongs to one server, not to the process).
pub struct Scrape<'a> {
    /// (pool name, open connections, idle connections).
    pub pools: &'a [(&'a str, u32, usize)],
    /// Mensajes views from memory (hits) and from the database (misses).
    pub view_cache: (u64, u64),
    /// Mensajes results sent from kept bytes, rendered for the request,
    /// and compressed again once asked again.
    pub results_sent: ResultsSentCounts,
    /// Passwords verified by login attempts.
    pub password_checks: u64,
}

/// The process-wide metrics, in the OpenMetrics text format at `/metrics`.
///
/// Every family is its own lock-free or per-label-set counter (no lock is
/// shared by all requests), and every label is a route pattern, a method, a
/// status or a fixed word: no user input, and never a message's text.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RequestLabels, Histogram, fn() -> Histogram>,
    transitions: Family<TransitionLabels, Counter>,
    open_streams: Gauge,
    lagged_events: Counter,
    purged_texts: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let durations = Family::<RequestLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let transitions = Family::<TransitionLabels, Counter>::default();
        let open_streams = Gauge::default();
        let lagged_events = Counter::default();
        let purged_texts = Counter::default();
        // Help texts without their final period: the library adds it.
        let mut registry = Registry::default();
        registry.register(
            "relevo_http_requests",
            "Requests by route pattern, method and status",
            requests.clone(),
        );
        registry.register(
            "relevo_http_request_duration_seconds",
            "Request latency by route pattern, method and status",
            durations.clone(),
        );
        registry.register(
            "relevo_transitions",
            "Conversation transitions applied, by kind",
            transitions.clone(),
        );
        registry.register(
            "relevo_live_streams",
            "Open live (SSE) streams",
            open_streams.clone(),
        );
        registry.register(
            "relevo_live_lagged_events",
            "Events live viewers missed (each followed by a resync)",
            lagged_events.clone(),
        );
        registry.register(
            "relevo_transcript_texts_purged",
            "Message texts purged by the retention policy (the messages stay)",
            purged_texts.clone(),
        );
        Metrics {
            registry,
            requests,
            durations,
            transitions,
            open_streams,
            lagged_events,
            purged_texts,
        }
    }
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::default);

/// The media type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

impl Metrics {
    pub fn transition_applied(&self, kind: &'static str) {
        self.transitions
            .get_or_create(&TransitionLabels { kind })
            .inc();
    }

    pub fn stream_opened(&self) {
        self.open_streams.inc();
    }

    pub fn stream_closed(&self) {
        self.open_streams.dec();
    }

    /// A live viewer missed `n` events and was told to resync.
    pub fn events_lagged(&self, n: u64) {
        self.lagged_events.inc_by(n);
    }

    /// The retention policy purged the texts of `n` messages.
    pub fn texts_purged(&self, n: u64) {
        self.purged_texts.inc_by(n);
    }

    /// Message texts purged since the process started.
    pub fn texts_purged_total(&self) -> u64 {
        self.purged_texts.get()
    }

    fn request(&self, route: String, method: String, status: u16, seconds: f64) {
        let labels = RequestLabels {
            route,
            method,
            status,
        };
        self.durations.get_or_create(&labels).observe(seconds);
        self.requests.get_or_create(&labels).inc();
    }

    /// The OpenMetrics text exposition: the process's families, then what
    /// `scrape` read from the server's state.
    pub fn render(&self, scrape: &Scrape) -> String {
        let pools = Family::<PoolLabels, Gauge>::default();
        for (name, size, idle) in scrape.pools {
            let gauge = |state| {
                pools.get_or_create(&PoolLabels {
                    pool: (*name).to_owned(),
                    state,
                })
            };
            gauge("open").set(i64::from(*size));
            gauge("idle").set(i64::try_from(*idle).unwrap_or(i64::MAX));
        }
        let views = Family::<OutcomeLabels, Counter>::default();
        let (hits, misses) = scrape.view_cache;
        views
            .get_or_create(&OutcomeLabels { outcome: "hit" })
            .inc_by(hits);
        views
            .get_or_create(&OutcomeLabels { outcome: "miss" })
            .inc_by(misses);
        let results = Family::<OutcomeLabels, Counter>::default();
        let sent = scrape.results_sent;
        results
            .get_or_create(&OutcomeLabels { outcome: "kept" })
            .inc_by(sent.kept);
        results
            .get_or_create(&OutcomeLabels {
                outcome: "rendered",
            })
            .inc_by(sent.rendered);
        let recompressed = Counter::<u64>::default();
        recompressed.inc_by(sent.recompressed);
        let password_checks = Counter::<u64>::default();
        password_checks.inc_by(scrape.password_checks);
        // Also the readiness signal tests wait on (a request still in flight
        // when a signal arrives), instead of sleeping.
        let in_flight = Gauge::<i64>::default();
        in_flight.set(i64::try_from(requests_being_handled()).unwrap_or(i64::MAX));
        let mut server = Registry::default();
        server.register(
            "relevo_db_pool_connections",
            "Database pool connections",
            pools,
        );
        server.register(
            "relevo_view_cache",
            "Mensajes views served from the cache (hit) or read from the database (miss)",
            views,
        );
        server.register(
            "relevo_view_results",
            "Mensajes results sent from the bytes kept with their view (kept) or rendered and compressed for the request (rendered)",
            results,
        );
        server.register(
            "relevo_view_results_recompressed",
            "Kept Mensajes results compressed again, smaller, once their view was asked again",
            recompressed,
        );
        server.register(
            "relevo_login_password_checks",
            "Passwords verified by login attempts",
            password_checks,
        );
        server.register(
            "relevo_requests_in_flight",
            "Requests being handled, this one included",
            in_flight,
        );
        let mut out = String::new();
        // Writing into a `String` cannot fail.
        let _ = text::encode_registry(&mut out, &self.registry)
            .and_then(|()| text::encode_registry(&mut out, &server))
            .and_then(|()| text::encode_eof(&mut out));
        out
    }
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
        metrics.texts_purged(500);
        let text = metrics.render(&Scrape {
            pools: &[("sqlite_read", 2, 1)],
            view_cache: (5, 3),
            results_sent: ResultsSentCounts {
                kept: 4,
                rendered: 2,
                recompressed: 1,
            },
            password_checks: 7,
        });
        for line in [
            "# HELP relevo_http_requests Requests by route pattern, method and status.",
            "relevo_http_requests_total{route=\"/mensajes\",method=\"GET\",status=\"200\"} 1",
            "relevo_http_request_duration_seconds_bucket{le=\"0.001\",route=\"/mensajes\",method=\"GET\",status=\"200\"} 0",
            "relevo_http_request_duration_seconds_bucket{le=\"0.005\",route=\"/mensajes\",method=\"GET\",status=\"200\"} 1",
            "relevo_http_request_duration_seconds_bucket{le=\"+Inf\",route=\"/mensajes\",method=\"GET\",status=\"200\"} 1",
            "relevo_http_request_duration_seconds_count{route=\"/mensajes\",method=\"GET\",status=\"200\"} 1",
            "relevo_transitions_total{kind=\"cancelled\"} 1",
            "relevo_live_streams 1",
            "relevo_live_lagged_events_total 0",
            "relevo_transcript_texts_purged_total 500",
            "relevo_db_pool_connections{pool=\"sqlite_read\",state=\"open\"} 2",
            "relevo_db_pool_connections{pool=\"sqlite_read\",state=\"idle\"} 1",
            "relevo_view_cache_total{outcome=\"hit\"} 5",
            "relevo_view_cache_total{outcome=\"miss\"} 3",
            "relevo_view_results_total{outcome=\"kept\"} 4",
            "relevo_view_results_total{outcome=\"rendered\"} 2",
            "relevo_view_results_recompressed_total 1",
            "relevo_login_password_checks_total 7",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}\nin\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "one exposition, ended once");
        assert_eq!(text.matches("# EOF").count(), 1);
    }

    #[test]
    fn a_label_value_is_escaped() {
        let metrics = Metrics::default();
        metrics.request("/a\"b\\c".into(), "GET".into(), 404, 0.0);
        let text = metrics.render(&Scrape {
            pools: &[],
            view_cache: (0, 0),
            results_sent: Default::default(),
            password_checks: 0,
        });
        assert!(text.contains("route=\"/a\\\"b\\\\c\""), "{text}");
    }
}
