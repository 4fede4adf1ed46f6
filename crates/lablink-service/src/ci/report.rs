//! What a merge request's run changed ([`Report`]): worked out after dbt's commands from the
//! run's artifacts and production's manifest, with the data compared in the warehouse (inside the
//! sandbox, with the job's own profile, within the job's budget of models and seconds; its dbt
//! process starts with the build, so its start-up is not added to the run), and kept
//! as the run's artifact [`REPORT_ARTIFACT`] for the run page and the merge request note.

use std::path::Path;
use std::time::Duration;

use lablink_core::report::{
    ComparePair, DataDiff, Manifest, NotCompared, Production, Report, compare_plan,
    parse_run_results,
};
use lablink_exec::LogLine;
use lablink_exec::dbt::{DbtInstall, MacroRun, WarmCompare};
use lablink_store::ci_jobs::CiJob;
use lablink_store::runs::Run;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::executor::{PreparedDbt, say};
use crate::{ServiceError, Services};

/// The run artifact that holds the report, as JSON.
pub const REPORT_ARTIFACT: &str = "lablink_report.json";

/// What the report of one run is made from.
pub(crate) struct ReportInput<'a> {
    pub run: &'a Run,
    pub job: &'a CiJob,
    pub dbt: &'a PreparedDbt,
    pub manifest: &'a str,
    pub run_results: &'a str,
    pub log: &'a mpsc::Sender<LogLine>,
}

impl Services {
    /// Works out and stores the run's report. Artifacts dbt did not write in full leave no
    /// report (the log says why); a comparison that fails is listed in the report.
    pub(crate) async fn report_what_changed(
        &self,
        input: &ReportInput<'_>,
        warm: Option<Result<WarmCompare, String>>,
    ) -> Result<(), ServiceError> {
        let (mr, results) = match (
            Manifest::parse(input.manifest),
            parse_run_results(input.run_results),
        ) {
            (Ok(mr), Ok(results)) => (mr, results),
            (Err(e), _) | (_, Err(e)) => {
                say(input.log, format!("no report of what changed: {e}")).await;
                return Ok(());
            }
        };
        let production = input.dbt.production.as_ref().and_then(|p| {
            let manifest = Manifest::parse(&p.manifest).ok()?;
            Some((
                Production {
                    run_id: p.id.clone(),
                    sha: p.sha.clone(),
                },
                manifest,
            ))
        });
        let (data, not_compared) = match &production {
            Some((_, production)) => {
                let built: Vec<String> = results
                    .iter()
                    .filter(|r| r.status == "success")
                    .map(|r| r.unique_id.clone())
                    .collect();
                let max = usize::try_from(input.job.input.compare_max_models).unwrap_or(0);
                let (pairs, mut skipped) = compare_plan(&mr, production, &built, max);
                let (data, more_skipped) = self.compare_in_warehouse(input, warm, &pairs).await;
                skipped.extend(more_skipped);
                (data, skipped)
            }
            None => (Vec::new(), Vec::new()),
        };
        let report = Report::new(
            &mr,
            production.as_ref().map(|(p, m)| (p.clone(), m)),
            results,
            data,
            not_compared,
        );
        say(input.log, format!("what changed: {}", report.summary())).await;
        let json =
            serde_json::to_string(&report).map_err(|e| ServiceError::Internal(e.to_string()))?;
        self.db
            .save_run_artifact(&input.run.id, REPORT_ARTIFACT, &json)
            .await?;
        Ok(())
    }

    /// Starts the comparison's dbt process for a merge request's full run that has a production
    /// to compare with, so that its start-up overlaps the build; `None` otherwise, or when it
    /// cannot start (the report then says so).
    pub(crate) fn warm_compare(
        &self,
        job: &CiJob,
        dbt: &PreparedDbt,
        run_dir: &Path,
        cancel: &CancellationToken,
    ) -> Option<Result<WarmCompare, String>> {
        dbt.production.as_ref()?;
        let started = DbtInstall::locate()
            .map_err(|e| e.to_string())
            .and_then(|install| {
                let build = Duration::from_secs(u64::try_from(job.input.timeout_secs).unwrap_or(1));
                WarmCompare::start(
                    &MacroRun {
                        install: &install,
                        target: &dbt.target,
                        work_dir: &run_dir.join("compare"),
                        isolation: self.settings.runs.isolation,
                        timeout: build,
                        cancel,
                    },
                    build + compare_budget(job),
                )
                .map_err(|e| e.to_string())
            });
        Some(started)
    }

    /// Compares `pairs` in the warehouse with the process started ahead; what was compared, and
    /// what was not with the reason.
    async fn compare_in_warehouse(
        &self,
        input: &ReportInput<'_>,
        warm: Option<Result<WarmCompare, String>>,
        pairs: &[ComparePair],
    ) -> (Vec<DataDiff>, Vec<NotCompared>) {
        if pairs.is_empty() {
            return (Vec::new(), Vec::new());
        }
        let budget = compare_budget(input.job);
        say(
            input.log,
            format!(
                "comparing {} model{} with production in the warehouse (budget {} s)",
                pairs.len(),
                if pairs.len() == 1 { "" } else { "s" },
                budget.as_secs()
            ),
        )
        .await;
        let args = serde_json::Value::Array(
            pairs
                .iter()
                .map(|p| {
                    serde_json::json!({
                        "id": p.unique_id, "mr": p.mr, "production": p.production, "key": p.key,
                    })
                })
                .collect(),
        );
        let compared = match warm {
            Some(Ok(warm)) => warm.compare(&args, budget).await.map_err(|e| e.to_string()),
            Some(Err(e)) => Err(e),
            None => Err("no production when the run started".to_owned()),
        };
        let (values, failure) = match compared {
            Ok((values, failure)) => (values, failure),
            Err(e) => (
                Vec::new(),
                Some(format!("the comparison could not start: {e}")),
            ),
        };
        let data: Vec<DataDiff> = values.iter().filter_map(DataDiff::from_compared).collect();
        let why = failure.unwrap_or_else(|| "the warehouse gave no result for it".to_owned());
        if data.len() < pairs.len() {
            say(input.log, format!("comparison incomplete: {why}")).await;
        }
        let not_compared = pairs
            .iter()
            .filter(|p| !data.iter().any(|d| d.unique_id == p.unique_id))
            .map(|p| NotCompared {
                unique_id: p.unique_id.clone(),
                why: why.clone(),
            })
            .collect();
        (data, not_compared)
    }
}

/// The job's time budget for the comparison.
fn compare_budget(job: &CiJob) -> Duration {
    Duration::from_secs(u64::try_from(job.input.compare_timeout_secs).unwrap_or(1))
}
