//! Routes: compiled matchers, picked first-match-wins for each request through a
//! [`RouteIndex`].

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use percent_encoding::percent_decode_str;
use serde::Deserialize;

use crate::authz::condition::Condition;
use crate::request::{CheckInput, Lookup};

pub use crate::authz::path::{HostPattern, PathMatch};
use crate::authz::path::{Params, PatSeg, Segments};

#[derive(Debug)]
pub struct Route {
    pub name: Arc<str>,
    pub matcher: RouteMatch,
    /// Indices into `Config::providers`, in order: the first provider that finds a
    /// credential decides.
    pub providers: Vec<usize>,
    pub allow_anonymous: bool,
    pub require: Option<Condition>,
    pub mode: Mode,
    /// What to mint on allow (`mint:`), if anything.
    pub mint: Option<crate::issuer::MintSpec>,
    /// Whether `defaults.require` applies (`defaults: false` opts out).
    pub defaults: bool,
    /// How this route's 401 and 403 denials are answered (`deny:`), if not as usual.
    pub deny: Option<Arc<DenyShape>>,
    /// Where a browser without a valid credential is sent (`on_unauthenticated:
    /// {redirect}`): a URL template with `{url}`, the request's own URL.
    pub login_redirect: Option<Arc<str>>,
}

/// A route's own answer to its 401 and 403 denials (`deny:`).
#[derive(Debug, Default)]
pub struct DenyShape {
    /// The HTTP status instead of 401/403.
    pub status: Option<u16>,
    /// Headers added (replacing ward's own of the same name, `content-type` included).
    pub headers: Vec<(crate::header::HeaderName, String)>,
    /// The body instead of ward's JSON, with `{reason}` and `{request_id}` filled in.
    pub body: Option<String>,
}

/// What a route does with its decision: `mode` in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Decisions are enforced (the default).
    #[default]
    Enforce,
    /// Decisions are logged and counted, requests always allowed.
    Shadow,
}

#[derive(Debug, Default)]
pub struct RouteMatch {
    pub path: Option<PathMatch>,
    /// Upper-case method names.
    pub methods: Option<Vec<String>>,
    pub hosts: Option<Vec<HostPattern>>,
    /// Envoy `context_extensions` that must all be present with these values.
    pub context: Vec<(String, String)>,
    /// Request headers (lower-case names) that must each match.
    pub headers: Vec<(String, ValueMatch)>,
    /// Query parameters (percent-decoded names) that must each match.
    pub query: Vec<(String, ValueMatch)>,
}

/// How a header or query parameter must look for a route to match.
#[derive(Debug)]
pub enum ValueMatch {
    /// Sent exactly once, with exactly this value.
    Exact(String),
    /// Sent (at least once), or not at all.
    Present(bool),
    /// Sent exactly once, with a value this expression matches whole.
    Regex(regex::Regex),
}

/// What a request holds under one header or query parameter name.
enum Found<'v> {
    Absent,
    One(Cow<'v, str>),
    /// Sent twice, or not text: present, but no value to compare.
    Unreadable,
}

impl ValueMatch {
    fn holds(&self, found: Found<'_>) -> bool {
        match (self, found) {
            (ValueMatch::Present(want), Found::Absent) => !want,
            (ValueMatch::Present(want), _) => *want,
            (ValueMatch::Exact(want), Found::One(v)) => *want == v,
            (ValueMatch::Regex(re), Found::One(v)) => re.is_match(&v),
            _ => false,
        }
    }
}

fn header<'v>(input: &CheckInput<'v>, name: &str) -> Found<'v> {
    match input.headers.get(name) {
        Lookup::Absent => Found::Absent,
        Lookup::One(v) => match std::str::from_utf8(v) {
            Ok(s) => Found::One(Cow::Borrowed(s)),
            Err(_) => Found::Unreadable,
        },
        Lookup::Many => Found::Unreadable,
    }
}

/// The parameter `name` of a query string, names and values percent-decoded (`+` is
/// kept: it is a space only in form bodies).
fn query_param<'v>(query: &'v str, name: &str) -> Found<'v> {
    let decode = |s: &'v str| percent_decode_str(s).decode_utf8();
    let mut found = Found::Absent;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if !decode(k).is_ok_and(|k| k == name) {
            continue;
        }
        found = match (found, decode(v)) {
            (Found::Absent, Ok(v)) => Found::One(v),
            _ => Found::Unreadable,
        };
    }
    found
}

impl RouteMatch {
    /// Tests the cheap fields first, the path last; on a match, the bound parameters.
    pub fn matches<'a>(&self, input: &CheckInput<'_>, path: &Segments<'a>) -> Option<Params<'a>> {
        if let Some(ms) = &self.methods
            && !ms.iter().any(|m| m.eq_ignore_ascii_case(input.method))
        {
            return None;
        }
        if let Some(hs) = &self.hosts
            && !hs.iter().any(|h| h.matches(input.host))
        {
            return None;
        }
        if !self
            .context
            .iter()
            .all(|(k, v)| input.context_value(k) == Some(v.as_str()))
        {
            return None;
        }
        if !self.headers.iter().all(|(n, m)| m.holds(header(input, n))) {
            return None;
        }
        if !self.query.is_empty() {
            let q = input.query();
            if !self.query.iter().all(|(n, m)| m.holds(query_param(q, n))) {
                return None;
            }
        }
        match &self.path {
            Some(p) => p.matches(path),
            None => Some(Vec::new()),
        }
    }
}

/// The routes of a config indexed by the first path segment they can match, so a
/// request is tested only against the routes that could match its path, in config
/// order (first match wins, exactly as a scan of every route would pick).
///
/// A route whose path starts with a literal segment (`path: /orders/{id}`,
/// `path_prefix: /orders`) can only match a request whose first normalised segment is
/// that literal, compared as [`PathMatch::matches`] compares it: exact, case-sensitive,
/// on decoded text. Every other route (no path, `path_prefix: /`, `path: /`, a pattern
/// starting with `{name}`, `*` or `**`) may match any path and is tried for every request.
#[derive(Debug, Default)]
pub struct RouteIndex {
    /// First literal segment -> indices of the routes that need it, ascending.
    by_first: HashMap<Box<str>, Vec<usize>>,
    /// Indices of the routes that may match any first segment, ascending.
    any_first: Vec<usize>,
    /// How many routes were indexed: `select` must be given the same slice.
    len: usize,
}

impl RouteIndex {
    pub fn new(routes: &[Route]) -> Self {
        let mut index = RouteIndex {
            len: routes.len(),
            ..Default::default()
        };
        for (i, r) in routes.iter().enumerate() {
            match first_literal(r.matcher.path.as_ref()) {
                Some(lit) => index.by_first.entry(lit.into()).or_default().push(i),
                None => index.any_first.push(i),
            }
        }
        index
    }

    /// The first route that matches: its index, itself and its parameters. `routes` is
    /// the slice the index was built from.
    pub fn select<'r, 'a>(
        &self,
        routes: &'r [Route],
        input: &CheckInput<'_>,
        path: &Segments<'a>,
    ) -> Option<(usize, &'r Route, Params<'a>)> {
        debug_assert_eq!(routes.len(), self.len, "index built from other routes");
        self.candidates(path).find_map(|i| {
            let r = routes.get(i)?;
            r.matcher.matches(input, path).map(|p| (i, r, p))
        })
    }

    /// The indices of the routes that may match `path`, ascending.
    fn candidates(&self, path: &Segments<'_>) -> Merge<'_> {
        let bucket = path
            .first()
            .and_then(|seg| self.by_first.get(seg.as_ref()))
            .map_or(&[][..], Vec::as_slice);
        Merge {
            a: bucket,
            b: &self.any_first,
        }
    }
}

/// The literal every path this matcher accepts starts with, if there is one.
fn first_literal(path: Option<&PathMatch>) -> Option<&str> {
    match path? {
        PathMatch::Prefix(segs) => segs.first().map(String::as_str),
        PathMatch::Pattern(segs) => match segs.first()? {
            PatSeg::Lit(l) => Some(l.as_str()),
            PatSeg::Param(_) | PatSeg::One | PatSeg::Rest => None,
        },
    }
}

/// Two ascending, disjoint index lists walked as one ascending list.
struct Merge<'i> {
    a: &'i [usize],
    b: &'i [usize],
}

impl Iterator for Merge<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        let take_a = match (self.a.first(), self.b.first()) {
            (Some(a), Some(b)) => a < b,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return None,
        };
        let list = if take_a { &mut self.a } else { &mut self.b };
        let (first, rest) = list.split_first()?;
        *list = rest;
        Some(*first)
    }
}

#[cfg(test)]
mod tests;
