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

/// Every `create … index NAME` and `constraint NAME` in a migration file.
fn schema_names(dir: &str, file: &str) -> BTreeSet<String> {
    let text = fs::read_to_string(format!(
        "{}/migrations/{dir}/{file}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("migration file");
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .windows(2)
        .filter(|w| w[0] == "index" || w[0] == "constraint" || w[0] == "table")
        .map(|w| w[1].trim_end_matches('(').to_owned())
        .filter(|name| name != "if")
        .collect()
}

#[test]
fn both_backends_have_the_same_migration_files() {
    let sqlite = names("sqlite");
    let postgres = names("postgres");
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, postgres);
}

#[test]
fn both_backends_name_tables_indexes_and_constraints_alike() {
    for file in names("sqlite") {
        assert_eq!(
            schema_names("sqlite", &file),
            schema_names("postgres", &file),
            "{file}"
        );
    }
}
