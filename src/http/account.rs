//! Mi cuenta: every signed-in user's own page — their data, "Cambiar mi
//! contraseña" (which asks for the current one and ends the user's other
//! sessions) and their open sessions with "Cerrar las demás sesiones".
//! The sessions card is shared with a user's page in Usuarios.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::Utc;
use uuid::Uuid;

use super::admin::{Fields, see_other};
use super::pages::{
    PageContext, local_datetime, machine_datetime, relative, render_with_status, set_flash,
};
use crate::app::state::AppState;
use crate::db::{Refusal, Ts};
use crate::domain::admin::check_password;
use crate::http::auth::CurrentUser;
use crate::http::auth::session::count_password_failure;
use crate::http::error::AppError;
use crate::services::auth::password;

const WRONG_CURRENT: &str = "Tu contraseña actual no es correcta.";

/// One open session as listed.
pub struct SessionView {
    pub id: Uuid,
    pub started: String,
    /// For `<time datetime>`.
    pub started_iso: String,
    pub last_seen: String,
    pub last_seen_ago: String,
    /// For `<time datetime>`.
    pub last_seen_iso: String,
    pub address: String,
    /// The session viewing the page.
    pub current: bool,
}

/// The button under the sessions list.
pub struct SessionsClose {
    pub action: String,
    pub label: &'static str,
}

/// The sessions card: the open sessions of `user_id` (the viewer's own
/// `current` one first) and the sentence saying when sessions end.
pub struct SessionsCard {
    pub sessions: Vec<SessionView>,
    pub close: Option<SessionsClose>,
    /// Shown instead of an empty table.
    pub empty: &'static str,
    pub rule: String,
}

impl SessionsCard {
    pub async fn load(
        state: &AppState,
        user_id: Uuid,
        current: Option<Uuid>,
    ) -> Result<SessionsCard, AppError> {
        let now = Utc::now();
        let policy = state.principals.policy();
        let rows = state
            .store
            .open_sessions(user_id, policy.open_at(now))
            .await?;
        let mut sessions: Vec<SessionView> = rows
            .into_iter()
            .map(|row| SessionView {
                id: row.id,
                started: local_datetime(row.created_at, state.timezone),
                started_iso: machine_datetime(row.created_at),
                last_seen: local_datetime(row.last_seen_at, state.timezone),
                last_seen_ago: relative(row.last_seen_at, now),
                last_seen_iso: machine_datetime(row.last_seen_at),
                address: row.address.unwrap_or_else(|| "—".to_owned()),
                current: Some(row.id) == current,
            })
            .collect();
        // The viewer's own session first: the others are what they act on.
        sessions.sort_by_key(|s| !s.current);
        let minutes = policy.idle.num_minutes();
        let idle = if minutes % 60 == 0 && minutes >= 60 {
            match minutes / 60 {
                1 => "1 hora".to_owned(),
                hours => format!("{hours} horas"),
            }
        } else if minutes == 1 {
            "1 minuto".to_owned()
        } else {
            format!("{minutes} minutos")
        };
        Ok(SessionsCard {
            sessions,
            close: None,
            empty: "No tiene sesiones abiertas.",
            rule: format!(
                "Una sesión termina tras {idle} sin actividad y, en cualquier caso, 12 horas después de iniciarse."
            ),
        })
    }

    /// Whether any listed session is not the viewer's.
    pub fn has_others(&self) -> bool {
        self.sessions.iter().any(|s| !s.current)
    }
}

#[derive(Default)]
struct PasswordErrors {
    current: Option<String>,
    new_password: Option<String>,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    ctx: PageContext,
    name: String,
    email: String,
    role_label: &'static str,
    errors: PasswordErrors,
    password_min: usize,
    card: SessionsCard,
}

async fn page(
    req: &HttpRequest,
    state: &AppState,
    user: &CurrentUser,
    errors: PasswordErrors,
) -> Result<AccountPage, AppError> {
    let mut card = SessionsCard::load(state, user.user_id, Some(user.session_id)).await?;
    if card.has_others() {
        card.close = Some(SessionsClose {
            action: "/cuenta/sesiones/cerrar".to_owned(),
            label: "Cerrar las demás sesiones",
        });
    }
    Ok(AccountPage {
        ctx: PageContext::new(req, user, "cuenta")?,
        name: user.name.clone(),
        email: user.email.clone(),
        role_label: user.role.label(),
        errors,
        password_min: password::MIN_PASSWORD_CHARS,
        card,
    })
}

/// `GET /cuenta`
pub async fn show(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let page = page(&req, &state, &user, PasswordErrors::default()).await?;
    render_with_status(&page, StatusCode::OK)
}

/// `POST /cuenta/contrasena`: the current password, the new one and its
/// confirmation. Ends every other session of the user; this one goes on.
pub async fn change_password(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    session: Session,
    form: web::Form<Fields>,
) -> Result<HttpResponse, AppError> {
    let mut errors = PasswordErrors::default();
    let hash = state
        .store
        .login_account(&user.email)
        .await?
        .and_then(|account| account.password_hash);
    let current_ok = password::verify(form.get("actual").to_owned(), hash)
        .await
        .map_err(AppError::Unexpected)?;
    if !current_ok {
        if count_password_failure(&state, &session, &user).await? {
            return Ok(see_other("/login"));
        }
        errors.current = Some(WRONG_CURRENT.to_owned());
    } else if let Err(message) = check_password(
        form.get("contrasena"),
        form.get("confirmacion"),
        &user.email,
    ) {
        errors.new_password = Some(message);
    } else {
        let hash = password::hash(form.get("contrasena").to_owned()).await?;
        match state
            .store
            .set_account_password(
                user.user_id,
                user.user_id,
                &hash,
                Ts::now(),
                Some(user.session_id),
            )
            .await?
        {
            Ok(()) => {
                set_flash(
                    &session,
                    "Contraseña cambiada. Se cerraron tus otras sesiones.",
                );
                return Ok(see_other("/cuenta"));
            }
            Err(Refusal::Invalid(message)) => errors.new_password = Some(message),
            Err(_) => return Err(AppError::NotFound("No encontramos tu cuenta.")),
        }
    }
    let page = page(&req, &state, &user, errors).await?;
    render_with_status(&page, StatusCode::UNPROCESSABLE_ENTITY)
}

/// `POST /cuenta/sesiones/cerrar`: ends every session of the user but this
/// one.
pub async fn close_other_sessions(
    user: CurrentUser,
    state: web::Data<AppState>,
    session: Session,
) -> Result<HttpResponse, AppError> {
    let ended = state
        .store
        .end_other_sessions(user.user_id, user.session_id)
        .await?;
    set_flash(&session, &closed_message(ended));
    Ok(see_other("/cuenta"))
}

/// The confirmation after closing one's other sessions.
pub fn closed_message(ended: u64) -> String {
    match ended {
        0 => "No había otras sesiones abiertas.".to_owned(),
        1 => "Se cerraron tus otras sesiones (1).".to_owned(),
        n => format!("Se cerraron tus otras sesiones ({n})."),
    }
}
