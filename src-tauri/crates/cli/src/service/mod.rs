//! The background service: `mandate serve` started at login by the OS's own per-user service
//! manager, so that agents (a cron job, a long-running program) have their endpoint while the
//! app's window is closed.
//!
//! - Linux: a systemd user unit in `$XDG_CONFIG_HOME/systemd/user` (`systemd.rs`), enabled for
//!   `default.target`, which a user manager starts at every login.
//! - macOS: a launchd agent in `~/Library/LaunchAgents` (`launchd.rs`), loaded at login
//!   (`RunAtLoad`). Written and unit-tested here; not run on macOS by our tests.
//! - Elsewhere: refused, with what to do instead.
//!
//! The service runs `mandate serve --service` with the data folder (and, when set, the port and
//! keychain namespace) of the `mandate` that installed it, baked into its definition: it serves
//! exactly the installation `install` was run against. While the desktop app's endpoint serves
//! that folder, the service waits and takes over when the app closes; while the service serves
//! it, the app attaches to it instead of starting its own.
//!
//! What it is not: a daemon of our own. Starting, stopping, restarting after a crash and logs
//! are the service manager's (`systemctl --user status`, `journalctl --user -u`, `launchctl`).

pub mod launchd;
pub mod systemd;

use std::path::{Path, PathBuf};

/// What the service runs: one installation's `mandate serve`.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    /// The `mandate` binary (absolute).
    pub exe: PathBuf,
    /// The data folder it serves (absolute).
    pub data_dir: PathBuf,
    /// `MANDATE_PORT`, when not the default.
    pub port: Option<u16>,
    /// `MANDATE_KEYCHAIN_SERVICE`, when set.
    pub keychain_service: Option<String>,
    /// The service's name: `mandate` for the default data folder, else `mandate-<install id
    /// prefix>` so that two installations never share one.
    pub name: String,
}

impl ServiceSpec {
    /// The environment the service's `mandate serve` gets.
    pub fn environment(&self) -> Vec<(String, String)> {
        let mut env = vec![(
            mandate_core::paths::DATA_DIR_ENV.to_string(),
            self.data_dir.display().to_string(),
        )];
        if let Some(p) = self.port {
            env.push((mandate_server::PORT_ENV.to_string(), p.to_string()));
        }
        if let Some(k) = &self.keychain_service {
            env.push((
                mandate_core::paths::KEYCHAIN_SERVICE_ENV.to_string(),
                k.clone(),
            ));
        }
        env
    }

    /// The command line: the binary, then its arguments.
    pub fn command(&self) -> Vec<String> {
        vec![
            self.exe.display().to_string(),
            "serve".into(),
            "--service".into(),
        ]
    }
}

/// The service's name for an installation: `mandate` when it is the default data folder.
pub fn service_name(data_dir: &Path, default_dir: Option<&Path>, install_id: &str) -> String {
    if default_dir.is_some_and(|d| d == data_dir) {
        "mandate".into()
    } else {
        let short: String = install_id
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(8)
            .collect();
        format!("mandate-{short}")
    }
}

/// A value that cannot go into a service definition (a line break would end it early).
pub fn check_value(what: &str, v: &str) -> Result<(), String> {
    if v.chars().any(|c| c.is_control()) {
        return Err(format!(
            "{what} holds a control character or line break, which a service definition cannot \
             carry; use a path without one"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_folder_gets_the_plain_name_and_others_their_own() {
        let d = Path::new("/home/f/.local/share/mandate");
        assert_eq!(service_name(d, Some(d), "0193a1b2-c3d4"), "mandate");
        assert_eq!(
            service_name(Path::new("/tmp/x"), Some(d), "0193a1b2-c3d4"),
            "mandate-0193a1b2"
        );
        assert!(check_value("the path", "/a/b c").is_ok());
        assert!(check_value("the path", "/a\nb").is_err());
    }
}
