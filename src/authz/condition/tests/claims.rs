//! `claim` conditions: JSON types compared exactly, claim paths, anchored expressions,
//! presence, and comparisons with the request's path parameters and headers.

use serde_json::{Value, json};

use super::{Rule, get, with_claims};

// === claim: equals, one_of, contains ===

#[test]
fn equals_compares_json_types_without_coercion() {
    let num = Rule::new(json!({"claim": {"name": "level", "equals": 42}}));
    assert!(num.holds(json!({"level": 42})));
    assert!(
        !num.holds(json!({"level": "42"})),
        "the string \"42\" is not the number 42"
    );
    assert!(!num.holds(json!({"level": 43})));
    assert!(
        !num.holds(json!({"level": [42]})),
        "an array holding 42 is not 42"
    );

    let s = Rule::new(json!({"claim": {"name": "level", "equals": "42"}}));
    assert!(s.holds(json!({"level": "42"})));
    assert!(
        !s.holds(json!({"level": 42})),
        "the number 42 is not the string \"42\""
    );

    let t = Rule::new(json!({"claim": {"name": "email_verified", "equals": true}}));
    assert!(t.holds(json!({"email_verified": true})));
    assert!(
        !t.holds(json!({"email_verified": "true"})),
        "\"true\" is not true"
    );
    assert!(!t.holds(json!({"email_verified": 1})));
    assert!(!t.holds(json!({"email_verified": false})));

    let ts = Rule::new(json!({"claim": {"name": "email_verified", "equals": "true"}}));
    assert!(ts.holds(json!({"email_verified": "true"})));
    assert!(
        !ts.holds(json!({"email_verified": true})),
        "true is not \"true\""
    );
}

#[test]
fn equals_distinguishes_objects_arrays_and_null() {
    let obj = Rule::new(json!({"claim": {"name": "org", "equals": {"id": "acme", "tier": 1}}}));
    assert!(
        obj.holds(json!({"org": {"tier": 1, "id": "acme"}})),
        "member order is irrelevant"
    );
    assert!(!obj.holds(json!({"org": {"id": "acme"}})));
    assert!(
        !obj.holds(json!({"org": [{"id": "acme", "tier": 1}]})),
        "an array is not an object"
    );
    assert!(!obj.holds(json!({"org": [["id", "acme"], ["tier", 1]]})));

    let arr = Rule::new(json!({"claim": {"name": "aud", "equals": ["a", "b"]}}));
    assert!(arr.holds(json!({"aud": ["a", "b"]})));
    assert!(
        !arr.holds(json!({"aud": ["b", "a"]})),
        "array equality keeps order"
    );
    assert!(
        !arr.holds(json!({"aud": {"0": "a", "1": "b"}})),
        "an object is not an array"
    );
    assert!(!arr.holds(json!({"aud": "a b"})));

    let null = Rule::new(json!({"claim": {"name": "x", "equals": null}}));
    assert!(null.holds(json!({"x": null})));
    assert!(!null.holds(json!({})), "a missing claim is not null");
}

#[test]
fn missing_claims_fail_every_positive_test() {
    for test in [
        json!({"equals": "acme"}),
        json!({"one_of": ["acme"]}),
        json!({"contains": "acme"}),
        json!({"matches": ".*"}),
        json!({"present": true}),
        json!({"equals_param": "tenant"}),
        json!({"equals_header": "x-tenant"}),
    ] {
        let mut claim = test.clone();
        claim["name"] = json!("tenant");
        let r = Rule::new(json!({ "claim": claim }));
        let mut req = get("/tenants/acme/orders");
        req.headers.push("x-tenant", b"acme");
        let f = r
            .eval(&with_claims(json!({"other": "acme"})), &req)
            .unwrap_err();
        assert!(!f.insufficient_scope, "{test}");
    }
    // Nor does a path that runs into a non-object.
    let deep = Rule::new(json!({"claim": {"name": "a.tenant", "present": true}}));
    assert!(deep.holds(json!({"a": {"tenant": "x"}})));
    assert!(!deep.holds(json!({"a": "tenant"})));
    assert!(!deep.holds(json!({"a": ["tenant"]})));
}

#[test]
fn one_of_is_typed_membership() {
    let r = Rule::new(json!({"claim": {"name": "tier", "one_of": ["gold", "silver", 3]}}));
    assert!(r.holds(json!({"tier": "gold"})));
    assert!(r.holds(json!({"tier": 3})));
    assert!(!r.holds(json!({"tier": "3"})));
    assert!(!r.holds(json!({"tier": "Gold"})));
    assert!(
        !r.holds(json!({"tier": ["gold"]})),
        "a list holding a member is not a member"
    );
    assert!(!r.holds(json!({"tier": null})));
}

#[test]
fn contains_looks_inside_arrays_only() {
    let r = Rule::new(json!({"claim": {"name": "amr", "contains": "mfa"}}));
    assert!(r.holds(json!({"amr": ["pwd", "mfa"]})));
    assert!(!r.holds(json!({"amr": ["pwd", "otp"]})));
    assert!(
        !r.holds(json!({"amr": "mfa"})),
        "a string is not a list: never coerced"
    );
    assert!(
        !r.holds(json!({"amr": "pwd mfa"})),
        "no substring or word search"
    );
    assert!(
        !r.holds(json!({"amr": {"mfa": true}})),
        "an object is not a list"
    );
    assert!(!r.holds(json!({"amr": []})));

    let n = Rule::new(json!({"claim": {"name": "groups", "contains": 7}}));
    assert!(n.holds(json!({"groups": [1, 7]})));
    assert!(!n.holds(json!({"groups": ["7"]})), "\"7\" is not 7");
}

#[test]
fn claim_paths_walk_objects_and_the_list_form_keeps_dots() {
    let realm = Rule::new(json!({"claim": {"name": "realm_access.roles", "contains": "admin"}}));
    assert!(realm.holds(json!({"realm_access": {"roles": ["admin"]}})));
    assert!(!realm.holds(json!({"realm_access.roles": ["admin"]})));

    // Keycloak client ids and Auth0 namespaces hold dots: the list form names one member.
    let client = Rule::new(json!({"claim": {
        "name": ["resource_access", "billing.api", "roles"], "contains": "invoice-reader"
    }}));
    let claims = json!({"resource_access": {"billing.api": {"roles": ["invoice-reader"]}}});
    assert!(client.holds(claims.clone()));
    let dotted = Rule::new(json!({"claim": {
        "name": "resource_access.billing.api.roles", "contains": "invoice-reader"
    }}));
    assert!(
        !dotted.holds(claims),
        "the dotted form splits the client id"
    );

    let ns = Rule::new(json!({"claim": {"name": ["https://example.com/roles"], "contains": "a"}}));
    assert!(ns.holds(json!({"https://example.com/roles": ["a"]})));
    assert!(!ns.holds(json!({"https://example": {"com/roles": ["a"]}})));
}

// === claim: matches, present ===

#[test]
fn matches_is_anchored() {
    let r = Rule::new(json!({"claim": {"name": "role", "matches": "adm"}}));
    assert!(r.holds(json!({"role": "adm"})));
    assert!(
        !r.holds(json!({"role": "admin"})),
        "`adm` must not match a prefix"
    );
    assert!(!r.holds(json!({"role": "xadm"})), "nor a suffix");

    // Anchoring wraps the whole expression: an alternation is anchored on both sides.
    let alt = Rule::new(json!({"claim": {"name": "role", "matches": "a|b"}}));
    assert!(alt.holds(json!({"role": "a"})));
    assert!(alt.holds(json!({"role": "b"})));
    assert!(!alt.holds(json!({"role": "ab"})));
    assert!(!alt.holds(json!({"role": "xb"})));
    assert!(!alt.holds(json!({"role": "a\nb"})));

    let email = Rule::new(json!({"claim": {"name": "email", "matches": "[^@]+@example\\.com"}}));
    assert!(email.holds(json!({"email": "alice@example.com"})));
    assert!(!email.holds(json!({"email": "alice@example.com.evil.io"})));
    assert!(!email.holds(json!({"email": "alice@exampleXcom"})));
}

#[test]
fn matches_runs_in_linear_time_on_long_claims() {
    // Expressions that take exponential time in a backtracking engine, on a claim of
    // 10 000 characters that fails only at its end. The regex engine is linear in the
    // input; the bound is loose enough for a loaded debug build.
    let long = "a".repeat(10_000) + "!";
    let started = std::time::Instant::now();
    for re in ["(a*)*b", "(a|aa)*", "(a|a)*", "(.*a){12}", "(?:a+)+$"] {
        let r = Rule::new(json!({"claim": {"name": "role", "matches": re}}));
        assert!(!r.holds(json!({ "role": long.as_str() })), "{re}");
    }
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
}

#[test]
fn matches_tests_strings_only() {
    let r = Rule::new(json!({"claim": {"name": "n", "matches": "[0-9]+"}}));
    assert!(r.holds(json!({"n": "123"})));
    assert!(
        !r.holds(json!({"n": 123})),
        "a number is not matched as text"
    );
    assert!(!r.holds(json!({"n": ["123"]})));
    assert!(!r.holds(json!({"n": null})));
}

#[test]
fn present_treats_null_as_absent() {
    let yes = Rule::new(json!({"claim": {"name": "tid", "present": true}}));
    let no = Rule::new(json!({"claim": {"name": "tid", "present": false}}));
    for (claims, present) in [
        (json!({"tid": "x"}), true),
        (json!({"tid": ""}), true),
        (json!({"tid": false}), true),
        (json!({"tid": 0}), true),
        (json!({"tid": []}), true),
        (json!({"tid": {}}), true),
        (json!({"tid": null}), false),
        (json!({}), false),
    ] {
        assert_eq!(
            yes.holds(claims.clone()),
            present,
            "present: true on {claims}"
        );
        assert_eq!(
            no.holds(claims.clone()),
            !present,
            "present: false on {claims}"
        );
    }
}

// === claim: equals_param, equals_header ===

#[test]
fn equals_param_compares_with_the_decoded_segment() {
    let r = Rule::new(json!({"claim": {"name": "tenant", "equals_param": "tenant"}}));
    let id = |t: Value| with_claims(json!({ "tenant": t }));
    assert!(
        r.eval(&id(json!("acme")), &get("/tenants/acme/orders"))
            .is_ok()
    );
    assert!(
        r.eval(&id(json!("globex")), &get("/tenants/acme/orders"))
            .is_err()
    );
    // The parameter is bound percent-decoded; the claim holds the decoded name.
    assert!(
        r.eval(&id(json!("acme co")), &get("/tenants/acme%20co/orders"))
            .is_ok()
    );
    assert!(
        r.eval(&id(json!("acme%20co")), &get("/tenants/acme%20co/orders"))
            .is_err()
    );
    assert!(
        r.eval(&id(json!("café")), &get("/tenants/caf%C3%A9/x"))
            .is_ok()
    );
    // Exact comparison: no case folding.
    assert!(
        r.eval(&id(json!("ACME")), &get("/tenants/acme/orders"))
            .is_err()
    );
    // A numeric tenant id in a number claim is still not the path's text.
    assert!(r.eval(&id(json!(42)), &get("/tenants/42/orders")).is_err());
    assert!(r.eval(&id(json!("42")), &get("/tenants/42/orders")).is_ok());
    assert!(
        r.eval(&id(json!(["acme"])), &get("/tenants/acme/orders"))
            .is_err()
    );
}

#[test]
fn equals_header_needs_exactly_one_matching_header() {
    let r = Rule::new(json!({"claim": {"name": "tenant", "equals_header": "X-Tenant"}}));
    let id = with_claims(json!({"tenant": "acme"}));

    let mut one = get("/tenants/acme/orders");
    one.headers.push("x-tenant", b"acme");
    assert!(
        r.eval(&id, &one).is_ok(),
        "header names compare case-insensitively"
    );

    let missing = get("/tenants/acme/orders");
    assert!(r.eval(&id, &missing).is_err());

    let mut twice = get("/tenants/acme/orders");
    twice.headers.push("x-tenant", b"acme");
    twice.headers.push("x-tenant", b"acme");
    assert!(
        r.eval(&id, &twice).is_err(),
        "a duplicated header is ambiguous: refused"
    );

    let mut other = get("/tenants/acme/orders");
    other.headers.push("x-tenant", b"globex");
    assert!(r.eval(&id, &other).is_err());

    let mut padded = get("/tenants/acme/orders");
    padded.headers.push("x-tenant", b"acme ");
    assert!(r.eval(&id, &padded).is_err(), "values are not trimmed");

    let mut not_utf8 = get("/tenants/acme/orders");
    not_utf8.headers.push("x-tenant", b"acme\xff");
    assert!(r.eval(&id, &not_utf8).is_err());

    let num = with_claims(json!({"tenant": 7}));
    let mut seven = get("/tenants/acme/orders");
    seven.headers.push("x-tenant", b"7");
    assert!(
        r.eval(&num, &seven).is_err(),
        "a number claim is not header text"
    );
}

// === numbers ===

#[test]
fn numbers_compare_by_value_not_representation() {
    // YAML `equals: 1` compiles to an integer; an IdP may send `1.0` (or the reverse).
    // Both are the JSON number one.
    let int = Rule::new(json!({"claim": {"name": "acr", "equals": 1}}));
    assert!(int.holds(json!({"acr": 1.0})));
    assert!(!int.holds(json!({"acr": 1.5})));
    assert!(!int.holds(json!({"acr": "1"})));
    let float = Rule::new(json!({"claim": {"name": "acr", "equals": 1.0}}));
    assert!(float.holds(json!({"acr": 1})));
    let one_of = Rule::new(json!({"claim": {"name": "acr", "one_of": [1, 2]}}));
    assert!(one_of.holds(json!({"acr": 2.0})));
    let contains = Rule::new(json!({"claim": {"name": "levels", "contains": 2}}));
    assert!(contains.holds(json!({"levels": [1.0, 2.0]})));
    let nested = Rule::new(json!({"claim": {"name": "org", "equals": {"tier": 1}}}));
    assert!(nested.holds(json!({"org": {"tier": 1.0}})));
    // Integers beyond f64's precision stay distinct.
    let big = Rule::new(json!({"claim": {"name": "id", "equals": 9_007_199_254_740_993_u64}}));
    assert!(big.holds(json!({"id": 9_007_199_254_740_993_u64})));
    assert!(!big.holds(json!({"id": 9_007_199_254_740_992_u64})));
    let neg = Rule::new(json!({"claim": {"name": "n", "equals": -3}}));
    assert!(neg.holds(json!({"n": -3.0})));
    assert!(!neg.holds(json!({"n": 3})));
    // An integer and a float are equal only when the float is exactly that integer:
    // 2^64 - 1 is not the float 2^64 it rounds to, nor is 2^53 + 1 the float 2^53.
    let max = Rule::new(json!({"claim": {"name": "id", "equals": u64::MAX}}));
    assert!(max.holds(json!({"id": u64::MAX})));
    assert!(!max.holds(json!({"id": u64::MAX - 1})));
    assert!(!max.holds(json!({"id": 18_446_744_073_709_551_616.0_f64})));
    assert!(!big.holds(json!({"id": 9_007_199_254_740_992.0_f64})));
    let two53 = Rule::new(json!({"claim": {"name": "id", "equals": 9_007_199_254_740_992_u64}}));
    assert!(two53.holds(json!({"id": 9_007_199_254_740_992.0_f64})));
    let fraction = Rule::new(json!({"claim": {"name": "n", "equals": 2.5}}));
    assert!(!fraction.holds(json!({"n": 2})));
    assert!(!fraction.holds(json!({"n": 3})));
    // Arrays compare element by element, by the same rule.
    let list = Rule::new(json!({"claim": {"name": "l", "equals": [1]}}));
    assert!(list.holds(json!({"l": [1.0]})));
    assert!(!list.holds(json!({"l": [1.5]})));
    assert!(!list.holds(json!({"l": [1, 1]})));
}

// === null among the listed values ===

#[test]
fn one_of_with_null_holds_for_a_null_claim() {
    let r = Rule::new(json!({"claim": {"name": "org", "one_of": [null, "acme"]}}));
    assert!(r.holds(json!({"org": null})), "null is listed");
    assert!(r.holds(json!({"org": "acme"})));
    assert!(!r.holds(json!({"org": "globex"})));
    assert!(!r.holds(json!({})), "a missing claim is not null");
    // Null is comparable with anything: another type is plainly not listed, not undecided.
    let f = r.claims(json!({"org": 7})).unwrap_err();
    assert!(!f.wrong_type, "{f:?}");
    // Without null in the list, a null claim reads as absent: false.
    let no_null = Rule::new(json!({"claim": {"name": "org", "one_of": ["acme", 1]}}));
    let f = no_null.claims(json!({"org": null})).unwrap_err();
    assert!(!f.wrong_type, "{f:?}");
}

#[test]
fn not_one_of_with_null_refuses_a_null_claim() {
    // `not` of a wrong answer is an allow: a null claim must be found in the list.
    let r = Rule::new(json!({"not": {"claim": {"name": "org", "one_of": [null, "acme"]}}}));
    assert!(!r.holds(json!({"org": null})), "null is listed: refused");
    assert!(!r.holds(json!({"org": "acme"})));
    assert!(r.holds(json!({"org": "globex"})));
    assert!(
        r.holds(json!({"org": 7})),
        "a number is neither null nor acme"
    );
    assert!(r.holds(json!({})), "a missing claim is not null");
    let f = r.claims(json!({"org": null})).unwrap_err();
    assert!(!f.wrong_type && !f.insufficient_scope, "{f:?}");
}

// === fractional numbers ===

#[test]
fn fractional_numbers_compare_by_value() {
    let r = Rule::new(json!({"claim": {"name": "score", "equals": 2.5}}));
    assert!(r.holds(json!({"score": 2.5})));
    assert!(r.holds(json!({"score": 2.50})));
    assert!(!r.holds(json!({"score": 2.4})));
    assert!(!r.holds(json!({"score": -2.5})));
    let one_of = Rule::new(json!({"claim": {"name": "score", "one_of": [0.5, 1.5]}}));
    assert!(one_of.holds(json!({"score": 1.5})));
    assert!(!one_of.holds(json!({"score": 1.25})));
}

// === aud: a string is a one-element array (RFC 7519 §4.1.3) ===

#[test]
fn aud_contains_finds_a_single_string_audience_too() {
    let r = Rule::new(json!({"claim": {"name": "aud", "contains": "orders-api"}}));
    assert!(
        r.holds(json!({"aud": "orders-api"})),
        "a string is a one-element array"
    );
    assert!(r.holds(json!({"aud": ["billing", "orders-api"]})));
    assert!(!r.holds(json!({"aud": "billing"})));
    assert!(!r.holds(json!({"aud": ["billing"]})));
    assert!(!r.holds(json!({})));
    // `not` of a string audience is decided, not undecided: it holds for another one.
    let not = Rule::new(json!({"not": {"claim": {"name": "aud", "contains": "orders-api"}}}));
    assert!(not.holds(json!({"aud": "billing"})));
    assert!(!not.holds(json!({"aud": "orders-api"})));
    // Only the registered claim itself: another claim keeps JSON's types.
    let other = Rule::new(json!({"claim": {"name": "groups", "contains": "ops"}}));
    assert!(
        other
            .claims(json!({"groups": "ops"}))
            .expect_err("a string is not a list")
            .wrong_type
    );
    let nested = Rule::new(json!({"claim": {"name": "ext.aud", "contains": "ops"}}));
    assert!(!nested.holds(json!({"ext": {"aud": "ops"}})));
}

#[test]
fn aud_equals_and_one_of_compare_audience_lists() {
    let one = Rule::new(json!({"claim": {"name": "aud", "equals": "orders-api"}}));
    assert!(one.holds(json!({"aud": "orders-api"})));
    assert!(
        one.holds(json!({"aud": ["orders-api"]})),
        "the same one audience"
    );
    assert!(
        !one.holds(json!({"aud": ["orders-api", "billing"]})),
        "not only orders-api"
    );
    let list = Rule::new(json!({"claim": {"name": "aud", "equals": ["orders-api"]}}));
    assert!(list.holds(json!({"aud": "orders-api"})));
    assert!(!list.holds(json!({"aud": "billing"})));
    let any = Rule::new(json!({"claim": {"name": "aud", "one_of": ["orders-api", "billing"]}}));
    assert!(any.holds(json!({"aud": ["billing"]})));
    assert!(any.holds(json!({"aud": "orders-api"})));
    assert!(
        !any.holds(json!({"aud": ["orders-api", "billing"]})),
        "two audiences are neither one"
    );
    let n = Rule::new(json!({"claim": {"name": "aud", "equals": 42}}));
    assert!(
        n.claims(json!({"aud": "orders-api"}))
            .expect_err("not a number")
            .wrong_type
    );
    let numbers = Rule::new(json!({"claim": {"name": "aud", "one_of": [1, 2]}}));
    assert!(
        numbers
            .claims(json!({"aud": "orders-api"}))
            .expect_err("no audience list")
            .wrong_type,
        "no listed value can equal an audience list: undecided"
    );
    let mixed = Rule::new(json!({"claim": {"name": "aud", "one_of": [1, "orders-api"]}}));
    assert!(mixed.holds(json!({"aud": "orders-api"})));
}

#[test]
fn aud_matches_any_audience_and_compares_one_with_params() {
    let m = Rule::new(json!({"claim": {"name": "aud", "matches": "orders-.*"}}));
    assert!(m.holds(json!({"aud": "orders-api"})));
    assert!(m.holds(json!({"aud": ["billing", "orders-api"]})));
    assert!(!m.holds(json!({"aud": ["billing"]})));
    let p = Rule::new(json!({"claim": {"name": "aud", "equals_param": "tenant"}}));
    let input = get("/tenants/acme/x");
    assert!(
        p.eval(&with_claims(json!({"aud": ["acme"]})), &input)
            .is_ok()
    );
    assert!(p.eval(&with_claims(json!({"aud": "acme"})), &input).is_ok());
    assert!(
        p.eval(&with_claims(json!({"aud": ["acme", "globex"]})), &input)
            .is_err()
    );
}
