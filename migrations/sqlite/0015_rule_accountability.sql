-- Accountability of automatic cancellation: the rule that wrote a history
-- row (null for every other writer), written in the transition's own
-- statement, so history names the rule that cancelled a conversation.
-- Constraint and index names match the PostgreSQL migration one for one.
alter table conversation_events add column auto_cancel_rule_id blob references auto_cancel_rules (id);
-- What a rule has cancelled (deleting a rule checks it has cancelled
-- nothing); almost every row is null, so only the others are indexed.
create index conversation_events_rule_idx on conversation_events (auto_cancel_rule_id) where auto_cancel_rule_id is not null;
