//! Conversation operations shared by the integration API and the traffic
//! simulator: customer messages, bot turns, agent presence, agent replies
//! and resolutions. Each loads the conversation (scoped), computes the change
//! with the domain transition functions and applies it through the Store's
//! compare-and-set, retrying a bounded number of times after a conflict.

use chrono::Utc;
use uuid::Uuid;

use crate::db::{
    BotTurn, ChannelAuth, InboundMessage, InboundOutcome, RecordedMessage, Store, StoreError, Ts,
};
use crate::domain::conversation::{self as rules};
use crate::domain::{CategoryRef, Conversation, Invalid, Lookup, Scope, Status, SubcategoryRef};

pub use crate::services::error::{ATTEMPTS, ServiceError};

/// A customer message on `channel` (see [`Store::record_customer_message`]).
pub async fn customer_message(
    store: &Store,
    channel: &ChannelAuth,
    message: &InboundMessage,
) -> Result<InboundOutcome, ServiceError> {
    Ok(store
        .record_customer_message(channel, message, Ts::now())
        .await?)
}

/// A bot turn recorded on a conversation: new or, for a retry of its bot
/// message id, the first one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotMessage {
    pub conversation: Conversation,
    pub message: RecordedMessage,
    /// A retry: nothing was written, `message` is the first recording.
    pub repeated: bool,
}

/// The bot engine's turn on an open conversation (any status but Resuelta
/// and Cancelada), kept in its transcript. A `message_id` the conversation
/// has already recorded writes nothing and answers the first recording,
/// even once the conversation has closed.
pub async fn bot_message(
    store: &Store,
    scope: &Scope,
    id: Uuid,
    message_id: &str,
    text: &str,
) -> Result<BotMessage, ServiceError> {
    let conversation = store
        .conversation_state(scope, id)
        .await?
        .ok_or(ServiceError::NotFound)?;
    let (message, repeated) = match store
        .record_bot_message(&conversation, message_id, text, Ts::now())
        .await?
    {
        BotTurn::Recorded(message) => (message, false),
        BotTurn::Repeated(message) => (message, true),
        BotTurn::Closed => {
            // Closed since it was read, or already: say how it is now.
            let now = store
                .conversation_state(scope, id)
                .await?
                .ok_or(ServiceError::NotFound)?;
            return Err(ServiceError::NotAllowed(now.status));
        }
    };
    Ok(BotMessage {
        conversation,
        message,
        repeated,
    })
}

/// Checks that `agent` may act on `conversation`: an active agent of its campaign.
async fn check_agent(
    store: &Store,
    conversation: &Conversation,
    agent: Uuid,
) -> Result<(), ServiceError> {
    match store.agent_campaigns(agent).await? {
        Some((true, campaigns)) if campaigns.contains(&conversation.campaign_id) => Ok(()),
        Some((false, _)) => Err(ServiceError::Invalid(
            "agent_id",
            Invalid::AgentInactive.message(),
        )),
        _ => Err(ServiceError::Invalid(
            "agent_id",
            Invalid::AgentNotInCampaign.message(),
        )),
    }
}

/// An agent's reply: the first one moves `assigned` → `in_progress` and is
/// stored in the same transaction (see [`Store::record_first_reply`]);
/// later ones only record activity. Only the assigned agent may reply.
pub async fn agent_reply(
    store: &Store,
    scope: &Scope,
    id: Uuid,
    agent: Uuid,
    text: &str,
) -> Result<Conversation, ServiceError> {
    let mut checked = false;
    for _ in 0..ATTEMPTS {
        let conversation = store
            .conversation_state(scope, id)
            .await?
            .ok_or(ServiceError::NotFound)?;
        if !checked {
            check_agent(store, &conversation, agent).await?;
            checked = true;
        }
        let now = Utc::now();
        match conversation.status {
            Status::InProgress if conversation.agent_id == Some(agent) => {
                // False: the conversation changed since it was read (a
                // cancel, a reassignment); decide again on what it is now.
                if store
                    .record_agent_message(&conversation, agent, text, Ts::new(now))
                    .await?
                {
                    return Ok(conversation);
                }
            }
            Status::InProgress => return Err(ServiceError::NotTheAssignedAgent),
            _ => {
                // The transition and the reply commit together.
                let transition = rules::first_reply(&conversation, agent, now)?;
                if store.record_first_reply(&transition, agent, text).await? {
                    return Ok(transition.applied_to(&conversation));
                }
            }
        }
    }
    Err(ServiceError::Busy)
}

/// A closure's category and sub-category as the transition rules check them:
/// not chosen, unknown, or found with their campaign and active flags.
pub async fn closure_lookups(
    store: &Store,
    category: Option<Uuid>,
    subcategory: Option<Uuid>,
) -> Result<(Lookup<CategoryRef>, Lookup<SubcategoryRef>), StoreError> {
    let category = match category {
        None => Lookup::NotChosen,
        Some(id) => store
            .category_ref(id)
            .await?
            .map_or(Lookup::Unknown, Lookup::Found),
    };
    let subcategory = match subcategory {
        None => Lookup::NotChosen,
        Some(id) => store
            .subcategory_ref(id)
            .await?
            .map_or(Lookup::Unknown, Lookup::Found),
    };
    Ok((category, subcategory))
}

/// The assigned agent closes the conversation; category, sub-category and
/// comment are optional and checked like the console's.
pub async fn resolve(
    store: &Store,
    scope: &Scope,
    id: Uuid,
    agent: Uuid,
    category: Option<Uuid>,
    subcategory: Option<Uuid>,
    comment: &str,
) -> Result<Conversation, ServiceError> {
    let (category, subcategory) = closure_lookups(store, category, subcategory).await?;
    let mut checked = false;
    for _ in 0..ATTEMPTS {
        let conversation = store
            .conversation_state(scope, id)
            .await?
            .ok_or(ServiceError::NotFound)?;
        if !checked {
            check_agent(store, &conversation, agent).await?;
            checked = true;
        }
        let transition = rules::resolve(
            &conversation,
            agent,
            category,
            subcategory,
            comment,
            Utc::now(),
        )?;
        if store.apply_transition(&transition).await?.is_ok() {
            return Ok(transition.applied_to(&conversation));
        }
    }
    Err(ServiceError::Busy)
}

/// An agent connects or disconnects. Connecting assigns the waiting
/// conversations of the agent's campaigns; returns how many were assigned.
/// An agent outside `scope` is not found.
pub async fn set_presence(
    store: &Store,
    scope: &Scope,
    agent: Uuid,
    connected: bool,
) -> Result<usize, ServiceError> {
    let Some((active, campaigns)) = store.agent_campaigns(agent).await? else {
        return Err(ServiceError::NotFound);
    };
    if !campaigns.iter().any(|c| scope.allows(*c)) {
        return Err(ServiceError::NotFound);
    }
    if connected && !active {
        return Err(ServiceError::Invalid(
            "agent_id",
            Invalid::AgentInactive.message(),
        ));
    }
    store
        .set_agent_presence(agent, connected, Ts::now())
        .await?;
    let mut assigned = 0;
    if connected {
        for campaign in campaigns {
            assigned +=
                crate::services::router::assign_waiting(store, campaign, Utc::now()).await?;
        }
    }
    Ok(assigned)
}
