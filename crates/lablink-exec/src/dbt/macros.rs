//! lablink's own dbt work in a warehouse: dropping a merge request's CI schema, and comparing a
//! merge request's models with production's. Each runs `dbt run-operation` in a tiny generated
//! project rather than a script against one adapter's driver: the adapter's own macros know each
//! warehouse's quoting and `cascade` rules, the connection comes from the same private profile
//! as the runs, so every adapter [`WarehouseProfile`](super::WarehouseProfile) gains works
//! without new code, and nothing of the repository is checked out. The cost, a few seconds of
//! dbt start-up, does not matter for background work. It runs in the sandbox too: the profile
//! holds the job's credentials, and the adapter is code like any other.

use std::path::Path;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{DbtCommand, DbtError, DbtInstall, DbtRunSetup, DbtTarget, DbtWorkspace};
use crate::limits::Limits;
use crate::process::{LogLine, Termination};
use crate::sandbox::Isolation;

/// Drops the schema the target's profile builds into; succeeds when it does not exist.
/// The schema name is taken from the profile, so nothing user-controlled reaches the SQL.
const DROP_SCHEMA: &str = "{% macro lablink_drop_schema() %}\n\
    {% do adapter.drop_schema(api.Relation.create(database=target.database, schema=target.schema)) %}\n\
    {{ log('dropped schema ' ~ target.schema, info=True) }}\n\
    {% endmacro %}\n";

/// Compares each pair `{id, mr, production, key}` (relations as database/schema/identifier;
/// `key` a list of columns or none) and logs one `LABLINK_COMPARE <json>` line per pair as it is
/// done: row counts, both column lists with their types, and, with a key present on both sides,
/// the rows added, removed and changed (any common column differs) by key. Only counts leave the
/// warehouse. Names are quoted by the adapter.
const COMPARE: &str = r#"{% macro lablink_compare(pairs) %}
{% for p in pairs %}
  {% set mr = api.Relation.create(database=p.mr.database, schema=p.mr.schema, identifier=p.mr.identifier) %}
  {% set prod = api.Relation.create(database=p.production.database, schema=p.production.schema, identifier=p.production.identifier) %}
  {% set mr_cols = adapter.get_columns_in_relation(mr) %}
  {% set prod_cols = adapter.get_columns_in_relation(prod) %}
  {% set result = {'id': p.id, 'mr_columns': [], 'production_columns': []} %}
  {% for c in mr_cols %}{% do result.mr_columns.append([c.name | lower, c.data_type]) %}{% endfor %}
  {% for c in prod_cols %}{% do result.production_columns.append([c.name | lower, c.data_type]) %}{% endfor %}
  {% set counts = run_query("select (select count(*) from " ~ mr ~ "), (select count(*) from " ~ prod ~ ")") %}
  {% do result.update({'rows': counts.rows[0][0] | int, 'production_rows': counts.rows[0][1] | int}) %}
  {% set mr_names = result.mr_columns | map('first') | list %}
  {% set prod_names = result.production_columns | map('first') | list %}
  {% if p.key and (p.key | reject('in', mr_names) | list | length == 0) and (p.key | reject('in', prod_names) | list | length == 0) %}
    {% set common = mr_names | select('in', prod_names) | reject('in', p.key) | list %}
    {% set on = [] %}{% for k in p.key %}{% do on.append('m.' ~ adapter.quote(k) ~ ' = p.' ~ adapter.quote(k)) %}{% endfor %}
    {% set differs = [] %}{% for c in common %}{% do differs.append('m.' ~ adapter.quote(c) ~ ' is distinct from p.' ~ adapter.quote(c)) %}{% endfor %}
    {% set changed = '(' ~ (differs | join(' or ') if differs else 'false') ~ ')' %}
    {% set sql %}
      select
        sum(case when p.lablink_side_p is null then 1 else 0 end),
        sum(case when m.lablink_side_m is null then 1 else 0 end),
        sum(case when m.lablink_side_m is not null and p.lablink_side_p is not null and {{ changed }} then 1 else 0 end)
      from (select *, 1 as lablink_side_m from {{ mr }}) m
      full outer join (select *, 1 as lablink_side_p from {{ prod }}) p on {{ on | join(' and ') }}
    {% endset %}
    {% set keyed = run_query(sql) %}
    {% do result.update({'key': p.key, 'added': (keyed.rows[0][0] or 0) | int, 'removed': (keyed.rows[0][1] or 0) | int, 'changed': (keyed.rows[0][2] or 0) | int}) %}
  {% endif %}
  {{ log('LABLINK_COMPARE ' ~ tojson(result), info=True) }}
{% endfor %}
{% endmacro %}
"#;

/// What the comparison printed for one pair, as JSON (shaped by [`COMPARE`]).
const COMPARE_MARKER: &str = "LABLINK_COMPARE ";

/// How many of dbt's last output lines an error keeps.
const TAIL_LINES: usize = 20;

/// Where and how lablink's own macros run.
pub struct MacroRun<'a> {
    pub install: &'a DbtInstall,
    pub target: &'a DbtTarget,
    /// A private scratch directory of this work; created if missing.
    pub work_dir: &'a Path,
    pub isolation: Isolation,
    pub timeout: Duration,
    pub cancel: &'a CancellationToken,
}

impl MacroRun<'_> {
    /// Runs `macro_name` (defined in `text`); the termination and every line.
    async fn run(
        &self,
        macro_name: &str,
        text: &str,
    ) -> Result<(Termination, Vec<String>), DbtError> {
        let project = self.work_dir.join("project");
        write_project(&project, macro_name, text)?;
        let workspace = DbtWorkspace::prepare(
            self.install.clone(),
            DbtRunSetup {
                worktree: &project,
                project_subdir: None,
                run_dir: &self.work_dir.join("run"),
                target: self.target,
                env: &[],
                isolation: self.isolation,
                limits: Limits::default(),
            },
        )?;
        let command =
            DbtCommand::from_words(vec!["run-operation".to_owned(), macro_name.to_owned()]);
        let (sink, lines) = mpsc::channel::<LogLine>(64);
        let (termination, lines) = tokio::join!(
            workspace.run(&command, self.timeout, sink, self.cancel),
            collect_lines(lines)
        );
        Ok((termination?, lines))
    }
}

fn tail(lines: &[String]) -> String {
    lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
}

/// Drops `target.schema` (with everything in it) from `target`'s warehouse.
pub async fn drop_schema(run: &MacroRun<'_>) -> Result<(), DbtError> {
    let (termination, lines) = run.run("lablink_drop_schema", DROP_SCHEMA).await?;
    if termination.success() {
        Ok(())
    } else {
        Err(DbtError::DropSchemaFailed {
            schema: run.target.schema.clone(),
            termination,
            output: tail(&lines),
        })
    }
}

/// Compares each of `pairs` (see [`COMPARE`]) in the warehouse; the result of every pair done
/// before the end, the timeout or a failure (whose reason is returned alongside).
pub async fn compare(
    run: &MacroRun<'_>,
    pairs: &serde_json::Value,
) -> Result<(Vec<serde_json::Value>, Option<String>), DbtError> {
    WarmCompare::start(run, run.timeout)?
        .compare(pairs, run.timeout)
        .await
}

/// Drives dbt through its Python API: loads dbt and the adapter and parses lablink's project
/// (`parse` connects to no warehouse), then waits for the file `argv[1]`, then runs the macro
/// `argv[2]` with the file's JSON as its arguments.
const WARM_SCRIPT: &str = r#"import json, os, sys, time
from dbt.cli.main import dbtRunner
runner = dbtRunner()
runner.invoke(["parse", "--quiet"])
while not os.path.exists(sys.argv[1]):
    time.sleep(0.02)
with open(sys.argv[1]) as f:
    args = json.load(f)
done = runner.invoke(["run-operation", sys.argv[2], "--args", json.dumps(args), "--no-populate-cache"])
sys.exit(0 if done.success else 1)
"#;

/// The comparison with production, started ahead of time: its dbt process starts up (about two
/// seconds of a comparison's three on a small warehouse) while the run's build is still going,
/// and waits for the pairs. It touches the warehouse only once it has them, after the build.
/// Dropped unused (nothing to compare), its process is killed.
pub struct WarmCompare {
    go: std::path::PathBuf,
    task: tokio::task::JoinHandle<Result<(Termination, Vec<String>), DbtError>>,
    stop: CancellationToken,
}

impl WarmCompare {
    /// Starts the process for `run`'s warehouse; it waits at most `wait` for the pairs.
    pub fn start(run: &MacroRun<'_>, wait: Duration) -> Result<WarmCompare, DbtError> {
        let project = run.work_dir.join("project");
        write_project(&project, "lablink_compare", COMPARE)?;
        let workspace = DbtWorkspace::prepare(
            run.install.clone(),
            DbtRunSetup {
                worktree: &project,
                project_subdir: None,
                run_dir: &run.work_dir.join("run"),
                target: run.target,
                env: &[],
                isolation: run.isolation,
                limits: Limits::default(),
            },
        )?;
        let go = workspace.run_dir().join("pairs.json");
        let args = vec![
            "-c".to_owned(),
            WARM_SCRIPT.to_owned(),
            go.to_string_lossy().into_owned(),
            "lablink_compare".to_owned(),
        ];
        let stop = run.cancel.child_token();
        let process_stop = stop.clone();
        let task = tokio::spawn(async move {
            let (sink, lines) = mpsc::channel::<LogLine>(64);
            let (termination, lines) = tokio::join!(
                workspace.run_python(&args, wait, sink, &process_stop),
                collect_lines(lines)
            );
            Ok((termination?, lines))
        });
        Ok(WarmCompare { go, task, stop })
    }

    /// Compares `pairs` within `budget` from now.
    pub async fn compare(
        mut self,
        pairs: &serde_json::Value,
        budget: Duration,
    ) -> Result<(Vec<serde_json::Value>, Option<String>), DbtError> {
        self.release(&serde_json::json!({ "pairs": pairs }))?;
        let (termination, lines) = match tokio::time::timeout(budget, &mut self.task).await {
            Ok(done) => done,
            Err(_) => {
                self.stop.cancel();
                (&mut self.task).await
            }
        }
        .map_err(|e| DbtError::Io {
            path: self.go.clone(),
            source: std::io::Error::other(e),
        })??;
        let results = lines
            .iter()
            .filter_map(|line| {
                let json = &line[line.find(COMPARE_MARKER)? + COMPARE_MARKER.len()..];
                serde_json::from_str(json).ok()
            })
            .collect();
        let failure = match termination {
            t if t.success() => None,
            Termination::TimedOut | Termination::Cancelled => Some(format!(
                "the comparison ran out of its time budget ({} s)",
                budget.as_secs()
            )),
            other => Some(format!(
                "the comparison stopped ({other:?}): {}",
                tail(&lines)
            )),
        };
        Ok((results, failure))
    }

    /// Hands the process its arguments (written whole, then renamed into place).
    fn release(&self, args: &serde_json::Value) -> Result<(), DbtError> {
        let partial = self.go.with_extension("partial");
        let io = |source| DbtError::Io {
            path: self.go.clone(),
            source,
        };
        std::fs::write(&partial, args.to_string()).map_err(io)?;
        std::fs::rename(&partial, &self.go).map_err(io)
    }
}

impl Drop for WarmCompare {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn write_project(dir: &Path, macro_name: &str, text: &str) -> Result<(), DbtError> {
    let write = |path: &Path, text: &str| {
        std::fs::write(path, text).map_err(|source| DbtError::Io {
            path: path.to_owned(),
            source,
        })
    };
    let macros = dir.join("macros");
    std::fs::create_dir_all(&macros).map_err(|source| DbtError::Io {
        path: macros.clone(),
        source,
    })?;
    let project = serde_json::json!({
        "name": "lablink_own",
        "version": "1.0.0",
        "config-version": 2,
        "profile": super::PROFILE_NAME,
        "macro-paths": ["macros"],
    });
    write(&dir.join("dbt_project.yml"), &project.to_string())?;
    write(&macros.join(format!("{macro_name}.sql")), text)
}

/// Every line a process printed, once it has ended.
async fn collect_lines(mut lines: mpsc::Receiver<LogLine>) -> Vec<String> {
    let mut all = Vec::new();
    while let Some(line) = lines.recv().await {
        all.push(line.line);
    }
    all
}
