//! The server-side hooks of every push, over HTTP and SSH alike.
//!
//! Like GitLab's hooks (which ask Rails at `/api/v4/internal/allowed`), the pre-receive hook
//! hands the ref updates and git's quarantine directories to the simulator
//! (`POST /-/sim/internal/allowed`, over bash's `/dev/tcp`, so it needs no other program), and
//! prints the refusal as `GitLab: <message>`: `receive-pack` relays it as `remote: GitLab: ...`
//! and rejects the refs, exactly as with GitLab. The post-receive hook records what moved, for
//! the webhooks fired once `receive-pack` is done.
//!
//! A push is prepared with [`SimHandle::prepare_push`], which registers who pushes under a
//! random token passed to the hook in the environment.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use axum::Router;
use axum::extract::State;
use axum::routing::post;

use crate::changes::RefUpdate;
use crate::checks::{self, ObjectDirs};
use crate::repo::RepoError;
use crate::state::{Id, Pusher, SimHandle};

const PRE_RECEIVE: &str = r#"#!/bin/bash
# gitlab-sim: asks the simulator whether these ref updates are allowed, as GitLab's hooks ask
# GitLab, and prints its refusal as GitLab's hooks do.
[ -n "$SIM_PUSH_TOKEN" ] || exit 0
export LC_ALL=C
body="token $SIM_PUSH_TOKEN
objects $GIT_OBJECT_DIRECTORY
alternates $GIT_ALTERNATE_OBJECT_DIRECTORIES
$(cat)"
if ! exec 3<>"/dev/tcp/$SIM_HOOK_HOST/$SIM_HOOK_PORT"; then
  echo "GitLab: Failed to authorize your Git request: internal API unreachable" >&2
  exit 1
fi
printf 'POST /-/sim/internal/allowed HTTP/1.0\r\nHost: %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s' \
  "$SIM_HOOK_HOST" "${#body}" "$body" >&3
response=$(cat <&3)
verdict=${response#*$'\r\n\r\n'}
if [ "$verdict" = allowed ]; then
  exit 0
fi
printf 'GitLab: %s\n' "${verdict#denied$'\n'}" >&2
exit 1
"#;

/// Records what moved, for the simulator to fire hooks once `receive-pack` is done.
const POST_RECEIVE: &str = r#"#!/bin/sh
[ -n "$SIM_PUSH_LOG" ] || exit 0
cat >> "$SIM_PUSH_LOG"
"#;

/// Who pushes to which project, for the duration of one push.
#[derive(Debug, Clone, Copy)]
struct PushContext {
    project_id: Id,
    pusher: Pusher,
}

/// The pushes in progress, by the token their hook presents.
#[derive(Debug, Default)]
pub struct PushRegistry(Mutex<HashMap<String, PushContext>>);

impl PushRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, PushContext>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A registered push: the environment for `git receive-pack` (or `git http-backend`), and the
/// ref updates once it is done.
pub struct PreparedPush {
    sim: SimHandle,
    token: String,
    log: PathBuf,
}

/// Git configuration every served repository gets (fetches too): the simulator's hooks.
pub fn git_config_env(hooks: &Path) -> Vec<(&'static str, OsString)> {
    vec![
        ("GIT_CONFIG_NOSYSTEM", "1".into()),
        ("GIT_CONFIG_GLOBAL", "/dev/null".into()),
        ("GIT_CONFIG_COUNT", "2".into()),
        ("GIT_CONFIG_KEY_0", "core.hooksPath".into()),
        ("GIT_CONFIG_VALUE_0", hooks.into()),
        ("GIT_CONFIG_KEY_1", "http.receivepack".into()),
        ("GIT_CONFIG_VALUE_1", "true".into()),
    ]
}

impl PreparedPush {
    /// The variables the hooks read.
    pub fn env(&self) -> Vec<(&'static str, OsString)> {
        let (host, port) = self.sim.hook_address();
        vec![
            ("SIM_PUSH_TOKEN", self.token.clone().into()),
            ("SIM_HOOK_HOST", host.into()),
            ("SIM_HOOK_PORT", port.to_string().into()),
            ("SIM_PUSH_LOG", self.log.clone().into()),
        ]
    }

    /// Ends the push: the refs that moved (none when refused).
    pub async fn finish(self) -> Vec<RefUpdate> {
        self.sim.inner_pushes().lock().remove(&self.token);
        let text = tokio::fs::read_to_string(&self.log)
            .await
            .unwrap_or_default();
        let _ = tokio::fs::remove_file(&self.log).await;
        text.lines()
            .filter_map(|line| {
                let mut parts = line.split_whitespace();
                Some(RefUpdate {
                    old: parts.next()?.to_owned(),
                    new: parts.next()?.to_owned(),
                    git_ref: parts.next()?.to_owned(),
                })
            })
            .collect()
    }
}

/// Writes the hook scripts once into `<data dir>/git-hooks` (used as `core.hooksPath`).
pub async fn hooks_dir(sim: &SimHandle) -> std::io::Result<PathBuf> {
    let dir = sim.data_dir().join("git-hooks");
    for (name, script) in [("pre-receive", PRE_RECEIVE), ("post-receive", POST_RECEIVE)] {
        let path = dir.join(name);
        if tokio::fs::read_to_string(&path).await.ok().as_deref() == Some(script) {
            continue;
        }
        tokio::fs::create_dir_all(&dir).await?;
        // Written under a temporary name and renamed: a concurrent push never runs half a script.
        let temp = dir.join(format!(".{name}.{}", uuid::Uuid::new_v4()));
        tokio::fs::write(&temp, script).await?;
        std::fs::set_permissions(&temp, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        tokio::fs::rename(&temp, &path).await?;
    }
    Ok(dir)
}

impl SimHandle {
    /// Registers a push to `project_id` by `pusher`; pass [`PreparedPush::env`] to git.
    pub fn prepare_push(&self, project_id: Id, pusher: Pusher) -> PreparedPush {
        let token = crate::secrets::random_hex(16);
        self.inner_pushes()
            .lock()
            .insert(token.clone(), PushContext { project_id, pusher });
        PreparedPush {
            sim: self.clone(),
            log: self.data_dir().join(format!("push-{token}.log")),
            token,
        }
    }

    /// Runs GitLab's checks on ref updates (see [`checks`]); `Ok(Err(message))` is a refusal.
    pub async fn check_ref_updates(
        &self,
        project_id: Id,
        pusher: Pusher,
        dirs: &ObjectDirs,
        updates: &[RefUpdate],
        from_web: bool,
    ) -> Result<Result<(), String>, RepoError> {
        let repo = self.repo_path(project_id);
        let mut changes = Vec::with_capacity(updates.len());
        for update in updates {
            changes.push(checks::facts::gather(&repo, dirs, update).await?);
        }
        let empty_repo = crate::repo::branch_names(&repo).await?.is_empty();
        let state = self.lock();
        let Some(project) = state.projects.get(&project_id) else {
            return Ok(Err(crate::git_access::NOT_FOUND.into()));
        };
        let ctx = checks::Context {
            state: &state,
            project,
            pusher,
            from_web,
            empty_repo,
        };
        Ok(checks::check(&ctx, &changes))
    }
}

/// `POST /-/sim/internal/allowed`, called by the pre-receive hook.
pub fn router() -> Router<SimHandle> {
    Router::new().route("/internal/allowed", post(allowed))
}

async fn allowed(State(sim): State<SimHandle>, body: String) -> String {
    let mut token = "";
    let mut dirs = ObjectDirs::default();
    let mut updates = Vec::new();
    for line in body.lines() {
        if let Some(v) = line.strip_prefix("token ") {
            token = v;
        } else if let Some(v) = line.strip_prefix("objects ") {
            dirs.objects = Some(PathBuf::from(v)).filter(|p| !p.as_os_str().is_empty());
        } else if let Some(v) = line.strip_prefix("alternates ") {
            dirs.alternates = Some(v.to_owned()).filter(|a| !a.is_empty());
        } else {
            let mut parts = line.split_whitespace();
            if let (Some(old), Some(new), Some(git_ref)) =
                (parts.next(), parts.next(), parts.next())
            {
                updates.push(RefUpdate {
                    old: old.into(),
                    new: new.into(),
                    git_ref: git_ref.into(),
                });
            }
        }
    }
    let context = sim.inner_pushes().lock().get(token).copied();
    let Some(context) = context else {
        return "denied\nFailed to authorize your Git request: unknown push".into();
    };
    match sim
        .check_ref_updates(context.project_id, context.pusher, &dirs, &updates, false)
        .await
    {
        Ok(Ok(())) => "allowed".into(),
        Ok(Err(message)) => format!("denied\n{message}"),
        Err(e) => {
            tracing::error!(error = %e, "pre-receive checks failed");
            "denied\nInternal API error (500)".into()
        }
    }
}
