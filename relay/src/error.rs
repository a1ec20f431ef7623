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
    /// `--tls-cert` or `--tls-key` cannot be used; names the file.
    #[error(transparent)]
    Tls(#[from] crate::tls::Error),
    #[error("wrong email or password")]
    BadLogin,
    #[error("log in first: missing, unknown or expired token")]
    Unauthenticated,
    /// Logged in, but not allowed: not an admin, or a cookie request
    /// without its CSRF token or from another origin. Says which.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The request is malformed or a value is out of range; says which.
    #[error("{0}")]
    BadRequest(String),
    /// Nothing with that id, or nothing with that id the caller may see:
    /// the two are never told apart, so ids of other sites leak nothing.
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Internal(String),
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, text) = match &self {
            Error::BadLogin | Error::Unauthenticated => (StatusCode::UNAUTHORIZED, self.to_string()),
            Error::Forbidden(_) => (StatusCode::FORBIDDEN, self.to_string()),
            Error::BadRequest(_) => (StatusCode::BAD_REQUEST, self.to_string()),
            Error::NotFound | Error::Store(store::Error::NotFound) => (StatusCode::NOT_FOUND, "not found".to_owned()),
            Error::Store(store::Error::Conflict(what)) => (StatusCode::CONFLICT, format!("{what} already exists")),
            Error::Store(_) | Error::Io(_) | Error::Tls(_) | Error::Internal(_) => {
                // The detail goes to the log, not to the client.
                tracing::error!(error = %self, "request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error".to_owned())
            }
        };
        (status, Json(serde_json::json!({ "error": text }))).into_response()
    }
}
