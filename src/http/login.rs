//! `/login` and `/logout`.

use actix_session::Session;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::Utc;
use serde::Deserialize;

use super::pages::{render, render_with_status};
use crate::app::state::AppState;
use crate::db::ThrottleState;
use crate::domain::text::{EMAIL_MAX_CHARS, Email};
use crate::http::auth::client_addr::client_addr;
use crate::http::auth::csrf;
use crate::http::auth::session::{principal_of, sign_in, sign_out};
use crate::http::error::AppError;
use crate::services::auth::{password, throttle};

/// The one message for any wrong e-mail/password combination.
pub const GENERIC_FAILURE: &str = "Correo o contraseña incorrectos";
/// The message for agents, who work in the agent console instead.
pub const AGENT_REFUSED: &str =
    "Relevo es la consola de administración: los agentes atienden desde la consola de agentes.";

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    csrf: String,
    email: String,
    error: Option<String>,
    notice: Option<&'static str>,
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

#[derive(Deserialize)]
pub struct LoginQuery {
    /// `?salida`: the person just logged out.
    #[serde(rename = "salida")]
    logged_out: Option<String>,
}

/// `GET /login`
pub async fn show(
    req: HttpRequest,
    session: Session,
    query: web::Query<LoginQuery>,
) -> Result<HttpResponse, AppError> {
    if principal_of(&req).await?.is_some() {
        return Ok(redirect("/mensajes"));
    }
    render(&LoginPage {
        csrf: csrf::token(&session)?,
        email: String::new(),
        error: None,
        notice: query
            .logged_out
            .as_ref()
            .map(|_| "Cerraste sesión.")
            .or_else(|| crate::http::auth::session::take_end_notice(&session)),
    })
}

fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .finish()
}

/// `POST /login`
pub async fn submit(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, AppError> {
    let form = form.into_inner();
    // At most one character over the limit is kept: enough to know it is over.
    let typed_email: String = form
        .email
        .trim()
        .chars()
        .take(EMAIL_MAX_CHARS + 1)
        .collect();
    let fail = |message: String, status| -> Result<HttpResponse, AppError> {
        render_with_status(
            &LoginPage {
                csrf: csrf::token(&session)?,
                email: typed_email.chars().take(EMAIL_MAX_CHARS).collect(),
                error: Some(message),
                notice: None,
            },
            status,
        )
    };
    use actix_web::http::StatusCode;
    if form.email.trim().is_empty() || form.password.is_empty() {
        return fail(
            "Escribe tu correo electrónico y tu contraseña.".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    }
    // No account has a longer address: refused before anything is stored
    // or verified, so an over-long e-mail costs nothing and leaves no row.
    if typed_email.chars().count() > EMAIL_MAX_CHARS {
        return fail(GENERIC_FAILURE.into(), StatusCode::UNAUTHORIZED);
    }
    let email = lookup_email(&typed_email);
    let account_key = throttle::account_key(&email);
    let address_key = throttle::address_key(client_addr(&req, &state.trusted_proxies));

    let (account_try, address_try) =
        match reserve_attempt(&state, &account_key, &address_key).await? {
            Ok(tries) => tries,
            Err(minutes) => return fail(locked_message(minutes), StatusCode::TOO_MANY_REQUESTS),
        };
    // The counts include this attempt; the delay is for the ones before it.
    let recent = account_try.failures.max(address_try.failures) - 1;
    tokio::time::sleep(throttle::delay_after(recent)).await;

    let account = state.store.login_account(&email).await?;
    let hash = account.as_ref().and_then(|a| a.password_hash.clone());
    let verified = password::verify_counted(&state.password_checks, form.password, hash)
        .await
        .map_err(AppError::Unexpected)?;
    match account {
        Some(account) if verified && account.active => {
            // The right password is no failure, for the account or the address.
            throttle::release(&state.store, &address_key).await?;
            if !account.role.may_use_console() {
                throttle::release(&state.store, &account_key).await?;
                return fail(AGENT_REFUSED.into(), StatusCode::FORBIDDEN);
            }
            state.store.clear_login_failures(&account_key).await?;
            sign_in(&state, &session, account.id).await?;
            tracing::info!(user = %account.id, "signed in");
            Ok(redirect("/mensajes"))
        }
        _ => {
            let locked =
                lock_at_limits(&state, &account_key, &address_key, account_try, address_try)
                    .await?;
            tracing::info!(failures = account_try.failures, "failed sign-in");
            match locked {
                Some(minutes) => fail(locked_message(minutes), StatusCode::TOO_MANY_REQUESTS),
                None => fail(GENERIC_FAILURE.into(), StatusCode::UNAUTHORIZED),
            }
        }
    }
}

/// The address an e-mail is looked up as. An unparseable e-mail still goes
/// through the same steps (and costs the same time) as a wrong password,
/// and gets the same answer. PostgreSQL text cannot hold U+0000: it is
/// looked up as U+FFFD, which no address has either.
fn lookup_email(typed_email: &str) -> String {
    Email::parse(typed_email)
        .map(|e| e.as_str().to_owned())
        .unwrap_or_else(|| typed_email.to_lowercase().replace('\0', "\u{fffd}"))
}

/// Counts the attempt first, for the account and then the address, so
/// that verifying happens only within the limits: concurrent attempts each
/// get their own count, and a burst cannot verify more passwords than the
/// limit allows. Answers both counts, or the minutes a limit is locked for.
async fn reserve_attempt(
    state: &AppState,
    account_key: &str,
    address_key: &str,
) -> Result<Result<(ThrottleState, ThrottleState), i64>, AppError> {
    let now = Utc::now();
    let account_try =
        throttle::reserve(&state.store, account_key, throttle::ACCOUNT_LIMIT, now).await?;
    if let Some(minutes) = throttle::minutes_locked(Some(account_try), now) {
        return Ok(Err(minutes));
    }
    let address_try =
        throttle::reserve(&state.store, address_key, throttle::ADDRESS_LIMIT, now).await?;
    if let Some(minutes) = throttle::minutes_locked(Some(address_try), now) {
        // Refused on the address: no guess was made at this account.
        throttle::release(&state.store, account_key).await?;
        return Ok(Err(minutes));
    }
    Ok(Ok((account_try, address_try)))
}

/// After a failed attempt: the attempt stays counted, and the key (account
/// or address) whose count reached its limit locks. Answers the minutes
/// the sign-in is now locked for, if it is.
async fn lock_at_limits(
    state: &AppState,
    account_key: &str,
    address_key: &str,
    account_try: ThrottleState,
    address_try: ThrottleState,
) -> Result<Option<i64>, AppError> {
    let now = Utc::now();
    let mut locked = None;
    if account_try.failures >= throttle::ACCOUNT_LIMIT {
        locked = Some(throttle::lock(&state.store, account_key, now).await?);
    }
    if address_try.failures >= throttle::ADDRESS_LIMIT {
        locked = locked.max(Some(throttle::lock(&state.store, address_key, now).await?));
    }
    Ok(locked.and_then(|until| throttle::minutes_locked_until(until, now)))
}

fn locked_message(minutes: i64) -> String {
    if minutes == 1 {
        "Demasiados intentos; espera 1 minuto".into()
    } else {
        format!("Demasiados intentos; espera {minutes} minutos")
    }
}

/// `POST /logout`
pub async fn logout(
    session: Session,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    sign_out(&state, &session).await?;
    Ok(redirect("/login?salida=1"))
}
