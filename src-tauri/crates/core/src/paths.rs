//! Where Mandate keeps its data, and which keychain namespace it uses.
//!
//! `MANDATE_DATA_DIR` (and the CLI's `--data-dir`) override the OS convention so that tests and
//! development never touch a user's real data. Debug builds use a separate keychain service
//! (`mandate-dev`) for the same reason; `MANDATE_KEYCHAIN_SERVICE` overrides both.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// Environment variable that overrides the data folder.
pub const DATA_DIR_ENV: &str = "MANDATE_DATA_DIR";
/// Environment variable that overrides the keychain service name.
pub const KEYCHAIN_SERVICE_ENV: &str = "MANDATE_KEYCHAIN_SERVICE";

/// The data folder: `MANDATE_DATA_DIR` if set, else the OS convention
/// (Linux `~/.local/share/mandate`, macOS `~/Library/Application Support/dev.mandate.app`,
/// Windows `%APPDATA%\mandate\data`).
pub fn data_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(DATA_DIR_ENV).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    default_data_dir()
}

/// The OS convention's data folder, whatever `MANDATE_DATA_DIR` says.
pub fn default_data_dir() -> Result<PathBuf> {
    directories::ProjectDirs::from("dev", "mandate", "mandate")
        .map(|p| p.data_dir().to_path_buf())
        .ok_or_else(|| Error::DataDir {
            path: PathBuf::from("~"),
            reason: "the home folder could not be found".into(),
        })
}

/// The keychain service name Mandate stores its secrets under.
pub fn keychain_service() -> String {
    match std::env::var(KEYCHAIN_SERVICE_ENV) {
        Ok(s) if !s.is_empty() => s,
        _ if cfg!(debug_assertions) => "mandate-dev".into(),
        _ => "mandate".into(),
    }
}
