//! Account settings → Audit log (admins): every recorded action, filtered by actor, action,
//! target and time, a page of 50 at a time, and the same selection as CSV or JSON.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use lablink_core::Role;
use lablink_service::ServiceError;
use lablink_service::audit::{AuditEntry, MAX_ENTRIES};

use super::when;
use crate::api::audit::AuditEntryJson;
use crate::audit_query::{AuditQuery, csv, cursor};
use crate::{AppState, Chrome, CurrentUser, HtmlError, render};

const PAGE_SIZE: i64 = 50;
const ADMINS_ONLY: &str = "The audit log is for account admins. Ask an admin of your account.";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/settings/audit", get(show))
        .route("/settings/audit/export.csv", get(export_csv))
        .route("/settings/audit/export.json", get(export_json))
}

struct Row {
    when: String,
    actor: String,
    action: String,
    target: String,
    outcome: &'static str,
    failed: bool,
    client_ip: String,
    user_agent: String,
    detail: String,
}

impl From<AuditEntry> for Row {
    fn from(e: AuditEntry) -> Row {
        Row {
            when: when(e.created_at),
            actor: e
                .actor_email
                .or(e.actor_user_id.map(|id| format!("deleted user {id}")))
                .unwrap_or_else(|| "lablink".into()),
            action: e.action,
            target: e.target.unwrap_or_default(),
            outcome: e.outcome.as_str(),
            failed: e.outcome != lablink_service::audit::AuditOutcome::Success,
            client_ip: e.client_ip.unwrap_or_default(),
            user_agent: e.user_agent.unwrap_or_default(),
            detail: e.detail,
        }
    }
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    chrome: Chrome,
    query: AuditQuery,
    rows: Vec<Row>,
    /// The link to older entries, when there are more.
    older: Option<String>,
    filters: String,
    error: Option<String>,
}

async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(query): Query<AuditQuery>,
) -> Result<Response, HtmlError> {
    user.require(Role::can_manage_account, ADMINS_ONLY)?;
    let filters = query.query_string();
    let (rows, older, error) = match query.filter() {
        Ok(filter) => {
            let mut entries = state
                .services
                .audit_log(&user.principal, &filter, PAGE_SIZE + 1)
                .await?;
            let older = (entries.len() as i64 > PAGE_SIZE).then(|| {
                entries.truncate(PAGE_SIZE as usize);
                let next = cursor(entries.last().expect("a full page"));
                let sep = if filters.is_empty() { "" } else { "&" };
                format!("/settings/audit?{filters}{sep}before={next}")
            });
            (entries.into_iter().map(Row::from).collect(), older, None)
        }
        Err(why) => (Vec::new(), None, Some(why)),
    };
    let page = AuditPage {
        chrome: Chrome::for_user(&user),
        query,
        rows,
        older,
        filters,
        error,
    };
    let status = if page.error.is_some() {
        axum::http::StatusCode::UNPROCESSABLE_ENTITY
    } else {
        axum::http::StatusCode::OK
    };
    Ok((status, render(&page)?).into_response())
}

/// Every entry the filters select, up to the export limit.
async fn selection(
    state: &AppState,
    user: &CurrentUser,
    query: &AuditQuery,
) -> Result<Vec<AuditEntry>, HtmlError> {
    user.require(Role::can_manage_account, ADMINS_ONLY)?;
    let filter = query.filter().map_err(ServiceError::BadInput)?;
    Ok(state
        .services
        .audit_log(&user.principal, &filter, MAX_ENTRIES)
        .await?)
}

fn attachment(name: &str) -> String {
    format!("attachment; filename=\"{name}\"")
}

async fn export_csv(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(query): Query<AuditQuery>,
) -> Result<Response, HtmlError> {
    let entries = selection(&state, &user, &query).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, attachment("lablink-audit.csv")),
        ],
        csv(&entries),
    )
        .into_response())
}

async fn export_json(
    State(state): State<AppState>,
    user: CurrentUser,
    Query(query): Query<AuditQuery>,
) -> Result<Response, HtmlError> {
    let entries = selection(&state, &user, &query).await?;
    let body: Vec<AuditEntryJson> = entries.into_iter().map(AuditEntryJson::from).collect();
    Ok((
        [(
            header::CONTENT_DISPOSITION,
            attachment("lablink-audit.json"),
        )],
        Json(body),
    )
        .into_response())
}
