-- The conversation a cancelled or resolved one was restarted by: the
-- conversation page links forward to it ("El cliente volvió a escribir"),
-- as the new one links back through reactivates_id. Few conversations are
-- restarts, so the index holds only those.
create index conversations_reactivates_id_idx on conversations (reactivates_id)
    where reactivates_id is not null;
