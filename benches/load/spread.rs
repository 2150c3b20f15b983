//! `spread`: issue 23's opening table, asked again with this benchmark.
//!
//! The issue measured from outside the product, at 1,000,000 conversations
//! and 32 connections, how the Mensajes list fares as its views spread over
//! people and filters: one administrator's default view without gzip and
//! with it, then 20 administrators with the status tab varied, with the
//! tab and a start date varied, and with the tab and the channel varied.
//! Each [`Row`] is one of those lines, measured for a fifth of `--seconds`
//! (at least 4 s) on one server at its default log level, in the issue's
//! order, so the view cache holds what the earlier rows left as it would
//! have there. The report gives each row's requests/s, p50, p99, errors,
//! the number of distinct views asked and the share the view cache served.
//!
//! Every request asks for a whole page (`/mensajes`, as a link or a
//! reload does), read to its last byte; every row but the first sends a
//! browser's headers (gzip accepted). Client `w` is administrator `w % 20`
//! in the varied rows, and every filter is drawn from [`SEED`], so two runs
//! ask for the same views in the same order. Traffic goes to 127.0.0.1
//! only, and every loop is bounded in count and time (see `drive`).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{HTML, browser, drive, login, ms, view_cache_counts};
use crate::dataset;
use crate::{Figures, Options, Server};

/// The seed every row's filters are drawn from.
const SEED: u64 = 0x2026_0023_0000;

/// The status tabs of the Mensajes page, as their links name them
/// (`""` is the default, Abiertas): with the 20 administrators, the
/// issue's 199 distinct views.
const TABS: [&str; 10] = [
    "",
    "todas",
    "rezagadas",
    "cancelled",
    "assigned",
    "in_progress",
    "icr",
    "resolved",
    "out_of_hours",
    "agents_offline",
];

/// The channel kinds the channel filter offers.
const CHANNELS: [&str; 4] = ["whatsapp", "messenger", "telegram", "web"];

/// The data set's days of conversations, the start dates drawn from.
const DAYS: u64 = 180;

/// What a row's clients ask for.
#[derive(Clone, Copy)]
enum Views {
    /// Administrator 0's default view, for every client.
    OneView,
    /// The status tab varied.
    Tabs,
    /// The status tab and a start date (`desde`) varied.
    TabsAndStart,
    /// The status tab and the channel (`canal`) varied.
    TabsAndChannel,
}

/// One line of the table.
struct Row {
    name: &'static str,
    what: &'static str,
    views: Views,
    gzip: bool,
}

const ROWS: [Row; 5] = [
    Row {
        name: "one view, plain",
        what: "one administrator's default view, without gzip",
        views: Views::OneView,
        gzip: false,
    },
    Row {
        name: "one view",
        what: "the same view with gzip",
        views: Views::OneView,
        gzip: true,
    },
    Row {
        name: "tabs",
        what: "20 administrators, status tabs varied",
        views: Views::Tabs,
        gzip: true,
    },
    Row {
        name: "tabs, start",
        what: "20 administrators, status tabs and a start date",
        views: Views::TabsAndStart,
        gzip: true,
    },
    Row {
        name: "tabs, channel",
        what: "20 administrators, the channel filter varied",
        views: Views::TabsAndChannel,
        gzip: true,
    },
];

/// A number in `0..n` drawn from `(row, worker, i)`: the same request of
/// the same client asks for the same view in every run.
fn draw(row: usize, worker: usize, i: u64, n: u64) -> u64 {
    let mut z = SEED ^ ((row as u64) << 56) ^ ((worker as u64) << 40) ^ i;
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) % n.max(1)
}

/// The query string of request `i` of client `worker` in row `row`.
fn query(row: usize, views: Views, worker: usize, i: u64) -> String {
    let tab = TABS[draw(row, worker, i, TABS.len() as u64) as usize];
    let mut pairs: Vec<(&str, String)> = Vec::new();
    if !tab.is_empty() && !matches!(views, Views::OneView) {
        pairs.push(("estatus", tab.to_owned()));
    }
    match views {
        Views::OneView | Views::Tabs => {}
        Views::TabsAndStart => {
            let days_ago = 1 + draw(row, worker, i + (1 << 32), DAYS) as i64;
            let day = chrono::Utc::now() - chrono::Duration::days(days_ago);
            pairs.push(("desde", day.format("%Y-%m-%d").to_string()));
        }
        Views::TabsAndChannel => {
            let channel =
                CHANNELS[draw(row, worker, i + (1 << 32), CHANNELS.len() as u64) as usize];
            pairs.push(("canal", channel.to_owned()));
        }
    }
    serde_urlencoded::to_string(&pairs).unwrap_or_default()
}

pub async fn run(options: &Options, url: &str) -> anyhow::Result<Figures> {
    let seconds = Duration::from_secs((options.seconds / 5).max(4));
    let server = Server::start(url, "spread").await?;
    let address = server.address.clone();
    // One session per client for administrator 0, and one per client for
    // administrator `w % 20`.
    let mut one = Vec::new();
    let mut varied = Vec::new();
    for worker in 0..options.clients {
        one.push(login(&address, &dataset::admin_email(0)).await?.0);
        let admin = worker as u64 % dataset::ADMINS;
        varied.push(login(&address, &dataset::admin_email(admin)).await?.0);
    }
    let (one, varied) = (Arc::new(one), Arc::new(varied));
    let mut figures = Figures::new();
    for (r, row) in ROWS.iter().enumerate() {
        let (hits_before, misses_before) = view_cache_counts(&address).await;
        let asked: Arc<Mutex<HashSet<(usize, String)>>> = Arc::default();
        let (views, gzip) = (row.views, row.gzip);
        let sessions = if matches!(views, Views::OneView) {
            one.clone()
        } else {
            varied.clone()
        };
        let (base, seen) = (address.clone(), asked.clone());
        let (h, ok, errors, elapsed) = drive(options.clients, seconds, move |worker, i| {
            let client = sessions[worker].clone();
            let query = query(r, views, worker, i);
            let admin = if matches!(views, Views::OneView) {
                0
            } else {
                worker % dataset::ADMINS as usize
            };
            seen.lock().unwrap().insert((admin, query.clone()));
            let url = if query.is_empty() {
                format!("{base}/mensajes")
            } else {
                format!("{base}/mensajes?{query}")
            };
            async move {
                let request = client.get(url);
                let request = if gzip {
                    browser(request, HTML, false)
                } else {
                    request.header("Accept", HTML)
                };
                let Ok(response) = request.send().await else {
                    return Some(false);
                };
                let ok = response.status().is_success();
                let Ok(body) = response.bytes().await else {
                    return Some(false);
                };
                Some(ok && !body.is_empty())
            }
        })
        .await;
        let (hits, misses) = view_cache_counts(&address).await;
        let (hits, misses) = (hits - hits_before, misses - misses_before);
        let from_memory = if hits + misses == 0 {
            0.0
        } else {
            hits as f64 * 100.0 / (hits + misses) as f64
        };
        let distinct = asked.lock().unwrap().len();
        let name = row.name;
        figures.extend([
            (
                format!("{name}: requests/s"),
                ok as f64 / elapsed,
                row.what.to_owned(),
            ),
            (format!("{name}: p50 ms"), ms(&h, 0.5), String::new()),
            (format!("{name}: p99 ms"), ms(&h, 0.99), String::new()),
            (format!("{name}: errors"), errors as f64, String::new()),
            (
                format!("{name}: distinct views"),
                distinct as f64,
                "administrator and filters asked".into(),
            ),
            (
                format!("{name}: from memory, %"),
                from_memory,
                "view cache hits of its look-ups".into(),
            ),
        ]);
    }
    server.stop().await;
    Ok(figures)
}
