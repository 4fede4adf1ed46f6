//! gitlab-sim over real HTTP: every rule it simulates, checked with reqwest, real git and
//! the fixtures in `shared/gitlab/fixtures/`.

mod access_tokens;
mod auth;
mod binary;
mod browser;
mod common;
mod control;
mod deploy;
mod fixtures;
mod git_http;
mod git_ssh;
mod gitcli;
mod hooks;
mod merge_requests;
mod merge_requests_api;
mod oauth;
mod pages;
mod projects;
mod push_checks;
mod receiver;
mod repository_api;
mod repository_control;
mod statuses;
mod third_party_client;
mod webhooks;
