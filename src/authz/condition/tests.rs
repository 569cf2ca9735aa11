//! Conditions, compiled through the real config loader and evaluated against a request.
//!
//! Every condition here is written as the YAML a user would write (flow style), so the
//! tests also pin the paths that appear in denials and in config errors.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Value, json};

use super::{EvalCtx, Failure};
use crate::authn::claims::{Identity, Names};
use crate::authz::path;
use crate::config::{self, Config, ConfigError};
use crate::request::CheckInput;

// === harness ===

/// A config with one route, `/tenants/{tenant}/**`, that requires `require`.
fn config_with(require: &Value) -> Result<Config, Vec<ConfigError>> {
    let text = format!(
        "routes:\n  - name: r\n    match: {{ path: \"/tenants/{{tenant}}/**\" }}\n    require: {require}\n"
    );
    load(&text)
}

fn load(text: &str) -> Result<Config, Vec<ConfigError>> {
    let env: HashMap<String, String> = HashMap::new();
    config::load_str(text, Path::new("."), &env).map_err(|e| e.0)
}

/// A compiled `require`, ready to evaluate.
struct Rule(Config);

impl Rule {
    fn new(require: Value) -> Self {
        match config_with(&require) {
            Ok(c) => Rule(c),
            Err(e) => panic!("{require} does not compile: {e:?}"),
        }
    }

    /// Evaluates against `id` and `input`, with the route's path parameters bound.
    fn eval(&self, id: &Identity, input: &CheckInput<'_>) -> Result<(), Failure> {
        let route = &self.0.routes[0];
        let segments = path::normalize(input.path).expect("test paths normalise");
        let params = route.matcher.matches(input, &segments).unwrap_or_default();
        let ctx = EvalCtx {
            identity: id,
            params: &params,
            input,
        };
        route
            .require
            .as_ref()
            .expect("route has a require")
            .eval(&ctx)
    }

    /// Evaluates against a request to `/tenants/acme/orders` with these claims.
    fn claims(&self, claims: Value) -> Result<(), Failure> {
        self.eval(&with_claims(claims), &get("/tenants/acme/orders"))
    }

    fn holds(&self, claims: Value) -> bool {
        self.claims(claims).is_ok()
    }
}

fn get(path: &str) -> CheckInput<'_> {
    CheckInput {
        method: "GET",
        host: "api.example.com",
        path,
        ..Default::default()
    }
}

fn with_claims(claims: Value) -> Identity {
    Identity {
        provider: "test".into(),
        claims: claims.into(),
        ..Default::default()
    }
}

fn with_roles(roles: &[&str], scopes: &[&str]) -> Identity {
    Identity {
        provider: "test".into(),
        roles: roles.iter().copied().collect(),
        scopes: scopes.iter().copied().collect(),
        claims: json!({}).into(),
        ..Default::default()
    }
}

// === roles and scopes ===

#[test]
fn roles_any_needs_one_listed_role() {
    let r = Rule::new(json!({"roles_any": ["orders-reader", "admin"]}));
    let req = get("/tenants/acme/orders");
    assert!(r.eval(&with_roles(&["admin"], &[]), &req).is_ok());
    assert!(
        r.eval(&with_roles(&["x", "orders-reader"], &[]), &req)
            .is_ok()
    );
    let f = r
        .eval(&with_roles(&["orders-writer"], &[]), &req)
        .unwrap_err();
    assert!(
        !f.insufficient_scope,
        "a role failure is not a scope failure"
    );
    assert_eq!(
        &*f.condition,
        "routes[0].require.roles_any [orders-reader, admin]"
    );
    assert!(r.eval(&with_roles(&[], &[]), &req).is_err());
    // Roles compare exactly: no case folding, no prefix matching.
    assert!(
        r.eval(&with_roles(&["Admin", "admins"], &[]), &req)
            .is_err()
    );
}

#[test]
fn roles_all_needs_every_listed_role() {
    let r = Rule::new(json!({"roles_all": ["a", "b"]}));
    let req = get("/tenants/acme/orders");
    assert!(r.eval(&with_roles(&["b", "c", "a"], &[]), &req).is_ok());
    let f = r.eval(&with_roles(&["a"], &[]), &req).unwrap_err();
    assert!(!f.insufficient_scope);
    assert!(
        r.eval(&with_roles(&[], &["a", "b"]), &req).is_err(),
        "scopes are not roles"
    );
}

#[test]
fn scope_failures_are_insufficient_scope() {
    let any = Rule::new(json!({"scopes_any": ["orders.read", "orders.write"]}));
    let all = Rule::new(json!({"scopes_all": ["orders.read", "orders.write"]}));
    let req = get("/tenants/acme/orders");
    assert!(any.eval(&with_roles(&[], &["orders.write"]), &req).is_ok());
    assert!(
        all.eval(&with_roles(&[], &["orders.write", "orders.read"]), &req)
            .is_ok()
    );

    let f = any.eval(&with_roles(&[], &["profile"]), &req).unwrap_err();
    assert!(f.insufficient_scope);
    let f = all
        .eval(&with_roles(&[], &["orders.read"]), &req)
        .unwrap_err();
    assert!(f.insufficient_scope);
    assert_eq!(
        &*f.condition,
        "routes[0].require.scopes_all [orders.read, orders.write]"
    );
    assert!(
        any.eval(&with_roles(&["orders.read"], &[]), &req).is_err(),
        "roles are not scopes"
    );
}

#[test]
fn anonymous_identity_has_no_roles_and_no_claims() {
    let req = get("/tenants/acme/orders");
    let anon = Identity::default();
    assert!(
        Rule::new(json!({"roles_any": ["admin"]}))
            .eval(&anon, &req)
            .is_err()
    );
    assert!(
        Rule::new(json!({"scopes_any": ["a"]}))
            .eval(&anon, &req)
            .is_err()
    );
    let absent = Rule::new(json!({"claim": {"name": "sub", "present": false}}));
    assert!(absent.eval(&anon, &req).is_ok());
    let present = Rule::new(json!({"claim": {"name": "sub", "present": true}}));
    assert!(present.eval(&anon, &req).is_err());
}

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
fn matches_expressions_are_bounded_in_size() {
    // Matching is linear in the claim, times the size of the compiled expression: a
    // counted repetition of a Unicode class compiles to megabytes, and is refused at
    // load rather than slowing every check.
    for huge in ["\\w{100}{10}", "[\\w.+-]{1,64}@[\\w.-]{1,255}"] {
        let (path, msg) = error_of(json!({"claim": {"name": "role", "matches": huge}}));
        assert_eq!(path, "routes[0].require.claim.matches");
        assert!(msg.contains("size limit"), "{msg}");
    }
    // Everyday expressions are far below the limit.
    let r = Rule::new(
        json!({"claim": {"name": "email", "matches": "[a-z0-9.+-]{1,64}@[a-z0-9.-]{1,255}"}}),
    );
    assert!(r.holds(json!({"email": "alice@example.com"})));
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

// === source_principals, methods ===

/// A request to `/tenants/acme/orders` from the peer `principal`.
fn from(principal: &str) -> CheckInput<'_> {
    CheckInput {
        source_principal: principal,
        ..get("/tenants/acme/orders")
    }
}

/// Billing's service accounts, and the `gateway` account of any namespace.
fn billing_or_gateways() -> Rule {
    Rule::new(json!({"source_principals": [
        "spiffe://cluster.local/ns/billing/sa/*",
        "spiffe://cluster.local/ns/*/sa/gateway",
    ]}))
}

#[test]
fn source_principal_globs_match_one_segment() {
    let r = billing_or_gateways();
    let id = Identity::default();
    for allowed in [
        "spiffe://cluster.local/ns/billing/sa/batch",
        "spiffe://cluster.local/ns/edge/sa/gateway",
    ] {
        assert!(r.eval(&id, &from(allowed)).is_ok(), "{allowed}");
    }
    for denied in [
        "spiffe://cluster.local/ns/billing/sa/batch/extra",
        "spiffe://cluster.local/ns/billing/sa",
        "spiffe://cluster.local/ns/shop/sa/batch",
        "spiffe://cluster.local/ns/a/b/sa/gateway",
        "spiffe://cluster.local/ns/edge/sa/gateway2",
        "spiffe://evil.local/ns/billing/sa/batch",
        "xspiffe://cluster.local/ns/billing/sa/batch",
        "",
    ] {
        let f = r.eval(&id, &from(denied)).unwrap_err();
        assert!(!f.insufficient_scope, "{denied}");
    }
}

#[test]
fn source_principal_glob_needs_a_non_empty_segment() {
    // SPIFFE IDs have no empty segments; `sa/*` means "some service account".
    let r = billing_or_gateways();
    for denied in [
        "spiffe://cluster.local/ns/billing/sa/",
        "spiffe://cluster.local/ns//sa/gateway",
    ] {
        assert!(
            r.eval(&Identity::default(), &from(denied)).is_err(),
            "{denied}"
        );
    }
}

#[test]
fn source_principal_without_glob_is_exact() {
    let r = Rule::new(json!({"source_principals": ["spiffe://cluster.local/ns/a/sa/b"]}));
    for (principal, allowed) in [
        ("spiffe://cluster.local/ns/a/sa/b", true),
        ("spiffe://cluster.local/ns/a/sa/bb", false),
        ("spiffe://cluster.local/ns/a/sa", false),
    ] {
        let got = r.eval(&Identity::default(), &from(principal));
        assert_eq!(got.is_ok(), allowed, "{principal}");
    }
}

#[test]
fn source_principal_glob_stars_are_segment_local() {
    // Pins what `*` means: one or more characters, never `/`; several may share a
    // segment; anything else is literal.
    for (pattern, principal, want) in [
        ("ns/*/sa/*-*", "ns/a/sa/b-c", true),
        ("ns/*/sa/*-*", "ns/a/sa/b-", false),
        ("ns/*/sa/*-*", "ns/a/sa/-c", false),
        ("ns/*/sa/*-*", "ns/a/sa/b-c-d", true),
        ("ns/*/sa/*-*", "ns/a/sa/b/-c", false),
        ("ns/*", "ns/a/b", false),
        ("*", "a/b", false),
        ("*", "é", true),
        ("**", "é", false),
        ("**", "éa", true),
        ("a*b*c", "axbyc", true),
        ("a*b*c", "abbbc", true),
        ("a*b*c", "abbc", false),
        ("a*/*c", "ab/bc", true),
        ("a*/*c", "a/bc", false),
        ("*.svc", "a.svc", true),
        ("*.svc", "a-svc", false),
        ("a?b", "axb", false),
    ] {
        let g = super::Glob::new(pattern);
        assert_eq!(g.matches(principal), want, "{pattern} on {principal}");
    }
}

/// The plain recursive definition of a glob match: every way to place each `*`.
/// Exponential, so only for checking the matcher on small inputs.
fn glob_reference(p: &[char], s: &[char]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some(('*', rest)) => (1..=s.len())
            .take_while(|&i| s[i - 1] != '/')
            .any(|i| glob_reference(rest, &s[i..])),
        Some((c, rest)) => s.first() == Some(c) && glob_reference(rest, &s[1..]),
    }
}

#[test]
fn source_principal_globs_agree_with_the_recursive_definition() {
    // xorshift: the same pairs on every run.
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let alphabet = ['a', 'b', '-', '/', 'é'];
    let (mut checked, mut matched) = (0, 0);
    for _ in 0..100_000 {
        let pattern: String = (0..next(8))
            .map(|_| match next(7) {
                0 | 1 => '*',
                i => alphabet[i - 2],
            })
            .collect();
        // Half the inputs fill in the pattern's stars (with 0 to 3 characters, `/`
        // among them), so that matches are common; the rest are random.
        let input: String = if next(2) == 0 {
            pattern
                .chars()
                .flat_map(|c| match c {
                    '*' => (0..next(4)).map(|_| alphabet[next(5)]).collect::<Vec<_>>(),
                    c => vec![c],
                })
                .collect()
        } else {
            (0..next(10)).map(|_| alphabet[next(5)]).collect()
        };
        let p: Vec<char> = pattern.chars().collect();
        let s: Vec<char> = input.chars().collect();
        let want = glob_reference(&p, &s);
        assert_eq!(
            super::Glob::new(&pattern).matches(&input),
            want,
            "{pattern:?} on {input:?}"
        );
        checked += 1;
        matched += usize::from(want);
    }
    assert!(matched > checked / 10, "{matched} of {checked}");
}

/// The matcher's work on one principal, in steps.
fn glob_steps(pattern: &str, principal: &str) -> (bool, u64) {
    let g = super::Glob::new(pattern);
    super::GLOB_STEPS.with(|c| c.set(0));
    let hit = g.matches(principal);
    (hit, super::GLOB_STEPS.with(std::cell::Cell::get))
}

#[test]
fn source_principal_globs_take_linear_steps() {
    // Each case fails only at its end, after a backtracking matcher has tried every
    // placement of every `*`: 120 characters took a second of CPU, 250 took 16.
    let cases = |n: usize| {
        let dashes = "a-".repeat(n / 2);
        let many_a = "a".repeat(n);
        [
            (
                "spiffe://cluster.local/ns/*/sa/*-*-*-*".to_string(),
                format!("spiffe://cluster.local/ns/default/sa/{dashes}/x"),
            ),
            (
                "spiffe://cluster.local/ns/*/sa/*-*-*-*".to_string(),
                format!("spiffe://cluster.local/ns/default/sa/{dashes}/"),
            ),
            ("*a*a*a*a*a*b".to_string(), many_a.clone()),
            ("*a*a*a*a*a*/b".to_string(), format!("{many_a}/a")),
            (format!("*{}*b", "a".repeat(20)), many_a.clone()),
            ("*".repeat(40), many_a.clone()),
        ]
    };
    // Small inputs first, so a backtracking matcher fails here rather than never ending.
    for n in [200, 10_000] {
        for (pattern, principal) in cases(n) {
            let (hit, steps) = glob_steps(&pattern, &principal);
            assert!(!hit || pattern.starts_with("**"), "{pattern}");
            let budget = 4 * (pattern.len() + principal.len()) as u64;
            assert!(
                steps <= budget,
                "{pattern} on {} characters: {steps} steps, budget {budget}",
                principal.len()
            );
        }
    }
}

#[test]
fn methods_compare_case_insensitively() {
    let r = Rule::new(json!({"methods": ["get", "HEAD"]}));
    let id = Identity::default();
    let with = |m: &'static str| CheckInput {
        method: m,
        ..get("/tenants/acme/orders")
    };
    assert!(r.eval(&id, &with("GET")).is_ok());
    assert!(r.eval(&id, &with("head")).is_ok());
    assert!(r.eval(&id, &with("POST")).is_err());
    assert!(r.eval(&id, &with("")).is_err());
    assert!(r.eval(&id, &with("GETX")).is_err());
}

// === combinators ===

#[test]
fn all_reports_its_first_failing_member() {
    let r = Rule::new(json!({"all": [
        {"roles_any": ["orders-reader"]},
        {"claim": {"name": "tenant", "equals_param": "tenant"}},
    ]}));
    let req = get("/tenants/acme/orders");
    let mut id = with_roles(&["orders-reader"], &[]);
    id.claims = json!({"tenant": "acme"}).into();
    assert!(r.eval(&id, &req).is_ok());

    id.claims = json!({"tenant": "globex"}).into();
    let f = r.eval(&id, &req).unwrap_err();
    assert!(
        f.condition
            .starts_with("routes[0].require.all[1].claim: tenant equals_param tenant"),
        "{}",
        f.condition
    );

    id.roles = Names::default();
    let f = r.eval(&id, &req).unwrap_err();
    assert!(
        f.condition
            .starts_with("routes[0].require.all[0].roles_any"),
        "{}",
        f.condition
    );
}

#[test]
fn any_passes_on_one_branch_and_reports_itself() {
    let r = Rule::new(json!({"any": [
        {"roles_any": ["admin"]},
        {"claim": {"name": "tier", "equals": "gold"}},
    ]}));
    let req = get("/tenants/acme/orders");
    assert!(r.eval(&with_roles(&["admin"], &[]), &req).is_ok());
    assert!(r.holds(json!({"tier": "gold"})));
    let f = r.claims(json!({"tier": "silver"})).unwrap_err();
    assert_eq!(&*f.condition, "routes[0].require.any (2 conditions)");
    assert!(!f.insufficient_scope);
}

#[test]
fn any_is_a_scope_failure_only_when_every_branch_was() {
    let req = get("/tenants/acme/orders");
    let nobody = with_roles(&[], &[]);
    let scopes = Rule::new(json!({"any": [
        {"scopes_any": ["a"]},
        {"scopes_all": ["b", "c"]},
        {"all": [{"scopes_any": ["d"]}]},
    ]}));
    assert!(scopes.eval(&nobody, &req).unwrap_err().insufficient_scope);

    let mixed = Rule::new(json!({"any": [
        {"scopes_any": ["a"]},
        {"roles_any": ["admin"]},
    ]}));
    assert!(!mixed.eval(&nobody, &req).unwrap_err().insufficient_scope);

    // `all` passes the failing member's flag through.
    let all = Rule::new(json!({"all": [{"roles_any": ["r"]}, {"scopes_any": ["s"]}]}));
    assert!(!all.eval(&nobody, &req).unwrap_err().insufficient_scope);
    assert!(
        all.eval(&with_roles(&["r"], &[]), &req)
            .unwrap_err()
            .insufficient_scope
    );
}

#[test]
fn not_inverts_and_is_never_a_scope_failure() {
    let r = Rule::new(json!({"not": {"scopes_any": ["guest"]}}));
    let req = get("/tenants/acme/orders");
    assert!(r.eval(&with_roles(&[], &["orders.read"]), &req).is_ok());
    let f = r.eval(&with_roles(&[], &["guest"]), &req).unwrap_err();
    assert!(
        !f.insufficient_scope,
        "having a scope is never insufficient scope"
    );
    assert_eq!(
        &*f.condition,
        "routes[0].require.not (routes[0].require.not.scopes_any [guest])"
    );

    let twice = Rule::new(json!({"not": {"not": {"claim": {"name": "x", "equals": 1}}}}));
    assert!(twice.holds(json!({"x": 1})));
    assert!(!twice.holds(json!({"x": "1"})));

    // A claim of the wrong type fails its test and its `not` alike: never an allow.
    let banned = Rule::new(json!({"not": {"claim": {"name": "banned", "equals": true}}}));
    assert!(banned.holds(json!({"banned": false})));
    assert!(banned.holds(json!({})), "absent: not banned");
    assert!(
        banned.holds(json!({"banned": null})),
        "null reads as absent"
    );
    assert!(!banned.holds(json!({"banned": true})));
    for wrong in [json!("true"), json!(1), json!([true]), json!({"v": true})] {
        let claims = json!({"banned": wrong});
        assert!(!banned.holds(claims.clone()), "{claims}");
        let f = banned.eval(&with_claims(claims), &get("/x")).unwrap_err();
        assert!(f.wrong_type);
        assert_eq!(
            &*f.condition, "routes[0].require.not.claim: banned equals true",
            "the test that could not be decided is named"
        );
    }
    // Null is comparable with anything present: a string is plainly not null.
    let live = Rule::new(json!({"not": {"claim": {"name": "deleted_at", "equals": null}}}));
    assert!(live.holds(json!({"deleted_at": "2024-01-01"})));
    assert!(!live.holds(json!({"deleted_at": null})));
    assert!(live.holds(json!({})), "a missing claim is not null");
    let not_in = Rule::new(json!({"not": {"claim": {"name": "x", "one_of": [null, 1]}}}));
    assert!(
        not_in.holds(json!({"x": "a"})),
        "a string is neither null nor 1"
    );
    assert!(!not_in.holds(json!({"x": 1})));
    // A single group sent as a string, not a list.
    let suspended =
        Rule::new(json!({"not": {"claim": {"name": "groups", "contains": "suspended"}}}));
    assert!(suspended.holds(json!({"groups": ["staff"]})));
    assert!(!suspended.holds(json!({"groups": "suspended"})));
    assert!(!suspended.holds(json!({"groups": ["suspended"]})));
    // Wrong types anywhere under `not`: undecided through `any` and `all` too, unless
    // another branch decides.
    let any = Rule::new(json!({"not": {"any": [
        {"claim": {"name": "banned", "equals": true}},
        {"claim": {"name": "tier", "equals": "free"}},
    ]}}));
    assert!(!any.holds(json!({"banned": "yes", "tier": "pro"})));
    assert!(
        !any.holds(json!({"banned": "yes", "tier": "free"})),
        "a true branch decides"
    );
    let all = Rule::new(json!({"not": {"all": [
        {"claim": {"name": "banned", "equals": true}},
        {"claim": {"name": "tier", "equals": "free"}},
    ]}}));
    assert!(
        all.holds(json!({"banned": "yes", "tier": "pro"})),
        "a false branch decides"
    );
    assert!(!all.holds(json!({"banned": "yes", "tier": "free"})));
}

#[test]
fn nested_combinators_evaluate_as_written() {
    // Tenant members read; admins of the tenant write, but only with MFA.
    let r = Rule::new(json!({"all": [
        {"claim": {"name": "tenant", "equals_param": "tenant"}},
        {"any": [
            {"methods": ["GET", "HEAD"]},
            {"all": [
                {"roles_any": ["admin"]},
                {"claim": {"name": "amr", "contains": "mfa"}},
                {"not": {"claim": {"name": "suspended", "equals": true}}},
            ]},
        ]},
    ]}));
    let id = |roles: &[&str], claims: Value| Identity {
        claims: claims.into(),
        ..with_roles(roles, &[])
    };
    let read = get("/tenants/acme/orders");
    let write = CheckInput {
        method: "POST",
        ..get("/tenants/acme/orders")
    };
    let member = json!({"tenant": "acme", "amr": ["pwd"]});
    let mfa = json!({"tenant": "acme", "amr": ["pwd", "mfa"]});
    assert!(r.eval(&id(&[], member.clone()), &read).is_ok());
    assert!(r.eval(&id(&[], member.clone()), &write).is_err());
    assert!(r.eval(&id(&["admin"], member), &write).is_err());
    assert!(r.eval(&id(&["admin"], mfa.clone()), &write).is_ok());
    let mut suspended = mfa.clone();
    suspended["suspended"] = json!(true);
    assert!(r.eval(&id(&["admin"], suspended), &write).is_err());
    let mut elsewhere = mfa;
    elsewhere["tenant"] = json!("globex");
    let f = r.eval(&id(&["admin"], elsewhere), &read).unwrap_err();
    assert!(
        f.condition.starts_with("routes[0].require.all[0].claim"),
        "{}",
        f.condition
    );
}

#[test]
fn descriptions_never_show_claim_values() {
    let r = Rule::new(json!({"claim": {"name": "tenant", "equals": "acme"}}));
    let f = r
        .claims(json!({"tenant": "secret-tenant-value"}))
        .unwrap_err();
    assert!(
        !f.condition.contains("secret-tenant-value"),
        "{}",
        f.condition
    );
    assert!(
        f.condition
            .starts_with("routes[0].require.claim: tenant equals acme"),
        "{}",
        f.condition
    );
}

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

// === compile errors ===

/// Compiles `require` and returns its errors (the test fails if it compiles).
fn errors_of(require: Value) -> Vec<ConfigError> {
    match config_with(&require) {
        Ok(_) => panic!("{require} compiled"),
        Err(e) => e,
    }
}

/// The single error of `require`, as (path, message).
fn error_of(require: Value) -> (String, String) {
    let errs = errors_of(require.clone());
    assert_eq!(errs.len(), 1, "{require}: {errs:?}");
    (errs[0].path.clone(), errs[0].message.clone())
}

#[test]
fn invalid_regex_is_a_compile_error() {
    let (path, msg) = error_of(json!({"claim": {"name": "email", "matches": "a("}}));
    assert_eq!(path, "routes[0].require.claim.matches");
    assert!(msg.contains("invalid regular expression"), "{msg}");
    let (path, _) = error_of(json!({"claim": {"name": "email", "matches": 5}}));
    assert_eq!(path, "routes[0].require.claim.matches");
}

#[test]
fn unknown_claim_operator_is_a_compile_error() {
    let (path, msg) = error_of(json!({"claim": {"name": "tenant", "equal": "acme"}}));
    assert_eq!(path, "routes[0].require.claim.equal");
    assert!(msg.contains("unknown claim test `equal`"), "{msg}");
    assert!(
        msg.contains("equals_header"),
        "lists the valid tests: {msg}"
    );
}

#[test]
fn a_claim_has_exactly_one_operator() {
    let (path, msg) = error_of(json!({"claim": {"name": "t", "equals": "a", "present": true}}));
    assert_eq!(path, "routes[0].require.claim");
    assert!(msg.contains("exactly one test"), "{msg}");
    let (path, _) = error_of(json!({"claim": {"name": "t"}}));
    assert_eq!(path, "routes[0].require.claim");
    let (path, _) = error_of(json!({"claim": {"equals": "a"}}));
    assert_eq!(path, "routes[0].require.claim.name");
    let (path, _) = error_of(json!({"claim": {"name": "a..b", "equals": "a"}}));
    assert_eq!(path, "routes[0].require.claim.name");
    let (path, _) = error_of(json!({"claim": {"name": ["a", 1], "equals": "a"}}));
    assert_eq!(path, "routes[0].require.claim.name");
    let (path, _) = error_of(json!({"claim": "tenant"}));
    assert_eq!(path, "routes[0].require.claim");
}

#[test]
fn claim_operator_arguments_are_checked() {
    let (path, _) = error_of(json!({"claim": {"name": "t", "present": "yes"}}));
    assert_eq!(path, "routes[0].require.claim.present");
    let (path, _) = error_of(json!({"claim": {"name": "t", "one_of": []}}));
    assert_eq!(path, "routes[0].require.claim.one_of");
    let (path, _) = error_of(json!({"claim": {"name": "t", "one_of": "a"}}));
    assert_eq!(path, "routes[0].require.claim.one_of");
    let (path, _) = error_of(json!({"claim": {"name": "t", "equals_header": "x tenant"}}));
    assert_eq!(path, "routes[0].require.claim.equals_header");
    let (path, _) = error_of(json!({"claim": {"name": "t", "equals_param": 1}}));
    assert_eq!(path, "routes[0].require.claim.equals_param");
}

#[test]
fn equals_param_must_name_a_captured_parameter() {
    let (path, msg) = error_of(json!({"claim": {"name": "org", "equals_param": "org"}}));
    assert_eq!(path, "routes[0].require.claim.equals_param");
    assert!(msg.contains("binds no parameter `{org}`"), "{msg}");

    // A path_prefix binds nothing.
    let errs = load(
        "routes:\n  - name: r\n    match: { path_prefix: /tenants }\n    require: { claim: { name: t, equals_param: tenant } }\n",
    )
    .unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].path, "routes[0].require.claim.equals_param");
}

#[test]
fn all_and_any_need_members() {
    for key in ["all", "any"] {
        let (path, msg) = error_of(json!({ key: [] }));
        assert_eq!(path, format!("routes[0].require.{key}"));
        assert!(msg.contains("non-empty list"), "{msg}");
        let (path, _) = error_of(json!({ key: {"roles_any": ["a"]} }));
        assert_eq!(
            path,
            format!("routes[0].require.{key}"),
            "a mapping is not a list"
        );
    }
}

#[test]
fn a_condition_is_a_mapping_with_one_key() {
    let (path, msg) = error_of(json!({"roles_any": ["a"], "scopes_any": ["b"]}));
    assert_eq!(path, "routes[0].require");
    assert!(msg.contains("exactly one key"), "{msg}");
    let (path, _) = error_of(json!({"all": [{"roles_any": ["a"]}, {}]}));
    assert_eq!(path, "routes[0].require.all[1]");
    let (path, _) = error_of(json!({"any": [{"roles_any": ["a"]}, ["roles_any"]]}));
    assert_eq!(path, "routes[0].require.any[1]");
    let (path, msg) = error_of(json!({"role_any": ["a"]}));
    assert_eq!(path, "routes[0].require.role_any");
    assert!(msg.contains("unknown condition `role_any`"), "{msg}");
}

#[test]
fn list_conditions_need_non_empty_string_lists() {
    for key in [
        "roles_any",
        "roles_all",
        "scopes_any",
        "scopes_all",
        "source_principals",
        "methods",
    ] {
        let (path, _) = error_of(json!({ key: [] }));
        assert_eq!(path, format!("routes[0].require.{key}"));
        let (path, _) = error_of(json!({ key: "a" }));
        assert_eq!(path, format!("routes[0].require.{key}"));
        let (path, _) = error_of(json!({ key: ["a", 1] }));
        assert_eq!(path, format!("routes[0].require.{key}"));
    }
    let (path, _) = error_of(json!({"methods": ["GET", "GE T"]}));
    assert_eq!(path, "routes[0].require.methods[1]");
}

fn nested_nots(depth: usize) -> Value {
    (0..depth).fold(
        json!({"roles_any": ["a"]}),
        |inner, _| json!({ "not": inner }),
    )
}

#[test]
fn nesting_is_limited() {
    // 32 levels under the root compile; the 33rd is refused, at its own path.
    let ok = Rule::new(nested_nots(32));
    assert!(
        ok.eval(&with_roles(&["a"], &[]), &get("/tenants/acme/orders"))
            .is_ok()
    );

    let (path, msg) = error_of(nested_nots(33));
    assert_eq!(path, format!("routes[0].require{}", ".not".repeat(33)));
    assert!(msg.contains("deeper than 32"), "{msg}");

    let deep_all = (0..40).fold(
        json!({"roles_any": ["a"]}),
        |inner, _| json!({"all": [inner]}),
    );
    let (path, _) = error_of(deep_all);
    assert_eq!(path, format!("routes[0].require{}", ".all[0]".repeat(33)));
}

#[test]
fn every_error_is_reported_with_its_line() {
    let text = "\
routes:
  - name: r
    match: { path: \"/tenants/{tenant}/**\" }
    require:
      all:
        - claim: { name: email, matches: \"a(\" }
        - claim:
            name: org
            equals_param: org
        - any: []
        - claim: { name: t, equals: a, one_of: [a] }
        - roles_any: [a]
          scopes_any: [b]
";
    let errs = load(text).unwrap_err();
    let got: Vec<(&str, Option<usize>)> = errs.iter().map(|e| (e.path.as_str(), e.line)).collect();
    assert_eq!(
        got,
        vec![
            ("routes[0].require.all[0].claim.matches", Some(6)),
            ("routes[0].require.all[1].claim.equals_param", Some(9)),
            ("routes[0].require.all[2].any", Some(10)),
            ("routes[0].require.all[3].claim", Some(11)),
            ("routes[0].require.all[4]", Some(12)),
        ]
    );
}

#[test]
fn matches_patterns_cannot_escape_their_anchors() {
    // `adm)|(.*` is not a valid expression on its own; spliced into `^(?:{src})$` it would
    // read `^(?:adm)|(.*)$`, two alternatives anchored on one side each: refused.
    for escape in ["adm)|(.*", ".*)|(adm", "a)(b"] {
        let errs = errors_of(json!({"claim": {"name": "role", "matches": escape}}));
        assert_eq!(errs.len(), 1, "{escape}: {errs:?}");
        assert_eq!(errs[0].path, "routes[0].require.claim.matches", "{escape}");
    }
    // Balanced groups are fine, and stay anchored.
    let r = Rule::new(json!({"claim": {"name": "role", "matches": "(a|b)c"}}));
    assert!(r.holds(json!({"role": "bc"})));
    assert!(!r.holds(json!({"role": "bcx"})));
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
