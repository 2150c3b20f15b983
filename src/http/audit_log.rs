//! Auditoría (Super Administrador only): every administrative change with
//! its actor, time, object and before/after summary, filtered by actor,
//! kind of object, campaign and date range, newest first, paged by keyset.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::{TimeZone, Utc};

use super::admin::{Fields, Opt, Pager, field_id, require_super, when};
use super::pages::{PageContext, render_with_status};
use crate::app::state::AppState;
use crate::db::{AuditFilter, AuditRow, Ts};
use crate::domain::admin::{AuditAction, AuditObject};
use crate::http::auth::CurrentUser;
use crate::http::error::AppError;

struct AuditView {
    at: String,
    actor: String,
    action: String,
    object: String,
    campaign: Option<String>,
    summary: String,
}

#[derive(Template)]
#[template(path = "audit_log.html")]
struct AuditPage {
    ctx: PageContext,
    rows: Vec<AuditView>,
    actors: Vec<Opt>,
    objects: Vec<Opt>,
    campaigns: Vec<Opt>,
    from_day: String,
    to_day: String,
    notices: Vec<String>,
    filtered: bool,
    pager: Pager,
}

/// Midnight of a `YYYY-MM-DD` day in `tz` (the next day's with `next_day`).
fn day_start(raw: &str, tz: chrono_tz::Tz, next_day: bool) -> Option<Ts> {
    let day = crate::domain::days::parse_day(raw)?;
    let day = if next_day { day.succ_opt()? } else { day };
    let local = tz
        .from_local_datetime(&day.and_hms_opt(0, 0, 0)?)
        .earliest()?;
    Some(Ts::new(local.with_timezone(&Utc)))
}

impl AuditView {
    /// One row as shown: local time, Spanish labels, the command line named
    /// where no administrator acted.
    fn new(r: AuditRow, tz: chrono_tz::Tz) -> AuditView {
        AuditView {
            at: when(r.at, tz),
            actor: r
                .actor_name
                .unwrap_or_else(|| "Sistema (línea de comandos)".to_owned()),
            action: AuditAction::parse(&r.action)
                .map_or_else(|| r.action.clone(), |a| a.label().to_owned()),
            object: AuditObject::parse(&r.object_kind)
                .map_or_else(|| r.object_kind.clone(), |o| o.label().to_owned()),
            campaign: r.campaign_name,
            summary: r.summary,
        }
    }
}

/// The filter the query asks for, with the raw dates to show back and a
/// notice for each value that could not be read (that filter is ignored).
struct FilterInput {
    filter: AuditFilter,
    from_day: String,
    to_day: String,
    notices: Vec<String>,
}

impl FilterInput {
    /// The filter as the pager carries it to the next page: only the values
    /// that were read, the dates as typed.
    fn pager_query(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "actor",
                self.filter
                    .actor_id
                    .map(|i| i.to_string())
                    .unwrap_or_default(),
            ),
            (
                "objeto",
                self.filter
                    .object
                    .map_or("", AuditObject::as_str)
                    .to_owned(),
            ),
            (
                "campana",
                self.filter
                    .campaign_id
                    .map(|i| i.to_string())
                    .unwrap_or_default(),
            ),
            (
                "desde",
                if self.filter.from.is_some() {
                    self.from_day.clone()
                } else {
                    String::new()
                },
            ),
            (
                "hasta",
                if self.filter.before.is_some() {
                    self.to_day.clone()
                } else {
                    String::new()
                },
            ),
        ]
    }
}

fn read_filter(query: &Fields, tz: chrono_tz::Tz) -> FilterInput {
    let mut notices = Vec::new();
    let mut ignore = |what: &str| {
        notices.push(format!(
            "Se ignoró el filtro de {what}: el valor no es válido."
        ))
    };
    let actor_id = field_id(query.get("actor")).unwrap_or_else(|_| {
        ignore("responsable");
        None
    });
    let campaign_id = field_id(query.get("campana")).unwrap_or_else(|_| {
        ignore("campaña");
        None
    });
    let object = match query.get("objeto") {
        "" => None,
        raw => {
            let object = AuditObject::parse(raw);
            if object.is_none() {
                ignore("objeto");
            }
            object
        }
    };
    let from_day = query.get("desde").trim().to_owned();
    let to_day = query.get("hasta").trim().to_owned();
    let from = match from_day.as_str() {
        "" => None,
        raw => {
            let at = day_start(raw, tz, false);
            if at.is_none() {
                ignore("fecha inicial");
            }
            at
        }
    };
    let before = match to_day.as_str() {
        "" => None,
        raw => {
            let at = day_start(raw, tz, true);
            if at.is_none() {
                ignore("fecha final");
            }
            at
        }
    };
    let filter = AuditFilter {
        actor_id,
        object,
        campaign_id,
        from,
        before,
    };
    FilterInput {
        filter,
        from_day,
        to_day,
        notices,
    }
}

/// `GET /auditoria?actor=…&objeto=…&campana=…&desde=…&hasta=…`
pub async fn list(
    req: HttpRequest,
    user: CurrentUser,
    state: web::Data<AppState>,
    query: web::Query<Fields>,
) -> Result<HttpResponse, AppError> {
    require_super(&user)?;
    let tz = state.timezone;
    let input = read_filter(&query, tz);
    let AuditFilter {
        actor_id,
        object,
        campaign_id,
        ..
    } = input.filter;
    let (page, actors, campaigns) = tokio::try_join!(
        state.store.audit_page(&input.filter, query.cursor()),
        state.store.audit_actors(),
        state.store.all_campaigns()
    )?;
    let pager = Pager::new("/auditoria", &input.pager_query(), &page, |r| r.id);
    let mut actor_opts = vec![Opt::new("", "Todos", actor_id.is_none())];
    actor_opts.extend(
        actors
            .into_iter()
            .map(|(id, name)| Opt::new(id.to_string(), name, Some(id) == actor_id)),
    );
    let mut object_opts = vec![Opt::new("", "Todos", object.is_none())];
    object_opts.extend(
        AuditObject::ALL
            .iter()
            .map(|o| Opt::new(o.as_str(), o.label(), Some(*o) == object)),
    );
    let mut campaign_opts = vec![Opt::new("", "Todas", campaign_id.is_none())];
    campaign_opts.extend(
        campaigns
            .into_iter()
            .map(|c| Opt::new(c.id.to_string(), c.name, Some(c.id) == campaign_id)),
    );
    render_with_status(
        &AuditPage {
            ctx: PageContext::new(&req, &user, "auditoria")?,
            rows: page
                .rows
                .into_iter()
                .map(|r| AuditView::new(r, tz))
                .collect(),
            actors: actor_opts,
            objects: object_opts,
            campaigns: campaign_opts,
            filtered: input.filter != AuditFilter::default(),
            from_day: input.from_day,
            to_day: input.to_day,
            notices: input.notices,
            pager,
        },
        StatusCode::OK,
    )
}
