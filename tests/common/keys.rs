//! Keys and tokens minted at test time. [`TestKey`] is a `testkeys::Key` (the key
//! generator ward's tests and benchmarks share) named by ward's own [`Alg`];
//! [`KeyRing`] holds one key of every family (RSA 2048, P-256, P-384, Ed25519, HMAC) per
//! test binary; [`corp_provider`] and [`corp_token`] are a provider and a token it
//! accepts; [`jws`], [`b64url`] and [`hs256_with_secret`] build hostile tokens by hand.

use std::ops::Deref;
use std::sync::OnceLock;

use serde_json::{Value, json};
use ward::authn::jwt::Alg;

pub use testkeys::{b64url, hs256_with_secret, jws};

/// A private key of one algorithm, generated at test time: everything a test needs to
/// sign with it and to publish its public half (see `testkeys::Key`, which it derefs
/// to).
pub struct TestKey {
    pub alg: Alg,
    key: testkeys::Key,
}

impl TestKey {
    /// A fresh key for `alg`: RSA 2048 for RS*/PS*, P-256 for ES256, P-384 for ES384,
    /// Ed25519 for EdDSA, 48 random bytes for HS*.
    pub fn generate(alg: Alg) -> Self {
        Self {
            alg,
            key: testkeys::Key::generate(
                alg.to_jsonwebtoken()
                    .expect("ES512 keys are testkeys::P521Key, not a TestKey"),
            ),
        }
    }
}

impl Deref for TestKey {
    type Target = testkeys::Key;

    fn deref(&self) -> &testkeys::Key {
        &self.key
    }
}

/// One key of every family, generated once per test binary (RSA generation is slow).
pub struct KeyRing {
    pub rs256: TestKey,
    pub ps256: TestKey,
    pub es256: TestKey,
    pub es384: TestKey,
    pub eddsa: TestKey,
    pub hs256: TestKey,
}

impl KeyRing {
    pub fn shared() -> &'static KeyRing {
        static RING: OnceLock<KeyRing> = OnceLock::new();
        RING.get_or_init(|| KeyRing {
            rs256: TestKey::generate(Alg::RS256),
            ps256: TestKey::generate(Alg::PS256),
            es256: TestKey::generate(Alg::ES256),
            es384: TestKey::generate(Alg::ES384),
            eddsa: TestKey::generate(Alg::EdDSA),
            hs256: TestKey::generate(Alg::HS256),
        })
    }

    pub fn all(&self) -> [&TestKey; 6] {
        [
            &self.rs256,
            &self.ps256,
            &self.es256,
            &self.es384,
            &self.eddsa,
            &self.hs256,
        ]
    }
}

/// A JWT provider named `corp` (issuer `https://corp.test`, audience `api`) trusting
/// `key` inline and its algorithm only, as a YAML item of `providers:`.
pub fn corp_provider(key: &TestKey) -> String {
    format!(
        "  - name: corp\n    jwt:\n      issuer: https://corp.test\n      audiences: [api]\n      algorithms: [{}]\n      jwks: {}\n",
        key.alg.as_str(),
        key.jwks()
    )
}

/// A token [`corp_provider`] accepts, for `sub`, valid for five minutes.
pub fn corp_token(key: &TestKey, sub: &str) -> String {
    key.sign(&json!({"iss": "https://corp.test", "aud": "api", "sub": sub, "exp": now() + 300}))
}

/// A JWKS holding every given key.
pub fn jwks_of(keys: &[&TestKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() })
}

/// Seconds since the Unix epoch, on ward's own clock.
pub fn now() -> u64 {
    ward::clock::unix_now()
}
