//! What every part of a running ward shares: the current engine (swapped whole on
//! reload), the metrics, the remote key sources and the decision observer. The gRPC
//! server, the admin endpoints, the tower layer and [`Ward`](crate::Ward) all hold one.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::authn::jwks::KeySources;
use crate::clock::Clock;
use crate::config::Config;
use crate::engine::Engine;
use crate::metrics::Metrics;
use crate::observe::Observer;

/// What every request handler shares. The engine is swapped whole on reload; a check
/// loads it once and finishes on the version it started with.
pub struct AppState {
    pub engine: ArcSwap<Engine>,
    pub metrics: Arc<Metrics>,
    /// Remote key stores, shared across reloads.
    pub key_sources: KeySources,
    /// Counts and logs every decision.
    pub observer: Observer,
    /// The config's source and reloads, and since when static keys are held (`/status`).
    pub(crate) status: crate::status::StatusLog,
}

impl AppState {
    /// State around an already-built engine (remote keys fetched on demand only), for
    /// tests and benches.
    #[cfg(any(test, feature = "internals"))]
    pub fn new(engine: Engine) -> Arc<Self> {
        let metrics = engine.metrics().clone();
        metrics.track(engine.config());
        let key_sources = KeySources::with_clock(metrics.clone(), false, engine.clock().clone());
        let status = crate::status::StatusLog::new(engine.config(), engine.clock().unix_secs());
        Arc::new(Self {
            engine: ArcSwap::from_pointee(engine),
            key_sources,
            observer: Observer::new(metrics.clone()),
            metrics,
            status,
        })
    }

    /// State for a server: remote key sources start fetching and refreshing now. Must be
    /// called within a Tokio runtime. Token expiry, caches, key refresh and the
    /// introspection breaker all read `clock` (tests pass a manual clock).
    pub fn start_with_clock(config: Config, clock: Clock) -> Result<Arc<Self>, String> {
        let metrics = Arc::new(Metrics::new());
        let key_sources = KeySources::with_clock(metrics.clone(), true, clock.clone());
        let stores = key_sources.stores_for(config.providers.iter().map(|p| p.keys_wanted()))?;
        let engine = Engine::with_key_stores(config, stores, metrics.clone(), clock.clone());
        metrics.track(engine.config());
        metrics
            .config_last_reload_success
            .set(clock.unix_secs() as f64);
        let status = crate::status::StatusLog::new(engine.config(), clock.unix_secs());
        Ok(Arc::new(Self {
            engine: ArcSwap::from_pointee(engine),
            observer: Observer::new(metrics.clone()),
            metrics,
            key_sources,
            status,
        }))
    }

    /// Every JWT provider of the current engine holds keys.
    pub fn ready(&self) -> bool {
        self.engine.load().ready()
    }
}
