//! Claim paths and the verified identity built from a credential.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::authn::TokenError;
use crate::header::HeaderName;

/// A path into the claims object: `realm_access.roles` or, for names holding dots
/// (Auth0's `https://example.com/roles`), an explicit list of segments.
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
        Self::from_segments(dotted.split('.').map(str::to_owned).collect())
            .map_err(|_| format!("`{dotted}` is not a claim path like `realm_access.roles`"))
    }

    pub fn from_segments(segments: Vec<String>) -> Result<Self, String> {
        if segments.is_empty() || segments.iter().any(String::is_empty) {
            return Err("a claim path has no empty segments".into());
        }
        let display = segments.join(".");
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

    /// The name of the top-level claim the path starts at.
    pub fn top_level(&self) -> &str {
        self.segments.first().map_or("", String::as_str)
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
    let members: Vec<&str> = match v {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(s)) => s.split(' ').collect(),
        _ => return Ok(Names::default()),
    };
    let bad = |n: &&str| !n.is_empty() && !representable(n, |c| list.is_separator(c));
    if members.iter().any(bad) {
        return Err(TokenError::Unrepresentable(list.part()));
    }
    Ok(members.into_iter().collect())
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
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.split('\0').filter(|n| !n.is_empty())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.iter().any(|n| n == name)
    }

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
#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub provider: Arc<str>,
    pub subject: Option<Box<str>>,
    /// Shared with the provider's settings when it is the configured issuer.
    pub issuer: Option<Arc<str>>,
    pub roles: Names,
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
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lookups_follow_dots_and_explicit_segments() {
        let claims = json!({"realm_access": {"roles": ["a"]}, "https://x.io/roles": ["b"]});
        let claims = claims.as_object().unwrap();
        let p = ClaimPath::parse("realm_access.roles").unwrap();
        assert_eq!(p.lookup_in(claims), Some(&json!(["a"])));
        let p = ClaimPath::from_segments(vec!["https://x.io/roles".into()]).unwrap();
        assert_eq!(p.lookup_in(claims), Some(&json!(["b"])));
        assert_eq!(
            ClaimPath::parse("realm_access.roles.x")
                .unwrap()
                .lookup_in(claims),
            None
        );
        assert!(ClaimPath::parse("a..b").is_err());
        // A namespaced claim written as a URL is one name, dots included.
        let p = ClaimPath::parse("https://x.io/roles").unwrap();
        assert_eq!(p.lookup_in(claims), Some(&json!(["b"])));
        assert!(ClaimPath::parse("").is_err());
    }

    #[test]
    fn identities_keep_only_the_named_claims() {
        let Value::Object(all) = json!({"b": 1, "a": {"x": [2]}, "c": "3"}) else {
            unreachable!()
        };
        let kept = Claims::kept(all, &["a".into(), "c".into(), "z".into()]);
        assert_eq!(kept.names().collect::<Vec<_>>(), ["a", "c"]);
        assert_eq!(kept.get("c"), Some(&json!("3")));
        assert_eq!(kept.get("b"), None, "not named: not kept");
        let p = ClaimPath::parse("a.x").unwrap();
        assert_eq!(p.lookup_claims(&kept), Some(&json!([2])));
        assert_eq!(
            Claims::from(json!(["not", "an", "object"])),
            Claims::default()
        );
        let from = Claims::from(json!({"z": 1, "m": 2, "a": 3}));
        assert_eq!(from.names().collect::<Vec<_>>(), ["a", "m", "z"]);
        assert_eq!(from.get("m"), Some(&json!(2)));
    }

    #[test]
    fn string_lists_never_coerce() {
        assert_eq!(
            string_list(Some(&json!("a b  c"))),
            Names::from(["a", "b", "c"])
        );
        assert_eq!(
            string_list(Some(&json!(["a", 1, "b"]))),
            Names::from(["a", "b"])
        );
        assert!(string_list(Some(&json!({"a": 1}))).is_empty());
        assert!(string_list(Some(&json!(42))).is_empty());
        assert!(string_list(None).is_empty());
    }

    #[test]
    fn names_keep_only_names_that_can_be_matched_and_emitted() {
        let n = string_list(Some(&json!([
            "admin",
            "",
            "a\u{0}b",
            "line\nbreak",
            "ünï",
            "x,y"
        ])));
        assert_eq!(n.iter().collect::<Vec<_>>(), ["admin", "ünï", "x,y"]);
        assert!(n.contains("admin") && n.contains("x,y"));
        assert!(!n.contains("a") && !n.contains("") && !n.contains("a\u{0}b"));
        // The header forms skip a name holding their separator.
        assert_eq!(n.join(','), "admin,ünï");
        assert_eq!(Names::from(["a b", "c"]).join(' '), "c");
        assert_eq!(Names::from(["", "\t"]), Names::default());
        assert!(Names::default().iter().next().is_none());
        assert_eq!(format!("{n:?}"), r#"["admin", "ünï", "x,y"]"#);
        assert_eq!(json!(n), json!(["admin", "ünï", "x,y"]));
    }

    #[test]
    fn header_values_by_type() {
        assert_eq!(header_value(&json!("x")).as_deref(), Some("x"));
        assert_eq!(header_value(&json!(42)).as_deref(), Some("42"));
        assert_eq!(header_value(&json!(["a", "b"])).as_deref(), Some("a,b"));
        assert_eq!(header_value(&json!({"a": 1})), None);
        assert_eq!(header_value(&json!(["a", 1])), None);
    }

    #[test]
    fn header_values_that_would_be_trimmed_or_split_are_not_emitted() {
        for bad in [
            json!(" admin"),
            json!("admin "),
            json!(""),
            json!("a\r\nb"),
            json!(["a", " b"]),
            json!(["a,b"]),
            json!(["a", ""]),
            json!([]),
        ] {
            assert_eq!(header_value(&bad), None, "{bad}");
        }
        assert_eq!(header_value(&json!("a, b")).as_deref(), Some("a, b"));
        assert_eq!(header_value(&json!(["a b", "c"])).as_deref(), Some("a b,c"));
    }

    #[test]
    fn representable_names_have_no_padding_controls_or_separators() {
        let lone = |n: &str| representable(n, |_| false);
        let role = |n: &str| representable(n, |c| List::Roles.is_separator(c));
        let scope = |n: &str| representable(n, |c| List::Scopes.is_separator(c));
        for ok in ["admin", "read only", "Zoë", "spiffe://a/b", "a,b"] {
            assert!(lone(ok), "{ok:?}");
        }
        for bad in [
            "",
            " admin",
            "admin ",
            "\tadmin",
            "\u{a0}admin",
            "admin\u{3000}",
            "a\r\nb",
            "a\0",
            "a\u{7f}",
            "a\u{85}b",
        ] {
            assert!(!lone(bad) && !role(bad) && !scope(bad), "{bad:?}");
        }
        assert!(role("read only") && !role("viewer,admin"));
        assert!(scope("a,b") && !scope("a b") && !scope("a\u{a0}b") && !scope("a\u{2028}b"));
    }

    #[test]
    fn subjects_are_strings_that_reach_the_upstream_as_they_are() {
        let Value::Object(c) = json!({"sub": "alice", "pad": " alice", "num": 7, "crlf": "a\r\n"})
        else {
            unreachable!()
        };
        assert_eq!(subject(&c, "sub"), Ok(Some("alice".into())));
        assert_eq!(subject(&c, "absent"), Ok(None));
        assert_eq!(subject(&c, "num"), Err(TokenError::ClaimType("num")));
        for name in ["pad", "crlf"] {
            assert_eq!(
                subject(&c, name),
                Err(TokenError::Unrepresentable(Part::Claim(name)))
            );
        }
    }

    #[test]
    fn role_and_scope_lists_refuse_what_they_cannot_carry() {
        let roles = |v: Value| names(Some(&v), List::Roles);
        let scopes = |v: Value| names(Some(&v), List::Scopes);
        assert_eq!(
            roles(json!(["a", 1, "", "b c"])),
            Ok(Names::from(["a", "b c"]))
        );
        assert_eq!(roles(json!("a  b")), Ok(Names::from(["a", "b"])));
        assert_eq!(scopes(json!(" x  y ")), Ok(Names::from(["x", "y"])));
        assert_eq!(scopes(json!(["x", "y,z"])), Ok(Names::from(["x", "y,z"])));
        assert_eq!(roles(json!({"a": 1})), Ok(Names::default()));
        assert_eq!(names(None, List::Scopes), Ok(Names::default()));
        let role = Err(TokenError::Unrepresentable(Part::Role));
        for bad in [
            json!([" admin"]),
            json!(["a,b"]),
            json!(["a\u{0}"]),
            json!("a,b c"),
        ] {
            assert_eq!(roles(bad.clone()), role, "{bad}");
        }
        let scope = Err(TokenError::Unrepresentable(Part::Scope));
        for bad in [
            json!(["x y"]),
            json!(["x\u{a0}"]),
            json!("x\ty"),
            json!("x\u{3000}y"),
        ] {
            assert_eq!(scopes(bad.clone()), scope, "{bad}");
        }
    }

    #[test]
    fn registered_claims_have_their_rfc_7519_types() {
        let check = |v: Value| registered_types(v.as_object().unwrap());
        assert_eq!(check(json!({})), Ok(()));
        let fine = json!({"iss": "i", "sub": "s", "jti": "j", "aud": ["a"], "exp": 1, "nbf": 0.5, "iat": 1, "x": 1});
        assert_eq!(check(fine), Ok(()));
        assert_eq!(check(json!({"aud": "a"})), Ok(()));
        assert_eq!(check(json!({"aud": []})), Ok(()));
        let cases = [
            ("iss", json!(1)),
            ("sub", json!(null)),
            ("jti", json!(false)),
            ("aud", json!(["a", 1])),
            ("aud", json!(1)),
            ("exp", json!("1")),
            ("nbf", json!(null)),
            ("iat", json!([1])),
        ];
        for (name, v) in cases {
            let mut c = Map::new();
            c.insert(name.to_owned(), v.clone());
            assert_eq!(
                registered_types(&c),
                Err(TokenError::ClaimType(name)),
                "{name}: {v}"
            );
        }
    }

    // === claim headers from booleans ===

    #[test]
    fn a_boolean_claim_is_emitted_as_true_or_false() {
        assert_eq!(header_value(&json!(true)).as_deref(), Some("true"));
        assert_eq!(header_value(&json!(false)).as_deref(), Some("false"));
        let h = |n: &str| HeaderName::parse(n).unwrap();
        let wanted = [
            (
                ClaimPath::parse("email_verified").unwrap(),
                h("x-auth-email-verified"),
            ),
            (ClaimPath::parse("mfa").unwrap(), h("x-auth-mfa")),
            (ClaimPath::parse("absent").unwrap(), h("x-auth-absent")),
        ];
        let Value::Object(c) = json!({"email_verified": true, "mfa": false}) else {
            unreachable!()
        };
        assert_eq!(
            *claim_headers(&c, &wanted),
            [
                (h("x-auth-email-verified"), "true".into()),
                (h("x-auth-mfa"), "false".into()),
            ]
        );
        // Inside an array, a boolean is no name: the array is not emitted.
        assert_eq!(header_value(&json!([true])), None);
        assert_eq!(header_value(&json!(null)), None);
    }

    // === claim paths and names ===

    #[test]
    fn a_namespaced_claim_over_http_is_one_name_too() {
        let Value::Object(c) = json!({"http://x.io/roles": ["a"], "http://x": {"io/roles": 1}})
        else {
            unreachable!()
        };
        let p = ClaimPath::parse("http://x.io/roles").unwrap();
        assert_eq!(p.lookup_in(&c), Some(&json!(["a"])));
        assert_eq!(p.top_level(), "http://x.io/roles");
        assert_eq!(p.as_str(), "http://x.io/roles");
    }

    #[test]
    fn a_claim_path_starts_at_its_top_level_claim() {
        let p = ClaimPath::parse("realm_access.roles").unwrap();
        assert_eq!(p.top_level(), "realm_access");
        assert_eq!(p.as_str(), "realm_access.roles");
        let p = ClaimPath::from_segments(vec!["a.b".into(), "c".into()]).unwrap();
        assert_eq!(p.top_level(), "a.b");
        assert!(ClaimPath::from_segments(vec![]).is_err());
        assert!(ClaimPath::from_segments(vec!["a".into(), String::new()]).is_err());
    }

    #[test]
    fn names_are_empty_only_when_they_hold_none() {
        assert!(Names::default().is_empty());
        assert!(!Names::from(["a"]).is_empty());
        assert!(!string_list(Some(&json!("a"))).is_empty());
    }
}
