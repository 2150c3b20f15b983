//! What a conversation operation answers when refused, shared by the
//! conversation operations and the router (both below the API), so that
//! neither imports the other for it.

use crate::db::StoreError;
use crate::domain::{Invalid, Status, TransitionError};

/// Loads and compare-and-set attempts before answering "busy".
pub const ATTEMPTS: usize = 3;

/// Why an operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Unknown, or outside the caller's scope (never revealed).
    #[error("not found")]
    NotFound,
    /// Not possible in the conversation's current status.
    #[error("not allowed from status {0}")]
    NotAllowed(Status),
    /// An agent acted on a conversation assigned to someone else.
    #[error("not the assigned agent")]
    NotTheAssignedAgent,
    /// A field of the request is invalid: (field, Spanish message).
    #[error("invalid field {0}")]
    Invalid(&'static str, String),
    /// The conversation kept changing under us.
    #[error("conversation kept changing")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<TransitionError> for ServiceError {
    fn from(error: TransitionError) -> ServiceError {
        match error {
            TransitionError::NotAllowedFrom(status) => ServiceError::NotAllowed(status),
            TransitionError::NotTheAssignedAgent => ServiceError::NotTheAssignedAgent,
            TransitionError::Invalid(errors) => {
                let first = errors.first().copied().unwrap_or(Invalid::CategoryMissing);
                ServiceError::Invalid(api_field(first), first.message())
            }
        }
    }
}

/// The API field a domain validation error refers to.
fn api_field(invalid: Invalid) -> &'static str {
    match invalid.field() {
        "categoria" => "category_id",
        "subcategoria" => "subcategory_id",
        "comentario" => "comment",
        _ => "agent_id",
    }
}
