//! Sessions end on the server: the absolute lifetime and the idle timeout,
//! activity recorded at most once a minute, password changes ending the other
//! sessions, and the list of open sessions with "Cerrar las demás sesiones",
//! over HTTP on both backends.

mod common;

use chrono::{Duration, Utc};
use common::{
    ADMIN_EMAIL, ADMIN_PASSWORD, Backend, SUPER_EMAIL, SUPER_PASSWORD, TestApp, csrf_in,
    new_client, spawn_app,
};
use relevo::db::{PgStore, Store, Ts};
use reqwest::StatusCode;
use uuid::Uuid;

on_both_backends!(
    a_session_older_than_twelve_hours_is_refused_even_with_a_valid_cookie,
    an_idle_session_is_refused_and_the_login_page_says_why,
    activity_is_recorded_at_most_once_a_minute,
    a_copied_cookie_stops_working_once_the_session_expires,
    changing_ones_own_password_ends_the_other_sessions_but_not_this_one,
    a_super_admin_changing_their_own_password_keeps_only_this_session,
    a_password_set_by_a_super_admin_ends_every_session_of_that_user,
    the_account_page_lists_open_sessions_and_closes_the_others,
    a_super_admin_sees_and_closes_a_users_sessions,
    a_wrong_current_password_changes_nothing_and_repeated_ones_end_the_session,
    expired_sessions_are_purged_and_live_ones_kept,
);
on_both_backends!(browser: in_a_browser_the_account_page_closes_the_other_sessions_and_passes_the_accessibility_check);

const NEW_PASSWORD: &str = "una-frase-nueva-y-larga-2027";

async fn user_id(app: &TestApp, email: &str) -> Uuid {
    app.uuids_where("select id from users where email = $1", email)
        .await[0]
}

/// Moves the start of every session of `user` to `ago` before now.
async fn backdate_start(app: &TestApp, user: Uuid, ago: Duration) {
    let at = Ts::new(Utc::now() - ago);
    app.execute_at(
        "update user_sessions set created_at = $1 where user_id = $2",
        at,
        user,
    )
    .await;
}

/// Moves the last recorded activity of every session of `user` to `ago`
/// before now.
async fn backdate_activity(app: &TestApp, user: Uuid, ago: Duration) {
    let at = Ts::new(Utc::now() - ago);
    app.execute_at(
        "update user_sessions set last_seen_at = $1 where user_id = $2",
        at,
        user,
    )
    .await;
}

/// The `last_seen_at` of every session of `user`.
async fn last_seen(app: &TestApp, user: Uuid) -> Vec<Ts> {
    let sql = "select last_seen_at from user_sessions where user_id = $1";
    match &app.store {
        Store::Sqlite(p) => sqlx::query_scalar(sql)
            .bind(user)
            .fetch_all(&p.read)
            .await
            .expect("query"),
        Store::Postgres(PgStore { pool, .. }) => sqlx::query_scalar(sql)
            .bind(user)
            .fetch_all(pool)
            .await
            .expect("query"),
    }
}

async fn session_count(app: &TestApp, user: Uuid) -> i64 {
    let sql = "select count(*) from user_sessions where user_id = $1";
    match &app.store {
        Store::Sqlite(p) => sqlx::query_scalar(sql)
            .bind(user)
            .fetch_one(&p.read)
            .await
            .expect("query"),
        Store::Postgres(PgStore { pool, .. }) => sqlx::query_scalar(sql)
            .bind(user)
            .fetch_one(pool)
            .await
            .expect("query"),
    }
}

fn session_cookie(page: &common::Page) -> String {
    page.headers
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("relevo_session="))
        .map(|c| c.split(';').next().unwrap_or_default().to_owned())
        .expect("a session cookie")
}

/// A client that logged in as `email` (its own cookie jar).
async fn signed_in(app: &TestApp, email: &str, password: &str) -> reqwest::Client {
    let client = new_client();
    let page = app.login_with(&client, email, password).await;
    assert_eq!(page.location.as_deref(), Some("/mensajes"), "login");
    client
}

async fn status_of(app: &TestApp, client: &reqwest::Client, path: &str) -> StatusCode {
    app.get_with(client, path).await.status
}

/// Session rows listed in a page.
fn listed_sessions(html: &str) -> usize {
    html.matches("<tr id=\"sesion-").count()
}

async fn a_session_older_than_twelve_hours_is_refused_even_with_a_valid_cookie(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let laura = user_id(&app, ADMIN_EMAIL).await;
    // Active a minute ago, but started 12 h and a minute ago.
    backdate_start(&app, laura, Duration::hours(12) + Duration::minutes(1)).await;
    backdate_activity(&app, laura, Duration::minutes(1)).await;
    let page = app.get("/mensajes").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location.as_deref(), Some("/login"));
    // Ended on the server too.
    assert_eq!(session_count(&app, laura).await, 0);
    // Just under the limit, a session still works.
    app.login_as_admin().await;
    backdate_start(&app, laura, Duration::hours(11) + Duration::minutes(59)).await;
    assert_eq!(app.get("/mensajes").await.status, StatusCode::OK);
}

async fn an_idle_session_is_refused_and_the_login_page_says_why(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let laura = user_id(&app, ADMIN_EMAIL).await;
    // The default idle timeout is 120 minutes.
    backdate_activity(&app, laura, Duration::minutes(121)).await;
    let page = app.get("/reportes").await;
    assert_eq!(page.location.as_deref(), Some("/login"));
    let login = app.get("/login").await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(
        login
            .body
            .contains("Tu sesión expiró; vuelve a iniciar sesión."),
        "the login page says why"
    );
    // Said once: a reload of the login page no longer shows it.
    assert!(!app.get("/login").await.body.contains("Tu sesión expiró"));
    assert_eq!(session_count(&app, laura).await, 0);
    // An idle time under the limit is fine.
    app.login_as_admin().await;
    backdate_activity(&app, laura, Duration::minutes(119)).await;
    assert_eq!(app.get("/reportes").await.status, StatusCode::OK);
}

async fn activity_is_recorded_at_most_once_a_minute(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let laura = user_id(&app, ADMIN_EMAIL).await;
    backdate_activity(&app, laura, Duration::minutes(5)).await;
    let before = Utc::now();
    assert_eq!(app.get("/mensajes").await.status, StatusCode::OK);
    let seen = last_seen(&app, laura).await;
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0].0 >= before - Duration::seconds(1),
        "a request records the activity: {:?} is before {before}",
        seen[0]
    );
    // More requests within the minute write nothing.
    for _ in 0..3 {
        assert_eq!(app.get("/reportes").await.status, StatusCode::OK);
    }
    assert_eq!(last_seen(&app, laura).await, seen);
}

async fn a_copied_cookie_stops_working_once_the_session_expires(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let login = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let cookie = session_cookie(&login);
    let replay = |path: &'static str| {
        let cookie = cookie.clone();
        let url = app.url(path);
        async move {
            new_client()
                .get(url)
                .header(reqwest::header::COOKIE, cookie)
                .send()
                .await
                .expect("GET")
        }
    };
    // The session has 10 s left (the cookie's own Max-Age says 12 h).
    let laura = user_id(&app, ADMIN_EMAIL).await;
    let started = Utc::now() - Duration::hours(12) + Duration::seconds(10);
    app.execute_at(
        "update user_sessions set created_at = $1 where user_id = $2",
        Ts::new(started),
        laura,
    )
    .await;
    // The copy works while the session lives, from anywhere (and its
    // principal is now cached)...
    assert_eq!(replay("/mensajes").await.status(), StatusCode::OK);
    // ...and not a moment after its 12 hours: the cached principal does not
    // outlive the session. (Waiting is the point here: the clock is what
    // ends the session.)
    let end = started + Duration::hours(12) + Duration::milliseconds(200);
    let wait = (end - Utc::now()).to_std().unwrap_or_default();
    assert!(wait <= std::time::Duration::from_secs(11));
    tokio::time::sleep(wait).await;
    let response = replay("/mensajes").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[reqwest::header::LOCATION], "/login");
    // The session ended on the server, for the browser that owned it too.
    assert_eq!(session_count(&app, laura).await, 0);
    let refused = app.get("/mensajes").await;
    assert_eq!(refused.location.as_deref(), Some("/login"));
}

async fn change_own_password(
    app: &TestApp,
    client: &reqwest::Client,
    current: &str,
) -> common::Page {
    let page = app.get_with(client, "/cuenta").await;
    assert_eq!(page.status, StatusCode::OK, "the account page");
    app.post_form_with(
        client,
        "/cuenta/contrasena",
        &[
            ("_csrf", &csrf_in(&page.body)),
            ("actual", current),
            ("contrasena", NEW_PASSWORD),
            ("confirmacion", NEW_PASSWORD),
        ],
    )
    .await
}

async fn changing_ones_own_password_ends_the_other_sessions_but_not_this_one(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let here = signed_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let elsewhere = signed_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(
        status_of(&app, &elsewhere, "/mensajes").await,
        StatusCode::OK
    );
    let changed = change_own_password(&app, &here, ADMIN_PASSWORD).await;
    assert_eq!(changed.status, StatusCode::SEE_OTHER, "{}", changed.body);
    assert_eq!(changed.location.as_deref(), Some("/cuenta"));
    let after = app.get_with(&here, "/cuenta").await;
    assert_eq!(after.status, StatusCode::OK, "this session goes on");
    assert!(after.body.contains("Contraseña cambiada"));
    assert_eq!(listed_sessions(&after.body), 1);
    assert_eq!(
        app.get_with(&elsewhere, "/mensajes")
            .await
            .location
            .as_deref(),
        Some("/login"),
        "the other session ended"
    );
    // The new password is the one that works.
    let fresh = new_client();
    let old = app.login_with(&fresh, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_ne!(old.location.as_deref(), Some("/mensajes"));
    let new = app.login_with(&fresh, ADMIN_EMAIL, NEW_PASSWORD).await;
    assert_eq!(new.location.as_deref(), Some("/mensajes"));
}

async fn a_super_admin_changing_their_own_password_keeps_only_this_session(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let here = signed_in(&app, SUPER_EMAIL, SUPER_PASSWORD).await;
    let elsewhere = signed_in(&app, SUPER_EMAIL, SUPER_PASSWORD).await;
    let me = user_id(&app, SUPER_EMAIL).await;
    let page = app.get_with(&here, &format!("/usuarios/{me}")).await;
    assert_eq!(page.status, StatusCode::OK);
    let set = app
        .post_form_with(
            &here,
            &format!("/usuarios/{me}/contrasena"),
            &[
                ("_csrf", &csrf_in(&page.body)),
                ("contrasena", NEW_PASSWORD),
                ("confirmacion", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(set.status, StatusCode::SEE_OTHER);
    assert_eq!(status_of(&app, &here, "/usuarios").await, StatusCode::OK);
    assert_eq!(
        app.get_with(&elsewhere, "/usuarios")
            .await
            .location
            .as_deref(),
        Some("/login")
    );
    assert_eq!(session_count(&app, me).await, 1);
}

async fn a_password_set_by_a_super_admin_ends_every_session_of_that_user(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let laura_here = signed_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let laura_there = signed_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let laura = user_id(&app, ADMIN_EMAIL).await;
    app.login_as_super().await;
    let page = app.get(&format!("/usuarios/{laura}")).await;
    assert_eq!(
        listed_sessions(&page.body),
        2,
        "her two sessions are listed"
    );
    let set = app
        .post_form(
            &format!("/usuarios/{laura}/contrasena"),
            &[
                ("_csrf", &csrf_in(&page.body)),
                ("contrasena", NEW_PASSWORD),
                ("confirmacion", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(set.status, StatusCode::SEE_OTHER);
    for client in [&laura_here, &laura_there] {
        assert_eq!(
            app.get_with(client, "/mensajes").await.location.as_deref(),
            Some("/login")
        );
    }
    assert_eq!(session_count(&app, laura).await, 0);
    let after = app.get(&format!("/usuarios/{laura}")).await;
    assert_eq!(listed_sessions(&after.body), 0);
    assert!(after.body.contains("No tiene sesiones abiertas."));
}

async fn the_account_page_lists_open_sessions_and_closes_the_others(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let here = signed_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let there = signed_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let laura = user_id(&app, ADMIN_EMAIL).await;
    // A third one that has expired is not listed.
    let expired = signed_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let _ = expired;
    app.execute_at(
        "update user_sessions set last_seen_at = $1 where id = \
         (select id from user_sessions where user_id = $2 order by id desc limit 1)",
        Ts::new(Utc::now() - Duration::hours(3)),
        laura,
    )
    .await;
    let page = app.get_with(&here, "/cuenta").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Sesiones abiertas"));
    assert_eq!(listed_sessions(&page.body), 2, "{}", page.body);
    assert_eq!(page.body.matches("Esta sesión").count(), 1);
    assert!(page.body.contains("127.0.0.1"), "the address is shown");
    assert!(page.body.contains("Cerrar las demás sesiones"));
    let closed = app
        .post_form_with(
            &here,
            "/cuenta/sesiones/cerrar",
            &[("_csrf", &csrf_in(&page.body))],
        )
        .await;
    assert_eq!(closed.status, StatusCode::SEE_OTHER);
    assert_eq!(closed.location.as_deref(), Some("/cuenta"));
    let after = app.get_with(&here, "/cuenta").await;
    assert_eq!(after.status, StatusCode::OK);
    assert_eq!(listed_sessions(&after.body), 1);
    assert!(after.body.contains("Se cerraron tus otras sesiones"));
    assert_eq!(
        app.get_with(&there, "/mensajes").await.location.as_deref(),
        Some("/login")
    );
    let login = app.get_with(&there, "/login").await;
    assert!(login.body.contains("Tu sesión se cerró"), "{}", login.body);
    assert_eq!(session_count(&app, laura).await, 1);
    // Without the CSRF token nothing is closed.
    let _another = signed_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let refused = app
        .post_form_with(&here, "/cuenta/sesiones/cerrar", &[])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(session_count(&app, laura).await, 2);
}

async fn a_super_admin_sees_and_closes_a_users_sessions(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let laura_client = signed_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let laura = user_id(&app, ADMIN_EMAIL).await;
    app.login_as_super().await;
    let page = app.get(&format!("/usuarios/{laura}")).await;
    assert_eq!(listed_sessions(&page.body), 1);
    assert!(
        !page.body.contains("Esta sesión"),
        "not the viewer's session"
    );
    let audit_before = app.scalar_i64("select count(*) from audit_log").await;
    let closed = app
        .post_form(
            &format!("/usuarios/{laura}/sesiones/cerrar"),
            &[("_csrf", &csrf_in(&page.body))],
        )
        .await;
    assert_eq!(closed.status, StatusCode::SEE_OTHER);
    assert_eq!(
        app.get_with(&laura_client, "/mensajes")
            .await
            .location
            .as_deref(),
        Some("/login")
    );
    assert_eq!(session_count(&app, laura).await, 0);
    assert_eq!(
        app.scalar_i64("select count(*) from audit_log").await,
        audit_before + 1,
        "closing someone's sessions is audited"
    );
    // An Administrador may not close anyone else's sessions.
    let super_id = user_id(&app, SUPER_EMAIL).await;
    let laura_again = signed_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let own = app.get_with(&laura_again, "/cuenta").await;
    let refused = app
        .post_form_with(
            &laura_again,
            &format!("/usuarios/{super_id}/sesiones/cerrar"),
            &[("_csrf", &csrf_in(&own.body))],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        status_of(&app, &app.client, "/usuarios").await,
        StatusCode::OK
    );
}

async fn a_wrong_current_password_changes_nothing_and_repeated_ones_end_the_session(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let here = signed_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let elsewhere = signed_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let wrong = change_own_password(&app, &here, "no-es-la-contrasena").await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(wrong.body.contains("Tu contraseña actual no es correcta."));
    assert_eq!(
        status_of(&app, &elsewhere, "/mensajes").await,
        StatusCode::OK
    );
    // Guessing is cut short: after five wrong answers the session ends.
    for _ in 0..4 {
        change_own_password(&app, &here, "no-es-la-contrasena").await;
    }
    assert_eq!(
        app.get_with(&here, "/cuenta").await.location.as_deref(),
        Some("/login")
    );
    let login = app.get_with(&here, "/login").await;
    assert!(login.body.contains("varios intentos"), "{}", login.body);
    // The other session goes on, and the password did not change.
    assert_eq!(
        status_of(&app, &elsewhere, "/mensajes").await,
        StatusCode::OK
    );
    let fresh = new_client();
    let ok = app.login_with(&fresh, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(ok.location.as_deref(), Some("/mensajes"));
}

async fn expired_sessions_are_purged_and_live_ones_kept(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let _laura = signed_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let _super = signed_in(&app, SUPER_EMAIL, SUPER_PASSWORD).await;
    let laura = user_id(&app, ADMIN_EMAIL).await;
    let super_id = user_id(&app, SUPER_EMAIL).await;
    // Expired two days ago: well past any grace.
    backdate_activity(&app, laura, Duration::days(2)).await;
    let policy = relevo::http::auth::session::SessionPolicy::with_idle_minutes(120);
    let purged = app
        .store
        .purge_expired_sessions(policy.purge_limits(Utc::now()), 1000)
        .await
        .expect("purge");
    assert_eq!(purged, 1);
    assert_eq!(session_count(&app, laura).await, 0);
    assert_eq!(session_count(&app, super_id).await, 1);
}

async fn in_a_browser_the_account_page_closes_the_other_sessions_and_passes_the_accessibility_check(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let browser = common::webdriver::Browser::start().await;
    browser
        .login(&app.address, ADMIN_EMAIL, ADMIN_PASSWORD)
        .await;
    let elsewhere = signed_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    // The account page is reached from the name in the sidebar.
    let link = browser.find(".sidebar-user a.user-link").await;
    browser.click(&link).await;
    browser.find(".sessions-table").await;
    assert!(browser.current_url().await.ends_with("/cuenta"));
    assert_eq!(browser.find_all(".sessions-table tbody tr").await.len(), 2);
    assert_eq!(
        browser.accessibility_violations().await,
        Vec::<String>::new(),
        "cuenta"
    );
    let close = browser
        .find("form[action='/cuenta/sesiones/cerrar'] button")
        .await;
    browser.click(&close).await;
    browser
        .wait_until(
            "only this session to be listed",
            "return document.querySelectorAll('.sessions-table tbody tr').length === 1 \
             && document.querySelector('.toast') !== null;",
        )
        .await;
    assert_eq!(
        app.get_with(&elsewhere, "/mensajes")
            .await
            .location
            .as_deref(),
        Some("/login")
    );
    browser.quit().await;
}
