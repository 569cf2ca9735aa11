//! Claim paths and the verified identity built from a credential.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::authn::TokenError;
use crate::header::HeaderName;

/// A path into the claims object: `realm_access.roles`; a name holding a dot in
/// brackets, `resource_access["orders.api"].roles`; a namespaced claim (Auth0's
/// `https://example.com/roles`) as one name. Conditions also take an explicit list of
/// segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPath {
    segments: Vec<String>,
    display: String,
}

impl ClaimPath {
    pub fn parse(dotted: &str) -> Result<Self, String> {
        // A namespaced claim (a URL, as Auth0 and OIDC recommend) is one name, dots and all.
        if dotted.starts_with("https://") || dotted.starts_with("http://") {
            return Self::from_segments(vec![dotted.to_owned()]);
        }
        let segments = split_path(dotted).ok_or_else(|| {
            let hint = if dotted.contains('[') {
                " (a name holding a dot is written in brackets: `resource_access[\"orders.api\"].roles`)"
            } else {
                ""
            };
            format!("`{dotted}` is not a claim path like `realm_access.roles`{hint}")
        })?;
        Self::from_segments(segments)
    }

    pub fn from_segments(segments: Vec<String>) -> Result<Self, String> {
        if segments.is_empty() || segments.iter().any(String::is_empty) {
            return Err("a claim path has no empty segments".into());
        }
        // Written back as `parse` reads it: a name holding a dot in brackets, but a lone
        // namespaced claim as it is.
        let display = match segments.as_slice() {
            [url] if url.starts_with("https://") || url.starts_with("http://") => url.clone(),
            _ => {
                let mut out = String::new();
                for s in &segments {
                    if s.contains('.') {
                        out.push_str(&format!("[\"{s}\"]"));
                    } else {
                        if !out.is_empty() {
                            out.push('.');
                        }
                        out.push_str(s);
                    }
                }
                out
            }
        };
        Ok(Self { segments, display })
    }

    /// A placeholder used only while a config with errors is being compiled.
    pub(crate) fn empty() -> Self {
        Self {
            segments: vec![String::new()],
            display: String::new(),
        }
    }

    /// The value at this path in a claims object (a token's payload, an introspection
    /// answer).
    pub fn lookup_in<'v>(&self, claims: &'v Map<String, Value>) -> Option<&'v Value> {
        self.descend(|name| claims.get(name))
    }

    /// The value at this path in the claims an identity kept.
    pub fn lookup_claims<'v>(&self, claims: &'v Claims) -> Option<&'v Value> {
        self.descend(|name| claims.get(name))
    }

    /// Follows the path from the top-level member that `top` finds by name.
    fn descend<'v>(&self, top: impl FnOnce(&str) -> Option<&'v Value>) -> Option<&'v Value> {
        let (first, rest) = self.segments.split_first()?;
        rest.iter()
            .try_fold(top(first)?, |v, seg| v.as_object()?.get(seg))
    }

    pub fn as_str(&self) -> &str {
        &self.display
    }

    /// Whether this is the registered claim `aud` itself (RFC 7519 §4.1.3: a string or
    /// an array of strings).
    pub fn is_audience(&self) -> bool {
        matches!(self.segments.as_slice(), [one] if one == "aud")
    }

    /// The name of the top-level claim the path starts at.
    pub fn top_level(&self) -> &str {
        self.segments.first().map_or("", String::as_str)
    }
}

/// The segments of a dotted path, where `["…"]` holds a name with dots in it
/// (`a["b.c"].d` is `a`, `b.c`, `d`). `None` for an empty segment, an unclosed or empty
/// bracket, a `[` that does not open `["`, or anything but `.` or `[` after a bracket.
fn split_path(path: &str) -> Option<Vec<String>> {
    let mut segments = Vec::new();
    let mut rest = path;
    loop {
        if let Some(inner) = rest.strip_prefix("[\"") {
            let end = inner.find('"')?;
            let after = inner[end..].strip_prefix("\"]")?;
            segments.push(inner[..end].to_owned());
            rest = after;
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            segments.push(rest[..end].to_owned());
            rest = &rest[end..];
        }
        if segments.last().is_some_and(String::is_empty) {
            return None;
        }
        if rest.is_empty() {
            return Some(segments);
        }
        match rest.strip_prefix('.') {
            // After a dot, a plain name: `a.["b"]` is not a path.
            Some(next) if !next.starts_with('[') => rest = next,
            Some(_) => return None,
            None if rest.starts_with("[\"") => {}
            None => return None,
        }
    }
}

/// Where a provider reads roles or scopes (SPEC §11): one claim path, or several whose
/// names are united, each listed once in the order first seen (Keycloak's realm and
/// client roles, Okta's `groups` and a custom claim).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameClaims(Box<[ClaimPath]>);

impl NameClaims {
    /// Reads from the given paths; at least one (the config checks it).
    pub fn new(paths: Vec<ClaimPath>) -> Self {
        Self(paths.into())
    }

    /// The names of `list` in `claims`, as [`names`] reads one claim; refused when a
    /// member of any of the claims is not representable.
    pub fn read(&self, claims: &Map<String, Value>, list: List) -> Result<Names, TokenError> {
        if let [one] = &*self.0 {
            return names(one.lookup_in(claims), list);
        }
        let mut seen = std::collections::HashSet::new();
        let mut all = Vec::new();
        for path in &self.0 {
            for name in members(path.lookup_in(claims), list)? {
                if seen.insert(name) {
                    all.push(name);
                }
            }
        }
        Ok(all.into_iter().collect())
    }
}

impl From<ClaimPath> for NameClaims {
    fn from(path: ClaimPath) -> Self {
        Self(Box::new([path]))
    }
}

/// The claims an identity keeps, by top-level name: a sorted slice, one allocation (a
/// JSON object map would cost a whole B-tree node per cached identity).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Claims(Box<[(Arc<str>, Value)]>);

impl Claims {
    /// Keeps only the members of `claims` named in `kept` (sorted, deduplicated), so a
    /// cached identity does not hold a copy of every claim of its token.
    /// The names are the engine's, shared by every identity.
    pub fn kept(mut claims: Map<String, Value>, kept: &[Arc<str>]) -> Self {
        let members = kept
            .iter()
            .filter_map(|name| Some((name.clone(), claims.remove(&**name)?)))
            .collect();
        Self(members)
    }

    /// The top-level claim `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        let i = self.0.binary_search_by(|(n, _)| (**n).cmp(name)).ok()?;
        Some(&self.0[i].1)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(n, _)| &**n)
    }
}

/// Every member of a JSON object (anything else: none).
impl From<Value> for Claims {
    fn from(v: Value) -> Self {
        match v {
            // serde_json's map iterates in key order: already sorted.
            Value::Object(m) => Self(m.into_iter().map(|(k, v)| (k.into(), v)).collect()),
            _ => Self::default(),
        }
    }
}

/// A list claim read as names: a JSON array of strings, or a space-separated string (the
/// `scope` convention). Anything else yields nothing: never coerced. Names are taken as
/// they are: [`names`] also refuses the ones that could not reach the upstream as written.
#[cfg(test)]
pub fn string_list(v: Option<&Value>) -> Names {
    match v {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(s)) => s.split(' ').collect(),
        _ => Names::default(),
    }
}

// === representable identities ===

/// Whether `name` reaches the upstream exactly as ward judged it (SPEC §3,
/// "representable"): not empty, no leading or trailing whitespace, no control character,
/// and no character `is_separator` says splits the list it is a member of (`,` in roles,
/// whitespace in scopes; `|_| false` for a value of its own, such as a subject).
///
/// HTTP parsers trim header values and split lists: a subject `" admin"` or a role
/// `"viewer,admin"` would read as `admin` upstream, after ward refused `admin` rights.
/// Every provider kind that takes a subject, roles or scopes from claims (JWT,
/// introspection) refuses the credential when one is not representable ([`subject`],
/// [`names`]); a claim header that is not is removed instead ([`claim_headers`]).
pub fn representable(name: &str, is_separator: impl Fn(char) -> bool) -> bool {
    crate::header::is_exact_value(name) && !name.chars().any(is_separator)
}

/// A list of names ward compares in rules and emits joined in one header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    /// `x-auth-roles`, comma-joined.
    Roles,
    /// `x-auth-scopes`, space-joined (RFC 6749 §3.3).
    Scopes,
}

impl List {
    /// Whether `c` splits a member of this list in two upstream. Any Unicode whitespace
    /// counts for scopes: some upstreams split on more than the space ward joins with.
    pub fn is_separator(self, c: char) -> bool {
        match self {
            List::Roles => c == ',',
            List::Scopes => c.is_whitespace(),
        }
    }

    fn part(self) -> Part {
        match self {
            List::Roles => Part::Role,
            List::Scopes => Part::Scope,
        }
    }
}

/// What a refusal of an identity is about, for its `detail`: it names the claim (the
/// roles or scopes claim by its role, whatever path the provider reads it from), never
/// the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// A claim giving one value, by its name: `sub`.
    Claim(&'static str),
    /// A member of the roles claim.
    Role,
    /// A member of the scopes claim.
    Scope,
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Part::Claim(name) => write!(f, "claim `{name}`"),
            Part::Role => f.write_str("the roles claim"),
            Part::Scope => f.write_str("the scopes claim"),
        }
    }
}

/// The subject in claim `name` of a verified credential: none when the claim is absent;
/// refused when it is not a string ([`TokenError::ClaimType`]) or not [`representable`].
pub fn subject(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<Box<str>>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) if representable(s, |_| false) => Ok(Some(s.as_str().into())),
        Some(Value::String(_)) => Err(TokenError::Unrepresentable(Part::Claim(name))),
        Some(_) => Err(TokenError::ClaimType(name)),
    }
}

/// The roles or scopes of a verified credential read as [`string_list`] does (empty
/// members of a space-separated string are no names), refused when one of them is not
/// [`representable`] as a member of `list`: ward would compare it in rules and emit it.
pub fn names(v: Option<&Value>, list: List) -> Result<Names, TokenError> {
    Ok(members(v, list)?.into_iter().collect())
}

/// The members of one roles or scopes claim, as [`names`] reads them.
fn members(v: Option<&Value>, list: List) -> Result<Vec<&str>, TokenError> {
    let members: Vec<&str> = match v {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(s)) => s.split(' ').collect(),
        _ => return Ok(Vec::new()),
    };
    let bad = |n: &&str| !n.is_empty() && !representable(n, |c| list.is_separator(c));
    if members.iter().any(bad) {
        return Err(TokenError::Unrepresentable(list.part()));
    }
    Ok(members)
}

/// The RFC 7519 §4.1 types of the registered claims, which a verified credential must
/// have (SPEC §3): `iss`, `sub` and `jti` strings, `aud` a string or an array of strings,
/// `exp`, `nbf` and `iat` numbers. Absent claims are not checked here. The same fields
/// of an introspection answer (RFC 7662 §2.2) have the same types.
pub fn registered_types(claims: &Map<String, Value>) -> Result<(), TokenError> {
    let wrong = |name: &'static str, ok: fn(&Value) -> bool| match claims.get(name) {
        Some(v) if !ok(v) => Err(TokenError::ClaimType(name)),
        _ => Ok(()),
    };
    let audience = |v: &Value| match v {
        Value::String(_) => true,
        Value::Array(items) => items.iter().all(Value::is_string),
        _ => false,
    };
    wrong("iss", Value::is_string)?;
    wrong("sub", Value::is_string)?;
    wrong("aud", audience)?;
    wrong("exp", Value::is_number)?;
    wrong("nbf", Value::is_number)?;
    wrong("iat", Value::is_number)?;
    wrong("jti", Value::is_string)
}

/// A short list of names (roles, scopes) in one allocation: the names joined by NUL.
///
/// Every cached identity holds two of these, so their size is the cache's size: one
/// block instead of a vector and a string per name. A name that is empty or holds a
/// control character is not kept: it could never be emitted in a header, and a rule
/// naming it could not be written in YAML without escapes anyway.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Names(Box<str>);

impl Names {
    /// The names, in the order the credential listed them.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.split('\0').filter(|n| !n.is_empty())
    }

    /// Whether `name` is one of the names (exact, case-sensitive).
    pub fn contains(&self, name: &str) -> bool {
        self.iter().any(|n| n == name)
    }

    /// Whether there are no names at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The names joined by `sep`, skipping any that contain it (a role holding the list
    /// separator would read as two roles upstream).
    pub fn join(&self, sep: char) -> String {
        let mut out = String::with_capacity(self.0.len());
        for n in self.iter().filter(|n| !n.contains(sep)) {
            if !out.is_empty() {
                out.push(sep);
            }
            out.push_str(n);
        }
        out
    }
}

impl<'a> FromIterator<&'a str> for Names {
    fn from_iter<I: IntoIterator<Item = &'a str>>(names: I) -> Self {
        let mut joined = String::new();
        for n in names {
            if n.is_empty() || n.chars().any(char::is_control) {
                continue;
            }
            if !joined.is_empty() {
                joined.push('\0');
            }
            joined.push_str(n);
        }
        Self(joined.into_boxed_str())
    }
}

impl<const N: usize> From<[&str; N]> for Names {
    fn from(names: [&str; N]) -> Self {
        names.into_iter().collect()
    }
}

impl std::fmt::Debug for Names {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl serde::Serialize for Names {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

/// Who the caller is, once a credential has been verified. Cached and shared.
///
/// A [`Decision`](crate::Decision) carries the identity it was made with; the tower
/// layer puts it in the request extensions (as `Arc<Identity>`) of an allowed request.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// The name of the provider that verified the credential.
    pub provider: Arc<str>,
    /// Who the credential is for (`sub`, an API key's name, a peer's SPIFFE ID), if it
    /// names anyone.
    pub subject: Option<Box<str>>,
    /// Who issued the credential (`iss`), if it says. Shared with the provider's
    /// settings when it is the configured issuer.
    pub issuer: Option<Arc<str>>,
    /// The roles the credential grants (read from the provider's `claims.roles`).
    pub roles: Names,
    /// The OAuth scopes the credential grants (read from the provider's `claims.scopes`).
    pub scopes: Names,
    /// The claims that `claim:` conditions read (the engine keeps only those).
    pub claims: Claims,
    /// Configured claim headers with their values, already checked safe to emit.
    pub claim_headers: Box<[(HeaderName, Box<str>)]>,
    /// When this identity stops being valid (unix seconds), if it expires.
    pub expires_at: Option<u64>,
}

/// Whether an `aud` claim (a string or an array of strings) names one of `accepted`.
pub fn audience_ok(aud: Option<&Value>, accepted: &[String]) -> bool {
    let named = |a: &str| accepted.iter().any(|w| w == a);
    match aud {
        Some(Value::String(a)) => named(a),
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str().is_some_and(named)),
        _ => false,
    }
}

/// The configured claim headers whose value reaches the upstream as written (see
/// [`header_value`]), in a slice of their exact length (a collected `Vec` would keep room for four in every cached
/// identity).
pub fn claim_headers(
    claims: &Map<String, Value>,
    wanted: &[(ClaimPath, HeaderName)],
) -> Box<[(HeaderName, Box<str>)]> {
    wanted
        .iter()
        .filter_map(|(path, h)| {
            let v = header_value(path.lookup_in(claims)?)?;
            Some((h.clone(), v.into_boxed_str()))
        })
        .collect()
}

/// Renders a claim as a header value: strings as they are, numbers and booleans as JSON,
/// arrays of strings comma-joined; objects, nulls and mixed arrays are not emitted, nor is
/// a string (or array member) that is not [`representable`] (as a member of a
/// comma-separated list, for an array), nor an empty array.
pub fn header_value(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => representable(s, |_| false).then(|| s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(items) if !items.is_empty() => {
            let strs: Option<Vec<&str>> = items
                .iter()
                .map(|i| i.as_str().filter(|s| representable(s, |c| c == ',')))
                .collect();
            strs.map(|s| s.join(","))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
