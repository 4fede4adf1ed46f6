use crate::CurrentUser;

/// What the base layout needs: who is signed in (for navigation) and the CSRF token for forms.
#[derive(Debug, Clone, Default)]
pub struct Chrome {
    pub user: Option<NavUser>,
    pub csrf_token: String,
}

#[derive(Debug, Clone)]
pub struct NavUser {
    pub username: String,
    pub account_name: String,
    pub is_admin: bool,
    /// Not read-only: may change things in projects.
    pub can_write: bool,
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
        }
    }

    /// Whether the signed-in user may change things in projects.
    pub fn can_write(&self) -> bool {
        self.user.as_ref().is_some_and(|u| u.can_write)
    }

    /// For pages shown before sign-in; forms use the pre-session CSRF token.
    pub fn anonymous(csrf_token: String) -> Chrome {
        Chrome {
            user: None,
            csrf_token,
        }
    }
}
