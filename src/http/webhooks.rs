//! A campaign's webhooks (Super Administrador only), a tab of the campaign
//! page: the list, adding one (its signing secret shown once), and each
//! webhook's page with its edit form, its last attempts, renewing the
//! secret and deleting it. Every URL passes the SSRF guard
//! ([`crate::services::webhooks::guard`]) before it is saved.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use uuid::Uuid;

use super::admin::{Fields, confirm_with, path_id, require_super, see_other, when};
use super::campaigns::{load as load_campaign, no_store};
use super::pages::{PageContext, render_with_status, set_flash};
use crate::app::state::AppState;
use crate::db::{CampaignRecord, CampaignSummary, Refusal, Ts, WebhookInput, WebhookRecord};
use crate::domain::webhook::{EVENT_TYPES, parse_event_types, stored_event_types, subscribes};
use crate::http::auth::CurrentUser;
use crate::http::error::AppError;
use crate::services::webhooks::guard;

const NO_WEBHOOK: &str = "No encontramos ese webhook.";

/// A secret shown once, right after it was made.
struct Revealed {
    title: String,
    token: String,
}

/// One event type's checkbox.
struct TypeOption {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

/// The add or edit form, as sent or as stored.
struct FormView {
    action: String,
    editing: bool,
    url: String,
    url_error: Option<String>,
    types: Vec<TypeOption>,
    types_error: Option<&'static str>,
    enabled: bool,
    /// A refusal that is not about one field.
    error: Option<String>,
}

impl FormView {
    fn new(action: String, url: &str, stored_types: &str, enabled: bool, editing: bool) -> Self {
        FormView {
            action,
            editing,
            url: url.to_owned(),
            url_error: None,
            types: EVENT_TYPES
                .iter()
                .map(|(value, label)| TypeOption {
                    value,
                    label,
                    selected: subscribes(stored_types, value),
                })
                .collect(),
            types_error: None,
            enabled,
            error: None,
        }
    }
}

/// A webhook in the list and on its page.
struct WebhookView {
    id: Uuid,
    url: String,
    enabled: bool,
    types_summary: String,
    /// Its state in a few words: failing, waiting, up to date.
    health: String,
    /// Why Relevo switched it off, when it did.
    notice: Option<String>,
}

/// One attempt of the webhook page's table.
struct AttemptView {
    at: String,
    at_iso: String,
    event_id: i64,
    event_type: String,
    ok: bool,
    status: String,
    latency_ms: i32,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "campaign_webhooks.html")]
struct WebhooksPage {
    ctx: PageContext,
    tab: &'static str,
    campaign: CampaignRecord,
    summary: Option<CampaignSummary>,
    /// Whether `RELEVO_WEBHOOK_ALLOW` lists anything, and what.
    allowed: bool,
    allow_list: String,
    webhooks: Vec<WebhookView>,
    /// The webhook whose page this is (none: the list).
    webhook: Option<WebhookView>,
    attempts: Vec<AttemptView>,
    form: FormView,
    revealed: Option<Revealed>,
}

fn list_href(campaign: &CampaignRecord) -> String {
    format!("/campanas/{}/webhooks", campaign.id)
}

fn webhook_href(campaign: &CampaignRecord, id: Uuid) -> String {
    format!("/campanas/{}/webhooks/{id}", campaign.id)
}

fn webhook_view(w: &WebhookRecord, tz: chrono_tz::Tz) -> WebhookView {
    let count = EVENT_TYPES
        .iter()
        .filter(|(t, _)| subscribes(&w.event_types, t))
        .count();
    let types_summary = if count == EVENT_TYPES.len() {
        "todos los eventos".to_owned()
    } else if count == 1 {
        let (_, label) = EVENT_TYPES
            .iter()
            .find(|(t, _)| subscribes(&w.event_types, t))
            .expect("one subscribed type");
        (*label).to_owned()
    } else {
        format!("{count} tipos de evento")
    };
    let notice = w.disabled_at.map(|at| {
        format!(
            "Relevo lo desactivó el {}: falló durante 24 horas seguidas{}. Corrige el receptor \
             y vuelve a activarlo: retoma desde el primer evento que no se entregó.",
            when(at, tz),
            w.last_error
                .as_deref()
                .map(|e| format!(" (último error: {e})"))
                .unwrap_or_default()
        )
    });
    let health = match (w.enabled, w.failing_since, w.next_attempt_at) {
        (false, _, _) if w.disabled_at.is_some() => "Desactivado por fallas".to_owned(),
        (false, _, _) => "Desactivado: no recibe entregas".to_owned(),
        (true, Some(since), retry) => format!(
            "Falla desde el {} ({} intentos){}",
            when(since, tz),
            w.failures,
            retry
                .map(|at| format!("; próximo intento el {}", when(at, tz)))
                .unwrap_or_default()
        ),
        (true, None, _) => format!("Al día hasta el evento {}", w.cursor),
    };
    WebhookView {
        id: w.id,
        url: w.url.clone(),
        enabled: w.enabled,
        types_summary,
        health,
        notice,
    }
}

async fn load_webhook(
    state: &AppState,
    campaign: &CampaignRecord,
    raw: &str,
) -> Result<WebhookRecord, AppError> {
    let id = path_id(raw, NO_WEBHOOK)?;
    state
        .store
        .webhook(campaign.id, id)
        .await?
        .ok_or(AppError::NotFound(NO_WEBHOOK))
}

/// The campaign and the webhook of a `/campanas/{id}/webhooks/{webhook}` path.
async fn load_pair(
    state: &AppState,
    path: web::Path<(String, String)>,
) -> Result<(CampaignRecord, WebhookRecord), AppError> {
    let (raw, raw_webhook) = path.into_inner();
    let campaign = load_campaign(state, &raw).await?;
    let webhook = load_webhook(state, &campaign, &raw_webhook).await?;
    Ok((campaign, webhook))
}

/// The list page's add form, empty: every event type, enabled.
fn blank_form(campaign: &CampaignRecord) -> FormView {
    let all_types = stored_event_types(&EVENT_TYPES.iter().map(|(t, _)| *t).collect::<Vec<_>>());
    FormView::new(list_href(campaign), "", &all_types, true, false)
}

/// A webhook's form, filled from what is stored.
fn stored_form(campaign: &CampaignRecord, webhook: &WebhookRecord) -> FormView {
    FormView::new(
        webhook_href(campaign, webhook.id),
        &webhook.url,
        &webhook.event_types,
        webhook.enabled,
        true,
    )
}

/// The list page, with an empty add form.
async fn list_view(
    req: &HttpRequest,
    state: &AppState,
    user: &CurrentUser,
    campaign: CampaignRecord,
) -> Result<WebhooksPage, AppError> {
    let (summary, webhooks) = tokio::try_join!(
        state.store.campaign_summary(campaign.id),
        state.store.webhooks_of(campaign.id)
    )?;
    Ok(WebhooksPage {
        ctx: PageContext::new(req, user, "campanas")?,
        tab: "webhooks",
        form: blank_form(&campaign),
        summary,
        allowed: !state.webhook_allow.is_empty(),
        allow_list: state.webhook_allow.to_string(),
        webhooks: webhooks
            .iter()
            .map(|w| webhook_view(w, state.timezone))
            .collect(),
        webhook: None,
        attempts: Vec::new(),
        revealed: None,
        campaign,
    })
}

/// A webhook's page, its form filled from what is stored.
async fn webhook_page(
    req: &HttpRequest,
    state: &AppState,
    user: &CurrentUser,
    campaign: CampaignRecord,
    webhook: WebhookRecord,
) -> Result<WebhooksPage, AppError> {
    let tz = state.timezone;
    let (summary, attempts) = tokio::try_join!(
        state.store.campaign_summary(campaign.id),
        state.store.webhook_attempts(webhook.id)
    )?;
    Ok(WebhooksPage {
        ctx: PageContext::new(req, user, "campanas")?,
        tab: "webhooks",
        form: stored_form(&campaign, &webhook),
        summary,
        allowed: !state.webhook_allow.is_empty(),
        allow_list: state.webhook_allow.to_string(),
        webhooks: Vec::new(),
        webhook: Some(webhook_view(&webhook, tz)),
        attempts: attempts
            .into_iter()
            .map(|a| AttemptView {
                at: when(a.at, tz),
                at_iso: a.at.0.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                event_id: a.event_id,
                event_type: a.event_type,
                ok: a.error.is_none(),
                status: match a.status_code {
                    Some(code) => code.to_string(),
                    None => "sin respuesta".to_owned(),
                },
                latency_ms: a.latency_ms,
                error: a.error,
            })
            .collect(),
        revealed: None,
        campaign,
    })
}

/// A form's URL and types checked; the refusals go on `form`.
async fn checked_input(
    state: &AppState,
    fields: &Fields,
    form: &mut FormView,
) -> Option<(String, String)> {
    let raw_url = fields.get("url").trim().to_owned();
    let types = parse_event_types(fields.all("tipos"));
    form.url = raw_url.clone();
    for option in &mut form.types {
        option.selected = fields.all("tipos").contains(&option.value);
    }
    form.enabled = fields.get("activo") == "si";
    let url = match guard::check_destination(&state.webhook_allow, &raw_url).await {
        Ok(url) => Some(url.to_string()),
        Err(refused) => {
            form.url_error = Some(refused.message());
            None
        }
    };
    if let Err(e) = &types {
        form.types_error = Some(e);
    }
    Some((url?, stored_event_types(&types.ok()?)))
}

/// `GET /campanas/{id}/webhooks`
pub async fn list(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    require_super(&user)?;
    let campaign = load_campaign(&state, &path).await?;
    render_with_status(
        &list_view(&req, &state, &user, campaign).await?,
        StatusCode::OK,
    )
}

/// `POST /campanas/{id}/webhooks`: a new webhook, its secret shown this once.
pub async fn create(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<Fields>,
) -> Result<HttpResponse, AppError> {
    require_super(&user)?;
    let campaign = load_campaign(&state, &path).await?;
    // Checked before the page is read: a webhook added is answered with
    // its own page, so the list is read only to show a refusal.
    let mut posted = blank_form(&campaign);
    let checked = checked_input(&state, &form, &mut posted).await;
    let refused = |posted: FormView| async {
        let mut view = list_view(&req, &state, &user, campaign.clone()).await?;
        view.form = posted;
        render_with_status(&view, StatusCode::UNPROCESSABLE_ENTITY)
    };
    let Some((url, types)) = checked else {
        return refused(posted).await;
    };
    match state
        .store
        .create_webhook(
            user.user_id,
            campaign.id,
            WebhookInput {
                url: &url,
                event_types: &types,
                enabled: true,
            },
            Ts::now(),
        )
        .await?
    {
        Ok((id, secret)) => {
            let webhook = load_webhook(&state, &campaign, &id.to_string()).await?;
            let mut view = webhook_page(&req, &state, &user, campaign, webhook).await?;
            view.revealed = Some(Revealed {
                title: format!("Webhook a {url} creado"),
                token: secret,
            });
            Ok(no_store(render_with_status(&view, StatusCode::OK)?))
        }
        Err(Refusal::Invalid(message)) => {
            posted.error = Some(message);
            refused(posted).await
        }
        Err(_) => Err(AppError::NotFound("No encontramos esa campaña.")),
    }
}

/// `GET /campanas/{id}/webhooks/{webhook}`: its form and last attempts.
pub async fn show(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    require_super(&user)?;
    let (campaign, webhook) = load_pair(&state, path).await?;
    render_with_status(
        &webhook_page(&req, &state, &user, campaign, webhook).await?,
        StatusCode::OK,
    )
}

/// `POST /campanas/{id}/webhooks/{webhook}`: URL, types and switch.
pub async fn update(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<(String, String)>,
    form: web::Form<Fields>,
) -> Result<HttpResponse, AppError> {
    require_super(&user)?;
    let (campaign, webhook) = load_pair(&state, path).await?;
    let href = webhook_href(&campaign, webhook.id);
    // Checked before the page is read: a saved change redirects, so the
    // page and its attempts are read only to show a refusal.
    let mut posted = stored_form(&campaign, &webhook);
    let Some((url, types)) = checked_input(&state, &form, &mut posted).await else {
        let mut view = webhook_page(&req, &state, &user, campaign, webhook).await?;
        view.form = posted;
        return render_with_status(&view, StatusCode::UNPROCESSABLE_ENTITY);
    };
    let enabled = form.get("activo") == "si";
    match state
        .store
        .update_webhook(
            user.user_id,
            campaign.id,
            webhook.id,
            WebhookInput {
                url: &url,
                event_types: &types,
                enabled,
            },
            Ts::now(),
        )
        .await?
    {
        Ok(changed) => {
            set_flash(
                &session,
                match (changed, enabled, webhook.enabled) {
                    (false, _, _) => "Sin cambios",
                    (true, true, false) => "Webhook activado: las entregas se reanudan ahora",
                    (true, false, true) => "Webhook desactivado",
                    _ => "Webhook guardado",
                },
            );
            Ok(see_other(&href))
        }
        Err(_) => Err(AppError::NotFound(NO_WEBHOOK)),
    }
}

/// `POST /campanas/{id}/webhooks/{webhook}/secreto`: a new secret, after
/// a confirmation, shown this once.
pub async fn rotate_secret(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    form: web::Form<Fields>,
) -> Result<HttpResponse, AppError> {
    require_super(&user)?;
    let (campaign, webhook) = load_pair(&state, path).await?;
    if !form.confirmed() {
        return confirm_with(
            &req,
            &user,
            "campanas",
            format!("¿Renovar el secreto del webhook a {}?", webhook.url),
            vec![
                "Las entregas siguientes se firmarán con el nuevo secreto: tu receptor dejará de \
                 aceptarlas hasta que lo configures con él."
                    .into(),
                "El secreto nuevo se muestra una sola vez.".into(),
            ],
            "Renovar secreto",
            webhook_href(&campaign, webhook.id),
        );
    }
    match state
        .store
        .rotate_webhook_secret(user.user_id, campaign.id, webhook.id, Ts::now())
        .await?
    {
        Ok(secret) => {
            let mut view = webhook_page(&req, &state, &user, campaign, webhook.clone()).await?;
            view.revealed = Some(Revealed {
                title: format!("Secreto del webhook a {} renovado", webhook.url),
                token: secret,
            });
            Ok(no_store(render_with_status(&view, StatusCode::OK)?))
        }
        Err(_) => Err(AppError::NotFound(NO_WEBHOOK)),
    }
}

/// `POST /campanas/{id}/webhooks/{webhook}/eliminar`, after a confirmation.
pub async fn delete(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<(String, String)>,
    form: web::Form<Fields>,
) -> Result<HttpResponse, AppError> {
    require_super(&user)?;
    let (campaign, webhook) = load_pair(&state, path).await?;
    if !form.confirmed() {
        return confirm_with(
            &req,
            &user,
            "campanas",
            format!("¿Eliminar el webhook a {}?", webhook.url),
            vec![
                "Deja de recibir entregas desde este momento, y su historial de intentos se borra."
                    .into(),
                "Para pausarlo sin perder su posición, mejor desactívalo.".into(),
            ],
            "Eliminar webhook",
            webhook_href(&campaign, webhook.id),
        );
    }
    match state
        .store
        .delete_webhook(user.user_id, campaign.id, webhook.id, Ts::now())
        .await?
    {
        Ok(()) => {
            set_flash(&session, &format!("Webhook a {} eliminado", webhook.url));
            Ok(see_other(&list_href(&campaign)))
        }
        Err(_) => Err(AppError::NotFound(NO_WEBHOOK)),
    }
}

/// A delivery's body: the event exactly as the feed answers it (one schema
/// for both, in the OpenAPI document).
pub fn delivery_body(event: &crate::db::EventRow) -> String {
    serde_json::to_string(&crate::http::api::events::Event::from(event))
        .expect("an event serialises")
}
