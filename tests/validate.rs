//! `ward validate`: a broken config exits 1 and names the file, line and YAML path of
//! every error, all in one run; a valid one exits 0. Also where the config comes from:
//! `--config`, then `$WARD_CONFIG`, then `./ward.yaml`, and never a permissive default.
//!
//! Each bad config is a fixture in `tests/fixtures/bad-configs/`, run from that directory
//! so the messages hold short relative names. Errors are asserted as exact lines, except
//! serde's `expected one of ...` list after an unknown field, which grows with every new
//! config key: there the line is exact up to the unknown name and the list is checked to
//! hold the key that was probably meant.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::bin::{run, text, ward};
use common::each_case;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bad-configs")
}

fn validate_fixture(name: &str) -> Output {
    run(ward(&fixtures(), &["validate", "--config", name]))
}

/// One error line `ward validate` prints, after the file name.
enum Line {
    /// Exactly this.
    Is(&'static str),
    /// An unknown-field error: exactly `prefix` up to the field, then serde's list of
    /// known keys, which must include `meant`, then the guess: `meant`.
    UnknownField {
        prefix: &'static str,
        meant: &'static str,
    },
}

/// Exit 1, nothing on stdout, and exactly these error lines on stderr, each prefixed
/// with the file name.
fn assert_errors(name: &str, expected: &[Line]) {
    let out = validate_fixture(name);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{name}: stderr:\n{stderr}");
    assert_eq!(text(&out.stdout), "", "{name}");
    let lines: Vec<&str> = stderr.split_terminator('\n').collect();
    assert_eq!(lines.len(), expected.len(), "{name}: stderr:\n{stderr}");
    assert!(stderr.ends_with('\n'), "{name}: stderr:\n{stderr}");
    for (line, want) in lines.iter().zip(expected) {
        let line = line
            .strip_prefix(&format!("{name}:"))
            .unwrap_or_else(|| panic!("`{line}` does not start with `{name}:`"));
        match want {
            Line::Is(want) => assert_eq!(line, *want, "{name}"),
            Line::UnknownField { prefix, meant } => {
                let rest = line
                    .strip_prefix(prefix)
                    .unwrap_or_else(|| panic!("`{line}` does not start with `{prefix}`"));
                let list = rest
                    .strip_prefix(", expected one of ")
                    .unwrap_or_else(|| panic!("`{line}`: no list of known keys"));
                let guess = format!("; did you mean `{meant}`?");
                let list = list
                    .strip_suffix(&guess)
                    .unwrap_or_else(|| panic!("`{line}` does not end with `{guess}`"));
                assert!(
                    list.split(", ").any(|k| k == format!("`{meant}`")),
                    "`{line}` does not list `{meant}`"
                );
            }
        }
    }
}

// === one error per fixture ===

#[test]
fn each_bad_fixture_reports_exactly_its_errors() {
    use Line::{Is, UnknownField};
    each_case(
        [
            (
                // The typo is reported, and so is what it leaves missing.
                "unknown_top_level_key",
                (
                    "unknown-top-level-key.yaml",
                    &[
                        UnknownField {
                            prefix: "line 3: route: unknown field `route`",
                            meant: "routes",
                        },
                        Is(" routes: no routes: every request would be denied with no_route"),
                    ][..],
                ),
            ),
            (
                "unknown_keys_in_a_route_and_a_provider_are_both_reported",
                (
                    "unknown-key-route-and-provider.yaml",
                    &[
                        UnknownField {
                            prefix: "line 8: providers[0].jwt.audience: unknown field `audience`",
                            meant: "audiences",
                        },
                        UnknownField {
                            prefix: "line 13: routes[0].allow_anonymus: unknown field `allow_anonymus`",
                            meant: "allow_anonymous",
                        },
                    ],
                ),
            ),
            (
                // Nested mappings and several keys of one mapping: none hidden.
                "every_unknown_key_is_reported_with_its_guess",
                (
                    "unknown-keys-everywhere.yaml",
                    &[
                        UnknownField {
                            prefix: "line 3: loging: unknown field `loging`",
                            meant: "logging",
                        },
                        UnknownField {
                            prefix: "line 10: providers[0].jwt.leway: unknown field `leway`",
                            meant: "leeway",
                        },
                        UnknownField {
                            prefix: "line 11: providers[0].jwt.claims.role: unknown field `role`",
                            meant: "roles",
                        },
                        UnknownField {
                            prefix: "line 14: routes[0].match.method: unknown field `method`",
                            meant: "methods",
                        },
                        UnknownField {
                            prefix: "line 15: routes[0].provider: unknown field `provider`",
                            meant: "providers",
                        },
                        UnknownField {
                            prefix: "line 16: routes[0].requires: unknown field `requires`",
                            meant: "require",
                        },
                    ][..],
                ),
            ),
            (
                "http_listener_settings_name_their_path_and_line",
                (
                    "http-listener.yaml",
                    &[
                        Is(
                            "line 4: server.http_addr: `localhost-9003` is not a socket address like 0.0.0.0:9001",
                        ),
                        Is(
                            "line 5: server.http_max_header_bytes: must be between 8192 (8 KiB) and 1048576 (1 MiB); the value is in bytes",
                        ),
                    ][..],
                ),
            ),
            (
                "http_listener_on_another_listeners_port",
                (
                    "http-addr-taken.yaml",
                    &[Is(
                        "line 4: server.http_addr: `127.0.0.1:9002` is also server.admin_addr: each listener needs its own port",
                    )],
                ),
            ),
            (
                "bare_number_duration",
                (
                    "duration-bare-number.yaml",
                    &[Is(
                        "line 8: providers[0].jwt.leeway: invalid type: integer `30`, expected a duration string such as 30s or 5m",
                    )],
                ),
            ),
            (
                "unknown_duration_unit",
                (
                    "duration-bad-unit.yaml",
                    &[Is(
                        "line 8: providers[0].jwt.leeway: invalid duration `5x`: use a number with a unit, like 500ms, 30s, 5m, 1h",
                    )],
                ),
            ),
            (
                "two_key_sources",
                (
                    "two-key-sources.yaml",
                    &[Is(
                        "line 4: providers[0].jwt: exactly one key source is needed (jwks_uri, jwks_file, jwks or discovery: true); found 2",
                    )],
                ),
            ),
            (
                "key_fetch_intervals_under_a_second",
                (
                    "fetch-intervals-too-short.yaml",
                    &[
                        Is("line 9: providers[0].jwt.refresh_interval: must be at least 1s"),
                        Is(
                            "line 10: providers[0].jwt.min_refetch_interval: must be at least 1s (it bounds how often unknown kids make ward fetch keys)",
                        ),
                    ],
                ),
            ),
            (
                "route_names_an_unknown_provider",
                (
                    "unknown-provider.yaml",
                    &[Is(
                        "line 11: routes[0].providers[1]: no provider is named `partners`",
                    )],
                ),
            ),
            (
                "alg_none_is_refused",
                (
                    "alg-none.yaml",
                    &[Is(
                        "line 8: providers[0].jwt.algorithms[1]: `none` is not an accepted algorithm (RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA, Ed25519, HS256, HS384, HS512; `none` is never accepted)",
                    )],
                ),
            ),
            (
                "empty_audiences",
                (
                    "empty-audiences.yaml",
                    &[Is(
                        "line 6: providers[0].jwt.audiences: list at least one audience: a token is accepted only when its `aud` names one",
                    )],
                ),
            ),
            (
                "role_claims",
                (
                    "role-claims.yaml",
                    &[
                        Is(
                            "line 9: providers[0].jwt.claims.roles[1]: `realm_access.roles` is listed twice",
                        ),
                        Is(
                            r#"line 9: providers[0].jwt.claims.roles[2]: `resource_access["orders.api".roles` is not a claim path like `realm_access.roles` (a name holding a dot is written in brackets: `resource_access["orders.api"].roles`)"#,
                        ),
                        Is(
                            "line 10: providers[0].jwt.claims.scopes: list at least one claim path, such as `realm_access.roles`",
                        ),
                        Is(
                            "line 17: providers[1].jwt.claims.roles[1]: a claim path such as `realm_access.roles`",
                        ),
                        Is(
                            "line 18: providers[1].jwt.claims.scopes: a claim path such as `realm_access.roles`, or a list of them (their names are united)",
                        ),
                    ],
                ),
            ),
            (
                "shared_issuer_overlap",
                (
                    "shared-issuer-overlap.yaml",
                    &[Is(
                        "line 17: routes[0].providers[1]: `billing` and `orders` both trust issuer `https://sso.example.com/realms/shop` for audience `account`: a token for `account` would always be decided by `orders`; give each provider of one issuer its own audiences",
                    )],
                ),
            ),
            (
                "providers_condition",
                (
                    "providers-condition.yaml",
                    &[
                        Is(
                            "line 17: routes[0].require.any[0].providers[1]: `keycloak` is not one of the providers listed here (okta): the condition could never hold for it",
                        ),
                        Is(
                            "line 17: routes[0].require.any[1].providers: expected a non-empty list of strings",
                        ),
                    ],
                ),
            ),
            (
                "defaults",
                (
                    "defaults.yaml",
                    &[
                        Is(
                            "line 4: defaults.require.providers[0]: `okta` is not one of the providers listed here (corp): the condition could never hold for it",
                        ),
                        Is(
                            r#"line 15: routes[0].defaults: invalid type: string "no", expected a boolean"#,
                        ),
                    ],
                ),
            ),
            (
                "fallback_jwks",
                (
                    "fallback-jwks.yaml",
                    &[
                        Is(
                            "line 8: providers[0].jwt.jwks_fallback_file: cannot read no-such-file.json: No such file or directory (os error 2)",
                        ),
                        Is(
                            "line 15: providers[1].jwt.jwks_fallback_file: `jwks_fallback_file` applies to jwks_uri and discovery only",
                        ),
                    ],
                ),
            ),
            (
                "route_answers",
                (
                    "route-answers.yaml",
                    &[
                        Is(
                            "line 14: routes[0].deny.status: 302 is not a denial status (400 to 599; a login redirect is `on_unauthenticated`)",
                        ),
                        Is(
                            "line 15: routes[0].deny.headers.bad name: `bad name` is not a header name",
                        ),
                        Is(
                            "line 15: routes[0].deny.headers.x-ok: a header value is visible text without leading or trailing spaces",
                        ),
                        Is(
                            "line 16: routes[0].on_unauthenticated.redirect: `/login?rd={url}` is not an absolute http(s) URL (a template such as `https://login.example.com/?rd={url}`)",
                        ),
                    ],
                ),
            ),
            (
                "duplicate_yaml_key",
                (
                    "duplicate-key.yaml",
                    &[Is(
                        "line 6: invalid YAML: duplicate key `routes[0].providers`",
                    )],
                ),
            ),
            (
                "yaml_syntax_error",
                (
                    "yaml-syntax.yaml",
                    &[Is(
                        "line 5: invalid YAML: while parsing a flow mapping, did not find expected ',' or '}'",
                    )],
                ),
            ),
            (
                "unset_env_reference_is_an_error",
                (
                    "unset-env.yaml",
                    &[Is(
                        "line 5: providers[0].jwt.issuer: environment variable WARD_TEST_ISSUER is not set",
                    )],
                ),
            ),
            (
                "missing_jwks_file",
                (
                    "missing-jwks-file.yaml",
                    &[Is(
                        "line 7: providers[0].jwt.jwks_file: cannot read no-such-jwks.json: No such file or directory (os error 2)",
                    )],
                ),
            ),
            (
                "jwks_with_no_usable_key",
                (
                    "no-usable-keys.yaml",
                    &[Is(
                        "line 8: providers[0].jwt.jwks: the JWKS holds no usable signing key: keys[0]: `use` is not `sig`",
                    )],
                ),
            ),
            (
                "bad_path_pattern",
                (
                    "bad-path-pattern.yaml",
                    &[Is(
                        "line 4: routes[0].match.path: `{tenant`: `{name}`, `*` and `**` must each be a whole segment",
                    )],
                ),
            ),
            (
                "unknown_condition",
                (
                    "unknown-condition.yaml",
                    &[Is(
                        "line 15: routes[0].require.all[1].role_any: unknown condition `role_any` (one of roles_any, roles_all, scopes_any, scopes_all, claim, providers, source_principals, methods, all, any, not)",
                    )],
                ),
            ),
            (
                "equals_param_names_an_unbound_parameter",
                (
                    "equals-param-unbound.yaml",
                    &[Is(
                        "line 13: routes[0].require.claim.equals_param: the route's `match.path` binds no parameter `{org}`",
                    )],
                ),
            ),
            (
                "route_with_no_providers_require_or_allow_anonymous",
                (
                    "route-allows-everything.yaml",
                    &[Is(
                        "line 6: routes[1]: this route names no providers and no `require`, so it would allow every request: set `allow_anonymous: true` to say so",
                    )],
                ),
            ),
        ],
        |(fixture, errors)| assert_errors(fixture, errors),
    );
}

#[test]
fn set_env_reference_is_expanded() {
    let mut c = ward(&fixtures(), &["validate", "--config", "unset-env.yaml"]);
    c.env("WARD_TEST_ISSUER", "https://idp.example.com");
    let out = run(c);
    assert_eq!(text(&out.stderr), "");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout),
        "unset-env.yaml: valid (1 providers, 1 routes)\n"
    );
}

#[test]
fn bad_regex_in_claim_matches() {
    let out = validate_fixture("bad-regex.yaml");
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let first = stderr.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(
            "bad-regex.yaml:line 13: routes[0].require.claim.matches: invalid regular expression `(.*@example\\.com`: "
        ),
        "{stderr}"
    );
    assert!(stderr.contains("unclosed group"), "{stderr}");
}

#[test]
fn bad_regex_is_one_line_about_the_users_pattern() {
    let out = validate_fixture("bad-regex.yaml");
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(!stderr.contains("^(?:"), "{stderr}");
}

#[test]
fn regex_that_only_compiles_inside_the_wrapper_is_refused() {
    let out = validate_fixture("regex-escapes-anchors.yaml");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(
            "regex-escapes-anchors.yaml:line 14: routes[0].require.claim.matches: invalid regular expression"
        ),
        "{stderr}"
    );
}

// === every error at once ===

#[test]
fn errors_in_every_section_are_reported_together_in_line_order() {
    assert_errors(
        "many-errors.yaml",
        &[
            Line::Is(
                "line 3: server.grpc_addr: `not-an-address` is not a socket address like 0.0.0.0:9001",
            ),
            Line::Is(
                "line 10: providers[0].jwt.timeout: invalid type: integer `5`, expected a duration string such as 30s or 5m",
            ),
            Line::Is("line 14: routes[0].providers[0]: no provider is named `nobody`"),
            Line::Is(
                "line 17: routes[1].require.any[0].roles_any: expected a non-empty list of strings",
            ),
        ],
    );
}

#[test]
fn unknown_top_level_key_does_not_hide_other_errors() {
    assert_errors(
        "unknown-top-level-key-hides-nothing.yaml",
        &[
            Line::UnknownField {
                prefix: "line 2: routez: unknown field `routez`",
                meant: "routes",
            },
            Line::Is("line 6: routes[0].providers[0]: no provider is named `nobody`"),
        ],
    );
}

#[test]
fn an_invalid_provider_is_not_also_reported_as_missing() {
    assert_errors(
        "invalid-provider-referenced.yaml",
        &[Line::Is(
            "line 8: providers[0].jwt.leeway: invalid duration `5x`: use a number with a unit, like 500ms, 30s, 5m, 1h",
        )],
    );
}

// === valid configs ===

const VALID: &str = "\
providers:
  - name: machines
    api_key:
      keys: [ { sha256: \"2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b\", subject: batch } ]
routes:
  - name: public
    match: { path_prefix: /public }
    allow_anonymous: true
  - name: batch
    match: { path_prefix: /batch }
    providers: [machines]
";

#[test]
fn valid_config_exits_0_and_says_valid() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ward-ok.yaml"), VALID).unwrap();
    let out = run(ward(dir.path(), &["validate", "--config", "ward-ok.yaml"]));
    assert_eq!(text(&out.stderr), "");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout),
        "ward-ok.yaml: valid (1 providers, 2 routes)\n"
    );
}

#[test]
fn the_quickstart_example_is_valid() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let out = run(ward(
        &examples,
        &["validate", "--config", "quickstart.yaml"],
    ));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("quickstart.yaml: valid ("),
        "{}",
        text(&out.stdout)
    );
}

// === where the config comes from ===

#[test]
fn missing_config_file_exits_1_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(ward(dir.path(), &["validate", "--config", "nowhere.yaml"]));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("cannot read nowhere.yaml"), "{stderr}");
    assert!(stderr.contains("No such file or directory"), "{stderr}");
}

#[test]
fn no_config_anywhere_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(ward(dir.path(), &["validate"]));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "");
    assert!(
        text(&out.stderr).contains("ward.yaml"),
        "{}",
        text(&out.stderr)
    );

    let out = run(ward(dir.path(), &["check", "--path", "/public"]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert_eq!(text(&out.stdout), "");
}

#[test]
fn serve_without_a_config_never_starts() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = ward(
        dir.path(),
        &[
            "serve",
            "--grpc-addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
        ],
    );
    let mut child = c
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("ward serve started without a config");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success(), "{status}");
}

#[test]
fn ward_config_env_is_honoured() {
    let cfg = tempfile::tempdir().unwrap();
    let file = cfg.path().join("from-env.yaml");
    std::fs::write(&file, VALID).unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let mut c = ward(cwd.path(), &["validate"]);
    c.env("WARD_CONFIG", &file);
    let out = run(c);
    assert_eq!(text(&out.stderr), "");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout),
        format!("{}: valid (1 providers, 2 routes)\n", file.display())
    );
}

#[test]
fn config_flag_wins_over_ward_config_env() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("flag.yaml"), VALID).unwrap();
    let mut c = ward(dir.path(), &["validate", "--config", "flag.yaml"]);
    c.env("WARD_CONFIG", dir.path().join("missing.yaml"));
    let out = run(c);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "flag.yaml: valid (1 providers, 2 routes)\n"
    );
}

#[test]
fn a_missing_ward_config_file_does_not_fall_back_to_ward_yaml() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ward.yaml"), VALID).unwrap();
    let mut c = ward(dir.path(), &["validate"]);
    c.env("WARD_CONFIG", dir.path().join("missing.yaml"));
    let out = run(c);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("missing.yaml"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn ward_yaml_in_the_working_directory_is_the_last_default() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ward.yaml"), VALID).unwrap();
    let out = run(ward(dir.path(), &["validate"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "ward.yaml: valid (1 providers, 2 routes)\n"
    );
}

#[test]
fn tls_files_that_do_not_load_fail_validate_and_serve_alike() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = "server:\n  grpc_addr: 127.0.0.1:0\n  admin_addr: 127.0.0.1:0\n  tls: { cert_file: tls.crt, key_file: tls.key }\nroutes:\n  - name: p\n    match: { path_prefix: /p }\n    allow_anonymous: true\n";
    std::fs::write(dir.path().join("ward.yaml"), config).expect("write");
    let missing = "ward.yaml: server.tls: ";
    std::fs::write(dir.path().join("tls.key"), "not a key").expect("write");
    for (setup, want) in [
        (None, "tls.crt: "),
        (Some("not PEM at all"), "tls.crt: no certificate"),
    ] {
        if let Some(text) = setup {
            std::fs::write(dir.path().join("tls.crt"), text).expect("write");
        }
        let (code, stdout, stderr) =
            common::bin::ward_out(dir.path(), &["validate", "--config", "ward.yaml"]);
        assert_eq!(code, Some(1), "{stdout}{stderr}");
        assert!(
            stderr.contains(missing) && stderr.contains(want),
            "{stderr}"
        );
        let (code, stdout, stderr) =
            common::bin::ward_out(dir.path(), &["serve", "--config", "ward.yaml"]);
        assert_eq!(code, Some(1), "{stdout}{stderr}");
        assert!(stderr.contains(want), "{stderr}");
        assert!(
            !format!("{stdout}{stderr}").contains("ward serving"),
            "serve must not claim to serve: {stdout}{stderr}"
        );
    }
}
