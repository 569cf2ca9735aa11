//! Unit tests of the policy-test runner.

use super::*;

use std::collections::HashMap;

use serde_json::json;

use super::parse::{merge, placed};
use crate::authn::alg::Alg;

/// The repository's development key and its JWKS.
fn dev_key() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/keys/dev-rsa.pem")
}

const CONFIG: &str = r#"
providers:
  - name: dev
    jwt:
      issuer: https://dev.ward.local
      audiences: [api]
      jwks_file: JWKS
      algorithms: [RS256]
      claims: { roles: roles, scopes: scope }
      headers: { email: x-auth-email }
      token_from:
        - { header: authorization, prefix: "Bearer " }
        - { cookie: session }
        - { query: access_token }
routes:
  - name: public
    match: { path_prefix: /public }
    allow_anonymous: true
  - name: orders
    match: { path: "/tenants/{tenant}/orders/**" }
    providers: [dev]
    require:
      all:
        - roles_any: [orders-reader]
        - claim: { name: tenant, equals_param: tenant }
  - name: reports
    match: { path_prefix: /reports }
    providers: [dev]
    require: { scopes_any: [reports.read] }
  - name: canary
    match: { path_prefix: /canary }
    providers: [dev]
    mode: shadow
    require: { roles_any: [canary] }
"#;

/// A directory holding `ward.yaml` (the config above) and `cases.yaml`.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new(cases: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let jwks = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/keys/jwks.json");
        let config = CONFIG.replace("JWKS", &jwks.display().to_string());
        std::fs::write(dir.path().join("ward.yaml"), config).expect("write config");
        let cases = cases.replace("DEV_KEY", &dev_key().display().to_string());
        std::fs::write(dir.path().join("cases.yaml"), cases).expect("write cases");
        Fixture { dir }
    }

    fn run(&self) -> (Result<Summary, TestError>, String) {
        let mut out = Vec::new();
        let env: HashMap<String, String> = HashMap::new();
        let r = run(
            &self.dir.path().join("ward.yaml"),
            &self.dir.path().join("cases.yaml"),
            &env,
            &mut out,
        );
        (r, String::from_utf8(out).expect("utf-8 report"))
    }
}

const HEAD: &str = r#"
keys:
  dev: { file: DEV_KEY, alg: RS256 }
defaults:
  request: { host: api.example.com, headers: { x-request-id: t-1 } }
  token:
    key: dev
    claims: { iss: https://dev.ward.local, aud: api, sub: alice, roles: [orders-reader], tenant: acme }
cases:
"#;

fn suite(cases: &str) -> Fixture {
    Fixture::new(&format!("{HEAD}{cases}"))
}

#[test]
fn passing_cases_cover_every_expectation() {
    let f = suite(
        r#"
  - name: reader lists orders
    request: { method: GET, path: /tenants/acme/orders }
    token: { claims: { email: alice@example.com } }
    expect:
      decision: allow
      status: 200
      route: orders
      reason: ok
      headers: { x-auth-subject: alice, x-auth-roles: orders-reader, x-auth-email: alice@example.com, x-auth-scopes: null }
      removed: [x-auth-scopes]
  - name: other tenant is forbidden
    request: { path: /tenants/globex/orders }
    token: {}
    expect: { decision: deny, status: 403, reason: forbidden, condition: "all[1].claim", www_authenticate: null }
  - name: no token
    request: { path: /tenants/acme/orders }
    expect: { decision: deny, status: 401, reason: missing_credential, www_authenticate: 'Bearer realm="ward"' }
  - name: expired
    request: { path: /tenants/acme/orders }
    token: { expired: true }
    expect: { decision: deny, status: 401, reason: invalid_token, detail: token expired }
  - name: no exp
    request: { path: /tenants/acme/orders }
    token: { omit: [exp] }
    expect: { decision: deny, reason: invalid_token, detail: token has no exp }
  - name: scope missing
    request: { path: /reports/q1 }
    token: { claims: { scope: "profile email" } }
    expect:
      decision: deny
      status: 403
      www_authenticate: 'Bearer realm="ward", error="insufficient_scope"'
  - name: token in a cookie
    request: { path: /reports/q1, headers: { cookie: "theme=dark" } }
    token: { cookie: session, claims: { scope: reports.read } }
    expect: { decision: allow, route: reports }
  - name: token in the query
    request: { path: "/reports/q1?x=1" }
    token: { query: access_token, claims: { scope: reports.read } }
    expect: { decision: allow }
  - name: literal authorization header
    request: { path: /reports/q1, headers: { authorization: Bearer not-a-jwt } }
    expect: { decision: deny, reason: invalid_token, detail: malformed token }
  - name: two authorization headers
    request: { path: /reports/q1, headers: { authorization: [Bearer a, Bearer b] } }
    expect: { decision: deny, reason: invalid_token }
  - name: no route
    request: { path: /nowhere }
    expect: { decision: deny, status: 403, route: null, reason: no_route }
  - name: shadow route lets the denial through
    request: { path: /canary/x }
    token: {}
    expect: { decision: shadow_deny, status: 200, route: canary, reason: forbidden, headers: { x-auth-subject: alice } }
  - name: shadow route, no credential
    request: { path: /canary/x }
    expect: { decision: shadow_deny, reason: missing_credential, headers: { x-auth-subject: null }, removed: [x-auth-subject] }
  - name: smuggled identity header is removed on a public route
    request: { path: /public/x, headers: { x-auth-subject: mallory } }
    expect: { decision: allow, route: public, removed: [x-auth-subject, x-auth-roles, x-auth-email] }
"#,
    );
    let (r, out) = f.run();
    let s = r.unwrap_or_else(|e| panic!("{e}\n{out}"));
    assert_eq!(
        s,
        Summary {
            passed: 14,
            failed: 0
        },
        "{out}"
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "ok - reader lists orders");
    assert_eq!(lines.len(), 15, "{out}");
    assert_eq!(lines[14], "14 passed, 0 failed");
}

#[test]
fn a_failing_case_shows_each_difference_and_never_the_token() {
    let f = suite(
        r#"
  - name: wrong expectations
    request: { path: /tenants/acme/orders }
    token: { claims: { roles: [orders-writer] } }
    expect:
      decision: allow
      status: 200
      route: orders
      headers: { x-auth-subject: alice }
      removed: [x-auth-email]
  - name: right expectations
    request: { path: /tenants/acme/orders }
    token: {}
    expect: { decision: allow }
  - name: wrong condition
    request: { path: /tenants/acme/orders }
    token: { claims: { tenant: globex } }
    expect: { decision: deny, condition: roles_any }
"#,
    );
    let (r, out) = f.run();
    assert_eq!(
        r.expect("runs"),
        Summary {
            passed: 1,
            failed: 2
        },
        "{out}"
    );
    let expected = [
        "FAIL - wrong expectations",
        "    decision: expected allow, got deny",
        "    status: expected 200, got 403",
        r#"    headers.x-auth-subject: expected "alice", got not set"#,
        "    removed: expected x-auth-email in headers_to_remove, it is not",
        "    got: deny 403 forbidden (route orders): condition not met: routes[1].require.all[0].roles_any [orders-reader]",
        "ok - right expectations",
        "FAIL - wrong condition",
        r#"    condition: expected one containing "roles_any", got routes[1].require.all[1].claim: tenant equals_param tenant"#,
    ];
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..expected.len()], expected, "{out}");
    assert_eq!(lines.last(), Some(&"1 passed, 2 failed"));
    assert!(
        !out.contains("eyJ"),
        "a token leaked into the report:\n{out}"
    );
}

#[test]
fn config_errors_stop_the_run() {
    let f = suite("  - name: x\n    request: { path: / }\n    expect: { decision: allow }\n");
    std::fs::write(f.dir.path().join("ward.yaml"), "routes: []\nbogus: 1\n").unwrap();
    let (r, out) = f.run();
    let err = r.expect_err("a bad config is an error");
    assert!(matches!(err, TestError::Config { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("ward.yaml:line 2: bogus: unknown field `bogus`"),
        "{text}"
    );
    assert!(out.is_empty(), "nothing runs: {out}");
}

fn case_errors(text: &str) -> Vec<(String, Option<usize>)> {
    let text = text.replace("DEV_KEY", &dev_key().display().to_string());
    match Suite::parse(&text, Path::new(".")) {
        Ok(_) => panic!("parsed:\n{text}"),
        Err(e) => e.into_iter().map(|e| (e.path, e.line)).collect(),
    }
}

#[test]
fn cases_errors_name_every_path_and_line() {
    let errs = case_errors(
        "\
keys:
  dev: { file: DEV_KEY }
  gone: { file: /nonexistent/key.pem }
cases:
  - name: a
    request: { path: /x, colour: red }
    expect: { decision: allow }
  - name: b
    request: { path: /x }
    token: { key: nope }
    expect: { decision: alow }
  - name: a
    request: { path: /x, headers: { bad header: x } }
    token: { cookie: c, query: q }
    expect: { decision: deny, headers: { x-a: [1] } }
  - name: d
    request: { path: /x }
    expect: { decision: allow, status: ok }
",
    );
    let want: Vec<(String, Option<usize>)> = [
        ("keys.gone.file", 3),
        ("cases[0].request.colour", 6),
        ("cases[1].token.key", 10),
        ("cases[1].expect.decision", 11),
        ("cases[2].request.headers.bad header", 13),
        ("cases[2].token", 14),
        ("cases[2].expect.headers.x-a", 15),
        ("cases[3].expect.status", 18),
    ]
    .iter()
    .map(|(p, l)| (p.to_string(), Some(*l)))
    .collect();
    assert_eq!(errs, want);
}

#[test]
fn cases_file_structure_errors() {
    assert_eq!(
        case_errors("cases: []\n"),
        vec![("cases".to_string(), Some(1))]
    );
    assert_eq!(case_errors("- a\n"), vec![(String::new(), Some(1))]);
    assert_eq!(
        case_errors("cases:\n  - name: a\n    expect: { decision: allow }\n"),
        vec![("cases[0].request".to_string(), Some(2))]
    );
    let errs = case_errors("cases:\n  - name: a\n    request: { path: /\n");
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].0, "");
    assert!(errs[0].1.is_some_and(|l| l >= 3), "{errs:?}");
    // Tokens need a key; with several, the case names one.
    let two = "keys:\n  a: { file: DEV_KEY }\n  b: { file: DEV_KEY }\ncases:\n  - name: x\n    request: { path: / }\n    token: {}\n    expect: { decision: allow }\n";
    assert_eq!(
        case_errors(two),
        vec![("cases[0].token".to_string(), Some(7))]
    );
    let none = "cases:\n  - name: x\n    request: { path: / }\n    token: {}\n    expect: { decision: allow }\n";
    assert_eq!(
        case_errors(none),
        vec![("cases[0].token".to_string(), Some(4))]
    );
    // Duplicate names are refused: a report line must identify its case.
    let dup = "cases:\n  - name: x\n    request: { path: / }\n    expect: { decision: allow }\n  - name: x\n    request: { path: / }\n    expect: { decision: allow }\n";
    assert_eq!(
        case_errors(dup),
        vec![("cases[1].name".to_string(), Some(5))]
    );
}

#[test]
fn defaults_merge_per_header_and_per_claim() {
    let base = json!({"host": "h", "headers": {"a": "1", "b": "2"}, "path": "/d"});
    let over = json!({"headers": {"b": "3"}, "path": "/x"});
    assert_eq!(
        merge(&base, &over, &["headers"]),
        json!({"host": "h", "headers": {"a": "1", "b": "3"}, "path": "/x"})
    );
    // Without `nested`, a mapping replaces the default one.
    assert_eq!(
        merge(&base, &over, &[]),
        json!({"host": "h", "headers": {"b": "3"}, "path": "/x"})
    );
    assert_eq!(merge(&base, &Value::Null, &[]), base);
    assert_eq!(merge(&Value::Null, &over, &[]), over);
    let claims = merge(
        &json!({"claims": {"iss": "i", "roles": ["a"]}}),
        &json!({"claims": {"roles": ["b"], "tenant": null}}),
        &["claims"],
    );
    assert_eq!(
        claims,
        json!({"claims": {"iss": "i", "roles": ["b"], "tenant": null}})
    );
}

#[test]
fn a_case_placement_replaces_the_default_one() {
    let defaults = json!({"key": "k", "cookie": "id_token", "claims": {"sub": "a"}});
    assert_eq!(
        placed(&defaults, &json!({"header": "authorization"})),
        json!({"key": "k", "claims": {"sub": "a"}})
    );
    assert_eq!(placed(&defaults, &json!({"claims": {}})), defaults);
    assert_eq!(placed(&defaults, &Value::Null), defaults);
}

#[test]
fn minted_tokens_fill_times_and_honour_omit() {
    let pem = std::fs::read(dev_key()).expect("dev key");
    let key = Arc::new(SigningKey::from_bytes(&pem, Alg::RS256).expect("RS256 key"));
    let spec = |claims: Value, omit: &[&str], expired: bool| TokenSpec {
        key: key.clone(),
        claims: claims.as_object().cloned().unwrap_or_default(),
        omit: omit.iter().map(|s| s.to_string()).collect(),
        ttl: Duration::from_secs(60),
        expired,
        typ: Some("JWT".into()),
        place: Place::Cookie("c".into()),
    };
    let payload = |t: &str| -> Value {
        use base64::Engine as _;
        let body = t.split('.').nth(1).expect("three parts");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    };
    let t = spec(json!({"sub": "a"}), &[], false).mint(1000).unwrap();
    assert_eq!(payload(&t), json!({"sub": "a", "iat": 1000, "exp": 1060}));
    let t = spec(json!({"exp": "soon"}), &["iat"], false)
        .mint(1000)
        .unwrap();
    assert_eq!(payload(&t), json!({"exp": "soon"}));
    let t = spec(json!({}), &[], true).mint(1_000_000).unwrap();
    assert_eq!(payload(&t)["exp"], json!(1_000_000 - EXPIRED_AGO));
    assert_eq!(payload(&t)["iat"], json!(1_000_000 - 2 * EXPIRED_AGO));
}
