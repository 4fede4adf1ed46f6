//! Account settings → Integrations → GitLab: the admin registers the account's own GitLab OAuth
//! application (enterprise plans), is sent through GitLab's authorization, and comes back to
//! "Integration ready". Also the one place that decides which application an account uses.

pub use lablink_store::integrations::{IntegrationStatus, OAuthPurpose};

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use lablink_core::Plan;
use lablink_gitlab::oauth::{self, AppCredentials};
use lablink_gitlab::{GitLabError, Instance, InstanceConfig, NetworkPolicy};
use lablink_store::audit::AuditEvent;
use lablink_store::integrations::{Integration, NewIntegration};
use lablink_store::links::{Link, LinkStatus};
use secrecy::{ExposeSecret as _, SecretString};
use url::Url;

use crate::error::require;
use crate::links::{RefreshFlights, begin_authorization};
use crate::{Principal, ServiceError, Services};

/// The only scope lablink asks for: it reads repositories, creates hooks and tokens, and pushes.
pub const GITLAB_SCOPE: &str = "api";
/// The callback path, relative to the public URL.
pub const CALLBACK_PATH: &str = "/complete/gitlab";
const DEFAULT_INSTANCE: &str = "https://gitlab.com";
const MAX_FIELD_LEN: usize = 255;
const MAX_CA_BUNDLE_LEN: usize = 256 * 1024;

/// How long one request to GitLab may take.
const GITLAB_TIMEOUT: Duration = Duration::from_secs(20);

/// An application ready to use: the instance, its credentials and where they come from.
#[derive(Debug, Clone)]
pub struct ResolvedApp {
    pub instance: Instance,
    pub credentials: AppCredentials,
    /// The instance's normalised base URL, as stored with links and states.
    pub instance_url: String,
    /// The account's integration row, or `None` for the operator's application.
    pub integration: Option<Integration>,
}

impl ResolvedApp {
    /// True when `link` was made with this application (so its refresh token belongs to it).
    pub fn issued(&self, link: &Link) -> bool {
        self.instance_url == link.instance_url && self.credentials.client_id == link.application_id
    }
}

/// Per-process GitLab state: one HTTP client per instance, and the refresh single-flight table.
#[derive(Debug, Default)]
pub struct GitLabRuntime {
    instances: Mutex<HashMap<(String, Option<String>), Instance>>,
    pub(crate) flights: RefreshFlights,
}

/// The integration form, checked: what to save.
struct CheckedForm<'a> {
    application_id: &'a str,
    /// The typed secret, or the stored one when the field was left empty.
    secret: SecretString,
    ca_bundle: Option<&'a str>,
    /// The instance URL as typed, or gitlab.com.
    url: &'a str,
}

impl<'a> CheckedForm<'a> {
    fn of(
        form: &'a IntegrationForm,
        previous: Option<&Integration>,
    ) -> Result<CheckedForm<'a>, ServiceError> {
        let application_id = form.application_id.trim();
        if application_id.is_empty() {
            return Err(invalid(
                "Enter the Application ID that GitLab shows after saving the application.",
            ));
        }
        if application_id.len() > MAX_FIELD_LEN || application_id.chars().any(char::is_whitespace) {
            return Err(invalid(
                "The Application ID is a single word of letters and digits, as GitLab shows it; copy it again.",
            ));
        }
        let typed_secret = form.secret.expose_secret().trim();
        let secret = if !typed_secret.is_empty() {
            if typed_secret.len() > MAX_FIELD_LEN || typed_secret.chars().any(char::is_whitespace) {
                return Err(invalid(
                    "The Secret is a single word as GitLab shows it; copy it again.",
                ));
            }
            SecretString::from(typed_secret.to_owned())
        } else if let Some(prev) = previous {
            prev.secret.clone()
        } else {
            return Err(invalid(
                "Enter the Secret that GitLab shows after saving the application.",
            ));
        };
        let ca_bundle = Some(form.ca_bundle_pem.trim()).filter(|pem| !pem.is_empty());
        if ca_bundle.is_some_and(|pem| pem.len() > MAX_CA_BUNDLE_LEN) {
            return Err(invalid(
                "The CA bundle is too large; paste only the CA certificate(s) in PEM form.",
            ));
        }
        if ca_bundle.is_some_and(|pem| !pem.contains("-----BEGIN CERTIFICATE-----")) {
            return Err(invalid(
                "The CA bundle is not usable: no `-----BEGIN CERTIFICATE-----` block found. Paste the PEM \
                 certificate(s) of the CA that signed GitLab's certificate, or leave the field empty.",
            ));
        }
        let url = Some(form.instance_url.trim())
            .filter(|url| !url.is_empty())
            .unwrap_or(DEFAULT_INSTANCE);
        Ok(CheckedForm {
            application_id,
            secret,
            ca_bundle,
            url,
        })
    }
}

impl Services {
    /// The exact redirect URI to register in GitLab: `<public_url>/complete/gitlab`.
    pub fn gitlab_redirect_uri(&self) -> String {
        self.settings.public_link(CALLBACK_PATH)
    }

    fn gitlab_policy(&self) -> NetworkPolicy {
        NetworkPolicy {
            allow_http_loopback: self.settings.allow_http_loopback_gitlab,
            allow_private_networks: self.settings.allow_private_network_gitlab,
        }
    }

    /// A new client for `url`, checked against the operator's network policy.
    fn new_gitlab_instance(
        &self,
        url: &str,
        ca_bundle_pem: Option<&str>,
    ) -> Result<Instance, GitLabError> {
        let base_url = lablink_gitlab::transport::parse_base_url(url)?;
        Instance::new(InstanceConfig {
            base_url,
            ca_bundle_pem: ca_bundle_pem.map(str::to_owned),
            policy: self.gitlab_policy(),
            timeout: GITLAB_TIMEOUT,
        })
    }

    /// The client for a configured instance, cached so connections are reused. Only stored
    /// or configured instances are cached, never a URL an admin is still trying out.
    pub(crate) fn gitlab_instance(
        &self,
        url: &str,
        ca_bundle_pem: Option<&str>,
    ) -> Result<Instance, GitLabError> {
        let key = (url.to_owned(), ca_bundle_pem.map(str::to_owned));
        let cache = &self.gitlab.instances;
        if let Some(found) = cache.lock().expect("instance cache").get(&key) {
            return Ok(found.clone());
        }
        let instance = self.new_gitlab_instance(url, ca_bundle_pem)?;
        cache
            .lock()
            .expect("instance cache")
            .insert(key, instance.clone());
        Ok(instance)
    }

    pub(crate) fn resolve_integration(
        &self,
        row: Integration,
    ) -> Result<ResolvedApp, ServiceError> {
        let instance = self.gitlab_instance(&row.instance_url, row.ca_bundle_pem.as_deref())?;
        Ok(ResolvedApp {
            credentials: AppCredentials {
                client_id: row.application_id.clone(),
                client_secret: row.secret.clone(),
                redirect_uri: self.gitlab_redirect_uri(),
            },
            instance_url: instance.base_url().to_string(),
            instance,
            integration: Some(row),
        })
    }

    fn operator_app(&self) -> Result<Option<ResolvedApp>, ServiceError> {
        let Some(app) = &self.settings.operator_gitlab else {
            return Ok(None);
        };
        let instance = self.gitlab_instance(app.url.as_str(), None)?;
        Ok(Some(ResolvedApp {
            credentials: AppCredentials {
                client_id: app.app_id.clone(),
                client_secret: app.secret.clone(),
                redirect_uri: self.gitlab_redirect_uri(),
            },
            instance_url: instance.base_url().to_string(),
            instance,
            integration: None,
        }))
    }

    /// The application new links of the account are made with: the account's own (enterprise
    /// plans, once authorized) or else the operator's.
    pub(crate) async fn app_for_new_links(
        &self,
        account_id: &str,
        plan: Plan,
    ) -> Result<ResolvedApp, ServiceError> {
        if plan.allows_own_gitlab_app()
            && let Some(row) = self.db.gitlab_integration(&self.keys, account_id).await?
        {
            if row.status != IntegrationStatus::Ready {
                return Err(ServiceError::Conflict(
                    "The account's GitLab integration was saved but an admin has not yet authorized it at \
                     GitLab. Ask an account admin to open Account settings → Integrations → GitLab and click \
                     Authorize."
                        .to_owned(),
                ));
            }
            return self.resolve_integration(row);
        }
        self.operator_app()?.ok_or_else(|| {
            ServiceError::Conflict(
                "No GitLab application is configured yet. On Enterprise plans an account admin registers one \
                 under Account settings → Integrations → GitLab; otherwise lablink's operator must configure \
                 gitlab_app_id and gitlab_app_secret."
                    .to_owned(),
            )
        })
    }

    /// Records a GitLab integration event in the account's audit log.
    pub(crate) async fn audit_gitlab(
        &self,
        account_id: &str,
        actor_user_id: &str,
        action: &str,
        detail: String,
    ) -> Result<(), ServiceError> {
        // Links are a user's, the integration is the account's.
        let target = if action.starts_with("gitlab.integration") {
            "GitLab integration".to_owned()
        } else {
            "GitLab link".to_owned()
        };
        self.audit(AuditEvent {
            account_id: Some(account_id),
            actor_user_id: Some(actor_user_id),
            action,
            target: Some(target),
            detail,
            client_ip: None,
            ..AuditEvent::default()
        })
        .await?;
        Ok(())
    }

    /// The application that issued `link`'s tokens, if the account still uses it.
    pub(crate) async fn app_for_link(
        &self,
        link: &Link,
    ) -> Result<Option<ResolvedApp>, ServiceError> {
        if let Some(row) = self
            .db
            .gitlab_integration(&self.keys, &link.account_id)
            .await?
        {
            let app = self.resolve_integration(row)?;
            if app.issued(link) {
                return Ok(Some(app));
            }
        }
        Ok(self.operator_app()?.filter(|app| app.issued(link)))
    }
}

/// What the integration page shows.
#[derive(Debug, Clone)]
pub struct IntegrationView {
    /// False on Developer/Starter plans: the operator's application is used.
    pub plan_allows_own_app: bool,
    pub plan: Plan,
    pub redirect_uri: String,
    pub scope: &'static str,
    /// The saved application, if any (the secret is never shown back).
    pub instance_url: String,
    pub application_id: Option<String>,
    pub has_ca_bundle: bool,
    pub status: Option<IntegrationStatus>,
    /// The operator's instance, when this account uses it.
    pub operator_instance_url: Option<String>,
    /// Links that a change of instance or application would disconnect.
    pub linked_accounts: usize,
}

/// What an admin typed into the form.
#[derive(Debug, Clone, Default)]
pub struct IntegrationForm {
    pub instance_url: String,
    pub application_id: String,
    /// Blank keeps the stored secret (it is never shown back).
    pub secret: SecretString,
    pub ca_bundle_pem: String,
}

/// The result of saving: where to send the admin, and what happened to existing links.
#[derive(Debug)]
pub struct Saved {
    /// GitLab's consent page, when saved from a browser session.
    pub authorize_url: Option<Url>,
    /// Links made with the previous instance or application, now marked dead.
    pub links_disconnected: usize,
}

/// The result of removing the application.
#[derive(Debug, Default)]
pub struct Removed {
    pub links_removed: usize,
    /// Tokens GitLab could not be told to revoke (each message says why).
    pub revoke_failures: Vec<String>,
}

/// The reason stored on links made with an application the account no longer uses.
pub const APP_CHANGED_REASON: &str = "the GitLab application changed; link again";

fn require_admin(caller: &Principal) -> Result<(), ServiceError> {
    require(
        caller.role.can_manage_account(),
        "Only account admins can see and change the GitLab integration.",
    )
}

fn require_plan(caller: &Principal) -> Result<(), ServiceError> {
    if caller.plan.allows_own_gitlab_app() {
        Ok(())
    } else {
        Err(ServiceError::Forbidden(format!(
            "Your account is on the {} plan. A self-managed GitLab instance and your own GitLab application \
                 are available on the Enterprise and Enterprise+ plans; on your plan lablink uses its operator's \
                 application for gitlab.com, so developers can link their GitLab accounts under Profile → Linked \
                 accounts without any setup here.",
            caller.plan.label()
        )))
    }
}

/// The admin's use cases.
impl Services {
    /// The page's content.
    #[tracing::instrument(
        skip_all,
        fields(account_id = %caller.account_id, user_id = %caller.user_id),
    )]
    pub async fn gitlab_integration_view(
        &self,
        caller: &Principal,
    ) -> Result<IntegrationView, ServiceError> {
        require_admin(caller)?;
        let db = &self.db;
        let row = db
            .gitlab_integration(&self.keys, &caller.account_id)
            .await?;
        let linked = db
            .gitlab_links_of_account(&self.keys, &caller.account_id)
            .await?
            .len();
        let own = caller.plan.allows_own_gitlab_app();
        Ok(IntegrationView {
            plan_allows_own_app: own,
            plan: caller.plan,
            redirect_uri: self.gitlab_redirect_uri(),
            scope: GITLAB_SCOPE,
            instance_url: row.as_ref().map_or_else(
                || DEFAULT_INSTANCE.to_owned(),
                |r| display_url(&r.instance_url),
            ),
            application_id: row.as_ref().map(|r| r.application_id.clone()),
            has_ca_bundle: row.as_ref().is_some_and(|r| r.ca_bundle_pem.is_some()),
            status: row.as_ref().map(|r| r.status),
            operator_instance_url: match (&row, own) {
                (Some(_), true) => None,
                _ => self
                    .settings
                    .operator_gitlab
                    .as_ref()
                    .map(|a| display_url(a.url.as_str())),
            },
            linked_accounts: linked,
        })
    }

    /// Validates and saves the application, disconnects links made with another one, and
    /// starts the admin's authorization at GitLab.
    #[tracing::instrument(
        skip_all,
        fields(account_id = %caller.account_id, user_id = %caller.user_id),
    )]
    pub async fn save_gitlab_integration(
        &self,
        caller: &Principal,
        browser_session: Option<&str>,
        form: IntegrationForm,
    ) -> Result<Saved, ServiceError> {
        require_admin(caller)?;
        require_plan(caller)?;
        let previous = self
            .db
            .gitlab_integration(&self.keys, &caller.account_id)
            .await?;
        let checked = CheckedForm::of(&form, previous.as_ref())?;
        let instance = self
            .new_gitlab_instance(checked.url, checked.ca_bundle)
            .map_err(|e| invalid_gitlab(checked.url, e))?;
        instance
            .probe()
            .await
            .map_err(|e| invalid_gitlab(checked.url, e))?;
        let instance_url = instance.base_url().to_string();
        let application_id = checked.application_id;

        let stale = self
            .links_of_another_app(&caller.account_id, &instance_url, application_id)
            .await?;
        let row = self
            .db
            .save_gitlab_integration(
                &self.keys,
                NewIntegration {
                    account_id: &caller.account_id,
                    instance_url: &instance_url,
                    application_id,
                    secret: &checked.secret,
                    ca_bundle_pem: checked.ca_bundle,
                    saved_by: &caller.user_id,
                },
            )
            .await?;
        let app = self.resolve_integration(row)?;
        let links_disconnected = self.disconnect_links(stale).await?;
        tracing::info!(
            account_id = %caller.account_id,
            instance = %instance_url,
            links_disconnected,
            "GitLab integration saved, awaiting the admin's authorization"
        );
        self.audit_gitlab(
            &caller.account_id,
            &caller.user_id,
            "gitlab.integration.saved",
            format!(
                "{instance_url} application {application_id}; {links_disconnected} link(s) disconnected"
            ),
        )
        .await?;
        // Authorization happens in a browser: only a browser session can complete it.
        let authorize_url = match browser_session {
            Some(session) => Some(
                begin_authorization(self, caller, session, OAuthPurpose::AdminAuthorize, &app)
                    .await?,
            ),
            None => None,
        };
        Ok(Saved {
            authorize_url,
            links_disconnected,
        })
    }

    /// The account's links made with another instance or application: they cannot refresh with
    /// the new one. Each comes with the application that issued it (looked up before it is
    /// replaced), to revoke its grant.
    async fn links_of_another_app(
        &self,
        account_id: &str,
        instance_url: &str,
        application_id: &str,
    ) -> Result<Vec<(Link, Option<ResolvedApp>)>, ServiceError> {
        let mut stale = Vec::new();
        for link in self
            .db
            .gitlab_links_of_account(&self.keys, account_id)
            .await?
        {
            if link.instance_url != instance_url || link.application_id != application_id {
                let issuer = self.app_for_link(&link).await?;
                stale.push((link, issuer));
            }
        }
        Ok(stale)
    }

    /// Marks the links dead (they say "link again") and revokes their grants at their issuer;
    /// how many were live.
    async fn disconnect_links(
        &self,
        links: Vec<(Link, Option<ResolvedApp>)>,
    ) -> Result<usize, ServiceError> {
        let mut disconnected = 0;
        for (link, issuer) in links {
            if link.status == LinkStatus::Active
                && self
                    .db
                    .mark_gitlab_link_dead(&link.id, link.token_version, APP_CHANGED_REASON)
                    .await?
            {
                disconnected += 1;
            }
            if let Some(issuer) = issuer
                && let Err(e) =
                    oauth::revoke(&issuer.instance, &issuer.credentials, &link.refresh_token).await
            {
                tracing::warn!(link_id = %link.id, error = %e, "revoking a disconnected link failed");
            }
        }
        Ok(disconnected)
    }

    /// Sends the admin to GitLab again for a saved integration (for example after declining).
    #[tracing::instrument(
        skip_all,
        fields(account_id = %caller.account_id, user_id = %caller.user_id),
    )]
    pub async fn authorize_gitlab_integration(
        &self,
        caller: &Principal,
        session_key: &str,
    ) -> Result<Url, ServiceError> {
        require_admin(caller)?;
        require_plan(caller)?;
        let row = self
            .db
            .gitlab_integration(&self.keys, &caller.account_id)
            .await?
            .ok_or_else(|| {
                ServiceError::Conflict(
                    "No GitLab application is saved yet; fill in the form first.".to_owned(),
                )
            })?;
        let app = self.resolve_integration(row)?;
        begin_authorization(
            self,
            caller,
            session_key,
            OAuthPurpose::AdminAuthorize,
            &app,
        )
        .await
    }

    /// Removes the account's application: every link made with it is revoked at GitLab (as far
    /// as GitLab answers) and deleted; the account falls back to the operator's application.
    #[tracing::instrument(
        skip_all,
        fields(account_id = %caller.account_id, user_id = %caller.user_id),
    )]
    pub async fn remove_gitlab_integration(
        &self,
        caller: &Principal,
    ) -> Result<Removed, ServiceError> {
        require_admin(caller)?;
        let db = &self.db;
        let keys = &*self.keys;
        let Some(row) = db.gitlab_integration(keys, &caller.account_id).await? else {
            return Ok(Removed::default());
        };
        let app = self.resolve_integration(row)?;
        let mut removed = Removed::default();
        for link in db.gitlab_links_of_account(keys, &caller.account_id).await? {
            if !app.issued(&link) {
                continue;
            }
            if let Err(e) =
                oauth::revoke(&app.instance, &app.credentials, &link.refresh_token).await
            {
                removed
                    .revoke_failures
                    .push(format!("@{}: {e}", link.gitlab_username));
            }
            if db.delete_gitlab_link(&link.id).await? {
                removed.links_removed += 1;
            }
        }
        db.delete_gitlab_integration(&caller.account_id).await?;
        self.audit_gitlab(
            &caller.account_id,
            &caller.user_id,
            "gitlab.integration.removed",
            format!("{} link(s) revoked and removed", removed.links_removed),
        )
        .await?;
        tracing::info!(account_id = %caller.account_id, links_removed = removed.links_removed, "GitLab integration removed");
        Ok(removed)
    }
}

fn invalid(message: &str) -> ServiceError {
    ServiceError::BadInput(message.to_owned())
}

/// A URL, CA or probe problem is the admin's input to fix, so it is reported as invalid input.
fn invalid_gitlab(url: &str, err: GitLabError) -> ServiceError {
    ServiceError::BadInput(format!("GitLab instance URL {url}: {err}"))
}

/// A stored base URL as people type it (without the trailing slash).
fn display_url(url: &str) -> String {
    url.trim_end_matches('/').to_owned()
}
