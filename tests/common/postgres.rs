//! The PostgreSQL server the PostgreSQL halves run on: `TEST_POSTGRES_URL`
//! when it is set, otherwise a throwaway cluster this test binary starts
//! itself from the installed server programs (`/usr/lib/postgresql/*/bin`).
//!
//! The throwaway cluster lives in a temporary directory, listens on a free
//! port of 127.0.0.1 with trust authentication and `fsync=off`, and is shared
//! by every test of the binary. It cannot outlive the binary: `postgres` runs
//! under a small shell watchdog whose stdin is a pipe held by this process;
//! when the process ends, however it ends (even `SIGKILL`), the pipe closes,
//! the watchdog reads end-of-file, stops the server and removes its directory.
//!
//! As root, `initdb` and `postgres` refuse to run, so both run as the
//! `postgres` system user (through `setpriv`, which execs without forking)
//! on a directory that user owns.

use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long the throwaway cluster may take to accept connections.
const STARTUP: Duration = Duration::from_secs(60);

/// The newest `/usr/lib/postgresql/<version>/bin` holding the server programs
/// (the same test `build.rs` uses to decide whether the halves can run).
pub fn server_bin() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
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

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `program` as a command run as the `postgres` user when we are root.
pub fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("setpriv");
        command
            .args([
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                "--",
            ])
            .arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// A fresh temporary directory the server user owns.
pub fn server_owned_tempdir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("relevo-pg-")
        .tempdir()
        .expect("temporary directory");
    if is_root() {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status()
            .expect("chown");
        assert!(status.success(), "chown the cluster directory to postgres");
    }
    dir
}

/// `initdb` of a trust-authenticated cluster whose superuser is `root`.
pub fn initdb(bin: &Path, data: &Path) -> Result<(), String> {
    let out = as_server_user(&bin.join("initdb"))
        .arg("-D")
        .arg(data)
        .args([
            "-A",
            "trust",
            "-U",
            "root",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale",
            "C.UTF-8",
        ])
        .output()
        .map_err(|e| format!("initdb: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("initdb: {}", String::from_utf8_lossy(&out.stderr)))
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A running throwaway cluster; see the module documentation.
struct Cluster {
    url: String,
    /// The watchdog; kept so it is not reaped early.
    _watchdog: Child,
    /// The write end of the watchdog's stdin: closing it (this process
    /// exiting) stops the server.
    _lifeline: ChildStdin,
}

/// The watchdog: starts `postgres` with the given arguments, waits for its
/// stdin to close, then stops the server (fast shutdown) and removes `$1`.
const WATCHDOG: &str = r#"dir=$1; shift
"$@" >"$dir/server.log" 2>&1 &
server=$!
cat >/dev/null
kill -INT "$server" 2>/dev/null
wait "$server"
rm -rf "$dir""#;

impl Cluster {
    fn start() -> Result<Cluster, String> {
        let bin = server_bin().ok_or(
            "PostgreSQL is not available: set TEST_POSTGRES_URL or install postgresql \
             (initdb, postgres, pg_ctl under /usr/lib/postgresql/*/bin)",
        )?;
        // The watchdog removes the directory; the TempDir must not.
        let root = server_owned_tempdir().keep();
        let data = root.join("data");
        initdb(&bin, &data)?;
        let port = free_port();
        let mut watchdog = as_server_user(Path::new("/bin/sh"))
            .arg("-c")
            .arg(WATCHDOG)
            .arg("relevo-pg-watchdog")
            .arg(&root)
            .arg(bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .arg("-p")
            .arg(port.to_string())
            .arg("-k")
            .arg(&root)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("start the postgres watchdog: {e}"))?;
        let lifeline = watchdog.stdin.take().expect("piped stdin");
        let cluster = Cluster {
            url: format!("postgres://root@127.0.0.1:{port}/postgres"),
            _watchdog: watchdog,
            _lifeline: lifeline,
        };
        let deadline = Instant::now() + STARTUP;
        loop {
            let ready = Command::new(bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return Ok(cluster);
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(root.join("server.log")).unwrap_or_default();
                return Err(format!(
                    "the throwaway PostgreSQL did not accept connections within {STARTUP:?}:\n{log}"
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The server URL the PostgreSQL halves create their databases on.
///
/// Panics when neither `TEST_POSTGRES_URL` nor the server programs are
/// available: the build script marks those halves ignored in that case, so
/// reaching this means they were forced (`--ignored`) or run in CI.
pub fn server_url() -> String {
    if let Ok(url) = std::env::var("TEST_POSTGRES_URL")
        && !url.is_empty()
    {
        return url;
    }
    static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
    match CLUSTER.get_or_init(Cluster::start) {
        Ok(cluster) => cluster.url.clone(),
        Err(e) => panic!("{e}"),
    }
}
