//! Webhook deliveries from GitLab (gitlab-api.md §3): verification, the deduplication key and
//! total parsing of event bodies.

mod delivery;
mod fields;
mod parse;
mod time;
mod verify;

pub use delivery::delivery_key;
pub use parse::{
    Event, MergeRequestAction, MergeRequestEvent, NoteEvent, Parsed, PushEvent, parse,
};
pub use time::parse_gitlab_time;
pub use verify::{SIGNATURE_TOLERANCE_SECS, Verified, VerifyError, precheck, verify, verify_at};
