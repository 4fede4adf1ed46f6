//! JSON shapes of GitLab's API entities (structural supersets of `shared/gitlab/fixtures/`).

use chrono::SecondsFormat;
use serde_json::{Value, json};

use crate::state::{
    AccessGrant, CommitStatus, DeployKey, DeployToken, Grantee, Group, Hook, Id, Member,
    MergeRequest, Namespace, Note, Project, ProjectAccessToken, ProtectedBranch, PushRule, SshKey,
    State, Time, User, access, protection,
};

pub fn time(t: Time) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn opt_time(t: Option<Time>) -> Value {
    t.map_or(Value::Null, |t| Value::String(time(t)))
}

fn avatar(base: &str, kind: &str, id: Id) -> String {
    format!("{base}/uploads/-/system/{kind}/avatar/{id}/avatar.png")
}

pub fn user_basic(base: &str, u: &User) -> Value {
    json!({
        "id": u.id,
        "username": u.username,
        "name": u.name,
        "state": u.state,
        "locked": false,
        "avatar_url": avatar(base, "user", u.id),
        "web_url": format!("{base}/{}", u.username),
    })
}

fn user_public_fields(base: &str, u: &User) -> serde_json::Map<String, Value> {
    let mut v = user_basic(base, u);
    let obj = v.as_object_mut().expect("object literal");
    for (k, val) in [
        ("created_at", json!(time(u.created_at))),
        ("bio", json!("")),
        ("bot", json!(u.bot)),
        ("location", json!("")),
        ("public_email", json!("")),
        ("skype", json!("")),
        ("linkedin", json!("")),
        ("twitter", json!("")),
        ("discord", json!("")),
        ("website_url", json!("")),
        ("organization", json!("")),
        ("job_title", json!("")),
        ("pronouns", Value::Null),
        ("work_information", Value::Null),
        ("followers", json!(0)),
        ("following", json!(0)),
        ("is_followed", json!(false)),
        ("local_time", Value::Null),
    ] {
        obj.insert(k.into(), val);
    }
    obj.clone()
}

/// `GET /users/:id`.
pub fn user_public(base: &str, u: &User) -> Value {
    Value::Object(user_public_fields(base, u))
}

/// `GET /user`: the public fields plus the private ones only the user sees.
pub fn user_current(base: &str, u: &User) -> Value {
    let mut obj = user_public_fields(base, u);
    let created = time(u.created_at);
    for (k, val) in [
        ("email", json!(u.email)),
        ("commit_email", json!(u.email)),
        ("is_admin", json!(u.is_admin)),
        ("last_sign_in_at", json!(created)),
        ("confirmed_at", json!(created)),
        (
            "last_activity_on",
            json!(u.created_at.date_naive().to_string()),
        ),
        ("theme_id", json!(1)),
        ("color_scheme_id", json!(1)),
        ("projects_limit", json!(100000)),
        ("current_sign_in_at", json!(created)),
        ("identities", json!([])),
        ("can_create_group", json!(!u.bot)),
        ("can_create_project", json!(!u.bot)),
        ("two_factor_enabled", json!(false)),
        ("external", json!(false)),
        ("private_profile", json!(false)),
        ("shared_runners_minutes_limit", json!(0)),
        ("extra_shared_runners_minutes_limit", json!(0)),
        ("namespace_id", json!(u.id)),
    ] {
        obj.insert(k.into(), val);
    }
    Value::Object(obj)
}

pub fn namespace(state: &State, base: &str, ns: Namespace) -> Value {
    match ns {
        Namespace::Group(gid) => {
            let g = state.groups.get(&gid);
            let full_path = state.group_full_path(gid);
            json!({
                "id": gid,
                "name": g.map(|g| g.name.as_str()).unwrap_or_default(),
                "path": g.map(|g| g.path.as_str()).unwrap_or_default(),
                "kind": "group",
                "full_path": full_path,
                "parent_id": g.and_then(|g| g.parent_id),
                "avatar_url": avatar(base, "group", gid),
                "web_url": format!("{base}/groups/{full_path}"),
            })
        }
        Namespace::User(uid) => {
            let u = state.users.get(&uid);
            let username = u.map(|u| u.username.as_str()).unwrap_or_default();
            json!({
                "id": uid,
                "name": u.map(|u| u.name.as_str()).unwrap_or_default(),
                "path": username,
                "kind": "user",
                "full_path": username,
                "parent_id": null,
                "avatar_url": avatar(base, "user", uid),
                "web_url": format!("{base}/{username}"),
            })
        }
    }
}

/// Fields shared by the simple and the full project representation.
fn project_basic_fields(state: &State, base: &str, p: &Project) -> serde_json::Map<String, Value> {
    let full_path = state.project_full_path(p);
    let ns_name = match p.namespace {
        Namespace::Group(g) => state.group_full_name(g),
        Namespace::User(u) => state
            .users
            .get(&u)
            .map(|u| u.name.clone())
            .unwrap_or_default(),
    };
    let web_url = format!("{base}/{full_path}");
    let v = json!({
        "id": p.id,
        "description": p.description,
        "name": p.name,
        "name_with_namespace": format!("{ns_name} / {}", p.name),
        "path": p.path,
        "path_with_namespace": full_path,
        "created_at": time(p.created_at),
        "default_branch": p.default_branch,
        "tag_list": [],
        "topics": [],
        "ssh_url_to_repo": state.ssh_url_to_repo(base, &full_path),
        "http_url_to_repo": format!("{web_url}.git"),
        "web_url": web_url,
        "readme_url": format!("{web_url}/-/blob/{}/README.md", p.default_branch),
        "forks_count": state.projects.values().filter(|f| f.forked_from_id == Some(p.id)).count(),
        "avatar_url": avatar(base, "project", p.id),
        "star_count": 0,
        "last_activity_at": time(p.last_activity_at),
        "visibility": p.visibility.as_str(),
        "namespace": namespace(state, base, p.namespace),
    });
    v.as_object().cloned().unwrap_or_default()
}

pub fn project_simple(state: &State, base: &str, p: &Project) -> Value {
    Value::Object(project_basic_fields(state, base, p))
}

fn access_json(level: u8) -> Value {
    if level == 0 {
        Value::Null
    } else {
        json!({ "access_level": level, "notification_level": 3 })
    }
}

/// The full project representation; `viewer` fills `permissions`.
pub fn project_full(state: &State, base: &str, p: &Project, viewer: Option<Id>) -> Value {
    let mut obj = project_basic_fields(state, base, p);
    let api = format!("{base}/api/v4/projects/{}", p.id);
    let web_url = obj["web_url"].as_str().unwrap_or_default().to_owned();
    let (project_access, group_access) = viewer.map_or((0, 0), |uid| {
        let direct = state
            .project_members
            .get(&p.id)
            .and_then(|ms| ms.get(&uid))
            .map_or(0, |m| m.access_level);
        let group = match p.namespace {
            Namespace::Group(g) => state.group_access(uid, g),
            Namespace::User(owner) if owner == uid => crate::state::access::OWNER,
            Namespace::User(_) => 0,
        };
        (direct, group)
    });
    let owner = match p.namespace {
        Namespace::User(uid) => state.users.get(&uid).map(|u| {
            let mut o = user_basic(base, u);
            o["created_at"] = json!(time(u.created_at));
            o
        }),
        Namespace::Group(_) => None,
    };
    let created = time(p.created_at);
    let extra = json!({
        "description_html": format!("<p>{}</p>", html_escape(&p.description)),
        "updated_at": time(p.updated_at),
        "container_registry_image_prefix": format!("registry.{}/{}", base.split("://").nth(1).unwrap_or_default(), obj["path_with_namespace"].as_str().unwrap_or_default()),
        "_links": {
            "self": api,
            "issues": format!("{api}/issues"),
            "merge_requests": format!("{api}/merge_requests"),
            "repo_branches": format!("{api}/repository/branches"),
            "labels": format!("{api}/labels"),
            "events": format!("{api}/events"),
            "members": format!("{api}/members"),
            "cluster_agents": format!("{api}/cluster_agents"),
        },
        "packages_enabled": true,
        "empty_repo": false,
        "archived": p.archived,
        "resolve_outdated_diff_discussions": false,
        "container_expiration_policy": {
            "cadence": "1d", "enabled": false, "keep_n": 10, "older_than": "90d",
            "name_regex": ".*", "name_regex_keep": "", "next_run_at": created,
        },
        "issues_enabled": true,
        "merge_requests_enabled": true,
        "wiki_enabled": true,
        "jobs_enabled": true,
        "snippets_enabled": true,
        "container_registry_enabled": true,
        "service_desk_enabled": false,
        "can_create_merge_request_in": project_access.max(group_access) >= crate::state::access::DEVELOPER,
        "emails_disabled": false,
        "shared_runners_enabled": true,
        "lfs_enabled": true,
        "creator_id": p.creator_id,
        "import_url": "",
        "import_type": "",
        "import_status": "none",
        "import_error": "",
        "open_issues_count": 0,
        "ci_default_git_depth": 20,
        "ci_forward_deployment_enabled": true,
        "build_git_strategy": "fetch",
        "runners_token": "",
        "auto_devops_enabled": false,
        "auto_devops_deploy_strategy": "continuous",
        "ci_forward_deployment_rollback_allowed": true,
        "ci_allow_fork_pipelines_to_run_in_parent_project": true,
        "ci_id_token_sub_claim_components": ["project_path", "ref_type", "ref"],
        "ci_job_token_scope_enabled": false,
        "ci_separated_caches": true,
        "ci_restrict_pipeline_cancellation_role": "developer",
        "ci_pipeline_variables_minimum_override_role": "developer",
        "ci_push_repository_for_job_token_allowed": false,
        "ci_config_path": "",
        "public_jobs": true,
        "shared_with_groups": [],
        "allow_merge_on_skipped_pipeline": false,
        "allow_pipeline_trigger_approve_deployment": false,
        "restrict_user_defined_variables": false,
        "request_access_enabled": true,
        "only_allow_merge_if_all_discussions_are_resolved": false,
        "remove_source_branch_after_merge": true,
        "printing_merge_request_link_enabled": true,
        "merge_method": "merge",
        "squash_option": "default_off",
        "enforce_auth_checks_on_uploads": true,
        "suggestion_commit_message": "",
        "merge_commit_template": "",
        "squash_commit_template": "",
        "issue_branch_template": "",
        "merge_requests_template": "",
        "issues_template": "",
        "autoclose_referenced_issues": true,
        "keep_latest_artifact": true,
        "runner_token_expiration_interval": 0,
        "requirements_enabled": false,
        "security_and_compliance_enabled": false,
        "secret_push_protection_enabled": false,
        "compliance_frameworks": [],
        "permissions": {
            "project_access": access_json(project_access),
            "group_access": access_json(group_access),
        },
        "public": p.visibility == crate::state::Visibility::Public,
        "license_url": format!("{web_url}/-/blob/{}/LICENSE", p.default_branch),
        "license": {
            "key": "", "name": "", "nickname": "", "html_url": "", "source_url": "",
        },
        "repository_storage": "default",
        "approvals_before_merge": 0,
        "marked_for_deletion_on": "",
        "statistics": {
            "commit_count": 0, "storage_size": 0, "repository_size": 0, "wiki_size": 0,
            "lfs_objects_size": 0, "job_artifacts_size": 0, "packages_size": 0,
        },
        "custom_attributes": [],
        "use_custom_template": false,
        "external_authorization_classification_label": "",
        "group_runners_enabled": true,
        "show_default_award_emojis": true,
        "warn_about_potentially_unwanted_characters": true,
        "mirror_trigger_builds": false,
        "auto_cancel_pending_pipelines": "enabled",
        "repository_object_format": "sha1",
        "only_allow_merge_if_all_status_checks_passed": false,
        "group_with_project_templates_id": 0,
        "public_builds": true,
        "build_timeout": 3600,
        "template_name": "",
        "emails_enabled": true,
        "mirror": false,
        "analytics_access_level": "enabled",
        "builds_access_level": "enabled",
        "container_registry_access_level": "enabled",
        "environments_access_level": "enabled",
        "feature_flags_access_level": "enabled",
        "forking_access_level": "enabled",
        "infrastructure_access_level": "enabled",
        "issues_access_level": "enabled",
        "merge_requests_access_level": "enabled",
        "model_experiments_access_level": "enabled",
        "model_registry_access_level": "enabled",
        "monitor_access_level": "enabled",
        "pages_access_level": "private",
        "releases_access_level": "enabled",
        "repository_access_level": "enabled",
        "requirements_access_level": "enabled",
        "security_and_compliance_access_level": "private",
        "snippets_access_level": "enabled",
        "wiki_access_level": "enabled",
        "ci_delete_pipelines_in_seconds": 0,
    });
    if let Value::Object(extra) = extra {
        obj.extend(extra);
    }
    // Forks name their parent, in its basic representation.
    if let Some(parent) = p.forked_from_id.and_then(|id| state.projects.get(&id)) {
        obj.insert(
            "forked_from_project".into(),
            Value::Object(project_basic_fields(state, base, parent)),
        );
    }
    obj.insert(
        "only_allow_merge_if_pipeline_succeeds".into(),
        json!(p.only_allow_merge_if_pipeline_succeeds),
    );
    // GitLab exposes `owner` only for projects in a personal namespace.
    if let Some(owner) = owner {
        obj.insert("owner".into(), owner);
    }
    Value::Object(obj)
}

pub fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

pub fn group(state: &State, base: &str, g: &Group) -> Value {
    let full_path = state.group_full_path(g.id);
    json!({
        "id": g.id,
        "web_url": format!("{base}/groups/{full_path}"),
        "name": g.name,
        "path": g.path,
        "description": g.description,
        "visibility": g.visibility.as_str(),
        "share_with_group_lock": false,
        "require_two_factor_authentication": false,
        "two_factor_grace_period": 48,
        "project_creation_level": "developer",
        "auto_devops_enabled": null,
        "subgroup_creation_level": "maintainer",
        "emails_disabled": false,
        "emails_enabled": true,
        "mentions_disabled": null,
        "lfs_enabled": true,
        "default_branch": null,
        "default_branch_protection": 2,
        "avatar_url": avatar(base, "group", g.id),
        "request_access_enabled": true,
        "full_name": state.group_full_name(g.id),
        "full_path": full_path,
        "created_at": time(g.created_at),
        "parent_id": g.parent_id,
        "organization_id": 1,
        "shared_runners_setting": "enabled",
        "ldap_cn": null,
        "ldap_access": null,
        "marked_for_deletion_on": null,
        "archived": false,
    })
}

pub fn member(state: &State, base: &str, m: &Member) -> Value {
    let Some(u) = state.users.get(&m.user_id) else {
        return Value::Null;
    };
    let mut v = user_basic(base, u);
    v["access_level"] = json!(m.access_level);
    v["created_at"] = json!(time(m.created_at));
    v["created_by"] = m
        .created_by
        .and_then(|id| state.users.get(&id))
        .map_or(Value::Null, |c| user_basic(base, c));
    v["email"] = json!(u.email);
    v["expires_at"] = json!(m.expires_at.map(|d| d.to_string()));
    v["group_saml_identity"] = Value::Null;
    v["membership_state"] = json!("active");
    v["member_role"] = Value::Null;
    v
}

/// `alert_status` is derived at read time, as GitLab derives it from the failure count and
/// `disabled_until`, so a temporary disable ends when the (simulated) clock passes it.
pub fn hook(h: &Hook, now: Time) -> Value {
    let mut v = json!({
        "id": h.id,
        "url": h.url,
        "name": h.name,
        "description": h.description,
        "project_id": h.project_id,
        "push_events_branch_filter": h.push_events_branch_filter,
        "branch_filter_strategy": h.branch_filter_strategy,
        "enable_ssl_verification": h.enable_ssl_verification,
        "alert_status": crate::webhooks::alert_status(h, now),
        "disabled_until": opt_time(h.disabled_until),
        "url_variables": h.url_variables.iter().map(|kv| json!({"key": kv.key})).collect::<Vec<_>>(),
        "created_at": time(h.created_at),
        "custom_webhook_template": h.custom_webhook_template,
        "custom_headers": h.custom_headers.iter().map(|kv| json!({"key": kv.key})).collect::<Vec<_>>(),
        "token_present": h.token.is_some(),
        "signing_token_present": h.signing_token.is_some(),
    });
    for flag in crate::state::HOOK_EVENT_FLAGS {
        v[flag] = json!(h.wants(flag));
    }
    v
}

pub fn project_access_token(t: &ProjectAccessToken, today: chrono::NaiveDate) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "description": t.description,
        "revoked": t.revoked,
        "created_at": time(t.created_at),
        "scopes": t.scopes,
        "user_id": t.user_id,
        "last_used_at": opt_time(t.last_used_at),
        "active": !t.revoked && t.expires_at.is_none_or(|d| d > today),
        "expires_at": t.expires_at.map(|d| d.to_string()),
        "access_level": t.access_level,
    })
}

pub fn deploy_token(t: &DeployToken, now: Time) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "username": t.username,
        "expires_at": opt_time(t.expires_at),
        "revoked": t.revoked,
        "expired": t.expires_at.is_some_and(|e| e <= now),
        "scopes": t.scopes,
    })
}

pub fn deploy_key(k: &DeployKey, can_push: bool) -> Value {
    json!({
        "id": k.id,
        "title": k.title,
        "key": k.key,
        "fingerprint": k.fingerprint,
        "fingerprint_sha256": k.fingerprint_sha256,
        "created_at": time(k.created_at),
        "expires_at": opt_time(k.expires_at),
        "can_push": can_push,
        "usage_type": "auth_and_signing",
    })
}

/// GitLab's description of an access level entry.
fn grant(state: &State, g: &AccessGrant) -> Value {
    let (level, description, user_id, deploy_key_id) = match g.grantee {
        Grantee::Role(level) => {
            let description = match level {
                protection::NO_ACCESS => "No one",
                access::DEVELOPER => "Developers + Maintainers",
                access::MAINTAINER => "Maintainers",
                _ => "Admins",
            };
            (level, description.to_owned(), None, None)
        }
        Grantee::User(id) => (
            access::MAINTAINER,
            state
                .users
                .get(&id)
                .map(|u| u.name.clone())
                .unwrap_or_default(),
            Some(id),
            None,
        ),
        // GitLab's docs show deploy key entries as "Deploy key", whatever the key's title.
        Grantee::DeployKey(id) => (access::MAINTAINER, "Deploy key".to_owned(), None, Some(id)),
    };
    json!({
        "id": g.id,
        "access_level": level,
        "access_level_description": description,
        "deploy_key_id": deploy_key_id,
        "user_id": user_id,
        "group_id": null,
    })
}

pub fn protected_branch(state: &State, p: &ProtectedBranch) -> Value {
    json!({
        "id": p.id,
        "name": p.name,
        "push_access_levels": p.push_access_levels.iter().map(|g| grant(state, g)).collect::<Vec<_>>(),
        "merge_access_levels": p.merge_access_levels.iter().map(|g| grant(state, g)).collect::<Vec<_>>(),
        "unprotect_access_levels": [],
        "allow_force_push": p.allow_force_push,
        "code_owner_approval_required": p.code_owner_approval_required,
        "inherited": false,
    })
}

pub fn push_rule(r: &PushRule) -> Value {
    json!({
        "id": r.id,
        "project_id": r.project_id,
        "created_at": opt_time(r.created_at),
        "commit_message_regex": r.commit_message_regex,
        "commit_message_negative_regex": r.commit_message_negative_regex,
        "branch_name_regex": r.branch_name_regex,
        "deny_delete_tag": r.deny_delete_tag,
        "member_check": r.member_check,
        "prevent_secrets": r.prevent_secrets,
        "author_email_regex": r.author_email_regex,
        "file_name_regex": r.file_name_regex,
        "max_file_size": r.max_file_size,
        "commit_committer_check": r.commit_committer_check,
        "commit_committer_name_check": r.commit_committer_name_check,
        "reject_unsigned_commits": r.reject_unsigned_commits,
        "reject_non_dco_commits": r.reject_non_dco_commits,
    })
}

pub fn ssh_key(k: &SshKey) -> Value {
    json!({
        "id": k.id,
        "title": k.title,
        "created_at": time(k.created_at),
        "expires_at": opt_time(k.expires_at),
        "last_used_at": opt_time(k.last_used_at),
        "key": k.key,
        "usage_type": k.usage_type,
    })
}

pub fn commit_status(state: &State, base: &str, s: &CommitStatus) -> Value {
    json!({
        "id": s.id,
        "sha": s.sha,
        "ref": s.git_ref,
        "status": s.status.as_str(),
        "name": s.name,
        "stage": "external",
        "target_url": s.target_url,
        "description": s.description,
        "created_at": time(s.created_at),
        "started_at": opt_time(s.started_at),
        "finished_at": opt_time(s.finished_at),
        "allow_failure": false,
        "coverage": s.coverage,
        "pipeline_id": s.pipeline_id,
        "author": state.users.get(&s.author_id).map_or(Value::Null, |u| user_basic(base, u)),
    })
}

pub fn note(state: &State, base: &str, mr: &MergeRequest, n: &Note) -> Value {
    json!({
        "id": n.id,
        "type": null,
        "body": n.body,
        "author": state.users.get(&n.author_id).map_or(Value::Null, |u| user_basic(base, u)),
        "created_at": time(n.created_at),
        "updated_at": time(n.updated_at),
        "system": n.system,
        "noteable_id": mr.id,
        "noteable_type": "MergeRequest",
        "project_id": mr.project_id,
        "noteable_iid": mr.iid,
        "resolvable": false,
        "confidential": n.internal,
        "internal": n.internal,
        "imported": false,
        "imported_from": "none",
        "commands_changes": {},
    })
}

pub fn merge_request(state: &State, base: &str, mr: &MergeRequest) -> Value {
    let user = |id: Option<Id>| {
        id.and_then(|id| state.users.get(&id))
            .map_or(Value::Null, |u| user_basic(base, u))
    };
    let project = state.projects.get(&mr.project_id);
    let full_path = project
        .map(|p| state.project_full_path(p))
        .unwrap_or_default();
    let short = format!("!{}", mr.iid);
    let detailed = match mr.state {
        crate::state::MrState::Opened if mr.draft => "draft_status",
        crate::state::MrState::Opened => "mergeable",
        _ => "not_open",
    };
    let user_notes = mr.notes.iter().filter(|n| !n.system).count();
    json!({
        "id": mr.id,
        "iid": mr.iid,
        "project_id": mr.project_id,
        "title": mr.title,
        "description": mr.description,
        "state": mr.state.as_str(),
        "created_at": time(mr.created_at),
        "updated_at": time(mr.updated_at),
        "merged_by": user(mr.merged_by),
        "merge_user": user(mr.merged_by),
        "merged_at": opt_time(mr.merged_at),
        "closed_by": user(mr.closed_by),
        "closed_at": opt_time(mr.closed_at),
        "target_branch": mr.target_branch,
        "source_branch": mr.source_branch,
        "user_notes_count": user_notes,
        "upvotes": 0,
        "downvotes": 0,
        "author": user(Some(mr.author_id)),
        "assignees": [],
        "assignee": null,
        "reviewers": [],
        "source_project_id": mr.source_project(),
        "target_project_id": mr.project_id,
        "labels": [],
        "draft": mr.draft,
        "work_in_progress": mr.draft,
        "milestone": null,
        "merge_when_pipeline_succeeds": false,
        "merge_status": if mr.state == crate::state::MrState::Opened { "can_be_merged" } else { "unchecked" },
        "detailed_merge_status": detailed,
        "merge_after": null,
        "sha": mr.sha,
        "merge_commit_sha": mr.merge_commit_sha,
        "squash_commit_sha": null,
        "discussion_locked": null,
        "should_remove_source_branch": null,
        "force_remove_source_branch": mr.force_remove_source_branch,
        "prepared_at": time(mr.created_at),
        "reference": short,
        "references": {
            "short": short,
            "relative": short,
            "full": format!("{full_path}!{}", mr.iid),
        },
        "web_url": format!("{base}/{full_path}/-/merge_requests/{}", mr.iid),
        "time_stats": {
            "time_estimate": 0, "total_time_spent": 0,
            "human_time_estimate": null, "human_total_time_spent": null,
        },
        "squash": false,
        "squash_on_merge": false,
        "task_completion_status": { "count": 0, "completed_count": 0 },
        "has_conflicts": false,
        "blocking_discussions_resolved": true,
        "subscribed": false,
        "changes_count": null,
        "latest_build_started_at": null,
        "latest_build_finished_at": null,
        "first_deployed_to_production_at": null,
        "pipeline": null,
        "head_pipeline": null,
        "diff_refs": {
            "base_sha": mr.base_sha,
            "head_sha": mr.sha,
            "start_sha": mr.start_sha,
        },
        "merge_error": null,
        "first_contribution": false,
        "user": { "can_merge": true },
    })
}

/// GitLab's `Commit` entity; `web` is the project's web URL.
pub fn commit(web: &str, c: &crate::repo_browse::Commit) -> Value {
    json!({
        "id": c.id,
        "short_id": c.short_id,
        "created_at": c.committed_date,
        "parent_ids": c.parent_ids,
        "title": c.title,
        "message": c.message,
        "author_name": c.author_name,
        "author_email": c.author_email,
        "authored_date": c.authored_date,
        "committer_name": c.committer_name,
        "committer_email": c.committer_email,
        "committed_date": c.committed_date,
        "trailers": {},
        "extended_trailers": {},
        "web_url": format!("{web}/-/commit/{}", c.id),
    })
}

/// What a branch entity says besides its protection.
pub struct BranchFacts<'a> {
    pub name: &'a str,
    pub head: &'a crate::repo_browse::Commit,
    pub merged: bool,
    pub can_push: bool,
}

pub fn branch(
    state: &State,
    base: &str,
    full_path: &str,
    p: &Project,
    b: &BranchFacts<'_>,
) -> Value {
    let web = format!("{base}/{full_path}");
    let developers_can = |merge: bool| {
        state.protections_for(p.id, b.name).any(|rule| {
            let grants = if merge {
                &rule.merge_access_levels
            } else {
                &rule.push_access_levels
            };
            grants
                .iter()
                .any(|g| g.grantee == Grantee::Role(access::DEVELOPER))
        })
    };
    json!({
        "name": b.name,
        "commit": commit(&web, b.head),
        "merged": b.merged,
        "protected": state.is_protected(p.id, b.name),
        "developers_can_push": developers_can(false),
        "developers_can_merge": developers_can(true),
        "can_push": b.can_push,
        "default": b.name == p.default_branch,
        "web_url": format!("{web}/-/tree/{}", b.name),
    })
}

pub fn tree_entry(e: &crate::repo_browse::TreeEntry) -> Value {
    json!({ "id": e.id, "name": e.name, "type": e.kind, "path": e.path, "mode": e.mode })
}

pub fn file_diff(d: &crate::repo_browse::FileDiff) -> Value {
    json!({
        "old_path": d.old_path,
        "new_path": d.new_path,
        "a_mode": d.a_mode,
        "b_mode": d.b_mode,
        "diff": d.diff,
        "collapsed": false,
        "too_large": false,
        "new_file": d.new_file,
        "renamed_file": d.renamed_file,
        "deleted_file": d.deleted_file,
        "generated_file": false,
    })
}
