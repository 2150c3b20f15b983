//! The closed sets of strings the API answers (statuses, kinds, authors),
//! as schemas for `#[schema(schema_with = …)]`: each is read from the
//! domain's own list of values, so a new status or kind reaches the
//! OpenAPI document by itself.

use utoipa::openapi::schema::{Object, ObjectBuilder, SchemaType, Type};

use crate::db::{EventType, OutboxKind};
use crate::domain::{ActorKind, Author, ChannelKind, EventKind, Status};

/// A string that is one of `values` (or null, when `nullable`).
fn one_of(values: impl IntoIterator<Item = &'static str>, nullable: bool) -> Object {
    let mut allowed: Vec<serde_json::Value> = Vec::new();
    for value in values {
        if !allowed.iter().any(|v| v == value) {
            allowed.push(value.into());
        }
    }
    let builder = if nullable {
        allowed.push(serde_json::Value::Null);
        ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::String, Type::Null]))
    } else {
        ObjectBuilder::new().schema_type(Type::String)
    };
    builder.enum_values(Some(allowed)).build()
}

/// A conversation's status.
pub(super) fn status() -> Object {
    one_of(Status::ALL.iter().map(|s| s.as_str()), false)
}

/// A conversation's status, or null (before the first).
pub(super) fn status_or_null() -> Object {
    one_of(Status::ALL.iter().map(|s| s.as_str()), true)
}

pub(super) fn channel_kind() -> Object {
    one_of(ChannelKind::ALL.iter().map(|k| k.as_str()), false)
}

/// What a history entry records.
pub(super) fn history_kind() -> Object {
    one_of(EventKind::ALL.iter().map(|k| k.as_str()), false)
}

/// Who made a history entry's transition.
pub(super) fn history_actor_kind() -> Object {
    one_of(ActorKind::ALL.iter().map(|k| k.as_str()), false)
}

/// Who wrote a message.
pub(super) fn author() -> Object {
    one_of(Author::ALL.iter().map(|a| a.as_str()), false)
}

pub(super) fn author_or_null() -> Object {
    one_of(Author::ALL.iter().map(|a| a.as_str()), true)
}

/// `inbound` (the customer's) or `outbound`.
pub(super) fn direction() -> Object {
    one_of(Author::ALL.iter().map(|a| a.direction()), false)
}

pub(super) fn direction_or_null() -> Object {
    one_of(Author::ALL.iter().map(|a| a.direction()), true)
}

/// A bot turn's author: always `bot`.
pub(super) fn bot_author() -> Object {
    one_of([Author::Bot.as_str()], false)
}

pub(super) fn outbox_kind() -> Object {
    one_of([OutboxKind::Nudge.as_str()], false)
}

/// An event's `type`.
pub(super) fn event_type() -> Object {
    one_of(EventType::ALL.iter().map(|t| t.as_str()), false)
}

/// An event's `actor.kind`, as the triggers of migration 0019 name it:
/// a history row's actor, with the system's split into `router`, `rule`
/// and `bulk_job`; `bot` for a bot turn, `system` for a nudge.
pub(super) fn event_actor_kind() -> Object {
    one_of(
        [
            "customer",
            "agent",
            "bot",
            "administrator",
            "router",
            "rule",
            "bulk_job",
            "system",
        ],
        false,
    )
}
