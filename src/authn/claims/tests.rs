use super::*;
use serde_json::json;

#[test]
fn lookups_follow_dots_and_explicit_segments() {
    let claims = json!({"realm_access": {"roles": ["a"]}, "https://x.io/roles": ["b"]});
    let claims = claims.as_object().unwrap();
    let p = ClaimPath::parse("realm_access.roles").unwrap();
    assert_eq!(p.lookup_in(claims), Some(&json!(["a"])));
    let p = ClaimPath::from_segments(vec!["https://x.io/roles".into()]).unwrap();
    assert_eq!(p.lookup_in(claims), Some(&json!(["b"])));
    assert_eq!(
        ClaimPath::parse("realm_access.roles.x")
            .unwrap()
            .lookup_in(claims),
        None
    );
    assert!(ClaimPath::parse("a..b").is_err());
    // A namespaced claim written as a URL is one name, dots included.
    let p = ClaimPath::parse("https://x.io/roles").unwrap();
    assert_eq!(p.lookup_in(claims), Some(&json!(["b"])));
    assert!(ClaimPath::parse("").is_err());
}

#[test]
fn identities_keep_only_the_named_claims() {
    let Value::Object(all) = json!({"b": 1, "a": {"x": [2]}, "c": "3"}) else {
        unreachable!()
    };
    let kept = Claims::kept(all, &["a".into(), "c".into(), "z".into()]);
    assert_eq!(kept.names().collect::<Vec<_>>(), ["a", "c"]);
    assert_eq!(kept.get("c"), Some(&json!("3")));
    assert_eq!(kept.get("b"), None, "not named: not kept");
    let p = ClaimPath::parse("a.x").unwrap();
    assert_eq!(p.lookup_claims(&kept), Some(&json!([2])));
    assert_eq!(
        Claims::from(json!(["not", "an", "object"])),
        Claims::default()
    );
    let from = Claims::from(json!({"z": 1, "m": 2, "a": 3}));
    assert_eq!(from.names().collect::<Vec<_>>(), ["a", "m", "z"]);
    assert_eq!(from.get("m"), Some(&json!(2)));
}

#[test]
fn string_lists_never_coerce() {
    assert_eq!(
        string_list(Some(&json!("a b  c"))),
        Names::from(["a", "b", "c"])
    );
    assert_eq!(
        string_list(Some(&json!(["a", 1, "b"]))),
        Names::from(["a", "b"])
    );
    assert!(string_list(Some(&json!({"a": 1}))).is_empty());
    assert!(string_list(Some(&json!(42))).is_empty());
    assert!(string_list(None).is_empty());
}

#[test]
fn names_keep_only_names_that_can_be_matched_and_emitted() {
    let n = string_list(Some(&json!([
        "admin",
        "",
        "a\u{0}b",
        "line\nbreak",
        "ünï",
        "x,y"
    ])));
    assert_eq!(n.iter().collect::<Vec<_>>(), ["admin", "ünï", "x,y"]);
    assert!(n.contains("admin") && n.contains("x,y"));
    assert!(!n.contains("a") && !n.contains("") && !n.contains("a\u{0}b"));
    // The header forms skip a name holding their separator.
    assert_eq!(n.join(','), "admin,ünï");
    assert_eq!(Names::from(["a b", "c"]).join(' '), "c");
    assert_eq!(Names::from(["", "\t"]), Names::default());
    assert!(Names::default().iter().next().is_none());
    assert_eq!(format!("{n:?}"), r#"["admin", "ünï", "x,y"]"#);
    assert_eq!(json!(n), json!(["admin", "ünï", "x,y"]));
}

#[test]
fn header_values_by_type() {
    assert_eq!(header_value(&json!("x")).as_deref(), Some("x"));
    assert_eq!(header_value(&json!(42)).as_deref(), Some("42"));
    assert_eq!(header_value(&json!(["a", "b"])).as_deref(), Some("a,b"));
    assert_eq!(header_value(&json!({"a": 1})), None);
    assert_eq!(header_value(&json!(["a", 1])), None);
}

#[test]
fn header_values_that_would_be_trimmed_or_split_are_not_emitted() {
    for bad in [
        json!(" admin"),
        json!("admin "),
        json!(""),
        json!("a\r\nb"),
        json!(["a", " b"]),
        json!(["a,b"]),
        json!(["a", ""]),
        json!([]),
    ] {
        assert_eq!(header_value(&bad), None, "{bad}");
    }
    assert_eq!(header_value(&json!("a, b")).as_deref(), Some("a, b"));
    assert_eq!(header_value(&json!(["a b", "c"])).as_deref(), Some("a b,c"));
}

#[test]
fn representable_names_have_no_padding_controls_or_separators() {
    let lone = |n: &str| representable(n, |_| false);
    let role = |n: &str| representable(n, |c| List::Roles.is_separator(c));
    let scope = |n: &str| representable(n, |c| List::Scopes.is_separator(c));
    for ok in ["admin", "read only", "Zoë", "spiffe://a/b", "a,b"] {
        assert!(lone(ok), "{ok:?}");
    }
    for bad in [
        "",
        " admin",
        "admin ",
        "\tadmin",
        "\u{a0}admin",
        "admin\u{3000}",
        "a\r\nb",
        "a\0",
        "a\u{7f}",
        "a\u{85}b",
    ] {
        assert!(!lone(bad) && !role(bad) && !scope(bad), "{bad:?}");
    }
    assert!(role("read only") && !role("viewer,admin"));
    assert!(scope("a,b") && !scope("a b") && !scope("a\u{a0}b") && !scope("a\u{2028}b"));
}

#[test]
fn subjects_are_strings_that_reach_the_upstream_as_they_are() {
    let Value::Object(c) = json!({"sub": "alice", "pad": " alice", "num": 7, "crlf": "a\r\n"})
    else {
        unreachable!()
    };
    assert_eq!(subject(&c, "sub"), Ok(Some("alice".into())));
    assert_eq!(subject(&c, "absent"), Ok(None));
    assert_eq!(subject(&c, "num"), Err(TokenError::ClaimType("num")));
    for name in ["pad", "crlf"] {
        assert_eq!(
            subject(&c, name),
            Err(TokenError::Unrepresentable(Part::Claim(name)))
        );
    }
}

#[test]
fn role_and_scope_lists_refuse_what_they_cannot_carry() {
    let roles = |v: Value| names(Some(&v), List::Roles);
    let scopes = |v: Value| names(Some(&v), List::Scopes);
    assert_eq!(
        roles(json!(["a", 1, "", "b c"])),
        Ok(Names::from(["a", "b c"]))
    );
    assert_eq!(roles(json!("a  b")), Ok(Names::from(["a", "b"])));
    assert_eq!(scopes(json!(" x  y ")), Ok(Names::from(["x", "y"])));
    assert_eq!(scopes(json!(["x", "y,z"])), Ok(Names::from(["x", "y,z"])));
    assert_eq!(roles(json!({"a": 1})), Ok(Names::default()));
    assert_eq!(names(None, List::Scopes), Ok(Names::default()));
    let role = Err(TokenError::Unrepresentable(Part::Role));
    for bad in [
        json!([" admin"]),
        json!(["a,b"]),
        json!(["a\u{0}"]),
        json!("a,b c"),
    ] {
        assert_eq!(roles(bad.clone()), role, "{bad}");
    }
    let scope = Err(TokenError::Unrepresentable(Part::Scope));
    for bad in [
        json!(["x y"]),
        json!(["x\u{a0}"]),
        json!("x\ty"),
        json!("x\u{3000}y"),
    ] {
        assert_eq!(scopes(bad.clone()), scope, "{bad}");
    }
}

#[test]
fn registered_claims_have_their_rfc_7519_types() {
    let check = |v: Value| registered_types(v.as_object().unwrap());
    assert_eq!(check(json!({})), Ok(()));
    let fine = json!({"iss": "i", "sub": "s", "jti": "j", "aud": ["a"], "exp": 1, "nbf": 0.5, "iat": 1, "x": 1});
    assert_eq!(check(fine), Ok(()));
    assert_eq!(check(json!({"aud": "a"})), Ok(()));
    assert_eq!(check(json!({"aud": []})), Ok(()));
    let cases = [
        ("iss", json!(1)),
        ("sub", json!(null)),
        ("jti", json!(false)),
        ("aud", json!(["a", 1])),
        ("aud", json!(1)),
        ("exp", json!("1")),
        ("nbf", json!(null)),
        ("iat", json!([1])),
    ];
    for (name, v) in cases {
        let mut c = Map::new();
        c.insert(name.to_owned(), v.clone());
        assert_eq!(
            registered_types(&c),
            Err(TokenError::ClaimType(name)),
            "{name}: {v}"
        );
    }
}

// === claim headers from booleans ===

#[test]
fn a_boolean_claim_is_emitted_as_true_or_false() {
    assert_eq!(header_value(&json!(true)).as_deref(), Some("true"));
    assert_eq!(header_value(&json!(false)).as_deref(), Some("false"));
    let h = |n: &str| HeaderName::parse(n).unwrap();
    let wanted = [
        (
            ClaimPath::parse("email_verified").unwrap(),
            h("x-auth-email-verified"),
        ),
        (ClaimPath::parse("mfa").unwrap(), h("x-auth-mfa")),
        (ClaimPath::parse("absent").unwrap(), h("x-auth-absent")),
    ];
    let Value::Object(c) = json!({"email_verified": true, "mfa": false}) else {
        unreachable!()
    };
    assert_eq!(
        *claim_headers(&c, &wanted),
        [
            (h("x-auth-email-verified"), "true".into()),
            (h("x-auth-mfa"), "false".into()),
        ]
    );
    // Inside an array, a boolean is no name: the array is not emitted.
    assert_eq!(header_value(&json!([true])), None);
    assert_eq!(header_value(&json!(null)), None);
}

// === claim paths and names ===

#[test]
fn a_namespaced_claim_over_http_is_one_name_too() {
    let Value::Object(c) = json!({"http://x.io/roles": ["a"], "http://x": {"io/roles": 1}}) else {
        unreachable!()
    };
    let p = ClaimPath::parse("http://x.io/roles").unwrap();
    assert_eq!(p.lookup_in(&c), Some(&json!(["a"])));
    assert_eq!(p.top_level(), "http://x.io/roles");
    assert_eq!(p.as_str(), "http://x.io/roles");
}

#[test]
fn a_claim_path_starts_at_its_top_level_claim() {
    let p = ClaimPath::parse("realm_access.roles").unwrap();
    assert_eq!(p.top_level(), "realm_access");
    assert_eq!(p.as_str(), "realm_access.roles");
    let p = ClaimPath::from_segments(vec!["a.b".into(), "c".into()]).unwrap();
    assert_eq!(p.top_level(), "a.b");
    assert!(ClaimPath::from_segments(vec![]).is_err());
    assert!(ClaimPath::from_segments(vec!["a".into(), String::new()]).is_err());
}

#[test]
fn names_are_empty_only_when_they_hold_none() {
    assert!(Names::default().is_empty());
    assert!(!Names::from(["a"]).is_empty());
    assert!(!string_list(Some(&json!("a"))).is_empty());
}

#[test]
fn brackets_hold_names_with_dots() {
    let claims = json!({
        "resource_access": {"orders.api": {"roles": ["buyer"]}, "orders": {"api": 1}},
        "a.b": {"c": true},
    });
    let claims = claims.as_object().unwrap();
    let p = ClaimPath::parse(r#"resource_access["orders.api"].roles"#).unwrap();
    assert_eq!(p.lookup_in(claims), Some(&json!(["buyer"])));
    assert_eq!(p.as_str(), r#"resource_access["orders.api"].roles"#);
    assert_eq!(p.top_level(), "resource_access");
    let p = ClaimPath::parse(r#"["a.b"].c"#).unwrap();
    assert_eq!(p.lookup_in(claims), Some(&json!(true)));
    assert_eq!(p.top_level(), "a.b");
    // Brackets around a plain name mean the name; two brackets in a row are two names.
    let p = ClaimPath::parse(r#"resource_access["orders"]["api"]"#).unwrap();
    assert_eq!(p, ClaimPath::parse("resource_access.orders.api").unwrap());
    assert_eq!(p.lookup_in(claims), Some(&json!(1)));
    for bad in [
        r#"a["b"#,
        r#"a["b.c]"#,
        r#"a[""]"#,
        r#"a["b"]c"#,
        r#"a.["b"]"#,
        "a[b]",
        "a[",
        "a.",
        ".a",
        r#"a["b"]."#,
    ] {
        assert!(ClaimPath::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn several_claims_give_the_union_of_their_names() {
    let claims = json!({
        "realm_access": {"roles": ["user", "auditor"]},
        "resource_access": {"orders-api": {"roles": ["buyer", "user"]}},
        "scope": "orders:read profile",
        "bad": ["ok", "a,b"],
    });
    let claims = claims.as_object().unwrap();
    let p = |s| ClaimPath::parse(s).unwrap();
    let roles = NameClaims::new(vec![
        p("realm_access.roles"),
        p("resource_access.orders-api.roles"),
        p("absent"),
    ]);
    let got = roles.read(claims, List::Roles).unwrap();
    assert_eq!(
        got.iter().collect::<Vec<_>>(),
        ["user", "auditor", "buyer"],
        "each name once, in the order first seen"
    );
    // A space-separated string and an array unite the same way.
    let mixed = NameClaims::new(vec![p("scope"), p("realm_access.roles")]);
    let got = mixed.read(claims, List::Scopes).unwrap();
    assert_eq!(
        got.iter().collect::<Vec<_>>(),
        ["orders:read", "profile", "user", "auditor"]
    );
    // One unrepresentable member in any of the claims refuses the credential.
    let with_bad = NameClaims::new(vec![p("realm_access.roles"), p("bad")]);
    assert_eq!(
        with_bad.read(claims, List::Roles),
        Err(TokenError::Unrepresentable(Part::Role))
    );
    // One path reads as before.
    let one = NameClaims::from(p("realm_access.roles"));
    assert_eq!(
        one.read(claims, List::Roles).unwrap(),
        names(
            claims.get("realm_access").and_then(|r| r.get("roles")),
            List::Roles
        )
        .unwrap()
    );
    let none = NameClaims::new(vec![p("absent"), p("also_absent")]);
    assert!(none.read(claims, List::Roles).unwrap().is_empty());
}
