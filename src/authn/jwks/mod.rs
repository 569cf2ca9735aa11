//! JSON Web Key Sets: the keys a JWT provider verifies with, and where they come from.
//!
//! - [`set`]: a JWKS document parsed once into verification keys ([`KeySet`]);
//! - [`remote`]: a key set fetched from the identity provider (`jwks_uri` or OpenID
//!   discovery), refreshed, and refetched on an unknown `kid` at a bounded rate;
//! - [`store`]: a provider's keys at run time ([`KeyStore`]) and the registry that keeps
//!   remote stores alive across reloads ([`KeySources`]).
//!
//! Nothing here knows of tokens or providers: a provider says what it wants
//! ([`Wanted`]), and the JWT verifier asks a [`KeySet`] for candidate keys.

pub mod remote;
pub mod set;
pub mod store;

use std::sync::Arc;

#[cfg(any(test, feature = "internals"))]
pub use remote::RemoteKeys;
pub use remote::{Locator, RemoteSettings};
#[cfg(any(test, feature = "internals"))]
pub use set::{JwksError, KeyKind, VerifyKey};
pub use set::{KeyId, KeySet};
pub use store::{KeySources, KeyStore};

/// Where a JWT provider's keys come from, as configured.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// `jwks_file` or inline `jwks`, read at config load.
    Static(Arc<KeySet>),
    /// `jwks_uri`.
    Remote(String),
    /// `discovery: true`: the OpenID configuration URL derived from the issuer.
    Discovery(String),
}

/// The keys one provider asks [`KeySources`] for.
#[derive(Debug, Clone)]
pub enum Wanted {
    /// Keys read from the config.
    Static(Arc<KeySet>),
    /// Keys fetched, refreshed and shared by every provider with the same settings; and
    /// the keys to use until the first fetch succeeds (`jwks_fallback_file`).
    Remote(RemoteSettings, Option<Arc<KeySet>>),
}
