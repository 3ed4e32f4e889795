//! `mandate service install|uninstall|status` against a real systemd user manager: the endpoint
//! runs at a fresh login, serves tokens with no app open, hands over from another endpoint that
//! held the data folder, and goes away on uninstall.
//!
//! What "a login" is here: this machine's PID 1 is not systemd, so there is no logind to start
//! a user manager. The test starts the real `systemd --user` (Debian's systemd 252) the way a
//! login does: its own `XDG_RUNTIME_DIR` (0700) and `XDG_CONFIG_HOME`, the session bus at
//! `$XDG_RUNTIME_DIR/bus` (a link to the private Secret Service's bus from
//! `scripts/with-keyring`; the manager's own `dbus.socket` is masked so it does not replace
//! it), in a private mount namespace where `/run/systemd/system` exists,
//! since systemd refuses to run as a user manager on a machine not booted with it. Units are
//! loaded from the config folder, `default.target` pulls in what is enabled, exactly as at a
//! login. Stopping that manager (SIGTERM) is the logout; starting a new one, the next login.
//! This needs root (for the namespace); the suite runs as root.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::endpoint::claims_of;
use crate::fixture::{Env, Run};
use crate::interop::Running;

/// Only one private user manager at a time on this machine (they share the cgroup tree and
/// the systemd instance's names): an exclusive lock, released when the file is dropped.
fn machine_lock() -> std::fs::File {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(std::env::temp_dir().join("mandate-test-user-systemd.lock"))
        .unwrap();
    fs4::FileExt::lock(&f).unwrap();
    f
}

/// The folders of one user's sessions.
struct Session {
    runtime: PathBuf,
    config: PathBuf,
    home: PathBuf,
    bus: String,
}

/// A running user manager: one login.
struct Login(Child);

impl Session {
    fn new(root: &Path) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let runtime = root.join("runtime");
        let config = root.join("config");
        let home = root.join("home");
        for d in [&runtime, &config, &home] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
        // The session bus where a login puts it, $XDG_RUNTIME_DIR/bus: the private one that
        // holds the Secret Service.
        let addr = std::env::var("DBUS_SESSION_BUS_ADDRESS").unwrap_or_default();
        let socket = addr
            .strip_prefix("unix:path=")
            .and_then(|r| r.split(',').next())
            .unwrap_or_else(|| panic!("the session bus is not a path socket: {addr:?}"))
            .to_string();
        std::os::unix::fs::symlink(&socket, runtime.join("bus")).unwrap();
        // At a real login dbus-user-session's `dbus.socket` provides that bus; here the
        // harness's bus (which holds the unlocked keyring the CLI wrote to) stands in, so the
        // user manager must not replace it with a fresh one.
        let units = config.join("systemd/user");
        std::fs::create_dir_all(&units).unwrap();
        for masked in ["dbus.socket", "dbus.service"] {
            std::os::unix::fs::symlink("/dev/null", units.join(masked)).unwrap();
        }
        let bus = format!("unix:path={}", runtime.join("bus").display());
        Session {
            runtime,
            config,
            home,
            bus,
        }
    }

    /// What a program in this session sees.
    fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("XDG_RUNTIME_DIR", self.runtime.display().to_string()),
            ("XDG_CONFIG_HOME", self.config.display().to_string()),
            ("DBUS_SESSION_BUS_ADDRESS", self.bus.clone()),
        ]
    }

    /// Log in: start a user manager and wait until it has started what is enabled.
    fn login(&self) -> Login {
        assert!(
            Path::new("/lib/systemd/systemd").exists() && which("unshare"),
            "this test runs a real systemd user manager: install systemd and util-linux"
        );
        let child = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c"])
            .arg(
                "mount -t tmpfs tmpfs /run/systemd && mkdir -p /run/systemd/system && \
                 exec /lib/systemd/systemd --user",
            )
            .envs(self.vars())
            .env("HOME", &self.home)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("unshare");
        let login = Login(child);
        // (`is-system-running` would say "offline" out here: systemctl itself checks whether
        // the machine booted with systemd.)
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.systemctl(&["is-active", "default.target"]);
            let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if state == "active" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the user manager did not finish starting: {state:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        login
    }

    fn systemctl(&self, args: &[&str]) -> std::process::Output {
        Command::new("systemctl")
            .arg("--user")
            .args(args)
            .envs(self.vars())
            .output()
            .unwrap()
    }
}

fn which(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Login {
    /// Log out: the manager stops its units (SIGTERM) and exits.
    fn logout(mut self) {
        let pid = self.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the user manager did not stop within 30 s");
    }
}

impl Drop for Login {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.0.id().to_string()])
                .status();
            let _ = self.0.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run_in(env: &Env, s: &Session, args: &[&str]) -> Run {
    let vars = s.vars();
    let v: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.run_with_env(args, &v)
}

fn status(env: &Env, s: &Session) -> Value {
    run_in(env, s, &["--json", "service", "status"]).ok().json()
}

/// Wait until `status` satisfies `ok`, or fail with the last one.
fn wait_status(env: &Env, s: &Session, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let st = status(env, s);
        if ok(&st) {
            return st;
        }
        assert!(Instant::now() < deadline, "{what}: {st:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn served_by(st: &Value) -> Option<&str> {
    st["endpoint"]["served_by"].as_str()
}

#[test]
fn the_service_starts_at_a_fresh_login_serves_tokens_with_no_app_and_goes_on_uninstall() {
    let _one_at_a_time = machine_lock();
    let env = Env::new();
    env.seed();
    let session = Session::new(&env.dir.path().join("session"));
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");

    // Before: not installed, nothing serves.
    let st = status(&env, &session);
    assert_eq!(st["installed"], false, "{st}");
    assert_eq!(st["endpoint"]["running"], false);

    // A login, then install: enabled, started now, serving this data folder.
    let first = session.login();
    let out = run_in(
        &env,
        &session,
        &["service", "install", "--port", &port.to_string()],
    )
    .ok();
    assert!(out.stdout.contains("Installed mandate-"), "{}", out.stdout);
    assert!(
        out.stdout.contains("served by the background service"),
        "{}",
        out.stdout
    );
    let st = wait_status(&env, &session, "serving after install", |st| {
        served_by(st) == Some("service")
    });
    assert_eq!(st["manager"], "systemd");
    assert_eq!(st["enabled"], "enabled");
    assert_eq!(st["active"], "active");
    assert_eq!(st["endpoint"]["url"], issuer.as_str());
    let unit = PathBuf::from(st["definition"].as_str().unwrap());
    let text = std::fs::read_to_string(&unit).unwrap();
    assert!(text.contains("\"serve\" \"--service\""), "{text}");
    assert!(
        text.contains(&format!("MANDATE_DATA_DIR={}", env.data_dir().display())),
        "{text}"
    );
    let token = env.run(&["token", "billing-report-agent"]).ok();
    assert_eq!(claims_of(token.stdout.trim())["iss"], issuer.as_str());

    // Log out: the service stops with the session.
    first.logout();
    let st = status(&env, &session);
    assert_eq!(st["endpoint"]["running"], false, "{st}");
    env.run(&["token", "billing-report-agent"])
        .fails(8, "no Mandate endpoint is running");

    // A fresh login: the service starts by itself, and agents get tokens with no app open.
    let second = session.login();
    let st = wait_status(&env, &session, "serving after a fresh login", |st| {
        served_by(st) == Some("service")
    });
    assert_eq!(st["active"], "active");
    let token = env.run(&["token", "billing-report-agent"]).ok();
    assert_eq!(
        claims_of(token.stdout.trim())["sub"],
        "billing-report-agent"
    );

    // Uninstall: stopped, disabled, the unit file gone.
    let out = run_in(&env, &session, &["service", "uninstall"]).ok();
    assert!(out.stdout.contains("Removed mandate-"), "{}", out.stdout);
    let st = status(&env, &session);
    assert_eq!(st["installed"], false, "{st}");
    assert_eq!(st["endpoint"]["running"], false, "{st}");
    assert!(!unit.exists());
    second.logout();
}

#[test]
fn the_service_waits_while_another_endpoint_serves_the_folder_and_takes_over_when_it_stops() {
    let _one_at_a_time = machine_lock();
    let env = Env::new();
    env.seed();
    let session = Session::new(&env.dir.path().join("session"));
    let port = free_port();
    // Another endpoint holds the data folder first (as the app's does while its window is open).
    let (manual, manual_port) = crate::endpoint_walk::serve(&env);
    let login = session.login();
    run_in(
        &env,
        &session,
        &["service", "install", "--port", &port.to_string()],
    )
    .ok();
    let st = status(&env, &session);
    assert_eq!(st["active"], "active", "the service runs, waiting: {st}");
    assert_eq!(served_by(&st), Some("cli"), "{st}");
    assert_eq!(
        st["endpoint"]["url"],
        format!("http://127.0.0.1:{manual_port}")
    );
    // The other endpoint closes: the service takes the folder over, on its own port.
    drop::<Running>(manual);
    let st = wait_status(&env, &session, "the service took over", |st| {
        served_by(st) == Some("service")
    });
    assert_eq!(st["endpoint"]["url"], format!("http://127.0.0.1:{port}"));
    env.run(&["token", "billing-report-agent"]).ok();
    run_in(&env, &session, &["service", "uninstall"]).ok();
    login.logout();
}
