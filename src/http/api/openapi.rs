//! The integration API's OpenAPI 3.1 document, served at
//! `GET /api/v1/openapi.json`.
//!
//! It is generated from the code: every handler of [`super::routes`] carries
//! its `#[utoipa::path]` (method, path, parameters, answers), and every
//! answer is a struct deriving both `Serialize` and `ToSchema`, so a
//! renamed or added field changes the JSON and its schema together. What
//! the macros cannot say is added here in code: the two bearer-token
//! security schemes, the 500 and 503 every database-backed call may answer,
//! and the top-level `webhooks` (a delivery's body is the same [`Event`]
//! schema the feed answers). tests/openapi.rs checks that every route is
//! described and that real answers of both backends match their schema.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use actix_web::http::header;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, Parameter, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, PathsBuilder, Ref, Required, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::events::Event;

/// The document's description of the whole API.
const DESCRIPTION: &str = "JSON in and out. Every call but this document's takes \
`Authorization: Bearer TOKEN`: a channel's token for its messages and outbox, an \
integration token (one campaign: anything of another campaign answers 404, like an \
unknown id) for everything else. A deactivated campaign's tokens answer 403 \
`campaign_inactive`. Every error is a JSON `Error`. Message texts are stored and \
returned exactly as sent, up to 10,000 characters. The event feed's events are also \
delivered as webhooks (see `webhooks`).";

/// The integration API, as the code declares it.
#[derive(OpenApi)]
#[openapi(
    info(title = "Relevo integration API", description = DESCRIPTION),
    paths(
        super::customer_message,
        super::outbox,
        super::outbox_delivered,
        super::conversation,
        super::handoff,
        super::agent_message,
        super::bot_message,
        super::resolve,
        super::presence,
        super::events::feed,
        serve,
    ),
    components(schemas(super::ErrorCode)),
    modifiers(&Security, &ServerErrors, &Webhooks),
    tags(
        (name = "channels", description = "A channel's connector: customer messages in, the outbox out (channel token)"),
        (name = "conversations", description = "The bot engine and the agent console (integration token)"),
        (name = "agents", description = "Agents' presence (integration token)"),
        (name = "events", description = "The campaign's ordered event log (integration token)"),
        (name = "meta", description = "This document (no token)"),
    )
)]
#[allow(deprecated)] // the outbox: still served, documented as deprecated
pub struct ApiDoc;

/// The document as JSON, built on first use and kept.
pub fn document() -> &'static bytes::Bytes {
    static DOCUMENT: OnceLock<bytes::Bytes> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let json = ApiDoc::openapi()
            .to_json()
            .expect("the OpenAPI document serialises");
        bytes::Bytes::from(json)
    })
}

/// This document.
///
/// OpenAPI 3.1, generated from the code; no token needed.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    operation_id = "openapi",
    tag = "meta",
    responses(
        (status = 200, description = "This document", body = Object, content_type = "application/json",
            headers(("Cache-Control" = String, description = "`public, max-age=300`"))),
    )
)]
pub(super) async fn serve() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(document().clone())
}

/// The bearer tokens, named by the operations' `security`.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(description))
                    .build(),
            )
        };
        components.add_security_scheme(
            "channel_token",
            bearer(
                "A channel's token (`relevo demo` rotates one; the console shows a new one \
                 once): its customer messages and outbox only.",
            ),
        );
        components.add_security_scheme(
            "integration_token",
            bearer(
                "An integration token (`relevo create-token --campaign NAME --name NAME`): \
                 acts for one campaign. Stored only as its SHA-256.",
            ),
        );
    }
}

/// The answers of a database-backed call that no handler names: 500 and 503.
struct ServerErrors;

impl Modify for ServerErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Error")))
                        .build(),
                )
                .build()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            if path.ends_with("/openapi.json") {
                continue;
            }
            for operation in [&mut item.get, &mut item.post].into_iter().flatten() {
                let responses = &mut operation.responses.responses;
                responses.insert("500".into(), error("`internal`: unexpected").into());
                responses.insert(
                    "503".into(),
                    error("`unavailable`: the database cannot be reached").into(),
                );
            }
        }
    }
}

/// A header every webhook delivery carries.
fn delivery_header(name: &str, schema: Object, description: &str) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Header)
        .required(Required::True)
        .schema(Some(schema))
        .description(Some(description))
        .build()
}

/// The webhook deliveries: a POST whose body is one [`Event`], signed.
struct Webhooks;

impl Modify for Webhooks {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let event_name = <Event as utoipa::ToSchema>::name();
        let integer = || ObjectBuilder::new().schema_type(Type::Integer).build();
        let signature = ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^sha256=[0-9a-f]{64}$"))
            .build();
        let operation = OperationBuilder::new()
            .summary(Some("An event of the campaign, pushed to a webhook's URL"))
            .description(Some(
                "Relevo POSTs every event of the campaign to each active webhook's URL: the \
                 body is exactly one event object, as `GET /api/v1/events` answers it. Check \
                 the signature before trusting it: recompute HMAC-SHA256 with the webhook's \
                 secret over `X-Relevo-Timestamp`, a `.`, and the raw body, compare in \
                 constant time, and refuse an old timestamp. A delivery may come more than \
                 once: process it idempotently by the event `id`.",
            ))
            .operation_id(Some("webhook_event"))
            .tag("events")
            .parameter(delivery_header(
                "X-Relevo-Event-Id",
                integer(),
                "The event's `id` (its cursor).",
            ))
            .parameter(delivery_header(
                "X-Relevo-Timestamp",
                integer(),
                "When the delivery was signed, in Unix seconds.",
            ))
            .parameter(delivery_header(
                "X-Relevo-Signature",
                signature,
                "`sha256=` and the lowercase hex HMAC-SHA256 of `timestamp + \".\" + body` \
                 with the webhook's secret.",
            ))
            .request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name(event_name)))
                            .build(),
                    )
                    .build(),
            ))
            .response(
                "2XX",
                ResponseBuilder::new()
                    .description("Received: any 2xx answer acknowledges the delivery; anything else is a failure")
                    .build(),
            );
        let webhooks = PathsBuilder::new()
            .path("event", PathItem::new(HttpMethod::Post, operation))
            .build();
        openapi.webhooks = Some(webhooks);
    }
}
