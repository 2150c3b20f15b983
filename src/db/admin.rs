//! Campaign administration: campaigns, their weekly schedule, channels and
//! their tokens, integration tokens, and assigned Administradores and Agentes.
//!
//! Every write goes through [`admin_write!`]: one transaction that also
//! writes its audit row; a write that changes who may see what (a campaign's
//! active flag, a membership) also announces an access change inside the
//! transaction and publishes it after commit, so open live streams re-read
//! their viewer's scope. Every list is keyset-paged on an index.

use std::collections::HashMap;

use uuid::Uuid;

use super::accounts::USERS_BY_NAME;
use super::audit::{
    ADMIN_PAGE_SIZE, AdminPage, AuditEntry, ChildList, Keyset, PageCursor, admin_write, duplicate,
};
pub use super::audit::{AdminResult, Refusal};
use super::categories::{CATEGORIES, push_subcategories};
use super::row::from_row;
use super::{StoreResult, Ts, token_hash, with_read};
use crate::domain::admin::{AuditAction, DayHours, Name, describe_schedule, parse_time};
use crate::domain::text::fold;
use crate::domain::{ChannelKind, Role};
use crate::live::Event;

/// Candidates the member picker shows at once.
pub const PICKER_PAGE_SIZE: i64 = 20;

from_row! {
    /// A campaign in the Campañas list, with its counts.
    #[derive(Debug, Clone)]
    pub struct CampaignSummary {
        pub id: Uuid,
        pub name: String,
        pub active: bool,
        pub timezone: String,
        pub open_conversations: i64,
        pub agents: i64,
        pub admins: i64,
        pub channels: i64,
    }
}

from_row! {
    /// A campaign as stored.
    #[derive(Debug, Clone)]
    pub struct CampaignRecord {
        pub id: Uuid,
        pub name: String,
        pub active: bool,
        pub timezone: String,
        /// Minutes without activity after which an open conversation of
        /// the campaign is stuck ("rezagada").
        pub stale_after_minutes: i64,
    }
}

from_row! {
    /// A channel of a campaign (its token is never readable).
    #[derive(Debug, Clone)]
    pub struct ChannelRecord {
        pub id: Uuid,
        #[try_from(String)]
        pub kind: ChannelKind,
        pub name: String,
        pub active: bool,
        pub created_at: Ts,
    }
}

from_row! {
    /// An integration token of a campaign (only its hash is stored).
    #[derive(Debug, Clone)]
    pub struct TokenRecord {
        pub id: Uuid,
        pub name: String,
        pub created_at: Ts,
        pub revoked_at: Option<Ts>,
    }
}

from_row! {
    /// A user assigned to a campaign, or a candidate to assign.
    #[derive(Debug, Clone)]
    pub struct MemberRow {
        pub id: Uuid,
        pub name: String,
        pub email: String,
        #[try_from(String)]
        pub role: Role,
        pub active: bool,
        pub connected: bool,
    }
}

const CAMPAIGN_SUMMARY_SELECT: &str = "select p.id, p.name, p.active, p.timezone, \
    (select count(*) from conversations c where c.campaign_id = p.id and c.is_open) as open_conversations, \
    (select count(*) from campaign_members m join users u on u.id = m.user_id \
       where m.campaign_id = p.id and u.role = 'agent' and u.active) as agents, \
    (select count(*) from campaign_members m join users u on u.id = m.user_id \
       where m.campaign_id = p.id and u.role = 'admin' and u.active) as admins, \
    (select count(*) from channels h where h.campaign_id = p.id and h.active) as channels \
    from campaigns p where 1 = 1";

/// Campañas: by name (`campaigns_active_name_idx`, or the unique name key).
const CAMPAIGNS_BY_NAME: Keyset = Keyset {
    columns: &["p.name_key", "p.id"],
    lookup: Some("select name_key from campaigns where id = "),
    descending: false,
};

/// A campaign's channels, oldest first (`channels_campaign_created_idx`).
pub(super) const CHANNELS: ChildList = ChildList {
    select: "select id, kind, name, active, created_at from channels where campaign_id = ",
    keyset: Keyset {
        columns: &["created_at", "id"],
        lookup: Some("select created_at from channels where id = "),
        descending: false,
    },
};

/// A campaign's integration tokens, newest first
/// (`integration_tokens_campaign_created_idx`).
pub(super) const TOKENS: ChildList = ChildList {
    select: "select id, name, created_at, revoked_at from integration_tokens where campaign_id = ",
    keyset: Keyset {
        columns: &["created_at", "id"],
        lookup: Some("select created_at from integration_tokens where id = "),
        descending: true,
    },
};

/// A campaign's Administradores and Agentes, by name.
const MEMBERS: ChildList = ChildList {
    select: "select u.id, u.name, u.email, u.role, u.active, u.connected from users u \
             join campaign_members m on m.user_id = u.id where m.campaign_id = ",
    keyset: USERS_BY_NAME,
};

fn yes_no(active: bool) -> &'static str {
    if active { "activo" } else { "inactivo" }
}

/// A channel kind's label, or the stored text if it is not a known kind.
fn kind_label(kind: &str) -> String {
    ChannelKind::parse(kind).map_or_else(|| kind.to_owned(), |k| k.label().to_owned())
}

/// The smallest string greater than every string that starts with `prefix`,
/// in code point order (which is UTF-8 byte order, the order both backends
/// compare the picker's keys in); `None` when there is none.
fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Appends ` and column starts with prefix`, as a range an index serves.
/// A macro so it expands per backend's query builder; it only appends.
macro_rules! push_prefix {
    ($qb:expr, $column:expr, $prefix:expr) => {{
        let qb = $qb;
        let prefix: &str = $prefix;
        qb.push(format!(" and {} >= ", $column));
        qb.push_bind(prefix.to_owned());
        if let Some(end) = prefix_successor(prefix) {
            qb.push(format!(" and {} < ", $column));
            qb.push_bind(end);
        }
    }};
}

/// Appends the member picker's query: active Administradores and Agentes
/// not in the campaign whose folded name starts with `name` (`by_name`,
/// walking `users_name_key_idx`) or, failing that, whose e-mail starts with
/// `email` (`by_email`, walking the unique e-mail index), each arm cut to a
/// page in its own index order, merged by the key that matched, then id.
/// An empty `name` lists everyone by name. A macro so it expands per
/// backend's query builder; it only appends.
macro_rules! push_candidates {
    ($qb:expr, $campaign:expr, $name:expr, $email:expr, $after:expr) => {{
        let qb = $qb;
        let name: &str = $name;
        let email: &str = $email;
        let after: &Option<(String, Uuid)> = $after;
        let rules = |qb: &mut sqlx::QueryBuilder<_>| {
            qb.push(
                " and u.role in ('admin', 'agent') and u.active and not exists \
                 (select 1 from campaign_members m where m.user_id = u.id and m.campaign_id = ",
            );
            qb.push_bind($campaign);
            qb.push(")");
        };
        qb.push(
            "select id, name, email, role, active, connected from (select * from (\
             select u.id, u.name, u.email, u.role, u.active, u.connected, u.name_key as match_key \
             from users u where 1 = 1",
        );
        if !name.is_empty() {
            push_prefix!(&mut *qb, "u.name_key", name);
        }
        if let Some((key, id)) = after {
            qb.push(" and (u.name_key, u.id) > (");
            qb.push_bind(key.clone());
            qb.push(", ");
            qb.push_bind(*id);
            qb.push(")");
        }
        rules(&mut *qb);
        qb.push(" order by u.name_key, u.id limit ");
        qb.push_bind(PICKER_PAGE_SIZE + 1);
        qb.push(") as by_name");
        if !name.is_empty() && !email.is_empty() {
            qb.push(
                " union all select * from (\
                 select u.id, u.name, u.email, u.role, u.active, u.connected, u.email as match_key \
                 from users u where 1 = 1",
            );
            push_prefix!(&mut *qb, "u.email", email);
            // Whoever the name arm matches is listed there, once.
            qb.push(" and not (u.name_key >= ");
            qb.push_bind(name.to_owned());
            if let Some(end) = prefix_successor(name) {
                qb.push(" and u.name_key < ");
                qb.push_bind(end);
            }
            qb.push(")");
            if let Some((key, id)) = after {
                qb.push(" and (u.email, u.id) > (");
                qb.push_bind(key.clone());
                qb.push(", ");
                qb.push_bind(*id);
                qb.push(")");
            }
            rules(&mut *qb);
            // E-mails are unique: their order alone is the arm's key order.
            qb.push(" order by u.email limit ");
            qb.push_bind(PICKER_PAGE_SIZE + 1);
            qb.push(") as by_email");
        }
        qb.push(") as found order by match_key, id limit ");
        qb.push_bind(PICKER_PAGE_SIZE + 1);
    }};
}

impl super::Store {
    /// One page of campaigns by name; `active` filters by state.
    pub async fn campaigns_page(
        &self,
        active: Option<bool>,
        cursor: Option<PageCursor>,
    ) -> StoreResult<AdminPage<CampaignSummary>> {
        let rows: Vec<CampaignSummary> = with_read!(self, |pool| {
            let mut qb = sqlx::QueryBuilder::new(CAMPAIGN_SUMMARY_SELECT);
            if let Some(active) = active {
                qb.push(" and p.active = ");
                qb.push_bind(active);
            }
            CAMPAIGNS_BY_NAME.push_page(&mut qb, cursor, ADMIN_PAGE_SIZE);
            qb.build_query_as().fetch_all(pool).await?
        });
        Ok(AdminPage::from_fetched(rows, cursor))
    }

    /// One campaign.
    pub async fn campaign(&self, id: Uuid) -> StoreResult<Option<CampaignRecord>> {
        Ok(with_read!(self, |pool| {
            sqlx::query_as("select id, name, active, timezone, stale_after_minutes from campaigns where id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Every campaign (active first, then by name), for pickers and filters.
    pub async fn all_campaigns(&self) -> StoreResult<Vec<CampaignRecord>> {
        Ok(with_read!(self, |pool| {
            sqlx::query_as("select id, name, active, timezone, stale_after_minutes from campaigns order by name_key, id")
                .fetch_all(pool)
                .await?
        }))
    }

    /// The counts shown on a campaign's page.
    pub async fn campaign_summary(&self, id: Uuid) -> StoreResult<Option<CampaignSummary>> {
        Ok(with_read!(self, |pool| {
            let mut qb = sqlx::QueryBuilder::new(CAMPAIGN_SUMMARY_SELECT);
            qb.push(" and p.id = ");
            qb.push_bind(id);
            qb.build_query_as().fetch_optional(pool).await?
        }))
    }

    /// Creates a campaign (active, closed every day until its schedule is set).
    pub async fn create_campaign(
        &self,
        actor: Uuid,
        name: &Name,
        timezone: &str,
        now: Ts,
    ) -> AdminResult<Uuid> {
        let id = Uuid::now_v7();
        admin_write!(self, now, None, |tx| {
            sqlx::query(
                "insert into campaigns (id, name, name_key, active, timezone, created_at, updated_at) \
                 values ($1, $2, $3, true, $4, $5, $5)",
            )
            .bind(id)
            .bind(name.as_str())
            .bind(name.key())
            .bind(timezone)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(duplicate)?;
            let summary = format!(
                "Campaña «{}» creada (zona horaria {timezone})",
                name.as_str()
            );
            Ok(Written::Changed(
                id,
                AuditEntry::by(actor, AuditAction::CampaignCreate, id, Some(id), summary),
            ))
        })
    }

    /// Renames a campaign, changes its time zone and/or its Rezagadas
    /// threshold (`stale_after_minutes`, already in
    /// [`crate::domain::admin::STALE_AFTER_MINUTES`]); `Ok(false)` when
    /// nothing changed (and nothing is written).
    pub async fn update_campaign(
        &self,
        actor: Uuid,
        id: Uuid,
        name: &Name,
        timezone: &str,
        stale_after_minutes: i64,
        now: Ts,
    ) -> AdminResult<bool> {
        admin_write!(self, now, None, |tx| {
            let (old_name, old_tz, old_stale): (String, String, i64) = sqlx::query_as(
                "select name, timezone, stale_after_minutes from campaigns where id = $1",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(Refusal::NotFound)?;
            let mut changes = Vec::new();
            if old_name != name.as_str() {
                changes.push(format!("nombre «{old_name}» → «{}»", name.as_str()));
            }
            if old_tz != timezone {
                changes.push(format!("zona horaria {old_tz} → {timezone}"));
            }
            if old_stale != stale_after_minutes {
                changes.push(format!(
                    "rezagada tras {old_stale} → {stale_after_minutes} min sin actividad"
                ));
            }
            if changes.is_empty() {
                return Ok(Written::Unchanged(false));
            }
            sqlx::query(
                "update campaigns set name = $2, name_key = $3, timezone = $4, \
                 stale_after_minutes = $6, updated_at = $5 where id = $1",
            )
            .bind(id)
            .bind(name.as_str())
            .bind(name.key())
            .bind(timezone)
            .bind(now)
            .bind(stale_after_minutes)
            .execute(&mut *tx)
            .await
            .map_err(duplicate)?;
            let summary = format!("Campaña «{old_name}»: {}", changes.join("; "));
            Ok(Written::Changed(
                true,
                AuditEntry::by(actor, AuditAction::CampaignUpdate, id, Some(id), summary),
            ))
        })
    }

    /// Deactivates or reactivates a campaign. Its Administradores lose (or
    /// regain) its conversations on their next request and live streams.
    pub async fn set_campaign_active(
        &self,
        actor: Uuid,
        id: Uuid,
        active: bool,
        now: Ts,
    ) -> AdminResult<bool> {
        let access = Event::AccessChanged { user_id: None };
        admin_write!(self, now, Some(access), |tx| {
            let (name, was): (String, bool) =
                sqlx::query_as("select name, active from campaigns where id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or(Refusal::NotFound)?;
            if was == active {
                return Ok(Written::Unchanged(false));
            }
            sqlx::query("update campaigns set active = $2, updated_at = $3 where id = $1")
                .bind(id)
                .bind(active)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let (action, verb, before, after) = if active {
                (
                    AuditAction::CampaignReactivate,
                    "reactivada",
                    "inactiva",
                    "activa",
                )
            } else {
                (
                    AuditAction::CampaignDeactivate,
                    "desactivada",
                    "activa",
                    "inactiva",
                )
            };
            let summary = format!("Campaña «{name}» {verb} (estado: {before} → {after})");
            Ok(Written::Changed(
                true,
                AuditEntry::by(actor, action, id, Some(id), summary),
            ))
        })
    }

    /// The open weekdays of a campaign's schedule, Monday first.
    pub async fn campaign_schedule(&self, id: Uuid) -> StoreResult<Vec<DayHours>> {
        let rows: Vec<(i32, String, String)> = with_read!(self, |pool| {
            sqlx::query_as(
                "select weekday, opens_at, closes_at from campaign_schedules \
                 where campaign_id = $1 order by weekday",
            )
            .bind(id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .filter_map(|(weekday, opens, closes)| {
                Some(DayHours {
                    weekday: u32::try_from(weekday).ok().filter(|d| *d < 7)?,
                    opens: parse_time(&opens)?,
                    closes: parse_time(&closes)?,
                })
            })
            .collect())
    }

    /// Replaces a campaign's weekly schedule; `Ok(false)` when it is unchanged.
    pub async fn save_schedule(
        &self,
        actor: Uuid,
        id: Uuid,
        days: &[DayHours],
        now: Ts,
    ) -> AdminResult<bool> {
        let before = self.campaign_schedule(id).await?;
        admin_write!(self, now, None, |tx| {
            let name: String = sqlx::query_scalar("select name from campaigns where id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(Refusal::NotFound)?;
            if before == days {
                return Ok(Written::Unchanged(false));
            }
            sqlx::query("delete from campaign_schedules where campaign_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            for day in days {
                sqlx::query(
                    "insert into campaign_schedules (campaign_id, weekday, opens_at, closes_at) \
                     values ($1, $2, $3, $4)",
                )
                .bind(id)
                .bind(day.weekday as i32)
                .bind(day.opens_text())
                .bind(day.closes_text())
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query("update campaigns set updated_at = $2 where id = $1")
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let summary = format!(
                "Horario de «{name}»: antes {}; ahora {}",
                describe_schedule(&before),
                describe_schedule(days)
            );
            Ok(Written::Changed(
                true,
                AuditEntry::by(actor, AuditAction::ScheduleUpdate, id, Some(id), summary),
            ))
        })
    }

    /// One page of a campaign's channels, oldest first.
    pub async fn channels_page(
        &self,
        campaign_id: Uuid,
        cursor: Option<PageCursor>,
    ) -> StoreResult<AdminPage<ChannelRecord>> {
        self.child_page(&CHANNELS, campaign_id, cursor).await
    }

    /// One channel of `campaign_id`.
    pub async fn campaign_channel(
        &self,
        campaign_id: Uuid,
        channel_id: Uuid,
    ) -> StoreResult<Option<ChannelRecord>> {
        self.child(&CHANNELS, campaign_id, channel_id).await
    }

    /// Creates a channel and returns `(id, token)`; only the token's hash is
    /// stored, so this is the only time anyone sees it.
    pub async fn create_channel(
        &self,
        actor: Uuid,
        campaign_id: Uuid,
        kind: ChannelKind,
        name: &Name,
        now: Ts,
    ) -> AdminResult<(Uuid, String)> {
        let id = Uuid::now_v7();
        let token = format!("rlv_ch_{}", crate::db::random_token());
        let hash = token_hash(&token);
        admin_write!(self, now, None, |tx| {
            let campaign: String = sqlx::query_scalar("select name from campaigns where id = $1")
                .bind(campaign_id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(Refusal::NotFound)?;
            sqlx::query(
                "insert into channels (id, campaign_id, kind, name, token_hash, active, created_at) \
                 values ($1, $2, $3, $4, $5, true, $6)",
            )
            .bind(id)
            .bind(campaign_id)
            .bind(kind.as_str())
            .bind(name.as_str())
            .bind(&hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let summary = format!(
                "Canal {} «{}» creado en «{campaign}» con un token nuevo",
                kind.label(),
                name.as_str()
            );
            Ok(Written::Changed(
                (id, token),
                AuditEntry::by(
                    actor,
                    AuditAction::ChannelCreate,
                    id,
                    Some(campaign_id),
                    summary,
                ),
            ))
        })
    }

    /// Gives a channel of `campaign_id` a new token (the old one stops
    /// working at once) and returns it.
    pub async fn rotate_channel(
        &self,
        actor: Uuid,
        campaign_id: Uuid,
        channel_id: Uuid,
        now: Ts,
    ) -> AdminResult<String> {
        let token = format!("rlv_ch_{}", crate::db::random_token());
        let hash = token_hash(&token);
        admin_write!(self, now, None, |tx| {
            let (kind, name): (String, String) = sqlx::query_as(
                "select kind, name from channels where id = $1 and campaign_id = $2",
            )
            .bind(channel_id)
            .bind(campaign_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(Refusal::NotFound)?;
            sqlx::query("update channels set token_hash = $2 where id = $1")
                .bind(channel_id)
                .bind(&hash)
                .execute(&mut *tx)
                .await?;
            let summary = format!(
                "Token del canal {} «{name}» rotado; el anterior dejó de funcionar",
                kind_label(&kind)
            );
            Ok(Written::Changed(
                token,
                AuditEntry::by(
                    actor,
                    AuditAction::ChannelRotate,
                    channel_id,
                    Some(campaign_id),
                    summary,
                ),
            ))
        })
    }

    /// Deactivates or reactivates a channel of `campaign_id`.
    pub async fn set_channel_active(
        &self,
        actor: Uuid,
        campaign_id: Uuid,
        channel_id: Uuid,
        active: bool,
        now: Ts,
    ) -> AdminResult<bool> {
        admin_write!(self, now, None, |tx| {
            let (kind, name, was): (String, String, bool) = sqlx::query_as(
                "select kind, name, active from channels where id = $1 and campaign_id = $2",
            )
            .bind(channel_id)
            .bind(campaign_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(Refusal::NotFound)?;
            if was == active {
                return Ok(Written::Unchanged(false));
            }
            sqlx::query("update channels set active = $2 where id = $1")
                .bind(channel_id)
                .bind(active)
                .execute(&mut *tx)
                .await?;
            let (action, verb) = if active {
                (AuditAction::ChannelReactivate, "reactivado")
            } else {
                (AuditAction::ChannelDeactivate, "desactivado")
            };
            let summary = format!(
                "Canal {} «{name}» {verb} (estado: {} → {})",
                kind_label(&kind),
                yes_no(!active),
                yes_no(active)
            );
            Ok(Written::Changed(
                true,
                AuditEntry::by(actor, action, channel_id, Some(campaign_id), summary),
            ))
        })
    }

    /// One page of a campaign's integration tokens, newest first.
    pub async fn tokens_page(
        &self,
        campaign_id: Uuid,
        cursor: Option<PageCursor>,
    ) -> StoreResult<AdminPage<TokenRecord>> {
        self.child_page(&TOKENS, campaign_id, cursor).await
    }

    /// One integration token of `campaign_id`.
    pub async fn campaign_token(
        &self,
        campaign_id: Uuid,
        token_id: Uuid,
    ) -> StoreResult<Option<TokenRecord>> {
        self.child(&TOKENS, campaign_id, token_id).await
    }

    /// Creates an integration token for a campaign and returns `(id, token)`;
    /// only its hash is stored.
    pub async fn create_campaign_token(
        &self,
        actor: Uuid,
        campaign_id: Uuid,
        name: &Name,
        now: Ts,
    ) -> AdminResult<(Uuid, String)> {
        let id = Uuid::now_v7();
        let token = format!("rlv_{}", crate::db::random_token());
        let hash = token_hash(&token);
        admin_write!(self, now, None, |tx| {
            let campaign: String = sqlx::query_scalar("select name from campaigns where id = $1")
                .bind(campaign_id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(Refusal::NotFound)?;
            sqlx::query(
                "insert into integration_tokens (id, name, token_hash, created_at, revoked_at, campaign_id) \
                 values ($1, $2, $3, $4, null, $5)",
            )
            .bind(id)
            .bind(name.as_str())
            .bind(&hash)
            .bind(now)
            .bind(campaign_id)
            .execute(&mut *tx)
            .await?;
            let summary = format!(
                "Token de integración «{}» creado para «{campaign}»",
                name.as_str()
            );
            Ok(Written::Changed(
                (id, token),
                AuditEntry::by(
                    actor,
                    AuditAction::TokenCreate,
                    id,
                    Some(campaign_id),
                    summary,
                ),
            ))
        })
    }

    /// Revokes an integration token of `campaign_id`; `Ok(false)` if it
    /// already was.
    pub async fn revoke_campaign_token(
        &self,
        actor: Uuid,
        campaign_id: Uuid,
        token_id: Uuid,
        now: Ts,
    ) -> AdminResult<bool> {
        admin_write!(self, now, None, |tx| {
            let (name, revoked): (String, bool) = sqlx::query_as(
                "select name, revoked_at is not null from integration_tokens \
                 where id = $1 and campaign_id = $2",
            )
            .bind(token_id)
            .bind(campaign_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(Refusal::NotFound)?;
            if revoked {
                return Ok(Written::Unchanged(false));
            }
            sqlx::query("update integration_tokens set revoked_at = $2 where id = $1")
                .bind(token_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let summary = format!("Token de integración «{name}» revocado");
            Ok(Written::Changed(
                true,
                AuditEntry::by(
                    actor,
                    AuditAction::TokenRevoke,
                    token_id,
                    Some(campaign_id),
                    summary,
                ),
            ))
        })
    }

    /// One page of a campaign's Administradores and Agentes, by name.
    pub async fn members_page(
        &self,
        campaign_id: Uuid,
        cursor: Option<PageCursor>,
    ) -> StoreResult<AdminPage<MemberRow>> {
        self.child_page(&MEMBERS, campaign_id, cursor).await
    }

    /// One page of the member picker: active Administradores and Agentes not
    /// yet in the campaign whose name (case and accents ignored) or e-mail
    /// starts with `search`, by the text that matched; after the candidate
    /// `after` when given (the page's "más resultados"). Both are index
    /// ranges read a page at a time, however many users there are.
    pub async fn member_candidates(
        &self,
        campaign_id: Uuid,
        search: &str,
        after: Option<Uuid>,
    ) -> StoreResult<AdminPage<MemberRow>> {
        let name = fold(search);
        let email = search.trim().to_lowercase();
        // The cursor's key is the text it matched by, as the query orders.
        let after = match after {
            None => None,
            Some(id) => {
                let keys: Option<(String, String)> = with_read!(self, |pool| {
                    sqlx::query_as("select name_key, email from users where id = $1")
                        .bind(id)
                        .fetch_optional(pool)
                        .await?
                });
                let Some((name_key, user_email)) = keys else {
                    return Ok(AdminPage::from_fetched(Vec::new(), None::<PageCursor>));
                };
                let key = if name_key.starts_with(&name) {
                    name_key
                } else {
                    user_email
                };
                Some((key, id))
            }
        };
        let rows: Vec<MemberRow> = with_read!(self, |pool| {
            let mut qb = sqlx::QueryBuilder::new("");
            push_candidates!(&mut qb, campaign_id, &name, &email, &after);
            qb.build_query_as().fetch_all(pool).await?
        });
        let cursor = after.map(|(_, id)| PageCursor::After(id));
        Ok(AdminPage::from_fetched_sized(
            rows,
            cursor,
            PICKER_PAGE_SIZE,
        ))
    }

    /// Assigns an Administrador or Agente to a campaign; `Ok(false)` if
    /// already assigned. Takes effect on the user's next request.
    pub async fn add_member(
        &self,
        actor: Uuid,
        campaign_id: Uuid,
        user_id: Uuid,
        now: Ts,
    ) -> AdminResult<bool> {
        self.change_membership(actor, campaign_id, user_id, true, now)
            .await
    }

    /// Removes a user from a campaign; `Ok(false)` if not assigned.
    pub async fn remove_member(
        &self,
        actor: Uuid,
        campaign_id: Uuid,
        user_id: Uuid,
        now: Ts,
    ) -> AdminResult<bool> {
        self.change_membership(actor, campaign_id, user_id, false, now)
            .await
    }

    async fn change_membership(
        &self,
        actor: Uuid,
        campaign_id: Uuid,
        user_id: Uuid,
        add: bool,
        now: Ts,
    ) -> AdminResult<bool> {
        let access = Event::AccessChanged {
            user_id: Some(user_id),
        };
        admin_write!(self, now, Some(access), |tx| {
            let campaign: Option<String> =
                sqlx::query_scalar("select name from campaigns where id = $1")
                    .bind(campaign_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let user: Option<(String, String)> =
                sqlx::query_as("select name, role from users where id = $1")
                    .bind(user_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let (Some(campaign), Some((name, role))) = (campaign, user) else {
                return Err(Refusal::NotFound.into());
            };
            if add && role == Role::SuperAdmin.as_str() {
                return Err(Refusal::Invalid(
                    "Un Super Administrador ya tiene acceso a todas las campañas.".into(),
                )
                .into());
            }
            let changed = if add {
                sqlx::query(
                    "insert into campaign_members (campaign_id, user_id, created_at) \
                     values ($1, $2, $3) on conflict (campaign_id, user_id) do nothing",
                )
                .bind(campaign_id)
                .bind(user_id)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
            } else {
                sqlx::query("delete from campaign_members where campaign_id = $1 and user_id = $2")
                    .bind(campaign_id)
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
            };
            if changed == 0 {
                return Ok(Written::Unchanged(false));
            }
            let label = Role::parse(&role).map_or("Usuario", Role::label);
            let (action, summary) = if add {
                (
                    AuditAction::MemberAdd,
                    format!("{label} «{name}» asignado a la campaña «{campaign}»"),
                )
            } else {
                (
                    AuditAction::MemberRemove,
                    format!("{label} «{name}» quitado de la campaña «{campaign}»"),
                )
            };
            Ok(Written::Changed(
                true,
                AuditEntry::by(actor, action, user_id, Some(campaign_id), summary),
            ))
        })
    }
}

/// The queries [`explain_admin_lists`](super::Store::explain_admin_lists)
/// shows, after `$prefix`, each at a later page. A macro so it expands per
/// backend; it evaluates to the builders.
macro_rules! admin_list_queries {
    ($prefix:expr, $campaign:expr, $row:expr, $search:expr) => {{
        let (prefix, campaign, row): (&str, Uuid, Uuid) = ($prefix, $campaign, $row);
        let later = Some(PageCursor::After(row));
        let mut subcategories = sqlx::QueryBuilder::new(prefix);
        push_subcategories!(&mut subcategories, [row, campaign]);
        let mut picker = sqlx::QueryBuilder::new(prefix);
        let name = fold($search);
        let email = $search.to_lowercase();
        push_candidates!(
            &mut picker,
            campaign,
            &name,
            &email,
            &Some((name.clone(), row))
        );
        vec![
            (
                "categories",
                CATEGORIES.query(prefix, campaign, Some(PageCursor::After(50))),
            ),
            ("subcategories of a page", subcategories),
            ("channels", CHANNELS.query(prefix, campaign, later)),
            ("tokens", TOKENS.query(prefix, campaign, later)),
            ("member picker", picker),
        ]
    }};
}

impl super::Store {
    /// The database's plans for the administration lists paged by
    /// `0008_admin_paging.sql` (a campaign's categories with their
    /// sub-categories, channels, integration tokens, and the member picker
    /// searching `search`), each at a later page, one line per step: built
    /// by the code that serves them, so the plan a test checks is the plan
    /// that serves. `EXPLAIN QUERY PLAN` on SQLite, steps indented under
    /// their parent; `EXPLAIN` with sequential scans discouraged on
    /// PostgreSQL, so a small table still shows whether an index *can*
    /// serve the query.
    pub async fn explain_admin_lists(
        &self,
        campaign_id: Uuid,
        row: Uuid,
        search: &str,
    ) -> StoreResult<Vec<(&'static str, Vec<String>)>> {
        let mut plans = Vec::new();
        match self {
            super::Store::Sqlite(pools) => {
                let queries = admin_list_queries!("explain query plan ", campaign_id, row, search);
                for (name, mut qb) in queries {
                    let steps: Vec<(i64, i64, i64, String)> =
                        qb.build_query_as().fetch_all(&pools.read).await?;
                    let mut depth: HashMap<i64, usize> = HashMap::new();
                    let lines = steps
                        .into_iter()
                        .map(|(id, parent, _, detail)| {
                            let d = depth.get(&parent).map_or(0, |p| p + 1);
                            depth.insert(id, d);
                            format!("{}{detail}", "  ".repeat(d))
                        })
                        .collect();
                    plans.push((name, lines));
                }
            }
            super::Store::Postgres(pg) => {
                let mut conn = pg.pool.acquire().await?;
                sqlx::query("set enable_seqscan = off")
                    .execute(&mut *conn)
                    .await?;
                let mut failed = None;
                for (name, mut qb) in admin_list_queries!("explain ", campaign_id, row, search) {
                    match qb.build_query_scalar().fetch_all(&mut *conn).await {
                        Ok(lines) => plans.push((name, lines)),
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
                // The connection goes back to the pool as it came.
                sqlx::query("reset enable_seqscan")
                    .execute(&mut *conn)
                    .await?;
                if let Some(e) = failed {
                    return Err(e.into());
                }
            }
        }
        Ok(plans)
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_successor;

    #[test]
    fn a_prefix_range_ends_at_the_next_string_after_every_extension() {
        assert_eq!(prefix_successor("ana").as_deref(), Some("anb"));
        assert_eq!(prefix_successor("mu\u{f1}").as_deref(), Some("mu\u{f2}"));
        // Past the last code point the range continues from the character before.
        assert_eq!(prefix_successor("a\u{10ffff}").as_deref(), Some("b"));
        assert_eq!(prefix_successor("\u{10ffff}"), None);
        // Surrogates are not characters: the next one after U+D7FF is U+E000.
        assert_eq!(prefix_successor("\u{d7ff}").as_deref(), Some("\u{e000}"));
    }
}
