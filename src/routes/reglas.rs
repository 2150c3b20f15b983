//! Cancelación automática: the rules of the viewer's campaigns with a dry
//! run of each (how many conversations it would cancel now), creating a
//! rule (with a preview before saving), and turning rules off and on.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::Utc;
use serde::Deserialize;
use uuid::Uuid;

use super::acciones::Choice;
use super::pages::{PageContext, render_with_status, set_flash};
use crate::auth::CurrentUser;
use crate::autocancel::{
    Measure, NAME_MAX_CHARS, RULE_COMMENT_MAX_CHARS, parse_nudge, parse_window, preview,
    window_label,
};
use crate::db::{AutoCancelRule, NewAutoCancelRule, Ts};
use crate::domain::{Invalid, Status};
use crate::error::AppError;
use crate::startup::AppState;

/// The rule form as posted.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct RuleInput {
    campana: String,
    nombre: String,
    estatus: String,
    medida: String,
    minutos: String,
    categoria: String,
    subcategoria: String,
    comentario: String,
    aviso: String,
    aviso_minutos: String,
    vista_previa: String,
}

#[derive(Default)]
struct RuleErrors {
    campana: Option<String>,
    nombre: Option<String>,
    estatus: Option<String>,
    medida: Option<String>,
    minutos: Option<String>,
    categoria: Option<String>,
    subcategoria: Option<String>,
    comentario: Option<String>,
    aviso: Option<String>,
    aviso_minutos: Option<String>,
}

impl RuleErrors {
    fn any(&self) -> bool {
        [
            &self.campana,
            &self.nombre,
            &self.estatus,
            &self.medida,
            &self.minutos,
            &self.categoria,
            &self.subcategoria,
            &self.comentario,
            &self.aviso,
            &self.aviso_minutos,
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
    description: String,
    closure: String,
    category_inactive: bool,
    nudge: Option<String>,
    active: bool,
    would_cancel: i64,
    would_nudge: i64,
}

struct CategoryGroup {
    label: String,
    choices: Vec<Choice>,
}

#[derive(Template)]
#[template(path = "reglas.html")]
struct RulesPage {
    ctx: PageContext,
    rules: Vec<RuleView>,
    campaigns: Vec<Choice>,
    statuses: Vec<Choice>,
    measures: Vec<Choice>,
    categories: Vec<CategoryGroup>,
    subcategories: Vec<Choice>,
    input: RuleInput,
    errors: RuleErrors,
    preview: Option<String>,
    max_window: i64,
}

fn require_console(user: &CurrentUser) -> Result<(), AppError> {
    if user.role.may_use_console() {
        Ok(())
    } else {
        Err(AppError::Forbidden)
    }
}

fn describe(rule: &AutoCancelRule) -> String {
    match rule.measure {
        Measure::NoCustomerMessage => format!(
            "Cancela las conversaciones en {} sin mensaje del cliente durante {}",
            rule.status.label(),
            window_label(rule.window_minutes)
        ),
        Measure::InStatus => format!(
            "Cancela las conversaciones que llevan más de {} en {}",
            window_label(rule.window_minutes),
            rule.status.label()
        ),
    }
}

async fn render_page(
    req: &HttpRequest,
    state: &AppState,
    user: &CurrentUser,
    input: RuleInput,
    errors: RuleErrors,
    preview_text: Option<String>,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let store = &state.store;
    let now = Utc::now();
    let mut rules = Vec::new();
    for rule in store.auto_cancel_rules(&user.scope).await? {
        let (would_cancel, would_nudge) = if rule.active {
            preview(store, &rule, now).await?
        } else {
            (0, 0)
        };
        rules.push(RuleView {
            id: rule.id.to_string(),
            name: rule.name.clone(),
            campaign: rule.campaign_name.clone(),
            description: describe(&rule),
            closure: match &rule.subcategory_name {
                Some(sub) => format!("{} › {sub}", rule.category_name),
                None => rule.category_name.clone(),
            },
            category_inactive: !rule.category_active,
            nudge: rule
                .nudge_text
                .as_ref()
                .zip(rule.nudge_lead_minutes)
                .map(|(text, lead)| format!("{} antes: «{text}»", window_label(lead))),
            active: rule.active,
            would_cancel,
            would_nudge,
        });
    }
    let campaign_options = store.campaign_options(&user.scope).await?;
    let mut categories = Vec::new();
    let mut subcategories = Vec::new();
    for campaign in &campaign_options {
        let options = store.closure_options(campaign.id).await?;
        if let Some(chosen) = options.iter().find(|c| c.id.to_string() == input.categoria) {
            subcategories = chosen
                .subcategories
                .iter()
                .map(|(id, name)| Choice {
                    value: id.to_string(),
                    label: name.clone(),
                    selected: id.to_string() == input.subcategoria,
                })
                .collect();
        }
        if !options.is_empty() {
            categories.push(CategoryGroup {
                label: campaign.name.clone(),
                choices: options
                    .iter()
                    .map(|c| Choice {
                        value: c.id.to_string(),
                        label: c.name.clone(),
                        selected: c.id.to_string() == input.categoria,
                    })
                    .collect(),
            });
        }
    }
    let campaigns = campaign_options
        .into_iter()
        .map(|c| Choice {
            selected: c.id.to_string() == input.campana,
            value: c.id.to_string(),
            label: c.name,
        })
        .collect();
    let statuses = Status::OPEN
        .iter()
        .map(|s| Choice {
            value: s.as_str().to_owned(),
            label: s.label().to_owned(),
            selected: s.as_str() == input.estatus,
        })
        .collect();
    let measures = Measure::ALL
        .iter()
        .map(|m| Choice {
            value: m.as_str().to_owned(),
            label: match m {
                Measure::NoCustomerMessage => "Sin mensaje del cliente durante".to_owned(),
                Measure::InStatus => "En el estatus durante más de".to_owned(),
            },
            selected: m.as_str() == input.medida
                || (input.medida.is_empty() && *m == Measure::NoCustomerMessage),
        })
        .collect();
    render_with_status(
        &RulesPage {
            ctx: PageContext::new(req, user, "reportes")?,
            rules,
            campaigns,
            statuses,
            measures,
            categories,
            subcategories,
            input,
            errors,
            preview: preview_text,
            max_window: crate::autocancel::MAX_WINDOW_MINUTES,
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
        RuleInput::default(),
        RuleErrors::default(),
        None,
        StatusCode::OK,
    )
    .await
}

/// Validates the form into a rule to create.
async fn validate(
    state: &AppState,
    user: &CurrentUser,
    input: &RuleInput,
) -> Result<Result<NewAutoCancelRule, RuleErrors>, AppError> {
    let store = &state.store;
    let mut errors = RuleErrors::default();
    let campaign_id = Uuid::parse_str(input.campana.trim())
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
            errors.campana = Some("Selecciona una campaña".into());
            None
        }
    };
    let name = input.nombre.trim().to_owned();
    if name.is_empty() {
        errors.nombre = Some("Escribe un nombre para la regla".into());
    } else if name.chars().count() > NAME_MAX_CHARS {
        errors.nombre = Some(format!(
            "El nombre admite hasta {NAME_MAX_CHARS} caracteres"
        ));
    }
    let status = Status::parse(&input.estatus).filter(|s| s.is_open());
    if status.is_none() {
        errors.estatus = Some("Selecciona un estatus abierto".into());
    }
    let measure = Measure::parse(&input.medida);
    if measure.is_none() {
        errors.medida = Some("Elige desde cuándo se mide".into());
    }
    let window = match parse_window(&input.minutos) {
        Ok(w) => Some(w),
        Err(e) => {
            errors.minutos = Some(e);
            None
        }
    };
    let category = match Uuid::parse_str(input.categoria.trim()) {
        Ok(id) => store.category_ref(id).await?,
        Err(_) => None,
    };
    let category_id = match category {
        None => {
            errors.categoria = Some(Invalid::CategoryMissing.message());
            None
        }
        Some(c) if Some(c.campaign_id) != campaign_id => {
            if campaign_id.is_some() {
                errors.categoria = Some("Esa categoría no pertenece a la campaña elegida".into());
            } else {
                errors.categoria = Some(Invalid::CategoryMissing.message());
            }
            None
        }
        Some(c) if !c.active => {
            errors.categoria = Some(Invalid::CategoryInactive.message());
            None
        }
        Some(c) => Some(c.id),
    };
    let subcategory_id = if input.subcategoria.trim().is_empty() {
        None
    } else {
        let sub = match Uuid::parse_str(input.subcategoria.trim()) {
            Ok(id) => store.subcategory_ref(id).await?,
            Err(_) => None,
        };
        match sub {
            Some(s) if Some(s.category_id) == category_id && s.active => Some(s.id),
            Some(s) if Some(s.category_id) == category_id => {
                errors.subcategoria = Some(Invalid::SubcategoryInactive.message());
                None
            }
            _ => {
                if category_id.is_some() {
                    errors.subcategoria = Some(Invalid::SubcategoryNotOfCategory.message());
                }
                None
            }
        }
    };
    let comment = input.comentario.trim().to_owned();
    if comment.chars().count() > RULE_COMMENT_MAX_CHARS {
        errors.comentario = Some(format!(
            "El comentario admite hasta {RULE_COMMENT_MAX_CHARS} caracteres (tiene {})",
            comment.chars().count()
        ));
    }
    let nudge = match parse_nudge(&input.aviso, &input.aviso_minutos, window) {
        Ok(n) => n,
        Err((field, message)) => {
            if field == "aviso" {
                errors.aviso = Some(message);
            } else {
                errors.aviso_minutos = Some(message);
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
            return render_page(
                &req,
                &state,
                &user,
                input,
                errors,
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    if !input.vista_previa.is_empty() {
        // The same query the background pass runs, on a rule not saved yet.
        let draft = AutoCancelRule {
            id: Uuid::nil(),
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
        };
        let (cancels, nudges) = preview(&state.store, &draft, Utc::now()).await?;
        let text = if draft.nudge_text.is_some() {
            format!(
                "Vista previa: si la guardas, ahora avisaría a {nudges} y cancelaría {cancels} {}.",
                if cancels == 1 {
                    "conversación"
                } else {
                    "conversaciones"
                }
            )
        } else {
            format!(
                "Vista previa: si la guardas, ahora cancelaría {cancels} {}.",
                if cancels == 1 {
                    "conversación"
                } else {
                    "conversaciones"
                }
            )
        };
        return render_page(
            &req,
            &state,
            &user,
            input,
            RuleErrors::default(),
            Some(text),
            StatusCode::OK,
        )
        .await;
    }
    state.store.create_auto_cancel_rule(&rule).await?;
    tracing::info!(campaign = %rule.campaign_id, "automatic cancellation rule created");
    set_flash(&session, &format!("Regla «{}» creada", rule.name));
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/cancelacion-automatica"))
        .finish())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ToggleInput {
    activa: String,
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
    const NOT_FOUND: &str = "No encontramos esa regla";
    let id = Uuid::parse_str(&path).map_err(|_| AppError::NotFound(NOT_FOUND))?;
    let rule = state
        .store
        .auto_cancel_rule(&user.scope, id)
        .await?
        .ok_or(AppError::NotFound(NOT_FOUND))?;
    let active = form.activa == "1";
    state
        .store
        .set_auto_cancel_rule_active(rule.id, active, Ts::now())
        .await?;
    set_flash(
        &session,
        &format!(
            "Regla «{}» {}",
            rule.name,
            if active { "reactivada" } else { "desactivada" }
        ),
    );
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/cancelacion-automatica"))
        .finish())
}
