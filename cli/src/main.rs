//! The `wtchat` command: the server, and the client tools beside it. This
//! crate is the only one that depends on both the server and the tools (and
//! on the yardsticks the bench measures the server against).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;
use wtchat_server::tls::certificate::{Identity, hex};
use wtchat_server::{Config, Server, Settings};

/// A real-time chat server for browsers: WebSocket now, WebTransport next,
/// one broadcast core.
#[derive(Debug, Parser)]
#[command(name = "wtchat", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default when no command is given).
    Serve(ServeArgs),
    /// Print the certificate the server would present: its SHA-256 (what
    /// browsers need as `serverCertificateHashes`) and its validity; with a
    /// development certificate, also the announced next one. Generates the
    /// development certificate if there is none yet.
    Certs(ServeArgs),
    /// A terminal chat client: joins a room, prints what happens, and sends
    /// what is typed (`/join ROOM`, `/leave`, `/quit`).
    Chat(wtchat_tools::chat::ChatArgs),
    /// Check a configuration file: validate it (with any WTCHAT_* variables
    /// and flags on top, as `serve` would) and print the effective
    /// configuration, every option included, as TOML.
    CheckConfig(CheckConfigArgs),
    /// Load-test a running server: S subscribers, P publishers, B-byte
    /// messages at R messages per second for D seconds (or a ramp, or idle
    /// connections), with latency percentiles, loss, and CPU and memory
    /// costs.
    Bench(wtchat_tools::bench::BenchArgs),
    /// Run a yardstick that `wtchat bench --versus` measures wtchat against
    /// in the same run: `textbook` (one broadcast channel, a task per
    /// connection) or `floor` (one send per delivery, nothing else). They
    /// speak enough of the protocol over WebSocket for the bench, and no
    /// more.
    Yardstick(YardstickArgs),
}

#[derive(Debug, clap::Args)]
struct YardstickArgs {
    /// Which one: the same names `wtchat bench --versus` takes.
    #[arg(value_enum)]
    kind: wtchat_tools::load::Versus,
    /// Where to listen (HTTP and WebSocket).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// A TOML file of settings; keys are the long option names with
    /// underscores. Flags and environment variables override it.
    #[arg(long, short, env = "WTCHAT_CONFIG")]
    config: Option<PathBuf>,
    /// Log filter, such as `info` or `wtchat_core=debug,wtchat_redis=debug`.
    #[arg(long, env = "WTCHAT_LOG", default_value = "info")]
    log: String,
    /// Log format.
    #[arg(long, env = "WTCHAT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(flatten)]
    settings: Settings,
}

#[derive(Debug, clap::Args)]
struct CheckConfigArgs {
    /// The TOML file to check.
    file: PathBuf,
    #[command(flatten)]
    settings: Settings,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (args, run): (ServeArgs, fn(Config) -> anyhow::Result<()>) = match cli.command {
        Some(Command::Serve(args)) => (args, serve),
        Some(Command::Certs(args)) => (args, print_certificates),
        Some(Command::Chat(args)) => return client_tool(async move { wtchat_tools::chat::run(args).await }),
        Some(Command::CheckConfig(args)) => return check_config(&args),
        Some(Command::Bench(args)) => {
            return client_tool(async move { wtchat_tools::bench::run(args).await.map(drop) });
        }
        Some(Command::Yardstick(args)) => {
            let yardstick = match args.kind {
                wtchat_tools::load::Versus::Textbook => wtchat_yardsticks::Yardstick::Textbook,
                wtchat_tools::load::Versus::Floor => wtchat_yardsticks::Yardstick::Floor,
            };
            return client_tool(wtchat_yardsticks::serve(yardstick, args.listen));
        }
        None => (cli.serve, serve),
    };
    init_logging(&args.log, args.log_format);
    let outcome = resolve_config(&args).and_then(run);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("wtchat: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one of the client tools on a runtime of its own.
fn client_tool(tool: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(tool));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("wtchat: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(filter: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn resolve_config(args: &ServeArgs) -> anyhow::Result<Config> {
    let mut config = Config::default();
    if let Some(path) = &args.config {
        config = config.apply(&Settings::from_file(path)?);
    }
    let config = config.apply(&args.settings);
    config.validate()?;
    Ok(config)
}

fn check_config(args: &CheckConfigArgs) -> ExitCode {
    let checked = Settings::from_file(&args.file)
        .map_err(anyhow::Error::from)
        .map(|file| Config::default().apply(&file).apply(&args.settings))
        .and_then(|config| config.validate().map(|()| config).map_err(anyhow::Error::from))
        .and_then(|config| Ok(toml::to_string(&Settings::effective(&config))?));
    match checked {
        Ok(text) => {
            println!(
                "# {} is valid; the effective configuration (secrets shown as \"(set)\"):",
                args.file.display()
            );
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("wtchat: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let path = config.webtransport_path.clone();
        let server = Server::new(config)?;
        let listeners = server.bind().await?;
        let tcp = listeners.tcp_addresses()[0];
        let scheme = if server.certificates().is_self_signed() { "http" } else { "https" };
        let ws = if scheme == "http" { "ws" } else { "wss" };
        let webtransport = listeners.quic_addresses().first().map(|quic| format!("https://{quic}{path}"));
        let sha256 =
            server.certificates().is_self_signed().then(|| hex(&server.certificates().current().sha256()));
        eprintln!("wtchat is listening on {scheme}://{tcp}/ (WebSocket at {ws}://{tcp}/ws)");
        if let Some(url) = &webtransport {
            eprintln!("WebTransport at {url}");
        }
        if let Some(sha256) = &sha256 {
            eprintln!(
                "development certificate sha-256 {sha256} (pages get it from {scheme}://{tcp}/cert-hashes)"
            );
        }
        eprintln!("wtchat is ready; Ctrl-C or SIGTERM stops it gracefully");
        // For scripts and tests: where everything is, as one line of JSON
        // on standard output, so that nobody parses the log above.
        let announcement = serde_json::json!({
            "listening": {
                "http": format!("{scheme}://{tcp}/"),
                "tcp": listeners.tcp_addresses(),
                "quic": listeners.quic_addresses(),
                "websocket": format!("{ws}://{tcp}/ws"),
                "webtransport": webtransport,
                "certificate_sha256": sha256,
            }
        });
        println!("{announcement}");
        server.run(listeners, shutdown_signal()).await?;
        Ok(())
    })
}

fn print_certificates(config: Config) -> anyhow::Result<()> {
    let server = Server::new(config)?;
    let store = server.certificates();
    let describe = |label: &str, identity: &Identity| {
        let sha256 = identity.sha256();
        println!("{label}:");
        println!("  sha-256 (hex):    {}", hex(&sha256));
        println!(
            "  sha-256 (base64): {}",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, sha256)
        );
        println!("  valid from:       {}", httpdate::fmt_http_date(identity.not_before()));
        println!("  valid until:      {}", httpdate::fmt_http_date(identity.not_after()));
        println!("  names:            {}", identity.names().join(", "));
    };
    describe(
        if store.is_self_signed() { "current (self-signed)" } else { "current (from files)" },
        &store.current(),
    );
    if let Some(next) = store.next() {
        describe("next (announced, served after rotation)", &next);
    }
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT stops the server");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
