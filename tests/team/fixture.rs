//! Real parts for the team server's tests: a SoftHSM2 token in a private folder, a CA and a
//! server certificate made with the `openssl` tool, a second host (a network namespace joined
//! by veth pairs, each on its own private /30), and `mandate server` instances.
//!
//! Nothing is skipped: a missing tool or a network namespace that cannot be made fails the
//! test with the reason (these tests run as root, in `scripts/test --team`).

use std::io::{BufRead, BufReader, Read as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "../run.rs"]
mod run;
pub use run::Run;

pub const PIN: &str = "team-test-pin-2468";
pub const HOST: &str = "mandate.test";
pub const PORT: u16 = 8443;

/// A binary built into the same target folder as this test.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build it first with `cargo build -p mandate-cli` (scripts/test does)",
        path.display()
    );
    path
}

#[track_caller]
fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("could not run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The SoftHSM2 module Debian installs.
pub fn softhsm_module() -> PathBuf {
    for p in [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    ] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("SoftHSM2 is not installed: `apt-get install softhsm2` (scripts/test installs it)")
}

/// A team server's world: its database (a data folder for now), its PKCS#11 token, its
/// certificate authority and server certificate for `mandate.test`.
pub struct Team {
    pub dir: tempfile::TempDir,
    /// The PostgreSQL database (`MANDATE_DATABASE_URL`), or `None` for SQLite in the data
    /// folder.
    pub database: Option<String>,
    /// The public URL's host: [`HOST`], or an address clients on this host reach without a
    /// name server (the certificate is then trusted by fingerprint).
    pub public_host: String,
}

impl Team {
    /// A fresh token and PKI; nothing initialised yet.
    pub fn new() -> Team {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        std::fs::create_dir(d.join("tokens")).unwrap();
        std::fs::write(
            d.join("softhsm2.conf"),
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                d.join("tokens").display()
            ),
        )
        .unwrap();
        run_ok(
            Command::new("softhsm2-util")
                .env("SOFTHSM2_CONF", d.join("softhsm2.conf"))
                .args(["--init-token", "--free", "--label", "team"])
                .args(["--pin", PIN, "--so-pin", "team-test-so-pin"]),
        );
        // A CA and a certificate for mandate.test signed by it (P-256, as most CAs issue).
        let ossl = |args: &[&str]| {
            run_ok(Command::new("openssl").current_dir(d).args(args));
        };
        ossl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=Team Test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ]);
        ossl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=mandate.test",
        ]);
        std::fs::write(
            d.join("ext"),
            "subjectAltName=DNS:mandate.test\nbasicConstraints=CA:FALSE\n\
             extendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        ossl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            "server.pem",
            "-extfile",
            "ext",
        ]);
        set_mode(&d.join("server.key"), 0o600);
        Team {
            dir,
            database: None,
            public_host: HOST.to_string(),
        }
    }

    /// The same, with the registry and the audit trail in the PostgreSQL database `url`.
    pub fn on_postgres(url: &str) -> Team {
        Team {
            database: Some(url.to_string()),
            ..Team::new()
        }
    }

    /// `mandate server init` with the public URL and `admin` as the first admin: their
    /// one-time invite code.
    pub fn init_with_admin(&self, admin: &str) -> String {
        self.mandate(&[
            "--json",
            "server",
            "init",
            "--public-url",
            &self.public_url(),
            "--admin",
            admin,
        ])
        .ok()
        .json()["invite_code"]
            .as_str()
            .expect("an invite code")
            .to_string()
    }

    /// The SHA-256 fingerprint of the server certificate, as `--server-fingerprint` takes it.
    pub fn cert_fingerprint(&self) -> String {
        let out = run_ok(Command::new("openssl").current_dir(self.dir.path()).args([
            "x509",
            "-in",
            "server.pem",
            "-noout",
            "-fingerprint",
            "-sha256",
        ]));
        let text = String::from_utf8(out.stdout).unwrap();
        text.trim().rsplit('=').next().unwrap().to_string()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.path("data")
    }

    pub fn public_url(&self) -> String {
        format!("https://{}:{PORT}", self.public_host)
    }

    /// What every server-side `mandate` needs: the store and the token.
    pub fn vars(&self) -> Vec<(String, String)> {
        let mut v = vec![
            ("MANDATE_DATA_DIR".into(), path_str(&self.data_dir())),
            (
                "SOFTHSM2_CONF".into(),
                path_str(&self.path("softhsm2.conf")),
            ),
            ("MANDATE_PKCS11_MODULE".into(), path_str(&softhsm_module())),
            ("MANDATE_PKCS11_TOKEN".into(), "team".into()),
            ("MANDATE_PKCS11_PIN".into(), PIN.into()),
        ];
        if let Some(url) = &self.database {
            v.push(("MANDATE_DATABASE_URL".into(), url.clone()));
        }
        v
    }

    /// `mandate ARGS` on the server side (the admin's shell on the server host).
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin("mandate"));
        c.args(args)
            .envs(self.vars())
            .env("MANDATE_KEYCHAIN_SERVICE", "mandate-team-test-unused")
            .env_remove("MANDATE_ACTOR")
            .stdin(Stdio::null());
        c
    }

    #[track_caller]
    pub fn mandate(&self, args: &[&str]) -> Run {
        self.cmd(args).output().expect("run mandate").into()
    }

    /// `server init`, a connection, and an agent whose key is a file the remote host holds.
    pub fn init(&self) {
        self.mandate(&[
            "server",
            "init",
            "--public-url",
            &self.public_url(),
            "--admin",
            "alice",
        ])
        .ok();
        self.mandate(&[
            "connection",
            "add",
            "billing-db",
            "--base-url",
            "https://billing.example",
            "--action",
            "invoices.read=GET:/invoices/**",
        ])
        .ok();
        for agent in ["billing-bot", "load-bot"] {
            let key = self.path(&format!("{agent}.pem"));
            self.mandate(&[
                "agent",
                "add",
                agent,
                "--owner",
                "alice",
                "--purpose",
                "monthly billing report",
                "--scope",
                "billing-db:invoices.read",
                "--generate-key",
                "--key-file",
                key.to_str().unwrap(),
                "--key-format",
                "pem",
            ])
            .ok();
        }
    }

    /// Start `mandate server` on `ip`, wait until it listens.
    pub fn start(&self, ip: Ipv4Addr, extra: &[&str]) -> Instance {
        self.start_with_env(ip, extra, &[])
    }

    /// [`Team::start`] with more environment variables for the server.
    pub fn start_with_env(&self, ip: Ipv4Addr, extra: &[&str], env: &[(&str, &str)]) -> Instance {
        let listen = SocketAddr::new(IpAddr::V4(ip), PORT);
        let mut child = self
            .cmd(&[
                "server",
                "--listen",
                &listen.to_string(),
                "--tls-cert",
                self.path("server.pem").to_str().unwrap(),
                "--tls-key",
                self.path("server.key").to_str().unwrap(),
            ])
            .args(extra)
            .envs(env.iter().copied())
            .env("MANDATE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(self.path(&format!("server-{ip}.log"))).unwrap())
            .spawn()
            .expect("mandate server");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        if !line.starts_with("Team server listening on") {
            let _ = child.wait();
            let err =
                std::fs::read_to_string(self.path(&format!("server-{ip}.log"))).unwrap_or_default();
            panic!("mandate server did not start: {line}{err}");
        }
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = out.read_to_end(&mut sink);
        });
        Instance {
            child,
            addr: listen,
        }
    }

    /// The evidence bundle exported on the server (signed inside the token).
    pub fn export_bundle(&self, name: &str) -> PathBuf {
        let out = self.path(name);
        self.mandate(&[
            "audit",
            "export",
            "--format",
            "bundle",
            "--out",
            out.to_str().unwrap(),
        ])
        .ok();
        out
    }
}

pub fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

pub fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The events of an exported bundle.
pub fn bundle_events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "event")
        .map(|v| v["event"].clone())
        .collect()
}

/// A running `mandate server`.
pub struct Instance {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Instance {
    /// SIGKILL: no shutdown handler runs.
    pub fn kill_9(mut self) {
        self.child.kill().expect("kill -9 the instance");
        let status = self.child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt as _;
        assert_eq!(status.signal(), Some(9), "the instance died of SIGKILL");
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Another host: a network namespace joined to this one by two veth pairs, each a private
/// /30 (this side .1 and .5, the namespace .2 and .6), with its own `/etc/hosts` (what
/// `ip netns exec` mounts from `/etc/netns/NAME/hosts`). Torn down when dropped.
pub struct RemoteHost {
    pub name: String,
    links: Vec<String>,
    /// The addresses on this side, where instances listen.
    pub server_ips: [Ipv4Addr; 2],
    pub home: tempfile::TempDir,
}

impl RemoteHost {
    pub fn new() -> RemoteHost {
        static N: AtomicU32 = AtomicU32::new(0);
        assert_eq!(
            rustix_uid(),
            0,
            "the team tests make a network namespace for the remote agent and must run as root"
        );
        let n = N.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let name = format!("mandate-t{pid}-{n}");
        let octet = 200 + (n % 50) as u8;
        let third = (pid % 250) as u8;
        let host = RemoteHost {
            name: name.clone(),
            links: vec![
                format!("mt{}h{n}a", pid % 100_000),
                format!("mt{}h{n}b", pid % 100_000),
            ],
            server_ips: [
                Ipv4Addr::new(10, octet, third, 1),
                Ipv4Addr::new(10, octet, third, 5),
            ],
            home: tempfile::tempdir().unwrap(),
        };
        let ip = |args: &[&str]| {
            run_ok(Command::new("ip").args(args));
        };
        ip(&["netns", "add", &name]);
        for (i, link) in host.links.iter().enumerate() {
            let peer = format!("{link}n");
            let here = host.server_ips[i];
            let there = Ipv4Addr::new(10, octet, third, here.octets()[3] + 1);
            ip(&["link", "add", link, "type", "veth", "peer", "name", &peer]);
            ip(&["link", "set", &peer, "netns", &name]);
            ip(&["addr", "add", &format!("{here}/30"), "dev", link]);
            ip(&["link", "set", link, "up"]);
            ip(&[
                "netns",
                "exec",
                &name,
                "ip",
                "addr",
                "add",
                &format!("{there}/30"),
                "dev",
                &peer,
            ]);
            ip(&["netns", "exec", &name, "ip", "link", "set", &peer, "up"]);
        }
        ip(&["netns", "exec", &name, "ip", "link", "set", "lo", "up"]);
        host.point_at(0);
        host
    }

    /// Make `mandate.test` resolve, inside the namespace, to instance `i`'s address (DNS
    /// failover as the remote host sees it).
    pub fn point_at(&self, i: usize) {
        let dir = PathBuf::from("/etc/netns").join(&self.name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("hosts"),
            format!("127.0.0.1 localhost\n{} {HOST}\n", self.server_ips[i]),
        )
        .unwrap();
    }

    /// A command run on the remote host: inside the namespace, with a clean environment
    /// (no data folder, no keychain, no PKCS#11 token: only what the agent was given).
    pub fn cmd(&self, program: &Path, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name])
            .arg(program)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", self.home.path())
            .stdin(Stdio::null());
        c
    }

    pub fn mandate(&self, args: &[&str]) -> Run {
        self.cmd(&bin("mandate"), args)
            .output()
            .expect("ip netns exec mandate")
            .into()
    }
}

impl Drop for RemoteHost {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        for l in &self.links {
            let _ = Command::new("ip").args(["link", "del", l]).output();
        }
        let _ = std::fs::remove_dir_all(PathBuf::from("/etc/netns").join(&self.name));
    }
}

fn rustix_uid() -> u32 {
    let out = Command::new("id").arg("-u").output().expect("id -u");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(u32::MAX)
}

/// The Python of the interop tests' venv (requests, joserfc), installed once and cached by
/// `tests/interop/setup.sh`.
pub fn interop_python() -> String {
    let setup = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop/setup.sh");
    let out = run_ok(&mut Command::new(setup));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Wait until `f` holds or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// A private PostgreSQL cluster for one test: `initdb` into a temporary folder (as the
/// `postgres` user, since PostgreSQL refuses to run as root), on a free loopback port with its
/// socket in that folder; stopped and removed when dropped. The test may stop and start it (an
/// outage of the primary).
pub struct PgCluster {
    dir: tempfile::TempDir,
    pub port: u16,
    bin: PathBuf,
}

impl PgCluster {
    pub fn new() -> PgCluster {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL is installed (apt-get install postgresql; scripts/test does)")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|b| b.join("initdb").exists())
            .max()
            .expect("an initdb under /usr/lib/postgresql/*/bin");
        let dir = tempfile::tempdir().unwrap();
        set_mode(dir.path(), 0o755);
        run_ok(
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path()),
        );
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let c = PgCluster { dir, port, bin };
        c.as_postgres(&[
            "initdb",
            "-D",
            &c.data(),
            "--auth=trust",
            "--username=mandate",
            "--no-sync",
            "--no-instructions",
        ]);
        c.start();
        run_ok(
            Command::new("psql")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &c.port.to_string(),
                    "-U",
                    "mandate",
                ])
                .args(["-d", "postgres", "-q", "-c", "CREATE DATABASE team"]),
        );
        c
    }

    fn data(&self) -> String {
        path_str(&self.dir.path().join("data"))
    }

    fn as_postgres(&self, args: &[&str]) -> Output {
        let program = self.bin.join(args[0]);
        run_ok(
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(program)
                .args(&args[1..])
                .stdin(Stdio::null()),
        )
    }

    /// Run SQL on the team's database behind the servers' backs, as its administrator would
    /// (`psql`); the rows it prints, unaligned.
    pub fn psql(&self, sql: &str) -> String {
        let out = run_ok(
            Command::new("psql")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "mandate",
                ])
                .args([
                    "-d",
                    "team",
                    "-q",
                    "-At",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-c",
                    sql,
                ]),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The database URL the instances use.
    pub fn url(&self) -> String {
        format!("postgres://mandate@127.0.0.1:{}/team", self.port)
    }

    pub fn start(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            path_str(self.dir.path())
        );
        let log = path_str(&self.dir.path().join("server.log"));
        self.as_postgres(&[
            "pg_ctl",
            "-D",
            &self.data(),
            "-o",
            &opts,
            "-l",
            &log,
            "-w",
            "start",
        ]);
    }

    /// Stop it the way a crash or a lost host does: no checkpoint, connections cut.
    pub fn stop(&self) {
        self.as_postgres(&[
            "pg_ctl",
            "-D",
            &self.data(),
            "-m",
            "immediate",
            "-w",
            "stop",
        ]);
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let program = self.bin.join("pg_ctl");
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(program)
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
    }
}
