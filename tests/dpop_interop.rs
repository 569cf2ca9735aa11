//! DPoP with independent implementations: proofs made by the npm package `jose`
//! (tests/jose/dpop.mjs) for keys of every family ward verifies, and real DPoP-bound
//! access tokens from `oidc-provider` (tests/oidc/), requested with a jose proof, each
//! presented to ward's gRPC Check: accepted with a correct proof, refused as a bearer
//! token, refused when replayed.
//!
//! Skipped (with a message) when Node.js is absent, except in CI (`CI=true`).

mod common;
mod jose;
mod oidc;

use serde_json::json;

use common::{KeyRing, Req, Summary, TestKey, Ward, corp_provider, now};
use jose::ProofFor;
use oidc::{AUDIENCE, Op, jwt_payload, jwt_resource};

const OK: (i32, u16, &str) = (0, 200, "ok");
const INVALID: (i32, u16, &str) = (16, 401, "invalid_token");

fn get(url: &str, token: &str) -> ProofFor {
    ProofFor {
        method: "GET".into(),
        url: url.into(),
        token: Some(token.into()),
    }
}

fn dpop(path: &str, token: &str, proof: &str) -> Req {
    Req::get(path)
        .header("authorization", &format!("DPoP {token}"))
        .header("dpop", proof)
}

fn assert_dpop_challenge(r: &Summary, error: &str, case: &str) {
    assert_eq!(r.short(), INVALID, "{case}: {r:?}");
    let c = r.www_authenticate.as_deref().unwrap_or_default();
    assert!(c.starts_with("DPoP algs="), "{case}: {c}");
    assert!(c.contains(&format!(r#"error="{error}""#)), "{case}: {c}");
}

#[tokio::test]
async fn proofs_made_by_jose_are_accepted_for_every_key_family() {
    let idp = &KeyRing::shared().es256;
    let yaml = format!(
        "providers:\n{}routes:\n  - name: api\n    match: {{ path_prefix: /api }}\n    providers: [corp]\n",
        corp_provider(idp)
    );
    let ward = Ward::start(&yaml).await;
    let url = "https://api.example.com/api/orders";
    for alg in ["ES256", "ES384", "EdDSA", "RS256", "PS256"] {
        // The token names the key's thumbprint as jose computes it; jose signs the proofs.
        let Some(first) = jose::dpop_proofs(alg, None, &[]).await else {
            return;
        };
        let token = idp.sign(&json!({
            "iss": "https://corp.test", "aud": "api", "sub": "alice", "exp": now() + 300,
            "cnf": {"jkt": first.jkt},
        }));
        let proofs =
            jose::dpop_proofs(alg, Some(&first.key), &[get(url, &token), get(url, &token)])
                .await
                .expect("jose ran once already");
        assert_eq!(proofs.jkt, first.jkt, "{alg}: same key");
        let r = ward
            .summary(dpop("/api/orders", &token, &proofs.proofs[0]).to_map())
            .await;
        assert_eq!(r.short(), OK, "{alg}: {r:?}");
        let r = ward
            .summary(dpop("/api/orders", &token, &proofs.proofs[0]).to_map())
            .await;
        assert_dpop_challenge(&r, "invalid_dpop_proof", &format!("{alg}: replayed"));
        let r = ward
            .summary(dpop("/api/other", &token, &proofs.proofs[1]).to_map())
            .await;
        assert_dpop_challenge(&r, "invalid_dpop_proof", &format!("{alg}: another URL"));
        let r = ward
            .summary(Req::get("/api/orders").bearer(&token).to_map())
            .await;
        assert_dpop_challenge(&r, "invalid_token", &format!("{alg}: as bearer"));
    }
    // A key ward's tests generated, with jose's proof for another key: the thumbprint
    // check is what refuses it.
    let stranger = TestKey::generate(ward::authn::jwt::Alg::ES256);
    let token = idp.sign(&json!({
        "iss": "https://corp.test", "aud": "api", "sub": "alice", "exp": now() + 300,
        "cnf": {"jkt": stranger.kid()},
    }));
    let jose_proof = jose::dpop_proofs("ES256", None, &[get(url, &token)])
        .await
        .expect("jose ran once already");
    let r = ward
        .summary(dpop("/api/orders", &token, &jose_proof.proofs[0]).to_map())
        .await;
    assert_dpop_challenge(&r, "invalid_dpop_proof", "another key's proof");
    assert!(r.detail.contains("not the key"), "{}", r.detail);
}

#[tokio::test]
async fn dpop_bound_tokens_from_oidc_provider_need_their_proof() {
    let Some(op) = Op::start().await else {
        return;
    };
    let iss = &op.issuer;
    let yaml = format!(
        "providers:\n  - name: op\n    jwt:\n      issuer: \"{iss}\"\n      audiences: [{AUDIENCE}]\n      discovery: true\n      timeout: 2s\nroutes:\n  - name: read\n    match: {{ path_prefix: /read }}\n    providers: [op]\n    require: {{ scopes_any: [read] }}\n"
    );
    let ward = Ward::start(&yaml).await;
    // The algorithms oidc-provider accepts for DPoP proofs by default.
    for alg in ["ES256", "EdDSA"] {
        // The token request's proof: POST to the token endpoint, no access token yet.
        let token_request = ProofFor {
            method: "POST".into(),
            url: op.token_endpoint(),
            token: None,
        };
        let Some(client) = jose::dpop_proofs(alg, None, &[token_request]).await else {
            return;
        };
        let (tokens, token_type) = op
            .client_credentials_dpop(&jwt_resource("ES256"), "read", &client.proofs[0])
            .await;
        assert_eq!(token_type, "DPoP", "{alg}");
        let token = tokens.access_token;
        assert_eq!(
            jwt_payload(&token)["cnf"]["jkt"],
            client.jkt.as_str(),
            "{alg}: the provider bound the token to jose's key"
        );

        let url = "https://api.example.com/read/items";
        let proofs = jose::dpop_proofs(alg, Some(&client.key), &[get(url, &token)])
            .await
            .expect("jose ran once already");
        let r = ward
            .summary(dpop("/read/items", &token, &proofs.proofs[0]).to_map())
            .await;
        assert_eq!(r.short(), OK, "{alg}: {r:?}");
        let r = ward
            .summary(Req::get("/read/items").bearer(&token).to_map())
            .await;
        assert_dpop_challenge(&r, "invalid_token", &format!("{alg}: as bearer"));
        let r = ward
            .summary(dpop("/read/items", &token, &proofs.proofs[0]).to_map())
            .await;
        assert_dpop_challenge(&r, "invalid_dpop_proof", &format!("{alg}: replayed"));
        let r = ward
            .summary(
                Req::get("/read/items")
                    .header("authorization", &format!("DPoP {token}"))
                    .to_map(),
            )
            .await;
        assert_dpop_challenge(&r, "invalid_token", &format!("{alg}: no proof"));
    }
}
