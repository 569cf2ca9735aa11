//! `ward serve` and `ward validate`.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use ward::config::{self, Config, ProcessEnv};
use ward::telemetry::Telemetry;
use ward::{LoadError, Server, Ward};

use crate::LogFormat;

/// Logs to stderr, filtered by `RUST_LOG` (default `info`); with `telemetry`, ward's spans
/// also go to the OpenTelemetry layer, which has a filter of its own (so `RUST_LOG=warn`
/// quiets the logs, not the traces). Without it, no such layer exists at all.
pub fn init_tracing(format: Option<LogFormat>, telemetry: Option<&Telemetry>) {
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::{EnvFilter, Layer as _};
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let format = format.unwrap_or(if std::io::stderr().is_terminal() {
        LogFormat::Text
    } else {
        LogFormat::Json
    });
    let Some(telemetry) = telemetry else {
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter())
            .with_writer(std::io::stderr);
        match format {
            LogFormat::Json => builder.json().flatten_event(true).init(),
            LogFormat::Text => builder.init(),
        }
        return;
    };
    // The log lines stay as they are without telemetry: the log layer sees no span
    // (formatting a span's fields again at each `record` doubled a traced check's cost),
    // and JSON lines list none.
    use tracing_subscriber::filter::FilterExt as _;
    let no_spans = || tracing_subscriber::filter::filter_fn(|m| !m.is_span());
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = match format {
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_filter(filter().and(no_spans()))
            .boxed(),
        LogFormat::Text => logs.with_filter(filter().and(no_spans())).boxed(),
    };
    tracing_subscriber::registry()
        .with(logs)
        .with(telemetry.layer())
        .init();
}

/// The `telemetry` section of the config at `path` and its `server.shutdown_grace` (the
/// time the last spans get to leave), read before the subscriber is set up: the config
/// is loaded again, and its errors reported, right after.
fn telemetry_of(path: &Path) -> Option<(ward::config::TelemetryConfig, Duration)> {
    let c = config::load_file(path, &ProcessEnv).ok()?;
    Some((c.telemetry()?.clone(), c.server.shutdown_grace))
}

/// The TLS files of `server.tls` load (certificate chain, key that matches it, client
/// CA): what `serve` needs before it can listen, so `validate` checks it too.
fn check_tls(path: &Path, config: &Config) -> Result<(), String> {
    Server::check_tls(config).map_err(|e| format!("{}: server.tls: {e}", path.display()))
}

pub fn validate(path: &Path) -> ExitCode {
    let checked = config::load_file(path, &ProcessEnv)
        .map_err(|e| crate::render(path, &e))
        .and_then(|c| check_tls(path, &c).map(|()| c));
    match checked {
        Ok(c) => {
            // A closed pipe is not an error: the config is valid.
            let _ = writeln!(
                crate::stdout(),
                "{}: valid ({} providers, {} routes)",
                path.display(),
                c.provider_names().len(),
                c.route_names().len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

/// `ward render TARGET`: the proxy settings of a valid config, or its errors (exit 1).
pub fn render(target: &str, path: &Path) -> ExitCode {
    let Some(target) = ward::render::Target::parse(target) else {
        eprintln!("ward: unknown render target `{target}`");
        return ExitCode::from(2);
    };
    match config::load_file(path, &ProcessEnv) {
        Ok(c) => {
            let _ = write!(crate::stdout(), "{}", ward::render::render(&c, target));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}", crate::render(path, &e));
            ExitCode::from(1)
        }
    }
}

/// Listen addresses given on the command line, each overriding the config's.
pub struct Addrs {
    pub grpc: Option<std::net::SocketAddr>,
    pub admin: Option<std::net::SocketAddr>,
    pub http: Option<std::net::SocketAddr>,
}

pub fn serve(path: &Path, addrs: Addrs, log_format: Option<LogFormat>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    // The exporter sends on this runtime: built inside it, shut down before it ends.
    let telemetry = match telemetry_of(path) {
        None => None,
        Some((t, grace)) => {
            let _in_rt = rt.enter();
            let started = Telemetry::start(&t).map_err(|e| {
                anyhow::anyhow!("invalid config, not starting:\n{}: {e}", path.display())
            })?;
            Some((started, t, grace))
        }
    };
    init_tracing(log_format, telemetry.as_ref().map(|(t, _, _)| t));
    if let Some((_, t, _)) = &telemetry {
        // Not the endpoint: a URL may carry credentials.
        tracing::info!(
            sample_ratio = t.sample_ratio,
            queue_size = t.queue_size,
            "exporting traces over OTLP"
        );
    }
    let served = rt.block_on(async move {
        let ward = Ward::from_file(path).map_err(|e| {
            let e = match e {
                LoadError::Config(errors) => crate::render(path, &errors),
                other => other.to_string(),
            };
            anyhow::anyhow!("invalid config, not starting:\n{e}")
        })?;
        let config = ward.config();
        check_tls(path, &config)
            .map_err(|e| anyhow::anyhow!("invalid config, not starting:\n{e}"))?;
        let grpc_addr = addrs.grpc.unwrap_or(config.grpc_addr());
        let admin_addr = addrs.admin.unwrap_or(config.admin_addr());
        let grpc = tokio::net::TcpListener::bind(grpc_addr)
            .await
            .with_context(|| format!("binding gRPC on {grpc_addr}"))?;
        let admin = tokio::net::TcpListener::bind(admin_addr)
            .await
            .with_context(|| format!("binding admin on {admin_addr}"))?;
        let http = match addrs.http.or(config.http_addr()) {
            None => None,
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding plain-HTTP authorization on {addr}"))?,
            ),
        };
        let (hup_tx, hup_rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(forward_sighup(hup_tx));
        tokio::spawn(crate::return_freed_memory());
        let http_addr = match &http {
            Some(l) => l.local_addr()?.to_string(),
            None => "off".to_string(),
        };
        tracing::info!(
            grpc = %grpc.local_addr()?, admin = %admin.local_addr()?, http = %http_addr,
            config = %path.display(), version = env!("CARGO_PKG_VERSION"), "ward serving"
        );
        let mut server = Server::new(ward, grpc, admin);
        if let Some(http) = http {
            server = server.http(http);
        }
        server
            .reload_on(hup_rx, config.watch_interval())
            .run(shutdown_signal())
            .await?;
        tracing::info!("ward stopped");
        Ok(())
    });
    if let Some((telemetry, _, grace)) = telemetry {
        // The spans of the last checks, sent while the runtime (still alive here) carries
        // the exporter's connection.
        telemetry.shutdown(grace);
    }
    served
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
