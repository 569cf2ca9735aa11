//! ward against a stand-in introspection endpoint ([`crate::introspect_server`]): one
//! introspection provider `partners` on `/api`, its client secret passed as
//! `${PARTNERS_SECRET}`, and the outcomes the suites compare answers with.

#![allow(dead_code)]

use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use serde_json::json;
use ward::clock::ManualClock;

use crate::common::{Req, Ward, manual_clock, now};
use crate::introspect_server::{CLIENT_ID, CLIENT_SECRET, Introspect};

/// A config with one introspection provider `partners` on `/api`; `extra` is appended
/// to the provider's settings (indented by 6). Unless `extra` says otherwise it takes
/// any audience and a 500 ms timeout, and its breaker opens only after 50 failures.
pub fn config(ep: &Introspect, extra: &str) -> String {
    let defaults = [
        ("audiences:", "audiences: any"),
        ("timeout:", "timeout: 500ms"),
        (
            "circuit_breaker:",
            "circuit_breaker: { failures: 50, cool_down: 5s }",
        ),
    ];
    let mut settings = String::new();
    for (key, line) in defaults {
        if !extra.contains(key) {
            settings.push_str(&format!("      {line}\n"));
        }
    }
    for l in extra.lines().filter(|l| !l.trim().is_empty()) {
        settings.push_str(&format!("      {}\n", l.trim()));
    }
    format!(
        r#"
providers:
  - name: partners
    introspection:
      endpoint: {url}
      client_id: {CLIENT_ID}
      client_secret: ${{PARTNERS_SECRET}}
{settings}
routes:
  - name: api
    match: {{ path_prefix: /api }}
    providers: [partners]
"#,
        url = ep.url()
    )
}

pub async fn start(yaml: &str) -> Ward {
    Ward::builder(yaml)
        .env("PARTNERS_SECRET", CLIENT_SECRET)
        .start()
        .await
}

/// [`start`] on a manual clock at [`crate::common::CLOCK_START`], and the hand that
/// moves it: answers' `exp` must then be set from that time ([`active_until`]).
pub async fn start_manual(yaml: &str) -> (Ward, ManualClock) {
    let (clock, hand) = manual_clock();
    let ward = Ward::builder(yaml)
        .env("PARTNERS_SECRET", CLIENT_SECRET)
        .clock(clock)
        .start()
        .await;
    (ward, hand)
}

/// `GET /api/x` with `Authorization: Bearer <token>`.
pub fn with_token(token: &str) -> CheckRequest {
    Req::get("/api/x").bearer(token).to_map()
}

/// An active answer for `sub` that expires `ttl` seconds from now (the wall clock).
pub fn active(sub: &str, ttl: u64) -> serde_json::Value {
    active_until(sub, now() + ttl)
}

/// An active answer for `sub` that expires at `exp`.
pub fn active_until(sub: &str, exp: u64) -> serde_json::Value {
    json!({"active": true, "sub": sub, "scope": "orders:read orders:write", "exp": exp})
}

pub const OK: (i32, u16, &str) = (0, 200, "ok");
pub const UNAVAILABLE: (i32, u16, &str) = (14, 503, "authn_unavailable");
pub const INVALID: (i32, u16, &str) = (16, 401, "invalid_token");
