//! Plain-HTTP authorization (SPEC §9) on ward's own listener, asked as each proxy asks:
//! every shape decides as the gRPC Check does (statuses, reasons, challenges, bodies,
//! identity headers); Envoy learns what to remove; a forwarded request that is missing,
//! repeated or malformed is 400 and never decided; anything else is no auth endpoint.
//! (tests/proxies.rs puts real nginx and Caddy in front.)

mod check_setup;
mod common;

use serde_json::json;

use check_setup::{OWNED, claims, start_http, token, with};
use common::{ASKERS, Answer, Asker, AuthReq, each_case, metric, send_raw};

/// The cases every shape must decide as gRPC does: (name, request).
fn cases() -> Vec<(&'static str, AuthReq)> {
    let admin = token(&with(
        claims("alice"),
        json!({"roles": ["admin"], "email": "a@x.test"}),
    ));
    let viewer = token(&with(claims("bob"), json!({"roles": ["viewer"]})));
    let expired = token(&with(claims("carol"), json!({"exp": 1_000_000})));
    let no_scope = token(&with(claims("dan"), json!({"scope": "orders.read"})));
    let rid = |r: AuthReq| r.header("x-request-id", "rid-7");
    vec![
        ("anonymous route", AuthReq::get("/public/x")),
        ("no token", AuthReq::get("/admin")),
        ("admin token", AuthReq::get("/admin/users").bearer(&admin)),
        (
            "post with admin token",
            AuthReq::new("POST", "/admin").bearer(&admin),
        ),
        ("viewer token", AuthReq::get("/admin").bearer(&viewer)),
        ("expired token", AuthReq::get("/admin").bearer(&expired)),
        (
            "insufficient scope",
            AuthReq::get("/scoped").bearer(&no_scope),
        ),
        ("dot segments", AuthReq::get("/public/../admin")),
        ("encoded dot segments", AuthReq::get("/public/%2e%2e/admin")),
        ("matrix dot segment", AuthReq::get("/public/..;/admin")),
        ("double slash", AuthReq::get("//admin")),
        (
            "query-string token",
            AuthReq::get(&format!("/admin?access_token={admin}")),
        ),
        ("query does not route", AuthReq::get("/admin?x=/public")),
        ("no route", AuthReq::get("/nowhere")),
        (
            "two bearer tokens",
            AuthReq::get("/admin").bearer(&admin).bearer(&viewer),
        ),
    ]
    .into_iter()
    .map(|(n, r)| (n, rid(r)))
    .collect()
}

#[tokio::test]
async fn every_shape_decides_as_the_grpc_check_does() {
    let ward = start_http().await;
    let mut runs = Vec::new();
    for (name, req) in cases() {
        let grpc = ward.summary(req.to_grpc().to_map()).await;
        for asker in ASKERS {
            runs.push((
                format!("{name} ({asker:?})"),
                (grpc.clone(), req.ask(ward.http_addr(), asker).await),
            ));
        }
    }
    each_case(runs, |(grpc, http): (common::Summary, Answer)| {
        assert_eq!(
            http.short(),
            (grpc.http_status, grpc.reason.clone()),
            "{http:?}"
        );
        let mut want_set = grpc.set.clone();
        want_set.sort();
        assert_eq!(http.identity(), want_set, "identity headers");
        assert_eq!(
            http.header("www-authenticate"),
            grpc.www_authenticate.as_deref(),
            "challenge"
        );
        if http.status != 200 {
            assert_eq!(http.header("content-type"), Some("application/json"));
            assert_eq!(
                http.json(),
                json!({"error": grpc.reason, "detail": grpc.detail, "request_id": "rid-7"})
            );
        } else {
            assert_eq!(http.body, "", "an allow has no body");
        }
    });
}

#[tokio::test]
async fn the_answers_carry_the_decision_and_never_the_token() {
    let ward = start_http().await;
    let admin = token(&with(claims("alice"), json!({"roles": ["admin"]})));
    let allowed = AuthReq::get("/admin").bearer(&admin);
    for asker in ASKERS {
        let a = allowed.ask(ward.http_addr(), asker).await;
        assert_eq!(a.status, 200, "{asker:?}: {a:?}");
        assert_eq!(a.header("x-auth-subject"), Some("alice"), "{asker:?}");
        assert_eq!(a.header("x-auth-roles"), Some("admin"), "{asker:?}");
        assert_eq!(a.header("x-auth-provider"), Some("corp"), "{asker:?}");
        let text = format!("{a:?}");
        assert!(
            !text.contains(&admin),
            "{asker:?}: the token came back: {text}"
        );
    }
    let expired = token(&with(claims("carol"), json!({"exp": 1_000_000})));
    for asker in ASKERS {
        let a = AuthReq::get("/admin?access_token=secret-in-query")
            .bearer(&expired)
            .ask(ward.http_addr(), asker)
            .await;
        let text = format!("{a:?}");
        assert_eq!(a.short(), (401, "invalid_token".into()), "{asker:?}");
        assert!(
            !text.contains(&expired) && !text.contains("secret-in-query"),
            "{asker:?}: {text}"
        );
    }
}

#[tokio::test]
async fn envoy_is_told_to_remove_every_owned_header_it_does_not_set() {
    let ward = start_http().await;
    let to_remove = |a: &Answer| -> Vec<String> {
        let mut v: Vec<String> = a
            .header("x-envoy-auth-headers-to-remove")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        v.sort();
        v
    };
    // Anonymous: every owned header goes, and the underscore spelling the client sent.
    let a = AuthReq::get("/public")
        .header("x-auth-subject", "admin")
        .header("x_auth_roles", "admin")
        .ask(ward.http_addr(), Asker::Envoy)
        .await;
    let mut want: Vec<String> = OWNED.iter().map(|s| s.to_string()).collect();
    want.push("x_auth_roles".into());
    want.sort();
    assert_eq!((a.status, to_remove(&a)), (200, want));
    assert!(a.identity().is_empty(), "{a:?}");

    // Allowed with an identity: what is set is never also removed.
    let admin = token(&with(claims("alice"), json!({"roles": ["admin"]})));
    let a = AuthReq::get("/admin")
        .bearer(&admin)
        .ask(ward.http_addr(), Asker::Envoy)
        .await;
    let set: Vec<String> = a.identity().into_iter().map(|(n, _)| n).collect();
    let removed = to_remove(&a);
    assert!(set.iter().all(|s| !removed.contains(s)), "{a:?}");
    let mut all = set.clone();
    all.extend(removed);
    all.sort();
    let mut owned: Vec<String> = OWNED.iter().map(|s| s.to_string()).collect();
    owned.sort();
    assert_eq!(all, owned, "each owned header is either set or removed");

    // The other shapes clear what is not set in the proxy's config: no removal list.
    for asker in [Asker::Nginx, Asker::Forward] {
        let a = AuthReq::get("/public").ask(ward.http_addr(), asker).await;
        assert_eq!(
            a.header("x-envoy-auth-headers-to-remove"),
            None,
            "{asker:?}"
        );
    }
}

#[tokio::test]
async fn nginx_denials_carry_their_body_in_a_header_too() {
    let ward = start_http().await;
    let req = AuthReq::get("/admin").header("x-request-id", "rid-9");
    let a = req.ask(ward.http_addr(), Asker::Nginx).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.header("x-ward-body"), Some(a.body.as_str()));
    for asker in [Asker::Envoy, Asker::Forward] {
        let a = req.ask(ward.http_addr(), asker).await;
        assert_eq!(
            (a.status, a.header("x-ward-body")),
            (401, None),
            "{asker:?}"
        );
    }
}

/// A request line and headers, and the 400 detail ward must answer them with.
const MALFORMED: &[(&str, &[u8], &str)] = &[
    (
        "nginx without x-original-uri",
        b"GET /auth/nginx HTTP/1.1\r\nhost: a.test\r\nx-original-method: GET\r\n",
        "x-original-uri is missing",
    ),
    (
        "nginx with x-original-uri twice",
        b"GET /auth/nginx HTTP/1.1\r\nhost: a.test\r\nx-original-method: GET\r\nx-original-uri: /public\r\nx-original-uri: /admin\r\n",
        "x-original-uri is sent more than once",
    ),
    (
        "nginx with two hosts",
        b"GET /auth/nginx HTTP/1.1\r\nhost: a.test\r\nhost: b.test\r\nx-original-method: GET\r\nx-original-uri: /public\r\n",
        "host is sent more than once",
    ),
    (
        "forward with x-forwarded-host twice",
        b"GET /auth/forward HTTP/1.1\r\nhost: w\r\nx-forwarded-method: GET\r\nx-forwarded-uri: /public\r\nx-forwarded-host: a.test\r\nx-forwarded-host: b.test\r\nx-forwarded-proto: https\r\n",
        "x-forwarded-host is sent more than once",
    ),
    (
        "forward without x-forwarded-proto",
        b"GET /auth/forward HTTP/1.1\r\nhost: w\r\nx-forwarded-method: GET\r\nx-forwarded-uri: /public\r\nx-forwarded-host: a.test\r\n",
        "x-forwarded-proto is missing",
    ),
    (
        "a URI that is not UTF-8",
        b"GET /auth/nginx HTTP/1.1\r\nhost: a.test\r\nx-original-method: GET\r\nx-original-uri: /public/\xff\xfe\r\n",
        "x-original-uri is not UTF-8",
    ),
    (
        "an absolute original URI",
        b"GET /auth/forward HTTP/1.1\r\nhost: w\r\nx-forwarded-method: GET\r\nx-forwarded-uri: http://evil.test/public\r\nx-forwarded-host: a.test\r\nx-forwarded-proto: https\r\n",
        "x-forwarded-uri is an absolute URI; the proxy must send the path",
    ),
    (
        "an absolute-form request target",
        b"GET http://evil.test/auth/nginx HTTP/1.1\r\nhost: a.test\r\nx-original-method: GET\r\nx-original-uri: /public\r\n",
        "the request target is an absolute URI; proxies send a path",
    ),
    (
        "an original CONNECT",
        b"GET /auth/nginx HTTP/1.1\r\nhost: a.test\r\nx-original-method: CONNECT\r\nx-original-uri: /public\r\n",
        "CONNECT is a tunnel, not a request ward can authorize",
    ),
    (
        "CONNECT to ward",
        b"CONNECT a.test:443 HTTP/1.1\r\nhost: a.test:443\r\n",
        "CONNECT is not an auth request",
    ),
    (
        "envoy's prefix alone",
        b"GET /auth/envoy HTTP/1.1\r\nhost: a.test\r\n",
        "no original path after /auth/envoy",
    ),
    (
        "nginx asked with POST",
        b"POST /auth/nginx HTTP/1.1\r\nhost: a.test\r\nx-original-method: GET\r\nx-original-uri: /public\r\ncontent-length: 0\r\n",
        "this auth endpoint takes GET; the original method goes in its header",
    ),
];

#[tokio::test]
async fn malformed_forwarded_requests_are_400_and_never_decided() {
    let ward = start_http().await;
    let admin = token(&with(claims("alice"), json!({"roles": ["admin"]})));
    let mut answers = Vec::new();
    for (name, head, detail) in MALFORMED {
        // A valid token changes nothing: the request is not read, so not decided.
        let mut head = head.to_vec();
        head.extend_from_slice(
            format!("authorization: Bearer {admin}\r\nconnection: close\r\n").as_bytes(),
        );
        answers.push((*name, (send_raw(ward.http_addr(), &head).await, *detail)));
    }
    each_case(answers, |(a, detail): (Answer, &str)| {
        assert_eq!(a.status, 400, "{a:?}");
        assert_eq!(a.json()["error"], "invalid_request", "{a:?}");
        assert_eq!(a.json()["detail"], detail, "{a:?}");
        assert!(a.identity().is_empty(), "{a:?}");
    });
    let text = ward.metrics().await;
    // CONNECT to ward is no auth request (shape none); the rest are decided as invalid.
    let invalid = MALFORMED.len() as f64 - 1.0;
    assert_eq!(
        metric(
            &text,
            "ward_check_requests_total",
            &[
                ("route", "none"),
                ("provider", "none"),
                ("decision", "deny"),
                ("reason", "invalid_request")
            ]
        ),
        Some(invalid)
    );
    assert_eq!(
        metric(
            &text,
            "ward_http_requests_total",
            &[("shape", "none"), ("status", "400")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn oversized_requests_are_refused_before_any_decision() {
    let ward = start_http().await;
    // An original URI past 16 KiB, within the head limit: 400, named.
    let long = format!("/public/{}", "a".repeat(17 * 1024));
    let a = AuthReq::get(&long)
        .ask(ward.http_addr(), Asker::Nginx)
        .await;
    assert_eq!(
        (a.status, a.json()["detail"].as_str()),
        (400, Some("x-original-uri is longer than 16384 bytes"))
    );
    // A head past server.http_max_header_bytes (64 KiB): refused by the HTTP parser
    // with 431, before any of it is read as a question.
    let a = AuthReq::get("/public")
        .header("x-padding", &"p".repeat(70 * 1024))
        .ask(ward.http_addr(), Asker::Nginx)
        .await;
    assert_eq!(a.status, 431, "{a:?}");
    // Neither was decided on its route: the first is an invalid request, the second
    // never reached ward's code.
    let text = ward.metrics().await;
    let allowed = [
        ("route", "public"),
        ("provider", "none"),
        ("decision", "allow"),
        ("reason", "ok"),
    ];
    assert_eq!(metric(&text, "ward_check_requests_total", &allowed), None);
    let invalid = [
        ("route", "none"),
        ("provider", "none"),
        ("decision", "deny"),
        ("reason", "invalid_request"),
    ];
    assert_eq!(
        metric(&text, "ward_check_requests_total", &invalid),
        Some(1.0)
    );
}

#[tokio::test]
async fn other_paths_are_no_auth_endpoint() {
    let ward = start_http().await;
    for path in [
        "/",
        "/public",
        "/auth/nginx/public",
        "/auth/envoyx/public",
        "/metrics",
    ] {
        let a = send_raw(
            ward.http_addr(),
            format!("GET {path} HTTP/1.1\r\nhost: a.test\r\nx-original-method: GET\r\nx-original-uri: /public\r\nconnection: close\r\n").as_bytes(),
        )
        .await;
        assert_eq!(a.short(), (404, "invalid_request".into()), "{path}: {a:?}");
    }
    assert_eq!(
        ward.metric(
            "ward_http_requests_total",
            &[("shape", "none"), ("status", "404")]
        )
        .await,
        Some(5.0)
    );
}

#[tokio::test]
async fn one_connection_serves_many_checks_and_h2c_works() {
    let ward = start_http().await;
    // HTTP/1.1 keep-alive: three questions, one connection, three answers.
    let mut s = tokio::net::TcpStream::connect(ward.http_addr())
        .await
        .expect("connect");
    use tokio::io::AsyncWriteExt;
    let mut got = Vec::new();
    for path in ["/public", "/admin", "/nowhere"] {
        let mut head = AuthReq::get(path).head(Asker::Nginx, true);
        head.extend_from_slice(b"\r\n");
        s.write_all(&head).await.expect("write");
        got.push(common::read_answer(&mut s).await.expect("an answer").status);
    }
    assert_eq!(got, [200, 401, 403]);

    // h2c with prior knowledge, as Envoy's http_service speaks it on an HTTP/2 cluster.
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    let r = client
        .get(format!("http://{}/auth/envoy/admin", ward.http_addr()))
        .send()
        .await
        .expect("h2c request");
    assert_eq!(
        (r.version(), r.status().as_u16()),
        (reqwest::Version::HTTP_2, 401)
    );
    let r = client
        .get(format!("http://{}/auth/envoy/public", ward.http_addr()))
        .send()
        .await
        .expect("h2c request");
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test]
async fn each_answer_is_counted_by_shape_and_status_and_as_a_check() {
    let ward = start_http().await;
    for asker in ASKERS {
        AuthReq::get("/public").ask(ward.http_addr(), asker).await;
        AuthReq::get("/admin").ask(ward.http_addr(), asker).await;
        AuthReq::get("/admin").ask(ward.http_addr(), asker).await;
    }
    let text = ward.metrics().await;
    for shape in ["envoy", "nginx", "forward"] {
        assert_eq!(
            metric(
                &text,
                "ward_http_requests_total",
                &[("shape", shape), ("status", "200")]
            ),
            Some(1.0),
            "{shape}"
        );
        assert_eq!(
            metric(
                &text,
                "ward_http_requests_total",
                &[("shape", shape), ("status", "401")]
            ),
            Some(2.0),
            "{shape}"
        );
    }
    assert_eq!(
        metric(
            &text,
            "ward_check_requests_total",
            &[
                ("route", "admin"),
                ("provider", "none"),
                ("decision", "deny"),
                ("reason", "missing_credential")
            ]
        ),
        Some(6.0)
    );
}

#[tokio::test]
async fn the_http_listener_stops_with_the_server() {
    let ward = start_http().await;
    let addr = ward.http_addr();
    assert_eq!(
        AuthReq::get("/public").ask(addr, Asker::Envoy).await.status,
        200
    );
    ward.shutdown().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the HTTP port still accepts after shutdown"
    );
}

#[tokio::test]
async fn ward_check_decides_as_the_http_edge() {
    let ward = start_http().await;
    let keys = common::KeyRing::shared();
    std::fs::write(ward.dir().join("ward.yaml"), check_setup::config(keys, ""))
        .expect("write the config");
    let admin = token(&with(claims("alice"), json!({"roles": ["admin"]})));
    let viewer = token(&with(claims("bob"), json!({"roles": ["viewer"]})));
    for (path, bearer) in [
        ("/admin", Some(&admin)),
        ("/admin", Some(&viewer)),
        ("/public/%2e%2e/admin", None),
        ("/nowhere", None),
    ] {
        let mut req = AuthReq::get(path);
        let mut args = vec![
            "check",
            "--config",
            "ward.yaml",
            "--path",
            path,
            "--host",
            "api.example.com",
            "--json",
        ];
        let header;
        if let Some(t) = bearer {
            req = req.bearer(t);
            header = format!("authorization: Bearer {t}");
            args.extend(["-H", &header]);
        }
        let (_, out, err) = common::bin::ward_out(ward.dir(), &args);
        let cli: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
        let http = req.ask(ward.http_addr(), Asker::Forward).await;
        assert_eq!(
            (cli["status"].as_u64(), cli["reason"].as_str()),
            (Some(u64::from(http.status)), Some(http.short().1.as_str())),
            "{path}"
        );
    }
}

#[tokio::test]
async fn ward_serve_opens_the_http_listener_the_config_names() {
    let dir = tempfile::tempdir().expect("a directory");
    let config = dir.path().join("ward.yaml");
    std::fs::write(
        &config,
        "server:\n  http_addr: 127.0.0.1:0\nroutes:\n  - name: public\n    match: { path_prefix: /public }\n    allow_anonymous: true\n",
    )
    .expect("write the config");
    let mut serve = common::bin::Serve::start(dir.path(), &config, &[]);
    let addr: std::net::SocketAddr = serve.http_addr.parse().unwrap_or_else(|_| {
        panic!(
            "no HTTP address in the `ward serving` line: {:?}",
            serve.lines()
        )
    });
    assert_eq!(
        AuthReq::get("/public").ask(addr, Asker::Envoy).await.status,
        200
    );
    assert_eq!(
        AuthReq::get("/private")
            .ask(addr, Asker::Nginx)
            .await
            .short(),
        (403, "no_route".into())
    );
    assert!(serve.terminate().success(), "SIGTERM: {:?}", serve.lines());
}

#[tokio::test]
async fn a_body_is_never_read_as_the_next_request() {
    // Request smuggling between a proxy and ward: a body that is itself a request must
    // stay a body, whatever ward does with it (it never reads it).
    let ward = start_http().await;
    let smuggled = AuthReq::get("/public").head(Asker::Nginx, true);
    let mut first = AuthReq::get("/admin").head(Asker::Nginx, true);
    first.extend_from_slice(format!("content-length: {}\r\n\r\n", smuggled.len() + 2).as_bytes());
    first.extend_from_slice(&smuggled);
    first.extend_from_slice(b"\r\n");
    let mut third = AuthReq::get("/nowhere").head(Asker::Nginx, false);
    third.extend_from_slice(b"\r\n");
    let mut s = tokio::net::TcpStream::connect(ward.http_addr())
        .await
        .expect("connect");
    use tokio::io::AsyncWriteExt;
    s.write_all(&first).await.expect("write");
    let mut statuses = vec![common::read_answer(&mut s).await.expect("an answer").status];
    // The connection may be closed (the body was left unread) or serve the next request.
    if s.write_all(&third).await.is_ok() {
        let next = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            common::read_answer(&mut s),
        )
        .await
        .expect("an answer or a closed connection, not a hang");
        statuses.extend(next.map(|a| a.status));
    }
    assert!(
        statuses == [401] || statuses == [401, 403],
        "the body was read as a request: {statuses:?}"
    );
}

#[tokio::test]
async fn a_route_answers_its_own_way_on_every_shape_but_nginx() {
    let keys = common::KeyRing::shared();
    let yaml = format!(
        r#"
providers:
  - name: corp
    jwt:
      issuer: {iss}
      audiences: [api]
      jwks: {jwks}
      algorithms: [RS256]
      token_from: [{{ header: authorization, prefix: "Bearer " }}, {{ query: access_token }}]
routes:
  - name: app
    match: {{ path_prefix: /app }}
    providers: [corp]
    require: {{ roles_any: [admin] }}
    on_unauthenticated: {{ redirect: "https://login.example.com/?rd={{url}}" }}
    deny: {{ status: 404, body: "no ({{reason}})" }}
"#,
        iss = check_setup::ISS,
        jwks = common::jwks_of(&[&keys.rs256]),
    );
    let ward = common::Ward::builder(&yaml).http().start().await;
    let browser = AuthReq::get("/app/r?x=1&access_token=not-a-token").header("accept", "text/html");
    let login = "https://login.example.com/?rd=https%3A%2F%2Fapi.example.com%2Fapp%2Fr%3Fx%3D1";
    for asker in [Asker::Envoy, Asker::Forward] {
        let a = browser.ask(ward.http_addr(), asker).await;
        assert_eq!(
            (a.status, a.header("location")),
            (302, Some(login)),
            "{asker:?}: {a:?}"
        );
        assert!(
            !format!("{a:?}").contains("not-a-token"),
            "{asker:?}: {a:?}"
        );
        // A 403 takes the route's `deny:` shape.
        let viewer = token(&with(claims("bob"), json!({"roles": ["viewer"]})));
        let a = AuthReq::get("/app/r")
            .bearer(&viewer)
            .ask(ward.http_addr(), asker)
            .await;
        assert_eq!(
            (a.status, a.body.as_str()),
            (404, "no (forbidden)"),
            "{asker:?}"
        );
    }
    // nginx's auth_request turns anything but 401/403 into a 500: ward answers it as
    // usual, a 401 with its challenge, and the 403 stays a 403.
    let a = browser.ask(ward.http_addr(), Asker::Nginx).await;
    assert_eq!(a.short(), (401, "invalid_token".into()), "{a:?}");
    assert_eq!(a.header("location"), None);
    assert!(
        a.header("www-authenticate")
            .is_some_and(|c| c.starts_with("Bearer"))
    );
    let viewer = token(&with(claims("bob"), json!({"roles": ["viewer"]})));
    let a = AuthReq::get("/app/r")
        .bearer(&viewer)
        .ask(ward.http_addr(), Asker::Nginx)
        .await;
    assert_eq!(a.short(), (403, "forbidden".into()), "{a:?}");
}
