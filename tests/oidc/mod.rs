//! A real, certified OpenID provider for interop tests: the npm package `oidc-provider`,
//! run by `tests/oidc/provider.mjs` (read its header for the clients, resource servers and
//! test controls it serves) as a child process on 127.0.0.1 with an ephemeral port.
//!
//! [`Op::start`] needs Node.js and the package installed (`npm ci --prefix tests/oidc`,
//! which `.ci/run` does). Without Node it answers `None` so the test can skip, except
//! under `CI=true`, where a missing Node fails the test: CI installs it.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::common::eventually;

/// The audience of every resource server the provider serves (but [`OTHER_RESOURCE`]).
pub const AUDIENCE: &str = "api";
/// The resource whose access tokens are opaque (introspected).
pub const OPAQUE_RESOURCE: &str = "https://api.ward.test/opaque";
/// A resource whose JWT access tokens carry audience `other`.
pub const OTHER_RESOURCE: &str = "https://other.ward.test/jwt";
/// The client that gets tokens (code flow, refresh, client credentials).
pub const APP: (&str, &str) = ("app", "app-secret");
/// The client ward introspects with.
pub const WARD_CLIENT: (&str, &str) = ("ward", "ward-secret");
/// Every algorithm the provider signs access tokens with that ward verifies.
pub const ALGS: [&str; 5] = ["RS256", "PS256", "ES256", "ES384", "EdDSA"];

/// How long to wait for the provider to start and answer.
const PATIENCE: Duration = Duration::from_secs(20);

/// The resource whose JWT access tokens the provider signs with `alg`.
pub fn jwt_resource(alg: &str) -> String {
    format!("https://api.ward.test/jwt/{alg}")
}

/// The decoded header of a JWT (no verification: to see what the provider produced).
pub fn jwt_header(token: &str) -> Value {
    jwt_part(token, 0)
}

/// The decoded payload of a JWT (no verification).
pub fn jwt_payload(token: &str) -> Value {
    jwt_part(token, 1)
}

fn jwt_part(token: &str, i: usize) -> Value {
    let part = token
        .split('.')
        .nth(i)
        .unwrap_or_else(|| panic!("not a JWT: part {i} missing"));
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .unwrap_or_else(|e| panic!("JWT part {i} is not base64url: {e}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("JWT part {i} is not JSON: {e}"))
}

/// The token endpoint's answer.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
    pub scope: Option<String>,
}

impl Tokens {
    fn from_json(body: &Value) -> Tokens {
        let text = |k: &str| body[k].as_str().map(str::to_string);
        Tokens {
            access_token: text("access_token")
                .unwrap_or_else(|| panic!("no access_token in the token response: {body}")),
            refresh_token: text("refresh_token"),
            id_token: text("id_token"),
            scope: text("scope"),
        }
    }
}

/// The running provider; dropping it ends the process (its stdin closes, and it is killed).
pub struct Op {
    /// `http://127.0.0.1:<port>`, no trailing slash.
    pub issuer: String,
    child: Child,
    /// What the process wrote on stderr (and on stdout after its first line), shown if
    /// the test fails.
    log: Arc<Mutex<String>>,
    http: reqwest::Client,
}

impl Op {
    /// Starts the provider and waits until it serves its discovery document. `None` when
    /// Node.js is absent outside CI (the caller skips).
    pub async fn start() -> Option<Op> {
        if let Err(why) = node_version() {
            let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
            assert!(
                !in_ci,
                "CI=true and {why}: CI installs Node.js (.ci/run), the interop tests must run"
            );
            eprintln!("SKIPPED: {why}; the tests against a real OpenID provider need Node.js");
            return None;
        }
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc");
        assert!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "oidc-provider is not installed: run `npm ci --prefix tests/oidc`"
        );
        let mut child = Command::new("node")
            .arg("provider.mjs")
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn node provider.mjs: {e}"));
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        tokio::spawn(collect(BufReader::new(stderr), log.clone()));
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));

        let mut first = String::new();
        let read = tokio::time::timeout(PATIENCE, stdout.read_line(&mut first)).await;
        let shown = || log.lock().map(|l| l.clone()).unwrap_or_default();
        match read {
            Err(_) => panic!(
                "the provider said nothing within {PATIENCE:?}:\n{}",
                shown()
            ),
            Ok(Err(e)) => panic!("reading the provider's stdout: {e}\n{}", shown()),
            Ok(Ok(0)) => panic!("the provider exited before serving:\n{}", shown()),
            Ok(Ok(_)) => {}
        }
        tokio::spawn(collect(stdout, log.clone()));
        let hello: Value = serde_json::from_str(&first)
            .unwrap_or_else(|e| panic!("the provider's first line is not JSON ({e}): {first:?}"));
        let issuer = hello["issuer"]
            .as_str()
            .unwrap_or_else(|| panic!("no issuer in {hello}"))
            .to_string();

        let op = Op {
            issuer,
            child,
            log,
            http: reqwest::Client::builder()
                .timeout(PATIENCE)
                .build()
                .expect("an HTTP client"),
        };
        let discovery = format!("{}/.well-known/openid-configuration", op.issuer);
        eventually(PATIENCE, async || {
            match op.http.get(&discovery).send().await {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(format!("discovery answers {}", r.status())),
                Err(e) => Err(format!("discovery: {e}")),
            }
        })
        .await;
        Some(op)
    }

    /// A client-credentials access token for `resource` with `scope`.
    pub async fn client_credentials(&self, resource: &str, scope: &str) -> Tokens {
        let (status, body) = self
            .post_form(
                "/token",
                APP,
                &[
                    ("grant_type", "client_credentials"),
                    ("resource", resource),
                    ("scope", scope),
                ],
            )
            .await;
        assert_eq!(status, 200, "client credentials grant: {body}");
        Tokens::from_json(&body)
    }

    /// Tokens from the authorization-code flow: `login` signs in on the provider's login
    /// page and consents to `scope` for `resource`, then the code is redeemed for that
    /// resource. Ask for `offline_access` to get a refresh token too.
    pub async fn code_flow(&self, login: &str, resource: &str, scope: &str) -> Tokens {
        let (status, body) = self
            .control(
                "/test/code",
                json!({"login": login, "resource": resource, "scope": scope}),
            )
            .await;
        assert_eq!(status, 200, "authorization-code flow: {body}");
        Tokens::from_json(&body)
    }

    /// Replaces the key that signs `alg` with a new one; returns (removed kid, added kid).
    pub async fn rotate(&self, alg: &str) -> (String, String) {
        let (status, body) = self.control("/test/rotate", json!({"alg": alg})).await;
        assert_eq!(status, 200, "rotate {alg}: {body}");
        let kid = |k: &str| {
            body[k]
                .as_str()
                .unwrap_or_else(|| panic!("no {k} in {body}"))
                .to_string()
        };
        (kid("removed"), kid("added"))
    }

    /// The kids of the provider's current JWKS.
    pub async fn kids(&self) -> Vec<String> {
        let jwks: Value = self
            .http
            .get(format!("{}/jwks", self.issuer))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .expect("GET /jwks")
            .json()
            .await
            .expect("the JWKS is JSON");
        jwks["keys"]
            .as_array()
            .expect("a keys array")
            .iter()
            .filter_map(|k| k["kid"].as_str().map(str::to_string))
            .collect()
    }

    /// RFC 7009 revocation by the client the token was issued to: status and body.
    pub async fn revoke(&self, token: &str) -> (u16, Value) {
        self.post_form("/token/revocation", APP, &[("token", token)])
            .await
    }

    /// RFC 7662 introspection as ward's client asks it: status and answer.
    pub async fn introspect(&self, token: &str) -> (u16, Value) {
        self.post_form(
            "/token/introspection",
            WARD_CLIENT,
            &[("token", token), ("token_type_hint", "access_token")],
        )
        .await
    }

    async fn post_form(
        &self,
        path: &str,
        (id, secret): (&str, &str),
        form: &[(&str, &str)],
    ) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.issuer))
            .basic_auth(id, Some(secret))
            .form(form)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        read_json(path, r).await
    }

    async fn control(&self, path: &str, input: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.issuer))
            .json(&input)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        read_json(path, r).await
    }
}

impl Drop for Op {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log.lock().map(|l| l.clone()).unwrap_or_default();
            eprintln!("--- oidc-provider output ---\n{log}--- end ---");
        }
        let _ = self.child.start_kill();
    }
}

async fn read_json(path: &str, r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r
        .text()
        .await
        .unwrap_or_else(|e| panic!("POST {path}: reading the body: {e}"));
    // RFC 7009 answers a revocation with 200 and an empty body.
    if text.is_empty() {
        return (status, Value::Null);
    }
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("POST {path}: {status} with a body that is not JSON ({e})"));
    (status, body)
}

/// `node --version`, or why Node.js cannot be run.
fn node_version() -> Result<String, String> {
    match std::process::Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout).into()),
        Ok(out) => Err(format!("`node --version` failed: {}", out.status)),
        Err(e) => Err(format!("Node.js is not installed (`node`: {e})")),
    }
}

/// Appends every line of `r` to `log` until the stream ends.
async fn collect(r: impl tokio::io::AsyncBufRead + Unpin, log: Arc<Mutex<String>>) {
    let mut lines = r.lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Ok(mut l) = log.lock() {
            l.push_str(&line);
            l.push('\n');
        }
    }
}

// === DPoP ===

impl Op {
    /// The provider's token endpoint, the URL a token request's DPoP proof names.
    pub fn token_endpoint(&self) -> String {
        format!("{}/token", self.issuer)
    }

    /// A client-credentials access token for `resource` with `scope`, requested with the
    /// DPoP proof `proof` (RFC 9449 §5): the token is bound to the proof's key. Returns
    /// the tokens and the `token_type` the provider answered.
    pub async fn client_credentials_dpop(
        &self,
        resource: &str,
        scope: &str,
        proof: &str,
    ) -> (Tokens, String) {
        let (id, secret) = APP;
        let r = self
            .http
            .post(self.token_endpoint())
            .basic_auth(id, Some(secret))
            .header("dpop", proof)
            .form(&[
                ("grant_type", "client_credentials"),
                ("resource", resource),
                ("scope", scope),
            ])
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST /token: {e}"));
        let (status, body) = read_json("/token", r).await;
        assert_eq!(status, 200, "client credentials grant with DPoP: {body}");
        let token_type = body["token_type"].as_str().unwrap_or_default().to_string();
        (Tokens::from_json(&body), token_type)
    }
}
