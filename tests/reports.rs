//! Reportes and the CSV export on both backends: the report's numbers equal
//! the history rows they summarise (deactivated categories included), the
//! CSV round-trips through a strict RFC 4180 parser with the formula guard
//! and the viewer's scope, bad ranges are refused, an export taken while
//! rows change is one snapshot, and the report page with its chart in a
//! browser.

mod common;

use std::collections::BTreeMap;

use chrono::Utc;
use common::webdriver::Browser;
use common::{ADMIN_EMAIL, ADMIN_PASSWORD, Backend, TestApp, spawn_app, spawn_app_in_zone};
use relevo::db::Store;
use reqwest::StatusCode;

on_both_backends!(
    report_numbers_equal_the_history_rows_they_summarise_including_deactivated_categories,
    the_csv_round_trips_through_a_parser_with_the_formula_guard_and_the_scope,
    the_report_csv_lists_the_conversations_the_report_counts,
    a_reversed_or_too_long_range_is_refused,
    an_export_taken_while_rows_change_is_one_snapshot,
    per_day_counts_are_exact_in_any_time_zone,
);
on_both_backends!(browser: the_report_page_shows_its_chart_in_a_browser);

/// A strict RFC 4180 parser: quoted fields, doubled quotes, CRLF records.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                other => field.push(other),
            }
            continue;
        }
        match c {
            '"' if at_start => {
                quoted = true;
                at_start = false;
            }
            '"' => panic!("a bare quote inside an unquoted field: {field:?}"),
            ',' => {
                record.push(std::mem::take(&mut field));
                at_start = true;
            }
            '\r' => {
                assert_eq!(chars.next(), Some('\n'), "CRLF line ends");
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
                at_start = true;
            }
            '\n' => panic!("a bare LF outside quotes"),
            other => {
                field.push(other);
                at_start = false;
            }
        }
    }
    assert!(!quoted, "unterminated quote");
    assert!(
        field.is_empty() && record.is_empty(),
        "last line ends with CRLF"
    );
    records
}

/// (category name, to_status) → history rows, counted straight from the database.
async fn history_counts(store: &Store, campaign: &str) -> BTreeMap<(String, String), i64> {
    const SQL: &str = "select coalesce(cat.name, 'Sin categoría'), e.to_status, count(*) \
        from conversation_events e join conversations c on c.id = e.conversation_id \
        join campaigns p on p.id = c.campaign_id \
        left join closure_categories cat on cat.id = e.category_id \
        where p.name = $1 and e.kind in ('cancelled', 'resolved') \
        group by coalesce(cat.name, 'Sin categoría'), e.to_status";
    let rows: Vec<(String, String, i64)> = match store {
        Store::Sqlite(p) => sqlx::query_as(SQL)
            .bind(campaign)
            .fetch_all(&p.read)
            .await
            .unwrap(),
        Store::Postgres(pg) => sqlx::query_as(SQL)
            .bind(campaign)
            .fetch_all(&pg.pool)
            .await
            .unwrap(),
    };
    rows.into_iter().map(|(c, s, n)| ((c, s), n)).collect()
}

/// `data-category="NAME"` … `data-cancelled="N" data-resolved="M"` of the roll-up.
fn report_categories(html: &str) -> BTreeMap<String, (i64, i64)> {
    let attr = |text: &str, name: &str| -> String {
        let marker = format!("{name}=\"");
        let start = text.find(&marker).unwrap() + marker.len();
        text[start..].split('"').next().unwrap().to_owned()
    };
    html.split("data-category=\"")
        .skip(1)
        .map(|rest| {
            let name = rest.split('"').next().unwrap().replace("&#38;", "&");
            let cancelled = attr(rest, "data-cancelled").parse().unwrap();
            let resolved = attr(rest, "data-resolved").parse().unwrap();
            (name, (cancelled, resolved))
        })
        .collect()
}

fn wide_range() -> String {
    let today = Utc::now()
        .with_timezone(&chrono_tz::America::Mexico_City)
        .date_naive();
    let from = today - chrono::Duration::days(700);
    format!(
        "desde={}&hasta={}",
        from.format("%Y-%m-%d"),
        today.format("%Y-%m-%d")
    )
}

async fn report_numbers_equal_the_history_rows_they_summarise_including_deactivated_categories(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_super().await;
    let campaign = app.campaign_id("Ventas Hogar").await;
    let page = app
        .get(&format!("/reportes?{}&campana={campaign}", wide_range()))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    let expected = history_counts(&app.store, "Ventas Hogar").await;
    let shown = report_categories(&page.body);
    let mut from_db: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for ((name, status), n) in &expected {
        let entry = from_db.entry(name.clone()).or_default();
        if status == "cancelled" {
            entry.0 += n;
        } else {
            entry.1 += n;
        }
    }
    assert_eq!(shown, from_db);
    assert!(
        shown.contains_key("Prueba interna"),
        "the deactivated category keeps its name: {shown:?}"
    );
    assert!(
        page.body
            .contains("Prueba interna <span class=\"muted small\">(desactivada)</span>")
    );
    // The chart beside the table is one image named with a summary: the
    // category with the most closures, its total and how they split.
    let (largest, (cancelled, resolved)) = from_db
        .iter()
        .max_by(|(a_name, a), (b_name, b)| {
            (a.0 + a.1)
                .cmp(&(b.0 + b.1))
                .then_with(|| b_name.cmp(a_name))
        })
        .unwrap();
    let plural =
        |n: &i64, one: &str, many: &str| format!("{n} {}", if *n == 1 { one } else { many });
    let summary = format!(
        "id=\"grafica-categorias\" role=\"img\" aria-label=\"Cierres por categoría. Más cierres: {}, {} ({} y {})",
        largest.replace('&', "&#38;"),
        cancelled + resolved,
        plural(cancelled, "cancelada", "canceladas"),
        plural(resolved, "resuelta", "resueltas"),
    );
    assert!(page.body.contains(&summary), "{summary}");
    assert!(
        page.body
            .contains("role=\"img\" aria-label=\"Cancelaciones y resoluciones por día, del ")
    );
    assert!(page.body.contains(
        "id=\"grafica-tipos\" role=\"img\" aria-label=\"Cierres por quién cerró. Más cierres: "
    ));
    let total_cancelled: i64 = from_db.values().map(|(c, _)| c).sum();
    assert!(
        page.body
            .contains(&format!("id=\"total-canceladas\">{total_cancelled}<")),
        "totals"
    );
    // By closer kind: the same rows split by actor kind.
    let admins = app
        .folios_where(
            "select count(*) from conversation_events e join conversations c on c.id = e.conversation_id \
             join campaigns p on p.id = c.campaign_id where p.name = $1 \
             and e.kind = 'cancelled' and e.actor_kind = 'administrator'",
            "Ventas Hogar",
        )
        .await[0];
    assert!(page.body.contains(&format!(
        "data-closer=\"Administrador\" data-cancelled=\"{admins}\""
    )));
    // An administrator sees only their campaigns, whatever they ask for.
    let admin = common::new_client();
    app.login_with(&admin, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let cobranza = app.campaign_id("Cobranza").await;
    let page = app
        .get_with(
            &admin,
            &format!("/reportes?{}&campana={cobranza}", wide_range()),
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("id=\"total-canceladas\">0<"));
    assert!(!page.body.contains("Cobranza</label>"));
}

async fn export(
    app: &TestApp,
    client: &reqwest::Client,
    path: &str,
) -> (reqwest::header::HeaderMap, String) {
    let response = client.get(app.url(path)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    assert!(bytes.starts_with("\u{feff}".as_bytes()), "UTF-8 BOM");
    (headers, String::from_utf8(bytes[3..].to_vec()).unwrap())
}

async fn the_csv_round_trips_through_a_parser_with_the_formula_guard_and_the_scope(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let folio = app
        .folios_where(
            "select max(c.folio) from conversations c join campaigns p on p.id = c.campaign_id \
             where p.name = $1 and c.status = 'cancelled'",
            "Ventas Hogar",
        )
        .await[0];
    app.execute(
        "update contacts set name = $1 where id = (select contact_id from conversations \
         where folio = (select max(c.folio) from conversations c join campaigns p on p.id = c.campaign_id \
         where p.name = 'Ventas Hogar' and c.status = 'cancelled'))",
        "=HYPERLINK(\"http://evil.example\",\"clic\")",
    )
    .await;
    app.execute(
        "update conversations set closure_comment = $1 where folio = (select max(c.folio) \
         from conversations c join campaigns p on p.id = c.campaign_id \
         where p.name = 'Ventas Hogar' and c.status = 'cancelled')",
        "@SUM(1+1), \"dijo\"\nsegunda línea; -3",
    )
    .await;
    app.login_as_admin().await;
    let (headers, text) = export(&app, &app.client, "/mensajes/exportar?estatus=todas").await;
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"conversaciones-")
    );
    let records = parse_csv(&text);
    assert_eq!(records[0][0], "Folio");
    assert_eq!(records[0].len(), 15);
    assert!(records.iter().all(|r| r.len() == 15));
    let in_scope = app
        .scalar_i64(
            "select count(*) from conversations c join campaigns p on p.id = c.campaign_id \
             where p.name in ('Ventas Hogar', 'Soporte Técnico')",
        )
        .await;
    assert_eq!(
        records.len() as i64 - 1,
        in_scope,
        "one row per conversation in scope"
    );
    let campaigns: std::collections::BTreeSet<&str> =
        records[1..].iter().map(|r| r[4].as_str()).collect();
    assert_eq!(
        campaigns.into_iter().collect::<Vec<_>>(),
        vec!["Soporte Técnico", "Ventas Hogar"]
    );
    let row = records
        .iter()
        .find(|r| r[0] == folio.to_string())
        .expect("the edited row");
    assert_eq!(row[1], "'=HYPERLINK(\"http://evil.example\",\"clic\")");
    assert_eq!(row[14], "'@SUM(1+1), \"dijo\"\nsegunda línea; -3");
    assert_eq!(row[6], "Cancelada");
    assert_eq!(row[11], "Administrador");
    assert!(!row[12].is_empty(), "category");
    assert!(row[9].contains('/'), "closed at as dd/mm/yyyy hh:mm");
    // The filters apply exactly as on the table.
    let (_, text) = export(
        &app,
        &app.client,
        &format!("/mensajes/exportar?estatus=todas&q={folio}"),
    )
    .await;
    let records = parse_csv(&text);
    assert_eq!(records.len(), 2);
    assert_eq!(records[1][0], folio.to_string());
    // A folio of another campaign is not exported to this viewer.
    let foreign = app
        .folios_where(
            "select min(c.folio) from conversations c join campaigns p on p.id = c.campaign_id where p.name = $1",
            "Cobranza",
        )
        .await[0];
    let (_, text) = export(
        &app,
        &app.client,
        &format!("/mensajes/exportar?estatus=todas&q={foreign}"),
    )
    .await;
    assert_eq!(parse_csv(&text).len(), 1, "only the header");
    // Signed out: no export.
    let anonymous = common::new_client();
    let response = anonymous
        .get(app.url("/mensajes/exportar"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

async fn the_report_csv_lists_the_conversations_the_report_counts(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let range = wide_range();
    let page = app.get(&format!("/reportes?{range}")).await;
    let total = |id: &str| -> i64 {
        let marker = format!("id=\"{id}\">");
        let start = page.body.find(&marker).unwrap() + marker.len();
        page.body[start..]
            .split('<')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let closed = total("total-canceladas") + total("total-resueltas");
    let (headers, text) = export(&app, &app.client, &format!("/reportes/exportar?{range}")).await;
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains("reporte-cierres-")
    );
    let records = parse_csv(&text);
    assert_eq!(records.len() as i64 - 1, closed);
    assert!(
        records[1..]
            .iter()
            .all(|r| r[6] == "Cancelada" || r[6] == "Resuelta")
    );
}

async fn a_reversed_or_too_long_range_is_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    for (query, message) in [
        (
            "desde=2026-11-20&hasta=2026-11-01",
            "La fecha final es anterior a la inicial",
        ),
        (
            "desde=2023-01-01&hasta=2026-11-01",
            "El periodo no puede pasar de 2 años",
        ),
        (
            "desde=2026-02-30&hasta=2026-03-01",
            "Escribe una fecha válida",
        ),
    ] {
        let page = app.get(&format!("/reportes?{query}")).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert!(page.body.contains(message), "{query}");
        assert!(page.body.contains("aria-invalid=\"true\""));
        assert!(!page.body.contains("id=\"total-canceladas\""));
        let csv = app.get(&format!("/reportes/exportar?{query}")).await;
        assert_eq!(csv.status, StatusCode::CONFLICT, "{query}");
    }
}

async fn an_export_taken_while_rows_change_is_one_snapshot(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_super().await;
    let open_before = app
        .scalar_i64("select count(*) from conversations where is_open")
        .await;
    // The export is requested while the changes commit, one by one.
    let request = tokio::spawn(app.client.get(app.url("/mensajes/exportar")).send());
    let store = app.store.clone();
    let changer = tokio::spawn(async move {
        let victims = store
            .recent_in_status(relevo::domain::Status::Icr, 10)
            .await
            .unwrap();
        let mut cancelled = Vec::new();
        for c in victims {
            let category = store.closure_options(c.campaign_id).await.unwrap()[0].id;
            let category = store.category_ref(category).await.unwrap().unwrap();
            let t = relevo::domain::conversation::system_cancel(
                &c,
                relevo::domain::Status::Icr,
                relevo::domain::Lookup::Found(category),
                relevo::domain::Lookup::NotChosen,
                "",
                Utc::now(),
            )
            .unwrap();
            if store.apply_transition(&t).await.unwrap().is_ok() {
                cancelled.push(c.folio.to_string());
            }
        }
        cancelled
    });
    let response = request.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.bytes().await.unwrap();
    let cancelled = changer.await.unwrap();
    let records = parse_csv(std::str::from_utf8(&bytes[3..]).unwrap());
    let folios: std::collections::BTreeSet<&str> =
        records[1..].iter().map(|r| r[0].as_str()).collect();
    let rows = records.len() as i64 - 1;
    assert_eq!(folios.len() as i64, rows, "no folio twice");
    // Every row is whole, and the file is the open conversations of one
    // moment: the query reads one snapshot, taken when it starts, which may
    // fall between any two of the cancellations (they commit one by one).
    // So the rows are exactly the open ones after the first k of them, for
    // some k: never a mix.
    let open_after = app
        .scalar_i64("select count(*) from conversations where is_open")
        .await;
    assert_eq!(open_before - open_after, cancelled.len() as i64);
    let k = (open_before - rows) as usize;
    assert!(k <= cancelled.len(), "{rows} vs {open_before}/{open_after}");
    for (i, folio) in cancelled.iter().enumerate() {
        assert_eq!(
            folios.contains(folio.as_str()),
            i >= k,
            "the snapshot after {k} cancellations: folio {folio} (cancelled {i}th)"
        );
    }
}

async fn the_report_page_shows_its_chart_in_a_browser(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let browser = Browser::start().await;
    browser
        .login(&app.address, ADMIN_EMAIL, ADMIN_PASSWORD)
        .await;
    browser.find("table.data-table tbody tr").await;
    let menu = browser.find("a.menu-item[href='/reportes']").await;
    browser.click(&menu).await;
    browser.find("svg.chart-days").await;
    // The chart has one solid and one hatched bar per day of the table, with
    // the same numbers in their titles.
    let consistent = browser
        .execute(
            "var days = document.querySelectorAll('#tabla-dias tbody tr'); \
             var solid = document.querySelectorAll('svg.chart-days rect.bar-cancelled'); \
             var hatched = document.querySelectorAll('svg.chart-days rect.bar-resolved'); \
             if (days.length !== 30 || solid.length !== 30 || hatched.length !== 30) return 'sizes'; \
             for (var i = 0; i < days.length; i++) { \
               var n = days[i].querySelectorAll('td')[0].textContent.trim(); \
               var t = solid[i].querySelector('title').textContent; \
               if (t.indexOf(': ' + n + ' canceladas') < 0) return t + ' vs ' + n; } \
             var fill = getComputedStyle(hatched[0]).fill; \
             if (fill.indexOf('url(') < 0) return 'hatched ' + fill; \
             return 'ok';",
            vec![],
        )
        .await;
    assert_eq!(consistent, serde_json::json!("ok"));
    // The roll-up folds a category's sub-categories and unfolds them again.
    browser
        .wait_until(
            "the drill-down toggles",
            "var b = document.querySelector('[data-rollup-toggle]'); return !!b && !b.hidden;",
        )
        .await;
    let toggle = browser.find("[data-rollup-toggle]").await;
    browser.click(&toggle).await;
    browser
        .wait_until(
            "the sub-categories to fold",
            "var b = document.querySelector('[data-rollup-toggle]'); \
             return b.getAttribute('aria-expanded') === 'false' && \
             document.getElementById(b.getAttribute('aria-controls')).hidden;",
        )
        .await;
    let violations = browser.accessibility_violations().await;
    assert!(violations.is_empty(), "{violations:?}");
    browser.quit().await;
}

/// Closures one minute either side of local midnights that a per-UTC-hour
/// count puts on the wrong day: +05:30, +05:45, −03:30 on the day daylight
/// saving starts (a 23-hour day) and its end, and Chile, whose clocks jump
/// over midnight in September and repeat the hour before it in April.
const NEAR_MIDNIGHT: [&str; 12] = [
    "2024-03-09T18:29:00Z", // Kolkata: 23:59 on 9 March
    "2024-03-09T18:31:00Z", // Kolkata: 00:01 on 10 March
    "2024-03-09T18:14:00Z", // Kathmandu: 23:59 on 9 March
    "2024-03-09T18:16:00Z", // Kathmandu: 00:01 on 10 March
    "2024-03-10T03:29:00Z", // St John's: 23:59 on 9 March (−03:30)
    "2024-03-10T03:31:00Z", // St John's: 00:01 on 10 March
    "2024-03-11T02:29:00Z", // St John's: 23:59 on 10 March (−02:30 since 02:00)
    "2024-03-11T02:31:00Z", // St John's: 00:01 on 11 March
    "2024-04-07T03:59:00Z", // Santiago: 23:59 on 6 April, the second time
    "2024-04-07T04:01:00Z", // Santiago: 00:01 on 7 April
    "2024-09-08T03:59:00Z", // Santiago: 23:59 on 7 September
    "2024-09-08T04:01:00Z", // Santiago: 01:01 on 8 September (00:00 skipped)
];

/// Cancels one open conversation per instant, as the system at that instant.
async fn close_at(app: &TestApp, instants: &[&str]) {
    let ids = app
        .uuids_where(
            "select id from conversations where is_open and status <> $1 order by folio limit 12",
            "resolved",
        )
        .await;
    assert!(ids.len() >= instants.len(), "enough open conversations");
    for (id, at) in ids.into_iter().zip(instants) {
        // A closing is never stamped before the conversation's last
        // activity, so these demo conversations must have gone quiet first.
        let quiet_since = match app.backend {
            Backend::Sqlite => {
                "update conversations set last_activity_at = '2024-01-01T00:00:00.000000Z' where id = $1"
            }
            Backend::Postgres => {
                "update conversations set last_activity_at = '2024-01-01T00:00:00Z' where id = $1"
            }
        };
        app.execute_id(quiet_since, id).await;
        let at = chrono::DateTime::parse_from_rfc3339(at).unwrap().to_utc();
        let c = app
            .store
            .conversation_state(&relevo::domain::Scope::All, id)
            .await
            .unwrap()
            .unwrap();
        let category = app.store.closure_options(c.campaign_id).await.unwrap()[0].id;
        let category = app.store.category_ref(category).await.unwrap().unwrap();
        let t = relevo::domain::conversation::system_cancel(
            &c,
            c.status,
            relevo::domain::Lookup::Found(category),
            relevo::domain::Lookup::NotChosen,
            "",
            at,
        )
        .unwrap();
        app.store.apply_transition(&t).await.unwrap().unwrap();
    }
}

async fn per_day_counts_are_exact_in_any_time_zone(backend: Backend) {
    use chrono_tz::{America, Asia};
    let Some(app) = spawn_app_in_zone(backend, true, Asia::Kolkata).await else {
        return;
    };
    close_at(&app, &NEAR_MIDNIGHT).await;
    let day = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    let (from, to) = (day("2024-03-01"), day("2024-09-30"));
    for tz in [
        Asia::Kolkata,
        Asia::Kathmandu,
        America::St_Johns,
        America::Santiago,
        America::Mexico_City,
    ] {
        // The oracle: each closure's local date as chrono-tz reads it.
        let mut expected: BTreeMap<chrono::NaiveDate, i64> = BTreeMap::new();
        for at in NEAR_MIDNIGHT {
            let local = chrono::DateTime::parse_from_rfc3339(at)
                .unwrap()
                .with_timezone(&tz)
                .date_naive();
            *expected.entry(local).or_default() += 1;
        }
        let bounds = relevo::http::reports::report_bounds(from, to, tz);
        let counts = app
            .store
            .report_counts(&relevo::db::Campaigns::All, &bounds)
            .await
            .unwrap();
        let report = relevo::http::reports::build_report(&counts, from, to);
        let shown: BTreeMap<chrono::NaiveDate, i64> = report
            .days
            .iter()
            .filter(|d| d.counts.total() > 0)
            .map(|d| (d.date, d.counts.cancelled))
            .collect();
        assert_eq!(shown, expected, "{tz}");
        assert_eq!(report.totals.cancelled, NEAR_MIDNIGHT.len() as i64, "{tz}");
    }
    // The page, in the application's zone (Kolkata): the same split.
    app.login_as_super().await;
    let page = app.get("/reportes?desde=2024-03-09&hasta=2024-03-10").await;
    assert_eq!(page.status, StatusCode::OK);
    let cancelled_on = |label: &str| -> String {
        let marker =
            format!("data-day=\"{label}\"><th scope=\"row\">{label}</th><td class=\"num\">");
        let start = page.body.find(&marker).expect(label) + marker.len();
        page.body[start..].split('<').next().unwrap().to_owned()
    };
    // 9 March: Kolkata's 23:59 and Kathmandu's two (23:44 and 23:46 in
    // Kolkata); 10 March: Kolkata's 00:01 and St John's first two (08:59
    // and 09:01 in Kolkata).
    assert_eq!(cancelled_on("09/03/2024"), "3");
    assert_eq!(cancelled_on("10/03/2024"), "3");
}
