//! k8s/monitoring/ against what ward really exports. A ward started here (a remote
//! JWT provider on a stub IdP, an introspection provider on a stub endpoint, a shadow
//! route) answers a few checks and two reloads, then its `/metrics` is scraped. Every
//! PromQL query of the Grafana dashboard and every rule of the PrometheusRule is then
//! parsed and checked against that scrape:
//!
//! - every `ward_*` / `process_*` name is a metric family ward exports (`_bucket`,
//!   `_sum`, `_count` only on histograms), every `ward:*` name is a recording rule
//!   defined in prometheusrule.yaml, and nothing else is queried but `up`;
//! - every label in a `{label=...}` matcher, `by (...)`, `without (...)`, `on (...)`,
//!   `ignoring (...)` or `group_left (...)` exists where it is used: label sets are
//!   followed through rate(), sum by, binary operators and recording rules, on top of
//!   the target labels the Prometheus Operator adds (job, namespace, pod, ...);
//! - matched values are values ward emits: decisions, reasons and results from the
//!   contract (README "Metrics"), `le` bounds from the histogram's real buckets;
//! - `histogram_quantile` gets its `le`, both sides of a one-to-one operator carry
//!   the same labels (or nothing would match), `rate` and friends get a range;
//! - alerts carry `for`, a severity, a summary, a description and a runbook_url whose
//!   anchor is a heading of docs/monitoring.md; the dashboard has its datasource,
//!   namespace and job variables.
//!
//! The checker's own teeth are tested on a canned exposition: misspelled metrics,
//! labels, values and buckets must each be reported.
//!
//! PromQL syntax and the alerts' behaviour are checked by k8s/monitoring/check.sh
//! (promtool).

mod common;
mod idp;
mod introspect_server;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use common::{Family, Req, TestKey, Ward, families, grpc_code, metric, now};
use introspect_server::{CLIENT_ID, CLIENT_SECRET, Introspect};
use ward::authn::jwt::Alg;

/// Labels every scraped series carries, added by Prometheus and the Prometheus
/// Operator's ServiceMonitor (k8s/base/servicemonitor.yaml).
const TARGET_LABELS: &[&str] = &[
    "job",
    "instance",
    "namespace",
    "pod",
    "service",
    "endpoint",
    "container",
];

/// The families the dashboard must show (directly or through a recording rule).
const DASHBOARD_MUST_SHOW: &[&str] = &[
    "ward_check_requests_total",
    "ward_check_duration_seconds",
    "ward_token_cache_requests_total",
    "ward_jwks_refresh_total",
    "ward_jwks_keys",
    "ward_jwks_last_success_timestamp_seconds",
    "ward_introspection_requests_total",
    "ward_introspection_duration_seconds",
    "ward_config_reloads_total",
    "ward_config_last_reload_success_timestamp_seconds",
    "ward_build_info",
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
];

/// Label values of the metrics contract (README "Metrics", SPEC §6). A matcher on one
/// of these labels must name one of them (or a value seen in the scrape).
fn contract_values(family: &str, label: &str) -> Option<&'static [&'static str]> {
    const DECISIONS: &[&str] = &["allow", "deny", "shadow_deny"];
    Some(match (family, label) {
        ("ward_check_requests_total" | "ward_check_duration_seconds", "decision") => DECISIONS,
        ("ward_check_requests_total", "reason") => &[
            "ok",
            "missing_credential",
            "invalid_token",
            "forbidden",
            "no_route",
            "authn_unavailable",
            "invalid_request",
        ],
        ("ward_token_cache_requests_total", "result") => &["hit", "miss"],
        ("ward_jwks_refresh_total", "result") => &[
            "success",
            "unreachable",
            "timeout",
            "http_status",
            "too_large",
            "not_json",
            "invalid",
        ],
        ("ward_introspection_requests_total", "result") => &[
            "active",
            "inactive",
            "unreachable",
            "timeout",
            "http_status",
            "too_large",
            "not_json",
            "invalid",
            "circuit_open",
        ],
        ("ward_config_reloads_total", "result") => &["success", "failure"],
        _ => return None,
    })
}

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_file(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

// ===================================================================== the scrape

// ===================================================================== PromQL

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// A number or a duration (`0.005`, `14.4`, `30m`).
    Num(String),
    Str(String),
    /// The text between `[` and `]`: a range or a subquery.
    Range(String),
    Op(String),
    LParen,
    RParen,
    LBrace,
    RBrace,
    Comma,
}

fn lex(src: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            '{' => {
                out.push(Tok::LBrace);
                i += 1;
            }
            '}' => {
                out.push(Tok::RBrace);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            '[' => {
                let end = chars[i..]
                    .iter()
                    .position(|&c| c == ']')
                    .ok_or("unclosed [")?;
                out.push(Tok::Range(chars[i + 1..i + end].iter().collect()));
                i += end + 1;
            }
            '"' | '\'' | '`' => {
                let mut s = String::new();
                i += 1;
                loop {
                    let Some(&d) = chars.get(i) else {
                        return Err("unterminated string".into());
                    };
                    i += 1;
                    if d == c {
                        break;
                    }
                    if d == '\\' && c != '`' {
                        if let Some(&e) = chars.get(i) {
                            s.push(e);
                            i += 1;
                        }
                    } else {
                        s.push(d);
                    }
                }
                out.push(Tok::Str(s));
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                out.push(Tok::Ident(chars[start..i].iter().collect()));
            }
            c if c.is_ascii_digit()
                || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                let start = i;
                while i < chars.len() {
                    let d = chars[i];
                    let exp_sign = (d == '-' || d == '+')
                        && matches!(chars[i - 1], 'e' | 'E')
                        && chars[start..i]
                            .iter()
                            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E'));
                    if d.is_ascii_alphanumeric() || d == '.' || exp_sign {
                        i += 1;
                    } else {
                        break;
                    }
                }
                out.push(Tok::Num(chars[start..i].iter().collect()));
            }
            _ => {
                let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
                let op = if ["==", "!=", ">=", "<=", "=~", "!~"].contains(&two.as_str()) {
                    two
                } else if "+-*/%^><=".contains(c) {
                    c.to_string()
                } else {
                    return Err(format!("unexpected character {c:?}"));
                };
                i += op.len();
                out.push(Tok::Op(op));
            }
        }
    }
    Ok(out)
}

#[derive(Debug, Clone)]
struct Matcher {
    label: String,
    op: String,
    value: String,
}

#[derive(Debug, Clone)]
struct Matching {
    on: bool,
    labels: Vec<String>,
    /// `group_left` (true) or `group_right` (false), with its extra labels.
    group: Option<(bool, Vec<String>)>,
}

#[derive(Debug, Clone)]
enum Expr {
    Num,
    Str(String),
    Sel {
        name: String,
        matchers: Vec<Matcher>,
    },
    /// A range selector or a subquery around its inner expression.
    Range(Box<Expr>),
    Call {
        func: String,
        args: Vec<Expr>,
    },
    Agg {
        op: String,
        /// `without` (true) or `by` (false), with its labels.
        grouping: Option<(bool, Vec<String>)>,
        args: Vec<Expr>,
    },
    Bin {
        op: String,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
        matching: Option<Matching>,
    },
    Neg(Box<Expr>),
}

const AGGREGATIONS: &[&str] = &[
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "limitk",
    "limit_ratio",
];

fn precedence(t: &Tok) -> Option<(u8, String)> {
    let op = match t {
        Tok::Op(o) if o != "=" && o != "=~" && o != "!~" => o.clone(),
        Tok::Ident(w) if ["and", "or", "unless", "atan2"].contains(&w.as_str()) => w.clone(),
        _ => return None,
    };
    let p = match op.as_str() {
        "or" => 1,
        "and" | "unless" => 2,
        "==" | "!=" | ">" | "<" | ">=" | "<=" => 3,
        "+" | "-" => 4,
        "*" | "/" | "%" | "atan2" => 5,
        "^" => 6,
        _ => return None,
    };
    Some((p, op))
}

/// A duration (`5m`, `1h30m`) or a subquery range (`15m:1m`, `6h:`).
fn is_range(text: &str) -> bool {
    let duration = |d: &str| {
        let mut rest = d;
        let mut any = false;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return false;
            }
            rest = &rest[digits..];
            let unit = ["ms", "s", "m", "h", "d", "w", "y"]
                .into_iter()
                .find(|u| rest.starts_with(u));
            let Some(u) = unit else {
                return false;
            };
            rest = &rest[u.len()..];
            any = true;
        }
        any
    };
    match text.trim().split_once(':') {
        Some((r, step)) => duration(r.trim()) && (step.trim().is_empty() || duration(step.trim())),
        None => duration(text.trim()),
    }
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn parse(src: &str) -> Result<Expr, String> {
        let mut p = Parser {
            toks: lex(src)?,
            pos: 0,
        };
        let e = p.expr(0)?;
        match p.peek() {
            None => Ok(e),
            Some(t) => Err(format!("unexpected {t:?} after the expression")),
        }
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Result<Tok, String> {
        let t = self.toks.get(self.pos).cloned().ok_or("unexpected end")?;
        self.pos += 1;
        Ok(t)
    }

    fn expect(&mut self, want: &Tok) -> Result<(), String> {
        match self.next()? {
            t if &t == want => Ok(()),
            t => Err(format!("expected {want:?}, found {t:?}")),
        }
    }

    fn word(&mut self, w: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Ident(x)) if x == w) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn labels(&mut self) -> Result<Vec<String>, String> {
        self.expect(&Tok::LParen)?;
        let mut out = Vec::new();
        loop {
            match self.next()? {
                Tok::RParen => return Ok(out),
                Tok::Ident(l) => out.push(l),
                Tok::Comma => {}
                t => return Err(format!("expected a label name, found {t:?}")),
            }
        }
    }

    fn expr(&mut self, min: u8) -> Result<Expr, String> {
        let mut lhs = self.unary()?;
        while let Some((p, op)) = self.peek().and_then(precedence) {
            if p < min {
                break;
            }
            self.pos += 1;
            self.word("bool");
            let mut matching = None;
            for (kw, on) in [("on", true), ("ignoring", false)] {
                if self.word(kw) {
                    matching = Some(Matching {
                        on,
                        labels: self.labels()?,
                        group: None,
                    });
                }
            }
            for (kw, left) in [("group_left", true), ("group_right", false)] {
                if self.word(kw) {
                    let extra = if matches!(self.peek(), Some(Tok::LParen)) {
                        self.labels()?
                    } else {
                        Vec::new()
                    };
                    matching
                        .get_or_insert(Matching {
                            on: false,
                            labels: Vec::new(),
                            group: None,
                        })
                        .group = Some((left, extra));
                }
            }
            // `^` is right-associative, the others left.
            let rhs = self.expr(if op == "^" { p } else { p + 1 })?;
            lhs = Expr::Bin {
                op,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
                matching,
            };
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        match self.peek() {
            Some(Tok::Op(o)) if o == "-" || o == "+" => {
                let neg = o == "-";
                self.pos += 1;
                let e = self.unary()?;
                Ok(if neg { Expr::Neg(Box::new(e)) } else { e })
            }
            _ => {
                let e = self.primary()?;
                self.postfix(e)
            }
        }
    }

    fn postfix(&mut self, mut e: Expr) -> Result<Expr, String> {
        loop {
            match self.peek() {
                Some(Tok::Range(r)) => {
                    if !is_range(r) {
                        return Err(format!("[{r}] is not a range or subquery"));
                    }
                    self.pos += 1;
                    e = Expr::Range(Box::new(e));
                }
                Some(Tok::Ident(w)) if w == "offset" => {
                    self.pos += 1;
                    if matches!(self.peek(), Some(Tok::Op(o)) if o == "-") {
                        self.pos += 1;
                    }
                    match self.next()? {
                        Tok::Num(d) if is_range(&d) => {}
                        t => return Err(format!("offset needs a duration, found {t:?}")),
                    }
                }
                _ => return Ok(e),
            }
        }
    }

    fn args(&mut self) -> Result<Vec<Expr>, String> {
        self.expect(&Tok::LParen)?;
        let mut args = Vec::new();
        if matches!(self.peek(), Some(Tok::RParen)) {
            self.pos += 1;
            return Ok(args);
        }
        loop {
            args.push(self.expr(0)?);
            match self.next()? {
                Tok::Comma => {}
                Tok::RParen => return Ok(args),
                t => return Err(format!("expected , or ), found {t:?}")),
            }
        }
    }

    fn matchers(&mut self) -> Result<Vec<Matcher>, String> {
        self.expect(&Tok::LBrace)?;
        let mut out = Vec::new();
        loop {
            match self.next()? {
                Tok::RBrace => return Ok(out),
                Tok::Comma => {}
                Tok::Ident(label) => {
                    let op = match self.next()? {
                        Tok::Op(o) if ["=", "!=", "=~", "!~"].contains(&o.as_str()) => o,
                        t => return Err(format!("expected a matcher operator, found {t:?}")),
                    };
                    let value = match self.next()? {
                        Tok::Str(v) => v,
                        t => return Err(format!("expected a quoted value, found {t:?}")),
                    };
                    out.push(Matcher { label, op, value });
                }
                t => return Err(format!("expected a label matcher, found {t:?}")),
            }
        }
    }

    fn grouping(&mut self) -> Result<Option<(bool, Vec<String>)>, String> {
        for (kw, without) in [("by", false), ("without", true)] {
            if self.word(kw) {
                return Ok(Some((without, self.labels()?)));
            }
        }
        Ok(None)
    }

    fn primary(&mut self) -> Result<Expr, String> {
        match self.next()? {
            Tok::Num(n) => {
                n.parse::<f64>()
                    .map_err(|_| format!("{n} is not a number"))?;
                Ok(Expr::Num)
            }
            Tok::Str(s) => Ok(Expr::Str(s)),
            Tok::LParen => {
                let e = self.expr(0)?;
                self.expect(&Tok::RParen)?;
                Ok(e)
            }
            Tok::LBrace => Err("a selector without a metric name".into()),
            Tok::Ident(name) if AGGREGATIONS.contains(&name.as_str()) => {
                let mut grouping = self.grouping()?;
                let args = self.args()?;
                if grouping.is_none() {
                    grouping = self.grouping()?;
                }
                Ok(Expr::Agg {
                    op: name,
                    grouping,
                    args,
                })
            }
            Tok::Ident(name) if matches!(self.peek(), Some(Tok::LParen)) => Ok(Expr::Call {
                func: name,
                args: self.args()?,
            }),
            Tok::Ident(name) => {
                let matchers = if matches!(self.peek(), Some(Tok::LBrace)) {
                    self.matchers()?
                } else {
                    Vec::new()
                };
                Ok(Expr::Sel { name, matchers })
            }
            t => Err(format!("unexpected {t:?}")),
        }
    }
}

// ================================================================ label checking

/// Label names of a vector, each with the metric families it comes from (empty for
/// target labels).
type Labels = BTreeMap<String, BTreeSet<String>>;

#[derive(Debug, Clone)]
enum Ty {
    Scalar,
    Str,
    Vector(Labels),
}

fn names(l: &Labels) -> BTreeSet<&str> {
    l.keys().map(String::as_str).collect()
}

fn show(l: &Labels) -> String {
    l.keys().cloned().collect::<Vec<_>>().join(", ")
}

fn target_labels() -> Labels {
    TARGET_LABELS
        .iter()
        .map(|l| (l.to_string(), BTreeSet::new()))
        .collect()
}

/// The metric names and label sets the checks run against: ward's scrape and the
/// recording rules of prometheusrule.yaml.
struct Checker {
    families: BTreeMap<String, Family>,
    rules: BTreeMap<String, String>,
    rule_labels: BTreeMap<String, Option<Labels>>,
    errors: BTreeSet<String>,
    /// ward/process families queried, and recording rules, by context.
    used: BTreeMap<String, BTreeSet<String>>,
}

impl Checker {
    fn new(scrape: &str) -> Self {
        Checker {
            families: families(scrape),
            rules: BTreeMap::new(),
            rule_labels: BTreeMap::new(),
            errors: BTreeSet::new(),
            used: BTreeMap::new(),
        }
    }

    fn error(&mut self, ctx: &str, msg: impl std::fmt::Display) {
        self.errors.insert(format!("{ctx}: {msg}"));
    }

    /// `ward_x_bucket` -> (`ward_x`, Some("_bucket")) when ward_x is a histogram.
    fn family_of(&self, name: &str) -> Option<(String, Option<&'static str>)> {
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix)
                && self.families.get(base).is_some_and(|f| f.ty == "histogram")
            {
                return Some((base.to_string(), Some(suffix)));
            }
        }
        self.families
            .get(name)
            .filter(|f| f.ty != "histogram")
            .map(|_| (name.to_string(), None))
    }

    /// Every `ward_*` / `process_*` identifier in a query's text (strings included)
    /// must name an exported family.
    fn scan_names(&mut self, ctx: &str, text: &str) {
        let bytes = text.as_bytes();
        let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
        let mut i = 0;
        while i < bytes.len() {
            if ident(bytes[i]) && (i == 0 || !ident(bytes[i - 1])) {
                let start = i;
                while i < bytes.len() && ident(bytes[i]) {
                    i += 1;
                }
                let word = &text[start..i];
                if word.starts_with("ward_") || word.starts_with("process_") {
                    match self.family_of(word) {
                        Some((f, _)) => {
                            self.used.entry(ctx.to_string()).or_default().insert(f);
                        }
                        None if self.families.contains_key(word) => self.error(
                            ctx,
                            format!(
                                "`{word}` is a histogram: query its _bucket, _sum or _count series"
                            ),
                        ),
                        None => self.error(
                            ctx,
                            format!("`{word}` is not a metric ward exports on /metrics"),
                        ),
                    }
                }
            } else {
                i += 1;
            }
        }
    }

    /// Checks one query; its label set when it parses.
    fn query(&mut self, ctx: &str, text: &str) -> Option<Ty> {
        self.scan_names(ctx, text);
        match Parser::parse(text) {
            Ok(e) => Some(self.ty(ctx, &e)),
            Err(e) => {
                self.error(ctx, format!("cannot parse `{text}`: {e}"));
                None
            }
        }
    }

    fn rule_labels(&mut self, name: &str) -> Option<Labels> {
        if let Some(l) = self.rule_labels.get(name) {
            return l.clone();
        }
        let expr = self.rules.get(name)?.clone();
        // In progress: a rule that refers to itself gets no labels.
        self.rule_labels.insert(name.to_string(), None);
        let ctx = format!("recording rule {name}");
        let labels = match self.query(&ctx, &expr) {
            Some(Ty::Vector(l)) => Some(l),
            Some(_) => {
                self.error(&ctx, "a recording rule must produce a vector");
                None
            }
            None => None,
        };
        self.rule_labels.insert(name.to_string(), labels.clone());
        labels
    }

    fn check_value(&mut self, ctx: &str, family: &str, m: &Matcher) {
        if m.value.contains('$') {
            return; // a Grafana variable
        }
        let values: Vec<&str> = match m.op.as_str() {
            "=" | "!=" if !m.value.is_empty() => vec![m.value.as_str()],
            "=~" | "!~"
                if m.value.split('|').all(|v| {
                    !v.is_empty()
                        && v.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
                }) =>
            {
                m.value.split('|').collect()
            }
            _ => return,
        };
        let Some(f) = self.families.get(family) else {
            return;
        };
        let allowed: BTreeSet<String> = if m.label == "le" {
            f.le.clone()
        } else {
            let Some(contract) = contract_values(family, &m.label) else {
                return;
            };
            let mut a: BTreeSet<String> = contract.iter().map(|s| s.to_string()).collect();
            a.extend(f.values.get(&m.label).cloned().unwrap_or_default());
            a
        };
        for v in values {
            if !allowed.contains(v) {
                let what = if m.label == "le" {
                    format!("no bucket of {family} has le=\"{v}\"")
                } else {
                    format!("{family} never has {}=\"{v}\"", m.label)
                };
                self.error(
                    ctx,
                    format!(
                        "{what} (it has: {})",
                        allowed.iter().cloned().collect::<Vec<_>>().join(", ")
                    ),
                );
            }
        }
    }

    fn selector(&mut self, ctx: &str, name: &str, matchers: &[Matcher]) -> Ty {
        let labels: Labels = if name.contains(':') {
            self.used
                .entry(ctx.to_string())
                .or_default()
                .insert(name.to_string());
            match self.rule_labels(name) {
                Some(l) => l,
                None => {
                    if !self.rules.contains_key(name) {
                        self.error(
                            ctx,
                            format!("`{name}` is not a recording rule of prometheusrule.yaml"),
                        );
                    }
                    return Ty::Vector(Labels::new());
                }
            }
        } else if name == "up" {
            target_labels()
        } else if name.starts_with("ward_") || name.starts_with("process_") {
            let Some((family, suffix)) = self.family_of(name) else {
                // Reported by scan_names.
                return Ty::Vector(Labels::new());
            };
            let mut l = target_labels();
            for label in &self.families[&family].labels {
                l.entry(label.clone()).or_default().insert(family.clone());
            }
            if suffix == Some("_bucket") {
                l.entry("le".into()).or_default().insert(family.clone());
            }
            l
        } else {
            self.error(
                ctx,
                format!("`{name}` is neither ward's metric, nor a recording rule, nor up"),
            );
            return Ty::Vector(Labels::new());
        };
        for m in matchers {
            if m.label == "__name__" {
                continue;
            }
            match labels.get(&m.label) {
                None => self.error(
                    ctx,
                    format!(
                        "{{{}{}...}}: {} is not a label of {name} (labels: {})",
                        m.label,
                        m.op,
                        m.label,
                        show(&labels)
                    ),
                ),
                Some(from) => {
                    for family in from.clone() {
                        self.check_value(ctx, &family, m);
                    }
                }
            }
        }
        Ty::Vector(labels)
    }

    fn subset(&mut self, ctx: &str, what: &str, wanted: &[String], of: &Labels) {
        for l in wanted {
            if !of.contains_key(l) {
                self.error(
                    ctx,
                    format!("{what}: {l} is not a label there (labels: {})", show(of)),
                );
            }
        }
    }

    fn ty(&mut self, ctx: &str, e: &Expr) -> Ty {
        match e {
            Expr::Num => Ty::Scalar,
            Expr::Str(_) => Ty::Str,
            Expr::Neg(e) | Expr::Range(e) => self.ty(ctx, e),
            Expr::Sel { name, matchers } => self.selector(ctx, name, matchers),
            Expr::Call { func, args } => self.call(ctx, func, args),
            Expr::Agg { op, grouping, args } => {
                let tys: Vec<Ty> = args.iter().map(|a| self.ty(ctx, a)).collect();
                let Some(Ty::Vector(inner)) = tys.last().cloned() else {
                    self.error(ctx, format!("{op}() needs a vector"));
                    return Ty::Vector(Labels::new());
                };
                let mut out = match grouping {
                    Some((false, by)) => {
                        self.subset(ctx, &format!("{op} by ({})", by.join(", ")), by, &inner);
                        by.iter()
                            .filter_map(|l| inner.get_key_value(l))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect()
                    }
                    Some((true, without)) => {
                        self.subset(
                            ctx,
                            &format!("{op} without ({})", without.join(", ")),
                            without,
                            &inner,
                        );
                        let mut l = inner.clone();
                        l.retain(|k, _| !without.contains(k));
                        l
                    }
                    None => Labels::new(),
                };
                match op.as_str() {
                    "topk" | "bottomk" | "limitk" | "limit_ratio" => out = inner,
                    "count_values" => {
                        if let Some(Expr::Str(l)) = args.first() {
                            out.insert(l.clone(), BTreeSet::new());
                        }
                    }
                    _ => {}
                }
                Ty::Vector(out)
            }
            Expr::Bin {
                op,
                lhs,
                rhs,
                matching,
            } => {
                let (l, r) = (self.ty(ctx, lhs), self.ty(ctx, rhs));
                let (l, r) = match (l, r) {
                    (Ty::Vector(l), Ty::Vector(r)) => (l, r),
                    (Ty::Vector(v), _) | (_, Ty::Vector(v)) => return Ty::Vector(v),
                    _ => return Ty::Scalar,
                };
                self.binary(ctx, op, l, r, matching.as_ref())
            }
        }
    }

    fn binary(&mut self, ctx: &str, op: &str, l: Labels, r: Labels, m: Option<&Matching>) -> Ty {
        let set_op = ["and", "or", "unless"].contains(&op);
        let Some(m) = m else {
            if op == "or" {
                let mut out = l.clone();
                out.retain(|k, _| r.contains_key(k));
                return Ty::Vector(out);
            }
            if names(&l) != names(&r) {
                self.error(
                    ctx,
                    format!(
                        "`{op}` between vectors with different labels ({}) and ({}): no series would match; aggregate both sides alike or use on(...)",
                        show(&l),
                        show(&r)
                    ),
                );
            }
            return Ty::Vector(l);
        };
        let what = format!(
            "{} ({})",
            if m.on { "on" } else { "ignoring" },
            m.labels.join(", ")
        );
        if m.on {
            self.subset(ctx, &format!("{what}, left side"), &m.labels, &l);
            self.subset(ctx, &format!("{what}, right side"), &m.labels, &r);
        } else {
            let mut both = l.clone();
            both.extend(r.clone());
            self.subset(ctx, &what, &m.labels, &both);
        }
        match &m.group {
            Some((left, extra)) => {
                let (many, one) = if *left { (l, r) } else { (r, l) };
                self.subset(ctx, "group_left/group_right", extra, &one);
                let mut out = many;
                for x in extra {
                    if let Some(v) = one.get(x) {
                        out.insert(x.clone(), v.clone());
                    }
                }
                Ty::Vector(out)
            }
            None if set_op => Ty::Vector(l),
            None if m.on => {
                let mut out = l;
                out.retain(|k, _| m.labels.contains(k));
                Ty::Vector(out)
            }
            None => {
                let (mut a, mut b) = (l, r);
                a.retain(|k, _| !m.labels.contains(k));
                b.retain(|k, _| !m.labels.contains(k));
                if names(&a) != names(&b) {
                    self.error(
                        ctx,
                        format!(
                            "`{op} {what}`: the sides still differ ({}) vs ({})",
                            show(&a),
                            show(&b)
                        ),
                    );
                }
                Ty::Vector(a)
            }
        }
    }

    fn call(&mut self, ctx: &str, func: &str, args: &[Expr]) -> Ty {
        const NEED_RANGE: &[&str] = &[
            "rate",
            "irate",
            "increase",
            "delta",
            "idelta",
            "deriv",
            "predict_linear",
            "changes",
            "resets",
            "avg_over_time",
            "min_over_time",
            "max_over_time",
            "sum_over_time",
            "count_over_time",
            "last_over_time",
            "quantile_over_time",
            "stddev_over_time",
            "stdvar_over_time",
            "present_over_time",
            "absent_over_time",
        ];
        const KEEP_LABELS: &[&str] = &[
            "timestamp",
            "abs",
            "ceil",
            "floor",
            "round",
            "clamp",
            "clamp_min",
            "clamp_max",
            "exp",
            "ln",
            "log2",
            "log10",
            "sqrt",
            "sgn",
            "sort",
            "sort_desc",
        ];
        let tys: Vec<Ty> = args.iter().map(|a| self.ty(ctx, a)).collect();
        let first_vector = tys.iter().find_map(|t| match t {
            Ty::Vector(l) => Some(l.clone()),
            _ => None,
        });
        if NEED_RANGE.contains(&func) && !args.iter().any(|a| matches!(a, Expr::Range(_))) {
            self.error(ctx, format!("{func}() needs a range vector, like x[5m]"));
        }
        match func {
            "time" => Ty::Scalar,
            "scalar" => Ty::Scalar,
            "vector" => Ty::Vector(Labels::new()),
            "absent" | "absent_over_time" => {
                let mut out = Labels::new();
                let inner = match args.first() {
                    Some(Expr::Range(e)) => Some(&**e),
                    other => other,
                };
                if let Some(Expr::Sel { matchers, .. }) = inner {
                    for m in matchers.iter().filter(|m| m.op == "=") {
                        out.insert(m.label.clone(), BTreeSet::new());
                    }
                }
                Ty::Vector(out)
            }
            "histogram_quantile" => {
                let Some(mut l) = first_vector else {
                    self.error(ctx, "histogram_quantile() needs a vector of buckets");
                    return Ty::Vector(Labels::new());
                };
                if l.remove("le").is_none() {
                    self.error(
                        ctx,
                        format!(
                            "histogram_quantile() over a vector without le (labels: {}): keep le in the sum by (...)",
                            show(&l)
                        ),
                    );
                }
                Ty::Vector(l)
            }
            "label_replace" => {
                let mut l = first_vector.unwrap_or_default();
                if let Some(Expr::Str(dst)) = args.get(1) {
                    l.insert(dst.clone(), BTreeSet::new());
                }
                Ty::Vector(l)
            }
            f if NEED_RANGE.contains(&f) || KEEP_LABELS.contains(&f) => {
                Ty::Vector(first_vector.unwrap_or_default())
            }
            f => {
                self.error(
                    ctx,
                    format!("function {f}() is not modelled by tests/monitoring.rs (add it to Checker::call)"),
                );
                Ty::Vector(first_vector.unwrap_or_default())
            }
        }
    }
}

// ======================================================= the files under check

/// Grafana's own variables, replaced as Grafana would before the query is sent.
fn grafana_expand(expr: &str) -> String {
    expr.replace("${__rate_interval}", "5m")
        .replace("$__rate_interval", "5m")
        .replace("${__interval}", "1m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
}

/// A GitHub heading anchor: lower case, spaces to dashes, other punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// Runs every check of the module over the rule file and the dashboard. Returns the
/// checker (its errors, and what each query used).
fn check_monitoring(scrape: &str, rules_yaml: &str, dashboard_json: &str, docs: &str) -> Checker {
    let mut c = Checker::new(scrape);
    let doc_anchors: BTreeSet<String> = docs
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix('#'))
        .map(|h| anchor(h.trim_start_matches('#')))
        .collect();

    // --- the PrometheusRule
    let rule_doc = match ward::config::yaml::parse(rules_yaml) {
        Ok((v, _)) => v,
        Err(e) => {
            c.error(
                "prometheusrule.yaml",
                format!("line {}: {}", e.line, e.message),
            );
            Value::Null
        }
    };
    if rule_doc["apiVersion"] != "monitoring.coreos.com/v1" || rule_doc["kind"] != "PrometheusRule"
    {
        c.error(
            "prometheusrule.yaml",
            "not a monitoring.coreos.com/v1 PrometheusRule",
        );
    }
    let groups = rule_doc["spec"]["groups"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if groups.is_empty() {
        c.error("prometheusrule.yaml", "spec.groups is empty");
    }
    let mut alerts = Vec::new();
    for g in &groups {
        let gname = g["name"].as_str().unwrap_or("?").to_string();
        for r in g["rules"].as_array().cloned().unwrap_or_default() {
            let expr = match &r["expr"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if let Some(rec) = r["record"].as_str() {
                if !rec.contains(':') {
                    c.error(
                        &format!("rule group {gname}"),
                        format!(
                            "recording rule {rec}: name it level:metric:operation (with colons)"
                        ),
                    );
                }
                if c.rules.insert(rec.to_string(), expr).is_some() {
                    c.error(
                        &format!("rule group {gname}"),
                        format!("recording rule {rec} defined twice"),
                    );
                }
            } else if let Some(alert) = r["alert"].as_str() {
                alerts.push((
                    format!("alert {alert} (group {gname})"),
                    alert.to_string(),
                    r.clone(),
                    expr,
                ));
            } else {
                c.error(
                    &format!("rule group {gname}"),
                    "a rule with neither record nor alert",
                );
            }
        }
    }
    let names: Vec<String> = c.rules.keys().cloned().collect();
    for n in names {
        c.rule_labels(&n);
    }
    for (ctx, alert, r, expr) in alerts {
        c.query(&ctx, &expr);
        if !r["for"].as_str().is_some_and(is_range) {
            c.error(&ctx, "needs `for:` with a duration");
        }
        if !matches!(
            r["labels"]["severity"].as_str(),
            Some("critical" | "warning" | "info")
        ) {
            c.error(&ctx, "needs labels.severity: critical, warning or info");
        }
        for key in ["summary", "description", "runbook_url"] {
            if r["annotations"][key]
                .as_str()
                .is_none_or(|s| s.trim().is_empty())
            {
                c.error(&ctx, format!("needs annotations.{key}"));
            }
        }
        let want = format!("docs/monitoring.md#{}", alert.to_lowercase());
        match r["annotations"]["runbook_url"].as_str() {
            Some(u) if u.ends_with(&want) => {
                if !doc_anchors.contains(&alert.to_lowercase()) {
                    c.error(&ctx, format!("docs/monitoring.md has no heading `{alert}`"));
                }
            }
            _ => c.error(&ctx, format!("runbook_url must end with {want}")),
        }
    }

    // --- the Grafana dashboard
    let d: Value = match serde_json::from_str(dashboard_json) {
        Ok(d) => d,
        Err(e) => {
            c.error("grafana-dashboard.json", format!("not JSON: {e}"));
            Value::Null
        }
    };
    if d["schemaVersion"].as_u64().is_none_or(|v| v < 36) {
        c.error(
            "grafana-dashboard.json",
            "schemaVersion must be 36 or later",
        );
    }
    let vars = d["templating"]["list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let var = |name: &str| vars.iter().find(|v| v["name"] == name).cloned();
    match var("datasource") {
        Some(v) if v["type"] == "datasource" && v["query"] == "prometheus" => {}
        _ => c.error(
            "grafana-dashboard.json",
            "needs a `datasource` variable of type datasource, query prometheus",
        ),
    }
    for name in ["namespace", "job"] {
        match var(name) {
            Some(v) if v["type"] == "query" => {}
            _ => c.error(
                "grafana-dashboard.json",
                format!("needs a `{name}` query variable"),
            ),
        }
    }
    for v in &vars {
        if v["type"] != "query" {
            continue;
        }
        let ctx = format!("dashboard variable ${}", v["name"].as_str().unwrap_or("?"));
        let q = v["query"]["query"]
            .as_str()
            .or(v["query"].as_str())
            .or(v["definition"].as_str())
            .unwrap_or("")
            .to_string();
        // label_values(selector, label)
        let inner = q
            .trim()
            .strip_prefix("label_values(")
            .and_then(|s| s.strip_suffix(')'));
        let Some((sel, label)) = inner.and_then(|s| s.rsplit_once(',')) else {
            c.error(
                &ctx,
                format!("expected label_values(selector, label), got `{q}`"),
            );
            continue;
        };
        if let Some(Ty::Vector(l)) = c.query(&ctx, sel) {
            let label = label.trim().to_string();
            c.subset(&ctx, "label_values", &[label], &l);
        }
    }
    let mut ids = BTreeSet::new();
    let mut stack: Vec<Value> = d["panels"].as_array().cloned().unwrap_or_default();
    let mut dashboard_ctx = Vec::new();
    while let Some(p) = stack.pop() {
        stack.extend(p["panels"].as_array().cloned().unwrap_or_default());
        let title = p["title"].as_str().unwrap_or("?").to_string();
        if !ids.insert(p["id"].to_string()) {
            c.error(
                "grafana-dashboard.json",
                format!("panel id {} used twice", p["id"]),
            );
        }
        if p["type"] == "row" {
            continue;
        }
        let ctx = format!("panel \"{title}\"");
        if p["datasource"]["uid"] != "${datasource}" {
            c.error(&ctx, "datasource must be ${datasource}");
        }
        let targets = p["targets"].as_array().cloned().unwrap_or_default();
        if targets.is_empty() {
            c.error(&ctx, "has no query");
        }
        for t in targets {
            let tctx = format!("{ctx} ({})", t["refId"].as_str().unwrap_or("?"));
            if !t["datasource"].is_null() && t["datasource"]["uid"] != "${datasource}" {
                c.error(&tctx, "datasource must be ${datasource}");
            }
            match t["expr"].as_str() {
                Some(e) if !e.trim().is_empty() => {
                    c.query(&tctx, &grafana_expand(e));
                    dashboard_ctx.push(tctx);
                }
                _ => c.error(&tctx, "no expr"),
            }
        }
    }
    if dashboard_ctx.is_empty() {
        c.error("grafana-dashboard.json", "no panel queries found");
    }

    // The dashboard shows every family it must, directly or through recording rules.
    let mut shown = BTreeSet::new();
    let mut todo: Vec<String> = dashboard_ctx
        .iter()
        .flat_map(|ctx| c.used.get(ctx).cloned().unwrap_or_default())
        .collect();
    while let Some(n) = todo.pop() {
        if shown.insert(n.clone()) && n.contains(':') {
            todo.extend(
                c.used
                    .get(&format!("recording rule {n}"))
                    .cloned()
                    .unwrap_or_default(),
            );
        }
    }
    for f in DASHBOARD_MUST_SHOW {
        if !shown.contains(*f) {
            c.error("grafana-dashboard.json", format!("no panel shows {f}"));
        }
    }
    c
}

// ================================================================== live ward

/// Starts ward with every kind of provider the dashboard shows, makes it decide and
/// reload, and returns its `/metrics`.
async fn scrape_a_busy_ward() -> String {
    let key = TestKey::generate(Alg::HS256);
    let idp = idp::Idp::start(key.jwks()).await;
    let introspect = Introspect::start().await;
    let opaque = "opaque-partner-token";
    introspect.set_token(
        opaque,
        json!({"active": true, "sub": "partner-app", "exp": now() + 300}),
    );
    let yaml = format!(
        r#"
providers:
  - name: corp
    jwt: {{ issuer: https://corp.test, audiences: [api], algorithms: [HS256], jwks_uri: {jwks}, refresh_interval: 10m }}
  - name: partners
    introspection:
      endpoint: {endpoint}
      client_id: {CLIENT_ID}
      client_secret: ${{PARTNERS_SECRET}}
      audiences: any
      timeout: 2s
routes:
  - name: api
    match: {{ path_prefix: /api }}
    providers: [corp]
  - name: partner
    match: {{ path_prefix: /partner }}
    providers: [partners]
  - name: beta
    mode: shadow
    match: {{ path_prefix: /beta }}
    providers: [corp]
"#,
        jwks = idp.jwks_uri(),
        endpoint = introspect.url(),
    );
    let ward = Ward::from_file("ward.yaml")
        .file("ward.yaml", &yaml)
        .env("PARTNERS_SECRET", CLIENT_SECRET)
        .start()
        .await;

    let token = key.sign(
        &json!({"iss": "https://corp.test", "aud": "api", "sub": "alice", "exp": now() + 120}),
    );
    let orders = Req::get("/api/orders").bearer(&token);
    let code = async |req: &Req| grpc_code(&ward.check(req.to_map()).await);
    // The key set arrives from the stub IdP in the background.
    ward.wait_allowed(&orders.to_map(), Duration::from_secs(10))
        .await;
    assert_eq!(code(&orders).await, 0);
    assert_eq!(code(&Req::get("/api/orders").bearer("not-a-jwt")).await, 16);
    assert_eq!(code(&Req::get("/elsewhere")).await, 7);
    let partner = Req::get("/partner/x").bearer(opaque);
    assert_eq!(code(&partner).await, 0);
    assert_eq!(code(&partner).await, 0);
    // shadow_deny: let through, counted.
    assert_eq!(code(&Req::get("/beta/x")).await, 0);

    // One good reload, one rejected.
    std::fs::write(ward.config_file(), format!("{yaml}\n# touched\n")).expect("rewrite");
    ward.reload().expect("good reload");
    std::fs::write(ward.config_file(), "routes: [ { garbage").expect("garbage");
    assert!(ward.reload().is_err());
    // Checks still decided on the last good config.
    assert_eq!(code(&orders).await, 0);

    ward.metrics().await
}

// ======================================================================= tests

#[tokio::test]
async fn dashboard_and_alerts_query_only_what_ward_exports() {
    let scrape = scrape_a_busy_ward().await;
    let fams = families(&scrape);
    // The scrape exercised what the files query (labels are learnt from samples).
    for (name, labels) in [
        (
            "ward_check_requests_total",
            &["decision", "reason", "route"][..],
        ),
        ("ward_check_duration_seconds", &["decision"]),
        ("ward_token_cache_requests_total", &["provider", "result"]),
        ("ward_jwks_refresh_total", &["provider", "result"]),
        ("ward_jwks_keys", &["provider"]),
        ("ward_jwks_last_success_timestamp_seconds", &["provider"]),
        ("ward_introspection_requests_total", &["provider", "result"]),
        ("ward_introspection_duration_seconds", &["provider"]),
        ("ward_config_reloads_total", &["result"]),
        ("ward_config_last_reload_success_timestamp_seconds", &[]),
        ("ward_build_info", &["version"]),
    ] {
        let f = fams
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{scrape}"));
        let want: BTreeSet<String> = labels.iter().map(|s| s.to_string()).collect();
        assert_eq!(f.labels, want, "{name} labels in:\n{scrape}");
    }
    for (name, label, value) in [
        ("ward_check_requests_total", "decision", "shadow_deny"),
        ("ward_introspection_requests_total", "result", "active"),
        ("ward_token_cache_requests_total", "result", "hit"),
        ("ward_config_reloads_total", "result", "failure"),
    ] {
        assert!(
            fams[name].values[label].contains(value),
            "{name}{{{label}=\"{value}\"}} missing:\n{scrape}"
        );
    }
    for result in ["failure", "success"] {
        assert_eq!(
            metric(&scrape, "ward_config_reloads_total", &[("result", result)]),
            Some(1.0),
            "{result}: {scrape}"
        );
    }
    assert!(
        fams["ward_check_duration_seconds"].le.contains("0.005"),
        "the SLO's le=\"0.005\" bucket is gone: {:?}",
        fams["ward_check_duration_seconds"].le
    );

    let c = check_monitoring(
        &scrape,
        &read("k8s/monitoring/prometheusrule.yaml"),
        &read("k8s/monitoring/grafana-dashboard.json"),
        &read("docs/monitoring.md"),
    );
    assert!(
        c.errors.is_empty(),
        "k8s/monitoring/ does not match ward's /metrics:\n  {}\n\n/metrics was:\n{scrape}",
        c.errors.iter().cloned().collect::<Vec<_>>().join("\n  ")
    );
    // Not vacuous: the queries were read and resolved.
    let queried: BTreeSet<&String> = c.used.values().flatten().collect();
    assert!(queried.len() >= 20, "only {queried:?} queried");
}

/// A canned exposition for the checker's own tests.
const CANNED: &str = r#"# TYPE ward_check_requests_total counter
ward_check_requests_total{decision="allow",reason="ok",route="api"} 3
# TYPE ward_check_duration_seconds histogram
ward_check_duration_seconds_bucket{decision="allow",le="0.001"} 1
ward_check_duration_seconds_bucket{decision="allow",le="0.005"} 2
ward_check_duration_seconds_bucket{decision="allow",le="+Inf"} 3
ward_check_duration_seconds_sum{decision="allow"} 0.01
ward_check_duration_seconds_count{decision="allow"} 3
# TYPE ward_jwks_keys gauge
ward_jwks_keys{provider="corp"} 2
"#;

const CANNED_RULES: &str = r#"
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: { name: t }
spec:
  groups:
    - name: g
      rules:
        - record: ward:check_requests:rate5m
          expr: sum by (namespace, job, route, decision) (rate(ward_check_requests_total[5m]))
"#;

fn canned_errors(expr: &str) -> Vec<String> {
    let dashboard = json!({
        "schemaVersion": 39,
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus"},
            {"name": "namespace", "type": "query", "query": {"query": "label_values(ward_jwks_keys, namespace)"}},
            {"name": "job", "type": "query", "query": {"query": "label_values(ward_jwks_keys{namespace=\"$namespace\"}, job)"}},
        ]},
        "panels": [{"id": 1, "type": "timeseries", "title": "t",
                    "datasource": {"type": "prometheus", "uid": "${datasource}"},
                    "targets": [{"refId": "A", "expr": expr}]}],
    });
    let c = check_monitoring(CANNED, CANNED_RULES, &dashboard.to_string(), "");
    c.errors
        .into_iter()
        .filter(|e| !e.contains("no panel shows"))
        .collect()
}

#[test]
fn the_checker_accepts_well_formed_queries() {
    for good in [
        r#"sum by (route, decision) (rate(ward_check_requests_total{namespace="$namespace", job="$job"}[$__rate_interval]))"#,
        r#"histogram_quantile(0.99, sum by (decision, le) (rate(ward_check_duration_seconds_bucket{instance=~"$instance"}[5m])))"#,
        r#"1 - (sum(rate(ward_check_duration_seconds_bucket{le="0.005"}[1h])) / sum(rate(ward_check_duration_seconds_count[1h])))"#,
        r#"sum by (route) (ward:check_requests:rate5m{decision="deny"}) / sum by (route) (ward:check_requests:rate5m)"#,
        r#"ward_jwks_keys == 0 and on (namespace, job) (sum by (namespace, job) (up) > 0)"#,
        r#"time() - ward_jwks_keys offset 1h > 30"#,
        r#"max_over_time((timestamp(increase(ward_check_requests_total{decision=~"deny|shadow_deny"}[2m]) > 0))[15m:1m])"#,
        r#"absent(up{job="ward"} == 1)"#,
    ] {
        assert_eq!(canned_errors(good), Vec::<String>::new(), "{good}");
    }
}

#[test]
fn the_checker_catches_misspellings() {
    for (bad, expect) in [
        (
            "sum(rate(ward_check_request_total[5m]))",
            "`ward_check_request_total` is not a metric ward exports",
        ),
        (
            "sum by (rute) (rate(ward_check_requests_total[5m]))",
            "sum by (rute): rute is not a label there",
        ),
        (
            r#"ward_check_requests_total{decison="deny"}"#,
            "decison is not a label of ward_check_requests_total",
        ),
        (
            r#"ward_check_requests_total{decision="dney"}"#,
            r#"never has decision="dney""#,
        ),
        (
            r#"ward_check_requests_total{decision!~"allow|dney"}"#,
            r#"never has decision="dney""#,
        ),
        (
            r#"ward_check_duration_seconds_bucket{le="0.004"}"#,
            r#"no bucket of ward_check_duration_seconds has le="0.004""#,
        ),
        (
            r#"ward_check_duration_seconds_count{le="0.005"}"#,
            "le is not a label of ward_check_duration_seconds_count",
        ),
        (
            "ward_check_duration_seconds",
            "`ward_check_duration_seconds` is a histogram: query its _bucket",
        ),
        (
            "histogram_quantile(0.99, sum by (decision) (rate(ward_check_duration_seconds_bucket[5m])))",
            "histogram_quantile() over a vector without le",
        ),
        (
            "sum by (route) (rate(ward_check_requests_total[5m])) / sum(rate(ward_check_requests_total[5m]))",
            "no series would match",
        ),
        (
            "ward:check_request:rate5m",
            "`ward:check_request:rate5m` is not a recording rule",
        ),
        (
            r#"ward:check_requests:rate5m{reason="ok"}"#,
            "reason is not a label of ward:check_requests:rate5m",
        ),
        (
            r#"sum by (route) (ward:check_requests:rate5m{decision="alow"})"#,
            r#"never has decision="alow""#,
        ),
        (
            "rate(ward_check_requests_total)",
            "rate() needs a range vector",
        ),
        (
            "rate(ward_check_requests_total[$__rate_intervall])",
            "is not a range or subquery",
        ),
        (
            "ward_jwks_keys > on (provder) ward_jwks_keys",
            "on (provder), left side: provder is not a label there",
        ),
        (
            "node_memory_MemFree_bytes",
            "is neither ward's metric, nor a recording rule, nor up",
        ),
        ("sum(rate(ward_jwks_keys[5m]) by (provider)", "cannot parse"),
    ] {
        let errors = canned_errors(bad);
        assert!(
            errors.iter().any(|e| e.contains(expect)),
            "`{bad}` should be reported with {expect:?}; got {errors:#?}"
        );
    }
}

#[test]
fn the_checker_checks_alert_shape_and_runbooks() {
    let rules = r#"
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: { name: t }
spec:
  groups:
    - name: g
      rules:
        - alert: WardSomething
          expr: ward_jwks_keys == 0
          labels: { severity: page }
          annotations: { summary: s, runbook_url: "https://x/docs/monitoring.md#wardsomethingelse" }
        - record: ward_no_colon
          expr: ward_jwks_keys
"#;
    let c = check_monitoring(CANNED, rules, "{}", "### WardSomething\n");
    let all = c.errors.iter().cloned().collect::<Vec<_>>().join("\n");
    for expect in [
        "needs `for:`",
        "needs labels.severity",
        "needs annotations.description",
        "runbook_url must end with docs/monitoring.md#wardsomething",
        "name it level:metric:operation",
        "needs a `datasource` variable",
        "no panel queries found",
    ] {
        assert!(all.contains(expect), "expected {expect:?} in:\n{all}");
    }
}
