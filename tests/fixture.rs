//! Test fixture: an isolated Mandate installation (temp data folder + its own keychain
//! service) and a way to run the real `mandate` binary against it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[path = "run.rs"]
mod run;
pub use run::Run;

/// The `sqlite3` shell on a test's database, set to wait up to 10 s for a lock: tests read or
/// damage the database while a server writes to it, and "database is locked" is not what
/// they test.
pub fn sqlite3(db: impl AsRef<Path>) -> Command {
    let mut c = Command::new("sqlite3");
    c.args(["-cmd", ".timeout 10000"]).arg(db.as_ref());
    c
}

/// Run `sql` on `db` with [`sqlite3`]: its output, trimmed. Panics with sqlite3's message.
pub fn sqlite(db: &Path, sql: &str) -> String {
    let o = sqlite3(db).arg(sql).output().expect("sqlite3");
    assert!(
        o.status.success(),
        "sqlite3 failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// Path of a binary built into the same target folder as this test.
pub fn bin(name: &str) -> PathBuf {
    // `MANDATE_TEST_BIN_DIR`: the binaries of another profile (the crash trials drive a
    // release `mandate` from the harness built in debug).
    let dir = match std::env::var_os("MANDATE_TEST_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let exe = std::env::current_exe().expect("current exe");
            exe.parent()
                .and_then(Path::parent)
                .expect("target dir")
                .to_path_buf()
        }
    };
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build it first with `cargo build -p mandate-cli` (scripts/test does)",
        path.display()
    );
    path
}

/// The python that runs the independent verifier (`audit_verifier_py/verify.py`): a venv with
/// its requirements (cryptography, and pypdf for PDF reports), installed once into the cache
/// folder by `audit_verifier_py/setup.sh`.
pub fn verifier_python() -> String {
    static PYTHON: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let setup = Path::new(env!("CARGO_MANIFEST_DIR")).join("audit_verifier_py/setup.sh");
            let out = Command::new(&setup)
                .output()
                .expect("audit_verifier_py/setup.sh");
            assert!(
                out.status.success(),
                "audit_verifier_py/setup.sh failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        })
        .clone()
}

/// Fail loudly when the real keychain is not there: these tests must not silently skip.
pub fn require_keyring() {
    assert_eq!(
        std::env::var("MANDATE_KEYRING_HARNESS").as_deref(),
        Ok("1"),
        "run the integration tests inside scripts/with-keyring (a private Secret Service)"
    );
}

/// One isolated installation.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub service: String,
    /// Set for every `mandate` this installation runs (e.g. another D-Bus session).
    pub vars: Vec<(String, String)>,
    /// A PostgreSQL database URL the installation keeps its registry and trail in
    /// (`MANDATE_DATABASE_URL`); `None`: SQLite in the data folder.
    pub database: Option<String>,
}

impl Env {
    pub fn new() -> Self {
        require_keyring();
        let dir = tempfile::tempdir().expect("tempdir");
        let service = format!(
            "mandate-test-{}",
            dir.path().file_name().unwrap().to_string_lossy()
        );
        Env {
            dir,
            service,
            vars: Vec::new(),
            database: None,
        }
    }

    /// An installation whose registry and trail are in the PostgreSQL database `url`.
    pub fn with_database(url: &str) -> Self {
        Env {
            database: Some(url.to_string()),
            ..Env::new()
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir().join("mandate.db")
    }

    /// The text of the PDF report `mandate audit export --format pdf` makes now, read by an
    /// independent reader (poppler's `pdftotext`).
    pub fn report_text(&self) -> String {
        let pdf = self.dir.path().join("report.pdf");
        self.run(&[
            "audit",
            "export",
            "--format",
            "pdf",
            "--out",
            pdf.to_str().expect("utf-8 path"),
        ])
        .ok();
        let out = Command::new("pdftotext")
            .arg(&pdf)
            .arg("-")
            .output()
            .expect("pdftotext (poppler-utils) runs");
        assert!(out.status.success(), "pdftotext failed on the report");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin("mandate"));
        c.args(args)
            .env("MANDATE_DATA_DIR", self.data_dir())
            .env("MANDATE_KEYCHAIN_SERVICE", &self.service)
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .env_remove("MANDATE_ACTOR")
            .env_remove("MANDATE_DATABASE_URL")
            .stdin(Stdio::null());
        if let Some(url) = &self.database {
            c.env("MANDATE_DATABASE_URL", url);
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_full(args, None, &[])
    }

    /// Run with extra environment variables.
    pub fn run_with_env(&self, args: &[&str], vars: &[(&str, &str)]) -> Run {
        self.run_full(args, None, vars)
    }

    /// Run with `input` on standard input.
    pub fn run_stdin(&self, args: &[&str], input: &[u8]) -> Run {
        self.run_full(args, Some(input), &[])
    }

    /// Run with optional standard input and extra environment variables.
    pub fn run_full(&self, args: &[&str], input: Option<&[u8]>, vars: &[(&str, &str)]) -> Run {
        use std::io::Write;
        let mut child = self
            .cmd(args)
            .envs(vars.iter().copied())
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mandate");
        if let Some(input) = input {
            child.stdin.take().unwrap().write_all(input).unwrap();
        }
        child.wait_with_output().expect("wait").into()
    }

    /// The founder, a github connection and the example agent.
    pub fn seed(&self) {
        self.run(&["member", "add", "founder"]).ok();
        self.run(&[
            "connection",
            "add",
            "github",
            "--base-url",
            "https://api.github.com",
            "--action",
            "repo.read=GET:/repos/**",
            "--action",
            "issues.write=POST:/repos/*/*/issues",
        ])
        .ok();
        self.run(&[
            "agent",
            "add",
            "billing-report-agent",
            "--owner",
            "founder",
            "--purpose",
            "monthly billing report",
            "--scope",
            "github:repo.read",
            "--generate-key",
        ])
        .ok();
    }

    /// Row counts of the registry tables and the audit head, to prove nothing changed.
    pub fn snapshot(&self) -> Vec<(String, i64)> {
        sqlite_counts(&self.db_path())
    }

    /// `secret-tool search --all service SERVICE` output: what the real keychain holds.
    pub fn keychain_listing(&self) -> String {
        let out = Command::new("secret-tool")
            .args(["search", "--all", "--unlock", "service", &self.service])
            .output()
            .expect("secret-tool");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

impl Env {
    /// What the real keychain holds for this installation, read with `secret-tool` (an
    /// independent client): `(account, secret)` pairs, the account being
    /// `<install id>/<kind>/<id>`.
    pub fn keychain_items(&self) -> Vec<(String, String)> {
        // secret-tool prints each item's label and secret on stdout (its attributes go to
        // stderr); the label is `keyring:<account>@<service>`.
        let out = Command::new("secret-tool")
            .args(["search", "--all", "--unlock", "service", &self.service])
            .output()
            .expect("secret-tool");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let suffix = format!("@{}", self.service);
        let mut items = Vec::new();
        let mut account = None::<String>;
        for line in text.lines() {
            if let Some(label) = line.strip_prefix("label = keyring:") {
                account = label.strip_suffix(suffix.as_str()).map(String::from);
            } else if let (Some(v), Some(a)) = (line.strip_prefix("secret = "), account.take()) {
                items.push((a, v.to_string()));
            }
        }
        items
    }

    /// The secret the real keychain holds for connection `name`, if any.
    pub fn connection_secret(&self, name: &str) -> Option<String> {
        let c = self
            .run(&["connection", "show", name, "--json"])
            .ok()
            .json();
        let id = c["id"].as_str().unwrap().to_string();
        self.keychain_items()
            .into_iter()
            .find(|(a, _)| a.ends_with(&format!("/connection/{id}")))
            .map(|(_, s)| s)
    }
}

/// Count rows with the sqlite3 command-line tool, independent of our code.
fn sqlite_counts(db: &Path) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for table in [
        "members",
        "connections",
        "agents",
        "agent_scopes",
        "agent_keys",
        "audit_events",
    ] {
        let o = crate::fixture::sqlite3(db)
            .arg(format!("SELECT count(*) FROM {table}"))
            .output()
            .expect("sqlite3");
        let n: i64 = String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse()
            .unwrap_or(-1);
        out.push((table.to_string(), n));
    }
    out
}
