-- A bulk job acts only while its creator may act: the worker checks, before
-- each item, that the creator is still active, still an administrator and
-- still assigned to the conversation's campaign, and otherwise stops the
-- job for good: status 'stopped' (what it did stays done, the rest is left
-- untouched; an audit row names the job and the creator).
-- Constraint and index names match the SQLite migration one for one
-- (SQLite rebuilds bulk_jobs to widen its check; here it widens in place).
alter table bulk_jobs drop constraint bulk_jobs_status_check;
alter table bulk_jobs add constraint bulk_jobs_status_check
    check (status in ('running', 'finished', 'stopped'));
