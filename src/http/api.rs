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

use actix_web::error::JsonPayloadError;
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use chrono::SecondsFormat;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::app::state::AppState;
use crate::db::{
    Acknowledged, ChannelAuth, HistoryRow, InboundMessage, InboundOutcome, MessageRow, NudgeSent,
    StoreError, Ts, token_hash,
};
use crate::domain::{Author, Conversation, Scope, TransitionError};
use crate::services::conversations::{self, ServiceError};

mod events;

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 64 * 1024;
/// Longest accepted `message_id`, `from` and `name`, in characters.
const SHORT_FIELD_MAX: usize = 200;

/// The `/api/v1` scope with its JSON limits and JSON errors.
pub fn scope() -> actix_web::Scope {
    web::scope("/api/v1")
        .app_data(
            web::JsonConfig::default()
                .limit(BODY_LIMIT)
                .content_type_required(false)
                .error_handler(|error, _req| ApiError::from_json(error).into()),
        )
        .app_data(web::PathConfig::default().error_handler(|_, _| ApiError::invalid_id().into()))
        .route(
            "/channels/{channel_id}/messages",
            web::post().to(customer_message),
        )
        .route("/channels/{channel_id}/outbox", web::get().to(outbox))
        .route(
            "/channels/{channel_id}/outbox/{id}/delivered",
            web::post().to(outbox_delivered),
        )
        .route("/conversations/{id}", web::get().to(conversation))
        .route("/conversations/{id}/handoff", web::post().to(handoff))
        .route(
            "/conversations/{id}/agent-messages",
            web::post().to(agent_message),
        )
        .route(
            "/conversations/{id}/bot-messages",
            web::post().to(bot_message),
        )
        .route("/conversations/{id}/resolve", web::post().to(resolve))
        .route("/agents/{agent_id}/presence", web::post().to(presence))
        .route("/events", web::get().to(events::feed))
        .default_service(web::to(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "No existe ese recurso de la API",
            )
            .error_response()
        }))
}

/// An API error, answered as JSON.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<&'static str>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
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
            "unauthorized",
            "Falta el token de acceso o no es válido",
        )
    }

    /// The token is valid, but its campaign was deactivated.
    fn campaign_inactive() -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "campaign_inactive",
            "La campaña está desactivada: no se aceptan llamadas de una campaña inactiva",
        )
    }

    fn not_found(message: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    fn invalid_id() -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_id",
            "El identificador de la ruta no es válido",
        )
    }

    fn invalid(field: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            field: Some(field),
            ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message)
        }
    }

    fn from_json(error: JsonPayloadError) -> ApiError {
        match error {
            JsonPayloadError::OverflowKnownLength { .. }
            | JsonPayloadError::Overflow { .. }
            | JsonPayloadError::Payload(actix_web::error::PayloadError::Overflow) => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("El cuerpo excede {} KiB", BODY_LIMIT / 1024),
            ),
            JsonPayloadError::Deserialize(e) if e.is_data() => ApiError {
                field: None,
                ..ApiError::invalid("body", format!("Un campo falta o no es válido: {e}"))
            },
            other => ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("El cuerpo no es JSON válido: {other}"),
            ),
        }
    }

    fn store(error: StoreError) -> ApiError {
        if error.is_unavailable() {
            tracing::warn!(error = ?error, "database unavailable");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "La base de datos no está disponible; inténtalo de nuevo en unos segundos",
            )
        } else {
            tracing::error!(error = ?error, "unexpected store error");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
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
                "not_allowed",
                TransitionError::refusal(status),
            ),
            ServiceError::NotTheAssignedAgent => ApiError::new(
                StatusCode::CONFLICT,
                "not_assigned_agent",
                "La conversación no está asignada a ese agente",
            ),
            ServiceError::Invalid(field, message) => ApiError::invalid(field, message),
            ServiceError::Busy => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
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
        let mut body = json!({ "error": self.code, "message": self.message });
        if let Some(field) = self.field {
            body["field"] = json!(field);
        }
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

#[derive(Deserialize)]
struct InboundBody {
    message_id: String,
    from: String,
    #[serde(default)]
    name: Option<String>,
    text: String,
}

fn inbound_json(outcome: &InboundOutcome) -> HttpResponse {
    let status = if outcome.started_conversation {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    HttpResponse::build(status).json(json!({
        "conversation_id": outcome.conversation_id,
        "folio": outcome.folio,
        "new_conversation": outcome.started_conversation,
        "reactivates_id": outcome.reactivates_id,
    }))
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

/// `POST /channels/{channel_id}/messages`: a customer message.
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

/// `GET /channels/{channel_id}/outbox?after=&limit=`: the channel's messages
/// waiting for its connector to deliver them, oldest first. `next_after` is
/// set when there may be more; a poll starts without `after`.
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
    let items: Vec<Value> = items
        .iter()
        .map(|i| {
            json!({
                "id": i.id,
                "conversation_id": i.conversation_id,
                "folio": i.folio,
                "to": i.recipient,
                "text": i.text,
                "kind": i.kind.as_str(),
                "created_at": timestamp(i.created_at),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "items": items, "next_after": next_after })))
}

/// `POST /channels/{channel_id}/outbox/{id}/delivered`: the connector
/// delivered the item. Repeating it is harmless and answers the first instant.
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
    Ok(HttpResponse::Ok().json(json!({
        "id": id,
        "delivered_at": timestamp(delivered_at),
        "already_delivered": repeated,
    })))
}

fn state_json(conversation: &Conversation) -> Value {
    json!({
        "id": conversation.id,
        "folio": conversation.folio,
        "status": conversation.status.as_str(),
        "agent_id": conversation.agent_id,
        "version": conversation.version,
    })
}

/// `POST /conversations/{id}/handoff`: the bot asks for a human.
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

#[derive(Deserialize)]
struct PresenceBody {
    connected: bool,
}

/// `POST /agents/{agent_id}/presence`: an agent connects or disconnects.
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
    Ok(HttpResponse::Ok().json(json!({
        "agent_id": agent,
        "connected": body.connected,
        "assigned": assigned,
    })))
}

#[derive(Deserialize)]
struct AgentMessageBody {
    agent_id: String,
    text: String,
}

/// `POST /conversations/{id}/agent-messages`: an agent's reply.
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

#[derive(Deserialize)]
struct BotMessageBody {
    message_id: String,
    text: String,
}

/// `POST /conversations/{id}/bot-messages`: a bot turn, kept in the
/// transcript (201; a retry of its `message_id` answers the first
/// recording, 200).
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
    Ok(HttpResponse::build(status).json(json!({
        "id": turn.message.id,
        "conversation_id": turn.conversation.id,
        "folio": turn.conversation.folio,
        "author": Author::Bot.as_str(),
        "message_id": message_id,
        "at": timestamp(turn.message.at),
        "already_recorded": turn.repeated,
    })))
}

#[derive(Deserialize)]
struct ResolveBody {
    agent_id: String,
    #[serde(default)]
    category_id: Option<String>,
    #[serde(default)]
    subcategory_id: Option<String>,
    #[serde(default)]
    comment: Option<String>,
}

/// `POST /conversations/{id}/resolve`: the assigned agent closes it.
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

/// One automatic nudge as the API shows it, with its delivery state.
fn nudge_json(n: &NudgeSent) -> Value {
    json!({
        "rule_id": n.rule_id,
        "rule": n.rule_name,
        "text": n.text,
        "sent_at": timestamp(n.sent_at),
        "outbox_id": n.outbox_id,
        "delivered_at": n.delivered_at.map(timestamp),
    })
}

/// One history event as the API shows it.
fn history_json(h: &HistoryRow) -> Value {
    json!({
        "at": timestamp(h.at),
        "kind": h.kind.as_str(),
        "from_status": h.from_status,
        "to_status": h.to_status.as_str(),
        "from_agent": h.from_agent_name,
        "to_agent": h.to_agent_name,
        "category": h.category_name,
        "subcategory": h.subcategory_name,
        "comment": h.comment,
        "actor_kind": h.actor_kind.as_str(),
        "actor": h.actor_name,
        "rule_id": h.rule_id,
        "rule": h.rule_name,
    })
}

/// One message as the API shows it (`text` null once purged).
fn message_json(m: &MessageRow) -> Value {
    json!({
        "id": m.id,
        "author": m.author.as_str(),
        "direction": m.direction,
        "message_id": m.message_id,
        "agent_id": m.agent_id,
        "agent": m.agent_name,
        "text": m.text,
        "text_purged_at": m.text_purged_at.map(timestamp),
        "at": timestamp(m.at),
    })
}

/// `GET /conversations/{id}`: current state, history (oldest first),
/// messages, and the automatic nudges with their delivery state.
async fn conversation(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let scope = integration_scope(&req, &state).await?;
    let id = parse_id(&path)?;
    let found = state
        .store
        .api_conversation(&scope, id)
        .await?
        .ok_or_else(|| ApiError::not_found("No encontramos esa conversación"))?;
    let nudges: Vec<Value> = state
        .store
        .nudges_of(id)
        .await?
        .iter()
        .map(nudge_json)
        .collect();
    let row = &found.detail.row;
    let history: Vec<Value> = found
        .detail
        .history
        .iter()
        .rev()
        .map(history_json)
        .collect();
    let messages: Vec<Value> = found.messages.iter().map(message_json).collect();
    Ok(HttpResponse::Ok().json(json!({
        "id": row.id,
        "folio": row.folio,
        "campaign_id": row.campaign_id,
        "campaign": row.campaign_name,
        "channel_id": row.channel_id,
        "channel_kind": row.channel_kind.as_str(),
        "contact": {
            "id": row.contact_id,
            "external_id": row.contact_external_id,
            "name": row.contact_name,
        },
        "status": row.status.as_str(),
        "status_label": row.status.label(),
        "is_open": row.status.is_open(),
        "version": row.version,
        "agent_id": row.agent_id,
        "agent": row.agent_name,
        "started_at": timestamp(row.started_at),
        "last_activity_at": timestamp(row.last_activity_at),
        "closed_at": row.closed_at.map(timestamp),
        "closure": {
            "category_id": found.closure_category_id,
            "category": row.category_name,
            "subcategory_id": found.closure_subcategory_id,
            "subcategory": row.subcategory_name,
            "comment": row.closure_comment,
            "closed_by": row.closer_name,
        },
        "reactivates_id": found.reactivates_id,
        "history": history,
        "messages": messages,
        "nudges": nudges,
    })))
}
