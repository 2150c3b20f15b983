-- Exact links and the integration API's outbox.
-- Constraint and index names match the SQLite migration one for one.

-- The bulk job that wrote a history row (null for every other writer),
-- written in the transition's own transaction: a job resumed after a crash
-- recognises exactly its own change instead of guessing from kind and actor.
alter table conversation_events add column bulk_job_id uuid references bulk_jobs (id);
-- Superseded by `conversation_events.bulk_job_id`.
alter table bulk_job_items drop column attempt_version;

-- Messages Relevo sends to customers (today: automatic-cancellation nudges),
-- waiting for the channel's connector to collect them. The server never
-- calls out: the connector pages through its channel's pending rows with the
-- channel token and acknowledges each delivery. The text is the recorded
-- outbound message's; the row is written in the same transaction.
create table outbox_messages (
    id              uuid primary key,
    channel_id      uuid not null references channels (id),
    conversation_id uuid not null references conversations (id),
    message_id      uuid not null constraint outbox_messages_message_key unique references messages (id),
    kind            text not null constraint outbox_messages_kind_check check (kind in ('nudge')),
    created_at      timestamptz not null,
    delivered_at    timestamptz
);
-- A connector's poll: its channel's undelivered rows in id order (keyset).
create index outbox_messages_pending_idx on outbox_messages (channel_id, id) where delivered_at is null;
