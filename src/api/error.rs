//! The API's error envelope, `{"success":false,"error":{"code","message","details"}}`, and how
//! engine errors and refused requests map onto HTTP statuses. No backend's raw error text is
//! ever passed on: a store failure is a 503 with a generic message (the details are logged).

use crate::engine::Error;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A refused or failed request.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Value,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), details: Value::Null }
    }

    pub fn with_details(mut self, details: Value) -> ApiError {
        self.details = details;
        self
    }

    pub fn validation(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "validation_error", message).with_details(json!({ "field": field }))
    }

    pub fn not_found(what: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> ApiError {
        match err {
            Error::Invalid { field, reason } => ApiError::validation(&field, reason),
            Error::Usage(message) => ApiError::new(StatusCode::BAD_REQUEST, "validation_error", message),
            Error::Input { path, .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, "bad_input", format!("cannot read {path}"))
            }
            Error::NotFound(message) => ApiError::not_found(message),
            Error::Conflict(message) => ApiError::new(StatusCode::CONFLICT, "conflict", message),
            e @ (Error::Output { .. } | Error::Store { .. } | Error::Bus { .. }) => {
                tracing::warn!(error = %e, "A request failed on the backend.");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "backend_unavailable",
                    "the store is unavailable; try again",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "success": false,
            "error": { "code": self.code, "message": self.message, "details": self.details },
        });
        (self.status, Json(body)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
