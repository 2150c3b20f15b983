//! Webhooks on both backends, against a receiver on 127.0.0.1: saved on
//! the campaign page (secret shown once), signed deliveries of the
//! subscribed types in order, retries after a 500 or a redirect, nothing
//! lost when Relevo is killed mid-delivery, one deliverer among several
//! instances, the switch-off after 24 hours of failures, and the SSRF
//! guard on save and on every delivery.

mod common;

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use common::process::RelevoProcess;
use common::{Backend, TestApp, csrf_in, field_value, spawn_app_configured};
use relevo::db::{Store, Ts};
use relevo::domain::webhook::verify;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

on_both_backends!(
    a_webhook_saved_on_the_campaign_page_gets_signed_deliveries_of_its_types,
    a_failing_receiver_gets_the_same_event_again_before_the_next_one,
    a_slow_receiver_times_out_after_ten_seconds_and_gets_the_event_again,
    a_webhook_switched_off_during_a_delivery_stays_off,
    a_secret_renewed_during_a_run_signs_the_deliveries_after_the_batch_under_way,
    a_webhook_failing_for_a_day_is_switched_off_with_a_notice,
    the_guard_refuses_destinations_that_are_not_allowed_on_save_and_on_delivery,
    two_instances_do_not_deliver_the_same_events,
    every_event_reaches_the_receiver_after_relevo_is_killed_mid_delivery,
);

const CAMPAIGN: &str = "Ventas Hogar";
/// Longest a test waits for deliveries.
const PATIENCE: Duration = Duration::from_secs(20);

/// How the receiver answers one request.
#[derive(Debug, Clone)]
enum Answer {
    Status(u16),
    Redirect(String),
    /// Holds the request this long before answering 200.
    Hang(Duration),
}

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Delivery {
    id: i64,
    timestamp: i64,
    signature: String,
    content_type: String,
    body: Vec<u8>,
    json: Value,
}

#[derive(Default)]
struct Script {
    answers: Mutex<VecDeque<Answer>>,
    received: Mutex<Vec<Delivery>>,
}

/// A webhook receiver on 127.0.0.1: records every request, answers from
/// its script (200 once the script is empty).
struct Receiver {
    url: String,
    script: Arc<Script>,
    _server: actix_web::dev::ServerHandle,
}

async fn record(req: HttpRequest, body: web::Bytes, script: web::Data<Script>) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let delivery = Delivery {
        id: header("X-Relevo-Event-Id").parse().unwrap_or(-1),
        timestamp: header("X-Relevo-Timestamp").parse().unwrap_or(-1),
        signature: header("X-Relevo-Signature"),
        content_type: header("Content-Type"),
        json: serde_json::from_slice(&body).unwrap_or(Value::Null),
        body: body.to_vec(),
    };
    script.received.lock().unwrap().push(delivery);
    let answer = script.answers.lock().unwrap().pop_front();
    match answer {
        None | Some(Answer::Status(200)) => HttpResponse::Ok().body("ok"),
        Some(Answer::Status(code)) => {
            HttpResponse::build(actix_web::http::StatusCode::from_u16(code).unwrap()).finish()
        }
        Some(Answer::Redirect(to)) => HttpResponse::Found()
            .insert_header(("Location", to))
            .finish(),
        Some(Answer::Hang(wait)) => {
            tokio::time::sleep(wait).await;
            HttpResponse::Ok().finish()
        }
    }
}

impl Receiver {
    fn start(answers: Vec<Answer>) -> Receiver {
        let script = Arc::new(Script {
            answers: Mutex::new(answers.into()),
            received: Mutex::default(),
        });
        let data = web::Data::from(script.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(record))
        })
        .workers(2)
        .disable_signals()
        .bind("127.0.0.1:0")
        .expect("bind the receiver");
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Receiver {
            url: format!("http://127.0.0.1:{port}/hooks/relevo"),
            script,
            _server: handle,
        }
    }

    fn received(&self) -> Vec<Delivery> {
        self.script.received.lock().unwrap().clone()
    }

    /// Waits (bounded) until `done` holds for what was received.
    async fn until(&self, what: &str, done: impl Fn(&[Delivery]) -> bool) -> Vec<Delivery> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let received = self.received();
            if done(&received) {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: received {:?}",
                received.iter().map(|d| d.id).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn app_allowing(backend: Backend, allow: &str) -> TestApp {
    let allow = allow.to_owned();
    spawn_app_configured(backend, true, move |settings| {
        settings.webhook_allow = allow.parse().unwrap();
    })
    .await
    .expect("app")
}

/// An open conversation of the campaign that the Super Administrador can cancel.
async fn open_folios(app: &TestApp) -> Vec<i64> {
    app.folios_where(
        "select c.folio from conversations c join campaigns p on p.id = c.campaign_id \
         where p.name = $1 and c.status in ('assigned', 'in_progress') order by c.folio",
        CAMPAIGN,
    )
    .await
}

/// Saves a webhook through the campaign page; returns the answer page.
async fn save_webhook(app: &TestApp, campaign: Uuid, url: &str, types: &[&str]) -> common::Page {
    let list = app.get(&format!("/campanas/{campaign}/webhooks")).await;
    assert_eq!(list.status, StatusCode::OK);
    let csrf = csrf_in(&list.body);
    let mut form = vec![("_csrf", csrf.as_str()), ("url", url)];
    form.extend(types.iter().map(|t| ("tipos", *t)));
    app.post_form(&format!("/campanas/{campaign}/webhooks"), &form)
        .await
}

async fn webhook_count(app: &TestApp) -> i64 {
    app.scalar_i64("select count(*) from webhooks").await
}

/// Event `id` as the integration token's feed answers it.
async fn feed_event(app: &TestApp, token: &str, id: i64) -> Value {
    let (status, body) = app
        .api_call(
            reqwest::Method::GET,
            &format!("/api/v1/events?after={}&limit=1", id - 1),
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let event = body["events"][0].clone();
    assert_eq!(event["id"], id);
    event
}

async fn a_webhook_saved_on_the_campaign_page_gets_signed_deliveries_of_its_types(
    backend: Backend,
) {
    let app = app_allowing(backend, "127.0.0.1").await;
    let receiver = Receiver::start(vec![]);
    app.login_as_super().await;
    let campaign = app.campaign_id(CAMPAIGN).await;
    let saved = save_webhook(&app, campaign, &receiver.url, &["cancelled", "reassigned"]).await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    let cache = saved
        .headers
        .get("cache-control")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        cache.starts_with("no-store"),
        "a page with a secret is not cached: {cache}"
    );
    let secret = field_value(&saved.body, "secreto");
    assert!(secret.starts_with("whsec_") && secret.len() > 40);
    assert!(saved.body.contains("no se volverá a mostrar"));
    // Shown once: the webhook's page does not show it again.
    let id: Uuid = app
        .uuids_where("select id from webhooks where url = $1", &receiver.url)
        .await[0];
    let page = app
        .get(&format!("/campanas/{campaign}/webhooks/{id}"))
        .await;
    assert!(!page.body.contains(&secret));

    // Two cancels: two deliveries of the subscribed type, and nothing for
    // the other events of the change (their messages, say).
    let folios = open_folios(&app).await;
    for folio in &folios[..2] {
        let done = app.cancel_through_form(&app.client, *folio).await;
        assert!(done.status.is_redirection() || done.status.is_success());
    }
    let received = receiver.until("two cancels", |r| r.len() >= 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received_now = receiver.received();
    assert_eq!(received_now.len(), 2, "only the subscribed types");
    let (_, token) = app
        .store
        .create_integration_token(CAMPAIGN, "webhooks", Ts::now())
        .await
        .unwrap()
        .unwrap();
    for (delivery, folio) in received.iter().zip(&folios[..2]) {
        assert_eq!(delivery.content_type, "application/json");
        assert!(
            verify(
                &secret,
                delivery.timestamp,
                &delivery.body,
                &delivery.signature
            ),
            "signature of {}",
            delivery.id
        );
        assert!(!verify(
            "whsec_wrong",
            delivery.timestamp,
            &delivery.body,
            &delivery.signature
        ));
        assert!((chrono::Utc::now().timestamp() - delivery.timestamp).abs() < 60);
        assert_eq!(delivery.json["type"], "cancelled");
        assert_eq!(delivery.json["id"], delivery.id);
        assert_eq!(delivery.json["conversation"]["folio"], *folio);
        assert_eq!(delivery.json["actor"]["kind"], "administrator");
        assert!(delivery.json["closure"]["category"].is_string());
        // The body is the feed's event, byte for byte as JSON.
        assert_eq!(delivery.json, feed_event(&app, &token, delivery.id).await);
    }
    assert!(received[0].id < received[1].id, "in the log's order");

    // The webhook page lists both attempts, newest first, with their status.
    let page = app
        .get(&format!("/campanas/{campaign}/webhooks/{id}"))
        .await;
    assert_eq!(page.body.matches("webhook-ok").count(), 2);
    assert!(
        page.body
            .contains(&format!("{} · cancelled", received[1].id))
    );
    // And the audit log says who created it.
    let audited = app
        .scalar_i64("select count(*) from audit_log where action = 'webhook.create'")
        .await;
    assert_eq!(audited, 1);
}

async fn a_failing_receiver_gets_the_same_event_again_before_the_next_one(backend: Backend) {
    let app = app_allowing(backend, "127.0.0.1").await;
    let receiver = Receiver::start(vec![
        Answer::Redirect("http://127.0.0.1:9/elsewhere".into()),
        Answer::Status(500),
    ]);
    app.login_as_super().await;
    let campaign = app.campaign_id(CAMPAIGN).await;
    let saved = save_webhook(&app, campaign, &receiver.url, &["cancelled"]).await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    let folios = open_folios(&app).await;
    for folio in &folios[..2] {
        app.cancel_through_form(&app.client, *folio).await;
    }
    // Redirect, 500, then 200 for the first; 200 for the second.
    let received = receiver
        .until("retries then the next event", |r| r.len() >= 4)
        .await;
    let ids: Vec<i64> = received.iter().map(|d| d.id).collect();
    assert_eq!(ids[0], ids[1], "the same event again: {ids:?}");
    assert_eq!(ids[1], ids[2], "and again: {ids:?}");
    assert!(ids[3] > ids[2], "then the next one: {ids:?}");
    // Each retry is signed afresh (its own timestamp may differ).
    let id: Uuid = app
        .uuids_where("select id from webhooks where url = $1", &receiver.url)
        .await[0];
    let page = app
        .get(&format!("/campanas/{campaign}/webhooks/{id}"))
        .await;
    assert!(page.body.contains("no siguen"), "the redirect is explained");
    assert!(page.body.contains(">302<"));
    assert!(page.body.contains(">500<"));
    assert_eq!(page.body.matches("webhook-failed").count(), 2);
    assert_eq!(page.body.matches("webhook-ok").count(), 2);
    // Healthy again: no failure streak left.
    let failures = app
        .scalar_i64("select cast(failures as bigint) from webhooks")
        .await;
    assert_eq!(failures, 0);
}

async fn a_slow_receiver_times_out_after_ten_seconds_and_gets_the_event_again(backend: Backend) {
    let app = app_allowing(backend, "127.0.0.1").await;
    let receiver = Receiver::start(vec![Answer::Hang(Duration::from_secs(15))]);
    app.login_as_super().await;
    let campaign = app.campaign_id(CAMPAIGN).await;
    let saved = save_webhook(&app, campaign, &receiver.url, &["cancelled"]).await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    let started = Instant::now();
    app.cancel_through_form(&app.client, open_folios(&app).await[0])
        .await;
    let received = receiver
        .until("the event again after the timeout", |r| r.len() >= 2)
        .await;
    assert_eq!(received[0].id, received[1].id);
    assert!(
        started.elapsed() >= Duration::from_secs(10),
        "not given up before 10 s"
    );
    let id: Uuid = app
        .uuids_where("select id from webhooks where url = $1", &receiver.url)
        .await[0];
    let deadline = Instant::now() + PATIENCE;
    loop {
        let page = app
            .get(&format!("/campanas/{campaign}/webhooks/{id}"))
            .await;
        if page.body.contains("webhook-ok") {
            assert!(page.body.contains("Sin respuesta completa en 10 s"));
            assert!(page.body.contains("sin respuesta"));
            break;
        }
        assert!(Instant::now() < deadline, "the retry was not recorded");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn a_webhook_switched_off_during_a_delivery_stays_off(backend: Backend) {
    let app = app_allowing(backend, "127.0.0.1").await;
    let receiver = Receiver::start(vec![Answer::Hang(Duration::from_secs(3))]);
    app.login_as_super().await;
    let campaign = app.campaign_id(CAMPAIGN).await;
    let saved = save_webhook(&app, campaign, &receiver.url, &["cancelled"]).await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    let id: Uuid = app
        .uuids_where("select id from webhooks where url = $1", &receiver.url)
        .await[0];
    let folios = open_folios(&app).await;
    app.cancel_through_form(&app.client, folios[0]).await;
    receiver.until("the held delivery", |r| !r.is_empty()).await;
    // Switched off while that delivery waits for its answer...
    let page = app
        .get(&format!("/campanas/{campaign}/webhooks/{id}"))
        .await;
    let off = app
        .post_form(
            &format!("/campanas/{campaign}/webhooks/{id}"),
            &[
                ("_csrf", &csrf_in(&page.body)),
                ("url", &receiver.url),
                ("tipos", "cancelled"),
            ],
        )
        .await;
    assert_eq!(off.status, StatusCode::SEE_OTHER);
    // ...the batch that was under way records its attempt, and no more.
    app.cancel_through_form(&app.client, folios[1]).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let enabled = app
        .scalar_i64("select count(*) from webhooks where enabled")
        .await;
    assert_eq!(enabled, 0, "still off");
    assert_eq!(
        receiver.received().len(),
        1,
        "nothing after it was switched off"
    );
    let page = app.get(&format!("/campanas/{campaign}/webhooks")).await;
    assert!(page.body.contains("Desactivado: no recibe entregas"));
}

/// "Las entregas siguientes se firmarán con el nuevo secreto": a run that
/// was delivering a backlog when the secret was renewed signs with the new
/// one from its next batch (at most [`relevo::services::webhooks::BATCH`]
/// events later), not until the backlog is drained.
async fn a_secret_renewed_during_a_run_signs_the_deliveries_after_the_batch_under_way(
    backend: Backend,
) {
    let app = app_allowing(backend, "127.0.0.1").await;
    let receiver = Receiver::start(vec![Answer::Hang(Duration::from_secs(2))]);
    let campaign = app.campaign_id(CAMPAIGN).await;
    let actor = app
        .uuids_where("select id from users where email = $1", common::SUPER_EMAIL)
        .await[0];
    let input = |enabled| relevo::db::WebhookInput {
        url: &receiver.url,
        event_types: "created message_received",
        enabled,
    };
    let (id, old_secret) = app
        .store
        .create_webhook(actor, campaign, input(false), Ts::now())
        .await
        .unwrap()
        .unwrap();
    // A backlog of more than one batch, then the webhook switched on.
    let (channel, token) = channel(&app.store, campaign).await;
    customers_write(&app.address, channel, &token, "r", 60).await;
    let updated = app
        .store
        .update_webhook(actor, campaign, id, input(true), Ts::now())
        .await
        .unwrap()
        .unwrap();
    assert!(updated);
    // Renewed while the run's first delivery waits for its answer.
    receiver
        .until("the held first delivery", |r| !r.is_empty())
        .await;
    let new_secret = app
        .store
        .rotate_webhook_secret(actor, campaign, id, Ts::now())
        .await
        .unwrap()
        .unwrap();
    let received = receiver.until("the backlog", |r| r.len() >= 120).await;
    let signed_with = |d: &Delivery| match (
        verify(&old_secret, d.timestamp, &d.body, &d.signature),
        verify(&new_secret, d.timestamp, &d.body, &d.signature),
    ) {
        (true, false) => "old",
        (false, true) => "new",
        other => panic!("delivery {} signed with neither secret: {other:?}", d.id),
    };
    let secrets: Vec<&str> = received.iter().map(signed_with).collect();
    let old = secrets.iter().take_while(|s| **s == "old").count();
    assert!(
        secrets[old..].iter().all(|s| *s == "new"),
        "once renewed, never the old secret again: {secrets:?}"
    );
    assert!(
        (1..=relevo::services::webhooks::BATCH as usize).contains(&old),
        "the old secret signs the batch under way and no more: {old} of {}",
        secrets.len()
    );
}

async fn a_webhook_failing_for_a_day_is_switched_off_with_a_notice(backend: Backend) {
    let app = app_allowing(backend, "127.0.0.1").await;
    let receiver = Receiver::start(vec![Answer::Status(503)]);
    let campaign = app.campaign_id(CAMPAIGN).await;
    let actor = app
        .uuids_where("select id from users where email = $1", common::SUPER_EMAIL)
        .await[0];
    let (id, _) = app
        .store
        .create_webhook(
            actor,
            campaign,
            relevo::db::WebhookInput {
                url: &receiver.url,
                event_types: "cancelled",
                enabled: true,
            },
            Ts::now(),
        )
        .await
        .unwrap()
        .unwrap();
    // It has been failing for 25 hours: the next failure is the last one.
    let day_ago = Ts::new(chrono::Utc::now() - chrono::TimeDelta::hours(25));
    set_failing_since(&app.store, id, day_ago).await;
    app.login_as_super().await;
    let folio = open_folios(&app).await[0];
    app.cancel_through_form(&app.client, folio).await;
    receiver.until("one attempt", |r| !r.is_empty()).await;
    let deadline = Instant::now() + PATIENCE;
    let page = loop {
        let page = app
            .get(&format!("/campanas/{campaign}/webhooks/{id}"))
            .await;
        if page.body.contains("Relevo lo desactivó") || Instant::now() > deadline {
            break page;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(page.body.contains("Relevo lo desactivó"), "{}", page.body);
    assert!(page.body.contains("503"), "the last error is shown");
    let list = app.get(&format!("/campanas/{campaign}/webhooks")).await;
    assert!(list.body.contains("Desactivado por fallas"));
    // Switched off: no more attempts, whatever happens.
    let before = receiver.received().len();
    app.cancel_through_form(&app.client, open_folios(&app).await[0])
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.received().len(), before);
    // Switching it on again clears the notice and delivers what was left.
    let csrf = csrf_in(&page.body);
    let saved = app
        .post_form(
            &format!("/campanas/{campaign}/webhooks/{id}"),
            &[
                ("_csrf", &csrf),
                ("url", &receiver.url),
                ("tipos", "cancelled"),
                ("activo", "si"),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    // The event that failed, then the one made while it was off.
    let received = receiver
        .until("the events it missed", |r| r.len() >= before + 2)
        .await;
    assert_eq!(received[before].id, received[0].id, "from the failed one");
    assert!(received[before + 1].id > received[0].id);
    let page = app
        .get(&format!("/campanas/{campaign}/webhooks/{id}"))
        .await;
    assert!(!page.body.contains("Relevo lo desactivó"));
}

/// Runs `$body` with `$pool` bound to the store's pool of either backend
/// (a macro: each backend's pool is its own type).
macro_rules! with_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match $store {
            Store::Sqlite(pools) => {
                let $pool = &pools.write;
                $body
            }
            Store::Postgres(pg) => {
                let $pool = &pg.pool;
                $body
            }
        }
    };
}

async fn set_failing_since(store: &Store, id: Uuid, since: Ts) {
    with_pool!(store, |pool| {
        sqlx::query("update webhooks set failing_since = $1, failures = 40 where id = $2")
            .bind(since)
            .bind(id)
            .execute(pool)
            .await
            .unwrap();
    })
}

async fn the_guard_refuses_destinations_that_are_not_allowed_on_save_and_on_delivery(
    backend: Backend,
) {
    // Nothing listed: webhooks are off, and the page says why.
    let closed = app_allowing(backend, "").await;
    closed.login_as_super().await;
    let campaign = closed.campaign_id(CAMPAIGN).await;
    let list = closed.get(&format!("/campanas/{campaign}/webhooks")).await;
    assert!(
        list.body
            .contains("Los webhooks están desactivados en este servidor")
    );
    let refused = save_webhook(
        &closed,
        campaign,
        "https://hooks.example.com/x",
        &["cancelled"],
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body.contains("RELEVO_WEBHOOK_ALLOW"));
    assert_eq!(webhook_count(&closed).await, 0);

    // Loopback by address only, and one name.
    let app = app_allowing(backend, "127.0.0.1, hooks.example.com").await;
    app.login_as_super().await;
    let campaign = app.campaign_id(CAMPAIGN).await;
    for (url, says) in [
        ("no es una url", "Escribe una URL completa"),
        ("ftp://127.0.0.1/x", "Solo se admiten URL http o https"),
        ("file:///etc/passwd", "Solo se admiten URL http o https"),
        ("http://user:pw@127.0.0.1/x", "no debe incluir usuario"),
        (
            "http://169.254.169.254/latest/meta-data",
            "no está entre los destinos permitidos",
        ),
        ("http://10.0.0.1/x", "no está entre los destinos permitidos"),
        (
            "http://127.0.0.2/x",
            "no está entre los destinos permitidos",
        ),
        ("http://[::1]/x", "no está entre los destinos permitidos"),
        // A name that does not resolve.
        (
            "http://relevo-test.invalid/x",
            "No se encontró la dirección",
        ),
    ] {
        let page = save_webhook(&app, campaign, url, &["cancelled"]).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{url}");
        assert!(page.body.contains(says), "{url}: expected «{says}»");
        assert!(page.body.contains("aria-invalid=\"true\""), "{url}");
    }
    let page = save_webhook(&app, campaign, "http://127.0.0.1:9/x", &[]).await;
    assert!(page.body.contains("Elige al menos un tipo de evento"));
    assert_eq!(webhook_count(&app).await, 0, "nothing refused was stored");

    // Saved when the list was different (here: written directly), then
    // each delivery checks again, and the receiver gets nothing.
    let strict = app_allowing(backend, "hooks.example.com").await;
    let receiver = Receiver::start(vec![]);
    let campaign = strict.campaign_id(CAMPAIGN).await;
    let actor = strict
        .uuids_where("select id from users where email = $1", common::SUPER_EMAIL)
        .await[0];
    strict
        .store
        .create_webhook(
            actor,
            campaign,
            relevo::db::WebhookInput {
                url: &receiver.url,
                event_types: "cancelled",
                enabled: true,
            },
            Ts::now(),
        )
        .await
        .unwrap()
        .unwrap();
    strict.login_as_super().await;
    strict
        .cancel_through_form(&strict.client, open_folios(&strict).await[0])
        .await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(error) = last_error(&strict.store).await {
            assert!(
                error.contains("no está entre los destinos permitidos"),
                "{error}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no refused attempt recorded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        receiver.received().is_empty(),
        "nothing reached the receiver"
    );
}

async fn last_error(store: &Store) -> Option<String> {
    with_pool!(store, |pool| sqlx::query_scalar(
        "select error from webhook_attempts where error is not null order by at desc limit 1",
    )
    .fetch_optional(pool)
    .await
    .unwrap()
    .flatten())
}

/// Another instance on the same database with its own allow list.
async fn another_instance(first: &TestApp, allow: &str) -> TestApp {
    let url = first.database_url.clone();
    let store = Store::connect(&url).await.unwrap();
    let mut settings = relevo::config::Settings::on_free_port(&url);
    settings.webhook_allow = allow.parse().unwrap();
    let app = relevo::app::Application::build_with_store(settings, store.clone())
        .await
        .unwrap();
    let port = app.port();
    tokio::spawn(app.run_until_stopped());
    TestApp::attach(port, store, first.backend, url)
}

/// A channel of the campaign with a fresh token.
async fn channel(store: &Store, campaign: Uuid) -> (Uuid, String) {
    let channel = store
        .channels()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.1 == campaign)
        .map(|c| c.0)
        .unwrap();
    let token = store.rotate_channel_token(channel).await.unwrap().unwrap();
    (channel, token)
}

/// `n` customers write through the API at `address`: `2n` events
/// (`created` and `message_received`).
async fn customers_write(address: &str, channel: Uuid, token: &str, tag: &str, n: usize) {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    for i in 0..n {
        let response = client
            .post(format!("{address}/api/v1/channels/{channel}/messages"))
            .bearer_auth(token)
            .json(&json!({
                "message_id": format!("{tag}-{i}"),
                "from": format!("5215590{:06}", i + 1000 * tag.len()),
                "name": "Cliente",
                "text": format!("Hola {i}"),
            }))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }
}

async fn two_instances_do_not_deliver_the_same_events(backend: Backend) {
    let app = app_allowing(backend, "127.0.0.1").await;
    let second = another_instance(&app, "127.0.0.1").await;
    let receiver = Receiver::start(vec![]);
    let campaign = app.campaign_id(CAMPAIGN).await;
    let actor = app
        .uuids_where("select id from users where email = $1", common::SUPER_EMAIL)
        .await[0];
    app.store
        .create_webhook(
            actor,
            campaign,
            relevo::db::WebhookInput {
                url: &receiver.url,
                event_types: "created message_received",
                enabled: true,
            },
            Ts::now(),
        )
        .await
        .unwrap()
        .unwrap();
    let (channel, token) = channel(&app.store, campaign).await;
    // Both instances take writes and both run a deliverer.
    tokio::join!(
        customers_write(&app.address, channel, &token, "a", 15),
        customers_write(&second.address, channel, &token, "bb", 15),
    );
    let received = receiver.until("60 events", |r| r.len() >= 60).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let received = if receiver.received().len() > received.len() {
        receiver.received()
    } else {
        received
    };
    let ids: Vec<i64> = received.iter().map(|d| d.id).collect();
    let unique: HashSet<i64> = ids.iter().copied().collect();
    assert_eq!(unique.len(), 60, "every event: {ids:?}");
    assert_eq!(ids.len(), 60, "and none twice: {ids:?}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order: {ids:?}");
}

async fn every_event_reaches_the_receiver_after_relevo_is_killed_mid_delivery(backend: Backend) {
    let (store, url, _guard) = common::fresh_store(backend).await.unwrap();
    relevo::cli::seed_demo(&store).await.unwrap();
    let campaign = store.campaign_id_by_name(CAMPAIGN).await.unwrap().unwrap();
    let actor = store
        .user_by_email(common::SUPER_EMAIL)
        .await
        .unwrap()
        .unwrap()
        .id;
    // The receiver holds the first delivery until long after the kill.
    let receiver = Receiver::start(vec![Answer::Hang(Duration::from_secs(60))]);
    store
        .create_webhook(
            actor,
            campaign,
            relevo::db::WebhookInput {
                url: &receiver.url,
                event_types: "created message_received",
                enabled: true,
            },
            Ts::now(),
        )
        .await
        .unwrap()
        .unwrap();
    let (channel, token) = channel(&store, campaign).await;
    let start = store.sequence_events().await.unwrap();
    let env = [("RELEVO_WEBHOOK_ALLOW", "127.0.0.1")];
    let mut first = RelevoProcess::start(&url, &env).await;
    customers_write(&first.address, channel, &token, "k", 10).await;
    receiver
        .until("the first delivery", |r| !r.is_empty())
        .await;
    // Killed while that delivery waits for its answer: nothing committed.
    first.sigkill();
    first.wait(Duration::from_secs(10)).await;
    let second = RelevoProcess::start(&url, &env).await;
    customers_write(&second.address, channel, &token, "kk", 5).await;
    // The dead instance's lease runs out (30 s), then everything arrives.
    let expected: HashSet<i64> = {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            store.sequence_events().await.unwrap();
            let ids = event_ids(&store, campaign, start).await;
            if ids.len() >= 30 || Instant::now() > deadline {
                break ids.into_iter().collect();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    assert_eq!(expected.len(), 30, "15 conversations, 2 events each");
    let deadline = Instant::now() + Duration::from_secs(60);
    let received = loop {
        let received = receiver.received();
        let got: HashSet<i64> = received.iter().map(|d| d.id).collect();
        if expected.is_subset(&got) {
            break received;
        }
        assert!(
            Instant::now() < deadline,
            "missing {:?}",
            expected.difference(&got).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // At least once, and in order apart from the repeat of what was in
    // flight: the first time each id arrives, ids only grow.
    let mut seen = HashSet::new();
    let firsts: Vec<i64> = received
        .iter()
        .map(|d| d.id)
        .filter(|id| seen.insert(*id))
        .collect();
    assert!(firsts.windows(2).all(|w| w[0] < w[1]), "{firsts:?}");
    drop(second);
}

/// The campaign's `created` and `message_received` events after `start`.
async fn event_ids(store: &Store, campaign: Uuid, start: i64) -> Vec<i64> {
    with_pool!(store, |pool| sqlx::query_scalar(
        "select cursor from events where campaign_id = $1 and cursor > $2 \
         and type in ('created', 'message_received') order by cursor",
    )
    .bind(campaign)
    .bind(start)
    .fetch_all(pool)
    .await
    .unwrap())
}
