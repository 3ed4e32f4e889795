//! The core's one error type and the stable codes that adapters branch on.
//!
//! Every failure a user can cause or meet is a variant whose message is a sentence that says
//! what happened and what to do next. Adapters (CLI, HTTP, Tauri) never match on message text:
//! they use [`Error::code`], a stable machine-readable code, and [`ErrorCode::exit_code`] for
//! the CLI. Messages never carry secret material: variants hold names and ids, never values.

use std::path::PathBuf;

use serde::Serialize;

use crate::secret::KeychainError;

/// Result alias for the core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input that breaks a rule (a name, a scope, a URL, a key format...).
    #[error("{0}")]
    Invalid(String),

    /// A named thing does not exist.
    #[error("no {kind} named '{name}' exists{hint}")]
    NotFound {
        kind: &'static str,
        name: String,
        hint: String,
    },

    /// A thing with that name already exists.
    #[error("{kind} '{name}' already exists; choose another name")]
    AlreadyExists { kind: &'static str, name: String },

    /// The operation is not allowed in the current state (for example editing a revoked agent).
    #[error("{0}")]
    Conflict(String),

    /// An authorization decision said no (for example a revoked agent asking for a token):
    /// the same refusal the endpoint would give, made before anything was sent.
    #[error("{0}")]
    Refused(String),

    /// The audit trail failed verification, so Mandate refuses to vouch for it (sign a
    /// checkpoint, export, prove). The message is the verification's one-line summary.
    #[error("the audit trail failed verification, so nothing was signed: {0}")]
    AuditFailed(String),

    /// The OS keychain could not be used.
    #[error(transparent)]
    Keychain(#[from] KeychainError),

    /// The database was written by a newer Mandate.
    #[error(
        "the database at {location} was written by a newer version of Mandate (schema {found}, \
         this build understands up to {supported}); upgrade Mandate, or {elsewhere}"
    )]
    DatabaseTooNew {
        /// The SQLite file, or the PostgreSQL address without its password.
        location: String,
        found: i64,
        supported: i64,
        /// How to use another store instead.
        elsewhere: &'static str,
    },

    /// The data folder cannot be created or written.
    #[error(
        "the data folder {path} cannot be used: {reason}; check its permissions or set \
         MANDATE_DATA_DIR to a writable folder"
    )]
    DataDir { path: PathBuf, reason: String },

    /// Another process holds the database lock for longer than we wait.
    #[error(
        "the database is busy: another Mandate process is writing to it; try again in a moment"
    )]
    Busy,

    /// A lower-level storage failure (disk full, I/O error, corruption).
    #[error("the database failed: {0}; nothing was changed")]
    Storage(String),

    /// File I/O outside the database (key files, exports).
    #[error("{action} {path}: {reason}")]
    Io {
        action: &'static str,
        path: PathBuf,
        reason: String,
    },
}

/// Stable, machine-readable error codes, shared by the CLI (`--json`), HTTP and the UI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidInput,
    NotFound,
    AlreadyExists,
    Conflict,
    Refused,
    AuditFailed,
    KeychainUnavailable,
    KeychainLocked,
    DatabaseTooNew,
    DataDir,
    Busy,
    Storage,
    Io,
    /// A server this machine talks to (the team server) could not be reached.
    Unreachable,
    /// A server this machine talks to answered, but not with something it could use (not
    /// JSON, not the API it expected, not the endpoint it claimed to be).
    BadAnswer,
}

impl ErrorCode {
    /// The CLI's documented exit code for this error (see `mandate --help`).
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorCode::InvalidInput => 3,
            ErrorCode::NotFound => 4,
            ErrorCode::AlreadyExists | ErrorCode::Conflict => 5,
            ErrorCode::Refused => 9,
            ErrorCode::AuditFailed => 10,
            ErrorCode::KeychainUnavailable | ErrorCode::KeychainLocked => 6,
            ErrorCode::DatabaseTooNew
            | ErrorCode::DataDir
            | ErrorCode::Busy
            | ErrorCode::Storage
            | ErrorCode::Io => 7,
            ErrorCode::Unreachable | ErrorCode::BadAnswer => 8,
        }
    }

    /// The code as the string used in JSON payloads.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::NotFound => "not_found",
            ErrorCode::AlreadyExists => "already_exists",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Refused => "refused",
            ErrorCode::AuditFailed => "audit_failed",
            ErrorCode::KeychainUnavailable => "keychain_unavailable",
            ErrorCode::KeychainLocked => "keychain_locked",
            ErrorCode::DatabaseTooNew => "database_too_new",
            ErrorCode::DataDir => "data_dir",
            ErrorCode::Busy => "busy",
            ErrorCode::Storage => "storage",
            ErrorCode::Io => "io",
            ErrorCode::Unreachable => "unreachable",
            ErrorCode::BadAnswer => "bad_answer",
        }
    }
}

impl Error {
    /// The stable code adapters branch on.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Invalid(_) => ErrorCode::InvalidInput,
            Error::NotFound { .. } => ErrorCode::NotFound,
            Error::AlreadyExists { .. } => ErrorCode::AlreadyExists,
            Error::Conflict(_) => ErrorCode::Conflict,
            Error::Refused(_) => ErrorCode::Refused,
            Error::AuditFailed(_) => ErrorCode::AuditFailed,
            Error::Keychain(KeychainError::Locked { .. }) => ErrorCode::KeychainLocked,
            Error::Keychain(_) => ErrorCode::KeychainUnavailable,
            Error::DatabaseTooNew { .. } => ErrorCode::DatabaseTooNew,
            Error::DataDir { .. } => ErrorCode::DataDir,
            Error::Busy => ErrorCode::Busy,
            Error::Storage(_) => ErrorCode::Storage,
            Error::Io { .. } => ErrorCode::Io,
        }
    }

    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into())
    }

    pub(crate) fn not_found(kind: &'static str, name: impl Into<String>) -> Self {
        Error::NotFound {
            kind,
            name: name.into(),
            hint: String::new(),
        }
    }

    pub(crate) fn not_found_hint(
        kind: &'static str,
        name: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Error::NotFound {
            kind,
            name: name.into(),
            hint: format!("; {}", hint.into()),
        }
    }
}

/// Why a write failed when the database file, or the filesystem under it, no longer takes
/// writes; SQLite says so itself (`SQLITE_READONLY`) or, when the filesystem went read-only
/// under an open database, only "disk I/O error" (`store::sqlite::write` then names it).
pub(crate) const DATABASE_READ_ONLY: &str = "the database file is read-only (was the data folder \
     made read-only, or its disk remounted?); nothing was saved: make it writable again and retry";

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode as C;
        match &e {
            rusqlite::Error::SqliteFailure(f, _)
                if matches!(f.code, C::DatabaseBusy | C::DatabaseLocked) =>
            {
                Error::Busy
            }
            rusqlite::Error::SqliteFailure(f, _) if f.code == C::ReadOnly => {
                Error::Storage(DATABASE_READ_ONLY.into())
            }
            rusqlite::Error::SqliteFailure(f, _) if f.code == C::DiskFull => Error::Storage(
                "the disk holding Mandate's data folder is full; nothing was saved: free \
                     some space there and retry"
                    .into(),
            ),
            _ => Error::Storage(e.to_string()),
        }
    }
}

/// The serialisable form of an error for IPC and `--json` output: a code and a sentence.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ErrorReport {
    pub code: ErrorCode,
    pub message: String,
}

impl From<&Error> for ErrorReport {
    fn from(e: &Error) -> Self {
        ErrorReport {
            code: e.code(),
            message: e.to_string(),
        }
    }
}
