//! What lablink's tests and benchmarks share, and nothing else uses: a throw-away PostgreSQL
//! database per test, free local ports, and plain `git` for setting up repositories outside the
//! code under test. Only ever a dev-dependency (the layering test checks it).

mod git;
mod postgres;

pub use git::{git, git_command};
pub use postgres::{PG_ADMIN, ThrowawayDatabase};

/// A free local port, for a server whose address must be known before it starts (its public URL,
/// an OAuth redirect URI registered in advance). The port is bound again a moment later.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free local port")
        .port()
}
