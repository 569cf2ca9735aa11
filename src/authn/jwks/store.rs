//! Where a JWT provider's verification keys live at run time, and the registry that
//! keeps remote key stores (and their caches) alive across config reloads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::authn::Unavailable;
use crate::authn::jwks::Wanted;
use crate::authn::jwks::remote::{RemoteKeys, RemoteSettings};
use crate::authn::jwks::set::{KeyId, KeySet};
use crate::clock::Clock;
use crate::metrics::Metrics;

/// The keys of one JWT provider.
#[derive(Debug, Clone)]
pub enum KeyStore {
    /// Keys read from the config (`jwks_file`, inline `jwks`): fixed until a reload.
    Static(Arc<KeySet>),
    /// Keys fetched from the IdP and refreshed.
    Remote(Arc<RemoteKeys>),
}

impl KeyStore {
    /// The keys to verify a token with this `kid`.
    pub async fn keys_for(&self, kid: Option<&str>) -> Result<Arc<KeySet>, Unavailable> {
        match self {
            KeyStore::Static(k) => Ok(k.clone()),
            KeyStore::Remote(r) => r.keys_for(kid).await,
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
            KeyStore::Remote(r) => r.held_keys().is_some_and(|k| !k.is_empty()),
        }
    }
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
    /// The time remote stores refresh and rate-limit by.
    clock: Clock,
    live: Mutex<HashMap<RemoteSettings, Arc<RemoteKeys>>>,
    /// Sent on whenever a remote store's keys change.
    changed: tokio::sync::watch::Sender<()>,
}

impl KeySources {
    /// A registry whose remote stores read `clock`.
    pub fn with_clock(metrics: Arc<Metrics>, refresh: bool, clock: Clock) -> Self {
        Self {
            metrics,
            refresh,
            clock,
            live: Mutex::new(HashMap::new()),
            changed: tokio::sync::watch::Sender::new(()),
        }
    }

    /// A receiver that sees a change each time a remote store's keys change (fetched,
    /// refreshed, or inherited on reload); subscribe before checking readiness, then
    /// wait on it, and no change is missed.
    pub fn keys_changed(&self) -> tokio::sync::watch::Receiver<()> {
        self.changed.subscribe()
    }

    /// The clock the stores read.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// One store per provider, in order, from what each wants (None for providers that
    /// verify no JWT: see `ProviderSettings::keys_wanted`). Stores no longer wanted are
    /// dropped, which stops their refresh.
    pub fn stores_for(
        &self,
        wanted: impl IntoIterator<Item = Option<Wanted>>,
    ) -> Result<Vec<Option<KeyStore>>, String> {
        let mut live = self
            .live
            .lock()
            .map_err(|_| "key registry poisoned".to_string())?;
        let mut next = HashMap::new();
        let mut out = Vec::new();
        for w in wanted {
            let store = match w {
                None => None,
                Some(Wanted::Static(k)) => Some(KeyStore::Static(k)),
                Some(Wanted::Remote(rs, fallback)) => {
                    let r = match live.get(&rs) {
                        Some(r) => r.clone(),
                        None => self.start(&rs, &live)?,
                    };
                    r.set_fallback(fallback);
                    next.insert(rs, r.clone());
                    Some(KeyStore::Remote(r))
                }
            };
            out.push(store);
        }
        *live = next;
        Ok(out)
    }

    /// A new remote store, starting from the keys of a live store of the same document.
    fn start(
        &self,
        rs: &RemoteSettings,
        live: &HashMap<RemoteSettings, Arc<RemoteKeys>>,
    ) -> Result<Arc<RemoteKeys>, String> {
        let name = &*rs.provider;
        let r = RemoteKeys::new(rs.clone(), self.metrics.clone(), self.clock.clone())
            .map_err(|e| format!("provider {name}: {e}"))?;
        r.notify(self.changed.clone());
        let same_document = live
            .values()
            .find(|old| old.settings().locator == rs.locator && old.current().is_some());
        if let Some(old) = same_document {
            r.inherit(old);
        }
        let m = &self.metrics;
        m.jwks_refresh.with_label_values(&[name, "success"]);
        m.jwks_keys.with_label_values(&[name]);
        m.jwks_last_success.with_label_values(&[name]);
        if self.refresh {
            r.start_refresh();
        }
        Ok(r)
    }
}
