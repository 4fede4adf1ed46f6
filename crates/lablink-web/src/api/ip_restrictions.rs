//! `/api/v1/ip-restrictions`: an account's IP rules, the switch that enforces them, and the
//! address tester, and where webhook deliveries may come from (account admins). The same checks as the settings page: bad ranges, a range on
//! both lists and changes that would lock the caller out are refused with 422.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use lablink_service::ip_restrictions::IpRule;
use lablink_service::ip_restrictions::{IpRuleInput, WebhookSourcesInput};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ErrorBody;
use crate::{ApiError, ApiJson, ApiUser, AppState, ClientIp};

#[derive(Serialize, ToSchema)]
pub struct IpRuleJson {
    pub id: String,
    pub name: String,
    pub description: String,
    /// `allow` or `deny`.
    pub kind: String,
    /// Normalised CIDR ranges.
    pub ranges: Vec<String>,
    pub updated_at: i64,
}

impl From<&IpRule> for IpRuleJson {
    fn from(r: &IpRule) -> Self {
        IpRuleJson {
            id: r.rule.id.clone(),
            name: r.rule.name.clone(),
            description: r.description.clone(),
            kind: r.rule.kind.as_str().to_owned(),
            ranges: r.rule.ranges.iter().map(ToString::to_string).collect(),
            updated_at: r.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct IpRestrictionsJson {
    /// Whether the rules are enforced.
    pub enabled: bool,
    pub rules: Vec<IpRuleJson>,
    /// The caller's address as lablink sees it.
    pub your_address: Option<String>,
    /// Whether the saved rules let the caller's address in.
    pub your_address_allowed: Option<bool>,
    pub webhook_sources: WebhookSourcesJson,
}

/// Where webhook deliveries may come from.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct WebhookSourcesJson {
    /// Whether deliveries from outside `ranges` are refused (403, counted for the doctor).
    pub enabled: bool,
    /// Normalised CIDR ranges (in a request: CIDR ranges or single addresses).
    pub ranges: Vec<String>,
    /// The ranges the account's GitLab publishes for its webhooks (gitlab.com's); empty for a
    /// self-managed instance. Ignored in a request.
    #[serde(default)]
    pub published: Vec<String>,
}

/// The account's IP restrictions.
#[utoipa::path(get, path = "/api/v1/ip-restrictions", tag = "ip-restrictions",
    responses((status = 200, body = IpRestrictionsJson), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn get_restrictions(
    State(state): State<AppState>,
    user: ApiUser,
    ClientIp(ip): ClientIp,
) -> Result<Json<IpRestrictionsJson>, ApiError> {
    let view = state
        .services
        .ip_restrictions(&user.principal, ip.as_deref())
        .await?;
    Ok(Json(IpRestrictionsJson {
        enabled: view.restrictions.enabled,
        rules: view
            .restrictions
            .rules
            .iter()
            .map(IpRuleJson::from)
            .collect(),
        your_address_allowed: view.your_address.as_ref().map(|(_, d)| d.allowed),
        your_address: view.your_address.map(|(a, _)| a),
        webhook_sources: WebhookSourcesJson {
            enabled: view.restrictions.webhook_sources.enabled,
            ranges: view
                .restrictions
                .webhook_sources
                .ranges
                .iter()
                .map(ToString::to_string)
                .collect(),
            published: view.published_webhook_sources,
        },
    }))
}

/// Restricts (or stops restricting) where webhook deliveries may come from; enabling needs at
/// least one range.
#[utoipa::path(put, path = "/api/v1/ip-restrictions/webhook-sources", tag = "ip-restrictions", request_body = WebhookSourcesJson,
    responses((status = 204), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn set_webhook_sources(
    State(state): State<AppState>,
    user: ApiUser,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<WebhookSourcesJson>,
) -> Result<StatusCode, ApiError> {
    let input = WebhookSourcesInput {
        enabled: body.enabled,
        ranges: body.ranges.join("\n"),
    };
    state
        .services
        .set_webhook_sources(&user.principal, &input, ip.as_deref())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct IpRuleBody {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// `allow` or `deny`.
    pub kind: String,
    /// CIDR ranges or single addresses, IPv4 or IPv6.
    pub ranges: Vec<String>,
}

impl IpRuleBody {
    fn input(self) -> IpRuleInput {
        IpRuleInput {
            name: self.name,
            description: self.description,
            kind: self.kind,
            ranges: self.ranges.join("\n"),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct CreatedRule {
    pub id: String,
}

/// Adds a rule.
#[utoipa::path(post, path = "/api/v1/ip-restrictions", tag = "ip-restrictions", request_body = IpRuleBody,
    responses((status = 201, body = CreatedRule), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_rule(
    State(state): State<AppState>,
    user: ApiUser,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<IpRuleBody>,
) -> Result<(StatusCode, Json<CreatedRule>), ApiError> {
    let id = state
        .services
        .create_ip_rule(&user.principal, &body.input(), ip.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(CreatedRule { id })))
}

/// Replaces a rule.
#[utoipa::path(put, path = "/api/v1/ip-restrictions/{id}", tag = "ip-restrictions", request_body = IpRuleBody,
    params(("id" = String, Path, description = "rule id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_rule(
    State(state): State<AppState>,
    user: ApiUser,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<IpRuleBody>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .update_ip_rule(&user.principal, &id, &body.input(), ip.as_deref())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a rule.
#[utoipa::path(delete, path = "/api/v1/ip-restrictions/{id}", tag = "ip-restrictions",
    params(("id" = String, Path, description = "rule id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn delete_rule(
    State(state): State<AppState>,
    user: ApiUser,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .delete_ip_rule(&user.principal, &id, ip.as_deref())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct EnabledBody {
    pub enabled: bool,
}

/// Turns enforcement on or off; turning it on is refused when it would deny the caller.
#[utoipa::path(post, path = "/api/v1/ip-restrictions/enabled", tag = "ip-restrictions", request_body = EnabledBody,
    responses((status = 204), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn set_enabled(
    State(state): State<AppState>,
    user: ApiUser,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<EnabledBody>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .set_ip_restrictions_enabled(&user.principal, body.enabled, ip.as_deref())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, IntoParams)]
pub struct ValidateQuery {
    /// The address to test.
    pub address: String,
}

#[derive(Serialize, ToSchema)]
pub struct Validation {
    pub address: String,
    pub allowed: bool,
    /// The deciding rule's id, when a rule matched.
    pub rule_id: Option<String>,
    /// The deciding range.
    pub range: Option<String>,
    /// The decision in words.
    pub explanation: String,
}

/// Which rule decides for an address under the saved rules.
#[utoipa::path(get, path = "/api/v1/ip-restrictions/validate", tag = "ip-restrictions",
    params(ValidateQuery),
    responses((status = 200, body = Validation), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn validate(
    State(state): State<AppState>,
    user: ApiUser,
    Query(query): Query<ValidateQuery>,
) -> Result<Json<Validation>, ApiError> {
    let decision = state
        .services
        .test_ip_address(&user.principal, &query.address)
        .await?;
    Ok(Json(Validation {
        address: query.address.trim().to_owned(),
        allowed: decision.allowed,
        explanation: decision.explain(),
        rule_id: decision.by.as_ref().map(|(r, _)| r.id.clone()),
        range: decision.by.map(|(_, range)| range.to_string()),
    }))
}
