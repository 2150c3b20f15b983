-- Webhooks (issue 21): a campaign's HTTP receivers of its event log.
--
-- Delivery is driven by `cursor`, the last event of the log this webhook
-- is done with (delivered, or skipped because its type is not subscribed),
-- committed after each batch: a restart, even after `kill -9`, goes on from
-- it, so nothing is lost and at most one batch is delivered again (at
-- least once; receivers drop repeats by `X-Relevo-Event-Id`).
--
-- `lease_owner`/`lease_until`: the instance delivering this webhook now.
-- Another instance takes it only once the lease has expired, and every
-- progress write is fenced by the owner, so two instances do not deliver
-- the same events in normal operation.
--
-- `secret` is kept as written: signing needs it (HMAC), unlike a token,
-- which only has to be recognised and is kept as a hash. It is shown once.
create table webhooks (
    id              uuid constraint webhooks_pkey primary key,
    campaign_id     uuid not null constraint webhooks_campaign_id_fkey references campaigns (id),
    url             text not null,
    -- The subscribed event types, space-separated, each one of events.type.
    event_types     text not null,
    secret          text not null,
    enabled         boolean not null,
    cursor          bigint not null,
    -- The failed attempts in a row, when the current failure streak began,
    -- and when the next attempt is due (back-off).
    failures        integer not null default 0,
    failing_since   timestamptz,
    next_attempt_at timestamptz,
    last_error      text,
    -- Set when Relevo switched it off after failing for 24 hours.
    disabled_at     timestamptz,
    lease_owner     uuid,
    lease_until     timestamptz,
    created_at      timestamptz not null,
    updated_at      timestamptz not null
);
-- The campaign page's list, oldest first.
create index webhooks_campaign_idx on webhooks (campaign_id, created_at, id);

-- Every delivery attempt; the webhook page shows the newest 100, and each
-- batch's write deletes older ones.
create table webhook_attempts (
    id          uuid constraint webhook_attempts_pkey primary key,
    webhook_id  uuid not null constraint webhook_attempts_webhook_id_fkey references webhooks (id),
    at          timestamptz not null,
    event_id    bigint not null,
    event_type  text not null,
    status_code integer,
    latency_ms  integer not null,
    error       text
);
create index webhook_attempts_webhook_idx on webhook_attempts (webhook_id, at, id);
