//! GitLab's ref wildcards (`release/*`, `*-stable`): used by protected branches and by the
//! push-events branch filter of webhooks.

/// GitLab's wildcard filter: `*` matches any run of characters, everything else is literal.
pub fn matches(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn wildcards_match_like_gitlab() {
        assert!(matches("main", "main"));
        assert!(!matches("main", "main2"));
        assert!(matches("feature/*", "feature/x"));
        assert!(matches("*-stable", "15-0-stable"));
        assert!(matches("a*b*c", "axxbyyc"));
        assert!(!matches("a*b*c", "axxbyy"));
        assert!(!matches("feature/*", "main"));
    }
}
