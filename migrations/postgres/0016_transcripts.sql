-- Transcripts: who wrote each message (the customer, an agent, the bot
-- engine, or Relevo itself: automatic-cancellation nudges), the bot
-- engine's turns (idempotent per conversation and bot message id), keyset
-- paging of a conversation's messages, and the retention purge of message
-- text: the row stays, its text becomes null and text_purged_at says when.
-- Constraint and index names match the SQLite migration one for one
-- (SQLite rebuilds messages; here it changes in place).

-- Every message so far: the customer's are the inbound ones, an agent's
-- name the agent, and the outbound ones without an agent are the nudges.
alter table messages add column author text;
update messages set author = case when direction = 'inbound' then 'customer'
                                  when agent_id is not null then 'agent'
                                  else 'system' end;
alter table messages alter column author set not null;
alter table messages add constraint messages_author_check
    check (author in ('customer', 'agent', 'bot', 'system'));
alter table messages add constraint messages_author_direction_check
    check ((author = 'customer') = (direction = 'inbound'));
alter table messages add constraint messages_author_agent_check
    check ((author = 'agent') = (agent_id is not null));

alter table messages alter column text drop not null;
alter table messages add column text_purged_at timestamptz;
alter table messages add constraint messages_text_purged_check
    check ((text is null) = (text_purged_at is not null));

-- A conversation's transcript, a page at a time in (at, id) order (keyset);
-- it also serves the latest customer message of a conversation.
drop index messages_conversation_idx;
create index messages_transcript_idx on messages (conversation_id, at, id);
-- The retention purge: the oldest texts not purged yet.
create index messages_unpurged_at_idx on messages (at) where text is not null;
-- A bot turn is recorded once per conversation and bot message id (retries).
create unique index messages_bot_message_key on messages (conversation_id, message_id) where author = 'bot';
