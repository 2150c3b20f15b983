//! `GET /api/v1/events?after=CURSOR&limit=N&wait=S`: the integration
//! token's campaign's events in order, after `after` (absent: from the
//! oldest kept), at most `limit` (default 100, capped at 1000), waiting up
//! to `wait` seconds (at most 25) for one when there is none yet. The
//! answer's `next` is the cursor to come back with; a consumer that always
//! does misses nothing (see [`crate::services::events`]).

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::{ApiError, integration_scope, timestamp};
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
        "invalid_cursor",
        "El cursor no es válido: usa el valor de `next` de una respuesta anterior \
         (invalid cursor: use the `next` of an earlier answer)",
    )
}

/// `after`, `limit` and `wait` of the query string; unknown keys are ignored.
fn feed_query(raw: &str) -> Result<FeedQuery, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_query",
            "La consulta no es válida",
        )
    })?;
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
            "invalid_cursor",
            format!(
                "El cursor es posterior al evento más reciente ({high_water}): \
                 usa el valor de `next` de una respuesta anterior \
                 (cursor is after the newest event)"
            ),
        ),
        CursorError::Expired { oldest_kept } => ApiError::new(
            StatusCode::GONE,
            "cursor_expired",
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

/// An event as the feed answers it.
fn event_json(e: &EventRow) -> Value {
    let mut event = json!({
        "id": e.cursor,
        "type": e.kind.as_str(),
        "occurred_at": timestamp(e.occurred_at),
        "conversation": {
            "id": e.conversation_id,
            "folio": e.folio,
            "campaign_id": e.campaign_id,
            "channel_id": e.channel_id,
            "status": e.status,
            "agent_id": e.agent_id,
            "contact": {
                "id": e.contact_id,
                "external_id": e.contact_external_id,
            },
        },
        "previous": {
            "status": e.previous_status,
            "agent_id": e.previous_agent_id,
        },
        "actor": {
            "kind": e.actor_kind,
            "id": e.actor_id,
            "name": e.actor_name,
        },
        "comment": e.comment,
    });
    if e.kind.closes() {
        event["closure"] = json!({
            "category_id": e.category_id,
            "category": e.category_name,
            "subcategory_id": e.subcategory_id,
            "subcategory": e.subcategory_name,
            "comment": e.comment,
        });
    }
    if e.reactivates_id.is_some() {
        event["reactivates_id"] = json!(e.reactivates_id);
    }
    if let Some(id) = e.message_id {
        event["message"] = json!({
            "id": id,
            "author": e.message_author,
            "direction": e.message_direction,
            "channel_message_id": e.channel_message_id,
            "text": e.message_text,
        });
    }
    event
}

/// `GET /events`: the token's campaign's events after `after`.
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
    let items: Vec<Value> = page.page.events.iter().map(event_json).collect();
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(json!({ "events": items, "next": page.next })))
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
            assert_eq!(e.code, "invalid_cursor", "{bad}");
        }
        assert!(feed_query("limit=0").is_err());
        assert!(feed_query("wait=soon").is_err());
    }
}
