//! Every column holding a value sealed by the [`KeyRing`], with the associated data that binds each
//! value to its row, and re-sealing them under the current master key (`lablink admin rekey`).
//!
//! Re-sealing is crash-safe and resumable: each value is replaced on its own with a compare-and-set
//! (`WHERE id = .. AND column = <the value read>`), so at every moment a value is sealed either under
//! an old key or under the current one, both of which the key ring opens; a value changed by lablink
//! meanwhile (a refreshed token) is left as lablink wrote it. Running it again picks up what is left.

use std::collections::BTreeMap;

use crate::crypto::KeyRing;
use crate::{Db, StoreError, on_db};

/// A column of sealed values. Its associated data is `<table>.<column without _enc>:<row id>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedColumn {
    pub table: &'static str,
    pub column: &'static str,
    /// Whether the table's `id` is an integer (else text).
    integer_id: bool,
}

impl SealedColumn {
    const fn new(table: &'static str, column: &'static str) -> SealedColumn {
        SealedColumn {
            table,
            column,
            integer_id: false,
        }
    }

    const fn with_integer_id(self) -> SealedColumn {
        SealedColumn {
            integer_id: true,
            ..self
        }
    }

    /// The associated data of this column's value in row `id`.
    pub fn aad(&self, id: impl std::fmt::Display) -> String {
        let name = self.column.strip_suffix("_enc").unwrap_or(self.column);
        format!("{}.{name}:{id}", self.table)
    }

    /// `table.column`, as reports name it.
    pub fn name(&self) -> String {
        format!("{}.{}", self.table, self.column)
    }
}

pub const INTEGRATION_SECRET: SealedColumn = SealedColumn::new("gitlab_integrations", "secret_enc");
pub const OAUTH_VERIFIER: SealedColumn = SealedColumn::new("gitlab_oauth_states", "verifier_enc");
pub const LINK_ACCESS_TOKEN: SealedColumn = SealedColumn::new("gitlab_links", "access_token_enc");
pub const LINK_REFRESH_TOKEN: SealedColumn = SealedColumn::new("gitlab_links", "refresh_token_enc");
pub const JOB_ENV: SealedColumn = SealedColumn::new("ci_jobs", "env_enc").with_integer_id();
pub const JOB_WAREHOUSE_SECRET: SealedColumn =
    SealedColumn::new("ci_jobs", "warehouse_secret_enc").with_integer_id();
pub const DEV_PASSWORD: SealedColumn = SealedColumn::new("dev_credentials", "password_enc");

/// The sealed columns of a repository row, by column name.
pub const REPOSITORY_COLUMNS: [&str; 6] = [
    "hook_secret",
    "hook_secret_previous",
    "signing_token",
    "project_token",
    "deploy_token",
    "deploy_key_private",
];

/// The associated data of a repository's sealed `column` (one of [`REPOSITORY_COLUMNS`]).
pub fn repository_aad(column: &str, id: &str) -> String {
    debug_assert!(
        REPOSITORY_COLUMNS.contains(&column),
        "{column} is not sealed"
    );
    format!("repositories.{column}:{id}")
}

/// Every sealed column in the schema. The store's tests check that no other binary column
/// outside [`NOT_SECRET`] exists, so a new secret column cannot be forgotten here.
pub fn all() -> Vec<SealedColumn> {
    let mut columns = vec![
        INTEGRATION_SECRET,
        OAUTH_VERIFIER,
        LINK_ACCESS_TOKEN,
        LINK_REFRESH_TOKEN,
        JOB_ENV,
        JOB_WAREHOUSE_SECRET,
        DEV_PASSWORD,
    ];
    columns.extend(
        REPOSITORY_COLUMNS
            .iter()
            .map(|c| SealedColumn::new("repositories", c)),
    );
    columns
}

/// Binary columns that hold no secret: compressed webhook bodies, files saved in a workspace
/// (repository content, kept in plain text in the git caches too), and what a workspace's dbt
/// command wrote to its target path (compiled SQL and dbt's artifacts, as CI runs keep them;
/// dbt writes no profile secret and no `DBT_ENV_SECRET_` value there).
pub const NOT_SECRET: &[(&str, &str)] = &[
    ("webhook_deliveries", "body"),
    ("workspace_changes", "content"),
    ("workspace_command_files", "content"),
];

/// What one column holds, by the key each value is sealed with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnKeys {
    /// Values sealed with the current key.
    pub current: u64,
    /// Values sealed with a previous key, by key id.
    pub previous: BTreeMap<String, u64>,
    /// Rows whose value no configured key opens (sealed with an unknown key, or damaged).
    pub unreadable: Vec<String>,
}

/// What a re-sealing pass over one column did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resealed {
    pub resealed: u64,
    pub already_current: u64,
    /// Values lablink changed between the read and the write (left as lablink wrote them).
    pub changed_meanwhile: u64,
    /// Rows whose value no configured key opens; left untouched.
    pub unreadable: Vec<String>,
    /// Where the pass stopped when it was told to stop early: pass it back to resume.
    pub resume_after: Option<String>,
}

/// A sealed value and its row's id (as text, whatever the column's type).
struct SealedValue {
    id: String,
    value: Vec<u8>,
}

/// An integer id written as text; the empty text (before every row) is the smallest.
fn integer_id(id: &str) -> Result<i64, StoreError> {
    if id.is_empty() {
        return Ok(i64::MIN);
    }
    id.parse()
        .map_err(|_| StoreError::Corrupt(format!("`{id}` is not a row id of this table")))
}

impl Db {
    /// Up to `limit` non-null values of `column` in rows after `after`, in id order.
    async fn sealed_values(
        &self,
        column: &SealedColumn,
        after: &str,
        limit: i64,
    ) -> Result<Vec<SealedValue>, StoreError> {
        // Table and column names come from the static catalogue above, never from input.
        let sql = format!(
            "SELECT id, {c} AS value FROM {t} WHERE {c} IS NOT NULL AND id > $1 ORDER BY id LIMIT $2",
            c = column.column,
            t = column.table
        );
        let rows: Vec<(String, Vec<u8>)> = if column.integer_id {
            let after = integer_id(after)?;
            let rows: Vec<(i64, Vec<u8>)> = on_db!(self, |pool| {
                sqlx::query_as(&sql)
                    .bind(after)
                    .bind(limit)
                    .fetch_all(pool)
                    .await
            })?;
            rows.into_iter()
                .map(|(id, v)| (id.to_string(), v))
                .collect()
        } else {
            on_db!(self, |pool| {
                sqlx::query_as(&sql)
                    .bind(after)
                    .bind(limit)
                    .fetch_all(pool)
                    .await
            })?
        };
        Ok(rows
            .into_iter()
            .map(|(id, value)| SealedValue { id, value })
            .collect())
    }

    /// Replaces `old` by `new` in row `id`; false when the value is no longer `old`.
    async fn replace_sealed(
        &self,
        column: &SealedColumn,
        id: &str,
        old: &[u8],
        new: &[u8],
    ) -> Result<bool, StoreError> {
        let sql = format!(
            "UPDATE {t} SET {c} = $1 WHERE id = $2 AND {c} = $3",
            c = column.column,
            t = column.table
        );
        let n = if column.integer_id {
            let id = integer_id(id)?;
            on_db!(self, |pool| {
                sqlx::query(&sql)
                    .bind(new)
                    .bind(id)
                    .bind(old)
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected())
            })?
        } else {
            on_db!(self, |pool| {
                sqlx::query(&sql)
                    .bind(new)
                    .bind(id)
                    .bind(old)
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected())
            })?
        };
        Ok(n == 1)
    }

    /// Counts `column`'s values by the key that sealed them.
    pub async fn sealed_keys(
        &self,
        keys: &KeyRing,
        column: &SealedColumn,
    ) -> Result<ColumnKeys, StoreError> {
        let mut counts = ColumnKeys::default();
        let mut after = String::new();
        loop {
            let batch = self.sealed_values(column, &after, PAGE).await?;
            let Some(last) = batch.last() else {
                return Ok(counts);
            };
            after = last.id.clone();
            for row in batch {
                if keys.open(&column.aad(&row.id), &row.value).is_err() {
                    counts.unreadable.push(row.id);
                } else if keys.is_current(&row.value) {
                    counts.current += 1;
                } else {
                    let id = KeyRing::key_id_of(&row.value).unwrap_or_default();
                    *counts.previous.entry(id).or_default() += 1;
                }
            }
        }
    }

    /// Re-seals under the current key every value of `column` after row `after` that an older
    /// key sealed, stopping early (with [`Resealed::resume_after`]) once `budget` values were
    /// re-sealed. A value no configured key opens is reported and left as it is.
    pub async fn reseal(
        &self,
        keys: &KeyRing,
        column: &SealedColumn,
        after: &str,
        budget: Option<u64>,
    ) -> Result<Resealed, StoreError> {
        let mut done = Resealed::default();
        let mut after = after.to_owned();
        // The last row looked at: a resumed pass starts after it.
        let mut handled = after.clone();
        loop {
            let batch = self.sealed_values(column, &after, PAGE).await?;
            let Some(last) = batch.last() else {
                return Ok(done);
            };
            after = last.id.clone();
            for row in batch {
                if budget.is_some_and(|b| done.resealed >= b) {
                    done.resume_after = Some(handled);
                    return Ok(done);
                }
                handled = row.id.clone();
                if keys.is_current(&row.value) {
                    done.already_current += 1;
                    continue;
                }
                let aad = column.aad(&row.id);
                let Ok(plain) = keys.open(&aad, &row.value) else {
                    done.unreadable.push(row.id);
                    continue;
                };
                let sealed = keys.seal(&aad, &plain);
                if self
                    .replace_sealed(column, &row.id, &row.value, &sealed)
                    .await?
                {
                    done.resealed += 1;
                } else {
                    done.changed_meanwhile += 1;
                }
            }
        }
    }
}

/// Rows read per query.
const PAGE: i64 = 200;
