//! The `ward` binary: CLI parsing, logging setup, config loading, then the library.
//! Config is loaded before anything is bound: a bad config is one clear message and a
//! non-zero exit, never a half-started server.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

use ward::Engine;
use ward::authn::jwt::Alg;
use ward::config::{self, Config, ProcessEnv};
use ward::devtoken::SigningKey;
use ward::metrics::Metrics;
use ward::request::CheckInput;
use ward::server::{self, AppState};

#[derive(Parser)]
#[command(name = "ward", version, about = "Envoy external-authorization server")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Clone)]
struct ConfigArg {
    /// Config file [default: $WARD_CONFIG, then ./ward.yaml]
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
}

impl ConfigArg {
    fn path(&self) -> PathBuf {
        self.config
            .clone()
            .or_else(|| std::env::var_os("WARD_CONFIG").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("ward.yaml"))
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve Envoy's Authorization/Check over gRPC, plus the admin HTTP endpoints.
    Serve {
        #[command(flatten)]
        config: ConfigArg,
        /// Overrides server.grpc_addr.
        #[arg(long)]
        grpc_addr: Option<std::net::SocketAddr>,
        /// Overrides server.admin_addr.
        #[arg(long)]
        admin_addr: Option<std::net::SocketAddr>,
        /// Log format [default: text on a terminal, json otherwise]
        #[arg(long, value_enum)]
        log_format: Option<LogFormat>,
    },
    /// Check a config; exit 0 when valid, 1 with every error (path and line) otherwise.
    Validate {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Decide one request offline and explain it; exit 0 allow, 1 deny, 2 error.
    Check(CheckArgs),
    /// Run a table of requests with expected outcomes; exit 0 all pass, 1 a failure, 2 error.
    Test {
        #[command(flatten)]
        config: ConfigArg,
        /// The cases file (see docs/policy-testing.md).
        cases: PathBuf,
    },
    /// Development tokens and API-key hashes.
    Token {
        #[command(subcommand)]
        cmd: TokenCmd,
    },
}

#[derive(Args)]
struct CheckArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[arg(long, default_value = "GET")]
    method: String,
    /// Request path, query string included.
    #[arg(long)]
    path: String,
    #[arg(long, default_value = "")]
    host: String,
    /// A request header, `name: value` (repeatable).
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
    /// An Envoy context extension, `key=value` (repeatable).
    #[arg(long = "ctx")]
    context: Vec<String>,
    /// The peer's principal (SPIFFE ID), as Envoy's source.principal.
    #[arg(long)]
    source_principal: Option<String>,
    /// The peer certificate as Envoy sends it (URL-encoded PEM), for `mesh` providers.
    #[arg(long)]
    source_certificate: Option<String>,
    /// Print the decision as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Sign a development JWT; prints only the token.
    Sign {
        /// Private key PEM (for HS*: a file holding the secret).
        #[arg(long)]
        key: PathBuf,
        #[arg(long, default_value = "RS256")]
        alg: String,
        #[arg(long)]
        iss: String,
        /// Audience (repeatable).
        #[arg(long, required = true)]
        aud: Vec<String>,
        #[arg(long)]
        sub: String,
        /// Extra claim `name=<json>`, e.g. --claim 'roles=["admin"]' (repeatable).
        #[arg(long = "claim")]
        claims: Vec<String>,
        /// Lifetime, e.g. 1h.
        #[arg(long, default_value = "1h")]
        ttl: String,
    },
    /// Print the public JWKS for a key; its kid is the one `sign` puts in tokens.
    Jwks {
        #[arg(long)]
        key: PathBuf,
        #[arg(long, default_value = "RS256")]
        alg: String,
    },
    /// Read an API key on stdin and print its SHA-256 for `api_key.keys[].sha256`.
    HashKey,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Json,
    Text,
}

/// mimalloc, not the system allocator: the token cache holds ~100 000 small long-lived
/// blocks allocated between the short-lived ones of each request, and glibc's arenas
/// keep the pages those pin resident. See BENCHMARKS.md (memory).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h (the same value in mimalloc 2.1+ and 3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Hands memory that ward frees back to the OS at once. mimalloc's default waits a second
/// and then purges only when the allocator is next called: an idle ward kept the ~130 MiB
/// of request buffers an abusive client had made it fill, after the client was gone
/// (tests/limits.rs measures it).
fn return_freed_memory_promptly() {
    // SAFETY: sets one integer option; mimalloc's options are safe to set at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) }
}

fn main() -> ExitCode {
    return_freed_memory_promptly();
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Serve {
            config,
            grpc_addr,
            admin_addr,
            log_format,
        } => {
            init_tracing(log_format);
            exit(serve(&config.path(), grpc_addr, admin_addr))
        }
        Cmd::Validate { config } => validate(&config.path()),
        Cmd::Check(args) => check(args),
        Cmd::Test { config, cases } => ward::policytest::main(&config.path(), &cases),
        Cmd::Token { cmd } => exit(token(cmd)),
    }
}

fn exit(r: anyhow::Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ward: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: Option<LogFormat>) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let format = format.unwrap_or(if std::io::stderr().is_terminal() {
        LogFormat::Text
    } else {
        LogFormat::Json
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

fn load(path: &Path) -> Result<Config, String> {
    load_tracked(path).map(|(config, _)| config)
}

/// [`load`], also returning the files read, for the reload watcher.
fn load_tracked(path: &Path) -> Result<(Config, config::Sources), String> {
    let (loaded, sources) = config::load_file_tracked(path, &ProcessEnv);
    loaded.map(|c| (c, sources)).map_err(|errs| {
        errs.0
            .iter()
            .map(|e| match e.line {
                Some(_) => format!("{}:{e}", path.display()),
                None if e.path.is_empty() => e.message.clone(),
                None => format!("{}: {e}", path.display()),
            })
            .collect::<Vec<_>>()
            .join("\n")
    })
}

/// The TLS files of `server.tls` load (certificate chain, key that matches it, client
/// CA): what `serve` needs before it can listen, so `validate` checks it too.
fn load_tls(path: &Path, config: &Config) -> Result<(), String> {
    match &config.server.tls {
        Some(tls) => server::tls::load(tls)
            .map(drop)
            .map_err(|e| format!("{}: server.tls: {e}", path.display())),
        None => Ok(()),
    }
}

fn validate(path: &Path) -> ExitCode {
    match load(path).and_then(|c| load_tls(path, &c).map(|()| c)) {
        Ok(c) => {
            println!(
                "{}: valid ({} providers, {} routes)",
                path.display(),
                c.providers.len(),
                c.routes.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

fn serve(
    path: &Path,
    grpc_addr: Option<std::net::SocketAddr>,
    admin_addr: Option<std::net::SocketAddr>,
) -> anyhow::Result<()> {
    let (config, sources) = load_tracked(path)
        .and_then(|(c, s)| load_tls(path, &c).map(|()| (c, s)))
        .map_err(|e| anyhow::anyhow!("invalid config, not starting:\n{e}"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        let grpc_addr = grpc_addr.unwrap_or(config.server.grpc_addr);
        let admin_addr = admin_addr.unwrap_or(config.server.admin_addr);
        let grace = config.server.shutdown_grace;
        let grpc = tokio::net::TcpListener::bind(grpc_addr)
            .await
            .with_context(|| format!("binding gRPC on {grpc_addr}"))?;
        let admin = tokio::net::TcpListener::bind(admin_addr)
            .await
            .with_context(|| format!("binding admin on {admin_addr}"))?;
        let watch_interval = config.server.watch_interval;
        let state = AppState::start(config).map_err(anyhow::Error::msg)?;
        let (hup_tx, hup_rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(forward_sighup(hup_tx));
        let watcher = tokio::spawn(server::reload::watch(
            path.to_path_buf(),
            state.clone(),
            Arc::new(ProcessEnv),
            watch_interval,
            hup_rx,
            sources,
        ));
        tracing::info!(
            grpc = %grpc.local_addr()?, admin = %admin.local_addr()?, config = %path.display(),
            version = env!("CARGO_PKG_VERSION"), "ward serving"
        );
        server::run(grpc, admin, state, shutdown_signal(), grace).await?;
        watcher.abort();
        tracing::info!("ward stopped");
        Ok(())
    })
}

/// SIGHUP asks for a config reload.
async fn forward_sighup(tx: tokio::sync::mpsc::Sender<()>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; reload by editing the file instead");
        return;
    };
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the config");
        // A reload already queued covers this one too.
        let _ = tx.try_send(());
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            std::future::pending::<()>().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn check(args: CheckArgs) -> ExitCode {
    match run_check(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("ward: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run_check(args: CheckArgs) -> anyhow::Result<bool> {
    let path = args.config.path();
    let config = load(&path).map_err(|e| anyhow::anyhow!("invalid config:\n{e}"))?;
    let mut headers = Vec::new();
    for (i, h) in args.headers.iter().enumerate() {
        let (name, value) = h
            .split_once(':')
            .with_context(|| format!("-H argument {} is not `name: value`", i + 1))?;
        let value = value.strip_prefix(' ').unwrap_or(value);
        headers.push((name.trim().to_ascii_lowercase(), value.to_string()));
    }
    let mut context = Vec::new();
    for c in &args.context {
        let (k, v) = c
            .split_once('=')
            .with_context(|| format!("context `{c}` is not `key=value`"))?;
        context.push((k.to_string(), v.to_string()));
    }
    let mut input =
        CheckInput::from_pairs(&args.method, &args.host, &args.path, &headers, &context);
    input.source_principal = args.source_principal.as_deref().unwrap_or("");
    input.source_certificate = args.source_certificate.as_deref().unwrap_or("");
    input.stream_id = "ward-check";
    let engine = Engine::new(config, Arc::new(Metrics::new()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let d = rt.block_on(engine.check(&input));
    let report = ward::decision::Report::new(&d);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(d.is_allow())
}

fn token(cmd: TokenCmd) -> anyhow::Result<()> {
    match cmd {
        TokenCmd::Sign {
            key,
            alg,
            iss,
            aud,
            sub,
            claims,
            ttl,
        } => {
            let key = signing_key(&key, &alg)?;
            let ttl = config::duration::parse_duration(&ttl).map_err(anyhow::Error::msg)?;
            let now = ward::clock::unix_now();
            let mut body = serde_json::json!({
                "iss": iss,
                "sub": sub,
                "aud": if aud.len() == 1 { serde_json::json!(aud[0]) } else { serde_json::json!(aud) },
                "iat": now,
                "exp": now + ttl.as_secs(),
            });
            for c in &claims {
                let (name, json) = c
                    .split_once('=')
                    .with_context(|| format!("claim `{c}` is not `name=<json>`"))?;
                let value: serde_json::Value = serde_json::from_str(json).with_context(|| {
                    format!("claim `{name}`: the value is not JSON (quote strings: '\"x\"')")
                })?;
                body[name] = value;
            }
            println!("{}", key.sign(&body)?);
            Ok(())
        }
        TokenCmd::Jwks { key, alg } => {
            let key = signing_key(&key, &alg)?;
            println!("{}", serde_json::to_string_pretty(&key.jwks())?);
            Ok(())
        }
        TokenCmd::HashKey => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the key from stdin")?;
            let key = line.strip_suffix('\n').unwrap_or(&line);
            let key = key.strip_suffix('\r').unwrap_or(key);
            if key.is_empty() {
                bail!("no key on stdin");
            }
            // ward refuses a presented key with spaces, control or non-ASCII bytes as
            // malformed (never trimmed): such a key could never be used.
            if !ward::authn::apikey::is_key_syntax(key) {
                bail!("an API key is printable ASCII without spaces; ward would refuse this one");
            }
            println!("{}", ward::authn::apikey::sha256_hex(key.as_bytes()));
            Ok(())
        }
    }
}

fn signing_key(path: &Path, alg: &str) -> anyhow::Result<SigningKey> {
    let alg = Alg::parse(alg).with_context(|| format!("unknown algorithm `{alg}`"))?;
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(SigningKey::from_bytes(&bytes, alg)?)
}
