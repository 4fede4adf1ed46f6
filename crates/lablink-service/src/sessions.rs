//! Sign-in (with throttling), browser sessions, CSRF tokens, sign-out.

use std::sync::OnceLock;

use lablink_store::audit::AuditEvent;
use lablink_store::login_throttle::ThrottleState;
use lablink_store::now_ms;
use secrecy::SecretString;
use sha2::{Digest, Sha256};

use crate::accounts::{hash_password, verify_password};
use crate::secrets::{random_secret, secret_hash};
use crate::{Principal, ServiceError, Services};

/// Failures allowed before a sign-in key is locked.
const FREE_FAILURES: i64 = 5;
/// The first lock lasts this long and doubles with every further failure, up to [`MAX_LOCK_MS`].
const FIRST_LOCK_MS: i64 = 30_000;
const MAX_LOCK_MS: i64 = 15 * 60_000;
/// `last_seen_at` is written at most this often, so reads do not all become writes.
const TOUCH_EVERY_MS: i64 = 60_000;

/// A signed-in browser: the secret for the cookie and who it belongs to.
#[derive(Debug)]
pub struct NewSession {
    pub session_id: SecretString,
    pub principal: Principal,
}

/// A live session of a request.
#[derive(Debug, Clone)]
pub struct ActiveSession {
    pub principal: Principal,
    pub id_hash: String,
}

/// The CSRF token for a browser secret (a session id, or the pre-session cookie of a sign-in
/// form). Derived, not stored: a one-way hash of a secret only the browser holds, in a separate
/// domain from the stored session hash, so neither reveals the other.
pub fn csrf_token(browser_secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"lablink csrf v1\0");
    h.update(browser_secret.as_bytes());
    hex::encode(h.finalize())
}

fn throttle_key(email: &str, client_ip: Option<&str>) -> String {
    format!(
        "{}|{}",
        email.trim().to_lowercase(),
        client_ip.unwrap_or("-")
    )
}

fn lock_ms(failures: i64) -> i64 {
    let doublings = (failures - FREE_FAILURES).clamp(0, 10) as u32;
    (FIRST_LOCK_MS << doublings).min(MAX_LOCK_MS)
}

/// A hash to verify against when the email is unknown, so an unknown email costs the same time
/// as a wrong password and does not reveal which emails exist.
fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| hash_password(&SecretString::from(random_secret())).unwrap_or_default())
}

impl Services {
    /// Signs a user in with email and password, throttled per email and client address.
    pub async fn login(
        &self,
        email: &str,
        password: &SecretString,
        client_ip: Option<&str>,
    ) -> Result<NewSession, ServiceError> {
        let key = throttle_key(email, client_ip);
        let now = now_ms();
        let state = self.db.throttle_state(&key).await?;
        if let Some(s) = state.filter(|s| s.locked_until > now) {
            let secs = (s.locked_until - now + 999) / 1000;
            return Err(ServiceError::Throttled {
                retry_after_secs: secs as u64,
            });
        }
        let creds = self
            .db
            .user_credentials_by_email(&email.trim().to_lowercase())
            .await?;
        let phc = creds
            .as_ref()
            .map(|c| c.password_hash.as_str())
            .unwrap_or_else(|| dummy_hash());
        let password_ok = verify_password(password, phc);
        let Some(creds) = creds.filter(|_| password_ok) else {
            let failures = state.map_or(0, |s| s.failures) + 1;
            let locked_until = if failures >= FREE_FAILURES {
                now + lock_ms(failures)
            } else {
                0
            };
            self.db
                .save_throttle_state(
                    &key,
                    ThrottleState {
                        failures,
                        locked_until,
                    },
                    now,
                )
                .await?;
            self.db
                .record_audit(AuditEvent {
                    action: "login.failed",
                    detail: format!("for {}", email.trim()),
                    client_ip,
                    ..AuditEvent::default()
                })
                .await?;
            return Err(ServiceError::Unauthenticated(
                "The email or password is not correct.".into(),
            ));
        };
        self.db.clear_throttle(&key).await?;
        let session = self.start_session(&creds.user.id).await?;
        self.db
            .record_audit(AuditEvent {
                account_id: Some(&session.principal.account_id),
                actor_user_id: Some(&session.principal.user_id),
                action: "login.succeeded",
                detail: String::new(),
                client_ip,
            })
            .await?;
        Ok(session)
    }

    /// Opens a session for a user who just proved who they are (sign-in, setup).
    pub async fn start_session(&self, user_id: &str) -> Result<NewSession, ServiceError> {
        let secret = random_secret();
        let hash = secret_hash(&secret);
        self.db.create_session(&hash, user_id, now_ms()).await?;
        let record = self
            .db
            .session(&hash)
            .await?
            .ok_or_else(|| ServiceError::Internal("a new session vanished".into()))?;
        Ok(NewSession {
            session_id: SecretString::from(secret),
            principal: record.principal,
        })
    }

    /// The session behind a cookie, if it exists and has neither been idle too long nor lived
    /// past its absolute lifetime. An expired session is deleted.
    pub async fn session(&self, session_id: &str) -> Result<ActiveSession, ServiceError> {
        let hash = secret_hash(session_id);
        let ended = || {
            ServiceError::Unauthenticated("Your session has ended. Please sign in again.".into())
        };
        let record = self.db.session(&hash).await?.ok_or_else(ended)?;
        let now = now_ms();
        let idle = self.settings.session_idle.as_millis() as i64;
        let absolute = self.settings.session_absolute.as_millis() as i64;
        if now - record.last_seen_at > idle || now - record.created_at > absolute {
            self.db.delete_session(&hash).await?;
            return Err(ended());
        }
        if now - record.last_seen_at > TOUCH_EVERY_MS {
            self.db.touch_session(&hash, now).await?;
        }
        Ok(ActiveSession {
            principal: record.principal,
            id_hash: hash,
        })
    }

    /// Ends one session (sign out of this browser).
    pub async fn logout(&self, session: &ActiveSession) -> Result<(), ServiceError> {
        self.db.delete_session(&session.id_hash).await?;
        Ok(())
    }

    /// Ends every session of the user, on every device.
    pub async fn logout_everywhere(&self, principal: &Principal) -> Result<u64, ServiceError> {
        let n = self.db.delete_sessions_of_user(&principal.user_id).await?;
        self.db
            .record_audit(AuditEvent {
                account_id: Some(&principal.account_id),
                actor_user_id: Some(&principal.user_id),
                action: "logout.everywhere",
                detail: format!("{n} sessions ended"),
                client_ip: None,
            })
            .await?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_grow_and_are_capped() {
        assert_eq!(lock_ms(5), 30_000);
        assert_eq!(lock_ms(6), 60_000);
        assert_eq!(lock_ms(40), MAX_LOCK_MS);
    }

    #[test]
    fn csrf_tokens_differ_from_the_stored_session_hash() {
        let s = random_secret();
        assert_ne!(csrf_token(&s), secret_hash(&s));
        assert_eq!(csrf_token(&s), csrf_token(&s));
    }
}
