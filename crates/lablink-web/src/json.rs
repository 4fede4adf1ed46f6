use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;

use crate::ApiError;

/// A JSON request body whose rejection (malformed JSON, missing field, wrong content type) is an
/// [`ApiError`] like every other API error: `{"error": "..."}` with the matching status, in
/// plain words.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        axum::Json::<T>::from_request(req, state)
            .await
            .map(|axum::Json(v)| ApiJson(v))
            .map_err(|e| ApiError::new(e.status(), explain(&e)))
    }
}

/// What was wrong with the body and what to send instead.
fn explain(rejection: &JsonRejection) -> String {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            "Send the body as JSON, with the header `Content-Type: application/json`.".to_owned()
        }
        JsonRejection::JsonSyntaxError(_) => {
            "The body is not valid JSON. Check quotes, commas and brackets.".to_owned()
        }
        // serde's own words name the field and what it expected ("missing field `name`").
        JsonRejection::JsonDataError(e) => match std::error::Error::source(e) {
            Some(cause) => format!(
                "The JSON does not fit this endpoint: {}. See /api/v1/openapi.json.",
                cause
                    .to_string()
                    .split(" at line ")
                    .next()
                    .unwrap_or_default()
            ),
            None => "The JSON does not fit this endpoint. See /api/v1/openapi.json.".to_owned(),
        },
        _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            "The body is too large.".to_owned()
        }
        _ => "The body could not be read.".to_owned(),
    }
}
