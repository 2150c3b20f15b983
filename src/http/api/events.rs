//! `GET /api/v1/events?after=CURSOR&limit=N&wait=S`: the integration
//! token's campaign's events in order, after `after` (absent: from the
//! oldest kept), at most `limit` (default 100, capped at 1000), waiting up
//! to `wait` seconds (at most 25) for one when there is none yet. The
//! answer's `next` is the cursor to come back with; a consumer that always
//! does misses nothing (see [`crate::services::events`]).

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{ApiError, ErrorBody, ErrorCode, integration_scope, query_pairs, schemas, timestamp};
use crate::app::state::AppState;
use crate::db::EventRow;
use crate::domain::Scope;
use crate::services::events::{self, CursorError, DEFAULT_LIMIT, MAX_LIMIT, MAX_WAIT};

/// A feed request's parameters, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FeedQuery {
    after: Option<i64>,
    limit: i64,
    wait: Duration,
}

fn invalid_cursor() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::InvalidCursor,
        "El cursor no es válido: usa el valor de `next` de una respuesta anterior \
         (invalid cursor: use the `next` of an earlier answer)",
    )
}

/// `after`, `limit` and `wait` of the query string; unknown keys are ignored.
fn feed_query(raw: &str) -> Result<FeedQuery, ApiError> {
    let pairs = query_pairs(raw)?;
    let mut query = FeedQuery {
        after: None,
        limit: DEFAULT_LIMIT,
        wait: Duration::ZERO,
    };
    for (key, value) in pairs {
        let value = value.trim();
        match key.as_str() {
            "after" if value.is_empty() => {}
            "after" => {
                // Digits only: no sign, no spaces inside, no exponent.
                let cursor = value
                    .bytes()
                    .all(|b| b.is_ascii_digit())
                    .then(|| value.parse::<i64>().ok())
                    .flatten()
                    .ok_or_else(invalid_cursor)?;
                query.after = Some(cursor);
            }
            "limit" => {
                let limit: i64 = value.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    ApiError::invalid(
                        "limit",
                        format!("Debe ser un número entero de 1 a {MAX_LIMIT}"),
                    )
                })?;
                query.limit = limit.min(MAX_LIMIT);
            }
            "wait" => {
                let seconds: u64 = value.parse().map_err(|_| {
                    ApiError::invalid(
                        "wait",
                        format!(
                            "Debe ser un número entero de segundos de 0 a {}",
                            MAX_WAIT.as_secs()
                        ),
                    )
                })?;
                query.wait = Duration::from_secs(seconds).min(MAX_WAIT);
            }
            _ => {}
        }
    }
    Ok(query)
}

fn cursor_error(error: CursorError) -> ApiError {
    match error {
        CursorError::Future { high_water } => ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidCursor,
            format!(
                "El cursor es posterior al evento más reciente ({high_water}): \
                 usa el valor de `next` de una respuesta anterior \
                 (cursor is after the newest event)"
            ),
        ),
        CursorError::Expired { oldest_kept } => ApiError::new(
            StatusCode::GONE,
            ErrorCode::CursorExpired,
            format!(
                "El cursor es anterior al evento más antiguo que se conserva ({oldest_kept}): \
                 los eventos posteriores a él ya se eliminaron por la política de retención \
                 (RELEVO_EVENT_DAYS). Vuelve a leer el estado de tus conversaciones y pide \
                 el feed sin `after` \
                 (cursor expired: events after it were purged; resynchronise and start \
                 again without `after`)"
            ),
        ),
    }
}

/// The conversation as the event left it.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventConversation {
    pub id: Uuid,
    pub folio: i64,
    pub campaign_id: Uuid,
    pub channel_id: Uuid,
    #[schema(schema_with = schemas::status)]
    pub status: String,
    /// The assigned agent.
    #[schema(required = true)]
    pub agent_id: Option<Uuid>,
    pub contact: EventContact,
}

/// The customer: where a nudge goes.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventContact {
    pub id: Uuid,
    /// The contact's address on the channel (a phone number or the
    /// channel's user id).
    pub external_id: String,
}

/// The conversation before the event (the same for messages).
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPrevious {
    /// Null for the event that created the conversation.
    #[schema(schema_with = schemas::status_or_null, required = true)]
    pub status: Option<String>,
    #[schema(required = true)]
    pub agent_id: Option<Uuid>,
}

/// Who made the change.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventActor {
    #[schema(schema_with = schemas::event_actor_kind)]
    pub kind: String,
    /// The user, the automatic rule or the bulk job, when there is one.
    #[schema(required = true)]
    pub id: Option<Uuid>,
    /// Their name as it was (a bulk job: the administrator who started it).
    #[schema(required = true)]
    pub name: Option<String>,
}

/// How the conversation was closed (`resolved` and `cancelled` only).
#[derive(Debug, Serialize, ToSchema)]
pub struct EventClosure {
    #[schema(required = true)]
    pub category_id: Option<Uuid>,
    #[schema(required = true)]
    pub category: Option<String>,
    #[schema(required = true)]
    pub subcategory_id: Option<Uuid>,
    #[schema(required = true)]
    pub subcategory: Option<String>,
    #[schema(required = true)]
    pub comment: Option<String>,
}

/// The message of a message event.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventMessage {
    pub id: Uuid,
    #[schema(schema_with = schemas::author_or_null, required = true)]
    pub author: Option<String>,
    #[schema(schema_with = schemas::direction_or_null, required = true)]
    pub direction: Option<String>,
    /// The channel's id of a customer message, the bot engine's of a bot turn.
    #[schema(required = true)]
    pub channel_message_id: Option<String>,
    /// Null once purged by `RELEVO_TRANSCRIPT_DAYS`.
    #[schema(required = true)]
    pub text: Option<String>,
}

/// One change of a conversation: an item of `GET /api/v1/events`, and the
/// whole body of a webhook delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct Event {
    /// The event's cursor: increasing, in commit order.
    pub id: i64,
    #[serde(rename = "type")]
    #[schema(schema_with = schemas::event_type)]
    pub kind: &'static str,
    #[schema(format = DateTime)]
    pub occurred_at: String,
    pub conversation: EventConversation,
    pub previous: EventPrevious,
    pub actor: EventActor,
    #[schema(required = true)]
    pub comment: Option<String>,
    /// Present on `resolved` and `cancelled`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub closure: Option<EventClosure>,
    /// Present on `reactivated`: the closed conversation this one follows.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub reactivates_id: Option<Uuid>,
    /// Present on `message_received`, `message_sent` and `customer_nudge`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub message: Option<EventMessage>,
}

impl From<&EventRow> for Event {
    fn from(e: &EventRow) -> Event {
        Event {
            id: e.cursor,
            kind: e.kind.as_str(),
            occurred_at: timestamp(e.occurred_at),
            conversation: EventConversation {
                id: e.conversation_id,
                folio: e.folio,
                campaign_id: e.campaign_id,
                channel_id: e.channel_id,
                status: e.status.clone(),
                agent_id: e.agent_id,
                contact: EventContact {
                    id: e.contact_id,
                    external_id: e.contact_external_id.clone(),
                },
            },
            previous: EventPrevious {
                status: e.previous_status.clone(),
                agent_id: e.previous_agent_id,
            },
            actor: EventActor {
                kind: e.actor_kind.clone(),
                id: e.actor_id,
                name: e.actor_name.clone(),
            },
            comment: e.comment.clone(),
            closure: e.kind.closes().then(|| EventClosure {
                category_id: e.category_id,
                category: e.category_name.clone(),
                subcategory_id: e.subcategory_id,
                subcategory: e.subcategory_name.clone(),
                comment: e.comment.clone(),
            }),
            reactivates_id: e.reactivates_id,
            message: e.message_id.map(|id| EventMessage {
                id,
                author: e.message_author.clone(),
                direction: e.message_direction.clone(),
                channel_message_id: e.channel_message_id.clone(),
                text: e.message_text.clone(),
            }),
        }
    }
}

/// A page of the feed.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPageBody {
    /// In cursor order.
    pub events: Vec<Event>,
    /// The cursor to come back with as `after`: the last event of a full
    /// page, otherwise the newest cursor of the whole log.
    pub next: i64,
}

/// The campaign's event feed.
///
/// The token's campaign's events after `after` (absent: from the oldest
/// kept), at most `limit`, waiting up to `wait` seconds for one when there
/// is none yet. Come back with `next`: a consumer that always does misses
/// nothing. Delivery is at least once from the consumer's side: make
/// processing idempotent by event `id`.
#[utoipa::path(
    get,
    path = "/api/v1/events",
    operation_id = "events",
    tag = "events",
    security(("integration_token" = [])),
    params(
        ("after" = Option<i64>, Query, minimum = 0, description = "The `next` of the previous answer; absent: from the oldest event kept"),
        ("limit" = Option<i64>, Query, minimum = 1, description = "Events per page (default 100; more than 1000 is capped at 1000)"),
        ("wait" = Option<i64>, Query, minimum = 0, description = "Seconds to hold an empty answer open for an event (default 0; more than 25 is capped at 25)"),
    ),
    responses(
        (status = 200, description = "A page of events", body = EventPageBody,
            headers(("Cache-Control" = String, description = "`no-store`"))),
        (status = 400, description = "`invalid_cursor`, `malformed_query`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`campaign_inactive`", body = ErrorBody),
        (status = 410, description = "`cursor_expired`: events after `after` were purged; resynchronise and start again without `after`", body = ErrorBody),
        (status = 422, description = "`invalid_field`: `limit` or `wait`", body = ErrorBody),
    )
)]
pub(super) async fn feed(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let scope = integration_scope(&req, &state).await?;
    let Scope::Campaigns(campaigns) = scope else {
        return Err(ApiError::unauthorized());
    };
    let [campaign] = campaigns[..] else {
        return Err(ApiError::unauthorized());
    };
    let query = feed_query(req.query_string())?;
    let read = events::read(&state.store, campaign, query.after, query.limit, query.wait).await?;
    let page = read.map_err(cursor_error)?;
    let events = page.page.events.iter().map(Event::from).collect();
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(EventPageBody {
            events,
            next: page.next,
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_feed_query_parses_digits_caps_limit_and_wait_and_refuses_garbage() {
        let q = feed_query("").unwrap();
        assert_eq!((q.after, q.limit, q.wait), (None, 100, Duration::ZERO));
        let q = feed_query("after=42&limit=5000&wait=90").unwrap();
        assert_eq!((q.after, q.limit, q.wait), (Some(42), 1000, MAX_WAIT));
        for bad in [
            "after=-1",
            "after=abc",
            "after=1e3",
            "after=99999999999999999999",
            "after=%2B5",
        ] {
            let e = feed_query(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidCursor, "{bad}");
        }
        assert!(feed_query("limit=0").is_err());
        assert!(feed_query("wait=soon").is_err());
    }
}
