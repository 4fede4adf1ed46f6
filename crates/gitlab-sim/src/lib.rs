//! gitlab-sim: a faithful, stateful GitLab (19.x) for tests and demos.
//!
//! # Module layout
//!
//! - [`state`]: the whole world in one [`State`] (users, groups, projects, members, tokens,
//!   hooks with their delivery log, merge requests with notes, pipelines and commit statuses,
//!   OAuth applications/grants/tokens, settings, faults, clock offset). [`SimHandle`] owns it
//!   behind one mutex: `handle.lock()` gives `&mut State`; never hold the guard across `.await`.
//!   Time comes from `State::now()` (wall clock + an offset tests advance). Secrets are stored
//!   only as SHA-256 digests in `State::secrets` (hook tokens excepted: GitLab must send them).
//!   `state::setup` holds the set-up operations (also exposed as `SimHandle` methods).
//!   [`SimHandle::subscribe`] is a broadcast of [`state::SimEvent`]s (e.g. note created) for the
//!   webhook engine.
//! - `server`: [`Sim::start`] binds, builds the router (`server::app`) and serves it.
//! - `api/`: REST API v4 under `/api/v4`, one module per area (`users`, `projects`, `groups`,
//!   `members`, `hooks`, `access_tokens`, `deploy_tokens`, `deploy_keys`, `statuses`,
//!   `merge_requests`); routes are listed in `api::router`. Shared helpers: `api::visible_project`
//!   (404 for invisible projects, effective access level), `auth::Auth` (extractor for
//!   `PRIVATE-TOKEN` / Bearer / `access_token`, with scope checks), `params::Params` (query,
//!   form and JSON body, Grape coercions), `error::ApiError` (GitLab's error bodies),
//!   `paginate` (offset pagination headers), `render` (JSON shapes of every entity).
//! - `oauth/`: `/oauth/authorize` (sign-in and consent HTML pages), `/oauth/token`,
//!   `/oauth/token/info`, `/oauth/revoke`, `/users/sign_in`.
//! - `control/`: the control API under `/-/sim` (see README.md).
//! - `middleware`: fault injection (latency, 5xx, 429, dropped connection) and rate limiting.
//! - `request_log`: counts requests by method, route pattern and status
//!   (`SimHandle::request_counts`, `GET /-/sim/requests`).
//! - `repo`: the real bare repositories (`<data-dir>/repositories/<project id>.git`, created with
//!   `git init --bare` and default branch `main`); `SimHandle::repo_path` gives the path.
//! - `ssh_key`: SSH public key validation and fingerprints (the `ssh-key` crate).
//! - `git_access`: who may fetch or push (`Gitlab::GitAccess`), shared by `git_http` (smart HTTP
//!   through `git http-backend`) and `ssh` (a `russh` server running `git upload-pack` /
//!   `receive-pack`). `git_hooks`: the pre-receive hook of both, which calls back
//!   `/-/sim/internal/allowed`; `checks`: GitLab's branch checks and push rules, evaluated there
//!   and for API ref updates.
//! - `webhooks/`, `changes`, `commits`, `merging`, `forks`, `control/repository`: webhook delivery,
//!   and the pushes / merge-request changes / merges / forks that fire hooks (see their docs).
//! - `repo_browse`: branches, trees, files and comparisons read with git, for the repository API
//!   (`api::repository`) and the pages.
//! - `web`, `pages/`: session cookie, CSRF and layout of the HTML pages; the project, merge
//!   request and settings pages at GitLab's paths (project paths arrive through `git_http`'s
//!   catch-all route).
//!
//! Adding an area (e.g. Git smart HTTP or webhook delivery): write a module exposing
//! `fn router() -> Router<SimHandle>` and merge it in `server::app` (or nest it in
//! `api::router`); use `SimHandle` for state and `repo` for git.

// `render::project_full` is one large `json!` literal (GitLab's project entity has ~130 keys).
#![recursion_limit = "1024"]

pub mod api;
pub mod auth;
pub mod changes;
pub mod checks;
pub mod commits;
pub mod control;
pub mod error;
pub mod forks;
pub mod git_access;
pub mod git_hooks;
pub mod git_http;
pub mod merging;
pub mod middleware;
pub mod oauth;
pub mod pages;
pub mod paginate;
pub mod params;
pub mod render;
pub mod repo;
pub mod repo_browse;
pub mod request_log;
pub mod secrets;
pub mod server;
pub mod ssh;
pub mod ssh_key;
pub mod state;
pub mod web;
pub mod webhooks;
pub mod wildcard;

pub use server::{Sim, SimConfig, StartError};
pub use state::{SimHandle, State};

/// The GitLab version the simulator models (sent as `User-Agent: GitLab/<version>`).
pub const GITLAB_VERSION: &str = "19.0.0";
