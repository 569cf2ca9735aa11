//! The network side: the gRPC listener (Check, health), the admin listener and, when
//! given one, the plain-HTTP authorization listener ([`http`]), started together by
//! [`Server::run`] and stopped together on shutdown.

pub mod admin;
pub mod grpc;
pub mod http;
pub mod limits;
pub mod stream;
pub mod tls;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt as _;

use crate::config::Config;
use crate::reload::{self, Ticks};
use crate::state::AppState;
use crate::ward::Ward;
use stream::Coalescing;

/// `envoy/service/auth/v3/external_auth.proto` and its imports, for server reflection
/// (cut from envoy-types' descriptor set by `examples/gen_descriptor.rs`).
const AUTHZ_DESCRIPTOR: &[u8] = include_bytes!("../../proto/authz_descriptor.bin");

/// HTTP/2 flow-control window, per stream and per connection: a check of ordinary size
/// arrives in one round trip, and a connection never has more than this unread.
const HTTP2_WINDOW: u32 = 1024 * 1024;

/// The tick counts of a server's file watchers (`Server::watch_ticks`).
#[derive(Clone, Debug, Default)]
pub struct WatchTicks {
    /// The config file watcher's ([`Server::reload_on`] with an interval).
    pub config: Ticks,
    /// The TLS certificate watcher's (`server.tls` with `server.watch_interval`).
    pub tls: Ticks,
}

/// ward's network side on its bound listeners (gRPC, admin, and optionally plain HTTP):
/// what `ward serve` runs, and what the tests start on ephemeral ports.
pub struct Server {
    ward: Ward,
    grpc: TcpListener,
    admin: TcpListener,
    http: Option<TcpListener>,
    grace: Duration,
    reload: Option<(mpsc::Receiver<()>, Option<Duration>)>,
    ticks: WatchTicks,
}

impl Server {
    /// Serves `ward` with gRPC (Check, health, reflection) on `grpc` and admin HTTP on
    /// `admin`; the shutdown grace is the config's `server.shutdown_grace`.
    pub fn new(ward: Ward, grpc: TcpListener, admin: TcpListener) -> Self {
        let grace = ward.config().server.shutdown_grace;
        Self {
            ward,
            grpc,
            admin,
            http: None,
            grace,
            reload: None,
            ticks: WatchTicks::default(),
        }
    }

    /// Whether the files of the config's `server.tls` load (certificate chain, a key that
    /// matches it, client CA): what serving needs before it can listen.
    pub fn check_tls(config: &Config) -> Result<(), String> {
        match &config.server.tls {
            Some(tls) => tls::load(tls).map(drop),
            None => Ok(()),
        }
    }

    /// Also serves plain-HTTP authorization (SPEC §9: Envoy `http_service`, nginx
    /// `auth_request`, forward auth) on `http`, with the same policy and shutdown.
    pub fn http(mut self, http: TcpListener) -> Self {
        self.http = Some(http);
        self
    }

    /// How long in-flight checks may take to finish once shutdown starts.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Reloads the policy's config file on every message on `trigger` (SIGHUP in
    /// `ward serve`) and, every `interval`, when a file that the config read changed.
    /// Ignored for a policy that was not loaded from a file.
    pub fn reload_on(mut self, trigger: mpsc::Receiver<()>, interval: Option<Duration>) -> Self {
        self.reload = Some((trigger, interval));
        self
    }

    /// How many ticks the file watchers have finished once [`Server::run`] starts them:
    /// ward's own tests wait on these rather than on the clock.
    #[cfg(feature = "internals")]
    #[doc(hidden)]
    pub fn watch_ticks(&self) -> WatchTicks {
        self.ticks.clone()
    }

    /// Serves until `shutdown` resolves; then stops accepting, lets in-flight checks
    /// finish for at most the grace period, and returns.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let state = self.ward.state().clone();
        let watcher = match (self.reload, self.ward.watched()) {
            (Some((trigger, interval)), Some((path, env, read))) => {
                Some(tokio::spawn(reload::watch(
                    path,
                    state.clone(),
                    env,
                    interval,
                    trigger,
                    read,
                    self.ticks.config,
                )))
            }
            _ => None,
        };
        let served = serve(
            self.grpc,
            self.admin,
            self.http,
            state,
            shutdown,
            self.grace,
            self.ticks.tls,
        )
        .await;
        if let Some(w) = watcher {
            w.abort();
        }
        served
    }
}

/// Serves gRPC on `grpc`, admin HTTP on `admin` and plain-HTTP authorization on `http`
/// until `shutdown` resolves; then stops accepting, lets in-flight checks finish for at
/// most `grace`, and returns.
async fn serve(
    grpc: TcpListener,
    admin: TcpListener,
    http: Option<TcpListener>,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
    tls_ticks: Ticks,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let (health, health_svc) = tonic_health::server::health_reporter();
    // "" is liveness: SERVING until shutdown. The Authorization service, which Envoy's
    // health check asks for, turns SERVING once this replica first holds keys for every
    // JWT provider (what /readyz reports at start), so no check reaches a replica that
    // cannot verify yet. A later reload whose new provider has no keys does not take it
    // back: that provider's routes answer 503 authn_unavailable, the rest keep working.
    health
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let startup = if state.ready() {
        health.set_serving::<grpc::AuthorizationService>().await;
        None
    } else {
        health.set_not_serving::<grpc::AuthorizationService>().await;
        // Woken by every key change, not polled: subscribed before the check, so a
        // change between the check and the wait is not missed.
        let mut keys_changed = state.key_sources.keys_changed();
        Some(tokio::spawn({
            let (health, state) = (health.clone(), state.clone());
            async move {
                while !state.ready() {
                    if keys_changed.changed().await.is_err() {
                        return;
                    }
                }
                health.set_serving::<grpc::AuthorizationService>().await;
            }
        }))
    };

    let grpc_stop = wait_for(stop_rx.clone());
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(AUTHZ_DESCRIPTOR)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| std::io::Error::other(format!("reflection: {e}")))?;
    let (tls, watch_interval, limits) = {
        let engine = state.engine.load();
        let server = &engine.config().server;
        (server.tls.clone(), server.watch_interval, server.limits)
    };
    // One builder serves both the plaintext and the TLS listener, so both get the same
    // limits. HTTP/2 flow control keeps hyper's 1 MiB windows (per stream and per
    // connection, not adaptive): what a connection can have buffered below the
    // limits layer, which reads it into the budget at once.
    let router = tonic::transport::Server::builder()
        .max_concurrent_streams(limits.max_concurrent_streams)
        .initial_stream_window_size(HTTP2_WINDOW)
        .initial_connection_window_size(HTTP2_WINDOW)
        .http2_adaptive_window(Some(false))
        .layer(limits::RequestLimitsLayer::new(&limits, &state.metrics))
        .layer(tower::util::MapResponseLayer::new(
            stream::SplitData::response,
        ))
        .add_service(health_svc)
        .add_service(reflection)
        .add_service(grpc::AuthorizationService::new(state.clone()));
    let mut tls_watch = None;
    let grpc_task = match tls {
        Some(t) => {
            let reloading = tls::ReloadingTls::new(t, state.metrics.clone())
                .map_err(|e| std::io::Error::other(format!("TLS: {e}")))?;
            if let Some(i) = watch_interval {
                tls_watch = Some(tokio::spawn(reloading.clone().watch(i, tls_ticks)));
            }
            let incoming = tls::incoming(grpc, reloading).map(|s| s.map(Coalescing::new));
            tokio::spawn(router.serve_with_incoming_shutdown(incoming, grpc_stop))
        }
        None => {
            let incoming = tonic::transport::server::TcpIncoming::from(grpc)
                .with_nodelay(Some(true))
                .map(|s| s.map(Coalescing::new));
            tokio::spawn(router.serve_with_incoming_shutdown(incoming, grpc_stop))
        }
    };
    let admin_task = tokio::spawn(
        axum::serve(admin, admin::router(state.clone()))
            .with_graceful_shutdown(wait_for(stop_rx.clone()))
            .into_future(),
    );

    let http_task = http.map(|listener| {
        let settings = http::Settings::of(&state);
        tokio::spawn(http::serve(
            listener,
            state.clone(),
            settings,
            wait_for(stop_rx.clone()),
        ))
    });

    shutdown.await;
    tracing::info!(
        grace_ms = grace.as_millis() as u64,
        "shutting down: draining in-flight checks"
    );
    if let Some(startup) = startup {
        startup.abort();
    }
    health
        .set_service_status("", tonic_health::ServingStatus::NotServing)
        .await;
    health.set_not_serving::<grpc::AuthorizationService>().await;
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(grace, async {
        let _ = grpc_task.await;
        let _ = admin_task.await;
        if let Some(t) = http_task {
            let _ = t.await;
        }
    })
    .await;
    if let Some(w) = tls_watch {
        w.abort();
    }
    if drained.is_err() {
        tracing::warn!("shutdown grace elapsed with checks still in flight; exiting");
    }
    Ok(())
}

async fn wait_for(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}
