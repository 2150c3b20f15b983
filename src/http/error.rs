//! One error type for the whole console. Handlers use `?`; the
//! [`render_errors`](crate::http::pages::render_errors) middleware turns
//! every error response into a Spanish page (inside the layout when someone
//! is signed in) or, for htmx requests, into a small fragment. The full
//! cause chain of unexpected errors goes to the log, never to the browser.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};

use crate::db::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No valid session: the browser goes to the login page.
    #[error("not signed in")]
    Unauthenticated,
    /// The role may not open this page.
    #[error("forbidden")]
    Forbidden,
    /// A POST without the session's CSRF token.
    #[error("csrf token missing or wrong")]
    CsrfRejected,
    /// Unknown, malformed, or outside the viewer's scope (never revealed).
    #[error("not found: {0}")]
    NotFound(&'static str),
    /// The action is not possible in the current state.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Too much of it is already running (for this person or this
    /// instance); the same request may succeed later.
    #[error("busy: {0}")]
    Busy(&'static str),
    /// The database cannot be reached.
    #[error("database unavailable")]
    Unavailable(#[source] StoreError),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl AppError {
    pub fn unexpected(message: impl Into<String>) -> AppError {
        AppError::Unexpected(anyhow::anyhow!(message.into()))
    }

    /// The Spanish sentence shown to the person.
    pub fn public_message(&self) -> String {
        match self {
            AppError::Unauthenticated => "Inicia sesión para continuar.".into(),
            AppError::Forbidden => "No tienes permiso para ver esta página".into(),
            AppError::CsrfRejected => {
                "El formulario caducó o no es válido. Recarga la página e inténtalo de nuevo.".into()
            }
            AppError::NotFound(what) => (*what).into(),
            AppError::Conflict(message) => message.clone(),
            AppError::Busy(message) => (*message).into(),
            AppError::Unavailable(_) => {
                "La base de datos no está disponible en este momento. Inténtalo de nuevo en unos segundos.".into()
            }
            AppError::Unexpected(_) => {
                "Ocurrió un error inesperado. Ya quedó registrado; inténtalo de nuevo.".into()
            }
        }
    }
}

impl From<StoreError> for AppError {
    fn from(error: StoreError) -> AppError {
        if error.is_unavailable() {
            AppError::Unavailable(error)
        } else {
            AppError::Unexpected(anyhow::Error::new(error))
        }
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::Unauthenticated => StatusCode::SEE_OTHER,
            AppError::Forbidden | AppError::CsrfRejected => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::Busy(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            AppError::Unauthenticated => HttpResponse::SeeOther()
                .insert_header((header::LOCATION, HeaderValue::from_static("/login")))
                // htmx follows this instead of swapping the login page into a fragment.
                .insert_header(("HX-Redirect", HeaderValue::from_static("/login")))
                .finish(),
            other => {
                match other {
                    AppError::Unexpected(e) => tracing::error!(error = ?e, "unexpected error"),
                    AppError::Unavailable(e) => tracing::warn!(error = ?e, "database unavailable"),
                    _ => {}
                }
                // The body is replaced by `render_errors`; this is the fallback.
                HttpResponse::build(self.status_code())
                    .content_type("text/plain; charset=utf-8")
                    .body(other.public_message())
            }
        }
    }
}
