//! Store tests, each on SQLite and on PostgreSQL.

mod accounts;
mod ci;
mod gitlab;
mod keys;
mod periodic;
mod queue;
mod support;
