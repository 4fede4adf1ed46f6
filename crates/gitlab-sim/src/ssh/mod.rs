//! Git over SSH, as GitLab's sshd + gitlab-shell serve it: user `git`, public-key
//! authentication with users' SSH keys (`/user/keys`) and deploy keys, and exec requests
//! `git-upload-pack '<path>.git'` / `git-receive-pack '<path>.git'` run by real git on the bare
//! repository. Access is decided by [`crate::git_access`] and pushes go through the same hooks
//! as over HTTP ([`crate::git_hooks`]). Refusals are printed the way gitlab-shell prints them
//! (`internal/console`: a `remote:` box of `=` rulers), exit status 1.

pub mod host_key;

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use russh::keys::{PrivateKey, ssh_key};
use russh::server::{Auth, Config, Handler, Msg, Server as _, Session};
use russh::{Channel, ChannelId, ChannelWriteHalf, MethodKind, MethodSet};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::git_access::{self, Actor, Refusal, Service};
use crate::git_hooks;
use crate::ssh_key::sha256_fingerprint;
use crate::state::{SimHandle, State};

/// Starts serving SSH on `listener` until `stop` fires.
pub fn spawn(sim: SimHandle, listener: TcpListener, key: PrivateKey, stop: CancellationToken) {
    let config = Arc::new(Config {
        server_id: russh::SshId::Standard("SSH-2.0-GitLab-SSHD".into()),
        methods: MethodSet::from(&[MethodKind::PublicKey][..]),
        // Failed authentications take constant time; short, as tests try unknown keys.
        auth_rejection_time: Duration::from_millis(50),
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![key],
        ..Config::default()
    });
    tokio::spawn(async move {
        let mut server = Server { sim };
        tokio::select! {
            result = server.run_on_socket(config, &listener) => {
                if let Err(e) = result {
                    tracing::error!(error = %e, "gitlab-sim SSH server stopped");
                }
            }
            () = stop.cancelled() => {}
        }
    });
}

struct Server {
    sim: SimHandle,
}

impl russh::server::Server for Server {
    type Handler = Connection;

    fn new_client(&mut self, _peer: Option<std::net::SocketAddr>) -> Connection {
        Connection {
            sim: self.sim.clone(),
            actor: None,
            channels: HashMap::new(),
            protocol: HashMap::new(),
        }
    }
}

/// One SSH connection: who authenticated, and its session channels until they run a command.
struct Connection {
    sim: SimHandle,
    actor: Option<Actor>,
    channels: HashMap<ChannelId, Channel<Msg>>,
    /// `GIT_PROTOCOL` sent by the client (`SendEnv`), per channel: protocol v2.
    protocol: HashMap<ChannelId, String>,
}

/// The user's key, or a deploy key, with this fingerprint; expired keys and blocked users
/// authenticate nobody.
fn actor_for_key(state: &State, key: &ssh_key::PublicKey) -> Option<Actor> {
    let fingerprint = sha256_fingerprint(key);
    let now = state.now();
    let live = |expires: Option<crate::state::Time>| expires.is_none_or(|t| t > now);
    let user_key = state.ssh_keys.values().find(|k| {
        k.fingerprint_sha256 == fingerprint && live(k.expires_at) && k.usage_type != "signing"
    });
    if let Some(k) = user_key {
        return state
            .users
            .get(&k.user_id)
            .filter(|u| u.state == "active")
            .map(|u| Actor::User {
                user_id: u.id,
                read: true,
                write: true,
            });
    }
    state
        .deploy_keys
        .values()
        .find(|k| k.fingerprint_sha256 == fingerprint && live(k.expires_at))
        .map(|k| Actor::DeployKey {
            key_id: k.id,
            user_id: k.user_id,
        })
}

impl Handler for Connection {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        key: &ssh_key::PublicKey,
    ) -> Result<Auth, Self::Error> {
        let known = user == "git" && actor_for_key(&self.sim.lock(), key).is_some();
        Ok(if known { Auth::Accept } else { Auth::reject() })
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: &ssh_key::PublicKey,
    ) -> Result<Auth, Self::Error> {
        let mut state = self.sim.lock();
        let actor = actor_for_key(&state, key).filter(|_| user == "git");
        if let Some(Actor::User { .. }) = actor {
            let (fingerprint, now) = (sha256_fingerprint(key), state.now());
            if let Some(k) = state
                .ssh_keys
                .values_mut()
                .find(|k| k.fingerprint_sha256 == fingerprint)
            {
                k.last_used_at = Some(now);
            }
        }
        self.actor = actor;
        Ok(if actor.is_some() {
            Auth::Accept
        } else {
            Auth::reject()
        })
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        self.channels.insert(channel.id(), channel);
        Ok(true)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if name == "GIT_PROTOCOL" {
            self.protocol.insert(channel, value.to_owned());
            session.channel_success(channel)?;
        } else {
            session.channel_failure(channel)?;
        }
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        let name = match self.actor {
            Some(Actor::User { user_id, .. }) => self
                .sim
                .lock()
                .users
                .get(&user_id)
                .map_or_else(|| "Anonymous".to_owned(), |u| format!("@{}", u.username)),
            _ => "Anonymous".to_owned(),
        };
        if let Some(channel) = self.channels.remove(&channel) {
            let (_, write) = channel.split();
            tokio::spawn(async move {
                let _ = write
                    .data(format!("Welcome to GitLab, {name}!\n").as_bytes())
                    .await;
                finish(&write, 0).await;
            });
        }
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let (Some(open), Some(actor)) = (self.channels.remove(&channel), self.actor) else {
            session.channel_failure(channel)?;
            return Ok(());
        };
        session.channel_success(channel)?;
        let command = String::from_utf8_lossy(data).into_owned();
        let exec = Exec {
            sim: self.sim.clone(),
            actor,
            protocol: self.protocol.remove(&channel),
        };
        tokio::spawn(exec.run(command, open));
        Ok(())
    }
}

/// `git-upload-pack '/group/project.git'` (also `git upload-pack`, quotes and slash optional)
/// → the service and the project path.
fn parse_command(command: &str) -> Option<(Service, String)> {
    let command = command.trim();
    let (verb, rest) = command.split_once(' ')?;
    let (verb, rest) = if verb == "git" {
        let (sub, path) = rest.trim_start().split_once(' ')?;
        (format!("git-{sub}"), path)
    } else {
        (verb.to_owned(), rest)
    };
    let service = match verb.as_str() {
        "git-upload-pack" => Service::Fetch,
        "git-receive-pack" => Service::Push,
        _ => return None,
    };
    let path = rest.trim().trim_matches(|c| c == '\'' || c == '"');
    let path = path.trim_start_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    (!path.is_empty()).then(|| (service, path.to_owned()))
}

/// gitlab-shell's `console.DisplayWarningMessage`: the message in a box of `remote:` lines.
fn warning_box(message: &str) -> String {
    let ruler = "=".repeat(72);
    let mut out = format!("remote: \nremote: {ruler}\nremote: \n");
    for line in message.lines() {
        out.push_str(&format!("remote: {line}\n"));
    }
    out.push_str(&format!("remote: \nremote: {ruler}\nremote: \n"));
    out
}

async fn finish(write: &ChannelWriteHalf<Msg>, status: u32) {
    let _ = write.eof().await;
    let _ = write.exit_status(status).await;
    let _ = write.close().await;
}

/// One exec request of an authenticated connection.
struct Exec {
    sim: SimHandle,
    actor: Actor,
    protocol: Option<String>,
}

impl Exec {
    async fn run(self, command: String, channel: Channel<Msg>) {
        let (mut read, write) = channel.split();
        let refuse = |message: &str| {
            let text = warning_box(message);
            let write = &write;
            async move {
                let _ = write.extended_data(1, text.as_bytes()).await;
                finish(write, 1).await;
            }
        };
        let Some((service, path)) = parse_command(&command) else {
            return refuse("Disallowed command").await;
        };
        let checked = {
            let state = self.sim.lock();
            match state.find_project(&path) {
                None => Err(Refusal::NotFound),
                Some(project) => git_access::authorize(&state, project, self.actor, service)
                    .map(|pusher| (project.id, pusher)),
            }
        };
        let (project_id, pusher) = match checked {
            Ok(found) => found,
            Err(Refusal::Forbidden(message)) => return refuse(message).await,
            Err(Refusal::NotFound | Refusal::Unauthorized) => {
                return refuse(git_access::NOT_FOUND).await;
            }
        };
        let push = pusher.map(|p| (p, self.sim.prepare_push(project_id, p)));
        let status = match self
            .serve(
                service,
                project_id,
                push.as_ref().map(|(_, p)| p),
                &mut read,
                &write,
            )
            .await
        {
            Ok(status) => status,
            Err(e) => {
                tracing::error!(error = %e, "git over SSH failed");
                1
            }
        };
        if let Some((pusher, prepared)) = push {
            let updates = prepared.finish().await;
            if !updates.is_empty() {
                self.sim.after_git_push(project_id, pusher, &updates).await;
            }
        }
        finish(&write, status).await;
    }

    /// Runs `git upload-pack` / `git receive-pack` with the channel as its stdio.
    async fn serve(
        &self,
        service: Service,
        project_id: u64,
        push: Option<&git_hooks::PreparedPush>,
        read: &mut russh::ChannelReadHalf,
        write: &ChannelWriteHalf<Msg>,
    ) -> std::io::Result<u32> {
        let hooks = git_hooks::hooks_dir(&self.sim).await?;
        let verb = match service {
            Service::Fetch => "upload-pack",
            Service::Push => "receive-pack",
        };
        let mut cmd = tokio::process::Command::new("git");
        cmd.arg(verb)
            .arg(self.sim.repo_path(project_id))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(git_hooks::git_config_env(&hooks))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(protocol) = &self.protocol {
            cmd.env("GIT_PROTOCOL", protocol);
        }
        if let Some(push) = push {
            cmd.envs(push.env());
        }
        let mut child = cmd.spawn()?;
        let (Some(mut stdin), Some(mut stdout), Some(mut stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(std::io::Error::other("git's pipes are missing"));
        };
        let mut out = write.make_writer();
        let mut err = write.make_writer_ext(Some(1));
        let to_git = async {
            let _ = tokio::io::copy(&mut read.make_reader(), &mut stdin).await;
            // The client's EOF is git's: it ends the request.
            drop(stdin);
        };
        let from_git = async {
            let (a, b) = tokio::join!(
                tokio::io::copy(&mut stdout, &mut out),
                tokio::io::copy(&mut stderr, &mut err)
            );
            let _ = out.flush().await;
            let _ = err.flush().await;
            a.and(b)
        };
        tokio::pin!(to_git, from_git);
        // Git ends the exchange; the client may keep its side open until it sees the exit.
        let mut client_done = false;
        let copied = loop {
            tokio::select! {
                copied = &mut from_git => break copied,
                () = &mut to_git, if !client_done => client_done = true,
            }
        };
        copied?;
        let status = child.wait().await?;
        Ok(status.code().map_or(1, |c| c as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_commands_are_recognised() {
        assert_eq!(
            parse_command("git-upload-pack '/team/analytics.git'"),
            Some((Service::Fetch, "team/analytics".into()))
        );
        assert_eq!(
            parse_command("git receive-pack 'team/sub/analytics'"),
            Some((Service::Push, "team/sub/analytics".into()))
        );
        assert_eq!(parse_command("rm -rf /"), None);
        assert_eq!(parse_command("git-upload-pack ''"), None);
    }

    #[test]
    fn refusals_are_boxed_like_gitlab_shell() {
        let text = warning_box("No.");
        assert!(text.starts_with("remote: \nremote: ====="));
        assert!(text.contains("\nremote: No.\n"));
    }
}
