use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::{ApiError, ApiUser};

#[derive(Serialize, ToSchema)]
pub struct Me {
    pub user_id: String,
    pub email: String,
    pub username: String,
    /// `account_admin`, `developer` or `read_only`.
    pub role: String,
    pub account_id: String,
    pub account_name: String,
    /// `developer`, `starter`, `enterprise` or `enterprise_plus`.
    pub plan: String,
}

/// Who the caller is.
#[utoipa::path(get, path = "/api/v1/me", tag = "accounts",
    responses((status = 200, body = Me), (status = 401, body = crate::error::ErrorBody)))]
pub async fn me(user: ApiUser) -> Result<Json<Me>, ApiError> {
    let p = user.principal;
    Ok(Json(Me {
        user_id: p.user_id,
        email: p.email,
        username: p.username,
        role: p.role.to_string(),
        account_id: p.account_id,
        account_name: p.account_name,
        plan: p.plan.to_string(),
    }))
}
