//! ward as a local issuer (SPEC §8): short-lived tokens with a business purpose, signed
//! with ward's own keys, so a service behind ward verifies one issuer, offline.
//!
//! `keys.rs` reads the signing keys and signs; `mint.rs` turns a verified identity into a
//! token's claims and keeps the mint cache; `exchange.rs` reads an RFC 8693 token
//! exchange request and writes its answers. The engine decides when to mint (an allowed
//! check on a route with `mint:`, an exchange whose rules pass); the admin listener
//! publishes the keys and serves the exchange.

pub mod exchange;
pub mod keys;
pub mod mint;

use std::sync::Arc;

use serde_json::{Value, json};

use crate::authz::condition::Condition;
use crate::header::HeaderName;
use keys::SigningKeys;
use mint::Grant;

/// The `signing` section: ward's `iss` and keys.
#[derive(Debug)]
pub struct Signing {
    /// The `iss` of every token, exactly as configured.
    pub issuer: Arc<str>,
    pub keys: Arc<SigningKeys>,
}

impl Signing {
    /// `/.well-known/openid-configuration`: where the keys are, and the token endpoint
    /// when an exchange is configured. The issuer's URL is taken to reach the admin
    /// listener (where both documents and `/token` are served).
    pub fn discovery(&self, exchange: bool) -> Value {
        let base = self.issuer.trim_end_matches('/');
        let mut algs: Vec<&str> = Vec::new();
        for k in self.keys.all() {
            if !algs.contains(&k.alg().name()) {
                algs.push(k.alg().name());
            }
        }
        let mut doc = json!({
            "issuer": &*self.issuer,
            "jwks_uri": format!("{base}/.well-known/jwks.json"),
            "id_token_signing_alg_values_supported": algs,
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
        });
        if exchange && let Value::Object(m) = &mut doc {
            m.insert("token_endpoint".into(), format!("{base}/token").into());
            m.insert(
                "grant_types_supported".into(),
                json!([exchange::GRANT_TYPE]),
            );
            m.insert(
                "token_endpoint_auth_methods_supported".into(),
                json!(["none"]),
            );
        }
        doc
    }
}

/// A route's `mint:`: what to mint on allow, and the header (owned) that carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintSpec {
    pub grant: Grant,
    pub header: HeaderName,
}

/// One `exchange:` purpose: who may exchange a credential for a token of `audience`.
#[derive(Debug)]
pub struct ExchangeSpec {
    pub grant: Grant,
    /// Indices into the config's providers: they verify the subject token.
    pub providers: Vec<usize>,
    pub require: Option<Condition>,
}
