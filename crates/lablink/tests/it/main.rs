//! End-to-end tests: the real server on port 0, over real HTTP, on SQLite and PostgreSQL.

mod access;
mod api_tokens;
mod authorization;
mod config;
mod operations;
mod setup;
mod support;
