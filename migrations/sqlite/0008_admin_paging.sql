-- Every administration list pages by keyset on an index, and the member
-- picker searches by prefix on an index. Index names match the PostgreSQL
-- migration one for one.

-- Categories and sub-categories page by their position, which becomes unique
-- within the parent: renumbered 0, 1, 2… in the order shown until now, then
-- indexed. Writes keep it dense: a new one goes last, a move swaps two
-- neighbours, nothing is deleted.
update closure_categories set position = r.place
from (select id, row_number() over (partition by campaign_id order by position, name_key, id) - 1 as place
      from closure_categories) as r
where r.id = closure_categories.id;
create unique index closure_categories_position_key on closure_categories (campaign_id, position);

update closure_subcategories set position = r.place
from (select id, row_number() over (partition by category_id order by position, name_key, id) - 1 as place
      from closure_subcategories) as r
where r.id = closure_subcategories.id;
create unique index closure_subcategories_position_key on closure_subcategories (category_id, position);

-- A campaign's channels page oldest first, its integration tokens newest
-- first, both by (created_at, id).
create index channels_campaign_created_idx on channels (campaign_id, created_at, id);
drop index integration_tokens_campaign_idx;
create index integration_tokens_campaign_created_idx on integration_tokens (campaign_id, created_at, id);

-- The member picker finds people by the start of their name, ignoring case
-- and accents: the key the database keeps from the name, so no write path
-- can forget it. It folds what the application's fold() folds for Spanish
-- names (accented vowels, Ñ); SQLite's lower() folds only ASCII otherwise.
-- Two steps, so that no expression nests deeper than older SQLite parsers
-- (such as a sqlite3 shell opening this file) accept.
-- E-mails are stored lower-cased, and SQLite compares text bytewise, so
-- their unique users_email_key serves an e-mail prefix range.
alter table users add column name_folding text generated always as
    (replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(name, 'Á', 'a'), 'À', 'a'), 'Ä', 'a'), 'Â', 'a'), 'á', 'a'), 'à', 'a'), 'ä', 'a'), 'â', 'a'), 'É', 'e'), 'È', 'e'), 'Ë', 'e'), 'Ê', 'e'), 'é', 'e'), 'è', 'e'), 'ë', 'e'), 'ê', 'e'), 'Í', 'i'), 'Ì', 'i'), 'Ï', 'i'), 'Î', 'i'), 'í', 'i'), 'ì', 'i'), 'ï', 'i'), 'î', 'i')) virtual;
alter table users add column name_key text generated always as
    (lower(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(name_folding, 'Ó', 'o'), 'Ò', 'o'), 'Ö', 'o'), 'Ô', 'o'), 'ó', 'o'), 'ò', 'o'), 'ö', 'o'), 'ô', 'o'), 'Ú', 'u'), 'Ù', 'u'), 'Ü', 'u'), 'Û', 'u'), 'ú', 'u'), 'ù', 'u'), 'ü', 'u'), 'û', 'u'), 'Ñ', 'ñ'))) virtual;
create index users_name_key_idx on users (name_key, id);
