//! Real `git` and OpenSSH for the tests: a clean environment (nothing from the user's
//! configuration), credentials over HTTP Basic sent up front, or an SSH key with a known_hosts
//! file written from the host key the simulator presents.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use gitlab_sim::SimHandle;

/// Output of one git run.
pub struct GitRun {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// How git reaches the simulator and who commits.
#[derive(Clone, Default)]
pub struct Git {
    config: Vec<String>,
    env: Vec<(String, String)>,
}

impl Git {
    /// Commits as `Dev <email>`.
    pub fn new(email: &str) -> Self {
        Self::default().identity("Dev", email)
    }

    pub fn identity(mut self, name: &str, email: &str) -> Self {
        for (key, value) in [
            ("GIT_AUTHOR_NAME", name),
            ("GIT_AUTHOR_EMAIL", email),
            ("GIT_COMMITTER_NAME", name),
            ("GIT_COMMITTER_EMAIL", email),
        ] {
            self.env.retain(|(k, _)| k != key);
            self.env.push((key.into(), value.into()));
        }
        self
    }

    /// HTTP Basic credentials sent with every request.
    pub fn basic(mut self, user: &str, password: &str) -> Self {
        let basic = BASE64.encode(format!("{user}:{password}"));
        self.config
            .push(format!("http.extraHeader=Authorization: Basic {basic}"));
        self
    }

    /// OpenSSH with only this key and only this known_hosts file.
    pub fn ssh(mut self, key: &SshKeyFile) -> Self {
        self.env.push(("GIT_SSH_COMMAND".into(), key.ssh_command()));
        self
    }

    pub async fn run(&self, dir: &Path, args: &[&str]) -> GitRun {
        let mut cmd = tokio::process::Command::new("git");
        for config in &self.config {
            cmd.arg("-c").arg(config);
        }
        let out = cmd
            .args(["-c", "credential.helper="])
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .await
            .expect("git runs");
        GitRun {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs and insists on success.
    pub async fn ok(&self, dir: &Path, args: &[&str]) -> GitRun {
        let run = self.run(dir, args).await;
        assert!(run.ok, "git {args:?} failed: {}", run.stderr);
        run
    }

    /// Writes `file` with fresh content in the clone `work`, commits it with `message`.
    pub async fn commit(&self, work: &Path, file: &str, content: &str, message: &str) {
        let path = work.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("dirs");
        }
        std::fs::write(path, content).expect("write");
        self.ok(work, &["add", "-A"]).await;
        self.ok(work, &["commit", "-q", "-m", message]).await;
    }
}

/// An ed25519 key pair made by ssh-keygen, and a known_hosts file for one simulator.
pub struct SshKeyFile {
    pub private: PathBuf,
    pub public: String,
    /// `SHA256:...` as ssh-keygen prints it.
    pub fingerprint: String,
    known_hosts: PathBuf,
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().expect("runs");
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A new key `name` in `dir` (no passphrase).
pub fn ssh_keygen(dir: &Path, name: &str) -> (PathBuf, String, String) {
    let private = dir.join(name);
    let arg = private.to_str().expect("UTF-8 path");
    run(
        "ssh-keygen",
        &["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", arg],
    );
    let public = std::fs::read_to_string(dir.join(format!("{name}.pub"))).expect("public key");
    let listing = run("ssh-keygen", &["-l", "-E", "sha256", "-f", arg]);
    let fingerprint = listing
        .split_whitespace()
        .nth(1)
        .expect("fingerprint field")
        .to_owned();
    (private, public.trim().to_owned(), fingerprint)
}

impl SshKeyFile {
    /// A new key, trusting the simulator's host key (`[host]:port key`, as OpenSSH writes
    /// entries for a port other than 22).
    pub fn new(dir: &Path, name: &str, sim: &SimHandle) -> Self {
        let (private, public, fingerprint) = ssh_keygen(dir, name);
        let addr = sim.ssh_addr().expect("the simulator serves SSH");
        let known_hosts = dir.join(format!("{name}.known_hosts"));
        std::fs::write(
            &known_hosts,
            format!(
                "[{}]:{} {}\n",
                addr.ip(),
                addr.port(),
                sim.ssh_host_key().expect("host key")
            ),
        )
        .expect("known_hosts");
        Self {
            private,
            public,
            fingerprint,
            known_hosts,
        }
    }

    /// `ssh` with this key only, strict host checking against our known_hosts, no prompts.
    pub fn ssh_command(&self) -> String {
        format!(
            "ssh -F /dev/null -i {} -o IdentitiesOnly=yes -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes -o BatchMode=yes",
            self.private.display(),
            self.known_hosts.display()
        )
    }

    /// Runs `ssh git@host -p port [command]` like a person checking their key.
    pub async fn ssh(&self, sim: &SimHandle, command: &[&str]) -> GitRun {
        let addr = sim.ssh_addr().expect("SSH");
        let mut args: Vec<String> = self
            .ssh_command()
            .split(' ')
            .skip(1)
            .map(str::to_owned)
            .collect();
        args.extend([
            "-p".into(),
            addr.port().to_string(),
            format!("git@{}", addr.ip()),
        ]);
        args.extend(command.iter().map(|c| (*c).to_owned()));
        let out = tokio::process::Command::new("ssh")
            .args(&args)
            .output()
            .await
            .expect("ssh runs");
        GitRun {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}
