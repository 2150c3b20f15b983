//! Failed-login throttling state, one row per key.

use super::{StoreResult, Ts, with_read, with_write};

/// Failed-login state of one throttling key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleState {
    pub failures: i64,
    pub locked_until: Option<Ts>,
}

impl super::Store {
    /// The current failed-login state of `key`, if any.
    pub async fn throttle_state(&self, key: &str) -> StoreResult<Option<ThrottleState>> {
        let row: Option<(i64, Option<Ts>)> = with_read!(self, |pool| {
            sqlx::query_as("select failures, locked_until from login_throttle where key = $1")
                .bind(key)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(failures, locked_until)| ThrottleState {
            failures,
            locked_until,
        }))
    }

    /// Counts one failure for `key` in the window that started after
    /// `window_floor` (an older window restarts at one), atomically, and locks
    /// the key until `lock_until` once `lock_after` failures are reached.
    pub async fn record_login_failure(
        &self,
        key: &str,
        now: Ts,
        window_floor: Ts,
        lock_after: i64,
        lock_until: Ts,
    ) -> StoreResult<ThrottleState> {
        let state = with_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            let failures: i64 = sqlx::query_scalar(
                "insert into login_throttle (key, failures, window_start, locked_until) \
                 values ($1, 1, $2, null) \
                 on conflict (key) do update set \
                   failures = case when login_throttle.window_start < $3 then 1 \
                                   else login_throttle.failures + 1 end, \
                   window_start = case when login_throttle.window_start < $3 then $2 \
                                       else login_throttle.window_start end \
                 returning failures",
            )
            .bind(key)
            .bind(now)
            .bind(window_floor)
            .fetch_one(&mut *tx)
            .await?;
            let locked_until = if failures >= lock_after {
                sqlx::query("update login_throttle set locked_until = $2 where key = $1")
                    .bind(key)
                    .bind(lock_until)
                    .execute(&mut *tx)
                    .await?;
                Some(lock_until)
            } else {
                None
            };
            tx.commit().await?;
            ThrottleState {
                failures,
                locked_until,
            }
        });
        Ok(state)
    }

    /// Forgets the failures of `key` (after a successful login).
    pub async fn clear_login_failures(&self, key: &str) -> StoreResult<()> {
        with_write!(self, |pool| {
            sqlx::query("delete from login_throttle where key = $1")
                .bind(key)
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}
