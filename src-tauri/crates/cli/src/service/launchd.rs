//! macOS: a launchd agent, `~/Library/LaunchAgents/<label>.plist`, loaded into the user's GUI
//! domain (`launchctl bootstrap gui/UID`), started at load and at every login (`RunAtLoad`),
//! restarted when it exits with a failure (`KeepAlive.SuccessfulExit = false`), its output in
//! `~/Library/Logs/Mandate/`.
//!
//! What it is not: tested on a Mac by our suite. The plist is rendered and checked here (and
//! parsed by Python's `plistlib` in a test); the `launchctl` calls follow `launchctl(1)`.

use std::path::PathBuf;
use std::process::Command;

use super::ServiceSpec;

/// The agent's label: `dev.mandate.serve`, with the service name's suffix for a non-default
/// data folder.
pub fn label(spec_name: &str) -> String {
    match spec_name.strip_prefix("mandate-") {
        Some(suffix) => format!("dev.mandate.serve.{suffix}"),
        None => "dev.mandate.serve".into(),
    }
}

/// `~/Library/LaunchAgents`.
pub fn agents_dir() -> Result<PathBuf, String> {
    home().map(|h| h.join("Library/LaunchAgents"))
}

fn home() -> Result<PathBuf, String> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| "HOME is not set".to_string())
}

/// XML text with the five predefined entities escaped.
fn xml(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The property list.
pub fn render(spec: &ServiceSpec, log_dir: &std::path::Path) -> String {
    let args: String = spec
        .command()
        .iter()
        .map(|a| format!("    <string>{}</string>\n", xml(a)))
        .collect();
    let env: String = spec
        .environment()
        .iter()
        .map(|(k, v)| {
            format!(
                "    <key>{}</key>\n    <string>{}</string>\n",
                xml(k),
                xml(v)
            )
        })
        .collect();
    let log = |f: &str| xml(&log_dir.join(f).display().to_string());
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \
         \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
         <!-- Written by `mandate service install`; remove it with `mandate service uninstall`. -->\n\
         <plist version=\"1.0\">\n\
         <dict>\n\
         \x20 <key>Label</key>\n\
         \x20 <string>{label}</string>\n\
         \x20 <key>ProgramArguments</key>\n\
         \x20 <array>\n\
         {args}\
         \x20 </array>\n\
         \x20 <key>EnvironmentVariables</key>\n\
         \x20 <dict>\n\
         {env}\
         \x20 </dict>\n\
         \x20 <key>RunAtLoad</key>\n\
         \x20 <true/>\n\
         \x20 <key>KeepAlive</key>\n\
         \x20 <dict>\n\
         \x20   <key>SuccessfulExit</key>\n\
         \x20   <false/>\n\
         \x20 </dict>\n\
         \x20 <key>ProcessType</key>\n\
         \x20 <string>Background</string>\n\
         \x20 <key>StandardOutPath</key>\n\
         \x20 <string>{out}</string>\n\
         \x20 <key>StandardErrorPath</key>\n\
         \x20 <string>{err}</string>\n\
         </dict>\n\
         </plist>\n",
        label = xml(&label(&spec.name)),
        out = log("serve.log"),
        err = log("serve.err.log"),
    )
}

/// Where its output goes: `~/Library/Logs/Mandate`.
pub fn log_dir() -> Result<PathBuf, String> {
    home().map(|h| h.join("Library/Logs/Mandate"))
}

/// The user's launchd domain, `gui/<uid>`.
#[cfg(unix)]
pub fn domain() -> String {
    format!("gui/{}", rustix::process::getuid().as_raw())
}

#[cfg(not(unix))]
pub fn domain() -> String {
    "gui".into()
}

/// `launchctl ARGS`: `Ok(stdout)` or `Err(what it said)`.
pub fn launchctl(args: &[&str]) -> Result<String, String> {
    let out = Command::new("launchctl")
        .args(args)
        .output()
        .map_err(|e| format!("launchctl could not be run ({e})"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(if stderr.is_empty() {
            format!("launchctl exited with {}", out.status)
        } else {
            stderr
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ServiceSpec {
        ServiceSpec {
            exe: "/Applications/Mandate & Co/mandate".into(),
            data_dir: "/Users/f/Library/Application Support/dev.mandate.app".into(),
            port: None,
            keychain_service: Some("mandate<dev>".into()),
            name: "mandate-0193a1b2".into(),
        }
    }

    #[test]
    fn the_plist_runs_serve_at_load_with_escaped_values() {
        let p = render(
            &spec(),
            std::path::Path::new("/Users/f/Library/Logs/Mandate"),
        );
        assert!(
            p.contains("<string>dev.mandate.serve.0193a1b2</string>"),
            "{p}"
        );
        assert!(
            p.contains("<string>/Applications/Mandate &amp; Co/mandate</string>"),
            "{p}"
        );
        assert!(p.contains("<string>--service</string>"), "{p}");
        assert!(p.contains("<string>mandate&lt;dev&gt;</string>"), "{p}");
        assert!(p.contains("<key>RunAtLoad</key>\n  <true/>"), "{p}");
        assert_eq!(label("mandate"), "dev.mandate.serve");
    }

    /// An independent parser reads it as the property list we meant (Python's plistlib).
    #[test]
    fn python_plistlib_reads_the_plist() {
        use std::io::Write;
        let p = render(
            &spec(),
            std::path::Path::new("/Users/f/Library/Logs/Mandate"),
        );
        let mut child = Command::new("python3")
            .args([
                "-c",
                "import plistlib,sys,json; d=plistlib.loads(sys.stdin.buffer.read()); \
                 print(json.dumps(d))",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3");
        child.stdin.take().unwrap().write_all(p.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["Label"], "dev.mandate.serve.0193a1b2");
        assert_eq!(
            v["ProgramArguments"],
            serde_json::json!(["/Applications/Mandate & Co/mandate", "serve", "--service"])
        );
        assert_eq!(
            v["EnvironmentVariables"]["MANDATE_KEYCHAIN_SERVICE"],
            "mandate<dev>"
        );
        assert_eq!(v["RunAtLoad"], true);
        assert_eq!(v["KeepAlive"]["SuccessfulExit"], false);
    }
}
