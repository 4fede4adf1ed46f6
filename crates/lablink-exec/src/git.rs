//! The git CLI driver: a bare cache per repository, a worktree per run, and the working-copy
//! operations of the workspace (clone, branch, commit, push, pull, reset, revert).
//!
//! Credentials reach git only through `GIT_CONFIG_*` environment variables of the one invocation
//! that needs them (`http.<remote url>.extraHeader`), never through a URL, an argument or a
//! config file. Every invocation runs with an isolated `HOME`, no system or global config, no
//! credential helper, no hooks and no terminal prompt.

use std::ffi::OsString;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::error::ExecError;
use crate::process::{self, LogLine, ProcessSpec, Stream, Termination};
use crate::redact::Redactor;

/// Refs the bare cache mirrors: branches and GitLab's merge request heads (absent elsewhere,
/// which git accepts for a glob refspec).
const CACHE_REFSPECS: [&str; 2] = [
    "+refs/heads/*:refs/heads/*",
    "+refs/merge-requests/*/head:refs/merge-requests/*/head",
];

/// Where the bare cache keeps the last commit fetched by its SHA.
const FETCHED_REF: &str = "refs/lablink/fetched";

/// A user name and secret token for HTTP Basic authentication against a Git remote.
#[derive(Clone)]
pub struct GitCredential {
    username: String,
    token: SecretString,
}

impl std::fmt::Debug for GitCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitCredential")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl GitCredential {
    /// `username` is `oauth2` for OAuth tokens, anything non-blank for access tokens and the
    /// token's own user name for deploy tokens.
    pub fn new(username: impl Into<String>, token: SecretString) -> Self {
        Self {
            username: username.into(),
            token,
        }
    }

    fn basic(&self) -> String {
        BASE64.encode(format!("{}:{}", self.username, self.token.expose_secret()))
    }

    /// Every form in which the secret could show up in git's output.
    fn secrets(&self) -> [String; 2] {
        [self.token.expose_secret().to_owned(), self.basic()]
    }
}

/// A remote repository: an `http(s)` URL without userinfo, and the credential to use with it;
/// or an `ssh://` URL reached with a private key.
#[derive(Clone, Debug)]
pub struct Remote {
    url: String,
    credential: Option<GitCredential>,
    /// `host:port:address,…` for `http.curloptResolve`: git connects only to these addresses,
    /// checked by the caller's network policy, whatever DNS answers at connection time.
    resolve: Option<String>,
    ssh: Option<SshAccess>,
}

/// How git reaches an SSH remote: the private key's file (mode 0600, the caller's to remove)
/// and the file of known host keys. A host not in it is learnt on first use and pinned after
/// (`StrictHostKeyChecking=accept-new`); a changed host key is refused.
#[derive(Clone, Debug)]
pub struct SshAccess {
    pub key_file: PathBuf,
    pub known_hosts: PathBuf,
}

impl SshAccess {
    /// `GIT_SSH_COMMAND`: only this key, no agent, no user or system configuration, no prompt.
    fn command(&self) -> String {
        let quote = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', r"'\''"));
        format!(
            "ssh -F /dev/null -i {} -o IdentitiesOnly=yes -o IdentityAgent=none \
             -o UserKnownHostsFile={} -o GlobalKnownHostsFile=/dev/null \
             -o StrictHostKeyChecking=accept-new -o BatchMode=yes -o ConnectTimeout=20",
            quote(&self.key_file),
            quote(&self.known_hosts)
        )
    }
}

impl Remote {
    pub fn new(url: &str, credential: Option<GitCredential>) -> Result<Self, ExecError> {
        let parsed = url::Url::parse(url).map_err(|_| ExecError::InvalidInput {
            what: "remote URL",
            value: url.to_owned(),
        })?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(ExecError::CredentialsInUrl);
        }
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ExecError::InvalidInput {
                what: "remote URL scheme",
                value: parsed.scheme().to_owned(),
            });
        }
        Ok(Self {
            url: url.to_owned(),
            credential,
            resolve: None,
            ssh: None,
        })
    }

    /// An `ssh://user@host[:port]/path` remote reached with `access`.
    pub fn ssh(url: &str, access: SshAccess) -> Result<Self, ExecError> {
        let parsed = url::Url::parse(url).map_err(|_| ExecError::InvalidInput {
            what: "remote URL",
            value: url.to_owned(),
        })?;
        if parsed.scheme() != "ssh" || parsed.host_str().is_none() {
            return Err(ExecError::InvalidInput {
                what: "remote URL scheme",
                value: parsed.scheme().to_owned(),
            });
        }
        if parsed.password().is_some() {
            return Err(ExecError::CredentialsInUrl);
        }
        Ok(Self {
            url: url.to_owned(),
            credential: None,
            resolve: None,
            ssh: Some(access),
        })
    }

    /// Pins the remote's host to `addresses` (already checked): git resolves the name to them
    /// and to nothing else.
    pub fn pinned_to(mut self, addresses: &[IpAddr]) -> Result<Self, ExecError> {
        let parsed = url::Url::parse(&self.url).map_err(|_| ExecError::InvalidInput {
            what: "remote URL",
            value: self.url.clone(),
        })?;
        let (Some(host), Some(port)) = (parsed.host_str(), parsed.port_or_known_default()) else {
            return Err(ExecError::InvalidInput {
                what: "remote URL",
                value: self.url.clone(),
            });
        };
        if addresses.is_empty() {
            return Err(ExecError::InvalidInput {
                what: "remote addresses",
                value: host.to_owned(),
            });
        }
        let list = addresses
            .iter()
            .map(|ip| match ip {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => format!("[{v6}]"),
            })
            .collect::<Vec<_>>()
            .join(",");
        // curl wants the host as it appears in the URL, without IPv6 brackets.
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.resolve = Some(format!("{host}:{port}:{list}"));
        Ok(self)
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

/// A name and email used as commit author or committer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub email: String,
}

/// How a run's worktree came to hold its commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorktreeState {
    /// An existing worktree, updated in place ([`Git::prepare_worktree`]).
    Reused,
    /// A new worktree ([`Git::prepare_worktree`]).
    Created,
    /// An idle spare worktree of the repository, moved into place with [`Git::move_worktree`]
    /// and then updated in place.
    Spare,
}

/// Settings shared by every git invocation.
#[derive(Clone, Debug)]
pub struct GitConfig {
    /// The git executable.
    pub program: OsString,
    /// `HOME` (and the parent of `XDG_CONFIG_HOME`) for git: an empty directory of ours, so no
    /// user configuration leaks in.
    pub home: PathBuf,
    pub timeout: Duration,
    pub kill_grace: Duration,
    /// Settings given to every invocation (as `GIT_CONFIG_*` variables) to make checkouts of large
    /// trees cheaper; [`CHECKOUT_TUNING`] by default.
    pub tuning: Vec<(String, String)>,
}

/// Settings meant to make checking out and updating a worktree of many small files cheaper; their
/// effect is measured in `crates/lablink/benches/checkout.rs` (BENCHMARKS.md, "Checkout for a
/// run": it helps when writes are slow, and is within noise otherwise):
/// - `checkout.workers=0`: write files with one worker per core (parallel checkout);
/// - `feature.manyFiles`: index version 4 (prefix-compressed paths) without the trailing hash, and
///   the untracked cache;
/// - `index.threads`: set explicitly so the index records its entry offsets and loads in parallel.
pub const CHECKOUT_TUNING: [(&str, &str); 3] = [
    ("checkout.workers", "0"),
    ("feature.manyFiles", "true"),
    ("index.threads", "true"),
];

impl GitConfig {
    /// `git` from `PATH`, a 10 minute timeout per invocation, a 5 s kill grace and
    /// [`CHECKOUT_TUNING`].
    pub fn new(home: impl Into<PathBuf>) -> Self {
        Self {
            program: "git".into(),
            home: home.into(),
            timeout: Duration::from_secs(600),
            kill_grace: Duration::from_secs(5),
            tuning: CHECKOUT_TUNING
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }
}

/// The git driver. Cheap to clone; one cancellation token stops all of its invocations.
#[derive(Clone, Debug)]
pub struct Git {
    config: Arc<GitConfig>,
    cancel: CancellationToken,
}

/// Output lines of one git invocation, already redacted.
pub(crate) struct Output {
    pub(crate) termination: Termination,
    pub(crate) stdout: Vec<String>,
    pub(crate) stderr: Vec<String>,
}

impl Output {
    fn error_message(&self) -> String {
        let lines = if self.stderr.is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        lines.join("\n").trim().to_owned()
    }
}

impl Git {
    pub fn new(config: GitConfig) -> Self {
        Self {
            config: Arc::new(config),
            cancel: CancellationToken::new(),
        }
    }

    /// A driver whose invocations are killed when `cancel` fires.
    pub fn with_cancellation(&self, cancel: CancellationToken) -> Self {
        Self {
            config: Arc::clone(&self.config),
            cancel,
        }
    }

    /// Creates the bare cache at `cache` if needed and fetches all branches and merge request
    /// heads into it. Later calls only transfer what changed. Callers serialize calls per cache.
    pub async fn ensure_bare_cache(&self, cache: &Path, remote: &Remote) -> Result<(), ExecError> {
        if !cache.join("HEAD").is_file() {
            create_dir(cache)?;
            self.ok("init", cache, ["init", "--bare", "--quiet", "."], None, &[])
                .await?;
        }
        let mut args = vec!["fetch", "--prune", "--no-tags", "--quiet", remote.url()];
        args.extend(CACHE_REFSPECS);
        self.ok("fetch", cache, args, Some(remote), &[]).await?;
        Ok(())
    }

    /// Whether `repo` has commit `sha`.
    pub async fn has_commit(&self, repo: &Path, sha: &str) -> Result<bool, ExecError> {
        check_sha(sha)?;
        let object = format!("{sha}^{{commit}}");
        let out = self
            .call("cat-file", repo, ["cat-file", "-e", &object], None, &[])
            .await?;
        Ok(out.termination.success())
    }

    /// Makes sure the cache has commit `sha`; nothing is fetched when it has it. A warm cache asks
    /// the remote for that commit alone (with protocol v2 git then skips listing the remote's
    /// refs) and records it in [`FETCHED_REF`], so the next fetch negotiates from it. A new
    /// cache, or a remote that refuses unadvertised objects, gets all branches and merge request
    /// heads first.
    pub async fn fetch_commit(
        &self,
        cache: &Path,
        remote: &Remote,
        sha: &str,
    ) -> Result<(), ExecError> {
        let warm = cache.join("HEAD").is_file();
        if warm
            && (self.has_commit(cache, sha).await? || self.fetch_by_sha(cache, remote, sha).await?)
        {
            return Ok(());
        }
        self.ensure_bare_cache(cache, remote).await?;
        if self.has_commit(cache, sha).await?
            || (!warm && self.fetch_by_sha(cache, remote, sha).await?)
        {
            Ok(())
        } else {
            Err(ExecError::CommitNotFound(sha.to_owned()))
        }
    }

    /// Fetches commit `sha` alone into [`FETCHED_REF`]; whether the cache has it afterwards.
    /// Servers may refuse unadvertised objects; that is a `false`, not an error.
    async fn fetch_by_sha(
        &self,
        cache: &Path,
        remote: &Remote,
        sha: &str,
    ) -> Result<bool, ExecError> {
        check_sha(sha)?;
        let refspec = format!("+{sha}:{FETCHED_REF}");
        let out = self
            .call(
                "fetch",
                cache,
                ["fetch", "--no-tags", "--quiet", remote.url(), &refspec],
                Some(remote),
                &[],
            )
            .await?;
        check_finished("fetch", &out)?;
        self.has_commit(cache, sha).await
    }

    /// Whether commit `sha` changes anything under `paths` (repository-relative prefixes, taken
    /// literally) since it forked from `branch`, as a merge request's diff does: `branch` is
    /// fetched into the cache first (callers serialize calls per cache), then compared from the
    /// merge base.
    pub async fn changes_under(
        &self,
        cache: &Path,
        remote: &Remote,
        branch: &str,
        sha: &str,
        paths: &[String],
    ) -> Result<bool, ExecError> {
        check_sha(sha)?;
        let target = self
            .fetch_branch_to(cache, remote, branch, "refs/lablink/targets")
            .await?;
        let range = format!("{target}...{sha}");
        let mut args = vec![
            "diff".to_owned(),
            "--quiet".to_owned(),
            "--no-renames".to_owned(),
            range,
            "--".to_owned(),
        ];
        args.extend(paths.iter().map(|p| format!(":(literal){p}")));
        let out = self.call("diff", cache, args, None, &[]).await?;
        check_finished("diff", &out)?;
        match out.termination.code() {
            Some(0) => Ok(false),
            Some(1) => Ok(true),
            _ => Err(failed("diff", &out)),
        }
    }

    /// Adds a detached worktree of `cache` at `dir` checked out at `sha`.
    pub async fn add_worktree(&self, cache: &Path, dir: &Path, sha: &str) -> Result<(), ExecError> {
        check_sha(sha)?;
        let args: [OsString; 6] = [
            "worktree".into(),
            "add".into(),
            "--detach".into(),
            "--force".into(),
            dir.into(),
            sha.into(),
        ];
        self.ok("worktree add", cache, args, None, &[]).await?;
        Ok(())
    }

    /// Moves the worktree of `cache` at `from` to `to`, which must not exist yet. Fails when
    /// `from` is not a worktree of `cache`.
    pub async fn move_worktree(
        &self,
        cache: &Path,
        from: &Path,
        to: &Path,
    ) -> Result<(), ExecError> {
        let args: [OsString; 4] = ["worktree".into(), "move".into(), from.into(), to.into()];
        self.ok("worktree move", cache, args, None, &[]).await?;
        Ok(())
    }

    /// Removes the worktree at `dir` (whatever its state) and forgets it in `cache`.
    pub async fn remove_worktree(&self, cache: &Path, dir: &Path) -> Result<(), ExecError> {
        if dir.exists() {
            let args: [OsString; 5] = [
                "worktree".into(),
                "remove".into(),
                "--force".into(),
                "--force".into(),
                dir.into(),
            ];
            let out = self.call("worktree remove", cache, args, None, &[]).await?;
            if !out.termination.success() {
                // Not (or no longer) registered: still the caller's directory to get rid of.
                remove_dir(dir)?;
            }
        }
        self.ok("worktree prune", cache, ["worktree", "prune"], None, &[])
            .await?;
        Ok(())
    }

    /// Makes `dir` a worktree of `cache` holding exactly the tracked files of `sha`: the existing
    /// one updated in place when possible, otherwise a new one. Untracked and ignored files go,
    /// except the top-level directories named in `keep` (e.g. `dbt_packages`). The caller holds
    /// `dir` exclusively; `cache` must have `sha`.
    pub async fn prepare_worktree(
        &self,
        cache: &Path,
        dir: &Path,
        sha: &str,
        keep: &[&str],
    ) -> Result<WorktreeState, ExecError> {
        let cleared = self.clear_worktree(cache, dir, keep).await?;
        self.checkout_worktree(cache, dir, sha, cleared).await
    }

    /// The first half of [`Git::prepare_worktree`], which needs no new objects and so may run
    /// while the cache fetches: if `dir` is a worktree of `cache`, removes every untracked and
    /// ignored file from it (except `keep`) and returns `true`. `false` means it must be made anew.
    pub async fn clear_worktree(
        &self,
        cache: &Path,
        dir: &Path,
        keep: &[&str],
    ) -> Result<bool, ExecError> {
        let mut args = vec!["clean".to_owned(), "-ffdxq".to_owned()];
        for name in keep {
            if name.is_empty() || name.contains('/') {
                return Err(ExecError::InvalidInput {
                    what: "directory to keep",
                    value: (*name).to_owned(),
                });
            }
            args.push(format!("--exclude=/{name}"));
        }
        if !self.is_worktree_of(cache, dir).await? {
            return Ok(false);
        }
        // Cleaning before the checkout also clears untracked directories standing where the
        // next commit has files.
        usable_unless_broken(dir, self.ok("clean", dir, args, None, &[]).await)
    }

    /// The second half of [`Git::prepare_worktree`]: checks out `sha` in `dir` cleared by
    /// [`Git::clear_worktree`] (forced, so modified tracked files, which git notices by their stat
    /// data, ctime included, are restored), or makes a new worktree there when `dir` was not
    /// reusable or the checkout fails (e.g. on a lock file left by a killed git).
    pub async fn checkout_worktree(
        &self,
        cache: &Path,
        dir: &Path,
        sha: &str,
        cleared: bool,
    ) -> Result<WorktreeState, ExecError> {
        check_sha(sha)?;
        if cleared {
            let args = ["checkout", "--quiet", "--detach", "--force", sha];
            let checkout = self.ok("checkout", dir, args, None, &[]).await;
            if usable_unless_broken(dir, checkout)? {
                return Ok(WorktreeState::Reused);
            }
        }
        if dir.exists() {
            remove_dir(dir)?;
        }
        // `--force` also drops a stale registration of `dir` in the cache. No `worktree prune`
        // here: it could race with a worktree another run is adding to the same cache.
        self.add_worktree(cache, dir, sha).await?;
        Ok(WorktreeState::Created)
    }

    async fn is_worktree_of(&self, cache: &Path, dir: &Path) -> Result<bool, ExecError> {
        if !dir.join(".git").is_file() {
            return Ok(false);
        }
        let out = self
            .call(
                "rev-parse",
                dir,
                ["rev-parse", "--path-format=absolute", "--git-common-dir"],
                None,
                &[],
            )
            .await?;
        let (Some(common), Ok(cache)) = (out.stdout.first(), cache.canonicalize()) else {
            return Ok(false);
        };
        Ok(out.termination.success() && Path::new(common).canonicalize().ok() == Some(cache))
    }

    /// Clones `remote` into the new directory `dir` (its remote URL, without credentials, is
    /// stored as `origin`).
    pub async fn clone(&self, remote: &Remote, dir: &Path) -> Result<(), ExecError> {
        let parent = dir.parent().ok_or_else(|| ExecError::InvalidInput {
            what: "clone directory",
            value: dir.display().to_string(),
        })?;
        create_dir(parent)?;
        let args: [OsString; 4] = [
            "clone".into(),
            "--quiet".into(),
            remote.url().into(),
            dir.into(),
        ];
        self.ok("clone", parent, args, Some(remote), &[]).await?;
        Ok(())
    }

    /// Switches `dir` to `branch`; with `start`, creates (or resets) the branch at that commit.
    pub async fn switch_branch(
        &self,
        dir: &Path,
        branch: &str,
        start: Option<&str>,
    ) -> Result<(), ExecError> {
        check_ref_name(branch)?;
        let mut args = vec!["switch", "--quiet"];
        match start {
            Some(start) => {
                check_ref_name(start)?;
                args.extend(["-C", branch, start]);
            }
            None => args.push(branch),
        }
        self.ok("switch", dir, args, None, &[]).await?;
        Ok(())
    }

    /// Stages every change in `dir` and commits it; returns the new commit's SHA.
    pub async fn commit_all(
        &self,
        dir: &Path,
        message: &str,
        author: &Identity,
        committer: &Identity,
    ) -> Result<String, ExecError> {
        self.ok("add", dir, ["add", "--all"], None, &[]).await?;
        let env = identity_env(author, committer);
        self.ok(
            "commit",
            dir,
            ["commit", "--quiet", "--no-verify", "-m", message],
            None,
            &env,
        )
        .await?;
        self.head(dir).await
    }

    /// Pushes `HEAD` of `dir` to `branch` of `remote`. A refusal by the remote (protected
    /// branch, push rule, non-fast-forward) comes back as [`ExecError::PushRejected`] with the
    /// remote's own words, e.g. GitLab's `GitLab: ...` pre-receive lines.
    pub async fn push(
        &self,
        dir: &Path,
        remote: &Remote,
        branch: &str,
        force: bool,
    ) -> Result<(), ExecError> {
        check_ref_name(branch)?;
        let refspec = format!("{}HEAD:refs/heads/{branch}", if force { "+" } else { "" });
        let out = self
            .call(
                "push",
                dir,
                ["push", "--porcelain", remote.url(), &refspec],
                Some(remote),
                &[],
            )
            .await?;
        if out.termination.success() {
            return Ok(());
        }
        check_finished("push", &out)?;
        let rejection = rejection_message(&out);
        if rejection.is_empty() {
            return Err(failed("push", &out));
        }
        Err(ExecError::PushRejected {
            branch: branch.to_owned(),
            message: rejection,
        })
    }

    /// Fetches `branch` of `remote` and fast-forwards `dir` to it; fails if histories diverged.
    pub async fn pull_ff_only(
        &self,
        dir: &Path,
        remote: &Remote,
        branch: &str,
    ) -> Result<(), ExecError> {
        let tracking = self.fetch_branch(dir, remote, branch).await?;
        self.ok(
            "merge",
            dir,
            ["merge", "--quiet", "--ff-only", &tracking],
            None,
            &[],
        )
        .await?;
        Ok(())
    }

    /// Fetches `branch` of `remote` and makes `dir` exactly that, dropping local commits and
    /// changes (ignored files stay).
    pub async fn reset_to_remote(
        &self,
        dir: &Path,
        remote: &Remote,
        branch: &str,
    ) -> Result<(), ExecError> {
        let tracking = self.fetch_branch(dir, remote, branch).await?;
        self.ok(
            "reset",
            dir,
            ["reset", "--quiet", "--hard", &tracking],
            None,
            &[],
        )
        .await?;
        self.ok("clean", dir, ["clean", "-ffdq"], None, &[]).await?;
        Ok(())
    }

    /// Commits the reversal of `sha` on top of `HEAD`; returns the new commit's SHA.
    pub async fn revert(
        &self,
        dir: &Path,
        sha: &str,
        author: &Identity,
        committer: &Identity,
    ) -> Result<String, ExecError> {
        check_sha(sha)?;
        let env = identity_env(author, committer);
        self.ok("revert", dir, ["revert", "--no-edit", sha], None, &env)
            .await?;
        self.head(dir).await
    }

    /// The SHA `HEAD` of `dir` points at.
    pub async fn head(&self, dir: &Path) -> Result<String, ExecError> {
        let out = self
            .ok(
                "rev-parse",
                dir,
                ["rev-parse", "--verify", "HEAD"],
                None,
                &[],
            )
            .await?;
        Ok(out.stdout.into_iter().next().unwrap_or_default())
    }

    /// Fetches `branch` into `refs/remotes/origin/<branch>` and returns that ref.
    pub(crate) async fn fetch_branch(
        &self,
        dir: &Path,
        remote: &Remote,
        branch: &str,
    ) -> Result<String, ExecError> {
        self.fetch_branch_to(dir, remote, branch, "refs/remotes/origin")
            .await
    }

    /// Fetches `branch` into `<namespace>/<branch>` and returns that ref.
    async fn fetch_branch_to(
        &self,
        dir: &Path,
        remote: &Remote,
        branch: &str,
        namespace: &str,
    ) -> Result<String, ExecError> {
        check_ref_name(branch)?;
        let tracking = format!("{namespace}/{branch}");
        let refspec = format!("+refs/heads/{branch}:{tracking}");
        self.ok(
            "fetch",
            dir,
            ["fetch", "--no-tags", "--quiet", remote.url(), &refspec],
            Some(remote),
            &[],
        )
        .await?;
        Ok(tracking)
    }

    /// Runs git and fails unless it exited with 0.
    pub(crate) async fn ok<I, S>(
        &self,
        operation: &'static str,
        cwd: &Path,
        args: I,
        remote: Option<&Remote>,
        env: &[(String, String)],
    ) -> Result<Output, ExecError>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let out = self.call(operation, cwd, args, remote, env).await?;
        check_finished(operation, &out)?;
        if out.termination.success() {
            Ok(out)
        } else {
            Err(failed(operation, &out))
        }
    }

    /// Runs git once and collects its redacted output, whatever its exit status.
    pub(crate) async fn call<I, S>(
        &self,
        operation: &'static str,
        cwd: &Path,
        args: I,
        remote: Option<&Remote>,
        env: &[(String, String)],
    ) -> Result<Output, ExecError>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let spec = self.spec(cwd, args, remote, env);
        tracing::debug!(operation, cwd = %cwd.display(), "running git");
        let (tx, mut rx) = mpsc::channel(64);
        let collect = async move {
            let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
            while let Some(LogLine { stream, line }) = rx.recv().await {
                match stream {
                    Stream::Stdout => stdout.push(line),
                    Stream::Stderr => stderr.push(line),
                }
            }
            (stdout, stderr)
        };
        let (termination, (stdout, stderr)) =
            tokio::join!(process::run(&spec, tx, &self.cancel), collect);
        let termination = termination?;
        Ok(Output {
            termination,
            stdout,
            stderr,
        })
    }

    /// The process spec of one git invocation, with its isolated, credential-carrying
    /// environment.
    fn spec<I, S>(
        &self,
        cwd: &Path,
        args: I,
        remote: Option<&Remote>,
        env: &[(String, String)],
    ) -> ProcessSpec
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let home = &self.config.home;
        let mut config: Vec<(String, String)> = vec![
            // An empty helper list: no stored credentials are consulted or saved.
            ("credential.helper".into(), String::new()),
            // Repository content must never run code in our process tree.
            ("core.hooksPath".into(), "/dev/null".into()),
            ("core.fsmonitor".into(), "false".into()),
            // Only the remote it was given, over http(s): no redirect to another place (the
            // address policy checked this one), no other transport (`ext::`, `file://`, ssh).
            ("http.followRedirects".into(), "false".into()),
            ("protocol.allow".into(), "never".into()),
            ("protocol.https.allow".into(), "always".into()),
            ("protocol.http.allow".into(), "always".into()),
        ];
        if let Some(resolve) = remote.and_then(|r| r.resolve.clone()) {
            config.push(("http.curloptResolve".into(), resolve));
        }
        let ssh = remote.and_then(|r| r.ssh.as_ref());
        if ssh.is_some() {
            config.push(("protocol.ssh.allow".into(), "always".into()));
        }
        config.extend(self.config.tuning.iter().cloned());
        let mut secrets = Vec::new();
        if let Some(credential) = remote.and_then(|r| r.credential.as_ref().map(|c| (r, c))) {
            let (remote, credential) = credential;
            // Scoped to this remote's URL so a redirect to another host never receives it.
            config.push((
                format!("http.{}.extraHeader", remote.url()),
                format!("Authorization: Basic {}", credential.basic()),
            ));
            secrets.extend(credential.secrets());
        }
        let mut spec = ProcessSpec::new(self.config.program.clone(), cwd, self.config.timeout)
            .args(args)
            .env("HOME", home.display().to_string())
            .env(
                "XDG_CONFIG_HOME",
                home.join(".config").display().to_string(),
            )
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("LC_ALL", "C")
            .env("GIT_CONFIG_COUNT", config.len().to_string())
            .redactor(Arc::new(Redactor::new(secrets)));
        for (i, (key, value)) in config.into_iter().enumerate() {
            spec = spec
                .env(format!("GIT_CONFIG_KEY_{i}"), key)
                .env(format!("GIT_CONFIG_VALUE_{i}"), value);
        }
        if let Some(ssh) = ssh {
            spec = spec.env("GIT_SSH_COMMAND", ssh.command());
        }
        spec.env.extend(env.iter().cloned());
        spec.inherit_env = vec!["PATH".into()];
        spec.kill_grace = self.config.kill_grace;
        spec
    }
}

/// `true` if a git step on the worktree `dir` succeeded, `false` if git failed on it (the
/// worktree is then replaced); timeouts and cancellations stay errors.
fn usable_unless_broken<T>(dir: &Path, result: Result<T, ExecError>) -> Result<bool, ExecError> {
    match result {
        Ok(_) => Ok(true),
        Err(e @ ExecError::GitFailed { .. }) => {
            tracing::warn!(dir = %dir.display(), error = %e, "replacing a broken worktree");
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

pub(crate) fn identity_env(author: &Identity, committer: &Identity) -> Vec<(String, String)> {
    vec![
        ("GIT_AUTHOR_NAME".into(), author.name.clone()),
        ("GIT_AUTHOR_EMAIL".into(), author.email.clone()),
        ("GIT_COMMITTER_NAME".into(), committer.name.clone()),
        ("GIT_COMMITTER_EMAIL".into(), committer.email.clone()),
    ]
}

/// Timeouts and cancellations are errors of their own, whatever git managed to print.
pub(crate) fn check_finished(operation: &'static str, out: &Output) -> Result<(), ExecError> {
    match out.termination {
        Termination::TimedOut => Err(ExecError::TimedOut { operation }),
        Termination::Cancelled => Err(ExecError::Cancelled { operation }),
        Termination::LimitExceeded(exceeded) => Err(ExecError::LimitExceeded {
            operation,
            exceeded,
        }),
        Termination::Exited(_) => Ok(()),
    }
}

pub(crate) fn failed(operation: &'static str, out: &Output) -> ExecError {
    ExecError::GitFailed {
        operation,
        code: out.termination.code(),
        message: out.error_message(),
    }
}

/// What the remote said about a refused push: its `remote:` lines (where GitLab's pre-receive
/// messages arrive) and the rejected-ref lines of `--porcelain` output.
pub(crate) fn rejection_message(out: &Output) -> String {
    let remote_lines = out.stderr.iter().filter_map(|line| {
        let text = line.strip_prefix("remote:")?.trim();
        (!text.is_empty()).then(|| text.to_owned())
    });
    let rejected_refs = out
        .stdout
        .iter()
        .filter(|line| line.starts_with('!'))
        .map(|line| line.trim_start_matches('!').trim().replace('\t', " "));
    remote_lines
        .chain(rejected_refs)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A full or abbreviated hexadecimal object name; anything else could be read as an option.
pub(crate) fn check_sha(sha: &str) -> Result<(), ExecError> {
    if (4..=64).contains(&sha.len()) && sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(ExecError::InvalidInput {
            what: "commit SHA",
            value: sha.to_owned(),
        })
    }
}

/// Rejects names git would misread (options, refspec syntax); git checks the rest itself.
pub(crate) fn check_ref_name(name: &str) -> Result<(), ExecError> {
    let bad = name.is_empty()
        || name.starts_with('-')
        || name.chars().any(|c| {
            c.is_whitespace()
                || c.is_control()
                || matches!(c, ':' | '+' | '~' | '^' | '?' | '*' | '[' | '\\')
        });
    if bad {
        Err(ExecError::InvalidInput {
            what: "branch name",
            value: name.to_owned(),
        })
    } else {
        Ok(())
    }
}

pub(crate) fn create_dir(path: &Path) -> Result<(), ExecError> {
    std::fs::create_dir_all(path).map_err(|source| ExecError::Io {
        path: path.to_owned(),
        source,
    })
}

fn remove_dir(path: &Path) -> Result<(), ExecError> {
    std::fs::remove_dir_all(path).map_err(|source| ExecError::Io {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_urls_with_credentials_are_refused() {
        assert!(matches!(
            Remote::new("https://oauth2:tok@gitlab.example.com/g/p.git", None),
            Err(ExecError::CredentialsInUrl)
        ));
        assert!(matches!(
            Remote::new("file:///tmp/x", None),
            Err(ExecError::InvalidInput { .. })
        ));
        assert!(Remote::new("https://gitlab.example.com/g/p.git", None).is_ok());
    }

    #[test]
    fn option_like_names_are_refused() {
        assert!(check_sha("--upload-pack=x").is_err());
        assert!(check_sha("abc").is_err());
        assert!(check_sha("0123abcd").is_ok());
        assert!(check_ref_name("-f").is_err());
        assert!(check_ref_name("a:b").is_err());
        assert!(check_ref_name("feature/x-1").is_ok());
    }
}
