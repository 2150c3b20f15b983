//! Login sessions and the signed-in principal (failed-login throttling is in
//! [`super::throttle`]).

use uuid::Uuid;

use super::{NotifyInTx, StoreResult, Ts, with_read, with_write};
use crate::domain::{Role, Scope};
use crate::live::Event;

/// The signed-in user as read on *this* request: role, active flag and
/// campaign assignments are never cached across requests.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub name: String,
    pub email: String,
    pub role: Role,
    pub scope: Scope,
}

/// What the login form needs to know about the account an e-mail names.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LoginAccount {
    pub id: Uuid,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub active: bool,
    pub password_hash: Option<String>,
}

#[derive(sqlx::FromRow)]
struct PrincipalRow {
    user_id: Uuid,
    name: String,
    email: String,
    #[sqlx(try_from = "String")]
    role: Role,
    active: bool,
}

impl super::Store {
    /// The account behind an (already normalised) e-mail address.
    pub async fn login_account(&self, email: &str) -> StoreResult<Option<LoginAccount>> {
        Ok(with_read!(self, |pool| {
            sqlx::query_as(
                "select id, name, role, active, password_hash from users where email = $1",
            )
            .bind(email)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Starts a new server-side session for `user_id` and returns its id.
    pub async fn create_session(&self, user_id: Uuid, now: Ts) -> StoreResult<Uuid> {
        let id = Uuid::now_v7();
        with_write!(self, |pool| {
            sqlx::query(
                "insert into user_sessions (id, user_id, created_at, last_seen_at) values ($1, $2, $3, $3)",
            )
            .bind(id)
            .bind(user_id)
            .bind(now)
            .execute(pool)
            .await?;
        });
        Ok(id)
    }

    /// Ends a session; its cookie is worthless afterwards, and its live
    /// streams close.
    pub async fn delete_session(&self, session_id: Uuid) -> StoreResult<()> {
        let event = Event::AccessChanged { user_id: None };
        let notification = self.feed().notification(event);
        let deleted = with_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            let deleted = sqlx::query("delete from user_sessions where id = $1")
                .bind(session_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if deleted > 0 {
                tx.notify_change(&notification).await?;
            }
            tx.commit().await?;
            deleted
        });
        if deleted > 0 {
            self.publish(event);
        }
        Ok(())
    }

    /// The principal of a live session, or `None` when the session is gone,
    /// the user is deactivated, or the role may not use the console.
    pub async fn principal(&self, session_id: Uuid) -> StoreResult<Option<Principal>> {
        let found: Option<(PrincipalRow, Vec<Uuid>)> = with_read!(self, |pool| {
            let row: Option<PrincipalRow> = sqlx::query_as(
                "select u.id as user_id, u.name, u.email, u.role, u.active \
                 from user_sessions s join users u on u.id = s.user_id where s.id = $1",
            )
            .bind(session_id)
            .fetch_optional(pool)
            .await?;
            match row {
                Some(row) if row.role == Role::Admin => {
                    let campaigns: Vec<Uuid> = sqlx::query_scalar(
                        "select m.campaign_id from campaign_members m \
                         join campaigns c on c.id = m.campaign_id \
                         where m.user_id = $1 and c.active order by m.campaign_id",
                    )
                    .bind(row.user_id)
                    .fetch_all(pool)
                    .await?;
                    Some((row, campaigns))
                }
                Some(row) => Some((row, Vec::new())),
                None => None,
            }
        });
        Ok(found.and_then(|(row, campaigns)| {
            if !row.active || !row.role.may_use_console() {
                return None;
            }
            let scope = match row.role {
                Role::SuperAdmin => Scope::All,
                _ => Scope::Campaigns(campaigns),
            };
            Some(Principal {
                user_id: row.user_id,
                session_id,
                name: row.name,
                email: row.email,
                role: row.role,
                scope,
            })
        }))
    }
}
