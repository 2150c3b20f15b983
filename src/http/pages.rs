//! What every page shares: the page context (user, menu, CSRF token, asset
//! version), rendering, Spanish date formatting, and turning error responses
//! into pages or fragments.

use actix_session::SessionExt;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, AcceptEncoding, Encoding, Header, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::{DateTime, Utc};

use crate::app::state::AppState;
use crate::db::{Principal, Ts};
use crate::domain::Role;
use crate::http::auth::session::principal_of;
use crate::http::error::AppError;

/// Changes whenever the static files may have changed, to bust caches.
pub const ASSET_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A sidebar entry.
pub struct MenuItem {
    pub href: &'static str,
    pub label: &'static str,
    pub icon: &'static str,
    pub active: bool,
}

/// Carried by every page rendered inside the layout.
pub struct PageContext {
    pub user_name: String,
    pub user_initials: String,
    pub role_label: &'static str,
    pub menu: Vec<MenuItem>,
    pub csrf: String,
    /// A one-time confirmation carried over a redirect (shown as a toast).
    pub flash: Option<String>,
}

impl PageContext {
    /// The context for `principal`, with `active` highlighted in the sidebar.
    pub fn new(req: &HttpRequest, principal: &Principal, active: &str) -> Result<Self, AppError> {
        let session = req.get_session();
        let csrf = crate::http::auth::csrf::token(&session)?;
        let flash = session.remove_as::<String>(FLASH_KEY).and_then(Result::ok);
        Ok(PageContext {
            user_name: principal.name.clone(),
            user_initials: principal
                .name
                .split_whitespace()
                .take(2)
                .filter_map(|w| w.chars().next())
                .collect(),
            role_label: principal.role.label(),
            menu: menu(principal.role, active),
            csrf,
            flash,
        })
    }
}

/// Sidebar entries: (path, label, icon, roles that see it). Mensajes comes
/// first; an entry is listed only once its page exists.
const MENU: &[(&str, &str, &str, &[Role])] = &[
    (
        "/mensajes",
        "Mensajes",
        "messages",
        &[Role::SuperAdmin, Role::Admin],
    ),
    ("/campanas", "Campañas", "campaigns", &[Role::SuperAdmin]),
    ("/usuarios", "Usuarios", "users", &[Role::SuperAdmin]),
    (
        "/categorias",
        "Categorías",
        "tags",
        &[Role::SuperAdmin, Role::Admin],
    ),
    (
        "/cancelacion-automatica",
        "Cancelación automática",
        "clock",
        &[Role::SuperAdmin, Role::Admin],
    ),
    ("/auditoria", "Auditoría", "audit", &[Role::SuperAdmin]),
    (
        "/reportes",
        "Reportes",
        "chart",
        &[Role::SuperAdmin, Role::Admin],
    ),
];

/// The sidebar for a role, with `active` (a path without its slash) marked.
fn menu(role: Role, active: &str) -> Vec<MenuItem> {
    MENU.iter()
        .filter(|(_, _, _, roles)| roles.contains(&role))
        .map(|&(href, label, icon, _)| MenuItem {
            href,
            label,
            icon,
            active: href.trim_start_matches('/') == active,
        })
        .collect()
}

/// Whether `role`'s sidebar lists `href`: the pages a role may open.
pub fn in_menu(role: Role, href: &str) -> bool {
    MENU.iter()
        .any(|(path, _, _, roles)| *path == href && roles.contains(&role))
}

const FLASH_KEY: &str = "flash";

/// Keeps `message` for the next page this session renders (after a redirect).
pub fn set_flash(session: &actix_session::Session, message: &str) {
    if let Err(e) = session.insert(FLASH_KEY, message) {
        tracing::warn!(error = %e, "could not keep the flash message");
    }
}

/// Renders a template into an HTML response.
pub fn render(template: &impl Template) -> Result<HttpResponse, AppError> {
    render_with_status(template, StatusCode::OK)
}

pub fn render_with_status(
    template: &impl Template,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let body = template
        .render()
        .map_err(|e| AppError::Unexpected(anyhow::Error::new(e).context("template rendering")))?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body))
}

/// A rendering buffer grown past this is not kept for the next request.
const SCRATCH_KEPT_BYTES: usize = 512 * 1024;

thread_local! {
    /// This thread's buffer for HTML that is compressed and dropped within
    /// the request (the Mensajes results and frame). Rendered into a new
    /// `String`, a page of 50 rows (about 90 KB) grew by doubling past
    /// glibc's mapping threshold on every request, blocks each worker's
    /// arena then kept (BENCHMARKS.md, twelfth session).
    static SCRATCH: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Renders `template` into this thread's reused buffer and passes the HTML
/// to `then`, which must not keep it (compress it, copy what it needs).
pub fn with_rendered<R>(
    template: &impl Template,
    then: impl FnOnce(&str) -> R,
) -> Result<R, AppError> {
    let render = |buffer: &mut String| {
        buffer.clear();
        template.render_into(buffer).map_err(|e| {
            AppError::Unexpected(anyhow::Error::new(e).context("template rendering"))
        })?;
        Ok(then(buffer))
    };
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffer) => {
            let answer = render(&mut buffer);
            if buffer.capacity() > SCRATCH_KEPT_BYTES {
                *buffer = String::new();
            }
            answer
        }
        // Already rendering on this thread (`then` rendered again).
        Err(_) => render(&mut String::new()),
    })
}

/// Whether the client accepts gzip, negotiated as actix-web's `Compress`
/// does (a `q=0` refuses it; no header means identity).
pub fn accepts_gzip(req: &HttpRequest) -> bool {
    AcceptEncoding::parse(req).is_ok_and(|accepted| {
        accepted.negotiate([Encoding::gzip(), Encoding::identity()].iter())
            == Some(Encoding::gzip())
    })
}

/// A kept fragment as one response sends it.
pub struct SplicedResults {
    pub kept: std::sync::Arc<crate::compression::Kept>,
    /// The fragment's HTML, when the request rendered it for a client that
    /// refuses gzip: sent as it is, not inflated back from `kept`.
    pub html: Option<Vec<u8>>,
}

/// An HTML response of `prefix`, a kept fragment and `suffix`: gzip when
/// the client accepts it (the fragment's compressed bytes reused as they
/// are, see `crate::compression`), plain otherwise (the HTML rendered for
/// this request, or inflated from the kept bytes). It carries
/// `Content-Encoding`, so actix-web's `Compress` leaves it alone. `gzip`
/// is [`accepts_gzip`] of the request, negotiated once by the caller, which
/// also needed it to render.
pub fn spliced_html(
    gzip: bool,
    prefix: &str,
    results: &SplicedResults,
    suffix: &str,
) -> HttpResponse {
    let kept = &results.kept;
    let mut response = HttpResponse::Ok();
    response
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::VARY, "Accept-Encoding"));
    if !gzip {
        let inflated;
        let html = match &results.html {
            Some(html) => html,
            None => {
                inflated = kept.html();
                &inflated
            }
        };
        let mut body = Vec::with_capacity(prefix.len() + html.len() + suffix.len());
        body.extend_from_slice(prefix.as_bytes());
        body.extend_from_slice(html);
        body.extend_from_slice(suffix.as_bytes());
        return response.body(body);
    }
    response
        .insert_header((header::CONTENT_ENCODING, "gzip"))
        .body(crate::compression::gzip_splice(
            prefix.as_bytes(),
            &kept.gzip(),
            suffix.as_bytes(),
        ))
}

/// Whether the request came from htmx and wants a fragment.
pub fn is_fragment_request(req: &HttpRequest) -> bool {
    req.headers().contains_key("HX-Request")
}

/// `26/11/2026 14:05` in the configured time zone.
pub fn local_datetime(at: Ts, tz: chrono_tz::Tz) -> String {
    at.0.with_timezone(&tz).format("%d/%m/%Y %H:%M").to_string()
}

/// `2026-11-26T20:05:00Z`: RFC 3339 in UTC to the second, for
/// `<time datetime>`, which allows at most three digits of a fraction (the
/// stored microseconds would make the page invalid HTML).
pub fn machine_datetime(at: Ts) -> String {
    at.0.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// How long ago `at` was, as a label: "ahora", "hace 12 s", "hace 3 min",
/// "hace 2 h", "hace 4 d". Mensajes' "Última actividad" column does not wrap
/// and is sized by its widest row, so no wording is longer than "hace 59
/// min": "hace un momento" widened the table past a 1280-pixel window
/// whenever a row had just closed. The page's script words it the same way
/// (`relative` in app.js).
pub fn relative(at: Ts, now: DateTime<Utc>) -> String {
    ago(at, now, "ahora")
}

/// [`relative`] within a sentence: "Ana López la canceló hace un momento",
/// where "… la canceló ahora" would read as happening now.
pub fn relative_in_sentence(at: Ts, now: DateTime<Utc>) -> String {
    ago(at, now, "hace un momento")
}

fn ago(at: Ts, now: DateTime<Utc>, just_now: &str) -> String {
    let seconds = (now - at.0).num_seconds().max(0);
    match seconds {
        0..=4 => just_now.to_owned(),
        5..=59 => format!("hace {seconds} s"),
        60..=3599 => format!("hace {} min", seconds / 60),
        3600..=86_399 => format!("hace {} h", seconds / 3600),
        _ => format!("hace {} d", seconds / 86_400),
    }
}

/// How long since `since`, for a row's "Sin actividad: 2 h 10 min":
/// minutes under an hour, hours and minutes under a day, then days and
/// hours. The page's script words it the same way (`elapsed` in app.js).
pub fn elapsed(since: Ts, now: DateTime<Utc>) -> String {
    let minutes = (now - since.0).num_minutes().max(0);
    let (days, hours, mins) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    match (days, hours, mins) {
        (0, 0, 0) => "< 1 min".to_owned(),
        (0, 0, m) => format!("{m} min"),
        (0, h, 0) => format!("{h} h"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, 0, _) => format!("{d} d"),
        (d, h, _) => format!("{d} d {h} h"),
    }
}

/// A count as Spanish writes it (Ortografía de la RAE, 2010): more than four
/// digits are grouped by three with a narrow no-break space ("50 000",
/// "1 234 567"), four or fewer are not ("5000"). Neither a point nor a
/// comma, which read as opposite things in Spain and in Mexico.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count(pub i64);

impl std::fmt::Display for Count {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let digits = self.0.unsigned_abs().to_string();
        if self.0 < 0 {
            f.write_str("-")?;
        }
        if digits.len() <= 4 {
            return f.write_str(&digits);
        }
        for (i, digit) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                f.write_str("\u{202F}")?;
            }
            write!(f, "{digit}")?;
        }
        Ok(())
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    ctx: Option<PageContext>,
    status: u16,
    title: &'static str,
    message: String,
}

#[derive(Template)]
#[template(path = "_error.html")]
struct ErrorFragment {
    message: String,
}

fn title_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "Solicitud no válida",
        403 => "Acceso denegado",
        404 => "No encontrado",
        405 => "Método no permitido",
        409 => "Conflicto",
        413 => "Demasiado grande",
        429 => "Espera un momento",
        503 => "Servicio no disponible",
        _ => "Error",
    }
}

/// The Spanish message for an error response that did not come from
/// [`AppError`] (unknown route, malformed query, oversized body, …).
fn message_for(status: StatusCode) -> String {
    match status.as_u16() {
        400 => "La solicitud no es válida.".into(),
        403 => "No tienes permiso para ver esta página".into(),
        404 => "No encontramos esa página.".into(),
        405 => "Esa acción no está disponible aquí.".into(),
        413 => "El envío es demasiado grande.".into(),
        415 => "El formulario no llegó en un formato que podamos leer; vuelve a enviarlo desde la página.".into(),
        _ => "Ocurrió un error inesperado. Inténtalo de nuevo.".into(),
    }
}

/// Middleware: replaces the body of every error result of the console
/// (an `AppError`, or an error of actix itself such as an unknown route)
/// with a Spanish error page (inside the layout when signed in) or, for htmx
/// requests, with an error fragment. The API keeps its JSON errors.
pub async fn render_errors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    // Middleware errors (rare) pass through; handlers and our own middleware
    // answer with responses, which are rendered below.
    let res = next.call(req).await?.map_into_boxed_body();
    let status = res.status();
    // Only error *results* are rendered here; a page a handler rendered on
    // purpose with an error status (a form with its messages) is kept.
    if res.response().error().is_none()
        || !(status.is_client_error() || status.is_server_error())
        || res.request().path().starts_with("/api/")
    {
        return Ok(res);
    }
    let message = res
        .response()
        .error()
        .and_then(|e| e.as_error::<AppError>())
        .map_or_else(|| message_for(status), AppError::public_message);
    let (req, original) = res.into_parts();
    let body = if is_fragment_request(&req) {
        ErrorFragment { message }.render()
    } else {
        let ctx = match principal_of(&req).await {
            Ok(Some(principal)) => PageContext::new(&req, &principal, "").ok(),
            _ => None,
        };
        ErrorPage {
            ctx,
            status: status.as_u16(),
            title: title_for(status),
            message,
        }
        .render()
    };
    let Ok(body) = body else {
        return Ok(ServiceResponse::new(req, original));
    };
    let mut response = HttpResponse::build(status);
    response.content_type("text/html; charset=utf-8");
    response.insert_header((header::CACHE_CONTROL, "no-store"));
    // Keep what the original response set (session cookie, retry hints).
    for (name, value) in original.headers() {
        if name == header::SET_COOKIE
            || name == header::RETRY_AFTER
            || name.as_str() == "hx-redirect"
        {
            response.append_header((name.clone(), value.clone()));
        }
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("5")));
    }
    Ok(ServiceResponse::new(req, response.body(body)))
}

/// Any URL no route matches.
pub async fn not_found() -> Result<HttpResponse, AppError> {
    Err(AppError::NotFound("No encontramos esa página."))
}

/// `GET /healthz`: the process is up.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("ok")
}

/// `GET /readyz`: the database answers.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.store.ping().await {
        Ok(()) => HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body("ready"),
        Err(e) => {
            tracing::warn!(error = ?e, "readiness check failed");
            HttpResponse::ServiceUnavailable()
                .content_type("text/plain; charset=utf-8")
                .body("database unavailable")
        }
    }
}

/// `GET /metrics`: OpenMetrics text (which Prometheus reads), for the
/// configured addresses or the token.
pub async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let access = &state.metrics;
    // The client, not a proxy in front: behind a trusted proxy every
    // request's peer is the proxy (see `auth::client_addr`).
    let client = crate::http::auth::client_addr::client_addr(&req, &state.trusted_proxies);
    let from_allowed = access.allow.iter().any(|a| a.to_canonical() == client);
    let with_token = access.token.as_deref().is_some_and(|token| {
        req.headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| {
                use subtle::ConstantTimeEq;
                bool::from(given.as_bytes().ct_eq(token.as_bytes()))
            })
    });
    if !(from_allowed || with_token) {
        return HttpResponse::Forbidden()
            .content_type("text/plain; charset=utf-8")
            .body("forbidden");
    }
    let pools = state.store.pool_usage();
    let body = crate::telemetry::METRICS.render(&crate::telemetry::Scrape {
        pools: &pools,
        view_cache: state.views.counts(),
        results_sent: state.results_sent.counts(),
        password_checks: state.password_checks.get(),
    });
    HttpResponse::Ok()
        .content_type(crate::telemetry::CONTENT_TYPE)
        .body(body)
}

/// `GET /`: the console starts at Mensajes.
pub async fn home() -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/mensajes"))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[derive(Template)]
    #[template(source = "<p>{{ text }}</p>", ext = "html")]
    struct Paragraph {
        text: String,
    }

    #[test]
    fn rendering_inside_a_rendering_uses_a_buffer_of_its_own() {
        let outer = Paragraph {
            text: "fuera".into(),
        };
        let inner = Paragraph {
            text: "dentro".into(),
        };
        let both = with_rendered(&outer, |outer_html| {
            let inner_html = with_rendered(&inner, str::to_owned).unwrap();
            format!("{outer_html}{inner_html}")
        })
        .unwrap();
        assert_eq!(both, "<p>fuera</p><p>dentro</p>");
        // The next rendering on this thread starts from an empty buffer.
        let big = Paragraph {
            text: "x".repeat(SCRATCH_KEPT_BYTES + 1),
        };
        assert_eq!(
            with_rendered(&big, str::len).unwrap(),
            SCRATCH_KEPT_BYTES + 8
        );
        assert_eq!(
            with_rendered(&inner, str::to_owned).unwrap(),
            "<p>dentro</p>"
        );
        assert!(
            SCRATCH.with(|cell| cell.borrow().capacity()) <= SCRATCH_KEPT_BYTES,
            "a buffer grown past the limit is not kept"
        );
    }

    #[test]
    fn counts_of_more_than_four_digits_are_grouped_by_three() {
        let shown = |n: i64| Count(n).to_string().replace('\u{202F}', " ");
        assert_eq!(shown(0), "0");
        assert_eq!(shown(999), "999");
        assert_eq!(shown(5000), "5000");
        assert_eq!(shown(50_000), "50 000");
        assert_eq!(shown(123_456), "123 456");
        assert_eq!(shown(1_234_567), "1 234 567");
        assert_eq!(shown(-12_345), "-12 345");
        assert_eq!(shown(i64::MIN), "-9 223 372 036 854 775 808");
        // The space does not break a count across lines.
        assert_eq!(Count(50_000).to_string(), "50\u{202F}000");
    }

    #[test]
    fn elapsed_times_read_as_hours_and_minutes() {
        let now = Utc::now();
        let ago = |m: i64| elapsed(Ts::new(now - Duration::minutes(m)), now);
        assert_eq!(
            elapsed(Ts::new(now - Duration::seconds(20)), now),
            "< 1 min"
        );
        assert_eq!(ago(45), "45 min");
        assert_eq!(ago(120), "2 h");
        assert_eq!(ago(130), "2 h 10 min");
        assert_eq!(ago(3 * 1440 + 5), "3 d");
        assert_eq!(ago(1440 + 190), "1 d 3 h");
    }

    #[test]
    fn relative_times_read_like_people_say_them() {
        let now = Utc::now();
        assert_eq!(relative(Ts::new(now - Duration::seconds(2)), now), "ahora");
        // A clock a little ahead of Relevo's (the platform's) is still "ahora".
        assert_eq!(relative(Ts::new(now + Duration::seconds(30)), now), "ahora");
        assert_eq!(
            relative_in_sentence(Ts::new(now - Duration::seconds(2)), now),
            "hace un momento"
        );
        assert_eq!(
            relative_in_sentence(Ts::new(now - Duration::minutes(3)), now),
            "hace 3 min"
        );
        assert_eq!(
            relative(Ts::new(now - Duration::seconds(12)), now),
            "hace 12 s"
        );
        assert_eq!(
            relative(Ts::new(now - Duration::minutes(3)), now),
            "hace 3 min"
        );
        assert_eq!(relative(Ts::new(now - Duration::hours(5)), now), "hace 5 h");
    }

    #[test]
    fn dates_show_in_the_configured_zone() {
        let at = Ts::new(
            DateTime::parse_from_rfc3339("2026-11-26T20:05:00Z")
                .unwrap()
                .with_timezone(&Utc),
        );
        assert_eq!(
            local_datetime(at, chrono_tz::America::Mexico_City),
            "26/11/2026 14:05"
        );
    }

    #[test]
    fn an_administrator_sees_conversations_first() {
        let items = menu(Role::Admin, "mensajes");
        assert_eq!(items[0].label, "Mensajes");
        assert!(items[0].active);
    }

    /// Every icon a template or the menu names is a symbol of the sprite, so
    /// no page shows an empty square.
    #[test]
    fn every_icon_in_use_is_in_the_sprite() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let sprite = std::fs::read_to_string(root.join("static/icons.svg")).unwrap();
        let mut used: Vec<String> = MENU
            .iter()
            .map(|&(_, _, icon, _)| icon.to_owned())
            .collect();
        let mut dirs = vec![root.join("templates")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                for call in text.split("icons::icon(\"").skip(1) {
                    used.push(call.split('"').next().unwrap().to_owned());
                }
            }
        }
        assert!(used.len() > 20, "the scan found the icon calls: {used:?}");
        let missing: Vec<&String> = used
            .iter()
            .filter(|name| !sprite.contains(&format!("<symbol id=\"{name}\"")))
            .collect();
        assert!(missing.is_empty(), "not in static/icons.svg: {missing:?}");
    }
}
