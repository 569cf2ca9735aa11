//! API keys through ward's gRPC API: hashed keys inline and from a keys file, allow and
//! deny, keys that are never trimmed or repaired, duplicate key headers, and the
//! precedence between an API key and a JWT on one route.

mod common;

use common::{Req, TestKey, Ward, bin, corp_provider, corp_token};
use ward::authn::apikey::sha256_hex;
use ward::authn::jwt::Alg;

const OK: (i32, u16, &str) = (0, 200, "ok");
const INVALID: (i32, u16, &str) = (16, 401, "invalid_token");

/// `GET /api/x` presenting `key` in `x-api-key`.
fn with_key(key: &str) -> Req {
    Req::get("/api/x").header("x-api-key", key)
}

fn config(extra_providers: &str, route_providers: &str, require: &str) -> String {
    format!(
        r#"
providers:
  - name: machines
    api_key:
      header: x-api-key
      keys:
        - {{ sha256: "{k1}", subject: billing-batch, roles: [billing] }}
        - {{ sha256: "{k2}", subject: report-job }}
{extra_providers}
routes:
  - name: api
    match: {{ path_prefix: /api }}
    providers: [{route_providers}]
    {require}
"#,
        k1 = sha256_hex(b"key-one-0123456789"),
        k2 = sha256_hex(b"key-two-0123456789"),
    )
}

#[tokio::test]
async fn known_keys_allow_with_their_identity() {
    let ward = Ward::start(&config("", "machines", "")).await;
    let r = ward.summary(with_key("key-one-0123456789").to_map()).await;
    assert_eq!(r.short(), OK, "{r:?}");
    assert_eq!(r.subject(), Some("billing-batch"));
    assert_eq!(r.header("x-auth-roles"), Some("billing"));
    assert_eq!(r.header("x-auth-provider"), Some("machines"));
    let r = ward.summary(with_key("key-two-0123456789").to_map()).await;
    assert_eq!((r.short(), r.subject()), (OK, Some("report-job")));
}

#[tokio::test]
async fn unknown_and_missing_keys_are_401() {
    let ward = Ward::start(&config("", "machines", "")).await;
    let r = ward
        .summary(with_key("key-three-0123456789").to_map())
        .await;
    assert_eq!((r.short(), r.detail.as_str()), (INVALID, "unknown API key"));
    let r = ward.summary(Req::get("/api/x").to_map()).await;
    assert_eq!(r.short(), (16, 401, "missing_credential"));
    // A bearer token is not an API key.
    let r = ward
        .summary(Req::get("/api/x").bearer("key-one-0123456789").to_map())
        .await;
    assert_eq!(r.short(), (16, 401, "missing_credential"));
}

#[tokio::test]
async fn roles_of_a_key_meet_the_rules() {
    let ward = Ward::start(&config("", "machines", "require: { roles_any: [billing] }")).await;
    let r = ward.summary(with_key("key-one-0123456789").to_map()).await;
    assert_eq!(r.short(), OK);
    let r = ward.summary(with_key("key-two-0123456789").to_map()).await;
    assert_eq!(r.short(), (7, 403, "forbidden"));
}

#[tokio::test]
async fn keys_with_whitespace_or_non_ascii_bytes_are_refused_never_trimmed() {
    let ward = Ward::start(&config("", "machines", "")).await;
    let valid = "key-one-0123456789";
    let cases: Vec<Vec<u8>> = vec![
        format!("{valid} ").into_bytes(),
        format!(" {valid}").into_bytes(),
        format!("{valid}\t").into_bytes(),
        b"key-one\t0123456789".to_vec(),
        format!("{valid}\u{a0}").into_bytes(),
        "key-one-012345678\u{e9}".as_bytes().to_vec(),
        b"key-one-0123456789\xff".to_vec(),
        b"key-one-0123456789\x00".to_vec(),
    ];
    for value in cases {
        // Raw header_map carries the bytes exactly (Envoy's encode_raw_headers).
        let r = ward
            .summary(Req::get("/api/x").raw_header("x-api-key", &value).to_raw())
            .await;
        assert_eq!(
            (r.short(), r.detail.as_str()),
            (INVALID, "malformed token"),
            "{value:?}"
        );
    }
    let r = ward.summary(with_key(&"k".repeat(5000)).to_map()).await;
    assert_eq!((r.short(), r.detail.as_str()), (INVALID, "token too large"));
}

#[tokio::test]
async fn two_key_headers_are_refused() {
    let ward = Ward::start(&config("", "machines", "")).await;
    let dup = "more than one credential in the request";
    // Two header lines, raw.
    let r = ward
        .summary(
            with_key("key-one-0123456789")
                .header("x-api-key", "key-two-0123456789")
                .to_raw(),
        )
        .await;
    assert_eq!((r.short(), r.detail.as_str()), (INVALID, dup));
    // Envoy's joined form (`a,b`) in the headers map, even when one key is valid.
    let r = ward
        .summary(
            with_key("key-one-0123456789")
                .header("x-api-key", "nope")
                .to_map(),
        )
        .await;
    assert_eq!((r.short(), r.detail.as_str()), (INVALID, dup));
}

#[tokio::test]
async fn keys_load_from_a_yaml_or_json_file() {
    let yaml = r#"
providers:
  - name: from-yaml
    api_key: { keys_file: keys.yaml }
  - name: mixed
    api_key:
      header: x-other-key
      keys_file: keys.json
      keys:
        - { sha256: "KEY2", subject: inline }
routes:
  - name: api
    match: { path_prefix: /api }
    providers: [from-yaml, mixed]
"#
    .replace("KEY2", &sha256_hex(b"inline-key-0123456789"));
    let ward = Ward::builder(&yaml)
        .file(
            "keys.yaml",
            format!(
                "# mounted from a Kubernetes Secret\n- sha256: {}\n  subject: from-yaml\n  roles: [billing]\n",
                sha256_hex(b"yaml-key-0123456789")
            ),
        )
        .file(
            "keys.json",
            format!(
                r#"[{{"sha256": "{}", "subject": "from-json", "roles": []}}]"#,
                sha256_hex(b"json-key-0123456789")
            ),
        )
        .start()
        .await;
    for (header, key, sub) in [
        ("x-api-key", "yaml-key-0123456789", "from-yaml"),
        ("x-other-key", "json-key-0123456789", "from-json"),
        ("x-other-key", "inline-key-0123456789", "inline"),
    ] {
        let r = ward
            .summary(Req::get("/api/x").header(header, key).to_map())
            .await;
        assert_eq!((r.short(), r.subject()), (OK, Some(sub)), "{key}");
    }
    let r = ward.summary(with_key("json-key-0123456789").to_map()).await;
    assert_eq!(
        r.short(),
        INVALID,
        "a key is accepted only by its own provider"
    );
}

// === precedence ===

#[tokio::test]
async fn the_first_listed_provider_that_finds_a_credential_decides() {
    let k = TestKey::generate(Alg::ES256);
    let good_jwt = corp_token(&k, "alice");
    let key = ("x-api-key", "key-one-0123456789");

    // JWT first: a request with both is decided by the JWT; the API key is ignored.
    let ward = Ward::start(&config(&corp_provider(&k), "corp, machines", "")).await;
    let r = ward
        .summary(
            Req::get("/api/x")
                .bearer(&good_jwt)
                .header(key.0, key.1)
                .to_map(),
        )
        .await;
    assert_eq!((r.short(), r.subject()), (OK, Some("alice")));
    let r = ward
        .summary(
            Req::get("/api/x")
                .bearer("not.a.jwt")
                .header(key.0, key.1)
                .to_map(),
        )
        .await;
    assert_eq!(
        r.short(),
        INVALID,
        "a bad JWT is not rescued by a good API key"
    );
    let r = ward
        .summary(Req::get("/api/x").header(key.0, key.1).to_map())
        .await;
    assert_eq!((r.short(), r.subject()), (OK, Some("billing-batch")));

    // API key first: the key decides, and a bad key is not rescued by a good JWT.
    let ward = Ward::start(&config(&corp_provider(&k), "machines, corp", "")).await;
    let r = ward
        .summary(
            Req::get("/api/x")
                .bearer(&good_jwt)
                .header(key.0, key.1)
                .to_map(),
        )
        .await;
    assert_eq!((r.short(), r.subject()), (OK, Some("billing-batch")));
    let r = ward
        .summary(
            Req::get("/api/x")
                .bearer(&good_jwt)
                .header(key.0, "wrong-key")
                .to_map(),
        )
        .await;
    assert_eq!((r.short(), r.detail.as_str()), (INVALID, "unknown API key"));
}

// === config validation ===

const ROUTES: &str =
    "routes:\n  - name: api\n    match: { path_prefix: /api }\n    providers: [m]\n";

/// A config whose provider `m` reads its keys from `file`.
fn keys_file_config(file: &str) -> String {
    format!("providers:\n  - name: m\n    api_key:\n      keys_file: {file}\n{ROUTES}")
}

#[test]
fn keys_file_errors_name_the_file_line() {
    let config = Ward::builder(&keys_file_config("keys.yaml")).file(
        "keys.yaml",
        format!(
            "- sha256: {}\n  subject: ok\n- sha256: nothex\n  subject: bad\n- subject: no-hash\n- sha256: {}\n  subject: \"\"\n",
            sha256_hex(b"a"),
            sha256_hex(b"b"),
        ),
    );
    let f = config.dir().join("keys.yaml");
    let f = f.display();
    assert_eq!(
        config.config_error(),
        [
            format!("line 4: providers[0].api_key.keys_file: {f}: line 3: [1].sha256: expected the key's SHA-256 as 64 hex digits (`ward token hash-key` prints it)"),
            format!("line 4: providers[0].api_key.keys_file: {f}: line 5: [2]: missing field `sha256`"),
            format!("line 4: providers[0].api_key.keys_file: {f}: line 7: [3].subject: must not be empty"),
        ]
        .join("\n")
    );
}

#[test]
fn a_missing_or_malformed_keys_file_is_an_error() {
    let e = Ward::builder(&keys_file_config("nope.yaml")).config_error();
    assert!(
        e.starts_with("line 4: providers[0].api_key.keys_file: cannot read "),
        "{e}"
    );
    let e = Ward::builder(&keys_file_config("map.yaml"))
        .file("map.yaml", "keys: []\n")
        .config_error();
    assert!(
        e.ends_with("map.yaml: expected a list of keys like `- {sha256: <hex>, subject: <name>, roles: [..]}`"),
        "{e}"
    );
    let e = Ward::builder(&keys_file_config("empty.yaml"))
        .file("empty.yaml", "[]\n")
        .config_error();
    assert_eq!(
        e,
        "line 3: providers[0].api_key.keys: list at least one key (in `keys` or `keys_file`)"
    );
}

#[test]
fn the_same_key_twice_is_an_error() {
    let h = sha256_hex(b"same");
    let yaml = format!(
        "providers:\n  - name: m\n    api_key:\n      keys:\n        - {{ sha256: {h}, subject: a }}\n        - {{ sha256: {}, subject: b }}\n{ROUTES}",
        h.to_uppercase()
    );
    assert_eq!(
        Ward::builder(&yaml).config_error(),
        "line 6: providers[0].api_key.keys[1]: the same key is already listed at providers[0].api_key.keys[0]"
    );
}

#[test]
fn key_subjects_must_not_be_empty() {
    let yaml = format!(
        "providers:\n  - name: m\n    api_key:\n      keys:\n        - {{ sha256: {}, subject: \"\" }}\n{ROUTES}",
        sha256_hex(b"x")
    );
    assert_eq!(
        Ward::builder(&yaml).config_error(),
        "line 5: providers[0].api_key.keys[0].subject: must not be empty"
    );
}

// === ward token hash-key ===

fn hash_key(stdin: &[u8]) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    bin::ward_stdin(dir.path(), &["token", "hash-key"], stdin)
}

#[test]
fn hash_key_refuses_keys_ward_would_never_accept() {
    let (code, stdout, _) = hash_key(b"key-one-0123456789\n");
    assert_eq!(code, Some(0));
    assert_eq!(stdout, format!("{}\n", sha256_hex(b"key-one-0123456789")));
    for bad in [
        &b"two words\n"[..],
        b"tab\there\n",
        "caf\u{e9}\n".as_bytes(),
        b" lead\n",
    ] {
        let (code, stdout, stderr) = hash_key(bad);
        assert_eq!(code, Some(1), "{bad:?}");
        assert_eq!(stdout, "");
        assert!(
            stderr.contains("printable ASCII without spaces"),
            "{stderr}"
        );
    }
}
