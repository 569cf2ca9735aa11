//! `ward test`: a table of requests with expected outcomes, decided by the same engine
//! the server runs, so a policy can be tested before it is deployed. [`run`] is the whole
//! command: load both files, run every case, write the report.
//!
//! A cases file (YAML, read with the config's own reader, so errors carry lines) lists
//! requests, optionally with a token minted on the fly from a development key, and what
//! ward must answer: decision, status, route, reason, the failed condition, headers set
//! and removed. The runner prints `ok - name` or `FAIL - name` with the differences per
//! case, then `N passed, M failed`. Tokens are never printed: the report shows only what
//! ward decided, and the minted credential lives only inside the request it is sent in.
//!
//! On a route with `mint:`, a case can expect the purpose token ward hands the upstream
//! (`expect.minted`, `minted.rs`): it is verified with the config's signing key and
//! compared claim by claim. [`read_minted`] reads that token for `ward check`.
//!
//! The format is described for users in `docs/policy-testing.md`.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::yaml;
use crate::config::{self, ConfigError, Env, Errors};
use crate::devtoken::SigningKey;
use crate::engine::Engine;
use crate::metrics::Metrics;

/// How long a minted token lives when the case does not say.
const DEFAULT_TTL: Duration = Duration::from_secs(300);

/// How far in the past an `expired: true` token expired: beyond any sane leeway.
const EXPIRED_AGO: u64 = 24 * 3600;

/// Counts of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Cases whose outcome was the expected one.
    pub passed: usize,
    /// Cases whose outcome was not.
    pub failed: usize,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} passed, {} failed", self.passed, self.failed)
    }
}

/// Why a run could not start: the config or the cases file is unusable. Every error
/// found is listed, each with its path and line.
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    /// The config is invalid.
    #[error("{}", render(file, errors))]
    Config {
        /// The config file.
        file: PathBuf,
        /// Every error, with its path and line.
        errors: Vec<ConfigError>,
    },
    /// The cases file is invalid.
    #[error("{}", render(file, errors))]
    Cases {
        /// The cases file.
        file: PathBuf,
        /// Every error, with its path and line.
        errors: Vec<ConfigError>,
    },
    /// The runtime the cases run on could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    /// The report could not be written.
    #[error("cannot write the report: {0}")]
    Output(std::io::Error),
    /// A `--trust-dev-key` override could not be applied.
    #[error("--trust-dev-key {provider}: {why}")]
    Trust {
        /// The provider named in the override.
        provider: String,
        /// What is wrong with it.
        why: String,
    },
}

fn render(file: &Path, errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}:{e}", file.display()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Loads both files (reporting the errors of both), runs every case and writes the
/// report to `out`. `env` resolves `${NAME}` in the config.
pub fn run(
    config: &Path,
    cases: &Path,
    env: &dyn Env,
    out: &mut dyn Write,
) -> Result<Summary, TestError> {
    run_trusting(config, cases, env, &[], out)
}

/// [`run`], with the JWT providers named in `trusted` verifying with the public half
/// of a development key instead of their configured keys (`ward test --trust-dev-key
/// PROVIDER=PEM`): the production config, unchanged otherwise, decides cases whose
/// tokens are minted from that key, and no key is fetched for those providers.
pub fn run_trusting(
    config: &Path,
    cases: &Path,
    env: &dyn Env,
    trusted: &[(String, PathBuf)],
    out: &mut dyn Write,
) -> Result<Summary, TestError> {
    let loaded = config::load_file(config, env);
    let suite = Suite::load(cases);
    let mut config = loaded.map_err(|e| TestError::Config {
        file: config.to_path_buf(),
        errors: e.0,
    })?;
    for (provider, pem) in trusted {
        trust_dev_key(&mut config, provider, pem).map_err(|why| TestError::Trust {
            provider: provider.clone(),
            why,
        })?;
    }
    let suite = suite?;
    let engine = Engine::new(config, Arc::new(Metrics::new()));
    let misused = suite.check_minting(engine.config());
    if !misused.is_empty() {
        return Err(TestError::Cases {
            file: cases.to_path_buf(),
            errors: misused,
        });
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(TestError::Runtime)?;
    rt.block_on(suite.run(&engine, out))
        .map_err(TestError::Output)
}

/// Makes the JWT provider `name` verify with the public half of the key in `pem`
/// alone. The key is read for the first of the provider's algorithms it fits (HMAC only
/// when the provider accepts nothing else: any file would do as a secret).
fn trust_dev_key(config: &mut config::Config, name: &str, pem: &Path) -> Result<(), String> {
    use crate::authn::ProviderKind;
    use crate::authn::alg::Alg;
    use crate::authn::jwks::{KeySet, KeySource};
    let Some(slot) = config.providers.iter_mut().find(|p| &*p.name == name) else {
        let known: Vec<&str> = config.provider_names().collect();
        return Err(format!(
            "no provider is named `{name}` (providers: {})",
            known.join(", ")
        ));
    };
    let Some(settings) = Arc::get_mut(slot) else {
        return Err("the config is already in use".into());
    };
    let ProviderKind::Jwt(jwt) = &mut settings.kind else {
        return Err("not a JWT provider: only JWT providers verify with keys".into());
    };
    let asymmetric: Vec<_> = jwt
        .algorithms
        .iter()
        .filter(|a| Alg::ASYMMETRIC.contains(a))
        .collect();
    let candidates = if asymmetric.is_empty() {
        jwt.algorithms.iter().collect()
    } else {
        asymmetric
    };
    let key = candidates
        .iter()
        .find_map(|alg| SigningKey::from_file(pem, alg.as_str()).ok())
        .ok_or_else(|| {
            let algs: Vec<&str> = candidates.iter().map(|a| a.as_str()).collect();
            format!(
                "{} is not a key for any of the provider's algorithms ({})",
                pem.display(),
                algs.join(", ")
            )
        })?;
    let (set, _) = KeySet::from_jwks(&key.jwks()).map_err(|e| e.to_string())?;
    jwt.key_source = KeySource::Static(Arc::new(set));
    Ok(())
}

mod minted;
mod outcome;
mod parse;

pub use minted::{MintedError, MintedToken, read_minted};

// === the suite ===

/// A parsed cases file.
pub(crate) struct Suite {
    cases: Vec<Case>,
}

struct Case {
    name: String,
    request: Request,
    token: Option<TokenSpec>,
    expect: Expect,
}

struct Request {
    method: String,
    path: String,
    host: String,
    headers: Vec<(String, String)>,
    context: Vec<(String, String)>,
    source_principal: String,
}

struct TokenSpec {
    key: Arc<SigningKey>,
    claims: Map<String, Value>,
    omit: Vec<String>,
    ttl: Duration,
    expired: bool,
    /// The header's `typ`; `None`: no `typ`.
    typ: Option<String>,
    place: Place,
}

/// Where a minted token goes in the request.
#[derive(Debug, PartialEq, Eq)]
enum Place {
    Header { name: String, prefix: String },
    Cookie(String),
    Query(String),
}

#[derive(Debug)]
struct Expect {
    decision: Label,
    status: Option<u16>,
    /// `Some(None)`: no route may match.
    route: Option<Option<String>>,
    reason: Option<String>,
    detail: Option<String>,
    condition: Option<String>,
    /// `None` as a value: the header must not be set.
    headers: Vec<(String, Option<String>)>,
    removed: Vec<String>,
    www_authenticate: Option<Option<String>>,
    /// What the route's mint header carries (`minted`).
    minted: Option<minted::MintedCase>,
}

/// `Decision::label`, as a closed set a cases file can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Label {
    Allow,
    Deny,
    ShadowDeny,
}

impl Label {
    fn as_str(self) -> &'static str {
        match self {
            Label::Allow => "allow",
            Label::Deny => "deny",
            Label::ShadowDeny => "shadow_deny",
        }
    }
}

impl Suite {
    /// Reads and checks a cases file; signing keys are read relative to its directory.
    pub fn load(path: &Path) -> Result<Self, TestError> {
        let fail = |errors| TestError::Cases {
            file: path.to_path_buf(),
            errors,
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            fail(vec![ConfigError {
                path: String::new(),
                line: None,
                message: format!("cannot read {}: {e}", path.display()),
            }])
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base).map_err(fail)
    }

    /// Parses cases text; `base` anchors key file paths. Collects every error.
    pub fn parse(text: &str, base: &Path) -> Result<Self, Vec<ConfigError>> {
        let (value, lines) = yaml::parse(text).map_err(|e| {
            vec![ConfigError {
                path: String::new(),
                line: Some(e.line),
                message: format!("invalid YAML: {}", e.message),
            }]
        })?;
        let mut p = Errors::new(lines);
        let suite = parse::compile(value, base, &mut p);
        p.finish_as(suite, "invalid cases file")
    }

    /// Runs every case in order, writing one line per case (plus the differences of a
    /// failed one) and the summary line.
    pub async fn run(&self, engine: &Engine, out: &mut dyn Write) -> std::io::Result<Summary> {
        let mut summary = Summary {
            passed: 0,
            failed: 0,
        };
        for case in &self.cases {
            match case.run(engine).await {
                Ok(()) => {
                    summary.passed += 1;
                    writeln!(out, "ok - {}", case.name)?;
                }
                Err(diff) => {
                    summary.failed += 1;
                    writeln!(out, "FAIL - {}", case.name)?;
                    for line in diff {
                        writeln!(out, "    {line}")?;
                    }
                }
            }
        }
        writeln!(out, "{summary}")?;
        Ok(summary)
    }
}

#[cfg(test)]
mod tests;
