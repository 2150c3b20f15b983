//! Failed-login throttling state, one row per key.
//!
//! A login attempt *reserves* its place in the key's count before any
//! password is verified, in one statement, so that concurrent attempts see
//! distinct counts and no more than the limit get to verify (see
//! [`crate::services::auth::throttle`]). Keys are hashes (no e-mail or address is
//! stored) and rows whose window and lock are over are purged as new ones
//! are written.
//!
//! On SQLite these writes run on the write lane (see [`super::write_lane`]):
//! a burst of attempts queues for the one writer there, each holding it for
//! one statement only.

use super::{Store, StoreResult, Ts, with_write};

/// Failed-login state of one throttling key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleState {
    /// Attempts counted in the current window, this one included (attempts
    /// that turned out right are given back).
    pub failures: i64,
    pub locked_until: Option<Ts>,
}

/// The longest a purge runs: it deletes at most this many expired rows.
const PURGE_BATCH: i64 = 100;

impl Store {
    /// Counts one attempt for `key` and returns the count with this attempt
    /// and the lock, in one statement. A window that started before
    /// `window_floor` and is not locked any more starts again at one; an
    /// attempt over `limit` locks the key until `lock_until` (unless it is
    /// already locked). The first attempt of a window also purges expired
    /// rows (a bounded batch), so that the table holds only live keys.
    pub async fn reserve_login_attempt(
        &self,
        key: &str,
        now: Ts,
        window_floor: Ts,
        limit: i64,
        lock_until: Ts,
    ) -> StoreResult<ThrottleState> {
        let (store, key) = (self.clone(), key.to_owned());
        self.on_write_lane(async move {
            let (failures, locked_until): (i64, Option<Ts>) = with_write!(&store, |pool| {
                sqlx::query_as(
                    "insert into login_throttle (key, failures, window_start, locked_until) \
                     values ($1, 1, $2, null) \
                     on conflict (key) do update set \
                       failures = case \
                         when login_throttle.window_start < $3 \
                              and (login_throttle.locked_until is null \
                                   or login_throttle.locked_until <= $2) then 1 \
                         else login_throttle.failures + 1 end, \
                       locked_until = case \
                         when login_throttle.window_start < $3 \
                              and (login_throttle.locked_until is null \
                                   or login_throttle.locked_until <= $2) then null \
                         when login_throttle.failures + 1 > $4 \
                              and (login_throttle.locked_until is null \
                                   or login_throttle.locked_until <= $2) then $5 \
                         else login_throttle.locked_until end, \
                       window_start = case \
                         when login_throttle.window_start < $3 \
                              and (login_throttle.locked_until is null \
                                   or login_throttle.locked_until <= $2) then $2 \
                         else login_throttle.window_start end \
                     returning failures, locked_until",
                )
                .bind(&key)
                .bind(now)
                .bind(window_floor)
                .bind(limit)
                .bind(lock_until)
                .fetch_one(pool)
                .await?
            });
            if failures == 1 {
                store.purge_login_throttle(now, window_floor).await?;
            }
            Ok(ThrottleState {
                failures,
                locked_until,
            })
        })
        .await
    }

    /// Locks `key` until `lock_until` unless a lock is already running, and
    /// returns the lock now in force (after the attempt that reached the
    /// limit failed).
    pub async fn lock_login_key(&self, key: &str, now: Ts, lock_until: Ts) -> StoreResult<Ts> {
        let (store, key) = (self.clone(), key.to_owned());
        self.on_write_lane(async move {
            let locked: Option<Ts> = with_write!(&store, |pool| {
                sqlx::query_scalar(
                    "update login_throttle set locked_until = case \
                       when locked_until is null or locked_until <= $2 then $3 \
                       else locked_until end \
                     where key = $1 returning locked_until",
                )
                .bind(&key)
                .bind(now)
                .bind(lock_until)
                .fetch_optional(pool)
                .await?
            });
            // The row was purged meanwhile (a window of minutes ended
            // during one attempt): the lock is the one just asked for.
            Ok(locked.unwrap_or(lock_until))
        })
        .await
    }

    /// Gives back the attempt reserved for `key` (it was not a wrong
    /// password: the right one, or refused on another key's limit).
    pub async fn release_login_attempt(&self, key: &str) -> StoreResult<()> {
        let (store, key) = (self.clone(), key.to_owned());
        self.on_write_lane(async move {
            with_write!(&store, |pool| {
                sqlx::query(
                    "update login_throttle set failures = failures - 1 \
                     where key = $1 and failures > 0",
                )
                .bind(&key)
                .execute(pool)
                .await?;
            });
            Ok(())
        })
        .await
    }

    /// Forgets the failures of `key` (after a successful login).
    pub async fn clear_login_failures(&self, key: &str) -> StoreResult<()> {
        let (store, key) = (self.clone(), key.to_owned());
        self.on_write_lane(async move {
            with_write!(&store, |pool| {
                sqlx::query("delete from login_throttle where key = $1")
                    .bind(&key)
                    .execute(pool)
                    .await?;
            });
            Ok(())
        })
        .await
    }

    /// Deletes up to [`PURGE_BATCH`] rows whose window started before
    /// `window_floor` and whose lock, if any, is over at `now`: they count
    /// nothing any more. The condition is repeated outside the sub-select so
    /// that a row a concurrent attempt has just restarted is kept.
    async fn purge_login_throttle(&self, now: Ts, window_floor: Ts) -> StoreResult<u64> {
        let purged = with_write!(self, |pool| {
            sqlx::query(
                "delete from login_throttle \
                 where key in (select key from login_throttle \
                               where window_start < $1 \
                                 and (locked_until is null or locked_until <= $2) \
                               limit $3) \
                   and window_start < $1 \
                   and (locked_until is null or locked_until <= $2)",
            )
            .bind(window_floor)
            .bind(now)
            .bind(PURGE_BATCH)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(purged)
    }
}
