//! Probes for whoever runs the relay: `/healthz` (is the process alive)
//! and `/readyz` (should a load balancer send it traffic).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// How long `/readyz` waits for the store: a probe that hangs tells a
/// balancer nothing, one that answers "not ready" lets it move on.
const STORE_PATIENCE: Duration = Duration::from_secs(2);

/// `GET /healthz`: 200 when the store answers, 503 when it does not.
pub async fn healthz(State(state): State<AppState>) -> Response {
    match state.store.health().await {
        Ok(()) => axum::Json(serde_json::json!({ "status": "ok", "store": "ok" })).into_response(),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({ "status": "unavailable", "store": error.to_string() })),
        )
            .into_response(),
    }
}

/// `GET /readyz`: 200 `ready` when the store answers with every migration
/// applied and, on a node of several (`--redis-url`), its link to the
/// others is up; otherwise 503 and the reason on one line. From the moment
/// the relay starts draining it is 503, so a balancer stops sending new
/// clients here while the old ones move away.
pub async fn readyz(State(state): State<AppState>) -> Response {
    match not_ready(&state).await {
        None => (StatusCode::OK, "ready\n").into_response(),
        Some(reason) => {
            let reason = reason.replace(['\r', '\n'], " ");
            (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {reason}\n")).into_response()
        }
    }
}

/// Why this relay should not get traffic now, if it should not.
async fn not_ready(state: &AppState) -> Option<String> {
    if state.shutdown.is_cancelled() {
        return Some("draining".into());
    }
    match tokio::time::timeout(STORE_PATIENCE, state.store.ready()).await {
        Err(_) => return Some("the store did not answer in time".into()),
        Ok(Err(error)) => return Some(format!("store: {error}")),
        Ok(Ok(())) => {}
    }
    if state.hub.bridge_up() == Some(false) {
        return Some("the Redis link to the other nodes is down".into());
    }
    None
}
