//! Login sessions and the signed-in principal (failed-login throttling is in
//! [`super::throttle`]).

use uuid::Uuid;

use super::row::from_row;
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

from_row! {
    /// What the login form needs to know about the account an e-mail names.
    #[derive(Debug, Clone)]
    pub struct LoginAccount {
        pub id: Uuid,
        pub name: String,
        #[try_from(String)]
        pub role: Role,
        pub active: bool,
        pub password_hash: Option<String>,
    }
}

from_row! {
    struct PrincipalRow {
        user_id: Uuid,
        name: String,
        email: String,
        #[try_from(String)]
        role: Role,
        active: bool,
        created_at: Ts,
        last_seen_at: Ts,
        address: Option<String>,
    }
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
    /// Its address is recorded with its first activity (see
    /// [`record_activity`](Self::record_activity)).
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
            let mut tx = super::backend::begin_write(pool).await?;
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

    /// The principal of a session, or `None` when the session is gone, the
    /// user is deactivated, or the role may not use the console. The
    /// session's lifetime is not checked here (see
    /// [`session_record`](Self::session_record)).
    pub async fn principal(&self, session_id: Uuid) -> StoreResult<Option<Principal>> {
        Ok(self
            .session_record(session_id)
            .await?
            .and_then(|record| record.principal))
    }

    /// A session as stored: its principal (`None` when the user is
    /// deactivated or the role may not use the console) and its times, or
    /// `None` when the session is gone. Whether it has expired is the
    /// caller's to judge (`auth::session::SessionPolicy`).
    pub async fn session_record(&self, session_id: Uuid) -> StoreResult<Option<SessionRecord>> {
        let found: Option<(PrincipalRow, Vec<Uuid>)> = with_read!(self, |pool| {
            let row: Option<PrincipalRow> = sqlx::query_as(
                "select u.id as user_id, u.name, u.email, u.role, u.active, \
                 s.created_at, s.last_seen_at, s.address \
                 from user_sessions s join users u on u.id = s.user_id where s.id = $1",
            )
            .bind(session_id)
            .fetch_optional(pool)
            .await?;
            match row {
                Some(row) if row.role == Role::Admin && row.active => {
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
        Ok(found.map(|(row, campaigns)| {
            let principal = (row.active && row.role.may_use_console()).then_some(Principal {
                user_id: row.user_id,
                session_id,
                name: row.name,
                email: row.email,
                role: row.role,
                scope: match row.role {
                    Role::SuperAdmin => Scope::All,
                    _ => Scope::Campaigns(campaigns),
                },
            });
            SessionRecord {
                principal,
                created_at: row.created_at,
                last_seen_at: row.last_seen_at,
                address: row.address,
            }
        }))
    }
}

/// A session as the server keeps it (see [`Store::session_record`](super::Store::session_record)).
#[derive(Debug, Clone)]
pub struct SessionRecord {
    /// `None` when the user may no longer sign in (deactivated, or demoted
    /// to a role that does not use the console).
    pub principal: Option<Principal>,
    pub created_at: Ts,
    /// The last recorded activity: at most a minute older than the last
    /// request (see `auth::session::ACTIVITY_GRANULARITY`).
    pub last_seen_at: Ts,
    /// The client address of the last recorded activity.
    pub address: Option<String>,
}

from_row! {
    /// One open session in a user's list.
    #[derive(Debug, Clone)]
    pub struct SessionRow {
        pub id: Uuid,
        pub created_at: Ts,
        pub last_seen_at: Ts,
        pub address: Option<String>,
    }
}

/// Which sessions are open at some instant: those started after
/// `started_after` and last active after `seen_after` (both exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    pub started_after: Ts,
    pub seen_after: Ts,
}

/// Most sessions a list shows (the most recently active first).
pub const SESSION_LIST_LIMIT: i64 = 50;

/// Announces that sessions of `user_id` ended inside `tx`, so every
/// instance forgets its cached principals. A macro so it expands for
/// either backend's transaction; it evaluates to the unawaited notification.
macro_rules! sessions_ended_in_tx {
    ($store:expr, $tx:expr, $user_id:expr) => {
        $tx.notify_change(
            &$store
                .feed()
                .notification(Event::AccessChanged { user_id: $user_id }),
        )
    };
}

impl super::Store {
    /// Records the activity of a session at `now` from `address`, unless a
    /// later one is already recorded. Callers write it at most once a minute
    /// per session (see `auth::session`), so page views are not writes.
    pub async fn record_activity(
        &self,
        session_id: Uuid,
        now: Ts,
        address: Option<&str>,
    ) -> StoreResult<()> {
        with_write!(self, |pool| {
            sqlx::query(
                "update user_sessions set last_seen_at = $2, address = coalesce($3, address) \
                 where id = $1 and last_seen_at < $2",
            )
            .bind(session_id)
            .bind(now)
            .bind(address)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The open sessions of `user_id` (see [`SessionLimits`]), the most
    /// recently active first, at most [`SESSION_LIST_LIMIT`].
    pub async fn open_sessions(
        &self,
        user_id: Uuid,
        open: SessionLimits,
    ) -> StoreResult<Vec<SessionRow>> {
        Ok(with_read!(self, |pool| {
            sqlx::query_as(
                "select id, created_at, last_seen_at, address from user_sessions \
                 where user_id = $1 and created_at > $2 and last_seen_at > $3 \
                 order by last_seen_at desc, id desc limit $4",
            )
            .bind(user_id)
            .bind(open.started_after)
            .bind(open.seen_after)
            .bind(SESSION_LIST_LIMIT)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Ends every session of `user_id` but `keep` (the one asking), on every
    /// instance; returns how many ended.
    pub async fn end_other_sessions(&self, user_id: Uuid, keep: Uuid) -> StoreResult<u64> {
        let ended = with_write!(self, |pool| {
            let mut tx = super::backend::begin_write(pool).await?;
            let ended = sqlx::query("delete from user_sessions where user_id = $1 and id <> $2")
                .bind(user_id)
                .bind(keep)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if ended > 0 {
                sessions_ended_in_tx!(self, tx, Some(user_id)).await?;
            }
            tx.commit().await?;
            ended
        });
        if ended > 0 {
            self.publish(Event::AccessChanged {
                user_id: Some(user_id),
            });
        }
        Ok(ended)
    }

    /// A Super Administrador (`actor`) ends every session of another user,
    /// audited; answers how many ended (none: nothing written).
    pub async fn end_sessions_by_admin(
        &self,
        actor: Uuid,
        user_id: Uuid,
        now: Ts,
    ) -> super::AdminResult<u64> {
        use super::audit::{AuditEntry, admin_write};
        use crate::domain::admin::AuditAction;
        let access = Event::AccessChanged {
            user_id: Some(user_id),
        };
        admin_write!(self, now, Some(access), |tx| {
            let name: String = sqlx::query_scalar("select name from users where id = $1")
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(super::Refusal::NotFound)?;
            let ended = sqlx::query("delete from user_sessions where user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if ended == 0 {
                return Ok(Written::Unchanged(0));
            }
            let summary = format!("Sesiones de «{name}» cerradas ({ended})");
            Ok(Written::Changed(
                ended,
                AuditEntry::by(actor, AuditAction::UserSessions, user_id, None, summary),
            ))
        })
    }

    /// Counts a wrong current password typed in a session's "Cambiar mi
    /// contraseña" and, at the `limit`-th, ends the session (on every
    /// instance); answers whether it ended.
    pub async fn record_password_failure(&self, session_id: Uuid, limit: i32) -> StoreResult<bool> {
        let ended = with_write!(self, |pool| {
            let mut tx = super::backend::begin_write(pool).await?;
            let failures: Option<i32> = sqlx::query_scalar(
                "update user_sessions set password_failures = password_failures + 1 \
                 where id = $1 returning password_failures",
            )
            .bind(session_id)
            .fetch_optional(&mut *tx)
            .await?;
            let ended = failures.is_some_and(|f| f >= limit);
            if ended {
                sqlx::query("delete from user_sessions where id = $1")
                    .bind(session_id)
                    .execute(&mut *tx)
                    .await?;
                sessions_ended_in_tx!(self, tx, None).await?;
            }
            tx.commit().await?;
            ended
        });
        if ended {
            self.publish(Event::AccessChanged { user_id: None });
        }
        Ok(ended)
    }

    /// Deletes up to `batch` sessions that are not open by `limits` (already
    /// refused on every instance, so nothing is announced); returns how many.
    pub async fn purge_expired_sessions(
        &self,
        limits: SessionLimits,
        batch: i64,
    ) -> StoreResult<u64> {
        Ok(with_write!(self, |pool| {
            sqlx::query(
                "delete from user_sessions where id in (select id from user_sessions \
                 where created_at <= $1 or last_seen_at <= $2 limit $3)",
            )
            .bind(limits.started_after)
            .bind(limits.seen_after)
            .bind(batch)
            .execute(pool)
            .await?
            .rows_affected()
        }))
    }
}
