//! Reportes and the CSV export: closing history rows counted by category,
//! sub-category, closer and local day, and conversations read row by row.
//!
//! Counts come from `conversation_events` (one `cancelled` or `resolved` row
//! per closed conversation), so a report is exactly the history it
//! summarises; names come from the categories and users those rows refer to,
//! deactivated or not.

use futures_util::TryStreamExt;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::backend::Backend;
use super::conversations::{ListFilter, push_conditions};
use super::row::from_row;
use super::{StoreResult, Ts, with_read};
use crate::domain::{ActorKind, ChannelKind, Scope, Status};

/// The campaigns a report or an export covers, already intersected with the
/// viewer's scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Campaigns {
    /// Every campaign (a Super Administrador who chose none).
    All,
    /// Only these (possibly none: then nothing is counted).
    Only(Vec<Uuid>),
}

impl Campaigns {
    /// The campaigns `scope` may see among `chosen` (none chosen: all it may see).
    pub fn within(scope: &Scope, chosen: &[Uuid]) -> Campaigns {
        match (scope, chosen.is_empty()) {
            (Scope::All, true) => Campaigns::All,
            (Scope::All, false) => Campaigns::Only(chosen.to_vec()),
            (Scope::Campaigns(ids), true) => Campaigns::Only(ids.clone()),
            (Scope::Campaigns(ids), false) => {
                Campaigns::Only(chosen.iter().copied().filter(|c| ids.contains(c)).collect())
            }
        }
    }

    fn is_empty(&self) -> bool {
        matches!(self, Campaigns::Only(ids) if ids.is_empty())
    }
}

/// Appends ` and c.campaign_id in (…)` for a restricted [`Campaigns`].
fn push_campaigns<DB: Backend>(qb: &mut sqlx::QueryBuilder<DB>, campaigns: &Campaigns) {
    if let Campaigns::Only(ids) = campaigns {
        qb.push(" and c.campaign_id in ");
        DB::push_bind_list(qb, ids);
    }
}

from_row! {
    /// Closing history rows of one combination of kind, closer and closure.
    #[derive(Debug, Clone)]
    pub struct ClosureCount {
        #[try_from(String)]
        pub to_status: Status,
        #[try_from(String)]
        pub actor_kind: ActorKind,
        pub actor_id: Option<Uuid>,
        pub actor_name: Option<String>,
        pub category_id: Option<Uuid>,
        pub category_name: Option<String>,
        pub category_active: Option<bool>,
        /// The campaign of the category (names repeat across campaigns).
        pub category_campaign: Option<String>,
        pub subcategory_id: Option<Uuid>,
        pub subcategory_name: Option<String>,
        pub subcategory_active: Option<bool>,
        pub n: i64,
    }
}

from_row! {
    /// Closing history rows of one local day of the report.
    #[derive(Debug, Clone)]
    pub struct DayCount {
        /// The day's position in the report's range (0 = the first day).
        pub day: i64,
        pub cancelled: i64,
        pub resolved: i64,
    }
}

/// What the report counts.
#[derive(Debug, Clone, Default)]
pub struct ReportCounts {
    pub closures: Vec<ClosureCount>,
    pub days: Vec<DayCount>,
}

from_row! {
    /// One conversation as the CSV export writes it.
    #[derive(Debug, Clone)]
    pub struct ExportRow {
        pub folio: i64,
        pub contact_name: Option<String>,
        pub contact_external_id: String,
        #[try_from(String)]
        pub channel_kind: ChannelKind,
        pub channel_name: String,
        pub campaign_name: String,
        pub agent_name: Option<String>,
        #[try_from(String)]
        pub status: Status,
        pub started_at: Ts,
        pub last_activity_at: Ts,
        pub closed_at: Option<Ts>,
        pub closer_name: Option<String>,
        pub closer_kind: Option<String>,
        pub category_name: Option<String>,
        pub subcategory_name: Option<String>,
        pub closure_comment: Option<String>,
    }
}

/// Which conversations an export writes.
#[derive(Debug, Clone)]
pub enum ExportSource {
    /// The Mensajes table under these filters, in the table's order.
    Filter(ListFilter),
    /// The conversations a report counts: closed in `[from, to)`, oldest first.
    ClosedBetween {
        from: Ts,
        to: Ts,
        campaigns: Campaigns,
    },
}

const EXPORT_SELECT: &str = "select c.folio, k.name as contact_name, \
    k.external_id as contact_external_id, h.kind as channel_kind, h.name as channel_name, \
    p.name as campaign_name, a.name as agent_name, c.status, c.started_at, c.last_activity_at, \
    c.closed_at, cb.name as closer_name, c.closer_kind, cat.name as category_name, \
    sub.name as subcategory_name, c.closure_comment \
    from conversations c \
    join contacts k on k.id = c.contact_id \
    join channels h on h.id = c.channel_id \
    join campaigns p on p.id = c.campaign_id \
    left join users a on a.id = c.agent_id \
    left join users cb on cb.id = c.closed_by \
    left join closure_categories cat on cat.id = c.closure_category_id \
    left join closure_subcategories sub on sub.id = c.closure_subcategory_id ";

const CLOSURE_COUNTS: &str = "select e.to_status, e.actor_kind, e.actor_id, u.name as actor_name, \
    e.category_id, cat.name as category_name, cat.active as category_active, \
    cp.name as category_campaign, e.subcategory_id, sub.name as subcategory_name, sub.active as subcategory_active, \
    count(*) as n \
    from conversation_events e \
    join conversations c on c.id = e.conversation_id \
    left join users u on u.id = e.actor_id \
    left join closure_categories cat on cat.id = e.category_id \
    left join campaigns cp on cp.id = cat.campaign_id \
    left join closure_subcategories sub on sub.id = e.subcategory_id \
    where e.kind in ('cancelled', 'resolved') and e.at >= ";

const CLOSURE_GROUP: &str = " group by e.to_status, e.actor_kind, e.actor_id, u.name, \
    e.category_id, cat.name, cat.active, cp.name, e.subcategory_id, sub.name, sub.active";

impl super::Store {
    /// Closing history rows of `campaigns` between the first and the last of
    /// `bounds`, by closure and closer, and per day: day `i` is
    /// `[bounds[i], bounds[i + 1])`, so days are exactly those the caller
    /// computed in its time zone (whatever its offset or daylight-saving
    /// changes), on both backends alike.
    pub async fn report_counts(
        &self,
        campaigns: &Campaigns,
        bounds: &[Ts],
    ) -> StoreResult<ReportCounts> {
        if campaigns.is_empty() || bounds.len() < 2 {
            return Ok(ReportCounts::default());
        }
        let (from, to) = (bounds[0], bounds[bounds.len() - 1]);
        let (closures, days) = with_read!(self, |pool| {
            let mut qb = sqlx::QueryBuilder::new(CLOSURE_COUNTS);
            qb.push_bind(from);
            qb.push(" and e.at < ");
            qb.push_bind(to);
            push_campaigns(&mut qb, campaigns);
            qb.push(CLOSURE_GROUP);
            let closures: Vec<ClosureCount> = qb.build_query_as().fetch_all(pool).await?;

            // One row per day with its bounds, each kind counted by a
            // correlated subquery: one index range of (kind, at) per day and
            // kind on both backends, whatever the planner thinks of the
            // list of days.
            let mut qb = sqlx::QueryBuilder::new("with d (day, starts, ends) as (values ");
            for (i, pair) in bounds.windows(2).enumerate() {
                if i > 0 {
                    qb.push(", ");
                }
                qb.push(format!("({i}, "));
                qb.push_bind(pair[0]);
                qb.push(", ");
                qb.push_bind(pair[1]);
                qb.push(")");
            }
            qb.push(") select cast(d.day as bigint) as day");
            for kind in ["cancelled", "resolved"] {
                qb.push(format!(
                    ", (select count(*) from conversation_events e \
                     join conversations c on c.id = e.conversation_id \
                     where e.kind = '{kind}' and e.at >= d.starts and e.at < d.ends"
                ));
                push_campaigns(&mut qb, campaigns);
                qb.push(format!(") as {kind}"));
            }
            qb.push(" from d order by d.day");
            let days: Vec<DayCount> = qb.build_query_as().fetch_all(pool).await?;
            (closures, days)
        });
        Ok(ReportCounts { closures, days })
    }

    /// Streams the rows of an export into `sink`, from one query: the rows
    /// are one consistent snapshot (a single statement reads one snapshot on
    /// both backends), and memory stays bounded because `sink` is bounded and
    /// the query is read as a stream. The pooled connection is held until
    /// the last row is taken, so `sink` must be drained at the pace of a
    /// disk, never of a network client (the export writes it to a temporary
    /// file). Stops early, without error, when the receiver goes away.
    /// Returns the rows sent.
    pub async fn export_rows(
        &self,
        scope: &Scope,
        source: &ExportSource,
        sink: &mpsc::Sender<ExportRow>,
    ) -> StoreResult<u64> {
        if matches!(scope, Scope::Campaigns(ids) if ids.is_empty()) {
            return Ok(0);
        }
        if let ExportSource::ClosedBetween { campaigns, .. } = source
            && campaigns.is_empty()
        {
            return Ok(0);
        }
        let mut sent = 0u64;
        with_read!(self, |pool| {
            let mut qb = sqlx::QueryBuilder::new(EXPORT_SELECT);
            match source {
                ExportSource::Filter(filter) => {
                    qb.push(" where 1 = 1");
                    push_conditions(&mut qb, scope, filter, true);
                    qb.push(" order by c.last_activity_at desc, c.folio desc");
                }
                ExportSource::ClosedBetween {
                    from,
                    to,
                    campaigns,
                } => {
                    qb.push(" where c.closed_at >= ");
                    qb.push_bind(*from);
                    qb.push(" and c.closed_at < ");
                    qb.push_bind(*to);
                    push_campaigns(&mut qb, campaigns);
                    // The caller intersected already; the scope is applied
                    // again so no path can widen it.
                    if let Scope::Campaigns(ids) = scope {
                        push_campaigns(&mut qb, &Campaigns::Only(ids.clone()));
                    }
                    qb.push(" order by c.closed_at, c.folio");
                }
            }
            let mut rows = qb.build_query_as::<ExportRow>().fetch(pool);
            while let Some(row) = rows.try_next().await? {
                if sink.send(row).await.is_err() {
                    break;
                }
                sent += 1;
            }
        });
        Ok(sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_never_reaches_beyond_the_scope() {
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        assert_eq!(Campaigns::within(&Scope::All, &[]), Campaigns::All);
        assert_eq!(
            Campaigns::within(&Scope::Campaigns(vec![a]), &[]),
            Campaigns::Only(vec![a])
        );
        assert_eq!(
            Campaigns::within(&Scope::Campaigns(vec![a]), &[a, b]),
            Campaigns::Only(vec![a])
        );
        assert!(Campaigns::within(&Scope::Campaigns(vec![a]), &[b]).is_empty());
    }
}
