//! Webhooks: which event types one may subscribe to, how a delivery is
//! signed, and when a failing one is tried again or given up on. Pure: the
//! time and the randomness of the jitter are parameters.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The event types of the log (`events.type`) with their Spanish names, in
/// the order the webhook form lists them. `services::webhooks` checks that
/// this is every type of `db::EventType`.
pub const EVENT_TYPES: [(&str, &str); 13] = [
    ("created", "Conversación creada"),
    (
        "reactivated",
        "Conversación reactivada (el cliente volvió a escribir)",
    ),
    ("assigned", "Asignada por el enrutador"),
    ("reassigned", "Reasignada"),
    ("handed_off", "El bot pidió un agente"),
    ("out_of_hours", "Fuera de horario"),
    ("agents_offline", "Sin agentes conectados"),
    ("first_reply", "Primera respuesta del agente"),
    ("resolved", "Resuelta"),
    ("cancelled", "Cancelada"),
    ("message_received", "Mensaje del cliente"),
    ("message_sent", "Mensaje del agente o del bot"),
    ("customer_nudge", "Aviso automático al cliente"),
];

/// Longest webhook URL accepted, in bytes.
pub const URL_MAX_BYTES: usize = 2_000;

/// How long a webhook may fail in a row before Relevo switches it off.
pub const GIVE_UP_AFTER: chrono::TimeDelta = chrono::TimeDelta::hours(24);
/// The first retry's delay; each later one doubles, up to [`RETRY_CAP`].
pub const RETRY_BASE: Duration = Duration::from_secs(1);
pub const RETRY_CAP: Duration = Duration::from_secs(3600);

/// The subscribed types of a form's checked boxes, in catalogue order;
/// unknown values are ignored (a form only offers known ones), none at
/// all is refused.
pub fn parse_event_types<'a>(
    checked: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<&'static str>, &'static str> {
    let checked: Vec<&str> = checked.into_iter().collect();
    let types: Vec<&'static str> = EVENT_TYPES
        .iter()
        .map(|(t, _)| *t)
        .filter(|t| checked.contains(t))
        .collect();
    if types.is_empty() {
        return Err("Elige al menos un tipo de evento.");
    }
    Ok(types)
}

/// The stored form of a subscription (space-separated types).
pub fn stored_event_types(types: &[&str]) -> String {
    types.join(" ")
}

/// Whether a stored subscription includes `event_type`.
pub fn subscribes(stored: &str, event_type: &str) -> bool {
    stored.split(' ').any(|t| t == event_type)
}

/// `X-Relevo-Signature`'s value: `sha256=` and the hex HMAC-SHA256, keyed
/// by the webhook's secret, of the timestamp header, a dot, and the body.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Whether `header` is the signature of `body` at `timestamp` under
/// `secret` (in constant time): what a receiver does, and `relevo
/// webhook-echo` with it.
pub fn verify(secret: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    use subtle::ConstantTimeEq;
    let expected = signature(secret, timestamp, body);
    expected.as_bytes().ct_eq(header.trim().as_bytes()).into()
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try the same event again at this time.
    RetryAt(DateTime<Utc>),
    /// It has failed for [`GIVE_UP_AFTER`]: switch the webhook off.
    SwitchOff,
}

/// After the `failures`-th failure in a row (1 for the first), the streak
/// having begun at `failing_since`: exponential back-off from
/// [`RETRY_BASE`], capped at [`RETRY_CAP`], with "equal jitter" (half the
/// delay fixed, half scaled by `jitter` in 0..1) so receivers coming back
/// from an outage are not hit by every webhook at once.
pub fn after_failure(
    failures: u32,
    failing_since: DateTime<Utc>,
    now: DateTime<Utc>,
    jitter: f64,
) -> AfterFailure {
    if now - failing_since >= GIVE_UP_AFTER {
        return AfterFailure::SwitchOff;
    }
    let doubling = failures.saturating_sub(1).min(20);
    let delay = RETRY_BASE
        .saturating_mul(1 << doubling)
        .min(RETRY_CAP)
        .as_secs_f64();
    let delay = delay / 2.0 + delay / 2.0 * jitter.clamp(0.0, 1.0);
    let delay = chrono::TimeDelta::milliseconds((delay * 1000.0) as i64);
    AfterFailure::RetryAt(now + delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // RFC 4231 does not cover this framing; the value was computed with
        // `printf '1700000000.{"id":1}' | openssl dgst -sha256 -hmac whsec_test`.
        let sig = signature("whsec_test", 1_700_000_000, br#"{"id":1}"#);
        assert_eq!(
            sig,
            "sha256=2f441ba4b3b2d50d28a9ab9d9fd8880376ecd1eb5d0435401553f5d8d0a5dcf8"
        );
        assert!(verify("whsec_test", 1_700_000_000, br#"{"id":1}"#, &sig));
        assert!(!verify("whsec_test", 1_700_000_001, br#"{"id":1}"#, &sig));
        assert!(!verify("whsec_other", 1_700_000_000, br#"{"id":1}"#, &sig));
        assert!(!verify("whsec_test", 1_700_000_000, br#"{"id":2}"#, &sig));
    }

    #[test]
    fn subscriptions_keep_catalogue_order_and_need_one_type() {
        let types = parse_event_types(["cancelled", "nonsense", "created"]).unwrap();
        assert_eq!(types, ["created", "cancelled"]);
        let stored = stored_event_types(&types);
        assert!(subscribes(&stored, "cancelled"));
        assert!(!subscribes(&stored, "cancel"));
        assert!(parse_event_types(["nonsense"]).is_err());
    }

    #[test]
    fn retries_back_off_exponentially_with_jitter_and_stop_after_a_day() {
        let t0 = DateTime::parse_from_rfc3339("2026-12-04T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let delay = |failures, jitter| match after_failure(failures, t0, t0, jitter) {
            AfterFailure::RetryAt(at) => (at - t0).num_milliseconds(),
            AfterFailure::SwitchOff => panic!("switched off"),
        };
        assert_eq!(delay(1, 0.0), 500);
        assert_eq!(delay(1, 1.0), 1_000);
        assert_eq!(delay(4, 1.0), 8_000);
        assert_eq!(delay(4, 0.5), 6_000);
        assert_eq!(delay(30, 1.0), 3_600_000);
        assert_eq!(delay(u32::MAX, 1.0), 3_600_000);
        let later = t0 + GIVE_UP_AFTER - chrono::TimeDelta::seconds(1);
        assert!(matches!(
            after_failure(40, t0, later, 0.3),
            AfterFailure::RetryAt(_)
        ));
        assert_eq!(
            after_failure(41, t0, t0 + GIVE_UP_AFTER, 0.3),
            AfterFailure::SwitchOff
        );
    }
}
