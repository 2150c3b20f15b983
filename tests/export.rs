//! The CSV export under load and at the edges of a download: slow clients
//! cannot starve the database, a few exports run at once per person and per
//! instance (the next one is refused with a Spanish page, which a browser
//! shows), a download the client stops reading is dropped, and a download
//! in progress when the instance stops is finished before it exits. Both
//! backends; the tests that stop or configure the server run the real
//! `relevo` binary. (The CSV's content is checked in `tests/reports.rs`.)

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::process::RelevoProcess;
use common::webdriver::Browser;
use common::{
    ADMIN_EMAIL, ADMIN_PASSWORD, Backend, SUPER_EMAIL, SUPER_PASSWORD, TestApp, fresh_store,
    new_client, spawn_app,
};
use relevo::db::Store;
use relevo::domain::Role;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

on_both_backends!(
    eight_slow_downloads_leave_the_database_to_everyone_else,
    a_third_export_of_one_person_or_a_fifth_of_the_instance_is_refused_with_a_spanish_page,
    a_download_its_client_stops_reading_is_dropped_and_frees_its_place,
    a_download_in_progress_when_the_instance_stops_is_sent_whole,
);
on_both_backends!(browser: a_refused_export_shows_its_spanish_page_in_a_browser);

const EXPORT: &str = "/mensajes/exportar?estatus=todas";
const BUSY: &str = "Ya hay una exportación en curso";

/// Copies the conversations already there until there are at least
/// `at_least`, each copy with a long closure comment so the export is many
/// times larger than the sockets' buffers. One statement per backend.
async fn bulk_conversations(store: &Store, at_least: i64) {
    let padding = "Comentario largo de cierre para que el archivo pese. ".repeat(6);
    match store {
        Store::Sqlite(pools) => {
            let existing: i64 = sqlx::query_scalar("select count(*) from conversations")
                .fetch_one(&pools.read)
                .await
                .unwrap();
            let copies = at_least / existing + 1;
            sqlx::query(
                "with recursive n (i) as (select 1 union all select i + 1 from n where i < $1) \
                 insert into conversations (id, campaign_id, channel_id, contact_id, status, is_open, \
                   version, agent_id, started_at, last_activity_at, closed_at, closed_by, closer_kind, \
                   closure_category_id, closure_subcategory_id, closure_comment) \
                 select randomblob(16), c.campaign_id, c.channel_id, c.contact_id, c.status, c.is_open, \
                   c.version, c.agent_id, c.started_at, c.last_activity_at, c.closed_at, c.closed_by, \
                   c.closer_kind, c.closure_category_id, c.closure_subcategory_id, \
                   coalesce(c.closure_comment, '') || $2 \
                 from conversations c, n",
            )
            .bind(copies)
            .bind(&padding)
            .execute(&pools.write)
            .await
            .unwrap();
        }
        Store::Postgres(pg) => {
            let existing: i64 = sqlx::query_scalar("select count(*) from conversations")
                .fetch_one(&pg.pool)
                .await
                .unwrap();
            let copies = at_least / existing + 1;
            sqlx::query(
                "insert into conversations (id, campaign_id, channel_id, contact_id, status, is_open, \
                   version, agent_id, started_at, last_activity_at, closed_at, closed_by, closer_kind, \
                   closure_category_id, closure_subcategory_id, closure_comment) \
                 select gen_random_uuid(), c.campaign_id, c.channel_id, c.contact_id, c.status, c.is_open, \
                   c.version, c.agent_id, c.started_at, c.last_activity_at, c.closed_at, c.closed_by, \
                   c.closer_kind, c.closure_category_id, c.closure_subcategory_id, \
                   coalesce(c.closure_comment, '') || $2 \
                 from conversations c, generate_series(1, $1) n",
            )
            .bind(copies)
            .bind(&padding)
            .execute(&pg.pool)
            .await
            .unwrap();
        }
    }
}

/// CSV records in `bytes` (CRLF outside quotes ends one).
fn records(bytes: &[u8]) -> usize {
    let mut quoted = false;
    let mut count = 0;
    let mut previous = 0u8;
    for &b in bytes {
        match b {
            b'"' => quoted = !quoted,
            b'\n' if !quoted && previous == b'\r' => count += 1,
            _ => {}
        }
        previous = b;
    }
    count
}

/// A seeded database with at least `conversations` rows, and `relevo serve`
/// on it with `env`.
async fn started_with(
    backend: Backend,
    conversations: i64,
    env: &[(&str, &str)],
) -> Option<(TestApp, RelevoProcess, common::DbGuardHandle)> {
    let (store, url, guard) = fresh_store(backend).await?;
    relevo::cli::seed_demo(&store).await.expect("seed");
    bulk_conversations(&store, conversations).await;
    let process = RelevoProcess::start(&url, env).await;
    let app = TestApp::attach(process.port, store, backend, url);
    Some((app, process, guard))
}

async fn a_download_in_progress_when_the_instance_stops_is_sent_whole(backend: Backend) {
    let env = [("RUST_LOG", "info")];
    let Some((app, mut process, _guard)) = started_with(backend, 20_000, &env).await else {
        return;
    };
    app.login(SUPER_EMAIL, SUPER_PASSWORD).await;
    let expected = app.scalar_i64("select count(*) from conversations").await as usize;
    let mut response = app.client.get(app.url(EXPORT)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = Vec::new();
    while body.len() < 64 * 1024 {
        let chunk = response.chunk().await.unwrap().expect("more than 64 KB");
        body.extend_from_slice(&chunk);
    }
    // The instance is told to stop while the download is far from done…
    process.sigterm();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // …and the rest still arrives, whole.
    let started = Instant::now();
    while let Some(chunk) = response
        .chunk()
        .await
        .expect("the download goes on after SIGTERM")
    {
        body.extend_from_slice(&chunk);
        assert!(started.elapsed() < Duration::from_secs(30), "in time");
    }
    assert_eq!(records(&body), expected + 1, "the header and every row");
    let exit = process.wait(Duration::from_secs(35)).await;
    assert!(exit.success(), "exit code 0 after SIGTERM, got {exit:?}");
    // The download counted as a request in flight: the workers were
    // stopped only once it had ended.
    let logs = process.stdout().await;
    let at = |message: &str| {
        logs.find(message)
            .unwrap_or_else(|| panic!("{message:?} is not in the log:\n{logs}"))
    };
    assert!(
        at("csv download ended") < at("stopping the workers"),
        "the workers were stopped before the download ended:\n{logs}"
    );
}

/// A client signed in as `email`.
async fn signed_in(app: &TestApp, email: &str, password: &str) -> reqwest::Client {
    let client = new_client();
    let page = app.login_with(&client, email, password).await;
    assert_eq!(
        page.location.as_deref(),
        Some("/mensajes"),
        "{email} signs in"
    );
    client
}

/// Pooled connections in use (open minus idle, every pool), from `/metrics`.
async fn connections_in_use(app: &TestApp) -> i64 {
    let text = app.get("/metrics").await.body;
    let value = |line: &str| -> i64 {
        line.rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("a gauge value in {line:?}"))
    };
    text.lines()
        .filter(|l| l.starts_with("relevo_db_pool_connections{"))
        .map(|l| {
            if l.contains("state=\"open\"") {
                value(l)
            } else {
                -value(l)
            }
        })
        .sum()
}

/// Reads `response` at about 1 KB/s until aborted.
fn read_slowly(mut response: reqwest::Response) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok(Some(chunk)) = response.chunk().await {
            tokio::time::sleep(Duration::from_millis(chunk.len() as u64)).await;
        }
    })
}

/// One GET timed: (status, seconds).
async fn timed(app: &TestApp, client: &reqwest::Client, path: &str) -> (StatusCode, f64) {
    let started = Instant::now();
    let response = client
        .get(app.url(path))
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .unwrap();
    let status = response.status();
    response.bytes().await.unwrap();
    (status, started.elapsed().as_secs_f64())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

async fn eight_slow_downloads_leave_the_database_to_everyone_else(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    bulk_conversations(&app.store, 20_000).await;
    let password = "caballo-bateria-grapa-7";
    for email in ["ana@relevo.demo", "beto@relevo.demo"] {
        app.create_user(email, Role::Admin, password, &["Ventas Hogar"])
            .await;
    }
    let mut people = vec![
        signed_in(&app, SUPER_EMAIL, SUPER_PASSWORD).await,
        signed_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await,
    ];
    for email in ["ana@relevo.demo", "beto@relevo.demo"] {
        people.push(signed_in(&app, email, password).await);
    }
    let watcher = signed_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let anonymous = new_client();
    // The usual times, and the connections in use, before any download.
    let mut usual = (Vec::new(), Vec::new());
    for _ in 0..5 {
        usual.0.push(timed(&app, &anonymous, "/readyz").await.1);
        usual.1.push(timed(&app, &watcher, "/mensajes").await.1);
    }
    let in_use_before = connections_in_use(&app).await;

    // Eight downloads at once, two per person, each read at 1 KB/s.
    let requests = people
        .iter()
        .flat_map(|client| [client.clone(), client.clone()])
        .map(|client| {
            let url = app.url(EXPORT);
            tokio::spawn(async move { client.get(url).send().await.unwrap() })
        })
        .collect::<Vec<_>>();
    let mut readers = Vec::new();
    for request in requests {
        let response = request.await.unwrap();
        if response.status() == StatusCode::OK {
            readers.push(read_slowly(response));
        }
    }

    // While they trickle, the database serves everyone else as usual.
    let mut during = (Vec::new(), Vec::new());
    let mut in_use = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(6);
    while Instant::now() < deadline {
        let (status, seconds) = timed(&app, &anonymous, "/readyz").await;
        assert_eq!(status, StatusCode::OK, "/readyz during the downloads");
        during.0.push(seconds);
        let (status, seconds) = timed(&app, &watcher, "/mensajes").await;
        assert_eq!(status, StatusCode::OK, "/mensajes during the downloads");
        during.1.push(seconds);
        in_use.push(connections_in_use(&app).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "{backend:?}: /readyz median {:.4} s before, {:.4} s during (max {:.4}); \
         /mensajes median {:.4} s before, {:.4} s during (max {:.4}); in use {in_use_before} before, {in_use:?} during",
        median(usual.0.clone()),
        median(during.0.clone()),
        during.0.iter().copied().fold(0.0, f64::max),
        median(usual.1.clone()),
        median(during.1.clone()),
        during.1.iter().copied().fold(0.0, f64::max),
    );
    for (what, before, during) in [
        ("/readyz", &usual.0, &during.0),
        ("/mensajes", &usual.1, &during.1),
    ] {
        let usual_max = before.iter().copied().fold(0.0, f64::max);
        for seconds in during {
            assert!(
                *seconds <= (usual_max * 5.0).max(1.0),
                "{what} took {seconds:.3} s during the downloads (usually {usual_max:.3} s)"
            );
        }
    }
    // No download waiting on its client holds a pooled connection.
    let least = in_use.iter().copied().min().unwrap();
    assert!(
        least <= in_use_before,
        "connections in use: {in_use_before} before, {in_use:?} during"
    );
    // A few run at once; the others were refused.
    assert_eq!(readers.len(), 4, "four downloads at once per instance");

    // Once the slow clients hang up, their places are free again.
    for reader in &readers {
        reader.abort();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = people[0].get(app.url(EXPORT)).send().await.unwrap();
        if response.status() == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "the places were not freed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn a_third_export_of_one_person_or_a_fifth_of_the_instance_is_refused_with_a_spanish_page(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    bulk_conversations(&app.store, 20_000).await;
    let admin = signed_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let open = |client: &reqwest::Client, path: &str| {
        let request = client.get(app.url(path)).send();
        async move { request.await.unwrap() }
    };
    // Two downloads of one person, neither read yet.
    let first = open(&admin, EXPORT).await;
    let second = open(&admin, EXPORT).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(second.status(), StatusCode::OK);
    // The third, from either page, is refused with a page that says why.
    for path in [EXPORT, "/reportes/exportar"] {
        let third = app.get_with(&admin, path).await;
        assert_eq!(third.status, StatusCode::TOO_MANY_REQUESTS, "{path}");
        assert!(third.body.contains(BUSY), "{}", third.body);
        assert!(
            third.body.contains("Volver a Mensajes"),
            "an error page inside the layout"
        );
        assert!(!third.body.contains("Folio,"), "no CSV");
    }
    // Someone else may still export, up to the instance's limit.
    let chief = signed_in(&app, SUPER_EMAIL, SUPER_PASSWORD).await;
    let third = open(&chief, EXPORT).await;
    let fourth = open(&chief, EXPORT).await;
    assert_eq!(third.status(), StatusCode::OK);
    assert_eq!(fourth.status(), StatusCode::OK);
    app.create_user(
        "ana@relevo.demo",
        Role::Admin,
        "caballo-bateria-grapa-7",
        &["Ventas Hogar"],
    )
    .await;
    let ana = signed_in(&app, "ana@relevo.demo", "caballo-bateria-grapa-7").await;
    let fifth = app.get_with(&ana, EXPORT).await;
    assert_eq!(fifth.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(fifth.body.contains(BUSY), "{}", fifth.body);
    // A download that ends frees its place: the person may export again.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let again = open(&admin, EXPORT).await;
        if again.status() == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "the place was not freed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop((second, third, fourth));
}

async fn a_refused_export_shows_its_spanish_page_in_a_browser(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    bulk_conversations(&app.store, 20_000).await;
    let browser = Browser::start().await;
    browser
        .login(&app.address, ADMIN_EMAIL, ADMIN_PASSWORD)
        .await;
    browser.find("a.bulk-export").await;
    // The same person has two downloads running in another window.
    let elsewhere = signed_in(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let mut running = Vec::new();
    for _ in 0..2 {
        let response = elsewhere.get(app.url(EXPORT)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        running.push(response);
    }
    // "Exportar CSV" opens the page that says why, not a failed download.
    let link = browser.find("a.bulk-export").await;
    browser.click(&link).await;
    browser
        .wait_until(
            "the page saying an export is running",
            &format!("return document.body.textContent.indexOf('{BUSY}') >= 0;"),
        )
        .await;
    assert!(browser.current_url().await.contains("/mensajes/exportar"));
    drop(running);
    browser.quit().await;
}

/// A download over a bare socket with a small receive buffer, whose client
/// reads the head and then nothing unless asked.
struct RawDownload {
    stream: tokio::net::TcpStream,
    /// The `Content-Length` announced.
    length: usize,
    /// Body bytes read so far.
    received: usize,
}

impl RawDownload {
    async fn open(port: u16, path: &str, cookie: &str) -> RawDownload {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut stream = socket.connect(([127, 0, 0, 1], port).into()).await.unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "a whole head");
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .and_then(|v| v.trim().parse().ok())
            .expect("a content-length");
        RawDownload {
            stream,
            length,
            received: 0,
        }
    }

    /// Reads what is left until the connection ends; `true` if it ended
    /// (closed or reset) within `limit`.
    async fn read_rest(&mut self, limit: Duration) -> bool {
        let mut buffer = vec![0u8; 64 * 1024];
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buffer)).await {
                Err(_) => return false,
                Ok(Ok(0) | Err(_)) => return true,
                Ok(Ok(n)) => self.received += n,
            }
        }
    }
}

async fn a_download_its_client_stops_reading_is_dropped_and_frees_its_place(backend: Backend) {
    let env = [("RELEVO_UNREAD_RESPONSE_TIMEOUT_MS", "1000")];
    let Some((app, _process, _guard)) = started_with(backend, 20_000, &env).await else {
        return;
    };
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let client = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();
    app.login_with(&client, SUPER_EMAIL, SUPER_PASSWORD).await;
    let cookie = reqwest::cookie::CookieStore::cookies(&*jar, &app.url("/").parse().unwrap())
        .expect("a session cookie");
    let cookie = cookie.to_str().unwrap();
    // Two downloads whose clients stop reading after the head take the
    // person's two places…
    let mut stalled = [
        RawDownload::open(app.port, EXPORT, cookie).await,
        RawDownload::open(app.port, EXPORT, cookie).await,
    ];
    // …until, unread for the timeout (1 s here, 30 s by default), they are
    // dropped and their places are free again.
    let started = Instant::now();
    loop {
        let again = client.get(app.url(EXPORT)).send().await.unwrap();
        if again.status() == StatusCode::OK {
            break;
        }
        assert_eq!(again.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the stalled downloads still hold their places"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!(
        "{backend:?}: places free {:.1} s after the second stalled download started",
        started.elapsed().as_secs_f64()
    );
    // The kernel aborts each stalled connection at its own zero-window
    // probe after the timeout, so the second may still be alive when the
    // first has freed a place; reading it now would let it finish. Both
    // have been unread for five times the timeout once this sleep ends.
    tokio::time::sleep_until((started + Duration::from_secs(5)).into()).await;
    for download in &mut stalled {
        assert!(
            download.read_rest(Duration::from_secs(10)).await,
            "the connection was closed"
        );
        assert!(
            download.received < download.length,
            "cut short: {} of {} bytes",
            download.received,
            download.length
        );
    }
}
