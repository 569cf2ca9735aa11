//! [`Ward`]: one handle on a running policy, for the server and for a Rust service that
//! embeds ward.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use crate::clock::Clock;
use crate::config::{self, Config, ConfigErrors, Env, ProcessEnv, Sources};
use crate::decision::Decision;
use crate::metrics::Metrics;
use crate::reload::{self, ReloadError};
use crate::request::CheckInput;
use crate::state::AppState;

/// Why a policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The config is invalid: every error, each with its path and line.
    #[error("{0}")]
    Config(ConfigErrors),
    /// A key source of the config could not be set up (an unreadable `jwks_file`).
    #[error("{0}")]
    Keys(String),
}

/// Where a file-backed policy is reloaded from.
struct FileSource {
    path: PathBuf,
    env: Arc<dyn Env + Send + Sync>,
    /// The files the last successful load read, for the watcher.
    read: Mutex<Sources>,
}

/// A compiled policy with its key sources, caches and metrics: what decides a request.
///
/// Cheap to clone (every clone is the same policy). A reload swaps the policy whole:
/// checks in flight finish on the version they started with, and the next check, the
/// gRPC server and every [`layer`](Ward::layer) made from this handle see the new one.
/// Remote key sources (JWKS, OIDC discovery) are fetched and refreshed in the
/// background, so a `Ward` must be made inside a Tokio runtime.
///
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let ward = ward::Ward::from_file("ward.yaml")?;
/// let input = ward::CheckInput {
///     method: "GET",
///     path: "/orders/42",
///     ..Default::default()
/// };
/// let decision = ward.check(&input).await;
/// println!("{}", decision.label());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Ward {
    state: Arc<AppState>,
    file: Option<Arc<FileSource>>,
}

impl Ward {
    /// Loads the config file at `path`, expanding `${VAR}` from the process environment.
    pub fn from_file(path: impl Into<PathBuf>) -> Result<Self, LoadError> {
        Self::from_file_with_env(path, Arc::new(ProcessEnv))
    }

    /// Loads the config file at `path`, expanding `${VAR}` from `env`.
    pub fn from_file_with_env(
        path: impl Into<PathBuf>,
        env: Arc<dyn Env + Send + Sync>,
    ) -> Result<Self, LoadError> {
        Self::from_file_with(path, env, Clock::system())
    }

    /// Loads the config file at `path`, expanding `${VAR}` from `env`, and judges time
    /// (token lifetimes, caches, key refreshes, the introspection breaker) by `clock`.
    pub fn from_file_with(
        path: impl Into<PathBuf>,
        env: Arc<dyn Env + Send + Sync>,
        clock: Clock,
    ) -> Result<Self, LoadError> {
        let path = path.into();
        let (loaded, read) = config::load_file_tracked(&path, &*env);
        let config = loaded.map_err(LoadError::Config)?;
        let mut ward = Self::with_clock(config, clock)?;
        ward.state.status.set_source(&path);
        ward.file = Some(Arc::new(FileSource {
            path,
            env,
            read: Mutex::new(read),
        }));
        Ok(ward)
    }

    /// A policy from an already compiled config (see [`config::load_str`]); it has no file
    /// to reload from, but [`Ward::replace`] swaps in another config.
    pub fn new(config: Config) -> Result<Self, LoadError> {
        Self::with_clock(config, Clock::system())
    }

    /// [`Ward::new`], judging time by `clock` (a test's [`Clock::manual`]).
    pub fn with_clock(config: Config, clock: Clock) -> Result<Self, LoadError> {
        let state = AppState::start_with_clock(config, clock).map_err(LoadError::Keys)?;
        Ok(Self { state, file: None })
    }

    /// Decides one request.
    pub async fn check(&self, input: &CheckInput<'_>) -> Decision {
        self.state.engine.load().check(input).await
    }

    /// Reads the config file again and swaps it in; on error the running policy keeps
    /// serving (the error is logged and counted in `ward_config_reloads_total`).
    pub fn reload(&self) -> Result<(), ReloadError> {
        let Some(file) = &self.file else {
            return Err(ReloadError::NoFile);
        };
        let (result, read) = reload::reload_tracked(&file.path, &self.state, &*file.env);
        if result.is_ok() {
            *file.read.lock().unwrap_or_else(PoisonError::into_inner) = read;
        }
        result
    }

    /// Swaps in `config`, keeping the key caches of providers it leaves unchanged.
    pub fn replace(&self, config: Config) -> Result<(), ReloadError> {
        reload::replace(&self.state, config)
    }

    /// Whether every JWT provider holds keys (what `/readyz` reports).
    pub fn ready(&self) -> bool {
        self.state.ready()
    }

    /// The running config.
    pub fn config(&self) -> Arc<Config> {
        self.state.engine.load().config().clone()
    }

    /// ward's Prometheus metrics (`render` gives the text exposition).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.state.metrics
    }

    /// The config file this policy reloads from, if it was loaded from one.
    pub fn config_file(&self) -> Option<&Path> {
        self.file.as_ref().map(|f| f.path.as_path())
    }

    pub(crate) fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// What the reload watcher needs: path, environment, the files read last.
    pub(crate) fn watched(&self) -> Option<(PathBuf, Arc<dyn Env + Send + Sync>, Sources)> {
        self.file.as_ref().map(|f| {
            let read = f
                .read
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            (f.path.clone(), f.env.clone(), read)
        })
    }
}
