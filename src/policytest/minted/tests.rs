//! `expect.minted`: a minted token read back and compared claim by claim, `none`, the
//! cases-file errors, and the read-back itself (`read_minted`) on tokens ward did not sign.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use jsonwebtoken::Algorithm;
use serde_json::json;

use super::*;
use crate::decision::Mutations;
use crate::header::HeaderName;
use crate::policytest::{Summary, TestError, run};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/keys")
}

/// Two routes that mint into `x-auth-token`: `checkout` (role `buyer`) and `browse`
/// (anonymous allowed, a token only for a signed-in caller); `public` mints nothing.
const CONFIG: &str = r#"
providers:
  - name: dev
    jwt:
      issuer: https://dev.ward.local
      audiences: [api]
      jwks_file: JWKS
      algorithms: [RS256]
      claims: { roles: roles, scopes: scope }
signing:
  issuer: https://ward.test
  keys:
    - { kid: k1, alg: ALG, key_file: signing.pem }
routes:
  - name: public
    match: { path_prefix: /public }
    allow_anonymous: true
  - name: checkout
    match: { path_prefix: /checkout }
    providers: [dev]
    require: { roles_any: [buyer] }
    mint: { audience: payments-api, ttl: 60s, header: x-auth-token, claims: [sub, roles, scope, tenant] }
  - name: browse
    match: { path_prefix: /browse }
    providers: [dev]
    allow_anonymous: true
    mint: { audience: catalog-api, ttl: 60s, header: x-auth-token, claims: [sub] }
"#;

const HEAD: &str = r#"
keys:
  dev: { file: DEV_KEY }
defaults:
  token:
    claims: { iss: https://dev.ward.local, aud: api, sub: alice, roles: [buyer], tenant: acme }
cases:
"#;

/// A directory with the config (signing with a fresh `alg` key) and `cases`.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new(alg: Algorithm, cases: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = testkeys::Key::generate(alg);
        std::fs::write(dir.path().join("signing.pem"), key.key_file()).expect("write key");
        let config = CONFIG
            .replace("JWKS", &examples().join("jwks.json").display().to_string())
            .replace("ALG", &format!("{alg:?}"));
        std::fs::write(dir.path().join("ward.yaml"), config).expect("write config");
        let dev_key = examples().join("dev-rsa.pem");
        let cases = format!("{HEAD}{cases}").replace("DEV_KEY", &dev_key.display().to_string());
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

    fn config(&self) -> Config {
        let env: HashMap<String, String> = HashMap::new();
        crate::config::load_file(&self.dir.path().join("ward.yaml"), &env).expect("valid config")
    }
}

fn passes(f: &Fixture, n: usize) -> String {
    let (r, out) = f.run();
    let s = r.unwrap_or_else(|e| panic!("{e}\n{out}"));
    assert_eq!(
        s,
        Summary {
            passed: n,
            failed: 0
        },
        "{out}"
    );
    out
}

const MATCHING: &str = r#"
  - name: buyer checks out
    request: { method: POST, path: /checkout/cart }
    token: { claims: { scope: "cart:write orders:read" } }
    expect:
      decision: allow
      minted:
        claims:
          iss: https://ward.test
          aud: payments-api
          sub: alice
          purpose: checkout
          act: { iss: https://dev.ward.local, sub: alice }
          roles: [buyer]
          scope: cart:write orders:read
          tenant: acme
        present: [iat, exp, jti]
        absent: [nbf, email]
  - name: a token, whatever it says
    request: { path: /checkout }
    token: {}
    expect: { decision: allow, minted: true }
"#;

#[test]
fn a_minted_token_matches_its_claims_for_every_signing_algorithm() {
    for alg in [
        Algorithm::ES256,
        Algorithm::EdDSA,
        Algorithm::RS256,
        Algorithm::PS256,
    ] {
        let out = passes(&Fixture::new(alg, MATCHING), 2);
        assert!(out.starts_with("ok - buyer checks out\n"), "{alg:?}\n{out}");
    }
}

#[test]
fn every_difference_names_the_claim_and_both_values_never_the_token() {
    let f = Fixture::new(
        Algorithm::ES256,
        r#"
  - name: wrong claims
    request: { path: /checkout }
    token: { omit: [tenant], claims: { level: 3 } }
    expect:
      decision: allow
      headers: { x-auth-token: "a token" }
      minted:
        claims: { aud: orders-api, roles: [buyer, admin], tenant: acme, sub: alice }
        present: [nbf, jti]
        absent: [purpose]
"#,
    );
    let (r, out) = f.run();
    assert_eq!(
        r.expect("runs"),
        Summary {
            passed: 0,
            failed: 1
        },
        "{out}"
    );
    let expected = "\
FAIL - wrong claims
    headers.x-auth-token: expected \"a token\", got a minted token
    minted.claims.aud: expected \"orders-api\", got \"payments-api\"
    minted.claims.roles: expected [\"buyer\",\"admin\"], got [\"buyer\"]
    minted.claims.tenant: expected \"acme\", got absent
    minted.claims.nbf: expected present, got absent
    minted.claims.purpose: expected absent, got \"checkout\"
    got: allow 200 ok (route checkout)
0 passed, 1 failed
";
    assert_eq!(out, expected);
}

#[test]
fn none_holds_when_nothing_is_minted_and_fails_when_a_token_is() {
    let f = Fixture::new(
        Algorithm::ES256,
        r#"
  - name: anonymous browsing gets no token
    request: { path: /browse/shoes }
    expect: { decision: allow, route: browse, minted: none, headers: { x-auth-token: null }, removed: [x-auth-token] }
  - name: signed-in browsing gets one
    request: { path: /browse/shoes }
    token: {}
    expect: { decision: allow, minted: { claims: { aud: catalog-api, purpose: browse, sub: alice }, absent: [roles] } }
  - name: no token without the role
    request: { path: /checkout }
    token: { claims: { roles: [seller] } }
    expect: { decision: deny, status: 403, minted: false }
  - name: no token without a credential
    request: { path: /checkout }
    expect: { decision: deny, reason: missing_credential, minted: none }
  - name: wrongly expects none
    request: { path: /browse }
    token: {}
    expect: { decision: allow, minted: none }
  - name: wrongly expects a token
    request: { path: /browse }
    expect: { decision: allow, minted: true }
  - name: wrongly expects a token on a denial
    request: { path: /checkout }
    token: { claims: { roles: [] } }
    expect: { decision: deny, minted: none }
"#,
    );
    let (r, out) = f.run();
    assert_eq!(
        r.expect("runs"),
        Summary {
            passed: 5,
            failed: 2
        },
        "{out}"
    );
    let lines: Vec<&str> = out.lines().collect();
    let at = |name: &str| {
        lines
            .iter()
            .position(|l| *l == name)
            .unwrap_or_else(|| panic!("no `{name}` in:\n{out}"))
    };
    let i = at("FAIL - wrongly expects none");
    assert_eq!(
        lines[i + 1],
        "    minted: expected none, got a token in x-auth-token"
    );
    let i = at("FAIL - wrongly expects a token");
    assert_eq!(
        lines[i + 1],
        "    minted: expected a token in x-auth-token, got none"
    );
    assert!(!out.contains("eyJ"), "a token leaked:\n{out}");
}

fn case_errors(text: &str) -> Vec<(String, Option<usize>, String)> {
    let dev_key = examples().join("dev-rsa.pem");
    let text = text.replace("DEV_KEY", &dev_key.display().to_string());
    match Suite::parse(&text, Path::new(".")) {
        Ok(_) => panic!("parsed:\n{text}"),
        Err(e) => e.into_iter().map(|e| (e.path, e.line, e.message)).collect(),
    }
}

#[test]
fn a_minted_expectation_that_cannot_hold_is_a_cases_file_error() {
    let errs = case_errors(
        "\
cases:
  - name: a
    request: { path: /checkout }
    expect:
      decision: allow
      minted:
        claims: { iat: 1, sub: alice }
        absent: [sub, jti]
        present: [jti]
  - name: b
    request: { path: /checkout }
    expect: { decision: allow, minted: 42 }
  - name: c
    request: { path: /checkout }
    expect: { decision: deny, minted: { claims: { sub: alice } } }
  - name: d
    request: { path: /checkout }
    expect: { decision: allow, minted: { claim: { sub: alice } } }
  - name: e
    request: { path: /checkout }
    expect: { decision: allow, minted: null }
",
    );
    let got: Vec<(&str, Option<usize>)> = errs.iter().map(|(p, l, _)| (p.as_str(), *l)).collect();
    assert_eq!(
        got,
        [
            ("cases[0].expect.minted.claims.iat", Some(7)),
            ("cases[0].expect.minted.absent[0]", Some(8)),
            ("cases[0].expect.minted.absent[1]", Some(8)),
            ("cases[1].expect.minted", Some(12)),
            ("cases[2].expect.minted", Some(15)),
            ("cases[3].expect.minted.claim", Some(18)),
            ("cases[4].expect.minted", Some(21)),
        ],
        "{errs:#?}"
    );
    let message = |i: usize| errs[i].2.as_str();
    assert!(
        message(0).contains("list it under `present`"),
        "{}",
        message(0)
    );
    assert!(
        message(1).contains("`sub` is also expected"),
        "{}",
        message(1)
    );
    assert!(message(4).contains("only on an allow"), "{}", message(4));
}

#[test]
fn minted_on_a_route_without_mint_is_a_cases_file_error() {
    let f = Fixture::new(
        Algorithm::ES256,
        r#"
  - name: fine
    request: { path: /checkout }
    token: {}
    expect: { decision: allow, minted: true }
  - name: public mints nothing
    request: { path: /public/x }
    expect: { decision: allow, minted: none }
  - name: no route
    request: { method: DELETE, path: /nowhere }
    expect:
      decision: deny
      minted: none
"#,
    );
    let (r, out) = f.run();
    let Err(TestError::Cases { file, errors }) = r else {
        panic!("not a cases-file error: {r:?}\n{out}");
    };
    assert!(file.ends_with("cases.yaml"), "{file:?}");
    assert!(out.is_empty(), "nothing runs: {out}");
    let got: Vec<(String, Option<usize>)> =
        errors.iter().map(|e| (e.path.clone(), e.line)).collect();
    // HEAD is 7 lines (the first one empty), the cases follow it.
    assert_eq!(
        got,
        [
            ("cases[1].expect.minted".to_string(), Some(15)),
            ("cases[2].expect.minted".to_string(), Some(20)),
        ],
        "{errors:#?}"
    );
    assert!(
        errors[0]
            .message
            .contains("route `public`, which has no `mint:`"),
        "{}",
        errors[0].message
    );
    assert!(
        errors[1].message.contains("no route matches"),
        "{}",
        errors[1].message
    );
    let text = TestError::Cases { file, errors }.to_string();
    assert!(
        text.contains("cases.yaml:line 15: cases[1].expect.minted: "),
        "{text}"
    );
}

/// An allow on `checkout` that sets `x-auth-token` to `token`.
fn allow_with(token: &str) -> Decision {
    let header = HeaderName::parse("x-auth-token").expect("a header name");
    Decision {
        route: Some("checkout".into()),
        verdict: Verdict::Allow(Mutations {
            set: vec![(header, token.to_owned())],
            remove: Vec::new(),
        }),
        provider: None,
        identity: None,
        shadow_deny: None,
        answer: None,
        waited_on_idp: false,
    }
}

#[test]
fn a_token_the_current_signing_key_did_not_sign_does_not_read_back() {
    let f = Fixture::new(Algorithm::ES256, MATCHING);
    let config = f.config();
    let other = testkeys::Key::generate(Algorithm::ES256);
    let claims = json!({"sub": "alice", "aud": "payments-api"});
    let forged = other.sign_parts(
        r#"{"alg":"ES256","kid":"k1","typ":"JWT"}"#,
        &claims.to_string(),
    );
    let unknown_kid = other.sign_parts(r#"{"alg":"ES256","kid":"k2"}"#, &claims.to_string());
    let other_alg = other.sign_parts(r#"{"alg":"ES384","kid":"k1"}"#, &claims.to_string());
    for (token, why) in [
        (forged.as_str(), "signature verification failed"),
        (unknown_kid.as_str(), "unknown key id"),
        (other_alg.as_str(), "signature verification failed"),
        ("not-a-jwt", "malformed token"),
    ] {
        let d = allow_with(token);
        let e = read_minted(&config, &d).expect_err(why);
        assert_eq!(
            e.to_string(),
            format!("the token in x-auth-token does not verify with signing key `k1`: {why}")
        );
        let case = MintedCase {
            want: Want::Token {
                claims: Map::new(),
                present: Vec::new(),
                absent: Vec::new(),
            },
            line: None,
        };
        assert_eq!(case.compare(&config, &d), [format!("minted: {e}")]);
        assert!(!e.to_string().contains(token), "the token is never shown");
    }
}

#[test]
fn read_minted_finds_nothing_where_nothing_is_minted() {
    let f = Fixture::new(Algorithm::ES256, MATCHING);
    let config = f.config();
    // A denial, another route, no route: nothing to read.
    let mut d = allow_with("ignored");
    d.verdict = Verdict::Deny(crate::DenyReason::MissingCredential);
    assert_eq!(read_minted(&config, &d).expect("reads"), None);
    let mut d = allow_with("ignored");
    d.route = Some("public".into());
    assert_eq!(read_minted(&config, &d).expect("reads"), None);
    d.route = None;
    assert_eq!(read_minted(&config, &d).expect("reads"), None);
    // An allow on the minting route without the header set.
    let mut d = allow_with("ignored");
    d.verdict = Verdict::Allow(Mutations::default());
    assert_eq!(read_minted(&config, &d).expect("reads"), None);
    // The runner checks routes before it runs; should a decision still land elsewhere,
    // the case fails, it does not pass silently.
    let none = MintedCase {
        want: Want::Nothing,
        line: None,
    };
    let mut d = allow_with("ignored");
    d.route = Some("public".into());
    assert_eq!(
        none.compare(&config, &d),
        ["minted: the decision's route mints nothing"]
    );
}
