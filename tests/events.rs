//! The ordered event log and its pull API (`GET /api/v1/events`) on both
//! backends: one event per committed change and none for a rolled-back
//! or refused one, order and resumption across instances, the long poll's
//! wake-up, campaign isolation, bad and expired cursors, and the purge.

mod common;

use std::time::{Duration, Instant};

use common::{ADMIN_EMAIL, Backend, TestApp, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

on_both_backends!(
    every_committed_change_is_one_event_in_order_with_its_conversation_and_actor,
    a_rolled_back_or_refused_change_leaves_no_event,
    a_consumer_resumes_with_its_cursor_on_a_restarted_instance_and_misses_nothing,
    a_long_poll_answers_soon_after_a_commit_and_at_its_deadline_without_one,
    a_token_of_one_campaign_never_sees_another_campaigns_events,
    bad_future_and_expired_cursors_answer_json_errors,
    the_purge_deletes_only_old_events_and_never_expires_a_live_cursor,
    a_rule_and_a_bulk_job_are_named_as_the_actors_of_their_changes_and_nudges_are_events,
    a_long_poll_answers_at_once_when_its_instance_shuts_down,
);

const CAMPAIGN: &str = "Ventas Hogar";
const OTHER_CAMPAIGN: &str = "Cobranza";

/// A campaign's channel (with a fresh token), integration token and agents.
struct Fixture {
    campaign: Uuid,
    channel: Uuid,
    channel_token: String,
    token: String,
    agents: Vec<Uuid>,
}

async fn fixture(app: &TestApp, name: &str) -> Fixture {
    let campaign = app.campaign_id(name).await;
    let channel = app
        .store
        .channels()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.1 == campaign)
        .map(|c| c.0)
        .expect("a channel");
    let channel_token = app
        .store
        .rotate_channel_token(channel)
        .await
        .unwrap()
        .expect("channel exists");
    let (_, token) = app
        .store
        .create_integration_token(name, "events", relevo::db::Ts::now())
        .await
        .unwrap()
        .expect("campaign exists");
    let agents = app
        .uuids_where(
            "select m.user_id from campaign_members m join users u on u.id = m.user_id \
             join campaigns p on p.id = m.campaign_id \
             where p.name = $1 and u.role = 'agent' order by u.id",
            name,
        )
        .await;
    Fixture {
        campaign,
        channel,
        channel_token,
        token,
        agents,
    }
}

async fn post(app: &TestApp, path: &str, token: &str, body: Value) -> Value {
    let (status, body) = app
        .api_call(reqwest::Method::POST, path, Some(token), Some(body))
        .await;
    assert!(status.is_success(), "{path}: {status} {body}");
    body
}

/// `GET /api/v1/events?{query}` with `token`.
async fn feed(app: &TestApp, token: &str, query: &str) -> (StatusCode, Value) {
    app.api_call(
        reqwest::Method::GET,
        &format!("/api/v1/events?{query}"),
        Some(token),
        None,
    )
    .await
}

/// Every event of the token's campaign after `after`, paging by `next`;
/// with the cursor to come back with.
async fn drain(app: &TestApp, token: &str, after: i64, limit: usize) -> (Vec<Value>, i64) {
    let (mut events, mut cursor) = (Vec::new(), after);
    loop {
        // Cursor 0 is the start: a new consumer asks without `after`.
        let query = match cursor {
            0 => format!("limit={limit}"),
            _ => format!("after={cursor}&limit={limit}"),
        };
        let (status, body) = feed(app, token, &query).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let page = body["events"].as_array().unwrap().clone();
        let next = body["next"].as_i64().expect("next");
        assert!(next >= cursor, "next never goes back");
        cursor = next;
        let done = page.len() < limit;
        events.extend(page);
        if done {
            return (events, cursor);
        }
    }
}

/// The log's high-water mark now: where a consumer starting now begins.
async fn now_cursor(app: &TestApp) -> i64 {
    // On PostgreSQL the sequencer numbers what is committed first.
    app.store.sequence_events().await.unwrap()
}

/// Waits until the campaign's feed after `after` holds `n` events.
async fn events_after(app: &TestApp, token: &str, after: i64, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (events, _) = drain(app, token, after, 100).await;
        if events.len() >= n || Instant::now() > deadline {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

/// A customer message; the conversation's id.
async fn customer(app: &TestApp, f: &Fixture, message_id: &str, from: &str) -> Uuid {
    let body = post(
        app,
        &format!("/api/v1/channels/{}/messages", f.channel),
        &f.channel_token,
        json!({"message_id": message_id, "from": from, "name": "Cliente", "text": "Hola"}),
    )
    .await;
    body["conversation_id"].as_str().unwrap().parse().unwrap()
}

/// Opens the campaign all week and connects only `agent`.
async fn open_with_one_agent(app: &TestApp, f: &Fixture, agent: Uuid) {
    app.execute_id(
        "delete from campaign_schedules where campaign_id = $1",
        f.campaign,
    )
    .await;
    app.execute_id(
        "insert into campaign_schedules (campaign_id, weekday, opens_at, closes_at) values \
         ($1, 0, '00:00', '00:00'), ($1, 1, '00:00', '00:00'), ($1, 2, '00:00', '00:00'), \
         ($1, 3, '00:00', '00:00'), ($1, 4, '00:00', '00:00'), ($1, 5, '00:00', '00:00'), \
         ($1, 6, '00:00', '00:00')",
        f.campaign,
    )
    .await;
    app.execute_id(
        "update users set connected = false where id in \
         (select user_id from campaign_members where campaign_id = $1)",
        f.campaign,
    )
    .await;
    post(
        app,
        &format!("/api/v1/agents/{agent}/presence"),
        &f.token,
        json!({"connected": true}),
    )
    .await;
}

/// The folio of conversation `id`.
async fn folio_of(app: &TestApp, id: Uuid) -> i64 {
    let sql = "select folio from conversations where id = $1";
    match &app.store {
        relevo::db::Store::Sqlite(p) => sqlx::query_scalar(sql).bind(id).fetch_one(&p.read).await,
        relevo::db::Store::Postgres(p) => sqlx::query_scalar(sql).bind(id).fetch_one(&p.pool).await,
    }
    .unwrap()
}

/// Reassigns conversation `id` to `agent` as the administrator would.
async fn reassign(app: &TestApp, id: Uuid, agent: Uuid) {
    app.reassign(folio_of(app, id).await, agent).await;
}

// long: one conversation's whole life, read back event by event
async fn every_committed_change_is_one_event_in_order_with_its_conversation_and_actor(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let f = fixture(&app, CAMPAIGN).await;
    let (agent, other) = (f.agents[0], f.agents[1]);
    open_with_one_agent(&app, &f, agent).await;
    let start = now_cursor(&app).await;

    let id = customer(&app, &f, "ev-1", "5215500000001").await;
    post(
        &app,
        &format!("/api/v1/conversations/{id}/bot-messages"),
        &f.token,
        json!({"message_id": "bot-1", "text": "Soy el bot"}),
    )
    .await;
    post(
        &app,
        &format!("/api/v1/conversations/{id}/handoff"),
        &f.token,
        json!({}),
    )
    .await;
    post(
        &app,
        &format!("/api/v1/conversations/{id}/agent-messages"),
        &f.token,
        json!({"agent_id": agent, "text": "Hola, soy tu asesor"}),
    )
    .await;
    reassign(&app, id, other).await;
    app.login_as_admin().await;
    let folio = folio_of(&app, id).await;
    let page = app.cancel_through_form(&app.client, folio).await;
    assert!(
        page.status.is_redirection() || page.status.is_success(),
        "{}",
        page.status
    );
    let again = customer(&app, &f, "ev-2", "5215500000001").await;
    assert_ne!(
        again, id,
        "a message after a cancellation starts a new conversation"
    );

    let events = events_after(&app, &f.token, start, 10).await;
    assert_eq!(
        types(&events),
        [
            "created",
            "message_received",
            "message_sent",
            "handed_off",
            "first_reply",
            "message_sent",
            "reassigned",
            "cancelled",
            "reactivated",
            "message_received",
        ],
        "{events:#?}"
    );
    let ids: Vec<i64> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "increasing ids {ids:?}"
    );
    assert!(ids[0] > start);
    for e in &events[..8] {
        assert_eq!(e["conversation"]["id"], json!(id));
        assert_eq!(e["conversation"]["folio"], json!(folio));
        assert_eq!(e["conversation"]["campaign_id"], json!(f.campaign));
        assert!(e["occurred_at"].as_str().unwrap().ends_with('Z'));
    }
    // The router's hand-off, from ICR to the agent.
    let handed = &events[3];
    assert_eq!(handed["conversation"]["status"], "assigned");
    assert_eq!(handed["conversation"]["agent_id"], json!(agent));
    assert_eq!(handed["previous"]["status"], "icr");
    assert_eq!(handed["actor"]["kind"], "router");
    // The bot's and the agent's messages.
    assert_eq!(events[2]["actor"]["kind"], "bot");
    assert_eq!(events[2]["message"]["text"], "Soy el bot");
    assert_eq!(events[5]["actor"]["kind"], "agent");
    assert_eq!(events[5]["actor"]["id"], json!(agent));
    assert_eq!(events[5]["message"]["author"], "agent");
    assert_eq!(events[1]["message"]["direction"], "inbound");
    // The reassignment names both agents and the administrator.
    let moved = &events[6];
    assert_eq!(moved["previous"]["agent_id"], json!(agent));
    assert_eq!(moved["conversation"]["agent_id"], json!(other));
    assert_eq!(moved["actor"]["kind"], "administrator");
    assert!(
        moved["actor"]["name"]
            .as_str()
            .is_some_and(|n| !n.is_empty())
    );
    assert_eq!(moved["comment"], "otra persona");
    // The cancellation with its closure.
    let cancelled = &events[7];
    assert_eq!(cancelled["conversation"]["status"], "cancelled");
    assert_eq!(cancelled["previous"]["status"], "assigned");
    assert_eq!(cancelled["actor"]["kind"], "administrator");
    assert!(
        cancelled["closure"]["category"].as_str().is_some(),
        "{cancelled}"
    );
    assert!(cancelled["closure"]["category_id"].as_str().is_some());
    // The new conversation links to the cancelled one.
    assert_eq!(events[8]["conversation"]["id"], json!(again));
    assert_eq!(events[8]["reactivates_id"], json!(id));
}

async fn a_rolled_back_or_refused_change_leaves_no_event(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let f = fixture(&app, CAMPAIGN).await;
    let id = customer(&app, &f, "rb-1", "5215500000002").await;
    let start = now_cursor(&app).await;
    let insert = "insert into messages (id, conversation_id, direction, message_id, text, at, author) \
                  values ($1, $2, 'inbound', 'rb-x', 'x', $3, 'customer')";
    let count = "select count(*) from events where message_id = $1";
    let message = Uuid::now_v7();
    // The trigger writes the event inside the transaction, and the
    // rollback takes it away with the change.
    let inside: i64 = match &app.store {
        relevo::db::Store::Sqlite(p) => {
            let mut tx = p.write.begin().await.unwrap();
            sqlx::query(insert)
                .bind(message)
                .bind(id)
                .bind(relevo::db::Ts::now())
                .execute(&mut *tx)
                .await
                .unwrap();
            let n = sqlx::query_scalar(count)
                .bind(message)
                .fetch_one(&mut *tx)
                .await
                .unwrap();
            tx.rollback().await.unwrap();
            n
        }
        relevo::db::Store::Postgres(p) => {
            let mut tx = p.pool.begin().await.unwrap();
            sqlx::query(insert)
                .bind(message)
                .bind(id)
                .bind(relevo::db::Ts::now())
                .execute(&mut *tx)
                .await
                .unwrap();
            let n = sqlx::query_scalar(count)
                .bind(message)
                .fetch_one(&mut *tx)
                .await
                .unwrap();
            tx.rollback().await.unwrap();
            n
        }
    };
    assert_eq!(inside, 1, "the event is written with the change");
    // A step the status refuses (resolving a conversation in ICR) writes nothing.
    let (status, body) = app
        .api_call(
            reqwest::Method::POST,
            &format!("/api/v1/conversations/{id}/resolve"),
            Some(&f.token),
            Some(json!({"agent_id": f.agents[0]})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    // A repeated channel message id is ignored: no second event.
    customer(&app, &f, "rb-1", "5215500000002").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(now_cursor(&app).await, start, "no event");
    let (events, next) = drain(&app, &f.token, start, 100).await;
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(next, start);
}

/// A second instance on `first`'s database (PostgreSQL: its own feed and
/// sequencer; SQLite: what a restart opens).
async fn another_instance(first: &TestApp) -> TestApp {
    let url = first.database_url.clone();
    let store = relevo::db::Store::connect(&url).await.unwrap();
    let settings = relevo::config::Settings::on_free_port(&url);
    let app = relevo::app::Application::build_with_store(settings, store.clone())
        .await
        .unwrap();
    let port = app.port();
    tokio::spawn(app.run_until_stopped());
    TestApp::attach(port, store, first.backend, url)
}

async fn a_consumer_resumes_with_its_cursor_on_a_restarted_instance_and_misses_nothing(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let f = fixture(&app, CAMPAIGN).await;
    let start = now_cursor(&app).await;
    // Concurrent writers: numbering must still give every event once.
    let writes = (0..12).map(|n| {
        let (app, f) = (&app, &f);
        async move { customer(app, f, &format!("rs-{n}"), &format!("52155000100{n:02}")).await }
    });
    futures_util::future::join_all(writes).await;
    let (mut seen, mut cursor) = (Vec::new(), start);
    // A consumer reads a few pages of three...
    for _ in 0..2 {
        let (status, body) = feed(&app, &f.token, &format!("after={cursor}&limit=3")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        seen.extend(body["events"].as_array().unwrap().clone());
        cursor = body["next"].as_i64().unwrap();
    }
    // ...the server goes away and another starts on the same database...
    if backend == Backend::Sqlite {
        app.store.close().await;
    }
    let second = another_instance(&app).await;
    for n in 12..16 {
        customer(
            &second,
            &f,
            &format!("rs-{n}"),
            &format!("52155000100{n:02}"),
        )
        .await;
    }
    second.store.sequence_events().await.unwrap();
    // ...and the consumer goes on from its cursor.
    let (rest, _) = drain(&second, &f.token, cursor, 5).await;
    seen.extend(rest);
    let ids: Vec<i64> = seen.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "in order, once: {ids:?}"
    );
    // Every conversation created (16) and every message received (16).
    assert_eq!(types(&seen).iter().filter(|t| **t == "created").count(), 16);
    assert_eq!(
        types(&seen)
            .iter()
            .filter(|t| **t == "message_received")
            .count(),
        16
    );
    // The same as one reader of the whole log from the start.
    let (all, _) = drain(&second, &f.token, start, 1000).await;
    assert_eq!(all, seen);
}

async fn a_long_poll_answers_soon_after_a_commit_and_at_its_deadline_without_one(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let f = fixture(&app, CAMPAIGN).await;
    let start = now_cursor(&app).await;
    // Nothing happens: the poll answers empty at its deadline, with a cursor.
    let began = Instant::now();
    let (status, body) = feed(&app, &f.token, &format!("after={start}&wait=1")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["events"].as_array().unwrap().is_empty());
    assert!(
        began.elapsed() >= Duration::from_millis(950),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(body["next"].as_i64(), Some(start));

    // A change while the poll waits (on PostgreSQL, through another
    // instance: its commit wakes this one) answers at once.
    let writer = match backend {
        Backend::Postgres => Some(another_instance(&app).await),
        Backend::Sqlite => None,
    };
    let writer = writer.as_ref().unwrap_or(&app);
    let poll = {
        let (app, token) = (&app, f.token.clone());
        async move {
            let (status, body) = feed(app, &token, &format!("after={start}&wait=20")).await;
            (status, body, Instant::now())
        }
    };
    let change = async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let sent = Instant::now();
        customer(writer, &f, "lp-1", "5215500000003").await;
        (sent, Instant::now())
    };
    let ((status, body, answered), (sent, committed)) = tokio::join!(poll, change);
    assert_eq!(status, StatusCode::OK, "{body}");
    let events = body["events"].as_array().unwrap();
    assert!(!events.is_empty(), "{body}");
    assert_eq!(events[0]["type"], "created");
    // The commit is somewhere inside the request that makes it: the poll
    // answers at most `sent` and at least `returned` after it. Measured
    // here: 1 ms after the request returned on SQLite, 20-30 ms on
    // PostgreSQL through another instance (the specification's 100 ms,
    // asserted with room for a busy machine).
    let (after_sent, after_returned) = (
        answered.saturating_duration_since(sent),
        answered.saturating_duration_since(committed),
    );
    eprintln!(
        "{backend:?}: answered {after_sent:?} after the change was sent, {after_returned:?} after it returned"
    );
    assert!(
        after_returned < Duration::from_millis(250),
        "{after_returned:?}"
    );
    assert!(after_sent < Duration::from_secs(2), "{after_sent:?}");
    let waited = answered.duration_since(began);
    assert!(
        waited < Duration::from_secs(10),
        "well before the wait ended: {waited:?}"
    );
}

async fn a_token_of_one_campaign_never_sees_another_campaigns_events(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let a = fixture(&app, CAMPAIGN).await;
    let b = fixture(&app, OTHER_CAMPAIGN).await;
    let start = now_cursor(&app).await;
    customer(&app, &a, "iso-a", "5215500000004").await;
    customer(&app, &b, "iso-b", "5215500000005").await;
    let theirs = events_after(&app, &b.token, start, 2).await;
    assert_eq!(theirs.len(), 2);
    // The whole history of A's feed, demo data included, is A's alone.
    let (ours, _) = drain(&app, &a.token, 0, 1000).await;
    assert!(!ours.is_empty());
    assert!(
        ours.iter()
            .all(|e| e["conversation"]["campaign_id"] == json!(a.campaign))
    );
    let (all_b, _) = drain(&app, &b.token, 0, 1000).await;
    assert!(
        all_b
            .iter()
            .all(|e| e["conversation"]["campaign_id"] == json!(b.campaign))
    );
    let ours: Vec<&Value> = ours
        .iter()
        .filter(|e| e["id"].as_i64().unwrap() > start)
        .collect();
    assert_eq!(ours.len(), 2, "A's own two events only");
    // No token, or a revoked-looking one, reads nothing.
    let (status, _) = app
        .api_call(reqwest::Method::GET, "/api/v1/events", None, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = feed(&app, "not-a-token", "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn bad_future_and_expired_cursors_answer_json_errors(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let f = fixture(&app, CAMPAIGN).await;
    let high = now_cursor(&app).await;
    for bad in [
        "abc",
        "-1",
        "1.5",
        "99999999999999999999999",
        &(high + 1000).to_string(),
    ] {
        let (status, body) = feed(&app, &f.token, &format!("after={bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"], "invalid_cursor", "{bad}");
        assert!(
            body["message"].as_str().unwrap().contains("cursor"),
            "{body}"
        );
    }
    // `limit` over 1000 is capped; garbage is refused.
    let (status, body) = feed(&app, &f.token, "limit=5000").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["events"].as_array().unwrap().len() <= 1000);
    let (status, body) = feed(&app, &f.token, "limit=muchos").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // The demo's events are old: purging at 30 days removes a prefix, and a
    // cursor before what was purged has expired.
    age_events(&app, 0, 5).await;
    let purged =
        relevo::services::events::purge_older_than(&app.store, 30, chrono::Utc::now(), None)
            .await
            .unwrap();
    assert!(purged >= 5, "{purged}");
    let (status, body) = feed(&app, &f.token, "after=0").await;
    assert_eq!(status, StatusCode::GONE, "{body}");
    assert_eq!(body["error"], "cursor_expired");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("RELEVO_EVENT_DAYS") && message.contains("expired"),
        "{message}"
    );
    // Without `after` the feed starts at the oldest event kept.
    let (status, body) = feed(&app, &f.token, "limit=1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Moves `n` events of the log, after its first `skip`, 40 days into the past.
async fn age_events(app: &TestApp, skip: i64, n: i64) {
    let past = relevo::db::Ts::new(chrono::Utc::now() - chrono::Duration::days(40));
    let sql = "update events set occurred_at = $1 where cursor in \
               (select cursor from events where cursor is not null order by cursor \
                limit $2 offset $3)";
    match &app.store {
        relevo::db::Store::Sqlite(p) => {
            sqlx::query(sql)
                .bind(past)
                .bind(n)
                .bind(skip)
                .execute(&p.write)
                .await
                .unwrap();
        }
        relevo::db::Store::Postgres(p) => {
            sqlx::query(sql)
                .bind(past)
                .bind(n)
                .bind(skip)
                .execute(&p.pool)
                .await
                .unwrap();
        }
    }
}

async fn the_purge_deletes_only_old_events_and_never_expires_a_live_cursor(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let a = fixture(&app, CAMPAIGN).await;
    let b = fixture(&app, OTHER_CAMPAIGN).await;
    // Everything so far is made old, then campaign B gets new events, then
    // the events of A are made old again except the newest: the purge
    // deletes up to the first event that is not old, and no further.
    // The demo's events are numbered, the pass of the background purge at
    // start is over, and the demo's own old events went with it.
    now_cursor(&app).await;
    relevo::services::events::purge_older_than(&app.store, 30, chrono::Utc::now(), None)
        .await
        .unwrap();
    let total: i64 = app.scalar_i64("select count(*) from events").await;
    age_events(&app, 0, total).await;
    // A live consumer of A, caught up: its campaign is quiet from here on.
    let (_, live) = drain(&app, &a.token, 0, 1000).await;
    customer(&app, &b, "pg-1", "5215500000006").await;
    customer(&app, &b, "pg-2", "5215500000007").await;
    let high = now_cursor(&app).await;
    let purged =
        relevo::services::events::purge_older_than(&app.store, 30, chrono::Utc::now(), None)
            .await
            .unwrap();
    assert_eq!(purged as i64, total, "only the old ones");
    let left: i64 = app.scalar_i64("select count(*) from events").await;
    assert_eq!(left, 4, "B's two conversations and two messages stay");
    // A's consumer was caught up: its cursor is still good and sees nothing
    // missing; a quiet campaign's `next` follows the whole log.
    let (status, body) = feed(&app, &a.token, &format!("after={live}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["events"].as_array().unwrap().is_empty());
    assert_eq!(body["next"].as_i64(), Some(high));
    // B's events are all there.
    let (theirs, _) = drain(&app, &b.token, live, 100).await;
    assert_eq!(theirs.len(), 4);
    // Old events after a recent one are kept (the purge only removes a prefix).
    age_events(&app, 1, 3).await;
    let purged =
        relevo::services::events::purge_older_than(&app.store, 30, chrono::Utc::now(), None)
            .await
            .unwrap();
    assert_eq!(
        purged, 0,
        "the oldest event is recent: nothing after it goes"
    );
    // Nothing purged makes the high-water mark go back, even when empty.
    age_events(&app, 0, 4).await;
    let _ = relevo::services::events::purge_older_than(&app.store, 30, chrono::Utc::now(), None)
        .await
        .unwrap();
    assert_eq!(app.scalar_i64("select count(*) from events").await, 0);
    let (status, body) = feed(&app, &a.token, &format!("after={high}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["next"].as_i64(), Some(high));
    customer(&app, &a, "pg-3", "5215500000008").await;
    let fresh = events_after(&app, &a.token, high, 2).await;
    assert!(
        fresh[0]["id"].as_i64().unwrap() > high,
        "cursors never reused"
    );
}

/// A category of `campaign` ("Flujo atascado").
async fn stuck_category(app: &TestApp, campaign: &str) -> Uuid {
    app.uuids_where(
        "select c.id from closure_categories c join campaigns p on p.id = c.campaign_id \
         where c.name = 'Flujo atascado' and p.name = $1",
        campaign,
    )
    .await[0]
}

// long: a rule's nudge and cancellation, then a bulk job, read back
async fn a_rule_and_a_bulk_job_are_named_as_the_actors_of_their_changes_and_nudges_are_events(
    backend: Backend,
) {
    use chrono::{Duration as Span, Utc};
    use relevo::db::{BulkAction, NewAutoCancelRule, NewBulkJob, Ts};
    use relevo::domain::{Scope, Status};
    use relevo::services::auto_cancel::Measure;
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let f = fixture(&app, CAMPAIGN).await;
    let creator = app
        .store
        .user_by_email(common::SUPER_EMAIL)
        .await
        .unwrap()
        .unwrap()
        .id;
    let rule = app
        .store
        .create_auto_cancel_rule(&NewAutoCancelRule {
            campaign_id: f.campaign,
            name: "Bot atascado".into(),
            status: Status::Icr,
            measure: Measure::NoCustomerMessage,
            window_minutes: 30,
            category_id: stuck_category(&app, CAMPAIGN).await,
            subcategory_id: None,
            comment: Some("sin respuesta".into()),
            nudge_text: Some("¿Sigues ahí?".into()),
            nudge_lead_minutes: Some(10),
            created_by: creator,
            at: Ts::now(),
        })
        .await
        .unwrap()
        .expect("the campaign exists");
    let start = now_cursor(&app).await;
    let now = Utc::now() + Span::days(2);
    let nudged = relevo::services::auto_cancel::run_pass(&app.store, now)
        .await
        .unwrap();
    assert!(nudged.nudged > 0);
    let later = now + Span::minutes(10);
    let cancelled = relevo::services::auto_cancel::run_pass(&app.store, later)
        .await
        .unwrap();
    assert_eq!(cancelled.cancelled, nudged.nudged);
    let n = nudged.nudged + cancelled.cancelled;
    let events = events_after(&app, &f.token, start, n).await;
    assert_eq!(events.len(), n, "{events:#?}");
    let nudges: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "customer_nudge")
        .collect();
    assert_eq!(nudges.len(), nudged.nudged);
    for e in &nudges {
        assert_eq!(e["message"]["text"], "¿Sigues ahí?");
        assert_eq!(e["message"]["direction"], "outbound");
        assert!(
            e["conversation"]["contact"]["external_id"]
                .as_str()
                .is_some(),
            "{e}"
        );
    }
    for e in events.iter().filter(|e| e["type"] == "cancelled") {
        assert_eq!(e["actor"]["kind"], "rule", "{e}");
        assert_eq!(e["actor"]["id"], json!(rule));
        assert_eq!(e["actor"]["name"], "Bot atascado");
        assert_eq!(e["closure"]["category"], "Flujo atascado");
        let comment = e["closure"]["comment"].as_str().unwrap();
        assert!(comment.ends_with("sin respuesta"), "{comment}");
        assert_eq!(e["previous"]["status"], "icr");
    }

    // A bulk job of the administrator cancels two open conversations.
    let admin = app
        .store
        .user_by_email(ADMIN_EMAIL)
        .await
        .unwrap()
        .unwrap()
        .id;
    let a = customer(&app, &f, "bulk-1", "5215500000011").await;
    let b = customer(&app, &f, "bulk-2", "5215500000012").await;
    let folios = [folio_of(&app, a).await, folio_of(&app, b).await];
    let scope = Scope::Campaigns(vec![f.campaign]);
    let found = app.store.folios_in_scope(&scope, &folios).await.unwrap();
    let items = folios
        .iter()
        .map(|n| (n.to_string(), found.iter().find(|(x, _)| x == n).copied()))
        .collect();
    let from = now_cursor(&app).await;
    let job = app
        .store
        .create_bulk_job(&NewBulkJob {
            created_by: admin,
            scope,
            action: BulkAction::Cancel,
            category_id: Some(stuck_category(&app, CAMPAIGN).await),
            subcategory_id: None,
            agent_id: None,
            comment: String::new(),
            items,
            at: Ts::now(),
        })
        .await
        .unwrap();
    // The instance's worker takes it (or this call does, whichever first).
    let access = relevo::services::bulk::CreatorAccess::new(app.store.feed().clone());
    relevo::services::bulk::process(&app.store, &access, job)
        .await
        .unwrap();
    // Only the job's two conversations: the router may assign others meanwhile.
    let deadline = Instant::now() + Duration::from_secs(10);
    let events = loop {
        let (all, _) = drain(&app, &f.token, from, 100).await;
        let ours: Vec<Value> = all
            .into_iter()
            .filter(|e| e["conversation"]["id"] == json!(a) || e["conversation"]["id"] == json!(b))
            .collect();
        if ours.len() >= 2 || Instant::now() > deadline {
            break ours;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(types(&events), ["cancelled", "cancelled"], "{events:#?}");
    for e in &events {
        assert_eq!(e["actor"]["kind"], "bulk_job");
        assert_eq!(e["actor"]["id"], json!(job));
        assert!(
            e["actor"]["name"].as_str().is_some(),
            "the administrator who started it"
        );
    }
}

async fn a_long_poll_answers_at_once_when_its_instance_shuts_down(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let f = fixture(&app, CAMPAIGN).await;
    let start = now_cursor(&app).await;
    let began = Instant::now();
    let query = format!("after={start}&wait=20");
    let poll = feed(&app, &f.token, &query);
    let stop = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        app.store.feed().publish(relevo::live::Event::Shutdown);
    };
    let ((status, body), ()) = tokio::join!(poll, stop);
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["next"].as_i64(), Some(start));
    assert!(
        began.elapsed() < Duration::from_secs(3),
        "{:?}",
        began.elapsed()
    );
}
