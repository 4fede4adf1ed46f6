//! The checks: each looks at one thing lablink created or relies on, as GitLab sees it now, and
//! turns every problem into a [`Finding`].

use chrono::{Duration, NaiveDate, Utc};
use lablink_core::names::project_access_token_name;
use lablink_gitlab::error::TokenProblem;
use lablink_gitlab::{Api, GitLabError};
use lablink_store::repositories::Repository;

use super::findings::{Code, Finding};
use crate::repositories::TOKEN_ACCESS_LEVEL;

/// Whether lablink's project access token works, and so can be used for the other checks.
pub(crate) enum TokenState {
    Works,
    Broken,
    /// The connection has none (the plan does not allow project access tokens).
    Absent,
}

/// The project access token, checked with itself: a revoked or rotated token gets a 401.
pub(crate) async fn project_token(
    repo: &Repository,
    token_api: Option<&Api>,
    connector: Option<&Api>,
    rotation_started: bool,
    margin_days: i64,
    out: &mut Vec<Finding>,
) -> TokenState {
    let (Some(api), Some(token_id)) = (token_api, repo.project_token_id) else {
        if repo.status_reporting {
            out.push(Finding::error(
                Code::ProjectTokenMissing,
                "lablink has no project access token for this repository, so CI results cannot be \
                 reported to GitLab."
                    .into(),
                "Create a new project access token through the connecting Maintainer's linked account."
                    .into(),
                true,
            ));
            return TokenState::Broken;
        }
        return TokenState::Absent;
    };
    if rotation_started {
        out.push(Finding::error(
            Code::ProjectTokenRotationInterrupted,
            "A rotation of the project access token was interrupted before lablink stored the new \
             token; GitLab may already have revoked the old one."
                .into(),
            "Check whether the old token still works; if not, create a new one through the connecting \
             Maintainer's linked account (never rotate the old token again)."
                .into(),
            true,
        ));
        return TokenState::Broken;
    }
    match api
        .project_access_token(repo.gitlab_project_id, token_id)
        .await
    {
        Ok(token) if token.active && !token.revoked => {
            let soon = (Utc::now() + Duration::days(margin_days)).date_naive();
            if let Some(expires) = token.expires_at.filter(|d| *d <= soon) {
                out.push(expiring_soon(expires));
            }
            TokenState::Works
        }
        Ok(_) => {
            out.push(revoked(Code::ProjectTokenRevoked));
            TokenState::Broken
        }
        Err(e) => {
            let code = match e.token_problem() {
                Some(TokenProblem::Expired) => Code::ProjectTokenExpired,
                Some(_) if rotated_outside(repo, connector).await => {
                    Code::ProjectTokenRotatedOutside
                }
                Some(_) => Code::ProjectTokenRevoked,
                None if e.is_not_found() => Code::ProjectTokenMissing,
                None => {
                    out.push(unreachable(&e));
                    return TokenState::Broken;
                }
            };
            out.push(revoked(code));
            TokenState::Broken
        }
    }
}

/// True when GitLab lists an active token with our name other than ours: someone rotated it.
async fn rotated_outside(repo: &Repository, connector: Option<&Api>) -> bool {
    let Some(api) = connector else {
        return false;
    };
    let name = project_access_token_name(repo.gitlab_project_id);
    api.list_project_access_tokens(repo.gitlab_project_id)
        .await
        .map(|tokens| {
            tokens.iter().any(|t| {
                t.name == name && t.active && !t.revoked && Some(t.id) != repo.project_token_id
            })
        })
        .unwrap_or(false)
}

fn revoked(code: Code) -> Finding {
    let what = match code {
        Code::ProjectTokenExpired => "has expired",
        Code::ProjectTokenRotatedOutside => {
            "was rotated outside lablink (GitLab lists a newer token with lablink's name); the token \
             lablink holds is revoked"
        }
        Code::ProjectTokenMissing => "no longer exists in GitLab",
        _ => "was revoked in GitLab",
    };
    Finding::error(
        code,
        format!("lablink's project access token {what}, so CI results cannot be reported to GitLab."),
        "Revoke lablink's leftover tokens and create a new one through the connecting Maintainer's \
         linked account."
            .into(),
        true,
    )
}

fn expiring_soon(expires: NaiveDate) -> Finding {
    Finding::warning(
        Code::ProjectTokenExpiringSoon,
        format!("lablink's project access token expires on {expires}."),
        "Rotate it now (lablink also rotates it automatically ahead of expiry).".into(),
        true,
    )
}

fn unreachable(e: &GitLabError) -> Finding {
    Finding::error(
        Code::RepositoryGone,
        format!("GitLab could not be asked about this repository: {e}."),
        "Check that GitLab is reachable and try again.".into(),
        false,
    )
}

/// The webhook: present, enabled, pointing at lablink, with the right events, SSL and secret.
pub(crate) async fn webhook(
    repo: &Repository,
    api: &Api,
    expected_url: &str,
    out: &mut Vec<Finding>,
) {
    let Some(hook_id) = repo.hook_id else {
        out.push(hook_missing());
        return;
    };
    let hook = match api.hook(repo.gitlab_project_id, hook_id).await {
        Ok(hook) => hook,
        Err(e) if e.is_not_found() => {
            out.push(hook_missing());
            return;
        }
        Err(e) => {
            out.push(unreachable(&e));
            return;
        }
    };
    let fix_settings = "Set the webhook's URL, events and SSL verification to lablink's again.";
    if hook.url != expected_url {
        out.push(Finding::error(
            Code::WebhookUrlMismatch,
            format!(
                "The webhook sends to {} but lablink receives at {expected_url}.",
                hook.url
            ),
            fix_settings.into(),
            true,
        ));
    }
    if !hook.merge_requests_events || !hook.push_events {
        out.push(Finding::error(
            Code::WebhookEventsOff,
            "The webhook's merge request or push events are turned off, so lablink misses them."
                .into(),
            fix_settings.into(),
            true,
        ));
    }
    if !hook.enable_ssl_verification {
        out.push(Finding::warning(
            Code::WebhookSslVerificationOff,
            "The webhook's SSL verification is off: deliveries could be intercepted.".into(),
            fix_settings.into(),
            true,
        ));
    }
    if hook.token_present == Some(false) {
        out.push(Finding::error(
            Code::WebhookSecretMissing,
            "The webhook has no secret token, so lablink refuses its deliveries.".into(),
            "Reset the webhook secret (the previous one stays valid for a grace window).".into(),
            true,
        ));
    }
    // Last: its repair (a test delivery) only works once the settings above are right.
    if hook
        .alert_status
        .as_deref()
        .is_some_and(|s| s != "executable")
    {
        let until = hook
            .disabled_until
            .as_deref()
            .map(|t| format!(" until {t}"))
            .unwrap_or_default();
        out.push(Finding::error(
            Code::WebhookDisabled,
            format!(
                "GitLab disabled the webhook ({}{until}) after failed deliveries: merge requests do not \
                 reach lablink.",
                hook.alert_status.as_deref().unwrap_or_default()
            ),
            "Send a test delivery: a successful one makes GitLab enable the webhook again.".into(),
            true,
        ));
    }
}

fn hook_missing() -> Finding {
    Finding::error(
        Code::WebhookMissing,
        "lablink's webhook is gone from the GitLab project: merge requests do not reach lablink."
            .into(),
        "Create the webhook again with a new secret.".into(),
        true,
    )
}

/// The read-only deploy token lablink clones with.
pub(crate) async fn deploy_token(repo: &Repository, api: &Api, out: &mut Vec<Finding>) {
    let fix = "Create a new deploy token and delete the old one.".to_owned();
    let Some(id) = repo.deploy_token_id else {
        out.push(Finding::error(
            Code::DeployTokenMissing,
            "lablink has no deploy token for this repository, so it cannot clone it.".into(),
            fix,
            true,
        ));
        return;
    };
    match api.deploy_token(repo.gitlab_project_id, id).await {
        Ok(t) if t.revoked || t.expired => out.push(Finding::error(
            Code::DeployTokenRevoked,
            "lablink's deploy token was revoked or expired, so lablink cannot clone the repository."
                .into(),
            fix,
            true,
        )),
        Ok(_) => {}
        Err(e) if e.is_not_found() => out.push(Finding::error(
            Code::DeployTokenMissing,
            "lablink's deploy token is gone from the GitLab project, so lablink cannot clone it.".into(),
            fix,
            true,
        )),
        Err(e) => out.push(unreachable(&e)),
    }
}

/// The SSH deploy key, when the connection has one: present and still ours.
pub(crate) async fn deploy_key(repo: &Repository, api: &Api, out: &mut Vec<Finding>) {
    let (Some(id), Some(ours)) = (repo.deploy_key_id, repo.deploy_key_public.as_deref()) else {
        return;
    };
    let fix =
        "Generate a new SSH key pair, add it as the deploy key and remove the old one.".to_owned();
    match api.deploy_key(repo.gitlab_project_id, id).await {
        Ok(key) => {
            let same_key = key_material(&key.key) == key_material(ours);
            let same_print = match (&key.fingerprint_sha256, &repo.deploy_key_fingerprint) {
                (Some(theirs), Some(mine)) => theirs == mine,
                _ => true,
            };
            if !same_key || !same_print {
                out.push(Finding::error(
                    Code::DeployKeyMismatch,
                    "GitLab Authentication is out of date: the deploy key in GitLab is not the one lablink \
                     holds (its fingerprint differs), so pushes over SSH fail."
                        .into(),
                    fix,
                    true,
                ));
            }
        }
        Err(e) if e.is_not_found() => out.push(Finding::error(
            Code::DeployKeyMissing,
            "lablink's SSH deploy key is gone from the GitLab project, so pushes over SSH fail."
                .into(),
            fix,
            true,
        )),
        Err(e) => out.push(unreachable(&e)),
    }
}

/// `ssh-ed25519 AAAA…` without the comment GitLab may drop or change.
fn key_material(key: &str) -> String {
    key.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

/// The repository itself: still there, still in a group, and the connecting user still Maintainer.
pub(crate) async fn repository(
    repo: &Repository,
    api: &Api,
    connector_gitlab_id: Option<i64>,
    out: &mut Vec<Finding>,
) {
    let project = match api.project(repo.gitlab_project_id).await {
        Ok(p) => p,
        Err(e) if e.is_not_found() => {
            out.push(Finding::error(
                Code::RepositoryGone,
                format!(
                    "GitLab project {} ({}) is gone or no longer visible to lablink.",
                    repo.gitlab_project_id, repo.path_with_namespace
                ),
                "If it moved, disconnect and connect the project to its new place.".into(),
                false,
            ));
            return;
        }
        Err(e) => {
            out.push(unreachable(&e));
            return;
        }
    };
    if !project.in_group() {
        out.push(Finding::error(
            Code::RepositoryNotInGroup,
            format!(
                "{} was moved out of its group into a personal namespace; lablink supports repositories \
                 in groups only.",
                project.path_with_namespace
            ),
            "Move it back into a group (GitLab → Settings → General → Advanced → Transfer project), \
             then run the doctor again."
                .into(),
            false,
        ));
    }
    if let Some(user) = connector_gitlab_id {
        let level = api
            .member_all(repo.gitlab_project_id, user)
            .await
            .ok()
            .flatten()
            .map_or(0, |m| m.access_level);
        if level < TOKEN_ACCESS_LEVEL {
            out.push(Finding::warning(
                Code::ConnectorNotMaintainer,
                "The user who connected this repository is no longer a Maintainer of it in GitLab, so \
                 lablink cannot repair its token or webhook through them."
                    .into(),
                "Give them the Maintainer role again, or have another Maintainer disconnect and connect \
                 the repository."
                    .into(),
                false,
            ));
        }
    }
}
