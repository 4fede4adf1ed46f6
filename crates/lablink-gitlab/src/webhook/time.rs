//! GitLab's two date formats in hook payloads: `2025-08-05 21:48:27 UTC` in captures, RFC 3339
//! in some documentation examples.

use chrono::{DateTime, NaiveDateTime};

/// Unix milliseconds, or `None` when the text is neither format.
pub fn parse_gitlab_time(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.timestamp_millis());
    }
    if let Some(naive) = text.strip_suffix(" UTC") {
        return NaiveDateTime::parse_from_str(naive, "%Y-%m-%d %H:%M:%S")
            .ok()
            .map(|at| at.and_utc().timestamp_millis());
    }
    DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S %z")
        .ok()
        .map(|at| at.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_both_formats() {
        let utc = parse_gitlab_time("2025-08-05 21:48:27 UTC").unwrap();
        let rfc = parse_gitlab_time("2025-08-05T21:48:27Z").unwrap();
        assert_eq!(utc, rfc);
        assert_eq!(utc, 1_754_430_507_000);
        assert_eq!(
            parse_gitlab_time("2025-08-05T23:48:27+02:00"),
            Some(1_754_430_507_000)
        );
        assert_eq!(
            parse_gitlab_time("2025-08-05 23:48:27 +0200"),
            Some(1_754_430_507_000)
        );
        assert_eq!(
            parse_gitlab_time("2013-12-03T17:23:34.123Z"),
            Some(1_386_091_414_123)
        );
    }

    #[test]
    fn rejects_anything_else() {
        for text in [
            "",
            "yesterday",
            "2025-13-45 99:99:99 UTC",
            "2025-08-05",
            "UTC",
        ] {
            assert_eq!(parse_gitlab_time(text), None, "{text}");
        }
    }
}
