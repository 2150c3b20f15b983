-- Phone searches read the matching contacts' ids straight from the index
-- (an index-only range scan) instead of visiting each contact row.
create index contacts_external_cover_idx on contacts (external_id, id);
