//! `ward test`: a table of requests with expected outcomes, decided by the same
//! [`Engine::check`] the server runs, so a policy can be tested before it is deployed.
//!
//! A cases file (YAML, read with the config's own reader, so errors carry lines) lists
//! requests, optionally with a token minted on the fly from a development key, and what
//! ward must answer: decision, status, route, reason, the failed condition, headers set
//! and removed. The runner prints `ok - name` or `FAIL - name` with the differences per
//! case, then `N passed, M failed`. Tokens are never printed: the report shows only what
//! ward decided, and the minted credential lives only inside the request it is sent in.
//!
//! The format is described for users in `docs/policy-testing.md`.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value, json};

use crate::authn::alg::Alg;
use crate::clock::unix_now;
use crate::config::yaml;
use crate::config::{self, ConfigError, Dur, Env, Errors};
use crate::decision::{DenyReason, Report, Verdict};
use crate::devtoken::SigningKey;
use crate::engine::Engine;
use crate::header::HeaderName;
use crate::metrics::Metrics;
use crate::request::CheckInput;

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
    let loaded = config::load_file(config, env);
    let suite = Suite::load(cases);
    let config = loaded.map_err(|e| TestError::Config {
        file: config.to_path_buf(),
        errors: e.0,
    })?;
    let suite = suite?;
    let engine = Engine::new(config, Arc::new(Metrics::new()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(TestError::Runtime)?;
    rt.block_on(suite.run(&engine, out))
        .map_err(TestError::Output)
}

// === the suite ===

/// A parsed cases file.
pub struct Suite {
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
        let suite = compile(value, base, &mut p);
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

// === running one case ===

impl Case {
    /// Decides the case's request; on a mismatch, the lines that explain it.
    async fn run(&self, engine: &Engine) -> Result<(), Vec<String>> {
        let r = &self.request;
        let mut headers = r.headers.clone();
        let mut path = r.path.clone();
        if let Some(t) = &self.token {
            let token = t
                .mint(unix_now())
                .map_err(|e| vec![format!("cannot mint the case's token: {e}")])?;
            match &t.place {
                Place::Header { name, prefix } => {
                    headers.push((name.clone(), format!("{prefix}{token}")))
                }
                Place::Cookie(name) => headers.push(("cookie".into(), format!("{name}={token}"))),
                Place::Query(name) => {
                    let sep = if path.contains('?') { '&' } else { '?' };
                    path = format!("{path}{sep}{name}={token}");
                }
            }
        }
        let context: Vec<(String, String)> = r
            .context
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut input = CheckInput::from_pairs(&r.method, &r.host, &path, &headers, &context);
        input.source_principal = &r.source_principal;
        input.stream_id = "ward-test";
        let decision = engine.check(&input).await;
        let actual = Actual::of(&decision);
        let diff = self.expect.compare(&actual);
        if diff.is_empty() {
            Ok(())
        } else {
            Err(diff.into_iter().chain([actual.summary()]).collect())
        }
    }
}

impl TokenSpec {
    /// Signs the claims, with `iat` and `exp` filled in unless given or omitted.
    fn mint(&self, now: u64) -> Result<String, crate::devtoken::DevTokenError> {
        let mut claims = self.claims.clone();
        let (iat, exp) = if self.expired {
            (
                now.saturating_sub(2 * EXPIRED_AGO),
                now.saturating_sub(EXPIRED_AGO),
            )
        } else {
            (now, now.saturating_add(self.ttl.as_secs()))
        };
        claims.entry("iat").or_insert(json!(iat));
        claims.entry("exp").or_insert(json!(exp));
        for name in &self.omit {
            claims.remove(name);
        }
        self.key.sign(&Value::Object(claims))
    }
}

/// What ward decided, in the terms a case can expect.
struct Actual {
    decision: &'static str,
    status: u16,
    route: Option<String>,
    reason: &'static str,
    detail: Option<String>,
    explain: Option<String>,
    condition: Option<String>,
    set: Vec<(String, String)>,
    removed: Vec<String>,
    www_authenticate: Option<String>,
}

impl Actual {
    fn of(d: &crate::Decision) -> Self {
        let report = Report::new(d);
        let denial = match (&d.verdict, &d.shadow_deny) {
            (Verdict::Deny(r), _) | (Verdict::Allow(_), Some(r)) => Some(r),
            (Verdict::Allow(_), None) => None,
        };
        let (set, removed) = match &d.verdict {
            Verdict::Allow(m) => (
                m.set
                    .iter()
                    .map(|(h, v)| (h.to_string(), v.clone()))
                    .collect(),
                m.remove.iter().map(ToString::to_string).collect(),
            ),
            Verdict::Deny(_) => (Vec::new(), Vec::new()),
        };
        let www_authenticate = match &d.verdict {
            Verdict::Deny(r) => crate::response::www_authenticate(r),
            Verdict::Allow(_) => None,
        };
        Actual {
            decision: d.label(),
            status: report.status(),
            route: d.route.as_deref().map(str::to_owned),
            reason: d.reason_code(),
            detail: denial.map(|r| r.detail().into_owned()),
            explain: denial.map(|r| r.explain().into_owned()),
            condition: denial.and_then(|r| match r {
                DenyReason::Forbidden(f) => Some(f.condition.to_string()),
                _ => None,
            }),
            set,
            removed,
            www_authenticate,
        }
    }

    /// One line saying what was decided, printed under a failed case.
    fn summary(&self) -> String {
        let route = self.route.as_deref().unwrap_or("none");
        let mut s = format!(
            "got: {} {} {} (route {route})",
            self.decision, self.status, self.reason
        );
        if let Some(why) = &self.explain {
            s.push_str(": ");
            s.push_str(why);
        }
        s
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.set
            .iter()
            .find(|(h, _)| h == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A value in a difference line: strings quoted, absence spelled out.
fn shown(v: Option<&str>, absent: &str) -> String {
    match v {
        Some(s) => Value::String(s.to_owned()).to_string(),
        None => absent.to_owned(),
    }
}

impl Expect {
    /// Every expectation that does not hold, as `field: expected X, got Y`.
    fn compare(&self, a: &Actual) -> Vec<String> {
        let mut diff = Vec::new();
        let mut check = |field: &str, expected: String, actual: String| {
            if expected != actual {
                diff.push(format!("{field}: expected {expected}, got {actual}"));
            }
        };
        check("decision", self.decision.as_str().into(), a.decision.into());
        if let Some(s) = self.status {
            check("status", s.to_string(), a.status.to_string());
        }
        if let Some(r) = &self.route {
            check(
                "route",
                shown(r.as_deref(), "none"),
                shown(a.route.as_deref(), "none"),
            );
        }
        if let Some(r) = &self.reason {
            check("reason", shown(Some(r), ""), shown(Some(a.reason), ""));
        }
        if let Some(d) = &self.detail {
            check(
                "detail",
                shown(Some(d), ""),
                shown(a.detail.as_deref(), "none"),
            );
        }
        if let Some(w) = &self.www_authenticate {
            check(
                "www_authenticate",
                shown(w.as_deref(), "none"),
                shown(a.www_authenticate.as_deref(), "none"),
            );
        }
        for (name, want) in &self.headers {
            check(
                &format!("headers.{name}"),
                shown(want.as_deref(), "not set"),
                shown(a.header(name), "not set"),
            );
        }
        if let Some(c) = &self.condition {
            let holds = a
                .condition
                .as_deref()
                .is_some_and(|got| got.contains(c.as_str()));
            if !holds {
                diff.push(format!(
                    // The description is printed as ward wrote it: quoting it would
                    // escape the quotes and backslashes it already holds.
                    "condition: expected one containing {}, got {}",
                    shown(Some(c), ""),
                    a.condition.as_deref().unwrap_or("none")
                ));
            }
        }
        for name in &self.removed {
            if !a.removed.contains(name) {
                diff.push(format!(
                    "removed: expected {name} in headers_to_remove, it is not"
                ));
            }
        }
        diff
    }
}

// === parsing ===

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    keys: Map<String, Value>,
    #[serde(default)]
    defaults: Value,
    #[serde(default)]
    cases: Vec<Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    #[serde(default)]
    request: Value,
    #[serde(default)]
    token: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    file: String,
    #[serde(default = "default_alg")]
    alg: String,
}

fn default_alg() -> String {
    "RS256".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: String,
    #[serde(default)]
    request: Value,
    #[serde(default)]
    token: Value,
    #[serde(default)]
    expect: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    #[serde(default = "default_method")]
    method: String,
    path: String,
    #[serde(default)]
    host: String,
    #[serde(default)]
    headers: Map<String, Value>,
    #[serde(default)]
    context: BTreeMap<String, String>,
    #[serde(default)]
    source_principal: String,
}

fn default_method() -> String {
    "GET".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    key: Option<String>,
    #[serde(default)]
    claims: Map<String, Value>,
    #[serde(default)]
    omit: Vec<String>,
    ttl: Option<Dur>,
    #[serde(default)]
    expired: bool,
    header: Option<String>,
    prefix: Option<String>,
    cookie: Option<String>,
    query: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    decision: Label,
    status: Option<u16>,
    #[serde(default, deserialize_with = "present")]
    route: Option<Option<String>>,
    reason: Option<String>,
    detail: Option<String>,
    condition: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, Option<String>>,
    #[serde(default)]
    removed: Vec<String>,
    #[serde(default, deserialize_with = "present")]
    www_authenticate: Option<Option<String>>,
}

/// Tells `key: null` (`Some(None)`) from an absent key (`None`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

fn compile(value: Value, base: &Path, p: &mut Errors) -> Option<Suite> {
    if !value.is_object() {
        p.add(
            "",
            "a cases file is a YAML mapping with `cases` (and optionally `keys`, `defaults`)",
        );
        return None;
    }
    let raw: RawFile = p.parse("", value)?;

    let mut keys: BTreeMap<String, Arc<SigningKey>> = BTreeMap::new();
    for (name, v) in raw.keys {
        let path = format!("keys.{name}");
        if let Some(k) = load_key(v, &path, base, p) {
            keys.insert(name, Arc::new(k));
        }
    }

    let defaults: RawDefaults = if raw.defaults.is_null() {
        RawDefaults::default()
    } else {
        p.parse("defaults", raw.defaults)?
    };
    for (field, v) in [("request", &defaults.request), ("token", &defaults.token)] {
        if !v.is_null() && !v.is_object() {
            p.add(&format!("defaults.{field}"), "expected a mapping");
        }
    }

    if raw.cases.is_empty() {
        p.add("cases", "no cases: list at least one under `cases`");
    }
    let mut cases = Vec::new();
    let mut names = HashSet::new();
    for (i, v) in raw.cases.into_iter().enumerate() {
        let path = format!("cases[{i}]");
        if let Some(c) = compile_case(v, &path, &defaults, &keys, p) {
            if !names.insert(c.name.clone()) {
                p.add(
                    &format!("{path}.name"),
                    format!("another case is named `{}`", c.name),
                );
            }
            cases.push(c);
        }
    }
    Some(Suite { cases })
}

fn load_key(v: Value, path: &str, base: &Path, p: &mut Errors) -> Option<SigningKey> {
    let raw: RawKey = p.parse(path, v)?;
    let Some(alg) = Alg::parse(&raw.alg) else {
        p.add(
            &format!("{path}.alg"),
            format!("unknown algorithm `{}`", raw.alg),
        );
        return None;
    };
    let file = base.join(&raw.file);
    let bytes = match std::fs::read(&file) {
        Ok(b) => b,
        Err(e) => {
            p.add(
                &format!("{path}.file"),
                format!("cannot read {}: {e}", file.display()),
            );
            return None;
        }
    };
    SigningKey::from_bytes(&bytes, alg)
        .map_err(|e| p.add(&format!("{path}.file"), e.to_string()))
        .ok()
}

fn compile_case(
    v: Value,
    path: &str,
    defaults: &RawDefaults,
    keys: &BTreeMap<String, Arc<SigningKey>>,
    p: &mut Errors,
) -> Option<Case> {
    let raw: RawCase = p.parse(path, v)?;
    let before = p.count();
    if raw.name.trim().is_empty() {
        p.add(&format!("{path}.name"), "a case needs a name");
    }
    let request = merge(&defaults.request, &raw.request, &["headers", "context"]);
    let request = compile_request(request, &format!("{path}.request"), p);
    let token = if raw.token.is_null() {
        None
    } else {
        let token = merge(
            &placed(&defaults.token, &raw.token),
            &raw.token,
            &["claims"],
        );
        compile_token(token, &format!("{path}.token"), keys, p)
    };
    let expect = compile_expect(raw.expect, &format!("{path}.expect"), p);
    if p.count() != before {
        return None;
    }
    Some(Case {
        name: raw.name,
        request: request?,
        token,
        expect: expect?,
    })
}

/// `over` laid on `base`: mapping keys are replaced one by one, and the mappings under
/// `nested` keys are merged the same way, so a case can add one header or one claim to
/// the defaults. Anything that is not a mapping replaces what it lands on.
fn merge(base: &Value, over: &Value, nested: &[&str]) -> Value {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            let mut out = b.clone();
            for (k, v) in o {
                let merged = match (out.get(k), v) {
                    (Some(Value::Object(bk)), Value::Object(ok))
                        if nested.contains(&k.as_str()) =>
                    {
                        let mut m = bk.clone();
                        m.extend(ok.iter().map(|(k, v)| (k.clone(), v.clone())));
                        Value::Object(m)
                    }
                    _ => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (b, Value::Null) => b.clone(),
        (_, o) => o.clone(),
    }
}

/// The default token without its placement when the case names its own: `cookie: x`
/// in a case replaces a default `header: y` rather than conflicting with it.
fn placed(defaults: &Value, case: &Value) -> Value {
    const PLACEMENT: [&str; 4] = ["header", "prefix", "cookie", "query"];
    match (defaults, case) {
        (Value::Object(d), Value::Object(c)) if PLACEMENT.iter().any(|k| c.contains_key(*k)) => {
            let mut d = d.clone();
            d.retain(|k, _| !PLACEMENT.contains(&k.as_str()));
            Value::Object(d)
        }
        _ => defaults.clone(),
    }
}

fn compile_request(v: Value, path: &str, p: &mut Errors) -> Option<Request> {
    if v.is_null() {
        p.add(path, "a case needs a `request` with at least a `path`");
        return None;
    }
    let raw: RawRequest = p.parse(path, v)?;
    // Any other text is sent as written: a malformed path is worth a case of its own.
    if raw.path.is_empty() {
        p.add(&format!("{path}.path"), "the path must not be empty");
    }
    let mut headers = Vec::new();
    for (name, value) in raw.headers {
        let hpath = format!("{path}.headers.{name}");
        let Some(name) = header_name(&name, &hpath, p) else {
            continue;
        };
        let values = match value {
            Value::Array(items) => items,
            one => vec![one],
        };
        for (i, v) in values.into_iter().enumerate() {
            match scalar_text(&v) {
                Some(text) => headers.push((name.clone(), text)),
                None => p.add(
                    &format!("{hpath}[{i}]"),
                    "a header value is a string (or a list of strings, for a repeated header)",
                ),
            }
        }
    }
    Some(Request {
        method: raw.method,
        path: raw.path,
        host: raw.host,
        headers,
        context: raw.context.into_iter().collect(),
        source_principal: raw.source_principal,
    })
}

/// A header value written as a YAML scalar: numbers and booleans as their text.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn header_name(name: &str, path: &str, p: &mut Errors) -> Option<String> {
    match HeaderName::parse(name) {
        Ok(h) => Some(h.as_str().to_owned()),
        Err(e) => {
            p.add(path, e);
            None
        }
    }
}

fn compile_token(
    v: Value,
    path: &str,
    keys: &BTreeMap<String, Arc<SigningKey>>,
    p: &mut Errors,
) -> Option<TokenSpec> {
    let raw: RawToken = p.parse(path, v)?;
    let key = match (&raw.key, keys.len()) {
        (Some(name), _) => match keys.get(name) {
            Some(k) => Some(k.clone()),
            None => {
                p.add(
                    &format!("{path}.key"),
                    format!("no key named `{name}` under `keys`"),
                );
                None
            }
        },
        (None, 1) => keys.values().next().cloned(),
        (None, 0) => {
            p.add(path, "a token needs a signing key: define one under `keys`");
            None
        }
        (None, _) => {
            p.add(path, "several keys are defined: name one with `key`");
            None
        }
    };
    let places = [
        raw.header.is_some(),
        raw.cookie.is_some(),
        raw.query.is_some(),
    ];
    if places.iter().filter(|s| **s).count() > 1 {
        p.add(
            path,
            "a token goes in one place: `header`, `cookie` or `query`",
        );
        return None;
    }
    if raw.prefix.is_some() && (raw.cookie.is_some() || raw.query.is_some()) {
        p.add(
            &format!("{path}.prefix"),
            "`prefix` goes with `header` only",
        );
        return None;
    }
    if raw.expired && raw.ttl.is_some() {
        p.add(
            &format!("{path}.expired"),
            "use `ttl` or `expired: true`, not both",
        );
    }
    let place = if let Some(c) = raw.cookie {
        Place::Cookie(c)
    } else if let Some(q) = raw.query {
        Place::Query(q)
    } else {
        let name = match raw.header {
            Some(h) => header_name(&h, &format!("{path}.header"), p)?,
            None => "authorization".to_owned(),
        };
        let default_prefix = if name == "authorization" {
            "Bearer "
        } else {
            ""
        };
        Place::Header {
            prefix: raw.prefix.unwrap_or_else(|| default_prefix.to_owned()),
            name,
        }
    };
    Some(TokenSpec {
        key: key?,
        claims: raw.claims,
        omit: raw.omit,
        ttl: raw.ttl.map_or(DEFAULT_TTL, |d| d.0),
        expired: raw.expired,
        place,
    })
}

fn compile_expect(v: Value, path: &str, p: &mut Errors) -> Option<Expect> {
    if v.is_null() {
        p.add(path, "a case needs an `expect` with at least a `decision`");
        return None;
    }
    let raw: RawExpect = p.parse(path, v)?;
    let mut headers = Vec::new();
    for (name, want) in raw.headers {
        if let Some(h) = header_name(&name, &format!("{path}.headers.{name}"), p) {
            headers.push((h, want));
        }
    }
    let mut removed = Vec::new();
    for (i, name) in raw.removed.iter().enumerate() {
        if let Some(h) = header_name(name, &format!("{path}.removed[{i}]"), p) {
            removed.push(h);
        }
    }
    Some(Expect {
        decision: raw.decision,
        status: raw.status,
        route: raw.route,
        reason: raw.reason,
        detail: raw.detail,
        condition: raw.condition,
        headers,
        removed,
        www_authenticate: raw.www_authenticate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::HashMap;

    /// The repository's development key and its JWKS.
    fn dev_key() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/keys/dev-rsa.pem")
    }

    const CONFIG: &str = r#"
providers:
  - name: dev
    jwt:
      issuer: https://dev.ward.local
      audiences: [api]
      jwks_file: JWKS
      algorithms: [RS256]
      claims: { roles: roles, scopes: scope }
      headers: { email: x-auth-email }
      token_from:
        - { header: authorization, prefix: "Bearer " }
        - { cookie: session }
        - { query: access_token }
routes:
  - name: public
    match: { path_prefix: /public }
    allow_anonymous: true
  - name: orders
    match: { path: "/tenants/{tenant}/orders/**" }
    providers: [dev]
    require:
      all:
        - roles_any: [orders-reader]
        - claim: { name: tenant, equals_param: tenant }
  - name: reports
    match: { path_prefix: /reports }
    providers: [dev]
    require: { scopes_any: [reports.read] }
  - name: canary
    match: { path_prefix: /canary }
    providers: [dev]
    mode: shadow
    require: { roles_any: [canary] }
"#;

    /// A directory holding `ward.yaml` (the config above) and `cases.yaml`.
    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new(cases: &str) -> Self {
            let dir = tempfile::tempdir().expect("temp dir");
            let jwks = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/keys/jwks.json");
            let config = CONFIG.replace("JWKS", &jwks.display().to_string());
            std::fs::write(dir.path().join("ward.yaml"), config).expect("write config");
            let cases = cases.replace("DEV_KEY", &dev_key().display().to_string());
            std::fs::write(dir.path().join("cases.yaml"), cases).expect("write cases");
            Fixture { dir }
        }

        fn run(&self) -> (Result<Summary, TestError>, String) {
            let mut out = Vec::new();
            let env: HashMap<String, String> = HashMap::new();
            let r = run(
                &self.dir.path().join("ward.yaml"),
                &self.dir.path().join("cases.yaml"),
                &env,
                &mut out,
            );
            (r, String::from_utf8(out).expect("utf-8 report"))
        }
    }

    const HEAD: &str = r#"
keys:
  dev: { file: DEV_KEY, alg: RS256 }
defaults:
  request: { host: api.example.com, headers: { x-request-id: t-1 } }
  token:
    key: dev
    claims: { iss: https://dev.ward.local, aud: api, sub: alice, roles: [orders-reader], tenant: acme }
cases:
"#;

    fn suite(cases: &str) -> Fixture {
        Fixture::new(&format!("{HEAD}{cases}"))
    }

    #[test]
    fn passing_cases_cover_every_expectation() {
        let f = suite(
            r#"
  - name: reader lists orders
    request: { method: GET, path: /tenants/acme/orders }
    token: { claims: { email: alice@example.com } }
    expect:
      decision: allow
      status: 200
      route: orders
      reason: ok
      headers: { x-auth-subject: alice, x-auth-roles: orders-reader, x-auth-email: alice@example.com, x-auth-scopes: null }
      removed: [x-auth-scopes]
  - name: other tenant is forbidden
    request: { path: /tenants/globex/orders }
    token: {}
    expect: { decision: deny, status: 403, reason: forbidden, condition: "all[1].claim", www_authenticate: null }
  - name: no token
    request: { path: /tenants/acme/orders }
    expect: { decision: deny, status: 401, reason: missing_credential, www_authenticate: 'Bearer realm="ward"' }
  - name: expired
    request: { path: /tenants/acme/orders }
    token: { expired: true }
    expect: { decision: deny, status: 401, reason: invalid_token, detail: token expired }
  - name: no exp
    request: { path: /tenants/acme/orders }
    token: { omit: [exp] }
    expect: { decision: deny, reason: invalid_token, detail: token has no exp }
  - name: scope missing
    request: { path: /reports/q1 }
    token: { claims: { scope: "profile email" } }
    expect:
      decision: deny
      status: 403
      www_authenticate: 'Bearer realm="ward", error="insufficient_scope"'
  - name: token in a cookie
    request: { path: /reports/q1, headers: { cookie: "theme=dark" } }
    token: { cookie: session, claims: { scope: reports.read } }
    expect: { decision: allow, route: reports }
  - name: token in the query
    request: { path: "/reports/q1?x=1" }
    token: { query: access_token, claims: { scope: reports.read } }
    expect: { decision: allow }
  - name: literal authorization header
    request: { path: /reports/q1, headers: { authorization: Bearer not-a-jwt } }
    expect: { decision: deny, reason: invalid_token, detail: malformed token }
  - name: two authorization headers
    request: { path: /reports/q1, headers: { authorization: [Bearer a, Bearer b] } }
    expect: { decision: deny, reason: invalid_token }
  - name: no route
    request: { path: /nowhere }
    expect: { decision: deny, status: 403, route: null, reason: no_route }
  - name: shadow route lets the denial through
    request: { path: /canary/x }
    token: {}
    expect: { decision: shadow_deny, status: 200, route: canary, reason: forbidden, headers: { x-auth-subject: alice } }
  - name: shadow route, no credential
    request: { path: /canary/x }
    expect: { decision: shadow_deny, reason: missing_credential, headers: { x-auth-subject: null }, removed: [x-auth-subject] }
  - name: smuggled identity header is removed on a public route
    request: { path: /public/x, headers: { x-auth-subject: mallory } }
    expect: { decision: allow, route: public, removed: [x-auth-subject, x-auth-roles, x-auth-email] }
"#,
        );
        let (r, out) = f.run();
        let s = r.unwrap_or_else(|e| panic!("{e}\n{out}"));
        assert_eq!(
            s,
            Summary {
                passed: 14,
                failed: 0
            },
            "{out}"
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "ok - reader lists orders");
        assert_eq!(lines.len(), 15, "{out}");
        assert_eq!(lines[14], "14 passed, 0 failed");
    }

    #[test]
    fn a_failing_case_shows_each_difference_and_never_the_token() {
        let f = suite(
            r#"
  - name: wrong expectations
    request: { path: /tenants/acme/orders }
    token: { claims: { roles: [orders-writer] } }
    expect:
      decision: allow
      status: 200
      route: orders
      headers: { x-auth-subject: alice }
      removed: [x-auth-email]
  - name: right expectations
    request: { path: /tenants/acme/orders }
    token: {}
    expect: { decision: allow }
  - name: wrong condition
    request: { path: /tenants/acme/orders }
    token: { claims: { tenant: globex } }
    expect: { decision: deny, condition: roles_any }
"#,
        );
        let (r, out) = f.run();
        assert_eq!(
            r.expect("runs"),
            Summary {
                passed: 1,
                failed: 2
            },
            "{out}"
        );
        let expected = [
            "FAIL - wrong expectations",
            "    decision: expected allow, got deny",
            "    status: expected 200, got 403",
            r#"    headers.x-auth-subject: expected "alice", got not set"#,
            "    removed: expected x-auth-email in headers_to_remove, it is not",
            "    got: deny 403 forbidden (route orders): condition not met: routes[1].require.all[0].roles_any [orders-reader]",
            "ok - right expectations",
            "FAIL - wrong condition",
            r#"    condition: expected one containing "roles_any", got routes[1].require.all[1].claim: tenant equals_param tenant"#,
        ];
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(&lines[..expected.len()], expected, "{out}");
        assert_eq!(lines.last(), Some(&"1 passed, 2 failed"));
        assert!(
            !out.contains("eyJ"),
            "a token leaked into the report:\n{out}"
        );
    }

    #[test]
    fn config_errors_stop_the_run() {
        let f = suite("  - name: x\n    request: { path: / }\n    expect: { decision: allow }\n");
        std::fs::write(f.dir.path().join("ward.yaml"), "routes: []\nbogus: 1\n").unwrap();
        let (r, out) = f.run();
        let err = r.expect_err("a bad config is an error");
        assert!(matches!(err, TestError::Config { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("ward.yaml:line 2: bogus: unknown field `bogus`"),
            "{text}"
        );
        assert!(out.is_empty(), "nothing runs: {out}");
    }

    fn case_errors(text: &str) -> Vec<(String, Option<usize>)> {
        let text = text.replace("DEV_KEY", &dev_key().display().to_string());
        match Suite::parse(&text, Path::new(".")) {
            Ok(_) => panic!("parsed:\n{text}"),
            Err(e) => e.into_iter().map(|e| (e.path, e.line)).collect(),
        }
    }

    #[test]
    fn cases_errors_name_every_path_and_line() {
        let errs = case_errors(
            "\
keys:
  dev: { file: DEV_KEY }
  gone: { file: /nonexistent/key.pem }
cases:
  - name: a
    request: { path: /x, colour: red }
    expect: { decision: allow }
  - name: b
    request: { path: /x }
    token: { key: nope }
    expect: { decision: alow }
  - name: a
    request: { path: /x, headers: { bad header: x } }
    token: { cookie: c, query: q }
    expect: { decision: deny, headers: { x-a: [1] } }
  - name: d
    request: { path: /x }
    expect: { decision: allow, status: ok }
",
        );
        let want: Vec<(String, Option<usize>)> = [
            ("keys.gone.file", 3),
            ("cases[0].request.colour", 6),
            ("cases[1].token.key", 10),
            ("cases[1].expect.decision", 11),
            ("cases[2].request.headers.bad header", 13),
            ("cases[2].token", 14),
            ("cases[2].expect.headers.x-a", 15),
            ("cases[3].expect.status", 18),
        ]
        .iter()
        .map(|(p, l)| (p.to_string(), Some(*l)))
        .collect();
        assert_eq!(errs, want);
    }

    #[test]
    fn cases_file_structure_errors() {
        assert_eq!(
            case_errors("cases: []\n"),
            vec![("cases".to_string(), Some(1))]
        );
        assert_eq!(case_errors("- a\n"), vec![(String::new(), Some(1))]);
        assert_eq!(
            case_errors("cases:\n  - name: a\n    expect: { decision: allow }\n"),
            vec![("cases[0].request".to_string(), Some(2))]
        );
        let errs = case_errors("cases:\n  - name: a\n    request: { path: /\n");
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].0, "");
        assert!(errs[0].1.is_some_and(|l| l >= 3), "{errs:?}");
        // Tokens need a key; with several, the case names one.
        let two = "keys:\n  a: { file: DEV_KEY }\n  b: { file: DEV_KEY }\ncases:\n  - name: x\n    request: { path: / }\n    token: {}\n    expect: { decision: allow }\n";
        assert_eq!(
            case_errors(two),
            vec![("cases[0].token".to_string(), Some(7))]
        );
        let none = "cases:\n  - name: x\n    request: { path: / }\n    token: {}\n    expect: { decision: allow }\n";
        assert_eq!(
            case_errors(none),
            vec![("cases[0].token".to_string(), Some(4))]
        );
        // Duplicate names are refused: a report line must identify its case.
        let dup = "cases:\n  - name: x\n    request: { path: / }\n    expect: { decision: allow }\n  - name: x\n    request: { path: / }\n    expect: { decision: allow }\n";
        assert_eq!(
            case_errors(dup),
            vec![("cases[1].name".to_string(), Some(5))]
        );
    }

    #[test]
    fn defaults_merge_per_header_and_per_claim() {
        let base = json!({"host": "h", "headers": {"a": "1", "b": "2"}, "path": "/d"});
        let over = json!({"headers": {"b": "3"}, "path": "/x"});
        assert_eq!(
            merge(&base, &over, &["headers"]),
            json!({"host": "h", "headers": {"a": "1", "b": "3"}, "path": "/x"})
        );
        // Without `nested`, a mapping replaces the default one.
        assert_eq!(
            merge(&base, &over, &[]),
            json!({"host": "h", "headers": {"b": "3"}, "path": "/x"})
        );
        assert_eq!(merge(&base, &Value::Null, &[]), base);
        assert_eq!(merge(&Value::Null, &over, &[]), over);
        let claims = merge(
            &json!({"claims": {"iss": "i", "roles": ["a"]}}),
            &json!({"claims": {"roles": ["b"], "tenant": null}}),
            &["claims"],
        );
        assert_eq!(
            claims,
            json!({"claims": {"iss": "i", "roles": ["b"], "tenant": null}})
        );
    }

    #[test]
    fn a_case_placement_replaces_the_default_one() {
        let defaults = json!({"key": "k", "cookie": "id_token", "claims": {"sub": "a"}});
        assert_eq!(
            placed(&defaults, &json!({"header": "authorization"})),
            json!({"key": "k", "claims": {"sub": "a"}})
        );
        assert_eq!(placed(&defaults, &json!({"claims": {}})), defaults);
        assert_eq!(placed(&defaults, &Value::Null), defaults);
    }

    #[test]
    fn minted_tokens_fill_times_and_honour_omit() {
        let pem = std::fs::read(dev_key()).expect("dev key");
        let key = Arc::new(SigningKey::from_bytes(&pem, Alg::RS256).expect("RS256 key"));
        let spec = |claims: Value, omit: &[&str], expired: bool| TokenSpec {
            key: key.clone(),
            claims: claims.as_object().cloned().unwrap_or_default(),
            omit: omit.iter().map(|s| s.to_string()).collect(),
            ttl: Duration::from_secs(60),
            expired,
            place: Place::Cookie("c".into()),
        };
        let payload = |t: &str| -> Value {
            use base64::Engine as _;
            let body = t.split('.').nth(1).expect("three parts");
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(body)
                .unwrap();
            serde_json::from_slice(&bytes).unwrap()
        };
        let t = spec(json!({"sub": "a"}), &[], false).mint(1000).unwrap();
        assert_eq!(payload(&t), json!({"sub": "a", "iat": 1000, "exp": 1060}));
        let t = spec(json!({"exp": "soon"}), &["iat"], false)
            .mint(1000)
            .unwrap();
        assert_eq!(payload(&t), json!({"exp": "soon"}));
        let t = spec(json!({}), &[], true).mint(1_000_000).unwrap();
        assert_eq!(payload(&t)["exp"], json!(1_000_000 - EXPIRED_AGO));
        assert_eq!(payload(&t)["iat"], json!(1_000_000 - 2 * EXPIRED_AGO));
    }
}
