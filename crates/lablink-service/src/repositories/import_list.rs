//! The import list: repositories in GitLab groups the user can reach through their linked
//! account, with their effective access level, searchable and paged by GitLab project id.
//!
//! GitLab lists projects 100 at a time by keyset pagination, so a large list takes many
//! sequential requests. The first page is fetched and shown at once; a job of the database queue
//! (queued with that page, at most one waiting per user) fetches the rest into a per-user cache
//! in the database. Progress and the link of the next page live in that cache, so any replica
//! shows progress and a fill cut short by a crash resumes where it stopped once its lease runs
//! out. Later pages and searches are answered from that cache. Until the cache is complete a
//! search is answered by GitLab's own search. The access level of the rows shown comes from
//! `members/all` (inherited and shared-group membership included), fetched concurrently and
//! cached.

use futures::future::join_all;
use lablink_core::AccessLevel;
use lablink_gitlab::api::{Page, Pager, Project};
use lablink_store::repositories::import_list::{ImportPage, ListItem, ListState};

use super::{MAINTAINER_REQUIRED, UserGitLab};
use crate::error::require;
use crate::{Principal, ServiceError, Services};

/// Rows per page of the import list.
pub const PAGE_ROWS: i64 = 20;
/// GitLab's largest page.
const FETCH_PER_PAGE: u32 = 100;
/// Pages one fill job fetches before it queues its continuation, so that a long list does not
/// hold the job queue (webhook processing waits behind it) for long.
const PAGES_PER_JOB: usize = 10;

/// What the user asked for.
#[derive(Debug, Clone, Default)]
pub struct ImportQuery {
    pub search: String,
    /// Rows after this GitLab project id (the previous page's `next_after`).
    pub after: Option<i64>,
    /// Forget the cached list and load it again from GitLab.
    pub refresh: bool,
}

/// One repository the user could connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRow {
    pub gitlab_project_id: i64,
    pub path_with_namespace: String,
    pub default_branch: Option<String>,
    pub visibility: Option<String>,
    pub web_url: String,
    /// The user's effective GitLab access level (10 Guest … 50 Owner; 0 no access).
    pub access_level: i64,
    pub access_label: &'static str,
    /// Maintainer or above.
    pub can_connect: bool,
    /// Why Connect is not offered.
    pub blocked_reason: Option<&'static str>,
    /// The lablink project this repository is already connected to (then Connect is not offered).
    pub connected_to: Option<(String, String)>,
}

/// A page of the import list and how far loading is.
#[derive(Debug, Clone)]
pub struct ImportList {
    pub rows: Vec<ImportRow>,
    /// Pass as `after` for the next page; `None` on the last page so far.
    pub next_after: Option<i64>,
    /// The background load is still running.
    pub loading: bool,
    /// Repositories loaded so far.
    pub loaded: i64,
    /// Why loading stopped, if it failed.
    pub error: Option<String>,
}

fn item_of(project: &Project) -> ListItem {
    ListItem {
        gitlab_project_id: project.id,
        path_with_namespace: project.path_with_namespace.clone(),
        default_branch: project.default_branch.clone(),
        visibility: project.visibility.clone(),
        web_url: project.web_url.clone(),
        http_url_to_repo: project.http_url_to_repo.clone(),
        access_level: None,
    }
}

/// Only repositories in groups (never personal namespaces), not archived.
fn listable(projects: &[Project]) -> Vec<ListItem> {
    projects
        .iter()
        .filter(|p| p.in_group() && !p.archived)
        .map(item_of)
        .collect()
}

fn row_of(item: ListItem) -> ImportRow {
    let level = item.access_level.unwrap_or(0);
    let known = u8::try_from(level)
        .ok()
        .and_then(|l| AccessLevel::try_from(l).ok())
        .unwrap_or(AccessLevel::NoAccess);
    let can_connect = known.is_maintainer_or_above();
    ImportRow {
        gitlab_project_id: item.gitlab_project_id,
        path_with_namespace: item.path_with_namespace,
        default_branch: item.default_branch,
        visibility: item.visibility,
        web_url: item.web_url,
        access_level: level,
        access_label: known.label(),
        can_connect,
        blocked_reason: (!can_connect).then_some(MAINTAINER_REQUIRED),
        connected_to: None,
    }
}

impl Services {
    /// A page of the caller's import list; starts loading it when there is no usable cache.
    #[tracing::instrument(
        skip_all,
        fields(account_id = %caller.account_id, user_id = %caller.user_id),
    )]
    pub async fn gitlab_import_list(
        &self,
        caller: &Principal,
        query: &ImportQuery,
    ) -> Result<ImportList, ServiceError> {
        require(
            caller.role.can_write(),
            "Read-only users cannot connect repositories.",
        )?;
        let gitlab = self.user_gitlab(caller).await?;
        let user = &caller.user_id;
        let state = match self.db.import_list_state(user).await? {
            Some(state) if !query.refresh => state,
            _ => self.load_import_list(user, &gitlab).await?,
        };
        let search = query.search.trim();
        let (mut items, next_after) = if !search.is_empty() && !state.complete {
            let page = gitlab
                .api
                .projects_first_page(None, Some(search), FETCH_PER_PAGE)
                .await?;
            let mut items = listable(&page.items);
            items.truncate(PAGE_ROWS as usize);
            (items, None)
        } else {
            let after = query.after.unwrap_or(0);
            let mut items = self
                .db
                .import_list_page(user, state.generation, search, after, PAGE_ROWS + 1)
                .await?;
            let more = items.len() > PAGE_ROWS as usize;
            items.truncate(PAGE_ROWS as usize);
            let next = more
                .then(|| items.last().map(|i| i.gitlab_project_id))
                .flatten();
            (items, next)
        };
        self.fill_access_levels(&gitlab, user, state.generation, &mut items)
            .await?;
        let connected = self.db.live_connections(&caller.account_id).await?;
        let rows = items
            .into_iter()
            .map(|item| {
                let mut row = row_of(item);
                if let Some(c) = connected.iter().find(|c| {
                    c.gitlab_project_id == row.gitlab_project_id
                        && c.gitlab_instance_url == gitlab.instance_url
                }) {
                    row.can_connect = false;
                    row.blocked_reason = None;
                    row.connected_to = Some((c.project_id.clone(), c.project_name.clone()));
                }
                row
            })
            .collect();
        Ok(ImportList {
            rows,
            next_after,
            loading: !state.complete && state.error.is_none(),
            loaded: state.loaded,
            error: state.error,
        })
    }

    /// How far loading the caller's list is (for the progress indicator), without GitLab calls.
    #[tracing::instrument(
        skip_all,
        fields(account_id = %caller.account_id, user_id = %caller.user_id),
    )]
    pub async fn gitlab_import_progress(
        &self,
        caller: &Principal,
    ) -> Result<Option<ListState>, ServiceError> {
        Ok(self.db.import_list_state(&caller.user_id).await?)
    }

    /// Starts a new generation: the first page now, the rest by a queued fill job.
    async fn load_import_list(
        &self,
        user: &str,
        gitlab: &UserGitLab,
    ) -> Result<ListState, ServiceError> {
        let generation = self.db.start_import_list(user).await?;
        let first = match gitlab
            .api
            .projects_first_page(None, None, FETCH_PER_PAGE)
            .await
        {
            Ok(page) => page,
            Err(e) => {
                self.db
                    .fail_import_list(user, generation, None, &e.to_string())
                    .await?;
                return Err(e.into());
            }
        };
        let page = ImportPage {
            fetched_from: None,
            items: &listable(&first.items),
            next: first.next.as_ref().map(|u| u.as_str()),
            queue_fill: true,
        };
        self.db.store_import_page(user, generation, page).await?;
        self.db
            .import_list_state(user)
            .await?
            .ok_or_else(|| ServiceError::Internal("the import list vanished".into()))
    }

    /// The fill job: fetches the pages of the user's current list from where it stands, up to
    /// `PAGES_PER_JOB`, then leaves the rest to the job it queued with its last page. Safe to
    /// run twice: a page another fill stored first is not stored again. GitLab's failures are
    /// recorded on the list (shown to the user, who can refresh); only database errors fail the
    /// job, which is then retried.
    pub(crate) async fn fill_import_list(&self, user: &str) -> Result<(), ServiceError> {
        let Some(state) = self.db.import_list_state(user).await? else {
            return Ok(());
        };
        if state.next_page.is_none() || state.error.is_some() {
            return Ok(());
        }
        let gitlab = match self.user_gitlab_of(user).await {
            Ok(gitlab) => gitlab,
            Err(e) => return self.stop_fill(user, &state, &e).await,
        };
        for fetched in 1..=PAGES_PER_JOB {
            let Some(state) = self.db.import_list_state(user).await? else {
                return Ok(());
            };
            let Some(next) = state.next_page.as_deref().filter(|_| state.error.is_none()) else {
                return Ok(());
            };
            let page = match fetch_page_at(&gitlab, next).await {
                Ok(page) => page,
                Err(e) => return self.stop_fill(user, &state, &e).await,
            };
            let page = ImportPage {
                fetched_from: Some(next),
                items: &listable(&page.items),
                next: page.next.as_ref().map(|u| u.as_str()),
                queue_fill: fetched == PAGES_PER_JOB,
            };
            // `false`: a refresh or another fill moved the list on; go on from where it is now.
            self.db
                .store_import_page(user, state.generation, page)
                .await?;
        }
        Ok(())
    }

    /// Records on the list why loading the page it waits for failed.
    async fn stop_fill(
        &self,
        user: &str,
        state: &ListState,
        error: &ServiceError,
    ) -> Result<(), ServiceError> {
        tracing::warn!(user_id = %user, %error, "loading the import list failed");
        self.db
            .fail_import_list(
                user,
                state.generation,
                state.next_page.as_deref(),
                &error.to_string(),
            )
            .await?;
        Ok(())
    }

    /// Looks up the effective access level of rows that have none yet, concurrently.
    async fn fill_access_levels(
        &self,
        gitlab: &UserGitLab,
        user: &str,
        generation: i64,
        items: &mut [ListItem],
    ) -> Result<(), ServiceError> {
        let lookups = items
            .iter()
            .filter(|i| i.access_level.is_none())
            .map(|i| async move {
                let member = gitlab
                    .api
                    .member_all(i.gitlab_project_id, gitlab.gitlab_user_id)
                    .await?;
                Ok::<_, ServiceError>((i.gitlab_project_id, member.map_or(0, |m| m.access_level)))
            });
        for found in join_all(lookups).await {
            let (id, level) = found?;
            self.db
                .set_import_access_level(user, generation, id, level)
                .await?;
            if let Some(item) = items.iter_mut().find(|i| i.gitlab_project_id == id) {
                item.access_level = Some(level);
            }
        }
        Ok(())
    }
}

/// The page at `link`, which must be on the linked account's GitLab: the link was stored when
/// the list started, and the user may have linked another GitLab since (their token must not
/// go elsewhere).
async fn fetch_page_at(gitlab: &UserGitLab, link: &str) -> Result<Page<Project>, ServiceError> {
    let url = url::Url::parse(link)
        .ok()
        .filter(|u| u.origin() == gitlab.api.instance().base_url().origin())
        .ok_or_else(|| {
            ServiceError::Conflict(
                "The linked GitLab account changed while the list was loading; refresh the list."
                    .into(),
            )
        })?;
    let page = Pager::<Project>::resume(&gitlab.api, Some(url))
        .next_page()
        .await?;
    Ok(page.unwrap_or(Page {
        items: Vec::new(),
        next: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(level: Option<i64>) -> ListItem {
        ListItem {
            gitlab_project_id: 1,
            path_with_namespace: "g/p".into(),
            default_branch: Some("main".into()),
            visibility: Some("private".into()),
            web_url: "https://g/g/p".into(),
            http_url_to_repo: "https://g/g/p.git".into(),
            access_level: level,
        }
    }

    #[test]
    fn only_maintainers_and_owners_may_connect() {
        for (level, ok) in [
            (Some(30), false),
            (Some(40), true),
            (Some(50), true),
            (None, false),
        ] {
            let row = row_of(item(level));
            assert_eq!(row.can_connect, ok, "{level:?}");
            assert_eq!(row.blocked_reason.is_none(), ok);
        }
        assert_eq!(row_of(item(Some(30))).access_label, "Developer");
        assert_eq!(row_of(item(Some(37))).access_label, "No access");
    }
}
