//! The audit trail: every security-relevant action with its actor, account, target, outcome,
//! client address and user agent. The web layer runs each request inside a [`RequestOrigin`]
//! scope, so a use case records where a request came from without every signature carrying it.

use std::future::Future;

use lablink_core::Role;
use lablink_store::audit::AuditEvent;
pub use lablink_store::audit::{AuditEntry, AuditFilter, AuditOutcome};

use crate::error::require;
use crate::{Principal, ServiceError, Services};

tokio::task_local! {
    static ORIGIN: RequestOrigin;
}

/// Where the request being served came from.
#[derive(Debug, Clone, Default)]
pub struct RequestOrigin {
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
}

impl RequestOrigin {
    /// Runs `work` (a request's handling) with this origin.
    pub async fn scope<F: Future>(self, work: F) -> F::Output {
        ORIGIN.scope(self, work).await
    }
}

/// The longest user agent kept.
const USER_AGENT_CHARS: usize = 300;

/// At most this many entries in one page or export.
pub const MAX_ENTRIES: i64 = 10_000;

impl Services {
    /// Records `event`, with the request's address and user agent when it has none of its own.
    pub(crate) async fn audit(&self, event: AuditEvent<'_>) -> Result<(), ServiceError> {
        let origin = ORIGIN.try_with(Clone::clone).unwrap_or_default();
        let user_agent: Option<String> = origin
            .user_agent
            .map(|ua| ua.chars().take(USER_AGENT_CHARS).collect());
        self.db
            .record_audit(AuditEvent {
                client_ip: event.client_ip.or(origin.client_ip.as_deref()),
                user_agent: event.user_agent.or(user_agent.as_deref()),
                ..event
            })
            .await?;
        Ok(())
    }

    /// The account's entries matching `filter`, newest first (account admins).
    #[tracing::instrument(
        skip_all,
        fields(account_id = %admin.account_id, user_id = %admin.user_id),
    )]
    pub async fn audit_log(
        &self,
        admin: &Principal,
        filter: &AuditFilter,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, ServiceError> {
        require(
            admin.role == Role::AccountAdmin,
            "Only account admins can read the audit log.",
        )?;
        Ok(self
            .db
            .audit_entries(&admin.account_id, filter, limit.clamp(1, MAX_ENTRIES))
            .await?)
    }
}
