use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};

use crate::ApiError;

/// A JSON request body whose rejection (malformed JSON, missing field, wrong content type) is an
/// [`ApiError`] like every other API error: `{"error": "..."}` with the matching status.
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
            .map_err(|e| ApiError::new(e.status(), e.body_text()))
    }
}
