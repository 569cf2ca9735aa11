//! `require`: a route's conditions, compiled from YAML into [`Condition`]s.
//!
//! Every condition is described by its config path, then its argument, so a denial can
//! say which rule failed (`routes[1].require.all[0]: roles_any [admin]`).

use std::sync::Arc;

use serde_json::Value;

use crate::authn::claims::ClaimPath;
use crate::authz::condition::{ClaimTest, Condition, Glob, Kind, MAX_DEPTH};
use crate::config::Errors;
use crate::header::HeaderName;

/// What the route offers to its conditions at compile time.
pub(super) struct CompileCtx<'a> {
    /// The `{param}` names the route's path binds.
    pub(super) params: &'a [String],
    /// The providers the route (or exchange) lists, by name.
    pub(super) providers: &'a [String],
}

pub(super) fn compile(
    v: &Value,
    path: &str,
    ctx: &CompileCtx<'_>,
    errors: &mut Errors,
) -> Option<Condition> {
    compile_at(v, path, ctx, errors, 0)
}

fn compile_at(
    v: &Value,
    path: &str,
    ctx: &CompileCtx<'_>,
    errors: &mut Errors,
    depth: usize,
) -> Option<Condition> {
    if depth > MAX_DEPTH {
        errors.add(
            path,
            format!("conditions nest deeper than {MAX_DEPTH} levels"),
        );
        return None;
    }
    let Some(obj) = v.as_object().filter(|o| o.len() == 1) else {
        errors.add(
            path,
            "a condition is a mapping with exactly one key, such as `roles_any: [admin]`",
        );
        return None;
    };
    let (key, arg) = obj.iter().next()?;
    let here = format!("{path}.{key}");
    // Descriptions name the condition by its config path, then its argument:
    // `routes[1].require.roles_any [admin]`.
    let desc = |summary: String| -> Arc<str> { format!("{here} {summary}").into() };
    let kind = match key.as_str() {
        "roles_any" | "roles_all" | "scopes_any" | "scopes_all" => {
            let list = strings(arg, &here, errors)?;
            let summary = format!("[{}]", list.join(", "));
            let kind = match key.as_str() {
                "roles_any" => Kind::RolesAny(list),
                "roles_all" => Kind::RolesAll(list),
                "scopes_any" => Kind::ScopesAny(list),
                _ => Kind::ScopesAll(list),
            };
            return Some(Condition::new(kind, desc(summary)));
        }
        "methods" => {
            let list = strings(arg, &here, errors)?;
            let list = normalize_methods(list, &here, errors);
            let summary = format!("[{}]", list.join(", "));
            return Some(Condition::new(Kind::Methods(list), desc(summary)));
        }
        "providers" => {
            let list = strings(arg, &here, errors)?;
            let mut ok = true;
            for (i, name) in list.iter().enumerate() {
                if !ctx.providers.contains(name) {
                    ok = false;
                    errors.add(
                        &format!("{here}[{i}]"),
                        format!(
                            "`{name}` is not one of the providers listed here ({}): the condition could never hold for it",
                            if ctx.providers.is_empty() { "none".to_string() } else { ctx.providers.join(", ") }
                        ),
                    );
                }
            }
            if !ok {
                return None;
            }
            let summary = format!("[{}]", list.join(", "));
            return Some(Condition::new(Kind::Providers(list), desc(summary)));
        }
        "source_principals" => {
            let list = strings(arg, &here, errors)?;
            let summary = format!("[{}]", list.join(", "));
            let globs = list.iter().map(|p| Glob::new(p)).collect();
            return Some(Condition::new(Kind::SourcePrincipals(globs), desc(summary)));
        }
        "all" | "any" => {
            let Some(items) = arg.as_array().filter(|a| !a.is_empty()) else {
                errors.add(
                    &here,
                    format!("`{key}` takes a non-empty list of conditions"),
                );
                return None;
            };
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                if let Some(c) = compile_at(item, &format!("{here}[{i}]"), ctx, errors, depth + 1) {
                    out.push(c);
                }
            }
            if out.len() != items.len() {
                return None;
            }
            let summary = format!("({} conditions)", out.len());
            let kind = if key == "all" {
                Kind::All(out)
            } else {
                Kind::Any(out)
            };
            return Some(Condition::new(kind, desc(summary)));
        }
        "not" => {
            let inner = compile_at(arg, &here, ctx, errors, depth + 1)?;
            let summary = format!("({})", inner.description());
            Condition::new(Kind::Not(Box::new(inner)), desc(summary))
        }
        "claim" => return compile_claim(arg, &here, ctx, errors),
        other => {
            errors.add(
                &here,
                format!(
                    "unknown condition `{other}` (one of roles_any, roles_all, scopes_any, scopes_all, claim, providers, source_principals, methods, all, any, not)"
                ),
            );
            return None;
        }
    };
    Some(kind)
}

fn strings(v: &Value, path: &str, errors: &mut Errors) -> Option<Vec<String>> {
    let list: Option<Vec<String>> = v
        .as_array()
        .filter(|a| !a.is_empty())
        .and_then(|a| a.iter().map(|i| i.as_str().map(str::to_owned)).collect());
    if list.is_none() {
        errors.add(path, "expected a non-empty list of strings");
    }
    list
}

const CLAIM_OPS: &str = "equals, one_of, contains, matches, present, equals_param, equals_header";

fn compile_claim(
    v: &Value,
    path: &str,
    ctx: &CompileCtx<'_>,
    errors: &mut Errors,
) -> Option<Condition> {
    let Some(obj) = v.as_object() else {
        errors.add(
            path,
            format!("`claim` is a mapping: {{name, <one of {CLAIM_OPS}>}}"),
        );
        return None;
    };
    let name = match obj.get("name") {
        Some(Value::String(s)) => ClaimPath::parse(s),
        Some(Value::Array(a)) => a
            .iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| "a claim name list holds strings".to_string())
            .and_then(ClaimPath::from_segments),
        _ => Err("`claim` needs a `name` (a dotted claim path)".to_string()),
    };
    let name = match name {
        Ok(n) => n,
        Err(e) => {
            errors.add(&format!("{path}.name"), e);
            return None;
        }
    };
    let ops: Vec<(&String, &Value)> = obj.iter().filter(|(k, _)| k.as_str() != "name").collect();
    let [(op, arg)] = ops.as_slice() else {
        errors.add(
            path,
            format!("`claim` takes `name` and exactly one test: {CLAIM_OPS}"),
        );
        return None;
    };
    let here = format!("{path}.{op}");
    let test = match op.as_str() {
        "equals" => ClaimTest::Equals((*arg).clone()),
        "one_of" => match arg.as_array().filter(|a| !a.is_empty()) {
            Some(a) => ClaimTest::OneOf(a.clone()),
            None => {
                errors.add(&here, "`one_of` takes a non-empty list");
                return None;
            }
        },
        "contains" => ClaimTest::Contains((*arg).clone()),
        "matches" => {
            let Some(src) = arg.as_str() else {
                errors.add(&here, "`matches` takes a regular expression string");
                return None;
            };
            match ClaimTest::matching(src) {
                Ok(test) => test,
                Err(e) => {
                    let why = e
                        .to_string()
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ");
                    errors.add(&here, format!("invalid regular expression `{src}`: {why}"));
                    return None;
                }
            }
        }
        "present" => match arg.as_bool() {
            Some(b) => ClaimTest::Present(b),
            None => {
                errors.add(&here, "`present` takes true or false");
                return None;
            }
        },
        "equals_param" => {
            let Some(p) = arg.as_str() else {
                errors.add(&here, "`equals_param` takes a path parameter name");
                return None;
            };
            if !ctx.params.iter().any(|n| n == p) {
                errors.add(
                    &here,
                    format!("the route's `match.path` binds no parameter `{{{p}}}`"),
                );
                return None;
            }
            ClaimTest::EqualsParam(p.to_string())
        }
        "equals_header" => match arg.as_str().map(HeaderName::parse) {
            Some(Ok(h)) => ClaimTest::EqualsHeader(h),
            _ => {
                errors.add(&here, "`equals_header` takes a header name");
                return None;
            }
        },
        other => {
            errors.add(
                &here,
                format!("unknown claim test `{other}` (one of {CLAIM_OPS})"),
            );
            return None;
        }
    };
    // Strings are shown as written (a regex unescaped); other values as JSON.
    let shown = match arg {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let desc = format!("{path}: {} {op} {shown}", name.as_str()).into();
    Some(Condition::new(Kind::Claim(name, test), desc))
}

/// Upper-cases the method names of a `methods` condition or a route's `match.methods`,
/// reporting any that is not an HTTP method.
pub(super) fn normalize_methods(ms: Vec<String>, path: &str, errors: &mut Errors) -> Vec<String> {
    if ms.is_empty() {
        errors.add(path, "list at least one method");
    }
    ms.into_iter()
        .enumerate()
        .filter_map(|(i, m)| {
            if !m.is_empty() && m.bytes().all(|b| b.is_ascii_alphabetic()) {
                Some(m.to_ascii_uppercase())
            } else {
                errors.add(
                    &format!("{path}[{i}]"),
                    format!("`{m}` is not an HTTP method"),
                );
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
