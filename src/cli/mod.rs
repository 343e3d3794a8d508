//! The command line: `serve` (the default), `worker`, `config check`, `describe`, `scan`,
//! `submit`, `token`, `health`, `orphans`, `outbox`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};
use salvo::conn::Listener;
use serde_json::json;

mod error;
mod outbox;

use error::CliError;

use crate::app::{App, Queueing};
use crate::config::{Config, Overrides};

#[derive(Parser)]
#[command(
    name = "librarian",
    version,
    about = "Collects photos with JSON labels: validates both, reads the barcodes, stores the record."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (what `librarian` with no arguments does), with the queue's
    /// workers unless `--workers 0`.
    Serve(ServeArgs),
    /// Run the queue's workers only, no HTTP API: with `[queue] kind = "amqp"`, as many
    /// worker processes as the load needs, beside API replicas run with `--workers 0`.
    Worker(WorkerArgs),
    /// Check a configuration without serving.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Every kind of component with its options and defaults.
    Describe {
        /// Only this section.
        section: Option<crate::describe::Section>,
    },
    /// Read the barcodes of image files, one JSON line per image; nothing is stored.
    Scan {
        #[arg(long, env = "LIBRARIAN_CONFIG")]
        config: Option<PathBuf>,
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Send an image with labels to a running Librarian.
    Submit(SubmitArgs),
    /// Manage contributor tokens (`[auth] mode = "tokens"`).
    Token {
        #[arg(long, env = "LIBRARIAN_CONFIG", global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Exit 0 when a running Librarian answers its health check (for container HEALTHCHECKs).
    Health {
        #[arg(long, default_value = "http://127.0.0.1:8080/healthz")]
        url: String,
    },
    /// List what failed all-or-nothing stores left behind and could not remove.
    Orphans {
        #[arg(long, env = "LIBRARIAN_CONFIG")]
        config: Option<PathBuf>,
    },
    /// The notifications' outbox: events given up after `outbox.max_attempts`, listed and
    /// sent again (a running server or worker delivers them within a second).
    Outbox {
        #[arg(long, env = "LIBRARIAN_CONFIG", global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: outbox::OutboxCommand,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Make a token and print its secret, once.
    Create {
        #[arg(long)]
        name: String,
        /// How long it is valid, e.g. `30d`, `12h`; default: until revoked.
        #[arg(long, value_parser = humantime::parse_duration)]
        expires: Option<std::time::Duration>,
        /// Pipelines it may use, comma-separated; default: all.
        #[arg(long, value_delimiter = ',')]
        pipelines: Vec<String>,
    },
    /// Every token, without secrets.
    List,
    /// Refuse a token from now on.
    Revoke { token: String },
    /// Give a token a new secret; the old one stays valid for the grace period.
    Rotate {
        token: String,
        #[arg(long, value_parser = humantime::parse_duration, default_value = "1h")]
        grace: std::time::Duration,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Load every layer, build every component, print the effective config (secrets redacted).
    Check {
        #[arg(long, env = "LIBRARIAN_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Args, Default)]
struct ServeArgs {
    /// Config file (TOML, YAML or JSON); default: ./librarian.toml when present.
    #[arg(long, env = "LIBRARIAN_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. 0.0.0.0:8080 (overrides server.bind).
    #[arg(long)]
    bind: Option<std::net::SocketAddr>,
    /// Folder of the built-in `disk` actor (overrides actors.disk.dir).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Jobs of the queue worked at once in this process; 0: none (an API replica).
    /// Default: queue.workers, or one per CPU core.
    #[arg(long)]
    workers: Option<usize>,
    #[command(flatten)]
    log: LogArgs,
}

#[derive(Args, Default)]
struct WorkerArgs {
    /// Config file (TOML, YAML or JSON); default: ./librarian.toml when present.
    #[arg(long, env = "LIBRARIAN_CONFIG")]
    config: Option<PathBuf>,
    /// Folder of the built-in `disk` actor (overrides actors.disk.dir).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Jobs worked at once. Default: queue.workers, or one per CPU core.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    workers: Option<u16>,
    #[command(flatten)]
    log: LogArgs,
}

#[derive(Args, Default)]
struct LogArgs {
    /// More log output (-v: debug, -vv: trace).
    #[arg(short, long, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    verbose: u8,
    /// Only warnings and errors.
    #[arg(short, long)]
    quiet: bool,
    #[arg(long, value_enum, default_value_t = LogFormat::Pretty)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, Default, ValueEnum)]
enum LogFormat {
    #[default]
    Pretty,
    Json,
}

#[derive(Args)]
struct SubmitArgs {
    image: PathBuf,
    /// Labels as a JSON object.
    #[arg(long, default_value = "{}")]
    labels: String,
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    #[arg(long, default_value = crate::config::DEFAULT_PIPELINE)]
    pipeline: String,
    /// Submit under this UUID (idempotent: safe to repeat); default: a new one.
    #[arg(long)]
    id: Option<uuid::Uuid>,
    /// A contributor token or JWT for pipelines that need one. The variable keeps it out of
    /// the process list; it is outside the `LIBRARIAN_` prefix, which is the server's config.
    #[arg(long, env = "SUBMIT_LIBRARIAN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Ask for an asynchronous answer (`Prefer: respond-async`): the job is printed once
    /// queued; `GET /api/v1/jobs/{id}` follows it.
    #[arg(long = "async")]
    asynchronous: bool,
}

pub fn main() -> ExitCode {
    // The working directory's .env only, as documented: dotenvy::dotenv() also searches the
    // parent folders, and a stray .env above the project would configure the service.
    let _ = dotenvy::from_path(".env");
    let cli = Cli::parse();
    let outcome = match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Serve(args) => serve(args),
        Command::Worker(args) => worker(args),
        Command::Config {
            command: ConfigCommand::Check { config },
        } => check(config),
        Command::Describe { section } => {
            print!("{}", crate::describe::describe(section));
            Ok(())
        }
        Command::Scan { config, images } => scan(config, images),
        Command::Submit(args) => submit(args),
        Command::Orphans { config } => orphans(config),
        Command::Health { url } => health(&url),
        Command::Token { config, command } => token(config, command),
        Command::Outbox { config, command } => outbox::run(config, command),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("librarian: {message}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Runtime::new().map_err(CliError::Runtime)
}

fn init_logging(args: &LogArgs) {
    let level = match (args.quiet, args.verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    // Logs are diagnostics: standard error, coloured only on a terminal (never escape codes
    // in a file or a log collector).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match args.log_format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn build_app(overrides: &Overrides, queueing: Queueing) -> Result<App, CliError> {
    let loaded = Config::load(overrides).map_err(CliError::Config)?;
    App::build_with(loaded, queueing)
        .await
        .map_err(|e| match e.is_unavailable() {
            true => CliError::Unavailable(e),
            false => CliError::Config(e),
        })
}

fn serve(args: ServeArgs) -> Result<(), CliError> {
    init_logging(&args.log);
    let overrides = Overrides {
        config_file: args.config,
        bind: args.bind,
        data_dir: args.data_dir,
        ..Default::default()
    };
    runtime()?.block_on(async {
        let app = build_app(&overrides, Queueing::Open).await?;
        let bind = app.loaded.config.server.bind;
        let acceptor = salvo::conn::TcpListener::new(bind).try_bind().await.map_err(|source| CliError::Listen { bind, source: Box::new(source) })?;
        tracing::info!(%bind, pipelines = ?app.pipelines.keys().collect::<Vec<_>>(), "Librarian is serving");
        let grace = app.loaded.config.server.shutdown_timeout;
        let lifecycle = Arc::new(crate::http::Lifecycle::default());
        let app = Arc::new(app);
        let workers = crate::worker::Workers::start(app.clone(), args.workers);
        let delivery = crate::delivery::Delivery::start(app.clone());
        let service = crate::http::service_with(app, lifecycle.clone());
        crate::http::serve_until(acceptor, service, lifecycle, grace, stop_signal()).await;
        if let Some(workers) = workers {
            workers.stop().await;
        }
        if let Some(delivery) = delivery {
            delivery.stop().await;
        }
        tracing::info!("stopped");
        Ok(())
    })
}

fn worker(args: WorkerArgs) -> Result<(), CliError> {
    init_logging(&args.log);
    let overrides = Overrides {
        config_file: args.config,
        data_dir: args.data_dir,
        ..Default::default()
    };
    runtime()?.block_on(async {
        let app = Arc::new(build_app(&overrides, Queueing::Open).await?);
        let delivery = crate::delivery::Delivery::start(app.clone());
        let workers = crate::worker::Workers::start(app, args.workers.map(usize::from))
            .ok_or(CliError::NoWorkers)?;
        tracing::info!("Librarian's workers are running");
        stop_signal().await;
        workers.stop().await;
        if let Some(delivery) = delivery {
            delivery.stop().await;
        }
        tracing::info!("stopped");
        Ok(())
    })
}

/// SIGTERM (what container runtimes send) or Ctrl-C.
async fn stop_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler can be installed");
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

/// Loads and checks everything that needs no server; `/readyz` tells whether servers answer.
fn check(config: Option<PathBuf>) -> Result<(), CliError> {
    let overrides = Overrides {
        config_file: config,
        ..Default::default()
    };
    let loaded = Config::load(&overrides).map_err(CliError::Config)?;
    runtime()?
        .block_on(App::check(&loaded))
        .map_err(CliError::Config)?;
    let effective = loaded.config.redacted();
    println!(
        "{}",
        serde_json::to_string_pretty(&effective).unwrap_or_default()
    );
    eprintln!(
        "configuration is valid: {} pipeline(s)",
        loaded.config.pipelines.len()
    );
    Ok(())
}

fn scan(config: Option<PathBuf>, images: Vec<PathBuf>) -> Result<(), CliError> {
    let overrides = Overrides {
        config_file: config,
        ..Default::default()
    };
    let mut failed = false;
    runtime()?.block_on(async {
        let app = build_app(&overrides, Queueing::Closed).await?;
        let pipeline = app.default_pipeline();
        for path in images {
            let started = Instant::now();
            let result = match tokio::fs::read(&path).await {
                Ok(bytes) => pipeline.scan(bytes.into()).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            let ms = (started.elapsed().as_secs_f64() * 1e4).round() / 10.0;
            let line = match result {
                Ok((_, found)) => json!({"path": path, "barcodes": found.barcodes, "ms": ms}),
                Err(error) => {
                    failed = true;
                    json!({"path": path, "barcodes": [], "ms": ms, "error": error})
                }
            };
            println!("{line}");
        }
        Ok::<_, CliError>(())
    })?;
    if failed {
        Err(CliError::ImagesUnread)
    } else {
        Ok(())
    }
}

fn submit(args: SubmitArgs) -> Result<(), CliError> {
    use base64::Engine;
    let bytes = std::fs::read(&args.image).map_err(|source| CliError::File {
        path: args.image.clone(),
        source,
    })?;
    let labels: serde_json::Value =
        serde_json::from_str(&args.labels).map_err(CliError::LabelsNotJson)?;
    if !labels.is_object() {
        return Err(CliError::LabelsNotObject);
    }
    let id = args.id.unwrap_or_else(uuid::Uuid::now_v7);
    let url = format!(
        "{}/api/v1/pipelines/{}/submissions/{id}",
        args.url.trim_end_matches('/'),
        args.pipeline
    );
    let body =
        json!({"image": base64::engine::general_purpose::STANDARD.encode(bytes), "labels": labels});
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = agent.put(&url);
    if let Some(token) = &args.token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if args.asynchronous {
        request = request.header("prefer", "respond-async");
    }
    let failed = |source| CliError::Http {
        url: url.clone(),
        source,
    };
    let mut response = request.send_json(&body).map_err(failed)?;
    let status = response.status();
    let text = response.body_mut().read_to_string().map_err(failed)?;
    println!("{text}");
    if status.is_success() {
        Ok(())
    } else {
        Err(CliError::Answered(status))
    }
}

fn orphans(config: Option<PathBuf>) -> Result<(), CliError> {
    let overrides = Overrides {
        config_file: config,
        ..Default::default()
    };
    let loaded = Config::load(&overrides).map_err(CliError::Config)?;
    let path = &loaded.config.server.orphans_file;
    let found = crate::orphans::list(path).map_err(|source| CliError::File {
        path: path.clone(),
        source,
    })?;
    for orphan in &found {
        println!("{}", serde_json::to_string(orphan).unwrap_or_default());
    }
    eprintln!("{} orphan(s) listed in {}", found.len(), path.display());
    Ok(())
}

fn token(config: Option<PathBuf>, command: TokenCommand) -> Result<(), CliError> {
    use crate::auth::tokens;
    let overrides = Overrides {
        config_file: config,
        ..Default::default()
    };
    let loaded = Config::load(&overrides).map_err(CliError::Config)?;
    let path = loaded.base_dir.join(&loaded.config.auth.token_file);
    let duration =
        |d: std::time::Duration| chrono::Duration::from_std(d).map_err(CliError::Duration);
    match command {
        TokenCommand::Create {
            name,
            expires,
            pipelines,
        } => {
            let config = &loaded.config;
            if let Some(unknown) = pipelines
                .iter()
                .find(|p| !config.pipelines.contains_key(*p))
            {
                let known: Vec<&str> = config.pipelines.keys().map(String::as_str).collect();
                return Err(CliError::UnknownPipeline {
                    unknown: unknown.clone(),
                    known: known.join(", "),
                });
            }
            let expires_at = expires
                .map(duration)
                .transpose()?
                .map(|d| chrono::Utc::now() + d);
            let secret = tokens::create(&path, &name, expires_at, pipelines)?;
            println!("{secret}");
            eprintln!("token `{name}` created; this is the only time its secret is shown");
            if !config.uses_auth(crate::config::auth::AuthMode::Tokens) {
                eprintln!(
                    "note: no pipeline of this configuration checks tokens yet; set [auth] \
                     mode = \"tokens\" (or a pipeline's auth = \"tokens\") for it to be needed"
                );
            }
        }
        TokenCommand::List => {
            let entries = tokens::list(&path)?;
            if entries.is_empty() {
                eprintln!("no tokens in {}", path.display());
            }
            for entry in entries {
                let shown = json!({"id": entry.id, "name": entry.name, "created_at": entry.created_at,
                    "expires_at": entry.expires_at, "pipelines": entry.pipelines, "revoked_at": entry.revoked_at,
                    "previous_valid_until": entry.previous_valid_until});
                println!("{shown}");
            }
        }
        TokenCommand::Revoke { token } => {
            tokens::revoke(&path, &token)?;
            eprintln!("token `{token}` revoked");
        }
        TokenCommand::Rotate { token, grace } => {
            let secret = tokens::rotate(&path, &token, duration(grace)?)?;
            println!("{secret}");
            eprintln!(
                "token `{token}` rotated; the old secret stays valid for {}",
                humantime::format_duration(grace)
            );
        }
    }
    Ok(())
}

fn health(url: &str) -> Result<(), CliError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    agent
        .get(url)
        .call()
        .map(drop)
        .map_err(|source| CliError::Http {
            url: url.to_owned(),
            source,
        })
}
