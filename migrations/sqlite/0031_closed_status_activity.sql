-- Each closed status's activity order of its own (see
-- migrations/postgres: PostgreSQL's cost model needs them to stop walking
-- every status's newest activity for a Super Administrador's
-- "Canceladas"). SQLite's planner keeps reading the status's range of
-- `conversations_status_activity_idx` (the plans of every "Canceladas"
-- view were the same before and after at 1,000,000 conversations); the
-- indexes are here so that both schemas stay alike. A closed
-- conversation's activity rarely changes, so they cost a write only when
-- a conversation closes.
create index conversations_cancelled_activity_idx
    on conversations (last_activity_at, folio) where status = 'cancelled';
create index conversations_resolved_activity_idx
    on conversations (last_activity_at, folio) where status = 'resolved';
