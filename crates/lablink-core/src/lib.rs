//! Domain vocabulary and rules of lablink. No IO: plain types and pure functions only.

pub mod access;
pub mod ci;
pub mod ip_range;
pub mod ip_rules;
pub mod names;
pub mod plan;
pub mod report;
pub mod role;
pub mod run;
mod text_enum;
pub mod validate;

pub use access::AccessLevel;
pub use plan::Plan;
pub use role::Role;

/// A value that did not parse into one of the domain's closed sets of names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a valid {what}; expected one of: {}", expected.join(", "))]
pub struct UnknownName {
    pub what: &'static str,
    pub value: String,
    pub expected: &'static [&'static str],
}
