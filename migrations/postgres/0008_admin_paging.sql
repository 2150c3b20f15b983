-- Every administration list pages by keyset on an index, and the member
-- picker searches by prefix on an index. Index names match the SQLite
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
-- names (accented vowels, Ñ), and lower() the rest.
--
-- A prefix is searched as a range (key >= prefix and key < the prefix's
-- successor), which holds only under bytewise order: the key, and the
-- e-mail (stored lower-cased; its unique users_email_key serves an e-mail
-- prefix), compare with the "C" collation. Equality, and so uniqueness, is
-- the same under any deterministic collation.
alter table users add column name_key text collate "C" generated always as
    (lower(translate(name, 'ÁÀÄÂáàäâÉÈËÊéèëêÍÌÏÎíìïîÓÒÖÔóòöôÚÙÜÛúùüûÑ',
                           'aaaaaaaaeeeeeeeeiiiiiiiioooooooouuuuuuuuñ'))) stored;
create index users_name_key_idx on users (name_key, id);
alter table users alter column email type text collate "C";
