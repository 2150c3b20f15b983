//! Categorías: the closure categories and sub-categories of one campaign.
//!
//! Both administrator roles; an Administrador only for the campaigns they
//! are assigned to (any other campaign, and any object of one, answers 404).
//! Every POST re-validates on the server; a refused form re-renders the page
//! with the message next to its field and what was typed (422).

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use uuid::Uuid;

use super::admin::{Fields, Opt, confirm, field_id, path_id, see_other};
use super::pages::{PageContext, render_with_status, set_flash};
use crate::auth::CurrentUser;
use crate::db::{CampaignRecord, Direction, Refusal, Ts};
use crate::domain::admin::Name;
use crate::error::AppError;
use crate::startup::AppState;

const NO_CAMPAIGN: &str = "No encontramos esa campaña.";
const NO_CATEGORY: &str = "No encontramos esa categoría.";

/// A form of the page that was refused, with what was typed.
#[derive(Debug, Clone, Default)]
struct Failed {
    /// Which form: `nueva`, `cat-<id>`, `nuevasub-<id>` or `sub-<id>`.
    form: String,
    value: String,
    message: String,
}

struct SubView {
    id: Uuid,
    name: String,
    active: bool,
    first: bool,
    last: bool,
    rename_value: String,
    rename_error: Option<String>,
}

struct CategoryView {
    id: Uuid,
    name: String,
    active: bool,
    first: bool,
    last: bool,
    rename_value: String,
    rename_error: Option<String>,
    new_sub_value: String,
    new_sub_error: Option<String>,
    subcategories: Vec<SubView>,
}

#[derive(Template)]
#[template(path = "categorias.html")]
struct CategoriesPage {
    ctx: PageContext,
    campaigns: Vec<Opt>,
    campaign: Option<CampaignRecord>,
    categories: Vec<CategoryView>,
    new_value: String,
    new_error: Option<String>,
    name_max: usize,
}

/// The campaigns this user may manage categories of.
async fn campaigns_for(
    state: &AppState,
    user: &CurrentUser,
) -> Result<Vec<CampaignRecord>, AppError> {
    Ok(state
        .store
        .all_campaigns()
        .await?
        .into_iter()
        .filter(|c| user.scope.allows(c.id))
        .collect())
}

/// The campaign in the path, if this user may manage it.
async fn campaign_in_scope(
    state: &AppState,
    user: &CurrentUser,
    raw: &str,
) -> Result<CampaignRecord, AppError> {
    let id = path_id(raw, NO_CAMPAIGN)?;
    if !user.scope.allows(id) {
        return Err(AppError::NotFound(NO_CAMPAIGN));
    }
    state
        .store
        .campaign(id)
        .await?
        .ok_or(AppError::NotFound(NO_CAMPAIGN))
}

fn page_href(campaign: Uuid, anchor: &str) -> String {
    if anchor.is_empty() {
        format!("/categorias?campana={campaign}")
    } else {
        format!("/categorias?campana={campaign}#{anchor}")
    }
}

async fn render_page(
    req: &HttpRequest,
    state: &AppState,
    user: &CurrentUser,
    selected: Option<Uuid>,
    failed: Option<Failed>,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let campaigns = campaigns_for(state, user).await?;
    let campaign = match selected {
        Some(id) => campaigns.iter().find(|c| c.id == id).cloned(),
        None => campaigns
            .iter()
            .find(|c| c.active)
            .or(campaigns.first())
            .cloned(),
    };
    let tree = match &campaign {
        Some(c) => state.store.category_tree(c.id).await?,
        None => Vec::new(),
    };
    let failed = failed.unwrap_or_default();
    let error_for = |form: &str| (failed.form == form).then(|| failed.message.clone());
    let value_for = |form: &str, default: &str| {
        if failed.form == form {
            failed.value.clone()
        } else {
            default.to_owned()
        }
    };
    let count = tree.len();
    let categories = tree
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let key = format!("cat-{}", c.id);
            let new_key = format!("nuevasub-{}", c.id);
            let subs = c.subcategories.len();
            CategoryView {
                rename_value: value_for(&key, &c.name),
                rename_error: error_for(&key),
                new_sub_value: value_for(&new_key, ""),
                new_sub_error: error_for(&new_key),
                subcategories: c
                    .subcategories
                    .into_iter()
                    .enumerate()
                    .map(|(j, s)| {
                        let key = format!("sub-{}", s.id);
                        SubView {
                            rename_value: value_for(&key, &s.name),
                            rename_error: error_for(&key),
                            id: s.id,
                            name: s.name,
                            active: s.active,
                            first: j == 0,
                            last: j + 1 == subs,
                        }
                    })
                    .collect(),
                id: c.id,
                name: c.name,
                active: c.active,
                first: i == 0,
                last: i + 1 == count,
            }
        })
        .collect();
    let page = CategoriesPage {
        ctx: PageContext::new(req, user, "categorias")?,
        campaigns: campaigns
            .iter()
            .map(|c| {
                let label = if c.active {
                    c.name.clone()
                } else {
                    format!("{} (inactiva)", c.name)
                };
                Opt::new(
                    c.id.to_string(),
                    label,
                    campaign.as_ref().is_some_and(|s| s.id == c.id),
                )
            })
            .collect(),
        new_value: value_for("nueva", ""),
        new_error: error_for("nueva"),
        campaign,
        categories,
        name_max: crate::domain::admin::NAME_MAX_CHARS,
    };
    render_with_status(&page, status)
}

/// `GET /categorias?campana=ID`
pub async fn show(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    query: web::Query<Fields>,
) -> Result<HttpResponse, AppError> {
    let selected = match field_id(query.get("campana")) {
        Ok(None) => None,
        Ok(Some(id)) if user.scope.allows(id) => Some(id),
        _ => return Err(AppError::NotFound(NO_CAMPAIGN)),
    };
    if let Some(id) = selected
        && state.store.campaign(id).await?.is_none()
    {
        return Err(AppError::NotFound(NO_CAMPAIGN));
    }
    render_page(&req, &state, &user, selected, None, StatusCode::OK).await
}

fn duplicate_message(sub: bool) -> String {
    if sub {
        "Ya existe una subcategoría con ese nombre en esta categoría (sin distinguir mayúsculas ni acentos).".into()
    } else {
        "Ya existe una categoría con ese nombre en esta campaña (sin distinguir mayúsculas ni acentos).".into()
    }
}

/// What a refused name write answers: the page with the message next to
/// the form's field (422), or a 404 when the object is not there.
#[allow(clippy::too_many_arguments)]
async fn refused(
    req: &HttpRequest,
    state: &AppState,
    user: &CurrentUser,
    campaign: Uuid,
    form: String,
    value: String,
    refusal: Refusal,
    sub: bool,
) -> Result<HttpResponse, AppError> {
    let message = match refusal {
        Refusal::NotFound => return Err(AppError::NotFound(NO_CATEGORY)),
        Refusal::Duplicate => duplicate_message(sub),
        Refusal::Invalid(message) => message,
        Refusal::LastSuperAdmin => return Err(AppError::unexpected("not a category rule")),
    };
    let failed = Failed {
        form,
        value,
        message,
    };
    render_page(
        req,
        state,
        user,
        Some(campaign),
        Some(failed),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await
}

/// `POST /categorias/{campana}`: a new category.
pub async fn create(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<String>,
    form: web::Form<Fields>,
) -> Result<HttpResponse, AppError> {
    let campaign = campaign_in_scope(&state, &user, &path).await?;
    let raw = form.get("nombre").to_owned();
    let outcome = match Name::parse(&raw) {
        Err(e) => Err(Refusal::Invalid(e.message())),
        Ok(name) => {
            state
                .store
                .create_category(user.user_id, campaign.id, &name, Ts::now())
                .await?
        }
    };
    match outcome {
        Ok(id) => {
            set_flash(&session, &format!("Categoría «{}» creada", raw.trim()));
            Ok(see_other(&page_href(
                campaign.id,
                &format!("categoria-{id}"),
            )))
        }
        Err(refusal) => {
            refused(
                &req,
                &state,
                &user,
                campaign.id,
                "nueva".into(),
                raw,
                refusal,
                false,
            )
            .await
        }
    }
}

/// `POST /categorias/{campana}/{categoria}/subcategorias`: a new sub-category.
pub async fn create_sub(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<(String, String)>,
    form: web::Form<Fields>,
) -> Result<HttpResponse, AppError> {
    let (raw_campaign, raw_category) = path.into_inner();
    let campaign = campaign_in_scope(&state, &user, &raw_campaign).await?;
    let category = path_id(&raw_category, NO_CATEGORY)?;
    if !exists(&state, campaign.id, Item::Category, category).await? {
        return Err(AppError::NotFound(NO_CATEGORY));
    }
    let raw = form.get("nombre").to_owned();
    let outcome = match Name::parse(&raw) {
        Err(e) => Err(Refusal::Invalid(e.message())),
        Ok(name) => {
            state
                .store
                .create_subcategory(user.user_id, campaign.id, category, &name, Ts::now())
                .await?
        }
    };
    match outcome {
        Ok(_) => {
            set_flash(&session, &format!("Subcategoría «{}» creada", raw.trim()));
            Ok(see_other(&page_href(
                campaign.id,
                &format!("categoria-{category}"),
            )))
        }
        Err(refusal) => {
            refused(
                &req,
                &state,
                &user,
                campaign.id,
                format!("nuevasub-{category}"),
                raw,
                refusal,
                true,
            )
            .await
        }
    }
}

/// Which kind of item a route acts on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Item {
    Category,
    Subcategory,
}

fn item_of(kind: &str) -> Result<Item, AppError> {
    match kind {
        "categoria" => Ok(Item::Category),
        "subcategoria" => Ok(Item::Subcategory),
        _ => Err(AppError::NotFound(NO_CATEGORY)),
    }
}

/// `POST /categorias/{campana}/{categoria|subcategoria}/{id}`: rename.
pub async fn rename(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<(String, String, String)>,
    form: web::Form<Fields>,
) -> Result<HttpResponse, AppError> {
    let (raw_campaign, kind, raw_id) = path.into_inner();
    let campaign = campaign_in_scope(&state, &user, &raw_campaign).await?;
    let item = item_of(&kind)?;
    let id = path_id(&raw_id, NO_CATEGORY)?;
    let raw = form.get("nombre").to_owned();
    let now = Ts::now();
    let outcome = match Name::parse(&raw) {
        Err(e) => {
            if !exists(&state, campaign.id, item, id).await? {
                return Err(AppError::NotFound(NO_CATEGORY));
            }
            Err(Refusal::Invalid(e.message()))
        }
        Ok(name) => match item {
            Item::Category => {
                state
                    .store
                    .rename_category(user.user_id, campaign.id, id, &name, now)
                    .await?
            }
            Item::Subcategory => {
                state
                    .store
                    .rename_subcategory(user.user_id, campaign.id, id, &name, now)
                    .await?
            }
        },
    };
    let (form_key, sub) = match item {
        Item::Category => (format!("cat-{id}"), false),
        Item::Subcategory => (format!("sub-{id}"), true),
    };
    match outcome {
        Ok(changed) => {
            let what = if sub { "Subcategoría" } else { "Categoría" };
            let message = if changed {
                format!(
                    "{what} renombrada a «{}»",
                    raw.split_whitespace().collect::<Vec<_>>().join(" ")
                )
            } else {
                "Sin cambios: el nombre es el mismo".to_owned()
            };
            set_flash(&session, &message);
            Ok(see_other(&page_href(campaign.id, &anchor(item, id))))
        }
        Err(refusal) => {
            refused(
                &req,
                &state,
                &user,
                campaign.id,
                form_key,
                raw,
                refusal,
                sub,
            )
            .await
        }
    }
}

fn anchor(item: Item, id: Uuid) -> String {
    match item {
        Item::Category => format!("categoria-{id}"),
        Item::Subcategory => format!("subcategoria-{id}"),
    }
}

async fn exists(state: &AppState, campaign: Uuid, item: Item, id: Uuid) -> Result<bool, AppError> {
    let tree = state.store.category_tree(campaign).await?;
    Ok(match item {
        Item::Category => tree.iter().any(|c| c.id == id),
        Item::Subcategory => tree
            .iter()
            .any(|c| c.subcategories.iter().any(|s| s.id == id)),
    })
}

/// `POST /categorias/{campana}/{categoria|subcategoria}/{id}/{subir|bajar|desactivar|reactivar}`
pub async fn act(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<(String, String, String, String)>,
    form: web::Form<Fields>,
) -> Result<HttpResponse, AppError> {
    let (raw_campaign, kind, raw_id, action) = path.into_inner();
    let campaign = campaign_in_scope(&state, &user, &raw_campaign).await?;
    let item = item_of(&kind)?;
    let id = path_id(&raw_id, NO_CATEGORY)?;
    let now = Ts::now();
    let store = &state.store;
    let back = page_href(campaign.id, &anchor(item, id));
    let outcome = match (item, action.as_str()) {
        (_, "desactivar") if !form.confirmed() => {
            let tree = store.category_tree(campaign.id).await?;
            let name = match item {
                Item::Category => tree.iter().find(|c| c.id == id).map(|c| c.name.clone()),
                Item::Subcategory => tree
                    .iter()
                    .flat_map(|c| c.subcategories.iter())
                    .find(|s| s.id == id)
                    .map(|s| s.name.clone()),
            }
            .ok_or(AppError::NotFound(NO_CATEGORY))?;
            let (title, first) = match item {
                Item::Category => (
                    format!("¿Desactivar la categoría «{name}»?"),
                    format!(
                        "Dejará de ofrecerse al cancelar conversaciones de «{}», desde este momento, junto con sus subcategorías.",
                        campaign.name
                    ),
                ),
                Item::Subcategory => (
                    format!("¿Desactivar la subcategoría «{name}»?"),
                    "Dejará de ofrecerse al cancelar conversaciones, desde este momento."
                        .to_owned(),
                ),
            };
            return confirm(
                &req,
                &user,
                "categorias",
                title,
                vec![
                    first,
                    "Las conversaciones que ya la usan conservan su nombre en el historial.".into(),
                    "Puedes reactivarla cuando quieras.".into(),
                ],
                back,
            );
        }
        (Item::Category, "desactivar" | "reactivar") => {
            store
                .set_category_active(user.user_id, campaign.id, id, action == "reactivar", now)
                .await?
        }
        (Item::Subcategory, "desactivar" | "reactivar") => {
            store
                .set_subcategory_active(user.user_id, campaign.id, id, action == "reactivar", now)
                .await?
        }
        (_, "subir" | "bajar") => {
            let direction = if action == "subir" {
                Direction::Up
            } else {
                Direction::Down
            };
            match item {
                Item::Category => {
                    store
                        .move_category(user.user_id, campaign.id, id, direction, now)
                        .await?
                }
                Item::Subcategory => {
                    store
                        .move_subcategory(user.user_id, campaign.id, id, direction, now)
                        .await?
                }
            }
        }
        _ => return Err(AppError::NotFound("No encontramos esa página.")),
    };
    let what = if item == Item::Category {
        "Categoría"
    } else {
        "Subcategoría"
    };
    let message = match (outcome, action.as_str()) {
        (Err(Refusal::NotFound), _) => return Err(AppError::NotFound(NO_CATEGORY)),
        (Err(other), _) => return Err(AppError::Conflict(format!("{other:?}"))),
        (Ok(false), "subir" | "bajar") => "Ya está en ese extremo de la lista".to_owned(),
        (Ok(false), _) => "Sin cambios".to_owned(),
        (Ok(true), "subir") => format!("{what} movida hacia arriba"),
        (Ok(true), "bajar") => format!("{what} movida hacia abajo"),
        (Ok(true), "desactivar") => format!("{what} desactivada"),
        (Ok(true), _) => format!("{what} reactivada"),
    };
    set_flash(&session, &message);
    Ok(see_other(&back))
}
