//! All of lablink's SQL.
//!
//! [`Db`] is a concrete enum over the two supported backends, chosen at runtime from the
//! database URL. Each aggregate lives in its own module and adds `impl Db` methods; statements are
//! written once in portable SQL and run on either backend through [`on_db!`]. The secret envelope
//! used for every GitLab credential is in [`crypto`].

pub mod accounts;
pub mod api_tokens;
pub mod audit;
pub mod backlog;
pub mod ci_jobs;
pub mod connection_checks;
pub mod crypto;
mod db;
pub mod deliveries;
pub mod dev_credentials;
pub mod doctor;
mod error;
pub mod integrations;
pub mod ip_rules;
pub mod ledger;
pub mod links;
pub mod login_throttle;
pub mod periodic;
pub mod projects;
pub mod queue;
pub mod repositories;
pub mod retention;
pub mod rotation;
pub mod runs;
pub mod sealed;
pub mod sessions;
pub mod setup;
mod sqlite_busy;
pub mod status_outbox;
pub mod users;
pub mod webhook_refusals;
pub mod workspace_commands;
pub mod workspaces;

pub use db::Db;
pub use error::StoreError;
pub use sessions::Principal;

/// Current time in Unix milliseconds, the representation of every timestamp column.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A new application-generated primary key (UUIDv7: time-ordered, portable as TEXT).
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
