//! A PostgreSQL outage in the middle of a load of cancels, on a throwaway
//! cluster this test starts with `pg_ctl` on its own port and data directory
//! (the shared server is never touched). Every request (cancels, and a
//! channel's customer messages) either succeeded and is in the database, or
//! failed visibly and left nothing behind; the service recovers by itself.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::postgres;
use common::{ADMIN_EMAIL, ADMIN_PASSWORD, Backend, SseReader, TestApp};
use reqwest::StatusCode;

/// A private PostgreSQL cluster, stopped and removed on drop.
struct Cluster {
    bin: PathBuf,
    data: tempfile::TempDir,
    port: u16,
}

/// Runs a PostgreSQL tool, as the `postgres` user when we are root (the
/// server refuses to run as root).
fn pg_tool(bin: &Path, tool: &str, args: &[&str]) -> std::process::Output {
    postgres::as_server_user(&bin.join(tool))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e}"))
}

impl Cluster {
    fn start() -> Cluster {
        let bin = postgres::server_bin()
            .expect("the PostgreSQL server programs (initdb, postgres, pg_ctl)");
        let data = postgres::server_owned_tempdir();
        let port = postgres::free_port();
        postgres::initdb(&bin, &data.path().join("pg")).unwrap_or_else(|e| panic!("{e}"));
        let cluster = Cluster { bin, data, port };
        cluster.up();
        cluster
    }

    fn dir(&self) -> String {
        self.data.path().join("pg").display().to_string()
    }

    fn up(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.data.path().display()
        );
        let log = self.data.path().join("log").display().to_string();
        let out = pg_tool(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                &self.dir(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "-t",
                "30",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn down(&self) {
        let out = pg_tool(
            &self.bin,
            "pg_ctl",
            &["-D", &self.dir(), "-m", "fast", "-w", "-t", "30", "stop"],
        );
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn url(&self) -> String {
        format!("postgres://root@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = pg_tool(
            &self.bin,
            "pg_ctl",
            &["-D", &self.dir(), "-m", "immediate", "-w", "stop"],
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(relevo_postgres_server),
    ignore = "PostgreSQL server programs not available: install postgresql (initdb, pg_ctl)"
)]
async fn the_service_rides_out_a_postgres_restart_without_half_writes() {
    let cluster = Cluster::start();
    let store = relevo::db::Store::connect(&cluster.url())
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    relevo::cli::seed_demo(&store).await.expect("seed");
    let settings = relevo::config::Settings::on_free_port(&cluster.url());
    let server = relevo::app::Application::build_with_store(settings, store.clone())
        .await
        .expect("build");
    let port = server.port();
    tokio::spawn(server.run_until_stopped());
    let app = TestApp::attach(port, store, Backend::Postgres, cluster.url());
    app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let csrf = common::field_value(&app.get("/mensajes").await.body, "_csrf");
    let mut stream = SseReader::open(&app, &app.client, "/mensajes/eventos").await;
    assert_eq!(
        stream.next(Duration::from_secs(2)).await.unwrap().0,
        "hello"
    );
    let work: Vec<(i64, i64, uuid::Uuid)> = match &app.store {
        relevo::db::Store::Postgres(pg) => sqlx::query_as(
            "select c.folio, c.version, (select k.id from closure_categories k \
               where k.campaign_id = c.campaign_id and k.active order by k.position limit 1) \
             from conversations c join campaigns p on p.id = c.campaign_id \
             where p.name in ('Ventas Hogar', 'Soporte Técnico') and c.is_open order by c.folio",
        )
        .fetch_all(&pg.pool)
        .await
        .unwrap(),
        relevo::db::Store::Sqlite(_) => unreachable!(),
    };
    let cancelled = "select count(*) from conversation_events where kind = 'cancelled'";
    let cancelled_before = app.scalar_i64(cancelled).await;
    // A steady load of cancels across the outage.
    let load = {
        let client = app.client.clone();
        let address = app.address.clone();
        let csrf = csrf.clone();
        tokio::spawn(async move {
            let mut results = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(25);
            for (folio, version, category) in work {
                if Instant::now() > deadline {
                    break;
                }
                let response = client
                    .post(format!("{address}/mensajes/{folio}/acciones"))
                    .header("HX-Request", "true")
                    .form(&[
                        ("_csrf", csrf.as_str()),
                        ("version", &version.to_string()),
                        ("accion", "cancelar"),
                        ("categoria", &category.to_string()),
                    ])
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await;
                results.push((folio, response.map(|r| r.status()).ok()));
                // Pacing, not synchronisation: the load is spread across
                // before, during and after the outage.
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            results
        })
    };
    // A channel sending customer messages across the outage.
    let channel: uuid::Uuid = match &app.store {
        relevo::db::Store::Postgres(pg) => {
            sqlx::query_scalar("select id from channels where active order by name limit 1")
                .fetch_one(&pg.pool)
                .await
                .unwrap()
        }
        relevo::db::Store::Sqlite(_) => unreachable!(),
    };
    let channel_token = app
        .store
        .rotate_channel_token(channel)
        .await
        .unwrap()
        .unwrap();
    let customer_message = |message_id: &str| {
        app.client
            .post(app.url(&format!("/api/v1/channels/{channel}/messages")))
            .bearer_auth(&channel_token)
            .json(&serde_json::json!({
                "message_id": message_id, "from": "5215500001111", "text": "¿Siguen ahí?"
            }))
            .timeout(Duration::from_secs(15))
            .send()
    };
    let before = customer_message("wamid.outage-before").await.unwrap();
    assert_eq!(before.status(), StatusCode::CREATED);
    // Before the outage: some cancels have landed, and the instance follows
    // the change log (its LISTEN connection is idle after `LISTEN`), so it
    // has something to lose and to resynchronise.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let landed = app.scalar_i64(cancelled).await - cancelled_before;
        let listening = app
            .scalar_i64(
                "select count(*) from pg_stat_activity \
                 where state = 'idle' and query ilike 'listen %'",
            )
            .await;
        if landed >= 3 && listening >= 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "before the outage: {landed} cancels landed, {listening} listeners"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.down();

    // Down: a clear 503 page, /readyz fails, /healthz stays up, the table is not live.
    let page = app.get("/mensajes").await;
    assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(page.body.contains("La base de datos no está disponible"));
    assert_eq!(
        app.get("/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
    // A customer message is refused with 503, for the channel to retry.
    let during = customer_message("wamid.outage-during").await.unwrap();
    assert_eq!(during.status(), StatusCode::SERVICE_UNAVAILABLE);
    let mut offline = false;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !offline && Instant::now() < deadline {
        if let Some((event, _)) = stream.next(Duration::from_millis(500)).await {
            offline = event == "offline";
        }
    }
    assert!(offline, "viewers are told the table is not live");

    cluster.up();
    // Back: everything recovers by itself within a few seconds.
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.get("/readyz").await.status != StatusCode::OK {
        assert!(Instant::now() < deadline, "ready again without a restart");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut resynced = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !resynced && Instant::now() < deadline {
        if let Some((event, _)) = stream.next(Duration::from_millis(500)).await {
            resynced = event == "resync";
        }
    }
    assert!(
        resynced,
        "the LISTEN connection is back and viewers resynchronise"
    );
    assert_eq!(app.get("/mensajes").await.status, StatusCode::OK);
    // The channel's retry is recorded, once, in the conversation its first
    // message started.
    let retry = customer_message("wamid.outage-during").await.unwrap();
    assert_eq!(retry.status(), StatusCode::OK);
    assert_eq!(
        app.scalar_i64(
            "select count(*) from messages where message_id like 'wamid.outage-%' \
             and direction = 'inbound'"
        )
        .await,
        2
    );

    let results = load.await.unwrap();
    let succeeded: Vec<i64> = results
        .iter()
        .filter(|(_, s)| *s == Some(StatusCode::OK))
        .map(|(f, _)| *f)
        .collect();
    let failed = results
        .iter()
        .filter(|(_, s)| *s != Some(StatusCode::OK))
        .count();
    assert!(failed > 0, "some requests met the outage");
    assert!(!succeeded.is_empty());
    let cancelled = app
        .folios_where(
            "select folio from conversations where status = $1",
            "cancelled",
        )
        .await;
    for folio in &succeeded {
        assert!(
            cancelled.contains(folio),
            "a successful cancel of {folio} is in the database"
        );
    }
    let half = app
        .scalar_i64(
            "select count(*) from conversations c where \
             (c.status = 'cancelled') <> ((select count(*) from conversation_events e \
               where e.conversation_id = c.id and e.kind = 'cancelled') = 1)",
        )
        .await;
    assert_eq!(half, 0, "no half-applied transition, no duplicate history");
    app.store.close().await;
}
