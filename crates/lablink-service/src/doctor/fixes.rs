//! Repairs: each repairable finding has one, which changes GitLab and stores what lablink must
//! remember in the same order connecting does (GitLab first, then the row), except the webhook
//! secret and signing token, which are stored first so no delivery sent with the new ones is
//! ever refused.

use lablink_gitlab::Api;
use lablink_gitlab::api::HookSpec;
use lablink_store::repositories::{DeployKey, Repository};
use secrecy::SecretString;

use super::findings::{Code, Outcome, Repair};
use crate::repositories::{DEPLOY_KEY_TITLE, DEPLOY_TOKEN_NAME, signing_token, ssh_key};
use crate::rotation::Rotation;
use crate::secrets::random_secret;
use crate::{ServiceError, Services};

/// How long a replaced webhook secret stays valid: deliveries GitLab queued or retries with it.
const SECRET_GRACE_MS: i64 = 24 * 60 * 60 * 1000;

impl Services {
    /// Repairs one finding with `api` (a Maintainer-level client).
    pub(crate) async fn repair(
        &self,
        repo: &Repository,
        api: &Api,
        subdirectory: &str,
        code: Code,
    ) -> Repair {
        let result = match code {
            Code::WebhookMissing => self.recreate_hook(repo, api).await,
            Code::WebhookUrlMismatch
            | Code::WebhookEventsOff
            | Code::WebhookSslVerificationOff
            | Code::WebhookSecretMissing => self.reset_hook(repo, api).await,
            Code::WebhookDisabled => self.reenable_hook(repo, api).await,
            Code::ProjectTokenMissing
            | Code::ProjectTokenExpired
            | Code::ProjectTokenRevoked
            | Code::ProjectTokenRotatedOutside
            | Code::ProjectTokenRotationInterrupted => {
                let old = repo.project_token_id.unwrap_or_default();
                self.recreate_project_token(repo, old).await.map(describe)
            }
            Code::ProjectTokenExpiringSoon => match repo.project_token_id {
                Some(id) => self.rotate_project_token(&repo.id, id).await.map(describe),
                None => Err(ServiceError::NotFound("no project access token".into())),
            },
            Code::DeployTokenMissing | Code::DeployTokenRevoked => {
                self.recreate_deploy_token(repo, api).await
            }
            Code::DeployKeyMissing | Code::DeployKeyMismatch => {
                self.recreate_deploy_key(repo, api).await
            }
            Code::GitignoreIncomplete | Code::BuildFoldersTracked => self
                .fix_gitignore(repo, api, subdirectory)
                .await
                .map(Fix::Done),
            Code::UserLinkBroken
            | Code::RepositoryGone
            | Code::RepositoryNotInGroup
            | Code::ConnectorNotMaintainer
            | Code::RunsNotIsolated
            | Code::SandboxUnavailable
            | Code::WebhookSourcesRefused => {
                return Repair {
                    code,
                    outcome: Outcome::Manual,
                    message: "lablink cannot repair this; see the finding's fix.".into(),
                };
            }
        };
        match result {
            Ok(Fix::Done(message)) => Repair {
                code,
                outcome: Outcome::Repaired,
                message,
            },
            Ok(Fix::NeedsPerson(manual)) => Repair {
                code,
                outcome: Outcome::Manual,
                message: manual,
            },
            Err(e) => Repair {
                code,
                outcome: Outcome::Failed,
                message: e.to_string(),
            },
        }
    }

    pub(crate) fn webhook_url(&self, repository_id: &str) -> String {
        self.settings
            .public_link(&format!("/webhooks/gitlab/{repository_id}"))
    }

    fn hook_spec(&self, repo: &Repository, token: Option<SecretString>) -> HookSpec {
        HookSpec {
            url: self.webhook_url(&repo.id),
            token,
            signing_token: None,
            merge_requests_events: true,
            push_events: true,
            enable_ssl_verification: true,
        }
    }

    async fn recreate_hook(&self, repo: &Repository, api: &Api) -> Fixed {
        let secret = SecretString::from(random_secret());
        let signing = signing_token();
        let mut spec = self.hook_spec(repo, Some(secret.clone()));
        spec.signing_token = Some(signing.clone());
        let hook = api.create_hook(repo.gitlab_project_id, &spec).await?;
        let signing = (hook.signing_token_present == Some(true)).then_some(signing);
        self.db
            .replace_hook(&self.keys, &repo.id, hook.id, &secret, signing.as_ref())
            .await?;
        Ok(Fix::Done(format!(
            "created webhook {} with a new secret",
            hook.id
        )))
    }

    /// Puts lablink's settings back and resets the secret and the signing token together:
    /// GitLab never shows them, so a reset is the only way to know they are right. The new ones
    /// are stored first; the previous secret stays valid for a grace window.
    async fn reset_hook(&self, repo: &Repository, api: &Api) -> Fixed {
        let Some(hook_id) = repo.hook_id else {
            return self.recreate_hook(repo, api).await;
        };
        let secret = SecretString::from(random_secret());
        let signing = signing_token();
        let grace_until = lablink_store::now_ms() + SECRET_GRACE_MS;
        self.db
            .rotate_hook_secret(&self.keys, &repo.id, &secret, &signing, grace_until)
            .await?;
        let mut spec = self.hook_spec(repo, Some(secret));
        spec.signing_token = Some(signing);
        let hook = api
            .edit_hook(repo.gitlab_project_id, hook_id, &spec)
            .await?;
        if hook.signing_token_present != Some(true) {
            // GitLab before 19.0 signs nothing: the secret token alone proves deliveries.
            self.db.forget_signing_token(&repo.id).await?;
        }
        Ok(Fix::Done(
            "reset the webhook's URL, events, SSL verification, secret and signing token (the \
             previous secret stays valid for 24 hours)"
                .into(),
        ))
    }

    async fn reenable_hook(&self, repo: &Repository, api: &Api) -> Fixed {
        let Some(hook_id) = repo.hook_id else {
            return self.recreate_hook(repo, api).await;
        };
        match api
            .test_hook(repo.gitlab_project_id, hook_id, TEST_TRIGGER)
            .await
        {
            Err(e) if delivery_failed(&e) => {
                return Ok(Fix::NeedsPerson(format!(
                    "GitLab's test delivery failed ({e}): lablink's public URL {} is probably not \
                     reachable from GitLab (check firewalls, DNS and TLS)",
                    self.webhook_url(&repo.id)
                )));
            }
            other => other?,
        }
        let hook = api.hook(repo.gitlab_project_id, hook_id).await?;
        if hook.alert_status.as_deref() == Some("executable") {
            Ok(Fix::Done(
                "sent a test delivery; GitLab enabled the webhook again".into(),
            ))
        } else {
            Ok(Fix::NeedsPerson(format!(
                "sent a test delivery but GitLab still reports the webhook {}: lablink's public URL {} \
                 is probably not reachable from GitLab (check firewalls, DNS and TLS)",
                hook.alert_status.as_deref().unwrap_or("disabled"),
                self.webhook_url(&repo.id)
            )))
        }
    }

    async fn recreate_deploy_token(&self, repo: &Repository, api: &Api) -> Fixed {
        let issued = api
            .create_deploy_token(repo.gitlab_project_id, DEPLOY_TOKEN_NAME, None, None)
            .await?;
        self.db
            .replace_deploy_token(
                &self.keys,
                &repo.id,
                issued.info.id,
                &issued.info.username,
                &issued.token,
            )
            .await?;
        if let Some(old) = repo.deploy_token_id
            && let Err(e) = api.delete_deploy_token(repo.gitlab_project_id, old).await
        {
            // Best effort: a revoked or missing old token is already harmless.
            tracing::debug!(token = old, error = %e, "the old deploy token was not deleted");
        }
        Ok(Fix::Done(format!(
            "created deploy token {}",
            issued.info.id
        )))
    }

    async fn recreate_deploy_key(&self, repo: &Repository, api: &Api) -> Fixed {
        let key = ssh_key::generate();
        // Write access as connecting gave it: only where there is no project access token to
        // push with.
        let can_push = repo.project_token_id.is_none() && repo.ssh_url_to_repo.is_some();
        let added = api
            .create_deploy_key(
                repo.gitlab_project_id,
                DEPLOY_KEY_TITLE,
                &key.public,
                can_push,
            )
            .await?;
        self.db
            .replace_deploy_key(
                &self.keys,
                &repo.id,
                &DeployKey {
                    id: added.id,
                    public: key.public,
                    fingerprint: key.fingerprint,
                    private: key.private,
                },
            )
            .await?;
        if let Some(old) = repo.deploy_key_id.filter(|old| *old != added.id)
            && let Err(e) = api.delete_deploy_key(repo.gitlab_project_id, old).await
        {
            // The old key is not ours any more (or is gone); removing it keeps it from pushing.
            tracing::warn!(key = old, error = %e, "the old deploy key could not be removed");
        }
        Ok(Fix::Done(format!(
            "added a new SSH deploy key ({})",
            added.id
        )))
    }
}

/// Findings one repair fixes together: the webhook's settings and secret (one edit), the
/// project access token (one new token), `.gitignore` (one merge request).
pub(crate) fn repaired_together(a: Code, b: Code) -> bool {
    fn group(code: Code) -> Option<u8> {
        match code {
            Code::WebhookUrlMismatch
            | Code::WebhookEventsOff
            | Code::WebhookSslVerificationOff
            | Code::WebhookSecretMissing => Some(0),
            Code::ProjectTokenMissing
            | Code::ProjectTokenExpired
            | Code::ProjectTokenRevoked
            | Code::ProjectTokenRotatedOutside
            | Code::ProjectTokenRotationInterrupted => Some(1),
            Code::GitignoreIncomplete | Code::BuildFoldersTracked => Some(2),
            _ => None,
        }
    }
    group(a).is_some() && group(a) == group(b)
}

/// GitLab's answer to a hook test whose request to the receiver failed (GitLab answers 422).
pub(crate) fn delivery_failed(e: &lablink_gitlab::GitLabError) -> bool {
    matches!(
        e,
        lablink_gitlab::GitLabError::Unprocessable { .. }
            | lablink_gitlab::GitLabError::BadRequest { .. }
    )
}

/// The trigger of test deliveries: a push event, which never starts a CI run.
pub(crate) const TEST_TRIGGER: &str = "push_events";

/// What a repair that did not fail came to.
enum Fix {
    /// Repaired: what was done.
    Done(String),
    /// lablink could not finish it: what a person must do.
    NeedsPerson(String),
}

type Fixed = Result<Fix, ServiceError>;

fn describe(rotation: Rotation) -> Fix {
    match rotation {
        Rotation::Rotated {
            token_id,
            expires_on,
        } => Fix::Done(format!(
            "rotated the project access token (now {token_id}, expires {expires_on})"
        )),
        Rotation::Recreated {
            token_id,
            expires_on,
        } => Fix::Done(format!(
            "created a new project access token ({token_id}, expires {expires_on})"
        )),
        Rotation::Skipped(why) => Fix::Done(format!("nothing to do: {why}")),
        Rotation::NeedsAction(what) => Fix::NeedsPerson(what),
    }
}
