//! Tokens ward mints verify with an independent JOSE implementation: the npm package
//! `jose` (tests/jose/), as a service written in another language would verify them. For
//! each algorithm ward signs with (ES256, EdDSA, RS256, PS256), a gateway mints a token
//! on an allowed gRPC check and issues one by RFC 8693 exchange; jose finds the keys
//! through the gateway's discovery document and checks signature, `typ`, `iss`, `aud`
//! and `exp`. Tampered, expired and misdirected tokens are shown refused, so the
//! verifier is seen to verify.

mod common;
mod jose;
mod purpose_setup;

use serde_json::{Value, json};
use ward::authn::jwt::Alg;

use common::{CLOCK_START, manual_clock};
use jose::Case;
use purpose_setup::{AUDIENCE, Gateway, IDP, SigningKey, TTL, payload_of, user_token};

const ALGS: [Alg; 4] = [Alg::ES256, Alg::EdDSA, Alg::RS256, Alg::PS256];

/// The gateway's exchange: role `buyer` may trade its IdP token for one of `ledger-api`.
const EXCHANGE: &str = r#"exchange:
  - name: ledger
    audience: ledger-api
    providers: [corp]
    require: { roles_any: [buyer] }
    ttl: 300s
    claims: [sub, roles, tenant]
"#;

/// What every token for alice carries, but `jti` (random) and what the grant decides.
fn claims_for(issuer: &str, aud: &str, purpose: &str, ttl: u64) -> Value {
    json!({
        "iss": issuer, "aud": aud, "sub": "alice", "purpose": purpose,
        "act": {"iss": IDP, "sub": "alice"},
        "roles": ["buyer"], "tenant": "acme",
        "iat": CLOCK_START, "exp": CLOCK_START + ttl,
    })
}

/// `payload` without its `jti`, which must be 128 bits in base64url.
fn without_jti(case: &str, payload: &Value) -> Value {
    let mut p = payload.clone();
    let jti = p
        .as_object_mut()
        .and_then(|m| m.remove("jti"))
        .unwrap_or_else(|| panic!("{case}: no jti in {payload}"));
    assert!(
        jti.as_str().is_some_and(|j| j.len() == 22
            && j.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')),
        "{case}: jti {jti}"
    );
    p
}

#[tokio::test]
async fn jose_verifies_minted_and_exchanged_tokens_in_every_algorithm() {
    if !jose::available().await {
        return;
    }
    let (clock, _hand) = manual_clock();
    let user = user_token("alice", &["buyer"]);
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    let mut gateways = Vec::new();
    for alg in ALGS {
        let kid = format!("ward-{}", alg.as_str());
        let key = SigningKey::generate(&kid, alg);
        let gw = Gateway::start_with(&[&key], clock.clone(), EXCHANGE).await;
        let minted = gw.mint("/checkout/cart", &user).await;
        let exchanged = gw.exchange(&user, "ledger-api").await;
        for (how, token, aud, purpose, ttl) in [
            ("minted", minted, AUDIENCE, "checkout", TTL),
            ("exchanged", exchanged, "ledger-api", "ledger", 300),
        ] {
            cases.push(Case {
                name: format!("{} {how}", alg.as_str()),
                issuer: gw.issuer.clone(),
                audience: aud.to_string(),
                token,
                now: CLOCK_START,
            });
            expected.push((
                json!({"alg": alg.as_str(), "kid": kid, "typ": "JWT"}),
                claims_for(&gw.issuer, aud, purpose, ttl),
            ));
        }
        gateways.push(gw);
    }

    // Controls: what a verifier must refuse, built from the ES256 gateway's token.
    let good = cases[0].token.clone();
    let parts: Vec<&str> = good.split('.').collect();
    let mut forged = payload_of(&good);
    forged["sub"] = "mallory".into();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        common::b64url(forged.to_string()),
        parts[2]
    );
    let control = |name: &str, issuer: &str, audience: &str, token: &str, now: u64| Case {
        name: name.to_string(),
        issuer: issuer.to_string(),
        audience: audience.to_string(),
        token: token.to_string(),
        now,
    };
    let es256 = &gateways[0].issuer;
    let eddsa = &gateways[1].issuer;
    let controls = [
        (
            control("tampered", es256, AUDIENCE, &tampered, CLOCK_START),
            "ERR_JWS_SIGNATURE_VERIFICATION_FAILED",
        ),
        (
            control("expired", es256, AUDIENCE, &good, CLOCK_START + TTL + 1),
            "ERR_JWT_EXPIRED",
        ),
        (
            control("other audience", es256, "ledger-api", &good, CLOCK_START),
            "ERR_JWT_CLAIM_VALIDATION_FAILED",
        ),
        (
            control("other gateway's keys", eddsa, AUDIENCE, &good, CLOCK_START),
            "ERR_JWKS_NO_MATCHING_KEY",
        ),
    ];
    let verified = cases.len();
    cases.extend(controls.iter().map(|(c, _)| c.clone()));

    let Some(verdicts) = jose::verify(&cases).await else {
        return;
    };
    for ((case, verdict), (header, claims)) in cases.iter().zip(&verdicts).zip(&expected) {
        let (h, p) = verdict.verified(&case.name);
        assert_eq!(h, header, "{}: header", case.name);
        assert_eq!(&without_jti(&case.name, p), claims, "{}: claims", case.name);
    }
    for ((c, code), verdict) in controls.iter().zip(&verdicts[verified..]) {
        assert_eq!(verdict.refused(&c.name), *code, "{}: {verdict:?}", c.name);
    }
}
