//! Projects the user can connect, one project, and effective membership (gitlab-api.md §7).

use serde::Deserialize;

use super::{Api, Page, Pager};
use crate::error::GitLabError;

/// Whether a project lives in a group or in a user's personal namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NamespaceKind {
    Group,
    User,
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Namespace {
    pub id: i64,
    pub kind: NamespaceKind,
    pub full_path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Project {
    pub id: i64,
    pub name: String,
    pub path_with_namespace: String,
    /// `None` for an empty repository.
    #[serde(default)]
    pub default_branch: Option<String>,
    /// Absent from some `simple=true` answers on older versions.
    #[serde(default)]
    pub visibility: Option<String>,
    pub web_url: String,
    pub http_url_to_repo: String,
    #[serde(default)]
    pub ssh_url_to_repo: Option<String>,
    pub namespace: Namespace,
    #[serde(default)]
    pub archived: bool,
}

impl Project {
    pub fn in_group(&self) -> bool {
        self.namespace.kind == NamespaceKind::Group
    }
}

/// A member as seen through `members/all` (inherited and shared-group access included).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Member {
    pub id: i64,
    pub username: String,
    /// `Gitlab::Access` value: 10 Guest … 40 Maintainer, 50 Owner.
    pub access_level: i64,
}

impl Api {
    /// Projects the user is a member of with at least `min_access_level`, oldest first, by
    /// keyset pagination. GitLab cannot filter by namespace kind: use [`Project::in_group`].
    pub fn list_projects_keyset(
        &self,
        min_access_level: Option<i64>,
        search: Option<&str>,
        per_page: u32,
    ) -> Pager<Project> {
        let mut url = self.url(&["projects"]);
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("membership", "true")
                .append_pair("archived", "false")
                .append_pair("simple", "true")
                .append_pair("pagination", "keyset")
                .append_pair("order_by", "id")
                .append_pair("sort", "asc")
                .append_pair("per_page", &per_page.clamp(1, 100).to_string());
            if let Some(level) = min_access_level {
                query.append_pair("min_access_level", &level.to_string());
            }
            if let Some(search) = search.filter(|s| !s.is_empty()) {
                query.append_pair("search", search);
            }
        }
        Pager::new(self, url)
    }

    /// The first page of [`Api::list_projects_keyset`] now; continue with
    /// `Pager::resume(api, page.next)`.
    pub async fn projects_first_page(
        &self,
        min_access_level: Option<i64>,
        search: Option<&str>,
        per_page: u32,
    ) -> Result<Page<Project>, GitLabError> {
        let mut pager = self.list_projects_keyset(min_access_level, search, per_page);
        Ok(pager.next_page().await?.unwrap_or(Page {
            items: Vec::new(),
            next: None,
        }))
    }

    pub async fn project(&self, project_id: i64) -> Result<Project, GitLabError> {
        self.get(self.project_url(project_id, &[])).await
    }

    /// The user's effective membership in a project, or `None` when they have no access.
    pub async fn member_all(
        &self,
        project_id: i64,
        user_id: i64,
    ) -> Result<Option<Member>, GitLabError> {
        let url = self.project_url(project_id, &["members", "all", &user_id.to_string()]);
        match self.get(url).await {
            Ok(member) => Ok(Some(member)),
            Err(err) if err.is_not_found() => Ok(None),
            Err(err) => Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::fixture;

    #[test]
    fn parses_project_with_group_namespace() {
        let project: Project = serde_json::from_slice(&fixture("api.project.get.json")).unwrap();
        assert_eq!(project.id, 3);
        assert_eq!(
            project.path_with_namespace,
            "diaspora/diaspora-project-site"
        );
        assert_eq!(project.default_branch.as_deref(), Some("master"));
        assert_eq!(project.visibility.as_deref(), Some("private"));
        assert_eq!(project.namespace.kind, NamespaceKind::Group);
        assert!(project.in_group());
        assert!(!project.archived);
    }

    #[test]
    fn personal_and_unknown_namespace_kinds() {
        let json = r#"{"id":1,"name":"p","path_with_namespace":"me/p","web_url":"https://g/me/p",
            "http_url_to_repo":"https://g/me/p.git","namespace":{"id":2,"kind":"user","full_path":"me"}}"#;
        let project: Project = serde_json::from_str(json).unwrap();
        assert!(!project.in_group());
        assert_eq!(project.default_branch, None);
        let json = json.replace(r#""kind":"user""#, r#""kind":"organization""#);
        let project: Project = serde_json::from_str(&json).unwrap();
        assert_eq!(project.namespace.kind, NamespaceKind::Other);
    }

    #[test]
    fn parses_member_access_level() {
        let member: Member =
            serde_json::from_slice(&fixture("api.member.get_all_user_id.json")).unwrap();
        assert_eq!(member.access_level, 30);
        assert_eq!(member.username, "raymond_smith");
    }
}
