-- A search by part of a customer's name or channel code (issue 23, item 1)
-- read every contact: `name_key like '%…%'` cannot use a b-tree, so one
-- search cost 37-46 ms at 100,000 conversations and grew with the table.
-- Trigrams (pg_trgm, shipped with PostgreSQL and a trusted extension:
-- the database's owner may create it) find the contacts
-- holding a substring of three or more characters, and the names that
-- begin with a shorter one, from the postings of their trigrams. Names
-- match the SQLite migration, whose `contacts_search` is an FTS5 table.
create extension if not exists pg_trgm;

create index contacts_search on contacts
    using gin (name_key gin_trgm_ops, external_id gin_trgm_ops);
