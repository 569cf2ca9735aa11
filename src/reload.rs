//! Hot reload: the config file and the files whose content it holds (`jwks_file`,
//! `keys_file`, an introspection `ca_file`) are watched by content, so Kubernetes
//! ConfigMap and Secret `..data` symlink swaps count; SIGHUP reloads at once. A new config is compiled and validated
//! first, then swapped in atomically; an invalid one is logged with every error,
//! counted, and the last good config keeps serving. Checks in flight finish on the
//! engine they loaded. Remote key stores whose provider did not change are reused, so a
//! reload never empties a key cache.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{self, Config, ConfigErrors, Env, Sources};
use crate::state::AppState;

/// Why a reload did not take effect.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new config is invalid: every error, with its path and line.
    #[error("{0}")]
    Invalid(ConfigErrors),
    /// A key source of the new config could not be set up.
    #[error("{0}")]
    Keys(String),
    /// [`Ward::reload`](crate::Ward::reload) on a policy that was not loaded from a file.
    #[error("this policy was not loaded from a file")]
    NoFile,
}

/// Reloads `path` into `state` (on error the running config is untouched), and returns
/// the files the attempt read.
pub(crate) fn reload_tracked(
    path: &Path,
    state: &AppState,
    env: &dyn Env,
) -> (Result<(), ReloadError>, Sources) {
    let (loaded, sources) = config::load_file_tracked(path, env);
    let result = loaded
        .map_err(ReloadError::Invalid)
        .and_then(|config| compile(state, config));
    let secrets = match &result {
        Err(_) => crate::status::env_values(path, env),
        Ok(_) => Vec::new(),
    };
    let origin = path.display().to_string();
    (record(&origin, state, result, &secrets), sources)
}

/// Swaps `config` into `state`, as a reload of the file would.
pub(crate) fn replace(state: &AppState, config: Config) -> Result<(), ReloadError> {
    let result = compile(state, config);
    record("(in process)", state, result, &[])
}

/// The engine for `config`, reusing the running engine's key stores and clients.
fn compile(state: &AppState, config: Config) -> Result<crate::engine::Engine, ReloadError> {
    let running = state.engine.load();
    let old = &running.config().server;
    if old.grpc_addr != config.server.grpc_addr
        || old.admin_addr != config.server.admin_addr
        || old.http_addr != config.server.http_addr
    {
        tracing::warn!("listen addresses changed in the config: they apply on restart only");
    }
    if running.config().telemetry != config.telemetry {
        tracing::warn!("telemetry changed in the config: it applies on restart only");
    }
    let stores = state
        .key_sources
        .stores_for(config.providers.iter().map(|p| p.keys_wanted()))
        .map_err(ReloadError::Keys)?;
    Ok(running.reloaded(config, stores))
}

/// Swaps in a new engine, or logs why not; counts either way, and notes it for
/// `/status` (an error there with the values of `secrets` replaced by their `${NAME}`).
fn record(
    origin: &str,
    state: &AppState,
    result: Result<crate::engine::Engine, ReloadError>,
    secrets: &[(String, String)],
) -> Result<(), ReloadError> {
    let m = &state.metrics;
    match result {
        Ok(engine) => {
            let routes = engine.config().routes.len();
            let config = engine.config().clone();
            state.engine.store(Arc::new(engine));
            // After the swap: a check still on the old engine may count once more.
            m.track(&config);
            m.config_reloads.with_label_values(&["success"]).inc();
            m.config_last_reload_success
                .set(state.key_sources.clock().unix_secs() as f64);
            state
                .status
                .reloaded(&config, state.key_sources.clock().unix_secs());
            tracing::info!(config = origin, routes, "config reloaded");
            Ok(())
        }
        Err(e) => {
            m.config_reloads.with_label_values(&["failure"]).inc();
            let errors = match &e {
                ReloadError::Invalid(errs) => errs.0.iter().map(ToString::to_string).collect(),
                ReloadError::Keys(k) => vec![k.clone()],
                ReloadError::NoFile => vec![e.to_string()],
            };
            let shown = match &e {
                ReloadError::Invalid(errs) => crate::status::render_errors(origin, errs),
                other => other.to_string(),
            };
            state.status.failed(
                state.key_sources.clock().unix_secs(),
                crate::status::scrub(&shown, secrets),
            );
            tracing::error!(
                config = origin, errors = ?errors,
                "config reload failed; the last good config keeps serving"
            );
            Err(e)
        }
    }
}

/// Every `interval`, reloads when a file the last load read changed: `path` itself, or
/// a file it names (`seen` holds what the running config was loaded from). Also reloads
/// on every message on `trigger` (SIGHUP). Runs until the task is dropped or aborted.
pub async fn watch(
    path: PathBuf,
    state: Arc<AppState>,
    env: Arc<dyn Env + Send + Sync>,
    interval: Option<Duration>,
    trigger: tokio::sync::mpsc::Receiver<()>,
    mut seen: Sources,
    ticks: Ticks,
) {
    let mut missing_logged = false;
    let mut tick = interval.map(|i| {
        let mut t = tokio::time::interval(i);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let mut trigger = Some(trigger);
    loop {
        let forced = tokio::select! {
            msg = async {
                match trigger.as_mut() {
                    Some(r) => r.recv().await,
                    None => std::future::pending().await,
                }
            } => match msg {
                Some(()) => true,
                None => {
                    // No more signals: keep watching the file, if asked to.
                    trigger = None;
                    if tick.is_none() {
                        return;
                    }
                    continue;
                }
            },
            _ = async {
                match tick.as_mut() {
                    Some(t) => { t.tick().await; }
                    None => std::future::pending::<()>().await,
                }
            } => false,
        };
        if std::fs::metadata(&path).is_err() {
            // Counted when it goes missing and on every SIGHUP, not on every tick.
            if !missing_logged || forced {
                state
                    .metrics
                    .config_reloads
                    .with_label_values(&["failure"])
                    .inc();
                state.status.failed(
                    state.key_sources.clock().unix_secs(),
                    format!("{}: the config file is missing", path.display()),
                );
            }
            if !missing_logged {
                tracing::error!(config = %path.display(), "config file is missing; the last good config keeps serving");
                missing_logged = true;
            }
        } else {
            missing_logged = false;
            let changed = seen.changed().map(Path::to_path_buf);
            if forced || changed.is_some() {
                if let Some(file) = changed.filter(|f| *f != path) {
                    tracing::info!(file = %file.display(), "a file the config names changed");
                }
                let (_, read) = reload_tracked(&path, &state, &*env);
                seen = read;
            }
        }
        if !forced {
            ticks.tick();
        }
    }
}

/// How many interval ticks a file watcher (the config's, the TLS files') has finished:
/// what a test waits on to know a watcher looked at its files, instead of sleeping.
#[derive(Clone, Debug)]
pub struct Ticks(tokio::sync::watch::Sender<u64>);

impl Default for Ticks {
    fn default() -> Self {
        Ticks(tokio::sync::watch::Sender::new(0))
    }
}

impl Ticks {
    /// Counts one finished tick.
    pub(crate) fn tick(&self) {
        self.0.send_modify(|n| *n = n.saturating_add(1));
    }

    /// The count, to read or to wait on.
    #[cfg(feature = "internals")]
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.0.subscribe()
    }
}
