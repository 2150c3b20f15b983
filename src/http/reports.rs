//! Reportes: cancellations and resolutions of a date range and campaigns, by
//! category → sub-category, by closer kind, by administrator and per day,
//! as tables and server-rendered charts built from the same numbers (the
//! per-day one in SVG, the others HTML bars, `templates/macros/charts.html`),
//! each named with a short Spanish summary for screen readers; and the CSV
//! of the conversations the report counts.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::{Duration, NaiveDate, Utc};
use uuid::Uuid;

use super::conversations::FilterOption;
use super::export::csv_response;
use super::pages::{Count, PageContext, render_with_status};
use crate::app::state::AppState;
use crate::db::{Campaigns, ClosureCount, DayCount, ExportSource, ReportCounts, Ts};
use crate::domain::days::{day_bounds, day_start};
use crate::domain::{ActorKind, Status};
use crate::http::auth::CurrentUser;
use crate::http::error::AppError;

/// The longest range a report covers.
pub const MAX_DAYS: i64 = 731;
/// Days shown when no range is given.
const DEFAULT_DAYS: i64 = 30;
/// Categories the chart shows (the table lists them all).
const CHART_CATEGORIES: usize = 10;

/// The query: `desde`, `hasta` (YYYY-MM-DD) and any number of `campana`.
#[derive(Debug, Default, Clone)]
pub struct ReportQuery {
    pub from_day: String,
    pub to_day: String,
    pub campaigns: Vec<String>,
}

impl ReportQuery {
    fn from_request(req: &HttpRequest) -> ReportQuery {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
        let mut query = ReportQuery::default();
        for (key, value) in pairs {
            let value = value.trim().to_owned();
            match key.as_str() {
                "desde" => query.from_day = value,
                "hasta" => query.to_day = value,
                "campana" if !value.is_empty() => query.campaigns.push(value),
                _ => {}
            }
        }
        query
    }

    fn query_string(&self) -> String {
        let mut pairs = vec![
            ("desde", self.from_day.as_str()),
            ("hasta", self.to_day.as_str()),
        ];
        pairs.extend(self.campaigns.iter().map(|c| ("campana", c.as_str())));
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }
}

/// Field errors of the range.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RangeErrors {
    pub from_day: Option<String>,
    pub to_day: Option<String>,
}

/// Parses the range; empty fields default to the last 30 days up to `today`.
/// Both days are included, and both are days of
/// [`YEARS`](crate::domain::days::YEARS), so the day after the range and
/// the default start are always representable.
pub fn parse_range(
    from_day: &str,
    to_day: &str,
    today: NaiveDate,
) -> Result<(NaiveDate, NaiveDate), RangeErrors> {
    let mut errors = RangeErrors::default();
    let date = crate::domain::days::parse_day;
    let to = if to_day.is_empty() {
        Some(today)
    } else {
        date(to_day)
    };
    let from = if from_day.is_empty() {
        to.map(|t| t - Duration::days(DEFAULT_DAYS - 1))
    } else {
        date(from_day)
    };
    if from.is_none() {
        errors.from_day = Some("Escribe una fecha válida".into());
    }
    if to.is_none() {
        errors.to_day = Some("Escribe una fecha válida".into());
    }
    let (Some(from), Some(to)) = (from, to) else {
        return Err(errors);
    };
    if to < from {
        errors.to_day = Some("La fecha final es anterior a la inicial".into());
        return Err(errors);
    }
    if (to - from).num_days() + 1 > MAX_DAYS {
        errors.to_day = Some("El periodo no puede pasar de 2 años".into());
        return Err(errors);
    }
    Ok((from, to))
}

/// `[from, to]` local days as the instants `[start of from, start of to + 1)`.
pub fn range_instants(from: NaiveDate, to: NaiveDate, tz: chrono_tz::Tz) -> (Ts, Ts) {
    (
        Ts::new(day_start(from, tz)),
        Ts::new(day_start(to + Duration::days(1), tz)),
    )
}

/// The bounds of each local day of `[from, to]`: what the per-day counts use.
pub fn report_bounds(from: NaiveDate, to: NaiveDate, tz: chrono_tz::Tz) -> Vec<Ts> {
    day_bounds(from, to, tz).into_iter().map(Ts::new).collect()
}

/// Cancelled and resolved counts of one line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pair {
    pub cancelled: i64,
    pub resolved: i64,
}

impl Pair {
    pub fn total(&self) -> i64 {
        self.cancelled + self.resolved
    }

    // As the page shows them, digits grouped ("12 345"); the `data-`
    // attributes and the CSV export keep plain numbers for programs.
    pub fn cancelled_shown(&self) -> Count {
        Count(self.cancelled)
    }

    pub fn resolved_shown(&self) -> Count {
        Count(self.resolved)
    }

    pub fn total_shown(&self) -> Count {
        Count(self.total())
    }

    fn add(&mut self, status: Status, n: i64) {
        match status {
            Status::Cancelled => self.cancelled += n,
            Status::Resolved => self.resolved += n,
            _ => {}
        }
    }
}

pub struct SubLine {
    pub name: String,
    pub inactive: bool,
    pub counts: Pair,
}

pub struct CategoryLine {
    /// Stable key for the page's drill-down toggles.
    pub key: String,
    pub name: String,
    pub inactive: bool,
    pub counts: Pair,
    pub subs: Vec<SubLine>,
}

pub struct NamedLine {
    pub name: String,
    pub counts: Pair,
}

pub struct DayLine {
    pub date: NaiveDate,
    pub label: String,
    pub counts: Pair,
}

/// Everything the report shows.
pub struct Report {
    pub totals: Pair,
    pub categories: Vec<CategoryLine>,
    pub closers: Vec<NamedLine>,
    pub administrators: Vec<NamedLine>,
    pub days: Vec<DayLine>,
}

/// Rolls the counted history rows up into the report's tables.
pub fn build_report(counts: &ReportCounts, from: NaiveDate, to: NaiveDate) -> Report {
    let mut totals = Pair::default();
    for row in &counts.closures {
        totals.add(row.to_status, row.n);
    }
    Report {
        totals,
        categories: category_lines(&counts.closures),
        closers: closer_lines(&counts.closures),
        administrators: administrator_lines(&counts.closures),
        days: day_lines(&counts.days, from, to),
    }
}

/// Most closures first, then by name.
fn by_total_then_name(
    a_counts: &Pair,
    a_name: &str,
    b_counts: &Pair,
    b_name: &str,
) -> std::cmp::Ordering {
    b_counts
        .total()
        .cmp(&a_counts.total())
        .then(a_name.cmp(b_name))
}

/// Closures by category, each with its subcategories; a category named
/// alike in several campaigns says which campaign it is.
fn category_lines(closures: &[ClosureCount]) -> Vec<CategoryLine> {
    let mut categories: BTreeMap<Option<Uuid>, CategoryLine> = BTreeMap::new();
    let mut subs: BTreeMap<(Option<Uuid>, Option<Uuid>), SubLine> = BTreeMap::new();
    for row in closures {
        let category = categories
            .entry(row.category_id)
            .or_insert_with(|| CategoryLine {
                key: row
                    .category_id
                    .map_or_else(|| "ninguna".to_owned(), |id| id.to_string()),
                name: row
                    .category_name
                    .clone()
                    .unwrap_or_else(|| "Sin categoría".into()),
                inactive: row.category_active == Some(false),
                counts: Pair::default(),
                subs: Vec::new(),
            });
        category.counts.add(row.to_status, row.n);
        if row.category_id.is_some() {
            subs.entry((row.category_id, row.subcategory_id))
                .or_insert_with(|| SubLine {
                    name: row
                        .subcategory_name
                        .clone()
                        .unwrap_or_else(|| "Sin subcategoría".into()),
                    inactive: row.subcategory_active == Some(false),
                    counts: Pair::default(),
                })
                .counts
                .add(row.to_status, row.n);
        }
    }
    // The same category name in several campaigns: say which is which.
    let campaigns: std::collections::BTreeSet<&str> = closures
        .iter()
        .filter_map(|r| r.category_campaign.as_deref())
        .collect();
    if campaigns.len() > 1 {
        for row in closures {
            if let (Some(category), Some(campaign)) =
                (categories.get_mut(&row.category_id), &row.category_campaign)
                && !category.name.ends_with(&format!(" · {campaign}"))
            {
                category.name = format!("{} · {campaign}", category.name);
            }
        }
    }
    for ((category_id, _), sub) in subs {
        if let Some(category) = categories.get_mut(&category_id) {
            category.subs.push(sub);
        }
    }
    let mut categories: Vec<CategoryLine> = categories.into_values().collect();
    for category in &mut categories {
        category
            .subs
            .sort_by(|a, b| by_total_then_name(&a.counts, &a.name, &b.counts, &b.name));
    }
    categories.sort_by(|a, b| by_total_then_name(&a.counts, &a.name, &b.counts, &b.name));
    categories
}

/// Closures by who closed them: administrators, agents, the system.
fn closer_lines(closures: &[ClosureCount]) -> Vec<NamedLine> {
    let mut closers: BTreeMap<&'static str, Pair> = BTreeMap::new();
    for row in closures {
        closers
            .entry(row.actor_kind.as_str())
            .or_default()
            .add(row.to_status, row.n);
    }
    [
        ActorKind::Administrator,
        ActorKind::Agent,
        ActorKind::System,
    ]
    .into_iter()
    .map(|kind| NamedLine {
        name: kind.label().to_owned(),
        counts: closers.get(kind.as_str()).copied().unwrap_or_default(),
    })
    .collect()
}

/// Closures by administrator, most first.
fn administrator_lines(closures: &[ClosureCount]) -> Vec<NamedLine> {
    let mut administrators: BTreeMap<Option<Uuid>, NamedLine> = BTreeMap::new();
    for row in closures {
        if row.actor_kind == ActorKind::Administrator {
            administrators
                .entry(row.actor_id)
                .or_insert_with(|| NamedLine {
                    name: row
                        .actor_name
                        .clone()
                        .unwrap_or_else(|| "Administrador".into()),
                    counts: Pair::default(),
                })
                .counts
                .add(row.to_status, row.n);
        }
    }
    let mut administrators: Vec<NamedLine> = administrators.into_values().collect();
    administrators.sort_by(|a, b| by_total_then_name(&a.counts, &a.name, &b.counts, &b.name));
    administrators
}

/// One line per day from `from` to `to`, zero where nothing closed.
fn day_lines(counted: &[DayCount], from: NaiveDate, to: NaiveDate) -> Vec<DayLine> {
    let mut days: Vec<DayLine> = from
        .iter_days()
        .take_while(|d| *d <= to)
        .map(|date| DayLine {
            date,
            label: date.format("%d/%m/%Y").to_string(),
            counts: Pair::default(),
        })
        .collect();
    for count in counted {
        if let Some(line) = usize::try_from(count.day)
            .ok()
            .and_then(|i| days.get_mut(i))
        {
            line.counts = Pair {
                cancelled: count.cancelled,
                resolved: count.resolved,
            };
        }
    }
    days
}

/// One bar of a chart, in SVG user units.
pub struct Bar {
    pub x: i64,
    pub y: i64,
    pub w: i64,
    pub h: i64,
    pub class: &'static str,
    pub title: String,
}

/// A text label of a chart.
pub struct Label {
    pub x: i64,
    pub y: i64,
    pub text: String,
}

/// The per-day chart: two bars a day (solid for cancelled, hatched for resolved).
pub struct DayChart {
    /// The accessible name: what the chart shows, then a summary sentence.
    pub label: String,
    pub width: i64,
    pub height: i64,
    pub bars: Vec<Bar>,
    pub x_labels: Vec<Label>,
    pub grid: Vec<Label>,
    pub plot_left: i64,
    pub plot_right: i64,
    pub baseline: i64,
}

/// A horizontal bar chart drawn with HTML and CSS (`macros/charts.html`):
/// one row per line, its name as text that wraps rather than being cut, two
/// bars scaled to the largest value, each followed by its number.
pub struct RowChart {
    /// The accessible name: what the chart shows, then a summary sentence.
    pub label: String,
    pub rows: Vec<ChartRow>,
}

/// One line of a [`RowChart`].
pub struct ChartRow {
    pub name: String,
    pub cancelled: String,
    pub resolved: String,
    /// Bar lengths as a share of the chart's largest value ("37.5%").
    pub cancelled_width: String,
    pub resolved_width: String,
}

/// "1 cancelada", "3 canceladas".
fn counted(n: i64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// "8 canceladas y 4 resueltas".
fn pair_words(pair: Pair) -> String {
    format!(
        "{} y {}",
        counted(pair.cancelled, "cancelada", "canceladas"),
        counted(pair.resolved, "resuelta", "resueltas")
    )
}

/// Joins Spanish list items: "a", "a y b", "a, b y c".
fn spanish_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} y {last}", rest.join(", ")),
    }
}

/// The summary sentence of a row chart: its three largest lines by total.
fn largest_lines(lines: &[(&str, Pair)]) -> String {
    let mut ranked: Vec<&(&str, Pair)> = lines.iter().filter(|(_, p)| p.total() > 0).collect();
    ranked.sort_by(|(a_name, a), (b_name, b)| by_total_then_name(a, a_name, b, b_name));
    let top: Vec<String> = ranked
        .iter()
        .take(3)
        .map(|(name, pair)| format!("{name}, {} ({})", pair.total(), pair_words(*pair)))
        .collect();
    if top.is_empty() {
        "Sin cierres en el periodo.".to_owned()
    } else {
        format!("Más cierres: {}.", spanish_list(&top))
    }
}

/// The length of a bar of `value` when `max` fills the width.
fn share(value: i64, max: i64) -> String {
    let tenths = value * 1000 / max.max(1);
    format!("{}.{}%", tenths / 10, tenths % 10)
}

/// A round axis maximum at or above `max` (1, 2, 5 × 10ⁿ).
/// The axis of a chart whose largest value is `max`: (top, step), with
/// ticks every `step` up to `top`.
fn axis(max: i64) -> (i64, i64) {
    let step = nice_max((max.max(1) + 3) / 4);
    let top = step * ((max.max(1) + step - 1) / step);
    (top, step)
}

fn nice_max(max: i64) -> i64 {
    let mut step = 1;
    loop {
        for m in [1, 2, 5] {
            if m * step >= max.max(1) {
                return m * step;
            }
        }
        step *= 10;
    }
}

pub fn day_chart(days: &[DayLine]) -> DayChart {
    let (left, top, bottom) = (44, 12, 40);
    let slot = if days.len() > 120 { 6 } else { 18 };
    let plot_w = (days.len() as i64 * slot).max(200);
    let plot_h = 180;
    let width = left + plot_w + 12;
    let height = top + plot_h + bottom;
    let baseline = top + plot_h;
    let (max, step) = axis(
        days.iter()
            .map(|d| d.counts.cancelled.max(d.counts.resolved))
            .max()
            .unwrap_or(0),
    );
    let bar_w = ((slot - 2) / 2).max(1);
    let mut bars = Vec::new();
    let mut x_labels = Vec::new();
    let every = (days.len() / 10).max(1);
    for (i, day) in days.iter().enumerate() {
        let x = left + i as i64 * slot + 1;
        for (offset, value, class, word) in [
            (0, day.counts.cancelled, "bar-cancelled", "canceladas"),
            (bar_w, day.counts.resolved, "bar-resolved", "resueltas"),
        ] {
            let h = value * plot_h / max;
            bars.push(Bar {
                x: x + offset,
                y: baseline - h,
                w: bar_w,
                h,
                class,
                title: format!("{}: {value} {word}", day.label),
            });
        }
        if i % every == 0 {
            x_labels.push(Label {
                x: x + bar_w,
                y: baseline + 16,
                text: day.date.format("%d/%m").to_string(),
            });
        }
    }
    let grid = (0..=max / step)
        .map(|k| Label {
            x: left - 6,
            y: baseline - k * step * plot_h / max,
            text: (k * step).to_string(),
        })
        .collect();
    DayChart {
        label: day_summary(days),
        width,
        height,
        bars,
        x_labels,
        grid,
        plot_left: left,
        plot_right: left + plot_w,
        baseline,
    }
}

/// The per-day chart's name and summary: the totals and the busiest day.
fn day_summary(days: &[DayLine]) -> String {
    let mut totals = Pair::default();
    for day in days {
        totals.cancelled += day.counts.cancelled;
        totals.resolved += day.counts.resolved;
    }
    let period = match (days.first(), days.last()) {
        (Some(first), Some(last)) => format!(
            ", del {} al {}",
            first.date.format("%d/%m/%Y"),
            last.date.format("%d/%m/%Y")
        ),
        _ => String::new(),
    };
    // The first of the busiest days.
    let busiest = days
        .iter()
        .rev()
        .max_by_key(|d| d.counts.total())
        .filter(|d| d.counts.total() > 0);
    match busiest {
        None => format!("Cancelaciones y resoluciones por día{period}. Sin cierres en el periodo."),
        Some(day) => format!(
            "Cancelaciones y resoluciones por día{period}. En total {}; el día con más cierres fue el {}, con {}.",
            pair_words(totals),
            day.date.format("%d/%m/%Y"),
            day.counts.total()
        ),
    }
}

/// A row chart named `title`, one row per line, in the order given.
pub fn row_chart<'a>(title: &str, lines: impl Iterator<Item = (&'a str, Pair)>) -> RowChart {
    let lines: Vec<(&str, Pair)> = lines.collect();
    let max = lines
        .iter()
        .map(|(_, p)| p.cancelled.max(p.resolved))
        .max()
        .unwrap_or(0);
    let rows = lines
        .iter()
        .map(|(name, pair)| ChartRow {
            name: (*name).to_owned(),
            cancelled: counted(pair.cancelled, "cancelada", "canceladas"),
            resolved: counted(pair.resolved, "resuelta", "resueltas"),
            cancelled_width: share(pair.cancelled, max),
            resolved_width: share(pair.resolved, max),
        })
        .collect();
    RowChart {
        label: format!("{title}. {}", largest_lines(&lines)),
        rows,
    }
}

/// The chart of closures by closer kind.
fn closer_chart(report: &Report) -> RowChart {
    row_chart(
        "Cierres por quién cerró",
        report.closers.iter().map(|l| (l.name.as_str(), l.counts)),
    )
}

/// The chart of the categories with the most closures, if any closed.
fn category_chart(report: &Report) -> Option<RowChart> {
    if report.categories.is_empty() {
        return None;
    }
    let title = if report.categories.len() > CHART_CATEGORIES {
        "Cierres por categoría, las 10 con más"
    } else {
        "Cierres por categoría"
    };
    Some(row_chart(
        title,
        report
            .categories
            .iter()
            .take(CHART_CATEGORIES)
            .map(|l| (l.name.as_str(), l.counts)),
    ))
}

#[derive(Template)]
#[template(path = "reports.html")]
struct ReportPage {
    ctx: PageContext,
    from_day: String,
    to_day: String,
    campaigns: Vec<FilterOption>,
    errors: RangeErrors,
    report: Option<Report>,
    period: String,
    day_chart: Option<DayChart>,
    closer_chart: Option<RowChart>,
    category_chart: Option<RowChart>,
    export_href: String,
}

fn require_console(user: &CurrentUser) -> Result<(), AppError> {
    if user.role.may_use_console() {
        Ok(())
    } else {
        Err(AppError::Forbidden)
    }
}

fn chosen_campaigns(query: &ReportQuery) -> Vec<Uuid> {
    query
        .campaigns
        .iter()
        .filter_map(|c| Uuid::parse_str(c).ok())
        .collect()
}

/// The campaign filter: every campaign in the viewer's scope, the chosen
/// ones selected.
async fn campaign_choices(
    state: &AppState,
    user: &CurrentUser,
    chosen: &[Uuid],
) -> Result<Vec<FilterOption>, AppError> {
    let options = state.store.campaign_options(&user.scope).await?;
    Ok(options
        .into_iter()
        .map(|c| FilterOption {
            selected: chosen.contains(&c.id),
            value: c.id.to_string(),
            label: c.name,
        })
        .collect())
}

/// `GET /reportes`
pub async fn show(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    require_console(&user)?;
    let query = ReportQuery::from_request(&req);
    let tz = state.timezone;
    let today = Utc::now().with_timezone(&tz).date_naive();
    let chosen = chosen_campaigns(&query);
    let campaigns = campaign_choices(&state, &user, &chosen).await?;
    let (from_day, to_day, errors, report, period) =
        match parse_range(&query.from_day, &query.to_day, today) {
            Ok((from, to)) => {
                let scope = Campaigns::within(&user.scope, &chosen);
                let bounds = report_bounds(from, to, tz);
                let counts = state.store.report_counts(&scope, &bounds).await?;
                (
                    from.format("%Y-%m-%d").to_string(),
                    to.format("%Y-%m-%d").to_string(),
                    RangeErrors::default(),
                    Some(build_report(&counts, from, to)),
                    format!("{} al {}", from.format("%d/%m/%Y"), to.format("%d/%m/%Y")),
                )
            }
            Err(errors) => (
                query.from_day.clone(),
                query.to_day.clone(),
                errors,
                None,
                String::new(),
            ),
        };
    let status = if report.is_some() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let day_chart = report.as_ref().map(|r| day_chart(&r.days));
    let closer_chart = report.as_ref().map(closer_chart);
    let category_chart = report.as_ref().and_then(category_chart);
    let export_query = ReportQuery {
        from_day: from_day.clone(),
        to_day: to_day.clone(),
        campaigns: query.campaigns.clone(),
    };
    render_with_status(
        &ReportPage {
            ctx: PageContext::new(&req, &user, "reportes")?,
            from_day,
            to_day,
            campaigns,
            errors,
            report,
            period,
            day_chart,
            closer_chart,
            category_chart,
            export_href: format!("/reportes/exportar?{}", export_query.query_string()),
        },
        status,
    )
}

/// `GET /reportes/exportar?<same query>`: one row per conversation the report counts.
pub async fn export(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    require_console(&user)?;
    let query = ReportQuery::from_request(&req);
    let tz = state.timezone;
    let today = Utc::now().with_timezone(&tz).date_naive();
    let (from, to) = parse_range(&query.from_day, &query.to_day, today).map_err(|e| {
        AppError::Conflict(
            e.to_day
                .or(e.from_day)
                .unwrap_or_else(|| "El periodo no es válido".into()),
        )
    })?;
    let (start, end) = range_instants(from, to, tz);
    let campaigns = Campaigns::within(&user.scope, &chosen_campaigns(&query));
    csv_response(
        &state,
        &user,
        ExportSource::ClosedBetween {
            from: start,
            to: end,
            campaigns,
        },
        "reporte-cierres",
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn the_page_groups_the_digits_of_large_counts() {
        let pair = Pair {
            cancelled: 12_345,
            resolved: 1_000_000,
        };
        assert_eq!(pair.cancelled_shown().to_string(), "12\u{202F}345");
        assert_eq!(pair.resolved_shown().to_string(), "1\u{202F}000\u{202F}000");
        assert_eq!(pair.total_shown().to_string(), "1\u{202F}012\u{202F}345");
        assert_eq!(Pair::default().total_shown().to_string(), "0");
    }

    #[test]
    fn an_empty_range_is_the_last_thirty_days() {
        assert_eq!(
            parse_range("", "", day("2026-11-26")),
            Ok((day("2026-10-28"), day("2026-11-26")))
        );
    }

    #[test]
    fn a_reversed_malformed_or_too_long_range_is_refused_next_to_its_field() {
        let today = day("2026-11-26");
        let reversed = parse_range("2026-11-20", "2026-11-01", today).unwrap_err();
        assert_eq!(
            reversed.to_day.as_deref(),
            Some("La fecha final es anterior a la inicial")
        );
        let long = parse_range("2024-01-01", "2026-11-26", today).unwrap_err();
        assert_eq!(
            long.to_day.as_deref(),
            Some("El periodo no puede pasar de 2 años")
        );
        let bad = parse_range("2026-02-30", "x", today).unwrap_err();
        assert!(bad.from_day.is_some() && bad.to_day.is_some());
        assert!(parse_range("2024-11-27", "2026-11-26", today).is_ok());
    }

    #[test]
    fn days_are_local_and_include_both_ends() {
        let (start, end) = range_instants(
            day("2026-11-26"),
            day("2026-11-26"),
            chrono_tz::America::Mexico_City,
        );
        assert_eq!(start.to_sqlite_text(), "2026-11-26T06:00:00.000000Z");
        assert_eq!(end.to_sqlite_text(), "2026-11-27T06:00:00.000000Z");
    }

    #[test]
    fn a_row_chart_scales_to_its_largest_value_and_names_its_largest_lines() {
        let pair = |cancelled, resolved| Pair {
            cancelled,
            resolved,
        };
        let chart = row_chart(
            "Cierres por categoría",
            [
                ("Envío", pair(1, 0)),
                ("Producto", pair(8, 4)),
                ("Facturación", pair(2, 7)),
                ("Otra", pair(0, 1)),
            ]
            .into_iter(),
        );
        assert_eq!(
            chart.label,
            "Cierres por categoría. Más cierres: Producto, 12 (8 canceladas y 4 resueltas), \
             Facturación, 9 (2 canceladas y 7 resueltas) y Envío, 1 (1 cancelada y 0 resueltas)."
        );
        assert_eq!(chart.rows[1].cancelled_width, "100.0%");
        assert_eq!(chart.rows[1].resolved_width, "50.0%");
        assert_eq!(chart.rows[2].resolved_width, "87.5%");
        assert_eq!(chart.rows[0].cancelled, "1 cancelada");
        let empty = row_chart(
            "Cierres por quién cerró",
            [("Agente", pair(0, 0))].into_iter(),
        );
        assert_eq!(
            empty.label,
            "Cierres por quién cerró. Sin cierres en el periodo."
        );
        assert_eq!(empty.rows[0].cancelled_width, "0.0%");
    }

    #[test]
    fn chart_axes_end_on_round_numbers() {
        assert_eq!(nice_max(0), 1);
        assert_eq!(nice_max(3), 5);
        assert_eq!(nice_max(17), 20);
        assert_eq!(nice_max(101), 200);
        assert_eq!(axis(10), (10, 5));
        assert_eq!(axis(7), (8, 2));
        assert_eq!(axis(0), (1, 1));
    }
}
