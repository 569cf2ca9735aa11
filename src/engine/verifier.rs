//! What a JWT provider verifies with: its keys and its handle on the verified-token
//! cache. The flow that uses it on a route (cache lookup, issuer pick, insert) is in
//! `jwt.rs`.

use std::sync::Arc;

use crate::authn::Identity;
use crate::authn::binding::{self, Binding};
use crate::authn::cache::{TokenCache, Verified};
use crate::authn::dpop::Dpop;
use crate::authn::jwks::{KeySet, KeyStore};
use crate::authn::jwt::{self, JwtSettings};
use crate::decision::DenyReason;
use crate::metrics::{CacheCounters, DecryptionCounters};

/// What a JWT provider verifies with: its keys, and its handle on the verified-token
/// cache (shared by every JWT provider of the policy) with its own hit/miss counters.
pub(crate) struct JwtVerifier {
    pub(super) keys: Option<KeyStore>,
    pub(super) cache: TokenCache,
    pub(super) counters: CacheCounters,
    /// The top-level claims an identity keeps (those some condition reads).
    kept_claims: Arc<[Arc<str>]>,
    /// The DPoP replay cache and proof counters (shared by the policy's providers).
    pub(super) dpop: Arc<Dpop>,
    /// For a provider with `decryption`: its nested-JWT counters.
    pub(super) decryptions: Option<DecryptionCounters>,
}

impl JwtVerifier {
    pub(super) fn new(
        keys: Option<KeyStore>,
        cache: TokenCache,
        counters: CacheCounters,
        kept_claims: Arc<[Arc<str>]>,
        dpop: Arc<Dpop>,
        decryptions: Option<DecryptionCounters>,
    ) -> Self {
        Self {
            keys,
            cache,
            counters,
            kept_claims,
            dpop,
            decryptions,
        }
    }

    pub(super) fn has_keys(&self) -> bool {
        self.keys.as_ref().is_some_and(KeyStore::has_keys)
    }

    /// Whether `v`, a cached verification, was made by this provider (named `provider`)
    /// with a key it still holds.
    pub(super) fn vouches_for(&self, provider: &Arc<str>, v: &Verified) -> bool {
        Arc::ptr_eq(provider, &v.identity.provider)
            && self.keys.as_ref().is_some_and(|k| k.holds(v.key))
    }

    /// Checks a parsed token against `keys`, this provider's (`name`; `s` are its
    /// settings), and caches the result under `key`: the identity and what the token is
    /// bound to, which the caller checks against the request.
    pub(super) fn verified(
        &self,
        name: &Arc<str>,
        s: &JwtSettings,
        parsed: jwt::Parsed<'_>,
        keys: &KeySet,
        key: [u8; 32],
        now: u64,
    ) -> Result<(Arc<Identity>, Option<Binding>), DenyReason> {
        // Read before the claims go into the identity, judged once the token is.
        let binding = binding::from_claims(&parsed.claims);
        let (id, by) = jwt::verify_keyed(parsed, s, keys, name, now, &self.kept_claims)
            .map_err(DenyReason::InvalidToken)?;
        let binding = binding.map_err(DenyReason::InvalidToken)?;
        let id = Arc::new(id);
        let verified = Verified {
            identity: id.clone(),
            key: by,
            binding,
        };
        self.cache.insert(key, verified, now);
        Ok((id, binding))
    }
}
