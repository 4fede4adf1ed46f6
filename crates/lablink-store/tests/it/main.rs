//! Store tests, each on SQLite and on PostgreSQL.

mod accounts;
mod jobs;
mod support;
