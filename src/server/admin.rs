//! The admin HTTP listener: `/healthz` (live), `/readyz` (config loaded and every JWT
//! provider holds keys), `/metrics` (Prometheus text), and, with `signing`, ward's own
//! issuer: `/.well-known/jwks.json`, `/.well-known/openid-configuration` and the token
//! exchange at `POST /token` (SPEC §8); `/status`, what ward holds (JSON, or HTML for a
//! browser).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::engine::exchange::Exchanged;
use crate::issuer::exchange::{self, MAX_BODY, OAuthError};
use crate::state::AppState;

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/token", post(token))
        .route("/status", get(status))
        .with_state(state)
}

/// 200 when every JWT provider holds keys; a 503 names the providers that hold none.
async fn readyz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let engine = state.engine.load();
    let missing: Vec<&str> = engine.without_keys().collect();
    if missing.is_empty() {
        (StatusCode::OK, "ready\n".to_string())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: no keys yet for {}\n", missing.join(", ")),
        )
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    // Read at scrape time: a gauge kept on every insert would cost the hot path.
    let engine = state.engine.load();
    let entries = engine.token_cache_entries();
    state
        .metrics
        .token_cache_entries
        .set(i64::try_from(entries).unwrap_or(i64::MAX));
    // Set from the engine deciding now: a provider a reload removed has no series.
    let introspection = &state.metrics.introspection_cache_entries;
    introspection.reset();
    for (provider, n) in engine.introspection_cache_entries().await {
        introspection
            .with_label_values(&[provider])
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

fn json(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

fn not_issuing() -> Response {
    (
        StatusCode::NOT_FOUND,
        "ward issues no tokens: no `signing` is configured\n",
    )
        .into_response()
}

/// The public half of every signing key.
async fn jwks(State(state): State<Arc<AppState>>) -> Response {
    let engine = state.engine.load();
    match &engine.config().signing {
        // Keys change only with a reload: caches may keep them a little while.
        Some(s) => (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "max-age=60"),
            ],
            s.keys.jwks().to_string(),
        )
            .into_response(),
        None => not_issuing(),
    }
}

async fn discovery(State(state): State<Arc<AppState>>) -> Response {
    let engine = state.engine.load();
    match &engine.config().signing {
        Some(s) => json(StatusCode::OK, s.discovery(engine.exchanges()).to_string()),
        None => not_issuing(),
    }
}

/// RFC 8693 token exchange: a form-encoded request, a JSON answer; every refusal an RFC
/// 6749 §5.2 error with status 400 (503 `server_error` when an IdP is unreachable).
async fn token(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let engine = state.engine.load();
    let count = |result: &str| {
        state
            .metrics
            .token_exchange_requests
            .with_label_values(&[result])
            .inc();
    };
    if !engine.exchanges() {
        return not_issuing();
    }
    let refuse = |e: OAuthError, why: &str| {
        count(e.result());
        tracing::debug!(error = e.error, reason = why, "token exchange refused");
        let status = if e.error == "server_error" {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::BAD_REQUEST
        };
        json(status, e.body())
    };
    // One byte over the cap tells a body that is too large from one that fits.
    let bytes = match axum::body::to_bytes(body, MAX_BODY + 1).await {
        Ok(b) => b,
        Err(_) => {
            let e = OAuthError::invalid_request(
                "the request body is over 64 KiB or was not received whole",
            );
            return refuse(e, "body not read");
        }
    };
    let content_type = headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes());
    let req = match exchange::parse(content_type, &bytes) {
        Ok(r) => r,
        Err(e) => {
            let why = e.description.to_string();
            return refuse(e, &why);
        }
    };
    match engine.exchange(&req).await {
        Exchanged::Issued(m, expires_in) => {
            count("issued");
            tracing::debug!(audience = req.target, "token exchange: issued");
            json(StatusCode::OK, exchange::issued_body(&m.token, expires_in))
        }
        Exchanged::Refused(e, why) => refuse(e, &why),
    }
}

/// What ward holds (`crate::status`): HTML when the client asks for `text/html` before
/// (or without) `application/json`, as a browser does; JSON otherwise. The page runs no
/// script: its content-security-policy allows none, and inline styles only.
async fn status(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let doc = crate::status::collect(&state).await;
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if prefers_html(accept) {
        (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; \
                     form-action 'none'; frame-ancestors 'none'",
                ),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::REFERRER_POLICY, "no-referrer"),
            ],
            doc.html(),
        )
            .into_response()
    } else {
        (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            doc.to_json(),
        )
            .into_response()
    }
}

/// Whether an `Accept` value names `text/html` before `application/json` (or without
/// it). `*/*` (curl) and anything else get JSON.
fn prefers_html(accept: &str) -> bool {
    let position = |want: &str| {
        accept.split(',').position(|part| {
            part.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case(want))
        })
    };
    match (position("text/html"), position("application/json")) {
        (Some(h), Some(j)) => h < j,
        (Some(_), None) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::prefers_html;

    #[test]
    fn html_only_for_clients_that_ask_for_it_first() {
        assert!(prefers_html(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        ));
        assert!(prefers_html("TEXT/HTML"));
        assert!(!prefers_html("*/*"));
        assert!(!prefers_html(""));
        assert!(!prefers_html("application/json"));
        assert!(!prefers_html("application/json, text/html"));
        assert!(prefers_html("text/html;q=0.9, application/json;q=0.8"));
    }
}
