//! Linux: a systemd user unit, `<name>.service` in `$XDG_CONFIG_HOME/systemd/user`
//! (`~/.config/systemd/user`), wanted by `default.target`, so the user's service manager starts
//! it at every login and restarts it if it fails.
//!
//! Control goes through `systemctl --user`: `enable` works without a running user manager (it
//! only links the unit), so an install always takes effect at the next login; starting it now
//! needs the manager and is reported when it cannot be reached.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::ServiceSpec;

/// Where user units live: `$XDG_CONFIG_HOME/systemd/user`, else `~/.config/systemd/user`.
pub fn unit_dir() -> Result<PathBuf, String> {
    if let Some(c) = std::env::var_os("XDG_CONFIG_HOME").filter(|c| !c.is_empty()) {
        return Ok(PathBuf::from(c).join("systemd/user"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".config/systemd/user"))
        .ok_or_else(|| "neither XDG_CONFIG_HOME nor HOME is set".to_string())
}

/// One word of a unit file's command line or an `Environment=` assignment: double-quoted, with
/// `\` and `"` escaped, `%` doubled (systemd's specifiers) and, on command lines, `$` doubled
/// (its variable expansion).
fn quote(v: &str, command_line: bool) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            '$' if command_line => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The unit file.
pub fn render(spec: &ServiceSpec) -> String {
    let exec: Vec<String> = spec.command().iter().map(|a| quote(a, true)).collect();
    let env: String = spec
        .environment()
        .iter()
        .map(|(k, v)| format!("Environment={}\n", quote(&format!("{k}={v}"), false)))
        .collect();
    format!(
        "# Written by `mandate service install`; remove it with `mandate service uninstall`.\n\
         [Unit]\n\
         Description=Mandate token endpoint for AI agents (mandate serve)\n\
         Documentation=https://github.com/mandate-dev/mandate#agents-that-run-while-the-app-is-closed\n\
         \n\
         [Service]\n\
         Type=exec\n\
         ExecStart={exec}\n\
         {env}\
         # On SIGTERM, requests in flight finish and their audit events commit before it exits.\n\
         TimeoutStopSec=30\n\
         Restart=on-failure\n\
         RestartSec=5\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n",
        exec = exec.join(" "),
    )
}

/// The unit's file name.
pub fn unit_name(spec_name: &str) -> String {
    format!("{spec_name}.service")
}

/// `systemctl --user ARGS`: `Ok(stdout)` when it succeeded, `Err(what it said)` otherwise.
pub fn systemctl(args: &[&str]) -> Result<String, String> {
    let out = Command::new("systemctl")
        .arg("--user")
        .args(args)
        .output()
        .map_err(|e| format!("systemctl could not be run ({e})"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() {
        Ok(stdout)
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(if stderr.is_empty() { stdout } else { stderr })
    }
}

/// What `systemctl --user` says about a unit: `is-enabled` and `is-active`, or why it could
/// not say.
pub fn query(unit: &str, verb: &str) -> String {
    match systemctl(&[verb, unit]) {
        Ok(s) => s,
        // `is-active` exits non-zero for "inactive" and "failed" and prints the state.
        Err(s) if !s.is_empty() && !s.contains(' ') => s,
        Err(e) => format!("unknown ({e})"),
    }
}

/// Write `text` to `path` through a temporary file in the same folder.
pub fn write_file(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(exe: &str, data: &str) -> ServiceSpec {
        ServiceSpec {
            exe: exe.into(),
            data_dir: data.into(),
            port: Some(7000),
            keychain_service: None,
            name: "mandate".into(),
        }
    }

    #[test]
    fn the_unit_runs_serve_with_the_installations_folder_and_escapes_what_systemd_expands() {
        let u = render(&spec("/opt/my tools/mandate", "/home/f/100%$HOME"));
        assert!(
            u.contains("ExecStart=\"/opt/my tools/mandate\" \"serve\" \"--service\"\n"),
            "{u}"
        );
        assert!(
            u.contains("Environment=\"MANDATE_DATA_DIR=/home/f/100%%$HOME\"\n"),
            "{u}"
        );
        assert!(u.contains("Environment=\"MANDATE_PORT=7000\"\n"), "{u}");
        assert!(u.contains("WantedBy=default.target"), "{u}");
        assert!(u.contains("Restart=on-failure"), "{u}");
        assert_eq!(quote("a\"b\\c$d", true), "\"a\\\"b\\\\c$$d\"");
    }
}
