//! Cancelar/Reasignar over HTTP on both backends: the modal fragment, the
//! no-JavaScript page, every refusal, conflicts, and exactly one winner.

mod common;

use common::{Backend, Page, TestApp, new_client, spawn_app};
use reqwest::StatusCode;
use uuid::Uuid;

on_both_backends!(
    a_cancel_with_category_subcategory_and_comment_closes_the_conversation,
    a_cancel_needs_only_a_category,
    a_reassign_hands_the_conversation_to_another_agent,
    every_invalid_input_is_refused_next_to_its_field_and_changes_nothing,
    a_final_conversation_is_refused_cleanly,
    a_conversation_outside_scope_answers_404_on_every_action_url,
    a_post_without_or_with_a_wrong_csrf_token_changes_nothing,
    a_stale_form_is_refused_naming_who_won,
    a_double_confirmation_applies_once,
    twenty_concurrent_confirmations_have_exactly_one_winner,
    the_form_works_without_javascript,
    the_subcategory_list_follows_the_category,
    the_form_offers_only_what_the_rules_allow,
    comments_count_characters_and_are_shown_escaped,
    history_keeps_the_names_of_deactivated_categories,
    without_javascript_a_subcategory_is_chosen_from_every_category_and_recorded,
    a_campaign_without_active_categories_offers_only_reassign,
    each_agent_shows_presence_and_load_connected_least_busy_first,
    a_disconnected_agent_is_chosen_only_once_confirmed,
    returning_to_the_router_lets_it_choose_as_for_a_new_conversation,
);

/// Ids and folios the tests act on (all from the demo data).
struct Fixture {
    /// An open, assigned conversation of Ventas Hogar (the admin's campaign).
    folio: i64,
    conversation_id: Uuid,
    current_agent: Uuid,
    category: Uuid,
    subcategory: Uuid,
    /// A sub-category of another category of the same campaign.
    foreign_subcategory: Uuid,
    /// A category of another campaign.
    foreign_category: Uuid,
    inactive_category: Uuid,
    /// Another agent of the campaign.
    agent: Uuid,
    agent_name: String,
    /// An agent of another campaign.
    foreign_agent: Uuid,
}

async fn fixture(app: &TestApp) -> Fixture {
    let folios = app
        .folios_where(
            "select c.folio from conversations c join campaigns p on p.id = c.campaign_id \
             where p.name = $1 and c.status in ('assigned', 'in_progress') order by c.folio",
            "Ventas Hogar",
        )
        .await;
    let folio = folios[0];
    let conversation_id = app
        .uuids_where(
            "select id from conversations where cast(folio as text) = $1",
            &folio.to_string(),
        )
        .await[0];
    let current_agent = app
        .uuids_where(
            "select agent_id from conversations where cast(folio as text) = $1",
            &folio.to_string(),
        )
        .await[0];
    let category_in = |campaign: &'static str| async move {
        app.uuids_where(
            "select c.id from closure_categories c join campaigns p on p.id = c.campaign_id \
             where c.name = 'Cliente no responde' and p.name = $1",
            campaign,
        )
        .await[0]
    };
    let category = category_in("Ventas Hogar").await;
    let foreign_category = category_in("Cobranza").await;
    let subcategory = app
        .uuids_where(
            "select s.id from closure_subcategories s where s.name = 'Número equivocado' \
             and s.category_id in (select c.id from closure_categories c join campaigns p on p.id = c.campaign_id \
             where c.name = 'Cliente no responde' and p.name = $1)",
            "Ventas Hogar",
        )
        .await[0];
    let foreign_subcategory = app
        .uuids_where(
            "select s.id from closure_subcategories s where s.name = 'Llamada telefónica' \
             and s.category_id in (select c.id from closure_categories c join campaigns p on p.id = c.campaign_id \
             where p.name = $1)",
            "Ventas Hogar",
        )
        .await[0];
    let inactive_category = app
        .uuids_where(
            "select c.id from closure_categories c join campaigns p on p.id = c.campaign_id \
             where not c.active and p.name = $1",
            "Ventas Hogar",
        )
        .await[0];
    let agents = app
        .uuids_where(
            "select u.id from users u join campaign_members m on m.user_id = u.id \
             join campaigns p on p.id = m.campaign_id where u.role = 'agent' and p.name = $1 order by u.email",
            "Ventas Hogar",
        )
        .await;
    let agent = *agents
        .iter()
        .find(|a| **a != current_agent)
        .expect("another agent");
    let agent_name = name_of(app, agent).await;
    let foreign_agent = app
        .uuids_where(
            "select u.id from users u join campaign_members m on m.user_id = u.id \
             join campaigns p on p.id = m.campaign_id where u.role = 'agent' and p.name = $1 order by u.email",
            "Cobranza",
        )
        .await[0];
    Fixture {
        folio,
        conversation_id,
        current_agent,
        category,
        subcategory,
        foreign_subcategory,
        foreign_category,
        inactive_category,
        agent,
        agent_name,
        foreign_agent,
    }
}

async fn name_of(app: &TestApp, id: Uuid) -> String {
    let sql = "select name from users where id = $1";
    match &app.store {
        relevo::db::Store::Sqlite(p) => sqlx::query_scalar(sql)
            .bind(id)
            .fetch_one(&p.read)
            .await
            .unwrap(),
        relevo::db::Store::Postgres(relevo::db::PgStore { pool: p, .. }) => {
            sqlx::query_scalar(sql).bind(id).fetch_one(p).await.unwrap()
        }
    }
}

/// (status, version, history rows) of a conversation.
async fn state_of(app: &TestApp, folio: i64) -> (String, i64, i64) {
    let sql = "select c.status, c.version, (select count(*) from conversation_events e where e.conversation_id = c.id) \
               from conversations c where c.folio = $1";
    match &app.store {
        relevo::db::Store::Sqlite(p) => sqlx::query_as(sql)
            .bind(folio)
            .fetch_one(&p.read)
            .await
            .unwrap(),
        relevo::db::Store::Postgres(relevo::db::PgStore { pool: p, .. }) => {
            sqlx::query_as(sql).bind(folio).fetch_one(p).await.unwrap()
        }
    }
}

/// Opens the modal fragment; returns (csrf, version).
async fn open_form(app: &TestApp, client: &reqwest::Client, folio: i64) -> (String, String) {
    let response = client
        .get(app.url(&format!("/mensajes/{folio}/acciones")))
        .header("HX-Request", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.text().await.unwrap();
    assert!(!body.contains("<html"), "the modal gets a fragment");
    (
        common::field_value(&body, "_csrf"),
        common::field_value(&body, "version"),
    )
}

/// Posts the form as htmx does (a fragment request).
async fn confirm(
    app: &TestApp,
    client: &reqwest::Client,
    folio: i64,
    fields: &[(&str, &str)],
) -> Page {
    let response = client
        .post(app.url(&format!("/mensajes/{folio}/acciones")))
        .header("HX-Request", "true")
        .form(fields)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    Page {
        status,
        location: None,
        body: response.text().await.unwrap(),
        headers,
    }
}

async fn a_cancel_with_category_subcategory_and_comment_closes_the_conversation(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let fx = fixture(&app).await;
    let (_, _, history_before) = state_of(&app, fx.folio).await;
    let (csrf, version) = open_form(&app, &app.client, fx.folio).await;
    let page = confirm(
        &app,
        &app.client,
        fx.folio,
        &[
            ("_csrf", &csrf),
            ("version", &version),
            ("accion", "cancelar"),
            ("categoria", &fx.category.to_string()),
            ("subcategoria", &fx.subcategory.to_string()),
            ("comentario", "El cliente ya fue atendido por teléfono."),
        ],
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    // The row is re-rendered in place, Cancelada, with its category on hover.
    assert_eq!(
        page.headers["hx-retarget"],
        format!("#conversacion-{}", fx.folio).as_str()
    );
    assert_eq!(page.headers["hx-reswap"], "outerHTML");
    assert!(
        page.body
            .contains(&format!("<tr id=\"conversacion-{}\"", fx.folio))
    );
    assert!(page.body.contains("badge badge-cancelled"));
    assert!(
        page.body
            .contains("Cliente no responde › Número equivocado")
    );
    let trigger = page.headers["hx-trigger-after-settle"].to_str().unwrap();
    let trigger: serde_json::Value = serde_json::from_str(trigger).unwrap();
    assert_eq!(
        trigger["relevo:toast"]["message"],
        format!("Conversación {} cancelada", fx.folio)
    );
    let (status, _, history_after) = state_of(&app, fx.folio).await;
    assert_eq!(status, "cancelled");
    assert_eq!(history_after, history_before + 1);
    // The detail shows who, what and the closure.
    let detail = app.get(&format!("/mensajes/{}", fx.folio)).await;
    assert!(detail.body.contains("Laura Méndez Soto"));
    assert!(detail.body.contains("Canceló la conversación"));
    assert!(
        detail
            .body
            .contains("Cliente no responde › Número equivocado")
    );
    assert!(
        detail
            .body
            .contains("El cliente ya fue atendido por teléfono.")
    );
    // The closure fields are on the conversation.
    let closed: (Option<Uuid>, Option<Uuid>, Option<String>, Option<String>) = {
        let sql = "select closure_category_id, closure_subcategory_id, closure_comment, closer_kind from conversations where folio = $1";
        match &app.store {
            relevo::db::Store::Sqlite(p) => sqlx::query_as(sql)
                .bind(fx.folio)
                .fetch_one(&p.read)
                .await
                .unwrap(),
            relevo::db::Store::Postgres(relevo::db::PgStore { pool: p, .. }) => sqlx::query_as(sql)
                .bind(fx.folio)
                .fetch_one(p)
                .await
                .unwrap(),
        }
    };
    assert_eq!(closed.0, Some(fx.category));
    assert_eq!(closed.1, Some(fx.subcategory));
    assert_eq!(closed.3.as_deref(), Some("administrator"));
    let _ = fx.conversation_id;
}

async fn a_cancel_needs_only_a_category(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let fx = fixture(&app).await;
    let (csrf, version) = open_form(&app, &app.client, fx.folio).await;
    let page = confirm(
        &app,
        &app.client,
        fx.folio,
        &[
            ("_csrf", &csrf),
            ("version", &version),
            ("accion", "cancelar"),
            ("categoria", &fx.category.to_string()),
        ],
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(state_of(&app, fx.folio).await.0, "cancelled");
}

async fn a_reassign_hands_the_conversation_to_another_agent(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let fx = fixture(&app).await;
    let (_, _, history_before) = state_of(&app, fx.folio).await;
    let (csrf, version) = open_form(&app, &app.client, fx.folio).await;
    let page = confirm(
        &app,
        &app.client,
        fx.folio,
        &[
            ("_csrf", &csrf),
            ("version", &version),
            ("accion", "reasignar"),
            ("agente", &fx.agent.to_string()),
            ("comentario", "Cambio de turno"),
        ],
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("badge badge-assigned"));
    assert!(page.body.contains(&format!("<td>{}</td>", fx.agent_name)));
    let trigger: serde_json::Value =
        serde_json::from_str(page.headers["hx-trigger-after-settle"].to_str().unwrap()).unwrap();
    assert_eq!(
        trigger["relevo:toast"]["message"],
        format!("Conversación {} reasignada a {}", fx.folio, fx.agent_name)
    );
    let (status, _, history_after) = state_of(&app, fx.folio).await;
    assert_eq!(status, "assigned");
    assert_eq!(history_after, history_before + 1);
    let agent = app
        .uuids_where(
            "select agent_id from conversations where cast(folio as text) = $1",
            &fx.folio.to_string(),
        )
        .await[0];
    assert_eq!(agent, fx.agent);
}

/// (what, extra form fields, expected message)
type Case = (&'static str, Vec<(&'static str, String)>, &'static str);

async fn every_invalid_input_is_refused_next_to_its_field_and_changes_nothing(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let fx = fixture(&app).await;
    let inactive_agent = app
        .uuids_where(
            "select u.id from users u join campaign_members m on m.user_id = u.id \
             join campaigns p on p.id = m.campaign_id where u.role = 'agent' and p.name = $1 order by u.email desc",
            "Ventas Hogar",
        )
        .await
        .into_iter()
        .find(|a| *a != fx.current_agent && *a != fx.agent)
        .expect("a third agent");
    app.execute_id(
        "update users set active = false where id = $1",
        inactive_agent,
    )
    .await;
    let admin_id = app
        .store
        .user_by_email(common::ADMIN_EMAIL)
        .await
        .unwrap()
        .unwrap()
        .id;
    let long = "x".repeat(1001);
    let cases: Vec<Case> = vec![
        (
            "missing category",
            vec![("accion", "cancelar".into())],
            "Selecciona una categoría",
        ),
        (
            "category of another campaign",
            vec![
                ("accion", "cancelar".into()),
                ("categoria", fx.foreign_category.to_string()),
            ],
            "no pertenece a la campaña",
        ),
        (
            "inactive category",
            vec![
                ("accion", "cancelar".into()),
                ("categoria", fx.inactive_category.to_string()),
            ],
            "Esa categoría está desactivada",
        ),
        (
            "unknown category id",
            vec![
                ("accion", "cancelar".into()),
                ("categoria", Uuid::new_v4().to_string()),
            ],
            "no pertenece a la campaña",
        ),
        (
            "malformed category id",
            vec![
                ("accion", "cancelar".into()),
                ("categoria", "1 or 1=1".into()),
            ],
            "no pertenece a la campaña",
        ),
        (
            "sub-category of another category",
            vec![
                ("accion", "cancelar".into()),
                ("categoria", fx.category.to_string()),
                ("subcategoria", fx.foreign_subcategory.to_string()),
            ],
            "no pertenece a la categoría elegida",
        ),
        (
            "comment of 1001 characters",
            vec![
                ("accion", "cancelar".into()),
                ("categoria", fx.category.to_string()),
                ("comentario", long.clone()),
            ],
            "hasta 1000 caracteres (tiene 1001)",
        ),
        (
            "missing agent",
            vec![("accion", "reasignar".into())],
            "Selecciona un agente",
        ),
        (
            "agent of another campaign",
            vec![
                ("accion", "reasignar".into()),
                ("agente", fx.foreign_agent.to_string()),
            ],
            "Ese agente no pertenece a la campaña",
        ),
        (
            "inactive agent",
            vec![
                ("accion", "reasignar".into()),
                ("agente", inactive_agent.to_string()),
            ],
            "Ese agente está desactivado",
        ),
        (
            "the same agent",
            vec![
                ("accion", "reasignar".into()),
                ("agente", fx.current_agent.to_string()),
            ],
            "ya está asignada a ese agente",
        ),
        (
            "a user who is not an agent",
            vec![
                ("accion", "reasignar".into()),
                ("agente", admin_id.to_string()),
            ],
            "Ese usuario no es un agente",
        ),
        (
            "no action",
            vec![("accion", "borrar".into())],
            "Elige Cancelar, Reasignar o Devolver al enrutador",
        ),
    ];
    let before = state_of(&app, fx.folio).await;
    for (what, fields, message) in cases {
        let (csrf, version) = open_form(&app, &app.client, fx.folio).await;
        let mut form: Vec<(&str, &str)> = vec![("_csrf", &csrf), ("version", &version)];
        form.extend(fields.iter().map(|(k, v)| (*k, v.as_str())));
        let page = confirm(&app, &app.client, fx.folio, &form).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{what}");
        assert!(page.body.contains(message), "{what}: expected {message:?}");
        assert!(
            page.body.contains("class=\"field-error\""),
            "{what}: shown next to the field"
        );
        // …and in the summary heading the form, linked to its field.
        let summary = page
            .body
            .split("id=\"resumen-errores\"")
            .nth(1)
            .and_then(|rest| rest.split("</div>").next())
            .unwrap_or_else(|| panic!("{what}: an error summary"));
        assert!(
            summary.contains("<li><a href=\"#accion-") && summary.contains(message),
            "{what}: {summary}"
        );
        assert!(
            page.body.find("id=\"resumen-errores\"") < page.body.find("<fieldset"),
            "{what}: the summary comes first"
        );
        assert!(
            page.body.contains("aria-invalid=\"true\"") || what == "no action",
            "{what}"
        );
        assert_eq!(
            state_of(&app, fx.folio).await,
            before,
            "{what} changed nothing"
        );
    }
    // What was typed is kept.
    let (csrf, version) = open_form(&app, &app.client, fx.folio).await;
    let page = confirm(
        &app,
        &app.client,
        fx.folio,
        &[
            ("_csrf", &csrf),
            ("version", &version),
            ("accion", "cancelar"),
            ("comentario", "<b>sin categoría</b>"),
        ],
    )
    .await;
    assert!(
        page.body
            .contains("&lt;b&gt;sin categoría&lt;/b&gt;</textarea>")
            || page.body.contains("&#60;b&#62;sin categoría")
    );
}

async fn a_final_conversation_is_refused_cleanly(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let fx = fixture(&app).await;
    let resolved = app
        .folios_where(
            "select c.folio from conversations c join campaigns p on p.id = c.campaign_id \
             where p.name = $1 and c.status = 'resolved' order by c.folio",
            "Ventas Hogar",
        )
        .await[0];
    let before = state_of(&app, resolved).await;
    let form = app
        .client
        .get(app.url(&format!("/mensajes/{resolved}/acciones")))
        .header("HX-Request", "true")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(form.contains("La conversación ya estaba resuelta"));
    assert!(!form.contains("Confirmar"), "nothing left to confirm");
    let csrf = common::field_value(&app.get("/mensajes").await.body, "_csrf");
    let page = confirm(
        &app,
        &app.client,
        resolved,
        &[
            ("_csrf", &csrf),
            ("version", &before.1.to_string()),
            ("accion", "cancelar"),
            ("categoria", &fx.category.to_string()),
        ],
    )
    .await;
    assert_eq!(page.status, StatusCode::CONFLICT);
    assert!(page.body.contains("La conversación ya estaba resuelta"));
    assert_eq!(state_of(&app, resolved).await, before);
}

async fn a_conversation_outside_scope_answers_404_on_every_action_url(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let fx = fixture(&app).await;
    let foreign = app
        .folios_where(
            "select c.folio from conversations c join campaigns p on p.id = c.campaign_id \
             where p.name = $1 and c.status = 'icr' order by c.folio",
            "Cobranza",
        )
        .await[0];
    let before = state_of(&app, foreign).await;
    for path in [
        format!("/mensajes/{foreign}/acciones"),
        format!(
            "/mensajes/{foreign}/subcategorias?categoria={}",
            fx.foreign_category
        ),
        "/mensajes/abc/acciones".to_owned(),
        "/mensajes/99999999999999999999/acciones".to_owned(),
    ] {
        let page = app.get(&path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
        assert!(
            page.body.contains("No encontramos esa conversación"),
            "{path}"
        );
    }
    let csrf = common::field_value(&app.get("/mensajes").await.body, "_csrf");
    let version = before.1.to_string();
    // A reassignment reads the agent it names with the conversation: the
    // scope is checked first, whoever the agent is (this one would be
    // valid for the foreign conversation).
    let (foreign_category, foreign_agent) = (
        fx.foreign_category.to_string(),
        fx.foreign_agent.to_string(),
    );
    for (action, field, value) in [
        ("cancelar", "categoria", &foreign_category),
        ("reasignar", "agente", &foreign_agent),
    ] {
        let page = confirm(
            &app,
            &app.client,
            foreign,
            &[
                ("_csrf", &csrf),
                ("version", &version),
                ("accion", action),
                (field, value),
            ],
        )
        .await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{action}");
        assert!(
            page.body.contains("No encontramos esa conversación"),
            "{action}"
        );
        assert_eq!(state_of(&app, foreign).await, before, "{action}");
    }
}

async fn a_post_without_or_with_a_wrong_csrf_token_changes_nothing(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let fx = fixture(&app).await;
    let (_, version) = open_form(&app, &app.client, fx.folio).await;
    let before = state_of(&app, fx.folio).await;
    for token in [None, Some("not-the-token")] {
        let mut form = vec![("version", version.as_str()), ("accion", "cancelar")];
        let category = fx.category.to_string();
        form.push(("categoria", &category));
        if let Some(token) = token {
            form.push(("_csrf", token));
        }
        let page = app
            .post_form(&format!("/mensajes/{}/acciones", fx.folio), &form)
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN);
        assert_eq!(state_of(&app, fx.folio).await, before);
    }
}

async fn a_stale_form_is_refused_naming_who_won(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let fx = fixture(&app).await;
    let (csrf, version) = open_form(&app, &app.client, fx.folio).await;
    // Meanwhile the Super Administrador reassigns it.
    let other = new_client();
    app.login_with(&other, common::SUPER_EMAIL, common::SUPER_PASSWORD)
        .await;
    let (other_csrf, other_version) = open_form(&app, &other, fx.folio).await;
    let won = confirm(
        &app,
        &other,
        fx.folio,
        &[
            ("_csrf", &other_csrf),
            ("version", &other_version),
            ("accion", "reasignar"),
            ("agente", &fx.agent.to_string()),
        ],
    )
    .await;
    assert_eq!(won.status, StatusCode::OK);
    let after_win = state_of(&app, fx.folio).await;
    // The admin's confirmation, from the old state, is refused with who/what/when.
    let page = confirm(
        &app,
        &app.client,
        fx.folio,
        &[
            ("_csrf", &csrf),
            ("version", &version),
            ("accion", "cancelar"),
            ("categoria", &fx.category.to_string()),
        ],
    )
    .await;
    assert_eq!(page.status, StatusCode::CONFLICT);
    let expected = format!("Carlos Ramírez Ortega la reasignó a {} hace", fx.agent_name);
    assert!(
        page.body.contains(&expected),
        "{expected:?} in {}",
        page.body
    );
    assert!(page.body.contains("decide de nuevo"));
    // The modal now shows the current state, with the new version to decide again.
    assert!(page.body.contains("badge badge-assigned"));
    assert_eq!(
        common::field_value(&page.body, "version"),
        after_win.1.to_string()
    );
    assert_eq!(state_of(&app, fx.folio).await, after_win);
}

async fn a_double_confirmation_applies_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let fx = fixture(&app).await;
    let (csrf, version) = open_form(&app, &app.client, fx.folio).await;
    let before = state_of(&app, fx.folio).await;
    let category = fx.category.to_string();
    let form = [
        ("_csrf", csrf.as_str()),
        ("version", version.as_str()),
        ("accion", "cancelar"),
        ("categoria", category.as_str()),
    ];
    let first = confirm(&app, &app.client, fx.folio, &form).await;
    let second = confirm(&app, &app.client, fx.folio, &form).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(second.status, StatusCode::CONFLICT);
    assert!(second.body.contains("La conversación ya estaba cancelada"));
    assert!(second.body.contains("Laura Méndez Soto la canceló hace"));
    let after = state_of(&app, fx.folio).await;
    assert_eq!(after.2, before.2 + 1, "one history row");
}

async fn twenty_concurrent_confirmations_have_exactly_one_winner(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let other = new_client();
    app.login_with(&other, common::SUPER_EMAIL, common::SUPER_PASSWORD)
        .await;
    let fx = fixture(&app).await;
    let before = state_of(&app, fx.folio).await;
    let (csrf_a, version) = open_form(&app, &app.client, fx.folio).await;
    let (csrf_b, _) = open_form(&app, &other, fx.folio).await;
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let app = app.clone();
        let (client, csrf) = if i % 2 == 0 {
            (app.client.clone(), csrf_a.clone())
        } else {
            (other.clone(), csrf_b.clone())
        };
        let version = version.clone();
        let category = fx.category.to_string();
        let agent = fx.agent.to_string();
        tasks.push(tokio::spawn(async move {
            let form: Vec<(&str, &str)> = if i % 3 == 0 {
                vec![
                    ("_csrf", &csrf),
                    ("version", &version),
                    ("accion", "reasignar"),
                    ("agente", &agent),
                ]
            } else {
                vec![
                    ("_csrf", &csrf),
                    ("version", &version),
                    ("accion", "cancelar"),
                    ("categoria", &category),
                ]
            };
            confirm(&app, &client, fx.folio, &form).await.status
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    let wins = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let conflicts = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((wins, conflicts), (1, 19), "{statuses:?}");
    let after = state_of(&app, fx.folio).await;
    assert_eq!(after.1, before.1 + 1, "one version bump");
    assert_eq!(after.2, before.2 + 1, "exactly one history row");
}

async fn the_form_works_without_javascript(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let fx = fixture(&app).await;
    let return_to = "/mensajes?estatus=todas&canal=whatsapp";
    // The full page, inside the layout, with the form.
    let page = app
        .get(&format!(
            "/mensajes/{}/acciones?volver={}",
            fx.folio, "%2Fmensajes%3Festatus%3Dtodas%26canal%3Dwhatsapp"
        ))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("<html") && page.body.contains("class=\"sidebar\""));
    assert!(page.body.contains("Confirmar"));
    let csrf = common::field_value(&page.body, "_csrf");
    let version = common::field_value(&page.body, "version");
    // An error re-renders the page with the message and the typed comment.
    let invalid = app
        .post_form(
            &format!("/mensajes/{}/acciones", fx.folio),
            &[
                ("_csrf", &csrf),
                ("version", &version),
                ("volver", return_to),
                ("accion", "cancelar"),
                ("comentario", "sin categoría"),
            ],
        )
        .await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(invalid.body.contains("<html") && invalid.body.contains("Selecciona una categoría"));
    assert!(invalid.body.contains("sin categoría</textarea>"));
    // Its summary takes focus as the page loads and links to the field.
    assert!(
        invalid.body.contains(
            "role=\"alert\" tabindex=\"-1\" aria-labelledby=\"resumen-errores-titulo\" autofocus"
        ) && invalid
            .body
            .contains("<li><a href=\"#accion-categoria\">Selecciona una categoría"),
        "{}",
        invalid.body
    );
    // Success redirects back to the table with the filters kept…
    let done = app
        .post_form(
            &format!("/mensajes/{}/acciones", fx.folio),
            &[
                ("_csrf", &csrf),
                ("version", &version),
                ("volver", return_to),
                ("accion", "cancelar"),
                ("categoria", &fx.category.to_string()),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(done.location.as_deref(), Some(return_to));
    // …where a confirmation shows once.
    let table = app.get(return_to).await;
    assert!(
        table
            .body
            .contains(&format!("Conversación {} cancelada", fx.folio))
    );
    let again = app.get(return_to).await;
    assert!(
        !again
            .body
            .contains(&format!("Conversación {} cancelada", fx.folio))
    );
    assert_eq!(state_of(&app, fx.folio).await.0, "cancelled");
    // A return address outside the console is never followed.
    let open_redirect = app
        .post_form(
            &format!("/mensajes/{}/acciones", fx.folio),
            &[
                ("_csrf", &csrf),
                ("version", "999"),
                ("volver", "https://evil.example/"),
                ("accion", "cancelar"),
            ],
        )
        .await;
    assert!(!open_redirect.body.contains("evil.example"));
}

async fn the_subcategory_list_follows_the_category(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let fx = fixture(&app).await;
    let page = app
        .get(&format!(
            "/mensajes/{}/subcategorias?categoria={}",
            fx.folio, fx.category
        ))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Número equivocado"));
    assert!(page.body.contains("Sin respuesta tras 24 h"));
    assert!(
        !page.body.contains("Llamada telefónica"),
        "only that category's"
    );
    assert!(!page.body.contains("<html"));
    // No category (the placeholder chosen again), one of another campaign
    // or nonsense: every sub-category of the conversation's campaign, under
    // its category.
    let active = app
        .scalar_i64(
            "select count(*) from closure_subcategories s \
             join closure_categories c on c.id = s.category_id \
             join campaigns p on p.id = c.campaign_id \
             where s.active and c.active and p.name = 'Ventas Hogar'",
        )
        .await;
    for category in [
        String::new(),
        fx.foreign_category.to_string(),
        "xyz".to_owned(),
    ] {
        let page = app
            .get(&format!(
                "/mensajes/{}/subcategorias?categoria={category}",
                fx.folio
            ))
            .await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(
            page.body
                .contains("<optgroup label=\"Cliente no responde\">"),
            "{}",
            page.body
        );
        assert!(
            page.body.contains("Número equivocado") && page.body.contains("Llamada telefónica")
        );
        assert_eq!(
            page.body.matches("<option").count() as i64,
            active + 1,
            "the campaign's active sub-categories and the empty choice: {}",
            page.body
        );
    }
}

/// The page without JavaScript offers every sub-category grouped by
/// category, records the one chosen, and refuses one of another category.
async fn without_javascript_a_subcategory_is_chosen_from_every_category_and_recorded(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let fx = fixture(&app).await;
    let before = state_of(&app, fx.folio).await.0;
    let page = app.get(&format!("/mensajes/{}/acciones", fx.folio)).await;
    assert_eq!(page.status, StatusCode::OK);
    let list = page
        .body
        .split("id=\"accion-subcategoria\"")
        .nth(1)
        .and_then(|rest| rest.split("</select>").next())
        .expect("the Subcategoría list");
    assert!(
        list.contains("<optgroup label=\"Cliente no responde\">")
            && list.contains(&format!(
                "<option value=\"{}\">Número equivocado</option>",
                fx.subcategory
            )),
        "{list}"
    );
    let csrf = common::field_value(&page.body, "_csrf");
    let version = common::field_value(&page.body, "version");
    let path = format!("/mensajes/{}/acciones", fx.folio);
    let post = |subcategory: Uuid| {
        let (csrf, version, path) = (csrf.clone(), version.clone(), path.clone());
        let app = &app;
        let category = fx.category.to_string();
        async move {
            app.post_form(
                &path,
                &[
                    ("_csrf", csrf.as_str()),
                    ("version", version.as_str()),
                    ("accion", "cancelar"),
                    ("categoria", category.as_str()),
                    ("subcategoria", &subcategory.to_string()),
                ],
            )
            .await
        }
    };
    // Another category's sub-category, chosen from the grouped list.
    let refused = post(fx.foreign_subcategory).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.body.contains("id=\"subcategoria-error\""),
        "{}",
        refused.body
    );
    assert_eq!(state_of(&app, fx.folio).await.0, before);
    let done = post(fx.subcategory).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let recorded = app
        .uuids_where(
            "select closure_subcategory_id from conversations where cast(folio as text) = $1",
            &fx.folio.to_string(),
        )
        .await;
    assert_eq!(recorded, [fx.subcategory]);
}

/// Without an active closure category nothing can be cancelled: the modal
/// says so, links to Categorías and keeps Reasignar; a cancel posted anyway
/// is refused with that reason and changes nothing.
async fn a_campaign_without_active_categories_offers_only_reassign(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let fx = fixture(&app).await;
    let before = state_of(&app, fx.folio).await.0;
    app.execute(
        "update closure_categories set active = false \
         where campaign_id = (select id from campaigns where name = $1)",
        "Ventas Hogar",
    )
    .await;
    let campaign = app.campaign_id("Ventas Hogar").await;
    let modal = app
        .client
        .get(app.url(&format!("/mensajes/{}/acciones", fx.folio)))
        .header("HX-Request", "true")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        modal.contains("value=\"cancelar\" disabled aria-describedby=\"sin-categorias\""),
        "{modal}"
    );
    assert!(modal.contains("id=\"accion-reasignar\" name=\"accion\" value=\"reasignar\" checked"));
    assert!(modal.contains("no tiene categorías de cierre activas"));
    assert!(modal.contains(&format!("href=\"/categorias?campana={campaign}\"")));
    let csrf = common::field_value(&modal, "_csrf");
    let version = common::field_value(&modal, "version");
    let refused = confirm(
        &app,
        &app.client,
        fx.folio,
        &[
            ("_csrf", &csrf),
            ("version", &version),
            ("accion", "cancelar"),
            ("categoria", &fx.category.to_string()),
        ],
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused
            .body
            .contains("No se puede cancelar: esta campaña no tiene categorías"),
        "{}",
        refused.body
    );
    assert_eq!(state_of(&app, fx.folio).await.0, before);
    // Reasignar still works.
    let agent = fx.agent.to_string();
    let moved = confirm(
        &app,
        &app.client,
        fx.folio,
        &[
            ("_csrf", &csrf),
            ("version", &version),
            ("accion", "reasignar"),
            ("agente", &agent),
        ],
    )
    .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);
    let now_with = app
        .uuids_where(
            "select agent_id from conversations where cast(folio as text) = $1",
            &fx.folio.to_string(),
        )
        .await;
    assert_eq!(now_with, [fx.agent]);
}

async fn the_form_offers_only_what_the_rules_allow(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let fx = fixture(&app).await;
    app.execute_id("update users set connected = true where id = $1", fx.agent)
        .await;
    let body = app
        .client
        .get(app.url(&format!("/mensajes/{}/acciones", fx.folio)))
        .header("HX-Request", "true")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains(&format!("Conversación {}", fx.folio)));
    assert!(body.contains(&fx.category.to_string()));
    assert!(
        !body.contains(&fx.inactive_category.to_string()),
        "inactive categories are not offered"
    );
    assert!(!body.contains(&fx.foreign_category.to_string()));
    assert!(
        !body.contains(&format!("value=\"{}\"", fx.current_agent)),
        "not the current agent"
    );
    assert!(!body.contains(&fx.foreign_agent.to_string()));
    let connected = body
        .find("<optgroup label=\"Conectados\">")
        .expect("connected agents first");
    let agent_at = body.find(&format!("value=\"{}\"", fx.agent)).unwrap();
    assert!(agent_at > connected);
    assert!(body[agent_at..].starts_with(&format!(
        "value=\"{}\">{} · conectado · ",
        fx.agent, fx.agent_name
    )));
    for label in [
        "Cancelar",
        "Reasignar",
        "Devolver al enrutador",
        "Categoría",
        "Subcategoría (opcional)",
        "Comentario",
        "Agente",
        "Confirmar",
        "Cerrar",
    ] {
        assert!(body.contains(label), "{label}");
    }
}

async fn comments_count_characters_and_are_shown_escaped(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let fx = fixture(&app).await;
    let emoji = format!("<script>alert('x')</script>{}", "😀".repeat(973));
    assert_eq!(emoji.chars().count(), 1000);
    let (csrf, version) = open_form(&app, &app.client, fx.folio).await;
    let page = confirm(
        &app,
        &app.client,
        fx.folio,
        &[
            ("_csrf", &csrf),
            ("version", &version),
            ("accion", "cancelar"),
            ("categoria", &fx.category.to_string()),
            ("comentario", &emoji),
        ],
    )
    .await;
    assert_eq!(
        page.status,
        StatusCode::OK,
        "1000 characters are accepted, emoji count as one"
    );
    let detail = app.get(&format!("/mensajes/{}", fx.folio)).await;
    assert!(!detail.body.contains("<script>alert"));
    assert!(detail.body.contains("&lt;script&gt;") || detail.body.contains("&#60;script&#62;"));
    assert!(detail.body.contains(&"😀".repeat(973)));
}

async fn history_keeps_the_names_of_deactivated_categories(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let fx = fixture(&app).await;
    let (csrf, version) = open_form(&app, &app.client, fx.folio).await;
    let page = confirm(
        &app,
        &app.client,
        fx.folio,
        &[
            ("_csrf", &csrf),
            ("version", &version),
            ("accion", "cancelar"),
            ("categoria", &fx.category.to_string()),
            ("subcategoria", &fx.subcategory.to_string()),
        ],
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    // Deactivated as Categorías does it (an administrative write: what the
    // console remembers of the category is forgotten at once).
    let admin = app
        .uuids_where("select id from users where email = $1", common::ADMIN_EMAIL)
        .await[0];
    let campaign = app.campaign_id("Ventas Hogar").await;
    app.store
        .set_subcategory_active(
            admin,
            campaign,
            fx.subcategory,
            false,
            relevo::db::Ts::now(),
        )
        .await
        .unwrap()
        .expect("deactivated");
    app.store
        .set_category_active(admin, campaign, fx.category, false, relevo::db::Ts::now())
        .await
        .unwrap()
        .expect("deactivated");
    let detail = app.get(&format!("/mensajes/{}", fx.folio)).await;
    assert!(
        detail
            .body
            .contains("Categoría: Cliente no responde › Número equivocado")
    );
    // …while a new cancellation can no longer use them.
    let other = app
        .folios_where(
            "select c.folio from conversations c join campaigns p on p.id = c.campaign_id \
             where p.name = $1 and c.status = 'icr' order by c.folio",
            "Ventas Hogar",
        )
        .await[0];
    let (csrf, version) = open_form(&app, &app.client, other).await;
    let refused = confirm(
        &app,
        &app.client,
        other,
        &[
            ("_csrf", &csrf),
            ("version", &version),
            ("accion", "cancelar"),
            ("categoria", &fx.category.to_string()),
        ],
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body.contains("Esa categoría está desactivada"));
}

/// SQLite commits transitions in batches, with the customer messages: of two
/// transitions computed from the same version in one batch the second loses
/// as it would one commit later, and a transition that fails in the database
/// fails alone, leaving its conversation untouched while the rest of its
/// batch is applied.
#[tokio::test]
async fn transitions_committed_together_keep_their_own_outcomes() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let relevo::db::Store::Sqlite(pools) = &app.store else {
        unreachable!("a SQLite app")
    };
    let folios = app
        .folios_where(
            "select folio from conversations where status = $1 order by folio",
            "icr",
        )
        .await;
    let (a, b, c) = (folios[0], folios[1], folios[2]);
    let mut transitions = Vec::new();
    for folio in [a, a, b, c] {
        transitions.push(app.agents_offline_handoff(folio).await);
    }
    // The last one names a closure category that does not exist: its history
    // row breaks a foreign key.
    transitions[3].category_id = Some(Uuid::now_v7());
    let mut before = Vec::new();
    for folio in [a, b, c] {
        before.push(state_of(&app, folio).await);
    }
    // Hold the one write connection so that all four queue up and are
    // committed as one batch once it is released.
    let held = pools.write.acquire().await.unwrap();
    let mut tasks = Vec::new();
    let queued = common::writes_queued(&app.store);
    for (n, t) in (1..).zip(transitions) {
        let store = app.store.clone();
        tasks.push(tokio::spawn(
            async move { store.apply_transition(&t).await },
        ));
        // In this order: each is queued before the next is sent.
        common::until_writes_queued(&app.store, queued + n).await;
    }
    drop(held);
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    assert!(matches!(outcomes[0], Ok(Ok(()))), "{:?}", outcomes[0]);
    match &outcomes[1] {
        Ok(Err(conflict)) => {
            let latest = conflict.latest.as_ref().expect("the winning change");
            assert_eq!(latest.kind.as_str(), "handoff");
        }
        other => panic!("the second transition of {a} should lose: {other:?}"),
    }
    assert!(matches!(outcomes[2], Ok(Ok(()))), "{:?}", outcomes[2]);
    assert!(outcomes[3].is_err(), "{:?}", outcomes[3]);
    let mut after = Vec::new();
    for folio in [a, b, c] {
        after.push(state_of(&app, folio).await);
    }
    // (status, version, history rows)
    assert_eq!(after[0].1, before[0].1 + 1);
    assert_eq!(after[0].2, before[0].2 + 1);
    assert_eq!(after[1].1, before[1].1 + 1);
    assert_eq!(after[1].2, before[1].2 + 1);
    assert_eq!(after[2], before[2], "a failed transition changes nothing");
    assert_eq!(after[0].0, relevo::domain::Status::AgentsOffline.as_str());
}

/// The agent options of a form, in order: (label, whether disconnected).
fn agent_options(html: &str) -> Vec<(String, bool)> {
    let select = html
        .split("id=\"accion-agente\"")
        .nth(1)
        .and_then(|rest| rest.split("</select>").next())
        .expect("the agent list");
    select
        .split("<option value=\"")
        .skip(2)
        .map(|option| {
            let label =
                option[option.find('>').unwrap() + 1..option.find("</option>").unwrap()].to_owned();
            (label, option.contains("data-offline"))
        })
        .collect()
}

/// Open conversations of the agent named `name`.
async fn open_load_of(app: &TestApp, name: &str) -> i64 {
    let ids = app
        .uuids_where(
            "select c.id from conversations c join users u on u.id = c.agent_id \
             where c.is_open and u.name = $1",
            name,
        )
        .await;
    ids.len() as i64
}

async fn each_agent_shows_presence_and_load_connected_least_busy_first(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let fx = fixture(&app).await;
    // One agent of the campaign disconnected, the others connected.
    app.execute(
        "update users set connected = true where id in (select m.user_id from campaign_members m \
         join campaigns p on p.id = m.campaign_id where p.name = $1)",
        "Ventas Hogar",
    )
    .await;
    app.execute_id("update users set connected = false where id = $1", fx.agent)
        .await;
    let modal = app
        .client
        .get(app.url(&format!("/mensajes/{}/acciones", fx.folio)))
        .header("HX-Request", "true")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let options = agent_options(&modal);
    assert!(options.len() >= 2, "{options:?}");
    let mut loads = Vec::new();
    let mut seen_offline = false;
    for (label, offline) in &options {
        let (name, rest) = label.split_once(" · ").expect("name · presence · load");
        let load = open_load_of(&app, name).await;
        let expected = match load {
            0 => "sin abiertas".to_owned(),
            1 => "1 abierta".to_owned(),
            n => format!("{n} abiertas"),
        };
        let presence = if *offline {
            "desconectado"
        } else {
            "conectado"
        };
        assert_eq!(rest, format!("{presence} · {expected}"), "{label}");
        assert!(
            !seen_offline || *offline,
            "connected agents first: {options:?}"
        );
        seen_offline |= *offline;
        if !offline {
            loads.push(load);
        }
    }
    assert!(seen_offline, "{options:?}");
    assert!(loads.is_sorted(), "least busy first: {options:?}");
    assert!(
        options
            .iter()
            .any(|(l, offline)| *offline && l.starts_with(&fx.agent_name))
    );
}

async fn a_disconnected_agent_is_chosen_only_once_confirmed(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let fx = fixture(&app).await;
    app.execute_id("update users set connected = false where id = $1", fx.agent)
        .await;
    let before = state_of(&app, fx.folio).await;
    let (csrf, version) = open_form(&app, &app.client, fx.folio).await;
    let agent = fx.agent.to_string();
    let mut fields = vec![
        ("_csrf", csrf.as_str()),
        ("version", version.as_str()),
        ("accion", "reasignar"),
        ("agente", agent.as_str()),
    ];
    let refused = confirm(&app, &app.client, fx.folio, &fields).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused
            .body
            .contains("Ese agente está desconectado: la conversación esperará")
    );
    assert!(
        refused
            .body
            .contains("<div class=\"offline-confirm\" id=\"aviso-desconectado\">"),
        "the confirmation is shown: {}",
        refused.body
    );
    assert_eq!(state_of(&app, fx.folio).await, before);
    fields.push(("confirmar_desconectado", "1"));
    let done = confirm(&app, &app.client, fx.folio, &fields).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    let now_with = app
        .uuids_where(
            "select agent_id from conversations where cast(folio as text) = $1",
            &fx.folio.to_string(),
        )
        .await;
    assert_eq!(now_with, [fx.agent]);
}

async fn returning_to_the_router_lets_it_choose_as_for_a_new_conversation(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let fx = fixture(&app).await;
    let campaign = app.campaign_id("Ventas Hogar").await;
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
    // Only the current agent and one other are connected: the router, which
    // never gives it back to the current one, picks the other.
    app.execute_id(
        "update users set connected = false where id in \
         (select user_id from campaign_members where campaign_id = $1)",
        campaign,
    )
    .await;
    for agent in [fx.agent, fx.current_agent] {
        app.execute_id("update users set connected = true where id = $1", agent)
            .await;
    }
    let route = |folio: i64| {
        let app = &app;
        async move {
            let (csrf, version) = open_form(app, &app.client, folio).await;
            confirm(
                app,
                &app.client,
                folio,
                &[
                    ("_csrf", &csrf),
                    ("version", &version),
                    ("accion", "enrutador"),
                    ("comentario", "Atorada"),
                ],
            )
            .await
        }
    };
    let (_, _, history_before) = state_of(&app, fx.folio).await;
    let page = route(fx.folio).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let trigger: serde_json::Value =
        serde_json::from_str(page.headers["hx-trigger-after-settle"].to_str().unwrap()).unwrap();
    assert_eq!(
        trigger["relevo:toast"]["message"],
        format!(
            "Conversación {} devuelta al enrutador: asignada a {}",
            fx.folio, fx.agent_name
        )
    );
    let (status, _, history_after) = state_of(&app, fx.folio).await;
    assert_eq!(
        (status.as_str(), history_after),
        ("assigned", history_before + 1)
    );
    let recorded = app
        .folios_where(
            "select count(*) from conversation_events e join conversations c on c.id = e.conversation_id \
             where cast(c.folio as text) = $1 and e.kind = 'reassigned' and e.actor_kind = 'administrator' \
             and e.comment = 'Atorada'",
            &fx.folio.to_string(),
        )
        .await;
    assert_eq!(
        recorded,
        [1],
        "recorded as the administrator's reassignment"
    );
    // Nobody else connected: it waits in Agentes Desconectados.
    app.execute_id(
        "update users set connected = false where id = $1",
        fx.current_agent,
    )
    .await;
    let page = route(fx.folio).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(state_of(&app, fx.folio).await.0, "agents_offline");
    let detail = app.get(&format!("/mensajes/{}", fx.folio)).await;
    assert!(
        detail
            .body
            .contains("Devolvió al enrutador: Agentes Desconectados"),
        "{}",
        detail.body
    );
}
