-- "Más tiempo en el estatus": Mensajes pages ordered by when a conversation
-- entered its status, keyset-paged like the activity order, so
-- `status_since` is now always set: from `started_at` for the conversations
-- that never changed status, and on insert by this trigger for every writer
-- that does not set it (the compare-and-set moves it afterwards).
update conversations set status_since = started_at where status_since is null;

create function conversations_status_since_default() returns trigger
language plpgsql as $$
begin
    new.status_since := coalesce(new.status_since, new.started_at);
    return new;
end;
$$;

create trigger conversations_status_since_insert before insert on conversations
for each row execute function conversations_status_since_default();

-- One index per list filter the activity order has an index for (all,
-- open, one status; each within a campaign too).
create index conversations_status_since_idx on conversations (status_since, folio);
create index conversations_open_status_since_idx on conversations (is_open, status_since, folio);
create index conversations_status_status_since_idx on conversations (status, status_since, folio);
create index conversations_campaign_status_since_idx on conversations (campaign_id, status_since, folio);
create index conversations_campaign_open_status_since_idx on conversations (campaign_id, is_open, status_since, folio);
create index conversations_campaign_status_status_since_idx on conversations (campaign_id, status, status_since, folio);
