//! The command line: `serve`, `migrate`, `doctor`, `credential`, `admin create-user | new-key |
//! rekey | ip-restrictions`, `demo`.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use lablink_core::{Plan, Role};
use lablink_service::accounts::UserInput;
use lablink_service::secrets::random_secret;
use lablink_service::setup::SetupLink;
use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;

use crate::config::{self, Settings};
use crate::startup::{self, Application};
use crate::telemetry;

#[derive(Debug, Parser)]
#[command(name = "lablink", version, about = "Connects GitLab to dbt projects")]
pub struct Cli {
    /// Configuration file (default: ./lablink.toml when present). LABLINK_* variables override it.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (applies pending migrations first).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Run lablink with a simulated GitLab and sample data, on free ports, in a temporary directory.
    #[cfg(feature = "demo")]
    Demo,
    /// Check connected repositories (webhook, tokens, deploy token and key); `--fix` repairs.
    Doctor {
        /// Only this project (its id); default: every project with a connected repository.
        #[arg(long)]
        project: Option<String>,
        /// Repair what can be repaired.
        #[arg(long)]
        fix: bool,
        /// Print the stable JSON report (docs/doctor-json.md) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// A git credential helper: your git asks lablink for GitLab credentials.
    Credential {
        #[command(subcommand)]
        command: CredentialCommand,
    },
    /// Administration from a shell.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum CredentialCommand {
    /// Keep a personal API token for a lablink server (read from the terminal or standard
    /// input) and print the git configuration that uses this helper.
    Login {
        /// lablink's address, like https://lablink.example.com.
        url: String,
    },
    /// git asks for a credential (git-credential(1)).
    Get,
    /// git reports a credential worked: nothing is kept.
    Store,
    /// git reports a credential failed: nothing is kept, so nothing is erased.
    Erase,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a user (and the account, when no account has that name yet).
    CreateUser {
        /// Account name.
        #[arg(long)]
        account: String,
        #[arg(long)]
        email: String,
        /// account_admin, developer or read_only.
        #[arg(long)]
        role: Role,
        /// Username (default: the part of the email before @).
        #[arg(long)]
        username: Option<String>,
        /// Plan of the account if it is created now: developer, starter, enterprise, enterprise_plus.
        #[arg(long, default_value = "developer")]
        plan: Plan,
        /// Read the password from the first line of standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
    /// IP restrictions of an account, from a shell.
    IpRestrictions {
        #[command(subcommand)]
        command: IpRestrictionsCommand,
    },
    /// Put a new master key at the top of the key file, keeping the old one to open what it sealed.
    NewKey,
    /// Re-seal every stored secret under the current master key (safe to interrupt and re-run).
    Rekey {
        /// Only report which key seals what; fail when anything is not under the current key.
        #[arg(long)]
        check: bool,
        /// After a complete run, remove the older keys from the key file.
        #[arg(long, conflicts_with = "check")]
        forget_previous: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum IpRestrictionsCommand {
    /// Stop enforcing an account's IP restrictions (the rules are kept): the way back in for an
    /// admin who is locked out.
    Disable {
        /// Account name.
        #[arg(long)]
        account: String,
    },
}

/// The server's settings, with logging set up as they say.
fn server_settings(path: Option<&std::path::Path>) -> anyhow::Result<Settings> {
    let settings = config::load(path)?;
    telemetry::init_logs(settings.log_format);
    Ok(settings)
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    // The credential helper runs in whatever directory git runs in: it reads no server settings.
    let settings = || server_settings(cli.config.as_deref());
    match cli.command {
        Command::Credential { command } => match command {
            CredentialCommand::Login { url } => crate::credential::login(&url).await,
            CredentialCommand::Get => crate::credential::get().await,
            CredentialCommand::Store | CredentialCommand::Erase => crate::credential::ignore(),
        }
        .context("lablink credential"),
        Command::Serve => serve(settings()?).await,
        // The demo brings its own database, ports and GitLab; only the log format is used.
        #[cfg(feature = "demo")]
        Command::Demo => {
            settings()?;
            crate::demo::run().await
        }
        Command::Migrate => {
            let db = startup::open_database(&settings()?).await?;
            db.migrate()
                .await
                .context("cannot apply database migrations")?;
            println!("migrations applied ({})", db.backend());
            Ok(())
        }
        Command::Doctor { project, fix, json } => {
            let services = offline_services(&settings()?).await?;
            let reports = services.check_connections(project.as_deref(), fix).await?;
            crate::doctor::print(&reports, json)?;
            if reports
                .iter()
                .all(|r| r.healthy() || (fix && crate::doctor::all_repaired(r)))
            {
                Ok(())
            } else {
                Err(anyhow::anyhow!("the doctor found problems"))
            }
        }
        Command::Admin {
            command:
                AdminCommand::IpRestrictions {
                    command: IpRestrictionsCommand::Disable { account },
                },
        } => {
            let services = offline_services(&settings()?).await?;
            services
                .disable_ip_restrictions_of_account(&account)
                .await?;
            println!(
                "IP restrictions of account {account} are disabled (the rules are kept). Running \
                 lablink processes stop enforcing them within {} seconds.",
                lablink_service::ip_restrictions::REFRESH_EVERY.as_secs()
            );
            Ok(())
        }
        Command::Admin {
            command: AdminCommand::NewKey,
        } => crate::rekey::new_key(&settings()?),
        Command::Admin {
            command:
                AdminCommand::Rekey {
                    check,
                    forget_previous,
                },
        } => {
            let settings = settings()?;
            let services = offline_services(&settings).await?;
            if check {
                crate::rekey::check(&services).await
            } else {
                crate::rekey::rekey(&settings, &services, forget_previous).await
            }
        }
        Command::Admin {
            command:
                AdminCommand::CreateUser {
                    account,
                    email,
                    role,
                    username,
                    plan,
                    password_stdin,
                },
        } => {
            let password = if password_stdin {
                let mut line = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut line)
                    .context("cannot read the password from standard input")?;
                (
                    SecretString::from(line.trim_end_matches(['\r', '\n']).to_owned()),
                    false,
                )
            } else {
                (SecretString::from(random_secret()), true)
            };
            let username = username.unwrap_or_else(|| default_username(&email));
            let services = offline_services(&settings()?).await?;
            let (account, user) = services
                .create_user_in_account(
                    &account,
                    plan,
                    UserInput {
                        email,
                        username,
                        password: password.0.clone(),
                        role,
                    },
                )
                .await?;
            println!(
                "created {} ({}) in account {} ({} plan)",
                user.email, user.role, account.name, account.plan
            );
            if password.1 {
                println!("password (shown once): {}", password.0.expose_secret());
            }
            Ok(())
        }
    }
}

/// The part of an email before `@`, reduced to the characters usernames allow.
fn default_username(email: &str) -> String {
    email
        .split('@')
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .collect()
}

/// Use cases without a server, for shell commands.
async fn offline_services(settings: &Settings) -> anyhow::Result<lablink_service::Services> {
    let keys = crate::master_key::load_key_ring(settings)?;
    let db = startup::open_database(settings).await?;
    db.migrate()
        .await
        .context("cannot apply database migrations")?;
    let public_url = match &settings.public_url {
        Some(u) => u.clone(),
        None => url::Url::parse(&format!("http://{}", settings.listen))?,
    };
    Ok(startup::services(settings, db, keys, public_url))
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings).await?;
    match app.setup() {
        SetupLink::Opened(link) => println!(
            "No account exists yet. Open this one-time link to create the first admin:\n  {link}"
        ),
        SetupLink::OpenedByAnotherReplica => println!(
            "No account exists yet. Another replica started just now and printed the one-time \
             setup link; use that one (or restart in a minute for a new link)."
        ),
        SetupLink::NotNeeded => {}
    }
    let stop = CancellationToken::new();
    startup::stop_on_signals(stop.clone());
    app.run_until_stopped(stop).await
}
