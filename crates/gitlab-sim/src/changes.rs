//! Changes to repositories and merge requests, and the webhooks GitLab fires for them.
//!
//! Used by Git pushes over HTTP ([`SimHandle::after_push`]) and by the control API (seed a
//! project, commit files, open / edit / draft / close / reopen / merge merge requests).

use std::path::Path;

use serde_json::{Value, json};

use crate::commits::{self, CommitInfo, FileChange, NewCommit, Signature, ZERO_SHA};
use crate::repo::{self, RepoError};
use crate::state::{
    Id, MergeRequest, MrState, NewMergeRequest, Pusher, SetupError, SimHandle, is_draft_title,
};
use crate::webhooks::{self, EventKind, payload};

/// GitLab sends no push or tag push hooks at all for a push that changes more refs than this
/// (`push_event_hooks_limit`).
const PUSH_EVENT_HOOKS_LIMIT: usize = 3;
/// Push payloads list at most this many commits (`total_commits_count` has the real number).
const PUSH_COMMITS_LIMIT: usize = 20;

/// One ref a push moved; `old` or `new` is [`ZERO_SHA`] for creation or deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefUpdate {
    pub old: String,
    pub new: String,
    pub git_ref: String,
}

/// A commit for [`SimHandle::commit_files`].
#[derive(Debug, Clone)]
pub struct CommitRequest {
    pub branch: String,
    /// Where a new branch starts; the default branch when absent.
    pub start_branch: Option<String>,
    pub message: String,
    pub files: Vec<FileChange>,
    /// The user who commits and pushes (author and committer unless `author` is given).
    pub user_id: Id,
    pub author: Option<Signature>,
}

/// A merge request for [`SimHandle::open_merge_request_with`].
#[derive(Debug, Clone)]
pub struct OpenMergeRequest {
    /// The project holding `source_branch`: the target itself or a fork of it.
    pub source_project_id: Id,
    pub target_project_id: Id,
    pub author_id: Id,
    pub source_branch: String,
    pub target_branch: String,
    pub title: String,
    pub description: String,
    pub remove_source_branch: bool,
}

/// A title/description edit for [`SimHandle::edit_merge_request`].
#[derive(Debug, Clone, Default)]
pub struct MergeRequestEdit {
    pub title: Option<String>,
    pub description: Option<String>,
    pub target_branch: Option<String>,
    pub remove_source_branch: Option<bool>,
}

/// `changes` entries of a merge request payload: attribute, previous value, current value.
pub(crate) type Changes = Vec<(&'static str, Value, Value)>;

pub(crate) fn repo_error(e: RepoError) -> SetupError {
    SetupError::Repository(e.to_string())
}

/// `Draft: ` prefix handling as GitLab's "Mark as draft" / "Mark as ready" do it.
fn toggle_draft_title(title: &str, draft: bool) -> String {
    if draft == is_draft_title(title) {
        return title.to_owned();
    }
    if draft {
        return format!("Draft: {title}");
    }
    let trimmed = title.trim_start();
    let lower = trimmed.to_ascii_lowercase();
    ["draft:", "[draft]", "(draft)"]
        .iter()
        .find(|p| lower.starts_with(*p))
        .map_or(trimmed, |p| &trimmed[p.len()..])
        .trim_start()
        .to_owned()
}

/// A repository path git accepts as written: relative, no `.`/`..`/`.git` segments, and none of
/// the characters that would break the index format.
fn check_path(path: &str) -> Result<(), SetupError> {
    let bad_segment = path
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == ".." || seg == ".git");
    if bad_segment || path.contains(['\n', '\t', '\0', '\\']) {
        return Err(SetupError::Invalid(format!("invalid file path {path:?}")));
    }
    Ok(())
}

/// Branch names git's `check-ref-format --branch` would refuse, refused up front.
pub fn check_branch(name: &str) -> Result<(), SetupError> {
    let bad = name.is_empty()
        || name.starts_with(['-', '/', '.'])
        || name.ends_with(['/', '.'])
        || name.ends_with(".lock")
        || name.contains("..")
        || name.contains("//")
        || name.contains("@{")
        || name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "~^:?*[\\".contains(c));
    if bad {
        return Err(SetupError::Invalid(format!("invalid branch name {name:?}")));
    }
    Ok(())
}

impl SimHandle {
    pub(crate) fn signature_of(&self, user_id: Id) -> Result<Signature, SetupError> {
        let state = self.lock();
        let user = state
            .users
            .get(&user_id)
            .ok_or(SetupError::NotFound("User"))?;
        Ok(Signature {
            name: user.name.clone(),
            email: user.email.clone(),
        })
    }

    fn default_branch(&self, project_id: Id) -> Result<String, SetupError> {
        self.lock()
            .projects
            .get(&project_id)
            .map(|p| p.default_branch.clone())
            .ok_or(SetupError::NotFound("Project"))
    }

    /// Commits every file under `dir` as the first commit of the default branch, like the first
    /// push of an existing project; returns the commit SHA.
    pub async fn seed_project(
        &self,
        project_id: Id,
        dir: &Path,
        user_id: Id,
    ) -> Result<String, SetupError> {
        let files = commits::read_tree_dir(dir)
            .map_err(|e| SetupError::Invalid(format!("cannot read {}: {e}", dir.display())))?;
        if files.is_empty() {
            return Err(SetupError::Invalid(format!(
                "{} has no files",
                dir.display()
            )));
        }
        let branch = self.default_branch(project_id)?;
        self.commit_files(
            project_id,
            CommitRequest {
                branch,
                start_branch: None,
                message: "Initial commit".into(),
                files,
                user_id,
                author: None,
            },
        )
        .await
    }

    /// Writes one commit to a branch (creating the branch from `start_branch` or the default
    /// branch when it does not exist) and fires what a push of it fires; returns the SHA.
    pub async fn commit_files(
        &self,
        project_id: Id,
        request: CommitRequest,
    ) -> Result<String, SetupError> {
        let update = self.build_commit(project_id, &request).await?;
        self.land_commit(project_id, request.user_id, update).await
    }

    /// The commit object of `request` and the ref update that would land it; nothing moves yet
    /// (the REST API checks it first).
    pub async fn build_commit(
        &self,
        project_id: Id,
        request: &CommitRequest,
    ) -> Result<RefUpdate, SetupError> {
        check_branch(&request.branch)?;
        for file in &request.files {
            check_path(&file.path)?;
        }
        if request.files.is_empty() {
            return Err(SetupError::Invalid(
                "a commit needs at least one file".into(),
            ));
        }
        let committer = self.signature_of(request.user_id)?;
        let author = request.author.clone().unwrap_or_else(|| committer.clone());
        let repo = self.repo_path(project_id);
        let old = commits::branch_head(&repo, &request.branch)
            .await
            .map_err(repo_error)?;
        let parent = match &old {
            Some(sha) => Some(sha.clone()),
            None => {
                let start = match &request.start_branch {
                    Some(start) => start.clone(),
                    None => self.default_branch(project_id)?,
                };
                let head = commits::branch_head(&repo, &start)
                    .await
                    .map_err(repo_error)?;
                if head.is_none() && request.start_branch.is_some() {
                    return Err(SetupError::NotFound("Start branch"));
                }
                head
            }
        };
        let parents: Vec<&str> = parent.iter().map(String::as_str).collect();
        let sha = commits::build_commit(
            &repo,
            &NewCommit {
                parents: &parents,
                changes: &request.files,
                message: &request.message,
                author: &author,
                committer: &committer,
            },
        )
        .await
        .map_err(repo_error)?;
        Ok(RefUpdate {
            old: old.unwrap_or_else(|| ZERO_SHA.to_owned()),
            new: sha,
            git_ref: format!("refs/heads/{}", request.branch),
        })
    }

    /// Moves the branch to a built commit (unless it moved meanwhile) and fires what a push
    /// fires; returns the SHA.
    pub async fn land_commit(
        &self,
        project_id: Id,
        user_id: Id,
        update: RefUpdate,
    ) -> Result<String, SetupError> {
        let branch = update
            .git_ref
            .strip_prefix("refs/heads/")
            .ok_or_else(|| SetupError::Invalid("not a branch".into()))?;
        let expected = Some(update.old.as_str()).filter(|old| *old != ZERO_SHA);
        commits::update_branch(&self.repo_path(project_id), branch, &update.new, expected)
            .await
            .map_err(repo_error)?;
        let sha = update.new.clone();
        self.after_push(project_id, user_id, &[update]).await?;
        Ok(sha)
    }

    /// [`Self::after_push`] for a push that already happened (over Git or the API): failures are
    /// only logged, the refs moved all the same.
    pub async fn after_git_push(&self, project_id: Id, pusher: Pusher, updates: &[RefUpdate]) {
        if let Err(e) = self.after_push(project_id, pusher.user_id(), updates).await {
            tracing::warn!(error = %e, project = project_id, "push side effects failed");
        }
    }

    /// What GitLab does after refs moved: Push Hooks and Tag Push Hooks (none when more than
    /// three refs moved), and an `update` with `oldrev` for each open merge request whose source
    /// branch got new commits.
    pub async fn after_push(
        &self,
        project_id: Id,
        pusher_id: Id,
        updates: &[RefUpdate],
    ) -> Result<(), SetupError> {
        let repo = self.repo_path(project_id);
        if updates.len() <= PUSH_EVENT_HOOKS_LIMIT {
            for update in updates {
                self.fire_push_hook(project_id, pusher_id, &repo, update)
                    .await?;
            }
        }
        for update in updates {
            let Some(branch) = update.git_ref.strip_prefix("refs/heads/") else {
                continue;
            };
            if update.new != ZERO_SHA {
                self.source_branch_moved(project_id, pusher_id, branch, &update.new)
                    .await?;
            }
        }
        Ok(())
    }

    async fn fire_push_hook(
        &self,
        project_id: Id,
        pusher_id: Id,
        repo: &Path,
        update: &RefUpdate,
    ) -> Result<(), SetupError> {
        let is_tag = update.git_ref.starts_with("refs/tags/");
        let (commits, total, message, checkout_sha) = if update.new == ZERO_SHA {
            (Vec::new(), 0, None, None)
        } else if is_tag {
            let (peeled, message) = commits::tag_target(repo, &update.new)
                .await
                .map_err(repo_error)?;
            let commit = commits::commit_info(repo, &peeled)
                .await
                .map_err(repo_error)?;
            (vec![commit], 1, message, Some(peeled))
        } else {
            let (commits, total) = commits::new_commits(
                repo,
                &update.old,
                &update.new,
                &update.git_ref,
                PUSH_COMMITS_LIMIT,
            )
            .await
            .map_err(repo_error)?;
            (commits, total, None, Some(update.new.clone()))
        };
        let branch = update.git_ref.strip_prefix("refs/heads/");
        let body = {
            let state = self.lock();
            let project = state
                .projects
                .get(&project_id)
                .ok_or(SetupError::NotFound("Project"))?;
            let pusher = state
                .users
                .get(&pusher_id)
                .ok_or(SetupError::NotFound("User"))?;
            let facts = payload::PushFacts {
                before: &update.old,
                after: &update.new,
                checkout_sha: checkout_sha.as_deref(),
                git_ref: &update.git_ref,
                commits: &commits,
                total_commits_count: total,
                message: message.as_deref(),
                ref_protected: branch.is_some_and(|b| state.is_protected(project.id, b)),
            };
            payload::push(&state, self.base_url(), project, pusher, &facts)
        };
        let kind = if is_tag {
            EventKind::TagPush
        } else {
            EventKind::Push
        };
        webhooks::fire(self, project_id, kind, branch, &body);
        Ok(())
    }

    async fn source_branch_moved(
        &self,
        project_id: Id,
        user_id: Id,
        branch: &str,
        new: &str,
    ) -> Result<(), SetupError> {
        let moved: Vec<MergeRequest> = self
            .lock()
            .merge_requests
            .values()
            .filter(|mr| {
                mr.source_project() == project_id
                    && mr.state == MrState::Opened
                    && mr.source_branch == branch
                    && mr.sha != new
            })
            .cloned()
            .collect();
        for mr in moved {
            if mr.project_id != project_id {
                self.fetch_source(mr.project_id, project_id, branch).await?;
            }
            let (base_sha, start_sha) = self
                .diff_base(mr.project_id, &mr.target_branch, new)
                .await?;
            let oldrev = mr.sha.clone();
            let updated = self.change_merge_request(mr.project_id, mr.iid, |mr, now| {
                let previous = mr.updated_at;
                mr.sha = new.to_owned();
                mr.base_sha = base_sha.clone();
                mr.start_sha = start_sha.clone();
                mr.updated_at = now;
                Ok(vec![(
                    "updated_at",
                    json!(payload::hook_time(previous)),
                    json!(payload::hook_time(now)),
                )])
            })?;
            self.send_merge_request_hook(user_id, &updated.0, "update", Some(&oldrev), updated.1)
                .await?;
        }
        Ok(())
    }

    /// `(base_sha, start_sha)` of a diff of `head` against `target`.
    pub(crate) async fn diff_base(
        &self,
        project_id: Id,
        target: &str,
        head: &str,
    ) -> Result<(String, String), SetupError> {
        let repo = self.repo_path(project_id);
        let start = commits::branch_head(&repo, target)
            .await
            .map_err(repo_error)?
            .ok_or(SetupError::NotFound("Target branch"))?;
        let base = repo::merge_base(&repo, &start, head)
            .await
            .map_err(repo_error)?
            .unwrap_or_else(|| start.clone());
        Ok((base, start))
    }

    /// Applies `edit` to an MR under the lock; returns the MR after it and the `changes` entries.
    pub(crate) fn change_merge_request<F>(
        &self,
        project_id: Id,
        iid: u64,
        edit: F,
    ) -> Result<(MergeRequest, Changes), SetupError>
    where
        F: FnOnce(&mut MergeRequest, crate::state::Time) -> Result<Changes, SetupError>,
    {
        let mut state = self.lock();
        let now = state.now();
        let mr = state
            .merge_request_mut(project_id, iid)
            .ok_or(SetupError::NotFound("Merge request"))?;
        let changes = edit(mr, now)?;
        Ok((mr.clone(), changes))
    }

    pub(crate) async fn send_merge_request_hook(
        &self,
        actor_id: Id,
        mr: &MergeRequest,
        action: &str,
        oldrev: Option<&str>,
        changes: Vec<(&str, Value, Value)>,
    ) -> Result<(), SetupError> {
        let repo = self.repo_path(mr.project_id);
        commits::set_merge_request_ref(&repo, mr.iid, &mr.sha)
            .await
            .map_err(repo_error)?;
        let last_commit: CommitInfo = commits::commit_info(&repo, &mr.sha)
            .await
            .map_err(repo_error)?;
        let body = {
            let state = self.lock();
            let project = state
                .projects
                .get(&mr.project_id)
                .ok_or(SetupError::NotFound("Project"))?;
            let actor = state
                .users
                .get(&actor_id)
                .ok_or(SetupError::NotFound("User"))?;
            let change = payload::MergeRequestChange {
                action,
                oldrev,
                changes,
            };
            payload::merge_request(
                &state,
                self.base_url(),
                project,
                mr,
                actor,
                &last_commit,
                &change,
            )
        };
        webhooks::fire(self, mr.project_id, EventKind::MergeRequest, None, &body);
        Ok(())
    }

    /// Opens a merge request from `source` into `target` of one project and fires its `open`
    /// hook.
    pub async fn open_merge_request(
        &self,
        project_id: Id,
        author_id: Id,
        source: &str,
        target: &str,
        title: &str,
        description: &str,
    ) -> Result<MergeRequest, SetupError> {
        self.open_merge_request_with(OpenMergeRequest {
            source_project_id: project_id,
            target_project_id: project_id,
            author_id,
            source_branch: source.to_owned(),
            target_branch: target.to_owned(),
            title: title.to_owned(),
            description: description.to_owned(),
            remove_source_branch: false,
        })
        .await
    }

    /// Opens a merge request, also from a fork into its parent: the source commits are fetched
    /// into the target repository (as GitLab does for `refs/merge-requests/<iid>/head`).
    pub async fn open_merge_request_with(
        &self,
        open: OpenMergeRequest,
    ) -> Result<MergeRequest, SetupError> {
        if open.title.trim().is_empty() {
            return Err(SetupError::Invalid("title can't be blank".into()));
        }
        let same_project = open.source_project_id == open.target_project_id;
        if same_project && open.source_branch == open.target_branch {
            return Err(SetupError::Invalid(
                "source branch and target branch must differ".into(),
            ));
        }
        let source_repo = self.repo_path(open.source_project_id);
        let sha = commits::branch_head(&source_repo, &open.source_branch)
            .await
            .map_err(repo_error)?
            .ok_or(SetupError::NotFound("Source branch"))?;
        if !same_project {
            self.fetch_source(
                open.target_project_id,
                open.source_project_id,
                &open.source_branch,
            )
            .await?;
        }
        let (base_sha, start_sha) = self
            .diff_base(open.target_project_id, &open.target_branch, &sha)
            .await?;
        let mr = {
            let mut state = self.lock();
            let open_duplicate = state.merge_requests.values().find(|mr| {
                mr.project_id == open.target_project_id
                    && mr.source_project() == open.source_project_id
                    && mr.state == MrState::Opened
                    && mr.source_branch == open.source_branch
                    && mr.target_branch == open.target_branch
            });
            if let Some(existing) = open_duplicate {
                return Err(SetupError::Conflict(format!(
                    "Another open merge request already exists for this source branch: !{}",
                    existing.iid
                )));
            }
            state.insert_merge_request(NewMergeRequest {
                project_id: open.target_project_id,
                source_project_id: open.source_project_id,
                force_remove_source_branch: open.remove_source_branch,
                author_id: open.author_id,
                title: open.title,
                description: open.description,
                source_branch: open.source_branch,
                target_branch: open.target_branch,
                sha,
                base_sha,
                start_sha,
            })?
        };
        let now = json!(payload::hook_time(mr.created_at));
        let changes = vec![
            ("merge_status", json!("preparing"), json!("checking")),
            ("updated_at", now.clone(), now.clone()),
            ("prepared_at", Value::Null, now),
        ];
        self.send_merge_request_hook(open.author_id, &mr, "open", None, changes)
            .await?;
        Ok(mr)
    }

    /// Brings a fork's branch objects into the parent's repository.
    pub(crate) async fn fetch_source(
        &self,
        target_project_id: Id,
        source_project_id: Id,
        branch: &str,
    ) -> Result<(), SetupError> {
        repo::fetch_branch_objects(
            &self.repo_path(target_project_id),
            &self.repo_path(source_project_id),
            branch,
        )
        .await
        .map_err(repo_error)
    }

    /// Edits title and/or description: an `update` without `oldrev` (no code changed).
    pub async fn edit_merge_request(
        &self,
        project_id: Id,
        iid: u64,
        user_id: Id,
        edit: MergeRequestEdit,
    ) -> Result<MergeRequest, SetupError> {
        if edit.title.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err(SetupError::Invalid("title can't be blank".into()));
        }
        // A new target branch means a new diff: its base is computed before the edit.
        let retarget = match &edit.target_branch {
            Some(target) => {
                let sha = self
                    .lock()
                    .merge_request(project_id, iid)
                    .map(|mr| mr.sha.clone())
                    .ok_or(SetupError::NotFound("Merge request"))?;
                Some(self.diff_base(project_id, target, &sha).await?)
            }
            None => None,
        };
        let (mr, changes) = self.change_merge_request(project_id, iid, |mr, now| {
            let mut changes = Vec::new();
            if let (Some(target), Some((base, start))) = (edit.target_branch, retarget)
                && target != mr.target_branch
            {
                changes.push(("target_branch", json!(mr.target_branch), json!(target)));
                mr.target_branch = target;
                mr.base_sha = base;
                mr.start_sha = start;
            }
            if let Some(remove) = edit.remove_source_branch {
                mr.force_remove_source_branch = remove;
            }
            if let Some(title) = edit.title.filter(|t| *t != mr.title) {
                let draft = is_draft_title(&title);
                if draft != mr.draft {
                    changes.push(("draft", json!(mr.draft), json!(draft)));
                    mr.draft = draft;
                }
                changes.push(("title", json!(mr.title), json!(title)));
                mr.title = title;
            }
            if let Some(description) = edit.description.filter(|d| *d != mr.description) {
                changes.push(("description", json!(mr.description), json!(description)));
                mr.description = description;
            }
            // The simulator keeps no edit history: the previous editor is unknown.
            changes.push((
                "last_edited_at",
                Value::Null,
                json!(payload::hook_time(now)),
            ));
            changes.push(("last_edited_by_id", Value::Null, json!(user_id)));
            changes.push(("updated_by_id", Value::Null, json!(user_id)));
            changes.push((
                "updated_at",
                json!(payload::hook_time(mr.updated_at)),
                json!(payload::hook_time(now)),
            ));
            mr.updated_at = now;
            Ok(changes)
        })?;
        self.send_merge_request_hook(user_id, &mr, "update", None, changes)
            .await?;
        Ok(mr)
    }

    /// "Mark as draft" / "Mark as ready": the title prefix changes, `changes.draft` says so.
    pub async fn set_merge_request_draft(
        &self,
        project_id: Id,
        iid: u64,
        user_id: Id,
        draft: bool,
    ) -> Result<MergeRequest, SetupError> {
        let title = self
            .lock()
            .merge_request(project_id, iid)
            .map(|mr| toggle_draft_title(&mr.title, draft))
            .ok_or(SetupError::NotFound("Merge request"))?;
        self.edit_merge_request(
            project_id,
            iid,
            user_id,
            MergeRequestEdit {
                title: Some(title),
                ..MergeRequestEdit::default()
            },
        )
        .await
    }

    /// Closes an open merge request (`close`).
    pub async fn close_merge_request(
        &self,
        project_id: Id,
        iid: u64,
        user_id: Id,
    ) -> Result<MergeRequest, SetupError> {
        let (mr, changes) = self.change_merge_request(project_id, iid, |mr, now| {
            if mr.state != MrState::Opened {
                return Err(SetupError::Conflict("merge request is not open".into()));
            }
            let changes = vec![
                ("state_id", json!(1), json!(2)),
                (
                    "updated_at",
                    json!(payload::hook_time(mr.updated_at)),
                    json!(payload::hook_time(now)),
                ),
            ];
            mr.state = MrState::Closed;
            mr.closed_by = Some(user_id);
            mr.closed_at = Some(now);
            mr.updated_at = now;
            Ok(changes)
        })?;
        self.send_merge_request_hook(user_id, &mr, "close", None, changes)
            .await?;
        Ok(mr)
    }

    /// Reopens a closed merge request (`reopen`), refreshed to its source branch's head.
    pub async fn reopen_merge_request(
        &self,
        project_id: Id,
        iid: u64,
        user_id: Id,
    ) -> Result<MergeRequest, SetupError> {
        let (source_project, source, target) = self
            .lock()
            .merge_request(project_id, iid)
            .map(|mr| {
                (
                    mr.source_project(),
                    mr.source_branch.clone(),
                    mr.target_branch.clone(),
                )
            })
            .ok_or(SetupError::NotFound("Merge request"))?;
        let repo = self.repo_path(source_project);
        if source_project != project_id {
            self.fetch_source(project_id, source_project, &source)
                .await?;
        }
        let head = commits::branch_head(&repo, &source)
            .await
            .map_err(repo_error)?
            .ok_or(SetupError::NotFound("Source branch"))?;
        let (base_sha, start_sha) = self.diff_base(project_id, &target, &head).await?;
        let (mr, changes) = self.change_merge_request(project_id, iid, |mr, now| {
            if mr.state != MrState::Closed {
                return Err(SetupError::Conflict("merge request is not closed".into()));
            }
            let changes = vec![
                ("state_id", json!(2), json!(1)),
                (
                    "updated_at",
                    json!(payload::hook_time(mr.updated_at)),
                    json!(payload::hook_time(now)),
                ),
            ];
            mr.state = MrState::Opened;
            mr.closed_by = None;
            mr.closed_at = None;
            mr.sha = head;
            mr.base_sha = base_sha;
            mr.start_sha = start_sha;
            mr.updated_at = now;
            Ok(changes)
        })?;
        self.send_merge_request_hook(user_id, &mr, "reopen", None, changes)
            .await?;
        Ok(mr)
    }

    /// An approval that completes the required approvals: the `approved` hook (GitLab's
    /// overall approval state; the simulator requires one approval).
    pub async fn approve_merge_request(
        &self,
        project_id: Id,
        iid: u64,
        user_id: Id,
    ) -> Result<MergeRequest, SetupError> {
        let (mr, changes) = self.change_merge_request(project_id, iid, |mr, now| {
            if mr.state != MrState::Opened {
                return Err(SetupError::Conflict("merge request is not open".into()));
            }
            let changes = vec![(
                "updated_at",
                json!(payload::hook_time(mr.updated_at)),
                json!(payload::hook_time(now)),
            )];
            mr.updated_at = now;
            Ok(changes)
        })?;
        self.send_merge_request_hook(user_id, &mr, "approved", None, changes)
            .await?;
        Ok(mr)
    }
}

#[cfg(test)]
mod tests {
    use super::{check_branch, check_path, toggle_draft_title};

    #[test]
    fn bad_branch_names_are_refused() {
        for bad in ["", "-x", "a..b", "a b", "a:b", "x.lock", "a/"] {
            assert!(check_branch(bad).is_err(), "{bad:?}");
        }
        assert!(check_branch("feature/orders-2").is_ok());
    }

    #[test]
    fn unsafe_paths_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            "a/../b",
            ".git/config",
            "a//b",
            "tab\there",
            "a\\b",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
        assert!(check_path("models/orders.sql").is_ok());
    }

    #[test]
    fn draft_prefix_is_added_and_removed() {
        assert_eq!(toggle_draft_title("Add model", true), "Draft: Add model");
        assert_eq!(toggle_draft_title("Draft: Add model", false), "Add model");
        assert_eq!(toggle_draft_title("[Draft] Add model", false), "Add model");
        assert_eq!(
            toggle_draft_title("Draft: Add model", true),
            "Draft: Add model"
        );
        assert_eq!(toggle_draft_title("Add model", false), "Add model");
    }
}
