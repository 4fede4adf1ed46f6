//! `GET /user`: who the token belongs to (gitlab-api.md §7.4).

use serde::Deserialize;

use super::Api;
use crate::error::GitLabError;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub name: String,
    /// Primary email; present for the token's own user.
    #[serde(default)]
    pub email: Option<String>,
    /// The email to author commits with (push rules check it, §2.1).
    #[serde(default)]
    pub commit_email: Option<String>,
    /// `active`, `blocked`, `deactivated`, …
    pub state: String,
    pub web_url: String,
}

impl Api {
    /// The user the token belongs to.
    pub async fn current_user(&self) -> Result<User, GitLabError> {
        self.get(self.url(&["user"])).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::fixture;

    #[test]
    fn parses_the_current_user_fixture() {
        let user: User = serde_json::from_slice(&fixture("api.user.current_user.json")).unwrap();
        assert_eq!(user.id, 1);
        assert_eq!(user.username, "john_smith");
        assert_eq!(user.email.as_deref(), Some("john@example.com"));
        assert_eq!(user.commit_email, None);
        assert_eq!(user.state, "active");
        let public: User = serde_json::from_slice(&fixture("api.user.get_users_id.json")).unwrap();
        assert_eq!(public.email, None);
    }
}
