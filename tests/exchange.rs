//! RFC 8693 token exchange at `POST /token` on the admin listener, and the documents
//! ward publishes as an issuer (SPEC §8): a good request gets a token for the audience
//! asked for; every bad one gets an RFC 6749 error with status 400 and nothing is
//! signed; without `signing`, none of it is served.

mod common;
mod issuer_setup;

use std::net::SocketAddr;

use serde_json::{Value, json};

use common::{CLOCK_START, KeyRing, Req, TestKey, Ward, allowed, set_header_map};
use issuer_setup::{ISS, MINT_HEADER, WARD_ISS, parts, start, user, verify};

const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";

async fn post(
    admin: SocketAddr,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> (u16, Value, String) {
    let r = reqwest::Client::new()
        .post(format!("http://{admin}/token"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("POST /token");
    let status = r.status().as_u16();
    let cache = r
        .headers()
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = r.text().await.expect("a body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body, cache)
}

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn request(subject: &str, audience: &str) -> Params {
    vec![
        ("grant_type", GRANT.into()),
        ("subject_token", subject.into()),
        ("subject_token_type", ACCESS.into()),
        ("audience", audience.into()),
    ]
}

fn encode(pairs: &Params) -> String {
    form(
        &pairs
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect::<Vec<_>>(),
    )
}

const FORM: &str = "application/x-www-form-urlencoded";

/// A token request's parameters, in order.
type Params = Vec<(&'static str, String)>;

#[tokio::test]
async fn a_subject_that_meets_the_rules_gets_a_token_for_the_audience() {
    let (ward, _clock) = start().await;
    let tok = user("carol", json!({"roles": ["checkout"], "tenant": "acme"}));
    let (status, body, cache) = post(
        ward.admin_addr,
        FORM,
        encode(&request(&tok, "payments-exchange")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(cache, "no-store", "RFC 6749 §5.1");
    assert_eq!(
        body["issued_token_type"],
        "urn:ietf:params:oauth:token-type:jwt"
    );
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    let issued = body["access_token"].as_str().expect("a token");
    let mut claims = verify(&ward, issued, "payments-exchange")
        .await
        .expect("verifies");
    claims.as_object_mut().expect("claims").remove("jti");
    assert_eq!(
        claims,
        json!({"iss": WARD_ISS, "aud": "payments-exchange", "sub": "carol", "iat": CLOCK_START,
               "exp": CLOCK_START + 300, "purpose": "payments", "act": {"iss": ISS, "sub": "carol"},
               "roles": ["checkout"], "tenant": "acme"})
    );
    // `resource` names the target as well; each exchange signs a fresh token.
    let mut by_resource = request(&tok, "payments-exchange");
    by_resource[3].0 = "resource";
    let (status, again, _) = post(ward.admin_addr, FORM, encode(&by_resource)).await;
    assert_eq!(status, 200, "{again}");
    assert_ne!(again["access_token"], body["access_token"]);
    let m = ward.metrics().await;
    assert_eq!(
        common::metric(
            &m,
            "ward_token_exchange_requests_total",
            &[("result", "issued")]
        ),
        Some(2.0)
    );
    assert_eq!(
        common::metric(&m, "ward_tokens_minted_total", &[("purpose", "payments")]),
        Some(2.0)
    );
}

#[tokio::test]
async fn every_bad_request_is_an_rfc_6749_error_and_nothing_is_signed() {
    let (ward, _clock) = start().await;
    let good = user("carol", json!({"roles": ["checkout"]}));
    let with = |f: &dyn Fn(&mut Params)| {
        let mut r = request(&good, "payments-exchange");
        f(&mut r);
        encode(&r)
    };
    let foreign = TestKey::generate(ward::authn::jwt::Alg::ES256)
        .sign(&json!({"iss": ISS, "aud": "api", "sub": "mallory", "roles": ["checkout"], "exp": CLOCK_START + 300}));
    let expired = KeyRing::shared().es256.sign(
        &json!({"iss": ISS, "aud": "api", "sub": "carol", "roles": ["checkout"], "exp": CLOCK_START - 120}),
    );
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "missing subject_token",
            with(&|r| {
                r.remove(1);
            }),
            "invalid_request",
            "missing `subject_token`",
        ),
        (
            "missing grant_type",
            with(&|r| {
                r.remove(0);
            }),
            "invalid_request",
            "missing `grant_type`",
        ),
        (
            "missing audience",
            with(&|r| {
                r.remove(3);
            }),
            "invalid_request",
            "missing `audience` (or `resource`)",
        ),
        (
            "repeated audience",
            with(&|r| r.push(("audience", "payments-exchange".into()))),
            "invalid_request",
            "parameter `audience` is repeated",
        ),
        (
            "unknown parameter",
            with(&|r| r.push(("client_secret", "x".into()))),
            "invalid_request",
            "unknown parameter `client_secret`",
        ),
        (
            "another grant",
            with(&|r| r[0].1 = "client_credentials".into()),
            "unsupported_grant_type",
            "",
        ),
        (
            "unknown audience",
            with(&|r| r[3].1 = "billing-api".into()),
            "invalid_target",
            "",
        ),
        (
            "expired subject token",
            with(&|r| r[1].1 = expired.clone()),
            "invalid_grant",
            "the subject token is not accepted",
        ),
        (
            "foreign subject token",
            with(&|r| r[1].1 = foreign.clone()),
            "invalid_grant",
            "the subject token is not accepted",
        ),
        (
            "not a token",
            with(&|r| r[1].1 = "opaque-value".into()),
            "invalid_grant",
            "the subject token is not accepted",
        ),
        (
            "rules not met",
            with(&|r| r[1].1 = user("dave", json!({"roles": ["viewer"]}))),
            "invalid_grant",
            "the subject does not meet this exchange's rules",
        ),
        (
            "body over 64 KiB",
            with(&|r| r[2].1 = "x".repeat(70 * 1024)),
            "invalid_request",
            "the request body is over 64 KiB",
        ),
    ];
    for (case, body, error, description) in &cases {
        let (status, answer, _) = post(ward.admin_addr, FORM, body.clone()).await;
        assert_eq!(status, 400, "{case}: {answer}");
        assert_eq!(answer["error"], *error, "{case}: {answer}");
        let said = answer["error_description"].as_str().unwrap_or("");
        assert!(said.starts_with(description), "{case}: {said}");
        assert!(
            !said.contains(&good) && !said.contains(&expired),
            "{case}: the token is echoed"
        );
    }
    let (status, answer, _) =
        post(ward.admin_addr, "application/json", r#"{"grant_type":"x"}"#).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let m = ward.metrics().await;
    assert_eq!(
        common::metric(&m, "ward_tokens_minted_total", &[("purpose", "payments")]),
        Some(0.0)
    );
    assert_eq!(
        common::metric(
            &m,
            "ward_token_exchange_requests_total",
            &[("result", "issued")]
        ),
        Some(0.0)
    );
    assert_eq!(
        common::metric(
            &m,
            "ward_token_exchange_requests_total",
            &[("result", "invalid_request")]
        ),
        Some(7.0)
    );
    assert_eq!(
        common::metric(
            &m,
            "ward_token_exchange_requests_total",
            &[("result", "invalid_grant")]
        ),
        Some(4.0)
    );
}

#[tokio::test]
async fn a_minted_token_is_no_subject_token_for_an_exchange_that_does_not_trust_ward() {
    let (ward, _clock) = start().await;
    let r = ward
        .check(
            Req::get("/checkout")
                .bearer(&user("alice", json!({"roles": ["buyer", "checkout"]})))
                .to_map(),
        )
        .await;
    let minted = set_header_map(allowed(&r))[MINT_HEADER].clone();
    assert_eq!(parts(&minted).1["iss"], WARD_ISS);
    let (status, answer, _) = post(
        ward.admin_addr,
        FORM,
        encode(&request(&minted, "payments-exchange")),
    )
    .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_grant")),
        "{answer}"
    );
}

#[tokio::test]
async fn ward_publishes_its_keys_and_where_to_find_them() {
    let (ward, _clock) = start().await;
    let (status, body) = ward.admin_get("/.well-known/openid-configuration").await;
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(doc["issuer"], WARD_ISS);
    assert_eq!(doc["jwks_uri"], format!("{WARD_ISS}/.well-known/jwks.json"));
    assert_eq!(doc["token_endpoint"], format!("{WARD_ISS}/token"));
    assert_eq!(doc["grant_types_supported"], json!([GRANT]));
    let (status, body) = ward.admin_get("/.well-known/jwks.json").await;
    assert_eq!(status, 200);
    let jwks: Value = serde_json::from_str(&body).expect("JSON");
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1);
    let public = issuer_setup::signing_key().jwk();
    for member in ["kty", "crv", "x", "y"] {
        assert_eq!(keys[0][member], public[member], "{member}");
    }
    assert_eq!(
        (keys[0]["kid"].as_str(), keys[0]["alg"].as_str()),
        (Some("2026-12"), Some("ES256"))
    );
    assert!(
        keys[0].get("d").is_none(),
        "the private half is never published"
    );
}

#[tokio::test]
async fn without_signing_nothing_is_issued_or_published() {
    let corp = KeyRing::shared().es256.jwks();
    let ward = Ward::start(&format!(
        "providers:\n  - name: corp\n    jwt: {{ issuer: {ISS}, audiences: [api], jwks: {corp} }}\nroutes:\n  - name: api\n    match: {{ path_prefix: / }}\n    providers: [corp]\n"
    ))
    .await;
    for path in [
        "/.well-known/jwks.json",
        "/.well-known/openid-configuration",
    ] {
        assert_eq!(ward.admin_get(path).await.0, 404, "{path}");
    }
    let tok = user("carol", json!({}));
    let (status, _, _) = post(
        ward.admin_addr,
        FORM,
        encode(&request(&tok, "payments-exchange")),
    )
    .await;
    assert_eq!(status, 404);
}

#[test]
fn a_refused_exchange_is_explained_in_the_debug_log_without_the_token() {
    use common::bin::Serve;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("signing")).expect("mkdir");
    std::fs::write(
        dir.path().join("signing/current.pem"),
        issuer_setup::signing_key().key_file(),
    )
    .expect("write key");
    // The binary runs on the system clock: a token valid now.
    let config = issuer_setup::config("");
    let path = dir.path().join("ward.yaml");
    std::fs::write(&path, config).expect("write config");
    let mut ward = Serve::start(dir.path(), &path, &[("RUST_LOG", "debug")]);
    let tok = KeyRing::shared()
        .es256
        .sign(&json!({"iss": ISS, "aud": "api", "sub": "dave",
        "roles": ["viewer"], "exp": common::now() + 300}));
    let admin: SocketAddr = ward.admin_addr.parse().expect("an address");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (status, answer, _) = rt.block_on(post(
        admin,
        FORM,
        encode(&request(&tok, "payments-exchange")),
    ));
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_grant")),
        "{answer}"
    );
    ward.terminate();
    let lines = ward.lines();
    let refused: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("token exchange refused"))
        .collect();
    assert_eq!(refused.len(), 1, "{lines:#?}");
    assert!(
        refused[0].contains("exchange `payments` for corp: condition not met: exchange[0].require.roles_any [checkout]"),
        "{}",
        refused[0]
    );
    assert!(
        lines.iter().all(|l| !l.contains(&tok)),
        "a log line holds the token"
    );
}
