//! Cancelación automática on both backends: a rule's dry run equals what it
//! then cancels, nudges come first and once, bad windows are refused, rules
//! are scoped, a customer who writes after the measurement is neither
//! cancelled nor nudged, nudges reach their channel's connector once through
//! the outbox, and two instances on one PostgreSQL database cancel each
//! conversation once.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Duration, Utc};
use common::{Backend, TestApp, csrf_in, spawn_app};
use relevo::db::{
    AutoCancelRule, ChannelAuth, ConversationKey, InboundMessage, NewAutoCancelRule,
    StaleConversation, Store, TranscriptPosition, Ts,
};
use relevo::domain::{Scope, Status};
use relevo::services::auto_cancel::{
    Cancelled, Measure, RuleClosure, apply_rule, cancel_stale, preview, run_pass, targets,
};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use uuid::Uuid;

on_both_backends!(
    the_rules_have_their_place_in_the_menu,
    a_rules_dry_run_equals_what_it_then_cancels_as_the_system,
    a_rule_created_in_the_page_previews_its_count_before_saving,
    a_nudge_is_recorded_once_and_the_cancel_waits_for_its_lead,
    a_window_of_zero_or_negative_minutes_is_refused,
    an_administrator_cannot_see_or_change_a_rule_of_another_campaign,
    a_customer_message_after_the_measurement_keeps_the_conversation_open,
    a_nudge_reaches_its_channels_connector_once_through_the_outbox,
    creating_editing_switching_and_deleting_a_rule_each_write_an_audit_row_with_its_actor,
    an_automatic_cancellation_names_its_rule_in_the_history_page_and_api,
);

async fn category(app: &TestApp, campaign: &str) -> Uuid {
    app.uuids_where(
        "select c.id from closure_categories c join campaigns p on p.id = c.campaign_id \
         where c.name = 'Flujo atascado' and p.name = $1",
        campaign,
    )
    .await[0]
}

async fn make_rule(
    app: &TestApp,
    campaign: &str,
    status: Status,
    measure: Measure,
    minutes: i64,
    nudge: Option<(&str, i64)>,
) -> AutoCancelRule {
    let campaign_id = app.campaign_id(campaign).await;
    let creator = app
        .store
        .user_by_email(common::SUPER_EMAIL)
        .await
        .unwrap()
        .unwrap()
        .id;
    let id = app
        .store
        .create_auto_cancel_rule(&NewAutoCancelRule {
            campaign_id,
            name: "Prueba".into(),
            status,
            measure,
            window_minutes: minutes,
            category_id: category(app, campaign).await,
            subcategory_id: None,
            comment: None,
            nudge_text: nudge.map(|(t, _)| t.to_owned()),
            nudge_lead_minutes: nudge.map(|(_, m)| m),
            created_by: creator,
            at: Ts::now(),
        })
        .await
        .unwrap()
        .expect("the campaign exists");
    app.store
        .auto_cancel_rule(&Scope::All, id)
        .await
        .unwrap()
        .unwrap()
}

async fn in_status(app: &TestApp, campaign: &str, status: &'static str) -> i64 {
    let sql: &'static str = match status {
        "icr" => {
            "select count(*) from conversations c join campaigns p on p.id = c.campaign_id \
             where p.name = $1 and c.status = 'icr'"
        }
        _ => {
            "select count(*) from conversations c join campaigns p on p.id = c.campaign_id \
             where p.name = $1 and c.status = 'agents_offline'"
        }
    };
    app.folios_where(sql, campaign).await[0]
}

async fn a_rules_dry_run_equals_what_it_then_cancels_as_the_system(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    for (status, measure, key) in [
        (Status::Icr, Measure::NoCustomerMessage, "icr"),
        (Status::AgentsOffline, Measure::InStatus, "agents_offline"),
    ] {
        let rule = make_rule(&app, "Ventas Hogar", status, measure, 30, None).await;
        let waiting = in_status(&app, "Ventas Hogar", key).await;
        assert!(waiting > 0, "demo data has {key} conversations");
        // Far enough ahead that every one of them is stale.
        let now = Utc::now() + Duration::days(2);
        let (would, _) = preview(&app.store, &rule, now).await.unwrap();
        assert_eq!(would, waiting);
        let report = apply_rule(&app.store, &rule, now).await.unwrap();
        assert_eq!(report.cancelled as i64, would, "{key}");
        assert_eq!(in_status(&app, "Ventas Hogar", key).await, 0);
        // Nothing is left for a second pass: idempotent.
        assert_eq!(preview(&app.store, &rule, now).await.unwrap().0, 0);
        assert_eq!(
            apply_rule(&app.store, &rule, now).await.unwrap().cancelled,
            0
        );
    }
    let system = app
        .scalar_i64(
            "select count(*) from conversation_events where kind = 'cancelled' \
             and actor_kind = 'system' and actor_id is null \
             and comment = 'Cancelación automática «Prueba»'",
        )
        .await;
    let closed = app
        .scalar_i64(
            "select count(*) from conversations where status = 'cancelled' \
             and closer_kind = 'system' and closure_category_id is not null",
        )
        .await;
    assert!(system > 0);
    assert_eq!(system, closed);
    // Other campaigns were not touched.
    assert!(in_status(&app, "Soporte Técnico", "icr").await > 0);
    // A rule whose time has not come cancels nothing.
    let fresh = make_rule(
        &app,
        "Soporte Técnico",
        Status::Icr,
        Measure::NoCustomerMessage,
        30 * 24 * 60,
        None,
    )
    .await;
    assert_eq!(preview(&app.store, &fresh, Utc::now()).await.unwrap().0, 0);
    assert_eq!(run_pass(&app.store, Utc::now()).await.unwrap().cancelled, 0);
}

async fn a_rule_created_in_the_page_previews_its_count_before_saving(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let page = app.get("/cancelacion-automatica").await;
    assert_eq!(page.status, StatusCode::OK);
    let token = csrf_in(&page.body);
    let campaign = app.campaign_id("Ventas Hogar").await.to_string();
    let category = category(&app, "Ventas Hogar").await.to_string();
    let form = |preview: &'static str| {
        vec![
            ("_csrf", token.clone()),
            ("campana", campaign.clone()),
            ("nombre", "Bot atascado".to_owned()),
            ("estatus", "icr".to_owned()),
            ("medida", "in_status".to_owned()),
            ("minutos", "1".to_owned()),
            ("categoria", category.clone()),
            ("vista_previa", preview.to_owned()),
        ]
    };
    let pairs = form("1");
    let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let shown = app.post_form("/cancelacion-automatica", &refs).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    assert!(
        shown
            .body
            .contains("Vista previa: si la guardas, ahora cancelaría")
    );
    assert_eq!(
        app.scalar_i64("select count(*) from auto_cancel_rules")
            .await,
        0,
        "a preview saves nothing"
    );
    let pairs = form("");
    let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let saved = app.post_form("/cancelacion-automatica", &refs).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER);
    let list = app.get("/cancelacion-automatica").await;
    assert!(list.body.contains("Regla «Bot atascado» creada"));
    assert!(list.body.contains("data-rule=\"Bot atascado\""));
    // The list's dry run equals what the pass cancels at the same moment.
    let rules = app.store.auto_cancel_rules(&Scope::All).await.unwrap();
    let now = Utc::now() + Duration::minutes(5);
    let (would, _) = preview(&app.store, &rules[0], now).await.unwrap();
    let report = run_pass(&app.store, now).await.unwrap();
    assert_eq!(report.cancelled as i64, would);
    // Deactivated, it does nothing more.
    let id = rules[0].id.to_string();
    let off = app
        .post_form(
            &format!("/cancelacion-automatica/{id}/estado"),
            &[("_csrf", &token), ("activa", "0")],
        )
        .await;
    assert_eq!(off.status, StatusCode::SEE_OTHER);
    assert!(
        app.store
            .active_auto_cancel_rules()
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_nudge_is_recorded_once_and_the_cancel_waits_for_its_lead(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let rule = make_rule(
        &app,
        "Ventas Hogar",
        Status::Icr,
        Measure::NoCustomerMessage,
        30,
        Some(("¿Sigues ahí? Responde para continuar.", 10)),
    )
    .await;
    let waiting = in_status(&app, "Ventas Hogar", "icr").await;
    let now = Utc::now() + Duration::days(2);
    let (cancels, nudges) = preview(&app.store, &rule, now).await.unwrap();
    assert_eq!((cancels, nudges), (0, waiting), "nudge first, cancel later");
    let first = run_pass(&app.store, now).await.unwrap();
    assert_eq!(first.nudged as i64, waiting);
    assert_eq!(first.cancelled, 0);
    // Again at the same moment: nothing new (one nudge per silence).
    let again = run_pass(&app.store, now).await.unwrap();
    assert_eq!((again.nudged, again.cancelled), (0, 0));
    let recorded = app
        .scalar_i64(
            "select count(*) from messages where direction = 'outbound' and agent_id is null \
             and text = '¿Sigues ahí? Responde para continuar.'",
        )
        .await;
    assert_eq!(recorded, waiting);
    // Once the nudge is as old as its lead, the rule cancels.
    let later = now + Duration::minutes(10);
    assert_eq!(preview(&app.store, &rule, later).await.unwrap().0, waiting);
    assert_eq!(
        run_pass(&app.store, later).await.unwrap().cancelled as i64,
        waiting
    );
}

async fn a_window_of_zero_or_negative_minutes_is_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let token = csrf_in(&app.get("/cancelacion-automatica").await.body);
    let campaign = app.campaign_id("Ventas Hogar").await.to_string();
    let foreign = category(&app, "Soporte Técnico").await.to_string();
    let category = category(&app, "Ventas Hogar").await.to_string();
    for (minutes, message) in [
        ("0", "La ventana debe ser de al menos 1 minuto"),
        ("-5", "La ventana debe ser de al menos 1 minuto"),
        ("", "Escribe la ventana en minutos"),
        ("1.5", "como número entero"),
        ("99999", "no puede pasar de 30 días"),
    ] {
        let page = app
            .post_form(
                "/cancelacion-automatica",
                &[
                    ("_csrf", &token),
                    ("campana", &campaign),
                    ("nombre", "Mala"),
                    ("estatus", "icr"),
                    ("medida", "no_customer_message"),
                    ("minutos", minutes),
                    ("categoria", &category),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{minutes}");
        assert!(page.body.contains(message), "{minutes}: {message}");
        assert!(page.body.contains("id=\"minutos-error\""));
    }
    // A category of another campaign, a final status and a nudge as long as the window.
    let page = app
        .post_form(
            "/cancelacion-automatica",
            &[
                ("_csrf", &token),
                ("campana", &campaign),
                ("nombre", "Mala"),
                ("estatus", "cancelled"),
                ("medida", "no_customer_message"),
                ("minutos", "30"),
                ("categoria", &foreign),
                ("aviso", "Hola"),
                ("aviso_minutos", "30"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("Selecciona un estatus abierto"));
    assert!(
        page.body
            .contains("Esa categoría no pertenece a la campaña elegida")
    );
    assert!(page.body.contains("antes de que termine la ventana"));
    assert_eq!(
        app.scalar_i64("select count(*) from auto_cancel_rules")
            .await,
        0
    );
}

async fn an_administrator_cannot_see_or_change_a_rule_of_another_campaign(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let rule = make_rule(
        &app,
        "Cobranza",
        Status::Icr,
        Measure::NoCustomerMessage,
        30,
        None,
    )
    .await;
    app.login_as_admin().await;
    let page = app.get("/cancelacion-automatica").await;
    assert!(!page.body.contains("data-rule=\"Prueba\""));
    let token = csrf_in(&page.body);
    let off = app
        .post_form(
            &format!("/cancelacion-automatica/{}/estado", rule.id),
            &[("_csrf", &token), ("activa", "0")],
        )
        .await;
    assert_eq!(off.status, StatusCode::NOT_FOUND);
    assert_eq!(app.store.active_auto_cancel_rules().await.unwrap().len(), 1);
    // Nor create one for a campaign outside their scope.
    let campaign = app.campaign_id("Cobranza").await.to_string();
    let cobranza_category = category(&app, "Cobranza").await.to_string();
    let page = app
        .post_form(
            "/cancelacion-automatica",
            &[
                ("_csrf", &token),
                ("campana", &campaign),
                ("nombre", "Ajena"),
                ("estatus", "icr"),
                ("medida", "no_customer_message"),
                ("minutos", "30"),
                ("categoria", &cobranza_category),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("Selecciona una campaña"));
}

/// The customer of `stale` writes on its channel now.
async fn customer_writes(app: &TestApp, stale: &StaleConversation, message_id: &str) {
    let c = &stale.conversation;
    let detail = app
        .store
        .conversation_reads(
            &Scope::All,
            ConversationKey::Id(c.id),
            TranscriptPosition::Latest,
            10,
        )
        .await
        .unwrap()
        .unwrap();
    let channel = ChannelAuth {
        id: c.channel_id,
        campaign_id: c.campaign_id,
        active: true,
    };
    let message = InboundMessage {
        message_id: message_id.to_owned(),
        from: detail.row.contact_external_id.clone(),
        name: None,
        text: "Sigo aquí".to_owned(),
    };
    let outcome = app
        .store
        .record_customer_message(&channel, &message, Ts::now())
        .await
        .unwrap();
    assert_eq!(outcome.conversation_id, c.id, "continues the conversation");
}

/// ICR conversations that are their contact's latest, so a message of the
/// customer continues them.
async fn latest_of_their_contact(app: &TestApp) -> BTreeSet<Uuid> {
    app.uuids_where(
        "select c.id from conversations c where c.status = $1 and not exists \
         (select 1 from conversations o where o.contact_id = c.contact_id \
         and (o.started_at > c.started_at or (o.started_at = c.started_at and o.folio > c.folio)))",
        "icr",
    )
    .await
    .into_iter()
    .collect()
}

/// History rows of kind `cancelled` of conversation `folio`.
async fn cancellations_of(app: &TestApp, folio: i64) -> i64 {
    app.folios_where(
        "select count(*) from conversation_events e join conversations c \
         on c.id = e.conversation_id where e.kind = 'cancelled' and cast(c.folio as text) = $1",
        &folio.to_string(),
    )
    .await[0]
}

async fn a_customer_message_after_the_measurement_keeps_the_conversation_open(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let rule = make_rule(
        &app,
        "Ventas Hogar",
        Status::Icr,
        Measure::NoCustomerMessage,
        30,
        None,
    )
    .await;
    let now = Utc::now() + Duration::days(2);
    let (cancel, _) = targets(&rule, now);
    // The pass measures its targets (those a message of their customer
    // continues: the customer's latest conversation) ...
    let latest = latest_of_their_contact(&app).await;
    let stale: Vec<StaleConversation> = app
        .store
        .stale_conversations(&rule, cancel, 200)
        .await
        .unwrap()
        .into_iter()
        .filter(|s| latest.contains(&s.conversation.id))
        .collect();
    assert!(stale.len() >= 3, "demo data has stale ICR conversations");
    let (wrote, silent) = (&stale[0], &stale[1]);
    // ... then the customer writes, which moves the activity, not the version.
    customer_writes(&app, wrote, "despues-de-medir").await;
    let closure = RuleClosure::load(&app.store, &rule).await.unwrap();
    assert_eq!(
        cancel_stale(&app.store, &rule, &closure, wrote, now)
            .await
            .unwrap(),
        Cancelled::Changed
    );
    let state = app
        .store
        .conversation_state(&Scope::All, wrote.conversation.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.status, Status::Icr);
    assert_eq!(state.version, wrote.conversation.version);
    assert_eq!(cancellations_of(&app, wrote.conversation.folio).await, 0);
    // The one who stayed silent is cancelled as measured, by the system.
    assert_eq!(
        cancel_stale(&app.store, &rule, &closure, silent, now)
            .await
            .unwrap(),
        Cancelled::Yes
    );
    assert_eq!(cancellations_of(&app, silent.conversation.folio).await, 1);
    // A nudge measured before the customer wrote is not sent either.
    let nudging = make_rule(
        &app,
        "Ventas Hogar",
        Status::Icr,
        Measure::NoCustomerMessage,
        30,
        Some(("¿Sigues ahí?", 10)),
    )
    .await;
    let (_, nudge) = targets(&nudging, now);
    let to_nudge = app
        .store
        .stale_conversations(&nudging, nudge.unwrap(), 200)
        .await
        .unwrap();
    let target = to_nudge
        .iter()
        .find(|s| s.conversation.id != wrote.conversation.id && latest.contains(&s.conversation.id))
        .unwrap();
    customer_writes(&app, target, "antes-del-aviso").await;
    assert!(
        !app.store
            .record_nudge(&nudging, target, "¿Sigues ahí?", Ts::new(now))
            .await
            .unwrap()
    );
    assert_eq!(
        app.scalar_i64("select count(*) from outbox_messages").await,
        0
    );
    assert_eq!(
        app.scalar_i64("select count(*) from auto_cancel_nudges")
            .await,
        0
    );
}

/// Every pending outbox item of `channel`, paged `limit` at a time.
async fn drain_outbox(app: &TestApp, channel: Uuid, token: &str, limit: usize) -> Vec<Value> {
    let mut items = Vec::new();
    let mut after = String::new();
    for _ in 0..1000 {
        let (status, page) = app
            .api_call(
                Method::GET,
                &format!("/api/v1/channels/{channel}/outbox?limit={limit}&after={after}"),
                Some(token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let batch = page["items"].as_array().unwrap().clone();
        assert!(batch.len() <= limit);
        items.extend(batch);
        match page["next_after"].as_str() {
            Some(next) => after = next.to_owned(),
            None => return items,
        }
    }
    panic!("the outbox never ended");
}

async fn a_nudge_reaches_its_channels_connector_once_through_the_outbox(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let text = "¿Sigues ahí? Responde para continuar.";
    make_rule(
        &app,
        "Ventas Hogar",
        Status::Icr,
        Measure::NoCustomerMessage,
        30,
        Some((text, 10)),
    )
    .await;
    // Which channel each ICR conversation of Ventas Hogar is on.
    let mut expected: BTreeMap<Uuid, BTreeSet<Uuid>> = BTreeMap::new();
    for id in app
        .uuids_where(
            "select c.id from conversations c join campaigns p on p.id = c.campaign_id \
             where p.name = $1 and c.status = 'icr'",
            "Ventas Hogar",
        )
        .await
    {
        let c = app
            .store
            .conversation_state(&Scope::All, id)
            .await
            .unwrap()
            .unwrap();
        expected.entry(c.channel_id).or_default().insert(id);
    }
    let waiting: usize = expected.values().map(BTreeSet::len).sum();
    assert!(waiting > 2, "demo data has ICR conversations");
    // Two instances pass at the same moment, then one passes again.
    let second = Store::connect(&app.database_url).await.unwrap();
    let now = Utc::now() + Duration::days(2);
    let (a, b) = tokio::join!(run_pass(&app.store, now), run_pass(&second, now));
    assert_eq!(a.unwrap().nudged + b.unwrap().nudged, waiting);
    assert_eq!(run_pass(&second, now).await.unwrap().nudged, 0);
    second.close().await;
    assert_eq!(
        app.scalar_i64("select count(*) from outbox_messages").await as usize,
        waiting
    );
    // Each channel's connector sees exactly its conversations, once each.
    let mut tokens = BTreeMap::new();
    for (&channel, ids) in &expected {
        let token = app
            .store
            .rotate_channel_token(channel)
            .await
            .unwrap()
            .unwrap();
        let items = drain_outbox(&app, channel, &token, 2).await;
        let seen: Vec<Uuid> = items
            .iter()
            .map(|i| Uuid::parse_str(i["conversation_id"].as_str().unwrap()).unwrap())
            .collect();
        assert_eq!(seen.len(), ids.len(), "one item per conversation");
        assert_eq!(&seen.into_iter().collect::<BTreeSet<_>>(), ids);
        for item in &items {
            assert_eq!(item["kind"], "nudge");
            assert_eq!(item["text"], text);
            assert!(item["folio"].as_i64().unwrap() > 10000);
            assert!(!item["to"].as_str().unwrap().is_empty());
        }
        tokens.insert(channel, (token, items));
    }
    let (&channel, (token, items)) = tokens.iter().next().unwrap();
    let item_id = items[0]["id"].as_str().unwrap().to_owned();
    let conversation = Uuid::parse_str(items[0]["conversation_id"].as_str().unwrap()).unwrap();
    let detail = app
        .store
        .conversation_reads(
            &Scope::All,
            ConversationKey::Id(conversation),
            TranscriptPosition::Latest,
            10,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(items[0]["to"], detail.row.contact_external_id.as_str());
    // Another channel's connector sees nothing of it: not with its token on
    // this channel's path, and not on its own path (another campaign's
    // channel, which has no nudges).
    let cobranza = app.campaign_id("Cobranza").await;
    let foreign = app
        .store
        .channels()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.1 == cobranza)
        .unwrap()
        .0;
    let foreign_token = app
        .store
        .rotate_channel_token(foreign)
        .await
        .unwrap()
        .unwrap();
    let outbox = format!("/api/v1/channels/{channel}/outbox");
    let (status, body) = app
        .api_call(Method::GET, &outbox, Some(&foreign_token), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");
    assert!(
        drain_outbox(&app, foreign, &foreign_token, 50)
            .await
            .is_empty()
    );
    for bad in [None, Some("rlv_ch_nope")] {
        let (status, body) = app.api_call(Method::GET, &outbox, bad, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"], "unauthorized");
    }
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=muchos", "limit"),
        ("after=no-es-un-id", "after"),
    ] {
        let (status, body) = app
            .api_call(Method::GET, &format!("{outbox}?{query}"), Some(token), None)
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert_eq!(body["field"], field, "{query}");
    }
    // The connector acknowledges a delivery; repeating it changes nothing.
    let delivered = format!("{outbox}/{item_id}/delivered");
    let (status, first) = app
        .api_call(Method::POST, &delivered, Some(token), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["already_delivered"], false);
    let (status, again) = app
        .api_call(Method::POST, &delivered, Some(token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["already_delivered"], true);
    assert_eq!(again["delivered_at"], first["delivered_at"]);
    // Nobody else can acknowledge it, nor an item that does not exist.
    let (status, _) = app
        .api_call(
            Method::POST,
            &format!("/api/v1/channels/{foreign}/outbox/{item_id}/delivered"),
            Some(&foreign_token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .api_call(
            Method::POST,
            &format!("{outbox}/{}/delivered", Uuid::now_v7()),
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = app
        .api_call(
            Method::POST,
            &format!("{outbox}/no-es-un-id/delivered"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_id");
    // Delivered items leave the outbox; the others stay until acknowledged.
    let left = drain_outbox(&app, channel, token, 50).await;
    assert_eq!(left.len(), items.len() - 1);
    assert!(left.iter().all(|i| i["id"] != item_id.as_str()));
    // The delivery state shows where the nudge is visible: the API's
    // conversation and the console's detail page.
    let (_, integration) = app
        .store
        .create_integration_token("Ventas Hogar", "pruebas", Ts::now())
        .await
        .unwrap()
        .unwrap();
    let (status, body) = app
        .api_call(
            Method::GET,
            &format!("/api/v1/conversations/{conversation}"),
            Some(&integration),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["nudges"][0]["outbox_id"], item_id.as_str());
    assert_eq!(body["nudges"][0]["delivered_at"], first["delivered_at"]);
    app.login_as_admin().await;
    let page = app.get(&format!("/mensajes/{}", detail.row.folio)).await;
    assert!(page.body.contains("Avisos al cliente"));
    assert!(page.body.contains("data-nudge-delivered=\"true\""));
    assert!(page.body.contains("Entregado el "));
    let pending = left[0]["folio"].as_i64().unwrap();
    let page = app.get(&format!("/mensajes/{pending}")).await;
    assert!(page.body.contains("Pendiente de entrega"), "{}", page.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(relevo_postgres),
    ignore = "PostgreSQL not available: set TEST_POSTGRES_URL or install postgresql"
)]
async fn two_instances_on_one_postgres_database_cancel_each_conversation_once() {
    let Some(app) = spawn_app(Backend::Postgres).await else {
        return;
    };
    let second = Store::connect(&app.database_url).await.unwrap();
    let third = Store::connect(&app.database_url).await.unwrap();
    for (status, measure) in [
        (Status::Icr, Measure::NoCustomerMessage),
        (Status::AgentsOffline, Measure::InStatus),
        (Status::OutOfHours, Measure::InStatus),
    ] {
        for campaign in ["Ventas Hogar", "Cobranza", "Seguros Auto"] {
            make_rule(&app, campaign, status, measure, 15, None).await;
        }
    }
    let now = Utc::now() + Duration::days(2);
    let mut expected = 0;
    for rule in app.store.active_auto_cancel_rules().await.unwrap() {
        expected += preview(&app.store, &rule, now).await.unwrap().0;
    }
    assert!(expected > 10, "enough conversations to race on: {expected}");
    let (a, b, c) = tokio::join!(
        run_pass(&app.store, now),
        run_pass(&second, now),
        run_pass(&third, now)
    );
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    assert_eq!((a.cancelled + b.cancelled + c.cancelled) as i64, expected);
    let duplicated = app
        .scalar_i64(
            "select count(*) from (select conversation_id from conversation_events \
             where kind = 'cancelled' group by conversation_id having count(*) > 1) d",
        )
        .await;
    assert_eq!(duplicated, 0, "each conversation cancelled once");
    let by_system = app
        .scalar_i64(
            "select count(*) from conversation_events where kind = 'cancelled' and actor_kind = 'system'",
        )
        .await;
    assert_eq!(by_system, expected);
    second.close().await;
    third.close().await;
}

/// One audit row: (action, actor, campaign, object, summary).
type AuditRow = (String, Option<Uuid>, Option<Uuid>, Option<String>, String);

/// The audit rows about automatic-cancellation rules, oldest first.
async fn rule_audit(app: &TestApp) -> Vec<AuditRow> {
    const SQL: &str = "select action, actor_id, campaign_id, object_id, summary from audit_log \
        where object_kind = 'auto_cancel_rule' order by at, id";
    match &app.store {
        Store::Sqlite(p) => sqlx::query_as(SQL).fetch_all(&p.read).await.unwrap(),
        Store::Postgres(pg) => sqlx::query_as(SQL).fetch_all(&pg.pool).await.unwrap(),
    }
}

/// The form fields of a rule of Ventas Hogar named `name`, with `minutes`.
fn rule_form(
    csrf: &str,
    campaign: &str,
    category: &str,
    name: &str,
    minutes: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("_csrf", csrf.to_owned()),
        ("campana", campaign.to_owned()),
        ("nombre", name.to_owned()),
        ("estatus", "icr".to_owned()),
        ("medida", "in_status".to_owned()),
        ("minutos", minutes.to_owned()),
        ("categoria", category.to_owned()),
    ]
}

async fn post_pairs(app: &TestApp, path: &str, pairs: &[(&'static str, String)]) -> common::Page {
    let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    app.post_form(path, &refs).await
}

async fn creating_editing_switching_and_deleting_a_rule_each_write_an_audit_row_with_its_actor(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let admin = app
        .store
        .user_by_email(common::ADMIN_EMAIL)
        .await
        .unwrap()
        .unwrap()
        .id;
    let csrf = csrf_in(&app.get("/cancelacion-automatica").await.body);
    let ventas = app.campaign_id("Ventas Hogar").await;
    let (campaign, category) = (
        ventas.to_string(),
        category(&app, "Ventas Hogar").await.to_string(),
    );
    let form = rule_form(&csrf, &campaign, &category, "Bot atascado", "30");

    // Created.
    let saved = post_pairs(&app, "/cancelacion-automatica", &form).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let rule = app.store.auto_cancel_rules(&Scope::All).await.unwrap()[0].clone();
    let audit = rule_audit(&app).await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    let (action, actor, in_campaign, object, summary) = &audit[0];
    assert_eq!(action, "auto_cancel_rule.create");
    assert_eq!(*actor, Some(admin));
    assert_eq!(*in_campaign, Some(ventas));
    assert_eq!(object.as_deref(), Some(rule.id.to_string().as_str()));
    for part in [
        "«Bot atascado»",
        "«Ventas Hogar»",
        "Cancela las conversaciones que llevan más de 30 min en ICR",
        "Flujo atascado",
    ] {
        assert!(summary.contains(part), "{part} in {summary}");
    }

    // Edited: the form shows the rule, and saving writes one row with
    // before and after; saving it unchanged writes none.
    let path = format!("/cancelacion-automatica/{}", rule.id);
    let edit = app.get(&path).await;
    assert_eq!(edit.status, StatusCode::OK);
    assert!(
        edit.body.contains("value=\"Bot atascado\""),
        "{}",
        edit.body
    );
    let changed = rule_form(&csrf, &campaign, &category, "Bot atascado 45", "45");
    let saved = post_pairs(&app, &path, &changed).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let edited = app
        .store
        .auto_cancel_rule(&Scope::All, rule.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (edited.name.as_str(), edited.window_minutes),
        ("Bot atascado 45", 45)
    );
    let saved = post_pairs(&app, &path, &changed).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER);
    // Refused input changes nothing, and writes no row either.
    let refused = post_pairs(
        &app,
        &path,
        &rule_form(&csrf, &campaign, &category, "Bot atascado 45", "0"),
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let audit = rule_audit(&app).await;
    assert_eq!(audit.len(), 2, "{audit:?}");
    let (action, actor, in_campaign, _, summary) = &audit[1];
    assert_eq!(action, "auto_cancel_rule.update");
    assert_eq!((*actor, *in_campaign), (Some(admin), Some(ventas)));
    for part in ["«Bot atascado» → «Bot atascado 45»", "30 min", "45 min"] {
        assert!(summary.contains(part), "{part} in {summary}");
    }

    // Switched off and on: one row each; repeating a switch writes none.
    let toggle = format!("/cancelacion-automatica/{}/estado", rule.id);
    for active in ["0", "0", "1"] {
        let done = app
            .post_form(&toggle, &[("_csrf", &csrf), ("activa", active)])
            .await;
        assert_eq!(done.status, StatusCode::SEE_OTHER);
    }
    let audit = rule_audit(&app).await;
    let actions: Vec<&str> = audit.iter().map(|a| a.0.as_str()).collect();
    assert_eq!(
        actions,
        [
            "auto_cancel_rule.create",
            "auto_cancel_rule.update",
            "auto_cancel_rule.deactivate",
            "auto_cancel_rule.reactivate"
        ]
    );
    assert!(audit.iter().all(|a| a.1 == Some(admin)));
    assert!(audit[2].4.contains("«Bot atascado 45»") && audit[2].4.contains("desactivada"));

    // Deleted, after a confirmation, while it has acted on nothing.
    let delete = format!("/cancelacion-automatica/{}/eliminar", rule.id);
    let ask = app.post_form(&delete, &[("_csrf", &csrf)]).await;
    assert_eq!(ask.status, StatusCode::OK);
    assert!(ask.body.contains("name=\"confirmado\" value=\"si\""));
    assert_eq!(
        app.scalar_i64("select count(*) from auto_cancel_rules")
            .await,
        1
    );
    let done = app
        .post_form(&delete, &[("_csrf", &csrf), ("confirmado", "si")])
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(
        app.scalar_i64("select count(*) from auto_cancel_rules")
            .await,
        0
    );
    let audit = rule_audit(&app).await;
    assert_eq!(audit.len(), 5);
    assert_eq!(audit[4].0, "auto_cancel_rule.delete");
    assert_eq!(audit[4].1, Some(admin));
    assert!(audit[4].4.contains("«Bot atascado 45»"), "{}", audit[4].4);

    // A rule that has cancelled conversations is kept for their history.
    let used = make_rule(
        &app,
        "Ventas Hogar",
        Status::Icr,
        Measure::NoCustomerMessage,
        30,
        None,
    )
    .await;
    assert!(
        apply_rule(&app.store, &used, Utc::now() + Duration::days(2))
            .await
            .unwrap()
            .cancelled
            > 0
    );
    let rows = rule_audit(&app).await.len();
    let kept = app
        .post_form(
            &format!("/cancelacion-automatica/{}/eliminar", used.id),
            &[("_csrf", &csrf), ("confirmado", "si")],
        )
        .await;
    assert_eq!(kept.status, StatusCode::CONFLICT, "{}", kept.body);
    assert!(kept.body.contains("desactívala"), "{}", kept.body);
    assert_eq!(
        app.scalar_i64("select count(*) from auto_cancel_rules")
            .await,
        1
    );
    assert_eq!(rule_audit(&app).await.len(), rows);

    // The Auditoría page shows the changes with their actor.
    let sup = common::new_client();
    app.login_with(&sup, common::SUPER_EMAIL, common::SUPER_PASSWORD)
        .await;
    let page = app
        .get_with(&sup, "/auditoria?objeto=auto_cancel_rule")
        .await;
    assert_eq!(page.status, StatusCode::OK);
    for text in [
        "Regla automática creada",
        "Regla automática editada",
        "Regla automática desactivada",
        "Regla automática reactivada",
        "Regla automática eliminada",
        "Regla de cancelación automática",
    ] {
        assert!(page.body.contains(text), "{text}");
    }
    let admin_name = app
        .store
        .user_by_email(common::ADMIN_EMAIL)
        .await
        .unwrap()
        .unwrap()
        .name;
    assert!(page.body.contains(&admin_name));
}

async fn an_automatic_cancellation_names_its_rule_in_the_history_page_and_api(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let rule = make_rule(
        &app,
        "Ventas Hogar",
        Status::Icr,
        Measure::NoCustomerMessage,
        30,
        Some(("¿Sigues ahí?", 10)),
    )
    .await;
    let now = Utc::now() + Duration::days(2);
    assert!(apply_rule(&app.store, &rule, now).await.unwrap().nudged > 0);
    let later = now + Duration::minutes(10);
    assert!(
        apply_rule(&app.store, &rule, later)
            .await
            .unwrap()
            .cancelled
            > 0
    );
    let cancelled = app
        .uuids_where(
            "select c.id from conversations c join campaigns p on p.id = c.campaign_id \
             where p.name = $1 and c.status = 'cancelled' and c.closer_kind = 'system' \
             order by c.folio limit 1",
            "Ventas Hogar",
        )
        .await[0];
    // Someone else's cancellation names no rule.
    let by_hand = app
        .uuids_where(
            "select c.id from conversations c join campaigns p on p.id = c.campaign_id \
             where p.name = $1 and c.status = 'cancelled' and c.closer_kind = 'administrator' \
             order by c.folio limit 1",
            "Ventas Hogar",
        )
        .await[0];

    let (_, token) = app
        .store
        .create_integration_token("Ventas Hogar", "pruebas", Ts::now())
        .await
        .unwrap()
        .unwrap();
    let (status, body) = app
        .api_call(
            Method::GET,
            &format!("/api/v1/conversations/{cancelled}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let history = body["history"].as_array().unwrap();
    let last = history.last().unwrap();
    assert_eq!(last["kind"], "cancelled");
    assert_eq!(last["actor_kind"], "system");
    assert_eq!(last["rule_id"], rule.id.to_string().as_str(), "{last}");
    assert_eq!(last["rule"], "Prueba");
    assert!(
        history[..history.len() - 1]
            .iter()
            .all(|h| h["rule_id"].is_null())
    );
    assert_eq!(body["nudges"][0]["rule_id"], rule.id.to_string().as_str());
    let (_, other) = app
        .api_call(
            Method::GET,
            &format!("/api/v1/conversations/{by_hand}"),
            Some(&token),
            None,
        )
        .await;
    let other_last = other["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(other_last["kind"], "cancelled");
    assert!(other_last["rule_id"].is_null() && other_last["rule"].is_null());

    app.login_as_admin().await;
    let page = app
        .get(&format!("/mensajes/{}", body["folio"].as_i64().unwrap()))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains("Cancelada automáticamente por la regla «Prueba»"),
        "{}",
        page.body
    );
    let page = app
        .get(&format!("/mensajes/{}", other["folio"].as_i64().unwrap()))
        .await;
    assert!(!page.body.contains("Cancelada automáticamente"));
}

/// Cancelación automática is in the left menu of both console roles, marked
/// as the current page on the rules page (it was reachable only through a
/// button on Reportes).
async fn the_rules_have_their_place_in_the_menu(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let entry = "<a href=\"/cancelacion-automatica\" class=\"menu-item";
    for (email, password) in [
        (common::ADMIN_EMAIL, common::ADMIN_PASSWORD),
        (common::SUPER_EMAIL, common::SUPER_PASSWORD),
    ] {
        let client = common::new_client();
        app.login_with(&client, email, password).await;
        let conversations = app.get_with(&client, "/mensajes").await;
        assert!(
            conversations.body.contains(entry),
            "{email}: {}",
            conversations.body
        );
        let rules = app.get_with(&client, "/cancelacion-automatica").await;
        assert!(
            rules
                .body
                .contains(&format!("{entry} is-active\" aria-current=\"page\"")),
            "{email}"
        );
        assert!(
            !rules
                .body
                .contains("<a href=\"/reportes\" class=\"menu-item is-active")
        );
    }
}
