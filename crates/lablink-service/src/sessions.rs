//! Sign-in (with throttling), browser sessions, CSRF tokens, sign-out.

use lablink_store::audit::AuditEvent;
use lablink_store::now_ms;
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use crate::passwords::{hash_password, verify_password};
use crate::secrets::{random_secret, secret_hash};
use crate::{Principal, ServiceError, Services};

/// The first lock lasts this long and doubles with every further failure, up to [`MAX_LOCK_MS`].
const FIRST_LOCK_MS: i64 = 30_000;
const MAX_LOCK_MS: i64 = 15 * 60_000;
/// Failures are forgotten after this long without another one.
const FORGET_AFTER_MS: i64 = 60 * 60_000;
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

/// What seals pre-session cookies: they are only accepted when lablink issued them.
const PRE_SESSION_AAD: &str = "lablink pre-session v1";

/// What sign-in failures are counted against: the account's email (5 free failures, so guessing
/// one account's password is slow from anywhere) and the client's address (20, more generous
/// because offices and NATs share an address, but guessing many accounts from one address is
/// slow too). A key is locked after its free failures, for longer with every further one.
struct ThrottleKey {
    key: String,
    free_failures: i64,
}

fn throttle_keys(email: &str, client_ip: Option<&str>) -> Vec<ThrottleKey> {
    let mut keys = vec![ThrottleKey {
        key: format!("account|{}", email.trim().to_lowercase()),
        free_failures: 5,
    }];
    if let Some(ip) = client_ip {
        keys.push(ThrottleKey {
            key: format!("address|{ip}"),
            free_failures: 20,
        });
    }
    keys
}

/// How long a key is locked after its `failures`-th failure (none while it has free ones left).
fn lock_ms(failures: i64, free_failures: i64) -> Option<i64> {
    let doublings = u32::try_from(failures - free_failures).ok()?.min(10);
    Some((FIRST_LOCK_MS << doublings).min(MAX_LOCK_MS))
}

/// A hash to verify against when the email is unknown, so an unknown email costs the same time
/// as a wrong password and does not reveal which emails exist.
async fn dummy_hash() -> Result<&'static str, ServiceError> {
    static HASH: OnceCell<String> = OnceCell::const_new();
    HASH.get_or_try_init(|| async { hash_password(&SecretString::from(random_secret())).await })
        .await
        .map(String::as_str)
}

impl Services {
    /// A new pre-session cookie value: a random secret sealed under the master key, so that a
    /// cookie planted by someone else (a sibling subdomain, a man in the middle on http) is not
    /// accepted and cannot carry a CSRF token its planter knows.
    pub fn new_pre_session(&self) -> String {
        use base64::Engine;
        let sealed = self.keys.seal(PRE_SESSION_AAD, random_secret().as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed)
    }

    /// True when `cookie` is a pre-session value this lablink issued (under any of its keys).
    pub fn pre_session_is_ours(&self, cookie: &str) -> bool {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(cookie)
            .is_ok_and(|sealed| self.keys.open(PRE_SESSION_AAD, &sealed).is_ok())
    }

    /// Signs a user in with email and password, throttled per email and client address.
    #[tracing::instrument(skip_all)]
    pub async fn login(
        &self,
        email: &str,
        password: &SecretString,
        client_ip: Option<&str>,
    ) -> Result<NewSession, ServiceError> {
        let keys = throttle_keys(email, client_ip);
        let now = now_ms();
        let mut locked_until = 0;
        for k in &keys {
            locked_until = locked_until.max(self.db.throttle_locked_until(&k.key).await?);
        }
        if locked_until > now {
            let secs = (locked_until - now + 999) / 1000;
            return Err(ServiceError::Throttled {
                retry_after_secs: secs as u64,
            });
        }
        let creds = self
            .db
            .user_credentials_by_email(&email.trim().to_lowercase())
            .await?;
        // An account's IP restrictions apply to signing in too; a refusal counts as a failed
        // attempt, so the different answer cannot be used to list emails quickly.
        if let Some(c) = &creds
            && let Err(denied) = self
                .check_client_address(&c.user.account_id, client_ip)
                .await
        {
            self.record_failed_login(&keys, now).await?;
            return Err(denied);
        }
        let phc = match &creds {
            Some(c) => c.password_hash.as_str(),
            None => dummy_hash().await?,
        };
        let password_ok = verify_password(password, phc).await?;
        // A failed attempt at a known email is in that account's audit log.
        let account_of_email = creds.as_ref().map(|c| c.user.account_id.clone());
        let Some(creds) = creds.filter(|_| password_ok) else {
            self.record_failed_login(&keys, now).await?;
            self.audit(AuditEvent {
                account_id: account_of_email.as_deref(),
                action: "login.failed",
                outcome: lablink_store::audit::AuditOutcome::Failure,
                target: Some(format!("user {}", email.trim())),
                detail: format!("for {}", email.trim()),
                client_ip,
                ..AuditEvent::default()
            })
            .await?;
            return Err(ServiceError::Unauthenticated(
                "The email or password is not correct.".into(),
            ));
        };
        // The account's count starts over; the address's does not (one good password must not
        // wipe out a run of guesses at other accounts).
        self.db.clear_throttle(&keys[0].key).await?;
        let session = self.start_session(&creds.user.id).await?;
        self.audit(AuditEvent {
            account_id: Some(&session.principal.account_id),
            actor_user_id: Some(&session.principal.user_id),
            action: "login.succeeded",
            detail: String::new(),
            client_ip,
            ..AuditEvent::default()
        })
        .await?;
        Ok(session)
    }

    async fn record_failed_login(
        &self,
        keys: &[ThrottleKey],
        now: i64,
    ) -> Result<(), ServiceError> {
        for k in keys {
            let failures = self
                .db
                .count_failed_login(&k.key, now, now - FORGET_AFTER_MS)
                .await?;
            if let Some(ms) = lock_ms(failures, k.free_failures) {
                self.db.lock_throttle(&k.key, now + ms).await?;
            }
        }
        Ok(())
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
    #[tracing::instrument(skip_all)]
    pub async fn logout(&self, session: &ActiveSession) -> Result<(), ServiceError> {
        self.db.delete_session(&session.id_hash).await?;
        self.audit(AuditEvent {
            account_id: Some(&session.principal.account_id),
            actor_user_id: Some(&session.principal.user_id),
            action: "logout",
            ..AuditEvent::default()
        })
        .await
    }

    /// Ends every session of the user, on every device.
    #[tracing::instrument(
        skip_all,
        fields(account_id = %principal.account_id, user_id = %principal.user_id),
    )]
    pub async fn logout_everywhere(&self, principal: &Principal) -> Result<u64, ServiceError> {
        let n = self.db.delete_sessions_of_user(&principal.user_id).await?;
        self.audit(AuditEvent {
            account_id: Some(&principal.account_id),
            actor_user_id: Some(&principal.user_id),
            action: "logout.everywhere",
            detail: format!("{n} sessions ended"),
            client_ip: None,
            ..AuditEvent::default()
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
        assert_eq!(lock_ms(4, 5), None);
        assert_eq!(lock_ms(5, 5), Some(30_000));
        assert_eq!(lock_ms(6, 5), Some(60_000));
        assert_eq!(lock_ms(40, 5), Some(MAX_LOCK_MS));
        assert_eq!(lock_ms(19, 20), None);
    }

    #[test]
    fn csrf_tokens_differ_from_the_stored_session_hash() {
        let s = random_secret();
        assert_ne!(csrf_token(&s), secret_hash(&s));
        assert_eq!(csrf_token(&s), csrf_token(&s));
    }
}
