//! The route index against the plain first-match-wins scan it replaces: hand-picked
//! orderings (a route that may match any path before and after literal ones, prefixes,
//! `{param}` first, routes without a path, the `/` request), then every pair of route
//! shapes and many generated route lists, each compared with the scan on every path.

use super::*;

// === harness ===

/// A route named `name` matching `path` (`prefix:/x`, `path:/x` or `-` for none) and,
/// if given, only these methods.
fn route(name: &str, path: &str, methods: Option<&[&str]>) -> Route {
    let path = match path.split_once(':') {
        Some(("prefix", p)) => Some(PathMatch::prefix(p).expect("test prefix")),
        Some(("path", p)) => Some(PathMatch::pattern(p).expect("test pattern")),
        _ => None,
    };
    Route {
        name: name.into(),
        matcher: RouteMatch {
            path,
            methods: methods.map(|ms| ms.iter().map(|m| m.to_string()).collect()),
            ..Default::default()
        },
        providers: Vec::new(),
        allow_anonymous: true,
        require: None,
        mode: Mode::Enforce,
        mint: None,
        defaults: true,
        deny: None,
        login_redirect: None,
    }
}

fn routes(specs: &[&str]) -> Vec<Route> {
    specs
        .iter()
        .enumerate()
        .map(|(i, p)| route(&format!("r{i}"), p, None))
        .collect()
}

/// The scan the index must agree with: every route in order, first match wins.
fn linear<'a>(
    routes: &[Route],
    input: &CheckInput<'_>,
    path: &Segments<'a>,
) -> Option<(usize, Params<'a>)> {
    routes
        .iter()
        .enumerate()
        .find_map(|(i, r)| r.matcher.matches(input, path).map(|p| (i, p)))
}

fn input<'a>(method: &'a str, path: &'a str) -> CheckInput<'a> {
    CheckInput {
        method,
        host: "api.example.com",
        path,
        ..Default::default()
    }
}

/// The index of the route picked for `method path`, checked against the scan.
fn pick(routes: &[Route], method: &str, path: &str) -> Option<usize> {
    let index = RouteIndex::new(routes);
    let input = input(method, path);
    let segs = crate::authz::path::normalize(path).expect("test paths normalise");
    let got = index.select(routes, &input, &segs).map(|(i, r, p)| {
        assert!(std::ptr::eq(r, &routes[i]), "index and route disagree");
        (i, p)
    });
    assert_eq!(got, linear(routes, &input, &segs), "{method} {path}");
    got.map(|(i, _)| i)
}

// === order ===

#[test]
fn a_route_for_any_path_before_literal_ones_still_wins() {
    let mut rs = routes(&["-", "prefix:/orders", "path:/orders/{id}"]);
    rs[0].matcher.methods = Some(vec!["POST".into()]);
    assert_eq!(pick(&rs, "POST", "/orders/7"), Some(0));
    assert_eq!(pick(&rs, "GET", "/orders/7"), Some(1));
    let mut rs = routes(&["path:/**", "prefix:/orders"]);
    rs[0].matcher.methods = Some(vec!["DELETE".into()]);
    assert_eq!(pick(&rs, "DELETE", "/orders"), Some(0));
    assert_eq!(pick(&rs, "GET", "/orders"), Some(1));
    assert_eq!(pick(&rs, "GET", "/other"), None);
}

#[test]
fn a_route_for_any_path_after_literal_ones_is_the_fallback() {
    let mut rs = routes(&[
        "path:/orders/{id}",
        "path:/{kind}/{id}",
        "prefix:/orders",
        "-",
    ]);
    rs[0].matcher.methods = Some(vec!["GET".into()]);
    assert_eq!(pick(&rs, "GET", "/orders/7"), Some(0));
    assert_eq!(pick(&rs, "POST", "/orders/7"), Some(1));
    assert_eq!(pick(&rs, "POST", "/orders/7/lines"), Some(2));
    assert_eq!(pick(&rs, "POST", "/invoices/7/lines"), Some(3));
    assert_eq!(pick(&rs, "GET", "/"), Some(3));
}

#[test]
fn literal_routes_interleaved_with_wildcards_keep_config_order() {
    let rs = routes(&[
        "path:/a/x",
        "path:/*/y",
        "prefix:/a",
        "path:/**/z",
        "path:/a/{p}",
        "prefix:/",
    ]);
    assert_eq!(pick(&rs, "GET", "/a/x"), Some(0));
    assert_eq!(pick(&rs, "GET", "/a/y"), Some(1));
    assert_eq!(pick(&rs, "GET", "/a/z"), Some(2));
    assert_eq!(pick(&rs, "GET", "/b/z"), Some(3));
    assert_eq!(pick(&rs, "GET", "/b/w"), Some(5));
}

#[test]
fn prefix_routes_are_indexed_by_their_first_segment() {
    let rs = routes(&["prefix:/api/v1", "prefix:/api", "prefix:/"]);
    assert_eq!(pick(&rs, "GET", "/api/v1/items"), Some(0));
    assert_eq!(pick(&rs, "GET", "/api/v2"), Some(1));
    assert_eq!(pick(&rs, "GET", "/api"), Some(1));
    assert_eq!(pick(&rs, "GET", "/apiv1"), Some(2));
    assert_eq!(pick(&rs, "GET", "/"), Some(2));
    let index = RouteIndex::new(&rs);
    assert_eq!(index.any_first, vec![2]);
    assert_eq!(index.by_first.get("api"), Some(&vec![0, 1]));
}

#[test]
fn a_param_first_pattern_matches_any_first_segment() {
    let rs = routes(&[
        "path:/{tenant}/orders",
        "path:/acme/orders",
        "path:/*/invoices",
    ]);
    assert_eq!(pick(&rs, "GET", "/acme/orders"), Some(0));
    assert_eq!(pick(&rs, "GET", "/globex/orders"), Some(0));
    assert_eq!(pick(&rs, "GET", "/acme/invoices"), Some(2));
    let index = RouteIndex::new(&rs);
    assert_eq!(index.any_first, vec![0, 2]);
}

#[test]
fn routes_without_a_path_match_every_path() {
    let mut rs = routes(&["-", "path:/a", "-"]);
    rs[0].matcher.methods = Some(vec!["DELETE".into()]);
    assert_eq!(pick(&rs, "DELETE", "/a"), Some(0));
    assert_eq!(pick(&rs, "GET", "/a"), Some(1));
    assert_eq!(pick(&rs, "GET", "/b"), Some(2));
    assert_eq!(pick(&rs, "GET", "/"), Some(2));
}

#[test]
fn the_root_path_has_no_first_segment() {
    let rs = routes(&["path:/a", "prefix:/a", "path:/", "prefix:/"]);
    for root in ["/", "//", "/./", "/a/..", "/%2e%2e", "/?q=/a"] {
        assert_eq!(pick(&rs, "GET", root), Some(2), "{root}");
    }
    assert_eq!(pick(&rs, "GET", "/a"), Some(0));
    assert_eq!(pick(&rs, "GET", "/a/b"), Some(1));
    assert_eq!(pick(&rs, "GET", "/b"), Some(3));
    // `path: /` is not keyed: only a request without segments matches it.
    let only_root = routes(&["path:/"]);
    assert_eq!(pick(&only_root, "GET", "/"), Some(0));
    assert_eq!(pick(&only_root, "GET", "/a"), None);
}

#[test]
fn keys_compare_like_segments_case_sensitive_and_decoded() {
    let rs = routes(&["path:/Orders", "prefix:/orders", "prefix:/café"]);
    assert_eq!(pick(&rs, "GET", "/Orders"), Some(0));
    assert_eq!(pick(&rs, "GET", "/%4Frders"), Some(0));
    assert_eq!(pick(&rs, "GET", "/orders"), Some(1));
    assert_eq!(pick(&rs, "GET", "/%6frders/1"), Some(1));
    assert_eq!(pick(&rs, "GET", "/ORDERS"), None);
    assert_eq!(pick(&rs, "GET", "/caf%C3%A9/x"), Some(2));
    assert_eq!(pick(&rs, "GET", "/x/../orders"), Some(1));
}

#[test]
fn no_routes_select_nothing() {
    assert_eq!(pick(&[], "GET", "/"), None);
    assert_eq!(pick(&[], "GET", "/a"), None);
}

// === the index agrees with the scan ===

/// Route shapes: every kind of first segment, literals that differ only in case, and
/// patterns whose later segments decide.
const SHAPES: &[&str] = &[
    "-",
    "prefix:/",
    "prefix:/a",
    "prefix:/a/b",
    "prefix:/A",
    "prefix:/b",
    "path:/",
    "path:/a",
    "path:/A",
    "path:/a/{x}",
    "path:/a/b",
    "path:/{x}",
    "path:/{x}/b",
    "path:/*",
    "path:/*/a",
    "path:/**",
    "path:/**/b",
    "path:/a/**",
    "path:/b/**/a",
    "path:/c",
];

const PATHS: &[&str] = &[
    "/", "/a", "/A", "/a/b", "/a/b/c", "/a/x", "/b", "/b/a", "/b/x/a", "/c", "/d", "/%61",
    "/%61/b", "/a/../b", "/x/a", "/x/b", "/A/b",
];

const METHODS: &[&str] = &["GET", "POST"];

/// Checks `rs` against the scan for every path and method.
fn agree(rs: &[Route]) {
    let index = RouteIndex::new(rs);
    let names: Vec<String> = rs.iter().map(|r| format!("{:?}", r.matcher.path)).collect();
    for path in PATHS {
        let segs = crate::authz::path::normalize(path).expect("test paths normalise");
        for method in METHODS {
            let input = input(method, path);
            let got = index.select(rs, &input, &segs).map(|(i, _, p)| (i, p));
            assert_eq!(
                got,
                linear(rs, &input, &segs),
                "{method} {path} over {names:?}"
            );
        }
    }
}

#[test]
fn every_pair_of_shapes_agrees_with_the_scan() {
    for a in SHAPES {
        for b in SHAPES {
            for get_only in [None, Some(0), Some(1)] {
                let mut rs = routes(&[a, b]);
                if let Some(i) = get_only {
                    rs[i].matcher.methods = Some(vec!["GET".into()]);
                }
                agree(&rs);
            }
        }
    }
}

#[test]
fn generated_route_lists_agree_with_the_scan() {
    // A fixed linear congruential generator: the same lists on every run.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: usize| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 33) % n as u64) as usize
    };
    for _ in 0..1_500 {
        let len = next(16);
        let rs: Vec<Route> = (0..len)
            .map(|i| {
                let shape = SHAPES[next(SHAPES.len())];
                let methods: Option<&[&str]> = match next(3) {
                    0 => Some(&["GET"]),
                    1 => Some(&["POST"]),
                    _ => None,
                };
                route(&format!("r{i}"), shape, methods)
            })
            .collect();
        agree(&rs);
    }
}

// === bounded work ===

#[test]
fn host_patterns_take_linear_time_on_long_hosts() {
    // Hosts of 100 000 bytes shaped to make a matcher rescan (ports, brackets, trailing
    // dots, near-miss suffixes) against every kind of host pattern. Each comparison is
    // a few linear passes; the bound is loose enough for a loaded debug build and far
    // below what a quadratic pass (10^10 steps per host) would need.
    let patterns: Vec<HostPattern> = ["api.example.com", "*.example.com", "[::1]"]
        .iter()
        .map(|p| HostPattern::parse(p).expect("test host pattern"))
        .collect();
    let n = 100_000;
    let hosts = [
        "a.".repeat(n / 2) + "example.co",
        "a.".repeat(n / 2) + "example.com" + &".".repeat(n),
        ":".repeat(n),
        "[".repeat(n) + "::1]:1",
        "[::1".to_string() + &":1".repeat(n / 2),
        "x".repeat(n) + ".example.com:" + &"1".repeat(n),
    ];
    let started = std::time::Instant::now();
    let mut hits = 0;
    for host in &hosts {
        for p in &patterns {
            hits += usize::from(p.matches(host));
        }
    }
    let took = started.elapsed();
    // Only the long subdomains of example.com match `*.example.com`.
    assert_eq!(hits, 2);
    assert!(took < std::time::Duration::from_secs(2), "{took:?}");
}

// === host patterns ===

fn host(pattern: &str) -> HostPattern {
    HostPattern::parse(pattern).expect("test host pattern")
}

#[test]
fn a_wildcard_host_needs_a_label_before_the_domain() {
    let w = host("*.example.com");
    assert!(!w.matches(".example.com"), "an empty label is no subdomain");
    assert!(!w.matches(".example.com:443"));
    assert!(!w.matches("example.com"));
    assert!(w.matches("x.example.com"));
}

#[test]
fn a_wildcard_host_matches_labels_of_any_length_and_depth() {
    let w = host("*.example.com");
    for h in [
        "api.example.com",
        "API.Example.COM",
        "billing-eu-1.example.com",
        "a.b.example.com",
        "deep.er.still.example.com:8443",
        "api.example.com.",
    ] {
        assert!(w.matches(h), "{h}");
    }
    for h in [
        "api.example.org",
        "api.example.com.evil.io",
        "apiexample.com",
        "api.xexample.com",
    ] {
        assert!(!w.matches(h), "{h}");
    }
}

#[test]
fn non_ascii_hosts_are_compared_without_panicking() {
    let w = host("*.example.com");
    // The suffix would start inside `é`: not a match (and not a slice off a char boundary).
    assert!(!w.matches("aéexample.com"));
    assert!(!w.matches("éexample.com"));
    assert!(w.matches("é.example.com"), "a subdomain whatever its label");
    let exact = host("api.example.com");
    assert!(!exact.matches("äpi.example.com"));
    assert!(!exact.matches("api.example.cöm"));
}

#[test]
fn a_port_that_is_not_digits_is_part_of_the_host() {
    // `:x` is no port, so nothing is stripped and the host is not `api.example.com`.
    let exact = host("api.example.com");
    let w = host("*.example.com");
    for h in [
        "api.example.com:x",
        "api.example.com:80x",
        "api.example.com:-1",
    ] {
        assert!(!exact.matches(h), "{h}");
        assert!(!w.matches(h), "{h}");
    }
    assert!(exact.matches("api.example.com:8080"));
    assert!(
        exact.matches("api.example.com:"),
        "an empty port is no port"
    );
    assert_eq!(
        crate::authz::path::strip_port("api.example.com:x"),
        "api.example.com:x"
    );
    assert_eq!(crate::authz::path::strip_port("[::1]"), "[::1]");
    assert_eq!(crate::authz::path::strip_port("[::1"), "[::1");
    assert_eq!(
        crate::authz::path::strip_port("api.example.com"),
        "api.example.com"
    );
}

// === hosts and context extensions ===

#[test]
fn a_route_with_hosts_matches_only_requests_to_them() {
    let mut r = route("r", "prefix:/api", None);
    r.matcher.hosts = Some(vec![
        host("api.example.com"),
        host("*.internal.example.com"),
    ]);
    let segs = crate::authz::path::normalize("/api/x").expect("test path");
    let to = |host: &'static str| CheckInput {
        host,
        ..input("GET", "/api/x")
    };
    for ok in [
        "api.example.com",
        "API.example.com:443",
        "a.internal.example.com",
    ] {
        assert!(r.matcher.matches(&to(ok), &segs).is_some(), "{ok}");
    }
    for other in ["example.com", "internal.example.com", "api.example.org", ""] {
        assert!(r.matcher.matches(&to(other), &segs).is_none(), "{other}");
    }
}

#[test]
fn a_route_with_context_needs_every_extension_with_its_value() {
    let mut r = route("r", "-", None);
    r.matcher.context = vec![
        ("tenant".into(), "acme".into()),
        ("tier".into(), "gold".into()),
    ];
    let segs = crate::authz::path::normalize("/x").expect("test path");
    let with = |context: &'static [(&'static str, &'static str)]| CheckInput {
        context: context.to_vec(),
        ..input("GET", "/x")
    };
    let both = with(&[("tier", "gold"), ("tenant", "acme"), ("other", "1")]);
    assert!(r.matcher.matches(&both, &segs).is_some());
    for missing in [
        &[("tenant", "acme")][..],
        &[("tenant", "acme"), ("tier", "silver")],
        &[("tenant", "ACME"), ("tier", "gold")],
        &[],
    ] {
        assert!(
            r.matcher.matches(&with(missing), &segs).is_none(),
            "{missing:?}"
        );
    }
    // No context required: any request.
    let free = route("f", "-", None);
    assert!(free.matcher.matches(&with(&[]), &segs).is_some());
}

#[test]
fn a_route_with_methods_matches_them_in_any_case() {
    let r = route("r", "-", Some(&["GET", "HEAD"]));
    let segs = crate::authz::path::normalize("/x").expect("test path");
    assert!(r.matcher.matches(&input("get", "/x"), &segs).is_some());
    assert!(r.matcher.matches(&input("HEAD", "/x"), &segs).is_some());
    assert!(r.matcher.matches(&input("POST", "/x"), &segs).is_none());
}

// === header and query matchers ===

/// The first route of `yaml`'s config, compiled by the real loader.
fn compiled(matcher: &str) -> crate::config::Config {
    let yaml = format!("routes:\n  - name: r\n    match: {matcher}\n    allow_anonymous: true\n");
    let env: HashMap<String, String> = HashMap::new();
    match crate::config::load_str(&yaml, std::path::Path::new("."), &env) {
        Ok(c) => c,
        Err(e) => panic!("{matcher}: {:?}", e.0),
    }
}

fn matches(config: &crate::config::Config, path: &str, headers: &[(&str, &str)]) -> bool {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    let input = CheckInput::from_pairs("GET", "api.test", path, &headers, &[]);
    let segments = crate::authz::path::normalize(input.path).expect("test paths normalise");
    config.routes[0]
        .matcher
        .matches(&input, &segments)
        .is_some()
}

#[test]
fn header_matchers_need_one_readable_value() {
    let c = compiled(
        "{ path_prefix: /api, headers: { X-Api-Version: { exact: \"2\" }, x-canary: { present: false }, x-tenant: { regex: \"acme-[a-z]+\" } } }",
    );
    let ok = [("x-api-version", "2"), ("x-tenant", "acme-eu")];
    assert!(matches(&c, "/api/x", &ok));
    // Names compare without case; values exactly.
    assert!(matches(
        &c,
        "/api/x",
        &[("X-API-VERSION", "2"), ("x-tenant", "acme-eu")]
    ));
    assert!(!matches(
        &c,
        "/api/x",
        &[("x-api-version", "2 "), ("x-tenant", "acme-eu")]
    ));
    // The regex matches the whole value.
    assert!(!matches(
        &c,
        "/api/x",
        &[("x-api-version", "2"), ("x-tenant", "acme-eu-1")]
    ));
    assert!(!matches(
        &c,
        "/api/x",
        &[("x-api-version", "2"), ("x-tenant", "x-acme-eu")]
    ));
    // present: false is absence; sent twice, a header has no one value to compare.
    assert!(!matches(&c, "/api/x", &[ok[0], ok[1], ("x-canary", "")]));
    assert!(!matches(&c, "/api/x", &[ok[0], ok[0], ok[1]]));
    assert!(!matches(&c, "/api/x", &[ok[1]]), "absent is not exact");
    // The path still has to match.
    assert!(!matches(&c, "/other", &ok));
}

#[test]
fn query_matchers_read_the_decoded_query_and_never_the_path() {
    let c = compiled(
        "{ path: /reports, query: { format: { exact: \"a b\" }, debug: { present: false }, \"page size\": { regex: \"[0-9]{1,3}\" } } }",
    );
    assert!(matches(&c, "/reports?format=a%20b&page%20size=50", &[]));
    assert!(matches(&c, "/reports?page%20size=7&format=a%20b#frag", &[]));
    // `+` is not a space outside form bodies.
    assert!(!matches(&c, "/reports?format=a+b&page%20size=50", &[]));
    assert!(!matches(&c, "/reports?format=a%20b&page%20size=5000", &[]));
    assert!(!matches(
        &c,
        "/reports?format=a%20b&page%20size=50&debug",
        &[]
    ));
    assert!(
        !matches(&c, "/reports?format=a%20b&format=a%20b&page%20size=50", &[]),
        "twice"
    );
    assert!(
        !matches(&c, "/reports?format=%ff&page%20size=50", &[]),
        "not UTF-8"
    );
    assert!(!matches(&c, "/reports", &[]));
    // A parameter in the path is not in the query.
    assert!(!matches(&c, "/reports/format=a%20b", &[]));
}

#[test]
fn bad_header_and_query_matchers_are_config_errors() {
    let env: HashMap<String, String> = HashMap::new();
    let yaml = "routes:\n  - name: r\n    allow_anonymous: true\n    match:\n      headers: { \"bad header\": { exact: x }, x-a: { exakt: x }, x-b: { regex: \"(\" }, x-c: { present: 1 }, x-d: { exact: a, present: true } }\n      query: { \"\": { present: true } }\n";
    let errors = match crate::config::load_str(yaml, std::path::Path::new("."), &env) {
        Ok(_) => panic!("accepted"),
        Err(e) => e.0,
    };
    let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    let joined = text.join("\n");
    for want in [
        "routes[0].match.headers.bad header: `bad header` is not a header name",
        "routes[0].match.headers.x-a: one of `exact: VALUE`",
        "routes[0].match.headers.x-b.regex: invalid regular expression `(`",
        "routes[0].match.headers.x-c: one of",
        "routes[0].match.headers.x-d: one of",
        "routes[0].match.query.: a query parameter has a name",
    ] {
        assert!(joined.contains(want), "no `{want}` in:\n{joined}");
    }
}
