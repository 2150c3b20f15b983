//! Campaign administration: campaigns, their weekly schedule, channels and
//! their tokens, integration tokens, and assigned Administradores and Agentes.
//!
//! Every write is one transaction that also writes its audit row; a write
//! that changes who may see what (a campaign's active flag, a membership)
//! also announces an access change inside the transaction and publishes it
//! after commit, so open live streams re-read their viewer's scope.

use uuid::Uuid;

use super::audit::{ADMIN_PAGE_SIZE, AdminPage, AdminTx, AuditEntry, PageCursor};
use super::{NotifyInTx, StoreResult, Ts, token_hash, with_read, with_write};
use crate::domain::admin::{AuditAction, DayHours, Name, describe_schedule, parse_time};
use crate::domain::{ChannelKind, Role};
use crate::live::Event;

/// Why an administrative write did not happen (nothing was written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The object does not exist (or not under the given parent).
    NotFound,
    /// A unique name or e-mail is taken (also when another write won a race).
    Duplicate,
    /// The change would leave no active Super Administrador.
    LastSuperAdmin,
    /// Any other rule, with its Spanish message.
    Invalid(String),
}

/// The outcome of an administrative write.
pub type AdminResult<T> = StoreResult<Result<T, Refusal>>;

/// Most channels one campaign may have.
pub const MAX_CHANNELS: i64 = 50;
/// Most unrevoked integration tokens one campaign may have.
pub const MAX_TOKENS: i64 = 20;
/// Candidates the member picker shows at once.
const PICKER_LIMIT: usize = 20;

pub(crate) fn is_unique(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// A campaign in the Campañas list, with its counts.
#[derive(Debug, Clone, sqlx::FromRow)]
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

/// A campaign as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CampaignRecord {
    pub id: Uuid,
    pub name: String,
    pub active: bool,
    pub timezone: String,
}

/// A channel of a campaign (its token is never readable).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChannelRecord {
    pub id: Uuid,
    #[sqlx(try_from = "String")]
    pub kind: ChannelKind,
    pub name: String,
    pub active: bool,
    pub created_at: Ts,
}

/// An integration token of a campaign (only its hash is stored).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenRecord {
    pub id: Uuid,
    pub name: String,
    pub created_at: Ts,
    pub revoked_at: Option<Ts>,
}

/// A user assigned to a campaign, or a candidate to assign.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemberRow {
    pub id: Uuid,
    pub name: String,
    pub email: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub active: bool,
    pub connected: bool,
}

const CAMPAIGN_SUMMARY_SELECT: &str = "select p.id, p.name, p.active, p.timezone, \
    (select count(*) from conversations c where c.campaign_id = p.id and c.is_open) as open_conversations, \
    (select count(*) from campaign_members m join users u on u.id = m.user_id \
       where m.campaign_id = p.id and u.role = 'agent' and u.active) as agents, \
    (select count(*) from campaign_members m join users u on u.id = m.user_id \
       where m.campaign_id = p.id and u.role = 'admin' and u.active) as admins, \
    (select count(*) from channels h where h.campaign_id = p.id and h.active) as channels \
    from campaigns p where 1 = 1";

fn yes_no(active: bool) -> &'static str {
    if active { "activo" } else { "inactivo" }
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
            let (op, order) = match cursor {
                Some(PageCursor::Before(_)) => (" < ", " order by p.name_key desc, p.id desc"),
                _ => (" > ", " order by p.name_key asc, p.id asc"),
            };
            if let Some(PageCursor::After(id) | PageCursor::Before(id)) = cursor {
                qb.push(" and (p.name_key, p.id)");
                qb.push(op);
                qb.push("((select name_key from campaigns where id = ");
                qb.push_bind(id);
                qb.push("), ");
                qb.push_bind(id);
                qb.push(")");
            }
            qb.push(order);
            qb.push(" limit ");
            qb.push_bind(ADMIN_PAGE_SIZE + 1);
            qb.build_query_as().fetch_all(pool).await?
        });
        Ok(AdminPage::from_fetched(rows, cursor))
    }

    /// One campaign.
    pub async fn campaign(&self, id: Uuid) -> StoreResult<Option<CampaignRecord>> {
        Ok(with_read!(self, |pool| {
            sqlx::query_as("select id, name, active, timezone from campaigns where id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Every campaign (active first, then by name), for pickers and filters.
    pub async fn all_campaigns(&self) -> StoreResult<Vec<CampaignRecord>> {
        Ok(with_read!(self, |pool| {
            sqlx::query_as("select id, name, active, timezone from campaigns order by name_key, id")
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
        let entry = AuditEntry {
            actor_id: Some(actor),
            action: AuditAction::CampaignCreate,
            object_id: Some(id),
            campaign_id: Some(id),
            summary: format!(
                "Campaña «{}» creada (zona horaria {timezone})",
                name.as_str()
            ),
        };
        Ok(with_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            let inserted = sqlx::query(
                "insert into campaigns (id, name, name_key, active, timezone, created_at, updated_at) \
                 values ($1, $2, $3, true, $4, $5, $5)",
            )
            .bind(id)
            .bind(name.as_str())
            .bind(name.key())
            .bind(timezone)
            .bind(now)
            .execute(&mut *tx)
            .await;
            match inserted {
                Err(e) if is_unique(&e) => Err(Refusal::Duplicate),
                Err(e) => return Err(e.into()),
                Ok(_) => {
                    tx.audit(now, &entry).await?;
                    tx.commit().await?;
                    Ok(id)
                }
            }
        }))
    }

    /// Renames a campaign and/or changes its time zone; `Ok(false)` when
    /// nothing changed (and nothing is written).
    pub async fn update_campaign(
        &self,
        actor: Uuid,
        id: Uuid,
        name: &Name,
        timezone: &str,
        now: Ts,
    ) -> AdminResult<bool> {
        Ok(with_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            let current: Option<(String, String)> =
                sqlx::query_as("select name, timezone from campaigns where id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some((old_name, old_tz)) = current else {
                return Ok(Err(Refusal::NotFound));
            };
            let mut changes = Vec::new();
            if old_name != name.as_str() {
                changes.push(format!("nombre «{old_name}» → «{}»", name.as_str()));
            }
            if old_tz != timezone {
                changes.push(format!("zona horaria {old_tz} → {timezone}"));
            }
            if changes.is_empty() {
                return Ok(Ok(false));
            }
            let updated = sqlx::query(
                "update campaigns set name = $2, name_key = $3, timezone = $4, updated_at = $5 where id = $1",
            )
            .bind(id)
            .bind(name.as_str())
            .bind(name.key())
            .bind(timezone)
            .bind(now)
            .execute(&mut *tx)
            .await;
            match updated {
                Err(e) if is_unique(&e) => Err(Refusal::Duplicate),
                Err(e) => return Err(e.into()),
                Ok(_) => {
                    let entry = AuditEntry {
                        actor_id: Some(actor),
                        action: AuditAction::CampaignUpdate,
                        object_id: Some(id),
                        campaign_id: Some(id),
                        summary: format!("Campaña «{old_name}»: {}", changes.join("; ")),
                    };
                    tx.audit(now, &entry).await?;
                    tx.commit().await?;
                    Ok(true)
                }
            }
        }))
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
        let event = Event::AccessChanged { user_id: None };
        let notification = self.feed().notification(event);
        let outcome: Result<bool, Refusal> = with_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            let current: Option<(String, bool)> =
                sqlx::query_as("select name, active from campaigns where id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            match current {
                None => Err(Refusal::NotFound),
                Some((_, was)) if was == active => Ok(false),
                Some((name, _)) => {
                    sqlx::query("update campaigns set active = $2, updated_at = $3 where id = $1")
                        .bind(id)
                        .bind(active)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    let (action, verb) = if active {
                        (AuditAction::CampaignReactivate, "reactivada")
                    } else {
                        (AuditAction::CampaignDeactivate, "desactivada")
                    };
                    let entry = AuditEntry {
                        actor_id: Some(actor),
                        action,
                        object_id: Some(id),
                        campaign_id: Some(id),
                        summary: format!(
                            "Campaña «{name}» {verb} (estado: {} → {})",
                            if active { "inactiva" } else { "activa" },
                            if active { "activa" } else { "inactiva" }
                        ),
                    };
                    tx.audit(now, &entry).await?;
                    tx.notify_change(&notification).await?;
                    tx.commit().await?;
                    Ok(true)
                }
            }
        });
        if outcome == Ok(true) {
            self.publish(event);
        }
        Ok(outcome)
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
        Ok(with_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            let name: Option<String> =
                sqlx::query_scalar("select name from campaigns where id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(name) = name else {
                return Ok(Err(Refusal::NotFound));
            };
            if before == days {
                return Ok(Ok(false));
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
            let entry = AuditEntry {
                actor_id: Some(actor),
                action: AuditAction::ScheduleUpdate,
                object_id: Some(id),
                campaign_id: Some(id),
                summary: format!(
                    "Horario de «{name}»: antes {}; ahora {}",
                    describe_schedule(&before),
                    describe_schedule(days)
                ),
            };
            tx.audit(now, &entry).await?;
            tx.commit().await?;
            Ok(true)
        }))
    }

    /// The channels of a campaign, oldest first.
    pub async fn campaign_channels(&self, campaign_id: Uuid) -> StoreResult<Vec<ChannelRecord>> {
        Ok(with_read!(self, |pool| {
            sqlx::query_as(
                "select id, kind, name, active, created_at from channels \
                 where campaign_id = $1 order by created_at, id",
            )
            .bind(campaign_id)
            .fetch_all(pool)
            .await?
        }))
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
        let token = format!("rlv_ch_{}", crate::auth::random_token());
        let hash = token_hash(&token);
        Ok(with_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            let campaign: Option<String> =
                sqlx::query_scalar("select name from campaigns where id = $1")
                    .bind(campaign_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(campaign) = campaign else {
                return Ok(Err(Refusal::NotFound));
            };
            let count: i64 =
                sqlx::query_scalar("select count(*) from channels where campaign_id = $1")
                    .bind(campaign_id)
                    .fetch_one(&mut *tx)
                    .await?;
            if count >= MAX_CHANNELS {
                return Ok(Err(Refusal::Invalid(format!(
                    "Una campaña admite hasta {MAX_CHANNELS} canales."
                ))));
            }
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
            let entry = AuditEntry {
                actor_id: Some(actor),
                action: AuditAction::ChannelCreate,
                object_id: Some(id),
                campaign_id: Some(campaign_id),
                summary: format!(
                    "Canal {} «{}» creado en «{campaign}» con un token nuevo",
                    kind.label(),
                    name.as_str()
                ),
            };
            tx.audit(now, &entry).await?;
            tx.commit().await?;
            Ok((id, token))
        }))
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
        let token = format!("rlv_ch_{}", crate::auth::random_token());
        let hash = token_hash(&token);
        Ok(with_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            let channel: Option<(String, String)> = sqlx::query_as(
                "select kind, name from channels where id = $1 and campaign_id = $2",
            )
            .bind(channel_id)
            .bind(campaign_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((kind, name)) = channel else {
                return Ok(Err(Refusal::NotFound));
            };
            sqlx::query("update channels set token_hash = $2 where id = $1")
                .bind(channel_id)
                .bind(&hash)
                .execute(&mut *tx)
                .await?;
            let kind = ChannelKind::parse(&kind).map_or(kind.clone(), |k| k.label().to_owned());
            let entry = AuditEntry {
                actor_id: Some(actor),
                action: AuditAction::ChannelRotate,
                object_id: Some(channel_id),
                campaign_id: Some(campaign_id),
                summary: format!(
                    "Token del canal {kind} «{name}» rotado; el anterior dejó de funcionar"
                ),
            };
            tx.audit(now, &entry).await?;
            tx.commit().await?;
            Ok(token)
        }))
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
        Ok(with_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            let channel: Option<(String, String, bool)> = sqlx::query_as(
                "select kind, name, active from channels where id = $1 and campaign_id = $2",
            )
            .bind(channel_id)
            .bind(campaign_id)
            .fetch_optional(&mut *tx)
            .await?;
            match channel {
                None => Err(Refusal::NotFound),
                Some((_, _, was)) if was == active => Ok(false),
                Some((kind, name, _)) => {
                    sqlx::query("update channels set active = $2 where id = $1")
                        .bind(channel_id)
                        .bind(active)
                        .execute(&mut *tx)
                        .await?;
                    let kind =
                        ChannelKind::parse(&kind).map_or(kind.clone(), |k| k.label().to_owned());
                    let (action, verb) = if active {
                        (AuditAction::ChannelReactivate, "reactivado")
                    } else {
                        (AuditAction::ChannelDeactivate, "desactivado")
                    };
                    let entry = AuditEntry {
                        actor_id: Some(actor),
                        action,
                        object_id: Some(channel_id),
                        campaign_id: Some(campaign_id),
                        summary: format!(
                            "Canal {kind} «{name}» {verb} (estado: {} → {})",
                            yes_no(!active),
                            yes_no(active)
                        ),
                    };
                    tx.audit(now, &entry).await?;
                    tx.commit().await?;
                    Ok(true)
                }
            }
        }))
    }

    /// The integration tokens of a campaign, newest first.
    pub async fn campaign_tokens(&self, campaign_id: Uuid) -> StoreResult<Vec<TokenRecord>> {
        Ok(with_read!(self, |pool| {
            sqlx::query_as(
                "select id, name, created_at, revoked_at from integration_tokens \
                 where campaign_id = $1 order by created_at desc, id desc",
            )
            .bind(campaign_id)
            .fetch_all(pool)
            .await?
        }))
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
        let token = format!("rlv_{}", crate::auth::random_token());
        let hash = token_hash(&token);
        Ok(with_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            let campaign: Option<String> =
                sqlx::query_scalar("select name from campaigns where id = $1")
                    .bind(campaign_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(campaign) = campaign else {
                return Ok(Err(Refusal::NotFound));
            };
            let count: i64 = sqlx::query_scalar(
                "select count(*) from integration_tokens where campaign_id = $1 and revoked_at is null",
            )
            .bind(campaign_id)
            .fetch_one(&mut *tx)
            .await?;
            if count >= MAX_TOKENS {
                return Ok(Err(Refusal::Invalid(format!(
                    "Una campaña admite hasta {MAX_TOKENS} tokens vigentes; revoca alguno primero."
                ))));
            }
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
            let entry = AuditEntry {
                actor_id: Some(actor),
                action: AuditAction::TokenCreate,
                object_id: Some(id),
                campaign_id: Some(campaign_id),
                summary: format!(
                    "Token de integración «{}» creado para «{campaign}»",
                    name.as_str()
                ),
            };
            tx.audit(now, &entry).await?;
            tx.commit().await?;
            Ok((id, token))
        }))
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
        Ok(with_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            let token: Option<(String, bool)> = sqlx::query_as(
                "select name, revoked_at is not null from integration_tokens \
                 where id = $1 and campaign_id = $2",
            )
            .bind(token_id)
            .bind(campaign_id)
            .fetch_optional(&mut *tx)
            .await?;
            match token {
                None => Err(Refusal::NotFound),
                Some((_, true)) => Ok(false),
                Some((name, false)) => {
                    sqlx::query("update integration_tokens set revoked_at = $2 where id = $1")
                        .bind(token_id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    let entry = AuditEntry {
                        actor_id: Some(actor),
                        action: AuditAction::TokenRevoke,
                        object_id: Some(token_id),
                        campaign_id: Some(campaign_id),
                        summary: format!("Token de integración «{name}» revocado"),
                    };
                    tx.audit(now, &entry).await?;
                    tx.commit().await?;
                    Ok(true)
                }
            }
        }))
    }

    /// One page of a campaign's Administradores and Agentes, by name.
    pub async fn members_page(
        &self,
        campaign_id: Uuid,
        cursor: Option<PageCursor>,
    ) -> StoreResult<AdminPage<MemberRow>> {
        let rows: Vec<MemberRow> = with_read!(self, |pool| {
            let mut qb = sqlx::QueryBuilder::new(
                "select u.id, u.name, u.email, u.role, u.active, u.connected from users u \
                 join campaign_members m on m.user_id = u.id where m.campaign_id = ",
            );
            qb.push_bind(campaign_id);
            let (op, order) = match cursor {
                Some(PageCursor::Before(_)) => (" < ", " order by u.name desc, u.id desc"),
                _ => (" > ", " order by u.name asc, u.id asc"),
            };
            if let Some(PageCursor::After(id) | PageCursor::Before(id)) = cursor {
                qb.push(" and (u.name, u.id)");
                qb.push(op);
                qb.push("((select name from users where id = ");
                qb.push_bind(id);
                qb.push("), ");
                qb.push_bind(id);
                qb.push(")");
            }
            qb.push(order);
            qb.push(" limit ");
            qb.push_bind(ADMIN_PAGE_SIZE + 1);
            qb.build_query_as().fetch_all(pool).await?
        });
        Ok(AdminPage::from_fetched(rows, cursor))
    }

    /// Active Administradores and Agentes not yet in the campaign whose name
    /// or e-mail contains `search` (case and accents ignored), by name.
    pub async fn member_candidates(
        &self,
        campaign_id: Uuid,
        search: &str,
    ) -> StoreResult<Vec<MemberRow>> {
        let rows: Vec<MemberRow> = with_read!(self, |pool| {
            sqlx::query_as(
                "select u.id, u.name, u.email, u.role, u.active, u.connected from users u \
                 where u.role in ('admin', 'agent') and u.active \
                 and not exists (select 1 from campaign_members m \
                   where m.user_id = u.id and m.campaign_id = $1) \
                 order by u.name, u.id limit 5000",
            )
            .bind(campaign_id)
            .fetch_all(pool)
            .await?
        });
        let wanted = crate::domain::text::fold(search);
        Ok(rows
            .into_iter()
            .filter(|u| {
                wanted.is_empty()
                    || crate::domain::text::fold(&u.name).contains(&wanted)
                    || u.email.contains(&wanted)
            })
            .take(PICKER_LIMIT)
            .collect())
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
        let event = Event::AccessChanged {
            user_id: Some(user_id),
        };
        let notification = self.feed().notification(event);
        let outcome: Result<bool, Refusal> = with_write!(self, |pool| {
            let mut tx = pool.begin().await?;
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
            match (campaign, user) {
                (Some(_), Some((_, role))) if add && role == Role::SuperAdmin.as_str() => {
                    Err(Refusal::Invalid(
                        "Un Super Administrador ya tiene acceso a todas las campañas.".into(),
                    ))
                }
                (Some(campaign), Some((name, role))) => {
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
                        sqlx::query(
                            "delete from campaign_members where campaign_id = $1 and user_id = $2",
                        )
                        .bind(campaign_id)
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                    };
                    if changed == 0 {
                        Ok(false)
                    } else {
                        let label = Role::parse(&role).map_or("Usuario", Role::label);
                        let entry = AuditEntry {
                            actor_id: Some(actor),
                            action: if add {
                                AuditAction::MemberAdd
                            } else {
                                AuditAction::MemberRemove
                            },
                            object_id: Some(user_id),
                            campaign_id: Some(campaign_id),
                            summary: if add {
                                format!("{label} «{name}» asignado a la campaña «{campaign}»")
                            } else {
                                format!("{label} «{name}» quitado de la campaña «{campaign}»")
                            },
                        };
                        tx.audit(now, &entry).await?;
                        tx.notify_change(&notification).await?;
                        tx.commit().await?;
                        Ok(true)
                    }
                }
                _ => Err(Refusal::NotFound),
            }
        });
        if outcome == Ok(true) {
            self.publish(event);
        }
        Ok(outcome)
    }
}
