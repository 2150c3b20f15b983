//! Failed-login throttling, per account and per client address.
//!
//! Failures are counted in a sliding 15-minute window. From the third failure
//! on, each further attempt is slowed down; at the limit the key is refused
//! for 15 minutes with "Demasiados intentos; espera N minutos".

use chrono::{DateTime, Duration, Utc};

use crate::db::{Store, StoreResult, ThrottleState, Ts};

/// Failures of one account before it is locked.
pub const ACCOUNT_LIMIT: i64 = 5;
/// Failures from one address (across accounts) before it is locked.
pub const ADDRESS_LIMIT: i64 = 20;
/// How long failures are remembered, and how long a lock lasts.
pub const WINDOW_MINUTES: i64 = 15;

pub fn account_key(email: &str) -> String {
    format!("account:{email}")
}

pub fn address_key(address: &str) -> String {
    format!("address:{address}")
}

/// Minutes left on a lock, rounded up, if `state` is locked at `now`.
pub fn minutes_locked(state: Option<ThrottleState>, now: DateTime<Utc>) -> Option<i64> {
    let until = state?.locked_until?.0;
    let left = until - now;
    (left > Duration::zero()).then(|| (left.num_milliseconds() + 59_999) / 60_000)
}

/// Extra delay before answering an attempt after `failures` recent failures.
pub fn delay_after(failures: i64) -> std::time::Duration {
    let steps = (failures - 2).clamp(0, 4) as u64;
    std::time::Duration::from_millis(250 * steps)
}

/// Records a failure for `key` with its limit; returns the new state.
pub async fn record_failure(
    store: &Store,
    key: &str,
    limit: i64,
    now: DateTime<Utc>,
) -> StoreResult<ThrottleState> {
    let window = Duration::minutes(WINDOW_MINUTES);
    store
        .record_login_failure(
            key,
            Ts::new(now),
            Ts::new(now - window),
            limit,
            Ts::new(now + window),
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_reports_whole_minutes_left() {
        let now = Utc::now();
        let state = ThrottleState {
            failures: 5,
            locked_until: Some(Ts::new(now + Duration::seconds(61))),
        };
        assert_eq!(minutes_locked(Some(state), now), Some(2));
        assert_eq!(
            minutes_locked(Some(state), now + Duration::minutes(5)),
            None
        );
        assert_eq!(minutes_locked(None, now), None);
    }

    #[test]
    fn attempts_slow_down_from_the_third_failure() {
        assert_eq!(delay_after(2).as_millis(), 0);
        assert_eq!(delay_after(3).as_millis(), 250);
        assert_eq!(delay_after(50).as_millis(), 1000);
    }
}
