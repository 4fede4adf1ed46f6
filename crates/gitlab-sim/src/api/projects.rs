//! `GET /projects` (filters, offset and keyset pagination) and `GET /projects/:id`.

use std::cmp::Ordering;

use axum::Json;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderName, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::visible_project;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, with_headers};
use crate::paginate::{self, url_with};
use crate::params::Params;
use crate::render;
use crate::state::{Id, Project, SimHandle, Visibility};

struct Filters {
    user_id: Option<Id>,
    membership: bool,
    owned: bool,
    min_access_level: Option<u8>,
    archived: Option<bool>,
    search: Option<String>,
    visibility: Option<Visibility>,
}

impl Filters {
    fn parse(params: &Params, user_id: Option<Id>) -> Result<Self, ApiError> {
        let min_access_level = match params.int("min_access_level")? {
            None => None,
            Some(l) if [10, 15, 20, 30, 40, 50].contains(&l) => Some(l as u8),
            Some(_) => return Err(ApiError::not_valid_value("min_access_level")),
        };
        let visibility = match params.str("visibility") {
            None => None,
            Some(v) => {
                Some(Visibility::parse(&v).ok_or_else(|| ApiError::not_valid_value("visibility"))?)
            }
        };
        Ok(Self {
            user_id,
            membership: params.bool("membership")?.unwrap_or(false),
            owned: params.bool("owned")?.unwrap_or(false),
            min_access_level,
            archived: params.bool("archived")?,
            search: params.str("search").map(|s| s.to_lowercase()),
            visibility,
        })
    }

    fn matches(&self, state: &crate::state::State, p: &Project) -> bool {
        if self.archived.is_some_and(|a| a != p.archived)
            || self.visibility.is_some_and(|v| v != p.visibility)
        {
            return false;
        }
        if let Some(search) = &self.search
            && !p.name.to_lowercase().contains(search)
            && !p.path.to_lowercase().contains(search)
        {
            return false;
        }
        let needs_membership = self.membership || self.owned || self.min_access_level.is_some();
        match self.user_id {
            None => !needs_membership && p.visibility == Visibility::Public,
            Some(uid) => {
                if !needs_membership {
                    return state.can_read_project(Some(uid), p);
                }
                let level = state.project_access(uid, p);
                let min = self
                    .min_access_level
                    .unwrap_or(if self.owned { 50 } else { 10 });
                level >= min
            }
        }
    }
}

fn compare(order_by: &str, a: &Project, b: &Project) -> Ordering {
    let primary = match order_by {
        "name" => a.name.to_lowercase().cmp(&b.name.to_lowercase()),
        "path" => a.path.cmp(&b.path),
        "updated_at" => a.updated_at.cmp(&b.updated_at),
        "last_activity_at" => a.last_activity_at.cmp(&b.last_activity_at),
        "created_at" => a.created_at.cmp(&b.created_at),
        _ => Ordering::Equal,
    };
    primary.then(a.id.cmp(&b.id))
}

const ORDER_BY: [&str; 6] = [
    "id",
    "name",
    "path",
    "created_at",
    "updated_at",
    "last_activity_at",
];

pub async fn list(
    State(sim): State<SimHandle>,
    auth: Auth,
    OriginalUri(uri): OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    if let Some(identity) = &auth.0 {
        identity.require_api(false)?;
    }
    let filters = Filters::parse(&params, auth.user_id())?;
    let order_by = params
        .str("order_by")
        .unwrap_or_else(|| "created_at".into());
    if !ORDER_BY.contains(&order_by.as_str()) {
        return Err(ApiError::not_valid_value("order_by"));
    }
    let desc = match params.str("sort").as_deref() {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(_) => return Err(ApiError::not_valid_value("sort")),
    };
    let simple = params.bool("simple")?.unwrap_or(false);
    let (page, per_page) = paginate::page_params(&params)?;
    let keyset = params.str("pagination").as_deref() == Some("keyset");
    let id_after = params.int("id_after")?.map(|n| n.max(0) as Id);
    let id_before = params.int("id_before")?.map(|n| n.max(0) as Id);
    let base = sim.base_url().to_owned();
    let state = sim.lock();
    let render = |p: &Project| {
        if simple {
            render::project_simple(&state, &base, p)
        } else {
            render::project_full(&state, &base, p, filters.user_id)
        }
    };
    let in_id_range =
        |p: &&Project| id_after.is_none_or(|a| p.id > a) && id_before.is_none_or(|b| p.id < b);

    if keyset {
        if order_by != "id" {
            return Err(ApiError::message(
                StatusCode::METHOD_NOT_ALLOWED,
                "405 Method Not Allowed - Keyset pagination is not yet available for this type of request",
            ));
        }
        // Walk the id-ordered map from the cursor: cost is one page, not the whole table.
        let candidates: Box<dyn Iterator<Item = &Project>> = if desc {
            Box::new(state.projects.values().rev())
        } else {
            Box::new(state.projects.values())
        };
        let mut page_items: Vec<&Project> = candidates
            .filter(in_id_range)
            .filter(|p| filters.matches(&state, p))
            .take(per_page + 1)
            .collect();
        let has_more = page_items.len() > per_page;
        page_items.truncate(per_page);
        let mut headers = vec![(HeaderName::from_static("x-per-page"), per_page.to_string())];
        if has_more && let Some(last) = page_items.last() {
            let cursor = if desc { "id_before" } else { "id_after" };
            let next = url_with(&base, &uri, &[(cursor, last.id.to_string())]);
            headers.push((
                HeaderName::from_static("link"),
                format!("<{next}>; rel=\"next\""),
            ));
        }
        let body: Vec<Value> = page_items.into_iter().map(render).collect();
        return Ok(with_headers(StatusCode::OK, Value::Array(body), headers));
    }

    let mut matching: Vec<&Project> = state
        .projects
        .values()
        .filter(in_id_range)
        .filter(|p| filters.matches(&state, p))
        .collect();
    matching.sort_by(|a, b| {
        let o = compare(&order_by, a, b);
        if desc { o.reverse() } else { o }
    });
    let (page_items, headers) = paginate::offset(matching, page, per_page, &base, &uri);
    let body: Vec<Value> = page_items.into_iter().map(render).collect();
    Ok(with_headers(StatusCode::OK, Value::Array(body), headers))
}

pub async fn show(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    if let Some(identity) = &auth.0 {
        identity.require_api(false)?;
    }
    let state = sim.lock();
    let found = visible_project(&state, &id, auth.user_id())?;
    Ok(Json(render::project_full(
        &state,
        sim.base_url(),
        &found.project,
        auth.user_id(),
    )))
}

/// `PUT /projects/:id` (Maintainer): the settings the simulator models.
pub async fn update(
    State(sim): State<SimHandle>,
    auth: Auth,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Json<Value>> {
    let identity = auth.required()?;
    let pipeline = params.bool("only_allow_merge_if_pipeline_succeeds")?;
    let description = params.str("description");
    let name = params.str("name").filter(|n| !n.trim().is_empty());
    let mut state = sim.lock();
    let found = super::maintainer_project(&state, &id, &identity, true)?;
    let now = state.now();
    let project = state
        .projects
        .get_mut(&found.project.id)
        .ok_or_else(|| ApiError::not_found("Project"))?;
    if let Some(v) = pipeline {
        project.only_allow_merge_if_pipeline_succeeds = v;
    }
    if let Some(v) = description {
        project.description = v;
    }
    if let Some(v) = name {
        project.name = v;
    }
    project.updated_at = now;
    let project = project.clone();
    Ok(Json(render::project_full(
        &state,
        sim.base_url(),
        &project,
        Some(identity.user_id),
    )))
}
