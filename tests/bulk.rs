//! Bulk Cancelar/Reasignar on both backends: per-item results and history
//! rows for a mixed selection, scope, empty selections, "all that match"
//! with its confirmed count, background jobs, and a browser run.

mod common;

use std::ops::ControlFlow;
use std::time::Duration;

use common::webdriver::Browser;
use common::{
    ADMIN_EMAIL, ADMIN_PASSWORD, Backend, SUPER_EMAIL, TestApp, csrf_in, new_client, spawn_app,
};
use relevo::db::{ApplyWith, BulkAction, BulkStatus, NewBulkJob, Ts};
use relevo::domain::{Lookup, Scope};
use relevo::services::bulk::CreatorAccess;
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

on_both_backends!(
    a_mixed_selection_gets_exactly_the_expected_per_item_results_and_history_rows,
    a_bulk_reassign_moves_each_conversation_to_the_agent_of_its_campaign_only,
    an_empty_selection_is_refused_and_changes_nothing,
    all_that_match_shows_the_count_and_refuses_when_it_changed,
    a_large_job_runs_in_the_background_and_only_its_creator_sees_it,
    a_job_resumed_after_a_crash_reports_its_own_change_as_applied,
    a_job_stops_at_the_next_item_once_its_creator_is_deactivated,
    a_job_stops_at_the_first_item_of_a_campaign_taken_from_its_creator,
    a_job_resumed_by_another_instance_stops_when_its_creator_was_demoted,
    a_super_administrators_job_keeps_acting_through_others_access_changes,
    a_selection_over_the_limit_is_refused_at_once_and_changes_nothing,
    a_folio_selected_twice_is_acted_on_once,
);
on_both_backends!(browser: a_bulk_cancel_through_the_browser_shows_its_results);

/// Open folios of a campaign, in folio order.
async fn open_in(app: &TestApp, campaign: &str) -> Vec<i64> {
    app.folios_where(
        "select c.folio from conversations c join campaigns p on p.id = c.campaign_id \
         where p.name = $1 and c.is_open order by c.folio",
        campaign,
    )
    .await
}

async fn final_in(app: &TestApp, campaign: &str) -> Vec<i64> {
    app.folios_where(
        "select c.folio from conversations c join campaigns p on p.id = c.campaign_id \
         where p.name = $1 and not c.is_open order by c.folio",
        campaign,
    )
    .await
}

async fn category(app: &TestApp, campaign: &str) -> Uuid {
    app.uuids_where(
        "select c.id from closure_categories c join campaigns p on p.id = c.campaign_id \
         where c.name = 'Cliente no responde' and p.name = $1",
        campaign,
    )
    .await[0]
}

async fn events_of(app: &TestApp, folio: i64) -> i64 {
    app.folios_where(
        "select count(*) from conversation_events e join conversations c on c.id = e.conversation_id \
         where cast(c.folio as text) = $1",
        &folio.to_string(),
    )
    .await[0]
}

async fn status_of(app: &TestApp, folio: i64) -> Vec<Uuid> {
    app.uuids_where(
        "select c.id from conversations c where cast(c.folio as text) = $1 and c.status = 'cancelled'",
        &folio.to_string(),
    )
    .await
}

async fn csrf(app: &TestApp) -> String {
    csrf_in(&app.get("/mensajes").await.body)
}

/// Posts the bulk form and follows the redirect to the job page.
async fn post_bulk(app: &TestApp, form: &[(&str, &str)]) -> (common::Page, Option<common::Page>) {
    let posted = app.post_form("/mensajes/lote", form).await;
    let job = match &posted.location {
        Some(location) if posted.status == StatusCode::SEE_OTHER => Some(app.get(location).await),
        _ => None,
    };
    (posted, job)
}

async fn a_mixed_selection_gets_exactly_the_expected_per_item_results_and_history_rows(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let valid = open_in(&app, "Ventas Hogar").await;
    let closed = final_in(&app, "Ventas Hogar").await[0];
    let other_campaign = open_in(&app, "Soporte Técnico").await[0];
    let out_of_scope = open_in(&app, "Cobranza").await[0];
    let unknown = 99_999_999_i64;
    let picked = [valid[0], valid[1], valid[2]];
    let mut before = Vec::new();
    for folio in [
        valid[0],
        valid[1],
        valid[2],
        closed,
        other_campaign,
        out_of_scope,
    ] {
        before.push(events_of(&app, folio).await);
    }
    let token = csrf(&app).await;
    let category = category(&app, "Ventas Hogar").await.to_string();
    let folios: Vec<String> = [
        picked[0],
        picked[1],
        picked[2],
        closed,
        other_campaign,
        out_of_scope,
        unknown,
    ]
    .iter()
    .map(i64::to_string)
    .collect();
    let mut form: Vec<(&str, &str)> = vec![
        ("_csrf", &token),
        ("accion", "cancelar"),
        ("categoria", &category),
        ("comentario", "Limpieza de la mañana"),
    ];
    for f in &folios {
        form.push(("folio", f));
    }
    let (posted, job) = post_bulk(&app, &form).await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER, "{}", posted.body);
    let job = job.expect("job page");
    assert_eq!(job.status, StatusCode::OK);
    assert!(
        job.body.contains(
            "3 canceladas, 1 omitida: ya estaba cerrada, \
             1 omitida: la categoría no pertenece a su campaña, 2 omitidas: no encontradas"
        ),
        "{}",
        job.body
    );
    assert!(
        job.body
            .contains("Esa categoría no pertenece a la campaña de la conversación")
    );
    // The conversation of another campaign is never revealed: only the folio as typed.
    assert!(
        !job.body
            .contains(&format!("href=\"/mensajes/{out_of_scope}\""))
    );
    // One history row per cancelled conversation, none for the others.
    for (i, folio) in [
        valid[0],
        valid[1],
        valid[2],
        closed,
        other_campaign,
        out_of_scope,
    ]
    .into_iter()
    .enumerate()
    {
        let added = events_of(&app, folio).await - before[i];
        assert_eq!(added, i64::from(i < 3), "history rows added to {folio}");
    }
    for folio in picked {
        assert_eq!(status_of(&app, folio).await.len(), 1, "{folio} cancelled");
    }
    assert!(status_of(&app, out_of_scope).await.is_empty());
    assert!(status_of(&app, other_campaign).await.is_empty());
    let by_admin = app
        .scalar_i64(
            "select count(*) from conversation_events where kind = 'cancelled' \
             and actor_kind = 'administrator' and comment = 'Limpieza de la mañana'",
        )
        .await;
    assert_eq!(by_admin, 3);
}

async fn a_bulk_reassign_moves_each_conversation_to_the_agent_of_its_campaign_only(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let ventas = open_in(&app, "Ventas Hogar").await;
    let soporte = open_in(&app, "Soporte Técnico").await[0];
    let agent = app
        .uuids_where(
            "select u.id from users u join campaign_members m on m.user_id = u.id \
             join campaigns p on p.id = m.campaign_id where u.role = 'agent' and u.active \
             and p.name = $1 order by u.email",
            "Ventas Hogar",
        )
        .await[0];
    // Conversations already with that agent are skipped as "same agent".
    let mut targets = Vec::new();
    for folio in &ventas {
        let current = app
            .uuids_where(
                "select agent_id from conversations where cast(folio as text) = $1 and agent_id is not null",
                &folio.to_string(),
            )
            .await;
        if current.first() != Some(&agent) {
            targets.push(*folio);
        }
        if targets.len() == 2 {
            break;
        }
    }
    let token = csrf(&app).await;
    let agent_text = agent.to_string();
    let (a, b, c) = (
        targets[0].to_string(),
        targets[1].to_string(),
        soporte.to_string(),
    );
    let (posted, job) = post_bulk(
        &app,
        &[
            ("_csrf", &token),
            ("accion", "reasignar"),
            ("agente", &agent_text),
            ("folio", &a),
            ("folio", &b),
            ("folio", &c),
        ],
    )
    .await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER, "{}", posted.body);
    let job = job.unwrap();
    assert!(
        job.body
            .contains("2 reasignadas, 1 omitida: el agente no pertenece a su campaña"),
        "{}",
        job.body
    );
    for folio in &targets[..2] {
        let now = app
            .uuids_where(
                "select agent_id from conversations where cast(folio as text) = $1 and status = 'assigned'",
                &folio.to_string(),
            )
            .await;
        assert_eq!(now, vec![agent]);
    }
}

async fn an_empty_selection_is_refused_and_changes_nothing(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let before = app
        .scalar_i64("select count(*) from conversation_events")
        .await;
    let page = app.get("/mensajes/lote").await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("Selecciona al menos una conversación"));
    let token = csrf(&app).await;
    let category = category(&app, "Ventas Hogar").await.to_string();
    let (posted, job) = post_bulk(
        &app,
        &[
            ("_csrf", &token),
            ("accion", "cancelar"),
            ("categoria", &category),
        ],
    )
    .await;
    assert_eq!(posted.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(posted.body.contains("Selecciona al menos una conversación"));
    assert!(job.is_none());
    // Missing category and an unknown action are refused next to their fields.
    let folio = open_in(&app, "Ventas Hogar").await[0].to_string();
    let posted = app
        .post_form(
            "/mensajes/lote",
            &[("_csrf", &token), ("accion", "cancelar"), ("folio", &folio)],
        )
        .await;
    assert_eq!(posted.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(posted.body.contains("Selecciona una categoría"));
    assert!(posted.body.contains("aria-invalid=\"true\""));
    let long = "x".repeat(1001);
    let posted = app
        .post_form(
            "/mensajes/lote",
            &[
                ("_csrf", &token),
                ("accion", "cancelar"),
                ("categoria", &category),
                ("comentario", &long),
                ("folio", &folio),
            ],
        )
        .await;
    assert_eq!(posted.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        posted
            .body
            .contains("El comentario admite hasta 1000 caracteres")
    );
    // Without the CSRF token nothing happens either.
    let posted = app
        .post_form(
            "/mensajes/lote",
            &[
                ("accion", "cancelar"),
                ("categoria", &category),
                ("folio", &folio),
            ],
        )
        .await;
    assert_eq!(posted.status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.scalar_i64("select count(*) from conversation_events")
            .await,
        before
    );
    assert_eq!(app.scalar_i64("select count(*) from bulk_jobs").await, 0);
}

async fn all_that_match_shows_the_count_and_refuses_when_it_changed(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let campaign = app.campaign_id("Ventas Hogar").await.to_string();
    let expected = app
        .folios_where(
            "select count(*) from conversations c join campaigns p on p.id = c.campaign_id \
             where p.name = $1 and c.status = 'icr'",
            "Ventas Hogar",
        )
        .await[0];
    let page = app
        .get(&format!(
            "/mensajes/lote?todas=1&estatus=icr&campana={campaign}"
        ))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains(&format!("<strong>{expected}</strong>")),
        "{}",
        page.body
    );
    assert!(page.body.contains("que coinciden con el filtro"));
    let token = csrf(&app).await;
    let category = category(&app, "Ventas Hogar").await.to_string();
    let stale = (expected + 1).to_string();
    let form = [
        ("_csrf", token.as_str()),
        ("accion", "cancelar"),
        ("categoria", &category),
        ("todas", "1"),
        ("estatus", "icr"),
        ("campana", &campaign),
        ("esperadas", &stale),
    ];
    let posted = app.post_form("/mensajes/lote", &form).await;
    assert_eq!(posted.status, StatusCode::CONFLICT);
    assert!(posted.body.contains(&format!("ahora son {expected}")));
    assert_eq!(app.scalar_i64("select count(*) from bulk_jobs").await, 0);
    // Confirmed with the number shown: every ICR conversation of the campaign is cancelled.
    let shown = expected.to_string();
    let mut form = form.to_vec();
    form[6] = ("esperadas", &shown);
    let (posted, job) = post_bulk(&app, &form).await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER, "{}", posted.body);
    let job = wait_finished(&app, job.unwrap()).await;
    assert!(
        job.body.contains(&format!("{expected} canceladas")),
        "{}",
        job.body
    );
    let left = app
        .folios_where(
            "select count(*) from conversations c join campaigns p on p.id = c.campaign_id \
             where p.name = $1 and c.status = 'icr'",
            "Ventas Hogar",
        )
        .await[0];
    assert_eq!(left, 0);
}

/// Reloads a job page until it says it finished (at most 20 s).
async fn wait_finished(app: &TestApp, mut page: common::Page) -> common::Page {
    let id_marker = "id=\"lote-estado\" class=\"card bulk-card\"";
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !page.body.contains("id=\"lote-resumen\"") {
        assert!(std::time::Instant::now() < deadline, "job did not finish");
        assert!(page.body.contains(id_marker));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let start = page.body.find("hx-get=\"/mensajes/lote/").map(|i| i + 8);
        let path = match start {
            Some(i) => page.body[i..].split('"').next().unwrap().to_owned(),
            None => panic!("no progress link"),
        };
        page = app.get(&path).await;
    }
    page
}

async fn a_large_job_runs_in_the_background_and_only_its_creator_sees_it(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let open = open_in(&app, "Ventas Hogar").await;
    assert!(
        open.len() > relevo::services::bulk::INLINE_MAX,
        "demo has enough open rows"
    );
    let token = csrf(&app).await;
    let category = category(&app, "Ventas Hogar").await.to_string();
    let folios: Vec<String> = open.iter().map(i64::to_string).collect();
    let mut form: Vec<(&str, &str)> = vec![
        ("_csrf", &token),
        ("accion", "cancelar"),
        ("categoria", &category),
    ];
    for f in &folios {
        form.push(("folio", f));
    }
    let (posted, job) = post_bulk(&app, &form).await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER);
    let location = posted.location.clone().unwrap();
    let job = job.unwrap();
    assert!(job.body.contains("<progress"), "a progress bar");
    let done = wait_finished(&app, job).await;
    assert!(
        done.body.contains(&format!("{} canceladas", open.len())),
        "{}",
        done.body
    );
    // The page survives a reload, and nobody else may open it.
    assert_eq!(app.get(&location).await.status, StatusCode::OK);
    let other = common::new_client();
    let login = app
        .login_with(&other, common::SUPER_EMAIL, common::SUPER_PASSWORD)
        .await;
    assert_eq!(login.location.as_deref(), Some("/mensajes"));
    assert_eq!(
        app.get_with(&other, &location).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/mensajes/lote/no-es-un-id").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.scalar_i64("select count(*) from bulk_job_items where outcome is null")
            .await,
        0
    );
}

async fn a_bulk_cancel_through_the_browser_shows_its_results(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let browser = Browser::start().await;
    browser
        .login(&app.address, ADMIN_EMAIL, ADMIN_PASSWORD)
        .await;
    browser.find("table.data-table tbody tr").await;
    let folios = app
        .folios_where(
            "select c.folio from conversations c join campaigns p on p.id = c.campaign_id \
             where p.name = $1 and c.is_open order by c.last_activity_at desc, c.folio desc limit 2",
            "Ventas Hogar",
        )
        .await;
    for folio in &folios {
        let box_ = browser
            .find(&format!("#conversacion-{folio} input.row-select"))
            .await;
        browser.click(&box_).await;
    }
    browser
        .wait_until(
            "the bulk bar to count the selection",
            "return document.querySelector('[data-bulk-count]').textContent.includes('2 conversaciones seleccionadas');",
        )
        .await;
    let submit = browser.find("[data-bulk-submit]").await;
    browser.click(&submit).await;
    browser.find("#lote-cuenta").await;
    let category = category(&app, "Ventas Hogar").await.to_string();
    browser
        .execute(
            "var s = document.getElementById('accion-categoria'); s.value = arguments[0]; \
             s.dispatchEvent(new Event('change', {bubbles: true}));",
            vec![json!(category)],
        )
        .await;
    let confirm = browser.find(".bulk-form button[type=submit]").await;
    browser.click(&confirm).await;
    browser
        .wait_until(
            "the bulk results",
            "var s = document.getElementById('lote-resumen'); return !!s && s.textContent.includes('2 canceladas');",
        )
        .await;
    for folio in &folios {
        assert_eq!(status_of(&app, *folio).await.len(), 1);
    }
    let violations = browser.accessibility_violations().await;
    assert!(violations.is_empty(), "{violations:?}");
    browser.quit().await;
}

async fn a_job_resumed_after_a_crash_reports_its_own_change_as_applied(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let open = open_in(&app, "Ventas Hogar").await;
    let (ours, untouched, theirs) = (open[0], open[1], open[2]);
    let admin = app
        .store
        .user_by_email(ADMIN_EMAIL)
        .await
        .unwrap()
        .unwrap()
        .id;
    let scope = Scope::Campaigns(vec![app.campaign_id("Ventas Hogar").await]);
    let category_id = category(&app, "Ventas Hogar").await;
    let found = app
        .store
        .folios_in_scope(&scope, &[ours, untouched, theirs])
        .await
        .unwrap();
    let items = [ours, untouched, theirs]
        .iter()
        .map(|f| (f.to_string(), found.iter().find(|(x, _)| x == f).copied()))
        .collect();
    let job = app
        .store
        .create_bulk_job(&NewBulkJob {
            created_by: admin,
            scope: scope.clone(),
            action: BulkAction::Cancel,
            category_id: Some(category_id),
            subcategory_id: None,
            agent_id: None,
            comment: String::new(),
            items,
            at: Ts::now(),
        })
        .await
        .unwrap();
    // An instance takes the job (a lease long enough that no worker resumes
    // it while the test sets the scene) ...
    let now = chrono::Utc::now();
    assert!(
        app.store
            .claim_bulk_job(
                job,
                Ts::new(now),
                Ts::new(now + chrono::Duration::seconds(120))
            )
            .await
            .unwrap()
    );
    let category = Lookup::Found(app.store.category_ref(category_id).await.unwrap().unwrap());
    let cancel = |folio: i64| {
        let scope = scope.clone();
        let store = app.store.clone();
        let id = found.iter().find(|(x, _)| *x == folio).unwrap().1;
        async move {
            let state = store.conversation_state(&scope, id).await.unwrap().unwrap();
            relevo::domain::conversation::cancel(
                &state,
                admin,
                category,
                Lookup::NotChosen,
                "",
                chrono::Utc::now(),
            )
            .unwrap()
        }
    };
    // ... commits the first item's cancellation and stops before recording
    // the item's result.
    let with = ApplyWith {
        bulk_job_id: Some(job),
        ..ApplyWith::default()
    };
    let t = cancel(ours).await;
    app.store
        .apply_transition_with(&t, with)
        .await
        .unwrap()
        .unwrap();
    // Meanwhile an administrator cancels the third by hand: the same kind of
    // change by the same kind of actor, but not the job's.
    let t = cancel(theirs).await;
    app.store.apply_transition(&t).await.unwrap().unwrap();
    // Once the lease has expired, any instance resumes the job. The lease
    // is moved into the past rather than waited out (as if its holder's
    // clock had run on without renewing it).
    let expired = Ts::new(chrono::Utc::now() - chrono::Duration::seconds(1));
    let sql = "update bulk_jobs set lease_until = $1 where id = $2";
    let moved = match &app.store {
        relevo::db::Store::Sqlite(p) => {
            let done = sqlx::query(sql).bind(expired).bind(job).execute(&p.write);
            done.await.unwrap().rows_affected()
        }
        relevo::db::Store::Postgres(relevo::db::PgStore { pool, .. }) => {
            let done = sqlx::query(sql).bind(expired).bind(job).execute(pool);
            done.await.unwrap().rows_affected()
        }
    };
    assert_eq!(moved, 1, "the job's lease");
    relevo::services::bulk::process(&app.store, &access(&app), job)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while app.store.bulk_job(job).await.unwrap().unwrap().status != BulkStatus::Finished {
        assert!(std::time::Instant::now() < deadline, "job did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let results: Vec<(String, String)> = app
        .store
        .bulk_items(job)
        .await
        .unwrap()
        .into_iter()
        .map(|i| (i.outcome.unwrap(), i.message.unwrap()))
        .collect();
    assert_eq!(
        results[0],
        (
            "applied".to_owned(),
            format!("Conversación {ours} cancelada")
        )
    );
    assert_eq!(
        results[1],
        (
            "applied".to_owned(),
            format!("Conversación {untouched} cancelada")
        )
    );
    assert_eq!(results[2].0, "already_final");
    // One history row each: the job did not cancel its first item twice.
    for folio in [ours, untouched, theirs] {
        assert_eq!(status_of(&app, folio).await.len(), 1);
        assert_eq!(
            app.folios_where(
                "select count(*) from conversation_events e join conversations c \
                 on c.id = e.conversation_id where e.kind = 'cancelled' \
                 and cast(c.folio as text) = $1",
                &folio.to_string(),
            )
            .await[0],
            1,
            "{folio}"
        );
    }
    assert_eq!(
        app.scalar_i64("select count(*) from conversation_events where bulk_job_id is not null")
            .await,
        2,
        "the job's two rows carry its id; the hand-made one does not"
    );
    // Its creator reads the same result on the job's page.
    app.login_as_admin().await;
    let page = app.get(&format!("/mensajes/lote/{job}")).await;
    assert!(
        page.body
            .contains("2 canceladas, 1 omitida: ya estaba cerrada"),
        "{}",
        page.body
    );
}

/// A worker's view of creators' access, as an instance on `app`'s store has.
fn access(app: &TestApp) -> CreatorAccess {
    CreatorAccess::new(app.store.feed().clone())
}

async fn user_id(app: &TestApp, email: &str) -> Uuid {
    app.store.user_by_email(email).await.unwrap().unwrap().id
}

/// A Cancelar job over `folios` (in this order) created by `creator` with
/// `scope` through the Store, as the form would, and not started: the test
/// runs it.
async fn cancel_job(
    app: &TestApp,
    creator: Uuid,
    scope: &Scope,
    category_id: Uuid,
    folios: &[i64],
) -> Uuid {
    let found = app.store.folios_in_scope(scope, folios).await.unwrap();
    let items = folios
        .iter()
        .map(|f| (f.to_string(), found.iter().find(|(x, _)| x == f).copied()))
        .collect();
    app.store
        .create_bulk_job(&NewBulkJob {
            created_by: creator,
            scope: scope.clone(),
            action: BulkAction::Cancel,
            category_id: Some(category_id),
            subcategory_id: None,
            agent_id: None,
            comment: String::new(),
            items,
            at: Ts::now(),
        })
        .await
        .unwrap()
}

/// Each item's outcome (`None`: not processed), in selection order.
async fn outcomes(app: &TestApp, job: Uuid) -> Vec<Option<String>> {
    app.store
        .bulk_items(job)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.outcome)
        .collect()
}

async fn jobs_stopped(app: &TestApp) -> i64 {
    app.scalar_i64("select count(*) from bulk_jobs where status = 'stopped'")
        .await
}

/// The Auditoría page as a Super Administrador sees it.
async fn audit_page(app: &TestApp) -> String {
    let client = new_client();
    let login = app
        .login_with(&client, SUPER_EMAIL, common::SUPER_PASSWORD)
        .await;
    assert_eq!(login.location.as_deref(), Some("/mensajes"));
    app.get_with(&client, "/auditoria").await.body
}

const STOPPED: &str = "Detenido: el usuario ya no tiene acceso";

async fn a_job_stops_at_the_next_item_once_its_creator_is_deactivated(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let open = open_in(&app, "Ventas Hogar").await;
    let folios = &open[..12];
    let (admin, boss) = (
        user_id(&app, ADMIN_EMAIL).await,
        user_id(&app, SUPER_EMAIL).await,
    );
    let scope = Scope::Campaigns(vec![app.campaign_id("Ventas Hogar").await]);
    let job = cancel_job(
        &app,
        admin,
        &scope,
        category(&app, "Ventas Hogar").await,
        folios,
    )
    .await;
    // The Super Administrador deactivates the creator while the job is
    // between its fifth and sixth item.
    let store = app.store.clone();
    relevo::services::bulk::process_observing(&app.store, &access(&app), job, move |position| {
        let store = store.clone();
        async move {
            if position == 5 {
                let done = store
                    .set_account_active(boss, admin, false, Ts::now())
                    .await;
                assert_eq!(done.unwrap(), Ok(true));
            }
            ControlFlow::Continue(())
        }
    })
    .await
    .unwrap();
    let results = outcomes(&app, job).await;
    assert_eq!(
        results,
        [
            vec![Some("applied".to_owned()); 5],
            vec![None; folios.len() - 5]
        ]
        .concat(),
        "nothing is done once the creator is deactivated"
    );
    for folio in &folios[5..] {
        assert!(
            status_of(&app, *folio).await.is_empty(),
            "{folio} still open"
        );
    }
    assert_eq!(jobs_stopped(&app).await, 1);
    // Auditoría names the job and its creator.
    let audit = audit_page(&app).await;
    assert!(audit.contains("Acción en lote detenida"), "{audit}");
    assert!(audit.contains(&job.to_string()), "{audit}");
    let name = app
        .store
        .user_by_email(ADMIN_EMAIL)
        .await
        .unwrap()
        .unwrap()
        .name;
    assert!(audit.contains(&format!("«{name}»")), "{audit}");
    assert!(audit.contains("el usuario está desactivado"), "{audit}");
    // Access given back does not resume a stopped job.
    assert_eq!(
        app.store
            .set_account_active(boss, admin, true, Ts::now())
            .await
            .unwrap(),
        Ok(true)
    );
    relevo::services::bulk::process(&app.store, &access(&app), job)
        .await
        .unwrap();
    assert_eq!(outcomes(&app, job).await, results);
    // Its creator reads why on the job's page, which no longer polls.
    app.login_as_admin().await;
    let page = app.get(&format!("/mensajes/lote/{job}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(STOPPED), "{}", page.body);
    assert!(page.body.contains("5 canceladas"), "{}", page.body);
    assert!(page.body.contains("7 sin procesar"), "{}", page.body);
    assert!(!page.body.contains("hx-trigger=\"every"), "{}", page.body);
}

async fn a_job_stops_at_the_first_item_of_a_campaign_taken_from_its_creator(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let ventas = open_in(&app, "Ventas Hogar").await;
    let soporte = open_in(&app, "Soporte Técnico").await;
    let folios = [
        ventas[0], soporte[0], ventas[1], soporte[1], ventas[2], ventas[3],
    ];
    let (admin, boss) = (
        user_id(&app, ADMIN_EMAIL).await,
        user_id(&app, SUPER_EMAIL).await,
    );
    let soporte_id = app.campaign_id("Soporte Técnico").await;
    let scope = Scope::Campaigns(vec![app.campaign_id("Ventas Hogar").await, soporte_id]);
    let job = cancel_job(
        &app,
        admin,
        &scope,
        category(&app, "Ventas Hogar").await,
        &folios,
    )
    .await;
    // Soporte Técnico is taken from the creator before the fourth item.
    let store = app.store.clone();
    relevo::services::bulk::process_observing(&app.store, &access(&app), job, move |position| {
        let store = store.clone();
        async move {
            if position == 3 {
                let done = store
                    .remove_member(boss, soporte_id, admin, Ts::now())
                    .await;
                assert_eq!(done.unwrap(), Ok(true));
            }
            ControlFlow::Continue(())
        }
    })
    .await
    .unwrap();
    // The first Soporte item was settled while the creator had the campaign
    // (its category is Ventas Hogar's); the second one stops the job, and
    // nothing after it is touched, not even in the campaign they kept.
    assert_eq!(
        outcomes(&app, job).await,
        vec![
            Some("applied".to_owned()),
            Some("invalid".to_owned()),
            Some("applied".to_owned()),
            None,
            None,
            None
        ]
    );
    for folio in [soporte[1], ventas[2], ventas[3]] {
        assert!(
            status_of(&app, folio).await.is_empty(),
            "{folio} still open"
        );
    }
    assert_eq!(jobs_stopped(&app).await, 1);
    // The creator, still an Administrador of Ventas Hogar, reads why.
    app.login_as_admin().await;
    let page = app.get(&format!("/mensajes/lote/{job}")).await;
    assert!(page.body.contains(STOPPED), "{}", page.body);
    assert!(
        page.body
            .contains("2 canceladas, 1 omitida: la categoría no pertenece a su campaña"),
        "{}",
        page.body
    );
    let audit = audit_page(&app).await;
    assert!(audit.contains(&job.to_string()), "{audit}");
    assert!(audit.contains("ya no tiene la campaña"), "{audit}");
}

async fn a_job_resumed_by_another_instance_stops_when_its_creator_was_demoted(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let open = open_in(&app, "Ventas Hogar").await;
    let folios = &open[..8];
    let (admin, boss) = (
        user_id(&app, ADMIN_EMAIL).await,
        user_id(&app, SUPER_EMAIL).await,
    );
    let ventas = app.campaign_id("Ventas Hogar").await;
    let scope = Scope::Campaigns(vec![ventas]);
    let job = cancel_job(
        &app,
        admin,
        &scope,
        category(&app, "Ventas Hogar").await,
        folios,
    )
    .await;
    // The first instance applies three items and stops (its lease is held).
    relevo::services::bulk::process_observing(&app.store, &access(&app), job, |position| {
        std::future::ready(if position == 3 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        })
    })
    .await
    .unwrap();
    assert_eq!(
        outcomes(&app, job).await[..4],
        [
            Some("applied".to_owned()),
            Some("applied".to_owned()),
            Some("applied".to_owned()),
            None
        ]
    );
    // Meanwhile the creator becomes an Agente.
    let record = app.store.user_by_email(ADMIN_EMAIL).await.unwrap().unwrap();
    let demoted = relevo::db::AccountInput {
        name: relevo::domain::admin::Name::parse(&record.name).unwrap(),
        email: relevo::domain::text::Email::parse(ADMIN_EMAIL).unwrap(),
        role: relevo::domain::Role::Agent,
        campaigns: vec![ventas],
    };
    assert_eq!(
        app.store
            .update_account(boss, admin, &demoted, Ts::now())
            .await
            .unwrap(),
        Ok(true)
    );
    // The instance is gone; once its lease has expired, another instance on
    // the same database resumes the job.
    app.store.close().await;
    let store = relevo::db::Store::connect(&app.database_url).await.unwrap();
    let second = TestApp::attach(0, store.clone(), backend, app.database_url.clone());
    second
        .execute_id("update bulk_jobs set lease_until = null where id = $1", job)
        .await;
    let settings = relevo::config::Settings::on_free_port(&app.database_url);
    let server = relevo::app::Application::build_with_store(settings, store.clone())
        .await
        .unwrap();
    let second = TestApp::attach(server.port(), store, backend, app.database_url.clone());
    tokio::spawn(server.run_until_stopped());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while second
        .scalar_i64("select count(*) from bulk_jobs where status = 'running'")
        .await
        > 0
    {
        assert!(std::time::Instant::now() < deadline, "job was not resumed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(jobs_stopped(&second).await, 1);
    assert_eq!(
        outcomes(&second, job).await,
        [
            vec![Some("applied".to_owned()); 3],
            vec![None; folios.len() - 3]
        ]
        .concat()
    );
    for folio in &folios[3..] {
        assert!(
            status_of(&second, *folio).await.is_empty(),
            "{folio} still open"
        );
    }
    let audit = audit_page(&second).await;
    assert!(audit.contains(&job.to_string()), "{audit}");
    assert!(audit.contains("ya no es Administrador"), "{audit}");
}

async fn a_super_administrators_job_keeps_acting_through_others_access_changes(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let ventas = open_in(&app, "Ventas Hogar").await;
    let folios = &ventas[..6];
    let (admin, boss) = (
        user_id(&app, ADMIN_EMAIL).await,
        user_id(&app, SUPER_EMAIL).await,
    );
    let job = cancel_job(
        &app,
        boss,
        &Scope::All,
        category(&app, "Ventas Hogar").await,
        folios,
    )
    .await;
    // Someone else loses access mid-job: the Super Administrador does not.
    let store = app.store.clone();
    relevo::services::bulk::process_observing(&app.store, &access(&app), job, move |position| {
        let store = store.clone();
        async move {
            if position == 2 {
                let done = store
                    .set_account_active(boss, admin, false, Ts::now())
                    .await;
                assert_eq!(done.unwrap(), Ok(true));
            }
            ControlFlow::Continue(())
        }
    })
    .await
    .unwrap();
    assert_eq!(
        outcomes(&app, job).await,
        vec![Some("applied".to_owned()); folios.len()]
    );
    assert_eq!(jobs_stopped(&app).await, 0);
    assert_eq!(
        app.scalar_i64("select count(*) from bulk_jobs where status = 'finished'")
            .await,
        1
    );
}

async fn a_selection_over_the_limit_is_refused_at_once_and_changes_nothing(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let events = app
        .scalar_i64("select count(*) from conversation_events")
        .await;
    let token = csrf(&app).await;
    let category = category(&app, "Ventas Hogar").await.to_string();
    let folios: Vec<String> = (1..=22_000).map(|f: i64| f.to_string()).collect();
    let mut form: Vec<(&str, &str)> = vec![
        ("_csrf", &token),
        ("accion", "cancelar"),
        ("categoria", &category),
    ];
    for f in &folios {
        form.push(("folio", f));
    }
    let body = serde_urlencoded::to_string(&form).unwrap();
    assert!(body.len() < 256 * 1024, "within the body limit");
    let started = std::time::Instant::now();
    let posted = app.post_form("/mensajes/lote", &form).await;
    let took = started.elapsed();
    assert_eq!(posted.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        posted
            .body
            .contains("Una acción en lote admite hasta 5000 conversaciones"),
        "{}",
        posted.body
    );
    // The refusal does not echo 22,000 folios back.
    assert!(posted.body.len() < 100_000, "{} bytes", posted.body.len());
    eprintln!("22,000 folios refused in {took:?}");
    // Generous: a debug build on a busy machine; the quadratic version took seconds.
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert_eq!(app.scalar_i64("select count(*) from bulk_jobs").await, 0);
    assert_eq!(
        app.scalar_i64("select count(*) from conversation_events")
            .await,
        events
    );
}

async fn a_folio_selected_twice_is_acted_on_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let open = open_in(&app, "Ventas Hogar").await;
    let (a, b) = (open[0].to_string(), open[1].to_string());
    let b_spaced = format!(" {b} ");
    let token = csrf(&app).await;
    let category = category(&app, "Ventas Hogar").await.to_string();
    let (posted, job) = post_bulk(
        &app,
        &[
            ("_csrf", &token),
            ("accion", "cancelar"),
            ("categoria", &category),
            ("folio", &a),
            ("folio", &b),
            ("folio", &a),
            ("folio", &b_spaced),
        ],
    )
    .await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER, "{}", posted.body);
    let job = job.unwrap();
    assert!(job.body.contains("2 canceladas"), "{}", job.body);
    assert!(!job.body.contains("omitida"), "{}", job.body);
    assert_eq!(
        app.scalar_i64("select count(*) from bulk_job_items").await,
        2
    );
    for folio in [open[0], open[1]] {
        assert_eq!(status_of(&app, folio).await.len(), 1);
    }
}
