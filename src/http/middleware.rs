//! Request middleware that needs the application state: the request span
//! (it names the client through the trusted proxies of `AppState`).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{Error, HttpMessage};
use tracing::Span;
use tracing_actix_web::{RequestId, RootSpanBuilder};

/// The request span: id, client address, method and route pattern only.
pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let route = request
            .match_pattern()
            .unwrap_or_else(|| "unmatched".to_owned());
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map(ToString::to_string)
            .unwrap_or_default();
        // The client as seen through trusted proxies (the proxy's own
        // address would be the same on every line).
        let client = request
            .app_data::<actix_web::web::Data<crate::app::state::AppState>>()
            .map(|state| {
                crate::http::auth::client_addr::client_addr(
                    request.request(),
                    &state.trusted_proxies,
                )
                .to_string()
            })
            .unwrap_or_default();
        tracing::info_span!(
            "request",
            request_id = %request_id,
            client = %client,
            method = %request.method(),
            route = %route,
            status = tracing::field::Empty,
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        let status = match outcome {
            Ok(response) => response.status().as_u16(),
            Err(error) => error.as_response_error().status_code().as_u16(),
        };
        span.record("status", status);
    }
}
