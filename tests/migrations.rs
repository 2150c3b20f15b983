//! The two migration folders must stay in step: same file names, same
//! constraint and index names, and, once applied, the same schema as each
//! database reports it (tables, columns with their types mapped across the
//! dialects, nullability, defaults, primary keys, unique and foreign-key
//! constraints, check constraints, indexes with their columns and partial
//! predicates, triggers).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use common::{Backend, fresh_store};
use relevo::db::Store;

fn names(dir: &str) -> BTreeSet<String> {
    fs::read_dir(format!("{}/migrations/{dir}", env!("CARGO_MANIFEST_DIR")))
        .expect("migration folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

/// Every `create … index NAME`, `constraint NAME` and `table NAME` in a
/// migration file, but the scratch copies a SQLite table rebuild makes and
/// drops (`temp table NAME`, `temp.NAME`).
fn schema_names(dir: &str, file: &str) -> BTreeSet<String> {
    let text = fs::read_to_string(format!(
        "{}/migrations/{dir}/{file}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("migration file");
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut names = BTreeSet::new();
    for (i, w) in words.windows(2).enumerate() {
        let scratch = i > 0 && words[i - 1] == "temp";
        if (w[0] == "index" || w[0] == "constraint" || w[0] == "table") && !scratch {
            let name = w[1].trim_end_matches(['(', ';']);
            if name != "if" && !name.starts_with("temp.") {
                names.insert(name.to_owned());
            }
        }
    }
    names
}

#[test]
fn both_backends_have_the_same_migration_files() {
    let sqlite = names("sqlite");
    let postgres = names("postgres");
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, postgres);
}

/// The fields of a migration that sqlx records or acts on; the text by its
/// checksum (a SHA-384 of it, computed from the embedded text on one side
/// and from the file on the other).
type MigrationFields = (i64, String, sqlx::migrate::MigrationType, String, bool);

fn fields(m: &sqlx::migrate::Migration) -> MigrationFields {
    (
        m.version,
        m.description.to_string(),
        m.migration_type,
        m.checksum.iter().map(|b| format!("{b:02x}")).collect(),
        m.no_tx,
    )
}

/// The binary embeds each folder as sqlx reads it at run time, which is
/// what `sqlx::migrate!` did at compile time: the same files, versions,
/// descriptions, kinds, texts and transaction flags.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_migrations_are_the_migration_folders() {
    for (dir, embedded) in [
        ("sqlite", &*relevo::db::migrations::SQLITE),
        ("postgres", &*relevo::db::migrations::POSTGRES),
    ] {
        let path =
            std::path::PathBuf::from(format!("{}/migrations/{dir}", env!("CARGO_MANIFEST_DIR")));
        let read = sqlx::migrate::Migrator::new(path).await.expect("folder");
        let embedded: Vec<MigrationFields> = embedded.iter().map(fields).collect();
        let read: Vec<MigrationFields> = read.iter().map(fields).collect();
        let files = names(dir).iter().filter(|n| n.ends_with(".sql")).count();
        assert_eq!(embedded.len(), files, "{dir}: one per file");
        assert_eq!(embedded, read, "{dir}");
    }
}

/// `_sqlx_migrations` as an earlier release recorded it (see the header of
/// the fixture): version, description, checksum in hex.
fn recorded_by_earlier_release(backend: Backend) -> Vec<(i64, String, String)> {
    let dir = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let path = format!(
        "{}/tests/assets/migrations/{dir}.tsv",
        env!("CARGO_MANIFEST_DIR")
    );
    fs::read_to_string(path)
        .expect("fixture")
        .lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            let [version, description, checksum] = fields[..] else {
                panic!("three tab-separated fields: {line:?}");
            };
            (
                version.parse().expect("version"),
                description.to_owned(),
                checksum.to_owned(),
            )
        })
        .collect()
}

const RECORDED: &str =
    "select version, description, checksum from _sqlx_migrations order by version";

/// What this binary recorded in `_sqlx_migrations`.
async fn recorded(store: &Store) -> Vec<(i64, String, String)> {
    let rows: Vec<(i64, String, Vec<u8>)> = match store {
        Store::Sqlite(pools) => sqlx::query_as(RECORDED).fetch_all(&pools.read).await,
        Store::Postgres(pg) => sqlx::query_as(RECORDED).fetch_all(&pg.pool).await,
    }
    .expect("read _sqlx_migrations");
    rows.into_iter()
        .map(|(version, description, checksum)| {
            let hex = checksum.iter().map(|b| format!("{b:02x}")).collect();
            (version, description, hex)
        })
        .collect()
}

/// A database an earlier release migrated still opens: sqlx refuses to
/// start when an applied migration's checksum differs from the binary's, so
/// this binary must record every migration exactly as that release did.
/// Migrations added since come after the fixture's.
async fn migrations_are_recorded_as_an_earlier_release_recorded_them(backend: Backend) {
    let Some((store, _url, _guard)) = fresh_store(backend).await else {
        return;
    };
    let earlier = recorded_by_earlier_release(backend);
    let now = recorded(&store).await;
    assert!(now.len() >= earlier.len(), "{now:?}");
    assert_eq!(now[..earlier.len()], earlier[..]);
    let newest = earlier.last().expect("fixture rows").0;
    assert!(now[earlier.len()..].iter().all(|(v, _, _)| *v > newest));

    // The bookkeeping rows that release wrote, then a start: validated, and
    // nothing left to apply.
    for (version, description, checksum) in &earlier {
        let bytes: Vec<u8> = (0..checksum.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&checksum[i..i + 2], 16).expect("hex"))
            .collect();
        let update =
            "update _sqlx_migrations set description = $1, checksum = $2 where version = $3";
        match &store {
            Store::Sqlite(pools) => sqlx::query(update)
                .bind(description)
                .bind(bytes)
                .bind(version)
                .execute(&pools.write)
                .await
                .map(|_| ()),
            Store::Postgres(pg) => sqlx::query(update)
                .bind(description)
                .bind(bytes)
                .bind(version)
                .execute(&pg.pool)
                .await
                .map(|_| ()),
        }
        .expect("write the earlier release's row");
    }
    store.migrate().await.expect("opens");
    let status = store.migration_status().await.expect("status");
    assert!(
        status.pending.is_empty() && status.failed.is_empty(),
        "{status:?}"
    );
}

on_both_backends!(migrations_are_recorded_as_an_earlier_release_recorded_them);

/// Each file introduces the same names on both backends. A name an earlier
/// file already introduced may come again on one backend only: SQLite
/// rebuilds a table (with its constraints and indexes) to change what
/// PostgreSQL alters in place.
#[test]
fn both_backends_name_tables_indexes_and_constraints_alike() {
    let (mut sqlite_before, mut postgres_before) = (BTreeSet::new(), BTreeSet::new());
    for file in names("sqlite") {
        let sqlite = schema_names("sqlite", &file);
        let postgres = schema_names("postgres", &file);
        assert_eq!(
            &sqlite - &sqlite_before,
            &postgres - &postgres_before,
            "{file}"
        );
        sqlite_before.extend(sqlite);
        postgres_before.extend(postgres);
    }
}

/// How a column type of SQLite's migrations is declared on PostgreSQL. Ids
/// are uuids stored as 16-byte blobs; timestamps are RFC 3339 text on
/// SQLite; booleans and counters are integers there.
const TYPES: &[(&str, &str)] = &[
    ("BLOB", "uuid"),
    ("BLOB", "bytea"),
    ("TEXT", "text"),
    ("TEXT", "character varying"),
    ("TEXT", "timestamp with time zone"),
    ("INTEGER", "bigint"),
    ("INTEGER", "integer"),
    ("INTEGER", "smallint"),
    ("INTEGER", "boolean"),
    ("REAL", "double precision"),
];

/// Where the dialects legitimately differ, as [`differences`] words it,
/// with the reason. The comparison must find exactly these: a difference
/// not listed fails, and so does an exception that no longer applies.
const EXCEPTIONS: &[(&str, &str)] = &[
    (
        "column users.name_folding: only on SQLite",
        "a virtual generated column, the first half of users.name_key's folding: \
         older SQLite parsers refuse the whole replace() chain in one expression, \
         which PostgreSQL writes as one translate()",
    ),
    (
        "table contacts_search: only on SQLite",
        "the trigram index of contact names and codes: SQLite's is an FTS5 \
         table (migration 0025)",
    ),
    (
        "index contacts_search: only on PostgreSQL",
        "the same trigram index: PostgreSQL's is a pg_trgm index on contacts",
    ),
    (
        "trigger (\"contacts\", \"contacts_search_insert\"): only on SQLite",
        "SQLite's trigram index is a table its triggers keep",
    ),
    (
        "trigger (\"contacts\", \"contacts_search_update\"): only on SQLite",
        "SQLite's trigram index is a table its triggers keep",
    ),
    (
        "trigger (\"contacts\", \"contacts_search_delete\"): only on SQLite",
        "SQLite's trigram index is a table its triggers keep",
    ),
];

/// A column: declared type, not null, normalised default.
type Column = (String, bool, Option<String>);
/// A foreign key: table, columns, referenced table, referenced columns,
/// on delete.
type ForeignKey = (String, Vec<String>, String, Vec<String>, String);
/// An index: table, columns, unique, normalised partial predicate.
type Index = (String, Vec<String>, bool, Option<String>);

/// One schema as its database reports it, in comparable terms.
#[derive(Debug, Clone, Default)]
struct Schema {
    /// table → column → (declared type, not null, normalised default).
    columns: BTreeMap<String, BTreeMap<String, Column>>,
    /// table → primary key columns.
    primary_keys: BTreeMap<String, Vec<String>>,
    /// (table, columns) of unique constraints (SQLite: its automatic
    /// indexes of `unique`; PostgreSQL: `unique` constraints).
    uniques: BTreeSet<(String, Vec<String>)>,
    /// (table, columns, referenced table, referenced columns, on delete).
    foreign_keys: BTreeSet<ForeignKey>,
    /// table → number of check constraints.
    checks: BTreeMap<String, usize>,
    /// index name → (table, columns, unique, normalised partial predicate).
    indexes: BTreeMap<String, Index>,
    /// (table, trigger name).
    triggers: BTreeSet<(String, String)>,
}

/// A default or predicate without the dialects' spelling: casts, quotes of
/// identifiers, outer parentheses, case, `true`/`false` as SQLite's 1/0.
fn normalise(sql: &str) -> String {
    let mut text = sql.to_lowercase();
    for cast in [
        "::timestamp with time zone",
        "::character varying",
        "::text",
        "::bigint",
        "::integer",
        "::boolean",
        "::uuid",
    ] {
        text = text.replace(cast, "");
    }
    let mut text: String = text
        .replace('"', "")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    while text.starts_with('(') && text.ends_with(')') {
        text = text[1..text.len() - 1].trim().to_owned();
    }
    match text.as_str() {
        "true" => "1".to_owned(),
        "false" => "0".to_owned(),
        _ => text,
    }
}

/// The predicate of a partial index from its SQLite `create index` text.
fn sqlite_predicate(sql: &str) -> Option<String> {
    let lower = sql.to_lowercase();
    lower.rfind(" where ").map(|at| normalise(&sql[at + 7..]))
}

fn on_delete_sqlite(action: &str) -> String {
    action.to_lowercase()
}

fn on_delete_postgres(code: &str) -> String {
    match code {
        "a" => "no action",
        "r" => "restrict",
        "c" => "cascade",
        "n" => "set null",
        "d" => "set default",
        other => panic!("unknown foreign key action {other}"),
    }
    .to_owned()
}

async fn sqlite_schema(pool: &sqlx::SqlitePool) -> Schema {
    let mut schema = Schema::default();
    let tables: Vec<(String, String)> = sqlx::query_as(
        // An FTS5 index's shadow tables are its storage, as a PostgreSQL
        // index's pages are: the virtual table stands for them.
        "select name, sql from sqlite_master where type = 'table' \
         and name not like 'sqlite_%' and name not like '_sqlx%' \
         and name not in (select name from pragma_table_list where type = 'shadow') \
         order by name",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for (table, sql) in tables {
        let columns: Vec<(String, String, bool, Option<String>, i64)> = sqlx::query_as(
            // `_xinfo` also lists generated columns (hidden 2 and 3).
            "select name, type, \"notnull\", dflt_value, pk from pragma_table_xinfo($1) \
             where hidden <> 1 order by cid",
        )
        .bind(&table)
        .fetch_all(pool)
        .await
        .unwrap();
        let mut pk: Vec<(i64, String)> = Vec::new();
        let entry = schema.columns.entry(table.clone()).or_default();
        for (name, ty, not_null, default, pk_position) in columns {
            if pk_position > 0 {
                pk.push((pk_position, name.clone()));
            }
            // A primary key column is never null on PostgreSQL; SQLite
            // reports `notnull` only where it was written.
            let not_null = not_null || pk_position > 0;
            entry.insert(name, (ty, not_null, default.as_deref().map(normalise)));
        }
        pk.sort();
        if !pk.is_empty() {
            schema
                .primary_keys
                .insert(table.clone(), pk.into_iter().map(|(_, c)| c).collect());
        }
        let lower = sql.to_lowercase();
        let checks = lower.matches("check (").count() + lower.matches("check(").count();
        if checks > 0 {
            schema.checks.insert(table.clone(), checks);
        }
        let fks: Vec<(i64, i64, String, String, Option<String>, String)> = sqlx::query_as(
            "select id, seq, \"table\", \"from\", \"to\", on_delete \
             from pragma_foreign_key_list($1) order by id, seq",
        )
        .bind(&table)
        .fetch_all(pool)
        .await
        .unwrap();
        let mut by_id: BTreeMap<i64, (Vec<String>, String, Vec<String>, String)> = BTreeMap::new();
        for (id, _, references, from, to, on_delete) in fks {
            let fk = by_id.entry(id).or_insert_with(|| {
                (
                    Vec::new(),
                    references.clone(),
                    Vec::new(),
                    on_delete_sqlite(&on_delete),
                )
            });
            fk.0.push(from);
            // `references t` without columns means t's primary key.
            fk.2.push(to.unwrap_or_default());
        }
        for (_, (from, references, to, on_delete)) in by_id {
            schema
                .foreign_keys
                .insert((table.clone(), from, references, to, on_delete));
        }
        let indexes: Vec<(String, bool, String, bool)> =
            sqlx::query_as("select name, \"unique\", origin, partial from pragma_index_list($1)")
                .bind(&table)
                .fetch_all(pool)
                .await
                .unwrap();
        for (index, unique, origin, _) in indexes {
            let columns: Vec<Option<String>> =
                sqlx::query_scalar("select name from pragma_index_info($1) order by seqno")
                    .bind(&index)
                    .fetch_all(pool)
                    .await
                    .unwrap();
            let columns: Vec<String> = columns
                .into_iter()
                .map(|c| c.unwrap_or_else(|| "<expression>".to_owned()))
                .collect();
            match origin.as_str() {
                "pk" => {}
                "u" => {
                    schema.uniques.insert((table.clone(), columns));
                }
                _ => {
                    let sql: Option<String> = sqlx::query_scalar(
                        "select sql from sqlite_master where type = 'index' and name = $1",
                    )
                    .bind(&index)
                    .fetch_one(pool)
                    .await
                    .unwrap();
                    let predicate = sql.as_deref().and_then(sqlite_predicate);
                    schema
                        .indexes
                        .insert(index, (table.clone(), columns, unique, predicate));
                }
            }
        }
    }
    let triggers: Vec<(String, String)> = sqlx::query_as(
        "select tbl_name, name from sqlite_master where type = 'trigger' order by name",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    schema.triggers = triggers.into_iter().collect();
    schema
}

async fn postgres_schema(pool: &sqlx::PgPool) -> Schema {
    let mut schema = Schema::default();
    let columns: Vec<(String, String, String, String, Option<String>)> = sqlx::query_as(
        "select c.table_name::text, c.column_name::text, c.data_type::text, c.is_nullable::text, \
                c.column_default::text \
         from information_schema.columns c join information_schema.tables t \
           on t.table_schema = c.table_schema and t.table_name = c.table_name \
         where c.table_schema = 'public' and t.table_type = 'BASE TABLE' \
           and c.table_name not like '\\_sqlx%' \
         order by c.table_name, c.ordinal_position",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for (table, column, ty, nullable, default) in columns {
        schema.columns.entry(table).or_default().insert(
            column,
            (ty, nullable == "NO", default.as_deref().map(normalise)),
        );
    }
    // Constraints with their columns in key order.
    // table, kind, columns, referenced table, referenced columns, on delete.
    type Constraint = (
        String,
        String,
        Vec<String>,
        Option<String>,
        Vec<String>,
        String,
    );
    let constraints: Vec<Constraint> = sqlx::query_as(
        "select c.conrelid::regclass::text, c.contype::text, \
                    array(select a.attname::text from unnest(c.conkey) with ordinality k(n, o) \
                          join pg_attribute a on a.attrelid = c.conrelid and a.attnum = k.n \
                          order by k.o), \
                    c.confrelid::regclass::text, \
                    array(select a.attname::text from unnest(c.confkey) with ordinality k(n, o) \
                          join pg_attribute a on a.attrelid = c.confrelid and a.attnum = k.n \
                          order by k.o), \
                    c.confdeltype::text \
             from pg_constraint c join pg_namespace n on n.oid = c.connamespace \
             where n.nspname = 'public' and c.conrelid <> 0 \
               and c.conrelid::regclass::text not like '\\_sqlx%'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for (table, kind, columns, references, referenced, on_delete) in constraints {
        match kind.as_str() {
            "p" => {
                schema.primary_keys.insert(table, columns);
            }
            "u" => {
                schema.uniques.insert((table, columns));
            }
            "f" => {
                schema.foreign_keys.insert((
                    table,
                    columns,
                    references.expect("a referenced table"),
                    referenced,
                    on_delete_postgres(&on_delete),
                ));
            }
            "c" => *schema.checks.entry(table).or_default() += 1,
            other => panic!("unexpected constraint kind {other} on {table}"),
        }
    }
    // Indexes that do not back a constraint.
    // name, table, columns, unique, predicate.
    type NamedIndex = (String, String, Vec<String>, bool, Option<String>);
    let indexes: Vec<NamedIndex> = sqlx::query_as(
        "select i.indexrelid::regclass::text, i.indrelid::regclass::text, \
                array(select coalesce(a.attname::text, '<expression>') \
                      from unnest(i.indkey::int2[]) with ordinality k(n, o) \
                      left join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.n \
                      order by k.o), \
                i.indisunique, pg_get_expr(i.indpred, i.indrelid) \
         from pg_index i join pg_class t on t.oid = i.indrelid \
         join pg_namespace n on n.oid = t.relnamespace \
         where n.nspname = 'public' and t.relname not like '\\_sqlx%' \
           and not exists (select 1 from pg_constraint c where c.conindid = i.indexrelid)",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for (index, table, columns, unique, predicate) in indexes {
        schema.indexes.insert(
            index,
            (table, columns, unique, predicate.as_deref().map(normalise)),
        );
    }
    let triggers: Vec<(String, String)> = sqlx::query_as(
        "select t.tgrelid::regclass::text, t.tgname::text from pg_trigger t \
         where not t.tgisinternal",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    schema.triggers = triggers.into_iter().collect();
    schema
}

/// Every way the two schemas differ, one line each.
fn differences(sqlite: &Schema, postgres: &Schema) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let tables: BTreeSet<&String> = sqlite
        .columns
        .keys()
        .chain(postgres.columns.keys())
        .collect();
    for table in tables {
        let (Some(s), Some(p)) = (sqlite.columns.get(table), postgres.columns.get(table)) else {
            let side = if sqlite.columns.contains_key(table) {
                "SQLite"
            } else {
                "PostgreSQL"
            };
            found.insert(format!("table {table}: only on {side}"));
            continue;
        };
        let columns: BTreeSet<&String> = s.keys().chain(p.keys()).collect();
        for column in columns {
            match (s.get(column), p.get(column)) {
                (Some(_), None) => {
                    found.insert(format!("column {table}.{column}: only on SQLite"));
                }
                (None, Some(_)) => {
                    found.insert(format!("column {table}.{column}: only on PostgreSQL"));
                }
                (Some((st, sn, sd)), Some((pt, pn, pd))) => {
                    if !TYPES.contains(&(st.to_uppercase().as_str(), pt.as_str())) {
                        found.insert(format!("column {table}.{column}: type {st} vs {pt}"));
                    }
                    if sn != pn {
                        found.insert(format!(
                            "column {table}.{column}: not null on SQLite {sn}, on PostgreSQL {pn}"
                        ));
                    }
                    if sd != pd {
                        found.insert(format!("column {table}.{column}: default {sd:?} vs {pd:?}"));
                    }
                }
                (None, None) => unreachable!(),
            }
        }
    }
    let keys: BTreeSet<&String> = sqlite
        .primary_keys
        .keys()
        .chain(postgres.primary_keys.keys())
        .collect();
    for table in keys {
        let (s, p) = (
            sqlite.primary_keys.get(table),
            postgres.primary_keys.get(table),
        );
        if s != p {
            found.insert(format!("primary key of {table}: {s:?} vs {p:?}"));
        }
    }
    for unique in sqlite.uniques.symmetric_difference(&postgres.uniques) {
        let side = if sqlite.uniques.contains(unique) {
            "SQLite"
        } else {
            "PostgreSQL"
        };
        found.insert(format!("unique {unique:?}: only on {side}"));
    }
    for fk in sqlite
        .foreign_keys
        .symmetric_difference(&postgres.foreign_keys)
    {
        let side = if sqlite.foreign_keys.contains(fk) {
            "SQLite"
        } else {
            "PostgreSQL"
        };
        found.insert(format!("foreign key {fk:?}: only on {side}"));
    }
    let checked: BTreeSet<&String> = sqlite.checks.keys().chain(postgres.checks.keys()).collect();
    for table in checked {
        let (s, p) = (
            sqlite.checks.get(table).copied().unwrap_or(0),
            postgres.checks.get(table).copied().unwrap_or(0),
        );
        if s != p {
            found.insert(format!(
                "checks on {table}: {s} on SQLite, {p} on PostgreSQL"
            ));
        }
    }
    let indexes: BTreeSet<&String> = sqlite
        .indexes
        .keys()
        .chain(postgres.indexes.keys())
        .collect();
    for index in indexes {
        match (sqlite.indexes.get(index), postgres.indexes.get(index)) {
            (Some(s), Some(p)) if s != p => {
                found.insert(format!("index {index}: {s:?} vs {p:?}"));
            }
            (Some(_), None) => {
                found.insert(format!("index {index}: only on SQLite"));
            }
            (None, Some(_)) => {
                found.insert(format!("index {index}: only on PostgreSQL"));
            }
            _ => {}
        }
    }
    for trigger in sqlite.triggers.symmetric_difference(&postgres.triggers) {
        let side = if sqlite.triggers.contains(trigger) {
            "SQLite"
        } else {
            "PostgreSQL"
        };
        found.insert(format!("trigger {trigger:?}: only on {side}"));
    }
    found
}

fn pools(sqlite: &Store, postgres: &Store) -> (sqlx::SqlitePool, sqlx::PgPool) {
    match (sqlite, postgres) {
        (Store::Sqlite(s), Store::Postgres(p)) => (s.write.clone(), p.pool.clone()),
        _ => unreachable!("one store of each backend"),
    }
}

/// Both migration folders, applied, give the same schema but for the listed
/// exceptions; and the comparison notices a dropped index, column or
/// constraint (checked on modified copies, so it cannot pass by comparing
/// nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(relevo_postgres),
    ignore = "PostgreSQL not available: set TEST_POSTGRES_URL or install postgresql"
)]
async fn both_backends_migrate_to_the_same_schema() {
    let (sqlite_store, _, _sqlite_guard) = fresh_store(Backend::Sqlite).await.unwrap();
    let (postgres_store, _, _postgres_guard) = fresh_store(Backend::Postgres).await.unwrap();
    let (sqlite, postgres) = pools(&sqlite_store, &postgres_store);
    let s = sqlite_schema(&sqlite).await;
    let p = postgres_schema(&postgres).await;
    // The comparison looks at something on every axis.
    assert!(s.columns.len() > 10, "{:?}", s.columns.keys());
    assert!(!s.indexes.is_empty() && !s.foreign_keys.is_empty() && !s.triggers.is_empty());
    assert!(!s.uniques.is_empty() && !s.primary_keys.is_empty());
    let found = differences(&s, &p);
    let expected: BTreeSet<String> = EXCEPTIONS.iter().map(|(d, _)| (*d).to_owned()).collect();
    assert_eq!(
        found.iter().collect::<Vec<_>>(),
        expected.iter().collect::<Vec<_>>(),
        "the schemas differ where no exception says they may"
    );

    // Self-check on modified copies: drop an index on SQLite, a column and
    // a foreign key on PostgreSQL; each must be reported.
    let (index, (table, ..)) = s
        .indexes
        .iter()
        .find(|(_, (_, _, unique, _))| !unique)
        .expect("a plain index");
    sqlx::query(sqlx::AssertSqlSafe(format!("drop index {index}")))
        .execute(&sqlite)
        .await
        .unwrap();
    let (fk_table, fk_columns, ..) = p.foreign_keys.iter().next().unwrap().clone();
    let fk_name: String = sqlx::query_scalar(
        "select conname::text from pg_constraint where contype = 'f' \
         and conrelid = $1::regclass order by conname limit 1",
    )
    .bind(&fk_table)
    .fetch_one(&postgres)
    .await
    .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "alter table {fk_table} drop constraint {fk_name}"
    )))
    .execute(&postgres)
    .await
    .unwrap();
    let (column_table, columns) = p
        .columns
        .iter()
        .find(|(t, c)| c.len() > 2 && **t != fk_table && *t != table)
        .unwrap();
    let column = columns.keys().last().unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "alter table {column_table} drop column {column} cascade"
    )))
    .execute(&postgres)
    .await
    .unwrap();
    let found = differences(
        &sqlite_schema(&sqlite).await,
        &postgres_schema(&postgres).await,
    );
    assert!(
        found.contains(&format!("index {index}: only on PostgreSQL")),
        "a dropped index is noticed: {found:?}"
    );
    assert!(
        found.contains(&format!("column {column_table}.{column}: only on SQLite")),
        "a dropped column is noticed: {found:?}"
    );
    assert!(
        found
            .iter()
            .any(|d| d.starts_with("foreign key") && d.contains(&format!("{fk_columns:?}"))),
        "a dropped foreign key is noticed: {found:?}"
    );
}

#[test]
fn defaults_and_predicates_are_compared_without_the_dialects_spelling() {
    assert_eq!(normalise("'icr'::text"), "'icr'");
    assert_eq!(normalise("true"), "1");
    assert_eq!(normalise("(delivered_at IS NULL)"), "delivered_at is null");
    assert_eq!(
        sqlite_predicate("CREATE INDEX x on t (a) where delivered_at is null").as_deref(),
        Some("delivered_at is null")
    );
    assert_eq!(sqlite_predicate("CREATE INDEX x on t (a)"), None);
}
