//! The scenarios of BENCHMARKS.md.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use relevo::db::{ListFilter, StatusFilter, Store};
use relevo::domain::conversation as rules;
use relevo::domain::{CategoryRef, Lookup, Scope};
use uuid::Uuid;

use crate::dataset::{self, CAMPAIGNS, K_CAMPAIGN, K_CATEGORY, id};
use crate::texts;

/// `console` (issue 23, item 3): a child module, so it uses the helpers here.
#[path = "console.rs"]
mod console;
/// The Mensajes views the query-plan test enumerates, shared so that the
/// views timed here are the views whose plans are checked.
#[path = "../../tests/common/views.rs"]
mod every_view;
/// `spread` (issue 23's opening table): a child module, as `console`.
#[path = "spread.rs"]
mod spread;
use crate::{Figures, Options, Server};

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(4)
        // Under the server's keep-alive (actix-web's 5 s): a connection
        // idle that long may be closed by the server just as it is reused,
        // and the request then fails with no response (hyper's
        // `IncompleteMessage`), where a browser would quietly send it again
        // on a new connection. A console person's client can sit idle for
        // seconds while its task serves the others.
        .pool_idle_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

/// A browser's headers on `request` (gzip accepted); `htmx`: those of the
/// console's script.
fn browser(request: reqwest::RequestBuilder, accept: &str, htmx: bool) -> reqwest::RequestBuilder {
    let request = request
        .header("User-Agent", USER_AGENT)
        .header("Accept", accept)
        .header("Accept-Language", "es-MX,es;q=0.9,en;q=0.8")
        .header("Accept-Encoding", "gzip, deflate, br, zstd");
    if htmx {
        request.header("HX-Request", "true")
    } else {
        request
    }
}

const HTML: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// Whether `response` came gzipped (`Content-Encoding: gzip`).
fn sent_gzipped(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"))
}

fn field(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    Some(html[start..start + html[start..].find('"')?].to_owned())
}

/// Logs in through the form; returns the client and the session's CSRF token.
async fn login(address: &str, email: &str) -> anyhow::Result<(reqwest::Client, String)> {
    let client = client();
    let page = client
        .get(format!("{address}/login"))
        .send()
        .await?
        .text()
        .await?;
    let csrf = field(&page, "_csrf").context("login form CSRF")?;
    let response = client
        .post(format!("{address}/login"))
        .form(&[
            ("_csrf", csrf.as_str()),
            ("email", email),
            ("password", dataset::PASSWORD),
        ])
        .send()
        .await?;
    anyhow::ensure!(
        response.status().as_u16() == 303,
        "login of {email} failed: {}",
        response.status()
    );
    let page = client
        .get(format!("{address}/mensajes"))
        .send()
        .await?
        .text()
        .await?;
    let csrf = field(&page, "_csrf").context("page CSRF")?;
    Ok((client, csrf))
}

/// Runs `clients` workers until `duration` passes (or a worker runs out of
/// work), each calling `request(worker, iteration)`; returns the merged
/// latency histogram (µs), successes, errors and elapsed seconds.
async fn drive<F, Fut>(
    clients: usize,
    duration: Duration,
    request: F,
) -> (Histogram<u64>, u64, u64, f64)
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Option<bool>> + Send,
{
    let request = Arc::new(request);
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for worker in 0..clients {
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = histogram();
            let (mut ok, mut errors) = (0u64, 0u64);
            let mut i = 0u64;
            while Instant::now() < deadline && i < 10_000_000 {
                let t = Instant::now();
                match request(worker, i).await {
                    None => break,
                    Some(true) => ok += 1,
                    Some(false) => errors += 1,
                }
                let _ = h.record(t.elapsed().as_micros().max(1) as u64);
                i += 1;
            }
            (h, ok, errors)
        }));
    }
    let mut merged = histogram();
    let (mut ok, mut errors) = (0, 0);
    for task in tasks {
        if let Ok((h, o, e)) = task.await {
            let _ = merged.add(h);
            ok += o;
            errors += e;
        }
    }
    (merged, ok, errors, started.elapsed().as_secs_f64())
}

fn admin0_scope() -> Scope {
    Scope::Campaigns(
        dataset::admin_campaigns(0)
            .into_iter()
            .map(|c| id(K_CAMPAIGN, c))
            .collect(),
    )
}

/// Open conversations (folio, version, campaign index) in campaigns `campaigns`.
async fn open_conversations(
    store: &Store,
    campaigns: &[u64],
    limit: usize,
) -> anyhow::Result<Vec<(i64, i64, u64)>> {
    let ids: Vec<Uuid> = campaigns.iter().map(|c| id(K_CAMPAIGN, *c)).collect();
    let scope = Scope::Campaigns(ids);
    let mut found = Vec::new();
    let mut cursor = None;
    while found.len() < limit {
        let page = store
            .list_conversations(
                &scope,
                &ListFilter {
                    status: Some(StatusFilter::Open),
                    ..ListFilter::default()
                },
                cursor,
            )
            .await?;
        for row in &page.rows {
            let campaign = (0..CAMPAIGNS)
                .find(|c| id(K_CAMPAIGN, *c) == row.campaign_id)
                .unwrap_or(0);
            found.push((row.folio, row.version, campaign));
        }
        match page.rows.last() {
            Some(last) if page.has_older => {
                cursor = Some(relevo::db::Cursor::After(last.last_activity_at, last.folio))
            }
            _ => break,
        }
    }
    found.truncate(limit);
    Ok(found)
}

fn category_of(campaign: u64) -> Uuid {
    id(K_CATEGORY, campaign * dataset::CATEGORIES_PER_CAMPAIGN)
}

/// Cancels conversation `folio` (seen at `version`) through the console's
/// form, as the modal posts it; true when it was applied (200).
async fn post_cancel(
    client: &reqwest::Client,
    address: &str,
    csrf: &str,
    (folio, version, campaign): (i64, i64, u64),
) -> bool {
    client
        .post(format!("{address}/mensajes/{folio}/acciones"))
        .header("HX-Request", "true")
        .form(&[
            ("_csrf", csrf),
            ("version", &version.to_string()),
            ("accion", "cancelar"),
            ("categoria", &category_of(campaign).to_string()),
        ])
        .send()
        .await
        .is_ok_and(|r| r.status().as_u16() == 200)
}

/// The figures whose note compares them with the `raw` scenario: (scenario,
/// figure, the `raw` figure it is a share of). One table, so the console
/// line of a run and the report's median line say the same thing.
pub const RAW_REFERENCES: &[(&str, &str, &str)] = &[
    ("list", "requests/s", "list queries/s"),
    ("list-uncached", "requests/s", "list queries/s"),
    ("list-changing", "requests/s", "list queries/s"),
    ("cancel", "cancels/s", "cancel transactions/s"),
];

/// The note "N % of raw", or why there is none.
pub fn percent_of_raw(value: f64, reference: Option<f64>) -> String {
    match reference {
        Some(reference) if reference > 0.0 => format!("{:.0} % of raw", value / reference * 100.0),
        _ => "run `raw` first for the reference".to_owned(),
    }
}

pub async fn run(
    name: &str,
    options: &Options,
    url: &str,
    empty: Option<&str>,
    raw: Option<&Figures>,
) -> anyhow::Result<Figures> {
    let seconds = Duration::from_secs(options.seconds);
    let clients = options.clients;
    // This run's own ratio, for the console; the report recomputes it from
    // the medians (see `percent_of_raw`).
    let raw_value = |label: &str| raw.and_then(|r| r.iter().find(|f| f.0 == label).map(|f| f.1));
    let percent = |value: f64, label: &str| percent_of_raw(value, raw_value(label));
    match name {
        "raw" => {
            let store = Arc::new(Store::connect(url).await?);
            let scope = admin0_scope();
            let filter = ListFilter {
                status: Some(StatusFilter::Open),
                ..ListFilter::default()
            };
            let (h, ok, _, elapsed) = {
                let store = store.clone();
                drive(clients, seconds / 2, move |_, _| {
                    let store = store.clone();
                    let scope = scope.clone();
                    let filter = filter.clone();
                    async move {
                        // The Mensajes view's one statement: page and counts.
                        let view = store.list_with_counts(&scope, &filter, None);
                        Some(view.await.is_ok())
                    }
                })
                .await
            };
            let list_qps = ok as f64 / elapsed;
            let work = Arc::new(
                open_conversations(&store, &(0..CAMPAIGNS).collect::<Vec<_>>(), 200_000).await?,
            );
            let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let (ch, cok, _, celapsed) = {
                let store = store.clone();
                drive(clients, seconds / 2, move |_, _| {
                    let store = store.clone();
                    let work = work.clone();
                    let next = next.clone();
                    async move {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let (folio, _, campaign) = *work.get(i)?;
                        let row = store.conversation(&Scope::All, folio).await.ok()??;
                        let category = Lookup::Found(CategoryRef {
                            id: category_of(campaign),
                            campaign_id: row.campaign_id,
                            active: true,
                        });
                        let t = rules::cancel(
                            &row.to_domain(),
                            id(dataset::K_USER, 1),
                            category,
                            Lookup::NotChosen,
                            "",
                            chrono::Utc::now(),
                        )
                        .ok()?;
                        Some(matches!(store.apply_transition(&t).await, Ok(Ok(()))))
                    }
                })
                .await
            };
            store.close().await;
            Ok(vec![
                (
                    "list queries/s".into(),
                    list_qps,
                    "list page + status counts, admin with 5 of 50 campaigns".into(),
                ),
                ("list p50 ms".into(), ms(&h, 0.5), String::new()),
                ("list p99 ms".into(), ms(&h, 0.99), String::new()),
                (
                    "cancel transactions/s".into(),
                    cok as f64 / celapsed,
                    "load + rules + compare-and-set + history".into(),
                ),
                ("cancel p50 ms".into(), ms(&ch, 0.5), String::new()),
                ("cancel p99 ms".into(), ms(&ch, 0.99), String::new()),
            ])
        }
        "list" | "list-uncached" | "list-changing" | "search" => {
            // `list-uncached`: the same view with the view cache off, every
            // request reading the database (`list` is its best case).
            let cache_off: &[(&str, &str)] = if name == "list-uncached" {
                &[("RELEVO_VIEW_CACHE", "0")]
            } else {
                &[]
            };
            // The clients ask as a browser does, gzip accepted (see `browser`).
            let log = Server::log_of(name);
            let server = Server::start_setting(url, name, cache_off).await?;
            let mut sessions = Vec::new();
            for _ in 0..clients {
                sessions.push(login(&server.address, &dataset::admin_email(0)).await?.0);
            }
            let sessions = Arc::new(sessions);
            let address = server.address.clone();
            let search = name == "search";
            // `list-changing`: the same views while conversations of the
            // viewer's campaigns are cancelled through the console, so the
            // cached views keep going stale as they would in a busy centre.
            let changer = if name == "list-changing" {
                let store = Store::connect(url).await?;
                let work = open_conversations(&store, &dataset::admin_campaigns(0), 20_000).await?;
                store.close().await;
                let (client, csrf) = login(&server.address, "bench-super@relevo.bench").await?;
                let address = server.address.clone();
                let until = Instant::now() + seconds;
                Some(tokio::spawn(async move {
                    let interval = Duration::from_micros(1_000_000 / CHANGES_PER_SECOND);
                    let started = Instant::now();
                    let mut in_flight = Vec::new();
                    for (i, (folio, version, campaign)) in work.into_iter().enumerate() {
                        if Instant::now() >= until {
                            break;
                        }
                        let due = started + interval * i as u32;
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            tokio::time::sleep(wait).await;
                        }
                        let (client, csrf, address) =
                            (client.clone(), csrf.clone(), address.clone());
                        in_flight.push(tokio::spawn(async move {
                            post_cancel(&client, &address, &csrf, (folio, version, campaign)).await
                        }));
                    }
                    let elapsed = started.elapsed().as_secs_f64();
                    let mut applied = 0u64;
                    for task in in_flight {
                        applied += u64::from(task.await.unwrap_or(false));
                    }
                    applied as f64 / elapsed
                }))
            } else {
                None
            };
            let cache_before = view_cache_counts(&server.address).await;
            let rss_peak = Arc::new(Mutex::new(0.0f64));
            let sampler = {
                let rss_peak = rss_peak.clone();
                let pid = server.child.id();
                tokio::spawn(async move {
                    for _ in 0..600 {
                        if let Some(pid) = pid
                            && let Ok(status) =
                                std::fs::read_to_string(format!("/proc/{pid}/status"))
                            && let Some(kib) = status
                                .lines()
                                .find(|l| l.starts_with("VmRSS:"))
                                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
                        {
                            let mut peak = rss_peak.lock().unwrap();
                            *peak = peak.max(kib / 1024.0);
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                })
            };
            let cpu_before = server.cpu_seconds();
            let log_before = std::fs::metadata(&log).map_or(0, |m| m.len());
            // Bytes as sent (compressed or not), and responses sent gzipped.
            let sent = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
            let counted = sent.clone();
            let (h, ok, errors, elapsed) = drive(clients, seconds, move |worker, i| {
                let client = sessions[worker].clone();
                let counted = counted.clone();
                let url = if search {
                    if i % 2 == 0 {
                        // The first 8 digits of the local number of one of
                        // the admin's contacts (campaigns 0-4: contacts whose
                        // number modulo 100 is below 10), typed as an
                        // administrator would: without the country code.
                        let contact =
                            ((worker as u64 * 7_919 + i * 104_729) % 2_000) * 100 + (i % 10);
                        format!(
                            "{address}/mensajes?estatus=todas&q={}",
                            &dataset::contact_phone(contact)[2..10]
                        )
                    } else {
                        format!(
                            "{address}/mensajes?estatus=todas&q={}",
                            10_001 + (i * 7919 + worker as u64) % 1_000_000
                        )
                    }
                } else {
                    format!("{address}/mensajes")
                };
                async move {
                    // The whole page is read, as a browser does: the latency
                    // is the last byte's, and the connection is kept.
                    let Ok(response) = browser(client.get(url), HTML, false).send().await else {
                        return Some(false);
                    };
                    let ok = response.status().is_success();
                    let gzip = sent_gzipped(&response);
                    let Ok(body) = response.bytes().await else {
                        return Some(false);
                    };
                    if ok {
                        counted.0.fetch_add(body.len() as u64, Ordering::Relaxed);
                        counted.1.fetch_add(u64::from(gzip), Ordering::Relaxed);
                    }
                    Some(ok && !body.is_empty())
                }
            })
            .await;
            let log_bytes = std::fs::metadata(&log)
                .map_or(0, |m| m.len())
                .saturating_sub(log_before);
            let per_response = |n: u64| if ok == 0 { 0.0 } else { n as f64 / ok as f64 };
            sampler.abort();
            let rps = ok as f64 / elapsed;
            let cpu = cpu_ms_per(&server, cpu_before, ok);
            let peak = *rss_peak.lock().unwrap();
            let cache_after = view_cache_counts(&server.address).await;
            let changes_per_second = match changer {
                Some(task) => Some(task.await.unwrap_or(0.0)),
                None => None,
            };
            server.stop().await;
            let mut figures = vec![
                (
                    "requests/s".to_owned(),
                    rps,
                    if search {
                        String::new()
                    } else {
                        percent(rps, "list queries/s")
                    },
                ),
                ("p50 ms".into(), ms(&h, 0.5), String::new()),
                ("p99 ms".into(), ms(&h, 0.99), String::new()),
                ("errors".into(), errors as f64, String::new()),
                cpu,
                (
                    "response KiB, as sent".into(),
                    per_response(sent.0.load(Ordering::Relaxed)) / 1024.0,
                    "mean; gzip accepted, as a browser asks".into(),
                ),
                (
                    "responses gzipped, %".into(),
                    per_response(sent.1.load(Ordering::Relaxed)) * 100.0,
                    String::new(),
                ),
                (
                    "server log bytes per request".into(),
                    per_response(log_bytes),
                    "default log level (RUST_LOG unset)".into(),
                ),
            ];
            if !search {
                figures.push((
                    "server RSS under load, MiB".into(),
                    peak,
                    "peak of 100 ms samples".into(),
                ));
                let (hits, misses) = (
                    cache_after.0.saturating_sub(cache_before.0),
                    cache_after.1.saturating_sub(cache_before.1),
                );
                figures.push((
                    "views served from the cache, %".into(),
                    if hits + misses == 0 {
                        0.0
                    } else {
                        hits as f64 * 100.0 / (hits + misses) as f64
                    },
                    "the rest read the database (see /metrics)".into(),
                ));
            }
            if let Some(rate) = changes_per_second {
                figures.push((
                    "cancels/s in the viewer's campaigns meanwhile".into(),
                    rate,
                    "through the console, each making the cached views stale".into(),
                ));
            }
            Ok(figures)
        }
        "cancel" => {
            let server = Server::start(url, "cancel").await?;
            let store = Store::connect(url).await?;
            let all: Vec<u64> = (0..CAMPAIGNS).collect();
            let work = open_conversations(&store, &all, 200_000).await?;
            let before_events: i64 = count(
                &store,
                "select count(*) from conversation_events where kind = 'cancelled'",
            )
            .await?;
            let before_rows: i64 = count(
                &store,
                "select count(*) from conversations where status = 'cancelled'",
            )
            .await?;
            let mut sessions = Vec::new();
            for _ in 0..clients {
                sessions.push(login(&server.address, "bench-super@relevo.bench").await?);
            }
            let sessions = Arc::new(sessions);
            let work = Arc::new(work);
            let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let address = server.address.clone();
            let cpu_before = server.cpu_seconds();
            let (h, ok, errors, elapsed) = drive(clients, seconds, move |worker, _| {
                let (client, csrf) = sessions[worker].clone();
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let item = work.get(i).copied();
                let address = address.clone();
                async move { Some(post_cancel(&client, &address, &csrf, item?).await) }
            })
            .await;
            let cpu = cpu_ms_per(&server, cpu_before, ok);
            server.stop().await;
            let new_events = count(
                &store,
                "select count(*) from conversation_events where kind = 'cancelled'",
            )
            .await?
                - before_events;
            let new_rows = count(
                &store,
                "select count(*) from conversations where status = 'cancelled'",
            )
            .await?
                - before_rows;
            store.close().await;
            let rate = ok as f64 / elapsed;
            let consistent = new_rows == ok as i64 && new_events == ok as i64;
            Ok(vec![
                (
                    "cancels/s".into(),
                    rate,
                    percent(rate, "cancel transactions/s"),
                ),
                ("p50 ms".into(), ms(&h, 0.5), String::new()),
                ("p99 ms".into(), ms(&h, 0.99), String::new()),
                ("errors".into(), errors as f64, String::new()),
                cpu,
                ("successful responses".into(), ok as f64, String::new()),
                ("new cancelled rows".into(), new_rows as f64, String::new()),
                (
                    "new history rows".into(),
                    new_events as f64,
                    if consistent {
                        "all three equal".into()
                    } else {
                        "MISMATCH".into()
                    },
                ),
            ])
        }
        "contend" => {
            let server = Server::start(url, "contend").await?;
            let store = Store::connect(url).await?;
            let all: Vec<u64> = (0..CAMPAIGNS).collect();
            let work = open_conversations(&store, &all, 100).await?;
            let folios: Vec<i64> = work.iter().map(|w| w.0).collect();
            let history_before = events_of(&store, &folios).await?;
            let mut sessions = Vec::new();
            for _ in 0..clients {
                sessions.push(login(&server.address, "bench-super@relevo.bench").await?);
            }
            let wins: Arc<Mutex<HashMap<i64, u32>>> = Arc::default();
            let conflicts = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let others = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let mut tasks = Vec::new();
            for (worker, (client, csrf)) in sessions.into_iter().enumerate() {
                let work = work.clone();
                let address = server.address.clone();
                let (wins, conflicts, others) = (wins.clone(), conflicts.clone(), others.clone());
                tasks.push(tokio::spawn(async move {
                    for (folio, version, campaign) in work {
                        let form: Vec<(&str, String)> = if worker % 2 == 0 {
                            vec![
                                ("accion", "cancelar".into()),
                                ("categoria", category_of(campaign).to_string()),
                            ]
                        } else {
                            let agent = dataset::agent_id(
                                campaign,
                                (worker as u64 + folio as u64) % dataset::AGENTS_PER_CAMPAIGN,
                            );
                            vec![
                                ("accion", "reasignar".into()),
                                ("agente", agent.to_string()),
                            ]
                        };
                        let mut fields =
                            vec![("_csrf", csrf.clone()), ("version", version.to_string())];
                        fields.extend(form);
                        let status = client
                            .post(format!("{address}/mensajes/{folio}/acciones"))
                            .header("HX-Request", "true")
                            .form(&fields)
                            .send()
                            .await
                            .map(|r| r.status().as_u16());
                        match status {
                            Ok(200) => *wins.lock().unwrap().entry(folio).or_default() += 1,
                            Ok(409) => {
                                conflicts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                            // 422: reassigning to the agent it already has (the
                            // rules refuse it); a clean refusal, not a winner.
                            _ => {
                                others.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                        }
                    }
                }));
            }
            for task in tasks {
                let _ = task.await;
            }
            server.stop().await;
            let history_after = events_of(&store, &folios).await?;
            store.close().await;
            let wins = wins.lock().unwrap().clone();
            let exactly_one = folios.iter().filter(|f| wins.get(f) == Some(&1)).count();
            let one_new_row = folios
                .iter()
                .filter(|f| {
                    history_after.get(f).copied().unwrap_or(0)
                        - history_before.get(f).copied().unwrap_or(0)
                        == 1
                })
                .count();
            Ok(vec![
                ("conversations".into(), folios.len() as f64, String::new()),
                (
                    "with exactly one winner".into(),
                    exactly_one as f64,
                    String::new(),
                ),
                (
                    "with exactly one new history row".into(),
                    one_new_row as f64,
                    String::new(),
                ),
                (
                    "clean conflicts (409)".into(),
                    conflicts.load(std::sync::atomic::Ordering::Relaxed) as f64,
                    String::new(),
                ),
                (
                    "other refusals (422)".into(),
                    others.load(std::sync::atomic::Ordering::Relaxed) as f64,
                    "same-agent reassignments".into(),
                ),
            ])
        }
        "live" => live(options, url).await,
        "events" => events(options, url).await,
        "ingest" => {
            let server = Server::start(url, "ingest").await?;
            let address = server.address.clone();
            let run_id = Uuid::now_v7().simple().to_string();
            let client = client();
            let texts = Arc::new(if options.fixed_text {
                vec!["Hola, sigo esperando respuesta".to_owned()]
            } else {
                texts::pool()
            });
            let mean_chars = texts::mean_chars(&texts);
            let cpu_before = server.cpu_seconds();
            let (h, ok, errors, elapsed) = drive(clients, seconds, move |worker, i| {
                let client = client.clone();
                let text =
                    &texts[((worker as u64 * 7_919 + i * 104_729) % texts.len() as u64) as usize];
                let channel =
                    (worker as u64 * 13 + i) % (CAMPAIGNS * dataset::CHANNELS_PER_CAMPAIGN);
                let contact = channel
                    + (CAMPAIGNS * dataset::CHANNELS_PER_CAMPAIGN)
                        * ((i * 31 + worker as u64) % 1000);
                let url = format!(
                    "{address}/api/v1/channels/{}/messages",
                    id(dataset::K_CHANNEL, channel)
                );
                let body = serde_json::json!({
                    "message_id": format!("{run_id}-{worker}-{i}"),
                    "from": dataset::contact_phone(contact),
                    "name": format!("Cliente {contact}"),
                    "text": text,
                });
                async move {
                    let response = client
                        .post(url)
                        .bearer_auth(dataset::channel_token(channel))
                        .json(&body)
                        .send()
                        .await;
                    Some(response.is_ok_and(|r| r.status().is_success()))
                }
            })
            .await;
            let cpu = cpu_ms_per(&server, cpu_before, ok);
            server.stop().await;
            Ok(vec![
                (
                    "messages/s".into(),
                    ok as f64 / elapsed,
                    if options.fixed_text {
                        format!("one text of {mean_chars:.0} characters (--fixed-text)")
                    } else {
                        format!(
                            "texts of {}–{} characters, {mean_chars:.0} on average",
                            texts::MIN_CHARS,
                            texts::MAX_CHARS
                        )
                    },
                ),
                ("p50 ms".into(), ms(&h, 0.5), String::new()),
                ("p99 ms".into(), ms(&h, 0.99), String::new()),
                ("errors".into(), errors as f64, String::new()),
                cpu,
            ])
        }
        "footprint" => {
            let empty_url = empty.context("an empty database")?;
            let empty_server = Server::start(empty_url, "footprint-empty").await?;
            let empty_ready = empty_server.ready_after.as_secs_f64() * 1000.0;
            empty_server.stop().await;
            let server = Server::start(url, "footprint").await?;
            let full_ready = server.ready_after.as_secs_f64() * 1000.0;
            tokio::time::sleep(Duration::from_secs(2)).await;
            let idle = server.rss_mib();
            server.stop().await;
            Ok(vec![
                (
                    "ready on an empty database, ms".into(),
                    empty_ready,
                    "process start to first 200 from /readyz (includes migrating)".into(),
                ),
                (
                    "ready on the full data set, ms".into(),
                    full_ready,
                    "process start to first 200 from /readyz".into(),
                ),
                ("RSS idle, MiB".into(), idle, "2 s after ready".into()),
            ])
        }
        "views" => views(url).await,
        "console" => console::run(options, url).await,
        "spread" => spread::run(options, url).await,
        other => anyhow::bail!("unknown scenario {other}"),
    }
}

async fn count(store: &Store, sql: &'static str) -> anyhow::Result<i64> {
    Ok(match store {
        Store::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(&p.read).await?,
        Store::Postgres(p) => sqlx::query_scalar(sql).fetch_one(&p.pool).await?,
    })
}

async fn events_of(store: &Store, folios: &[i64]) -> anyhow::Result<HashMap<i64, i64>> {
    let mut map = HashMap::new();
    for folio in folios {
        let sql = "select count(*) from conversation_events e join conversations c on c.id = e.conversation_id where c.folio = $1";
        let n: i64 = match store {
            Store::Sqlite(p) => {
                sqlx::query_scalar(sql)
                    .bind(folio)
                    .fetch_one(&p.read)
                    .await?
            }
            Store::Postgres(p) => {
                sqlx::query_scalar(sql)
                    .bind(folio)
                    .fetch_one(&p.pool)
                    .await?
            }
        };
        map.insert(*folio, n);
    }
    Ok(map)
}

/// 1,000 live streams from administrators of varied scopes while 200
/// transitions per second are applied through the console.
async fn live(options: &Options, url: &str) -> anyhow::Result<Figures> {
    const STREAMS: usize = 1000;
    const RATE: u64 = 200;
    let server = Server::start(url, "live").await?;
    let store = Store::connect(url).await?;
    let all: Vec<u64> = (0..CAMPAIGNS).collect();
    let duration = Duration::from_secs(options.seconds);
    let needed = (RATE * options.seconds) as usize + 100;
    let work = open_conversations(&store, &all, needed).await?;
    let campaign_of: Arc<HashMap<i64, u64>> = Arc::new(work.iter().map(|w| (w.0, w.2)).collect());
    let id_to_folio: Arc<HashMap<Uuid, i64>> = {
        let mut map = HashMap::new();
        for (folio, ..) in &work {
            if let Some(row) = store.conversation(&Scope::All, *folio).await? {
                map.insert(row.id, *folio);
            }
        }
        Arc::new(map)
    };
    let sent_at: Arc<Mutex<HashMap<i64, Instant>>> = Arc::default();
    let latencies = Arc::new(Mutex::new(histogram()));
    let received_in_scope = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let outside = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut admins = Vec::new();
    for k in 0..dataset::ADMINS {
        admins.push((k, login(&server.address, &dataset::admin_email(k)).await?.0));
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    let mut opened = 0usize;
    for s in 0..STREAMS {
        let (k, client) = admins[s % admins.len()].clone();
        let scope: HashSet<u64> = dataset::admin_campaigns(k).into_iter().collect();
        let response = client
            .get(format!("{}/mensajes/eventos", server.address))
            .timeout(duration + Duration::from_secs(60))
            .send()
            .await?;
        if !response.status().is_success() {
            continue;
        }
        opened += 1;
        let (campaign_of, id_to_folio, sent_at, latencies, received_in_scope, outside, stop) = (
            campaign_of.clone(),
            id_to_folio.clone(),
            sent_at.clone(),
            latencies.clone(),
            received_in_scope.clone(),
            outside.clone(),
            stop.clone(),
        );
        readers.push(tokio::spawn(async move {
            let mut response = response;
            let mut buffer = String::new();
            let mut seen = HashSet::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let chunk = match tokio::time::timeout(Duration::from_millis(500), response.chunk())
                    .await
                {
                    Ok(Ok(Some(chunk))) => chunk,
                    Ok(_) => break,
                    Err(_) => continue,
                };
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let frame: String = buffer.drain(..end + 2).collect();
                    if !frame.contains("event: change") {
                        continue;
                    }
                    let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: ")) else {
                        continue;
                    };
                    let Ok(value) = serde_json::from_str::<serde_json::Value>(data) else {
                        continue;
                    };
                    let Some(id) = value["id"].as_str().and_then(|s| Uuid::parse_str(s).ok())
                    else {
                        continue;
                    };
                    let Some(folio) = id_to_folio.get(&id) else {
                        continue;
                    };
                    let campaign = campaign_of[folio];
                    if !scope.contains(&campaign) {
                        outside.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    } else if seen.insert(*folio) {
                        received_in_scope.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if let Some(sent) = sent_at.lock().unwrap().get(folio) {
                            let _ = latencies
                                .lock()
                                .unwrap()
                                .record(sent.elapsed().as_micros().max(1) as u64);
                        }
                    }
                }
            }
        }));
    }
    // Apply RATE transitions per second through the console as the super admin.
    let (client, csrf) = login(&server.address, "bench-super@relevo.bench").await?;
    let started = Instant::now();
    let mut applied: Vec<i64> = Vec::new();
    let mut in_flight = Vec::new();
    let interval = Duration::from_micros(1_000_000 / RATE);
    for (i, (folio, version, campaign)) in work.iter().copied().enumerate() {
        if started.elapsed() >= duration {
            break;
        }
        let due = started + interval * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        sent_at.lock().unwrap().insert(folio, Instant::now());
        let client = client.clone();
        let csrf = csrf.clone();
        let address = server.address.clone();
        in_flight.push(tokio::spawn(async move {
            let ok = post_cancel(&client, &address, &csrf, (folio, version, campaign)).await;
            (folio, ok)
        }));
    }
    for task in in_flight {
        if let Ok((folio, true)) = task.await {
            applied.push(folio);
        }
    }
    let transitions_per_second = applied.len() as f64 / started.elapsed().as_secs_f64();
    // Let the last events arrive.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for reader in readers {
        let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
    }
    let mut expected = 0u64;
    for folio in &applied {
        let campaign = campaign_of[folio];
        for s in 0..opened {
            let k = s % admins.len();
            if dataset::admin_campaigns(admins[k].0).contains(&campaign) {
                expected += 1;
            }
        }
    }
    let received = received_in_scope.load(std::sync::atomic::Ordering::Relaxed);
    let h = latencies.lock().unwrap().clone();
    server.stop().await;
    store.close().await;
    Ok(vec![
        ("streams open".into(), opened as f64, String::new()),
        (
            "transitions/s applied".into(),
            transitions_per_second,
            String::new(),
        ),
        ("deliveries expected".into(), expected as f64, String::new()),
        (
            "delivery p50 ms".into(),
            ms(&h, 0.5),
            "from sending the POST to receipt".into(),
        ),
        ("delivery p99 ms".into(), ms(&h, 0.99), String::new()),
        (
            "missed".into(),
            expected.saturating_sub(received) as f64,
            String::new(),
        ),
        (
            "outside scope".into(),
            outside.load(std::sync::atomic::Ordering::Relaxed) as f64,
            String::new(),
        ),
    ])
}

/// Customer messages per second the `events` producer sends (one event each).
const EVENTS_PER_SECOND: u64 = 1000;
/// Conversations of campaign 0 the `events` messages go to, half on each of
/// its two channels; a warm-up opens them before the measurement.
const EVENTS_CONVERSATIONS: u64 = 1000;
/// How long `events` waits, after the last request, for the consumer to
/// receive the last events.
const EVENTS_GRACE: Duration = Duration::from_secs(10);

/// A client that keeps enough connections for a paced producer.
fn producer_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// One page of the event feed after `after` (`limit=1000`, `wait` seconds).
async fn feed_page(
    client: &reqwest::Client,
    address: &str,
    token: &str,
    after: i64,
    wait: u64,
) -> anyhow::Result<serde_json::Value> {
    let response = client
        .get(format!(
            "{address}/api/v1/events?after={after}&limit=1000&wait={wait}"
        ))
        .bearer_auth(token)
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "the event feed answered {}",
        response.status()
    );
    Ok(response.json().await?)
}

/// What the `events` consumer has received so far.
#[derive(Default)]
struct Drained {
    /// Measured message number -> when its event arrived (the first time).
    receipts: HashMap<u64, Instant>,
    /// Every event id seen.
    ids: HashSet<i64>,
    /// Event ids seen again, and measured messages seen in a second event.
    duplicates: u64,
    /// The campaign's other events (late warm-up events, anything else).
    others: u64,
    polls: u64,
    errors: u64,
}

/// `events`: one consumer long-polls campaign 0's event feed (`wait=25`,
/// `limit=1000`, always from `next`) with an integration token, while one
/// producer posts customer messages into that campaign at
/// [`EVENTS_PER_SECOND`], paced, for `--seconds` (at most that many
/// messages, and none more than 5 s late). A warm-up first opens the
/// [`EVENTS_CONVERSATIONS`] conversations they go to, so each measured
/// message makes one event (`message_received`); the event is matched to
/// its request by the message's channel message id.
///
/// The commit happened after the producer sent the request, and before
/// its response returned and before the consumer received the event. Per
/// event, receipt minus the response's return is therefore a lower bound of
/// commit -> receipt (short by at most the time from the commit to the
/// response's return: the response's trip back), taken as 0 when the event
/// arrived first; receipt minus the send is an upper bound.
async fn events(options: &Options, url: &str) -> anyhow::Result<Figures> {
    let duration = Duration::from_secs(options.seconds);
    let total = EVENTS_PER_SECOND * options.seconds;
    let store = Store::connect(url).await?;
    let (_, token) = store
        .create_integration_token("Campaña 00", "bench events", relevo::db::Ts::now())
        .await?
        .context("campaign 0 of the data set")?;
    // Numbers whatever is not numbered yet (PostgreSQL) and gives the log's
    // newest cursor: the data set's events are not read again.
    let mut cursor = store.sequence_events().await?;
    store.close().await;
    let server = Server::start(url, "events").await?;
    let address = server.address.clone();
    let run_id = Uuid::now_v7().simple().to_string();
    let texts = Arc::new(texts::pool());
    // Message `n` of `phase` ("w": warm-up, "m": measured) goes to
    // conversation `n % EVENTS_CONVERSATIONS` of campaign 0 (channels 0
    // and 1, contacts whose number ends in 00 or 01).
    let request = {
        let (address, run_id) = (address.clone(), run_id.clone());
        Arc::new(move |phase: &str, n: u64| {
            let k = n % EVENTS_CONVERSATIONS;
            let channel = k % dataset::CHANNELS_PER_CAMPAIGN;
            let contact = channel
                + CAMPAIGNS * dataset::CHANNELS_PER_CAMPAIGN * (k / dataset::CHANNELS_PER_CAMPAIGN);
            let url = format!(
                "{address}/api/v1/channels/{}/messages",
                id(dataset::K_CHANNEL, channel)
            );
            let body = serde_json::json!({
                "message_id": format!("{run_id}-{phase}-{n}"),
                "from": dataset::contact_phone(contact),
                "name": format!("Cliente {contact}"),
                "text": texts[((n * 104_729) % texts::POOL as u64) as usize],
            });
            (url, dataset::channel_token(channel), body)
        })
    };
    let producer = producer_client();
    let post = |n: u64, phase: &'static str| {
        let (producer, request) = (producer.clone(), request.clone());
        async move {
            let (url, token, body) = request(phase, n);
            let sent = Instant::now();
            let ok = match producer
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
            {
                Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                Err(_) => false,
            };
            (n, sent, Instant::now(), ok)
        }
    };

    // Warm-up: one message per conversation, 16 at a time.
    let mut warm = Vec::new();
    for w in 0..16 {
        let posts: Vec<_> = (w..EVENTS_CONVERSATIONS)
            .step_by(16)
            .map(|n| post(n, "w"))
            .collect();
        warm.push(tokio::spawn(async move {
            let mut failed = 0u64;
            for p in posts {
                failed += u64::from(!p.await.3);
            }
            failed
        }));
    }
    let mut warm_failed = 0;
    for task in warm {
        warm_failed += task.await.unwrap_or(1);
    }
    anyhow::ensure!(warm_failed == 0, "{warm_failed} warm-up messages failed");
    // The consumer starts after the warm-up's events (those numbered late,
    // on PostgreSQL, arrive with the measured ones and count as others).
    let feed = client();
    for _ in 0..1000 {
        let page = feed_page(&feed, &address, &token, cursor, 0).await?;
        cursor = page["next"].as_i64().context("the feed's next")?;
        if page["events"].as_array().is_none_or(|e| e.is_empty()) {
            break;
        }
    }

    let drained: Arc<Mutex<Drained>> = Arc::default();
    let consumer = {
        let (drained, address, token) = (drained.clone(), address.clone(), token.clone());
        let prefix = format!("{run_id}-m-");
        tokio::spawn(async move {
            // Bounded by the count, and aborted when the measurement ends.
            for _ in 0..1_000_000 {
                let page = match feed_page(&feed, &address, &token, cursor, 25).await {
                    Ok(page) => page,
                    Err(_) => {
                        drained.lock().unwrap().errors += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let at = Instant::now();
                let mut guard = drained.lock().unwrap();
                let d = &mut *guard;
                d.polls += 1;
                for event in page["events"].as_array().into_iter().flatten() {
                    if let Some(id) = event["id"].as_i64()
                        && !d.ids.insert(id)
                    {
                        d.duplicates += 1;
                        continue;
                    }
                    let measured = event["message"]["channel_message_id"]
                        .as_str()
                        .and_then(|m| m.strip_prefix(prefix.as_str()))
                        .and_then(|n| n.parse::<u64>().ok());
                    match measured {
                        Some(n) => match d.receipts.entry(n) {
                            std::collections::hash_map::Entry::Occupied(_) => d.duplicates += 1,
                            std::collections::hash_map::Entry::Vacant(v) => {
                                v.insert(at);
                            }
                        },
                        None => d.others += 1,
                    }
                }
                match page["next"].as_i64() {
                    Some(next) => cursor = next,
                    None => d.errors += 1,
                }
            }
        })
    };

    // The producer: message n is due n ms after the start.
    let started = Instant::now();
    let interval = Duration::from_secs(1) / EVENTS_PER_SECOND as u32;
    let mut in_flight = Vec::with_capacity(total as usize);
    for n in 0..total {
        let due = started + interval * n as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        if started.elapsed() >= duration + Duration::from_secs(5) {
            break;
        }
        in_flight.push(tokio::spawn(post(n, "m")));
    }
    let send_window = started.elapsed().as_secs_f64();
    let mut accepted: HashMap<u64, (Instant, Instant)> = HashMap::new();
    let mut responses = histogram();
    let mut errors = 0u64;
    for task in in_flight {
        match task.await {
            Ok((n, sent, returned, true)) => {
                let _ = responses.record((returned - sent).as_micros().max(1) as u64);
                accepted.insert(n, (sent, returned));
            }
            _ => errors += 1,
        }
    }
    let grace = Instant::now() + EVENTS_GRACE;
    while Instant::now() < grace {
        let all = {
            let d = drained.lock().unwrap();
            accepted.keys().all(|n| d.receipts.contains_key(n))
        };
        if all {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A little longer, for a duplicate or a late event to show up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    consumer.abort();
    let _ = consumer.await;
    server.stop().await;

    let d = drained.lock().unwrap();
    let (mut lower, mut upper) = (histogram(), histogram());
    let (mut missed, mut early, mut late) = (0u64, 0u64, 0u64);
    let mut last = started;
    for (n, (sent, returned)) in &accepted {
        let Some(at) = d.receipts.get(n) else {
            missed += 1;
            continue;
        };
        early += u64::from(at < returned);
        late += u64::from(at.saturating_duration_since(*returned) > Duration::from_millis(200));
        let _ = lower.record(at.saturating_duration_since(*returned).as_micros().max(1) as u64);
        let _ = upper.record(at.saturating_duration_since(*sent).as_micros().max(1) as u64);
        last = last.max(*at);
    }
    let received = accepted.len() as u64 - missed;
    let drained_rate = received as f64 / (last - started).as_secs_f64().max(1e-3);
    let max_ms = |h: &Histogram<u64>| h.max() as f64 / 1000.0;
    Ok(vec![
        (
            "events/s drained".into(),
            drained_rate,
            "measured messages' events received / first send to last receipt".into(),
        ),
        (
            "messages/s sent".into(),
            accepted.len() as f64 / send_window,
            format!(
                "paced at {EVENTS_PER_SECOND}/s, one message_received each, texts of {}–{} characters",
                texts::MIN_CHARS,
                texts::MAX_CHARS
            ),
        ),
        (
            "commit→receipt p50 ms".into(),
            ms(&lower, 0.5),
            "receipt − the producer's response: the commit was before it (lower bound)".into(),
        ),
        (
            "commit→receipt p99 ms".into(),
            ms(&lower, 0.99),
            String::new(),
        ),
        (
            "commit→receipt max ms".into(),
            max_ms(&lower),
            String::new(),
        ),
        (
            "send→receipt p99 ms".into(),
            ms(&upper, 0.99),
            "receipt − the producer's send: the upper bound".into(),
        ),
        ("send→receipt max ms".into(), max_ms(&upper), String::new()),
        (
            "received before the response, %".into(),
            if received == 0 {
                0.0
            } else {
                early as f64 * 100.0 / received as f64
            },
            "counted as 0 ms in the lower bound".into(),
        ),
        (
            "commit→receipt over 200 ms".into(),
            late as f64,
            "events, by the lower bound".into(),
        ),
        ("missed".into(), missed as f64, "target 0".into()),
        ("duplicates".into(), d.duplicates as f64, String::new()),
        (
            "other events of the campaign".into(),
            d.others as f64,
            "not from a measured message (warm-up events numbered late)".into(),
        ),
        ("polls".into(), d.polls as f64, "feed answers".into()),
        (
            "producer p99 ms".into(),
            ms(&responses, 0.99),
            String::new(),
        ),
        (
            "errors".into(),
            (errors + d.errors) as f64,
            "producer requests and feed polls".into(),
        ),
    ])
}

/// Changes per second applied during `list-changing`.
const CHANGES_PER_SECOND: u64 = 100;

/// The server's view cache (hits, misses) so far, from `/metrics`.
async fn view_cache_counts(address: &str) -> (u64, u64) {
    let Ok(response) = client().get(format!("{address}/metrics")).send().await else {
        return (0, 0);
    };
    let text = response.text().await.unwrap_or_default();
    let value = |outcome: &str| {
        let prefix = format!("relevo_view_cache_total{{outcome=\"{outcome}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (value("hit"), value("miss"))
}

/// The server's CPU milliseconds per successful request since `before`.
fn cpu_ms_per(server: &Server, before: f64, requests: u64) -> (String, f64, String) {
    let used = server.cpu_seconds() - before;
    (
        "server CPU ms per request".into(),
        if requests == 0 {
            0.0
        } else {
            used * 1000.0 / requests as f64
        },
        "user + system time of the server process".into(),
    )
}

/// How long one view may take alone (issue 23, item 1).
const VIEW_BUDGET_MS: f64 = 20.0;

/// `views`: every combination of the Mensajes filters (the views
/// `tests/query_plans.rs` plans), each asked alone, one after another: the
/// page and its tab counts as the table asks for them (`list_with_counts`),
/// straight from the Store, so the figure is the database's part of a
/// first, uncached view. Each view is asked twice and the second time is
/// kept (the first reads its pages from disk into the cache, which a
/// server that has run for a while has done). Bounded by a 30-minute
/// deadline; the views not reached are counted.
async fn views(url: &str) -> anyhow::Result<Figures> {
    let store = Store::connect(url).await?;
    let now = relevo::db::Ts::now();
    let stale_cutoffs = store
        .stale_thresholds(&Scope::All)
        .await?
        .into_iter()
        .map(|(id, minutes)| {
            (
                id,
                relevo::db::Ts::new(now.0 - chrono::Duration::minutes(minutes)),
            )
        })
        .collect();
    let views = every_view::every_view(&every_view::Subjects {
        campaign: id(K_CAMPAIGN, 0),
        ten_campaigns: (0..10).map(|c| id(K_CAMPAIGN, c)).collect(),
        agent: dataset::agent_id(0, 0),
        stale_cutoffs,
        now,
        folio: "4242".into(),
        phone: dataset::contact_phone(77),
        // "cliente 4" is in one contact name in nine: a broad name search.
        name: "cliente 4".into(),
        // Every contact's name begins "cliente": the broadest search there is.
        name_start: "cl".into(),
    });
    // `RELEVO_BENCH_VIEWS=text` keeps the views whose name holds `text`
    // (a class of slow views, say "desconectado nombre"), and
    // `RELEVO_BENCH_EXPLAIN=1` prints each one's plans with its time.
    let matching = std::env::var("RELEVO_BENCH_VIEWS").unwrap_or_default();
    let explain = std::env::var_os("RELEVO_BENCH_EXPLAIN").is_some();
    let views: Vec<_> = views
        .into_iter()
        .filter(|view| view.name.contains(&matching))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30 * 60);
    let mut h = histogram();
    let mut timed: Vec<(f64, String)> = Vec::with_capacity(views.len());
    let mut errors = 0u64;
    for view in &views {
        if Instant::now() >= deadline {
            break;
        }
        let mut elapsed = 0.0;
        for _ in 0..2 {
            let started = Instant::now();
            let result = store
                .list_with_counts(&view.scope, &view.filter, view.cursor)
                .await;
            elapsed = started.elapsed().as_secs_f64() * 1000.0;
            if result.is_err() {
                errors += 1;
            }
        }
        h.record((elapsed * 1000.0) as u64).ok();
        if explain {
            let page = store
                .explain_list(&view.scope, &view.filter, view.cursor)
                .await?;
            let counts = store.explain_counts(&view.scope, &view.filter).await?;
            println!("{elapsed:.2} ms  {}", view.name);
            println!("  page:\n    {}", page.join("\n    "));
            println!("  counts:\n    {}", counts.join("\n    "));
        }
        timed.push((elapsed, view.name.clone()));
    }
    store.close().await;
    timed.sort_by(|a, b| b.0.total_cmp(&a.0));
    let over = timed.iter().filter(|(ms, _)| *ms > VIEW_BUDGET_MS).count();
    // Every view's time, slowest first, for finding the slow classes.
    let all: String = timed
        .iter()
        .map(|(ms, name)| format!("{ms:.2}\t{name}\n"))
        .collect();
    let file = crate::bench_dir().join("views-timings.tsv");
    if std::fs::write(&file, all).is_ok() {
        println!("  views: every view's time in {}", file.display());
    }
    println!("  views: the slowest of {} asked:", timed.len());
    for (ms, name) in timed.iter().take(15) {
        println!("    {ms:>9.1} ms  {name}");
    }
    let slowest = timed.first().cloned().unwrap_or_default();
    Ok(vec![
        (
            "views asked".into(),
            timed.len() as f64,
            format!("of {} (the rest past the deadline)", views.len()),
        ),
        ("views over 20 ms".into(), over as f64, "target 0".into()),
        ("view p50 ms".into(), ms(&h, 0.5), String::new()),
        ("view p99 ms".into(), ms(&h, 0.99), String::new()),
        ("slowest view ms".into(), slowest.0, slowest.1),
        ("errors".into(), errors as f64, String::new()),
    ])
}
