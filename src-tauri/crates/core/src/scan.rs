//! The credential scanner behind the wizard's Inventory step and `mandate scan PATH`.
//!
//! It reads an agent's project folder (`.env` files, configs, scripts) and reports credentials
//! in well-known formats: file, line, kind and a *masked* value. The secret itself never leaves
//! this module in a finding: findings are safe to print, serialize and send over IPC. When the
//! user asks to move a finding into the keychain, [`Scanner::locate`] re-reads that one file
//! (inside the scanned folder only) and hands the value back as [`Sensitive`]; the migration
//! module (`crate::migrate`) does the moving.
//!
//! What it is not: a general secret detector with entropy heuristics. It matches documented
//! prefixes and shapes only, so a match is very likely real, and near-misses do not match.
//! It never changes or uploads anything.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use regex::Regex;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::secret::Sensitive;

/// Files larger than this are skipped (credentials live in small text files).
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// At most this many files are read in one scan.
pub const MAX_FILES: usize = 20_000;
/// Folders never worth reading.
const SKIP_DIRS: &[&str] = &[
    ".git",
    "node_modules",
    "target",
    ".venv",
    "venv",
    "__pycache__",
    ".cache",
    "dist",
    "build",
    ".next",
    ".tox",
    ".mypy_cache",
];

/// A kind of credential the scanner knows.
#[derive(Debug)]
struct Pattern {
    kind: &'static str,
    label: &'static str,
    /// The surface this credential belongs to (matches the wizard's checklist).
    surface: &'static str,
    /// A connection preset that fits, if any.
    preset: Option<&'static str>,
    regex: &'static str,
    /// Characters of the match kept visible at the start when masking.
    keep_prefix: usize,
}

const PATTERNS: &[Pattern] = &[
    Pattern {
        kind: "github_fine_grained_pat",
        label: "GitHub fine-grained personal access token",
        surface: "code_host",
        preset: Some("github"),
        regex: r"\bgithub_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}\b",
        keep_prefix: 11,
    },
    Pattern {
        kind: "github_token",
        label: "GitHub token",
        surface: "code_host",
        preset: Some("github"),
        regex: r"\bgh[pousr]_[A-Za-z0-9]{36}\b",
        keep_prefix: 4,
    },
    Pattern {
        kind: "slack_token",
        label: "Slack token",
        surface: "chat",
        preset: Some("slack"),
        regex: r"\bxox[abposr]-[0-9]{6,}-[0-9A-Za-z-]{10,}\b",
        keep_prefix: 5,
    },
    Pattern {
        kind: "stripe_secret_key",
        label: "Stripe live secret key",
        surface: "billing",
        preset: Some("stripe"),
        regex: r"\bsk_live_[0-9A-Za-z]{24,}\b",
        keep_prefix: 8,
    },
    Pattern {
        kind: "stripe_restricted_key",
        label: "Stripe live restricted key",
        surface: "billing",
        preset: Some("stripe"),
        regex: r"\brk_live_[0-9A-Za-z]{24,}\b",
        keep_prefix: 8,
    },
    Pattern {
        kind: "anthropic_api_key",
        label: "Anthropic API key",
        surface: "llm",
        preset: Some("anthropic"),
        regex: r"\bsk-ant-[A-Za-z0-9]+-[A-Za-z0-9_-]{32,}",
        keep_prefix: 7,
    },
    Pattern {
        kind: "openai_api_key",
        label: "OpenAI API key",
        surface: "llm",
        preset: Some("openai"),
        // Project, service-account and legacy keys. Anthropic keys (`sk-ant-`) are excluded in
        // code because the regex crate has no look-ahead.
        regex: r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{32,}",
        keep_prefix: 3,
    },
    Pattern {
        kind: "aws_access_key_id",
        label: "AWS access key id",
        surface: "cloud",
        preset: None,
        regex: r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
        keep_prefix: 4,
    },
    Pattern {
        kind: "google_api_key",
        label: "Google API key",
        surface: "cloud",
        preset: None,
        regex: r"\bAIza[0-9A-Za-z_-]{35}\b",
        keep_prefix: 4,
    },
    Pattern {
        kind: "database_url",
        label: "Database URL with a password",
        surface: "database",
        preset: None,
        // The user may be empty (`redis://:password@host`, Redis' own convention).
        regex: r#"\b(?:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|rediss?|amqps?|mssql|sqlserver)://[^:/\s@'"]*:[^@\s'"/]+@[^\s'"]+"#,
        keep_prefix: 0,
    },
    Pattern {
        kind: "private_key",
        label: "Private key block",
        surface: "other",
        preset: None,
        regex: r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----",
        keep_prefix: 0,
    },
];

/// The kind id of database URLs with a password.
pub const DATABASE_URL: &str = "database_url";

/// Values published in vendors' documentation as examples. They look real but unlock
/// nothing, so they are never offered as findings (moving one would replace a real
/// credential with a dead one). Beside these, any value ending in `EXAMPLE` or holding
/// `EXAMPLEKEY` is skipped: that is AWS's convention for its documented keys.
const DOCUMENTED_EXAMPLES: &[&str] = &[
    // AWS: "Managing access keys" and the CLI configuration guide.
    "AKIAIOSFODNN7EXAMPLE",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "AKIAI44QH8DHBEXAMPLE",
    "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
    // Stripe: the test keys shown in its API reference.
    "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
    "pk_test_TYooMQauvdEDq54NiTphI7jx",
    "sk_test_BQokikJOvBiI2HlWgH4olfQ2",
    // GitHub: the personal access token in "Creating a personal access token".
    "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
];

/// A documented example (see [`DOCUMENTED_EXAMPLES`]) rather than a credential.
pub fn is_documented_example(value: &str) -> bool {
    DOCUMENTED_EXAMPLES.contains(&value)
        || value.ends_with("EXAMPLE")
        || value.contains("EXAMPLEKEY")
}

/// A database URL whose password is a reference to one kept elsewhere (`${DB_PASSWORD}`,
/// `$PASSWORD`, `{{ password }}`, `<password>`, `%(password)s`): there is nothing to move.
fn password_is_a_reference(url: &str) -> bool {
    let Some(rest) = url.split_once("://").map(|(_, r)| r) else {
        return false;
    };
    let Some(userinfo) = rest.rsplit_once('@').map(|(u, _)| u) else {
        return false;
    };
    let password = userinfo.split_once(':').map_or("", |(_, p)| p);
    password.starts_with(['$', '<', '{']) || password.starts_with("%(")
}

/// The preset a credential kind belongs to (`github_token` → `github`).
pub fn preset_of(kind: &str) -> Option<&'static str> {
    PATTERNS
        .iter()
        .find(|p| p.kind == kind)
        .and_then(|p| p.preset)
}

/// The kind of a whole value, when it is a credential in a known format (a typed secret, a
/// keychain value); `None` for anything else.
pub fn identify(value: &str) -> Option<&'static str> {
    let v = value.trim();
    match matches_in_line(v).as_slice() {
        [(p, 0, end)] if *end == v.len() => Some(p.kind),
        _ => None,
    }
}

/// A credential's label and masked value, for confirmations ("GitHub token", `ghp_••••WXYZ`).
/// Values in no known format keep only their last 4 characters, and only when long enough.
pub fn describe_value(value: &Sensitive<String>) -> (String, String) {
    let v = value.expose().trim();
    if let [(p, 0, end)] = matches_in_line(v).as_slice()
        && *end == v.len()
    {
        return (p.label.to_string(), mask(p, v));
    }
    let chars: Vec<char> = v.chars().collect();
    let tail: String = if chars.len() >= 16 {
        chars[chars.len() - 4..].iter().collect()
    } else {
        String::new()
    };
    ("credential".to_string(), format!("••••••••{tail}"))
}

/// A connection name for a credential of `kind` with `value`: the preset's name, or for a
/// database URL the database's name (`…/warehouse` → `warehouse`), else its host's first
/// label, else `database`. `None` when Mandate cannot tell what the credential is for.
fn suggest_connection(p: &Pattern, value: &str) -> Option<String> {
    if let Some(preset) = p.preset {
        return Some(preset.to_string());
    }
    if p.kind != DATABASE_URL {
        return None;
    }
    let name_from = |raw: &str| {
        let s: String = raw
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let s = s
            .trim_matches('-')
            .split('-')
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join("-");
        crate::model::ConnectionName::parse(&s)
            .ok()
            .map(|n| n.as_str().to_string())
    };
    let after = value.rsplit_once('@').map_or("", |(_, h)| h);
    let (host, path) = after.split_once('/').unwrap_or((after, ""));
    let db = path.split(['?', '#', '/']).next().unwrap_or("");
    let host = host.split(':').next().unwrap_or("");
    name_from(db)
        .or_else(|| name_from(host.split('.').next().unwrap_or("")))
        .or_else(|| Some("database".to_string()))
}

/// One credential found in a file. Holds no secret: only where it is and a masked value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Finding {
    /// Path relative to the scanned folder.
    pub file: String,
    /// 1-based line number.
    pub line: u32,
    /// 1-based column of the first character.
    pub column: u32,
    /// Stable kind id (`github_token`, `database_url`...).
    pub kind: String,
    /// Human label ("GitHub token").
    pub label: String,
    /// The surface it belongs to (`code_host`, `chat`, `billing`, `llm`, `cloud`, `database`, `other`).
    pub surface: String,
    /// A connection preset that fits (`github`, `slack`, `stripe`, `openai`, `anthropic`).
    pub preset: Option<String>,
    /// The value with all but a recognisable prefix and the last 4 characters hidden.
    pub masked: String,
    /// The variable it is assigned to, when the line looks like `NAME=value` or `NAME: value`.
    pub variable: Option<String>,
    /// Moving it can replace the line with a comment (a plain assignment in a file with `#`
    /// comments); otherwise the line has to be deleted by hand.
    pub rewritable: bool,
    /// A name for the connection it belongs in: the preset (`github`), or for a database URL
    /// one made from the database's name. `None` when Mandate cannot tell what it is for
    /// (an AWS key id, a Google API key): the person chooses.
    pub suggested_connection: Option<String>,
}

/// The result of a scan.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ScanReport {
    pub root: String,
    pub files_scanned: u32,
    pub files_skipped: u32,
    /// True when the scan stopped at [`MAX_FILES`].
    pub truncated: bool,
    pub findings: Vec<Finding>,
    /// How the project seems to be started, for the copy-ready `mandate exec` line.
    pub program: Option<Program>,
}

/// How a project is started, guessed from the files at its top level: `npm start` when
/// `package.json` has a start script, `python3 main.py` for a Python entry file, and so on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Program {
    /// The command, relative to the scanned folder (`python3 agent.py`).
    pub command: String,
    /// The file it was guessed from (`agent.py`, `package.json`).
    pub file: String,
}

/// Guess how the project in `root` is started; `None` when nothing at its top level says.
pub fn guess_program(root: &Path) -> Option<Program> {
    let has = |f: &str| root.join(f).is_file();
    let program = |command: String, file: &str| {
        Some(Program {
            command,
            file: file.to_string(),
        })
    };
    if has("package.json")
        && let Ok(text) = std::fs::read_to_string(root.join("package.json"))
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
    {
        if v["scripts"]["start"].is_string() {
            return program("npm start".into(), "package.json");
        }
        if let Some(main) = v["main"].as_str().filter(|m| has(m)) {
            return program(format!("node {main}"), "package.json");
        }
    }
    const PYTHON: [&str; 6] = [
        "main.py",
        "agent.py",
        "app.py",
        "bot.py",
        "run.py",
        "__main__.py",
    ];
    if let Some(f) = PYTHON.iter().find(|f| has(f)) {
        return program(format!("python3 {f}"), f);
    }
    const NODE: [&str; 6] = [
        "index.js",
        "main.js",
        "agent.js",
        "index.mjs",
        "main.mjs",
        "agent.mjs",
    ];
    if let Some(f) = NODE.iter().find(|f| has(f)) {
        return program(format!("node {f}"), f);
    }
    if has("Cargo.toml") {
        return program("cargo run".into(), "Cargo.toml");
    }
    if has("go.mod") {
        return program("go run .".into(), "go.mod");
    }
    // A single Python or shell script at the top.
    let mut scripts: Vec<String> = std::fs::read_dir(root)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".py") || n.ends_with(".sh"))
        .collect();
    scripts.sort();
    match scripts.as_slice() {
        [one] if one.ends_with(".py") => program(format!("python3 {one}"), one),
        [one] => program(format!("sh {one}"), one),
        _ => None,
    }
}

fn compiled() -> &'static Vec<(&'static Pattern, Regex)> {
    static RE: OnceLock<Vec<(&'static Pattern, Regex)>> = OnceLock::new();
    RE.get_or_init(|| {
        PATTERNS
            .iter()
            .filter_map(|p| Regex::new(p.regex).ok().map(|r| (p, r)))
            .collect()
    })
}

fn mask(p: &Pattern, value: &str) -> String {
    if p.kind == "private_key" {
        return format!("{value} (key block hidden)");
    }
    if p.kind == "database_url" {
        // Keep scheme, user and host; hide the password.
        if let (Some(scheme_end), Some(at)) = (value.find("://"), value.rfind('@')) {
            let userinfo = &value[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            return format!(
                "{}{user}:••••••••{}",
                &value[..scheme_end + 3],
                &value[at..]
            );
        }
    }
    let chars: Vec<char> = value.chars().collect();
    let keep = p.keep_prefix.min(chars.len());
    let tail = if chars.len() >= keep + 12 { 4 } else { 0 };
    let head: String = chars[..keep].iter().collect();
    let end: String = chars[chars.len() - tail..].iter().collect();
    format!("{head}••••••••{end}")
}

fn variable_of(line: &str, start: usize) -> Option<String> {
    let before = line[..start].trim_end_matches([' ', '\t', '"', '\'']);
    let before = before
        .strip_suffix('=')
        .or_else(|| before.strip_suffix(':'))?
        .trim_end()
        .trim_end_matches(['"', '\'']);
    let name: String = before
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-' || *c == '.')
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    (!name.is_empty()).then_some(name)
}

/// Every match in one line of text, as (pattern, byte start, byte end).
fn matches_in_line(line: &str) -> Vec<(&'static Pattern, usize, usize)> {
    let mut out: Vec<(&'static Pattern, usize, usize)> = Vec::new();
    for (p, re) in compiled() {
        for m in re.find_iter(line) {
            if p.kind == "openai_api_key" && m.as_str().starts_with("sk-ant-") {
                continue;
            }
            if is_documented_example(m.as_str())
                || (p.kind == DATABASE_URL && password_is_a_reference(m.as_str()))
            {
                continue;
            }
            // A longer, more specific match at the same place wins (Anthropic over OpenAI...).
            if out.iter().any(|(_, s, e)| m.start() < *e && *s < m.end()) {
                continue;
            }
            out.push((p, m.start(), m.end()));
        }
    }
    out.sort_by_key(|(_, s, _)| *s);
    out
}

/// Scan text (one file's content) and report findings for `file`.
pub fn scan_text(file: &str, text: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        for (p, s, e) in matches_in_line(line) {
            out.push(Finding {
                file: file.to_string(),
                line: (i + 1) as u32,
                column: (line[..s].chars().count() + 1) as u32,
                kind: p.kind.into(),
                label: p.label.into(),
                surface: p.surface.into(),
                preset: p.preset.map(String::from),
                masked: mask(p, &line[s..e]),
                variable: variable_of(line, s),
                rewritable: crate::migrate::rewritable(file, line, (s, e)),
                suggested_connection: suggest_connection(p, &line[s..e]),
            });
        }
    }
    out
}

/// Scans a folder. Stateless apart from its root.
#[derive(Debug)]
pub struct Scanner {
    root: PathBuf,
}

impl Scanner {
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        if !root.is_dir() {
            return Err(Error::invalid(format!(
                "{} is not a folder; give the agent's project folder",
                root.display()
            )));
        }
        Ok(Scanner { root })
    }

    /// Scan every readable text file under the root (hidden files included: `.env` is the
    /// point), skipping dependency and build folders, binaries and files over 1 MiB.
    pub fn scan(&self) -> Result<ScanReport> {
        let mut report = ScanReport {
            root: self.root.display().to_string(),
            files_scanned: 0,
            files_skipped: 0,
            truncated: false,
            findings: Vec::new(),
            program: guess_program(&self.root),
        };
        let walker = walkdir::WalkDir::new(&self.root)
            .follow_links(false)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| {
                !(e.file_type().is_dir()
                    && e.depth() > 0
                    && SKIP_DIRS.contains(&e.file_name().to_string_lossy().as_ref()))
            });
        for entry in walker {
            let Ok(entry) = entry else {
                report.files_skipped += 1;
                continue;
            };
            if !entry.file_type().is_file() {
                continue;
            }
            if report.files_scanned as usize >= MAX_FILES {
                report.truncated = true;
                break;
            }
            let too_big = entry
                .metadata()
                .map(|m| m.len() > MAX_FILE_BYTES)
                .unwrap_or(true);
            let Ok(bytes) = (!too_big)
                .then(|| std::fs::read(entry.path()))
                .transpose()
                .map(|b| b.unwrap_or_default())
            else {
                report.files_skipped += 1;
                continue;
            };
            if too_big || bytes.contains(&0) {
                report.files_skipped += 1;
                continue;
            }
            report.files_scanned += 1;
            let text = String::from_utf8_lossy(&bytes);
            let rel = self.relative(entry.path());
            report.findings.extend(scan_text(&rel, &text));
        }
        Ok(report)
    }

    fn relative(&self, p: &Path) -> String {
        p.strip_prefix(&self.root)
            .unwrap_or(p)
            .to_string_lossy()
            .replace('\\', "/")
    }

    /// The scanned folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Re-read the file behind a finding and find the credential again, to move it into the
    /// keychain. The finding comes from a client (the UI, a script), so nothing in it is
    /// trusted: the file must resolve (symlinks followed) to a regular file *inside* the
    /// scanned folder, no larger than [`MAX_FILE_BYTES`], and the same kind of credential must
    /// still start at the same line and column. Private key blocks are refused (a key is a
    /// file to move, not a value to store). Errors name the file and line, never the value.
    pub fn locate(&self, f: &FindingRef) -> Result<Located> {
        let canon_root = self
            .root
            .canonicalize()
            .map_err(|e| io_err(&self.root, e))?;
        let rel = Path::new(&f.file);
        if rel.is_absolute() || f.file.is_empty() {
            return Err(outside());
        }
        let path = canon_root.join(rel);
        let canon = path.canonicalize().map_err(|e| io_err(&path, e))?;
        if !canon.starts_with(&canon_root) || canon == canon_root {
            return Err(outside());
        }
        let meta = std::fs::metadata(&canon).map_err(|e| io_err(&canon, e))?;
        if !meta.is_file() {
            return Err(Error::invalid(format!(
                "{} is not a regular file; scan the folder again",
                f.file
            )));
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(stale(f));
        }
        let text = Sensitive::new(std::fs::read_to_string(&canon).map_err(|e| io_err(&canon, e))?);
        let index = f.line.checked_sub(1).ok_or_else(|| stale(f))? as usize;
        let line = text.expose().lines().nth(index).ok_or_else(|| stale(f))?;
        for (p, s, e) in matches_in_line(line) {
            let col = (line[..s].chars().count() + 1) as u32;
            if p.kind == f.kind && col == f.column {
                if p.kind == "private_key" {
                    return Err(Error::invalid(
                        "private key blocks cannot be moved automatically; move the key file \
                         by hand and register its public key instead",
                    ));
                }
                return Ok(Located {
                    path: canon.clone(),
                    relative: f.file.clone(),
                    line: f.line,
                    line_text: Sensitive::new(line.to_string()),
                    span: (s, e),
                    kind: p.kind,
                    preset: p.preset,
                    variable: variable_of(line, s),
                    suggested_connection: suggest_connection(p, &line[s..e]),
                    secret: Sensitive::new(line[s..e].to_string()),
                });
            }
        }
        Err(stale(f))
    }

    /// Re-read the secret behind a finding; see [`Scanner::locate`].
    pub fn secret_of(&self, f: &FindingRef) -> Result<Sensitive<String>> {
        self.locate(f).map(|l| l.secret)
    }
}

/// Where a finding is, as a client names it when it asks to move the credential: the file
/// (relative to the scanned folder), the line and column, and the kind. No value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct FindingRef {
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub kind: String,
}

impl From<&Finding> for FindingRef {
    fn from(f: &Finding) -> Self {
        FindingRef {
            file: f.file.clone(),
            line: f.line,
            column: f.column,
            kind: f.kind.clone(),
        }
    }
}

/// A credential found again in its file, ready to move. Holds the secret (and the line that
/// contains it) only as [`Sensitive`].
#[derive(Debug)]
pub struct Located {
    /// The file's canonical path (inside the scanned folder).
    pub path: PathBuf,
    /// The path relative to the scanned folder, as the finding named it.
    pub relative: String,
    /// 1-based line number.
    pub line: u32,
    /// The whole line, without its line ending.
    pub line_text: Sensitive<String>,
    /// Byte range of the credential within the line.
    pub span: (usize, usize),
    pub kind: &'static str,
    pub preset: Option<&'static str>,
    pub variable: Option<String>,
    /// See [`Finding::suggested_connection`].
    pub suggested_connection: Option<String>,
    pub secret: Sensitive<String>,
}

/// The human label of a kind id ("GitHub token"), or the id itself when unknown.
pub fn label_of(kind: &str) -> &str {
    PATTERNS
        .iter()
        .find(|p| p.kind == kind)
        .map_or(kind, |p| p.label)
}

fn outside() -> Error {
    Error::invalid("the finding points outside the scanned folder; scan the folder again")
}

fn io_err(p: &Path, e: std::io::Error) -> Error {
    Error::Io {
        action: "could not read",
        path: p.to_path_buf(),
        reason: e.to_string(),
    }
}

fn stale(f: &FindingRef) -> Error {
    Error::Conflict(format!(
        "{}:{} changed since the scan; scan the folder again",
        f.file, f.line
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<String> {
        scan_text("f", text).into_iter().map(|f| f.kind).collect()
    }

    // Fake credentials built at run time so this file holds no literal that looks real.
    fn rep(c: char, n: usize) -> String {
        std::iter::repeat_n(c, n).collect()
    }

    #[test]
    fn each_known_format_matches() {
        let cases = [
            (format!("GITHUB_TOKEN=ghp_{}", rep('a', 36)), "github_token"),
            (format!("token: gho_{}", rep('B', 36)), "github_token"),
            (
                format!("github_pat_{}_{}", rep('A', 22), rep('b', 59)),
                "github_fine_grained_pat",
            ),
            (
                format!("SLACK=xoxb-123456789012-{}", rep('x', 24)),
                "slack_token",
            ),
            (
                format!("STRIPE_KEY=sk_live_{}", rep('9', 24)),
                "stripe_secret_key",
            ),
            (format!("rk_live_{}", rep('Z', 30)), "stripe_restricted_key"),
            (
                format!("OPENAI_API_KEY=sk-proj-{}", rep('q', 48)),
                "openai_api_key",
            ),
            (format!("sk-{}", rep('Q', 48)), "openai_api_key"),
            (
                format!("ANTHROPIC_API_KEY=sk-ant-api03-{}", rep('w', 90)),
                "anthropic_api_key",
            ),
            (
                format!("aws_access_key_id = AKIA{}", rep('X', 16)),
                "aws_access_key_id",
            ),
            (format!("key=AIza{}", rep('k', 35)), "google_api_key"),
            (
                "DATABASE_URL=postgres://app:s3cret@db.internal:5432/app".into(),
                "database_url",
            ),
            (
                "REDIS_URL=redis://:r3disPass@cache.internal:6379/0".into(),
                "database_url",
            ),
            (
                "mongodb+srv://u:p4ss@cluster0.example.net/db".into(),
                "database_url",
            ),
            ("-----BEGIN OPENSSH PRIVATE KEY-----".into(), "private_key"),
            ("-----BEGIN PRIVATE KEY-----".into(), "private_key"),
        ];
        for (text, want) in cases {
            assert_eq!(kinds(&text), vec![want.to_string()], "{text}");
        }
    }

    #[test]
    fn near_misses_do_not_match() {
        let misses = [
            format!("ghp_{}", rep('a', 35)),               // one short
            format!("ghx_{}", rep('a', 36)),               // unknown prefix
            format!("xoxz-123456789012-{}", rep('x', 24)), // not a Slack type
            format!("sk_test_{}", rep('9', 24)),           // Stripe test key, not live
            format!("sk_live_{}", rep('9', 10)),           // too short
            "sk-short".into(),
            format!("AKIA{}", rep('x', 16)), // lower case
            format!("AKIA{}", rep('X', 15)), // one short
            format!("AIza{}", rep('k', 20)),
            "postgres://app@db/app".into(),         // no password
            "postgres://app:@db/app".into(),        // empty password
            "redis://:@cache/0".into(),             // empty user and password
            "redis://cache:6379/0".into(),          // no credentials at all
            "https://user:pass@example.com".into(), // not a database URL
            "-----BEGIN PUBLIC KEY-----".into(),
            "the word ghp_ alone".into(),
        ];
        for text in misses {
            assert!(kinds(&text).is_empty(), "{text} matched {:?}", kinds(&text));
        }
    }

    #[test]
    fn findings_never_contain_the_secret() {
        let secret = format!("ghp_{}", rep('s', 32) + "WXYZ");
        let f = &scan_text(".env", &format!("\nexport GITHUB_TOKEN=\"{secret}\"\n"))[0];
        assert_eq!((f.line, f.column), (2, 22));
        assert_eq!(f.variable.as_deref(), Some("GITHUB_TOKEN"));
        assert_eq!(f.masked, "ghp_••••••••WXYZ");
        assert!(!serde_json::to_string(f).unwrap().contains(&secret));
        let db = &scan_text("x", "postgres://app:hunter2@db:5432/app")[0];
        assert_eq!(db.masked, "postgres://app:••••••••@db:5432/app");
    }

    #[test]
    fn scans_a_folder_and_recovers_one_secret_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let secret = format!("sk_live_{}", rep('7', 28));
        std::fs::write(dir.path().join(".env"), format!("A=1\nSTRIPE={secret}\n")).unwrap();
        std::fs::create_dir(dir.path().join("node_modules")).unwrap();
        std::fs::write(
            dir.path().join("node_modules/x.js"),
            format!("k='{secret}'"),
        )
        .unwrap();
        std::fs::write(dir.path().join("bin.dat"), b"\0\0ghp_").unwrap();
        let s = Scanner::new(dir.path()).unwrap();
        let r = s.scan().unwrap();
        assert_eq!(r.findings.len(), 1, "{:?}", r.findings);
        assert_eq!(r.findings[0].file, ".env");
        assert_eq!(r.files_skipped, 1, "the binary file");
        assert_eq!(
            s.secret_of(&(&r.findings[0]).into()).unwrap().expose(),
            &secret
        );
        // After the file changes, the finding is stale.
        std::fs::write(dir.path().join(".env"), "A=1\n").unwrap();
        assert!(s.secret_of(&(&r.findings[0]).into()).is_err());
        assert!(Scanner::new(dir.path().join(".env")).is_err());
    }

    #[test]
    fn documented_example_keys_are_not_findings() {
        let text = [
            "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE",
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "AWS_ACCESS_KEY_ID=AKIAI44QH8DHBEXAMPLE",
            "STRIPE_KEY=sk_test_4eC39HqLyjWDarjtT1zdp7dc",
            "STRIPE_PUBLISHABLE=pk_test_TYooMQauvdEDq54NiTphI7jx",
            "GITHUB_TOKEN=ghp_16C7e42F292c6912E7710c838347Ae178B4a",
            "DATABASE_URL=postgres://app:${DB_PASSWORD}@db:5432/app",
            "REDIS_URL=redis://:$REDIS_PASSWORD@cache:6379/0",
            "url: mysql://app:{{ password }}@db/app",
            "DSN=postgresql://user:<password>@localhost/db",
        ]
        .join("\n");
        assert!(kinds(&text).is_empty(), "{:?}", kinds(&text));
        // A real-looking key beside them still is one.
        let real = format!("{text}\nAWS_ACCESS_KEY_ID=AKIA{}", rep('Q', 16));
        assert_eq!(kinds(&real), vec!["aws_access_key_id".to_string()]);
    }

    #[test]
    fn findings_suggest_a_connection_of_their_kind() {
        let sugg = |t: &str| scan_text("f", t)[0].suggested_connection.clone();
        assert_eq!(
            sugg(&format!("T=ghp_{}", rep('a', 36))).as_deref(),
            Some("github")
        );
        assert_eq!(
            sugg("DATABASE_URL=postgres://app:pw12@db.internal:5432/Warehouse_2").as_deref(),
            Some("warehouse-2")
        );
        assert_eq!(
            sugg("REDIS_URL=redis://:pw12@cache.internal:6379/0").as_deref(),
            Some("cache"),
            "a database named 0 is no name: the host's first label"
        );
        assert_eq!(sugg(&format!("K=AKIA{}", rep('Q', 16))), None);
    }

    #[test]
    fn identifies_whole_values_and_masks_them_for_confirmations() {
        let t = format!("ghp_{}WXYZ", rep('s', 32));
        assert_eq!(identify(&t), Some("github_token"));
        assert_eq!(identify(&format!(" {t}\n")), Some("github_token"));
        assert_eq!(identify(&format!("token {t}")), None);
        assert_eq!(identify("opaque"), None);
        let (label, masked) = describe_value(&Sensitive::new(t));
        assert_eq!(
            (label.as_str(), masked.as_str()),
            ("GitHub token", "ghp_••••••••WXYZ")
        );
        let (label, masked) = describe_value(&Sensitive::new("an-opaque-api-key-9876".into()));
        assert_eq!(
            (label.as_str(), masked.as_str()),
            ("credential", "••••••••9876")
        );
        let (_, masked) = describe_value(&Sensitive::new("short".into()));
        assert_eq!(masked, "••••••••");
    }

    #[test]
    fn guesses_how_a_project_is_started() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(guess_program(d.path()), None);
        std::fs::write(d.path().join("report.py"), "").unwrap();
        assert_eq!(
            guess_program(d.path()).unwrap().command,
            "python3 report.py"
        );
        std::fs::write(d.path().join("other.py"), "").unwrap();
        assert_eq!(guess_program(d.path()), None, "two scripts: no guess");
        std::fs::write(d.path().join("main.py"), "").unwrap();
        assert_eq!(guess_program(d.path()).unwrap().command, "python3 main.py");
        std::fs::write(
            d.path().join("package.json"),
            r#"{"scripts":{"start":"node a.js"}}"#,
        )
        .unwrap();
        let p = guess_program(d.path()).unwrap();
        assert_eq!(
            (p.command.as_str(), p.file.as_str()),
            ("npm start", "package.json")
        );
    }
}
