//! End-to-end tests: the real server on port 0, over real HTTP, on SQLite and PostgreSQL.

mod access;
mod api_tokens;
mod audit;
mod authorization;
mod browser;
mod ci;
mod config;
mod credential;
mod demo;
mod doctor;
mod intake_crash;
mod integration_flow;
mod ip_restrictions;
mod layering;
mod linked_accounts;
mod master_key;
mod operations;
mod repositories;
mod rotation;
mod secrets_at_rest;
mod setup;
mod support;
mod token_refresh;
mod web_security;
mod what_changed;
mod worktrees;
