//! Narrow windows and Reportes at desktop width, in real headless Chromium
//! (issue 22, items 10 and 11): at 390 × 844 every menu item is reached
//! through "Menú" (mouse and keyboard) and no page is wider than the window
//! except inside its own scroll containers; the Mensajes table keeps its
//! Acciones button in view while it scrolls sideways, and the modal fits the
//! screen with its buttons reachable. At 1280 × 800 no page is wider than
//! the window either, and the per-category chart
//! shows its labels whole across the card, and every chart is an image named
//! with a summary sentence.

mod common;

use common::webdriver::{Browser, keys};
use common::{
    ADMIN_EMAIL, ADMIN_PASSWORD, Backend, SUPER_EMAIL, SUPER_PASSWORD, TestApp, spawn_app,
};
use serde_json::json;

on_both_backends!(
    browser:
    at_phone_width_every_menu_item_is_reached_through_the_menu_button,
    at_phone_width_no_page_is_wider_than_the_window,
    at_phone_width_the_row_action_button_stays_in_view_and_the_modal_fits,
    at_desktop_width_no_page_is_wider_than_the_window,
    at_desktop_width_the_category_chart_shows_whole_labels_and_says_what_it_shows,
);

const PHONE: (u32, u32) = (390, 844);
const DESKTOP: (u32, u32) = (1280, 800);

/// A browser with a `width` × `height` viewport, signed in on Mensajes.
async fn signed_in_at(
    app: &TestApp,
    (width, height): (u32, u32),
    email: &str,
    password: &str,
) -> Browser {
    let browser = Browser::start().await;
    browser.set_viewport(width, height).await;
    browser.login(&app.address, email, password).await;
    browser.find("table.data-table tbody tr").await;
    browser
}

/// Nothing on the page reaches past the window's right edge: the document
/// does not scroll sideways (a wide table scrolls inside its own card).
async fn assert_no_sideways_scroll(browser: &Browser, page: &str) {
    let widths = browser
        .execute(
            "var d = document.documentElement; return [d.scrollWidth, d.clientWidth];",
            vec![],
        )
        .await;
    assert!(
        widths[0].as_i64() <= widths[1].as_i64(),
        "{page} is wider than the window (scrollWidth, clientWidth): {widths}"
    );
}

/// The menu item linking to `href` is shown, inside the viewport, and is
/// the element a tap on its middle reaches.
const MENU_ITEM_REACHABLE: &str = "var a = document.querySelector('.menu a.menu-item[href=\"' + arguments[0] + '\"]'); \
     if (!a) return 'missing'; var r = a.getBoundingClientRect(); \
     if (r.width === 0 || r.height === 0) return 'hidden'; \
     if (r.left < 0 || r.right > document.documentElement.clientWidth || r.top < 0 || r.bottom > innerHeight) return 'outside ' + JSON.stringify(r); \
     var hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2); \
     return a.contains(hit) ? 'ok' : 'covered by ' + (hit && hit.outerHTML.slice(0, 80));";

async fn at_phone_width_every_menu_item_is_reached_through_the_menu_button(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let browser = signed_in_at(&app, PHONE, SUPER_EMAIL, SUPER_PASSWORD).await;
    let hrefs = browser
        .execute(
            "return [...document.querySelectorAll('.menu a.menu-item')].map(a => a.getAttribute('href'));",
            vec![],
        )
        .await;
    let hrefs: Vec<String> = serde_json::from_value(hrefs).unwrap();
    for expected in [
        "/mensajes",
        "/campanas",
        "/usuarios",
        "/categorias",
        "/auditoria",
        "/reportes",
    ] {
        assert!(
            hrefs.iter().any(|h| h == expected),
            "{expected} in the menu: {hrefs:?}"
        );
    }
    // The folded menu is a disclosure button that says whether it is open.
    let toggle = browser.find(".menu-toggle > summary").await;
    assert_eq!(browser.text(&toggle).await, "Menú");
    assert_eq!(
        browser.attribute(&toggle, "aria-controls").await.as_deref(),
        Some("menu-principal")
    );
    for href in &hrefs {
        assert_eq!(
            browser
                .execute(MENU_ITEM_REACHABLE, vec![json!(href)])
                .await,
            json!("hidden"),
            "{href} folded away before Menú is opened"
        );
        let toggle = browser.find(".menu-toggle > summary").await;
        browser.click(&toggle).await;
        assert_eq!(
            browser
                .execute(MENU_ITEM_REACHABLE, vec![json!(href)])
                .await,
            json!("ok"),
            "{href} once Menú is open"
        );
        let item = browser
            .find(&format!(".menu a.menu-item[href='{href}']"))
            .await;
        browser.click(&item).await;
        browser
            .wait_until(
                "the page of the menu item",
                &format!(
                    "return location.pathname === '{href}' && document.readyState === 'complete' && \
                     !!document.querySelector('.menu a.menu-item[aria-current=page][href=\"{href}\"]');"
                ),
            )
            .await;
        assert_no_sideways_scroll(&browser, href).await;
    }
    // With the keyboard alone: Enter on Menú opens it, Tab reaches the first
    // item, Escape folds it again and gives focus back to Menú; Enter on an
    // item follows it.
    browser
        .execute(
            "document.querySelector('.menu-toggle > summary').focus();",
            vec![],
        )
        .await;
    browser.send_keys(keys::ENTER).await;
    browser
        .wait_until(
            "Menú to open",
            "return document.querySelector('.menu-toggle').open;",
        )
        .await;
    browser.send_keys(keys::ESCAPE).await;
    browser
        .wait_until(
            "Escape to fold the menu",
            "return !document.querySelector('.menu-toggle').open && \
             document.activeElement === document.querySelector('.menu-toggle > summary');",
        )
        .await;
    browser.send_keys(keys::ENTER).await;
    browser.send_keys(keys::TAB).await;
    let focused = browser
        .execute(
            "return document.activeElement.getAttribute('href');",
            vec![],
        )
        .await;
    assert_eq!(
        focused,
        json!(hrefs[0]),
        "Tab from Menú reaches the first item"
    );
    let reports_index = hrefs.iter().position(|h| h == "/reportes").unwrap();
    for _ in 0..reports_index {
        browser.send_keys(keys::TAB).await;
    }
    browser.send_keys(keys::ENTER).await;
    browser
        .wait_until(
            "Reportes through the keyboard",
            "return location.pathname === '/reportes' && !!document.querySelector('main h1');",
        )
        .await;
    // The open menu passes the automated accessibility check too.
    let toggle = browser.find(".menu-toggle > summary").await;
    browser.click(&toggle).await;
    let violations = browser.accessibility_violations().await;
    assert!(violations.is_empty(), "{violations:?}");
    browser.quit().await;
}

/// The first conversation of "Ventas Hogar" with an agent.
async fn an_agents_conversation(app: &TestApp) -> i64 {
    app.folios_where(
        "select c.folio from conversations c join campaigns p on p.id = c.campaign_id \
             where p.name = $1 and c.status in ('assigned', 'in_progress') order by c.folio",
        "Ventas Hogar",
    )
    .await[0]
}

/// Every page an administrator reaches, the Mensajes tabs and a
/// conversation's pages included (paths on `app`).
async fn every_page(app: &TestApp, browser: &Browser) -> Vec<String> {
    let campaign = app.campaign_id("Ventas Hogar").await;
    let folio = an_agents_conversation(app).await;
    browser.goto(&format!("{}/usuarios", app.address)).await;
    let user = browser.find("a.admin-link[href^='/usuarios/']").await;
    let user = browser.attribute(&user, "href").await.unwrap();
    vec![
        "/mensajes".to_owned(),
        "/mensajes?estatus=todas".to_owned(),
        "/mensajes?estatus=rezagadas".to_owned(),
        format!("/mensajes/{folio}"),
        format!("/mensajes/{folio}/acciones"),
        format!("/mensajes/lote?folio={folio}"),
        "/reportes".to_owned(),
        "/cancelacion-automatica".to_owned(),
        "/campanas".to_owned(),
        "/campanas/nueva".to_owned(),
        format!("/campanas/{campaign}"),
        format!("/campanas/{campaign}/horario"),
        format!("/campanas/{campaign}/canales"),
        format!("/campanas/{campaign}/miembros"),
        "/usuarios".to_owned(),
        "/usuarios/nuevo".to_owned(),
        user,
        "/categorias".to_owned(),
        "/auditoria".to_owned(),
        "/cuenta".to_owned(),
    ]
}

/// Opens each of `pages` and checks that it does not scroll sideways.
async fn assert_no_page_scrolls_sideways(app: &TestApp, browser: &Browser, pages: &[String]) {
    for page in pages {
        browser.goto(&format!("{}{page}", app.address)).await;
        browser
            .wait_until(
                "the page to load",
                "return document.readyState === 'complete' && !!document.querySelector('main h1, main h2');",
            )
            .await;
        assert_no_sideways_scroll(browser, page).await;
    }
}

async fn at_phone_width_no_page_is_wider_than_the_window(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let browser = signed_in_at(&app, PHONE, SUPER_EMAIL, SUPER_PASSWORD).await;
    let pages = every_page(&app, &browser).await;
    assert_no_page_scrolls_sideways(&app, &browser, &pages).await;
    browser.quit().await;
}

/// At a laptop's 1280 pixels the Mensajes table fills its column, and a
/// cell that cannot wrap pushes the page sideways once the columns' least
/// widths exceed it: a closed row whose last activity has just happened
/// shows it as a relative time ("hace un momento" once did so by 16
/// pixels), an open one as "Sin actividad: …".
async fn at_desktop_width_no_page_is_wider_than_the_window(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    // Ahead of Relevo's clock, as a platform's clock may be: the row reads
    // "just now" however long the test takes to look at it, at the top of
    // "Todas" and "Canceladas" by recent activity.
    let closed = app
        .folios_where(
            "select folio from conversations where status = $1 order by folio",
            "cancelled",
        )
        .await[0];
    let ahead = relevo::db::Ts::new(chrono::Utc::now() + chrono::Duration::hours(1));
    app.set_activity(closed, ahead).await;
    let browser = signed_in_at(&app, DESKTOP, SUPER_EMAIL, SUPER_PASSWORD).await;
    let mut pages = every_page(&app, &browser).await;
    pages.push("/mensajes?estatus=cancelled".to_owned());
    assert_no_page_scrolls_sideways(&app, &browser, &pages).await;
    browser.quit().await;
}

async fn at_phone_width_the_row_action_button_stays_in_view_and_the_modal_fits(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let browser = signed_in_at(&app, PHONE, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_no_sideways_scroll(&browser, "/mensajes").await;
    // The table scrolls sideways inside its card; whichever way it is
    // scrolled, the first row's Cancelar/Reasignar button is in the window
    // and nothing covers it.
    let pinned = browser
        .execute(
            "var wrap = document.querySelector('.table-wrap'); \
             if (wrap.scrollWidth <= wrap.clientWidth) return 'the table does not scroll'; \
             var button = document.querySelector('#rows tr .col-actions .action-button'); \
             button.scrollIntoView({ block: 'center' }); \
             var seen = []; \
             for (var left of [0, wrap.scrollWidth / 2, wrap.scrollWidth]) { \
               wrap.scrollLeft = left; \
               var r = button.getBoundingClientRect(); \
               if (r.left < 0 || r.right > document.documentElement.clientWidth) return 'outside at ' + left + ': ' + JSON.stringify(r); \
               var hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2); \
               if (!button.contains(hit)) return 'covered at ' + left + ' by ' + (hit && hit.outerHTML.slice(0, 80)); \
               seen.push(Math.round(r.left)); } \
             wrap.scrollLeft = 0; \
             return seen[0] === seen[2] ? 'ok' : 'moved ' + seen;",
            vec![],
        )
        .await;
    assert_eq!(pinned, json!("ok"));
    let button = browser.find("#rows tr .col-actions .action-button").await;
    browser.click(&button).await;
    browser
        .wait_until(
            "the modal to open",
            "return document.getElementById('modal').open && !!document.querySelector('#modal-content .modal-footer button[type=submit]');",
        )
        .await;
    // The dialog lies within the screen, does not scroll sideways, and its
    // Confirmar button is in view (the footer stays at the bottom while the
    // body scrolls), also with Reasignar chosen and after scrolling.
    let fits = "var dialog = document.getElementById('modal'); \
         var d = dialog.getBoundingClientRect(); \
         var vw = document.documentElement.clientWidth; \
         if (d.left < 0 || d.right > vw || d.top < 0 || d.bottom > innerHeight) return 'dialog outside: ' + JSON.stringify(d); \
         if (dialog.scrollWidth > dialog.clientWidth) return 'dialog scrolls sideways'; \
         for (var el of dialog.querySelectorAll('.choice-options label, .modal-footer .button')) { \
           var r = el.getBoundingClientRect(); \
           if (r.width > 0 && (r.left < d.left || r.right > d.right)) return 'cut: ' + el.textContent.trim(); } \
         var confirm = dialog.querySelector('.modal-footer button[type=submit]'); \
         var c = confirm.getBoundingClientRect(); \
         if (c.top < 0 || c.bottom > innerHeight) return 'Confirmar out of view: ' + JSON.stringify(c); \
         var hit = document.elementFromPoint(c.left + c.width / 2, c.top + c.height / 2); \
         return confirm.contains(hit) ? 'ok' : 'Confirmar covered by ' + (hit && hit.outerHTML.slice(0, 80));";
    assert_eq!(
        browser.execute(fits, vec![]).await,
        json!("ok"),
        "as opened"
    );
    let reassign = browser.find("label[for='accion-reasignar']").await;
    browser.click(&reassign).await;
    browser
        .execute(
            "var d = document.getElementById('modal'); d.scrollTop = d.scrollHeight / 2;",
            vec![],
        )
        .await;
    assert_eq!(
        browser.execute(fits, vec![]).await,
        json!("ok"),
        "Reasignar, scrolled"
    );
    browser.quit().await;
}

/// The accessible name of the chart with this id, which is an image to
/// assistive technology (its table beside it holds the figures).
async fn chart_name(browser: &Browser, id: &str) -> String {
    let chart = browser.find(&format!("#{id}")).await;
    assert_eq!(
        browser.attribute(&chart, "role").await.as_deref(),
        Some("img"),
        "{id}"
    );
    browser
        .attribute(&chart, "aria-label")
        .await
        .unwrap_or_default()
}

async fn at_desktop_width_the_category_chart_shows_whole_labels_and_says_what_it_shows(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let browser = signed_in_at(&app, DESKTOP, SUPER_EMAIL, SUPER_PASSWORD).await;
    browser.goto(&format!("{}/reportes", app.address)).await;
    let name = chart_name(&browser, "grafica-categorias").await;
    assert!(
        name.starts_with("Cierres por categoría") && name.contains("Más cierres: "),
        "the chart's accessible name and summary: {name}"
    );
    let checked = browser
        .execute(
            "var chart = document.getElementById('grafica-categorias'); \
             var card = chart.closest('.card'); var style = getComputedStyle(card); \
             var inner = card.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight); \
             if (chart.getBoundingClientRect().width < inner - 1) return 'narrower than its card: ' + chart.getBoundingClientRect().width + ' < ' + inner; \
             var names = [...chart.querySelectorAll('.bar-name')]; \
             if (names.length === 0) return 'no rows'; \
             for (var n of names) { if (n.scrollWidth > n.clientWidth || n.scrollHeight > n.clientHeight) return 'cut: ' + n.textContent; } \
             var first = document.querySelector('#tabla-categorias .rollup-group'); \
             if (names[0].textContent !== first.dataset.category) return names[0].textContent + ' vs ' + first.dataset.category; \
             if (chart.getAttribute('aria-label').indexOf(first.dataset.category) < 0) return 'summary misses the largest'; \
             return 'ok';",
            vec![],
        )
        .await;
    assert_eq!(checked, json!("ok"));
    // The other charts are named with their summaries too.
    for (id, start) in [
        ("grafica-dias", "Cancelaciones y resoluciones por día"),
        ("grafica-tipos", "Cierres por quién cerró"),
    ] {
        let name = chart_name(&browser, id).await;
        assert!(name.starts_with(start), "{id}: {name}");
    }
    assert_no_sideways_scroll(&browser, "/reportes").await;
    browser.quit().await;
}
