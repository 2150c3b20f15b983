-- "Más tiempo en el estatus" for one agent's conversations: the activity
-- order has `conversations_agent_activity_idx`, and without its twin this
-- order read every conversation the agent ever had and sorted them (or, on
-- PostgreSQL, walked the whole status_since index for the agent's rows).
-- Found by tests/query_plans.rs enumerating every combination of filters.
create index conversations_agent_status_since_idx on conversations (agent_id, status_since, folio);
