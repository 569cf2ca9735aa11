//! `signing`, a route's `mint` and `exchange`: ward as a local issuer (SPEC §8).
//!
//! Keys are read here, once per load, so a key file that does not hold a key for its
//! algorithm is a config error with its path and line, and a changed key file is a
//! changed config (the watcher reloads it).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::conditions::{self, CompileCtx};
use super::headers::IdentityHeaders;
use crate::authn::ProviderSettings;
use crate::authn::token::TokenSource;
use crate::config::{Dur, Errors, Sources};
use crate::header::{self, HeaderName};
use crate::issuer::keys::{SigningAlg, SigningKey, SigningKeys};
use crate::issuer::mint::{Grant, RESERVED_CLAIMS};
use crate::issuer::{ExchangeSpec, MintSpec, Signing};

/// The longest lifetime a minted token may have: purpose tokens are short-lived.
const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSigning {
    issuer: String,
    keys: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    kid: String,
    alg: String,
    key_file: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMint {
    audience: String,
    ttl: Dur,
    header: String,
    #[serde(default)]
    claims: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExchange {
    name: String,
    audience: String,
    providers: Vec<String>,
    require: Option<Value>,
    ttl: Dur,
    #[serde(default)]
    claims: Vec<String>,
}

pub(super) fn compile_signing(
    v: Value,
    base: &Path,
    sources: &mut Sources,
    errors: &mut Errors,
) -> Option<Signing> {
    let raw: RawSigning = errors.parse("signing", v)?;
    let before = errors.count();
    let issuer = raw.issuer.as_str();
    if !(issuer.starts_with("https://") || issuer.starts_with("http://"))
        || issuer.contains(['?', '#'])
    {
        errors.add(
            "signing.issuer",
            format!("`{}` is not an http(s) URL without query or fragment: it is the `iss` of every token and where `/.well-known/openid-configuration` is found", raw.issuer),
        );
    }
    if raw.keys.is_empty() {
        errors.add("signing.keys", "list at least one key: the first signs");
    }
    let mut keys = Vec::new();
    let mut kids: HashMap<String, usize> = HashMap::new();
    for (i, v) in raw.keys.into_iter().enumerate() {
        let path = format!("signing.keys[{i}]");
        let Some(k) = errors.parse::<RawKey>(&path, v) else {
            continue;
        };
        if k.kid.is_empty() || !k.kid.bytes().all(|b| b.is_ascii_graphic()) {
            errors.add(&format!("{path}.kid"), "a non-empty kid of visible ASCII");
        } else if let Some(prev) = kids.insert(k.kid.clone(), i) {
            errors.add(
                &format!("{path}.kid"),
                format!("kid `{}` is already used by signing.keys[{prev}]", k.kid),
            );
        }
        let Some(alg) = SigningAlg::parse(&k.alg) else {
            errors.add(
                &format!("{path}.alg"),
                format!("`{}` is not one of {}", k.alg, SigningAlg::NAMES),
            );
            continue;
        };
        let key = super::read_key_file(sources, base, &k.key_file, &path, errors, |pem| {
            SigningKey::from_pem(&k.kid, alg, pem)
        });
        keys.extend(key);
    }
    if errors.count() != before {
        return None;
    }
    Some(Signing {
        issuer: issuer.into(),
        keys: Arc::new(SigningKeys::new(keys)?),
    })
}

/// A route's `mint:` (whether `signing` exists is checked once the whole file is read).
pub(super) fn compile_mint(
    v: Value,
    path: &str,
    route: &str,
    errors: &mut Errors,
) -> Option<MintSpec> {
    let raw: RawMint = errors.parse(path, v)?;
    let before = errors.count();
    let header = match HeaderName::parse(&raw.header) {
        Ok(h) if header::is_reserved(h.as_str()) => {
            errors.add(
                &format!("{path}.header"),
                format!("`{}` cannot carry a minted token: Envoy or the credential itself owns it; name a header of its own, such as x-auth-token", raw.header),
            );
            None
        }
        Ok(h) => Some(h),
        Err(e) => {
            errors.add(&format!("{path}.header"), e);
            None
        }
    };
    let grant = grant(route, raw.audience, raw.ttl, raw.claims, path, errors);
    if errors.count() != before {
        return None;
    }
    Some(MintSpec {
        grant: grant?,
        header: header?,
    })
}

/// Every `exchange:` entry; `providers` maps a provider name to its place.
pub(super) fn compile_exchanges(
    list: Vec<Value>,
    providers: &HashMap<String, usize>,
    errors: &mut Errors,
) -> Vec<ExchangeSpec> {
    let mut out: Vec<ExchangeSpec> = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut audiences: HashMap<String, usize> = HashMap::new();
    for (i, v) in list.into_iter().enumerate() {
        let path = format!("exchange[{i}]");
        let Some(raw) = errors.parse::<RawExchange>(&path, v) else {
            continue;
        };
        let before = errors.count();
        if let Some(prev) = names.insert(raw.name.clone(), i) {
            errors.add(
                &format!("{path}.name"),
                format!("duplicate exchange name `{}` (exchange[{prev}])", raw.name),
            );
        }
        if let Some(prev) = audiences.insert(raw.audience.clone(), i) {
            errors.add(
                &format!("{path}.audience"),
                format!("exchange[{prev}] already answers for audience `{}`: a request names one audience, so one exchange decides it", raw.audience),
            );
        }
        if raw.providers.is_empty() {
            errors.add(
                &format!("{path}.providers"),
                "list at least one provider: they verify the subject token",
            );
        }
        let mut idx = Vec::new();
        for (j, name) in raw.providers.iter().enumerate() {
            match providers.get(name) {
                Some(&p) => idx.push(p),
                None => errors.add(
                    &format!("{path}.providers[{j}]"),
                    format!("no provider is named `{name}`"),
                ),
            }
        }
        let require = raw.require.and_then(|c| {
            conditions::compile(
                &c,
                &format!("{path}.require"),
                &CompileCtx {
                    params: &[],
                    providers: &raw.providers,
                },
                errors,
            )
        });
        let grant = grant(&raw.name, raw.audience, raw.ttl, raw.claims, &path, errors);
        if errors.count() != before {
            continue;
        }
        if let Some(grant) = grant {
            out.push(ExchangeSpec {
                grant,
                providers: idx,
                require,
            });
        }
    }
    out
}

fn grant(
    purpose: &str,
    audience: String,
    ttl: Dur,
    claims: Vec<String>,
    path: &str,
    errors: &mut Errors,
) -> Option<Grant> {
    let before = errors.count();
    if audience.is_empty() || audience.chars().any(char::is_control) {
        errors.add(
            &format!("{path}.audience"),
            "a non-empty audience: the token's purpose",
        );
    }
    if ttl.0.is_zero() || ttl.0 > MAX_TTL || ttl.0.subsec_nanos() != 0 {
        errors.add(
            &format!("{path}.ttl"),
            "whole seconds from 1s to 24h: a purpose token is short-lived",
        );
    }
    for (i, c) in claims.iter().enumerate() {
        if RESERVED_CLAIMS.contains(&c.as_str()) {
            errors.add(
                &format!("{path}.claims[{i}]"),
                format!(
                    "`{c}` is set by ward on every token and cannot be copied from the credential"
                ),
            );
        } else if c.is_empty() {
            errors.add(&format!("{path}.claims[{i}]"), "a claim name");
        }
    }
    if errors.count() != before {
        return None;
    }
    let mut names: Vec<Arc<str>> = Vec::new();
    for c in claims {
        if !names.iter().any(|n| **n == *c) {
            names.push(c.into());
        }
    }
    Some(Grant {
        purpose: purpose.into(),
        audience: audience.into(),
        ttl_secs: ttl.0.as_secs(),
        claims: names.into(),
    })
}

/// The rules that span sections: `mint` and `exchange` need `signing`; a mint header is
/// owned, so it may be no identity or claim header and no provider may read a
/// credential from it.
pub(super) fn check_issuing(
    signing: bool,
    routes: &[(String, Option<&MintSpec>)],
    exchanges: usize,
    identity: Option<&IdentityHeaders>,
    providers: &[Arc<ProviderSettings>],
    errors: &mut Errors,
) {
    if !signing && exchanges > 0 {
        errors.add(
            "exchange",
            "`exchange` needs `signing`: ward signs the tokens it issues with its own keys",
        );
    }
    for (path, mint) in routes {
        let Some(mint) = mint else { continue };
        let at = format!("{path}.mint");
        if !signing {
            errors.add(
                &at,
                "`mint` needs `signing`: ward signs the tokens it mints with its own keys",
            );
        }
        let h = &mint.header;
        let taken = identity.is_some_and(|ih| {
            [&ih.subject, &ih.issuer, &ih.provider, &ih.roles, &ih.scopes].contains(&h)
        }) || providers
            .iter()
            .any(|p| p.claim_headers().iter().any(|(_, c)| c == h));
        if taken {
            errors.add(
                &format!("{at}.header"),
                format!("`{h}` already carries an identity header: a minted token needs a header of its own"),
            );
        }
        for (i, p) in providers.iter().enumerate() {
            let reads = p
                .sources()
                .iter()
                .any(|s| matches!(s, TokenSource::Header { name, .. } if name == h));
            if reads {
                errors.add(
                    &format!("{at}.header"),
                    format!("provider `{}` (providers[{i}]) reads its credential from `{h}`, which ward owns and strips from every request once a route mints into it", p.name),
                );
            }
        }
    }
}
