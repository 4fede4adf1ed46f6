//! Profile → Linked accounts: linking a GitLab account (OAuth authorization code with `state`
//! bound to the browser session and PKCE S256), the callback, unlinking, and token freshness
//! ([`Services::gitlab_access_token`]), the one place that hands out a valid access token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lablink_gitlab::api::User;
use lablink_gitlab::error::OAuthErrorCode;
use lablink_gitlab::oauth::{self, Pkce, TokenSet};
use lablink_gitlab::{Api, GitLabError};
use lablink_store::integrations::{NewOAuthState, OAuthPurpose, OAuthState};
use lablink_store::links::{Link, LinkStatus, NewLink, Tokens};
use lablink_store::{new_id, now_ms};
use rand::RngCore as _;
use secrecy::SecretString;
use sha2::{Digest as _, Sha256};
use url::Url;

use crate::error::require;
use crate::integration::{APP_CHANGED_REASON, GITLAB_SCOPE, ResolvedApp};
use crate::{Principal, ServiceError, Services};

/// GitLab's authorization codes live 10 minutes; a state lives as long.
const STATE_LIFETIME_MS: i64 = 10 * 60 * 1000;
/// Refresh this long before the access token expires, so a token handed out stays valid for the
/// request that uses it.
const REFRESH_MARGIN_MS: i64 = 5 * 60 * 1000;
/// How long one replica may hold the right to refresh a link. Longer than a GitLab request can
/// take, so a lease only runs out when its holder died.
const REFRESH_LEASE_MS: i64 = 60 * 1000;
/// How often a replica waiting for another replica's refresh looks again.
const LEASE_POLL: Duration = Duration::from_millis(50);

fn hash_state(state: &str) -> String {
    hex::encode(Sha256::digest(state.as_bytes()))
}

/// Starts an authorization at GitLab for `app`: a random `state` (only its hash is stored, bound
/// to the session) and a PKCE pair (the verifier is stored sealed).
pub(crate) async fn begin_authorization(
    services: &Services,
    caller: &Principal,
    session_key: &str,
    purpose: OAuthPurpose,
    app: &ResolvedApp,
) -> Result<Url, ServiceError> {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let state = URL_SAFE_NO_PAD.encode(raw);
    let pkce = Pkce::generate();
    services
        .db
        .create_gitlab_oauth_state(
            &services.keys,
            NewOAuthState {
                state_hash: &hash_state(&state),
                session_id: session_key,
                user_id: &caller.user_id,
                account_id: &caller.account_id,
                purpose,
                instance_url: &app.instance_url,
                application_id: &app.credentials.client_id,
                verifier: &pkce.verifier,
                expires_at: now_ms() + STATE_LIFETIME_MS,
            },
        )
        .await?;
    Ok(oauth::authorize_url(
        &app.instance,
        &app.credentials,
        &state,
        &pkce.challenge,
        GITLAB_SCOPE,
    ))
}

/// What the linked accounts page shows.
#[derive(Debug, Clone)]
pub enum LinkView {
    NotLinked,
    Linked {
        username: String,
        instance_url: String,
        linked_at: i64,
    },
    Dead {
        username: String,
        reason: String,
    },
}

/// The query GitLab's redirect brings to `GET /complete/gitlab`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// A finished authorization.
#[derive(Debug, Clone)]
pub struct Completed {
    pub purpose: OAuthPurpose,
    pub username: String,
}

/// The result of unlinking.
#[derive(Debug, Clone)]
pub struct Unlinked {
    /// Set when GitLab could not be told to revoke the token; the link is deleted anyway.
    pub revoke_problem: Option<String>,
    /// Repositories whose statuses and notes were posted through this account: no longer.
    pub stopped_posting: u64,
}

/// The linked-account use cases.
impl Services {
    #[tracing::instrument(
        skip_all,
        fields(account_id = %caller.account_id, user_id = %caller.user_id),
    )]
    pub async fn gitlab_link_view(&self, caller: &Principal) -> Result<LinkView, ServiceError> {
        let link = self
            .db
            .gitlab_link_of_user(&self.keys, &caller.user_id)
            .await?;
        Ok(match link {
            None => LinkView::NotLinked,
            Some(link) if link.status == LinkStatus::Dead => LinkView::Dead {
                username: link.gitlab_username,
                reason: link
                    .dead_reason
                    .unwrap_or_else(|| "GitLab no longer accepts it".to_owned()),
            },
            Some(link) => LinkView::Linked {
                username: link.gitlab_username,
                instance_url: link.instance_url.trim_end_matches('/').to_owned(),
                linked_at: link.linked_at,
            },
        })
    }

    /// Starts linking: the URL of GitLab's consent page.
    #[tracing::instrument(
        skip_all,
        fields(account_id = %caller.account_id, user_id = %caller.user_id),
    )]
    pub async fn start_gitlab_link(
        &self,
        caller: &Principal,
        session_key: &str,
    ) -> Result<Url, ServiceError> {
        require(
            caller.role.can_write(),
            "Read-only users cannot link a GitLab account: lablink would never use it. Ask an account \
             admin for the Developer role.",
        )?;
        let app = self
            .app_for_new_links(&caller.account_id, caller.plan)
            .await?;
        begin_authorization(self, caller, session_key, OAuthPurpose::Link, &app).await
    }

    /// Finishes an authorization from GitLab's redirect. Nothing is stored unless GitLab gave
    /// tokens and `GET /user` with them succeeded.
    #[tracing::instrument(
        skip_all,
        fields(account_id = %caller.account_id, user_id = %caller.user_id),
    )]
    pub async fn complete_gitlab_authorization(
        &self,
        caller: &Principal,
        session_key: &str,
        query: &CallbackQuery,
    ) -> Result<Completed, ServiceError> {
        let state = self.take_state(caller, session_key, query).await?;
        let again = match state.purpose {
            OAuthPurpose::Link => "Click Link on Profile → Linked accounts to start again.",
            OAuthPurpose::AdminAuthorize => {
                "Click Authorize on Account settings → Integrations → GitLab to start again."
            }
        };
        if let Some(error) = query.error.as_deref() {
            return Err(callback(match error {
                "access_denied" => {
                    format!("You declined access at GitLab, so nothing was linked. {again}")
                }
                other => format!(
                    "GitLab refused the authorization ({other}: {}). Nothing was linked. Check the GitLab \
                     application's redirect URI and scope `api`, then try again. {again}",
                    query
                        .error_description
                        .as_deref()
                        .unwrap_or("no description")
                ),
            }));
        }
        let Some(code) = query.code.as_deref().filter(|c| !c.is_empty()) else {
            return Err(callback(format!(
                "GitLab's answer has no authorization code, so nothing was linked. {again}"
            )));
        };
        let app = self.app_for_state(&state, again).await?;
        let tokens = oauth::exchange_code(&app.instance, &app.credentials, code, &state.verifier)
            .await
            .map_err(|e| callback_gitlab(e, state.purpose, again))?;
        let user = Api::bearer(&app.instance, tokens.access_token.clone())
            .current_user()
            .await
            .map_err(|e| callback_gitlab(e, state.purpose, again))?;
        self.store_link(caller, &app, &user, &tokens).await?;
        self.audit_gitlab(
            &caller.account_id,
            &caller.user_id,
            "gitlab.linked",
            format!("@{} on {}", user.username, app.instance_url),
        )
        .await?;
        if state.purpose == OAuthPurpose::AdminAuthorize
            && let Some(row) = &app.integration
        {
            self.db.mark_gitlab_integration_ready(&row.id).await?;
            self.audit_gitlab(
                &caller.account_id,
                &caller.user_id,
                "gitlab.integration.ready",
                format!("authorized at GitLab as @{}", user.username),
            )
            .await?;
            tracing::info!(account_id = %caller.account_id, "GitLab integration ready");
        }
        tracing::info!(user_id = %caller.user_id, gitlab_user = %user.username, "GitLab account linked");
        Ok(Completed {
            purpose: state.purpose,
            username: user.username,
        })
    }

    /// Checks `state` (present, known, this session's, unused, unexpired) and consumes it.
    async fn take_state(
        &self,
        caller: &Principal,
        session_key: &str,
        query: &CallbackQuery,
    ) -> Result<OAuthState, ServiceError> {
        let start = "Nothing was linked. Start again from Profile → Linked accounts (or, for admins, \
                     Account settings → Integrations → GitLab).";
        let Some(state) = query.state.as_deref().filter(|s| !s.is_empty()) else {
            return Err(callback(format!(
                "GitLab's answer has no `state` parameter, so lablink cannot tell which request it belongs to. {start}"
            )));
        };
        let Some(stored) = self
            .db
            .gitlab_oauth_state(&self.keys, &hash_state(state))
            .await?
        else {
            return Err(callback(format!(
                "This GitLab answer does not match any authorization started here (the `state` is unknown). {start}"
            )));
        };
        let same_session = crate::secrets::secrets_equal(&stored.session_id, session_key);
        if !same_session || stored.user_id != caller.user_id {
            return Err(callback(format!(
                "This GitLab answer belongs to an authorization started in another browser session (the `state` \
                 does not match yours). {start}"
            )));
        }
        if stored.consumed_at.is_some() {
            return Err(callback(format!(
                "This GitLab answer was already used (the page was reloaded or the link opened twice). {start}"
            )));
        }
        if stored.expires_at < now_ms() {
            return Err(callback(format!(
                "The authorization took longer than 10 minutes and expired. {start}"
            )));
        }
        if !self.db.consume_gitlab_oauth_state(&stored.id).await? {
            return Err(callback(format!(
                "This GitLab answer was already used (the page was reloaded or the link opened twice). {start}"
            )));
        }
        Ok(stored)
    }

    /// The application the authorization was started with; it must still be the account's.
    async fn app_for_state(
        &self,
        state: &OAuthState,
        again: &str,
    ) -> Result<ResolvedApp, ServiceError> {
        let db = &self.db;
        let app = match state.purpose {
            OAuthPurpose::AdminAuthorize => {
                match db.gitlab_integration(&self.keys, &state.account_id).await? {
                    Some(row) => self.resolve_integration(row)?,
                    None => {
                        return Err(callback(format!(
                            "The GitLab application was removed meanwhile. {again}"
                        )));
                    }
                }
            }
            OAuthPurpose::Link => {
                let account = db
                    .account_by_id(&state.account_id)
                    .await?
                    .ok_or(lablink_store::StoreError::NotFound("account"))?;
                self.app_for_new_links(&account.id, account.plan).await?
            }
        };
        if app.instance_url != state.instance_url
            || app.credentials.client_id != state.application_id
        {
            return Err(callback(format!(
                "The account's GitLab application changed while you were at GitLab. {again}"
            )));
        }
        Ok(app)
    }

    async fn store_link(
        &self,
        caller: &Principal,
        app: &ResolvedApp,
        user: &User,
        tokens: &TokenSet,
    ) -> Result<Link, ServiceError> {
        Ok(self
            .db
            .save_gitlab_link(
                &self.keys,
                NewLink {
                    user_id: &caller.user_id,
                    account_id: &caller.account_id,
                    instance_url: &app.instance_url,
                    application_id: &app.credentials.client_id,
                    gitlab_user_id: user.id,
                    gitlab_username: &user.username,
                    tokens: Tokens {
                        access_token: &tokens.access_token,
                        refresh_token: &tokens.refresh_token,
                        expires_at: tokens.expires_at_unix * 1000,
                    },
                },
            )
            .await?)
    }

    /// Revokes the link's tokens at GitLab (a failure there is reported, not fatal) and deletes
    /// the link here.
    #[tracing::instrument(
        skip_all,
        fields(account_id = %caller.account_id, user_id = %caller.user_id),
    )]
    pub async fn unlink_gitlab(&self, caller: &Principal) -> Result<Unlinked, ServiceError> {
        let db = &self.db;
        let Some(link) = db.gitlab_link_of_user(&self.keys, &caller.user_id).await? else {
            return Err(not_linked());
        };
        let revoke_problem = match self.app_for_link(&link).await {
            Ok(Some(app)) => oauth::revoke(&app.instance, &app.credentials, &link.refresh_token)
                .await
                .err()
                .map(|e| e.to_string()),
            Ok(None) => {
                Some("the GitLab application that issued it is no longer configured".to_owned())
            }
            Err(e) => Some(e.to_string()),
        };
        db.delete_gitlab_link(&link.id).await?;
        let stopped_posting = db
            .stop_posting_as(
                &caller.user_id,
                &format!(
                    "Commit statuses and merge request notes are no longer posted to GitLab: \
                     they were posted as @{}, who unlinked that GitLab account. A Maintainer \
                     can post them as themselves here.",
                    link.gitlab_username
                ),
            )
            .await?;
        self.audit_gitlab(
            &caller.account_id,
            &caller.user_id,
            "gitlab.unlinked",
            format!(
                "@{}{}",
                link.gitlab_username,
                if revoke_problem.is_some() {
                    " (revoking at GitLab failed)"
                } else {
                    ""
                }
            ),
        )
        .await?;
        if let Some(problem) = &revoke_problem {
            tracing::warn!(user_id = %caller.user_id, %problem, "GitLab link deleted; revoking at GitLab failed");
        }
        Ok(Unlinked {
            revoke_problem,
            stopped_posting,
        })
    }

    /// Proves the link works now: `GET /user` with a fresh token (refreshing, and retrying once
    /// when GitLab refuses the token as expired or revoked). Returns the GitLab username.
    #[tracing::instrument(
        skip_all,
        fields(account_id = %caller.account_id, user_id = %caller.user_id),
    )]
    pub async fn check_gitlab_link(&self, caller: &Principal) -> Result<String, ServiceError> {
        let fresh = self.gitlab_access_token(&caller.user_id).await?;
        match Api::bearer(&fresh.app.instance, fresh.token.clone())
            .current_user()
            .await
        {
            Ok(user) => Ok(user.username),
            Err(e) if e.token_problem().is_some() => {
                let retry = self
                    .replace_rejected_gitlab_token(&caller.user_id, fresh.version)
                    .await?;
                Ok(Api::bearer(&retry.app.instance, retry.token)
                    .current_user()
                    .await?
                    .username)
            }
            Err(e) => Err(e.into()),
        }
    }
}

fn callback(message: String) -> ServiceError {
    ServiceError::BadInput(message)
}

/// A GitLab failure during the callback, in words for the person in front of the browser.
fn callback_gitlab(err: GitLabError, purpose: OAuthPurpose, again: &str) -> ServiceError {
    let message = match err.oauth_code() {
        Some(OAuthErrorCode::InvalidGrant) => format!(
            "GitLab did not accept the authorization code: it expired (codes last 10 minutes) or was already used. \
             Nothing was linked. {again}"
        ),
        Some(OAuthErrorCode::InvalidClient) if purpose == OAuthPurpose::AdminAuthorize => {
            "GitLab does not accept the Application ID and Secret (wrong secret, or it was renewed in GitLab). \
             Nothing was linked. Copy the Secret from the application in GitLab, save it again under \
             Account settings → Integrations → GitLab, and authorize again."
                .to_owned()
        }
        Some(OAuthErrorCode::InvalidClient) => "GitLab does not accept the account's GitLab application (wrong or \
             renewed secret). Nothing was linked. Ask an account admin to update the Secret under Account settings \
             → Integrations → GitLab, then link again."
            .to_owned(),
        _ if matches!(
            err,
            GitLabError::Unreachable { .. } | GitLabError::Timeout { .. } | GitLabError::Tls { .. }
        ) =>
        {
            format!("lablink could not reach GitLab: {err}. Nothing was linked. Try again in a moment. {again}")
        }
        _ => format!("GitLab refused to complete the authorization: {err}. Nothing was linked. {again}"),
    };
    ServiceError::BadInput(message)
}

fn not_linked() -> ServiceError {
    ServiceError::NotFound(
        "No GitLab account is linked. Link one under Profile → Linked accounts.".to_owned(),
    )
}

fn link_dead(reason: &str) -> ServiceError {
    ServiceError::LinkDead(format!(
        "Your GitLab link no longer works: {reason}. Link again under Profile → Linked accounts."
    ))
}

/// A valid access token for a link, with what is needed to use it.
pub struct FreshToken {
    pub token: SecretString,
    /// The link's `token_version` this token belongs to; pass it back to
    /// [`Services::replace_rejected_gitlab_token`] when GitLab refuses the token.
    pub version: i64,
    /// When GitLab stops accepting the token (milliseconds since the epoch).
    pub expires_at: i64,
    /// The linked GitLab account's username.
    pub gitlab_username: String,
    pub app: ResolvedApp,
}

impl FreshToken {
    fn of(link: Link, app: ResolvedApp) -> FreshToken {
        FreshToken {
            token: link.access_token,
            version: link.token_version,
            expires_at: link.expires_at,
            gitlab_username: link.gitlab_username,
            app,
        }
    }
}

impl std::fmt::Debug for FreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FreshToken")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// Counts a call to GitLab's token refresh by how it ended: `refreshed`, `lease_lost` (another
/// replica's pair won), `refused` (GitLab no longer accepts the refresh token), `failed`.
fn refreshes(outcome: &'static str) {
    metrics::counter!("lablink_gitlab_token_refreshes_total", "outcome" => outcome).increment(1);
}

/// The single-flight table of token refreshes in this process.
#[derive(Debug)]
pub struct RefreshFlights {
    /// This process's identity as owner of a refresh lease.
    owner: String,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Default for RefreshFlights {
    fn default() -> Self {
        RefreshFlights {
            owner: new_id(),
            locks: Mutex::new(HashMap::new()),
        }
    }
}

impl RefreshFlights {
    fn lock_for(&self, link_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().expect("token lock table");
        // Forget locks nobody holds or waits for, so the table stays as small as the traffic.
        locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        locks.entry(link_id.to_owned()).or_default().clone()
    }
}

/// When a stored token needs replacing.
#[derive(Clone, Copy)]
enum Need {
    /// Ahead of expiry.
    Margin,
    /// GitLab refused the token of this version.
    Rejected(i64),
}

/// Whether `link`'s token must be replaced; `first_seen` is the version read before waiting, so
/// a token someone else stored meanwhile is used as long as it has not expired.
fn needs_refresh(link: &Link, need: Need, first_seen: i64, now: i64) -> bool {
    if link.token_version != first_seen {
        return link.expires_at <= now;
    }
    match need {
        Need::Margin => link.expires_at - REFRESH_MARGIN_MS <= now,
        Need::Rejected(version) => link.token_version == version,
    }
}

/// Token freshness: the one place that hands out a valid access token for a link.
///
/// GitLab refresh tokens work exactly once, so a refresh is single-flight: within this process a
/// per-link mutex lets one task refresh while the others wait, and across replicas a lease on the
/// link's row (claimed by compare-and-swap on `token_version`) lets exactly one replica call
/// GitLab. Everyone else re-reads the row and uses the winner's token. An `invalid_grant` only
/// kills the link when the version did not move meanwhile (nobody else refreshed).
impl Services {
    /// A valid access token of the user's link, refreshed first when it expires within 5 minutes.
    pub async fn gitlab_access_token(&self, user_id: &str) -> Result<FreshToken, ServiceError> {
        self.fresh_token(user_id, Need::Margin).await
    }

    /// GitLab refused the token of `version` (401): replace it, unless someone already did.
    #[tracing::instrument(skip_all, fields(user_id = %user_id))]
    pub async fn replace_rejected_gitlab_token(
        &self,
        user_id: &str,
        version: i64,
    ) -> Result<FreshToken, ServiceError> {
        self.fresh_token(user_id, Need::Rejected(version)).await
    }

    async fn live_link(&self, user_id: &str) -> Result<Link, ServiceError> {
        let link = self
            .db
            .gitlab_link_of_user(&self.keys, user_id)
            .await?
            .ok_or_else(not_linked)?;
        if link.status == LinkStatus::Dead {
            return Err(link_dead(
                link.dead_reason
                    .as_deref()
                    .unwrap_or("GitLab no longer accepts it"),
            ));
        }
        Ok(link)
    }

    async fn fresh_token(&self, user_id: &str, need: Need) -> Result<FreshToken, ServiceError> {
        let link = self.live_link(user_id).await?;
        let first_seen = link.token_version;
        if !needs_refresh(&link, need, first_seen, now_ms())
            && let Some(app) = self.app_or_kill(&link).await?
        {
            return Ok(FreshToken::of(link, app));
        }
        let flights = &self.gitlab.flights;
        let lock = flights.lock_for(&link.id);
        let _guard = lock.lock().await;
        loop {
            let link = self.live_link(user_id).await?;
            let Some(app) = self.app_or_kill(&link).await? else {
                continue;
            };
            if !needs_refresh(&link, need, first_seen, now_ms()) {
                return Ok(FreshToken::of(link, app));
            }
            let until = now_ms() + REFRESH_LEASE_MS;
            if !self
                .db
                .claim_gitlab_refresh_lease(&link.id, link.token_version, &flights.owner, until)
                .await?
            {
                // Another replica is refreshing (or just did): wait for its result.
                tokio::time::sleep(LEASE_POLL).await;
                continue;
            }
            if let Some(token) = self.refresh_under_lease(&link, app).await? {
                return Ok(token);
            }
        }
    }

    /// Calls GitLab's refresh while holding the lease. `None` means: look at the row again.
    async fn refresh_under_lease(
        &self,
        link: &Link,
        app: ResolvedApp,
    ) -> Result<Option<FreshToken>, ServiceError> {
        let owner = &self.gitlab.flights.owner;
        match oauth::refresh(&app.instance, &app.credentials, &link.refresh_token).await {
            Ok(set) => {
                let stored = self
                    .db
                    .store_refreshed_gitlab_tokens(
                        &self.keys,
                        &link.id,
                        link.token_version,
                        owner,
                        Tokens {
                            access_token: &set.access_token,
                            refresh_token: &set.refresh_token,
                            expires_at: set.expires_at_unix * 1000,
                        },
                    )
                    .await?;
                if !stored {
                    refreshes("lease_lost");
                    // Our lease ran out and someone else refreshed; their pair is the valid one.
                    tracing::warn!(link_id = %link.id, "refresh lease lost; using the stored token");
                    return Ok(None);
                }
                refreshes("refreshed");
                tracing::info!(link_id = %link.id, version = link.token_version + 1, "GitLab token refreshed");
                Ok(Some(FreshToken {
                    token: set.access_token,
                    version: link.token_version + 1,
                    expires_at: set.expires_at_unix * 1000,
                    gitlab_username: link.gitlab_username.clone(),
                    app,
                }))
            }
            Err(e) if e.oauth_code() == Some(&OAuthErrorCode::InvalidGrant) => {
                refreshes("refused");
                // Dead only if nobody stored a newer pair meanwhile; otherwise use theirs.
                let reason = "GitLab no longer accepts its refresh token (access was revoked in GitLab, \
                              or the application was deleted)";
                if self
                    .db
                    .mark_gitlab_link_dead(&link.id, link.token_version, reason)
                    .await?
                {
                    tracing::warn!(link_id = %link.id, "GitLab link is dead: refresh token refused");
                    self.audit_gitlab(
                        &link.account_id,
                        &link.user_id,
                        "gitlab.link.dead",
                        format!("@{}: {reason}", link.gitlab_username),
                    )
                    .await?;
                    return Err(link_dead(reason));
                }
                Ok(None)
            }
            Err(e) => {
                refreshes("failed");
                self.db
                    .release_gitlab_refresh_lease(&link.id, owner)
                    .await?;
                Err(e.into())
            }
        }
    }

    /// The application that issued the link, or the link marked dead when the account no longer
    /// uses it. `None`: the version moved while marking it; look again.
    async fn app_or_kill(&self, link: &Link) -> Result<Option<ResolvedApp>, ServiceError> {
        if let Some(app) = self.app_for_link(link).await? {
            return Ok(Some(app));
        }
        if self
            .db
            .mark_gitlab_link_dead(&link.id, link.token_version, APP_CHANGED_REASON)
            .await?
        {
            return Err(link_dead(APP_CHANGED_REASON));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(version: i64, expires_at: i64) -> Link {
        Link {
            id: "l".into(),
            user_id: "u".into(),
            account_id: "a".into(),
            instance_url: "https://gitlab.example.com/".into(),
            application_id: "app".into(),
            gitlab_user_id: 1,
            gitlab_username: "dev".into(),
            access_token: SecretString::from("at"),
            refresh_token: SecretString::from("rt"),
            expires_at,
            token_version: version,
            status: LinkStatus::Active,
            dead_reason: None,
            linked_at: 0,
            refreshed_at: None,
        }
    }

    const NOW: i64 = 1_000_000_000;

    #[test]
    fn refreshes_ahead_of_expiry_only_within_the_margin() {
        assert!(!needs_refresh(
            &link(1, NOW + 2 * REFRESH_MARGIN_MS),
            Need::Margin,
            1,
            NOW
        ));
        assert!(needs_refresh(
            &link(1, NOW + REFRESH_MARGIN_MS - 1),
            Need::Margin,
            1,
            NOW
        ));
        assert!(needs_refresh(&link(1, NOW - 1), Need::Margin, 1, NOW));
    }

    #[test]
    fn a_token_someone_else_stored_meanwhile_is_used_while_it_is_valid() {
        // Within the margin, but a newer version than we first saw: use it, do not refresh again.
        assert!(!needs_refresh(&link(2, NOW + 1000), Need::Margin, 1, NOW));
        assert!(!needs_refresh(
            &link(2, NOW + 1000),
            Need::Rejected(1),
            1,
            NOW
        ));
        // Unless it has expired too.
        assert!(needs_refresh(&link(2, NOW - 1), Need::Margin, 1, NOW));
    }

    #[test]
    fn a_rejected_token_is_replaced_only_if_it_is_still_the_stored_one() {
        assert!(needs_refresh(
            &link(3, NOW + 2 * REFRESH_MARGIN_MS),
            Need::Rejected(3),
            3,
            NOW
        ));
        assert!(!needs_refresh(
            &link(4, NOW + 2 * REFRESH_MARGIN_MS),
            Need::Rejected(3),
            4,
            NOW
        ));
    }

    #[test]
    fn only_the_state_hash_is_stored_and_it_is_stable() {
        let h = hash_state("abc");
        assert_eq!(h.len(), 64);
        assert_eq!(h, hash_state("abc"));
        assert_ne!(h, hash_state("abd"));
        assert!(!h.contains("abc"));
    }

    #[test]
    fn the_single_flight_table_forgets_idle_links() {
        let flights = RefreshFlights::default();
        let a = flights.lock_for("a");
        let again = flights.lock_for("a");
        assert!(Arc::ptr_eq(&a, &again));
        drop((a, again));
        let _b = flights.lock_for("b");
        assert_eq!(flights.locks.lock().unwrap().len(), 1);
    }
}
