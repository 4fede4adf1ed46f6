//! Helpers for unit tests: GitLab's real payloads from `shared/gitlab/fixtures/`.

pub(crate) fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../../shared/gitlab/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}
