//! The CLI end to end, through the real binary: `ward token sign` and `ward token jwks`
//! agree on the key id for every key family, a config built from that JWKS lets
//! `ward check` allow the token, and `ward check` reports decisions and exit codes without
//! ever printing the credential, nor a token it minted (only its claims). Keys are
//! generated here with aws-lc-rs, never checked in.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use common::bin::{has_line, ward_out, ward_stdin};
use common::{TestKey, each_case, now};
use ward::authn::apikey::sha256_hex;
use ward::authn::jwt::Alg;

const ISSUER: &str = "https://idp.example.com/realms/corp";
const AUDIENCE: &str = "orders-api";

// === keys ===

/// A fresh private key for `alg`, written to `dir` as `ward token sign --key` reads it
/// (PKCS#8 PEM; for HS*: 48 random bytes, the secret itself).
fn write_key(dir: &Path, alg: &str, name: &str) -> PathBuf {
    let alg = Alg::parse(alg).unwrap_or_else(|| panic!("no key generator for {alg}"));
    let path = dir.join(name);
    if alg == Alg::ES512 {
        std::fs::write(&path, testkeys::P521Key::generate().key_file()).unwrap();
        return path;
    }
    std::fs::write(&path, TestKey::generate(alg).key_file()).unwrap();
    path
}

fn decode_part(token: &str, i: usize) -> Value {
    let part = token.split('.').nth(i).expect("three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

/// `ward token jwks`: the JWKS, parsed.
fn jwks(dir: &Path, key: &Path, alg: &str) -> Value {
    let (code, stdout, stderr) = ward_out(
        dir,
        &[
            "token",
            "jwks",
            "--key",
            key.to_str().unwrap(),
            "--alg",
            alg,
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stderr, "");
    serde_json::from_str(&stdout).expect("jwks prints only JSON")
}

/// `ward token sign` with extra arguments: the token, checked to be all that was printed.
fn sign(dir: &Path, key: &Path, alg: &str, sub: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "token",
        "sign",
        "--key",
        key.to_str().unwrap(),
        "--alg",
        alg,
        "--iss",
        ISSUER,
        "--aud",
        AUDIENCE,
        "--sub",
        sub,
    ];
    args.extend_from_slice(extra);
    let (code, stdout, stderr) = ward_out(dir, &args);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stderr, "");
    let token = stdout.strip_suffix('\n').expect("one line");
    assert!(
        !token.contains('\n'),
        "sign prints only the token: {stdout}"
    );
    assert_eq!(token.split('.').count(), 3, "{token}");
    token.to_string()
}

/// How the config names the JWKS.
#[derive(Clone, Copy)]
enum Jwks {
    Inline,
    File,
}

/// A config with one JWT provider over `jwks` and a route that needs role `admin`.
fn write_config(dir: &Path, alg: &str, jwks: &Value, how: Jwks) -> PathBuf {
    let source = match how {
        Jwks::Inline => format!("jwks: {}", serde_json::to_string(jwks).unwrap()),
        Jwks::File => {
            std::fs::write(
                dir.join("jwks.json"),
                serde_json::to_string_pretty(jwks).unwrap(),
            )
            .unwrap();
            "jwks_file: jwks.json".to_string()
        }
    };
    let yaml = format!(
        "\
providers:
  - name: corp
    jwt:
      issuer: {ISSUER}
      audiences: [{AUDIENCE}]
      {source}
      algorithms: [{alg}]
      leeway: 0s
routes:
  - name: orders
    match: {{ path_prefix: /orders }}
    providers: [corp]
    require: {{ roles_any: [admin] }}
"
    );
    let path = dir.join("ward.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn check(dir: &Path, config: &Path, token: &str, json: bool) -> (Option<i32>, String, String) {
    let auth = format!("authorization: Bearer {token}");
    let mut args = vec![
        "check",
        "--config",
        config.to_str().unwrap(),
        "--method",
        "GET",
        "--path",
        "/orders/42",
        "-H",
        &auth,
    ];
    if json {
        args.push("--json");
    }
    ward_out(dir, &args)
}

fn assert_secret_absent(secret: &str, stdout: &str, stderr: &str) {
    assert!(
        !stdout.contains(secret),
        "the credential leaked to stdout:\n{stdout}"
    );
    assert!(
        !stderr.contains(secret),
        "the credential leaked to stderr:\n{stderr}"
    );
}

// === sign + jwks + check, per algorithm ===

fn round_trip(alg: &str, how: Jwks) {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let key = write_key(dir, alg, "key.pem");
    let set = jwks(dir, &key, alg);
    let keys = set["keys"].as_array().expect("a keys array");
    assert_eq!(keys.len(), 1, "{set}");
    let kid = keys[0]["kid"].as_str().expect("a string kid");
    assert!(!kid.is_empty());
    assert_eq!(keys[0]["alg"], alg, "{set}");
    assert_eq!(keys[0]["use"], "sig", "{set}");
    if alg != "HS256" {
        assert!(
            keys[0].get("d").is_none(),
            "a public JWKS holds no private part: {set}"
        );
    }

    let sub = format!("alice-{}", alg.to_ascii_lowercase());
    let token = sign(
        dir,
        &key,
        alg,
        &sub,
        &["--claim", r#"roles=["admin"]"#, "--ttl", "5m"],
    );
    let header = decode_part(&token, 0);
    assert_eq!(
        header["kid"], kid,
        "the token's kid names the JWKS key: {header}"
    );
    assert_eq!(header["alg"], alg, "{header}");
    let claims = decode_part(&token, 1);
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(claims["sub"], sub.as_str());
    assert_eq!(claims["roles"], json!(["admin"]));
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert_eq!(exp - iat, 300, "--ttl 5m: {claims}");

    let config = write_config(dir, alg, &set, how);

    // Allowed, with the identity headers listed.
    let (code, stdout, stderr) = check(dir, &config, &token, false);
    assert_eq!(code, Some(0), "{alg}: {stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    for want in [
        "decision: allow",
        "route: orders",
        "status: 200",
        "reason: ok",
        &format!("set: x-auth-subject: {sub}") as &str,
        &format!("set: x-auth-issuer: {ISSUER}"),
        "set: x-auth-provider: corp",
        "set: x-auth-roles: admin",
        "remove: x-auth-scopes",
    ] {
        assert!(lines.contains(&want), "{alg}: no `{want}` in:\n{stdout}");
    }
    assert_secret_absent(&token, &stdout, &stderr);

    // The same as JSON.
    let (code, stdout, stderr) = check(dir, &config, &token, true);
    assert_eq!(code, Some(0), "{stderr}");
    let v: Value = serde_json::from_str(&stdout).expect("--json prints JSON");
    assert_eq!(v["decision"], "allow");
    assert_eq!(v["route"], "orders");
    assert_eq!(v["status"], 200);
    assert_eq!(v["reason"], "ok");
    let set_headers: BTreeMap<String, String> =
        serde_json::from_value(v["headers_set"].clone()).expect("headers_set is an object");
    let want: BTreeMap<String, String> = [
        ("x-auth-subject", sub.as_str()),
        ("x-auth-issuer", ISSUER),
        ("x-auth-provider", "corp"),
        ("x-auth-roles", "admin"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(set_headers, want);
    assert_eq!(v["headers_removed"], json!(["x-auth-scopes"]));
    assert_secret_absent(&token, &stdout, &stderr);

    // Denied: the role is missing.
    let plain = sign(dir, &key, alg, &sub, &[]);
    let (code, stdout, stderr) = check(dir, &config, &plain, false);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(has_line(&stdout, "decision: deny"), "{stdout}");
    assert!(has_line(&stdout, "status: 403"), "{stdout}");
    assert!(has_line(&stdout, "reason: forbidden"), "{stdout}");
    assert!(
        !stdout.contains("set: "),
        "a denial sets no header: {stdout}"
    );
    assert_secret_absent(&plain, &stdout, &stderr);

    // Denied: expired (exp in 1970), in text and JSON, and still never echoed.
    let expired = sign(
        dir,
        &key,
        alg,
        &sub,
        &["--claim", r#"roles=["admin"]"#, "--claim", "exp=1000"],
    );
    let (code, stdout, stderr) = check(dir, &config, &expired, false);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(has_line(&stdout, "status: 401"), "{stdout}");
    assert!(has_line(&stdout, "reason: invalid_token"), "{stdout}");
    assert!(has_line(&stdout, "detail: token expired"), "{stdout}");
    assert_secret_absent(&expired, &stdout, &stderr);
    let (code, stdout, stderr) = check(dir, &config, &expired, true);
    assert_eq!(code, Some(1));
    let v: Value = serde_json::from_str(&stdout).expect("--json prints JSON");
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["status"], 401);
    assert_eq!(v["reason"], "invalid_token");
    assert_eq!(v["detail"], "token expired");
    assert!(v.get("headers_set").is_none(), "{v}");
    assert_secret_absent(&expired, &stdout, &stderr);
}

#[test]
fn every_key_family_round_trips() {
    each_case(
        [
            ("RS256, inline JWKS", ("RS256", Jwks::Inline)),
            ("PS256, JWKS file", ("PS256", Jwks::File)),
            ("ES256, inline JWKS", ("ES256", Jwks::Inline)),
            ("ES384, JWKS file", ("ES384", Jwks::File)),
            ("ES512, inline JWKS", ("ES512", Jwks::Inline)),
            ("EdDSA, inline JWKS", ("EdDSA", Jwks::Inline)),
            ("Ed25519, JWKS file", ("Ed25519", Jwks::File)),
            ("HS256, JWKS file", ("HS256", Jwks::File)),
        ],
        |(alg, how)| round_trip(alg, how),
    );
}

#[test]
fn a_token_whose_nbf_has_passed_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let key = write_key(dir, "ES256", "key.pem");
    let config = write_config(dir, "ES256", &jwks(dir, &key, "ES256"), Jwks::Inline);
    let nbf = format!("nbf={}", now() - 60);
    let token = sign(
        dir,
        &key,
        "ES256",
        "alice",
        &["--claim", r#"roles=["admin"]"#, "--claim", &nbf],
    );
    let (code, stdout, stderr) = check(dir, &config, &token, false);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
}

#[test]
fn jwks_kid_is_stable_for_one_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = write_key(dir.path(), "ES256", "key.pem");
    let a = jwks(dir.path(), &key, "ES256");
    let b = jwks(dir.path(), &key, "ES256");
    assert_eq!(a, b);
    let other = write_key(dir.path(), "ES256", "other.pem");
    let c = jwks(dir.path(), &other, "ES256");
    assert_ne!(a["keys"][0]["kid"], c["keys"][0]["kid"]);
}

#[test]
fn a_token_from_another_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let trusted = write_key(dir, "ES256", "trusted.pem");
    let rogue = write_key(dir, "ES256", "rogue.pem");
    let config = write_config(dir, "ES256", &jwks(dir, &trusted, "ES256"), Jwks::Inline);
    let token = sign(
        dir,
        &rogue,
        "ES256",
        "mallory",
        &["--claim", r#"roles=["admin"]"#],
    );
    let (code, stdout, stderr) = check(dir, &config, &token, false);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(has_line(&stdout, "reason: invalid_token"), "{stdout}");
    assert!(has_line(&stdout, "detail: unknown key id"), "{stdout}");
    assert_secret_absent(&token, &stdout, &stderr);
}

#[test]
fn hmac_secret_shorter_than_32_bytes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("short.key");
    std::fs::write(&key, [7u8; 31]).unwrap();
    let (code, stdout, stderr) = ward_out(
        dir.path(),
        &[
            "token",
            "sign",
            "--key",
            key.to_str().unwrap(),
            "--alg",
            "HS256",
            "--iss",
            ISSUER,
            "--aud",
            AUDIENCE,
            "--sub",
            "a",
        ],
    );
    assert_eq!(code, Some(1), "{stdout}");
    assert_eq!(stdout, "");
    assert!(stderr.contains("at least 32 bytes"), "{stderr}");
}

// === ward check exit codes ===

#[test]
fn broken_config_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ward.yaml");
    std::fs::write(
        &config,
        "routes:\n  - name: r\n    match: { path_prefix: /x }\n",
    )
    .unwrap();
    let (code, stdout, stderr) = check(dir.path(), &config, "a.b.c", false);
    assert_eq!(code, Some(2), "{stdout}");
    assert_eq!(stdout, "");
    assert!(
        stderr.contains("routes[0]: this route names no providers"),
        "{stderr}"
    );

    let missing = dir.path().join("missing.yaml");
    let (code, stdout, _) = check(dir.path(), &missing, "a.b.c", false);
    assert_eq!(code, Some(2));
    assert_eq!(stdout, "");
}

#[test]
fn check_shows_the_identity_it_read_also_on_a_denial() {
    let dir = tempfile::tempdir().unwrap();
    let key = write_key(dir.path(), "ES256", "key.pem");
    let set = jwks(dir.path(), &key, "ES256");
    let config = write_config(dir.path(), "ES256", &set, Jwks::Inline);
    let token = sign(
        dir.path(),
        &key,
        "ES256",
        "alice",
        &[
            "--claim",
            r#"roles=["viewer","auditor"]"#,
            "--claim",
            r#"scope="orders:read profile""#,
        ],
    );
    let (code, stdout, stderr) = check(dir.path(), &config, &token, false);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stdout.contains("status: 403\n"), "{stdout}");
    for line in [
        "provider: corp\n",
        "subject: alice\n",
        "roles: viewer, auditor\n",
        "scopes: orders:read profile\n",
    ] {
        assert!(stdout.contains(line), "no `{line}` in:\n{stdout}");
    }
    let bare = sign(dir.path(), &key, "ES256", "bob", &[]);
    let (_, stdout, _) = check(dir.path(), &config, &bare, false);
    assert!(
        stdout.contains("roles: (none)\nscopes: (none)\n"),
        "{stdout}"
    );
    assert_secret_absent(&token, &stdout, &stderr);
}

#[test]
fn a_malformed_header_argument_does_not_echo_the_credential() {
    let dir = tempfile::tempdir().unwrap();
    let key = write_key(dir.path(), "ES256", "key.pem");
    let set = jwks(dir.path(), &key, "ES256");
    let config = write_config(dir.path(), "ES256", &set, Jwks::Inline);
    let token = sign(dir.path(), &key, "ES256", "alice", &[]);
    let bad = format!("authorization=Bearer {token}");
    let (code, stdout, stderr) = ward_out(
        dir.path(),
        &[
            "check",
            "--config",
            config.to_str().unwrap(),
            "--path",
            "/orders",
            "-H",
            &bad,
        ],
    );
    assert_eq!(code, Some(2));
    assert_secret_absent(&token, &stdout, &stderr);
}

// === API keys ===

fn hash_key(dir: &Path, stdin: &[u8]) -> (Option<i32>, String, String) {
    ward_stdin(dir, &["token", "hash-key"], stdin)
}

#[test]
fn hash_key_prints_the_sha256_of_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let key = "wk_live_3f9a1c2e7b";
    let want = sha256_hex(key.as_bytes());
    for input in [format!("{key}\n"), format!("{key}\r\n"), key.to_string()] {
        let (code, stdout, stderr) = hash_key(dir.path(), input.as_bytes());
        assert_eq!(code, Some(0), "{stderr}");
        assert_eq!(stdout, format!("{want}\n"), "{input:?}");
        assert_secret_absent(key, &stdout, &stderr);
    }
    let (code, stdout, _) = hash_key(dir.path(), b"\n");
    assert_eq!(code, Some(1));
    assert_eq!(stdout, "");
}

#[test]
fn api_key_with_hash_from_hash_key_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let key = "wk_live_8d1e55aa90";
    let (code, stdout, stderr) = hash_key(dir, format!("{key}\n").as_bytes());
    assert_eq!(code, Some(0), "{stderr}");
    let hash = stdout.trim_end();
    assert_eq!(hash, sha256_hex(key.as_bytes()));
    let config = dir.join("ward.yaml");
    std::fs::write(
        &config,
        format!(
            "\
providers:
  - name: machines
    api_key:
      header: x-api-key
      keys: [ {{ sha256: \"{hash}\", subject: billing-batch, roles: [billing] }} ]
routes:
  - name: billing
    match: {{ path_prefix: /billing }}
    providers: [machines]
    require: {{ roles_any: [billing] }}
"
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let check_with = |header: &str| {
        ward_out(
            dir,
            &[
                "check",
                "--config",
                cfg,
                "--path",
                "/billing/run",
                "-H",
                header,
            ],
        )
    };

    let (code, stdout, stderr) = check_with(&format!("x-api-key: {key}"));
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    for want in [
        "decision: allow",
        "route: billing",
        "set: x-auth-subject: billing-batch",
        "set: x-auth-provider: machines",
        "set: x-auth-roles: billing",
    ] {
        assert!(lines.contains(&want), "no `{want}` in:\n{stdout}");
    }
    assert_secret_absent(key, &stdout, &stderr);

    let (code, stdout, stderr) = check_with(&format!("x-api-key: {key}x"));
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(has_line(&stdout, "status: 401"), "{stdout}");
    assert!(has_line(&stdout, "reason: invalid_token"), "{stdout}");
    assert_secret_absent(key, &stdout, &stderr);
}

// === path normalisation through the CLI ===

#[test]
fn dot_segments_do_not_reach_the_public_route() {
    let quickstart = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart.yaml");
    let cfg = quickstart.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for path in [
        "/public/../admin",
        "/public/%2e%2e/admin",
        "/public/./../admin/users",
        "//admin",
    ] {
        let (code, stdout, stderr) =
            ward_out(dir.path(), &["check", "--config", cfg, "--path", path]);
        assert_eq!(code, Some(1), "{path}: {stdout}{stderr}");
        assert!(has_line(&stdout, "route: admin"), "{path}: {stdout}");
        assert!(
            has_line(&stdout, "reason: missing_credential"),
            "{path}: {stdout}"
        );
        assert!(!stdout.contains("route: public"), "{path}: {stdout}");
    }
    // The public route itself is allowed anonymously.
    let (code, stdout, _) = ward_out(
        dir.path(),
        &["check", "--config", cfg, "--path", "/public/x"],
    );
    assert_eq!(code, Some(0), "{stdout}");
    assert!(has_line(&stdout, "route: public"), "{stdout}");
}

// === a minted token, shown as its claims ===

/// `ward check` on the quickstart's minting route `/api`, with `-H` arguments.
fn check_quickstart(
    dir: &Path,
    path: &str,
    headers: &[String],
    json: bool,
) -> (Option<i32>, String, String) {
    let quickstart = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart.yaml");
    let mut args = vec![
        "check",
        "--config",
        quickstart.to_str().unwrap(),
        "--path",
        path,
    ];
    for h in headers {
        args.extend(["-H", h.as_str()]);
    }
    if json {
        args.push("--json");
    }
    ward_out(dir, &args)
}

/// A development token for alice with `roles`, from the quickstart's development key.
fn quickstart_token(dir: &Path, roles: &str) -> String {
    let key = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/keys/dev-rsa.pem");
    let roles = format!("roles={roles}");
    let (code, stdout, stderr) = ward_out(
        dir,
        &[
            "token",
            "sign",
            "--key",
            key.to_str().unwrap(),
            "--iss",
            "https://dev.ward.local",
            "--aud",
            "quickstart-api",
            "--sub",
            "alice",
            "--claim",
            &roles,
            "--claim",
            r#"email="alice@example.com""#,
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    stdout.trim_end().to_string()
}

#[test]
fn check_shows_the_claims_of_a_minted_token_never_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let token = quickstart_token(dir.path(), r#"["admin"]"#);
    let auth = vec![format!("authorization: Bearer {token}")];

    let (code, stdout, stderr) = check_quickstart(dir.path(), "/api/items", &auth, false);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    for want in [
        "route: api",
        "set: x-auth-subject: alice",
        "set: x-auth-token: (a token ward minted: see minted)",
        r#"minted: iss: "http://127.0.0.1:9002""#,
        r#"minted: aud: "quickstart-backend""#,
        r#"minted: sub: "alice""#,
        r#"minted: purpose: "api""#,
        r#"minted: act: {"iss":"https://dev.ward.local","sub":"alice"}"#,
        r#"minted: roles: ["admin"]"#,
        r#"minted: email: "alice@example.com""#,
    ] {
        assert!(lines.contains(&want), "no `{want}` in:\n{stdout}");
    }
    // The claims come last, one a line, and the token's lifetime is the route's ttl.
    let claim = |name: &str| -> Value {
        let prefix = format!("minted: {name}: ");
        let line = lines
            .iter()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .unwrap_or_else(|| panic!("no {name} in:\n{stdout}"));
        serde_json::from_str(line).expect("a JSON value")
    };
    let (iat, exp) = (
        claim("iat").as_u64().unwrap(),
        claim("exp").as_u64().unwrap(),
    );
    assert_eq!(exp - iat, 60, "mint.ttl is 60s:\n{stdout}");
    assert!(claim("jti").as_str().is_some_and(|j| !j.is_empty()));
    assert!(
        lines.last().is_some_and(|l| l.starts_with("minted: ")),
        "{stdout}"
    );
    assert!(
        !lines.iter().any(|l| l.starts_with("minted: scope")),
        "no scope: {stdout}"
    );
    assert!(!stdout.contains("eyJ"), "a token leaked:\n{stdout}");
    assert_secret_absent(&token, &stdout, &stderr);

    // The same as JSON: `minted` holds the header and the claims.
    let (code, stdout, stderr) = check_quickstart(dir.path(), "/api/items", &auth, true);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let v: Value = serde_json::from_str(&stdout).expect("--json prints JSON");
    assert_eq!(v["minted"]["header"], "x-auth-token", "{v}");
    let claims = &v["minted"]["claims"];
    assert_eq!(claims["aud"], "quickstart-backend", "{v}");
    assert_eq!(claims["sub"], "alice", "{v}");
    assert_eq!(claims["roles"], json!(["admin"]), "{v}");
    assert_eq!(
        v["headers_set"]["x-auth-token"], "(a token ward minted: see minted)",
        "{v}"
    );
    assert!(!stdout.contains("eyJ"), "a token leaked:\n{stdout}");
}

#[test]
fn check_shows_no_minted_claims_where_nothing_is_minted() {
    let dir = tempfile::tempdir().unwrap();
    let token = quickstart_token(dir.path(), r#"["admin"]"#);
    let auth = vec![format!("authorization: Bearer {token}")];
    // Denied on the minting route: no token, nothing to show.
    let (code, stdout, stderr) = check_quickstart(dir.path(), "/api/items", &[], false);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(has_line(&stdout, "reason: missing_credential"), "{stdout}");
    assert!(!stdout.contains("minted"), "{stdout}");
    let (code, stdout, _) = check_quickstart(dir.path(), "/api/items", &[], true);
    assert_eq!(code, Some(1));
    let v: Value = serde_json::from_str(&stdout).expect("--json prints JSON");
    assert!(v.get("minted").is_none(), "{v}");
    // Allowed on a route that does not mint: the mint header is removed, not set.
    let (code, stdout, stderr) = check_quickstart(dir.path(), "/admin/users", &auth, false);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(has_line(&stdout, "remove: x-auth-token"), "{stdout}");
    assert!(!stdout.contains("minted"), "{stdout}");
    assert_secret_absent(&token, &stdout, &stderr);
}

// === a reader that leaves early ===

/// `ward ARGS` with standard output a pipe whose reader has already gone, as in
/// `ward check … | head` once `head` has read its lines: exit code and standard error.
fn ward_to_closed_pipe(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let mut c = common::bin::ward(dir, args);
    c.stdout(std::process::Stdio::from(writer))
        .stderr(std::process::Stdio::piped());
    let out = c.output().expect("ward runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_closed_pipe_ends_a_command_with_its_own_exit_code_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let quickstart = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart.yaml");
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart.cases.yaml");
    let (q, c) = (quickstart.to_str().unwrap(), cases.to_str().unwrap());
    let token = quickstart_token(d, r#"["admin"]"#);
    let auth = format!("authorization: Bearer {token}");
    for (args, want) in [
        // The quickstart's `/api` allows alice: exit 0 even though nothing was read.
        (
            vec!["check", "--config", q, "--path", "/api/orders", "-H", &auth],
            0,
        ),
        (
            vec![
                "check",
                "--config",
                q,
                "--path",
                "/api/orders",
                "-H",
                &auth,
                "--json",
            ],
            0,
        ),
        (vec!["check", "--config", q, "--path", "/api/orders"], 1),
        (vec!["validate", "--config", q], 0),
        (vec!["test", "--config", q, c], 0),
    ] {
        let (code, stderr) = ward_to_closed_pipe(d, &args);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(code, Some(want), "{args:?}: {stderr}");
    }
}

// === ward test --trust-dev-key ===

#[test]
fn trust_dev_key_runs_cases_against_a_production_config() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/policies/keys");
    // The production shape: keys from the IdP (unreachable here), one API-key provider.
    let config = dir.join("prod.yaml");
    std::fs::write(
        &config,
        "\
providers:
  - name: keycloak
    jwt:
      issuer: https://sso.example.com/realms/acme
      audiences: [orders-api]
      jwks_uri: http://127.0.0.1:9/certs
      algorithms: [ES256]
      claims: { roles: realm_access.roles }
  - name: machines
    api_key: { header: x-api-key, keys: [{ sha256: \"0000000000000000000000000000000000000000000000000000000000000000\", subject: batch }] }
routes:
  - name: orders
    match: { path_prefix: /orders }
    providers: [keycloak]
    require: { roles_any: [orders-reader] }
",
    )
    .unwrap();
    let cases = dir.join("cases.yaml");
    std::fs::write(
        &cases,
        format!(
            "\
keys:
  dev: {{ file: {dev}, alg: ES256 }}
  rogue: {{ file: {rogue}, alg: ES256 }}
defaults:
  token:
    key: dev
    claims: {{ iss: https://sso.example.com/realms/acme, aud: orders-api, sub: alice }}
cases:
  - name: reader lists orders
    request: {{ path: /orders }}
    token: {{ claims: {{ realm_access: {{ roles: [orders-reader] }} }} }}
    expect: {{ decision: allow }}
  - name: another key is still refused
    request: {{ path: /orders }}
    token: {{ key: rogue, claims: {{ realm_access: {{ roles: [orders-reader] }} }} }}
    expect: {{ decision: deny, status: 401 }}
",
            dev = keys.join("idp-ec.pem").display(),
            rogue = keys.join("rogue-ec.pem").display(),
        ),
    )
    .unwrap();
    let (c, p) = (config.to_str().unwrap(), cases.to_str().unwrap());
    let dev = format!("keycloak={}", keys.join("idp-ec.pem").display());

    // Without the override the provider's own keys are needed, and unreachable.
    let (code, stdout, _) = ward_out(dir, &["test", "--config", c, p]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("authn_unavailable"), "{stdout}");

    let (code, stdout, stderr) =
        ward_out(dir, &["test", "--config", c, p, "--trust-dev-key", &dev]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.ends_with("2 passed, 0 failed\n"), "{stdout}");

    let rsa = format!("keycloak={}", keys.join("rogue-rsa.pem").display());
    let machines = format!("machines={}", keys.join("idp-ec.pem").display());
    let bad: [(&str, &str); 4] = [
        (
            "okta=x.pem",
            "--trust-dev-key okta: no provider is named `okta` (providers: keycloak, machines)",
        ),
        (&machines, "--trust-dev-key machines: not a JWT provider"),
        (
            &rsa,
            "is not a key for any of the provider's algorithms (ES256)",
        ),
        ("keycloak", "`keycloak` is not PROVIDER=PEM"),
    ];
    for (arg, want) in bad {
        let (code, stdout, stderr) =
            ward_out(dir, &["test", "--config", c, p, "--trust-dev-key", arg]);
        assert_eq!(code, Some(2), "{arg}: {stdout}{stderr}");
        assert!(stderr.contains(want), "{arg}: {stderr}");
        assert_eq!(stdout, "", "{arg}");
    }
}

// === sender-constrained tokens ===

#[test]
fn token_sign_binds_to_a_key_or_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let idp = write_key(dir.path(), "ES256", "idp.pem");
    let client = write_key(dir.path(), "EdDSA", "client.pem");
    let client_kid = jwks(dir.path(), &client, "EdDSA")["keys"][0]["kid"]
        .as_str()
        .unwrap()
        .to_string();
    let bound = sign(
        dir.path(),
        &idp,
        "ES256",
        "alice",
        &["--cnf-key", client.to_str().unwrap(), "--cnf-alg", "EdDSA"],
    );
    assert_eq!(decode_part(&bound, 1)["cnf"], json!({"jkt": client_kid}));

    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["client.test".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(dir.path().join("client.crt"), cert.pem()).unwrap();
    let bound = sign(
        dir.path(),
        &idp,
        "ES256",
        "alice",
        &["--cnf-cert", "client.crt"],
    );
    let want = URL_SAFE_NO_PAD.encode(ward::digest::sha256(cert.der()));
    assert_eq!(decode_part(&bound, 1)["cnf"], json!({"x5t#S256": want}));

    // Not a certificate: an error, and no token.
    let (code, stdout, stderr) = ward_out(
        dir.path(),
        &[
            "token",
            "sign",
            "--key",
            idp.to_str().unwrap(),
            "--alg",
            "ES256",
            "--iss",
            ISSUER,
            "--aud",
            AUDIENCE,
            "--sub",
            "a",
            "--cnf-cert",
            idp.to_str().unwrap(),
        ],
    );
    assert_ne!(code, Some(0));
    assert_eq!(stdout, "");
    assert!(stderr.contains("no PEM certificate"), "{stderr}");
}

#[test]
fn token_dpop_prints_a_proof_for_one_request() {
    let dir = tempfile::tempdir().unwrap();
    let client = write_key(dir.path(), "ES256", "client.pem");
    let kid = jwks(dir.path(), &client, "ES256")["keys"][0]["kid"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, stdout, stderr) = ward_out(
        dir.path(),
        &[
            "token",
            "dpop",
            "--key",
            "client.pem",
            "--method",
            "POST",
            "--url",
            "https://api.example.com/orders?page=2",
            "--token",
            "a.b.c",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let proof = stdout.strip_suffix('\n').expect("one line");
    let header = decode_part(proof, 0);
    assert_eq!(header["typ"], "dpop+jwt");
    assert_eq!(header["alg"], "ES256");
    assert!(
        header["jwk"].get("d").is_none(),
        "no private member: {header}"
    );
    let jwk = header["jwk"].as_object().unwrap();
    let thumb = ward::authn::dpop::thumbprint(jwk).unwrap();
    assert_eq!(
        URL_SAFE_NO_PAD.encode(thumb),
        kid,
        "the proof's key is the bound key"
    );
    let claims = decode_part(proof, 1);
    assert_eq!(claims["htm"], "POST");
    assert_eq!(claims["htu"], "https://api.example.com/orders");
    assert_eq!(
        claims["ath"],
        URL_SAFE_NO_PAD.encode(ward::digest::sha256(b"a.b.c"))
    );
    assert!(claims["iat"].as_u64().unwrap() >= now() - 5);
    assert!(!claims["jti"].as_str().unwrap().is_empty());

    // An HMAC secret cannot make a proof.
    std::fs::write(dir.path().join("secret"), [7u8; 48]).unwrap();
    let (code, stdout, stderr) = ward_out(
        dir.path(),
        &[
            "token",
            "dpop",
            "--key",
            "secret",
            "--alg",
            "HS256",
            "--url",
            "https://a.test/",
        ],
    );
    assert_ne!(code, Some(0));
    assert_eq!(stdout, "");
    assert!(stderr.contains("DPoP proof"), "{stderr}");
}

// === nested JWTs: `ward token sign --encrypt-to` ===

#[test]
fn encrypted_tokens_from_token_sign_pass_ward_check() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let key = write_key(dir, "ES256", "sign.pem");
    let config = write_config(dir, "ES256", &jwks(dir, &key, "ES256"), Jwks::Inline);
    let rsa = TestKey::generate(Alg::RS256);
    let p256 = TestKey::generate(Alg::ES256);
    let p521 = testkeys::P521Key::generate();
    for (name, bytes) in [
        ("enc-rsa.pem", rsa.key_file()),
        ("enc-p256.pem", p256.key_file()),
        ("enc-p521.pem", p521.key_file()),
    ] {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    std::fs::write(dir.join("rsa.pub.pem"), rsa.rsa_public_pem()).unwrap();
    std::fs::write(dir.join("p256.jwk"), p256.jwk().to_string()).unwrap();
    std::fs::write(dir.join("p521.jwk"), p521.jwk().to_string()).unwrap();
    let other = TestKey::generate(Alg::RS256);
    std::fs::write(dir.join("other.pub.pem"), other.rsa_public_pem()).unwrap();
    let yaml = std::fs::read_to_string(&config).unwrap().replace(
        "      leeway: 0s\n",
        &format!(
            "      leeway: 0s\n      decryption:\n        keys:\n          - {{kid: rsa, alg: RSA-OAEP-256, key_file: enc-rsa.pem}}\n          - {{kid: {}, alg: ECDH-ES+A256KW, key_file: enc-p256.pem}}\n          - {{kid: {}, alg: ECDH-ES, key_file: enc-p521.pem}}\n",
            p256.kid(),
            p521.kid()
        ),
    );
    std::fs::write(&config, yaml).unwrap();
    let admin = ["--claim", r#"roles=["admin"]"#];
    // (recipient file, extra arguments, expected alg, enc and kid)
    type Case<'a> = (&'a str, &'a [&'a str], &'a str, &'a str, Option<&'a str>);
    let cases: [Case<'_>; 3] = [
        ("rsa.pub.pem", &[], "RSA-OAEP-256", "A256GCM", None),
        (
            "p256.jwk",
            &[],
            "ECDH-ES+A256KW",
            "A256GCM",
            Some(p256.kid()),
        ),
        (
            "p521.jwk",
            &["--encrypt-alg", "ECDH-ES", "--encrypt-enc", "A128GCM"],
            "ECDH-ES",
            "A128GCM",
            Some(p521.kid()),
        ),
    ];
    for (to, extra, alg, enc, kid) in cases {
        let mut args = admin.to_vec();
        args.extend(["--encrypt-to", to]);
        args.extend_from_slice(extra);
        let token = sign_nested(dir, &key, &args);
        let header = decode_part(&token, 0);
        assert_eq!(header["alg"], alg, "{to}: {header}");
        assert_eq!(header["enc"], enc, "{to}: {header}");
        assert_eq!(header["cty"], "JWT", "{to}: {header}");
        assert_eq!(header["kid"].as_str(), kid, "{to}: {header}");
        let (code, stdout, stderr) = check(dir, &config, &token, false);
        assert_eq!(code, Some(0), "{to}: {stdout}{stderr}");
        assert!(has_line(&stdout, "decision: allow"), "{stdout}");
        assert_secret_absent(&token, &stdout, &stderr);
    }
    // Encrypted to a key ward does not hold.
    let mut args = admin.to_vec();
    args.extend(["--encrypt-to", "other.pub.pem"]);
    let token = sign_nested(dir, &key, &args);
    let (code, stdout, stderr) = check(dir, &config, &token, false);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        has_line(&stdout, "detail: token cannot be decrypted"),
        "{stdout}"
    );
    // An algorithm that does not fit the key, and one ward never makes.
    for (alg, why) in [
        ("ECDH-ES", "cannot encrypt: ECDH-ES does not fit this key"),
        ("dir", "cannot encrypt: `dir` is not one of RSA-OAEP-256"),
    ] {
        let (code, _, stderr) = ward_out(
            dir,
            &[
                "token",
                "sign",
                "--key",
                key.to_str().unwrap(),
                "--alg",
                "ES256",
                "--iss",
                ISSUER,
                "--aud",
                AUDIENCE,
                "--sub",
                "alice",
                "--encrypt-to",
                "rsa.pub.pem",
                "--encrypt-alg",
                alg,
            ],
        );
        assert_ne!(code, Some(0), "{alg}");
        assert!(stderr.contains(why), "{alg}: {stderr}");
    }
}

/// `ward token sign` with ES256 and `extra` arguments: the nested JWT it prints.
fn sign_nested(dir: &Path, key: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "token",
        "sign",
        "--key",
        key.to_str().unwrap(),
        "--alg",
        "ES256",
        "--iss",
        ISSUER,
        "--aud",
        AUDIENCE,
        "--sub",
        "alice",
    ];
    args.extend_from_slice(extra);
    let (code, stdout, stderr) = ward_out(dir, &args);
    assert_eq!(code, Some(0), "{stderr}");
    let token = stdout.trim_end().to_string();
    assert_eq!(token.split('.').count(), 5, "a compact JWE: {token}");
    token
}
