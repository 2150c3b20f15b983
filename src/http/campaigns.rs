//! Campañas (Super Administrador only): the list with its counts, creating,
//! renaming, deactivating and reactivating a campaign, its weekly schedule,
//! its channels and integration tokens (each token shown exactly once), and
//! its assigned Administradores and Agentes.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use uuid::Uuid;

use super::admin::{
    Fields, Opt, PAGE_KEYS, PageKeys, Pager, confirm, confirm_with, field_id, path_id,
    require_super, see_other, when,
};
use super::pages::{PageContext, render_with_status, set_flash};
use crate::app::state::AppState;
use crate::db::{CampaignRecord, CampaignSummary, ChannelRecord, PageCursor, Refusal, Ts};
use crate::domain::admin::{
    DayHours, DayInput, DayMode, NAME_MAX_CHARS, Name, WEEKDAYS, parse_schedule, parse_stale_after,
    parse_timezone,
};
use crate::domain::{ChannelKind, Role};
use crate::http::auth::CurrentUser;
use crate::http::error::AppError;

const NO_CAMPAIGN: &str = "No encontramos esa campaña.";
const NO_CHANNEL: &str = "No encontramos ese canal.";
const NO_TOKEN: &str = "No encontramos ese token.";
const NO_USER: &str = "No encontramos ese usuario.";
const DUPLICATE: &str =
    "Ya existe una campaña con ese nombre (sin distinguir mayúsculas ni acentos).";
const BAD_ZONE: &str =
    "Zona horaria desconocida: elige una de la lista (por ejemplo America/Mexico_City).";

/// The Canales y tokens page pages its two lists independently.
const CHANNEL_PAGE: PageKeys = PageKeys {
    prev: "canales_antes",
    next: "canales_despues",
};
const TOKEN_PAGE: PageKeys = PageKeys {
    prev: "tokens_antes",
    next: "tokens_despues",
};
/// The member picker's "Más resultados": the candidates after this one
/// (the picker only goes forward, and back to its first page).
const PICKER_PAGE: PageKeys = PageKeys {
    prev: "buscar_antes",
    next: "buscar_despues",
};

struct Row {
    summary: CampaignSummary,
}

#[derive(Template)]
#[template(path = "campaigns.html")]
struct ListPage {
    ctx: PageContext,
    rows: Vec<Row>,
    active_choices: Vec<Opt>,
    pager: Pager,
}

/// `GET /campanas?estado=activas|inactivas`
pub async fn list(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    query: web::Query<Fields>,
) -> Result<HttpResponse, AppError> {
    require_super(&user)?;
    let requested = query.get("estado");
    let active = match requested {
        "activas" => Some(true),
        "inactivas" => Some(false),
        _ => None,
    };
    let page = state.store.campaigns_page(active, query.cursor()).await?;
    let active_value = match active {
        Some(true) => "activas",
        Some(false) => "inactivas",
        None => "",
    };
    let pager = Pager::new(
        "/campanas",
        &[("estado", active_value.to_owned())],
        &page,
        |r| r.id,
    );
    render_with_status(
        &ListPage {
            ctx: PageContext::new(&req, &user, "campanas")?,
            rows: page
                .rows
                .into_iter()
                .map(|summary| Row { summary })
                .collect(),
            active_choices: [
                ("", "Todas"),
                ("activas", "Activas"),
                ("inactivas", "Inactivas"),
            ]
            .iter()
            .map(|(v, l)| Opt::new(*v, *l, *v == active_value))
            .collect(),
            pager,
        },
        StatusCode::OK,
    )
}

#[derive(Template)]
#[template(path = "campaign_new.html")]
struct NewPage {
    ctx: PageContext,
    name_value: String,
    tz_value: String,
    name_error: Option<String>,
    tz_error: Option<String>,
    timezones: Vec<&'static str>,
    name_max: usize,
}

fn timezones() -> Vec<&'static str> {
    chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).collect()
}

/// `GET /campanas/nueva`
pub async fn new_form(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    require_super(&user)?;
    render_with_status(
        &NewPage {
            ctx: PageContext::new(&req, &user, "campanas")?,
            name_value: String::new(),
            tz_value: state.timezone.name().to_owned(),
            name_error: None,
            tz_error: None,
            timezones: timezones(),
            name_max: NAME_MAX_CHARS,
        },
        StatusCode::OK,
    )
}

/// `POST /campanas`
pub async fn create(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    session: Session,
    form: web::Form<Fields>,
) -> Result<HttpResponse, AppError> {
    require_super(&user)?;
    let raw_name = form.get("nombre").to_owned();
    let raw_tz = form.get("zona").trim().to_owned();
    let name = Name::parse(&raw_name);
    let tz = parse_timezone(&raw_tz);
    let mut name_error = name.as_ref().err().map(|e| e.message());
    let tz_error = tz.is_none().then(|| BAD_ZONE.to_owned());
    if let (Ok(name), Some(tz)) = (&name, tz) {
        match state
            .store
            .create_campaign(user.user_id, name, tz.name(), Ts::now())
            .await?
        {
            Ok(id) => {
                set_flash(
                    &session,
                    &format!(
                        "Campaña «{}» creada. Define su horario: mientras no lo tenga, sus conversaciones quedan Fuera de Horario.",
                        name.as_str()
                    ),
                );
                return Ok(see_other(&format!("/campanas/{id}/horario")));
            }
            Err(Refusal::Duplicate) => name_error = Some(DUPLICATE.into()),
            Err(other) => return Err(AppError::Conflict(format!("{other:?}"))),
        }
    }
    render_with_status(
        &NewPage {
            ctx: PageContext::new(&req, &user, "campanas")?,
            name_value: raw_name,
            tz_value: raw_tz,
            name_error,
            tz_error,
            timezones: timezones(),
            name_max: NAME_MAX_CHARS,
        },
        StatusCode::UNPROCESSABLE_ENTITY,
    )
}

/// One weekday in the schedule editor.
struct DayView {
    index: usize,
    label: &'static str,
    mode: String,
    opens: String,
    closes: String,
    mode_error: Option<String>,
    opens_error: Option<String>,
    closes_error: Option<String>,
}

struct ChannelView {
    id: Uuid,
    kind: &'static str,
    kind_label: &'static str,
    name: String,
    active: bool,
    created: String,
}

struct TokenView {
    id: Uuid,
    name: String,
    created: String,
    revoked: Option<String>,
}

struct MemberView {
    id: Uuid,
    name: String,
    email: String,
    role_label: &'static str,
    is_admin: bool,
    active: bool,
}

/// A token shown once, right after it was made.
struct Revealed {
    title: String,
    token: String,
}

#[derive(Template)]
#[template(path = "campaign.html")]
struct CampaignPage {
    ctx: PageContext,
    tab: &'static str,
    campaign: CampaignRecord,
    summary: Option<CampaignSummary>,
    name_max: usize,
    // Datos
    name_value: String,
    tz_value: String,
    name_error: Option<String>,
    tz_error: Option<String>,
    timezones: Vec<&'static str>,
    stale_value: String,
    stale_error: Option<&'static str>,
    // Horario
    days: Vec<DayView>,
    // Canales
    channels: Vec<ChannelView>,
    channel_pager: Pager,
    kinds: Vec<Opt>,
    channel_name_value: String,
    channel_error: Option<String>,
    kind_error: Option<String>,
    tokens: Vec<TokenView>,
    token_pager: Pager,
    token_name_value: String,
    token_error: Option<String>,
    revealed: Option<Revealed>,
    // Miembros
    members: Vec<MemberView>,
    pager: Pager,
    search: String,
    searched: bool,
    candidates: Vec<MemberView>,
    /// "Más resultados": the picker's next page.
    more_candidates: Option<String>,
    /// Back to the picker's first page, from a later one.
    first_candidates: Option<String>,
    member_error: Option<String>,
}

impl CampaignPage {
    fn new(ctx: PageContext, tab: &'static str, campaign: CampaignRecord) -> CampaignPage {
        CampaignPage {
            ctx,
            tab,
            name_value: campaign.name.clone(),
            tz_value: campaign.timezone.clone(),
            stale_value: campaign.stale_after_minutes.to_string(),
            stale_error: None,
            campaign,
            summary: None,
            name_max: NAME_MAX_CHARS,
            name_error: None,
            tz_error: None,
            timezones: Vec::new(),
            days: Vec::new(),
            channels: Vec::new(),
            channel_pager: Pager::default(),
            kinds: Vec::new(),
            channel_name_value: String::new(),
            channel_error: None,
            kind_error: None,
            tokens: Vec::new(),
            token_pager: Pager::default(),
            token_name_value: String::new(),
            token_error: None,
            revealed: None,
            members: Vec::new(),
            pager: Pager::default(),
            search: String::new(),
            searched: false,
            candidates: Vec::new(),
            more_candidates: None,
            first_candidates: None,
            member_error: None,
        }
    }
}

/// The campaign of a path's `{id}` (404 when there is none).
pub(super) async fn load(state: &AppState, raw: &str) -> Result<CampaignRecord, AppError> {
    let id = path_id(raw, NO_CAMPAIGN)?;
    state
        .store
        .campaign(id)
        .await?
        .ok_or(AppError::NotFound(NO_CAMPAIGN))
}

async fn page(
    req: &HttpRequest,
    state: &AppState,
    user: &CurrentUser,
    tab: &'static str,
    campaign: CampaignRecord,
) -> Result<CampaignPage, AppError> {
    let summary = state.store.campaign_summary(campaign.id).await?;
    let mut page = CampaignPage::new(PageContext::new(req, user, "campanas")?, tab, campaign);
    page.summary = summary;
    Ok(page)
}

/// `GET /campanas/{id}`: the campaign's data and state.
pub async fn show(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    require_super(&user)?;
    let campaign = load(&state, &path).await?;
    let mut view = page(&req, &state, &user, "datos", campaign).await?;
    view.timezones = timezones();
    render_with_status(&view, StatusCode::OK)
}

/// `POST /campanas/{id}`: rename and/or change the time zone.
pub async fn update(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<String>,
    form: web::Form<Fields>,
) -> Result<HttpResponse, AppError> {
    require_super(&user)?;
    let campaign = load(&state, &path).await?;
    let raw_name = form.get("nombre").to_owned();
    let raw_tz = form.get("zona").trim().to_owned();
    let raw_stale = form.get("rezagada_minutos").trim().to_owned();
    let name = Name::parse(&raw_name);
    let tz = parse_timezone(&raw_tz);
    let stale = parse_stale_after(&raw_stale);
    let mut name_error = name.as_ref().err().map(|e| e.message());
    let tz_error = tz.is_none().then(|| BAD_ZONE.to_owned());
    if let (Ok(name), Some(tz), Ok(stale)) = (&name, tz, stale) {
        match state
            .store
            .update_campaign(user.user_id, campaign.id, name, tz.name(), stale, Ts::now())
            .await?
        {
            Ok(changed) => {
                set_flash(
                    &session,
                    if changed {
                        "Cambios guardados"
                    } else {
                        "Sin cambios"
                    },
                );
                return Ok(see_other(&format!("/campanas/{}", campaign.id)));
            }
            Err(Refusal::Duplicate) => name_error = Some(DUPLICATE.into()),
            Err(Refusal::NotFound) => return Err(AppError::NotFound(NO_CAMPAIGN)),
            Err(other) => return Err(AppError::Conflict(format!("{other:?}"))),
        }
    }
    let mut view = page(&req, &state, &user, "datos", campaign).await?;
    view.timezones = timezones();
    view.name_value = raw_name;
    view.tz_value = raw_tz;
    view.name_error = name_error;
    view.tz_error = tz_error;
    view.stale_value = raw_stale;
    view.stale_error = stale.err();
    render_with_status(&view, StatusCode::UNPROCESSABLE_ENTITY)
}

/// `POST /campanas/{id}/{desactivar|reactivar}`
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
    let campaign = load(&state, &raw).await?;
    let active = match action.as_str() {
        "desactivar" => false,
        "reactivar" => true,
        _ => return Err(AppError::NotFound("No encontramos esa página.")),
    };
    let back = format!("/campanas/{}", campaign.id);
    if !active && !form.confirmed() {
        let summary = state.store.campaign_summary(campaign.id).await?;
        let open = summary.as_ref().map_or(0, |s| s.open_conversations);
        return confirm(
            &req,
            &user,
            "campanas",
            format!("¿Desactivar la campaña «{}»?", campaign.name),
            vec![
                "Sus Administradores dejarán de ver sus conversaciones en su siguiente clic, también en las tablas abiertas.".into(),
                format!("Tiene {open} conversaciones abiertas; seguirán en la base de datos y en el historial."),
                "Sus canales y tokens de integración dejarán de funcionar (la API responde 403), y ni el enrutador ni la cancelación automática tocarán sus conversaciones.".into(),
                "Puedes reactivarla cuando quieras.".into(),
            ],
            back,
        );
    }
    match state
        .store
        .set_campaign_active(user.user_id, campaign.id, active, Ts::now())
        .await?
    {
        Ok(changed) => {
            let message = match (changed, active) {
                (false, _) => "Sin cambios".to_owned(),
                (true, true) => format!("Campaña «{}» reactivada", campaign.name),
                (true, false) => format!("Campaña «{}» desactivada", campaign.name),
            };
            set_flash(&session, &message);
            Ok(see_other(&back))
        }
        Err(_) => Err(AppError::NotFound(NO_CAMPAIGN)),
    }
}

fn day_views(days: &[DayHours]) -> Vec<DayView> {
    (0..7)
        .map(|i| {
            let day = days.iter().find(|d| d.weekday as usize == i);
            let (mode, opens, closes) = match day {
                None => (DayMode::Closed, String::new(), String::new()),
                Some(d) if d.is_all_day() => (DayMode::AllDay, String::new(), String::new()),
                Some(d) => (DayMode::Hours, d.opens_text(), d.closes_text()),
            };
            DayView {
                index: i,
                label: WEEKDAYS[i],
                mode: mode.as_str().to_owned(),
                opens,
                closes,
                mode_error: None,
                opens_error: None,
                closes_error: None,
            }
        })
        .collect()
}

/// `GET /campanas/{id}/horario`
pub async fn schedule(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    require_super(&user)?;
    let campaign = load(&state, &path).await?;
    let days = state.store.campaign_schedule(campaign.id).await?;
    let mut view = page(&req, &state, &user, "horario", campaign).await?;
    view.days = day_views(&days);
    render_with_status(&view, StatusCode::OK)
}

/// `POST /campanas/{id}/horario`: fields `modo-N`, `abre-N`, `cierra-N` for N = 0 (Monday) … 6.
pub async fn save_schedule(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<String>,
    form: web::Form<Fields>,
) -> Result<HttpResponse, AppError> {
    require_super(&user)?;
    let campaign = load(&state, &path).await?;
    let inputs: [DayInput; 7] = std::array::from_fn(|i| DayInput {
        mode: form.get(&format!("modo-{i}")).to_owned(),
        opens: form.get(&format!("abre-{i}")).to_owned(),
        closes: form.get(&format!("cierra-{i}")).to_owned(),
    });
    match parse_schedule(&inputs) {
        Ok(days) => {
            match state
                .store
                .save_schedule(user.user_id, campaign.id, &days, Ts::now())
                .await?
            {
                Ok(changed) => {
                    set_flash(
                        &session,
                        if changed {
                            "Horario guardado"
                        } else {
                            "Sin cambios en el horario"
                        },
                    );
                    Ok(see_other(&format!("/campanas/{}/horario", campaign.id)))
                }
                Err(_) => Err(AppError::NotFound(NO_CAMPAIGN)),
            }
        }
        Err(errors) => {
            let mut view = page(&req, &state, &user, "horario", campaign).await?;
            view.days = inputs
                .iter()
                .enumerate()
                .map(|(i, input)| {
                    let error = |field: &str| {
                        errors
                            .iter()
                            .find(|(d, f, _)| *d == i && *f == field)
                            .map(|(_, _, m)| m.clone())
                    };
                    DayView {
                        index: i,
                        label: WEEKDAYS[i],
                        mode: input.mode.clone(),
                        opens: input.opens.clone(),
                        closes: input.closes.clone(),
                        mode_error: error("modo"),
                        opens_error: error("abre"),
                        closes_error: error("cierra"),
                    }
                })
                .collect();
            render_with_status(&view, StatusCode::UNPROCESSABLE_ENTITY)
        }
    }
}

/// The Canales y tokens tab, each list at the position `query` names.
async fn channels_view(
    req: &HttpRequest,
    state: &AppState,
    user: &CurrentUser,
    campaign: CampaignRecord,
    kind_selected: &str,
    query: &Fields,
) -> Result<CampaignPage, AppError> {
    let tz = state.timezone;
    let channel_cursor = query.cursor_in(CHANNEL_PAGE);
    let token_cursor = query.cursor_in(TOKEN_PAGE);
    let (channels, tokens) = tokio::try_join!(
        state.store.channels_page(campaign.id, channel_cursor),
        state.store.tokens_page(campaign.id, token_cursor)
    )?;
    // Paging one list keeps the other where it is.
    let base = format!("/campanas/{}/canales", campaign.id);
    let kept = |keys: PageKeys| -> Vec<(&'static str, String)> {
        [keys.prev, keys.next]
            .into_iter()
            .map(|field| (field, query.get(field).trim().to_owned()))
            .collect()
    };
    let channel_pager =
        Pager::in_fields(CHANNEL_PAGE, &base, &kept(TOKEN_PAGE), &channels, |c| c.id)
            .labelled("Páginas de canales");
    let token_pager = Pager::in_fields(TOKEN_PAGE, &base, &kept(CHANNEL_PAGE), &tokens, |t| t.id)
        .labelled("Páginas de tokens de integración");
    let mut view = page(req, state, user, "canales", campaign).await?;
    view.channels = channels
        .rows
        .into_iter()
        .map(|c| ChannelView {
            id: c.id,
            kind: c.kind.as_str(),
            kind_label: c.kind.label(),
            name: c.name,
            active: c.active,
            created: when(c.created_at, tz),
        })
        .collect();
    view.tokens = tokens
        .rows
        .into_iter()
        .map(|t| TokenView {
            id: t.id,
            name: t.name,
            created: when(t.created_at, tz),
            revoked: t.revoked_at.map(|at| when(at, tz)),
        })
        .collect();
    view.channel_pager = channel_pager;
    view.token_pager = token_pager;
    view.kinds = ChannelKind::ALL
        .iter()
        .map(|k| Opt::new(k.as_str(), k.label(), k.as_str() == kind_selected))
        .collect();
    Ok(view)
}

/// A page that shows a secret must never be cached or replayed from history.
pub(super) fn no_store(mut response: HttpResponse) -> HttpResponse {
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store, max-age=0"),
    );
    response
}

/// `GET /campanas/{id}/canales?canales_despues=…&tokens_despues=…`: channels
/// and integration tokens, each list paged on its own.
pub async fn channels(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<Fields>,
) -> Result<HttpResponse, AppError> {
    require_super(&user)?;
    let campaign = load(&state, &path).await?;
    let view = channels_view(&req, &state, &user, campaign, "", &query).await?;
    render_with_status(&view, StatusCode::OK)
}

/// `POST /campanas/{id}/canales`: a new channel; answers the page with its
/// token, shown this once.
pub async fn create_channel(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<Fields>,
) -> Result<HttpResponse, AppError> {
    require_super(&user)?;
    let campaign = load(&state, &path).await?;
    let raw_kind = form.get("tipo").to_owned();
    let raw_name = form.get("nombre").to_owned();
    let kind = ChannelKind::parse(raw_kind.trim());
    let name = Name::parse(&raw_name);
    let channel_error = name.as_ref().err().map(|e| e.message());
    let kind_error = kind.is_none().then(|| "Elige el tipo de canal.".to_owned());
    if let (Some(kind), Ok(name)) = (kind, &name) {
        match state
            .store
            .create_channel(user.user_id, campaign.id, kind, name, Ts::now())
            .await?
        {
            Ok((_, token)) => {
                let mut view =
                    channels_view(&req, &state, &user, campaign, "", &Fields::default()).await?;
                view.revealed = Some(Revealed {
                    title: format!("Canal {} «{}» creado", kind.label(), name.as_str()),
                    token,
                });
                return Ok(no_store(render_with_status(&view, StatusCode::OK)?));
            }
            Err(_) => return Err(AppError::NotFound(NO_CAMPAIGN)),
        }
    }
    let mut view = channels_view(
        &req,
        &state,
        &user,
        campaign,
        raw_kind.trim(),
        &Fields::default(),
    )
    .await?;
    view.channel_name_value = raw_name;
    view.channel_error = channel_error;
    view.kind_error = kind_error;
    render_with_status(&view, StatusCode::UNPROCESSABLE_ENTITY)
}

/// `POST /campanas/{id}/canales/{canal}/{rotar|desactivar|reactivar}`
pub async fn channel_action(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<(String, String, String)>,
    form: web::Form<Fields>,
) -> Result<HttpResponse, AppError> {
    require_super(&user)?;
    let (raw, raw_channel, action) = path.into_inner();
    let campaign = load(&state, &raw).await?;
    let channel_id = path_id(&raw_channel, NO_CHANNEL)?;
    let channel = state
        .store
        .campaign_channel(campaign.id, channel_id)
        .await?
        .ok_or(AppError::NotFound(NO_CHANNEL))?;
    let confirmed = form.confirmed();
    match action.as_str() {
        "rotar" => rotate_channel_token(&req, &state, &user, campaign, &channel, confirmed).await,
        "desactivar" | "reactivar" => {
            let active = action == "reactivar";
            if !active && !confirmed {
                return confirm_channel_deactivation(&req, &user, &campaign, &channel);
            }
            switch_channel(&state, &user, &session, &campaign, &channel, active).await
        }
        _ => Err(AppError::NotFound("No encontramos esa página.")),
    }
}

/// Where the channel actions answer.
fn channels_href(campaign: &CampaignRecord) -> String {
    format!("/campanas/{}/canales", campaign.id)
}

/// Rotates `channel`'s token once `confirmed` (asks first) and shows the
/// new token this once.
async fn rotate_channel_token(
    req: &HttpRequest,
    state: &AppState,
    user: &CurrentUser,
    campaign: CampaignRecord,
    channel: &ChannelRecord,
    confirmed: bool,
) -> Result<HttpResponse, AppError> {
    let label = format!("{} «{}»", channel.kind.label(), channel.name);
    if !confirmed {
        return confirm_with(
            req,
            user,
            "campanas",
            format!("¿Rotar el token del canal {label}?"),
            vec![
                "El token actual dejará de funcionar en ese momento: el conector del canal debe usar el nuevo.".into(),
                "El nuevo token se mostrará una sola vez.".into(),
            ],
            "Rotar token",
            channels_href(&campaign),
        );
    }
    let rotated = state
        .store
        .rotate_channel(user.user_id, campaign.id, channel.id, Ts::now())
        .await?;
    let Ok(token) = rotated else {
        return Err(AppError::NotFound(NO_CHANNEL));
    };
    let mut view = channels_view(req, state, user, campaign, "", &Fields::default()).await?;
    view.revealed = Some(Revealed {
        title: format!("Nuevo token del canal {label}"),
        token,
    });
    Ok(no_store(render_with_status(&view, StatusCode::OK)?))
}

/// The question asked before deactivating `channel`.
fn confirm_channel_deactivation(
    req: &HttpRequest,
    user: &CurrentUser,
    campaign: &CampaignRecord,
    channel: &ChannelRecord,
) -> Result<HttpResponse, AppError> {
    confirm(
        req,
        user,
        "campanas",
        format!(
            "¿Desactivar el canal {} «{}»?",
            channel.kind.label(),
            channel.name
        ),
        vec![
            "Los mensajes que lleguen por este canal serán rechazados.".into(),
            "Sus conversaciones siguen en la tabla y en el historial.".into(),
            "Puedes reactivarlo cuando quieras, con el mismo token.".into(),
        ],
        channels_href(campaign),
    )
}

/// Switches `channel` on (`active`) or off, and says so.
async fn switch_channel(
    state: &AppState,
    user: &CurrentUser,
    session: &Session,
    campaign: &CampaignRecord,
    channel: &ChannelRecord,
    active: bool,
) -> Result<HttpResponse, AppError> {
    let switched = state
        .store
        .set_channel_active(user.user_id, campaign.id, channel.id, active, Ts::now())
        .await?;
    let Ok(changed) = switched else {
        return Err(AppError::NotFound(NO_CHANNEL));
    };
    let message = match (changed, active) {
        (false, _) => "Sin cambios".to_owned(),
        (true, true) => format!("Canal «{}» reactivado", channel.name),
        (true, false) => format!("Canal «{}» desactivado", channel.name),
    };
    set_flash(session, &message);
    Ok(see_other(&channels_href(campaign)))
}

/// `POST /campanas/{id}/tokens`: a new integration token, shown this once.
pub async fn create_token(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<Fields>,
) -> Result<HttpResponse, AppError> {
    require_super(&user)?;
    let campaign = load(&state, &path).await?;
    let raw_name = form.get("nombre").to_owned();
    let error = match Name::parse(&raw_name) {
        Err(e) => e.message(),
        Ok(name) => {
            return match state
                .store
                .create_campaign_token(user.user_id, campaign.id, &name, Ts::now())
                .await?
            {
                Ok((_, token)) => {
                    let mut view =
                        channels_view(&req, &state, &user, campaign, "", &Fields::default())
                            .await?;
                    view.revealed = Some(Revealed {
                        title: format!("Token de integración «{}» creado", name.as_str()),
                        token,
                    });
                    Ok(no_store(render_with_status(&view, StatusCode::OK)?))
                }
                Err(_) => Err(AppError::NotFound(NO_CAMPAIGN)),
            };
        }
    };
    let mut view = channels_view(&req, &state, &user, campaign, "", &Fields::default()).await?;
    view.token_name_value = raw_name;
    view.token_error = Some(error);
    render_with_status(&view, StatusCode::UNPROCESSABLE_ENTITY)
}

/// `POST /campanas/{id}/tokens/{token}/revocar`
pub async fn revoke_token(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<(String, String)>,
    form: web::Form<Fields>,
) -> Result<HttpResponse, AppError> {
    require_super(&user)?;
    let (raw, raw_token) = path.into_inner();
    let campaign = load(&state, &raw).await?;
    let token_id = path_id(&raw_token, NO_TOKEN)?;
    let token = state
        .store
        .campaign_token(campaign.id, token_id)
        .await?
        .ok_or(AppError::NotFound(NO_TOKEN))?;
    let back = format!("/campanas/{}/canales", campaign.id);
    if !form.confirmed() {
        return confirm_with(
            &req,
            &user,
            "campanas",
            format!("¿Revocar el token de integración «{}»?", token.name),
            vec![
                "Las llamadas a la API con este token serán rechazadas desde este momento.".into(),
                "Un token revocado no se puede volver a activar; crea otro si lo necesitas.".into(),
            ],
            "Revocar token",
            back,
        );
    }
    match state
        .store
        .revoke_campaign_token(user.user_id, campaign.id, token_id, Ts::now())
        .await?
    {
        Ok(changed) => {
            set_flash(
                &session,
                &if changed {
                    format!("Token «{}» revocado", token.name)
                } else {
                    "El token ya estaba revocado".to_owned()
                },
            );
            Ok(see_other(&back))
        }
        Err(_) => Err(AppError::NotFound(NO_TOKEN)),
    }
}

fn member_view(m: crate::db::MemberRow) -> MemberView {
    MemberView {
        id: m.id,
        name: m.name,
        email: m.email,
        role_label: m.role.label(),
        is_admin: m.role == Role::Admin,
        active: m.active,
    }
}

/// Longest picker search kept, in characters.
const SEARCH_MAX_CHARS: usize = 100;

/// The picker's search as typed (trimmed, bounded), without control
/// characters: no name or address has them, and PostgreSQL text cannot
/// hold U+0000.
fn picker_search(fields: &Fields) -> String {
    fields
        .get("buscar")
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(SEARCH_MAX_CHARS)
        .collect()
}

/// The members tab: a page of the assigned users and, once searched, a
/// page of the picker's candidates, each at the position `query` names.
async fn members_view(
    req: &HttpRequest,
    state: &AppState,
    user: &CurrentUser,
    campaign: CampaignRecord,
    query: &Fields,
) -> Result<CampaignPage, AppError> {
    let search = picker_search(query);
    let searched = query.0.iter().any(|(k, _)| k == "buscar");
    let picker_after = match query.cursor_in(PICKER_PAGE) {
        Some(PageCursor::After(id)) => Some(id),
        _ => None,
    };
    let candidates = async {
        if searched {
            let page = state
                .store
                .member_candidates(campaign.id, &search, picker_after)
                .await?;
            Ok(Some(page))
        } else {
            Ok(None)
        }
    };
    let (members, candidates) = tokio::try_join!(
        state.store.members_page(campaign.id, query.cursor()),
        candidates
    )?;
    let base = format!("/campanas/{}/miembros", campaign.id);
    let mut kept = vec![("buscar", search.clone())];
    if let Some(id) = picker_after {
        kept.push((PICKER_PAGE.next, id.to_string()));
    }
    let pager = Pager::new(&base, &kept, &members, |m| m.id).labelled("Páginas de asignados");
    // The picker keeps its search (even an empty one: everyone) and the
    // assigned list where it is.
    let mut kept = vec![("buscar", search.clone())];
    kept.extend(
        [PAGE_KEYS.prev, PAGE_KEYS.next]
            .into_iter()
            .map(|field| (field, query.get(field).trim().to_owned()))
            .filter(|(_, value)| !value.is_empty()),
    );
    let picker_link = |after: Option<Uuid>| {
        let mut pairs = kept.clone();
        pairs.extend(after.map(|id| (PICKER_PAGE.next, id.to_string())));
        format!(
            "{base}?{}#resultados",
            serde_urlencoded::to_string(&pairs).unwrap_or_default()
        )
    };
    let mut view = page(req, state, user, "miembros", campaign).await?;
    view.members = members.rows.into_iter().map(member_view).collect();
    if let Some(candidates) = candidates {
        view.more_candidates = candidates
            .has_next
            .then(|| candidates.rows.last().map(|m| picker_link(Some(m.id))))
            .flatten();
        view.first_candidates = picker_after.map(|_| picker_link(None));
        view.candidates = candidates.rows.into_iter().map(member_view).collect();
    }
    view.pager = pager;
    view.search = search;
    view.searched = searched;
    Ok(view)
}

/// `GET /campanas/{id}/miembros?buscar=…`: assigned users and the picker.
pub async fn members(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<Fields>,
) -> Result<HttpResponse, AppError> {
    require_super(&user)?;
    let campaign = load(&state, &path).await?;
    let view = members_view(&req, &state, &user, campaign, &query).await?;
    render_with_status(&view, StatusCode::OK)
}

/// `POST /campanas/{id}/miembros` (`usuario=ID`): assigns a user.
pub async fn add_member(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<String>,
    form: web::Form<Fields>,
) -> Result<HttpResponse, AppError> {
    require_super(&user)?;
    let campaign = load(&state, &path).await?;
    let target = match field_id(form.get("usuario")) {
        Ok(Some(id)) => id,
        _ => return Err(AppError::NotFound(NO_USER)),
    };
    // Back to the same search, to assign the next person from the keyboard.
    let search = picker_search(&form);
    let back = if search.is_empty() {
        format!("/campanas/{}/miembros", campaign.id)
    } else {
        format!(
            "/campanas/{}/miembros?{}#resultados",
            campaign.id,
            serde_urlencoded::to_string([("buscar", &search)]).unwrap_or_default()
        )
    };
    match state
        .store
        .add_member(user.user_id, campaign.id, target, Ts::now())
        .await?
    {
        Ok(changed) => {
            let name = state
                .store
                .account(target)
                .await?
                .map(|(a, _)| a.name)
                .unwrap_or_default();
            set_flash(
                &session,
                &if changed {
                    format!("{name} asignado a «{}»", campaign.name)
                } else {
                    format!("{name} ya estaba asignado a «{}»", campaign.name)
                },
            );
            Ok(see_other(&back))
        }
        Err(Refusal::Invalid(message)) => {
            let query = Fields(vec![("buscar".to_owned(), search)]);
            let mut view = members_view(&req, &state, &user, campaign, &query).await?;
            view.member_error = Some(message);
            render_with_status(&view, StatusCode::UNPROCESSABLE_ENTITY)
        }
        Err(_) => Err(AppError::NotFound(NO_USER)),
    }
}

/// `POST /campanas/{id}/miembros/{usuario}/quitar`
pub async fn remove_member(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<(String, String)>,
    form: web::Form<Fields>,
) -> Result<HttpResponse, AppError> {
    require_super(&user)?;
    let (raw, raw_user) = path.into_inner();
    let campaign = load(&state, &raw).await?;
    let target = path_id(&raw_user, NO_USER)?;
    let (account, campaigns) = state
        .store
        .account(target)
        .await?
        .ok_or(AppError::NotFound(NO_USER))?;
    if !campaigns.contains(&campaign.id) {
        return Err(AppError::NotFound(NO_USER));
    }
    let back = format!("/campanas/{}/miembros", campaign.id);
    if !form.confirmed() {
        let consequence = if account.role == Role::Admin {
            "Dejará de ver sus conversaciones y categorías en su siguiente clic, también en una tabla abierta."
        } else {
            "Ya no se le podrán asignar ni reasignar conversaciones de esta campaña; las que ya tiene no cambian."
        };
        return confirm_with(
            &req,
            &user,
            "campanas",
            format!("¿Quitar a {} de «{}»?", account.name, campaign.name),
            vec![
                consequence.into(),
                "Puedes volver a asignarlo cuando quieras.".into(),
            ],
            "Quitar de la campaña",
            back,
        );
    }
    match state
        .store
        .remove_member(user.user_id, campaign.id, target, Ts::now())
        .await?
    {
        Ok(_) => {
            set_flash(
                &session,
                &format!("{} quitado de «{}»", account.name, campaign.name),
            );
            Ok(see_other(&back))
        }
        Err(_) => Err(AppError::NotFound(NO_USER)),
    }
}
