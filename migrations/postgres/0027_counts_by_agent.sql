-- The status totals of each agent, per campaign and channel (issue 23,
-- item 1), kept like `conversation_counts` (migration 0024) by a trigger in
-- the write's transaction. A Mensajes view of one agent counted each status
-- up to a cap by reading the agent's rows (every closed status read the
-- agent's closed rows: 20 to 60 ms on SQLite and up to 400 ms on
-- PostgreSQL at 1,000,000 conversations), and "Agente desconectado"
-- counted the Asignada and En Proceso rows of every disconnected agent;
-- both now add up a handful of kept totals, and the tabs are exact. A
-- conversation without an agent has no row here. Names match the SQLite
-- migration.
--
-- Lock order: a change of agent touches two agents' rows, and the trigger
-- takes them in agent id order, whichever is the old one, so two
-- reassignments crossing between the same two agents wait for each other
-- instead of deadlocking. A transition locks its conversation, then its
-- campaign's totals (migration 0024), then these.
create table agent_conversation_counts (
    agent_id    uuid not null references users (id),
    campaign_id uuid not null references campaigns (id),
    channel_id  uuid not null references channels (id),
    status      text not null,
    total       bigint not null,
    primary key (agent_id, campaign_id, channel_id, status)
);

insert into agent_conversation_counts (agent_id, campaign_id, channel_id, status, total)
select agent_id, campaign_id, channel_id, status, count(*) from conversations
where agent_id is not null
group by agent_id, campaign_id, channel_id, status;

create or replace function agent_conversation_counts_maintain() returns trigger language plpgsql as $$
declare
    -- Whether the old row's agent is counted out after the new one's is
    -- counted in: only when both have one and the new agent's id is lower.
    old_last boolean := tg_op = 'UPDATE' and old.agent_id is not null
        and new.agent_id is not null and new.agent_id < old.agent_id;
begin
    if tg_op in ('UPDATE', 'DELETE') and old.agent_id is not null and not old_last then
        update agent_conversation_counts set total = total - 1
        where agent_id = old.agent_id and campaign_id = old.campaign_id
          and channel_id = old.channel_id and status = old.status;
    end if;
    if tg_op in ('INSERT', 'UPDATE') and new.agent_id is not null then
        insert into agent_conversation_counts (agent_id, campaign_id, channel_id, status, total)
        values (new.agent_id, new.campaign_id, new.channel_id, new.status, 1)
        on conflict (agent_id, campaign_id, channel_id, status)
        do update set total = agent_conversation_counts.total + 1;
    end if;
    if old_last then
        update agent_conversation_counts set total = total - 1
        where agent_id = old.agent_id and campaign_id = old.campaign_id
          and channel_id = old.channel_id and status = old.status;
    end if;
    return null;
end;
$$;

create trigger agent_conversation_counts_insert after insert on conversations
for each row when (new.agent_id is not null)
execute function agent_conversation_counts_maintain();

create trigger agent_conversation_counts_update
after update of status, campaign_id, channel_id, agent_id on conversations
for each row when (old.status is distinct from new.status
    or old.campaign_id is distinct from new.campaign_id
    or old.channel_id is distinct from new.channel_id
    or old.agent_id is distinct from new.agent_id)
execute function agent_conversation_counts_maintain();

create trigger agent_conversation_counts_delete after delete on conversations
for each row when (old.agent_id is not null)
execute function agent_conversation_counts_maintain();
