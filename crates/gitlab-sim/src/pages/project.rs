//! A project's repository pages: overview (files and README of the default branch), tree and
//! file at a ref, branches, a commit.

use axum::response::Response;

use super::{ProjectRequest, table};
use crate::render::html_escape;
use crate::repo_browse::{self, Commit, TreeEntry};
use crate::web;

/// `(ref, path)` from `tree/<ref>/<path>` segments: refs may contain slashes, so the longest
/// prefix naming a commit wins, as GitLab's ref extraction does.
async fn split_ref(request: &ProjectRequest<'_>, segments: &[&str]) -> Option<(String, String)> {
    let repo = request.sim.repo_path(request.project.id);
    for cut in (1..=segments.len()).rev() {
        let git_ref = segments[..cut].join("/");
        if let Ok(Some(_)) = repo_browse::commit(&repo, &git_ref).await {
            return Some((git_ref, segments[cut..].join("/")));
        }
    }
    None
}

fn entries_table(request: &ProjectRequest<'_>, git_ref: &str, entries: &[TreeEntry]) -> String {
    let base = format!("/{}", request.full_path);
    let mut sorted: Vec<&TreeEntry> = entries.iter().collect();
    // Folders first, as GitLab lists them.
    sorted.sort_by_key(|e| (e.kind != "tree", e.name.clone()));
    let rows: Vec<Vec<String>> = sorted
        .iter()
        .map(|e| {
            let kind = if e.kind == "tree" { "tree" } else { "blob" };
            vec![format!(
                "<a class=\"{kind}-item\" href=\"{base}/-/{kind}/{}/{}\">{}</a>",
                html_escape(git_ref),
                html_escape(&e.path),
                html_escape(&e.name)
            )]
        })
        .collect();
    table("tree", &["Name"], &rows)
}

fn commit_line(request: &ProjectRequest<'_>, c: &Commit) -> String {
    format!(
        "<p class=\"last-commit\"><a href=\"/{}/-/commit/{}\">{}</a> {} · {}</p>",
        html_escape(&request.full_path),
        c.id,
        c.short_id,
        html_escape(&c.title),
        html_escape(&c.author_name)
    )
}

/// `/<project>`: the default branch's files and README, and the clone URLs.
pub async fn overview(request: &ProjectRequest<'_>) -> Response {
    let branch = request.project.default_branch.clone();
    let mut body = format!(
        "<p id=\"clone-urls\">Clone with SSH <code id=\"ssh-url\">{ssh}</code> · HTTPS <code id=\"http-url\">{web}.git</code></p>",
        ssh = html_escape(
            &request
                .sim
                .lock()
                .ssh_url_to_repo(request.sim.base_url(), &request.full_path)
        ),
        web = html_escape(&request.web()),
    );
    if request.may_read_code() {
        body.push_str(&files_at(request, &branch, "").await);
    }
    request.page(&request.project.name, &body)
}

async fn files_at(request: &ProjectRequest<'_>, git_ref: &str, path: &str) -> String {
    let repo = request.sim.repo_path(request.project.id);
    let Ok(Some(entries)) = repo_browse::tree(&repo, git_ref, path, false).await else {
        return "<p id=\"empty-repo\">The repository for this project is empty.</p>".into();
    };
    let mut html = format!(
        "<p>Branch <strong id=\"ref\">{}</strong></p>",
        html_escape(git_ref)
    );
    if let Ok(Some(head)) = repo_browse::commit(&repo, git_ref).await {
        html.push_str(&commit_line(request, &head));
    }
    html.push_str(&entries_table(request, git_ref, &entries));
    let readme = entries
        .iter()
        .find(|e| e.name.eq_ignore_ascii_case("README.md"));
    if let Some(readme) = readme
        && let Ok(Some(blob)) = repo_browse::blob(&repo, git_ref, &readme.path).await
    {
        html.push_str(&format!(
            "<h2>README.md</h2><pre id=\"readme\">{}</pre>",
            html_escape(&String::from_utf8_lossy(&blob.content))
        ));
    }
    html
}

/// `/<project>/-/tree/<ref>/<path>`.
pub async fn tree(request: &ProjectRequest<'_>, segments: &[&str]) -> Response {
    if !request.may_read_code() {
        return web::not_found();
    }
    let Some((git_ref, path)) = split_ref(request, segments).await else {
        return web::not_found();
    };
    let title = if path.is_empty() {
        format!("Files · {git_ref}")
    } else {
        format!("{path} · {git_ref}")
    };
    let body = files_at(request, &git_ref, &path).await;
    request.page(&title, &body)
}

/// `/<project>/-/blob/<ref>/<path>`.
pub async fn blob(request: &ProjectRequest<'_>, segments: &[&str]) -> Response {
    if !request.may_read_code() {
        return web::not_found();
    }
    let Some((git_ref, path)) = split_ref(request, segments).await else {
        return web::not_found();
    };
    let repo = request.sim.repo_path(request.project.id);
    let Ok(Some(blob)) = repo_browse::blob(&repo, &git_ref, &path).await else {
        return web::not_found();
    };
    let body = format!(
        "<p>Branch <strong id=\"ref\">{}</strong> · {} bytes</p><pre id=\"blob-content\">{}</pre>",
        html_escape(&git_ref),
        blob.content.len(),
        html_escape(&String::from_utf8_lossy(&blob.content))
    );
    request.page(&path, &body)
}

/// `/<project>/-/branches`.
pub async fn branches(request: &ProjectRequest<'_>) -> Response {
    if !request.may_read_code() {
        return web::not_found();
    }
    let repo = request.sim.repo_path(request.project.id);
    let Ok(branches) = repo_browse::branches(&repo).await else {
        return web::not_found();
    };
    let base = format!("/{}", request.full_path);
    let rows: Vec<Vec<String>> = {
        let state = request.sim.lock();
        branches
            .iter()
            .map(|(name, head)| {
                let mut badges = String::new();
                if *name == request.project.default_branch {
                    badges.push_str(" <span class=\"badge\">default</span>");
                }
                if state.is_protected(request.project.id, name) {
                    badges.push_str(" <span class=\"badge\">protected</span>");
                }
                vec![
                    format!(
                        "<a href=\"{base}/-/tree/{n}\">{n}</a>{badges}",
                        n = html_escape(name)
                    ),
                    format!(
                        "<a href=\"{base}/-/commit/{}\">{}</a> {}",
                        head.id,
                        head.short_id,
                        html_escape(&head.title)
                    ),
                    html_escape(&head.committed_date),
                ]
            })
            .collect()
    };
    request.page(
        "Branches",
        &table("branches", &["Branch", "Last commit", "Updated"], &rows),
    )
}

/// `/<project>/-/commit/<sha>`: the commit and the files it changed.
pub async fn commit(request: &ProjectRequest<'_>, sha: &str) -> Response {
    if !request.may_read_code() {
        return web::not_found();
    }
    let repo = request.sim.repo_path(request.project.id);
    let Ok(Some(c)) = repo_browse::commit(&repo, sha).await else {
        return web::not_found();
    };
    let parent = c
        .parent_ids
        .first()
        .cloned()
        .unwrap_or_else(|| crate::commits::EMPTY_TREE.to_owned());
    let diffs = repo_browse::diff(&repo, &parent, &c.id, true)
        .await
        .unwrap_or_default();
    let files: String = diffs
        .iter()
        .map(|d| {
            format!(
                "<h3>{}</h3><pre class=\"diff\">{}</pre>",
                html_escape(&d.new_path),
                html_escape(&d.diff)
            )
        })
        .collect();
    let body = format!(
        "<p id=\"commit-sha\">{}</p><p>{} &lt;{}&gt; · {}</p><pre id=\"commit-message\">{}</pre>{files}",
        c.id,
        html_escape(&c.author_name),
        html_escape(&c.author_email),
        html_escape(&c.authored_date),
        html_escape(&c.message)
    );
    request.page(&c.title, &body)
}
