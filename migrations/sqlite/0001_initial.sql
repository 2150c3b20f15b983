-- Relevo initial schema (SQLite dialect).
-- Timestamps are RFC 3339 text in UTC with a fixed six-digit fraction, so text
-- order is time order. UUIDs are 16-byte blobs. Booleans are 0/1 integers.
-- Constraint and index names match the PostgreSQL migration one for one.

create table settings (
    key   text primary key,
    value text not null
);

create table users (
    id            blob primary key,
    email         text not null,
    name          text not null,
    role          text not null constraint users_role_check check (role in ('super_admin', 'admin', 'agent')),
    active        integer not null default 1,
    connected     integer not null default 0,
    password_hash text,
    created_at    text not null,
    updated_at    text not null
);
-- E-mails are stored lower-cased, so this is the case-insensitive uniqueness rule.
create unique index users_email_key on users (email);
create index users_role_idx on users (role, name);

-- A login session: the session cookie carries only its id, so logout and
-- deactivation can end it on the server.
create table user_sessions (
    id          blob primary key,
    user_id     blob not null references users (id) on delete cascade,
    created_at  text not null,
    last_seen_at text not null
);
create index user_sessions_user_idx on user_sessions (user_id);

create table campaigns (
    id         blob primary key,
    name       text not null,
    name_key   text not null,
    active     integer not null default 1,
    timezone   text not null,
    created_at text not null,
    updated_at text not null
);
create unique index campaigns_name_key on campaigns (name_key);

-- Weekly schedule: weekday 0 = Monday. closes_at < opens_at crosses midnight.
create table campaign_schedules (
    campaign_id blob not null references campaigns (id) on delete cascade,
    weekday     integer not null constraint campaign_schedules_weekday_check check (weekday between 0 and 6),
    opens_at    text not null,
    closes_at   text not null,
    primary key (campaign_id, weekday)
);

-- Administradores and Agentes assigned to a campaign (the user's role says which).
create table campaign_members (
    campaign_id blob not null references campaigns (id) on delete cascade,
    user_id     blob not null references users (id) on delete cascade,
    created_at  text not null,
    primary key (campaign_id, user_id)
);
create index campaign_members_user_idx on campaign_members (user_id, campaign_id);

create table channels (
    id          blob primary key,
    campaign_id blob not null references campaigns (id),
    kind        text not null constraint channels_kind_check check (kind in ('whatsapp', 'messenger', 'telegram', 'instagram', 'web')),
    name        text not null,
    token_hash  text not null,
    active      integer not null default 1,
    created_at  text not null
);
create unique index channels_token_hash_key on channels (token_hash);
create index channels_campaign_idx on channels (campaign_id, kind);

create table integration_tokens (
    id         blob primary key,
    name       text not null,
    token_hash text not null,
    created_at text not null,
    revoked_at text
);
create unique index integration_tokens_token_hash_key on integration_tokens (token_hash);

-- A customer as seen on one channel: a phone number or the channel's own code.
create table contacts (
    id          blob primary key,
    channel_id  blob not null references channels (id),
    external_id text not null,
    name        text,
    name_key    text,
    created_at  text not null
);
create unique index contacts_channel_external_key on contacts (channel_id, external_id);
create index contacts_external_idx on contacts (external_id);
create index contacts_name_idx on contacts (name_key);

create table closure_categories (
    id          blob primary key,
    campaign_id blob not null references campaigns (id),
    name        text not null,
    name_key    text not null,
    position    integer not null default 0,
    active      integer not null default 1,
    created_at  text not null
);
create unique index closure_categories_name_key on closure_categories (campaign_id, name_key);

create table closure_subcategories (
    id          blob primary key,
    category_id blob not null references closure_categories (id),
    name        text not null,
    name_key    text not null,
    position    integer not null default 0,
    active      integer not null default 1,
    created_at  text not null
);
create unique index closure_subcategories_name_key on closure_subcategories (category_id, name_key);

-- folio is the short number people read and search; id is the stable API id.
create table conversations (
    folio                  integer primary key autoincrement,
    id                     blob not null constraint conversations_id_key unique,
    campaign_id            blob not null references campaigns (id),
    channel_id             blob not null references channels (id),
    contact_id             blob not null references contacts (id),
    status                 text not null constraint conversations_status_check check (status in ('icr', 'assigned', 'in_progress', 'out_of_hours', 'agents_offline', 'resolved', 'cancelled')),
    is_open                integer not null,
    version                integer not null default 1,
    agent_id               blob references users (id),
    started_at             text not null,
    last_activity_at       text not null,
    closed_at              text,
    closed_by              blob references users (id),
    closer_kind            text constraint conversations_closer_kind_check check (closer_kind in ('system', 'agent', 'administrator')),
    closure_category_id    blob references closure_categories (id),
    closure_subcategory_id blob references closure_subcategories (id),
    closure_comment        text,
    reactivates_id         blob references conversations (id)
);
-- Keyset paging is (last_activity_at desc, folio desc); each filter gets an index
-- that ends with that pair so a page is an index range scan.
create index conversations_activity_idx on conversations (last_activity_at, folio);
create index conversations_open_activity_idx on conversations (is_open, last_activity_at, folio);
create index conversations_status_activity_idx on conversations (status, last_activity_at, folio);
create index conversations_campaign_activity_idx on conversations (campaign_id, last_activity_at, folio);
create index conversations_campaign_open_activity_idx on conversations (campaign_id, is_open, last_activity_at, folio);
create index conversations_campaign_status_activity_idx on conversations (campaign_id, status, last_activity_at, folio);
create index conversations_agent_activity_idx on conversations (agent_id, last_activity_at, folio);
create index conversations_channel_activity_idx on conversations (channel_id, last_activity_at, folio);
create index conversations_contact_idx on conversations (contact_id, started_at);
create index conversations_started_idx on conversations (started_at);

-- One row per transition, whoever made it.
create table conversation_events (
    id              blob primary key,
    conversation_id blob not null references conversations (id),
    at              text not null,
    kind            text not null constraint conversation_events_kind_check check (kind in ('created', 'handoff', 'assigned', 'first_reply', 'resolved', 'cancelled', 'reassigned')),
    from_status     text,
    to_status       text not null,
    from_agent_id   blob references users (id),
    to_agent_id     blob references users (id),
    category_id     blob references closure_categories (id),
    subcategory_id  blob references closure_subcategories (id),
    comment         text,
    actor_kind      text not null constraint conversation_events_actor_kind_check check (actor_kind in ('customer', 'system', 'agent', 'administrator')),
    actor_id        blob references users (id)
);
create index conversation_events_conversation_idx on conversation_events (conversation_id, at);

-- Inbound message ids already processed, so webhook retries are ignored.
create table inbound_messages (
    channel_id      blob not null references channels (id),
    message_id      text not null,
    conversation_id blob not null references conversations (id),
    received_at     text not null,
    primary key (channel_id, message_id)
);

create table audit_log (
    id          blob primary key,
    at          text not null,
    actor_id    blob references users (id),
    action      text not null,
    object_kind text not null,
    object_id   text,
    summary     text not null
);
create index audit_log_at_idx on audit_log (at);

-- Failed logins per key ('account:<email>' or 'address:<ip>').
create table login_throttle (
    key           text primary key,
    failures      integer not null,
    window_start  text not null,
    locked_until  text
);

-- Folios start at 10001 so they read as real case numbers.
insert into sqlite_sequence (name, seq) values ('conversations', 10000);
