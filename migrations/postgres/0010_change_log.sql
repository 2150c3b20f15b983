-- The changes each instance announces to the others, written in the
-- transaction that makes them. They were sent with `NOTIFY` inside that
-- transaction, and PostgreSQL holds one database-wide lock from a notifying
-- transaction's pre-commit until its commit is flushed, so every write
-- waited for the flush of the one before it (no group commit): under
-- customer messages most backends waited on that lock. An insert takes no
-- such lock. Readers follow `id` and look again, for a while, at any id they
-- have not seen yet below the last one they read (a transaction that took an
-- id earlier may commit later). Each instance deletes the entries it read
-- more than ten minutes ago.
create table change_log (
    id      bigint generated always as identity constraint change_log_pkey primary key,
    payload text not null
);
