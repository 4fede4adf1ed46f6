//! Who may fetch or push a project's repository (`Gitlab::GitAccess`), the same for Git over
//! HTTP and over SSH; the transports only differ in how they say "no" (status codes for HTTP,
//! gitlab-shell's boxed `remote:` message for SSH). Messages from GitLab's `git_access.rb`.

use crate::state::{Id, Project, Pusher, State, Visibility, access};

pub const NOT_FOUND: &str =
    "The project you were looking for could not be found or you don't have permission to view it.";
pub const DOWNLOAD_DENIED: &str = "You are not allowed to download code from this project.";
pub const UPLOAD_DENIED: &str = "You are not allowed to upload code.";
pub const PUSH_DENIED: &str = "You are not allowed to push code to this project.";
pub const DEPLOY_KEY_UPLOAD: &str = "This deploy key does not have write access to this project.";
pub const ARCHIVED: &str = "You are not allowed to push code to an archived project.";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// `git-upload-pack`: clone and fetch.
    Fetch,
    /// `git-receive-pack`: push.
    Push,
}

/// Who talks to the Git endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    Anonymous,
    /// A user through a token (HTTP) or one of their SSH keys (SSH: full access).
    User {
        user_id: Id,
        read: bool,
        write: bool,
    },
    DeployToken {
        project_id: Id,
        read: bool,
    },
    DeployKey {
        key_id: Id,
        user_id: Id,
    },
}

/// Why access is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No or bad credentials (HTTP 401).
    Unauthorized,
    /// The project is not visible to the actor (HTTP 404).
    NotFound,
    /// Visible, but not allowed (HTTP 403) with GitLab's message.
    Forbidden(&'static str),
}

fn deploy_key_linked(state: &State, key_id: Id, project_id: Id) -> bool {
    state
        .deploy_key_links
        .iter()
        .any(|l| l.key_id == key_id && l.project_id == project_id)
}

/// GitLab's access checks for `service` on `project`; a permitted push returns its pusher.
pub fn authorize(
    state: &State,
    project: &Project,
    actor: Actor,
    service: Service,
) -> Result<Option<Pusher>, Refusal> {
    if service == Service::Push && project.archived && actor != Actor::Anonymous {
        return Err(Refusal::Forbidden(ARCHIVED));
    }
    match (actor, service) {
        (Actor::Anonymous, Service::Fetch) if project.visibility == Visibility::Public => Ok(None),
        (Actor::Anonymous, _) => Err(Refusal::Unauthorized),
        (Actor::DeployToken { project_id, .. }, _) if project_id != project.id => {
            Err(Refusal::NotFound)
        }
        (Actor::DeployToken { read: true, .. }, Service::Fetch) => Ok(None),
        (Actor::DeployToken { .. }, Service::Fetch) => Err(Refusal::Forbidden(DOWNLOAD_DENIED)),
        (Actor::DeployToken { .. }, Service::Push) => Err(Refusal::Forbidden(UPLOAD_DENIED)),
        (Actor::DeployKey { key_id, .. }, _) if !deploy_key_linked(state, key_id, project.id) => {
            Err(Refusal::NotFound)
        }
        (Actor::DeployKey { .. }, Service::Fetch) => Ok(None),
        (Actor::DeployKey { key_id, user_id }, Service::Push) => {
            if state.deploy_key_can_push(key_id, project.id) {
                Ok(Some(Pusher::DeployKey { key_id, user_id }))
            } else {
                Err(Refusal::Forbidden(DEPLOY_KEY_UPLOAD))
            }
        }
        (
            Actor::User {
                user_id,
                read,
                write,
            },
            service,
        ) => {
            if !read {
                return Err(Refusal::Unauthorized);
            }
            if !state.can_read_project(Some(user_id), project) {
                return Err(Refusal::NotFound);
            }
            let level = state.project_access(user_id, project);
            let is_admin = state.users.get(&user_id).is_some_and(|u| u.is_admin);
            let may_download =
                project.visibility != Visibility::Private || level >= access::REPORTER || is_admin;
            match service {
                Service::Fetch if may_download => Ok(None),
                Service::Fetch => Err(Refusal::Forbidden(DOWNLOAD_DENIED)),
                Service::Push if !write => Err(Refusal::Forbidden(UPLOAD_DENIED)),
                Service::Push if level < access::DEVELOPER && !is_admin => {
                    Err(Refusal::Forbidden(PUSH_DENIED))
                }
                Service::Push => Ok(Some(Pusher::User(user_id))),
            }
        }
    }
}
