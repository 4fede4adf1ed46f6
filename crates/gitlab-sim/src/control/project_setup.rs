//! Control API for what a project's maintainer sets up: protected branches and forks (push
//! rules are in `repository`). Each is also a `SimHandle` method.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ControlResult, body, created};
use crate::forks::NewFork;
use crate::render;
use crate::state::{Grantee, Id, Namespace, NewProtection, SimHandle, access};

pub fn router() -> Router<SimHandle> {
    Router::new()
        .route("/projects/{id}/protected_branches", post(protect))
        .route(
            "/projects/{id}/protected_branches/{name}",
            delete(unprotect),
        )
        .route("/projects/{id}/fork", post(fork))
}

/// One `allowed_to_push` entry, as the REST API takes it.
#[derive(Deserialize)]
struct Allowed {
    access_level: Option<u8>,
    user_id: Option<Id>,
    deploy_key_id: Option<Id>,
}

impl Allowed {
    fn grantee(&self) -> Option<Grantee> {
        match (self.access_level, self.user_id, self.deploy_key_id) {
            (Some(level), None, None) => Some(Grantee::Role(level)),
            (None, Some(user), None) => Some(Grantee::User(user)),
            (None, None, Some(key)) => Some(Grantee::DeployKey(key)),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
struct Protect {
    name: String,
    push_access_level: Option<u8>,
    merge_access_level: Option<u8>,
    #[serde(default)]
    allowed_to_push: Vec<Allowed>,
    #[serde(default)]
    allowed_to_merge: Vec<Allowed>,
    #[serde(default)]
    allow_force_push: bool,
}

fn grantees(
    level: Option<u8>,
    allowed: &[Allowed],
) -> Result<Vec<Grantee>, crate::error::ApiError> {
    let mut out: Vec<Grantee> = level.map(Grantee::Role).into_iter().collect();
    for a in allowed {
        out.push(a.grantee().ok_or_else(|| {
            crate::error::ApiError::message(
                StatusCode::BAD_REQUEST,
                "each allowed entry names one of access_level, user_id, deploy_key_id",
            )
        })?);
    }
    if out.is_empty() {
        out.push(Grantee::Role(access::MAINTAINER));
    }
    Ok(out)
}

async fn protect(State(sim): State<SimHandle>, Path(id): Path<Id>, raw: Bytes) -> ControlResult {
    let p: Protect = body(&raw)?;
    let protection = NewProtection {
        push: grantees(p.push_access_level, &p.allowed_to_push)?,
        merge: grantees(p.merge_access_level, &p.allowed_to_merge)?,
        name: p.name,
        unprotect_access_level: access::MAINTAINER,
        allow_force_push: p.allow_force_push,
        code_owner_approval_required: false,
    };
    let rule = sim.protect_branch(id, protection)?;
    let state = sim.lock();
    created(render::protected_branch(&state, &rule))
}

async fn unprotect(
    State(sim): State<SimHandle>,
    Path((id, name)): Path<(Id, String)>,
) -> Result<StatusCode, crate::error::ApiError> {
    sim.unprotect_branch(id, &name)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct Fork {
    user_id: Id,
    namespace: Option<Namespace>,
    path: Option<String>,
    name: Option<String>,
}

async fn fork(State(sim): State<SimHandle>, Path(id): Path<Id>, raw: Bytes) -> ControlResult {
    let f: Fork = body(&raw)?;
    let project = sim
        .fork_project(
            id,
            NewFork {
                user_id: f.user_id,
                namespace: f.namespace,
                path: f.path,
                name: f.name,
                description: None,
                visibility: None,
            },
        )
        .await?;
    let state = sim.lock();
    let mut v: Value = render::project_full(&state, sim.base_url(), &project, Some(f.user_id));
    v["repository_path"] = json!(sim.repo_path(project.id));
    created(v)
}
