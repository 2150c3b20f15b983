//! The signed-in user of a request, and how long a session lasts.
//!
//! The session cookie (signed and encrypted by actix-session) carries only a
//! session id and the CSRF token. The id names a row of `user_sessions`; the
//! user's role, active flag and campaigns are read from the database (cached
//! per session, see `auth::principals`), so changes apply on the user's next
//! click and a logout or deactivation ends the session on the server.
//!
//! A session also ends on the server, whatever its cookie says: [`LIFETIME`]
//! after it started, and after the idle timeout (`RELEVO_SESSION_IDLE_MINUTES`)
//! without activity ([`SessionPolicy`]). A request that meets an ended
//! session deletes it, and the browser is sent to the login page, which
//! says why. Changing a password ends the user's other sessions, and the
//! user can close them from "Mi cuenta". Sessions expired long ago are
//! deleted by a background purge ([`spawn_purge`]).

use std::future::Future;
use std::pin::Pin;

use actix_session::{Session, SessionExt};
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use chrono::Utc;
use uuid::Uuid;

use crate::app::state::AppState;
use crate::db::{Principal, SessionRecord, Ts};
use crate::http::error::AppError;
use crate::services::auth::principals::CachedSession;
pub use crate::services::auth::sessions::{
    ACTIVITY_GRANULARITY, LIFETIME, PASSWORD_ATTEMPTS, PURGE_EVERY, PURGE_GRACE, SessionPolicy,
    spawn_purge,
};

/// Session key of the server-side session id.
pub const SESSION_ID_KEY: &str = "sid";
/// Session key of why the last session ended (read once by the login page).
const ENDED_KEY: &str = "ended";

/// Why a session ended, as the login page tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// Its lifetime or idle timeout passed.
    Expired,
    /// Closed elsewhere: from another session, by a password change, or
    /// because the user may no longer sign in.
    Closed,
    /// Too many wrong current passwords in "Cambiar mi contraseña".
    PasswordAttempts,
}

impl Ended {
    fn code(self) -> &'static str {
        match self {
            Ended::Expired => "expired",
            Ended::Closed => "closed",
            Ended::PasswordAttempts => "password",
        }
    }

    fn notice(code: &str) -> Option<&'static str> {
        match code {
            "expired" => Some("Tu sesión expiró; vuelve a iniciar sesión."),
            "closed" => Some("Tu sesión se cerró; vuelve a iniciar sesión."),
            "password" => Some(
                "Cerramos tu sesión tras varios intentos con una contraseña actual incorrecta; vuelve a iniciar sesión.",
            ),
            _ => None,
        }
    }
}

/// The client address a session records and shows: the same one that
/// throttling and the request log use (the right-most untrusted address
/// when the request came through a proxy of `RELEVO_TRUSTED_PROXIES`).
pub fn client_address(req: &HttpRequest, state: &AppState) -> Option<String> {
    req.peer_addr()?;
    Some(crate::http::auth::client_addr::client_addr(req, &state.trusted_proxies).to_string())
}

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
/// reuse the copy kept in the request's extensions). A session that has
/// ended — expired, closed, or whose user may no longer sign in — is
/// deleted on the server and in the browser, and counts as signed out.
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
    let now = Utc::now();
    if let Some(principal) = state.principals.get(&session_id, now) {
        req.extensions_mut().insert(principal.clone());
        return Ok(Some(principal));
    }
    let policy = state.principals.policy();
    let epoch = state.principals.epoch();
    let record = state.store.session_record(session_id).await?;
    let exists = record.is_some();
    let ended = match record {
        None => Ended::Closed,
        Some(r) if !policy.is_open(r.created_at, r.last_seen_at, now) => Ended::Expired,
        Some(SessionRecord {
            principal: None, ..
        }) => Ended::Closed,
        Some(SessionRecord {
            principal: Some(principal),
            created_at,
            mut last_seen_at,
            address: recorded_address,
        }) => {
            let address = client_address(req, state);
            // The activity is written at most once a minute; the first
            // request of a session also records its address.
            if now - last_seen_at.0 >= ACTIVITY_GRANULARITY
                || (recorded_address.is_none() && address.is_some())
            {
                last_seen_at = Ts::new(now);
                state
                    .store
                    .record_activity(session_id, last_seen_at, address.as_deref())
                    .await?;
            }
            let entry = CachedSession {
                principal: principal.clone(),
                created_at,
                last_seen_at,
            };
            state.principals.put(session_id, entry, epoch);
            req.extensions_mut().insert(principal.clone());
            return Ok(Some(principal));
        }
    };
    if exists {
        // End it on the server, so a replayed cookie never revives it (and
        // its live streams close).
        state.principals.remove(&session_id);
        state.store.delete_session(session_id).await?;
    }
    end_in_browser(&session, ended);
    Ok(None)
}

/// Forgets the browser's session, keeping only why it ended for the login
/// page.
fn end_in_browser(session: &Session, why: Ended) {
    session.renew();
    session.clear();
    if let Err(e) = session.insert(ENDED_KEY, why.code()) {
        tracing::warn!(error = %e, "could not keep why the session ended");
    }
}

/// Why the browser's last session ended, once (for the login page).
pub fn take_end_notice(session: &Session) -> Option<&'static str> {
    let code = session.remove_as::<String>(ENDED_KEY)?.ok()?;
    Ended::notice(&code)
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

/// Counts a wrong current password typed in `principal`'s session; after
/// [`PASSWORD_ATTEMPTS`] the session ends (on the server and in the
/// browser) and the answer is `true`.
pub async fn count_password_failure(
    state: &AppState,
    session: &Session,
    principal: &Principal,
) -> Result<bool, AppError> {
    let ended = state
        .store
        .record_password_failure(principal.session_id, PASSWORD_ATTEMPTS)
        .await?;
    if !ended {
        return Ok(false);
    }
    tracing::info!(user = %principal.user_id, "session ended after wrong current passwords");
    state.principals.remove(&principal.session_id);
    end_in_browser(session, Ended::PasswordAttempts);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    #[test]
    fn a_session_is_open_until_its_lifetime_or_idle_timeout() {
        let policy = SessionPolicy::with_idle_minutes(120);
        let now = Utc::now();
        let at = |ago: TimeDelta| Ts::new(now - ago);
        assert!(policy.is_open(at(TimeDelta::hours(11)), at(TimeDelta::minutes(119)), now));
        assert!(!policy.is_open(at(TimeDelta::hours(12)), at(TimeDelta::zero()), now));
        assert!(!policy.is_open(at(TimeDelta::hours(1)), at(TimeDelta::minutes(120)), now));
    }

    #[test]
    fn queries_and_the_cache_agree_on_which_sessions_are_open() {
        let policy = SessionPolicy::with_idle_minutes(30);
        let now = Utc::now();
        let limits = policy.open_at(now);
        for (started, seen) in [
            (limits.started_after, now.into()),
            (now.into(), limits.seen_after),
        ] {
            assert!(
                !policy.is_open(started, seen, now),
                "on the limit is closed"
            );
        }
        let purge = policy.purge_limits(now);
        assert!(purge.started_after < limits.started_after);
        assert!(purge.seen_after < limits.seen_after);
    }

    #[test]
    fn the_idle_timeout_never_exceeds_the_lifetime() {
        let policy = SessionPolicy::new(std::time::Duration::from_secs(24 * 3600));
        assert_eq!(policy.idle, LIFETIME);
    }

    #[test]
    fn each_reason_has_a_notice() {
        for why in [Ended::Expired, Ended::Closed, Ended::PasswordAttempts] {
            assert!(Ended::notice(why.code()).is_some());
        }
        assert_eq!(Ended::notice("other"), None);
    }
}
