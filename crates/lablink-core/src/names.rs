//! Names users and tests rely on (PRODUCT.md, "Names and addresses"). Keep them stable.

/// The temporary schema a CI run builds into: `lablink_pr_<job_id>_<mr_iid>`.
pub fn ci_schema_name(job_id: i64, mr_iid: i64) -> String {
    format!("lablink_pr_{job_id}_{mr_iid}")
}

/// The development schema a user's workspace commands build into: `lablink_dev_<username>`,
/// the username lowercased with anything but letters, digits and `_` made `_`, cut to fit
/// PostgreSQL's 63-byte names.
pub fn dev_schema_name(username: &str) -> String {
    let mut name = String::from("lablink_dev_");
    name.extend(username.chars().map(|c| match c.to_ascii_lowercase() {
        c @ ('a'..='z' | '0'..='9' | '_') => c,
        _ => '_',
    }));
    name.truncate(63);
    name
}

/// The name of the project access token lablink creates in GitLab.
pub fn project_access_token_name(gitlab_project_id: i64) -> String {
    format!("lablink token for GitLab project: {gitlab_project_id}")
}

/// The commit status name lablink posts for a CI job.
pub fn commit_status_name(job_name: &str) -> String {
    format!("lablink/{job_name}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn development_schemas_are_plain_identifiers() {
        assert_eq!(
            super::dev_schema_name("Ada.Lovelace"),
            "lablink_dev_ada_lovelace"
        );
        assert_eq!(super::dev_schema_name("jo-ë"), "lablink_dev_jo__");
        assert_eq!(super::dev_schema_name(&"x".repeat(100)).len(), 63);
    }

    use super::*;

    #[test]
    fn names_match_the_product_document() {
        assert_eq!(ci_schema_name(12, 7), "lablink_pr_12_7");
        assert_eq!(
            project_access_token_name(4242),
            "lablink token for GitLab project: 4242"
        );
        assert_eq!(commit_status_name("CI check"), "lablink/CI check");
    }
}
