//! A connection's health as pages show it: the doctor's last verdict, kept in the database, and a
//! fresh check started in the background when that verdict is old, so a broken connection shows
//! on the project page and the dashboard without anyone opening Check connection.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lablink_store::connection_checks::ConnectionCheck;

use super::{Outcome, Repair, Report, Severity};
use crate::{Principal, ServiceError, Services};

/// How old the last verdict may be before a page view asks for a new one.
const STALE_AFTER_MS: i64 = 15 * 60 * 1000;

/// How soon after a background check of a project another may start (a check that failed, with
/// GitLab unreachable, leaves the old verdict: pages must not start one every refresh).
const RETRY_AFTER: Duration = Duration::from_secs(60);

/// The background checks of this replica by project: when the last started and whether it is
/// still running (one check per project at a time).
#[derive(Debug, Default)]
pub(crate) struct ChecksRunning(Mutex<HashMap<String, (Instant, bool)>>);

/// What a page shows of a project's connection.
#[derive(Debug, Clone)]
pub struct ConnectionHealth {
    /// The last full check, if there was one.
    pub last: Option<ConnectionCheck>,
    /// A check is running now; the page can show it and refresh.
    pub checking: bool,
}

impl ConnectionHealth {
    /// The last check found something lablink needs that is broken now.
    pub fn broken(&self) -> bool {
        self.last.as_ref().is_some_and(|c| c.errors > 0)
    }
}

impl Services {
    /// The project's connection health; starts a background check when the last one is older
    /// than 15 minutes (or there is none) and a repository is connected.
    #[tracing::instrument(
        skip_all,
        fields(
            account_id = %caller.account_id,
            user_id = %caller.user_id,
            project_id = %project_id,
        ),
    )]
    pub async fn connection_health(
        &self,
        caller: &Principal,
        project_id: &str,
    ) -> Result<ConnectionHealth, ServiceError> {
        let project = self.project(caller, project_id).await?;
        let last = self.db.connection_check(&project.id).await?;
        let stale = last
            .as_ref()
            .is_none_or(|c| lablink_store::now_ms() - c.checked_at > STALE_AFTER_MS);
        let checking = stale
            && project.repository_id.is_some()
            && self.start_background_check(&project.account_id, &project.id);
        Ok(ConnectionHealth { last, checking })
    }

    /// The account's projects whose last check found an error.
    #[tracing::instrument(
        skip_all,
        fields(account_id = %caller.account_id, user_id = %caller.user_id),
    )]
    pub async fn broken_connections(
        &self,
        caller: &Principal,
    ) -> Result<Vec<ConnectionCheck>, ServiceError> {
        Ok(self.db.broken_connections(&caller.account_id).await?)
    }

    /// Starts a check of the project unless one is running here or started less than a minute
    /// ago; true when one is running.
    fn start_background_check(&self, account_id: &str, project_id: &str) -> bool {
        let Ok(mut checks) = self.checks_running.0.lock() else {
            return false;
        };
        match checks.get(project_id) {
            Some((_, true)) => return true,
            Some((started, false)) if started.elapsed() < RETRY_AFTER => return false,
            _ => {}
        }
        checks.insert(project_id.to_owned(), (Instant::now(), true));
        let services = self.clone();
        let (account_id, project_id) = (account_id.to_owned(), project_id.to_owned());
        tokio::spawn(async move {
            if let Err(e) = services
                .check_connection(&account_id, &project_id, false)
                .await
            {
                tracing::warn!(project_id, error = %e, "background connection check failed");
            }
            if let Ok(mut checks) = services.checks_running.0.lock()
                && let Some(check) = checks.get_mut(&project_id)
            {
                check.1 = false;
            }
        });
        true
    }

    /// Keeps what a full check found, less what it repaired, as the project's last verdict.
    pub(super) async fn record_verdict(&self, report: &Report) -> Result<(), ServiceError> {
        let repaired = |r: &&Repair| r.outcome == Outcome::Repaired;
        let open: Vec<_> = report
            .findings
            .iter()
            .filter(|f| {
                !report
                    .repairs
                    .iter()
                    .filter(repaired)
                    .any(|r| r.code == f.code)
            })
            .collect();
        let count = |s: Severity| open.iter().filter(|f| f.severity == s).count() as i64;
        let worst = open
            .iter()
            .find(|f| f.severity == Severity::Error)
            .or_else(|| open.first());
        self.db
            .record_connection_check(&ConnectionCheck {
                project_id: report.project_id.clone(),
                checked_at: lablink_store::now_ms(),
                errors: count(Severity::Error),
                warnings: count(Severity::Warning),
                headline: worst.map(|f| f.message.clone()).unwrap_or_default(),
                remedy: worst.map(|f| f.fix.clone()).unwrap_or_default(),
            })
            .await?;
        Ok(())
    }
}
