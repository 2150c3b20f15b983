//! Test harness: the real application on port 0 against a fresh database of
//! either backend, seeded with the demo data set, driven over HTTP by a
//! cookie-keeping client.
//!
//! SQLite runs in a temporary file. PostgreSQL runs in a fresh database
//! created on `TEST_POSTGRES_URL`, or without it on a throwaway cluster the
//! test binary starts itself ([`postgres`]), and dropped afterwards.
//!
//! A half this machine cannot run is never reported as passed: `build.rs`
//! detects PostgreSQL and Chromium and [`on_both_backends!`] marks what cannot
//! run `#[ignore]` with the reason, so `cargo test` lists it as ignored. With
//! `CI=true` nothing is ignored and a missing program fails its tests.

#![allow(dead_code)]

pub mod postgres;
pub mod process;
pub mod views;
pub mod webdriver;

use std::sync::Once;

use relevo::app::Application;
use relevo::config::Settings;
use relevo::db::{NewUser, Store, Ts};
use relevo::domain::Role;
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use uuid::Uuid;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Declares one test per backend: `mod NAME { fn sqlite(); fn postgres(); }`.
///
/// `on_both_backends!(browser: NAME, …)` declares tests that also drive
/// Chromium. A half whose database or browser this machine lacks is ignored
/// with the reason (see `build.rs`); with `CI=true` none is.
#[macro_export]
macro_rules! on_both_backends {
    (browser: $($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(
                    not(relevo_browser),
                    ignore = "Chromium not available: install chromium and chromium-driver (/usr/bin)"
                )]
                async fn sqlite() {
                    super::$name($crate::common::Backend::Sqlite).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(
                    all(not(relevo_postgres), relevo_browser),
                    ignore = "PostgreSQL not available: set TEST_POSTGRES_URL or install postgresql"
                )]
                #[cfg_attr(
                    all(relevo_postgres, not(relevo_browser)),
                    ignore = "Chromium not available: install chromium and chromium-driver (/usr/bin)"
                )]
                #[cfg_attr(
                    all(not(relevo_postgres), not(relevo_browser)),
                    ignore = "PostgreSQL and Chromium not available: set TEST_POSTGRES_URL or install postgresql; install chromium and chromium-driver"
                )]
                async fn postgres() {
                    super::$name($crate::common::Backend::Postgres).await;
                }
            }
        )+
    };
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::common::Backend::Sqlite).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(
                    not(relevo_postgres),
                    ignore = "PostgreSQL not available: set TEST_POSTGRES_URL or install postgresql"
                )]
                async fn postgres() {
                    super::$name($crate::common::Backend::Postgres).await;
                }
            }
        )+
    };
}

pub const ADMIN_EMAIL: &str = relevo::services::demo::ADMIN_EMAIL;
pub const ADMIN_PASSWORD: &str = relevo::services::demo::ADMIN_PASSWORD;
pub const SUPER_EMAIL: &str = relevo::services::demo::SUPER_ADMIN_EMAIL;
pub const SUPER_PASSWORD: &str = relevo::services::demo::SUPER_ADMIN_PASSWORD;

/// A running application with its database.
pub struct TestApp {
    pub address: String,
    /// The database this instance serves.
    pub database_url: String,
    pub port: u16,
    pub store: Store,
    pub backend: Backend,
    pub client: reqwest::Client,
    /// Keeps the SQLite file alive / names the Postgres database to drop.
    guard: DbGuard,
}

enum DbGuard {
    None,
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl Drop for DbGuard {
    fn drop(&mut self) {
        if let DbGuard::Postgres { admin_url, name } = self {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Dropping needs async I/O; do it on a runtime of its own so it
            // works from any test's Drop.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(async move {
                    if let Ok(pool) = sqlx::PgPool::connect(&admin_url).await {
                        let sql = format!("drop database if exists \"{name}\" with (force)");
                        let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await;
                        pool.close().await;
                    }
                });
            })
            .join();
        }
    }
}

fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var("TEST_LOG").is_ok() {
            relevo::telemetry::init();
        }
    });
}

/// Whether tests must not skip (CI).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A fresh, migrated, empty database of `backend`.
///
/// Always `Some`: a PostgreSQL half that cannot run is ignored before it
/// starts (see [`on_both_backends!`]), and one forced to run without a server
/// panics with the reason. The `Option` stays so the many call sites keep
/// their shape.
pub async fn fresh_store(backend: Backend) -> Option<(Store, String, DbGuardHandle)> {
    let (store, url, guard) = fresh_database(backend).await;
    store.migrate().await.expect("migrate");
    Some((store, url, guard))
}

/// A fresh database of `backend` without any migration applied.
pub async fn fresh_database(backend: Backend) -> (Store, String, DbGuardHandle) {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite:{}", dir.path().join("relevo.db").display());
            let store = Store::connect(&url).await.expect("open sqlite");
            (store, url, DbGuardHandle(DbGuard::Sqlite(dir)))
        }
        Backend::Postgres => {
            // Starting the throwaway cluster blocks (initdb, then polling).
            let base = tokio::task::spawn_blocking(postgres::server_url)
                .await
                .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
            let name = format!("relevo_test_{}", Uuid::new_v4().simple());
            let admin = sqlx::PgPool::connect(&base)
                .await
                .expect("connect to the PostgreSQL server");
            sqlx::query(sqlx::AssertSqlSafe(format!("create database \"{name}\"")))
                .execute(&admin)
                .await
                .expect("create test database");
            admin.close().await;
            let url = with_database(&base, &name);
            let store = Store::connect(&url).await.expect("open postgres");
            (
                store,
                url,
                DbGuardHandle(DbGuard::Postgres {
                    admin_url: base,
                    name,
                }),
            )
        }
    }
}

/// Owns the database's lifetime (opaque to tests).
pub struct DbGuardHandle(DbGuard);

/// `base` with its database name replaced by `name`.
fn with_database(base: &str, name: &str) -> String {
    let (without_query, query) = match base.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (base, None),
    };
    let scheme_end = without_query.find("://").map_or(0, |i| i + 3);
    let prefix = match without_query[scheme_end..].find('/') {
        Some(slash) => &without_query[..scheme_end + slash],
        None => without_query,
    };
    match query {
        Some(q) => format!("{prefix}/{name}?{q}"),
        None => format!("{prefix}/{name}"),
    }
}

/// Starts the application on a fresh database seeded with the demo data.
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, true).await
}

/// Starts the application; `seed` adds the demo data set.
pub async fn spawn_app_with(backend: Backend, seed: bool) -> Option<TestApp> {
    spawn_app_in_zone(backend, seed, chrono_tz::America::Mexico_City).await
}

/// Starts the application with `timezone` as its `RELEVO_TIMEZONE`.
pub async fn spawn_app_in_zone(
    backend: Backend,
    seed: bool,
    timezone: chrono_tz::Tz,
) -> Option<TestApp> {
    spawn_app_configured(backend, seed, |settings| settings.timezone = timezone).await
}

/// Starts the application with the demo data set (if `seed`) and the test
/// settings as `configure` changes them.
pub async fn spawn_app_configured(
    backend: Backend,
    seed: bool,
    configure: impl FnOnce(&mut Settings),
) -> Option<TestApp> {
    init_logs();
    let (store, url, guard) = fresh_store(backend).await?;
    if seed {
        relevo::cli::seed_demo(&store)
            .await
            .expect("seed demo data");
    }
    let mut settings = Settings::on_free_port(&url);
    configure(&mut settings);
    let app = Application::build_with_store(settings, store.clone())
        .await
        .expect("build application");
    let port = app.port();
    tokio::spawn(app.run_until_stopped());
    Some(TestApp {
        address: format!("http://127.0.0.1:{port}"),
        database_url: url,
        port,
        store,
        backend,
        client: new_client(),
        guard: guard.0,
    })
}

/// A cookie-keeping client that does not follow redirects (tests look at them).
pub fn new_client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .no_proxy()
        .build()
        .expect("http client")
}

/// The value of the first input named `name` in `html`.
pub fn field_value(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} field in the page"))
        + marker.len();
    let end = html[start..].find('"').expect("end of the value") + start;
    html[start..end].to_owned()
}

/// The value of the first `name="_csrf"` hidden input in `html`.
pub fn csrf_in(html: &str) -> String {
    field_value(html, "_csrf")
}

/// The first non-empty option of the `<select id="…">` in `html`.
pub fn first_option(html: &str, select_id: &str) -> String {
    let select = html
        .find(&format!("id=\"{select_id}\""))
        .unwrap_or_else(|| panic!("no select {select_id}"));
    html[select..]
        .split("<option value=\"")
        .skip(1)
        .map(|rest| &rest[..rest.find('"').expect("end of option value")])
        .find(|value| !value.is_empty())
        .expect("a real option")
        .to_owned()
}

/// Folios of the table rows in a Mensajes page, in order.
pub fn folios_in(html: &str) -> Vec<i64> {
    html.split("<tr id=\"conversacion-")
        .skip(1)
        .filter_map(|rest| rest.split('"').next()?.parse().ok())
        .collect()
}

/// The `href` of the link with `rel="next"` / `rel="prev"`, unescaped.
pub fn rel_link(html: &str, rel: &str) -> Option<String> {
    let marker = format!("rel=\"{rel}\" href=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].replace("&amp;", "&").replace("&#38;", "&"))
}

pub struct Page {
    pub status: StatusCode,
    pub body: String,
    pub location: Option<String>,
    pub headers: reqwest::header::HeaderMap,
}

impl TestApp {
    /// A handle on another running instance (its database is owned elsewhere).
    pub fn attach(port: u16, store: Store, backend: Backend, database_url: String) -> TestApp {
        TestApp {
            address: format!("http://127.0.0.1:{port}"),
            database_url,
            port,
            store,
            backend,
            client: new_client(),
            guard: DbGuard::None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// GET with this app's client.
    pub async fn get(&self, path: &str) -> Page {
        self.get_with(&self.client, path).await
    }

    pub async fn get_with(&self, client: &reqwest::Client, path: &str) -> Page {
        let response = client.get(self.url(path)).send().await.expect("GET");
        page(response).await
    }

    /// POSTs a form (pairs are sent as given; add `_csrf` yourself).
    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Page {
        self.post_form_with(&self.client, path, form).await
    }

    pub async fn post_form_with(
        &self,
        client: &reqwest::Client,
        path: &str,
        form: &[(&str, &str)],
    ) -> Page {
        let response = client
            .post(self.url(path))
            .form(form)
            .send()
            .await
            .expect("POST");
        page(response).await
    }

    /// Calls the integration API with an optional bearer token and JSON body;
    /// returns the status and the JSON answer (panics if it is not JSON).
    pub async fn api_call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (StatusCode, serde_json::Value) {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let text = response.text().await.expect("body");
        let value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"));
        (status, value)
    }

    /// Fills and posts the login form with `client`.
    pub async fn login_with(&self, client: &reqwest::Client, email: &str, password: &str) -> Page {
        let form = self.get_with(client, "/login").await;
        let csrf = csrf_in(&form.body);
        self.post_form_with(
            client,
            "/login",
            &[("_csrf", &csrf), ("email", email), ("password", password)],
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Page {
        self.login_with(&self.client, email, password).await
    }

    /// Logs in and asserts it worked.
    pub async fn login_as_admin(&self) {
        let page = self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
        assert_eq!(
            page.location.as_deref(),
            Some("/mensajes"),
            "admin login failed"
        );
    }

    pub async fn login_as_super(&self) {
        let page = self.login(SUPER_EMAIL, SUPER_PASSWORD).await;
        assert_eq!(
            page.location.as_deref(),
            Some("/mensajes"),
            "super login failed"
        );
    }

    /// Cancels conversation `folio` as `client` through the form without
    /// JavaScript, with the first category offered (a second session acting).
    pub async fn cancel_through_form(&self, client: &reqwest::Client, folio: i64) -> Page {
        let path = format!("/mensajes/{folio}/acciones");
        let form = self.get_with(client, &path).await.body;
        let category = first_option(&form, "accion-categoria");
        self.post_form_with(
            client,
            &path,
            &[
                ("_csrf", &csrf_in(&form)),
                ("version", &field_value(&form, "version")),
                ("accion", "cancelar"),
                ("categoria", &category),
            ],
        )
        .await
    }

    /// Creates a user with a password through the Store.
    pub async fn create_user(
        &self,
        email: &str,
        role: Role,
        password: &str,
        campaigns: &[&str],
    ) -> Uuid {
        let hash = relevo::services::auth::password::hash(password.to_owned())
            .await
            .expect("hash");
        self.store
            .create_user(
                &NewUser {
                    email: email.to_owned(),
                    name: format!("Usuario {email}"),
                    role,
                    password_hash: Some(hash),
                    campaigns: campaigns.iter().map(|c| (*c).to_owned()).collect(),
                },
                Ts::now(),
            )
            .await
            .expect("create user")
    }

    /// Runs a scalar query on whichever backend this is.
    /// Moves conversation `folio` (in ICR) to Agentes Desconectados as the
    /// router does, through the domain rules and the Store.
    pub async fn hand_off_to_agents_offline(&self, folio: i64) {
        let t = self.agents_offline_handoff(folio).await;
        self.store
            .apply_transition(&t)
            .await
            .unwrap()
            .expect("no conflict");
    }

    /// Conversation `folio` as the console shows it (it must exist).
    pub async fn row(&self, folio: i64) -> relevo::db::ConversationRow {
        self.store
            .conversation(&relevo::domain::Scope::All, folio)
            .await
            .unwrap()
            .expect("the conversation exists")
    }

    /// Hands open conversation `folio` to `agent` as the demo's
    /// Administrador would, through the domain rules and the Store.
    pub async fn reassign(&self, folio: i64, agent: Uuid) {
        use relevo::domain::conversation::{HandoffOutcome, return_to_router};
        let admin = self
            .uuids_where("select id from users where email = $1", ADMIN_EMAIL)
            .await[0];
        let t = return_to_router(
            &self.row(folio).await.to_domain(),
            admin,
            HandoffOutcome::Assign(agent),
            "otra persona",
            chrono::Utc::now(),
        )
        .unwrap();
        self.store
            .apply_transition(&t)
            .await
            .unwrap()
            .expect("no conflict");
    }

    /// The hand-off of conversation `folio` to "no agents online", as the
    /// router computes it from the conversation as it now is (not applied).
    pub async fn agents_offline_handoff(&self, folio: i64) -> relevo::domain::Transition {
        use relevo::domain::conversation::{HandoffOutcome, handoff};
        let row = self.row(folio).await;
        handoff(
            &row.to_domain(),
            HandoffOutcome::AgentsOffline,
            chrono::Utc::now(),
        )
        .unwrap()
    }

    pub async fn scalar_i64(&self, sql: &'static str) -> i64 {
        self.scalar_i64_of(sql.to_owned()).await
    }

    /// [`TestApp::scalar_i64`] for a statement built by the test.
    pub async fn scalar_i64_of(&self, sql: String) -> i64 {
        let sql = sqlx::AssertSqlSafe(sql);
        match &self.store {
            Store::Sqlite(p) => sqlx::query_scalar(sql)
                .fetch_one(&p.read)
                .await
                .expect("query"),
            Store::Postgres(relevo::db::PgStore { pool: p, .. }) => {
                sqlx::query_scalar(sql).fetch_one(p).await.expect("query")
            }
        }
    }

    /// Folios matching `sql` (a query selecting one bigint column, binding `$1` to `arg`).
    pub async fn folios_where(&self, sql: &'static str, arg: &str) -> Vec<i64> {
        match &self.store {
            Store::Sqlite(p) => sqlx::query_scalar(sql)
                .bind(arg)
                .fetch_all(&p.read)
                .await
                .expect("query"),
            Store::Postgres(relevo::db::PgStore { pool: p, .. }) => sqlx::query_scalar(sql)
                .bind(arg)
                .fetch_all(p)
                .await
                .expect("query"),
        }
    }

    /// Ids matching `sql` (one uuid column, `$1` bound to `arg`).
    pub async fn uuids_where(&self, sql: &'static str, arg: &str) -> Vec<Uuid> {
        match &self.store {
            Store::Sqlite(p) => sqlx::query_scalar(sql)
                .bind(arg)
                .fetch_all(&p.read)
                .await
                .expect("query"),
            Store::Postgres(relevo::db::PgStore { pool: p, .. }) => sqlx::query_scalar(sql)
                .bind(arg)
                .fetch_all(p)
                .await
                .expect("query"),
        }
    }

    /// Runs a statement with one text argument (test set-up only).
    pub async fn execute(&self, sql: &'static str, arg: &str) {
        match &self.store {
            Store::Sqlite(p) => {
                sqlx::query(sql)
                    .bind(arg)
                    .execute(&p.write)
                    .await
                    .expect("statement");
            }
            Store::Postgres(relevo::db::PgStore { pool: p, .. }) => {
                sqlx::query(sql)
                    .bind(arg)
                    .execute(p)
                    .await
                    .expect("statement");
            }
        }
    }

    /// `id` as a literal of the backend's SQL (a blob on SQLite).
    pub fn uuid_literal(&self, id: Uuid) -> String {
        match self.backend {
            Backend::Sqlite => format!("x'{}'", id.simple()),
            Backend::Postgres => format!("'{id}'"),
        }
    }

    /// The backend's SQL for a new random id (test set-up statements).
    pub fn new_id_sql(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "randomblob(16)",
            Backend::Postgres => "gen_random_uuid()",
        }
    }

    /// Adds `count` customers named "Broadwell 1" … "Broadwell N" (codes
    /// "bw-1" …) on the channel of conversation `folio`, without
    /// conversations (test set-up: a name many customers share).
    pub async fn add_broadwell_customers(&self, folio: i64, count: i64) {
        self.execute_sql(format!(
            "with recursive n(i) as (select 1 union all select i + 1 from n where i < {count}) \
             insert into contacts (id, channel_id, external_id, name, name_key, created_at) \
             select {id}, c.channel_id, 'bw-' || n.i, 'Broadwell ' || n.i, \
             'broadwell ' || n.i, c.started_at from conversations c, n where c.folio = {folio}",
            id = self.new_id_sql(),
        ))
        .await;
    }

    /// Runs a statement built by the test, without arguments (set-up only).
    pub async fn execute_sql(&self, sql: String) {
        let sql = sqlx::AssertSqlSafe(sql);
        match &self.store {
            Store::Sqlite(p) => {
                sqlx::query(sql).execute(&p.write).await.expect("statement");
            }
            Store::Postgres(relevo::db::PgStore { pool: p, .. }) => {
                sqlx::query(sql).execute(p).await.expect("statement");
            }
        }
    }

    /// Sets conversation `folio`'s last activity (test set-up only).
    pub async fn set_activity(&self, folio: i64, at: relevo::db::Ts) {
        // An earlier start too, if need be: activity is never earlier than
        // the start (`db::conversations`, "Activity never goes back").
        let sql = "update conversations set last_activity_at = $1, \
                   started_at = case when started_at > $1 then $1 else started_at end \
                   where folio = $2";
        match &self.store {
            Store::Sqlite(p) => {
                sqlx::query(sql)
                    .bind(at)
                    .bind(folio)
                    .execute(&p.write)
                    .await
                    .expect("statement");
            }
            Store::Postgres(relevo::db::PgStore { pool: p, .. }) => {
                sqlx::query(sql)
                    .bind(at)
                    .bind(folio)
                    .execute(p)
                    .await
                    .expect("statement");
            }
        }
    }

    /// Runs a statement binding one uuid (test set-up only).
    pub async fn execute_id(&self, sql: &'static str, id: Uuid) {
        match &self.store {
            Store::Sqlite(p) => {
                sqlx::query(sql)
                    .bind(id)
                    .execute(&p.write)
                    .await
                    .expect("statement");
            }
            Store::Postgres(relevo::db::PgStore { pool: p, .. }) => {
                sqlx::query(sql)
                    .bind(id)
                    .execute(p)
                    .await
                    .expect("statement");
            }
        }
    }

    /// Runs a statement binding a timestamp and a uuid (test set-up only).
    pub async fn execute_at(&self, sql: &'static str, at: relevo::db::Ts, id: Uuid) {
        match &self.store {
            Store::Sqlite(p) => {
                sqlx::query(sql)
                    .bind(at)
                    .bind(id)
                    .execute(&p.write)
                    .await
                    .expect("statement");
            }
            Store::Postgres(relevo::db::PgStore { pool: p, .. }) => {
                sqlx::query(sql)
                    .bind(at)
                    .bind(id)
                    .execute(p)
                    .await
                    .expect("statement");
            }
        }
    }

    /// Campaign id by name.
    pub async fn campaign_id(&self, name: &str) -> Uuid {
        self.store
            .campaign_id_by_name(name)
            .await
            .expect("query")
            .expect("campaign exists")
    }
}

/// Writes queued behind the writer so far: SQLite's group commit
/// (messages and transitions) or PostgreSQL's delivery lanes (messages).
pub fn writes_queued(store: &Store) -> u64 {
    match store {
        Store::Sqlite(pools) => pools.group_commit_queued_total(),
        Store::Postgres(pg) => pg.deliveries_queued_total(),
    }
}

/// Waits (at most 20 s) until at least `total` writes have been queued
/// (see [`writes_queued`]): the readiness signal of tests that hold the
/// writer so that writes queue up behind it.
pub async fn until_writes_queued(store: &Store, total: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while writes_queued(store) < total {
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {total} writes queued",
            writes_queued(store)
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
}

async fn page(response: reqwest::Response) -> Page {
    let status = response.status();
    let headers = response.headers().clone();
    let location = headers
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.text().await.expect("body");
    Page {
        status,
        body,
        location,
        headers,
    }
}

/// A raw Server-Sent Events reader, to assert on exactly what a viewer gets.
pub struct SseReader {
    response: reqwest::Response,
    buffer: String,
}

/// One event of a stream: (event name, data).
pub type SseEvent = (String, String);

impl SseReader {
    /// Opens `path` as a stream with `client`'s session.
    pub async fn open(app: &TestApp, client: &reqwest::Client, path: &str) -> SseReader {
        let response = client
            .get(app.url(path))
            .header("Accept", "text/event-stream")
            .send()
            .await
            .expect("open stream");
        assert_eq!(response.status(), StatusCode::OK, "stream {path}");
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        SseReader {
            response,
            buffer: String::new(),
        }
    }

    /// The next event (comments skipped), or `None` if none arrives in `wait`.
    pub async fn next(&mut self, wait: std::time::Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let mut event = String::from("message");
                let mut data = String::new();
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        event = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push_str(v);
                    }
                }
                if frame.lines().all(|l| l.starts_with(':') || l.is_empty()) {
                    continue;
                }
                return Some((event, data));
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .ok()?
                .ok()??;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Every event that arrives within `wait`.
    pub async fn collect(&mut self, wait: std::time::Duration) -> Vec<SseEvent> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut events = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return events;
            }
            match self.next(left).await {
                Some(event) => events.push(event),
                None => return events,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn flag(name: &str) -> bool {
        std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
    }

    /// Guards the skip rules themselves (compiled into every test binary):
    /// a half is ignored only when this machine really cannot run it, and
    /// under `CI=true` none is. Fails if `build.rs` stops detecting an
    /// installed PostgreSQL or Chromium, or if a binary built outside CI is
    /// run with `CI=true` (it would silently ignore what CI must run).
    #[test]
    fn a_half_is_ignored_only_when_it_cannot_run_and_never_in_ci() {
        let built_for_ci = env!("RELEVO_TEST_BUILT_FOR_CI") == "1";
        let url = std::env::var("TEST_POSTGRES_URL").is_ok_and(|v| !v.is_empty());
        let server = super::postgres::server_bin().is_some();
        let chromium =
            Path::new("/usr/bin/chromium").exists() && Path::new("/usr/bin/chromedriver").exists();
        if super::in_ci() {
            assert!(
                built_for_ci,
                "this test binary was built without CI=true: build it with `CI=true cargo test`"
            );
            let halves = [
                ("relevo_postgres", cfg!(relevo_postgres)),
                ("relevo_postgres_server", cfg!(relevo_postgres_server)),
                ("relevo_browser", cfg!(relevo_browser)),
            ];
            assert!(
                halves.iter().all(|(_, enabled)| *enabled),
                "with CI=true no test half may be ignored: {halves:?}"
            );
            assert!(
                url || server,
                "CI needs TEST_POSTGRES_URL or postgresql installed"
            );
            assert!(
                server,
                "CI needs PostgreSQL's server programs (tests/outage.rs)"
            );
            assert!(
                chromium,
                "CI needs /usr/bin/chromium and /usr/bin/chromedriver"
            );
            return;
        }
        assert!(!built_for_ci, "built with CI=true but run without it");
        let no_postgres = flag("RELEVO_TEST_NO_POSTGRES");
        assert_eq!(
            cfg!(relevo_postgres),
            !no_postgres && (url || server),
            "the PostgreSQL halves' availability as detected at build time"
        );
        assert_eq!(
            cfg!(relevo_postgres_server),
            !no_postgres && server,
            "the PostgreSQL server programs as detected at build time"
        );
        assert_eq!(
            cfg!(relevo_browser),
            !flag("RELEVO_TEST_NO_BROWSER") && chromium,
            "Chromium as detected at build time"
        );
    }

    #[test]
    fn the_database_name_is_replaced_in_a_url() {
        assert_eq!(
            super::with_database("postgres://root@127.0.0.1:5432/test", "x"),
            "postgres://root@127.0.0.1:5432/x"
        );
        assert_eq!(
            super::with_database("postgres://127.0.0.1/test?sslmode=disable", "x"),
            "postgres://127.0.0.1/x?sslmode=disable"
        );
    }
}
