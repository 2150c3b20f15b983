//! Usuarios (Super Administrador only): the filtered list, creating and
//! editing users (name, e-mail, role, campaigns), setting a password for the
//! administrator roles, deactivating or reactivating, and the user's open
//! sessions, which can be closed. The last active Super Administrador can
//! never be deactivated or demoted; changes reach the affected user's next
//! request and open live stream. Setting a password ends every session of
//! the user (all but the current one when it is one's own).

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use uuid::Uuid;

use super::account::{SessionsCard, SessionsClose, closed_message};
use super::admin::{Fields, Opt, Pager, confirm, field_id, path_id, require_super, see_other};
use super::pages::{PageContext, render_with_status, set_flash};
use crate::app::state::AppState;
use crate::db::{AccountInput, AccountRow, CampaignRecord, Refusal, Ts, UserFilter};
use crate::domain::Role;
use crate::domain::admin::{NAME_MAX_CHARS, Name, check_password};
use crate::domain::text::{EMAIL_MAX_CHARS, Email};
use crate::http::auth::CurrentUser;
use crate::http::error::AppError;

const NO_USER: &str = "No encontramos ese usuario.";
const DUPLICATE_EMAIL: &str = "Ya existe un usuario con ese correo electrónico.";
const BAD_EMAIL: &str = "Escribe un correo electrónico válido, por ejemplo ana@empresa.mx.";
const LAST_SUPER_ROLE: &str = "Es el último Super Administrador activo: no se puede cambiar su rol. Nombra antes a otro Super Administrador.";
const LAST_SUPER_ACTIVE: &str = "Es el último Super Administrador activo: no se puede desactivar. Nombra antes a otro Super Administrador.";

struct ListRow {
    id: Uuid,
    name: String,
    email: String,
    role: &'static str,
    role_label: &'static str,
    active: bool,
    campaigns: String,
}

#[derive(Template)]
#[template(path = "users.html")]
struct ListPage {
    ctx: PageContext,
    rows: Vec<ListRow>,
    roles: Vec<Opt>,
    campaigns: Vec<Opt>,
    active_choices: Vec<Opt>,
    notice: Option<String>,
    pager: Pager,
}

/// The filter the query asks for; a value that cannot be read is ignored,
/// with a notice that says so.
fn read_filter(query: &Fields) -> (UserFilter, Option<String>) {
    let mut notice = None;
    let role = match query.get("rol") {
        "" => None,
        other => {
            let role = Role::parse(other);
            if role.is_none() {
                notice = Some("Se ignoró el filtro de rol: el valor no es válido.".to_owned());
            }
            role
        }
    };
    let campaign_id = match field_id(query.get("campana")) {
        Ok(id) => id,
        Err(_) => {
            notice = Some("Se ignoró el filtro de campaña: el valor no es válido.".to_owned());
            None
        }
    };
    let active = match query.get("estado") {
        "activos" => Some(true),
        "inactivos" => Some(false),
        _ => None,
    };
    let filter = UserFilter {
        role,
        campaign_id,
        active,
    };
    (filter, notice)
}

/// `GET /usuarios?rol=…&campana=…&estado=activos|inactivos`
pub async fn list(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    query: web::Query<Fields>,
) -> Result<HttpResponse, AppError> {
    require_super(&user)?;
    let (filter, notice) = read_filter(&query);
    let (role, campaign_id, active) = (filter.role, filter.campaign_id, filter.active);
    let (page, all_campaigns) = tokio::try_join!(
        state.store.accounts_page(&filter, query.cursor()),
        state.store.all_campaigns()
    )?;
    let role_value = role.map_or("", Role::as_str);
    let campaign_value = campaign_id.map(|c| c.to_string()).unwrap_or_default();
    let active_value = match active {
        Some(true) => "activos",
        Some(false) => "inactivos",
        None => "",
    };
    let pager = Pager::new(
        "/usuarios",
        &[
            ("rol", role_value.to_owned()),
            ("campana", campaign_value.clone()),
            ("estado", active_value.to_owned()),
        ],
        &page,
        |r| r.account.id,
    );
    let mut roles = vec![Opt::new("", "Todos los roles", role.is_none())];
    roles.extend(
        Role::ALL
            .iter()
            .map(|r| Opt::new(r.as_str(), r.label(), Some(*r) == role)),
    );
    let mut campaigns = vec![Opt::new("", "Todas las campañas", campaign_id.is_none())];
    campaigns.extend(
        all_campaigns
            .iter()
            .map(|c| Opt::new(c.id.to_string(), c.name.clone(), Some(c.id) == campaign_id)),
    );
    render_with_status(
        &ListPage {
            ctx: PageContext::new(&req, &user, "usuarios")?,
            rows: page
                .rows
                .into_iter()
                .map(|r| ListRow {
                    id: r.account.id,
                    name: r.account.name,
                    email: r.account.email,
                    role: r.account.role.as_str(),
                    role_label: r.account.role.label(),
                    active: r.account.active,
                    campaigns: if r.account.role == Role::SuperAdmin {
                        "Todas".to_owned()
                    } else {
                        r.campaigns.join(", ")
                    },
                })
                .collect(),
            roles,
            campaigns,
            active_choices: [
                ("", "Todos"),
                ("activos", "Activos"),
                ("inactivos", "Inactivos"),
            ]
            .iter()
            .map(|(v, l)| Opt::new(*v, *l, *v == active_value))
            .collect(),
            notice,
            pager,
        },
        StatusCode::OK,
    )
}

/// Field errors of the user form.
#[derive(Default)]
struct Errors {
    name: Option<String>,
    email: Option<String>,
    role: Option<String>,
    campaigns: Option<String>,
    password: Option<String>,
    active: Option<String>,
}

impl Errors {
    fn any(&self) -> bool {
        self.name.is_some()
            || self.email.is_some()
            || self.role.is_some()
            || self.campaigns.is_some()
            || self.password.is_some()
    }
}

struct CampaignChoice {
    id: Uuid,
    name: String,
    active: bool,
    checked: bool,
}

#[derive(Template)]
#[template(path = "user.html")]
struct UserPage {
    ctx: PageContext,
    /// `None` for the creation form.
    account: Option<AccountRow>,
    is_self: bool,
    name_value: String,
    email_value: String,
    role_value: String,
    roles: Vec<Opt>,
    campaigns: Vec<CampaignChoice>,
    errors: Errors,
    name_max: usize,
    email_max: usize,
    password_min: usize,
    /// The user's open sessions (`None` on the creation form).
    card: Option<SessionsCard>,
}

fn role_options(selected: &str) -> Vec<Opt> {
    Role::ALL
        .iter()
        .map(|r| Opt::new(r.as_str(), r.label(), r.as_str() == selected))
        .collect()
}

fn campaign_choices(all: &[CampaignRecord], checked: &[Uuid]) -> Vec<CampaignChoice> {
    all.iter()
        .map(|c| CampaignChoice {
            id: c.id,
            name: c.name.clone(),
            active: c.active,
            checked: checked.contains(&c.id),
        })
        .collect()
}

/// `GET /usuarios/nuevo`
pub async fn new_form(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    require_super(&user)?;
    let all = state.store.all_campaigns().await?;
    render_with_status(
        &UserPage {
            ctx: PageContext::new(&req, &user, "usuarios")?,
            account: None,
            is_self: false,
            name_value: String::new(),
            email_value: String::new(),
            role_value: Role::Agent.as_str().to_owned(),
            roles: role_options(Role::Agent.as_str()),
            campaigns: campaign_choices(&all, &[]),
            errors: Errors::default(),
            name_max: NAME_MAX_CHARS,
            email_max: EMAIL_MAX_CHARS,
            password_min: crate::services::auth::password::MIN_PASSWORD_CHARS,
            card: None,
        },
        StatusCode::OK,
    )
}

/// The form parsed, or its field errors. `checked` is what to re-tick.
struct Parsed {
    input: Option<AccountInput>,
    errors: Errors,
    checked: Vec<Uuid>,
}

fn parse_form(form: &Fields, all: &[CampaignRecord]) -> Parsed {
    let mut errors = Errors::default();
    let name = Name::parse(form.get("nombre"))
        .map_err(|e| errors.name = Some(e.message()))
        .ok();
    let email = Email::parse(form.get("correo"));
    if email.is_none() {
        errors.email = Some(BAD_EMAIL.into());
    }
    let role = Role::parse(form.get("rol").trim());
    if role.is_none() {
        errors.role = Some("Elige un rol.".into());
    }
    let mut checked = Vec::new();
    for raw in form.all("campanas") {
        match field_id(raw) {
            Ok(Some(id)) if all.iter().any(|c| c.id == id) => checked.push(id),
            Ok(None) => {}
            _ => errors.campaigns = Some("Una de las campañas elegidas no existe.".into()),
        }
    }
    let input = match (name, email, role) {
        (Some(name), Some(email), Some(role)) if !errors.any() => Some(AccountInput {
            name,
            email,
            role,
            campaigns: checked.clone(),
        }),
        _ => None,
    };
    Parsed {
        input,
        errors,
        checked,
    }
}

/// `POST /usuarios`
pub async fn create(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    session: Session,
    form: web::Form<Fields>,
) -> Result<HttpResponse, AppError> {
    require_super(&user)?;
    let all = state.store.all_campaigns().await?;
    let Parsed {
        input,
        mut errors,
        checked,
    } = parse_form(&form, &all);
    let role = Role::parse(form.get("rol").trim());
    let needs_password = role.is_some_and(Role::may_use_console);
    let password = form.get("contrasena").to_owned();
    if needs_password
        && let Err(message) = check_password(
            &password,
            form.get("confirmacion"),
            form.get("correo").trim(),
        )
    {
        errors.password = Some(message);
    }
    if let Some(input) = input.filter(|_| errors.password.is_none()) {
        let hash = if needs_password {
            Some(crate::services::auth::password::hash(password).await?)
        } else {
            None
        };
        match state
            .store
            .create_account(user.user_id, &input, hash, Ts::now())
            .await?
        {
            Ok(id) => {
                set_flash(
                    &session,
                    &format!("Usuario «{}» creado", input.name.as_str()),
                );
                return Ok(see_other(&format!("/usuarios/{id}")));
            }
            Err(Refusal::Duplicate) => errors.email = Some(DUPLICATE_EMAIL.into()),
            Err(Refusal::Invalid(message)) => errors.campaigns = Some(message),
            Err(other) => return Err(AppError::Conflict(format!("{other:?}"))),
        }
    }
    let role_value = form.get("rol").trim().to_owned();
    render_with_status(
        &UserPage {
            ctx: PageContext::new(&req, &user, "usuarios")?,
            account: None,
            is_self: false,
            name_value: form.get("nombre").to_owned(),
            email_value: form.get("correo").to_owned(),
            roles: role_options(&role_value),
            role_value,
            campaigns: campaign_choices(&all, &checked),
            errors,
            name_max: NAME_MAX_CHARS,
            email_max: EMAIL_MAX_CHARS,
            password_min: crate::services::auth::password::MIN_PASSWORD_CHARS,
            card: None,
        },
        StatusCode::UNPROCESSABLE_ENTITY,
    )
}

async fn load(state: &AppState, raw: &str) -> Result<(AccountRow, Vec<Uuid>), AppError> {
    let id = path_id(raw, NO_USER)?;
    state
        .store
        .account(id)
        .await?
        .ok_or(AppError::NotFound(NO_USER))
}

async fn edit_page(
    req: &HttpRequest,
    state: &AppState,
    user: &CurrentUser,
    account: AccountRow,
    campaigns: &[Uuid],
) -> Result<UserPage, AppError> {
    let all = state.store.all_campaigns().await?;
    let is_self = account.id == user.user_id;
    let mut card = SessionsCard::load(state, account.id, Some(user.session_id)).await?;
    let close = format!("/usuarios/{}/sesiones/cerrar", account.id);
    card.close = match (is_self, card.has_others()) {
        (true, true) => Some(SessionsClose {
            action: close,
            label: "Cerrar las demás sesiones",
        }),
        (false, true) => Some(SessionsClose {
            action: close,
            label: "Cerrar sus sesiones",
        }),
        (_, false) => None,
    };
    Ok(UserPage {
        ctx: PageContext::new(req, user, "usuarios")?,
        is_self,
        name_value: account.name.clone(),
        email_value: account.email.clone(),
        role_value: account.role.as_str().to_owned(),
        roles: role_options(account.role.as_str()),
        campaigns: campaign_choices(&all, campaigns),
        account: Some(account),
        errors: Errors::default(),
        name_max: NAME_MAX_CHARS,
        email_max: EMAIL_MAX_CHARS,
        password_min: crate::services::auth::password::MIN_PASSWORD_CHARS,
        card: Some(card),
    })
}

/// `GET /usuarios/{id}`
pub async fn show(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    require_super(&user)?;
    let (account, campaigns) = load(&state, &path).await?;
    let page = edit_page(&req, &state, &user, account, &campaigns).await?;
    render_with_status(&page, StatusCode::OK)
}

/// `POST /usuarios/{id}`: name, e-mail, role and campaigns.
pub async fn update(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<String>,
    form: web::Form<Fields>,
) -> Result<HttpResponse, AppError> {
    require_super(&user)?;
    let (account, campaigns) = load(&state, &path).await?;
    let all = state.store.all_campaigns().await?;
    let Parsed {
        input,
        mut errors,
        checked,
    } = parse_form(&form, &all);
    if account.id == user.user_id && form.get("rol").trim() != account.role.as_str() {
        errors.role = Some("No puedes cambiar tu propio rol.".into());
    }
    if let Some(input) = input.filter(|_| errors.role.is_none()) {
        match state
            .store
            .update_account(user.user_id, account.id, &input, Ts::now())
            .await?
        {
            Ok(changed) => {
                set_flash(
                    &session,
                    &if changed {
                        format!("Usuario «{}» guardado", input.name.as_str())
                    } else {
                        "Sin cambios".to_owned()
                    },
                );
                return Ok(see_other(&format!("/usuarios/{}", account.id)));
            }
            Err(Refusal::Duplicate) => errors.email = Some(DUPLICATE_EMAIL.into()),
            Err(Refusal::LastSuperAdmin) => errors.role = Some(LAST_SUPER_ROLE.into()),
            Err(Refusal::Invalid(message)) => errors.campaigns = Some(message),
            Err(Refusal::NotFound) => return Err(AppError::NotFound(NO_USER)),
        }
    }
    let _ = campaigns;
    let mut page = edit_page(&req, &state, &user, account, &checked).await?;
    page.name_value = form.get("nombre").to_owned();
    page.email_value = form.get("correo").to_owned();
    page.role_value = form.get("rol").trim().to_owned();
    page.roles = role_options(&page.role_value);
    page.errors = errors;
    render_with_status(&page, StatusCode::UNPROCESSABLE_ENTITY)
}

/// `POST /usuarios/{id}/contrasena`
pub async fn set_password(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<String>,
    form: web::Form<Fields>,
) -> Result<HttpResponse, AppError> {
    require_super(&user)?;
    let (account, campaigns) = load(&state, &path).await?;
    let password = form.get("contrasena").to_owned();
    let error = if !account.role.may_use_console() {
        Some("Los agentes no inician sesión en Relevo: no necesitan contraseña.".to_owned())
    } else {
        check_password(&password, form.get("confirmacion"), &account.email).err()
    };
    let error = match error {
        Some(message) => Some(message),
        None => {
            let hash = crate::services::auth::password::hash(password).await?;
            // One's own password keeps the session that sets it; anyone
            // else's ends all of their sessions.
            let keep = (account.id == user.user_id).then_some(user.session_id);
            match state
                .store
                .set_account_password(user.user_id, account.id, &hash, Ts::now(), keep)
                .await?
            {
                Ok(()) => {
                    let ended = if keep.is_some() {
                        "se cerraron tus otras sesiones"
                    } else {
                        "se cerraron sus sesiones"
                    };
                    set_flash(
                        &session,
                        &format!("Contraseña de «{}» establecida; {ended}", account.name),
                    );
                    return Ok(see_other(&format!("/usuarios/{}", account.id)));
                }
                Err(Refusal::Invalid(message)) => Some(message),
                Err(_) => return Err(AppError::NotFound(NO_USER)),
            }
        }
    };
    let mut page = edit_page(&req, &state, &user, account, &campaigns).await?;
    page.errors.password = error;
    render_with_status(&page, StatusCode::UNPROCESSABLE_ENTITY)
}

/// `POST /usuarios/{id}/{desactivar|reactivar}`
pub async fn set_active(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<(String, String)>,
    form: web::Form<Fields>,
) -> Result<HttpResponse, AppError> {
    require_super(&user)?;
    let (raw, action) = path.into_inner();
    let (account, campaigns) = load(&state, &raw).await?;
    let active = match action.as_str() {
        "desactivar" => false,
        "reactivar" => true,
        _ => return Err(AppError::NotFound("No encontramos esa página.")),
    };
    let back = format!("/usuarios/{}", account.id);
    let refuse = |message: &str| message.to_owned();
    let error = if !active && account.id == user.user_id {
        Some(refuse("No puedes desactivar tu propia cuenta."))
    } else if !active && !form.confirmed() {
        return confirm(
            &req,
            &user,
            "usuarios",
            format!("¿Desactivar a {}?", account.name),
            vec![
                "No podrá iniciar sesión y sus sesiones abiertas terminan en su siguiente clic."
                    .into(),
                "Su nombre se conserva en el historial de las conversaciones y en la auditoría."
                    .into(),
                "Puedes reactivarlo cuando quieras.".into(),
            ],
            back,
        );
    } else {
        match state
            .store
            .set_account_active(user.user_id, account.id, active, Ts::now())
            .await?
        {
            Ok(changed) => {
                let message = match (changed, active) {
                    (false, _) => "Sin cambios".to_owned(),
                    (true, true) => format!("{} reactivado", account.name),
                    (true, false) => format!("{} desactivado", account.name),
                };
                set_flash(&session, &message);
                return Ok(see_other(&back));
            }
            Err(Refusal::LastSuperAdmin) => Some(refuse(LAST_SUPER_ACTIVE)),
            Err(_) => return Err(AppError::NotFound(NO_USER)),
        }
    };
    let mut page = edit_page(&req, &state, &user, account, &campaigns).await?;
    page.errors.active = error;
    render_with_status(&page, StatusCode::UNPROCESSABLE_ENTITY)
}

/// `POST /usuarios/{id}/sesiones/cerrar`: ends the user's sessions (one's
/// own: all but this one), on every instance; closing someone else's is
/// audited.
pub async fn close_sessions(
    user: CurrentUser,
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    require_super(&user)?;
    let (account, _) = load(&state, &path).await?;
    let message = if account.id == user.user_id {
        let ended = state
            .store
            .end_other_sessions(user.user_id, user.session_id)
            .await?;
        closed_message(ended)
    } else {
        match state
            .store
            .end_sessions_by_admin(user.user_id, account.id, Ts::now())
            .await?
        {
            Ok(0) => format!("«{}» no tenía sesiones abiertas", account.name),
            Ok(ended) => format!("Se cerraron las sesiones de «{}» ({ended})", account.name),
            Err(_) => return Err(AppError::NotFound(NO_USER)),
        }
    };
    set_flash(&session, &message);
    Ok(see_other(&format!("/usuarios/{}", account.id)))
}
