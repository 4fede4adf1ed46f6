//! The per-user cache of the import list: the GitLab projects a user could connect, filled page
//! by page in the background by jobs. Each refresh starts a new generation; the row keeps the
//! link of the next page to fetch, and a page is stored only if that link still names the page
//! fetched, so two fills (or two refreshes) never mix or repeat pages.

use crate::queue::{QueueItemStatus, Task};
use crate::{Db, StoreError, new_id, now_ms, on_db};

/// Attempts of a fill job (GitLab's refusals are recorded on the list, not retried).
const FILL_ATTEMPTS: i64 = 5;

/// How far the cache of a user is.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ListState {
    pub generation: i64,
    pub complete: bool,
    pub loaded: i64,
    pub error: Option<String>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    /// The link of the next page to fetch; `None` when no page is pending.
    pub next_page: Option<String>,
}

/// A page of GitLab's project list to store.
#[derive(Debug, Clone, Copy)]
pub struct ImportPage<'a> {
    /// The link the page was fetched from; `None` for the first page of a generation.
    pub fetched_from: Option<&'a str>,
    pub items: &'a [ListItem],
    /// The next page's link; `None` on the last page.
    pub next: Option<&'a str>,
    /// Queue a fill job (unless one is already queued) when pages remain.
    pub queue_fill: bool,
}

/// One cached row of the import list.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ListItem {
    pub gitlab_project_id: i64,
    pub path_with_namespace: String,
    pub default_branch: Option<String>,
    pub visibility: Option<String>,
    pub web_url: String,
    pub http_url_to_repo: String,
    /// The user's effective access level; `None` until checked with `members/all`.
    pub access_level: Option<i64>,
}

const ITEM_COLUMNS: &str = "gitlab_project_id, path_with_namespace, default_branch, visibility, \
     web_url, http_url_to_repo, access_level";

/// `text` as a literal inside a LIKE pattern with `\` as the escape character.
fn like_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Db {
    /// Starts a new generation of the user's list, forgetting the previous one's rows.
    pub async fn start_import_list(&self, user_id: &str) -> Result<i64, StoreError> {
        let now = now_ms();
        let generation = on_db!(self, |pool| {
            async {
                let mut tx = pool.begin().await?;
                let generation: i64 = sqlx::query_scalar(
                    "INSERT INTO gitlab_project_lists (user_id, generation, complete, loaded, started_at) \
                     VALUES ($1, 1, FALSE, 0, $2) ON CONFLICT (user_id) DO UPDATE SET \
                     generation = gitlab_project_lists.generation + 1, complete = FALSE, loaded = 0, \
                     error = NULL, started_at = $2, finished_at = NULL, next_page = NULL \
                     RETURNING generation",
                )
                .bind(user_id)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                sqlx::query(
                    "DELETE FROM gitlab_project_list_items WHERE user_id = $1 AND generation < $2",
                )
                .bind(user_id)
                .bind(generation)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok::<_, sqlx::Error>(generation)
            }
            .await
        })?;
        Ok(generation)
    }

    /// Stores one page of `generation` and where the list continues, and, when pages remain and
    /// `page.queue_fill`, queues a fill job unless one is queued already, in one transaction (a
    /// list that is loading always has a job that will load it). The last page marks the list
    /// complete. `false` when nothing was stored: a newer generation started, or another fill
    /// stored this page first.
    pub async fn store_import_page(
        &self,
        user_id: &str,
        generation: i64,
        page: ImportPage<'_>,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        // A page is stored only where the list still continues: at the link it was fetched from,
        // or, for the first page, at the start (nothing pending yet).
        let update = "UPDATE gitlab_project_lists SET loaded = loaded + $1, complete = $2, \
             next_page = $7, finished_at = CASE WHEN $2 THEN $3 ELSE NULL END \
             WHERE user_id = $4 AND generation = $5 AND COALESCE(next_page, '') = $6 \
             AND complete = FALSE AND error IS NULL";
        let queue_fill = page.queue_fill && page.next.is_some();
        // Equal for the same user, so a queued fill is found and reused.
        let (kind, payload) = Task::FillImportList {
            user_id: user_id.to_owned(),
        }
        .columns();
        let stored = on_db!(self, |pool| {
            async {
                let mut tx = pool.begin().await?;
                let n = sqlx::query(update)
                    .bind(page.items.len() as i64)
                    .bind(page.next.is_none())
                    .bind(now)
                    .bind(user_id)
                    .bind(generation)
                    .bind(page.fetched_from.unwrap_or_default())
                    .bind(page.next)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if n == 1 && !page.items.is_empty() {
                    let mut insert = sqlx::QueryBuilder::new(
                        "INSERT INTO gitlab_project_list_items (user_id, generation, gitlab_project_id, \
                         path_with_namespace, search_key, default_branch, visibility, web_url, \
                         http_url_to_repo, access_level) ",
                    );
                    insert.push_values(page.items, |mut row, item| {
                        row.push_bind(user_id)
                            .push_bind(generation)
                            .push_bind(item.gitlab_project_id)
                            .push_bind(&item.path_with_namespace)
                            .push_bind(item.path_with_namespace.to_lowercase())
                            .push_bind(&item.default_branch)
                            .push_bind(&item.visibility)
                            .push_bind(&item.web_url)
                            .push_bind(&item.http_url_to_repo)
                            .push_bind(item.access_level);
                    });
                    insert.push(" ON CONFLICT DO NOTHING");
                    insert.build().execute(&mut *tx).await?;
                }
                if n == 1 && queue_fill {
                    // Only a queued job counts: a running one may be about to finish, and a
                    // second fill running meanwhile is harmless (see above).
                    sqlx::query(
                        "INSERT INTO jobs (id, kind, payload, status, attempts, max_attempts, \
                         run_after, created_at, updated_at) \
                         SELECT $1, $2, $3, $4, 0, $5, $6, $6, $6 WHERE NOT EXISTS \
                         (SELECT 1 FROM jobs WHERE kind = $2 AND payload = $3 AND status = $4)",
                    )
                    .bind(new_id())
                    .bind(&kind)
                    .bind(&payload)
                    .bind(QueueItemStatus::Queued.as_str())
                    .bind(FILL_ATTEMPTS)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok::<_, sqlx::Error>(n == 1)
            }
            .await
        })?;
        Ok(stored)
    }

    /// Records why filling `generation` stopped at the page `fetched_from` (`None`: the first).
    /// Nothing is recorded when the list moved on meanwhile (another fill stored that page).
    pub async fn fail_import_list(
        &self,
        user_id: &str,
        generation: i64,
        fetched_from: Option<&str>,
        error: &str,
    ) -> Result<(), StoreError> {
        on_db!(self, |pool| {
            sqlx::query(
                "UPDATE gitlab_project_lists SET error = $1, finished_at = $2 \
                 WHERE user_id = $3 AND generation = $4 AND COALESCE(next_page, '') = $5 \
                 AND complete = FALSE",
            )
            .bind(error)
            .bind(now_ms())
            .bind(user_id)
            .bind(generation)
            .bind(fetched_from.unwrap_or_default())
            .execute(pool)
            .await
            .map(drop)
        })?;
        Ok(())
    }

    pub async fn import_list_state(&self, user_id: &str) -> Result<Option<ListState>, StoreError> {
        let row = on_db!(self, |pool| {
            sqlx::query_as(
                "SELECT generation, complete, loaded, error, started_at, finished_at, next_page \
                 FROM gitlab_project_lists WHERE user_id = $1",
            )
            .bind(user_id)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row)
    }

    /// Up to `limit` cached rows after GitLab project id `after`, whose path contains `search`
    /// (case-insensitive), in id order.
    pub async fn import_list_page(
        &self,
        user_id: &str,
        generation: i64,
        search: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<ListItem>, StoreError> {
        let sql = format!(
            "SELECT {ITEM_COLUMNS} FROM gitlab_project_list_items \
             WHERE user_id = $1 AND generation = $2 AND gitlab_project_id > $3 \
             AND search_key LIKE $4 ESCAPE '\\' ORDER BY gitlab_project_id LIMIT $5"
        );
        let pattern = format!("%{}%", like_literal(search));
        let rows = on_db!(self, |pool| {
            sqlx::query_as(&sql)
                .bind(user_id)
                .bind(generation)
                .bind(after)
                .bind(&pattern)
                .bind(limit)
                .fetch_all(pool)
                .await
        })?;
        Ok(rows)
    }

    /// Remembers the user's effective access level to a cached project.
    pub async fn set_import_access_level(
        &self,
        user_id: &str,
        generation: i64,
        gitlab_project_id: i64,
        access_level: i64,
    ) -> Result<(), StoreError> {
        on_db!(self, |pool| {
            sqlx::query(
                "UPDATE gitlab_project_list_items SET access_level = $1 \
                 WHERE user_id = $2 AND generation = $3 AND gitlab_project_id = $4",
            )
            .bind(access_level)
            .bind(user_id)
            .bind(generation)
            .bind(gitlab_project_id)
            .execute(pool)
            .await
            .map(drop)
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::like_literal;

    #[test]
    fn like_wildcards_are_literal() {
        assert_eq!(like_literal("A_b%c\\"), "a\\_b\\%c\\\\");
    }
}
