//! What lablink's tests and benchmarks share, and nothing else uses: a throw-away PostgreSQL
//! database per test, free local ports, and plain `git` for setting up repositories outside the
//! code under test. Only ever a dev-dependency (the layering test checks it).

mod git;
mod postgres;

pub use git::{git, git_command};
pub use postgres::{PG_ADMIN, ThrowawayDatabase};

/// A free local port, for a server whose address must be known before it starts (its public URL,
/// an OAuth redirect URI registered in advance). The port is bound again a moment later.
///
/// Taken below Linux's ephemeral range (32768–60999), which the kernel hands to every outgoing
/// connection and every `bind(0)`: a port from `bind(0)` is free when asked but may be handed
/// out again before the caller binds it. Below that range only listeners that chose a port
/// compete; each process walks its own stretch of ports (from its pid), each port once.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    const FIRST: u16 = 20_000;
    const SPAN: u16 = 12_000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = (std::process::id() % u32::from(SPAN)) as u16;
    for _ in 0..SPAN {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed) % SPAN;
        let port = FIRST + (start + offset) % SPAN;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free local port between {FIRST} and {}", FIRST + SPAN)
}
