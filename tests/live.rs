//! The live feed as a viewer sees it: the raw event stream, its scope, its
//! resynchronisation, and changes crossing PostgreSQL instances.

mod common;

use std::time::Duration;

use common::{ADMIN_EMAIL, Backend, SseReader, TestApp, new_client, spawn_app};
use relevo::domain::Role;
use reqwest::StatusCode;
use uuid::Uuid;

on_both_backends!(
    a_viewer_gets_changes_of_their_campaigns_within_a_second_and_never_others,
    taking_a_campaign_away_stops_its_events_at_once,
    a_viewer_who_falls_behind_is_told_to_resync,
    a_stream_ends_when_its_session_ends,
    a_stream_ends_when_its_session_expires_without_any_event,
    the_changes_endpoint_answers_only_rows_in_scope_and_filter,
    the_stream_needs_a_session,
    a_stream_closed_by_the_server_says_reconnect_and_a_new_one_starts_fresh,
);

/// An ICR conversation of `campaign`: (folio, id).
async fn icr_in(app: &TestApp, campaign: &'static str, nth: usize) -> (i64, Uuid) {
    let folio = app
        .folios_where(
            "select c.folio from conversations c join campaigns p on p.id = c.campaign_id \
             where p.name = $1 and c.status = 'icr' order by c.folio",
            campaign,
        )
        .await[nth];
    let id = app
        .uuids_where(
            "select id from conversations where cast(folio as text) = $1",
            &folio.to_string(),
        )
        .await[0];
    (folio, id)
}

/// Moves an ICR conversation to Agentes Desconectados through the rules.
async fn change(app: &TestApp, folio: i64) {
    app.hand_off_to_agents_offline(folio).await;
}

fn change_ids(events: &[(String, String)]) -> Vec<Uuid> {
    events
        .iter()
        .filter(|(e, _)| e == "change")
        .map(|(_, d)| {
            let v: serde_json::Value = serde_json::from_str(d).unwrap();
            Uuid::parse_str(v["id"].as_str().unwrap()).unwrap()
        })
        .collect()
}

async fn a_viewer_gets_changes_of_their_campaigns_within_a_second_and_never_others(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let mut stream = SseReader::open(&app, &app.client, "/mensajes/eventos").await;
    assert_eq!(
        stream.next(Duration::from_secs(2)).await.unwrap().0,
        "hello"
    );
    let (theirs_folio, theirs) = icr_in(&app, "Cobranza", 0).await;
    let (ours_folio, ours) = icr_in(&app, "Ventas Hogar", 0).await;
    change(&app, theirs_folio).await;
    let started = std::time::Instant::now();
    change(&app, ours_folio).await;
    let (event, data) = stream
        .next(Duration::from_secs(1))
        .await
        .expect("the change within 1 s");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(
        event, "change",
        "the other campaign's change was never sent first"
    );
    assert!(data.contains(&ours.to_string()));
    let rest = stream.collect(Duration::from_millis(500)).await;
    assert!(
        !change_ids(&rest).contains(&theirs),
        "never an event of another campaign"
    );
}

async fn taking_a_campaign_away_stops_its_events_at_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let mut stream = SseReader::open(&app, &app.client, "/mensajes/eventos").await;
    stream.next(Duration::from_secs(2)).await;
    let admin = app.store.user_by_email(ADMIN_EMAIL).await.unwrap().unwrap();
    let ventas = app.campaign_id("Ventas Hogar").await;
    app.store.unassign_campaign(admin.id, ventas).await.unwrap();
    let (folio, id) = icr_in(&app, "Ventas Hogar", 1).await;
    change(&app, folio).await;
    let events = stream.collect(Duration::from_millis(800)).await;
    assert!(
        events.iter().any(|(e, _)| e == "resync"),
        "the table reloads for the new scope"
    );
    assert!(
        !change_ids(&events).contains(&id),
        "no event after the campaign was taken away"
    );
    // The other campaign still streams.
    let (folio, id) = icr_in(&app, "Soporte Técnico", 0).await;
    change(&app, folio).await;
    let events = stream.collect(Duration::from_millis(800)).await;
    assert!(change_ids(&events).contains(&id));
}

async fn a_viewer_who_falls_behind_is_told_to_resync(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_super().await;
    let mut slow = SseReader::open(&app, &app.client, "/mensajes/eventos").await;
    slow.next(Duration::from_secs(2)).await;
    // Far more events than the feed keeps, published while nobody reads.
    let campaign = app.campaign_id("Cobranza").await;
    for version in 0..20_000 {
        app.store
            .feed()
            .publish(relevo::live::Event::Changed(relevo::live::Change {
                conversation_id: Uuid::nil(),
                campaign_id: campaign,
                version,
            }));
    }
    let events = slow.collect(Duration::from_secs(3)).await;
    assert!(
        events.iter().any(|(e, _)| e == "resync"),
        "a lagging viewer resyncs"
    );
    assert!(
        events.len() < 20_000,
        "it was not sent everything it missed"
    );
    // Another viewer opened now is unaffected.
    let other = new_client();
    app.login_with(&other, common::SUPER_EMAIL, common::SUPER_PASSWORD)
        .await;
    let mut fresh = SseReader::open(&app, &other, "/mensajes/eventos").await;
    assert_eq!(fresh.next(Duration::from_secs(2)).await.unwrap().0, "hello");
}

async fn a_stream_ends_when_its_session_ends(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let mut stream = SseReader::open(&app, &app.client, "/mensajes/eventos").await;
    stream.next(Duration::from_secs(2)).await;
    let admin = app.store.user_by_email(ADMIN_EMAIL).await.unwrap().unwrap();
    app.store
        .set_user_role(admin.id, Role::Agent, relevo::db::Ts::now())
        .await
        .unwrap();
    let events = stream.collect(Duration::from_secs(1)).await;
    assert_eq!(events.last().map(|e| e.0.as_str()), Some("expired"));
}

/// A session ends by time with nothing announcing it: its stream must
/// notice by itself, or a tab left open would keep receiving the changes of
/// a session that no request could use any more.
async fn a_stream_ends_when_its_session_expires_without_any_event(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let admin = app.store.user_by_email(ADMIN_EMAIL).await.unwrap().unwrap();
    // Its 12 hours end in 2 seconds (the request opening the stream is
    // still inside them).
    let started = chrono::Utc::now() - chrono::TimeDelta::hours(12) + chrono::TimeDelta::seconds(2);
    app.execute_at(
        "update user_sessions set created_at = $1 where user_id = $2",
        relevo::db::Ts::new(started),
        admin.id,
    )
    .await;
    let mut stream = SseReader::open(&app, &app.client, "/mensajes/eventos").await;
    assert_eq!(
        stream.next(Duration::from_secs(2)).await.map(|e| e.0),
        Some("hello".to_owned())
    );
    let events = stream.collect(Duration::from_secs(5)).await;
    assert_eq!(
        events.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(),
        vec!["expired"],
        "the stream says expired once its session has ended, and closes"
    );
    // The next request of that session is refused as well.
    let page = app.get("/mensajes").await;
    assert_eq!(page.location.as_deref(), Some("/login"));
}

async fn the_changes_endpoint_answers_only_rows_in_scope_and_filter(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let (_, ours) = icr_in(&app, "Ventas Hogar", 0).await;
    let (_, theirs) = icr_in(&app, "Cobranza", 0).await;
    let answer: serde_json::Value = app
        .client
        .get(app.url(&format!(
            "/mensajes/cambios?id={ours}&id={theirs}&id=nonsense"
        )))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rows = answer["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["id"], ours.to_string());
    assert!(
        rows[0]["html"]
            .as_str()
            .unwrap()
            .trim_start()
            .starts_with("<tr id=\"conversacion-")
    );
    assert!(answer["tabs"].as_str().unwrap().contains("Abiertas"));
    // Under a filter it no longer matches, it is not returned: it leaves the table.
    let answer: serde_json::Value = app
        .client
        .get(app.url(&format!("/mensajes/cambios?estatus=cancelled&id={ours}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(answer["rows"].as_array().unwrap().is_empty());
}

async fn the_stream_needs_a_session(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let page = app.get("/mensajes/eventos").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let page = app
        .get("/mensajes/cambios?id=00000000-0000-0000-0000-000000000000")
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
}

async fn a_stream_closed_by_the_server_says_reconnect_and_a_new_one_starts_fresh(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let mut stream = SseReader::open(&app, &app.client, "/mensajes/eventos").await;
    assert_eq!(
        stream.next(Duration::from_secs(2)).await.unwrap().0,
        "hello"
    );
    app.store.feed().publish(relevo::live::Event::Shutdown);
    assert_eq!(
        stream.next(Duration::from_secs(2)).await.unwrap().0,
        "reconnect"
    );
    assert!(
        stream.next(Duration::from_millis(500)).await.is_none(),
        "the stream ended"
    );
    // The browser reconnects; the new stream greets it (the page then resyncs).
    let mut again = SseReader::open(&app, &app.client, "/mensajes/eventos").await;
    assert_eq!(again.next(Duration::from_secs(2)).await.unwrap().0, "hello");
    let (folio, id) = icr_in(&app, "Ventas Hogar", 2).await;
    change(&app, folio).await;
    let events = again.collect(Duration::from_millis(800)).await;
    assert!(change_ids(&events).contains(&id));
}

/// A second instance on `first`'s PostgreSQL database, with its own feed
/// and listener (sessions are shared through the database).
async fn second_instance(first: &TestApp) -> TestApp {
    let url = first.database_url.clone();
    let store = relevo::db::Store::connect(&url).await.unwrap();
    let settings = relevo::config::Settings::on_free_port(&url);
    let app = relevo::app::Application::build_with_store(settings, store.clone())
        .await
        .unwrap();
    let port = app.port();
    tokio::spawn(app.run_until_stopped());
    TestApp::attach(port, store, Backend::Postgres, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(relevo_postgres),
    ignore = "PostgreSQL not available: set TEST_POSTGRES_URL or install postgresql"
)]
async fn a_cancel_through_one_instance_reaches_a_viewer_on_another() {
    let Some(first) = spawn_app(Backend::Postgres).await else {
        return;
    };
    let second = second_instance(&first).await;
    // Sessions are shared through the database (same generated session key).
    second.login_as_admin().await;
    let mut stream = SseReader::open(&second, &second.client, "/mensajes/eventos").await;
    assert_eq!(
        stream.next(Duration::from_secs(2)).await.unwrap().0,
        "hello"
    );
    following(&second, &mut stream).await;
    let (folio, id) = icr_in(&first, "Ventas Hogar", 0).await;
    change(&first, folio).await;
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < deadline && !change_ids(&seen).contains(&id) {
        if let Some(event) = stream.next(Duration::from_millis(200)).await {
            seen.push(event);
        }
    }
    assert!(
        change_ids(&seen).contains(&id),
        "the other instance's viewer got it: {seen:?}"
    );
}

/// A view cached by one instance is not served after a change made through
/// another: the notification that reaches its live viewers also makes its
/// cached views stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(relevo_postgres),
    ignore = "PostgreSQL not available: set TEST_POSTGRES_URL or install postgresql"
)]
async fn a_page_reloaded_on_one_instance_shows_a_change_made_through_another() {
    let Some(first) = spawn_app(Backend::Postgres).await else {
        return;
    };
    let second = second_instance(&first).await;
    second.login_as_admin().await;
    {
        let mut probe = SseReader::open(&second, &second.client, "/mensajes/eventos").await;
        assert_eq!(probe.next(Duration::from_secs(2)).await.unwrap().0, "hello");
        following(&second, &mut probe).await;
    }
    let (folio, _) = icr_in(&first, "Ventas Hogar", 0).await;
    let row = format!("id=\"conversacion-{folio}\"");
    // Cached on the second instance (shown twice, the second from memory).
    assert!(
        second
            .get("/mensajes?estatus=icr")
            .await
            .body
            .contains(&row)
    );
    assert!(
        second
            .get("/mensajes?estatus=icr")
            .await
            .body
            .contains(&row)
    );
    // Changed through the first instance's Store.
    change(&first, folio).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        let page = second.get("/mensajes?estatus=icr").await;
        if !page.body.contains(&row) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the second instance still serves the old view"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits up to `limit` for a change of conversation `id` on `stream`.
async fn sees_change(stream: &mut SseReader, id: Uuid, limit: Duration) -> bool {
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if let Some(event) = stream.next(Duration::from_millis(200)).await {
            seen.push(event);
            if change_ids(&seen).contains(&id) {
                return true;
            }
        }
    }
    false
}

/// Writes, through `db`, the change log entry another instance would write
/// for a change of conversation `id` of `campaign`.
async fn log_change<'e>(db: impl sqlx::PgExecutor<'e>, id: Uuid, campaign: Uuid) {
    let entry = relevo::live::Feed::new().notification(relevo::live::Event::Changed(
        relevo::live::Change {
            conversation_id: id,
            campaign_id: campaign,
            version: 1,
        },
    ));
    sqlx::query("insert into change_log (payload) values ($1)")
        .bind(entry)
        .execute(db)
        .await
        .unwrap();
}

/// The PostgreSQL pool of `app`.
fn pg_pool(app: &TestApp) -> &sqlx::PgPool {
    match &app.store {
        relevo::db::Store::Postgres(pg) => &pg.pool,
        relevo::db::Store::Sqlite(_) => unreachable!("a PostgreSQL app"),
    }
}

/// Waits (bounded) until `app` follows other instances' changes: its LISTEN
/// and change-log reader are in place, shown by a log entry written as
/// another instance would write it reaching `stream` (a viewer of Ventas
/// Hogar). Until the reader has found the log's end an entry may fall before
/// its starting point and never arrive, so probes repeat until one does.
async fn following(app: &TestApp, stream: &mut SseReader) {
    let campaign = app.campaign_id("Ventas Hogar").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let probe = Uuid::new_v4();
        log_change(pg_pool(app), probe, campaign).await;
        if sees_change(stream, probe, relevo::live::LOG_POLL * 2).await {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the instance never started following the change log"
        );
    }
}

/// A viewer on `app`, admin of Ventas Hogar, with the stream's LISTEN and
/// log reader in place.
async fn ventas_viewer(app: &TestApp) -> SseReader {
    app.login_as_admin().await;
    let mut stream = SseReader::open(app, &app.client, "/mensajes/eventos").await;
    assert_eq!(
        stream.next(Duration::from_secs(2)).await.unwrap().0,
        "hello"
    );
    following(app, &mut stream).await;
    stream
}

/// Other instances read the change log itself: an entry committed without
/// any wake-up (an instance that stopped right after its commit) still
/// reaches them, at their next poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(relevo_postgres),
    ignore = "PostgreSQL not available: set TEST_POSTGRES_URL or install postgresql"
)]
async fn a_change_committed_without_a_wake_up_still_reaches_the_other_instances() {
    let Some(app) = spawn_app(Backend::Postgres).await else {
        return;
    };
    let mut stream = ventas_viewer(&app).await;
    let (_, id) = icr_in(&app, "Ventas Hogar", 0).await;
    let campaign = app.campaign_id("Ventas Hogar").await;
    log_change(pg_pool(&app), id, campaign).await;
    assert!(
        sees_change(&mut stream, id, Duration::from_secs(3)).await,
        "the change was read from the log"
    );
}

/// An entry whose transaction took its id before another's but commits
/// after it (ids are handed out in order, commits are not) is not skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(relevo_postgres),
    ignore = "PostgreSQL not available: set TEST_POSTGRES_URL or install postgresql"
)]
async fn a_change_committed_after_a_later_one_is_not_lost() {
    let Some(app) = spawn_app(Backend::Postgres).await else {
        return;
    };
    let mut stream = ventas_viewer(&app).await;
    let (_, early) = icr_in(&app, "Ventas Hogar", 0).await;
    let (_, late) = icr_in(&app, "Ventas Hogar", 1).await;
    let campaign = app.campaign_id("Ventas Hogar").await;
    let mut slow = pg_pool(&app).begin().await.unwrap();
    log_change(&mut *slow, early, campaign).await;
    // A later id, committed first and read by the instance.
    log_change(pg_pool(&app), late, campaign).await;
    assert!(sees_change(&mut stream, late, Duration::from_secs(3)).await);
    slow.commit().await.unwrap();
    assert!(
        sees_change(&mut stream, early, Duration::from_secs(3)).await,
        "the entry committed late was read"
    );
}
