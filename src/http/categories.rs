//! Categorías: the closure categories and sub-categories of one campaign.
//!
//! Both administrator roles; an Administrador only for the campaigns they
//! are assigned to (any other campaign, and any object of one, answers 404).
//! Every POST re-validates on the server; a refused form re-renders the page
//! with the message next to its field and what was typed (422).
//!
//! The categories page by keyset on their position (dense, from 0), each
//! with all its sub-categories (bounded: see `MAX_SUBCATEGORIES` in the
//! store). After a change the page that shows the changed item is
//! answered: positions being dense, the pages Siguiente walks start at
//! multiples of the page size, so that page is computed from the position.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use uuid::Uuid;

use super::admin::{Fields, Opt, PAGE_KEYS, Pager, confirm, field_id, path_id, see_other};
use super::pages::{PageContext, render_with_status, set_flash};
use crate::app::state::AppState;
use crate::db::{
    ADMIN_PAGE_SIZE, AdminPage, CampaignRecord, CategoryAdmin, Direction, PageCursor, Refusal, Ts,
};
use crate::domain::admin::Name;
use crate::http::auth::CurrentUser;
use crate::http::error::AppError;

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
#[template(path = "categories.html")]
struct CategoriesPage {
    ctx: PageContext,
    campaigns: Vec<Opt>,
    campaign: Option<CampaignRecord>,
    categories: Vec<CategoryView>,
    /// The place (from 1) of the page's first category in the whole list.
    first_place: i32,
    pager: Pager,
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

/// The Categorías page of `campaign` that shows the category at `position`
/// (the first page without one), scrolled to `anchor`.
fn page_href(campaign: Uuid, position: Option<i32>, anchor: &str) -> String {
    let mut href = format!("/categorias?campana={campaign}");
    let start = position.map_or(0, |p| p - p.rem_euclid(ADMIN_PAGE_SIZE as i32));
    if start > 0 {
        href.push_str(&format!("&{}={}", PAGE_KEYS.next, start - 1));
    }
    if !anchor.is_empty() {
        href.push('#');
        href.push_str(anchor);
    }
    href
}

impl Failed {
    /// The message of form `form`, when it is the one refused.
    fn error_for(&self, form: &str) -> Option<String> {
        (self.form == form).then(|| self.message.clone())
    }

    /// What form `form` shows: what was typed when it is the one refused,
    /// otherwise `default`.
    fn value_for(&self, form: &str, default: &str) -> String {
        if self.form == form {
            self.value.clone()
        } else {
            default.to_owned()
        }
    }
}

/// One page of `campaign`'s categories at `cursor` (an empty one without a
/// campaign), and its pager.
async fn load_categories(
    state: &AppState,
    campaign: Option<&CampaignRecord>,
    cursor: Option<PageCursor<i32>>,
) -> Result<(AdminPage<CategoryAdmin>, Pager), AppError> {
    let Some(campaign) = campaign else {
        let empty = AdminPage {
            rows: Vec::new(),
            has_prev: false,
            has_next: false,
        };
        return Ok((empty, Pager::default()));
    };
    let page = state.store.categories_page(campaign.id, cursor).await?;
    let pager = Pager::in_fields(
        PAGE_KEYS,
        "/categorias",
        &[("campana", campaign.id.to_string())],
        &page,
        |cat| cat.position,
    )
    .labelled("Páginas de categorías");
    Ok((page, pager))
}

/// The page's categories as the template shows them, with a refused
/// form's message and value in its place.
fn category_views(page: AdminPage<CategoryAdmin>, failed: &Failed) -> Vec<CategoryView> {
    let count = page.rows.len();
    let (has_prev, has_next) = (page.has_prev, page.has_next);
    page.rows
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let key = format!("cat-{}", c.id);
            let new_key = format!("nuevasub-{}", c.id);
            let subs = c.subcategories.len();
            CategoryView {
                rename_value: failed.value_for(&key, &c.name),
                rename_error: failed.error_for(&key),
                new_sub_value: failed.value_for(&new_key, ""),
                new_sub_error: failed.error_for(&new_key),
                subcategories: c
                    .subcategories
                    .into_iter()
                    .enumerate()
                    .map(|(j, s)| {
                        let key = format!("sub-{}", s.id);
                        SubView {
                            rename_value: failed.value_for(&key, &s.name),
                            rename_error: failed.error_for(&key),
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
                // The ends of the whole list, not of the page: the first of
                // a later page moves up into the page before.
                first: i == 0 && !has_prev,
                last: i + 1 == count && !has_next,
            }
        })
        .collect()
}

/// The campaign picker's options, `selected` chosen.
fn campaign_choices(campaigns: &[CampaignRecord], selected: Option<&CampaignRecord>) -> Vec<Opt> {
    campaigns
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
                selected.is_some_and(|s| s.id == c.id),
            )
        })
        .collect()
}

/// The page of `selected` (or the first campaign) at `cursor`, with a
/// refused form's message and value when there is one.
async fn render_page(
    req: &HttpRequest,
    state: &AppState,
    user: &CurrentUser,
    selected: Option<Uuid>,
    cursor: Option<PageCursor<i32>>,
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
    let (categories, pager) = load_categories(state, campaign.as_ref(), cursor).await?;
    let failed = failed.unwrap_or_default();
    let first_place = categories.rows.first().map_or(1, |c| c.position + 1);
    let page = CategoriesPage {
        ctx: PageContext::new(req, user, "categorias")?,
        campaigns: campaign_choices(&campaigns, campaign.as_ref()),
        new_value: failed.value_for("nueva", ""),
        new_error: failed.error_for("nueva"),
        categories: category_views(categories, &failed),
        campaign,
        first_place,
        pager,
        name_max: crate::domain::admin::NAME_MAX_CHARS,
    };
    render_with_status(&page, status)
}

/// `GET /categorias?campana=ID&despues=POSICIÓN|antes=POSICIÓN`
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
    let cursor = query.cursor_in(PAGE_KEYS);
    render_page(&req, &state, &user, selected, cursor, None, StatusCode::OK).await
}

fn duplicate_message(sub: bool) -> String {
    if sub {
        "Ya existe una subcategoría con ese nombre en esta categoría (sin distinguir mayúsculas ni acentos).".into()
    } else {
        "Ya existe una categoría con ese nombre en esta campaña (sin distinguir mayúsculas ni acentos).".into()
    }
}

/// What a refused name write answers: the page that shows the form (the
/// one of the category at `position`) with the message next to its field
/// (422), or a 404 when the object is not there.
#[allow(clippy::too_many_arguments)]
async fn refused(
    req: &HttpRequest,
    state: &AppState,
    user: &CurrentUser,
    campaign: Uuid,
    position: Option<i32>,
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
    let cursor = page_cursor(position);
    render_page(
        req,
        state,
        user,
        Some(campaign),
        cursor,
        Some(failed),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await
}

/// The cursor of the page [`page_href`] names for `position`.
fn page_cursor(position: Option<i32>) -> Option<PageCursor<i32>> {
    let start = position.map_or(0, |p| p - p.rem_euclid(ADMIN_PAGE_SIZE as i32));
    (start > 0).then(|| PageCursor::After(start - 1))
}

/// `POST /categorias/{campana}`: a new category (last in the list).
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
            let position = place(&state, campaign.id, Item::Category, id)
                .await?
                .map(|(_, p)| p);
            Ok(see_other(&page_href(
                campaign.id,
                position,
                &anchor(Item::Category, id),
            )))
        }
        Err(refusal) => {
            refused(
                &req,
                &state,
                &user,
                campaign.id,
                None,
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
    let (_, position) = place(&state, campaign.id, Item::Category, category)
        .await?
        .ok_or(AppError::NotFound(NO_CATEGORY))?;
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
                Some(position),
                &anchor(Item::Category, category),
            )))
        }
        Err(refusal) => {
            refused(
                &req,
                &state,
                &user,
                campaign.id,
                Some(position),
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

/// The name of a category or sub-category of `campaign`, and the position
/// of its category (which says on which page it shows); `None` when it is
/// not one of the campaign's.
async fn place(
    state: &AppState,
    campaign: Uuid,
    item: Item,
    id: Uuid,
) -> Result<Option<(String, i32)>, AppError> {
    Ok(match item {
        Item::Category => state.store.category_place(campaign, id).await?,
        Item::Subcategory => state.store.subcategory_place(campaign, id).await?,
    })
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
    let (_, position) = place(&state, campaign.id, item, id)
        .await?
        .ok_or(AppError::NotFound(NO_CATEGORY))?;
    let raw = form.get("nombre").to_owned();
    let now = Ts::now();
    let outcome = match Name::parse(&raw) {
        Err(e) => Err(Refusal::Invalid(e.message())),
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
            Ok(see_other(&page_href(
                campaign.id,
                Some(position),
                &anchor(item, id),
            )))
        }
        Err(refusal) => {
            refused(
                &req,
                &state,
                &user,
                campaign.id,
                Some(position),
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

/// The question asked before deactivating `item` `id` named `name` (its
/// category at `position`).
fn confirm_deactivation(
    req: &HttpRequest,
    user: &CurrentUser,
    campaign: &CampaignRecord,
    (item, id): (Item, Uuid),
    name: &str,
    position: i32,
) -> Result<HttpResponse, AppError> {
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
            "Dejará de ofrecerse al cancelar conversaciones, desde este momento.".to_owned(),
        ),
    };
    confirm(
        req,
        user,
        "categorias",
        title,
        vec![
            first,
            "Las conversaciones que ya la usan conservan su nombre en el historial.".into(),
            "Puedes reactivarla cuando quieras.".into(),
        ],
        page_href(campaign.id, Some(position), &anchor(item, id)),
    )
}

/// Applies `action` (`subir`, `bajar`, `desactivar`, `reactivar`) to
/// `item` `id` of `campaign`; any other action is a page that does not exist.
async fn apply_action(
    state: &AppState,
    user: &CurrentUser,
    campaign: Uuid,
    (item, id): (Item, Uuid),
    action: &str,
) -> Result<Result<bool, Refusal>, AppError> {
    let now = Ts::now();
    let store = &state.store;
    let actor = user.user_id;
    let direction = match action {
        "subir" => Direction::Up,
        "bajar" => Direction::Down,
        "desactivar" | "reactivar" => {
            let active = action == "reactivar";
            return Ok(match item {
                Item::Category => {
                    store
                        .set_category_active(actor, campaign, id, active, now)
                        .await?
                }
                Item::Subcategory => {
                    store
                        .set_subcategory_active(actor, campaign, id, active, now)
                        .await?
                }
            });
        }
        _ => return Err(AppError::NotFound("No encontramos esa página.")),
    };
    Ok(match item {
        Item::Category => {
            store
                .move_category(actor, campaign, id, direction, now)
                .await?
        }
        Item::Subcategory => {
            store
                .move_subcategory(actor, campaign, id, direction, now)
                .await?
        }
    })
}

/// What the flash says after `action` on `item` answered `outcome`.
fn action_message(
    item: Item,
    action: &str,
    outcome: Result<bool, Refusal>,
) -> Result<String, AppError> {
    let what = if item == Item::Category {
        "Categoría"
    } else {
        "Subcategoría"
    };
    Ok(match (outcome, action) {
        (Err(Refusal::NotFound), _) => return Err(AppError::NotFound(NO_CATEGORY)),
        (Err(other), _) => return Err(AppError::Conflict(format!("{other:?}"))),
        (Ok(false), "subir" | "bajar") => "Ya está en ese extremo de la lista".to_owned(),
        (Ok(false), _) => "Sin cambios".to_owned(),
        (Ok(true), "subir") => format!("{what} movida hacia arriba"),
        (Ok(true), "bajar") => format!("{what} movida hacia abajo"),
        (Ok(true), "desactivar") => format!("{what} desactivada"),
        (Ok(true), _) => format!("{what} reactivada"),
    })
}

/// `POST /categorias/{campana}/{categoria|subcategoria}/{id}/{subir|bajar|desactivar|reactivar}`
///
/// Moves go through the campaign's whole list: the first category of a
/// page moves up into the page before, and the answer is the page that
/// shows it where it now is.
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
    let (name, position) = place(&state, campaign.id, item, id)
        .await?
        .ok_or(AppError::NotFound(NO_CATEGORY))?;
    if action == "desactivar" && !form.confirmed() {
        return confirm_deactivation(&req, &user, &campaign, (item, id), &name, position);
    }
    let outcome = apply_action(&state, &user, campaign.id, (item, id), &action).await?;
    let message = action_message(item, &action, outcome)?;
    // A moved category may now show on the page before or after.
    let position = match item {
        Item::Category => place(&state, campaign.id, item, id)
            .await?
            .map_or(position, |(_, p)| p),
        Item::Subcategory => position,
    };
    set_flash(&session, &message);
    Ok(see_other(&page_href(
        campaign.id,
        Some(position),
        &anchor(item, id),
    )))
}
