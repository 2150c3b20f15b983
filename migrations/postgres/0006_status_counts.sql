-- Conversations per campaign and status, kept exact by triggers so every
-- write path (console, API, router, bulk jobs, imports) maintains it in the
-- same transaction. The Mensajes status tabs read it instead of counting a
-- million rows on every page view.
create table conversation_counts (
    campaign_id uuid not null references campaigns (id),
    status      text not null,
    total       bigint not null,
    primary key (campaign_id, status)
);

insert into conversation_counts (campaign_id, status, total)
select campaign_id, status, count(*) from conversations group by campaign_id, status;

create function conversation_counts_maintain() returns trigger language plpgsql as $$
begin
    if tg_op in ('UPDATE', 'DELETE') then
        update conversation_counts set total = total - 1
        where campaign_id = old.campaign_id and status = old.status;
    end if;
    if tg_op in ('INSERT', 'UPDATE') then
        insert into conversation_counts (campaign_id, status, total) values (new.campaign_id, new.status, 1)
        on conflict (campaign_id, status) do update set total = conversation_counts.total + 1;
    end if;
    return null;
end;
$$;

create trigger conversation_counts_insert after insert on conversations
for each row execute function conversation_counts_maintain();

create trigger conversation_counts_update after update of status, campaign_id on conversations
for each row when (old.status is distinct from new.status or old.campaign_id is distinct from new.campaign_id)
execute function conversation_counts_maintain();

create trigger conversation_counts_delete after delete on conversations
for each row execute function conversation_counts_maintain();
