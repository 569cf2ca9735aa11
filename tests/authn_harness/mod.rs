//! Starts ward on 127.0.0.1 (ephemeral ports) for the credential tests
//! (introspection, API keys, mesh) and sends it Envoy-shaped CheckRequests.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest, CheckResponse};
use serde_json::Value;
use tonic::transport::Channel;

pub struct Ward {
    pub grpc: SocketAddr,
    pub admin: SocketAddr,
    client: AuthorizationClient<Channel>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Ward {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Compiles `yaml` (with `env` for `${NAME}`, `dir` for relative files) and serves it.
pub async fn start_with(yaml: &str, dir: &std::path::Path, env: &HashMap<String, String>) -> Ward {
    let config = ward::config::load_str(yaml, dir, env).unwrap_or_else(|e| panic!("config: {e}"));
    let state = ward::server::AppState::start(config).expect("state");
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind grpc");
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind admin");
    let (grpc_addr, admin_addr) = (
        grpc.local_addr().expect("addr"),
        admin.local_addr().expect("addr"),
    );
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(ward::server::run(
        grpc,
        admin,
        state,
        async move {
            let _ = rx.await;
        },
        Duration::from_secs(1),
    ));
    // The listener is bound already: connecting cannot race the server start.
    let client = AuthorizationClient::connect(format!("http://{grpc_addr}"))
        .await
        .expect("connect");
    Ward {
        grpc: grpc_addr,
        admin: admin_addr,
        client,
        stop: Some(tx),
    }
}

pub async fn start(yaml: &str) -> Ward {
    let dir = tempfile::tempdir().expect("tempdir");
    start_with(yaml, dir.path(), &HashMap::new()).await
}

/// One request as Envoy would describe it.
#[derive(Clone, Default)]
pub struct Req {
    pub path: String,
    /// Header lines in order; sent in `header_map` when `raw`, else joined by `,` in
    /// the `headers` map as Envoy does.
    pub headers: Vec<(String, Vec<u8>)>,
    pub raw: bool,
    pub principal: String,
    pub certificate: String,
}

impl Req {
    pub fn get(path: &str) -> Self {
        Req {
            path: path.into(),
            ..Default::default()
        }
    }

    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers.push((name.into(), value.as_ref().to_vec()));
        self
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }

    pub fn raw(mut self) -> Self {
        self.raw = true;
        self
    }

    pub fn principal(mut self, p: &str) -> Self {
        self.principal = p.into();
        self
    }

    pub fn certificate(mut self, c: &str) -> Self {
        self.certificate = c.into();
        self
    }

    fn build(&self) -> CheckRequest {
        let mut http = HttpRequest {
            id: "7".into(),
            method: "GET".into(),
            host: "api.example.com".into(),
            path: self.path.clone(),
            ..Default::default()
        };
        if self.raw {
            http.header_map = Some(HeaderMap {
                headers: self
                    .headers
                    .iter()
                    .map(|(k, v)| HeaderValue {
                        key: k.clone(),
                        raw_value: v.clone(),
                        ..Default::default()
                    })
                    .collect(),
            });
        } else {
            let mut map: HashMap<String, String> = HashMap::new();
            for (k, v) in &self.headers {
                let v = String::from_utf8_lossy(v).into_owned();
                map.entry(k.clone())
                    .and_modify(|old| {
                        old.push(',');
                        old.push_str(&v);
                    })
                    .or_insert(v);
            }
            http.headers = map;
        }
        let source = (!self.principal.is_empty() || !self.certificate.is_empty()).then(|| Peer {
            principal: self.principal.clone(),
            certificate: self.certificate.clone(),
            ..Default::default()
        });
        CheckRequest {
            attributes: Some(AttributeContext {
                source,
                request: Some(Request {
                    http: Some(http),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }
    }
}

/// What ward answered, flattened for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub code: i32,
    pub http: u16,
    /// `ok` on allow, else the deny body's `error`.
    pub reason: String,
    /// The deny body's `detail`, empty on allow.
    pub detail: String,
    /// Headers set upstream on allow.
    pub set: Vec<(String, String)>,
}

impl Outcome {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.set
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn subject(&self) -> Option<&str> {
        self.header("x-auth-subject")
    }

    /// (gRPC code, HTTP status, reason)
    pub fn short(&self) -> (i32, u16, &str) {
        (self.code, self.http, self.reason.as_str())
    }
}

pub fn outcome(r: &CheckResponse) -> Outcome {
    let code = r.status.as_ref().map_or(0, |s| s.code);
    match &r.http_response {
        Some(HttpResponse::OkResponse(ok)) => Outcome {
            code,
            http: 200,
            reason: "ok".into(),
            detail: String::new(),
            set: ok
                .headers
                .iter()
                .filter_map(|h| h.header.as_ref())
                .map(|h| (h.key.clone(), h.value.clone()))
                .collect(),
        },
        Some(HttpResponse::DeniedResponse(d)) => {
            let body: Value = serde_json::from_str(&d.body).expect("json body");
            Outcome {
                code,
                http: d.status.as_ref().map_or(0, |s| s.code as u16),
                reason: body["error"].as_str().unwrap_or("").to_string(),
                detail: body["detail"].as_str().unwrap_or("").to_string(),
                set: Vec::new(),
            }
        }
        other => panic!("unexpected response {other:?}"),
    }
}

impl Ward {
    pub async fn check(&self, req: Req) -> Outcome {
        let r = self
            .client
            .clone()
            .check(req.build())
            .await
            .expect("check rpc")
            .into_inner();
        outcome(&r)
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.admin))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics body")
    }

    /// The value of one sample line of `/metrics` (0 when absent).
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self.metrics().await;
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    }
}

// === JWTs, for precedence tests ===

/// A fresh ES256 key for minting test tokens.
pub fn es256_key() -> ward::devtoken::SigningKey {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    use base64::Engine as _;
    let der = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
        .expect("p256")
        .to_pkcs8v1()
        .expect("der");
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("ascii"));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    ward::devtoken::SigningKey::from_bytes(pem.as_bytes(), ward::authn::jwt::Alg::ES256)
        .expect("signing key")
}

/// A token from `https://corp.test` for audience `api`.
pub fn jwt(key: &ward::devtoken::SigningKey, sub: &str) -> String {
    let exp = ward::authn::cache::unix_now() + 300;
    key.sign(&serde_json::json!({"iss": "https://corp.test", "aud": "api", "sub": sub, "exp": exp}))
        .expect("sign")
}

/// A `corp` JWT provider (issuer `https://corp.test`, audience `api`) trusting `key`,
/// as YAML list items of `providers:`.
pub fn corp_provider(key: &ward::devtoken::SigningKey) -> String {
    format!(
        "  - name: corp\n    jwt:\n      issuer: https://corp.test\n      audiences: [api]\n      algorithms: [ES256]\n      jwks: {}\n",
        key.jwks()
    )
}
