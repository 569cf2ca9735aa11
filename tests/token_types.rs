//! Explicit typing (`token_types`, RFC 8725 §3.11, RFC 9068) through `Authorization/Check`:
//! a provider listing `[at+jwt]` accepts RFC 9068 access tokens in any spelling of the
//! type and refuses ID tokens (`typ: JWT` or none); a provider listing nothing refuses
//! the types of other uses (DPoP proofs, logout and security event tokens, ...). Each
//! refusal is 401 `invalid_token` with its challenge. Config errors name path and line.

mod check_setup;
mod common;

use serde_json::json;

use check_setup::{ISS, assert_invalid_token, claims};
use common::{KeyRing, Req, TestKey, Ward, allowed, set_header_map};

fn config(key: &TestKey) -> String {
    format!(
        r#"
providers:
  - name: at
    jwt:
      issuer: {ISS}
      audiences: [api]
      jwks: {jwks}
      algorithms: [ES256]
      token_types: [at+jwt]
  - name: at-or-jwt
    jwt:
      issuer: {ISS}
      audiences: [api]
      jwks: {jwks}
      algorithms: [ES256]
      token_types: [application/AT+JWT, JWT]
  - name: default
    jwt:
      issuer: {ISS}
      audiences: [api]
      jwks: {jwks}
      algorithms: [ES256]
routes:
  - name: at
    match: {{ path_prefix: /at }}
    providers: [at]
  - name: at-or-jwt
    match: {{ path_prefix: /either }}
    providers: [at-or-jwt]
  - name: default
    match: {{ path_prefix: /default }}
    providers: [default]
"#,
        jwks = key.jwks()
    )
}

/// A token of `key` whose header carries `typ` (none when `None`).
fn typed(key: &TestKey, typ: Option<&str>, sub: &str) -> String {
    let mut header = json!({"alg": "ES256", "kid": key.kid()});
    if let Some(t) = typ {
        header["typ"] = t.into();
    }
    key.sign_parts(&header.to_string(), &claims(sub).to_string())
}

#[tokio::test]
async fn listed_types_are_accepted_in_any_spelling_and_others_refused() {
    let key = &KeyRing::shared().es256;
    let ward = Ward::start(&config(key)).await;
    let accepted = [
        ("/at", Some("at+jwt")),
        ("/at", Some("AT+JWT")),
        ("/at", Some("application/at+jwt")),
        ("/either", Some("at+jwt")),
        ("/either", Some("JWT")),
        ("/either", Some("application/jwt")),
        ("/either", None),
        ("/default", None),
        ("/default", Some("JWT")),
        ("/default", Some("at+jwt")),
    ];
    for (path, typ) in accepted {
        let sub = format!("sub-{}", typ.unwrap_or("none").replace('/', "-"));
        let r = ward
            .check(Req::get(path).bearer(&typed(key, typ, &sub)).to_map())
            .await;
        assert_eq!(
            set_header_map(allowed(&r))["x-auth-subject"],
            sub,
            "{path} {typ:?}"
        );
    }
    let refused = [
        ("/at", Some("JWT")),
        ("/at", None),
        ("/at", Some("dpop+jwt")),
        ("/at", Some("application/at+jwt+x")),
        ("/at", Some("text/at+jwt")),
        ("/either", Some("logout+jwt")),
        ("/default", Some("dpop+jwt")),
        ("/default", Some("application/DPoP+JWT")),
        ("/default", Some("logout+jwt")),
        ("/default", Some("secevent+jwt")),
        ("/default", Some("id_token+jwt")),
        ("/default", Some("token-introspection+jwt")),
    ];
    for (path, typ) in refused {
        let r = ward
            .check(Req::get(path).bearer(&typed(key, typ, "mallory")).to_map())
            .await;
        assert_invalid_token(
            &r,
            Some("token type not accepted"),
            &format!("{path} {typ:?}"),
        );
    }
    // A `typ` that is not a string is a malformed header, whatever the provider lists.
    let odd = key.sign_parts(
        &json!({"alg": "ES256", "kid": key.kid(), "typ": 1}).to_string(),
        &claims("mallory").to_string(),
    );
    for path in ["/at", "/default"] {
        let r = ward.check(Req::get(path).bearer(&odd).to_map()).await;
        assert_invalid_token(&r, Some("malformed token"), path);
    }
}

#[test]
fn bad_token_types_name_their_path_and_line() {
    let key = &KeyRing::shared().es256;
    let yaml = |types: &str| {
        format!(
            "providers:\n  - name: at\n    jwt:\n      issuer: {ISS}\n      audiences: [api]\n      jwks: {}\n      token_types: {types}\nroutes:\n  - name: all\n    match: {{ path_prefix: / }}\n    providers: [at]\n",
            key.jwks()
        )
    };
    assert_eq!(
        Ward::builder(&yaml("[]")).config_error(),
        "line 7: providers[0].jwt.token_types: list at least one type (e.g. [at+jwt]), or leave `token_types` out to accept any type but those of other uses"
    );
    assert_eq!(
        Ward::builder(&yaml("[at+jwt, JWT, application/AT+JWT]")).config_error(),
        "line 7: providers[0].jwt.token_types[2]: `application/AT+JWT` is listed twice (types compare case-insensitively, with or without `application/`)"
    );
    assert_eq!(
        Ward::builder(&yaml("[\"\", \"at jwt\", application/]")).config_error(),
        [
            "line 7: providers[0].jwt.token_types[0]: `` is not a media type name such as at+jwt or JWT",
            "line 7: providers[0].jwt.token_types[1]: `at jwt` is not a media type name such as at+jwt or JWT",
            "line 7: providers[0].jwt.token_types[2]: `application/` is not a media type name such as at+jwt or JWT",
        ]
        .join("\n")
    );
    assert_eq!(
        Ward::builder(&yaml("at+jwt"))
            .config_error()
            .lines()
            .count(),
        1,
        "a string, not a list, is one error"
    );
}
