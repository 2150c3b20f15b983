-- Sessions end on the server (see `auth::session`): the address a session
-- was started from, shown in the list of open sessions, and the wrong
-- current passwords typed in "Cambiar mi contraseña" during the session,
-- which ends after a few so a copied cookie cannot guess the password.
-- `last_seen_at` (already there) is now written, at most once a minute.
alter table user_sessions add column address text;
alter table user_sessions add column password_failures integer not null default 0;
