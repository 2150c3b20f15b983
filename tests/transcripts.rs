//! Transcripts on both backends: every author's messages kept with their
//! text, time and ids; the API's pages of a long transcript; the bot
//! engine's turns; bad texts refused with
//! nothing stored; the conversation page's keyset pages with the history
//! between the messages; the last five messages above the Cancelar/Reasignar
//! form; the retention purge (batches, the background task, the command
//! line); the migration of existing messages; and that message text never
//! reaches the logs.

mod common;

use std::time::{Duration, Instant};

use chrono::Utc;
use common::process::RelevoProcess;
use common::{
    ADMIN_EMAIL, ADMIN_PASSWORD, Backend, TestApp, fresh_database, fresh_store, rel_link,
    spawn_app, spawn_app_configured,
};
use relevo::db::{Store, StoreError, Ts};
use relevo::domain::Scope;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

on_both_backends!(
    every_author_is_kept_with_its_text_time_and_ids,
    the_api_answers_a_long_transcript_a_page_at_a_time,
    a_bot_turn_is_recorded_once_and_never_on_a_closed_conversation,
    bad_message_texts_are_refused_and_store_nothing,
    the_conversation_page_pages_the_transcript_with_the_history_between,
    the_modal_shows_the_last_five_messages_above_the_form,
    old_texts_are_purged_in_batches_and_the_messages_stay,
    the_background_purge_runs_at_start_and_is_counted,
    the_command_line_purges_on_demand,
    a_database_error_never_carries_a_message_text,
    migration_0016_gives_every_existing_message_its_author,
    message_text_never_reaches_the_logs,
);

const CAMPAIGN: &str = "Ventas Hogar";

/// Ventas Hogar's channel (with a fresh token), an integration token, and
/// an agent of the campaign who is connected, with the campaign open all
/// day, so a hand-off assigns that agent.
struct Fixture {
    channel: Uuid,
    channel_token: String,
    token: String,
    agent: Uuid,
}

async fn fixture(app: &TestApp) -> Fixture {
    let campaign = app.campaign_id(CAMPAIGN).await;
    let channel = app
        .store
        .channels()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.1 == campaign && c.3)
        .expect("an active channel")
        .0;
    let channel_token = app
        .store
        .rotate_channel_token(channel)
        .await
        .unwrap()
        .unwrap();
    let (_, token) = app
        .store
        .create_integration_token(CAMPAIGN, "transcripts", Ts::now())
        .await
        .unwrap()
        .unwrap();
    app.execute_id(
        "delete from campaign_schedules where campaign_id = $1",
        campaign,
    )
    .await;
    app.execute_id(
        "insert into campaign_schedules (campaign_id, weekday, opens_at, closes_at) values \
         ($1, 0, '00:00', '00:00'), ($1, 1, '00:00', '00:00'), ($1, 2, '00:00', '00:00'), \
         ($1, 3, '00:00', '00:00'), ($1, 4, '00:00', '00:00'), ($1, 5, '00:00', '00:00'), \
         ($1, 6, '00:00', '00:00')",
        campaign,
    )
    .await;
    app.execute_id(
        "update users set connected = false where id in \
         (select user_id from campaign_members where campaign_id = $1)",
        campaign,
    )
    .await;
    let agent = app
        .uuids_where(
            "select m.user_id from campaign_members m join users u on u.id = m.user_id \
             join campaigns p on p.id = m.campaign_id \
             where p.name = $1 and u.role = 'agent' order by u.id",
            CAMPAIGN,
        )
        .await[0];
    app.execute_id("update users set connected = true where id = $1", agent)
        .await;
    Fixture {
        channel,
        channel_token,
        token,
        agent,
    }
}

async fn post(app: &TestApp, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
    app.api_call(Method::POST, path, Some(token), Some(body))
        .await
}

/// A customer message on the fixture's channel.
async fn customer_says(
    app: &TestApp,
    fx: &Fixture,
    message_id: &str,
    from: &str,
    text: &str,
) -> (StatusCode, Value) {
    post(
        app,
        &format!("/api/v1/channels/{}/messages", fx.channel),
        &fx.channel_token,
        json!({"message_id": message_id, "from": from, "name": "Renata Prueba", "text": text}),
    )
    .await
}

async fn bot_says(
    app: &TestApp,
    fx: &Fixture,
    id: Uuid,
    message_id: &str,
    text: &str,
) -> (StatusCode, Value) {
    post(
        app,
        &format!("/api/v1/conversations/{id}/bot-messages"),
        &fx.token,
        json!({"message_id": message_id, "text": text}),
    )
    .await
}

async fn agent_says(app: &TestApp, fx: &Fixture, id: Uuid, text: &str) -> (StatusCode, Value) {
    post(
        app,
        &format!("/api/v1/conversations/{id}/agent-messages"),
        &fx.token,
        json!({"agent_id": fx.agent, "text": text}),
    )
    .await
}

fn uuid_of(value: &Value, key: &str) -> Uuid {
    value[key]
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .unwrap_or_else(|| panic!("{key} in {value}"))
}

/// A new conversation in ICR started by a new customer; (id, folio).
async fn new_conversation(app: &TestApp, fx: &Fixture, tag: &str, text: &str) -> (Uuid, i64) {
    let (status, body) =
        customer_says(app, fx, &format!("c-{tag}"), &format!("52155{tag}"), text).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (
        uuid_of(&body, "conversation_id"),
        body["folio"].as_i64().unwrap(),
    )
}

/// Runs a count query binding one uuid.
async fn count_for(app: &TestApp, sql: &'static str, id: Uuid) -> i64 {
    match &app.store {
        Store::Sqlite(p) => sqlx::query_scalar(sql).bind(id).fetch_one(&p.read).await,
        Store::Postgres(pg) => sqlx::query_scalar(sql).bind(id).fetch_one(&pg.pool).await,
    }
    .expect("count")
}

/// The messages of a conversation as the API answers them.
async fn api_messages(app: &TestApp, fx: &Fixture, id: Uuid) -> Vec<Value> {
    let (status, body) = app
        .api_call(
            Method::GET,
            &format!("/api/v1/conversations/{id}"),
            Some(&fx.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["messages"].as_array().unwrap().clone()
}

/// The API's answer for conversation `id` with `query` after its path.
async fn api_conversation(
    app: &TestApp,
    fx: &Fixture,
    id: Uuid,
    query: &str,
) -> (StatusCode, Value) {
    app.api_call(
        Method::GET,
        &format!("/api/v1/conversations/{id}{query}"),
        Some(&fx.token),
        None,
    )
    .await
}

fn column<'a>(messages: &'a [Value], key: &str) -> Vec<&'a Value> {
    messages.iter().map(|m| &m[key]).collect()
}

/// A conversation of thousands of messages must not answer them all at
/// once: the API answers the latest page, and `older_messages` walks back
/// to the first message, every message once and in order.
async fn the_api_answers_a_long_transcript_a_page_at_a_time(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    let (id, _) = new_conversation(&app, &fx, "1000009", "mensaje 0").await;
    for n in 1..=7 {
        let (status, body) =
            bot_says(&app, &fx, id, &format!("bot-{n}"), &format!("mensaje {n}")).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let every: Vec<String> = (0..=7).map(|n| format!("mensaje {n}")).collect();
    // Without a limit, a short transcript is answered whole.
    let (status, whole) = api_conversation(&app, &fx, id, "").await;
    assert_eq!(status, StatusCode::OK, "{whole}");
    let texts = |body: &Value| -> Vec<String> {
        body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["text"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(texts(&whole), every);
    assert_eq!(whole["older_messages"], Value::Null);
    // Three at a time: the latest first, each page oldest first.
    let mut pages = Vec::new();
    let mut query = "?messages_limit=3".to_owned();
    for _ in 0..10 {
        let (status, page) = api_conversation(&app, &fx, id, &query).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(
            page["status"], whole["status"],
            "every page is the conversation"
        );
        pages.push(texts(&page));
        match page["older_messages"].as_str() {
            Some(cursor) => query = format!("?messages_limit=3&messages_before={cursor}"),
            None => break,
        }
    }
    assert_eq!(
        pages,
        [
            vec!["mensaje 5", "mensaje 6", "mensaje 7"],
            vec!["mensaje 2", "mensaje 3", "mensaje 4"],
            vec!["mensaje 0", "mensaje 1"],
        ]
    );
    // A cursor that is not one, and a limit that is not a number of
    // messages, are refused and say which.
    let (status, body) = api_conversation(&app, &fx, id, "?messages_before=ayer").await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_cursor")),
        "{body}"
    );
    for limit in ["0", "-1", "muchos"] {
        let (status, body) =
            api_conversation(&app, &fx, id, &format!("?messages_limit={limit}")).await;
        assert_eq!(
            (status, &body["error"], &body["field"]),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                &json!("invalid_field"),
                &json!("messages_limit")
            ),
            "{limit}: {body}"
        );
    }
    // A limit above the most is capped, not refused.
    let (status, capped) = api_conversation(&app, &fx, id, "?messages_limit=100000").await;
    assert_eq!(status, StatusCode::OK, "{capped}");
    assert_eq!(texts(&capped), every);
}

async fn every_author_is_kept_with_its_text_time_and_ids(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    let opening = "Hola 👋\u{1}\n  con espacios  ";
    let (id, _) = new_conversation(&app, &fx, "1000001", opening).await;
    let (status, bot) = bot_says(&app, &fx, id, "bot-1", "¡Hola! ¿En qué te ayudo?").await;
    assert_eq!(status, StatusCode::CREATED, "{bot}");
    let (status, _) = customer_says(&app, &fx, "c-2", "521551000001", "Con un asesor").await;
    assert_eq!(status, StatusCode::OK);
    let (status, handed) = post(
        &app,
        &format!("/api/v1/conversations/{id}/handoff"),
        &fx.token,
        json!({}),
    )
    .await;
    assert_eq!(
        (status, &handed["status"]),
        (StatusCode::OK, &json!("assigned"))
    );
    for text in ["Hola, soy tu asesor", "¿Algo más?"] {
        let (status, body) = agent_says(&app, &fx, id, text).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let messages = api_messages(&app, &fx, id).await;
    assert_eq!(
        column(&messages, "author"),
        ["customer", "bot", "customer", "agent", "agent"]
    );
    assert_eq!(
        column(&messages, "direction"),
        ["inbound", "outbound", "inbound", "outbound", "outbound"]
    );
    assert_eq!(
        column(&messages, "message_id"),
        [
            &json!("c-1000001"),
            &json!("bot-1"),
            &json!("c-2"),
            &Value::Null,
            &Value::Null
        ]
    );
    assert_eq!(
        column(&messages, "text"),
        [
            opening,
            "¡Hola! ¿En qué te ayudo?",
            "Con un asesor",
            "Hola, soy tu asesor",
            "¿Algo más?"
        ]
    );
    let agent = json!(fx.agent.to_string());
    assert_eq!(
        column(&messages, "agent_id"),
        [&Value::Null, &Value::Null, &Value::Null, &agent, &agent]
    );
    assert!(messages[3]["agent"].as_str().is_some_and(|n| !n.is_empty()));
    assert!(messages.iter().all(|m| m["text_purged_at"].is_null()));
    assert_eq!(messages[1]["id"], bot["id"]);
    assert_eq!(messages[1]["at"], bot["at"]);
    let instants: Vec<&str> = messages.iter().map(|m| m["at"].as_str().unwrap()).collect();
    assert!(instants.windows(2).all(|w| w[0] <= w[1]), "{instants:?}");
    // As stored: one row per message, each with its author.
    let authors = count_for(
        &app,
        "select count(distinct author) from messages where conversation_id = $1",
        id,
    )
    .await;
    assert_eq!(authors, 3);
}

async fn a_bot_turn_is_recorded_once_and_never_on_a_closed_conversation(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    let (id, folio) = new_conversation(&app, &fx, "1000002", "Hola").await;
    let (status, first) = bot_says(&app, &fx, id, "turno-1", "Elige una opción").await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["already_recorded"], json!(false));
    assert_eq!(first["author"], "bot");
    assert_eq!(first["folio"], json!(folio));
    // A retry (even with another text) writes nothing and answers the first.
    let (status, again) = bot_says(&app, &fx, id, "turno-1", "Otro texto").await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["already_recorded"], json!(true));
    assert_eq!((&again["id"], &again["at"]), (&first["id"], &first["at"]));
    let turns = "select count(*) from messages where conversation_id = $1 and author = 'bot'";
    assert_eq!(count_for(&app, turns, id).await, 1);
    // The turn is activity: the conversation's last activity is its instant.
    let (_, state) = app
        .api_call(
            Method::GET,
            &format!("/api/v1/conversations/{id}"),
            Some(&fx.token),
            None,
        )
        .await;
    assert_eq!(state["last_activity_at"], first["at"]);
    assert_eq!(state["version"], json!(1), "a bot turn is not a transition");
    // The same bot message id on another conversation is another turn.
    let (other, _) = new_conversation(&app, &fx, "1000003", "Buenas").await;
    let (status, _) = bot_says(&app, &fx, other, "turno-1", "Elige una opción").await;
    assert_eq!(status, StatusCode::CREATED);

    app.login_as_super().await;
    let cancelled = app.cancel_through_form(&app.client, folio).await;
    assert_eq!(cancelled.status, StatusCode::SEE_OTHER);
    let before = count_for(
        &app,
        "select count(*) from messages where conversation_id = $1",
        id,
    )
    .await;
    let (status, refused) = bot_says(&app, &fx, id, "turno-2", "¿Sigues ahí?").await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["error"], "not_allowed");
    assert_eq!(refused["message"], "La conversación ya estaba cancelada");
    let after = count_for(
        &app,
        "select count(*) from messages where conversation_id = $1",
        id,
    )
    .await;
    assert_eq!(before, after, "nothing stored on a closed conversation");
    // A retry of a turn recorded before the closing still gets its answer.
    let (status, late) = bot_says(&app, &fx, id, "turno-1", "Elige una opción").await;
    assert_eq!((status, &late["id"]), (StatusCode::OK, &first["id"]));

    // Unknown, of another campaign, malformed, without or with the wrong token.
    let foreign = app
        .uuids_where(
            "select c.id from conversations c join campaigns p on p.id = c.campaign_id \
             where p.name = $1 and c.is_open",
            "Cobranza",
        )
        .await[0];
    for (target, expected) in [
        (Uuid::now_v7(), StatusCode::NOT_FOUND),
        (foreign, StatusCode::NOT_FOUND),
    ] {
        let (status, body) = bot_says(&app, &fx, target, "turno-x", "Hola").await;
        assert_eq!(status, expected, "{body}");
        assert_eq!(body["error"], "not_found");
    }
    let path = "/api/v1/conversations/no-es-un-id/bot-messages";
    let (status, body) = post(
        &app,
        path,
        &fx.token,
        json!({"message_id": "x", "text": "y"}),
    )
    .await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_id"))
    );
    let path = format!("/api/v1/conversations/{other}/bot-messages");
    let body = json!({"message_id": "x", "text": "y"});
    let (status, _) = app
        .api_call(Method::POST, &path, None, Some(body.clone()))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = post(&app, &path, &fx.channel_token, body).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a channel token is not the bot's"
    );
}

/// Sends `body` as is (it may not be JSON) with `token`.
async fn raw_post(app: &TestApp, path: &str, token: &str, body: String) -> (StatusCode, Value) {
    let response = app
        .client
        .post(app.url(path))
        .bearer_auth(token)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.expect("a JSON error"))
}

async fn bad_message_texts_are_refused_and_store_nothing(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    let (id, _) = new_conversation(&app, &fx, "1000004", "Hola").await;
    let (status, _) = post(
        &app,
        &format!("/api/v1/conversations/{id}/handoff"),
        &fx.token,
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let counts = async || {
        (
            app.scalar_i64("select count(*) from messages").await,
            app.scalar_i64("select count(*) from conversations").await,
            app.scalar_i64("select count(*) from inbound_messages")
                .await,
        )
    };
    let before = counts().await;
    let too_long = "ñ".repeat(10_001);
    let endpoints = [
        (
            format!("/api/v1/channels/{}/messages", fx.channel),
            fx.channel_token.clone(),
            json!({"message_id": "c-malo", "from": "5215512345000"}),
        ),
        (
            format!("/api/v1/conversations/{id}/bot-messages"),
            fx.token.clone(),
            json!({"message_id": "b-malo"}),
        ),
        (
            format!("/api/v1/conversations/{id}/agent-messages"),
            fx.token.clone(),
            json!({"agent_id": fx.agent}),
        ),
    ];
    for (path, token, base) in &endpoints {
        for (text, why) in [
            (json!(too_long), "Admite hasta 10000 caracteres"),
            (
                json!("hola\u{0}adiós"),
                "No admite el carácter nulo (U+0000)",
            ),
        ] {
            let mut body = base.clone();
            body["text"] = text;
            let (status, answer) = post(&app, path, token, body).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {answer}");
            assert_eq!(
                (&answer["field"], &answer["message"]),
                (&json!("text"), &json!(why))
            );
        }
        for body in [base.clone(), {
            let mut b = base.clone();
            b["text"] = json!(42);
            b
        }] {
            let (status, answer) = post(&app, path, token, body).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {answer}");
            assert_eq!(answer["error"], "invalid_field");
        }
        let (status, answer) = raw_post(
            &app,
            path,
            token,
            r#"{"message_id": "x", "text": "sin cerrar"#.into(),
        )
        .await;
        assert_eq!(
            (status, &answer["error"]),
            (StatusCode::BAD_REQUEST, &json!("malformed_json"))
        );
    }
    assert_eq!(counts().await, before, "nothing stored");
    // At the limit, counted in characters (an emoji is one): kept.
    let (status, body) = bot_says(&app, &fx, id, "b-limite", &"😀".repeat(10_000)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// Writes `count` bot turns on `id`, one a second from `from`, with the
/// texts `Mensaje 001`…, through the Store.
async fn bot_turns(app: &TestApp, id: Uuid, from: chrono::DateTime<Utc>, texts: &[String]) {
    let conversation = app
        .store
        .conversation_state(&Scope::All, id)
        .await
        .unwrap()
        .unwrap();
    for (i, text) in texts.iter().enumerate() {
        let at = Ts::new(from + chrono::Duration::seconds(i as i64 + 1));
        app.store
            .record_bot_message(&conversation, &format!("b-{i}"), text, at)
            .await
            .unwrap();
    }
}

fn numbered(range: std::ops::RangeInclusive<usize>) -> Vec<String> {
    range.map(|n| format!("Mensaje {n:03}")).collect()
}

async fn the_conversation_page_pages_the_transcript_with_the_history_between(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    let (id, folio) = new_conversation(&app, &fx, "1000005", "Mensaje 000").await;
    let start = app
        .store
        .conversation_state(&Scope::All, id)
        .await
        .unwrap()
        .unwrap();
    let started = app
        .store
        .conversation(&Scope::All, folio)
        .await
        .unwrap()
        .unwrap()
        .started_at
        .0;
    // A hand-off between message 60 (second 60) and 61, applied first: a
    // transition is never stamped before the activity already recorded.
    let handoff = relevo::domain::conversation::handoff(
        &start,
        relevo::domain::HandoffOutcome::AgentsOffline,
        started + chrono::Duration::milliseconds(60_500),
    )
    .unwrap();
    app.store.apply_transition(&handoff).await.unwrap().unwrap();
    let mut texts = numbered(1..=119);
    texts[118] = "Mensaje 119 <b>negritas</b>\u{7} https://ejemplo.mx/ruta".into();
    bot_turns(&app, id, started, &texts).await;
    app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;

    // The latest page: messages 70 to 119, oldest at the top.
    let latest = app.get(&format!("/mensajes/{folio}")).await;
    assert_eq!(latest.status, StatusCode::OK);
    let body = &latest.body;
    let at = |page: &str, text: &str| page.find(text).unwrap_or_else(|| panic!("{text} missing"));
    assert!(at(body, "Mensaje 070") < at(body, "Mensaje 071"));
    assert!(at(body, "Mensaje 071") < at(body, "Mensaje 119"));
    assert!(!body.contains("Mensaje 069"));
    assert!(
        !body.contains("Derivó a un agente"),
        "the hand-off is on an older page"
    );
    assert!(
        body.contains(
            "Mensaje 119 &#60;b&#62;negritas&#60;/b&#62;\u{2407} https://ejemplo.mx/ruta"
        ),
        "escaped, the bell shown, the address as text"
    );
    assert!(!body.contains("<b>negritas"));
    assert!(
        !body.contains("href=\"https://ejemplo.mx"),
        "links stay text"
    );
    assert!(body.contains("<time datetime=\""));
    assert!(rel_link(body, "next").is_none(), "the latest page");
    let older = rel_link(body, "prev").expect("Mensajes anteriores");
    assert!(body.contains("Mensajes anteriores"));

    // The page before: messages 20 to 69 with the hand-off after 60.
    let middle = app.get(&older).await;
    let body = &middle.body;
    assert!(at(body, "Mensaje 020") < at(body, "Mensaje 060"));
    assert!(at(body, "Mensaje 060") < at(body, "Derivó a un agente"));
    assert!(at(body, "Derivó a un agente") < at(body, "Mensaje 061"));
    assert!(at(body, "Mensaje 061") < at(body, "Mensaje 069"));
    assert!(!body.contains("Mensaje 019") && !body.contains("Mensaje 070"));
    let oldest_href = rel_link(body, "prev").expect("an older page still");
    let newer_href = rel_link(body, "next").expect("a newer page");
    assert!(body.contains("Ir a los más recientes"));

    // The first page: the start, then messages 0 to 19.
    let first = app.get(&oldest_href).await;
    let body = &first.body;
    assert!(at(body, "Inició la conversación") < at(body, "Mensaje 000"));
    assert!(at(body, "Mensaje 000") < at(body, "Mensaje 019"));
    assert!(!body.contains("Mensaje 020"));
    assert!(rel_link(body, "prev").is_none(), "the first page");
    // Forward again, without OFFSET: the same pages.
    let again = app.get(&rel_link(body, "next").unwrap()).await;
    assert!(again.body.contains("Mensaje 020") && again.body.contains("Mensaje 069"));
    assert!(!again.body.contains("Mensaje 070"));
    let newest = app.get(&newer_href).await;
    assert!(newest.body.contains("Mensaje 070") && newest.body.contains("Mensaje 119"));

    // An unreadable position shows the latest page with a notice.
    for bad in [
        "antes=ayer",
        "despues=1.2.3",
        "antes=99999999999999999999.x",
    ] {
        let page = app.get(&format!("/mensajes/{folio}?{bad}")).await;
        assert_eq!(page.status, StatusCode::OK, "{bad}");
        assert!(
            page.body
                .contains("La página de mensajes pedida no es válida"),
            "{bad}"
        );
        assert!(page.body.contains("Mensaje 119"), "{bad}");
    }
}

async fn the_modal_shows_the_last_five_messages_above_the_form(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    let (id, folio) = new_conversation(&app, &fx, "1000006", "Mensaje 000").await;
    let started = app
        .store
        .conversation(&Scope::All, folio)
        .await
        .unwrap()
        .unwrap()
        .started_at
        .0;
    bot_turns(&app, id, started, &numbered(1..=7)).await;
    app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let path = format!("/mensajes/{folio}/acciones");
    for fragment in [false, true] {
        let mut request = app.client.get(app.url(&path));
        if fragment {
            request = request.header("HX-Request", "true");
        }
        let body = request.send().await.unwrap().text().await.unwrap();
        let recent = &body[body.find("Últimos mensajes").expect("the section")..];
        let form = recent.find("¿Qué quieres hacer?").expect("the form below");
        let shown: Vec<usize> = (3..=7)
            .map(|n| {
                recent
                    .find(&format!("Mensaje {n:03}"))
                    .expect("one of the last five")
            })
            .collect();
        assert!(shown.windows(2).all(|w| w[0] < w[1]), "oldest first");
        assert!(shown[4] < form, "above the form");
        assert!(!body.contains("Mensaje 002"), "five only");
        assert!(body.contains(&format!("href=\"/mensajes/{folio}#transcripcion\"")));
    }
    // A conversation without messages says so.
    app.execute_id("delete from messages where conversation_id = $1", id)
        .await;
    let empty = app.get(&path).await;
    assert!(empty.body.contains("Sin mensajes registrados."));
    assert!(!empty.body.contains("Ver la conversación completa"));
}

/// Ids of the messages of demo conversations started before `days` ago.
async fn old_message_ids(app: &TestApp, days: i64) -> Vec<Uuid> {
    let cutoff = Ts::new(Utc::now() - chrono::Duration::days(days));
    match &app.store {
        Store::Sqlite(p) => {
            sqlx::query_scalar("select id from messages where at < $1 order by at, id")
                .bind(cutoff)
                .fetch_all(&p.read)
                .await
        }
        Store::Postgres(pg) => {
            sqlx::query_scalar("select id from messages where at < $1 order by at, id")
                .bind(cutoff)
                .fetch_all(&pg.pool)
                .await
        }
    }
    .unwrap()
}

/// A uuid column of the one row `sql` finds for `id`.
async fn uuid_for(app: &TestApp, sql: &'static str, id: Uuid) -> Uuid {
    match &app.store {
        Store::Sqlite(p) => sqlx::query_scalar(sql).bind(id).fetch_one(&p.read).await,
        Store::Postgres(pg) => sqlx::query_scalar(sql).bind(id).fetch_one(&pg.pool).await,
    }
    .expect("one row")
}

/// A count of messages at `sql`, binding one instant.
async fn count_at(app: &TestApp, sql: &'static str, at: Ts) -> i64 {
    match &app.store {
        Store::Sqlite(p) => sqlx::query_scalar(sql).bind(at).fetch_one(&p.read).await,
        Store::Postgres(pg) => sqlx::query_scalar(sql).bind(at).fetch_one(&pg.pool).await,
    }
    .expect("count")
}

async fn old_texts_are_purged_in_batches_and_the_messages_stay(backend: Backend) {
    // Kept for a hundred years: the background purge leaves the demo alone.
    let Some(app) = spawn_app_configured(backend, true, |s| s.transcript_days = 36_500).await
    else {
        return;
    };
    let old = old_message_ids(&app, 180).await;
    assert!(old.len() > 3, "the demo has messages past the retention");
    let total = app.scalar_i64("select count(*) from messages").await;
    let events = app
        .scalar_i64("select count(*) from conversation_events")
        .await;
    // One of them still waits in its channel's outbox: it keeps its text.
    let pending = old[0];
    let conversation = uuid_for(
        &app,
        "select conversation_id from messages where id = $1",
        pending,
    )
    .await;
    let folio = count_for(
        &app,
        "select folio from conversations where id = $1",
        conversation,
    )
    .await;
    let channel = uuid_for(
        &app,
        "select channel_id from conversations where id = $1",
        conversation,
    )
    .await;
    insert_outbox_item(&app, channel, conversation, pending).await;

    let now = Ts::now();
    let cutoff = Ts::new(now.0 - chrono::Duration::days(180));
    let mut batches = Vec::new();
    for _ in 0..20 {
        let n = app.store.purge_message_texts(cutoff, now, 2).await.unwrap();
        batches.push(n);
        if n < 2 {
            break;
        }
    }
    let purged: u64 = batches.iter().sum();
    assert_eq!(purged as usize, old.len() - 1, "{batches:?}");
    assert!(
        batches[..batches.len() - 1].iter().all(|n| *n == 2),
        "{batches:?}"
    );
    assert_eq!(
        app.scalar_i64("select count(*) from messages").await,
        total,
        "rows stay"
    );
    assert_eq!(
        app.scalar_i64("select count(*) from conversation_events")
            .await,
        events,
        "history stays"
    );
    assert_eq!(
        app.scalar_i64("select count(*) from messages where text is null")
            .await,
        purged as i64
    );
    assert_eq!(
        app.scalar_i64(
            "select count(*) from messages where text is null and text_purged_at is null"
        )
        .await,
        0
    );
    // Delivered, its text goes with the next batch.
    let (_, item) = outbox_item(&app, pending).await;
    app.store
        .acknowledge_outbox(channel, item, Ts::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        app.store.purge_message_texts(cutoff, now, 2).await.unwrap(),
        1
    );
    assert_eq!(
        app.store.purge_message_texts(cutoff, now, 2).await.unwrap(),
        0
    );

    // The page and the API tell a purged text apart.
    app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let page = app.get(&format!("/mensajes/{folio}")).await;
    assert!(
        page.body
            .contains("Texto eliminado por la política de retención (36500 días)")
    );
    let fx = fixture(&app).await;
    let messages = api_messages(&app, &fx, conversation).await;
    assert!(!messages.is_empty());
    for m in &messages {
        assert!(m["text"].is_null(), "{m}");
        assert!(m["text_purged_at"].as_str().is_some(), "{m}");
        assert!(m["author"].as_str().is_some() && m["at"].as_str().is_some());
    }
}

/// An outbox item for `message` (a nudge waiting for its connector).
async fn insert_outbox_item(app: &TestApp, channel: Uuid, conversation: Uuid, message: Uuid) {
    let sql = "insert into outbox_messages (id, channel_id, conversation_id, message_id, kind, \
               created_at, delivered_at) values ($1, $2, $3, $4, 'nudge', $5, null)";
    match &app.store {
        Store::Sqlite(p) => {
            sqlx::query(sql)
                .bind(Uuid::now_v7())
                .bind(channel)
                .bind(conversation)
                .bind(message)
                .bind(Ts::now())
                .execute(&p.write)
                .await
                .unwrap();
        }
        Store::Postgres(pg) => {
            sqlx::query(sql)
                .bind(Uuid::now_v7())
                .bind(channel)
                .bind(conversation)
                .bind(message)
                .bind(Ts::now())
                .execute(&pg.pool)
                .await
                .unwrap();
        }
    }
}

/// (channel, id) of the outbox item of `message`.
async fn outbox_item(app: &TestApp, message: Uuid) -> (Uuid, Uuid) {
    let sql = "select channel_id, id from outbox_messages where message_id = $1";
    match &app.store {
        Store::Sqlite(p) => sqlx::query_as(sql).bind(message).fetch_one(&p.read).await,
        Store::Postgres(pg) => sqlx::query_as(sql).bind(message).fetch_one(&pg.pool).await,
    }
    .unwrap()
}

async fn the_background_purge_runs_at_start_and_is_counted(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    // The demo's conversation older than the default 180 days is purged by
    // the pass at start; nothing newer is.
    let deadline = Instant::now() + Duration::from_secs(20);
    let old = loop {
        let purged = app
            .scalar_i64("select count(*) from messages where text is null")
            .await;
        let pending = old_message_ids(&app, 180).await.len() as i64 - purged;
        if purged > 0 && pending == 0 {
            break purged;
        }
        assert!(Instant::now() < deadline, "the purge at start did not run");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(relevo::telemetry::METRICS.texts_purged_total() >= old as u64);
    let metrics = app.get("/metrics").await.body;
    let counted: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("relevo_transcript_texts_purged_total "))
        .expect("the counter is exposed")
        .parse()
        .unwrap();
    assert!(counted >= old as u64, "{counted} < {old}");
    let cutoff = Ts::new(Utc::now() - chrono::Duration::days(180));
    let old_purged = count_at(
        &app,
        "select count(*) from messages where text is null and at < $1",
        cutoff,
    )
    .await;
    assert_eq!(old_purged, old, "only texts past the retention");
}

async fn the_command_line_purges_on_demand(backend: Backend) {
    let Some((store, url, _guard)) = fresh_store(backend).await else {
        return;
    };
    relevo::cli::seed_demo(&store).await.unwrap();
    let app = TestApp::attach(0, store.clone(), backend, url.clone());
    let old = old_message_ids(&app, 180).await.len();
    assert!(old > 0);
    let purge = |days: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_relevo"))
            .args(["purge", "--older-than", days])
            .env("DATABASE_URL", &url)
            .env("RUST_LOG", "warn")
            .output()
            .expect("run relevo")
    };
    let out = purge("180");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.starts_with(&format!("{old} message texts purged")),
        "{said}"
    );
    assert_eq!(
        app.scalar_i64("select count(*) from messages where text is null")
            .await,
        old as i64
    );
    let again = purge("180");
    assert!(String::from_utf8_lossy(&again.stdout).starts_with("0 message texts purged"));
    for bad in ["0", "-3", "treinta", "36501"] {
        let out = purge(bad);
        assert!(!out.status.success(), "{bad}");
    }
    assert_eq!(
        app.scalar_i64("select count(*) from messages where text is null")
            .await,
        old as i64,
        "a refused command purges nothing"
    );
    store.close().await;
}

async fn a_database_error_never_carries_a_message_text(backend: Backend) {
    let Some((store, _url, _guard)) = fresh_store(backend).await else {
        return;
    };
    relevo::cli::seed_demo(&store).await.unwrap();
    let secret = "texto-privado-del-cliente-4f2a";
    // A row the checks refuse (a customer's message going out).
    let sql = "insert into messages (id, conversation_id, direction, author, message_id, \
               agent_id, text, at) select $1, id, 'outbound', 'customer', null, null, $2, $3 \
               from conversations limit 1";
    let error = match &store {
        Store::Sqlite(p) => sqlx::query(sql)
            .bind(Uuid::now_v7())
            .bind(secret)
            .bind(Ts::now())
            .execute(&p.write)
            .await
            .map(|_| ()),
        Store::Postgres(pg) => sqlx::query(sql)
            .bind(Uuid::now_v7())
            .bind(secret)
            .bind(Ts::now())
            .execute(&pg.pool)
            .await
            .map(|_| ()),
    }
    .expect_err("the check refuses it");
    if backend == Backend::Postgres {
        assert!(
            format!("{error:?}").contains(secret),
            "PostgreSQL's own error names the row (what the logs must not get)"
        );
    }
    let logged = format!("{:?}", StoreError::from(error));
    assert!(!logged.contains(secret), "{logged}");
    assert!(
        logged.contains("messages_author_direction_check"),
        "{logged}"
    );
    store.close().await;
}

async fn migration_0016_gives_every_existing_message_its_author(backend: Backend) {
    let (store, _url, _guard) = fresh_database(backend).await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(match backend {
        Backend::Sqlite => "migrations/sqlite",
        Backend::Postgres => "migrations/postgres",
    });
    let migrator = sqlx::migrate::Migrator::new(dir).await.unwrap();
    let ids: Vec<Uuid> = (0..9).map(|_| Uuid::now_v7()).collect();
    match &store {
        Store::Sqlite(p) => {
            migrator.run_to(15, &p.write).await.unwrap();
            for (sql, bound) in BEFORE_0016 {
                let mut q = sqlx::query(*sql);
                for i in *bound {
                    q = q.bind(ids[*i]);
                }
                q.bind(Ts::now()).execute(&p.write).await.unwrap();
            }
        }
        Store::Postgres(pg) => {
            migrator.run_to(15, &pg.pool).await.unwrap();
            for (sql, bound) in BEFORE_0016 {
                let mut q = sqlx::query(*sql);
                for i in *bound {
                    q = q.bind(ids[*i]);
                }
                q.bind(Ts::now()).execute(&pg.pool).await.unwrap();
            }
        }
    }
    store
        .migrate()
        .await
        .expect("0016 applies over existing messages");
    let app = TestApp::attach(0, store.clone(), backend, String::new());
    let authors = app
        .folios_where(
            "select cast(count(*) as bigint) from messages where \
             (message_id = 'wamid.1' and author = 'customer') \
             or (message_id is null and author = 'agent') \
             or (message_id = $1 and author = 'system' and text is not null)",
            "auto-cancel-nudge:prueba",
        )
        .await;
    assert_eq!(authors, [3]);
    // The outbox item still finds its message.
    let joined = app
        .scalar_i64("select count(*) from outbox_messages o join messages m on m.id = o.message_id")
        .await;
    assert_eq!(joined, 1);
    if let Store::Sqlite(p) = &store {
        let broken: Vec<(String, i64, String, i64)> = sqlx::query_as("pragma foreign_key_check")
            .fetch_all(&p.read)
            .await
            .unwrap();
        assert!(broken.is_empty(), "{broken:?}");
    }
    store.close().await;
}

/// Rows written with migrations 1 to 15: a campaign (id 0), its channel
/// (1), a contact (2), an agent (3), a conversation (4), a customer message
/// (5), the agent's reply (6) and a nudge (7) in the outbox (8). Each
/// statement binds the ids listed, in order, and then the instant.
const BEFORE_0016: &[(&str, &[usize])] = &[
    (
        "insert into campaigns (id, name, name_key, active, timezone, created_at, updated_at) \
         values ($1, 'Migración', 'migracion', true, 'America/Mexico_City', $2, $2)",
        &[0],
    ),
    (
        "insert into channels (id, campaign_id, kind, name, token_hash, active, created_at) \
         values ($1, $2, 'whatsapp', 'WhatsApp', 'hash', true, $3)",
        &[1, 0],
    ),
    (
        "insert into contacts (id, channel_id, external_id, name, name_key, created_at) \
         values ($1, $2, '5215500000001', null, null, $3)",
        &[2, 1],
    ),
    (
        "insert into users (id, email, name, role, active, connected, password_hash, created_at, \
         updated_at) values ($1, 'ana@relevo.demo', 'Ana', 'agent', true, false, null, $2, $2)",
        &[3],
    ),
    (
        "insert into conversations (id, campaign_id, channel_id, contact_id, status, is_open, \
         version, agent_id, started_at, last_activity_at) \
         values ($1, $2, $3, $4, 'in_progress', true, 3, $5, $6, $6)",
        &[4, 0, 1, 2, 3],
    ),
    (
        "insert into messages (id, conversation_id, direction, message_id, agent_id, text, at) \
         values ($1, $4, 'inbound', 'wamid.1', null, 'hola', $6), \
         ($2, $4, 'outbound', null, $5, 'soy Ana', $6), \
         ($3, $4, 'outbound', 'auto-cancel-nudge:prueba', null, '¿sigues ahí?', $6)",
        &[5, 6, 7, 4, 3],
    ),
    (
        "insert into outbox_messages (id, channel_id, conversation_id, message_id, kind, \
         created_at, delivered_at) values ($1, $2, $3, $4, 'nudge', $5, null)",
        &[8, 1, 4, 7],
    ),
];

async fn message_text_never_reaches_the_logs(backend: Backend) {
    let Some((store, url, _guard)) = fresh_store(backend).await else {
        return;
    };
    relevo::cli::seed_demo(&store).await.unwrap();
    let env = [
        ("RELEVO_LOG_FORMAT", "json"),
        ("RUST_LOG", "debug"),
        ("RELEVO_TRANSCRIPT_DAYS", "1"),
    ];
    let mut process = RelevoProcess::start(&url, &env).await;
    let app = TestApp::attach(process.port, store.clone(), backend, url);
    let fx = fixture(&app).await;
    let secret = "confidencial-9c1d";
    let (id, folio) = new_conversation(&app, &fx, "1000007", &format!("hola {secret}")).await;
    let (status, _) = bot_says(&app, &fx, id, "b-1", &format!("bot {secret}")).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = post(
        &app,
        &format!("/api/v1/conversations/{id}/handoff"),
        &fx.token,
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = agent_says(&app, &fx, id, &format!("agente {secret}")).await;
    assert_eq!(status, StatusCode::OK);
    // Refused ones too.
    let (status, _) = bot_says(
        &app,
        &fx,
        id,
        "b-2",
        &format!("{secret}{}", "x".repeat(10_000)),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = bot_says(&app, &fx, id, "b-3", &format!("{secret}\u{0}")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let path = format!("/api/v1/conversations/{id}/bot-messages");
    let (status, _) = raw_post(&app, &path, &fx.token, format!("{{\"text\": \"{secret}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let page = app.get(&format!("/mensajes/{folio}")).await;
    assert!(page.body.contains(secret), "the page shows it");
    let modal = app.get(&format!("/mensajes/{folio}/acciones")).await;
    assert!(modal.body.contains(secret));
    let metrics = app.get("/metrics").await.body;
    assert!(metrics.contains("relevo_transcript_texts_purged_total"));
    assert!(!metrics.contains(secret));
    process.sigterm();
    assert!(process.wait(Duration::from_secs(35)).await.success());
    let logs = process.stdout().await;
    assert!(
        logs.contains("message texts purged"),
        "the purge logged its count"
    );
    assert!(logs.lines().count() > 10);
    assert!(!logs.contains(secret), "a message text reached the logs");
    store.close().await;
}
