-- Exact links and the integration API's outbox.
-- Constraint and index names match the SQLite migration one for one.

-- The bulk job that wrote a history row (null for every other writer),
-- written in the transition's own transaction: a job resumed after a crash
-- recognises exactly its own change instead of guessing from kind and actor.
alter table conversation_events add column bulk_job_id uuid references bulk_jobs (id);
-- Superseded by `conversation_events.bulk_job_id`.
alter table bulk_job_items drop column attempt_version;
