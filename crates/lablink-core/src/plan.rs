//! Account plans and what they allow.

crate::text_enum! {
    /// The plan of an account.
    pub enum Plan ("plan") {
        Developer = "developer",
        Starter = "starter",
        Enterprise = "enterprise",
        EnterprisePlus = "enterprise_plus",
    }
}

impl Plan {
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
