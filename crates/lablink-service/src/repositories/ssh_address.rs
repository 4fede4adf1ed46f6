//! The repository's SSH address as GitLab gives it (`git@host:group/project.git`, or
//! `ssh://git@host:2222/group/project.git` on another port), checked before lablink's git ever
//! connects to it: it must be on the GitLab instance's own host.

/// `ssh://user@host[:port]/path` for `given`, or `None` when it is not an SSH address on the
/// host of `instance_url`.
pub fn checked(instance_url: &str, given: &str) -> Option<String> {
    let instance_host = url::Url::parse(instance_url).ok()?.host_str()?.to_owned();
    let given = given.trim();
    let normal = if given.starts_with("ssh://") {
        given.to_owned()
    } else {
        // scp-like: `user@host:path` (no scheme, a colon before the first slash).
        let (user_host, path) = given.split_once(':')?;
        if user_host.contains('/') || path.starts_with("//") {
            return None;
        }
        format!("ssh://{user_host}/{}", path.trim_start_matches('/'))
    };
    let parsed = url::Url::parse(&normal).ok()?;
    let plain_user = parsed
        .username()
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    let on_instance = parsed
        .host_str()
        .is_some_and(|h| h.eq_ignore_ascii_case(&instance_host));
    (parsed.scheme() == "ssh"
        && parsed.password().is_none()
        && plain_user
        && on_instance
        && parsed.path().len() > 1
        && !parsed.path().contains(".."))
    .then_some(normal)
}

#[cfg(test)]
mod tests {
    use super::checked;

    #[test]
    fn gitlabs_forms_become_ssh_urls() {
        assert_eq!(
            checked("https://gitlab.com", "git@gitlab.com:acme/analytics.git").as_deref(),
            Some("ssh://git@gitlab.com/acme/analytics.git")
        );
        assert_eq!(
            checked(
                "http://127.0.0.1:8080",
                "ssh://git@127.0.0.1:2222/acme/analytics.git"
            )
            .as_deref(),
            Some("ssh://git@127.0.0.1:2222/acme/analytics.git")
        );
    }

    #[test]
    fn addresses_off_the_instance_or_odd_are_refused() {
        for given in [
            "git@evil.example:acme/analytics.git",
            "ssh://git@evil.example/acme/analytics.git",
            "ssh://git:pw@gitlab.com/acme/analytics.git",
            "ext::sh -c touch% /tmp/pwned",
            "https://gitlab.com/acme/analytics.git",
            "git@gitlab.com:",
            "-oProxyCommand=x@gitlab.com:a",
            "",
        ] {
            assert_eq!(checked("https://gitlab.com", given), None, "{given}");
        }
    }
}
