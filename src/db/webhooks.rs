//! Webhooks: a campaign's list, creating, editing, renewing the secret and
//! deleting one (each audited), the last attempts, and what the delivery
//! worker (`services::webhooks`) reads and writes: the due webhooks, the
//! lease, and the progress of a batch in one transaction.
//!
//! Invariants:
//! - `cursor` only moves forward, and only by a write fenced by the lease
//!   (`lease_owner = $owner`): an instance that lost its lease (it stalled
//!   past `lease_until` and another took over) cannot move it back or
//!   record attempts; its batch is delivered again by the new owner.
//! - The attempts of a batch and the cursor after it commit together, so
//!   the webhook page never shows a delivery the cursor does not include.
//! - At most [`ATTEMPTS_KEPT`] attempts are kept per webhook.

use uuid::Uuid;

use super::audit::{AdminResult, AuditEntry, Refusal, admin_write};
use super::row::from_row;
use super::{Store, StoreResult, Ts, with_read, with_write};
use crate::domain::admin::AuditAction;

/// Attempts kept (and shown) per webhook.
pub const ATTEMPTS_KEPT: i64 = 100;
/// Most webhooks one campaign may have.
pub const MAX_WEBHOOKS_PER_CAMPAIGN: i64 = 20;

from_row! {
    /// A webhook as its campaign's page shows it (the secret is not read).
    #[derive(Debug, Clone)]
    pub struct WebhookRecord {
        pub id: Uuid,
        pub campaign_id: Uuid,
        pub url: String,
        pub event_types: String,
        pub enabled: bool,
        pub cursor: i64,
        pub failures: i32,
        pub failing_since: Option<Ts>,
        pub next_attempt_at: Option<Ts>,
        pub last_error: Option<String>,
        /// Set when Relevo switched it off after failing for 24 hours.
        pub disabled_at: Option<Ts>,
        pub created_at: Ts,
    }
}

from_row! {
    /// One delivery attempt.
    #[derive(Debug, Clone)]
    pub struct WebhookAttempt {
        pub id: Uuid,
        pub at: Ts,
        pub event_id: i64,
        pub event_type: String,
        /// The receiver's HTTP status; none when no answer came.
        pub status_code: Option<i32>,
        pub latency_ms: i32,
        pub error: Option<String>,
    }
}

from_row! {
    /// What the worker needs to deliver a leased webhook.
    #[derive(Debug, Clone)]
    pub struct WebhookJob {
        pub id: Uuid,
        pub campaign_id: Uuid,
        pub url: String,
        pub event_types: String,
        pub secret: String,
        pub cursor: i64,
        pub failures: i32,
        pub failing_since: Option<Ts>,
    }
}

from_row! {
    /// A webhook's settings as a batch's commit finds them: an
    /// administrator may have changed them while the batch was delivered.
    #[derive(Debug, Clone)]
    pub struct WebhookSettings {
        pub enabled: bool,
        pub url: String,
        pub event_types: String,
        pub secret: String,
    }
}

/// A webhook as a form or the demo saves it (the URL already checked by
/// the guard, the types already parsed).
#[derive(Debug, Clone, Copy)]
pub struct WebhookInput<'a> {
    pub url: &'a str,
    /// Space-separated event types.
    pub event_types: &'a str,
    pub enabled: bool,
}

/// Where a batch left a webhook.
#[derive(Debug, Clone)]
pub struct WebhookProgress {
    /// The last event done with (delivered or not subscribed).
    pub cursor: i64,
    /// The attempts made, oldest first.
    pub attempts: Vec<WebhookAttempt>,
    pub state: WebhookState,
}

/// A webhook's health after a batch.
#[derive(Debug, Clone)]
pub enum WebhookState {
    /// Every attempt of the batch succeeded (or none was needed).
    Healthy,
    /// The last attempt failed; try again at `retry_at`.
    Failing {
        failures: i32,
        since: Ts,
        retry_at: Ts,
        error: String,
    },
    /// It failed for 24 hours: switched off, with the last error.
    SwitchedOff { error: String },
}

/// A [`WebhookState`] as the columns that store it.
struct Health<'a> {
    failures: i32,
    since: Option<Ts>,
    retry_at: Option<Ts>,
    /// The last error; none keeps the stored one.
    error: Option<&'a str>,
    enabled: bool,
    disabled_at: Option<Ts>,
}

impl<'a> Health<'a> {
    fn of(state: &'a WebhookState, now: Ts) -> Health<'a> {
        let healthy = Health {
            failures: 0,
            since: None,
            retry_at: None,
            error: None,
            enabled: true,
            disabled_at: None,
        };
        match state {
            WebhookState::Healthy => healthy,
            WebhookState::Failing {
                failures,
                since,
                retry_at,
                error,
            } => Health {
                failures: *failures,
                since: Some(*since),
                retry_at: Some(*retry_at),
                error: Some(error),
                ..healthy
            },
            WebhookState::SwitchedOff { error } => Health {
                error: Some(error),
                enabled: false,
                disabled_at: Some(now),
                ..healthy
            },
        }
    }
}

/// The columns of a [`WebhookRecord`] (a macro, so queries stay literals).
macro_rules! webhook_columns {
    () => {
        "select id, campaign_id, url, event_types, enabled, cursor, failures, failing_since, \
         next_attempt_at, last_error, disabled_at, created_at from webhooks "
    };
}

/// A new signing secret: `whsec_` and 64 hex digits.
fn new_secret() -> String {
    format!("whsec_{}", super::random_token())
}

impl Store {
    /// The campaign's webhooks, oldest first (at most
    /// [`MAX_WEBHOOKS_PER_CAMPAIGN`], so one list).
    pub async fn webhooks_of(&self, campaign_id: Uuid) -> StoreResult<Vec<WebhookRecord>> {
        Ok(with_read!(self, |pool| {
            sqlx::query_as(concat!(
                webhook_columns!(),
                "where campaign_id = $1 order by created_at, id"
            ))
            .bind(campaign_id)
            .fetch_all(pool)
            .await?
        }))
    }

    /// One webhook of the campaign.
    pub async fn webhook(&self, campaign_id: Uuid, id: Uuid) -> StoreResult<Option<WebhookRecord>> {
        Ok(with_read!(self, |pool| {
            sqlx::query_as(concat!(
                webhook_columns!(),
                "where id = $1 and campaign_id = $2"
            ))
            .bind(id)
            .bind(campaign_id)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// The webhook's last [`ATTEMPTS_KEPT`] attempts, newest first.
    pub async fn webhook_attempts(&self, id: Uuid) -> StoreResult<Vec<WebhookAttempt>> {
        Ok(with_read!(self, |pool| {
            sqlx::query_as(
                "select id, at, event_id, event_type, status_code, latency_ms, error \
                 from webhook_attempts where webhook_id = $1 order by at desc, id desc limit $2",
            )
            .bind(id)
            .bind(ATTEMPTS_KEPT)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Creates a webhook (switched on or off) that delivers the events
    /// after the newest one, and returns `(id, secret)`; the secret is
    /// shown once.
    pub async fn create_webhook(
        &self,
        actor: Uuid,
        campaign_id: Uuid,
        input: WebhookInput<'_>,
        now: Ts,
    ) -> AdminResult<(Uuid, String)> {
        let WebhookInput {
            url,
            event_types,
            enabled,
        } = input;
        let id = Uuid::now_v7();
        let secret = new_secret();
        // On PostgreSQL, committed events get their cursor from the
        // sequencer: number them first, so "the newest" includes them.
        // From the log's high-water mark: a new webhook gets what happens
        // from now on, not the campaign's past.
        let high_water = self.sequence_events().await?;
        admin_write!(self, now, None, |tx| {
            let campaign: String = sqlx::query_scalar("select name from campaigns where id = $1")
                .bind(campaign_id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(Refusal::NotFound)?;
            let count: i64 =
                sqlx::query_scalar("select count(*) from webhooks where campaign_id = $1")
                    .bind(campaign_id)
                    .fetch_one(&mut *tx)
                    .await?;
            if count >= MAX_WEBHOOKS_PER_CAMPAIGN {
                return Err(WriteError::Refused(Refusal::Invalid(format!(
                    "Una campaña admite hasta {MAX_WEBHOOKS_PER_CAMPAIGN} webhooks; elimina uno que ya no uses."
                ))));
            }
            sqlx::query(
                "insert into webhooks (id, campaign_id, url, event_types, secret, enabled, cursor, \
                 failures, created_at, updated_at) values ($1, $2, $3, $4, $5, $6, $7, 0, $8, $8)",
            )
            .bind(id)
            .bind(campaign_id)
            .bind(url)
            .bind(event_types)
            .bind(&secret)
            .bind(enabled)
            .bind(high_water)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            Ok(Written::Changed(
                (id, secret),
                AuditEntry::by(
                    actor,
                    AuditAction::WebhookCreate,
                    id,
                    Some(campaign_id),
                    format!("Webhook a {url} creado para «{campaign}» ({event_types})"),
                ),
            ))
        })
    }

    /// Changes a webhook's URL, types and switch. Switching it on clears a
    /// failure streak (and the 24-hour notice): it is tried at once.
    pub async fn update_webhook(
        &self,
        actor: Uuid,
        campaign_id: Uuid,
        id: Uuid,
        input: WebhookInput<'_>,
        now: Ts,
    ) -> AdminResult<bool> {
        let WebhookInput {
            url,
            event_types,
            enabled,
        } = input;
        admin_write!(self, now, None, |tx| {
            let (old_url, old_types, was_enabled): (String, String, bool) = sqlx::query_as(
                "select url, event_types, enabled from webhooks where id = $1 and campaign_id = $2",
            )
            .bind(id)
            .bind(campaign_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(Refusal::NotFound)?;
            if old_url == url && old_types == event_types && was_enabled == enabled {
                return Ok(Written::Unchanged(false));
            }
            let reset = enabled && !was_enabled;
            sqlx::query(
                "update webhooks set url = $3, event_types = $4, enabled = $5, updated_at = $6, \
                 failures = case when $7 then 0 else failures end, \
                 failing_since = case when $7 then null else failing_since end, \
                 next_attempt_at = case when $7 then null else next_attempt_at end, \
                 disabled_at = case when $7 then null else disabled_at end \
                 where id = $1 and campaign_id = $2",
            )
            .bind(id)
            .bind(campaign_id)
            .bind(url)
            .bind(event_types)
            .bind(enabled)
            .bind(now)
            .bind(reset)
            .execute(&mut *tx)
            .await?;
            let state = match (was_enabled, enabled) {
                (false, true) => "; activado",
                (true, false) => "; desactivado",
                _ => "",
            };
            Ok(Written::Changed(
                true,
                AuditEntry::by(
                    actor,
                    AuditAction::WebhookUpdate,
                    id,
                    Some(campaign_id),
                    format!("Webhook a {url} editado ({event_types}){state}"),
                ),
            ))
        })
    }

    /// Gives a webhook a new secret and returns it (shown once); deliveries
    /// from now on are signed with it.
    pub async fn rotate_webhook_secret(
        &self,
        actor: Uuid,
        campaign_id: Uuid,
        id: Uuid,
        now: Ts,
    ) -> AdminResult<String> {
        let secret = new_secret();
        admin_write!(self, now, None, |tx| {
            let url: String = sqlx::query_scalar(
                "update webhooks set secret = $3, updated_at = $4 \
                 where id = $1 and campaign_id = $2 returning url",
            )
            .bind(id)
            .bind(campaign_id)
            .bind(&secret)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(Refusal::NotFound)?;
            Ok(Written::Changed(
                secret.clone(),
                AuditEntry::by(
                    actor,
                    AuditAction::WebhookRotate,
                    id,
                    Some(campaign_id),
                    format!("Secreto del webhook a {url} renovado"),
                ),
            ))
        })
    }

    /// Deletes a webhook and its attempts.
    pub async fn delete_webhook(
        &self,
        actor: Uuid,
        campaign_id: Uuid,
        id: Uuid,
        now: Ts,
    ) -> AdminResult<()> {
        admin_write!(self, now, None, |tx| {
            let url: String =
                sqlx::query_scalar("select url from webhooks where id = $1 and campaign_id = $2")
                    .bind(id)
                    .bind(campaign_id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or(Refusal::NotFound)?;
            sqlx::query("delete from webhook_attempts where webhook_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("delete from webhooks where id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            Ok(Written::Changed(
                (),
                AuditEntry::by(
                    actor,
                    AuditAction::WebhookDelete,
                    id,
                    Some(campaign_id),
                    format!("Webhook a {url} eliminado"),
                ),
            ))
        })
    }

    /// The switched-on webhooks with something to do at `now` whose lease
    /// is free or `owner`'s: behind the log's newest event, and not waiting
    /// out a back-off.
    pub async fn due_webhooks(&self, owner: Uuid, now: Ts) -> StoreResult<Vec<Uuid>> {
        Ok(with_read!(self, |pool| {
            sqlx::query_scalar(
                "select id from webhooks \
                 where enabled and cursor < (select coalesce(max(cursor), 0) from events) \
                 and (next_attempt_at is null or next_attempt_at <= $2) \
                 and (lease_owner is null or lease_owner = $1 or lease_until < $2) \
                 order by id",
            )
            .bind(owner)
            .bind(now)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Takes (or renews) the lease of a switched-on webhook until `until`,
    /// unless another instance holds it; returns what delivering it needs.
    pub async fn lease_webhook(
        &self,
        id: Uuid,
        owner: Uuid,
        now: Ts,
        until: Ts,
    ) -> StoreResult<Option<WebhookJob>> {
        Ok(with_write!(self, |pool| {
            sqlx::query_as(
                "update webhooks set lease_owner = $2, lease_until = $4 \
                 where id = $1 and enabled \
                 and (lease_owner is null or lease_owner = $2 or lease_until < $3) \
                 returning id, campaign_id, url, event_types, secret, cursor, failures, \
                 failing_since",
            )
            .bind(id)
            .bind(owner)
            .bind(now)
            .bind(until)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Records a batch: its attempts, the cursor after it and the
    /// webhook's health, and renews the lease to `lease_until`, in one
    /// transaction. Answers the webhook's settings as they stand now, for
    /// the next batch, or `None` (nothing written) if `owner` lost the
    /// lease. It only ever switches the webhook off (24 hours of failures),
    /// never on: an administrator who switched it off during the batch
    /// keeps it off.
    pub async fn record_webhook_progress(
        &self,
        id: Uuid,
        owner: Uuid,
        progress: &WebhookProgress,
        now: Ts,
        lease_until: Ts,
    ) -> StoreResult<Option<WebhookSettings>> {
        let health = Health::of(&progress.state, now);
        Ok(with_write!(self, |pool| {
            let mut tx = super::backend::begin_write(pool).await?;
            let settings: Option<WebhookSettings> = sqlx::query_as(
                "update webhooks set cursor = $3, failures = $4, failing_since = $5, \
                 next_attempt_at = $6, last_error = coalesce($7, last_error), enabled = enabled and $8, \
                 disabled_at = coalesce($9, disabled_at), lease_until = $10 \
                 where id = $1 and lease_owner = $2 and cursor <= $3 \
                 returning enabled, url, event_types, secret",
            )
            .bind(id)
            .bind(owner)
            .bind(progress.cursor)
            .bind(health.failures)
            .bind(health.since)
            .bind(health.retry_at)
            .bind(health.error)
            .bind(health.enabled)
            .bind(health.disabled_at)
            .bind(lease_until)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(settings) = settings else {
                return Ok(None);
            };
            for a in &progress.attempts {
                sqlx::query(
                    "insert into webhook_attempts (id, webhook_id, at, event_id, event_type, \
                     status_code, latency_ms, error) values ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(a.id)
                .bind(id)
                .bind(a.at)
                .bind(a.event_id)
                .bind(&a.event_type)
                .bind(a.status_code)
                .bind(a.latency_ms)
                .bind(&a.error)
                .execute(&mut *tx)
                .await?;
            }
            if !progress.attempts.is_empty() {
                sqlx::query(
                    "delete from webhook_attempts where webhook_id = $1 and id not in \
                     (select id from webhook_attempts where webhook_id = $1 \
                      order by at desc, id desc limit $2)",
                )
                .bind(id)
                .bind(ATTEMPTS_KEPT)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Some(settings)
        }))
    }

    /// Gives the lease back, so any instance may take the webhook at once.
    pub async fn release_webhook(&self, id: Uuid, owner: Uuid) -> StoreResult<()> {
        with_write!(self, |pool| {
            sqlx::query(
                "update webhooks set lease_owner = null, lease_until = null \
                 where id = $1 and lease_owner = $2",
            )
            .bind(id)
            .bind(owner)
            .execute(pool)
            .await?;
        });
        Ok(())
    }
}
