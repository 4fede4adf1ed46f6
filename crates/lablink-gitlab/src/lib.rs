//! lablink-gitlab: everything lablink knows about GitLab.
//!
//! - [`transport`]: one [`Instance`] per GitLab (validated base URL, SSRF network policy checked
//!   after DNS resolution, custom CA, no redirects, timeouts) and [`Instance::probe`].
//! - [`oauth`]: authorize URL with PKCE S256, code exchange, refresh, revoke.
//! - [`api`]: typed REST v4 calls with [`Api`] (OAuth bearer or `PRIVATE-TOKEN`), `Link`-header
//!   pagination and a bounded retry for idempotent reads.
//! - [`webhook`]: delivery verification (secret token and Standard Webhooks signature),
//!   delivery keys, and total parsing of event bodies.
//!
//! Every failure is a [`GitLabError`] whose message says what to do. Tokens live in `secrecy`
//! types and never appear in URLs, errors or `Debug` output. This crate shares no code with
//! `gitlab-sim`.

pub mod api;
pub mod error;
pub mod oauth;
pub mod transport;
pub mod webhook;

#[cfg(test)]
mod test_support;

pub use api::Api;
pub use error::GitLabError;
pub use transport::{Instance, InstanceConfig, NetworkPolicy};
