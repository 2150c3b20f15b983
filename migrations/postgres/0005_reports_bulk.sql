-- Reports, bulk actions and automatic cancellation.
-- Constraint and index names match the PostgreSQL migration one for one.

-- Reportes count closing history rows by time, kind and campaign: the
-- report's range is a range scan on (kind, at).
create index conversation_events_kind_at_idx on conversation_events (kind, at);
-- The CSV of a report lists the conversations closed in a range.
create index conversations_closed_idx on conversations (closed_at, folio);

-- A bulk Cancelar/Reasignar: what was asked, by whom, under which scope, and
-- how far it got. Progress lives here so it survives a reload and a restart;
-- `lease_until` lets exactly one instance work on a job at a time.
create table bulk_jobs (
    id              uuid primary key,
    created_by      uuid not null references users (id),
    -- The creator's scope when the job was created: 1 for every campaign,
    -- otherwise the comma-separated campaign ids.
    scope_all       boolean not null,
    scope_campaigns text not null,
    action          text not null constraint bulk_jobs_action_check check (action in ('cancel', 'reassign')),
    category_id     uuid references closure_categories (id),
    subcategory_id  uuid references closure_subcategories (id),
    agent_id        uuid references users (id),
    comment         text not null,
    total           bigint not null,
    status          text not null constraint bulk_jobs_status_check check (status in ('running', 'finished')),
    lease_until     timestamptz,
    created_at      timestamptz not null,
    finished_at     timestamptz
);
create index bulk_jobs_creator_idx on bulk_jobs (created_by, created_at);
create index bulk_jobs_status_idx on bulk_jobs (status, lease_until);

-- One conversation of a bulk job and what happened to it. `requested` is the
-- folio as the selection named it; `conversation_id` is set only when it
-- exists in the creator's scope.
create table bulk_job_items (
    job_id          uuid not null references bulk_jobs (id) on delete cascade,
    position        bigint not null,
    requested       text not null,
    conversation_id uuid references conversations (id),
    folio           bigint,
    -- The version a transition was computed from, written just before it is
    -- applied, so a job resumed after a crash recognises its own change.
    attempt_version bigint,
    outcome         text constraint bulk_job_items_outcome_check check (outcome in ('applied', 'already_final', 'invalid', 'not_found', 'conflict')),
    reason          text,
    message         text,
    processed_at    timestamptz,
    primary key (job_id, position)
);
create index bulk_job_items_outcome_idx on bulk_job_items (job_id, outcome);

-- Cancelación automática: per campaign, cancel conversations that stayed in
-- one open status too long, with the rule's closure category.
create table auto_cancel_rules (
    id                 uuid primary key,
    campaign_id        uuid not null references campaigns (id),
    name               text not null,
    status             text not null constraint auto_cancel_rules_status_check check (status in ('icr', 'assigned', 'in_progress', 'out_of_hours', 'agents_offline')),
    -- no_customer_message: since the customer's last message;
    -- in_status: since the conversation entered the status.
    measure            text not null constraint auto_cancel_rules_measure_check check (measure in ('no_customer_message', 'in_status')),
    window_minutes     bigint not null constraint auto_cancel_rules_window_check check (window_minutes > 0),
    category_id        uuid not null references closure_categories (id),
    subcategory_id     uuid references closure_subcategories (id),
    comment            text,
    nudge_text         text,
    nudge_lead_minutes bigint constraint auto_cancel_rules_nudge_check check (nudge_lead_minutes is null or nudge_lead_minutes > 0),
    active             boolean not null default true,
    created_by         uuid references users (id),
    created_at         timestamptz not null,
    updated_at         timestamptz not null
);
create index auto_cancel_rules_campaign_idx on auto_cancel_rules (campaign_id, active);

-- A nudge sent before an automatic cancellation (recorded as an outbound
-- message; there is no real channel connector yet). One per rule,
-- conversation and period of silence (`since`), whichever instance sends it.
create table auto_cancel_nudges (
    rule_id         uuid not null references auto_cancel_rules (id),
    conversation_id uuid not null references conversations (id),
    since           timestamptz not null,
    sent_at         timestamptz not null,
    message_id      uuid not null references messages (id),
    primary key (rule_id, conversation_id, since)
);
create index auto_cancel_nudges_conversation_idx on auto_cancel_nudges (conversation_id, sent_at);
