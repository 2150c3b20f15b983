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

fn main() {
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
