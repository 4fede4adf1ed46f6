//! Integration tests of lablink-exec against real processes, real `git` and a real Git smart
//! HTTP server (`git http-backend` behind Basic auth).

mod dbt;
mod git;
mod process;
mod sandbox;
mod support;
