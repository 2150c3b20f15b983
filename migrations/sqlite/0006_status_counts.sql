-- Conversations per campaign and status, kept exact by triggers so every
-- write path (console, API, router, bulk jobs, imports) maintains it in the
-- same transaction. The Mensajes status tabs read it instead of counting a
-- million rows on every page view.
create table conversation_counts (
    campaign_id blob not null references campaigns (id),
    status      text not null,
    total       integer not null,
    primary key (campaign_id, status)
);

insert into conversation_counts (campaign_id, status, total)
select campaign_id, status, count(*) from conversations group by campaign_id, status;

create trigger conversation_counts_insert after insert on conversations
begin
    insert into conversation_counts (campaign_id, status, total) values (new.campaign_id, new.status, 1)
    on conflict (campaign_id, status) do update set total = total + 1;
end;

create trigger conversation_counts_update after update of status, campaign_id on conversations
when old.status <> new.status or old.campaign_id <> new.campaign_id
begin
    update conversation_counts set total = total - 1
    where campaign_id = old.campaign_id and status = old.status;
    insert into conversation_counts (campaign_id, status, total) values (new.campaign_id, new.status, 1)
    on conflict (campaign_id, status) do update set total = total + 1;
end;

create trigger conversation_counts_delete after delete on conversations
begin
    update conversation_counts set total = total - 1
    where campaign_id = old.campaign_id and status = old.status;
end;
