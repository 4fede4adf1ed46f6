//! HTTP tests of lablink-gitlab against a tiny in-test axum server: request shapes (forms,
//! headers), Link following, Retry-After, error mapping and the network policy.

mod api;
mod oauth;
mod server;
mod tls;
mod transport;
mod webhook;
