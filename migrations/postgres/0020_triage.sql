-- Triage of stuck conversations ("rezagadas").
--
-- Each campaign says after how many minutes without activity an open
-- conversation counts as stuck (30 by default, up to a week).
alter table campaigns add column stale_after_minutes bigint not null default 30
    constraint campaigns_stale_after_minutes_check check (stale_after_minutes between 1 and 10080);

-- When the conversation entered its current status; null while it is still
-- in the status it started in (its `started_at` then). Written by the
-- transitions' compare-and-set only, which is the one place a status changes.
alter table conversations add column status_since timestamptz;
update conversations c set status_since = e.at
from (select conversation_id, max(at) as at from conversation_events
      where kind <> 'created' and (from_status is null or from_status <> to_status)
      group by conversation_id) e
where e.conversation_id = c.id;
