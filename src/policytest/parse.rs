//! Reading a cases file: raw serde shapes, defaults merged into each case, and the
//! compiled [`Suite`]; every error carries its path and line.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use crate::authn::alg::Alg;
use crate::config::{Dur, Errors};
use crate::devtoken::SigningKey;
use crate::header::HeaderName;

use super::*;

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
    /// The JWS header's `typ` (default `JWT`); `null` leaves it out.
    #[serde(default, deserialize_with = "present")]
    typ: Option<Option<String>>,
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
    #[serde(default, deserialize_with = "present")]
    minted: Option<Value>,
}

/// Tells `key: null` (`Some(None)`) from an absent key (`None`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

pub(super) fn compile(value: Value, base: &Path, p: &mut Errors) -> Option<Suite> {
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
pub(super) fn merge(base: &Value, over: &Value, nested: &[&str]) -> Value {
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
pub(super) fn placed(defaults: &Value, case: &Value) -> Value {
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
        typ: raw.typ.unwrap_or_else(|| Some("JWT".to_owned())),
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
    let minted = raw
        .minted
        .and_then(|v| super::minted::compile(v, &format!("{path}.minted"), raw.decision, p));
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
        minted,
    })
}
