//! `lablink serve` as its own process (the real binary) on a [`TestApp`]'s database: a replica
//! whose metrics are its own, and that can be killed like a machine dies.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::TestApp;

/// A running `lablink serve` process, killed when dropped.
pub struct ServeProcess {
    child: Child,
    /// Pages, API and intake (when its roles serve them).
    pub base: String,
    pub metrics_base: String,
    dir: tempfile::TempDir,
}

impl TestApp {
    /// Starts `lablink serve` with this server's settings and `extra` on top (e.g. its
    /// `roles`, or a `listen` to take over), its own data directory and metrics port; returns
    /// once its metrics answer.
    pub async fn serve_process(&self, extra: &[(&str, &str)]) -> ServeProcess {
        self.serve_binary(Path::new(env!("CARGO_BIN_EXE_lablink")), extra)
            .await
    }

    /// Like [`TestApp::serve_process`], with another `lablink` binary (an earlier release's).
    pub async fn serve_binary(&self, binary: &Path, extra: &[(&str, &str)]) -> ServeProcess {
        let dir = tempfile::tempdir().unwrap();
        let metrics_port = lablink_testkit::free_port();
        let listen = extra.iter().find(|(k, _)| *k == "listen").map_or_else(
            || format!("127.0.0.1:{}", lablink_testkit::free_port()),
            |(_, v)| v.to_string(),
        );
        let mut settings: Vec<(String, String)> = self
            .settings
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "listen" | "metrics_listen" | "data_dir"))
            .cloned()
            .collect();
        settings.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .current_dir(dir.path())
            .env("LABLINK_LISTEN", &listen)
            .env(
                "LABLINK_METRICS_LISTEN",
                format!("127.0.0.1:{metrics_port}"),
            )
            .env("LABLINK_DATA_DIR", dir.path())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("serve.out")).unwrap())
            .stderr(std::fs::File::create(dir.path().join("serve.err")).unwrap())
            .kill_on_drop(true);
        for (key, value) in settings {
            command.env(format!("LABLINK_{}", key.to_uppercase()), value);
        }
        let mut process = ServeProcess {
            child: command.spawn().unwrap(),
            base: format!("http://{listen}"),
            metrics_base: format!("http://127.0.0.1:{metrics_port}"),
            dir,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while process.metrics().await.is_none() {
            // A process that refused to start (an earlier release on a database it refuses)
            // says why at once.
            if let Ok(Some(status)) = process.child.try_wait() {
                panic!("lablink serve exited ({status}): {}", process.log());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "lablink serve did not start: {}",
                process.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        process
    }
}

impl ServeProcess {
    /// The process's `/metrics` text, `None` while it does not answer.
    pub async fn metrics(&self) -> Option<String> {
        let res = reqwest::get(format!("{}/metrics", self.metrics_base))
            .await
            .ok()?;
        if !res.status().is_success() {
            return None;
        }
        res.text().await.ok()
    }

    /// Kills the process at once (SIGKILL), as a machine dies; its data directory stays.
    pub async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }

    /// What it logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.err")).unwrap_or_default()
    }
}

/// The value of the series `name` whose labels include `labels`, in Prometheus' text format.
pub fn sample(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let rest = series.strip_prefix(name)?;
        if !(rest.is_empty() || rest.starts_with('{')) {
            return None;
        }
        labels
            .iter()
            .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
            .then(|| value.parse().ok())?
    })
}
