//! Password hashing (argon2id) on threads of its own, at a lower CPU priority.
//!
//! argon2 takes tens of milliseconds of a core and 19 MiB per call. Sign-ins run it on all cores
//! but one (one on a machine of one or two), and those threads have a nice value of 10: when a
//! burst of sign-ins meets webhook intake, page requests or a database on the same machine, the
//! scheduler gives them the cores first and the sign-ins wait a little longer.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, LazyLock, Mutex};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::oneshot;

use crate::ServiceError;

/// The nice value of the hashing threads (0 is normal, 19 the lowest priority).
const NICENESS: i32 = 10;

type Work = Box<dyn FnOnce() + Send>;

/// The hashing threads' queue.
static HASHING: LazyLock<Mutex<Sender<Work>>> = LazyLock::new(|| {
    let (sender, receiver) = channel::<Work>();
    let receiver = Arc::new(Mutex::new(receiver));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for n in 0..cores.saturating_sub(1).max(1) {
        let receiver = receiver.clone();
        std::thread::Builder::new()
            .name(format!("argon2-{n}"))
            .spawn(move || hashing_thread(&receiver))
            .expect("the password hashing threads start");
    }
    Mutex::new(sender)
});

fn hashing_thread(queue: &Mutex<Receiver<Work>>) {
    // On Linux a nice value is per thread; `None` is the calling thread. Failing to lower one's
    // own priority only costs fairness, so it is logged, not fatal.
    if let Err(e) = rustix::process::setpriority_process(None, NICENESS) {
        tracing::warn!(error = %e, "cannot lower the priority of a password hashing thread");
    }
    loop {
        let work = match queue.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        match work {
            Ok(work) => work(),
            Err(_) => return,
        }
    }
}

async fn on_a_hashing_thread<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ServiceError> {
    let (answer, answered) = oneshot::channel();
    let job: Work = Box::new(move || {
        let _ = answer.send(work());
    });
    HASHING
        .lock()
        .map_err(|_| ServiceError::Internal("password hashing is shut down".into()))?
        .send(job)
        .map_err(|_| ServiceError::Internal("password hashing is shut down".into()))?;
    answered
        .await
        .map_err(|_| ServiceError::Internal("password hashing stopped".into()))
}

/// argon2id with the crate's default (OWASP-recommended) parameters, as a PHC string.
pub(crate) async fn hash_password(password: &SecretString) -> Result<String, ServiceError> {
    let password = password.clone();
    on_a_hashing_thread(move || {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        Argon2::default()
            .hash_password(password.expose_secret().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| ServiceError::Internal(format!("password hashing failed: {e}")))
    })
    .await?
}

/// Verifies a password against a stored PHC string; the comparison inside argon2 is constant time.
pub(crate) async fn verify_password(
    password: &SecretString,
    phc: &str,
) -> Result<bool, ServiceError> {
    let (password, phc) = (password.clone(), phc.to_owned());
    on_a_hashing_thread(move || {
        PasswordHash::new(&phc).is_ok_and(|h| {
            Argon2::default()
                .verify_password(password.expose_secret().as_bytes(), &h)
                .is_ok()
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nice values of this process's threads named `argon2-*`, from `/proc`.
    fn hashing_thread_niceness() -> Vec<i32> {
        let mut found = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").unwrap() {
            let dir = task.unwrap().path();
            let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            if !name.starts_with("argon2-") {
                continue;
            }
            let stat = std::fs::read_to_string(dir.join("stat")).unwrap();
            // Fields after the command's closing parenthesis; the nice value is field 19.
            let after = &stat[stat.rfind(')').unwrap() + 2..];
            found.push(after.split(' ').nth(16).unwrap().parse().unwrap());
        }
        found
    }

    #[tokio::test]
    async fn hashing_runs_on_its_own_threads_at_a_lower_priority() {
        let password = SecretString::from("correct horse battery staple".to_owned());
        let phc = hash_password(&password).await.unwrap();
        assert!(verify_password(&password, &phc).await.unwrap());
        let wrong = SecretString::from("wrong".to_owned());
        assert!(!verify_password(&wrong, &phc).await.unwrap());
        let niceness = hashing_thread_niceness();
        assert!(!niceness.is_empty());
        assert!(niceness.iter().all(|n| *n == NICENESS), "{niceness:?}");
    }
}
