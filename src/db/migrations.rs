//! The migrations embedded in the binary, without sqlx's proc-macro crate.
//!
//! `build.rs` lists the files of `migrations/sqlite` and
//! `migrations/postgres` (an `include_str!` each); here they become
//! `sqlx::migrate::Migration`s the way `sqlx::migrate!` read them: version
//! and description from the file name, the SHA-384 checksum of the text, no
//! transaction when the text starts with `-- no-transaction`. A database
//! that an earlier release migrated keeps opening only while the checksums
//! stay the same (`tests/migrations.rs` compares them with what that release
//! recorded, and these migrations with the folders as sqlx reads them).

use std::borrow::Cow;
use std::sync::LazyLock;

use sqlx::SqlStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

// `SQLITE` and `POSTGRES`: (version, the file name after `<version>_`,
// text) of each migration file.
include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// The migrations of the SQLite backend.
pub static SQLITE: LazyLock<Migrator> = LazyLock::new(|| migrator(SQLITE_FILES));

/// The migrations of the PostgreSQL backend.
pub static POSTGRES: LazyLock<Migrator> = LazyLock::new(|| migrator(POSTGRES_FILES));

fn migrator(files: &'static [(i64, &'static str, &'static str)]) -> Migrator {
    Migrator::with_migrations(
        files
            .iter()
            .map(|&(version, name, sql)| migration(version, name, sql))
            .collect(),
    )
}

/// `0005_reports_bulk.sql` is version 5, "reports bulk"; `….up.sql` and
/// `….down.sql` are the halves of a reversible one.
fn migration(version: i64, name: &'static str, sql: &'static str) -> Migration {
    let kind = MigrationType::from_filename(name);
    let description = name.trim_end_matches(kind.suffix()).replace('_', " ");
    let no_tx = sql.starts_with("-- no-transaction");
    Migration::new(
        version,
        Cow::Owned(description),
        kind,
        SqlStr::from_static(sql),
        no_tx,
    )
}
