//! The Mensajes queries must be served by indexes on both backends, so a
//! later change cannot silently lose one: the default view, each filter, the
//! search, and a later page, for a scoped Administrador and for everyone.

mod common;

use common::{Backend, DbGuardHandle, TestApp, fresh_store};
use relevo::db::{Cursor, ListFilter, ListOrder, Search, StatusFilter, Ts};
use relevo::domain::{ChannelKind, Scope, Status};

on_both_backends!(every_conversation_list_query_uses_an_index);

/// Whether a plan reads the whole conversations table.
///
/// SQLite steps are indented under their parent. `SCAN c` is a table scan,
/// except after a sibling step that builds `c` as a derived table (a
/// `CO-ROUTINE c` or `MATERIALIZE c`: a page cut to 51 rows, merged from
/// index ranges or taken from a search's matches) or `MATERIALIZE
/// search_matches` (a search's matches, found by index lookups inside that
/// step and then read in full). `SCAN conversations` (the search's arms
/// have no alias) is always a table scan. `SCAN c USING INDEX …` walks an
/// index in the order asked for and stops at the page size.
fn full_scan(backend: Backend, plan: &[String]) -> bool {
    match backend {
        Backend::Sqlite => {
            let indent = |line: &str| line.len() - line.trim_start().len();
            // Whether line `i` has an earlier sibling (same parent) `step`.
            let after_sibling = |i: usize, steps: &[&str]| {
                let level = indent(&plan[i]);
                plan[..i]
                    .iter()
                    .rev()
                    .take_while(|l| indent(l) >= level)
                    .any(|l| indent(l) == level && steps.contains(&l.trim()))
            };
            plan.iter().enumerate().any(|(i, line)| {
                // The search's arms name the table without an alias.
                line.trim() == "SCAN conversations"
                    || (line.trim() == "SCAN c"
                        && !after_sibling(
                            i,
                            &[
                                "CO-ROUTINE c",
                                "MATERIALIZE c",
                                "MATERIALIZE search_matches",
                            ],
                        ))
            })
        }
        Backend::Postgres => plan.iter().any(|l| l.contains("Seq Scan on conversations")),
    }
}

async fn every_conversation_list_query_uses_an_index(backend: Backend) {
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
    assert!(!full_scan(
        Backend::Sqlite,
        &[
            "CO-ROUTINE q".to_owned(),
            "  MATERIALIZE search_matches".to_owned(),
            "    SEARCH c USING INTEGER PRIMARY KEY (rowid=?)".to_owned(),
            "  SCAN c".to_owned()
        ]
    ));
    assert!(full_scan(
        Backend::Sqlite,
        &[
            "CO-ROUTINE q".to_owned(),
            "  MATERIALIZE search_matches".to_owned(),
            "    SCAN c".to_owned(),
            "  SCAN c".to_owned()
        ]
    ));
    assert!(full_scan(
        Backend::Sqlite,
        &[
            "CO-ROUTINE q".to_owned(),
            "  MATERIALIZE search_matches".to_owned(),
            "    SCAN conversations".to_owned(),
            "  SCAN c".to_owned()
        ]
    ));
    // A search's page cut to 51 rows before its names are joined.
    assert!(!full_scan(
        Backend::Sqlite,
        &[
            "CO-ROUTINE q".to_owned(),
            "  CO-ROUTINE c".to_owned(),
            "    MATERIALIZE search_matches".to_owned(),
            "      SEARCH conversations USING INTEGER PRIMARY KEY (rowid=?)".to_owned(),
            "    SCAN c".to_owned(),
            "    USE TEMP B-TREE FOR ORDER BY".to_owned(),
            "  SCAN c".to_owned()
        ]
    ));
    let Some((app, _guard)) = analysed_demo(backend).await else {
        return;
    };
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
    let stale_cutoffs: Vec<(uuid::Uuid, Ts)> = app
        .store
        .stale_thresholds(&Scope::All)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, minutes)| (id, Ts::new(now.0 - chrono::Duration::minutes(minutes))))
        .collect();
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
            "rezagadas",
            ListFilter {
                status: Some(StatusFilter::Stale),
                stale_cutoffs: stale_cutoffs.clone(),
                ..ListFilter::default()
            },
        ),
        (
            "rezagadas of a campaign",
            ListFilter {
                status: Some(StatusFilter::Stale),
                campaign_id: Some(ventas),
                stale_cutoffs: stale_cutoffs.clone(),
                ..ListFilter::default()
            },
        ),
        (
            "agent disconnected",
            ListFilter {
                agent_offline: true,
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
            "search by phone prefix",
            ListFilter {
                search: Some(Search::Number("5512345678".into())),
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
    let orders = [ListOrder::Recent, ListOrder::Idle, ListOrder::InStatus];
    for scope in &scopes {
        for (name, filter) in &filters {
            for (cursor, order) in [None, Some(Cursor::After(now, 10_200))]
                .into_iter()
                .flat_map(|c| orders.map(|o| (c, o)))
            {
                let filter = &ListFilter {
                    order,
                    ..filter.clone()
                };
                let name = format!("{name} by {order:?}");
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

on_both_backends!(every_paged_admin_list_query_uses_an_index);

/// Whether an administration list's plan reads more than a page: on SQLite
/// a `SCAN` without an index of anything but the picker's merged arms (each
/// cut to a page), or a sort other than that merge's (sorting means reading
/// every row under the parent first); on PostgreSQL a sequential scan.
fn admin_full_scan(backend: Backend, plan: &[String]) -> bool {
    match backend {
        Backend::Sqlite => {
            let merged = plan.iter().any(|l| l == "SCAN found");
            plan.iter().any(|line| {
                let line = line.trim();
                (line.starts_with("SCAN ")
                    && !line.contains(" USING ")
                    && !["SCAN found", "SCAN by_name", "SCAN by_email"].contains(&line))
                    || (line.contains("TEMP B-TREE") && !merged)
            })
        }
        Backend::Postgres => plan.iter().any(|l| l.contains("Seq Scan")),
    }
}

async fn every_paged_admin_list_query_uses_an_index(backend: Backend) {
    assert!(admin_full_scan(
        Backend::Sqlite,
        &["  SCAN channels".to_owned()]
    ));
    assert!(admin_full_scan(
        Backend::Sqlite,
        &[
            "SEARCH channels USING INDEX channels_campaign_idx (campaign_id=?)".to_owned(),
            "USE TEMP B-TREE FOR ORDER BY".to_owned()
        ]
    ));
    assert!(!admin_full_scan(
        Backend::Sqlite,
        &["SCAN u USING INDEX users_name_key_idx".to_owned()]
    ));
    assert!(admin_full_scan(
        Backend::Postgres,
        &["  ->  Seq Scan on users u".to_owned()]
    ));
    let Some((app, _guard)) = analysed_demo(backend).await else {
        return;
    };
    let ventas = app.campaign_id("Ventas Hogar").await;
    let row = app
        .uuids_where("select id from users where role = $1", "agent")
        .await[0];
    let mut failures = Vec::new();
    for search in ["", "ana", "ana.lo"] {
        let plans = app
            .store
            .explain_admin_lists(ventas, row, search)
            .await
            .unwrap();
        assert_eq!(plans.len(), 5);
        for (name, plan) in plans {
            if std::env::var("SHOW_PLANS").is_ok() {
                eprintln!("{backend:?} {name} {search:?}:\n  {}", plan.join("\n  "));
            }
            if admin_full_scan(backend, &plan) {
                failures.push(format!("{name} ({search:?}):\n  {}", plan.join("\n  ")));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "full scans in administration lists:\n{}",
        failures.join("\n")
    );
}

/// The demo data set on a fresh database whose statistics are up to date,
/// so plans are the ones a real deployment gets.
async fn analysed_demo(backend: Backend) -> Option<(TestApp, DbGuardHandle)> {
    let (store, url, guard) = fresh_store(backend).await?;
    relevo::cli::seed_demo(&store).await.unwrap();
    if let relevo::db::Store::Sqlite(pools) = &store {
        sqlx::query("analyze").execute(&pools.write).await.unwrap();
    }
    Some((TestApp::attach(0, store, backend, url), guard))
}

on_both_backends!(every_transcript_query_uses_an_index);

/// Whether a transcript statement's plan reads more than its page (or its
/// batch): on SQLite a `SCAN` of messages or a sort (`TEMP B-TREE`: every
/// message of the conversation read before the first is returned); on
/// PostgreSQL a sequential scan of messages or a `Sort` node.
fn transcript_full_read(backend: Backend, plan: &[String]) -> bool {
    match backend {
        Backend::Sqlite => plan.iter().any(|line| {
            let line = line.trim();
            (line.starts_with("SCAN m") && !line.contains(" USING "))
                || line.starts_with("SCAN messages")
                || line.contains("TEMP B-TREE")
        }),
        Backend::Postgres => plan.iter().any(|l| {
            let step = l.trim_start().trim_start_matches("->").trim_start();
            l.contains("Seq Scan on messages") || step.starts_with("Sort")
        }),
    }
}

async fn every_transcript_query_uses_an_index(backend: Backend) {
    assert!(transcript_full_read(
        Backend::Sqlite,
        &["SCAN m".to_owned()]
    ));
    assert!(transcript_full_read(
        Backend::Sqlite,
        &[
            "SEARCH m USING INDEX messages_transcript_idx (conversation_id=?)".to_owned(),
            "USE TEMP B-TREE FOR ORDER BY".to_owned()
        ]
    ));
    assert!(!transcript_full_read(
        Backend::Sqlite,
        &[
            "SEARCH m USING INDEX messages_transcript_idx (conversation_id=? AND (at,id)<(?,?))"
                .to_owned()
        ]
    ));
    assert!(transcript_full_read(
        Backend::Postgres,
        &["  ->  Sort  (cost=1.0..2.0 rows=5 width=8)".to_owned()]
    ));
    assert!(transcript_full_read(
        Backend::Postgres,
        &["  ->  Seq Scan on messages m".to_owned()]
    ));
    let Some((app, _guard)) = analysed_demo(backend).await else {
        return;
    };
    // The demo's longest transcript, around its middle.
    let conversation = app
        .uuids_where(
            "select conversation_id from messages group by conversation_id \
             having count(*) > cast($1 as integer) order by count(*) desc limit 1",
            "50",
        )
        .await[0];
    let page = app
        .store
        .transcript_page(conversation, relevo::db::TranscriptPosition::Latest, 50)
        .await
        .unwrap();
    let key = page.older.expect("a transcript of several pages");
    let plans = app
        .store
        .explain_transcript(conversation, key)
        .await
        .unwrap();
    assert_eq!(plans.len(), 4);
    // Each statement's own index; the purge also finds each row of its
    // batch by its key (never by reading every unpurged row).
    let key_index = match backend {
        Backend::Sqlite => "sqlite_autoindex_messages_1",
        Backend::Postgres => "messages_pkey",
    };
    let mut failures = Vec::new();
    for (name, plan) in plans {
        if std::env::var("SHOW_PLANS").is_ok() {
            eprintln!("{backend:?} {name}:\n  {}", plan.join("\n  "));
        }
        let uses = |index: &str| plan.iter().any(|l| l.contains(index));
        let indexed = if name == "purge batch" {
            uses("messages_unpurged_at_idx") && uses(key_index)
        } else {
            uses("messages_transcript_idx")
        };
        if transcript_full_read(backend, &plan) || !indexed {
            failures.push(format!("{name}:\n  {}", plan.join("\n  ")));
        }
    }
    assert!(
        failures.is_empty(),
        "transcript statements not served by their index:\n{}",
        failures.join("\n")
    );
}

on_both_backends!(the_link_to_a_restart_uses_its_index);

/// The conversation page's look-up of the conversation that restarted this
/// one reads the partial index of restarts, never every conversation.
async fn the_link_to_a_restart_uses_its_index(backend: Backend) {
    let Some((app, _guard)) = analysed_demo(backend).await else {
        return;
    };
    let id = app
        .uuids_where(
            "select id from conversations where folio = cast($1 as integer)",
            "10001",
        )
        .await[0];
    let plan: Vec<String> = match &app.store {
        relevo::db::Store::Sqlite(pools) => {
            let steps: Vec<(i64, i64, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "explain query plan {}",
                relevo::db::RESTARTED_AS
            )))
            .bind(id)
            .fetch_all(&pools.read)
            .await
            .unwrap();
            steps.into_iter().map(|(_, _, _, detail)| detail).collect()
        }
        relevo::db::Store::Postgres(pg) => sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "explain {}",
            relevo::db::RESTARTED_AS
        )))
        .bind(id)
        .fetch_all(&pg.pool)
        .await
        .unwrap(),
    };
    assert!(
        plan.iter()
            .any(|l| l.contains("conversations_reactivates_id_idx")),
        "{backend:?}: {}",
        plan.join("\n")
    );
}

on_both_backends!(the_event_feed_pages_by_its_index);

/// A page of the event feed is a range of `events_campaign_cursor_idx` in
/// cursor order (no scan of the log, no sort), and the purge finds the
/// oldest events through `events_cursor_key`.
async fn the_event_feed_pages_by_its_index(backend: Backend) {
    let Some((app, _guard)) = analysed_demo(backend).await else {
        return;
    };
    app.store.sequence_events().await.unwrap();
    let campaign = app.campaign_id("Ventas Hogar").await;
    let plans = app.store.explain_events(campaign).await.unwrap();
    assert_eq!(plans.len(), 2);
    let mut failures = Vec::new();
    for (name, plan) in plans {
        if std::env::var("SHOW_PLANS").is_ok() {
            eprintln!("{backend:?} {name}:\n  {}", plan.join("\n  "));
        }
        let uses = |index: &str| plan.iter().any(|l| l.contains(index));
        let reads_all = plan.iter().any(|l| {
            let step = l.trim_start().trim_start_matches("->").trim_start();
            l.contains("Seq Scan on events")
                || step.starts_with("Sort")
                || l.trim() == "SCAN e"
                || l.trim() == "SCAN events"
                || l.contains("TEMP B-TREE")
        });
        let index = match name {
            "feed page" => "events_campaign_cursor_idx",
            _ => "events_cursor_key",
        };
        if reads_all || !uses(index) {
            failures.push(format!("{name}:\n  {}", plan.join("\n  ")));
        }
    }
    assert!(
        failures.is_empty(),
        "event statements not served by their index:\n{}",
        failures.join("\n")
    );
}
