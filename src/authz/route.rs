//! Routes: compiled matchers, picked first-match-wins for each request.

use std::sync::Arc;

use crate::authz::condition::Condition;
use crate::config::Mode;
use crate::request::CheckInput;

pub use crate::authz::path::{HostPattern, PathMatch};
use crate::authz::path::{Params, Segments};

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
}

#[derive(Debug, Default)]
pub struct RouteMatch {
    pub path: Option<PathMatch>,
    /// Upper-case method names.
    pub methods: Option<Vec<String>>,
    pub hosts: Option<Vec<HostPattern>>,
    /// Envoy `context_extensions` that must all be present with these values.
    pub context: Vec<(String, String)>,
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
        match &self.path {
            Some(p) => p.matches(path),
            None => Some(Vec::new()),
        }
    }
}

/// The first route that matches: its index, itself and its parameters.
pub fn select<'r, 'a>(
    routes: &'r [Route],
    input: &CheckInput<'_>,
    path: &Segments<'a>,
) -> Option<(usize, &'r Route, Params<'a>)> {
    routes
        .iter()
        .enumerate()
        .find_map(|(i, r)| r.matcher.matches(input, path).map(|p| (i, r, p)))
}
