//! The MCP gateway with real parts: the reference servers from npm
//! (`@modelcontextprotocol/server-filesystem`, `server-everything`), real clients (the
//! TypeScript SDK's and the Python `mcp` package's) started as an MCP client starts a server,
//! `mandate mcp run` between them, and the real keychain. Dependencies come from
//! `tests/mcp/setup.sh` (pinned, cached under `$MANDATE_CACHE`).
//!
//! Checked: invisible tools stay invisible; refused calls never reach the server (the
//! filesystem server's file does not change); case and Unicode-lookalike names are other
//! names; revocation bites on the next call; the server's credential never reaches the client;
//! the audit trail holds each call; bad input (malformed JSON, batches, oversized messages,
//! unknown methods, members given twice at any depth) is answered with an error and the
//! gateway stays up; a server that hangs or crashes mid-call, and a client that leaves
//! mid-call, each end in an audit event.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::fixture::{Env, bin};

/// The installed parts: the folder holding `node_modules` and `client.mjs`, and the venv's python.
pub struct Parts {
    pub node_dir: PathBuf,
    pub python: PathBuf,
}

pub fn parts() -> &'static Parts {
    static PARTS: OnceLock<Parts> = OnceLock::new();
    PARTS.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("mcp/setup.sh");
        let out = Command::new(script)
            .output()
            .expect("run tests/mcp/setup.sh");
        assert!(
            out.status.success(),
            "tests/mcp/setup.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let mut lines = text.lines();
        Parts {
            node_dir: PathBuf::from(lines.next().expect("node dir")),
            python: PathBuf::from(lines.next().expect("python")),
        }
    })
}

pub fn server_js(name: &str) -> String {
    parts()
        .node_dir
        .join(format!(
            "node_modules/@modelcontextprotocol/server-{name}/dist/index.js"
        ))
        .to_string_lossy()
        .into_owned()
}

pub const GITHUB_STYLE_TOKEN: &str = "ghp_Z7cQ2mN8vR4tY6uI0oP3aS5dF7gH9jK1lL2x";

/// Register `agent` (owned by `founder`) with `scopes`.
pub fn agent(env: &Env, agent: &str, scopes: &[&str]) {
    env.run(&["member", "add", "founder"]);
    let mut args = vec![
        "agent",
        "add",
        agent,
        "--owner",
        "founder",
        "--purpose",
        "works through MCP",
    ];
    for s in scopes {
        args.push("--scope");
        args.push(s);
    }
    env.run(&args).ok();
}

/// Run a client (`ts` or `py`) with `plan` against `mandate mcp run --agent AGENT SERVER`.
pub fn client(env: &Env, which: &str, plan: &Value, agent: &str, server: &str) -> Command {
    let p = parts();
    let mut c = match which {
        "ts" => {
            let mut c = Command::new("node");
            c.arg(p.node_dir.join("client.mjs"));
            c
        }
        _ => {
            let mut c = Command::new(&p.python);
            c.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("mcp/client.py"));
            c
        }
    };
    c.arg(plan.to_string())
        .arg(bin("mandate"))
        .args(["mcp", "run", "--agent", agent, server])
        .env("MANDATE_DATA_DIR", env.data_dir())
        .env("MANDATE_KEYCHAIN_SERVICE", &env.service)
        .env_remove("MANDATE_ACTOR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

pub fn run_client(mut c: Command) -> Value {
    let out = c.output().expect("run the MCP client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| {
        panic!(
            "the client's output is not JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// (action, decision, reason, details) of every event, oldest first.
pub fn audit(env: &Env) -> Vec<(String, String, String, Value)> {
    let o = crate::fixture::sqlite3(env.db_path())
        .arg("-json")
        .arg(
            "SELECT action, decision, json_extract(body, '$.reason') AS reason, \
             json_extract(body, '$.details') AS details FROM audit_events ORDER BY seq",
        )
        .output()
        .unwrap();
    let rows: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| Vec::new());
    rows.into_iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap_or("").to_string(),
                r["decision"].as_str().unwrap_or("").to_string(),
                r["reason"].as_str().unwrap_or("").to_string(),
                serde_json::from_str(r["details"].as_str().unwrap_or("null"))
                    .unwrap_or(Value::Null),
            )
        })
        .collect()
}

fn step(out: &Value, i: usize) -> &Value {
    &out["steps"][i]
}

#[test]
fn ts_client_sees_only_granted_tools_and_refused_calls_never_reach_the_filesystem_server() {
    let env = Env::new();
    let root = env.dir.path().join("files");
    std::fs::create_dir_all(&root).unwrap();
    let notes = root.join("notes.txt");
    std::fs::write(&notes, "original").unwrap();
    let root_s = std::fs::canonicalize(&root)
        .unwrap()
        .to_string_lossy()
        .into_owned();
    env.run(&[
        "mcp",
        "add",
        "fs",
        "--",
        "node",
        &server_js("filesystem"),
        &root_s,
    ])
    .ok();
    // The tools came from the server itself, with its annotations.
    let tools = env.run(&["--json", "mcp", "tools", "fs"]).ok().json();
    let write = tools
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["action"] == "write_file")
        .expect("write_file listed");
    assert_eq!(write["destructive"], json!(true));
    assert_eq!(tools[0]["read_only"], json!(true), "read-only tools first");
    agent(
        &env,
        "coder",
        &["fs:read_text_file", "fs:list_allowed_directories"],
    );

    let ready = env.dir.path().join("ready");
    let go = env.dir.path().join("go");
    let path = std::fs::canonicalize(&notes)
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let plan = json!([
        {"op": "tools"},
        {"op": "call", "name": "read_text_file", "args": {"path": path}},
        {"op": "call", "name": "write_file", "args": {"path": path, "content": "overwritten"}},
        {"op": "call", "name": "Write_File", "args": {"path": path, "content": "overwritten"}},
        {"op": "call", "name": "read_text_filе", "args": {"path": path}},
        {"op": "mark", "file": ready},
        {"op": "wait", "file": go},
        {"op": "call", "name": "read_text_file", "args": {"path": path}},
    ]);
    let mut child = client(&env, "ts", &plan, "coder", "fs").spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready.exists() {
        assert!(Instant::now() < deadline, "the client never got ready");
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).ok();
            panic!("the client exited early ({status}): {err}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    env.run(&["agent", "revoke", "coder", "--reason", "left the project"])
        .ok();
    std::fs::write(&go, "").unwrap();
    let out = child.wait_with_output().unwrap();
    let out: Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap())
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));

    assert_eq!(out["connected"], json!(true), "{out}");
    let mut listed: Vec<&str> = step(&out, 0)["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        ["list_allowed_directories", "read_text_file"],
        "{out}"
    );
    assert_eq!(step(&out, 1)["ok"], json!(true), "{out}");
    assert!(step(&out, 1)["value"].to_string().contains("original"));
    for (i, scope) in [
        (2, "fs:write_file"),
        (3, "fs:Write_File"),
        (4, "fs:read_text_fil"),
    ] {
        let s = step(&out, i);
        assert_eq!(s["ok"], json!(false), "step {i}: {out}");
        assert_eq!(s["code"], json!(-32001), "step {i}: {out}");
        assert!(
            s["error"].as_str().unwrap().contains(scope),
            "step {i}: {s}"
        );
    }
    let last = step(&out, 7);
    assert_eq!(last["ok"], json!(false), "revocation must bite: {out}");
    assert!(
        last["error"].as_str().unwrap().contains("revoked"),
        "{last}"
    );
    assert_eq!(
        std::fs::read_to_string(&notes).unwrap(),
        "original",
        "a refused write reached the server"
    );

    let events = audit(&env);
    let called: Vec<&Value> = events
        .iter()
        .filter(|e| e.0 == "mcp.tool_called")
        .map(|e| &e.3)
        .collect();
    assert_eq!(called.len(), 1, "{events:?}");
    assert_eq!(called[0]["tool"], "read_text_file");
    assert_eq!(called[0]["arguments_sha256"].as_str().unwrap().len(), 64);
    assert!(
        called[0].get("arguments").is_none(),
        "arguments are not recorded by default"
    );
    let completed: Vec<&Value> = events
        .iter()
        .filter(|e| e.0 == "mcp.tool_completed")
        .map(|e| &e.3)
        .collect();
    assert_eq!(completed.len(), 1);
    assert_eq!(completed[0]["result"], "ok");
    assert_eq!(completed[0]["is_error"], json!(false));
    assert!(completed[0]["bytes"].as_u64().unwrap() > 0);
    let denied: Vec<&str> = events
        .iter()
        .filter(|e| e.0 == "mcp.denied")
        .map(|e| e.3["error"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        denied,
        [
            "insufficient_scope",
            "insufficient_scope",
            "insufficient_scope",
            "agent_inactive"
        ],
        "{events:?}"
    );
}

#[test]
fn python_client_never_sees_the_servers_credential_and_prompts_are_gated() {
    let env = Env::new();
    let secret = format!("{GITHUB_STYLE_TOKEN}\n");
    env.run_stdin(
        &[
            "mcp",
            "add",
            "everything",
            "--secret-env",
            "GITHUB_PERSONAL_ACCESS_TOKEN",
            "--",
            "node",
            &server_js("everything"),
            "stdio",
        ],
        secret.as_bytes(),
    )
    .ok();
    agent(
        &env,
        "helper-agent",
        &[
            "everything:echo",
            "everything:get-env",
            "everything:prompts/simple-prompt",
        ],
    );
    let plan = json!([
        {"op": "tools"},
        {"op": "prompts"},
        {"op": "call", "name": "get-env"},
        {"op": "call", "name": "echo", "args": {"message": "hello"}},
        {"op": "call", "name": "get-sum", "args": {"a": 1, "b": 2}},
        {"op": "prompt", "name": "simple-prompt"},
        {"op": "prompt", "name": "args-prompt", "args": {"city": "Paris"}},
    ]);
    let out = run_client(client(&env, "py", &plan, "helper-agent", "everything"));
    assert_eq!(out["connected"], json!(true), "{out}");
    assert_eq!(step(&out, 0)["value"], json!(["echo", "get-env"]), "{out}");
    assert_eq!(step(&out, 1)["value"], json!(["simple-prompt"]), "{out}");
    let env_dump = step(&out, 2)["value"].to_string();
    assert!(
        env_dump.contains("GITHUB_PERSONAL_ACCESS_TOKEN"),
        "the server got its variable: {env_dump}"
    );
    assert!(
        !env_dump.contains("ghp_Z7cQ"),
        "the credential reached the client: {env_dump}"
    );
    assert!(env_dump.contains(&"*".repeat(GITHUB_STYLE_TOKEN.len())));
    assert_eq!(step(&out, 3)["value"]["isError"], json!(false));
    assert_eq!(step(&out, 4)["ok"], json!(false));
    assert!(
        step(&out, 4)["error"]
            .as_str()
            .unwrap()
            .contains("everything:get-sum")
    );
    assert_eq!(step(&out, 5)["ok"], json!(true), "{out}");
    assert_eq!(step(&out, 6)["ok"], json!(false));
    assert!(
        step(&out, 6)["error"]
            .as_str()
            .unwrap()
            .contains("everything:prompts/args-prompt")
    );

    let events = audit(&env);
    let text = format!("{events:?}");
    assert!(
        !text.contains("ghp_Z7cQ"),
        "the credential reached the audit trail"
    );
    let called: Vec<String> = events
        .iter()
        .filter(|e| e.0 == "mcp.tool_called")
        .map(|e| e.3["scope"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        called,
        [
            "everything:get-env",
            "everything:echo",
            "everything:prompts/simple-prompt"
        ]
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e.0 == "mcp.tool_completed")
            .count(),
        3
    );
    // The database holds no trace of the credential either.
    let db = std::fs::read(env.db_path()).unwrap();
    assert!(!db.windows(8).any(|w| w == b"ghp_Z7cQ"));
}

/// `mandate mcp run` driven line by line.
struct Raw {
    child: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Raw {
    fn start(env: &Env, agent: &str, server: &str) -> Raw {
        let mut child = env
            .cmd(&["mcp", "run", "--agent", agent, server])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        Raw { child, out }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    /// The next response (the server's own notifications and requests are skipped).
    fn recv(&mut self) -> Value {
        loop {
            let mut line = String::new();
            self.out.read_line(&mut line).unwrap();
            let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
            if v.get("method").is_none() {
                return v;
            }
        }
    }

    fn initialize(&mut self) {
        self.send(r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#);
        let r = self.recv();
        assert!(r["result"]["serverInfo"].is_object(), "{r}");
        self.send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn bad_input_is_answered_with_errors_and_the_gateway_stays_up() {
    let env = Env::new();
    env.run(&[
        "mcp",
        "add",
        "everything",
        "--",
        "node",
        &server_js("everything"),
        "stdio",
    ])
    .ok();
    agent(&env, "coder", &["everything:echo"]);
    let mut raw = Raw::start(&env, "coder", "everything");
    raw.initialize();
    let cases: Vec<(String, i64, Option<Value>)> = vec![
        ("{not json".into(), -32700, None),
        (
            r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#.into(),
            -32600,
            None,
        ),
        (
            format!(
                r#"{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"echo","arguments":{{"message":"{}"}}}}}}"#,
                "x".repeat(5 * 1024 * 1024)
            ),
            -32600,
            None,
        ),
        (
            r#"{"jsonrpc":"2.0","id":3,"method":"admin/shutdown"}"#.into(),
            -32601,
            Some(json!(3)),
        ),
        (
            r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","name":"get-env"}}"#.into(),
            -32602,
            Some(json!(4)),
        ),
        // A member the gate does not read, given twice: the server might read the other one.
        (
            r#"{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"echo","arguments":{"message":"seen","message":"unseen"}}}"#.into(),
            -32602,
            Some(json!(8)),
        ),
        (
            r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"ECHO","arguments":{"message":"x"}}}"#.into(),
            -32001,
            Some(json!(5)),
        ),
        (
            r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"еcho","arguments":{"message":"x"}}}"#.into(),
            -32001,
            Some(json!(6)),
        ),
        (
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get-env"}}"#.into(),
            -32001,
            Some(json!(7)),
        ),
    ];
    for (line, code, id) in &cases {
        raw.send(line);
        let r = raw.recv();
        assert_eq!(
            r["error"]["code"],
            json!(code),
            "{}: {r}",
            &line[..line.len().min(80)]
        );
        assert_eq!(r["id"], id.clone().unwrap_or(Value::Null), "{r}");
        assert!(
            r["error"]["message"].as_str().unwrap().len() > 20,
            "a sentence: {r}"
        );
    }
    // Still up: a granted call passes.
    raw.send(r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"echo","arguments":{"message":"still here"}}}"#);
    let r = raw.recv();
    assert_eq!(r["id"], json!(9));
    assert!(r["result"].to_string().contains("still here"), "{r}");
    drop(raw);
    let events = audit(&env);
    let denied: Vec<&str> = events
        .iter()
        .filter(|e| e.0 == "mcp.denied")
        .map(|e| e.3["error"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        denied,
        [
            "parse_error",
            "batch_refused",
            "message_too_large",
            "method_not_relayed",
            "invalid_params",
            "invalid_params",
            "insufficient_scope",
            "insufficient_scope",
            "insufficient_scope"
        ],
        "{events:?}"
    );
}

#[test]
fn a_hanging_or_crashing_server_and_a_leaving_client_each_end_in_an_audit_event() {
    let env = Env::new();
    let log = env.dir.path().join("crashy.log");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("mcp/crashy_server.py");
    env.run(&[
        "mcp",
        "add",
        "crashy",
        "--call-timeout",
        "1",
        "--env",
        &format!("CRASHY_LOG={}", log.display()),
        "--",
        "python3",
        script.to_str().unwrap(),
    ])
    .ok();
    agent(&env, "coder", &["crashy:hang", "crashy:crash"]);

    // A server that never answers: the client gets a timeout error after 1 s.
    let mut raw = Raw::start(&env, "coder", "crashy");
    raw.initialize();
    let t0 = Instant::now();
    raw.send(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"hang"}}"#);
    let r = raw.recv();
    assert_eq!(r["id"], json!(1));
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did not answer within 1 s"),
        "{r}"
    );
    assert!(t0.elapsed() < Duration::from_secs(10));
    // A server that crashes mid-call: an error for the call, and the bridge ends with it.
    raw.send(r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"crash"}}"#);
    let r = raw.recv();
    assert_eq!(r["id"], json!(2));
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("exited before answering"),
        "{r}"
    );
    // (Keep our side open: the bridge must end because the server did.)
    let _stdin = raw.child.stdin.take();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = raw.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the bridge outlived its server");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        status.code(),
        Some(3),
        "the bridge exits with the server's status"
    );

    // A client that leaves mid-call.
    let mut raw = Raw::start(&env, "coder", "crashy");
    raw.initialize();
    raw.send(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"hang"}}"#);
    // Wait until the call reached the server, then hang up.
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(&log)
        .unwrap_or_default()
        .matches("\"hang\"")
        .count()
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "the call never reached the server"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(raw.child.stdin.take());
    let status = raw.child.wait().unwrap();
    assert!(
        status.success(),
        "a client leaving is a normal end: {status}"
    );

    let results: Vec<String> = audit(&env)
        .iter()
        .filter(|e| e.0 == "mcp.tool_completed")
        .map(|e| e.3["result"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(results, ["timeout", "server_exited", "client_disconnected"]);
    // The server saw the calls it was allowed to see, and the gateway asked it to cancel the
    // one that timed out.
    let seen = std::fs::read_to_string(&log).unwrap();
    assert!(seen.contains("notifications/cancelled"), "{seen}");
}

/// Issue 18's "Done when", as a test: a Claude-Code-style `.mcp.json` holding a plain
/// GitHub-style token is found by `mandate scan` and imported (the same core call the wizard
/// makes); afterwards the file holds no secret, a real client started from that config as
/// `coder` lists only the granted tool and calls it, a hidden tool is refused and audited,
/// revoking `coder` stops the next call, and the PDF report shows the calls under the agent.
#[test]
fn done_when_an_imported_mcp_json_runs_through_the_gate_until_revocation() {
    let env = Env::new();
    let project = env.dir.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    let config = project.join(".mcp.json");
    std::fs::write(
        &config,
        format!(
            r#"{{
  "mcpServers": {{
    "github": {{
      "command": "node",
      "args": ["{}", "stdio"],
      "env": {{ "GITHUB_PERSONAL_ACCESS_TOKEN": "{GITHUB_STYLE_TOKEN}" }}
    }}
  }}
}}
"#,
            server_js("everything")
        ),
    )
    .unwrap();
    agent(&env, "coder", &[]);

    let scan = env.run(&["scan", project.to_str().unwrap()]).ok();
    assert!(
        scan.stdout.contains("MCP server 'github'"),
        "{}",
        scan.stdout
    );
    assert!(
        !scan.stdout.contains("ghp_Z7cQ2mN8"),
        "the scan printed the token"
    );
    let imported = env
        .run(&[
            "mcp",
            "import",
            config.to_str().unwrap(),
            "--agent",
            "coder",
            "--server",
            "github=github-mcp",
            "--grant",
            "github-mcp:echo",
        ])
        .ok();
    // One sentence that says how to undo it, not the source's indentation.
    assert!(
        imported
            .stdout
            .contains("the original is kept in the OS keychain (undo: mandate mcp undo-import "),
        "{}",
        imported.stdout
    );
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        !text.contains("ghp_"),
        "the file still holds the token: {text}"
    );

    // A real client started exactly as the config says (`mandate` found on PATH).
    let v: Value = serde_json::from_str(&text).unwrap();
    let entry = &v["mcpServers"]["github"];
    assert_eq!(entry["command"], "mandate");
    let args: Vec<String> = entry["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert_eq!(args, ["mcp", "run", "--agent", "coder", "github-mcp"]);
    let ready = env.dir.path().join("ready");
    let go = env.dir.path().join("go");
    let plan = json!([
        {"op": "tools"},
        {"op": "call", "name": "echo", "args": {"message": "from coder"}},
        {"op": "call", "name": "get-env"},
        {"op": "mark", "file": ready},
        {"op": "wait", "file": go},
        {"op": "call", "name": "echo", "args": {"message": "after revocation"}},
    ]);
    let bin_dir = bin("mandate").parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = Command::new("node")
        .arg(parts().node_dir.join("client.mjs"))
        .arg(plan.to_string())
        .arg(entry["command"].as_str().unwrap())
        .args(&args)
        .env("PATH", path)
        .env("MANDATE_DATA_DIR", env.data_dir())
        .env("MANDATE_KEYCHAIN_SERVICE", &env.service)
        .env_remove("MANDATE_ACTOR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready.exists() {
        assert!(Instant::now() < deadline, "the client never got ready");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the client exited early"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    env.run(&["agent", "revoke", "coder", "--reason", "laptop stolen"])
        .ok();
    std::fs::write(&go, "").unwrap();
    let out = child.wait_with_output().unwrap();
    let out: Value = serde_json::from_str(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or(""),
    )
    .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(step(&out, 0)["value"], json!(["echo"]), "{out}");
    assert_eq!(step(&out, 1)["ok"], json!(true), "{out}");
    assert!(step(&out, 1)["value"].to_string().contains("from coder"));
    assert_eq!(step(&out, 2)["ok"], json!(false), "{out}");
    assert!(
        step(&out, 2)["error"]
            .as_str()
            .unwrap()
            .contains("github-mcp:get-env")
    );
    assert_eq!(
        step(&out, 5)["ok"],
        json!(false),
        "revocation must stop the next call"
    );

    let events = audit(&env);
    assert!(
        events
            .iter()
            .any(|e| e.0 == "mcp.denied" && e.3["tool"] == "get-env"),
        "{events:?}"
    );

    let text = env.report_text();
    // The agent's own section: its heading, then its facts (Purpose...) and its timeline.
    let section = text
        .match_indices("\ncoder\n")
        .map(|(i, _)| &text[i..])
        .find(|rest| rest.contains("Purpose") && rest[..rest.find("Purpose").unwrap()].len() < 200)
        .unwrap_or_else(|| panic!("no section for coder in the report:\n{text}"));
    std::fs::write(env.dir.path().join("report.txt"), text.as_bytes()).ok();
    for needle in [
        "mcp.tool_called",
        "github-mcp:echo",
        "mcp.denied",
        "github-mcp:get-env",
    ] {
        assert!(
            section.contains(needle),
            "{needle} not under coder:\n{section}"
        );
    }
    assert!(!text.contains("ghp_Z7cQ2mN8"), "the report holds the token");
}

/// `mandate serve --port 0`, and the issuer URL it prints.
fn serve(env: &Env) -> (crate::interop::Running, String) {
    let mut child = env
        .cmd(&["serve", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("Listening on ")
        .unwrap()
        .to_string();
    (crate::interop::Running(child), url)
}

#[test]
fn streamable_http_endpoint_follows_the_mcp_authorization_spec_and_gates_like_the_bridge() {
    let env = Env::new();
    let root = env.dir.path().join("files");
    std::fs::create_dir_all(&root).unwrap();
    let notes = std::fs::canonicalize(&root).unwrap().join("notes.txt");
    std::fs::write(&notes, "original").unwrap();
    env.run(&[
        "mcp",
        "add",
        "fs",
        "--",
        "node",
        &server_js("filesystem"),
        std::fs::canonicalize(&root).unwrap().to_str().unwrap(),
    ])
    .ok();
    env.run(&["member", "add", "founder"]).ok();
    env.run(&[
        "agent",
        "add",
        "coder",
        "--owner",
        "founder",
        "--purpose",
        "works through MCP over HTTP",
        "--scope",
        "fs:read_text_file",
        "--generate-key",
    ])
    .ok();
    let (_server, issuer) = serve(&env);
    let resource = format!("{issuer}/mcp/fs");
    let http = reqwest::blocking::Client::new();

    // No token: 401 pointing at the RFC 9728 metadata, which names Mandate as the AS.
    let r = http
        .post(&resource)
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let challenge = r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    let meta_url = format!("{issuer}/.well-known/oauth-protected-resource/mcp/fs");
    assert!(
        challenge.contains(&format!("resource_metadata=\"{meta_url}\"")),
        "{challenge}"
    );
    let meta: Value = http.get(&meta_url).send().unwrap().json().unwrap();
    assert_eq!(meta["resource"], json!(resource));
    assert_eq!(meta["authorization_servers"], json!([issuer]));
    assert!(
        meta["scopes_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("fs:write_file"))
    );
    // A token for another audience is refused.
    env.run(&[
        "connection",
        "add",
        "other",
        "--base-url",
        "https://api.example.com",
        "--action",
        "r=GET:/x",
    ])
    .ok();
    env.run(&["agent", "edit", "coder", "--add-scope", "other:r"])
        .ok();
    let other = env
        .run(&[
            "token",
            "coder",
            "--aud",
            "other",
            "--port",
            issuer.rsplit(':').next().unwrap(),
        ])
        .ok();
    let r = http
        .post(&resource)
        .header("content-type", "application/json")
        .bearer_auth(other.stdout.trim())
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );

    // A token with the server as audience (RFC 8707), used by the TypeScript SDK's client.
    let port = issuer.rsplit(':').next().unwrap().to_string();
    let token = env
        .run(&["token", "coder", "--aud", &resource, "--port", &port])
        .ok()
        .stdout
        .trim()
        .to_string();
    let ready = env.dir.path().join("ready");
    let go = env.dir.path().join("go");
    let path = notes.to_string_lossy().into_owned();
    let plan = json!([
        {"op": "tools"},
        {"op": "call", "name": "read_text_file", "args": {"path": path}},
        {"op": "call", "name": "write_file", "args": {"path": path, "content": "overwritten"}},
        {"op": "mark", "file": ready},
        {"op": "wait", "file": go},
        {"op": "call", "name": "read_text_file", "args": {"path": path}},
    ]);
    let mut child = Command::new("node")
        .arg(parts().node_dir.join("client.mjs"))
        .arg(plan.to_string())
        .arg(&resource)
        .env("MANDATE_MCP_TOKEN", &token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready.exists() {
        assert!(Instant::now() < deadline, "the client never got ready");
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "the client exited early: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    env.run(&["agent", "revoke", "coder", "--reason", "done"])
        .ok();
    std::fs::write(&go, "").unwrap();
    let out = child.wait_with_output().unwrap();
    let out: Value = serde_json::from_str(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or(""),
    )
    .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out["connected"], json!(true), "{out}");
    assert_eq!(step(&out, 0)["value"], json!(["read_text_file"]), "{out}");
    assert_eq!(step(&out, 1)["ok"], json!(true), "{out}");
    assert_eq!(step(&out, 2)["ok"], json!(false), "{out}");
    assert!(
        step(&out, 2)["error"]
            .as_str()
            .unwrap()
            .contains("fs:write_file")
    );
    assert_eq!(
        step(&out, 5)["ok"],
        json!(false),
        "revocation must bite: {out}"
    );
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "original");
    let events = audit(&env);
    assert!(
        events
            .iter()
            .any(|e| e.0 == "mcp.tool_called" && e.3["via"] == "http"),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.0 == "mcp.denied" && e.3["error"] == "invalid_token")
    );
}

/// The HTTP endpoint with a DPoP-bound token (RFC 9449): the token works only as `DPoP` with a
/// fresh proof for this method and URL carrying its hash; as a bearer token, without a proof,
/// or with a replayed proof it is refused with 401 and a `DPoP` challenge.
#[test]
fn streamable_http_endpoint_holds_dpop_bound_tokens_to_their_key() {
    use crate::endpoint::{AGENT, Endpoint, b64, dpop_proof};
    use sha2::Digest as _;
    let mut ep = Endpoint::start();
    ep.m.add_mcp_server(mandate_core::mcp::NewMcpServer {
        name: "everything".into(),
        transport: mandate_core::mcp::McpTransport::Stdio {
            command: "node".into(),
            args: vec![server_js("everything"), "stdio".into()],
        },
        env: vec![],
        secret_env: vec![],
        http_secret: None,
        auth: None,
        trust_floor: Some(mandate_core::model::TrustState::Untrusted),
        call_timeout_secs: None,
        audit_arguments: false,
    })
    .unwrap();
    ep.m.set_mcp_tools(
        "everything",
        &[mandate_core::mcp::OfferedTool {
            name: "echo".into(),
            kind: "tool".into(),
            ..Default::default()
        }],
    )
    .unwrap();
    ep.add_agent("bound-agent", &["everything:echo"], None);
    let resource = format!("{}/mcp/everything", ep.issuer());
    let key = mandate_core::keys::generate();
    let proof = dpop_proof(&key, &ep.token_endpoint(), |_, _| {});
    let r = ep.post_form(
        "/oauth2/token",
        &[("DPoP", &proof)],
        &ep.form(&ep.assertion("bound-agent"), &[("resource", &resource)]),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let token = r.json()["access_token"].as_str().unwrap().to_string();
    let ath = b64(&sha2::Sha256::digest(token.as_bytes()));
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"dpop","version":"1"}}}"#;
    let post = |headers: &[(&str, &str)]| {
        let mut h = vec![("content-type", "application/json")];
        h.extend_from_slice(headers);
        ep.request("POST", "/mcp/everything", &h, init)
    };
    // As a bearer token: refused.
    let bearer = format!("Bearer {token}");
    let r = post(&[("authorization", &bearer)]);
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.header("www-authenticate").unwrap().starts_with("DPoP"));
    let dpop_auth = format!("DPoP {token}");
    // Without a proof, or with a proof for another URL: refused.
    let r = post(&[("authorization", &dpop_auth)]);
    assert_eq!(
        (r.status, r.error().as_str()),
        (401, "invalid_dpop_proof"),
        "{}",
        r.body
    );
    let elsewhere = dpop_proof(&key, &ep.token_endpoint(), |_, c| c["ath"] = json!(ath));
    let r = post(&[("authorization", &dpop_auth), ("dpop", &elsewhere)]);
    assert_eq!(r.status, 401, "{}", r.body);
    // A correct proof: the session starts.
    let good = dpop_proof(&key, &resource, |_, c| c["ath"] = json!(ath));
    let r = post(&[("authorization", &dpop_auth), ("dpop", &good)]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["result"]["serverInfo"].is_object(), "{}", r.body);
    assert!(r.header("mcp-session-id").is_some());
    // The same proof again: a replay.
    let r = post(&[("authorization", &dpop_auth), ("dpop", &good)]);
    assert_eq!(
        (r.status, r.error().as_str()),
        (401, "invalid_dpop_proof"),
        "{}",
        r.body
    );
    // Another agent's session is not found with this token, and the unbound agent's token
    // from the fixture is for another audience.
    let other = ep.token(AGENT, &[]);
    let r = ep.request(
        "POST",
        "/mcp/everything",
        &[
            ("content-type", "application/json"),
            ("authorization", &format!("Bearer {other}")),
        ],
        init,
    );
    assert_eq!(r.status, 401, "{}", r.body);
}

/// A remote server (`mandate mcp add --url`): the reference server in its Streamable HTTP mode,
/// reached by the bridge with its credential from the keychain; its tools are read over HTTP,
/// and the gate applies as for a local one.
#[test]
fn a_remote_streamable_http_server_is_reached_through_the_gate() {
    let env = Env::new();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let server = Command::new("node")
        .args([server_js("everything").as_str(), "streamableHttp"])
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _server = crate::interop::Running(server);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the remote server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = format!("http://127.0.0.1:{port}/mcp");
    let added = env
        .run_stdin(
            &[
                "--json",
                "mcp",
                "add",
                "remote-everything",
                "--url",
                &url,
                "--credential",
                "--auth",
                "header:x-api-key",
            ],
            format!("{GITHUB_STYLE_TOKEN}\n").as_bytes(),
        )
        .ok()
        .json();
    assert_eq!(added["transport"]["url"], json!(url));
    assert!(
        added["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["action"] == "echo"),
        "tools read over HTTP: {added}"
    );
    agent(&env, "coder", &["remote-everything:echo"]);
    let plan = json!([
        {"op": "tools"},
        {"op": "call", "name": "echo", "args": {"message": "over http"}},
        {"op": "call", "name": "get-env"},
    ]);
    let out = run_client(client(&env, "ts", &plan, "coder", "remote-everything"));
    assert_eq!(step(&out, 0)["value"], json!(["echo"]), "{out}");
    assert!(
        step(&out, 1)["value"].to_string().contains("over http"),
        "{out}"
    );
    assert_eq!(step(&out, 2)["ok"], json!(false), "{out}");
    let events = audit(&env);
    assert!(
        events
            .iter()
            .any(|e| e.0 == "mcp.tool_completed" && e.3["result"] == "ok")
    );
    assert!(!format!("{events:?}").contains("ghp_Z7cQ"));
}

/// Issue 19: a tool marked `always` holds the real client's call while a person decides; the
/// call completes once someone approves it from the CLI, inside the hold, and a second call
/// (the once-approval used) waits again and, unanswered within a short hold, ends in
/// `approval_pending` naming the request.
#[test]
fn a_held_tool_call_completes_once_approved_from_the_cli_while_the_client_waits() {
    let env = Env::new();
    let root = env.dir.path().join("files");
    std::fs::create_dir_all(&root).unwrap();
    let notes = root.join("notes.txt");
    std::fs::write(&notes, "original").unwrap();
    let root_s = std::fs::canonicalize(&root)
        .unwrap()
        .to_string_lossy()
        .into_owned();
    env.run(&[
        "mcp",
        "add",
        "fs",
        "--",
        "node",
        &server_js("filesystem"),
        &root_s,
    ])
    .ok();
    agent(&env, "coder", &["fs:read_text_file"]);
    env.run(&[
        "connection",
        "edit",
        "fs",
        "--action-approval",
        "read_text_file=always",
    ])
    .ok();
    let path = std::fs::canonicalize(&notes)
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let plan = json!([{"op": "call", "name": "read_text_file", "args": {"path": path}}]);
    let mut c = client(&env, "ts", &plan, "coder", "fs");
    c.env("MANDATE_APPROVAL_HOLD_SECS", "60");
    let started = Instant::now();
    let child = c.spawn().unwrap();

    // The request shows up for a person while the client waits.
    let mut pending = Value::Null;
    for _ in 0..300 {
        let list = env.run(&["approvals", "list", "--json"]).ok().json();
        if let Some(first) = list.as_array().and_then(|a| a.first()) {
            pending = first.clone();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(pending["agent"], "coder", "no request appeared: {pending}");
    assert_eq!(pending["action"], "fs:read_text_file", "{pending}");
    std::thread::sleep(Duration::from_secs(1));
    let id = pending["id"].as_str().unwrap().to_string();
    env.run(&["approvals", "approve", &id]).ok();
    let out = child.wait_with_output().unwrap();
    let out: Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap())
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(
        step(&out, 0)["ok"],
        json!(true),
        "held, then approved: {out}"
    );
    assert!(step(&out, 0)["value"].to_string().contains("original"));
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the call went through when approved, not at the end of the hold"
    );

    // The once-approval is used: the next call asks again; nobody answers within 1 s.
    let mut c = client(&env, "ts", &plan, "coder", "fs");
    c.env("MANDATE_APPROVAL_HOLD_SECS", "1");
    let out = run_client(c);
    let s = step(&out, 0);
    assert_eq!(s["ok"], json!(false), "{out}");
    let err = s["error"].as_str().unwrap();
    assert!(err.contains("approval"), "{err}");
    assert!(err.contains("apr_"), "the answer names the request: {err}");
    assert!(err.contains("within 1 s"), "{err}");

    let events = audit(&env);
    let actions: Vec<&str> = events.iter().map(|e| e.0.as_str()).collect();
    for a in [
        "approval.rule_set",
        "approval.requested",
        "approval.approved",
    ] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
}
