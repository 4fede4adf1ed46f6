//! The workspace's dbt command box, with real dbt in bubblewrap: a command builds the saved
//! (uncommitted) files into the user's development schema with a CI job's warehouse, its output
//! and `target/` are there to read, one command runs at a time, a running one is cancelled, and
//! what a command may not be is refused in words — while the checkout the user commits from
//! stays exactly as it was.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::ci::duckdb_job;
use crate::on_both_backends;
use crate::support::connected::Connected;
use sqlx::postgres::PgPool;

use crate::support::{Backend, Page, TestDatabase};
use crate::workspace::{Ws, dbt_project};

on_both_backends!(a_dbt_command_builds_the_saved_files_into_the_development_schema);

/// Waits for the command to end and returns it.
async fn ended(ws: &Ws<'_>, id: &str) -> Value {
    for _ in 0..600 {
        let command = ws
            .call(Method::GET, &format!("/dbt/{id}"), None)
            .await
            .json();
        if command["state"] != "running" {
            return command;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("the command {id} did not end within 150 s");
}

async fn start(ws: &Ws<'_>, command: &str) -> Page {
    ws.call(Method::POST, "/dbt", Some(json!({"command": command})))
        .await
}

async fn a_dbt_command_builds_the_saved_files_into_the_development_schema(backend: Backend) {
    let seed = dbt_project();
    let c = Connected::start(backend, &[], Some(seed.path())).await;
    let ws = Ws { c: &c };

    // Without a CI job there is no warehouse to use: said in words.
    let refused = start(&ws, "dbt build").await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(
        refused.body.contains("add one under CI jobs"),
        "{}",
        refused.body
    );
    let job = c
        .browser
        .api(
            Method::POST,
            &format!("/api/v1/projects/{}/ci-jobs", c.project),
            Some(duckdb_job("ci")),
            Some(&c.csrf),
        )
        .await;
    assert_eq!(job.status, 201, "{}", job.body);

    // Commands CI jobs do not allow, and flags lablink sets itself, are refused by field.
    for (typed, says) in [
        ("rm -rf /", "only dbt commands can run"),
        ("dbt debug", "does not run here"),
        ("dbt run --profiles-dir /etc", "set by lablink"),
    ] {
        let res = start(&ws, typed).await;
        assert_eq!(res.status, 422, "{typed}: {}", res.body);
        assert!(res.body.contains(says), "{typed}: {}", res.body);
    }

    // A saved, uncommitted change is what the command builds.
    ws.save("models/orders.sql", "select 7 as id\n").await;
    let started = start(&ws, "dbt build --select orders").await;
    assert_eq!(started.status, 202, "{}", started.body);
    let started = started.json();
    let id = started["id"].as_str().unwrap().to_owned();
    let schema = started["schema"].as_str().unwrap().to_owned();
    assert!(schema.starts_with("lablink_dev_"), "{schema}");
    // One at a time.
    let second = start(&ws, "dbt compile").await;
    assert_eq!(second.status, 409, "{}", second.body);
    assert!(second.body.contains("already running"), "{}", second.body);

    let done = ended(&ws, &id).await;
    let output = done["output"].as_str().unwrap();
    assert_eq!(done["state"], "succeeded", "{output}");
    assert!(
        output.contains("[lablink] $ dbt build --select orders"),
        "{output}"
    );
    assert!(
        output.contains(&format!("building into schema {schema}")),
        "{output}"
    );
    let files: Vec<&str> = done["target_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(files.contains(&"run_results.json"), "{files:?}");
    let compiled = "compiled/warehouse/models/orders.sql";
    assert!(files.contains(&compiled), "{files:?}");
    let file = ws
        .call(
            Method::GET,
            &format!("/dbt/{id}/target?path={compiled}"),
            None,
        )
        .await;
    assert_eq!(file.status, 200);
    assert_eq!(file.body.trim(), "select 7 as id");

    // The development schema got the table, in a DuckDB file of the user's own: the CI
    // warehouse was never touched.
    let dev_file = c.app.data_dir().join(format!(
        "warehouses/project-{}-dev-{}/warehouse.duckdb",
        c.project, c.user.id
    ));
    let tables = crate::support::duckdb_rows(
        &dev_file,
        "select table_schema, table_name from information_schema.tables",
    );
    assert_eq!(tables, Some(vec![format!("{schema}.orders")]));
    assert!(!c.app.duckdb_file(&c.project).exists());

    // The checkout the user commits from is unchanged: no target/, logs/ or dbt_packages/
    // from the run, the one saved change still the only one.
    let view = ws.view().await;
    let changed: Vec<&str> = view["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| !f["state"].is_null())
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(changed, ["models/orders.sql"], "{view}");

    // The page shows the command, its badge, its output and target/.
    let page = c
        .browser
        .get(&format!("/projects/{}/workspace/dbt", c.project))
        .await;
    assert_eq!(page.status, 200);
    for shown in [
        "Succeeded",
        "dbt build --select orders",
        "run_results.json",
        &schema,
    ] {
        assert!(page.body.contains(shown), "{shown} missing");
    }
    let compiled_page = c
        .browser
        .get(&format!(
            "/projects/{}/workspace/dbt/{id}/target/{compiled}",
            c.project
        ))
        .await;
    assert_eq!(compiled_page.status, 200);
    assert_eq!(compiled_page.body.trim(), "select 7 as id");

    // A running command is cancelled; the next one may start then.
    let long = start(&ws, "dbt build").await;
    assert_eq!(long.status, 202, "{}", long.body);
    let long_id = long.json()["id"].as_str().unwrap().to_owned();
    let cancel = ws
        .call(Method::POST, &format!("/dbt/{long_id}/cancel"), None)
        .await;
    assert_eq!(cancel.status, 204, "{}", cancel.body);
    let cancelled = ended(&ws, &long_id).await;
    assert_eq!(cancelled["state"], "cancelled", "{cancelled}");
    let again = ws
        .call(Method::POST, &format!("/dbt/{long_id}/cancel"), None)
        .await;
    assert_eq!(again.status, 409, "{}", again.body);
    // Only the latest finished command keeps its files; the list has both, newest first.
    let list = ws.call(Method::GET, "/dbt", None).await.json();
    let ids: Vec<&str> = list["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [long_id.as_str(), id.as_str()]);
    let gone = ws
        .call(
            Method::GET,
            &format!("/dbt/{id}/target?path={compiled}"),
            None,
        )
        .await;
    assert_eq!(gone.status, 404);
}

/// On a PostgreSQL job, a developer's own warehouse credentials (the password sealed) make their
/// commands run as their own warehouse user, with the job's host and database; removed, the
/// commands use the job's user again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_development_credentials_run_commands_as_the_developer() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = TestDatabase::create(Backend::Postgres, dir.path()).await;
    let dbname = warehouse.url.rsplit('/').next().unwrap().to_owned();
    let pg = PgPool::connect(&warehouse.url).await.unwrap();
    let role = format!("dev_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    sqlx::query(&format!(
        "CREATE ROLE {role} LOGIN PASSWORD 'not-used-with-trust'"
    ))
    .execute(&pg)
    .await
    .unwrap();
    sqlx::query(&format!("GRANT CREATE ON DATABASE \"{dbname}\" TO {role}"))
        .execute(&pg)
        .await
        .unwrap();

    let seed = dbt_project();
    let c = Connected::start(Backend::Sqlite, &[], Some(seed.path())).await;
    let ws = Ws { c: &c };
    let job = c
        .browser
        .api(
            Method::POST,
            &format!("/api/v1/projects/{}/ci-jobs", c.project),
            Some(json!({"name": "ci", "timeout_secs": 600, "mr_note": false,
                        "warehouse": {"type": "postgres", "host": "127.0.0.1", "port": 5432,
                                      "user": "postgres", "dbname": dbname},
                        "warehouse_password": "job-secret"})),
            Some(&c.csrf),
        )
        .await;
    assert_eq!(job.status, 201, "{}", job.body);

    // A first save needs the password; the refusal names the field.
    let credentials = |body: Value| ws.call(Method::PUT, "/dbt/credentials", Some(body));
    let refused = credentials(json!({"username": role, "password": ""})).await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(refused.body.contains("password"), "{}", refused.body);
    let saved = credentials(json!({"username": role, "password": "s3cret-dev-pw"})).await;
    assert_eq!(saved.status, 204, "{}", saved.body);
    let stored = crate::secrets_at_rest::database_bytes(&c.app).await;
    assert!(
        !crate::secrets_at_rest::contains(&stored, "s3cret-dev-pw"),
        "sealed at rest"
    );
    let listed = ws.call(Method::GET, "/dbt", None).await.json();
    assert_eq!(listed["dev_user"], role.as_str());

    let run = start(&ws, "dbt run").await;
    assert_eq!(run.status, 202, "{}", run.body);
    let run = run.json();
    let done = ended(&ws, run["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "succeeded", "{}", done["output"]);
    assert!(
        done["output"]
            .as_str()
            .unwrap()
            .contains(&format!("as warehouse user {role}")),
        "{}",
        done["output"]
    );
    let schema = run["schema"].as_str().unwrap();
    let owner: String =
        sqlx::query_scalar("SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = $1")
            .bind(schema)
            .fetch_one(&pg)
            .await
            .unwrap();
    assert_eq!(owner, role, "the developer's own user made the schema");

    // Removed: the job's user again.
    let removed = ws.call(Method::DELETE, "/dbt/credentials", None).await;
    assert_eq!(removed.status, 204);
    let again = start(&ws, "dbt compile").await.json();
    let done = ended(&ws, again["id"].as_str().unwrap()).await;
    assert!(
        done["output"]
            .as_str()
            .unwrap()
            .contains("as warehouse user postgres"),
        "{}",
        done["output"]
    );
    let _ = sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .execute(&pg)
        .await;
    let _ = sqlx::query(&format!(
        "REVOKE CREATE ON DATABASE \"{dbname}\" FROM {role}"
    ))
    .execute(&pg)
    .await;
    let _ = sqlx::query(&format!("DROP ROLE {role}")).execute(&pg).await;
}
