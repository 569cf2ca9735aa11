//! Keys fetched from an identity provider: `jwks_uri` or OIDC discovery.
//!
//! Life cycle (SPEC §7):
//! - fetched at start and every `refresh_interval` (sooner when `Cache-Control: max-age`
//!   says so, never sooner than `min_refetch_interval`);
//! - a token with an unknown `kid` triggers a refetch at most once per
//!   `min_refetch_interval`, so a flood of random kids is not a flood at the IdP;
//! - concurrent misses share one fetch (single flight); a check whose key is already
//!   known never waits for a fetch;
//! - a failed fetch (down, slow, not JSON, no usable keys, too large) keeps the last good
//!   keys; a provider with no keys yet retries with backoff, up to `refresh_interval`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use serde_json::Value;
use tokio::sync::OwnedMutexGuard;

use crate::authn::Unavailable;
use crate::authn::http::{self, HttpError};
use crate::authn::jwks::set::{KeyId, KeySet};
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::telemetry::{self, IdpCall};

/// Where the key set is found.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Locator {
    Jwks(String),
    /// The discovery URL and the issuer the document must name.
    Discovery {
        url: String,
        issuer: String,
    },
}

/// How a remote key source behaves: everything that, when changed, means a new store.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RemoteSettings {
    pub provider: Arc<str>,
    pub locator: Locator,
    pub refresh_interval: Duration,
    pub min_refetch_interval: Duration,
    pub timeout: Duration,
    pub ca_file: Option<std::path::PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("{0}")]
    Invalid(String),
}

impl FetchError {
    /// Bounded metric label.
    pub fn label(&self) -> &'static str {
        match self {
            FetchError::Http(e) => e.label(),
            FetchError::Invalid(_) => "invalid",
        }
    }
}

pub struct RemoteKeys {
    settings: RemoteSettings,
    client: reqwest::Client,
    keys: ArcSwapOption<KeySet>,
    /// The jwks_uri learned from discovery.
    jwks_uri: ArcSwapOption<String>,
    /// Serialises fetches; the generation tells a waiter that someone else just fetched.
    fetch_lock: Arc<tokio::sync::Mutex<()>>,
    generation: AtomicU64,
    /// When the last on-demand refetch started (the clock's elapsed ms), for rate limiting.
    last_on_demand: AtomicU64,
    /// When keys were last fetched (the clock's elapsed ms; `u64::MAX`: never).
    fetched_at: AtomicU64,
    /// A background task refreshes these keys ([`RemoteKeys::start_refresh`]); without
    /// one (an engine built by `Engine::new`), checks refresh stale keys themselves.
    refreshed: AtomicBool,
    /// What refresh, staleness and the refetch rate limit are measured by.
    clock: Clock,
    metrics: Arc<Metrics>,
    refresher: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    skips: SkipLog,
    /// Told each time this store's keys change ([`RemoteKeys::notify`]).
    changed: std::sync::OnceLock<tokio::sync::watch::Sender<()>>,
    /// `jwks_fallback_file`: the keys used while none has ever been fetched.
    fallback: ArcSwapOption<KeySet>,
    /// Whether the latest fetch failed: a key id unknown meanwhile may be one the IdP
    /// holds, so it is an outage (503), not a bad token (401).
    last_fetch_failed: AtomicBool,
    /// What `/status` shows: the last fetch, when each key was first held, the next
    /// refresh. Written by fetches and read by `/status` only, never by a check.
    report: std::sync::Mutex<FetchReport>,
}

/// What `/status` shows of a remote key source. Times are unix seconds of ward's clock.
#[derive(Debug, Clone, Default)]
pub struct FetchReport {
    /// When the last fetch ended, and why it failed (None: it succeeded).
    pub last: Option<(u64, Option<String>)>,
    /// When a fetch last succeeded.
    pub last_success: Option<u64>,
    /// When the background refresh fetches next.
    pub next_refresh: Option<u64>,
    /// Since when ward holds each key (fetched or fallback), by content: a key that
    /// stays in the set keeps its time across refreshes, a new one starts now.
    pub first_seen: HashMap<KeyId, u64>,
}

/// Which unusable keys were last reported: a document that skips the same keys on every
/// refresh is reported once, and again only when what it skips changes.
#[derive(Default)]
struct SkipLog(AtomicU64);

impl SkipLog {
    /// Whether `skipped` (the reasons from [`KeySet::from_jwks`]) is news to report.
    fn first_report(&self, skipped: &[String]) -> bool {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        skipped.hash(&mut h);
        // 0 stands for "nothing skipped", so a set that skips nothing resets the log.
        let digest = if skipped.is_empty() {
            0
        } else {
            h.finish().max(1)
        };
        let before = self.0.swap(digest, Ordering::AcqRel);
        !skipped.is_empty() && before != digest
    }
}

/// At most 200 characters of a string from the IdP, for a message.
fn clip(s: &str) -> &str {
    s.char_indices().nth(200).map_or(s, |(i, _)| &s[..i])
}

impl std::fmt::Debug for RemoteKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteKeys")
            .field("settings", &self.settings)
            .finish()
    }
}

impl Drop for RemoteKeys {
    fn drop(&mut self) {
        if let Ok(mut r) = self.refresher.lock()
            && let Some(h) = r.take()
        {
            h.abort();
        }
    }
}

impl RemoteKeys {
    pub fn new(
        settings: RemoteSettings,
        metrics: Arc<Metrics>,
        clock: Clock,
    ) -> Result<Arc<Self>, String> {
        let client = http::client(settings.timeout, settings.ca_file.as_deref())?;
        Ok(Arc::new(Self {
            settings,
            client,
            keys: ArcSwapOption::empty(),
            jwks_uri: ArcSwapOption::empty(),
            fetch_lock: Arc::new(tokio::sync::Mutex::new(())),
            generation: AtomicU64::new(0),
            last_on_demand: AtomicU64::new(u64::MAX),
            fetched_at: AtomicU64::new(u64::MAX),
            refreshed: AtomicBool::new(false),
            clock,
            metrics,
            refresher: std::sync::Mutex::new(None),
            skips: SkipLog::default(),
            changed: std::sync::OnceLock::new(),
            fallback: ArcSwapOption::empty(),
            last_fetch_failed: AtomicBool::new(false),
            report: std::sync::Mutex::new(FetchReport::default()),
        }))
    }

    /// Sets the keys used until a fetch succeeds for the first time (none: no fallback).
    pub fn set_fallback(&self, keys: Option<Arc<KeySet>>) {
        if let Some(k) = &keys {
            let now = self.clock.unix_secs();
            let mut r = self.report();
            for key in k.keys() {
                r.first_seen.entry(key.id()).or_insert(now);
            }
        }
        self.fallback.store(keys);
    }

    /// The report, locked (a poisoned lock still holds a usable report).
    fn report(&self) -> std::sync::MutexGuard<'_, FetchReport> {
        self.report
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A copy of what `/status` shows of this source.
    pub fn fetch_report(&self) -> FetchReport {
        self.report().clone()
    }

    /// The `jwks_uri` discovery found, while it is known.
    pub fn discovered(&self) -> Option<String> {
        self.jwks_uri.load_full().map(|u| (*u).clone())
    }

    /// Whether checks verify with the `jwks_fallback_file` keys: none fetched yet.
    pub fn using_fallback(&self) -> bool {
        self.keys.load().is_none() && self.fallback.load().is_some()
    }

    /// The keys checks verify with: the fetched ones, else the fallback.
    fn held(&self) -> Option<Arc<KeySet>> {
        self.keys.load_full().or_else(|| self.fallback.load_full())
    }

    pub fn settings(&self) -> &RemoteSettings {
        &self.settings
    }

    pub fn current(&self) -> Option<Arc<KeySet>> {
        self.keys.load_full()
    }

    /// Starts from `old`'s keys when both fetch the same document: a reload that changes
    /// how keys are fetched (timeout, intervals, CA bundle, provider name) must not empty
    /// the key set, least of all while the IdP is down. Call before [`Self::start_refresh`],
    /// whose first fetch then replaces them, or keeps them if it fails.
    pub fn inherit(&self, old: &RemoteKeys) {
        if old.settings.locator != self.settings.locator {
            return;
        }
        let Some(keys) = old.keys.load_full() else {
            return;
        };
        let (m, provider) = (&self.metrics, &*self.settings.provider);
        m.jwks_keys
            .with_label_values(&[provider])
            .set(keys.len() as i64);
        let fetched_at = m
            .jwks_last_success
            .with_label_values(&[&*old.settings.provider])
            .get();
        m.jwks_last_success
            .with_label_values(&[provider])
            .set(fetched_at);
        self.keys.store(Some(keys));
        self.jwks_uri.store(old.jwks_uri.load_full());
        let inherited = old.fetch_report();
        {
            let mut r = self.report();
            r.last = inherited.last;
            r.last_success = inherited.last_success;
            r.first_seen.extend(inherited.first_seen);
        }
        self.keys_changed();
    }

    /// Sends on `tx` each time this store's keys change (set once; later calls are
    /// ignored): how the server learns that a provider became ready without polling.
    pub fn notify(&self, tx: tokio::sync::watch::Sender<()>) {
        let _ = self.changed.set(tx);
    }

    fn keys_changed(&self) {
        if let Some(tx) = self.changed.get() {
            tx.send_replace(());
        }
    }

    /// Starts the background refresh (fetch now, then every interval). Stops when the
    /// store is dropped.
    pub fn start_refresh(self: &Arc<Self>) {
        self.refreshed.store(true, Ordering::Release);
        let weak = Arc::downgrade(self);
        let handle = tokio::spawn(refresh_loop(weak));
        if let Ok(mut r) = self.refresher.lock()
            && let Some(old) = r.replace(handle)
        {
            old.abort();
        }
    }

    /// Keys to verify a token with `kid`. Known kid: immediate. Unknown kid or no keys:
    /// one rate-limited, shared refetch, which goes on in its own task if the check that
    /// started it is cancelled (Envoy's timeout), so its keys still arrive. Keys that no
    /// background task refreshes are refetched, behind the check, once they are older
    /// than `refresh_interval`: a key the IdP removed stops verifying.
    pub async fn keys_for(self: &Arc<Self>, kid: Option<&str>) -> Result<Arc<KeySet>, Unavailable> {
        let current = self.held();
        let seen = self.generation.load(Ordering::Acquire);
        if let Some(k) = &current
            && kid.is_none_or(|kid| k.has_kid(kid))
        {
            self.refresh_if_stale(seen);
            return Ok(k.clone());
        }
        // The fetch lock is taken here, before this check can yield: a check that misses
        // the same kid a moment later finds the fetch running and waits for it.
        match self.fetch_lock.clone().try_lock_owned() {
            Err(_) => {
                crate::observe::idp_wait::mark();
                // A fetch is already running (startup, refresh, another miss): its result
                // is what a refetch would bring, so wait for it (bounded by `timeout`).
                drop(self.fetch_lock.lock().await);
            }
            Ok(lock) if self.may_refetch_now() => match self.spawn_fetch(lock, seen) {
                Ok(task) => {
                    crate::observe::idp_wait::mark();
                    drop(task.await)
                }
                Err(lock) => drop(self.fetch_holding(lock, seen).await),
            },
            Ok(_) => {}
        }
        let keys = self.held().ok_or(Unavailable(
            "identity provider unreachable and no keys cached",
        ))?;
        if let Some(kid) = kid
            && !keys.has_kid(kid)
            && self.last_fetch_failed.load(Ordering::Acquire)
        {
            return Err(Unavailable(
                "identity provider unreachable: the key id is not among the keys held",
            ));
        }
        Ok(keys)
    }

    /// The keys checks verify with, fetched or fallback (for readiness).
    pub fn held_keys(&self) -> Option<Arc<KeySet>> {
        self.held()
    }

    /// Whether the key with this id is in the current set: a cached verification counts
    /// only while its key is. Like [`Self::keys_for`], refreshes stale keys behind the
    /// check when no background task does.
    pub fn holds(self: &Arc<Self>, key: KeyId) -> bool {
        // On every cache hit: guards, not clones of the key set.
        let held = match &*self.keys.load() {
            Some(k) => k.holds(key),
            None => self.fallback.load().as_ref().is_some_and(|k| k.holds(key)),
        };
        if held {
            self.refresh_if_stale(self.generation.load(Ordering::Acquire));
        }
        held
    }

    /// Starts a refetch behind the current check when the keys are [stale](Self::is_stale).
    fn refresh_if_stale(self: &Arc<Self>, seen: u64) {
        if self.is_stale()
            && let Ok(lock) = self.fetch_lock.clone().try_lock_owned()
            && self.may_refetch_now()
        {
            drop(self.spawn_fetch(lock, seen));
        }
    }

    /// [`Self::fetch_holding`] in a task of its own, when a tokio runtime runs this: it
    /// goes on whether or not anyone waits for it. Without a runtime, the lock comes back.
    fn spawn_fetch(
        self: &Arc<Self>,
        lock: OwnedMutexGuard<()>,
        seen: u64,
    ) -> Result<tokio::task::JoinHandle<()>, OwnedMutexGuard<()>> {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return Err(lock);
        };
        let this = self.clone();
        // The fetch's span is the child of the check that started it, if any.
        let fetch = async move {
            let _ = this.fetch_holding(lock, seen).await;
        };
        Ok(rt.spawn(tracing::Instrument::in_current_span(fetch)))
    }

    /// Older than `refresh_interval`, with no background task to refresh them.
    fn is_stale(&self) -> bool {
        if self.refreshed.load(Ordering::Acquire) {
            return false;
        }
        let at = self.fetched_at.load(Ordering::Acquire);
        let age = self.clock.elapsed_ms().saturating_sub(at);
        at != u64::MAX && age >= self.settings.refresh_interval.as_millis() as u64
    }

    /// At most one on-demand refetch per `min_refetch_interval`.
    fn may_refetch_now(&self) -> bool {
        let now = self.clock.elapsed_ms();
        let min = self.settings.min_refetch_interval.as_millis() as u64;
        let last = self.last_on_demand.load(Ordering::Acquire);
        if last != u64::MAX && now.saturating_sub(last) < min {
            return false;
        }
        self.last_on_demand
            .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Fetches unless another fetch completed since `seen` (then its result is used).
    async fn fetch_shared(&self, seen: u64) -> Result<Option<Duration>, FetchError> {
        let lock = self.fetch_lock.clone().lock_owned().await;
        self.fetch_holding(lock, seen).await
    }

    /// [`Self::fetch_shared`] with the fetch lock already held.
    async fn fetch_holding(
        &self,
        _lock: OwnedMutexGuard<()>,
        seen: u64,
    ) -> Result<Option<Duration>, FetchError> {
        if self.generation.load(Ordering::Acquire) != seen {
            return Ok(None);
        }
        let r = self.fetch().await;
        self.generation.fetch_add(1, Ordering::AcqRel);
        r
    }

    /// One fetch: discovery (when configured and not yet known), then the JWKS. On
    /// success the new keys replace the old and the `max-age` hint is returned.
    async fn fetch(&self) -> Result<Option<Duration>, FetchError> {
        let provider = &*self.settings.provider;
        let result = self.fetch_inner().await;
        self.last_fetch_failed
            .store(result.is_err(), Ordering::Release);
        {
            let now = self.clock.unix_secs();
            let mut r = self.report();
            r.last = Some((now, result.as_ref().err().map(ToString::to_string)));
            if let Ok((set, _)) = &result {
                r.last_success = Some(now);
                let before = std::mem::take(&mut r.first_seen);
                r.first_seen = set
                    .keys()
                    .map(|k| (k.id(), before.get(&k.id()).copied().unwrap_or(now)))
                    .collect();
            }
        }
        let m = &self.metrics;
        match &result {
            Ok((set, _)) => {
                m.jwks_refresh
                    .with_label_values(&[provider, "success"])
                    .inc();
                m.jwks_keys
                    .with_label_values(&[provider])
                    .set(set.len() as i64);
                m.jwks_last_success
                    .with_label_values(&[provider])
                    .set(self.clock.unix_secs() as f64);
            }
            Err(e) => {
                m.jwks_refresh
                    .with_label_values(&[provider, e.label()])
                    .inc();
                if self.keys.load().is_some() {
                    tracing::warn!(provider, error = %e, "key set fetch failed; keeping the last good keys");
                } else {
                    tracing::warn!(provider, error = %e, "key set fetch failed; no keys held yet");
                }
            }
        }
        result.map(|(set, max_age)| {
            self.keys.store(Some(Arc::new(set)));
            let now = self.clock.elapsed_ms();
            self.fetched_at.store(now, Ordering::Release);
            self.keys_changed();
            max_age
        })
    }

    async fn fetch_inner(&self) -> Result<(KeySet, Option<Duration>), FetchError> {
        let uri = match &self.settings.locator {
            Locator::Jwks(u) => u.clone(),
            Locator::Discovery { url, issuer } => match self.jwks_uri.load_full() {
                Some(u) => (*u).clone(),
                None => {
                    let (doc, _) = self.get_json(url, IdpCall::Discovery).await?;
                    let named = doc.get("issuer").and_then(Value::as_str);
                    if named != Some(issuer.as_str()) {
                        return Err(FetchError::Invalid(format!(
                            "discovery document names issuer {} where {issuer:?} is configured",
                            named.map_or("none".to_string(), |n| format!("{:?}", clip(n))),
                        )));
                    }
                    let u = doc
                        .get("jwks_uri")
                        .and_then(Value::as_str)
                        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
                        .ok_or_else(|| {
                            FetchError::Invalid("discovery document has no jwks_uri".into())
                        })?
                        .to_string();
                    self.jwks_uri.store(Some(Arc::new(u.clone())));
                    u
                }
            },
        };
        let (doc, max_age) = self.get_json(&uri, IdpCall::Jwks).await?;
        let (set, skipped) =
            KeySet::from_jwks(&doc).map_err(|e| FetchError::Invalid(e.to_string()))?;
        if self.skips.first_report(&skipped) {
            tracing::warn!(provider = &*self.settings.provider, skipped = ?skipped, "unusable keys skipped");
        }
        if set.is_empty() {
            // Forget a discovered jwks_uri so the next attempt rediscovers it.
            self.jwks_uri.store(None);
            return Err(FetchError::Invalid(
                "key set holds no usable signing key".into(),
            ));
        }
        Ok((set, max_age))
    }

    async fn get_json(
        &self,
        url: &str,
        call: IdpCall,
    ) -> Result<(Value, Option<Duration>), FetchError> {
        let req = self.client.get(url).header("accept", "application/json");
        let timeout = self.settings.timeout;
        let (doc, headers) = telemetry::idp_call(call, &self.settings.provider, req, |req| {
            http::json_object(req, timeout)
        })
        .await?;
        let max_age = headers
            .get("cache-control")
            .and_then(|v| v.to_str().ok())
            .and_then(max_age);
        Ok((Value::Object(doc), max_age))
    }

    /// The delay before the next scheduled refresh after a fetch.
    fn next_delay(
        &self,
        outcome: &Result<Option<Duration>, FetchError>,
        failures: u32,
    ) -> Duration {
        let s = &self.settings;
        match outcome {
            Ok(max_age) => {
                let d = max_age.map_or(s.refresh_interval, |m| m.min(s.refresh_interval));
                d.max(s.min_refetch_interval.min(s.refresh_interval))
            }
            Err(_) => {
                let backoff = Duration::from_secs(1u64 << failures.min(6));
                backoff.min(s.refresh_interval)
            }
        }
    }
}

/// `max-age=N` from a Cache-Control value.
fn max_age(v: &str) -> Option<Duration> {
    v.split(',')
        .map(str::trim)
        .find_map(|d| d.strip_prefix("max-age="))
        .and_then(|n| n.trim_matches('"').parse::<u64>().ok())
        .map(Duration::from_secs)
}

async fn refresh_loop(weak: Weak<RemoteKeys>) {
    let mut failures = 0u32;
    loop {
        // The store is held only while fetching: dropping it ends the loop.
        let (delay, clock) = {
            let Some(this) = weak.upgrade() else { return };
            let seen = this.generation.load(Ordering::Acquire);
            let outcome = this.fetch_shared(seen).await;
            failures = if outcome.is_ok() {
                0
            } else {
                failures.saturating_add(1)
            };
            let delay = this.next_delay(&outcome, failures);
            this.report().next_refresh =
                Some(this.clock.unix().saturating_add(delay).as_secs_f64().ceil() as u64);
            (delay, this.clock.clone())
        };
        clock.sleep(delay).await;
    }
}

#[cfg(test)]
mod tests;
