//! Checkout for a run: lablink's path (the repository's bare cache, a worktree per CI job reused
//! by its next run) against a fresh `git clone` of the same 20,000-file dbt repository over the
//! same transport (gitlab-sim's Git smart HTTP, real `git http-backend`), measured in the same run.
//!
//! Each repetition pushes new commits and measures, interleaved:
//! - baseline: `git clone` of the repository (git's defaults, credential in the environment);
//! - new worktree from the spare: a CI job's first run (or a second run of a job at the same
//!   time), warm cache, the commit fetched first, the repository's spare worktree (made in the
//!   background after the previous new worktree) taken and updated in place;
//! - new worktree, no spare ready: the same with the spare held elsewhere, so a worktree is
//!   made from nothing;
//! - reuse, fetch: the job's next run on a new commit (3 files changed, 1 added) in the worktree
//!   its previous run left dirty (dbt output, packages, a stray file, an edited model);
//! - reuse, cached: the same with a commit the cache already has (nothing to fetch).
//!
//! lablink's path runs twice per repetition: with its checkout tuning (`CHECKOUT_TUNING`) and with
//! none, to show what the git settings are worth.
//!
//! Run: `cargo bench -p lablink --bench checkout` (results go to BENCHMARKS.md by hand).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use gitlab_sim::state::{Namespace, NewProject, NewUser, Visibility};
use gitlab_sim::{Sim, SimConfig};
use lablink_exec::{DirClaim, Git, GitConfig, GitCredential, Remote, WorktreeState};
use lablink_service::ci::executor::CiRuntime;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

#[path = "support/big_project.rs"]
mod big_project;
use big_project::{DOMAINS, FILES, LAYERS, generate_project, write};

const RUNS: usize = 7;

/// Plain git for seeding and the baseline: no user or system configuration.
fn git_command(dir: &Path, home: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new("git");
    cmd.current_dir(dir)
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_AUTHOR_NAME", "Bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "Bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com");
    cmd
}

fn git(dir: &Path, home: &Path, args: &[&str]) -> String {
    let out = git_command(dir, home).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// gitlab-sim's repository, seeded through a scratch clone that later commits are made in.
struct Upstream {
    seed: PathBuf,
    bare: PathBuf,
    home: PathBuf,
    commits: usize,
}

impl Upstream {
    /// Changes three models and adds one; returns the new commit's SHA.
    fn push_commit(&mut self) -> String {
        self.commits += 1;
        let n = self.commits;
        for k in 0..3 {
            let i = (n * 37 + k * 1009) % 3000;
            let model = self.seed.join(format!(
                "models/{}/{}/group_{:02}/model_{i:05}.sql",
                DOMAINS[i % DOMAINS.len()],
                LAYERS[i % LAYERS.len()],
                (i / 24) % 40
            ));
            let mut text = std::fs::read_to_string(&model).unwrap();
            text.push_str(&format!("-- change {n}\n"));
            std::fs::write(&model, text).unwrap();
        }
        write(
            &self.seed.join(format!("models/new/model_new_{n}.sql")),
            "select 1 as id\n",
        );
        git(&self.seed, &self.home, &["add", "--all"]);
        git(
            &self.seed,
            &self.home,
            &["commit", "--quiet", "-m", &format!("change {n}")],
        );
        let bare = self.bare.to_str().unwrap().to_owned();
        git(&self.seed, &self.home, &["push", "--quiet", &bare, "main"]);
        git(&self.seed, &self.home, &["rev-parse", "HEAD"])
    }
}

/// What a dbt run leaves in its worktree (dbt's output goes to the run directory in lablink, but
/// a job's own scripts may write anywhere): artifacts, logs, installed packages with their own
/// git checkout, a stray file and an edited model.
fn dirty(worktree: &Path) {
    for k in 0..40 {
        write(
            &worktree.join(format!("target/compiled/warehouse/m{k}.sql")),
            "select 1",
        );
    }
    write(&worktree.join("logs/dbt.log"), "log line\n");
    for k in 0..30 {
        write(
            &worktree.join(format!("dbt_packages/dbt_utils/macros/m{k}.sql")),
            "{% macro m() %}{% endmacro %}",
        );
    }
    write(&worktree.join("dbt_packages/dbt_utils/.git/HEAD"), "x\n");
    write(&worktree.join("scratch.sql"), "select 0");
    write(&worktree.join("dbt_project.yml"), "name: edited\n");
}

struct Variant {
    name: &'static str,
    rt: CiRuntime,
}

#[derive(Default)]
struct Samples {
    baseline: Vec<Duration>,
    spare: Vec<Vec<Duration>>,
    new: Vec<Vec<Duration>>,
    reuse_fetch: Vec<Vec<Duration>>,
    reuse_cached: Vec<Vec<Duration>>,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn timed_checkout(
    rt: &CiRuntime,
    remote: &Remote,
    job: i64,
    sha: &str,
    expected: WorktreeState,
) -> Duration {
    let claim = rt.claim_worktree(job).unwrap();
    let started = Instant::now();
    let state = rt
        .checkout(
            "warehouse",
            remote,
            sha,
            claim.path(),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(state, expected);
    let head = rt.git.head(claim.path()).await.unwrap();
    assert_eq!(head, sha);
    took
}

/// Waits until the spare worktree made in the background after the last checkout is ready.
async fn spare_made(rt: &CiRuntime) {
    while !rt.spare_ready("warehouse") {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();

    let sim = Sim::start(SimConfig::new("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let handle = sim.handle();
    let (user, token) = handle
        .create_user(NewUser {
            username: "bench".into(),
            ..NewUser::default()
        })
        .unwrap();
    let project = handle
        .create_project(NewProject {
            path: "warehouse".into(),
            name: None,
            namespace: Namespace::User(user.id),
            visibility: Some(Visibility::Private),
            description: None,
            default_branch: Some("main".into()),
            archived: false,
        })
        .await
        .unwrap();
    let url = format!("{}/bench/warehouse.git", handle.base_url());

    let seed = dir.path().join("seed");
    std::fs::create_dir_all(&seed).unwrap();
    let generating = Instant::now();
    generate_project(&seed);
    git(&seed, &home, &["init", "--quiet", "-b", "main"]);
    git(&seed, &home, &["add", "--all"]);
    git(&seed, &home, &["commit", "--quiet", "-m", "dbt project"]);
    let mut upstream = Upstream {
        seed,
        bare: handle.repo_path(project.id),
        home: home.clone(),
        commits: 0,
    };
    let first = upstream.push_commit();
    let tracked = git(&upstream.seed, &home, &["ls-files"]).lines().count();
    println!(
        "repository: {tracked} files, generated and pushed in {:.1} s",
        generating.elapsed().as_secs_f64()
    );

    let remote = Remote::new(
        &url,
        Some(GitCredential::new(
            "bench",
            SecretString::from(token.clone()),
        )),
    )
    .unwrap();
    let header = format!(
        "Authorization: Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("bench:{token}"))
    );
    let clone = |target: PathBuf| {
        let mut cmd = git_command(dir.path(), &home);
        cmd.env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", format!("http.{url}.extraHeader"))
            .env("GIT_CONFIG_VALUE_0", &header)
            .args(["clone", "--quiet", &url])
            .arg(target);
        let started = Instant::now();
        let status = cmd.status().unwrap();
        assert!(status.success());
        started.elapsed()
    };

    let tuned = CiRuntime::new(dir.path().join("tuned"), "bench".into());
    let mut plain = CiRuntime::new(dir.path().join("plain"), "bench".into());
    plain.git = Git::new(GitConfig {
        tuning: Vec::new(),
        ..GitConfig::new(dir.path().join("plain/git-home"))
    });
    let variants = [
        Variant {
            name: "lablink (tuned)",
            rt: tuned,
        },
        Variant {
            name: "lablink (no tuning)",
            rt: plain,
        },
    ];

    // Warm-up, not measured: the server's and the page cache's first touch, each variant's bare
    // cache and job 1's worktree.
    clone(dir.path().join("clones/warm-up"));
    for v in &variants {
        timed_checkout(&v.rt, &remote, 1, &first, WorktreeState::Created).await;
    }

    let mut samples = Samples {
        spare: vec![Vec::new(); variants.len()],
        new: vec![Vec::new(); variants.len()],
        reuse_fetch: vec![Vec::new(); variants.len()],
        reuse_cached: vec![Vec::new(); variants.len()],
        ..Samples::default()
    };
    // Directories are kept until the end: deleting 20,000 files right before a measurement
    // slows the next writer down on this machine.
    for run in 0..RUNS {
        samples
            .baseline
            .push(clone(dir.path().join(format!("clones/{run}"))));
        for (i, v) in variants.iter().enumerate() {
            let job = 100 + 2 * (run * variants.len() + i) as i64;
            spare_made(&v.rt).await;
            let sha = upstream.push_commit();
            samples.spare[i]
                .push(timed_checkout(&v.rt, &remote, job, &sha, WorktreeState::Spare).await);

            // Held here, the spare is not there for the run, which makes a worktree anew.
            spare_made(&v.rt).await;
            let held =
                DirClaim::try_claim_named(&v.rt.work_dir.join("worktrees"), "spare-warehouse")
                    .unwrap()
                    .unwrap();
            let new_sha = upstream.push_commit();
            samples.new[i].push(
                timed_checkout(&v.rt, &remote, job + 1, &new_sha, WorktreeState::Created).await,
            );
            drop(held);

            let job_tree = v.rt.claim_worktree(1).unwrap().path().to_owned();
            dirty(&job_tree);
            let next = upstream.push_commit();
            samples.reuse_fetch[i]
                .push(timed_checkout(&v.rt, &remote, 1, &next, WorktreeState::Reused).await);

            dirty(&job_tree);
            samples.reuse_cached[i]
                .push(timed_checkout(&v.rt, &remote, 1, &new_sha, WorktreeState::Reused).await);
        }
        println!("run {} of {RUNS} done", run + 1);
    }

    let per_run = |xs: &[Duration]| {
        xs.iter()
            .map(|d| format!("{:.0}", ms(*d)))
            .collect::<Vec<_>>()
            .join("/")
    };
    let baseline = median(samples.baseline.iter().map(|d| ms(*d)).collect());
    println!();
    println!("{FILES} files, median of {RUNS} runs; ratio = median of per-run ratios to the clone");
    println!(
        "baseline: fresh git clone over HTTP: {baseline:.0} ms ({} ms)",
        per_run(&samples.baseline)
    );
    for (i, v) in variants.iter().enumerate() {
        for (label, xs, target) in [
            (
                "new worktree from the spare (fetch + move + update)",
                &samples.spare[i],
                0.65,
            ),
            (
                "new worktree, no spare (fetch + worktree add)",
                &samples.new[i],
                0.65,
            ),
            (
                "reuse job's worktree, new commit (fetch + update)",
                &samples.reuse_fetch[i],
                0.15,
            ),
            (
                "reuse job's worktree, commit in cache (update)",
                &samples.reuse_cached[i],
                0.15,
            ),
        ] {
            let time = median(xs.iter().map(|d| ms(*d)).collect());
            let ratio = median(
                xs.iter()
                    .zip(&samples.baseline)
                    .map(|(x, b)| ms(*x) / ms(*b))
                    .collect(),
            );
            println!(
                "{}: {label}: {time:.0} ms, ratio {ratio:.3} (target <= {target}) ({} ms)",
                v.name,
                per_run(xs)
            );
        }
    }
    sim.shutdown().await;
}
