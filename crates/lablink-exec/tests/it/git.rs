use std::path::{Path, PathBuf};

use lablink_exec::{
    DirClaim, ExecError, Git, GitConfig, GitCredential, Identity, Remote, WorktreeState,
};
use secrecy::SecretString;

use crate::support::{GitServer, git, push_change, seed_repo};

const USER: &str = "gitlab+deploy-token-7";
const TOKEN: &str = "glpat-t0ken-that-must-not-leak";

/// A server with one repository `group-project` and the driver under test, whose git program
/// is a wrapper that records every argument list it is started with.
struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    work: PathBuf,
    argv_log: PathBuf,
    server: GitServer,
    git: Git,
}

impl Fixture {
    async fn new(files: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("server");
        let work = dir.path().join("work");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        seed_repo(&root, "group-project", files);
        let server = GitServer::start(&root, &[(USER, TOKEN)]).await;

        let argv_log = dir.path().join("argv.log");
        let wrapper = dir.path().join("git-wrapper");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"$@\" >> '{}'\nexec git \"$@\"\n",
                argv_log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(
            &wrapper,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let mut config = GitConfig::new(home);
        config.program = wrapper.into();
        Self {
            _dir: dir,
            root,
            work,
            argv_log,
            server,
            git: Git::new(config),
        }
    }

    fn remote(&self, token: &str) -> Remote {
        Remote::new(
            &self.server.url("group-project"),
            Some(GitCredential::new(
                USER,
                SecretString::from(token.to_owned()),
            )),
        )
        .unwrap()
    }

    fn argv(&self) -> String {
        std::fs::read_to_string(&self.argv_log).unwrap()
    }

    fn server_head(&self) -> String {
        git(&self.root.join("group-project.git"), &["rev-parse", "main"])
    }
}

fn count_objects(repo: &Path) -> (u64, u64) {
    let out = git(repo, &["count-objects", "-v"]);
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    (field("count:"), field("in-pack:"))
}

fn assert_no_secret(text: &str) {
    let basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{USER}:{TOKEN}"),
    );
    assert!(!text.contains(TOKEN), "token leaked: {text}");
    assert!(!text.contains(&basic), "basic credential leaked: {text}");
}

fn me() -> Identity {
    Identity {
        name: "Ada Lovelace".into(),
        email: "ada@example.com".into(),
    }
}

#[tokio::test]
async fn bare_cache_fetches_with_env_credentials_and_then_incrementally() {
    let fx = Fixture::new(150).await;
    let cache = fx.work.join("cache/group-project.git");
    let remote = fx.remote(TOKEN);

    fx.git.ensure_bare_cache(&cache, &remote).await.unwrap();
    let first_head = fx.server_head();
    assert_eq!(git(&cache, &["rev-parse", "main"]), first_head);
    let (loose, packed) = count_objects(&cache);
    assert_eq!(loose, 0);
    assert!(packed >= 152, "{packed} objects in the first pack");

    // Credentials were sent up front: the server never had to ask for them.
    let seen = fx.server.seen();
    assert!(!seen.is_empty());
    assert!(seen.iter().all(|r| r.authorized), "{seen:?}");

    // One changed file is three new objects (commit, tree, blob), not the repository again.
    let second = push_change(&fx.root, "group-project", "second");
    fx.git.ensure_bare_cache(&cache, &remote).await.unwrap();
    assert_eq!(git(&cache, &["rev-parse", "main"]), second);
    assert_eq!(count_objects(&cache), (3, packed));

    // Nothing new: nothing transferred.
    fx.git.ensure_bare_cache(&cache, &remote).await.unwrap();
    assert_eq!(count_objects(&cache), (3, packed));

    // The token is in no argument list, no config file, no URL.
    let argv = fx.argv();
    assert!(argv.contains("fetch"));
    assert_no_secret(&argv);
    assert_no_secret(&std::fs::read_to_string(cache.join("config")).unwrap());
    assert!(!fx.server.url("group-project").contains('@'));
}

#[tokio::test]
async fn merge_request_heads_are_cached_and_commits_fetched_by_sha() {
    let fx = Fixture::new(3).await;
    let bare = fx.root.join("group-project.git");
    let mr_sha = push_change(&fx.root, "group-project", "mr change");
    git(
        &bare,
        &["update-ref", "refs/merge-requests/1/head", &mr_sha],
    );
    // Move main back so the MR commit is only reachable from the MR head.
    git(
        &bare,
        &["update-ref", "refs/heads/main", &format!("{mr_sha}~1")],
    );

    let cache = fx.work.join("cache.git");
    let remote = fx.remote(TOKEN);
    fx.git.fetch_commit(&cache, &remote, &mr_sha).await.unwrap();
    assert!(fx.git.has_commit(&cache, &mr_sha).await.unwrap());
    assert_eq!(
        git(&cache, &["rev-parse", "refs/merge-requests/1/head"]),
        mr_sha
    );

    let missing = "0123456789abcdef0123456789abcdef01234567";
    let err = fx
        .git
        .fetch_commit(&cache, &remote, missing)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ExecError::CommitNotFound(ref sha) if sha == missing),
        "{err}"
    );
}

#[tokio::test]
async fn wrong_token_fails_without_revealing_it() {
    let fx = Fixture::new(1).await;
    let cache = fx.work.join("cache.git");
    let wrong = "glpat-wrong-token-value";
    let err = fx
        .git
        .ensure_bare_cache(&cache, &fx.remote(wrong))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(
            err,
            ExecError::GitFailed {
                operation: "fetch",
                ..
            }
        ),
        "{message}"
    );
    assert!(!message.contains(wrong), "{message}");
    assert!(!fx.argv().contains(wrong));
    // The wrong credential was sent up front and refused, not withheld.
    let seen = fx.server.seen();
    assert!(
        seen.iter().all(|r| r.had_credentials && !r.authorized),
        "{seen:?}"
    );
}

#[tokio::test]
async fn worktrees_are_added_reused_in_place_and_removed() {
    let fx = Fixture::new(3).await;
    let cache = fx.work.join("cache.git");
    let remote = fx.remote(TOKEN);
    fx.git.ensure_bare_cache(&cache, &remote).await.unwrap();
    let first = fx.server_head();
    let tree = fx.work.join("runs/job-1");

    let state = fx
        .git
        .prepare_worktree(&cache, &tree, &first, &[])
        .await
        .unwrap();
    assert_eq!(state, WorktreeState::Created);
    assert_eq!(
        std::fs::read_to_string(tree.join("file0.txt")).unwrap(),
        "content 0\n"
    );
    assert_eq!(fx.git.head(&tree).await.unwrap(), first);

    // Leftovers of the previous run: an edit, an untracked file, kept and dropped directories.
    std::fs::write(tree.join("file1.txt"), "edited").unwrap();
    std::fs::write(tree.join("stray.sql"), "select 1").unwrap();
    std::fs::create_dir_all(tree.join("dbt_packages/pkg")).unwrap();
    std::fs::create_dir_all(tree.join("logs")).unwrap();

    let second = push_change(&fx.root, "group-project", "second");
    fx.git.fetch_commit(&cache, &remote, &second).await.unwrap();
    let state = fx
        .git
        .prepare_worktree(&cache, &tree, &second, &["dbt_packages", "target"])
        .await
        .unwrap();
    assert_eq!(state, WorktreeState::Reused);
    assert_eq!(fx.git.head(&tree).await.unwrap(), second);
    assert_eq!(
        std::fs::read_to_string(tree.join("file0.txt")).unwrap(),
        "second"
    );
    assert_eq!(
        std::fs::read_to_string(tree.join("file1.txt")).unwrap(),
        "content 1\n"
    );
    assert!(!tree.join("stray.sql").exists());
    assert!(!tree.join("logs").exists());
    assert!(tree.join("dbt_packages/pkg").is_dir());

    fx.git.remove_worktree(&cache, &tree).await.unwrap();
    assert!(!tree.exists());
    assert_eq!(
        git(&cache, &["worktree", "list", "--porcelain"])
            .lines()
            .count(),
        2
    );

    // A directory that is not a worktree of the cache is replaced by a fresh one.
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("junk"), "x").unwrap();
    let state = fx
        .git
        .prepare_worktree(&cache, &tree, &first, &[])
        .await
        .unwrap();
    assert_eq!(state, WorktreeState::Created);
    assert!(!tree.join("junk").exists());
}

#[tokio::test]
async fn working_copy_commit_push_pull_reset_and_revert() {
    let fx = Fixture::new(2).await;
    let remote = fx.remote(TOKEN);
    let clone = fx.work.join("workspace/alice");
    fx.git.clone(&remote, &clone).await.unwrap();
    assert_no_secret(&std::fs::read_to_string(clone.join(".git/config")).unwrap());

    fx.git
        .switch_branch(&clone, "feature/x", Some("HEAD"))
        .await
        .unwrap();
    std::fs::write(clone.join("model.sql"), "select 1 as id\n").unwrap();
    let committer = Identity {
        name: "lablink".into(),
        email: "bot@noreply.example.com".into(),
    };
    let sha = fx
        .git
        .commit_all(&clone, "add model", &me(), &committer)
        .await
        .unwrap();
    assert_eq!(
        git(&clone, &["log", "-1", "--format=%an <%ae>|%cn <%ce>"]),
        "Ada Lovelace <ada@example.com>|lablink <bot@noreply.example.com>"
    );
    fx.git
        .push(&clone, &remote, "feature/x", false)
        .await
        .unwrap();
    let bare = fx.root.join("group-project.git");
    assert_eq!(git(&bare, &["rev-parse", "feature/x"]), sha);

    let reverted = fx.git.revert(&clone, &sha, &me(), &me()).await.unwrap();
    assert!(!clone.join("model.sql").exists());
    assert_ne!(reverted, sha);

    // Someone else moves main; the clone fast-forwards to it.
    fx.git.switch_branch(&clone, "main", None).await.unwrap();
    let upstream = push_change(&fx.root, "group-project", "upstream");
    fx.git.pull_ff_only(&clone, &remote, "main").await.unwrap();
    assert_eq!(fx.git.head(&clone).await.unwrap(), upstream);

    // Local work is thrown away by a reset to the remote branch.
    std::fs::write(clone.join("file1.txt"), "local edit").unwrap();
    fx.git
        .commit_all(&clone, "local", &me(), &me())
        .await
        .unwrap();
    std::fs::write(clone.join("untracked.txt"), "x").unwrap();
    fx.git
        .reset_to_remote(&clone, &remote, "main")
        .await
        .unwrap();
    assert_eq!(fx.git.head(&clone).await.unwrap(), upstream);
    assert!(!clone.join("untracked.txt").exists());

    // Diverged histories refuse to fast-forward.
    fx.git
        .commit_all(&clone, "nothing", &me(), &me())
        .await
        .unwrap_err();
    std::fs::write(clone.join("file1.txt"), "diverge").unwrap();
    fx.git
        .commit_all(&clone, "diverge", &me(), &me())
        .await
        .unwrap();
    push_change(&fx.root, "group-project", "upstream 2");
    let err = fx
        .git
        .pull_ff_only(&clone, &remote, "main")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ExecError::GitFailed {
                operation: "merge",
                ..
            }
        ),
        "{err}"
    );

    let argv = fx.argv();
    assert!(argv.contains("push"));
    assert_no_secret(&argv);
    assert_no_secret(&std::fs::read_to_string(clone.join(".git/config")).unwrap());
}

#[tokio::test]
async fn push_rejection_carries_the_remote_message_verbatim() {
    let fx = Fixture::new(1).await;
    let hook = fx.root.join("group-project.git/hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\necho 'GitLab: You are not allowed to push code to protected branches on this project.' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    let remote = fx.remote(TOKEN);
    let clone = fx.work.join("clone");
    fx.git.clone(&remote, &clone).await.unwrap();
    std::fs::write(clone.join("file0.txt"), "change").unwrap();
    fx.git
        .commit_all(&clone, "change", &me(), &me())
        .await
        .unwrap();
    let err = fx
        .git
        .push(&clone, &remote, "main", false)
        .await
        .unwrap_err();
    let ExecError::PushRejected { branch, message } = &err else {
        panic!("expected a rejection, got {err}");
    };
    assert_eq!(branch, "main");
    assert!(
        message.contains(
            "GitLab: You are not allowed to push code to protected branches on this project."
        ),
        "{message}"
    );
    assert!(message.contains("pre-receive hook declined"), "{message}");
    assert_no_secret(&err.to_string());
}

/// Commits `writes` (path, content) and `deletes` in the server's scratch clone and pushes them;
/// returns the new SHA.
fn push_commit(fx: &Fixture, writes: &[(&str, &str)], deletes: &[&str], message: &str) -> String {
    let work = fx.root.join("group-project.seed");
    for (path, content) in writes {
        let file = work.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, content).unwrap();
    }
    for path in deletes {
        git(&work, &["rm", "--quiet", path]);
    }
    git(&work, &["add", "--all"]);
    git(&work, &["commit", "--quiet", "-m", message]);
    let bare = fx.root.join("group-project.git");
    git(&work, &["push", "--quiet", bare.to_str().unwrap(), "main"]);
    git(&work, &["rev-parse", "HEAD"])
}

/// Every file below `dir` except `.git`, as paths relative to it.
fn files_on_disk(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if path == root.join(".git") {
                continue;
            }
            if entry.file_type().unwrap().is_dir() {
                walk(root, &path, out);
            } else {
                let relative = path.strip_prefix(root).unwrap();
                out.push(relative.to_str().unwrap().to_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Asserts that `dir` holds exactly the files of commit `sha` with their content, checked with
/// the test's own git (object ids of the files on disk against the commit's tree), and that its
/// `HEAD` is `sha`.
fn assert_exactly_commit(cache: &Path, dir: &Path, sha: &str) {
    assert_eq!(git(dir, &["rev-parse", "HEAD"]), sha);
    let tree = git(
        cache,
        &["ls-tree", "-r", "--format=%(objectname) %(path)", sha],
    );
    let expected: Vec<(String, String)> = tree
        .lines()
        .map(|l| {
            let (id, path) = l.split_once(' ').unwrap();
            (path.to_owned(), id.to_owned())
        })
        .collect();
    let on_disk = files_on_disk(dir);
    let paths: Vec<&String> = expected.iter().map(|(p, _)| p).collect();
    assert_eq!(
        on_disk.iter().collect::<Vec<_>>(),
        paths,
        "files in {dir:?}"
    );
    let mut args = vec!["hash-object", "--no-filters", "--"];
    args.extend(on_disk.iter().map(String::as_str));
    let ids = git(dir, &args);
    for ((path, want), got) in expected.iter().zip(ids.lines()) {
        assert_eq!(got, want, "content of {path}");
    }
    assert_eq!(
        git(
            dir,
            &[
                "status",
                "--porcelain",
                "--ignored",
                "--untracked-files=all"
            ]
        ),
        ""
    );
}

#[tokio::test]
async fn a_reused_worktree_holds_exactly_the_next_commit_whatever_the_last_run_left() {
    let fx = Fixture::new(1).await;
    let first = push_commit(
        &fx,
        &[
            (".gitignore", "target/\nlogs/\ndbt_packages/\n"),
            ("dbt_project.yml", "name: shop\n"),
            ("models/orders.sql", "select 1 as id\n"),
            ("models/customers.sql", "select 2 as id\n"),
            ("models/old.sql", "select 3 as id\n"),
            ("seeds/countries.csv", "code\nfr\n"),
        ],
        &[],
        "dbt project",
    );
    let cache = fx.work.join("cache.git");
    let remote = fx.remote(TOKEN);
    fx.git.fetch_commit(&cache, &remote, &first).await.unwrap();
    let tree = fx.work.join("worktrees/job-1-0");
    let state = fx
        .git
        .prepare_worktree(&cache, &tree, &first, &[])
        .await
        .unwrap();
    assert_eq!(state, WorktreeState::Created);
    assert_exactly_commit(&cache, &tree, &first);

    // What a run may leave: dbt's ignored output, packages with a git checkout of their own,
    // stray files, edits to tracked files (one of the same size with its mtime put back), a
    // deleted tracked file, and a directory where the next commit has a file.
    for (path, content) in [
        ("target/manifest.json", "{}"),
        ("logs/dbt.log", "log"),
        (
            "dbt_packages/utils/macros/m.sql",
            "{% macro m() %}{% endmacro %}",
        ),
        ("dbt_packages/utils/.git/HEAD", "ref: refs/heads/main\n"),
        ("stray.sql", "select 0"),
        ("models/scratch/tmp.sql", "select 9"),
        ("macros/new_model.sql/inside.txt", "in the way"),
    ] {
        let file = tree.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, content).unwrap();
    }
    std::fs::write(tree.join("models/orders.sql"), "drop table x;\n").unwrap();
    let same_size = tree.join("models/customers.sql");
    let mtime = std::fs::metadata(&same_size).unwrap().modified().unwrap();
    std::fs::write(&same_size, "select 7 as id\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&same_size)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    std::fs::remove_file(tree.join("seeds/countries.csv")).unwrap();

    let second = push_commit(
        &fx,
        &[
            ("models/orders.sql", "select 1 as id, 'new' as status\n"),
            ("macros/new_model.sql", "{% macro n() %}{% endmacro %}\n"),
        ],
        &["models/old.sql"],
        "next commit",
    );
    // The warm cache fetched the new commit by its SHA and keeps it under a ref of its own.
    fx.git.fetch_commit(&cache, &remote, &second).await.unwrap();
    assert_eq!(git(&cache, &["rev-parse", "refs/lablink/fetched"]), second);
    let state = fx
        .git
        .prepare_worktree(&cache, &tree, &second, &[])
        .await
        .unwrap();
    assert_eq!(state, WorktreeState::Reused);
    assert_exactly_commit(&cache, &tree, &second);

    // A worktree broken by a killed git (its index lock left behind) is replaced, not reused.
    let admin = git(&tree, &["rev-parse", "--path-format=absolute", "--git-dir"]);
    std::fs::write(Path::new(&admin).join("index.lock"), "").unwrap();
    std::fs::write(tree.join("stray.sql"), "select 0").unwrap();
    let state = fx
        .git
        .prepare_worktree(&cache, &tree, &first, &[])
        .await
        .unwrap();
    assert_eq!(state, WorktreeState::Created);
    assert_exactly_commit(&cache, &tree, &first);
    assert_eq!(
        git(&cache, &["worktree", "list", "--porcelain"])
            .matches("\nworktree ")
            .count(),
        1,
        "the broken worktree's registration was replaced"
    );
}

#[tokio::test]
async fn concurrent_runs_of_one_job_get_worktrees_of_their_own() {
    let fx = Fixture::new(5).await;
    let cache = fx.work.join("cache.git");
    let remote = fx.remote(TOKEN);
    let first = fx.server_head();
    let second = push_change(&fx.root, "group-project", "second");
    fx.git.ensure_bare_cache(&cache, &remote).await.unwrap();
    let worktrees = fx.work.join("worktrees");

    let a = DirClaim::claim(&worktrees, "job-3").unwrap();
    let b = DirClaim::claim(&worktrees, "job-3").unwrap();
    assert_ne!(a.path(), b.path());
    let (state_a, state_b) = tokio::join!(
        fx.git.prepare_worktree(&cache, a.path(), &first, &[]),
        fx.git.prepare_worktree(&cache, b.path(), &second, &[]),
    );
    assert_eq!(state_a.unwrap(), WorktreeState::Created);
    assert_eq!(state_b.unwrap(), WorktreeState::Created);
    assert_exactly_commit(&cache, a.path(), &first);
    assert_exactly_commit(&cache, b.path(), &second);

    // The next run takes a free worktree and updates it in place.
    let (a_path, b_path) = (a.path().to_owned(), b.path().to_owned());
    drop(b);
    let c = DirClaim::claim(&worktrees, "job-3").unwrap();
    assert_eq!(c.path(), b_path);
    let state = fx
        .git
        .prepare_worktree(&cache, c.path(), &first, &[])
        .await
        .unwrap();
    assert_eq!(state, WorktreeState::Reused);
    assert_exactly_commit(&cache, &b_path, &first);
    assert_exactly_commit(&cache, &a_path, &first);
}

#[tokio::test]
async fn a_claim_held_by_a_process_that_dies_is_released() {
    let dir = tempfile::tempdir().unwrap();
    let worktrees = dir.path().join("worktrees");
    std::fs::create_dir_all(&worktrees).unwrap();
    // Another process (think: a lablink that then crashes) holds slot 0 of job 5.
    let mut holder = std::process::Command::new("flock")
        // Without a fork, the lock lives exactly as long as this one process.
        .args(["--exclusive", "--no-fork"])
        .arg(worktrees.join("job-5-0.lock"))
        .args(["sleep", "600"])
        .spawn()
        .unwrap();
    let mut taken = None;
    for _ in 0..200 {
        let claim = DirClaim::claim(&worktrees, "job-5").unwrap();
        if claim.path() == worktrees.join("job-5-1") {
            taken = Some(claim);
            break;
        }
        drop(claim);
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(taken.is_some(), "slot 0 was never seen as held");

    holder.kill().unwrap();
    holder.wait().unwrap();
    let claim = DirClaim::claim(&worktrees, "job-5").unwrap();
    assert_eq!(claim.path(), worktrees.join("job-5-0"));
}

/// A remote pinned to checked addresses is reached at them whatever the name resolves to (here:
/// a name that resolves to nothing), and git follows no redirect and speaks no other protocol.
#[tokio::test]
async fn git_connects_only_where_it_was_pinned() {
    let fx = Fixture::new(2).await;
    let port = fx
        .server
        .url("x")
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let url = format!("http://gitlab.invalid:{port}/group-project.git");
    let credential = || {
        Some(GitCredential::new(
            USER,
            SecretString::from(TOKEN.to_owned()),
        ))
    };
    // Not pinned: the name does not resolve, so git cannot get there.
    let cache = fx.work.join("unpinned.git");
    let unpinned = Remote::new(&url, credential()).unwrap();
    assert!(fx.git.ensure_bare_cache(&cache, &unpinned).await.is_err());
    // Pinned to the checked address: git connects there.
    let pinned = Remote::new(&url, credential())
        .unwrap()
        .pinned_to(&["127.0.0.1".parse().unwrap()])
        .unwrap();
    let cache = fx.work.join("pinned.git");
    fx.git.ensure_bare_cache(&cache, &pinned).await.unwrap();
    assert!(!git(&cache, &["rev-parse", "refs/heads/main"]).is_empty());
    // Other transports are off: `ext::` would run a command.
    assert!(Remote::new("ext::sh -c id", None).is_err());
}
