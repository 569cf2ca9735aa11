//! Where a JWT provider's verification keys live at run time, and the registry that
//! keeps remote key stores (and their caches) alive across config reloads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::authn::ProviderKind;
use crate::authn::jwk::{KeyId, KeySet};
use crate::authn::jwt::{JwtSettings, KeySource};
use crate::authn::remote::{Locator, RemoteKeys, RemoteSettings};
use crate::config::Config;
use crate::metrics::Metrics;

/// The keys of one JWT provider.
#[derive(Debug, Clone)]
pub enum KeyStore {
    /// Keys read from the config (`jwks_file`, inline `jwks`): fixed until a reload.
    Static(Arc<KeySet>),
    /// Keys fetched from the IdP and refreshed.
    Remote(Arc<RemoteKeys>),
}

/// Keys cannot be had right now (the provider has none yet and the IdP is unreachable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable(pub &'static str);

impl KeyStore {
    /// The keys to verify a token with this `kid`.
    pub async fn keys_for(&self, kid: Option<&str>) -> Result<Arc<KeySet>, Unavailable> {
        match self {
            KeyStore::Static(k) => Ok(k.clone()),
            KeyStore::Remote(r) => r.keys_for(kid).await.map_err(Unavailable),
        }
    }

    /// Whether the key with this id is still among the provider's keys: a cached
    /// verification by a key since removed from the JWKS no longer counts.
    pub fn holds(&self, key: KeyId) -> bool {
        match self {
            KeyStore::Static(k) => k.holds(key),
            KeyStore::Remote(r) => r.holds(key),
        }
    }

    /// Whether the provider holds any key (for `/readyz`).
    pub fn has_keys(&self) -> bool {
        match self {
            KeyStore::Static(k) => !k.is_empty(),
            KeyStore::Remote(r) => r.current().is_some_and(|k| !k.is_empty()),
        }
    }
}

fn remote_settings(name: &Arc<str>, j: &JwtSettings) -> Option<RemoteSettings> {
    let locator = match &j.key_source {
        KeySource::Static(_) => return None,
        KeySource::Remote(u) => Locator::Jwks(u.clone()),
        KeySource::Discovery(u) => Locator::Discovery {
            url: u.clone(),
            issuer: j.issuer.to_string(),
        },
    };
    Some(RemoteSettings {
        provider: name.clone(),
        locator,
        refresh_interval: j.refresh_interval,
        min_refetch_interval: j.min_refetch_interval,
        timeout: j.timeout,
        ca_file: j.ca_file.clone(),
    })
}

/// Hands out key stores for a config. A remote store whose settings are unchanged is
/// reused by the next config, keys and all; a new store for the same document (its
/// timeout or intervals changed, say) starts from the old store's keys. Either way a
/// reload never empties a key cache.
pub struct KeySources {
    metrics: Arc<Metrics>,
    /// Start background refresh for new remote stores (the server); `ward check` fetches
    /// on demand only.
    refresh: bool,
    live: Mutex<HashMap<RemoteSettings, Arc<RemoteKeys>>>,
}

impl KeySources {
    pub fn new(metrics: Arc<Metrics>, refresh: bool) -> Self {
        Self {
            metrics,
            refresh,
            live: Mutex::new(HashMap::new()),
        }
    }

    /// One store per provider of `config` (None for non-JWT providers). Stores no longer
    /// named by `config` are dropped, which stops their refresh.
    pub fn stores_for(&self, config: &Config) -> Result<Vec<Option<KeyStore>>, String> {
        let mut live = self
            .live
            .lock()
            .map_err(|_| "key registry poisoned".to_string())?;
        let mut next = HashMap::new();
        let mut out = Vec::with_capacity(config.providers.len());
        for p in &config.providers {
            let store = match &p.kind {
                ProviderKind::Jwt(j) => match (&j.key_source, remote_settings(&p.name, j)) {
                    (KeySource::Static(k), _) => Some(KeyStore::Static(k.clone())),
                    (_, Some(rs)) => {
                        let r = match live.get(&rs) {
                            Some(r) => r.clone(),
                            None => {
                                let r = RemoteKeys::new(rs.clone(), self.metrics.clone())
                                    .map_err(|e| format!("provider {}: {e}", p.name))?;
                                let same_document = live.values().find(|old| {
                                    old.settings().locator == rs.locator && old.current().is_some()
                                });
                                if let Some(old) = same_document {
                                    r.inherit(old);
                                }
                                let m = &self.metrics;
                                m.jwks_refresh.with_label_values(&[&*p.name, "success"]);
                                m.jwks_keys.with_label_values(&[&*p.name]);
                                m.jwks_last_success.with_label_values(&[&*p.name]);
                                if self.refresh {
                                    r.start_refresh();
                                }
                                r
                            }
                        };
                        next.insert(rs, r.clone());
                        Some(KeyStore::Remote(r))
                    }
                    (_, None) => None,
                },
                _ => None,
            };
            out.push(store);
        }
        *live = next;
        Ok(out)
    }
}
