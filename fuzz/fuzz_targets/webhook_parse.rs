//! Webhook parsing is total: no input may panic. The first byte picks the `X-Gitlab-Event`
//! header, the rest is the body.

#![no_main]

use lablink_gitlab::webhook::{delivery_key, parse};
use libfuzzer_sys::fuzz_target;

const HEADERS: [Option<&str>; 6] = [
    None,
    Some("Merge Request Hook"),
    Some("Push Hook"),
    Some("Tag Push Hook"),
    Some("Note Hook"),
    Some("System Hook"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let header = HEADERS[usize::from(selector) % HEADERS.len()];
    let _ = parse(header, body);
    let _ = delivery_key(&http::HeaderMap::new(), body);
});
