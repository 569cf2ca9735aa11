//! The admin HTTP listener: `/healthz` (live), `/readyz` (config loaded and every JWT
//! provider holds keys), `/metrics` (Prometheus text).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::state::AppState;

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
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
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
