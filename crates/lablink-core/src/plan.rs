//! Account plans and what they allow.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::UnknownName;

/// The plan of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    Developer,
    Starter,
    Enterprise,
    EnterprisePlus,
}

impl Plan {
    pub const ALL: [Plan; 4] = [
        Plan::Developer,
        Plan::Starter,
        Plan::Enterprise,
        Plan::EnterprisePlus,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Developer => "developer",
            Plan::Starter => "starter",
            Plan::Enterprise => "enterprise",
            Plan::EnterprisePlus => "enterprise_plus",
        }
    }

    /// Human label for pages.
    pub fn label(self) -> &'static str {
        match self {
            Plan::Developer => "Developer",
            Plan::Starter => "Starter",
            Plan::Enterprise => "Enterprise",
            Plan::EnterprisePlus => "Enterprise+",
        }
    }

    /// Only enterprise plans may register their own GitLab application (and so a self-managed
    /// instance); the others use the operator's application for gitlab.com.
    pub fn allows_own_gitlab_app(self) -> bool {
        matches!(self, Plan::Enterprise | Plan::EnterprisePlus)
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Plan {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Plan::ALL
            .into_iter()
            .find(|p| p.as_str() == s.trim())
            .ok_or_else(|| UnknownName {
                what: "plan",
                value: s.to_owned(),
                expected: "developer, starter, enterprise, enterprise_plus",
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Plan::ALL {
            assert_eq!(p.as_str().parse::<Plan>().unwrap(), p);
        }
    }

    #[test]
    fn only_enterprise_plans_bring_their_own_app() {
        assert!(!Plan::Developer.allows_own_gitlab_app());
        assert!(!Plan::Starter.allows_own_gitlab_app());
        assert!(Plan::Enterprise.allows_own_gitlab_app());
        assert!(Plan::EnterprisePlus.allows_own_gitlab_app());
    }

    #[test]
    fn unknown_plan_says_what_is_expected() {
        let err = "gold".parse::<Plan>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "`gold` is not a valid plan; expected one of: developer, starter, enterprise, enterprise_plus"
        );
    }
}
