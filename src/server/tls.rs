//! TLS for the gRPC listener, with certificates that can be replaced while ward runs
//! (cert-manager rotates them in place): each new connection uses the latest good
//! configuration; a replacement that does not load is logged and the old one kept.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config::TlsConfig;
use crate::digest::sha256;
use crate::reload::Ticks;

/// How long a client may take to finish the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Builds the rustls configuration from the certificate, key and optional client CA.
pub fn load(tls: &TlsConfig) -> Result<ServerConfig, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert_file)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| format!("{}: {e}", tls.cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate", tls.cert_file.display()));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key_file)
        .map_err(|e| format!("{}: {e}", tls.key_file.display()))?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|e| e.to_string())?;
    let builder = match &tls.client_ca_file {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in
                CertificateDer::pem_file_iter(ca).map_err(|e| format!("{}: {e}", ca.display()))?
            {
                let cert = cert.map_err(|e| format!("{}: {e}", ca.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| format!("{}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("{}: {e}", tls.key_file.display()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(cfg)
}

mod not_after;

/// When the first (serving) certificate in `cert_file` expires, in Unix seconds; None
/// when it cannot be read (the load itself reports why).
fn not_after(cert_file: &std::path::Path) -> Option<f64> {
    let first = CertificateDer::pem_file_iter(cert_file)
        .ok()?
        .next()?
        .ok()?;
    not_after::not_after(&first).map(|t| t as f64)
}

/// A TLS configuration that follows its files.
pub struct ReloadingTls {
    tls: TlsConfig,
    current: ArcSwap<ServerConfig>,
    metrics: Arc<crate::metrics::Metrics>,
}

impl ReloadingTls {
    /// Loads the files; the TLS metrics (reloads, the certificate's expiry) start here.
    pub fn new(tls: TlsConfig, metrics: Arc<crate::metrics::Metrics>) -> Result<Arc<Self>, String> {
        let cfg = load(&tls)?;
        metrics.track_tls(not_after(&tls.cert_file));
        Ok(Arc::new(Self {
            tls,
            current: ArcSwap::from_pointee(cfg),
            metrics,
        }))
    }

    fn digest(&self) -> Option<[u8; 32]> {
        let mut all = Vec::new();
        let files = [
            Some(&self.tls.cert_file),
            Some(&self.tls.key_file),
            self.tls.client_ca_file.as_ref(),
        ];
        for f in files.into_iter().flatten() {
            all.extend_from_slice(&std::fs::read(f).ok()?);
        }
        Some(sha256(&all))
    }

    /// Checks the files every `interval` and swaps in a new configuration when they
    /// change; counts every tick it finished in `ticks`.
    pub async fn watch(self: Arc<Self>, interval: Duration, ticks: Ticks) {
        let mut seen = self.digest();
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = self.digest();
            if now.is_some() && now != seen {
                seen = now;
                self.reload();
            }
            ticks.tick();
        }
    }

    /// Loads the files again and swaps them in, or logs why not.
    fn reload(&self) {
        match load(&self.tls) {
            Ok(cfg) => {
                self.current.store(Arc::new(cfg));
                if let Some(t) = not_after(&self.tls.cert_file) {
                    self.metrics.tls_certificate_expiry.set(t);
                }
                self.metrics
                    .tls_reloads
                    .with_label_values(&["success"])
                    .inc();
                tracing::info!(cert = %self.tls.cert_file.display(), "TLS certificate reloaded");
            }
            Err(e) => {
                self.metrics
                    .tls_reloads
                    .with_label_values(&["failure"])
                    .inc();
                tracing::error!(error = %e, "TLS files changed but do not load; keeping the previous ones")
            }
        }
    }

    fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.load_full())
    }
}

/// Accepts TCP connections and completes TLS handshakes off the accept loop; yields the
/// established streams for tonic's `serve_with_incoming`.
pub fn incoming(
    listener: TcpListener,
    tls: Arc<ReloadingTls>,
) -> tokio_stream::wrappers::ReceiverStream<std::io::Result<TlsStream<tokio::net::TcpStream>>> {
    let (tx, rx) = tokio::sync::mpsc::channel(128);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            if tx.is_closed() {
                return;
            }
            let acceptor = tls.acceptor();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
