-- Integration API: tokens scoped to a campaign, idempotent inbound messages,
-- message texts, and the indexes the router's queries need.
-- Constraint and index names match the PostgreSQL migration one for one.

-- An integration token acts for one campaign only. Tokens created before this
-- migration have none and are refused.
alter table integration_tokens add column campaign_id blob references campaigns (id);

-- Whether the first delivery of this message_id started its conversation, so
-- a webhook retry gets exactly the first response back.
alter table inbound_messages add column started_conversation integer not null default 0;

-- Texts exchanged in a conversation, kept as received (control characters
-- and 4-byte emoji included).
create table messages (
    id              blob primary key,
    conversation_id blob not null references conversations (id),
    direction       text not null constraint messages_direction_check check (direction in ('inbound', 'outbound')),
    -- The channel's message id (inbound) or the replying agent (outbound).
    message_id      text,
    agent_id        blob references users (id),
    text            text not null,
    at              text not null
);
create index messages_conversation_idx on messages (conversation_id, at);

-- The router counts each connected agent's open conversations.
create index conversations_agent_open_idx on conversations (agent_id, is_open);
-- Waiting conversations of a campaign, oldest first.
create index conversations_campaign_status_started_idx on conversations (campaign_id, status, started_at, folio);
