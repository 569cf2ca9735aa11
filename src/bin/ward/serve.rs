//! `ward serve` and `ward validate`.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use ward::config::{self, Config, ProcessEnv};
use ward::{LoadError, Server, Ward};

use crate::LogFormat;

pub fn init_tracing(format: Option<LogFormat>) {
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

pub fn serve(path: &Path, addrs: Addrs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
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
