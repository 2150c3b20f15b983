-- The status totals of each agent, per campaign and channel (issue 23,
-- item 1), kept like `conversation_counts` (migration 0024) by triggers in
-- the write's transaction. A Mensajes view of one agent counted each status
-- up to a cap by reading the agent's rows (every closed status read the
-- agent's closed rows: 20 to 60 ms on SQLite and up to 400 ms on
-- PostgreSQL at 1,000,000 conversations), and "Agente desconectado"
-- counted the Asignada and En Proceso rows of every disconnected agent;
-- both now add up a handful of kept totals, and the tabs are exact. A
-- conversation without an agent has no row here. Names match the
-- PostgreSQL migration.
create table agent_conversation_counts (
    agent_id    blob not null references users (id),
    campaign_id blob not null references campaigns (id),
    channel_id  blob not null references channels (id),
    status      text not null,
    total       integer not null,
    primary key (agent_id, campaign_id, channel_id, status)
);

insert into agent_conversation_counts (agent_id, campaign_id, channel_id, status, total)
select agent_id, campaign_id, channel_id, status, count(*) from conversations
where agent_id is not null
group by agent_id, campaign_id, channel_id, status;

create trigger agent_conversation_counts_insert after insert on conversations
when new.agent_id is not null
begin
    insert into agent_conversation_counts (agent_id, campaign_id, channel_id, status, total)
    values (new.agent_id, new.campaign_id, new.channel_id, new.status, 1)
    on conflict (agent_id, campaign_id, channel_id, status) do update set total = total + 1;
end;

create trigger agent_conversation_counts_update
after update of status, campaign_id, channel_id, agent_id on conversations
when old.status <> new.status or old.campaign_id <> new.campaign_id
    or old.channel_id <> new.channel_id or old.agent_id is not new.agent_id
begin
    -- Without an agent before, no row matches.
    update agent_conversation_counts set total = total - 1
    where agent_id = old.agent_id and campaign_id = old.campaign_id
      and channel_id = old.channel_id and status = old.status;
    -- `where` before `on conflict`: SQLite's upsert of a select needs one.
    insert into agent_conversation_counts (agent_id, campaign_id, channel_id, status, total)
    select new.agent_id, new.campaign_id, new.channel_id, new.status, 1
    where new.agent_id is not null
    on conflict (agent_id, campaign_id, channel_id, status) do update set total = total + 1;
end;

create trigger agent_conversation_counts_delete after delete on conversations
when old.agent_id is not null
begin
    update agent_conversation_counts set total = total - 1
    where agent_id = old.agent_id and campaign_id = old.campaign_id
      and channel_id = old.channel_id and status = old.status;
end;
