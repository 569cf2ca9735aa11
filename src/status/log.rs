//! What `/status` remembers between requests: where the config comes from, when it was
//! loaded, the last reload attempt, and since when each static key (`jwks_file`, inline
//! `jwks`) is held. Written at start and by reloads, read by `/status`; a check never
//! touches it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::ReloadStatus;
use crate::authn::ProviderKind;
use crate::authn::jwks::{KeyId, KeySource};
use crate::config::{Config, ConfigErrors, Env};

/// The config's history as `/status` shows it.
pub(crate) struct StatusLog(Mutex<Inner>);

#[derive(Clone)]
pub(super) struct Inner {
    pub(super) source: Option<String>,
    pub(super) loaded_at: u64,
    pub(super) last_reload: Option<ReloadStatus>,
    /// Since when each static key is held, by content.
    pub(super) static_keys: HashMap<KeyId, u64>,
}

impl StatusLog {
    /// The log of a config loaded at `now`.
    pub(crate) fn new(config: &Config, now: u64) -> Self {
        let mut inner = Inner {
            source: None,
            loaded_at: now,
            last_reload: None,
            static_keys: HashMap::new(),
        };
        note_static_keys(&mut inner.static_keys, config, now);
        Self(Mutex::new(inner))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn snapshot(&self) -> Inner {
        self.lock().clone()
    }

    /// The file the config is (re)loaded from.
    pub(crate) fn set_source(&self, path: &Path) {
        self.lock().source = Some(path.display().to_string());
    }

    /// `config` was swapped in at `now`.
    pub(crate) fn reloaded(&self, config: &Config, now: u64) {
        let mut inner = self.lock();
        inner.loaded_at = now;
        inner.last_reload = Some(ReloadStatus {
            at: now,
            result: "success".into(),
            error: None,
        });
        note_static_keys(&mut inner.static_keys, config, now);
    }

    /// A reload failed at `now` for `error` (already rendered and scrubbed).
    pub(crate) fn failed(&self, now: u64, error: String) {
        self.lock().last_reload = Some(ReloadStatus {
            at: now,
            result: "failure".into(),
            error: Some(error),
        });
    }
}

/// Keeps the first-held time of every static key `config` holds, forgets the others.
fn note_static_keys(seen: &mut HashMap<KeyId, u64>, config: &Config, now: u64) {
    let before = std::mem::take(seen);
    for p in &config.providers {
        if let ProviderKind::Jwt(j) = &p.kind
            && let KeySource::Static(set) = &j.key_source
        {
            for k in set.keys() {
                let at = before.get(&k.id()).copied().unwrap_or(now);
                seen.insert(k.id(), at);
            }
        }
    }
}

/// Every error of a config file as `ward validate` prints it: one a line, each with the
/// file (and line) in front.
pub(crate) fn render_errors(origin: &str, errors: &ConfigErrors) -> String {
    errors
        .0
        .iter()
        .map(|e| match e.line {
            Some(_) => format!("{origin}:{e}"),
            None if e.path.is_empty() => e.message.clone(),
            None => format!("{origin}: {e}"),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The values `${NAME}` stands for in the config file at `path` (read through `env`),
/// each with its reference: what [`scrub`] takes out of an error message.
pub(crate) fn env_values(path: &Path, env: &dyn Env) -> Vec<(String, String)> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("${") {
        let after = &rest[at + 2..];
        let Some(end) = after.find('}') else { break };
        let name = &after[..end];
        if !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && let Some(v) = env.var(name)
            && !v.is_empty()
        {
            out.push((v, format!("${{{name}}}")));
        }
        rest = &after[end..];
    }
    out
}

/// `message` with every value in `secrets` replaced by its reference (`${NAME}`),
/// longest value first: an error may quote a value read from the environment.
pub fn scrub(message: &str, secrets: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = secrets.iter().collect();
    sorted.sort_by_key(|(v, _)| std::cmp::Reverse(v.len()));
    let mut out = message.to_string();
    for (value, reference) in sorted {
        out = out.replace(value.as_str(), reference);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_replaces_environment_values_longest_first() {
        let secrets = vec![
            ("abc".to_string(), "${SHORT}".to_string()),
            ("abcdef".to_string(), "${LONG}".to_string()),
        ];
        assert_eq!(
            scrub("invalid type: string \"abcdef\" and abc", &secrets),
            "invalid type: string \"${LONG}\" and ${SHORT}"
        );
    }

    #[test]
    fn env_values_reads_each_reference() {
        let dir = std::env::temp_dir().join(format!("ward-status-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("ward.yaml");
        std::fs::write(
            &file,
            "a: ${ONE}\nb: \"x${TWO}y\"\nc: ${UNSET}\nd: ${bad-name}\n",
        )
        .expect("write");
        let env: HashMap<String, String> = [("ONE", "1111"), ("TWO", "2222")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let got = env_values(&file, &env);
        assert_eq!(
            got,
            vec![
                ("1111".to_string(), "${ONE}".to_string()),
                ("2222".to_string(), "${TWO}".to_string())
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
