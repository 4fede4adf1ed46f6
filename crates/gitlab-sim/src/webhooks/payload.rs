//! Webhook request bodies, shaped like GitLab's (gitlab-api.md §3.7–3.9 and the `webhook.*`
//! fixtures). Repository facts (commits) are read before the state lock and passed in.

use serde_json::{Map, Value, json};

use crate::commits::CommitInfo;
use crate::state::{MergeRequest, MrState, Namespace, Note, Project, State, Time, User};

/// Timestamps in merge request and note payloads: `2025-08-05 21:48:25 UTC`.
pub fn hook_time(t: Time) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn namespace_name(state: &State, project: &Project) -> String {
    match project.namespace {
        Namespace::Group(id) => state.groups.get(&id).map(|g| g.name.clone()),
        Namespace::User(id) => state.users.get(&id).map(|u| u.name.clone()),
    }
    .unwrap_or_default()
}

struct ProjectUrls {
    path: String,
    web: String,
    http: String,
    ssh: String,
}

fn urls(state: &State, base: &str, project: &Project) -> ProjectUrls {
    let path = state.project_full_path(project);
    let web = format!("{base}/{path}");
    ProjectUrls {
        http: format!("{web}.git"),
        ssh: state.ssh_url_to_repo(base, &path),
        path,
        web,
    }
}

/// The `project` (and MR `source` / `target`) object.
pub fn project(state: &State, base: &str, p: &Project) -> Value {
    let u = urls(state, base, p);
    json!({
        "id": p.id,
        "name": p.name,
        "description": p.description,
        "web_url": u.web,
        "avatar_url": null,
        "git_ssh_url": u.ssh,
        "git_http_url": u.http,
        "namespace": namespace_name(state, p),
        "visibility_level": p.visibility.level(),
        "path_with_namespace": u.path,
        "default_branch": p.default_branch,
        "ci_config_path": "",
        "homepage": u.web,
        "url": u.ssh,
        "ssh_url": u.ssh,
        "http_url": u.http,
    })
}

/// The `repository` object (push payloads carry the longer form).
pub fn repository(state: &State, base: &str, p: &Project) -> Value {
    let u = urls(state, base, p);
    json!({
        "name": p.name,
        "url": u.ssh,
        "description": p.description,
        "homepage": u.web,
        "git_http_url": u.http,
        "git_ssh_url": u.ssh,
        "visibility_level": p.visibility.level(),
    })
}

/// The `user` object of merge request and note payloads.
pub fn user(base: &str, u: &User) -> Value {
    json!({
        "id": u.id,
        "name": u.name,
        "username": u.username,
        "avatar_url": avatar(base, u),
        "email": "[REDACTED]",
    })
}

fn avatar(base: &str, u: &User) -> String {
    format!("{base}/uploads/-/system/user/avatar/{}/avatar.png", u.id)
}

fn commit(base_web: &str, c: &CommitInfo, with_files: bool) -> Value {
    let mut v = json!({
        "id": c.id,
        "message": c.message,
        "title": c.title,
        "timestamp": c.timestamp,
        "url": format!("{base_web}/-/commit/{}", c.id),
        "author": { "name": c.author_name, "email": c.author_email },
    });
    if with_files {
        v["added"] = json!(c.added);
        v["modified"] = json!(c.modified);
        v["removed"] = json!(c.removed);
    }
    v
}

/// What a push changed, for [`push`].
pub struct PushFacts<'a> {
    pub before: &'a str,
    pub after: &'a str,
    /// The commit to check out (a tag's target); `None` for a deletion.
    pub checkout_sha: Option<&'a str>,
    pub git_ref: &'a str,
    /// Newest first, at most 20.
    pub commits: &'a [CommitInfo],
    pub total_commits_count: usize,
    /// Annotated tag message, `None` for branches and lightweight tags.
    pub message: Option<&'a str>,
    pub ref_protected: bool,
}

/// A `push` or `tag_push` payload (the kind follows from the ref).
pub fn push(state: &State, base: &str, p: &Project, pusher: &User, facts: &PushFacts<'_>) -> Value {
    let kind = if facts.git_ref.starts_with("refs/tags/") {
        "tag_push"
    } else {
        "push"
    };
    let web = urls(state, base, p).web;
    json!({
        "object_kind": kind,
        "event_name": kind,
        "before": facts.before,
        "after": facts.after,
        "ref": facts.git_ref,
        "ref_protected": facts.ref_protected,
        "checkout_sha": facts.checkout_sha,
        "message": facts.message,
        "user_id": pusher.id,
        "user_name": pusher.name,
        "user_username": pusher.username,
        "user_email": "",
        "user_avatar": avatar(base, pusher),
        "project_id": p.id,
        "project": project(state, base, p),
        "commits": facts.commits.iter().map(|c| commit(&web, c, true)).collect::<Vec<_>>(),
        "total_commits_count": facts.total_commits_count,
        "push_options": {},
        "repository": repository(state, base, p),
    })
}

fn state_id(state: MrState) -> u8 {
    match state {
        MrState::Opened => 1,
        MrState::Closed => 2,
        MrState::Merged => 3,
        MrState::Locked => 4,
    }
}

fn detailed_merge_status(mr: &MergeRequest) -> &'static str {
    match mr.state {
        MrState::Opened if mr.draft => "draft_status",
        MrState::Opened => "mergeable",
        _ => "not_open",
    }
}

fn mr_url(state: &State, base: &str, p: &Project, mr: &MergeRequest) -> String {
    format!("{}/-/merge_requests/{}", urls(state, base, p).web, mr.iid)
}

/// `object_attributes` of a merge request payload (without `action` / `oldrev`).
fn merge_request_attributes(
    state: &State,
    base: &str,
    p: &Project,
    mr: &MergeRequest,
    last_commit: &CommitInfo,
) -> Map<String, Value> {
    let project_json = project(state, base, p);
    // A fork's merge request names the fork as its source.
    let source_json = state.projects.get(&mr.source_project()).map_or_else(
        || project_json.clone(),
        |source| project(state, base, source),
    );
    let web = urls(state, base, p).web;
    let value = json!({
        "assignee_id": null,
        "author_id": mr.author_id,
        "created_at": hook_time(mr.created_at),
        "description": mr.description,
        "draft": mr.draft,
        "head_pipeline_id": null,
        "id": mr.id,
        "iid": mr.iid,
        "last_edited_at": null,
        "last_edited_by_id": null,
        "merge_commit_sha": mr.merge_commit_sha,
        "merge_error": null,
        "merge_params": { "force_remove_source_branch": "1" },
        "merge_status": if mr.state == MrState::Opened { "can_be_merged" } else { "unchecked" },
        "merge_user_id": mr.merged_by,
        "merge_when_pipeline_succeeds": false,
        "milestone_id": null,
        "source_branch": mr.source_branch,
        "source_project_id": mr.source_project(),
        "state_id": state_id(mr.state),
        "target_branch": mr.target_branch,
        "target_project_id": mr.project_id,
        "time_estimate": 0,
        "title": mr.title,
        "updated_at": hook_time(mr.updated_at),
        "updated_by_id": null,
        "prepared_at": hook_time(mr.created_at),
        "assignee_ids": [],
        "reviewer_ids": [],
        "labels": [],
        "url": mr_url(state, base, p, mr),
        "source": source_json,
        "target": project_json,
        "last_commit": commit(&web, last_commit, false),
        "work_in_progress": mr.draft,
        "total_time_spent": 0,
        "time_change": 0,
        "human_total_time_spent": null,
        "human_time_change": null,
        "human_time_estimate": null,
        "state": mr.state.as_str(),
        "blocking_discussions_resolved": true,
        "first_contribution": false,
        "detailed_merge_status": detailed_merge_status(mr),
        "approval_rules": [],
    });
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// What happened to a merge request, for [`merge_request`].
pub struct MergeRequestChange<'a> {
    /// `open`, `reopen`, `update`, `close`, `merge`, `approved`, ...
    pub action: &'a str,
    /// The previous head when new commits arrived: the sign that code changed.
    pub oldrev: Option<&'a str>,
    /// `changes` entries: attribute → (previous, current).
    pub changes: Vec<(&'a str, Value, Value)>,
}

/// A `merge_request` payload.
pub fn merge_request(
    state: &State,
    base: &str,
    p: &Project,
    mr: &MergeRequest,
    actor: &User,
    last_commit: &CommitInfo,
    change: &MergeRequestChange<'_>,
) -> Value {
    let mut attributes = merge_request_attributes(state, base, p, mr, last_commit);
    attributes.insert("action".into(), json!(change.action));
    if let Some(oldrev) = change.oldrev {
        attributes.insert("oldrev".into(), json!(oldrev));
    }
    let changes: Map<String, Value> = change
        .changes
        .iter()
        .map(|(name, previous, current)| {
            (
                (*name).to_owned(),
                json!({ "previous": previous, "current": current }),
            )
        })
        .collect();
    json!({
        "object_kind": "merge_request",
        "event_type": "merge_request",
        "user": user(base, actor),
        "project": project(state, base, p),
        "object_attributes": attributes,
        "labels": [],
        "changes": changes,
        "repository": {
            "name": p.name,
            "url": urls(state, base, p).ssh,
            "description": p.description,
            "homepage": urls(state, base, p).web,
        },
        "assignees": [],
        "reviewers": [],
    })
}

/// A `note` payload for a comment on a merge request.
pub fn merge_request_note(
    state: &State,
    base: &str,
    p: &Project,
    mr: &MergeRequest,
    note: &Note,
    author: &User,
    last_commit: &CommitInfo,
) -> Value {
    let u = urls(state, base, p);
    let mut mr_json = merge_request_attributes(state, base, p, mr, last_commit);
    mr_json.insert("position".into(), json!(0));
    mr_json.insert("assignee".into(), Value::Null);
    json!({
        "object_kind": "note",
        "event_type": if note.internal { "confidential_note" } else { "note" },
        "user": user(base, author),
        "project_id": p.id,
        "project": project(state, base, p),
        "repository": {
            "name": p.name,
            "url": u.ssh,
            "description": p.description,
            "homepage": u.web,
        },
        "object_attributes": {
            "id": note.id,
            "note": note.body,
            "noteable_type": "MergeRequest",
            "author_id": note.author_id,
            "created_at": hook_time(note.created_at),
            "updated_at": hook_time(note.updated_at),
            "project_id": p.id,
            "attachment": null,
            "line_code": null,
            "commit_id": "",
            "noteable_id": mr.id,
            "system": note.system,
            "st_diff": null,
            "action": "create",
            "internal": note.internal,
            "confidential": note.internal,
            "url": format!("{}#note_{}", mr_url(state, base, p, mr), note.id),
        },
        "merge_request": mr_json,
    })
}
