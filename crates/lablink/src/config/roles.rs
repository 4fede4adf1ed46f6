//! What a replica does (setting `roles`): any non-empty set of the four roles. One machine runs
//! them all; a fleet splits them (see `docs/deploy.md`).

use std::fmt;

/// The roles a replica takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// Pages and the JSON API.
    pub web: bool,
    /// GitLab's webhook deliveries.
    pub intake: bool,
    /// Claims deliveries to process, queue items, runs and commit statuses.
    pub worker: bool,
    /// The fleet's periodic passes (reconciliation, schema sweeps, token rotation, pruning),
    /// each run once across every scheduler.
    pub scheduler: bool,
}

/// Every role's name, in the order they are listed.
pub const NAMES: [&str; 4] = ["web", "intake", "worker", "scheduler"];

impl Roles {
    pub const ALL: Roles = Roles {
        web: true,
        intake: true,
        worker: true,
        scheduler: true,
    };

    /// The roles named, or what is wrong with the names in plain words.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Result<Roles, String> {
        let mut roles = Roles {
            web: false,
            intake: false,
            worker: false,
            scheduler: false,
        };
        for name in names {
            let name = name.as_ref().trim();
            let role = match name {
                "web" => &mut roles.web,
                "intake" => &mut roles.intake,
                "worker" => &mut roles.worker,
                "scheduler" => &mut roles.scheduler,
                _ => {
                    return Err(format!(
                        "`{name}` is not a role; the roles are {}",
                        NAMES.join(", ")
                    ));
                }
            };
            *role = true;
        }
        if !roles.flags().contains(&true) {
            return Err(format!(
                "give at least one role of {} (all four by default)",
                NAMES.join(", ")
            ));
        }
        Ok(roles)
    }

    fn flags(self) -> [bool; 4] {
        [self.web, self.intake, self.worker, self.scheduler]
    }
}

impl fmt::Display for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let named: Vec<&str> = NAMES
            .iter()
            .zip(self.flags())
            .filter_map(|(name, on)| on.then_some(*name))
            .collect();
        f.write_str(&named.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_read_from_their_names() {
        assert_eq!(Roles::from_names(&NAMES), Ok(Roles::ALL));
        let worker = Roles::from_names(&["worker", " worker"]).unwrap();
        assert_eq!(
            worker,
            Roles {
                web: false,
                intake: false,
                worker: true,
                scheduler: false
            }
        );
        assert_eq!(worker.to_string(), "worker");
        assert_eq!(
            Roles::from_names(&["intake", "web"]).unwrap().to_string(),
            "web, intake"
        );
        let unknown = Roles::from_names(&["web", "cron"]).unwrap_err();
        assert_eq!(
            unknown,
            "`cron` is not a role; the roles are web, intake, worker, scheduler"
        );
        assert!(
            Roles::from_names::<&str>(&[])
                .unwrap_err()
                .starts_with("give at least one role")
        );
    }
}
