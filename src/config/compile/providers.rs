//! `providers`: the fields every kind shares (name, claim map, token sources, claim
//! headers); each kind compiles in its own module.

mod api_key;
mod decryption;
mod introspection;
mod jwt;
mod mesh;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::headers::owned_header;
use crate::authn::claims::{ClaimPath, NameClaims};
use crate::authn::token::TokenSource;
use crate::authn::{ProviderKind, ProviderSettings};
use crate::config::{Errors, Sources};
use crate::header::HeaderName;
use api_key::compile_api_key;
use introspection::compile_introspection;
use jwt::compile_jwt;
use mesh::compile_mesh;

const DEFAULT_MAX_TOKEN_BYTES: usize = 16 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    name: String,
    jwt: Option<Value>,
    api_key: Option<Value>,
    introspection: Option<Value>,
    mesh: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClaimMap {
    roles: Option<Value>,
    scopes: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTokenSource {
    header: Option<String>,
    prefix: Option<String>,
    cookie: Option<String>,
    query: Option<String>,
}

pub(super) fn compile_provider(
    v: Value,
    path: &str,
    base: &Path,
    sources: &mut Sources,
    errors: &mut Errors,
) -> Option<ProviderSettings> {
    let raw: RawProvider = errors.parse(path, v)?;
    let name_ok = !raw.name.is_empty()
        && raw
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !name_ok {
        errors.add(
            &format!("{path}.name"),
            "a provider name is letters, digits, `-`, `_` or `.` (it is a metric label)",
        );
    }
    let kinds = [
        raw.jwt.is_some(),
        raw.api_key.is_some(),
        raw.introspection.is_some(),
        raw.mesh.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() != 1 {
        errors.add(
            path,
            "a provider has exactly one of `jwt`, `api_key`, `introspection`, `mesh`",
        );
        return None;
    }
    let name: Arc<str> = raw.name.into();
    let kind = if let Some(jwt) = raw.jwt {
        ProviderKind::Jwt(Box::new(compile_jwt(
            jwt,
            &format!("{path}.jwt"),
            base,
            sources,
            errors,
        )?))
    } else if let Some(ak) = raw.api_key {
        ProviderKind::ApiKey(compile_api_key(
            ak,
            &format!("{path}.api_key"),
            base,
            sources,
            errors,
        )?)
    } else if let Some(i) = raw.introspection {
        ProviderKind::Introspection(Box::new(compile_introspection(
            i,
            &format!("{path}.introspection"),
            base,
            sources,
            errors,
        )?))
    } else {
        let m = raw.mesh?;
        ProviderKind::Mesh(compile_mesh(m, &format!("{path}.mesh"), errors)?)
    };
    Some(ProviderSettings { name, kind })
}

/// `claims: {roles, scopes}`: where roles and scopes are read (defaults `roles`, `scope`).
fn claim_map(
    raw: Option<RawClaimMap>,
    path: &str,
    errors: &mut Errors,
) -> (NameClaims, NameClaims) {
    let (roles, scopes) = match raw {
        Some(c) => (
            c.roles
                .map(|v| name_claims(&v, &format!("{path}.claims.roles"), errors)),
            c.scopes
                .map(|v| name_claims(&v, &format!("{path}.claims.scopes"), errors)),
        ),
        None => (None, None),
    };
    let default = |name| NameClaims::from(ClaimPath::parse(name).expect("static path"));
    (
        roles.unwrap_or_else(|| default("roles")),
        scopes.unwrap_or_else(|| default("scope")),
    )
}

/// `claims.roles` / `claims.scopes`: one claim path, or a list of paths whose names are
/// united (SPEC §11). A list is never read as the segments of one path: a key holding a
/// dot is written in brackets.
fn name_claims(v: &Value, path: &str, errors: &mut Errors) -> NameClaims {
    let items = match v {
        Value::String(_) => return NameClaims::from(claim_path(v, path, errors)),
        Value::Array(items) if !items.is_empty() => items,
        Value::Array(_) => {
            errors.add(
                path,
                "list at least one claim path, such as `realm_access.roles`",
            );
            return NameClaims::new(vec![ClaimPath::empty()]);
        }
        _ => {
            errors.add(
                path,
                "a claim path such as `realm_access.roles`, or a list of them (their names are united)",
            );
            return NameClaims::new(vec![ClaimPath::empty()]);
        }
    };
    let mut paths: Vec<ClaimPath> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("{path}[{i}]");
        if !item.is_string() {
            errors.add(&at, "a claim path such as `realm_access.roles`");
            continue;
        }
        let p = claim_path(item, &at, errors);
        if p != ClaimPath::empty() && paths.contains(&p) {
            errors.add(&at, format!("`{}` is listed twice", p.as_str()));
            continue;
        }
        paths.push(p);
    }
    NameClaims::new(paths)
}

/// `token_from`: where the bearer token is read (default `Authorization: Bearer`).
fn token_from(
    raw: Option<Vec<RawTokenSource>>,
    path: &str,
    errors: &mut Errors,
) -> Vec<TokenSource> {
    match raw {
        None => vec![TokenSource::default_bearer()],
        Some(list) if list.is_empty() => {
            errors.add(
                &format!("{path}.token_from"),
                "list at least one place to read the token from",
            );
            Vec::new()
        }
        Some(list) => list
            .into_iter()
            .enumerate()
            .filter_map(|(i, s)| token_source(s, &format!("{path}.token_from[{i}]"), errors))
            .collect(),
    }
}

fn token_source(raw: RawTokenSource, path: &str, errors: &mut Errors) -> Option<TokenSource> {
    let set = [
        raw.header.is_some(),
        raw.cookie.is_some(),
        raw.query.is_some(),
    ];
    if set.iter().filter(|s| **s).count() != 1 {
        errors.add(
            path,
            "a token source has exactly one of `header`, `cookie`, `query`",
        );
        return None;
    }
    if raw.prefix.is_some() && raw.header.is_none() {
        errors.add(
            &format!("{path}.prefix"),
            "`prefix` goes with `header` only",
        );
        return None;
    }
    if let Some(h) = raw.header {
        match HeaderName::parse(&h) {
            Ok(name) => Some(TokenSource::Header {
                name,
                prefix: raw.prefix,
            }),
            Err(e) => {
                errors.add(&format!("{path}.header"), e);
                None
            }
        }
    } else if let Some(c) = raw.cookie {
        non_empty(c, &format!("{path}.cookie"), errors).map(TokenSource::Cookie)
    } else {
        non_empty(raw.query?, &format!("{path}.query"), errors).map(TokenSource::Query)
    }
}

fn non_empty(s: String, path: &str, errors: &mut Errors) -> Option<String> {
    if s.is_empty() {
        errors.add(path, "must not be empty");
        None
    } else {
        Some(s)
    }
}

/// `headers: {claim: header}`: claims passed upstream.
fn claim_headers(
    raw: Option<BTreeMap<String, String>>,
    path: &str,
    errors: &mut Errors,
) -> Vec<(ClaimPath, HeaderName)> {
    let mut out = Vec::new();
    for (claim, header) in raw.unwrap_or_default() {
        let p = format!("{path}.headers.{claim}");
        let cp = claim_path(&Value::String(claim.clone()), &p, errors);
        if let Some(h) = owned_header(errors, &p, &header) {
            out.push((cp, h));
        }
    }
    out
}

fn claim_path(v: &Value, path: &str, errors: &mut Errors) -> ClaimPath {
    let parsed = match v {
        Value::String(s) => ClaimPath::parse(s),
        Value::Array(items) => {
            let segs: Option<Vec<String>> = items
                .iter()
                .map(|i| i.as_str().map(str::to_owned))
                .collect();
            segs.ok_or_else(|| "a claim path list holds strings".to_string())
                .and_then(ClaimPath::from_segments)
        }
        _ => Err("a claim path is a dotted string or a list of names".to_string()),
    };
    parsed.unwrap_or_else(|e| {
        errors.add(path, e);
        ClaimPath::empty()
    })
}

fn check_url(url: &str, path: &str, errors: &mut Errors) -> Option<String> {
    if url.starts_with("https://") || url.starts_with("http://") {
        Some(url.to_string())
    } else {
        errors.add(path, format!("`{url}` is not an http(s) URL"));
        None
    }
}
