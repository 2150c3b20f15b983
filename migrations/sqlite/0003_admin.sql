-- Administration: the audit log names the campaign a change belongs to, and
-- every filter and keyset order of the administration lists has an index.
-- Constraint and index names match the PostgreSQL migration one for one.

-- The campaign an audited change concerns (none for users and global changes),
-- so the audit view can be filtered by campaign.
alter table audit_log add column campaign_id blob references campaigns (id);

-- Auditoría pages by (at, id), newest first, under each filter.
create index audit_log_at_id_idx on audit_log (at, id);
create index audit_log_actor_idx on audit_log (actor_id, at, id);
create index audit_log_kind_idx on audit_log (object_kind, at, id);
create index audit_log_campaign_idx on audit_log (campaign_id, at, id);

-- Usuarios pages by (name, id) under each filter (campaign goes through
-- campaign_members' primary key).
create index users_name_idx on users (name, id);
create index users_role_name_idx on users (role, name, id);
create index users_active_name_idx on users (active, name, id);

-- Campañas pages by (name_key, id), optionally only active or inactive ones.
create index campaigns_active_name_idx on campaigns (active, name_key, id);

-- A campaign's integration tokens.
create index integration_tokens_campaign_idx on integration_tokens (campaign_id, created_at);
