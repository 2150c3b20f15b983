-- A Super Administrador's "Canceladas" by "Más reciente" (issue 23,
-- item 1): 21 to 46 ms at 1,000,000 conversations. PostgreSQL walked
-- `conversations_activity_idx` from the newest activity and passed about
-- 100,000 open conversations before its 51 cancelled ones: its cost model
-- spreads a status evenly over the activity order and cannot know that
-- the newest activity is the open conversations'. The status's own range
-- of `conversations_status_activity_idx` lost to that walk on cost, its
-- first column (the status) being uncorrelated with where rows are
-- stored. Each closed status's activity order of its own answers in
-- 0.05 ms, and PostgreSQL chooses it: its first column is the activity,
-- which the rows' storage follows. A closed conversation's activity
-- rarely changes, so these cost a write only when a conversation closes.
create index conversations_cancelled_activity_idx
    on conversations (last_activity_at, folio) where status = 'cancelled';
create index conversations_resolved_activity_idx
    on conversations (last_activity_at, folio) where status = 'resolved';
