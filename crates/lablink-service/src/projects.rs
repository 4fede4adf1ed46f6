//! dbt projects: name, the dbt project's directory inside the repository and the CI target
//! branch. Admins and developers create and edit them; everyone in the account sees them.

pub use lablink_store::projects::Project;

use lablink_core::validate;
use lablink_store::projects::ProjectFields;

use crate::accounts::bad;
use crate::error::require;
use crate::{Principal, ServiceError, Services};

const MAX_PATH_LEN: usize = 255;

/// A project as typed by a person.
#[derive(Debug, Clone, Default)]
pub struct ProjectInput {
    pub name: String,
    /// Blank for the repository root.
    pub subdirectory: String,
    /// Blank for the repository's default branch.
    pub target_branch: String,
}

/// A relative directory without `.`/`..` segments, normalised to `a/b` (blank = root).
fn subdirectory(input: &str) -> Result<String, ServiceError> {
    let trimmed = input.trim().trim_matches('/');
    let refuse = || {
        ServiceError::BadInput(format!(
            "the dbt project subdirectory must be a relative path inside the repository such as \
             `analytics/dbt` (no `..`, at most {MAX_PATH_LEN} characters), or blank for the root"
        ))
    };
    if trimmed.len() > MAX_PATH_LEN || trimmed.chars().any(|c| c.is_control() || c == '\\') {
        return Err(refuse());
    }
    let segments: Vec<&str> = trimmed.split('/').filter(|s| !s.is_empty()).collect();
    if segments.iter().any(|s| matches!(*s, "." | "..")) {
        return Err(refuse());
    }
    Ok(segments.join("/"))
}

/// A branch name git accepts (the rules of `git check-ref-format --branch` that matter here),
/// or `None` for blank.
fn target_branch(input: &str) -> Result<Option<String>, ServiceError> {
    let name = input.trim();
    if name.is_empty() {
        return Ok(None);
    }
    let valid = name.len() <= MAX_PATH_LEN
        && !name.starts_with(['-', '/', '.'])
        && !name.ends_with(['/', '.'])
        && !name.ends_with(".lock")
        && !name.contains("..")
        && !name.contains("//")
        && !name.contains("@{")
        && !name
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c));
    if valid {
        Ok(Some(name.to_owned()))
    } else {
        Err(ServiceError::BadInput(format!(
            "`{name}` is not a valid branch name; leave it blank to use the repository's default branch"
        )))
    }
}

impl Services {
    #[tracing::instrument(
        skip_all,
        fields(account_id = %caller.account_id, user_id = %caller.user_id),
    )]
    pub async fn list_projects(&self, caller: &Principal) -> Result<Vec<Project>, ServiceError> {
        Ok(self.db.projects_of_account(&caller.account_id).await?)
    }

    #[tracing::instrument(
        skip_all,
        fields(account_id = %caller.account_id, user_id = %caller.user_id, project_id = %id),
    )]
    pub async fn project(&self, caller: &Principal, id: &str) -> Result<Project, ServiceError> {
        self.db
            .project(&caller.account_id, id)
            .await?
            .ok_or_else(|| ServiceError::NotFound("No such project in this account.".to_owned()))
    }

    #[tracing::instrument(
        skip_all,
        fields(account_id = %caller.account_id, user_id = %caller.user_id),
    )]
    pub async fn create_project(
        &self,
        caller: &Principal,
        input: &ProjectInput,
    ) -> Result<Project, ServiceError> {
        require(
            caller.role.can_write(),
            "Read-only users cannot create projects.",
        )?;
        let name = validate::display_name("project name", &input.name).map_err(bad)?;
        let subdirectory = subdirectory(&input.subdirectory)?;
        let branch = target_branch(&input.target_branch)?;
        let fields = ProjectFields {
            name: &name,
            subdirectory: &subdirectory,
            target_branch: branch.as_deref(),
        };
        let project = self.db.create_project(&caller.account_id, &fields).await?;
        tracing::info!(project_id = %project.id, "project created");
        Ok(project)
    }

    #[tracing::instrument(
        skip_all,
        fields(account_id = %caller.account_id, user_id = %caller.user_id, project_id = %id),
    )]
    pub async fn update_project(
        &self,
        caller: &Principal,
        id: &str,
        input: &ProjectInput,
    ) -> Result<Project, ServiceError> {
        require(
            caller.role.can_write(),
            "Read-only users cannot change projects.",
        )?;
        let name = validate::display_name("project name", &input.name).map_err(bad)?;
        let subdirectory = subdirectory(&input.subdirectory)?;
        let branch = target_branch(&input.target_branch)?;
        let fields = ProjectFields {
            name: &name,
            subdirectory: &subdirectory,
            target_branch: branch.as_deref(),
        };
        Ok(self
            .db
            .update_project(&caller.account_id, id, &fields)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdirectories_are_relative_and_normalised() {
        assert_eq!(subdirectory("").unwrap(), "");
        assert_eq!(subdirectory(" /analytics//dbt/ ").unwrap(), "analytics/dbt");
        assert!(subdirectory("../etc").is_err());
        assert!(subdirectory("a/./b").is_err());
        assert!(subdirectory("a\\b").is_err());
    }

    #[test]
    fn branch_names_follow_git_rules() {
        assert_eq!(target_branch(" ").unwrap(), None);
        assert_eq!(
            target_branch("release/2024").unwrap().as_deref(),
            Some("release/2024")
        );
        for bad in ["-x", "a..b", "a b", "x.lock", "a~1", "a:b", "/a", "a/"] {
            assert!(target_branch(bad).is_err(), "{bad}");
        }
    }
}
