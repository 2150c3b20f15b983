//! Every Mensajes view: each combination of the table's filters, orders
//! and pages, for a Super Administrador and for Administradores of one and
//! of ten campaigns. `tests/query_plans.rs` plans each of them on both
//! backends; the benchmark's `views` scenario times each at 1,000,000
//! conversations (it includes this file).

use relevo::db::{Cursor, ListFilter, ListOrder, Search, StatusFilter, Ts};
use relevo::domain::{ChannelKind, Scope, Status};
use uuid::Uuid;

/// One Mensajes view: who looks, with which filters, from where.
#[derive(Clone)]
pub struct View {
    pub name: String,
    pub scope: Scope,
    pub filter: ListFilter,
    pub cursor: Option<Cursor>,
}

/// What the views are about: a data set's own campaigns, agent and
/// contacts, and the stuck cutoffs of its campaigns at `now`.
pub struct Subjects {
    /// The campaign an Administrador of one sees, and the campaign filter.
    pub campaign: Uuid,
    /// The campaigns of an Administrador of ten (the first is `campaign`'s
    /// peer or itself; campaigns without rows plan like any other).
    pub ten_campaigns: Vec<Uuid>,
    /// The agent of the agent filter.
    pub agent: Uuid,
    pub stale_cutoffs: Vec<(Uuid, Ts)>,
    pub now: Ts,
    /// What the searches look for: a folio, a phone, part of a name, and
    /// the beginning of a name (a text too short for a trigram).
    pub folio: String,
    pub phone: String,
    pub name: String,
    pub name_start: String,
}

/// Every combination of the Mensajes filters (status tab, campaign, agent,
/// channel, start and end dates, search, order), on the first page and on
/// a later one, for a Super Administrador and for
/// Administradores of one and of ten campaigns.
pub fn every_view(subjects: &Subjects) -> Vec<View> {
    let Subjects {
        campaign: ventas,
        agent,
        now,
        ..
    } = *subjects;
    let campaigns = subjects.ten_campaigns.clone();
    let stale_cutoffs = subjects.stale_cutoffs.clone();
    let days_ago = |days| Ts::new(now.0 - chrono::Duration::days(days));
    let scopes = [
        ("super", Scope::All),
        ("admin of 1", Scope::Campaigns(vec![ventas])),
        ("admin of 10", Scope::Campaigns(campaigns)),
    ];
    let statuses = [
        ("abiertas", None),
        ("todas", Some(StatusFilter::All)),
        ("canceladas", Some(StatusFilter::Only(Status::Cancelled))),
        ("rezagadas", Some(StatusFilter::Stale)),
    ];
    let campaign_filters = [("", None), (" campaña", Some(ventas))];
    let agent_filters = [
        ("", None, false),
        (" agente", Some(agent), false),
        (" agente desconectado", None, true),
    ];
    let channels = [("", None), (" canal", Some(ChannelKind::Telegram))];
    let dates = [
        ("", None, None),
        (" desde", Some(days_ago(2)), None),
        (" hasta", None, Some(days_ago(1))),
        (" desde-hasta", Some(days_ago(30)), Some(days_ago(1))),
    ];
    let searches = [
        ("", None),
        (" folio", Some(Search::Number(subjects.folio.clone()))),
        (" teléfono", Some(Search::Number(subjects.phone.clone()))),
        (" nombre", Some(Search::Text(subjects.name.clone()))),
        (
            " inicio de nombre",
            Some(Search::Text(subjects.name_start.clone())),
        ),
    ];
    let orders = [ListOrder::Recent, ListOrder::Idle, ListOrder::InStatus];
    // A previous page reads the same index backwards.
    let cursors = [None, Some(Cursor::After(days_ago(1), 10_200))];
    let mut views = Vec::new();
    for (scope_name, scope) in &scopes {
        for (status_name, status) in &statuses {
            for (campaign_name, campaign_id) in &campaign_filters {
                for (agent_name, agent_id, agent_offline) in &agent_filters {
                    for (channel_name, channel_kind) in &channels {
                        for (dates_name, started_from, started_before) in &dates {
                            for (search_name, search) in &searches {
                                for order in orders {
                                    for cursor in cursors {
                                        views.push(View {
                                            name: format!(
                                                "{scope_name}: {status_name}{campaign_name}\
                                                 {agent_name}{channel_name}{dates_name}\
                                                 {search_name} by {order:?}, {cursor:?}"
                                            ),
                                            scope: scope.clone(),
                                            filter: ListFilter {
                                                status: *status,
                                                campaign_id: *campaign_id,
                                                agent_id: *agent_id,
                                                agent_offline: *agent_offline,
                                                channel_kind: *channel_kind,
                                                started_from: *started_from,
                                                started_before: *started_before,
                                                search: search.clone(),
                                                stale_cutoffs: if *status
                                                    == Some(StatusFilter::Stale)
                                                {
                                                    stale_cutoffs.clone()
                                                } else {
                                                    Vec::new()
                                                },
                                                order,
                                            },
                                            cursor,
                                        });
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    views
}
