//! A deactivated campaign stops on both backends: its channel and
//! integration tokens answer 403 JSON from the very next call (no token
//! remembered from before), the router assigns none of its conversations
//! (neither the per-minute scheduler nor an agent connecting through another
//! campaign), automatic cancellation skips it, and reactivating it restores
//! everything.

mod common;

use chrono::{NaiveTime, Utc};
use common::{Backend, TestApp, csrf_in, spawn_app};
use relevo::db::{NewAutoCancelRule, Ts};
use relevo::domain::admin::DayHours;
use relevo::domain::{Role, Status};
use relevo::services::auto_cancel::{Measure, run_pass};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

on_both_backends!(
    a_deactivated_campaigns_tokens_answer_403_at_once_and_reactivation_restores_them,
    the_router_never_assigns_conversations_of_an_inactive_campaign,
);

const CAMPAIGN: &str = "Ventas Hogar";
const OTHER: &str = "Soporte Técnico";

/// The campaign's channels, active first.
async fn channels_of(app: &TestApp, campaign: Uuid) -> Vec<Uuid> {
    let mut channels: Vec<(Uuid, bool)> = app
        .store
        .channels()
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.1 == campaign)
        .map(|c| (c.0, c.3))
        .collect();
    channels.sort_by_key(|c| !c.1);
    channels.into_iter().map(|c| c.0).collect()
}

async fn integration_token(app: &TestApp, campaign: &str) -> String {
    app.store
        .create_integration_token(campaign, "pruebas", Ts::now())
        .await
        .unwrap()
        .expect("campaign exists")
        .1
}

/// Deactivates (`desactivar`) or reactivates (`reactivar`) a campaign
/// through the console, as the Super Administrador logged in on `app`.
async fn switch_campaign(app: &TestApp, campaign: Uuid, action: &str) {
    let csrf = csrf_in(&app.get("/campanas").await.body);
    let done = app
        .post_form(
            &format!("/campanas/{campaign}/{action}"),
            &[("_csrf", &csrf), ("confirmado", "si")],
        )
        .await;
    assert_eq!(
        done.status,
        StatusCode::SEE_OTHER,
        "{action}: {}",
        done.body
    );
}

fn assert_inactive(call: &str, (status, body): &(StatusCode, Value)) {
    assert_eq!(*status, StatusCode::FORBIDDEN, "{call}: {body}");
    assert_eq!(body["error"], "campaign_inactive", "{call}: {body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("campaña inactiva")),
        "{call}: {body}"
    );
}

async fn a_deactivated_campaigns_tokens_answer_403_at_once_and_reactivation_restores_them(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_super().await;
    let campaign = app.campaign_id(CAMPAIGN).await;
    let channel = channels_of(&app, campaign).await[0];
    let channel_token = app
        .store
        .rotate_channel_token(channel)
        .await
        .unwrap()
        .unwrap();
    let token = integration_token(&app, CAMPAIGN).await;
    let other_token = integration_token(&app, OTHER).await;
    let agent = app
        .uuids_where(
            "select m.user_id from campaign_members m join users u on u.id = m.user_id \
             join campaigns p on p.id = m.campaign_id \
             where p.name = $1 and u.role = 'agent' and u.active and not u.connected \
             order by u.id",
            CAMPAIGN,
        )
        .await[0];
    let other_conversation = app
        .uuids_where(
            "select c.id from conversations c join campaigns p on p.id = c.campaign_id \
             where p.name = $1 order by c.folio limit 1",
            OTHER,
        )
        .await[0];
    let messages = format!("/api/v1/channels/{channel}/messages");
    let outbox = format!("/api/v1/channels/{channel}/outbox");
    let message = |id: &str| json!({"message_id": id, "from": "5215550001111", "text": "Hola"});

    // Both tokens work, and are remembered by the token cache.
    let (status, first) = app
        .api_call(
            Method::POST,
            &messages,
            Some(&channel_token),
            Some(message("m-1")),
        )
        .await;
    assert!(status.is_success(), "{first}");
    let conversation = first["conversation_id"].as_str().unwrap().to_owned();
    let (status, _) = app
        .api_call(Method::GET, &outbox, Some(&channel_token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let detail = format!("/api/v1/conversations/{conversation}");
    let (status, _) = app.api_call(Method::GET, &detail, Some(&token), None).await;
    assert_eq!(status, StatusCode::OK);

    switch_campaign(&app, campaign, "desactivar").await;

    // The very next call of either token is refused, and changes nothing.
    let messages_before = app.scalar_i64("select count(*) from messages").await;
    let conversations_before = app.scalar_i64("select count(*) from conversations").await;
    let calls: Vec<(&str, Method, String, &str, Option<Value>)> = vec![
        (
            "customer message",
            Method::POST,
            messages.clone(),
            &channel_token,
            Some(message("m-2")),
        ),
        ("outbox", Method::GET, outbox.clone(), &channel_token, None),
        (
            "delivered",
            Method::POST,
            format!("{outbox}/{}/delivered", Uuid::now_v7()),
            &channel_token,
            None,
        ),
        ("conversation", Method::GET, detail.clone(), &token, None),
        (
            "handoff",
            Method::POST,
            format!("{detail}/handoff"),
            &token,
            None,
        ),
        (
            "agent message",
            Method::POST,
            format!("{detail}/agent-messages"),
            &token,
            Some(json!({"agent_id": agent, "text": "Hola"})),
        ),
        (
            "resolve",
            Method::POST,
            format!("{detail}/resolve"),
            &token,
            Some(json!({"agent_id": agent})),
        ),
        (
            "presence",
            Method::POST,
            format!("/api/v1/agents/{agent}/presence"),
            &token,
            Some(json!({"connected": true})),
        ),
    ];
    for (name, method, path, bearer, body) in &calls {
        let answer = app
            .api_call(method.clone(), path, Some(bearer), body.clone())
            .await;
        assert_inactive(name, &answer);
    }
    assert_eq!(
        app.scalar_i64("select count(*) from messages").await,
        messages_before
    );
    assert_eq!(
        app.scalar_i64("select count(*) from conversations").await,
        conversations_before
    );
    let presence = app.store.agents_presence().await.unwrap();
    assert!(
        presence.contains(&(agent, false)),
        "a refused presence changes nothing"
    );
    // Other campaigns, and unknown tokens, are answered as before.
    let (status, _) = app
        .api_call(
            Method::GET,
            &format!("/api/v1/conversations/{other_conversation}"),
            Some(&other_token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app
        .api_call(Method::GET, &detail, Some("rlv_desconocido"), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    switch_campaign(&app, campaign, "reactivar").await;

    let (status, again) = app
        .api_call(
            Method::POST,
            &messages,
            Some(&channel_token),
            Some(message("m-3")),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["conversation_id"], conversation.as_str());
    let (status, _) = app
        .api_call(Method::GET, &outbox, Some(&channel_token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app.api_call(Method::GET, &detail, Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["messages"].as_array().unwrap().len(), 2);
}

/// Conversations of `campaign` waiting for an agent.
async fn waiting(app: &TestApp, campaign: &str) -> i64 {
    app.folios_where(
        "select count(*) from conversations c join campaigns p on p.id = c.campaign_id \
         where p.name = $1 and c.status in ('out_of_hours', 'agents_offline')",
        campaign,
    )
    .await[0]
}

async fn the_router_never_assigns_conversations_of_an_inactive_campaign(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let campaign = app.campaign_id(CAMPAIGN).await;
    let actor = app
        .store
        .user_by_email(common::SUPER_EMAIL)
        .await
        .unwrap()
        .unwrap()
        .id;
    // Open around the clock, so only the campaign's state can stop the router.
    let all_day: Vec<DayHours> = (0..7)
        .map(|weekday| DayHours {
            weekday,
            opens: NaiveTime::MIN,
            closes: NaiveTime::MIN,
        })
        .collect();
    app.store
        .save_schedule(actor, campaign, &all_day, Ts::now())
        .await
        .unwrap()
        .unwrap();
    let before = waiting(&app, CAMPAIGN).await;
    assert!(
        before > 0,
        "demo data has conversations waiting in {CAMPAIGN}"
    );
    // An automatic cancellation rule that would cancel them all.
    let category = app
        .uuids_where(
            "select c.id from closure_categories c join campaigns p on p.id = c.campaign_id \
             where c.name = 'Flujo atascado' and p.name = $1",
            CAMPAIGN,
        )
        .await[0];
    app.store
        .create_auto_cancel_rule(&NewAutoCancelRule {
            campaign_id: campaign,
            name: "Espera larga".into(),
            status: Status::AgentsOffline,
            measure: Measure::InStatus,
            window_minutes: 1,
            category_id: category,
            subcategory_id: None,
            comment: None,
            nudge_text: None,
            nudge_lead_minutes: None,
            created_by: actor,
            at: Ts::now(),
        })
        .await
        .unwrap()
        .expect("the campaign exists");
    // An agent of both campaigns, offline.
    let agent = app
        .create_user(
            "ambas@relevo.test",
            Role::Agent,
            "una-clave-larga-de-prueba",
            &[CAMPAIGN, OTHER],
        )
        .await;

    app.store
        .set_campaign_active(actor, campaign, false, Ts::now())
        .await
        .unwrap()
        .unwrap();

    // The agent connects through the other (active) campaign's token.
    let token = integration_token(&app, OTHER).await;
    let (status, body) = app
        .api_call(
            Method::POST,
            &format!("/api/v1/agents/{agent}/presence"),
            Some(&token),
            Some(json!({"connected": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        waiting(&app, CAMPAIGN).await,
        before,
        "presence assigned none"
    );
    // The per-minute scheduler, driven directly.
    relevo::services::router::assign_all_waiting(&app.store)
        .await
        .unwrap();
    assert_eq!(
        relevo::services::router::assign_waiting(&app.store, campaign, Utc::now())
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        waiting(&app, CAMPAIGN).await,
        before,
        "the scheduler assigned none"
    );
    // Automatic cancellation skips the campaign too.
    let later = Utc::now() + chrono::Duration::days(2);
    assert_eq!(run_pass(&app.store, later).await.unwrap().cancelled, 0);
    assert_eq!(waiting(&app, CAMPAIGN).await, before);

    app.store
        .set_campaign_active(actor, campaign, true, Ts::now())
        .await
        .unwrap()
        .unwrap();
    let assigned = relevo::services::router::assign_all_waiting(&app.store)
        .await
        .unwrap();
    assert!(
        assigned > 0,
        "reactivated, its waiting conversations are assigned"
    );
    assert!(waiting(&app, CAMPAIGN).await < before);
}
