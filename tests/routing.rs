//! Route selection through `Authorization/Check` (SPEC §3): paths are normalised before
//! matching (dot segments and encodings cannot dodge a route, paths that cannot be
//! normalised are 400), prefixes match whole segments, a request beyond 4 MiB is still
//! decided, and `context_extensions` select a route.

mod check_setup;
mod common;

use check_setup::start;
use common::{Req, Shape, allowed, code, denial, describe, route_of};

// === paths ===

#[tokio::test]
async fn dot_segments_and_encodings_cannot_dodge_the_admin_route() {
    let ward = start().await;
    for path in [
        "/admin",
        "/admin/",
        "/public/../admin",
        "/public/%2e%2e/admin",
        "/public/%2E%2E/admin",
        "/public/./../admin/x",
        "//admin",
        "/./admin",
        "/admin?x=/public",
        "/admin?next=/../public",
    ] {
        let r = ward.check(Req::get(path).to_map()).await;
        let d = denial(&r);
        assert_eq!(
            (d.http_status, d.error.as_str(), route_of(&r).as_deref()),
            (401, "missing_credential", Some("admin")),
            "{path}: {}",
            describe(&r)
        );
    }
    for path in [
        "/public",
        "/public/",
        "/public/x",
        "/public?x=/admin",
        "/admin/../public",
    ] {
        let r = ward.check(Req::get(path).to_map()).await;
        allowed(&r);
        assert_eq!(route_of(&r).as_deref(), Some("public"), "{path}");
    }
}

#[tokio::test]
async fn a_check_request_beyond_4_mib_is_decided_not_errored() {
    // A 5 MiB buffered body, and a 5 MiB header: a decision each, never a gRPC error
    // (which Envoy treats as a failure of ward, allowed under failure_mode_allow).
    let ward = start().await;
    let mut with_body = Req::get("/api").to_map();
    if let Some(http) = with_body
        .attributes
        .as_mut()
        .and_then(|a| a.request.as_mut())
        .and_then(|r| r.http.as_mut())
    {
        http.body = "a".repeat(5 << 20);
    }
    let big_header = Req::get("/api")
        .header("x-big", &"b".repeat(5 << 20))
        .to_raw();
    for (what, req) in [("body", with_body), ("header", big_header)] {
        let r = ward
            .try_check(req)
            .await
            .unwrap_or_else(|s| panic!("{what}: {s:?}"));
        assert_eq!(
            denial(&r).short(),
            (code::UNAUTHENTICATED, 401, "missing_credential"),
            "{what}"
        );
    }
}

#[tokio::test]
async fn paths_that_cannot_be_normalised_are_400() {
    let ward = start().await;
    for path in [
        "/a%2fb",
        "/public%2f..%2fadmin",
        "/public%00",
        "/public/%00/x",
        "/public#/../admin",
        "/public\\..\\admin",
        "/public/%zz",
        "/public/%252e%252e/admin",
        "/public/%c0%ae%c0%ae/admin",
        "admin",
        // `..;` is `..` to servlet containers: /admin/users, not a public path.
        "/public/..;/admin/users",
        "/public/..%3B/admin/users",
        "/admin;jsessionid=1/users",
    ] {
        for shape in Shape::BOTH {
            let r = ward
                .check(Req::get(path).bearer("irrelevant").build(shape))
                .await;
            let d = denial(&r);
            assert_eq!(
                d.short(),
                (code::INVALID_ARGUMENT, 400, "invalid_request"),
                "{path} {shape:?}: {}",
                describe(&r)
            );
        }
    }
}

#[tokio::test]
async fn path_prefix_matches_whole_segments_only() {
    let ward = start().await;
    for (path, route) in [
        ("/public", Some("public")),
        ("/public/a/b", Some("public")),
        ("/publicity", None),
        ("/public-x", None),
        ("/rshs/x", Some("rs-hs")),
        ("/rs/x", Some("rs-only")),
    ] {
        let r = ward.check(Req::get(path).to_map()).await;
        assert_eq!(route_of(&r).as_deref(), route, "{path}: {}", describe(&r));
        if route.is_none() {
            assert_eq!(denial(&r).error, "no_route", "{path}");
        }
    }
}

// === context_extensions ===

#[tokio::test]
async fn context_extension_selects_the_internal_route() {
    let ward = start().await;
    let billing = "spiffe://cluster.local/ns/billing/sa/batch";
    let r = ward
        .check(
            Req::get("/anything")
                .context("ward_route", "internal")
                .principal(billing)
                .to_map(),
        )
        .await;
    allowed(&r);
    assert_eq!(route_of(&r).as_deref(), Some("internal"));

    // Same context, another workload: the internal route still decides, and refuses.
    let r = ward
        .check(
            Req::get("/public")
                .context("ward_route", "internal")
                .principal("spiffe://cluster.local/ns/web/sa/frontend")
                .to_map(),
        )
        .await;
    let d = denial(&r);
    assert_eq!(
        (d.http_status, d.error.as_str()),
        (403, "forbidden"),
        "{}",
        describe(&r)
    );
    assert_eq!(route_of(&r).as_deref(), Some("internal"));

    // No context, or another value: the internal route is never chosen.
    for req in [
        Req::get("/anything").principal(billing),
        Req::get("/anything")
            .context("ward_route", "external")
            .principal(billing),
        Req::get("/anything")
            .context("other", "internal")
            .principal(billing),
    ] {
        let r = ward.check(req.to_map()).await;
        assert_eq!(
            denial(&r).error,
            "no_route",
            "{:?}: {}",
            req.context,
            describe(&r)
        );
    }
    let r = ward
        .check(Req::get("/public").principal(billing).to_map())
        .await;
    assert_eq!(route_of(&r).as_deref(), Some("public"));
}
