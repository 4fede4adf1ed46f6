//! File paths people send for their workspace, and reading and writing those files without ever
//! following a symbolic link: repository content is hostile, and a committed link to
//! `/etc/passwd` or to lablink's data directory must not make lablink read or write there.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

use crate::ServiceError;

/// Largest file the workspace opens or saves.
pub const MAX_FILE_BYTES: usize = 2 * 1024 * 1024;

/// A path relative to the workspace's root, made only of plain names, never into `.git`.
pub fn checked(path: &str) -> Result<String, ServiceError> {
    let trimmed = path.trim().trim_matches('/');
    let bad = |why: &str| ServiceError::BadInput(format!("“{}” {why}", path.trim()));
    if trimmed.is_empty() {
        return Err(ServiceError::BadInput(
            "Give the file a path, like models/orders.sql.".into(),
        ));
    }
    if trimmed.len() > 1024 || trimmed.contains(['\0', '\\']) {
        return Err(bad(
            "is not a path lablink can use: keep it under 1,024 characters, with / between folders.",
        ));
    }
    for component in Path::new(trimmed).components() {
        match component {
            Component::Normal(name) if name != ".git" => {}
            Component::Normal(_) => {
                return Err(bad("is inside .git, which the workspace does not edit."));
            }
            _ => {
                return Err(bad(
                    "must be a path inside the repository, without “..” or “.”.",
                ));
            }
        }
    }
    Ok(trimmed.to_owned())
}

/// `dir/path` after checking that no existing part of it is a symbolic link (but the file itself,
/// when `link_ok`: a link that is about to be replaced by a file).
fn resolve(dir: &Path, path: &str, link_ok: bool) -> Result<PathBuf, ServiceError> {
    let mut at = dir.to_path_buf();
    let components: Vec<_> = Path::new(path).components().collect();
    for (i, name) in components.iter().enumerate() {
        at.push(name);
        if link_ok && i + 1 == components.len() {
            break;
        }
        match std::fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(ServiceError::BadInput(format!(
                    "“{path}” goes through a symbolic link; the workspace does not follow links."
                )));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(path, &e)),
        }
    }
    Ok(at)
}

fn io_error(path: &str, e: &std::io::Error) -> ServiceError {
    ServiceError::Internal(format!("workspace file {path}: {e}"))
}

/// The bytes of a file of the workspace; `None` when there is no such file.
pub fn read(dir: &Path, path: &str) -> Result<Option<Vec<u8>>, ServiceError> {
    let full = resolve(dir, path, false)?;
    match std::fs::symlink_metadata(&full) {
        Ok(meta) if meta.is_dir() => Err(ServiceError::BadInput(format!(
            "“{path}” is a folder, not a file."
        ))),
        Ok(meta) if meta.len() > MAX_FILE_BYTES as u64 => Err(ServiceError::BadInput(format!(
            "“{path}” is larger than 2 MB; the workspace opens smaller files only."
        ))),
        Ok(_) => std::fs::read(&full)
            .map(Some)
            .map_err(|e| io_error(path, &e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(path, &e)),
    }
}

/// Writes a file of the workspace (its folders created), replacing it in one step; a symbolic
/// link at that path is replaced by the file, never written through.
pub fn write(dir: &Path, path: &str, content: &[u8]) -> Result<(), ServiceError> {
    let full = resolve(dir, path, true)?;
    if std::fs::symlink_metadata(&full).is_ok_and(|m| m.file_type().is_symlink()) {
        std::fs::remove_file(&full).map_err(|e| io_error(path, &e))?;
    }
    if full.is_dir() {
        return Err(ServiceError::BadInput(format!(
            "“{path}” is a folder; choose another name for the file."
        )));
    }
    let parent = full
        .parent()
        .ok_or_else(|| ServiceError::Internal(format!("workspace file {path} has no folder")))?;
    std::fs::create_dir_all(parent).map_err(|e| io_error(path, &e))?;
    // The folders just created are plain ones; check again that none of them is a link.
    resolve(dir, path, true)?;
    let partial = parent.join(format!(
        ".lablink-saving-{}",
        full.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    let mut file = std::fs::File::create(&partial).map_err(|e| io_error(path, &e))?;
    file.write_all(content).map_err(|e| io_error(path, &e))?;
    std::fs::rename(&partial, &full).map_err(|e| io_error(path, &e))
}

/// Deletes a file of the workspace (nothing when it is gone already).
pub fn remove(dir: &Path, path: &str) -> Result<(), ServiceError> {
    let full = resolve(dir, path, true)?;
    match std::fs::remove_file(&full) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(path, &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_outside_git_are_accepted() {
        assert_eq!(checked(" /models/a.sql ").unwrap(), "models/a.sql");
        for bad in [
            "",
            "../etc/passwd",
            "models/../../x",
            ".git/config",
            "a/.git/hooks/x",
            "a\\b",
            "./a",
        ] {
            assert!(checked(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn links_are_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "s3cret").unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("models")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("leak.sql"))
            .unwrap();
        assert!(read(dir.path(), "leak.sql").is_err());
        assert!(read(dir.path(), "models/secret").is_err());
        assert!(write(dir.path(), "models/new.sql", b"x").is_err());
        assert!(!outside.path().join("new.sql").exists());
        // A link replaced by a file: the link goes, its target is untouched.
        write(dir.path(), "leak.sql", b"select 2").unwrap();
        assert_eq!(
            std::fs::read(outside.path().join("secret")).unwrap(),
            b"s3cret"
        );
        assert_eq!(read(dir.path(), "leak.sql").unwrap().unwrap(), b"select 2");
        write(dir.path(), "ok/new.sql", b"select 1").unwrap();
        assert_eq!(
            read(dir.path(), "ok/new.sql").unwrap().unwrap(),
            b"select 1"
        );
        assert_eq!(read(dir.path(), "missing.sql").unwrap(), None);
    }
}
