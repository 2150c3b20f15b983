-- One agent's status tabs under a date range (issue 23, item 1). Without a
-- date, an agent's tabs are sums of `agent_conversation_counts`; with one,
-- each status is counted up to the cap (`COUNT_CAP`) from the agent's
-- activity index, reading every row for its start date and its status:
-- about 6,000 table pages a view for an agent with 9,000 conversations
-- (SQLite at 1,000,000 conversations, read again after every write). This
-- index is each status's start range of an agent, with the campaign for
-- the scope's check: a count reads the index alone. It is not in the
-- activity's way: a customer message does not update it.
create index conversations_agent_status_started_idx
    on conversations (agent_id, status, started_at, campaign_id);
