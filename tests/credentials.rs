//! Issue 17 §1 with the real `mandate` binary and the real Secret Service: the walk that lost a
//! GitHub token (a `.env` with a GitHub token, an OpenAI key, a database URL and AWS's
//! documented example key) ends, with every default accepted, with every real secret either
//! still in its file or in the keychain under the connection of its own kind; a replacement
//! asks first and can be undone from the command line.

use std::path::Path;

use crate::fixture::Env;

const AGENT: &str = "billing-report-agent";
/// The founder's own GitHub token, already stored before the walk.
const FOUNDER_TOKEN: &str = "ghp_F0underOwnT0kenStoredLastMonth000001";

struct Walk {
    env: Env,
    project: tempfile::TempDir,
    github: String,
    openai: String,
    db: String,
}

impl Walk {
    fn new() -> Self {
        let env = Env::new();
        env.run(&["member", "add", "founder"]).ok();
        env.run(&["connection", "add", "github", "--preset", "github"])
            .ok();
        env.run_stdin(
            &["connection", "set-secret", "github"],
            FOUNDER_TOKEN.as_bytes(),
        )
        .ok();
        env.run(&[
            "agent",
            "add",
            AGENT,
            "--owner",
            "founder",
            "--purpose",
            "monthly billing report",
            "--scope",
            "github:repo.read",
            "--generate-key",
        ])
        .ok();
        // Built at run time: no literal here looks like a real credential.
        let github = format!("ghp_{}", "Wk7".repeat(12));
        let openai = format!("sk-proj-{}", "0pn".repeat(16));
        let db = format!("postgres://app:{}@db.internal:5432/app", "Pg9x".repeat(4));
        let project = tempfile::tempdir().unwrap();
        std::fs::write(
            project.path().join(".env"),
            format!(
                "GITHUB_TOKEN={github}\nOPENAI_API_KEY={openai}\nDATABASE_URL={db}\n\
                 AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\n"
            ),
        )
        .unwrap();
        Walk {
            env,
            project,
            github,
            openai,
            db,
        }
    }

    fn root(&self) -> &str {
        self.project.path().to_str().unwrap()
    }

    fn dotenv(&self) -> String {
        std::fs::read_to_string(self.project.path().join(".env")).unwrap()
    }
}

fn no_value_in(dir: &Path, values: &[&str]) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            let bytes = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
            for v in values {
                assert!(!bytes.contains(v), "{} holds a secret", p.display());
            }
        }
    }
}

#[test]
fn the_walk_accepting_every_default_keeps_every_secret_in_its_file_or_its_own_connection() {
    let w = Walk::new();
    let found = w.env.run(&["scan", w.root(), "--json"]).ok().json();
    let findings = found["findings"].as_array().unwrap();
    let kinds: Vec<&str> = findings
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["github_token", "openai_api_key", "database_url"],
        "AWS's documented example is not offered"
    );
    // What broke in the walk cannot happen: the database URL into the GitHub connection,
    // even with --replace.
    let before = w.dotenv();
    w.env
        .run(&[
            "scan",
            w.root(),
            "--move",
            ".env:3",
            "--to",
            "github",
            "--replace",
        ])
        .fails(
            3,
            "'github' is a GitHub connection, so it cannot hold a Database URL",
        );
    assert_eq!(w.dotenv(), before);
    assert_eq!(
        w.env.connection_secret("github").as_deref(),
        Some(FOUNDER_TOKEN)
    );
    // Every finding into the connection the scan suggests, line rewritten, no --replace.
    for f in findings {
        let at = format!("{}:{}", f["file"].as_str().unwrap(), f["line"]);
        let to = f["suggested_connection"].as_str().unwrap();
        let r = w.env.run(&[
            "scan",
            w.root(),
            "--move",
            &at,
            "--to",
            to,
            "--rewrite-for",
            AGENT,
        ]);
        if to == "github" {
            // The connection holds the founder's token: asked, not replaced.
            let r = r.fails(5, "'github' already holds GitHub token ghp_••••••••0001");
            assert!(
                r.stderr
                    .contains(&format!("ghp_••••••••{}", &w.github[36..])),
                "{}",
                r.stderr
            );
            assert!(
                r.stderr.contains("billing-report-agent (github:repo.read)"),
                "{}",
                r.stderr
            );
            assert!(r.stderr.contains("--replace"), "{}", r.stderr);
            assert!(!r.stderr.contains(FOUNDER_TOKEN) && !r.stderr.contains(&w.github));
        } else {
            let r = r.ok();
            assert!(r.stdout.contains("mandate scan --undo"), "{}", r.stdout);
        }
    }
    // What broke in the walk cannot happen: the database URL into the GitHub connection.
    w.env
        .run(&[
            "scan",
            w.root(),
            "--move",
            ".env:3",
            "--to",
            "github",
            "--replace",
        ])
        .fails(4, "no credential was found at .env:3");
    // Every real secret: in its file, or in the real keychain under its own connection.
    let text = w.dotenv();
    assert!(text.contains(&w.github), "{text}");
    assert_eq!(
        w.env.connection_secret("github").as_deref(),
        Some(FOUNDER_TOKEN)
    );
    assert!(!text.contains(&w.openai));
    assert_eq!(
        w.env.connection_secret("openai").as_deref(),
        Some(w.openai.as_str())
    );
    assert!(!text.contains(&w.db));
    assert_eq!(
        w.env.connection_secret("app").as_deref(),
        Some(w.db.as_str())
    );
    let app = w
        .env
        .run(&["connection", "show", "app", "--json"])
        .ok()
        .json();
    assert_eq!(app["kind"], "database");
    assert_eq!(app["variable"], "DATABASE_URL");
    assert!(text.contains("AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE"));
    // The data folder never saw a value.
    w.env.run(&["agent", "list"]).ok();
    no_value_in(
        &w.env.data_dir(),
        &[FOUNDER_TOKEN, &w.github, &w.openai, &w.db],
    );
}

#[test]
fn a_replacement_is_confirmed_audited_and_undone_from_the_cli() {
    let w = Walk::new();
    let before = w.dotenv();
    let moved = w
        .env
        .run(&[
            "scan",
            w.root(),
            "--move",
            ".env:1",
            "--to",
            "github",
            "--rewrite-for",
            AGENT,
            "--replace",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(moved["replaced_secret"], true);
    assert_eq!(
        w.env.connection_secret("github").as_deref(),
        Some(w.github.as_str())
    );
    let kept = |env: &Env| {
        env.keychain_items()
            .into_iter()
            .filter(|(a, _)| a.contains("/moved-previous/"))
            .map(|(_, s)| s)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        kept(&w.env),
        [FOUNDER_TOKEN],
        "kept in the keychain for the undo"
    );
    // The Connections view and the trail tell the truth: a replacement, naming the agent.
    let jsonl = w.env.dir.path().join("audit.jsonl");
    w.env
        .run(&[
            "audit",
            "export",
            "--format",
            "jsonl",
            "--out",
            jsonl.to_str().unwrap(),
        ])
        .ok();
    let log = std::fs::read_to_string(&jsonl).unwrap();
    assert!(log.contains("connection.secret_replaced"), "{log}");
    assert!(log.contains("\"agents_affected\""), "{log}");
    assert!(!log.contains(FOUNDER_TOKEN) && !log.contains(&w.github));
    let show = w.env.run(&["connection", "show", "github"]).ok().stdout;
    assert!(show.contains("last changed"), "{show}");
    // Listed, then undone.
    let listed = w.env.run(&["scan", "--moves"]).ok().stdout;
    assert!(
        listed.contains(moved["move_id"].as_str().unwrap()),
        "{listed}"
    );
    assert!(listed.contains("yes (kept)"), "{listed}");
    let undone = w.env.run(&["scan", "--undo", "last"]).ok().stdout;
    assert!(
        undone.contains("has its previous credential back"),
        "{undone}"
    );
    assert_eq!(w.dotenv(), before, "the line is back, byte for byte");
    assert_eq!(
        w.env.connection_secret("github").as_deref(),
        Some(FOUNDER_TOKEN)
    );
    assert!(kept(&w.env).is_empty(), "nothing is kept after the undo");
    w.env
        .run(&["scan", "--undo", moved["move_id"].as_str().unwrap()])
        .fails(5, "already undone");
    w.env
        .run(&["scan", "--undo", "last"])
        .fails(5, "no move can be undone");
}

#[test]
fn a_typed_secret_must_fit_its_connection() {
    let env = Env::new();
    env.run(&["connection", "add", "github", "--preset", "github"])
        .ok();
    env.run(&[
        "connection",
        "add",
        "warehouse",
        "--kind",
        "database",
        "--variable",
        "WAREHOUSE_URL",
    ])
    .ok();
    let url = "postgres://report:Wh5secret@db.internal:5432/warehouse";
    env.run_stdin(&["connection", "set-secret", "github"], url.as_bytes())
        .fails(3, "'github' is a GitHub connection");
    env.run_stdin(
        &["connection", "set-secret", "warehouse"],
        b"ghp_not-a-url-at-all",
    )
    .fails(3, "not a database URL");
    env.run_stdin(&["connection", "set-secret", "warehouse"], url.as_bytes())
        .ok();
    assert_eq!(env.connection_secret("warehouse").as_deref(), Some(url));
    assert_eq!(env.connection_secret("github"), None);
    env.run(&[
        "connection",
        "add",
        "db2",
        "--kind",
        "database",
        "--base-url",
        "https://x.example",
    ])
    .fails(2, "has no base URL");
    env.run(&[
        "connection",
        "edit",
        "warehouse",
        "--add-action",
        "x=GET:/x",
    ])
    .fails(3, "is a database connection");
}
