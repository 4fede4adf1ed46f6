//! The doctor: checks a project's connection as GitLab sees it now, one [`Finding`] per problem,
//! and repairs what can be repaired. Checks call GitLab with lablink's project access token (a
//! Maintainer-level bot); when that token is broken, with the connecting user's linked account.
//! "Send test delivery" asks GitLab to send a webhook test and waits for lablink to receive it.

mod checks;
pub mod findings;
mod fixes;
mod gitignore;
mod health;

use lablink_exec::sandbox::Isolation;
use lablink_store::audit::{AuditEvent, AuditOutcome};
use std::time::{Duration, Instant};

use lablink_gitlab::Api;
use lablink_store::repositories::Repository;

pub use findings::{Code, Finding, Outcome, Repair, Report, Severity};
pub(crate) use gitignore::{BUILD_FOLDERS, GitignoreCache, corrected, in_project, missing_entries};
pub(crate) use health::ChecksRunning;
pub use health::ConnectionHealth;

use crate::error::require;
use crate::{Principal, ServiceError, Services};

const DELIVERY_POLL: Duration = Duration::from_millis(200);

/// The outcome of "Send test delivery".
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TestDelivery {
    /// True when lablink received and verified the test delivery in time.
    pub received: bool,
    /// From asking GitLab to the verified delivery being stored, in milliseconds.
    pub elapsed_ms: Option<u64>,
    pub message: String,
}

/// How far back the doctor reports deliveries refused because of their address.
const REFUSALS_REPORTED_FOR_MS: i64 = 7 * 24 * 3600 * 1000;

impl Services {
    /// Checks (and with `fix`, repairs) the caller's project's connection.
    #[tracing::instrument(
        skip_all,
        fields(
            account_id = %caller.account_id,
            user_id = %caller.user_id,
            project_id = %project_id,
        ),
    )]
    pub async fn check_project_connection(
        &self,
        caller: &Principal,
        project_id: &str,
        fix: bool,
    ) -> Result<Report, ServiceError> {
        if fix {
            require(
                caller.role.can_write(),
                "Read-only users cannot repair connections.",
            )?;
        }
        let project = self.project(caller, project_id).await?;
        self.examine(
            &project.account_id,
            &project.id,
            fix,
            None,
            Some(&caller.user_id),
        )
        .await
    }

    /// Repairs only the findings with `code` (the panel's Fix button of one finding).
    #[tracing::instrument(
        skip_all,
        fields(
            account_id = %caller.account_id,
            user_id = %caller.user_id,
            project_id = %project_id,
        ),
    )]
    pub async fn fix_project_finding(
        &self,
        caller: &Principal,
        project_id: &str,
        code: Code,
    ) -> Result<Report, ServiceError> {
        require(
            caller.role.can_write(),
            "Read-only users cannot repair connections.",
        )?;
        let project = self.project(caller, project_id).await?;
        self.examine(
            &project.account_id,
            &project.id,
            true,
            Some(code),
            Some(&caller.user_id),
        )
        .await
    }

    /// Checks (and with `fix`, repairs) one project (by id) or every project with a connected
    /// repository: the operator's entry (CLI), across accounts.
    #[tracing::instrument(skip_all, fields(project_id = project_id))]
    pub async fn check_connections(
        &self,
        project_id: Option<&str>,
        fix: bool,
    ) -> Result<Vec<Report>, ServiceError> {
        let targets = match project_id {
            Some(id) => {
                let repository =
                    self.db
                        .live_repository_of_project(id)
                        .await?
                        .ok_or_else(|| {
                            ServiceError::NotFound(format!(
                                "project {id} has no connected repository (or does not exist)"
                            ))
                        })?;
                vec![(repository.account_id, repository.project_id)]
            }
            None => self.db.connected_projects().await?,
        };
        let mut reports = Vec::with_capacity(targets.len());
        for (account, project) in targets {
            reports.push(self.check_connection(&account, &project, fix).await?);
        }
        Ok(reports)
    }

    /// How this host isolates CI runs, when that is a problem: every project's runs share it.
    async fn check_run_isolation(&self) -> Option<Finding> {
        match self.settings.runs.isolation {
            Isolation::None => Some(Finding::warning(
                Code::RunsNotIsolated,
                "CI runs are not isolated (setting run_isolation = \"none\"): the dbt processes \
                 of a merge request run as lablink's own user and can read lablink's data \
                 directory and master key."
                    .into(),
                "Install bubblewrap (Debian package `bubblewrap`), make sure user namespaces are \
                 enabled, and remove run_isolation from the configuration (see docs/security.md)."
                    .into(),
                false,
            )),
            Isolation::Bubblewrap => match lablink_exec::sandbox::probe().await {
                Ok(()) => None,
                Err(e) => Some(Finding::error(
                    Code::SandboxUnavailable,
                    format!("CI runs cannot start: {e}."),
                    "Install bubblewrap and enable user namespaces on the lablink host (see \
                     docs/security.md); runs succeed again at once."
                        .into(),
                    false,
                )),
            },
        }
    }

    /// Deliveries refused in the last week because of their address: either GitLab sends from a
    /// range the account does not allow (deliveries are lost), or someone else holds the
    /// webhook's secret.
    async fn check_webhook_refusals(
        &self,
        repository_id: &str,
    ) -> Result<Option<Finding>, ServiceError> {
        let since = lablink_store::now_ms() - REFUSALS_REPORTED_FOR_MS;
        let refused = self.db.webhook_refusals_since(repository_id, since).await?;
        if refused.is_empty() {
            return Ok(None);
        }
        let total: i64 = refused.iter().map(|r| r.refusals).sum();
        let seen: Vec<String> = refused
            .iter()
            .map(|r| format!("{} ({}×)", r.address, r.refusals))
            .collect();
        Ok(Some(Finding::warning(
            Code::WebhookSourcesRefused,
            format!(
                "{total} webhook deliveries from outside the allowed ranges were refused in the \
                 last 7 days, from {}. They carried the webhook's secret, so they were either \
                 GitLab's own (and merge requests went without CI runs) or sent by someone who \
                 knows the secret.",
                seen.join(", ")
            ),
            "If these addresses are GitLab's, add them under Settings → IP restrictions → \
             Webhook deliveries. If they are not, reset the webhook's secret (Check connection → \
             Fix on a webhook finding, or reconnect the repository)."
                .into(),
            false,
        )))
    }

    /// Checks (and with `fix`, repairs) a project's connection.
    #[tracing::instrument(skip_all, fields(account_id = %account_id, project_id = %project_id))]
    pub async fn check_connection(
        &self,
        account_id: &str,
        project_id: &str,
        fix: bool,
    ) -> Result<Report, ServiceError> {
        self.examine(account_id, project_id, fix, None, None).await
    }

    /// Checks, and with `fix` repairs the findings (only those with code `only`, when given).
    async fn examine(
        &self,
        account_id: &str,
        project_id: &str,
        fix: bool,
        only: Option<Code>,
        actor: Option<&str>,
    ) -> Result<Report, ServiceError> {
        let project = self
            .db
            .project(account_id, project_id)
            .await?
            .ok_or_else(|| ServiceError::NotFound("No such project.".into()))?;
        let Some(repo) = self.db.live_repository_of_project(&project.id).await? else {
            return Ok(Report {
                project_id: project.id,
                project_name: project.name,
                repository_id: None,
                path_with_namespace: None,
                last_verified_delivery_at: None,
                findings: Vec::new(),
                repairs: Vec::new(),
            });
        };
        let (mut findings, api) = self.diagnose(&repo).await?;
        self.check_gitignore(&repo, &project.subdirectory, &mut findings)
            .await;
        findings.extend(self.check_run_isolation().await);
        findings.extend(self.check_webhook_refusals(&repo.id).await?);
        let mut repairs = Vec::new();
        if fix {
            for finding in findings.iter().filter(|f| only.is_none_or(|c| c == f.code)) {
                let together = repairs.iter().find(|r: &&Repair| {
                    r.outcome == Outcome::Repaired && fixes::repaired_together(r.code, finding.code)
                });
                let repair = match (&api, together) {
                    (_, Some(earlier)) => Repair {
                        code: finding.code,
                        outcome: Outcome::Repaired,
                        message: earlier.message.clone(),
                    },
                    (Some(api), None) if finding.repairable => {
                        self.repair(&repo, api, &project.subdirectory, finding.code)
                            .await
                    }
                    _ => Repair {
                        code: finding.code,
                        outcome: Outcome::Manual,
                        message: finding.fix.clone(),
                    },
                };
                if repair.outcome != Outcome::Manual && together.is_none() {
                    self.audit(AuditEvent {
                        account_id: Some(&project.account_id),
                        actor_user_id: actor,
                        action: "doctor.repaired",
                        target: Some(format!("repository {}", repo.path_with_namespace)),
                        detail: format!("{}: {}", finding.code.as_str(), repair.message),
                        outcome: if repair.outcome == Outcome::Repaired {
                            AuditOutcome::Success
                        } else {
                            AuditOutcome::Failure
                        },
                        ..AuditEvent::default()
                    })
                    .await?;
                }
                repairs.push(repair);
            }
        }
        let report = Report {
            project_id: project.id,
            project_name: project.name,
            repository_id: Some(repo.id.clone()),
            path_with_namespace: Some(repo.path_with_namespace.clone()),
            last_verified_delivery_at: self.db.last_delivery_at(&repo.id, 0).await?,
            findings,
            repairs,
        };
        self.record_verdict(&report).await?;
        Ok(report)
    }

    /// Every check, and the Maintainer-level client repairs can use (if any works).
    async fn diagnose(
        &self,
        repo: &Repository,
    ) -> Result<(Vec<Finding>, Option<Api>), ServiceError> {
        let mut out = Vec::new();
        let connector = match self.connector_api(repo).await {
            Ok(api) => Some(api),
            Err(e) => {
                out.push(Finding::error(
                    Code::UserLinkBroken,
                    format!("The linked GitLab account of the user who connected this repository does not work: {e}"),
                    "That user links their GitLab account again under Profile → Linked accounts.".into(),
                    false,
                ));
                None
            }
        };
        let token = self
            .db
            .repository_secrets(&self.keys, &repo.id)
            .await?
            .project_token;
        let token_api = match token {
            Some(t) => Some(self.repository_api(repo, t).await?),
            None => None,
        };
        let rotation_started = self.db.token_rotation_started(&repo.id).await?.is_some();
        let state = checks::project_token(
            repo,
            token_api.as_ref(),
            connector.as_ref(),
            rotation_started,
            self.settings.repositories.token_rotation_margin_days.into(),
            &mut out,
        )
        .await;
        let api = match state {
            checks::TokenState::Works => token_api,
            checks::TokenState::Broken | checks::TokenState::Absent => connector,
        };
        if let Some(api) = &api {
            checks::repository(repo, api, self.connector_gitlab_id(repo).await?, &mut out).await;
            checks::webhook(repo, api, &self.webhook_url(&repo.id), &mut out).await;
            checks::deploy_token(repo, api, &mut out).await;
            checks::deploy_key(repo, api, &mut out).await;
        }
        Ok((out, api))
    }

    /// The dbt project's ignore rules, when lablink can clone the repository.
    async fn check_gitignore(&self, repo: &Repository, subdirectory: &str, out: &mut Vec<Finding>) {
        if out
            .iter()
            .any(|f| matches!(f.code, Code::DeployTokenMissing | Code::DeployTokenRevoked))
        {
            return;
        }
        let problems = match self.gitignore_problems(repo, subdirectory).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(repository_id = %repo.id, error = %e, "doctor could not inspect .gitignore");
                return;
            }
        };
        let fix = format!(
            "Commit a corrected .gitignore without the tracked folders on branch {} and open a merge \
             request; merge it to finish.",
            gitignore::FIX_BRANCH
        );
        if !problems.missing.is_empty() {
            out.push(Finding::warning(
                Code::GitignoreIncomplete,
                format!(
                    "The dbt project's .gitignore does not ignore {}: dbt's build output ends up in commits.",
                    problems.missing.iter().map(|n| format!("{n}/")).collect::<Vec<_>>().join(", ")
                ),
                fix.clone(),
                true,
            ));
        }
        if let Some(what) = problems.not_a_file {
            out.push(Finding::warning(
                Code::GitignoreIncomplete,
                format!(
                    "The dbt project's .gitignore is {what}, so git reads no ignore rules from it; \
                     lablink does not follow it."
                ),
                fix.clone(),
                true,
            ));
        }
        if !problems.tracked.is_empty() {
            out.push(Finding::error(
                Code::BuildFoldersTracked,
                format!(
                    "dbt build folders are committed to the repository ({}): runs change them and merge \
                     requests conflict.",
                    problems.tracked.iter().map(|n| format!("{n}/")).collect::<Vec<_>>().join(", ")
                ),
                fix,
                true,
            ));
        }
    }

    async fn connector_gitlab_id(&self, repo: &Repository) -> Result<Option<i64>, ServiceError> {
        let Some(user) = repo.connected_by.as_deref() else {
            return Ok(None);
        };
        Ok(self
            .db
            .gitlab_link_of_user(&self.keys, user)
            .await?
            .map(|l| l.gitlab_user_id))
    }

    /// Asks GitLab to send the webhook's test delivery and waits up to `wait` for lablink to
    /// receive and verify it (intake stores only verified deliveries).
    #[tracing::instrument(
        skip_all,
        fields(
            account_id = %caller.account_id,
            user_id = %caller.user_id,
            project_id = %project_id,
        ),
    )]
    pub async fn send_test_delivery(
        &self,
        caller: &Principal,
        project_id: &str,
        wait: Duration,
    ) -> Result<TestDelivery, ServiceError> {
        let project = self.project(caller, project_id).await?;
        let repo = self
            .db
            .live_repository_of_project(&project.id)
            .await?
            .ok_or_else(|| {
                ServiceError::NotFound("This project has no connected repository.".into())
            })?;
        let hook_id = repo.hook_id.ok_or_else(|| {
            ServiceError::Conflict(
                "The connection has no webhook; run Check connection and Fix.".into(),
            )
        })?;
        let (_, api) = self.diagnose(&repo).await?;
        let api = api.ok_or_else(|| {
            ServiceError::Conflict(
                "lablink has no working GitLab credential for this repository; run Check connection."
                    .into(),
            )
        })?;
        let since = lablink_store::now_ms();
        let started = Instant::now();
        if let Err(e) = api
            .test_hook(repo.gitlab_project_id, hook_id, fixes::TEST_TRIGGER)
            .await
        {
            // GitLab answers the test itself with an error when its request to lablink failed.
            if !fixes::delivery_failed(&e) {
                return Err(e.into());
            }
            return Ok(TestDelivery {
                received: false,
                elapsed_ms: None,
                message: format!(
                    "GitLab could not deliver the test request ({e}). lablink's public URL ({}) is \
                     probably not reachable from GitLab, or the webhook points elsewhere: check \
                     firewalls, DNS and TLS, then run Check connection.",
                    self.webhook_url(&repo.id)
                ),
            });
        }
        loop {
            if self.db.last_delivery_at(&repo.id, since).await?.is_some() {
                let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                return Ok(TestDelivery {
                    received: true,
                    elapsed_ms: Some(ms),
                    message: format!("lablink received and verified the test delivery in {ms} ms."),
                });
            }
            if started.elapsed() >= wait {
                return Ok(TestDelivery {
                    received: false,
                    elapsed_ms: None,
                    message: format!(
                        "GitLab accepted the test request but no verified delivery reached lablink within \
                         {} s. lablink's public URL ({}) is probably not reachable from GitLab, or the \
                         webhook secret is wrong: check firewalls, DNS and TLS, then run Check connection \
                         and Fix to reset the secret.",
                        wait.as_secs(),
                        self.webhook_url(&repo.id)
                    ),
                });
            }
            tokio::time::sleep(DELIVERY_POLL).await;
        }
    }
}
