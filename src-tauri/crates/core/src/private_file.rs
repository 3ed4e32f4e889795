//! Files in the data folder are the owner's alone (mode 0600), whatever the umask and whether
//! or not the folder already existed.
//!
//! Why: SQLite creates its database with 0644 under a usual umask, and its WAL and shared-memory
//! files copy the database's mode; the folder's own 0700 protected them only when Mandate had
//! created the folder. Now every file Mandate writes there is created 0600, and the files of an
//! older installation are narrowed to 0600 when it is opened.
//!
//! What it is not: a guard against the same OS user, who can read their own files (and the
//! keychain) anyway. On Windows the folder's inherited ACL applies.

use std::fs::{File, OpenOptions};
use std::path::Path;

/// Open options that create a file readable and writable by its owner only.
pub fn options() -> OpenOptions {
    #[allow(unused_mut, reason = "only unix sets a mode")]
    let mut o = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o
}

/// Create (or truncate) `path` as an owner-only file.
pub fn create(path: &Path) -> std::io::Result<File> {
    let f = options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    narrow_file(&f)?;
    Ok(f)
}

/// Write `bytes` to `path` as an owner-only file.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    create(path)?.write_all(bytes)
}

/// Make `path` owner-only if it exists and others may read or write it.
///
/// By path, never through a file descriptor of its own: closing any descriptor of a file
/// releases every POSIX lock this process holds on it, and SQLite's locks on the database, its
/// WAL and shared-memory files are such locks. A second handle opened in a process that
/// already had the database open (a team server's sealed secrets) once dropped them that way;
/// another process then believed it was the last one, checkpointed and removed the WAL, and
/// the server's next write failed with "disk I/O error" (SQLite's "How To Corrupt An SQLite
/// Database File", 2.2).
pub fn narrow(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = match std::fs::metadata(path) {
            Ok(m) => m.permissions().mode(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if mode & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))?;
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn narrow_file(f: &File) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = f.metadata()?.permissions().mode();
        if mode & 0o077 != 0 {
            f.set_permissions(std::fs::Permissions::from_mode(mode & 0o700))?;
        }
    }
    #[cfg(not(unix))]
    let _ = f;
    Ok(())
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn creates_owner_only_files_and_narrows_old_ones() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        write(&p, b"x").unwrap();
        assert_eq!(mode(&p), 0o600);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        narrow(&p).unwrap();
        assert_eq!(mode(&p), 0o600);
        narrow(&d.path().join("missing")).unwrap();
    }
}
