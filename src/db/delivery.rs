//! What a customer message writes, described once for the three writers
//! that execute it: SQLite's (in a group commit, [`super::inbound`]),
//! PostgreSQL's alone ([`super::inbound`]) and PostgreSQL's batch
//! ([`super::pg_deliveries`]).
//!
//! Each writer reads a [`DeliveryState`] (the contact, its latest
//! conversation, this message id's first outcome), asks [`decide`] what to
//! do, and writes the [`DeliveryPlan`] it answers: the rows, the change to
//! publish and the answer all come from the plan, so the writers differ
//! only in how many deliveries share a statement.

use sqlx::PgPool;
use uuid::Uuid;

use super::api::{InboundMessage, InboundOutcome};
use super::backend::{Args, Backend};
use super::row::from_row;
use super::{ChannelAuth, Ts};
use crate::domain::{Conversation, Status};
use crate::live::{Announcer, Change, Event, Feed};

/// The conflict clause of every contact upsert: the name is rewritten only
/// when it changed (nearly every message repeats the customer's profile
/// name, and rewriting an unchanged row cost a new row version per
/// message).
///
/// A macro because the upserts of one delivery and of a batch end with the
/// same text, and `concat!` composes their `const` statements from
/// literals only; it expands to a string literal.
macro_rules! refresh_contact {
    () => {
        "on conflict (channel_id, external_id) do update set \
         name = excluded.name, name_key = excluded.name_key \
         where excluded.name is not null \
         and (excluded.name is distinct from contacts.name \
         or excluded.name_key is distinct from contacts.name_key)"
    };
}
pub(super) use refresh_contact;

/// The columns of [`DeliveryState`], from the contact `k`, its latest
/// conversation `l`, the first delivery `p` of the message and the
/// conversation `pc` that one went to.
///
/// A macro, as [`refresh_contact!`], to be a literal in the look-ups of one
/// delivery and of a batch.
macro_rules! delivery_state_columns {
    () => {
        "k.id as contact_id, \
         l.id, l.folio, l.campaign_id, l.channel_id, l.status, l.version, l.agent_id, \
         p.conversation_id as seen_id, p.started_conversation as seen_started, \
         pc.folio as seen_folio, pc.reactivates_id as seen_reactivates_id"
    };
}
pub(super) use delivery_state_columns;

from_row! {
    /// What the look-up found: each part null when there is none.
    #[derive(Debug, Clone)]
    pub(super) struct DeliveryState {
        pub(super) contact_id: Option<Uuid>,
        pub(super) id: Option<Uuid>,
        pub(super) folio: Option<i64>,
        pub(super) campaign_id: Option<Uuid>,
        pub(super) channel_id: Option<Uuid>,
        pub(super) status: Option<String>,
        pub(super) version: Option<i64>,
        pub(super) agent_id: Option<Uuid>,
        pub(super) seen_id: Option<Uuid>,
        pub(super) seen_started: Option<bool>,
        pub(super) seen_folio: Option<i64>,
        pub(super) seen_reactivates_id: Option<Uuid>,
    }
}

from_row! {
    /// The first outcome of a processed delivery, as stored.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) struct FirstOutcome {
        pub(super) conversation_id: Uuid,
        pub(super) started_conversation: bool,
        pub(super) folio: i64,
        pub(super) reactivates_id: Option<Uuid>,
    }
}

impl FirstOutcome {
    /// What the API answers again for it.
    pub(super) fn replay(self) -> InboundOutcome {
        InboundOutcome {
            conversation_id: self.conversation_id,
            folio: self.folio,
            started_conversation: self.started_conversation,
            reactivates_id: if self.started_conversation {
                self.reactivates_id
            } else {
                None
            },
            replayed: true,
        }
    }
}

impl DeliveryState {
    /// The first outcome of this message id, if it was processed.
    pub(super) fn first_outcome(&self) -> Option<FirstOutcome> {
        Some(FirstOutcome {
            conversation_id: self.seen_id?,
            started_conversation: self.seen_started?,
            folio: self.seen_folio?,
            reactivates_id: self.seen_reactivates_id,
        })
    }

    /// The contact's latest conversation, for the domain's decision.
    fn latest(&self, contact_id: Uuid) -> Result<Option<Conversation>, sqlx::Error> {
        let (
            Some(id),
            Some(folio),
            Some(campaign_id),
            Some(channel_id),
            Some(status),
            Some(version),
        ) = (
            self.id,
            self.folio,
            self.campaign_id,
            self.channel_id,
            self.status.as_deref(),
            self.version,
        )
        else {
            return Ok(None);
        };
        let status = Status::parse(status).ok_or_else(|| {
            sqlx::Error::Decode(format!("unknown conversation status {status:?}").into())
        })?;
        Ok(Some(Conversation {
            id,
            folio,
            campaign_id,
            channel_id,
            contact_id,
            status,
            version,
            agent_id: self.agent_id,
        }))
    }
}

/// Ids a delivery may write, made before the transaction.
#[derive(Debug, Clone, Copy)]
pub(super) struct NewIds {
    pub(super) contact: Uuid,
    pub(super) conversation: Uuid,
    pub(super) event: Uuid,
    pub(super) message: Uuid,
}

impl NewIds {
    pub(super) fn new() -> NewIds {
        NewIds {
            contact: Uuid::now_v7(),
            conversation: Uuid::now_v7(),
            event: Uuid::now_v7(),
            message: Uuid::now_v7(),
        }
    }
}

/// Where a delivery's message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    /// New activity on this open conversation: its `last_activity_at` is
    /// set to the message's instant; status, agent and version stay (a
    /// customer message is not a transition).
    Append(Conversation),
    /// A new conversation in ICR without an agent, with its `created`
    /// history row; it reactivates the contact's latest (final)
    /// conversation, if there is one.
    Start(NewConversation),
}

/// The row of a new conversation and of its `created` history row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct NewConversation {
    pub(super) id: Uuid,
    pub(super) campaign_id: Uuid,
    pub(super) channel_id: Uuid,
    pub(super) contact_id: Uuid,
    pub(super) reactivates_id: Option<Uuid>,
    pub(super) created_event_id: Uuid,
}

/// Everything one delivery writes, decided before any write: the
/// conversation (appended to or started), the message row, the delivery
/// record (`inbound_messages`, which makes the message id idempotent), and
/// the change published once committed.
#[derive(Debug, Clone)]
pub(super) struct DeliveryPlan<'m> {
    pub(super) target: Target,
    /// The message's row id.
    pub(super) message_row_id: Uuid,
    /// The channel's id for the message, unique per channel.
    pub(super) message_id: &'m str,
    pub(super) text: &'m str,
    pub(super) channel_id: Uuid,
    /// The instant of the message, the activity and the delivery record.
    pub(super) at: Ts,
    pub(super) change: Change,
}

/// What to do with a delivery, from its look-up.
#[derive(Debug, Clone)]
pub(super) enum Decision<'m> {
    /// Already processed: write nothing, answer the first outcome.
    Replay(FirstOutcome),
    Write(DeliveryPlan<'m>),
}

/// The decision for `message` on `channel` at `now`, from what the look-up
/// found: the domain's [`continues`] rule decides between appending to the
/// contact's latest conversation and starting a new one. Pure: no I/O.
///
/// [`continues`]: crate::domain::conversation::continues
pub(super) fn decide<'m>(
    state: &DeliveryState,
    channel: &ChannelAuth,
    message: &'m InboundMessage,
    ids: &NewIds,
    now: Ts,
) -> Result<Decision<'m>, sqlx::Error> {
    if let Some(first) = state.first_outcome() {
        return Ok(Decision::Replay(first));
    }
    let contact_id = state
        .contact_id
        .ok_or_else(|| sqlx::Error::Protocol("the contact upsert left no contact".into()))?;
    let (target, change) = match state.latest(contact_id)? {
        Some(open) if crate::domain::conversation::continues(Some(&open)) => {
            // Activity is not a transition: the version (the
            // compare-and-set key) stays.
            let change = Change {
                conversation_id: open.id,
                campaign_id: open.campaign_id,
                version: open.version,
            };
            (Target::Append(open), change)
        }
        latest => (
            Target::Start(NewConversation {
                id: ids.conversation,
                campaign_id: channel.campaign_id,
                channel_id: channel.id,
                contact_id,
                reactivates_id: latest.map(|c| c.id),
                created_event_id: ids.event,
            }),
            Change {
                conversation_id: ids.conversation,
                campaign_id: channel.campaign_id,
                version: 1,
            },
        ),
    };
    Ok(Decision::Write(DeliveryPlan {
        target,
        message_row_id: ids.message,
        message_id: &message.message_id,
        text: &message.text,
        channel_id: channel.id,
        at: now,
        change,
    }))
}

impl DeliveryPlan<'_> {
    /// The conversation the message goes to.
    pub(super) fn conversation_id(&self) -> Uuid {
        match &self.target {
            Target::Append(open) => open.id,
            Target::Start(new) => new.id,
        }
    }

    /// Whether the message starts its conversation (stored on the delivery
    /// record, and answered again on a replay).
    pub(super) fn starts(&self) -> bool {
        matches!(self.target, Target::Start(_))
    }

    /// What the API answers once written; `folio` is the new conversation's
    /// (the database numbers it).
    pub(super) fn outcome(&self, folio: Option<i64>) -> Result<InboundOutcome, sqlx::Error> {
        Ok(match &self.target {
            Target::Append(open) => InboundOutcome {
                conversation_id: open.id,
                folio: open.folio,
                started_conversation: false,
                reactivates_id: None,
                replayed: false,
            },
            Target::Start(new) => InboundOutcome {
                conversation_id: new.id,
                folio: folio.ok_or_else(|| {
                    sqlx::Error::Protocol("no folio for a new conversation".into())
                })?,
                started_conversation: true,
                reactivates_id: new.reactivates_id,
                replayed: false,
            },
        })
    }

    /// Arguments of an append (`SQLITE_CONTINUE`, `POSTGRES_CONTINUE`):
    /// `$1` conversation, `$2` instant, `$3` channel, `$4` message row id,
    /// `$5` message id, `$6` text.
    pub(super) fn append_arguments<DB: Backend>(&self, open: &Conversation) -> Args<DB> {
        Args::default()
            .add(open.id)
            .add(self.at)
            .add(self.channel_id)
            .add(self.message_row_id)
            .add(self.message_id)
            .add(self.text)
    }

    /// Arguments of a start (`SQLITE_START`, `POSTGRES_START`): `$1`
    /// conversation id, `$2` campaign, `$3` channel, `$4` contact, `$5`
    /// instant, `$6` the conversation it reactivates, `$7` history row id,
    /// `$8` message row id, `$9` message id, `$10` text.
    pub(super) fn start_arguments<DB: Backend>(&self, new: &NewConversation) -> Args<DB> {
        Args::default()
            .add(new.id)
            .add(new.campaign_id)
            .add(new.channel_id)
            .add(new.contact_id)
            .add(self.at)
            .add(new.reactivates_id)
            .add(new.created_event_id)
            .add(self.message_row_id)
            .add(self.message_id)
            .add(self.text)
    }
}

/// Arguments of the contact upsert of one delivery: `$1` channel, `$2`
/// message id, `$3` new contact id, `$4` the customer's address, `$5` name,
/// `$6` its folded key, `$7` now.
pub(super) fn upsert_arguments<DB: Backend>(
    channel: &ChannelAuth,
    message: &InboundMessage,
    ids: &NewIds,
    now: Ts,
) -> Args<DB> {
    let name = message.name.as_deref();
    Args::default()
        .add(channel.id)
        .add(message.message_id.as_str())
        .add(ids.contact)
        .add(message.from.as_str())
        .add(name)
        .add(name.map(crate::domain::text::fold))
        .add(now)
}

/// What PostgreSQL's writers of deliveries write with: the store's parts
/// without the batches' queue, so that the batching lanes end when the last
/// [`PgDeliveries`](super::pg_deliveries::PgDeliveries) is dropped.
#[derive(Clone, Debug)]
pub(super) struct PgWriter {
    pub(super) pool: PgPool,
    pub(super) feed: Feed,
    pub(super) announcer: Announcer,
}

impl PgWriter {
    /// Publishes a committed change here and wakes the other instances.
    pub(super) fn publish(&self, event: Event) {
        self.feed.publish(event);
        self.announcer.committed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel() -> ChannelAuth {
        ChannelAuth {
            id: Uuid::now_v7(),
            campaign_id: Uuid::now_v7(),
            active: true,
        }
    }

    fn message() -> InboundMessage {
        InboundMessage {
            message_id: "m-1".into(),
            from: "5215512345678".into(),
            name: None,
            text: "hola".into(),
        }
    }

    fn state_with(status: Option<&str>) -> DeliveryState {
        DeliveryState {
            contact_id: Some(Uuid::now_v7()),
            id: status.map(|_| Uuid::now_v7()),
            folio: status.map(|_| 7),
            campaign_id: status.map(|_| Uuid::now_v7()),
            channel_id: status.map(|_| Uuid::now_v7()),
            status: status.map(str::to_owned),
            version: status.map(|_| 3),
            agent_id: None,
            seen_id: None,
            seen_started: None,
            seen_folio: None,
            seen_reactivates_id: None,
        }
    }

    #[test]
    fn an_open_conversation_takes_the_message_without_a_new_version() {
        let (channel, message, ids) = (channel(), message(), NewIds::new());
        let state = state_with(Some("icr"));
        let Decision::Write(plan) = decide(&state, &channel, &message, &ids, Ts::now()).unwrap()
        else {
            panic!("a write was expected");
        };
        assert_eq!(plan.conversation_id(), state.id.unwrap());
        assert!(!plan.starts());
        assert_eq!(plan.change.version, 3);
    }

    #[test]
    fn after_a_final_conversation_a_new_one_reactivates_it() {
        let (channel, message, ids) = (channel(), message(), NewIds::new());
        let state = state_with(Some("cancelled"));
        let Decision::Write(plan) = decide(&state, &channel, &message, &ids, Ts::now()).unwrap()
        else {
            panic!("a write was expected");
        };
        let Target::Start(new) = plan.target else {
            panic!("a new conversation was expected");
        };
        assert_eq!(new.reactivates_id, state.id);
        assert_eq!(new.campaign_id, channel.campaign_id);
        assert_eq!(plan.change.version, 1);
    }

    #[test]
    fn a_processed_message_id_is_replayed() {
        let (channel, message, ids) = (channel(), message(), NewIds::new());
        let mut state = state_with(None);
        state.seen_id = Some(Uuid::now_v7());
        state.seen_started = Some(false);
        state.seen_folio = Some(4);
        state.seen_reactivates_id = Some(Uuid::now_v7());
        let Decision::Replay(first) = decide(&state, &channel, &message, &ids, Ts::now()).unwrap()
        else {
            panic!("a replay was expected");
        };
        let outcome = first.replay();
        assert!(outcome.replayed);
        assert_eq!(outcome.reactivates_id, None, "only a start reactivates");
    }
}
