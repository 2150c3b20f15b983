-- The status totals per campaign become totals per campaign and channel
-- (issue 23, item 1): a Mensajes view filtered by channel ("WhatsApp")
-- counted every conversation of that channel to show its status tabs
-- (440 ms for the first `?canal=whatsapp` view at 1,000,000
-- conversations); it now adds up a handful of kept totals, as a view by
-- campaign always did. A campaign's total is the sum over its channels.
-- The trigger keeps them exact on every write path, in the write's
-- transaction, as in migration 0006. Names match the SQLite migration.
--
-- Lock order: a batch of deliveries inserts its new conversations sorted by
-- campaign and channel (see `pg_deliveries`), so concurrent batches take
-- the totals' row locks in one order.
drop trigger conversation_counts_insert on conversations;
drop trigger conversation_counts_update on conversations;
drop trigger conversation_counts_delete on conversations;
drop table conversation_counts;

create table conversation_counts (
    campaign_id uuid not null references campaigns (id),
    channel_id  uuid not null references channels (id),
    status      text not null,
    total       bigint not null,
    primary key (campaign_id, channel_id, status)
);
-- A channel filter without a campaign (a Super Administrador's "WhatsApp").
create index conversation_counts_channel_idx on conversation_counts (channel_id, status);

insert into conversation_counts (campaign_id, channel_id, status, total)
select campaign_id, channel_id, status, count(*) from conversations
group by campaign_id, channel_id, status;

create or replace function conversation_counts_maintain() returns trigger language plpgsql as $$
begin
    if tg_op in ('UPDATE', 'DELETE') then
        update conversation_counts set total = total - 1
        where campaign_id = old.campaign_id and channel_id = old.channel_id
          and status = old.status;
    end if;
    if tg_op in ('INSERT', 'UPDATE') then
        insert into conversation_counts (campaign_id, channel_id, status, total)
        values (new.campaign_id, new.channel_id, new.status, 1)
        on conflict (campaign_id, channel_id, status)
        do update set total = conversation_counts.total + 1;
    end if;
    return null;
end;
$$;

create trigger conversation_counts_insert after insert on conversations
for each row execute function conversation_counts_maintain();

create trigger conversation_counts_update after update of status, campaign_id, channel_id on conversations
for each row when (old.status is distinct from new.status
    or old.campaign_id is distinct from new.campaign_id
    or old.channel_id is distinct from new.channel_id)
execute function conversation_counts_maintain();

create trigger conversation_counts_delete after delete on conversations
for each row execute function conversation_counts_maintain();
