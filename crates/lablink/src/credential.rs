//! `lablink credential`: a git credential helper (git-credential(1)) that asks a lablink server
//! for a short-lived GitLab credential for each git request. `login` keeps the user's personal
//! API token in their configuration directory (mode 0600); `get` answers git with
//! `username`/`password`; `store` and `erase` succeed without doing anything, so nothing git
//! hands back is ever written to disk by this helper.
//!
//! When lablink refuses (no linked account, IP restrictions, a plan without local git), `get`
//! says why on standard error, which git shows, and answers nothing, so git goes on to the
//! next helper or asks the user.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Where `login` keeps the server's URL and the token.
const FILE: &str = "credential.json";

#[derive(Serialize, Deserialize)]
struct Saved {
    url: String,
    token: String,
}

impl Drop for Saved {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.token);
    }
}

/// `$XDG_CONFIG_HOME/lablink`, or `~/.config/lablink`.
fn config_dir() -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .ok_or_else(|| anyhow!("neither XDG_CONFIG_HOME nor HOME is set"))?,
        )
        .join(".config"),
    };
    Ok(base.join("lablink"))
}

fn server_url(text: &str) -> anyhow::Result<url::Url> {
    let url = url::Url::parse(text.trim()).map_err(|_| {
        anyhow!(
            "`{}` is not a URL: give lablink's address, like https://lablink.example.com",
            text.trim()
        )
    })?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
        bail!(
            "lablink's address starts with https:// (or http://), like https://lablink.example.com"
        );
    }
    Ok(url)
}

fn endpoint(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

/// The server's refusal in its own words (`{"error": ...}`), or the status.
async fn refusal(res: reqwest::Response) -> String {
    let status = res.status();
    res.json::<serde_json::Value>()
        .await
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("lablink answered {status}"))
}

/// Reads the token: from a terminal without echo, otherwise the first line of standard input.
fn read_token(url: &str) -> anyhow::Result<SecretString> {
    let stdin = std::io::stdin();
    let mut line = Zeroizing::new(String::new());
    if stdin.is_terminal() {
        eprint!("Personal API token for {url} (create one under Profile → Personal API tokens): ");
        std::io::stderr().flush().ok();
        let echo_off = rustix::termios::tcgetattr(&stdin).ok().inspect(|saved| {
            let mut quiet = saved.clone();
            quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
            rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &quiet).ok();
        });
        let read = stdin.lock().read_line(&mut line);
        if let Some(saved) = echo_off {
            rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &saved).ok();
        }
        eprintln!();
        read.context("cannot read the token")?;
    } else {
        stdin
            .lock()
            .read_line(&mut line)
            .context("cannot read the token from standard input")?;
    }
    let token = line.trim();
    if token.is_empty() {
        bail!("no token given: create one under Profile → Personal API tokens in lablink");
    }
    Ok(SecretString::from(token.to_owned()))
}

#[derive(Deserialize)]
struct Me {
    email: String,
    account_name: String,
}

#[derive(Deserialize)]
struct LocalGitSetup {
    gitlab_url: String,
    needs_repository_path: bool,
}

/// `lablink credential login <url>`: checks the token with the server, keeps it, and prints how
/// to configure git.
pub async fn login(url: &str) -> anyhow::Result<()> {
    let url = server_url(url)?;
    let base = url.as_str().trim_end_matches('/').to_owned();
    let token = read_token(&base)?;
    let http = reqwest::Client::new();
    let unreachable = |e: reqwest::Error| {
        anyhow!(
            "lablink at {base} did not answer ({}); check the address",
            e.without_url()
        )
    };
    let res = http
        .get(endpoint(&base, "/api/v1/me"))
        .bearer_auth(token.expose_secret())
        .send()
        .await
        .map_err(unreachable)?;
    if !res.status().is_success() {
        bail!("lablink refused the token: {}", refusal(res).await);
    }
    let me: Me = res
        .json()
        .await
        .map_err(|_| anyhow!("{base} does not look like lablink (its answer is not lablink's)"))?;
    let res = http
        .get(endpoint(&base, "/api/v1/git-credential"))
        .bearer_auth(token.expose_secret())
        .send()
        .await
        .map_err(unreachable)?;
    if !res.status().is_success() {
        bail!("{}", refusal(res).await);
    }
    let setup: LocalGitSetup = res
        .json()
        .await
        .context("lablink's answer is not readable")?;
    let path = save(&Saved {
        url: base.clone(),
        token: token.expose_secret().to_owned(),
    })?;
    let exe = std::env::current_exe().context("cannot tell where this program is")?;
    let gitlab = setup.gitlab_url.trim_end_matches('/');
    println!(
        "Signed in to {base} as {} (account {}); the token is kept in {} (readable by you only).",
        me.email,
        me.account_name,
        path.display()
    );
    println!("\nTo let git ask lablink for {gitlab} credentials, run once:\n");
    println!("  git config --global --replace-all credential.{gitlab}.helper ''");
    println!(
        "  git config --global --add credential.{gitlab}.helper '{} credential'",
        exe.display()
    );
    if setup.needs_repository_path {
        println!("  git config --global credential.{gitlab}.useHttpPath true");
    }
    println!("\nThe empty helper keeps other credential helpers from storing what lablink issues.");
    Ok(())
}

/// Writes `saved` to the configuration directory, readable by the user only, replacing the
/// file in one step.
fn save(saved: &Saved) -> anyhow::Result<PathBuf> {
    let dir = config_dir()?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(FILE);
    let partial = dir.join(format!("{FILE}.partial"));
    let _ = std::fs::remove_file(&partial);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    let json = Zeroizing::new(serde_json::to_vec(saved)?);
    file.write_all(&json)?;
    file.sync_all()?;
    std::fs::rename(&partial, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

fn load() -> anyhow::Result<Saved> {
    let path = config_dir()?.join(FILE);
    let text = Zeroizing::new(std::fs::read(&path).map_err(|_| {
        anyhow!(
            "not signed in to lablink ({} is missing): run `lablink credential login <lablink URL>`",
            path.display()
        )
    })?);
    serde_json::from_slice(&text).map_err(|_| {
        anyhow!(
            "{} is damaged: run `lablink credential login <lablink URL>` again",
            path.display()
        )
    })
}

/// git's request: `key=value` lines up to an empty line or the end.
fn read_request(input: impl BufRead) -> BTreeMap<String, String> {
    input
        .lines()
        .map_while(Result::ok)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect()
}

#[derive(Deserialize)]
struct Issued {
    username: String,
    password: String,
    password_expiry_utc: i64,
    identity: String,
}

impl Drop for Issued {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.password);
    }
}

/// A value git reads back whole: one line, no NUL.
fn clean(value: &str) -> anyhow::Result<&str> {
    if value.contains(['\n', '\0']) {
        bail!("lablink's answer holds a line break, which git cannot take");
    }
    Ok(value)
}

/// `lablink credential get`: asks lablink, answers git (or explains on standard error).
pub async fn get() -> anyhow::Result<()> {
    let request = read_request(std::io::stdin().lock());
    let (Some(protocol), Some(host)) = (request.get("protocol"), request.get("host")) else {
        // git always sends both; without them there is nothing to answer.
        return Ok(());
    };
    let saved = load()?;
    let res = reqwest::Client::new()
        .post(endpoint(&saved.url, "/api/v1/git-credential"))
        .bearer_auth(&saved.token)
        .json(&serde_json::json!({
            "protocol": protocol,
            "host": host,
            "path": request.get("path"),
        }))
        .send()
        .await
        .map_err(|e| {
            anyhow!(
                "lablink at {} did not answer ({})",
                saved.url,
                e.without_url()
            )
        })?;
    if !res.status().is_success() {
        bail!("{}", refusal(res).await);
    }
    let issued: Issued = res
        .json()
        .await
        .context("lablink's answer is not readable")?;
    let mut out = Zeroizing::new(String::new());
    out.push_str(&format!("username={}\n", clean(&issued.username)?));
    out.push_str(&format!("password={}\n", clean(&issued.password)?));
    out.push_str(&format!(
        "password_expiry_utc={}\n",
        issued.password_expiry_utc
    ));
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(out.as_bytes())?;
    stdout.flush()?;
    eprintln!("lablink: GitLab sees {}", issued.identity);
    Ok(())
}

/// `store` and `erase`: git's request is read and dropped.
pub fn ignore() -> anyhow::Result<()> {
    let mut sink = Zeroizing::new(Vec::new());
    std::io::stdin().read_to_end(&mut sink)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_stop_at_the_empty_line_and_skip_junk() {
        let input =
            b"protocol=https\nhost=gitlab.example.com\nnonsense\npath=a/b.git\n\nhost=late\n";
        let request = read_request(&input[..]);
        assert_eq!(request["protocol"], "https");
        assert_eq!(request["host"], "gitlab.example.com");
        assert_eq!(request["path"], "a/b.git");
        assert_eq!(request.len(), 3);
    }

    #[test]
    fn values_with_line_breaks_are_refused() {
        assert!(clean("oauth2").is_ok());
        assert!(clean("x\nusername=evil").is_err());
    }

    #[test]
    fn server_urls_must_be_web_addresses() {
        assert!(server_url("https://lablink.example.com").is_ok());
        assert!(server_url("lablink.example.com").is_err());
        assert!(server_url("ftp://lablink.example.com").is_err());
    }
}
