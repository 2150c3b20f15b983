//! Administration in a real browser: a Super Administrador sets up a whole
//! campaign (schedule, channel, a category with two sub-categories, an
//! Administrador assigned to it) through the pages; that Administrador logs
//! in, sees only that campaign on Mensajes, and the cancel modal offers the
//! new category and its sub-categories. Every administration page passes
//! the automated accessibility check.

mod common;

use common::webdriver::Browser;
use common::{Backend, SUPER_EMAIL, SUPER_PASSWORD, spawn_app};
use serde_json::json;

on_both_backends!(browser: a_super_admin_sets_up_a_campaign_its_admin_then_works_in);

async fn fill(browser: &Browser, css: &str, text: &str) {
    browser
        .execute(
            "document.querySelector(arguments[0]).value = '';",
            vec![json!(css)],
        )
        .await;
    let field = browser.find(css).await;
    browser.type_into(&field, text).await;
}

async fn select(browser: &Browser, css: &str, value: &str) {
    browser
        .execute(
            "const s = document.querySelector(arguments[0]); s.value = arguments[1]; \
             s.dispatchEvent(new Event('change', {bubbles: true}));",
            vec![json!(css), json!(value)],
        )
        .await;
}

async fn submit(browser: &Browser, css: &str) {
    let button = browser.find(css).await;
    browser.click(&button).await;
}

async fn no_violations(browser: &Browser, what: &str) {
    assert_eq!(
        browser.accessibility_violations().await,
        Vec::<String>::new(),
        "{what}"
    );
}

async fn a_super_admin_sets_up_a_campaign_its_admin_then_works_in(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let browser = Browser::start().await;
    let base = app.address.clone();
    browser.login(&base, SUPER_EMAIL, SUPER_PASSWORD).await;
    browser.find("table.data-table tbody tr").await;

    // The campaign.
    browser.goto(&format!("{base}/campanas")).await;
    no_violations(&browser, "campañas").await;
    browser.goto(&format!("{base}/campanas/nueva")).await;
    no_violations(&browser, "nueva campaña").await;
    fill(&browser, "#campana-nombre", "Hipotecas").await;
    fill(&browser, "#campana-zona", "America/Monterrey").await;
    submit(&browser, "form.form button[type=submit]").await;
    browser
        .wait_until(
            "the schedule page",
            "return location.pathname.endsWith('/horario');",
        )
        .await;
    let campaign = app.campaign_id("Hipotecas").await;
    assert!(
        browser
            .source()
            .await
            .contains("Campaña «Hipotecas» creada")
    );
    no_violations(&browser, "horario").await;

    // Its schedule: open every day, Friday until 02:00 the next day.
    for day in 0..7 {
        select(&browser, &format!("#modo-{day}"), "horario").await;
        fill(&browser, &format!("#abre-{day}"), "00:00").await;
        fill(
            &browser,
            &format!("#cierra-{day}"),
            if day == 4 { "02:00" } else { "23:59" },
        )
        .await;
    }
    submit(&browser, ".admin-schedule-card button[type=submit]").await;
    browser
        .wait_until(
            "the saved schedule",
            "return document.body.textContent.includes('Horario guardado');",
        )
        .await;
    assert_eq!(
        app.store.campaign_schedule(campaign).await.unwrap().len(),
        7
    );

    // A channel: its token is shown once.
    browser
        .goto(&format!("{base}/campanas/{campaign}/canales"))
        .await;
    no_violations(&browser, "canales").await;
    select(&browser, "#canal-tipo", "whatsapp").await;
    fill(&browser, "#canal-nombre", "WhatsApp Hipotecas").await;
    submit(&browser, ".admin-new-channel button[type=submit]").await;
    let token_field = browser.find("#token-nuevo").await;
    let token = browser
        .attribute(&token_field, "value")
        .await
        .expect("token shown");
    assert!(token.starts_with("rlv_ch_"));
    no_violations(&browser, "token mostrado").await;

    // A category with two sub-categories.
    browser
        .goto(&format!("{base}/categorias?campana={campaign}"))
        .await;
    fill(&browser, "#nueva-categoria", "Cliente desistió").await;
    submit(
        &browser,
        &format!("form[action='/categorias/{campaign}'] button[type=submit]"),
    )
    .await;
    browser.find(".admin-category").await;
    for sub in ["Encontró otra tasa", "Ya no le interesa"] {
        let input = browser.find(".admin-new-sub input[name=nombre]").await;
        browser.type_into(&input, sub).await;
        submit(&browser, ".admin-new-sub button[type=submit]").await;
        browser
            .wait_until(
                "the new sub-category",
                &format!(
                    "return document.body.textContent.includes('Subcategoría «{sub}» creada');"
                ),
            )
            .await;
    }
    no_violations(&browser, "categorías").await;

    // An Administrador assigned to it.
    browser.goto(&format!("{base}/usuarios/nuevo")).await;
    no_violations(&browser, "nuevo usuario").await;
    fill(&browser, "#usuario-nombre", "Marta Ruiz").await;
    fill(&browser, "#usuario-correo", "marta.ruiz@relevo.demo").await;
    select(&browser, "#usuario-rol", "admin").await;
    let checkbox = browser
        .find(&format!("input[name=campanas][value='{campaign}']"))
        .await;
    browser.click(&checkbox).await;
    fill(&browser, "#usuario-contrasena", "hipotecas-seguras-2026").await;
    fill(&browser, "#usuario-confirmacion", "hipotecas-seguras-2026").await;
    submit(&browser, ".admin-form-card form.form button[type=submit]").await;
    browser
        .wait_until(
            "the created user",
            "return document.body.textContent.includes('Usuario «Marta Ruiz» creado');",
        )
        .await;
    no_violations(&browser, "usuario").await;
    browser.goto(&format!("{base}/usuarios")).await;
    no_violations(&browser, "usuarios").await;
    browser.goto(&format!("{base}/auditoria")).await;
    no_violations(&browser, "auditoría").await;
    assert!(browser.source().await.contains("Marta Ruiz"));

    // A customer writes on the new channel.
    let channel = app
        .uuids_where(
            "select id from channels where name = $1",
            "WhatsApp Hipotecas",
        )
        .await[0];
    let response = app
        .client
        .post(app.url(&format!("/api/v1/channels/{channel}/messages")))
        .bearer_auth(&token)
        .json(&json!({"message_id": "m-1", "from": "5215512345678", "name": "Rocío Salas", "text": "Quiero cancelar"}))
        .send()
        .await
        .expect("api call");
    assert!(response.status().is_success(), "{}", response.status());

    // The new Administrador sees only that campaign, and can cancel with
    // the new category.
    browser
        .execute("document.querySelector('.logout-form').submit();", vec![])
        .await;
    browser
        .wait_until("the login page", "return location.pathname === '/login';")
        .await;
    browser
        .login(&base, "marta.ruiz@relevo.demo", "hipotecas-seguras-2026")
        .await;
    browser.find("table.data-table tbody tr").await;
    let campaigns = browser
        .execute(
            "return [...document.querySelectorAll('#campana option')].map(o => o.textContent.trim());",
            vec![],
        )
        .await;
    assert_eq!(campaigns, json!(["Todas las campañas", "Hipotecas"]));
    let rows = browser
        .execute(
            "return [...document.querySelectorAll('#rows tr')].map(r => r.textContent.includes('Hipotecas'));",
            vec![],
        )
        .await;
    assert_eq!(rows, json!([true]));
    let button = browser.find("#rows tr .action-button").await;
    browser.click(&button).await;
    browser
        .wait_until(
            "the modal",
            "return document.getElementById('modal').open && !!document.querySelector('#accion-categoria');",
        )
        .await;
    let categories = browser
        .execute(
            "return [...document.querySelectorAll('#accion-categoria option')].map(o => o.textContent.trim());",
            vec![],
        )
        .await;
    assert_eq!(
        categories,
        json!(["Selecciona una categoría", "Cliente desistió"])
    );
    browser
        .execute(
            "const s = document.querySelector('#accion-categoria'); s.selectedIndex = 1; \
             s.dispatchEvent(new Event('change', {bubbles: true}));",
            vec![],
        )
        .await;
    browser
        .wait_until(
            "the sub-categories",
            "return document.querySelectorAll('#accion-subcategoria option').length === 3;",
        )
        .await;
    let subs = browser
        .execute(
            "return [...document.querySelectorAll('#accion-subcategoria option')].slice(1).map(o => o.textContent.trim());",
            vec![],
        )
        .await;
    assert_eq!(subs, json!(["Encontró otra tasa", "Ya no le interesa"]));
    // Categorías shows only her campaign.
    browser.goto(&format!("{base}/categorias")).await;
    let options = browser
        .execute(
            "return [...document.querySelectorAll('#campana option')].map(o => o.textContent.trim());",
            vec![],
        )
        .await;
    assert_eq!(options, json!(["Hipotecas"]));
    browser.quit().await;
}
