//! `server`: listen addresses, TLS, shutdown, the watch interval and request limits.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::config::{Dur, Errors};

/// The `server` section: where ward listens and how it runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where Envoy's `Authorization/Check` is served.
    pub grpc_addr: SocketAddr,
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub admin_addr: SocketAddr,
    /// Where plain-HTTP authorization (SPEC §9: Envoy `http_service`, nginx
    /// `auth_request`, forward auth) is served; `None`: not served.
    pub http_addr: Option<SocketAddr>,
    /// The largest request head (request line and headers) the HTTP listener reads.
    pub http_max_header_bytes: usize,
    /// TLS (and optionally mTLS) on the gRPC port.
    pub tls: Option<TlsConfig>,
    /// How long a shutdown waits for checks in flight.
    pub shutdown_grace: Duration,
    /// How often the config file is checked for changes; `None` (`0s`) turns it off.
    pub watch_interval: Option<Duration>,
    /// The bounds on the work one gRPC request or connection may make ward do.
    pub limits: RequestLimits,
}

/// What a client of the gRPC port may hold (SPEC §7, "Bounded work per request"). Read
/// when the listener starts; a reload does not change them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// A request must arrive whole (its message and the end of its stream) within this.
    pub request_timeout: Duration,
    /// HTTP/2 streams one connection may have open at once.
    pub max_concurrent_streams: u32,
    /// Bytes of requests being received, over all connections, that ward holds at once.
    pub max_inflight_request_bytes: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(5),
            max_concurrent_streams: 1024,
            max_inflight_request_bytes: 128 * 1024 * 1024,
        }
    }
}

/// The default of `server.http_max_header_bytes`: above Envoy's default limit on request
/// headers (60 KiB), so whatever Envoy forwards is read.
pub const HTTP_MAX_HEADER_BYTES: usize = 64 * 1024;

/// The bounds of `server.http_max_header_bytes`: hyper reads no head in less than 8 KiB,
/// and a connection may make ward hold this much while its head arrives.
const HTTP_HEADER_BYTES_RANGE: std::ops::RangeInclusive<usize> = 8 * 1024..=1024 * 1024;

/// The smallest `max_inflight_request_bytes` accepted: a cap below one ordinary request
/// would refuse every check (and is most likely a value meant in KiB or MiB).
const MIN_INFLIGHT_REQUEST_BYTES: usize = 64 * 1024;

/// `server.tls`: the gRPC port's certificate, and the CA its clients must present a
/// certificate from, if any. Paths are already resolved against the config's directory.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// The certificate chain (PEM).
    pub cert_file: PathBuf,
    /// The certificate's private key (PEM).
    pub key_file: PathBuf,
    /// The CA that client certificates must chain to; `None`: no client certificate.
    pub client_ca_file: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    grpc_addr: Option<String>,
    admin_addr: Option<String>,
    http_addr: Option<String>,
    http_max_header_bytes: Option<usize>,
    tls: Option<RawTls>,
    shutdown_grace: Option<Dur>,
    watch_interval: Option<Dur>,
    request_timeout: Option<Dur>,
    max_concurrent_streams: Option<u32>,
    max_inflight_request_bytes: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: String,
    key_file: String,
    client_ca_file: Option<String>,
}

pub(super) fn compile_server(v: Value, base: &Path, errors: &mut Errors) -> Option<ServerConfig> {
    let raw: RawServer = if v.is_null() {
        RawServer::default()
    } else {
        errors.parse("server", v)?
    };
    let limits = compile_limits(&raw, errors);
    let addr = |errors: &mut Errors, field: &str, text: Option<String>, default: &str| {
        let text = text.unwrap_or_else(|| default.to_string());
        text.parse::<SocketAddr>()
            .map_err(|_| {
                errors.add(
                    &format!("server.{field}"),
                    format!("`{text}` is not a socket address like 0.0.0.0:9001"),
                )
            })
            .ok()
    };
    let grpc_addr = addr(errors, "grpc_addr", raw.grpc_addr, "0.0.0.0:9001");
    let admin_addr = addr(errors, "admin_addr", raw.admin_addr, "0.0.0.0:9002");
    // Off unless asked for: a listener nobody configured is a port nobody guards.
    let http_addr = raw
        .http_addr
        .map(|text| addr(errors, "http_addr", Some(text), ""));
    if let (Some(Some(http)), Some(grpc), Some(admin)) = (http_addr, grpc_addr, admin_addr) {
        for (other, taken) in [("grpc_addr", grpc), ("admin_addr", admin)] {
            if http == taken && http.port() != 0 {
                errors.add(
                    "server.http_addr",
                    format!("`{http}` is also server.{other}: each listener needs its own port"),
                );
            }
        }
    }
    let http_max_header_bytes = raw.http_max_header_bytes.unwrap_or(HTTP_MAX_HEADER_BYTES);
    if !HTTP_HEADER_BYTES_RANGE.contains(&http_max_header_bytes) {
        errors.add(
            "server.http_max_header_bytes",
            format!(
                "must be between {} (8 KiB) and {} (1 MiB); the value is in bytes",
                HTTP_HEADER_BYTES_RANGE.start(),
                HTTP_HEADER_BYTES_RANGE.end()
            ),
        );
    }
    let tls = raw.tls.map(|t| TlsConfig {
        cert_file: base.join(t.cert_file),
        key_file: base.join(t.key_file),
        client_ca_file: t.client_ca_file.map(|c| base.join(c)),
    });
    Some(ServerConfig {
        grpc_addr: grpc_addr?,
        admin_addr: admin_addr?,
        http_addr: match http_addr {
            None => None,
            // Parsed, or an error already collected.
            Some(parsed) => Some(parsed?),
        },
        http_max_header_bytes,
        tls,
        shutdown_grace: raw.shutdown_grace.map_or(Duration::from_secs(10), |d| d.0),
        watch_interval: Some(raw.watch_interval.map_or(Duration::from_secs(2), |d| d.0))
            .filter(|d| !d.is_zero()),
        limits: limits?,
    })
}

fn compile_limits(raw: &RawServer, errors: &mut Errors) -> Option<RequestLimits> {
    let default = RequestLimits::default();
    let before = errors.count();
    let request_timeout = raw.request_timeout.map_or(default.request_timeout, |d| d.0);
    if request_timeout.is_zero() {
        errors.add("server.request_timeout", "must be greater than 0s");
    }
    let max_concurrent_streams = raw
        .max_concurrent_streams
        .unwrap_or(default.max_concurrent_streams);
    if max_concurrent_streams == 0 {
        errors.add("server.max_concurrent_streams", "must be greater than 0");
    }
    let max_inflight_request_bytes = raw
        .max_inflight_request_bytes
        .unwrap_or(default.max_inflight_request_bytes);
    if max_inflight_request_bytes < MIN_INFLIGHT_REQUEST_BYTES {
        errors.add(
            "server.max_inflight_request_bytes",
            format!(
                "must be at least {MIN_INFLIGHT_REQUEST_BYTES} (64 KiB); the value is in bytes"
            ),
        );
    }
    (errors.count() == before).then_some(RequestLimits {
        request_timeout,
        max_concurrent_streams,
        max_inflight_request_bytes,
    })
}
