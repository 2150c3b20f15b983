//! The integration API's outbox: messages Relevo sends to customers (today
//! the automatic-cancellation nudges), kept until the channel's connector
//! collects them.
//!
//! The server never calls out. A connector polls
//! `GET /api/v1/channels/{id}/outbox` with its channel token, sends what it
//! gets, and acknowledges each delivery. Items stay pending until
//! acknowledged, so a connector that crashes mid-way sees them again on its
//! next poll: delivery is at least once, and the outbox id lets the
//! connector drop repeats.
//!
//! An item is written in the same transaction as the outbound message it
//! carries (see [`Store::record_nudge`](super::Store::record_nudge)), so a
//! recorded nudge is always in the outbox and never twice.

use uuid::Uuid;

use super::row::from_row;
use super::{StoreResult, Ts, with_read, with_write};

/// Writes an outbox item: (id, channel, conversation, message, kind, created at).
pub(super) const INSERT_OUTBOX: &str = "insert into outbox_messages (id, channel_id, \
    conversation_id, message_id, kind, created_at, delivered_at) \
    values ($1, $2, $3, $4, $5, $6, null)";

/// What an outbox item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxKind {
    /// An automatic-cancellation rule's "¿sigues ahí?" before it cancels.
    Nudge,
}

impl OutboxKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxKind::Nudge => "nudge",
        }
    }
}

impl TryFrom<String> for OutboxKind {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        match value.as_str() {
            "nudge" => Ok(OutboxKind::Nudge),
            _ => Err(format!("unknown outbox kind {value:?}")),
        }
    }
}

from_row! {
    /// A pending item as its channel's connector receives it.
    #[derive(Debug, Clone)]
    pub struct OutboxItem {
        pub id: Uuid,
        pub conversation_id: Uuid,
        pub folio: i64,
        /// The customer's address on the channel (the contact's external id).
        pub recipient: String,
        pub text: String,
        #[try_from(String)]
        pub kind: OutboxKind,
        pub created_at: Ts,
    }
}

/// What an acknowledgement found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acknowledged {
    /// Marked delivered now, at this instant.
    Now(Ts),
    /// Already marked delivered at this instant (a repeated acknowledgement).
    Before(Ts),
}

impl super::Store {
    /// Undelivered items of `channel_id` after `after` (an item id), in id
    /// order, at most `limit`. Ids are UUIDv7, so this is creation order
    /// within one instance; an item committed late with a smaller id than
    /// one already paged past is still pending, and the next poll from the
    /// start returns it.
    pub async fn pending_outbox(
        &self,
        channel_id: Uuid,
        after: Option<Uuid>,
        limit: i64,
    ) -> StoreResult<Vec<OutboxItem>> {
        Ok(with_read!(self, |pool| {
            let mut qb = sqlx::QueryBuilder::new(
                "select o.id, o.conversation_id, c.folio, k.external_id as recipient, m.text, \
                 o.kind, o.created_at from outbox_messages o \
                 join messages m on m.id = o.message_id \
                 join conversations c on c.id = o.conversation_id \
                 join contacts k on k.id = c.contact_id \
                 where o.channel_id = ",
            );
            qb.push_bind(channel_id);
            qb.push(" and o.delivered_at is null");
            if let Some(after) = after {
                qb.push(" and o.id > ");
                qb.push_bind(after);
            }
            qb.push(" order by o.id limit ");
            qb.push_bind(limit);
            qb.build_query_as().fetch_all(pool).await?
        }))
    }

    /// Marks item `id` of `channel_id` delivered at `at`, once: a repeated
    /// acknowledgement changes nothing and reports the first instant.
    /// `None` when the channel has no such item.
    pub async fn acknowledge_outbox(
        &self,
        channel_id: Uuid,
        id: Uuid,
        at: Ts,
    ) -> StoreResult<Option<Acknowledged>> {
        let marked = with_write!(self, |pool| {
            sqlx::query(
                "update outbox_messages set delivered_at = $3 \
                 where id = $1 and channel_id = $2 and delivered_at is null",
            )
            .bind(id)
            .bind(channel_id)
            .bind(at)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if marked == 1 {
            return Ok(Some(Acknowledged::Now(at)));
        }
        let before: Option<Option<Ts>> = with_read!(self, |pool| {
            sqlx::query_scalar(
                "select delivered_at from outbox_messages where id = $1 and channel_id = $2",
            )
            .bind(id)
            .bind(channel_id)
            .fetch_optional(pool)
            .await?
        });
        Ok(before.flatten().map(Acknowledged::Before))
    }
}
