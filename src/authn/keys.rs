//! Where a JWT provider's verification keys live at run time.

use std::sync::Arc;

use crate::authn::jwk::KeySet;

/// The keys of one JWT provider.
#[derive(Debug, Clone)]
pub enum KeyStore {
    /// Keys read from the config (`jwks_file`, inline `jwks`): fixed until a reload.
    Static(Arc<KeySet>),
}

/// Keys cannot be had right now (the provider has none yet and the IdP is unreachable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable(pub &'static str);

impl KeyStore {
    /// The keys to verify a token with this `kid`.
    pub async fn keys_for(&self, _kid: Option<&str>) -> Result<Arc<KeySet>, Unavailable> {
        match self {
            KeyStore::Static(k) => Ok(k.clone()),
        }
    }

    /// Whether the provider holds any key (for `/readyz`).
    pub fn has_keys(&self) -> bool {
        match self {
            KeyStore::Static(k) => !k.is_empty(),
        }
    }
}
