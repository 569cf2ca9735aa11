//! `/status` on the admin listener and `ward status`, against real parts: a JWKS server
//! and an introspection endpoint on 127.0.0.1, tokens signed with real keys, checks
//! through the gRPC API. What ward shows (keys and their ages, fetches and their
//! errors, rotation, a failed reload, the introspection breaker), that the page is
//! inert HTML, and that no secret of the config ever appears in the JSON, the page or
//! the terminal text.

mod common;
mod idp;
mod introspect_server;

use std::time::Duration;

use serde_json::{Value, json};

use common::bin::ward_out;
use common::{CLOCK_START, Req, TestKey, Ward, closed_port, eventually, jwks_of, manual_clock};
use idp::Idp;
use introspect_server::{CLIENT_ID, CLIENT_SECRET, Introspect, Reply};
use ward::authn::apikey::sha256_hex;
use ward::authn::jwt::Alg;

const ISS: &str = "https://idp.test";
const PATIENCE: Duration = Duration::from_secs(10);
const API_KEY: &str = "billing-api-key-0123456789";
/// A value a route's header match compares: shown by name only.
const HEADER_VALUE: &str = "tenant-header-value-42";

/// A config with every provider kind: `corp` (jwks_uri of `idp`, with userinfo and a
/// query that must not be shown), `local` (an inline HMAC key), `partners`
/// (introspection, client secret from `${PARTNERS_SECRET}`), `machines` (an API key).
fn full_config(idp: &Idp, hmac: &TestKey, ep: &Introspect) -> String {
    let jwks_uri =
        idp.jwks_uri().replace("http://", "http://ops:userinfo-pw@") + "?sig=query-secret";
    format!(
        r#"
providers:
  - name: corp
    jwt:
      issuer: {ISS}
      audiences: [api]
      jwks_uri: "{jwks_uri}"
      algorithms: [RS256, ES256]
      timeout: 2s
  - name: local
    jwt:
      issuer: https://local.test
      audiences: [api]
      jwks: {hmac_jwks}
      algorithms: [HS256]
  - name: partners
    introspection:
      endpoint: {ep_url}
      client_id: {CLIENT_ID}
      client_secret: ${{PARTNERS_SECRET}}
      audiences: any
      timeout: 2s
  - name: machines
    api_key:
      header: x-api-key
      keys: [ {{ sha256: "{api_hash}", subject: billing }} ]
  - name: pods
    mesh: {{ trust_domains: [cluster.local] }}
routes:
  - name: public
    match: {{ path_prefix: /public }}
    allow_anonymous: true
  - name: orders
    match:
      path: "/tenants/{{tenant}}/orders/**"
      methods: [GET, POST]
      hosts: ["api.example.com", "*.example.org"]
      headers: {{ x-tenant: {{ exact: "{HEADER_VALUE}" }} }}
    providers: [corp, local]
  - name: partners
    match: {{ path_prefix: /partners }}
    providers: [partners]
  - name: billing
    match: {{ path_prefix: /billing }}
    providers: [machines]
    mode: shadow
"#,
        hmac_jwks = hmac.jwks(),
        ep_url = ep.url(),
        api_hash = sha256_hex(API_KEY.as_bytes()),
    )
}

fn token(k: &TestKey, iss: &str) -> String {
    k.sign(&json!({"iss": iss, "aud": "api", "sub": "alice", "exp": common::now() + 300}))
}

/// The provider named `name` in a status document.
fn provider<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["providers"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("no provider {name} in {doc:#}"))
}

/// The kids a provider holds, sorted.
fn kids(p: &Value) -> Vec<String> {
    let mut out: Vec<String> = p["keys"]
        .as_array()
        .map(|ks| {
            ks.iter()
                .filter_map(|k| k["kid"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// The key with this kid.
fn key<'a>(p: &'a Value, kid: &str) -> &'a Value {
    p["keys"]
        .as_array()
        .and_then(|ks| ks.iter().find(|k| k["kid"] == kid))
        .unwrap_or_else(|| panic!("no key {kid} in {p:#}"))
}

/// Polls `/status` until `ready` holds of it, failing after [`PATIENCE`]; returns it.
async fn status_when(ward: &Ward, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    eventually(PATIENCE, async || {
        let doc = ward.status().await;
        if ready(&doc) {
            Ok(doc)
        } else {
            Err(format!("{what}: not yet in {doc:#}"))
        }
    })
    .await
}

/// Every secret of [`full_config`] and its tests: none may appear in what ward shows.
fn secrets(hmac: &TestKey, rsa: &TestKey, tokens: &[&str]) -> Vec<(String, String)> {
    let mut out = vec![
        ("client secret".to_string(), CLIENT_SECRET.to_string()),
        ("API key".to_string(), API_KEY.to_string()),
        ("API key hash".to_string(), sha256_hex(API_KEY.as_bytes())),
        ("userinfo password".to_string(), "userinfo-pw".to_string()),
        ("jwks_uri query".to_string(), "query-secret".to_string()),
        ("header match value".to_string(), HEADER_VALUE.to_string()),
    ];
    let k = hmac.jwk()["k"].as_str().expect("HMAC k").to_string();
    out.push(("HMAC secret".to_string(), k));
    let n = rsa.jwk()["n"].as_str().expect("RSA n").to_string();
    out.push(("RSA modulus".to_string(), n[..40].to_string()));
    for (i, t) in tokens.iter().enumerate() {
        out.push((format!("token {i}"), t.to_string()));
        // Its signature alone, too.
        if let Some(sig) = t.rsplit('.').next() {
            out.push((format!("token {i} signature"), sig.to_string()));
        }
    }
    out
}

fn assert_no_secret(what: &str, text: &str, secrets: &[(String, String)]) {
    for (name, value) in secrets {
        assert!(
            !text.contains(value.as_str()),
            "{what} holds the {name}:\n{text}"
        );
    }
}

#[tokio::test]
async fn status_shows_providers_keys_routes_and_never_a_secret() {
    let rsa = TestKey::generate(Alg::RS256);
    let ec = TestKey::generate(Alg::ES256);
    let hmac = TestKey::generate(Alg::HS256);
    let idp = Idp::start(jwks_of(&[&rsa, &ec])).await;
    let ep = Introspect::start().await;
    ep.set_token(
        "opaque-partner-token-123",
        json!({"active": true, "sub": "p"}),
    );
    let ward = Ward::builder(&full_config(&idp, &hmac, &ep))
        .env("PARTNERS_SECRET", CLIENT_SECRET)
        .start()
        .await;
    ward.wait_ready(200, PATIENCE).await;

    // Checks that fill the caches with each kind of credential.
    let jwt = token(&rsa, ISS);
    let hs = token(&hmac, "https://local.test");
    let orders = |t: &str| {
        Req::get("/tenants/t1/orders/9")
            .header("x-tenant", HEADER_VALUE)
            .bearer(t)
            .to_map()
    };
    for t in [&jwt, &hs] {
        let r = ward.summary(orders(t)).await;
        assert_eq!(r.http_status, 200, "{r:?}");
    }
    let r = ward
        .summary(
            Req::get("/partners/x")
                .bearer("opaque-partner-token-123")
                .to_map(),
        )
        .await;
    assert_eq!(r.http_status, 200, "{r:?}");
    let r = ward
        .summary(Req::get("/billing/x").header("x-api-key", API_KEY).to_map())
        .await;
    assert_eq!(r.http_status, 200, "{r:?}");

    let doc = ward.status().await;
    assert_eq!(doc["schema"], 1);
    assert_eq!(doc["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(doc["config"]["hash"], ward.config_hash());
    assert_eq!(
        doc["config"]["source"],
        Value::Null,
        "a config given in process"
    );
    assert_eq!(doc["config"]["last_reload"], Value::Null);
    let now = doc["generated_at"].as_u64().expect("generated_at");

    let corp = provider(&doc, "corp");
    assert_eq!(corp["kind"], "jwt");
    assert_eq!(corp["issuer"], ISS);
    assert_eq!(corp["key_source"]["kind"], "jwks_uri");
    assert_eq!(
        corp["key_source"]["location"],
        idp.jwks_uri(),
        "userinfo and query are not shown"
    );
    let mut want = vec![rsa.kid().to_string(), ec.kid().to_string()];
    want.sort();
    assert_eq!(kids(corp), want);
    assert_eq!(key(corp, rsa.kid())["family"], "RSA");
    assert_eq!(key(corp, rsa.kid())["algorithms"], json!(["RS256"]));
    assert_eq!(key(corp, ec.kid())["family"], "EC P-256");
    assert_eq!(key(corp, ec.kid())["algorithms"], json!(["ES256"]));
    let since = key(corp, rsa.kid())["held_since"]
        .as_u64()
        .expect("held_since");
    assert!(
        since <= now && now - since < 60,
        "held since {since}, now {now}"
    );
    assert_eq!(corp["last_fetch"]["result"], "success");
    assert_eq!(corp["last_fetch"]["error"], Value::Null);
    assert!(corp["last_success_at"].as_u64().is_some());
    let next = corp["next_refresh_at"].as_u64().expect("next refresh");
    assert!(next > now, "next refresh {next} after now {now}");
    assert_eq!(corp["using_fallback"], false);

    let local = provider(&doc, "local");
    assert_eq!(local["key_source"]["kind"], "inline");
    assert_eq!(local["key_source"]["location"], Value::Null);
    assert_eq!(kids(local), vec![hmac.kid().to_string()]);
    assert_eq!(key(local, hmac.kid())["family"], "oct");
    assert_eq!(local["last_fetch"], Value::Null);

    let partners = provider(&doc, "partners");
    assert_eq!(partners["kind"], "introspection");
    assert_eq!(partners["introspection"]["endpoint"], ep.url());
    assert_eq!(partners["introspection"]["breaker"], "closed");
    assert_eq!(partners["introspection"]["consecutive_failures"], 0);
    assert_eq!(partners["introspection"]["last_failure"], Value::Null);

    let machines = provider(&doc, "machines");
    assert_eq!(machines["kind"], "api_key");
    assert_eq!(machines["api_keys"], 1);
    assert_eq!(machines["trust_domains"], Value::Null);
    let pods = provider(&doc, "pods");
    assert_eq!(pods["kind"], "mesh");
    assert_eq!(pods["trust_domains"], json!(["cluster.local"]));
    assert_eq!(pods["key_source"], Value::Null);

    let routes = doc["routes"].as_array().expect("routes");
    let names: Vec<&str> = routes.iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(names, ["public", "orders", "partners", "billing"]);
    let orders = &routes[1];
    assert_eq!(orders["match"]["path"], "/tenants/{tenant}/orders/**");
    assert_eq!(orders["match"]["path_kind"], "pattern");
    assert_eq!(orders["match"]["methods"], json!(["GET", "POST"]));
    assert_eq!(
        orders["match"]["hosts"],
        json!(["api.example.com", "*.example.org"])
    );
    assert_eq!(
        orders["match"]["headers"],
        json!([{"name": "x-tenant", "test": "exact"}])
    );
    assert_eq!(orders["providers"], json!(["corp", "local"]));
    assert_eq!(routes[0]["match"]["path_kind"], "prefix");
    assert_eq!(routes[0]["allow_anonymous"], true);
    assert_eq!(routes[3]["mode"], "shadow");

    assert_eq!(doc["caches"]["token_cache_entries"], 2, "{doc:#}");
    assert_eq!(doc["caches"]["dpop_replay_entries"], 0);

    // No secret anywhere: the JSON, the page, and what `ward status` prints.
    let secrets = secrets(&hmac, &rsa, &[&jwt, &hs, "opaque-partner-token-123"]);
    let (_, _, json) = ward.status_as("application/json").await;
    assert_no_secret("the JSON", &json, &secrets);
    let (status, _, html) = ward.status_as("text/html").await;
    assert_eq!(status, 200);
    assert!(html.contains(rsa.kid()), "{html}");
    assert_no_secret("the page", &html, &secrets);
    let admin = ward.admin_addr.to_string();
    let (code, text, stderr) = tokio::task::spawn_blocking(move || {
        ward_out(
            std::path::Path::new("."),
            &["status", "--admin-addr", &admin],
        )
    })
    .await
    .expect("ward status");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(text.contains(ec.kid()), "{text}");
    assert_no_secret("ward status", &text, &secrets);
}

#[tokio::test]
async fn a_failing_key_source_shows_its_error() {
    let k = TestKey::generate(Alg::RS256);
    let idp = Idp::start(jwks_of(&[&k])).await;
    idp.set_status(503);
    let yaml = format!(
        r#"
providers:
  - name: corp
    jwt:
      issuer: {ISS}
      audiences: [api]
      jwks_uri: {}
      algorithms: [RS256]
      timeout: 2s
routes:
  - name: api
    match: {{ path_prefix: /api }}
    providers: [corp]
"#,
        idp.jwks_uri()
    );
    let ward = Ward::start(&yaml).await;
    let doc = status_when(&ward, "a failed fetch", |d| {
        provider(d, "corp")["last_fetch"]["result"] == "failure"
    })
    .await;
    let corp = provider(&doc, "corp");
    assert_eq!(corp["last_fetch"]["error"], "status 503", "{corp:#}");
    assert_eq!(corp["keys"], json!([]));
    assert_eq!(corp["last_success_at"], Value::Null);

    // The IdP recovers: the next fetch is a success and the key is held.
    idp.set_status(200);
    let doc = status_when(&ward, "a successful fetch", |d| {
        provider(d, "corp")["last_fetch"]["result"] == "success"
    })
    .await;
    assert_eq!(kids(provider(&doc, "corp")), vec![k.kid().to_string()]);
}

#[tokio::test]
async fn rotation_shows_the_new_kid_younger_and_the_removed_one_gone() {
    let (k1, k2, k3) = (
        TestKey::generate(Alg::RS256),
        TestKey::generate(Alg::RS256),
        TestKey::generate(Alg::RS256),
    );
    let idp = Idp::start(jwks_of(&[&k1, &k2])).await;
    let (clock, hand) = manual_clock();
    let yaml = format!(
        r#"
providers:
  - name: corp
    jwt:
      issuer: {ISS}
      audiences: [api]
      jwks_uri: {}
      algorithms: [RS256]
      min_refetch_interval: 1s
routes:
  - name: api
    match: {{ path_prefix: /api }}
    providers: [corp]
"#,
        idp.jwks_uri()
    );
    let ward = Ward::builder(&yaml).clock(clock).start().await;
    ward.wait_ready(200, PATIENCE).await;
    let before = ward.status().await;
    let t0 = before["generated_at"].as_u64().expect("now");
    assert_eq!(t0, CLOCK_START, "the document reads ward's clock");
    assert_eq!(
        key(provider(&before, "corp"), k2.kid())["held_since"],
        CLOCK_START
    );

    // The IdP rotates: k1 out, k3 in. A token signed by k3 makes ward refetch.
    hand.advance(Duration::from_secs(100));
    idp.set_jwks(jwks_of(&[&k2, &k3]));
    let t = k3.sign(&json!({"iss": ISS, "aud": "api", "sub": "a", "exp": CLOCK_START + 1000}));
    let r = ward.summary(Req::get("/api/x").bearer(&t).to_map()).await;
    assert_eq!(r.http_status, 200, "{r:?}");

    let after = ward.status().await;
    let corp = provider(&after, "corp");
    let mut want = vec![k2.kid().to_string(), k3.kid().to_string()];
    want.sort();
    assert_eq!(kids(corp), want, "k1 is gone");
    assert_eq!(key(corp, k2.kid())["held_since"], CLOCK_START);
    assert_eq!(key(corp, k2.kid())["age_seconds"], 100);
    assert_eq!(key(corp, k3.kid())["held_since"], CLOCK_START + 100);
    assert_eq!(key(corp, k3.kid())["age_seconds"], 0);
}

#[tokio::test]
async fn a_failed_reload_shows_its_error_and_the_last_good_config() {
    let good = "
providers:
  - name: corp
    jwt:
      issuer: https://idp.test
      audiences: [api]
      jwks_file: jwks.json
      algorithms: [RS256]
routes:
  - name: api
    match: { path_prefix: /api }
    providers: [corp]
";
    let k = TestKey::generate(Alg::RS256);
    let (clock, hand) = manual_clock();
    let ward = Ward::from_file("ward.yaml")
        .file("ward.yaml", good)
        .file("jwks.json", jwks_of(&[&k]).to_string())
        .env("LEAKY", "hunter2-not-a-duration")
        .clock(clock)
        .start()
        .await;
    let doc = ward.status().await;
    let source = ward.config_file().display().to_string();
    assert_eq!(doc["config"]["source"], source);
    assert_eq!(doc["config"]["last_reload"], Value::Null);
    assert_eq!(doc["config"]["loaded_at"], CLOCK_START);
    assert_eq!(
        key(provider(&doc, "corp"), k.kid())["held_since"],
        CLOCK_START
    );
    let hash = ward.config_hash();
    hand.advance(Duration::from_secs(50));

    // A value from the environment in the wrong place: `ward validate` quotes it.
    let bad = good.replace(
        "      algorithms: [RS256]",
        "      algorithms: [RS256]\n      timeout: ${LEAKY}",
    );
    std::fs::write(ward.config_file(), &bad).expect("write the config");
    assert!(ward.reload().is_err(), "the config is invalid");
    let doc = ward.status().await;
    let reload = &doc["config"]["last_reload"];
    assert_eq!(reload["result"], "failure", "{doc:#}");
    assert_eq!(reload["at"], CLOCK_START + 50);
    assert_eq!(doc["config"]["loaded_at"], CLOCK_START, "not reloaded");
    let error = reload["error"].as_str().expect("an error");
    assert!(
        error.starts_with(&format!("{source}:line 9: providers[0].jwt.timeout: ")),
        "{error}"
    );
    assert!(error.contains("${LEAKY}"), "{error}");
    assert!(
        !error.contains("hunter2"),
        "the value is not shown: {error}"
    );
    assert_eq!(doc["config"]["hash"], hash, "the last good config serves");
    let (_, _, html) = ward.status_as("text/html").await;
    assert!(!html.contains("hunter2"), "{html}");

    // Fixed: the reload succeeds and the hash is the new config's.
    hand.advance(Duration::from_secs(30));
    std::fs::write(ward.config_file(), good.replace("[api]", "[api, other]"))
        .expect("write the config");
    ward.reload().expect("a valid config");
    let doc = ward.status().await;
    assert_eq!(doc["config"]["last_reload"]["result"], "success");
    assert_eq!(doc["config"]["last_reload"]["error"], Value::Null);
    assert_ne!(doc["config"]["hash"], hash);
    assert_eq!(doc["config"]["hash"], ward.config_hash());
    assert_eq!(doc["config"]["loaded_at"], CLOCK_START + 80);
    // The static key was held before the reload: its time is kept.
    let corp = provider(&doc, "corp");
    assert_eq!(key(corp, k.kid())["held_since"], CLOCK_START);
    assert_eq!(key(corp, k.kid())["age_seconds"], 80);
}

/// An introspection provider whose endpoint answers 503 with an OAuth error that is a
/// script (and a route named with markup): the breaker opens, the page shows both inert.
fn hostile_introspection(ep: &Introspect) -> String {
    format!(
        r#"
providers:
  - name: partners
    introspection:
      endpoint: {}
      client_id: "{CLIENT_ID}"
      client_secret: ${{PARTNERS_SECRET}}
      audiences: any
      timeout: 2s
      circuit_breaker: {{ failures: 3, cool_down: 5s }}
routes:
  - name: "<b>api</b>"
    match: {{ path_prefix: /api }}
    providers: [partners]
"#,
        ep.url()
    )
}

#[tokio::test]
async fn introspection_backoff_is_shown_and_the_page_is_inert() {
    let ep = Introspect::start().await;
    ep.set_reply(Reply::Error {
        status: 503,
        error: "<script>alert(1)</script>",
        retry_after: Some("30"),
    });
    let (clock, hand) = manual_clock();
    let ward = Ward::builder(&hostile_introspection(&ep))
        .env("PARTNERS_SECRET", CLIENT_SECRET)
        .clock(clock)
        .start()
        .await;
    let r = ward
        .summary(Req::get("/api/x").bearer("opaque-token-xyz").to_map())
        .await;
    assert_eq!(r.http_status, 503, "{r:?}");

    let doc = ward.status().await;
    let p = provider(&doc, "partners");
    let i = &p["introspection"];
    assert_eq!(i["breaker"], "open", "{i:#}");
    assert_eq!(i["consecutive_failures"], 1);
    // Retry-After 30 s, capped by the 5 s cool-down.
    assert_eq!(i["open_until"], CLOCK_START + 5);
    assert_eq!(i["last_failure"]["at"], CLOCK_START);
    assert_eq!(
        i["last_failure"]["error"],
        "status 503, OAuth error `<script>alert(1)</script>`"
    );

    let (status, headers, html) = ward.status_as("text/html,application/xhtml+xml").await;
    assert_eq!(status, 200);
    let header = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {n} header: {headers:?}"))
    };
    assert_eq!(header("content-type"), "text/html; charset=utf-8");
    assert!(
        header("content-security-policy")
            .starts_with("default-src 'none'; style-src 'unsafe-inline'"),
        "{headers:?}"
    );
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("cache-control"), "no-store");
    assert!(
        !html.contains("<script"),
        "markup from config or IdP: {html}"
    );
    assert!(!html.contains("<b>api"), "{html}");
    assert!(
        html.contains("OAuth error `&lt;script&gt;alert(1)&lt;/script&gt;`"),
        "{html}"
    );
    assert!(html.contains("&lt;b&gt;api&lt;/b&gt;"), "{html}");
    assert!(!html.contains("opaque-token-xyz") && !html.contains(CLIENT_SECRET));

    // Once the cool-down has passed, the next call is a probe.
    hand.advance(Duration::from_secs(5));
    let doc = ward.status().await;
    let i = &provider(&doc, "partners")["introspection"];
    assert_eq!(i["breaker"], "half_open", "{i:#}");
    assert_eq!(i["open_until"], Value::Null);

    // JSON for anything that does not ask for HTML first.
    for accept in ["*/*", "application/json", "application/json, text/html"] {
        let (status, headers, body) = ward.status_as(accept).await;
        assert_eq!(status, 200);
        assert!(
            headers
                .iter()
                .any(|(k, v)| k == "content-type" && v == "application/json"),
            "{accept}: {headers:?}"
        );
        serde_json::from_str::<Value>(&body).unwrap_or_else(|e| panic!("{accept}: {e}"));
    }
}

/// The `chromium` binary, or `None` when it is missing and skipping was asked for
/// (`WARD_SKIP_BROWSER_TESTS=1`), as the proxy tests do for nginx and Caddy.
fn chromium() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain([std::path::PathBuf::from("/usr/bin")])
        .flat_map(|d| ["chromium", "chromium-browser"].map(|n| d.join(n)))
        .find(|p| p.is_file());
    if found.is_none() {
        let skip = std::env::var("WARD_SKIP_BROWSER_TESTS").is_ok_and(|v| v == "1");
        assert!(
            skip,
            "chromium is not installed: the /status page test needs it \
             (apt-get install -y chromium, as .ci/run does), or set \
             WARD_SKIP_BROWSER_TESTS=1 to skip it"
        );
        eprintln!("WARD_SKIP_BROWSER_TESTS=1: chromium missing, test skipped");
    }
    found
}

/// Runs headless chromium with `args` and `url`; its standard output.
async fn headless(
    bin: &std::path::Path,
    profile: &std::path::Path,
    args: &[String],
    url: &str,
) -> String {
    let mut c = tokio::process::Command::new(bin);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args)
    .arg(url)
    .kill_on_drop(true)
    .stdin(std::process::Stdio::null());
    let out = tokio::time::timeout(Duration::from_secs(90), c.output())
        .await
        .expect("chromium finished within 90 s")
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn the_page_renders_in_headless_chromium() {
    let Some(bin) = chromium() else { return };
    let (k1, k2) = (TestKey::generate(Alg::RS256), TestKey::generate(Alg::ES256));
    let good = Idp::start(jwks_of(&[&k1, &k2])).await;
    let down = Idp::start(jwks_of(&[&k1])).await;
    down.set_status(500);
    // A discovery document whose issuer is markup: ward's error quotes it.
    let hostile = Idp::start(jwks_of(&[&k1])).await;
    hostile.set_discovery_issuer("<img src=x onerror=alert(1)>");
    let yaml = format!(
        r#"
providers:
  - name: corp
    jwt:
      issuer: {ISS}
      audiences: [api]
      jwks_uri: {good}
      algorithms: [RS256, ES256]
  - name: broken
    jwt:
      issuer: {down_iss}
      audiences: [api]
      jwks_uri: {down}
      algorithms: [RS256]
      timeout: 2s
  - name: hostile
    jwt:
      issuer: {hostile_iss}
      audiences: [api]
      discovery: true
      algorithms: [RS256]
      timeout: 2s
routes:
  - name: api
    match: {{ path_prefix: /api }}
    providers: [corp]
"#,
        good = good.jwks_uri(),
        down = down.jwks_uri(),
        down_iss = down.base(),
        hostile_iss = hostile.base(),
    );
    let ward = Ward::start(&yaml).await;
    status_when(&ward, "both fetches", |d| {
        d["providers"][0]["last_fetch"]["result"] == "success"
            && d["providers"][1]["last_fetch"]["result"] == "failure"
            && d["providers"][2]["last_fetch"]["result"] == "failure"
    })
    .await;

    let url = format!("http://{}/status", ward.admin_addr);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let shot = dir.path().join("status.png");
    let profile = dir.path().join("profile");
    let dom = headless(&bin, &profile, &["--dump-dom".to_string()], &url).await;
    // What a person reads on the page: the kids, the providers, the failing one's error.
    for want in [
        k1.kid(),
        k2.kid(),
        "corp",
        "broken",
        "status 500",
        "hostile",
        "discovery document names issuer \"&lt;img src=x onerror=alert(1)&gt;\"",
    ] {
        assert!(
            dom.contains(want),
            "the page does not show {want:?}:\n{dom}"
        );
    }
    assert!(!dom.contains("<img"), "a name became markup:\n{dom}");
    assert!(dom.contains("<table>"), "{dom}");

    headless(
        &bin,
        &profile,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1280,1600".to_string(),
        ],
        &url,
    )
    .await;
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000,
        "not a PNG ({} bytes)",
        png.len()
    );
}

#[tokio::test]
async fn ward_status_prints_text_or_json_and_fails_clearly() {
    let k = TestKey::generate(Alg::ES256);
    let idp = Idp::start(jwks_of(&[&k])).await;
    let yaml = format!(
        r#"
providers:
  - name: corp
    jwt:
      issuer: {ISS}
      audiences: [api]
      jwks_uri: {}
      algorithms: [ES256]
routes:
  - name: api
    match: {{ path_prefix: /api, methods: [GET] }}
    providers: [corp]
"#,
        idp.jwks_uri()
    );
    let ward = Ward::start(&yaml).await;
    ward.wait_ready(200, PATIENCE).await;
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            ward_out(std::path::Path::new("."), &args)
        })
    };
    let admin = ward.admin_addr.to_string();

    let (code, text, stderr) = run(vec!["status".into(), "--admin-addr".into(), admin.clone()])
        .await
        .expect("ward status");
    assert_eq!(code, Some(0), "{stderr}");
    for want in [
        "config   (in process)",
        "reload   none since start",
        "  corp (jwt)",
        &format!("    keys from: jwks_uri {}", idp.jwks_uri()),
        &format!("    kid {}  EC P-256  ES256  held since ", k.kid()),
        "    last fetch: success, ",
        "  api  path_prefix /api  methods GET  -> corp",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }

    let (code, json, stderr) = run(vec![
        "status".into(),
        "--admin-addr".into(),
        format!("http://{admin}/"),
        "--output".into(),
        "json".into(),
    ])
    .await
    .expect("ward status --output json");
    assert_eq!(code, Some(0), "{stderr}");
    let doc: Value = serde_json::from_str(&json).expect("the JSON document");
    assert_eq!(doc["schema"], 1);
    assert_eq!(doc["config"]["hash"], ward.config_hash());

    // Nothing listening.
    let closed = closed_port().to_string();
    let (code, out, stderr) = run(vec!["status".into(), "--admin-addr".into(), closed.clone()])
        .await
        .expect("ward status");
    assert_eq!((code, out.as_str()), (Some(1), ""), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "ward: cannot reach ward's admin listener at http://{closed}/status: connection failed"
        )),
        "{stderr}"
    );

    // Something that is not ward's admin listener: the IdP answers 404.
    let (code, _, stderr) = run(vec![
        "status".into(),
        "--admin-addr".into(),
        idp.addr.to_string(),
    ])
    .await
    .expect("ward status");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "ward: http://{}/status answered 404 Not Found",
            idp.addr
        )),
        "{stderr}"
    );

    // A bad --timeout.
    let (code, _, stderr) = run(vec![
        "status".into(),
        "--admin-addr".into(),
        admin,
        "--timeout".into(),
        "soon".into(),
    ])
    .await
    .expect("ward status");
    assert_eq!(code, Some(1));
    assert!(stderr.contains("--timeout \"soon\""), "{stderr}");
}

#[tokio::test]
async fn a_missing_config_file_is_shown_as_a_failed_reload() {
    let yaml = "
routes:
  - name: open
    match: { path_prefix: / }
    allow_anonymous: true
";
    let ward = Ward::from_file("ward.yaml")
        .file("ward.yaml", yaml)
        .watch(Some(Duration::from_millis(50)))
        .start()
        .await;
    let hash = ward.config_hash();
    std::fs::remove_file(ward.config_file()).expect("remove the config");
    let doc = status_when(&ward, "the missing file", |d| {
        d["config"]["last_reload"]["result"] == "failure"
    })
    .await;
    assert_eq!(
        doc["config"]["last_reload"]["error"],
        format!(
            "{}: the config file is missing",
            ward.config_file().display()
        )
    );
    assert_eq!(doc["config"]["hash"], hash, "the last good config serves");
}

/// A server that answers `GET /status` with `body` (status 200): what `ward status` reads
/// when something else, or another version of ward, listens there.
async fn fake_status(body: String) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new().route(
        "/status",
        axum::routing::get(move || {
            let body = body.clone();
            async move { body }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn ward_status_refuses_what_it_cannot_read() {
    let ward = Ward::start(
        "
routes:
  - name: open
    match: { path_prefix: / }
    allow_anonymous: true
",
    )
    .await;
    let run = |addr: std::net::SocketAddr, output: &'static str| {
        tokio::task::spawn_blocking(move || {
            let addr = addr.to_string();
            ward_out(
                std::path::Path::new("."),
                &["status", "--admin-addr", &addr, "--output", output],
            )
        })
    };

    // A 200 that is not a status document.
    let other = fake_status("<html>a dashboard</html>".into()).await;
    let (code, out, stderr) = run(other, "text").await.expect("ward status");
    assert_eq!((code, out.as_str()), (Some(1), ""), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "ward: http://{other}/status did not answer a ward status document: "
        )),
        "{stderr}"
    );

    // A later schema: the text view refuses it, the JSON is passed on as it is.
    let mut doc = ward.status().await;
    doc["schema"] = json!(2);
    let newer = fake_status(doc.to_string()).await;
    let (code, out, stderr) = run(newer, "text").await.expect("ward status");
    assert_eq!((code, out.as_str()), (Some(1), ""), "{stderr}");
    assert!(
        stderr.contains("answered status schema 2, which this ward")
            && stderr.ends_with("(schema 1): use --output json\n"),
        "{stderr}"
    );
    let (code, out, stderr) = run(newer, "json").await.expect("ward status");
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(serde_json::from_str::<Value>(&out).expect("JSON"), doc);
}
