//! The integration API over HTTP on both backends: every call's happy path,
//! every error code, idempotent deliveries under concurrent retries,
//! reactivation, and the router's decisions end to end.

mod common;

use std::process::Command;

use common::{Backend, TestApp, fresh_store, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

on_both_backends!(
    every_call_works_on_its_happy_path,
    message_texts_with_control_characters_and_emoji_are_kept_faithfully,
    the_contact_keeps_its_name_until_the_channel_sends_another,
    a_missing_or_wrong_token_answers_401_and_a_foreign_scope_404,
    malformed_oversized_and_invalid_bodies_are_refused_and_change_nothing,
    steps_the_status_does_not_allow_answer_409,
    a_repeated_message_id_is_processed_once_even_under_ten_concurrent_retries,
    simultaneous_first_messages_of_one_customer_start_exactly_one_conversation,
    a_message_after_a_cancellation_starts_a_new_conversation_linked_to_it,
    the_router_sends_hand_offs_out_of_hours_offline_or_to_the_least_busy_agent,
    connecting_an_agent_assigns_waiting_conversations_oldest_first,
    create_token_prints_a_token_that_is_stored_only_as_its_hash,
    a_batch_of_messages_answers_each_as_if_alone_and_a_failure_stays_its_own,
    a_message_never_moves_a_conversations_activity_back,
);

const CAMPAIGN: &str = "Ventas Hogar";
const OTHER_CAMPAIGN: &str = "Cobranza";

/// Tokens and ids of Ventas Hogar, created through the Store.
struct Api {
    campaign: Uuid,
    /// A channel of the campaign and its (freshly rotated) token.
    channel: Uuid,
    channel_token: String,
    /// Another channel of the same campaign.
    other_channel: Uuid,
    token: String,
    /// The campaign's agents, by id.
    agents: Vec<Uuid>,
}

async fn api(app: &TestApp) -> Api {
    let campaign = app.campaign_id(CAMPAIGN).await;
    let channels: Vec<Uuid> = app
        .store
        .channels()
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.1 == campaign)
        .map(|c| c.0)
        .collect();
    let channel_token = app
        .store
        .rotate_channel_token(channels[0])
        .await
        .unwrap()
        .expect("channel exists");
    let (_, token) = app
        .store
        .create_integration_token(CAMPAIGN, "tests", relevo::db::Ts::now())
        .await
        .unwrap()
        .expect("campaign exists");
    let agents = app
        .uuids_where(
            "select m.user_id from campaign_members m join users u on u.id = m.user_id \
             join campaigns p on p.id = m.campaign_id \
             where p.name = $1 and u.role = 'agent' order by u.id",
            CAMPAIGN,
        )
        .await;
    Api {
        campaign,
        channel: channels[0],
        channel_token,
        other_channel: channels[1],
        token,
        agents,
    }
}

/// Sends a JSON request; returns the status and the JSON body.
async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    app.api_call(method, path, token, body).await
}

async fn post(app: &TestApp, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
    call(app, reqwest::Method::POST, path, Some(token), Some(body)).await
}

async fn get(app: &TestApp, path: &str, token: &str) -> (StatusCode, Value) {
    call(app, reqwest::Method::GET, path, Some(token), None).await
}

/// A customer message on the fixture's channel.
async fn customer(app: &TestApp, api: &Api, message_id: &str, from: &str) -> (StatusCode, Value) {
    post(
        app,
        &format!("/api/v1/channels/{}/messages", api.channel),
        &api.channel_token,
        json!({"message_id": message_id, "from": from, "name": "Cliente Prueba", "text": "Hola"}),
    )
    .await
}

fn id_of(value: &Value, key: &str) -> Uuid {
    value[key]
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .unwrap_or_else(|| panic!("{key} in {value}"))
}

/// Opens the campaign 24 hours a day, every day.
async fn always_open(app: &TestApp, campaign: Uuid) {
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
}

async fn disconnect_all_agents(app: &TestApp, campaign: Uuid) {
    app.execute_id(
        "update users set connected = false where id in \
         (select user_id from campaign_members where campaign_id = $1)",
        campaign,
    )
    .await;
}

/// Runs a count query binding one uuid.
async fn count_for(app: &TestApp, sql: &'static str, id: Uuid) -> i64 {
    match &app.store {
        relevo::db::Store::Sqlite(p) => sqlx::query_scalar(sql)
            .bind(id)
            .fetch_one(&p.read)
            .await
            .expect("query"),
        relevo::db::Store::Postgres(pg) => sqlx::query_scalar(sql)
            .bind(id)
            .fetch_one(&pg.pool)
            .await
            .expect("query"),
    }
}

async fn open_count(app: &TestApp, agent: Uuid) -> i64 {
    count_for(
        app,
        "select count(*) from conversations where agent_id = $1 and is_open",
        agent,
    )
    .await
}

/// A new conversation in ICR from a new contact; returns its id.
async fn new_conversation(app: &TestApp, api: &Api, tag: &str) -> Uuid {
    let (status, body) = customer(app, api, &format!("m-{tag}"), &format!("from-{tag}")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    id_of(&body, "conversation_id")
}

async fn handoff(app: &TestApp, api: &Api, id: Uuid) -> Value {
    let (status, body) = post(
        app,
        &format!("/api/v1/conversations/{id}/handoff"),
        &api.token,
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn every_call_works_on_its_happy_path(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let api = api(&app).await;
    always_open(&app, api.campaign).await;
    disconnect_all_agents(&app, api.campaign).await;
    let agent = api.agents[0];

    let (status, body) = post(
        &app,
        &format!("/api/v1/agents/{agent}/presence"),
        &api.token,
        json!({"connected": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["connected"], json!(true));

    let (status, first) = customer(&app, &api, "happy-1", "5215511110000").await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["new_conversation"], json!(true));
    assert_eq!(first["reactivates_id"], Value::Null);
    let id = id_of(&first, "conversation_id");

    let (status, second) = customer(&app, &api, "happy-2", "5215511110000").await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(
        id_of(&second, "conversation_id"),
        id,
        "continues the open one"
    );
    assert_eq!(second["new_conversation"], json!(false));

    let body = handoff(&app, &api, id).await;
    assert_eq!(body["status"], "assigned");
    assert_eq!(id_of(&body, "agent_id"), agent, "the only connected agent");

    let path = format!("/api/v1/conversations/{id}/agent-messages");
    let (status, body) = post(
        &app,
        &path,
        &api.token,
        json!({"agent_id": agent, "text": "Hola, soy tu asesor"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "in_progress");
    let (status, body) = post(
        &app,
        &path,
        &api.token,
        json!({"agent_id": agent, "text": "¿Algo más?"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "in_progress");

    let category = app
        .uuids_where(
            "select c.id from closure_categories c join campaigns p on p.id = c.campaign_id \
             where c.name = 'Atendida por otro medio' and p.name = $1",
            CAMPAIGN,
        )
        .await[0];
    let subcategory = app
        .uuids_where(
            "select s.id from closure_subcategories s join closure_categories c on c.id = s.category_id \
             join campaigns p on p.id = c.campaign_id \
             where s.name = 'Sucursal' and p.name = $1",
            CAMPAIGN,
        )
        .await[0];
    let (status, body) = post(
        &app,
        &format!("/api/v1/conversations/{id}/resolve"),
        &api.token,
        json!({"agent_id": agent, "category_id": category, "subcategory_id": subcategory, "comment": "Resuelto en sucursal"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "resolved");

    let (status, body) = get(&app, &format!("/api/v1/conversations/{id}"), &api.token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "resolved");
    assert_eq!(body["is_open"], json!(false));
    assert_eq!(id_of(&body["closure"], "category_id"), category);
    assert_eq!(id_of(&body["closure"], "subcategory_id"), subcategory);
    assert_eq!(body["closure"]["comment"], "Resuelto en sucursal");
    assert_eq!(body["contact"]["external_id"], "5215511110000");
    let kinds: Vec<&str> = body["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["created", "handoff", "first_reply", "resolved"]);
    let directions: Vec<&str> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["direction"].as_str().unwrap())
        .collect();
    assert_eq!(directions, ["inbound", "inbound", "outbound", "outbound"]);

    // After a resolution the next message starts over, linked to it.
    let (status, again) = customer(&app, &api, "happy-3", "5215511110000").await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_ne!(id_of(&again, "conversation_id"), id);
    assert_eq!(id_of(&again, "reactivates_id"), id);

    let (status, body) = post(
        &app,
        &format!("/api/v1/agents/{agent}/presence"),
        &api.token,
        json!({"connected": false}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        count_for(
            &app,
            "select count(*) from users where id = $1 and connected",
            agent
        )
        .await,
        0
    );
}

async fn message_texts_with_control_characters_and_emoji_are_kept_faithfully(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let api = api(&app).await;
    let text = "línea 1\nlínea 2\r\n\ttab \u{7}\u{1b}[31m <b>&amp;</b> 😀👍🏽🧑‍💻 𝄞";
    let name = "Ana 🌮 <script>";
    let (status, body) = post(
        &app,
        &format!("/api/v1/channels/{}/messages", api.channel),
        &api.channel_token,
        json!({"message_id": "emoji-1", "from": "5215522220000", "name": name, "text": text}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = id_of(&body, "conversation_id");
    let (status, body) = get(&app, &format!("/api/v1/conversations/{id}"), &api.token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["messages"][0]["text"].as_str(), Some(text));
    assert_eq!(body["contact"]["name"].as_str(), Some(name));
}

async fn the_contact_keeps_its_name_until_the_channel_sends_another(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let api = api(&app).await;
    let messages = format!("/api/v1/channels/{}/messages", api.channel);
    let from = "5215544440000";
    let send = |message_id: &'static str, name: Option<&'static str>| {
        let mut body = json!({"message_id": message_id, "from": from, "text": "Hola"});
        if let Some(name) = name {
            body["name"] = json!(name);
        }
        post(&app, &messages, &api.channel_token, body)
    };
    let contact_name = |id: Uuid| {
        let app = &app;
        let token = &api.token;
        async move {
            let (status, body) = get(app, &format!("/api/v1/conversations/{id}"), token).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["contact"]["name"].as_str().map(str::to_owned)
        }
    };

    let (status, body) = send("name-1", Some("Lucía Salgado")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = id_of(&body, "conversation_id");
    let folio = body["folio"].as_i64().unwrap();
    // The same name again, then no name at all: the contact is unchanged.
    for (message_id, name) in [("name-2", Some("Lucía Salgado")), ("name-3", None)] {
        let (status, body) = send(message_id, name).await;
        assert!(status.is_success(), "{body}");
        assert_eq!(id_of(&body, "conversation_id"), id);
        assert_eq!(contact_name(id).await.as_deref(), Some("Lucía Salgado"));
    }
    // A new profile name replaces the old one, and search follows it.
    let (status, body) = send("name-4", Some("Lucía Ramírez")).await;
    assert!(status.is_success(), "{body}");
    assert_eq!(contact_name(id).await.as_deref(), Some("Lucía Ramírez"));
    app.login_as_super().await;
    let by_new = app.get("/mensajes?estatus=todas&q=ramirez").await;
    assert!(
        by_new
            .body
            .contains(&format!("id=\"conversacion-{folio}\"")),
        "the new name finds folio {folio}"
    );
    let by_old = app.get("/mensajes?estatus=todas&q=salgado").await;
    assert!(
        !by_old
            .body
            .contains(&format!("id=\"conversacion-{folio}\"")),
        "the old name no longer finds folio {folio}"
    );
}

async fn a_missing_or_wrong_token_answers_401_and_a_foreign_scope_404(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let api = api(&app).await;
    let messages = format!("/api/v1/channels/{}/messages", api.channel);
    let body = json!({"message_id": "t-1", "from": "5215533330000", "text": "Hola"});
    let some_conversation = app
        .uuids_where(
            "select c.id from conversations c join campaigns p on p.id = c.campaign_id \
             where p.name = $1 and c.status = 'icr' order by c.folio",
            CAMPAIGN,
        )
        .await[0];
    let conversation = format!("/api/v1/conversations/{some_conversation}");

    for (path, method, token) in [
        (&messages, reqwest::Method::POST, None),
        (&messages, reqwest::Method::POST, Some("rlv_ch_wrong")),
        // An integration token is not a channel token.
        (&messages, reqwest::Method::POST, Some(api.token.as_str())),
        (&conversation, reqwest::Method::GET, None),
        (&conversation, reqwest::Method::GET, Some("wrong")),
        // A channel token is not an integration token.
        (
            &conversation,
            reqwest::Method::GET,
            Some(api.channel_token.as_str()),
        ),
    ] {
        let (status, error) = call(&app, method.clone(), path, token, Some(body.clone())).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} with {token:?}"
        );
        assert_eq!(error["error"], "unauthorized");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    // A channel's token used for another channel of the same campaign.
    let (status, error) = post(
        &app,
        &format!("/api/v1/channels/{}/messages", api.other_channel),
        &api.channel_token,
        body.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{error}");
    assert_eq!(error["error"], "not_found");

    // Unknown, or of another campaign than the token's: the same 404.
    let foreign = app
        .uuids_where(
            "select c.id from conversations c join campaigns p on p.id = c.campaign_id \
             where p.name = $1 and c.status = 'icr' order by c.folio",
            OTHER_CAMPAIGN,
        )
        .await[0];
    for id in [Uuid::now_v7(), foreign] {
        let (status, error) = get(&app, &format!("/api/v1/conversations/{id}"), &api.token).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{error}");
        assert_eq!(error["error"], "not_found");
        let (status, _) = post(
            &app,
            &format!("/api/v1/conversations/{id}/handoff"),
            &api.token,
            json!({}),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let status = app
        .store
        .conversation_state(&relevo::domain::Scope::All, foreign)
        .await
        .unwrap()
        .unwrap()
        .status;
    assert_eq!(
        status,
        relevo::domain::Status::Icr,
        "the foreign one is untouched"
    );

    // An agent of another campaign.
    let foreign_agent = app
        .uuids_where(
            "select m.user_id from campaign_members m join users u on u.id = m.user_id \
             join campaigns p on p.id = m.campaign_id where p.name = $1 and u.role = 'agent'",
            OTHER_CAMPAIGN,
        )
        .await[0];
    let (status, _) = post(
        &app,
        &format!("/api/v1/agents/{foreign_agent}/presence"),
        &api.token,
        json!({"connected": true}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A malformed id in the path.
    let (status, error) = get(&app, "/api/v1/conversations/10482", &api.token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"], "invalid_id");
}

async fn malformed_oversized_and_invalid_bodies_are_refused_and_change_nothing(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let api = api(&app).await;
    let messages = app.url(&format!("/api/v1/channels/{}/messages", api.channel));
    let inbound_before = app
        .scalar_i64("select count(*) from inbound_messages")
        .await;
    let conversations_before = app.scalar_i64("select count(*) from conversations").await;

    let raw = |body: String| {
        app.client
            .post(&messages)
            .bearer_auth(&api.channel_token)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
    };
    let response = raw(r#"{"message_id": "x", "from": "#.to_owned())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"], "malformed_json");

    let big = json!({"message_id": "big", "from": "5215544440000", "text": "x".repeat(70 * 1024)});
    let response = raw(big.to_string()).await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"], "payload_too_large");

    for (body, field) in [
        (json!({"message_id": "x"}), None),
        (json!({"message_id": 7, "from": "1", "text": "a"}), None),
        (
            json!({"message_id": "x", "from": "  ", "text": "a"}),
            Some("from"),
        ),
        (
            json!({"message_id": "", "from": "1", "text": "a"}),
            Some("message_id"),
        ),
    ] {
        let response = raw(body.to_string()).await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}"
        );
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"], "invalid_field", "{body}");
        if let Some(field) = field {
            assert_eq!(error["field"], field);
        }
    }

    let agent = api.agents[0];
    let (status, error) = post(
        &app,
        &format!("/api/v1/agents/{agent}/presence"),
        &api.token,
        json!({"connected": "sí"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");

    // A resolve naming a category of another campaign, and a malformed agent id.
    let (folio, id, assigned) = {
        let ids = app
            .uuids_where(
                "select c.id from conversations c join campaigns p on p.id = c.campaign_id \
                 where p.name = $1 and c.status = 'in_progress' order by c.folio",
                CAMPAIGN,
            )
            .await;
        let state = app
            .store
            .conversation_state(&relevo::domain::Scope::All, ids[0])
            .await
            .unwrap()
            .unwrap();
        (state.folio, ids[0], state.agent_id.unwrap())
    };
    let foreign_category = app
        .uuids_where(
            "select c.id from closure_categories c join campaigns p on p.id = c.campaign_id \
             where c.name = 'Cliente no responde' and p.name = $1",
            OTHER_CAMPAIGN,
        )
        .await[0];
    let resolve = format!("/api/v1/conversations/{id}/resolve");
    let (status, error) = post(
        &app,
        &resolve,
        &api.token,
        json!({"agent_id": assigned, "category_id": foreign_category}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(error["field"], "category_id");
    let (status, error) = post(&app, &resolve, &api.token, json!({"agent_id": "nadie"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(error["field"], "agent_id");

    let after = app
        .store
        .conversation_state(&relevo::domain::Scope::All, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.folio, folio);
    assert_eq!(after.status, relevo::domain::Status::InProgress);
    assert_eq!(
        app.scalar_i64("select count(*) from inbound_messages")
            .await,
        inbound_before
    );
    assert_eq!(
        app.scalar_i64("select count(*) from conversations").await,
        conversations_before
    );
}

async fn steps_the_status_does_not_allow_answer_409(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let api = api(&app).await;
    let in_status = |status: &'static str| {
        let app = &app;
        async move {
            let sql: &'static str = match status {
                "cancelled" => {
                    "select c.id from conversations c join campaigns p on p.id = c.campaign_id \
                     where p.name = $1 and c.status = 'cancelled' order by c.folio"
                }
                _ => {
                    "select c.id from conversations c join campaigns p on p.id = c.campaign_id \
                     where p.name = $1 and c.status = 'in_progress' order by c.folio"
                }
            };
            let id = app.uuids_where(sql, CAMPAIGN).await[0];
            app.store
                .conversation_state(&relevo::domain::Scope::All, id)
                .await
                .unwrap()
                .unwrap()
        }
    };

    // An agent reply on a cancelled conversation.
    let cancelled = in_status("cancelled").await;
    let (status, error) = post(
        &app,
        &format!("/api/v1/conversations/{}/agent-messages", cancelled.id),
        &api.token,
        json!({"agent_id": api.agents[0], "text": "¿Sigues ahí?"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{error}");
    assert_eq!(error["error"], "not_allowed");
    assert_eq!(error["message"], "La conversación ya estaba cancelada");

    // A resolve by an agent of the campaign who is not the assigned one.
    let attending = in_status("in_progress").await;
    let other = *api
        .agents
        .iter()
        .find(|a| Some(**a) != attending.agent_id)
        .unwrap();
    let (status, error) = post(
        &app,
        &format!("/api/v1/conversations/{}/resolve", attending.id),
        &api.token,
        json!({"agent_id": other}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{error}");
    assert_eq!(error["error"], "not_assigned_agent");

    // A hand-off of a conversation that is no longer in ICR.
    let (status, error) = post(
        &app,
        &format!("/api/v1/conversations/{}/handoff", attending.id),
        &api.token,
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{error}");

    for before in [cancelled, attending] {
        let after = app
            .store
            .conversation_state(&relevo::domain::Scope::All, before.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(after, before, "nothing changed");
    }
}

async fn a_repeated_message_id_is_processed_once_even_under_ten_concurrent_retries(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let api = api(&app).await;
    let url = app.url(&format!("/api/v1/channels/{}/messages", api.channel));
    let body = json!({"message_id": "wamid.retry-1", "from": "5215566660000", "name": "Reintento", "text": "Hola"});
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let client = app.client.clone();
        let (url, token, body) = (url.clone(), api.channel_token.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let response = client
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("request");
            (response.status(), response.text().await.expect("body"))
        }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("task"));
    }
    let first = answers[0].clone();
    assert_eq!(first.0, StatusCode::CREATED, "{}", first.1);
    for answer in &answers {
        assert_eq!(answer, &first, "every retry gets the first response");
    }
    // And later, sequentially, still the same.
    let again = post(
        &app,
        &format!("/api/v1/channels/{}/messages", api.channel),
        &api.channel_token,
        body,
    )
    .await;
    assert_eq!(again.0, first.0);
    assert_eq!(again.1, serde_json::from_str::<Value>(&first.1).unwrap());

    assert_eq!(
        count_for(
            &app,
            "select count(*) from inbound_messages where channel_id = $1 and message_id = 'wamid.retry-1'",
            api.channel
        )
        .await,
        1
    );
    assert_eq!(
        app.scalar_i64(
            "select count(*) from conversations c join contacts k on k.id = c.contact_id \
             where k.external_id = '5215566660000'"
        )
        .await,
        1
    );
    assert_eq!(
        app.scalar_i64("select count(*) from messages where message_id = 'wamid.retry-1'")
            .await,
        1
    );
}

/// Ten different messages of a customer Relevo has never seen, all at once:
/// one of them starts the conversation and the other nine continue it (the
/// contact's row orders them on PostgreSQL; SQLite has one writer).
async fn simultaneous_first_messages_of_one_customer_start_exactly_one_conversation(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let api = api(&app).await;
    let url = app.url(&format!("/api/v1/channels/{}/messages", api.channel));
    let mut tasks = Vec::new();
    for i in 0..10 {
        let client = app.client.clone();
        let (url, token) = (url.clone(), api.channel_token.clone());
        let body = json!({"message_id": format!("wamid.burst-{i}"), "from": "5215577770000", "name": "Ráfaga", "text": format!("mensaje {i}")});
        tasks.push(tokio::spawn(async move {
            let response = client
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("request");
            let status = response.status();
            (status, response.json::<Value>().await.expect("json"))
        }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("task"));
    }
    let created = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .count();
    let continued = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::OK)
        .count();
    assert_eq!((created, continued), (1, 9), "{answers:?}");
    let conversation = &answers[0].1["conversation_id"];
    assert!(
        answers
            .iter()
            .all(|(_, body)| &body["conversation_id"] == conversation),
        "{answers:?}"
    );
    assert_eq!(
        app.scalar_i64(
            "select count(*) from conversations c join contacts k on k.id = c.contact_id \
             where k.external_id = '5215577770000'"
        )
        .await,
        1
    );
    assert_eq!(
        app.scalar_i64(
            "select count(*) from messages where message_id like 'wamid.burst-%' and direction = 'inbound'"
        )
        .await,
        10
    );
    assert_eq!(
        app.scalar_i64("select count(*) from contacts where external_id = '5215577770000'")
            .await,
        1
    );
}

/// A cancelled conversation of Ventas Hogar that is its contact's latest:
/// the customer's next message reactivates it.
async fn latest_cancelled(app: &TestApp) -> Uuid {
    app.uuids_where(
        "select c.id from conversations c join campaigns p on p.id = c.campaign_id \
         where p.name = $1 and c.status = 'cancelled' and not exists \
         (select 1 from conversations d where d.contact_id = c.contact_id and d.started_at > c.started_at) \
         order by c.folio",
        CAMPAIGN,
    )
    .await[0]
}

async fn a_message_after_a_cancellation_starts_a_new_conversation_linked_to_it(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let api = api(&app).await;
    let cancelled = latest_cancelled(&app).await;
    let path = format!("/api/v1/conversations/{cancelled}");
    let (_, before) = get(&app, &path, &api.token).await;
    assert_eq!(before["status"], "cancelled");
    assert!(before["closure"]["category_id"].is_string());
    let old_folio = before["folio"].as_i64().unwrap();
    app.login_as_admin().await;
    let page = app.get(&format!("/mensajes/{old_folio}")).await;
    assert!(!page.body.contains("El cliente volvió a escribir"));
    let channel = id_of(&before, "channel_id");
    let channel_token = app
        .store
        .rotate_channel_token(channel)
        .await
        .unwrap()
        .unwrap();

    let (status, body) = post(
        &app,
        &format!("/api/v1/channels/{channel}/messages"),
        &channel_token,
        json!({"message_id": "after-cancel", "from": before["contact"]["external_id"], "text": "Hola otra vez"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["new_conversation"], json!(true));
    assert_eq!(id_of(&body, "reactivates_id"), cancelled);
    let new_id = id_of(&body, "conversation_id");
    assert_ne!(new_id, cancelled);
    assert!(body["folio"].as_i64().unwrap() > before["folio"].as_i64().unwrap());

    let (_, created) = get(&app, &format!("/api/v1/conversations/{new_id}"), &api.token).await;
    assert_eq!(created["status"], "icr");
    assert_eq!(id_of(&created, "reactivates_id"), cancelled);
    assert_eq!(created["contact"]["id"], before["contact"]["id"]);

    // The cancelled conversation is exactly as it was: closure, version, history.
    let (_, after) = get(&app, &path, &api.token).await;
    assert_eq!(after, before);
    // Its page links forward to the new one, which links back.
    let new_folio = body["folio"].as_i64().unwrap();
    let page = app.get(&format!("/mensajes/{old_folio}")).await;
    assert!(
        page.body.contains(&format!(
            "El cliente volvió a escribir: <a href=\"/mensajes/{new_folio}\">conversación {new_folio}</a>"
        )),
        "{}",
        page.body
    );
    let page = app.get(&format!("/mensajes/{new_folio}")).await;
    assert!(page.body.contains(&format!(
        "<a href=\"/mensajes/{old_folio}\">reactivada de {old_folio}</a>"
    )));
}

async fn the_router_sends_hand_offs_out_of_hours_offline_or_to_the_least_busy_agent(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let api = api(&app).await;

    // No hours at all: out of hours, whoever is connected.
    app.execute_id(
        "delete from campaign_schedules where campaign_id = $1",
        api.campaign,
    )
    .await;
    let id = new_conversation(&app, &api, "ooh").await;
    assert_eq!(handoff(&app, &api, id).await["status"], "out_of_hours");

    // Within hours, nobody connected.
    always_open(&app, api.campaign).await;
    disconnect_all_agents(&app, api.campaign).await;
    let id = new_conversation(&app, &api, "offline").await;
    assert_eq!(handoff(&app, &api, id).await["status"], "agents_offline");

    // Two agents connect (taking the waiting ones); the next goes to the least busy.
    let (a, b) = (api.agents[0], api.agents[1]);
    for agent in [a, b] {
        let (status, body) = post(
            &app,
            &format!("/api/v1/agents/{agent}/presence"),
            &api.token,
            json!({"connected": true}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    for round in 0..3 {
        let (load_a, load_b) = (open_count(&app, a).await, open_count(&app, b).await);
        let expected = if (load_a, a) < (load_b, b) { a } else { b };
        let id = new_conversation(&app, &api, &format!("busy-{round}")).await;
        let body = handoff(&app, &api, id).await;
        assert_eq!(body["status"], "assigned");
        assert_eq!(
            id_of(&body, "agent_id"),
            expected,
            "round {round}: loads {load_a} / {load_b}"
        );
    }
}

async fn connecting_an_agent_assigns_waiting_conversations_oldest_first(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let api = api(&app).await;
    always_open(&app, api.campaign).await;
    disconnect_all_agents(&app, api.campaign).await;
    let mut ours = Vec::new();
    for n in 0..3 {
        let id = new_conversation(&app, &api, &format!("wait-{n}")).await;
        assert_eq!(handoff(&app, &api, id).await["status"], "agents_offline");
        ours.push(id);
    }
    let waiting = count_for(
        &app,
        "select count(*) from conversations where campaign_id = $1 \
         and status in ('out_of_hours', 'agents_offline')",
        api.campaign,
    )
    .await;
    assert!(waiting >= 3);

    let agent = api.agents[2];
    let (status, body) = post(
        &app,
        &format!("/api/v1/agents/{agent}/presence"),
        &api.token,
        json!({"connected": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["assigned"].as_i64(), Some(waiting));
    assert_eq!(
        count_for(
            &app,
            "select count(*) from conversations where campaign_id = $1 \
             and status in ('out_of_hours', 'agents_offline')",
            api.campaign,
        )
        .await,
        0
    );
    for id in &ours {
        let (_, body) = get(&app, &format!("/api/v1/conversations/{id}"), &api.token).await;
        assert_eq!(body["status"], "assigned");
        assert_eq!(id_of(&body, "agent_id"), agent);
    }
    // The order of the assignments is the order the conversations started.
    let folios = app
        .folios_where(
            "select c.folio from conversation_events e join conversations c on c.id = e.conversation_id \
             where e.kind = 'assigned' \
             and c.campaign_id = (select id from campaigns where name = $1) \
             and e.actor_kind = 'system' order by e.at, e.id",
            CAMPAIGN,
        )
        .await;
    assert_eq!(folios.len() as i64, waiting);
    let mut sorted = folios.clone();
    sorted.sort();
    assert_eq!(folios, sorted, "oldest first");
}

async fn create_token_prints_a_token_that_is_stored_only_as_its_hash(backend: Backend) {
    let Some((store, url, _guard)) = fresh_store(backend).await else {
        return;
    };
    relevo::cli::seed_demo(&store).await.unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_relevo"))
        .args([
            "create-token",
            "--campaign",
            "ventas hogar",
            "--name",
            "bot",
        ])
        .env("DATABASE_URL", &url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run relevo");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.len() >= 32, "{token:?}");
    let campaign = store.campaign_id_by_name(CAMPAIGN).await.unwrap().unwrap();
    assert_eq!(
        store.integration_token_campaign(&token).await.unwrap(),
        Some(campaign)
    );
    let stored: Vec<String> = match &store {
        relevo::db::Store::Sqlite(p) => {
            sqlx::query_scalar("select token_hash from integration_tokens")
                .fetch_all(&p.read)
                .await
                .unwrap()
        }
        relevo::db::Store::Postgres(pg) => {
            sqlx::query_scalar("select token_hash from integration_tokens")
                .fetch_all(&pg.pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(stored, vec![relevo::db::token_hash(&token)]);

    let out = Command::new(env!("CARGO_BIN_EXE_relevo"))
        .args(["create-token", "--campaign", "No Existe"])
        .env("DATABASE_URL", &url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run relevo");
    assert!(!out.status.success());
}

/// Customer messages are committed in batches on both backends. Messages
/// queued behind a held writer are written together: each is answered as if
/// it had been delivered alone (a new customer, an open conversation, a
/// retry, a reactivation, a customer's second message right after its
/// first), and one that fails in the database fails alone while every other
/// message of its batch is recorded.
async fn a_batch_of_messages_answers_each_as_if_alone_and_a_failure_stays_its_own(
    backend: Backend,
) {
    use relevo::db::{ChannelAuth, InboundMessage, Store, Ts};
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let api = api(&app).await;
    let good = ChannelAuth {
        id: api.channel,
        campaign_id: api.campaign,
        active: true,
    };
    // A channel whose campaign does not exist: its new conversation breaks a
    // foreign key.
    let broken = ChannelAuth {
        campaign_id: Uuid::now_v7(),
        ..good
    };
    let message = |message_id: &str, from: &str| InboundMessage {
        message_id: message_id.into(),
        from: from.into(),
        name: Some("Lote".into()),
        text: format!("Hola ({message_id})"),
    };
    let deliver = |channel: ChannelAuth, message: InboundMessage| {
        let store = app.store.clone();
        async move {
            store
                .record_customer_message(&channel, &message, Ts::now())
                .await
        }
    };
    let open = deliver(good, message("wamid.mix-open", "5215599990001"))
        .await
        .unwrap();
    let seen = deliver(good, message("wamid.mix-seen", "5215599990002"))
        .await
        .unwrap();
    let cancelled = latest_cancelled(&app).await;
    let (_, before) = get(
        &app,
        &format!("/api/v1/conversations/{cancelled}"),
        &api.token,
    )
    .await;
    let returning = ChannelAuth {
        id: id_of(&before, "channel_id"),
        ..good
    };
    let returning_from = before["contact"]["external_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Hold the writer, so the deliveries below queue up and are committed
    // in batches once it is released: SQLite's one write connection; on
    // PostgreSQL, a lock every delivery's first statement waits for.
    let mut held_sqlite = None;
    let mut held_postgres = None;
    match &app.store {
        Store::Sqlite(pools) => held_sqlite = Some(pools.write.acquire().await.unwrap()),
        Store::Postgres(pg) => {
            let mut tx = pg.pool.begin().await.unwrap();
            sqlx::query("lock table inbound_messages in access exclusive mode")
                .execute(&mut *tx)
                .await
                .unwrap();
            held_postgres = Some(tx);
        }
    }
    let batch = [
        (good, message("wamid.mix-new", "5215599990003")),
        (good, message("wamid.mix-again", "5215599990001")),
        (good, message("wamid.mix-seen", "5215599990002")),
        (returning, message("wamid.mix-back", &returning_from)),
        (broken, message("wamid.mix-broken", "5215599990004")),
        (good, message("wamid.mix-new-2", "5215599990003")),
        (good, message("wamid.mix-other", "5215599990005")),
    ];
    let mut tasks = Vec::new();
    let queued = common::writes_queued(&app.store);
    for (n, (channel, message)) in (1..).zip(batch) {
        tasks.push(tokio::spawn(deliver(channel, message)));
        // In this order: each is queued before the next is sent.
        common::until_writes_queued(&app.store, queued + n).await;
    }
    drop(held_sqlite);
    if let Some(tx) = held_postgres {
        tx.rollback().await.unwrap();
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    let [new, again, retry, back, failed, new_2, other] = &outcomes[..] else {
        unreachable!("seven deliveries")
    };
    let new = new.as_ref().unwrap();
    assert!(
        new.started_conversation && !new.replayed && new.reactivates_id.is_none(),
        "{new:?}"
    );
    let again = again.as_ref().unwrap();
    assert_eq!(
        (
            again.conversation_id,
            again.folio,
            again.started_conversation
        ),
        (open.conversation_id, open.folio, false),
        "an open conversation continues"
    );
    assert_eq!(
        retry.as_ref().unwrap(),
        &relevo::db::InboundOutcome {
            replayed: true,
            ..seen.clone()
        },
        "a retry gets its first outcome"
    );
    let back = back.as_ref().unwrap();
    assert!(back.started_conversation, "{back:?}");
    assert_eq!(back.reactivates_id, Some(cancelled));
    assert!(failed.is_err(), "{failed:?}");
    let new_2 = new_2.as_ref().unwrap();
    assert_eq!(
        (new_2.conversation_id, new_2.started_conversation),
        (new.conversation_id, false),
        "a second message continues the conversation its first started"
    );
    let other = other.as_ref().unwrap();
    assert!(other.started_conversation, "{other:?}");
    let folios = [new.folio, back.folio, other.folio, open.folio, seen.folio];
    assert_eq!(
        folios
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len(),
        5,
        "every new conversation has its own folio: {folios:?}"
    );

    // Stored exactly once each; the failed message left nothing behind.
    assert_eq!(
        app.scalar_i64("select count(*) from inbound_messages where message_id like 'wamid.mix-%'")
            .await,
        7
    );
    assert_eq!(
        app.scalar_i64(
            "select count(*) from messages where message_id like 'wamid.mix-%' and direction = 'inbound'"
        )
        .await,
        7
    );
    assert_eq!(
        app.scalar_i64("select count(*) from contacts where external_id like '52155999900%'")
            .await,
        4
    );
    assert_eq!(
        app.scalar_i64(
            "select count(*) from conversations c join contacts k on k.id = c.contact_id \
             where k.external_id like '52155999900%'"
        )
        .await,
        4
    );
    assert_eq!(
        app.scalar_i64(
            "select count(*) from conversation_events e join conversations c on c.id = e.conversation_id \
             join contacts k on k.id = c.contact_id \
             where k.external_id like '52155999900%' and e.kind = 'created'"
        )
        .await,
        4
    );
}

/// A conversation's last activity only moves forward: a message written by
/// an instance whose clock lags the one that wrote the activity keeps the
/// later instant. A page of conversations started since a date relies on
/// the activity never being earlier than the start (see
/// `db::conversations`, "Activity never goes back").
async fn a_message_never_moves_a_conversations_activity_back(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let api = api(&app).await;
    let id = new_conversation(&app, &api, "clock").await;
    let folio = count_for(&app, "select folio from conversations where id = $1", id).await;
    // Written by an instance an hour ahead.
    // Whole seconds: stored the same on both backends.
    let ahead = relevo::db::Ts::new(
        chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 0) + chrono::Duration::hours(1),
    );
    app.set_activity(folio, ahead).await;

    let (status, body) = customer(&app, &api, "m-clock-2", "from-clock").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(id_of(&body, "conversation_id"), id, "the same conversation");
    assert_eq!(activity_of(&app, folio).await, ahead, "a customer message");

    let (status, body) = post(
        &app,
        &format!("/api/v1/conversations/{id}/bot-messages"),
        &api.token,
        json!({"message_id": "b-clock", "text": "Elige una opción"}),
    )
    .await;
    assert!(status.is_success(), "{status} {body}");
    assert_eq!(activity_of(&app, folio).await, ahead, "a bot turn");
}

async fn activity_of(app: &TestApp, folio: i64) -> relevo::db::Ts {
    app.store
        .conversation(&relevo::domain::Scope::All, folio)
        .await
        .unwrap()
        .unwrap()
        .last_activity_at
}
