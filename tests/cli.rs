//! The `relevo` binary's commands, run as a person would, on both backends.

mod common;

use std::process::Command;

use common::{Backend, fresh_store};
use relevo::domain::Role;

on_both_backends!(create_user_adds_a_user_who_can_then_log_in);

fn relevo(url: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_relevo"))
        .args(args)
        .env("DATABASE_URL", url)
        .env("RELEVO_PASSWORD", "una-clave-muy-larga")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run relevo")
}

async fn create_user_adds_a_user_who_can_then_log_in(backend: Backend) {
    let Some((store, url, _guard)) = fresh_store(backend).await else {
        return;
    };
    relevo::cli::seed_demo(&store).await.unwrap();
    let out = relevo(
        &url,
        &[
            "create-user",
            "--email",
            "Nueva.Admin@Relevo.Demo",
            "--name",
            "Nueva Admin",
            "--role",
            "admin",
            "--campaign",
            "Cobranza",
            "--campaign",
            "seguros auto",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let user = store
        .user_by_email("nueva.admin@relevo.demo")
        .await
        .unwrap()
        .expect("the user exists, e-mail lower-cased");
    assert_eq!(user.role, Role::Admin);
    let account = store
        .login_account("nueva.admin@relevo.demo")
        .await
        .unwrap()
        .unwrap();
    let hash = account.password_hash.expect("a password was set");
    assert!(
        relevo::services::auth::password::verify("una-clave-muy-larga".into(), Some(hash))
            .await
            .unwrap()
    );

    // The same e-mail again, in other case: refused, nothing written.
    let again = relevo(
        &url,
        &[
            "create-user",
            "--email",
            "NUEVA.ADMIN@relevo.demo",
            "--name",
            "Otra",
            "--role",
            "admin",
        ],
    );
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    // An unknown campaign: refused, and the user is not half-created.
    let unknown = relevo(
        &url,
        &[
            "create-user",
            "--email",
            "x@relevo.demo",
            "--name",
            "X",
            "--role",
            "admin",
            "--campaign",
            "No Existe",
        ],
    );
    assert!(!unknown.status.success());
    assert!(
        store
            .user_by_email("x@relevo.demo")
            .await
            .unwrap()
            .is_none()
    );

    // A short password is refused before anything is written.
    let short = Command::new(env!("CARGO_BIN_EXE_relevo"))
        .args([
            "create-user",
            "--email",
            "y@relevo.demo",
            "--name",
            "Y",
            "--role",
            "super-admin",
        ])
        .env("DATABASE_URL", &url)
        .env("RELEVO_PASSWORD", "corta")
        .output()
        .unwrap();
    assert!(!short.status.success());
    assert!(
        store
            .user_by_email("y@relevo.demo")
            .await
            .unwrap()
            .is_none()
    );

    // An agent needs no password.
    let agent = relevo(
        &url,
        &[
            "create-user",
            "--email",
            "agente.nuevo@relevo.demo",
            "--name",
            "Agente Nuevo",
            "--role",
            "agent",
            "--campaign",
            "Cobranza",
        ],
    );
    assert!(
        agent.status.success(),
        "{}",
        String::from_utf8_lossy(&agent.stderr)
    );
    store.close().await;
}

/// A server's log written to a file or a pipe (as a service manager or
/// `> log` takes it) is plain text: no terminal colour codes in its lines.
#[tokio::test]
async fn a_log_not_written_to_a_terminal_has_no_colour_codes() {
    let Some((store, url, _guard)) = fresh_store(Backend::Sqlite).await else {
        return;
    };
    store.close().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_relevo"))
        .arg("serve")
        .env("DATABASE_URL", &url)
        .env("RELEVO_BIND", format!("127.0.0.1:{port}"))
        .env("RELEVO_SIMULATOR_RATE", "0")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start relevo");
    let stdout = server.stdout.take().unwrap();
    // Its lines up to the one that says it is serving (30 s at most).
    let reading = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut said = String::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            said.push_str(&line);
            said.push('\n');
            if line.contains("serving") {
                break;
            }
        }
        said
    });
    let said = tokio::time::timeout(std::time::Duration::from_secs(30), reading).await;
    server.kill().unwrap();
    server.wait().unwrap();
    let said = said.expect("the server logged within 30 s").unwrap();
    assert!(
        said.contains("serving"),
        "the server logged its start: {said}"
    );
    assert!(
        !said.contains('\u{1b}'),
        "no escape codes in a log that is not a terminal: {said:?}"
    );
}
