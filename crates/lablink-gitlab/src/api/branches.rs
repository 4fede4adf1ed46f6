//! One branch of a project, with whether the caller may push to it (`GET
//! /projects/:id/repository/branches/:branch`).

use serde::Deserialize;

use super::Api;
use crate::error::GitLabError;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BranchCommit {
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Branch {
    pub name: String,
    pub commit: BranchCommit,
    #[serde(default)]
    pub protected: bool,
    /// Whether the token's user may push to the branch (protection and role considered).
    #[serde(default)]
    pub can_push: bool,
    #[serde(default)]
    pub default: bool,
}

impl Api {
    /// The branch, or `None` when the project has no branch of that name.
    pub async fn branch(&self, project_id: i64, name: &str) -> Result<Option<Branch>, GitLabError> {
        let url = self.project_url(project_id, &["repository", "branches", name]);
        match self.get(url).await {
            Ok(branch) => Ok(Some(branch)),
            Err(err) if err.is_not_found() => Ok(None),
            Err(err) => Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_gitlab_branch_answers() {
        // GitLab's documented answer (doc/api/branches.md, "Get single repository branch").
        let json = r#"{"name":"main","merged":false,"protected":true,"default":true,
            "developers_can_push":false,"developers_can_merge":false,"can_push":true,
            "web_url":"https://gitlab.example.com/my-group/my-project/-/tree/main",
            "commit":{"id":"7b5c3cc8be40ee161ae89a06bba6229da1032a0c","short_id":"7b5c3cc",
            "title":"add projects API","message":"add projects API"}}"#;
        let branch: Branch = serde_json::from_str(json).unwrap();
        assert_eq!(branch.name, "main");
        assert!(branch.protected && branch.can_push && branch.default);
        assert_eq!(branch.commit.id, "7b5c3cc8be40ee161ae89a06bba6229da1032a0c");
    }
}
