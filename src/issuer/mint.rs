//! Minting a purpose token from a verified identity (SPEC §8), and the mint cache that
//! keeps a hot route from signing on every check.
//!
//! A token says who (`sub`, `act`: the credential it was minted from), what for (`aud`,
//! `purpose`) and for how long, plus the claims its grant lists. Its `exp` never passes
//! the credential's own: a purpose token cannot outlive what vouched for it.
//!
//! The cache is keyed by everything a token says except its times and `jti` (purpose,
//! identity) and the credential's expiry, compared exactly, bounded like the token cache,
//! and an entry is handed out until 80% of the token's lifetime has passed.

use std::sync::Arc;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use prometheus::IntCounter;
use serde_json::{Map, Value};

use super::keys::{SignError, SigningKeys};
use crate::authn::Identity;
use crate::authn::claims::Names;

/// What a token is minted for: a route's `mint:` or an exchange (SPEC §8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The `purpose` claim: the route's or the exchange's name.
    pub purpose: Arc<str>,
    /// The `aud` claim.
    pub audience: Arc<str>,
    /// The longest lifetime, in seconds (shortened to the credential's own expiry).
    pub ttl_secs: u64,
    /// The identity's claims copied into the token: `sub`, `roles` (the verified roles),
    /// `scope` (the verified scopes, space-separated) or a top-level claim of the
    /// credential.
    pub claims: Box<[Arc<str>]>,
}

/// The claims a token sets itself: a grant cannot list them.
pub const RESERVED_CLAIMS: &[&str] = &["iss", "aud", "iat", "exp", "nbf", "jti", "purpose", "act"];

/// A signed token and when it stops being valid (unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Minted {
    pub token: Arc<str>,
    pub expires_at: u64,
}

#[derive(Clone)]
struct Entry {
    minted: Minted,
    /// Handed out again until then (80% of its lifetime).
    fresh_until: u64,
}

/// ward as an issuer: its `iss`, its keys, the mint cache.
pub struct Issuer {
    issuer: Arc<str>,
    keys: Arc<SigningKeys>,
    cache: quick_cache::sync::Cache<Box<[u8]>, Entry>,
    rng: SystemRandom,
}

/// Why no token was minted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MintError {
    /// The identity names no subject: a purpose token must say who it is for.
    #[error("the credential names no subject")]
    NoSubject,
    /// The credential expires within the second: nothing left to mint for.
    #[error("the credential has expired")]
    Expired,
    #[error(transparent)]
    Sign(#[from] SignError),
}

impl Issuer {
    pub fn new(issuer: Arc<str>, keys: Arc<SigningKeys>, max_entries: u64) -> Self {
        let bound = usize::try_from(max_entries).unwrap_or(usize::MAX).max(1);
        Self {
            issuer,
            keys,
            cache: quick_cache::sync::Cache::new(bound),
            rng: SystemRandom::new(),
        }
    }

    /// A token for `id` under `grant` at `now`: the cached one while it is fresh, else a
    /// new one (counted in `minted`). `cached: false` always signs anew (an exchange).
    pub fn mint(
        &self,
        grant: &Grant,
        id: &Identity,
        now: u64,
        cached: bool,
        minted: &IntCounter,
    ) -> Result<Minted, MintError> {
        let sub = id.subject.as_deref().ok_or(MintError::NoSubject)?;
        let expires_at = match id.expires_at {
            Some(exp) => exp.min(now.saturating_add(grant.ttl_secs)),
            None => now.saturating_add(grant.ttl_secs),
        };
        if expires_at <= now {
            return Err(MintError::Expired);
        }
        let key = cached.then(|| cache_key(grant, id, sub));
        if let Some(key) = &key
            && let Some(e) = self.cache.get(&key[..])
        {
            if now < e.fresh_until {
                return Ok(e.minted);
            }
            self.cache.remove(&key[..]);
        }
        let mut claims = self.claims(grant, id, sub);
        claims.insert("iat".into(), now.into());
        claims.insert("exp".into(), expires_at.into());
        claims.insert("jti".into(), self.jti().into());
        let payload = Value::Object(claims).to_string();
        let token: Arc<str> = self.keys.current().sign(payload.as_bytes())?.into();
        minted.inc();
        let m = Minted { token, expires_at };
        if let Some(key) = key {
            let lifetime = expires_at - now;
            let fresh_until = now + lifetime * 4 / 5;
            if fresh_until > now {
                self.cache.insert(
                    key.into_boxed_slice(),
                    Entry {
                        minted: m.clone(),
                        fresh_until,
                    },
                );
            }
        }
        Ok(m)
    }

    /// Every claim but the times and `jti`.
    fn claims(&self, grant: &Grant, id: &Identity, sub: &str) -> Map<String, Value> {
        let mut c = Map::new();
        c.insert("iss".into(), (*self.issuer).into());
        c.insert("aud".into(), (*grant.audience).into());
        c.insert("sub".into(), sub.into());
        c.insert("purpose".into(), (*grant.purpose).into());
        let mut act = Map::new();
        if let Some(iss) = &id.issuer {
            act.insert("iss".into(), (**iss).into());
        }
        act.insert("sub".into(), sub.into());
        c.insert("act".into(), Value::Object(act));
        for (name, value) in granted(grant, id) {
            let value = match value {
                Granted::Roles(roles) => Value::Array(roles.iter().map(Value::from).collect()),
                Granted::Scopes(scopes) => Value::from(scopes.join(' ')),
                Granted::Claim(v) => v.clone(),
            };
            c.insert(name.to_owned(), value);
        }
        c
    }

    /// 128 random bits, base64url.
    fn jti(&self) -> String {
        let mut bytes = [0u8; 16];
        // The system RNG does not fail on a running Linux; should it, a jti of zeros is
        // still unique enough with `iat` and `sub`, and the token still verifies.
        let _ = self.rng.fill(&mut bytes);
        B64.encode(bytes)
    }
}

/// A claim a grant copies from the identity, as the identity holds it.
enum Granted<'a> {
    Roles(&'a Names),
    Scopes(&'a Names),
    Claim(&'a Value),
}

/// The claims `grant` copies from `id` that it has: the one list both the token and its
/// cache key are made from, so that two identities that would get different tokens never
/// share a key.
fn granted<'a>(grant: &'a Grant, id: &'a Identity) -> impl Iterator<Item = (&'a str, Granted<'a>)> {
    grant.claims.iter().filter_map(|name| {
        let value = match &**name {
            "sub" => return None,
            "roles" if !id.roles.is_empty() => Granted::Roles(&id.roles),
            "scope" if !id.scopes.is_empty() => Granted::Scopes(&id.scopes),
            "roles" | "scope" => return None,
            other => Granted::Claim(id.claims.get(other)?),
        };
        Some((&**name, value))
    })
}

/// Everything a token says but its times and `jti` (the issuer is the cache's own), and
/// the credential's expiry, which bounds the token's: each part length-prefixed, so that
/// no two different inputs give the same bytes. The key is these bytes themselves, not a
/// digest of them: the cache compares keys exactly, so no crafted identity can collide
/// with another's, and a hit hashes a few hundred bytes with the cache's hasher instead of
/// SHA-256. Made from the identity directly: on a hit, no claim is built.
fn cache_key(grant: &Grant, id: &Identity, sub: &str) -> Vec<u8> {
    let mut buf = Vec::with_capacity(256);
    let b = &mut buf;
    part(b, grant.audience.as_bytes());
    part(b, grant.purpose.as_bytes());
    part(b, sub.as_bytes());
    part(b, &[u8::from(id.issuer.is_some())]);
    part(b, id.issuer.as_deref().unwrap_or_default().as_bytes());
    for (name, value) in granted(grant, id) {
        part(b, name.as_bytes());
        match value {
            Granted::Roles(names) | Granted::Scopes(names) => {
                for name in names.iter() {
                    part(b, name.as_bytes());
                }
                // A name is never empty: this ends the list.
                part(b, &[]);
            }
            // Serialized in place: writing JSON into a Vec cannot fail.
            Granted::Claim(v) => part_with(b, |b| {
                let _ = serde_json::to_writer(b, v);
            }),
        }
    }
    part(b, &id.expires_at.unwrap_or(u64::MAX).to_be_bytes());
    buf
}

/// Appends `bytes` to `buf`, prefixed with their length (8 bytes, big-endian).
fn part(buf: &mut Vec<u8>, bytes: &[u8]) {
    part_with(buf, |b| b.extend_from_slice(bytes));
}

/// Appends what `write` writes to `buf`, prefixed with its length.
fn part_with(buf: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
    let at = buf.len();
    buf.extend_from_slice(&[0; 8]);
    write(buf);
    let len = (buf.len() - at - 8) as u64;
    buf[at..at + 8].copy_from_slice(&len.to_be_bytes());
}

#[cfg(test)]
mod tests;
