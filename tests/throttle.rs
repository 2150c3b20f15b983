//! Login throttling under concurrency, what it stores, and which client it
//! throttles behind a proxy, over HTTP on both backends.

mod common;

use common::{
    ADMIN_EMAIL, ADMIN_PASSWORD, Backend, TestApp, csrf_in, new_client, spawn_app,
    spawn_app_configured,
};
use relevo::db::{Store, Ts};
use relevo::services::auth::throttle::{ACCOUNT_LIMIT, ADDRESS_LIMIT};
use reqwest::StatusCode;

on_both_backends!(
    parallel_wrong_attempts_verify_no_more_passwords_than_the_limit,
    a_successful_login_forgets_the_accounts_failures,
    successful_logins_do_not_count_against_the_address,
    an_over_long_email_is_refused_without_storing_anything,
    an_unknown_email_is_remembered_only_as_a_hash,
    expired_throttle_rows_are_purged_and_running_locks_kept,
    a_spoofed_forwarded_for_from_an_untrusted_peer_changes_nothing,
    behind_a_trusted_proxy_each_forwarded_client_is_throttled_on_its_own,
    behind_a_trusted_proxy_the_metrics_allow_list_applies_to_the_forwarded_client,
);

/// `relevo_login_password_checks_total` from `/metrics` (read from loopback).
async fn password_checks(app: &TestApp) -> u64 {
    let metrics = app.get_with(&new_client(), "/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK, "metrics from loopback");
    metrics
        .body
        .lines()
        .find_map(|line| line.strip_prefix("relevo_login_password_checks_total "))
        .expect("the password checks counter")
        .parse()
        .expect("a count")
}

/// Every key in `login_throttle`, sorted.
async fn throttle_keys(app: &TestApp) -> Vec<String> {
    let mut keys: Vec<String> = match &app.store {
        Store::Sqlite(p) => sqlx::query_scalar("select key from login_throttle")
            .fetch_all(&p.read)
            .await
            .expect("query"),
        Store::Postgres(relevo::db::PgStore { pool, .. }) => {
            sqlx::query_scalar("select key from login_throttle")
                .fetch_all(pool)
                .await
                .expect("query")
        }
    };
    keys.sort();
    keys
}

/// Stores a throttle row as an earlier attempt would have left it.
async fn insert_throttle_row(app: &TestApp, key: &str, window_start: Ts, locked_until: Option<Ts>) {
    match &app.store {
        Store::Sqlite(p) => {
            sqlx::query(
                "insert into login_throttle (key, failures, window_start, locked_until) \
                 values ($1, 5, $2, $3)",
            )
            .bind(key)
            .bind(window_start)
            .bind(locked_until)
            .execute(&p.write)
            .await
            .expect("insert");
        }
        Store::Postgres(relevo::db::PgStore { pool, .. }) => {
            sqlx::query(
                "insert into login_throttle (key, failures, window_start, locked_until) \
                 values ($1, 5, $2, $3)",
            )
            .bind(key)
            .bind(window_start)
            .bind(locked_until)
            .execute(pool)
            .await
            .expect("insert");
        }
    }
}

async fn parallel_wrong_attempts_verify_no_more_passwords_than_the_limit(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let before = password_checks(&app).await;
    // Sixty browsers, each with its own form, all posting a wrong password
    // for the same account at once.
    let mut forms = Vec::new();
    for _ in 0..60 {
        let client = new_client();
        let csrf = csrf_in(&app.get_with(&client, "/login").await.body);
        forms.push((client, csrf));
    }
    let mut attempts = tokio::task::JoinSet::new();
    for (client, csrf) in forms {
        let url = app.url("/login");
        attempts.spawn(async move {
            client
                .post(url)
                .form(&[
                    ("_csrf", csrf.as_str()),
                    ("email", ADMIN_EMAIL),
                    ("password", "wrong-password"),
                ])
                .send()
                .await
                .expect("POST")
                .status()
        });
    }
    let statuses = attempts.join_all().await;
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::UNAUTHORIZED || *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    let verified = password_checks(&app).await - before;
    assert!(
        verified <= ACCOUNT_LIMIT as u64,
        "60 parallel attempts verified {verified} passwords against a limit of {ACCOUNT_LIMIT}"
    );
    // The account is locked now: even the right password is refused.
    let right = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(right.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        right
            .body
            .contains("Demasiados intentos; espera 15 minutos")
    );
    assert_eq!(
        password_checks(&app).await - before,
        verified,
        "a locked account verifies nothing"
    );
}

async fn a_successful_login_forgets_the_accounts_failures(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    for attempt in 1..ACCOUNT_LIMIT {
        let page = app.login(ADMIN_EMAIL, "wrong-password").await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    let right = app
        .login_with(&new_client(), ADMIN_EMAIL, ADMIN_PASSWORD)
        .await;
    assert_eq!(right.location.as_deref(), Some("/mensajes"));
    // The count starts again: the limit's worth of failures before the lock.
    for attempt in 1..ACCOUNT_LIMIT {
        let page = app.login(ADMIN_EMAIL, "wrong-password").await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "again {attempt}");
    }
    let locked = app.login(ADMIN_EMAIL, "wrong-password").await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
}

async fn successful_logins_do_not_count_against_the_address(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    // A whole office behind one address signs in, more people than the
    // address's failure limit.
    for n in 0..=ADDRESS_LIMIT {
        let page = app
            .login_with(&new_client(), ADMIN_EMAIL, ADMIN_PASSWORD)
            .await;
        assert_eq!(page.location.as_deref(), Some("/mensajes"), "login {n}");
    }
}

async fn an_over_long_email_is_refused_without_storing_anything(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    // 255 characters: one more than any address can have.
    let long = format!("{}@relevo.demo", "a".repeat(243));
    assert_eq!(long.chars().count(), 255);
    let before = password_checks(&app).await;
    for email in [long, format!("{}@relevo.demo", "b".repeat(60_000))] {
        let page = app.login(&email, "whatever-password").await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
        assert!(page.body.contains("Correo o contraseña incorrectos"));
    }
    assert_eq!(throttle_keys(&app).await, Vec::<String>::new());
    assert_eq!(password_checks(&app).await, before, "nothing to verify");
}

async fn an_unknown_email_is_remembered_only_as_a_hash(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let page = app
        .login("Nadie.Conocido@Relevo.demo", "not-the-password")
        .await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    let keys = throttle_keys(&app).await;
    assert_eq!(keys.len(), 2, "one account key, one address key: {keys:?}");
    for key in &keys {
        let (kind, digest) = key.split_once(':').expect("kind:digest");
        assert!(kind == "account" || kind == "address", "{key}");
        assert_eq!(digest.len(), 64, "a SHA-256 in hex: {key}");
        assert!(
            digest
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
            "{key}"
        );
    }
    // The same address, typed differently, is the same account.
    app.login("  nadie.conocido@relevo.DEMO ", "not-the-password")
        .await;
    assert_eq!(throttle_keys(&app).await, keys);
}

async fn expired_throttle_rows_are_purged_and_running_locks_kept(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let now = chrono::Utc::now();
    let minutes = chrono::Duration::minutes;
    // Failures a day old, and a lock that ended a minute ago.
    insert_throttle_row(&app, "account:stale", Ts::new(now - minutes(24 * 60)), None).await;
    insert_throttle_row(
        &app,
        "address:lock-ended",
        Ts::new(now - minutes(16)),
        Some(Ts::new(now - minutes(1))),
    )
    .await;
    // A lock still running although its window started long ago, and a
    // window still open.
    insert_throttle_row(
        &app,
        "account:still-locked",
        Ts::new(now - minutes(20)),
        Some(Ts::new(now + minutes(5))),
    )
    .await;
    insert_throttle_row(&app, "account:recent", Ts::new(now - minutes(10)), None).await;
    let page = app.login("alguien@relevo.demo", "not-the-password").await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    let keys = throttle_keys(&app).await;
    assert!(!keys.contains(&"account:stale".to_owned()), "{keys:?}");
    assert!(!keys.contains(&"address:lock-ended".to_owned()), "{keys:?}");
    assert!(
        keys.contains(&"account:still-locked".to_owned()),
        "{keys:?}"
    );
    assert!(keys.contains(&"account:recent".to_owned()), "{keys:?}");
}

/// A browser whose every request carries `header: value`, as if a proxy
/// (or the client itself) had written it.
fn client_sending(header: &'static str, value: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(header, value.parse().expect("header value"));
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .default_headers(headers)
        .build()
        .expect("http client")
}

/// The status of `GET /metrics` sent with `header: value`.
async fn metrics_status(app: &TestApp, header: Option<(&'static str, &str)>) -> StatusCode {
    let client = match header {
        Some((name, value)) => client_sending(name, value),
        None => new_client(),
    };
    app.get_with(&client, "/metrics").await.status
}

/// Fails one login per address, each for another unknown account, from
/// `client_for(n)`, until the address limit is reached; returns the last
/// answer's status.
async fn fail_from_one_address(
    app: &TestApp,
    client_for: impl Fn(i64) -> reqwest::Client,
) -> StatusCode {
    let mut last = StatusCode::OK;
    for n in 0..ADDRESS_LIMIT {
        let email = format!("desconocido{n}@relevo.demo");
        last = app
            .login_with(&client_for(n), &email, "wrong-password")
            .await
            .status;
        if n + 1 < ADDRESS_LIMIT {
            assert_eq!(last, StatusCode::UNAUTHORIZED, "failure {n}");
        }
    }
    last
}

async fn a_spoofed_forwarded_for_from_an_untrusted_peer_changes_nothing(backend: Backend) {
    let Some(app) = spawn_app_configured(backend, true, |settings| {
        settings.metrics.allow = vec!["198.51.100.7".parse().expect("address")];
    })
    .await
    else {
        return;
    };
    // Naming an allowed address does not open /metrics.
    for header in [
        ("x-forwarded-for", "198.51.100.7"),
        ("forwarded", "for=198.51.100.7"),
    ] {
        assert_eq!(
            metrics_status(&app, Some(header)).await,
            StatusCode::FORBIDDEN
        );
    }
    // A new made-up address on every attempt: all of them count against
    // the one real peer, which gets locked at the limit…
    let last = fail_from_one_address(&app, |n| {
        client_sending("x-forwarded-for", &format!("203.0.113.{n}"))
    })
    .await;
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    // …and stays locked whatever it claims to be next.
    let right = app
        .login_with(
            &client_sending("x-forwarded-for", "203.0.113.200"),
            ADMIN_EMAIL,
            ADMIN_PASSWORD,
        )
        .await;
    assert_eq!(right.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(right.body.contains("Demasiados intentos"));
}

async fn behind_a_trusted_proxy_each_forwarded_client_is_throttled_on_its_own(backend: Backend) {
    let Some(app) = spawn_app_configured(backend, true, |settings| {
        settings.trusted_proxies = "127.0.0.1".parse().expect("trusted proxies");
    })
    .await
    else {
        return;
    };
    let last =
        fail_from_one_address(&app, |_| client_sending("x-forwarded-for", "203.0.113.1")).await;
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS, "the guessing client");
    // The locked client cannot get out by writing another address in front:
    // the proxy appends the real one, which is what counts.
    let disguised = app
        .login_with(
            &client_sending("x-forwarded-for", "198.51.100.99, 203.0.113.1"),
            ADMIN_EMAIL,
            ADMIN_PASSWORD,
        )
        .await;
    assert_eq!(disguised.status, StatusCode::TOO_MANY_REQUESTS);
    // Everyone else behind the same proxy signs in as usual.
    let other = app
        .login_with(
            &client_sending("x-forwarded-for", "203.0.113.2"),
            ADMIN_EMAIL,
            ADMIN_PASSWORD,
        )
        .await;
    assert_eq!(other.location.as_deref(), Some("/mensajes"));
    let over_v6 = app
        .login_with(
            &client_sending("forwarded", "for=\"[2001:db8::2]:4711\";proto=https"),
            ADMIN_EMAIL,
            ADMIN_PASSWORD,
        )
        .await;
    assert_eq!(over_v6.location.as_deref(), Some("/mensajes"));
}

async fn behind_a_trusted_proxy_the_metrics_allow_list_applies_to_the_forwarded_client(
    backend: Backend,
) {
    let Some(app) = spawn_app_configured(backend, true, |settings| {
        settings.trusted_proxies = "127.0.0.1".parse().expect("trusted proxies");
        settings.metrics.allow = vec!["198.51.100.7".parse().expect("address")];
    })
    .await
    else {
        return;
    };
    for header in [
        ("x-forwarded-for", "198.51.100.7"),
        ("forwarded", "for=\"198.51.100.7:4711\""),
    ] {
        assert_eq!(
            metrics_status(&app, Some(header)).await,
            StatusCode::OK,
            "{header:?}"
        );
    }
    // A client that merely writes the allowed address in front is refused,
    // and so is the proxy itself, which is not on the list.
    assert_eq!(
        metrics_status(&app, Some(("x-forwarded-for", "198.51.100.7, 203.0.113.5"))).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(metrics_status(&app, None).await, StatusCode::FORBIDDEN);
}
