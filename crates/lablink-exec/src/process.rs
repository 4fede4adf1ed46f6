//! The process runner used for dbt and git: own process group, explicit environment, line
//! streaming with redaction, timeout and cancellation that kill the whole group.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process_group};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::error::ExecError;
use crate::limits::{LimitExceeded, Watch};
use crate::redact::Redactor;

/// Variables copied from the parent environment when a caller has no better list: enough to find
/// programs and decode text, nothing that carries credentials.
pub const DEFAULT_INHERITED_ENV: &[&str] = &["PATH", "LANG", "LC_ALL", "TZ", "TMPDIR"];

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One line of process output, already redacted, without its line terminator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub stream: Stream,
    pub line: String,
}

/// Appended to a line that was cut at [`ProcessSpec::max_line_bytes`].
pub const LINE_TRUNCATED: &str = " [line truncated]";

/// Everything needed to run one process.
#[derive(Clone)]
pub struct ProcessSpec {
    pub program: OsString,
    pub args: Vec<OsString>,
    pub cwd: PathBuf,
    /// Names of variables copied from this process's environment when set there.
    pub inherit_env: Vec<String>,
    /// Variables set explicitly; they win over inherited ones. Values may be secrets.
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
    /// How long the group gets between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
    pub max_line_bytes: usize,
    pub redactor: Arc<Redactor>,
    /// Limits watched while it runs (a sandboxed dbt process): a passed limit ends it.
    pub watch: Option<Watch>,
}

impl std::fmt::Debug for ProcessSpec {
    // Values of `env` are left out on purpose: they may hold credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessSpec")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("cwd", &self.cwd)
            .field("inherit_env", &self.inherit_env)
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl ProcessSpec {
    /// A spec with the default environment allow-list, a 16 KiB line limit, a 5 s kill grace and
    /// no secrets to redact.
    pub fn new(program: impl Into<OsString>, cwd: impl Into<PathBuf>, timeout: Duration) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            cwd: cwd.into(),
            inherit_env: DEFAULT_INHERITED_ENV
                .iter()
                .map(|s| s.to_string())
                .collect(),
            env: Vec::new(),
            timeout,
            kill_grace: Duration::from_secs(5),
            max_line_bytes: 16 * 1024,
            redactor: Arc::new(Redactor::default()),
            watch: None,
        }
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn redactor(mut self, redactor: Arc<Redactor>) -> Self {
        self.redactor = redactor;
        self
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .current_dir(&self.cwd)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Leader of a new group: signals to the group reach every descendant that did not
            // deliberately leave it (dbt threads, git-remote-http, `sleep &` in scripts).
            .process_group(0)
            // Lets tokio reap the leader if the run is abandoned (the group guard kills it).
            .kill_on_drop(true);
        for name in &self.inherit_env {
            if let Some(value) = std::env::var_os(name) {
                cmd.env(name, value);
            }
        }
        for (key, value) in &self.env {
            cmd.env(key, value);
        }
        cmd
    }
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    /// It exited on its own (or by a signal nobody here sent).
    Exited(ExitStatus),
    /// It ran past its timeout and its group was killed.
    TimedOut,
    /// The cancellation token fired and its group was killed.
    Cancelled,
    /// It passed one of its limits and was killed.
    LimitExceeded(LimitExceeded),
}

impl Termination {
    pub fn success(&self) -> bool {
        matches!(self, Self::Exited(status) if status.success())
    }

    /// The exit code when the process exited normally.
    pub fn code(&self) -> Option<i32> {
        match self {
            Self::Exited(status) => status.code(),
            Self::TimedOut | Self::Cancelled | Self::LimitExceeded(_) => None,
        }
    }
}

/// Runs `spec`, sending every output line to `sink`, until it exits, times out or `cancel` fires.
///
/// When the leader exits, what is left of its group is killed too, so no stray descendant outlives
/// the run or keeps its output pipes open. If the returned future is dropped midway, the group is
/// killed as well. A closed `sink` does not stop the process; its output is then discarded.
pub async fn run(
    spec: &ProcessSpec,
    sink: mpsc::Sender<LogLine>,
    cancel: &CancellationToken,
) -> Result<Termination, ExecError> {
    let mut child = spec.command().spawn().map_err(|source| ExecError::Spawn {
        program: spec.program.to_string_lossy().into_owned(),
        cwd: spec.cwd.clone(),
        source,
    })?;
    let group = GroupGuard::new(&child)?;
    let logged = Arc::new(AtomicU64::new(0));
    let pumps = [
        child.stdout.take().map(|out| {
            let log = Output::new(Stream::Stdout, sink.clone(), spec, &logged);
            tokio::spawn(pump(out, log))
        }),
        child.stderr.take().map(|err| {
            let log = Output::new(Stream::Stderr, sink, spec, &logged);
            tokio::spawn(pump(err, log))
        }),
    ];
    let root = child.id();
    let watchdog = async {
        match (&spec.watch, root) {
            (Some(watch), Some(pid)) => watch.until_exceeded(pid, Arc::clone(&logged)).await,
            _ => std::future::pending().await,
        }
    };

    let mut termination = tokio::select! {
        status = child.wait() => Termination::Exited(status.map_err(ExecError::Wait)?),
        () = tokio::time::sleep(spec.timeout) => {
            terminate(&mut child, &group, spec.kill_grace).await?;
            Termination::TimedOut
        }
        () = cancel.cancelled() => {
            terminate(&mut child, &group, spec.kill_grace).await?;
            Termination::Cancelled
        }
        exceeded = watchdog => {
            terminate(&mut child, &group, Duration::ZERO).await?;
            Termination::LimitExceeded(exceeded)
        }
    };
    // Whatever the leader left behind in its group goes now, which also closes its pipes.
    drop(group);
    for mut pump in pumps.into_iter().flatten() {
        // A descendant that left the group (setsid) could hold a pipe open forever: its output
        // gets one grace period, then the run is over without it.
        if tokio::time::timeout(spec.kill_grace, &mut pump)
            .await
            .is_err()
        {
            pump.abort();
        }
    }
    // A limit passed between the last sample and the end counts as much (a file that grew, the
    // last lines of output).
    if let (Termination::Exited(_), Some(watch)) = (termination, &spec.watch) {
        let exceeded = match watch.check_log(&logged) {
            Some(exceeded) => Some(exceeded),
            None => watch.check_disk().await,
        };
        if let Some(exceeded) = exceeded {
            termination = Termination::LimitExceeded(exceeded);
        }
    }
    Ok(termination)
}

/// SIGTERM to the group, up to `grace` for the leader to exit, then SIGKILL to the group.
async fn terminate(
    child: &mut Child,
    group: &GroupGuard,
    grace: Duration,
) -> Result<(), ExecError> {
    group.signal(Signal::TERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        group.signal(Signal::KILL);
    }
    child.wait().await.map_err(ExecError::Wait)?;
    Ok(())
}

/// Reads `reader` line by line, redacts and forwards each line.
///
/// Lines are assembled from raw reads before redaction, so a secret split across two reads is
/// still found. At most `max_line_bytes` plus the longest secret are held per line; the rest of
/// an overlong line is dropped.
async fn pump(reader: impl AsyncRead + Unpin, out: Output) {
    let mut reader = BufReader::new(reader);
    let hold = out
        .max_line_bytes
        .saturating_add(out.redactor.longest_secret());
    let mut line = Vec::new();
    let mut overflowed = false;
    // A read error ends the stream like EOF: the process is gone or its pipe is broken.
    while let Ok(buf) = reader.fill_buf().await {
        if buf.is_empty() {
            break;
        }
        let newline = buf.iter().position(|&b| b == b'\n');
        let take = newline.map_or(buf.len(), |at| at + 1);
        let room = hold.saturating_sub(line.len());
        let content = &buf[..newline.unwrap_or(buf.len())];
        line.extend_from_slice(&content[..content.len().min(room)]);
        overflowed |= content.len() > room;
        reader.consume(take);
        if newline.is_some() {
            out.send(&line, overflowed).await;
            line.clear();
            overflowed = false;
        }
    }
    if !line.is_empty() || overflowed {
        out.send(&line, overflowed).await;
    }
}

/// Where one output stream of a process goes, and what it counts.
struct Output {
    stream: Stream,
    sink: mpsc::Sender<LogLine>,
    redactor: Arc<Redactor>,
    max_line_bytes: usize,
    /// Bytes of output so far (both streams), and the most that is kept (the log limit).
    logged: Arc<AtomicU64>,
    keep_at_most: u64,
}

impl Output {
    fn new(
        stream: Stream,
        sink: mpsc::Sender<LogLine>,
        spec: &ProcessSpec,
        logged: &Arc<AtomicU64>,
    ) -> Output {
        Output {
            stream,
            sink,
            redactor: Arc::clone(&spec.redactor),
            max_line_bytes: spec.max_line_bytes,
            logged: Arc::clone(logged),
            keep_at_most: spec.watch.as_ref().map_or(u64::MAX, |w| w.limits.log_bytes),
        }
    }

    async fn send(&self, raw: &[u8], overflowed: bool) {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let before = self
            .logged
            .fetch_add(raw.len() as u64 + 1, Ordering::Relaxed);
        if before >= self.keep_at_most {
            // Past the log limit: counted (the watchdog ends the work), not kept.
            return;
        }
        let text = String::from_utf8_lossy(raw);
        let (mut line, cut) = self.redactor.redact_prefix(&text, self.max_line_bytes);
        if cut || overflowed {
            line.push_str(LINE_TRUNCATED);
        }
        let line = LogLine {
            stream: self.stream,
            line,
        };
        if self.sink.send(line).await.is_err() {
            // Nobody wants the log any more; the process still runs to its end.
            tracing::trace!("a process's log sink is closed");
        }
    }
}

/// The child's process group; SIGKILLed on drop so an abandoned run leaves nothing behind.
struct GroupGuard {
    pgid: Pid,
}

impl GroupGuard {
    fn new(child: &Child) -> Result<Self, ExecError> {
        let pid = child.id().ok_or(ExecError::NoPid)?;
        let pgid = i32::try_from(pid)
            .ok()
            .and_then(Pid::from_raw)
            .ok_or(ExecError::NoPid)?;
        Ok(Self { pgid })
    }

    /// Sends `signal` to every process in the group. The group id comes from a child spawned as
    /// group leader and still tracked, so it cannot name an unrelated group while any of its
    /// members lives (the kernel does not reuse a pid that is still some group's id). Failure
    /// (ESRCH: the group is already gone) is the expected outcome after a clean exit.
    fn signal(&self, signal: Signal) {
        if let Err(e) = kill_process_group(self.pgid, signal) {
            tracing::trace!(error = %e, "signalling a finished process group");
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.signal(Signal::KILL);
    }
}
