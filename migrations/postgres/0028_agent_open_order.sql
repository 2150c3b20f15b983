-- One agent's open work in each order of the Mensajes page (issue 23,
-- item 1). The agent's indexes were `(agent_id, last_activity_at, folio)`
-- and `(agent_id, status_since, folio)`, holding every conversation the
-- agent ever had, and `(agent_id, is_open)`, unordered. So "Abiertas" or
-- "Rezagadas" of an agent walked the agent's whole history in the page's
-- order and read each row to find the open ones: an agent with 9,000
-- closed conversations and none open read 9,000 rows (9,300 pages, 19 ms
-- on SQLite at 1,000,000 conversations) to show an empty page, and every
-- console request that chose such an agent paid for it.
--
-- These two are the open and the closed ranges of an agent in each order.
-- The first replaces `(agent_id, is_open)`, of which it is a prefix. They
-- do not hold the campaign: with it, SQLite's planner read "Todas" of an
-- agent (open and closed) from the status order's index for the campaign
-- check it answers, and sorted all 9,000 rows (80 ms).
drop index conversations_agent_open_idx;
create index conversations_agent_open_activity_idx
    on conversations (agent_id, is_open, last_activity_at, folio);
create index conversations_agent_open_status_since_idx
    on conversations (agent_id, is_open, status_since, folio);
