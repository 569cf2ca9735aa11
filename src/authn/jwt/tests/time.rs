//! Time boundaries (`exp`, `nbf`, leeway), audience and issuer rules.

use super::*;

// === time ===

#[test]
fn exp_plus_leeway_is_the_first_expired_second() {
    let mut s = settings();
    let set = rsa_set();
    let t = token(&keys().rsa_a, Some("a"), &claims(json!({"exp": NOW})));
    assert!(check_at(&t, &s, &set, NOW + 29).is_ok());
    assert_eq!(
        check_at(&t, &s, &set, NOW + 30).unwrap_err(),
        TokenError::Expired
    );
    assert_eq!(
        check_at(&t, &s, &set, NOW + 31).unwrap_err(),
        TokenError::Expired
    );
    s.leeway = Duration::ZERO;
    assert!(check_at(&t, &s, &set, NOW - 1).is_ok());
    assert_eq!(
        check_at(&t, &s, &set, NOW).unwrap_err(),
        TokenError::Expired
    );
}

#[test]
fn nbf_beyond_leeway_is_not_yet_valid() {
    let mut s = settings();
    let set = rsa_set();
    let at = |nbf: u64| token(&keys().rsa_a, Some("a"), &claims(json!({ "nbf": nbf })));
    assert_eq!(
        check(&at(NOW + 31), &s, &set).unwrap_err(),
        TokenError::NotYetValid
    );
    assert_eq!(
        check(&at(NOW + 3600), &s, &set).unwrap_err(),
        TokenError::NotYetValid
    );
    s.leeway = Duration::ZERO;
    assert_eq!(
        check(&at(NOW + 1), &s, &set).unwrap_err(),
        TokenError::NotYetValid
    );
}

#[test]
fn nbf_now_or_within_leeway_is_accepted() {
    let mut s = settings();
    let set = rsa_set();
    let at = |nbf: u64| token(&keys().rsa_a, Some("a"), &claims(json!({ "nbf": nbf })));
    assert_eq!(
        check(&at(NOW - 60), &s, &set).err(),
        None,
        "nbf in the past"
    );
    assert_eq!(check(&at(NOW), &s, &set).err(), None, "nbf now");
    assert_eq!(
        check(&at(NOW + 30), &s, &set).err(),
        None,
        "nbf at now + leeway"
    );
    s.leeway = Duration::ZERO;
    assert_eq!(check(&at(NOW), &s, &set).err(), None, "nbf now, no leeway");
}

#[test]
fn exp_is_required_and_must_be_a_number() {
    let s = settings();
    let set = rsa_set();
    let with = |extra: Value| token(&keys().rsa_a, Some("a"), &claims(extra));
    assert_eq!(
        refused(&with(json!({"exp": null})), &s, &set),
        TokenError::MissingExp
    );
    let exp = TokenError::ClaimType("exp");
    let as_string = json!({ "exp": (NOW + 600).to_string() });
    assert_eq!(refused(&with(as_string), &s, &set), exp);
    assert_eq!(refused(&with(json!({"exp": true})), &s, &set), exp);
    assert_eq!(refused(&with(json!({"exp": [NOW + 600]})), &s, &set), exp);
    let nbf_string = json!({ "nbf": NOW.to_string() });
    assert_eq!(
        refused(&with(nbf_string), &s, &set),
        TokenError::ClaimType("nbf")
    );
    // A fractional NumericDate is a number.
    assert!(check(&with(json!({"exp": NOW as f64 + 600.5})), &s, &set).is_ok());
}

#[test]
fn registered_claims_must_have_their_rfc_7519_types() {
    let s = settings();
    let set = rsa_set();
    let with = |extra: Value| token(&keys().rsa_a, Some("a"), &claims(extra));
    let cases = [
        ("sub", json!(42)),
        ("sub", json!(["alice"])),
        ("sub", json!({"id": "alice"})),
        ("sub", json!(true)),
        ("iss", json!(1)),
        ("iss", json!([ISS])),
        ("jti", json!(7)),
        ("jti", json!({})),
        ("aud", json!(1)),
        ("aud", json!([1])),
        ("aud", json!(["orders-api", 1])),
        ("aud", json!([["orders-api"]])),
        ("aud", json!({"orders-api": true})),
        ("iat", json!("1800000000")),
        ("iat", json!([1])),
        ("nbf", json!(false)),
    ];
    for (claim, value) in cases {
        let t = with(json!({ claim: value }));
        assert_eq!(
            refused(&t, &s, &set),
            TokenError::ClaimType(claim),
            "{claim}: {value}"
        );
    }
    // The error names the claim, never its value.
    let t = with(json!({"sub": 31337}));
    assert_eq!(
        refused(&t, &s, &set).to_string(),
        "claim `sub` has the wrong type"
    );
    // The right types, present or absent, are accepted.
    let fine =
        json!({"jti": "j-1", "iat": NOW as f64 - 0.5, "nbf": NOW - 1, "aud": ["x", "orders-api"]});
    assert!(check(&with(fine), &s, &set).is_ok());
    let bare = json!({"sub": null, "iat": null, "jti": null});
    let id = check(&with(bare), &s, &set).unwrap();
    assert_eq!(id.subject, None);
}

// === audience and issuer ===

#[test]
fn aud_as_string_or_array() {
    let s = settings();
    let set = rsa_set();
    let with = |aud: Value| token(&keys().rsa_a, Some("a"), &claims(json!({ "aud": aud })));
    assert!(check(&with(json!("orders-api")), &s, &set).is_ok());
    assert!(check(&with(json!("billing-api")), &s, &set).is_ok());
    assert!(check(&with(json!(["other", "billing-api"])), &s, &set).is_ok());
    for bad in [
        json!("other"),
        json!(["other", "third"]),
        json!([]),
        json!("Orders-API"),
        json!("orders-api "),
        json!("orders-api billing-api"),
    ] {
        assert_eq!(
            refused(&with(bad.clone()), &s, &set),
            TokenError::Audience,
            "{bad}"
        );
    }
    let no_aud = token(&keys().rsa_a, Some("a"), &claims(json!({"aud": null})));
    assert_eq!(refused(&no_aud, &s, &set), TokenError::Audience);
}

#[test]
fn iss_must_match_exactly() {
    let s = settings();
    let set = rsa_set();
    let with = |iss: Value| token(&keys().rsa_a, Some("a"), &claims(json!({ "iss": iss })));
    assert!(check(&with(json!(ISS)), &s, &set).is_ok());
    for bad in [
        json!(format!("{ISS}/")),
        json!("https://IDP.example.com/realms/corp"),
        json!("http://idp.example.com/realms/corp"),
        json!(format!(" {ISS}")),
    ] {
        assert_eq!(
            refused(&with(bad.clone()), &s, &set),
            TokenError::Issuer,
            "{bad}"
        );
    }
    let no_iss = token(&keys().rsa_a, Some("a"), &claims(json!({"iss": null})));
    assert_eq!(refused(&no_iss, &s, &set), TokenError::Issuer);
}
