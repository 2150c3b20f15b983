//! Building and running the HTTP application: state, middleware, routes.

use std::net::TcpListener;

use actix_session::SessionMiddleware;
use actix_session::config::{CookieContentSecurity, PersistentSession};
use actix_session::storage::CookieSessionStore;
use actix_web::cookie::{Key, SameSite, time::Duration as CookieDuration};
use actix_web::dev::Server;
use actix_web::middleware::{Compress, DefaultHeaders, from_fn};
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use sha2::{Digest, Sha512};
use tracing_actix_web::TracingLogger;

use crate::config::Settings;
pub mod state;

pub use crate::config::redact;
use crate::db::Store;
use crate::http;
pub use state::AppState;

/// A bound, ready-to-run server.
pub struct Application {
    port: u16,
    server: Server,
    state: AppState,
}

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "relevo_session";
/// Settings key of the generated session key.
const SESSION_KEY_SETTING: &str = "session_key";

/// Security headers on every response: no inline script, no framing, no
/// MIME sniffing, a strict referrer policy.
fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
             form-action 'self'; frame-ancestors 'none'",
        ))
        .add(("X-Frame-Options", "DENY"))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "same-origin"))
        .add((
            "Permissions-Policy",
            "camera=(), microphone=(), geolocation=()",
        ))
        .add(("Cross-Origin-Opener-Policy", "same-origin"))
}

/// The session cookie key: from `RELEVO_SESSION_KEY`, or generated once and
/// kept in the database so sessions survive restarts and are shared by every
/// instance on the same database.
async fn session_key(settings: &Settings, store: &Store) -> anyhow::Result<Key> {
    let secret = match &settings.session_key {
        Some(secret) => secret.clone(),
        None => {
            let generated = format!("{}{}", crate::db::random_token(), crate::db::random_token());
            store
                .setting_or_insert(SESSION_KEY_SETTING, &generated)
                .await?
        }
    };
    // Any length of secret maps to the 64 bytes the cookie key needs.
    Ok(Key::from(Sha512::digest(secret.as_bytes()).as_slice()))
}

impl Application {
    /// Connects to the database, migrates it, and binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let store = Store::connect(&settings.database_url)
            .await
            .with_context(|| {
                format!(
                    "cannot open the database ({})",
                    redact(&settings.database_url)
                )
            })?;
        store
            .migrate()
            .await
            .context("cannot apply the migrations")?;
        Application::build_with_store(settings, store).await
    }

    /// Binds the listener over an already migrated store.
    pub async fn build_with_store(settings: Settings, store: Store) -> anyhow::Result<Application> {
        let key = session_key(&settings, &store).await?;
        store.start_listening();
        crate::services::router::spawn_scheduler(store.clone());
        crate::services::auto_cancel::spawn(store.clone());
        crate::services::transcripts::spawn_purge(store.clone(), settings.transcript_days);
        crate::services::events::spawn_sequencer(store.clone());
        crate::services::events::spawn_purge(store.clone(), settings.event_days);
        crate::services::webhooks::spawn(
            store.clone(),
            settings.webhook_allow.clone(),
            crate::http::webhooks::delivery_body,
        );
        let bulk_access = std::sync::Arc::new(crate::services::bulk::CreatorAccess::new(
            store.feed().clone(),
        ));
        crate::services::bulk::spawn_worker(store.clone(), bulk_access.clone());
        crate::http::auth::session::spawn_purge(
            store.clone(),
            crate::http::auth::session::SessionPolicy::new(settings.session_idle),
        );
        let store_feed = store.feed().clone();
        let state = AppState {
            store,
            timezone: settings.timezone,
            counts_refresh: settings.counts_refresh,
            transcript_days: settings.transcript_days,
            metrics: settings.metrics.clone(),
            trusted_proxies: settings.trusted_proxies.clone(),
            webhook_allow: std::sync::Arc::new(settings.webhook_allow.clone()),
            password_checks: Default::default(),
            principals: std::sync::Arc::new(crate::services::auth::principals::new_cache(
                store_feed.clone(),
                settings.session_idle,
            )),
            filter_options: std::sync::Arc::new(
                crate::live::cache::EpochCache::following_directory(
                    store_feed.clone(),
                    std::time::Duration::from_secs(60),
                ),
            ),
            tokens: std::sync::Arc::new(crate::http::api::TokenCache::new(&store_feed)),
            closure_refs: std::sync::Arc::new(crate::http::actions::ClosureRefs::new(&store_feed)),
            views: std::sync::Arc::new(crate::http::conversations::ViewCache::new(
                store_feed,
                crate::http::conversations::VIEW_TTL,
                settings.view_cache_views,
            )),
            bulk_access,
            exports: Default::default(),
            results_sent: Default::default(),
        };
        let listener = TcpListener::bind(settings.bind)
            .with_context(|| format!("cannot listen on {}", settings.bind))?;
        let port = listener.local_addr()?.port();
        crate::services::auth::password::warm_up();
        let server = run(listener, state.clone(), key, settings.secure_cookies)?;
        Ok(Application {
            port,
            server,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until the server is stopped through its handle (tests).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }

    /// Serves until SIGTERM or SIGINT, then shuts down gracefully: tell live
    /// viewers to reconnect elsewhere, stop accepting, finish the requests
    /// in flight, responses still streaming (a download) included, at most
    /// 30 s, then stop the workers (another 30 s at most for whatever is
    /// left), and return.
    pub async fn run_until_signalled(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let feed = self.state.store.feed().clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down: finishing requests in flight");
            feed.publish(crate::live::Event::Shutdown);
            // Stop accepting, and let the requests being handled finish
            // before any worker stops: each worker runs its own runtime, and
            // a PostgreSQL connection a worker opened fails ("runtime is
            // being shut down") in whichever request holds it once that
            // worker has stopped, which an idle worker did at once.
            handle.pause().await;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while crate::telemetry::requests_being_handled() > 0
                && std::time::Instant::now() < deadline
            {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            tracing::info!(
                in_flight = crate::telemetry::requests_being_handled(),
                "stopping the workers"
            );
            handle.stop(true).await;
        });
        self.server.await?;
        self.state.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

async fn wait_for_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// A response its client does not read for this long is dropped, with its
/// connection: whatever it holds (an export's place and temporary file, a
/// live stream) is released instead of waiting for a client that may never
/// come back. Long enough for any client that is reading, however slowly.
const UNREAD_RESPONSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Hidden setting (milliseconds) replacing [`UNREAD_RESPONSE_TIMEOUT`], so
/// tests need not wait 30 s.
const UNREAD_RESPONSE_TIMEOUT_VAR: &str = "RELEVO_UNREAD_RESPONSE_TIMEOUT_MS";

/// Has the kernel abort `connection` once data sent on it has stayed
/// unacknowledged, or unsent because the client's receive window stayed
/// closed (it reads nothing), for `after` (`TCP_USER_TIMEOUT`). The server
/// itself cannot notice: while the socket is full actix does not poll the
/// response at all. The abort wakes the connection with an error, and
/// actix drops the response. Linux only; elsewhere a stalled client keeps
/// its response until the system gives up on the connection.
fn drop_when_unread(connection: &dyn std::any::Any, after: std::time::Duration) {
    #[cfg(target_os = "linux")]
    if let Some(stream) = connection.downcast_ref::<actix_web::rt::net::TcpStream>()
        && let Err(e) = socket2::SockRef::from(stream).set_tcp_user_timeout(Some(after))
    {
        tracing::warn!(error = %e, "cannot set a timeout for unread responses");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (connection, after);
}

fn run(
    listener: TcpListener,
    state: AppState,
    key: Key,
    secure_cookies: bool,
) -> anyhow::Result<Server> {
    let data = web::Data::new(state);
    let static_dir = std::env::var("RELEVO_STATIC_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/static").to_owned());
    let unread_timeout = std::env::var(UNREAD_RESPONSE_TIMEOUT_VAR)
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map_or(UNREAD_RESPONSE_TIMEOUT, std::time::Duration::from_millis);
    let server = HttpServer::new(move || {
        let sessions = SessionMiddleware::builder(CookieSessionStore::default(), key.clone())
            .cookie_name(SESSION_COOKIE.to_owned())
            .cookie_secure(secure_cookies)
            .cookie_http_only(true)
            .cookie_same_site(SameSite::Lax)
            .cookie_content_security(CookieContentSecurity::Private)
            .session_lifecycle(PersistentSession::default().session_ttl(CookieDuration::hours(12)))
            .build();
        App::new()
            .app_data(data.clone())
            .app_data(web::FormConfig::default().limit(64 * 1024))
            .wrap(from_fn(crate::http::auth::csrf::guard))
            .wrap(from_fn(http::pages::render_errors))
            .wrap(sessions)
            .wrap(security_headers())
            .wrap(Compress::default())
            .wrap(from_fn(crate::telemetry::observe))
            .wrap(TracingLogger::<crate::http::middleware::RequestSpan>::new())
            .configure(http::configure)
            .service(
                actix_files::Files::new("/static", &static_dir)
                    .use_etag(true)
                    .use_last_modified(true),
            )
            .default_service(web::to(http::pages::not_found))
    })
    .on_connect(move |connection, _| drop_when_unread(connection, unread_timeout))
    .listen(listener)?
    // Signals are handled by `run_until_signalled`, which first tells live
    // viewers to move elsewhere.
    .disable_signals()
    .shutdown_timeout(30)
    .run();
    Ok(server)
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_passwords_are_hidden_in_messages() {
        assert_eq!(
            super::redact("postgres://relevo:s3cret@db:5432/relevo"),
            "postgres://relevo:***@db:5432/relevo"
        );
        assert_eq!(super::redact("sqlite:relevo.db"), "sqlite:relevo.db");
    }
}
