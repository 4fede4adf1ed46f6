//! GitLab membership access levels (`access_level` in the REST API).

use serde::{Deserialize, Serialize};

/// A GitLab access level. Values are GitLab's own integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum AccessLevel {
    NoAccess,
    MinimalAccess,
    Guest,
    Planner,
    Reporter,
    Developer,
    Maintainer,
    Owner,
}

impl AccessLevel {
    pub const ALL: [AccessLevel; 8] = [
        AccessLevel::NoAccess,
        AccessLevel::MinimalAccess,
        AccessLevel::Guest,
        AccessLevel::Planner,
        AccessLevel::Reporter,
        AccessLevel::Developer,
        AccessLevel::Maintainer,
        AccessLevel::Owner,
    ];

    pub fn value(self) -> u8 {
        match self {
            AccessLevel::NoAccess => 0,
            AccessLevel::MinimalAccess => 5,
            AccessLevel::Guest => 10,
            AccessLevel::Planner => 15,
            AccessLevel::Reporter => 20,
            AccessLevel::Developer => 30,
            AccessLevel::Maintainer => 40,
            AccessLevel::Owner => 50,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            AccessLevel::NoAccess => "No access",
            AccessLevel::MinimalAccess => "Minimal access",
            AccessLevel::Guest => "Guest",
            AccessLevel::Planner => "Planner",
            AccessLevel::Reporter => "Reporter",
            AccessLevel::Developer => "Developer",
            AccessLevel::Maintainer => "Maintainer",
            AccessLevel::Owner => "Owner",
        }
    }

    /// Connecting a repository needs Maintainer (40) or above.
    pub fn is_maintainer_or_above(self) -> bool {
        self >= AccessLevel::Maintainer
    }
}

impl TryFrom<u8> for AccessLevel {
    type Error = String;

    fn try_from(v: u8) -> Result<Self, Self::Error> {
        AccessLevel::ALL
            .into_iter()
            .find(|l| l.value() == v)
            .ok_or_else(|| format!("{v} is not a GitLab access level"))
    }
}

impl From<AccessLevel> for u8 {
    fn from(l: AccessLevel) -> u8 {
        l.value()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_unknown_values_are_refused() {
        for l in AccessLevel::ALL {
            assert_eq!(AccessLevel::try_from(l.value()).unwrap(), l);
        }
        assert!(AccessLevel::try_from(35).is_err());
        let parsed: AccessLevel = serde_json::from_str("40").unwrap();
        assert_eq!(parsed, AccessLevel::Maintainer);
        assert!(serde_json::from_str::<AccessLevel>("41").is_err());
    }

    #[test]
    fn maintainer_or_above() {
        assert!(!AccessLevel::Developer.is_maintainer_or_above());
        assert!(AccessLevel::Maintainer.is_maintainer_or_above());
        assert!(AccessLevel::Owner.is_maintainer_or_above());
        assert!(!AccessLevel::NoAccess.is_maintainer_or_above());
    }
}
