//! Nested JWTs (RFC 7516 compact JWE around a JWS, RFC 7519 §5.2) through
//! `Authorization/Check`. The JWEs are built by the independent npm `jose`
//! (`tests/jose/encrypt.mjs`) for every key management algorithm ward accepts, on every
//! curve, times both content encryptions; the inner JWS by a key of the test. Each bad
//! input (not nested, another algorithm, an unknown kid, a truncated ciphertext, a
//! changed tag, a bad ephemeral key, a bad inner signature, an oversized JWE) is 401
//! `invalid_token` with its challenge, and every decryption failure has one text. A
//! cached nested JWT is not decrypted again: `ward_token_decryptions_total` stays put.

mod check_setup;
mod common;
mod jose;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use check_setup::{ISS, assert_invalid_token, claims};
use common::{KeyRing, Req, TestKey, Ward, allowed, set_header_map};
use jose::Encryption;
use testkeys::P521Key;
use ward::authn::jwt::Alg;

const UNDECRYPTABLE: &str = "token cannot be decrypted";

/// The recipient's private keys, as PKCS#8 PEM.
struct Recipient {
    rsa: String,
    p256: String,
    p384: String,
    p521: String,
}

impl Recipient {
    fn new() -> Self {
        let pem = |k: &[u8]| String::from_utf8(k.to_vec()).expect("PEM");
        Recipient {
            rsa: pem(TestKey::generate(Alg::RS256).key_file()),
            p256: pem(TestKey::generate(Alg::ES256).key_file()),
            p384: pem(TestKey::generate(Alg::ES384).key_file()),
            p521: pem(P521Key::generate().key_file()),
        }
    }

    fn curves(&self) -> [(&'static str, &str); 3] {
        [
            ("p256", &self.p256),
            ("p384", &self.p384),
            ("p521", &self.p521),
        ]
    }
}

const ECDH: [&str; 3] = ["ECDH-ES", "ECDH-ES+A128KW", "ECDH-ES+A256KW"];
const ENCS: [&str; 2] = ["A128GCM", "A256GCM"];

fn config(r: &Recipient, max_token_bytes: usize) -> (String, Vec<(String, String)>) {
    let mut files = vec![("keys/rsa.pem".to_string(), r.rsa.clone())];
    let mut keys = vec!["{kid: rsa, alg: RSA-OAEP-256, key_file: keys/rsa.pem}".to_string()];
    for (curve, pem) in r.curves() {
        files.push((format!("keys/{curve}.pem"), pem.to_string()));
        for alg in ECDH {
            keys.push(format!(
                "{{kid: {curve}-{alg}, alg: {alg}, key_file: keys/{curve}.pem}}"
            ));
        }
    }
    let signing = KeyRing::shared().es256.jwks();
    let yaml = format!(
        r#"
providers:
  - name: sealed
    jwt:
      issuer: {ISS}
      audiences: [api]
      jwks: {signing}
      algorithms: [ES256]
      max_token_bytes: {max_token_bytes}
      decryption:
        keys: [{keys}]
  - name: plain
    jwt:
      issuer: {ISS}
      audiences: [api]
      jwks: {signing}
      algorithms: [ES256]
routes:
  - name: sealed
    match: {{ path_prefix: /sealed }}
    providers: [sealed]
  - name: plain
    match: {{ path_prefix: /plain }}
    providers: [plain]
"#,
        keys = keys.join(", ")
    );
    (yaml, files)
}

async fn start(r: &Recipient, max_token_bytes: usize) -> Ward {
    let (yaml, files) = config(r, max_token_bytes);
    let mut b = Ward::builder(&yaml);
    for (name, text) in files {
        b = b.file(&name, text);
    }
    b.start().await
}

/// A JWS `sealed` accepts, for `sub`.
fn jws(sub: &str) -> String {
    KeyRing::shared().es256.sign(&claims(sub))
}

fn enc(name: &str, key: &str, header: Value, plaintext: &str) -> Encryption {
    Encryption {
        name: name.to_string(),
        key: key.to_string(),
        header,
        plaintext: plaintext.to_string(),
    }
}

/// Every (alg, curve) × enc the recipient holds a key for, nesting a token for a
/// subject named after the case.
fn every_combination(r: &Recipient) -> Vec<Encryption> {
    let mut out = Vec::new();
    for e in ENCS {
        let name = format!("RSA-OAEP-256-{e}");
        let header = json!({"alg": "RSA-OAEP-256", "enc": e, "cty": "JWT", "kid": "rsa"});
        out.push(enc(&name, &r.rsa, header, &jws(&name)));
        for (curve, pem) in r.curves() {
            for alg in ECDH {
                let name = format!("{curve}-{alg}-{e}");
                let kid = format!("{curve}-{alg}");
                let header = json!({"alg": alg, "enc": e, "cty": "JWT", "kid": kid});
                out.push(enc(&name, pem, header, &jws(&name)));
            }
        }
    }
    out
}

async fn decryptions(ward: &Ward, result: &str) -> f64 {
    ward.metric(
        "ward_token_decryptions_total",
        &[("provider", "sealed"), ("result", result)],
    )
    .await
    .unwrap_or_else(|| panic!("no decryption series for {result}"))
}

#[tokio::test]
async fn every_algorithm_and_encryption_from_jose_is_accepted_and_decrypted_once() {
    let r = Recipient::new();
    let cases = every_combination(&r);
    assert_eq!(cases.len(), 20);
    let Some(jwes) = jose::encrypt(&cases).await else {
        return;
    };
    let ward = start(&r, 16_384).await;
    assert_eq!(decryptions(&ward, "success").await, 0.0);
    for _ in 0..2 {
        for (c, jwe) in cases.iter().zip(&jwes) {
            assert_eq!(jwe.split('.').count(), 5, "{}", c.name);
            let resp = ward.check(Req::get("/sealed").bearer(jwe).to_map()).await;
            assert_eq!(
                set_header_map(allowed(&resp))["x-auth-subject"],
                c.name,
                "{}",
                c.name
            );
        }
        // The second round is served from the token cache: no decryption at all.
        assert_eq!(decryptions(&ward, "success").await, 20.0);
        assert_eq!(decryptions(&ward, "failure").await, 0.0);
    }
    let hits = ward
        .metric(
            "ward_token_cache_requests_total",
            &[("provider", "sealed"), ("result", "hit")],
        )
        .await;
    assert_eq!(hits, Some(20.0));
    // A provider without `decryption` reads a JWE as a malformed token.
    let resp = ward
        .check(Req::get("/plain").bearer(&jwes[0]).to_map())
        .await;
    assert_invalid_token(
        &resp,
        Some("malformed token"),
        "JWE to a provider without keys",
    );
}

/// `jwe` with its `i`th part changed by `f`.
fn with_part(jwe: &str, i: usize, f: impl FnOnce(&str) -> String) -> String {
    let mut parts: Vec<String> = jwe.split('.').map(str::to_string).collect();
    parts[i] = f(&parts[i]);
    parts.join(".")
}

fn flip_last(part: &str) -> String {
    let mut bytes = URL_SAFE_NO_PAD.decode(part).expect("base64url");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn bad_jwes_are_invalid_token_with_one_text() {
    let r = Recipient::new();
    let h = |alg: &str, kid: &str| json!({"alg": alg, "enc": "A256GCM", "cty": "JWT", "kid": kid});
    let secret16 = URL_SAFE_NO_PAD.encode([7u8; 16]);
    let secret32 = URL_SAFE_NO_PAD.encode([7u8; 32]);
    let claims_json = claims("mallory").to_string();
    let inner = jws("mallory");
    let cases = vec![
        enc("good-rsa", &r.rsa, h("RSA-OAEP-256", "rsa"), &inner),
        enc("good-p256", &r.p256, h("ECDH-ES", "p256-ECDH-ES"), &inner),
        enc(
            "good-p384-kw",
            &r.p384,
            h("ECDH-ES+A128KW", "p384-ECDH-ES+A128KW"),
            &inner,
        ),
        enc(
            "no-cty",
            &r.rsa,
            json!({"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": "rsa"}),
            &inner,
        ),
        enc(
            "cty-json",
            &r.rsa,
            json!({"alg": "RSA-OAEP-256", "enc": "A256GCM", "cty": "json", "kid": "rsa"}),
            &inner,
        ),
        enc("dir", &secret32, h("dir", "rsa"), &inner),
        enc("a128kw", &secret16, h("A128KW", "rsa"), &inner),
        enc("unknown-kid", &r.rsa, h("RSA-OAEP-256", "nope"), &inner),
        enc(
            "kid-of-another-alg",
            &r.p256,
            h("ECDH-ES", "p256-ECDH-ES+A256KW"),
            &inner,
        ),
        enc(
            "another-key",
            &TestKeyPem::rsa(),
            h("RSA-OAEP-256", "rsa"),
            &inner,
        ),
        enc(
            "another-curve",
            &r.p384,
            h("ECDH-ES", "p256-ECDH-ES"),
            &inner,
        ),
        // Nested, but the plaintext is the claims, not a JWS.
        enc(
            "claims-not-jws",
            &r.rsa,
            h("RSA-OAEP-256", "rsa"),
            &claims_json,
        ),
        // Nested, and the JWS's signature is not the signing key's.
        enc(
            "bad-signature",
            &r.rsa,
            h("RSA-OAEP-256", "rsa"),
            &bad_signature(&inner),
        ),
    ];
    let Some(jwes) = jose::encrypt(&cases).await else {
        return;
    };
    let ward = start(&r, 16_384).await;
    let jwe = |name: &str| {
        let i = cases.iter().position(|c| c.name == name).expect("a case");
        jwes[i].clone()
    };
    // The good ones are good, so the changes below are what is refused.
    for good in ["good-rsa", "good-p256", "good-p384-kw"] {
        let resp = ward
            .check(Req::get("/sealed").bearer(&jwe(good)).to_map())
            .await;
        allowed(&resp);
    }
    let truncate = |p: &str| p[..p.len() - 4].to_string();
    let refused: Vec<(&str, String, &str)> = vec![
        ("no cty", jwe("no-cty"), UNDECRYPTABLE),
        ("cty json", jwe("cty-json"), UNDECRYPTABLE),
        ("alg dir", jwe("dir"), UNDECRYPTABLE),
        ("alg A128KW", jwe("a128kw"), UNDECRYPTABLE),
        ("unknown kid", jwe("unknown-kid"), UNDECRYPTABLE),
        (
            "kid of another alg",
            jwe("kid-of-another-alg"),
            UNDECRYPTABLE,
        ),
        ("another RSA key", jwe("another-key"), UNDECRYPTABLE),
        ("epk of another curve", jwe("another-curve"), UNDECRYPTABLE),
        (
            "truncated ciphertext",
            with_part(&jwe("good-rsa"), 3, truncate),
            UNDECRYPTABLE,
        ),
        (
            "empty ciphertext",
            with_part(&jwe("good-rsa"), 3, |_| String::new()),
            UNDECRYPTABLE,
        ),
        (
            "changed tag",
            with_part(&jwe("good-rsa"), 4, flip_last),
            UNDECRYPTABLE,
        ),
        (
            "short tag",
            with_part(&jwe("good-rsa"), 4, truncate),
            UNDECRYPTABLE,
        ),
        (
            "changed ciphertext",
            with_part(&jwe("good-p256"), 3, flip_last),
            UNDECRYPTABLE,
        ),
        (
            "changed encrypted key",
            with_part(&jwe("good-rsa"), 1, flip_last),
            UNDECRYPTABLE,
        ),
        (
            "changed wrapped key",
            with_part(&jwe("good-p384-kw"), 1, flip_last),
            UNDECRYPTABLE,
        ),
        (
            "changed iv",
            with_part(&jwe("good-p256"), 2, flip_last),
            UNDECRYPTABLE,
        ),
        (
            "epk off the curve",
            with_part(&jwe("good-p256"), 0, off_curve_epk),
            UNDECRYPTABLE,
        ),
        (
            "epk swapped for another point",
            with_part(&jwe("good-p256"), 0, other_epk),
            UNDECRYPTABLE,
        ),
        (
            "RSA1_5 header",
            with_part(&jwe("good-rsa"), 0, |p| set_header(p, "alg", "RSA1_5")),
            UNDECRYPTABLE,
        ),
        (
            "zip header",
            with_part(&jwe("good-rsa"), 0, |p| set_header(p, "zip", "DEF")),
            UNDECRYPTABLE,
        ),
        (
            "six parts",
            format!("{}.x", jwe("good-rsa")),
            "malformed token",
        ),
        (
            "claims, not a JWS",
            jwe("claims-not-jws"),
            "malformed token",
        ),
        (
            "inner signature",
            jwe("bad-signature"),
            "signature verification failed",
        ),
    ];
    let before = decryptions(&ward, "failure").await;
    for (what, token, detail) in &refused {
        let resp = ward.check(Req::get("/sealed").bearer(token).to_map()).await;
        assert_invalid_token(&resp, Some(detail), what);
    }
    // Every refusal but the six-part one went through the decryption layer.
    let undecryptable = refused.iter().filter(|c| c.2 == UNDECRYPTABLE).count();
    assert_eq!(
        decryptions(&ward, "failure").await - before,
        undecryptable as f64
    );
}

#[tokio::test]
async fn the_size_cap_holds_before_any_decryption() {
    let r = Recipient::new();
    let cases = vec![enc(
        "big",
        &r.rsa,
        json!({"alg": "RSA-OAEP-256", "enc": "A256GCM", "cty": "JWT", "kid": "rsa"}),
        &KeyRing::shared().es256.sign(&check_setup::with(
            claims("alice"),
            json!({"pad": "x".repeat(2000)}),
        )),
    )];
    let Some(jwes) = jose::encrypt(&cases).await else {
        return;
    };
    let ward = start(&r, 2048).await;
    assert!(jwes[0].len() > 2048);
    let resp = ward
        .check(Req::get("/sealed").bearer(&jwes[0]).to_map())
        .await;
    assert_invalid_token(&resp, Some("token too large"), "oversized JWE");
    assert_eq!(decryptions(&ward, "success").await, 0.0);
    assert_eq!(decryptions(&ward, "failure").await, 0.0);
}

#[test]
fn decryption_config_errors_name_their_path_and_line() {
    let r = Recipient::new();
    let signing = KeyRing::shared().es256.jwks();
    let yaml = |keys: &str| {
        format!(
            "providers:\n  - name: sealed\n    jwt:\n      issuer: {ISS}\n      audiences: [api]\n      jwks: {signing}\n      decryption:\n        keys:\n{keys}routes:\n  - name: all\n    match: {{ path_prefix: / }}\n    providers: [sealed]\n"
        )
    };
    let b = Ward::builder(&yaml(
        "          - {kid: a, alg: dir, key_file: rsa.pem}\n          - {kid: a, alg: ECDH-ES, key_file: rsa.pem}\n          - {kid: c, alg: RSA-OAEP-256, key_file: p256.pem}\n          - {kid: d, alg: RSA-OAEP-256, key_file: missing.pem}\n",
    ))
    .file("rsa.pem", &r.rsa)
    .file("p256.pem", &r.p256);
    let dir = b.dir().display().to_string();
    let e = b.config_error();
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(
        lines[0],
        "line 9: providers[0].jwt.decryption.keys[0].alg: `dir` is not one of RSA-OAEP-256, ECDH-ES, ECDH-ES+A128KW, ECDH-ES+A256KW (`dir`, `RSA1_5` and bare key wrap are never accepted)",
        "{e}"
    );
    assert_eq!(
        lines[1],
        "line 10: providers[0].jwt.decryption.keys[1].kid: kid `a` is already used by providers[0].jwt.decryption.keys[0]",
        "{e}"
    );
    assert_eq!(
        lines[2],
        format!(
            "line 10: providers[0].jwt.decryption.keys[1].key_file: {dir}/rsa.pem: ECDH-ES needs a P-256, P-384 or P-521 EC private key"
        ),
        "{e}"
    );
    assert_eq!(
        lines[3],
        format!(
            "line 11: providers[0].jwt.decryption.keys[2].key_file: {dir}/p256.pem: RSA-OAEP-256 needs an RSA private key of 2048 bits or more (PKCS#8)"
        ),
        "{e}"
    );
    assert!(
        lines[4].starts_with(&format!(
            "line 12: providers[0].jwt.decryption.keys[3].key_file: cannot read {dir}/missing.pem"
        )),
        "{e}"
    );
    assert_eq!(lines.len(), 5, "{e}");
    let unknown = Ward::builder(&yaml(
        "          - {kid: e, alg: RSA-OAEP-256, key_file: rsa.pem, use: enc}\n",
    ))
    .file("rsa.pem", &r.rsa)
    .config_error();
    assert_eq!(
        unknown,
        "line 9: providers[0].jwt.decryption.keys[0].use: unknown field `use`, expected one of `kid`, `alg`, `key_file`"
    );
    let empty = Ward::builder(&yaml("          []\n").replace("keys:\n          []", "keys: []"))
        .config_error();
    assert_eq!(
        empty,
        "line 8: providers[0].jwt.decryption.keys: list at least one key, or leave `decryption` out to accept signed tokens only"
    );
}

/// A PEM of another RSA key.
struct TestKeyPem;

impl TestKeyPem {
    fn rsa() -> String {
        String::from_utf8(TestKey::generate(Alg::RS256).key_file().to_vec()).expect("PEM")
    }
}

/// `jws` with a signature by another key.
fn bad_signature(jws: &str) -> String {
    let (input, _) = jws.rsplit_once('.').expect("a JWS");
    let other = TestKey::generate(Alg::ES256).sign(&claims("mallory"));
    format!("{input}.{}", other.rsplit_once('.').expect("a JWS").1)
}

fn header_of(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

fn set_header(part: &str, name: &str, value: &str) -> String {
    let mut h = header_of(part);
    h[name] = value.into();
    URL_SAFE_NO_PAD.encode(h.to_string())
}

/// The header with its `epk` moved off the curve (y + 1).
fn off_curve_epk(part: &str) -> String {
    let mut h = header_of(part);
    let y = h["epk"]["y"].as_str().expect("an EC epk").to_string();
    h["epk"]["y"] = flip_last(&y).into();
    URL_SAFE_NO_PAD.encode(h.to_string())
}

/// The header with its `epk` replaced by a valid point of the curve: another key's.
fn other_epk(part: &str) -> String {
    let mut h = header_of(part);
    let jwk = TestKey::generate(Alg::ES256).jwk();
    h["epk"]["x"] = jwk["x"].clone();
    h["epk"]["y"] = jwk["y"].clone();
    URL_SAFE_NO_PAD.encode(h.to_string())
}

#[test]
fn the_debug_log_of_a_failure_carries_no_token_plaintext_or_key() {
    use common::bin::Serve;
    use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
    let r = Recipient::new();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let inner = bad_signature(&jws("mallory"));
    let header = json!({"alg": "RSA-OAEP-256", "enc": "A256GCM", "cty": "JWT", "kid": "rsa"});
    let cases = [enc("bad-inner", &r.rsa, header, &inner)];
    let Some(jwes) = rt.block_on(jose::encrypt(&cases)) else {
        return;
    };
    let tampered = with_part(&jwes[0], 4, flip_last);
    let dir = tempfile::tempdir().expect("tempdir");
    let (yaml, files) = config(&r, 16_384);
    for (name, text) in &files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(path, text).expect("write key");
    }
    let path = dir.path().join("ward.yaml");
    std::fs::write(&path, yaml).expect("write config");
    let mut ward = Serve::start(dir.path(), &path, &[("RUST_LOG", "debug")]);
    rt.block_on(async {
        let mut c = AuthorizationClient::connect(format!("http://{}", ward.grpc_addr))
            .await
            .expect("connect");
        for (id, tok) in [("req-inner", &jwes[0]), ("req-tag", &tampered)] {
            let req = Req::get("/sealed").bearer(tok).request_id(id);
            c.check(req.to_map()).await.expect("rpc");
        }
    });
    assert!(ward.terminate().success());
    let all = ward.lines().join("\n");
    let (inner_input, inner_sig) = inner.rsplit_once('.').expect("a JWS");
    let key_line = r.rsa.lines().nth(1).expect("a PEM body line");
    for secret in [
        jwes[0].as_str(),
        tampered.as_str(),
        inner_input,
        inner_sig,
        key_line,
        "mallory",
    ] {
        assert!(!all.contains(secret), "the log leaks {secret:?}:\n{all}");
    }
    assert!(
        all.contains("req-inner") && all.contains("signature verification failed"),
        "{all}"
    );
    assert!(
        all.contains("req-tag") && all.contains(UNDECRYPTABLE),
        "{all}"
    );
}

#[tokio::test]
async fn a_replaced_key_file_decrypts_after_a_reload_and_the_old_key_no_longer_does() {
    let (a, b) = (Recipient::new(), Recipient::new());
    let header = json!({"alg": "RSA-OAEP-256", "enc": "A256GCM", "cty": "JWT", "kid": "rsa"});
    let cases = [
        enc("to-a", &a.rsa, header.clone(), &jws("to-a")),
        enc("to-b", &b.rsa, header, &jws("to-b")),
    ];
    let Some(jwes) = jose::encrypt(&cases).await else {
        return;
    };
    let (yaml, files) = config(&a, 16_384);
    let mut builder = Ward::from_file("ward.yaml").file("ward.yaml", &yaml);
    for (name, text) in &files {
        builder = builder.file(name, text);
    }
    let ward = builder.start().await;
    let check = async |tok: &str| ward.check(Req::get("/sealed").bearer(tok).to_map()).await;
    allowed(&check(&jwes[0]).await);
    assert_invalid_token(
        &check(&jwes[1]).await,
        Some(UNDECRYPTABLE),
        "before the reload",
    );

    std::fs::write(ward.dir().join("keys/rsa.pem"), &b.rsa).expect("replace the key file");
    ward.reload().expect("reload");
    allowed(&check(&jwes[1]).await);
    // Cached before the reload, yet refused: the new policy holds only the new key.
    assert_invalid_token(
        &check(&jwes[0]).await,
        Some(UNDECRYPTABLE),
        "after the reload",
    );
}

/// What `ward token sign --encrypt-to` makes (`ward::devtoken::encrypt_to`) is a JWE the
/// independent `jose` decrypts, for every algorithm, curve and encryption, from a public
/// JWK or a `PUBLIC KEY` PEM.
#[tokio::test]
async fn jwes_ward_makes_are_decrypted_by_jose() {
    let inner = jws("alice");
    let rsa = TestKey::generate(Alg::RS256);
    let p256 = TestKey::generate(Alg::ES256);
    let p384 = TestKey::generate(Alg::ES384);
    let p521 = P521Key::generate();
    let pem = |k: &[u8]| String::from_utf8(k.to_vec()).expect("PEM");
    let mut recipients: Vec<(&str, String, String, Vec<&str>)> = vec![(
        "rsa",
        rsa.rsa_public_pem(),
        pem(rsa.key_file()),
        vec!["RSA-OAEP-256"],
    )];
    for (name, jwk, private) in [
        ("p256", p256.jwk(), pem(p256.key_file())),
        ("p384", p384.jwk(), pem(p384.key_file())),
        ("p521", p521.jwk(), pem(p521.key_file())),
    ] {
        recipients.push((name, jwk.to_string(), private, ECDH.to_vec()));
    }
    let mut cases = Vec::new();
    for (name, public, private, algs) in &recipients {
        for alg in algs {
            for e in ENCS {
                let jwe = ward::devtoken::encrypt_to(&inner, public.as_bytes(), Some(alg), Some(e))
                    .unwrap_or_else(|err| panic!("{name} {alg} {e}: {err}"));
                cases.push((format!("{name}-{alg}-{e}"), private.clone(), jwe));
            }
        }
    }
    assert_eq!(cases.len(), 20);
    let Some(results) = jose::decrypt(&cases).await else {
        return;
    };
    for ((name, _, _), result) in cases.iter().zip(results) {
        let (header, plaintext) = result.unwrap_or_else(|e| panic!("{name}: jose refused: {e}"));
        assert_eq!(plaintext, inner, "{name}");
        assert_eq!(header["cty"], "JWT", "{name}");
        let (alg, enc) = (
            header["alg"].as_str().unwrap_or_default(),
            header["enc"].as_str().unwrap_or_default(),
        );
        assert_eq!(
            name,
            &format!("{}-{alg}-{enc}", name.split('-').next().unwrap_or_default()),
            "{header}"
        );
    }
}
