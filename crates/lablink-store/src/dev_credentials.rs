//! Developers' own warehouse credentials for their workspace dbt commands, one per user and
//! project, the password sealed.

use secrecy::SecretString;

use crate::crypto::KeyRing;
use crate::sealed::DEV_PASSWORD;
use crate::{Db, StoreError, new_id, now_ms, on_db};

/// A user's development credentials for one project's warehouse.
#[derive(Debug, Clone)]
pub struct DevCredential {
    pub username: String,
    pub password: SecretString,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    username: String,
    password_enc: Vec<u8>,
}

impl Db {
    pub async fn dev_credential(
        &self,
        keys: &KeyRing,
        user_id: &str,
        project_id: &str,
    ) -> Result<Option<DevCredential>, StoreError> {
        let row: Option<Row> = on_db!(self, |pool| {
            sqlx::query_as(
                "SELECT id, username, password_enc FROM dev_credentials \
                 WHERE user_id = $1 AND project_id = $2",
            )
            .bind(user_id)
            .bind(project_id)
            .fetch_optional(pool)
            .await
        })?;
        row.map(|r| {
            Ok(DevCredential {
                password: keys.open_str(&DEV_PASSWORD.aad(&r.id), &r.password_enc)?,
                username: r.username,
            })
        })
        .transpose()
    }

    /// Saves the user's credentials for the project, replacing any.
    pub async fn save_dev_credential(
        &self,
        keys: &KeyRing,
        user_id: &str,
        project_id: &str,
        credential: &DevCredential,
    ) -> Result<(), StoreError> {
        self.delete_dev_credential(user_id, project_id).await?;
        let id = new_id();
        let sealed = keys.seal_str(&DEV_PASSWORD.aad(&id), &credential.password);
        on_db!(self, |pool| {
            sqlx::query(
                "INSERT INTO dev_credentials (id, user_id, project_id, username, password_enc, \
                 updated_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&id)
            .bind(user_id)
            .bind(project_id)
            .bind(&credential.username)
            .bind(&sealed)
            .bind(now_ms())
            .execute(pool)
            .await
            .map(drop)
        })?;
        Ok(())
    }

    pub async fn delete_dev_credential(
        &self,
        user_id: &str,
        project_id: &str,
    ) -> Result<(), StoreError> {
        on_db!(self, |pool| {
            sqlx::query("DELETE FROM dev_credentials WHERE user_id = $1 AND project_id = $2")
                .bind(user_id)
                .bind(project_id)
                .execute(pool)
                .await
                .map(drop)
        })?;
        Ok(())
    }
}
