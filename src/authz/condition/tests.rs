//! Conditions evaluated against a request.
//!
//! Every condition here is written as the YAML a user would write (flow style) and
//! compiled through the real config loader, so the tests also pin the paths that appear
//! in denials. What a bad condition is told is tested beside its compiler, in
//! `config::compile::conditions`, which shares this harness.

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
pub(crate) fn config_with(require: &Value) -> Result<Config, Vec<ConfigError>> {
    let text = format!(
        "routes:\n  - name: r\n    match: {{ path: \"/tenants/{{tenant}}/**\" }}\n    require: {require}\n"
    );
    load(&text)
}

pub(crate) fn load(text: &str) -> Result<Config, Vec<ConfigError>> {
    let env: HashMap<String, String> = HashMap::new();
    config::load_str(text, Path::new("."), &env).map_err(|e| e.0)
}

/// A compiled `require`, ready to evaluate.
pub(crate) struct Rule(Config);

impl Rule {
    pub(crate) fn new(require: Value) -> Self {
        match config_with(&require) {
            Ok(c) => Rule(c),
            Err(e) => panic!("{require} does not compile: {e:?}"),
        }
    }

    /// Evaluates against `id` and `input`, with the route's path parameters bound.
    pub(crate) fn eval(&self, id: &Identity, input: &CheckInput<'_>) -> Result<(), Failure> {
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
    pub(crate) fn claims(&self, claims: Value) -> Result<(), Failure> {
        self.eval(&with_claims(claims), &get("/tenants/acme/orders"))
    }

    pub(crate) fn holds(&self, claims: Value) -> bool {
        self.claims(claims).is_ok()
    }
}

pub(crate) fn get(path: &str) -> CheckInput<'_> {
    CheckInput {
        method: "GET",
        host: "api.example.com",
        path,
        ..Default::default()
    }
}

pub(crate) fn with_claims(claims: Value) -> Identity {
    Identity {
        provider: "test".into(),
        claims: claims.into(),
        ..Default::default()
    }
}

pub(crate) fn with_roles(roles: &[&str], scopes: &[&str]) -> Identity {
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
fn any_passes_on_one_branch_and_reports_itself_with_its_branches() {
    let r = Rule::new(json!({"any": [
        {"roles_any": ["admin"]},
        {"claim": {"name": "tier", "equals": "gold"}},
    ]}));
    let req = get("/tenants/acme/orders");
    assert!(r.eval(&with_roles(&["admin"], &[]), &req).is_ok());
    assert!(r.holds(json!({"tier": "gold"})));
    let f = r.claims(json!({"tier": "silver"})).unwrap_err();
    assert_eq!(
        &*f.condition,
        "routes[0].require.any (2 conditions): no branch held: \
         routes[0].require.any[0].roles_any [admin]; routes[0].require.any[1].claim: tier equals gold"
    );
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

mod claims;
