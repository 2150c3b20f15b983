//! The load benchmark whose targets and results are in BENCHMARKS.md.
//!
//! ```sh
//! cargo bench --bench load -- --backend sqlite|postgres [--scenario NAME] [--conversations N] [--runs N] [--quick]
//! ```
//!
//! `--quick` is the check before a performance-relevant change: 50,000
//! conversations, 5 s per timed scenario, one run, under three minutes.
//!
//! `ingest` posts customer messages of 20 to 400 characters (`texts.rs`;
//! `--fixed-text`: the one 30-character text of the figures before);
//! `events` drains one campaign's event feed with one long-polling consumer
//! while customer messages arrive at 1,000 a second, and times each event
//! from its commit to its receipt (see `scenarios::events`).
//!
//! `list` asks one administrator's default view again and again: one
//! cached view, the best case. `list-uncached` asks the same with the view
//! cache off (`RELEVO_VIEW_CACHE=0`), every request reading the database.
//! Their clients, `list-changing`'s and `search`'s send a browser's headers
//! (gzip accepted), as `console`'s do; they report the bytes sent per
//! response and the log's per request. Every scenario's server runs at its
//! default log level, writing its log to `target/bench/NAME-server.log`.
//!
//! `--scenario views` (not in the default set: up to 30 minutes a run)
//! times every Mensajes view alone, the combinations whose plans
//! `tests/query_plans.rs` checks. `RELEVO_BENCH_VIEWS=text` times only the
//! views whose name holds `text`, and `RELEVO_BENCH_EXPLAIN=1` prints each
//! one's plans beside its time.
//!
//! `--scenario spread` (not in the default set: it measures, it has no
//! target) asks issue 23's opening table again: one administrator's
//! default view without gzip and with it, then 20 administrators with the
//! status tab, the tab and a start date, and the tab and the channel
//! varied (see `spread.rs`).
//!
//! `console` is the console as real traffic uses it (issue 23, item 3;
//! about 40 s a run at 100,000 conversations, logging 205 people in
//! included): 64 clients on a journey of list views, paging, searches, live fetches, modals,
//! conversation pages and writes, while customer messages arrive and 500
//! live streams are open (see `console.rs`).
//!
//! Builds (or reuses) the data set, copies it so every run starts from the
//! same state, starts the real server (the release `relevo` binary) against
//! the copy, logs sessions in through the login form, drives it over HTTP
//! from this process's own task pool, measures latencies in an HDR
//! histogram, and prints one table per scenario; the tables are also written
//! to `BENCHMARKS.md` with the machine, the commit and the date. Every figure
//! is the median of `--runs` runs (3 by default). Traffic goes to 127.0.0.1
//! only, and every loop is bounded in count and time.

mod dataset;
mod scenarios;
mod texts;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use relevo::db::Store;
use tokio::process::{Child, Command};

/// Command-line options.
#[derive(Debug, Clone)]
pub struct Options {
    pub backend: String,
    pub scenarios: Vec<String>,
    pub conversations: u64,
    pub runs: usize,
    pub seconds: u64,
    pub clients: usize,
    pub postgres_url: String,
    pub output: Option<String>,
    /// `ingest` posts the one 30-character text it posted before issue 21
    /// item 7 (`--fixed-text`), to compare with the figures before it.
    pub fixed_text: bool,
}

pub const ALL_SCENARIOS: &[&str] = &[
    "raw",
    "list",
    "list-uncached",
    "list-changing",
    "search",
    "cancel",
    "contend",
    "live",
    "ingest",
    "events",
    "console",
    "footprint",
];

fn parse_options() -> anyhow::Result<Options> {
    let mut options = Options {
        backend: "sqlite".into(),
        scenarios: Vec::new(),
        conversations: 1_000_000,
        runs: 3,
        seconds: 20,
        clients: 32,
        postgres_url: std::env::var("BENCH_POSTGRES_URL")
            .or_else(|_| std::env::var("TEST_POSTGRES_URL"))
            .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/postgres".into()),
        output: Some("BENCHMARKS.md".into()),
        fixed_text: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--backend" => options.backend = value("--backend")?,
            "--scenario" => options.scenarios.push(value("--scenario")?),
            "--conversations" => options.conversations = value("--conversations")?.parse()?,
            "--runs" => options.runs = value("--runs")?.parse()?,
            "--seconds" => options.seconds = value("--seconds")?.parse()?,
            "--clients" => options.clients = value("--clients")?.parse()?,
            "--no-report" => options.output = None,
            "--fixed-text" => options.fixed_text = true,
            "--quick" => {
                options.conversations = 50_000;
                options.seconds = 5;
                options.runs = 1;
            }
            // `cargo bench` passes this to every bench target.
            "--bench" => {}
            other => anyhow::bail!("unknown option {other}"),
        }
    }
    if !matches!(options.backend.as_str(), "sqlite" | "postgres") {
        anyhow::bail!("--backend must be sqlite or postgres");
    }
    if options.scenarios.is_empty() {
        options.scenarios = ALL_SCENARIOS.iter().map(|s| s.to_string()).collect();
    }
    Ok(options)
}

/// Where the pristine data set and the per-run copy live.
pub struct Databases {
    pub pristine: String,
    pub run: String,
    options: Options,
}

fn bench_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    let _ = std::fs::create_dir_all(&dir);
    dir
}

fn pg_with_db(base: &str, db: &str) -> String {
    let (head, query) = base
        .split_once('?')
        .map_or((base, None), |(h, q)| (h, Some(q)));
    let scheme = head.find("://").map_or(0, |i| i + 3);
    let prefix = head[scheme..]
        .find('/')
        .map_or(head, |s| &head[..scheme + s]);
    match query {
        Some(q) => format!("{prefix}/{db}?{q}"),
        None => format!("{prefix}/{db}"),
    }
}

impl Databases {
    fn new(options: &Options) -> Databases {
        let n = options.conversations;
        match options.backend.as_str() {
            "sqlite" => Databases {
                pristine: format!(
                    "sqlite:{}",
                    bench_dir().join(format!("pristine-{n}.db")).display()
                ),
                run: format!(
                    "sqlite:{}",
                    bench_dir().join(format!("run-{n}.db")).display()
                ),
                options: options.clone(),
            },
            _ => Databases {
                pristine: pg_with_db(&options.postgres_url, &format!("relevo_bench_pristine_{n}")),
                run: pg_with_db(&options.postgres_url, &format!("relevo_bench_run_{n}")),
                options: options.clone(),
            },
        }
    }

    fn sqlite_path(url: &str) -> std::path::PathBuf {
        url.trim_start_matches("sqlite:").into()
    }

    /// Builds the pristine data set unless it is already there.
    async fn ensure_pristine(&self) -> anyhow::Result<()> {
        let plan = dataset::Plan {
            conversations: self.options.conversations,
            now: chrono::Utc::now(),
        };
        if self.options.backend == "postgres" {
            let admin = sqlx::PgPool::connect(&self.options.postgres_url).await?;
            let name = format!("relevo_bench_pristine_{}", plan.conversations);
            let exists: bool =
                sqlx::query_scalar("select exists (select 1 from pg_database where datname = $1)")
                    .bind(&name)
                    .fetch_one(&admin)
                    .await?;
            if !exists {
                sqlx::query(sqlx::AssertSqlSafe(format!("create database \"{name}\"")))
                    .execute(&admin)
                    .await?;
            }
            admin.close().await;
        }
        let store = Store::connect(&self.pristine).await?;
        let pending = store.migration_status().await?.pending;
        store.migrate().await?;
        if dataset::matches(&store, &plan).await {
            println!(
                "Reusing the data set ({} conversations).",
                plan.conversations
            );
            if !pending.is_empty() {
                // An index a migration added to a data set built before it
                // has no statistics, and SQLite's planner then weighs it
                // against analysed ones as a fresh build never would (it
                // read one agent's "Todas" through a new status index and
                // sorted 9,000 rows).
                println!(
                    "Migrations {pending:?} were applied to it: bringing its statistics up to date…"
                );
                dataset::analyse(&store).await?;
            }
            store.close().await;
            return Ok(());
        }
        let empty = store.is_empty().await?;
        if !empty {
            store.close().await;
            anyhow::bail!(
                "{} holds other data; remove it to rebuild the benchmark data set",
                self.pristine
            );
        }
        println!(
            "Building the data set ({} conversations)…",
            plan.conversations
        );
        let started = Instant::now();
        let hash = relevo::services::auth::password::hash(dataset::PASSWORD.to_owned()).await?;
        dataset::build(&store, &plan, &hash).await?;
        println!(
            "Data set built in {:.0} s.",
            started.elapsed().as_secs_f64()
        );
        store.close().await;
        Ok(())
    }

    /// A fresh copy of the pristine data set for one run.
    async fn fresh_run_copy(&self) -> anyhow::Result<()> {
        match self.options.backend.as_str() {
            "sqlite" => {
                let from = Self::sqlite_path(&self.pristine);
                let to = Self::sqlite_path(&self.run);
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", to.display()));
                }
                std::fs::copy(&from, &to).context("copying the data set")?;
            }
            _ => {
                let admin = sqlx::PgPool::connect(&self.options.postgres_url).await?;
                let n = self.options.conversations;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "drop database if exists \"relevo_bench_run_{n}\" with (force)"
                )))
                .execute(&admin)
                .await?;
                // FILE_COPY (PostgreSQL 15+) copies the files after a
                // checkpoint; the default WAL_LOG strategy writes the whole
                // 1M data set through the WAL, and the checkpoints that
                // follow were still flushing it tens of seconds into the
                // scenario being measured.
                let copy = format!(
                    "create database \"relevo_bench_run_{n}\" template \"relevo_bench_pristine_{n}\""
                );
                let with_file_copy =
                    sqlx::query(sqlx::AssertSqlSafe(format!("{copy} strategy = file_copy")))
                        .execute(&admin)
                        .await;
                if with_file_copy.is_err() {
                    sqlx::query(sqlx::AssertSqlSafe(copy))
                        .execute(&admin)
                        .await?;
                }
                admin.close().await;
            }
        }
        Ok(())
    }

    /// An empty database, for the start-up time on an empty data set.
    async fn empty(&self) -> anyhow::Result<String> {
        match self.options.backend.as_str() {
            "sqlite" => {
                let path = bench_dir().join("empty.db");
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
                Ok(format!("sqlite:{}", path.display()))
            }
            _ => {
                let admin = sqlx::PgPool::connect(&self.options.postgres_url).await?;
                sqlx::query("drop database if exists relevo_bench_empty with (force)")
                    .execute(&admin)
                    .await?;
                sqlx::query("create database relevo_bench_empty")
                    .execute(&admin)
                    .await?;
                admin.close().await;
                Ok(pg_with_db(&self.options.postgres_url, "relevo_bench_empty"))
            }
        }
    }
}

/// The release server as a child process.
pub struct Server {
    pub child: Child,
    pub address: String,
    pub ready_after: Duration,
}

impl Server {
    /// Where [`Server::start`] writes the log of `scenario`'s server.
    pub fn log_of(scenario: &str) -> std::path::PathBuf {
        bench_dir().join(format!("{scenario}-server.log"))
    }

    /// The server as it is run, at its default log level (no
    /// `RUST_LOG`), its log written to [`Server::log_of`] `scenario`.
    pub async fn start(database_url: &str, scenario: &str) -> anyhow::Result<Server> {
        Server::start_setting(database_url, scenario, &[]).await
    }

    /// [`Server::start`] with `settings` added to its environment.
    pub async fn start_setting(
        database_url: &str,
        scenario: &str,
        settings: &[(&str, &str)],
    ) -> anyhow::Result<Server> {
        let file =
            std::fs::File::create(Server::log_of(scenario)).context("the server's log file")?;
        let out = file.try_clone()?;
        Server::start_with(database_url, move |command| {
            command
                .env_remove("RUST_LOG")
                .envs(settings.iter().copied())
                .stdout(out)
                .stderr(file);
        })
        .await
    }

    /// The server on `database_url` and a free port, with what `configure`
    /// adds (its logging), once it answers `/readyz`.
    pub async fn start_with(
        database_url: &str,
        configure: impl FnOnce(&mut Command),
    ) -> anyhow::Result<Server> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let started = Instant::now();
        let mut command = Command::new(env!("CARGO_BIN_EXE_relevo"));
        command
            .arg("serve")
            .env("DATABASE_URL", database_url)
            .env("RELEVO_BIND", format!("127.0.0.1:{port}"))
            .env("RELEVO_SIMULATOR_RATE", "0")
            .kill_on_drop(true);
        configure(&mut command);
        let child = command.spawn()?;
        let address = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::builder().no_proxy().build()?;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if client
                .get(format!("{address}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "the server did not become ready");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(Server {
            child,
            address,
            ready_after: started.elapsed(),
        })
    }

    /// Resident memory of the server process, in MiB.
    pub fn rss_mib(&self) -> f64 {
        let Some(pid) = self.child.id() else {
            return 0.0;
        };
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            })
            .map_or(0.0, |kib| kib / 1024.0)
    }

    /// CPU time (user + system) the server process has used so far, in
    /// seconds. Divided by the requests served, it is a cost per request that
    /// depends much less than a rate on what else the 2 cores are doing (the
    /// database's own processes are not included on PostgreSQL).
    pub fn cpu_seconds(&self) -> f64 {
        let Some(pid) = self.child.id() else {
            return 0.0;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return 0.0;
        };
        // Fields after the parenthesised command name: utime and stime are
        // the 12th and 13th, in clock ticks (100 per second on Linux).
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        (ticks(11) + ticks(12)) / 100.0
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// One scenario's figures, by name (kept in insertion order).
pub type Figures = Vec<(String, f64, String)>;

/// The middle value; with an even count, the mean of the two middle ones.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    format!(
        "{cpu}, {cores} cores, {memory:.0} GiB RAM, {}",
        std::env::consts::OS
    )
}

fn commit() -> String {
    std::process::Command::new("git")
        // `-dirty` when the measured build had uncommitted changes.
        .args(["describe", "--always", "--dirty", "--abbrev=7"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn render(options: &Options, results: &BTreeMap<String, Vec<Figures>>, order: &[String]) -> String {
    let mut out = format!(
        "## {} · {} conversations · median of {} run(s)\n\nMachine: {}. Commit: `{}`. Date: {}. \
         Load: {} clients for {} s per timed scenario, from the benchmark's own task pool; \
         the server at its default log level.\n\n",
        options.backend,
        options.conversations,
        options.runs,
        machine(),
        commit(),
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        options.clients,
        options.seconds,
    );
    // The median of one figure over the runs of a scenario.
    let median_of = |scenario: &str, label: &str| {
        let runs = results.get(scenario)?;
        let values: Vec<f64> = runs
            .iter()
            .filter_map(|r| r.iter().find(|f| f.0 == label).map(|f| f.1))
            .collect();
        (!values.is_empty()).then(|| median(values))
    };
    for name in order {
        let Some(runs) = results.get(name) else {
            continue;
        };
        let Some(first) = runs.first() else { continue };
        out.push_str(&format!(
            "### {name}\n\n| measure | value | note |\n|---|---:|---|\n"
        ));
        for (i, (label, _, note)) in first.iter().enumerate() {
            let values: Vec<f64> = runs.iter().filter_map(|r| r.get(i).map(|f| f.1)).collect();
            let value = median(values);
            // A share of `raw` is the ratio of the two medians, never the
            // first run's own ratio beside another run's value.
            let reference = scenarios::RAW_REFERENCES
                .iter()
                .find(|(scenario, figure, _)| scenario == name && figure == label)
                .map(|(_, _, raw_label)| median_of("raw", raw_label));
            let note = match reference {
                Some(raw_median) => scenarios::percent_of_raw(value, raw_median),
                None => note.clone(),
            };
            let shown = if value.fract() == 0.0 {
                format!("{value:.0}")
            } else {
                format!("{value:.2}")
            };
            out.push_str(&format!("| {label} | {shown} | {note} |\n"));
        }
        out.push('\n');
    }
    out
}

fn write_report(section: &str, backend: &str) -> anyhow::Result<()> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
    let existing = std::fs::read_to_string(&path).unwrap_or_default();
    let begin = format!("<!-- results:{backend}:begin -->");
    let end = format!("<!-- results:{backend}:end -->");
    let block = format!("{begin}\n{section}{end}");
    let updated = match (existing.find(&begin), existing.find(&end)) {
        (Some(b), Some(e)) if e > b => {
            format!("{}{}{}", &existing[..b], block, &existing[e + end.len()..])
        }
        _ if existing.is_empty() => format!("# Relevo benchmarks\n\n{block}\n"),
        _ => format!("{existing}\n{block}\n"),
    };
    std::fs::write(path, updated)?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let options = parse_options()?;
    // The load generator gets its own runtime (the server is another process).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(options))
}

async fn run(options: Options) -> anyhow::Result<()> {
    let databases = Databases::new(&options);
    databases.ensure_pristine().await?;
    let mut results: BTreeMap<String, Vec<Figures>> = BTreeMap::new();
    for run in 0..options.runs {
        println!(
            "\nRun {} of {} ({})",
            run + 1,
            options.runs,
            options.backend
        );
        let mut raw: Option<Figures> = None;
        for name in &options.scenarios {
            databases.fresh_run_copy().await?;
            let empty = if name == "footprint" {
                Some(databases.empty().await?)
            } else {
                None
            };
            let figures = scenarios::run(
                name,
                &options,
                &databases.run,
                empty.as_deref(),
                raw.as_ref(),
            )
            .await?;
            for (label, value, note) in &figures {
                println!("  {name:<10} {label:<40} {value:>12.2} {note}");
            }
            if name == "raw" {
                raw = Some(figures.clone());
            }
            results.entry(name.clone()).or_default().push(figures);
        }
    }
    let section = render(&options, &results, &options.scenarios);
    println!("\n{section}");
    if options.output.is_some() {
        write_report(&section, &options.backend)?;
        println!("Written to BENCHMARKS.md");
    }
    Ok(())
}
