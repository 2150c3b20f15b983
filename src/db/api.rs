//! What the integration API, the router and the traffic simulator read and
//! write: tokens (stored only as hex SHA-256), inbound customer messages
//! (idempotent per channel and `message_id`), agent messages, presence, and
//! the router's look-ups (schedule, connected agents' load, waiting queue).
//!
//! Status changes never happen here: they go through the domain transition
//! functions and [`Store::apply_transition`](super::Store::apply_transition).
//! The writes here that touch a conversation (a new conversation, new
//! activity) publish a change like a transition does.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::row::from_row;
use super::transcripts::NewMessage;
use super::transitions::ApplyWith;
use super::{NotifyInTx, StoreResult, Ts, with_read, with_write};
use crate::domain::schedule::{DayHours, parse_hhmm};
use crate::domain::{Author, ChannelKind, Conversation, Scope, Status, Transition};
use crate::live::{Change, Event};

/// A random token of 32 bytes, hex-encoded (64 characters).
pub fn random_token() -> String {
    use argon2::password_hash::rand_core::{OsRng, RngCore};
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex SHA-256 of a token: the only form in which tokens are stored.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

from_row! {
    /// The channel a channel token belongs to.
    #[derive(Debug, Clone, Copy)]
    pub struct ChannelAuth {
        pub id: Uuid,
        pub campaign_id: Uuid,
        pub active: bool,
    }
}

/// What a channel token authenticates: its channel, and whether the
/// channel's campaign is active (a deactivated campaign's tokens are refused).
#[derive(Debug, Clone, Copy)]
pub struct ChannelToken {
    pub channel: ChannelAuth,
    pub campaign_active: bool,
}

/// What an integration token authenticates: the campaign it acts for, and
/// whether that campaign is active.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntegrationToken {
    pub campaign_id: Uuid,
    pub campaign_active: bool,
}

/// A customer message as the API received it, already validated.
#[derive(Debug, Clone)]
pub struct InboundMessage {
    pub message_id: String,
    /// The customer's address on the channel (phone number, channel code).
    pub from: String,
    pub name: Option<String>,
    /// Kept exactly as received.
    pub text: String,
}

/// What a customer message did. A retry of the same `message_id` gets the
/// outcome of its first delivery back, with `replayed` set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundOutcome {
    pub conversation_id: Uuid,
    pub folio: i64,
    /// The message started a new conversation (in ICR).
    pub started_conversation: bool,
    /// The final conversation a new one reactivates, if any.
    pub reactivates_id: Option<Uuid>,
    /// This delivery was a retry: nothing was written.
    pub replayed: bool,
}

from_row! {
    /// The transition state of a conversation (what [`Conversation`] needs).
    struct StateRow {
        id: Uuid,
        folio: i64,
        campaign_id: Uuid,
        channel_id: Uuid,
        contact_id: Uuid,
        #[try_from(String)]
        status: Status,
        version: i64,
        agent_id: Option<Uuid>,
    }
}

impl StateRow {
    fn into_domain(self) -> Conversation {
        Conversation {
            id: self.id,
            folio: self.folio,
            campaign_id: self.campaign_id,
            channel_id: self.channel_id,
            contact_id: self.contact_id,
            status: self.status,
            version: self.version,
            agent_id: self.agent_id,
        }
    }
}

const STATE_BY_ID: &str = "select id, folio, campaign_id, channel_id, contact_id, status, \
    version, agent_id from conversations where id = $1";

const WAITING: &str = "select id, folio, campaign_id, channel_id, contact_id, status, \
    version, agent_id from conversations \
    where campaign_id = $1 and status in ('out_of_hours', 'agents_offline') \
    order by started_at, folio limit $2";

const RECENT_IN_STATUS: &str = "select id, folio, campaign_id, channel_id, contact_id, status, \
    version, agent_id from conversations where status = $1 \
    order by last_activity_at desc, folio desc limit $2";

/// An agent's later reply moves the activity only while the conversation is
/// still as it was read (`$3`, its version: any transition moves it), and
/// takes the row's lock before the message is written, so a reply never
/// lands on a conversation cancelled, reassigned or resolved meanwhile.
const TOUCH_ACTIVITY_IF_UNCHANGED: &str = "update conversations set last_activity_at = \
     case when $2 > last_activity_at then $2 else last_activity_at end \
     where id = $1 and version = $3";

/// An agent's message to `conversation_id` at `at`.
fn agent_message<'a>(
    id: Uuid,
    conversation_id: Uuid,
    agent_id: Uuid,
    text: &'a str,
    at: Ts,
) -> NewMessage<'a> {
    NewMessage {
        id,
        conversation_id,
        author: Author::Agent,
        message_id: None,
        agent_id: Some(agent_id),
        text,
        at,
    }
}

impl super::Store {
    /// Whether the pools were closed (background tasks stop then).
    pub fn is_closed(&self) -> bool {
        match self {
            super::Store::Sqlite(pools) => pools.write.is_closed(),
            super::Store::Postgres(pg) => pg.pool.is_closed(),
        }
    }

    /// Creates an integration token for the campaign named `campaign`
    /// (case-insensitive) and returns `(token id, plaintext)`; the plaintext
    /// is not kept. `None` when no campaign has that name.
    pub async fn create_integration_token(
        &self,
        campaign: &str,
        label: &str,
        now: Ts,
    ) -> StoreResult<Option<(Uuid, String)>> {
        let Some(campaign_id) = self.campaign_id_by_name(campaign).await? else {
            return Ok(None);
        };
        let id = Uuid::now_v7();
        let token = format!("rlv_{}", crate::db::random_token());
        with_write!(self, |pool| {
            sqlx::query(
                "insert into integration_tokens (id, name, token_hash, created_at, revoked_at, \
                 campaign_id) values ($1, $2, $3, $4, null, $5)",
            )
            .bind(id)
            .bind(label)
            .bind(token_hash(&token))
            .bind(now)
            .bind(campaign_id)
            .execute(pool)
            .await?;
        });
        Ok(Some((id, token)))
    }

    /// Gives a channel a new token and returns it (the old one stops
    /// working); `None` for an unknown channel.
    pub async fn rotate_channel_token(&self, channel_id: Uuid) -> StoreResult<Option<String>> {
        let token = format!("rlv_ch_{}", crate::db::random_token());
        // The old token must stop working on every instance at once.
        let event = Event::DirectoryChanged;
        let notification = self.feed().notification(event);
        let updated = with_write!(self, |pool| {
            let mut tx = super::backend::begin_write(pool).await?;
            let updated = sqlx::query("update channels set token_hash = $2 where id = $1")
                .bind(channel_id)
                .bind(token_hash(&token))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.notify_change(&notification).await?;
            tx.commit().await?;
            updated
        });
        self.publish(event);
        Ok((updated == 1).then_some(token))
    }

    /// The campaign an unrevoked integration token acts for.
    pub async fn integration_token_campaign(&self, token: &str) -> StoreResult<Option<Uuid>> {
        let campaign: Option<Option<Uuid>> = with_read!(self, |pool| {
            sqlx::query_scalar(
                "select campaign_id from integration_tokens \
                 where token_hash = $1 and revoked_at is null",
            )
            .bind(token_hash(token))
            .fetch_optional(pool)
            .await?
        });
        Ok(campaign.flatten())
    }

    /// The campaign an unrevoked integration token acts for, with that
    /// campaign's active flag.
    pub async fn integration_token_auth(
        &self,
        token: &str,
    ) -> StoreResult<Option<IntegrationToken>> {
        let row: Option<(Uuid, bool)> = with_read!(self, |pool| {
            sqlx::query_as(
                "select t.campaign_id, p.active from integration_tokens t \
                 join campaigns p on p.id = t.campaign_id \
                 where t.token_hash = $1 and t.revoked_at is null",
            )
            .bind(token_hash(token))
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(|(campaign_id, campaign_active)| IntegrationToken {
            campaign_id,
            campaign_active,
        }))
    }

    /// The channel a channel token belongs to, with its campaign's active flag.
    pub async fn channel_by_token(&self, token: &str) -> StoreResult<Option<ChannelToken>> {
        let row: Option<(Uuid, Uuid, bool, bool)> = with_read!(self, |pool| {
            sqlx::query_as(
                "select h.id, h.campaign_id, h.active, p.active from channels h \
                 join campaigns p on p.id = h.campaign_id where h.token_hash = $1",
            )
            .bind(token_hash(token))
            .fetch_optional(pool)
            .await?
        });
        Ok(
            row.map(|(id, campaign_id, active, campaign_active)| ChannelToken {
                channel: ChannelAuth {
                    id,
                    campaign_id,
                    active,
                },
                campaign_active,
            }),
        )
    }

    /// Channels: (id, campaign, kind, active), by campaign and kind.
    pub async fn channels(&self) -> StoreResult<Vec<(Uuid, Uuid, ChannelKind, bool)>> {
        let rows: Vec<(Uuid, Uuid, String, bool)> = with_read!(self, |pool| {
            sqlx::query_as(
                "select id, campaign_id, kind, active from channels order by campaign_id, kind, id",
            )
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .filter_map(|(id, campaign, kind, active)| {
                ChannelKind::parse(&kind).map(|k| (id, campaign, k, active))
            })
            .collect())
    }

    /// A conversation's transition state by its id, if the scope covers it.
    pub async fn conversation_state(
        &self,
        scope: &Scope,
        id: Uuid,
    ) -> StoreResult<Option<Conversation>> {
        let row: Option<StateRow> = with_read!(self, |pool| {
            sqlx::query_as(STATE_BY_ID)
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row
            .map(StateRow::into_domain)
            .filter(|c| scope.allows(c.campaign_id)))
    }

    /// Records an agent's message and the activity it means. Not a
    /// transition: the status and version stay.
    pub async fn record_agent_message(
        &self,
        conversation: &Conversation,
        agent_id: Uuid,
        text: &str,
        now: Ts,
    ) -> StoreResult<bool> {
        let event = Event::Changed(Change {
            conversation_id: conversation.id,
            campaign_id: conversation.campaign_id,
            version: conversation.version,
        });
        let notification = self.feed().notification(event);
        let written = with_write!(self, |pool| {
            let mut tx = super::backend::begin_write(pool).await?;
            let touched = sqlx::query(TOUCH_ACTIVITY_IF_UNCHANGED)
                .bind(conversation.id)
                .bind(now)
                .bind(conversation.version)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if touched == 1 {
                agent_message(Uuid::now_v7(), conversation.id, agent_id, text, now)
                    .insert()?
                    .execute(&mut *tx)
                    .await?;
                tx.notify_change(&notification).await?;
                tx.commit().await?;
            }
            touched == 1
        });
        if written {
            self.publish(event);
        }
        Ok(written)
    }

    /// An agent's first reply: the transition `t` (Asignada → En Proceso,
    /// through the compare-and-set) and the agent's message, stamped at the
    /// transition's instant, in one transaction: the status never changes
    /// without the reply, nor the reply land without the status. True when
    /// written; false when the conversation had changed since `t` was
    /// computed (nothing written).
    pub async fn record_first_reply(
        &self,
        t: &Transition,
        agent_id: Uuid,
        text: &str,
    ) -> StoreResult<bool> {
        let event = Event::Changed(Change {
            conversation_id: t.conversation_id,
            campaign_id: t.campaign_id,
            version: t.expected_version + 1,
        });
        let message = (Uuid::now_v7(), Ts::new(t.at));
        let applied = match self {
            // On the write lane, like every transition (see [`super::write_lane`]).
            super::Store::Sqlite(pools) => {
                let (write, t, text) = (pools.write.clone(), t.clone(), text.to_owned());
                self.on_write_lane(async move {
                    let mut tx = super::backend::begin_write(&write).await?;
                    if !super::transitions::apply_sqlite(&mut tx, &t, ApplyWith::default()).await? {
                        return Ok::<_, sqlx::Error>(false);
                    }
                    agent_message(message.0, t.conversation_id, agent_id, &text, message.1)
                        .insert()?
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(true)
                })
                .await?
            }
            super::Store::Postgres(pg) => {
                let notification = self.feed().notification(event);
                let mut tx = pg.pool.begin().await?;
                if super::transitions::apply_postgres(
                    &mut tx,
                    t,
                    ApplyWith::default(),
                    &notification,
                )
                .await?
                {
                    agent_message(message.0, t.conversation_id, agent_id, text, message.1)
                        .insert()?
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    true
                } else {
                    false
                }
            }
        };
        if applied {
            self.publish(event);
            crate::telemetry::METRICS.transition_applied(t.kind.as_str());
        }
        Ok(applied)
    }

    /// An agent's active flag and campaigns; `None` if no agent has this id.
    pub async fn agent_campaigns(&self, agent_id: Uuid) -> StoreResult<Option<(bool, Vec<Uuid>)>> {
        let active: Option<bool> = with_read!(self, |pool| {
            sqlx::query_scalar("select active from users where id = $1 and role = 'agent'")
                .bind(agent_id)
                .fetch_optional(pool)
                .await?
        });
        let Some(active) = active else {
            return Ok(None);
        };
        let campaigns: Vec<Uuid> = with_read!(self, |pool| {
            sqlx::query_scalar(
                "select campaign_id from campaign_members where user_id = $1 order by campaign_id",
            )
            .bind(agent_id)
            .fetch_all(pool)
            .await?
        });
        Ok(Some((active, campaigns)))
    }

    /// Marks an agent connected or disconnected. The rows of the agent's
    /// Asignada and En Proceso conversations say whether the agent is
    /// connected, so each is announced as changed (live tables re-render
    /// them; cached views of their campaigns are reloaded).
    pub async fn set_agent_presence(
        &self,
        agent_id: Uuid,
        connected: bool,
        now: Ts,
    ) -> StoreResult<()> {
        let feed = self.feed().clone();
        let waiting: Vec<(Uuid, Uuid, i64)> = with_write!(self, |pool| {
            let mut tx = super::backend::begin_write(pool).await?;
            sqlx::query(
                "update users set connected = $2, updated_at = $3 where id = $1 and role = 'agent'",
            )
            .bind(agent_id)
            .bind(connected)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let waiting: Vec<(Uuid, Uuid, i64)> = sqlx::query_as(
                "select id, campaign_id, version from conversations \
                 where agent_id = $1 and is_open = $2 and status in ('assigned', 'in_progress')",
            )
            .bind(agent_id)
            .bind(true)
            .fetch_all(&mut *tx)
            .await?;
            for (conversation_id, campaign_id, version) in &waiting {
                let event = Event::Changed(Change {
                    conversation_id: *conversation_id,
                    campaign_id: *campaign_id,
                    version: *version,
                });
                tx.notify_change(&feed.notification(event)).await?;
            }
            tx.commit().await?;
            waiting
        });
        for (conversation_id, campaign_id, version) in waiting {
            self.publish(Event::Changed(Change {
                conversation_id,
                campaign_id,
                version,
            }));
        }
        Ok(())
    }

    /// Agents with their connected flag (for the simulator).
    pub async fn agents_presence(&self) -> StoreResult<Vec<(Uuid, bool)>> {
        Ok(with_read!(self, |pool| {
            sqlx::query_as(
                "select id, connected from users where role = 'agent' and active order by id",
            )
            .fetch_all(pool)
            .await?
        }))
    }

    /// A campaign's time zone (as stored) and weekly hours; `None` for an
    /// unknown or inactive campaign (the router treats both as closed, so
    /// it never assigns a deactivated campaign's conversations). Malformed
    /// hours are skipped (the day is closed).
    pub async fn campaign_hours(
        &self,
        campaign_id: Uuid,
    ) -> StoreResult<Option<(String, Vec<DayHours>)>> {
        let timezone: Option<String> = with_read!(self, |pool| {
            sqlx::query_scalar("select timezone from campaigns where id = $1 and active")
                .bind(campaign_id)
                .fetch_optional(pool)
                .await?
        });
        let Some(timezone) = timezone else {
            return Ok(None);
        };
        let rows: Vec<(i32, String, String)> = with_read!(self, |pool| {
            sqlx::query_as(
                "select weekday, opens_at, closes_at from campaign_schedules \
                 where campaign_id = $1 order by weekday",
            )
            .bind(campaign_id)
            .fetch_all(pool)
            .await?
        });
        let days = rows
            .into_iter()
            .filter_map(|(weekday, opens, closes)| {
                Some((
                    u32::try_from(weekday).ok()?,
                    parse_hhmm(&opens)?,
                    parse_hhmm(&closes)?,
                ))
            })
            .collect();
        Ok(Some((timezone, days)))
    }

    /// The campaign's active, connected agents with their number of open
    /// conversations (in any campaign): the router's input.
    pub async fn connected_agent_loads(&self, campaign_id: Uuid) -> StoreResult<Vec<(Uuid, i64)>> {
        Ok(with_read!(self, |pool| {
            sqlx::query_as(
                "select u.id, (select count(*) from conversations c \
                   where c.agent_id = u.id and c.is_open) as open_count \
                 from users u join campaign_members m on m.user_id = u.id and m.campaign_id = $1 \
                 where u.role = 'agent' and u.active and u.connected order by u.id",
            )
            .bind(campaign_id)
            .fetch_all(pool)
            .await?
        }))
    }

    /// A campaign's waiting conversations (Fuera de Horario, Agentes
    /// Desconectados), oldest first.
    pub async fn waiting_conversations(
        &self,
        campaign_id: Uuid,
        limit: i64,
    ) -> StoreResult<Vec<Conversation>> {
        let rows: Vec<StateRow> = with_read!(self, |pool| {
            sqlx::query_as(WAITING)
                .bind(campaign_id)
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(StateRow::into_domain).collect())
    }

    /// The most recently active conversations in `status` (for the simulator).
    pub async fn recent_in_status(
        &self,
        status: Status,
        limit: i64,
    ) -> StoreResult<Vec<Conversation>> {
        let rows: Vec<StateRow> = with_read!(self, |pool| {
            sqlx::query_as(RECENT_IN_STATUS)
                .bind(status.as_str())
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(StateRow::into_domain).collect())
    }

    /// Ids of the active campaigns.
    pub async fn active_campaign_ids(&self) -> StoreResult<Vec<Uuid>> {
        Ok(with_read!(self, |pool| {
            sqlx::query_scalar("select id from campaigns where active order by id")
                .fetch_all(pool)
                .await?
        }))
    }

    /// Recent contacts of a channel: (external id, name), for the simulator.
    pub async fn recent_contacts(
        &self,
        channel_id: Uuid,
        limit: i64,
    ) -> StoreResult<Vec<(String, Option<String>)>> {
        Ok(with_read!(self, |pool| {
            sqlx::query_as(
                "select external_id, name from contacts where channel_id = $1 \
                 order by created_at desc, id limit $2",
            )
            .bind(channel_id)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_token_hash_is_hex_sha256() {
        assert_eq!(
            super::token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
