//! Administration over HTTP on both backends: Campañas, Usuarios, Categorías
//! and Auditoría. Roles and scope (403 / 404), create/rename/deactivate
//! flows, bad input refused next to its field with nothing changed, unique
//! names (also under a race), the last-Super-Administrador rule, tokens
//! shown once and stored hashed, rights changes reaching the next request,
//! and exactly one audit row per change.

mod common;

use common::{Backend, TestApp, csrf_in, new_client, spawn_app};
use relevo::db::{NewUser, Refusal, Ts};
use relevo::domain::Role;
use reqwest::StatusCode;
use uuid::Uuid;

on_both_backends!(
    every_admin_page_refuses_an_admin_with_403_and_changes_nothing,
    an_admin_gets_404_for_categories_of_campaigns_not_theirs,
    a_campaign_is_created_renamed_deactivated_and_reactivated,
    campaign_forms_refuse_bad_input_and_change_nothing,
    the_schedule_editor_saves_hours_and_refuses_invalid_times,
    a_channel_token_is_shown_once_and_only_its_hash_is_stored,
    objects_of_another_campaign_answer_404_on_every_campaign_form,
    an_admin_removed_from_a_campaign_loses_it_on_the_next_request,
    users_are_created_edited_and_deactivated_and_changes_reach_their_next_request,
    user_forms_refuse_bad_input_and_change_nothing,
    the_last_active_super_admin_is_protected,
    two_super_admins_deactivating_each_other_leave_one_active,
    categories_follow_their_whole_life_and_the_cancel_modal_follows_at_once,
    category_names_are_unique_by_case_and_accents_also_when_two_admins_race,
    text_typed_anywhere_is_escaped_also_in_the_audit_view,
    users_and_audit_log_page_by_keyset_and_filter,
    categories_page_by_position_and_move_across_page_boundaries,
    a_category_shows_all_its_subcategories_up_to_their_maximum,
    channels_and_tokens_page_on_their_own_without_a_cap,
    the_member_picker_finds_by_name_or_email_prefix_a_page_at_a_time,
);

async fn audit_rows(app: &TestApp) -> i64 {
    app.scalar_i64("select count(*) from audit_log").await
}

/// The summaries of the audit log, newest first.
async fn summaries(app: &TestApp) -> Vec<String> {
    match &app.store {
        relevo::db::Store::Sqlite(p) => {
            sqlx::query_scalar("select summary from audit_log order by at desc, id desc")
                .fetch_all(&p.read)
                .await
                .unwrap()
        }
        relevo::db::Store::Postgres(pg) => {
            sqlx::query_scalar("select summary from audit_log order by at desc, id desc")
                .fetch_all(&pg.pool)
                .await
                .unwrap()
        }
    }
}

async fn csrf(app: &TestApp) -> String {
    csrf_in(&app.get("/mensajes").await.body)
}

async fn csrf_with(app: &TestApp, client: &reqwest::Client) -> String {
    csrf_in(&app.get_with(client, "/mensajes").await.body)
}

async fn user_id(app: &TestApp, email: &str) -> Uuid {
    app.store
        .user_by_email(email)
        .await
        .unwrap()
        .expect("user exists")
        .id
}

/// An open conversation of `campaign`.
async fn open_folio(app: &TestApp, campaign: &str) -> i64 {
    app.folios_where(
        "select c.folio from conversations c join campaigns p on p.id = c.campaign_id \
         where p.name = $1 and c.status in ('assigned', 'in_progress', 'icr') order by c.folio",
        campaign,
    )
    .await[0]
}

async fn category_id(app: &TestApp, campaign: &str, name: &str) -> Uuid {
    let ids = app
        .uuids_where(
            "select c.id from closure_categories c join campaigns p on p.id = c.campaign_id \
             where p.name = $1 order by c.position",
            campaign,
        )
        .await;
    let names = app
        .uuids_where(
            "select c.id from closure_categories c where c.name = $1",
            name,
        )
        .await;
    *ids.iter()
        .find(|id| names.contains(id))
        .expect("category exists")
}

async fn every_admin_page_refuses_an_admin_with_403_and_changes_nothing(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let ventas = app.campaign_id("Ventas Hogar").await;
    let cobranza = app.campaign_id("Cobranza").await;
    let admin = user_id(&app, common::ADMIN_EMAIL).await;
    for path in [
        "/campanas".to_owned(),
        "/campanas/nueva".to_owned(),
        format!("/campanas/{ventas}"),
        format!("/campanas/{ventas}/horario"),
        format!("/campanas/{ventas}/canales"),
        format!("/campanas/{ventas}/miembros"),
        "/usuarios".to_owned(),
        "/usuarios/nuevo".to_owned(),
        format!("/usuarios/{admin}"),
        "/auditoria".to_owned(),
    ] {
        let page = app.get(&path).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}");
        assert!(page.body.contains("No tienes permiso"), "{path}");
    }
    let menu = app.get("/categorias").await;
    assert_eq!(menu.status, StatusCode::OK);
    assert!(menu.body.contains("href=\"/categorias\""));
    assert!(!menu.body.contains("href=\"/usuarios\""));
    assert!(!menu.body.contains("href=\"/campanas\""));
    assert!(!menu.body.contains("href=\"/auditoria\""));

    let before = audit_rows(&app).await;
    let csrf = csrf(&app).await;
    // A forged user form giving the Administrador another campaign.
    let forged = app
        .post_form(
            &format!("/usuarios/{admin}"),
            &[
                ("_csrf", &csrf),
                ("nombre", "Laura Méndez Soto"),
                ("correo", common::ADMIN_EMAIL),
                ("rol", "admin"),
                ("campanas", &ventas.to_string()),
                ("campanas", &cobranza.to_string()),
            ],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let member = app
        .post_form(
            &format!("/campanas/{cobranza}/miembros"),
            &[("_csrf", &csrf), ("usuario", &admin.to_string())],
        )
        .await;
    assert_eq!(member.status, StatusCode::FORBIDDEN);
    for path in [
        "/campanas".to_owned(),
        format!("/campanas/{ventas}/desactivar"),
        format!("/usuarios/{admin}/contrasena"),
        "/usuarios".to_owned(),
    ] {
        let page = app
            .post_form(
                &path,
                &[("_csrf", &csrf), ("nombre", "X"), ("confirmado", "si")],
            )
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(audit_rows(&app).await, before);
    let (_, campaigns) = app.store.account(admin).await.unwrap().unwrap();
    assert_eq!(campaigns.len(), 2);
    assert!(!campaigns.contains(&cobranza));
}

async fn an_admin_gets_404_for_categories_of_campaigns_not_theirs(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let ventas = app.campaign_id("Ventas Hogar").await;
    let cobranza = app.campaign_id("Cobranza").await;
    let foreign = category_id(&app, "Cobranza", "Cliente no responde").await;
    let csrf = csrf(&app).await;
    let before = audit_rows(&app).await;

    let page = app.get(&format!("/categorias?campana={cobranza}")).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get("/categorias?campana=no-es-un-id").await.status,
        StatusCode::NOT_FOUND
    );
    let own = app.get("/categorias").await;
    assert!(own.body.contains("Ventas Hogar"));
    assert!(!own.body.contains("Cobranza"));

    let posts = [
        (format!("/categorias/{cobranza}"), "Nueva"),
        (format!("/categorias/{ventas}/categoria/{foreign}"), "Otro"),
        (
            format!("/categorias/{cobranza}/categoria/{foreign}"),
            "Otro",
        ),
        (
            format!("/categorias/{ventas}/categoria/{foreign}/subcategorias"),
            "Sub",
        ),
        (
            format!("/categorias/{ventas}/categoria/{foreign}/desactivar"),
            "",
        ),
        (
            format!("/categorias/{ventas}/categoria/{foreign}/subir"),
            "",
        ),
        (
            format!("/categorias/{ventas}/subcategoria/{foreign}/reactivar"),
            "",
        ),
        (
            format!("/categorias/{ventas}/categoria/{}", Uuid::nil()),
            "X",
        ),
    ];
    for (path, name) in posts {
        let page = app
            .post_form(
                &path,
                &[("_csrf", &csrf), ("nombre", name), ("confirmado", "si")],
            )
            .await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(audit_rows(&app).await, before);
    let active: Vec<Uuid> = app
        .uuids_where(
            "select id from closure_categories where name = $1 and active = true",
            "Cliente no responde",
        )
        .await;
    assert!(active.contains(&foreign));
}

async fn a_campaign_is_created_renamed_deactivated_and_reactivated(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_super().await;
    let csrf = csrf(&app).await;
    let before = audit_rows(&app).await;

    let created = app
        .post_form(
            "/campanas",
            &[
                ("_csrf", &csrf),
                ("nombre", "  Renovaciones   Hogar "),
                ("zona", "America/Bogota"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    let location = created.location.unwrap();
    assert!(location.ends_with("/horario"));
    let id = app.campaign_id("renovaciones hogar").await;
    assert_eq!(audit_rows(&app).await, before + 1);
    let list = app.get("/campanas").await;
    assert!(list.body.contains("Renovaciones Hogar"));
    assert!(list.body.contains("America/Bogota"));
    assert!(app.get(&location).await.body.contains("Fuera de Horario"));

    let renamed = app
        .post_form(
            &format!("/campanas/{id}"),
            &[
                ("_csrf", &csrf),
                ("nombre", "Renovaciones"),
                ("zona", "America/Mexico_City"),
                ("rezagada_minutos", "45"),
            ],
        )
        .await;
    assert_eq!(renamed.status, StatusCode::SEE_OTHER);
    assert_eq!(
        app.store
            .campaign(id)
            .await
            .unwrap()
            .unwrap()
            .stale_after_minutes,
        45,
        "the Rezagadas threshold is saved with the data"
    );
    assert_eq!(audit_rows(&app).await, before + 2);
    let summary = &summaries(&app).await[0];
    assert!(
        summary.contains("«Renovaciones Hogar» → «Renovaciones»"),
        "{summary}"
    );
    assert!(
        summary.contains("America/Bogota → America/Mexico_City"),
        "{summary}"
    );
    assert!(
        summary.contains("rezagada tras 30 → 45 min sin actividad"),
        "{summary}"
    );
    // Saving the same values changes nothing and audits nothing.
    let same = app
        .post_form(
            &format!("/campanas/{id}"),
            &[
                ("_csrf", &csrf),
                ("nombre", "Renovaciones"),
                ("zona", "America/Mexico_City"),
                ("rezagada_minutos", "45"),
            ],
        )
        .await;
    assert_eq!(same.status, StatusCode::SEE_OTHER);
    assert_eq!(audit_rows(&app).await, before + 2);

    // Deactivation asks first and changes nothing until confirmed.
    let ask = app
        .post_form(&format!("/campanas/{id}/desactivar"), &[("_csrf", &csrf)])
        .await;
    assert_eq!(ask.status, StatusCode::OK);
    assert!(ask.body.contains("¿Desactivar la campaña «Renovaciones»?"));
    assert!(ask.body.contains("name=\"confirmado\" value=\"si\""));
    assert!(app.store.campaign(id).await.unwrap().unwrap().active);
    let done = app
        .post_form(
            &format!("/campanas/{id}/desactivar"),
            &[("_csrf", &csrf), ("confirmado", "si")],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert!(!app.store.campaign(id).await.unwrap().unwrap().active);
    let toast = app.get(&done.location.unwrap()).await;
    assert!(toast.body.contains("Campaña «Renovaciones» desactivada"));
    assert!(
        app.get("/campanas?estado=inactivas")
            .await
            .body
            .contains("Renovaciones")
    );
    assert!(
        !app.get("/campanas?estado=activas")
            .await
            .body
            .contains("Renovaciones")
    );
    let back = app
        .post_form(&format!("/campanas/{id}/reactivar"), &[("_csrf", &csrf)])
        .await;
    assert_eq!(back.status, StatusCode::SEE_OTHER);
    assert!(app.store.campaign(id).await.unwrap().unwrap().active);
    assert_eq!(audit_rows(&app).await, before + 4);
    let audit = app.get("/auditoria").await.body;
    assert!(audit.contains("Campaña reactivada"));
    assert!(audit.contains("Campaña desactivada"));
    assert!(audit.contains("Carlos Ramírez Ortega"));
}

async fn campaign_forms_refuse_bad_input_and_change_nothing(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_super().await;
    let csrf = csrf(&app).await;
    let ventas = app.campaign_id("Ventas Hogar").await;
    let before = audit_rows(&app).await;
    let campaigns = app.scalar_i64("select count(*) from campaigns").await;
    let long = "a".repeat(101);
    let cases: [(&str, &str, &str); 5] = [
        ("   ", "America/Mexico_City", "Escribe un nombre."),
        (&long, "America/Mexico_City", "hasta 100 caracteres"),
        (
            "soporte TECNICO",
            "America/Mexico_City",
            "Ya existe una campaña",
        ),
        ("Nueva", "Mars/Olympus_Mons", "Zona horaria desconocida"),
        ("Nueva", "", "Zona horaria desconocida"),
    ];
    for (name, zone, message) in cases {
        let page = app
            .post_form(
                "/campanas",
                &[("_csrf", &csrf), ("nombre", name), ("zona", zone)],
            )
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{name}");
        assert!(page.body.contains(message), "{name}: {message}");
        assert!(page.body.contains("aria-invalid=\"true\""));
        if name == "soporte TECNICO" {
            assert!(page.body.contains("value=\"soporte TECNICO\""));
        }
        let renamed = app
            .post_form(
                &format!("/campanas/{ventas}"),
                &[
                    ("_csrf", &csrf),
                    ("nombre", name),
                    ("zona", zone),
                    ("rezagada_minutos", "30"),
                ],
            )
            .await;
        assert_eq!(renamed.status, StatusCode::UNPROCESSABLE_ENTITY, "{name}");
        assert!(renamed.body.contains(message), "rename {name}: {message}");
    }
    for minutes in ["0", "10081", "media hora", ""] {
        let refused = app
            .post_form(
                &format!("/campanas/{ventas}"),
                &[
                    ("_csrf", &csrf),
                    ("nombre", "Ventas Hogar"),
                    ("zona", "America/Mexico_City"),
                    ("rezagada_minutos", minutes),
                ],
            )
            .await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{minutes:?}"
        );
        assert!(
            refused.body.contains("número entero entre 1 y 10080"),
            "{minutes:?}: the threshold's own message"
        );
        assert!(refused.body.contains("id=\"campana-rezagada-error\""));
    }
    assert_eq!(audit_rows(&app).await, before);
    assert_eq!(
        app.scalar_i64("select count(*) from campaigns").await,
        campaigns
    );
    assert_eq!(
        app.store.campaign(ventas).await.unwrap().unwrap().name,
        "Ventas Hogar"
    );
    assert_eq!(
        app.get(&format!("/campanas/{}", Uuid::nil())).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/campanas/no-es-un-id/horario").await.status,
        StatusCode::NOT_FOUND
    );
}

fn closed_week() -> Vec<(String, String)> {
    (0..7)
        .flat_map(|d| {
            [
                (format!("modo-{d}"), "cerrado".to_owned()),
                (format!("abre-{d}"), String::new()),
                (format!("cierra-{d}"), String::new()),
            ]
        })
        .collect()
}

fn set(form: &mut [(String, String)], key: &str, value: &str) {
    form.iter_mut().find(|(k, _)| k == key).expect("field").1 = value.to_owned();
}

async fn post_pairs(
    app: &TestApp,
    path: &str,
    csrf: &str,
    pairs: &[(String, String)],
) -> common::Page {
    let mut form: Vec<(&str, &str)> = vec![("_csrf", csrf)];
    form.extend(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    app.post_form(path, &form).await
}

async fn the_schedule_editor_saves_hours_and_refuses_invalid_times(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_super().await;
    let csrf = csrf(&app).await;
    let id = app.campaign_id("Cobranza").await;
    let path = format!("/campanas/{id}/horario");
    let before = audit_rows(&app).await;

    let mut week = closed_week();
    set(&mut week, "modo-4", "horario");
    set(&mut week, "abre-4", "22:00");
    set(&mut week, "cierra-4", "02:00");
    set(&mut week, "modo-6", "24h");
    let saved = post_pairs(&app, &path, &csrf, &week).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let days = app.store.campaign_schedule(id).await.unwrap();
    let described: Vec<String> = days.iter().map(|d| d.describe()).collect();
    assert_eq!(described, vec!["Vie 22:00–02:00 (+1 día)", "Dom 24 horas"]);
    assert_eq!(audit_rows(&app).await, before + 1);
    let summary = &summaries(&app).await[0];
    assert!(summary.contains("antes Lun 08:00–20:00"), "{summary}");
    assert!(
        summary.contains("ahora Vie 22:00–02:00 (+1 día), Dom 24 horas"),
        "{summary}"
    );
    let page = app.get(&path).await.body;
    assert!(page.contains("value=\"22:00\""));

    for (opens, closes, message) in [
        ("25:00", "18:00", "Hora no válida"),
        ("09:00", "09:00", "debe ser distinta de la de apertura"),
        ("", "18:00", "Escribe la hora"),
        ("9am", "18:00", "Hora no válida"),
    ] {
        let mut bad = week.clone();
        set(&mut bad, "modo-0", "horario");
        set(&mut bad, "abre-0", opens);
        set(&mut bad, "cierra-0", closes);
        let page = post_pairs(&app, &path, &csrf, &bad).await;
        assert_eq!(
            page.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{opens}-{closes}"
        );
        assert!(page.body.contains(message), "{opens}-{closes}");
        assert!(page.body.contains(&format!("value=\"{opens}\"")));
    }
    let mut bad = week.clone();
    set(&mut bad, "modo-2", "siempre");
    assert_eq!(
        post_pairs(&app, &path, &csrf, &bad).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(app.store.campaign_schedule(id).await.unwrap(), days);
    assert_eq!(audit_rows(&app).await, before + 1);
}

fn token_in(html: &str, prefix: &str) -> String {
    let start = html
        .find(&format!("value=\"{prefix}"))
        .expect("token shown")
        + 7;
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_owned()
}

async fn a_channel_token_is_shown_once_and_only_its_hash_is_stored(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_super().await;
    let csrf = csrf(&app).await;
    let id = app.campaign_id("Seguros Auto").await;
    let before = audit_rows(&app).await;

    let created = app
        .post_form(
            &format!("/campanas/{id}/canales"),
            &[
                ("_csrf", &csrf),
                ("tipo", "instagram"),
                ("nombre", "IG Seguros"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::OK);
    assert_eq!(created.headers["cache-control"], "no-store, max-age=0");
    let token = token_in(&created.body, "rlv_ch_");
    assert!(created.body.contains("no se volverá a mostrar"));
    let hashes = app
        .uuids_where("select id from channels where name = $1", "IG Seguros")
        .await;
    assert_eq!(hashes.len(), 1);
    let stored = app
        .folios_where(
            "select count(*) from channels where token_hash = $1",
            &relevo::db::token_hash(&token),
        )
        .await;
    assert_eq!(stored, vec![1]);
    let plain = app
        .folios_where(
            "select count(*) from channels where token_hash = $1",
            &token,
        )
        .await;
    assert_eq!(plain, vec![0]);
    let page = app.get(&format!("/campanas/{id}/canales")).await.body;
    assert!(page.contains("IG Seguros"));
    assert!(!page.contains(&token));

    // Rotation asks first, then shows a new token once; the old one is gone.
    let channel = hashes[0];
    let deliver = |token: String, n: u32| {
        let app = &app;
        async move {
            app.api_call(
                reqwest::Method::POST,
                &format!("/api/v1/channels/{channel}/messages"),
                Some(&token),
                Some(serde_json::json!({"message_id": format!("rot-{n}"), "from": "5215599990000", "text": "Hola"})),
            )
            .await
            .0
        }
    };
    assert_eq!(deliver(token.clone(), 1).await, StatusCode::CREATED);
    let path = format!("/campanas/{id}/canales/{channel}/rotar");
    let ask = app.post_form(&path, &[("_csrf", &csrf)]).await;
    assert!(ask.body.contains("¿Rotar el token"));
    assert_eq!(audit_rows(&app).await, before + 1);
    let rotated = app
        .post_form(&path, &[("_csrf", &csrf), ("confirmado", "si")])
        .await;
    let fresh = token_in(&rotated.body, "rlv_ch_");
    assert_ne!(fresh, token);
    let old = app
        .folios_where(
            "select count(*) from channels where token_hash = $1",
            &relevo::db::token_hash(&token),
        )
        .await;
    assert_eq!(old, vec![0]);
    // Over the API too, at once (the token was just used, and remembered).
    assert_eq!(deliver(token.clone(), 2).await, StatusCode::UNAUTHORIZED);
    assert_eq!(deliver(fresh.clone(), 3).await, StatusCode::OK);
    assert_eq!(audit_rows(&app).await, before + 2);
    assert!(!summaries(&app).await[0].contains(&fresh));

    // Integration tokens: shown once, hashed, revocable.
    let made = app
        .post_form(
            &format!("/campanas/{id}/tokens"),
            &[("_csrf", &csrf), ("nombre", "Motor del bot")],
        )
        .await;
    assert_eq!(made.status, StatusCode::OK);
    let secret = token_in(&made.body, "rlv_");
    assert_eq!(
        app.store.integration_token_campaign(&secret).await.unwrap(),
        Some(id)
    );
    let token_id = app
        .uuids_where(
            "select id from integration_tokens where name = $1",
            "Motor del bot",
        )
        .await[0];
    assert!(
        !app.get(&format!("/campanas/{id}/canales"))
            .await
            .body
            .contains(&secret)
    );
    let unknown = format!("/api/v1/conversations/{}", uuid::Uuid::now_v7());
    let (status, _) = app
        .api_call(reqwest::Method::GET, &unknown, Some(&secret), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "authenticated, unknown id");
    let revoke = format!("/campanas/{id}/tokens/{token_id}/revocar");
    app.post_form(&revoke, &[("_csrf", &csrf)]).await;
    assert!(
        app.store
            .integration_token_campaign(&secret)
            .await
            .unwrap()
            .is_some()
    );
    let revoked = app
        .post_form(&revoke, &[("_csrf", &csrf), ("confirmado", "si")])
        .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER);
    assert_eq!(
        app.store.integration_token_campaign(&secret).await.unwrap(),
        None
    );
    let (status, _) = app
        .api_call(reqwest::Method::GET, &unknown, Some(&secret), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "revoked: refused at once");
    assert_eq!(audit_rows(&app).await, before + 4);

    // Bad input: no kind, empty name.
    let bad = app
        .post_form(
            &format!("/campanas/{id}/canales"),
            &[("_csrf", &csrf), ("tipo", "fax"), ("nombre", "")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("Elige el tipo de canal."));
    assert!(bad.body.contains("Escribe un nombre."));
    assert_eq!(audit_rows(&app).await, before + 4);
}

async fn objects_of_another_campaign_answer_404_on_every_campaign_form(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_super().await;
    let csrf = csrf(&app).await;
    let ventas = app.campaign_id("Ventas Hogar").await;
    let cobranza = app.campaign_id("Cobranza").await;
    let foreign_channel = app
        .uuids_where(
            "select h.id from channels h join campaigns p on p.id = h.campaign_id where p.name = $1",
            "Cobranza",
        )
        .await[0];
    let (_, token) = app
        .store
        .create_campaign_token(
            user_id(&app, common::SUPER_EMAIL).await,
            cobranza,
            &relevo::domain::admin::Name::parse("Cobranza bot").unwrap(),
            Ts::now(),
        )
        .await
        .unwrap()
        .unwrap();
    let foreign_token = app
        .uuids_where(
            "select id from integration_tokens where name = $1",
            "Cobranza bot",
        )
        .await[0];
    let agent_elsewhere = app
        .uuids_where(
            "select u.id from users u join campaign_members m on m.user_id = u.id \
             join campaigns p on p.id = m.campaign_id where p.name = $1 and u.role = 'agent'",
            "Cobranza",
        )
        .await[0];
    let before = audit_rows(&app).await;
    for path in [
        format!("/campanas/{ventas}/canales/{foreign_channel}/rotar"),
        format!("/campanas/{ventas}/canales/{foreign_channel}/desactivar"),
        format!("/campanas/{ventas}/tokens/{foreign_token}/revocar"),
        format!("/campanas/{ventas}/miembros/{agent_elsewhere}/quitar"),
        format!("/campanas/{}/canales", Uuid::nil()),
    ] {
        let page = app
            .post_form(
                &path,
                &[
                    ("_csrf", &csrf),
                    ("confirmado", "si"),
                    ("tipo", "web"),
                    ("nombre", "x"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
    }
    let unknown_member = app
        .post_form(
            &format!("/campanas/{ventas}/miembros"),
            &[("_csrf", &csrf), ("usuario", &Uuid::nil().to_string())],
        )
        .await;
    assert_eq!(unknown_member.status, StatusCode::NOT_FOUND);
    assert_eq!(audit_rows(&app).await, before);
    assert_eq!(
        app.store.integration_token_campaign(&token).await.unwrap(),
        Some(cobranza)
    );
}

async fn an_admin_removed_from_a_campaign_loses_it_on_the_next_request(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let admin_client = new_client();
    let page = app
        .login_with(&admin_client, common::ADMIN_EMAIL, common::ADMIN_PASSWORD)
        .await;
    assert_eq!(page.location.as_deref(), Some("/mensajes"));
    let folio = open_folio(&app, "Ventas Hogar").await;
    let ventas = app.campaign_id("Ventas Hogar").await;
    let detail = format!("/mensajes/{folio}");
    assert_eq!(
        app.get_with(&admin_client, &detail).await.status,
        StatusCode::OK
    );

    app.login_as_super().await;
    let csrf = csrf(&app).await;
    let admin = user_id(&app, common::ADMIN_EMAIL).await;
    // The picker finds people not yet assigned, by the start of their name
    // without case or accents.
    let picker = app
        .get(&format!(
            "/campanas/{}/miembros?buscar=LAURA%20mendez",
            app.campaign_id("Cobranza").await
        ))
        .await
        .body;
    assert!(picker.contains("Laura Méndez Soto"));
    let listed = app.get(&format!("/campanas/{ventas}/miembros")).await.body;
    assert!(listed.contains("Laura Méndez Soto"));

    let before = audit_rows(&app).await;
    let remove = format!("/campanas/{ventas}/miembros/{admin}/quitar");
    let ask = app.post_form(&remove, &[("_csrf", &csrf)]).await;
    assert!(ask.body.contains("¿Quitar a Laura Méndez Soto"));
    let removed = app
        .post_form(&remove, &[("_csrf", &csrf), ("confirmado", "si")])
        .await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER);
    assert_eq!(audit_rows(&app).await, before + 1);
    // The very next request of the Administrador no longer sees it.
    assert_eq!(
        app.get_with(&admin_client, &detail).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get_with(&admin_client, &format!("/categorias?campana={ventas}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let added = app
        .post_form(
            &format!("/campanas/{ventas}/miembros"),
            &[("_csrf", &csrf), ("usuario", &admin.to_string())],
        )
        .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER);
    assert_eq!(
        app.get_with(&admin_client, &detail).await.status,
        StatusCode::OK
    );
    assert_eq!(audit_rows(&app).await, before + 2);
    let summary = &summaries(&app).await[0];
    assert!(
        summary.contains("Administrador «Laura Méndez Soto» asignado a la campaña «Ventas Hogar»")
    );

    // A Super Administrador cannot be "assigned": they see everything.
    let me = user_id(&app, common::SUPER_EMAIL).await;
    let refused = app
        .post_form(
            &format!("/campanas/{ventas}/miembros"),
            &[("_csrf", &csrf), ("usuario", &me.to_string())],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused
            .body
            .contains("ya tiene acceso a todas las campañas")
    );
    // Deactivating the campaign also takes it away on the next request.
    app.post_form(
        &format!("/campanas/{ventas}/desactivar"),
        &[("_csrf", &csrf), ("confirmado", "si")],
    )
    .await;
    assert_eq!(
        app.get_with(&admin_client, &detail).await.status,
        StatusCode::NOT_FOUND
    );
}

async fn users_are_created_edited_and_deactivated_and_changes_reach_their_next_request(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_super().await;
    let csrf = csrf(&app).await;
    let cobranza = app.campaign_id("Cobranza").await;
    let seguros = app.campaign_id("Seguros Auto").await;
    let before = audit_rows(&app).await;
    let password = "caballo-bateria-grapa-7";

    let created = app
        .post_form(
            "/usuarios",
            &[
                ("_csrf", &csrf),
                ("nombre", "Ana Torres"),
                ("correo", " Ana.Torres@Relevo.Demo "),
                ("rol", "admin"),
                ("campanas", &cobranza.to_string()),
                ("contrasena", password),
                ("confirmacion", password),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    let ana = user_id(&app, "ana.torres@relevo.demo").await;
    assert_eq!(audit_rows(&app).await, before + 1);
    let summary = &summaries(&app).await[0];
    assert!(
        summary.contains("Usuario «Ana Torres» <ana.torres@relevo.demo> creado como Administrador")
    );
    assert!(!summary.contains(password));
    let hash = app
        .uuids_where(
            "select id from users where password_hash like $1",
            "$argon2id$%",
        )
        .await;
    assert!(hash.contains(&ana));

    let ana_client = new_client();
    let login = app
        .login_with(&ana_client, "ana.torres@relevo.demo", password)
        .await;
    assert_eq!(login.location.as_deref(), Some("/mensajes"));
    let cobranza_folio = open_folio(&app, "Cobranza").await;
    let seguros_folio = open_folio(&app, "Seguros Auto").await;
    assert_eq!(
        app.get_with(&ana_client, &format!("/mensajes/{cobranza_folio}"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.get_with(&ana_client, &format!("/mensajes/{seguros_folio}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // Her campaigns change: the next request follows.
    let edited = app
        .post_form(
            &format!("/usuarios/{ana}"),
            &[
                ("_csrf", &csrf),
                ("nombre", "Ana Torres Vega"),
                ("correo", "ana.torres@relevo.demo"),
                ("rol", "admin"),
                ("campanas", &seguros.to_string()),
            ],
        )
        .await;
    assert_eq!(edited.status, StatusCode::SEE_OTHER);
    assert_eq!(audit_rows(&app).await, before + 2);
    let summary = &summaries(&app).await[0];
    assert!(
        summary.contains("nombre «Ana Torres» → «Ana Torres Vega»"),
        "{summary}"
    );
    assert!(
        summary.contains("campañas agregadas: Seguros Auto"),
        "{summary}"
    );
    assert!(summary.contains("campañas quitadas: Cobranza"), "{summary}");
    assert_eq!(
        app.get_with(&ana_client, &format!("/mensajes/{seguros_folio}"))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.get_with(&ana_client, &format!("/mensajes/{cobranza_folio}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // Promoted to Super Administrador: sees every campaign and admin page.
    app.post_form(
        &format!("/usuarios/{ana}"),
        &[
            ("_csrf", &csrf),
            ("nombre", "Ana Torres Vega"),
            ("correo", "ana.torres@relevo.demo"),
            ("rol", "super_admin"),
        ],
    )
    .await;
    assert_eq!(
        app.get_with(&ana_client, "/usuarios").await.status,
        StatusCode::OK
    );
    // Demoted to Agente: she can no longer use the console at all.
    app.post_form(
        &format!("/usuarios/{ana}"),
        &[
            ("_csrf", &csrf),
            ("nombre", "Ana Torres Vega"),
            ("correo", "ana.torres@relevo.demo"),
            ("rol", "agent"),
        ],
    )
    .await;
    assert_eq!(
        app.get_with(&ana_client, "/mensajes")
            .await
            .location
            .as_deref(),
        Some("/login")
    );
    assert_eq!(audit_rows(&app).await, before + 4);

    // Filters of the list.
    let agents = app.get("/usuarios?rol=agent").await.body;
    assert!(agents.contains("Ana Torres Vega"));
    assert!(!agents.contains("Laura Méndez Soto"));
    let by_campaign = app.get(&format!("/usuarios?campana={cobranza}")).await.body;
    assert!(!by_campaign.contains("Ana Torres Vega"));

    // Deactivate (asked first) and reactivate.
    let path = format!("/usuarios/{ana}/desactivar");
    let ask = app.post_form(&path, &[("_csrf", &csrf)]).await;
    assert!(ask.body.contains("¿Desactivar a Ana Torres Vega?"));
    let done = app
        .post_form(&path, &[("_csrf", &csrf), ("confirmado", "si")])
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert!(
        app.get("/usuarios?estado=inactivos")
            .await
            .body
            .contains("Ana Torres Vega")
    );
    assert!(
        !app.get("/usuarios?estado=activos")
            .await
            .body
            .contains("Ana Torres Vega")
    );
    app.post_form(&format!("/usuarios/{ana}/reactivar"), &[("_csrf", &csrf)])
        .await;
    assert!(
        app.get("/usuarios?estado=activos")
            .await
            .body
            .contains("Ana Torres Vega")
    );
    assert_eq!(audit_rows(&app).await, before + 6);

    // A password for an Administrador: set, audited without the password,
    // and the old one stops working.
    let laura = user_id(&app, common::ADMIN_EMAIL).await;
    let new_password = "otra-frase-larga-2027";
    let set = app
        .post_form(
            &format!("/usuarios/{laura}/contrasena"),
            &[
                ("_csrf", &csrf),
                ("contrasena", new_password),
                ("confirmacion", new_password),
            ],
        )
        .await;
    assert_eq!(set.status, StatusCode::SEE_OTHER);
    assert!(
        summaries(&app).await[0].starts_with("Contraseña establecida para «Laura Méndez Soto»")
    );
    assert!(!summaries(&app).await[0].contains(new_password));
    let fresh = new_client();
    let old = app
        .login_with(&fresh, common::ADMIN_EMAIL, common::ADMIN_PASSWORD)
        .await;
    assert_ne!(old.location.as_deref(), Some("/mensajes"));
    let ok = app
        .login_with(&fresh, common::ADMIN_EMAIL, new_password)
        .await;
    assert_eq!(ok.location.as_deref(), Some("/mensajes"));
}

async fn user_forms_refuse_bad_input_and_change_nothing(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_super().await;
    let csrf = csrf(&app).await;
    let before = audit_rows(&app).await;
    let users = app.scalar_i64("select count(*) from users").await;
    let good = "caballo-bateria-grapa-7";
    let long = "x".repeat(101);
    let nil = Uuid::nil().to_string();
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![("nombre", ""), ("correo", "a@b.mx"), ("rol", "agent")],
            "Escribe un nombre.",
        ),
        (
            vec![("nombre", &long), ("correo", "a@b.mx"), ("rol", "agent")],
            "hasta 100 caracteres",
        ),
        (
            vec![
                ("nombre", "Ana"),
                ("correo", "ana.relevo.mx"),
                ("rol", "agent"),
            ],
            "correo electrónico válido",
        ),
        (
            vec![
                ("nombre", "Ana"),
                ("correo", "ADMIN@Relevo.Demo"),
                ("rol", "agent"),
            ],
            "Ya existe un usuario con ese correo",
        ),
        (
            vec![("nombre", "Ana"), ("correo", "a@b.mx"), ("rol", "jefe")],
            "Elige un rol.",
        ),
        (
            vec![
                ("nombre", "Ana"),
                ("correo", "a@b.mx"),
                ("rol", "agent"),
                ("campanas", &nil),
            ],
            "Una de las campañas elegidas no existe.",
        ),
        (
            vec![
                ("nombre", "Ana"),
                ("correo", "a@b.mx"),
                ("rol", "admin"),
                ("contrasena", "corta"),
                ("confirmacion", "corta"),
            ],
            "al menos 12 caracteres",
        ),
        (
            vec![
                ("nombre", "Ana"),
                ("correo", "a@b.mx"),
                ("rol", "admin"),
                ("contrasena", "Password1234"),
                ("confirmacion", "Password1234"),
            ],
            "demasiado común",
        ),
        (
            vec![
                ("nombre", "Ana"),
                ("correo", "a@b.mx"),
                ("rol", "admin"),
                ("contrasena", good),
                ("confirmacion", "otra"),
            ],
            "La confirmación no coincide",
        ),
    ];
    for (fields, message) in cases {
        let mut form = vec![("_csrf", csrf.as_str())];
        form.extend(fields.iter().copied());
        let page = app.post_form("/usuarios", &form).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{message}");
        assert!(page.body.contains(message), "{message}");
        assert!(page.body.contains("aria-invalid=\"true\""), "{message}");
    }
    // Editing: an e-mail taken by someone else (case-insensitively).
    let laura = user_id(&app, common::ADMIN_EMAIL).await;
    let taken = app
        .post_form(
            &format!("/usuarios/{laura}"),
            &[
                ("_csrf", &csrf),
                ("nombre", "Laura"),
                ("correo", "SUPER@relevo.demo"),
                ("rol", "admin"),
            ],
        )
        .await;
    assert_eq!(taken.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(taken.body.contains("value=\"SUPER@relevo.demo\""));
    let weak = app
        .post_form(
            &format!("/usuarios/{laura}/contrasena"),
            &[
                ("_csrf", &csrf),
                ("contrasena", "123456789012"),
                ("confirmacion", "123456789012"),
            ],
        )
        .await;
    assert_eq!(weak.status, StatusCode::UNPROCESSABLE_ENTITY);
    let agent = app
        .uuids_where("select id from users where role = $1", "agent")
        .await[0];
    let for_agent = app
        .post_form(
            &format!("/usuarios/{agent}/contrasena"),
            &[
                ("_csrf", &csrf),
                ("contrasena", good),
                ("confirmacion", good),
            ],
        )
        .await;
    assert!(for_agent.body.contains("no necesitan contraseña"));
    assert_eq!(
        app.get(&format!("/usuarios/{}", Uuid::nil())).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(audit_rows(&app).await, before);
    assert_eq!(app.scalar_i64("select count(*) from users").await, users);
    assert_eq!(
        app.store
            .user_by_email(common::ADMIN_EMAIL)
            .await
            .unwrap()
            .unwrap()
            .name,
        "Laura Méndez Soto"
    );
}

async fn the_last_active_super_admin_is_protected(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_super().await;
    let csrf = csrf(&app).await;
    let me = user_id(&app, common::SUPER_EMAIL).await;
    let before = audit_rows(&app).await;
    // Through the pages: one's own account is never deactivated or demoted.
    let own = app
        .post_form(
            &format!("/usuarios/{me}/desactivar"),
            &[("_csrf", &csrf), ("confirmado", "si")],
        )
        .await;
    assert_eq!(own.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(own.body.contains("No puedes desactivar tu propia cuenta."));
    let demote = app
        .post_form(
            &format!("/usuarios/{me}"),
            &[
                ("_csrf", &csrf),
                ("nombre", "Carlos"),
                ("correo", common::SUPER_EMAIL),
                ("rol", "admin"),
            ],
        )
        .await;
    assert_eq!(demote.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(demote.body.contains("No puedes cambiar tu propio rol."));
    // In the Store, whoever asks: the last active one stays.
    let other = app
        .create_user(
            "otro@relevo.demo",
            Role::Admin,
            "caballo-bateria-grapa-7",
            &[],
        )
        .await;
    assert_eq!(
        app.store
            .set_account_active(other, me, false, Ts::now())
            .await
            .unwrap(),
        Err(Refusal::LastSuperAdmin)
    );
    let input = relevo::db::AccountInput {
        name: relevo::domain::admin::Name::parse("Carlos").unwrap(),
        email: relevo::domain::text::Email::parse(common::SUPER_EMAIL).unwrap(),
        role: Role::Admin,
        campaigns: Vec::new(),
    };
    assert_eq!(
        app.store
            .update_account(other, me, &input, Ts::now())
            .await
            .unwrap(),
        Err(Refusal::LastSuperAdmin)
    );
    // With a second Super Administrador, one may deactivate the other, and
    // then the remaining one is the last.
    let second = app
        .create_user(
            "segundo@relevo.demo",
            Role::SuperAdmin,
            "caballo-bateria-grapa-7",
            &[],
        )
        .await;
    let audit_now = audit_rows(&app).await;
    assert_eq!(audit_now, before + 2, "only the two user creations");
    assert_eq!(
        app.store
            .set_account_active(second, me, false, Ts::now())
            .await
            .unwrap(),
        Ok(true)
    );
    assert_eq!(
        app.store
            .set_account_active(me, second, false, Ts::now())
            .await
            .unwrap(),
        Err(Refusal::LastSuperAdmin)
    );
    assert_eq!(audit_rows(&app).await, audit_now + 1);
    assert_eq!(
        app.scalar_i64("select count(*) from users where role = 'super_admin' and active = true")
            .await,
        1
    );
}

async fn two_super_admins_deactivating_each_other_leave_one_active(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let me = user_id(&app, common::SUPER_EMAIL).await;
    let second = app
        .create_user(
            "segundo@relevo.demo",
            Role::SuperAdmin,
            "caballo-bateria-grapa-7",
            &[],
        )
        .await;
    let before = audit_rows(&app).await;
    for _ in 0..5 {
        let (a, b) = tokio::join!(
            app.store.set_account_active(me, second, false, Ts::now()),
            app.store.set_account_active(second, me, false, Ts::now())
        );
        let outcomes = [a.unwrap(), b.unwrap()];
        assert_eq!(outcomes.iter().filter(|o| **o == Ok(true)).count(), 1);
        assert_eq!(
            outcomes
                .iter()
                .filter(|o| **o == Err(Refusal::LastSuperAdmin))
                .count(),
            1
        );
        assert_eq!(
            app.scalar_i64(
                "select count(*) from users where role = 'super_admin' and active = true"
            )
            .await,
            1
        );
        // Put both back for the next round.
        for id in [me, second] {
            app.store
                .set_account_active(me, id, true, Ts::now())
                .await
                .unwrap()
                .unwrap();
        }
    }
    assert_eq!(audit_rows(&app).await, before + 10);
}

async fn modal_categories(app: &TestApp, client: &reqwest::Client, folio: i64) -> String {
    let page = app
        .get_with(client, &format!("/mensajes/{folio}/acciones"))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    page.body
}

async fn categories_follow_their_whole_life_and_the_cancel_modal_follows_at_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let csrf = csrf(&app).await;
    let ventas = app.campaign_id("Ventas Hogar").await;
    let folio = open_folio(&app, "Ventas Hogar").await;
    let before = audit_rows(&app).await;

    let created = app
        .post_form(
            &format!("/categorias/{ventas}"),
            &[("_csrf", &csrf), ("nombre", "Promoción vencida")],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER);
    let page = app.get(&created.location.unwrap()).await.body;
    assert!(page.contains("Categoría «Promoción vencida» creada"));
    let id = category_id(&app, "Ventas Hogar", "Promoción vencida").await;
    assert!(
        modal_categories(&app, &app.client, folio)
            .await
            .contains("Promoción vencida")
    );
    for sub in ["Cupón expirado", "Precio cambió"] {
        let made = app
            .post_form(
                &format!("/categorias/{ventas}/categoria/{id}/subcategorias"),
                &[("_csrf", &csrf), ("nombre", sub)],
            )
            .await;
        assert_eq!(made.status, StatusCode::SEE_OTHER);
    }
    let subs = app
        .get(&format!("/mensajes/{folio}/subcategorias?categoria={id}"))
        .await
        .body;
    assert!(subs.contains("Cupón expirado") && subs.contains("Precio cambió"));

    // Rename, reorder.
    let renamed = app
        .post_form(
            &format!("/categorias/{ventas}/categoria/{id}"),
            &[("_csrf", &csrf), ("nombre", "Promoción caducada")],
        )
        .await;
    assert_eq!(renamed.status, StatusCode::SEE_OTHER);
    assert!(
        summaries(&app).await[0].contains("«Promoción vencida» renombrada a «Promoción caducada»")
    );
    let order = |body: &str| body.find("Promoción caducada").unwrap();
    let first_pos = order(&modal_categories(&app, &app.client, folio).await);
    // Twice: the first swap passes the (inactive, not offered) "Prueba interna".
    for _ in 0..2 {
        let up = app
            .post_form(
                &format!("/categorias/{ventas}/categoria/{id}/subir"),
                &[("_csrf", &csrf)],
            )
            .await;
        assert_eq!(up.status, StatusCode::SEE_OTHER);
    }
    assert!(order(&modal_categories(&app, &app.client, folio).await) < first_pos);
    let sub = app
        .uuids_where(
            "select id from closure_subcategories where name = $1",
            "Precio cambió",
        )
        .await[0];
    app.post_form(
        &format!("/categorias/{ventas}/subcategoria/{sub}/subir"),
        &[("_csrf", &csrf)],
    )
    .await;
    let subs = app
        .get(&format!("/mensajes/{folio}/subcategorias?categoria={id}"))
        .await
        .body;
    assert!(subs.find("Precio cambió").unwrap() < subs.find("Cupón expirado").unwrap());

    // Deactivating (after confirmation) removes it from the modal at once;
    // reactivating brings it back.
    let ask = app
        .post_form(
            &format!("/categorias/{ventas}/categoria/{id}/desactivar"),
            &[("_csrf", &csrf)],
        )
        .await;
    assert!(
        ask.body
            .contains("¿Desactivar la categoría «Promoción caducada»?")
    );
    assert!(
        modal_categories(&app, &app.client, folio)
            .await
            .contains("Promoción caducada")
    );
    app.post_form(
        &format!("/categorias/{ventas}/categoria/{id}/desactivar"),
        &[("_csrf", &csrf), ("confirmado", "si")],
    )
    .await;
    assert!(
        !modal_categories(&app, &app.client, folio)
            .await
            .contains("Promoción caducada")
    );
    let listed = app.get(&format!("/categorias?campana={ventas}")).await.body;
    assert!(listed.contains("Promoción caducada") && listed.contains("Inactiva"));
    app.post_form(
        &format!("/categorias/{ventas}/categoria/{id}/reactivar"),
        &[("_csrf", &csrf)],
    )
    .await;
    assert!(
        modal_categories(&app, &app.client, folio)
            .await
            .contains("Promoción caducada")
    );
    app.post_form(
        &format!("/categorias/{ventas}/subcategoria/{sub}/desactivar"),
        &[("_csrf", &csrf), ("confirmado", "si")],
    )
    .await;
    let subs = app
        .get(&format!("/mensajes/{folio}/subcategorias?categoria={id}"))
        .await
        .body;
    assert!(!subs.contains("Precio cambió") && subs.contains("Cupón expirado"));
    // create + 2 subs + rename + 3 moves + deactivate + reactivate + sub deactivate
    assert_eq!(audit_rows(&app).await, before + 10);

    // A category used by history is never deleted: its name stays there.
    let used = category_id(&app, "Ventas Hogar", "Cliente no responde").await;
    let closed = app
        .folios_where(
            "select c.folio from conversations c \
             join closure_categories k on k.id = c.closure_category_id \
             join campaigns p on p.id = c.campaign_id \
             where k.name = $1 and p.name = 'Ventas Hogar' order by c.folio",
            "Cliente no responde",
        )
        .await;
    assert!(!closed.is_empty());
    app.post_form(
        &format!("/categorias/{ventas}/categoria/{used}/desactivar"),
        &[("_csrf", &csrf), ("confirmado", "si")],
    )
    .await;
    let still = app
        .uuids_where(
            "select id from closure_categories where name = $1 and active = false",
            "Cliente no responde",
        )
        .await;
    assert!(still.contains(&used));
    let detail = app.get(&format!("/mensajes/{}", closed[0])).await.body;
    assert!(detail.contains("Cliente no responde"));
    assert!(
        !modal_categories(&app, &app.client, folio)
            .await
            .contains("Cliente no responde")
    );
}

async fn category_names_are_unique_by_case_and_accents_also_when_two_admins_race(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let csrf = csrf(&app).await;
    let ventas = app.campaign_id("Ventas Hogar").await;
    let before = audit_rows(&app).await;
    let existing = category_id(&app, "Ventas Hogar", "Cliente no responde").await;
    let long = "c".repeat(101);
    for (name, message) in [
        (
            "CLIENTE no respondé",
            "Ya existe una categoría con ese nombre",
        ),
        ("  ", "Escribe un nombre."),
        (long.as_str(), "hasta 100 caracteres"),
    ] {
        let page = app
            .post_form(
                &format!("/categorias/{ventas}"),
                &[("_csrf", &csrf), ("nombre", name)],
            )
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{name}");
        assert!(page.body.contains(message), "{name}");
        assert!(
            page.body
                .contains("aria-invalid=\"true\" aria-describedby=\"nueva-categoria-error\"")
        );
        let renamed = app
            .post_form(
                &format!(
                    "/categorias/{ventas}/categoria/{}",
                    category_id(&app, "Ventas Hogar", "Spam o abuso").await
                ),
                &[("_csrf", &csrf), ("nombre", name)],
            )
            .await;
        assert_eq!(
            renamed.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "rename {name}"
        );
    }
    let sub_dup = app
        .post_form(
            &format!("/categorias/{ventas}/categoria/{existing}/subcategorias"),
            &[("_csrf", &csrf), ("nombre", "numero EQUIVOCADO")],
        )
        .await;
    assert_eq!(sub_dup.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        sub_dup
            .body
            .contains("Ya existe una subcategoría con ese nombre")
    );
    assert!(sub_dup.body.contains("value=\"numero EQUIVOCADO\""));
    // The same name in another campaign is fine.
    assert_eq!(audit_rows(&app).await, before);

    // Two administrators race for one new name: one wins, one gets the field error.
    let super_client = new_client();
    app.login_with(&super_client, common::SUPER_EMAIL, common::SUPER_PASSWORD)
        .await;
    let super_csrf = csrf_with(&app, &super_client).await;
    let admin_client = new_client();
    app.login_with(&admin_client, common::ADMIN_EMAIL, common::ADMIN_PASSWORD)
        .await;
    let admin_csrf = csrf_with(&app, &admin_client).await;
    for round in 0..3 {
        let name = format!("Carrera {round}");
        let path = format!("/categorias/{ventas}");
        let upper = name.to_uppercase();
        let first = [("_csrf", super_csrf.as_str()), ("nombre", name.as_str())];
        let second = [("_csrf", admin_csrf.as_str()), ("nombre", upper.as_str())];
        let (a, b) = tokio::join!(
            app.post_form_with(&super_client, &path, &first),
            app.post_form_with(&admin_client, &path, &second)
        );
        let statuses = [a.status, b.status];
        assert!(statuses.contains(&StatusCode::SEE_OTHER), "{statuses:?}");
        assert!(
            statuses.contains(&StatusCode::UNPROCESSABLE_ENTITY),
            "{statuses:?}"
        );
        let loser = if a.status == StatusCode::UNPROCESSABLE_ENTITY {
            a
        } else {
            b
        };
        assert!(
            loser
                .body
                .contains("Ya existe una categoría con ese nombre")
        );
    }
    assert_eq!(audit_rows(&app).await, before + 3);
}

async fn text_typed_anywhere_is_escaped_also_in_the_audit_view(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_super().await;
    let csrf = csrf(&app).await;
    let evil = "<img src=x onerror=alert(1)>";
    let ventas = app.campaign_id("Ventas Hogar").await;
    let created = app
        .post_form(
            "/campanas",
            &[
                ("_csrf", &csrf),
                ("nombre", evil),
                ("zona", "America/Mexico_City"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER);
    app.post_form(
        &format!("/categorias/{ventas}"),
        &[("_csrf", &csrf), ("nombre", evil)],
    )
    .await;
    app.post_form(
        &format!("/campanas/{ventas}/canales"),
        &[("_csrf", &csrf), ("tipo", "web"), ("nombre", evil)],
    )
    .await;
    app.post_form(
        "/usuarios",
        &[
            ("_csrf", &csrf),
            ("nombre", evil),
            ("correo", "x@relevo.demo"),
            ("rol", "agent"),
        ],
    )
    .await;
    let bad = app
        .post_form(
            "/usuarios",
            &[
                ("_csrf", &csrf),
                ("nombre", evil),
                ("correo", evil),
                ("rol", "agent"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    for path in [
        "/campanas".to_owned(),
        format!("/categorias?campana={ventas}"),
        format!("/campanas/{ventas}/canales"),
        "/usuarios".to_owned(),
        "/auditoria".to_owned(),
    ] {
        let body = app.get(&path).await.body;
        assert!(!body.contains(evil), "{path} shows raw HTML");
        assert!(body.contains("&#60;img"), "{path} shows the escaped text");
    }
    assert!(!bad.body.contains(evil));
}

async fn users_and_audit_log_page_by_keyset_and_filter(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_super().await;
    let me = user_id(&app, common::SUPER_EMAIL).await;
    let seguros = app.campaign_id("Seguros Auto").await;
    for i in 0..60 {
        app.store
            .create_user(
                &NewUser {
                    email: format!("agente{i:02}@relevo.demo"),
                    name: format!("Agente {i:02}"),
                    role: Role::Agent,
                    password_hash: None,
                    campaigns: vec!["Seguros Auto".to_owned()],
                },
                Ts::now(),
            )
            .await
            .unwrap();
        app.store
            .create_category(
                me,
                seguros,
                &relevo::domain::admin::Name::parse(&format!("Motivo {i:02}")).unwrap(),
                Ts::now(),
            )
            .await
            .unwrap()
            .unwrap();
    }
    let ids_in = |body: &str, marker: &str| -> Vec<String> {
        body.split(marker)
            .skip(1)
            .filter_map(|rest| rest.split('"').next().map(str::to_owned))
            .collect()
    };
    // Usuarios: walk forward through every agent of Seguros Auto, then back.
    let mut seen = Vec::new();
    let mut path = format!("/usuarios?rol=agent&campana={seguros}");
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages < 10);
        let body = app.get(&path).await.body;
        let ids = ids_in(&body, "<tr id=\"usuario-");
        assert!(ids.len() <= 50);
        seen.extend(ids);
        match common::rel_link(&body, "next") {
            Some(next) => path = next,
            None => break,
        }
    }
    assert_eq!(pages, 2);
    assert_eq!(seen.len(), 64, "60 new agents and the demo's 4");
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 64);
    let last = app.get(&path).await.body;
    let back = app
        .get(&common::rel_link(&last, "prev").unwrap())
        .await
        .body;
    assert_eq!(ids_in(&back, "<tr id=\"usuario-"), seen[..50].to_vec());

    // Auditoría: 60 user creations + 60 category creations; filter and walk.
    let categories = app
        .get(&format!("/auditoria?objeto=category&campana={seguros}"))
        .await
        .body;
    assert_eq!(categories.matches("Categoría creada").count(), 50);
    assert!(!categories.contains("Usuario creado"));
    let next = common::rel_link(&categories, "next").expect("a second page");
    assert!(next.contains("objeto=category"));
    let rest = app.get(&next).await.body;
    assert_eq!(rest.matches("Categoría creada").count(), 10);
    assert!(rest.contains("Motivo 00") && !rest.contains("Motivo 59"));
    assert!(categories.contains("Motivo 59"));
    assert!(common::rel_link(&rest, "next").is_none());
    let by_actor = app.get(&format!("/auditoria?actor={me}")).await.body;
    assert!(by_actor.contains("Categoría creada") && !by_actor.contains("Sistema"));
    let cli = app.get("/auditoria?objeto=user").await.body;
    assert!(cli.contains("Sistema (línea de comandos)"));
    let bad = app.get("/auditoria?objeto=nave&desde=ayer").await;
    assert_eq!(bad.status, StatusCode::OK);
    assert!(bad.body.contains("Se ignoró el filtro de objeto"));
    assert!(bad.body.contains("Se ignoró el filtro de fecha inicial"));
    let future = app.get("/auditoria?desde=2999-01-01").await.body;
    assert!(future.contains("Ningún cambio coincide"));
}

/// The uuids of the elements whose `id` is `prefix` and a uuid, in order.
fn ids_after(body: &str, prefix: &str) -> Vec<Uuid> {
    body.split(&format!(" id=\"{prefix}"))
        .skip(1)
        .filter_map(|rest| Uuid::parse_str(rest.split('"').next()?).ok())
        .collect()
}

/// The `href` of the first `rel` link of the pager whose position is in
/// `field` (a pager puts its own field last), unescaped.
fn rel_link_setting(body: &str, rel: &str, field: &str) -> Option<String> {
    let marker = format!("rel=\"{rel}\" href=\"");
    body.split(&marker).skip(1).find_map(|rest| {
        let href = rest[..rest.find('"')?]
            .replace("&amp;", "&")
            .replace("&#38;", "&");
        let last = href.rsplit(['&', '?']).next()?;
        last.starts_with(&format!("{field}=")).then_some(href)
    })
}

/// Walks a paged list from `first` by its `rel="next"` links that set
/// `{field}despues`, then back by its `rel="prev"` links (`{field}antes`),
/// asserting that going back shows the same pages; answers the ids (after
/// `prefix`) of every page, in order.
async fn walk(app: &TestApp, first: &str, field: &str, prefix: &str) -> Vec<Uuid> {
    let mut pages: Vec<Vec<Uuid>> = Vec::new();
    let mut path = first.to_owned();
    loop {
        assert!(pages.len() < 10, "too many pages from {first}");
        let page = app.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        let ids = ids_after(&page.body, prefix);
        assert!(
            !ids.is_empty() && ids.len() <= 50,
            "{path}: {} rows",
            ids.len()
        );
        pages.push(ids);
        match rel_link_setting(&page.body, "next", &format!("{field}despues")) {
            Some(next) => path = next,
            None => break,
        }
    }
    // And back, page by page, to the first.
    let mut back = pages.len() - 1;
    while back > 0 {
        let body = app.get(&path).await.body;
        path = rel_link_setting(&body, "prev", &format!("{field}antes"))
            .unwrap_or_else(|| panic!("no way back from {path}"));
        back -= 1;
        let earlier = app.get(&path).await.body;
        assert_eq!(
            ids_after(&earlier, prefix),
            pages[back],
            "back to page {back}"
        );
    }
    pages.concat()
}

async fn categories_page_by_position_and_move_across_page_boundaries(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let csrf = csrf(&app).await;
    let admin = user_id(&app, common::ADMIN_EMAIL).await;
    let ventas = app.campaign_id("Ventas Hogar").await;
    for i in 0..60 {
        let name = relevo::domain::admin::Name::parse(&format!("Motivo {i:02}")).unwrap();
        app.store
            .create_category(admin, ventas, &name, Ts::now())
            .await
            .unwrap()
            .unwrap();
    }
    let in_order = || {
        app.uuids_where(
            "select c.id from closure_categories c join campaigns p on p.id = c.campaign_id \
             where p.name = $1 order by c.position",
            "Ventas Hogar",
        )
    };
    let order = in_order().await;
    assert_eq!(order.len(), 67, "the demo's 7 and 60 more");
    // Every category once, in order, over two pages; and back.
    let first = format!("/categorias?campana={ventas}");
    let seen = walk(&app, &first, "", "categoria-").await;
    assert_eq!(seen, order);
    let page_one = app.get(&first).await.body;
    assert!(page_one.contains(
        "<ol class=\"admin-tree\" aria-label=\"Categorías de Ventas Hogar\" start=\"1\">"
    ));
    let page_two_path = format!("/categorias?campana={ventas}&despues=49");
    let page_two = app.get(&page_two_path).await.body;
    assert!(page_two.contains("start=\"51\""));
    assert_eq!(ids_after(&page_two, "categoria-"), order[50..].to_vec());

    // Only the ends of the whole list are disabled: the first of page two
    // moves up into page one, swapping with its last.
    assert!(
        page_one.contains("aria-label=\"Subir «Cliente no responde»\" title=\"Subir\" disabled")
    );
    assert!(page_one.contains("aria-label=\"Bajar «Motivo 42»\" title=\"Bajar\">"));
    assert!(page_two.contains("aria-label=\"Subir «Motivo 43»\" title=\"Subir\">"));
    assert!(page_two.contains("aria-label=\"Bajar «Motivo 59»\" title=\"Bajar\" disabled"));
    let before = audit_rows(&app).await;
    let (m42, m43) = (order[49], order[50]);
    let up = app
        .post_form(
            &format!("/categorias/{ventas}/categoria/{m43}/subir"),
            &[("_csrf", &csrf)],
        )
        .await;
    assert_eq!(up.status, StatusCode::SEE_OTHER);
    assert_eq!(
        up.location.as_deref(),
        Some(format!("/categorias?campana={ventas}#categoria-{m43}").as_str()),
        "the page that now shows it"
    );
    let moved = in_order().await;
    assert_eq!((moved[49], moved[50]), (m43, m42));
    assert_eq!(moved[..49], order[..49]);
    assert_eq!(moved[51..], order[51..]);
    assert!(summaries(&app).await[0].contains("«Motivo 43» movida del lugar 51 al 50"));
    let shown = app.get(&first).await.body;
    assert_eq!(ids_after(&shown, "categoria-").last(), Some(&m43));
    // And back down: it goes to the second page, first.
    let down = app
        .post_form(
            &format!("/categorias/{ventas}/categoria/{m43}/bajar"),
            &[("_csrf", &csrf)],
        )
        .await;
    assert_eq!(
        down.location.as_deref(),
        Some(format!("{page_two_path}#categoria-{m43}").as_str())
    );
    assert_eq!(in_order().await, order);
    assert_eq!(audit_rows(&app).await, before + 2);
    // At an end nothing moves and nothing is written.
    for (id, action) in [(order[0], "subir"), (order[66], "bajar")] {
        let end = app
            .post_form(
                &format!("/categorias/{ventas}/categoria/{id}/{action}"),
                &[("_csrf", &csrf)],
            )
            .await;
        assert_eq!(end.status, StatusCode::SEE_OTHER);
        let page = app.get(&end.location.unwrap()).await.body;
        assert!(page.contains("Ya está en ese extremo de la lista"));
    }
    assert_eq!(audit_rows(&app).await, before + 2);

    // A new category goes last, and the answer is the page that shows it.
    let created = app
        .post_form(
            &format!("/categorias/{ventas}"),
            &[("_csrf", &csrf), ("nombre", "Motivo nuevo")],
        )
        .await;
    let location = created.location.expect("redirect");
    assert!(location.starts_with(&format!("{page_two_path}#categoria-")));
    assert!(app.get(&location).await.body.contains("Motivo nuevo"));
    // A refused rename on page two answers page two, with the error there.
    let last = order[66];
    let refused = app
        .post_form(
            &format!("/categorias/{ventas}/categoria/{last}"),
            &[("_csrf", &csrf), ("nombre", "  ")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused
            .body
            .contains(&format!("id=\"nombre-{last}-error\""))
    );
    assert!(refused.body.contains("start=\"51\""));

    // Another campaign's pages are not an Administrador's to read.
    let cobranza = app.campaign_id("Cobranza").await;
    for cursor in ["despues=49", "antes=50", "despues=0"] {
        let page = app
            .get(&format!("/categorias?campana={cobranza}&{cursor}"))
            .await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{cursor}");
    }
}

async fn a_category_shows_all_its_subcategories_up_to_their_maximum(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let csrf = csrf(&app).await;
    let admin = user_id(&app, common::ADMIN_EMAIL).await;
    let ventas = app.campaign_id("Ventas Hogar").await;
    let category = category_id(&app, "Ventas Hogar", "Conversación duplicada").await;
    for i in 0..50 {
        let name = relevo::domain::admin::Name::parse(&format!("Detalle {i:02}")).unwrap();
        app.store
            .create_subcategory(admin, ventas, category, &name, Ts::now())
            .await
            .unwrap()
            .unwrap();
    }
    let page = app.get(&format!("/categorias?campana={ventas}")).await.body;
    let start = page.find(&format!("id=\"categoria-{category}\"")).unwrap();
    let end = start + page[start..].find("</ul>").unwrap();
    let names: Vec<&str> = page[start..end]
        .split("<span>Detalle ")
        .skip(1)
        .map(|rest| &rest[..2])
        .collect();
    let expected: Vec<String> = (0..50).map(|i| format!("{i:02}")).collect();
    assert_eq!(names, expected, "all fifty, in order");
    let before = audit_rows(&app).await;
    let refused = app
        .post_form(
            &format!("/categorias/{ventas}/categoria/{category}/subcategorias"),
            &[("_csrf", &csrf), ("nombre", "Detalle 50")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body.contains("admite hasta 50 subcategorías"));
    assert!(refused.body.contains("value=\"Detalle 50\""));
    assert_eq!(audit_rows(&app).await, before);
}

async fn channels_and_tokens_page_on_their_own_without_a_cap(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_super().await;
    let csrf = csrf(&app).await;
    let me = user_id(&app, common::SUPER_EMAIL).await;
    let seguros = app.campaign_id("Seguros Auto").await;
    let ventas = app.campaign_id("Ventas Hogar").await;
    for i in 0..57 {
        let name = relevo::domain::admin::Name::parse(&format!("Canal {i:02}")).unwrap();
        app.store
            .create_channel(
                me,
                seguros,
                relevo::domain::ChannelKind::Web,
                &name,
                Ts::now(),
            )
            .await
            .unwrap()
            .unwrap();
    }
    for i in 0..55 {
        let name = relevo::domain::admin::Name::parse(&format!("Token {i:02}")).unwrap();
        app.store
            .create_campaign_token(me, seguros, &name, Ts::now())
            .await
            .unwrap()
            .unwrap();
    }
    // Past the old limits of 50 channels and 20 tokens, still created.
    let base = format!("/campanas/{seguros}/canales");
    let channel = app
        .post_form(
            &base,
            &[("_csrf", &csrf), ("tipo", "web"), ("nombre", "Canal 57")],
        )
        .await;
    assert_eq!(channel.status, StatusCode::OK);
    assert!(channel.body.contains("rlv_ch_"));
    let token = app
        .post_form(
            &format!("/campanas/{seguros}/tokens"),
            &[("_csrf", &csrf), ("nombre", "Token 55")],
        )
        .await;
    assert_eq!(token.status, StatusCode::OK);
    assert!(token.body.contains("rlv_"));

    let channels = app
        .uuids_where(
            "select h.id from channels h join campaigns p on p.id = h.campaign_id \
             where p.name = $1 order by h.created_at, h.id",
            "Seguros Auto",
        )
        .await;
    assert_eq!(channels.len(), 60, "the demo's 2 and 58 more");
    let tokens = app
        .uuids_where(
            "select t.id from integration_tokens t join campaigns p on p.id = t.campaign_id \
             where p.name = $1 order by t.created_at desc, t.id desc",
            "Seguros Auto",
        )
        .await;
    assert_eq!(tokens.len(), 56);
    // Each list: every item once, in its order, forward and back.
    assert_eq!(walk(&app, &base, "canales_", "canal-").await, channels);
    assert_eq!(walk(&app, &base, "tokens_", "token-").await, tokens);
    // Paging one list keeps the other where it was.
    let second = format!("{base}?canales_despues={}", channels[49]);
    let body = app.get(&second).await.body;
    assert_eq!(ids_after(&body, "canal-"), channels[50..].to_vec());
    let tokens_next = rel_link_setting(&body, "next", "tokens_despues").unwrap();
    assert!(tokens_next.contains(&format!("canales_despues={}", channels[49])));
    let both = app.get(&tokens_next).await.body;
    assert_eq!(ids_after(&both, "canal-"), channels[50..].to_vec());
    assert_eq!(ids_after(&both, "token-"), tokens[50..].to_vec());
    assert!(body.contains("aria-label=\"Páginas de canales\""));
    assert!(body.contains("aria-label=\"Páginas de tokens de integración\""));

    // A position taken from another campaign's list shows nothing of it.
    let ventas_path = format!("/campanas/{ventas}/canales");
    for cursor in [
        format!("canales_despues={}", channels[10]),
        format!("canales_antes={}", channels[59]),
        format!("tokens_despues={}", tokens[10]),
        format!("tokens_antes={}", tokens[55]),
    ] {
        let page = app.get(&format!("{ventas_path}?{cursor}")).await;
        assert_eq!(page.status, StatusCode::OK);
        let shown: Vec<Uuid> = ids_after(&page.body, "canal-")
            .into_iter()
            .chain(ids_after(&page.body, "token-"))
            .collect();
        assert!(
            shown
                .iter()
                .all(|id| !channels.contains(id) && !tokens.contains(id)),
            "{cursor}"
        );
    }
    // A token on a later page is revoked from there, by its own lookup.
    let later = tokens[52];
    let revoked = app
        .post_form(
            &format!("/campanas/{seguros}/tokens/{later}/revocar"),
            &[("_csrf", &csrf), ("confirmado", "si")],
        )
        .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER);
    let foreign = app
        .post_form(
            &format!("/campanas/{ventas}/tokens/{}/revocar", tokens[0]),
            &[("_csrf", &csrf), ("confirmado", "si")],
        )
        .await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
}

/// The candidates a picker page offers, in order.
fn candidates_in(body: &str) -> Vec<Uuid> {
    body.split("name=\"usuario\" value=\"")
        .skip(1)
        .filter_map(|rest| Uuid::parse_str(rest.split('"').next()?).ok())
        .collect()
}

/// The picker's "Más resultados" link, unescaped.
fn more_results(body: &str) -> Option<String> {
    let text = body.find("\">Más resultados")?;
    let start = body[..text].rfind("href=\"")? + 6;
    let end = start + body[start..].find('"')?;
    Some(body[start..end].replace("&amp;", "&").replace("&#38;", "&"))
}

async fn the_member_picker_finds_by_name_or_email_prefix_a_page_at_a_time(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_super().await;
    let csrf = csrf(&app).await;
    let cobranza = app.campaign_id("Cobranza").await;
    let ventas = app.campaign_id("Ventas Hogar").await;
    let mut people = vec![
        ("Ñandú Álvarez", "nandu@relevo.demo", Role::Agent, vec![]),
        ("Óscar Ibáñez", "oscar.ib@relevo.demo", Role::Admin, vec![]),
        ("Pablo Ruiz", "pablo.ruiz@relevo.demo", Role::Agent, vec![]),
        ("Zeta Quintero", "zq@relevo.demo", Role::Agent, vec![]),
        (
            "Pablo Inactivo",
            "p.inactivo@relevo.demo",
            Role::Agent,
            vec![],
        ),
        (
            "Pablo Super",
            "p.super@relevo.demo",
            Role::SuperAdmin,
            vec![],
        ),
        (
            "Pablo Asignado",
            "p.asignado@relevo.demo",
            Role::Agent,
            vec!["Cobranza".to_owned()],
        ),
    ];
    for i in 0..45 {
        people.push((
            "",
            "",
            Role::Agent,
            vec![
                format!("Picker {i:02}"),
                format!("picker{i:02}@relevo.demo"),
            ],
        ));
    }
    for (name, email, role, extra) in &people {
        let (name, email, campaigns) = if name.is_empty() {
            (extra[0].clone(), extra[1].clone(), Vec::new())
        } else {
            (name.to_string(), email.to_string(), extra.clone())
        };
        let id = app
            .store
            .create_user(
                &NewUser {
                    email,
                    name: name.clone(),
                    role: *role,
                    password_hash: None,
                    campaigns,
                },
                Ts::now(),
            )
            .await
            .unwrap();
        if name == "Pablo Inactivo" {
            app.store
                .set_user_active(id, false, Ts::now())
                .await
                .unwrap();
        }
    }
    let picker = |campaign: Uuid, search: &str| {
        format!(
            "/campanas/{campaign}/miembros?{}",
            serde_urlencoded::to_string([("buscar", search)]).unwrap()
        )
    };
    let names = |body: &str| -> Vec<String> {
        body.split("<div class=\"admin-item-name\"><strong>")
            .skip(1)
            .map(|rest| rest[..rest.find('<').unwrap()].to_owned())
            .collect()
    };
    // By the start of the name, without case or accents.
    for search in ["ÑANDÚ ál", "ñandu", "óSCAR ib", "oscar"] {
        let body = app.get(&picker(cobranza, search)).await.body;
        let found = names(&body);
        assert_eq!(found.len(), 1, "{search}: {found:?}");
        assert!(
            ["Ñandú Álvarez", "Óscar Ibáñez"].contains(&found[0].as_str()),
            "{search}"
        );
    }
    // By the start of the e-mail, without case.
    let body = app.get(&picker(cobranza, "ZQ@")).await.body;
    assert_eq!(names(&body), vec!["Zeta Quintero"]);
    // Not by the middle of a name.
    let body = app.get(&picker(cobranza, "alvarez")).await.body;
    assert!(names(&body).is_empty());
    assert!(body.contains("Nadie sin asignar coincide con «alvarez»"));
    // Once, though both name and e-mail match; never the inactive, a Super
    // Administrador, or someone already in the campaign.
    let body = app.get(&picker(cobranza, "pablo")).await.body;
    assert_eq!(names(&body), vec!["Pablo Ruiz"]);
    let body = app.get(&picker(cobranza, "p.")).await.body;
    assert!(names(&body).is_empty(), "{:?}", names(&body));
    let body = app.get(&picker(ventas, "pablo a")).await.body;
    assert_eq!(names(&body), vec!["Pablo Asignado"]);

    // A page at a time: every match once, by the text that matched.
    for (campaign, search) in [(cobranza, "picker"), (cobranza, "p"), (ventas, "")] {
        let mut path = picker(campaign, search);
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            pages += 1;
            assert!(pages < 20, "{search}");
            let body = app.get(&path).await.body;
            let page = candidates_in(&body);
            assert!(page.len() <= 20);
            seen.extend(page);
            match more_results(&body) {
                Some(next) => {
                    assert!(next.contains("buscar_despues=") && next.ends_with("#resultados"));
                    path = next;
                    let later = app.get(&path).await.body;
                    assert!(later.contains("Primeros resultados"), "{path}: {later}");
                }
                None => break,
            }
        }
        let rows: Vec<(Uuid, String, String)> = match &app.store {
            relevo::db::Store::Sqlite(p) => sqlx::query_as(
                "select u.id, u.name, u.email from users u where u.active \
                 and u.role in ('admin', 'agent') and not exists (select 1 from campaign_members m \
                 where m.user_id = u.id and m.campaign_id = $1)",
            )
            .bind(campaign)
            .fetch_all(&p.read)
            .await
            .unwrap(),
            relevo::db::Store::Postgres(pg) => sqlx::query_as(
                "select u.id, u.name, u.email from users u where u.active \
                 and u.role in ('admin', 'agent') and not exists (select 1 from campaign_members m \
                 where m.user_id = u.id and m.campaign_id = $1)",
            )
            .bind(campaign)
            .fetch_all(&pg.pool)
            .await
            .unwrap(),
        };
        let wanted = relevo::domain::text::fold(search);
        let mut expected: Vec<(String, Uuid)> = rows
            .into_iter()
            .filter_map(|(id, name, email)| {
                let key = relevo::domain::text::fold(&name);
                if key.starts_with(&wanted) {
                    Some((key, id))
                } else if email.starts_with(search) {
                    Some((email, id))
                } else {
                    None
                }
            })
            .collect();
        expected.sort();
        let expected: Vec<Uuid> = expected.into_iter().map(|(_, id)| id).collect();
        assert!(expected.len() > 20, "{search}: more than a page");
        assert_eq!(seen, expected, "{search:?}");
    }

    // Assigning from the results comes back to the same search.
    let body = app.get(&picker(cobranza, "picker")).await.body;
    let first = candidates_in(&body)[0];
    let before = audit_rows(&app).await;
    let added = app
        .post_form(
            &format!("/campanas/{cobranza}/miembros"),
            &[
                ("_csrf", &csrf),
                ("usuario", &first.to_string()),
                ("buscar", "picker"),
            ],
        )
        .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER);
    assert_eq!(
        added.location.as_deref(),
        Some(format!("/campanas/{cobranza}/miembros?buscar=picker#resultados").as_str())
    );
    assert_eq!(audit_rows(&app).await, before + 1);
    let after = app.get(&picker(cobranza, "picker")).await.body;
    assert!(!candidates_in(&after).contains(&first));
    assert!(after.contains("<label for=\"buscar\">"));
    assert!(after.contains("aria-label=\"Asignar a Picker 01 (Agente)\""));
}
