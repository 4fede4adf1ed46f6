//! The per-user cache of the import list: the GitLab projects a user could connect, filled page
//! by page in the background. Each refresh starts a new generation; a filler whose generation was
//! superseded stops storing, so two refreshes never mix their pages.

use crate::{Db, StoreError, now_ms, on_db};

/// How far the cache of a user is.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ListState {
    pub generation: i64,
    pub complete: bool,
    pub loaded: i64,
    pub error: Option<String>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
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
                     error = NULL, started_at = $2, finished_at = NULL RETURNING generation",
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

    /// Stores one page of `generation`; `last` marks the list complete. `false` when a newer
    /// generation started meanwhile (nothing stored).
    pub async fn store_import_page(
        &self,
        user_id: &str,
        generation: i64,
        items: &[ListItem],
        last: bool,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let stored = on_db!(self, |pool| {
            async {
                let mut tx = pool.begin().await?;
                let n = sqlx::query(
                    "UPDATE gitlab_project_lists SET loaded = loaded + $1, complete = $2, \
                     finished_at = CASE WHEN $2 THEN $3 ELSE NULL END \
                     WHERE user_id = $4 AND generation = $5",
                )
                .bind(items.len() as i64)
                .bind(last)
                .bind(now)
                .bind(user_id)
                .bind(generation)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if n == 1 && !items.is_empty() {
                    let mut insert = sqlx::QueryBuilder::new(
                        "INSERT INTO gitlab_project_list_items (user_id, generation, gitlab_project_id, \
                         path_with_namespace, search_key, default_branch, visibility, web_url, \
                         http_url_to_repo, access_level) ",
                    );
                    insert.push_values(items, |mut row, item| {
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
                tx.commit().await?;
                Ok::<_, sqlx::Error>(n == 1)
            }
            .await
        })?;
        Ok(stored)
    }

    /// Records why filling `generation` stopped.
    pub async fn fail_import_list(
        &self,
        user_id: &str,
        generation: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        on_db!(self, |pool| {
            sqlx::query(
                "UPDATE gitlab_project_lists SET error = $1, finished_at = $2 \
                 WHERE user_id = $3 AND generation = $4",
            )
            .bind(error)
            .bind(now_ms())
            .bind(user_id)
            .bind(generation)
            .execute(pool)
            .await
            .map(drop)
        })?;
        Ok(())
    }

    pub async fn import_list_state(&self, user_id: &str) -> Result<Option<ListState>, StoreError> {
        let row = on_db!(self, |pool| {
            sqlx::query_as(
                "SELECT generation, complete, loaded, error, started_at, finished_at \
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
