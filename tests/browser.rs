//! End-to-end tests in real headless Chromium through WebDriver.

mod common;

use common::webdriver::Browser;
use common::{ADMIN_EMAIL, ADMIN_PASSWORD, Backend, spawn_app};

on_both_backends!(the_demo_administrator_logs_in_and_sees_the_table);

async fn the_demo_administrator_logs_in_and_sees_the_table(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let Some(browser) = Browser::start().await else {
        return;
    };
    browser
        .login(&app.address, ADMIN_EMAIL, ADMIN_PASSWORD)
        .await;
    browser.find("table.data-table tbody tr").await;
    assert!(browser.current_url().await.ends_with("/mensajes"));
    let heading = browser.find("main h1").await;
    assert_eq!(browser.text(&heading).await, "Mensajes");
    // textContent: the stylesheet may change the case of the headings.
    let headers = browser
        .execute(
            "return [...document.querySelectorAll('table.data-table thead th')].map(th => th.textContent.trim());",
            vec![],
        )
        .await;
    assert_eq!(
        headers,
        serde_json::json!([
            "ID",
            "Cliente",
            "Canal",
            "Campaña",
            "Agente",
            "Estatus",
            "Inicio",
            "Última actividad",
            "Acciones"
        ])
    );
    let rows = browser.find_all("table.data-table tbody tr").await;
    assert!(!rows.is_empty() && rows.len() <= 50);
    let user = browser.find(".sidebar-user .user-name").await;
    assert_eq!(browser.text(&user).await, "Laura Méndez Soto");

    // Filtering by status through the tabs swaps the results in place.
    let tab = browser
        .find("a.status-tab[href*='estatus=cancelled']")
        .await;
    browser.click(&tab).await;
    browser
        .wait_until(
            "the cancelled rows",
            "return location.search.includes('estatus=cancelled') && \
             document.querySelectorAll('#rows tr').length > 0 && \
             [...document.querySelectorAll('#rows .badge')].every(b => b.classList.contains('badge-cancelled'));",
        )
        .await;
    // The action button on a final conversation is disabled and explains why.
    let disabled = browser.find("#rows td.col-actions button[disabled]").await;
    assert_eq!(
        browser.attribute(&disabled, "aria-label").await.as_deref(),
        Some("Cancelar/Reasignar")
    );
    // The page loads no script from elsewhere and ran without CSP errors.
    let external = browser
        .execute(
            "return [...document.scripts].filter(s => s.src && !s.src.startsWith(location.origin)).length;",
            vec![],
        )
        .await;
    assert_eq!(external, serde_json::json!(0));
    browser.quit().await;
}
