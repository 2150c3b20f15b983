//! Failed-login throttling, per account and per client address.
//!
//! Failures are counted in a sliding 15-minute window. From the third failure
//! on, each further attempt is slowed down; at the limit the key is refused
//! for 15 minutes with "Demasiados intentos; espera N minutos".
//!
//! An attempt counts *before* its password is verified: [`reserve`] adds it
//! to the key's count and returns the count in one statement, and only an
//! attempt within the limit is verified. However many attempts arrive at
//! once, at most the limit of them cost a password verification. An attempt
//! whose password was right is given back ([`release`]), or, for the
//! account, its failures are forgotten.
//!
//! Keys are SHA-256 hashes of the normalised e-mail and of the client
//! address: the table never holds what someone typed.

use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};

use crate::db::{Store, StoreResult, ThrottleState, Ts, token_hash};

/// Failures of one account before it is locked.
pub const ACCOUNT_LIMIT: i64 = 5;
/// Failures from one address (across accounts) before it is locked.
pub const ADDRESS_LIMIT: i64 = 20;
/// How long failures are remembered, and how long a lock lasts.
pub const WINDOW_MINUTES: i64 = 15;

/// The key of an (already normalised: trimmed, lower-cased) e-mail.
pub fn account_key(email: &str) -> String {
    format!("account:{}", token_hash(email))
}

/// The key of a client address.
pub fn address_key(address: IpAddr) -> String {
    format!(
        "address:{}",
        token_hash(&address.to_canonical().to_string())
    )
}

/// Minutes left on a lock, rounded up, if `state` is locked at `now`.
pub fn minutes_locked(state: Option<ThrottleState>, now: DateTime<Utc>) -> Option<i64> {
    minutes_locked_until(state?.locked_until?, now)
}

/// Minutes left, rounded up, on a lock `until`, if it still runs at `now`.
pub fn minutes_locked_until(until: Ts, now: DateTime<Utc>) -> Option<i64> {
    let left = until.0 - now;
    (left > Duration::zero()).then(|| (left.num_milliseconds() + 59_999) / 60_000)
}

/// Extra delay before answering an attempt after `failures` recent failures.
pub fn delay_after(failures: i64) -> std::time::Duration {
    let steps = (failures - 2).clamp(0, 4) as u64;
    std::time::Duration::from_millis(250 * steps)
}

/// Counts an attempt for `key` before anything is verified; returns the
/// count with this attempt and the lock. The attempt may go on only when
/// [`minutes_locked`] is `None` for it: an attempt over `limit` locks the
/// key in the same statement.
pub async fn reserve(
    store: &Store,
    key: &str,
    limit: i64,
    now: DateTime<Utc>,
) -> StoreResult<ThrottleState> {
    let window = Duration::minutes(WINDOW_MINUTES);
    store
        .reserve_login_attempt(
            key,
            Ts::new(now),
            Ts::new(now - window),
            limit,
            Ts::new(now + window),
        )
        .await
}

/// Locks `key` after a failed attempt that reached its limit; returns the
/// lock in force.
pub async fn lock(store: &Store, key: &str, now: DateTime<Utc>) -> StoreResult<Ts> {
    let window = Duration::minutes(WINDOW_MINUTES);
    store
        .lock_login_key(key, Ts::new(now), Ts::new(now + window))
        .await
}

/// Gives back an attempt reserved for `key` that was not a wrong password.
pub async fn release(store: &Store, key: &str) -> StoreResult<()> {
    store.release_login_attempt(key).await
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
    fn keys_hold_hashes_not_what_was_typed() {
        let key = account_key("nadie@relevo.demo");
        assert!(key.starts_with("account:"));
        assert!(!key.contains("nadie"));
        assert_eq!(key.len(), "account:".len() + 64);
        // An IPv4 address is the same key however the socket saw it.
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        let plain: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(address_key(mapped), address_key(plain));
        assert!(!address_key(plain).contains("192.0.2.7"));
    }

    #[test]
    fn attempts_slow_down_from_the_third_failure() {
        assert_eq!(delay_after(2).as_millis(), 0);
        assert_eq!(delay_after(3).as_millis(), 250);
        assert_eq!(delay_after(50).as_millis(), 1000);
    }
}
