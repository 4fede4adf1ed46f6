//! User roles within an account and what each may do.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::UnknownName;

/// The role of a user in their account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    AccountAdmin,
    Developer,
    ReadOnly,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::AccountAdmin, Role::Developer, Role::ReadOnly];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::AccountAdmin => "account_admin",
            Role::Developer => "developer",
            Role::ReadOnly => "read_only",
        }
    }

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

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s.trim())
            .ok_or_else(|| UnknownName {
                what: "role",
                value: s.to_owned(),
                expected: "account_admin, developer, read_only",
            })
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
