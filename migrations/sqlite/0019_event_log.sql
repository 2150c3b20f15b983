-- The ordered event log (issue 21): one row per committed change of a
-- conversation, written by triggers on conversation_events (every
-- transition, whoever made it: the console, the API, the router, bulk jobs,
-- automatic rules, the customer deliveries) and on messages (every message
-- received or sent, the nudges included), so each event is part of the
-- transaction of its change: a rolled-back change leaves no event, and no
-- write path can forget one.
-- Constraint and index names match the PostgreSQL migration one for one.
--
-- `cursor` is the public, monotonic id consumers page by. SQLite has one
-- writer, so the order rows are inserted in is the order they commit in:
-- the trigger gives each row its `seq` and the same `cursor` at once, from
-- the autoincrement counter (never reused, even after the purge). On
-- PostgreSQL the cursor is assigned after commit by the sequencer (see the
-- PostgreSQL migration of the same name).
create table events (
    seq               integer constraint events_pkey primary key autoincrement,
    cursor            integer,
    type              text not null constraint events_type_check check (type in ('created', 'reactivated', 'handed_off', 'out_of_hours', 'agents_offline', 'assigned', 'reassigned', 'first_reply', 'resolved', 'cancelled', 'message_received', 'message_sent', 'customer_nudge')),
    occurred_at       text not null,
    conversation_id   blob not null,
    folio             integer not null,
    campaign_id       blob not null,
    channel_id        blob not null,
    status            text not null,
    agent_id          blob,
    previous_status   text,
    previous_agent_id blob,
    actor_kind        text not null constraint events_actor_kind_check check (actor_kind in ('customer', 'agent', 'bot', 'administrator', 'router', 'rule', 'bulk_job', 'system')),
    actor_id          blob,
    actor_name        text,
    history_id        blob,
    message_id        blob,
    category_id       blob,
    subcategory_id    blob,
    comment           text,
    reactivates_id    blob
);
-- A consumer's page: its campaign's events after its cursor, in order.
create index events_campaign_cursor_idx on events (campaign_id, cursor);
-- The newest cursor (the high-water mark) and the purge's oldest events.
create unique index events_cursor_key on events (cursor);
-- Rows still waiting for a cursor (PostgreSQL's sequencer; empty here).
create index events_unsequenced_idx on events (seq) where cursor is null;

-- The highest cursor the purge has deleted: a cursor below it may have
-- missed an event (410 cursor_expired); the high-water mark never goes
-- below it, even when every event was purged.
create table event_log_state (
    id             integer constraint event_log_state_pkey primary key constraint event_log_state_id_check check (id = 1),
    purged_through integer not null default 0
);
insert into event_log_state (id, purged_through) values (1, 0);

-- A transition: the conversation as the transition left it, what it was
-- before, who did it (a rule or a bulk job named as such), the closure.
create trigger events_from_history after insert on conversation_events
begin
    insert into events (seq, cursor, type, occurred_at, conversation_id, folio, campaign_id,
        channel_id, status, agent_id, previous_status, previous_agent_id, actor_kind, actor_id,
        actor_name, history_id, category_id, subcategory_id, comment, reactivates_id)
    select n.next, n.next,
        case
            when new.kind = 'created' and c.reactivates_id is not null then 'reactivated'
            when new.kind = 'created' then 'created'
            when new.kind = 'handoff' and new.to_status in ('out_of_hours', 'agents_offline') then new.to_status
            when new.kind = 'handoff' then 'handed_off'
            else new.kind
        end,
        new.at, c.id, c.folio, c.campaign_id, c.channel_id, new.to_status, new.to_agent_id,
        new.from_status, new.from_agent_id,
        case
            when new.bulk_job_id is not null then 'bulk_job'
            when new.auto_cancel_rule_id is not null then 'rule'
            when new.actor_kind = 'system' then 'router'
            else new.actor_kind
        end,
        coalesce(new.bulk_job_id, new.auto_cancel_rule_id, new.actor_id),
        case
            when new.auto_cancel_rule_id is not null
                then (select r.name from auto_cancel_rules r where r.id = new.auto_cancel_rule_id)
            else (select u.name from users u where u.id = new.actor_id)
        end,
        new.id, new.category_id, new.subcategory_id, new.comment,
        case when new.kind = 'created' then c.reactivates_id end
    from conversations c,
        (select coalesce((select s.seq from sqlite_sequence s where s.name = 'events'), 0) + 1 as next) n
    where c.id = new.conversation_id;
end;

-- A message: received from the customer, sent by an agent or the bot, or
-- a nudge Relevo sent; the conversation as it is at that moment.
create trigger events_from_messages after insert on messages
begin
    insert into events (seq, cursor, type, occurred_at, conversation_id, folio, campaign_id,
        channel_id, status, agent_id, previous_status, previous_agent_id, actor_kind, actor_id,
        actor_name, message_id)
    select n.next, n.next,
        case new.author
            when 'customer' then 'message_received'
            when 'system' then 'customer_nudge'
            else 'message_sent'
        end,
        new.at, c.id, c.folio, c.campaign_id, c.channel_id, c.status, c.agent_id,
        c.status, c.agent_id, new.author, new.agent_id,
        (select u.name from users u where u.id = new.agent_id),
        new.id
    from conversations c,
        (select coalesce((select s.seq from sqlite_sequence s where s.name = 'events'), 0) + 1 as next) n
    where c.id = new.conversation_id;
end;
