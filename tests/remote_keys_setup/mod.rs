//! ward against a stand-in IdP ([`crate::idp`]): one provider `idp` with issuer [`ISS`]
//! that fetches its keys from a `jwks_uri` (or discovery), the tokens it accepts, and a
//! short reading of an answer.

#![allow(dead_code)]

use std::time::Duration;

use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse};
use serde_json::json;
use ward::clock::ManualClock;

use crate::common::{Req, TestKey, Ward, manual_clock, now, summary, wait_until};
use crate::idp::Idp;

/// How long a test waits for something ward does in the background.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A token from `iss` for audience `api`, valid for `ttl` seconds (by the wall clock).
pub fn token(k: &TestKey, iss: &str, sub: &str, ttl: u64) -> String {
    token_until(k, iss, sub, now() + ttl)
}

/// A token from `iss` for audience `api` that expires at `exp`.
pub fn token_until(k: &TestKey, iss: &str, sub: &str, exp: u64) -> String {
    k.sign(&json!({"iss": iss, "aud": "api", "sub": sub, "exp": exp, "roles": ["reader"]}))
}

/// `GET path`, with `Authorization: Bearer <token>` when a token is given.
pub fn get(path: &str, bearer: Option<&str>) -> CheckRequest {
    match bearer {
        Some(t) => Req::get(path).bearer(t).to_map(),
        None => Req::get(path).to_map(),
    }
}

/// (gRPC code, HTTP status, reason, subject header)
pub fn outcome(r: &CheckResponse) -> (i32, u16, String, Option<String>) {
    let s = summary(r);
    let subject = s.subject().map(str::to_string);
    (s.grpc_code, s.http_status, s.reason, subject)
}

pub fn config(iss: &str, key_source: &str, extra: &str) -> String {
    let timeout = if extra.contains("timeout:") {
        ""
    } else {
        "timeout: 500ms"
    };
    format!(
        r#"
providers:
  - name: idp
    jwt:
      issuer: "{iss}"
      audiences: [api]
      {key_source}
      algorithms: [RS256, PS256, ES256, ES384, EdDSA, HS256]
      {timeout}
      {extra}
routes:
  - name: api
    match: {{ path_prefix: /api }}
    providers: [idp]
"#
    )
}

pub const ISS: &str = "https://idp.test";

/// ward with one provider `idp` (issuer [`ISS`]) fetching its keys from `idp`'s
/// jwks_uri, `extra` added to the provider's settings.
pub async fn start_on(idp: &Idp, extra: &str) -> Ward {
    Ward::start(&config(
        ISS,
        &format!("jwks_uri: {}", idp.jwks_uri()),
        extra,
    ))
    .await
}

/// [`start_on`] on a manual clock at [`crate::common::CLOCK_START`], and the hand that
/// moves it: tokens must then expire after that time ([`token_until`]).
pub async fn start_manual_on(idp: &Idp, extra: &str) -> (Ward, ManualClock) {
    let (clock, hand) = manual_clock();
    let yaml = config(ISS, &format!("jwks_uri: {}", idp.jwks_uri()), extra);
    (Ward::builder(&yaml).clock(clock).start().await, hand)
}

/// Waits until `idp` is asked for its keys again, moving ward's manual `clock` one
/// second at a time so that its refresh comes due.
pub async fn wait_refresh(idp: &Idp, clock: &ManualClock) {
    let hits = idp.jwks_hits();
    wait_until("a refresh", PATIENCE, async || {
        clock.advance(Duration::from_secs(1));
        idp.jwks_hits() > hits
    })
    .await
}
