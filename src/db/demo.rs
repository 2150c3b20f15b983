//! Writing a demo data set (see `crate::services::demo`) in one transaction.

use uuid::Uuid;

use chrono::{DateTime, Utc};

use crate::domain::conversation::Transition;
use crate::domain::{Author, ChannelKind, Conversation, Role};

use super::transcripts::NewMessage;
use super::{StoreResult, Ts, with_write};

// The plan: what `services::demo` generates and this module writes.

pub struct PlannedCampaign {
    pub id: Uuid,
    pub name: String,
    pub timezone: String,
    /// (weekday 0 = Monday, opens, closes)
    pub schedule: Vec<(i32, String, String)>,
}

pub struct PlannedUser {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub connected: bool,
    pub password_hash: Option<String>,
    pub campaigns: Vec<Uuid>,
}

pub struct PlannedChannel {
    pub id: Uuid,
    pub campaign_id: Uuid,
    pub kind: ChannelKind,
    pub name: String,
    pub token_hash: String,
}

pub struct PlannedCategory {
    pub id: Uuid,
    pub campaign_id: Uuid,
    pub name: String,
    pub position: i32,
    pub active: bool,
    pub subcategories: Vec<(Uuid, String)>,
}

pub struct PlannedContact {
    pub id: Uuid,
    pub channel_id: Uuid,
    pub external_id: String,
    pub name: Option<String>,
}

pub struct PlannedConversation {
    /// The final state (folio is assigned by the database).
    pub state: Conversation,
    pub started_at: Ts,
    pub reactivates: Option<Uuid>,
    /// Transitions after creation, oldest first.
    pub events: Vec<Transition>,
    /// Its transcript, oldest first.
    pub messages: Vec<PlannedMessage>,
}

/// A message of a planned conversation.
pub struct PlannedMessage {
    pub author: Author,
    pub agent_id: Option<Uuid>,
    pub message_id: Option<String>,
    pub text: String,
    pub at: DateTime<Utc>,
}

/// Everything `relevo demo` writes.
pub struct DemoPlan {
    pub campaigns: Vec<PlannedCampaign>,
    pub users: Vec<PlannedUser>,
    pub channels: Vec<PlannedChannel>,
    pub categories: Vec<PlannedCategory>,
    pub contacts: Vec<PlannedContact>,
    pub conversations: Vec<PlannedConversation>,
}

/// What `relevo demo` created, for the start-up banner.
#[derive(Debug, Clone, Default)]
pub struct DemoSummary {
    pub campaigns: usize,
    pub agents: usize,
    pub conversations: usize,
}

impl super::Store {
    /// Whether the database has no users yet (a fresh install).
    pub async fn is_empty(&self) -> StoreResult<bool> {
        let users: i64 = super::with_read!(self, |pool| {
            sqlx::query_scalar("select count(*) from users")
                .fetch_one(pool)
                .await?
        });
        Ok(users == 0)
    }

    /// Inserts the whole plan in one transaction: all of it or nothing.
    // long: a linear seeding script, one insert loop per table in foreign-key order; nothing in it is a step of its own.
    pub async fn insert_demo(&self, plan: &DemoPlan, now: Ts) -> StoreResult<DemoSummary> {
        with_write!(self, |pool| {
            let mut tx = super::backend::begin_write(pool).await?;
            for c in &plan.campaigns {
                sqlx::query(
                    "insert into campaigns (id, name, name_key, active, timezone, created_at, updated_at) \
                     values ($1, $2, $3, true, $4, $5, $5)",
                )
                .bind(c.id)
                .bind(&c.name)
                .bind(crate::domain::text::fold(&c.name))
                .bind(&c.timezone)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                for (weekday, opens, closes) in &c.schedule {
                    sqlx::query(
                        "insert into campaign_schedules (campaign_id, weekday, opens_at, closes_at) values ($1, $2, $3, $4)",
                    )
                    .bind(c.id)
                    .bind(*weekday)
                    .bind(opens)
                    .bind(closes)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            for u in &plan.users {
                sqlx::query(
                    "insert into users (id, email, name, role, active, connected, password_hash, created_at, updated_at) \
                     values ($1, $2, $3, $4, true, $5, $6, $7, $7)",
                )
                .bind(u.id)
                .bind(&u.email)
                .bind(&u.name)
                .bind(u.role.as_str())
                .bind(u.connected)
                .bind(&u.password_hash)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                for campaign in &u.campaigns {
                    sqlx::query(
                        "insert into campaign_members (campaign_id, user_id, created_at) values ($1, $2, $3)",
                    )
                    .bind(*campaign)
                    .bind(u.id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            for ch in &plan.channels {
                sqlx::query(
                    "insert into channels (id, campaign_id, kind, name, token_hash, active, created_at) \
                     values ($1, $2, $3, $4, $5, true, $6)",
                )
                .bind(ch.id)
                .bind(ch.campaign_id)
                .bind(ch.kind.as_str())
                .bind(&ch.name)
                .bind(&ch.token_hash)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            for cat in &plan.categories {
                sqlx::query(
                    "insert into closure_categories (id, campaign_id, name, name_key, position, active, created_at) \
                     values ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(cat.id)
                .bind(cat.campaign_id)
                .bind(&cat.name)
                .bind(crate::domain::text::fold(&cat.name))
                .bind(cat.position)
                .bind(cat.active)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                for (position, sub) in cat.subcategories.iter().enumerate() {
                    sqlx::query(
                        "insert into closure_subcategories (id, category_id, name, name_key, position, active, created_at) \
                         values ($1, $2, $3, $4, $5, true, $6)",
                    )
                    .bind(sub.0)
                    .bind(cat.id)
                    .bind(&sub.1)
                    .bind(crate::domain::text::fold(&sub.1))
                    .bind(position as i32)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            for k in &plan.contacts {
                sqlx::query(
                    "insert into contacts (id, channel_id, external_id, name, name_key, created_at) \
                     values ($1, $2, $3, $4, $5, $6)",
                )
                .bind(k.id)
                .bind(k.channel_id)
                .bind(&k.external_id)
                .bind(&k.name)
                .bind(k.name.as_deref().map(crate::domain::text::fold))
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            for conv in &plan.conversations {
                // The latest transition or message, whichever came last.
                let last = conv
                    .events
                    .iter()
                    .map(|e| Ts::new(e.at))
                    .chain(conv.messages.iter().map(|m| Ts::new(m.at)))
                    .fold(conv.started_at, Ts::max);
                let closing = conv.events.iter().rev().find(|e| e.closes());
                sqlx::query(
                    "insert into conversations (id, campaign_id, channel_id, contact_id, status, is_open, version, \
                       agent_id, started_at, last_activity_at, closed_at, closed_by, closer_kind, \
                       closure_category_id, closure_subcategory_id, closure_comment, reactivates_id) \
                     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
                )
                .bind(conv.state.id)
                .bind(conv.state.campaign_id)
                .bind(conv.state.channel_id)
                .bind(conv.state.contact_id)
                .bind(conv.state.status.as_str())
                .bind(conv.state.status.is_open())
                .bind(conv.state.version)
                .bind(conv.state.agent_id)
                .bind(conv.started_at)
                .bind(last)
                .bind(closing.map(|e| Ts::new(e.at)))
                .bind(closing.and_then(|e| e.actor.user_id()))
                .bind(closing.map(|e| e.actor.kind().as_str()))
                .bind(closing.and_then(|e| e.category_id))
                .bind(closing.and_then(|e| e.subcategory_id))
                .bind(closing.and_then(|e| e.comment.as_deref()))
                .bind(conv.reactivates)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "insert into conversation_events (id, conversation_id, at, kind, from_status, to_status, \
                       from_agent_id, to_agent_id, category_id, subcategory_id, comment, actor_kind, actor_id) \
                     values ($1, $2, $3, 'created', null, 'icr', null, null, null, null, null, 'customer', null)",
                )
                .bind(Uuid::now_v7())
                .bind(conv.state.id)
                .bind(conv.started_at)
                .execute(&mut *tx)
                .await?;
                for e in &conv.events {
                    sqlx::query(
                        "insert into conversation_events (id, conversation_id, at, kind, from_status, to_status, \
                           from_agent_id, to_agent_id, category_id, subcategory_id, comment, actor_kind, actor_id) \
                         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                    )
                    .bind(Uuid::now_v7())
                    .bind(conv.state.id)
                    .bind(Ts::new(e.at))
                    .bind(e.kind.as_str())
                    .bind(e.from_status.as_str())
                    .bind(e.to_status.as_str())
                    .bind(e.from_agent)
                    .bind(e.to_agent)
                    .bind(e.category_id)
                    .bind(e.subcategory_id)
                    .bind(e.comment.as_deref())
                    .bind(e.actor.kind().as_str())
                    .bind(e.actor.user_id())
                    .execute(&mut *tx)
                    .await?;
                }
                for m in &conv.messages {
                    NewMessage {
                        id: Uuid::now_v7(),
                        conversation_id: conv.state.id,
                        author: m.author,
                        message_id: m.message_id.as_deref(),
                        agent_id: m.agent_id,
                        text: &m.text,
                        at: Ts::new(m.at),
                    }
                    .insert()?
                    .execute(&mut *tx)
                    .await?;
                }
            }
            tx.commit().await?;
        });
        Ok(DemoSummary {
            campaigns: plan.campaigns.len(),
            agents: plan
                .users
                .iter()
                .filter(|u| u.role == crate::domain::Role::Agent)
                .count(),
            conversations: plan.conversations.len(),
        })
    }
}
