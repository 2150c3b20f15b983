//! Operations commands: `relevo backup PATH`, `relevo check` and `relevo
//! purge --older-than DAYS`.
//!
//! They open the database without migrating: `backup` and `check` modify
//! nothing, `purge` only message texts.

use std::path::Path;

use anyhow::{Context, bail};

use crate::config::Settings;
use crate::config::redact;
use crate::db::{MigrationStatus, Store};

/// Writes a consistent copy of the SQLite database to `path` while the
/// service may be running (`VACUUM INTO` reads one snapshot). Refuses on
/// PostgreSQL, an existing file, or a directory that does not exist.
pub async fn backup(settings: &Settings, path: &Path) -> anyhow::Result<()> {
    if !settings.database_url.starts_with("sqlite:") {
        bail!(
            "relevo backup copies the embedded SQLite database; for PostgreSQL use pg_dump, \
             e.g. `pg_dump --format=custom --file=relevo.dump \"$DATABASE_URL\"` (restore with pg_restore)"
        );
    }
    if path.exists() {
        bail!("{} already exists; choose a new file name", path.display());
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        bail!("the directory {} does not exist", parent.display());
    }
    let store = open_existing(settings).await?;
    let target = path
        .to_str()
        .context("the backup path must be valid UTF-8")?
        .to_owned();
    store
        .vacuum_into(&target)
        .await
        .with_context(|| format!("cannot write the backup to {}", path.display()))?;
    store.close().await;
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    println!("Backup written to {} ({size} bytes)", path.display());
    Ok(())
}

/// Verifies a database: integrity (SQLite) and that every migration of this
/// binary is applied and none unknown to it is.
pub async fn check(settings: &Settings) -> anyhow::Result<()> {
    let store = open_existing(settings).await?;
    let mut problems = Vec::new();
    match store.integrity_check().await? {
        None => println!("integrity: not applicable ({})", store.backend_name()),
        Some(result) if result == "ok" => println!("integrity: ok"),
        Some(result) => problems.push(format!("integrity check failed: {result}")),
    }
    let MigrationStatus {
        applied,
        pending,
        unknown,
        failed,
    } = store.migration_status().await?;
    println!("migrations applied: {}", applied.len());
    if !pending.is_empty() {
        problems.push(format!(
            "migrations not applied yet: {pending:?} (start `relevo serve` to apply them)"
        ));
    }
    if !unknown.is_empty() {
        problems.push(format!(
            "migrations newer than this binary: {unknown:?} (upgrade relevo)"
        ));
    }
    if !failed.is_empty() {
        problems.push(format!("migrations that failed part-way: {failed:?}"));
    }
    store.close().await;
    if problems.is_empty() {
        println!("database is healthy");
        Ok(())
    } else {
        bail!(problems.join("; "))
    }
}

/// Purges the texts of messages older than `days` days, a batch per
/// transaction until none is left, and prints how many (the messages and
/// the history stay). Refuses a database whose migrations differ from this
/// binary's: it would not have the columns the purge writes.
pub async fn purge(settings: &Settings, days: u32) -> anyhow::Result<()> {
    let store = open_existing(settings).await?;
    let status = store.migration_status().await?;
    if !status.pending.is_empty() || !status.unknown.is_empty() {
        store.close().await;
        bail!(
            "the database's migrations differ from this binary's (not applied: {:?}, newer: {:?}); \
             run `relevo check`",
            status.pending,
            status.unknown
        );
    }
    let now = chrono::Utc::now();
    let purged = crate::services::transcripts::purge_older_than(&store, days, now, None).await;
    store.close().await;
    let purged = purged.context("cannot purge message texts")?;
    let cutoff = crate::domain::transcript::retention_cutoff(now, days);
    println!(
        "{purged} message texts purged (written before {})",
        cutoff.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    Ok(())
}

/// Opens the configured database without creating or migrating it.
async fn open_existing(settings: &Settings) -> anyhow::Result<Store> {
    if let Some(file) = settings.database_url.strip_prefix("sqlite:") {
        let file = file.trim_start_matches("//");
        let file = file.split('?').next().unwrap_or(file);
        if !Path::new(file).exists() {
            bail!("the database file {file} does not exist");
        }
    }
    Store::connect(&settings.database_url)
        .await
        .with_context(|| {
            format!(
                "cannot open the database {}",
                redact(&settings.database_url)
            )
        })
}
