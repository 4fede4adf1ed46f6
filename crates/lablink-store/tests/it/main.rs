//! Store tests, each on SQLite and on PostgreSQL.

mod accounts;
mod ci;
mod gitlab;
mod keys;
mod migration_rules;
mod newer_database;
mod periodic;
mod queue;
mod support;
