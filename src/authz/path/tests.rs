//! Path normalisation, path patterns and host patterns.

use super::*;

fn norm(p: &str) -> Result<String, PathError> {
    normalize(p).map(|s| format!("/{}", s.join("/")))
}

#[test]
fn dot_segments_and_encodings_resolve() {
    assert_eq!(norm("/public/../admin").unwrap(), "/admin");
    assert_eq!(norm("/public/%2e%2e/admin").unwrap(), "/admin");
    assert_eq!(norm("/public/%2E%2e/admin").unwrap(), "/admin");
    assert_eq!(norm("//admin").unwrap(), "/admin");
    assert_eq!(norm("/./admin/").unwrap(), "/admin");
    assert_eq!(norm("/../../admin").unwrap(), "/admin");
    assert_eq!(norm("/a%20b?x=/../y").unwrap(), "/a b");
    assert_eq!(norm("/caf%C3%A9").unwrap(), "/café");
    assert_eq!(norm("/").unwrap(), "/");
}

#[test]
fn unsafe_paths_are_refused() {
    assert_eq!(norm("/a%2fb"), Err(PathError::EncodedSeparator));
    assert_eq!(norm("/a%2Fb"), Err(PathError::EncodedSeparator));
    assert_eq!(norm("/a%5cb"), Err(PathError::EncodedSeparator));
    assert_eq!(norm("/a\\..\\admin"), Err(PathError::EncodedSeparator));
    assert_eq!(norm("/a%00b"), Err(PathError::EncodedSeparator));
    assert_eq!(norm("/a%zz"), Err(PathError::BadEncoding));
    assert_eq!(norm("/a%"), Err(PathError::BadEncoding));
    assert_eq!(norm("/a%ff"), Err(PathError::BadEncoding));
    assert_eq!(norm("/%252e%252e/admin"), Err(PathError::BadEncoding));
    assert_eq!(norm("/public#/../admin"), Err(PathError::Fragment));
    assert_eq!(norm("admin"), Err(PathError::NotAbsolute));
    assert_eq!(norm("*"), Err(PathError::NotAbsolute));
}

#[test]
fn segment_parameters_are_refused_raw_or_encoded() {
    // Tomcat and Jetty cut `;...` off each segment: `..;` is `..` to them.
    for p in [
        "/public/..;/admin/users",
        "/public/..%3B/admin/users",
        "/public/..%3b/admin",
        "/admin;jsessionid=1/users",
        "/;x=1/admin",
        "/a/b;",
    ] {
        assert_eq!(norm(p), Err(PathError::SegmentParameter), "{p}");
    }
    assert_eq!(
        norm("/a/b?x=1;y=2").unwrap(),
        "/a/b",
        "the query may hold `;`"
    );
}

fn segs(p: &str) -> Segments<'_> {
    normalize(p).unwrap()
}

#[test]
fn prefix_matches_whole_segments() {
    let m = PathMatch::prefix("/public").unwrap();
    assert!(m.matches(&segs("/public")).is_some());
    assert!(m.matches(&segs("/public/x")).is_some());
    assert!(m.matches(&segs("/publicity")).is_none());
    assert!(
        PathMatch::prefix("/")
            .unwrap()
            .matches(&segs("/anything"))
            .is_some()
    );
}

#[test]
fn patterns_bind_params_and_globs() {
    let m = PathMatch::pattern("/tenants/{tenant}/orders/**").unwrap();
    let p = m
        .matches(&segs("/tenants/acme%20co/orders/1/items"))
        .unwrap();
    assert_eq!(&*p[0].0, "tenant");
    assert_eq!(p[0].1, "acme co");
    assert!(m.matches(&segs("/tenants/acme/orders")).is_some());
    assert!(m.matches(&segs("/tenants/acme")).is_none());
    assert!(m.matches(&segs("/tenants/acme/invoices")).is_none());

    let m = PathMatch::pattern("/a/**/b/{id}").unwrap();
    let p = m.matches(&segs("/a/x/y/b/7")).unwrap();
    assert_eq!(p, vec![(Arc::from("id"), Cow::Borrowed("7"))]);
    assert!(m.matches(&segs("/a/b/7")).is_some());

    let m = PathMatch::pattern("/admin").unwrap();
    assert!(m.matches(&segs("/admin/")).is_some());
    assert!(m.matches(&segs("/admin/x")).is_none());
    assert!(
        PathMatch::pattern("/x/*/y")
            .unwrap()
            .matches(&segs("/x/1/y"))
            .is_some()
    );
}

#[test]
fn bad_patterns_are_config_errors() {
    assert!(PathMatch::pattern("no-slash").is_err());
    assert!(PathMatch::pattern("/a/{b}/{b}").is_err());
    assert!(PathMatch::pattern("/a/x{b}").is_err());
    assert!(PathMatch::pattern("/a/{}").is_err());
    assert!(PathMatch::pattern("/a/../b").is_err());
    assert!(PathMatch::pattern("/a?x=1").is_err());
    assert!(PathMatch::prefix("/a/{b}").is_err());
    assert!(PathMatch::pattern("/a;v=1/b").is_err());
    assert!(PathMatch::prefix("/a;b").is_err());
}

/// The plain recursive definition of a match: every way to place each `**`, fewest
/// segments first. Exponential, so only for checking [`match_from`] on small inputs.
fn reference<'a>(pat: &[PatSeg], path: &[Cow<'a, str>], params: &mut Params<'a>) -> bool {
    let Some((first, rest)) = pat.split_first() else {
        return path.is_empty();
    };
    match first {
        PatSeg::Rest => (0..=path.len()).any(|skip| {
            let mark = params.len();
            let ok = reference(rest, &path[skip..], params);
            if !ok {
                params.truncate(mark);
            }
            ok
        }),
        _ => {
            let Some((seg, tail)) = path.split_first() else {
                return false;
            };
            match first {
                PatSeg::Lit(l) if l != seg => false,
                PatSeg::Param(name) => {
                    params.push((name.clone(), seg.clone()));
                    reference(rest, tail, params)
                }
                _ => reference(rest, tail, params),
            }
        }
    }
}

#[test]
fn matching_agrees_with_the_recursive_definition() {
    // Every pattern of up to 5 segments over {a, b, {p}, *, **} (the parameter at
    // most once) against every path of up to 6 segments over {a, b}.
    let kinds = |i: usize| match i {
        0 => PatSeg::Lit("a".into()),
        1 => PatSeg::Lit("b".into()),
        2 => PatSeg::Param("p".into()),
        3 => PatSeg::One,
        _ => PatSeg::Rest,
    };
    let mut patterns = vec![Vec::new()];
    for len in 1..=5u32 {
        for mut n in 0..5usize.pow(len) {
            let mut pat = Vec::new();
            for _ in 0..len {
                pat.push(kinds(n % 5));
                n /= 5;
            }
            if pat.iter().filter(|s| matches!(s, PatSeg::Param(_))).count() <= 1 {
                patterns.push(pat);
            }
        }
    }
    let mut paths: Vec<Segments<'static>> = vec![Vec::new()];
    for len in 1..=6u32 {
        for n in 0..2usize.pow(len) {
            let segs = (0..len).map(|i| if n >> i & 1 == 0 { "a" } else { "b" });
            paths.push(segs.map(Cow::Borrowed).collect());
        }
    }
    let mut checked = 0;
    for pat in &patterns {
        for path in &paths {
            let (mut want, mut got) = (Vec::new(), Vec::new());
            let expected = reference(pat, path, &mut want).then_some(want);
            let actual = match_from(pat, path, &mut got).then_some(got);
            assert_eq!(actual, expected, "{pat:?} on {path:?}");
            checked += 1;
        }
    }
    assert!(checked > 300_000, "{checked}");
}

#[test]
fn many_globs_on_a_long_path_stay_linear() {
    // Backtracking over every placement would take minutes here.
    let m = PathMatch::pattern("/**/x/**/y/**/z").unwrap();
    let long = "/x".repeat(30_000);
    let s = normalize(&long).unwrap();
    assert!(m.matches(&s).is_none());
    let hit = format!("{long}/y/z");
    assert!(m.matches(&normalize(&hit).unwrap()).is_some());
}

#[test]
fn hosts_ignore_case_and_port() {
    let h = HostPattern::parse("API.example.com").unwrap();
    assert!(h.matches("api.example.com:8443"));
    assert!(h.matches("Api.Example.Com"));
    assert!(h.matches("api.example.com."));
    assert!(!h.matches("api.example.com.evil.io"));
    let w = HostPattern::parse("*.example.com").unwrap();
    assert!(w.matches("a.example.com"));
    assert!(!w.matches("example.com"));
    assert!(!w.matches("aexample.com"));
    assert_eq!(strip_port("[::1]:80"), "[::1]");
    assert!(HostPattern::parse("a b").is_err());
    assert!(HostPattern::parse("[::1]").unwrap().matches("[::1]:8443"));
    for with_port in [
        "admin.example.com:8443",
        "*.example.com:443",
        "[::1]:80",
        "::1",
    ] {
        assert!(HostPattern::parse(with_port).is_err(), "{with_port}");
    }
    let e = HostPattern::parse("admin.example.com:8443").unwrap_err();
    assert!(e.ends_with("write `admin.example.com`"), "{e}");
}

// === escapes at the end of a segment, and literal `%` ===

#[test]
fn an_escape_cut_short_at_the_end_of_a_segment_is_refused() {
    // One hex digit, or none, before the segment ends (the path, a `/`, or the query).
    for p in ["/a%2", "/a%2/b", "/%2", "/a%2?x=1", "/a%", "/a%/b", "/%"] {
        assert_eq!(norm(p), Err(PathError::BadEncoding), "{p}");
    }
    // An escape that takes the segment's last two bytes is whole.
    assert_eq!(norm("/a%41").unwrap(), "/aA");
    assert_eq!(norm("/%41").unwrap(), "/A");
}

#[test]
fn an_encoded_percent_is_a_literal_percent() {
    assert_eq!(norm("/a%25").unwrap(), "/a%");
    assert_eq!(norm("/100%25off").unwrap(), "/100%off");
    assert_eq!(norm("/%25/x").unwrap(), "/%/x");
    assert_eq!(norm("/a%25zz").unwrap(), "/a%zz");
    // What follows the decoded `%` is no escape: one hex digit, or none, then the end.
    assert_eq!(norm("/a%252").unwrap(), "/a%2");
    assert_eq!(norm("/a%25%25").unwrap(), "/a%%");
    assert_eq!(norm("/a%252g").unwrap(), "/a%2g");
    // Decoded again, these would be other text: refused as double encodings.
    for p in ["/a%2541", "/100%2525off", "/%252F"] {
        assert_eq!(norm(p), Err(PathError::BadEncoding), "{p}");
    }
    // Matched as decoded text, against a pattern written decoded.
    let m = PathMatch::pattern("/discounts/*").unwrap();
    assert!(m.matches(&segs("/discounts/100%25off")).is_some());
}

#[test]
fn a_parameter_is_a_whole_braced_segment_of_letters_digits_and_underscores() {
    let m = PathMatch::pattern("/t/{tenant_id}/{v2}").unwrap();
    assert_eq!(m.params(), ["tenant_id", "v2"]);
    let p = m.matches(&segs("/t/acme/x")).unwrap();
    assert_eq!(&*p[0].0, "tenant_id");
    for bad in [
        "/a/{bc", "/a/bc}", "/a/{b-c}", "/a/{b.c}", "/a/{b c}", "/a/{}",
    ] {
        assert!(PathMatch::pattern(bad).is_err(), "{bad}");
    }
}
