//! `mandate team`: a person's membership of a team server (issue 21 §1).
//!
//! - `mandate team join URL CODE` makes an Ed25519 member key in this machine's OS keychain,
//!   redeems the one-time invite at the server, which enrols the key's public half, and
//!   remembers the server (and how its certificate is trusted) in the data folder.
//! - Every other subcommand signs in as that member (a `private_key_jwt` assertion for a
//!   DPoP-bound token, cached in the keychain until a minute before it expires) and calls the
//!   member API; the server decides by role and records the member as the actor.
//! - `mandate team invite` on the server host (with its PKCS#11 token) invites the first
//!   admin; once an admin has joined, admins invite from their own machine.
//!
//! Thin adapter: the rules are the server's (`team_access.rs`), the client is
//! `mandate_server::member_client`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use mandate_core::Mandate;
use mandate_core::secret::Sensitive;
use mandate_core::team::Role;
use mandate_core::team_client::{Membership, ServerTrustRecord};
use mandate_server::client::ClientError;
use mandate_server::member_client::Method;
use mandate_server::member_session::{self, MemberSession, SessionError};
use mandate_server::remote::{RemoteServer, ServerTrust};
use serde_json::{Value, json};

use crate::context::{CliError, CliResult, Ctx};

#[derive(Debug, Subcommand)]
pub enum TeamCmd {
    /// Join a team server with an invite code: make your member key (in the OS keychain) and
    /// enrol it. Prints who you are on the team.
    Join(JoinArgs),
    /// Invite a person: on your machine as an admin (through the server), or on the server
    /// host before any admin has joined. Prints the one-time code to give them.
    Invite(InviteArgs),
    /// Who you are on the team server you joined (the server's answer).
    Whoami,
    /// Everyone on the team, with their roles.
    Members,
    /// Remove a member from the team (admins): their next request is refused.
    Remove {
        /// The member's name.
        name: String,
    },
    /// The team's agents.
    Agents,
    /// Suspend an agent you own (admins: any agent); it gets nothing until resumed.
    Suspend(AgentArgs),
    /// Resume an agent you suspended.
    Resume(AgentArgs),
    /// Revoke an agent you own (admins: any agent), for good.
    Revoke(AgentArgs),
    /// The team's connections.
    Connections,
    /// Add a connection (admins): an API the team server's broker calls with its credential.
    AddConnection {
        /// Its name, the first half of its scopes (e.g. `github` for `github:repo.read`).
        name: String,
        /// The API's base URL, e.g. https://api.github.com.
        #[arg(long)]
        base_url: String,
        /// An action as NAME=METHOD:PATH-PATTERN, e.g. repo.read=GET:/repos/** (repeatable).
        #[arg(long = "action", value_name = "NAME=METHOD:PATH")]
        actions: Vec<String>,
        /// Agents below this trust state get no tokens for it (TRUSTED, PENDING, UNTRUSTED).
        #[arg(long, value_name = "STATE")]
        trust_floor: Option<String>,
    },
    /// Store or replace a connection's credential in the team server's keychain (admins;
    /// read from standard input, or asked for without echo).
    SetSecret {
        /// The connection's name.
        connection: String,
    },
    /// Add a remote MCP server by its URL (admins). A command-line (stdio) server would run
    /// on the server host: add it there with `mandate mcp add`.
    AddMcpServer {
        name: String,
        /// Its Streamable HTTP URL.
        #[arg(long)]
        url: String,
        /// Where its credential goes: bearer, basic, header:NAME or query:NAME.
        #[arg(long, value_name = "HOW")]
        auth: Option<String>,
        /// Read its credential from standard input (kept in the team server's keychain).
        #[arg(long)]
        secret_stdin: bool,
        /// Agents below this trust state may not call its tools (TRUSTED, PENDING, UNTRUSTED).
        #[arg(long, value_name = "STATE")]
        trust_floor: Option<String>,
    },
    /// Remove a connection (admins); agents lose their scopes on it.
    RemoveConnection {
        /// The connection's name.
        name: String,
    },
    /// The team's MCP servers.
    McpServers,
    /// Remove an MCP server (admins); agents lose their scopes on it.
    RemoveMcpServer {
        /// The MCP server's name.
        name: String,
    },
    /// Approval requests you may decide (your agents'; admins: all).
    Approvals,
    /// Approve a request: once (default), or for 15m, 1h or today.
    Approve {
        id: String,
        #[arg(long = "for", value_name = "WINDOW", default_value = "once")]
        window: String,
    },
    /// Deny a request, with a reason the agent's owner will read.
    Deny {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Export the team's audit trail: the evidence bundle, signed with the server's issuer key
    /// (verify it with `mandate audit verify FILE --key SHA256:...`).
    Export {
        /// Where to write the bundle (refused if it exists).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Follow the team's audit trail as it grows (server-sent events): one line per event you
    /// may read, until interrupted. Resumes by itself after a token renewal or a dropped
    /// connection; ends when you are removed from the team. `--json`: one JSON object per line.
    Watch {
        /// Start after this event (its sequence number) instead of now.
        #[arg(long, value_name = "SEQ")]
        after: Option<u64>,
    },
    /// The team's audit trail, newest first.
    Audit {
        /// How many events (at most 1000).
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Witnesses of the team's audit log: make this machine's key, sync (check the log only
    /// grew and cosign), and, on the server host, register them.
    #[command(subcommand)]
    Witness(super::witness::WitnessCmd),
}

#[derive(Debug, Args)]
pub struct JoinArgs {
    /// The team server's URL, exactly as the admin gave it (https://HOST[:PORT]).
    url: String,
    /// The one-time invite code (it may begin with a dash).
    #[arg(allow_hyphen_values = true)]
    code: String,
    /// Trust only this CA (or the server's own certificate), PEM.
    #[arg(long, value_name = "FILE", conflicts_with = "server_fingerprint")]
    server_ca: Option<PathBuf>,
    /// Trust exactly the server certificate with this SHA-256 fingerprint.
    #[arg(long, value_name = "SHA256")]
    server_fingerprint: Option<String>,
    /// Do not make this machine a witness of the team's log (by default it enrols a witness
    /// key and cosigns the log's newest checkpoint: `mandate team witness enrol`).
    #[arg(long)]
    no_witness: bool,
}

#[derive(Debug, Args)]
pub struct InviteArgs {
    /// The person's member name (lowercase, digits, dashes).
    name: String,
    /// What they may do: admin (members, connections, MCP servers, any agent), member (the
    /// agents they own and their approvals) or auditor (read and export only).
    #[arg(long, value_name = "ROLE")]
    role: String,
    /// Their email address (for a new member).
    #[arg(long, value_name = "EMAIL")]
    email: Option<String>,
    /// How long the code stays valid (at most 7d; on the server host only: an admin's invite
    /// lasts 24h).
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = super::parse_duration)]
    ttl: chrono::Duration,
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The agent's name.
    agent: String,
    /// Why (recorded in the audit trail).
    #[arg(long)]
    reason: Option<String>,
}

fn fail(code: u8, message: String) -> CliError {
    CliError::Exit { code, message }
}

fn client_error(e: ClientError) -> CliError {
    let code = match &e {
        ClientError::Refused { error, .. } => match error.as_str() {
            "not_found" => 4,
            "conflict" => 5,
            "invalid_request" => 3,
            "temporarily_unavailable" => 7,
            _ => 9,
        },
        _ => 8,
    };
    let message = match e {
        ClientError::Refused { description, .. } => {
            format!("the team server refused: {description}")
        }
        other => other.to_string(),
    };
    fail(code, message)
}

fn trust_of(t: &ServerTrustRecord) -> CliResult<ServerTrust> {
    ServerTrust::from_record(t).map_err(|e| fail(3, e))
}

pub fn run(ctx: &mut Ctx, c: TeamCmd) -> CliResult {
    match c {
        TeamCmd::Witness(w) => super::witness::run(ctx, w),
        TeamCmd::Join(a) => join(ctx, a),
        TeamCmd::Invite(a) => invite(ctx, a),
        TeamCmd::Whoami => {
            let v = Session::open(ctx)?.call(Method::GET, "/team/v1/me", None)?;
            if ctx.json {
                return crate::output::json(&v);
            }
            println!(
                "{} ({}) on {}",
                v["name"].as_str().unwrap_or("?"),
                v["role"].as_str().unwrap_or("?"),
                ctx.mandate()?
                    .team_membership()?
                    .map(|m| m.url)
                    .unwrap_or_default()
            );
            Ok(())
        }
        TeamCmd::Members => {
            let v = Session::open(ctx)?.call(Method::GET, "/team/v1/members", None)?;
            if ctx.json {
                return crate::output::json(&v);
            }
            let mut t = crate::output::table(&["Member", "Role", "Joined", "Removed"]);
            for m in v.as_array().into_iter().flatten() {
                t.add_row(vec![
                    m["name"].as_str().unwrap_or("").to_string(),
                    m["role"].as_str().unwrap_or("").to_string(),
                    m["joined_at"].as_str().unwrap_or("").to_string(),
                    m["removed_at"].as_str().unwrap_or("").to_string(),
                ]);
            }
            println!("{t}");
            Ok(())
        }
        TeamCmd::Remove { name } => {
            let path = format!("/team/v1/members/{}", segment(&name)?);
            let v = Session::open(ctx)?.call(Method::DELETE, &path, None)?;
            if ctx.json {
                return crate::output::json(&v);
            }
            println!("Removed {name} from the team; their next request is refused.");
            Ok(())
        }
        TeamCmd::Agents => {
            let v = Session::open(ctx)?.call(Method::GET, "/team/v1/agents", None)?;
            if ctx.json {
                return crate::output::json(&v);
            }
            let mut t = crate::output::table(&["Agent", "Owner", "Status", "Trust"]);
            for a in v.as_array().into_iter().flatten() {
                t.add_row(vec![
                    a["name"].as_str().unwrap_or("").to_string(),
                    a["owner"].as_str().unwrap_or("—").to_string(),
                    a["status"].as_str().unwrap_or("").to_string(),
                    a["trust"]["state"].as_str().unwrap_or("").to_string(),
                ]);
            }
            println!("{t}");
            Ok(())
        }
        TeamCmd::Connections => list_registry(ctx, "/team/v1/connections"),
        TeamCmd::McpServers => list_registry(ctx, "/team/v1/mcp-servers"),
        TeamCmd::AddConnection {
            name,
            base_url,
            actions,
            trust_floor,
        } => {
            let v = Session::open(ctx)?.call(
                Method::POST,
                "/team/v1/connections",
                Some(&json!({
                    "name": name, "base_url": base_url, "actions": actions,
                    "trust_floor": trust_floor,
                })),
            )?;
            if ctx.json {
                return crate::output::json(&v);
            }
            println!(
                "Added the connection {name} on the team server (recorded in your name). Give \
                 it its credential with `mandate team set-secret {name}`."
            );
            Ok(())
        }
        TeamCmd::SetSecret { connection } => {
            let path = format!("/team/v1/connections/{}/secret", segment(&connection)?);
            let session = Session::open(ctx)?;
            let secret = super::connection::read_secret()?;
            let v = session.call(
                Method::PUT,
                &path,
                Some(&json!({"secret": secret.expose()})),
            )?;
            if ctx.json {
                return crate::output::json(&v);
            }
            println!(
                "Stored the credential of {connection} in the team server's keychain; agents \
                 never see it."
            );
            Ok(())
        }
        TeamCmd::AddMcpServer {
            name,
            url,
            auth,
            secret_stdin,
            trust_floor,
        } => {
            let session = Session::open(ctx)?;
            let secret = if secret_stdin {
                Some(super::connection::read_secret()?)
            } else {
                None
            };
            let v = session.call(
                Method::POST,
                "/team/v1/mcp-servers",
                Some(&json!({
                    "name": name, "url": url, "auth": auth, "trust_floor": trust_floor,
                    "secret": secret.as_ref().map(|s| s.expose()),
                })),
            )?;
            if ctx.json {
                return crate::output::json(&v);
            }
            println!("Added the MCP server {name} on the team server (recorded in your name).");
            Ok(())
        }
        TeamCmd::RemoveConnection { name } => remove_registry(ctx, "connections", &name),
        TeamCmd::RemoveMcpServer { name } => remove_registry(ctx, "mcp-servers", &name),
        TeamCmd::Suspend(a) => change(ctx, "suspend", "Suspended", a),
        TeamCmd::Resume(a) => change(ctx, "resume", "Resumed", a),
        TeamCmd::Revoke(a) => change(ctx, "revoke", "Revoked", a),
        TeamCmd::Approvals => {
            let v = Session::open(ctx)?.call(Method::GET, "/team/v1/approvals", None)?;
            if ctx.json {
                return crate::output::json(&v);
            }
            let mut t = crate::output::table(&["Id", "Agent", "Asks for", "Why"]);
            for a in v.as_array().into_iter().flatten() {
                t.add_row(vec![
                    a["id"].as_str().unwrap_or("").to_string(),
                    a["agent"].as_str().unwrap_or("").to_string(),
                    a["action"].as_str().unwrap_or("").to_string(),
                    a["why"].as_str().unwrap_or("").to_string(),
                ]);
            }
            println!("{t}");
            Ok(())
        }
        TeamCmd::Approve { id, window } => {
            let path = format!("/team/v1/approvals/{}/approve", segment(&id)?);
            let v =
                Session::open(ctx)?.call(Method::POST, &path, Some(&json!({"window": window})))?;
            if ctx.json {
                return crate::output::json(&v);
            }
            println!("Approved {id} ({window}).");
            Ok(())
        }
        TeamCmd::Deny { id, reason } => {
            let path = format!("/team/v1/approvals/{}/deny", segment(&id)?);
            let v =
                Session::open(ctx)?.call(Method::POST, &path, Some(&json!({"reason": reason})))?;
            if ctx.json {
                return crate::output::json(&v);
            }
            println!("Denied {id}.");
            Ok(())
        }
        TeamCmd::Export { out } => {
            let v = Session::open(ctx)?.call(Method::GET, "/team/v1/audit/export", None)?;
            let bundle = v["bundle"].as_str().unwrap_or_default();
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&out)
                .map_err(|e| fail(7, format!("could not create {} ({e})", out.display())))?;
            std::io::Write::write_all(&mut f, bundle.as_bytes())
                .map_err(|e| fail(7, format!("could not write {} ({e})", out.display())))?;
            let fp = v["key_fingerprint"].as_str().unwrap_or_default();
            if ctx.json {
                return crate::output::json(&json!({
                    "out": out, "events": v["events"], "key_fingerprint": fp,
                }));
            }
            println!(
                "Wrote {} ({} events), sealed by the issuer key {fp}. Check that fingerprint \
                 against one you trust (the team's JWKS, or an earlier report) when you verify.",
                out.display(),
                v["events"]
            );
            Ok(())
        }
        TeamCmd::Watch { after } => watch(ctx, after),
        TeamCmd::Audit { limit } => {
            let path = format!("/team/v1/audit?limit={}", limit.clamp(1, 1000));
            let v = Session::open(ctx)?.call(Method::GET, &path, None)?;
            if ctx.json {
                return crate::output::json(&v);
            }
            let mut t = crate::output::table(&["Seq", "Time", "Who", "Action", "Decision"]);
            for e in v.as_array().into_iter().flatten() {
                t.add_row(vec![
                    e["seq"].to_string(),
                    e["time"].as_str().unwrap_or("").to_string(),
                    e["actor"]["name"]
                        .as_str()
                        .or(e["actor"]["part"].as_str())
                        .unwrap_or("")
                        .to_string(),
                    e["action"].as_str().unwrap_or("").to_string(),
                    e["decision"].as_str().unwrap_or("").to_string(),
                ]);
            }
            println!("{t}");
            Ok(())
        }
    }
}

/// `mandate team watch`: follow the event stream, reconnecting with the last seq seen after a
/// token expiry (with a new token) or a lost connection (after 1, 2, 4... up to 10 s).
fn watch(ctx: &mut Ctx, after: Option<u64>) -> CliResult {
    let s = Session::open(ctx)?;
    let json = ctx.json;
    let mut after = after;
    let mut fresh = false;
    let mut backoff = 1u64;
    loop {
        let accepted = std::sync::atomic::AtomicBool::new(false);
        let opened = s.rt.block_on(s.inner.watch(
            after,
            fresh,
            || accepted.store(true, std::sync::atomic::Ordering::Relaxed),
            |e| {
                print_event(&e.event, json);
            },
        ));
        // A server that accepted the stream is up: the next try after it ends is quick.
        if accepted.load(std::sync::atomic::Ordering::Relaxed) {
            backoff = 1;
        }
        match opened {
            Ok(end) => {
                after = end.last_seq.or(after);
                match end.reason.as_str() {
                    "token_expired" => fresh = true,
                    "member_removed" => {
                        return Err(fail(
                            9,
                            format!("the team server ended the stream: {}", end.message),
                        ));
                    }
                    _ => {
                        eprintln!("{}; reconnecting in {backoff} s", end.message);
                        std::thread::sleep(std::time::Duration::from_secs(backoff));
                        backoff = (backoff * 2).min(10);
                        fresh = false;
                    }
                }
            }
            // A token the server no longer takes: once more with a new one.
            Err(SessionError::Client(ClientError::Refused { error, .. }))
                if error == "invalid_token" && !fresh =>
            {
                s.inner.forget_token();
                fresh = true;
            }
            Err(
                e @ (SessionError::Client(ClientError::Refused { .. })
                | SessionError::Core(_)
                | SessionError::NotJoined(_)),
            ) => {
                return Err(session_error(e));
            }
            Err(e) => {
                eprintln!("{e}; reconnecting in {backoff} s");
                std::thread::sleep(std::time::Duration::from_secs(backoff));
                backoff = (backoff * 2).min(10);
            }
        }
    }
}

/// One event as `mandate team watch` prints it (flushed at once, for pipes).
fn print_event(e: &Value, json: bool) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = if json {
        writeln!(out, "{e}")
    } else {
        writeln!(
            out,
            "{seq:>8}  {time}  {who:<20}  {action:<28}  {decision}{target}",
            seq = e["seq"],
            time = e["time"].as_str().unwrap_or("").get(..19).unwrap_or(""),
            who = e["actor"]["name"].as_str().unwrap_or(""),
            action = e["action"].as_str().unwrap_or(""),
            decision = e["decision"].as_str().unwrap_or(""),
            target = e["target"]["name"]
                .as_str()
                .map(|t| format!("  {t}"))
                .unwrap_or_default(),
        )
    };
    let _ = out.flush();
}

/// A name or id as one URL path segment (names and ids are letters, digits and dashes).
fn segment(s: &str) -> CliResult<String> {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        Ok(s.to_string())
    } else {
        Err(fail(3, format!("'{s}' is not a name or an id")))
    }
}

/// List connections or MCP servers.
fn list_registry(ctx: &mut Ctx, path: &str) -> CliResult {
    let v = Session::open(ctx)?.call(Method::GET, path, None)?;
    if ctx.json {
        return crate::output::json(&v);
    }
    let mut t = crate::output::table(&["Name", "Trust floor", "Credential", "Agents"]);
    for x in v.as_array().into_iter().flatten() {
        let agents = x["granted_to"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        t.add_row(vec![
            x["name"].as_str().unwrap_or("").to_string(),
            x["trust_floor"].as_str().unwrap_or("").to_string(),
            if x["has_secret"] == true {
                "set"
            } else {
                "missing"
            }
            .to_string(),
            agents,
        ]);
    }
    println!("{t}");
    Ok(())
}

/// Remove a connection or an MCP server (`kind` is the route's word for it).
fn remove_registry(ctx: &mut Ctx, kind: &str, name: &str) -> CliResult {
    let path = format!("/team/v1/{kind}/{}", segment(name)?);
    let v = Session::open(ctx)?.call(Method::DELETE, &path, None)?;
    if ctx.json {
        return crate::output::json(&v);
    }
    println!("Removed {name} (recorded in your name).");
    Ok(())
}

fn change(ctx: &mut Ctx, verb: &str, done: &str, a: AgentArgs) -> CliResult {
    let path = format!("/team/v1/agents/{}/{verb}", segment(&a.agent)?);
    let v = Session::open(ctx)?.call(Method::POST, &path, Some(&json!({"reason": a.reason})))?;
    if ctx.json {
        return crate::output::json(&v);
    }
    println!("{done} {} (recorded in your name).", a.agent);
    Ok(())
}

fn join(ctx: &mut Ctx, a: JoinArgs) -> CliResult {
    let m = ctx.mandate()?;
    let (trust, record) = match (&a.server_ca, &a.server_fingerprint) {
        (Some(ca), _) => {
            let pem = std::fs::read_to_string(ca).map_err(|e| {
                fail(
                    3,
                    format!("the CA file {} cannot be read ({e})", ca.display()),
                )
            })?;
            (
                ServerTrust::Ca(pem.clone().into_bytes()),
                ServerTrustRecord::Ca(pem),
            )
        }
        (None, Some(fp)) => (
            ServerTrust::fingerprint(fp).map_err(|e| fail(3, e))?,
            ServerTrustRecord::Fingerprint(fp.clone()),
        ),
        (None, None) => (ServerTrust::WebPki, ServerTrustRecord::WebPki),
    };
    // Checked before anything is made: a bad URL or pin fails here.
    let server = RemoteServer::new(&a.url, trust).map_err(|e| fail(3, e))?;
    let rt = super::serve::runtime()?;
    let joined = rt
        .block_on(member_session::join(
            &m,
            server.url(),
            record,
            Sensitive::new(a.code),
        ))
        .map_err(session_error)?;
    let (member, role, kid) = (joined.member, joined.role, joined.kid);
    // Every connected machine witnesses the log by default. A failure here does not undo
    // the join: it is said, with the command that finishes it.
    let witness = if a.no_witness {
        None
    } else {
        Some(witness_enrolment(ctx, None))
    };
    if ctx.json {
        return crate::output::json(&json!({
            "server": server.url(), "member": member, "role": role, "kid": kid,
            "witness": match &witness {
                Some(Ok(w)) => json!({"name": w.name, "cosigned_size": w.cosigned_size}),
                Some(Err(e)) => json!({"error": e.to_string()}),
                None => Value::Null,
            },
        }));
    }
    println!(
        "Joined {url} as {member} ({role}). Your member key {kid} is in {keychain}; the server \
         has only its public half.",
        url = server.url(),
        keychain = m.keychain_description(),
    );
    match witness {
        Some(Ok(w)) => println!("{}", w.sentence()),
        Some(Err(e)) => eprintln!(
            "This machine could not enrol as a witness of the team's log ({e}); run `mandate \
             team witness enrol` to try again."
        ),
        None => {}
    }
    Ok(())
}

/// The team server this machine's person joined, trusted as they chose at `join`.
pub(crate) fn joined_server(m: &Mandate) -> CliResult<RemoteServer> {
    let membership = m.team_membership()?.ok_or_else(not_joined)?;
    RemoteServer::new(&membership.url, trust_of(&membership.trust)?).map_err(|e| fail(3, e))
}

fn not_joined() -> CliError {
    fail(
        5,
        "you have not joined a team server on this machine; ask an admin for an invite and run \
         `mandate team join URL CODE`"
            .into(),
    )
}

/// This machine enrolled as a witness of the team's log.
struct Enrolled {
    name: String,
    /// The checkpoint it cosigned at once, if the log had one.
    cosigned_size: Option<u64>,
}

impl Enrolled {
    fn sentence(&self) -> String {
        match self.cosigned_size {
            Some(n) => format!(
                "This machine witnesses the team's log as {}: it cosigned the checkpoint of {n} \
                 events, and refuses any later one that rewrites them.",
                self.name
            ),
            None => format!(
                "This machine witnesses the team's log as {}; it cosigns each new checkpoint \
                 with `mandate team witness sync` (the desktop app does it by itself).",
                self.name
            ),
        }
    }
}

/// `mandate team witness enrol`.
pub(crate) fn enrol_witness(ctx: &mut Ctx, name: Option<&str>) -> CliResult {
    let w = witness_enrolment(ctx, name)?;
    if ctx.json {
        return crate::output::json(&json!({"name": w.name, "cosigned_size": w.cosigned_size}));
    }
    println!("{}", w.sentence());
    Ok(())
}

/// Make (or reuse) this machine's witness key, register it in the member's name and sync
/// once ([`MemberSession::enrol_witness`]).
fn witness_enrolment(ctx: &mut Ctx, name: Option<&str>) -> CliResult<Enrolled> {
    let s = Session::open(ctx)?;
    let w =
        s.rt.block_on(s.inner.enrol_witness(name))
            .map_err(session_error)?;
    Ok(Enrolled {
        name: w.name,
        cosigned_size: Some(w.cosigned_size),
    })
}

fn invite(ctx: &mut Ctx, a: InviteArgs) -> CliResult {
    let role = Role::parse(&a.role).ok_or_else(|| {
        fail(
            3,
            format!("'{}' is not a role: admin, member or auditor", a.role),
        )
    })?;
    let m = ctx.mandate()?;
    let (name, role, code, expires, url) = if m.team_public_url()?.is_some() {
        // The server host (its PKCS#11 token): only while no admin has joined.
        let inv = m.invite_member(&a.name, a.email.as_deref(), role, a.ttl)?;
        (
            inv.member.name.as_str().to_string(),
            inv.role.as_str().to_string(),
            inv.code.expose().clone(),
            inv.expires_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            m.team_public_url()?.unwrap_or_default(),
        )
    } else {
        let s = Session::open(ctx)?;
        let v = s.call(
            Method::POST,
            "/team/v1/members",
            Some(&json!({"name": a.name, "role": role.as_str(), "email": a.email})),
        )?;
        (
            v["member"].as_str().unwrap_or_default().to_string(),
            v["role"].as_str().unwrap_or_default().to_string(),
            v["code"].as_str().unwrap_or_default().to_string(),
            v["expires_at"].as_str().unwrap_or_default().to_string(),
            s.membership.url.clone(),
        )
    };
    if ctx.json {
        return crate::output::json(&json!({
            "member": name, "role": role, "invite_code": code, "invite_expires_at": expires,
            "server": url,
        }));
    }
    println!(
        "Invited {name} as {role}.\nInvite code (shown once; one use; valid until {expires}):\n  \
         {code}\nThey join with `mandate team join {url} CODE`."
    );
    Ok(())
}

/// Signed in as this machine's member of the team server they joined (the shared
/// [`MemberSession`], driven from this synchronous command line).
struct Session {
    inner: MemberSession,
    membership: Membership,
    rt: tokio::runtime::Runtime,
}

impl Session {
    fn open(ctx: &mut Ctx) -> CliResult<Session> {
        let inner = MemberSession::open(ctx.mandate()?)
            .map_err(session_error)?
            .ok_or_else(not_joined)?;
        let rt = super::serve::runtime()?;
        Ok(Session {
            membership: inner.membership.clone(),
            inner,
            rt,
        })
    }

    fn call(&self, method: Method, path: &str, body: Option<&Value>) -> CliResult<Value> {
        self.rt
            .block_on(self.inner.call(method, path, body))
            .map_err(session_error)
    }
}

fn session_error(e: SessionError) -> CliError {
    match e {
        SessionError::Client(c) => client_error(c),
        SessionError::Core(c) => CliError::from(c),
        SessionError::NotJoined(why) => fail(3, why),
    }
}
