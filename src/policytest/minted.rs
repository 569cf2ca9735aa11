//! `minted:` in a case: the purpose token an allow carries upstream (SPEC §8), read back
//! and compared claim by claim; [`read_minted`] reads it for `ward check` too.
//!
//! The token is verified as a service behind ward verifies it: with the public half of
//! the config's current signing key, the JWK `/.well-known/jwks.json` publishes, through
//! ward's own JWT verifier. Only claims are ever shown, never the token.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::authn::jwks::KeySet;
use crate::authn::jwt;
use crate::authz::path;
use crate::authz::route::RouteIndex;
use crate::config::{Config, ConfigError, Errors};
use crate::decision::{Decision, Verdict};
use crate::issuer::{MintSpec, Signing};
use crate::request::CheckInput;

use super::{Label, Request, Suite};

/// The claims ward sets anew on every token: a case may require them, not their value.
const VOLATILE: [&str; 3] = ["iat", "exp", "jti"];

/// The largest token read back; ward's own are far smaller.
const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// The purpose token a decision carries upstream, read back by [`read_minted`].
#[derive(Debug, Clone, PartialEq)]
pub struct MintedToken {
    /// The header it is set in: its route's `mint.header`.
    pub header: String,
    /// Its payload, verified.
    pub claims: Map<String, Value>,
}

/// A token in a route's mint header that the config's current signing key does not
/// verify: ward's keys and ward's tokens disagree.
#[derive(Debug, thiserror::Error)]
#[error("the token in {header} does not verify with signing key `{kid}`: {reason}")]
pub struct MintedError {
    header: String,
    kid: String,
    reason: String,
}

/// The token ward minted into the mint header of `decision`'s route, verified with the
/// current signing key of `config` (the config `decision` was made with) and decoded.
/// `Ok(None)` when the decision carries none: no route, a route without `mint:`, a
/// denial, or an allow without a subject to mint for.
pub fn read_minted(
    config: &Config,
    decision: &Decision,
) -> Result<Option<MintedToken>, MintedError> {
    let Some((spec, signing)) = mint_of(config, decision.route.as_deref()) else {
        return Ok(None);
    };
    match token_in(decision, spec) {
        Some(token) => read(signing, spec, token).map(Some),
        None => Ok(None),
    }
}

/// The `mint:` of the route named `route`, and the keys it signs with (without
/// `signing`, which a valid config cannot lack, nothing is minted).
fn mint_of<'c>(config: &'c Config, route: Option<&str>) -> Option<(&'c MintSpec, &'c Signing)> {
    let route = route?;
    let spec = config
        .routes
        .iter()
        .find(|r| &*r.name == route)
        .and_then(|r| r.mint.as_ref())?;
    Some((spec, config.signing.as_ref()?))
}

/// The value an allow sets in the mint header.
fn token_in<'d>(decision: &'d Decision, spec: &MintSpec) -> Option<&'d str> {
    match &decision.verdict {
        Verdict::Allow(m) => m
            .set
            .iter()
            .find(|(h, _)| *h == spec.header)
            .map(|(_, v)| v.as_str()),
        Verdict::Deny(_) => None,
    }
}

/// `token`'s claims, if the current signing key's published JWK verifies it.
fn read(signing: &Signing, spec: &MintSpec, token: &str) -> Result<MintedToken, MintedError> {
    let header = spec.header.to_string();
    let key = signing.keys.current();
    let fail = |reason: String| MintedError {
        header: header.clone(),
        kid: key.kid().to_owned(),
        reason,
    };
    // A JWK that did not parse leaves the set empty: then no token verifies.
    let published = json!({"keys": [key.public_jwk()]});
    let keys = KeySet::from_jwks(&published)
        .map(|(keys, _)| keys)
        .unwrap_or_default();
    let parsed = jwt::parse(token, MAX_TOKEN_BYTES).map_err(|e| fail(e.to_string()))?;
    parsed.signed_by(&keys).map_err(|e| fail(e.to_string()))?;
    Ok(MintedToken {
        header,
        claims: parsed.claims,
    })
}

// === the expectation ===

/// A case's `minted`, and its line for an error found once the config is known.
#[derive(Debug)]
pub(super) struct MintedCase {
    want: Want,
    line: Option<usize>,
}

#[derive(Debug)]
enum Want {
    /// `minted: none` (or `false`): the route's mint header carries no token.
    Nothing,
    /// A token that has every claim of `claims` with that value, every claim of
    /// `present` with any value, and none of `absent`.
    Token {
        claims: Map<String, Value>,
        present: Vec<String>,
        absent: Vec<String>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMinted {
    #[serde(default)]
    claims: Map<String, Value>,
    #[serde(default)]
    present: Vec<String>,
    #[serde(default)]
    absent: Vec<String>,
}

/// Reads `expect.minted` (at `path`) of a case that expects `decision`.
pub(super) fn compile(v: Value, path: &str, decision: Label, p: &mut Errors) -> Option<MintedCase> {
    let line = p.line_of(path);
    let want = match v {
        Value::Bool(false) => Want::Nothing,
        Value::String(s) if s == "none" => Want::Nothing,
        Value::Bool(true) => Want::Token {
            claims: Map::new(),
            present: Vec::new(),
            absent: Vec::new(),
        },
        v @ Value::Object(_) => {
            let raw: RawMinted = p.parse(path, v)?;
            let before = p.count();
            for name in raw.claims.keys() {
                if VOLATILE.contains(&name.as_str()) {
                    p.add(
                        &format!("{path}.claims.{name}"),
                        format!("`{name}` is new on every token: list it under `present`"),
                    );
                }
            }
            for (i, name) in raw.absent.iter().enumerate() {
                if raw.claims.contains_key(name) || raw.present.contains(name) {
                    p.add(
                        &format!("{path}.absent[{i}]"),
                        format!("`{name}` is also expected in the token"),
                    );
                }
            }
            if p.count() != before {
                return None;
            }
            Want::Token {
                claims: raw.claims,
                present: raw.present,
                absent: raw.absent,
            }
        }
        _ => {
            p.add(
                path,
                "`none` (no token), or a mapping with `claims`, `present` and `absent` (a token)",
            );
            return None;
        }
    };
    if matches!(want, Want::Token { .. }) && decision != Label::Allow {
        p.add(
            path,
            format!(
                "a token is minted only on an allow, this case expects `{}`: write `minted: none`",
                decision.as_str()
            ),
        );
        return None;
    }
    Some(MintedCase { want, line })
}

impl Suite {
    /// The cases whose `minted` cannot be checked under `config`: their request goes to
    /// no route, or to a route without `mint:`. Routes are picked as a check picks them.
    pub(super) fn check_minting(&self, config: &Config) -> Vec<ConfigError> {
        let index = RouteIndex::new(&config.routes);
        let mut errors = Vec::new();
        for (i, case) in self.cases.iter().enumerate() {
            let Some(m) = &case.expect.minted else {
                continue;
            };
            let message = match route_of(config, &index, &case.request) {
                Some(r) if r.mint.is_some() => continue,
                Some(r) => format!(
                    "this request goes to route `{}`, which has no `mint:`: nothing to compare",
                    r.name
                ),
                None => "no route matches this request: nothing is minted".to_owned(),
            };
            errors.push(ConfigError {
                path: format!("cases[{i}].expect.minted"),
                line: m.line,
                message,
            });
        }
        errors
    }
}

/// The route a check of `r` selects.
fn route_of<'c>(
    config: &'c Config,
    index: &RouteIndex,
    r: &Request,
) -> Option<&'c crate::authz::route::Route> {
    let segments = path::normalize(&r.path).ok()?;
    let input = CheckInput::from_pairs(&r.method, &r.host, &r.path, &[], &r.context);
    index
        .select(&config.routes, &input, &segments)
        .map(|(_, route, _)| route)
}

impl MintedCase {
    /// Every way the mint header of `d` differs from what the case expects: one line a
    /// claim, with the claim's name and both values, never the token.
    pub(super) fn compare(&self, config: &Config, d: &Decision) -> Vec<String> {
        let Some((spec, signing)) = mint_of(config, d.route.as_deref()) else {
            return vec!["minted: the decision's route mints nothing".to_owned()];
        };
        let header = &spec.header;
        let (claims, present, absent, token) = match (&self.want, token_in(d, spec)) {
            (Want::Nothing, None) => return Vec::new(),
            (Want::Nothing, Some(_)) => {
                return vec![format!("minted: expected none, got a token in {header}")];
            }
            (Want::Token { .. }, None) => {
                return vec![format!("minted: expected a token in {header}, got none")];
            }
            (
                Want::Token {
                    claims,
                    present,
                    absent,
                },
                Some(token),
            ) => (claims, present, absent, token),
        };
        let got = match read(signing, spec, token) {
            Ok(m) => m.claims,
            Err(e) => return vec![format!("minted: {e}")],
        };
        let mut diff = Vec::new();
        for (name, value) in claims {
            match got.get(name) {
                Some(v) if v == value => {}
                Some(v) => diff.push(format!("minted.claims.{name}: expected {value}, got {v}")),
                None => diff.push(format!(
                    "minted.claims.{name}: expected {value}, got absent"
                )),
            }
        }
        for name in present {
            if !got.contains_key(name) {
                diff.push(format!(
                    "minted.claims.{name}: expected present, got absent"
                ));
            }
        }
        for name in absent {
            if let Some(v) = got.get(name) {
                diff.push(format!("minted.claims.{name}: expected absent, got {v}"));
            }
        }
        diff
    }
}

/// The mint header of `route`, if it mints: its value is never shown.
pub(super) fn header_of(config: &Config, route: Option<&str>) -> Option<String> {
    mint_of(config, route).map(|(m, _)| m.header.to_string())
}

#[cfg(test)]
mod tests;
