-- The changes each PostgreSQL instance announces to the others (see the
-- PostgreSQL migration of the same name). A SQLite file has one instance,
-- which publishes in process, so nothing writes to it here; it exists
-- so that both schemas stay alike.
create table change_log (
    id      integer constraint change_log_pkey primary key autoincrement,
    payload text not null
);
