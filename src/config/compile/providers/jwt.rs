//! A `jwt` provider: issuer, audiences, key source, algorithms and refresh settings.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::{
    DEFAULT_MAX_TOKEN_BYTES, RawClaimMap, RawTokenSource, check_url, claim_headers, claim_map,
    token_from,
};
use crate::authn::alg::Alg;
use crate::authn::binding::{self, BindingSettings};
use crate::authn::jwks::{KeySet, KeySource};
use crate::authn::jwt::JwtSettings;
use crate::authn::token::TokenSource;
use crate::authn::typ::{TokenTypes, short_form};
use crate::config::{Dur, Errors, Sources};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJwt {
    issuer: String,
    audiences: Vec<String>,
    jwks_uri: Option<String>,
    jwks_file: Option<String>,
    jwks: Option<Value>,
    discovery: Option<bool>,
    algorithms: Option<Vec<String>>,
    leeway: Option<Dur>,
    refresh_interval: Option<Dur>,
    min_refetch_interval: Option<Dur>,
    timeout: Option<Dur>,
    ca_file: Option<String>,
    jwks_fallback_file: Option<String>,
    max_token_bytes: Option<usize>,
    claims: Option<RawClaimMap>,
    token_from: Option<Vec<RawTokenSource>>,
    headers: Option<BTreeMap<String, String>>,
    bound_tokens: Option<RawBoundTokens>,
    token_types: Option<Vec<String>>,
    decryption: Option<super::decryption::RawDecryption>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBoundTokens {
    #[serde(default)]
    unsafe_ignore_binding: bool,
    dpop_iat_window: Option<Dur>,
}

pub(super) fn compile_jwt(
    v: Value,
    path: &str,
    base: &Path,
    sources: &mut Sources,
    errors: &mut Errors,
) -> Option<JwtSettings> {
    let raw: RawJwt = errors.parse(path, v)?;
    let before = errors.count();
    // Where the keys were read from, as `/status` shows it.
    let jwks_file = raw.jwks_file.as_ref().map(|f| base.join(f));
    let jwks_fallback_file = raw.jwks_fallback_file.as_ref().map(|f| base.join(f));

    if raw.issuer.is_empty() {
        errors.add(&format!("{path}.issuer"), "the issuer must not be empty");
    }
    if raw.audiences.is_empty() || raw.audiences.iter().any(String::is_empty) {
        errors.add(
            &format!("{path}.audiences"),
            "list at least one audience: a token is accepted only when its `aud` names one",
        );
    }

    let given = [
        raw.jwks_uri.is_some(),
        raw.jwks_file.is_some(),
        raw.jwks.is_some(),
        raw.discovery == Some(true),
    ];
    let key_source = match given.iter().filter(|s| **s).count() {
        1 => {
            if let Some(file) = raw.jwks_file {
                let full = base.join(&file);
                match sources.read_to_string(&full) {
                    Ok(text) => keyset_from_text(&text, &format!("{path}.jwks_file"), errors)
                        .map(KeySource::Static),
                    Err(e) => {
                        errors.add(
                            &format!("{path}.jwks_file"),
                            format!("cannot read {}: {e}", full.display()),
                        );
                        None
                    }
                }
            } else if let Some(jwks) = raw.jwks {
                keyset_from_value(&jwks, &format!("{path}.jwks"), errors).map(KeySource::Static)
            } else if let Some(uri) = raw.jwks_uri {
                check_url(&uri, &format!("{path}.jwks_uri"), errors).map(KeySource::Remote)
            } else {
                let issuer = raw.issuer.trim_end_matches('/');
                check_url(&raw.issuer, &format!("{path}.issuer"), errors).map(|_| {
                    KeySource::Discovery(format!("{issuer}/.well-known/openid-configuration"))
                })
            }
        }
        n => {
            errors.add(
                path,
                format!(
                    "exactly one key source is needed (jwks_uri, jwks_file, jwks or discovery: true); found {n}"
                ),
            );
            None
        }
    };

    let algorithms = match raw.algorithms {
        None => Alg::ASYMMETRIC.to_vec(),
        Some(list) if list.is_empty() => {
            errors.add(&format!("{path}.algorithms"), "list at least one algorithm");
            Vec::new()
        }
        Some(list) => {
            let mut algs = Vec::new();
            for (i, a) in list.iter().enumerate() {
                match Alg::parse(a) {
                    Some(alg) => algs.push(alg),
                    None => errors.add(
                        &format!("{path}.algorithms[{i}]"),
                        format!(
                            "`{a}` is not an accepted algorithm ({}; `none` is never accepted)",
                            Alg::names()
                        ),
                    ),
                }
            }
            algs
        }
    };

    let token_types = token_types(raw.token_types, path, errors);
    let decryption = raw.decryption.map(|d| {
        super::decryption::compile_decryption(
            d,
            &format!("{path}.decryption"),
            base,
            sources,
            errors,
        )
    });

    let max_token_bytes = raw.max_token_bytes.unwrap_or(DEFAULT_MAX_TOKEN_BYTES);
    if max_token_bytes == 0 {
        errors.add(&format!("{path}.max_token_bytes"), "must be greater than 0");
    }

    let (roles_claim, scopes_claim) = claim_map(raw.claims, path, errors);
    let mut token_from = token_from(raw.token_from, path, errors);
    with_dpop_scheme(&mut token_from);
    let binding = bound_tokens(raw.bound_tokens, path, errors);
    let claim_headers = claim_headers(raw.headers, path, errors);

    let timeout = raw.timeout.map_or(Duration::from_secs(5), |d| d.0);
    if timeout.is_zero() {
        errors.add(&format!("{path}.timeout"), "must be greater than 0");
    }
    let refresh_interval = raw
        .refresh_interval
        .map_or(Duration::from_secs(600), |d| d.0);
    if refresh_interval < Duration::from_secs(1) {
        errors.add(&format!("{path}.refresh_interval"), "must be at least 1s");
    }
    // It bounds the fetches that unknown kids and `max-age=0` can cause: never zero.
    let min_refetch_interval = raw
        .min_refetch_interval
        .map_or(Duration::from_secs(30), |d| d.0);
    if min_refetch_interval < Duration::from_secs(1) {
        errors.add(
            &format!("{path}.min_refetch_interval"),
            "must be at least 1s (it bounds how often unknown kids make ward fetch keys)",
        );
    }

    let ca_file = raw.ca_file.map(|c| base.join(c));
    if let Some(ca) = &ca_file {
        if let Err(e) = std::fs::metadata(ca) {
            errors.add(
                &format!("{path}.ca_file"),
                format!("cannot read {}: {e}", ca.display()),
            );
        }
        if matches!(key_source, Some(KeySource::Static(_))) {
            errors.add(
                &format!("{path}.ca_file"),
                "`ca_file` applies to jwks_uri and discovery only",
            );
        }
    }

    // Keys for a cold start while the IdP is down: read and checked like `jwks_file`,
    // used only until the remote keys are fetched once.
    let jwks_fallback = raw.jwks_fallback_file.and_then(|file| {
        let here = format!("{path}.jwks_fallback_file");
        if matches!(key_source, Some(KeySource::Static(_))) {
            errors.add(
                &here,
                "`jwks_fallback_file` applies to jwks_uri and discovery only",
            );
            return None;
        }
        let full = base.join(&file);
        match sources.read_to_string(&full) {
            Ok(text) => keyset_from_text(&text, &here, errors),
            Err(e) => {
                errors.add(&here, format!("cannot read {}: {e}", full.display()));
                None
            }
        }
    });

    if errors.count() != before {
        return None;
    }
    Some(JwtSettings {
        issuer: raw.issuer.into(),
        audiences: raw.audiences,
        key_source: key_source?,
        algorithms,
        leeway: raw.leeway.map_or(Duration::from_secs(30), |d| d.0),
        refresh_interval,
        min_refetch_interval,
        timeout,
        ca_file,
        max_token_bytes,
        jwks_fallback,
        roles_claim,
        scopes_claim,
        token_from,
        claim_headers,
        binding,
        token_types,
        decryption: decryption.flatten(),
        jwks_file,
        jwks_fallback_file,
    })
}

fn bound_tokens(raw: Option<RawBoundTokens>, path: &str, errors: &mut Errors) -> BindingSettings {
    let Some(raw) = raw else {
        return BindingSettings::default();
    };
    let window = raw
        .dpop_iat_window
        .map_or(binding::DEFAULT_DPOP_IAT_WINDOW, |d| d.0);
    if window < Duration::from_secs(1) || window > Duration::from_secs(3600) {
        errors.add(
            &format!("{path}.bound_tokens.dpop_iat_window"),
            "must be from 1s to 1h (it bounds how long a DPoP proof is accepted and remembered)",
        );
    }
    BindingSettings {
        unsafe_ignore_binding: raw.unsafe_ignore_binding,
        dpop_iat_window: window,
    }
}

/// Where a provider reads `Bearer` tokens from the `authorization` header it also reads
/// `DPoP` ones (RFC 9449 §7.1): whether a token may come with that scheme is decided
/// once it is verified (only a DPoP-bound one may).
fn with_dpop_scheme(sources: &mut Vec<TokenSource>) {
    let at = sources.iter().position(|s| {
        matches!(s, TokenSource::Header { name, prefix: Some(p) }
            if name.as_str() == "authorization" && p.eq_ignore_ascii_case("bearer "))
    });
    if let Some(at) = at {
        let dpop = TokenSource::Header {
            name: crate::header::HeaderName::parse("authorization").expect("static header name"),
            prefix: Some("DPoP ".into()),
        };
        if !sources.contains(&dpop) {
            sources.insert(at + 1, dpop);
        }
    }
}

/// `token_types`: media type names (RFC 6838 restricted names, `+` suffix and all),
/// kept in their short form; empty lists, duplicates (after case folding and dropping
/// `application/`) and names that could never match are errors.
fn token_types(raw: Option<Vec<String>>, path: &str, errors: &mut Errors) -> TokenTypes {
    let Some(list) = raw else {
        return TokenTypes::Default;
    };
    if list.is_empty() {
        errors.add(
            &format!("{path}.token_types"),
            "list at least one type (e.g. [at+jwt]), or leave `token_types` out to accept any type but those of other uses",
        );
    }
    let mut seen: Vec<String> = Vec::new();
    for (i, t) in list.iter().enumerate() {
        let at = format!("{path}.token_types[{i}]");
        let short = short_form(t).to_ascii_lowercase();
        let name_char = |c: char| c.is_ascii_alphanumeric() || "!#$&-^_.+".contains(c);
        if short.is_empty() || !short.chars().all(name_char) {
            errors.add(
                &at,
                format!(
                    "`{}` is not a media type name such as at+jwt or JWT",
                    t.escape_debug()
                ),
            );
        } else if seen.contains(&short) {
            errors.add(&at, format!("`{t}` is listed twice (types compare case-insensitively, with or without `application/`)"));
        } else {
            seen.push(short);
        }
    }
    TokenTypes::Listed(seen)
}

fn keyset_from_text(text: &str, path: &str, errors: &mut Errors) -> Option<Arc<KeySet>> {
    match serde_json::from_str::<Value>(text) {
        Ok(v) => keyset_from_value(&v, path, errors),
        Err(e) => {
            errors.add(path, format!("the JWKS is not JSON: {e}"));
            None
        }
    }
}

fn keyset_from_value(v: &Value, path: &str, errors: &mut Errors) -> Option<Arc<KeySet>> {
    match KeySet::from_jwks(v) {
        Ok((set, _skipped)) if !set.is_empty() => Some(Arc::new(set)),
        Ok((_, skipped)) => {
            let why = skipped
                .first()
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            errors.add(path, format!("the JWKS holds no usable signing key{why}"));
            None
        }
        Err(e) => {
            errors.add(path, e.to_string());
            None
        }
    }
}
