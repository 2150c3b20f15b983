//! Login, sessions, CSRF, throttling and rights that change under a signed-in
//! user, over HTTP on both backends.

mod common;

use common::{ADMIN_EMAIL, ADMIN_PASSWORD, Backend, SUPER_EMAIL, csrf_in, new_client, spawn_app};
use relevo::db::Ts;
use relevo::domain::Role;
use reqwest::StatusCode;

on_both_backends!(
    an_administrator_logs_in_and_lands_on_the_conversation_list,
    a_wrong_password_and_an_unknown_email_get_the_same_generic_message,
    empty_fields_are_refused_with_a_clear_message,
    an_over_long_email_is_refused_like_any_wrong_login,
    an_agent_is_told_the_console_is_for_administrators,
    repeated_failures_lock_the_account_with_a_clear_message,
    a_post_without_or_with_a_wrong_csrf_token_is_refused,
    the_session_id_changes_at_login,
    logout_ends_the_session_on_the_server,
    a_tampered_session_cookie_counts_as_signed_out,
    a_deactivated_user_is_signed_out_on_the_next_request,
    a_role_change_takes_effect_on_the_next_request,
    security_headers_and_cookie_flags_are_set,
    pages_need_a_session,
);

async fn an_administrator_logs_in_and_lands_on_the_conversation_list(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let page = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location.as_deref(), Some("/mensajes"));
    let list = app.get("/mensajes").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(
        list.body.contains("Laura Méndez Soto"),
        "the sidebar names the user"
    );
    assert!(list.body.contains("Cerrar sesión"));
    // A signed-in user who opens /login goes straight to the console.
    assert_eq!(
        app.get("/login").await.location.as_deref(),
        Some("/mensajes")
    );
}

async fn a_wrong_password_and_an_unknown_email_get_the_same_generic_message(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let wrong = app.login(ADMIN_EMAIL, "not-the-password").await;
    let unknown = app.login("nadie@relevo.demo", "not-the-password").await;
    for page in [&wrong, &unknown] {
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
        assert!(page.body.contains("Correo o contraseña incorrectos"));
        assert!(page.location.is_none());
    }
    // The typed e-mail is kept (escaped), the password never is.
    assert!(wrong.body.contains("value=\"admin@relevo.demo\""));
    assert!(!wrong.body.contains("not-the-password"));
    assert_eq!(
        app.get("/mensajes").await.location.as_deref(),
        Some("/login")
    );
}

async fn empty_fields_are_refused_with_a_clear_message(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    for (email, password) in [("", ""), (ADMIN_EMAIL, ""), ("", ADMIN_PASSWORD)] {
        let page = app.login(email, password).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            page.body
                .contains("Escribe tu correo electrónico y tu contraseña.")
        );
    }
}

async fn an_over_long_email_is_refused_like_any_wrong_login(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let long = format!("{}@relevo.demo", "a".repeat(5000));
    let page = app.login(&long, "whatever-password").await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(page.body.contains("Correo o contraseña incorrectos"));
    assert!(
        !page.body.contains(&"a".repeat(300)),
        "the page does not echo 5000 characters"
    );
}

async fn an_agent_is_told_the_console_is_for_administrators(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.create_user(
        "agente@relevo.demo",
        Role::Agent,
        "agente-clave-segura",
        &["Ventas Hogar"],
    )
    .await;
    let page = app.login("agente@relevo.demo", "agente-clave-segura").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.body.contains("consola de administración"));
    assert_eq!(
        app.get("/mensajes").await.location.as_deref(),
        Some("/login")
    );
}

async fn repeated_failures_lock_the_account_with_a_clear_message(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let limit = relevo::services::auth::throttle::ACCOUNT_LIMIT;
    for attempt in 1..limit {
        let page = app.login(ADMIN_EMAIL, "wrong-password").await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    let locked = app.login(ADMIN_EMAIL, "wrong-password").await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        locked
            .body
            .contains("Demasiados intentos; espera 15 minutos")
    );
    // Even the right password is refused while the lock lasts…
    let right = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(right.status, StatusCode::TOO_MANY_REQUESTS);
    // …but another account from the same address is not locked yet.
    let other = app.login(SUPER_EMAIL, common::SUPER_PASSWORD).await;
    assert_eq!(other.location.as_deref(), Some("/mensajes"));
}

async fn a_post_without_or_with_a_wrong_csrf_token_is_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.get("/login").await;
    let missing = app
        .post_form(
            "/login",
            &[("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)],
        )
        .await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    assert!(missing.body.contains("El formulario caducó"));
    let wrong = app
        .post_form(
            "/login",
            &[
                ("_csrf", "0123"),
                ("email", ADMIN_EMAIL),
                ("password", ADMIN_PASSWORD),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    // A token from another browser's session does not work either.
    let other = new_client();
    let foreign = csrf_in(&app.get_with(&other, "/login").await.body);
    let cross = app
        .post_form(
            "/login",
            &[
                ("_csrf", &foreign),
                ("email", ADMIN_EMAIL),
                ("password", ADMIN_PASSWORD),
            ],
        )
        .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    // Logged in, logout without the token is refused and the session survives.
    app.login_as_admin().await;
    let logout = app.post_form("/logout", &[]).await;
    assert_eq!(logout.status, StatusCode::FORBIDDEN);
    assert_eq!(app.get("/mensajes").await.status, StatusCode::OK);
}

fn session_cookie(page: &common::Page) -> Option<String> {
    page.headers
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("relevo_session="))
        .map(|c| c.split(';').next().unwrap_or_default().to_owned())
}

/// The server-side id of the session `app.client` is signed in with, as
/// /cuenta marks it ("Esta sesión"; the row's id is the `user_sessions` id).
async fn current_session_id(app: &common::TestApp) -> uuid::Uuid {
    let page = app.get("/cuenta").await;
    assert_eq!(page.status, StatusCode::OK, "signed in");
    let rows: Vec<&str> = page
        .body
        .split("<tr id=\"sesion-")
        .skip(1)
        .filter(|row| {
            row.split('>')
                .next()
                .is_some_and(|tag| tag.contains("is-current"))
        })
        .collect();
    assert_eq!(rows.len(), 1, "exactly one current session on /cuenta");
    rows[0][..36].parse().expect("a session id")
}

/// The ids of the Administrador's sessions recorded on the server.
async fn admin_sessions(app: &common::TestApp) -> Vec<uuid::Uuid> {
    app.uuids_where(
        "select s.id from user_sessions s join users u on u.id = s.user_id \
         where u.email = $1 order by s.id",
        ADMIN_EMAIL,
    )
    .await
}

/// Logging in starts a new server-side session (no fixation): before it the
/// browser's cookie names none; after it the cookie names a new record; and
/// logging in again over a signed-in session names another new one.
async fn the_session_id_changes_at_login(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    assert!(
        session_cookie(&app.get("/login").await).is_some(),
        "an anonymous session"
    );
    assert!(
        admin_sessions(&app).await.is_empty(),
        "no session before login"
    );
    let login = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(login.location.as_deref(), Some("/mensajes"));
    let first = current_session_id(&app).await;
    assert_eq!(admin_sessions(&app).await, vec![first]);

    let csrf = csrf_in(&app.get("/cuenta").await.body);
    let again = app
        .post_form(
            "/login",
            &[
                ("_csrf", &csrf),
                ("email", ADMIN_EMAIL),
                ("password", ADMIN_PASSWORD),
            ],
        )
        .await;
    assert_eq!(again.location.as_deref(), Some("/mensajes"));
    let second = current_session_id(&app).await;
    assert_ne!(
        first, second,
        "a login over a session gets a new server-side id"
    );
    assert!(admin_sessions(&app).await.contains(&second));
}

async fn logout_ends_the_session_on_the_server(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let login = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let cookie = session_cookie(&login).expect("session cookie");
    let page = app.get("/mensajes").await;
    let csrf = csrf_in(&page.body);
    let logout = app.post_form("/logout", &[("_csrf", &csrf)]).await;
    assert_eq!(logout.location.as_deref(), Some("/login?salida=1"));
    assert_eq!(
        app.get("/mensajes").await.location.as_deref(),
        Some("/login")
    );
    // Replaying the old cookie from another client does not bring the session back.
    let replay = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();
    let response = replay
        .get(app.url("/mensajes"))
        .header(reqwest::header::COOKIE, cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[reqwest::header::LOCATION], "/login");
}

async fn a_tampered_session_cookie_counts_as_signed_out(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let login = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let cookie = session_cookie(&login).expect("session cookie");
    let (name, value) = cookie.split_once('=').unwrap();
    let mut bytes = value.as_bytes().to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] = if bytes[middle] == b'A' { b'B' } else { b'A' };
    let tampered = format!("{name}={}", String::from_utf8(bytes).unwrap());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();
    let response = client
        .get(app.url("/mensajes"))
        .header(reqwest::header::COOKIE, tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[reqwest::header::LOCATION], "/login");
}

async fn a_deactivated_user_is_signed_out_on_the_next_request(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    assert_eq!(app.get("/mensajes").await.status, StatusCode::OK);
    let admin = app.store.user_by_email(ADMIN_EMAIL).await.unwrap().unwrap();
    app.store
        .set_user_active(admin.id, false, Ts::now())
        .await
        .unwrap();
    assert_eq!(
        app.get("/mensajes").await.location.as_deref(),
        Some("/login")
    );
    // Reactivated, the old session stays ended: a new login is needed.
    app.store
        .set_user_active(admin.id, true, Ts::now())
        .await
        .unwrap();
    assert_eq!(
        app.get("/mensajes").await.location.as_deref(),
        Some("/login")
    );
    // And a deactivated user cannot log in (same generic message).
    app.store
        .set_user_active(admin.id, false, Ts::now())
        .await
        .unwrap();
    let page = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert!(page.body.contains("Correo o contraseña incorrectos"));
}

async fn a_role_change_takes_effect_on_the_next_request(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.login_as_admin().await;
    let before = app.get("/mensajes?estatus=todas&campana=").await;
    assert!(
        !before.body.contains("Seguros Auto</td>"),
        "an admin sees only their campaigns"
    );
    let admin = app.store.user_by_email(ADMIN_EMAIL).await.unwrap().unwrap();
    // Promoted: every campaign at once.
    app.store
        .set_user_role(admin.id, Role::SuperAdmin, Ts::now())
        .await
        .unwrap();
    let promoted = app.get("/mensajes?estatus=todas").await;
    assert!(promoted.body.contains("Super Administrador"));
    let seguros = app.campaign_id("Seguros Auto").await;
    let only_seguros = app
        .get(&format!("/mensajes?estatus=todas&campana={seguros}"))
        .await;
    assert!(!common::folios_in(&only_seguros.body).is_empty());
    // Demoted to agent: out of the console on the next click.
    app.store
        .set_user_role(admin.id, Role::Agent, Ts::now())
        .await
        .unwrap();
    assert_eq!(
        app.get("/mensajes").await.location.as_deref(),
        Some("/login")
    );
}

async fn security_headers_and_cookie_flags_are_set(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let login = app.get("/login").await;
    let csp = login.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    assert!(csp.contains("frame-ancestors 'none'"));
    assert_eq!(login.headers["x-content-type-options"], "nosniff");
    assert_eq!(login.headers["x-frame-options"], "DENY");
    assert_eq!(login.headers["referrer-policy"], "same-origin");
    let cookie = login.headers[reqwest::header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    // Error pages carry them too.
    let missing = app.get("/no-existe").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.headers.contains_key("content-security-policy"));
    assert!(missing.body.contains("No encontramos esa página."));
}

async fn pages_need_a_session(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    for path in [
        "/",
        "/mensajes",
        "/mensajes/10001",
        "/mensajes?estatus=todas",
    ] {
        let page = app.get(path).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{path}");
    }
    assert_eq!(
        app.get("/mensajes").await.location.as_deref(),
        Some("/login")
    );
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
    assert_eq!(app.get("/readyz").await.status, StatusCode::OK);
}
