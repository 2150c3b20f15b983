//! Tells the test macros which test halves this machine can run, so a half
//! that cannot run is reported by `cargo test` as **ignored, with its
//! reason**, instead of passing without having run.
//!
//! Emits (for every target of the package; the application never reads them):
//!
//! - `relevo_postgres`: the PostgreSQL halves can run, because
//!   `TEST_POSTGRES_URL` names a server or PostgreSQL's server programs are
//!   installed (the tests then start a throwaway cluster themselves).
//! - `relevo_postgres_server`: PostgreSQL's server programs (`initdb`,
//!   `postgres`, `pg_ctl`) are installed under `/usr/lib/postgresql/*/bin`,
//!   which the tests that stop and restart a server of their own need.
//! - `relevo_browser`: `/usr/bin/chromium` and `/usr/bin/chromedriver` exist.
//! - `relevo_html_checker`: the Nu Html Checker can run: `java` is on the
//!   PATH and `vnu.jar` is at `VNU_JAR` or where `.ci/run` installs it.
//!
//! With `CI=true` (or `1`) all three are emitted whatever is installed: in CI
//! nothing is ignored, and a missing program fails its tests loudly.
//! `RELEVO_TEST_NO_POSTGRES=1` and `RELEVO_TEST_NO_BROWSER=1` pretend the
//! programs are absent (to see what a machine without them reports).
//!
//! The detection runs at build time: cargo reruns this script when one of
//! those variables changes or the watched directories do (installing or
//! removing a package), which recompiles the crate once.
//!
//! It also lists the migration files for `db::migrations` (in
//! `$OUT_DIR/migrations.rs`, an `include_str!` each), which embeds them the
//! way `sqlx::migrate!` did without sqlx's proc-macro crate; cargo reruns it
//! when a file in `migrations/` changes.

use std::path::{Path, PathBuf};

/// Where the browser tests look for Chromium (see `tests/common/webdriver.rs`).
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Debian's (and the PostgreSQL apt repository's) versioned server programs.
const POSTGRES_LIB: &str = "/usr/lib/postgresql";
/// Where `.ci/run` installs the Nu Html Checker (see `tests/html_validity.rs`).
const INSTALLED_VNU_JAR: &str = ".ci/tools/node_modules/vnu-jar/build/dist/vnu.jar";

fn flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// The newest `/usr/lib/postgresql/<version>/bin` holding the server programs.
fn postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir(POSTGRES_LIB)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| {
            ["initdb", "postgres", "pg_ctl"]
                .iter()
                .all(|p| bin.join(p).exists())
        })
        .collect();
    versions.sort();
    versions.pop()
}

/// The migration files of `dir` as `sqlx::migrate!` reads a folder: every
/// file named `<VERSION>_<DESCRIPTION>.sql` (other names are ignored), as
/// (version, the name after `<VERSION>_`, path), by version.
fn migration_files(dir: &Path) -> Vec<(i64, String, PathBuf)> {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.expect("a migration directory entry").path();
        if !std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            continue;
        }
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let Some((version, rest)) = name.split_once('_') else {
            continue;
        };
        if !rest.ends_with(".sql") {
            continue;
        }
        let version: i64 = version.parse().unwrap_or_else(|_| {
            panic!("migration file name {name:?}: expected an integer version prefix (`0001_…`)")
        });
        let path = path.canonicalize().expect("a migration file's path");
        files.push((version, rest.to_owned(), path));
    }
    files.sort();
    files
}

/// Writes `$OUT_DIR/migrations.rs`: `SQLITE_FILES` and `POSTGRES_FILES`, the
/// (version, name after `<VERSION>_`, text) of each migration file.
fn embed_migrations() {
    println!("cargo::rerun-if-changed=migrations");
    let manifest =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let mut code = String::new();
    for (constant, folder) in [("SQLITE_FILES", "sqlite"), ("POSTGRES_FILES", "postgres")] {
        code += &format!("const {constant}: &[(i64, &str, &str)] = &[\n");
        for (version, name, path) in migration_files(&manifest.join("migrations").join(folder)) {
            let path = path.to_str().expect("a UTF-8 path to each migration file");
            code += &format!("    ({version}, {name:?}, include_str!({path:?})),\n");
        }
        code += "];\n";
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("migrations.rs");
    std::fs::write(&out, code).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
}

fn main() {
    embed_migrations();
    for cfg in [
        "relevo_postgres",
        "relevo_postgres_server",
        "relevo_browser",
        "relevo_html_checker",
    ] {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
    }
    for var in [
        "CI",
        "TEST_POSTGRES_URL",
        "RELEVO_TEST_NO_POSTGRES",
        "RELEVO_TEST_NO_BROWSER",
        "VNU_JAR",
    ] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    println!("cargo::rerun-if-changed=build.rs");
    // Only existing paths: cargo reruns a script on every build while a
    // watched path is missing, which would recompile the crate every time.
    for watched in ["/usr/bin", POSTGRES_LIB, ".ci"] {
        if Path::new(watched).exists() {
            println!("cargo::rerun-if-changed={watched}");
        }
    }

    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    let no_postgres = flag("RELEVO_TEST_NO_POSTGRES");
    let server = !no_postgres && postgres_bin().is_some();
    let url = !no_postgres && std::env::var("TEST_POSTGRES_URL").is_ok_and(|v| !v.is_empty());
    let browser = !flag("RELEVO_TEST_NO_BROWSER")
        && Path::new(CHROMIUM).exists()
        && Path::new(CHROMEDRIVER).exists();

    let jar = std::env::var_os("VNU_JAR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(INSTALLED_VNU_JAR));
    let java = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join("java").is_file()));
    if ci || (java && jar.is_file()) {
        println!("cargo::rustc-cfg=relevo_html_checker");
    }

    if ci || url || server {
        println!("cargo::rustc-cfg=relevo_postgres");
    }
    if ci || server {
        println!("cargo::rustc-cfg=relevo_postgres_server");
    }
    if ci || browser {
        println!("cargo::rustc-cfg=relevo_browser");
    }
    // For the guard test: a binary built outside CI and then run with
    // CI=true would silently ignore what CI must run.
    println!(
        "cargo::rustc-env=RELEVO_TEST_BUILT_FOR_CI={}",
        if ci { "1" } else { "0" }
    );
}
