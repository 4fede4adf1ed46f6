use thiserror::Error;

/// The store's one error type.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("the database URL is not usable: {0}")]
    BadUrl(String),
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("a stored secret could not be decrypted: {0}")]
    Crypto(#[from] crate::crypto::CryptoError),
    #[error("{0}")]
    Conflict(String),
    #[error("a stored value is not valid: {0}")]
    Corrupt(String),
    #[error("{0} not found")]
    NotFound(&'static str),
}

impl StoreError {
    /// True when the error is a unique-constraint violation on either backend.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Sql(sqlx::Error::Database(e)) if e.is_unique_violation())
    }
}
