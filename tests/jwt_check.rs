//! Token verification through `Authorization/Check`, with keys of every family generated
//! at test time: every algorithm accepted, `alg: none` and algorithm confusion refused,
//! time, issuer and audience claims, tampered, unknown-key, malformed and oversized
//! tokens, and the verified-token cache (hits counted, identities kept apart).

mod check_setup;
mod common;

use serde_json::{Value, json};

use check_setup::{ISS, assert_invalid_token, claims, start, token, with};
use common::{
    KeyRing, Req, TestKey, Ward, allowed, allowed_for, denial, hs256_with_secret, jws, metric, now,
    set_header_map, summary,
};
use ward::authn::jwt::Alg;

// === JWT attacks ===

#[tokio::test]
async fn every_algorithm_family_is_accepted() {
    let ward = start().await;
    let keys = KeyRing::shared();
    for k in keys.all() {
        let sub = format!("user-{}", k.alg.as_str());
        let tok = k.sign(&claims(&sub));
        let r = ward.check(Req::get("/api").bearer(&tok).to_map()).await;
        let ok = allowed(&r);
        assert_eq!(
            set_header_map(ok)["x-auth-subject"],
            sub,
            "{}",
            k.alg.as_str()
        );
    }
}

#[tokio::test]
async fn alg_none_is_refused() {
    let ward = start().await;
    let keys = KeyRing::shared();
    let payload = claims("root").to_string();
    let real_sig = keys
        .rs256
        .sign(&claims("root"))
        .rsplit('.')
        .next()
        .unwrap_or_default()
        .to_string();
    for (case, header) in [
        ("none", json!({"alg": "none", "typ": "JWT"})),
        ("None", json!({"alg": "None"})),
        (
            "NONE with kid",
            json!({"alg": "NONE", "kid": keys.rs256.kid()}),
        ),
    ] {
        for sig in ["", "c2ln", real_sig.as_str()] {
            let tok = jws(&header.to_string(), &payload, sig);
            let r = ward.check(Req::get("/api").bearer(&tok).to_map()).await;
            assert_invalid_token(
                &r,
                None,
                &format!("{case} sig={:?}", &sig[..sig.len().min(8)]),
            );
        }
    }
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_refused() {
    let ward = start().await;
    let rsa = &KeyRing::shared().rs256;
    let payload = claims("root").to_string();
    let pem = rsa.rsa_public_pem();
    let secrets: [(&str, &[u8]); 4] = [
        ("SPKI PEM", pem.as_bytes()),
        ("SPKI PEM without newline", pem.trim_end().as_bytes()),
        ("SPKI DER", rsa.rsa_public_der()),
        ("PKCS#1 DER", rsa.rsa_public_pkcs1_der()),
    ];
    for (what, secret) in secrets {
        for header in [
            json!({"alg": "HS256", "typ": "JWT", "kid": rsa.kid()}),
            json!({"alg": "HS256", "typ": "JWT"}),
        ] {
            let tok = hs256_with_secret(&header.to_string(), &payload, secret);
            let case = format!("{what}, kid={}", header.get("kid").is_some());
            // The provider allows RS256 only: the algorithm itself is refused.
            let r = ward.check(Req::get("/rs").bearer(&tok).to_map()).await;
            assert_invalid_token(
                &r,
                Some("algorithm not allowed"),
                &format!("rs-only: {case}"),
            );
            // HS256 allowed too, but the only key is RSA: still refused.
            let r = ward.check(Req::get("/rshs").bearer(&tok).to_map()).await;
            assert_invalid_token(&r, None, &format!("rs-hs: {case}"));
        }
    }
    // Both routes do accept a genuine RS256 token.
    for path in ["/rs", "/rshs"] {
        allowed(
            &ward
                .check(Req::get(path).bearer(&rsa.sign(&claims("ok"))).to_map())
                .await,
        );
    }
}

/// For each case, a token whose claims are `claims(sub)` changed by the case (see
/// [`with`]): refused as `invalid_token` with the case's detail, or (`None`) allowed as
/// `sub`.
async fn assert_claim_cases(ward: &Ward, sub: &str, cases: Vec<(&str, Value, Option<&str>)>) {
    for (case, extra, refused) in cases {
        let tok = token(&with(claims(sub), extra));
        let r = ward.check(Req::get("/api").bearer(&tok).to_map()).await;
        match refused {
            Some(detail) => assert_invalid_token(&r, Some(detail), case),
            None => assert_eq!(
                set_header_map(allowed_for(&r, case))["x-auth-subject"],
                sub,
                "{case}"
            ),
        }
    }
}

#[tokio::test]
async fn time_claims_are_enforced_with_leeway() {
    let ward = start().await;
    let t = now();
    let expired = Some("token expired");
    let cases: Vec<(&str, Value, Option<&str>)> = vec![
        ("expired beyond leeway", json!({"exp": t - 120}), expired),
        ("expired within leeway", json!({"exp": t - 5}), None),
        (
            "nbf in the future",
            json!({"nbf": t + 300}),
            Some("token not yet valid"),
        ),
        (
            "exp as a string",
            json!({"exp": (t + 300).to_string()}),
            Some("claim `exp` has the wrong type"),
        ),
        (
            "missing exp",
            json!({"exp": null}),
            Some("token has no exp"),
        ),
        (
            "nbf as a string",
            json!({"nbf": t.to_string()}),
            Some("claim `nbf` has the wrong type"),
        ),
    ];
    assert_claim_cases(&ward, "kim", cases).await;
}

#[tokio::test]
async fn a_valid_nbf_is_accepted() {
    let ward = start().await;
    let t = now();
    let cases = vec![
        ("nbf in the past", json!({ "nbf": t - 60 }), None),
        ("nbf now", json!({ "nbf": t }), None),
        ("nbf within leeway", json!({ "nbf": t + 5 }), None),
    ];
    assert_claim_cases(&ward, "kim", cases).await;
}

#[tokio::test]
async fn issuer_and_audience_must_match_exactly() {
    let ward = start().await;
    let (iss, aud) = (Some("issuer not accepted"), Some("audience not accepted"));
    // Another issuer is refused before any key is looked up.
    let untrusted = Some("issuer not trusted on this route");
    let cases: Vec<(&str, Value, Option<&str>)> = vec![
        (
            "wrong issuer",
            json!({"iss": "https://evil.test"}),
            untrusted,
        ),
        (
            "trailing slash",
            json!({"iss": "https://idp.test/"}),
            untrusted,
        ),
        ("issuer case", json!({"iss": "https://IDP.test"}), untrusted),
        ("no issuer", json!({"iss": null}), iss),
        ("wrong audience", json!({"aud": "other-api"}), aud),
        ("no audience", json!({"aud": null}), aud),
        (
            "audience array without ours",
            json!({"aud": ["x", "y"]}),
            aud,
        ),
        (
            "audience array with ours",
            json!({"aud": ["other-api", "api"]}),
            None,
        ),
    ];
    assert_claim_cases(&ward, "leo", cases).await;
}

#[tokio::test]
async fn tampered_and_unknown_key_tokens_are_refused() {
    let ward = start().await;
    let keys = KeyRing::shared();
    let good = token(&with(claims("mia"), json!({"roles": ["reader"]})));
    let parts: Vec<&str> = good.split('.').collect();
    assert_eq!(parts.len(), 3);

    // Payload swapped for an admin one, signature kept.
    let evil = common::b64url(with(claims("mia"), json!({"roles": ["admin"]})).to_string());
    let tampered = format!("{}.{evil}.{}", parts[0], parts[2]);
    let r = ward
        .check(Req::get("/admin").bearer(&tampered).to_map())
        .await;
    assert_invalid_token(
        &r,
        Some("signature verification failed"),
        "tampered payload",
    );

    // Signature of another token.
    let other = token(&claims("other"));
    let swapped = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        other.rsplit('.').next().unwrap_or_default()
    );
    let r = ward.check(Req::get("/api").bearer(&swapped).to_map()).await;
    assert_invalid_token(
        &r,
        Some("signature verification failed"),
        "foreign signature",
    );

    // A kid nobody published, signed by a key ward does not know.
    let stranger = TestKey::generate(Alg::ES256);
    let r = ward
        .check(
            Req::get("/api")
                .bearer(&stranger.sign(&claims("mia")))
                .to_map(),
        )
        .await;
    assert_invalid_token(&r, Some("unknown key id"), "unknown kid");

    // A known key's payload under a kid that does not exist.
    let header = json!({"alg": "RS256", "kid": "no-such-kid"}).to_string();
    let tok = keys.rs256.sign_parts(&header, &claims("mia").to_string());
    let r = ward.check(Req::get("/api").bearer(&tok).to_map()).await;
    assert_invalid_token(&r, Some("unknown key id"), "made-up kid");

    // The unmodified token is fine.
    allowed(&ward.check(Req::get("/api").bearer(&good).to_map()).await);
}

#[tokio::test]
async fn es256_is_never_verified_with_a_p384_key() {
    let ward = start().await;
    let keys = KeyRing::shared();
    let payload = claims("nina").to_string();
    let cases = [
        // Signed by P-256, no kid: the only key is P-384.
        (
            "P-256 signature, no kid",
            keys.es256
                .sign_parts(&json!({"alg": "ES256"}).to_string(), &payload),
        ),
        // Signed by P-256, claiming the P-384 key.
        (
            "P-256 signature, P-384 kid",
            keys.es256.sign_parts(
                &json!({"alg": "ES256", "kid": keys.es384.kid()}).to_string(),
                &payload,
            ),
        ),
        // Signed by the P-384 key itself, labelled ES256.
        (
            "P-384 signature labelled ES256",
            keys.es384.sign_parts(
                &json!({"alg": "ES256", "kid": keys.es384.kid()}).to_string(),
                &payload,
            ),
        ),
    ];
    for (case, tok) in cases {
        let r = ward.check(Req::get("/p384").bearer(&tok).to_map()).await;
        assert_invalid_token(&r, None, case);
    }
    // A genuine P-256 token, verified and cached by `corp`, is verified again (and
    // refused) on the route of `p384-only`: the cache never lends one provider's
    // verdict to another.
    let tok = keys.es256.sign(&claims("nina"));
    allowed(&ward.check(Req::get("/api").bearer(&tok).to_map()).await);
    let r = ward.check(Req::get("/p384").bearer(&tok).to_map()).await;
    assert_invalid_token(&r, None, "P-256 token cached by another provider");
    // On `corp`, whose key set holds both curves, a P-256 signature under the P-384 kid
    // is still refused.
    let tok = keys.es256.sign_parts(
        &json!({"alg": "ES256", "kid": keys.es384.kid()}).to_string(),
        &payload,
    );
    assert_invalid_token(
        &ward.check(Req::get("/api").bearer(&tok).to_map()).await,
        None,
        "corp",
    );
    // The genuine ES384 token passes on both.
    let tok = keys.es384.sign(&claims("nina"));
    allowed(&ward.check(Req::get("/p384").bearer(&tok).to_map()).await);
    allowed(&ward.check(Req::get("/api").bearer(&tok).to_map()).await);
}

#[tokio::test]
async fn malformed_tokens_are_refused() {
    let ward = start().await;
    let keys = KeyRing::shared();
    let payload = claims("olga").to_string();
    let header = keys.rs256.header_json();
    let cases: Vec<(&str, String, Option<&str>)> = vec![
        ("abc", "abc".into(), Some("malformed token")),
        ("a.b", "a.b".into(), Some("malformed token")),
        ("a.b.c", "a.b.c".into(), None),
        ("a.b.c.d", "a.b.c.d".into(), Some("malformed token")),
        ("empty", String::new(), Some("malformed token")),
        (
            "leading space",
            format!(" {}", token(&claims("olga"))),
            Some("malformed token"),
        ),
        (
            "trailing space",
            format!("{} ", token(&claims("olga"))),
            Some("malformed token"),
        ),
        (
            "padded base64",
            format!("{}=", token(&claims("olga"))),
            Some("malformed token"),
        ),
        (
            "payload not JSON",
            keys.rs256.sign_parts(&header, "not json"),
            Some("malformed token"),
        ),
        (
            "payload an array",
            keys.rs256.sign_parts(&header, "[1]"),
            Some("malformed token"),
        ),
        (
            "duplicate sub",
            keys.rs256.sign_parts(
                &header,
                &format!(
                    r#"{{"iss":"{ISS}","aud":"api","exp":{},"sub":"a","sub":"b"}}"#,
                    now() + 300
                ),
            ),
            Some("duplicate JSON member in token"),
        ),
        (
            "duplicate alg in header",
            keys.rs256.sign_parts(
                &format!(
                    r#"{{"alg":"RS256","kid":"{}","alg":"none"}}"#,
                    keys.rs256.kid()
                ),
                &payload,
            ),
            Some("duplicate JSON member in token"),
        ),
        (
            "crit header",
            keys.rs256.sign_parts(
                &json!({"alg": "RS256", "kid": keys.rs256.kid(), "crit": ["exp"], "exp": 1})
                    .to_string(),
                &payload,
            ),
            None,
        ),
        (
            "kid not a string",
            keys.rs256
                .sign_parts(&json!({"alg": "RS256", "kid": 7}).to_string(), &payload),
            None,
        ),
    ];
    for (case, tok, detail) in cases {
        let r = ward.check(Req::get("/api").bearer(&tok).to_map()).await;
        assert_invalid_token(&r, detail, case);
    }
    // `Bearer ` followed by nothing, and by two spaces: a credential was presented.
    for value in ["Bearer ", "Bearer  x"] {
        let r = ward
            .check(Req::get("/api").header("authorization", value).to_raw())
            .await;
        assert_invalid_token(&r, Some("malformed token"), &format!("{value:?}"));
    }
}

#[tokio::test]
async fn oversized_tokens_are_refused_before_verification() {
    let ward = start().await;
    let small = token(&with(claims("pat"), json!({"pad": "x".repeat(2500)})));
    assert!(small.len() <= 4096 && small.len() > 3000, "{}", small.len());
    allowed(&ward.check(Req::get("/api").bearer(&small).to_map()).await);

    let big = token(&with(claims("pat"), json!({"pad": "x".repeat(4000)})));
    assert!(big.len() > 4096);
    let r = ward.check(Req::get("/api").bearer(&big).to_map()).await;
    assert_invalid_token(&r, Some("token too large"), "over max_token_bytes");
    // Not even parsed: garbage of that size says the same.
    let r = ward
        .check(Req::get("/api").bearer(&"a".repeat(5000)).to_map())
        .await;
    assert_invalid_token(&r, Some("token too large"), "garbage over max_token_bytes");
}

// === token cache ===

#[tokio::test]
async fn the_same_token_twice_is_allowed_twice_and_hits_the_cache() {
    let ward = start().await;
    let tok = token(&with(claims("quinn"), json!({"roles": ["reader"]})));
    let hit = [("provider", "corp"), ("result", "hit")];

    let first = ward.check(Req::get("/api").bearer(&tok).to_map()).await;
    assert_eq!(set_header_map(allowed(&first))["x-auth-subject"], "quinn");
    let m = ward.metrics().await;
    assert_eq!(
        metric(&m, "ward_token_cache_requests_total", &hit).unwrap_or(0.0),
        0.0,
        "a first sight is not a hit"
    );
    assert!(
        metric(
            &m,
            "ward_token_cache_requests_total",
            &[("provider", "corp"), ("result", "miss")]
        )
        .unwrap_or(0.0)
            >= 1.0,
        "a first sight is a miss:\n{m}"
    );

    let second = ward.check(Req::get("/api").bearer(&tok).to_map()).await;
    assert_eq!(
        summary(&first),
        summary(&second),
        "the cached answer is the same"
    );
    let m = ward.metrics().await;
    assert!(
        metric(&m, "ward_token_cache_requests_total", &hit).unwrap_or(0.0) >= 1.0,
        "no cache hit recorded:\n{m}"
    );
    // A cached identity still goes through the route's rules.
    let r = ward.check(Req::get("/admin").bearer(&tok).to_map()).await;
    assert_eq!(denial(&r).error, "forbidden");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_checks_keep_identities_apart() {
    let ward = start().await;
    let keys = KeyRing::shared();
    // 24 subjects over every key family; each token is sent twice, so cache hits and
    // misses interleave.
    let tokens: Vec<(String, String)> = (0..24)
        .map(|n| {
            let sub = format!("user-{n}");
            let tok = keys.all()[n % 6].sign(&claims(&sub));
            (sub, tok)
        })
        .collect();
    let client = ward.client().await;
    let mut tasks = tokio::task::JoinSet::new();
    for (sub, tok) in tokens.iter().chain(tokens.iter()).cloned() {
        let mut client = client.clone();
        tasks.spawn(async move {
            let r = client
                .check(Req::get("/api").bearer(&tok).to_map())
                .await
                .expect("check")
                .into_inner();
            (sub, r)
        });
    }
    let mut seen = 0;
    while let Some(done) = tasks.join_next().await {
        let (sub, r) = done.expect("check task");
        let ok = allowed_for(&r, &sub);
        assert_eq!(set_header_map(ok)["x-auth-subject"], sub);
        seen += 1;
    }
    assert_eq!(seen, 48);
}
