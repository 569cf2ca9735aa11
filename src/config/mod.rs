//! Configuration: the raw YAML shape (serde, unknown keys rejected) and the one entry
//! point that turns text into an immutable [`Config`], or into every error it contains.
//!
//! [`load_file`] and [`load_str`] are the entry points; a failed load returns
//! [`ConfigErrors`], every problem with its path and line (what `ward validate` prints).
//! `${NAME}` in string values is resolved through an [`Env`]: [`ProcessEnv`] in
//! production, a `HashMap<String, String>` in tests.
//!
//! Loading happens in three steps, each collecting all of its errors before stopping:
//! 1. `yaml::parse`: YAML text to a JSON value tree plus a line index;
//! 2. `${ENV}` expansion in string values (so a secret can never inject YAML structure);
//! 3. `compile`: each section and each list element is deserialized on its own (so one
//!    bad route does not hide the errors of the next) and compiled into matchers and rules.

mod compile;
mod duration;
mod sources;
mod unknown;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod yaml;
#[cfg(not(feature = "internals"))]
pub(crate) mod yaml;

use std::fmt;
use std::path::Path;

use serde_json::Value;

pub use compile::Config;
pub use compile::TelemetryConfig;
pub(crate) use compile::{LoggingConfig, RequestLimits, SubjectLog, TlsConfig};
pub(crate) use duration::Dur;
pub use duration::parse_duration;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub use sources::Sources;
#[cfg(not(feature = "internals"))]
pub(crate) use sources::Sources;

/// One problem in a config file: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted path such as `providers[1].jwt.audiences` (empty for the document itself).
    pub path: String,
    /// 1-based source line, when known.
    pub line: Option<usize>,
    /// What is wrong, for a person to read (`unknown field `route``, `must be greater
    /// than 0s`).
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.path.is_empty()) {
            (Some(l), false) => write!(f, "line {l}: {}: {}", self.path, self.message),
            (Some(l), true) => write!(f, "line {l}: {}", self.message),
            (None, false) => write!(f, "{}: {}", self.path, self.message),
            (None, true) => write!(f, "{}", self.message),
        }
    }
}

/// Every error found in one config, in document order (never empty). `Display` prints
/// one error a line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// How `${NAME}` is resolved. The process environment in production; a map in tests,
/// which therefore never touch the real environment.
pub trait Env {
    /// The value of the variable `name`, or `None` when it is not set.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment: `${NAME}` reads the variable `NAME` of the running process.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<S: std::hash::BuildHasher> Env for std::collections::HashMap<String, String, S> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// Reads and compiles a config file. Relative paths inside it (`jwks_file`, TLS files)
/// are taken relative to the file's own directory.
pub fn load_file(path: &Path, env: &dyn Env) -> Result<Config, ConfigErrors> {
    load_file_tracked(path, env).0
}

/// [`load_file`], also returning every file the load read (the config file first), so
/// that a watcher can reload when one of them changes. Returned for a failed load too:
/// fixing a file that a rejected config names is a change worth a retry.
///
/// Not API: public only for ward's own tests, which watch files as the server does.
#[doc(hidden)]
pub fn load_file_tracked(path: &Path, env: &dyn Env) -> (Result<Config, ConfigErrors>, Sources) {
    let mut sources = Sources::default();
    let text = match sources.read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            let error = ConfigError {
                path: String::new(),
                line: None,
                message: format!("cannot read {}: {e}", path.display()),
            };
            return (Err(ConfigErrors(vec![error])), sources);
        }
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let config = load(&text, base, env, &mut sources);
    (config, sources)
}

/// Compiles config text; `base_dir` anchors relative file paths (`jwks_file`, TLS
/// files), as the config file's directory does for [`load_file`].
pub fn load_str(text: &str, base_dir: &Path, env: &dyn Env) -> Result<Config, ConfigErrors> {
    load(text, base_dir, env, &mut Sources::default())
}

fn load(
    text: &str,
    base_dir: &Path,
    env: &dyn Env,
    sources: &mut Sources,
) -> Result<Config, ConfigErrors> {
    let (mut value, lines) = yaml::parse(text).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            path: String::new(),
            line: Some(e.line),
            message: format!("invalid YAML: {}", e.message),
        }])
    })?;
    let mut errors = Errors::new(lines);
    expand_env(&mut value, String::new(), env, &mut errors);
    // What the config means, not how it is written: the expanded value, then every file
    // it reads (keys, JWKS, TLS), by digest.
    let meaning = serde_json::to_vec(&value).unwrap_or_default();
    let read_before = sources.len();
    let config = compile::compile(value, base_dir, sources, &mut errors).map(|mut c| {
        let mut all = meaning;
        for digest in sources.digests_from(read_before) {
            all.extend_from_slice(digest.as_ref().map_or(&[0u8; 32][..], |d| &d[..]));
        }
        c.hash = crate::digest::sha256_hex(&all)[..16].to_string();
        c
    });
    errors.finish(config)
}

/// Collects errors and attaches line numbers from the index.
pub(crate) struct Errors {
    lines: yaml::LineIndex,
    list: Vec<ConfigError>,
}

impl Errors {
    pub(crate) fn new(lines: yaml::LineIndex) -> Self {
        Self {
            lines,
            list: Vec::new(),
        }
    }

    pub(crate) fn add(&mut self, path: &str, message: impl Into<String>) {
        self.list.push(ConfigError {
            path: path.to_owned(),
            line: self.lines.line_of(path),
            message: message.into(),
        });
    }

    /// The line of `path`, kept for an error that can only be found later (a cases
    /// file checked against its config).
    pub(crate) fn line_of(&self, path: &str) -> Option<usize> {
        self.lines.line_of(path)
    }

    /// How many errors so far.
    pub(crate) fn count(&self) -> usize {
        self.list.len()
    }

    fn finish<T>(self, value: Option<T>) -> Result<T, ConfigErrors> {
        self.finish_as(value, "invalid config")
            .map_err(ConfigErrors)
    }

    /// `value` if no error was found; otherwise every error in document order (`what`
    /// when the document failed without saying why).
    pub(crate) fn finish_as<T>(
        mut self,
        value: Option<T>,
        what: &str,
    ) -> Result<T, Vec<ConfigError>> {
        match value {
            Some(v) if self.list.is_empty() => Ok(v),
            _ => {
                if self.list.is_empty() {
                    self.add("", what);
                }
                self.list.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
                Err(self.list)
            }
        }
    }

    /// Deserializes `value` as `T`, reporting a failure with its full path. Every unknown
    /// key is reported (each with the nearest known key when it looks like a typo) and
    /// dropped, and the rest is read again, so one typo hides neither the next nor the
    /// errors of a nested mapping. A value that held an unknown key is not returned: what
    /// is left of it would draw misleading errors (a route without its misspelt
    /// `providers`).
    pub(crate) fn parse<T: serde::de::DeserializeOwned>(
        &mut self,
        path: &str,
        mut value: Value,
    ) -> Option<T> {
        let mut dropped = false;
        // Each round removes one key: a mapping cannot hold more unknown keys than keys.
        loop {
            match serde_path_to_error::deserialize::<_, T>(&value) {
                Ok(v) => return (!dropped).then_some(v),
                Err(e) => {
                    let full = join_path(path, &e.path().to_string());
                    let msg = e.inner().to_string();
                    if let Some((key, expected)) = unknown::parse_serde_message(&msg) {
                        let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
                        self.add(&full, unknown::message(&key, &expected));
                        if unknown::remove_at(&mut value, e.path()) {
                            dropped = true;
                            continue;
                        }
                    } else {
                        self.add(&full, msg);
                    }
                    return None;
                }
            }
        }
    }
}

/// `path` (the mapping's) joined with `inner` (serde_path_to_error's, `.` for itself).
fn join_path(path: &str, inner: &str) -> String {
    match (path.is_empty(), inner) {
        (_, ".") => path.to_owned(),
        (true, _) => inner.to_owned(),
        (false, i) if i.starts_with('[') => format!("{path}{i}"),
        (false, i) => format!("{path}.{i}"),
    }
}

/// Replaces `${NAME}` in every string value; `$${` stays a literal `${`.
fn expand_env(value: &mut Value, path: String, env: &dyn Env, errors: &mut Errors) {
    match value {
        Value::String(s) if s.contains("${") => match expand(s, env) {
            Ok(new) => *s = new,
            Err(msg) => errors.add(&path, msg),
        },
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_env(item, format!("{path}[{i}]"), env, errors);
            }
        }
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                expand_env(v, child, env, errors);
            }
        }
        _ => {}
    }
}

fn expand(s: &str, env: &dyn Env) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let end = after
                .find('}')
                .ok_or_else(|| "unterminated `${` in value".to_string())?;
            let name = &after[..end];
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!(
                    "`${{{name}}}` is not a valid environment variable reference"
                ));
            }
            let v = env
                .var(name)
                .ok_or_else(|| format!("environment variable {name} is not set"))?;
            out.push_str(&v);
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn expands_env_and_escapes() {
        let env: HashMap<String, String> = [("A".to_string(), "x:y".to_string())].into();
        assert_eq!(expand("p-${A}-q", &env).unwrap(), "p-x:y-q");
        assert_eq!(expand("$${A}", &env).unwrap(), "${A}");
        assert_eq!(expand("cost $5", &env).unwrap(), "cost $5");
        assert!(expand("${B}", &env).unwrap_err().contains("B is not set"));
        assert!(expand("${A", &env).is_err());
        assert!(expand("${A-B}", &env).is_err());
    }

    #[test]
    fn the_hash_follows_meaning_env_and_files_not_layout() {
        let dir = tempfile::tempdir().expect("temp dir");
        let jwks =
            |k: &str| format!(r#"{{"keys":[{{"kty":"oct","kid":"k","alg":"HS256","k":"{k}"}}]}}"#);
        let k1 = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0";
        let k2 = "b3RoZXJvdGhlcm90aGVyb3RoZXJvdGhlcm90aGVyb3RoZXI";
        std::fs::write(dir.path().join("keys.json"), jwks(k1)).expect("write");
        let text = "providers:\n  - name: p\n    jwt: { issuer: https://i, audiences: [\"${AUD}\"], algorithms: [HS256], jwks_file: keys.json }\nroutes:\n  - name: r\n    match: { path_prefix: / }\n    providers: [p]\n";
        let hash = |text: &str, aud: &str| {
            let env: HashMap<String, String> = [("AUD".to_string(), aud.to_string())].into();
            match load_str(text, dir.path(), &env) {
                Ok(c) => c.hash().to_string(),
                Err(e) => panic!("{:?}", e.0),
            }
        };
        let first = hash(text, "api");
        assert_eq!(first.len(), 16);
        let reworded = format!(
            "# a comment\n{}",
            text.replace("  - name: r", "  - name: r   # same")
        );
        assert_eq!(
            hash(&reworded, "api"),
            first,
            "comments and layout do not count"
        );
        assert_ne!(hash(text, "other"), first, "an environment variable counts");
        std::fs::write(dir.path().join("keys.json"), jwks(k2)).expect("write");
        assert_ne!(hash(text, "api"), first, "the files it reads count");
    }
}
