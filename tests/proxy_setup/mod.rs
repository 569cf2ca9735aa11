//! Real proxies in front of ward: nginx and Caddy run as child processes on 127.0.0.1
//! with the shipped configurations (`proxies/nginx/ward.conf` with only its addresses
//! replaced, `proxies/caddy/Caddyfile` as it is, addressed through its environment
//! variables), ward's plain-HTTP listener behind them, and [`Echo`], an upstream that
//! answers with the headers it received and counts what reached it.
//!
//! The binaries come from Debian's `nginx` and `caddy` packages (`.ci/run` installs
//! them). A missing binary fails the test with a message saying so, unless
//! `WARD_SKIP_PROXY_TESTS=1` says to skip the tests through real proxies.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::common::{Answer, eventually, send_raw};

/// Which proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Nginx,
    Caddy,
}

pub const KINDS: [Kind; 2] = [Kind::Nginx, Kind::Caddy];

impl Kind {
    fn binary(self) -> &'static str {
        match self {
            Kind::Nginx => "nginx",
            Kind::Caddy => "caddy",
        }
    }

    /// What the client gets when ward cannot answer (down) or answers neither allow nor
    /// 401/403 (nginx turns every other auth status into 500; Caddy passes it on).
    pub fn fail_closed_status(self, ward_status: Option<u16>) -> u16 {
        match (self, ward_status) {
            (Kind::Nginx, _) => 500,
            (Kind::Caddy, None) => 502,
            (Kind::Caddy, Some(s)) => s,
        }
    }
}

/// Where the repository's files are.
fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The proxy's binary, or `None` when it is missing and skipping was asked for.
fn find(kind: Kind) -> Option<PathBuf> {
    let name = kind.binary();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        let skip = std::env::var("WARD_SKIP_PROXY_TESTS").is_ok_and(|v| v == "1");
        assert!(
            skip,
            "{name} is not installed: the tests through real proxies need it \
             (apt-get install -y nginx caddy, as .ci/run does), or set \
             WARD_SKIP_PROXY_TESTS=1 to skip them"
        );
        eprintln!("WARD_SKIP_PROXY_TESTS=1: {name} missing, test skipped");
    }
    found
}

/// A free port on 127.0.0.1 (bound and released for the proxy to take).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A proxy running in front of ward; killed when dropped.
pub struct Proxy {
    pub kind: Kind,
    pub addr: SocketAddr,
    child: Child,
    dir: tempfile::TempDir,
}

impl Proxy {
    /// Starts `kind` on a free port, asking ward at `ward` and forwarding to `upstream`;
    /// `None` when the binary is missing and skipping was asked for.
    pub async fn start(kind: Kind, ward: SocketAddr, upstream: SocketAddr) -> Option<Proxy> {
        let bin = find(kind)?;
        let dir = tempfile::tempdir().expect("a directory for the proxy");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("proxy.log")).expect("log file");
        let mut cmd = Command::new(&bin);
        cmd.kill_on_drop(true)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log);
        match kind {
            Kind::Nginx => {
                let conf = nginx_conf(dir.path(), ward, upstream, port);
                std::fs::write(dir.path().join("nginx.conf"), conf).expect("nginx.conf");
                let p = dir.path().display().to_string();
                cmd.args(["-p", &p, "-c", &format!("{p}/nginx.conf")])
                    .args(["-e", &format!("{p}/error.log")]);
            }
            Kind::Caddy => {
                cmd.args(["run", "--adapter", "caddyfile", "--config"])
                    .arg(repo("proxies/caddy/Caddyfile"))
                    .env("WARD_HTTP_ADDR", ward.to_string())
                    .env("WARD_UPSTREAM", upstream.to_string())
                    .env("WARD_PORT", port.to_string())
                    .env("WARD_BIND", "127.0.0.1")
                    .env("WARD_CADDY_ADMIN", "off")
                    .env("HOME", dir.path())
                    .env("XDG_DATA_HOME", dir.path())
                    .env("XDG_CONFIG_HOME", dir.path());
            }
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let mut proxy = Proxy {
            kind,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child,
            dir,
        };
        proxy.wait_listening().await;
        Some(proxy)
    }

    /// Polls until the proxy accepts connections; fails with its log if it exits.
    async fn wait_listening(&mut self) {
        let addr = self.addr;
        let kind = self.kind;
        let log = self.dir.path().join("proxy.log");
        let error_log = self.dir.path().join("error.log");
        let child = &mut self.child;
        eventually(Duration::from_secs(15), async || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "{kind:?} exited ({status}):\n{}\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default(),
                    std::fs::read_to_string(&error_log).unwrap_or_default()
                );
            }
            tokio::net::TcpStream::connect(addr)
                .await
                .map(drop)
                .map_err(|e| format!("{kind:?} not listening on {addr} yet: {e}"))
        })
        .await;
    }

    /// Sends `GET path` (exactly as written: no client-side normalisation) through the
    /// proxy with `headers` (`name: value` lines).
    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        let mut head = format!("GET {path} HTTP/1.1\r\nhost: api.example.com\r\n");
        for (n, v) in headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        head.push_str("connection: close\r\n");
        send_raw(self.addr, head.as_bytes()).await
    }
}

/// nginx's main config around the shipped server block, whose three addresses are
/// replaced (each must be found exactly once: the shipped file is what runs).
pub fn nginx_conf(dir: &Path, ward: SocketAddr, upstream: SocketAddr, port: u16) -> String {
    let shipped = std::fs::read_to_string(repo("proxies/nginx/ward.conf"))
        .expect("read proxies/nginx/ward.conf");
    let mut conf = shipped;
    for (from, to) in [
        ("server 127.0.0.1:9003;", format!("server {ward};")),
        ("server 127.0.0.1:8080;", format!("server {upstream};")),
        (
            "listen 127.0.0.1:8000;",
            format!("listen 127.0.0.1:{port};"),
        ),
    ] {
        assert_eq!(
            conf.matches(from).count(),
            1,
            "proxies/nginx/ward.conf must say `{from}` once"
        );
        conf = conf.replace(from, &to);
    }
    let d = dir.display();
    std::fs::write(dir.join("ward.conf"), conf).expect("ward.conf");
    format!(
        "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
         include {d}/ward.conf;\n}}\n"
    )
}

// === impl Echo ===

/// The upstream behind the proxy: answers every request with its method, URI and
/// headers as JSON, and counts the requests that reached it.
#[derive(Clone)]
pub struct Echo {
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

impl Echo {
    pub async fn start() -> Echo {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the echo upstream");
        let addr = listener.local_addr().expect("echo addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let app = Router::new().fallback(echo).with_state(hits.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Echo { addr, hits }
    }

    /// How many requests reached the upstream.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn echo(
    State(hits): State<Arc<AtomicUsize>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> impl IntoResponse {
    hits.fetch_add(1, Ordering::SeqCst);
    let headers: Vec<Value> = headers
        .iter()
        .map(|(n, v)| json!([n.as_str(), String::from_utf8_lossy(v.as_bytes())]))
        .collect();
    let body = json!({"method": method.as_str(), "uri": uri.to_string(), "headers": headers});
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
}

/// The headers the upstream received, from its echo: (lower-case name, value).
pub fn received(a: &Answer) -> Vec<(String, String)> {
    a.json()["headers"]
        .as_array()
        .unwrap_or_else(|| panic!("not an echo: {a:?}"))
        .iter()
        .map(|h| {
            (
                h[0].as_str().unwrap_or_default().to_ascii_lowercase(),
                h[1].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The owned-looking headers the upstream received: every `x-auth-*` and every other
/// spelling of one (`x_auth_*`, `x-auth_*`, `x_auth-*`), sorted.
pub fn identity_received(a: &Answer) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = received(a)
        .into_iter()
        .filter(|(n, _)| {
            let b = n.as_bytes();
            b.len() > 7
                && b[..1] == *b"x"
                && matches!(b[1], b'-' | b'_')
                && &b[2..6] == b"auth"
                && matches!(b[6], b'-' | b'_')
        })
        .collect();
    v.sort();
    v
}
