//! Every page the browser tests visit is valid HTML: the Nu Html Checker
//! (`vnu.jar`, the W3C validator) reports no error on any of them, for the
//! Super Administrador and the Administrador, on both databases. The htmx
//! fragments (the results table, the modal) are checked too, wrapped in a
//! minimal document, since they end up inside one.
//!
//! The checker is the `vnu-jar` npm package, installed by `.ci/run` into the
//! git-ignored `.ci/tools` (see README); `VNU_JAR` may point elsewhere. It
//! needs `java` on the PATH. Without either (as `build.rs` finds) the test is
//! reported as ignored with that reason; with `CI=true` it runs and fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{
    ADMIN_EMAIL, ADMIN_PASSWORD, Backend, SUPER_EMAIL, SUPER_PASSWORD, TestApp, csrf_in,
    first_option, new_client, spawn_app,
};
use reqwest::StatusCode;

/// Like `on_both_backends!`, plus ignored with its reason where the checker
/// is missing (see `build.rs`).
mod every_page_the_browser_tests_visit_is_valid_html {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(relevo_html_checker),
        ignore = "Nu Html Checker not available: install a Java runtime and vnu-jar (see README)"
    )]
    async fn sqlite() {
        super::every_page_the_browser_tests_visit_is_valid_html(crate::common::Backend::Sqlite)
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(all(relevo_html_checker, relevo_postgres)),
        ignore = "Nu Html Checker or PostgreSQL not available: install a Java runtime and vnu-jar (see README); set TEST_POSTGRES_URL or install postgresql"
    )]
    async fn postgres() {
        super::every_page_the_browser_tests_visit_is_valid_html(crate::common::Backend::Postgres)
            .await;
    }
}

/// Where `.ci/run` installs the checker.
const INSTALLED_JAR: &str = ".ci/tools/node_modules/vnu-jar/build/dist/vnu.jar";

/// The checker's jar, or why it cannot run.
fn checker() -> Result<PathBuf, String> {
    let jar = std::env::var_os("VNU_JAR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(INSTALLED_JAR));
    if !jar.is_file() {
        return Err(format!(
            "the HTML check needs {} (set VNU_JAR, or run the npm install of .ci/run)",
            jar.display()
        ));
    }
    match Command::new("java").arg("-version").output() {
        Ok(output) if output.status.success() => Ok(jar),
        _ => Err("the HTML check needs java on the PATH".into()),
    }
}

/// One document to check: a file name saying what it is, and its text.
struct Document {
    name: String,
    html: String,
}

/// Collects the pages, asserting each answered with the expected status so
/// that an error page never stands in for the page it replaced.
struct Pages<'a> {
    app: &'a TestApp,
    documents: Vec<Document>,
}

impl Pages<'_> {
    async fn page(
        &mut self,
        client: &reqwest::Client,
        name: &str,
        path: &str,
        expected: StatusCode,
    ) {
        let page = self.app.get_with(client, path).await;
        assert_eq!(page.status, expected, "{name}: GET {path}\n{}", page.body);
        self.add(name, page.body);
    }

    /// An htmx request: the answer is a fragment, checked inside a minimal
    /// document.
    async fn fragment(&mut self, client: &reqwest::Client, name: &str, path: &str) {
        let response = client
            .get(self.app.url(path))
            .header("HX-Request", "true")
            .send()
            .await
            .expect("GET fragment");
        assert_eq!(response.status(), StatusCode::OK, "{name}: GET {path}");
        let body = response.text().await.expect("fragment body");
        assert!(
            !body.trim_start().starts_with("<!DOCTYPE"),
            "{name}: expected a fragment"
        );
        self.add(
            name,
            format!(
                "<!DOCTYPE html><html lang=\"es\"><head><meta charset=\"utf-8\">\
                 <title>Fragmento</title></head><body>{body}</body></html>"
            ),
        );
    }

    async fn posted(
        &mut self,
        client: &reqwest::Client,
        name: &str,
        path: &str,
        form: &[(&str, &str)],
        expected: StatusCode,
    ) {
        let page = self.app.post_form_with(client, path, form).await;
        assert_eq!(page.status, expected, "{name}: POST {path}\n{}", page.body);
        self.add(name, page.body);
    }

    fn add(&mut self, name: &str, html: String) {
        self.documents.push(Document {
            name: format!("{:02}-{name}.html", self.documents.len()),
            html,
        });
    }
}

/// A webhook of `campaign` with one failed attempt, so its page shows the
/// attempts table and the failure notice.
async fn failing_webhook(app: &TestApp, campaign: &str) -> uuid::Uuid {
    use relevo::db::{Ts, WebhookAttempt, WebhookInput, WebhookProgress, WebhookState};
    let campaign: uuid::Uuid = campaign.parse().unwrap();
    let actor = app
        .uuids_where("select id from users where email = $1", SUPER_EMAIL)
        .await[0];
    let input = WebhookInput {
        url: "https://hooks.example.com/relevo?origen=consola",
        event_types: "cancelled reassigned",
        enabled: true,
    };
    let (id, _) = app
        .store
        .create_webhook(actor, campaign, input, Ts::now())
        .await
        .unwrap()
        .unwrap();
    let owner = uuid::Uuid::new_v4();
    let until = Ts::new(chrono::Utc::now() + chrono::TimeDelta::seconds(30));
    let job = app
        .store
        .lease_webhook(id, owner, Ts::now(), until)
        .await
        .unwrap()
        .expect("leased");
    let error = "Respondió 503 Service Unavailable: se espera un código 2xx.".to_owned();
    let progress = WebhookProgress {
        cursor: job.cursor,
        attempts: vec![WebhookAttempt {
            id: uuid::Uuid::now_v7(),
            at: Ts::now(),
            event_id: job.cursor + 1,
            event_type: "cancelled".into(),
            status_code: Some(503),
            latency_ms: 120,
            error: Some(error.clone()),
        }],
        state: WebhookState::Failing {
            failures: 1,
            since: Ts::now(),
            retry_at: Ts::new(chrono::Utc::now() + chrono::TimeDelta::hours(1)),
            error,
        },
    };
    assert!(
        app.store
            .record_webhook_progress(id, owner, &progress, Ts::now(), until)
            .await
            .unwrap()
            .is_some()
    );
    id
}

async fn every_page_the_browser_tests_visit_is_valid_html(backend: Backend) {
    // Only reached where build.rs found the checker, or in CI, where a
    // missing checker must fail rather than pass.
    let jar = checker().unwrap_or_else(|reason| panic!("{reason}"));
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let open = app
        .folios_where(
            "select c.folio from conversations c join campaigns p on p.id = c.campaign_id \
             where p.name = $1 and c.status in ('assigned', 'in_progress') \
             order by c.last_activity_at desc, c.folio desc",
            "Ventas Hogar",
        )
        .await[0];
    let cancelled = app
        .folios_where(
            "select c.folio from conversations c join campaigns p on p.id = c.campaign_id \
             where p.name = $1 and c.status = 'cancelled' order by c.folio desc",
            "Ventas Hogar",
        )
        .await[0];
    let campaign = app.campaign_id("Ventas Hogar").await.to_string();
    let webhook = failing_webhook(&app, &campaign).await;
    let mut pages = Pages {
        app: &app,
        documents: Vec::new(),
    };
    use StatusCode as S;

    // Signed out.
    let anonymous = new_client();
    pages.page(&anonymous, "login", "/login", S::OK).await;
    let token = csrf_in(&app.get_with(&anonymous, "/login").await.body);
    pages
        .posted(
            &anonymous,
            "login-refused",
            "/login",
            &[
                ("_csrf", &token),
                ("email", ADMIN_EMAIL),
                ("password", "no-es-esta"),
            ],
            S::UNAUTHORIZED,
        )
        .await;

    // The Super Administrador: every page of the menu.
    let root = new_client();
    let login = app.login_with(&root, SUPER_EMAIL, SUPER_PASSWORD).await;
    assert_eq!(login.location.as_deref(), Some("/mensajes"));
    let conversation = format!("/mensajes/{open}");
    let modal = format!("/mensajes/{open}/acciones");
    for (name, path) in [
        ("mensajes", "/mensajes".to_owned()),
        (
            "mensajes-canceladas",
            "/mensajes?estatus=cancelled".to_owned(),
        ),
        ("mensajes-todas", "/mensajes?estatus=todas".to_owned()),
        (
            "mensajes-rezagadas",
            "/mensajes?estatus=rezagadas&orden=en-estatus".to_owned(),
        ),
        (
            "mensajes-agente-desconectado",
            "/mensajes?agente=desconectado&orden=sin-actividad".to_owned(),
        ),
        (
            "mensajes-filtrados",
            format!("/mensajes?estatus=todas&campana={campaign}&q=a"),
        ),
        ("conversacion", conversation.clone()),
        ("conversacion-cancelada", format!("/mensajes/{cancelled}")),
        ("modal", modal.clone()),
        ("cuenta", "/cuenta".to_owned()),
        ("campanas", "/campanas".to_owned()),
        ("campana-nueva", "/campanas/nueva".to_owned()),
        ("campana", format!("/campanas/{campaign}")),
        ("campana-horario", format!("/campanas/{campaign}/horario")),
        ("campana-canales", format!("/campanas/{campaign}/canales")),
        ("campana-miembros", format!("/campanas/{campaign}/miembros")),
        ("campana-webhooks", format!("/campanas/{campaign}/webhooks")),
        (
            "webhook",
            format!("/campanas/{campaign}/webhooks/{webhook}"),
        ),
        ("categorias", "/categorias".to_owned()),
        (
            "categorias-campana",
            format!("/categorias?campana={campaign}"),
        ),
        ("usuarios", "/usuarios".to_owned()),
        ("usuario-nuevo", "/usuarios/nuevo".to_owned()),
        ("auditoria", "/auditoria".to_owned()),
        ("reportes", "/reportes".to_owned()),
        (
            "cancelacion-automatica",
            "/cancelacion-automatica".to_owned(),
        ),
        (
            "lote",
            format!("/mensajes/lote?todas=1&estatus=icr&campana={campaign}"),
        ),
    ] {
        pages.page(&root, name, &path, S::OK).await;
    }
    // A transcript of several pages: the latest, and the one before it.
    let long = app
        .folios_where(
            "select c.folio from conversations c where (select count(*) from messages m \
             where m.conversation_id = c.id) > cast($1 as integer)",
            "50",
        )
        .await[0];
    let latest = format!("/mensajes/{long}");
    pages.page(&root, "transcripcion", &latest, S::OK).await;
    let body = app.get_with(&root, &latest).await.body;
    let older = common::rel_link(&body, "prev").expect("Mensajes anteriores");
    pages
        .page(&root, "transcripcion-anterior", &older, S::OK)
        .await;
    pages
        .page(&root, "404", "/mensajes/999999999", S::NOT_FOUND)
        .await;
    pages
        .fragment(&root, "fragmento-mensajes", "/mensajes")
        .await;
    pages.fragment(&root, "fragmento-modal", &modal).await;

    // Refused forms show their errors in place.
    let form = app.get_with(&root, &modal).await.body;
    let token = csrf_in(&form);
    let version = common::field_value(&form, "version");
    pages
        .posted(
            &root,
            "modal-rechazado",
            &modal,
            &[
                ("_csrf", &token),
                ("version", &version),
                ("accion", "cancelar"),
            ],
            S::UNPROCESSABLE_ENTITY,
        )
        .await;
    let category = first_option(&form, "accion-categoria");
    pages
        .posted(
            &root,
            "lote-rechazado",
            "/mensajes/lote",
            &[
                ("_csrf", &token),
                ("accion", "cancelar"),
                ("folio", &open.to_string()),
            ],
            S::UNPROCESSABLE_ENTITY,
        )
        .await;
    pages
        .posted(
            &root,
            "regla-vista-previa",
            "/cancelacion-automatica",
            &[
                ("_csrf", &token),
                ("campana", &campaign),
                ("nombre", "Bot atascado"),
                ("estatus", "icr"),
                ("medida", "in_status"),
                ("minutos", "1"),
                ("categoria", &category),
                ("vista_previa", "1"),
            ],
            S::OK,
        )
        .await;
    // A bulk job's page, after cancelling one conversation through it.
    let job = app
        .post_form_with(
            &root,
            "/mensajes/lote",
            &[
                ("_csrf", &token),
                ("accion", "cancelar"),
                ("categoria", &category),
                ("folio", &open.to_string()),
            ],
        )
        .await;
    assert_eq!(job.status, S::SEE_OTHER, "{}", job.body);
    let job = job.location.expect("the job's page");
    pages.page(&root, "lote-trabajo", &job, S::OK).await;

    // The Administrador: their menu, and a page they may not see.
    let admin = new_client();
    let login = app.login_with(&admin, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(login.location.as_deref(), Some("/mensajes"));
    for (name, path) in [
        ("admin-mensajes", "/mensajes".to_owned()),
        ("admin-conversacion", conversation.clone()),
        ("admin-cuenta", "/cuenta".to_owned()),
        ("admin-reportes", "/reportes".to_owned()),
        (
            "admin-cancelacion-automatica",
            "/cancelacion-automatica".to_owned(),
        ),
    ] {
        pages.page(&admin, name, &path, S::OK).await;
    }
    pages
        .page(&admin, "admin-403", "/usuarios", S::FORBIDDEN)
        .await;

    let errors = validate(&jar, &pages.documents);
    assert!(
        errors.is_empty(),
        "{} HTML errors on {} documents:\n{}",
        errors.len(),
        pages.documents.len(),
        errors.join("\n")
    );
}

/// Writes the documents to a temporary directory and runs the checker once
/// over all of them; returns one line per error: file, line, message.
fn validate(jar: &Path, documents: &[Document]) -> Vec<String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut files = Vec::new();
    for document in documents {
        let path = dir.path().join(&document.name);
        std::fs::write(&path, &document.html).expect("write page");
        files.push(path);
    }
    let output = Command::new("java")
        .arg("-jar")
        .arg(jar)
        .args(["--errors-only", "--format", "json"])
        .args(&files)
        .output()
        .expect("run vnu");
    // vnu writes its JSON report on stderr.
    let report: serde_json::Value = serde_json::from_slice(&output.stderr).unwrap_or_else(|_| {
        panic!(
            "vnu did not answer JSON ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let messages = report["messages"].as_array().expect("messages");
    let errors: Vec<String> = messages
        .iter()
        .filter(|m| m["type"] != "info")
        .map(|m| {
            let url = m["url"].as_str().unwrap_or("?");
            let file = url.rsplit('/').next().unwrap_or(url);
            let line = m["lastLine"].as_i64().unwrap_or(0);
            let extract = m["extract"].as_str().unwrap_or("").replace('\n', " ");
            format!(
                "{file}:{line}: {} [{extract}]",
                m["message"].as_str().unwrap_or("?")
            )
        })
        .collect();
    // An empty report from a failed run would prove nothing.
    assert!(
        output.status.success() || !errors.is_empty(),
        "vnu failed without reporting an error: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    errors
}
