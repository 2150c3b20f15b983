-- The Mensajes filters name columns that follow from one another: an agent
-- works in one campaign, a channel belongs to one campaign, and a status
-- says whether the conversation is open. PostgreSQL's planner multiplies
-- the selectivities of conditions as if they were independent, so "one
-- agent of this campaign" was 194 rows to it against 9,000 at 1,000,000
-- conversations: it chose to read all of them through a bitmap and sort
-- them (80 ms for an agent's page searched by a common name) instead of
-- walking the agent's activity order to the page's 51 (8 ms). Functional
-- dependencies between these columns, gathered by `analyze`, correct it.
create statistics conversations_filter_dependencies (dependencies)
    on campaign_id, channel_id, agent_id, status, is_open from conversations;
analyze conversations;
