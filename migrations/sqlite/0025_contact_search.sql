-- A search by part of a customer's name or channel code (issue 23, item 1)
-- read every contact: `name_key like '%…%'` cannot use a b-tree, so one
-- search cost 37-46 ms at 100,000 conversations and grew with the table.
-- Trigrams find the contacts holding a substring of three or more
-- characters from the postings of its trigrams. Names match the
-- PostgreSQL migration, whose `contacts_search` is a pg_trgm index.
--
-- Each entry's rowid is the contact's rowid, kept by the triggers in the
-- writing transaction. Contacts are never renumbered: SQLite's `vacuum`
-- and `vacuum into` (the backup) copy a table's rowids with its rows.
create virtual table contacts_search using fts5 (
    name_key,
    external_id,
    tokenize = 'trigram'
);

insert into contacts_search (rowid, name_key, external_id)
select rowid, name_key, external_id from contacts;

create trigger contacts_search_insert after insert on contacts
begin
    insert into contacts_search (rowid, name_key, external_id)
    values (new.rowid, new.name_key, new.external_id);
end;

create trigger contacts_search_update after update of name_key, external_id on contacts
begin
    delete from contacts_search where rowid = old.rowid;
    insert into contacts_search (rowid, name_key, external_id)
    values (new.rowid, new.name_key, new.external_id);
end;

create trigger contacts_search_delete after delete on contacts
begin
    delete from contacts_search where rowid = old.rowid;
end;
