//! Request bodies: JSON only (415 otherwise), within the size limit (413), parsed strictly into
//! the endpoint's type — unknown fields and wrong types (an object such as `{"$gt":""}` where a
//! string is expected) are a 400 naming the field's path, never a value passed on to a backend.

use super::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

/// A JSON body of type `T`.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json =
            req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
                v.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
            });
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|_| {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the body is larger than the limit")
        })?;
        parse(&bytes).map(Body)
    }
}

/// Parses `bytes` into `T`, naming the path of a field that does not fit.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    match parsed {
        Ok(value) => de.end().map(|()| value).map_err(|e| syntax(&e)),
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                return Err(syntax(&inner));
            }
            let field = if path == "." { String::new() } else { path };
            Err(ApiError::validation(&field, message_of(&inner)))
        }
    }
}

fn syntax(e: &serde_json::Error) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", format!("the body is not valid JSON: {}", message_of(e)))
}

/// serde_json's message without its "at line 1 column 5" suffix (the path says where).
fn message_of(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Lead {
        name: Option<String>,
        tags: Vec<String>,
    }

    #[test]
    fn wrong_types_name_their_path_and_operators_are_refused() {
        let err = parse::<Lead>(br#"{"name": {"$gt": ""}, "tags": []}"#).err().map(|e| (e.status, e.details));
        assert_eq!(err, Some((StatusCode::BAD_REQUEST, serde_json::json!({ "field": "name" }))));
        let err = parse::<Lead>(br#"{"tags": ["a", 3]}"#).err().map(|e| e.details);
        assert_eq!(err, Some(serde_json::json!({ "field": "tags[1]" })));
        let err = parse::<Lead>(br#"{"tags": [], "$where": "1"}"#).err().map(|e| e.code);
        assert_eq!(err, Some("validation_error"));
        let err = parse::<Lead>(br#"{"tags": [}"#).err().map(|e| e.code);
        assert_eq!(err, Some("malformed_json"));
    }
}
