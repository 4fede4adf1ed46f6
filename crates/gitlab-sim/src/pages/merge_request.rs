//! `/<project>/-/merge_requests/<iid>`: title, state, branches, description, commits, and the
//! pipeline widget listing the head pipeline's external statuses with their links (how
//! `lablink/ci` shows a run).

use axum::response::Response;

use super::{ProjectRequest, table};
use crate::render::html_escape;
use crate::repo_browse;
use crate::web;

fn status_badge(status: &str) -> String {
    format!("<span class=\"badge status-{status}\">{status}</span>")
}

pub async fn show(request: &ProjectRequest<'_>, iid: &str) -> Response {
    let mr = {
        let state = request.sim.lock();
        iid.parse()
            .ok()
            .and_then(|iid| state.merge_request(request.project.id, iid).cloned())
    };
    let Some(mr) = mr else {
        return web::not_found();
    };
    if !request.may_read_code() {
        return web::not_found();
    }
    let repo = request.sim.repo_path(request.project.id);
    let range = format!("{}..{}", mr.base_sha, mr.sha);
    let commits = repo_browse::log(&repo, &range, None, 100)
        .await
        .unwrap_or_default();
    let base = format!("/{}", request.full_path);
    let commit_rows: Vec<Vec<String>> = commits
        .iter()
        .map(|c| {
            vec![
                format!("<a href=\"{base}/-/commit/{}\">{}</a>", c.id, c.short_id),
                html_escape(&c.title),
                html_escape(&c.author_name),
            ]
        })
        .collect();
    let (header, widget) = {
        let state = request.sim.lock();
        let author = state
            .users
            .get(&mr.author_id)
            .map(|u| u.name.clone())
            .unwrap_or_default();
        let source_path = state
            .projects
            .get(&mr.source_project())
            .filter(|p| p.id != mr.project_id)
            .map(|p| format!("{}:", state.project_full_path(p)))
            .unwrap_or_default();
        let header = format!(
            "<p id=\"mr-state\">{state_badge} <strong>!{iid}</strong> opened by {author}</p>\
             <p id=\"mr-branches\">Requested to merge <code>{source}{source_branch}</code> into <code>{target}</code></p>\
             <div id=\"mr-description\"><pre>{description}</pre></div>",
            state_badge = status_badge(mr.state.as_str()),
            iid = mr.iid,
            author = html_escape(&author),
            source = html_escape(&source_path),
            source_branch = html_escape(&mr.source_branch),
            target = html_escape(&mr.target_branch),
            description = html_escape(&mr.description),
        );
        let widget = match state.head_pipeline(&[mr.source_project(), mr.project_id], &mr.sha) {
            None => "<div id=\"pipeline-widget\"><p>No pipeline for this merge request.</p></div>"
                .to_owned(),
            Some(head) => {
                let rows: Vec<Vec<String>> = head
                    .jobs
                    .iter()
                    .map(|job| {
                        let name = match &job.target_url {
                            Some(url) => format!(
                                "<a class=\"job-link\" href=\"{}\">{}</a>",
                                html_escape(url),
                                html_escape(&job.name)
                            ),
                            None => html_escape(&job.name),
                        };
                        vec![
                            name,
                            status_badge(job.status.as_str()),
                            html_escape(job.description.as_deref().unwrap_or_default()),
                        ]
                    })
                    .collect();
                format!(
                    "<div id=\"pipeline-widget\"><p>Pipeline <strong>#{}</strong> {} for <code>{}</code></p>{}</div>",
                    head.pipeline.id,
                    status_badge(head.status.as_str()),
                    mr.sha.chars().take(8).collect::<String>(),
                    table("pipeline-jobs", &["Job", "Status", "Description"], &rows)
                )
            }
        };
        (header, widget)
    };
    let body = format!(
        "{header}<h2>Pipeline</h2>{widget}<h2>Commits</h2>{}",
        table("mr-commits", &["Commit", "Title", "Author"], &commit_rows)
    );
    request.page(&mr.title, &body)
}
