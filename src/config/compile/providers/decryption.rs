//! A JWT provider's `decryption`: the private keys that open nested JWTs (RFC 7519
//! §5.2). Key files are read through `Sources`, so a changed key file is a changed
//! config and is picked up on reload like every other file the config reads.

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use crate::authn::jwe::{DecryptionKey, KeyAlg};
use crate::config::{Errors, Sources};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDecryption {
    keys: Vec<RawKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    kid: String,
    alg: String,
    key_file: String,
}

/// The keys of `decryption` at `path`, each read and checked against its `alg`.
pub(super) fn compile_decryption(
    raw: RawDecryption,
    path: &str,
    base: &Path,
    sources: &mut Sources,
    errors: &mut Errors,
) -> Option<Arc<[DecryptionKey]>> {
    let before = errors.count();
    if raw.keys.is_empty() {
        errors.add(
            &format!("{path}.keys"),
            "list at least one key, or leave `decryption` out to accept signed tokens only",
        );
    }
    let mut keys: Vec<DecryptionKey> = Vec::new();
    for (i, k) in raw.keys.iter().enumerate() {
        let at = format!("{path}.keys[{i}]");
        if k.kid.is_empty() {
            errors.add(&format!("{at}.kid"), "must not be empty");
        } else if let Some(prev) = raw.keys[..i].iter().position(|p| p.kid == k.kid) {
            errors.add(
                &format!("{at}.kid"),
                format!("kid `{}` is already used by {path}.keys[{prev}]", k.kid),
            );
        }
        let Some(alg) = KeyAlg::parse(&k.alg) else {
            errors.add(
                &format!("{at}.alg"),
                format!(
                    "`{}` is not one of {} (`dir`, `RSA1_5` and bare key wrap are never accepted)",
                    k.alg,
                    KeyAlg::NAMES
                ),
            );
            continue;
        };
        let key = super::super::read_key_file(sources, base, &k.key_file, &at, errors, |pem| {
            DecryptionKey::from_pem(&k.kid, alg, pem)
        });
        keys.extend(key);
    }
    (errors.count() == before).then(|| keys.into())
}
