//! Hot reload through ward's gRPC API: a file write, a Kubernetes-style `..data` symlink
//! swap, SIGHUP, and invalid replacements that must leave the last good config serving;
//! and the files a config names (`keys_file`, `jwks_file`), rotated without touching it.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{
    Req, TestKey, Ward, code, corp_token, describe, eventually, grpc_code, jwks_of, route_of,
};
use ward::authn::apikey::sha256_hex;
use ward::authn::jwt::Alg;

/// v1 lets /x through anonymously; v2 names a provider, so /x needs a token.
const V1: &str = r#"
routes:
  - name: open
    match: { path_prefix: /x }
    allow_anonymous: true
"#;
const V2: &str = r#"
providers:
  - name: keys
    api_key: { keys: [ { sha256: "0000000000000000000000000000000000000000000000000000000000000000", subject: s } ] }
routes:
  - name: closed
    match: { path_prefix: /x }
    providers: [keys]
"#;

/// How long a test waits for a reload.
const PATIENCE: Duration = Duration::from_secs(10);

/// Starts ward on `ward.yaml` holding `text`, watched every `interval` (with `None`, on
/// SIGHUP only).
async fn start(text: &str, interval: Option<Duration>) -> Ward {
    Ward::from_file("ward.yaml")
        .file("ward.yaml", text)
        .watch(interval)
        .start()
        .await
}

/// The route that answered a request for /x.
async fn route(ward: &Ward) -> String {
    let r = ward.check(Req::get("/x").to_map()).await;
    route_of(&r).unwrap_or_else(|| panic!("no route in metadata: {}", describe(&r)))
}

async fn wait_route(ward: &Ward, want: &str) {
    eventually(PATIENCE, async || match route(ward).await {
        r if r == want => Ok(()),
        r => Err(format!("route never became {want}: still {r}")),
    })
    .await
}

/// Waits for `ward_config_reloads_total{result}` to reach `at_least`.
async fn wait_reloads(ward: &Ward, result: &str, at_least: f64) {
    ward.wait_metric(
        "ward_config_reloads_total",
        &[("result", result)],
        at_least,
        PATIENCE,
    )
    .await
}

#[tokio::test]
async fn a_file_write_is_picked_up() {
    let ward = start(V1, Some(Duration::from_millis(50))).await;
    assert_eq!(route(&ward).await, "open");
    std::fs::write(ward.config_file(), V2).expect("rewrite");
    wait_route(&ward, "closed").await;
    wait_reloads(&ward, "success", 1.0).await;
}

#[tokio::test]
async fn a_configmap_symlink_swap_is_picked_up() {
    // Kubernetes mounts: ward.yaml -> ..data/ward.yaml, ..data -> ..2024_01_01; an update
    // writes a new timestamped dir and renames a new ..data link over the old one.
    let ward = Ward::from_file("ward.yaml")
        .file("..v1/ward.yaml", V1)
        .symlink("..data", "..v1")
        .symlink("ward.yaml", "..data/ward.yaml")
        .watch(Some(Duration::from_millis(50)))
        .start()
        .await;
    assert_eq!(route(&ward).await, "open");
    kubelet_update(ward.dir(), "..v2", &[("ward.yaml", V2)]);
    wait_route(&ward, "closed").await;
}

/// Updates a mounted ConfigMap or Secret as the kubelet does: writes `files` into a new
/// `version` directory, renames a new `..data` link over the old one, and removes the
/// version that `..data` pointed to.
fn kubelet_update(dir: &Path, version: &str, files: &[(&str, &str)]) {
    let old = std::fs::read_link(dir.join("..data")).expect("..data is a link");
    std::fs::create_dir(dir.join(version)).expect("mkdir");
    for (name, text) in files {
        std::fs::write(dir.join(version).join(name), text).expect("write");
    }
    std::os::unix::fs::symlink(version, dir.join("..data_tmp")).expect("link");
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).expect("atomic swap");
    std::fs::remove_dir_all(dir.join(old)).expect("old version removed");
}

#[tokio::test]
async fn sighup_reloads_even_without_watching() {
    let ward = start(V1, None).await;
    std::fs::write(ward.config_file(), V2).expect("rewrite");
    assert_eq!(
        route(&ward).await,
        "open",
        "no watching: nothing changes by itself"
    );
    ward.sighup().await;
    wait_route(&ward, "closed").await;
}

#[tokio::test]
async fn invalid_replacements_keep_the_last_good_config() {
    let ward = start(V1, Some(Duration::from_millis(50))).await;
    let mut failures = 0.0;
    let deep_yaml = format!("routes:\n  - {}x\n", "- ".repeat(5000));
    let deep_rules = format!(
        "routes:\n  - name: x\n    match: {{path: /x}}\n    require: {}{{roles_any: [a]}}{}\n",
        "{not: ".repeat(95),
        "}".repeat(95)
    );
    for bad in [
        "{{{{ not yaml",
        "",
        "routes: []\nbogus_key: 1\n",
        "routes:\n  - name: x\n    match: {path: nope}\n",
        &deep_yaml,
        &deep_rules,
    ] {
        std::fs::write(ward.config_file(), bad).expect("write bad");
        failures += 1.0;
        wait_reloads(&ward, "failure", failures).await;
        let shown = &bad[..bad.len().min(60)];
        assert_eq!(route(&ward).await, "open", "still serving after {shown:?}");
    }
    // Deleted: counted once by the watcher (not once per tick), once more per SIGHUP.
    std::fs::remove_file(ward.config_file()).expect("remove");
    wait_reloads(&ward, "failure", failures + 1.0).await;
    ward.sighup().await;
    wait_reloads(&ward, "failure", failures + 2.0).await;
    assert_eq!(route(&ward).await, "open");
    // Four watch ticks with the file missing: the one under way and three more.
    ward.config_watch_ticks(3).await;
    assert_eq!(
        ward.metric("ward_config_reloads_total", &[("result", "failure")])
            .await,
        Some(failures + 2.0)
    );
    std::fs::write(ward.config_file(), V2).expect("recreate");
    wait_route(&ward, "closed").await;
}

#[tokio::test]
async fn rapid_writes_settle_on_the_last_one() {
    let ward = start(V1, Some(Duration::from_millis(20))).await;
    for i in 0..30 {
        std::fs::write(ward.config_file(), if i % 2 == 0 { V2 } else { V1 }).expect("write");
    }
    std::fs::write(ward.config_file(), V2).expect("final write");
    wait_route(&ward, "closed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_load_never_fail_a_check() {
    let ward = start(V1, Some(Duration::from_millis(10))).await;
    let client = ward.client().await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let mut c = client.clone();
        let stop = stop.clone();
        workers.push(tokio::spawn(async move {
            let mut done = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let r = c
                    .check(Req::get("/x").to_map())
                    .await
                    .expect("every check answers during reloads")
                    .into_inner();
                let code = grpc_code(&r);
                // open: allowed (0); closed: missing credential (16). Nothing else.
                assert!(code == 0 || code == 16, "unexpected gRPC code {code}");
                done += 1;
            }
            done
        }));
    }
    for i in 0..20 {
        std::fs::write(ward.config_file(), if i % 2 == 0 { V2 } else { V1 }).expect("write");
        // The watcher sees each write while the workers check.
        ward.config_watch_ticks(1).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for w in workers {
        total += w.await.expect("worker");
    }
    assert!(total > 50, "only {total} checks ran");
}

/// A route that needs an API key from `keys.yaml` (a `keys_file`).
const KEYS: &str = r#"
providers:
  - name: keys
    api_key: { keys_file: keys.yaml }
routes:
  - name: closed
    match: { path_prefix: /x }
    providers: [keys]
"#;

/// A `keys_file` holding one key, `key`.
fn keys_file(key: &str) -> String {
    format!(
        "- sha256: {}\n  subject: batch\n",
        sha256_hex(key.as_bytes())
    )
}

/// ward on [`KEYS`], its `keys.yaml` holding `key-one`, watched every 50 ms.
async fn start_with_keys() -> Ward {
    Ward::from_file("ward.yaml")
        .file("ward.yaml", KEYS)
        .file("keys.yaml", keys_file("key-one"))
        .watch(Some(Duration::from_millis(50)))
        .start()
        .await
}

/// The gRPC code of a check of /x presenting `key`.
async fn with_key(ward: &Ward, key: &str) -> i32 {
    grpc_code(
        &ward
            .check(Req::get("/x").header("x-api-key", key).to_map())
            .await,
    )
}

async fn wait_accepted(ward: &Ward, key: &str) {
    eventually(PATIENCE, async || match with_key(ward, key).await {
        code::OK => Ok(()),
        c => Err(format!("{key} is still refused (gRPC code {c})")),
    })
    .await
}

#[tokio::test]
async fn a_rotated_keys_file_secret_is_picked_up_without_a_config_change() {
    let ward = Ward::from_file("ward.yaml")
        .file("ward.yaml", KEYS)
        .file("..v1/keys.yaml", keys_file("key-one"))
        .symlink("..data", "..v1")
        .symlink("keys.yaml", "..data/keys.yaml")
        .watch(Some(Duration::from_millis(50)))
        .start()
        .await;
    assert_eq!(with_key(&ward, "key-one").await, code::OK);
    assert_eq!(with_key(&ward, "key-two").await, code::UNAUTHENTICATED);

    kubelet_update(ward.dir(), "..v2", &[("keys.yaml", &keys_file("key-two"))]);
    wait_accepted(&ward, "key-two").await;
    assert_eq!(
        with_key(&ward, "key-one").await,
        code::UNAUTHENTICATED,
        "the rotated-out key is refused"
    );
    wait_reloads(&ward, "success", 1.0).await;
}

#[tokio::test]
async fn a_keys_file_that_disappears_keeps_the_last_good_keys_until_it_returns() {
    let ward = start_with_keys().await;
    let keys = ward.dir().join("keys.yaml");
    std::fs::remove_file(&keys).expect("remove");
    wait_reloads(&ward, "failure", 1.0).await;
    assert_eq!(with_key(&ward, "key-one").await, code::OK, "last good keys");

    std::fs::write(&keys, keys_file("key-two")).expect("restore");
    wait_accepted(&ward, "key-two").await;
    assert_eq!(with_key(&ward, "key-one").await, code::UNAUTHENTICATED);
    assert_eq!(
        ward.metric("ward_config_reloads_total", &[("result", "failure")])
            .await,
        Some(1.0),
        "one failure for the removal, not one per watch tick"
    );
}

#[tokio::test]
async fn a_file_named_by_a_rejected_config_is_watched_too() {
    // The config moves to a keys file that does not exist yet: rejected. Creating the
    // file is enough; the operator does not have to touch ward.yaml again.
    let ward = start_with_keys().await;
    std::fs::write(
        ward.config_file(),
        KEYS.replace("keys.yaml", "new-keys.yaml"),
    )
    .expect("rewrite");
    wait_reloads(&ward, "failure", 1.0).await;
    assert_eq!(
        with_key(&ward, "key-one").await,
        code::OK,
        "last good config"
    );

    std::fs::write(ward.dir().join("new-keys.yaml"), keys_file("key-two")).expect("create");
    wait_accepted(&ward, "key-two").await;
}

#[tokio::test]
async fn a_rewritten_jwks_file_is_picked_up() {
    let old = TestKey::generate(Alg::ES256);
    let new = TestKey::generate(Alg::ES256);
    let config = r#"
providers:
  - name: corp
    jwt: { issuer: https://corp.test, audiences: [api], jwks_file: jwks.json }
routes:
  - name: api
    match: { path_prefix: /x }
    providers: [corp]
"#;
    let ward = Ward::from_file("ward.yaml")
        .file("ward.yaml", config)
        .file("jwks.json", jwks_of(&[&old]).to_string())
        .watch(Some(Duration::from_millis(50)))
        .start()
        .await;
    let check = async |key: &TestKey| {
        let req = Req::get("/x").bearer(&corp_token(key, "alice"));
        grpc_code(&ward.check(req.to_map()).await)
    };
    assert_eq!(check(&old).await, code::OK);
    assert_eq!(check(&new).await, code::UNAUTHENTICATED);

    std::fs::write(ward.dir().join("jwks.json"), jwks_of(&[&new]).to_string()).expect("rotate");
    eventually(PATIENCE, async || match check(&new).await {
        code::OK => Ok(()),
        c => Err(format!("the new key is still refused (gRPC code {c})")),
    })
    .await;
    assert_eq!(check(&old).await, code::UNAUTHENTICATED, "the removed key");
}
