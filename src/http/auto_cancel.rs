//! Cancelación automática: the rules of the viewer's campaigns with a dry
//! run of each (how many conversations it would cancel now), creating and
//! editing a rule (with a preview before saving), turning rules off and on,
//! and deleting a rule that has not acted yet. Each change writes one audit
//! row with its actor (see `Store::create_auto_cancel_rule`).

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::Utc;
use serde::Deserialize;
use uuid::Uuid;

use super::admin::{Fields, confirm_with};
use super::choices::{Choice, ChoiceGroup, SubcategoryList, campaign_closures, category_groups};
use super::pages::{PageContext, render_with_status, set_flash};
use crate::app::state::AppState;
use crate::db::{AutoCancelRule, CampaignOption, NewAutoCancelRule, Refusal, Store, Ts};
use crate::domain::{Invalid, Status};
use crate::http::auth::CurrentUser;
use crate::http::error::AppError;
use crate::services::auto_cancel::{
    Measure, NAME_MAX_CHARS, RULE_COMMENT_MAX_CHARS, describe, parse_nudge, parse_window, preview,
};

/// The rule form as posted.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct RuleInput {
    #[serde(rename = "campana")]
    campaign: String,
    #[serde(rename = "nombre")]
    name: String,
    #[serde(rename = "estatus")]
    status: String,
    #[serde(rename = "medida")]
    measure: String,
    #[serde(rename = "minutos")]
    window_minutes: String,
    #[serde(rename = "categoria")]
    category: String,
    #[serde(rename = "subcategoria")]
    subcategory: String,
    #[serde(rename = "comentario")]
    comment: String,
    #[serde(rename = "aviso")]
    nudge: String,
    #[serde(rename = "aviso_minutos")]
    nudge_lead_minutes: String,
    /// Set by the "Vista previa" button: preview, do not save.
    #[serde(rename = "vista_previa")]
    preview: String,
}

#[derive(Default)]
struct RuleErrors {
    campaign: Option<String>,
    name: Option<String>,
    status: Option<String>,
    measure: Option<String>,
    window_minutes: Option<String>,
    category: Option<String>,
    subcategory: Option<String>,
    comment: Option<String>,
    nudge: Option<String>,
    nudge_lead_minutes: Option<String>,
}

impl RuleErrors {
    fn any(&self) -> bool {
        [
            &self.campaign,
            &self.name,
            &self.status,
            &self.measure,
            &self.window_minutes,
            &self.category,
            &self.subcategory,
            &self.comment,
            &self.nudge,
            &self.nudge_lead_minutes,
        ]
        .iter()
        .any(|e| e.is_some())
    }
}

/// A rule as listed.
struct RuleView {
    id: String,
    name: String,
    campaign: String,
    campaign_inactive: bool,
    description: String,
    closure: String,
    category_inactive: bool,
    nudge: Option<String>,
    active: bool,
    /// It has acted: history refers to it, so it cannot be deleted.
    used: bool,
    would_cancel: i64,
    would_nudge: i64,
}

/// The rule the form edits (none: the form creates one).
struct Editing {
    name: String,
    campaign: String,
}

#[derive(Template)]
#[template(path = "auto_cancel.html")]
struct RulesPage {
    ctx: PageContext,
    rules: Vec<RuleView>,
    campaigns: Vec<Choice>,
    statuses: Vec<Choice>,
    measures: Vec<Choice>,
    categories: Vec<ChoiceGroup>,
    subcategories: SubcategoryList,
    input: RuleInput,
    errors: RuleErrors,
    preview: Option<String>,
    max_window: i64,
    editing: Option<Editing>,
    form_action: String,
}

fn require_console(user: &CurrentUser) -> Result<(), AppError> {
    if user.role.may_use_console() {
        Ok(())
    } else {
        Err(AppError::Forbidden)
    }
}

/// What the form shows: the fields as typed, their errors, a preview.
struct FormState {
    input: RuleInput,
    errors: RuleErrors,
    preview: Option<String>,
    status: StatusCode,
}

impl FormState {
    fn blank(input: RuleInput) -> FormState {
        FormState {
            input,
            errors: RuleErrors::default(),
            preview: None,
            status: StatusCode::OK,
        }
    }

    /// Refused: nothing was saved.
    fn invalid(input: RuleInput, errors: RuleErrors) -> FormState {
        FormState {
            errors,
            status: StatusCode::UNPROCESSABLE_ENTITY,
            ..FormState::blank(input)
        }
    }

    fn previewed(input: RuleInput, text: String) -> FormState {
        FormState {
            preview: Some(text),
            ..FormState::blank(input)
        }
    }
}

/// The viewer's rules as the table lists them, each with its dry run.
async fn rule_views(store: &Store, user: &CurrentUser) -> Result<Vec<RuleView>, AppError> {
    let now = Utc::now();
    let mut rules = Vec::new();
    for rule in store.auto_cancel_rules(&user.scope).await? {
        // The background pass skips an inactive campaign's rules.
        let (would_cancel, would_nudge) = if rule.active && rule.campaign_active {
            preview(store, &rule, now).await?
        } else {
            (0, 0)
        };
        rules.push(RuleView {
            id: rule.id.to_string(),
            name: rule.name.clone(),
            campaign: rule.campaign_name.clone(),
            campaign_inactive: !rule.campaign_active,
            description: describe(rule.status, rule.measure, rule.window_minutes),
            closure: rule.closure(),
            category_inactive: !rule.category_active,
            nudge: rule.nudge(),
            active: rule.active,
            used: rule.used,
            would_cancel,
            would_nudge,
        });
    }
    Ok(rules)
}

/// The Categoría groups and the Subcategoría list over `campaigns`.
async fn closure_choices(
    store: &Store,
    campaigns: &[CampaignOption],
    input: &RuleInput,
) -> Result<(Vec<ChoiceGroup>, SubcategoryList), AppError> {
    let closures = campaign_closures(store, campaigns.to_vec()).await?;
    Ok((
        category_groups(&closures, &input.category),
        SubcategoryList::across(&closures, &input.category, &input.subcategory),
    ))
}

/// The open statuses a rule may watch, `input`'s chosen.
fn status_choices(input: &RuleInput) -> Vec<Choice> {
    Status::OPEN
        .iter()
        .map(|s| Choice {
            value: s.as_str().to_owned(),
            label: s.label().to_owned(),
            selected: s.as_str() == input.status,
        })
        .collect()
}

/// What a rule measures, `input`'s chosen (silence of the customer when
/// nothing is).
fn measure_choices(input: &RuleInput) -> Vec<Choice> {
    Measure::ALL
        .iter()
        .map(|m| Choice {
            value: m.as_str().to_owned(),
            label: match m {
                Measure::NoCustomerMessage => "Sin mensaje del cliente durante".to_owned(),
                Measure::InStatus => "En el estatus durante más de".to_owned(),
            },
            selected: m.as_str() == input.measure
                || (input.measure.is_empty() && *m == Measure::NoCustomerMessage),
        })
        .collect()
}

/// The page's rules table and form: the form creates a rule, or edits
/// `editing` (then the table is left out and the campaign is fixed).
async fn render_page(
    req: &HttpRequest,
    state: &AppState,
    user: &CurrentUser,
    form: FormState,
    editing: Option<&AutoCancelRule>,
) -> Result<HttpResponse, AppError> {
    let FormState {
        input,
        errors,
        preview: preview_text,
        status,
    } = form;
    let store = &state.store;
    let rules = match editing {
        None => rule_views(store, user).await?,
        Some(_) => Vec::new(),
    };
    let campaign_options: Vec<_> = store
        .campaign_options(&user.scope)
        .await?
        .into_iter()
        .filter(|c| editing.is_none_or(|rule| rule.campaign_id == c.id))
        .collect();
    let (categories, subcategories) = closure_choices(store, &campaign_options, &input).await?;
    let campaigns = campaign_options
        .into_iter()
        .map(|c| Choice {
            selected: c.id.to_string() == input.campaign,
            value: c.id.to_string(),
            label: c.name,
        })
        .collect();
    render_with_status(
        &RulesPage {
            ctx: PageContext::new(req, user, "cancelacion-automatica")?,
            rules,
            campaigns,
            statuses: status_choices(&input),
            measures: measure_choices(&input),
            categories,
            subcategories,
            input,
            errors,
            preview: preview_text,
            max_window: crate::services::auto_cancel::MAX_WINDOW_MINUTES,
            form_action: editing.map_or_else(
                || "/cancelacion-automatica".to_owned(),
                |rule| format!("/cancelacion-automatica/{}", rule.id),
            ),
            editing: editing.map(|rule| Editing {
                name: rule.name.clone(),
                campaign: rule.campaign_name.clone(),
            }),
        },
        status,
    )
}

/// `GET /cancelacion-automatica`
pub async fn list(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    require_console(&user)?;
    render_page(
        &req,
        &state,
        &user,
        FormState::blank(RuleInput::default()),
        None,
    )
    .await
}

/// What is wrong with a rule's name, if anything.
fn name_error(name: &str) -> Option<String> {
    if name.is_empty() {
        Some("Escribe un nombre para la regla".into())
    } else if name.chars().count() > NAME_MAX_CHARS {
        Some(format!(
            "El nombre admite hasta {NAME_MAX_CHARS} caracteres"
        ))
    } else if name.chars().any(char::is_control) {
        Some("El nombre no admite caracteres de control".into())
    } else {
        None
    }
}

/// What is wrong with the comment the rule closes with, if anything.
fn comment_error(comment: &str) -> Option<String> {
    if comment.chars().count() > RULE_COMMENT_MAX_CHARS {
        Some(format!(
            "El comentario admite hasta {RULE_COMMENT_MAX_CHARS} caracteres (tiene {})",
            comment.chars().count()
        ))
    } else if comment.contains('\0') {
        Some("El comentario no admite el carácter nulo (U+0000)".into())
    } else {
        None
    }
}

/// The category (of the chosen campaign, active) and optional subcategory
/// (of that category, active) the rule cancels with, recording what is
/// wrong in `errors`.
async fn check_closure_category(
    store: &Store,
    input: &RuleInput,
    campaign_id: Option<Uuid>,
    errors: &mut RuleErrors,
) -> Result<(Option<Uuid>, Option<Uuid>), AppError> {
    let category = match Uuid::parse_str(input.category.trim()) {
        Ok(id) => store.category_ref(id).await?,
        Err(_) => None,
    };
    let category_id = match category {
        None => {
            errors.category = Some(Invalid::CategoryMissing.message());
            None
        }
        Some(c) if Some(c.campaign_id) != campaign_id => {
            if campaign_id.is_some() {
                errors.category = Some("Esa categoría no pertenece a la campaña elegida".into());
            } else {
                errors.category = Some(Invalid::CategoryMissing.message());
            }
            None
        }
        Some(c) if !c.active => {
            errors.category = Some(Invalid::CategoryInactive.message());
            None
        }
        Some(c) => Some(c.id),
    };
    let subcategory_id = if input.subcategory.trim().is_empty() {
        None
    } else {
        let sub = match Uuid::parse_str(input.subcategory.trim()) {
            Ok(id) => store.subcategory_ref(id).await?,
            Err(_) => None,
        };
        match sub {
            Some(s) if Some(s.category_id) == category_id && s.active => Some(s.id),
            Some(s) if Some(s.category_id) == category_id => {
                errors.subcategory = Some(Invalid::SubcategoryInactive.message());
                None
            }
            _ => {
                if category_id.is_some() {
                    errors.subcategory = Some(Invalid::SubcategoryNotOfCategory.message());
                }
                None
            }
        }
    };
    Ok((category_id, subcategory_id))
}

/// Validates the form into a rule to create (or the new settings of one).
async fn validate(
    state: &AppState,
    user: &CurrentUser,
    input: &RuleInput,
) -> Result<Result<NewAutoCancelRule, RuleErrors>, AppError> {
    let store = &state.store;
    let mut errors = RuleErrors::default();
    let campaign_id = Uuid::parse_str(input.campaign.trim())
        .ok()
        .filter(|id| user.scope.allows(*id));
    let campaign_id = match campaign_id {
        Some(id)
            if store
                .campaign_options(&user.scope)
                .await?
                .iter()
                .any(|c| c.id == id) =>
        {
            Some(id)
        }
        _ => {
            errors.campaign = Some("Selecciona una campaña".into());
            None
        }
    };
    let name = input.name.trim().to_owned();
    errors.name = name_error(&name);
    let status = Status::parse(&input.status).filter(|s| s.is_open());
    if status.is_none() {
        errors.status = Some("Selecciona un estatus abierto".into());
    }
    let measure = Measure::parse(&input.measure);
    if measure.is_none() {
        errors.measure = Some("Elige desde cuándo se mide".into());
    }
    let window = match parse_window(&input.window_minutes) {
        Ok(w) => Some(w),
        Err(e) => {
            errors.window_minutes = Some(e);
            None
        }
    };
    let (category_id, subcategory_id) =
        check_closure_category(store, input, campaign_id, &mut errors).await?;
    let comment = input.comment.trim().to_owned();
    errors.comment = comment_error(&comment);
    let nudge = match parse_nudge(&input.nudge, &input.nudge_lead_minutes, window) {
        Ok(n) => n,
        Err((field, message)) => {
            if field == "aviso" {
                errors.nudge = Some(message);
            } else {
                errors.nudge_lead_minutes = Some(message);
            }
            None
        }
    };
    if errors.any() {
        return Ok(Err(errors));
    }
    let (Some(campaign_id), Some(status), Some(measure), Some(window), Some(category_id)) =
        (campaign_id, status, measure, window, category_id)
    else {
        return Ok(Err(errors));
    };
    Ok(Ok(NewAutoCancelRule {
        campaign_id,
        name,
        status,
        measure,
        window_minutes: window,
        category_id,
        subcategory_id,
        comment: (!comment.is_empty()).then_some(comment),
        nudge_text: nudge.as_ref().map(|(t, _)| t.clone()),
        nudge_lead_minutes: nudge.map(|(_, m)| m),
        created_by: user.user_id,
        at: Ts::now(),
    }))
}

/// The preview of `rule` (not saved yet, or not with these settings):
/// the same query the background pass runs. `id` is the rule's when
/// editing, so the nudges it already sent count as sent.
async fn preview_text(
    state: &AppState,
    rule: &NewAutoCancelRule,
    id: Option<Uuid>,
) -> Result<String, AppError> {
    let draft = AutoCancelRule {
        id: id.unwrap_or(Uuid::nil()),
        campaign_id: rule.campaign_id,
        campaign_name: String::new(),
        name: rule.name.clone(),
        status: rule.status,
        measure: rule.measure,
        window_minutes: rule.window_minutes,
        category_id: rule.category_id,
        category_name: String::new(),
        category_active: true,
        subcategory_id: rule.subcategory_id,
        subcategory_name: None,
        comment: rule.comment.clone(),
        nudge_text: rule.nudge_text.clone(),
        nudge_lead_minutes: rule.nudge_lead_minutes,
        active: false,
        created_at: rule.at,
        campaign_active: true,
        used: false,
    };
    let (cancels, nudges) = preview(&state.store, &draft, Utc::now()).await?;
    let conversations = if cancels == 1 {
        "conversación"
    } else {
        "conversaciones"
    };
    Ok(if draft.nudge_text.is_some() {
        format!(
            "Vista previa: si la guardas, ahora avisaría a {nudges} y cancelaría {cancels} {conversations}."
        )
    } else {
        format!("Vista previa: si la guardas, ahora cancelaría {cancels} {conversations}.")
    })
}

fn back_to_rules() -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/cancelacion-automatica"))
        .finish()
}

const NOT_FOUND: &str = "No encontramos esa regla";

/// Rule `raw` of the viewer's campaigns.
async fn load_rule(
    state: &AppState,
    user: &CurrentUser,
    raw: &str,
) -> Result<AutoCancelRule, AppError> {
    let id = Uuid::parse_str(raw).map_err(|_| AppError::NotFound(NOT_FOUND))?;
    state
        .store
        .auto_cancel_rule(&user.scope, id)
        .await?
        .ok_or(AppError::NotFound(NOT_FOUND))
}

/// A refused rule write as the console answers it.
fn refused(refusal: Refusal) -> AppError {
    match refusal {
        Refusal::Invalid(message) => AppError::Conflict(message),
        _ => AppError::NotFound(NOT_FOUND),
    }
}

/// `POST /cancelacion-automatica`: "Vista previa" counts without saving;
/// "Guardar" creates the rule (active).
pub async fn create(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    session: Session,
    form: web::Form<RuleInput>,
) -> Result<HttpResponse, AppError> {
    require_console(&user)?;
    let input = form.into_inner();
    let rule = match validate(&state, &user, &input).await? {
        Ok(rule) => rule,
        Err(errors) => {
            return render_page(&req, &state, &user, FormState::invalid(input, errors), None).await;
        }
    };
    if !input.preview.is_empty() {
        let text = preview_text(&state, &rule, None).await?;
        return render_page(&req, &state, &user, FormState::previewed(input, text), None).await;
    }
    state
        .store
        .create_auto_cancel_rule(&rule)
        .await?
        .map_err(refused)?;
    tracing::info!(campaign = %rule.campaign_id, "automatic cancellation rule created");
    set_flash(&session, &format!("Regla «{}» creada", rule.name));
    Ok(back_to_rules())
}

/// The edit form's fields as the rule now is.
fn input_of(rule: &AutoCancelRule) -> RuleInput {
    RuleInput {
        campaign: rule.campaign_id.to_string(),
        name: rule.name.clone(),
        status: rule.status.as_str().to_owned(),
        measure: rule.measure.as_str().to_owned(),
        window_minutes: rule.window_minutes.to_string(),
        category: rule.category_id.to_string(),
        subcategory: rule
            .subcategory_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        comment: rule.comment.clone().unwrap_or_default(),
        nudge: rule.nudge_text.clone().unwrap_or_default(),
        nudge_lead_minutes: rule
            .nudge_lead_minutes
            .map(|m| m.to_string())
            .unwrap_or_default(),
        preview: String::new(),
    }
}

/// `GET /cancelacion-automatica/{id}`: the rule's edit form.
pub async fn edit_form(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    require_console(&user)?;
    let rule = load_rule(&state, &user, &path).await?;
    render_page(
        &req,
        &state,
        &user,
        FormState::blank(input_of(&rule)),
        Some(&rule),
    )
    .await
}

/// `POST /cancelacion-automatica/{id}`: "Vista previa" of the new settings,
/// or "Guardar" them. The campaign of a rule never changes.
pub async fn update(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<String>,
    form: web::Form<RuleInput>,
) -> Result<HttpResponse, AppError> {
    require_console(&user)?;
    let rule = load_rule(&state, &user, &path).await?;
    let mut input = form.into_inner();
    input.campaign = rule.campaign_id.to_string();
    let changed = match validate(&state, &user, &input).await? {
        Ok(changed) => changed,
        Err(errors) => {
            return render_page(
                &req,
                &state,
                &user,
                FormState::invalid(input, errors),
                Some(&rule),
            )
            .await;
        }
    };
    if !input.preview.is_empty() {
        let text = preview_text(&state, &changed, Some(rule.id)).await?;
        return render_page(
            &req,
            &state,
            &user,
            FormState::previewed(input, text),
            Some(&rule),
        )
        .await;
    }
    let saved = state
        .store
        .update_auto_cancel_rule(user.user_id, rule.id, &changed)
        .await?
        .map_err(refused)?;
    set_flash(
        &session,
        &if saved {
            format!("Regla «{}» guardada", changed.name)
        } else {
            "Sin cambios".to_owned()
        },
    );
    Ok(back_to_rules())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ToggleInput {
    #[serde(rename = "activa")]
    active: String,
}

/// `POST /cancelacion-automatica/{id}/estado`: Desactivar / Reactivar.
pub async fn toggle(
    user: CurrentUser,
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<String>,
    form: web::Form<ToggleInput>,
) -> Result<HttpResponse, AppError> {
    require_console(&user)?;
    let rule = load_rule(&state, &user, &path).await?;
    let active = form.active == "1";
    let changed = state
        .store
        .set_auto_cancel_rule_active(user.user_id, rule.campaign_id, rule.id, active, Ts::now())
        .await?
        .map_err(refused)?;
    set_flash(
        &session,
        &format!(
            "Regla «{}» {}",
            rule.name,
            match (changed, active) {
                (true, true) => "reactivada",
                (true, false) => "desactivada",
                (false, true) => "ya estaba activa",
                (false, false) => "ya estaba desactivada",
            }
        ),
    );
    Ok(back_to_rules())
}

/// `POST /cancelacion-automatica/{id}/eliminar`: after a confirmation,
/// deletes a rule that has never acted. One that has (history refers to
/// it) answers 409 with what to do instead.
pub async fn delete(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<String>,
    form: web::Form<Fields>,
) -> Result<HttpResponse, AppError> {
    require_console(&user)?;
    let rule = load_rule(&state, &user, &path).await?;
    if rule.used {
        return Err(AppError::Conflict(crate::db::RULE_IN_USE.to_owned()));
    }
    if !form.confirmed() {
        return confirm_with(
            &req,
            &user,
            "cancelacion-automatica",
            format!("¿Eliminar la regla «{}»?", rule.name),
            vec![
                format!(
                    "{} ({}).",
                    describe(rule.status, rule.measure, rule.window_minutes),
                    rule.campaign_name
                ),
                "Todavía no ha avisado ni cancelado ninguna conversación; el cambio queda en la auditoría.".into(),
                "Para dejar de aplicarla sin eliminarla, desactívala.".into(),
            ],
            "Eliminar",
            "/cancelacion-automatica".to_owned(),
        );
    }
    state
        .store
        .delete_auto_cancel_rule(user.user_id, rule.campaign_id, rule.id, Ts::now())
        .await?
        .map_err(refused)?;
    set_flash(&session, &format!("Regla «{}» eliminada", rule.name));
    Ok(back_to_rules())
}
