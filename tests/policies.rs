//! `ward test` through the real binary: every example policy (`examples/quickstart.yaml`
//! and those under `examples/policies/`) passes its cases file, a cases file with wrong
//! expectations fails with exit 1 and the differences, and unusable inputs exit 2 with
//! their path and line.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::bin::{run, text, ward};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `ward test --config CONFIG CASES` from the repository root.
fn ward_test(config: &Path, cases: &Path) -> Output {
    let config = config.to_str().expect("a UTF-8 config path");
    let cases = cases.to_str().expect("a UTF-8 cases path");
    run(ward(root(), &["test", "--config", config, cases]))
}

/// Every `NAME.cases.yaml` in `examples/` and `examples/policies/`, with its
/// `NAME.yaml`.
fn example_suites() -> Vec<(PathBuf, PathBuf)> {
    let mut suites: Vec<(PathBuf, PathBuf)> = ["examples", "examples/policies"]
        .into_iter()
        .flat_map(|dir| {
            let dir = root().join(dir);
            std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .map(|e| e.expect("directory entry").path())
                .filter_map(move |cases| {
                    let name = cases
                        .file_name()?
                        .to_str()?
                        .strip_suffix(".cases.yaml")?
                        .to_owned();
                    Some((dir.join(format!("{name}.yaml")), cases))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    suites.sort();
    suites
}

#[test]
fn every_example_policy_passes_its_cases() {
    let suites = example_suites();
    let names: Vec<String> = suites
        .iter()
        .map(|(c, _)| c.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in [
        "auth0",
        "entra",
        "google",
        "keycloak",
        "okta",
        "quickstart",
        "shadow",
        "stepup",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "no {expected} example in {names:?}"
        );
    }
    for (config, cases) in &suites {
        assert!(
            config.exists(),
            "{} has no config {}",
            cases.display(),
            config.display()
        );
        let out = ward_test(config, cases);
        let stdout = text(&out.stdout);
        let context = format!("{}\n{stdout}{}", cases.display(), text(&out.stderr));
        assert_eq!(out.status.code(), Some(0), "{context}");
        let ok = stdout.lines().filter(|l| l.starts_with("ok - ")).count();
        assert!(ok >= 5, "too few cases: {context}");
        assert!(!stdout.contains("FAIL"), "{context}");
        assert_eq!(
            stdout.lines().last(),
            Some(format!("{ok} passed, 0 failed").as_str()),
            "{context}"
        );
        assert!(!stdout.contains("eyJ"), "a token leaked: {context}");
    }
}

#[test]
fn every_example_exercises_denials() {
    // Each example documents what its policy refuses, not only what it lets through.
    for (_, cases) in example_suites() {
        let body = std::fs::read_to_string(&cases).expect("read cases");
        let denials =
            body.matches("decision: deny").count() + body.matches("decision: shadow_deny").count();
        assert!(
            denials >= 3,
            "{} has {denials} denial cases",
            cases.display()
        );
    }
}

#[test]
fn wrong_expectations_fail_with_their_differences() {
    let out = ward_test(
        Path::new("examples/policies/keycloak.yaml"),
        Path::new("tests/fixtures/policies/failing.cases.yaml"),
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    let expected = "\
ok - reader lists orders
FAIL - wrong tenant is wrongly expected to pass
    decision: expected allow, got deny
    status: expected 200, got 403
    headers.x-auth-subject: expected \"alice\", got not set
    got: deny 403 forbidden (route tenant-orders): condition not met: routes[2].require.all[1].claim: tenant equals_param tenant
ok - no token
FAIL - expired token is wrongly expected to be forbidden
    status: expected 403, got 401
    reason: expected \"forbidden\", got \"invalid_token\"
    got: deny 401 invalid_token (route tenant-orders): token expired
2 passed, 2 failed
";
    assert_eq!(stdout, expected);
    assert!(!stdout.contains("eyJ"), "a token leaked:\n{stdout}");
}

#[test]
fn a_broken_cases_file_exits_2_with_paths_and_lines() {
    let out = ward_test(
        Path::new("examples/policies/keycloak.yaml"),
        Path::new("tests/fixtures/policies/broken.cases.yaml"),
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty(), "no case runs: {}", text(&out.stdout));
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[0].starts_with(
            "tests/fixtures/policies/broken.cases.yaml:line 8: cases[0].expect.decision: unknown variant `alow`"
        ),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with(
            "tests/fixtures/policies/broken.cases.yaml:line 10: cases[1].request.verb: unknown field `verb`"
        ),
        "{stderr}"
    );
}

#[test]
fn a_missing_config_or_cases_file_exits_2() {
    for (config, cases, says) in [
        (
            "examples/policies/nope.yaml",
            "examples/policies/keycloak.cases.yaml",
            "examples/policies/nope.yaml:cannot read",
        ),
        (
            "examples/policies/keycloak.yaml",
            "examples/policies/nope.cases.yaml",
            "nope.cases.yaml:cannot read",
        ),
    ] {
        let out = ward_test(Path::new(config), Path::new(cases));
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{config} {cases}: {stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
}
