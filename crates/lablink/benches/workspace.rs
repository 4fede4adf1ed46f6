//! The workspace on the 20,000-file dbt repository of the checkout benchmark, against plain git
//! on the same repository and simulator, measured in the same run (interleaved repetitions):
//! - opening a workspace (this replica has the repository's bare cache but no checkout of the
//!   workspace: a restart on a new machine, another replica, a new user) — the page's whole
//!   answer, file tree included — against a fresh `git clone` of the repository: with the
//!   repository's spare checkout ready (made in the background after the previous open), and
//!   cold (no spare: every file written);
//! - the file tree with git status of an open workspace with two saved changes (what every page
//!   load and the API's `GET .../workspace` do);
//! - commit and sync of a 3-file change (lablink checks the user's GitLab role and the branch,
//!   commits as the user and pushes with their token) against `git commit -a && git push` of a
//!   3-file change in a plain clone.
//!
//! The clone baseline reads the simulator's repository straight from disk (`git clone --no-local
//! file://…`, after a repack, as GitLab keeps repositories): the same pack transfer and checkout
//! without the simulator's HTTP in between, so it is the cheapest clone there is.
//!
//! Run: `cargo bench -p lablink --bench workspace` (results go to BENCHMARKS.md by hand).

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;

#[path = "support/big_project.rs"]
mod big_project;
// Shared with the other benchmarks, which use the parts this one does not.
#[allow(dead_code)]
#[path = "support/ci_world.rs"]
mod ci_world;
mod support;
use big_project::{FILES, generate_project};
use ci_world::{CiWorld, Setup};

const RUNS: usize = 7;

fn git(dir: &Path, home: &Path, args: &[&str], header: Option<(&str, &str)>) {
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
    if let Some((url, value)) = header {
        cmd.env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", format!("http.{url}.extraHeader"))
            .env("GIT_CONFIG_VALUE_0", value);
    }
    let out = cmd.args(args).output().unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Three models of the generated project (existing files), changed in round `n`.
fn three_models(n: usize) -> [String; 3] {
    let model = |i: usize| {
        format!(
            "models/{}/{}/group_{:02}/model_{i:05}.sql",
            big_project::DOMAINS[i % big_project::DOMAINS.len()],
            big_project::LAYERS[i % big_project::LAYERS.len()],
            (i / 24) % 40
        )
    };
    [model(n * 3), model(n * 3 + 1), model(n * 3 + 2)]
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let seed = dir.path().join("seed");
    std::fs::create_dir_all(&home).unwrap();
    generate_project(&seed);
    let world = CiWorld::start(Setup {
        postgres: false,
        settings: &[],
        seed: &seed,
    })
    .await;
    // GitLab keeps repositories packed; the simulator's seed leaves loose objects, which would
    // make the clone baseline pack 20,000 objects on every clone.
    let bare = world.gl().repo_path(world.gitlab_project);
    git(&bare, &home, &["repack", "-adq"], None);
    let local = format!("file://{}", bare.display());
    let services = &world.services;
    let me = &world.principal;
    let project = &world.project_id;
    let url = format!("{}/analytics/warehouse.git", world.sim.base_url());
    let header = format!(
        "Authorization: Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("alice:{}", world.author_token))
    );
    let auth = Some((url.as_str(), header.as_str()));

    // Warm-up: the first open fetches the bare cache (as the first CI run would have).
    let view = services.workspace(me, project).await.unwrap();
    let checkout = world.data_dir().join("workspaces").join(&view.workspace_id);
    services
        .create_workspace_branch(me, project, "bench/workspace")
        .await
        .unwrap();
    services.workspace(me, project).await.unwrap();
    let plain = dir.path().join("plain");
    git(
        dir.path(),
        &home,
        &["clone", "--quiet", &url, "plain"],
        auth,
    );
    git(
        &plain,
        &home,
        &["switch", "--quiet", "-c", "bench/plain"],
        None,
    );

    let repository_id = world
        .lablink_hook_url
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let spare = world
        .data_dir()
        .join("workspaces")
        .join(format!("spare-{repository_id}"));
    let spare_ready = || async {
        while !spare.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let (mut clone, mut open, mut cold, mut tree, mut sync, mut plain_sync) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for n in 0..RUNS {
        let target = dir.path().join(format!("clone-{n}"));
        let started = Instant::now();
        git(
            dir.path(),
            &home,
            &[
                "clone",
                "--quiet",
                "--no-local",
                &local,
                target.to_str().unwrap(),
            ],
            None,
        );
        clone.push(started.elapsed());
        std::fs::remove_dir_all(&target).unwrap();

        spare_ready().await;
        std::fs::remove_dir_all(&checkout).unwrap();
        let started = Instant::now();
        let view = services.workspace(me, project).await.unwrap();
        open.push(started.elapsed());
        assert!(view.files.len() + 10 >= FILES, "{} files", view.files.len());

        spare_ready().await;
        std::fs::remove_dir_all(&spare).unwrap();
        std::fs::remove_dir_all(&checkout).unwrap();
        let started = Instant::now();
        services.workspace(me, project).await.unwrap();
        cold.push(started.elapsed());
        spare_ready().await;

        let [a, b, c] = three_models(n + 1);
        services
            .save_workspace_file(me, project, &a, &format!("select {n} as id\n"))
            .await
            .unwrap();
        services
            .save_workspace_file(me, project, &b, &format!("select {n} as id\n"))
            .await
            .unwrap();
        let started = Instant::now();
        let view = services.workspace(me, project).await.unwrap();
        tree.push(started.elapsed());
        assert_eq!(view.changes, 2);

        services
            .save_workspace_file(me, project, &c, &format!("select {n} as id\n"))
            .await
            .unwrap();
        let started = Instant::now();
        services
            .commit_and_sync(me, project, &format!("change {n}"), None)
            .await
            .unwrap();
        sync.push(started.elapsed());

        let [a, b, c] = three_models(n + 100);
        for path in [&a, &b, &c] {
            std::fs::write(plain.join(path), format!("select {n} as id\n")).unwrap();
        }
        let started = Instant::now();
        git(
            &plain,
            &home,
            &["commit", "--quiet", "-am", &format!("plain {n}")],
            None,
        );
        git(
            &plain,
            &home,
            &["push", "--quiet", &url, "HEAD:refs/heads/bench/plain"],
            auth,
        );
        plain_sync.push(started.elapsed());
    }

    let ratio = |a: &[Duration], b: &[Duration]| {
        median(a.iter().zip(b).map(|(a, b)| ms(*a) / ms(*b)).collect())
    };
    let p50 = |v: &[Duration]| median(v.iter().map(|d| ms(*d)).collect());
    println!(
        "{FILES} files, median of {RUNS} runs; ratio = median of per-run ratios to the baseline"
    );
    println!("fresh git clone (from disk)     {:8.1} ms", p50(&clone));
    println!(
        "open a workspace, spare ready   {:8.1} ms  ratio {:.2} (target <= 0.3)",
        p50(&open),
        ratio(&open, &clone)
    );
    println!(
        "open a workspace, no spare      {:8.1} ms  ratio {:.2}",
        p50(&cold),
        ratio(&cold, &clone)
    );
    println!(
        "file tree with git status       {:8.1} ms  (target p50 <= 150 ms)",
        p50(&tree)
    );
    println!(
        "git commit -a && git push       {:8.1} ms",
        p50(&plain_sync)
    );
    println!(
        "commit and sync, 3 files        {:8.1} ms  ratio {:.2} (target <= 1.3)",
        p50(&sync),
        ratio(&sync, &plain_sync)
    );
    world.stop().await;
}
