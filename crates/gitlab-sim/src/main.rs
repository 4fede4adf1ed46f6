//! The `gitlab-sim` binary: runs the simulator until Ctrl-C.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use gitlab_sim::{Sim, SimConfig};

/// A faithful GitLab simulator (models GitLab 19.x) for tests and demos.
#[derive(Debug, Parser)]
#[command(name = "gitlab-sim", version)]
struct Args {
    /// Address to listen on; port 0 picks a free port. The first line of stdout is
    /// `gitlab-sim listening on http://HOST:PORT`.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Address Git over SSH listens on (default: the --listen host, a free port). The second
    /// line of stdout is `gitlab-sim ssh on ssh://git@HOST:PORT host key ssh-ed25519 AAAA...`.
    #[arg(long)]
    ssh_listen: Option<SocketAddr>,
    /// Directory for the bare git repositories of projects (default: a new temporary directory).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// JSON file to load the state from at start (if it exists) and save it to on Ctrl-C or
    /// `POST /-/sim/save`. Use it together with the same --data-dir.
    #[arg(long)]
    state_file: Option<PathBuf>,
    /// Start in gitlab.com Free mode (project access tokens cannot be created).
    #[arg(long)]
    gitlab_com_free: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "gitlab_sim=info".into()),
        )
        .init();
    let args = Args::parse();
    let config = SimConfig {
        listen: args.listen,
        data_dir: args.data_dir,
        state_file: args.state_file,
    };
    let ssh_listen = args
        .ssh_listen
        .unwrap_or_else(|| SocketAddr::new(args.listen.ip(), 0));
    let sim = match Sim::start_with_ssh(config, Some(ssh_listen)).await {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("gitlab-sim: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.gitlab_com_free {
        sim.handle().set_gitlab_com_free(true);
    }
    println!("gitlab-sim listening on {}", sim.base_url());
    if let (Some(ssh), Some(key)) = (sim.handle().ssh_url(), sim.handle().ssh_host_key()) {
        println!("gitlab-sim ssh on {ssh} host key {key}");
    }
    let _ = std::io::stdout().flush();
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("gitlab-sim: cannot wait for Ctrl-C: {e}");
    }
    if let Err(e) = sim.handle().save() {
        eprintln!("gitlab-sim: cannot save state: {e}");
    }
    sim.shutdown().await;
    ExitCode::SUCCESS
}
