//! End-to-end tests in real headless Chromium through WebDriver: login, the
//! table, the Cancelar/Reasignar modal with the mouse and the keyboard, the
//! conflict between two sessions, the transcript on the conversation page
//! and in the modal, and an automated accessibility check.

mod common;

use common::webdriver::{Browser, keys};
use common::{ADMIN_EMAIL, ADMIN_PASSWORD, Backend, TestApp, spawn_app};
use serde_json::json;

on_both_backends!(
    browser:
    the_demo_administrator_logs_in_and_sees_the_table,
    a_conversation_is_cancelled_through_the_modal,
    a_conversation_is_reassigned_through_the_modal,
    the_subcategory_list_follows_the_category,
    the_modal_works_with_the_keyboard_alone,
    a_conflict_with_another_session_is_explained_in_the_modal,
    the_pages_pass_an_automated_accessibility_check,
    another_sessions_cancel_shows_without_a_reload,
    a_conversation_created_through_the_api_appears_and_a_dropped_stream_catches_up,
    the_transcript_reads_like_a_chat_on_the_conversation_page,
    the_modal_shows_the_last_messages_scrolled_to_the_newest,
    a_refused_confirmation_is_summarised_and_the_summary_leads_to_the_field,
    a_live_change_moves_its_row_to_its_place_in_the_chosen_order,
    a_stuck_conversation_is_found_and_reassigned_with_the_keyboard_alone,
    the_rezagadas_count_grows_as_time_passes_without_any_change,
);

/// Starts the app and a browser signed in as the demo Administrador.
async fn signed_in(backend: Backend) -> Option<(TestApp, Browser)> {
    let app = spawn_app(backend).await?;
    let browser = browser_signed_in(&app).await;
    Some((app, browser))
}

/// A browser signed in to `app` as the demo Administrador, on its table.
async fn browser_signed_in(app: &TestApp) -> Browser {
    let browser = Browser::start().await;
    browser
        .login(&app.address, ADMIN_EMAIL, ADMIN_PASSWORD)
        .await;
    browser.find("table.data-table tbody tr").await;
    browser
}

/// Whether the page's table follows the live stream.
const LIVE: &str =
    "return document.getElementById('live-indicator').classList.contains('is-live');";

/// Waits (bounded) until the page's table is live.
async fn until_live(browser: &Browser, what: &str) {
    browser.wait_until(what, LIVE).await;
}

/// An open conversation of the admin's campaigns that has an agent.
async fn open_folio(app: &TestApp) -> i64 {
    app.folios_where(
        "select c.folio from conversations c join campaigns p on p.id = c.campaign_id \
         where p.name = $1 and c.status in ('assigned', 'in_progress') \
         order by c.last_activity_at desc, c.folio desc",
        "Ventas Hogar",
    )
    .await[0]
}

async fn open_modal(browser: &Browser, folio: i64) {
    let button = browser
        .find(&format!("#conversacion-{folio} .action-button"))
        .await;
    browser.click(&button).await;
    // Opened, filled, and done fading in: WebDriver reads no text from an
    // element whose opacity is still 0, as a person sees none.
    browser
        .wait_until(
            "the modal to open",
            "const m = document.getElementById('modal'); \
             return m.open && !!document.querySelector('#modal-content h2') \
               && m.getAnimations().every(a => a.playState === 'finished');",
        )
        .await;
}

async fn choose_option(browser: &Browser, select: &str, index: usize) -> String {
    let options = browser.find_all(&format!("{select} option")).await;
    let option = &options[index];
    browser.click(option).await;
    browser.attribute(option, "value").await.unwrap_or_default()
}

async fn the_demo_administrator_logs_in_and_sees_the_table(backend: Backend) {
    let Some((_app, browser)) = signed_in(backend).await else {
        return;
    };
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
        json!([
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
    // The page loads no script from elsewhere.
    let external = browser
        .execute("return [...document.scripts].filter(s => s.src && !s.src.startsWith(location.origin)).length;", vec![])
        .await;
    assert_eq!(external, json!(0));
    browser.quit().await;
}

async fn a_conversation_is_cancelled_through_the_modal(backend: Backend) {
    let Some((app, browser)) = signed_in(backend).await else {
        return;
    };
    let folio = open_folio(&app).await;
    open_modal(&browser, folio).await;
    let title = browser
        .execute(
            "return document.getElementById('modal-title').textContent;",
            vec![],
        )
        .await;
    assert_eq!(title, json!(format!("Conversación {folio}")));
    choose_option(&browser, "#accion-categoria", 1).await;
    let comment = browser.find("#accion-comentario").await;
    browser
        .type_into(&comment, "Cliente atendido por teléfono ✓")
        .await;
    browser
        .wait_until(
            "the counter",
            "return document.querySelector('[data-char-count]').textContent === '31';",
        )
        .await;
    let confirm = browser.find("#modal button[type=submit]").await;
    browser.click(&confirm).await;
    browser
        .wait_until(
            "the row to show Cancelada and the modal to close",
            &format!(
                "return !document.getElementById('modal').open && \
                 !!document.querySelector('#conversacion-{folio} .badge-cancelled');"
            ),
        )
        .await;
    browser
        .wait_until(
            "the toast",
            &format!("return [...document.querySelectorAll('#toasts .toast')].some(t => t.textContent === 'Conversación {folio} cancelada');"),
        )
        .await;
    let status = app
        .folios_where(
            "select folio from conversations where status = $1",
            "cancelled",
        )
        .await;
    assert!(status.contains(&folio));
    browser.quit().await;
}

async fn a_conversation_is_reassigned_through_the_modal(backend: Backend) {
    let Some((app, browser)) = signed_in(backend).await else {
        return;
    };
    let folio = open_folio(&app).await;
    open_modal(&browser, folio).await;
    let reassign = browser.find("label[for=accion-reasignar]").await;
    browser.click(&reassign).await;
    let agent_select = browser.find("#accion-agente").await;
    browser
        .wait_until(
            "the agent field to show",
            "return document.getElementById('accion-agente').offsetParent !== null;",
        )
        .await;
    let _ = agent_select;
    choose_option(&browser, "#accion-agente", 1).await;
    let confirm = browser.find("#modal button[type=submit]").await;
    browser.click(&confirm).await;
    browser
        .wait_until(
            "the row to show Asignada",
            &format!("return !document.getElementById('modal').open && !!document.querySelector('#conversacion-{folio} .badge-assigned');"),
        )
        .await;
    browser
        .wait_until(
            "the toast",
            &format!("return [...document.querySelectorAll('#toasts .toast')].some(t => t.textContent.startsWith('Conversación {folio} reasignada a '));"),
        )
        .await;
    browser.quit().await;
}

async fn the_subcategory_list_follows_the_category(backend: Backend) {
    let Some((app, browser)) = signed_in(backend).await else {
        return;
    };
    let folio = open_folio(&app).await;
    open_modal(&browser, folio).await;
    let subcategories = |category: &'static str| {
        format!(
            "const sel = document.getElementById('accion-categoria'); \
             const opt = [...sel.options].find(o => o.textContent === '{category}'); \
             return !!opt;"
        )
    };
    browser
        .wait_until("the categories", &subcategories("Cliente no responde"))
        .await;
    for (category, expected) in [
        (
            "Cliente no responde",
            vec![
                "Sin subcategoría",
                "Sin respuesta tras 24 h",
                "Abandonó el flujo del bot",
                "Número equivocado",
            ],
        ),
        ("Conversación duplicada", vec!["Sin subcategorías"]),
        (
            "Atendida por otro medio",
            vec![
                "Sin subcategoría",
                "Llamada telefónica",
                "Sucursal",
                "Correo electrónico",
            ],
        ),
    ] {
        let option = browser
            .find(&format!(
                "#accion-categoria option:nth-child({})",
                position_of(&browser, category).await
            ))
            .await;
        browser.click(&option).await;
        let script = format!(
            "return JSON.stringify([...document.querySelectorAll('#accion-subcategoria option')].map(o => o.textContent)) === '{}';",
            serde_json::to_string(&expected).unwrap()
        );
        browser
            .wait_until(&format!("the sub-categories of {category}"), &script)
            .await;
    }
    // No page reload happened: the modal is still open.
    assert_eq!(
        browser
            .execute("return document.getElementById('modal').open;", vec![])
            .await,
        json!(true)
    );
    browser.quit().await;
}

async fn position_of(browser: &Browser, label: &str) -> usize {
    let index = browser
        .execute(
            "return [...document.querySelectorAll('#accion-categoria option')].findIndex(o => o.textContent === arguments[0]);",
            vec![json!(label)],
        )
        .await;
    index.as_u64().expect("the category is offered") as usize + 1
}

async fn the_modal_works_with_the_keyboard_alone(backend: Backend) {
    let Some((app, browser)) = signed_in(backend).await else {
        return;
    };
    let folio = open_folio(&app).await;
    // Focus the icon and open it with Enter.
    browser
        .execute(
            "document.querySelector('#conversacion-' + arguments[0] + ' .action-button').focus();",
            vec![json!(folio)],
        )
        .await;
    browser.send_keys(keys::ENTER).await;
    browser
        .wait_until("the modal to open", "return document.getElementById('modal').open && !!document.querySelector('#modal-content h2');")
        .await;
    let inside = "return document.getElementById('modal').contains(document.activeElement);";
    browser.wait_until("focus inside the dialog", inside).await;
    // Tab and Shift+Tab cycle inside the dialog.
    for _ in 0..15 {
        browser.send_keys(keys::TAB).await;
        assert_eq!(
            browser.execute(inside, vec![]).await,
            json!(true),
            "Tab left the dialog"
        );
    }
    for _ in 0..15 {
        browser.send_keys(keys::SHIFT_TAB).await;
        assert_eq!(
            browser.execute(inside, vec![]).await,
            json!(true),
            "Shift+Tab left the dialog"
        );
    }
    // Escape closes it and focus returns to the icon that opened it.
    browser.send_keys(keys::ESCAPE).await;
    browser
        .wait_until(
            "focus back on the icon",
            &format!(
                "return !document.getElementById('modal').open && \
                 document.activeElement === document.querySelector('#conversacion-{folio} .action-button');"
            ),
        )
        .await;
    browser.quit().await;
}

async fn a_conflict_with_another_session_is_explained_in_the_modal(backend: Backend) {
    let Some((app, browser)) = signed_in(backend).await else {
        return;
    };
    let folio = open_folio(&app).await;
    open_modal(&browser, folio).await;
    choose_option(&browser, "#accion-categoria", 1).await;
    // Meanwhile, the Super Administrador cancels it from another session.
    let other = common::new_client();
    app.login_with(&other, common::SUPER_EMAIL, common::SUPER_PASSWORD)
        .await;
    let won = app.cancel_through_form(&other, folio).await;
    assert_eq!(won.status, reqwest::StatusCode::SEE_OTHER);
    let confirm = browser.find("#modal button[type=submit]").await;
    browser.click(&confirm).await;
    browser
        .wait_until(
            "the conflict message",
            "const a = document.querySelector('#modal .alert'); \
             return !!a && a.textContent.includes('Carlos Ramírez Ortega la canceló hace') && \
             a.textContent.includes('ya estaba cancelada');",
        )
        .await;
    // The modal shows the current state and offers nothing more to confirm.
    assert_eq!(
        browser
            .execute("return document.getElementById('modal').open;", vec![])
            .await,
        json!(true)
    );
    assert!(
        browser
            .try_find("#modal button[type=submit]")
            .await
            .is_none()
    );
    assert!(browser.try_find("#modal .badge-cancelled").await.is_some());
    browser.quit().await;
}

async fn the_pages_pass_an_automated_accessibility_check(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let browser = Browser::start().await;
    browser.goto(&format!("{}/login", app.address)).await;
    browser.find("#email").await;
    assert_eq!(
        browser.accessibility_violations().await,
        Vec::<String>::new(),
        "login"
    );
    browser
        .login(&app.address, ADMIN_EMAIL, ADMIN_PASSWORD)
        .await;
    browser.find("table.data-table tbody tr").await;
    assert_eq!(
        browser.accessibility_violations().await,
        Vec::<String>::new(),
        "mensajes"
    );
    let folio = open_folio(&app).await;
    open_modal(&browser, folio).await;
    assert_eq!(
        browser.accessibility_violations().await,
        Vec::<String>::new(),
        "modal"
    );
    browser
        .goto(&format!("{}/mensajes/{folio}", app.address))
        .await;
    browser.find(".chat").await;
    assert_eq!(
        browser.accessibility_violations().await,
        Vec::<String>::new(),
        "detail"
    );
    browser.quit().await;
}

async fn another_sessions_cancel_shows_without_a_reload(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let browser = browser_signed_in(&app).await;
    browser
        .goto(&format!("{}/mensajes?estatus=todas", app.address))
        .await;
    until_live(&browser, "the table to be live").await;
    // Mark the page: a reload would lose this.
    browser
        .execute("window.__noReload = true; window.scrollTo(0, 200);", vec![])
        .await;
    let folio = open_folio(&app).await;
    // Another session cancels it through the form.
    let other = common::new_client();
    app.login_with(&other, common::SUPER_EMAIL, common::SUPER_PASSWORD)
        .await;
    let done = app.cancel_through_form(&other, folio).await;
    assert_eq!(done.status, reqwest::StatusCode::SEE_OTHER);
    browser
        .wait_until(
            "the row to show Cancelada",
            &format!("return !!document.querySelector('#conversacion-{folio} .badge-cancelled');"),
        )
        .await;
    assert_eq!(
        browser
            .execute(
                "return window.__noReload === true && window.scrollY > 0;",
                vec![]
            )
            .await,
        json!(true)
    );
    // In the default view (open conversations) a cancelled row leaves.
    browser.goto(&format!("{}/mensajes", app.address)).await;
    until_live(&browser, "live again").await;
    let next = open_folio(&app).await;
    let present = format!("return !!document.getElementById('conversacion-{next}');");
    browser.wait_until("the next open row", &present).await;
    app.cancel_through_form(&other, next).await;
    browser
        .wait_until(
            "the cancelled row to leave",
            &format!("return !document.getElementById('conversacion-{next}');"),
        )
        .await;
    browser.quit().await;
}

async fn a_conversation_created_through_the_api_appears_and_a_dropped_stream_catches_up(
    backend: Backend,
) {
    let Some((app, browser)) = signed_in(backend).await else {
        return;
    };
    until_live(&browser, "the table to be live").await;
    browser.execute("window.__noReload = true;", vec![]).await;
    // A customer writes on a channel of the admin's campaign.
    let ventas = app.campaign_id("Ventas Hogar").await;
    let (channel, ..) = app
        .store
        .channels()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.1 == ventas && c.3)
        .expect("a channel of Ventas Hogar");
    let token = app
        .store
        .rotate_channel_token(channel)
        .await
        .unwrap()
        .unwrap();
    let created: serde_json::Value = app
        .client
        .post(app.url(&format!("/api/v1/channels/{channel}/messages")))
        .bearer_auth(&token)
        .json(&json!({
            "message_id": "wamid.prueba-navegador-1",
            "from": "5215599887766",
            "name": "Renata Prueba Viva",
            "text": "Hola, necesito ayuda 👋"
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let folio = created["folio"].as_i64().expect("a folio in the response");
    browser
        .wait_until(
            "the new conversation at the top",
            &format!("return document.querySelector('#rows tr')?.id === 'conversacion-{folio}' && document.querySelector('#rows tr').textContent.includes('Renata Prueba Viva');"),
        )
        .await;
    // The stream drops (this instance says to reconnect); a change made
    // meanwhile is caught up by the resync after reconnecting.
    app.store.feed().publish(relevo::live::Event::Shutdown);
    browser
        .wait_until(
            "the indicator to show the drop",
            "return document.getElementById('live-indicator').classList.contains('is-offline');",
        )
        .await;
    app.hand_off_to_agents_offline(folio).await;
    browser
        .wait_until(
            "the missed change after reconnecting",
            &format!("return document.getElementById('live-indicator').classList.contains('is-live') && !!document.querySelector('#conversacion-{folio} .badge-agents_offline');"),
        )
        .await;
    assert_eq!(
        browser
            .execute("return window.__noReload === true;", vec![])
            .await,
        json!(true)
    );
    browser.quit().await;
}

/// A demo conversation of the admin's campaigns in which the customer, the
/// bot and an agent all wrote, short enough for one page.
async fn chatty_folio(app: &TestApp) -> i64 {
    app.folios_where(
        "select c.folio from conversations c join campaigns p on p.id = c.campaign_id \
         where p.name = $1 and c.status = 'in_progress' \
         and (select count(*) from messages m where m.conversation_id = c.id) < 20 \
         order by c.last_activity_at desc, c.folio desc",
        "Ventas Hogar",
    )
    .await[0]
}

async fn the_transcript_reads_like_a_chat_on_the_conversation_page(backend: Backend) {
    let Some((app, browser)) = signed_in(backend).await else {
        return;
    };
    let folio = chatty_folio(&app).await;
    browser
        .goto(&format!("{}/mensajes/{folio}", app.address))
        .await;
    browser.find(".chat .chat-message").await;
    // Who wrote each line, in words, oldest first; the hand-off and the
    // first reply between the bot's and the agent's messages.
    let lines = browser
        .execute(
            "return [...document.querySelectorAll('.chat > li')].map(li => \
               li.classList.contains('chat-event') ? 'evento: ' + li.querySelector('strong').nextSibling.textContent.trim() \
               : li.classList.contains('chat-day') ? 'día' \
               : li.className.replace('chat-message chat-', '') + ': ' + li.querySelector('.bubble-role').textContent);",
            vec![],
        )
        .await;
    let lines: Vec<String> = serde_json::from_value(lines).unwrap();
    let first = |prefix: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in {lines:?}"))
    };
    assert_eq!(lines[0], "día");
    assert!(
        lines[1].starts_with("evento: · Inició la conversación"),
        "{lines:?}"
    );
    assert_eq!(lines[2], "customer: Cliente");
    assert!(first("bot: Bot") < first("evento: · Derivó a un agente"));
    assert!(first("evento: · Derivó a un agente") < first("evento: · Primera respuesta"));
    assert!(first("evento: · Primera respuesta") < first("agent: Agente"));
    // The customer on the left, what goes out on the right.
    let sides = browser
        .execute(
            "const box = s => document.querySelector(s + ' .bubble').getBoundingClientRect(); \
             const chat = document.querySelector('.chat').getBoundingClientRect(); \
             return [box('.chat-customer').left - chat.left, chat.right - box('.chat-agent').right, \
                     chat.right - box('.chat-bot').right];",
            vec![],
        )
        .await;
    let sides: Vec<f64> = serde_json::from_value(sides).unwrap();
    assert!(sides.iter().all(|gap| gap.abs() < 2.0), "{sides:?}");
    // Every time is machine-readable.
    assert_eq!(
        browser
            .execute(
                "return [...document.querySelectorAll('.chat time')].every(t => !isNaN(Date.parse(t.getAttribute('datetime'))));",
                vec![]
            )
            .await,
        json!(true)
    );

    // A long transcript pages back and forth through links.
    let long = app
        .folios_where(
            "select c.folio from conversations c join campaigns p on p.id = c.campaign_id \
             where p.name = $1 and (select count(*) from messages m where m.conversation_id = c.id) > 50",
            "Ventas Hogar",
        )
        .await[0];
    browser
        .goto(&format!("{}/mensajes/{long}", app.address))
        .await;
    let newest = browser
        .execute(
            "return document.querySelector('.chat-message:last-of-type .bubble-text').textContent;",
            vec![],
        )
        .await;
    let older = browser.find("a[rel=prev]").await;
    assert_eq!(browser.text(&older).await, "Mensajes anteriores");
    browser.click(&older).await;
    browser
        .wait_until(
            "the older page",
            "return location.search.includes('antes=') && !!document.querySelector('a[rel=next]');",
        )
        .await;
    assert_eq!(
        browser
            .execute(
                "return [...document.querySelectorAll('.bubble-text')].some(t => t.textContent === arguments[0]);",
                vec![newest.clone()]
            )
            .await,
        json!(false),
        "the newest message is on the latest page only"
    );
    // Nothing overflows sideways, however long a word.
    assert_eq!(
        browser
            .execute(
                "const c = document.querySelector('.chat'); return c.scrollWidth <= c.clientWidth;",
                vec![]
            )
            .await,
        json!(true)
    );
    let latest = browser.find("a[href$='#transcripcion']:not([rel])").await;
    browser.click(&latest).await;
    browser
        .wait_until(
            "the latest page again",
            "return !location.search.includes('antes=') && !document.querySelector('a[rel=next]');",
        )
        .await;
    assert_eq!(
        browser
            .execute("return document.querySelector('.chat-message:last-of-type .bubble-text').textContent;", vec![])
            .await,
        newest
    );
    browser.quit().await;
}

async fn the_modal_shows_the_last_messages_scrolled_to_the_newest(backend: Backend) {
    let Some((app, browser)) = signed_in(backend).await else {
        return;
    };
    let folio = open_folio(&app).await;
    // Its last five messages, to compare.
    let id = app
        .uuids_where(
            "select id from conversations where folio = cast($1 as bigint)",
            &folio.to_string(),
        )
        .await[0];
    let page = app
        .store
        .transcript_page(id, relevo::db::TranscriptPosition::Latest, 5)
        .await
        .unwrap();
    let expected: Vec<String> = page
        .messages
        .iter()
        .map(|m| m.text.clone().unwrap_or_default())
        .collect();
    assert!(!expected.is_empty());
    open_modal(&browser, folio).await;
    let shown = browser
        .execute(
            "return [...document.querySelectorAll('#modal .recent-messages .bubble-text')].map(t => t.textContent);",
            vec![],
        )
        .await;
    assert_eq!(shown, json!(expected), "the last five, oldest first");
    // Compact, and scrolled to the newest when they do not fit.
    let list = browser
        .execute(
            "const l = document.querySelector('#modal .recent-messages .chat'); \
             return [l.scrollHeight > l.clientHeight, l.scrollTop + l.clientHeight >= l.scrollHeight - 2, l.clientHeight <= 240];",
            vec![],
        )
        .await;
    let list: Vec<bool> = serde_json::from_value(list).unwrap();
    assert!(list[1] && list[2], "{list:?}");
    // Above the form, which still works with the keyboard from there.
    assert_eq!(
        browser
            .execute(
                "const r = document.querySelector('#modal .recent-messages'); \
                 const f = document.querySelector('#modal form'); \
                 return !!(r.compareDocumentPosition(f) & Node.DOCUMENT_POSITION_FOLLOWING);",
                vec![]
            )
            .await,
        json!(true)
    );
    browser.quit().await;
}

/// A Confirmar refused for a missing category: the summary at the top of the
/// modal takes focus, and its link, followed with the keyboard, puts focus
/// on the Categoría field.
async fn a_refused_confirmation_is_summarised_and_the_summary_leads_to_the_field(backend: Backend) {
    let Some((app, browser)) = signed_in(backend).await else {
        return;
    };
    let folio = open_folio(&app).await;
    open_modal(&browser, folio).await;
    browser
        .execute(
            "document.querySelector('#modal button[type=submit]').focus();",
            vec![],
        )
        .await;
    browser.send_keys(keys::ENTER).await;
    browser
        .wait_until(
            "the summary to take focus",
            "return document.activeElement && document.activeElement.id === 'resumen-errores';",
        )
        .await;
    let summary = browser.find("#resumen-errores").await;
    let said = browser.text(&summary).await;
    assert!(said.contains("Selecciona una categoría"), "{said:?}");
    browser.send_keys(keys::TAB).await;
    browser
        .wait_until(
            "focus on the summary's link",
            "return document.activeElement.matches('#resumen-errores a[href=\"#accion-categoria\"]');",
        )
        .await;
    browser.send_keys(keys::ENTER).await;
    browser
        .wait_until(
            "focus on the Categoría field",
            "return document.activeElement.id === 'accion-categoria' && document.getElementById('modal').open;",
        )
        .await;
    browser.quit().await;
}

/// The live table keeps the chosen Orden: a row another session changes
/// moves to its place in the page, or leaves when it now belongs to
/// another page.
async fn a_live_change_moves_its_row_to_its_place_in_the_chosen_order(backend: Backend) {
    let Some((app, browser)) = signed_in(backend).await else {
        return;
    };
    let other = common::new_client();
    app.login_with(&other, common::SUPER_EMAIL, common::SUPER_PASSWORD)
        .await;
    // Another session gives `folio` back to the router: a reassignment, so
    // new activity, and still open.
    let give_back = |folio: i64| {
        let (app, other) = (&app, &other);
        async move {
            let path = format!("/mensajes/{folio}/acciones");
            let form = app.get_with(other, &path).await.body;
            let done = app
                .post_form_with(
                    other,
                    &path,
                    &[
                        ("_csrf", &common::csrf_in(&form)),
                        ("version", &common::field_value(&form, "version")),
                        ("accion", "enrutador"),
                    ],
                )
                .await;
            assert_eq!(done.status, reqwest::StatusCode::SEE_OTHER, "{}", done.body);
        }
    };
    let row_folio = |index: usize| {
        format!(
            "var row = document.querySelectorAll('#rows tr')[{index}]; return row ? Number(row.dataset.folio) : null;"
        )
    };

    // Most recent activity first: a changed row lower down moves to the top.
    browser.goto(&format!("{}/mensajes", app.address)).await;
    until_live(&browser, "the table to be live").await;
    let folio = browser
        .execute(&row_folio(3), vec![])
        .await
        .as_i64()
        .expect("a fourth row");
    give_back(folio).await;
    browser
        .wait_until(
            "the changed row to move to the top",
            &format!("return document.querySelector('#rows tr').dataset.folio === '{folio}';"),
        )
        .await;

    // Longest without activity first, with a next page: a row that gets
    // activity now belongs at the end of the list, on another page.
    browser
        .goto(&format!("{}/mensajes?orden=sin-actividad", app.address))
        .await;
    until_live(&browser, "the table to be live again").await;
    assert_eq!(
        browser
            .execute(
                "return document.getElementById('rows').hasAttribute('data-last-key');",
                vec![]
            )
            .await,
        json!(true),
        "the page has a next page"
    );
    let folio = browser
        .execute(&row_folio(0), vec![])
        .await
        .as_i64()
        .expect("a first row");
    give_back(folio).await;
    browser
        .wait_until(
            "the row to leave the page",
            &format!("return !document.getElementById('conversacion-{folio}');"),
        )
        .await;
    let rows = browser
        .execute(
            "return document.querySelectorAll('#rows tr').length;",
            vec![],
        )
        .await;
    assert!(rows.as_i64().unwrap() >= 49, "the other rows stay: {rows}");
    browser.quit().await;
}

/// Triage with the keyboard alone: the Orden "Sin actividad hace más
/// tiempo" and the Rezagadas tab put the oldest stuck conversation first;
/// its modal lists agents with presence and load, and choosing a
/// disconnected one asks, inside the modal, to confirm.
async fn a_stuck_conversation_is_found_and_reassigned_with_the_keyboard_alone(backend: Backend) {
    let Some((app, browser)) = signed_in(backend).await else {
        return;
    };
    let focus = |css: &str| format!("document.querySelector('{css}').focus();");
    browser.execute(&focus("#orden"), vec![]).await;
    browser.send_keys(keys::ARROW_DOWN).await;
    browser
        .wait_until(
            "the order in the address",
            "return location.search.includes('orden=sin-actividad') && \
             document.getElementById('rows').dataset.order === 'sin-actividad';",
        )
        .await;
    browser
        .execute(&focus(".status-tab[href*=\"estatus=rezagadas\"]"), vec![])
        .await;
    browser.send_keys(keys::ENTER).await;
    browser
        .wait_until(
            "the Rezagadas tab, oldest first",
            "return location.search.includes('estatus=rezagadas') && \
             location.search.includes('orden=sin-actividad') && \
             !!document.querySelector('#rows tr .stale-tag');",
        )
        .await;
    let folio = browser
        .execute(
            "return Number(document.querySelector('#rows tr').dataset.folio);",
            vec![],
        )
        .await
        .as_i64()
        .expect("a stuck row");
    // Every agent connected but one of the row's campaign, not its own.
    app.execute("update users set connected = true where role = $1", "agent")
        .await;
    let offline = app
        .uuids_where(
            "select u.id from users u join campaign_members m on m.user_id = u.id \
             join conversations c on c.campaign_id = m.campaign_id \
             where c.folio = cast($1 as bigint) and u.role = 'agent' and u.active \
             and (c.agent_id is null or c.agent_id <> u.id) order by u.email",
            &folio.to_string(),
        )
        .await[0];
    app.store
        .set_agent_presence(offline, false, relevo::db::Ts::now())
        .await
        .unwrap();

    browser
        .execute(
            &focus(&format!("#conversacion-{folio} .action-button")),
            vec![],
        )
        .await;
    browser.send_keys(keys::ENTER).await;
    browser
        .wait_until(
            "the modal to open",
            "return document.getElementById('modal').open && !!document.getElementById('accion-agente');",
        )
        .await;
    browser.execute(&focus("#accion-reasignar"), vec![]).await;
    browser.send_keys(keys::SPACE).await;
    let labels = browser
        .execute(
            "return [...document.querySelectorAll('#accion-agente option')].slice(1).map(o => o.textContent);",
            vec![],
        )
        .await;
    let labels: Vec<String> = serde_json::from_value(labels).unwrap();
    assert!(
        labels
            .iter()
            .all(|l| l.contains(" · conectado · ") || l.contains(" · desconectado · ")),
        "presence and load on every agent: {labels:?}"
    );
    assert!(
        labels.last().unwrap().contains("desconectado"),
        "{labels:?}"
    );
    browser.execute(&focus("#accion-agente"), vec![]).await;
    browser.send_keys(keys::END).await;
    browser
        .wait_until(
            "the modal to say the conversation will wait",
            "return !document.getElementById('aviso-desconectado').hidden;",
        )
        .await;
    browser
        .execute(&focus("#accion-confirmar-desconectado"), vec![])
        .await;
    browser.send_keys(keys::SPACE).await;
    assert_eq!(
        browser
            .execute(
                "return document.getElementById('accion-confirmar-desconectado').checked;",
                vec![]
            )
            .await,
        json!(true)
    );
    browser
        .execute(&focus("#modal-content button[type=submit]"), vec![])
        .await;
    browser.send_keys(keys::ENTER).await;
    browser
        .wait_until(
            "the modal to close",
            "return !document.getElementById('modal').open;",
        )
        .await;
    let mut assigned = Vec::new();
    for _ in 0..50 {
        assigned = app
            .uuids_where(
                "select agent_id from conversations where folio = cast($1 as bigint)",
                &folio.to_string(),
            )
            .await;
        if assigned == [offline] {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(assigned, [offline], "reassigned to the confirmed agent");
    browser.quit().await;
}

/// The Rezagadas count of the page's status tabs, as shown.
const REZAGADAS_COUNT: &str = "var tab = Array.from(document.querySelectorAll('#status-tabs .status-tab'))\
    .find(function (t) { return t.textContent.indexOf('Rezagadas') >= 0; });\
    return tab ? parseInt(tab.querySelector('.count').textContent.replace(/\\D/g, ''), 10) : null;";

/// A conversation becomes "rezagada" by time alone: no change announces it,
/// so an open tab asks for its counts again by itself (every minute; here
/// every second).
async fn the_rezagadas_count_grows_as_time_passes_without_any_change(backend: Backend) {
    let Some(app) = common::spawn_app_configured(backend, true, |settings| {
        settings.counts_refresh = std::time::Duration::from_secs(1);
    })
    .await
    else {
        return;
    };
    let browser = browser_signed_in(&app).await;
    until_live(&browser, "the table to be live").await;
    let before = browser.execute(REZAGADAS_COUNT, vec![]).await;
    let before = before.as_i64().expect("a Rezagadas count");
    // The most recently active open conversation goes a day without
    // activity, straight in the database: nothing is published.
    let folio = open_folio(&app).await;
    let day_ago = chrono::Utc::now() - chrono::TimeDelta::days(1);
    app.set_activity(folio, relevo::db::Ts::new(day_ago)).await;
    browser
        .wait_until(
            "the Rezagadas count to grow",
            &format!("var n = (function () {{ {REZAGADAS_COUNT} }})(); return n !== null && n > {before};"),
        )
        .await;
    browser.quit().await;
}
