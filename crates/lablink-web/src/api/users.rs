use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use lablink_core::Role;
use lablink_service::ServiceError;
use lablink_service::accounts::User;
use lablink_service::accounts::UserInput;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ErrorBody;
use crate::{ApiError, ApiJson, ApiUser, AppState};

#[derive(Serialize, ToSchema)]
pub struct UserJson {
    pub id: String,
    pub email: String,
    pub username: String,
    pub role: String,
    /// Unix milliseconds.
    pub created_at: i64,
}

impl From<User> for UserJson {
    fn from(u: User) -> Self {
        UserJson {
            id: u.id,
            email: u.email,
            username: u.username,
            role: u.role.to_string(),
            created_at: u.created_at,
        }
    }
}

fn parse_role(text: &str) -> Result<Role, ApiError> {
    text.parse::<Role>()
        .map_err(|e| ServiceError::BadInput(e.to_string()).into())
}

/// The users of the caller's account (admins only).
#[utoipa::path(get, path = "/api/v1/users", tag = "accounts",
    responses((status = 200, body = Vec<UserJson>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_users(
    State(state): State<AppState>,
    user: ApiUser,
) -> Result<Json<Vec<UserJson>>, ApiError> {
    let users = state.services.list_users(&user.principal).await?;
    Ok(Json(users.into_iter().map(UserJson::from).collect()))
}

#[derive(Deserialize, ToSchema)]
pub struct NewUserJson {
    pub email: String,
    pub username: String,
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
    pub role: String,
}

/// Adds a user to the caller's account (admins only).
#[utoipa::path(post, path = "/api/v1/users", tag = "accounts", request_body = NewUserJson,
    responses((status = 201, body = UserJson), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_user(
    State(state): State<AppState>,
    user: ApiUser,
    ApiJson(body): ApiJson<NewUserJson>,
) -> Result<(StatusCode, Json<UserJson>), ApiError> {
    let role = parse_role(&body.role)?;
    let created = state
        .services
        .add_user(
            &user.principal,
            UserInput {
                email: body.email,
                username: body.username,
                password: body.password,
                role,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

#[derive(Deserialize, ToSchema)]
pub struct RoleChange {
    /// `account_admin`, `developer` or `read_only`.
    pub role: String,
}

/// Changes the role of a user of the caller's account (admins only).
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "accounts", request_body = RoleChange,
    params(("id" = String, Path, description = "user id")),
    responses((status = 200, body = UserJson), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn change_role(
    State(state): State<AppState>,
    user: ApiUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RoleChange>,
) -> Result<Json<UserJson>, ApiError> {
    let role = parse_role(&body.role)?;
    let changed = state
        .services
        .change_role(&user.principal, &id, role)
        .await?;
    Ok(Json(changed.into()))
}
