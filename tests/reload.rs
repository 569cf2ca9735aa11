//! Hot reload through ward's gRPC API: a file write, a Kubernetes-style `..data` symlink
//! swap, SIGHUP, and invalid replacements that must leave the last good config serving.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use tonic::transport::Channel;

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

struct Harness {
    _dir: tempfile::TempDir,
    path: PathBuf,
    client: AuthorizationClient<Channel>,
    admin: std::net::SocketAddr,
    hup: tokio::sync::mpsc::Sender<()>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Starts ward on `config_path` (created by `setup` inside a temp dir) with a watcher.
async fn start(setup: impl FnOnce(&Path) -> PathBuf, interval: Option<Duration>) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = setup(dir.path());
    let env: HashMap<String, String> = HashMap::new();
    let config = ward::config::load_file(&path, &env).expect("initial config");
    let state = ward::server::AppState::start(config).expect("state");
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let (grpc_addr, admin_addr) = (
        grpc.local_addr().expect("addr"),
        admin.local_addr().expect("addr"),
    );
    let (hup, hup_rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(ward::server::reload::watch(
        path.clone(),
        state.clone(),
        Arc::new(env),
        interval,
        hup_rx,
    ));
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(ward::server::run(
        grpc,
        admin,
        state,
        async move {
            let _ = stop_rx.await;
        },
        Duration::from_secs(1),
    ));
    let client = AuthorizationClient::connect(format!("http://{grpc_addr}"))
        .await
        .expect("connect");
    Harness {
        _dir: dir,
        path,
        client,
        admin: admin_addr,
        hup,
        _stop: stop,
    }
}

fn plain_file(text: &'static str) -> impl FnOnce(&Path) -> PathBuf {
    move |dir| {
        let p = dir.join("ward.yaml");
        std::fs::write(&p, text).expect("write config");
        p
    }
}

impl Harness {
    /// The route that answered a request for /x.
    async fn route(&mut self) -> String {
        let req = CheckRequest {
            attributes: Some(AttributeContext {
                request: Some(Request {
                    http: Some(HttpRequest {
                        method: "GET".into(),
                        path: "/x".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        };
        let r = self.client.check(req).await.expect("rpc").into_inner();
        let md = r.dynamic_metadata.expect("metadata");
        match md.fields.get("route").and_then(|v| v.kind.clone()) {
            Some(envoy_types::pb::google::protobuf::value::Kind::StringValue(s)) => s,
            other => panic!("no route in metadata: {other:?}"),
        }
    }

    async fn wait_route(&mut self, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.route().await == want {
                return;
            }
            assert!(Instant::now() < deadline, "route never became {want}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn metric(&self, line_prefix: &str) -> Option<f64> {
        let body = reqwest::get(format!("http://{}/metrics", self.admin))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics body");
        body.lines()
            .find(|l| l.starts_with(line_prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    async fn wait_metric(&self, line_prefix: &str, at_least: f64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.metric(line_prefix).await.unwrap_or(0.0) < at_least {
            assert!(
                Instant::now() < deadline,
                "{line_prefix} never reached {at_least}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

const FAILURES: &str = r#"ward_config_reloads_total{result="failure"}"#;
const SUCCESSES: &str = r#"ward_config_reloads_total{result="success"}"#;

#[tokio::test]
async fn a_file_write_is_picked_up() {
    let mut h = start(plain_file(V1), Some(Duration::from_millis(50))).await;
    assert_eq!(h.route().await, "open");
    std::fs::write(&h.path, V2).expect("rewrite");
    h.wait_route("closed").await;
    h.wait_metric(SUCCESSES, 1.0).await;
}

#[tokio::test]
async fn a_configmap_symlink_swap_is_picked_up() {
    // Kubernetes mounts: ward.yaml -> ..data/ward.yaml, ..data -> ..2024_01_01; an update
    // writes a new timestamped dir and renames a new ..data link over the old one.
    let setup = |dir: &Path| {
        let v1 = dir.join("..v1");
        std::fs::create_dir(&v1).expect("mkdir");
        std::fs::write(v1.join("ward.yaml"), V1).expect("write");
        std::os::unix::fs::symlink("..v1", dir.join("..data")).expect("link data");
        std::os::unix::fs::symlink("..data/ward.yaml", dir.join("ward.yaml")).expect("link file");
        dir.join("ward.yaml")
    };
    let mut h = start(setup, Some(Duration::from_millis(50))).await;
    assert_eq!(h.route().await, "open");
    let dir = h.path.parent().expect("dir").to_path_buf();
    let v2 = dir.join("..v2");
    std::fs::create_dir(&v2).expect("mkdir");
    std::fs::write(v2.join("ward.yaml"), V2).expect("write");
    std::os::unix::fs::symlink("..v2", dir.join("..data_tmp")).expect("link");
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).expect("atomic swap");
    std::fs::remove_dir_all(dir.join("..v1")).expect("old version removed");
    h.wait_route("closed").await;
}

#[tokio::test]
async fn sighup_reloads_even_without_watching() {
    let mut h = start(plain_file(V1), None).await;
    std::fs::write(&h.path, V2).expect("rewrite");
    assert_eq!(
        h.route().await,
        "open",
        "no watching: nothing changes by itself"
    );
    h.hup.send(()).await.expect("hup");
    h.wait_route("closed").await;
}

#[tokio::test]
async fn invalid_replacements_keep_the_last_good_config() {
    let mut h = start(plain_file(V1), Some(Duration::from_millis(50))).await;
    let mut failures = 0.0;
    for bad in [
        "{{{{ not yaml",
        "",
        "routes: []\nbogus_key: 1\n",
        "routes:\n  - name: x\n    match: {path: nope}\n",
    ] {
        std::fs::write(&h.path, bad).expect("write bad");
        failures += 1.0;
        h.wait_metric(FAILURES, failures).await;
        assert_eq!(h.route().await, "open", "still serving after {bad:?}");
    }
    // Deleted, then recreated with a good config.
    std::fs::remove_file(&h.path).expect("remove");
    h.hup.send(()).await.expect("hup");
    h.wait_metric(FAILURES, failures + 1.0).await;
    assert_eq!(h.route().await, "open");
    std::fs::write(&h.path, V2).expect("recreate");
    h.wait_route("closed").await;
}

#[tokio::test]
async fn rapid_writes_settle_on_the_last_one() {
    let mut h = start(plain_file(V1), Some(Duration::from_millis(20))).await;
    for i in 0..30 {
        std::fs::write(&h.path, if i % 2 == 0 { V2 } else { V1 }).expect("write");
    }
    std::fs::write(&h.path, V2).expect("final write");
    h.wait_route("closed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_load_never_fail_a_check() {
    let h = start(plain_file(V1), Some(Duration::from_millis(10))).await;
    let client = h.client.clone();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let mut c = client.clone();
        let stop = stop.clone();
        workers.push(tokio::spawn(async move {
            let mut done = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let req = CheckRequest {
                    attributes: Some(AttributeContext {
                        request: Some(Request {
                            http: Some(HttpRequest {
                                method: "GET".into(),
                                path: "/x".into(),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                };
                let r = c
                    .check(req)
                    .await
                    .expect("every check answers during reloads")
                    .into_inner();
                let code = r.status.map_or(0, |s| s.code);
                // open: allowed (0); closed: missing credential (16). Nothing else.
                assert!(code == 0 || code == 16, "unexpected gRPC code {code}");
                done += 1;
            }
            done
        }));
    }
    for i in 0..20 {
        std::fs::write(&h.path, if i % 2 == 0 { V2 } else { V1 }).expect("write");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for w in workers {
        total += w.await.expect("worker");
    }
    assert!(total > 50, "only {total} checks ran");
}
