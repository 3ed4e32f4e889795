//! One endpoint per data folder: an advisory lock on `serve.lock` in the data folder.
//!
//! The lock is held for the life of the server (the OS releases it if the process dies, so a
//! crash never leaves a stale lock). The file also records the holder's pid, port, whether it
//! speaks HTTPS and who runs it (the app, `mandate serve` in a terminal, or the background
//! service), so a second `mandate serve` can say who holds it, `mandate token` can find the
//! endpoint, and the app can attach to the background service's endpoint instead of starting
//! its own. The file is created 0600 like everything else in the data folder.
//!
//! What it is not: the database's own locking (SQLite's), which still serialises writers.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The lock file's name inside the data folder.
pub const LOCK_FILE: &str = "serve.lock";

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another Mandate endpoint{holder} already serves the data folder {dir}; stop it first \
         (only one process may serve a data folder at a time)"
    )]
    Held { dir: PathBuf, holder: String },
    #[error("could not use the lock file {path}: {reason}")]
    Io { path: PathBuf, reason: String },
}

/// Which kind of process serves a data folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServedBy {
    /// The desktop app's own endpoint, which lives and dies with its window.
    App,
    /// `mandate serve` started by hand (a terminal, a script).
    #[default]
    Cli,
    /// `mandate serve --service`, run at login by `mandate service install`.
    Service,
}

impl ServedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            ServedBy::App => "app",
            ServedBy::Cli => "cli",
            ServedBy::Service => "service",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "app" => ServedBy::App,
            "service" => ServedBy::Service,
            _ => ServedBy::Cli,
        }
    }
}

/// Who holds a data folder, as written in its lock file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    pub port: u16,
    /// It serves HTTPS only (`mandate serve --tls`).
    pub tls: bool,
    pub by: ServedBy,
}

impl Holder {
    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }
}

/// Read the holder recorded in `dir`'s lock file, if the file says.
pub fn holder(dir: &Path) -> Option<Holder> {
    let text = std::fs::read_to_string(dir.join(LOCK_FILE)).ok()?;
    let mut pid = None;
    let mut port = None;
    let mut tls = false;
    let mut by = ServedBy::default();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("pid=") {
            pid = v.trim().parse().ok();
        } else if let Some(v) = line.strip_prefix("port=") {
            port = v.trim().parse().ok();
        } else if let Some(v) = line.strip_prefix("tls=") {
            tls = v.trim() == "1";
        } else if let Some(v) = line.strip_prefix("by=") {
            by = ServedBy::parse(v.trim());
        }
    }
    Some(Holder {
        pid: pid?,
        port: port?,
        tls,
        by,
    })
}

/// Whether some process holds `dir`'s lock right now (a live endpoint, not a stale file).
pub fn is_held(dir: &Path) -> bool {
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join(LOCK_FILE))
    else {
        return false;
    };
    match fs4::FileExt::try_lock(&file) {
        Ok(()) => {
            let _ = fs4::FileExt::unlock(&file);
            false
        }
        Err(fs4::TryLockError::WouldBlock) => true,
        Err(fs4::TryLockError::Error(_)) => false,
    }
}

/// The endpoint serving `dir` now: the lock file's holder, if the lock is held.
pub fn running(dir: &Path) -> Option<Holder> {
    if is_held(dir) { holder(dir) } else { None }
}

/// The held lock; released when dropped.
#[derive(Debug)]
pub struct DataDirLock {
    file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// Take the lock on `dir` or say who holds it.
    pub fn acquire(dir: &Path) -> Result<Self, LockError> {
        let path = dir.join(LOCK_FILE);
        let io = |e: std::io::Error| LockError::Io {
            path: path.clone(),
            reason: e.to_string(),
        };
        let mut opts = std::fs::OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let file = opts.open(&path).map_err(io)?;
        match fs4::FileExt::try_lock(&file) {
            Ok(()) => Ok(DataDirLock { file, path }),
            Err(fs4::TryLockError::WouldBlock) => {
                let holder = match holder(dir) {
                    Some(h) => format!(" (process {} on {})", h.pid, h.url()),
                    None => String::new(),
                };
                Err(LockError::Held {
                    dir: dir.to_path_buf(),
                    holder,
                })
            }
            Err(fs4::TryLockError::Error(e)) => Err(io(e)),
        }
    }

    /// Write our pid, the port we listen on, whether it is HTTPS and who we are into the lock
    /// file.
    pub fn record(&mut self, port: u16, tls: bool, by: ServedBy) -> Result<(), LockError> {
        let io = |e: std::io::Error| LockError::Io {
            path: self.path.clone(),
            reason: e.to_string(),
        };
        self.file.set_len(0).map_err(io)?;
        self.file.seek(SeekFrom::Start(0)).map_err(io)?;
        write!(
            self.file,
            "pid={}\nport={port}\ntls={}\nby={}\n",
            std::process::id(),
            u8::from(tls),
            by.as_str()
        )
        .map_err(io)?;
        self.file.flush().map_err(io)
    }
}
