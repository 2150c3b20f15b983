-- A status tab's count under a date range, for the Super Administrador
-- (issue 23, item 1). A view's tabs count each status up to a cap
-- (`COUNT_CAP`): `status = ? and started_at` in a range. An Administrador's
-- campaigns have `conversations_campaign_status_started_idx`; without a
-- campaign, the count walked a whole status (up to every conversation of
-- it) to find the ones started in the range. Names match in both dialects.
create index conversations_status_started_idx on conversations (status, started_at, folio);
