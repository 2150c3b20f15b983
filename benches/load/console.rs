//! `console`: the Mensajes console as a contact centre uses it (issue 23,
//! item 3), not one view asked again and again.
//!
//! 200 Administradores of 1 to 10 campaigns each and 5 Super
//! Administradores (added to the run's copy of the data set before the
//! server starts, so the data set and the other scenarios' figures stay as
//! they were) log in through the form. [`CLIENTS`] clients then each send
//! one request after another, as one of their people (a client moves to
//! its next person one request in [`PERSON_SWITCH`]), each request drawn
//! from the [`JOURNEY`] table: a list view with random filters, the next or
//! previous page through the page's own `rel="next"`/`rel="prev"` links, a
//! search by name, phone prefix or folio, the `/mensajes/cambios` fetch a
//! live tab makes after an event (for rows of the page it shows), the
//! Cancelar/Reasignar modal, a conversation page, or a cancel or
//! reassignment posted as the modal posts it. A step that needs a page
//! first (paging, `cambios`, the modal, the conversation page) when the
//! person has none, or a write when no conversation is left to change, is
//! a list view instead: the figures count what was sent.
//!
//! Meanwhile [`MESSAGES_PER_SECOND`] customer messages arrive through the
//! API (paced, to contacts none of the written conversations belongs to)
//! and [`STREAMS`] live streams of the same people stay open and are read.
//! Requests carry a browser's headers (gzip accepted; htmx's `HX-Request`
//! where the console's script sends it); the server runs at its default
//! log level, writing its log to `target/bench/console-server.log`.
//!
//! Everything random is drawn from [`SEED`]: the people's campaigns, each
//! client's journey and each filter. A warm-up of [`WARM_UP`] runs the
//! same traffic unmeasured; then `--seconds` are measured. Every loop is
//! bounded in count and time; traffic goes to 127.0.0.1 only.

use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use relevo::db::Store;
use uuid::Uuid;

use super::{
    HTML, browser, category_of, histogram, login, ms, open_conversations, producer_client,
    sent_gzipped,
};
use crate::dataset::{self, CAMPAIGNS, id};
use crate::texts;
use crate::{Figures, Options, Server};

/// Concurrent clients (browsers), each sending its next request as soon as
/// the last one answered.
pub const CLIENTS: usize = 64;
/// Administradores added for the scenario, each of 1 to 10 campaigns.
const ADMINISTRATORS: u64 = 200;
/// Super Administradores added for the scenario.
const SUPERS: u64 = 5;
/// Live streams kept open (and read) during the run.
const STREAMS: usize = 500;
/// Customer messages per second through the API during the run.
const MESSAGES_PER_SECOND: u64 = 100;
/// Seed of every random choice of the scenario.
const SEED: u64 = 0x2026_0023_0003;
/// Unmeasured traffic before the measurement.
const WARM_UP: Duration = Duration::from_secs(3);
/// One request in this many moves a client to its next person.
const PERSON_SWITCH: u64 = 20;
/// The most requests one client sends in a run.
const MAX_REQUESTS_PER_CLIENT: u64 = 2_000_000;
/// Open conversations fetched for the writes (those of contacts the
/// customer messages never reach, about half, are kept).
const WRITE_POOL: usize = 30_000;
/// Contacts from this number on receive the customer messages; the
/// conversations written to belong to contacts below it.
const MESSAGE_CONTACTS_FROM: u64 = dataset::CONTACTS / 2;

/// What one request of the journey is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    List,
    Page,
    Search,
    Changes,
    Modal,
    Conversation,
    Write,
}

const KINDS: [Kind; 7] = [
    Kind::List,
    Kind::Page,
    Kind::Search,
    Kind::Changes,
    Kind::Modal,
    Kind::Conversation,
    Kind::Write,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::List => "list",
            Kind::Page => "page",
            Kind::Search => "search",
            Kind::Changes => "cambios",
            Kind::Modal => "modal",
            Kind::Conversation => "conversation",
            Kind::Write => "write",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Kind::List => "a list view with random filters (30 % whole pages, 70 % htmx results)",
            Kind::Page => "the next or previous page through the page's rel links",
            Kind::Search => "a search by name, phone prefix or folio",
            Kind::Changes => "/mensajes/cambios for 1-3 rows of the page shown",
            Kind::Modal => "the Cancelar/Reasignar modal (htmx)",
            Kind::Conversation => "a conversation page",
            Kind::Write => "a cancel or a reassignment, posted as the modal does",
        }
    }

    /// The p99 target of issue 23: 50 ms for a read, 100 ms for a write.
    fn p99_target_ms(self) -> f64 {
        if self == Kind::Write { 100.0 } else { 50.0 }
    }
}

/// The journey: each kind of request and its share of requests, in percent.
const JOURNEY: [(Kind, u64); 7] = [
    (Kind::List, 55),
    (Kind::Page, 15),
    (Kind::Search, 10),
    (Kind::Changes, 10),
    (Kind::Modal, 5),
    (Kind::Conversation, 3),
    (Kind::Write, 2),
];

/// SplitMix64: small, seeded, the same sequence on every machine.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// One of the table's values, in proportion to its weight.
    fn weighted<T: Copy>(&mut self, table: &[(T, u64)]) -> T {
        let total: u64 = table.iter().map(|(_, w)| w).sum();
        let mut at = self.below(total);
        for (value, weight) in table {
            if at < *weight {
                return *value;
            }
            at -= weight;
        }
        table[table.len() - 1].0
    }
}

/// One person of the scenario.
struct Person {
    email: String,
    id: Uuid,
    super_admin: bool,
    /// The campaigns they are assigned to; for a Super Administrador, all
    /// (what the filters can name).
    campaigns: Vec<u64>,
}

/// The 200 Administradores (1 to 10 distinct campaigns each, drawn from
/// the seed) and the 5 Super Administradores.
fn people() -> Vec<Person> {
    let mut rng = Rng::new(SEED);
    let mut people = Vec::new();
    for k in 0..ADMINISTRATORS {
        let count = 1 + rng.below(10) as usize;
        let mut all: Vec<u64> = (0..CAMPAIGNS).collect();
        for i in 0..count {
            let j = i + rng.below((all.len() - i) as u64) as usize;
            all.swap(i, j);
        }
        all.truncate(count);
        people.push(Person {
            email: format!("bench-console-admin-{k}@relevo.bench"),
            id: id(dataset::K_USER, 100_000 + k),
            super_admin: false,
            campaigns: all,
        });
    }
    for k in 0..SUPERS {
        people.push(Person {
            email: format!("bench-console-super-{k}@relevo.bench"),
            id: id(dataset::K_USER, 200_000 + k),
            super_admin: true,
            campaigns: (0..CAMPAIGNS).collect(),
        });
    }
    people
}

macro_rules! on_write_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match $store {
            Store::Sqlite(pools) => {
                let $pool = &pools.write;
                $body
            }
            Store::Postgres(pg) => {
                let $pool = &pg.pool;
                $body
            }
        }
    };
}

/// Adds the people to the run's copy of the data set (before the server
/// starts: no cache has seen the directory yet).
async fn add_people(store: &Store, people: &[Person]) -> anyhow::Result<()> {
    let hash = relevo::services::auth::password::hash(dataset::PASSWORD.to_owned()).await?;
    let now = relevo::db::Ts::now();
    on_write_pool!(store, |pool| {
        let mut tx = pool.begin().await?;
        for (k, person) in people.iter().enumerate() {
            sqlx::query(
                "insert into users (id, email, name, role, active, connected, password_hash, created_at, updated_at) \
                 values ($1, $2, $3, $4, true, false, $5, $6, $6)",
            )
            .bind(person.id)
            .bind(&person.email)
            .bind(if person.super_admin {
                format!("Super Consola {k}")
            } else {
                format!("Administrador Consola {k}")
            })
            .bind(if person.super_admin { "super_admin" } else { "admin" })
            .bind(&hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if person.super_admin {
                continue;
            }
            for c in &person.campaigns {
                sqlx::query(
                    "insert into campaign_members (campaign_id, user_id, created_at) values ($1, $2, $3)",
                )
                .bind(id(dataset::K_CAMPAIGN, *c))
                .bind(person.id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
    });
    Ok(())
}

/// A response read to its last byte, as a browser does: whether it
/// succeeded, its status, and its body as sent (with whether it is gzip).
async fn read(request: reqwest::RequestBuilder) -> (bool, u16, Option<(bytes::Bytes, bool)>) {
    let response = match request.send().await {
        Ok(response) => response,
        Err(error) => {
            // Counted as status 0.
            say_why("got no response", &error);
            return (false, 0, None);
        }
    };
    let status = response.status().as_u16();
    let gzip = sent_gzipped(&response);
    match response.bytes().await {
        Ok(body) => ((200..300).contains(&status), status, Some((body, gzip))),
        Err(error) => {
            say_why(&format!("(status {status}) lost its body"), &error);
            (false, status, None)
        }
    }
}

/// Prints why a request failed without a status to count it by (a
/// refused or reset connection, a timeout, a body cut short), for the
/// first few failures of a run: the tally cannot say it.
fn say_why(what: &str, error: &reqwest::Error) {
    static SAID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    if SAID.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < 5 {
        println!("  console: a request {what}: {error:?}");
    }
}

/// What a results page offers the next steps: its paging links, rows and
/// the rows that offer Cancelar/Reasignar.
#[derive(Default)]
struct Parsed {
    next: Option<String>,
    prev: Option<String>,
    /// (folio, id) of each row.
    rows: Vec<(i64, String)>,
    actionable: Vec<i64>,
}

fn unescape(href: &str) -> String {
    href.replace("&amp;", "&")
        .replace("&#38;", "&")
        .replace("&#x3D;", "=")
}

fn attribute_after<'a>(html: &'a str, marker: &str) -> Option<&'a str> {
    let start = html.find(marker)? + marker.len();
    Some(&html[start..start + html[start..].find('"')?])
}

fn parse(html: &str) -> Parsed {
    let mut parsed = Parsed {
        next: attribute_after(html, "rel=\"next\" href=\"").map(unescape),
        prev: attribute_after(html, "rel=\"prev\" href=\"").map(unescape),
        ..Parsed::default()
    };
    let mut rest = html;
    for _ in 0..500 {
        let Some(at) = rest.find("<tr id=\"conversacion-") else {
            break;
        };
        rest = &rest[at + 1..];
        let folio = attribute_after(rest, "data-folio=\"").and_then(|f| f.parse().ok());
        let row_id = attribute_after(rest, "data-id=\"");
        if let (Some(folio), Some(row_id)) = (folio, row_id) {
            parsed.rows.push((folio, row_id.to_owned()));
            let row_end = rest.find("</tr>").unwrap_or(rest.len());
            if rest[..row_end].contains(&format!("href=\"/mensajes/{folio}/acciones\"")) {
                parsed.actionable.push(folio);
            }
        }
    }
    parsed
}

/// The page a person's tab shows: its filters, and the body as received,
/// parsed only when a later step needs it (as a browser would have it).
#[derive(Default)]
struct Tab {
    /// The filter query (no paging), what `cambios` repeats.
    filters: String,
    body: Option<(bytes::Bytes, bool)>,
    parsed: Option<Parsed>,
}

impl Tab {
    fn show(&mut self, filters: String, body: Option<(bytes::Bytes, bool)>) {
        *self = Tab {
            filters,
            body,
            parsed: None,
        };
    }

    fn parsed(&mut self) -> &Parsed {
        if self.parsed.is_none() {
            let html = match &self.body {
                Some((body, true)) => {
                    let mut text = String::new();
                    let _ = flate2::read::GzDecoder::new(&body[..]).read_to_string(&mut text);
                    text
                }
                Some((body, false)) => String::from_utf8_lossy(body).into_owned(),
                None => String::new(),
            };
            self.parsed = Some(parse(&html));
        }
        self.parsed.get_or_insert_with(Parsed::default)
    }
}

/// Random Mensajes filters of `person`, in the vocabulary of the views the
/// query-plan test plans (`tests/common/views.rs`): tab, campaign, agent
/// (or any disconnected one), channel, dates and order.
fn random_filters(rng: &mut Rng, person: &Person) -> String {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    let status = rng.weighted(&[
        ("", 35),
        ("todas", 15),
        ("rezagadas", 12),
        ("cancelled", 8),
        ("assigned", 8),
        ("in_progress", 8),
        ("icr", 5),
        ("resolved", 5),
        ("out_of_hours", 2),
        ("agents_offline", 2),
    ]);
    if !status.is_empty() {
        pairs.push(("estatus", status.to_owned()));
    }
    if rng.below(100) < 40 {
        let campaign = *rng.pick(&person.campaigns);
        pairs.push(("campana", id(dataset::K_CAMPAIGN, campaign).to_string()));
    }
    match rng.below(100) {
        0..15 => {
            let campaign = *rng.pick(&person.campaigns);
            let agent = dataset::agent_id(campaign, rng.below(dataset::AGENTS_PER_CAMPAIGN));
            pairs.push(("agente", agent.to_string()));
        }
        15..20 => pairs.push(("agente", "desconectado".to_owned())),
        _ => {}
    }
    if rng.below(100) < 15 {
        let channel = *rng.pick(&["whatsapp", "web", "telegram"]);
        pairs.push(("canal", channel.to_owned()));
    }
    let day = |days: i64| {
        (chrono::Utc::now() - chrono::Duration::days(days))
            .format("%Y-%m-%d")
            .to_string()
    };
    match rng.below(100) {
        0..10 => pairs.push(("desde", day(2))),
        10..17 => pairs.push(("hasta", day(1))),
        17..25 => {
            pairs.push(("desde", day(30)));
            pairs.push(("hasta", day(1)));
        }
        _ => {}
    }
    match rng.below(100) {
        0..15 => pairs.push(("orden", "sin-actividad".to_owned())),
        15..30 => pairs.push(("orden", "en-estatus".to_owned())),
        _ => {}
    }
    serde_urlencoded::to_string(&pairs).unwrap_or_default()
}

/// A search as typed: a customer's name, the start of a phone number of a
/// contact in the person's campaigns, or a folio.
fn random_search(rng: &mut Rng, person: &Person, conversations: u64) -> String {
    let q = match rng.below(3) {
        0 => format!("Cliente {}", rng.below(dataset::CONTACTS)),
        1 => {
            let campaign = *rng.pick(&person.campaigns);
            let contact = campaign * dataset::CHANNELS_PER_CAMPAIGN
                + rng.below(dataset::CHANNELS_PER_CAMPAIGN)
                + CAMPAIGNS
                    * dataset::CHANNELS_PER_CAMPAIGN
                    * rng.below(dataset::CONTACTS / (CAMPAIGNS * dataset::CHANNELS_PER_CAMPAIGN));
            // Without the country code, the area and 6 digits.
            dataset::contact_phone(contact)[2..10].to_owned()
        }
        _ => (10_001 + rng.below(conversations)).to_string(),
    };
    serde_urlencoded::to_string([("q", q)]).unwrap_or_default()
}

/// Open conversations (folio, version) to write to, per campaign.
type WritePool = Vec<Mutex<Vec<(i64, i64)>>>;

/// What the clients share.
struct Shared {
    address: String,
    people: Vec<Person>,
    /// Each person's session and CSRF token.
    sessions: Vec<(reqwest::Client, String)>,
    writes: WritePool,
    conversations: u64,
    measure_from: Instant,
    deadline: Instant,
}

/// One client's figures.
struct Tally {
    latencies: Vec<Histogram<u64>>,
    ok: Vec<u64>,
    errors: Vec<u64>,
    statuses: HashMap<(&'static str, u16), u64>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            latencies: KINDS.iter().map(|_| histogram()).collect(),
            ok: vec![0; KINDS.len()],
            errors: vec![0; KINDS.len()],
            statuses: HashMap::new(),
        }
    }

    fn merge(&mut self, other: Tally) {
        for (i, h) in other.latencies.into_iter().enumerate() {
            let _ = self.latencies[i].add(h);
            self.ok[i] += other.ok[i];
            self.errors[i] += other.errors[i];
        }
        for (key, n) in other.statuses {
            *self.statuses.entry(key).or_default() += n;
        }
    }
}

/// What one step sends, decided before sending: a step that cannot be
/// taken (paging from a page without neighbours, the modal of a page
/// without open rows, a write with nothing left to change) is a list view.
enum Plan {
    /// Filters (the query, no paging), whole page or htmx results.
    List(String, bool),
    Search(String),
    Page(String),
    /// The query of `cambios`: the tab's filters and the rows' ids.
    Changes(String),
    Modal(i64),
    Conversation(i64),
    /// (folio, version, campaign)
    Write(i64, i64, u64),
}

fn plan(shared: &Shared, rng: &mut Rng, person: usize, tab: &mut Tab, kind: Kind) -> Plan {
    let who = &shared.people[person];
    let planned = match kind {
        Kind::List => None,
        Kind::Search => Some(Plan::Search(random_search(rng, who, shared.conversations))),
        Kind::Page if tab.body.is_some() => {
            let parsed = tab.parsed();
            match (&parsed.next, &parsed.prev) {
                (Some(next), Some(prev)) => Some(Plan::Page(if rng.below(10) < 7 {
                    next.clone()
                } else {
                    prev.clone()
                })),
                (Some(only), None) | (None, Some(only)) => Some(Plan::Page(only.clone())),
                (None, None) => None,
            }
        }
        Kind::Changes if tab.body.is_some() => {
            let mut query = tab.filters.clone();
            let rows = &tab.parsed().rows;
            if !rows.is_empty() {
                for _ in 0..1 + rng.below(3) {
                    let (_, row_id) = rng.pick(rows);
                    if !query.is_empty() {
                        query.push('&');
                    }
                    query.push_str("id=");
                    query.push_str(row_id);
                }
            }
            Some(Plan::Changes(query))
        }
        Kind::Modal if tab.body.is_some() => {
            let actionable = &tab.parsed().actionable;
            (!actionable.is_empty()).then(|| Plan::Modal(*rng.pick(actionable)))
        }
        Kind::Conversation if tab.body.is_some() => {
            let rows = &tab.parsed().rows;
            (!rows.is_empty()).then(|| Plan::Conversation(rng.pick(rows).0))
        }
        Kind::Write => {
            let start = rng.below(who.campaigns.len() as u64) as usize;
            (0..who.campaigns.len()).find_map(|i| {
                let campaign = who.campaigns[(start + i) % who.campaigns.len()];
                let item = shared.writes[campaign as usize].lock().unwrap().pop();
                item.map(|(folio, version)| Plan::Write(folio, version, campaign))
            })
        }
        _ => None,
    };
    planned.unwrap_or_else(|| Plan::List(random_filters(rng, who), rng.below(10) < 3))
}

/// One request of the journey as `person`: answers the kind sent, whether
/// it succeeded and its status.
async fn step(
    shared: &Shared,
    rng: &mut Rng,
    person: usize,
    tab: &mut Tab,
    kind: Kind,
) -> (Kind, bool, u16) {
    let address = &shared.address;
    let (client, csrf) = &shared.sessions[person];
    match plan(shared, rng, person, tab, kind) {
        Plan::List(filters, whole) => {
            let url = if filters.is_empty() {
                format!("{address}/mensajes")
            } else {
                format!("{address}/mensajes?{filters}")
            };
            let (ok, status, body) = read(browser(client.get(url), HTML, !whole)).await;
            tab.show(filters, body);
            (Kind::List, ok, status)
        }
        Plan::Search(filters) => {
            let url = format!("{address}/mensajes?{filters}");
            let (ok, status, body) = read(browser(client.get(url), HTML, true)).await;
            tab.show(filters, body);
            (Kind::Search, ok, status)
        }
        Plan::Page(href) => {
            let filters = std::mem::take(&mut tab.filters);
            let (ok, status, body) =
                read(browser(client.get(format!("{address}{href}")), HTML, true)).await;
            tab.show(filters, body);
            (Kind::Page, ok, status)
        }
        Plan::Changes(query) => {
            let url = format!("{address}/mensajes/cambios?{query}");
            let (ok, status, _) = read(browser(client.get(url), "*/*", false)).await;
            (Kind::Changes, ok, status)
        }
        Plan::Modal(folio) => {
            let url = format!("{address}/mensajes/{folio}/acciones");
            let (ok, status, _) = read(browser(client.get(url), HTML, true)).await;
            (Kind::Modal, ok, status)
        }
        Plan::Conversation(folio) => {
            let url = format!("{address}/mensajes/{folio}");
            let (ok, status, _) = read(browser(client.get(url), HTML, false)).await;
            (Kind::Conversation, ok, status)
        }
        Plan::Write(folio, version, campaign) => {
            let mut form: Vec<(&str, String)> =
                vec![("_csrf", csrf.clone()), ("version", version.to_string())];
            if rng.below(2) == 0 {
                form.push(("accion", "cancelar".into()));
                form.push(("categoria", category_of(campaign).to_string()));
            } else {
                // The data set's agent of conversation n is n % 10: another one.
                let current = (folio as u64 - 10_001) % dataset::AGENTS_PER_CAMPAIGN;
                let agent = (current + 1 + rng.below(dataset::AGENTS_PER_CAMPAIGN - 1))
                    % dataset::AGENTS_PER_CAMPAIGN;
                form.push(("accion", "reasignar".into()));
                form.push(("agente", dataset::agent_id(campaign, agent).to_string()));
                form.push(("confirmar_desconectado", "1".into()));
            }
            let request = client
                .post(format!("{address}/mensajes/{folio}/acciones"))
                .form(&form);
            let (ok, status, _) = read(browser(request, HTML, true)).await;
            (Kind::Write, ok, status)
        }
    }
}

/// One client: its people, one request after another until the deadline.
async fn client_loop(shared: Arc<Shared>, worker: usize) -> Tally {
    let mut rng = Rng::new(SEED ^ ((worker as u64 + 1) << 32));
    let mine: Vec<usize> = (worker..shared.people.len()).step_by(CLIENTS).collect();
    let mut tabs: HashMap<usize, Tab> = HashMap::new();
    let mut tally = Tally::new();
    if mine.is_empty() {
        return tally;
    }
    let mut current = rng.below(mine.len() as u64) as usize;
    for _ in 0..MAX_REQUESTS_PER_CLIENT {
        let started = Instant::now();
        if started >= shared.deadline {
            break;
        }
        if rng.below(PERSON_SWITCH) == 0 {
            current = (current + 1) % mine.len();
        }
        let person = mine[current];
        let kind = rng.weighted(&JOURNEY);
        let tab = tabs.entry(person).or_default();
        let (sent, ok, status) = step(&shared, &mut rng, person, tab, kind).await;
        if started < shared.measure_from {
            continue;
        }
        let i = KINDS.iter().position(|k| *k == sent).unwrap_or(0);
        let _ = tally.latencies[i].record(started.elapsed().as_micros().max(1) as u64);
        if ok {
            tally.ok[i] += 1;
        } else {
            tally.errors[i] += 1;
            *tally.statuses.entry((sent.name(), status)).or_default() += 1;
        }
    }
    tally
}

/// The server's counters of interest, from `/metrics`.
#[derive(Default, Clone, Copy)]
struct Counters {
    view_hits: u64,
    view_misses: u64,
    results_kept: u64,
    results_rendered: u64,
}

async fn counters(address: &str) -> Counters {
    let Ok(response) = super::client()
        .get(format!("{address}/metrics"))
        .send()
        .await
    else {
        return Counters::default();
    };
    let text = response.text().await.unwrap_or_default();
    let value = |family: &str, outcome: &str| {
        let prefix = format!("{family}{{outcome=\"{outcome}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    };
    Counters {
        view_hits: value("relevo_view_cache_total", "hit"),
        view_misses: value("relevo_view_cache_total", "miss"),
        results_kept: value("relevo_view_results_total", "kept"),
        results_rendered: value("relevo_view_results_total", "rendered"),
    }
}

/// What the live streams received.
#[derive(Default)]
struct Received {
    changes: AtomicU64,
    resyncs: AtomicU64,
    ended: AtomicU64,
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

pub async fn run(options: &Options, url: &str) -> anyhow::Result<Figures> {
    let measured = Duration::from_secs(options.seconds);
    let people = people();

    // Before the server starts: the people, and the conversations to write to.
    let store = Store::connect(url).await?;
    add_people(&store, &people).await?;
    let all: Vec<u64> = (0..CAMPAIGNS).collect();
    let mut pool: Vec<Vec<(i64, i64)>> = vec![Vec::new(); CAMPAIGNS as usize];
    for (folio, version, campaign) in open_conversations(&store, &all, WRITE_POOL).await? {
        let n = (folio - 10_001) as u64;
        // Only conversations the customer messages never reach.
        if (n * 7919) % dataset::CONTACTS < MESSAGE_CONTACTS_FROM {
            pool[campaign as usize].push((folio, version));
        }
    }
    // Popped from the end: the most recent (those on the first pages) first.
    for list in &mut pool {
        list.reverse();
    }
    let write_pool = pool.iter().map(Vec::len).sum::<usize>();
    store.close().await;

    let log = Server::log_of("console");
    let server = Server::start(url, "console").await?;
    let address = server.address.clone();

    println!("  console: logging {} people in…", people.len());
    let logins = Arc::new(Mutex::new(HashMap::new()));
    let mut tasks = Vec::new();
    for lane in 0..4usize {
        let emails: Vec<(usize, String)> = people
            .iter()
            .enumerate()
            .skip(lane)
            .step_by(4)
            .map(|(i, p)| (i, p.email.clone()))
            .collect();
        let (address, logins) = (address.clone(), logins.clone());
        tasks.push(tokio::spawn(async move {
            for (i, email) in emails {
                let session = login(&address, &email).await?;
                logins.lock().unwrap().insert(i, session);
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let mut logins = std::mem::take(&mut *logins.lock().unwrap());
    let sessions: Vec<(reqwest::Client, String)> = (0..people.len())
        .map(|i| logins.remove(&i).context("a session"))
        .collect::<anyhow::Result<_>>()?;

    // The live streams, each read until the end.
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(Received::default());
    let total = WARM_UP + measured;
    let mut readers = Vec::new();
    let mut opened = 0usize;
    for s in 0..STREAMS {
        let (client, _) = &sessions[s % sessions.len()];
        let request = browser(
            client.get(format!("{address}/mensajes/eventos")),
            "text/event-stream",
            false,
        )
        .timeout(total + Duration::from_secs(120));
        let Ok(response) = request.send().await else {
            continue;
        };
        if !response.status().is_success() {
            continue;
        }
        opened += 1;
        let (stop, received) = (stop.clone(), received.clone());
        readers.push(tokio::spawn(async move {
            let mut response = response;
            let mut buffer = String::new();
            let limit = Instant::now() + total + Duration::from_secs(60);
            while !stop.load(Ordering::Relaxed) && Instant::now() < limit {
                let chunk = match tokio::time::timeout(Duration::from_millis(500), response.chunk())
                    .await
                {
                    Ok(Ok(Some(chunk))) => chunk,
                    Ok(_) => {
                        received.ended.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    Err(_) => continue,
                };
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let frame: String = buffer.drain(..end + 2).collect();
                    if frame.contains("event: change") {
                        received.changes.fetch_add(1, Ordering::Relaxed);
                    } else if frame.contains("event: resync") {
                        received.resyncs.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }

    // The customer messages, paced, for the warm-up and the measurement.
    let started = Instant::now();
    let measure_from = started + WARM_UP;
    let deadline = measure_from + measured;
    let messages = {
        let texts = Arc::new(texts::pool());
        let producer = producer_client();
        let address = address.clone();
        let run_id = Uuid::now_v7().simple().to_string();
        tokio::spawn(async move {
            let interval = Duration::from_secs(1) / MESSAGES_PER_SECOND as u32;
            let count = MESSAGES_PER_SECOND * total.as_secs();
            let mut in_flight = Vec::with_capacity(count as usize);
            for n in 0..count {
                let due = started + interval * n as u32;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    tokio::time::sleep(wait).await;
                }
                if Instant::now() >= deadline {
                    break;
                }
                let channel = n % (CAMPAIGNS * dataset::CHANNELS_PER_CAMPAIGN);
                let contact = MESSAGE_CONTACTS_FROM
                    + channel
                    + CAMPAIGNS * dataset::CHANNELS_PER_CAMPAIGN * ((n * 37) % 1000);
                let body = serde_json::json!({
                    "message_id": format!("{run_id}-console-{n}"),
                    "from": dataset::contact_phone(contact),
                    "name": format!("Cliente {contact}"),
                    "text": texts[((n * 104_729) % texts.len() as u64) as usize],
                });
                let request = producer
                    .post(format!(
                        "{address}/api/v1/channels/{}/messages",
                        id(dataset::K_CHANNEL, channel)
                    ))
                    .bearer_auth(dataset::channel_token(channel))
                    .json(&body);
                in_flight.push(tokio::spawn(async move {
                    let sent = Instant::now();
                    let ok = match request.send().await {
                        Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    (sent, sent.elapsed(), ok)
                }));
            }
            let mut h = histogram();
            let (mut ok, mut errors) = (0u64, 0u64);
            for task in in_flight {
                match task.await {
                    Ok((sent, took, true)) if sent >= measure_from => {
                        let _ = h.record(took.as_micros().max(1) as u64);
                        ok += 1;
                    }
                    Ok((sent, _, false)) if sent >= measure_from => errors += 1,
                    Err(_) => errors += 1,
                    _ => {}
                }
            }
            (h, ok, errors)
        })
    };

    // The clients; the figures start after the warm-up.
    let shared = Arc::new(Shared {
        address: address.clone(),
        people,
        sessions,
        writes: pool.into_iter().map(Mutex::new).collect(),
        conversations: options.conversations,
        measure_from,
        deadline,
    });
    let mut clients = Vec::new();
    for worker in 0..CLIENTS {
        clients.push(tokio::spawn(client_loop(shared.clone(), worker)));
    }
    let sleep_until =
        |at: Instant| tokio::time::sleep(at.saturating_duration_since(Instant::now()));
    sleep_until(measure_from).await;
    let before = counters(&address).await;
    let cpu_before = server.cpu_seconds();
    let log_before = std::fs::metadata(&log).map_or(0, |m| m.len());
    let changes_before = received.changes.load(Ordering::Relaxed);
    let rss_peak = Arc::new(Mutex::new(0.0f64));
    let sampler = {
        let rss_peak = rss_peak.clone();
        let pid = server.child.id();
        tokio::spawn(async move {
            for _ in 0..36_000 {
                if let Some(pid) = pid
                    && let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
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
    let mut tally = Tally::new();
    for task in clients {
        if let Ok(t) = task.await {
            tally.merge(t);
        }
    }
    let elapsed = measure_from.elapsed().as_secs_f64();
    let cpu = server.cpu_seconds() - cpu_before;
    let after = counters(&address).await;
    let log_bytes = std::fs::metadata(&log)
        .map_or(0, |m| m.len())
        .saturating_sub(log_before);
    let changes = received.changes.load(Ordering::Relaxed) - changes_before;
    sampler.abort();
    let rss_end = server.rss_mib();
    let peak = rss_peak.lock().unwrap().max(rss_end);
    let (message_h, messages_ok, message_errors) = messages.await.context("the producer")?;
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
    }
    server.stop().await;

    let requests: u64 = tally.ok.iter().sum();
    let errors: u64 = tally.errors.iter().sum();
    let mut overall = histogram();
    for h in &tally.latencies {
        let _ = overall.add(h);
    }
    if !tally.statuses.is_empty() {
        let mut seen: Vec<_> = tally.statuses.iter().collect();
        seen.sort();
        println!("  console: errors by kind and status: {seen:?}");
    }
    let sent = requests + errors;
    let mut figures: Figures = vec![
        (
            "requests/s".into(),
            requests as f64 / elapsed,
            format!("{CLIENTS} clients, the journey's mix; target ≥ 2,000"),
        ),
        ("p50 ms".into(), ms(&overall, 0.5), String::new()),
        ("p99 ms".into(), ms(&overall, 0.99), String::new()),
        ("errors".into(), errors as f64, "target 0".into()),
    ];
    for (i, kind) in KINDS.iter().enumerate() {
        let name = kind.name();
        let n = tally.ok[i] + tally.errors[i];
        figures.push((
            format!("{name} requests/s"),
            tally.ok[i] as f64 / elapsed,
            format!("{:.1} % of requests: {}", percent(n, sent), kind.what()),
        ));
        figures.push((
            format!("{name} p50 ms"),
            ms(&tally.latencies[i], 0.5),
            String::new(),
        ));
        figures.push((
            format!("{name} p99 ms"),
            ms(&tally.latencies[i], 0.99),
            format!("target ≤ {:.0}", kind.p99_target_ms()),
        ));
        figures.push((
            format!("{name} errors"),
            tally.errors[i] as f64,
            String::new(),
        ));
    }
    let (hits, misses) = (
        after.view_hits.saturating_sub(before.view_hits),
        after.view_misses.saturating_sub(before.view_misses),
    );
    let (kept, rendered) = (
        after.results_kept.saturating_sub(before.results_kept),
        after
            .results_rendered
            .saturating_sub(before.results_rendered),
    );
    println!(
        "  console: view cache {hits} hits, {misses} misses; results {kept} kept, {rendered} rendered"
    );
    figures.extend([
        (
            "views served from memory, %".into(),
            percent(hits, hits + misses),
            "view cache hits of the list and page views (searches never use it)".into(),
        ),
        (
            "requests served from memory, %".into(),
            percent(hits, sent),
            "view cache hits over every request of the journey".into(),
        ),
        (
            "results sent from kept bytes, %".into(),
            percent(kept, kept + rendered),
            "rendered once per view, compressed smaller once asked again".into(),
        ),
        (
            "server CPU ms per request".into(),
            if requests == 0 {
                0.0
            } else {
                cpu * 1000.0 / requests as f64
            },
            "user + system, including the messages and the streams' frames".into(),
        ),
        (
            "server RSS peak, MiB".into(),
            peak,
            "100 ms samples; target ≤ 150".into(),
        ),
        (
            "customer messages/s".into(),
            messages_ok as f64 / elapsed,
            format!("through the API, paced at {MESSAGES_PER_SECOND}/s"),
        ),
        (
            "customer message p99 ms".into(),
            ms(&message_h, 0.99),
            String::new(),
        ),
        (
            "customer message errors".into(),
            message_errors as f64,
            String::new(),
        ),
        (
            "live streams open".into(),
            opened as f64,
            format!("of {STREAMS}, read to the end"),
        ),
        (
            "live changes received/s".into(),
            changes as f64 / elapsed,
            "over all streams".into(),
        ),
        (
            "live resyncs".into(),
            received.resyncs.load(Ordering::Relaxed) as f64,
            "streams that fell behind".into(),
        ),
        (
            "streams ended early".into(),
            received.ended.load(Ordering::Relaxed) as f64,
            String::new(),
        ),
        (
            "server log bytes per request".into(),
            if sent == 0 {
                0.0
            } else {
                log_bytes as f64 / sent as f64
            },
            "default log level (RUST_LOG unset)".into(),
        ),
        (
            "conversations available to write".into(),
            write_pool as f64,
            String::new(),
        ),
    ]);
    Ok(figures)
}
