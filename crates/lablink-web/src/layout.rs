use crate::CurrentUser;

/// What the base layout needs: who is signed in (for navigation), where they are, the message
/// of the action that brought them here, and the CSRF token for forms.
#[derive(Debug, Clone, Default)]
pub struct Chrome {
    pub user: Option<NavUser>,
    pub csrf_token: String,
    /// The address of the page, for marking the current entry of the main navigation.
    pub path: String,
    /// A one-time message after an action (post/redirect/get).
    pub flash: Option<crate::flash::Flash>,
}

#[derive(Debug, Clone)]
pub struct NavUser {
    pub username: String,
    pub account_name: String,
    pub is_admin: bool,
    /// Not read-only: may change things in projects.
    pub can_write: bool,
}

/// The main navigation's entries and the addresses each one stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NavEntry {
    Dashboard,
    Projects,
    Profile,
    LinkedAccounts,
    Settings,
    Integrations,
}

impl NavEntry {
    fn of_path(path: &str) -> Option<NavEntry> {
        let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
        Some(if path == "/" {
            NavEntry::Dashboard
        } else if under("/projects") || under("/runs") || under("/ci-jobs") {
            NavEntry::Projects
        } else if under("/profile/linked-accounts") {
            NavEntry::LinkedAccounts
        } else if under("/profile") {
            NavEntry::Profile
        } else if under("/settings/integrations") {
            NavEntry::Integrations
        } else if under("/settings") {
            NavEntry::Settings
        } else {
            return None;
        })
    }
}

impl Chrome {
    pub fn for_user(user: &CurrentUser) -> Chrome {
        Chrome {
            user: Some(NavUser {
                username: user.principal.username.clone(),
                account_name: user.principal.account_name.clone(),
                is_admin: user.principal.role.can_manage_account(),
                can_write: user.principal.role.can_write(),
            }),
            csrf_token: user.csrf_token.clone(),
            path: user.path.clone(),
            flash: user.flash.clone(),
        }
    }

    /// Whether the signed-in user may change things in projects.
    pub fn can_write(&self) -> bool {
        self.user.as_ref().is_some_and(|u| u.can_write)
    }

    /// Whether `entry` is the navigation entry of the page being shown.
    pub fn is_current(&self, entry: NavEntry) -> bool {
        NavEntry::of_path(&self.path) == Some(entry)
    }

    /// For pages shown before sign-in; forms use the pre-session CSRF token.
    pub fn anonymous(csrf_token: String) -> Chrome {
        Chrome {
            csrf_token,
            ..Chrome::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::NavEntry;

    #[test]
    fn each_address_marks_its_entry() {
        for (path, entry) in [
            ("/", Some(NavEntry::Dashboard)),
            ("/projects", Some(NavEntry::Projects)),
            ("/projects/abc/workspace", Some(NavEntry::Projects)),
            ("/runs/abc", Some(NavEntry::Projects)),
            ("/profile", Some(NavEntry::Profile)),
            ("/profile/tokens", Some(NavEntry::Profile)),
            ("/profile/linked-accounts", Some(NavEntry::LinkedAccounts)),
            ("/settings/audit", Some(NavEntry::Settings)),
            (
                "/settings/integrations/gitlab",
                Some(NavEntry::Integrations),
            ),
            ("/projectsx", None),
            ("/login", None),
        ] {
            assert_eq!(NavEntry::of_path(path), entry, "{path}");
        }
    }
}

/// The pages of one project, as its sub-navigation lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectTab {
    Overview,
    Repository,
    CiJobs,
    Runs,
    Workspace,
    Connection,
}

/// What every project page shows above its content: breadcrumbs (Projects › project › page) and
/// the project's sub-navigation with the current page marked.
#[derive(Debug, Clone)]
pub struct ProjectNav {
    pub id: String,
    pub name: String,
    pub tab: ProjectTab,
    /// A repository is connected (the workspace and Check connection need one).
    pub connected: bool,
    pub can_write: bool,
    /// Breadcrumbs after the project's own: label and, except for the last, its address.
    pub trail: Vec<(String, Option<String>)>,
}

impl ProjectNav {
    pub fn is(&self, tab: ProjectTab) -> bool {
        self.tab == tab
    }

    /// Adds a breadcrumb after the project's.
    pub fn then(mut self, label: impl Into<String>, href: Option<String>) -> ProjectNav {
        self.trail.push((label.into(), href));
        self
    }
}
