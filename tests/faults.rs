//! Faults in the parts around the real `mandate serve` (issue 22 §6): the disk holding the data
//! folder fills up while it serves (a small tmpfs), the data folder's filesystem is read-only
//! when it starts and goes read-only while it serves (ext4 on a loop device, failed the way a
//! disk error fails it), and the database file is replaced by an older copy while it serves. Each
//! must give a clear sentence, acknowledge nothing it did not commit (every token a client
//! received has its `token.issued` event after a restart), and serve again once the fault is
//! gone (or, for the replaced file, refuse everything until restarted: fail closed).
//!
//! The OS keychain is locked mid-run too (a real gnome-keyring on a D-Bus session of the test's
//! own, so the tests alongside keep theirs; locked and unlocked over D-Bus by
//! `faults/keyring.py`): broker calls are refused with a sentence naming the locked keychain,
//! and work again once it is unlocked.
//!
//! Elsewhere: the rsyslog that goes away (`audit_siem`), the upstream that stalls (`broker`).
//!
//! The tmpfs cases mount filesystems, so they need root (the project's test machines run as
//! root; CI too). They say so plainly when they cannot mount rather than skip.

use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::SigningKey;
use mandate_core::keys;
use serde_json::{Value, json};

use crate::endpoint::{ASSERTION_TYPE, Resp, claims_of, enc, now, sign, try_http};
use crate::fixture::Env;
use crate::interop::Running;

const AGENT: &str = "fault-agent";

/// A tmpfs mounted on a folder for the length of a test.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .expect("mount");
        assert!(
            out.status.success(),
            "these fault tests mount a small tmpfs and need root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(at.to_path_buf())
    }

    fn remount(&self, how: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,{how}")])
            .arg(&self.0)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// An ext4 filesystem on a loop device (a file in `image`) mounted on a folder, with
/// `errors=remount-ro`: what a real disk does after an I/O error. Unlike a tmpfs, it can be made
/// read-only while a process holds files open for writing (`fail`): the kernel's emergency
/// remount, after which every write, through a descriptor opened before or not, fails with
/// EROFS, while reads go on.
struct Ext4 {
    at: PathBuf,
    image: PathBuf,
}

impl Ext4 {
    fn mount(at: &Path, image: &Path) -> Ext4 {
        std::fs::create_dir_all(at).unwrap();
        let f = std::fs::File::create(image).unwrap();
        f.set_len(64 << 20).unwrap();
        let run = |cmd: &mut Command| {
            let out = cmd
                .output()
                .expect("mkfs.ext4 and mount (e2fsprogs, util-linux)");
            assert!(
                out.status.success(),
                "this fault test mounts an ext4 image on a loop device and needs root: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(image));
        let fs = Ext4 {
            at: at.to_path_buf(),
            image: image.to_path_buf(),
        };
        fs.attach();
        fs
    }

    fn attach(&self) {
        let out = Command::new("mount")
            .args(["-o", "loop,errors=remount-ro"])
            .arg(&self.image)
            .arg(&self.at)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The filesystem fails: ext4 records an error and, as mounted, remounts itself read-only.
    fn fail(&self) {
        let out = Command::new("findmnt")
            .args(["-n", "-o", "SOURCE"])
            .arg(&self.at)
            .output()
            .unwrap();
        let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let dev = dev.rsplit('/').next().unwrap().to_string();
        std::fs::write(
            format!("/sys/fs/ext4/{dev}/trigger_fs_error"),
            "mandate fault test\n",
        )
        .expect("the kernel's ext4 test switch (/sys/fs/ext4/DEV/trigger_fs_error)");
        let opts = Command::new("findmnt")
            .args(["-n", "-o", "OPTIONS"])
            .arg(&self.at)
            .output()
            .unwrap();
        let opts = String::from_utf8_lossy(&opts.stdout).to_string();
        assert!(
            opts.contains("emergency_ro") || opts.starts_with("ro"),
            "the filesystem did not go read-only: {opts}"
        );
    }

    /// What an administrator does after such an error: unmount, check (replaying the journal
    /// ext4 aborted), mount again.
    fn repair(&self) {
        let out = Command::new("umount").arg(&self.at).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // e2fsck exits 1 when it corrected the error the test recorded.
        let fsck = Command::new("e2fsck")
            .arg("-fy")
            .arg(&self.image)
            .output()
            .unwrap();
        assert!(
            matches!(fsck.status.code(), Some(0 | 1)),
            "{}",
            String::from_utf8_lossy(&fsck.stdout)
        );
        self.attach();
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        // `-o loop` mounts detach their loop device when unmounted.
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

/// An installation with one agent whose key the test holds, and its server.
pub(crate) struct Served {
    pub(crate) env: Env,
    key: SigningKey,
    pub(crate) port: u16,
    serve: Option<Running>,
    log: PathBuf,
    n: std::cell::Cell<u64>,
    /// jti of every token a client received.
    received: std::cell::RefCell<Vec<String>>,
}

impl Served {
    pub(crate) fn new(env: Env) -> Served {
        Served::with_upstream(env, "http://127.0.0.1:9")
    }

    fn with_upstream(env: Env, base_url: &str) -> Served {
        env.run(&["member", "add", "founder"]).ok();
        env.run(&[
            "connection",
            "add",
            "github",
            "--preset",
            "github",
            "--base-url",
            base_url,
        ])
        .ok();
        env.run_stdin(
            &["connection", "set-secret", "github"],
            b"ghp_FAULTsecret0123456789",
        )
        .ok();
        let file = env.dir.path().join("agent.jwk");
        env.run(&[
            "agent",
            "add",
            AGENT,
            "--owner",
            "founder",
            "--purpose",
            "fault trials",
            "--scope",
            "github:repo.read",
            "--generate-key",
            "--key-file",
            file.to_str().unwrap(),
            "--key-format",
            "jwk",
        ])
        .ok();
        let jwk: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let d: [u8; 32] = B64
            .decode(jwk["d"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let log = env.dir.path().join("serve.log");
        let mut s = Served {
            env,
            key: SigningKey::from_bytes(&d),
            port: 0,
            serve: None,
            log,
            n: Default::default(),
            received: Default::default(),
        };
        s.start();
        s
    }

    fn start(&mut self) {
        self.serve = None;
        let mut child = self
            .env
            .cmd(&["serve", "--port", "0", "--no-rate-limit"])
            .stdout(Stdio::piped())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.log)
                    .unwrap(),
            )
            .spawn()
            .expect("mandate serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        self.port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("serve said {line:?}"));
        self.serve = Some(Running(child));
    }

    /// The running server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.serve.as_ref().expect("a running server").0.id()
    }

    /// Ask for a token; a received one is recorded.
    pub(crate) fn token(&self) -> Resp {
        self.n.set(self.n.get() + 1);
        let t = now();
        let aud = format!("http://127.0.0.1:{}/oauth2/token", self.port);
        let assertion = sign(
            &json!({"alg": "EdDSA", "typ": "JWT", "kid": keys::thumbprint(&self.key.verifying_key())}),
            &json!({"iss": AGENT, "sub": AGENT, "aud": aud, "iat": t, "exp": t + 60,
                    "jti": format!("fault-{t}-{}", self.n.get())}),
            &self.key,
        );
        let body = format!(
            "grant_type=client_credentials&client_assertion_type={}&client_assertion={assertion}",
            enc(ASSERTION_TYPE)
        );
        let r = try_http(
            self.port,
            "POST",
            "/oauth2/token",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            &body,
        )
        .expect("the server answers");
        if r.status == 200 {
            let jti = claims_of(r.json()["access_token"].as_str().unwrap())["jti"]
                .as_str()
                .unwrap()
                .to_string();
            self.received.borrow_mut().push(jti);
        }
        r
    }

    /// After a restart: the trail verifies and every received token has its event.
    fn nothing_acknowledged_was_lost(&self) {
        let v = self.env.run(&["--json", "audit", "verify"]);
        assert_eq!(v.code, 0, "audit verify: {} {}", v.stdout, v.stderr);
        let o = crate::fixture::sqlite3(self.env.db_path())
            .arg(
                "SELECT json_extract(CAST(body AS TEXT), '$.details.jti') FROM audit_events \
                 WHERE action = 'token.issued' AND decision = 'allow'",
            )
            .output()
            .unwrap();
        let issued: std::collections::HashSet<String> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(String::from)
            .collect();
        let received = self.received.borrow();
        let lost: Vec<&String> = received.iter().filter(|j| !issued.contains(*j)).collect();
        assert!(
            lost.is_empty(),
            "{} of {} received tokens have no committed event: {lost:?}",
            lost.len(),
            received.len()
        );
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        assert!(!log.contains("panicked"), "the server panicked: {log}");
    }
}

/// The agent is told its request was refused because the decision could not be recorded (it
/// cannot fix the disk); the person running the server reads why in its log.
fn assert_unrecorded(s: &Served, r: &Resp, log_says: &str) {
    assert_clear_refusal(r, "could not record this decision");
    let log = std::fs::read_to_string(&s.log).unwrap_or_default();
    assert!(
        log.contains(log_says),
        "the server log should say {log_says:?}: {}",
        log.chars()
            .rev()
            .take(2000)
            .collect::<String>()
            .chars()
            .rev()
            .collect::<String>()
    );
}

/// A refusal that says what broke and what to do, as OAuth JSON, and no token.
fn assert_clear_refusal(r: &Resp, says: &str) {
    assert!(
        r.status == 500 || r.status == 503,
        "expected a server-side refusal, got {} {}",
        r.status,
        r.body
    );
    let v = r.json();
    let why = v["error_description"].as_str().unwrap_or_default();
    assert!(
        !v["error"].as_str().unwrap_or_default().is_empty(),
        "{}",
        r.body
    );
    assert!(
        why.contains(says),
        "the refusal should say {says:?}: {}",
        r.body
    );
    assert!(v.get("access_token").is_none(), "{}", r.body);
}

/// Fill the filesystem holding `dir` with a file; returns its path.
fn fill(dir: &Path) -> PathBuf {
    let filler = dir.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let block = vec![0u8; 64 * 1024];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
    filler
}

#[test]
fn a_full_disk_refuses_tokens_clearly_loses_nothing_acknowledged_and_recovers() {
    let env = Env::new();
    let _fs = Tmpfs::mount(&env.data_dir(), "8m");
    let s = Served::new(env);
    for _ in 0..20 {
        assert_eq!(s.token().status, 200);
    }
    let filler = fill(&s.env.data_dir());
    // The WAL may still have room it reuses after a checkpoint, so some requests may still
    // succeed (and are then acknowledged and must be kept); within a bounded number the disk
    // runs out and the answer must say so.
    let mut refused = None;
    for _ in 0..5000 {
        let r = s.token();
        if r.status != 200 {
            refused = Some(r);
            break;
        }
    }
    let r = refused.expect("the server never noticed the full disk");
    assert_unrecorded(
        &s,
        &r,
        "full; nothing was saved: free some space there and retry",
    );
    for _ in 0..3 {
        let r = s.token();
        if r.status != 200 {
            assert_unrecorded(&s, &r, "full");
        }
    }
    // Space again: it serves again, without a restart.
    std::fs::remove_file(&filler).unwrap();
    let started = Instant::now();
    while s.token().status != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no token after freeing space"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut s = s;
    s.serve = None;
    s.start();
    assert_eq!(s.token().status, 200);
    s.nothing_acknowledged_was_lost();
}

#[test]
fn a_read_only_data_folder_is_refused_clearly_and_nothing_acknowledged_is_lost() {
    let env = Env::new();
    let fs = Tmpfs::mount(&env.data_dir(), "64m");
    let mut s = Served::new(env);
    for _ in 0..20 {
        assert_eq!(s.token().status, 200);
    }
    // The filesystem goes read-only (as after I/O errors) across a restart. (Linux refuses to
    // remount a filesystem read-only while a process holds a file open for writing, so the
    // server is stopped first: the same SIGKILL as the crash trials.)
    s.serve = None;
    fs.remount("ro");
    let serve = Command::new("timeout")
        .arg("20")
        .arg(crate::fixture::bin("mandate"))
        .args(["serve", "--port", "0"])
        .env("MANDATE_DATA_DIR", s.env.data_dir())
        .env("MANDATE_KEYCHAIN_SERVICE", &s.env.service)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&serve.stderr);
    assert_ne!(
        serve.status.code(),
        Some(124),
        "serve ran on a read-only folder: {stderr}"
    );
    assert!(!serve.status.success(), "{stderr}");
    assert!(
        stderr.contains("read-only"),
        "serve should say the folder is read-only: {stderr}"
    );
    let add = s.env.run(&["member", "add", "second"]);
    assert_ne!(add.code, 0);
    assert!(add.stderr.contains("read-only"), "{}", add.stderr);
    // Writable again: it serves, and everything acknowledged before is there.
    fs.remount("rw");
    s.start();
    assert_eq!(s.token().status, 200);
    s.nothing_acknowledged_was_lost();
}

#[test]
fn a_data_folder_gone_read_only_mid_run_refuses_writes_clearly_serves_reads_and_loses_nothing() {
    let env = Env::new();
    let fs = Ext4::mount(&env.data_dir(), &env.dir.path().join("data.ext4"));
    let mut s = Served::new(env);
    let mut before = Vec::new();
    for _ in 0..20 {
        let r = s.token();
        assert_eq!(r.status, 200, "{}", r.body);
        before.push(r.json()["access_token"].as_str().unwrap().to_string());
    }
    // While it serves, the filesystem turns read-only (ext4 after an I/O error), under the
    // descriptors the server already holds open for writing.
    fs.fail();
    for _ in 0..5 {
        let r = s.token();
        assert_unrecorded(
            &s,
            &r,
            "read-only (was the data folder made read-only, or its disk remounted?); nothing was saved",
        );
    }
    // What needs no write is still served: the signing keys for verifiers.
    let jwks = try_http(s.port, "GET", "/.well-known/jwks.json", &[], "").unwrap();
    assert_eq!(jwks.status, 200, "{}", jwks.body);
    assert!(!jwks.json()["keys"].as_array().unwrap().is_empty());
    // A broker call with a token acknowledged before is refused (its decision cannot be
    // recorded), clearly, and not passed upstream unrecorded.
    let call = try_http(
        s.port,
        "GET",
        "/proxy/github/repos/acme/billing",
        &[("Authorization", &format!("Bearer {}", before[0]))],
        "",
    )
    .unwrap();
    assert!(
        call.status == 500 || call.status == 503,
        "{} {}",
        call.status,
        call.body
    );
    assert!(call.body.contains("could not record"), "{}", call.body);
    // The person at the machine: the CLI says the folder is read-only and changes nothing.
    let add = s.env.run(&["member", "add", "second"]);
    assert_ne!(add.code, 0);
    assert!(add.stderr.contains("read-only"), "{}", add.stderr);
    // Repaired and restarted: it serves, and every token acknowledged before the fault has its
    // committed event.
    s.serve = None;
    fs.repair();
    s.start();
    assert_eq!(s.token().status, 200);
    s.nothing_acknowledged_was_lost();
}

#[test]
fn a_database_file_replaced_by_an_older_copy_while_serving_fails_closed() {
    let s = Served::new(Env::new());
    for _ in 0..5 {
        assert_eq!(s.token().status, 200);
    }
    // An older copy, taken the way a backup tool would (consistent), then more tokens.
    let older = s.env.dir.path().join("older.db");
    let out = crate::fixture::sqlite3(s.env.db_path())
        .arg(format!(".backup '{}'", older.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for _ in 0..5 {
        assert_eq!(s.token().status, 200);
    }
    // Someone restores the copy over the live file (renamed into place).
    std::fs::rename(&older, s.env.db_path()).unwrap();
    for _ in 0..5 {
        let r = s.token();
        assert_unrecorded(
            &s,
            &r,
            "was replaced by another file while Mandate was running",
        );
        assert!(
            std::fs::read_to_string(&s.log)
                .unwrap()
                .contains("until it is restarted")
        );
    }
    // Putting a file back does not lift it: only a restart, which then serves the file there.
    let mut s = s;
    s.serve = None;
    // The copy lacks the tokens issued after it was taken: restoring an old file loses them by
    // definition (the refusal's sentence says so); what matters is that nothing was
    // acknowledged after the swap.
    s.received.borrow_mut().clear();
    s.start();
    assert_eq!(s.token().status, 200);
    s.nothing_acknowledged_was_lost();
}

/// A Secret Service of this test's own (its own D-Bus session and gnome-keyring, as
/// `scripts/with-keyring` starts one), so that locking it does not lock the keychain the tests
/// running alongside use.
struct OwnKeyring {
    bus: String,
    daemon: Running,
    _dbus: Running,
    home: tempfile::TempDir,
}

/// The password the keyring is created with; gnome-keyring keeps the newline it reads.
const KEYRING_PASSWORD: &str = "fault-test\n";

impl OwnKeyring {
    fn start() -> OwnKeyring {
        let home = tempfile::tempdir().unwrap();
        let mut dbus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon");
        let mut bus = String::new();
        BufReader::new(dbus.stdout.take().unwrap())
            .read_line(&mut bus)
            .unwrap();
        let bus = bus.trim().to_string();
        let daemon = Self::spawn_daemon(&bus, home.path());
        let k = OwnKeyring {
            bus,
            daemon,
            _dbus: Running(dbus),
            home,
        };
        k.wait_ready();
        k
    }

    /// A gnome-keyring-daemon on `bus`, its keyring files under `home`, unlocked with
    /// [`KEYRING_PASSWORD`] (the same each time, so a restarted daemon opens the same keyring).
    fn spawn_daemon(bus: &str, home: &Path) -> Running {
        let mut daemon = Command::new("gnome-keyring-daemon")
            .args(["--foreground", "--unlock", "--components=secrets"])
            .env("DBUS_SESSION_BUS_ADDRESS", bus)
            .env("HOME", home)
            .env("XDG_DATA_HOME", home.join("data"))
            .env("XDG_RUNTIME_DIR", home)
            .env_remove("DISPLAY")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("gnome-keyring-daemon");
        // Closing stdin after the password lets the daemon read all of it.
        daemon
            .stdin
            .take()
            .unwrap()
            .write_all(KEYRING_PASSWORD.as_bytes())
            .unwrap();
        Running(daemon)
    }

    fn wait_ready(&self) {
        let started = Instant::now();
        while !self.run(&["state"]).status.success() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "gnome-keyring did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The daemon dies as it does in the wild (SIGTRAP, from one of its own GLib assertions)
    /// and another starts on the same keyring, as a desktop session's D-Bus activation does.
    fn crash_and_restart(&mut self) {
        let pid = self.daemon.0.id().to_string();
        let killed = Command::new("kill").args(["-TRAP", &pid]).status().unwrap();
        assert!(killed.success(), "kill -TRAP {pid}");
        let _ = self.daemon.0.wait();
        self.daemon = Self::spawn_daemon(&self.bus, self.home.path());
        self.wait_ready();
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("faults")
            .join("keyring.py");
        Command::new("/usr/bin/python3")
            .arg(script)
            .args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus)
            .output()
            .expect("/usr/bin/python3 faults/keyring.py (needs python3-dbus)")
    }

    fn keyring(&self, args: &[&str]) {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "keyring.py {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_keychain_locked_mid_run_refuses_broker_calls_clearly_and_they_resume_when_unlocked() {
    let upstream = crate::trials::start_upstream();
    let own = OwnKeyring::start();
    let mut env = Env::new();
    env.vars
        .push(("DBUS_SESSION_BUS_ADDRESS".into(), own.bus.clone()));
    let s = Served::with_upstream(env, &format!("http://127.0.0.1:{upstream}"));
    let token = s.token();
    assert_eq!(token.status, 200, "{}", token.body);
    let auth = format!("Bearer {}", token.json()["access_token"].as_str().unwrap());
    let call = |n: u32| {
        try_http(
            s.port,
            "GET",
            &format!("/proxy/github/repos/acme/locked-{n}"),
            &[("Authorization", &auth)],
            "",
        )
        .expect("the server answers")
    };
    assert_eq!(call(0).status, 200);
    own.keyring(&["lock"]);
    let unlock = || own.keyring(&["unlock", KEYRING_PASSWORD]);
    let refused = call(1);
    let verdict = std::panic::catch_unwind(|| {
        assert!(
            refused.status == 503 || refused.status == 500,
            "a broker call with the keychain locked: {} {}",
            refused.status,
            refused.body
        );
        assert!(
            refused.body.contains("locked"),
            "the refusal should name the locked keychain: {}",
            refused.body
        );
        assert!(!refused.body.contains("ghp_"), "{}", refused.body);
    });
    unlock();
    if let Err(e) = verdict {
        std::panic::resume_unwind(e);
    }
    let started = Instant::now();
    while call(2).status != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "broker calls did not resume"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The refusal was audited as a decision.
    let o = crate::fixture::sqlite3(s.env.db_path())
        .arg(
            "SELECT count(*) FROM audit_events WHERE action LIKE 'proxy.%' \
              AND json_extract(CAST(body AS TEXT), '$.details.path') = '/repos/acme/locked-1'",
        )
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "1",
        "the refused call is audited"
    );
    let mut s = s;
    s.serve = None;
    s.start();
    s.nothing_acknowledged_was_lost();
}

/// gnome-keyring-daemon has been seen to die mid-run (SIGTRAP from a GLib assertion, a known
/// upstream race; 1 CI run in 5 here). A desktop restarts it; the server must then use the new
/// daemon, not keep failing on the connection it opened to the dead one until someone restarts
/// Mandate.
#[test]
fn a_keychain_daemon_that_crashes_and_restarts_mid_run_is_reconnected_and_broker_calls_go_on() {
    let upstream = crate::trials::start_upstream();
    let mut own = OwnKeyring::start();
    let mut env = Env::new();
    env.vars
        .push(("DBUS_SESSION_BUS_ADDRESS".into(), own.bus.clone()));
    let s = Served::with_upstream(env, &format!("http://127.0.0.1:{upstream}"));
    let token = s.token();
    assert_eq!(token.status, 200, "{}", token.body);
    let auth = format!("Bearer {}", token.json()["access_token"].as_str().unwrap());
    let call = |n: u32| {
        try_http(
            s.port,
            "GET",
            &format!("/proxy/github/repos/acme/restart-{n}"),
            &[("Authorization", &auth)],
            "",
        )
        .expect("the server answers")
    };
    assert_eq!(call(0).status, 200);
    own.crash_and_restart();
    // The first call after the restart already succeeds: the server reconnects by itself.
    let after = call(1);
    assert_eq!(
        after.status, 200,
        "a broker call after the keychain daemon restarted: {}",
        after.body
    );
    assert!(!after.body.contains("ghp_"), "{}", after.body);
    assert_eq!(call(2).status, 200);
    // And a new token is still signed (the issuer key is read through the same keychain).
    assert_eq!(s.token().status, 200);

    // A command started while the daemon is down, or just back and not yet unlocked, waits
    // for it instead of failing (the CI runs where a crash failed the commands in flight).
    let pid = own.daemon.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TRAP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let _ = own.daemon.0.wait();
    let out = s.env.dir.path().join("during-restart.bundle");
    let export = {
        let env = &s.env;
        let out = out.clone();
        std::thread::scope(|scope| {
            let cli = scope.spawn(move || {
                env.run(&[
                    "audit",
                    "export",
                    "--format",
                    "bundle",
                    "--out",
                    out.to_str().unwrap(),
                ])
            });
            // Long enough that the command opens the keychain while no daemon runs.
            std::thread::sleep(Duration::from_millis(900));
            own.daemon = OwnKeyring::spawn_daemon(&own.bus, own.home.path());
            cli.join().unwrap()
        })
    };
    assert_eq!(export.code, 0, "{}", export.stderr);
    assert!(out.exists());
}
