use super::*;

fn request(method: &str, target: &str, headers: &[(&str, &[u8])]) -> (Method, Uri, HeaderMap) {
    let mut map = HeaderMap::new();
    for (n, v) in headers {
        map.append(
            axum::http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
            axum::http::HeaderValue::from_bytes(v).unwrap(),
        );
    }
    (method.parse().unwrap(), target.parse().unwrap(), map)
}

fn read_h1(
    method: &str,
    target: &str,
    headers: &[(&str, &[u8])],
) -> Result<(String, String, String), String> {
    let (m, u, h) = request(method, target, headers);
    let shape = Shape::of(u.path()).ok_or_else(|| "no shape".to_string())?;
    read(shape, &m, &u, Version::HTTP_11, &h)
        .map(|o| (o.method.to_string(), o.uri.to_string(), o.host.to_string()))
        .map_err(|e| e.into_owned())
}

fn owned(m: &str, u: &str, h: &str) -> Result<(String, String, String), String> {
    Ok((m.into(), u.into(), h.into()))
}

const NGINX: [(&str, &[u8]); 3] = [
    ("x-original-method", b"POST"),
    ("x-original-uri", b"/orders/7?x=1"),
    ("host", b"api.example.com"),
];

const FORWARD: [(&str, &[u8]); 4] = [
    ("x-forwarded-method", b"DELETE"),
    ("x-forwarded-uri", b"/a/b"),
    ("x-forwarded-host", b"api.example.com:8443"),
    ("x-forwarded-proto", b"https"),
];

#[test]
fn endpoints_are_exact_paths_or_the_envoy_prefix() {
    assert_eq!(Shape::of("/auth/nginx"), Some(Shape::Nginx));
    assert_eq!(Shape::of("/auth/forward"), Some(Shape::Forward));
    assert_eq!(Shape::of("/auth/envoy/x"), Some(Shape::Envoy));
    assert_eq!(Shape::of("/auth/envoy"), Some(Shape::Envoy));
    for none in [
        "/",
        "/auth",
        "/auth/nginx/",
        "/auth/nginxx",
        "/auth/envoyx",
        "/orders",
    ] {
        assert_eq!(Shape::of(none), None, "{none}");
    }
}

#[test]
fn each_shape_reads_the_original_request_where_it_says() {
    assert_eq!(
        read_h1("GET", "/auth/nginx", &NGINX),
        owned("POST", "/orders/7?x=1", "api.example.com")
    );
    assert_eq!(
        read_h1("GET", "/auth/forward", &FORWARD),
        owned("DELETE", "/a/b", "api.example.com:8443")
    );
    assert_eq!(
        read_h1("PUT", "/auth/envoy/a/../b?q=1", &[("host", b"h.test")]),
        owned("PUT", "/a/../b?q=1", "h.test")
    );
    // HTTP/2 (h2c from Envoy): the authority is the host.
    let (m, u, h) = request("GET", "http://h2.test/auth/envoy/x", &[]);
    let o = read(Shape::Envoy, &m, &u, Version::HTTP_2, &h).unwrap();
    assert_eq!((o.uri, o.host), ("/x", "h2.test"));
}

#[test]
fn missing_or_repeated_forwarded_headers_are_refused() {
    for (i, (name, _)) in NGINX.iter().enumerate() {
        let mut without = NGINX.to_vec();
        without.remove(i);
        assert_eq!(
            read_h1("GET", "/auth/nginx", &without),
            Err(format!("{name} is missing"))
        );
        let mut twice = NGINX.to_vec();
        twice.push(NGINX[i]);
        assert_eq!(
            read_h1("GET", "/auth/nginx", &twice),
            Err(format!("{name} is sent more than once"))
        );
    }
    for (i, (name, _)) in FORWARD.iter().enumerate() {
        let mut without = FORWARD.to_vec();
        without.remove(i);
        assert_eq!(
            read_h1("GET", "/auth/forward", &without),
            Err(format!("{name} is missing"))
        );
        let mut twice = FORWARD.to_vec();
        twice.push(FORWARD[i]);
        assert_eq!(
            read_h1("GET", "/auth/forward", &twice),
            Err(format!("{name} is sent more than once"))
        );
    }
    assert_eq!(
        read_h1("GET", "/auth/envoy/x", &[]),
        Err("host is missing".to_string())
    );
}

#[test]
fn bad_original_requests_are_refused_with_their_reason() {
    let nginx = |name: &str, value: &[u8]| {
        let mut h: Vec<(&str, &[u8])> = NGINX.iter().filter(|(n, _)| *n != name).copied().collect();
        let name: &'static str = NGINX.iter().find(|(n, _)| *n == name).unwrap().0;
        h.push((name, value));
        read_h1("GET", "/auth/nginx", &h).unwrap_err()
    };
    let long = format!("/{}", "a".repeat(MAX_URI_BYTES));
    let cases: &[(&str, &[u8], &str)] = &[
        (
            "x-original-uri",
            b"http://evil.test/admin",
            "x-original-uri is an absolute URI; the proxy must send the path",
        ),
        (
            "x-original-uri",
            b"admin",
            "x-original-uri does not start with /",
        ),
        (
            "x-original-uri",
            b"*",
            "x-original-uri does not start with /",
        ),
        ("x-original-uri", b"/a\xff", "x-original-uri is not UTF-8"),
        (
            "x-original-uri",
            b"/a b",
            "x-original-uri holds a space or a control character",
        ),
        (
            "x-original-uri",
            b"/a\tb",
            "x-original-uri holds a space or a control character",
        ),
        (
            "x-original-uri",
            long.as_bytes(),
            "x-original-uri is longer than 16384 bytes",
        ),
        ("x-original-uri", b"", "x-original-uri is empty"),
        (
            "x-original-method",
            b"CONNECT",
            "CONNECT is a tunnel, not a request ward can authorize",
        ),
        (
            "x-original-method",
            b"connect",
            "CONNECT is a tunnel, not a request ward can authorize",
        ),
        (
            "x-original-method",
            b"GET, POST",
            "x-original-method is not an HTTP method",
        ),
        (
            "host",
            b"a.test, b.test",
            "the original host is not a host name, address or host:port",
        ),
        (
            "host",
            b"a.test/admin",
            "the original host is not a host name, address or host:port",
        ),
        (
            "host",
            b"user@a.test",
            "the original host is not a host name, address or host:port",
        ),
    ];
    for (name, value, want) in cases {
        assert_eq!(
            nginx(name, value),
            *want,
            "{name}: {:?}",
            String::from_utf8_lossy(value)
        );
    }
    let mut bad_proto = FORWARD.to_vec();
    bad_proto[3] = ("x-forwarded-proto", b"https, http");
    assert_eq!(
        read_h1("GET", "/auth/forward", &bad_proto),
        Err("x-forwarded-proto is neither http nor https".to_string())
    );
}

#[test]
fn the_endpoint_itself_is_never_the_question() {
    // nginx and forward auth ask with GET; anything else is refused, not decided.
    assert_eq!(
        read_h1("POST", "/auth/nginx", &NGINX),
        Err("this auth endpoint takes GET; the original method goes in its header".to_string())
    );
    assert!(read_h1("HEAD", "/auth/nginx", &NGINX).is_ok());
    // Envoy's prefix with nothing after it carries no original path.
    for target in ["/auth/envoy", "/auth/envoy?x=1"] {
        assert_eq!(
            read_h1("GET", target, &[("host", b"h.test")]),
            Err("no original path after /auth/envoy".to_string()),
            "{target}"
        );
    }
    // An HTTP/1 request in absolute form names another host.
    let (m, u, h) = request("GET", "http://evil.test/auth/nginx", &NGINX);
    assert_eq!(
        read(Shape::Nginx, &m, &u, Version::HTTP_11, &h).unwrap_err(),
        "the request target is an absolute URI; proxies send a path"
    );
    // Envoy's own method: CONNECT is refused there too.
    assert_eq!(
        read_h1("CONNECT", "/auth/envoy/x", &[("host", b"h.test")]),
        Err("CONNECT is a tunnel, not a request ward can authorize".to_string())
    );
}
