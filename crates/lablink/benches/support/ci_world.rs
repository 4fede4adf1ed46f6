//! gitlab-sim and lablink (in process, with every worker) wired together for the CI benchmarks:
//! a Maintainer's linked GitLab account, a group project seeded from a directory, the repository
//! connected to a lablink project with one CI job `ci` on its own DuckDB warehouse.

use std::path::Path;

use gitlab_sim::state::{Namespace, NewGroup, NewProject, NewUser, SimHandle};
use gitlab_sim::{Sim, SimConfig};
use lablink::startup::Application;
use lablink_core::{Plan, Role};
use lablink_service::accounts::UserInput;
use lablink_service::ci::jobs::CiJobForm;
use lablink_service::links::CallbackQuery;
use lablink_service::projects::ProjectInput;
use lablink_service::{Principal, Services};
use lablink_testkit::{ThrowawayDatabase, free_port};
use secrecy::SecretString;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::support::{drop_pg_database, pg_database};

const SESSION: &str = "bench-browser-session";

/// How a world starts.
pub struct Setup<'a> {
    pub postgres: bool,
    /// More lablink settings (`key`, `value`).
    pub settings: &'a [(&'a str, &'a str)],
    /// The files of the project's first commit on `main`.
    pub seed: &'a Path,
}

pub struct CiWorld {
    pub sim: Sim,
    pub services: Services,
    pub principal: Principal,
    /// The lablink project.
    pub project_id: String,
    pub gitlab_project: u64,
    pub author: u64,
    pub author_token: String,
    pub status_name: String,
    /// Where lablink's hook points (to tell its deliveries from other hooks').
    pub lablink_hook_url: String,
    pub http: reqwest::Client,
    stop: CancellationToken,
    postgres: Option<ThrowawayDatabase>,
    _dir: tempfile::TempDir,
}

impl CiWorld {
    pub async fn start(setup: Setup<'_>) -> CiWorld {
        let dir = tempfile::tempdir().unwrap();
        let sim = Sim::start(SimConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: Some(dir.path().join("gitlab")),
            state_file: None,
        })
        .await
        .unwrap();
        let gl = sim.handle().clone();
        let port = free_port();
        let public_url = format!("http://127.0.0.1:{port}");
        let (oauth_app, oauth_secret) = gl
            .create_oauth_application(
                "lablink",
                vec![format!("{public_url}/complete/gitlab")],
                vec!["api".into()],
                true,
            )
            .unwrap();
        let pg = if setup.postgres {
            Some(pg_database().await)
        } else {
            None
        };
        let database_url = match &pg {
            Some(database) => database.url.clone(),
            None => format!("sqlite://{}", dir.path().join("lablink.db").display()),
        };
        let listen = format!("127.0.0.1:{port}");
        let data_dir = dir.path().join("lablink").display().to_string();
        let mut pairs = vec![
            ("database_url", database_url.as_str()),
            ("listen", listen.as_str()),
            ("metrics_listen", "127.0.0.1:0"),
            ("data_dir", data_dir.as_str()),
            ("public_url", public_url.as_str()),
            ("gitlab_url", sim.base_url()),
            ("gitlab_app_id", oauth_app.uid.as_str()),
            ("gitlab_app_secret", oauth_secret.as_str()),
            ("allow_http_loopback_gitlab", "true"),
        ];
        pairs.extend_from_slice(setup.settings);
        let settings = lablink::config::from_pairs(&pairs).unwrap();
        let app = Application::build(settings).await.unwrap();
        let services = app.services().clone();
        let stop = CancellationToken::new();
        tokio::spawn(app.run_until_stopped(stop.clone()));

        // GitLab: a Maintainer and a group project seeded from `setup.seed`.
        let (author, author_token) = gl
            .create_user(NewUser {
                username: "alice".into(),
                name: Some("Alice".into()),
                email: Some("alice@example.com".into()),
                ..NewUser::default()
            })
            .unwrap();
        let group = gl
            .create_group(NewGroup {
                path: "analytics".into(),
                ..NewGroup::default()
            })
            .unwrap();
        gl.add_group_member(group.id, author.id, 40).unwrap();
        let project = gl
            .create_project(NewProject {
                path: "warehouse".into(),
                name: None,
                namespace: Namespace::Group(group.id),
                visibility: None,
                description: None,
                default_branch: None,
                archived: false,
            })
            .await
            .unwrap();
        gl.seed_project(project.id, setup.seed, author.id)
            .await
            .unwrap();

        // lablink: a developer links alice's GitLab account, connects the repository, adds a job.
        let (account, user) = services
            .create_user_in_account(
                "bench",
                Plan::Enterprise,
                UserInput {
                    email: "dev@bench.test".into(),
                    username: "dev".into(),
                    password: SecretString::from("bench-password-0123456789"),
                    role: Role::Developer,
                },
            )
            .await
            .unwrap();
        let principal = Principal {
            user_id: user.id,
            email: user.email,
            username: user.username,
            role: user.role,
            account_id: account.id,
            account_name: account.name,
            plan: account.plan,
        };
        link_gitlab(&services, &principal, &gl, author.id, oauth_app.id).await;
        let lablink_project = services
            .create_project(
                &principal,
                &ProjectInput {
                    name: "Warehouse".into(),
                    subdirectory: String::new(),
                    target_branch: "main".into(),
                },
            )
            .await
            .unwrap();
        let repository = services
            .connect_repository(
                &principal,
                &lablink_project.id,
                i64::try_from(project.id).unwrap(),
                None,
            )
            .await
            .unwrap();
        let form: CiJobForm = serde_json::from_value(json!({
            "name": "ci",
            "timeout_secs": 600,
            "warehouse": {"type": "duckdb"},
        }))
        .unwrap();
        let job = services
            .create_ci_job(&principal, &lablink_project.id, form)
            .await
            .unwrap();
        CiWorld {
            lablink_hook_url: format!("{public_url}/webhooks/gitlab/{}", repository.id),
            sim,
            services,
            principal,
            project_id: lablink_project.id,
            gitlab_project: project.id,
            author: author.id,
            author_token,
            status_name: job.status_name,
            http: reqwest::Client::new(),
            stop,
            postgres: pg,
            _dir: dir,
        }
    }

    /// lablink's `data_dir`.
    pub fn data_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("lablink")
    }

    pub fn gl(&self) -> &SimHandle {
        self.sim.handle()
    }

    /// lablink's hook deliveries of `trigger` logged by the simulator.
    pub fn lablink_deliveries(&self, trigger: &str) -> Vec<gitlab_sim::state::HookDelivery> {
        let state = self.gl().lock();
        state
            .hooks_of(self.gitlab_project)
            .filter(|h| h.url == self.lablink_hook_url)
            .flat_map(|h| h.deliveries.iter())
            .filter(|d| d.trigger == trigger)
            .cloned()
            .collect()
    }

    /// Whether the job's status for `sha` has reached a final state in the simulator.
    pub fn final_status_of(&self, sha: &str) -> bool {
        let state = self.gl().lock();
        state
            .commit_statuses
            .values()
            .any(|s| s.sha == sha && s.name == self.status_name && s.status.is_terminal())
    }

    pub async fn stop(self) {
        self.stop.cancel();
        drop(self.sim);
        if let Some(database) = self.postgres {
            drop_pg_database(database).await;
        }
    }
}

/// Profile → Linked accounts → Link, at the service level: GitLab (pre-approved, signed in)
/// redirects back at once with a code, which lablink exchanges.
async fn link_gitlab(
    services: &Services,
    principal: &Principal,
    gl: &SimHandle,
    gitlab_user: u64,
    oauth_app: u64,
) {
    gl.preapprove_oauth(gitlab_user, oauth_app);
    let cookie = gl.create_web_session(gitlab_user);
    let authorize = services
        .start_gitlab_link(principal, SESSION)
        .await
        .unwrap();
    let res = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(authorize)
        .header("Cookie", format!("_gitlab_session={cookie}"))
        .send()
        .await
        .unwrap();
    let back: url::Url = res.headers()["location"].to_str().unwrap().parse().unwrap();
    let param = |name: &str| {
        back.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let query = CallbackQuery {
        code: param("code"),
        state: param("state"),
        ..CallbackQuery::default()
    };
    services
        .complete_gitlab_authorization(principal, SESSION, &query)
        .await
        .unwrap();
}
