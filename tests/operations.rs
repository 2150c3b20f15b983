//! Operations: graceful shutdown, crashes, backups, configuration mistakes,
//! metrics and logs, and a PostgreSQL outage in the middle of a load. These
//! tests run the real `relevo` binary as a child process (killed on drop) and
//! finish in bounded time.

mod common;

use std::time::Duration;

use common::process::{RelevoProcess, command};
use common::{ADMIN_EMAIL, ADMIN_PASSWORD, Backend, TestApp, fresh_store};
use reqwest::StatusCode;
use sqlx::Connection;

on_both_backends!(
    a_sigterm_lets_an_in_flight_cancel_finish_and_exits_zero,
    a_crash_keeps_every_acknowledged_cancel_and_nothing_half_written,
);

/// A fresh seeded database and a running `relevo serve` on it.
async fn started(
    backend: Backend,
    env: &[(&str, &str)],
) -> Option<(TestApp, RelevoProcess, common::DbGuardHandle)> {
    let (store, url, guard) = fresh_store(backend).await?;
    relevo::cli::seed_demo(&store).await.expect("seed");
    let process = RelevoProcess::start(&url, env).await;
    let app = TestApp::attach(process.port, store, backend, url);
    Some((app, process, guard))
}

/// Open conversations of the admin's campaigns with a category to close them
/// with: (folio, version, category id).
async fn open_work(app: &TestApp, limit: usize) -> Vec<(i64, i64, String)> {
    let sql = "select c.folio, c.version, cast(min(cast(k.id as text)) as text) from conversations c \
               join campaigns p on p.id = c.campaign_id \
               join closure_categories k on k.campaign_id = c.campaign_id and k.active \
               where p.name in ('Ventas Hogar', 'Soporte Técnico') and c.is_open \
               group by c.folio, c.version order by c.folio";
    let rows: Vec<(i64, i64, String)> = match &app.store {
        relevo::db::Store::Sqlite(p) => {
            // SQLite stores ids as blobs: read them as uuids instead.
            let rows: Vec<(i64, i64, uuid::Uuid)> = sqlx::query_as(
                "select c.folio, c.version, (select k.id from closure_categories k \
                   where k.campaign_id = c.campaign_id and k.active order by k.position limit 1) \
                 from conversations c join campaigns p on p.id = c.campaign_id \
                 where p.name in ('Ventas Hogar', 'Soporte Técnico') and c.is_open order by c.folio",
            )
            .fetch_all(&p.read)
            .await
            .unwrap();
            rows.into_iter()
                .map(|(f, v, id)| (f, v, id.to_string()))
                .collect()
        }
        relevo::db::Store::Postgres(relevo::db::PgStore { pool: p, .. }) => {
            sqlx::query_as(sql).fetch_all(p).await.unwrap()
        }
    };
    rows.into_iter().take(limit).collect()
}

async fn cancel(
    address: &str,
    client: &reqwest::Client,
    csrf: &str,
    work: &(i64, i64, String),
) -> Result<StatusCode, reqwest::Error> {
    let (folio, version, category) = work;
    client
        .post(format!("{address}/mensajes/{folio}/acciones"))
        .header("HX-Request", "true")
        .form(&[
            ("_csrf", csrf),
            ("version", &version.to_string()),
            ("accion", "cancelar"),
            ("categoria", category),
        ])
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .map(|r| r.status())
}

/// Conversations whose status and history disagree about a cancellation:
/// cancelled without exactly one `cancelled` row, or such a row without the status.
async fn half_written(app: &TestApp) -> i64 {
    let sql = "select count(*) from conversations c where \
               (c.status = 'cancelled') <> ((select count(*) from conversation_events e \
                 where e.conversation_id = c.id and e.kind = 'cancelled') = 1) \
               or (select count(*) from conversation_events e \
                 where e.conversation_id = c.id and e.kind = 'cancelled') > 1";
    app.scalar_i64(sql).await
}

async fn is_cancelled(app: &TestApp, folio: i64) -> bool {
    app.folios_where(
        "select folio from conversations where status = $1",
        "cancelled",
    )
    .await
    .contains(&folio)
}

/// `relevo_requests_in_flight` of `app`'s `/metrics` (loopback may read
/// it), the metrics request itself included.
async fn requests_in_flight(app: &TestApp) -> u64 {
    let page = app.get("/metrics").await;
    assert_eq!(page.status, StatusCode::OK);
    page.body
        .lines()
        .find_map(|l| l.strip_prefix("relevo_requests_in_flight "))
        .expect("the in-flight gauge")
        .trim()
        .parse()
        .expect("a number")
}

async fn a_sigterm_lets_an_in_flight_cancel_finish_and_exits_zero(backend: Backend) {
    let Some((app, mut process, _guard)) = started(backend, &[]).await else {
        return;
    };
    app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let csrf = common::field_value(&app.get("/mensajes").await.body, "_csrf");
    let work = open_work(&app, 1).await.remove(0);
    // Hold the row (Postgres) or the database write lock (SQLite) so the
    // cancel is still in flight when the signal arrives.
    enum Held {
        Sqlite(sqlx::SqliteConnection),
        Postgres(sqlx::PgConnection),
    }
    let held = match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&app.database_url)
                .await
                .unwrap();
            sqlx::query("begin immediate")
                .execute(&mut conn)
                .await
                .unwrap();
            Held::Sqlite(conn)
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&app.database_url)
                .await
                .unwrap();
            sqlx::query("begin").execute(&mut conn).await.unwrap();
            sqlx::query("select 1 from conversations where folio = $1 for update")
                .bind(work.0)
                .execute(&mut conn)
                .await
                .unwrap();
            Held::Postgres(conn)
        }
    };
    let in_flight = {
        let client = app.client.clone();
        let address = app.address.clone();
        let csrf = csrf.clone();
        let work = work.clone();
        tokio::spawn(async move { cancel(&address, &client, &csrf, &work).await })
    };
    // The cancel is in flight (held by the lock) when the signal arrives.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while requests_in_flight(&app).await < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the cancel never reached the server"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    process.sigterm();
    // No new connections are accepted any more (once the signal is handled)…
    let refused = Duration::from_secs(10);
    let deadline = std::time::Instant::now() + refused;
    loop {
        let late = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap()
            .get(app.url("/healthz"))
            .send()
            .await;
        if late.is_err() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "new connections were still accepted {refused:?} after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // …while the cancel in flight completes once the database lets it.
    match held {
        Held::Sqlite(mut conn) => {
            sqlx::query("commit").execute(&mut conn).await.unwrap();
        }
        Held::Postgres(mut conn) => {
            sqlx::query("rollback").execute(&mut conn).await.unwrap();
        }
    }
    let status = in_flight
        .await
        .unwrap()
        .expect("the in-flight request got its answer");
    assert_eq!(status, StatusCode::OK);
    let exit = process.wait(Duration::from_secs(35)).await;
    assert!(exit.success(), "exit code 0 after SIGTERM, got {exit:?}");
    assert!(is_cancelled(&app, work.0).await);
    assert_eq!(half_written(&app).await, 0);
}

async fn a_crash_keeps_every_acknowledged_cancel_and_nothing_half_written(backend: Backend) {
    let Some((app, process, _guard)) = started(backend, &[]).await else {
        return;
    };
    app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let csrf = common::field_value(&app.get("/mensajes").await.body, "_csrf");
    let work = open_work(&app, 60).await;
    assert!(work.len() >= 20);
    let cancelled_before = app
        .folios_where(
            "select folio from conversations where status = $1",
            "cancelled",
        )
        .await
        .len();
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for chunk in work.chunks(work.len().div_ceil(4)) {
        let app = app.clone();
        let csrf = csrf.clone();
        let chunk = chunk.to_vec();
        tasks.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for item in &chunk {
                if let Ok(StatusCode::OK) = cancel(&app.address, &app.client, &csrf, item).await {
                    acknowledged.push(item.0);
                }
            }
            acknowledged
        }));
    }
    // Let some cancels land, then crash the process mid-load.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while app
        .folios_where(
            "select folio from conversations where status = $1",
            "cancelled",
        )
        .await
        .len()
        < cancelled_before + 5
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    process.sigkill();
    let mut acknowledged = Vec::new();
    for task in tasks {
        acknowledged.extend(task.await.unwrap());
    }
    drop(process);
    // Reopen the database as a restarted instance would.
    let store = relevo::db::Store::connect(&app.database_url).await.unwrap();
    store.migrate().await.unwrap();
    let reopened = TestApp::attach(0, store, backend, app.database_url.clone());
    let cancelled = reopened
        .folios_where(
            "select folio from conversations where status = $1",
            "cancelled",
        )
        .await;
    for folio in &acknowledged {
        assert!(
            cancelled.contains(folio),
            "acknowledged cancel of {folio} survived the crash"
        );
    }
    assert!(!acknowledged.is_empty());
    assert_eq!(
        half_written(&reopened).await,
        0,
        "no half-applied transition"
    );
    if let relevo::db::Store::Sqlite(_) = &reopened.store {
        assert_eq!(
            reopened.store.integrity_check().await.unwrap().as_deref(),
            Some("ok")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_serving_is_consistent_and_checks_clean() {
    let Some((app, process, _guard)) = started(Backend::Sqlite, &[]).await else {
        return;
    };
    app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let csrf = common::field_value(&app.get("/mensajes").await.body, "_csrf");
    let work = open_work(&app, 10).await;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("copia.db");
    // Cancels keep running while the backup is taken.
    let load = {
        let client = app.client.clone();
        let (csrf, work) = (csrf.clone(), work.clone());
        let address = app.address.clone();
        tokio::spawn(async move {
            for item in &work {
                let _ = cancel(&address, &client, &csrf, item).await;
            }
        })
    };
    let out = command(&app.database_url)
        .arg("backup")
        .arg(&target)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    load.await.unwrap();
    let check = command(&format!("sqlite:{}", target.display()))
        .arg("check")
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(report.contains("integrity: ok") && report.contains("database is healthy"));
    // The copy holds every conversation, each consistent with its history.
    let copy = relevo::db::Store::connect(&format!("sqlite:{}", target.display()))
        .await
        .unwrap();
    let copy = TestApp::attach(0, copy, Backend::Sqlite, String::new());
    assert_eq!(
        copy.scalar_i64("select count(*) from conversations").await,
        app.scalar_i64("select count(*) from conversations").await
    );
    assert_eq!(half_written(&copy).await, 0);
    // The name search's trigram index is linked to contacts by rowid
    // (migration 0025): the copy keeps every link.
    let contacts = copy.scalar_i64("select count(*) from contacts").await;
    assert!(contacts > 0);
    assert_eq!(
        copy.scalar_i64("select count(*) from contacts_search")
            .await,
        contacts
    );
    assert_eq!(
        copy.scalar_i64(
            "select count(*) from contacts k join contacts_search s on s.rowid = k.rowid \
             where s.name_key is k.name_key and s.external_id = k.external_id"
        )
        .await,
        contacts
    );
    // An existing file or a missing directory is refused, nothing written.
    let again = command(&app.database_url)
        .arg("backup")
        .arg(&target)
        .output()
        .await
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let nowhere = command(&app.database_url)
        .arg("backup")
        .arg(dir.path().join("no/such/dir/copia.db"))
        .output()
        .await
        .unwrap();
    assert!(!nowhere.status.success());
    assert!(String::from_utf8_lossy(&nowhere.stderr).contains("does not exist"));
    drop(process);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(relevo_postgres),
    ignore = "PostgreSQL not available: set TEST_POSTGRES_URL or install postgresql"
)]
async fn backup_refuses_postgres_and_points_to_pg_dump() {
    let Some((_store, url, _guard)) = fresh_store(Backend::Postgres).await else {
        return;
    };
    let out = command(&url)
        .arg("backup")
        .arg("/tmp/relevo-never-written.db")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pg_dump"));
    assert!(!std::path::Path::new("/tmp/relevo-never-written.db").exists());
    let check = command(&url).arg("check").output().await.unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

/// Runs `relevo` with `env` and expects a quick, clear failure.
async fn fails_with(database_url: &str, env: &[(&str, &str)], expected: &str) {
    let mut cmd = command(database_url);
    cmd.arg("serve").env("RELEVO_BIND", "127.0.0.1:0");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(30), cmd.output())
        .await
        .expect("exits in time")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "must fail: {expected}");
    assert!(stderr.contains(expected), "{expected:?} not in {stderr:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_mistakes_fail_fast_with_a_clear_message() {
    fails_with("mysql://localhost/relevo", &[], "unsupported database url").await;
    fails_with(
        "sqlite:/no/such/directory/relevo.db",
        &[],
        "cannot open the database",
    )
    .await;
    fails_with(
        "sqlite::memory:",
        &[("RELEVO_SESSION_KEY", "corta")],
        "at least 32 characters",
    )
    .await;
    // A port already taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("r.db").display());
    fails_with(
        &url,
        &[("RELEVO_BIND", &format!("127.0.0.1:{port}"))],
        "cannot listen on",
    )
    .await;
    // A database migrated by a newer Relevo: refused, and left as it was.
    let (store, url, _guard) = fresh_store(Backend::Sqlite).await.unwrap();
    if let relevo::db::Store::Sqlite(pools) = &store {
        sqlx::query(
            "insert into _sqlx_migrations (version, description, success, checksum, execution_time) \
             values (9999, 'from the future', true, x'00', 0)",
        )
        .execute(&pools.write)
        .await
        .unwrap();
    }
    let before = TestApp::attach(0, store.clone(), Backend::Sqlite, url.clone())
        .scalar_i64("select count(*) from _sqlx_migrations")
        .await;
    fails_with(&url, &[], "newer than this binary").await;
    let after = TestApp::attach(0, store, Backend::Sqlite, url)
        .scalar_i64("select count(*) from _sqlx_migrations")
        .await;
    assert_eq!(before, after, "nothing modified");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_guarded_and_logs_are_json_without_personal_data() {
    let env = [
        ("RELEVO_LOG_FORMAT", "json"),
        ("RUST_LOG", "info"),
        ("RELEVO_METRICS_ALLOW", "192.0.2.1"),
        ("RELEVO_METRICS_TOKEN", "token-de-metricas-de-prueba"),
    ];
    let Some((app, mut process, _guard)) = started(Backend::Sqlite, &env).await else {
        return;
    };
    app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let page = app.get("/mensajes?q=Guadalupe&estatus=todas").await;
    assert_eq!(page.status, StatusCode::OK);
    let request_id = page.headers["x-request-id"].to_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&request_id).is_ok());
    // Not from an allowed address, no token: refused.
    assert_eq!(app.get("/metrics").await.status, StatusCode::FORBIDDEN);
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("token-de-metricas-de-prueba")
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains(
            "relevo_http_requests_total{route=\"/mensajes\",method=\"GET\",status=\"200\"}"
        )
    );
    assert!(text.contains("relevo_http_request_duration_seconds_bucket"));
    assert!(text.contains("relevo_live_streams"));
    assert!(text.contains("relevo_db_pool_connections{pool=\"sqlite_write\""));
    process.sigterm();
    assert!(process.wait(Duration::from_secs(35)).await.success());
    let logs = process.stdout().await;
    let lines: Vec<&str> = logs.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for line in &lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(value.get("timestamp").is_some());
    }
    assert!(logs.contains(&request_id), "the request id is in the logs");
    for personal in ["Guadalupe", ADMIN_EMAIL, ADMIN_PASSWORD, "q="] {
        assert!(!logs.contains(personal), "{personal:?} must not be logged");
    }
}
