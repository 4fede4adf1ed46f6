//! The workspace's git actions with GitLab: create and change branch, commit and sync, pull,
//! rollback to remote. Whose credentials: on Enterprise plans the user's own linked GitLab
//! token (GitLab's permissions and push rules apply to the person, checked first so the refusal
//! is plain); on Developer and Starter plans the repository's shared project access token, with
//! the user as the commit's author. A refused push shows GitLab's own words.

use lablink_core::{AccessLevel, Plan};
use lablink_exec::{ExecError, FileState, GitCredential, Identity, MergeOutcome, Remote};
use lablink_store::audit::{AuditEvent, AuditOutcome};
use lablink_store::repositories::Repository;
use lablink_store::workspaces::SavedChange;

use super::deploy_key::{KeyFile, key_refused, out_of_date, pushes_with_deploy_key};
use super::{Opened, has_conflict_markers, paths};
use crate::{Principal, ServiceError, Services};

/// A finished commit and sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synced {
    pub branch: String,
    pub sha: String,
    /// GitLab's page for a new merge request of the branch into the default branch.
    pub new_merge_request_url: String,
}

/// How pulling the default branch into the workspace's branch went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merged {
    UpToDate,
    /// Merged and pushed.
    Pushed {
        sha: String,
    },
    /// Waiting for these files' conflicts to be resolved, then "Commit and resolve".
    Conflicts(Vec<String>),
}

/// GitLab's page for a new merge request of `branch` into `target` of the project at `web_url`.
pub fn new_merge_request_url(web_url: &str, branch: &str, target: &str) -> String {
    let encode =
        |text: &str| url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
    format!(
        "{}/-/merge_requests/new?merge_request%5Bsource_branch%5D={}&merge_request%5Btarget_branch%5D={}",
        web_url.trim_end_matches('/'),
        encode(branch),
        encode(target)
    )
}

/// Who pushes, with what.
struct Pusher {
    remote: Remote,
    author: Identity,
    /// Who GitLab sees, in words.
    identity: String,
    /// The deploy key's file while the remote is SSH.
    key: Option<KeyFile>,
}

impl Pusher {
    /// GitLab refusing the deploy key, as the dbt IDE's "GitLab Authentication is out of date".
    fn key_trouble(&self, repo: &Repository, words: &str) -> Option<ServiceError> {
        (self.key.is_some() && key_refused(words)).then(|| out_of_date(repo, words))
    }

    /// A failed fetch or push in words, the deploy key's refusal named as such.
    fn failed(&self, repo: &Repository, what: &str, e: ExecError) -> ServiceError {
        let words = e.to_string();
        self.key_trouble(repo, &words)
            .unwrap_or_else(|| git_failed(what)(e))
    }
}

fn git_failed(what: &str) -> impl Fn(ExecError) -> ServiceError + '_ {
    move |e| ServiceError::Remote(format!("{what} failed: {e}"))
}

fn uncommitted(changes: usize, to: &str) -> ServiceError {
    ServiceError::Conflict(format!(
        "You have {changes} uncommitted change{}: commit them, or revert them, before you {to}.",
        if changes == 1 { "" } else { "s" }
    ))
}

/// Refuses branch names git would refuse, in words.
fn branch_name(name: &str) -> Result<String, ServiceError> {
    let name = name.trim();
    let bad = name.is_empty()
        || name.len() > 200
        || name.starts_with(['-', '/', '.'])
        || name.ends_with(['/', '.'])
        || name.ends_with(".lock")
        || name.contains("..")
        || name.contains("//")
        || name.contains("@{")
        || name
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c));
    if bad {
        return Err(ServiceError::BadInput(format!(
            "“{name}” cannot be a branch name: use letters, digits, - _ . and / (like \
             feature/orders-model), without spaces."
        )));
    }
    Ok(name.to_owned())
}

impl Services {
    /// The caller's workspace, refused while it has uncommitted changes (`to`: what the caller
    /// wants to do, for the refusal).
    async fn open_clean(
        &self,
        caller: &Principal,
        project_id: &str,
        to: &str,
    ) -> Result<Opened, ServiceError> {
        let o = self.open(caller, project_id).await?;
        let changes = self.db.workspace_changes(&o.ws.id).await?.len();
        if changes > 0 {
            return Err(uncommitted(changes, to));
        }
        Ok(o)
    }

    /// In words, who GitLab sees when this user pushes from the workspace.
    pub(crate) async fn pushes_as(&self, caller: &Principal, repo: &Repository) -> String {
        match caller.plan {
            Plan::Enterprise | Plan::EnterprisePlus => {
                match self
                    .db
                    .gitlab_link_of_user(&self.keys, &caller.user_id)
                    .await
                {
                    Ok(Some(link)) => format!("your GitLab account @{}", link.gitlab_username),
                    _ => "nobody yet: link your GitLab account under Profile → Linked accounts"
                        .into(),
                }
            }
            Plan::Developer | Plan::Starter if pushes_with_deploy_key(caller.plan, repo) => {
                "the repository's SSH deploy key, over SSH (GitLab sees the key, not you, so \
                 its push rules may refuse it)"
                    .into()
            }
            Plan::Developer | Plan::Starter => format!(
                "the repository's shared project access token{} (GitLab's push rules may refuse \
                 it, as it is not you)",
                repo.project_token_username
                    .as_deref()
                    .map(|u| format!(" @{u}"))
                    .unwrap_or_default()
            ),
        }
    }

    /// The remote and identity of the caller's git network actions.
    async fn pusher(&self, caller: &Principal, repo: &Repository) -> Result<Pusher, ServiceError> {
        match caller.plan {
            Plan::Enterprise | Plan::EnterprisePlus => {
                let gitlab = self.user_gitlab(caller).await?;
                let me = gitlab.api.current_user().await?;
                let fresh = self.gitlab_access_token(&caller.user_id).await?;
                let remote = self
                    .git_remote(
                        &repo.gitlab_instance_url,
                        &repo.http_url_to_repo,
                        Some(GitCredential::new("oauth2", fresh.token)),
                    )
                    .await?;
                Ok(Pusher {
                    remote,
                    author: Identity {
                        name: me.name,
                        email: me
                            .commit_email
                            .filter(|e| !e.is_empty())
                            .or(me.email)
                            .unwrap_or_else(|| caller.email.clone()),
                    },
                    identity: format!("your GitLab account @{}", gitlab.username),
                    key: None,
                })
            }
            Plan::Developer | Plan::Starter => {
                let author = Identity {
                    name: caller.username.clone(),
                    email: caller.email.clone(),
                };
                let secrets = self.db.repository_secrets(&self.keys, &repo.id).await?;
                let Some(token) = secrets.project_token else {
                    let Some((remote, key)) = self.deploy_key_remote(repo).await? else {
                        return Err(ServiceError::Conflict(format!(
                            "{} has no project access token (GitLab.com Free namespaces have \
                             none) and no SSH deploy key with write access: disconnect the \
                             repository and connect it again, so lablink adds one.",
                            repo.path_with_namespace
                        )));
                    };
                    return Ok(Pusher {
                        remote,
                        author,
                        identity: "the repository's SSH deploy key".into(),
                        key: Some(key),
                    });
                };
                let bot = repo
                    .project_token_username
                    .clone()
                    .unwrap_or_else(|| "lablink".into());
                let remote = self
                    .git_remote(
                        &repo.gitlab_instance_url,
                        &repo.http_url_to_repo,
                        Some(GitCredential::new(bot.clone(), token)),
                    )
                    .await?;
                Ok(Pusher {
                    remote,
                    author,
                    identity: format!("the shared project access token @{bot}"),
                    key: None,
                })
            }
        }
    }

    /// On Enterprise plans, says plainly what the user's GitLab role lacks before a push.
    async fn check_push_allowed(
        &self,
        caller: &Principal,
        repo: &Repository,
        branch: &str,
    ) -> Result<(), ServiceError> {
        if !caller.plan.allows_own_gitlab_app() {
            return Ok(());
        }
        let gitlab = self.user_gitlab(caller).await?;
        let level = gitlab
            .api
            .member_all(repo.gitlab_project_id, gitlab.gitlab_user_id)
            .await?
            .map_or(0, |m| m.access_level);
        if level < i64::from(AccessLevel::Developer.value()) {
            let role = AccessLevel::try_from(u8::try_from(level).unwrap_or(0))
                .map_or("no", AccessLevel::label);
            return Err(ServiceError::Forbidden(format!(
                "You have the {role} role on {} in GitLab (as @{}); pushing needs Developer. Ask \
                 a Maintainer of the project for the Developer role.",
                repo.path_with_namespace, gitlab.username
            )));
        }
        if let Some(existing) = gitlab.api.branch(repo.gitlab_project_id, branch).await?
            && !existing.can_push
        {
            return Err(ServiceError::Forbidden(format!(
                "{branch} is a protected branch of {} that your GitLab account @{} may not push \
                 to. Commit to a new branch and open a merge request.",
                repo.path_with_namespace, gitlab.username
            )));
        }
        Ok(())
    }

    async fn audit_push(
        &self,
        caller: &Principal,
        o: &Opened,
        outcome: AuditOutcome,
        detail: String,
    ) -> Result<(), ServiceError> {
        self.audit(AuditEvent {
            account_id: Some(&caller.account_id),
            actor_user_id: Some(&caller.user_id),
            action: if outcome == AuditOutcome::Success {
                "workspace.pushed"
            } else {
                "workspace.push_refused"
            },
            outcome,
            target: Some(format!(
                "branch {} of {}",
                o.ws.branch, o.repo.path_with_namespace
            )),
            detail,
            ..AuditEvent::default()
        })
        .await
    }

    /// Commits the saved changes (of `paths`, or all) with `message` and pushes the branch.
    #[tracing::instrument(
        skip_all,
        fields(
            account_id = %caller.account_id,
            user_id = %caller.user_id,
            project_id = %project_id,
        ),
    )]
    pub async fn commit_and_sync(
        &self,
        caller: &Principal,
        project_id: &str,
        message: &str,
        paths: Option<&[String]>,
    ) -> Result<Synced, ServiceError> {
        let message = message.trim();
        if message.is_empty() || message.len() > 10_000 {
            return Err(ServiceError::BadInput(
                "Write a commit message (what the change does, in a line or a few).".into(),
            ));
        }
        let o = self.open(caller, project_id).await?;
        if o.ws.branch == o.repo.default_branch {
            return Err(ServiceError::Conflict(format!(
                "{} is the protected branch: you can edit it here, but not commit to it. Create \
                 a branch (your changes come with it) and commit there.",
                o.repo.default_branch
            )));
        }
        let saved_files = self.db.workspace_changes(&o.ws.id).await?;
        if o.ws.merging_sha.is_some() {
            let unresolved: Vec<&str> = saved_files
                .iter()
                .filter(|c| c.content.as_deref().is_some_and(has_conflict_markers))
                .map(|c| c.path.as_str())
                .collect();
            if !unresolved.is_empty() {
                return Err(ServiceError::Conflict(format!(
                    "Resolve the conflicts in {} first: keep the lines you want and remove the \
                     <<<<<<<, ======= and >>>>>>> lines, save, then Commit and resolve.",
                    unresolved.join(", ")
                )));
            }
        }
        let saved: Vec<String> = saved_files.into_iter().map(|c| c.path).collect();
        let chosen: Vec<String> = match paths.filter(|_| o.ws.merging_sha.is_none()) {
            Some(paths) => {
                let paths: Vec<String> = paths
                    .iter()
                    .map(|p| super::paths::checked(p))
                    .collect::<Result<_, _>>()?;
                if let Some(unknown) = paths.iter().find(|p| !saved.contains(p)) {
                    return Err(ServiceError::BadInput(format!(
                        "“{unknown}” has no uncommitted change."
                    )));
                }
                paths
            }
            None => saved.clone(),
        };
        if chosen.is_empty() {
            return Err(ServiceError::BadInput(
                "There is nothing to commit: save a change first.".into(),
            ));
        }
        self.check_push_allowed(caller, &o.repo, &o.ws.branch)
            .await?;
        let pusher = self.pusher(caller, &o.repo).await?;
        let git = self.workspace_git();
        // A merge is committed whole (git refuses to commit part of one).
        let committed = if o.ws.merging_sha.is_some() {
            git.commit_all(&o.dir, message, &pusher.author, &pusher.author)
                .await
        } else {
            git.commit_paths(&o.dir, message, &chosen, &pusher.author, &pusher.author)
                .await
        };
        let sha = committed.map_err(git_failed("Committing"))?;
        if let Err(e) = git.push(&o.dir, &pusher.remote, &o.ws.branch, false).await {
            // The commit is undone; its changes stay saved and uncommitted (a merge's too: the
            // checkout is rebuilt from the database, merge state included).
            if o.ws.merging_sha.is_some() {
                self.db.drop_workspace_changes(&o.ws.id, Some(&[])).await?;
            } else {
                git.reset_soft(&o.dir, &o.ws.head_sha)
                    .await
                    .map_err(git_failed("Undoing the refused commit"))?;
            }
            let words = match e {
                ExecError::PushRejected { message, .. } => message,
                other => other.to_string(),
            };
            self.audit_push(caller, &o, AuditOutcome::Denied, words.clone())
                .await?;
            if let Some(trouble) = pusher.key_trouble(&o.repo, &words) {
                return Err(trouble);
            }
            return Err(ServiceError::Forbidden(format!(
                "GitLab refused the push of {} as {}: {words}\nYour changes are still saved \
                 here. If GitLab names a push rule or a protected branch, fix what it says (or \
                 commit to another branch); if the branch moved on in GitLab, pull first.",
                o.ws.branch, pusher.identity
            )));
        }
        let committed_paths = o.ws.merging_sha.is_none().then_some(chosen.as_slice());
        let version = self
            .db
            .move_workspace(&o.ws.id, Some((&o.ws.branch, &sha)), committed_paths)
            .await?;
        Self::checkout_is_at(&o.dir, version)?;
        self.audit_push(
            caller,
            &o,
            AuditOutcome::Success,
            format!(
                "commit {} ({} file{}) as {}",
                &sha[..sha.len().min(8)],
                chosen.len(),
                if chosen.len() == 1 { "" } else { "s" },
                pusher.identity
            ),
        )
        .await?;
        Ok(Synced {
            new_merge_request_url: new_merge_request_url(
                &o.repo.web_url,
                &o.ws.branch,
                &o.repo.default_branch,
            ),
            branch: o.ws.branch,
            sha,
        })
    }

    /// A new branch off GitLab's default branch. Saved changes come along: then the branch starts
    /// at the commit they were made on, so that committing them never undoes what others
    /// changed in those files meanwhile.
    #[tracing::instrument(
        skip_all,
        fields(
            account_id = %caller.account_id,
            user_id = %caller.user_id,
            project_id = %project_id,
        ),
    )]
    pub async fn create_workspace_branch(
        &self,
        caller: &Principal,
        project_id: &str,
        name: &str,
    ) -> Result<(), ServiceError> {
        let name = branch_name(name)?;
        let o = self.open(caller, project_id).await?;
        let cache = self.fetch_repository(&o.repo.id).await?;
        let git = self.workspace_git();
        if git.branch_head(&cache, &name).await.is_ok() {
            return Err(ServiceError::Conflict(format!(
                "GitLab has a branch {name} already: change to it, or choose another name."
            )));
        }
        let base = if self.db.workspace_changes(&o.ws.id).await?.is_empty() {
            git.branch_head(&cache, &o.repo.default_branch)
                .await
                .map_err(git_failed("Reading the default branch"))?
        } else {
            o.ws.head_sha.clone()
        };
        self.db
            .move_workspace(&o.ws.id, Some((&name, &base)), Some(&[]))
            .await?;
        Ok(())
    }

    /// Changes to another of GitLab's branches. With uncommitted changes it is refused unless
    /// `discard` says to drop them.
    #[tracing::instrument(
        skip_all,
        fields(
            account_id = %caller.account_id,
            user_id = %caller.user_id,
            project_id = %project_id,
        ),
    )]
    pub async fn switch_workspace_branch(
        &self,
        caller: &Principal,
        project_id: &str,
        name: &str,
        discard: bool,
    ) -> Result<(), ServiceError> {
        let name = branch_name(name)?;
        let o = self.open(caller, project_id).await?;
        let changes = self.db.workspace_changes(&o.ws.id).await?.len();
        if changes > 0 && !discard {
            return Err(uncommitted(changes, &format!("change to {name}")));
        }
        let cache = self.fetch_repository(&o.repo.id).await?;
        let head = self
            .workspace_git()
            .branch_head(&cache, &name)
            .await
            .map_err(|_| ServiceError::NotFound(format!("GitLab has no branch {name}.")))?;
        self.db
            .move_workspace(&o.ws.id, Some((&name, &head)), None)
            .await?;
        Ok(())
    }

    /// Refreshes the workspace's view of GitLab (the dbt IDE's "Refresh git state" and "Prune
    /// branches"): fetches the repository, which drops the branches deleted in GitLab, and says
    /// what changed, including when the workspace's own branch is not in GitLab.
    #[tracing::instrument(
        skip_all,
        fields(
            account_id = %caller.account_id,
            user_id = %caller.user_id,
            project_id = %project_id,
        ),
    )]
    pub async fn refresh_workspace(
        &self,
        caller: &Principal,
        project_id: &str,
    ) -> Result<String, ServiceError> {
        let o = self.open(caller, project_id).await?;
        let git = self.workspace_git();
        let internal = |e: ExecError| ServiceError::Internal(format!("git: {e}"));
        let cache = self.repository_cache_path(&o.repo.id);
        let before = git.branches(&cache).await.map_err(internal)?;
        let cache = self.fetch_repository(&o.repo.id).await?;
        let after = git.branches(&cache).await.map_err(internal)?;
        let pruned: Vec<&str> = before
            .iter()
            .filter(|b| !after.contains(b))
            .map(String::as_str)
            .collect();
        let mut said = format!(
            "Refreshed from GitLab: {} branch{}.",
            after.len(),
            if after.len() == 1 { "" } else { "es" }
        );
        if !pruned.is_empty() {
            said.push_str(&format!(
                " Pruned the branches deleted in GitLab: {}.",
                pruned.join(", ")
            ));
        }
        if !after.contains(&o.ws.branch) {
            said.push_str(&format!(
                " Your branch {} is not in GitLab (deleted there, or not pushed yet): commit and \
                 sync to push it, or change to another branch.",
                o.ws.branch
            ));
        }
        Ok(said)
    }

    /// Brings the branch up to GitLab's (fast-forward); needs no uncommitted changes.
    #[tracing::instrument(
        skip_all,
        fields(
            account_id = %caller.account_id,
            user_id = %caller.user_id,
            project_id = %project_id,
        ),
    )]
    pub async fn pull_workspace(
        &self,
        caller: &Principal,
        project_id: &str,
    ) -> Result<String, ServiceError> {
        let o = self.open_clean(caller, project_id, "pull").await?;
        let pusher = self.pusher(caller, &o.repo).await?;
        let git = self.workspace_git();
        let remote_head = match git
            .fetch_remote_branch(&o.dir, &pusher.remote, &o.ws.branch)
            .await
        {
            Ok(sha) => sha,
            Err(ExecError::GitFailed { message, .. })
                if message.contains("couldn't find remote ref") =>
            {
                return Err(ServiceError::NotFound(format!(
                    "{} is not in GitLab yet: commit and sync to create it there.",
                    o.ws.branch
                )));
            }
            Err(e) => return Err(pusher.failed(&o.repo, "Fetching from GitLab", e)),
        };
        if remote_head == o.ws.head_sha {
            return Ok(format!("{} is up to date with GitLab.", o.ws.branch));
        }
        git.pull_ff_only(&o.dir, &pusher.remote, &o.ws.branch)
            .await
            .map_err(|_| {
                ServiceError::Conflict(format!(
                    "{}'s history in GitLab no longer contains your workspace's commit (it was \
                     rewritten). Use Rollback to remote to take GitLab's branch as it is.",
                    o.ws.branch
                ))
            })?;
        let version = self
            .db
            .move_workspace(&o.ws.id, Some((&o.ws.branch, &remote_head)), Some(&[]))
            .await?;
        Self::checkout_is_at(&o.dir, version)?;
        Ok(format!("Pulled {} from GitLab.", o.ws.branch))
    }

    /// Merges GitLab's default branch into the workspace's branch (needs no uncommitted
    /// changes): pushed when clean; on conflicts the files hold git's markers, to be resolved
    /// in the editor and committed with "Commit and resolve" (or the merge aborted).
    #[tracing::instrument(
        skip_all,
        fields(
            account_id = %caller.account_id,
            user_id = %caller.user_id,
            project_id = %project_id,
        ),
    )]
    pub async fn merge_default_branch(
        &self,
        caller: &Principal,
        project_id: &str,
    ) -> Result<Merged, ServiceError> {
        let o = self.open(caller, project_id).await?;
        let default = &o.repo.default_branch;
        if o.ws.branch == *default {
            return Err(ServiceError::BadInput(format!(
                "You are on {default}: use Pull from remote to bring it up to date."
            )));
        }
        if o.ws.merging_sha.is_some() {
            return Err(ServiceError::Conflict(
                "A merge is in progress: resolve its conflicts and Commit and resolve, or abort \
                 it."
                .into(),
            ));
        }
        let changes = self.db.workspace_changes(&o.ws.id).await?.len();
        if changes > 0 {
            return Err(uncommitted(
                changes,
                &format!("pull changes from {default}"),
            ));
        }
        let cache = self.fetch_repository(&o.repo.id).await?;
        let git = self.workspace_git();
        let theirs = git
            .branch_head(&cache, default)
            .await
            .map_err(git_failed("Reading the default branch"))?;
        let pusher = self.pusher(caller, &o.repo).await?;
        let message = format!("Merge branch '{default}' into {}", o.ws.branch);
        match git
            .merge(&o.dir, &theirs, &message, &pusher.author)
            .await
            .map_err(git_failed("Merging"))?
        {
            MergeOutcome::UpToDate => Ok(Merged::UpToDate),
            MergeOutcome::Merged(sha) => {
                let pushed = match self.check_push_allowed(caller, &o.repo, &o.ws.branch).await {
                    Ok(()) => git
                        .push(&o.dir, &pusher.remote, &o.ws.branch, false)
                        .await
                        .map_err(|e| match e {
                            ExecError::PushRejected { message, .. } => ServiceError::Forbidden(
                                format!("GitLab refused the push of the merge: {message}"),
                            ),
                            other => pusher.failed(&o.repo, "Pushing the merge", other),
                        }),
                    Err(e) => Err(e),
                };
                if let Err(e) = pushed {
                    git.reset_branch(&o.dir, &o.ws.branch, &o.ws.head_sha)
                        .await
                        .map_err(git_failed("Undoing the merge"))?;
                    return Err(e);
                }
                let version = self
                    .db
                    .move_workspace(&o.ws.id, Some((&o.ws.branch, &sha)), None)
                    .await?;
                Self::checkout_is_at(&o.dir, version)?;
                Ok(Merged::Pushed { sha })
            }
            MergeOutcome::Conflicts(conflicts) => {
                let mut files = Vec::new();
                for entry in git
                    .status(&o.dir)
                    .await
                    .map_err(git_failed("Reading the merge"))?
                {
                    if matches!(entry.state, FileState::Ignored) {
                        continue;
                    }
                    files.push(SavedChange {
                        content: paths::read(&o.dir, &entry.path)?,
                        path: entry.path,
                    });
                }
                let version = self
                    .db
                    .set_workspace_merge(&o.ws.id, Some((&theirs, &files)))
                    .await?;
                Self::checkout_is_at(&o.dir, version)?;
                Ok(Merged::Conflicts(conflicts))
            }
        }
    }

    /// The seed's "Fix in the Studio IDE" in one action: on a new branch off the default branch,
    /// `.gitignore` gets the missing build folders and the tracked ones leave git; the change is
    /// committed and pushed, ready for a merge request. Needs no uncommitted changes.
    #[tracing::instrument(
        skip_all,
        fields(
            account_id = %caller.account_id,
            user_id = %caller.user_id,
            project_id = %project_id,
        ),
    )]
    pub async fn fix_gitignore_in_workspace(
        &self,
        caller: &Principal,
        project_id: &str,
    ) -> Result<Synced, ServiceError> {
        use crate::doctor::{corrected, in_project};
        self.open_clean(caller, project_id, "fix .gitignore")
            .await?;
        self.create_workspace_branch(caller, project_id, super::GITIGNORE_FIX_BRANCH)
            .await?;
        let o = self.open(caller, project_id).await?;
        let git = self.workspace_git();
        let tracked = git
            .tracked_files(&o.dir)
            .await
            .map_err(git_failed("Listing the files"))?;
        let Some(advice) = super::gitignore_advice(&o, &tracked)? else {
            return Err(ServiceError::BadInput(
                "The dbt project's .gitignore is fine already: nothing to fix.".into(),
            ));
        };
        let rules_path = in_project(&o.subdirectory, ".gitignore");
        let rules = paths::read(&o.dir, &rules_path)
            .unwrap_or_default()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let mut files = vec![SavedChange {
            path: rules_path,
            content: Some(corrected(&rules, &advice.missing).into_bytes()),
        }];
        for folder in &advice.tracked {
            let prefix = format!("{}/", in_project(&o.subdirectory, folder));
            files.extend(
                tracked
                    .iter()
                    .filter(|t| t.starts_with(&prefix))
                    .map(|t| SavedChange {
                        path: t.clone(),
                        content: None,
                    }),
            );
        }
        self.db.save_workspace_changes(&o.ws.id, &files).await?;
        self.commit_and_sync(
            caller,
            project_id,
            "Ignore dbt's build folders\n\ntarget/, dbt_packages/, logs/ and dbt_modules/ hold what \
             dbt builds; tracked, they make every run commit artefacts and merges conflict.",
            None,
        )
        .await
    }

    /// Opens a merge request of the workspace's branch into the default branch, with the
    /// user's own GitLab account (Enterprise) or the repository's project access token; returns
    /// its page in GitLab.
    #[tracing::instrument(
        skip_all,
        fields(
            account_id = %caller.account_id,
            user_id = %caller.user_id,
            project_id = %project_id,
        ),
    )]
    pub async fn open_merge_request(
        &self,
        caller: &Principal,
        project_id: &str,
        title: &str,
        description: &str,
    ) -> Result<String, ServiceError> {
        let title = title.trim();
        if title.is_empty() || title.chars().count() > 255 {
            return Err(ServiceError::BadInput(
                "Give the merge request a title of 1 to 255 characters.".into(),
            ));
        }
        let o = self.open(caller, project_id).await?;
        if o.ws.branch == o.repo.default_branch {
            return Err(ServiceError::BadInput(format!(
                "You are on {}: a merge request needs another branch.",
                o.repo.default_branch
            )));
        }
        let api = match caller.plan {
            Plan::Enterprise | Plan::EnterprisePlus => self.user_gitlab(caller).await?.api,
            Plan::Developer | Plan::Starter => {
                let token = self
                    .db
                    .repository_secrets(&self.keys, &o.repo.id)
                    .await?
                    .project_token
                    .ok_or_else(|| {
                        ServiceError::Conflict(format!(
                            "{} has no project access token to open the merge request with: open \
                             it in GitLab.",
                            o.repo.path_with_namespace
                        ))
                    })?;
                self.repository_api(&o.repo, token).await?
            }
        };
        let mr = api
            .create_merge_request(
                o.repo.gitlab_project_id,
                &o.ws.branch,
                &o.repo.default_branch,
                title,
                description.trim(),
            )
            .await?;
        Ok(mr.web_url)
    }

    /// Commits the reversal of commit `sha` of the branch and pushes it (needs no uncommitted
    /// changes, and not the protected default branch).
    #[tracing::instrument(
        skip_all,
        fields(
            account_id = %caller.account_id,
            user_id = %caller.user_id,
            project_id = %project_id,
        ),
    )]
    pub async fn revert_workspace_commit(
        &self,
        caller: &Principal,
        project_id: &str,
        sha: &str,
    ) -> Result<Synced, ServiceError> {
        let sha = sha.trim();
        let o = self
            .open_clean(caller, project_id, "revert a commit")
            .await?;
        if o.ws.branch == o.repo.default_branch {
            return Err(ServiceError::Conflict(format!(
                "{} is the protected branch: create a branch, then revert the commit there.",
                o.repo.default_branch
            )));
        }
        let git = self.workspace_git();
        let known = sha.len() == 40 && git.in_history(&o.dir, sha).await.unwrap_or(false);
        if !known {
            return Err(ServiceError::BadInput(format!(
                "“{sha}” is not a commit of {}: choose one from the list.",
                o.ws.branch
            )));
        }
        self.check_push_allowed(caller, &o.repo, &o.ws.branch)
            .await?;
        let pusher = self.pusher(caller, &o.repo).await?;
        let undo = |e: ServiceError| async {
            git.reset_branch(&o.dir, &o.ws.branch, &o.ws.head_sha)
                .await
                .map_err(git_failed("Undoing the revert"))?;
            Err::<Synced, _>(e)
        };
        let new_sha = match git
            .revert(&o.dir, sha, &pusher.author, &pusher.author)
            .await
        {
            Ok(new_sha) => new_sha,
            Err(_) => {
                return undo(ServiceError::Conflict(format!(
                    "Commit {} cannot be reverted cleanly: later commits changed the same lines. \
                     Edit the files by hand instead.",
                    &sha[..8]
                )))
                .await;
            }
        };
        if let Err(e) = git.push(&o.dir, &pusher.remote, &o.ws.branch, false).await {
            let words = match e {
                ExecError::PushRejected { message, .. } => message,
                other => other.to_string(),
            };
            let refused = pusher.key_trouble(&o.repo, &words).unwrap_or_else(|| {
                ServiceError::Forbidden(format!("GitLab refused the push of the revert: {words}"))
            });
            return undo(refused).await;
        }
        let version = self
            .db
            .move_workspace(&o.ws.id, Some((&o.ws.branch, &new_sha)), Some(&[]))
            .await?;
        Self::checkout_is_at(&o.dir, version)?;
        self.audit_push(
            caller,
            &o,
            AuditOutcome::Success,
            format!("revert of {} as {}", &sha[..8], pusher.identity),
        )
        .await?;
        Ok(Synced {
            new_merge_request_url: new_merge_request_url(
                &o.repo.web_url,
                &o.ws.branch,
                &o.repo.default_branch,
            ),
            branch: o.ws.branch,
            sha: new_sha,
        })
    }

    /// Abandons a merge waiting for its conflicts: back to the branch's commit.
    #[tracing::instrument(
        skip_all,
        fields(
            account_id = %caller.account_id,
            user_id = %caller.user_id,
            project_id = %project_id,
        ),
    )]
    pub async fn abort_workspace_merge(
        &self,
        caller: &Principal,
        project_id: &str,
    ) -> Result<(), ServiceError> {
        let o = self.open(caller, project_id).await?;
        if o.ws.merging_sha.is_none() {
            return Err(ServiceError::Conflict("No merge is in progress.".into()));
        }
        self.db.set_workspace_merge(&o.ws.id, None).await?;
        Ok(())
    }

    /// Makes the workspace exactly GitLab's branch: every uncommitted change is dropped.
    #[tracing::instrument(
        skip_all,
        fields(
            account_id = %caller.account_id,
            user_id = %caller.user_id,
            project_id = %project_id,
        ),
    )]
    pub async fn rollback_workspace(
        &self,
        caller: &Principal,
        project_id: &str,
    ) -> Result<(), ServiceError> {
        let o = self.open(caller, project_id).await?;
        let cache = self.fetch_repository(&o.repo.id).await?;
        let git = self.workspace_git();
        let (branch, head) = match git.branch_head(&cache, &o.ws.branch).await {
            Ok(head) => (o.ws.branch.clone(), head),
            // A branch never pushed: back to the default branch.
            Err(_) => (
                o.repo.default_branch.clone(),
                git.branch_head(&cache, &o.repo.default_branch)
                    .await
                    .map_err(git_failed("Reading the default branch"))?,
            ),
        };
        self.db
            .move_workspace(&o.ws.id, Some((&branch, &head)), None)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::branch_name;

    #[test]
    fn branch_names_git_refuses_are_refused_in_words() {
        assert_eq!(branch_name(" feature/orders ").unwrap(), "feature/orders");
        for bad in [
            "", "a b", "-x", "a..b", "a.lock", "x/", "a:b", "a~1", "a^", "a?", "a[", "@{x",
        ] {
            assert!(branch_name(bad).is_err(), "{bad}");
        }
    }
}
