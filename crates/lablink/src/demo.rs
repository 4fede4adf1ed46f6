//! `lablink demo`: gitlab-sim and lablink together on free ports with a throw-away data
//! directory, seeded so the whole flow can be tried without a GitLab account, and with a CI
//! run of a sample merge request already done (when dbt is installed).

mod showcase;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use anyhow::Context;
use gitlab_sim::changes::CommitRequest;
use gitlab_sim::commits::FileChange;
use gitlab_sim::state::{Namespace, NewGroup, NewProject, NewUser, SetupError};
use gitlab_sim::{Sim, SimConfig};
use lablink_core::{Plan, Role};
use lablink_exec::dbt::DbtInstall;
use lablink_service::accounts::UserInput;
use lablink_service::{Principal, Services};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use crate::config;
use crate::startup::{self, Application};

/// The demo's one password, for lablink and GitLab users alike.
const PASSWORD: &str = "lablink-demo-password";
const ACCOUNT: &str = "Jaffle Shop Analytics";
/// The sample dbt project pushed into the simulated GitLab.
const SAMPLE_PROJECT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/jaffle_shop_duckdb"
);

/// The demo's people: (lablink email, role, GitLab username, GitLab access level in the group).
const PEOPLE: [(&str, Role, &str, u8); 3] = [
    ("admin@jaffle.test", Role::AccountAdmin, "ada", 50),
    ("alice@jaffle.test", Role::Developer, "alice", 40),
    ("bob@jaffle.test", Role::Developer, "bob", 30),
];

/// Removes the demo's data directory when the demo ends.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> anyhow::Result<SocketAddr> {
    // The port is chosen now and bound again by the server a moment later: the public URL
    // (and so the OAuth redirect URI registered in the simulator) must be known first.
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

pub async fn run() -> anyhow::Result<()> {
    let dir = TempDir(std::env::temp_dir().join(format!("lablink-demo-{}", uuid::Uuid::new_v4())));
    std::fs::create_dir_all(&dir.0)?;
    let sim = Sim::start(SimConfig {
        listen: "127.0.0.1:0".parse()?,
        data_dir: Some(dir.0.join("gitlab")),
        state_file: None,
    })
    .await?;
    let listen = free_port()?;
    let metrics_listen = free_port()?;
    let public_url = format!("http://{listen}");
    let (app, app_secret) = sim
        .handle()
        .create_oauth_application(
            "lablink (operator)",
            vec![format!("{public_url}/complete/gitlab")],
            vec!["api".into()],
            true,
        )
        .map_err(|e| anyhow::anyhow!("gitlab-sim: {e}"))?;
    let settings = config::from_pairs(&[
        (
            "database_url",
            &format!("sqlite://{}", dir.0.join("lablink.db").display()),
        ),
        ("data_dir", &dir.0.join("lablink").display().to_string()),
        ("public_url", &public_url),
        ("listen", &listen.to_string()),
        ("metrics_listen", &metrics_listen.to_string()),
        ("gitlab_url", sim.base_url()),
        ("gitlab_app_id", &app.uid),
        ("gitlab_app_secret", &app_secret),
        ("allow_http_loopback_gitlab", "true"),
    ])?;

    // Seed before the server starts, so no setup link is made for an empty database.
    let keys = crate::master_key::load_key_ring(&settings)?;
    let db = startup::open_database(&settings).await?;
    db.migrate().await?;
    let services = startup::services(&settings, db, keys, public_url.parse()?);
    let admin = seed_lablink(&services).await?;
    let gitlab = seed_gitlab(&sim).await?;
    let project = gitlab.project_path;

    let application = Application::build(settings).await?;
    println!("\nlablink demo is running (Ctrl-C stops it and deletes its data).\n");
    println!("  lablink     {public_url}/");
    println!("  metrics     http://{metrics_listen}/metrics");
    println!("  GitLab      {}/  (gitlab-sim)", sim.base_url());
    println!("  dbt project {}/{project}", sim.base_url());
    // GitLab's own screens the guide's steps show, in the simulator.
    let base = sim.base_url();
    println!("    OAuth applications {base}/groups/jaffle-labs/-/settings/applications");
    println!("    webhooks           {base}/{project}/-/hooks");
    println!("    repository         {base}/{project}/-/settings/repository");
    println!("    access tokens      {base}/{project}/-/settings/access_tokens");
    println!("\n  lablink account \"{ACCOUNT}\" (Enterprise), password for everyone: {PASSWORD}");
    for (email, role, gitlab, _) in PEOPLE {
        println!("    {email:<20} {:<14} GitLab user: {gitlab}", role.label());
    }
    println!();
    let stop = CancellationToken::new();
    startup::stop_on_signals(stop.clone());
    let serve = application.run_until_stopped(stop);
    let seeded = showcase::Seeded {
        sim: sim.handle(),
        sim_url: sim.base_url(),
        oauth_app_id: app.id,
        admin_email: PEOPLE[0].0,
        admin_password: PASSWORD,
        admin_gitlab_id: gitlab.admin_id,
        gitlab_project_id: gitlab.project_id,
        gitlab_project_path: project,
    };
    let ci = show_ci(&services, &admin, &public_url, &seeded);
    // The showcase talks to the server, so both run together; stopping the server ends it.
    tokio::pin!(serve);
    tokio::select! {
        served = &mut serve => served?,
        () = ci => serve.await?,
    }
    sim.shutdown().await;
    Ok(())
}

/// Runs the CI showcase and prints what it left to look at; a failure is printed, not returned,
/// so the demo keeps serving everything else.
async fn show_ci(
    services: &Services,
    admin: &Principal,
    public_url: &str,
    seeded: &showcase::Seeded<'_>,
) {
    if DbtInstall::locate().is_err() {
        println!(
            "  CI          installing dbt for CI runs (first start only, a minute or two) ..."
        );
        match tokio::task::spawn_blocking(DbtInstall::locate_or_create).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                println!("  CI          no CI run to show: {e}\n");
                return;
            }
            Err(e) => {
                println!("  CI          no CI run to show: {e}\n");
                return;
            }
        }
    }
    match showcase::run(services, admin, public_url, seeded).await {
        Ok(shown) => {
            println!("  CI run      {}  ({})", shown.run_url, shown.status);
            println!("  MR          {}", shown.merge_request_url);
            println!("  MR note     {}\n", shown.note_summary);
        }
        Err(e) => println!("  CI          the CI showcase failed: {e:#}\n"),
    }
}

/// Creates the demo's lablink users; returns the account admin, who runs the CI showcase.
async fn seed_lablink(services: &Services) -> anyhow::Result<Principal> {
    let mut admin = None;
    for (email, role, username, _) in PEOPLE {
        let (account, user) = services
            .create_user_in_account(
                ACCOUNT,
                Plan::Enterprise,
                UserInput {
                    email: email.into(),
                    username: username.into(),
                    password: SecretString::from(PASSWORD),
                    role,
                },
            )
            .await?;
        if role == Role::AccountAdmin {
            admin = Some(Principal {
                user_id: user.id,
                email: user.email,
                username: user.username,
                role: user.role,
                account_id: account.id,
                account_name: account.name,
                plan: account.plan,
            });
        }
    }
    admin.context("the demo has no account admin")
}

/// What [`seed_gitlab`] made that the demo refers to later.
struct SeededGitlab {
    project_path: &'static str,
    project_id: u64,
    /// The GitLab user of the demo's account admin.
    admin_id: u64,
}

/// GitLab users, a group with a subgroup, the sample dbt project and a second project, and a
/// personal project (which lablink must never offer).
async fn seed_gitlab(sim: &Sim) -> anyhow::Result<SeededGitlab> {
    let gl = sim.handle();
    let group = gl
        .create_group(NewGroup {
            path: "jaffle-labs".into(),
            name: Some("Jaffle Labs".into()),
            ..NewGroup::default()
        })
        .map_err(sim_err)?;
    let analytics = gl
        .create_group(NewGroup {
            path: "analytics".into(),
            name: Some("Analytics".into()),
            parent_id: Some(group.id),
            ..NewGroup::default()
        })
        .map_err(sim_err)?;
    let mut users = Vec::new();
    for (email, _, username, level) in PEOPLE {
        let (user, _) = gl
            .create_user(NewUser {
                username: username.into(),
                email: Some(email.into()),
                password: Some(PASSWORD.into()),
                ..NewUser::default()
            })
            .map_err(sim_err)?;
        gl.add_group_member(group.id, user.id, level)
            .map_err(sim_err)?;
        users.push(user);
    }
    let project = |path: &str, namespace| NewProject {
        path: path.into(),
        name: None,
        namespace,
        visibility: None,
        description: None,
        default_branch: None,
        archived: false,
    };
    let dbt = gl
        .create_project(project("jaffle_shop", Namespace::Group(analytics.id)))
        .await
        .map_err(sim_err)?;
    gl.create_project(project("marketing-models", Namespace::Group(group.id)))
        .await
        .map_err(sim_err)?;
    gl.create_project(project("scratch", Namespace::User(users[1].id)))
        .await
        .map_err(sim_err)?;
    commit_sample_project(gl, dbt.id, users[0].id).await?;
    Ok(SeededGitlab {
        project_path: "jaffle-labs/analytics/jaffle_shop",
        project_id: dbt.id,
        admin_id: users[0].id,
    })
}

fn sim_err(e: SetupError) -> anyhow::Error {
    anyhow::anyhow!("gitlab-sim: {e}")
}

/// Commits the sample dbt project to the simulated project's default branch, as `user_id`,
/// through the simulator (GitLab's commits API), so the demo runs no git of its own.
async fn commit_sample_project(
    gl: &gitlab_sim::SimHandle,
    project_id: u64,
    user_id: u64,
) -> anyhow::Result<()> {
    let mut files = Vec::new();
    sample_files(Path::new(SAMPLE_PROJECT), "", &mut files)
        .with_context(|| format!("cannot read the sample project in {SAMPLE_PROJECT}"))?;
    gl.commit_files(
        project_id,
        CommitRequest {
            branch: "main".into(),
            start_branch: None,
            message: "Sample dbt project".into(),
            files,
            user_id,
            author: None,
        },
    )
    .await
    .map_err(sim_err)?;
    Ok(())
}

/// Every file below `dir`, with its path relative to the sample project's root.
fn sample_files(dir: &Path, prefix: &str, files: &mut Vec<FileChange>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = format!("{prefix}{name}");
        if entry.file_type()?.is_dir() {
            sample_files(&entry.path(), &format!("{path}/"), files)?;
        } else {
            files.push(FileChange {
                path,
                content: Some(std::fs::read(entry.path())?),
            });
        }
    }
    Ok(())
}
