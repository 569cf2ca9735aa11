//! Conditions: the compiled form of a route's `require`, evaluated per request without
//! allocation or parsing. The config compiles them from YAML through the constructors at
//! the end of this module.
//!
//! Every condition carries a description that names its config path, so a denial can say
//! which rule failed (`routes[1].require.all[0]: roles_any [admin]`) without ever
//! showing the credential.

use std::sync::Arc;

use regex::Regex;
use serde_json::Value;

use crate::authn::claims::{ClaimPath, Identity};
use crate::authz::path::Params;
use crate::header::HeaderName;
use crate::request::CheckInput;

/// The deepest a condition may nest: evaluation recurses once per level, so the config
/// refuses deeper conditions.
pub(crate) const MAX_DEPTH: usize = 32;

#[derive(Debug)]
pub struct Condition {
    kind: Kind,
    desc: Arc<str>,
}

/// What a condition tests.
#[derive(Debug)]
pub(crate) enum Kind {
    RolesAny(Vec<String>),
    RolesAll(Vec<String>),
    ScopesAny(Vec<String>),
    ScopesAll(Vec<String>),
    Claim(ClaimPath, ClaimTest),
    SourcePrincipals(Vec<Glob>),
    Methods(Vec<String>),
    /// The credential was verified by one of these providers (by name).
    Providers(Vec<String>),
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
}

/// What a `claim` condition tests of the claim's value.
#[derive(Debug)]
pub(crate) enum ClaimTest {
    Equals(Value),
    OneOf(Vec<Value>),
    Contains(Value),
    Matches(Regex),
    Present(bool),
    EqualsParam(String),
    EqualsHeader(HeaderName),
}

/// Which condition failed, for logs, `ward check` and the 403's challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub condition: Arc<str>,
    /// A scope rule failed: the 403 says `error="insufficient_scope"` (RFC 6750).
    pub insufficient_scope: bool,
    /// Undecided rather than false: a claim of the wrong type for its test (a string
    /// where `equals: true` wants a boolean, a string where `contains` wants a list).
    /// `not` keeps it a failure, so a wrong type can never turn into an allow.
    pub wrong_type: bool,
}

/// What a condition may look at.
pub struct EvalCtx<'r, 'a> {
    pub identity: &'r Identity,
    pub params: &'r Params<'a>,
    pub input: &'r CheckInput<'a>,
}

impl Condition {
    /// Adds the top-level claim name of every `claim:` test in this condition to `out`.
    pub fn claim_names(&self, out: &mut Vec<String>) {
        match &self.kind {
            Kind::Claim(path, _) => out.push(path.top_level().to_owned()),
            Kind::All(cs) | Kind::Any(cs) => cs.iter().for_each(|c| c.claim_names(out)),
            Kind::Not(c) => c.claim_names(out),
            Kind::RolesAny(_)
            | Kind::RolesAll(_)
            | Kind::ScopesAny(_)
            | Kind::ScopesAll(_)
            | Kind::SourcePrincipals(_)
            | Kind::Methods(_)
            | Kind::Providers(_) => {}
        }
    }

    /// Adds the name of every request header an `equals_header` test of this condition
    /// reads to `out`.
    pub fn header_names(&self, out: &mut Vec<String>) {
        match &self.kind {
            Kind::Claim(_, ClaimTest::EqualsHeader(h)) => out.push(h.as_str().to_owned()),
            Kind::All(cs) | Kind::Any(cs) => cs.iter().for_each(|c| c.header_names(out)),
            Kind::Not(c) => c.header_names(out),
            _ => {}
        }
    }

    pub fn eval(&self, ctx: &EvalCtx<'_, '_>) -> Result<(), Failure> {
        let fail = |scope| {
            Err(Failure {
                condition: self.desc.clone(),
                insufficient_scope: scope,
                wrong_type: false,
            })
        };
        let id = ctx.identity;
        match &self.kind {
            Kind::RolesAny(w) => {
                if w.iter().any(|r| id.roles.contains(r)) {
                    Ok(())
                } else {
                    fail(false)
                }
            }
            Kind::RolesAll(w) => {
                if w.iter().all(|r| id.roles.contains(r)) {
                    Ok(())
                } else {
                    fail(false)
                }
            }
            Kind::ScopesAny(w) => {
                if w.iter().any(|s| id.scopes.contains(s)) {
                    Ok(())
                } else {
                    fail(true)
                }
            }
            Kind::ScopesAll(w) => {
                if w.iter().all(|s| id.scopes.contains(s)) {
                    Ok(())
                } else {
                    fail(true)
                }
            }
            Kind::Claim(path, test) => match claim_holds(
                path.lookup_claims(&id.claims),
                test,
                ctx,
                path.is_audience(),
            ) {
                Some(true) => Ok(()),
                Some(false) => fail(false),
                None => Err(Failure {
                    condition: self.desc.clone(),
                    insufficient_scope: false,
                    wrong_type: true,
                }),
            },
            Kind::SourcePrincipals(globs) => {
                let p = ctx.input.source_principal;
                if !p.is_empty() && globs.iter().any(|g| g.matches(p)) {
                    Ok(())
                } else {
                    fail(false)
                }
            }
            // An anonymous request has no provider: it never holds.
            Kind::Providers(names) => {
                if !id.provider.is_empty() && names.iter().any(|n| **n == *id.provider) {
                    Ok(())
                } else {
                    fail(false)
                }
            }
            Kind::Methods(ms) => {
                if ms.iter().any(|m| m.eq_ignore_ascii_case(ctx.input.method)) {
                    Ok(())
                } else {
                    fail(false)
                }
            }
            // A branch that is false decides an `all`; an undecided one (wrong type) only
            // if no branch is false.
            Kind::All(cs) => {
                let mut undecided = None;
                for c in cs {
                    match c.eval(ctx) {
                        Ok(()) => {}
                        Err(f) if f.wrong_type => {
                            undecided.get_or_insert(f);
                        }
                        Err(f) => return Err(f),
                    }
                }
                undecided.map_or(Ok(()), Err)
            }
            Kind::Any(cs) => {
                // The `any` itself is reported, naming each branch that failed; it is a
                // scope failure only if every branch was, and undecided if any branch was.
                let mut all_scope = true;
                let mut undecided = None;
                let mut branches: Vec<Arc<str>> = Vec::with_capacity(cs.len());
                for c in cs {
                    match c.eval(ctx) {
                        Ok(()) => return Ok(()),
                        Err(f) if f.wrong_type => {
                            undecided.get_or_insert(f);
                        }
                        Err(f) => {
                            all_scope &= f.insufficient_scope;
                            branches.push(f.condition);
                        }
                    }
                }
                match undecided {
                    Some(f) => Err(f),
                    None => Err(Failure {
                        condition: format!(
                            "{}: no branch held: {}",
                            self.desc,
                            branches.join("; ")
                        )
                        .into(),
                        insufficient_scope: all_scope,
                        wrong_type: false,
                    }),
                }
            }
            Kind::Not(c) => match c.eval(ctx) {
                Ok(()) => fail(false),
                Err(f) if f.wrong_type => Err(f),
                Err(_) => Ok(()),
            },
        }
    }
}

/// Claims compare as JSON types: 42 is not "42", "true" is not true. `Some(false)`: the
/// test is false (an absent claim, another value of the right type); `None`: the claim
/// has the wrong type for the test, which fails it too, and also fails its `not`.
///
/// `aud` compares as RFC 7519 §4.1.3 defines it: a string is a one-element array, so
/// `contains` finds it in either form, and `equals`/`one_of` compare audience lists.
fn claim_holds(
    claim: Option<&Value>,
    test: &ClaimTest,
    ctx: &EvalCtx<'_, '_>,
    audience: bool,
) -> Option<bool> {
    if audience && let Some(aud @ (Value::String(_) | Value::Array(_))) = claim {
        return audience_holds(aud, test, ctx);
    }
    // Absent, or null (which reads as absent): false for every test but `present: false`
    // and, for a null claim, a test for null itself.
    let Some(claim) = claim.filter(|c| !c.is_null()) else {
        return Some(match test {
            ClaimTest::Present(want) => !want,
            ClaimTest::Equals(v) => claim.is_some() && v.is_null(),
            ClaimTest::OneOf(vs) => claim.is_some() && vs.iter().any(Value::is_null),
            _ => false,
        });
    };
    match test {
        ClaimTest::Present(want) => Some(*want),
        // A present claim is plainly not null: `equals: null` is false, not undecided.
        ClaimTest::Equals(v) => comparable(claim, v).then(|| json_eq(claim, v)),
        ClaimTest::OneOf(vs) => {
            let typed = vs.iter().any(|v| comparable(claim, v));
            typed.then(|| vs.iter().any(|v| json_eq(claim, v)))
        }
        ClaimTest::Contains(v) => match claim {
            Value::Array(items) => Some(items.iter().any(|i| json_eq(i, v))),
            _ => None,
        },
        ClaimTest::Matches(re) => claim.as_str().map(|s| re.is_match(s)),
        ClaimTest::EqualsParam(name) => claim.as_str().map(|s| {
            ctx.params
                .iter()
                .any(|(n, v)| &**n == name.as_str() && v == s)
        }),
        ClaimTest::EqualsHeader(h) => claim
            .as_str()
            .map(|s| ctx.input.headers.get_str(h.as_str()) == Some(s)),
    }
}

/// A test of `aud` (a string or an array), with a string read as a one-element array.
fn audience_holds(aud: &Value, test: &ClaimTest, ctx: &EvalCtx<'_, '_>) -> Option<bool> {
    let items = match aud {
        Value::Array(items) => items.as_slice(),
        one => std::slice::from_ref(one),
    };
    match test {
        ClaimTest::Present(want) => Some(*want),
        ClaimTest::Contains(v) => Some(items.iter().any(|i| json_eq(i, v))),
        ClaimTest::Equals(v) => audience_eq(items, v),
        // Undecided only when no listed value has a type an audience list can equal.
        ClaimTest::OneOf(vs) => vs
            .iter()
            .filter_map(|v| audience_eq(items, v))
            .reduce(|a, b| a || b),
        ClaimTest::Matches(re) => Some(
            items
                .iter()
                .any(|i| i.as_str().is_some_and(|s| re.is_match(s))),
        ),
        // One audience compares as a string; a list of several has no one value.
        ClaimTest::EqualsParam(_) | ClaimTest::EqualsHeader(_) => match items {
            [one @ Value::String(_)] => claim_holds(Some(one), test, ctx, false),
            _ => None,
        },
    }
}

/// An audience list against a wanted value: a string is the list of that one audience,
/// an array the list itself (in order); any other type is undecided, null is false.
fn audience_eq(items: &[Value], want: &Value) -> Option<bool> {
    match want {
        Value::String(_) => Some(matches!(items, [one] if json_eq(one, want))),
        Value::Array(w) => {
            Some(w.len() == items.len() && w.iter().zip(items).all(|(p, q)| json_eq(p, q)))
        }
        Value::Null => Some(false),
        _ => None,
    }
}

/// Whether comparing a (non-null) claim with `want` decides anything: the same JSON type
/// (every number is one type), or `want` is null.
fn comparable(claim: &Value, want: &Value) -> bool {
    want.is_null() || std::mem::discriminant(claim) == std::mem::discriminant(want)
}

/// JSON equality: same type and value. Numbers compare by value (`1` equals `1.0`, as in
/// JSON itself); a number never equals a string, nor a bool a string.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => number_eq(x, y),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Numbers by exact value: integers as integers (never rounded through a float, where
/// every integer near 2^64 has thousands of equal neighbours), an integer and a float
/// equal only when the float is exactly that integer.
fn number_eq(x: &serde_json::Number, y: &serde_json::Number) -> bool {
    let int = |n: &serde_json::Number| {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    };
    // 2^127: every f64 below it in magnitude converts to i128 without saturating.
    const LIMIT: f64 = 170_141_183_460_469_231_731_687_303_715_884_105_728.0;
    let float_is = |f: Option<f64>, i: i128| {
        f.is_some_and(|f| f.fract() == 0.0 && f.abs() < LIMIT && f as i128 == i)
    };
    match (int(x), int(y)) {
        (Some(i), Some(j)) => i == j,
        (Some(i), None) => float_is(y.as_f64(), i),
        (None, Some(j)) => float_is(x.as_f64(), j),
        (None, None) => x.as_f64() == y.as_f64(),
    }
}

/// A `*` glob over a principal; `*` matches one or more characters other than `/`, and
/// everything else is literal.
///
/// Since no `*` spans a `/`, the pattern's k-th `/` can only be the principal's k-th `/`:
/// the two are split at `/` and compared segment by segment. Within a segment, each
/// literal between stars is placed at its leftmost possible position (any later
/// placement leaves less for what follows), so nothing is ever retried and a match costs
/// time linear in the pattern and the principal, however many `*` there are.
///
/// Public so that the fuzzing harness can drive it directly.
#[derive(Debug)]
pub struct Glob {
    /// Per `/`-separated segment, its literal parts around `*`: one part is an exact
    /// segment, `n + 1` parts hold `n` stars.
    segments: Vec<Vec<String>>,
}

impl Glob {
    /// Compiles a `source_principals` entry; every string is a valid glob.
    pub fn new(pattern: &str) -> Self {
        Self {
            segments: pattern
                .split('/')
                .map(|seg| seg.split('*').map(str::to_owned).collect())
                .collect(),
        }
    }

    /// Whether the whole principal `s` matches.
    pub fn matches(&self, s: &str) -> bool {
        let mut input = s.split('/');
        for parts in &self.segments {
            match input.next() {
                Some(seg) if segment_matches(parts, seg) => {}
                _ => return false,
            }
        }
        input.next().is_none()
    }
}

/// One segment (no `/`) against its pattern's parts, each star taking at least one
/// character.
fn segment_matches(parts: &[String], seg: &str) -> bool {
    // `strip_prefix`, `find` (a two-way search) and `ends_with` are linear, and each
    // looks at the part of `seg` after the last: a segment costs its length plus its
    // pattern's.
    #[cfg(test)]
    glob_steps(1 + seg.len() + parts.iter().map(String::len).sum::<usize>());
    let [first, middle @ .., last] = parts else {
        return parts.first().is_some_and(|p| p == seg);
    };
    let Some(mut rest) = seg.strip_prefix(first.as_str()) else {
        return false;
    };
    for lit in middle {
        let Some(after_star) = skip_char(rest) else {
            return false;
        };
        let Some(at) = after_star.find(lit.as_str()) else {
            return false;
        };
        rest = &after_star[at + lit.len()..];
    }
    skip_char(rest).is_some_and(|r| r.ends_with(last.as_str()))
}

/// `s` without its first character, if it has one.
fn skip_char(s: &str) -> Option<&str> {
    let mut chars = s.chars();
    chars.next().map(|_| chars.as_str())
}

#[cfg(test)]
thread_local! {
    /// Work done by glob matching on this thread, so tests can bound it.
    static GLOB_STEPS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

#[cfg(test)]
fn glob_steps(n: usize) {
    GLOB_STEPS.with(|c| c.set(c.get() + n as u64));
}

// === construction ===

impl Condition {
    /// A condition described as `desc` in denials: its config path, then its argument.
    pub(crate) fn new(kind: Kind, desc: Arc<str>) -> Self {
        Self { kind, desc }
    }

    /// What a denial names when this condition fails.
    pub(crate) fn description(&self) -> &str {
        &self.desc
    }
}

/// The most memory a `matches` expression may compile to. Matching is linear in the
/// claim times the compiled size, so this bounds the work per check; a larger
/// expression is a config error ("exceeds size limit").
const REGEX_SIZE_LIMIT: usize = 10 << 20;
/// The most memory the lazy DFA of one expression may cache.
const REGEX_DFA_SIZE_LIMIT: usize = 2 << 20;

fn bounded_regex(src: &str) -> Result<Regex, regex::Error> {
    regex::RegexBuilder::new(src)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_DFA_SIZE_LIMIT)
        .build()
}

/// An expression that must match a whole value, compiled within the size limits (for
/// `matches` tests and route `regex` matchers).
pub(crate) fn anchored_regex(src: &str) -> Result<Regex, regex::Error> {
    // Compile the pattern alone first: `a)|(.*` only compiles inside the anchoring
    // group, where it would match everything.
    bounded_regex(src).and_then(|_| bounded_regex(&format!("^(?:{src})$")))
}

impl ClaimTest {
    /// A `matches` test: the expression must match the whole claim, and compile within
    /// the size limits.
    pub(crate) fn matching(src: &str) -> Result<Self, regex::Error> {
        anchored_regex(src).map(ClaimTest::Matches)
    }
}

#[cfg(test)]
pub(crate) mod tests;
