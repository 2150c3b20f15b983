//! The Mensajes page: the scoped conversation table with its filters, status
//! counts and keyset paging, and the detail of one conversation.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::{DurationRound, TimeZone, Utc};
use uuid::Uuid;

use super::pages::{
    PageContext, SplicedResults, accepts_gzip, elapsed, is_fragment_request, local_datetime,
    machine_datetime, relative, render, spliced_html, with_rendered,
};
use crate::app::state::AppState;
use crate::db::{
    COUNT_CAP, ConversationKey, ConversationReads, ConversationRow, Cursor, ListFilter, ListOrder,
    ListPage, Search, StatusFilter, TabCount, Ts, ViewCounts,
};
use crate::domain::transcript::{printable, purged_notice};
use crate::domain::{ChannelKind, Status};
use crate::http::auth::CurrentUser;
use crate::http::error::AppError;
use crate::http::transcript::{TranscriptEntry, TranscriptView};

/// Longest search text considered; the rest is ignored.
const SEARCH_MAX_CHARS: usize = 100;

/// The raw query string, parsed leniently: unknown or malformed values are
/// dropped with a notice instead of failing the page.
#[derive(Debug, Default, Clone)]
pub struct RawQuery {
    pub status: String,
    pub campaign: String,
    pub agent: String,
    pub channel: String,
    pub from_day: String,
    pub to_day: String,
    pub q: String,
    pub order: String,
    pub after: String,
    pub before: String,
}

impl RawQuery {
    pub(crate) fn from_request(req: &HttpRequest) -> RawQuery {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
        let mut raw = RawQuery::default();
        for (key, value) in pairs {
            let slot = match key.as_str() {
                "estatus" => &mut raw.status,
                "campana" => &mut raw.campaign,
                "agente" => &mut raw.agent,
                "canal" => &mut raw.channel,
                "desde" => &mut raw.from_day,
                "hasta" => &mut raw.to_day,
                "q" => &mut raw.q,
                "orden" => &mut raw.order,
                "despues" => &mut raw.after,
                "antes" => &mut raw.before,
                _ => continue,
            };
            *slot = value.trim().to_owned();
        }
        raw.q = raw.q.chars().take(SEARCH_MAX_CHARS).collect();
        raw
    }

    /// The query string of these filters alone (no paging, no `?`): what
    /// the CSV export and the bulk selection of "all that match" receive.
    pub(crate) fn filter_query(&self) -> String {
        let href = self.href(&[]);
        href.split_once('?')
            .map(|(_, q)| q.to_owned())
            .unwrap_or_default()
    }

    /// The query string of these filters (without paging), plus `extra`.
    fn href(&self, extra: &[(&str, &str)]) -> String {
        let mut pairs: Vec<(&str, &str)> = [
            ("estatus", self.status.as_str()),
            ("campana", self.campaign.as_str()),
            ("agente", self.agent.as_str()),
            ("canal", self.channel.as_str()),
            ("desde", self.from_day.as_str()),
            ("hasta", self.to_day.as_str()),
            ("q", self.q.as_str()),
            ("orden", self.order.as_str()),
        ]
        .into_iter()
        .filter(|(k, v)| !v.is_empty() && !extra.iter().any(|(ek, _)| ek == k))
        .collect();
        pairs.extend(extra.iter().filter(|(_, v)| !v.is_empty()));
        let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        if query.is_empty() {
            "/mensajes".to_owned()
        } else {
            format!("/mensajes?{query}")
        }
    }
}

/// Parses the filters; returns them with the Spanish notices of what was ignored.
pub fn parse_filter(raw: &RawQuery, tz: chrono_tz::Tz) -> (ListFilter, Vec<String>) {
    let mut notices = Vec::new();
    let mut ignore = |what: &str| {
        notices.push(format!(
            "Se ignoró el filtro de {what}: el valor no es válido."
        ))
    };
    let status = parse_status(&raw.status).unwrap_or_else(|| {
        ignore("estatus");
        StatusFilter::Open
    });
    let order = parse_order(&raw.order).unwrap_or_else(|| {
        ignore("orden");
        ListOrder::Recent
    });
    let mut uuid = |value: &str, what: &str| -> Option<Uuid> {
        if value.is_empty() {
            return None;
        }
        let parsed = Uuid::parse_str(value).ok();
        if parsed.is_none() {
            ignore(what);
        }
        parsed
    };
    let campaign_id = uuid(&raw.campaign, "campaña");
    let (agent_id, agent_offline) = parse_agent(&raw.agent, |v| uuid(v, "agente"));
    let channel_kind = match raw.channel.as_str() {
        "" => None,
        other => {
            let kind = ChannelKind::parse(other);
            if kind.is_none() {
                ignore("canal");
            }
            kind
        }
    };
    let mut date = |value: &str, what: &str, next_day: bool| -> Option<Ts> {
        if value.is_empty() {
            return None;
        }
        let day = crate::domain::days::parse_day(value)
            .and_then(|d| if next_day { d.succ_opt() } else { Some(d) });
        let at = day.map(|d| Ts::new(crate::domain::days::day_start(d, tz)));
        if at.is_none() {
            ignore(what);
        }
        at
    };
    let started_from = date(&raw.from_day, "fecha inicial", false);
    let started_before = date(&raw.to_day, "fecha final", true);
    // No name or phone holds a control character (the API refuses them),
    // and PostgreSQL text cannot hold U+0000.
    let search = if raw.q.chars().any(|c| c.is_control() && !c.is_whitespace()) {
        ignore("búsqueda");
        None
    } else {
        parse_search(&raw.q)
    };
    let status = searched_status(raw, status, search.as_ref());
    (
        ListFilter {
            status: Some(status),
            campaign_id,
            agent_id,
            channel_kind,
            started_from,
            started_before,
            search,
            agent_offline,
            stale_cutoffs: Vec::new(),
            order,
        },
        notices,
    )
}

/// The folio or phone a customer quotes is found whatever its status
/// (cancelled too): such a search, without a tab chosen, looks at all.
fn searched_status(raw: &RawQuery, status: StatusFilter, search: Option<&Search>) -> StatusFilter {
    if raw.status.is_empty() && matches!(search, Some(Search::Number(_))) {
        StatusFilter::All
    } else {
        status
    }
}

/// The Agente filter: one agent (`uuid` parses it), or with
/// "desconectado" any Asignada or En Proceso conversation whose agent is
/// not connected (the second value).
fn parse_agent(raw: &str, uuid: impl FnOnce(&str) -> Option<Uuid>) -> (Option<Uuid>, bool) {
    if raw == AGENT_OFFLINE {
        (None, true)
    } else {
        (uuid(raw), false)
    }
}

/// The Agente filter's value for "any disconnected agent".
const AGENT_OFFLINE: &str = "desconectado";

/// The Rezagadas tab's value.
const STALE_TAB: &str = "rezagadas";

/// The filters of `raw` for `scope` ([`parse_filter`]), with the Rezagadas
/// cutoffs of the campaigns in scope at the current minute: every list,
/// count, export and bulk selection reads its filters through here.
pub async fn resolve_filter(
    state: &AppState,
    scope: &crate::domain::Scope,
    raw: &RawQuery,
) -> Result<(ListFilter, Vec<String>), AppError> {
    let (mut filter, notices) = parse_filter(raw, state.timezone);
    let choices = filter_choices(state, scope).await?;
    filter.stale_cutoffs = stale_cutoffs(&choices.stale_thresholds, Utc::now());
    Ok((filter, notices))
}

/// Per campaign, the activity before which an open conversation is stuck
/// at `now`: the minute `now` is in, less the campaign's threshold. Whole
/// minutes, so the views of one minute share their cache entries.
pub fn stale_cutoffs(thresholds: &[(Uuid, i64)], now: chrono::DateTime<Utc>) -> Vec<(Uuid, Ts)> {
    let minute = now
        .duration_trunc(chrono::Duration::minutes(1))
        .unwrap_or(now);
    thresholds
        .iter()
        .map(|(campaign, minutes)| {
            (
                *campaign,
                Ts::new(minute - chrono::Duration::minutes(*minutes)),
            )
        })
        .collect()
}

/// The Orden choices: the order, its URL value and its label.
const ORDERS: [(ListOrder, &str, &str); 3] = [
    (ListOrder::Recent, "reciente", "Actividad más reciente"),
    (
        ListOrder::Idle,
        "sin-actividad",
        "Sin actividad hace más tiempo",
    ),
    (
        ListOrder::InStatus,
        "en-estatus",
        "Más tiempo en el estatus",
    ),
];

/// The order the query names (none: the most recent activity first);
/// `None` when it names none.
fn parse_order(raw: &str) -> Option<ListOrder> {
    if raw.is_empty() {
        return Some(ListOrder::Recent);
    }
    ORDERS
        .iter()
        .find(|(_, value, _)| *value == raw)
        .map(|(order, ..)| *order)
}

/// The status tab the query names (none: the open ones); `None` when it
/// names none.
fn parse_status(raw: &str) -> Option<StatusFilter> {
    match raw {
        "" | "abiertas" => Some(StatusFilter::Open),
        "todas" => Some(StatusFilter::All),
        STALE_TAB => Some(StatusFilter::Stale),
        other => Status::parse(other).map(StatusFilter::Only),
    }
}

/// Digits (with the usual phone punctuation) search folios and phones;
/// anything else searches names and channel codes.
fn parse_search(q: &str) -> Option<Search> {
    let q = q.trim();
    if q.is_empty() {
        return None;
    }
    let digits: String = q.chars().filter(char::is_ascii_digit).collect();
    let phone_like = q
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '+' | '-' | '(' | ')' | '#'));
    if phone_like && !digits.is_empty() {
        Some(Search::Number(digits))
    } else {
        Some(Search::Text(crate::domain::text::fold(q)))
    }
}

/// `<micros>.<folio>` in the URL (an instant of the years a day may have:
/// see [`crate::domain::days::YEARS`]).
fn parse_cursor(value: &str) -> Option<(Ts, i64)> {
    let (micros, folio) = value.split_once('.')?;
    let at = Utc.timestamp_micros(micros.parse().ok()?).single()?;
    if !crate::domain::days::in_years(at) {
        return None;
    }
    Some((Ts::new(at), folio.parse().ok()?))
}

fn cursor_value(row: &ConversationRow, order: ListOrder) -> String {
    format!("{}.{}", order.key(row).0.timestamp_micros(), row.folio)
}

/// `+52 55 1234 5678` for Mexican numbers; other codes as stored.
pub fn display_phone(external_id: &str) -> String {
    let digits = external_id
        .strip_prefix("52")
        .filter(|rest| rest.len() == 10 && rest.chars().all(|c| c.is_ascii_digit()));
    match digits {
        Some(rest) => {
            let area_len = if ["55", "33", "81"].iter().any(|a| rest.starts_with(a)) {
                2
            } else {
                3
            };
            let (area, number) = rest.split_at(area_len);
            let (a, b) = number.split_at(number.len() - 4);
            format!("+52 {area} {a} {b}")
        }
        None => external_id.to_owned(),
    }
}

/// One table row as shown.
pub struct RowView {
    /// The conversation's id: what live events name.
    pub id: String,
    pub folio: i64,
    pub customer_name: String,
    pub customer_detail: String,
    pub channel_label: &'static str,
    pub channel_kind: &'static str,
    pub channel_name: String,
    pub campaign_name: String,
    pub agent_name: Option<String>,
    /// Asignada or En Proceso with an agent who is not connected: it waits.
    pub agent_offline: bool,
    pub status: &'static str,
    pub status_label: &'static str,
    pub started: String,
    pub last_activity: String,
    pub last_activity_exact: String,
    /// RFC 3339, so the page can keep "hace 3 min" current.
    pub last_activity_iso: String,
    /// For an open conversation: how long without activity ("2 h 10 min")
    /// and in its current status, with the instants the page's script
    /// keeps them current from.
    pub idle_for: Option<String>,
    pub in_status_for: Option<String>,
    pub status_since_iso: String,
    /// Open and without activity for longer than its campaign's threshold.
    pub stale: bool,
    /// The row's place in each order ("micros.folio", as a cursor): the
    /// live table moves a changed row to its place in the page's order.
    pub activity_key: String,
    pub status_key: String,
    pub actionable: bool,
    /// For a closed conversation: "Categoría › Subcategoría", shown on hover.
    pub closure: Option<String>,
}

impl RowView {
    pub fn new(row: &ConversationRow, tz: chrono_tz::Tz, now: chrono::DateTime<Utc>) -> RowView {
        let phone = display_phone(&row.contact_external_id);
        let (customer_name, customer_detail) = match &row.contact_name {
            Some(name) => (name.clone(), phone),
            None => (phone, String::new()),
        };
        let closure = row.category_name.as_ref().map(|category| {
            let mut text = format!("{}: {category}", row.status.label());
            if let Some(sub) = &row.subcategory_name {
                text.push_str(" › ");
                text.push_str(sub);
            }
            text
        });
        let open = row.status.is_open();
        let idle_seconds = (now - row.last_activity_at.0).num_seconds();
        RowView {
            agent_offline: matches!(row.status, Status::Assigned | Status::InProgress)
                && row.agent_id.is_some()
                && !row.agent_connected,
            idle_for: open.then(|| elapsed(row.last_activity_at, now)),
            in_status_for: open.then(|| elapsed(row.status_since, now)),
            status_since_iso: machine_datetime(row.status_since),
            stale: open && idle_seconds > row.stale_after_minutes * 60,
            activity_key: cursor_value(row, ListOrder::Recent),
            status_key: cursor_value(row, ListOrder::InStatus),
            id: row.id.to_string(),
            folio: row.folio,
            customer_name,
            customer_detail,
            channel_label: row.channel_kind.label(),
            channel_kind: row.channel_kind.as_str(),
            channel_name: row.channel_name.clone(),
            campaign_name: row.campaign_name.clone(),
            agent_name: row.agent_name.clone(),
            status: row.status.as_str(),
            status_label: row.status.label(),
            started: local_datetime(row.started_at, tz),
            last_activity: relative(row.last_activity_at, now),
            last_activity_exact: local_datetime(row.last_activity_at, tz),
            last_activity_iso: machine_datetime(row.last_activity_at),
            actionable: row.status.is_open(),
            closure,
        }
    }
}

/// A status tab with its count (none for a broad search, see
/// [`crate::db::BROAD_SEARCH_CONTACTS`]).
pub struct StatusTab {
    pub value: &'static str,
    pub label: &'static str,
    pub count: Option<TabCount>,
    pub href: String,
    pub active: bool,
    pub badge: &'static str,
}

impl StatusTab {
    /// The count as shown (see [`crate::http::pages::Count`]), "1000+"
    /// when it stopped at the cap.
    pub fn shown_count(&self) -> Option<String> {
        self.count.map(shown)
    }

    /// What a count that stopped at the cap means, for its tooltip.
    pub fn count_note(&self) -> Option<String> {
        self.count.filter(|c| c.more).map(|count| {
            format!(
                "Más de {}: cada estatus se cuenta hasta {} para que la vista responda al instante. \
                 Acciones masivas cuenta todas las que coinciden.",
                crate::http::pages::Count(count.n),
                crate::http::pages::Count(COUNT_CAP),
            )
        })
    }
}

/// A count as shown: grouped digits, and "+" when it stopped at the cap.
fn shown(count: TabCount) -> String {
    let n = crate::http::pages::Count(count.n);
    if count.more {
        format!("{n}+")
    } else {
        n.to_string()
    }
}

/// The status tabs with their counts, linking to the same filters.
/// The counts of a view's tabs: by status, and Rezagadas. None for a broad
/// search, whose tabs are not counted.
type Counted<'a> = Option<(&'a [(Status, TabCount)], TabCount)>;

fn status_tabs(raw: &RawQuery, counted: Counted, current: StatusFilter) -> Vec<StatusTab> {
    let count_of = |s: Status| {
        counted.map(|(counts, _)| {
            counts
                .iter()
                .find(|(c, _)| *c == s)
                .map_or(TabCount::default(), |(_, n)| *n)
        })
    };
    let open_total = counted.map(|_| Status::OPEN.iter().filter_map(|s| count_of(*s)).sum());
    let all_total = counted.map(|(counts, _)| counts.iter().map(|(_, n)| *n).sum());
    let stale_count = counted.map(|(_, stale)| stale);
    let mut tabs = vec![StatusTab {
        value: "abiertas",
        label: "Abiertas",
        count: open_total,
        href: raw.href(&[("estatus", "abiertas")]),
        active: current == StatusFilter::Open,
        badge: "open",
    }];
    tabs.push(StatusTab {
        value: STALE_TAB,
        label: "Rezagadas",
        count: stale_count,
        href: raw.href(&[("estatus", STALE_TAB)]),
        active: current == StatusFilter::Stale,
        badge: "stale",
    });
    tabs.extend(Status::ALL.iter().map(|s| StatusTab {
        value: s.as_str(),
        label: s.label(),
        count: count_of(*s),
        href: raw.href(&[("estatus", s.as_str())]),
        active: current == StatusFilter::Only(*s),
        badge: s.as_str(),
    }));
    tabs.push(StatusTab {
        value: "todas",
        label: "Todas",
        count: all_total,
        href: raw.href(&[("estatus", "todas")]),
        active: current == StatusFilter::All,
        badge: "all",
    });
    tabs
}

/// An option of a filter `<select>`.
pub struct FilterOption {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

fn options_of(items: impl Iterator<Item = (String, String)>, selected: &str) -> Vec<FilterOption> {
    items
        .map(|(value, label)| FilterOption {
            selected: value == selected,
            value,
            label,
        })
        .collect()
}

#[derive(Template)]
#[template(path = "conversations.html")]
pub struct ConversationListPage {
    pub ctx: PageContext,
    /// Where the rendered [`ConversationListResults`] go: [`RESULTS_SLOT`],
    /// replaced by the kept bytes when the page is sent.
    pub results_html: String,
    pub campaigns: Vec<FilterOption>,
    pub agents: Vec<FilterOption>,
    /// "Agente desconectado" is the chosen Agente filter.
    pub agent_offline: bool,
    pub orders: Vec<FilterOption>,
    pub channels: Vec<FilterOption>,
    pub status: String,
    pub from_day: String,
    pub to_day: String,
    pub q: String,
    /// How often the live tab asks for its counts again (milliseconds).
    pub counts_every_ms: u128,
}

/// The part of the page that filters and paging replace.
#[derive(Template)]
#[template(path = "_conversation_results.html")]
pub struct ConversationListResults {
    pub rows: Vec<RowView>,
    pub tabs: Vec<StatusTab>,
    pub notices: Vec<String>,
    pub newer_href: Option<String>,
    pub older_href: Option<String>,
    pub empty_message: &'static str,
    pub filtered: bool,
    pub clear_href: String,
    /// Conversations matching the filters on every page (for "all that
    /// match"), as the active tab counted them; none when not counted.
    pub match_count: Option<TabCount>,
    /// The search matched too many customers to count the tabs: what it
    /// was, for the note that says so.
    pub broad_search: Option<String>,
    /// The filters as a query string, for the export and bulk links.
    pub filter_query: String,
    /// A folio or phone search without a chosen tab: it looks at every
    /// status, and the page says so.
    pub searching_every_status: bool,
    /// The Rezagadas tab is shown: it points to the standing answer, a rule.
    pub stale_view: bool,
    /// The page's order (its URL value), and the keys of its first row
    /// when there is a previous page and of its last when there is a next
    /// one: a live change that moves a row past them drops it from the page.
    pub order_value: &'static str,
    pub first_key: Option<String>,
    pub last_key: Option<String>,
}

impl ConversationListResults {
    /// The "all that match" link's words: the number when it is known,
    /// "more than" when the count stopped at the cap (the bulk page it
    /// leads to counts them all).
    pub fn all_matching_label(&self) -> String {
        match self.match_count {
            None => "Todas las que coinciden".to_owned(),
            Some(count) if count.more => format!(
                "Todas las que coinciden (más de {})",
                crate::http::pages::Count(count.n)
            ),
            Some(count) => format!("Todas las {} que coinciden", shown(count)),
        }
    }

    /// [`crate::db::BROAD_SEARCH_CONTACTS`] as shown.
    pub fn broad_search_customers(&self) -> crate::http::pages::Count {
        crate::http::pages::Count(crate::db::BROAD_SEARCH_CONTACTS)
    }

    /// Whether to offer acting on all that match: some match, counted or
    /// (not counted) on this page.
    pub fn offers_all_matching(&self) -> bool {
        self.match_count
            .map_or(!self.rows.is_empty(), |count| count.n > 0)
    }
}

/// The filter choices of `scope`, cached until rights or names change on
/// any instance (a rename is an administrative write: see
/// `EpochCache::following_directory`).
async fn filter_choices(
    state: &AppState,
    scope: &crate::domain::Scope,
) -> Result<FilterChoices, AppError> {
    let choices = state
        .filter_options
        .get_or_load(scope.clone(), || async {
            let (campaigns, agents, stale_thresholds) = tokio::try_join!(
                state.store.campaign_options(scope),
                state.store.agent_options(scope),
                state.store.stale_thresholds(scope),
            )?;
            Ok::<_, crate::db::StoreError>(Some(FilterChoices {
                campaigns,
                agents,
                stale_thresholds,
            }))
        })
        .await?;
    choices.ok_or_else(|| AppError::unexpected("filter choices were not loaded"))
}

pub use crate::app::state::{FilterChoices, VIEW_TTL, View, ViewCache};

/// The view of `scope`, `filter` and `cursor`: from the cache while nothing
/// it shows has changed, from the database otherwise. Searches always read
/// the database.
async fn view(
    state: &AppState,
    scope: &crate::domain::Scope,
    filter: &ListFilter,
    cursor: Option<Cursor>,
) -> Result<std::sync::Arc<View>, AppError> {
    let load = || async {
        let answer = state.store.list_with_counts(scope, filter, cursor).await?;
        Ok::<_, crate::db::StoreError>(View::from(answer))
    };
    if filter.search.is_some() {
        return Ok(std::sync::Arc::new(load().await?));
    }
    let key = (scope.clone(), filter.clone(), cursor);
    Ok(state.views.get_or_load(&key, scope, load).await?)
}

/// The results of `view` for this query, rendered: kept with the view on
/// its first request, so that later hits render nothing, and compressed
/// smaller once a hit shows the view is asked again (see
/// `crate::compression`). Results with notices (a value was ignored) are
/// rendered for this request alone. For a client that refuses gzip
/// (`plain`), the request that renders also keeps its HTML to send, rather
/// than inflate it back from the piece it just compressed.
fn results_of(
    sent: &Arc<crate::app::state::ResultsSent>,
    raw: &RawQuery,
    view: &View,
    notices: Vec<String>,
    filter: &ListFilter,
    tz: chrono_tz::Tz,
    plain: bool,
) -> Result<SplicedResults, AppError> {
    let query = raw.filter_query();
    if notices.is_empty()
        && let Some((kept_for, kept)) = view.results.get()
        && *kept_for == query
    {
        sent.kept.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if kept.claim_recompression() {
            // This hit sends the piece it finds; the smaller one serves
            // the hits after it.
            let (kept, sent) = (Arc::clone(kept), Arc::clone(sent));
            drop(tokio::task::spawn_blocking(move || {
                kept.recompress();
                sent.recompressed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }));
        }
        return Ok(SplicedResults {
            kept: Arc::clone(kept),
            html: None,
        });
    }
    sent.rendered
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let keep = notices.is_empty();
    let (kept, html) = with_rendered(&results(raw, view, notices, filter, tz), |html| {
        let kept = Arc::new(crate::compression::Kept::new(html));
        (kept, plain.then(|| html.as_bytes().to_vec()))
    })?;
    if keep {
        // Another request may have kept the same bytes first; either is right.
        let _ = view.results.set((query, Arc::clone(&kept)));
    }
    Ok(SplicedResults { kept, html })
}

/// The results part of the page (tabs, rows, paging) for a view.
fn results(
    raw: &RawQuery,
    view: &View,
    notices: Vec<String>,
    filter: &ListFilter,
    tz: chrono_tz::Tz,
) -> ConversationListResults {
    let ViewCounts {
        page,
        counts,
        stale_count,
        broad_search,
    } = &view.answer;
    let now = Utc::now();
    let rows: Vec<RowView> = page.rows.iter().map(|r| RowView::new(r, tz, now)).collect();
    let current = filter.status.unwrap_or(StatusFilter::Open);
    let counted = (!broad_search).then_some((counts.as_slice(), *stale_count));
    let tabs = status_tabs(raw, counted, current);
    let (newer_href, older_href) = page_links(raw, page, filter.order);
    let filtered = *filter
        != ListFilter {
            status: filter.status,
            stale_cutoffs: filter.stale_cutoffs.clone(),
            order: filter.order,
            ..ListFilter::default()
        };
    let match_count = tabs
        .iter()
        .find(|t| t.active)
        .map_or(Some(TabCount::default()), |t| t.count);
    ConversationListResults {
        rows,
        tabs,
        notices,
        newer_href,
        older_href,
        empty_message: if filtered {
            "Ninguna conversación coincide con estos filtros."
        } else {
            "No hay conversaciones en este estatus."
        },
        filtered,
        clear_href: "/mensajes".into(),
        match_count,
        broad_search: broad_search.then(|| raw.q.trim().to_owned()),
        filter_query: raw.filter_query(),
        searching_every_status: raw.status.is_empty()
            && matches!(filter.search, Some(Search::Number(_))),
        stale_view: current == StatusFilter::Stale,
        order_value: ORDERS
            .iter()
            .find(|(order, ..)| *order == filter.order)
            .map_or("reciente", |(_, value, _)| value),
        first_key: page
            .has_newer
            .then(|| page.rows.first().map(|r| cursor_value(r, filter.order)))
            .flatten(),
        last_key: page
            .has_older
            .then(|| page.rows.last().map(|r| cursor_value(r, filter.order)))
            .flatten(),
    }
}

/// Where the page template puts the results; the page is sent as the text
/// before it, the kept results, and the text after it.
const RESULTS_SLOT: &str = "<!--relevo:results-->";

/// The page the query asks for (`despues` before `antes`); an unreadable
/// one is noticed and the first page shown.
fn read_cursor(raw: &RawQuery, notices: &mut Vec<String>) -> Option<Cursor> {
    let cursor = if let Some((at, folio)) = parse_cursor(&raw.after) {
        Some(Cursor::After(at, folio))
    } else {
        parse_cursor(&raw.before).map(|(at, folio)| Cursor::Before(at, folio))
    };
    if cursor.is_none() && !(raw.after.is_empty() && raw.before.is_empty()) {
        notices.push("La página pedida no es válida; se muestra la primera.".into());
    }
    cursor
}

/// The links to the newer and the older page, where there is one.
fn page_links(
    raw: &RawQuery,
    page: &ListPage,
    order: ListOrder,
) -> (Option<String>, Option<String>) {
    let newer_href = page.has_newer.then(|| {
        page.rows.first().map_or_else(
            || raw.href(&[]),
            |r| raw.href(&[("antes", &cursor_value(r, order))]),
        )
    });
    let older_href = page
        .has_older
        .then(|| {
            page.rows
                .last()
                .map(|r| raw.href(&[("despues", &cursor_value(r, order))]))
        })
        .flatten();
    (newer_href, older_href)
}

/// `GET /mensajes`
pub async fn list(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let raw = RawQuery::from_request(&req);
    let scope = &user.scope;
    let (filter, mut notices) = resolve_filter(&state, scope, &raw).await?;
    let cursor = read_cursor(&raw, &mut notices);
    let view = view(&state, scope, &filter, cursor).await?;
    let gzip = accepts_gzip(&req);
    let results = results_of(
        &state.results_sent,
        &raw,
        &view,
        notices,
        &filter,
        state.timezone,
        !gzip,
    )?;
    if is_fragment_request(&req) {
        return Ok(spliced_html(gzip, "", &results, ""));
    }
    let FilterChoices {
        campaigns, agents, ..
    } = filter_choices(&state, scope).await?;
    let page = ConversationListPage {
        counts_every_ms: state.counts_refresh.as_millis(),
        ctx: PageContext::new(&req, &user, "mensajes")?,
        results_html: RESULTS_SLOT.to_owned(),
        campaigns: options_of(
            campaigns.into_iter().map(|c| (c.id.to_string(), c.name)),
            &raw.campaign,
        ),
        agents: options_of(
            agents.into_iter().map(|a| (a.id.to_string(), a.name)),
            &raw.agent,
        ),
        agent_offline: raw.agent == AGENT_OFFLINE,
        orders: options_of(
            ORDERS
                .iter()
                .map(|(_, value, label)| ((*value).to_owned(), (*label).to_owned())),
            if raw.order.is_empty() {
                "reciente"
            } else {
                &raw.order
            },
        ),
        channels: options_of(
            ChannelKind::ALL
                .iter()
                .map(|k| (k.as_str().to_owned(), k.label().to_owned())),
            &raw.channel,
        ),
        status: raw.status.clone(),
        from_day: raw.from_day.clone(),
        to_day: raw.to_day.clone(),
        q: raw.q.clone(),
    };
    with_rendered(&page, |html| {
        let (before, after) = html
            .split_once(RESULTS_SLOT)
            .ok_or_else(|| AppError::unexpected("the Mensajes page has no results slot"))?;
        Ok(spliced_html(gzip, before, &results, after))
    })?
}

#[derive(Template)]
#[template(path = "_status_tabs.html")]
struct StatusTabs {
    tabs: Vec<StatusTab>,
}

#[derive(Template)]
#[template(path = "_row.html")]
pub struct RowFragment {
    pub row: RowView,
}

/// At most this many conversations per `/mensajes/cambios` request.
const MAX_CHANGED_IDS: usize = 100;

/// `GET /mensajes/cambios?<filters>&id=…`: after live events, the rows to
/// re-render (those of `id` that still match the viewer's scope and filters;
/// the others leave the table) and the new status counts, as JSON of HTML
/// fragments rendered by the same templates as the page.
pub async fn changes(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let raw = RawQuery::from_request(&req);
    let (filter, _) = resolve_filter(&state, &user.scope, &raw).await?;
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    let ids: Vec<Uuid> = pairs
        .iter()
        .filter(|(k, _)| k == "id")
        .filter_map(|(_, v)| Uuid::parse_str(v).ok())
        .take(MAX_CHANGED_IDS)
        .collect();
    let (rows, counted) = tokio::try_join!(
        state.store.rows_matching(&user.scope, &filter, &ids),
        state.store.count_tabs(&user.scope, &filter),
    )?;
    let now = Utc::now();
    let mut rendered = Vec::with_capacity(rows.len());
    for row in &rows {
        let html = RowFragment {
            row: RowView::new(row, state.timezone, now),
        }
        .render()
        .map_err(|e| AppError::Unexpected(anyhow::Error::new(e)))?;
        rendered.push(serde_json::json!({ "id": row.id, "folio": row.folio, "html": html }));
    }
    let tabs = StatusTabs {
        tabs: status_tabs(
            &raw,
            counted
                .as_ref()
                .map(|(counts, stale)| (counts.as_slice(), *stale)),
            filter.status.unwrap_or(StatusFilter::Open),
        ),
    }
    .render()
    .map_err(|e| AppError::Unexpected(anyhow::Error::new(e)))?;
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "rows": rendered, "tabs": tabs })))
}

/// `GET /mensajes/eventos`: this tab's live stream (Server-Sent Events).
pub async fn events(user: CurrentUser, state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        // Compression would buffer the stream.
        .insert_header(actix_web::http::header::ContentEncoding::Identity)
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(crate::http::live::stream(
            state.store.clone(),
            state.principals.policy(),
            &user,
        ))
}

/// A nudge sent to the customer, with whether the channel's connector
/// delivered it.
pub struct NudgeView {
    pub rule: String,
    /// The text, or what shows once the retention policy purged it.
    pub text: String,
    pub purged: bool,
    pub sent_at: String,
    /// For `<time datetime>`.
    pub sent_at_iso: String,
    /// "Entregado el …", "Pendiente de entrega" or, for a nudge recorded
    /// before the outbox existed, "Solo registrado".
    pub delivery: String,
    pub delivered: bool,
}

impl NudgeView {
    fn new(nudge: &crate::db::NudgeSent, tz: chrono_tz::Tz, retention_days: u32) -> NudgeView {
        let delivery = match (nudge.outbox_id, nudge.delivered_at) {
            (_, Some(at)) => format!("Entregado el {}", local_datetime(at, tz)),
            (Some(_), None) => "Pendiente de entrega".to_owned(),
            (None, None) => "Solo registrado (anterior a la bandeja de salida)".to_owned(),
        };
        NudgeView {
            rule: nudge.rule_name.clone(),
            text: nudge
                .text
                .as_deref()
                .map(|text| printable(text).into_owned())
                .unwrap_or_else(|| purged_notice(retention_days)),
            purged: nudge.text.is_none(),
            sent_at: local_datetime(nudge.sent_at, tz),
            sent_at_iso: machine_datetime(nudge.sent_at),
            delivery,
            delivered: nudge.delivered_at.is_some(),
        }
    }
}

#[derive(Template)]
#[template(path = "conversation.html")]
struct ConversationPage {
    ctx: PageContext,
    row: RowView,
    closed_at: Option<String>,
    closer: Option<String>,
    comment: Option<String>,
    reactivates: Option<i64>,
    /// The conversation the customer's next message started, after this
    /// one closed.
    restarted_as: Option<i64>,
    transcript: TranscriptView,
    nudges: Vec<NudgeView>,
}

/// Parses a folio from a URL segment; anything else is "not found".
pub fn parse_folio(raw: &str) -> Result<i64, AppError> {
    raw.parse::<i64>()
        .ok()
        .filter(|f| *f > 0)
        .ok_or(AppError::NotFound(NOT_FOUND))
}

pub use crate::domain::conversation::NOT_FOUND;

/// `GET /mensajes/{folio}`
pub async fn detail(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let folio = parse_folio(&path)?;
    let (position, notice) = super::transcript::read_position(req.query_string());
    let ConversationReads {
        row: conversation,
        history,
        restarted_as,
        nudges,
        transcript: transcript_page,
        ..
    } = state
        .store
        .conversation_reads(
            &user.scope,
            ConversationKey::Folio(folio),
            position,
            super::transcript::PAGE_SIZE,
        )
        .await?
        .ok_or(AppError::NotFound(NOT_FOUND))?;
    let now = Utc::now();
    let tz = state.timezone;
    let row = RowView::new(&conversation, tz, now);
    let transcript = super::transcript::view(
        &state,
        conversation.folio,
        (transcript_page, notice),
        &history,
        &row.customer_name,
    );
    render(&ConversationPage {
        ctx: PageContext::new(&req, &user, "mensajes")?,
        row,
        closed_at: conversation.closed_at.map(|t| local_datetime(t, tz)),
        closer: conversation.closer_name.clone(),
        comment: conversation.closure_comment.clone(),
        reactivates: conversation.reactivates_folio,
        restarted_as,
        transcript,
        nudges: nudges
            .iter()
            .map(|n| NudgeView::new(n, tz, state.transcript_days))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mexican_numbers_are_grouped_for_reading() {
        assert_eq!(display_phone("525512345678"), "+52 55 1234 5678");
        assert_eq!(display_phone("522221234567"), "+52 222 123 4567");
        assert_eq!(display_phone("web-1a2b3c"), "web-1a2b3c");
    }

    #[test]
    fn digits_search_numbers_and_words_search_names() {
        assert_eq!(
            parse_search("+52 55-1234"),
            Some(Search::Number("52551234".into()))
        );
        assert_eq!(parse_search("10482"), Some(Search::Number("10482".into())));
        assert_eq!(
            parse_search(" Ana LÓPEZ "),
            Some(Search::Text("ana lopez".into()))
        );
        assert_eq!(
            parse_search("' or 1=1 --"),
            Some(Search::Text("' or 1=1 --".into()))
        );
        assert_eq!(parse_search("   "), None);
    }

    #[test]
    fn unknown_filter_values_are_ignored_with_a_notice() {
        let raw = RawQuery {
            status: "borrada".into(),
            campaign: "no-es-uuid".into(),
            channel: "fax".into(),
            from_day: "2026-13-45".into(),
            ..RawQuery::default()
        };
        let (filter, notices) = parse_filter(&raw, chrono_tz::America::Mexico_City);
        assert_eq!(filter.status, Some(StatusFilter::Open));
        assert_eq!(filter.campaign_id, None);
        assert_eq!(filter.channel_kind, None);
        assert_eq!(filter.started_from, None);
        assert_eq!(notices.len(), 4);
    }

    #[test]
    fn a_date_range_covers_whole_local_days() {
        let raw = RawQuery {
            from_day: "2026-11-26".into(),
            to_day: "2026-11-26".into(),
            ..RawQuery::default()
        };
        let (filter, _) = parse_filter(&raw, chrono_tz::America::Mexico_City);
        assert_eq!(
            filter.started_from.unwrap().to_sqlite_text(),
            "2026-11-26T06:00:00.000000Z"
        );
        assert_eq!(
            filter.started_before.unwrap().to_sqlite_text(),
            "2026-11-27T06:00:00.000000Z"
        );
    }

    #[test]
    fn malformed_folios_are_not_found() {
        assert!(parse_folio("10482").is_ok());
        for bad in ["abc", "-1", "0", "99999999999999999999999", "1e3"] {
            assert!(parse_folio(bad).is_err(), "{bad}");
        }
    }
}
