-- A bulk job acts only while its creator may act: the worker checks, before
-- each item, that the creator is still active, still an administrator and
-- still assigned to the conversation's campaign, and otherwise stops the
-- job for good: status 'stopped' (what it did stays done, the rest is left
-- untouched; an audit row names the job and the creator).
-- Constraint and index names match the PostgreSQL migration one for one.
--
-- SQLite cannot alter a check, so bulk_jobs is rebuilt with the same
-- columns, names and rows, inside this migration's transaction, with
-- foreign keys still enforced but deferred to the commit:
-- 1. its rows and its items' rows are copied aside (the items because
--    dropping the jobs would delete them through their cascade);
-- 2. the old jobs go, the new ones are created with the wider check and
--    filled back; the history rows that name a job (bulk_job_id) then
--    find it again, and so do the items put back;
-- 3. the commit checks every reference.
pragma defer_foreign_keys = on;

create temp table bulk_jobs_before_0013 as select * from bulk_jobs;
create temp table bulk_job_items_before_0013 as select * from bulk_job_items;
delete from bulk_job_items;
drop table bulk_jobs;

create table bulk_jobs (
    id              blob primary key,
    created_by      blob not null references users (id),
    -- The creator's scope when the job was created: 1 for every campaign,
    -- otherwise the comma-separated campaign ids.
    scope_all       integer not null,
    scope_campaigns text not null,
    action          text not null constraint bulk_jobs_action_check check (action in ('cancel', 'reassign')),
    category_id     blob references closure_categories (id),
    subcategory_id  blob references closure_subcategories (id),
    agent_id        blob references users (id),
    comment         text not null,
    total           integer not null,
    status          text not null constraint bulk_jobs_status_check check (status in ('running', 'finished', 'stopped')),
    lease_until     text,
    created_at      text not null,
    finished_at     text
);
create index bulk_jobs_creator_idx on bulk_jobs (created_by, created_at);
create index bulk_jobs_status_idx on bulk_jobs (status, lease_until);

insert into bulk_jobs (id, created_by, scope_all, scope_campaigns, action, category_id,
    subcategory_id, agent_id, comment, total, status, lease_until, created_at, finished_at)
select id, created_by, scope_all, scope_campaigns, action, category_id,
    subcategory_id, agent_id, comment, total, status, lease_until, created_at, finished_at
from temp.bulk_jobs_before_0013;
insert into bulk_job_items (job_id, position, requested, conversation_id, folio, outcome,
    reason, message, processed_at)
select job_id, position, requested, conversation_id, folio, outcome,
    reason, message, processed_at
from temp.bulk_job_items_before_0013;

drop table temp.bulk_jobs_before_0013;
drop table temp.bulk_job_items_before_0013;
