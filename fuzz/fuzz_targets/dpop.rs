//! DPoP proofs and token bindings: hostile input never panics, and what is accepted was
//! signed by the bound key for the request it names.
//!
//! The first byte picks what the rest is: 0, a proof as the `DPoP` header would carry it;
//! 1, a proof header and payload (JSON, split at the first newline) encoded with a junk
//! signature, so the fuzzer reaches the JSON, `typ`, `alg`, `jwk` and thumbprint checks
//! without forging base64; 2, a request (method, URL and token, one per line) for which
//! the example key signs a real proof, checked against another request line, so every
//! claim check behind the signature runs; 3, a `cnf` claim (JSON) and a
//! `source.certificate` value (after the first newline).
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use ward::authn::binding;
use ward::authn::dpop::{self, ProofRequest, htu};
use ward::request::CheckInput;
use ward_fuzz::{NOW, issuer};

const URL: &str = "https://api.example.com/orders";

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let signer = &issuer().signer;
    let jkt: [u8; 32] = URL_SAFE_NO_PAD
        .decode(signer.thumbprint())
        .ok()
        .and_then(|t| t.try_into().ok())
        .expect("the example key's thumbprint is SHA-256");
    let request = |method, url, token| ProofRequest {
        method,
        url,
        token,
        jkt: &jkt,
        now: NOW,
        window: 60,
        leeway: 5,
    };
    match mode % 4 {
        0 => {
            let _ = dpop::verify(text, &request("GET", URL, "a.b.c"));
        }
        1 => {
            let (header, payload) = text.split_once('\n').unwrap_or((text, "{}"));
            let proof = format!(
                "{}.{}.c2ln",
                URL_SAFE_NO_PAD.encode(header),
                URL_SAFE_NO_PAD.encode(payload)
            );
            // The signature is junk: nothing may be accepted.
            assert!(dpop::verify(&proof, &request("GET", URL, "a.b.c")).is_err());
        }
        2 => {
            let mut lines = text.split('\n');
            let (Some(method), Some(url), Some(token), Some(other)) =
                (lines.next(), lines.next(), lines.next(), lines.next())
            else {
                return;
            };
            let Ok(proof) = signer.dpop_proof(method, url, Some(token), NOW) else {
                return;
            };
            let Some(other_url) = htu::normalise(other) else {
                return;
            };
            let accepted = dpop::verify(&proof, &request(method, &other_url, token)).is_ok();
            // Accepted only for the URL it names (as normalised).
            if accepted {
                assert_eq!(htu::normalise(url).as_deref(), Some(other_url.as_str()));
            }
        }
        _ => {
            let (cnf, cert) = text.split_once('\n').unwrap_or((text, ""));
            if let Ok(cnf) = serde_json::from_str::<serde_json::Value>(cnf) {
                let mut claims = serde_json::Map::new();
                claims.insert("cnf".into(), cnf);
                let _ = binding::from_claims(&claims);
            }
            let input = CheckInput {
                source_certificate: cert,
                host: cert,
                path: cert,
                ..Default::default()
            };
            let _ = binding::check_certificate(&[0; 32], &input);
            let _ = htu::request_url(&input);
        }
    }
});
