//! The signed-in user of a request.
//!
//! The session cookie (signed and encrypted by actix-session) carries only a
//! session id and the CSRF token. The id names a row of `user_sessions`; the
//! user's role, active flag and campaigns are read from the database on every
//! request, so changes apply on the user's next click and a logout or
//! deactivation ends the session on the server.

use std::future::Future;
use std::pin::Pin;

use actix_session::{Session, SessionExt};
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use uuid::Uuid;

use crate::db::Principal;
use crate::error::AppError;
use crate::startup::AppState;

/// Session key of the server-side session id.
pub const SESSION_ID_KEY: &str = "sid";

/// Extracts the signed-in [`Principal`] or fails with
/// [`AppError::Unauthenticated`] (a redirect to the login page).
#[derive(Debug, Clone)]
pub struct CurrentUser(pub Principal);

impl std::ops::Deref for CurrentUser {
    type Target = Principal;

    fn deref(&self) -> &Principal {
        &self.0
    }
}

/// Loads the principal of `req`'s session (once per request; later calls
/// reuse the copy kept in the request's extensions).
pub async fn principal_of(req: &HttpRequest) -> Result<Option<Principal>, AppError> {
    if let Some(found) = req.extensions().get::<Principal>() {
        return Ok(Some(found.clone()));
    }
    let session = req.get_session();
    let Ok(Some(session_id)) = session.get::<Uuid>(SESSION_ID_KEY) else {
        return Ok(None);
    };
    let Some(state) = req.app_data::<web::Data<AppState>>() else {
        return Err(AppError::unexpected("application state missing"));
    };
    if let Some(principal) = state.principals.get(&session_id) {
        req.extensions_mut().insert(principal.clone());
        return Ok(Some(principal));
    }
    let epoch = state.principals.epoch();
    match state.store.principal(session_id).await? {
        Some(principal) => {
            state.principals.put(session_id, principal.clone(), epoch);
            req.extensions_mut().insert(principal.clone());
            Ok(Some(principal))
        }
        None => {
            // The session ended, or its user may no longer sign in
            // (deactivated, demoted to agent): end it on the server, so a
            // replayed cookie never revives it, and in the browser.
            state.store.delete_session(session_id).await?;
            session.purge();
            Ok(None)
        }
    }
}

impl FromRequest for CurrentUser {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            principal_of(&req)
                .await?
                .map(CurrentUser)
                .ok_or(AppError::Unauthenticated)
        })
    }
}

/// Starts a fresh session for `user_id`: a new server-side id, a renewed
/// cookie and a new CSRF token, so nothing from before the login survives.
pub async fn sign_in(state: &AppState, session: &Session, user_id: Uuid) -> Result<(), AppError> {
    let session_id = state
        .store
        .create_session(user_id, crate::db::Ts::now())
        .await?;
    session.renew();
    session.clear();
    session
        .insert(SESSION_ID_KEY, session_id)
        .map_err(|e| AppError::unexpected(format!("session insert failed: {e}")))?;
    super::csrf::rotate(session)?;
    Ok(())
}

/// Ends the session on the server and in the browser.
pub async fn sign_out(state: &AppState, session: &Session) -> Result<(), AppError> {
    if let Ok(Some(session_id)) = session.get::<Uuid>(SESSION_ID_KEY) {
        state.principals.remove(&session_id);
        state.store.delete_session(session_id).await?;
    }
    session.purge();
    Ok(())
}
