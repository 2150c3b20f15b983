//! The OpenAPI document at `/api/v1/openapi.json` against the real API, on
//! both backends: it is OpenAPI 3.1, describes every route the API serves
//! (the list comes from the route table, so a new route without a
//! `#[utoipa::path]` fails here), and every answer of real calls (successes
//! and errors of each route) matches the schema the document gives for
//! that path and status.
//!
//! The schemas are checked closed: every object schema with `properties`
//! gets `additionalProperties: false` here (the published document stays
//! open, so adding a field is not a breaking change for consumers), so a
//! field the handler renames, adds or drops without the schema following
//! fails; `required` in the document catches a missing one.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{Backend, TestApp, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

on_both_backends!(every_route_is_described_and_every_answer_matches_its_schema);

const CAMPAIGN: &str = "Ventas Hogar";
const PREFIX: &str = relevo::http::api::PREFIX;

/// The document, and every (method, path template, status) a real answer
/// was checked against.
struct Document {
    doc: Value,
    checked: BTreeSet<(String, String, u16)>,
}

/// Adds `additionalProperties: false` to every object schema that lists
/// `properties` and says nothing about others.
fn close_objects(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            map.values_mut().for_each(close_objects);
        }
        Value::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}

impl Document {
    async fn fetch(app: &TestApp) -> Document {
        let response = app
            .client
            .get(app.url("/api/v1/openapi.json"))
            .send()
            .await
            .expect("GET openapi.json");
        assert_eq!(response.status(), StatusCode::OK);
        let cache = response.headers()["cache-control"].to_str().unwrap();
        assert!(
            cache.contains("public") && cache.contains("max-age"),
            "{cache}"
        );
        let kind = response.headers()["content-type"].to_str().unwrap();
        assert!(kind.starts_with("application/json"), "{kind}");
        let doc: Value = response.json().await.expect("the document is JSON");
        let mut document = Document {
            doc,
            checked: BTreeSet::new(),
        };
        let doc = document.doc.clone();
        document.check("get", "/openapi.json", StatusCode::OK, &doc);
        document
    }

    /// The operation of `method` on `template` (a path under the prefix).
    fn operation(&self, method: &str, template: &str) -> &Value {
        let operation = &self.doc["paths"][format!("{PREFIX}{template}")][method];
        assert!(
            operation.is_object(),
            "the document does not describe {method} {PREFIX}{template}"
        );
        operation
    }

    /// Checks `body`, answered with `status` by `method` `template`,
    /// against the document's schema for it.
    fn check(&mut self, method: &str, template: &str, status: StatusCode, body: &Value) {
        let response = &self.operation(method, template)["responses"][status.as_str()];
        let schema = response["content"]["application/json"]["schema"].clone();
        assert!(
            schema.is_object(),
            "no JSON schema for {status} of {method} {template}: {response}"
        );
        let mut components = self.doc["components"].clone();
        close_objects(&mut components);
        let mut schema = schema;
        close_objects(&mut schema);
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": components,
            "allOf": [schema],
        });
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&root)
            .unwrap_or_else(|e| panic!("schema of {status} {method} {template}: {e}"));
        let errors: Vec<String> = validator
            .iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{status} of {method} {template} does not match the document:\n{}\n{body:#}",
            errors.join("\n")
        );
        self.checked
            .insert((method.into(), template.into(), status.as_u16()));
    }

    /// Calls the API, checks the answer's status and body; returns the body.
    async fn call(
        &mut self,
        app: &TestApp,
        (method, template): (&str, &str),
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        expected: StatusCode,
    ) -> Value {
        let verb = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let (status, answer) = app.api_call(verb, path, token, body).await;
        assert_eq!(status, expected, "{method} {path}: {answer}");
        self.check(method, template, status, &answer);
        answer
    }

    /// Runs each case of `route` (path, token, body, expected status) in
    /// order; returns the answers.
    async fn cases(
        &mut self,
        app: &TestApp,
        route: (&str, &str),
        cases: Vec<(String, Option<&str>, Option<Value>, StatusCode)>,
    ) -> Vec<Value> {
        let mut answers = Vec::new();
        for (path, token, body, expected) in cases {
            answers.push(self.call(app, route, &path, token, body, expected).await);
        }
        answers
    }

    /// Sends a raw body (malformed or oversized JSON) and checks the answer.
    async fn call_raw(
        &mut self,
        app: &TestApp,
        (method, template): (&str, &str),
        path: &str,
        token: &str,
        body: String,
        expected: StatusCode,
    ) {
        let response = app
            .client
            .post(app.url(path))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        let status = response.status();
        let answer: Value = response.json().await.expect("JSON error");
        assert_eq!(status, expected, "{method} {path}: {answer}");
        self.check(method, template, status, &answer);
    }
}

/// The document is OpenAPI 3.1, describes exactly the routes of the route
/// table, names a known security scheme on every call but its own, and has
/// the webhook with the feed's `Event` as its body.
fn the_document_covers_the_route_table(doc: &Value) {
    assert!(
        doc["openapi"].as_str().unwrap_or("").starts_with("3.1."),
        "{}",
        doc["openapi"]
    );
    let routes: BTreeSet<(String, String)> = relevo::http::api::route_list()
        .into_iter()
        .map(|(method, path)| (method.as_str().to_lowercase(), format!("{PREFIX}{path}")))
        .collect();
    let mut described = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, _) in item.as_object().unwrap() {
            described.insert((method.clone(), path.clone()));
        }
    }
    assert_eq!(
        routes, described,
        "the document must describe exactly the routes of `http::api::routes`"
    );
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    for (method, path) in &routes {
        let operation = &doc["paths"][path][method];
        let security = operation["security"].as_array();
        if path.ends_with("/openapi.json") {
            assert!(security.is_none(), "the document needs no token");
            continue;
        }
        let names: Vec<&String> = security
            .unwrap_or_else(|| panic!("{method} {path} names no security"))
            .iter()
            .flat_map(|s| s.as_object().unwrap().keys())
            .collect();
        assert!(!names.is_empty(), "{method} {path}");
        for name in names {
            assert_eq!(schemes[name]["scheme"], "bearer", "{name}");
        }
        for status in ["401", "500", "503"] {
            assert!(
                operation["responses"][status].is_object(),
                "{method} {path} documents no {status}"
            );
        }
    }
    let webhook = &doc["webhooks"]["event"]["post"];
    assert_eq!(
        webhook["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Event"
    );
    let feed_item =
        &doc["components"]["schemas"]["EventPageBody"]["properties"]["events"]["items"]["$ref"];
    assert_eq!(*feed_item, "#/components/schemas/Event", "the same schema");
    let headers: BTreeSet<&str> = webhook["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["in"] == "header" && p["required"] == true)
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        headers,
        BTreeSet::from([
            "X-Relevo-Event-Id",
            "X-Relevo-Signature",
            "X-Relevo-Timestamp"
        ])
    );
}

/// Tokens and ids of Ventas Hogar.
struct Fixture {
    campaign: Uuid,
    channel: Uuid,
    other_channel: Uuid,
    channel_token: String,
    token: String,
    agents: Vec<Uuid>,
}

async fn fixture(app: &TestApp) -> Fixture {
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
        .create_integration_token(CAMPAIGN, "openapi", relevo::db::Ts::now())
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
    Fixture {
        campaign,
        channel: channels[0],
        other_channel: channels[1],
        channel_token,
        token,
        agents,
    }
}

/// Opens the campaign all week and disconnects its agents.
async fn open_and_empty(app: &TestApp, campaign: Uuid) {
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
}

fn uuid_of(value: &Value) -> Uuid {
    value
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .unwrap_or_else(|| panic!("not a uuid: {value}"))
}

const MESSAGES: (&str, &str) = ("post", "/channels/{channel_id}/messages");
const OUTBOX: (&str, &str) = ("get", "/channels/{channel_id}/outbox");
const DELIVERED: (&str, &str) = ("post", "/channels/{channel_id}/outbox/{id}/delivered");
const CONVERSATION: (&str, &str) = ("get", "/conversations/{id}");
const HANDOFF: (&str, &str) = ("post", "/conversations/{id}/handoff");
const AGENT_MESSAGES: (&str, &str) = ("post", "/conversations/{id}/agent-messages");
const BOT_MESSAGES: (&str, &str) = ("post", "/conversations/{id}/bot-messages");
const RESOLVE: (&str, &str) = ("post", "/conversations/{id}/resolve");
const PRESENCE: (&str, &str) = ("post", "/agents/{agent_id}/presence");
const EVENTS: (&str, &str) = ("get", "/events");

/// Customer messages: a new conversation, a continued one, and the errors.
async fn customer_messages(d: &mut Document, app: &TestApp, f: &Fixture) -> Uuid {
    use StatusCode as S;
    let path = format!("{PREFIX}/channels/{}/messages", f.channel);
    let foreign = format!("{PREFIX}/channels/{}/messages", f.other_channel);
    let bad_id = format!("{PREFIX}/channels/nope/messages");
    let token = Some(f.channel_token.as_str());
    let message = |id: &str| {
        Some(json!({"message_id": id, "from": "5215500001111", "name": "Ana", "text": "Hola"}))
    };
    let empty_id = Some(json!({"message_id": "", "from": "x", "text": "Hola"}));
    let no_id = Some(json!({"from": "x", "text": "Hola"}));
    let answers = d
        .cases(
            app,
            MESSAGES,
            vec![
                (path.clone(), token, message("oa-1"), S::CREATED),
                (path.clone(), token, message("oa-2"), S::OK),
                (path.clone(), None, message("oa-3"), S::UNAUTHORIZED),
                (path.clone(), token, empty_id, S::UNPROCESSABLE_ENTITY),
                (path.clone(), token, no_id, S::UNPROCESSABLE_ENTITY),
                (foreign, token, message("oa-4"), S::NOT_FOUND),
                (bad_id, token, message("oa-5"), S::BAD_REQUEST),
            ],
        )
        .await;
    let token = &f.channel_token;
    d.call_raw(
        app,
        MESSAGES,
        &path,
        token,
        "{not json".into(),
        S::BAD_REQUEST,
    )
    .await;
    let huge = json!({"message_id": "oa-6", "from": "x", "text": "a".repeat(70 * 1024)});
    d.call_raw(
        app,
        MESSAGES,
        &path,
        token,
        huge.to_string(),
        S::PAYLOAD_TOO_LARGE,
    )
    .await;
    uuid_of(&answers[0]["conversation_id"])
}

/// Presence: connecting the fixture's first agent, and the errors.
async fn presence_calls(d: &mut Document, app: &TestApp, f: &Fixture) {
    use StatusCode as S;
    let token = Some(f.token.as_str());
    let path = format!("{PREFIX}/agents/{}/presence", f.agents[0]);
    let unknown = format!("{PREFIX}/agents/{}/presence", Uuid::new_v4());
    let connect = Some(json!({"connected": true}));
    d.cases(
        app,
        PRESENCE,
        vec![
            (path.clone(), token, connect.clone(), S::OK),
            (
                path.clone(),
                token,
                Some(json!({"connected": "yes"})),
                S::UNPROCESSABLE_ENTITY,
            ),
            (unknown, token, connect.clone(), S::NOT_FOUND),
            (path, None, connect, S::UNAUTHORIZED),
        ],
    )
    .await;
}

/// Bot turns, the hand-off and an agent's replies on conversation `id`.
async fn handoff_and_replies(d: &mut Document, app: &TestApp, f: &Fixture, id: Uuid) {
    use StatusCode as S;
    let token = Some(f.token.as_str());
    let (agent, other) = (f.agents[0], f.agents[1]);
    let bot = format!("{PREFIX}/conversations/{id}/bot-messages");
    let turn = Some(json!({"message_id": "bot-1", "text": "¿En qué te ayudo?"}));
    let blank = Some(json!({"message_id": " ", "text": "x"}));
    d.cases(
        app,
        BOT_MESSAGES,
        vec![
            (bot.clone(), token, turn.clone(), S::CREATED),
            (bot.clone(), token, turn, S::OK),
            (bot, token, blank, S::UNPROCESSABLE_ENTITY),
        ],
    )
    .await;
    let handoff = format!("{PREFIX}/conversations/{id}/handoff");
    let bad_id = format!("{PREFIX}/conversations/nope/handoff");
    let unknown = format!("{PREFIX}/conversations/{}/handoff", Uuid::new_v4());
    let empty = Some(json!({}));
    let answers = d
        .cases(
            app,
            HANDOFF,
            vec![
                (handoff.clone(), token, empty.clone(), S::OK),
                (handoff.clone(), token, empty.clone(), S::CONFLICT),
                (bad_id, token, empty.clone(), S::BAD_REQUEST),
                (unknown, token, empty.clone(), S::NOT_FOUND),
                (handoff, None, empty, S::UNAUTHORIZED),
            ],
        )
        .await;
    assert_eq!(answers[0]["status"], "assigned", "{}", answers[0]);
    let reply = format!("{PREFIX}/conversations/{id}/agent-messages");
    let text = |agent: &dyn std::fmt::Display| {
        Some(json!({"agent_id": agent.to_string(), "text": "Hola"}))
    };
    d.cases(
        app,
        AGENT_MESSAGES,
        vec![
            (reply.clone(), token, text(&agent), S::OK),
            (reply.clone(), token, text(&other), S::CONFLICT),
            (reply, token, text(&"nope"), S::UNPROCESSABLE_ENTITY),
        ],
    )
    .await;
}

/// Reading conversation `id` open and resolved, and resolving it.
async fn resolve_and_read(d: &mut Document, app: &TestApp, f: &Fixture, id: Uuid) {
    use StatusCode as S;
    let token = Some(f.token.as_str());
    let agent = f.agents[0];
    let conversation = format!("{PREFIX}/conversations/{id}");
    let open = d
        .call(app, CONVERSATION, &conversation, token, None, S::OK)
        .await;
    assert_eq!(open["closure"]["category"], Value::Null, "{open}");
    let category = app
        .uuids_where(
            "select c.id from closure_categories c join campaigns p on p.id = c.campaign_id \
             where c.name = 'Atendida por otro medio' and p.name = $1",
            CAMPAIGN,
        )
        .await[0];
    let resolve = format!("{conversation}/resolve");
    let bad = Some(json!({"agent_id": agent, "category_id": "nope"}));
    let good = Some(json!({"agent_id": agent, "category_id": category, "comment": "Listo"}));
    d.cases(
        app,
        RESOLVE,
        vec![
            (resolve.clone(), token, bad, S::UNPROCESSABLE_ENTITY),
            (resolve.clone(), token, good, S::OK),
            (
                resolve,
                token,
                Some(json!({"agent_id": agent})),
                S::CONFLICT,
            ),
        ],
    )
    .await;
    let late = Some(json!({"message_id": "bot-2", "text": "¿Algo más?"}));
    let bot = format!("{conversation}/bot-messages");
    d.call(app, BOT_MESSAGES, &bot, token, late, S::CONFLICT)
        .await;
    let unknown = format!("{PREFIX}/conversations/{}", Uuid::new_v4());
    let answers = d
        .cases(
            app,
            CONVERSATION,
            vec![
                (conversation.clone(), token, None, S::OK),
                (unknown, token, None, S::NOT_FOUND),
                (conversation, Some("not-a-token"), None, S::UNAUTHORIZED),
            ],
        )
        .await;
    assert_eq!(uuid_of(&answers[0]["closure"]["category_id"]), category);
}

/// A nudging rule's first pass, so the outbox, a conversation's nudges and
/// the feed's `customer_nudge` have something to show (its second pass,
/// later, cancels); returns a nudged conversation of the fixture's channel.
async fn run_a_nudging_rule(app: &TestApp, f: &Fixture) -> Uuid {
    use chrono::{Duration as Span, Utc};
    use relevo::db::{NewAutoCancelRule, Ts};
    use relevo::domain::Status;
    use relevo::services::auto_cancel::Measure;
    let (status, first) = app
        .api_call(
            reqwest::Method::POST,
            &format!("{PREFIX}/channels/{}/messages", f.channel),
            Some(&f.channel_token),
            Some(json!({"message_id": "oa-nudge", "from": "5215500002222", "text": "Hola"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let creator = app
        .store
        .user_by_email(common::SUPER_EMAIL)
        .await
        .unwrap()
        .unwrap()
        .id;
    let category = app
        .uuids_where(
            "select c.id from closure_categories c join campaigns p on p.id = c.campaign_id \
             where c.name = 'Flujo atascado' and p.name = $1",
            CAMPAIGN,
        )
        .await[0];
    app.store
        .create_auto_cancel_rule(&NewAutoCancelRule {
            campaign_id: f.campaign,
            name: "Bot atascado".into(),
            status: Status::Icr,
            measure: Measure::NoCustomerMessage,
            window_minutes: 30,
            category_id: category,
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
    let now = Utc::now() + Span::days(2);
    let pass = relevo::services::auto_cancel::run_pass(&app.store, now)
        .await
        .unwrap();
    assert!(pass.nudged > 0);
    uuid_of(&first["conversation_id"])
}

/// The outbox and its acknowledgement; the nudged conversation's nudges.
async fn outbox_calls(d: &mut Document, app: &TestApp, f: &Fixture, nudged: Uuid) {
    use StatusCode as S;
    let token = Some(f.channel_token.as_str());
    let outbox = format!("{PREFIX}/channels/{}/outbox", f.channel);
    let answers = d
        .cases(
            app,
            OUTBOX,
            vec![
                (format!("{outbox}?limit=200"), token, None, S::OK),
                (
                    format!("{outbox}?limit=0"),
                    token,
                    None,
                    S::UNPROCESSABLE_ENTITY,
                ),
                (outbox.clone(), None, None, S::UNAUTHORIZED),
            ],
        )
        .await;
    let item = answers[0]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| uuid_of(&i["conversation_id"]) == nudged)
        .unwrap_or_else(|| panic!("the nudge is in the outbox: {}", answers[0]));
    let delivered = format!("{outbox}/{}/delivered", uuid_of(&item["id"]));
    let unknown = format!("{outbox}/{}/delivered", Uuid::new_v4());
    let answers = d
        .cases(
            app,
            DELIVERED,
            vec![
                (delivered.clone(), token, None, S::OK),
                (delivered, token, None, S::OK),
                (unknown, token, None, S::NOT_FOUND),
                (
                    format!("{outbox}/nope/delivered"),
                    token,
                    None,
                    S::BAD_REQUEST,
                ),
            ],
        )
        .await;
    assert_eq!(answers[1]["already_delivered"], true);
    let path = format!("{PREFIX}/conversations/{nudged}");
    let detail = d
        .call(app, CONVERSATION, &path, Some(&f.token), None, S::OK)
        .await;
    assert!(detail["nudges"][0]["delivered_at"].is_string(), "{detail}");
}

/// The feed, from the oldest event to the newest, and its errors; the
/// expired cursor last (it purges the oldest events).
async fn feed_calls(d: &mut Document, app: &TestApp, f: &Fixture) {
    use StatusCode as S;
    let token = Some(f.token.as_str());
    let mut after = String::new();
    let mut kinds = BTreeMap::<String, usize>::new();
    loop {
        let path = format!("{PREFIX}/events?limit=1000{after}");
        let page = d.call(app, EVENTS, &path, token, None, S::OK).await;
        let events = page["events"].as_array().unwrap();
        for event in events {
            *kinds
                .entry(event["type"].as_str().unwrap().into())
                .or_default() += 1;
        }
        if events.is_empty() {
            break;
        }
        after = format!("&after={}", page["next"]);
    }
    for kind in [
        "created",
        "reactivated",
        "handed_off",
        "first_reply",
        "resolved",
        "cancelled",
        "message_received",
        "message_sent",
        "customer_nudge",
    ] {
        assert!(
            kinds.contains_key(kind),
            "no {kind} event was checked: {kinds:?}"
        );
    }
    let events = format!("{PREFIX}/events");
    d.cases(
        app,
        EVENTS,
        vec![
            (format!("{events}?after=abc"), token, None, S::BAD_REQUEST),
            (
                format!("{events}?limit=0"),
                token,
                None,
                S::UNPROCESSABLE_ENTITY,
            ),
            (events.clone(), None, None, S::UNAUTHORIZED),
        ],
    )
    .await;
    let far = chrono::Utc::now() + chrono::Duration::days(400);
    let purged = relevo::services::events::purge_older_than(&app.store, 1, far, Some(1))
        .await
        .unwrap();
    assert!(purged > 0);
    let expired = format!("{events}?after=0");
    d.call(app, EVENTS, &expired, token, None, S::GONE).await;
}

/// Every route was checked with a success and an error answer, and every
/// success status the document gives was seen.
fn every_route_was_exercised(d: &Document) {
    for (method, template) in relevo::http::api::route_list() {
        let method = method.as_str().to_lowercase();
        let statuses: Vec<u16> = d
            .checked
            .iter()
            .filter(|(m, t, _)| *m == method && t == template)
            .map(|c| c.2)
            .collect();
        let documented: Vec<u16> = d.operation(&method, template)["responses"]
            .as_object()
            .unwrap()
            .keys()
            .filter_map(|s| s.parse().ok())
            .collect();
        for success in documented.iter().filter(|s| (200..300).contains(*s)) {
            assert!(
                statuses.contains(success),
                "{method} {template}: no {success} answer was checked ({statuses:?})"
            );
        }
        if template != "/openapi.json" {
            assert!(
                statuses.iter().any(|s| *s >= 400),
                "{method} {template}: no error answer was checked"
            );
        }
    }
}

async fn every_route_is_described_and_every_answer_matches_its_schema(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut d = Document::fetch(&app).await;
    the_document_covers_the_route_table(&d.doc);
    let f = fixture(&app).await;
    open_and_empty(&app, f.campaign).await;
    let id = customer_messages(&mut d, &app, &f).await;
    presence_calls(&mut d, &app, &f).await;
    handoff_and_replies(&mut d, &app, &f, id).await;
    resolve_and_read(&mut d, &app, &f, id).await;
    // After the resolution the customer's next message starts a new
    // conversation linked to it (`reactivated`).
    let path = format!("{PREFIX}/channels/{}/messages", f.channel);
    let again = json!({"message_id": "oa-again", "from": "5215500001111", "text": "Otra vez"});
    let next = d
        .call(
            &app,
            MESSAGES,
            &path,
            Some(&f.channel_token),
            Some(again),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(uuid_of(&next["reactivates_id"]), id);
    let nudged = run_a_nudging_rule(&app, &f).await;
    outbox_calls(&mut d, &app, &f, nudged).await;
    let later = chrono::Utc::now() + chrono::Duration::days(2) + chrono::Duration::minutes(10);
    let pass = relevo::services::auto_cancel::run_pass(&app.store, later)
        .await
        .unwrap();
    assert!(pass.cancelled > 0);
    feed_calls(&mut d, &app, &f).await;
    every_route_was_exercised(&d);
}
