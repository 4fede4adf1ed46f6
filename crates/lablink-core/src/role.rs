//! User roles within an account and what each may do.

crate::text_enum! {
    /// The role of a user in their account.
    pub enum Role ("role") {
        AccountAdmin = "account_admin",
        Developer = "developer",
        ReadOnly = "read_only",
    }
}

impl Role {
    pub fn label(self) -> &'static str {
        match self {
            Role::AccountAdmin => "Account admin",
            Role::Developer => "Developer",
            Role::ReadOnly => "Read-only",
        }
    }

    /// Account settings: users, roles, integrations.
    pub fn can_manage_account(self) -> bool {
        self == Role::AccountAdmin
    }

    /// Changing things in projects: linking GitLab, connecting repositories, git actions.
    pub fn can_write(self) -> bool {
        matches!(self, Role::AccountAdmin | Role::Developer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!("admin".parse::<Role>().is_err());
    }

    #[test]
    fn permissions_follow_the_role() {
        assert!(Role::AccountAdmin.can_manage_account());
        assert!(!Role::Developer.can_manage_account());
        assert!(!Role::ReadOnly.can_manage_account());
        assert!(Role::AccountAdmin.can_write());
        assert!(Role::Developer.can_write());
        assert!(!Role::ReadOnly.can_write());
    }
}
