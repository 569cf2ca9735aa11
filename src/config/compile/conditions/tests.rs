//! Conditions compiled from YAML: what a bad `require` is told, at its config path and
//! line, and the bounds the compiler holds conditions to.

use serde_json::{Value, json};

use crate::authz::condition::tests::{Rule, config_with, get, load, with_roles};
use crate::config::ConfigError;

// === harness (authz's, plus the compile errors) ===

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
