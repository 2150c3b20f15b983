//! The integration API at `/api/v1`: JSON in and out, bearer
//! tokens, JSON errors `{"error": code, "message": text}`.
//!
//! - `POST /channels/{channel_id}/messages` and the channel's outbox
//!   (`GET /channels/{channel_id}/outbox`, `POST …/outbox/{id}/delivered`)
//!   take the **channel's** token; every other call takes an **integration
//!   token**, which acts for one campaign: anything of another campaign
//!   answers 404, like an unknown id.
//! - `GET /events` is the campaign's ordered event log ([`events`]).
//! - Tokens are looked up by their SHA-256 hash; plaintexts are never stored.
//! - Bodies over 64 KiB answer 413; malformed JSON or a malformed id in the
//!   path 400; a field of the wrong type, missing or invalid 422; a step the
//!   conversation's status does not allow 409 (this includes an agent who is
//!   not the assigned one replying or resolving).
//! - A deactivated campaign stops: its channel tokens and integration tokens
//!   answer 403 `campaign_inactive` on every call until it is reactivated.
//!
//! Handlers only parse and answer: the work is in [`crate::services::conversations`] and
//! [`crate::services::router`], shared with the traffic simulator.
//!
//! Every answer is a typed struct that derives both `Serialize` and
//! `ToSchema`, and every handler carries its `#[utoipa::path]`: the OpenAPI
//! document at `GET /api/v1/openapi.json` ([`openapi`]) is generated from
//! them, and tests/openapi.rs checks real answers against it.

use actix_web::error::JsonPayloadError;
use actix_web::http::header;
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, ResponseError, Route, web};
use chrono::SecondsFormat;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::transcript;
use crate::app::state::AppState;
use crate::db::{
    Acknowledged, ChannelAuth, ConversationKey, ConversationReads, HistoryRow, InboundMessage,
    InboundOutcome, MessageRow, NudgeSent, StoreError, TranscriptPosition, Ts, token_hash,
};
use crate::domain::{Author, Conversation, Scope, TransitionError};
use crate::services::conversations::{self, ServiceError};

pub(crate) mod events;
pub mod openapi;
mod schemas;

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 64 * 1024;
/// Longest accepted `message_id`, `from` and `name`, in characters.
const SHORT_FIELD_MAX: usize = 200;

/// The path every route of [`routes`] is under.
pub const PREFIX: &str = "/api/v1";

/// Every route of the API: method, path under [`PREFIX`], handler. Each
/// handler has its `#[utoipa::path]` and is listed in [`openapi::ApiDoc`];
/// tests/openapi.rs fails for a route the document does not describe.
#[allow(deprecated)] // the outbox: still served, documented as deprecated
fn routes() -> Vec<(Method, &'static str, Route)> {
    vec![
        (
            Method::POST,
            "/channels/{channel_id}/messages",
            web::route().to(customer_message),
        ),
        (
            Method::GET,
            "/channels/{channel_id}/outbox",
            web::route().to(outbox),
        ),
        (
            Method::POST,
            "/channels/{channel_id}/outbox/{id}/delivered",
            web::route().to(outbox_delivered),
        ),
        (
            Method::GET,
            "/conversations/{id}",
            web::route().to(conversation),
        ),
        (
            Method::POST,
            "/conversations/{id}/handoff",
            web::route().to(handoff),
        ),
        (
            Method::POST,
            "/conversations/{id}/agent-messages",
            web::route().to(agent_message),
        ),
        (
            Method::POST,
            "/conversations/{id}/bot-messages",
            web::route().to(bot_message),
        ),
        (
            Method::POST,
            "/conversations/{id}/resolve",
            web::route().to(resolve),
        ),
        (
            Method::POST,
            "/agents/{agent_id}/presence",
            web::route().to(presence),
        ),
        (Method::GET, "/events", web::route().to(events::feed)),
        (
            Method::GET,
            "/openapi.json",
            web::route().to(openapi::serve),
        ),
    ]
}

/// The method and path (under [`PREFIX`]) of every route the API serves.
pub fn route_list() -> Vec<(Method, &'static str)> {
    routes()
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect()
}

/// The `/api/v1` scope with its JSON limits and JSON errors.
pub fn scope() -> actix_web::Scope {
    let scope = web::scope(PREFIX)
        .app_data(
            web::JsonConfig::default()
                .limit(BODY_LIMIT)
                .content_type_required(false)
                .error_handler(|error, _req| ApiError::from_json(error).into()),
        )
        .app_data(web::PathConfig::default().error_handler(|_, _| ApiError::invalid_id().into()));
    routes()
        .into_iter()
        .fold(scope, |scope, (method, path, route)| {
            scope.route(path, route.method(method))
        })
        .default_service(web::to(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                "No existe ese recurso de la API",
            )
            .error_response()
        }))
}

/// The `error` of a JSON error: what went wrong, for a program to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the body is not JSON.
    MalformedJson,
    /// 400: the query string cannot be read.
    MalformedQuery,
    /// 400: an id in the path is not a UUID.
    InvalidId,
    /// 400: the feed's `after` is not a cursor it gave.
    InvalidCursor,
    /// 401: no bearer token, or not one of this call's kind.
    Unauthorized,
    /// 403: the token's campaign is deactivated.
    CampaignInactive,
    /// 404: unknown, or outside the token's campaign.
    NotFound,
    /// 409: the conversation's status does not allow the step.
    NotAllowed,
    /// 409: the agent is not the conversation's assigned one.
    NotAssignedAgent,
    /// 409: the conversation kept changing; try again.
    Conflict,
    /// 410: events after the feed's `after` were purged.
    CursorExpired,
    /// 413: the body is over 64 KiB.
    PayloadTooLarge,
    /// 422: a field is missing, of the wrong type or invalid (`field` names it).
    InvalidField,
    /// 500: unexpected; the cause is in the server's log.
    Internal,
    /// 503: the database cannot be reached.
    Unavailable,
}

/// A JSON error: every answer that is not a success.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    pub error: ErrorCode,
    /// What happened, in Spanish, for a person.
    pub message: String,
    /// The request field at fault (some 422 answers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub field: Option<&'static str>,
}

/// An API error, answered as JSON.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    field: Option<&'static str>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {:?}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl ApiError {
    fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "Falta el token de acceso o no es válido",
        )
    }

    /// The token is valid, but its campaign was deactivated.
    fn campaign_inactive() -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::CampaignInactive,
            "La campaña está desactivada: no se aceptan llamadas de una campaña inactiva",
        )
    }

    fn not_found(message: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }

    fn invalid_id() -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidId,
            "El identificador de la ruta no es válido",
        )
    }

    fn invalid(field: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            field: Some(field),
            ..ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::InvalidField,
                message,
            )
        }
    }

    fn from_json(error: JsonPayloadError) -> ApiError {
        match error {
            JsonPayloadError::OverflowKnownLength { .. }
            | JsonPayloadError::Overflow { .. }
            | JsonPayloadError::Payload(actix_web::error::PayloadError::Overflow) => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                format!("El cuerpo excede {} KiB", BODY_LIMIT / 1024),
            ),
            JsonPayloadError::Deserialize(e) if e.is_data() => ApiError {
                field: None,
                ..ApiError::invalid("body", format!("Un campo falta o no es válido: {e}"))
            },
            other => ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::MalformedJson,
                format!("El cuerpo no es JSON válido: {other}"),
            ),
        }
    }

    fn store(error: StoreError) -> ApiError {
        if error.is_unavailable() {
            tracing::warn!(error = ?error, "database unavailable");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                "La base de datos no está disponible; inténtalo de nuevo en unos segundos",
            )
        } else {
            tracing::error!(error = ?error, "unexpected store error");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "Ocurrió un error inesperado",
            )
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        ApiError::store(error)
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> ApiError {
        match error {
            ServiceError::NotFound => ApiError::not_found("No encontramos esa conversación"),
            ServiceError::NotAllowed(status) => ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::NotAllowed,
                TransitionError::refusal(status),
            ),
            ServiceError::NotTheAssignedAgent => ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::NotAssignedAgent,
                "La conversación no está asignada a ese agente",
            ),
            ServiceError::Invalid(field, message) => ApiError::invalid(field, message),
            ServiceError::Busy => ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::Conflict,
                "La conversación cambió mientras se procesaba; inténtalo de nuevo",
            ),
            ServiceError::Store(e) => ApiError::store(e),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let body = ErrorBody {
            error: self.code,
            message: self.message.clone(),
            field: self.field,
        };
        let mut response = HttpResponse::build(self.status);
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        response.json(body)
    }
}

/// The bearer token of the request, if any.
fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

pub use crate::app::state::TokenCache;

/// The scope of the request's integration token: its campaign, if active.
async fn integration_scope(req: &HttpRequest, state: &AppState) -> Result<Scope, ApiError> {
    let token = bearer(req).ok_or_else(ApiError::unauthorized)?;
    let auth = state
        .tokens
        .integrations
        .get_or_load(token_hash(token), || {
            state.store.integration_token_auth(token)
        })
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    if !auth.campaign_active {
        return Err(ApiError::campaign_inactive());
    }
    Ok(Scope::Campaigns(vec![auth.campaign_id]))
}

fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw.trim()).map_err(|_| ApiError::invalid_id())
}

fn parse_field_id(field: &'static str, raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw.trim())
        .map_err(|_| ApiError::invalid(field, "No es un identificador válido"))
}

fn optional_id(field: &'static str, raw: Option<&str>) -> Result<Option<Uuid>, ApiError> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(raw) => parse_field_id(field, raw).map(Some),
    }
}

fn timestamp(ts: Ts) -> String {
    ts.0.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A short required text field: trimmed, non-empty, bounded, no control characters.
fn short_field(field: &'static str, raw: &str) -> Result<String, ApiError> {
    let value = raw.trim();
    if value.is_empty() {
        return Err(ApiError::invalid(field, "No puede estar vacío"));
    }
    if value.chars().count() > SHORT_FIELD_MAX {
        return Err(ApiError::invalid(
            field,
            format!("Admite hasta {SHORT_FIELD_MAX} caracteres"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::invalid(field, "No admite caracteres de control"));
    }
    Ok(value.to_owned())
}

/// Message text: kept exactly as sent (control characters included), bounded.
/// NUL is the one character refused: PostgreSQL text cannot hold it.
fn message_text(raw: String) -> Result<String, ApiError> {
    crate::domain::transcript::check_text(&raw)
        .map_err(|e| ApiError::invalid("text", e.message()))?;
    Ok(raw)
}

/// A customer message, as the channel's connector delivers it.
#[derive(Deserialize, ToSchema)]
struct InboundBody {
    /// The channel's id of the message: a repeat writes nothing and
    /// answers what the first delivery got. 1 to 200 characters.
    message_id: String,
    /// The customer's address on the channel (a phone number, the
    /// channel's user id). 1 to 200 characters.
    from: String,
    /// The customer's name, when the channel knows it.
    #[serde(default)]
    name: Option<String>,
    /// Kept exactly as sent; at most 10,000 characters, no U+0000.
    text: String,
}

/// What a customer message did.
#[derive(Serialize, ToSchema)]
struct InboundAnswer {
    conversation_id: Uuid,
    folio: i64,
    /// Whether the message started a conversation (answer 201).
    new_conversation: bool,
    /// The closed conversation a new one follows, if any.
    #[schema(required = true)]
    reactivates_id: Option<Uuid>,
}

fn inbound_json(outcome: &InboundOutcome) -> HttpResponse {
    let status = if outcome.started_conversation {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    HttpResponse::build(status).json(InboundAnswer {
        conversation_id: outcome.conversation_id,
        folio: outcome.folio,
        new_conversation: outcome.started_conversation,
        reactivates_id: outcome.reactivates_id,
    })
}

/// The active channel of the path, authenticated by its own token: no or
/// an unknown token answers 401, another channel's token 404, the token of
/// a channel of a deactivated campaign 403.
async fn channel_auth(
    req: &HttpRequest,
    state: &AppState,
    raw_channel_id: &str,
) -> Result<ChannelAuth, ApiError> {
    let token = bearer(req).ok_or_else(ApiError::unauthorized)?;
    let auth = state
        .tokens
        .channels
        .get_or_load(token_hash(token), || state.store.channel_by_token(token))
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    let channel_id = parse_id(raw_channel_id)?;
    let channel = auth.channel;
    if channel.id != channel_id {
        return Err(ApiError::not_found("No encontramos ese canal"));
    }
    if !auth.campaign_active {
        return Err(ApiError::campaign_inactive());
    }
    if !channel.active {
        return Err(ApiError::not_found("No encontramos ese canal"));
    }
    Ok(channel)
}

/// A customer message.
///
/// Continues the contact's open conversation on the channel (200) or
/// starts a new one in ICR (201), linked by `reactivates_id` to the
/// contact's latest closed one.
#[utoipa::path(
    post,
    path = "/api/v1/channels/{channel_id}/messages",
    tag = "channels",
    security(("channel_token" = [])),
    params(("channel_id" = Uuid, Path, description = "The channel of the token")),
    request_body = InboundBody,
    responses(
        (status = 200, description = "Continues an open conversation, or repeats the answer to an earlier delivery of `message_id`", body = InboundAnswer),
        (status = 201, description = "Started a new conversation", body = InboundAnswer),
        (status = 400, description = "`malformed_json`, `invalid_id`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`campaign_inactive`", body = ErrorBody),
        (status = 404, description = "`not_found`: another channel's path, or an inactive channel", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 422, description = "`invalid_field`", body = ErrorBody),
    )
)]
async fn customer_message(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<InboundBody>,
) -> Result<HttpResponse, ApiError> {
    let channel = channel_auth(&req, &state, &path).await?;
    let body = body.into_inner();
    let name = match body.name.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(name) => Some(short_field("name", name)?),
    };
    let message = InboundMessage {
        message_id: short_field("message_id", &body.message_id)?,
        from: short_field("from", &body.from)?,
        name,
        text: message_text(body.text)?,
    };
    let outcome = conversations::customer_message(&state.store, &channel, &message).await?;
    Ok(inbound_json(&outcome))
}

/// Outbox items per poll when `limit` is not given, and at most.
const OUTBOX_PAGE: i64 = 50;
const OUTBOX_PAGE_MAX: i64 = 200;

/// `after` and `limit` of an outbox poll.
fn outbox_query(req: &HttpRequest) -> Result<(Option<Uuid>, i64), ApiError> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    let mut after = None;
    let mut limit = OUTBOX_PAGE;
    for (key, value) in pairs {
        match key.as_str() {
            "after" => after = optional_id("after", Some(&value))?,
            "limit" => {
                limit = value
                    .trim()
                    .parse()
                    .ok()
                    .filter(|n| (1..=OUTBOX_PAGE_MAX).contains(n))
                    .ok_or_else(|| {
                        ApiError::invalid(
                            "limit",
                            format!("Debe ser un número entero de 1 a {OUTBOX_PAGE_MAX}"),
                        )
                    })?;
            }
            _ => {}
        }
    }
    Ok((after, limit))
}

/// A message Relevo sends to a customer, waiting for the channel's connector.
#[derive(Serialize, ToSchema)]
struct OutboxItem {
    id: Uuid,
    conversation_id: Uuid,
    folio: i64,
    /// The contact's address on the channel.
    to: String,
    text: String,
    #[schema(schema_with = schemas::outbox_kind)]
    kind: &'static str,
    #[schema(format = DateTime)]
    created_at: String,
}

/// A page of the channel's outbox.
#[derive(Serialize, ToSchema)]
struct OutboxPage {
    items: Vec<OutboxItem>,
    /// Set when there may be more: pass it as `after`.
    #[schema(required = true)]
    next_after: Option<Uuid>,
}

/// The channel's outbox (deprecated: follow the event feed).
///
/// The channel's messages waiting for its connector to deliver them,
/// oldest first. `next_after` is set when there may be more; a poll starts
/// without `after`.
#[utoipa::path(
    get,
    path = "/api/v1/channels/{channel_id}/outbox",
    tag = "channels",
    security(("channel_token" = [])),
    params(
        ("channel_id" = Uuid, Path, description = "The channel of the token"),
        ("after" = Option<Uuid>, Query, description = "The `next_after` of the previous page"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 200, description = "Items per page, 1 to 200 (default 50)"),
    ),
    responses(
        (status = 200, description = "Pending items, oldest first", body = OutboxPage),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`campaign_inactive`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 422, description = "`invalid_field`: `after` or `limit`", body = ErrorBody),
    )
)]
#[deprecated = "follow the event feed; kept for connectors written against it"]
async fn outbox(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let channel = channel_auth(&req, &state, &path).await?;
    let (after, limit) = outbox_query(&req)?;
    let items = state.store.pending_outbox(channel.id, after, limit).await?;
    let next_after = (items.len() as i64 == limit)
        .then(|| items.last().map(|i| i.id))
        .flatten();
    let items = items
        .iter()
        .map(|i| OutboxItem {
            id: i.id,
            conversation_id: i.conversation_id,
            folio: i.folio,
            to: i.recipient.clone(),
            text: i.text.clone(),
            kind: i.kind.as_str(),
            created_at: timestamp(i.created_at),
        })
        .collect();
    Ok(HttpResponse::Ok().json(OutboxPage { items, next_after }))
}

/// An acknowledged outbox item.
#[derive(Serialize, ToSchema)]
struct Delivered {
    id: Uuid,
    /// The first acknowledgement's instant.
    #[schema(format = DateTime)]
    delivered_at: String,
    /// Whether it had been acknowledged before.
    already_delivered: bool,
}

/// The connector delivered an outbox item.
///
/// Repeating it is harmless and answers the first instant.
#[utoipa::path(
    post,
    path = "/api/v1/channels/{channel_id}/outbox/{id}/delivered",
    tag = "channels",
    security(("channel_token" = [])),
    params(
        ("channel_id" = Uuid, Path, description = "The channel of the token"),
        ("id" = Uuid, Path, description = "The outbox item"),
    ),
    responses(
        (status = 200, description = "The item left the outbox", body = Delivered),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`campaign_inactive`", body = ErrorBody),
        (status = 404, description = "`not_found`: not an item of the channel", body = ErrorBody),
    )
)]
#[deprecated = "follow the event feed; kept for connectors written against it"]
async fn outbox_delivered(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (channel_id, id) = path.into_inner();
    let channel = channel_auth(&req, &state, &channel_id).await?;
    let id = parse_id(&id)?;
    let acknowledged = state
        .store
        .acknowledge_outbox(channel.id, id, Ts::now())
        .await?
        .ok_or_else(|| ApiError::not_found("No encontramos ese mensaje en la bandeja del canal"))?;
    let (delivered_at, repeated) = match acknowledged {
        Acknowledged::Now(at) => (at, false),
        Acknowledged::Before(at) => (at, true),
    };
    Ok(HttpResponse::Ok().json(Delivered {
        id,
        delivered_at: timestamp(delivered_at),
        already_delivered: repeated,
    }))
}

/// A conversation's state after a step.
#[derive(Serialize, ToSchema)]
struct ConversationState {
    id: Uuid,
    folio: i64,
    #[schema(schema_with = schemas::status)]
    status: &'static str,
    /// The assigned agent.
    #[schema(required = true)]
    agent_id: Option<Uuid>,
    /// Incremented by every status change.
    version: i64,
}

fn state_json(conversation: &Conversation) -> ConversationState {
    ConversationState {
        id: conversation.id,
        folio: conversation.folio,
        status: conversation.status.as_str(),
        agent_id: conversation.agent_id,
        version: conversation.version,
    }
}

/// The bot asks for a human.
///
/// Outside the campaign's schedule the conversation goes to
/// `out_of_hours`; without a connected agent to `agents_offline`; otherwise
/// it is `assigned` to the connected agent with the fewest open
/// conversations.
#[utoipa::path(
    post,
    path = "/api/v1/conversations/{id}/handoff",
    tag = "conversations",
    security(("integration_token" = [])),
    params(("id" = Uuid, Path, description = "The conversation (not its folio)")),
    responses(
        (status = 200, description = "Where the conversation went", body = ConversationState),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`campaign_inactive`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`not_allowed` (not in ICR), `conflict`", body = ErrorBody),
    )
)]
async fn handoff(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let scope = integration_scope(&req, &state).await?;
    let id = parse_id(&path)?;
    let conversation = crate::services::router::handoff(&state.store, &scope, id).await?;
    Ok(HttpResponse::Ok().json(state_json(&conversation)))
}

/// An agent connects or disconnects.
#[derive(Deserialize, ToSchema)]
struct PresenceBody {
    connected: bool,
}

/// What a presence change did.
#[derive(Serialize, ToSchema)]
struct PresenceAnswer {
    agent_id: Uuid,
    connected: bool,
    /// Waiting conversations assigned to the agent by connecting.
    #[schema(minimum = 0)]
    assigned: usize,
}

/// An agent connects or disconnects.
///
/// Connecting assigns the campaign's waiting conversations, oldest first.
#[utoipa::path(
    post,
    path = "/api/v1/agents/{agent_id}/presence",
    tag = "agents",
    security(("integration_token" = [])),
    params(("agent_id" = Uuid, Path, description = "An agent of the token's campaign")),
    request_body = PresenceBody,
    responses(
        (status = 200, description = "The agent's presence", body = PresenceAnswer),
        (status = 400, description = "`malformed_json`, `invalid_id`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`campaign_inactive`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 422, description = "`invalid_field`", body = ErrorBody),
    )
)]
async fn presence(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<PresenceBody>,
) -> Result<HttpResponse, ApiError> {
    let scope = integration_scope(&req, &state).await?;
    let agent = parse_id(&path)?;
    let assigned = conversations::set_presence(&state.store, &scope, agent, body.connected)
        .await
        .map_err(|e| match e {
            ServiceError::NotFound => ApiError::not_found("No encontramos ese agente"),
            other => other.into(),
        })?;
    Ok(HttpResponse::Ok().json(PresenceAnswer {
        agent_id: agent,
        connected: body.connected,
        assigned,
    }))
}

/// An agent's reply.
#[derive(Deserialize, ToSchema)]
struct AgentMessageBody {
    /// The assigned agent.
    #[schema(format = Uuid)]
    agent_id: String,
    /// Kept exactly as sent; at most 10,000 characters, no U+0000.
    text: String,
}

/// An agent's reply.
///
/// The first one moves `assigned` to `in_progress`.
#[utoipa::path(
    post,
    path = "/api/v1/conversations/{id}/agent-messages",
    tag = "conversations",
    security(("integration_token" = [])),
    params(("id" = Uuid, Path, description = "The conversation (not its folio)")),
    request_body = AgentMessageBody,
    responses(
        (status = 200, description = "The conversation after the reply", body = ConversationState),
        (status = 400, description = "`malformed_json`, `invalid_id`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`campaign_inactive`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`not_allowed`, `not_assigned_agent`, `conflict`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 422, description = "`invalid_field`", body = ErrorBody),
    )
)]
async fn agent_message(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<AgentMessageBody>,
) -> Result<HttpResponse, ApiError> {
    let scope = integration_scope(&req, &state).await?;
    let id = parse_id(&path)?;
    let body = body.into_inner();
    let agent = parse_field_id("agent_id", &body.agent_id)?;
    let text = message_text(body.text)?;
    let conversation = conversations::agent_reply(&state.store, &scope, id, agent, &text).await?;
    Ok(HttpResponse::Ok().json(state_json(&conversation)))
}

/// A bot turn.
#[derive(Deserialize, ToSchema)]
struct BotMessageBody {
    /// The bot engine's id of the turn: a repeat writes nothing. 1 to 200
    /// characters.
    message_id: String,
    /// Kept exactly as sent; at most 10,000 characters, no U+0000.
    text: String,
}

/// A bot turn as recorded.
#[derive(Serialize, ToSchema)]
struct BotTurn {
    /// The message's id in Relevo.
    id: Uuid,
    conversation_id: Uuid,
    folio: i64,
    #[schema(schema_with = schemas::bot_author)]
    author: &'static str,
    message_id: String,
    #[schema(format = DateTime)]
    at: String,
    /// Whether the conversation had recorded this `message_id` before.
    already_recorded: bool,
}

/// A bot turn, kept in the transcript.
///
/// On a conversation in any open status (201); a retry of its
/// `message_id` answers the first recording (200).
#[utoipa::path(
    post,
    path = "/api/v1/conversations/{id}/bot-messages",
    tag = "conversations",
    security(("integration_token" = [])),
    params(("id" = Uuid, Path, description = "The conversation (not its folio)")),
    request_body = BotMessageBody,
    responses(
        (status = 200, description = "A repeated `message_id`: the first recording", body = BotTurn),
        (status = 201, description = "Recorded", body = BotTurn),
        (status = 400, description = "`malformed_json`, `invalid_id`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`campaign_inactive`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`not_allowed`: the conversation is closed", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 422, description = "`invalid_field`", body = ErrorBody),
    )
)]
async fn bot_message(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<BotMessageBody>,
) -> Result<HttpResponse, ApiError> {
    let scope = integration_scope(&req, &state).await?;
    let id = parse_id(&path)?;
    let body = body.into_inner();
    let message_id = short_field("message_id", &body.message_id)?;
    let text = message_text(body.text)?;
    let turn = conversations::bot_message(&state.store, &scope, id, &message_id, &text).await?;
    let status = if turn.repeated {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(HttpResponse::build(status).json(BotTurn {
        id: turn.message.id,
        conversation_id: turn.conversation.id,
        folio: turn.conversation.folio,
        author: Author::Bot.as_str(),
        message_id,
        at: timestamp(turn.message.at),
        already_recorded: turn.repeated,
    }))
}

/// The assigned agent closes the conversation.
#[derive(Deserialize, ToSchema)]
struct ResolveBody {
    /// The assigned agent.
    #[schema(format = Uuid)]
    agent_id: String,
    /// A closure category of the campaign (optional, checked like the
    /// console's).
    #[serde(default)]
    #[schema(format = Uuid)]
    category_id: Option<String>,
    /// A sub-category of `category_id`.
    #[serde(default)]
    #[schema(format = Uuid)]
    subcategory_id: Option<String>,
    /// At most 1000 characters, no U+0000.
    #[serde(default)]
    comment: Option<String>,
}

/// The assigned agent closes the conversation (`resolved`).
#[utoipa::path(
    post,
    path = "/api/v1/conversations/{id}/resolve",
    tag = "conversations",
    security(("integration_token" = [])),
    params(("id" = Uuid, Path, description = "The conversation (not its folio)")),
    request_body = ResolveBody,
    responses(
        (status = 200, description = "The resolved conversation", body = ConversationState),
        (status = 400, description = "`malformed_json`, `invalid_id`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`campaign_inactive`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`not_allowed`, `not_assigned_agent`, `conflict`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 422, description = "`invalid_field`", body = ErrorBody),
    )
)]
async fn resolve(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<ResolveBody>,
) -> Result<HttpResponse, ApiError> {
    let scope = integration_scope(&req, &state).await?;
    let id = parse_id(&path)?;
    let agent = parse_field_id("agent_id", &body.agent_id)?;
    let category = optional_id("category_id", body.category_id.as_deref())?;
    let subcategory = optional_id("subcategory_id", body.subcategory_id.as_deref())?;
    let conversation = conversations::resolve(
        &state.store,
        &scope,
        id,
        agent,
        category,
        subcategory,
        body.comment.as_deref().unwrap_or(""),
    )
    .await?;
    Ok(HttpResponse::Ok().json(state_json(&conversation)))
}

/// An automatic-cancellation nudge with its delivery state.
#[derive(Serialize, ToSchema)]
struct Nudge {
    rule_id: Uuid,
    /// The rule's name.
    rule: String,
    /// Null once purged by the retention policy.
    #[schema(required = true)]
    text: Option<String>,
    #[schema(format = DateTime)]
    sent_at: String,
    /// Its outbox item (none for nudges recorded before the outbox).
    #[schema(required = true)]
    outbox_id: Option<Uuid>,
    #[schema(format = DateTime, required = true)]
    delivered_at: Option<String>,
}

impl From<&NudgeSent> for Nudge {
    fn from(n: &NudgeSent) -> Nudge {
        Nudge {
            rule_id: n.rule_id,
            rule: n.rule_name.clone(),
            text: n.text.clone(),
            sent_at: timestamp(n.sent_at),
            outbox_id: n.outbox_id,
            delivered_at: n.delivered_at.map(timestamp),
        }
    }
}

/// One entry of a conversation's history.
#[derive(Serialize, ToSchema)]
struct HistoryEntry {
    #[schema(format = DateTime)]
    at: String,
    #[schema(schema_with = schemas::history_kind)]
    kind: &'static str,
    #[schema(schema_with = schemas::status_or_null, required = true)]
    from_status: Option<String>,
    #[schema(schema_with = schemas::status)]
    to_status: &'static str,
    /// Agents' names as they were.
    #[schema(required = true)]
    from_agent: Option<String>,
    #[schema(required = true)]
    to_agent: Option<String>,
    #[schema(required = true)]
    category: Option<String>,
    #[schema(required = true)]
    subcategory: Option<String>,
    #[schema(required = true)]
    comment: Option<String>,
    #[schema(schema_with = schemas::history_actor_kind)]
    actor_kind: &'static str,
    #[schema(required = true)]
    actor: Option<String>,
    /// The automatic-cancellation rule that wrote the entry, and its name.
    #[schema(required = true)]
    rule_id: Option<Uuid>,
    #[schema(required = true)]
    rule: Option<String>,
}

impl From<&HistoryRow> for HistoryEntry {
    fn from(h: &HistoryRow) -> HistoryEntry {
        HistoryEntry {
            at: timestamp(h.at),
            kind: h.kind.as_str(),
            from_status: h.from_status.clone(),
            to_status: h.to_status.as_str(),
            from_agent: h.from_agent_name.clone(),
            to_agent: h.to_agent_name.clone(),
            category: h.category_name.clone(),
            subcategory: h.subcategory_name.clone(),
            comment: h.comment.clone(),
            actor_kind: h.actor_kind.as_str(),
            actor: h.actor_name.clone(),
            rule_id: h.rule_id,
            rule: h.rule_name.clone(),
        }
    }
}

/// One message of the transcript (`text` null once purged).
#[derive(Serialize, ToSchema)]
struct Message {
    id: Uuid,
    #[schema(schema_with = schemas::author)]
    author: &'static str,
    #[schema(schema_with = schemas::direction)]
    direction: String,
    /// The channel's id (customer messages) or the bot engine's (bot turns).
    #[schema(required = true)]
    message_id: Option<String>,
    #[schema(required = true)]
    agent_id: Option<Uuid>,
    /// The agent's name.
    #[schema(required = true)]
    agent: Option<String>,
    #[schema(required = true)]
    text: Option<String>,
    #[schema(format = DateTime, required = true)]
    text_purged_at: Option<String>,
    #[schema(format = DateTime)]
    at: String,
}

impl From<&MessageRow> for Message {
    fn from(m: &MessageRow) -> Message {
        Message {
            id: m.id,
            author: m.author.as_str(),
            direction: m.direction.clone(),
            message_id: m.message_id.clone(),
            agent_id: m.agent_id,
            agent: m.agent_name.clone(),
            text: m.text.clone(),
            text_purged_at: m.text_purged_at.map(timestamp),
            at: timestamp(m.at),
        }
    }
}

/// The customer of a conversation.
#[derive(Serialize, ToSchema)]
struct Contact {
    id: Uuid,
    /// The contact's address on the channel.
    external_id: String,
    #[schema(required = true)]
    name: Option<String>,
}

/// How a closed conversation was closed (all null while open).
#[derive(Serialize, ToSchema)]
struct Closure {
    #[schema(required = true)]
    category_id: Option<Uuid>,
    #[schema(required = true)]
    category: Option<String>,
    #[schema(required = true)]
    subcategory_id: Option<Uuid>,
    #[schema(required = true)]
    subcategory: Option<String>,
    #[schema(required = true)]
    comment: Option<String>,
    /// Who closed it.
    #[schema(required = true)]
    closed_by: Option<String>,
}

/// A conversation with its history, messages and nudges.
#[derive(Serialize, ToSchema)]
struct ConversationDetail {
    id: Uuid,
    folio: i64,
    campaign_id: Uuid,
    /// The campaign's name.
    campaign: String,
    channel_id: Uuid,
    #[schema(schema_with = schemas::channel_kind)]
    channel_kind: &'static str,
    contact: Contact,
    #[schema(schema_with = schemas::status)]
    status: &'static str,
    /// The status in Spanish, as the console shows it.
    status_label: &'static str,
    is_open: bool,
    version: i64,
    #[schema(required = true)]
    agent_id: Option<Uuid>,
    /// The assigned agent's name.
    #[schema(required = true)]
    agent: Option<String>,
    #[schema(format = DateTime)]
    started_at: String,
    #[schema(format = DateTime)]
    last_activity_at: String,
    #[schema(format = DateTime, required = true)]
    closed_at: Option<String>,
    closure: Closure,
    /// The closed conversation this one follows.
    #[schema(required = true)]
    reactivates_id: Option<Uuid>,
    /// Oldest first.
    history: Vec<HistoryEntry>,
    /// One page of the transcript, oldest first: the latest
    /// `messages_limit` messages (default 200), or those before
    /// `messages_before`.
    messages: Vec<Message>,
    /// The `messages_before` that asks for the older page; null when
    /// `messages` reach back to the conversation's first message.
    #[schema(required = true)]
    older_messages: Option<String>,
    nudges: Vec<Nudge>,
}

impl ConversationDetail {
    fn new(found: &ConversationReads) -> ConversationDetail {
        let row = &found.row;
        ConversationDetail {
            id: row.id,
            folio: row.folio,
            campaign_id: row.campaign_id,
            campaign: row.campaign_name.clone(),
            channel_id: row.channel_id,
            channel_kind: row.channel_kind.as_str(),
            contact: Contact {
                id: row.contact_id,
                external_id: row.contact_external_id.clone(),
                name: row.contact_name.clone(),
            },
            status: row.status.as_str(),
            status_label: row.status.label(),
            is_open: row.status.is_open(),
            version: row.version,
            agent_id: row.agent_id,
            agent: row.agent_name.clone(),
            started_at: timestamp(row.started_at),
            last_activity_at: timestamp(row.last_activity_at),
            closed_at: row.closed_at.map(timestamp),
            closure: Closure {
                category_id: found.closure_ids.closure_category_id,
                category: row.category_name.clone(),
                subcategory_id: found.closure_ids.closure_subcategory_id,
                subcategory: row.subcategory_name.clone(),
                comment: row.closure_comment.clone(),
                closed_by: row.closer_name.clone(),
            },
            reactivates_id: found.closure_ids.reactivates_id,
            history: found.history.iter().rev().map(Into::into).collect(),
            messages: found.transcript.messages.iter().map(Into::into).collect(),
            older_messages: found.transcript.older.map(transcript::cursor_value),
            nudges: found.nudges.iter().map(Into::into).collect(),
        }
    }
}

/// A query string's pairs; one that cannot be read answers 400
/// `malformed_query`.
fn query_pairs(raw: &str) -> Result<Vec<(String, String)>, ApiError> {
    serde_urlencoded::from_str(raw).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::MalformedQuery,
            "La consulta no es válida",
        )
    })
}

/// Messages of a transcript per answer when the request does not say.
pub const MESSAGES_DEFAULT: usize = 200;
/// Most messages of a transcript per answer.
pub const MESSAGES_MAX: usize = 1000;

/// `messages_before` and `messages_limit` of a conversation's query
/// string: which page of its transcript to answer with, and its size.
/// Unknown keys are ignored.
fn messages_query(raw: &str) -> Result<(TranscriptPosition, usize), ApiError> {
    let pairs = query_pairs(raw)?;
    let (mut position, mut size) = (TranscriptPosition::Latest, MESSAGES_DEFAULT);
    for (key, value) in pairs {
        let value = value.trim();
        match key.as_str() {
            "messages_before" if value.is_empty() => {}
            "messages_before" => {
                let key = transcript::parse_cursor(value).ok_or_else(|| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        ErrorCode::InvalidCursor,
                        "El cursor no es válido: usa el valor de `older_messages` de una \
                         respuesta anterior (invalid cursor: use the `older_messages` of an \
                         earlier answer)",
                    )
                })?;
                position = TranscriptPosition::Before(key);
            }
            "messages_limit" => {
                let limit: usize = value.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    ApiError::invalid(
                        "messages_limit",
                        format!("Debe ser un número entero de 1 a {MESSAGES_MAX}"),
                    )
                })?;
                size = limit.min(MESSAGES_MAX);
            }
            _ => {}
        }
    }
    Ok((position, size))
}

/// A conversation.
///
/// Current state, closure, history (oldest first), one page of its
/// messages (oldest first; the latest unless `messages_before` says
/// otherwise) and the automatic nudges with their delivery state.
#[utoipa::path(
    get,
    path = "/api/v1/conversations/{id}",
    tag = "conversations",
    security(("integration_token" = [])),
    params(
        ("id" = Uuid, Path, description = "The conversation (not its folio)"),
        ("messages_before" = Option<String>, Query, description = "The `older_messages` of an earlier answer: the messages before it; absent: the latest"),
        ("messages_limit" = Option<i64>, Query, minimum = 1, description = "Messages per answer (default 200; more than 1000 is capped at 1000)"),
    ),
    responses(
        (status = 200, description = "The conversation", body = ConversationDetail),
        (status = 400, description = "`invalid_id`, `invalid_cursor` or `malformed_query`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`campaign_inactive`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 422, description = "`invalid_field`: `messages_limit`", body = ErrorBody),
    )
)]
async fn conversation(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let scope = integration_scope(&req, &state).await?;
    let id = parse_id(&path)?;
    let (messages, size) = messages_query(req.query_string())?;
    let found = state
        .store
        .conversation_reads(&scope, ConversationKey::Id(id), messages, size)
        .await?
        .ok_or_else(|| ApiError::not_found("No encontramos esa conversación"))?;
    Ok(HttpResponse::Ok().json(ConversationDetail::new(&found)))
}
