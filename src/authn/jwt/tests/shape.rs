//! The token's shape, the claims -> identity mapping, the size cap and the issuer a
//! token names before it is trusted.

use super::*;

// === shape ===

#[test]
fn max_token_bytes_is_inclusive() {
    let t = token(&keys().rsa_a, Some("a"), &claims(json!({})));
    assert!(parse(&t, t.len()).is_ok());
    assert_eq!(parse(&t, t.len() - 1).unwrap_err(), TokenError::TooLarge);
    let mut s = settings();
    s.max_token_bytes = t.len() - 1;
    assert_eq!(refused(&t, &s, &rsa_set()), TokenError::TooLarge);
    // Parsed under a larger cap (the provider that found it), verified by one whose cap
    // it exceeds (picked by `iss`): the verifier's cap holds.
    let parsed = parse(&t, t.len()).unwrap();
    let err = verify(parsed, &s, &rsa_set(), &provider(), NOW, &[]).unwrap_err();
    assert_eq!(err, TokenError::TooLarge);
    // Too large is decided before anything is decoded.
    let junk = "x".repeat(20_000);
    assert_eq!(parse(&junk, 16_384).unwrap_err(), TokenError::TooLarge);
}

#[test]
fn duplicate_members_are_refused_with_valid_signatures() {
    let s = settings();
    let set = rsa_set();
    let key = &keys().rsa_a.key;
    let good_payload = claims(json!({})).to_string();
    let header = r#"{"alg":"RS256","kid":"a","alg":"RS256"}"#;
    let t = raw_token(header, &good_payload, key, Alg::RS256);
    assert_eq!(refused(&t, &s, &set), TokenError::DuplicateMember);

    let header = r#"{"alg":"RS256","kid":"a"}"#;
    let exp = NOW + 600;
    for payload in [
        format!(r#"{{"iss":"{ISS}","aud":"orders-api","exp":{exp},"sub":"alice","sub":"admin"}}"#),
        format!(
            r#"{{"iss":"{ISS}","aud":"orders-api","exp":{exp},"sub":"alice","s\u0075b":"admin"}}"#
        ),
        format!(
            r#"{{"iss":"{ISS}","aud":"orders-api","exp":{exp},"realm_access":{{"roles":[],"roles":["admin"]}}}}"#
        ),
    ] {
        let t = raw_token(header, &payload, key, Alg::RS256);
        assert_eq!(
            refused(&t, &s, &set),
            TokenError::DuplicateMember,
            "{payload}"
        );
    }
}

#[test]
fn crit_header_is_refused() {
    let s = settings();
    let set = rsa_set();
    let payload = claims(json!({})).to_string();
    for header in [
        r#"{"alg":"RS256","kid":"a","crit":["exp"],"exp":1}"#,
        r#"{"alg":"RS256","kid":"a","crit":[]}"#,
    ] {
        let t = raw_token(header, &payload, &keys().rsa_a.key, Alg::RS256);
        assert_eq!(refused(&t, &s, &set), TokenError::Malformed, "{header}");
    }
}

#[test]
fn a_kid_that_is_not_a_string_is_malformed() {
    let s = settings();
    let set = rsa_set();
    let payload = claims(json!({})).to_string();
    for kid in [json!(7), Value::Null, json!(["a"]), json!({"a": 1})] {
        let header = json!({"alg": "RS256", "kid": kid}).to_string();
        let t = raw_token(&header, &payload, &keys().rsa_a.key, Alg::RS256);
        assert_eq!(refused(&t, &s, &set), TokenError::Malformed, "{kid}");
    }
}

#[test]
fn alg_none_missing_or_unknown_is_an_algorithm_error() {
    let payload = URL_SAFE_NO_PAD.encode(claims(json!({})).to_string());
    let sig = URL_SAFE_NO_PAD.encode([1u8; 32]);
    for header in [
        r#"{"alg":"none"}"#,
        r#"{"alg":"None"}"#,
        r#"{"typ":"JWT"}"#,
        r#"{"alg":"rs256"}"#,
        r#"{"alg":"ES256K"}"#,
        r#"{"alg":"Ed448"}"#,
        r#"{"alg":"ed25519"}"#,
        r#"{"alg":256}"#,
    ] {
        let t = format!("{}.{payload}.{sig}", URL_SAFE_NO_PAD.encode(header));
        assert_eq!(
            parse(&t, 16_384).unwrap_err(),
            TokenError::Algorithm,
            "{header}"
        );
    }
}

#[test]
fn malformed_shapes_are_refused_never_repaired() {
    let t = token(&keys().rsa_a, Some("a"), &claims(json!({})));
    let (h, rest) = t.split_once('.').unwrap();
    let (p, sig) = rest.split_once('.').unwrap();
    let not_object = URL_SAFE_NO_PAD.encode("[1]");
    let not_json = URL_SAFE_NO_PAD.encode("{\"alg\":");
    for bad in [
        String::new(),
        format!("{h}.{p}"),
        format!("{h}.{p}."),
        format!("{t}.{sig}"),
        format!("{h}=.{p}.{sig}"),
        format!("{h}.{p}.{sig}="),
        format!(" {t}"),
        format!("{t} "),
        format!("{t}\n"),
        format!("{h}.{p}.{}", sig.replace(['-', '_'], "+")),
        format!("{not_object}.{p}.{sig}"),
        format!("{h}.{not_object}.{sig}"),
        format!("{not_json}.{p}.{sig}"),
    ] {
        if bad == t {
            continue;
        }
        assert_eq!(
            parse(&bad, 16_384).unwrap_err(),
            TokenError::Malformed,
            "{bad:?}"
        );
    }
}

// === claims -> identity ===

#[test]
fn claims_map_to_identity() {
    let mut s = settings();
    s.roles_claim = ClaimPath::parse("realm_access.roles").unwrap().into();
    s.scopes_claim = ClaimPath::parse("scope").unwrap().into();
    let h = |n: &str| HeaderName::parse(n).unwrap();
    let p = |n: &str| ClaimPath::parse(n).unwrap();
    s.claim_headers = vec![
        (p("email"), h("x-auth-email")),
        (p("tenant"), h("x-auth-tenant")),
        (p("groups"), h("x-auth-groups")),
        (p("org.name"), h("x-auth-org")),
        (p("absent"), h("x-auth-absent")),
    ];
    let c = claims(json!({
        "realm_access": {"roles": ["orders-reader", "admin"]},
        "roles": ["not-these"],
        "scope": "orders.read  orders.write",
        "email": "alice@example.com",
        "tenant": 42,
        "groups": ["eng", "ops"],
        "org": {"name": "Zoë & Co"},
    }));
    let t = token(&keys().rsa_a, Some("a"), &c);
    let id = check(&t, &s, &rsa_set()).unwrap();
    assert_eq!(id.roles, Names::from(["orders-reader", "admin"]));
    assert_eq!(id.scopes, Names::from(["orders.read", "orders.write"]));
    assert_eq!(
        *id.claim_headers,
        [
            (h("x-auth-email"), "alice@example.com".into()),
            (h("x-auth-tenant"), "42".into()),
            (h("x-auth-groups"), "eng,ops".into()),
            (h("x-auth-org"), "Zoë & Co".into()),
        ]
    );
    assert_eq!(id.claims.get("tenant"), Some(&json!(42)));
    assert_eq!(id.claims.get("realm_access").unwrap()["roles"][1], "admin");
    // Only the claims that conditions read are kept with the identity.
    let kept: Vec<&str> = id.claims.names().collect();
    assert_eq!(kept, ["realm_access", "tenant"]);
    assert_eq!(id.expires_at, Some(NOW + 600));
}

#[test]
fn default_claim_paths_are_roles_and_scope() {
    let s = settings();
    let c = claims(json!({"roles": ["a", 1, "b"], "scope": ["x", "y"]}));
    let id = check(&token(&keys().rsa_a, Some("a"), &c), &s, &rsa_set()).unwrap();
    assert_eq!(id.roles, Names::from(["a", "b"]));
    assert_eq!(id.scopes, Names::from(["x", "y"]));
    // Wrong types give nothing, never a coerced value.
    let c = claims(json!({"roles": {"admin": true}, "scope": 7}));
    let id = check(&token(&keys().rsa_a, Some("a"), &c), &s, &rsa_set()).unwrap();
    assert!(id.roles.is_empty());
    assert!(id.scopes.is_empty());
}

#[test]
fn claim_headers_with_unsafe_values_are_dropped() {
    let mut s = settings();
    let email = HeaderName::parse("x-auth-email").unwrap();
    s.claim_headers = vec![(ClaimPath::parse("email").unwrap(), email.clone())];
    for bad in [
        "alice@example.com\r\nx-auth-subject: admin",
        "alice@example.com\nx-admin: 1",
        "alice\r",
        "alice\0",
        "alice\tbob",
        "alice\u{7f}",
        "alice\u{85}",
    ] {
        let c = claims(json!({ "email": bad }));
        let id = check(&token(&keys().rsa_a, Some("a"), &c), &s, &rsa_set()).unwrap();
        assert!(id.claim_headers.is_empty(), "{bad:?} was emitted");
    }
    let c = claims(json!({"email": ["a@x.io", "b\r\n@x.io"]}));
    let id = check(&token(&keys().rsa_a, Some("a"), &c), &s, &rsa_set()).unwrap();
    assert!(id.claim_headers.is_empty(), "{:?}", id.claim_headers);
}

#[test]
fn claim_headers_that_would_be_trimmed_or_split_are_dropped() {
    let mut s = settings();
    let h = |n: &str| HeaderName::parse(n).unwrap();
    s.claim_headers = vec![
        (ClaimPath::parse("email").unwrap(), h("x-auth-email")),
        (ClaimPath::parse("groups").unwrap(), h("x-auth-groups")),
    ];
    let emitted = |c: Value| {
        let id = check(&token(&keys().rsa_a, Some("a"), &claims(c)), &s, &rsa_set()).unwrap();
        id.claim_headers
            .iter()
            .map(|(h, v)| (h.as_str().to_owned(), v.to_string()))
            .collect::<Vec<_>>()
    };
    for bad in [" a@x.io", "a@x.io ", "\u{a0}a@x.io", ""] {
        let c = json!({"email": bad, "groups": [bad]});
        assert_eq!(emitted(c), [], "{bad:?}");
    }
    let c = json!({"email": "a@x.io", "groups": ["eng", "ops,admin"]});
    assert_eq!(
        emitted(c),
        [("x-auth-email".to_owned(), "a@x.io".to_owned())]
    );
    let c = json!({"groups": []});
    assert_eq!(emitted(c), []);
    let c = json!({"email": "Zoë O'Neil <z@x.io>", "groups": ["on call", "eng"]});
    assert_eq!(
        emitted(c),
        [
            ("x-auth-email".to_owned(), "Zoë O'Neil <z@x.io>".to_owned()),
            ("x-auth-groups".to_owned(), "on call,eng".to_owned()),
        ]
    );
}

#[test]
fn unrepresentable_subjects_roles_and_scopes_refuse_the_token() {
    use crate::authn::claims::Part;
    let mut s = settings();
    s.roles_claim = ClaimPath::parse("realm_access.roles").unwrap().into();
    let with = |extra: Value| token(&keys().rsa_a, Some("a"), &claims(extra));
    let set = rsa_set();
    let sub = TokenError::Unrepresentable(Part::Claim("sub"));
    let role = TokenError::Unrepresentable(Part::Role);
    let scope = TokenError::Unrepresentable(Part::Scope);
    let cases = [
        (json!({"sub": " admin"}), sub),
        (json!({"sub": "admin\t"}), sub),
        (json!({"sub": "alice\r\nx-admin: 1"}), sub),
        (json!({"sub": "\u{2003}admin"}), sub),
        (json!({"sub": "alice\u{85}"}), sub),
        (json!({"sub": ""}), sub),
        (
            json!({"realm_access": {"roles": ["viewer", " admin"]}}),
            role,
        ),
        (json!({"realm_access": {"roles": ["viewer,admin"]}}), role),
        (
            json!({"realm_access": {"roles": ["viewer", "admin\u{0}"]}}),
            role,
        ),
        (json!({"realm_access": {"roles": "viewer\tadmin"}}), role),
        (json!({"scope": ["orders.read orders.write"]}), scope),
        (json!({"scope": ["orders.read\u{a0}"]}), scope),
        (json!({"scope": "orders.read\u{3000}orders.write"}), scope),
        (json!({"scope": "orders.read\norders.write"}), scope),
    ];
    for (extra, want) in cases {
        assert_eq!(refused(&with(extra.clone()), &s, &set), want, "{extra}");
    }
    assert_eq!(sub.to_string(), "claim `sub` is not representable");
    assert_eq!(role.to_string(), "the roles claim is not representable");
    assert_eq!(scope.to_string(), "the scopes claim is not representable");
    // Inner spaces are fine in a subject and a role; empty members and non-strings are
    // no names at all; the roles of another claim than the configured one are not read.
    let fine = json!({
        "sub": "Zoë O'Neil",
        "realm_access": {"roles": ["read only", "", 7, "admin"]},
        "roles": [" not read"],
        "scope": "  orders.read   orders.write ",
    });
    let id = check(&with(fine), &s, &set).unwrap();
    assert_eq!(id.subject.as_deref(), Some("Zoë O'Neil"));
    assert_eq!(id.roles, Names::from(["read only", "admin"]));
    assert_eq!(id.scopes, Names::from(["orders.read", "orders.write"]));
}

// === the size cap in verify ===

#[test]
fn a_token_of_exactly_max_token_bytes_verifies() {
    let t = token(&keys().rsa_a, Some("a"), &claims(json!({})));
    let mut s = settings();
    s.max_token_bytes = t.len();
    assert!(check(&t, &s, &rsa_set()).is_ok());
    // Parsed under a larger cap, verified under one of exactly its length.
    let parsed = parse(&t, t.len() + 100).unwrap();
    let id = verify(parsed, &s, &rsa_set(), &provider(), NOW, &[]);
    assert!(id.is_ok(), "{id:?}");
    s.max_token_bytes = t.len() - 1;
    let parsed = parse(&t, t.len() + 100).unwrap();
    let err = verify(parsed, &s, &rsa_set(), &provider(), NOW, &[]).unwrap_err();
    assert_eq!(err, TokenError::TooLarge);
}

// === the issuer a token names, before it is trusted ===

#[test]
fn a_parsed_token_names_its_issuer_for_picking_a_provider() {
    let t = token(&keys().rsa_a, Some("a"), &claims(json!({})));
    assert_eq!(parse(&t, 16_384).unwrap().issuer(), Some(ISS));
    let other = token(
        &keys().rsa_a,
        Some("a"),
        &claims(json!({"iss": "https://other.example.com"})),
    );
    assert_eq!(
        parse(&other, 16_384).unwrap().issuer(),
        Some("https://other.example.com")
    );
    let none = token(&keys().rsa_a, Some("a"), &claims(json!({"iss": null})));
    assert_eq!(parse(&none, 16_384).unwrap().issuer(), None);
    let number = token(&keys().rsa_a, Some("a"), &claims(json!({"iss": 7})));
    assert_eq!(
        parse(&number, 16_384).unwrap().issuer(),
        None,
        "not a string"
    );
}
