//! Accounts and the one-transaction creation of an account with its first admin.

use lablink_core::Plan;

use crate::users::NewUser;
use crate::{Db, StoreError, new_id, now_ms, on_db};

#[derive(Debug, Clone)]
pub struct Account {
    pub id: String,
    pub name: String,
    pub plan: Plan,
    pub created_at: i64,
}

#[derive(sqlx::FromRow)]
struct AccountRow {
    id: String,
    name: String,
    plan: String,
    created_at: i64,
}

impl TryFrom<AccountRow> for Account {
    type Error = StoreError;
    fn try_from(r: AccountRow) -> Result<Self, StoreError> {
        Ok(Account {
            plan: r
                .plan
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("accounts.plan: {e}")))?,
            id: r.id,
            name: r.name,
            created_at: r.created_at,
        })
    }
}

const COLUMNS: &str = "id, name, plan, created_at";

impl Db {
    pub async fn count_accounts(&self) -> Result<i64, StoreError> {
        let n: i64 = on_db!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM accounts")
                .fetch_one(pool)
                .await
        })?;
        Ok(n)
    }

    pub async fn create_account(&self, name: &str, plan: Plan) -> Result<Account, StoreError> {
        let account = Account {
            id: new_id(),
            name: name.to_owned(),
            plan,
            created_at: now_ms(),
        };
        on_db!(self, |pool| {
            sqlx::query("INSERT INTO accounts (id, name, plan, created_at) VALUES ($1, $2, $3, $4)")
                .bind(&account.id)
                .bind(&account.name)
                .bind(account.plan.as_str())
                .bind(account.created_at)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(account)
    }

    pub async fn account_by_id(&self, id: &str) -> Result<Option<Account>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM accounts WHERE id = $1");
        let row: Option<AccountRow> = on_db!(self, |pool| {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await
        })?;
        row.map(Account::try_from).transpose()
    }

    pub async fn account_by_name(&self, name: &str) -> Result<Option<Account>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM accounts WHERE name = $1");
        let row: Option<AccountRow> = on_db!(self, |pool| {
            sqlx::query_as(&sql).bind(name).fetch_optional(pool).await
        })?;
        row.map(Account::try_from).transpose()
    }

    /// Consumes the setup token (if still unused and unexpired) and creates the account and its
    /// first admin, all in one transaction: a used or expired token creates nothing.
    pub async fn complete_setup(
        &self,
        setup_token_hash: &str,
        account_name: &str,
        plan: Plan,
        admin: &NewUser,
    ) -> Result<Account, StoreError> {
        let now = now_ms();
        let account = Account {
            id: new_id(),
            name: account_name.to_owned(),
            plan,
            created_at: now,
        };
        on_db!(self, |pool| {
            let mut tx = pool.begin().await?;
            // Setup makes the first account only: once one exists, no link completes.
            let accounts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM accounts")
                .fetch_one(&mut *tx)
                .await?;
            if accounts > 0 {
                return Err(StoreError::Conflict("an account exists already".into()));
            }
            let consumed = sqlx::query(
                "UPDATE setup_tokens SET used_at = $1 \
                 WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1",
            )
            .bind(now)
            .bind(setup_token_hash)
            .execute(&mut *tx)
            .await
            .map(|r| r.rows_affected())?;
            if consumed != 1 {
                return Err(StoreError::NotFound("setup link"));
            }
            sqlx::query(
                "INSERT INTO accounts (id, name, plan, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(&account.id)
            .bind(&account.name)
            .bind(account.plan.as_str())
            .bind(account.created_at)
            .execute(&mut *tx)
            .await
            .map(|r| r.rows_affected())?;
            crate::users::insert_user!(&mut *tx, new_id(), &account.id, admin, now)?;
            tx.commit().await?;
            Ok::<_, StoreError>(())
        })?;
        Ok(account)
    }

    /// Whether the account lets local git use repositories' shared credential.
    pub async fn local_git_shared_credential(&self, account_id: &str) -> Result<bool, StoreError> {
        let allowed: Option<bool> = on_db!(self, |pool| {
            sqlx::query_scalar("SELECT local_git_shared_credential FROM accounts WHERE id = $1")
                .bind(account_id)
                .fetch_optional(pool)
                .await
        })?;
        Ok(allowed.unwrap_or(false))
    }

    pub async fn set_local_git_shared_credential(
        &self,
        account_id: &str,
        allowed: bool,
    ) -> Result<(), StoreError> {
        on_db!(self, |pool| {
            sqlx::query("UPDATE accounts SET local_git_shared_credential = $1 WHERE id = $2")
                .bind(allowed)
                .bind(account_id)
                .execute(pool)
                .await
                .map(drop)
        })?;
        Ok(())
    }

    /// The account's cap on its workspaces' disk use, in megabytes (`None`: lablink's default).
    pub async fn workspace_disk_cap_mb(&self, account_id: &str) -> Result<Option<i64>, StoreError> {
        let cap: Option<Option<i64>> = on_db!(self, |pool| {
            sqlx::query_scalar("SELECT workspace_disk_cap_mb FROM accounts WHERE id = $1")
                .bind(account_id)
                .fetch_optional(pool)
                .await
        })?;
        Ok(cap.flatten())
    }

    pub async fn set_workspace_disk_cap_mb(
        &self,
        account_id: &str,
        cap_mb: Option<i64>,
    ) -> Result<(), StoreError> {
        on_db!(self, |pool| {
            sqlx::query("UPDATE accounts SET workspace_disk_cap_mb = $1 WHERE id = $2")
                .bind(cap_mb)
                .bind(account_id)
                .execute(pool)
                .await
                .map(drop)
        })?;
        Ok(())
    }
}
