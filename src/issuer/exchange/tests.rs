use super::*;

const FORM: Option<&[u8]> = Some(b"application/x-www-form-urlencoded");
const OK: &str = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange\
&subject_token=a.b.c&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token\
&audience=payments-api";

fn refused(content_type: Option<&[u8]>, body: &str) -> (&'static str, String) {
    let e = parse(content_type, body.as_bytes()).expect_err("refused");
    (e.error, e.description.into_owned())
}

#[test]
fn a_well_formed_request_reads() {
    let r = parse(FORM, OK.as_bytes()).expect("reads");
    assert_eq!(
        r,
        ExchangeRequest {
            subject_token: "a.b.c".into(),
            target: "payments-api".into()
        }
    );
    // Parameters come in any order; `+` is a space; a charset is allowed.
    let body = "audience=pay+api&subject_token_type=urn:ietf:params:oauth:token-type:jwt\
&subject_token=t&grant_type=urn:ietf:params:oauth:grant-type:token-exchange";
    let r = parse(
        Some(b"Application/X-WWW-Form-Urlencoded; charset=UTF-8"),
        body.as_bytes(),
    )
    .expect("reads");
    assert_eq!(r.target, "pay api");
    // `resource` stands in for `audience`, and may repeat it.
    let r = parse(FORM, OK.replace("audience=", "resource=").as_bytes()).expect("reads");
    assert_eq!(r.target, "payments-api");
    let both = format!("{OK}&resource=payments-api");
    assert_eq!(
        parse(FORM, both.as_bytes()).expect("reads").target,
        "payments-api"
    );
    let typed = format!("{OK}&requested_token_type=urn:ietf:params:oauth:token-type:jwt");
    assert!(parse(FORM, typed.as_bytes()).is_ok());
}

#[test]
fn missing_parameters_are_invalid_requests_naming_them() {
    for (param, needle) in [
        ("subject_token", "missing `subject_token`"),
        ("subject_token_type", "missing `subject_token_type`"),
        ("audience", "missing `audience` (or `resource`)"),
        ("grant_type", "missing `grant_type`"),
    ] {
        let body: Vec<&str> = OK
            .split('&')
            .filter(|p| !p.starts_with(&format!("{param}=")))
            .collect();
        assert_eq!(
            refused(FORM, &body.join("&")),
            ("invalid_request", needle.to_string()),
            "without {param}"
        );
    }
    // An empty value is a missing one.
    let empty = OK.replace("subject_token=a.b.c", "subject_token=");
    assert_eq!(refused(FORM, &empty).0, "invalid_request");
}

#[test]
fn repeated_and_unknown_parameters_are_refused() {
    let repeated = format!("{OK}&audience=other");
    assert_eq!(
        refused(FORM, &repeated),
        ("invalid_request", "parameter `audience` is repeated".into())
    );
    let unknown = format!("{OK}&audiance=x");
    assert_eq!(
        refused(FORM, &unknown),
        ("invalid_request", "unknown parameter `audiance`".into())
    );
    // A name that is not safe to echo is not echoed.
    let hostile = format!("{OK}&%0D%0Aset-cookie=x");
    assert_eq!(
        refused(FORM, &hostile),
        ("invalid_request", "unknown parameter".into())
    );
    let delegation = format!("{OK}&actor_token=x&actor_token_type=y");
    assert_eq!(refused(FORM, &delegation).0, "invalid_request");
    assert_eq!(
        refused(FORM, &format!("{OK}&scope=read")).0,
        "invalid_scope"
    );
}

#[test]
fn the_grant_type_and_token_types_are_checked() {
    let other = OK.replace(
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange",
        "grant_type=client_credentials",
    );
    assert_eq!(refused(FORM, &other).0, "unsupported_grant_type");
    let saml = OK.replace("token-type%3Aaccess_token", "token-type%3Asaml2");
    assert_eq!(refused(FORM, &saml).0, "invalid_request");
    let want_saml = format!("{OK}&requested_token_type=urn:ietf:params:oauth:token-type:saml2");
    assert_eq!(refused(FORM, &want_saml).0, "invalid_request");
    let split = format!("{OK}&resource=https://other");
    assert_eq!(refused(FORM, &split).0, "invalid_target");
}

#[test]
fn the_body_must_be_a_form_of_at_most_64_kib_in_utf8() {
    for ct in [None, Some(&b"application/json"[..]), Some(&b"\xff"[..])] {
        assert_eq!(refused(ct, OK).0, "invalid_request");
    }
    let big = format!("{OK}&subject_token_type={}", "x".repeat(MAX_BODY));
    assert_eq!(
        refused(FORM, &big),
        ("invalid_request", "the request body is over 64 KiB".into())
    );
    let bad_utf8 = OK.replace("a.b.c", "%FF%FE");
    assert_eq!(
        refused(FORM, &bad_utf8),
        ("invalid_request", "a parameter is not UTF-8".into())
    );
}

#[test]
fn errors_are_rfc_6749_json_that_never_holds_the_token() {
    let e = OAuthError::invalid_grant("the subject token is not accepted: expired");
    let body: serde_json::Value = serde_json::from_str(&e.body()).expect("JSON");
    assert_eq!(
        body,
        serde_json::json!({"error": "invalid_grant", "error_description": "the subject token is not accepted: expired"})
    );
    let issued: serde_json::Value = serde_json::from_str(&issued_body("t.o.k", 60)).expect("JSON");
    assert_eq!(issued["issued_token_type"], TOKEN_TYPE_JWT);
    assert_eq!(issued["token_type"], "Bearer");
    assert_eq!(issued["expires_in"], 60);
    assert_eq!(issued["access_token"], "t.o.k");
}
