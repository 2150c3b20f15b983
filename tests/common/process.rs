//! The real `relevo` binary as a child process, for tests of signals,
//! crashes and command-line behaviour. The child is killed on drop.

use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

pub struct RelevoProcess {
    pub child: Child,
    pub port: u16,
    pub address: String,
    /// What the child writes to stdout, read as it is written: a pipe left
    /// unread fills up (64 KiB) under a debug log, and a child blocked
    /// writing its log can neither serve nor exit.
    stdout: Option<tokio::task::JoinHandle<String>>,
    /// Stderr, drained for the same reason (and dropped).
    _stderr: Option<tokio::task::JoinHandle<String>>,
}

/// Reads `pipe` to its end in the background.
fn drain(
    pipe: Option<impl tokio::io::AsyncRead + Unpin + Send + 'static>,
) -> Option<tokio::task::JoinHandle<String>> {
    let mut pipe = pipe?;
    Some(tokio::spawn(async move {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes).await;
        String::from_utf8_lossy(&bytes).into_owned()
    }))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A `relevo` command with a quiet log and the given database.
pub fn command(database_url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_relevo"));
    command
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .env("RELEVO_SIMULATOR_RATE", "0")
        .kill_on_drop(true);
    command
}

impl RelevoProcess {
    /// Starts `relevo serve` and waits (at most 30 s) until `/readyz` answers.
    pub async fn start(database_url: &str, env: &[(&str, &str)]) -> RelevoProcess {
        let port = free_port();
        let mut command = command(database_url);
        command
            .arg("serve")
            .env("RELEVO_BIND", format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("start relevo");
        let stdout = drain(child.stdout.take());
        let stderr = drain(child.stderr.take());
        let address = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = client
                .get(format!("{address}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "relevo did not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        RelevoProcess {
            child,
            port,
            address,
            stdout,
            _stderr: stderr,
        }
    }

    fn signal(&self, name: &str) {
        let pid = self.child.id().expect("running child").to_string();
        let status = std::process::Command::new("kill")
            .args([name, &pid])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    pub fn sigterm(&self) {
        self.signal("-TERM");
    }

    pub fn sigkill(&self) {
        self.signal("-KILL");
    }

    /// Waits (bounded) for the process to exit.
    pub async fn wait(&mut self, limit: Duration) -> ExitStatus {
        tokio::time::timeout(limit, self.child.wait())
            .await
            .expect("relevo exited in time")
            .expect("wait")
    }

    /// Everything the process wrote to stdout so far (after it exited).
    pub async fn stdout(&mut self) -> String {
        let Some(reader) = self.stdout.take() else {
            return String::new();
        };
        tokio::time::timeout(Duration::from_secs(5), reader)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default()
    }
}
