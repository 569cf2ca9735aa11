//! Config validation of introspection providers: required keys, values checked with
//! path and line, claim headers that would shadow identity headers, unknown keys, unset
//! secrets, audiences, discovery, subject claims and the breaker's cool-down.

mod common;

use common::Ward;

fn errors(yaml: &str) -> String {
    Ward::builder(yaml).config_error()
}

const ROUTES: &str = r#"
routes:
  - name: api
    match: { path_prefix: /api }
    providers: [p]
"#;

fn provider(body: &str) -> String {
    format!("providers:\n  - name: p\n{body}{ROUTES}")
}

#[test]
fn introspection_requires_endpoint_and_client() {
    let e = errors(&provider(
        "    introspection:\n      client_id: ward\n      client_secret: x\n      audiences: any\n",
    ));
    assert_eq!(
        e,
        "line 3: providers[0].introspection: give exactly one of `endpoint` and `discovery: true`"
    );
}

#[test]
fn introspection_values_are_checked_with_path_and_line() {
    let e = errors(&provider(
        r#"    introspection:
      endpoint: idp.example.com/introspect
      client_id: ""
      client_secret: ""
      auth_method: private_key_jwt
"#,
    ));
    assert_eq!(
        e,
        "line 7: providers[0].introspection.auth_method: unknown variant `private_key_jwt`, expected `client_secret_basic` or `client_secret_post`"
    );
    let e = errors(&provider(
        r#"    introspection:
      endpoint: idp.example.com/introspect
      client_id: ""
      client_secret: ""
      timeout: 0s
      audiences: [""]
      issuer: ""
      circuit_breaker: { failures: 0, cool_down: 0s }
      headers: { email: x-auth-subject }
"#,
    ));
    let want = [
        "line 4: providers[0].introspection.endpoint: `idp.example.com/introspect` is not an http(s) URL",
        "line 5: providers[0].introspection.client_id: must not be empty",
        "line 6: providers[0].introspection.client_secret: must not be empty (set it from the environment: `${WARD_INTROSPECTION_SECRET}`)",
        "line 7: providers[0].introspection.timeout: must be greater than 0",
        "line 8: providers[0].introspection.audiences: an audience must not be empty",
        "line 9: providers[0].introspection.issuer: must not be empty: leave it out to accept any `iss`",
        "line 10: providers[0].introspection.circuit_breaker.failures: must be at least 1",
        "line 10: providers[0].introspection.circuit_breaker.cool_down: must be greater than 0",
    ];
    assert_eq!(e, want.join("\n"));
}

#[test]
fn introspection_claim_headers_cannot_shadow_identity_headers() {
    let e = errors(&provider(
        r#"    introspection:
      endpoint: https://idp.example.com/introspect
      client_id: ward
      client_secret: x
      audiences: any
      headers: { email: x-auth-subject }
"#,
    ));
    assert_eq!(
        e,
        "line 8: providers[0].introspection.headers: `x-auth-subject` is already used by identity_headers.subject"
    );
}

#[test]
fn unknown_introspection_keys_are_errors() {
    let e = errors(&provider(
        r#"    introspection:
      endpoint: https://idp.example.com/introspect
      client_id: ward
      secret: x
"#,
    ));
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(lines.len(), 2, "{e}");
    // The unknown key is dropped and the rest read again: what it leaves missing shows.
    assert_eq!(
        lines[0],
        "line 3: providers[0].introspection: missing field `client_secret`"
    );
    assert!(
        lines[1].starts_with("line 6: providers[0].introspection.secret: unknown field `secret`"),
        "{e}"
    );
}

#[test]
fn an_unset_secret_variable_is_an_error_not_an_empty_secret() {
    let e = errors(&provider(
        r#"    introspection:
      endpoint: https://idp.example.com/introspect
      client_id: ward
      client_secret: ${WARD_MISSING_SECRET}
"#,
    ));
    assert!(
        e.contains(
            "line 6: providers[0].introspection.client_secret: environment variable WARD_MISSING_SECRET is not set"
        ),
        "{e}"
    );
}

#[test]
fn introspection_requires_audiences() {
    let e = errors(&provider(
        r#"    introspection:
      endpoint: https://idp.example.com/introspect
      client_id: ward
      client_secret: x
"#,
    ));
    assert_eq!(
        e,
        "line 3: providers[0].introspection.audiences: list the audiences a token must name (`audiences: [orders-api]`), or write `audiences: any` for an authorization server that returns no `aud`"
    );
    for bad in ["audiences: []", "audiences: all", "audiences: 3"] {
        let e = errors(&provider(&format!(
            "    introspection:\n      endpoint: https://idp.example.com/introspect\n      client_id: ward\n      client_secret: x\n      {bad}\n"
        )));
        assert!(
            e.starts_with("line 7: providers[0].introspection.audiences: list the audiences"),
            "{bad}: {e}"
        );
    }
}

#[test]
fn introspection_discovery_is_checked() {
    let body = |keys: &str| {
        provider(&format!(
            "    introspection:\n      client_id: ward\n      client_secret: x\n      audiences: any\n{keys}"
        ))
    };
    assert_eq!(
        errors(&body("      discovery: true\n")),
        "line 3: providers[0].introspection.issuer: `discovery: true` finds the endpoint from the issuer's OpenID configuration: set `issuer`"
    );
    assert_eq!(
        errors(&body(
            "      discovery: true\n      issuer: https://idp.test\n      endpoint: https://idp.test/introspect\n"
        )),
        "line 3: providers[0].introspection: give exactly one of `endpoint` and `discovery: true`"
    );
    assert_eq!(
        errors(&body("      issuer: https://idp.test\n")),
        "line 3: providers[0].introspection: give exactly one of `endpoint` and `discovery: true`"
    );
    assert_eq!(
        errors(&body("      discovery: true\n      issuer: idp.test\n")),
        "line 8: providers[0].introspection.issuer: `idp.test` is not an http(s) URL"
    );
}

#[test]
fn introspection_subject_and_cool_down_are_checked() {
    let body = |keys: &str| {
        provider(&format!(
            "    introspection:\n      endpoint: https://idp.test/introspect\n      client_id: ward\n      client_secret: x\n      audiences: any\n{keys}"
        ))
    };
    assert_eq!(
        errors(&body("      subject: []\n")),
        "line 8: providers[0].introspection.subject: list at least one claim, such as `[sub, client_id]`"
    );
    assert_eq!(
        errors(&body("      subject: [sub, \"a..b\"]\n")),
        "line 8: providers[0].introspection.subject[1]: `a..b` is not a claim path like `realm_access.roles`"
    );
    assert_eq!(
        errors(&body("      circuit_breaker: { cool_down: 30s }\n")),
        "line 8: providers[0].introspection.circuit_breaker.cool_down: must be at most 5s: an open breaker probes the endpoint at least every 5s, so a recovered endpoint serves again within 5s"
    );
}
