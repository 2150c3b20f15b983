-- PostgreSQL's 0030 gives its planner the dependencies between the
-- Mensajes filters' columns (see migrations/postgres). SQLite keeps no
-- statistics: Relevo never runs `analyze` there, and says which of the
-- conversations' orders to read where its planner would pick wrongly
-- (`Backend::INDEXED_BY`). Nothing to change; the file keeps both
-- backends' migrations alike.
select 1;
