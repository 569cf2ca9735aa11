//! Nested JWTs: arbitrary compact JWEs fed to the decryption layer, with a provider's
//! keys for every algorithm ward decrypts (the example RSA and P-256 keys).
//!
//! The first byte picks what the rest is: 0, a compact token as a client would send it;
//! 1, a protected header (JSON, up to the first newline) and four more parts of raw
//! bytes, each base64url-encoded, so the fuzzer reaches key agreement, key unwrap and
//! AES-GCM without forging base64; 2, a plaintext that ward encrypts to its own P-256
//! key, which must decrypt to exactly that plaintext.
#![no_main]

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use ward::authn::jwe::encrypt::{self, Recipient};
use ward::authn::jwe::{self, DecryptionKey, Enc, KeyAlg};

const RSA: &[u8] = include_bytes!("../../examples/keys/dev-rsa.pem");
const EC: &[u8] = include_bytes!("../../examples/policies/keys/idp-ec.pem");
const EC_PUBLIC: &str = r#"{"kty":"EC","crv":"P-256","x":"-SqPOdXMklRZss2BR_hqN6lp9pvFpdpd5P8qJGnwbkc","y":"rSelPVVmlQPyADn0ihKtjtwOX_Y6bG7mjnNIGed_0jA"}"#;

fn keys() -> &'static [DecryptionKey] {
    static KEYS: OnceLock<Vec<DecryptionKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut keys = vec![DecryptionKey::from_pem("rsa", KeyAlg::RsaOaep256, RSA).expect("RSA key")];
        for alg in [KeyAlg::EcdhEs, KeyAlg::EcdhEsA128Kw, KeyAlg::EcdhEsA256Kw] {
            keys.push(DecryptionKey::from_pem(alg.as_str(), alg, EC).expect("EC key"));
        }
        keys
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            if let Ok(token) = std::str::from_utf8(rest) {
                let _ = jwe::decrypt(token, keys());
            }
        }
        1 => {
            let mut parts = rest.split(|b| *b == b'\n');
            let header = parts.next().unwrap_or_default();
            let mut token = URL_SAFE_NO_PAD.encode(header);
            // The rest in four parts of about equal length.
            let body: Vec<u8> = parts.collect::<Vec<_>>().join(&b'\n');
            let quarter = body.len().div_ceil(4).max(1);
            let mut chunks = body.chunks(quarter);
            for _ in 0..4 {
                token.push('.');
                token.push_str(&URL_SAFE_NO_PAD.encode(chunks.next().unwrap_or_default()));
            }
            let _ = jwe::decrypt(&token, keys());
        }
        _ => {
            let Ok(plaintext) = std::str::from_utf8(rest) else {
                return;
            };
            let to = Recipient::parse(EC_PUBLIC.as_bytes()).expect("the example public key");
            let alg = [KeyAlg::EcdhEs, KeyAlg::EcdhEsA128Kw, KeyAlg::EcdhEsA256Kw][rest.len() % 3];
            let enc = if rest.len() % 2 == 0 { Enc::A128Gcm } else { Enc::A256Gcm };
            let token = encrypt::encrypt(plaintext, &to, alg, enc).expect("encrypts");
            assert_eq!(jwe::decrypt(&token, keys()).as_deref(), Ok(plaintext));
        }
    }
});
