//! Real dbt (dbt-core + dbt-duckdb from the lablink virtualenv) on the sample project.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use lablink_exec::dbt::{
    DbtCommand, DbtError, DbtInstall, DbtRunSetup, DbtTarget, DbtWorkspace, MacroRun,
    PostgresProfile, ResultCounts, WarehouseProfile, compare, drop_schema,
};
use lablink_exec::limits::Limits;
use lablink_exec::sandbox::Isolation;
use lablink_exec::{LogLine, Termination};
use secrecy::SecretString;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const TIMEOUT: Duration = Duration::from_secs(600);

/// The virtualenv with dbt; installed here when missing, so the test never silently skips.
fn install() -> DbtInstall {
    static INSTALL: OnceLock<DbtInstall> = OnceLock::new();
    INSTALL
        .get_or_init(|| match DbtInstall::locate() {
            Ok(install) => install,
            Err(DbtError::NotInstalled { venv }) => create_venv(&venv),
            Err(e) => panic!("cannot locate dbt: {e}"),
        })
        .clone()
}

fn create_venv(venv: &Path) -> DbtInstall {
    DbtInstall::create(venv).unwrap_or_else(|e| panic!("{e}"))
}

fn sample_project() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/jaffle_shop_duckdb");
    assert!(
        dir.join("dbt_project.yml").is_file(),
        "the sample dbt project is missing at {}",
        dir.display()
    );
    dir
}

/// Copies the project as a checkout would have it: without what dbt generates.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if ["target", "logs", "dbt_packages", "dbt_modules"]
            .iter()
            .any(|skip| name == *skip)
        {
            continue;
        }
        let dest = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

pub(crate) struct Scene {
    _dir: tempfile::TempDir,
    root: PathBuf,
    /// Where lablink's own macros run.
    macros: PathBuf,
    install: DbtInstall,
}

impl Scene {
    pub(crate) fn new() -> Self {
        let install = install();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        copy_tree(&sample_project(), &root.join("repo"));
        Self {
            _dir: dir,
            macros: root.join("macros"),
            root,
            install,
        }
    }

    pub(crate) fn repo(&self) -> PathBuf {
        self.root.join("repo")
    }

    pub(crate) fn target(&self, schema: &str) -> DbtTarget {
        DbtTarget {
            name: "default".into(),
            schema: schema.into(),
            threads: 2,
            warehouse: WarehouseProfile::DuckDb {
                path: self.root.join("warehouse.duckdb"),
            },
        }
    }

    /// lablink's own macros against `target`, in the sandbox.
    fn macro_run<'a>(
        &'a self,
        target: &'a DbtTarget,
        cancel: &'a CancellationToken,
    ) -> MacroRun<'a> {
        MacroRun {
            install: &self.install,
            target,
            work_dir: &self.macros,
            isolation: Isolation::Bubblewrap,
            timeout: TIMEOUT,
            cancel,
        }
    }

    fn workspace(&self, run: &str, target: &DbtTarget) -> DbtWorkspace {
        self.workspace_with(run, target, &[], Limits::default())
    }

    /// A workspace with the job's variables `env` and run limits `limits`.
    pub(crate) fn workspace_with(
        &self,
        run: &str,
        target: &DbtTarget,
        env: &[(String, SecretString)],
        limits: Limits,
    ) -> DbtWorkspace {
        DbtWorkspace::prepare(
            self.install.clone(),
            DbtRunSetup {
                worktree: &self.repo(),
                project_subdir: None,
                run_dir: &self.root.join("runs").join(run),
                target,
                env,
                isolation: Isolation::Bubblewrap,
                limits,
            },
        )
        .unwrap()
    }

    /// Runs the commands in order like a run does, stopping at the first failure.
    pub(crate) async fn run(
        &self,
        ws: &DbtWorkspace,
        commands: &[DbtCommand],
    ) -> (Termination, Vec<String>) {
        let mut log = Vec::new();
        let mut last = None;
        let cancel = CancellationToken::new();
        for command in commands {
            let (sink, mut lines) = mpsc::channel::<LogLine>(256);
            let collect = async {
                let mut out = Vec::new();
                while let Some(line) = lines.recv().await {
                    out.push(line.line);
                }
                out
            };
            let (termination, out) = tokio::join!(ws.run(command, TIMEOUT, sink, &cancel), collect);
            log.extend(out);
            let termination = termination.unwrap();
            last = Some(termination);
            if !termination.success() {
                break;
            }
        }
        (last.expect("at least one command"), log)
    }

    /// Names of the relations in `schema`, read with the virtualenv's own duckdb module.
    fn relations(&self, schema: &str) -> BTreeSet<String> {
        let script = "import duckdb, sys\n\
            con = duckdb.connect(sys.argv[1], read_only=True)\n\
            rows = con.execute('select table_name from information_schema.tables \
            where table_schema = ?', [sys.argv[2]]).fetchall()\n\
            print('\\n'.join(r[0] for r in rows))\n";
        let db = self.root.join("warehouse.duckdb");
        lines(python(
            &self.install,
            script,
            &[&db.to_string_lossy(), schema],
        ))
    }
}

fn lines(text: String) -> BTreeSet<String> {
    text.lines()
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

fn json(text: &Option<String>) -> Value {
    serde_json::from_str(text.as_deref().expect("artifact collected")).unwrap()
}

/// `(unique_id, status)` of every result in `run_results.json`.
fn results(run_results: &Value) -> Vec<(String, String)> {
    run_results["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["unique_id"].as_str().unwrap().to_owned(),
                r["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn models(manifest: &Value) -> BTreeSet<String> {
    manifest["nodes"]
        .as_object()
        .unwrap()
        .values()
        .filter(|node| node["resource_type"] == "model")
        .map(|node| node["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn dbt_build_fills_the_ci_schema_and_drop_schema_removes_it() {
    let scene = Scene::new();
    let target = scene.target("lablink_pr_1_2");
    let ws = scene.workspace("r1", &target);
    let commands = DbtCommand::for_job(&[], None).unwrap();
    assert_eq!(commands, [DbtCommand::parse("dbt build").unwrap()]);

    let (termination, log) = scene.run(&ws, &commands).await;
    assert!(termination.success(), "{termination:?}\n{}", log.join("\n"));
    assert!(log.iter().any(|l| l.contains("Completed successfully")));

    let artifacts = ws.artifacts().unwrap();
    let run_results = json(&artifacts.run_results);
    let manifest = json(&artifacts.manifest);
    let results = results(&run_results);
    assert!(!results.is_empty());
    let counts = ResultCounts::from_run_results(artifacts.run_results.as_deref().unwrap()).unwrap();
    assert_eq!((counts.passed as usize, counts.failed), (results.len(), 0));
    assert!(
        results
            .iter()
            .all(|(_, status)| status == "success" || status == "pass"),
        "{results:?}"
    );
    // Every model of the project is in the CI schema.
    let models = models(&manifest);
    assert!(!models.is_empty());
    let relations = scene.relations("lablink_pr_1_2");
    assert!(models.is_subset(&relations), "{models:?} vs {relations:?}");
    // dbt wrote nothing into the checkout.
    for generated in ["target", "logs", "profiles.yml"] {
        assert!(!scene.repo().join(generated).exists(), "{generated}");
    }

    let cancel = CancellationToken::new();
    let cleanup = scene.macro_run(&target, &cancel);
    drop_schema(&cleanup).await.unwrap();
    let left = scene.relations("lablink_pr_1_2");
    assert!(left.is_empty(), "{left:?}");
    // Dropping again (a replayed cleanup job) succeeds.
    drop_schema(&cleanup).await.unwrap();
}

#[tokio::test]
async fn a_failing_model_fails_the_run() {
    let scene = Scene::new();
    std::fs::write(
        scene.repo().join("models/lablink_broken.sql"),
        "select * from a_table_that_does_not_exist\n",
    )
    .unwrap();
    let target = scene.target("lablink_pr_1_3");
    let ws = scene.workspace("r1", &target);
    let (termination, log) = scene
        .run(&ws, &DbtCommand::for_job(&[], None).unwrap())
        .await;
    assert!(!termination.success(), "{}", log.join("\n"));
    assert_eq!(termination.code(), Some(1));
    let artifacts = ws.artifacts().unwrap();
    let counts = ResultCounts::from_run_results(artifacts.run_results.as_deref().unwrap()).unwrap();
    assert!(counts.failed >= 1, "{counts}");
    let results = results(&json(&artifacts.run_results));
    assert!(
        results
            .iter()
            .any(|(id, status)| id.ends_with(".lablink_broken") && status == "error"),
        "{results:?}"
    );
}

#[tokio::test]
async fn ci_runs_build_only_what_changed_and_defer_to_production() {
    let scene = Scene::new();
    let production = scene.target("prod");
    let prod_ws = scene.workspace("prod", &production);
    let (termination, log) = scene
        .run(&prod_ws, &DbtCommand::for_job(&[], None).unwrap())
        .await;
    assert!(termination.success(), "{}", log.join("\n"));
    let prod_manifest = prod_ws.artifacts().unwrap().manifest.unwrap();
    let manifest: Value = serde_json::from_str(&prod_manifest).unwrap();

    // Change one model that has parents, as a merge request would.
    let (changed_id, changed) = manifest["nodes"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, node)| {
            node["resource_type"] == "model"
                && !node["depends_on"]["nodes"].as_array().unwrap().is_empty()
        })
        .expect("a model with parents");
    let file = scene
        .repo()
        .join(changed["original_file_path"].as_str().unwrap());
    let sql = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("{sql}\n-- changed in a merge request\n")).unwrap();

    let target = scene.target("lablink_pr_1_4");
    let ws = scene.workspace("ci", &target);
    let state = ws
        .install_production_manifest(prod_manifest.as_bytes())
        .unwrap();
    let commands = DbtCommand::for_job(&[], Some(&state)).unwrap();
    assert_eq!(commands.len(), 1);
    assert_eq!(
        commands[0].args()[..3],
        ["build", "--select", "state:modified+"]
    );
    let (termination, log) = scene.run(&ws, &commands).await;
    assert!(termination.success(), "{}", log.join("\n"));

    // Exactly the changed model and what depends on it ran; its parents came from production.
    let mut expected = HashSet::from([changed_id.clone()]);
    let mut frontier = vec![changed_id.clone()];
    while let Some(id) = frontier.pop() {
        for child in manifest["child_map"][&id].as_array().unwrap() {
            let child = child.as_str().unwrap().to_owned();
            if expected.insert(child.clone()) {
                frontier.push(child);
            }
        }
    }
    let ran: HashSet<String> = results(&json(&ws.artifacts().unwrap().run_results))
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert!(ran.contains(changed_id), "{ran:?}");
    assert!(ran.is_subset(&expected), "{ran:?} vs {expected:?}");
    let relations = scene.relations("lablink_pr_1_4");
    assert!(
        relations.contains(changed["name"].as_str().unwrap()),
        "{relations:?}"
    );
    assert!(relations.len() < scene.relations("prod").len());
}

#[tokio::test]
async fn cancelling_stops_a_running_dbt() {
    let scene = Scene::new();
    let target = scene.target("lablink_pr_1_5");
    let ws = scene.workspace("r1", &target);
    let (sink, mut lines) = mpsc::channel::<LogLine>(256);
    let cancel = CancellationToken::new();
    // Cancel as soon as dbt has said anything, i.e. while it is surely still working.
    let canceller = async {
        let first = lines.recv().await;
        cancel.cancel();
        while lines.recv().await.is_some() {}
        first
    };
    let command = DbtCommand::parse("dbt build").unwrap();
    let (termination, first) = tokio::join!(ws.run(&command, TIMEOUT, sink, &cancel), canceller);
    assert!(first.is_some());
    assert_eq!(termination.unwrap(), Termination::Cancelled);
}

/// Runs `script` with the virtualenv's Python and returns its standard output.
fn python(install: &DbtInstall, script: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(install.bin_dir().join("python"))
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// dbt-postgres in the virtualenv (part of the shared requirements), installed here when an older
/// virtualenv lacks it.
fn ensure_postgres_adapter(install: &DbtInstall) {
    static CHECKED: OnceLock<()> = OnceLock::new();
    CHECKED.get_or_init(|| {
        let present = std::process::Command::new(install.bin_dir().join("python"))
            .args(["-c", "import dbt.adapters.postgres"])
            .status()
            .unwrap()
            .success();
        if !present {
            DbtInstall::create(install.venv()).unwrap_or_else(|e| panic!("{e}"));
        }
    });
}

const PG_ADMIN: &str = "import psycopg2, sys\n\
    con = psycopg2.connect(host='127.0.0.1', port=5432, user='postgres', dbname='postgres')\n\
    con.autocommit = True\n\
    con.cursor().execute(sys.argv[1])\n";

/// A fresh PostgreSQL database for one test, dropped afterwards.
struct PgDatabase<'a> {
    install: &'a DbtInstall,
    name: String,
}

impl<'a> PgDatabase<'a> {
    fn create(install: &'a DbtInstall) -> Self {
        let name = format!("lablink_dbt_{}", uuid_like());
        python(install, PG_ADMIN, &[&format!("create database {name}")]);
        Self { install, name }
    }

    fn relations(&self, schema: &str) -> BTreeSet<String> {
        let script = "import psycopg2, sys\n\
            con = psycopg2.connect(host='127.0.0.1', port=5432, user='postgres', dbname=sys.argv[1])\n\
            cur = con.cursor()\n\
            cur.execute('select table_name from information_schema.tables where table_schema = %s', (sys.argv[2],))\n\
            print('\\n'.join(r[0] for r in cur.fetchall()))\n";
        lines(python(self.install, script, &[&self.name, schema]))
    }
}

impl Drop for PgDatabase<'_> {
    fn drop(&mut self) {
        python(
            self.install,
            PG_ADMIN,
            &[&format!(
                "drop database if exists {} with (force)",
                self.name
            )],
        );
    }
}

/// A name part unique to this process and moment.
fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{}_{nanos}", std::process::id())
}

#[tokio::test]
async fn the_postgres_profile_builds_and_drops_with_real_dbt() {
    let scene = Scene::new();
    ensure_postgres_adapter(&scene.install);
    let db = PgDatabase::create(&scene.install);
    let password = "pg-secret-that-trust-auth-ignores";
    let target = DbtTarget {
        name: "default".into(),
        schema: "lablink_pr_2_1".into(),
        threads: 2,
        warehouse: WarehouseProfile::Postgres(PostgresProfile {
            host: "127.0.0.1".into(),
            port: 5432,
            user: "postgres".into(),
            password: SecretString::from(password),
            dbname: db.name.clone(),
        }),
    };
    let ws = scene.workspace("r1", &target);
    let (termination, log) = scene
        .run(&ws, &DbtCommand::for_job(&[], None).unwrap())
        .await;
    assert!(termination.success(), "{}", log.join("\n"));
    assert!(log.iter().all(|line| !line.contains(password)));
    let manifest = json(&ws.artifacts().unwrap().manifest);
    let models = models(&manifest);
    let relations = db.relations("lablink_pr_2_1");
    assert!(models.is_subset(&relations), "{models:?} vs {relations:?}");

    let cancel = CancellationToken::new();
    drop_schema(&scene.macro_run(&target, &cancel))
        .await
        .unwrap();
    assert!(db.relations("lablink_pr_2_1").is_empty());
}

/// Production's `orders` and a merge request's: one row changed, two removed, one added; column
/// `email` removed and `note` added; `customers` without a key.
const COMPARE_FIXTURE: [&str; 8] = [
    "create schema prod",
    "create schema pr",
    "create table prod.orders (id integer, amount integer, email varchar(20))",
    "insert into prod.orders values (1, 10, 'a'), (2, 20, 'b'), (3, 30, 'c'), (4, 40, 'd')",
    "create table pr.orders (id integer, amount integer, note varchar(20))",
    "insert into pr.orders values (1, 10, 'x'), (2, 25, 'y'), (5, 50, 'z')",
    "create table prod.customers as select 1 as id union all select 2",
    "create table pr.customers as select 1 as id",
];

fn compare_pairs(database: &str) -> Value {
    let relation = |schema: &str, table: &str| serde_json::json!({"database": database, "schema": schema, "identifier": table});
    serde_json::json!([
        {"id": "model.p.orders", "mr": relation("pr", "orders"),
         "production": relation("prod", "orders"), "key": ["id"]},
        {"id": "model.p.customers", "mr": relation("pr", "customers"),
         "production": relation("prod", "customers"), "key": null},
    ])
}

fn check_compared(results: &[Value]) {
    let by_id = |id: &str| {
        results
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("{id} not compared: {results:?}"))
    };
    let orders = by_id("model.p.orders");
    assert_eq!(
        (orders["rows"].as_i64(), orders["production_rows"].as_i64()),
        (Some(3), Some(4))
    );
    assert_eq!(
        (
            orders["added"].as_i64(),
            orders["removed"].as_i64(),
            orders["changed"].as_i64()
        ),
        (Some(1), Some(2), Some(1)),
        "{orders}"
    );
    let names = |key: &str| -> Vec<String> {
        orders[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c[0].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names("mr_columns"), ["id", "amount", "note"]);
    assert_eq!(names("production_columns"), ["id", "amount", "email"]);
    let customers = by_id("model.p.customers");
    assert_eq!(customers["rows"].as_i64(), Some(1));
    assert_eq!(customers["production_rows"].as_i64(), Some(2));
    assert!(customers.get("added").is_none(), "{customers}");
}

#[tokio::test]
async fn the_comparison_counts_rows_columns_and_keyed_changes_in_duckdb() {
    let scene = Scene::new();
    let db = scene.root.join("warehouse.duckdb");
    let script = "import duckdb, sys\n\
        con = duckdb.connect(sys.argv[1])\n\
        [con.execute(s) for s in sys.argv[2:]]\n\
        con.close()\n";
    let mut args = vec![db.to_str().unwrap()];
    args.extend(COMPARE_FIXTURE);
    python(&scene.install, script, &args);
    let target = scene.target("pr");
    let cancel = CancellationToken::new();
    let (results, failure) = compare(
        &scene.macro_run(&target, &cancel),
        &compare_pairs("warehouse"),
    )
    .await
    .unwrap();
    assert_eq!(failure, None);
    check_compared(&results);
}

#[tokio::test]
async fn the_comparison_counts_rows_columns_and_keyed_changes_in_postgres() {
    let scene = Scene::new();
    ensure_postgres_adapter(&scene.install);
    let db = PgDatabase::create(&scene.install);
    let script = "import psycopg2, sys\n\
        con = psycopg2.connect(host='127.0.0.1', port=5432, user='postgres', dbname=sys.argv[1])\n\
        con.autocommit = True\n\
        [con.cursor().execute(s) for s in sys.argv[2:]]\n";
    let mut args = vec![db.name.as_str()];
    args.extend(COMPARE_FIXTURE);
    python(&scene.install, script, &args);
    let target = DbtTarget {
        warehouse: WarehouseProfile::Postgres(PostgresProfile {
            host: "127.0.0.1".into(),
            port: 5432,
            user: "postgres".into(),
            password: SecretString::from("unused with trust auth"),
            dbname: db.name.clone(),
        }),
        ..scene.target("pr")
    };
    let cancel = CancellationToken::new();
    let (results, failure) = compare(&scene.macro_run(&target, &cancel), &compare_pairs(&db.name))
        .await
        .unwrap();
    assert_eq!(failure, None);
    check_compared(&results);
}

#[tokio::test]
async fn a_comparison_past_its_budget_keeps_what_it_finished_and_says_why() {
    let scene = Scene::new();
    let target = scene.target("pr");
    let cancel = CancellationToken::new();
    let run = MacroRun {
        timeout: Duration::from_millis(300),
        ..scene.macro_run(&target, &cancel)
    };
    let (results, failure) = compare(&run, &compare_pairs("warehouse")).await.unwrap();
    assert!(results.is_empty());
    assert!(failure.unwrap().contains("time budget"));
}
