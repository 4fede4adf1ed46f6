//! Validation of what people type, with messages that say what is expected.

use crate::UnknownName;

/// Why a value typed by a person was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl From<UnknownName> for Invalid {
    fn from(e: UnknownName) -> Self {
        Invalid(e.to_string())
    }
}

pub const MIN_PASSWORD_LEN: usize = 12;
const MAX_PASSWORD_LEN: usize = 1024;

/// A normalised email address (trimmed, lower case).
pub fn email(input: &str) -> Result<String, Invalid> {
    let e = input.trim().to_lowercase();
    let ok = e.len() <= 254
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(e.split_once('@'), Some((local, domain)) if !local.is_empty() && domain.contains('.') && !domain.contains('@') && !domain.starts_with('.') && !domain.ends_with('.'));
    if ok {
        Ok(e)
    } else {
        Err(Invalid(format!(
            "`{}` is not an email address like name@example.com",
            input.trim()
        )))
    }
}

/// A username: 1 to 64 letters, digits, `.`, `_` or `-`.
pub fn username(input: &str) -> Result<String, Invalid> {
    let u = input.trim();
    let ok = !u.is_empty()
        && u.len() <= 64
        && u.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(u.to_owned())
    } else {
        Err(Invalid(
            "a username is 1 to 64 letters, digits, dots, underscores or dashes".into(),
        ))
    }
}

/// A new password: long enough to resist guessing, short enough to hash cheaply.
pub fn new_password(password: &str) -> Result<(), Invalid> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_LEN {
        Err(Invalid(format!(
            "the password must be at least {MIN_PASSWORD_LEN} characters long"
        )))
    } else if password.len() > MAX_PASSWORD_LEN {
        Err(Invalid(format!(
            "the password must be at most {MAX_PASSWORD_LEN} bytes long"
        )))
    } else {
        Ok(())
    }
}

/// A display name (account name, token name): 1 to 100 characters, no control characters.
pub fn display_name(what: &str, input: &str) -> Result<String, Invalid> {
    let n = input.trim();
    if n.is_empty() || n.chars().count() > 100 || n.chars().any(char::is_control) {
        Err(Invalid(format!(
            "the {what} must be 1 to 100 characters, without control characters"
        )))
    } else {
        Ok(n.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(email(" Ada@Example.com ").unwrap(), "ada@example.com");
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "a@b@c.com",
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn usernames() {
        assert_eq!(username("ada.l-1_x").unwrap(), "ada.l-1_x");
        assert!(username("").is_err());
        assert!(username("a b").is_err());
        assert!(username(&"a".repeat(65)).is_err());
    }

    #[test]
    fn passwords() {
        assert!(new_password("correct horse").is_ok());
        assert_eq!(
            new_password("short").unwrap_err().to_string(),
            "the password must be at least 12 characters long"
        );
        assert!(new_password(&"x".repeat(2000)).is_err());
    }

    #[test]
    fn display_names() {
        assert_eq!(display_name("account name", " Acme ").unwrap(), "Acme");
        assert!(display_name("account name", "  ").is_err());
        assert!(display_name("account name", "a\u{7}b").is_err());
    }
}
