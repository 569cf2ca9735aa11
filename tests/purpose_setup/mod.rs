//! The gateway → service loop of purpose tokens (SPEC §8), for the tests that drive it:
//!
//! - a **gateway**: ward served in-process ([`Gateway`]), trusting an upstream IdP
//!   (issuer [`IDP`], an inline JWKS) and minting tokens with its own signing keys on
//!   its routes `checkout` and `quote` (audience [`AUDIENCE`]) and `reports` (audience
//!   `reports-api`), into [`MINT_HEADER`]; its `signing.issuer` is its own admin
//!   listener, so its discovery document and JWKS are where the issuer says;
//! - a **service** ([`Service`]): an axum app on 127.0.0.1 behind `Ward::layer()`, whose
//!   one provider trusts the gateway as its issuer by OIDC discovery, reads the token
//!   from [`MINT_HEADER`], and lets `/payments` through for role `buyer` on purpose
//!   `checkout`; the handler answers with the identity it was handed.
//!
//! Both judge time by one manual clock, started at [`CLOCK_START`]: the gateway mints by
//! it, the service verifies and refreshes its keys by it.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::Router;
use axum::http::HeaderMap;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use ward::Identity;
use ward::authn::jwt::Alg;
use ward::clock::Clock;

use crate::common::{
    CLOCK_START, KeyRing, Req, TestKey, Ward, bind_local, describe, eventually, metric, summary,
};

/// The upstream IdP's issuer: the gateway verifies its users' tokens.
pub const IDP: &str = "https://idp.test";
/// The audience the gateway mints for on `checkout` and `quote`: the service's.
pub const AUDIENCE: &str = "payments-api";
/// Where the gateway puts the minted token, and where the service reads it.
pub const MINT_HEADER: &str = "x-auth-token";
/// The lifetime of every token the gateway mints, in seconds: the longest ttl.
pub const TTL: u64 = 60;
/// The service's leeway on `exp`, in seconds.
pub const LEEWAY: u64 = 5;
/// The service's `refresh_interval` for the gateway's keys: how long it takes to see a
/// key added or removed. Shorter than the gateway's `Cache-Control: max-age=60` on its
/// JWKS, so it is the interval the service refreshes at.
pub const REFRESH: Duration = Duration::from_secs(40);
/// The service's `min_refetch_interval`: how often an unknown `kid` may make it fetch.
pub const MIN_REFETCH: Duration = Duration::from_secs(20);
/// How long a test waits for something done over the network in the background.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// The upstream IdP's key (ES256).
pub fn idp_key() -> &'static TestKey {
    &KeyRing::shared().es256
}

/// A token of the upstream IdP for the gateway (audience `gateway`): `sub`, `roles` and
/// `tenant: acme`, valid for a day from [`CLOCK_START`].
pub fn user_token(sub: &str, roles: &[&str]) -> String {
    idp_key().sign(&json!({
        "iss": IDP, "aud": "gateway", "sub": sub, "roles": roles, "tenant": "acme",
        "exp": CLOCK_START + 86_400,
    }))
}

/// One signing key of the gateway: its `kid` and the private key.
pub struct SigningKey {
    pub kid: String,
    pub key: TestKey,
}

impl SigningKey {
    pub fn generate(kid: &str, alg: Alg) -> Self {
        Self {
            kid: kid.to_string(),
            key: TestKey::generate(alg),
        }
    }

    fn file(&self) -> String {
        format!("signing/{}.pem", self.kid)
    }
}

/// The gateway's config: `signing` with `keys` in that order (the first signs), the
/// upstream IdP, the minting routes, and `extra` (YAML appended at the top level).
pub fn gateway_yaml(issuer: &str, keys: &[&SigningKey], extra: &str) -> String {
    let keys: String = keys
        .iter()
        .map(|k| {
            format!(
                "    - {{ kid: \"{}\", alg: {}, key_file: {} }}\n",
                k.kid,
                k.key.alg.as_str(),
                k.file()
            )
        })
        .collect();
    let idp = idp_key();
    format!(
        r#"
signing:
  issuer: "{issuer}"
  keys:
{keys}providers:
  - name: corp
    jwt:
      issuer: {IDP}
      audiences: [gateway]
      algorithms: [{alg}]
      jwks: {jwks}
routes:
  - name: checkout
    match: {{ path_prefix: /checkout }}
    providers: [corp]
    require: {{ roles_any: [buyer] }}
    mint: {{ audience: {AUDIENCE}, ttl: {TTL}s, header: {MINT_HEADER}, claims: [sub, roles, tenant] }}
  - name: quote
    match: {{ path_prefix: /quote }}
    providers: [corp]
    mint: {{ audience: {AUDIENCE}, ttl: {TTL}s, header: {MINT_HEADER}, claims: [sub, roles] }}
  - name: reports
    match: {{ path_prefix: /reports }}
    providers: [corp]
    mint: {{ audience: reports-api, ttl: {TTL}s, header: {MINT_HEADER}, claims: [sub, roles] }}
{extra}"#,
        alg = idp.alg.as_str(),
        jwks = idp.jwks(),
    )
}

/// ward as the gateway: served from `ward.yaml` (so [`Gateway::set_keys`] can rewrite
/// and reload it), its admin listener bound before the config is written.
pub struct Gateway {
    pub ward: Ward,
    /// `http://127.0.0.1:<admin port>` (maybe with a trailing `/`): `signing.issuer`,
    /// the `iss` of every token.
    pub issuer: String,
    extra: String,
}

impl Gateway {
    /// A gateway signing with `keys` (the first signs), on `clock`.
    pub async fn start(keys: &[&SigningKey], clock: Clock) -> Gateway {
        Self::start_with(keys, clock, "").await
    }

    /// [`Gateway::start`] with `extra` YAML at the top level of the config.
    pub async fn start_with(keys: &[&SigningKey], clock: Clock, extra: &str) -> Gateway {
        Self::launch(keys, clock, extra, "").await
    }

    /// [`Gateway::start`] with `signing.issuer` written with a trailing `/`.
    pub async fn start_slashed(keys: &[&SigningKey], clock: Clock) -> Gateway {
        Self::launch(keys, clock, "", "/").await
    }

    async fn launch(keys: &[&SigningKey], clock: Clock, extra: &str, slash: &str) -> Gateway {
        let admin = bind_local();
        let issuer = format!(
            "http://{}{slash}",
            admin.local_addr().expect("the admin listener's address")
        );
        let mut builder = Ward::from_file("ward.yaml")
            .file("ward.yaml", gateway_yaml(&issuer, keys, extra))
            .admin_listener(admin)
            .clock(clock);
        for k in keys {
            builder = builder.file(&k.file(), k.key.key_file());
        }
        Gateway {
            ward: builder.start().await,
            issuer,
            extra: extra.to_string(),
        }
    }

    /// Rewrites the config with `keys` (the first signs; key files written first) and
    /// reloads it, as an operator's SIGHUP would; a refused reload fails the test.
    pub fn set_keys(&self, keys: &[&SigningKey]) {
        for k in keys {
            let path = self.ward.dir().join(k.file());
            std::fs::write(&path, k.key.key_file())
                .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        }
        std::fs::write(
            self.ward.config_file(),
            gateway_yaml(&self.issuer, keys, &self.extra),
        )
        .expect("rewrite ward.yaml");
        if let Err(e) = self.ward.reload() {
            panic!("the gateway refused its new keys: {e}");
        }
    }

    /// The token minted for `user` on `GET path`, asked through the gRPC Check; fails
    /// the test unless the check is allowed with a token in [`MINT_HEADER`].
    pub async fn mint(&self, path: &str, user: &str) -> String {
        let r = self.ward.check(Req::get(path).bearer(user).to_map()).await;
        match summary(&r).header(MINT_HEADER) {
            Some(t) => t.to_string(),
            None => panic!("GET {path}: no {MINT_HEADER} minted: {}", describe(&r)),
        }
    }

    /// The token of an RFC 8693 exchange of `subject_token` for `audience` at the admin
    /// listener's `POST /token`; fails the test unless one is issued.
    pub async fn exchange(&self, subject_token: &str, audience: &str) -> String {
        let r = reqwest::Client::new()
            .post(format!("{}/token", self.issuer.trim_end_matches('/')))
            .form(&[
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:token-exchange",
                ),
                ("subject_token", subject_token),
                ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
                ("audience", audience),
            ])
            .send()
            .await
            .expect("POST /token");
        let status = r.status().as_u16();
        let body: Value = r.json().await.expect("a JSON answer from /token");
        assert_eq!(status, 200, "POST /token: {body}");
        assert_eq!(body["token_type"], "Bearer", "{body}");
        body["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access_token: {body}"))
            .to_string()
    }

    /// The kids of `/.well-known/jwks.json`, in order.
    pub async fn published_kids(&self) -> Vec<String> {
        let (status, body) = self.ward.admin_get("/.well-known/jwks.json").await;
        assert_eq!(status, 200, "jwks.json: {body}");
        let jwks: Value = serde_json::from_str(&body).expect("jwks.json is JSON");
        jwks["keys"]
            .as_array()
            .unwrap_or_else(|| panic!("no keys in {jwks}"))
            .iter()
            .map(|k| k["kid"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

/// The decoded JOSE header of a compact JWS (no verification: to see what was signed).
pub fn header_of(token: &str) -> Value {
    part(token, 0)
}

/// The decoded payload of a compact JWS (no verification).
pub fn payload_of(token: &str) -> Value {
    part(token, 1)
}

fn part(token: &str, i: usize) -> Value {
    let p = token
        .split('.')
        .nth(i)
        .unwrap_or_else(|| panic!("not a compact JWS: part {i} missing"));
    let bytes = URL_SAFE_NO_PAD
        .decode(p)
        .unwrap_or_else(|e| panic!("JWS part {i} is not base64url: {e}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("JWS part {i} is not JSON: {e}"))
}

/// The service's config: one provider `ward` trusting the gateway's issuer through
/// discovery, reading the token from [`MINT_HEADER`].
pub fn service_yaml(issuer: &str) -> String {
    format!(
        r#"
providers:
  - name: ward
    jwt:
      issuer: "{issuer}"
      audiences: [{AUDIENCE}]
      discovery: true
      algorithms: [ES256, EdDSA, RS256, PS256]
      leeway: {LEEWAY}s
      refresh_interval: {refresh}s
      min_refetch_interval: {min}s
      timeout: 2s
      token_from: [ {{ header: {MINT_HEADER} }} ]
      headers: {{ purpose: x-auth-purpose, tenant: x-auth-tenant }}
routes:
  - name: payments
    match: {{ path_prefix: /payments }}
    providers: [ward]
    require:
      all:
        - roles_any: [buyer]
        - claim: {{ name: purpose, equals: checkout }}
"#,
        refresh = REFRESH.as_secs(),
        min = MIN_REFETCH.as_secs(),
    )
}

/// A Rust service embedding ward: an axum app behind `Ward::layer()`, served on
/// 127.0.0.1. Its handler answers with the [`Identity`] the layer put in the request's
/// extensions and the `x-auth-*` headers it received.
pub struct Service {
    pub ward: ward::Ward,
    addr: SocketAddr,
    http: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
}

/// One answer of the service: the status and the JSON body (the identity on 200, ward's
/// denial body otherwise).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub www_authenticate: Option<String>,
}

impl Answer {
    /// (status, `error` of a denial, `detail` of a denial): `(200, "", "")` on allow.
    pub fn short(&self) -> (u16, &str, &str) {
        let text = |k: &str| self.body[k].as_str().unwrap_or("");
        if self.status == 200 {
            (200, "", "")
        } else {
            (self.status, text("error"), text("detail"))
        }
    }
}

impl Service {
    /// The service for the gateway at `issuer`, on `clock`; returns once its provider
    /// holds the gateway's keys (fetched by discovery in the background).
    pub async fn start(issuer: &str, clock: Clock) -> Service {
        let config = Ward::builder(&service_yaml(issuer))
            .load()
            .unwrap_or_else(|e| panic!("the service's config does not load:\n{e}"));
        let ward = ward::Ward::with_clock(config, clock).expect("the service's policy starts");
        eventually(PATIENCE, async || {
            if ward.ready() {
                Ok(())
            } else {
                Err(format!(
                    "the service holds no keys of {issuer} yet:\n{}",
                    ward.metrics().render()
                ))
            }
        })
        .await;
        let app = Router::new()
            .route("/payments/{*rest}", get(whoami))
            .layer(ward.layer());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the service");
        let addr = listener.local_addr().expect("the service's address");
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("the service serves");
        });
        Service {
            ward,
            addr,
            http: reqwest::Client::builder()
                .timeout(PATIENCE)
                .build()
                .expect("an HTTP client"),
            server,
        }
    }

    /// `GET path` with `token` in [`MINT_HEADER`] and the `extra` headers.
    pub async fn get(&self, path: &str, token: Option<&str>, extra: &[(&str, &str)]) -> Answer {
        let mut req = self.http.get(format!("http://{}{path}", self.addr));
        if let Some(t) = token {
            req = req.header(MINT_HEADER, t);
        }
        for (name, value) in extra {
            req = req.header(*name, *value);
        }
        let r = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path} on the service: {e}"));
        let status = r.status().as_u16();
        let www_authenticate = r
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = r.text().await.expect("the service's body");
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("GET {path}: the body is not JSON ({e}): {text}"));
        Answer {
            status,
            body,
            www_authenticate,
        }
    }

    /// `GET /payments/charge` with `token`.
    pub async fn pay(&self, token: &str) -> Answer {
        self.get("/payments/charge", Some(token), &[]).await
    }

    /// One sample of the service's metrics (see [`metric`]).
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        metric(&self.ward.metrics().render(), name, labels)
    }

    /// Successful fetches of the gateway's keys so far.
    pub fn key_fetches(&self) -> f64 {
        self.metric(
            "ward_jwks_refresh_total",
            &[("provider", "ward"), ("result", "success")],
        )
        .unwrap_or(0.0)
    }

    /// How many keys of the gateway the service holds.
    pub fn keys_held(&self) -> f64 {
        self.metric("ward_jwks_keys", &[("provider", "ward")])
            .unwrap_or(0.0)
    }

    /// Waits until the service has fetched the gateway's keys `n` times in all.
    pub async fn wait_key_fetches(&self, n: f64) {
        eventually(PATIENCE, async || match self.key_fetches() {
            f if f >= n => Ok(()),
            f => Err(format!(
                "the service fetched the gateway's keys {f} times, not yet {n}"
            )),
        })
        .await
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The handler behind the layer: who the layer says the caller is.
async fn whoami(Extension(id): Extension<Arc<Identity>>, headers: HeaderMap) -> String {
    let seen: serde_json::Map<String, Value> = headers
        .iter()
        .filter(|(n, _)| n.as_str().starts_with("x-auth-") && n.as_str() != MINT_HEADER)
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("?").into()))
        .collect();
    json!({
        "subject": id.subject.as_deref(),
        "issuer": id.issuer.as_deref(),
        "provider": &*id.provider,
        "roles": id.roles.iter().collect::<Vec<_>>(),
        "expires_at": id.expires_at,
        "headers": seen,
    })
    .to_string()
}
