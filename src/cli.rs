//! Commands: `serve` (default), `demo`, `create-user`, `create-token`, the
//! operations commands, and `webhook-echo`.

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};

use crate::app::Application;
use crate::config::Settings;
use crate::config::redact;
use crate::db::{NewUser, Store, Ts};
use crate::domain::Role;
use crate::domain::text::Email;

#[derive(Debug, Parser)]
#[command(
    name = "relevo",
    version,
    about = "Relevo: consola de administración de conversaciones"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply migrations and serve the console (the default).
    Serve,
    #[command(flatten)]
    Ops(OpsCommand),
    /// Serve with a demo data set, created when the database is empty.
    Demo,
    /// Create a user (password from RELEVO_PASSWORD or a prompt).
    CreateUser {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// A campaign to assign, by name; repeat for several.
        #[arg(long = "campaign")]
        campaigns: Vec<String>,
    },
    /// Create an integration token for one campaign and print it once.
    CreateToken {
        /// The campaign the token acts for, by name.
        #[arg(long)]
        campaign: String,
        /// A label to recognise the token by.
        #[arg(long)]
        name: Option<String>,
    },
    /// Receive webhook deliveries and print each one, checking its signature.
    WebhookEcho {
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:9000")]
        bind: std::net::SocketAddr,
        /// The webhook's signing secret (shown when it was created).
        #[arg(long, env = "RELEVO_WEBHOOK_SECRET")]
        secret: Option<String>,
    },
}

/// Operations commands (see `crate::services::ops`).
#[derive(Debug, Subcommand)]
pub enum OpsCommand {
    /// Write a consistent copy of the SQLite database to PATH (while running).
    Backup { path: std::path::PathBuf },
    /// Verify the database: integrity and migrations.
    Check,
    /// Purge the texts of messages older than DAYS days (the messages, their
    /// authors and times, and the history stay).
    Purge {
        #[arg(long = "older-than", value_name = "DAYS",
              value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::domain::transcript::MAX_RETENTION_DAYS)))]
        older_than: u32,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    SuperAdmin,
    Admin,
    Agent,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Role {
        match role {
            RoleArg::SuperAdmin => Role::SuperAdmin,
            RoleArg::Admin => Role::Admin,
            RoleArg::Agent => Role::Agent,
        }
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings, false).await,
        Command::Demo => serve(settings, true).await,
        Command::Ops(OpsCommand::Backup { path }) => {
            crate::services::ops::backup(&settings, &path).await
        }
        Command::Ops(OpsCommand::Check) => crate::services::ops::check(&settings).await,
        Command::Ops(OpsCommand::Purge { older_than }) => {
            crate::services::ops::purge(&settings, older_than).await
        }
        Command::CreateUser {
            email,
            name,
            role,
            campaigns,
        } => create_user(settings, email, name, role.into(), campaigns).await,
        Command::CreateToken { campaign, name } => create_token(settings, campaign, name).await,
        Command::WebhookEcho { bind, secret } => crate::http::webhook_echo::run(bind, secret).await,
    }
}

async fn open(settings: &Settings) -> anyhow::Result<Store> {
    let store = Store::connect(&settings.database_url)
        .await
        .with_context(|| {
            format!(
                "cannot open the database {}",
                redact(&settings.database_url)
            )
        })?;
    store
        .migrate()
        .await
        .context("cannot apply the migrations")?;
    Ok(store)
}

/// Where the demo's webhook delivers: `relevo webhook-echo`'s default.
const DEMO_WEBHOOK_URL: &str = "http://127.0.0.1:9000/relevo";
/// The demo webhook's events: an administrator's decisions and the router's.
const DEMO_WEBHOOK_TYPES: &str = "reactivated assigned reassigned cancelled";

async fn serve(mut settings: Settings, demo: bool) -> anyhow::Result<()> {
    if demo && settings.webhook_allow.is_empty() {
        // The demo runs on this machine: its webhooks may reach loopback.
        settings.webhook_allow = "127.0.0.1, ::1".parse().map_err(anyhow::Error::msg)?;
    }
    let store = open(&settings).await?;
    if demo {
        seed_demo(&store).await?;
    }
    let app = Application::build_with_store(settings.clone(), store).await?;
    let url = format!("http://{}:{}/", settings.bind.ip(), app.port());
    tracing::info!(%url, backend = app.state().store.backend_name(), "serving");
    eprintln!("Relevo escucha en {url}");
    if demo {
        eprintln!();
        eprintln!(
            "  Super Administrador: {}  /  {}",
            crate::services::demo::SUPER_ADMIN_EMAIL,
            crate::services::demo::SUPER_ADMIN_PASSWORD
        );
        eprintln!(
            "  Administrador:       {}  /  {}",
            crate::services::demo::ADMIN_EMAIL,
            crate::services::demo::ADMIN_PASSWORD
        );
        eprintln!();
        print_demo_api(&app.state().store, &url).await?;
        crate::services::simulator::spawn(
            app.state().store.clone(),
            crate::services::simulator::rate_from_env(),
        );
    }
    app.run_until_signalled().await?;
    Ok(())
}

/// The campaign whose tokens `relevo demo` prints.
const DEMO_API_CAMPAIGN: &str = "Ventas Hogar";

/// Prints a fresh integration token, a fresh token of one channel (rotated
/// at every start: only its hash is stored, so the old one cannot be shown)
/// and a `curl` line that creates a conversation through that channel.
async fn print_demo_api(store: &Store, url: &str) -> anyhow::Result<()> {
    let Some(campaign_id) = store.campaign_id_by_name(DEMO_API_CAMPAIGN).await? else {
        return Ok(());
    };
    let Some((channel_id, ..)) = store
        .channels()
        .await?
        .into_iter()
        .find(|c| c.1 == campaign_id && c.3)
    else {
        return Ok(());
    };
    let Some(channel_token) = store.rotate_channel_token(channel_id).await? else {
        return Ok(());
    };
    let Some((_, token)) = store
        .create_integration_token(DEMO_API_CAMPAIGN, "demo", Ts::now())
        .await?
    else {
        return Ok(());
    };
    eprintln!("  API de integración (campaña {DEMO_API_CAMPAIGN}):");
    eprintln!("    token de integración: {token}");
    eprintln!("    canal {channel_id}, token del canal: {channel_token}");
    eprintln!();
    eprintln!("  Crear una conversación:");
    eprintln!(
        "    curl -s -X POST {url}api/v1/channels/{channel_id}/messages \\\n      \
         -H 'Authorization: Bearer {channel_token}' -H 'Content-Type: application/json' \\\n      \
         -d '{{\"message_id\":\"demo-1\",\"from\":\"5215512345678\",\"name\":\"Cliente Demo\",\"text\":\"Hola, necesito un asesor\"}}'"
    );
    eprintln!("  Seguir los eventos de la campaña (espera hasta 25 s por uno nuevo):");
    eprintln!("    curl -s '{url}api/v1/events?wait=25' -H 'Authorization: Bearer {token}'");
    eprintln!();
    if let Some((webhook_id, secret)) = demo_webhook(store, campaign_id).await? {
        eprintln!("  Ver una decisión salir de Relevo (webhook de demostración, apagado):");
        eprintln!(
            "    1. En otra terminal: cargo run --release -- webhook-echo --bind 127.0.0.1:9000 --secret {secret}"
        );
        eprintln!("    2. Actívalo en {url}campanas/{campaign_id}/webhooks/{webhook_id}");
        eprintln!(
            "    3. Cancela o reasigna una conversación de {DEMO_API_CAMPAIGN} en Mensajes: la entrega firmada aparece en segundos."
        );
        eprintln!();
    }
    eprintln!(
        "  Simulador de tráfico: {} eventos/s ({}=0 lo apaga)",
        crate::services::simulator::rate_from_env(),
        crate::services::simulator::RATE_VAR
    );
    eprintln!();
    Ok(())
}

/// The demo campaign's webhook to `relevo webhook-echo`: created switched
/// off the first time, its secret renewed at every start (only then can it
/// be printed). Returns its id and secret.
async fn demo_webhook(
    store: &Store,
    campaign_id: uuid::Uuid,
) -> anyhow::Result<Option<(uuid::Uuid, String)>> {
    let Some(actor) = store
        .user_by_email(crate::services::demo::SUPER_ADMIN_EMAIL)
        .await?
    else {
        return Ok(None);
    };
    let existing = store
        .webhooks_of(campaign_id)
        .await?
        .into_iter()
        .find(|w| w.url == DEMO_WEBHOOK_URL);
    let made = match existing {
        Some(w) => store
            .rotate_webhook_secret(actor.id, campaign_id, w.id, Ts::now())
            .await?
            .map(|secret| (w.id, secret)),
        None => {
            store
                .create_webhook(
                    actor.id,
                    campaign_id,
                    crate::db::WebhookInput {
                        url: DEMO_WEBHOOK_URL,
                        event_types: DEMO_WEBHOOK_TYPES,
                        enabled: false,
                    },
                    Ts::now(),
                )
                .await?
        }
    };
    Ok(made.ok())
}

/// Creates the demo data set if the database has no users yet.
pub async fn seed_demo(store: &Store) -> anyhow::Result<()> {
    if !store.is_empty().await? {
        tracing::info!("database already has data; demo data not added");
        return Ok(());
    }
    let super_hash = crate::services::auth::password::hash(
        crate::services::demo::SUPER_ADMIN_PASSWORD.to_owned(),
    )
    .await?;
    let admin_hash =
        crate::services::auth::password::hash(crate::services::demo::ADMIN_PASSWORD.to_owned())
            .await?;
    let now = chrono::Utc::now();
    let plan = crate::services::demo::plan(now, super_hash, admin_hash);
    let summary = store.insert_demo(&plan, Ts::new(now)).await?;
    tracing::info!(
        campaigns = summary.campaigns,
        agents = summary.agents,
        conversations = summary.conversations,
        "demo data created"
    );
    Ok(())
}

async fn create_token(
    settings: Settings,
    campaign: String,
    name: Option<String>,
) -> anyhow::Result<()> {
    let store = open(&settings).await?;
    let label = name
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("cli {}", chrono::Utc::now().format("%Y-%m-%d %H:%M")));
    match store
        .create_integration_token(&campaign, &label, Ts::now())
        .await
        .context("cannot create the token")?
    {
        Some((_, token)) => {
            // The only time the token is shown: only its hash is stored.
            println!("{token}");
            Ok(())
        }
        None => bail!("no campaign is named {campaign:?}"),
    }
}

async fn create_user(
    settings: Settings,
    email: String,
    name: String,
    role: Role,
    campaigns: Vec<String>,
) -> anyhow::Result<()> {
    let Some(email) = Email::parse(&email) else {
        bail!("{email:?} is not a valid e-mail address");
    };
    let name = name.trim().to_owned();
    if name.is_empty() {
        bail!("the name must not be empty");
    }
    let password_hash = if role.may_use_console() {
        let password = match std::env::var("RELEVO_PASSWORD") {
            Ok(p) if !p.is_empty() => p,
            _ => rpassword::prompt_password("Contraseña: ").context("cannot read the password")?,
        };
        if password.chars().count() < crate::services::auth::password::MIN_PASSWORD_CHARS {
            bail!(
                "the password must have at least {} characters",
                crate::services::auth::password::MIN_PASSWORD_CHARS
            );
        }
        Some(crate::services::auth::password::hash(password).await?)
    } else {
        None
    };
    let store = open(&settings).await?;
    let user = NewUser {
        email: email.as_str().to_owned(),
        name,
        role,
        password_hash,
        campaigns,
    };
    match store.create_user(&user, Ts::now()).await {
        Ok(id) => {
            println!("Created {} {} ({id})", role.as_str(), user.email);
            Ok(())
        }
        Err(e) if e.unique_violation().is_some() => {
            bail!("a user with e-mail {} already exists", user.email)
        }
        Err(e) => Err(e).context("cannot create the user"),
    }
}
