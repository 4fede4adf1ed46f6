//! The user guide's pictures (`docs/guide/`): tests that take them keep them there when run with
//! `LABLINK_GUIDE_SCREENSHOTS=1`, and fail when the guide shows one that is missing.

use std::path::{Path, PathBuf};

/// `docs/`.
pub fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs")
}

/// A fresh directory for a test's screenshots: `<target>/screenshots/<name>` (kept by CI).
pub fn screenshot_dir(name: &str) -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .to_path_buf();
    let dir = target.join("screenshots").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    dir
}

/// Keeps `taken` (a screenshot) as the guide's picture `picture` (relative to `docs/guide/`)
/// when renewing, and checks the guide has it.
pub fn keep(taken: &Path, picture: &str) {
    let kept = docs().join("guide").join(picture);
    if std::env::var_os("LABLINK_GUIDE_SCREENSHOTS").is_some() {
        std::fs::create_dir_all(kept.parent().unwrap()).unwrap();
        std::fs::copy(taken, &kept).unwrap();
    }
    assert!(
        kept.exists(),
        "docs/guide/{picture} is missing: run this test with LABLINK_GUIDE_SCREENSHOTS=1"
    );
}
