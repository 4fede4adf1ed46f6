//! Protected branches: the rules (`/projects/:id/protected_branches`) and who they admit to push,
//! merge and force-push (`ProtectedBranch::PushAccessLevel#check_access` and friends).

use super::{
    AccessGrant, Grantee, Id, Project, ProtectedBranch, SetupError, State, access, protection,
};

/// Who moves refs: a user (personal, project or OAuth token, web session) or a deploy key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pusher {
    User(Id),
    /// A deploy key; `user_id` is the user who added it (GitLab checks commits against them).
    DeployKey {
        key_id: Id,
        user_id: Id,
    },
}

impl Pusher {
    /// The user the push is attributed to (hooks' `user_id`, push rules' "your own emails").
    pub fn user_id(self) -> Id {
        match self {
            Self::User(id) | Self::DeployKey { user_id: id, .. } => id,
        }
    }
}

/// A protection as the API creates it.
#[derive(Debug, Clone)]
pub struct NewProtection {
    pub name: String,
    pub push: Vec<Grantee>,
    pub merge: Vec<Grantee>,
    pub unprotect_access_level: u8,
    pub allow_force_push: bool,
    pub code_owner_approval_required: bool,
}

impl NewProtection {
    /// GitLab's protection of a new project's default branch: Maintainers push and merge.
    pub fn maintainers_only(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            push: vec![Grantee::Role(access::MAINTAINER)],
            merge: vec![Grantee::Role(access::MAINTAINER)],
            unprotect_access_level: access::MAINTAINER,
            allow_force_push: false,
            code_owner_approval_required: false,
        }
    }
}

impl State {
    pub fn protected_branches_of(&self, project_id: Id) -> impl Iterator<Item = &ProtectedBranch> {
        self.protected_branches
            .values()
            .filter(move |p| p.project_id == project_id)
    }

    /// Every rule whose name (or wildcard) matches `branch`.
    pub fn protections_for<'a>(
        &'a self,
        project_id: Id,
        branch: &'a str,
    ) -> impl Iterator<Item = &'a ProtectedBranch> + 'a {
        self.protected_branches_of(project_id)
            .filter(move |p| p.matches(branch))
    }

    pub fn is_protected(&self, project_id: Id, branch: &str) -> bool {
        self.protections_for(project_id, branch).next().is_some()
    }

    pub fn protect_branch(
        &mut self,
        project_id: Id,
        new: NewProtection,
    ) -> Result<ProtectedBranch, SetupError> {
        if !self.projects.contains_key(&project_id) {
            return Err(SetupError::NotFound("Project"));
        }
        if new.name.trim().is_empty() {
            return Err(SetupError::Invalid("name is missing".into()));
        }
        if self
            .protected_branches_of(project_id)
            .any(|p| p.name == new.name)
        {
            return Err(SetupError::Conflict(format!(
                "Protected branch '{}' already exists",
                new.name
            )));
        }
        for grantee in new.push.iter().chain(&new.merge) {
            if let Grantee::Role(level) = grantee
                && !protection::LEVELS.contains(level)
            {
                return Err(SetupError::Invalid(format!("invalid access level {level}")));
            }
        }
        let id = self.next_id();
        let push_access_levels = self.grants(&new.push);
        let merge_access_levels = self.grants(&new.merge);
        let rule = ProtectedBranch {
            id,
            project_id,
            name: new.name,
            push_access_levels,
            merge_access_levels,
            unprotect_access_level: new.unprotect_access_level,
            allow_force_push: new.allow_force_push,
            code_owner_approval_required: new.code_owner_approval_required,
        };
        self.protected_branches.insert(id, rule.clone());
        Ok(rule)
    }

    /// Gives each grantee its own access-level id, as GitLab's access level rows have.
    pub fn grants(&mut self, grantees: &[Grantee]) -> Vec<AccessGrant> {
        grantees
            .iter()
            .map(|&grantee| AccessGrant {
                id: self.next_id(),
                grantee,
            })
            .collect()
    }

    fn admits(&self, grant: &AccessGrant, pusher: Pusher, project: &Project) -> bool {
        match (grant.grantee, pusher) {
            (Grantee::Role(protection::NO_ACCESS), _) => false,
            (Grantee::Role(protection::ADMIN), Pusher::User(uid)) => {
                self.users.get(&uid).is_some_and(|u| u.is_admin)
            }
            (Grantee::Role(level), Pusher::User(uid)) => {
                self.project_access(uid, project) >= level
                    || self.users.get(&uid).is_some_and(|u| u.is_admin)
            }
            (Grantee::User(id), Pusher::User(uid)) => {
                id == uid && self.project_access(uid, project) >= access::DEVELOPER
            }
            (Grantee::DeployKey(id), Pusher::DeployKey { key_id, .. }) => {
                id == key_id && self.deploy_key_can_push(key_id, project.id)
            }
            // Roles never admit deploy keys; user and key grants admit only themselves.
            _ => false,
        }
    }

    /// `can_push_to_branch?`: unprotected branches need only push access (checked before);
    /// protected ones need a push access level of some matching rule that admits the pusher.
    pub fn can_push_to_branch(&self, pusher: Pusher, project: &Project, branch: &str) -> bool {
        let mut rules = self.protections_for(project.id, branch).peekable();
        if rules.peek().is_none() {
            return true;
        }
        rules.any(|rule| {
            rule.push_access_levels
                .iter()
                .any(|g| self.admits(g, pusher, project))
        })
    }

    /// `can_merge_to_branch?`: merging into a protected branch needs a merge access level.
    pub fn can_merge_to_branch(&self, user_id: Id, project: &Project, branch: &str) -> bool {
        let mut rules = self.protections_for(project.id, branch).peekable();
        if rules.peek().is_none() {
            return self.project_access(user_id, project) >= access::DEVELOPER;
        }
        rules.any(|rule| {
            rule.merge_access_levels
                .iter()
                .any(|g| self.admits(g, Pusher::User(user_id), project))
        })
    }

    /// Force pushes to a protected branch need every matching rule to allow them (GitLab: the
    /// most restrictive rule wins).
    pub fn allows_force_push(&self, project_id: Id, branch: &str) -> bool {
        self.protections_for(project_id, branch)
            .all(|rule| rule.allow_force_push)
    }

    pub fn deploy_key_can_push(&self, key_id: Id, project_id: Id) -> bool {
        self.deploy_key_links
            .iter()
            .any(|l| l.key_id == key_id && l.project_id == project_id && l.can_push)
    }
}
