//! Bulk Cancelar/Reasignar on Mensajes: the form for a selection (checked
//! rows, or "all N that match this filter" with N shown before confirming),
//! posting it as a job, and the job's page with its progress and per-item
//! results.
//!
//! The form checks only what is common to every item (an action, a
//! category or an agent that exists in the viewer's scope, the comment's
//! length); everything that depends on each conversation is decided by the
//! domain transition for that conversation, exactly as in the modal.

use std::collections::{HashMap, HashSet};

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use uuid::Uuid;

use super::choices::{
    CampaignClosures, Choice, ChoiceGroup, SubcategoryList, agent_label, campaign_closures,
    category_groups,
};
use super::conversations::{RawQuery, resolve_filter};
use super::pages::{PageContext, is_fragment_request, local_datetime, render, render_with_status};
use crate::app::state::AppState;
use crate::db::{BulkAction, BulkJob, BulkStatus, ItemOutcome, NewBulkJob, Store, Ts};
use crate::domain::text::{COMMENT_MAX_CHARS, Comment};
use crate::domain::{Invalid, Role};
use crate::http::auth::CurrentUser;
use crate::http::error::AppError;
use crate::services::bulk::{INLINE_MAX, MAX_ITEMS, summary};

/// The selection and the choices, as posted or as the GET query.
#[derive(Debug, Default, Clone)]
struct BulkInput {
    /// The folios named, each once, in the order first named; empty when
    /// more than [`MAX_ITEMS`] were named (see `named`).
    folios: Vec<String>,
    /// How many folios were named, repeats included.
    named: usize,
    all: bool,
    filters: RawQuery,
    expected: Option<i64>,
    action: String,
    category: String,
    subcategory: String,
    agent: String,
    comment: String,
}

impl BulkInput {
    /// Reads the pairs in time linear in their number: a body of up to
    /// 256 KiB names some 30,000 folios, and a selection over the limit is
    /// only counted, never de-duplicated nor looked up.
    fn parse(pairs: &[(String, String)]) -> BulkInput {
        let mut input = BulkInput::default();
        let mut named = Vec::new();
        for (key, value) in pairs {
            let value = value.trim().to_owned();
            match key.as_str() {
                // Kept as typed, to report it; U+0000 (which PostgreSQL
                // text cannot hold) shows as U+FFFD and names no folio.
                "folio" if !value.is_empty() => named.push(value.replace('\0', "\u{fffd}")),
                "todas" => input.all = value == "1",
                "esperadas" => input.expected = value.parse().ok(),
                "accion" => input.action = value,
                "categoria" => input.category = value,
                "subcategoria" => input.subcategory = value,
                "agente" => input.agent = value,
                "comentario" => input.comment = value,
                "estatus" => input.filters.status = value,
                "campana" => input.filters.campaign = value,
                "agente_filtro" => input.filters.agent = value,
                "canal" => input.filters.channel = value,
                "desde" => input.filters.from_day = value,
                "hasta" => input.filters.to_day = value,
                "q" => input.filters.q = value,
                _ => {}
            }
        }
        input.named = named.len();
        if input.named <= MAX_ITEMS {
            let mut seen = HashSet::with_capacity(named.len());
            input.folios = named
                .into_iter()
                .filter(|folio| seen.insert(folio.clone()))
                .collect();
        }
        input
    }

    /// Whether more folios were named than one job may act on.
    fn too_many(&self) -> bool {
        self.named > MAX_ITEMS
    }
}

/// The refusal of a selection naming more than [`MAX_ITEMS`] folios.
fn too_many_message(named: usize) -> String {
    format!(
        "Una acción en lote admite hasta {MAX_ITEMS} conversaciones y la selección tiene {named}. \
         Selecciona menos e inténtalo de nuevo."
    )
}

#[derive(Default)]
struct BulkErrors {
    selection: Option<String>,
    action: Option<String>,
    category: Option<String>,
    subcategory: Option<String>,
    agent: Option<String>,
    comment: Option<String>,
}

impl BulkErrors {
    fn any(&self) -> bool {
        self.selection.is_some()
            || self.action.is_some()
            || self.category.is_some()
            || self.subcategory.is_some()
            || self.agent.is_some()
            || self.comment.is_some()
    }
}

#[derive(Template)]
#[template(path = "bulk.html")]
struct BulkPage {
    ctx: PageContext,
    /// How many conversations the action covers (as the viewer can count them).
    count: i64,
    all: bool,
    folios: Vec<String>,
    /// Hidden inputs carrying the filters of an "all that match" selection.
    filter_fields: Vec<(&'static str, String)>,
    back_href: String,
    reassigning: bool,
    categories: Vec<ChoiceGroup>,
    subcategories: SubcategoryList,
    agents: Vec<ChoiceGroup>,
    comment: String,
    comment_max: usize,
    max_items: usize,
    errors: BulkErrors,
    notice: Option<String>,
}

impl BulkPage {
    /// [`BulkPage::count`] as shown (the form carries the number itself).
    fn shown_count(&self) -> crate::http::pages::Count {
        crate::http::pages::Count(self.count)
    }
}

/// The pairs of the query string or a url-encoded body.
fn pairs_of(raw: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes(raw).unwrap_or_default()
}

fn filter_fields(raw: &RawQuery) -> Vec<(&'static str, String)> {
    [
        ("estatus", &raw.status),
        ("campana", &raw.campaign),
        ("agente_filtro", &raw.agent),
        ("canal", &raw.channel),
        ("desde", &raw.from_day),
        ("hasta", &raw.to_day),
        ("q", &raw.q),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| (k, v.clone()))
    .collect()
}

fn back_href(input: &BulkInput) -> String {
    let query = input.filters.filter_query();
    if query.is_empty() {
        "/mensajes".into()
    } else {
        format!("/mensajes?{query}")
    }
}

/// The GET query of "all that match" names the agent filter `agente`, like
/// Mensajes; inside the form it travels as `agente_filtro`.
fn input_from_query(req: &HttpRequest) -> BulkInput {
    let mut input = BulkInput::parse(&pairs_of(req.query_string().as_bytes()));
    if input.all {
        input.filters = RawQuery::from_request(req);
        input.agent.clear();
    }
    input
}

/// The categories, sub-categories and agents of the campaigns in scope,
/// grouped by campaign.
async fn choices(
    state: &AppState,
    user: &CurrentUser,
    input: &BulkInput,
) -> Result<(Vec<ChoiceGroup>, SubcategoryList, Vec<ChoiceGroup>), AppError> {
    let store = &state.store;
    let campaigns = store.campaign_options(&user.scope).await?;
    let mut closures = Vec::with_capacity(campaigns.len());
    let mut agents = Vec::new();
    for campaign in campaigns {
        let (categories, people) = tokio::try_join!(
            store.closure_options(campaign.id),
            store.reassign_options(campaign.id, None)
        )?;
        if !people.is_empty() {
            agents.push(ChoiceGroup {
                label: campaign.name.clone(),
                choices: people
                    .iter()
                    .map(|a| Choice {
                        value: a.id.to_string(),
                        label: agent_label(a),
                        selected: a.id.to_string() == input.agent,
                    })
                    .collect(),
            });
        }
        closures.push(CampaignClosures {
            campaign,
            categories,
        });
    }
    Ok((
        category_groups(&closures, &input.category),
        SubcategoryList::across(&closures, &input.category, &input.subcategory),
        agents,
    ))
}

#[allow(clippy::too_many_arguments)]
async fn render_form(
    req: &HttpRequest,
    state: &AppState,
    user: &CurrentUser,
    input: &BulkInput,
    count: i64,
    errors: BulkErrors,
    notice: Option<String>,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    // A refused selection shows only its error: nothing to choose from.
    let (categories, subcategories, agents) = if errors.selection.is_some() {
        Default::default()
    } else {
        choices(state, user, input).await?
    };
    render_with_status(
        &BulkPage {
            ctx: PageContext::new(req, user, "mensajes")?,
            count,
            all: input.all,
            folios: input.folios.clone(),
            filter_fields: filter_fields(&input.filters),
            back_href: back_href(input),
            reassigning: input.action == "reasignar",
            categories,
            subcategories,
            agents,
            comment: input.comment.clone(),
            comment_max: COMMENT_MAX_CHARS,
            max_items: MAX_ITEMS,
            errors,
            notice,
        },
        status,
    )
}

fn require_console(user: &CurrentUser) -> Result<(), AppError> {
    if user.role.may_use_console() {
        Ok(())
    } else {
        Err(AppError::Forbidden)
    }
}

const EMPTY_SELECTION: &str = "Selecciona al menos una conversación";

/// `GET /mensajes/lote?folio=…&folio=…` or `?todas=1&<filters>`.
pub async fn show(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    require_console(&user)?;
    let input = input_from_query(&req);
    let mut errors = BulkErrors::default();
    let mut notice = None;
    if input.too_many() {
        errors.selection = Some(too_many_message(input.named));
        let count = input.named as i64;
        let status = StatusCode::UNPROCESSABLE_ENTITY;
        return render_form(&req, &state, &user, &input, count, errors, notice, status).await;
    }
    let count = if input.all {
        let (filter, _) = resolve_filter(&state, &user.scope, &input.filters).await?;
        state.store.count_matching(&user.scope, &filter).await?
    } else {
        input.folios.len() as i64
    };
    if count == 0 {
        errors.selection = Some(if input.all {
            "Ninguna conversación coincide con estos filtros".into()
        } else {
            EMPTY_SELECTION.into()
        });
    } else if count > MAX_ITEMS as i64 {
        notice = Some(format!(
            "Son {count} conversaciones: una acción en lote admite hasta {MAX_ITEMS}. Acota los filtros."
        ));
    }
    let status = if errors.any() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let mut input = input;
    input.expected = Some(count);
    render_form(&req, &state, &user, &input, count, errors, notice, status).await
}

/// `GET /mensajes/lote/subcategorias?categoria=ID`: the sub-categories of a
/// category the viewer may use; every one in scope, grouped, for no
/// category (or one the viewer may not use).
pub async fn subcategories(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let input = BulkInput::parse(&pairs_of(req.query_string().as_bytes()));
    let store = &state.store;
    if let Ok(id) = Uuid::parse_str(&input.category)
        && let Some(category) = store.category_ref(id).await?
        && user.scope.allows(category.campaign_id)
    {
        let categories = store.closure_options(category.campaign_id).await?;
        return render(&SubcategoryList::of(&categories, &input.category, ""));
    }
    let campaigns = store.campaign_options(&user.scope).await?;
    let closures = campaign_closures(store, campaigns).await?;
    render(&SubcategoryList::across(&closures, "", ""))
}

/// `POST /mensajes/lote`
pub async fn submit(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    require_console(&user)?;
    let mut input = BulkInput::parse(&pairs_of(&body));
    let store = &state.store;
    let mut errors = BulkErrors::default();
    // Before any other work: a selection over the limit is refused whatever
    // else the form says, and nothing is read or written for it.
    if input.too_many() {
        errors.selection = Some(too_many_message(input.named));
        let (count, status) = (input.named as i64, StatusCode::UNPROCESSABLE_ENTITY);
        return render_form(&req, &state, &user, &input, count, errors, None, status).await;
    }

    let action = match input.action.as_str() {
        "cancelar" => Some(BulkAction::Cancel),
        "reasignar" => Some(BulkAction::Reassign),
        _ => {
            errors.action = Some("Elige Cancelar o Reasignar".into());
            None
        }
    };
    let Targets {
        category_id,
        subcategory_id,
        agent_id,
    } = check_targets(store, &user, &input, action, &mut errors).await?;
    let comment = match Comment::parse(&input.comment) {
        Ok(c) => c.map(Comment::into_string).unwrap_or_default(),
        Err(error) => {
            errors.comment = Some(Invalid::from(error).message());
            String::new()
        }
    };

    let items = resolve_selection(store, &user, &input, &state).await?;
    let count = items.len() as i64;
    let (notice, status) = check_selection(&input, &items, &mut errors);
    if errors.any() || notice.is_some() {
        input.expected = Some(count);
        return render_form(&req, &state, &user, &input, count, errors, notice, status).await;
    }
    let Some(action) = action else {
        return Err(AppError::unexpected("bulk action missing after validation"));
    };

    let total = items.len();
    let job_id = store
        .create_bulk_job(&NewBulkJob {
            created_by: user.user_id,
            scope: user.scope.clone(),
            action,
            category_id,
            subcategory_id,
            agent_id,
            comment,
            items,
            at: Ts::now(),
        })
        .await?;
    tracing::info!(job = %job_id, total, action = action.as_str(), "bulk job created");
    if total <= INLINE_MAX {
        crate::services::bulk::process(store, &state.bulk_access, job_id).await?;
    } else {
        crate::services::bulk::start(store.clone(), state.bulk_access.clone(), job_id);
    }
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("/mensajes/lote/{job_id}")))
        .finish())
}

/// What the action acts with, each checked against the viewer's scope.
#[derive(Debug, Default)]
struct Targets {
    category_id: Option<Uuid>,
    subcategory_id: Option<Uuid>,
    agent_id: Option<Uuid>,
}

/// Checks the category (and subcategory) a cancellation names or the agent
/// a reassignment names, recording what is wrong in `errors`.
async fn check_targets(
    store: &Store,
    user: &CurrentUser,
    input: &BulkInput,
    action: Option<BulkAction>,
    errors: &mut BulkErrors,
) -> Result<Targets, AppError> {
    let mut targets = Targets::default();
    match action {
        Some(BulkAction::Cancel) => {
            let category = match Uuid::parse_str(&input.category) {
                Ok(id) => store.category_ref(id).await?,
                Err(_) => None,
            };
            match category {
                Some(c) if user.scope.allows(c.campaign_id) && c.active => {
                    targets.category_id = Some(c.id)
                }
                Some(c) if user.scope.allows(c.campaign_id) => {
                    errors.category = Some(Invalid::CategoryInactive.message())
                }
                _ => errors.category = Some(Invalid::CategoryMissing.message()),
            }
            if !input.subcategory.is_empty() {
                let sub = match Uuid::parse_str(&input.subcategory) {
                    Ok(id) => store.subcategory_ref(id).await?,
                    Err(_) => None,
                };
                match sub {
                    Some(s) if Some(s.category_id) == targets.category_id && s.active => {
                        targets.subcategory_id = Some(s.id)
                    }
                    Some(s) if Some(s.category_id) == targets.category_id => {
                        errors.subcategory = Some(Invalid::SubcategoryInactive.message())
                    }
                    _ if targets.category_id.is_some() => {
                        errors.subcategory = Some(Invalid::SubcategoryNotOfCategory.message())
                    }
                    _ => {}
                }
            }
        }
        Some(BulkAction::Reassign) => {
            let agent = match Uuid::parse_str(&input.agent) {
                Ok(id) => store.user_role(id).await?.map(|role| (id, role)),
                Err(_) => None,
            };
            match agent {
                Some((id, Role::Agent)) => targets.agent_id = Some(id),
                Some(_) => errors.agent = Some(Invalid::NotAnAgent.message()),
                None => errors.agent = Some(Invalid::AgentMissing.message()),
            }
        }
        None => {}
    }
    Ok(targets)
}

/// The selection, resolved under the viewer's scope now: each folio as
/// requested, with its conversation when one in scope has it.
async fn resolve_selection(
    store: &Store,
    user: &CurrentUser,
    input: &BulkInput,
    state: &AppState,
) -> Result<Vec<(String, Option<(i64, Uuid)>)>, AppError> {
    Ok(if input.all {
        let (filter, _) = resolve_filter(state, &user.scope, &input.filters).await?;
        let found = store
            .folios_matching(&user.scope, &filter, MAX_ITEMS as i64 + 1)
            .await?;
        found
            .into_iter()
            .map(|(folio, id)| (folio.to_string(), Some((folio, id))))
            .collect()
    } else {
        // "7" and "07" name the same folio: it is looked up once.
        let wanted: Vec<i64> = input
            .folios
            .iter()
            .filter_map(|f| f.parse::<i64>().ok().filter(|f| *f > 0))
            .collect::<HashSet<i64>>()
            .into_iter()
            .collect();
        let found: HashMap<i64, Uuid> = store
            .folios_in_scope(&user.scope, &wanted)
            .await?
            .into_iter()
            .collect();
        input
            .folios
            .iter()
            .map(|requested| {
                let hit = requested
                    .parse::<i64>()
                    .ok()
                    .and_then(|f| found.get(&f).map(|id| (f, *id)));
                (requested.clone(), hit)
            })
            .collect()
    })
}

/// Whether the resolved selection can be acted on: none, too many, or (for
/// "all that match") not the number the administrator confirmed, which
/// answers 409 with a notice so they confirm again.
fn check_selection(
    input: &BulkInput,
    items: &[(String, Option<(i64, Uuid)>)],
    errors: &mut BulkErrors,
) -> (Option<String>, StatusCode) {
    let count = items.len() as i64;
    let mut notice = None;
    let mut status = StatusCode::UNPROCESSABLE_ENTITY;
    if items.is_empty() {
        errors.selection = Some(if input.all {
            "Ninguna conversación coincide con estos filtros".into()
        } else {
            EMPTY_SELECTION.into()
        });
    } else if items.len() > MAX_ITEMS {
        errors.selection = Some(format!(
            "Una acción en lote admite hasta {MAX_ITEMS} conversaciones. Acota los filtros."
        ));
    } else if input.all && input.expected != Some(count) {
        // The administrator confirmed a number; act only on what they saw.
        notice = Some(format!(
            "Las conversaciones que coinciden cambiaron: ahora son {count}. Revisa y confirma de nuevo."
        ));
        status = StatusCode::CONFLICT;
    }
    (notice, status)
}

/// One item as shown.
struct ItemView {
    requested: String,
    folio: Option<i64>,
    applied: bool,
    pending: bool,
    message: String,
}

#[derive(Template)]
#[template(path = "_bulk_status.html")]
struct JobState {
    id: String,
    action_label: &'static str,
    done: i64,
    total: i64,
    percent: i64,
    /// Nothing more will happen to it (finished or stopped): no polling.
    finished: bool,
    /// Stopped because its creator lost access.
    stopped: bool,
    summary: Option<String>,
    skipped: Vec<ItemView>,
    applied: Vec<ItemView>,
    /// Items a stopped job never processed.
    unprocessed: Vec<ItemView>,
    created: String,
}

#[derive(Template)]
#[template(path = "bulk_job.html")]
struct JobPage {
    ctx: PageContext,
    /// The rendered [`JobState`] (escaped by its own template).
    state_html: String,
}

const JOB_NOT_FOUND: &str = "No encontramos esa acción en lote";

async fn job_state(state: &AppState, user: &CurrentUser, raw: &str) -> Result<JobState, AppError> {
    let id = Uuid::parse_str(raw).map_err(|_| AppError::NotFound(JOB_NOT_FOUND))?;
    let job: BulkJob = state
        .store
        .bulk_job(id)
        .await?
        .filter(|j| j.created_by == user.user_id)
        .ok_or(AppError::NotFound(JOB_NOT_FOUND))?;
    let items = state.store.bulk_items(job.id).await?;
    let settled: Vec<(ItemOutcome, String)> = items
        .iter()
        .filter_map(|i| {
            let outcome = ItemOutcome::parse(i.outcome.as_deref()?)?;
            Some((outcome, i.reason.clone().unwrap_or_default()))
        })
        .collect();
    let done = settled.len() as i64;
    let stopped = job.status == BulkStatus::Stopped;
    let mut skipped = Vec::new();
    let mut applied = Vec::new();
    let mut unprocessed = Vec::new();
    for item in items {
        let outcome = item.outcome.as_deref().and_then(ItemOutcome::parse);
        let view = ItemView {
            // An item outside the scope shows only what was asked for.
            folio: item
                .folio
                .filter(|_| outcome != Some(ItemOutcome::NotFound)),
            requested: item.requested,
            applied: outcome == Some(ItemOutcome::Applied),
            pending: outcome.is_none(),
            message: item.message.unwrap_or_else(|| {
                if stopped {
                    "Sin procesar: la acción se detuvo".into()
                } else {
                    "Pendiente".into()
                }
            }),
        };
        if view.pending && stopped {
            unprocessed.push(view);
        } else if view.applied || view.pending {
            applied.push(view);
        } else {
            skipped.push(view);
        }
    }
    let finished = job.status != BulkStatus::Running || done >= job.total;
    let result = finished.then(|| {
        let mut text = summary(job.action, &settled);
        if !unprocessed.is_empty() {
            text.push_str(&format!(", {} sin procesar", unprocessed.len()));
        }
        text
    });
    Ok(JobState {
        id: job.id.to_string(),
        action_label: job.action.label(),
        done,
        total: job.total,
        percent: (done * 100).checked_div(job.total).unwrap_or(100),
        finished,
        stopped,
        summary: result,
        skipped,
        applied,
        unprocessed,
        created: local_datetime(job.created_at, state.timezone),
    })
}

/// `GET /mensajes/lote/{id}`: the job's progress and results (a fragment for
/// the progress poll).
pub async fn job(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let job = job_state(&state, &user, &path).await?;
    if is_fragment_request(&req) {
        return render(&job);
    }
    let state_html = job
        .render()
        .map_err(|e| AppError::Unexpected(anyhow::Error::new(e)))?;
    render(&JobPage {
        ctx: PageContext::new(&req, &user, "mensajes")?,
        state_html,
    })
}
