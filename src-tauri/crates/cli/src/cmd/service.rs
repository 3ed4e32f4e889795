//! `mandate service install|uninstall|status`: run the endpoint at login, without the app.
//!
//! Adapters over `crate::service` (the unit file or plist, and the OS's service manager) and
//! the data folder's lock (who serves it now). See that module for what the service is.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Subcommand;
use mandate_server::ServedBy;
use serde::Serialize;

use crate::context::{CliError, CliResult, Ctx};
use crate::service::{self, ServiceSpec, launchd, systemd};

#[derive(Debug, Subcommand)]
pub enum ServiceCmd {
    /// Run `mandate serve` for this data folder at every login (a systemd user unit on Linux,
    /// a launchd agent on macOS), and start it now.
    ///
    /// Agents then get tokens while the app is closed: a cron job, a systemd timer, a
    /// long-running `mandate exec`. The app uses the service's endpoint instead of starting its
    /// own; if the app's endpoint is running when the service starts, the service waits and
    /// takes over when the app closes. The data folder, and the port and keychain namespace
    /// when set, are written into the service definition.
    Install {
        /// Port on 127.0.0.1 (default: MANDATE_PORT, else 6263).
        #[arg(long, value_name = "N")]
        port: Option<u16>,
    },
    /// Stop the background service and remove it; the app serves the endpoint again while its
    /// window is open.
    Uninstall,
    /// Whether the service is installed, enabled and running, and who serves the endpoint now.
    Status,
}

/// What `status` reports (and `--json` prints).
#[derive(Debug, Serialize)]
struct Status {
    /// `systemd` or `launchd`.
    manager: &'static str,
    /// The unit or agent name.
    name: String,
    /// Its definition file.
    definition: PathBuf,
    installed: bool,
    /// What the service manager says: `enabled`/`disabled` (systemd) or `loaded`/`not loaded`.
    enabled: String,
    /// `active`, `inactive`, `failed`, `activating`... or why it is unknown.
    active: String,
    endpoint: EndpointNow,
}

/// Who serves this data folder now.
#[derive(Debug, Serialize)]
struct EndpointNow {
    running: bool,
    /// `service`, `app` or `cli` (a `mandate serve` started by hand).
    served_by: Option<&'static str>,
    pid: Option<u32>,
    url: Option<String>,
}

fn fail(code: u8, message: String) -> CliError {
    CliError::Exit { code, message }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Manager {
    Systemd,
    Launchd,
}

fn manager() -> CliResult<Manager> {
    if cfg!(target_os = "macos") {
        Ok(Manager::Launchd)
    } else if cfg!(target_os = "linux") {
        Ok(Manager::Systemd)
    } else {
        Err(fail(
            5,
            "`mandate service` manages a systemd user unit (Linux) or a launchd agent (macOS); \
             on this system, start `mandate serve` at logon with the system's own scheduler \
             (on Windows: Task Scheduler, \"At log on\")"
                .into(),
        ))
    }
}

fn spec(ctx: &mut Ctx, port: Option<u16>) -> CliResult<ServiceSpec> {
    let m = ctx.mandate()?;
    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map_err(|e| fail(1, format!("could not tell where this `mandate` is ({e})")))?;
    let data_dir = m
        .data_dir()
        .canonicalize()
        .unwrap_or_else(|_| m.data_dir().to_path_buf());
    let default_dir = mandate_core::paths::default_data_dir()
        .ok()
        .map(|d| d.canonicalize().unwrap_or(d));
    let port = match port {
        Some(p) => Some(p),
        None => match std::env::var(mandate_server::PORT_ENV) {
            Ok(p) if !p.is_empty() => Some(p.parse().map_err(|_| {
                fail(
                    2,
                    format!("{}={p} is not a port number", mandate_server::PORT_ENV),
                )
            })?),
            _ => None,
        },
    };
    let keychain_service = std::env::var(mandate_core::paths::KEYCHAIN_SERVICE_ENV)
        .ok()
        .filter(|s| !s.is_empty());
    let s = ServiceSpec {
        name: service::service_name(&data_dir, default_dir.as_deref(), m.install_id()),
        exe,
        data_dir,
        port,
        keychain_service,
    };
    for (what, v) in [
        ("the path of `mandate`", s.exe.display().to_string()),
        ("the data folder's path", s.data_dir.display().to_string()),
    ] {
        service::check_value(what, &v).map_err(|e| fail(3, e))?;
    }
    if let Some(k) = &s.keychain_service {
        service::check_value("MANDATE_KEYCHAIN_SERVICE", k).map_err(|e| fail(3, e))?;
    }
    Ok(s)
}

fn definition(mgr: Manager, s: &ServiceSpec) -> CliResult<PathBuf> {
    let r = match mgr {
        Manager::Systemd => systemd::unit_dir().map(|d| d.join(systemd::unit_name(&s.name))),
        Manager::Launchd => {
            launchd::agents_dir().map(|d| d.join(format!("{}.plist", launchd::label(&s.name))))
        }
    };
    r.map_err(|e| {
        fail(
            1,
            format!("could not tell where the service definition goes: {e}"),
        )
    })
}

pub fn run(ctx: &mut Ctx, cmd: ServiceCmd) -> CliResult {
    let mgr = manager()?;
    match cmd {
        ServiceCmd::Install { port } => install(ctx, mgr, port),
        ServiceCmd::Uninstall => uninstall(ctx, mgr),
        ServiceCmd::Status => {
            let s = spec(ctx, None)?;
            let st = status(ctx, mgr, &s)?;
            if ctx.json {
                crate::output::json(&st)
            } else {
                print_status(&st);
                Ok(())
            }
        }
    }
}

fn install(ctx: &mut Ctx, mgr: Manager, port: Option<u16>) -> CliResult {
    if ctx.uses_database() {
        // The definition is a plain file; a database URL often holds a password.
        return Err(fail(
            3,
            "the background service serves this machine's own data folder (SQLite); it does \
             not take a PostgreSQL database, whose URL would have to be written into the service \
             definition. Run `mandate service install` without --database or \
             MANDATE_DATABASE_URL"
                .into(),
        ));
    }
    let s = spec(ctx, port)?;
    let path = definition(mgr, &s)?;
    let write_failed = |e: std::io::Error| {
        fail(
            1,
            format!(
                "could not write {} ({e}); nothing was installed",
                path.display()
            ),
        )
    };
    let mut notes: Vec<String> = Vec::new();
    match mgr {
        Manager::Systemd => {
            let unit = systemd::unit_name(&s.name);
            systemd::write_file(&path, &systemd::render(&s)).map_err(write_failed)?;
            if let Err(e) = systemd::systemctl(&["enable", &unit]) {
                let _ = std::fs::remove_file(&path);
                return Err(fail(
                    1,
                    format!(
                        "`systemctl --user enable {unit}` failed ({e}); nothing was installed. \
                         Is systemd your service manager?"
                    ),
                ));
            }
            // Starting needs a running user manager; enabling alone already covers the next
            // login. `restart` also picks up a changed definition when it was running.
            let started = systemd::systemctl(&["daemon-reload"])
                .and_then(|_| systemd::systemctl(&["restart", &unit]));
            if let Err(e) = started {
                notes.push(format!(
                    "It starts at your next login; it could not be started now because the \
                     systemd user manager did not answer ({e}). Start it yourself with \
                     `systemctl --user start {unit}`."
                ));
            }
        }
        Manager::Launchd => {
            let logs = launchd::log_dir().map_err(|e| fail(1, e))?;
            std::fs::create_dir_all(&logs).map_err(write_failed)?;
            systemd::write_file(&path, &launchd::render(&s, &logs)).map_err(write_failed)?;
            let target = format!("{}/{}", launchd::domain(), launchd::label(&s.name));
            // Replace a loaded older definition.
            let _ = launchd::launchctl(&["bootout", &target]);
            let plist = path.display().to_string();
            if let Err(e) = launchd::launchctl(&["bootstrap", &launchd::domain(), &plist]) {
                notes.push(format!(
                    "It starts at your next login; loading it now failed ({e}). Load it \
                     yourself with `launchctl bootstrap {} {plist}`.",
                    launchd::domain()
                ));
            }
        }
    }
    let st = wait_for_endpoint(ctx, mgr, &s, notes.is_empty())?;
    if ctx.json {
        return crate::output::json(&st);
    }
    println!("Installed {} ({}).", st.name, st.definition.display());
    println!(
        "It runs `mandate serve` for {} at every login.",
        s.data_dir.display()
    );
    print_endpoint(&st.endpoint);
    for n in notes {
        println!("{n}");
    }
    Ok(())
}

/// After a start, give the service a few seconds to take the data folder, then report.
fn wait_for_endpoint(
    ctx: &mut Ctx,
    mgr: Manager,
    s: &ServiceSpec,
    started: bool,
) -> CliResult<Status> {
    let deadline = Instant::now() + Duration::from_secs(if started { 10 } else { 0 });
    loop {
        let st = status(ctx, mgr, s)?;
        let settled = st.endpoint.running || st.active.starts_with("failed");
        if settled || Instant::now() >= deadline {
            return Ok(st);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn uninstall(ctx: &mut Ctx, mgr: Manager) -> CliResult {
    let s = spec(ctx, None)?;
    let path = definition(mgr, &s)?;
    if !path.exists() {
        println!(
            "No background service is installed for this data folder ({} does not exist).",
            path.display()
        );
        return Ok(());
    }
    match mgr {
        Manager::Systemd => {
            let unit = systemd::unit_name(&s.name);
            // `--now` also stops it; without a user manager only the link can go.
            if systemd::systemctl(&["disable", "--now", &unit]).is_err() {
                systemd::systemctl(&["disable", &unit]).map_err(|e| {
                    fail(
                        1,
                        format!(
                            "`systemctl --user disable {unit}` failed ({e}); it is still installed"
                        ),
                    )
                })?;
            }
            std::fs::remove_file(&path)
                .map_err(|e| fail(1, format!("could not remove {} ({e})", path.display())))?;
            let _ = systemd::systemctl(&["daemon-reload"]);
        }
        Manager::Launchd => {
            let target = format!("{}/{}", launchd::domain(), launchd::label(&s.name));
            let _ = launchd::launchctl(&["bootout", &target]);
            std::fs::remove_file(&path)
                .map_err(|e| fail(1, format!("could not remove {} ({e})", path.display())))?;
        }
    }
    println!(
        "Removed {}: the endpoint no longer starts at login. While the app is open, it serves \
         the endpoint itself.",
        s.name
    );
    Ok(())
}

fn status(ctx: &mut Ctx, mgr: Manager, s: &ServiceSpec) -> CliResult<Status> {
    let path = definition(mgr, s)?;
    let installed = path.exists();
    let (manager, name, enabled, active) = match mgr {
        Manager::Systemd => {
            let unit = systemd::unit_name(&s.name);
            let (enabled, active) = if installed {
                (
                    systemd::query(&unit, "is-enabled"),
                    systemd::query(&unit, "is-active"),
                )
            } else {
                ("not installed".into(), "inactive".into())
            };
            ("systemd", unit, enabled, active)
        }
        Manager::Launchd => {
            let label = launchd::label(&s.name);
            let target = format!("{}/{label}", launchd::domain());
            let loaded = installed && launchd::launchctl(&["print", &target]).is_ok();
            let enabled = if loaded { "loaded" } else { "not loaded" };
            ("launchd", label, enabled.to_string(), enabled.to_string())
        }
    };
    let m = ctx.mandate()?;
    let now = mandate_server::lock::running(m.data_dir());
    Ok(Status {
        manager,
        name,
        definition: path,
        installed,
        enabled,
        active,
        endpoint: EndpointNow {
            running: now.is_some(),
            served_by: now.as_ref().map(|h| h.by.as_str()),
            pid: now.as_ref().map(|h| h.pid),
            url: now.as_ref().map(|h| h.url()),
        },
    })
}

fn print_endpoint(e: &EndpointNow) {
    match (e.running, e.served_by, e.pid, &e.url) {
        (true, Some(by), Some(pid), Some(url)) => {
            let who = match by {
                b if b == ServedBy::Service.as_str() => "the background service".to_string(),
                b if b == ServedBy::App.as_str() => {
                    "the app (the service takes over when it closes)".to_string()
                }
                _ => "a `mandate serve` started by hand".to_string(),
            };
            println!("Endpoint: {url}, served by {who} (process {pid}).");
        }
        _ => println!("Endpoint: not running for this data folder."),
    }
}

fn print_status(st: &Status) {
    println!("Service:  {} ({})", st.name, st.manager);
    if st.installed {
        println!("Defined:  {}", st.definition.display());
        println!("Enabled:  {}", st.enabled);
        println!("Running:  {}", st.active);
    } else {
        println!("Not installed: `mandate service install` runs the endpoint at every login.");
    }
    print_endpoint(&st.endpoint);
}
