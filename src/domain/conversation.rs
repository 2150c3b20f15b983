//! Conversation transitions as pure functions.
//!
//! Every status change in Relevo, whoever makes it (an administrator in the
//! modal, the router, an agent through the API, a bulk or automatic action),
//! is computed here from the conversation *as loaded* and returned as a
//! [`Transition`]. The Store then applies it as a compare-and-set on
//! `version`, so a transition computed from a stale copy can never be applied.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::text::Comment;
use super::{ActorKind, Role, Status};

stored_enum!(
    /// What a history row records.
    EventKind {
        Created => "created", "Inicio",
        Handoff => "handoff", "Derivada",
        Assigned => "assigned", "Asignada",
        FirstReply => "first_reply", "Primera respuesta",
        Resolved => "resolved", "Resuelta",
        Cancelled => "cancelled", "Cancelada",
        Reassigned => "reassigned", "Reasignada",
    }
);

/// The message for a conversation that does not exist or is outside scope.
pub const NOT_FOUND: &str = "No encontramos esa conversación";
/// The bulk-job reason key of an item that does not exist in the creator's scope.
pub const REASON_NOT_FOUND: &str = "not_found";

/// A conversation as loaded from the Store: the state a transition starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    pub id: Uuid,
    pub folio: i64,
    pub campaign_id: Uuid,
    pub channel_id: Uuid,
    pub contact_id: Uuid,
    pub status: Status,
    /// Incremented by every applied transition; the compare-and-set key.
    pub version: i64,
    pub agent_id: Option<Uuid>,
}

/// Who makes a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    Customer,
    System,
    Agent(Uuid),
    Administrator(Uuid),
}

impl Actor {
    pub fn kind(self) -> ActorKind {
        match self {
            Actor::Customer => ActorKind::Customer,
            Actor::System => ActorKind::System,
            Actor::Agent(_) => ActorKind::Agent,
            Actor::Administrator(_) => ActorKind::Administrator,
        }
    }

    pub fn user_id(self) -> Option<Uuid> {
        match self {
            Actor::Agent(id) | Actor::Administrator(id) => Some(id),
            Actor::Customer | Actor::System => None,
        }
    }
}

/// A computed, not yet applied, change of one conversation.
///
/// Invariant: `from_status` is the status the conversation had at
/// `expected_version`; the Store applies it only if the version still matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub conversation_id: Uuid,
    pub campaign_id: Uuid,
    pub expected_version: i64,
    pub kind: EventKind,
    pub from_status: Status,
    pub to_status: Status,
    pub from_agent: Option<Uuid>,
    pub to_agent: Option<Uuid>,
    pub category_id: Option<Uuid>,
    pub subcategory_id: Option<Uuid>,
    pub comment: Option<String>,
    pub actor: Actor,
    pub at: DateTime<Utc>,
}

impl Transition {
    /// Whether this transition closes the conversation (sets its closure fields).
    pub fn closes(&self) -> bool {
        self.to_status.is_final()
    }

    /// The conversation as it is once this transition is applied.
    pub fn applied_to(&self, conversation: &Conversation) -> Conversation {
        Conversation {
            status: self.to_status,
            version: conversation.version + 1,
            agent_id: self.to_agent,
            ..conversation.clone()
        }
    }
}

/// A closure category as the Store found it for the id the form named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CategoryRef {
    pub id: Uuid,
    pub campaign_id: Uuid,
    pub active: bool,
}

/// A sub-category as the Store found it for the id the form named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubcategoryRef {
    pub id: Uuid,
    pub category_id: Uuid,
    pub active: bool,
}

/// A user proposed as the new agent, with what the rules need to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentCandidate {
    pub id: Uuid,
    pub role: Role,
    pub active: bool,
    /// Connected now: a conversation given to a disconnected agent waits
    /// until they connect.
    pub connected: bool,
    /// Assigned to the conversation's campaign.
    pub in_campaign: bool,
}

/// The result of looking up an id that a form may or may not have named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup<T> {
    /// The field was left empty.
    NotChosen,
    /// An id was given but nothing exists with it (or it was malformed).
    Unknown,
    Found(T),
}

/// What the router decided when the bot hands a conversation off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandoffOutcome {
    OutOfHours,
    AgentsOffline,
    Assign(Uuid),
}

/// One invalid field of a transition request. Each maps to a form field and a
/// Spanish message shown next to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    CategoryMissing,
    CategoryNotInCampaign,
    CategoryInactive,
    SubcategoryNotOfCategory,
    SubcategoryInactive,
    CommentTooLong(usize),
    CommentNul,
    AgentMissing,
    NotAnAgent,
    AgentNotInCampaign,
    AgentInactive,
    SameAgent,
    /// A disconnected agent chosen without confirming that the conversation
    /// will wait for them.
    AgentOfflineUnconfirmed,
}

impl Invalid {
    /// The form field the error belongs to.
    pub fn field(self) -> &'static str {
        match self {
            Invalid::CategoryMissing
            | Invalid::CategoryNotInCampaign
            | Invalid::CategoryInactive => "categoria",
            Invalid::SubcategoryNotOfCategory | Invalid::SubcategoryInactive => "subcategoria",
            Invalid::CommentTooLong(_) | Invalid::CommentNul => "comentario",
            Invalid::AgentMissing
            | Invalid::NotAnAgent
            | Invalid::AgentNotInCampaign
            | Invalid::AgentInactive
            | Invalid::SameAgent
            | Invalid::AgentOfflineUnconfirmed => "agente",
        }
    }

    pub fn message(self) -> String {
        match self {
            Invalid::CategoryMissing => "Selecciona una categoría".into(),
            Invalid::CategoryNotInCampaign => {
                "Esa categoría no pertenece a la campaña de la conversación".into()
            }
            Invalid::CategoryInactive => "Esa categoría está desactivada".into(),
            Invalid::SubcategoryNotOfCategory => {
                "Esa subcategoría no pertenece a la categoría elegida".into()
            }
            Invalid::SubcategoryInactive => "Esa subcategoría está desactivada".into(),
            Invalid::CommentTooLong(chars) => format!(
                "El comentario admite hasta {} caracteres (tiene {chars})",
                super::text::COMMENT_MAX_CHARS
            ),
            Invalid::CommentNul => "El comentario no admite el carácter nulo (U+0000)".into(),
            Invalid::AgentMissing => "Selecciona un agente".into(),
            Invalid::NotAnAgent => "Ese usuario no es un agente".into(),
            Invalid::AgentNotInCampaign => {
                "Ese agente no pertenece a la campaña de la conversación".into()
            }
            Invalid::AgentInactive => "Ese agente está desactivado".into(),
            Invalid::SameAgent => "La conversación ya está asignada a ese agente".into(),
            Invalid::AgentOfflineUnconfirmed => {
                "Ese agente está desconectado: la conversación esperará a que se conecte. Marca «Asignarla de todos modos» para confirmarlo".into()
            }
        }
    }
}

impl From<super::text::CommentError> for Invalid {
    fn from(error: super::text::CommentError) -> Invalid {
        match error {
            super::text::CommentError::TooLong(chars) => Invalid::CommentTooLong(chars),
            super::text::CommentError::Nul => Invalid::CommentNul,
        }
    }
}

/// Why a transition cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The conversation is final (or, for agent/router steps, in a status
    /// the step does not start from).
    #[error("transition not allowed from status {0}")]
    NotAllowedFrom(Status),
    /// An agent acted on a conversation that is not theirs.
    #[error("conversation is not assigned to this agent")]
    NotTheAssignedAgent,
    /// One or more fields are invalid; nothing may change.
    #[error("invalid input: {0:?}")]
    Invalid(Vec<Invalid>),
}

impl TransitionError {
    /// The Spanish refusal for a conversation in a status the step does not apply to.
    pub fn refusal(status: Status) -> String {
        match status {
            Status::Cancelled => "La conversación ya estaba cancelada".into(),
            Status::Resolved => "La conversación ya estaba resuelta".into(),
            other => format!(
                "No se puede hacer en una conversación con estatus {}",
                other.label()
            ),
        }
    }
}

fn base(
    conversation: &Conversation,
    kind: EventKind,
    to_status: Status,
    to_agent: Option<Uuid>,
    actor: Actor,
    at: DateTime<Utc>,
) -> Transition {
    Transition {
        conversation_id: conversation.id,
        campaign_id: conversation.campaign_id,
        expected_version: conversation.version,
        kind,
        from_status: conversation.status,
        to_status,
        from_agent: conversation.agent_id,
        to_agent,
        category_id: None,
        subcategory_id: None,
        comment: None,
        actor,
        at,
    }
}

fn require(conversation: &Conversation, allowed: &[Status]) -> Result<(), TransitionError> {
    if allowed.contains(&conversation.status) {
        Ok(())
    } else {
        Err(TransitionError::NotAllowedFrom(conversation.status))
    }
}

fn comment_or_error(raw: &str, errors: &mut Vec<Invalid>) -> Option<String> {
    match Comment::parse(raw) {
        Ok(comment) => comment.map(Comment::into_string),
        Err(error) => {
            errors.push(error.into());
            None
        }
    }
}

/// Checks the closure fields against the conversation's campaign. Returns the
/// chosen category and sub-category ids.
fn closure(
    conversation: &Conversation,
    category: Lookup<CategoryRef>,
    subcategory: Lookup<SubcategoryRef>,
    required: bool,
    errors: &mut Vec<Invalid>,
) -> (Option<Uuid>, Option<Uuid>) {
    let category = match category {
        Lookup::NotChosen => {
            if required {
                errors.push(Invalid::CategoryMissing);
            }
            None
        }
        Lookup::Unknown => {
            errors.push(Invalid::CategoryNotInCampaign);
            None
        }
        Lookup::Found(c) if c.campaign_id != conversation.campaign_id => {
            errors.push(Invalid::CategoryNotInCampaign);
            None
        }
        Lookup::Found(c) if !c.active => {
            errors.push(Invalid::CategoryInactive);
            None
        }
        Lookup::Found(c) => Some(c.id),
    };
    let subcategory = match subcategory {
        Lookup::NotChosen => None,
        Lookup::Unknown => {
            errors.push(Invalid::SubcategoryNotOfCategory);
            None
        }
        Lookup::Found(s) => match category {
            Some(category_id) if s.category_id != category_id => {
                errors.push(Invalid::SubcategoryNotOfCategory);
                None
            }
            Some(_) if !s.active => {
                errors.push(Invalid::SubcategoryInactive);
                None
            }
            Some(_) => Some(s.id),
            // The category itself is wrong; its error already says so.
            None => None,
        },
    };
    (category, subcategory)
}

/// **Cancelar**: an administrator closes an open conversation with a category.
pub fn cancel(
    conversation: &Conversation,
    administrator: Uuid,
    category: Lookup<CategoryRef>,
    subcategory: Lookup<SubcategoryRef>,
    comment: &str,
    at: DateTime<Utc>,
) -> Result<Transition, TransitionError> {
    require(conversation, &Status::OPEN)?;
    let mut errors = Vec::new();
    let (category_id, subcategory_id) =
        closure(conversation, category, subcategory, true, &mut errors);
    let comment = comment_or_error(comment, &mut errors);
    if !errors.is_empty() {
        return Err(TransitionError::Invalid(errors));
    }
    Ok(Transition {
        category_id,
        subcategory_id,
        comment,
        ..base(
            conversation,
            EventKind::Cancelled,
            Status::Cancelled,
            conversation.agent_id,
            Actor::Administrator(administrator),
            at,
        )
    })
}

/// **Cancelación automática**: the system cancels a conversation that an
/// automatic rule found stale in `in_status`, with the rule's closure.
///
/// The same closure rules as an administrator's cancel apply (the rule's
/// category may have been deactivated since it was written), and the
/// conversation must still be in the status the rule watches: a conversation
/// that moved on is not the rule's any more.
pub fn system_cancel(
    conversation: &Conversation,
    in_status: Status,
    category: Lookup<CategoryRef>,
    subcategory: Lookup<SubcategoryRef>,
    comment: &str,
    at: DateTime<Utc>,
) -> Result<Transition, TransitionError> {
    require(conversation, &Status::OPEN)?;
    require(conversation, &[in_status])?;
    let mut errors = Vec::new();
    let (category_id, subcategory_id) =
        closure(conversation, category, subcategory, true, &mut errors);
    let comment = comment_or_error(comment, &mut errors);
    if !errors.is_empty() {
        return Err(TransitionError::Invalid(errors));
    }
    Ok(Transition {
        category_id,
        subcategory_id,
        comment,
        ..base(
            conversation,
            EventKind::Cancelled,
            Status::Cancelled,
            conversation.agent_id,
            Actor::System,
            at,
        )
    })
}

/// Whether a reassignment to a disconnected agent was confirmed: the
/// conversation then waits for them to connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfflineAgent {
    /// The administrator confirmed it (or the caller confirmed it for them,
    /// as a bulk job's preview does).
    Confirmed,
    Unconfirmed,
}

/// **Reasignar**: an administrator hands an open conversation to another
/// agent; a disconnected one only once `offline` is confirmed.
pub fn reassign(
    conversation: &Conversation,
    administrator: Uuid,
    agent: Lookup<AgentCandidate>,
    offline: OfflineAgent,
    comment: &str,
    at: DateTime<Utc>,
) -> Result<Transition, TransitionError> {
    require(conversation, &Status::OPEN)?;
    let mut errors = Vec::new();
    let to_agent = match agent {
        Lookup::NotChosen => {
            errors.push(Invalid::AgentMissing);
            None
        }
        Lookup::Unknown => {
            errors.push(Invalid::NotAnAgent);
            None
        }
        Lookup::Found(a) if a.role != Role::Agent => {
            errors.push(Invalid::NotAnAgent);
            None
        }
        Lookup::Found(a) if !a.in_campaign => {
            errors.push(Invalid::AgentNotInCampaign);
            None
        }
        Lookup::Found(a) if !a.active => {
            errors.push(Invalid::AgentInactive);
            None
        }
        Lookup::Found(a) if conversation.agent_id == Some(a.id) => {
            errors.push(Invalid::SameAgent);
            None
        }
        Lookup::Found(a) if !a.connected && offline == OfflineAgent::Unconfirmed => {
            errors.push(Invalid::AgentOfflineUnconfirmed);
            None
        }
        Lookup::Found(a) => Some(a.id),
    };
    let comment = comment_or_error(comment, &mut errors);
    if !errors.is_empty() {
        return Err(TransitionError::Invalid(errors));
    }
    Ok(Transition {
        comment,
        ..base(
            conversation,
            EventKind::Reassigned,
            Status::Assigned,
            to_agent,
            Actor::Administrator(administrator),
            at,
        )
    })
}

/// **Devolver al enrutador**: an administrator gives an open conversation
/// back to the router, whose decision (`outcome`, taken as for a new
/// conversation but never choosing its current agent) says where it goes:
/// to an agent, or to Agentes Desconectados / Fuera de Horario to wait.
/// Recorded as a reassignment by the administrator.
pub fn return_to_router(
    conversation: &Conversation,
    administrator: Uuid,
    outcome: HandoffOutcome,
    comment: &str,
    at: DateTime<Utc>,
) -> Result<Transition, TransitionError> {
    require(conversation, &Status::OPEN)?;
    let mut errors = Vec::new();
    let comment = comment_or_error(comment, &mut errors);
    if !errors.is_empty() {
        return Err(TransitionError::Invalid(errors));
    }
    let (to_status, to_agent) = match outcome {
        HandoffOutcome::OutOfHours => (Status::OutOfHours, None),
        HandoffOutcome::AgentsOffline => (Status::AgentsOffline, None),
        HandoffOutcome::Assign(agent) => (Status::Assigned, Some(agent)),
    };
    Ok(Transition {
        comment,
        ..base(
            conversation,
            EventKind::Reassigned,
            to_status,
            to_agent,
            Actor::Administrator(administrator),
            at,
        )
    })
}

/// The bot hands the conversation to a human; the router's decision says where.
pub fn handoff(
    conversation: &Conversation,
    outcome: HandoffOutcome,
    at: DateTime<Utc>,
) -> Result<Transition, TransitionError> {
    require(conversation, &[Status::Icr])?;
    let (to_status, to_agent) = match outcome {
        HandoffOutcome::OutOfHours => (Status::OutOfHours, None),
        HandoffOutcome::AgentsOffline => (Status::AgentsOffline, None),
        HandoffOutcome::Assign(agent) => (Status::Assigned, Some(agent)),
    };
    Ok(base(
        conversation,
        EventKind::Handoff,
        to_status,
        to_agent,
        Actor::System,
        at,
    ))
}

/// The router assigns a waiting conversation once the schedule opens or an
/// agent connects.
pub fn assign_waiting(
    conversation: &Conversation,
    agent: Uuid,
    at: DateTime<Utc>,
) -> Result<Transition, TransitionError> {
    require(conversation, &[Status::OutOfHours, Status::AgentsOffline])?;
    Ok(base(
        conversation,
        EventKind::Assigned,
        Status::Assigned,
        Some(agent),
        Actor::System,
        at,
    ))
}

/// The assigned agent's first reply: `assigned` → `in_progress`.
pub fn first_reply(
    conversation: &Conversation,
    agent: Uuid,
    at: DateTime<Utc>,
) -> Result<Transition, TransitionError> {
    require(conversation, &[Status::Assigned])?;
    if conversation.agent_id != Some(agent) {
        return Err(TransitionError::NotTheAssignedAgent);
    }
    Ok(base(
        conversation,
        EventKind::FirstReply,
        Status::InProgress,
        Some(agent),
        Actor::Agent(agent),
        at,
    ))
}

/// The assigned agent closes the conversation normally; the category is optional.
pub fn resolve(
    conversation: &Conversation,
    agent: Uuid,
    category: Lookup<CategoryRef>,
    subcategory: Lookup<SubcategoryRef>,
    comment: &str,
    at: DateTime<Utc>,
) -> Result<Transition, TransitionError> {
    require(conversation, &[Status::Assigned, Status::InProgress])?;
    if conversation.agent_id != Some(agent) {
        return Err(TransitionError::NotTheAssignedAgent);
    }
    let mut errors = Vec::new();
    let (category_id, subcategory_id) =
        closure(conversation, category, subcategory, false, &mut errors);
    let comment = comment_or_error(comment, &mut errors);
    if !errors.is_empty() {
        return Err(TransitionError::Invalid(errors));
    }
    Ok(Transition {
        category_id,
        subcategory_id,
        comment,
        ..base(
            conversation,
            EventKind::Resolved,
            Status::Resolved,
            Some(agent),
            Actor::Agent(agent),
            at,
        )
    })
}

/// Whether a customer's inbound message continues `latest` (the contact's most
/// recent conversation on the channel) or must start a new one in ICR.
///
/// A final conversation is never resumed: the flow restarts from the beginning
/// in a new conversation that links back to it (reactivation).
pub fn continues(latest: Option<&Conversation>) -> bool {
    latest.is_some_and(|c| c.status.is_open())
}

/// The router's choice for a handoff, from what it knows at `at`.
///
/// `agents` are the campaign's active, connected agents with their number of
/// open conversations; the one with the fewest wins, ties broken by id so the
/// choice is deterministic.
pub fn route(within_schedule: bool, agents: &[(Uuid, i64)]) -> HandoffOutcome {
    if !within_schedule {
        return HandoffOutcome::OutOfHours;
    }
    agents
        .iter()
        .min_by_key(|(id, open)| (*open, *id))
        .map_or(HandoffOutcome::AgentsOffline, |(id, _)| {
            HandoffOutcome::Assign(*id)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-26T14:05:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    const CAMPAIGN: Uuid = Uuid::from_u128(1);
    const OTHER_CAMPAIGN: Uuid = Uuid::from_u128(2);
    const AGENT: Uuid = Uuid::from_u128(10);
    const OTHER_AGENT: Uuid = Uuid::from_u128(11);
    const ADMIN: Uuid = Uuid::from_u128(20);
    const CATEGORY: Uuid = Uuid::from_u128(30);
    const SUBCATEGORY: Uuid = Uuid::from_u128(31);

    fn conversation(status: Status) -> Conversation {
        let agent_id = match status {
            Status::Icr | Status::OutOfHours | Status::AgentsOffline => None,
            _ => Some(AGENT),
        };
        Conversation {
            id: Uuid::from_u128(100),
            folio: 10482,
            campaign_id: CAMPAIGN,
            channel_id: Uuid::from_u128(200),
            contact_id: Uuid::from_u128(300),
            status,
            version: 7,
            agent_id,
        }
    }

    fn category() -> Lookup<CategoryRef> {
        Lookup::Found(CategoryRef {
            id: CATEGORY,
            campaign_id: CAMPAIGN,
            active: true,
        })
    }

    fn subcategory() -> Lookup<SubcategoryRef> {
        Lookup::Found(SubcategoryRef {
            id: SUBCATEGORY,
            category_id: CATEGORY,
            active: true,
        })
    }

    fn agent(id: Uuid) -> Lookup<AgentCandidate> {
        Lookup::Found(AgentCandidate {
            id,
            role: Role::Agent,
            active: true,
            connected: true,
            in_campaign: true,
        })
    }

    /// Every transition applied to a conversation in `status`, by name.
    fn every_transition(
        status: Status,
    ) -> Vec<(&'static str, Result<Transition, TransitionError>)> {
        let c = conversation(status);
        vec![
            (
                "cancel",
                cancel(&c, ADMIN, category(), subcategory(), "", at()),
            ),
            (
                "reassign",
                reassign(
                    &c,
                    ADMIN,
                    agent(OTHER_AGENT),
                    OfflineAgent::Unconfirmed,
                    "",
                    at(),
                ),
            ),
            (
                "system_cancel",
                system_cancel(&c, status, category(), subcategory(), "", at()),
            ),
            ("handoff", handoff(&c, HandoffOutcome::Assign(AGENT), at())),
            ("assign_waiting", assign_waiting(&c, AGENT, at())),
            ("first_reply", first_reply(&c, AGENT, at())),
            (
                "resolve",
                resolve(&c, AGENT, Lookup::NotChosen, Lookup::NotChosen, "", at()),
            ),
        ]
    }

    #[test]
    fn each_transition_is_allowed_exactly_from_its_source_statuses() {
        use Status::*;
        let allowed: &[(&str, &[Status])] = &[
            (
                "cancel",
                &[Icr, Assigned, InProgress, OutOfHours, AgentsOffline],
            ),
            (
                "reassign",
                &[Icr, Assigned, InProgress, OutOfHours, AgentsOffline],
            ),
            (
                "system_cancel",
                &[Icr, Assigned, InProgress, OutOfHours, AgentsOffline],
            ),
            ("handoff", &[Icr]),
            ("assign_waiting", &[OutOfHours, AgentsOffline]),
            ("first_reply", &[Assigned]),
            ("resolve", &[Assigned, InProgress]),
        ];
        for &status in Status::ALL {
            for (name, result) in every_transition(status) {
                let sources = allowed.iter().find(|(n, _)| *n == name).unwrap().1;
                match result {
                    Ok(t) => {
                        assert!(
                            sources.contains(&status),
                            "{name} from {status} must be refused"
                        );
                        assert_eq!(t.from_status, status);
                        assert_eq!(t.expected_version, 7);
                    }
                    Err(TransitionError::NotAllowedFrom(s)) => {
                        assert_eq!(s, status);
                        assert!(
                            !sources.contains(&status),
                            "{name} from {status} must be allowed"
                        );
                    }
                    Err(other) => panic!("{name} from {status}: unexpected {other:?}"),
                }
            }
        }
    }

    #[test]
    fn each_transition_lands_in_its_documented_status() {
        let expected = [
            ("cancel", Status::Cancelled),
            ("reassign", Status::Assigned),
            ("system_cancel", Status::Cancelled),
            ("handoff", Status::Assigned),
            ("assign_waiting", Status::Assigned),
            ("first_reply", Status::InProgress),
            ("resolve", Status::Resolved),
        ];
        for &status in Status::ALL {
            for (name, result) in every_transition(status) {
                if let Ok(t) = result {
                    let to = expected.iter().find(|(n, _)| *n == name).unwrap().1;
                    assert_eq!(t.to_status, to, "{name} from {status}");
                    assert_eq!(t.closes(), to.is_final());
                }
            }
        }
    }

    #[test]
    fn a_cancel_records_its_closure_and_the_administrator() {
        let t = cancel(
            &conversation(Status::InProgress),
            ADMIN,
            category(),
            subcategory(),
            "  cliente no responde ",
            at(),
        )
        .unwrap();
        assert_eq!(t.category_id, Some(CATEGORY));
        assert_eq!(t.subcategory_id, Some(SUBCATEGORY));
        assert_eq!(t.comment.as_deref(), Some("cliente no responde"));
        assert_eq!(t.actor, Actor::Administrator(ADMIN));
        assert_eq!(t.from_agent, Some(AGENT));
    }

    #[test]
    fn an_automatic_cancel_is_the_systems_and_only_from_the_watched_status() {
        let c = conversation(Status::AgentsOffline);
        let t = system_cancel(
            &c,
            Status::AgentsOffline,
            category(),
            Lookup::NotChosen,
            "regla",
            at(),
        )
        .unwrap();
        assert_eq!(t.actor, Actor::System);
        assert_eq!(t.actor.user_id(), None);
        assert_eq!(
            (t.kind, t.to_status),
            (EventKind::Cancelled, Status::Cancelled)
        );
        assert_eq!(t.category_id, Some(CATEGORY));
        for &watched in Status::ALL {
            let result = system_cancel(&c, watched, category(), Lookup::NotChosen, "", at());
            assert_eq!(
                result.is_ok(),
                watched == Status::AgentsOffline,
                "watching {watched}"
            );
        }
    }

    #[test]
    fn an_automatic_cancel_keeps_the_closure_rules() {
        let c = conversation(Status::Icr);
        let inactive = Lookup::Found(CategoryRef {
            id: CATEGORY,
            campaign_id: CAMPAIGN,
            active: false,
        });
        let foreign = Lookup::Found(CategoryRef {
            id: CATEGORY,
            campaign_id: OTHER_CAMPAIGN,
            active: true,
        });
        for (lookup, error) in [
            (Lookup::NotChosen, Invalid::CategoryMissing),
            (inactive, Invalid::CategoryInactive),
            (foreign, Invalid::CategoryNotInCampaign),
        ] {
            assert_eq!(
                system_cancel(&c, Status::Icr, lookup, Lookup::NotChosen, "", at()),
                Err(TransitionError::Invalid(vec![error]))
            );
        }
    }

    #[test]
    fn a_cancel_needs_a_category_of_the_conversation_campaign() {
        let c = conversation(Status::Icr);
        let cases = [
            (Lookup::NotChosen, Invalid::CategoryMissing),
            (Lookup::Unknown, Invalid::CategoryNotInCampaign),
            (
                Lookup::Found(CategoryRef {
                    id: CATEGORY,
                    campaign_id: OTHER_CAMPAIGN,
                    active: true,
                }),
                Invalid::CategoryNotInCampaign,
            ),
            (
                Lookup::Found(CategoryRef {
                    id: CATEGORY,
                    campaign_id: CAMPAIGN,
                    active: false,
                }),
                Invalid::CategoryInactive,
            ),
        ];
        for (lookup, error) in cases {
            assert_eq!(
                cancel(&c, ADMIN, lookup, Lookup::NotChosen, "", at()),
                Err(TransitionError::Invalid(vec![error]))
            );
        }
    }

    #[test]
    fn a_subcategory_must_belong_to_the_chosen_category_and_be_active() {
        let c = conversation(Status::Icr);
        let foreign = Lookup::Found(SubcategoryRef {
            id: SUBCATEGORY,
            category_id: Uuid::from_u128(99),
            active: true,
        });
        let inactive = Lookup::Found(SubcategoryRef {
            id: SUBCATEGORY,
            category_id: CATEGORY,
            active: false,
        });
        for (lookup, error) in [
            (foreign, Invalid::SubcategoryNotOfCategory),
            (Lookup::Unknown, Invalid::SubcategoryNotOfCategory),
            (inactive, Invalid::SubcategoryInactive),
        ] {
            assert_eq!(
                cancel(&c, ADMIN, category(), lookup, "", at()),
                Err(TransitionError::Invalid(vec![error]))
            );
        }
    }

    #[test]
    fn a_comment_over_the_limit_is_refused_with_the_other_errors() {
        let long = "x".repeat(1001);
        assert_eq!(
            cancel(
                &conversation(Status::Icr),
                ADMIN,
                Lookup::NotChosen,
                Lookup::NotChosen,
                &long,
                at()
            ),
            Err(TransitionError::Invalid(vec![
                Invalid::CategoryMissing,
                Invalid::CommentTooLong(1001)
            ]))
        );
    }

    #[test]
    fn a_reassign_needs_an_active_agent_of_the_campaign_other_than_the_current_one() {
        let c = conversation(Status::Assigned);
        let candidate = |role, active, in_campaign| {
            Lookup::Found(AgentCandidate {
                id: OTHER_AGENT,
                role,
                active,
                connected: true,
                in_campaign,
            })
        };
        let cases = [
            (Lookup::NotChosen, Invalid::AgentMissing),
            (Lookup::Unknown, Invalid::NotAnAgent),
            (candidate(Role::Admin, true, true), Invalid::NotAnAgent),
            (
                candidate(Role::Agent, true, false),
                Invalid::AgentNotInCampaign,
            ),
            (candidate(Role::Agent, false, true), Invalid::AgentInactive),
            (agent(AGENT), Invalid::SameAgent),
        ];
        for (lookup, error) in cases {
            assert_eq!(
                reassign(&c, ADMIN, lookup, OfflineAgent::Unconfirmed, "", at()),
                Err(TransitionError::Invalid(vec![error]))
            );
        }
        let t = reassign(
            &c,
            ADMIN,
            agent(OTHER_AGENT),
            OfflineAgent::Unconfirmed,
            "turno",
            at(),
        )
        .unwrap();
        assert_eq!((t.from_agent, t.to_agent), (Some(AGENT), Some(OTHER_AGENT)));
        // A disconnected agent only once the administrator confirms it.
        let offline = || {
            Lookup::Found(AgentCandidate {
                id: OTHER_AGENT,
                role: Role::Agent,
                active: true,
                connected: false,
                in_campaign: true,
            })
        };
        assert_eq!(
            reassign(&c, ADMIN, offline(), OfflineAgent::Unconfirmed, "", at()),
            Err(TransitionError::Invalid(vec![
                Invalid::AgentOfflineUnconfirmed
            ]))
        );
        let t = reassign(&c, ADMIN, offline(), OfflineAgent::Confirmed, "", at()).unwrap();
        assert_eq!(t.to_agent, Some(OTHER_AGENT));
    }

    #[test]
    fn only_the_assigned_agent_replies_or_resolves() {
        let c = conversation(Status::Assigned);
        assert_eq!(
            first_reply(&c, OTHER_AGENT, at()),
            Err(TransitionError::NotTheAssignedAgent)
        );
        assert_eq!(
            resolve(
                &c,
                OTHER_AGENT,
                Lookup::NotChosen,
                Lookup::NotChosen,
                "",
                at()
            ),
            Err(TransitionError::NotTheAssignedAgent)
        );
    }

    #[test]
    fn the_router_prefers_the_least_busy_connected_agent() {
        assert_eq!(route(false, &[(AGENT, 0)]), HandoffOutcome::OutOfHours);
        assert_eq!(route(true, &[]), HandoffOutcome::AgentsOffline);
        assert_eq!(
            route(true, &[(AGENT, 3), (OTHER_AGENT, 1)]),
            HandoffOutcome::Assign(OTHER_AGENT)
        );
    }

    #[test]
    fn a_final_conversation_is_never_resumed() {
        for &status in Status::ALL {
            assert_eq!(continues(Some(&conversation(status))), status.is_open());
        }
        assert!(!continues(None));
    }

    #[test]
    fn an_applied_transition_bumps_the_version() {
        let c = conversation(Status::Icr);
        let t = handoff(&c, HandoffOutcome::Assign(AGENT), at()).unwrap();
        let after = t.applied_to(&c);
        assert_eq!(
            (after.status, after.version, after.agent_id),
            (Status::Assigned, 8, Some(AGENT))
        );
    }

    #[test]
    fn returning_to_the_router_goes_where_the_router_decided_as_the_administrator() {
        let cases = [
            (
                HandoffOutcome::Assign(OTHER_AGENT),
                Status::Assigned,
                Some(OTHER_AGENT),
            ),
            (HandoffOutcome::AgentsOffline, Status::AgentsOffline, None),
            (HandoffOutcome::OutOfHours, Status::OutOfHours, None),
        ];
        for (outcome, status, agent) in cases {
            let c = conversation(Status::InProgress);
            let t = return_to_router(&c, ADMIN, outcome, "atorada", at()).unwrap();
            assert_eq!((t.to_status, t.to_agent), (status, agent), "{outcome:?}");
            assert_eq!(t.kind, EventKind::Reassigned);
            assert_eq!(t.actor, Actor::Administrator(ADMIN));
            assert_eq!(t.comment.as_deref(), Some("atorada"));
        }
        for status in [Status::Resolved, Status::Cancelled] {
            assert!(matches!(
                return_to_router(
                    &conversation(status),
                    ADMIN,
                    HandoffOutcome::AgentsOffline,
                    "",
                    at()
                ),
                Err(TransitionError::NotAllowedFrom(_))
            ));
        }
        let long = "x".repeat(crate::domain::text::COMMENT_MAX_CHARS + 1);
        assert!(matches!(
            return_to_router(
                &conversation(Status::Assigned),
                ADMIN,
                HandoffOutcome::AgentsOffline,
                &long,
                at()
            ),
            Err(TransitionError::Invalid(_))
        ));
    }
}
