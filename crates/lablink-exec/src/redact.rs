//! Redaction of known secret values from process output before it is stored or shown.

/// What replaces every occurrence of a secret.
pub const REDACTED: &str = "[REDACTED]";

/// Replaces known secret strings in text with [`REDACTED`].
///
/// Built once per process from the plaintext secrets the process can see (tokens, passwords and
/// derived forms such as a Basic authorization value).
#[derive(Clone, Default)]
pub struct Redactor {
    /// Longest first, so a secret that contains another one is replaced whole.
    secrets: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

impl Redactor {
    /// A redactor for these secrets; empty strings are ignored (they would match everywhere).
    pub fn new<I, S>(secrets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            .map(Into::into)
            .filter(|s| !s.is_empty())
            .collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Self { secrets }
    }

    /// Length in bytes of the longest secret (0 when there is none).
    pub fn longest_secret(&self) -> usize {
        self.secrets.first().map_or(0, String::len)
    }

    /// `text` with every secret replaced.
    pub fn redact(&self, text: &str) -> String {
        self.redact_prefix(text, usize::MAX).0
    }

    /// Redacts `text` and keeps only what starts within its first `limit` bytes; returns the
    /// result and whether anything was cut off.
    ///
    /// A secret that starts before `limit` is replaced whole even when it reaches past it, so
    /// truncation never leaks the beginning of a secret.
    pub fn redact_prefix(&self, text: &str, limit: usize) -> (String, bool) {
        let mut out = String::with_capacity(text.len().min(limit));
        let mut pos = 0;
        while pos < text.len() {
            if pos >= limit {
                return (out, true);
            }
            let rest = &text[pos..];
            if let Some(secret) = self.secrets.iter().find(|s| rest.starts_with(s.as_str())) {
                out.push_str(REDACTED);
                pos += secret.len();
                continue;
            }
            let ch = rest.chars().next().unwrap_or_default();
            out.push(ch);
            pos += ch.len_utf8();
        }
        (out, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_every_occurrence_longest_first() {
        let r = Redactor::new(["abc", "abcdef", ""]);
        assert_eq!(r.redact("x abcdef y abc z"), "x [REDACTED] y [REDACTED] z");
        assert_eq!(r.redact("nothing here"), "nothing here");
    }

    #[test]
    fn truncation_never_leaks_a_secret_prefix() {
        let r = Redactor::new(["supersecret"]);
        let (out, cut) = r.redact_prefix("0123supersecret tail", 6);
        assert_eq!(out, "0123[REDACTED]");
        assert!(cut);
        let (out, cut) = r.redact_prefix("short", 6);
        assert_eq!(out, "short");
        assert!(!cut);
    }

    #[test]
    fn handles_multibyte_text() {
        let r = Redactor::new(["tök"]);
        assert_eq!(r.redact("ä tök ü"), "ä [REDACTED] ü");
    }
}
