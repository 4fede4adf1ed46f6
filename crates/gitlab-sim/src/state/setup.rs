//! Set-up operations behind the control API (users, groups, projects, members, OAuth apps,
//! settings, clock, faults). The same operations are exposed as Rust methods on [`SimHandle`].

use chrono::NaiveDate;
use serde::Deserialize;

use super::{
    Fault, Group, Id, Member, MergeRequest, MrState, Namespace, OAuthApplication, OAuthGrant,
    PersonalAccessToken, Project, PushRule, SecretRef, SimHandle, State, User, Visibility, access,
};
use crate::{repo, secrets};

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("repository error: {0}")]
    Repository(String),
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct NewUser {
    pub username: String,
    pub name: Option<String>,
    pub email: Option<String>,
    /// Password for the sim's sign-in page; without one the user can only use tokens.
    pub password: Option<String>,
    #[serde(default)]
    pub is_admin: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct NewGroup {
    pub path: String,
    pub name: Option<String>,
    pub parent_id: Option<Id>,
    pub visibility: Option<Visibility>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NewProject {
    pub path: String,
    pub name: Option<String>,
    pub namespace: Namespace,
    pub visibility: Option<Visibility>,
    pub description: Option<String>,
    pub default_branch: Option<String>,
    #[serde(default)]
    pub archived: bool,
}

/// The input of [`State::insert_merge_request`]: the commits are already resolved from the repo.
#[derive(Debug, Clone)]
pub struct NewMergeRequest {
    /// The target project.
    pub project_id: Id,
    pub source_project_id: Id,
    pub force_remove_source_branch: bool,
    pub author_id: Id,
    pub title: String,
    pub description: String,
    pub source_branch: String,
    pub target_branch: String,
    pub sha: String,
    pub base_sha: String,
    pub start_sha: String,
}

fn valid_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 255
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !path.starts_with(['-', '.'])
        && !path.ends_with(".git")
}

fn check_level(level: u8) -> Result<(), SetupError> {
    if access::VALID.contains(&level) {
        Ok(())
    } else {
        Err(SetupError::Invalid(format!("invalid access level {level}")))
    }
}

impl State {
    pub fn create_user(&mut self, new: NewUser) -> Result<(User, String), SetupError> {
        if !valid_path(&new.username) {
            return Err(SetupError::Invalid("username is invalid".into()));
        }
        if self.user_by_username(&new.username).is_some() {
            return Err(SetupError::Conflict(
                "Username has already been taken".into(),
            ));
        }
        let id = self.next_id();
        let user = User {
            id,
            name: new.name.unwrap_or_else(|| new.username.clone()),
            email: new
                .email
                .unwrap_or_else(|| format!("{}@example.com", new.username)),
            username: new.username,
            state: "active".into(),
            is_admin: new.is_admin,
            bot: false,
            password_digest: new.password.as_deref().map(secrets::digest),
            created_at: self.now(),
        };
        self.users.insert(id, user.clone());
        let (_, token) =
            self.create_personal_access_token(id, "gitlab-sim", vec!["api".into()], None)?;
        Ok((user, token))
    }

    pub fn create_personal_access_token(
        &mut self,
        user_id: Id,
        name: &str,
        scopes: Vec<String>,
        expires_at: Option<NaiveDate>,
    ) -> Result<(PersonalAccessToken, String), SetupError> {
        if !self.users.contains_key(&user_id) {
            return Err(SetupError::NotFound("User"));
        }
        let id = self.next_id();
        let token = PersonalAccessToken {
            id,
            user_id,
            name: name.into(),
            scopes,
            revoked: false,
            expires_at,
            created_at: self.now(),
            last_used_at: None,
        };
        self.personal_access_tokens.insert(id, token.clone());
        let secret = self.issue_secret("glpat-", SecretRef::PersonalAccessToken(id));
        Ok((token, secret))
    }

    pub fn create_group(&mut self, new: NewGroup) -> Result<Group, SetupError> {
        if !valid_path(&new.path) {
            return Err(SetupError::Invalid("path is invalid".into()));
        }
        if let Some(parent) = new.parent_id
            && !self.groups.contains_key(&parent)
        {
            return Err(SetupError::NotFound("Parent group"));
        }
        let taken = self
            .groups
            .values()
            .any(|g| g.parent_id == new.parent_id && g.path == new.path);
        if taken {
            return Err(SetupError::Conflict("Path has already been taken".into()));
        }
        let id = self.next_id();
        let group = Group {
            id,
            name: new.name.unwrap_or_else(|| new.path.clone()),
            path: new.path,
            parent_id: new.parent_id,
            description: new.description.unwrap_or_default(),
            visibility: new.visibility.unwrap_or(Visibility::Private),
            created_at: self.now(),
        };
        self.groups.insert(id, group.clone());
        Ok(group)
    }

    fn insert_project(&mut self, new: NewProject) -> Result<Project, SetupError> {
        if !valid_path(&new.path) {
            return Err(SetupError::Invalid("path is invalid".into()));
        }
        let creator_id = match new.namespace {
            Namespace::Group(gid) => {
                if !self.groups.contains_key(&gid) {
                    return Err(SetupError::NotFound("Namespace"));
                }
                // GitLab records who created it; the sim uses the group's first Owner if any.
                self.group_members
                    .get(&gid)
                    .and_then(|ms| ms.values().find(|m| m.access_level == access::OWNER))
                    .map_or(0, |m| m.user_id)
            }
            Namespace::User(uid) => {
                if !self.users.contains_key(&uid) {
                    return Err(SetupError::NotFound("Namespace"));
                }
                uid
            }
        };
        let taken = self
            .projects
            .values()
            .any(|p| p.namespace == new.namespace && p.path == new.path);
        if taken {
            return Err(SetupError::Conflict("Path has already been taken".into()));
        }
        let id = self.next_id();
        let now = self.now();
        let default_branch = new.default_branch.unwrap_or_else(|| "main".into());
        let project = Project {
            id,
            name: new.name.unwrap_or_else(|| new.path.clone()),
            path: new.path,
            namespace: new.namespace,
            description: new.description.unwrap_or_default(),
            default_branch: default_branch.clone(),
            visibility: new.visibility.unwrap_or(Visibility::Private),
            archived: new.archived,
            creator_id,
            forked_from_id: None,
            only_allow_merge_if_pipeline_succeeds: false,
            created_at: now,
            updated_at: now,
            last_activity_at: now,
            next_mr_iid: 1,
        };
        self.projects.insert(id, project.clone());
        self.protect_branch(id, super::NewProtection::maintainers_only(&default_branch))?;
        Ok(project)
    }

    /// Moves a project to another namespace as GitLab's transfer does: the id, repository,
    /// hooks, tokens, keys and direct members stay; the path with namespace changes.
    pub fn transfer_project(
        &mut self,
        project_id: Id,
        namespace: Namespace,
    ) -> Result<Project, SetupError> {
        let exists = match namespace {
            Namespace::Group(gid) => self.groups.contains_key(&gid),
            Namespace::User(uid) => self.users.contains_key(&uid),
        };
        if !exists {
            return Err(SetupError::NotFound("Namespace"));
        }
        let Some(project) = self.projects.get(&project_id) else {
            return Err(SetupError::NotFound("Project"));
        };
        if project.namespace == namespace {
            return Err(SetupError::Invalid(
                "Project is already in this namespace.".into(),
            ));
        }
        let path = project.path.clone();
        let taken = self
            .projects
            .values()
            .any(|p| p.namespace == namespace && p.path == path);
        if taken {
            return Err(SetupError::Conflict(
                "Project with same name or path in target namespace already exists".into(),
            ));
        }
        let now = self.now();
        let project = self
            .projects
            .get_mut(&project_id)
            .ok_or(SetupError::NotFound("Project"))?;
        project.namespace = namespace;
        project.updated_at = now;
        project.last_activity_at = now;
        Ok(project.clone())
    }

    /// Sets (or replaces) a project's push rule; its regexes must compile.
    pub fn set_push_rule(
        &mut self,
        project_id: Id,
        mut rule: PushRule,
    ) -> Result<PushRule, SetupError> {
        if !self.projects.contains_key(&project_id) {
            return Err(SetupError::NotFound("Project"));
        }
        for (field, pattern) in rule.regexes() {
            crate::checks::validate_regex(pattern)
                .map_err(|e| SetupError::Invalid(format!("{field} {e}")))?;
        }
        let existing = self
            .push_rules
            .get(&project_id)
            .map(|r| (r.id, r.created_at));
        (rule.id, rule.created_at) = match existing {
            Some(kept) => kept,
            None => (self.next_id(), Some(self.now())),
        };
        rule.project_id = project_id;
        self.push_rules.insert(project_id, rule.clone());
        Ok(rule)
    }

    /// Revokes a deploy token as the Revoke button of GitLab's settings page does (the REST
    /// API can only delete one): it stays listed, marked `revoked`.
    pub fn revoke_deploy_token(&mut self, project_id: Id, token_id: Id) -> Result<(), SetupError> {
        let token = self
            .deploy_tokens
            .get_mut(&token_id)
            .filter(|t| t.project_id == project_id && !t.deleted)
            .ok_or(SetupError::NotFound("Deploy token"))?;
        token.revoked = true;
        Ok(())
    }

    fn member(&self, user_id: Id, access_level: u8, created_by: Option<Id>) -> Member {
        Member {
            user_id,
            access_level,
            created_at: self.now(),
            created_by,
            expires_at: None,
        }
    }

    pub fn add_group_member(
        &mut self,
        group_id: Id,
        user_id: Id,
        access_level: u8,
    ) -> Result<(), SetupError> {
        check_level(access_level)?;
        if !self.groups.contains_key(&group_id) {
            return Err(SetupError::NotFound("Group"));
        }
        if !self.users.contains_key(&user_id) {
            return Err(SetupError::NotFound("User"));
        }
        let member = self.member(user_id, access_level, None);
        self.group_members
            .entry(group_id)
            .or_default()
            .insert(user_id, member);
        Ok(())
    }

    pub fn add_project_member(
        &mut self,
        project_id: Id,
        user_id: Id,
        access_level: u8,
        created_by: Option<Id>,
    ) -> Result<(), SetupError> {
        check_level(access_level)?;
        if !self.projects.contains_key(&project_id) {
            return Err(SetupError::NotFound("Project"));
        }
        if !self.users.contains_key(&user_id) {
            return Err(SetupError::NotFound("User"));
        }
        let member = self.member(user_id, access_level, created_by);
        self.project_members
            .entry(project_id)
            .or_default()
            .insert(user_id, member);
        Ok(())
    }

    pub fn create_oauth_application(
        &mut self,
        name: &str,
        redirect_uris: Vec<String>,
        scopes: Vec<String>,
        confidential: bool,
        trusted: bool,
    ) -> Result<(OAuthApplication, String), SetupError> {
        if redirect_uris.is_empty() || redirect_uris.iter().any(|u| url::Url::parse(u).is_err()) {
            return Err(SetupError::Invalid("redirect_uri is invalid".into()));
        }
        let id = self.next_id();
        let secret = secrets::random_token("gloas-");
        let app = OAuthApplication {
            id,
            uid: secrets::random_hex(32),
            secret_digest: secrets::digest(&secret),
            name: name.into(),
            redirect_uris,
            // Doorkeeper's default scopes (`api`) apply when an application defines none.
            scopes: if scopes.is_empty() {
                vec!["api".into()]
            } else {
                scopes
            },
            confidential,
            trusted,
            created_at: self.now(),
        };
        self.oauth_applications.insert(id, app.clone());
        Ok((app, secret))
    }

    pub fn oauth_application_by_uid(&self, uid: &str) -> Option<&OAuthApplication> {
        self.oauth_applications.values().find(|a| a.uid == uid)
    }

    /// Creates an authorization code as if the user had clicked "Authorize".
    pub fn create_oauth_code(
        &mut self,
        user_id: Id,
        application_id: Id,
        redirect_uri: &str,
        scopes: Vec<String>,
        code_challenge: Option<String>,
        code_challenge_method: Option<String>,
    ) -> String {
        let id = self.next_id();
        let grant = OAuthGrant {
            application_id,
            user_id,
            redirect_uri: redirect_uri.into(),
            scopes,
            code_challenge,
            code_challenge_method,
            created_at: self.now(),
            revoked: false,
        };
        self.oauth_grants.insert(id, grant);
        let code = secrets::random_hex(32);
        self.secrets
            .insert(secrets::digest(&code), SecretRef::OAuthCode(id));
        code
    }

    /// Signs a user in to the sim's web pages; returns the `_gitlab_session` cookie value.
    pub fn create_web_session(&mut self, user_id: Id) -> String {
        let cookie = secrets::random_hex(32);
        self.web_sessions.insert(secrets::digest(&cookie), user_id);
        cookie
    }

    pub fn web_session_user(&self, cookie: &str) -> Option<Id> {
        self.web_sessions.get(&secrets::digest(cookie)).copied()
    }

    pub fn add_fault(&mut self, mut fault: Fault) -> Id {
        fault.id = self.next_id();
        let id = fault.id;
        self.faults.push(fault);
        id
    }

    /// Stores a merge request (no hooks fire here; the control layer adds those).
    pub fn insert_merge_request(
        &mut self,
        new: NewMergeRequest,
    ) -> Result<MergeRequest, SetupError> {
        let now = self.now();
        let id = self.next_id();
        let project = self
            .projects
            .get_mut(&new.project_id)
            .ok_or(SetupError::NotFound("Project"))?;
        let iid = project.next_mr_iid;
        project.next_mr_iid += 1;
        let draft = is_draft_title(&new.title);
        let mr = MergeRequest {
            id,
            iid,
            project_id: new.project_id,
            title: new.title,
            description: new.description,
            source_branch: new.source_branch,
            target_branch: new.target_branch,
            sha: new.sha,
            base_sha: new.base_sha,
            start_sha: new.start_sha,
            draft,
            state: MrState::Opened,
            author_id: new.author_id,
            source_project_id: new.source_project_id,
            force_remove_source_branch: new.force_remove_source_branch,
            merge_commit_sha: None,
            merged_by: None,
            merged_at: None,
            closed_by: None,
            closed_at: None,
            created_at: now,
            updated_at: now,
            notes: Vec::new(),
        };
        self.merge_requests.insert(id, mr.clone());
        Ok(mr)
    }
}

/// Why a user's SSH key is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SshKeyError {
    #[error("key {0}")]
    Key(#[from] crate::ssh_key::KeyError),
    #[error("fingerprint_sha256 has already been taken")]
    Taken,
    #[error("User not found")]
    UnknownUser,
}

impl From<SshKeyError> for SetupError {
    fn from(e: SshKeyError) -> Self {
        match e {
            SshKeyError::UnknownUser => SetupError::NotFound("User"),
            other => SetupError::Invalid(other.to_string()),
        }
    }
}

/// A user's SSH key as `POST /user/keys` takes it.
#[derive(Debug, Clone, Deserialize)]
pub struct NewSshKey {
    pub title: String,
    pub key: String,
    #[serde(default)]
    pub expires_at: Option<super::Time>,
    /// `auth`, `signing` or `auth_and_signing` (the default).
    #[serde(default)]
    pub usage_type: Option<String>,
}

impl State {
    /// Adds an SSH key to a user; fingerprints are unique across users' and deploy keys.
    pub fn add_ssh_key(
        &mut self,
        user_id: Id,
        new: NewSshKey,
    ) -> Result<super::SshKey, SshKeyError> {
        if !self.users.contains_key(&user_id) {
            return Err(SshKeyError::UnknownUser);
        }
        let parsed = crate::ssh_key::parse(&new.key)?;
        let taken = self
            .ssh_keys
            .values()
            .map(|k| &k.fingerprint_sha256)
            .chain(self.deploy_keys.values().map(|k| &k.fingerprint_sha256))
            .any(|f| *f == parsed.fingerprint_sha256);
        if taken {
            return Err(SshKeyError::Taken);
        }
        let id = self.next_id();
        let key = super::SshKey {
            id,
            user_id,
            title: new.title,
            key: parsed.normalized,
            fingerprint: parsed.fingerprint,
            fingerprint_sha256: parsed.fingerprint_sha256,
            usage_type: new.usage_type.unwrap_or_else(|| "auth_and_signing".into()),
            expires_at: new.expires_at,
            created_at: self.now(),
            last_used_at: None,
        };
        self.ssh_keys.insert(id, key.clone());
        Ok(key)
    }
}

/// GitLab derives `draft` from the title prefix (`Draft:`, `[Draft]`, `(Draft)`).
pub fn is_draft_title(title: &str) -> bool {
    let lower = title.trim_start().to_ascii_lowercase();
    ["draft:", "[draft]", "(draft)"]
        .iter()
        .any(|p| lower.starts_with(p))
}

impl SimHandle {
    pub fn create_user(&self, new: NewUser) -> Result<(User, String), SetupError> {
        self.lock().create_user(new)
    }

    pub fn create_group(&self, new: NewGroup) -> Result<Group, SetupError> {
        self.lock().create_group(new)
    }

    /// Adds an SSH key (OpenSSH public key line) to a user, as `POST /user/keys` does.
    pub fn add_ssh_key(
        &self,
        user_id: Id,
        title: &str,
        key: &str,
    ) -> Result<super::SshKey, SetupError> {
        let new = NewSshKey {
            title: title.to_owned(),
            key: key.to_owned(),
            expires_at: None,
            usage_type: None,
        };
        Ok(self.lock().add_ssh_key(user_id, new)?)
    }

    /// Creates the project and its bare repository (`git init --bare`, HEAD → default branch).
    pub async fn create_project(&self, new: NewProject) -> Result<Project, SetupError> {
        let project = self.lock().insert_project(new)?;
        let path = self.repo_path(project.id);
        if let Err(e) = repo::init_bare(&path, &project.default_branch).await {
            self.lock().projects.remove(&project.id);
            return Err(SetupError::Repository(e.to_string()));
        }
        Ok(project)
    }

    /// Protects a branch (or wildcard) of a project, as `POST /protected_branches` does.
    pub fn protect_branch(
        &self,
        project_id: Id,
        protection: super::NewProtection,
    ) -> Result<super::ProtectedBranch, SetupError> {
        self.lock().protect_branch(project_id, protection)
    }

    /// Removes the protection named `name` (exactly as created, wildcards included).
    pub fn unprotect_branch(&self, project_id: Id, name: &str) -> Result<(), SetupError> {
        let mut state = self.lock();
        let id = state
            .protected_branches_of(project_id)
            .find(|p| p.name == name)
            .map(|p| p.id)
            .ok_or(SetupError::NotFound("Protected branch"))?;
        state.protected_branches.remove(&id);
        Ok(())
    }

    /// Sets (or replaces) a project's push rule.
    pub fn set_push_rule(&self, project_id: Id, rule: PushRule) -> Result<PushRule, SetupError> {
        self.lock().set_push_rule(project_id, rule)
    }

    pub fn transfer_project(
        &self,
        project_id: Id,
        namespace: Namespace,
    ) -> Result<Project, SetupError> {
        self.lock().transfer_project(project_id, namespace)
    }

    pub fn revoke_deploy_token(&self, project_id: Id, token_id: Id) -> Result<(), SetupError> {
        self.lock().revoke_deploy_token(project_id, token_id)
    }

    pub fn add_group_member(&self, group_id: Id, user_id: Id, level: u8) -> Result<(), SetupError> {
        self.lock().add_group_member(group_id, user_id, level)
    }

    pub fn add_project_member(
        &self,
        project_id: Id,
        user_id: Id,
        level: u8,
    ) -> Result<(), SetupError> {
        self.lock()
            .add_project_member(project_id, user_id, level, None)
    }

    pub fn create_oauth_application(
        &self,
        name: &str,
        redirect_uris: Vec<String>,
        scopes: Vec<String>,
        confidential: bool,
    ) -> Result<(OAuthApplication, String), SetupError> {
        self.lock()
            .create_oauth_application(name, redirect_uris, scopes, confidential, false)
    }

    /// Marks (user, application) as already authorized: `/oauth/authorize` then redirects with a
    /// code at once for a signed-in user, as GitLab does when a matching grant exists.
    pub fn preapprove_oauth(&self, user_id: Id, application_id: Id) {
        self.lock()
            .oauth_approvals
            .insert((user_id, application_id));
    }

    pub fn create_web_session(&self, user_id: Id) -> String {
        self.lock().create_web_session(user_id)
    }

    pub fn set_gitlab_com_free(&self, on: bool) {
        self.lock().settings.gitlab_com_free = on;
    }

    pub fn advance_clock(&self, seconds: i64) -> super::Time {
        self.lock().advance_clock(seconds)
    }

    pub fn add_fault(&self, fault: Fault) -> Id {
        self.lock().add_fault(fault)
    }

    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }
}
