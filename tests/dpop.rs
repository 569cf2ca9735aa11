//! DPoP-bound tokens (RFC 9449) through ward's gRPC API: a token whose `cnf.jkt` names a
//! key is accepted with the `DPoP` scheme and a fresh proof by that key for this request,
//! and refused, with an RFC 9449 `DPoP` challenge, for every way a proof can be wrong or
//! missing. Proofs are assembled by hand and signed with real keys (tools/testkeys).

mod common;

use serde_json::{Value, json};

use common::{KeyRing, Req, Shape, TestKey, Ward, b64url, corp_provider, now};
use ward::authn::jwt::Alg;

const OK: (i32, u16, &str) = (0, 200, "ok");
const INVALID: (i32, u16, &str) = (16, 401, "invalid_token");
const URL: &str = "https://api.example.com/api/orders";

fn config(key: &TestKey) -> String {
    format!(
        "providers:\n{}      bound_tokens: {{ dpop_iat_window: 60s }}\nroutes:\n  - name: api\n    match: {{ path_prefix: /api }}\n    providers: [corp]\n",
        corp_provider(key)
    )
}

/// The public JWK of `k`, as a proof's header carries it.
fn public_jwk(k: &TestKey) -> Value {
    let mut jwk = k.jwk();
    if let Some(o) = jwk.as_object_mut() {
        o.remove("kid");
        o.remove("use");
    }
    jwk
}

fn header(k: &TestKey) -> Value {
    json!({"typ": "dpop+jwt", "alg": k.alg.as_str(), "jwk": public_jwk(k)})
}

fn claims(method: &str, url: &str, token: &str, jti: &str) -> Value {
    json!({
        "htm": method, "htu": url, "iat": now(), "jti": jti,
        "ath": b64url(ward::digest::sha256(token.as_bytes())),
    })
}

/// A proof signed by `signer` with `header` and `claims` as given.
fn raw_proof(signer: &TestKey, header: &Value, claims: &Value) -> String {
    signer.sign_parts(&header.to_string(), &claims.to_string())
}

/// A good proof by `k` for `GET URL` and `token`, with a fresh `jti`.
fn proof(k: &TestKey, token: &str) -> String {
    raw_proof(k, &header(k), &claims("GET", URL, token, &fresh_jti()))
}

fn fresh_jti() -> String {
    let mut b = [0u8; 12];
    aws_lc_rs::rand::fill(&mut b).expect("random");
    b64url(b)
}

/// A token issued by `idp`, bound to `client`'s key.
fn bound_token(idp: &TestKey, client: &TestKey) -> String {
    idp.sign(&json!({
        "iss": "https://corp.test", "aud": "api", "sub": "alice", "exp": now() + 300,
        "cnf": {"jkt": client.kid()},
    }))
}

fn dpop(token: &str, proof: &str) -> Req {
    Req::get("/api/orders")
        .header("authorization", &format!("DPoP {token}"))
        .header("dpop", proof)
}

fn assert_challenge(r: &common::Summary, error: &str, case: &str) {
    assert_eq!(r.short(), INVALID, "{case}: {r:?}");
    let c = r.www_authenticate.as_deref().unwrap_or_default();
    assert!(c.starts_with(r#"DPoP algs=""#), "{case}: {c}");
    assert!(c.contains("ES256"), "{case}: {c}");
    assert!(!c.contains("HS256"), "{case}: {c}");
    assert!(c.contains(&format!(r#"error="{error}""#)), "{case}: {c}");
}

#[tokio::test]
async fn a_proof_by_the_bound_key_is_accepted_once() {
    let idp = &KeyRing::shared().es256;
    let client = TestKey::generate(Alg::ES256);
    let ward = Ward::start(&config(idp)).await;
    let t = bound_token(idp, &client);
    for shape in Shape::BOTH {
        let r = ward
            .summary(dpop(&t, &proof(&client, &t)).build(shape))
            .await;
        assert_eq!(r.short(), OK, "{shape:?}: {r:?}");
        assert_eq!(r.subject(), Some("alice"));
    }
    // The same proof again: a replay.
    let p = proof(&client, &t);
    assert_eq!(ward.summary(dpop(&t, &p).to_map()).await.short(), OK);
    let r = ward.summary(dpop(&t, &p).to_map()).await;
    assert_challenge(&r, "invalid_dpop_proof", "replay");
    assert_eq!(r.detail, "invalid DPoP proof: proof replayed");

    // The URL compares after RFC 3986 normalisation; the query is not part of it.
    let c = claims(
        "GET",
        "HTTPS://API.example.com:443/api/orders?x=1",
        &t,
        &fresh_jti(),
    );
    let r = ward
        .summary({
            let mut req = dpop(&t, &raw_proof(&client, &header(&client), &c));
            req.path = "/api/orders?page=2".into();
            req.to_map()
        })
        .await;
    assert_eq!(r.short(), OK, "{r:?}");

    // Behind a TLS-terminating load balancer: the client's scheme is x-forwarded-proto.
    let mut req = dpop(&t, &proof(&client, &t)).header("x-forwarded-proto", "https");
    req.scheme = "http".into();
    assert_eq!(ward.summary(req.to_map()).await.short(), OK);

    let accepted = ward
        .metric("ward_dpop_proofs_total", &[("result", "accepted")])
        .await;
    assert_eq!(accepted, Some(5.0));
    let replayed = ward
        .metric("ward_dpop_proofs_total", &[("result", "replayed")])
        .await;
    assert_eq!(replayed, Some(1.0));
    let held = ward.metric("ward_dpop_replay_cache_entries", &[]).await;
    assert_eq!(held, Some(5.0));
}

#[tokio::test]
async fn every_bad_proof_is_refused_with_a_dpop_challenge() {
    let idp = &KeyRing::shared().es256;
    let client = TestKey::generate(Alg::ES256);
    let stranger = TestKey::generate(Alg::ES256);
    let ward = Ward::start(&config(idp)).await;
    let t = bound_token(idp, &client);
    let good = || claims("GET", URL, &t, &fresh_jti());
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = good();
        f(&mut c);
        raw_proof(&client, &header(&client), &c)
    };
    let mut private = public_jwk(&client);
    private["d"] = b64url([7u8; 32]).into();
    let hmac = &KeyRing::shared().hs256;
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "another URL",
            with(&|c| c["htu"] = "https://api.example.com/api/admin".into()),
            "htu",
        ),
        (
            "another host",
            with(&|c| c["htu"] = "https://evil.example.com/api/orders".into()),
            "htu",
        ),
        ("another method", with(&|c| c["htm"] = "POST".into()), "htm"),
        (
            "expired iat",
            with(&|c| c["iat"] = (now() - 120).into()),
            "iat",
        ),
        (
            "future iat",
            with(&|c| c["iat"] = (now() + 120).into()),
            "iat",
        ),
        (
            "no ath",
            with(&|c| {
                c.as_object_mut().map(|o| o.remove("ath"));
            }),
            "ath",
        ),
        (
            "wrong ath",
            with(&|c| c["ath"] = b64url(ward::digest::sha256(b"other")).into()),
            "ath",
        ),
        (
            "no jti",
            with(&|c| {
                c.as_object_mut().map(|o| o.remove("jti"));
            }),
            "jti",
        ),
        (
            "signed by another key",
            raw_proof(&stranger, &header(&client), &good()),
            "signature",
        ),
        (
            "the key of another thumbprint",
            raw_proof(&stranger, &header(&stranger), &good()),
            "not the key",
        ),
        (
            "private key in jwk",
            raw_proof(
                &client,
                &json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": private}),
                &good(),
            ),
            "private",
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64url(
                    json!({"typ": "dpop+jwt", "alg": "none", "jwk": public_jwk(&client)})
                        .to_string()
                ),
                b64url(good().to_string())
            ),
            "algorithm",
        ),
        (
            "alg none, with a signature",
            raw_proof(
                &client,
                &json!({"typ": "dpop+jwt", "alg": "none", "jwk": public_jwk(&client)}),
                &good(),
            ),
            "algorithm",
        ),
        (
            "HS256",
            raw_proof(
                hmac,
                &json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": public_jwk(&client)}),
                &good(),
            ),
            "algorithm",
        ),
        (
            "typ JWT",
            raw_proof(
                &client,
                &json!({"typ": "JWT", "alg": "ES256", "jwk": public_jwk(&client)}),
                &good(),
            ),
            "typ",
        ),
        (
            "no jwk",
            raw_proof(
                &client,
                &json!({"typ": "dpop+jwt", "alg": "ES256"}),
                &good(),
            ),
            "jwk",
        ),
        ("not a JWS", "not-a-proof".into(), "malformed"),
        ("too large", "a".repeat(9000), "too large"),
    ];
    for (case, p, detail) in cases {
        let r = ward.summary(dpop(&t, &p).to_map()).await;
        assert_challenge(&r, "invalid_dpop_proof", case);
        assert!(r.detail.contains(detail), "{case}: {}", r.detail);
    }
    // Nothing above was remembered as a proof: a good one still passes.
    assert_eq!(
        ward.summary(dpop(&t, &proof(&client, &t)).to_map())
            .await
            .short(),
        OK
    );
}

#[tokio::test]
async fn a_bound_token_without_its_proof_is_refused() {
    let idp = &KeyRing::shared().es256;
    let client = TestKey::generate(Alg::ES256);
    let ward = Ward::start(&config(idp)).await;
    let t = bound_token(idp, &client);

    // As a bearer token, with or without a proof.
    let r = ward
        .summary(Req::get("/api/orders").bearer(&t).to_map())
        .await;
    assert_challenge(&r, "invalid_token", "bearer");
    assert_eq!(r.detail, "DPoP proof required");
    let r = ward
        .summary(
            Req::get("/api/orders")
                .bearer(&t)
                .header("dpop", &proof(&client, &t))
                .to_map(),
        )
        .await;
    assert_challenge(&r, "invalid_token", "bearer with a proof");

    // The DPoP scheme without a proof.
    let r = ward
        .summary(
            Req::get("/api/orders")
                .header("authorization", &format!("DPoP {t}"))
                .to_map(),
        )
        .await;
    assert_challenge(&r, "invalid_token", "no proof");

    // Two proofs: as two header lines, and as Envoy's joined map value.
    for shape in Shape::BOTH {
        let r = ward
            .summary(
                dpop(&t, &proof(&client, &t))
                    .header("dpop", &proof(&client, &t))
                    .build(shape),
            )
            .await;
        assert_challenge(&r, "invalid_dpop_proof", &format!("two proofs, {shape:?}"));
        assert!(r.detail.contains("more than one"), "{}", r.detail);
    }

    // A token that is not DPoP-bound, presented with the DPoP scheme.
    let plain = idp
        .sign(&json!({"iss": "https://corp.test", "aud": "api", "sub": "bob", "exp": now() + 300}));
    let r = ward
        .summary(dpop(&plain, &proof(&client, &plain)).to_map())
        .await;
    assert_challenge(&r, "invalid_token", "unbound token");
    // ...and as a bearer token it works as before.
    assert_eq!(
        ward.summary(Req::get("/api/orders").bearer(&plain).to_map())
            .await
            .short(),
        OK
    );
}

#[tokio::test]
async fn a_cached_token_needs_a_fresh_proof_each_time() {
    let idp = &KeyRing::shared().es256;
    let client = TestKey::generate(Alg::EdDSA);
    let ward = Ward::start(&config(idp)).await;
    let t = bound_token(idp, &client);
    for _ in 0..3 {
        let r = ward.summary(dpop(&t, &proof(&client, &t)).to_map()).await;
        assert_eq!(r.short(), OK, "{r:?}");
    }
    let hits = ward
        .metric(
            "ward_token_cache_requests_total",
            &[("provider", "corp"), ("result", "hit")],
        )
        .await;
    assert_eq!(hits, Some(2.0));
    let r = ward
        .summary(Req::get("/api/orders").bearer(&t).to_map())
        .await;
    assert_challenge(&r, "invalid_token", "cached, as bearer");
    let other_key = TestKey::generate(Alg::EdDSA);
    let r = ward
        .summary(dpop(&t, &proof(&other_key, &t)).to_map())
        .await;
    assert_challenge(&r, "invalid_dpop_proof", "cached, another key");
}

#[test]
fn bound_token_settings_are_checked_with_their_path_and_line() {
    let idp = &KeyRing::shared().es256;
    let with = |bound: &str, top: &str| {
        format!(
            "{top}providers:\n{}      bound_tokens: {bound}\nroutes:\n  - name: api\n    match: {{ path_prefix: /api }}\n    providers: [corp]\n",
            corp_provider(idp)
        )
    };
    let e = Ward::builder(&with("{ dpop_iat_window: 0s }", "")).config_error();
    assert!(
        e.contains("line 8: providers[0].jwt.bound_tokens.dpop_iat_window: must be from 1s to 1h"),
        "{e}"
    );
    let e = Ward::builder(&with("{ dpop_iat_window: 2h }", "")).config_error();
    assert!(e.contains("must be from 1s to 1h"), "{e}");
    let e = Ward::builder(&with("{ unsafe_ignore: true }", "")).config_error();
    assert!(
        e.contains("unknown field `unsafe_ignore`") && e.contains("unsafe_ignore_binding"),
        "{e}"
    );
    let e = Ward::builder(&with("{}", "dpop_replay_cache: { max_entries: 0 }\n")).config_error();
    assert!(
        e.contains("line 1: dpop_replay_cache.max_entries: must be greater than 0"),
        "{e}"
    );
    let e = Ward::builder(&with("{}", "dpop_replay_cache: { size: 10 }\n")).config_error();
    assert!(e.contains("unknown field `size`"), "{e}");
    let e = Ward::builder(&with("{}", "dpop_replay_cahce: { max_entries: 10 }\n")).config_error();
    assert!(e.contains("did you mean `dpop_replay_cache`?"), "{e}");
    // Accepted as documented.
    Ward::builder(&with(
        "{ dpop_iat_window: 30s, unsafe_ignore_binding: false }",
        "dpop_replay_cache: { max_entries: 10 }\n",
    ))
    .load()
    .expect("loads");
}

#[tokio::test]
async fn a_full_replay_cache_refuses_with_503_rather_than_forget() {
    let idp = &KeyRing::shared().es256;
    let client = TestKey::generate(Alg::ES256);
    // 16 entries: one per shard, so a second proof in any shard finds it full.
    let yaml = format!("dpop_replay_cache: {{ max_entries: 16 }}\n{}", config(idp));
    let ward = Ward::start(&yaml).await;
    let t = bound_token(idp, &client);
    let mut accepted = 0;
    let mut full = None;
    for _ in 0..64 {
        let r = ward.summary(dpop(&t, &proof(&client, &t)).to_map()).await;
        match r.short() {
            OK => accepted += 1,
            _ => {
                full = Some(r);
                break;
            }
        }
    }
    let r = full.expect("a full cache refused a proof");
    assert_eq!(r.short(), (14, 503, "authn_unavailable"), "{r:?}");
    assert!((1..=16).contains(&accepted), "{accepted}");
    assert_eq!(
        ward.metric("ward_dpop_proofs_total", &[("result", "cache_full")])
            .await,
        Some(1.0)
    );
    assert_eq!(
        ward.metric("ward_dpop_replay_cache_entries", &[]).await,
        Some(f64::from(accepted))
    );
}
