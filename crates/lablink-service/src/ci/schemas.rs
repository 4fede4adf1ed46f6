//! The schemas merge requests' runs make in warehouses: recorded in the ledger after every run
//! as dbt actually named them (from the run's manifest, so a custom `generate_schema_name` is
//! followed), dropped when the merge request closes, and swept when due (closed, or unused for
//! the TTL) even after lablink was down or a drop failed. Production's schemas (the latest
//! successful merge run's) are never dropped.

use std::collections::BTreeSet;
use std::time::Duration;

use lablink_core::names::ci_schema_name;
use lablink_core::report::{Manifest, parse_run_results};
use lablink_exec::dbt::{DbtInstall, DbtTarget, MacroRun, drop_schema};
use lablink_store::ledger::{LedgerSchema, SchemaOwner};
use lablink_store::runs::Run;
use tokio_util::sync::CancellationToken;

use super::executor::CiRuntime;
use super::jobs::warehouse_profile;
use crate::{ServiceError, Services};

const DROP_SCHEMA_TIMEOUT: Duration = Duration::from_secs(300);

impl Services {
    /// Records the schemas a merge request's run built into (every node dbt ran).
    pub(crate) async fn record_run_schemas(
        &self,
        run: &Run,
        manifest: &str,
        run_results: &str,
    ) -> Result<(), ServiceError> {
        let Some(mr_iid) = run.mr_iid else {
            return Ok(());
        };
        let (Ok(manifest), Ok(results)) =
            (Manifest::parse(manifest), parse_run_results(run_results))
        else {
            return Ok(());
        };
        let ran: Vec<String> = results.into_iter().map(|r| r.unique_id).collect();
        let schemas: Vec<(String, String)> = manifest
            .schemas_of(&ran)
            .into_iter()
            .map(|(database, schema)| (database.unwrap_or_default(), schema))
            .collect();
        self.db
            .record_schemas(
                &SchemaOwner {
                    project_id: &run.project_id,
                    ci_job_id: run.ci_job_id,
                    repository_id: &run.repository_id,
                    mr_iid,
                },
                &schemas,
            )
            .await?;
        Ok(())
    }

    /// Drops a closed merge request's schemas of one CI job: those in the ledger, and the job's
    /// default CI schema `lablink_pr_<job>_<iid>` (in case a run stopped before it was recorded).
    pub(crate) async fn drop_mr_schemas(
        &self,
        rt: &CiRuntime,
        ci_job_id: i64,
        mr_iid: i64,
    ) -> Result<(), ServiceError> {
        let mut schemas = self.db.live_schemas_of(ci_job_id, mr_iid).await?;
        let default = ci_schema_name(ci_job_id, mr_iid);
        if !schemas.iter().any(|s| s.schema_name == default) {
            schemas.push(LedgerSchema {
                id: String::new(),
                project_id: String::new(),
                ci_job_id,
                repository_id: String::new(),
                mr_iid,
                database_name: String::new(),
                schema_name: default,
                created_at: 0,
                last_used_at: 0,
                mr_closed_at: None,
                dropped_at: None,
                drop_error: None,
            });
        }
        self.drop_schemas(rt, &schemas).await
    }

    /// Drops every schema that is due: its merge request closed, or unused for the TTL.
    pub(crate) async fn sweep_schemas(&self, rt: &CiRuntime) -> Result<usize, ServiceError> {
        let ttl_ms = i64::try_from(self.settings.runs.schema_ttl.as_millis()).unwrap_or(i64::MAX);
        let due = self
            .db
            .schemas_due(lablink_store::now_ms().saturating_sub(ttl_ms))
            .await?;
        let n = due.len();
        self.drop_schemas(rt, &due).await?;
        Ok(n)
    }

    /// Drops `schemas` (all of them, whatever fails), recording each outcome in the ledger; an
    /// error when one could not be dropped, so a queued drop is tried again.
    async fn drop_schemas(
        &self,
        rt: &CiRuntime,
        schemas: &[LedgerSchema],
    ) -> Result<(), ServiceError> {
        let mut failed = Vec::new();
        for schema in schemas {
            let outcome = self.drop_one(rt, schema).await;
            let error = outcome.as_ref().err().map(ToString::to_string);
            if !schema.id.is_empty() {
                self.db
                    .schema_drop_outcome(&schema.id, error.as_deref())
                    .await?;
            }
            if let Err(e) = outcome {
                failed.push(format!("{}: {e}", schema.schema_name));
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(ServiceError::Remote(format!(
                "could not drop {}",
                failed.join("; ")
            )))
        }
    }

    async fn drop_one(&self, rt: &CiRuntime, schema: &LedgerSchema) -> Result<(), ServiceError> {
        let Some(job) = self.db.ci_job(&self.keys, schema.ci_job_id).await? else {
            return Err(ServiceError::NotFound(
                "its CI job was deleted: drop it in the warehouse yourself".into(),
            ));
        };
        if self
            .production_schemas(&job.project_id)
            .await?
            .contains(&schema.schema_name)
        {
            return Err(ServiceError::Conflict(
                "production's models live there too (the latest successful merge run): not \
                 dropped"
                    .into(),
            ));
        }
        let install = DbtInstall::locate().map_err(|e| ServiceError::Internal(e.to_string()))?;
        let target = DbtTarget {
            name: "default".into(),
            schema: schema.schema_name.clone(),
            threads: 1,
            warehouse: warehouse_profile(&job, &self.settings.runs)?,
        };
        let dir = rt
            .work_dir
            .join("cleanup")
            .join(uuid::Uuid::new_v4().to_string());
        let _warehouse = rt.hold_warehouse(&target.warehouse).await;
        let result = drop_schema(&MacroRun {
            install: &install,
            target: &target,
            work_dir: &dir,
            isolation: self.settings.runs.isolation,
            timeout: DROP_SCHEMA_TIMEOUT,
            cancel: &CancellationToken::new(),
        })
        .await;
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            tracing::debug!(error = %e, "a cleanup directory was not removed");
        }
        result.map_err(|e| ServiceError::Remote(e.to_string()))
    }

    /// The schemas production's models are in: never dropped.
    async fn production_schemas(&self, project_id: &str) -> Result<BTreeSet<String>, ServiceError> {
        let Some(production) = self.db.production_run(project_id).await? else {
            return Ok(BTreeSet::new());
        };
        Ok(Manifest::parse(&production.manifest)
            .map(|m| {
                m.nodes
                    .values()
                    .map(|n| n.relation.schema.clone())
                    .collect()
            })
            .unwrap_or_default())
    }
}
