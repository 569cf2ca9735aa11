//! An `api_key` provider: the header, and keys listed inline or in a `keys_file`.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::authn::apikey::{self, ApiKey, ApiKeySettings};
use crate::config::{Errors, Sources, yaml};
use crate::header::HeaderName;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApiKey {
    header: Option<String>,
    #[serde(default)]
    keys: Vec<RawKey>,
    /// A YAML or JSON list of keys (a mounted Kubernetes Secret).
    keys_file: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    sha256: String,
    subject: String,
    #[serde(default)]
    roles: Vec<String>,
}

pub(super) fn compile_api_key(
    v: Value,
    path: &str,
    base: &Path,
    sources: &mut Sources,
    errors: &mut Errors,
) -> Option<ApiKeySettings> {
    let raw: RawApiKey = errors.parse(path, v)?;
    let before = errors.count();
    let header = match HeaderName::parse(raw.header.as_deref().unwrap_or("x-api-key")) {
        Ok(h) => Some(h),
        Err(e) => {
            errors.add(&format!("{path}.header"), e);
            None
        }
    };
    // Each key with the config path its errors are reported at.
    let mut keys: Vec<(ApiKey, String)> = Vec::new();
    for (i, k) in raw.keys.into_iter().enumerate() {
        let at = format!("{path}.keys[{i}]");
        for (field, e) in apikey::identity_errors(&k.subject, &k.roles) {
            errors.add(&format!("{at}.{field}"), e);
        }
        match ApiKey::new(&k.sha256, k.subject, k.roles) {
            Ok(key) => keys.push((key, at)),
            Err(e) => errors.add(&format!("{at}.sha256"), e),
        }
    }
    if let Some(file) = &raw.keys_file {
        let at = format!("{path}.keys_file");
        let full = base.join(file);
        match sources.read_to_string(&full) {
            Ok(text) => match keys_from_file(&text) {
                Ok(list) => keys.extend(list.into_iter().map(|(k, i)| (k, format!("{at}[{i}]")))),
                Err(msgs) => {
                    for m in msgs {
                        errors.add(&at, format!("{}: {m}", full.display()));
                    }
                }
            },
            Err(e) => errors.add(&at, format!("cannot read {}: {e}", full.display())),
        }
    }
    if keys.is_empty() && errors.count() == before {
        errors.add(
            &format!("{path}.keys"),
            "list at least one key (in `keys` or `keys_file`)",
        );
    }
    for (i, (k, at)) in keys.iter().enumerate() {
        if let Some((_, first)) = keys[..i].iter().find(|(o, _)| o.same_key(k)) {
            errors.add(at, format!("the same key is already listed at {first}"));
        }
    }
    if errors.count() != before {
        return None;
    }
    Some(ApiKeySettings {
        header: header?,
        keys: keys.into_iter().map(|(k, _)| k).collect(),
    })
}

/// Keys from a `keys_file`: a YAML (or JSON) list of `{sha256, subject, roles}`. Errors
/// name the file's own line and element.
fn keys_from_file(text: &str) -> Result<Vec<(ApiKey, usize)>, Vec<String>> {
    let (value, lines) = yaml::parse(text)
        .map_err(|e| vec![format!("line {}: invalid YAML: {}", e.line, e.message)])?;
    let Value::Array(items) = value else {
        return Err(vec![
            "expected a list of keys like `- {sha256: <hex>, subject: <name>, roles: [..]}`".into(),
        ]);
    };
    let mut keys = Vec::new();
    let mut errs = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let here = |field: &str| {
            let p = if field.is_empty() {
                format!("[{i}]")
            } else {
                format!("[{i}].{field}")
            };
            match lines.line_of(&p) {
                Some(l) => format!("line {l}: {p}"),
                None => p,
            }
        };
        match serde_path_to_error::deserialize::<_, RawKey>(item) {
            Err(e) => {
                let inner = e.path().to_string();
                let field = if inner == "." { String::new() } else { inner };
                errs.push(format!("{}: {}", here(&field), e.into_inner()));
            }
            Ok(k) => {
                let bad = apikey::identity_errors(&k.subject, &k.roles);
                for (field, e) in &bad {
                    errs.push(format!("{}: {e}", here(field)));
                }
                match ApiKey::new(&k.sha256, k.subject, k.roles) {
                    Ok(key) if bad.is_empty() => keys.push((key, i)),
                    Ok(_) => {}
                    Err(e) => errs.push(format!("{}: {e}", here("sha256"))),
                }
            }
        }
    }
    if errs.is_empty() { Ok(keys) } else { Err(errs) }
}
