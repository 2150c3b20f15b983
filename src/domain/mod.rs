//! Pure domain types and rules: roles, statuses, channels, scope, conversation
//! transitions and closure validation. Nothing here does I/O or reads the
//! clock; time always arrives as a parameter.

use uuid::Uuid;

/// Defines a string-backed enum with its stored value and its Spanish label.
///
/// A macro because each enum's variants, stored values and labels are one
/// table written once, and the enum and its `as_str`, `label`, `parse` and
/// `ALL` are generated from it; it defines items, nothing runs.
macro_rules! stored_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $stored:literal, $label:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every variant, in display order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value stored in the database and used in URLs.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $stored),+ }
            }

            /// The Spanish label people read.
            pub fn label(self) -> &'static str {
                match self { $($name::$variant => $label),+ }
            }

            /// Parses a stored value; `None` for anything else.
            pub fn parse(value: &str) -> Option<Self> {
                match value { $($stored => Some($name::$variant),)+ _ => None }
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;

            fn try_from(value: String) -> Result<Self, String> {
                $name::parse(&value)
                    .ok_or_else(|| format!("unknown {} value {value:?}", stringify!($name)))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub mod admin;
pub mod auto_cancel;
pub mod conversation;
pub mod days;
pub mod schedule;
pub mod text;
pub mod transcript;
pub mod webhook;

pub use conversation::{
    Actor, AgentCandidate, CategoryRef, Conversation, EventKind, HandoffOutcome, Invalid, Lookup,
    SubcategoryRef, Transition, TransitionError,
};
pub use transcript::Author;

stored_enum!(
    /// Who a user is in Relevo.
    Role {
        SuperAdmin => "super_admin", "Super Administrador",
        Admin => "admin", "Administrador",
        Agent => "agent", "Agente",
    }
);

impl Role {
    /// Agents work in the agent console; only administrator roles log in here.
    pub fn may_use_console(self) -> bool {
        matches!(self, Role::SuperAdmin | Role::Admin)
    }
}

stored_enum!(
    /// Conversation status; the first five are the open ones.
    Status {
        Icr => "icr", "ICR",
        Assigned => "assigned", "Asignada",
        InProgress => "in_progress", "En Proceso",
        OutOfHours => "out_of_hours", "Fuera de Horario",
        AgentsOffline => "agents_offline", "Agentes Desconectados",
        Resolved => "resolved", "Resuelta",
        Cancelled => "cancelled", "Cancelada",
    }
);

impl Status {
    /// The statuses on which Cancelar/Reasignar is offered.
    pub const OPEN: [Status; 5] = [
        Status::Icr,
        Status::Assigned,
        Status::InProgress,
        Status::OutOfHours,
        Status::AgentsOffline,
    ];

    pub fn is_open(self) -> bool {
        !self.is_final()
    }

    pub fn is_final(self) -> bool {
        matches!(self, Status::Resolved | Status::Cancelled)
    }
}

stored_enum!(
    /// The kind of messaging channel a conversation arrives through.
    ChannelKind {
        Whatsapp => "whatsapp", "WhatsApp",
        Messenger => "messenger", "Messenger",
        Telegram => "telegram", "Telegram",
        Instagram => "instagram", "Instagram",
        Web => "web", "Web",
    }
);

stored_enum!(
    /// Who made a transition.
    ActorKind {
        Customer => "customer", "Cliente",
        System => "system", "Sistema",
        Agent => "agent", "Agente",
        Administrator => "administrator", "Administrador",
    }
);

/// What part of the conversations a signed-in user may see and act on.
///
/// Built on every request from the user's current role and assignments, so a
/// change of either takes effect on the next click.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Super Administrador: every campaign.
    All,
    /// Administrador: only these campaigns (possibly none).
    Campaigns(Vec<Uuid>),
}

impl Scope {
    pub fn allows(&self, campaign_id: Uuid) -> bool {
        match self {
            Scope::All => true,
            Scope::Campaigns(ids) => ids.contains(&campaign_id),
        }
    }
}
