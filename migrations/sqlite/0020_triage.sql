-- Triage of stuck conversations ("rezagadas").
--
-- Each campaign says after how many minutes without activity an open
-- conversation counts as stuck (30 by default, up to a week).
alter table campaigns add column stale_after_minutes integer not null default 30
    constraint campaigns_stale_after_minutes_check check (stale_after_minutes between 1 and 10080);

-- When the conversation entered its current status; null while it is still
-- in the status it started in (its `started_at` then). Written by the
-- transitions' compare-and-set only, which is the one place a status changes.
alter table conversations add column status_since text;
update conversations set status_since = (
    select max(e.at) from conversation_events e
    where e.conversation_id = conversations.id and e.kind <> 'created'
      and (e.from_status is null or e.from_status <> e.to_status));
