//! An independent verifier for the tokens ward mints: the npm package `jose`, run by
//! `tests/jose/verify.mjs` (read its header for what it checks and the JSON it reads and
//! writes) as a child process, once per batch of tokens.
//!
//! [`verify`] needs Node.js and the package installed (`npm ci --prefix tests/jose`,
//! which `.ci/run` does): without the package the test fails saying so. Without Node it
//! answers `None` so the test can skip, except under `CI=true`, where a missing Node
//! fails the test: CI installs it.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// How long the script may take for a batch (it fetches discovery and JWKS over HTTP).
const PATIENCE: Duration = Duration::from_secs(30);

/// One token to verify as a service of `audience` trusting `issuer`, at unix time `now`.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub issuer: String,
    pub audience: String,
    pub token: String,
    pub now: u64,
}

/// What jose said of one case: the verified header and payload, or its error code.
#[derive(Debug, Clone)]
pub enum Verdict {
    Verified { header: Value, payload: Value },
    Refused { code: String, message: String },
}

impl Verdict {
    /// The protected header and payload of a verified token; fails the test (naming
    /// the case) if jose refused it.
    pub fn verified(&self, case: &str) -> (&Value, &Value) {
        match self {
            Verdict::Verified { header, payload } => (header, payload),
            Verdict::Refused { code, message } => {
                panic!("{case}: jose refused the token: {code}: {message}")
            }
        }
    }

    /// The error code of a refused token; fails the test if jose verified it.
    pub fn refused(&self, case: &str) -> &str {
        match self {
            Verdict::Refused { code, .. } => code,
            Verdict::Verified { payload, .. } => {
                panic!("{case}: jose verified a token it must refuse: {payload}")
            }
        }
    }
}

/// Whether jose can run: `false` when Node.js is absent outside CI (the caller skips);
/// fails the test when Node is absent under `CI=true`, or jose is not installed.
pub async fn available() -> bool {
    if let Err(why) = node_version().await {
        let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(
            !in_ci,
            "CI=true and {why}: CI installs Node.js (.ci/run), the interop tests must run"
        );
        eprintln!("SKIPPED: {why}; verifying with jose needs Node.js");
        return false;
    }
    assert!(
        dir().join("node_modules/jose/package.json").is_file(),
        "the npm package jose is not installed: run `npm ci --prefix tests/jose`"
    );
    true
}

/// `tests/jose`.
fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/jose")
}

/// Verifies every case with jose, in order. `None` when Node.js is absent outside CI
/// (see [`available`]).
pub async fn verify(cases: &[Case]) -> Option<Vec<Verdict>> {
    if !available().await {
        return None;
    }
    let input = json!({
        "cases": cases.iter().map(|c| json!({
            "name": c.name, "issuer": c.issuer, "audience": c.audience,
            "token": c.token, "now": c.now,
        })).collect::<Vec<_>>(),
    });
    let answer = run_script("verify.mjs", &input).await;
    let results = answer["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results from verify.mjs: {answer}"));
    assert_eq!(results.len(), cases.len(), "one result per case: {answer}");
    let verdicts = results
        .iter()
        .zip(cases)
        .map(|(r, c)| {
            assert_eq!(r["name"], c.name.as_str(), "results in order: {answer}");
            if r["ok"] == true {
                Verdict::Verified {
                    header: r["header"].clone(),
                    payload: r["payload"].clone(),
                }
            } else {
                let text = |k: &str| r[k].as_str().unwrap_or_default().to_string();
                Verdict::Refused {
                    code: text("code"),
                    message: text("message"),
                }
            }
        })
        .collect();
    Some(verdicts)
}

/// `node --version`, or why it cannot be run.
async fn node_version() -> Result<String, String> {
    match Command::new("node").arg("--version").output().await {
        Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).trim().to_string()),
        Ok(o) => Err(format!("`node --version` exited with {}", o.status)),
        Err(e) => Err(format!("Node.js is not installed ({e})")),
    }
}

// === DPoP proofs ===

/// One request a DPoP proof is made for.
#[derive(Debug, Clone)]
pub struct ProofFor {
    pub method: String,
    pub url: String,
    /// The access token sent with it (its hash becomes `ath`).
    pub token: Option<String>,
}

/// Proofs made by jose with one client key: its thumbprint, the private JWK (to make
/// more proofs with the same key) and one proof per request.
#[derive(Debug, Clone)]
pub struct Proofs {
    pub jkt: String,
    pub key: Value,
    pub proofs: Vec<String>,
}

/// DPoP proofs made by jose (`tests/jose/dpop.mjs`) for `requests`, signed with `key`
/// (a private JWK a previous call returned) or a new key pair for `alg`. `None` when
/// Node.js is absent outside CI (see [`available`]).
pub async fn dpop_proofs(alg: &str, key: Option<&Value>, requests: &[ProofFor]) -> Option<Proofs> {
    if !available().await {
        return None;
    }
    let mut input = json!({
        "alg": alg,
        "requests": requests.iter().map(|r| json!({
            "method": r.method, "url": r.url, "token": r.token,
        })).collect::<Vec<_>>(),
    });
    if let Some(k) = key {
        input["key"] = k.clone();
    }
    let answer = run_script("dpop.mjs", &input).await;
    let proofs: Vec<String> = answer["proofs"]
        .as_array()
        .unwrap_or_else(|| panic!("no proofs from dpop.mjs: {answer}"))
        .iter()
        .map(|p| p.as_str().expect("a proof is a string").to_string())
        .collect();
    assert_eq!(proofs.len(), requests.len(), "one proof per request");
    Some(Proofs {
        jkt: answer["jkt"].as_str().expect("jkt").to_string(),
        key: answer["key"].clone(),
        proofs,
    })
}

/// One nested JWT for jose to encrypt: `plaintext` under the protected `header`, to
/// `key` (a PEM private key whose public half alone is used, or a base64url secret for
/// `dir` and bare key wrap). See `tests/jose/encrypt.mjs`.
#[derive(Debug, Clone)]
pub struct Encryption {
    pub name: String,
    pub key: String,
    pub header: Value,
    pub plaintext: String,
}

/// Encrypts every case with jose, in order: the compact JWEs. `None` when Node.js is
/// absent outside CI (see [`available`]).
pub async fn encrypt(cases: &[Encryption]) -> Option<Vec<String>> {
    if !available().await {
        return None;
    }
    let input = json!({
        "cases": cases.iter().map(|c| json!({
            "name": c.name, "key": c.key, "header": c.header, "plaintext": c.plaintext,
        })).collect::<Vec<_>>(),
    });
    let answer = run_script("encrypt.mjs", &input).await;
    let results = answer["results"].as_array().expect("results");
    assert_eq!(results.len(), cases.len(), "one result per case");
    Some(
        results
            .iter()
            .zip(cases)
            .map(|(r, c)| {
                assert_eq!(r["name"], c.name.as_str(), "results in order");
                r["jwe"].as_str().expect("a compact JWE").to_string()
            })
            .collect(),
    )
}

/// Decrypts each `(name, private key PEM, JWE)` with jose, in order: the protected
/// header and plaintext, or jose's error code. See `tests/jose/decrypt.mjs`. `None`
/// when Node.js is absent outside CI (see [`available`]).
pub async fn decrypt(
    cases: &[(String, String, String)],
) -> Option<Vec<Result<(Value, String), String>>> {
    if !available().await {
        return None;
    }
    let input = json!({
        "cases": cases.iter().map(|(name, key, jwe)| json!({"name": name, "key": key, "jwe": jwe}))
            .collect::<Vec<_>>(),
    });
    let answer = run_script("decrypt.mjs", &input).await;
    let results = answer["results"].as_array().expect("results");
    assert_eq!(results.len(), cases.len(), "one result per case");
    Some(
        results
            .iter()
            .zip(cases)
            .map(|(r, (name, _, _))| {
                assert_eq!(r["name"], name.as_str(), "results in order");
                if r["ok"] == true {
                    Ok((
                        r["header"].clone(),
                        r["plaintext"].as_str().unwrap_or_default().to_string(),
                    ))
                } else {
                    Err(format!("{}: {}", r["code"], r["message"]))
                }
            })
            .collect(),
    )
}

/// Runs `tests/jose/<script>` with `input` as JSON on stdin, within [`PATIENCE`]: its
/// JSON answer. Fails the test when it does not finish, fails or writes no JSON.
async fn run_script(script: &str, input: &Value) -> Value {
    let mut child = Command::new("node")
        .arg(script)
        .current_dir(dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn node {script}: {e}"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin
        .write_all(input.to_string().as_bytes())
        .await
        .unwrap_or_else(|e| panic!("write the input to {script}: {e}"));
    drop(stdin);
    let out = tokio::time::timeout(PATIENCE, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{script} did not finish within {PATIENCE:?}"))
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{script} failed ({}):\n{stderr}{stdout}",
        out.status
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{script} wrote no JSON ({e}):\n{stdout}\n{stderr}"))
}
