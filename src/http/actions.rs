//! Cancelar/Reasignar: the form (a modal fragment for htmx, a full page
//! without JavaScript), its sub-category list, and posting it.
//!
//! Posting follows the architecture's path: parse the form → load the
//! conversation through the scoped Store → compute the transition with the
//! domain rules → apply it as a compare-and-set → answer.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

use super::choices::{Choice, SubcategoryList, agent_label};
use super::conversations::{NOT_FOUND, RowFragment, RowView, parse_folio};
use super::pages::{
    PageContext, is_fragment_request, relative_in_sentence, render, render_with_status,
};
use super::transcript::{self, MessageView};
use crate::app::state::AppState;
use crate::db::{
    ActionFormReads, AgentOption, CategoryOption, ConversationRow, FormOf, HistoryRow, Store,
    TranscriptPage,
};
use crate::domain::conversation::{self as rules};
use crate::domain::text::COMMENT_MAX_CHARS;
use crate::domain::{
    AgentCandidate, EventKind, Invalid, Lookup, Role, Transition, TransitionError,
};
use crate::http::auth::{CurrentUser, csrf};
use crate::http::error::AppError;
use crate::services::router;

/// What the form posts. Every field is optional text: the rules decide.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ActionInput {
    #[serde(rename = "accion")]
    action: String,
    #[serde(rename = "categoria")]
    category: String,
    #[serde(rename = "subcategoria")]
    subcategory: String,
    #[serde(rename = "comentario")]
    comment: String,
    #[serde(rename = "agente")]
    agent: String,
    /// "1": the administrator confirms a disconnected agent.
    #[serde(rename = "confirmar_desconectado")]
    confirm_offline: String,
    version: String,
    /// The console page to go back to (a path under `/mensajes`).
    #[serde(rename = "volver")]
    return_to: String,
}

/// `?volver=` and `?categoria=` on GETs.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FormQuery {
    #[serde(rename = "volver")]
    return_to: String,
    #[serde(rename = "categoria")]
    category: String,
}

/// Field errors shown next to their fields.
#[derive(Default)]
pub struct FieldErrors {
    pub action: Option<String>,
    pub category: Option<String>,
    pub subcategory: Option<String>,
    pub comment: Option<String>,
    pub agent: Option<String>,
}

impl FieldErrors {
    /// Whether any field has an error (the summary then heads the form).
    pub fn any(&self) -> bool {
        self.action.is_some()
            || self.category.is_some()
            || self.subcategory.is_some()
            || self.comment.is_some()
            || self.agent.is_some()
    }

    fn from_invalid(list: &[Invalid]) -> FieldErrors {
        let mut errors = FieldErrors::default();
        for invalid in list {
            let slot = match invalid.field() {
                "categoria" => &mut errors.category,
                "subcategoria" => &mut errors.subcategory,
                "comentario" => &mut errors.comment,
                _ => &mut errors.agent,
            };
            slot.get_or_insert_with(|| invalid.message());
        }
        errors
    }
}

#[derive(Template)]
#[template(path = "_actions_form.html")]
pub struct ActionForm {
    pub modal: bool,
    pub csrf: String,
    pub folio: i64,
    pub version: i64,
    pub row: RowView,
    /// The last messages, oldest first, and whether there are earlier ones.
    pub recent: Vec<MessageView>,
    pub earlier_messages: bool,
    pub is_final: bool,
    pub reassigning: bool,
    pub categories: Vec<Choice>,
    /// Whether the campaign has no active closure category: nothing to
    /// cancel with, so only Reasignar is offered.
    pub no_categories: bool,
    /// The campaign's Categorías page, for a viewer who may add some.
    pub categories_href: Option<String>,
    pub subcategories: SubcategoryList,
    pub connected_agents: Vec<Choice>,
    pub other_agents: Vec<Choice>,
    /// A disconnected agent is chosen: the form asks to confirm it.
    pub offline_chosen: bool,
    pub offline_confirmed: bool,
    /// Devolver al enrutador is the chosen action.
    pub routing: bool,
    pub comment: String,
    pub comment_max: usize,
    pub errors: FieldErrors,
    /// What changed since the form was opened, or why nothing can be done.
    pub notice: Option<String>,
    pub return_to: String,
}

#[derive(Template)]
#[template(path = "actions.html")]
struct ActionPage {
    ctx: PageContext,
    folio: i64,
    return_to: String,
    /// The rendered [`ActionForm`] (escaped by its own template).
    form_html: String,
}

/// Only a path inside the console may be returned to (never another site),
/// and only one that can be a `Location` header as it is (visible ASCII,
/// as every link of the console is): anything else would fail the answer
/// after the action was saved.
fn safe_return(raw: &str, folio: i64) -> String {
    let ok = raw.starts_with("/mensajes")
        && !raw.starts_with("//")
        && !raw.contains('\\')
        && raw.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        raw.to_owned()
    } else {
        format!("/mensajes#conversacion-{folio}")
    }
}

/// The path and query of a same-host Referer.
fn referer_path(req: &HttpRequest) -> Option<String> {
    let referer = req.headers().get(header::REFERER)?.to_str().ok()?;
    let host = req.connection_info().host().to_owned();
    let rest = referer
        .strip_prefix("http://")
        .or_else(|| referer.strip_prefix("https://"))?;
    let path = rest.strip_prefix(&host)?;
    path.starts_with('/').then(|| path.to_owned())
}

fn parse_lookup(raw: &str) -> Result<Option<Uuid>, ()> {
    let raw = raw.trim();
    if raw.is_empty() {
        Ok(None)
    } else {
        Uuid::parse_str(raw).map(Some).map_err(|_| ())
    }
}

async fn lookup<T, F, Fut>(raw: &str, find: F) -> Result<Lookup<T>, AppError>
where
    F: FnOnce(Uuid) -> Fut,
    Fut: Future<Output = Result<Option<T>, crate::db::StoreError>>,
{
    Ok(match parse_lookup(raw) {
        Ok(None) => Lookup::NotChosen,
        Err(()) => Lookup::Unknown,
        Ok(Some(id)) => find(id).await?.map_or(Lookup::Unknown, Lookup::Found),
    })
}

pub use crate::app::state::ClosureRefs;

/// Everything the form shows besides what was typed.
struct Options {
    categories: Vec<CategoryOption>,
    agents: Vec<AgentOption>,
    /// The last messages, so the decision is made with context.
    recent: TranscriptPage,
}

/// The conversation `of` names in `user`'s scope, with the form's
/// options, read on one connection (see [`Store::action_form`]).
async fn read_form(
    store: &Store,
    user: &CurrentUser,
    of: FormOf,
) -> Result<(ConversationRow, Options), AppError> {
    let ActionFormReads {
        row,
        categories,
        agents,
        recent,
    } = store
        .action_form(&user.scope, of, transcript::RECENT)
        .await?
        .ok_or(AppError::NotFound(NOT_FOUND))?;
    let options = Options {
        categories,
        agents,
        recent,
    };
    Ok((row, options))
}

#[allow(clippy::too_many_arguments)]
fn build_form(
    state: &AppState,
    role: Role,
    csrf: String,
    modal: bool,
    row: &ConversationRow,
    options: Options,
    input: &ActionInput,
    errors: FieldErrors,
    notice: Option<String>,
) -> ActionForm {
    let now = Utc::now();
    let categories = options
        .categories
        .iter()
        .map(|c| Choice {
            value: c.id.to_string(),
            label: c.name.clone(),
            selected: c.id.to_string() == input.category,
        })
        .collect();
    let subcategories =
        SubcategoryList::of(&options.categories, &input.category, &input.subcategory);
    let no_categories = options.categories.is_empty();
    let errors = if no_categories && input.action == "cancelar" && errors.category.is_some() {
        // The cancel fields are hidden: say why next to the choice instead.
        FieldErrors {
            action: Some(NO_CATEGORIES.into()),
            ..FieldErrors::default()
        }
    } else {
        errors
    };
    let (connected_agents, other_agents) = agent_choices(&options.agents, &input.agent);
    let offline_chosen = other_agents.iter().any(|a| a.selected);
    let row_view = RowView::new(row, state.timezone, now);
    let recent = options
        .recent
        .messages
        .iter()
        .map(|m| {
            MessageView::new(
                m,
                &row_view.customer_name,
                state.timezone,
                state.transcript_days,
            )
        })
        .collect();
    ActionForm {
        modal,
        csrf,
        folio: row.folio,
        version: row.version,
        row: row_view,
        recent,
        earlier_messages: options.recent.older.is_some(),
        is_final: row.status.is_final(),
        reassigning: input.action == "reasignar" || (no_categories && input.action != "enrutador"),
        categories,
        no_categories,
        categories_href: crate::http::pages::in_menu(role, "/categorias")
            .then(|| format!("/categorias?campana={}", row.campaign_id)),
        subcategories,
        connected_agents,
        other_agents,
        offline_chosen,
        offline_confirmed: input.confirm_offline == "1",
        routing: input.action == "enrutador",
        comment: input.comment.clone(),
        comment_max: COMMENT_MAX_CHARS,
        errors,
        notice,
        return_to: safe_return(&input.return_to, row.folio),
    }
}

/// The agents a conversation may go to: (connected, disconnected), each
/// with their presence and open load ("Ana Ruiz · conectado · 3 abiertas"),
/// connected ones least busy first (the Store's order), `chosen` selected.
fn agent_choices(agents: &[AgentOption], chosen: &str) -> (Vec<Choice>, Vec<Choice>) {
    let (connected, offline): (Vec<&AgentOption>, Vec<&AgentOption>) =
        agents.iter().partition(|a| a.connected);
    let choices = |agents: Vec<&AgentOption>| -> Vec<Choice> {
        agents
            .into_iter()
            .map(|a| Choice {
                value: a.id.to_string(),
                label: agent_label(a),
                selected: a.id.to_string() == chosen,
            })
            .collect()
    };
    (choices(connected), choices(offline))
}

/// The conversation a Cancelar/Reasignar post decides on and, for a
/// reassignment, the agent it names (see
/// [`Store::conversation_with_candidate`]).
async fn load(
    state: &AppState,
    user: &CurrentUser,
    raw_folio: &str,
    input: &ActionInput,
) -> Result<(ConversationRow, Option<AgentCandidate>), AppError> {
    let folio = parse_folio(raw_folio)?;
    let agent = match input.action.as_str() {
        "reasignar" => parse_lookup(&input.agent).ok().flatten(),
        _ => None,
    };
    state
        .store
        .conversation_with_candidate(&user.scope, folio, agent)
        .await?
        .ok_or(AppError::NotFound(NOT_FOUND))
}

/// Answers with the form: a fragment for the modal, a page otherwise.
fn respond(
    req: &HttpRequest,
    user: &CurrentUser,
    form: &ActionForm,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    if form.modal {
        return render_with_status(form, status);
    }
    let form_html = form
        .render()
        .map_err(|e| AppError::Unexpected(anyhow::Error::new(e)))?;
    render_with_status(
        &ActionPage {
            ctx: PageContext::new(req, user, "mensajes")?,
            folio: form.folio,
            return_to: form.return_to.clone(),
            form_html,
        },
        status,
    )
}

/// `GET /mensajes/{folio}/acciones`
pub async fn show(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<String>,
    query: web::Query<FormQuery>,
) -> Result<HttpResponse, AppError> {
    let folio = parse_folio(&path)?;
    let (row, options) = read_form(&state.store, &user, FormOf::Folio(folio)).await?;
    // Without JavaScript the icon is a plain link: return to the page it was
    // clicked on (the Referer, same-origin only by our referrer policy), so
    // the filters and the page survive.
    let return_to = if query.return_to.is_empty() {
        referer_path(&req).unwrap_or_default()
    } else {
        query.return_to.clone()
    };
    let input = ActionInput {
        action: "cancelar".into(),
        return_to,
        ..ActionInput::default()
    };
    let notice = row.status.is_final().then(|| final_notice(&row));
    let form = build_form(
        &state,
        user.role,
        csrf::token(&session)?,
        is_fragment_request(&req),
        &row,
        options,
        &input,
        FieldErrors::default(),
        notice,
    );
    respond(&req, &user, &form, StatusCode::OK)
}

/// `GET /mensajes/{folio}/subcategorias?categoria=ID`: the options of the
/// sub-category list for the chosen category (only active ones of an active
/// category of the conversation's campaign).
pub async fn subcategories(
    user: CurrentUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<FormQuery>,
) -> Result<HttpResponse, AppError> {
    let categories = state
        .store
        .closure_options_of(&user.scope, parse_folio(&path)?)
        .await?
        .ok_or(AppError::NotFound(NOT_FOUND))?;
    render(&SubcategoryList::of(&categories, &query.category, ""))
}

fn final_notice(row: &ConversationRow) -> String {
    format!(
        "{}. No queda nada por hacer en esta conversación.",
        TransitionError::refusal(row.status)
    )
}

/// "Ana López la reasignó a Pedro Ruiz hace 12 s".
pub fn describe_change(latest: &HistoryRow, now: chrono::DateTime<Utc>) -> String {
    let who = latest
        .actor_name
        .clone()
        .unwrap_or_else(|| match latest.actor_kind {
            crate::domain::ActorKind::System => "El enrutador".to_owned(),
            crate::domain::ActorKind::Customer => "El cliente".to_owned(),
            other => other.label().to_owned(),
        });
    let to_agent = latest.to_agent_name.as_deref().unwrap_or("otro agente");
    let what = match latest.kind {
        EventKind::Cancelled => "la canceló".to_owned(),
        EventKind::Resolved => "la resolvió".to_owned(),
        EventKind::Reassigned => match &latest.to_agent_name {
            Some(agent) => format!("la reasignó a {agent}"),
            None => format!("la devolvió al enrutador ({})", latest.to_status.label()),
        },
        EventKind::Assigned => format!("la asignó a {to_agent}"),
        EventKind::Handoff => match &latest.to_agent_name {
            Some(agent) => format!("la asignó a {agent}"),
            None => format!("la pasó a {}", latest.to_status.label()),
        },
        EventKind::FirstReply => "respondió al cliente".to_owned(),
        EventKind::Created => "la inició".to_owned(),
    };
    format!("{who} {what} {}", relative_in_sentence(latest.at, now))
}

fn conflict_notice(row: &ConversationRow, latest: Option<&HistoryRow>) -> String {
    let change = latest
        .map(|l| describe_change(l, Utc::now()))
        .unwrap_or_else(|| "Alguien más la modificó".to_owned());
    if row.status.is_final() {
        format!("{}: {change}.", TransitionError::refusal(row.status))
    } else {
        format!(
            "La conversación cambió mientras decidías: {change}. Revisa su estado actual y decide de nuevo."
        )
    }
}

/// JSON with every non-ASCII character escaped, so it survives an HTTP header.
fn ascii_json(value: &serde_json::Value) -> String {
    let mut out = String::new();
    for c in value.to_string().chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// `POST /mensajes/{folio}/acciones`
pub async fn submit(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<String>,
    form: web::Form<ActionInput>,
) -> Result<HttpResponse, AppError> {
    let input = form.into_inner();
    let modal = is_fragment_request(&req);
    let (row, candidate) = load(&state, &user, &path, &input).await?;
    let store = &state.store;
    let csrf = csrf::token(&session)?;
    let reply = |row: &ConversationRow, options, errors, notice, status| {
        let form = build_form(
            &state,
            user.role,
            csrf.clone(),
            modal,
            row,
            options,
            &input,
            errors,
            notice,
        );
        respond(&req, &user, &form, status)
    };

    let transition = match decide(&state, &user, &row, candidate, &input).await? {
        Ok(transition) => transition,
        Err(refusal) => {
            // The form comes back on the conversation as it was decided
            // on; only its options are read again.
            let (row, options) = read_form(store, &user, FormOf::Row(Box::new(row))).await?;
            return reply(
                &row,
                options,
                refusal.errors,
                refusal.notice,
                refusal.status,
            );
        }
    };

    let updated = match store.apply_transition_showing(&transition).await? {
        Ok(updated) => updated,
        Err(conflict) => {
            let (current, options) = read_form(store, &user, FormOf::Folio(row.folio)).await?;
            let notice = conflict_notice(&current, conflict.latest.as_ref());
            tracing::info!(folio = row.folio, "transition lost a race");
            return reply(
                &current,
                options,
                FieldErrors::default(),
                Some(notice),
                StatusCode::CONFLICT,
            );
        }
    };
    respond_applied(
        &state,
        &session,
        modal,
        &updated,
        transition.kind,
        input.action == "enrutador",
        &input.return_to,
    )
}

/// A cancel posted for a campaign without active closure categories.
const NO_CATEGORIES: &str = "No se puede cancelar: esta campaña no tiene categorías de cierre activas. Reasigna la conversación o agrega categorías.";

/// Why the form comes back instead of the transition applying.
struct Refusal {
    errors: FieldErrors,
    notice: Option<String>,
    status: StatusCode,
}

impl Refusal {
    fn errors(errors: FieldErrors) -> Refusal {
        Refusal {
            errors,
            notice: None,
            status: StatusCode::UNPROCESSABLE_ENTITY,
        }
    }

    fn conflict(notice: String) -> Refusal {
        Refusal {
            errors: FieldErrors::default(),
            notice: Some(notice),
            status: StatusCode::CONFLICT,
        }
    }
}

/// Validates the form against the conversation as the administrator saw
/// it: the transition to apply, or why not.
async fn decide(
    state: &AppState,
    user: &CurrentUser,
    row: &ConversationRow,
    candidate: Option<AgentCandidate>,
    input: &ActionInput,
) -> Result<Result<Transition, Refusal>, AppError> {
    // The administrator decided on the state they saw; if it moved since,
    // they decide again.
    let seen_version = input.version.trim().parse::<i64>().ok();
    if seen_version != Some(row.version) {
        let latest = state.store.latest_event(row.id).await?;
        return Ok(Err(Refusal::conflict(conflict_notice(
            row,
            latest.as_ref(),
        ))));
    }
    let now = Utc::now();
    let Some(computed) = compute_transition(state, user, row, candidate, input, now).await? else {
        return Ok(Err(Refusal::errors(FieldErrors {
            action: Some("Elige Cancelar, Reasignar o Devolver al enrutador".into()),
            ..FieldErrors::default()
        })));
    };
    Ok(match computed {
        Ok(t) => Ok(t),
        Err(TransitionError::Invalid(list)) => {
            Err(Refusal::errors(FieldErrors::from_invalid(&list)))
        }
        Err(TransitionError::NotAllowedFrom(_) | TransitionError::NotTheAssignedAgent) => {
            Err(Refusal::conflict(final_notice(row)))
        }
    })
}

/// The transition the form asks for, decided by the domain rule on what
/// the form names (looked up first, the agent of a reassignment with the
/// conversation as `candidate`, and for Devolver al enrutador the router's
/// decision); `None` when the action is none of the three.
async fn compute_transition(
    state: &AppState,
    user: &CurrentUser,
    row: &ConversationRow,
    candidate: Option<AgentCandidate>,
    input: &ActionInput,
    now: DateTime<Utc>,
) -> Result<Option<Result<Transition, TransitionError>>, AppError> {
    let conversation = row.to_domain();
    Ok(Some(match input.action.as_str() {
        "cancelar" => {
            let (store, refs) = (&state.store, &state.closure_refs);
            let category = lookup(&input.category, |id| {
                refs.categories
                    .get_or_load(id, move || store.category_ref(id))
            })
            .await?;
            let subcategory = lookup(&input.subcategory, |id| {
                refs.subcategories
                    .get_or_load(id, move || store.subcategory_ref(id))
            })
            .await?;
            rules::cancel(
                &conversation,
                user.user_id,
                category,
                subcategory,
                &input.comment,
                now,
            )
        }
        "reasignar" => {
            let agent = lookup(&input.agent, |_| std::future::ready(Ok(candidate))).await?;
            let offline = if input.confirm_offline == "1" {
                rules::OfflineAgent::Confirmed
            } else {
                rules::OfflineAgent::Unconfirmed
            };
            rules::reassign(
                &conversation,
                user.user_id,
                agent,
                offline,
                &input.comment,
                now,
            )
        }
        "enrutador" => {
            let outcome =
                router::decide_without(&state.store, row.campaign_id, row.agent_id, now).await?;
            rules::return_to_router(&conversation, user.user_id, outcome, &input.comment, now)
        }
        _ => return Ok(None),
    }))
}

/// After the transition: in the modal, the row replaced in place with a
/// toast; otherwise a flash and back to where the administrator came from.
fn respond_applied(
    state: &AppState,
    session: &Session,
    modal: bool,
    updated: &ConversationRow,
    kind: EventKind,
    routed: bool,
    return_to: &str,
) -> Result<HttpResponse, AppError> {
    let message = match (kind, &updated.agent_name) {
        (EventKind::Cancelled, _) => format!("Conversación {} cancelada", updated.folio),
        (_, Some(agent)) if routed => format!(
            "Conversación {} devuelta al enrutador: asignada a {agent}",
            updated.folio
        ),
        (_, Some(agent)) => format!("Conversación {} reasignada a {agent}", updated.folio),
        (_, None) => format!(
            "Conversación {} devuelta al enrutador: en {}",
            updated.folio,
            updated.status.label()
        ),
    };
    tracing::info!(folio = updated.folio, kind = %kind, "transition applied");
    if modal {
        let body = RowFragment {
            row: RowView::new(updated, state.timezone, Utc::now()),
        }
        .render()
        .map_err(|e| AppError::Unexpected(anyhow::Error::new(e)))?;
        let trigger = ascii_json(&serde_json::json!({
            "relevo:toast": { "message": message },
            "relevo:closeModal": { "folio": updated.folio },
        }));
        return Ok(HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .insert_header(("HX-Retarget", format!("#conversacion-{}", updated.folio)))
            .insert_header(("HX-Reswap", "outerHTML"))
            .insert_header((
                "HX-Trigger-After-Settle",
                HeaderValue::from_str(&trigger).map_err(|e| AppError::unexpected(e.to_string()))?,
            ))
            .body(body));
    }
    super::pages::set_flash(session, &message);
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, safe_return(return_to, updated.folio)))
        .finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_console_paths_are_returned_to() {
        assert_eq!(
            safe_return("/mensajes?estatus=todas", 7),
            "/mensajes?estatus=todas"
        );
        assert_eq!(
            safe_return("https://evil.example", 7),
            "/mensajes#conversacion-7"
        );
        assert_eq!(
            safe_return("//evil.example/mensajes", 7),
            "/mensajes#conversacion-7"
        );
        assert_eq!(safe_return("", 7), "/mensajes#conversacion-7");
        for header_breaking in [
            "/mensajes\r\nSet-Cookie: x=1",
            "/mensajes?q=\u{0}",
            "/mensajes?q=Ñandú",
        ] {
            assert_eq!(safe_return(header_breaking, 7), "/mensajes#conversacion-7");
        }
    }

    #[test]
    fn header_json_is_ascii() {
        let json = ascii_json(&serde_json::json!({ "m": "Conversación 😀" }));
        assert!(json.is_ascii());
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["m"], "Conversación 😀");
    }
}
