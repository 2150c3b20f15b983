-- Transcripts: who wrote each message (the customer, an agent, the bot
-- engine, or Relevo itself: automatic-cancellation nudges), the bot
-- engine's turns (idempotent per conversation and bot message id), keyset
-- paging of a conversation's messages, and the retention purge of message
-- text: the row stays, its text becomes null and text_purged_at says when.
-- Constraint and index names match the PostgreSQL migration one for one.
--
-- SQLite can neither add a not-null column without a default nor drop a
-- not-null, so messages is rebuilt with the same rows inside this
-- migration's transaction, foreign keys still enforced but deferred to the
-- commit: outbox_messages and auto_cancel_nudges refer to messages (without
-- cascades), lose their parents when the old one is dropped, and find them
-- again when the rows are put back; the commit checks every reference.
pragma defer_foreign_keys = on;

create temp table messages_before_0016 as select * from messages;
drop table messages;

create table messages (
    id              blob primary key,
    conversation_id blob not null references conversations (id),
    direction       text not null constraint messages_direction_check check (direction in ('inbound', 'outbound')),
    message_id      text,
    agent_id        blob references users (id),
    text            text,
    at              text not null,
    author          text not null constraint messages_author_check check (author in ('customer', 'agent', 'bot', 'system')),
    text_purged_at  text,
    constraint messages_author_direction_check check ((author = 'customer') = (direction = 'inbound')),
    constraint messages_author_agent_check check ((author = 'agent') = (agent_id is not null)),
    constraint messages_text_purged_check check ((text is null) = (text_purged_at is not null))
);

-- Every message so far: the customer's are the inbound ones, an agent's
-- name the agent, and the outbound ones without an agent are the nudges.
insert into messages (id, conversation_id, direction, message_id, agent_id, text, at, author,
    text_purged_at)
select id, conversation_id, direction, message_id, agent_id, text, at,
    case when direction = 'inbound' then 'customer'
         when agent_id is not null then 'agent'
         else 'system' end,
    null
from temp.messages_before_0016;
drop table temp.messages_before_0016;

-- A conversation's transcript, a page at a time in (at, id) order (keyset);
-- it also serves the latest customer message of a conversation.
create index messages_transcript_idx on messages (conversation_id, at, id);
-- The retention purge: the oldest texts not purged yet.
create index messages_unpurged_at_idx on messages (at) where text is not null;
-- A bot turn is recorded once per conversation and bot message id (retries).
create unique index messages_bot_message_key on messages (conversation_id, message_id) where author = 'bot';
