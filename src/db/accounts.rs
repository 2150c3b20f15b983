//! User administration: the Usuarios list, creating and editing users with
//! their campaigns, passwords, deactivation.
//!
//! Writes that change a user's rights (role, active flag, campaigns) announce
//! an access change for that user inside their transaction and publish it
//! after commit, so the change reaches the user's next request and their
//! open live stream. The last active Super Administrador is protected inside
//! the write transaction, under a lock, so two racing writes cannot both
//! pass the check.

use uuid::Uuid;

use super::audit::{
    ADMIN_PAGE_SIZE, AdminPage, AdminResult, AuditEntry, Keyset, PageCursor, Refusal, admin_write,
    duplicate,
};
use super::row::from_row;
use super::{StoreResult, Ts, with_read};
use crate::domain::Role;
use crate::domain::admin::{AuditAction, Name};
use crate::domain::text::Email;
use crate::live::Event;

/// The Usuarios filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserFilter {
    pub role: Option<Role>,
    pub campaign_id: Option<Uuid>,
    pub active: Option<bool>,
}

from_row! {
    /// A user as the administration pages show it.
    #[derive(Debug, Clone)]
    pub struct AccountRow {
        pub id: Uuid,
        pub name: String,
        pub email: String,
        #[try_from(String)]
        pub role: Role,
        pub active: bool,
        pub has_password: bool,
    }
}

/// A row of the Usuarios list, with the names of the user's campaigns.
#[derive(Debug, Clone)]
pub struct AccountListRow {
    pub account: AccountRow,
    pub campaigns: Vec<String>,
}

/// What the user form sets.
#[derive(Debug, Clone)]
pub struct AccountInput {
    pub name: Name,
    pub email: Email,
    pub role: Role,
    /// Ignored for a Super Administrador (who sees every campaign).
    pub campaigns: Vec<Uuid>,
}

const ACCOUNT_SELECT: &str = "select u.id, u.name, u.email, u.role, u.active, \
    (u.password_hash is not null) as has_password from users u where 1 = 1";

/// Usuarios and a campaign's members: by name (`users_name_idx` and the
/// filters' indexes in `0003_admin.sql`).
pub(super) const USERS_BY_NAME: Keyset = Keyset {
    columns: &["u.name", "u.id"],
    lookup: Some("select name from users where id = "),
    descending: false,
};

/// Whether a user with `role` and `active` counts as an active Super Administrador.
fn is_active_super(role: &str, active: bool) -> bool {
    active && role == Role::SuperAdmin.as_str()
}

/// How many other Super Administradores are active (`Result<i64, _>`);
/// run under the accounts lock, so two racing writes cannot both see one.
/// A macro so it expands for either backend's transaction.
macro_rules! other_active_supers {
    ($tx:ident, $id:expr) => {
        sqlx::query_scalar::<_, i64>(
            "select count(*) from users where role = 'super_admin' and active and id <> $1",
        )
        .bind($id)
        .fetch_one(&mut *$tx)
        .await
    };
}

/// Refuses a write that would leave no active Super Administrador, given
/// how many others are active.
fn refuse_last_super(others: i64) -> Result<(), Refusal> {
    if others == 0 {
        Err(Refusal::LastSuperAdmin)
    } else {
        Ok(())
    }
}

impl super::Store {
    /// One page of users by name, filtered.
    pub async fn accounts_page(
        &self,
        filter: &UserFilter,
        cursor: Option<PageCursor>,
    ) -> StoreResult<AdminPage<AccountListRow>> {
        let rows: Vec<AccountRow> = with_read!(self, |pool| {
            let mut qb = sqlx::QueryBuilder::new(ACCOUNT_SELECT);
            if let Some(role) = filter.role {
                qb.push(" and u.role = ");
                qb.push_bind(role.as_str());
            }
            if let Some(active) = filter.active {
                qb.push(" and u.active = ");
                qb.push_bind(active);
            }
            if let Some(campaign) = filter.campaign_id {
                qb.push(
                    " and u.id in (select m.user_id from campaign_members m where m.campaign_id = ",
                );
                qb.push_bind(campaign);
                qb.push(")");
            }
            USERS_BY_NAME.push_page(&mut qb, cursor, ADMIN_PAGE_SIZE);
            qb.build_query_as().fetch_all(pool).await?
        });
        let page = AdminPage::from_fetched(rows, cursor);
        let ids: Vec<Uuid> = page.rows.iter().map(|r| r.id).collect();
        let memberships: Vec<(Uuid, String)> = if ids.is_empty() {
            Vec::new()
        } else {
            with_read!(self, |pool| {
                let mut qb = sqlx::QueryBuilder::new(
                    "select m.user_id, p.name from campaign_members m \
                     join campaigns p on p.id = m.campaign_id where m.user_id in (",
                );
                let mut list = qb.separated(", ");
                for id in &ids {
                    list.push_bind(*id);
                }
                qb.push(") order by p.name_key");
                qb.build_query_as().fetch_all(pool).await?
            })
        };
        Ok(AdminPage {
            rows: page
                .rows
                .into_iter()
                .map(|account| AccountListRow {
                    campaigns: memberships
                        .iter()
                        .filter(|(user, _)| *user == account.id)
                        .map(|(_, name)| name.clone())
                        .collect(),
                    account,
                })
                .collect(),
            has_prev: page.has_prev,
            has_next: page.has_next,
        })
    }

    /// One user with the ids of their campaigns.
    pub async fn account(&self, id: Uuid) -> StoreResult<Option<(AccountRow, Vec<Uuid>)>> {
        Ok(with_read!(self, |pool| {
            let mut qb = sqlx::QueryBuilder::new(ACCOUNT_SELECT);
            qb.push(" and u.id = ");
            qb.push_bind(id);
            let row: Option<AccountRow> = qb.build_query_as().fetch_optional(pool).await?;
            match row {
                None => None,
                Some(row) => {
                    let campaigns: Vec<Uuid> = sqlx::query_scalar(
                        "select campaign_id from campaign_members where user_id = $1",
                    )
                    .bind(id)
                    .fetch_all(pool)
                    .await?;
                    Some((row, campaigns))
                }
            }
        }))
    }

    /// Creates a user with their campaigns (and, for administrator roles,
    /// a password hash).
    pub async fn create_account(
        &self,
        actor: Uuid,
        input: &AccountInput,
        password_hash: Option<String>,
        now: Ts,
    ) -> AdminResult<Uuid> {
        let id = Uuid::now_v7();
        let campaigns = campaigns_for(input);
        admin_write!(self, now, None, |tx| {
            let mut names = Vec::new();
            for campaign in &campaigns {
                let name: Option<String> =
                    sqlx::query_scalar("select name from campaigns where id = $1")
                        .bind(*campaign)
                        .fetch_optional(&mut *tx)
                        .await?;
                names.push(name.ok_or_else(|| Refusal::Invalid(UNKNOWN_CAMPAIGN.into()))?);
            }
            sqlx::query(
                "insert into users (id, email, name, role, active, connected, password_hash, created_at, updated_at) \
                 values ($1, $2, $3, $4, true, false, $5, $6, $6)",
            )
            .bind(id)
            .bind(input.email.as_str())
            .bind(input.name.as_str())
            .bind(input.role.as_str())
            .bind(&password_hash)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(duplicate)?;
            for campaign in &campaigns {
                sqlx::query(INSERT_MEMBER)
                    .bind(*campaign)
                    .bind(id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            let mut summary = format!(
                "Usuario «{}» <{}> creado como {}",
                input.name.as_str(),
                input.email.as_str(),
                input.role.label()
            );
            if !names.is_empty() {
                summary.push_str(&format!("; campañas: {}", names.join(", ")));
            }
            if password_hash.is_some() {
                summary.push_str("; con contraseña establecida");
            }
            Ok(Written::Changed(
                id,
                AuditEntry::by(actor, AuditAction::UserCreate, id, None, summary),
            ))
        })
    }

    /// Edits a user's name, e-mail, role and campaigns; `Ok(false)` when
    /// nothing changed. Refuses to demote the last active Super Administrador.
    // long: one transaction under the accounts lock (load, refuse, apply, audit) written once inside `admin_write!` for both backends; split, each step would need the transaction of either backend.
    pub async fn update_account(
        &self,
        actor: Uuid,
        id: Uuid,
        input: &AccountInput,
        now: Ts,
    ) -> AdminResult<bool> {
        let wanted = campaigns_for(input);
        let access = Event::AccessChanged { user_id: Some(id) };
        admin_write!(self, now, Some(access), |tx| {
            tx.lock_accounts().await?;
            let (old_name, old_email, old_role, active): (String, String, String, bool) =
                sqlx::query_as("select name, email, role, active from users where id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or(Refusal::NotFound)?;
            let had: Vec<(Uuid, String)> = sqlx::query_as(
                "select p.id, p.name from campaign_members m join campaigns p on p.id = m.campaign_id \
                 where m.user_id = $1 order by p.name_key",
            )
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
            let mut added = Vec::new();
            for campaign in wanted.iter().filter(|c| !had.iter().any(|(h, _)| h == *c)) {
                let name: Option<String> =
                    sqlx::query_scalar("select name from campaigns where id = $1")
                        .bind(*campaign)
                        .fetch_optional(&mut *tx)
                        .await?;
                let name = name.ok_or_else(|| Refusal::Invalid(UNKNOWN_CAMPAIGN.into()))?;
                added.push((*campaign, name));
            }
            let removed: Vec<&(Uuid, String)> =
                had.iter().filter(|(h, _)| !wanted.contains(h)).collect();
            if is_active_super(&old_role, active) && input.role != Role::SuperAdmin {
                refuse_last_super(other_active_supers!(tx, id)?)?;
            }
            let mut changes = Vec::new();
            if old_name != input.name.as_str() {
                changes.push(format!("nombre «{old_name}» → «{}»", input.name.as_str()));
            }
            if old_email != input.email.as_str() {
                changes.push(format!("correo {old_email} → {}", input.email.as_str()));
            }
            let role_changed = old_role != input.role.as_str();
            if role_changed {
                let before = Role::parse(&old_role)
                    .map_or_else(|| old_role.clone(), |r| r.label().to_owned());
                changes.push(format!("rol {before} → {}", input.role.label()));
            }
            if !added.is_empty() {
                let names: Vec<&str> = added.iter().map(|(_, n)| n.as_str()).collect();
                changes.push(format!("campañas agregadas: {}", names.join(", ")));
            }
            if !removed.is_empty() {
                let names: Vec<&str> = removed.iter().map(|(_, n)| n.as_str()).collect();
                changes.push(format!("campañas quitadas: {}", names.join(", ")));
            }
            if changes.is_empty() {
                return Ok(Written::Unchanged(false));
            }
            sqlx::query(
                "update users set name = $2, email = $3, role = $4, updated_at = $5, \
                 password_hash = case when $4 = 'agent' then null else password_hash end \
                 where id = $1",
            )
            .bind(id)
            .bind(input.name.as_str())
            .bind(input.email.as_str())
            .bind(input.role.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(duplicate)?;
            for (campaign, _) in &added {
                sqlx::query(INSERT_MEMBER)
                    .bind(*campaign)
                    .bind(id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            for (campaign, _) in &removed {
                sqlx::query("delete from campaign_members where campaign_id = $1 and user_id = $2")
                    .bind(*campaign)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            if role_changed && input.role == Role::Agent {
                changes
                    .push("su contraseña se eliminó (los agentes no inician sesión aquí)".into());
            }
            let summary = format!("Usuario «{old_name}»: {}", changes.join("; "));
            Ok(Written::Changed(
                true,
                AuditEntry::by(actor, AuditAction::UserUpdate, id, None, summary),
            ))
        })
    }

    /// Deactivates or reactivates a user; a deactivated user's sessions stop
    /// working on their next request. Refuses to deactivate the last active
    /// Super Administrador.
    pub async fn set_account_active(
        &self,
        actor: Uuid,
        id: Uuid,
        active: bool,
        now: Ts,
    ) -> AdminResult<bool> {
        let access = Event::AccessChanged { user_id: Some(id) };
        admin_write!(self, now, Some(access), |tx| {
            tx.lock_accounts().await?;
            let (name, role, was): (String, String, bool) =
                sqlx::query_as("select name, role, active from users where id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or(Refusal::NotFound)?;
            if was == active {
                return Ok(Written::Unchanged(false));
            }
            if !active && is_active_super(&role, was) {
                refuse_last_super(other_active_supers!(tx, id)?)?;
            }
            sqlx::query("update users set active = $2, updated_at = $3 where id = $1")
                .bind(id)
                .bind(active)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            if !active {
                sqlx::query("delete from user_sessions where user_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            let (action, verb) = if active {
                (AuditAction::UserReactivate, "reactivado")
            } else {
                (
                    AuditAction::UserDeactivate,
                    "desactivado; sus sesiones se cerraron",
                )
            };
            let summary = format!("Usuario «{name}» {verb}");
            Ok(Written::Changed(
                true,
                AuditEntry::by(actor, action, id, None, summary),
            ))
        })
    }

    /// Sets the password (already hashed) of an administrator-role user and
    /// ends their sessions on every instance, all but `keep` (the session of
    /// a user changing their own password). The audit row says that it was
    /// set, never what it is.
    pub async fn set_account_password(
        &self,
        actor: Uuid,
        id: Uuid,
        password_hash: &str,
        now: Ts,
        keep: Option<Uuid>,
    ) -> AdminResult<()> {
        let access = Event::AccessChanged { user_id: Some(id) };
        admin_write!(self, now, Some(access), |tx| {
            let (name, role): (String, String) =
                sqlx::query_as("select name, role from users where id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or(Refusal::NotFound)?;
            if role == Role::Agent.as_str() {
                return Err(Refusal::Invalid(
                    "Los agentes no inician sesión en Relevo: no necesitan contraseña.".into(),
                )
                .into());
            }
            sqlx::query("update users set password_hash = $2, updated_at = $3 where id = $1")
                .bind(id)
                .bind(password_hash)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let ended = sqlx::query(
                "delete from user_sessions where user_id = $1 and ($2 is null or id <> $2)",
            )
            .bind(id)
            .bind(keep)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let mut summary = format!("Contraseña establecida para «{name}»");
            summary.push_str(&match (ended, keep.is_some()) {
                (0, _) => String::new(),
                (1, true) => "; se cerró su otra sesión".to_owned(),
                (n, true) => format!("; se cerraron sus otras {n} sesiones"),
                (1, false) => "; se cerró su sesión abierta".to_owned(),
                (n, false) => format!("; se cerraron sus {n} sesiones abiertas"),
            });
            Ok(Written::Changed(
                (),
                AuditEntry::by(actor, AuditAction::UserPassword, id, None, summary),
            ))
        })
    }
}

const INSERT_MEMBER: &str =
    "insert into campaign_members (campaign_id, user_id, created_at) values ($1, $2, $3)";

const UNKNOWN_CAMPAIGN: &str = "Una de las campañas elegidas no existe.";

/// The campaigns to store for the form's role, without repeats.
fn campaigns_for(input: &AccountInput) -> Vec<Uuid> {
    if input.role == Role::SuperAdmin {
        return Vec::new();
    }
    let mut ids = input.campaigns.clone();
    ids.sort();
    ids.dedup();
    ids
}
