//! The two migration folders must stay in step: same file names, same
//! constraint and index names.

use std::collections::BTreeSet;
use std::fs;

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
