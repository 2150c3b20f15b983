//! The Mensajes table: scope, filters, search, paging, counts and the action
//! button, over HTTP on both backends, against the demo data set.

mod common;

use std::collections::BTreeSet;

use common::{ADMIN_EMAIL, Backend, TestApp, folios_in, rel_link, spawn_app};
use reqwest::StatusCode;

on_both_backends!(
    an_admin_only_ever_sees_rows_of_their_campaigns,
    filters_can_never_widen_an_admins_scope,
    a_conversation_outside_scope_answers_404,
    paging_visits_every_row_exactly_once_in_both_directions,
    the_default_view_lists_open_conversations_newest_activity_first,
    status_counts_match_the_database,
    a_channel_view_reads_its_counts_from_the_kept_totals,
    search_finds_by_folio_phone_and_name,
    a_folio_or_phone_search_looks_across_every_status,
    search_text_is_matched_literally_and_shown_escaped,
    a_name_search_finds_any_part_of_a_name_and_a_short_one_its_beginning,
    unknown_filter_values_are_ignored_with_a_notice,
    malformed_and_unknown_folios_answer_404,
    the_action_button_is_enabled_exactly_on_open_statuses,
    filters_narrow_the_rows,
    a_fragment_request_gets_only_the_results,
    a_gzip_client_gets_the_same_results_compressed,
    the_detail_tells_the_history_oldest_first,
    a_reactivated_conversation_links_to_the_one_it_restarted,
    a_reloaded_page_shows_every_change_made_since_it_was_last_shown,
    with_the_view_cache_off_every_reload_reads_the_database,
    stuck_conversations_are_marked_counted_and_listed_on_their_tab,
    a_disconnected_agents_rows_say_so_and_the_filter_finds_them,
    every_order_pages_every_row_exactly_once_in_both_directions,
    a_tab_counts_up_to_the_cap_and_then_says_more,
    a_broad_name_search_lists_the_newest_matches_without_counting_them,
    a_scope_of_a_thousand_campaigns_lists_like_a_small_one,
);

/// The markup of each table row.
fn rows_in(html: &str) -> Vec<&str> {
    html.split("<tr id=\"conversacion-")
        .skip(1)
        .map(|row| &row[..row.find("</tr>").unwrap_or(row.len())])
        .collect()
}

/// Follows "Siguiente" from `start`, returning every folio in order.
async fn walk_forward(app: &TestApp, start: &str) -> (Vec<i64>, Vec<String>) {
    let mut folios = Vec::new();
    let mut pages = vec![start.to_owned()];
    let mut next = Some(start.to_owned());
    for _ in 0..100 {
        let Some(path) = next.take() else { break };
        let page = app.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        let found = folios_in(&page.body);
        assert!(found.len() <= 50, "a page has at most 50 rows");
        folios.extend(found);
        next = rel_link(&page.body, "next");
        if let Some(n) = &next {
            pages.push(n.clone());
        }
    }
    (folios, pages)
}

const ADMIN_SCOPE: &str = "select c.folio from conversations c \
    join campaign_members m on m.campaign_id = c.campaign_id \
    join users u on u.id = m.user_id where u.email = $1 order by c.folio";

async fn an_admin_only_ever_sees_rows_of_their_campaigns(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let (seen, _) = walk_forward(&app, "/mensajes?estatus=todas").await;
    let expected = app.folios_where(ADMIN_SCOPE, ADMIN_EMAIL).await;
    let seen_set: BTreeSet<i64> = seen.iter().copied().collect();
    assert_eq!(seen_set, expected.iter().copied().collect::<BTreeSet<_>>());
    assert_eq!(seen.len(), expected.len(), "no row shown twice");
    let total = app.scalar_i64("select count(*) from conversations").await;
    assert!(
        (expected.len() as i64) < total,
        "the demo has rows outside the admin's scope"
    );
}

async fn filters_can_never_widen_an_admins_scope(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    for campaign in ["Cobranza", "Atención a Clientes", "Seguros Auto"] {
        let id = app.campaign_id(campaign).await;
        let page = app
            .get(&format!("/mensajes?estatus=todas&campana={id}"))
            .await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(
            folios_in(&page.body).is_empty(),
            "{campaign} must stay hidden"
        );
        assert!(
            !page.body.contains(&format!("<option value=\"{id}\"")),
            "{campaign} is not offered"
        );
        // Its status counts are all zero: every tab, exactly.
        let counts = tab_counts(&page.body);
        assert_eq!(
            counts.len(),
            page.body.matches("class=\"status-tab\"").count()
                + page.body.matches("class=\"status-tab is-active\"").count(),
            "one count per status tab"
        );
        assert!(counts.len() > 1, "the status tabs are shown");
        assert_eq!(
            counts,
            vec![0; counts.len()],
            "no counts leak from {campaign}"
        );
    }
    // Searching a folio of another campaign finds nothing.
    let foreign = app
        .folios_where(
            "select c.folio from conversations c join campaigns p on p.id = c.campaign_id \
             where p.name = $1 order by c.folio",
            "Cobranza",
        )
        .await;
    let page = app
        .get(&format!("/mensajes?estatus=todas&q={}", foreign[0]))
        .await;
    assert!(folios_in(&page.body).is_empty());
}

async fn a_conversation_outside_scope_answers_404(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let foreign = app
        .folios_where(
            "select c.folio from conversations c join campaigns p on p.id = c.campaign_id \
             where p.name = $1 order by c.folio",
            "Seguros Auto",
        )
        .await[0];
    let own = app.folios_where(ADMIN_SCOPE, ADMIN_EMAIL).await[0];
    let hidden = app.get(&format!("/mensajes/{foreign}")).await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);
    assert!(hidden.body.contains("No encontramos esa conversación"));
    assert!(
        !hidden.body.contains("Seguros Auto"),
        "nothing about it is revealed"
    );
    let unknown = app.get("/mensajes/999999").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get(&format!("/mensajes/{own}")).await.status,
        StatusCode::OK
    );
    // The Super Administrador sees both.
    let other = common::new_client();
    app.login_with(&other, common::SUPER_EMAIL, common::SUPER_PASSWORD)
        .await;
    let seen = app.get_with(&other, &format!("/mensajes/{foreign}")).await;
    assert_eq!(seen.status, StatusCode::OK);
}

async fn paging_visits_every_row_exactly_once_in_both_directions(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_super().await;
    let (forward, pages) = walk_forward(&app, "/mensajes?estatus=todas").await;
    let total = app.scalar_i64("select count(*) from conversations").await;
    assert_eq!(forward.len() as i64, total, "every row once");
    assert_eq!(
        forward.iter().copied().collect::<BTreeSet<_>>().len(),
        forward.len(),
        "no repeats"
    );
    let expected = app
        .folios_where(
            "select folio from conversations where status <> $1 \
             order by last_activity_at desc, folio desc",
            "none",
        )
        .await;
    assert_eq!(
        forward, expected,
        "newest activity first, folio breaking ties"
    );
    assert!(pages.len() >= 9, "the demo spans several pages");
    // Walking back with "Anterior" from the last page shows the same pages.
    let last = app.get(pages.last().unwrap()).await;
    let mut backward: Vec<Vec<i64>> = vec![folios_in(&last.body)];
    let mut prev = rel_link(&last.body, "prev");
    for _ in 0..100 {
        let Some(path) = prev.take() else { break };
        let page = app.get(&path).await;
        backward.push(folios_in(&page.body));
        prev = rel_link(&page.body, "prev");
    }
    backward.reverse();
    let flattened: Vec<i64> = backward.into_iter().flatten().collect();
    assert_eq!(flattened, forward);
}

/// Walks a view forward with "Siguiente" and back with "Anterior", as
/// `client`'s user.
async fn walk_both_ways(
    app: &TestApp,
    client: &reqwest::Client,
    start: &str,
) -> (Vec<i64>, Vec<i64>) {
    let walk = |rel: &'static str, from: String| async move {
        let mut pages: Vec<Vec<i64>> = Vec::new();
        let mut next = Some(from);
        let mut last = String::new();
        for _ in 0..100 {
            let Some(path) = next.take() else { break };
            let page = app.get_with(client, &path).await;
            assert_eq!(page.status, StatusCode::OK, "{path}");
            pages.push(folios_in(&page.body));
            next = rel_link(&page.body, rel);
            last = path;
        }
        (pages, last)
    };
    let (forward, last_page) = walk("next", start.to_owned()).await;
    let (mut backward, _) = walk("prev", last_page).await;
    backward.reverse();
    (
        forward.into_iter().flatten().collect(),
        backward.into_iter().flatten().collect(),
    )
}

/// "Sin actividad hace más tiempo" and "Más tiempo en el estatus" page like
/// the default order: every row once, in the order's key then folio, the
/// same pages walking back; for a Super Administrador across all campaigns
/// and for an Administrador's campaigns (merged per campaign).
async fn every_order_pages_every_row_exactly_once_in_both_directions(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_super().await;
    // Every agent away: "Agente desconectado" then holds every Asignada
    // and En Proceso conversation, more than a page.
    app.execute(
        "update users set connected = false where role = $1",
        "agent",
    )
    .await;
    let views: [(&str, &'static str, &str); 9] = [
        (
            "/mensajes?estatus=todas&orden=sin-actividad",
            "select folio from conversations where status <> $1 \
             order by last_activity_at, folio",
            "none",
        ),
        (
            "/mensajes?estatus=todas&orden=en-estatus",
            "select folio from conversations where status <> $1 \
             order by status_since, folio",
            "none",
        ),
        (
            "/mensajes?orden=en-estatus",
            "select c.folio from conversations c join campaign_members m on \
             m.campaign_id = c.campaign_id join users u on u.id = m.user_id \
             where u.email = $1 and c.is_open = true order by c.status_since, c.folio",
            ADMIN_EMAIL,
        ),
        (
            "/mensajes?orden=sin-actividad",
            "select c.folio from conversations c join campaign_members m on \
             m.campaign_id = c.campaign_id join users u on u.id = m.user_id \
             where u.email = $1 and c.is_open = true order by c.last_activity_at, c.folio",
            ADMIN_EMAIL,
        ),
        // By channel kind: merged from one range per channel of the kind.
        (
            "/mensajes?estatus=todas&canal=whatsapp",
            "select folio from conversations where status <> $1 and channel_id in \
             (select id from channels where kind = 'whatsapp') \
             order by last_activity_at desc, folio desc",
            "none",
        ),
        (
            "/mensajes?estatus=todas&canal=web&orden=sin-actividad",
            "select folio from conversations where status <> $1 and channel_id in \
             (select id from channels where kind = 'web') \
             order by last_activity_at, folio",
            "none",
        ),
        (
            "/mensajes?estatus=todas&canal=web",
            "select c.folio from conversations c join campaign_members m on \
             m.campaign_id = c.campaign_id join users u on u.id = m.user_id \
             where u.email = $1 and c.channel_id in \
             (select id from channels where kind = 'web') \
             order by c.last_activity_at desc, c.folio desc",
            ADMIN_EMAIL,
        ),
        // "Agente desconectado": merged from one range per status.
        (
            "/mensajes?agente=desconectado",
            "select folio from conversations where status <> $1 \
             and status in ('assigned', 'in_progress') and agent_id in \
             (select id from users where role = 'agent' and connected = false) \
             order by last_activity_at desc, folio desc",
            "none",
        ),
        (
            "/mensajes?agente=desconectado&estatus=todas&orden=en-estatus",
            "select folio from conversations where status <> $1 \
             and status in ('assigned', 'in_progress') and agent_id in \
             (select id from users where role = 'agent' and connected = false) \
             order by status_since, folio",
            "none",
        ),
    ];
    // Some conversations changed status since their last activity.
    let activity = app.folios_where(views[0].1, "none").await;
    let in_status = app.folios_where(views[1].1, "none").await;
    assert_ne!(activity, in_status, "the demo's orders differ");
    let boss = common::new_client();
    app.login_with(&boss, common::SUPER_EMAIL, common::SUPER_PASSWORD)
        .await;
    let admin = common::new_client();
    app.login_with(&admin, ADMIN_EMAIL, common::ADMIN_PASSWORD)
        .await;
    for (path, sql, arg) in &views {
        let client = if *arg == "none" { &boss } else { &admin };
        let expected = app.folios_where(sql, arg).await;
        assert!(
            expected.len() > 50,
            "{path} ({arg}): more than one page to walk, {}",
            expected.len()
        );
        let (forward, backward) = walk_both_ways(&app, client, path).await;
        assert_eq!(forward, expected, "{path}: in the order's key, then folio");
        assert_eq!(backward, forward, "{path}: the same pages walking back");
    }
    let page = app.get("/mensajes?orden=en-estatus").await;
    assert!(
        page.body
            .contains("<option value=\"en-estatus\" selected>Más tiempo en el estatus</option>"),
        "the chosen order shows"
    );
    assert!(page.body.contains("data-order=\"en-estatus\""));
    let tab = page.body.find("estatus=cancelled").unwrap();
    assert!(
        page.body[tab..tab + 200].contains("orden=en-estatus"),
        "the tabs keep the order"
    );
    let bad = app.get("/mensajes?orden=alfabetico").await;
    assert!(bad.body.contains("Se ignoró el filtro de orden"));
}

async fn the_default_view_lists_open_conversations_newest_activity_first(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let (seen, _) = walk_forward(&app, "/mensajes").await;
    let expected = app
        .folios_where(
            "select c.folio from conversations c \
             join campaign_members m on m.campaign_id = c.campaign_id \
             join users u on u.id = m.user_id \
             where u.email = $1 and c.status in ('icr', 'assigned', 'in_progress', 'out_of_hours', 'agents_offline') \
             order by c.last_activity_at desc, c.folio desc",
            ADMIN_EMAIL,
        )
        .await;
    assert!(!expected.is_empty());
    assert_eq!(seen, expected);
}

/// The number of every status tab, in order.
fn tab_counts(html: &str) -> Vec<i64> {
    html.split("class=\"count\">")
        .skip(1)
        .map(|rest| {
            let number = rest.split('<').next().unwrap_or_default().trim();
            number
                .replace(GROUP_SEPARATOR, "")
                .parse()
                .unwrap_or_else(|_| panic!("a tab count, not {number:?}"))
        })
        .collect()
}

/// The number in the status tab whose link selects `status`.
fn tab_count(html: &str, status: &str) -> i64 {
    let marker = format!("estatus={status}\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("a tab for {status}"));
    let rest = &html[start..];
    let count = rest.find("class=\"count\">").expect("a count") + "class=\"count\">".len();
    rest[count..]
        .split('<')
        .next()
        .unwrap()
        .trim()
        .replace(GROUP_SEPARATOR, "")
        .parse()
        .expect("a number")
}

/// What groups the digits of a count of more than four ("50 000").
const GROUP_SEPARATOR: char = '\u{202F}';

/// The status tabs of the view at `path` against the database's own count
/// of the conversations `condition` selects (SQL over `conversations`).
async fn assert_view_counts_match(app: &TestApp, path: &str, condition: &str) {
    let page = app.get(path).await;
    let count = |extra: &str| {
        let sql = format!("select count(*) from conversations where ({condition}) {extra}");
        app.scalar_i64_of(sql)
    };
    for status in [
        "icr",
        "assigned",
        "in_progress",
        "out_of_hours",
        "agents_offline",
        "resolved",
        "cancelled",
    ] {
        let expected = count(&format!("and status = '{status}'")).await;
        assert_eq!(tab_count(&page.body, status), expected, "{path}: {status}");
    }
    assert_eq!(
        tab_count(&page.body, "todas"),
        count("").await,
        "{path}: todas"
    );
    let open = count("and status not in ('resolved', 'cancelled')").await;
    assert_eq!(tab_count(&page.body, "abiertas"), open, "{path}: abiertas");
}

/// Every count of the default view, and of a view by each channel kind (read
/// from the totals per campaign and channel, migration 0024), and of one
/// campaign's view by channel.
async fn assert_counts_match(app: &TestApp) {
    assert_view_counts_match(app, "/mensajes", "true").await;
    for kind in ["whatsapp", "messenger", "telegram", "web"] {
        assert_view_counts_match(
            app,
            &format!("/mensajes?canal={kind}"),
            &format!("channel_id in (select id from channels where kind = '{kind}')"),
        )
        .await;
    }
    let campaign = app.campaign_id("Ventas Hogar").await;
    assert_view_counts_match(
        app,
        &format!("/mensajes?campana={campaign}&canal=whatsapp"),
        "campaign_id in (select id from campaigns where name = 'Ventas Hogar') \
         and channel_id in (select id from channels where kind = 'whatsapp')",
    )
    .await;
    // By agent, from the totals per agent (migration 0027): each agent
    // with conversations, alone and with a channel kind, and the
    // disconnected agents'.
    let agents = app
        .uuids_where(
            "select distinct agent_id from conversations where agent_id is not null \
             and status <> $1",
            "icr",
        )
        .await;
    assert!(agents.len() > 1, "the demo's conversations have agents");
    for agent in agents {
        let literal = app.uuid_literal(agent);
        assert_view_counts_match(
            app,
            &format!("/mensajes?agente={agent}"),
            &format!("agent_id = {literal}"),
        )
        .await;
        assert_view_counts_match(
            app,
            &format!("/mensajes?agente={agent}&canal=whatsapp"),
            &format!(
                "agent_id = {literal} \
                 and channel_id in (select id from channels where kind = 'whatsapp')"
            ),
        )
        .await;
    }
    assert_view_counts_match(
        app,
        "/mensajes?agente=desconectado",
        "status in ('assigned', 'in_progress') and agent_id in \
         (select id from users where role = 'agent' and connected = false)",
    )
    .await;
}

/// A view by channel shows the totals kept per campaign and channel, not a
/// count of the channel's conversations (which took 440 ms at 1,000,000
/// conversations): made-up totals show through.
async fn a_channel_view_reads_its_counts_from_the_kept_totals(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_super().await;
    let whatsapp = "channel_id in (select id from channels where kind = 'whatsapp')";
    let real = app
        .scalar_i64_of(format!(
            "select count(*) from conversations where {whatsapp}"
        ))
        .await;
    let rows = app
        .scalar_i64_of(format!(
            "select count(*) from conversation_counts where {whatsapp}"
        ))
        .await;
    assert!(real > 0 && rows > 0, "the demo has WhatsApp conversations");
    app.execute(
        "update conversation_counts set total = total + 1000 \
         where channel_id in (select id from channels where kind = $1)",
        "whatsapp",
    )
    .await;
    let page = app.get("/mensajes?canal=whatsapp").await;
    let all = real + 1000 * rows;
    assert_eq!(tab_count(&page.body, "todas"), all);
    // More than four digits, grouped by three as Spanish writes them.
    assert!((10_000..1_000_000).contains(&all));
    let digits = all.to_string();
    let (head, tail) = digits.split_at(digits.len() - 3);
    assert!(
        page.body
            .contains(&format!(">{head}{GROUP_SEPARATOR}{tail}</span>")),
        "{all} shown grouped"
    );
    // A view by agent reads the agents' own totals, which the made-up
    // ones do not touch.
    let page = app
        .get("/mensajes?canal=whatsapp&agente=desconectado")
        .await;
    assert!(tab_count(&page.body, "todas") <= real);
}

async fn status_counts_match_the_database(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_super().await;
    assert_counts_match(&app).await;
    // The counts follow transitions (kept by triggers in the same transaction).
    let folio = app
        .folios_where(
            "select folio from conversations where status = $1 order by folio",
            "icr",
        )
        .await[0];
    app.hand_off_to_agents_offline(folio).await;
    assert_counts_match(&app).await;
    // And changes of agent: an Asignada conversation handed to another
    // agent leaves the first one's totals for the second one's.
    let folio = app
        .folios_where(
            "select folio from conversations where status = $1 and agent_id is not null \
             order by folio",
            "assigned",
        )
        .await[0];
    let before = app.row(folio).await.agent_id;
    let other = app
        .uuids_where(
            "select id from users where role = $1 order by name",
            "agent",
        )
        .await
        .into_iter()
        .find(|agent| Some(*agent) != before)
        .expect("a second agent");
    app.reassign(folio, other).await;
    assert_eq!(app.row(folio).await.agent_id, Some(other));
    assert_counts_match(&app).await;
}

async fn search_finds_by_folio_phone_and_name(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_super().await;
    // A conversation whose contact has a Mexican phone and a name.
    let folio = app
        .folios_where(
            "select c.folio from conversations c join contacts k on k.id = c.contact_id \
             where k.name is not null and k.external_id like $1 order by c.folio",
            "52%",
        )
        .await[0];
    let page = app.get(&format!("/mensajes/{folio}")).await;
    assert_eq!(page.status, StatusCode::OK);

    let by_folio = app.get(&format!("/mensajes?estatus=todas&q={folio}")).await;
    assert_eq!(folios_in(&by_folio.body), vec![folio]);

    let (phone, name): (String, String) = match &app.store {
        relevo::db::Store::Sqlite(p) => sqlx::query_as(
            "select k.external_id, k.name from conversations c join contacts k on k.id = c.contact_id where c.folio = $1",
        )
        .bind(folio)
        .fetch_one(&p.read)
        .await
        .unwrap(),
        relevo::db::Store::Postgres(relevo::db::PgStore { pool: p, .. }) => sqlx::query_as(
            "select k.external_id, k.name from conversations c join contacts k on k.id = c.contact_id where c.folio = $1",
        )
        .bind(folio)
        .fetch_one(p)
        .await
        .unwrap(),
    };
    // The national number as people type it, with spaces.
    let national = &phone[2..];
    let typed = format!("{} {}", &national[..5], &national[5..]);
    let by_phone = app
        .get(&format!("/mensajes?estatus=todas&q={}", urlencode(&typed)))
        .await;
    assert!(
        folios_in(&by_phone.body).contains(&folio),
        "phone search finds {folio}"
    );
    // Part of the name, lower-case and without accents.
    let first = relevo::domain::text::fold(name.split(' ').next().unwrap());
    let by_name = app
        .get(&format!("/mensajes?estatus=todas&q={}", urlencode(&first)))
        .await;
    let found = folios_in(&by_name.body);
    assert!(!found.is_empty());
    let (all, _) = walk_forward(
        &app,
        &format!("/mensajes?estatus=todas&q={}", urlencode(&first)),
    )
    .await;
    assert!(all.contains(&folio), "name search finds {folio}");

    // Digits that are a folio and also the start of that conversation's own
    // phone ("0" + folio reads as the folio) match it twice: it is listed
    // and counted once, beside the contact's other conversations.
    let phone = format!("0{folio}1234");
    app.execute(
        "update contacts set external_id = $1 where id = \
         (select contact_id from conversations \
          where folio = cast(substr($1, 2, length($1) - 5) as bigint))",
        &phone,
    )
    .await;
    let contact_conversations = app
        .folios_where(
            "select c.folio from conversations c join contacts k on k.id = c.contact_id \
             where k.external_id = $1 order by c.folio",
            &phone,
        )
        .await;
    assert!(contact_conversations.contains(&folio));
    let both = app
        .get(&format!("/mensajes?estatus=todas&q=0{folio}"))
        .await;
    let mut listed = folios_in(&both.body);
    listed.sort_unstable();
    assert_eq!(listed, contact_conversations, "each match once");
    assert_eq!(
        tab_count(&both.body, "todas"),
        contact_conversations.len() as i64,
        "each match counted once"
    );
}

fn urlencode(text: &str) -> String {
    serde_urlencoded::to_string([("q", text)]).unwrap()[2..].to_owned()
}

async fn search_text_is_matched_literally_and_shown_escaped(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_super().await;
    let html = "<script>alert(1)</script>";
    let page = app
        .get(&format!("/mensajes?estatus=todas&q={}", urlencode(html)))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("<script>alert(1)"));
    assert!(
        page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;")
            || page.body.contains("&#60;script&#62;")
    );
    assert!(folios_in(&page.body).is_empty());
    for literal in [
        "' or 1=1 --",
        "%",
        "_",
        "\\",
        "'; drop table conversations; --",
    ] {
        let page = app
            .get(&format!("/mensajes?estatus=todas&q={}", urlencode(literal)))
            .await;
        assert_eq!(page.status, StatusCode::OK, "{literal}");
        assert!(
            folios_in(&page.body).is_empty(),
            "{literal:?} matches literally, so nothing"
        );
    }
    let total = app.scalar_i64("select count(*) from conversations").await;
    assert!(total > 0, "the table is still there");
}

/// The conversations a search lists, over every page.
async fn searched(app: &TestApp, typed: &str) -> BTreeSet<i64> {
    let path = format!("/mensajes?estatus=todas&q={}", urlencode(typed));
    walk_forward(app, &path).await.0.into_iter().collect()
}

/// A name search reads a trigram index (migration 0025) that the contacts'
/// writes keep: three characters or more match anywhere in the name or
/// the channel's code, as typed (case and accents aside); one or two match
/// the beginning only. A renamed contact is found by its new name and no
/// longer by its old one.
async fn a_name_search_finds_any_part_of_a_name_and_a_short_one_its_beginning(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_super().await;
    let folio = app
        .folios_where(
            "select c.folio from conversations c join contacts k on k.id = c.contact_id \
             where k.external_id like $1 order by c.folio",
            "%",
        )
        .await[0];
    app.execute(
        "update contacts set name = 'Zoila Quintanar Ruiz', name_key = 'zoila quintanar ruiz', \
         external_id = 'tg-zq7781' \
         where id = (select contact_id from conversations where folio = cast($1 as bigint))",
        &folio.to_string(),
    )
    .await;
    let contact_conversations: BTreeSet<i64> = app
        .folios_where(
            "select c.folio from conversations c join contacts k on k.id = c.contact_id \
             where k.external_id = $1 order by c.folio",
            "tg-zq7781",
        )
        .await
        .into_iter()
        .collect();
    assert!(contact_conversations.contains(&folio));

    for typed in [
        "quintan",
        "QUINTANÁR",
        "anar ru",
        "zoila quintanar ruiz",
        "q778",
        "TG-ZQ",
    ] {
        assert_eq!(
            searched(&app, typed).await,
            contact_conversations,
            "{typed:?} is part of the name or code"
        );
    }
    assert!(searched(&app, "quintanas").await.is_empty());
    // Two characters: the beginning of a name or a code, not the middle.
    assert!(
        searched(&app, "Zo")
            .await
            .is_superset(&contact_conversations)
    );
    assert!(
        searched(&app, "tg")
            .await
            .is_superset(&contact_conversations)
    );
    assert!(
        searched(&app, "qu")
            .await
            .is_disjoint(&contact_conversations)
    );

    app.execute(
        "update contacts set name = 'Zoila Beltrán', name_key = 'zoila beltran' \
         where external_id = $1",
        "tg-zq7781",
    )
    .await;
    assert_eq!(searched(&app, "beltrán").await, contact_conversations);
    assert!(
        searched(&app, "quintan").await.is_empty(),
        "the old name is gone"
    );
    assert_eq!(
        searched(&app, "q778").await,
        contact_conversations,
        "the code stays"
    );
}

async fn unknown_filter_values_are_ignored_with_a_notice(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let default = folios_in(&app.get("/mensajes").await.body);
    let page = app
        .get("/mensajes?estatus=borrada&campana=xyz&agente=42&canal=fax&desde=2026-99-99&despues=nope")
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Se ignoró el filtro de estatus"));
    assert!(page.body.contains("Se ignoró el filtro de campaña"));
    assert!(page.body.contains("Se ignoró el filtro de canal"));
    assert_eq!(folios_in(&page.body), default, "the default view is shown");
    // A well-formed id that names nothing just matches nothing.
    let page = app
        .get("/mensajes?campana=00000000-0000-0000-0000-000000000000")
        .await;
    assert!(folios_in(&page.body).is_empty());
    assert!(
        page.body
            .contains("Ninguna conversación coincide con estos filtros.")
    );
    // A malformed query string is no error either.
    assert_eq!(app.get("/mensajes?%zz=%%").await.status, StatusCode::OK);
}

async fn malformed_and_unknown_folios_answer_404(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_super().await;
    for path in [
        "/mensajes/abc",
        "/mensajes/0",
        "/mensajes/-5",
        "/mensajes/99999999999999999999999",
        "/mensajes/999999",
        "/mensajes/10001.5",
        "/mensajes/%3Cscript%3E",
    ] {
        let page = app.get(path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
        assert!(
            page.body.contains("No encontramos esa conversación"),
            "{path}"
        );
        assert!(
            page.body.contains("Volver a Mensajes"),
            "{path} renders inside the layout"
        );
    }
}

async fn the_action_button_is_enabled_exactly_on_open_statuses(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_super().await;
    let (_, pages) = walk_forward(&app, "/mensajes?estatus=todas").await;
    let mut seen_open = 0;
    let mut seen_final = 0;
    for path in pages {
        let page = app.get(&path).await;
        for row in rows_in(&page.body) {
            let folio: i64 = row.split('"').next().unwrap().parse().unwrap();
            let is_final =
                row.contains("badge badge-resolved") || row.contains("badge badge-cancelled");
            let enabled = row.contains(&format!("href=\"/mensajes/{folio}/acciones\""));
            assert!(
                row.contains("aria-label=\"Cancelar/Reasignar\""),
                "{folio} has the named button"
            );
            if is_final {
                seen_final += 1;
                assert!(
                    !enabled && row.contains("disabled"),
                    "{folio} is final: disabled"
                );
                assert!(row.contains("No disponible: la conversación ya está"));
            } else {
                seen_open += 1;
                assert!(
                    enabled && !row.contains("disabled"),
                    "{folio} is open: enabled"
                );
            }
        }
    }
    assert!(seen_open > 0 && seen_final > 0);
}

async fn filters_narrow_the_rows(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_super().await;
    let cobranza = app.campaign_id("Cobranza").await;
    let page = app
        .get(&format!("/mensajes?estatus=todas&campana={cobranza}"))
        .await;
    let rows = folios_in(&page.body);
    assert!(!rows.is_empty());
    assert_eq!(page.body.matches("<td>Cobranza</td>").count(), rows.len());

    let page = app.get("/mensajes?estatus=todas&canal=telegram").await;
    let rows = folios_in(&page.body);
    assert!(!rows.is_empty());
    assert_eq!(
        page.body
            .matches("class=\"channel channel-telegram\"")
            .count(),
        rows.len()
    );

    // A kind the chosen campaign has no channel of: no row, and every tab
    // counts none (nothing is read: the status was walked for none).
    let none = app
        .get(&format!(
            "/mensajes?estatus=cancelled&campana={cobranza}&canal=telegram&desde=2020-01-01"
        ))
        .await;
    assert_eq!(none.status, StatusCode::OK);
    assert!(folios_in(&none.body).is_empty());
    assert_eq!(
        tab_counts(&none.body),
        vec![0; tab_counts(&none.body).len()]
    );
    assert!(tab_counts(&none.body).len() >= 8, "every tab counted");

    let page = app.get("/mensajes?estatus=cancelled").await;
    let rows = folios_in(&page.body);
    assert!(!rows.is_empty());
    assert!(
        rows_in(&page.body)
            .iter()
            .all(|row| row.contains("badge badge-cancelled"))
    );

    let sql = "select id, name from users where role = $1 order by email limit 1";
    let agent: (uuid::Uuid, String) = match &app.store {
        relevo::db::Store::Sqlite(p) => sqlx::query_as(sql)
            .bind("agent")
            .fetch_one(&p.read)
            .await
            .unwrap(),
        relevo::db::Store::Postgres(relevo::db::PgStore { pool: p, .. }) => sqlx::query_as(sql)
            .bind("agent")
            .fetch_one(p)
            .await
            .unwrap(),
    };
    let page = app
        .get(&format!("/mensajes?estatus=todas&agente={}", agent.0))
        .await;
    let rows = folios_in(&page.body);
    assert!(!rows.is_empty(), "the agent has conversations");
    // The name, and "desconectado" beside it when the agent waits.
    assert_eq!(
        page.body.matches(&format!("<td>{}</td>", agent.1)).count()
            + page
                .body
                .matches(&format!("<td>{} <span class=\"presence-offline\"", agent.1))
                .count(),
        rows.len()
    );

    // Dates: a range long past matches nothing; a wide range matches all.
    let page = app
        .get("/mensajes?estatus=todas&desde=2001-01-01&hasta=2001-12-31")
        .await;
    assert!(folios_in(&page.body).is_empty());
    let all = app.get("/mensajes?estatus=todas").await;
    let wide = app
        .get("/mensajes?estatus=todas&desde=2000-01-01&hasta=2099-12-31")
        .await;
    assert_eq!(folios_in(&wide.body), folios_in(&all.body));
}

async fn a_fragment_request_gets_only_the_results(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let response = app
        .client
        .get(app.url("/mensajes?estatus=todas"))
        .header("HX-Request", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.text().await.unwrap();
    assert!(body.trim_start().starts_with("<section id=\"results\""));
    assert!(!body.contains("<html"));
    assert_eq!(folios_in(&body).len(), 50);
}

/// GET `path` with `accept_encoding` (and `HX-Request` for a fragment):
/// (Content-Encoding, Vary, the body decoded).
async fn get_encoded(
    app: &TestApp,
    path: &str,
    accept_encoding: Option<&str>,
    fragment: bool,
) -> (Option<String>, String, String) {
    let (encoding, vary, body, _) = get_encoded_sized(app, path, accept_encoding, fragment).await;
    (encoding, vary, body)
}

/// [`get_encoded`], and the body's length as sent.
async fn get_encoded_sized(
    app: &TestApp,
    path: &str,
    accept_encoding: Option<&str>,
    fragment: bool,
) -> (Option<String>, String, String, usize) {
    let mut request = app.client.get(app.url(path));
    if let Some(accepted) = accept_encoding {
        request = request.header("Accept-Encoding", accepted);
    }
    if fragment {
        request = request.header("HX-Request", "true");
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let (encoding, vary) = (
        header("content-encoding"),
        header("vary").unwrap_or_default(),
    );
    let bytes = response.bytes().await.unwrap();
    let body = if encoding.as_deref() == Some("gzip") {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut text)
            .expect("a valid gzip body");
        text
    } else {
        String::from_utf8(bytes.to_vec()).unwrap()
    };
    (encoding, vary, body, bytes.len())
}

/// The counter `series` (a name and its labels) from the app's `/metrics`.
async fn counter(app: &TestApp, series: &str) -> u64 {
    let text = app.get("/metrics").await.body;
    let prefix = format!("{series} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
}

/// `relevo_view_results_total` of `outcome` from the app's `/metrics`.
async fn results_sent(app: &TestApp, outcome: &str) -> u64 {
    counter(
        app,
        &format!("relevo_view_results_total{{outcome=\"{outcome}\"}}"),
    )
    .await
}

/// `relevo_view_results_recompressed_total` from the app's `/metrics`.
async fn results_recompressed(app: &TestApp) -> u64 {
    counter(app, "relevo_view_results_recompressed_total").await
}

/// Until the app has compressed `count` kept results again (a background
/// task started by a hit), for at most 5 s.
async fn wait_for_recompression(app: &TestApp, count: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while results_recompressed(app).await < count {
        assert!(
            std::time::Instant::now() < deadline,
            "the kept results were not compressed again within 5 s"
        );
        tokio::task::yield_now().await;
    }
}

/// The results are rendered once per kept view and spliced into the page:
/// the first request compresses them fast, the first hit sends those bytes
/// and has them compressed smaller once for the hits after it, and what a
/// gzip client decodes is what a plain client reads, page and fragment.
async fn a_gzip_client_gets_the_same_results_compressed(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    // A view of its own each (a fragment and a page share a view's results).
    for (fragment, path) in [
        (true, "/mensajes?estatus=todas"),
        (false, "/mensajes?estatus=todas&desde=2000-01-01"),
    ] {
        let rendered = results_sent(&app, "rendered").await;
        let recompressed = results_recompressed(&app).await;
        let (encoding, vary, first, first_size) =
            get_encoded_sized(&app, path, Some("gzip, deflate, br"), fragment).await;
        assert_eq!(encoding.as_deref(), Some("gzip"));
        assert!(vary.contains("Accept-Encoding"), "{vary}");
        let kept = results_sent(&app, "kept").await;
        let (_, _, hit) = get_encoded(&app, path, Some("gzip"), fragment).await;
        // A view is kept at most 10 s without a change; nothing changes here.
        assert_eq!(
            results_sent(&app, "kept").await,
            kept + 1,
            "the hit reused the kept bytes"
        );
        assert!(results_sent(&app, "rendered").await <= rendered + 1);
        wait_for_recompression(&app, recompressed + 1).await;
        let (_, _, smaller, smaller_size) =
            get_encoded_sized(&app, path, Some("gzip"), fragment).await;
        assert!(
            smaller_size * 10 < first_size * 9,
            "recompressed {smaller_size} B, first {first_size} B"
        );
        let (plain_encoding, _, plain) = get_encoded(&app, path, None, fragment).await;
        assert_eq!(plain_encoding, None);
        let (refused, _, _) = get_encoded(&app, path, Some("gzip;q=0, identity"), fragment).await;
        assert_eq!(refused, None, "gzip;q=0 refuses gzip");
        assert_eq!(folios_in(&first).len(), 50);
        assert_eq!(first, hit);
        assert_eq!(first, smaller);
        assert_eq!(first, plain);
        assert_eq!(first.contains("<html"), !fragment);
        assert!(
            first
                .trim_end()
                .ends_with(if fragment { "</section>" } else { "</html>" })
        );
        assert_eq!(
            results_recompressed(&app).await,
            recompressed + 1,
            "compressed again once, not per hit"
        );
    }
    // Results with a notice are this request's own: the notice is not kept
    // for the next viewer of the same view.
    let (_, _, noticed) = get_encoded(
        &app,
        "/mensajes?estatus=todas&canal=fax",
        Some("gzip"),
        true,
    )
    .await;
    assert!(noticed.contains("Se ignoró el filtro de canal"));
    let (_, _, clean) = get_encoded(&app, "/mensajes?estatus=todas", Some("gzip"), true).await;
    assert!(!clean.contains("Se ignoró"));
}

async fn the_detail_tells_the_history_oldest_first(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_super().await;
    let folio = app
        .folios_where(
            "select folio from conversations where status = $1 order by folio",
            "cancelled",
        )
        .await[0];
    let page = app.get(&format!("/mensajes/{folio}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(&format!("Conversación {folio}")));
    assert!(page.body.contains("Mensajes e historial"));
    let cancelled = page
        .body
        .find("Canceló la conversación")
        .expect("the cancel is in the history");
    let created = page
        .body
        .find("Inició la conversación")
        .expect("the start is in the history");
    assert!(created < cancelled, "oldest first, like a chat");
    assert!(page.body.contains("Categoría:"));
}

async fn a_reactivated_conversation_links_to_the_one_it_restarted(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_super().await;
    let pairs = app
        .folios_where(
            "select c.folio from conversations c join conversations p on p.id = c.reactivates_id \
             where p.status <> $1 order by c.folio",
            "none",
        )
        .await;
    let folio = pairs[0];
    let previous = app
        .folios_where(
            "select p.folio from conversations c join conversations p on p.id = c.reactivates_id \
             where cast(c.folio as text) = $1",
            &folio.to_string(),
        )
        .await[0];
    let page = app.get(&format!("/mensajes/{folio}")).await;
    assert!(page.body.contains(&format!(
        "<a href=\"/mensajes/{previous}\">reactivada de {previous}</a>"
    )));
    let old = app.get(&format!("/mensajes/{previous}")).await;
    assert!(
        old.body.contains("badge badge-resolved") || old.body.contains("badge badge-cancelled")
    );
}

/// The row of `folio` in a page, if it is there.
fn row_of(html: &str, folio: i64) -> Option<&str> {
    rows_in(html)
        .into_iter()
        .find(|row| row.starts_with(&format!("{folio}\"")))
}

/// With the view cache off (`RELEVO_VIEW_CACHE=0`), a view reloaded
/// unchanged is read from the database and rendered again each time, and
/// still shows the same rows, compressed or not: what the benchmark's
/// `list-uncached` measures.
async fn with_the_view_cache_off_every_reload_reads_the_database(backend: Backend) {
    let Some(app) = common::spawn_app_configured(backend, true, |settings| {
        settings.view_cache_views = 0;
    })
    .await
    else {
        return;
    };
    app.login_as_admin().await;
    let misses = "relevo_view_cache_total{outcome=\"miss\"}";
    let hits = "relevo_view_cache_total{outcome=\"hit\"}";
    let before = (counter(&app, misses).await, counter(&app, hits).await);
    let rendered = results_sent(&app, "rendered").await;
    // A client that refuses gzip gets the HTML it rendered, one that
    // accepts it the same compressed, as fragments and as pages.
    let mut folios = Vec::new();
    for fragment in [true, false] {
        let (encoding, _, plain) = get_encoded(&app, "/mensajes", None, fragment).await;
        assert_eq!(encoding, None);
        let (encoding, _, gzip) = get_encoded(&app, "/mensajes", Some("gzip"), fragment).await;
        assert_eq!(encoding.as_deref(), Some("gzip"));
        assert!(!folios_in(&plain).is_empty(), "the demo has open rows");
        assert_eq!(folios_in(&plain), folios_in(&gzip));
        assert_eq!(plain.trim_end().ends_with("</html>"), !fragment);
        if fragment {
            assert_eq!(plain, gzip, "a fragment is the results alone");
        }
        folios.push(folios_in(&plain));
    }
    assert_eq!(folios[0], folios[1]);
    assert_eq!(
        (counter(&app, misses).await, counter(&app, hits).await),
        (before.0 + 4, before.1),
        "every read went to the database"
    );
    assert_eq!(results_sent(&app, "rendered").await, rendered + 4);
    assert_eq!(results_sent(&app, "kept").await, 0);
}

/// The views an administrator reloads all day are served from memory until
/// something they show changes: a transition, a new conversation, a rename.
/// Whatever changed, the next reload shows it.
async fn a_reloaded_page_shows_every_change_made_since_it_was_last_shown(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let first = app.get("/mensajes").await;
    let again = app.get("/mensajes").await;
    assert_eq!(folios_in(&first.body), folios_in(&again.body));
    let folio = *app
        .folios_where(
            "select c.folio from conversations c join campaigns p on p.id = c.campaign_id \
             where p.name = $1 and c.status = 'icr' order by c.last_activity_at desc limit 1",
            "Ventas Hogar",
        )
        .await
        .first()
        .expect("an ICR conversation of Ventas Hogar");
    let row = row_of(&again.body, folio).expect("shown on the first page");
    assert!(row.contains("badge badge-icr"), "{row}");

    // A transition (here the router's, straight through the Store).
    app.hand_off_to_agents_offline(folio).await;
    let after = app.get("/mensajes").await;
    let row = row_of(&after.body, folio).expect("still open, still shown");
    assert!(row.contains("badge badge-agents_offline"), "{row}");

    // A cancellation through the console takes it out of the open view.
    app.cancel_through_form(&app.client, folio).await;
    let after = app.get("/mensajes").await;
    assert!(row_of(&after.body, folio).is_none(), "cancelled: not open");
    let cancelled = app.get("/mensajes?estatus=cancelled").await;
    let row = row_of(&cancelled.body, folio).expect("the newest cancellation, first");
    assert!(row.contains("badge badge-cancelled"), "{row}");

    // A rename (an administrative write, not a conversation change).
    assert!(!after.body.contains("Ventas Hogar Norte"));
    let campaign = app.campaign_id("Ventas Hogar").await;
    edit_ventas_hogar(&app, "Ventas Hogar Norte", 30).await;
    let after = app.get("/mensajes").await;
    assert!(
        after.body.contains("Ventas Hogar Norte"),
        "the new name shows"
    );
    assert!(
        after.body.contains(&format!(
            "<option value=\"{campaign}\">Ventas Hogar Norte</option>"
        )),
        "in the campaign filter too, not 30 s later"
    );
}

/// The folio a customer quotes is found from the default view even when its
/// conversation is cancelled: a folio or phone search without a chosen tab
/// looks at every status (the Todas tab is current and the page says so),
/// the tabs count what the search matched, and a chosen tab still narrows it.
async fn a_folio_or_phone_search_looks_across_every_status(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_super().await;
    let folio = app
        .folios_where(
            "select folio from conversations where status = $1 order by folio",
            "cancelled",
        )
        .await[0];
    let found = app.get(&format!("/mensajes?q={folio}")).await;
    assert_eq!(found.status, StatusCode::OK);
    assert_eq!(folios_in(&found.body), vec![folio]);
    assert!(found.body.contains("incluye todos los estatus"));
    // Each tab: (its status in the link, its count).
    let tabs: Vec<(String, String)> = found
        .body
        .split("<a class=\"status-tab")
        .skip(1)
        .map(|tab| {
            let value = tab.split("estatus=").nth(1).unwrap_or_default();
            let value = value[..value.find(['"', '&']).unwrap_or(0)].to_owned();
            let count = tab
                .split("<span class=\"count\">")
                .nth(1)
                .unwrap_or_default();
            (value, count[..count.find('<').unwrap_or(0)].to_owned())
        })
        .collect();
    let count_of = |value: &str| {
        tabs.iter()
            .find(|(v, _)| v == value)
            .map(|(_, n)| n.clone())
            .unwrap_or_else(|| panic!("the {value} tab in {tabs:?}"))
    };
    assert_eq!(count_of("cancelled"), "1");
    assert_eq!(count_of("abiertas"), "0");
    assert_eq!(count_of("todas"), "1");
    let active = found
        .body
        .split("<a class=\"status-tab is-active\" href=\"")
        .nth(1)
        .expect("a current tab");
    assert!(active[..active.find('"').unwrap()].contains("estatus=todas"));
    // A tab chosen narrows the search, and the page no longer says so.
    let open = app
        .get(&format!("/mensajes?estatus=abiertas&q={folio}"))
        .await;
    assert!(folios_in(&open.body).is_empty());
    assert!(!open.body.contains("incluye todos los estatus"));
}

/// Sets the last activity of every open conversation (test set-up).
async fn set_open_activity(app: &TestApp, at: relevo::db::Ts) {
    for folio in app
        .folios_where(
            "select folio from conversations where is_open = true and status <> $1",
            "none",
        )
        .await
    {
        app.set_activity(folio, at).await;
    }
}

/// Sets every open conversation's last activity either hours ago (stuck
/// under any threshold up to a day) or seconds ago (stuck under none), one
/// in three stuck, each at its own instant: a test that compares pages
/// taken a minute apart must not see a conversation turn "rezagada" in
/// between, as the demo's activity, spread around its 30-minute threshold,
/// otherwise makes one do every few seconds.
async fn pin_open_activity_away_from_thresholds(app: &TestApp) {
    let now = chrono::Utc::now();
    let open = app
        .folios_where(
            "select folio from conversations where is_open = true and status <> $1 order by folio",
            "none",
        )
        .await;
    for (index, folio) in open.into_iter().enumerate() {
        let index = index as i64;
        let ago = if index % 3 == 0 {
            chrono::Duration::days(1) + chrono::Duration::minutes(index)
        } else {
            chrono::Duration::seconds(index)
        };
        app.set_activity(folio, relevo::db::Ts::new(now - ago))
            .await;
    }
}

/// Open folios of campaign `name`, in order.
async fn open_folios_of(app: &TestApp, name: &str) -> Vec<i64> {
    app.folios_where(
        "select c.folio from conversations c join campaigns p on p.id = c.campaign_id \
         where p.name = $1 and c.is_open = true order by c.folio",
        name,
    )
    .await
}

/// A conversation open and silent for longer than its campaign allows is
/// stuck ("rezagada"): its row says so in words, its tab counts exactly
/// those of the viewer's scope and lists them, and the campaign's threshold
/// decides.
async fn stuck_conversations_are_marked_counted_and_listed_on_their_tab(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let now = chrono::Utc::now();
    let ago = |minutes: i64| relevo::db::Ts::new(now - chrono::Duration::minutes(minutes));
    set_open_activity(&app, ago(1)).await;
    let ventas = open_folios_of(&app, "Ventas Hogar").await;
    assert!(
        ventas.len() >= 4,
        "the demo has open Ventas Hogar conversations"
    );
    let stuck = &ventas[..3];
    for folio in stuck {
        app.set_activity(*folio, ago(125)).await;
    }
    let recent = ventas[3];
    app.set_activity(recent, ago(10)).await;
    let outside = app
        .folios_where(
            "select c.folio from conversations c where c.is_open = true and c.campaign_id not in \
             (select m.campaign_id from campaign_members m join users u on u.id = m.user_id \
             where u.email = $1) order by c.folio limit 1",
            ADMIN_EMAIL,
        )
        .await[0];
    app.set_activity(outside, ago(300)).await;

    let page = app.get("/mensajes?estatus=rezagadas").await;
    assert_eq!(page.status, StatusCode::OK);
    let listed: BTreeSet<i64> = folios_in(&page.body).into_iter().collect();
    assert_eq!(
        listed,
        stuck.iter().copied().collect::<BTreeSet<_>>(),
        "exactly the stuck ones of the admin's scope"
    );
    assert_eq!(tab_count(&page.body, "rezagadas"), 3);
    for row in rows_in(&page.body) {
        assert!(row.contains("Rezagada</span>"), "marked in words: {row}");
        assert!(row.contains("Sin actividad:</span>"), "{row}");
        assert!(
            row.contains(">2 h 5 min<") || row.contains(">2 h 4 min<"),
            "{row}"
        );
        assert!(row.contains("En el estatus:</span>"), "{row}");
    }
    assert!(
        page.body.contains("href=\"/cancelacion-automatica\""),
        "the Rezagadas view points to the standing answer, a rule"
    );

    for folio in stuck {
        let row = row_of(&page.body, *folio).unwrap();
        assert!(row.contains("class=\"row-stale\""), "{row}");
    }

    // Other views mark the stuck rows and only those.
    let open = app.get("/mensajes").await;
    assert_eq!(tab_count(&open.body, "rezagadas"), 3);
    let found = app.get(&format!("/mensajes?q={}", stuck[0])).await;
    let row = row_of(&found.body, stuck[0]).expect("found by its folio");
    assert!(row.contains("Rezagada</span>"), "{row}");
    let found = app.get(&format!("/mensajes?q={recent}")).await;
    let row = row_of(&found.body, recent).expect("found by its folio");
    assert!(!row.contains("Rezagada"), "{row}");
    assert!(row.contains(">10 min<"), "{row}");

    // A Super Administrador counts every campaign's.
    let boss = common::new_client();
    app.login_with(&boss, common::SUPER_EMAIL, common::SUPER_PASSWORD)
        .await;
    let all = app.get_with(&boss, "/mensajes?estatus=rezagadas").await;
    let listed: BTreeSet<i64> = folios_in(&all.body).into_iter().collect();
    let mut expected: BTreeSet<i64> = stuck.iter().copied().collect();
    expected.insert(outside);
    assert_eq!(listed, expected);
    assert_eq!(tab_count(&all.body, "rezagadas"), 4);

    // One agent's, each row held to its own campaign's threshold: the
    // agent of a stuck row, of the recent one and of the stuck one outside
    // the Administrador's campaigns (one range of the agent's own index,
    // not a walk of every campaign's stuck rows).
    let agent_sql = "select id from users where role = 'agent' order by email limit 1";
    app.execute_sql(format!(
        "update conversations set agent_id = ({agent_sql}) where folio in ({}, {recent}, {outside})",
        stuck[0]
    ))
    .await;
    let agent = app
        .uuids_where(
            "select id from users where role = $1 order by email limit 1",
            "agent",
        )
        .await[0];
    let agents = format!("/mensajes?estatus=rezagadas&agente={agent}");
    let mine = app.get_with(&boss, &agents).await;
    let listed: BTreeSet<i64> = folios_in(&mine.body).into_iter().collect();
    assert_eq!(listed, BTreeSet::from([stuck[0], outside]));
    assert_eq!(tab_count(&mine.body, "rezagadas"), 2);
    let mine = app.get(&agents).await;
    assert_eq!(
        folios_in(&mine.body),
        vec![stuck[0]],
        "the Administrador's scope"
    );
    assert_eq!(tab_count(&mine.body, "rezagadas"), 1);

    // The campaign's threshold decides: at three hours, none is stuck.
    edit_ventas_hogar(&app, "Ventas Hogar", 180).await;
    let after = app.get("/mensajes?estatus=rezagadas").await;
    assert!(folios_in(&after.body).is_empty(), "none is stuck at 3 h");
    assert_eq!(tab_count(&after.body, "rezagadas"), 0);
    let found = app.get(&format!("/mensajes?q={}", stuck[0])).await;
    let row = row_of(&found.body, stuck[0]).expect("found by its folio");
    assert!(!row.contains("Rezagada"), "{row}");
}

/// An Asignada or En Proceso conversation whose agent is disconnected
/// waits: its row says so next to the name, the "Agente desconectado"
/// filter finds exactly those, and a presence change shows at once.
async fn a_disconnected_agents_rows_say_so_and_the_filter_finds_them(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    // The Rezagadas walks below are compared with each other.
    pin_open_activity_away_from_thresholds(&app).await;
    app.login_as_admin().await;
    app.execute("update users set connected = true where role = $1", "agent")
        .await;
    let agents = app
        .uuids_where(
            "select u.id from users u where u.role = 'agent' and exists (select 1 from \
             conversations c join campaigns p on p.id = c.campaign_id where c.agent_id = u.id \
             and p.name = $1 and c.status in ('assigned', 'in_progress')) order by u.email",
            "Ventas Hogar",
        )
        .await;
    let agent = agents[0];
    let before = app.get("/mensajes").await;
    assert!(!before.body.contains("presence-offline"), "all connected");

    app.store
        .set_agent_presence(agent, false, relevo::db::Ts::now())
        .await
        .unwrap();
    let in_scope: BTreeSet<i64> = app
        .folios_where(ADMIN_SCOPE, ADMIN_EMAIL)
        .await
        .into_iter()
        .collect();
    let agent_folios: BTreeSet<i64> = app
        .folios_where(
            "select c.folio from conversations c join users u on u.id = c.agent_id \
             where u.connected = false and u.role = $1 and c.status in ('assigned', 'in_progress')",
            "agent",
        )
        .await
        .into_iter()
        .filter(|f| in_scope.contains(f))
        .collect();
    assert!(
        !agent_folios.is_empty(),
        "the agent has waiting conversations"
    );

    let (found, _) = walk_forward(&app, "/mensajes?agente=desconectado").await;
    let found: BTreeSet<i64> = found.into_iter().collect();
    assert_eq!(found, agent_folios, "exactly the waiting ones of the scope");

    // Their stuck ones, newest activity first, are merged from each
    // disconnected agent's own range: the same rows, in the same order, as
    // the Rezagadas tab (merged by campaign) keeps of theirs, both ways,
    // for the Administrador and for the Super Administrador.
    let stuck_one = *agent_folios.iter().next().unwrap();
    let day_ago = chrono::Utc::now() - chrono::Duration::days(1);
    app.set_activity(stuck_one, relevo::db::Ts::new(day_ago))
        .await;
    let super_client = common::new_client();
    app.login_with(&super_client, common::SUPER_EMAIL, common::SUPER_PASSWORD)
        .await;
    // Two disconnected agents: two ranges to merge.
    let second = agents[1];
    app.store
        .set_agent_presence(second, false, relevo::db::Ts::now())
        .await
        .unwrap();
    let offline: BTreeSet<i64> = app
        .folios_where(
            "select c.folio from conversations c join users u on u.id = c.agent_id \
             where u.connected = false and u.role = $1 \
             and c.status in ('assigned', 'in_progress')",
            "agent",
        )
        .await
        .into_iter()
        .collect();
    // A name more than a thousand customers share (a broad search, checked
    // along each agent's range): the customers of every other
    // conversation, and customers without conversations.
    let folio = app.scalar_i64("select min(folio) from conversations").await;
    app.add_broadwell_customers(folio, relevo::db::BROAD_SEARCH_CONTACTS + 1)
        .await;
    app.execute(
        "update contacts set name = 'Broadwell Ochoa', name_key = $1 where id in \
         (select contact_id from conversations where folio % 2 = 0)",
        "broadwell ochoa",
    )
    .await;
    let named: BTreeSet<i64> = app
        .folios_where(
            "select c.folio from conversations c join contacts k on k.id = c.contact_id \
             where k.name_key = $1",
            "broadwell ochoa",
        )
        .await
        .into_iter()
        .collect();
    for client in [&app.client, &super_client] {
        let (stuck, _) = walk_both_ways(&app, client, "/mensajes?estatus=rezagadas").await;
        let expected: Vec<i64> = stuck.into_iter().filter(|f| offline.contains(f)).collect();
        assert!(expected.contains(&stuck_one), "{expected:?}");
        let searched: Vec<i64> = expected
            .iter()
            .copied()
            .filter(|f| named.contains(f))
            .collect();
        assert!(!searched.is_empty(), "some are searched for");
        for (path, expected) in [
            ("/mensajes?estatus=rezagadas&agente=desconectado", expected),
            (
                "/mensajes?estatus=rezagadas&agente=desconectado&q=broadwell",
                searched,
            ),
        ] {
            let (forward, backward) = walk_both_ways(&app, client, path).await;
            assert_eq!(
                forward, expected,
                "{path}: the disconnected agents' stuck rows"
            );
            assert_eq!(backward, expected, "{path}: the same walking back");
        }
    }
    app.store
        .set_agent_presence(second, true, relevo::db::Ts::now())
        .await
        .unwrap();
    let filtered = app.get("/mensajes?agente=desconectado").await;
    for row in rows_in(&filtered.body) {
        assert!(row.contains("presence-offline"), "{row}");
        assert!(row.contains(">desconectado</span>"), "{row}");
    }
    assert!(
        filtered
            .body
            .contains("<option value=\"desconectado\" selected>Agente desconectado</option>"),
        "the filter shows as chosen"
    );
    // The reloaded default view (cached before) shows the change.
    let after = app.get("/mensajes").await;
    let shown = folios_in(&after.body);
    for folio in &shown {
        let row = row_of(&after.body, *folio).unwrap();
        assert_eq!(
            row.contains("presence-offline"),
            agent_folios.contains(folio),
            "{row}"
        );
    }

    app.store
        .set_agent_presence(agent, true, relevo::db::Ts::now())
        .await
        .unwrap();
    let back = app.get("/mensajes?agente=desconectado").await;
    assert!(folios_in(&back.body).is_empty());
    assert!(
        back.body
            .contains("Ninguna conversación coincide con estos filtros.")
    );
}

/// Saves the demo's "Ventas Hogar" campaign as the Super Administrador does
/// on its page: a name and the minutes after which a conversation is stuck.
async fn edit_ventas_hogar(app: &TestApp, name: &str, stale_after_minutes: i64) {
    let super_id = app
        .uuids_where("select id from users where email = $1", common::SUPER_EMAIL)
        .await[0];
    let campaign = app.campaign_id("Ventas Hogar").await;
    app.store
        .update_campaign(
            super_id,
            campaign,
            &relevo::domain::admin::Name::parse(name).unwrap(),
            "America/Mexico_City",
            stale_after_minutes,
            relevo::db::Ts::now(),
        )
        .await
        .unwrap()
        .expect("the campaign is saved");
}

/// What the status tab whose link selects `status` shows, and its tooltip.
fn tab_shown(html: &str, status: &str) -> (String, Option<String>) {
    let marker = format!("estatus={status}\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("a tab for {status}"));
    let rest = &html[start..];
    let span = &rest[rest.find("<span class=\"count\"").expect("a count")..];
    let (open, after) = span.split_once('>').unwrap();
    let title = open
        .split_once("title=\"")
        .map(|(_, t)| t.split('"').next().unwrap().to_owned());
    let shown = after
        .split('<')
        .next()
        .unwrap()
        .replace(GROUP_SEPARATOR, " ");
    (shown, title)
}

/// Adds `copies` conversations, each a copy of conversation `folio` but
/// for its id and folio (test set-up: many rows at once).
async fn copy_conversation(app: &TestApp, folio: i64, copies: i64) {
    let id = app.new_id_sql();
    let sql = format!(
        "with recursive n(i) as (select 1 union all select i + 1 from n where i < {copies}) \
         insert into conversations (id, campaign_id, channel_id, contact_id, status, is_open, \
         version, agent_id, started_at, last_activity_at, status_since) \
         select {id}, campaign_id, channel_id, contact_id, status, is_open, version, agent_id, \
         started_at, last_activity_at, status_since from conversations, n \
         where folio = {folio}"
    );
    app.execute_sql(sql).await;
}

/// A tab counts a status up to `COUNT_CAP` and then says "1000+", with
/// a tooltip that says why, where the totals cannot answer (by date, every
/// Rezagadas count). The kept totals stay exact, and the bulk
/// page the "all that match" link opens counts every one.
async fn a_tab_counts_up_to_the_cap_and_then_says_more(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_super().await;
    let cap = relevo::db::COUNT_CAP;
    let folio = app
        .folios_where(
            "select folio from conversations where status = $1 and agent_id is not null \
             order by folio",
            "assigned",
        )
        .await[0];
    let long_ago = relevo::db::Ts::new(chrono::Utc::now() - chrono::Duration::days(2));
    app.set_activity(folio, long_ago).await;
    copy_conversation(&app, folio, cap + 50).await;
    let agent = app
        .uuids_where(
            "select agent_id from conversations where folio = cast($1 as bigint)",
            &folio.to_string(),
        )
        .await[0];
    let assigned_of_agent = app
        .scalar_i64_of(format!(
            "select count(*) from conversations where status = 'assigned' and agent_id = {}",
            app.uuid_literal(agent)
        ))
        .await;
    assert!(assigned_of_agent > cap);
    let assigned = app
        .scalar_i64_of("select count(*) from conversations where status = 'assigned'".into())
        .await;

    // From the kept totals: exact. Rezagadas is counted: capped.
    let page = app.get("/mensajes").await;
    assert_eq!(tab_count(&page.body, "assigned"), assigned);
    let (stuck, note) = tab_shown(&page.body, "rezagadas");
    assert_eq!(stuck, "1000+");
    let note = note.expect("a capped count says why");
    assert!(note.starts_with("Más de 1"), "{note}");
    assert!(note.contains("Acciones masivas"), "{note}");

    // By agent: from the agents' kept totals, exact.
    let page = app
        .get(&format!("/mensajes?estatus=assigned&agente={agent}"))
        .await;
    assert_eq!(tab_count(&page.body, "assigned"), assigned_of_agent);

    // By agent and a start date: each status counted up to the cap, sums
    // "at least".
    let by_agent = format!("/mensajes?estatus=assigned&agente={agent}&desde=2000-01-01");
    let page = app.get(&by_agent).await;
    assert_eq!(tab_shown(&page.body, "assigned").0, "1000+");
    let (open, _) = tab_shown(&page.body, "abiertas");
    let (all, _) = tab_shown(&page.body, "todas");
    for shown in [&open, &all] {
        let n: i64 = shown
            .trim_end_matches('+')
            .replace(' ', "")
            .parse()
            .unwrap_or_else(|_| panic!("{shown:?}"));
        assert!(shown.ends_with('+') && n >= cap, "{shown:?}");
    }
    // A status under the cap stays exact, with no tooltip.
    let (cancelled, note) = tab_shown(&page.body, "cancelled");
    assert!(!cancelled.ends_with('+') && note.is_none(), "{cancelled}");
    assert!(
        page.body
            .contains(">Todas las que coinciden (más de 1000)</a>"),
        "the link does not claim a number it did not count"
    );
    // The bulk page counts every one before acting.
    let bulk = app
        .get(&format!(
            "/mensajes/lote?todas=1&estatus=assigned&agente={agent}&desde=2000-01-01"
        ))
        .await;
    assert_eq!(bulk.status, StatusCode::OK);
    assert!(
        bulk.body
            .contains(&format!("value=\"{assigned_of_agent}\"")),
        "the bulk page counts all {assigned_of_agent}"
    );
}

/// A name search matching more than `BROAD_SEARCH_CONTACTS` customers
/// walks the order instead of gathering every conversation of every one
/// of them (4.9 s for "cl" at 1,000,000): it lists exactly the matching
/// conversations, newest first, says it did not count them, and still
/// offers acting on all that match. A narrower search is counted as before.
async fn a_broad_name_search_lists_the_newest_matches_without_counting_them(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_super().await;
    let broad = relevo::db::BROAD_SEARCH_CONTACTS;
    let model = app
        .folios_where(
            "select folio from conversations where status = $1 order by folio",
            "resolved",
        )
        .await[0];
    app.add_broadwell_customers(model, broad + 5).await;
    let id = app.new_id_sql();
    app.execute_sql(format!(
        "insert into conversations (id, campaign_id, channel_id, contact_id, status, is_open, \
         version, agent_id, started_at, last_activity_at, status_since) \
         select {id}, c.campaign_id, c.channel_id, k.id, c.status, c.is_open, c.version, \
         c.agent_id, c.started_at, c.last_activity_at, c.status_since \
         from conversations c, contacts k \
         where c.folio = {model} and k.external_id in ('bw-7', 'bw-77', 'bw-777')"
    ))
    .await;
    let theirs: BTreeSet<i64> = app
        .folios_where(
            "select c.folio from conversations c join contacts k on k.id = c.contact_id \
             where k.name_key like $1 order by c.folio",
            "broadwell %",
        )
        .await
        .into_iter()
        .collect();
    assert_eq!(theirs.len(), 3);

    // Anywhere in the name (three letters or more) and a name's beginning.
    let beginning_br: BTreeSet<i64> = app
        .folios_where(
            "select c.folio from conversations c join contacts k on k.id = c.contact_id \
             where substr(k.name_key, 1, 2) = $1 or substr(k.external_id, 1, 2) = $1 \
             order by c.folio",
            "br",
        )
        .await
        .into_iter()
        .collect();
    assert!(beginning_br.is_superset(&theirs) && beginning_br.len() <= 50);
    for (typed, expected) in [("roadwel", &theirs), ("Br", &beginning_br)] {
        let page = app.get(&format!("/mensajes?estatus=todas&q={typed}")).await;
        assert_eq!(page.status, StatusCode::OK);
        let listed = folios_in(&page.body);
        assert_eq!(
            listed.iter().copied().collect::<BTreeSet<_>>(),
            *expected,
            "{typed:?}: exactly the matching conversations"
        );
        assert!(
            !page.body.contains("class=\"count\""),
            "{typed:?}: the tabs are not counted"
        );
        assert!(
            page.body.contains("coincide con más de 1000 clientes"),
            "{typed:?}: the page says why"
        );
        assert!(
            page.body.contains(">Todas las que coinciden</a>"),
            "{typed:?}"
        );
    }
    // Newest activity first, as any page.
    let page = app.get("/mensajes?estatus=todas&q=broadwell").await;
    let listed = folios_in(&page.body);
    let mut newest_first = listed.clone();
    newest_first.sort_by_key(|folio| std::cmp::Reverse(*folio));
    assert_eq!(
        listed, newest_first,
        "copies of one row: the folio breaks the tie"
    );

    // 117 customers ("bw-1", "bw-10"…"bw-19", "bw-100"…): counted.
    let page = app.get("/mensajes?estatus=todas&q=bw-1").await;
    assert_eq!(tab_count(&page.body, "todas"), 0);
    assert!(!page.body.contains("coincide con más de"));
}

/// The first page's folios of each of `paths`, as `client` sees them.
async fn first_pages(app: &TestApp, client: &reqwest::Client, paths: &[&str]) -> Vec<Vec<i64>> {
    let mut pages = Vec::new();
    for path in paths {
        let page = app.get_with(client, path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        pages.push(folios_in(&page.body));
    }
    pages
}

/// A page is merged from one index range per campaign in view, and SQLite
/// takes at most 500 of them in one statement: an Administrador of 510
/// campaigns (and a Super Administrador, whose Rezagadas tab is one range
/// per campaign) got an error page for every view instead of their rows.
/// And every view counts its Rezagadas with one condition per campaign,
/// which SQLite refused as too deep from about a thousand campaigns on.
async fn a_scope_of_a_thousand_campaigns_lists_like_a_small_one(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let paths = [
        "/mensajes",
        "/mensajes?estatus=todas",
        "/mensajes?estatus=todas&orden=sin-actividad",
        "/mensajes?estatus=rezagadas",
        "/mensajes?estatus=rezagadas&agente=desconectado",
        "/mensajes?estatus=todas&canal=whatsapp",
    ];
    pin_open_activity_away_from_thresholds(&app).await;
    app.login_as_admin().await;
    let super_client = common::new_client();
    let login = app
        .login_with(&super_client, common::SUPER_EMAIL, common::SUPER_PASSWORD)
        .await;
    assert!(login.status.is_redirection(), "super signs in");
    let admin_before = first_pages(&app, &app.client, &paths).await;
    let super_before = first_pages(&app, &super_client, &paths).await;
    assert!(
        admin_before[0].len() > 1 && super_before[0].len() > 1,
        "the demo's rows are listed"
    );
    assert!(
        admin_before[3].len() > 1 && super_before[3].len() > 1,
        "some are stuck"
    );

    let admin = app
        .uuids_where("select id from users where email = $1", ADMIN_EMAIL)
        .await[0];
    let super_id = app
        .uuids_where("select id from users where email = $1", common::SUPER_EMAIL)
        .await[0];
    let now = relevo::db::Ts::now();
    for i in 0..1010 {
        let name = relevo::domain::admin::Name::parse(&format!("Sucursal {i:04}")).unwrap();
        let campaign = app
            .store
            .create_campaign(super_id, &name, "America/Mexico_City", now)
            .await
            .unwrap()
            .unwrap();
        app.store
            .add_member(super_id, campaign, admin, now)
            .await
            .unwrap()
            .unwrap();
    }

    // Campaigns without conversations add no row: the same pages.
    assert_eq!(first_pages(&app, &app.client, &paths).await, admin_before);
    assert_eq!(first_pages(&app, &super_client, &paths).await, super_before);
}
