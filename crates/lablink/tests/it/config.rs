//! Configuration errors name the setting, through the real binary (environment and file).

use std::process::Command;

fn lablink(args: &[&str], env: &[(&str, &str)], dir: &std::path::Path) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lablink"));
    cmd.args(args).current_dir(dir);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("LABLINK_")) {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_environment_values_name_their_setting() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "LABLINK_LISTEN",
            "not-an-address",
            "setting `listen` (LABLINK_LISTEN)",
        ),
        (
            "LABLINK_METRICS_LISTEN",
            "9090",
            "setting `metrics_listen` (LABLINK_METRICS_LISTEN)",
        ),
        (
            "LABLINK_DATABASE_URL",
            "mysql://db",
            "setting `database_url`",
        ),
        (
            "LABLINK_PUBLIC_URL",
            "lablink.example.com",
            "setting `public_url`",
        ),
        ("LABLINK_SECRET_KEY", "too-short", "setting `secret_key`"),
        ("LABLINK_LOG_FORMAT", "xml", "setting `log_format`"),
        (
            "LABLINK_ALLOW_HTTP_LOOPBACK_GITLAB",
            "perhaps",
            "setting `allow_http_loopback_gitlab`",
        ),
        (
            "LABLINK_GITLAB_APP_ID",
            "12345",
            "setting `gitlab_app_secret`",
        ),
        (
            "LABLINK_TOKEN_ROTATION_MARGIN_DAYS",
            "0",
            "setting `token_rotation_margin_days`",
        ),
        (
            "LABLINK_TOKEN_ROTATION_MARGIN_DAYS",
            "301",
            "setting `token_rotation_margin_days`",
        ),
    ];
    for (var, value, expected) in cases {
        let (ok, stderr) = lablink(&["migrate"], &[(var, value)], dir.path());
        assert!(!ok, "{var}={value} was accepted");
        assert!(stderr.contains(expected), "{var}={value}: {stderr}");
    }
}

#[test]
fn bad_file_values_and_unknown_settings_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lablink.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:99999\"\n").unwrap();
    let (ok, stderr) = lablink(&["migrate"], &[], dir.path());
    assert!(!ok);
    assert!(stderr.contains("setting `listen`"), "{stderr}");

    std::fs::write(&file, "lisen = \"127.0.0.1:8080\"\n").unwrap();
    let (ok, stderr) = lablink(&["migrate"], &[], dir.path());
    assert!(!ok);
    assert!(
        stderr.contains("setting `lisen`") && stderr.contains("unknown setting"),
        "{stderr}"
    );

    let (ok, stderr) = lablink(&["--config", "missing.toml", "migrate"], &[], dir.path());
    assert!(!ok);
    assert!(stderr.contains("missing.toml"), "{stderr}");
}

#[test]
fn migrate_and_create_user_from_the_shell() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, stderr) = lablink(&["migrate"], &[], dir.path());
    assert!(ok, "{stderr}");
    // The key file is created private on first use.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lablink"));
    let out = cmd
        .args([
            "admin",
            "create-user",
            "--account",
            "Acme",
            "--email",
            "ops@acme.test",
            "--role",
            "account_admin",
            "--plan",
            "enterprise",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("created ops@acme.test (account_admin) in account Acme (enterprise plan)")
    );
    assert!(stdout.contains("password (shown once): "));
    let key = dir.path().join("lablink-data/secret.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Bad input is refused with the reason, and nothing is created.
    let out = Command::new(env!("CARGO_BIN_EXE_lablink"))
        .args([
            "admin",
            "create-user",
            "--account",
            "Acme",
            "--email",
            "ops@acme.test",
            "--role",
            "developer",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let out = Command::new(env!("CARGO_BIN_EXE_lablink"))
        .args([
            "admin",
            "create-user",
            "--account",
            "Acme",
            "--email",
            "x@acme.test",
            "--role",
            "boss",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("`boss` is not a valid role"));
}
