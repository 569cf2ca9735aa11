//! Token parsing and verification against the example policy's provider and keys.
//!
//! The first byte picks what the rest is: 0, a compact token as Envoy would forward it;
//! 1, a JOSE header and a payload (JSON, split at the first newline) encoded with a
//! junk signature, so the fuzzer reaches the decoding and JSON steps without having
//! to forge base64; 2, a payload signed with the trusted key, so it reaches every claim
//! check behind the signature.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use ward::authn::jwt;
use ward_fuzz::{Issuer, NOW, issuer};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let iss = issuer();
    match mode % 3 {
        0 => {
            if let Ok(token) = std::str::from_utf8(rest) {
                check(iss, token);
            }
        }
        1 => {
            let (header, payload) = match rest.iter().position(|b| *b == b'\n') {
                Some(at) => (&rest[..at], &rest[at + 1..]),
                None => (rest, &b"{}"[..]),
            };
            let token = format!(
                "{}.{}.c2ln",
                URL_SAFE_NO_PAD.encode(header),
                URL_SAFE_NO_PAD.encode(payload)
            );
            check(iss, &token);
        }
        _ => {
            let Ok(claims) = serde_json::from_slice::<serde_json::Value>(rest) else {
                return;
            };
            if let Ok(token) = iss.signer.sign(&claims) {
                check(iss, &token);
            }
        }
    }
});

fn check(iss: &Issuer, token: &str) {
    let Ok(parsed) = jwt::parse(token, iss.settings.max_token_bytes) else {
        return;
    };
    let claimed_issuer = parsed.issuer().map(str::to_owned);
    if let Ok(id) = jwt::verify(
        parsed,
        &iss.settings,
        &iss.keys,
        &iss.name,
        NOW,
        &iss.kept_claims,
    ) {
        // Verified means issued by the configured issuer and unexpired now.
        assert_eq!(claimed_issuer.as_deref(), Some(&*iss.settings.issuer));
        assert!(
            id.expires_at
                .is_none_or(|exp| exp.saturating_add(iss.settings.leeway.as_secs()) >= NOW)
        );
    }
}
