-- Throttle keys are SHA-256 hashes of the e-mail or address from now on, so
-- no typed e-mail is stored. Rows under the old verbatim keys would never be
-- matched again (nor purged): they go. This also ends any lock in force.
delete from login_throttle;

-- Rows whose window and lock are over are purged in batches by window start.
create index login_throttle_window_idx on login_throttle (window_start);
