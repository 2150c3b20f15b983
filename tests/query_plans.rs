//! The Mensajes queries must be served by indexes on both backends, so a
//! later change cannot silently lose one: the default view, each filter, the
//! search, and a later page, for a scoped Administrador and for everyone.

mod common;

use common::{Backend, TestApp, fresh_store};
use relevo::db::{Cursor, ListFilter, Search, StatusFilter, Ts};
use relevo::domain::{ChannelKind, Scope, Status};

on_both_backends!(every_mensajes_query_uses_an_index);

/// Whether a plan reads the whole conversations table.
///
/// SQLite steps are indented under their parent. `SCAN c` is a table scan,
/// except at the top level of a plan whose `c` is a derived table (a
/// `CO-ROUTINE c` or `MATERIALIZE c`: the page merged from index ranges,
/// at most 51 rows per campaign); `SCAN c USING INDEX …` walks an index in
/// the order asked for and stops at the page size.
fn full_scan(backend: Backend, plan: &[String]) -> bool {
    match backend {
        Backend::Sqlite => {
            let derived = plan
                .iter()
                .any(|l| l == "CO-ROUTINE c" || l == "MATERIALIZE c");
            plan.iter().any(|line| {
                let nested = line.starts_with(' ');
                line.trim() == "SCAN c" && (nested || !derived)
            })
        }
        Backend::Postgres => plan.iter().any(|l| l.contains("Seq Scan on conversations")),
    }
}

async fn every_mensajes_query_uses_an_index(backend: Backend) {
    // The detector itself recognises a full scan.
    assert!(full_scan(Backend::Sqlite, &["SCAN c".to_owned()]));
    assert!(full_scan(
        Backend::Postgres,
        &["  ->  Seq Scan on conversations c".to_owned()]
    ));
    assert!(!full_scan(
        Backend::Sqlite,
        &["SEARCH c USING INDEX conversations_open_activity_idx (is_open=?)".to_owned()]
    ));
    assert!(!full_scan(
        Backend::Sqlite,
        &[
            "CO-ROUTINE c".to_owned(),
            "  SEARCH c USING INDEX x".to_owned(),
            "SCAN c".to_owned()
        ]
    ));
    assert!(full_scan(
        Backend::Sqlite,
        &[
            "CO-ROUTINE c".to_owned(),
            "  SCAN c".to_owned(),
            "SCAN c".to_owned()
        ]
    ));
    let Some((store, url, _guard)) = fresh_store(backend).await else {
        return;
    };
    relevo::cli::seed_demo(&store).await.unwrap();
    if let relevo::db::Store::Sqlite(pools) = &store {
        sqlx::query("analyze").execute(&pools.write).await.unwrap();
    }
    let app = TestApp::attach(0, store, backend, url);
    let ventas = app.campaign_id("Ventas Hogar").await;
    let soporte = app.campaign_id("Soporte Técnico").await;
    let agent = app
        .uuids_where(
            "select id from users where role = $1 order by email",
            "agent",
        )
        .await[0];
    let scopes = [Scope::All, Scope::Campaigns(vec![ventas, soporte])];
    let now = Ts::now();
    let filters: Vec<(&str, ListFilter)> = vec![
        ("default view", ListFilter::default()),
        (
            "all statuses",
            ListFilter {
                status: Some(StatusFilter::All),
                ..ListFilter::default()
            },
        ),
        (
            "one status",
            ListFilter {
                status: Some(StatusFilter::Only(Status::Cancelled)),
                ..ListFilter::default()
            },
        ),
        (
            "campaign",
            ListFilter {
                campaign_id: Some(ventas),
                ..ListFilter::default()
            },
        ),
        (
            "agent",
            ListFilter {
                agent_id: Some(agent),
                ..ListFilter::default()
            },
        ),
        (
            "channel",
            ListFilter {
                channel_kind: Some(ChannelKind::Telegram),
                ..ListFilter::default()
            },
        ),
        (
            "date range",
            ListFilter {
                started_from: Some(Ts::new(now.0 - chrono::Duration::days(2))),
                started_before: Some(now),
                ..ListFilter::default()
            },
        ),
        (
            "search by folio or phone",
            ListFilter {
                search: Some(Search::Number("10482".into())),
                ..ListFilter::default()
            },
        ),
        (
            "search by name",
            ListFilter {
                search: Some(Search::Text("lopez".into())),
                ..ListFilter::default()
            },
        ),
    ];
    let mut failures = Vec::new();
    for scope in &scopes {
        for (name, filter) in &filters {
            for cursor in [None, Some(Cursor::After(now, 10_200))] {
                let plan = app.store.explain_list(scope, filter, cursor).await.unwrap();
                if std::env::var("SHOW_PLANS").is_ok() {
                    eprintln!(
                        "{backend:?} {name} {scope:?} {cursor:?}:\n  {}",
                        plan.join("\n  ")
                    );
                }
                if full_scan(backend, &plan) {
                    failures.push(format!(
                        "{name} ({scope:?}, {cursor:?}):\n  {}",
                        plan.join("\n  ")
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "full scans of conversations:\n{}",
        failures.join("\n")
    );
}
