//! The relay's error type for HTTP handlers and start-up.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::store;

/// What can go wrong in the relay outside a WebSocket connection (those
/// answer with error frames instead).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("store: {0}")]
    Store(#[from] store::Error),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("wrong email or password")]
    BadLogin,
    #[error("log in first: missing, unknown or expired token")]
    Unauthenticated,
    #[error("{0}")]
    Internal(String),
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, text) = match &self {
            Error::BadLogin | Error::Unauthenticated => (StatusCode::UNAUTHORIZED, self.to_string()),
            Error::Store(_) | Error::Io(_) | Error::Internal(_) => {
                // The detail goes to the log, not to the client.
                tracing::error!(error = %self, "request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error".to_owned())
            }
        };
        (status, Json(serde_json::json!({ "error": text }))).into_response()
    }
}
