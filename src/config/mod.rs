//! Settings from the environment (see the README's configuration table).

use std::net::SocketAddr;

use anyhow::Context;

use crate::domain::transcript::{DEFAULT_RETENTION_DAYS, MAX_RETENTION_DAYS};

mod proxies;
mod webhook_allow;

pub use proxies::TrustedProxies;
pub use webhook_allow::{WebhookAllow, normalize_host};

/// Runtime configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `sqlite:…` or `postgres:…`.
    pub database_url: String,
    /// Address to listen on; port 0 picks a free port (tests).
    pub bind: SocketAddr,
    /// Key for signing and encrypting the session cookie (at least 64 bytes
    /// once decoded); when absent one is generated and kept in the database.
    pub session_key: Option<String>,
    /// A session unused this long ends on the server (see `auth::session`).
    pub session_idle: std::time::Duration,
    /// Marks the session cookie `Secure` (serve over HTTPS).
    pub secure_cookies: bool,
    /// Time zone dates are shown in.
    pub timezone: chrono_tz::Tz,
    /// Message texts older than this many days are purged
    /// (`RELEVO_TRANSCRIPT_DAYS`); the messages themselves stay.
    pub transcript_days: u32,
    /// Events of the feed older than this many days are purged
    /// (`RELEVO_EVENT_DAYS`).
    pub event_days: u32,
    /// Who may read `/metrics`.
    pub metrics: MetricsAccess,
    /// Reverse proxies whose `X-Forwarded-For`/`Forwarded` headers name the
    /// client (`RELEVO_TRUSTED_PROXIES`); none by default.
    pub trusted_proxies: TrustedProxies,
    /// `RELEVO_WEBHOOK_ALLOW`: where webhooks may deliver (empty: nowhere).
    pub webhook_allow: WebhookAllow,
    /// Mensajes views kept in memory (`RELEVO_VIEW_CACHE`, see
    /// `live::cache::ViewCache`); 0 turns the cache off, every view then
    /// reading the database (the benchmark's `list-uncached`).
    pub view_cache_views: usize,
    /// How often an open Mensajes tab asks for its counts again, since
    /// conversations become "rezagadas" by time alone ([`COUNTS_REFRESH`];
    /// not an environment setting: tests shorten it).
    pub counts_refresh: std::time::Duration,
}

/// Default [`Settings::counts_refresh`].
pub const COUNTS_REFRESH: std::time::Duration = std::time::Duration::from_secs(60);

/// `/metrics` is readable from these client addresses, or by anyone who
/// presents the bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsAccess {
    pub allow: Vec<std::net::IpAddr>,
    pub token: Option<String>,
}

impl Default for MetricsAccess {
    /// Loopback only, no token.
    fn default() -> Self {
        MetricsAccess {
            allow: vec![
                std::net::IpAddr::from([127, 0, 0, 1]),
                std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            ],
            token: None,
        }
    }
}

/// Shortest accepted `RELEVO_SESSION_KEY`.
pub const MIN_SESSION_KEY_CHARS: usize = 32;

/// Default `RELEVO_EVENT_DAYS`.
pub const DEFAULT_EVENT_DAYS: u32 = 30;

/// Default `RELEVO_VIEW_CACHE`: views kept (a page of 51 rows is about 30
/// KB before compression, 8 to 13 KB after).
pub const DEFAULT_VIEW_CACHE_VIEWS: usize = 256;
/// Most `RELEVO_VIEW_CACHE` accepts, for a server given more memory than
/// the 150 MiB the benchmark holds it to: 4,096 full views (their rows and
/// compressed results, tens of KB each) are well over 100 MiB.
pub const MAX_VIEW_CACHE_VIEWS: usize = 4096;

/// Default database: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite:relevo.db";
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
pub const DEFAULT_TIMEZONE: &str = "America/Mexico_City";
/// Default `RELEVO_SESSION_IDLE_MINUTES`.
pub const DEFAULT_SESSION_IDLE_MINUTES: u64 = 120;
/// The idle timeout cannot exceed a session's absolute lifetime (12 h).
pub const MAX_SESSION_IDLE_MINUTES: u64 = 12 * 60;

/// The default idle timeout, for settings built in code (tests).
pub fn default_session_idle() -> std::time::Duration {
    std::time::Duration::from_secs(DEFAULT_SESSION_IDLE_MINUTES * 60)
}

impl Settings {
    /// The defaults of every setting for `database_url`, listening on a free
    /// loopback port: what an embedded instance (a test, a second instance
    /// on the same database) starts from before changing what it needs.
    pub fn on_free_port(database_url: &str) -> Settings {
        Settings {
            database_url: database_url.to_owned(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            session_key: None,
            secure_cookies: false,
            timezone: chrono_tz::America::Mexico_City,
            transcript_days: DEFAULT_RETENTION_DAYS,
            event_days: DEFAULT_EVENT_DAYS,
            metrics: MetricsAccess::default(),
            trusted_proxies: TrustedProxies::default(),
            webhook_allow: WebhookAllow::default(),
            session_idle: default_session_idle(),
            view_cache_views: DEFAULT_VIEW_CACHE_VIEWS,
            counts_refresh: COUNTS_REFRESH,
        }
    }

    /// Reads `DATABASE_URL`, `RELEVO_BIND`, `RELEVO_SESSION_KEY`,
    /// `RELEVO_SECURE_COOKIES`, `RELEVO_TIMEZONE`, `RELEVO_METRICS_ALLOW`,
    /// `RELEVO_METRICS_TOKEN`, `RELEVO_TRUSTED_PROXIES`,
    /// `RELEVO_SESSION_IDLE_MINUTES`, `RELEVO_TRANSCRIPT_DAYS`,
    /// `RELEVO_EVENT_DAYS`, `RELEVO_VIEW_CACHE` and `RELEVO_WEBHOOK_ALLOW`.
    pub fn from_env() -> anyhow::Result<Settings> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let bind = var("RELEVO_BIND").unwrap_or_else(|| DEFAULT_BIND.to_owned());
        let timezone = var("RELEVO_TIMEZONE").unwrap_or_else(|| DEFAULT_TIMEZONE.to_owned());
        let session_key = var("RELEVO_SESSION_KEY");
        if let Some(key) = &session_key
            && key.chars().count() < MIN_SESSION_KEY_CHARS
        {
            anyhow::bail!(
                "RELEVO_SESSION_KEY must have at least {MIN_SESSION_KEY_CHARS} characters (or leave it unset to have one generated)"
            );
        }
        let session_idle = parse_idle_minutes(var("RELEVO_SESSION_IDLE_MINUTES").as_deref())?;
        let transcript_days = parse_retention_days(
            "RELEVO_TRANSCRIPT_DAYS",
            var("RELEVO_TRANSCRIPT_DAYS").as_deref(),
            DEFAULT_RETENTION_DAYS,
        )?;
        let event_days = parse_retention_days(
            "RELEVO_EVENT_DAYS",
            var("RELEVO_EVENT_DAYS").as_deref(),
            DEFAULT_EVENT_DAYS,
        )?;
        let view_cache_views = parse_view_cache(var("RELEVO_VIEW_CACHE").as_deref())?;
        let mut metrics = MetricsAccess::default();
        if let Some(list) = var("RELEVO_METRICS_ALLOW") {
            metrics.allow = list
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(|a| {
                    a.parse().with_context(|| {
                        format!("RELEVO_METRICS_ALLOW: {a:?} is not an IP address")
                    })
                })
                .collect::<anyhow::Result<_>>()?;
        }
        metrics.token = var("RELEVO_METRICS_TOKEN");
        let trusted_proxies = match var("RELEVO_TRUSTED_PROXIES") {
            Some(list) => list
                .parse()
                .map_err(|e| anyhow::anyhow!("RELEVO_TRUSTED_PROXIES: {e}"))?,
            None => TrustedProxies::default(),
        };
        let webhook_allow = match var("RELEVO_WEBHOOK_ALLOW") {
            Some(list) => list
                .parse()
                .map_err(|e| anyhow::anyhow!("RELEVO_WEBHOOK_ALLOW: {e}"))?,
            None => WebhookAllow::default(),
        };
        Ok(Settings {
            webhook_allow,
            counts_refresh: COUNTS_REFRESH,
            database_url: var("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned()),
            bind: bind.parse().with_context(|| {
                format!("RELEVO_BIND {bind:?} is not an address like 127.0.0.1:8080")
            })?,
            session_key,
            session_idle,
            transcript_days,
            event_days,
            view_cache_views,
            metrics,
            trusted_proxies,
            secure_cookies: parse_bool(var("RELEVO_SECURE_COOKIES").as_deref())
                .context("RELEVO_SECURE_COOKIES must be true or false")?,
            timezone: timezone.parse().map_err(|_| {
                anyhow::anyhow!("RELEVO_TIMEZONE {timezone:?} is not an IANA time zone")
            })?,
        })
    }
}

/// `RELEVO_SESSION_IDLE_MINUTES`: whole minutes from 1 to 720.
fn parse_idle_minutes(value: Option<&str>) -> anyhow::Result<std::time::Duration> {
    let Some(value) = value else {
        return Ok(default_session_idle());
    };
    match value.trim().parse::<u64>() {
        Ok(minutes) if (1..=MAX_SESSION_IDLE_MINUTES).contains(&minutes) => {
            Ok(std::time::Duration::from_secs(minutes * 60))
        }
        _ => anyhow::bail!(
            "RELEVO_SESSION_IDLE_MINUTES must be a whole number of minutes from 1 to {MAX_SESSION_IDLE_MINUTES}, not {value:?}"
        ),
    }
}

/// `RELEVO_TRANSCRIPT_DAYS`, `RELEVO_EVENT_DAYS`: whole days from 1 to
/// [`MAX_RETENTION_DAYS`]; `default` when unset.
fn parse_retention_days(name: &str, value: Option<&str>, default: u32) -> anyhow::Result<u32> {
    let Some(value) = value else {
        return Ok(default);
    };
    match value.trim().parse::<u32>() {
        Ok(days) if (1..=MAX_RETENTION_DAYS).contains(&days) => Ok(days),
        _ => anyhow::bail!(
            "{name} must be a whole number of days from 1 to {MAX_RETENTION_DAYS}, not {value:?}"
        ),
    }
}

/// `RELEVO_VIEW_CACHE`: a whole number of views from 0 (off) to
/// [`MAX_VIEW_CACHE_VIEWS`].
fn parse_view_cache(value: Option<&str>) -> anyhow::Result<usize> {
    let Some(value) = value else {
        return Ok(DEFAULT_VIEW_CACHE_VIEWS);
    };
    match value.trim().parse::<usize>() {
        Ok(views) if views <= MAX_VIEW_CACHE_VIEWS => Ok(views),
        _ => anyhow::bail!(
            "RELEVO_VIEW_CACHE must be a whole number of views from 0 (off) to {MAX_VIEW_CACHE_VIEWS}, not {value:?}"
        ),
    }
}

fn parse_bool(value: Option<&str>) -> anyhow::Result<bool> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("false" | "0" | "no" | "off") => Ok(false),
        Some("true" | "1" | "yes" | "on") => Ok(true),
        Some(other) => anyhow::bail!("unexpected value {other:?}"),
    }
}

/// Hides the password of a database URL for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_view_cache_setting_is_a_count_of_views_and_zero_turns_it_off() {
        let parse = super::parse_view_cache;
        assert_eq!(parse(None).unwrap(), super::DEFAULT_VIEW_CACHE_VIEWS);
        assert_eq!(parse(Some("0")).unwrap(), 0);
        assert_eq!(parse(Some(" 64 ")).unwrap(), 64);
        for bad in ["-1", "off", "1.5", "4097"] {
            let error = parse(Some(bad)).unwrap_err().to_string();
            assert!(
                error.starts_with("RELEVO_VIEW_CACHE must be"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn booleans_accept_the_usual_spellings() {
        assert!(super::parse_bool(Some("TRUE")).unwrap());
        assert!(!super::parse_bool(None).unwrap());
        assert!(super::parse_bool(Some("maybe")).is_err());
    }

    #[test]
    fn message_texts_and_events_are_kept_a_whole_number_of_days() {
        let days = |v| super::parse_retention_days("RELEVO_TRANSCRIPT_DAYS", v, 180);
        assert_eq!(days(None).unwrap(), 180);
        assert_eq!(days(Some(" 30 ")).unwrap(), 30);
        assert_eq!(days(Some("36500")).unwrap(), 36_500);
        for bad in ["0", "-1", "1.5", "36501", "seis meses"] {
            assert!(days(Some(bad)).is_err(), "{bad}");
        }
        let events =
            |v| super::parse_retention_days("RELEVO_EVENT_DAYS", v, super::DEFAULT_EVENT_DAYS);
        assert_eq!(events(None).unwrap(), 30);
        let error = events(Some("0")).unwrap_err().to_string();
        assert!(error.starts_with("RELEVO_EVENT_DAYS"), "{error}");
    }

    #[test]
    fn the_idle_timeout_is_a_whole_number_of_minutes_up_to_twelve_hours() {
        use std::time::Duration;
        assert_eq!(
            super::parse_idle_minutes(None).unwrap(),
            Duration::from_secs(120 * 60)
        );
        assert_eq!(
            super::parse_idle_minutes(Some(" 30 ")).unwrap(),
            Duration::from_secs(30 * 60)
        );
        for bad in ["0", "-5", "1.5", "721", "dos"] {
            assert!(super::parse_idle_minutes(Some(bad)).is_err(), "{bad}");
        }
    }
}
