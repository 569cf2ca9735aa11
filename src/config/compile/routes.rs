//! `routes`: each route's match, providers, mode and `require`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::conditions::{self, CompileCtx, normalize_methods};
use super::issuing;
use crate::authn::{ProviderKind, ProviderSettings};
use crate::authz::condition::anchored_regex;
use crate::authz::route::{DenyShape, HostPattern, Mode, PathMatch, Route, RouteMatch, ValueMatch};
use crate::config::Errors;
use crate::header::HeaderName;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    name: String,
    #[serde(rename = "match")]
    matcher: RawMatch,
    #[serde(default)]
    allow_anonymous: bool,
    #[serde(default)]
    providers: Vec<String>,
    require: Option<Value>,
    #[serde(default)]
    mode: Mode,
    mint: Option<Value>,
    /// `defaults: false` opts the route out of `defaults.require`.
    #[serde(default = "yes")]
    defaults: bool,
    deny: Option<RawDeny>,
    on_unauthenticated: Option<RawOnUnauthenticated>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeny {
    status: Option<u16>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    body: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOnUnauthenticated {
    redirect: String,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMatch {
    path: Option<String>,
    path_prefix: Option<String>,
    methods: Option<Vec<String>>,
    hosts: Option<Vec<String>>,
    context: Option<BTreeMap<String, String>>,
    headers: Option<BTreeMap<String, Value>>,
    query: Option<BTreeMap<String, Value>>,
}

pub(super) fn compile_route(
    v: Value,
    path: &str,
    names: &HashMap<String, usize>,
    providers: &[Arc<ProviderSettings>],
    errors: &mut Errors,
) -> Option<Route> {
    let raw: RawRoute = errors.parse(path, v)?;
    let before = errors.count();
    let m = raw.matcher;
    let mpath = format!("{path}.match");

    let path_match = match (m.path, m.path_prefix) {
        (Some(_), Some(_)) => {
            errors.add(&mpath, "use `path` or `path_prefix`, not both");
            None
        }
        (Some(p), None) => match PathMatch::pattern(&p) {
            Ok(pm) => Some(pm),
            Err(e) => {
                errors.add(&format!("{mpath}.path"), e);
                None
            }
        },
        (None, Some(p)) => match PathMatch::prefix(&p) {
            Ok(pm) => Some(pm),
            Err(e) => {
                errors.add(&format!("{mpath}.path_prefix"), e);
                None
            }
        },
        (None, None) => None,
    };
    let methods = m
        .methods
        .map(|ms| normalize_methods(ms, &format!("{mpath}.methods"), errors));
    let hosts = m.hosts.map(|hs| {
        hs.iter()
            .enumerate()
            .filter_map(|(i, h)| {
                HostPattern::parse(h)
                    .map_err(|e| errors.add(&format!("{mpath}.hosts[{i}]"), e))
                    .ok()
            })
            .collect::<Vec<_>>()
    });

    let headers = value_matches(m.headers, &format!("{mpath}.headers"), true, errors);
    let query = value_matches(m.query, &format!("{mpath}.query"), false, errors);

    let mut route_providers = Vec::new();
    for (i, name) in raw.providers.iter().enumerate() {
        match names.get(name) {
            Some(idx) => route_providers.push(*idx),
            None => errors.add(
                &format!("{path}.providers[{i}]"),
                format!("no provider is named `{name}`"),
            ),
        }
    }

    shared_issuers(&raw.providers, names, providers, path, errors);

    let params = path_match
        .as_ref()
        .map(PathMatch::params)
        .unwrap_or_default();
    let require = raw.require.map(|c| {
        let ctx = CompileCtx {
            params: &params,
            providers: &raw.providers,
        };
        conditions::compile(&c, &format!("{path}.require"), &ctx, errors)
    });

    if raw.providers.is_empty() && require.is_none() && !raw.allow_anonymous {
        errors.add(
            path,
            "this route names no providers and no `require`, so it would allow every request: set `allow_anonymous: true` to say so",
        );
    }

    let deny = raw
        .deny
        .map(|d| deny_shape(d, &format!("{path}.deny"), errors));
    let login_redirect = raw.on_unauthenticated.and_then(|o| {
        let here = format!("{path}.on_unauthenticated.redirect");
        let r = o.redirect;
        let absolute = r.starts_with("https://") || r.starts_with("http://");
        if !absolute || !crate::header::is_exact_value(&r) {
            errors.add(
                &here,
                format!("`{r}` is not an absolute http(s) URL (a template such as `https://login.example.com/?rd={{url}}`)"),
            );
            return None;
        }
        Some(Arc::<str>::from(r))
    });

    let mint = raw
        .mint
        .and_then(|m| issuing::compile_mint(m, &format!("{path}.mint"), &raw.name, errors));

    if errors.count() != before {
        return None;
    }
    let name: Arc<str> = raw.name.into();
    Some(Route {
        name,
        matcher: RouteMatch {
            path: path_match,
            methods,
            hosts,
            context: m.context.unwrap_or_default().into_iter().collect(),
            headers,
            query,
        },
        providers: route_providers,
        allow_anonymous: raw.allow_anonymous,
        require: require.flatten(),
        mode: raw.mode,
        mint,
        defaults: raw.defaults,
        deny,
        login_redirect,
    })
}

/// Providers of one route that share an issuer are told apart by audience (the one whose
/// audiences the token names decides), so their audiences must not overlap: a token for
/// a shared audience would always go to the first, whatever the second was meant for.
fn shared_issuers(
    listed: &[String],
    names: &HashMap<String, usize>,
    providers: &[Arc<ProviderSettings>],
    path: &str,
    errors: &mut Errors,
) {
    let jwt = |name: &String| match names.get(name).and_then(|&i| providers.get(i)) {
        Some(p) => match &p.kind {
            ProviderKind::Jwt(j) => Some(j),
            _ => None,
        },
        None => None,
    };
    for (b, b_name) in listed.iter().enumerate() {
        let Some(jb) = jwt(b_name) else { continue };
        let overlap = listed[..b].iter().filter(|a| *a != b_name).find_map(|a| {
            let ja = jwt(a).filter(|ja| ja.issuer == jb.issuer)?;
            let aud = jb.audiences.iter().find(|x| ja.audiences.contains(x))?;
            Some((a, aud))
        });
        if let Some((a, aud)) = overlap {
            errors.add(
                &format!("{path}.providers[{b}]"),
                format!(
                    "`{b_name}` and `{a}` both trust issuer `{}` for audience `{aud}`: a token for `{aud}` would always be decided by `{a}`; give each provider of one issuer its own audiences",
                    jb.issuer
                ),
            );
        }
    }
}

/// `match.headers` / `match.query`: `{name: {exact: v} | {present: bool} | {regex: re}}`.
/// Header names are compared in lower case, as Envoy sends them.
fn value_matches(
    raw: Option<BTreeMap<String, Value>>,
    path: &str,
    headers: bool,
    errors: &mut Errors,
) -> Vec<(String, ValueMatch)> {
    let mut out = Vec::new();
    for (name, spec) in raw.unwrap_or_default() {
        let here = format!("{path}.{name}");
        let name = if headers {
            match HeaderName::parse(&name) {
                Ok(h) => h.as_str().to_owned(),
                Err(_) => {
                    errors.add(&here, format!("`{name}` is not a header name"));
                    continue;
                }
            }
        } else if name.is_empty() {
            errors.add(&here, "a query parameter has a name");
            continue;
        } else {
            name
        };
        let one = spec
            .as_object()
            .filter(|o| o.len() == 1)
            .and_then(|o| o.iter().next());
        let m = match one {
            Some((k, Value::String(v))) if k == "exact" => ValueMatch::Exact(v.clone()),
            Some((k, Value::Bool(b))) if k == "present" => ValueMatch::Present(*b),
            Some((k, Value::String(src))) if k == "regex" => match anchored_regex(src) {
                Ok(re) => ValueMatch::Regex(re),
                Err(e) => {
                    let why = e
                        .to_string()
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ");
                    errors.add(
                        &format!("{here}.regex"),
                        format!("invalid regular expression `{src}`: {why}"),
                    );
                    continue;
                }
            },
            _ => {
                errors.add(
                    &here,
                    "one of `exact: VALUE`, `present: true|false` or `regex: EXPRESSION`",
                );
                continue;
            }
        };
        out.push((name, m));
    }
    out
}

/// `deny:`: a status for the route's 401 and 403 denials (400-599), headers (owned by
/// the answer, not the upstream: any but the ones ward's challenge and redirect need),
/// and a body template.
fn deny_shape(raw: RawDeny, path: &str, errors: &mut Errors) -> Arc<DenyShape> {
    if let Some(s) = raw.status
        && !(400..=599).contains(&s)
    {
        errors.add(
            &format!("{path}.status"),
            format!(
                "{s} is not a denial status (400 to 599; a login redirect is `on_unauthenticated`)"
            ),
        );
    }
    let mut headers = Vec::new();
    for (name, value) in raw.headers {
        let here = format!("{path}.headers.{name}");
        match HeaderName::parse(&name) {
            Ok(_) if !crate::header::is_exact_value(&value) => {
                errors.add(
                    &here,
                    "a header value is visible text without leading or trailing spaces",
                );
            }
            Ok(h) => headers.push((h, value)),
            Err(_) => errors.add(&here, format!("`{name}` is not a header name")),
        }
    }
    Arc::new(DenyShape {
        status: raw.status,
        headers,
        body: raw.body,
    })
}
