//! Synchronizer CSRF tokens.
//!
//! The token lives in the session; every form carries it as `_csrf` and every
//! htmx request as the `X-CSRF-Token` header. One middleware checks every
//! POST of the console (the bearer-token API is exempt: it uses no cookies),
//! so no handler can forget it.

use actix_session::{Session, SessionExt};
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};
use subtle::ConstantTimeEq;

use crate::http::error::AppError;

const SESSION_KEY: &str = "csrf";
/// Form field that carries the token.
pub const FIELD: &str = "_csrf";
/// Header that carries the token on htmx requests.
pub const HEADER: &str = "x-csrf-token";

/// The session's token, created on first use.
pub fn token(session: &Session) -> Result<String, AppError> {
    if let Ok(Some(token)) = session.get::<String>(SESSION_KEY) {
        return Ok(token);
    }
    rotate(session)
}

/// Replaces the session's token (at login).
pub fn rotate(session: &Session) -> Result<String, AppError> {
    let token = crate::db::random_token();
    session
        .insert(SESSION_KEY, &token)
        .map_err(|e| AppError::unexpected(format!("session insert failed: {e}")))?;
    Ok(token)
}

fn matches(expected: &str, provided: &str) -> bool {
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(provided.as_bytes()))
}

/// Middleware: refuses a console POST without the session's token (403).
pub async fn guard(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if req.method() != Method::POST || req.path().starts_with("/api/") {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let expected = req
        .get_session()
        .get::<String>(SESSION_KEY)
        .ok()
        .flatten()
        .unwrap_or_default();
    let header = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let provided = match header {
        Some(token) => Some(token),
        None if req.content_type() == "application/x-www-form-urlencoded" => {
            let body = req.extract::<web::Bytes>().await?;
            let token = url_form_field(&body, FIELD);
            // Put the body back for the handler's own form extractor.
            req.set_payload(actix_web::dev::Payload::from(body));
            token
        }
        None => None,
    };
    match provided {
        Some(token) if matches(&expected, &token) => next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body),
        _ => Ok(req
            .error_response(AppError::CsrfRejected)
            .map_into_right_body()),
    }
}

fn url_form_field(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_expected_token_never_matches() {
        assert!(!matches("", ""));
        assert!(matches("abc", "abc"));
        assert!(!matches("abc", "abd"));
    }

    #[test]
    fn the_token_is_read_from_a_form_body() {
        assert_eq!(
            url_form_field(b"email=a%40b.mx&_csrf=t0k3n", FIELD).as_deref(),
            Some("t0k3n")
        );
        assert_eq!(url_form_field(b"email=x", FIELD), None);
    }
}
