//! How a SQLite connection waits for the write lock.
//!
//! SQLite's own busy handler (behind `busy_timeout`) sleeps 1, 2, 5, 10, 15, 20, 25 … 100 ms
//! between tries. Next to a stream of short write transactions (intake's group commit beside the
//! CI loops) that turns a wait of a few hundred microseconds for the lock into milliseconds, and
//! a busy second into tens of milliseconds per delivery. This handler tries again every 50 µs
//! for the first 20 ms, then every millisecond, within the same 10 s budget.

use std::ffi::{c_int, c_void};
use std::time::Duration;

use sqlx::SqliteConnection;

const QUICK_TRIES: c_int = 400;
const QUICK_WAIT: Duration = Duration::from_micros(50);
const SLOW_WAIT: Duration = Duration::from_millis(1);
/// About 10 s in all: 400 × 50 µs, then 1 ms per try.
const MAX_TRIES: c_int = QUICK_TRIES + 9_980;

/// Called by SQLite, on the connection's own thread, with how many times it has already waited
/// for this lock; non-zero means "try again".
extern "C" fn wait_and_retry(_: *mut c_void, tries: c_int) -> c_int {
    if tries >= MAX_TRIES {
        return 0;
    }
    std::thread::sleep(if tries < QUICK_TRIES {
        QUICK_WAIT
    } else {
        SLOW_WAIT
    });
    1
}

/// Replaces the connection's busy handler (and so its `busy_timeout`) with [`wait_and_retry`].
#[allow(unsafe_code)]
pub(crate) async fn install(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    let raw = handle.as_raw_handle().as_ptr();
    // SAFETY: `raw` is this connection's open handle, locked for our exclusive use while
    // `handle` lives; the handler is a plain function without state, so the null user pointer is
    // never read.
    let rc = unsafe {
        libsqlite3_sys::sqlite3_busy_handler(raw, Some(wait_and_retry), std::ptr::null_mut())
    };
    if rc == libsqlite3_sys::SQLITE_OK {
        Ok(())
    } else {
        Err(sqlx::Error::Protocol(format!(
            "cannot set the SQLite busy handler (code {rc})"
        )))
    }
}
