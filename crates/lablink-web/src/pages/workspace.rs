//! Project → Workspace: the file tree with git states, the code editor, a file's diff, and the
//! dbt IDE's git actions (create and change branch, commit and sync, pull, revert, rollback).
//! Every action redirects back with a message (post/redirect/get); a refusal shows the page again
//! with the reason, keeping what was typed.

use std::collections::BTreeSet;

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use lablink_service::ServiceError;
use lablink_service::workspace::{
    FileContent, Merged, WorkspaceView, human_bytes, new_merge_request_url,
};
use serde::Deserialize;

use crate::layout::{ProjectNav, ProjectTab};
use crate::middleware::StyleNonce;
use crate::render::filters;
use crate::{AppState, Chrome, CurrentUser, HtmlError, flash, render};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/projects/{id}/workspace", get(show))
        .route("/projects/{id}/workspace/changes.patch", get(patch))
        .route("/projects/{id}/workspace/{action}", post(act))
}

/// One row of the file tree: a folder or a file, indented by its depth.
struct TreeRow {
    path: String,
    name: String,
    depth: usize,
    folder: bool,
    /// `modified`, `added`, … or empty when unchanged.
    state: &'static str,
    ignored: bool,
    open: bool,
}

/// A line of a diff, with its kind for colour (`add`, `del`, `hunk`, `meta`, or empty).
struct DiffLine {
    kind: &'static str,
    text: String,
}

/// The editor's file, as saved or as typed before a refusal.
struct Editing {
    path: String,
    text: Option<String>,
    bytes: usize,
    /// CodeMirror's language: `sql`, `yaml` or `text`.
    language: &'static str,
    changed: bool,
}

#[derive(Template)]
#[template(path = "workspace.html")]
struct WorkspacePage {
    chrome: Chrome,
    nav: ProjectNav,
    /// Lets the editor's own style element through the Content-Security-Policy.
    style_nonce: String,
    project_id: String,
    project_name: String,
    ws: WorkspaceView,
    tree: Vec<TreeRow>,
    changed: Vec<(String, &'static str)>,
    editing: Option<Editing>,
    diff: Option<Vec<DiffLine>>,
    message: Option<String>,
    error: Option<String>,
    /// GitLab's new merge request page for the branch, after a commit and sync.
    merge_request_url: Option<String>,
    /// A merge request just opened through lablink.
    opened_merge_request: Option<String>,
    commit_message: String,
    /// The checkout's last measured size, in words.
    disk: String,
}

impl WorkspacePage {
    /// The refusal is GitLab not taking the deploy key: its repair is shown open.
    fn key_trouble(&self) -> bool {
        self.error
            .as_deref()
            .is_some_and(|e| e.starts_with("GitLab Authentication is out of date"))
    }
}

fn language(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("sql") => "sql",
        Some("yml" | "yaml") => "yaml",
        _ => "text",
    }
}

/// The tree's rows: each folder once, before its contents; ignored folders closed.
fn tree(ws: &WorkspaceView, open: Option<&str>) -> Vec<TreeRow> {
    let mut rows = Vec::new();
    let mut folders = BTreeSet::new();
    for entry in &ws.files {
        let ignored_folder = entry.path.ends_with('/');
        let path = entry.path.trim_end_matches('/');
        let parts: Vec<&str> = path.split('/').collect();
        for depth in 0..parts.len().saturating_sub(1) {
            let folder = parts[..=depth].join("/");
            if folders.insert(folder.clone()) {
                rows.push(TreeRow {
                    name: parts[depth].to_owned(),
                    path: folder,
                    depth,
                    folder: true,
                    state: "",
                    ignored: false,
                    open: false,
                });
            }
        }
        let state = entry.state.map_or("", |s| s.as_str());
        rows.push(TreeRow {
            name: parts.last().copied().unwrap_or_default().to_owned(),
            path: path.to_owned(),
            depth: parts.len() - 1,
            folder: ignored_folder,
            ignored: state == "ignored",
            state: if state == "ignored" { "" } else { state },
            open: open == Some(path),
        });
    }
    rows
}

fn diff_lines(diff: &str) -> Vec<DiffLine> {
    diff.lines()
        .map(|line| DiffLine {
            kind: if line.starts_with("+++")
                || line.starts_with("---")
                || line.starts_with("diff ")
                || line.starts_with("index ")
                || line.starts_with("new file")
            {
                "meta"
            } else if line.starts_with('+') {
                "add"
            } else if line.starts_with('-') {
                "del"
            } else if line.starts_with("@@") {
                "hunk"
            } else {
                ""
            },
            text: line.to_owned(),
        })
        .collect()
}

#[derive(Deserialize, Default)]
struct PageQuery {
    file: Option<String>,
    view: Option<String>,
    done: Option<String>,
    sha: Option<String>,
    /// The merge request just opened (GitLab's page).
    mr: Option<String>,
}

/// What was typed into a refused form, to show again.
#[derive(Default)]
struct Typed {
    file: Option<(String, String)>,
    commit_message: String,
}

async fn page(
    state: &AppState,
    user: &CurrentUser,
    nonce: &StyleNonce,
    id: &str,
    query: &PageQuery,
    typed: Typed,
    error: Option<String>,
) -> Result<WorkspacePage, HtmlError> {
    let services = &state.services;
    let project = services.project(&user.principal, id).await?;
    let ws = services.workspace(&user.principal, id).await?;
    let open = typed
        .file
        .as_ref()
        .map(|(p, _)| p.clone())
        .or_else(|| query.file.clone());
    let state_of = |path: &str| {
        ws.files
            .iter()
            .find(|f| f.path == path)
            .and_then(|f| f.state)
            .map(|s| s.as_str())
    };
    let editing = match (&typed.file, open.as_deref()) {
        (Some((path, text)), _) => Some(Editing {
            language: language(path),
            changed: true,
            bytes: text.len(),
            text: Some(text.clone()),
            path: path.clone(),
        }),
        (None, Some(path)) => match services.workspace_file(&user.principal, id, path).await {
            Ok(FileContent { path, text, bytes }) => Some(Editing {
                language: language(&path),
                changed: state_of(&path).is_some(),
                text,
                bytes,
                path,
            }),
            Err(ServiceError::NotFound(_) | ServiceError::BadInput(_)) => None,
            Err(e) => return Err(e.into()),
        },
        (None, None) => None,
    };
    let diff = match (query.view.as_deref(), &editing) {
        (Some("diff"), Some(file)) => Some(diff_lines(
            &services
                .workspace_diff(&user.principal, id, &file.path)
                .await?,
        )),
        _ => None,
    };
    let message = query.done.as_deref().map(|done| match done {
        "saved" => "Saved. The change is kept until you commit or revert it.".to_owned(),
        "created" => "The file was created.".to_owned(),
        "renamed" => "The file was renamed.".to_owned(),
        "deleted" => "The file was deleted (until you commit, Revert brings it back).".to_owned(),
        "reverted" => "The changes were reverted.".to_owned(),
        "branch" => format!("You are on the new branch {}.", ws.branch),
        "checkout" => format!("You are on {}.", ws.branch),
        "committed" => format!(
            "Committed {} to {} and pushed it to GitLab.",
            query.sha.as_deref().map_or("", |s| &s[..s.len().min(8)]),
            ws.branch
        ),
        "pulled" => format!("{} is up to date with GitLab.", ws.branch),
        "rolled_back" => format!("The workspace is exactly GitLab's {} now.", ws.branch),
        "merge_up_to_date" => format!(
            "{} already has every change of {}.",
            ws.branch, ws.default_branch
        ),
        "merged" => format!(
            "Merged {} into {} and pushed it.",
            ws.default_branch, ws.branch
        ),
        "merge_conflicts" => format!(
            "{} and {} changed the same lines: resolve the conflicts below.",
            ws.default_branch, ws.branch
        ),
        "merge_aborted" => "The merge was aborted.".to_owned(),
        "commit_reverted" => format!(
            "Reverted the commit with {} on {} and pushed it.",
            query.sha.as_deref().map_or("", |s| &s[..s.len().min(8)]),
            ws.branch
        ),
        "mr_opened" => format!("The merge request of {} is open in GitLab.", ws.branch),
        "gitignore_fixed" => format!(
            "Fixed .gitignore on {} and pushed it. Create the merge request and merge it; then \
             change to {} and pull.",
            ws.branch, ws.default_branch
        ),
        _ => "Done.".to_owned(),
    });
    let merge_request_url = matches!(
        query.done.as_deref(),
        Some("committed" | "gitignore_fixed" | "commit_reverted")
    )
    .then(|| new_merge_request_url(&ws.web_url, &ws.branch, &ws.default_branch));
    let changed = ws
        .files
        .iter()
        .filter_map(|f| {
            f.state
                .filter(|s| s.as_str() != "ignored")
                .map(|s| (f.path.clone(), s.as_str()))
        })
        .collect();
    Ok(WorkspacePage {
        chrome: Chrome::for_user(user),
        nav: super::project_nav(state, user, &project.id, ProjectTab::Workspace).await?,
        style_nonce: nonce.0.clone(),
        project_id: project.id,
        project_name: project.name,
        tree: tree(&ws, open.as_deref()),
        changed,
        editing,
        diff,
        message,
        error,
        merge_request_url,
        opened_merge_request: query.mr.clone(),
        commit_message: typed.commit_message,
        disk: if ws.disk_bytes > 0 {
            human_bytes(ws.disk_bytes)
        } else {
            "(being measured)".to_owned()
        },
        ws,
    })
}

async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Extension(nonce): Extension<StyleNonce>,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Response, HtmlError> {
    let page = page(&state, &user, &nonce, &id, &query, Typed::default(), None).await?;
    Ok(render(&page)?.into_response())
}

/// Every uncommitted change as a patch file (offered before a rollback).
async fn patch(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, HtmlError> {
    let mut patch = state.services.workspace_patch(&user.principal, &id).await?;
    if !patch.is_empty() {
        patch.push('\n');
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/x-diff; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"lablink-workspace-changes.patch\"",
            ),
        ],
        patch,
    )
        .into_response())
}

/// The form's fields; `path` may repeat (the files chosen for a commit).
struct Fields(Vec<(String, String)>);

impl Fields {
    fn get(&self, name: &str) -> String {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// Runs one of the page's actions; back to the page with its message, or the page again with
/// the refusal (and what was typed).
async fn act(
    State(state): State<AppState>,
    user: CurrentUser,
    Extension(nonce): Extension<StyleNonce>,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, HtmlError> {
    let fields = Fields(url::form_urlencoded::parse(&body).into_owned().collect());
    user.check_csrf(&fields.get("csrf_token"))?;
    let s = &state.services;
    let p = &user.principal;
    let path = fields.get("path");
    let mut typed = Typed::default();
    let mut back_to_file = Some(path.clone()).filter(|p| !p.is_empty());
    let mut sha = None;
    let mut opened_mr: Option<String> = None;
    let result: Result<&str, ServiceError> = match action.as_str() {
        "save" => {
            let text = fields.get("text");
            typed.file = Some((path.clone(), text.clone()));
            s.save_workspace_file(p, &id, &path, &text)
                .await
                .map(|()| "saved")
        }
        "new" => s
            .create_workspace_file(p, &id, &path, "")
            .await
            .map(|()| "created"),
        "rename" => {
            let to = fields.get("to");
            back_to_file = Some(to.clone());
            s.rename_workspace_file(p, &id, &path, &to)
                .await
                .map(|()| "renamed")
        }
        "delete" => {
            back_to_file = None;
            s.delete_workspace_file(p, &id, &path)
                .await
                .map(|()| "deleted")
        }
        "revert" => {
            let paths = back_to_file.clone().map(|p| vec![p]);
            s.revert_workspace_changes(p, &id, paths.as_deref())
                .await
                .map(|()| "reverted")
        }
        "branch" => s
            .create_workspace_branch(p, &id, &fields.get("name"))
            .await
            .map(|()| "branch"),
        "checkout" => s
            .switch_workspace_branch(p, &id, &fields.get("branch"), fields.get("discard") == "on")
            .await
            .map(|()| "checkout"),
        "commit" => {
            let message = fields.get("message");
            typed.commit_message = message.clone();
            let chosen = fields.all("paths");
            let new_branch = fields.get("new_branch");
            let created = if new_branch.trim().is_empty() {
                Ok(())
            } else {
                s.create_workspace_branch(p, &id, &new_branch).await
            };
            match created {
                Ok(()) => s
                    .commit_and_sync(p, &id, &message, Some(&chosen))
                    .await
                    .map(|synced| {
                        sha = Some(synced.sha);
                        "committed"
                    }),
                Err(e) => Err(e),
            }
        }
        "pull" => s.pull_workspace(p, &id).await.map(|_| "pulled"),
        // Actions whose result is a sentence of their own.
        "refresh" | "repair-deploy-key" => {
            let said = if action == "refresh" {
                s.refresh_workspace(p, &id).await
            } else {
                s.repair_workspace_deploy_key(p, &id).await
            };
            match said {
                Ok(said) => {
                    return Ok(flash::redirect(
                        &format!("/projects/{id}/workspace"),
                        said,
                        state.services.settings.secure_cookies(),
                    ));
                }
                Err(e) => Err(e),
            }
        }
        "rollback" => s.rollback_workspace(p, &id).await.map(|()| "rolled_back"),
        "delete-workspace" => match s.delete_workspace(p, &id).await {
            Ok(()) => {
                return Ok(flash::redirect(
                    &format!("/projects/{id}"),
                    "Your workspace was deleted; opening the workspace again starts a new one.",
                    state.services.settings.secure_cookies(),
                ));
            }
            Err(e) => Err(e),
        },
        "merge" => s
            .merge_default_branch(p, &id)
            .await
            .map(|merged| match merged {
                Merged::UpToDate => "merge_up_to_date",
                Merged::Pushed { .. } => "merged",
                Merged::Conflicts(_) => "merge_conflicts",
            }),
        "merge-request" => s
            .open_merge_request(p, &id, &fields.get("title"), &fields.get("description"))
            .await
            .map(|url| {
                opened_mr = Some(url);
                "mr_opened"
            }),
        "revert-commit" => s
            .revert_workspace_commit(p, &id, &fields.get("sha"))
            .await
            .map(|synced| {
                sha = Some(synced.sha);
                "commit_reverted"
            }),
        "fix-gitignore" => s.fix_gitignore_in_workspace(p, &id).await.map(|synced| {
            sha = Some(synced.sha);
            "gitignore_fixed"
        }),
        "abort-merge" => s
            .abort_workspace_merge(p, &id)
            .await
            .map(|()| "merge_aborted"),
        _ => return Err(HtmlError::not_found()),
    };
    match result {
        Ok(done) => {
            let mut to = format!("/projects/{id}/workspace?done={done}");
            if let Some(file) = back_to_file {
                to.push_str("&file=");
                to.extend(url::form_urlencoded::byte_serialize(file.as_bytes()));
            }
            if let Some(sha) = sha {
                to.push_str(&format!("&sha={sha}"));
            }
            if let Some(url) = opened_mr {
                to.push_str("&mr=");
                to.extend(url::form_urlencoded::byte_serialize(url.as_bytes()));
            }
            Ok(Redirect::to(&to).into_response())
        }
        Err(
            ServiceError::BadInput(why)
            | ServiceError::Conflict(why)
            | ServiceError::Forbidden(why)
            | ServiceError::NotFound(why)
            | ServiceError::LinkDead(why)
            | ServiceError::Remote(why),
        ) => {
            let query = PageQuery {
                file: back_to_file,
                ..PageQuery::default()
            };
            let page = page(&state, &user, &nonce, &id, &query, typed, Some(why)).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response())
        }
        Err(e) => Err(e.into()),
    }
}
