//! The demo's CI showcase: the demo admin links GitLab (the OAuth round trip over HTTP, as a
//! browser does it), connects the sample repository, creates the merge job and runs it on a push
//! to main (production), creates a CI job and opens a merge request in the simulator, so a
//! finished run, its commit status and its note of what changed against production are there to
//! look at.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};
use gitlab_sim::SimHandle;
use lablink_service::ci::jobs::CiJobForm;
use lablink_service::projects::ProjectInput;
use lablink_service::{Principal, Services};
use reqwest::header;
use serde_json::{Value, json};

/// What the demo seeded in the simulator that the showcase builds on.
pub struct Seeded<'a> {
    pub sim: &'a SimHandle,
    pub sim_url: &'a str,
    pub oauth_app_id: u64,
    pub admin_email: &'a str,
    pub admin_password: &'a str,
    pub admin_gitlab_id: u64,
    pub gitlab_project_id: u64,
    pub gitlab_project_path: &'a str,
}

/// What the showcase left to look at.
pub struct Showcase {
    pub run_url: String,
    pub merge_request_url: String,
    pub status: String,
    /// The note's first line: what changed.
    pub note_summary: String,
}

const JOB: &str = "ci";
const MERGE_JOB: &str = "production";
const BRANCH: &str = "demo/largest-order";
const MODEL_PATH: &str = "models/marts/customer_orders.sql";
/// The sample's model without returned orders and with each customer's largest order: rows go
/// and a column comes, which the note shows.
const MODEL: &str = "select customer_id, count(*) as number_of_orders, \
    min(order_date) as first_order_date, sum(amount) as lifetime_value, \
    max(amount) as largest_order \
    from {{ ref('stg_orders') }} where status <> 'returned' group by customer_id\n";
/// Upper bound for the dbt run; the demo keeps serving if it is exceeded.
const PATIENCE: Duration = Duration::from_secs(600);

pub async fn run(
    services: &Services,
    admin: &Principal,
    lablink: &str,
    seeded: &Seeded<'_>,
) -> anyhow::Result<Showcase> {
    let user = Session::new(lablink)?;
    user.login(seeded.admin_email, seeded.admin_password)
        .await?;
    link_gitlab(&user, seeded).await?;
    let project = services
        .create_project(
            admin,
            &ProjectInput {
                name: "Jaffle Shop".into(),
                subdirectory: String::new(),
                target_branch: "main".into(),
            },
        )
        .await?;
    let gitlab_project_id = i64::try_from(seeded.gitlab_project_id)?;
    services
        .connect_repository(admin, &project.id, gitlab_project_id, None)
        .await?;
    let job = |name: &str, kind: &str| -> anyhow::Result<CiJobForm> {
        Ok(serde_json::from_value(json!({
            "name": name,
            "kind": kind,
            "timeout_secs": 600,
            "warehouse": {"type": "duckdb"},
        }))?)
    };
    let merge_job = services
        .create_ci_job(admin, &project.id, job(MERGE_JOB, "merge")?)
        .await?;
    let ci_job = services
        .create_ci_job(admin, &project.id, job(JOB, "ci")?)
        .await?;

    let control = Control(seeded);
    println!("  CI          building production: the merge job on a push to main ...");
    let main = control
        .post(
            "/repository/commits",
            json!({"branch": "main", "message": "Describe the demo",
                   "user_id": seeded.admin_gitlab_id,
                   "files": [{"path": "README.md", "content": "The jaffle shop, run by lablink's demo.\n"}]}),
        )
        .await?;
    let main = str_field(&main, "sha")?;
    finish(
        services,
        admin,
        &project.id,
        &main,
        &merge_job.status_name,
        &control,
    )
    .await?;

    let (sha, iid) = open_merge_request(&control, seeded.admin_gitlab_id).await?;
    println!("  CI          waiting for the CI run of merge request !{iid} ...");
    let (run_id, status) = finish(
        services,
        admin,
        &project.id,
        &sha,
        &ci_job.status_name,
        &control,
    )
    .await?;
    let note = tokio::time::timeout(PATIENCE, control.first_note(iid))
        .await
        .context("the merge request note did not reach GitLab in time")??;
    Ok(Showcase {
        run_url: format!("{lablink}/runs/{run_id}"),
        merge_request_url: format!(
            "{}/{}/-/merge_requests/{iid}",
            seeded.sim_url, seeded.gitlab_project_path
        ),
        status: format!("{}: {status}", ci_job.status_name),
        note_summary: note.lines().next().unwrap_or_default().to_owned(),
    })
}

/// Waits for lablink's run of `sha` and its final commit status `name` in GitLab; the run's
/// id and the status.
async fn finish(
    services: &Services,
    admin: &Principal,
    project_id: &str,
    sha: &str,
    name: &str,
    control: &Control<'_>,
) -> anyhow::Result<(String, String)> {
    let run_id = tokio::time::timeout(PATIENCE, finished_run(services, admin, project_id, sha))
        .await
        .context("the CI run did not finish in time")??;
    let status = tokio::time::timeout(PATIENCE, control.commit_status(sha, name))
        .await
        .context("the commit status did not reach GitLab in time")??;
    Ok((run_id, status))
}

/// The OAuth round trip of Profile → Linked accounts → Link, with the admin signed in to GitLab
/// and the application pre-approved, so GitLab redirects back at once.
async fn link_gitlab(user: &Session, seeded: &Seeded<'_>) -> anyhow::Result<()> {
    seeded
        .sim
        .preapprove_oauth(seeded.admin_gitlab_id, seeded.oauth_app_id);
    let gitlab_session = seeded.sim.create_web_session(seeded.admin_gitlab_id);
    let csrf = user.csrf("/profile/linked-accounts").await?;
    let authorize = user
        .redirect(
            user.client
                .post(user.url("/profile/linked-accounts/gitlab/link"))
                .form(&[("csrf_token", &csrf)]),
        )
        .await?;
    let back = user
        .client
        .get(&authorize)
        .header(header::COOKIE, format!("_gitlab_session={gitlab_session}"))
        .send()
        .await?;
    let back = location(&back).context("GitLab did not redirect back to lablink")?;
    let done = user.redirect(user.client.get(user.url(&back))).await?;
    if done != "/profile/linked-accounts" {
        bail!("linking GitLab ended at {done}");
    }
    Ok(())
}

/// The simulator's control API for the demo's GitLab project.
struct Control<'a>(&'a Seeded<'a>);

impl Control<'_> {
    fn url(&self, path: &str) -> String {
        format!(
            "{}/-/sim/projects/{}{path}",
            self.0.sim_url, self.0.gitlab_project_id
        )
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let res = reqwest::Client::new()
            .post(self.url(path))
            .json(&body)
            .send()
            .await?;
        let status = res.status();
        let body: Value = res.json().await?;
        if !status.is_success() {
            bail!("gitlab-sim {path}: {status} {body}");
        }
        Ok(body)
    }

    async fn state(&self) -> anyhow::Result<Value> {
        Ok(reqwest::get(self.url("/state")).await?.json().await?)
    }

    /// Waits until the simulator holds a final commit status `name` for `sha`; its state.
    async fn commit_status(&self, sha: &str, name: &str) -> anyhow::Result<String> {
        loop {
            let state = self.state().await?;
            let done = state["commit_statuses"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|s| {
                    s["sha"] == sha
                        && s["name"] == name
                        && matches!(
                            s["status"].as_str(),
                            Some("success" | "failed" | "canceled" | "skipped")
                        )
                });
            if let Some(status) = done {
                return str_field(status, "status");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Waits for the first note on merge request `iid`; its body.
    async fn first_note(&self, iid: u64) -> anyhow::Result<String> {
        loop {
            let state = self.state().await?;
            let note = state["merge_requests"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|mr| mr["iid"] == iid)
                .and_then(|mr| mr["notes"].as_array()?.first().cloned());
            if let Some(note) = note {
                return str_field(&note, "body");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Commits a model change to a branch and opens a merge request for it; returns the head SHA
/// and the merge request's IID.
async fn open_merge_request(control: &Control<'_>, author: u64) -> anyhow::Result<(String, u64)> {
    let commit = control
        .post(
            "/repository/commits",
            json!({"branch": BRANCH, "start_branch": "main",
                   "message": "Largest order per customer, without returns",
                   "user_id": author, "files": [{"path": MODEL_PATH, "content": MODEL}]}),
        )
        .await?;
    let mr = control
        .post(
            "/merge_requests",
            json!({"source_branch": BRANCH, "target_branch": "main",
                   "title": "Largest order per customer, without returns", "author_id": author}),
        )
        .await?;
    let iid = mr["iid"].as_u64().context("no merge request IID")?;
    Ok((str_field(&commit, "sha")?, iid))
}

/// Waits until lablink's run for `sha` has ended; returns its id.
async fn finished_run(
    services: &Services,
    admin: &Principal,
    project_id: &str,
    sha: &str,
) -> anyhow::Result<String> {
    loop {
        let runs = services.list_runs(admin, project_id, None).await?;
        let ended = runs.into_iter().find(|r| {
            r.sha == sha && !matches!(r.state.as_str(), "queued" | "starting" | "running")
        });
        if let Some(run) = ended {
            return Ok(run.id);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn str_field(value: &Value, name: &str) -> anyhow::Result<String> {
    value[name]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no `{name}` in {value}"))
}

fn location(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get(header::LOCATION)?
        .to_str()
        .ok()
        .map(str::to_owned)
}

/// A signed-in lablink browser: keeps the session cookies, does not follow redirects.
struct Session {
    base: String,
    client: reqwest::Client,
    cookies: std::sync::Mutex<BTreeMap<String, String>>,
}

impl Session {
    fn new(base: &str) -> anyhow::Result<Session> {
        Ok(Session {
            base: base.to_owned(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            cookies: std::sync::Mutex::default(),
        })
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        let jar = self
            .cookies
            .lock()
            .map_err(|_| anyhow::anyhow!("cookie jar poisoned"))?
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let res = req.header(header::COOKIE, jar).send().await?;
        let mut cookies = self
            .cookies
            .lock()
            .map_err(|_| anyhow::anyhow!("cookie jar poisoned"))?;
        for set in res.headers().get_all(header::SET_COOKIE) {
            let set = set.to_str()?;
            let pair = set.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                if value.is_empty() || set.contains("Max-Age=0") {
                    cookies.remove(name);
                } else {
                    cookies.insert(name.to_owned(), value.to_owned());
                }
            }
        }
        Ok(res)
    }

    /// Sends `req`, which must answer with a redirect; returns where to.
    async fn redirect(&self, req: reqwest::RequestBuilder) -> anyhow::Result<String> {
        let res = self.send(req).await?;
        match location(&res) {
            Some(to) if res.status().is_redirection() => Ok(to),
            _ => bail!(
                "expected a redirect, got {}: {}",
                res.status(),
                res.text().await?
            ),
        }
    }

    /// The CSRF token of the form on the page at `path`.
    async fn csrf(&self, path: &str) -> anyhow::Result<String> {
        let page = self
            .send(self.client.get(self.url(path)))
            .await?
            .text()
            .await?;
        let marker = "name=\"csrf_token\" value=\"";
        let start = page.find(marker).context("no CSRF token on the page")? + marker.len();
        let end = page[start..].find('"').context("malformed CSRF token")? + start;
        Ok(page[start..end].to_owned())
    }

    async fn login(&self, email: &str, password: &str) -> anyhow::Result<()> {
        let csrf = self.csrf("/login").await?;
        let req = self.client.post(self.url("/login")).form(&[
            ("csrf_token", csrf.as_str()),
            ("email", email),
            ("password", password),
        ]);
        self.redirect(req).await.context("cannot sign in")?;
        Ok(())
    }
}
