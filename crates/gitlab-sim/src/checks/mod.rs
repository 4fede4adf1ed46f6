//! GitLab's checks of ref updates (`Gitlab::Checks::BranchCheck`, EE push rules), implemented
//! once for every way refs move: pushes over HTTP and SSH (the pre-receive hook asks the
//! simulator, as GitLab's hooks ask `/api/v4/internal/allowed`: see [`crate::git_hooks`]) and
//! API operations (`from_web`, e.g. deleting a branch through the API).
//!
//! Messages are GitLab's own (`lib/gitlab/checks/branch_check.rb`,
//! `ee/lib/ee/gitlab/checks/push_rules/*`, `ee/lib/ee/gitlab/checks/file_size_limit_check.rb`,
//! GitLab's QA push-rules spec); git shows them as `remote: GitLab: <message>`.

pub mod facts;

use regex::{Regex, RegexBuilder};

pub use facts::{ChangeFacts, CommitFacts, FileFacts, ObjectDirs};

use crate::state::{Project, PushRule, Pusher, State, access};

/// `Gitlab::Checks::BranchCheck::ERROR_MESSAGES`.
pub mod branch_messages {
    pub const DELETE_DEFAULT: &str = "The default branch of a project cannot be deleted.";
    pub const FORCE_PUSH: &str =
        "You are not allowed to force push code to a protected branch on this project.";
    pub const NON_MASTER_DELETE: &str = "You are not allowed to delete protected branches from this project. Only a project maintainer or owner can delete a protected branch.";
    pub const NON_WEB_DELETE: &str =
        "You can only delete protected branches using the web interface.";
    pub const PUSH_PROTECTED: &str =
        "You are not allowed to push code to protected branches on this project.";
    pub const CREATE_PROTECTED: &str =
        "You are not allowed to create protected branches on this project.";
    pub const NON_WEB_CREATE: &str =
        "You can only create protected branches using the web interface and API.";
    pub const HEX_NAME: &str =
        "You cannot create a branch with a 40-character hexadecimal branch name.";
}

/// File names `prevent_secrets` refuses (GitLab's `files_denylist.yml`, the common entries).
const SECRET_FILES: [&str; 12] = [
    r"\.ssh/",
    r"id_rsa$",
    r"id_dsa$",
    r"id_ecdsa$",
    r"id_ed25519$",
    r".*\.pem$",
    r"\.(key|pkcs12|p12|pfx|asc)$",
    r"\.aws/credentials$",
    r"\.git-credentials$",
    r"\.env$",
    r"secret_token\.rb$",
    r"\.(kdb|kdbx|agilekeychain|keychain)$",
];

/// Who asks and how: the facts that decide, besides the ref updates.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub state: &'a State,
    pub project: &'a Project,
    pub pusher: Pusher,
    /// The update comes from the web UI or the API (not from `git push`).
    pub from_web: bool,
    /// The repository had no branch before (the first push goes to any branch).
    pub empty_repo: bool,
}

/// RE2-like matching as GitLab's `UntrustedRegexp` with `multiline: true`.
fn compile(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .multi_line(true)
        .build()
        .map_err(|e| format!("not valid RE2 syntax: {e}"))
}

fn matches(pattern: &str, text: &str) -> Result<bool, String> {
    Ok(compile(pattern)?.is_match(text))
}

/// A push rule regex as the API validates it (`{"field": ["not valid RE2 syntax: ..."]}`).
pub fn validate_regex(pattern: &str) -> Result<(), String> {
    compile(pattern).map(|_| ())
}

/// Checks every update; the first refusal is GitLab's message for it.
pub fn check(ctx: &Context<'_>, changes: &[ChangeFacts]) -> Result<(), String> {
    for change in changes {
        if let Some(branch) = change.branch() {
            branch_check(ctx, change, branch)?;
        }
        if let Some(rule) = ctx.state.push_rules.get(&ctx.project.id) {
            push_rule_check(ctx, rule, change)?;
        }
    }
    Ok(())
}

/// `Gitlab::Checks::BranchCheck#validate!`.
fn branch_check(ctx: &Context<'_>, change: &ChangeFacts, branch: &str) -> Result<(), String> {
    use branch_messages::*;
    let (state, project) = (ctx.state, ctx.project);
    if change.deletion() && branch == project.default_branch {
        return Err(DELETE_DEFAULT.into());
    }
    if change.creation() && branch.len() == 40 && branch.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(HEX_NAME.into());
    }
    if !state.is_protected(project.id, branch) {
        return Ok(());
    }
    if change.forced && !state.allows_force_push(project.id, branch) {
        return Err(FORCE_PUSH.into());
    }
    let can_push = state.can_push_to_branch(ctx.pusher, project, branch);
    let user = ctx.pusher.user_id();
    if ctx.empty_repo || (!change.creation() && !change.deletion()) {
        return if can_push {
            Ok(())
        } else {
            Err(PUSH_PROTECTED.into())
        };
    }
    if change.creation() {
        if can_push {
            return Ok(());
        }
        if !matches!(ctx.pusher, Pusher::User(_))
            || !state.can_merge_to_branch(user, project, branch)
        {
            return Err(CREATE_PROTECTED.into());
        }
        return if ctx.from_web {
            Ok(())
        } else {
            Err(NON_WEB_CREATE.into())
        };
    }
    // Deletion: Maintainers may delete protected branches, and only through the web or API.
    let can_delete = matches!(ctx.pusher, Pusher::User(_))
        && (state.project_access(user, project) >= access::MAINTAINER
            || state.users.get(&user).is_some_and(|u| u.is_admin));
    if !can_delete {
        return Err(NON_MASTER_DELETE.into());
    }
    if !ctx.from_web {
        return Err(NON_WEB_DELETE.into());
    }
    Ok(())
}

fn set(field: &str) -> bool {
    !field.is_empty()
}

/// EE push rules: branch names, tag deletion, commits, file names and sizes.
fn push_rule_check(ctx: &Context<'_>, rule: &PushRule, change: &ChangeFacts) -> Result<(), String> {
    if let Some(branch) = change.branch()
        && set(&rule.branch_name_regex)
        && !change.deletion()
        && branch != ctx.project.default_branch
        && !matches(&rule.branch_name_regex, branch)?
    {
        return Err(format!(
            "Branch name '{branch}' does not follow the pattern '{}'",
            rule.branch_name_regex
        ));
    }
    if change.tag().is_some() && rule.deny_delete_tag && !ctx.from_web && change.deletion() {
        return Err("You cannot delete a tag".into());
    }
    for commit in &change.commits {
        commit_check(ctx, rule, commit)?;
    }
    file_checks(rule, &change.files)
}

/// `EE::Gitlab::Checks::PushRules::CommitCheck#check_commit`, in GitLab's order.
fn commit_check(ctx: &Context<'_>, rule: &PushRule, commit: &CommitFacts) -> Result<(), String> {
    if set(&rule.commit_message_regex) && !matches(&rule.commit_message_regex, &commit.message)? {
        return Err(format!(
            "Commit message does not follow the pattern '{}'",
            rule.commit_message_regex
        ));
    }
    if set(&rule.commit_message_negative_regex)
        && matches(&rule.commit_message_negative_regex, &commit.message)?
    {
        return Err(format!(
            "Commit message contains the forbidden pattern '{}'",
            rule.commit_message_negative_regex
        ));
    }
    if set(&rule.author_email_regex) {
        for (who, email) in [
            ("Committer", &commit.committer_email),
            ("Author", &commit.author_email),
        ] {
            if !matches(&rule.author_email_regex, email)? {
                return Err(format!(
                    "{who}'s email '{email}' does not follow the pattern '{}'",
                    rule.author_email_regex
                ));
            }
        }
    }
    let pusher = ctx.state.users.get(&ctx.pusher.user_id());
    if rule.commit_committer_check
        && !pusher.is_some_and(|u| u.email.eq_ignore_ascii_case(&commit.committer_email))
    {
        return Err(format!(
            "You cannot push commits for '{}'. You can only push commits if the committer email is one of your own verified emails.",
            commit.committer_email
        ));
    }
    if rule.commit_committer_name_check && pusher.is_none_or(|u| u.name != commit.author_name) {
        return Err("Your git username is inconsistent with GitLab account name".into());
    }
    if rule.reject_unsigned_commits && !ctx.from_web && !commit.signed {
        return Err("Commit must be signed with a GPG key".into());
    }
    if rule.member_check {
        let known = |email: &str| {
            ctx.state
                .users
                .values()
                .any(|u| u.email.eq_ignore_ascii_case(email))
        };
        if !known(&commit.author_email) {
            return Err(format!(
                "Author '{}' is not a member of team",
                commit.author_email
            ));
        }
        if !commit
            .author_email
            .eq_ignore_ascii_case(&commit.committer_email)
            && !known(&commit.committer_email)
        {
            return Err(format!(
                "Committer '{}' is not a member of team",
                commit.committer_email
            ));
        }
    }
    if rule.reject_non_dco_commits
        && !commit
            .message
            .lines()
            .any(|l| l.trim_start().starts_with("Signed-off-by:"))
    {
        return Err("Commit message must contain a DCO signoff".into());
    }
    Ok(())
}

fn file_checks(rule: &PushRule, files: &[FileFacts]) -> Result<(), String> {
    let mut patterns: Vec<&str> = Vec::new();
    if set(&rule.file_name_regex) {
        patterns.push(&rule.file_name_regex);
    }
    if rule.prevent_secrets {
        patterns.extend(SECRET_FILES);
    }
    for file in files.iter().filter(|f| f.new_name) {
        for pattern in &patterns {
            if matches(pattern, &file.path)? {
                return Err(format!(
                    "File name {} was prohibited by the pattern \"{pattern}\".",
                    file.path
                ));
            }
        }
    }
    if rule.max_file_size == 0 {
        return Ok(());
    }
    let limit = rule.max_file_size.saturating_mul(1024 * 1024);
    let oversized: Vec<String> = files
        .iter()
        .filter(|f| f.size > limit)
        .map(|f| format!("- {} ({})", f.blob, human_size(f.size)))
        .collect();
    if oversized.is_empty() {
        return Ok(());
    }
    Err(format!(
        "You are attempting to check in one or more blobs which exceed the {}MiB limit:\n\n{}\n\nTo resolve this error, you must either reduce the size of the above blobs, or utilize LFS.\nYou may use \"git ls-tree -r HEAD | grep $BLOB_ID\" to see the file path.\n\nPlease refer to https://docs.gitlab.com/user/project/repository/push_rules/#validate-files for further information.",
        rule.max_file_size,
        oversized.join("\n")
    ))
}

/// Rails' `number_to_human_size` (binary units, three significant digits).
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if bytes < 1024 {
        return format!("{bytes} Bytes");
    }
    let mut value = bytes as f64;
    let mut unit = "Bytes";
    for u in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = u;
    }
    let digits = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    let text = format!("{value:.digits$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    };
    format!("{text} {unit}")
}

#[cfg(test)]
mod tests {
    use super::human_size;

    #[test]
    fn sizes_read_like_rails() {
        assert_eq!(human_size(100), "100 Bytes");
        assert_eq!(human_size(1024 * 1024 + 1024 * 512), "1.5 MB");
        assert_eq!(human_size(101 * 1024 * 1024), "101 MB");
    }
}
