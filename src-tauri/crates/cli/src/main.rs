//! `mandate`: the headless face of Mandate. Each subcommand is a thin adapter: parse the
//! arguments, call the core API, print a table (or JSON with `--json`), map errors to the
//! documented exit codes. No business rule lives here.

mod cmd;
mod context;
mod output;
mod service;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use context::Ctx;

// mimalloc: glibc malloc cost the token endpoint (`mandate serve`) ~20 µs of CPU per token,
// mostly freeing and consolidating in the group committer (docs/BENCHMARKS.md, run M).
// (Not with the `system-allocator` feature, which exists for heap profiling only.)
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const AFTER_HELP: &str = "\
Environment:
  MANDATE_DATA_DIR          data folder (default: the OS convention, e.g. ~/.local/share/mandate)
  MANDATE_DATABASE_URL      a PostgreSQL database for the registry and audit trail instead of
                            SQLite in the data folder (postgres://USER@HOST:PORT/DB)
  MANDATE_PORT              port of the local token endpoint (default 6263)
  MANDATE_KEYCHAIN_SERVICE  keychain service name (default: mandate; debug builds: mandate-dev)
  MANDATE_ACTOR             the team member your changes name (as --as)
  MANDATE_PKCS11_MODULE     PKCS#11 module holding a team server's keys (as --pkcs11-module)
  MANDATE_PKCS11_TOKEN      that token's label (as --pkcs11-token)
  MANDATE_PKCS11_PIN        that token's user PIN (only ever read from the environment)

Who changes name: --as MEMBER (or MANDATE_ACTOR), else the member chosen for your OS login
with `mandate member use NAME` (the desktop app shares that choice), else your OS login name,
recorded as \"OS user NAME (no member chosen)\". `mandate member whoami` says which applies.

Exit codes:
  0   success
  1   unexpected failure
  2   usage error (unknown command or flag)
  3   invalid input (a name, scope, key or value broke a rule)
  4   not found (no such agent, member or connection)
  5   conflict (already exists, or not allowed in the current state, e.g. a revoked agent)
  6   keychain unavailable or locked
  7   storage or data-folder problem (newer database, unwritable folder, busy, disk full)
  8   the token endpoint is not running, did not answer, or could not prove it is this data
      folder's own (mandate token, mandate exec; nothing secret was sent), or the team server
      could not be reached (mandate team, --server)
  9   the request was refused: by the token endpoint, or before asking it (a revoked agent),
      or by the team server (mandate team: an invite code used or expired, a removed member,
      a change outside your role)
  10  audit verification failed (the trail, a bundle or a report was tampered with, is damaged
      or cut off, or is not signed by the key you trust)";

/// Give each AI agent its own identity: scopes, short-lived tokens, revocation and an
/// audit trail.
#[derive(Debug, Parser)]
#[command(name = "mandate", version, after_help = AFTER_HELP)]
struct Cli {
    /// Data folder to use instead of the default.
    #[arg(long, global = true, env = "MANDATE_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// Keep the registry and the audit trail in this PostgreSQL database (15 or newer) instead
    /// of SQLite in the data folder: postgres://USER[:PASSWORD]@HOST[:PORT]/DB. The data
    /// folder still holds this machine's files (checkpoint copy, key files, the endpoint lock).
    #[arg(
        long,
        global = true,
        env = "MANDATE_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    database: Option<String>,

    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,

    /// The team member your changes name in the audit trail (default: the one chosen with
    /// `mandate member use`, else your OS login name).
    #[arg(
        long = "as",
        global = true,
        env = "MANDATE_ACTOR",
        value_name = "MEMBER"
    )]
    as_member: Option<String>,

    /// A team server's keys: the PKCS#11 module (an HSM's library, or SoftHSM2's) holding the
    /// issuer key and the key secrets are sealed under. With --pkcs11-token; the PIN is read
    /// from MANDATE_PKCS11_PIN. No OS keychain is used then.
    #[arg(
        long,
        global = true,
        env = "MANDATE_PKCS11_MODULE",
        value_name = "PATH",
        requires = "pkcs11_token"
    )]
    pkcs11_module: Option<PathBuf>,

    /// The label of the PKCS#11 token in --pkcs11-module.
    #[arg(
        long,
        global = true,
        env = "MANDATE_PKCS11_TOKEN",
        value_name = "LABEL",
        requires = "pkcs11_module"
    )]
    pkcs11_token: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Team members: the people who own agents.
    #[command(subcommand)]
    Member(cmd::member::MemberCmd),
    /// Agents: register, inspect, change, suspend, revoke, rotate keys.
    #[command(subcommand)]
    Agent(cmd::agent::AgentCmd),
    /// Calls waiting for a person's approval: list, approve (once or for a time), deny.
    #[command(subcommand)]
    Approvals(cmd::approvals::ApprovalsCmd),
    /// Attestors: outside parties (an auditor, a CI pipeline) whose signed reviews count
    /// towards agents' trust scores, each within a bound.
    #[command(subcommand)]
    Attestor(cmd::attest::AttestorCmd),
    /// Signed review attestations (in-toto in DSSE): add one, list an agent's, print what to sign.
    #[command(subcommand)]
    Attest(cmd::attest::AttestCmd),
    /// The trust thresholds (TRUSTED / PENDING score) and the organisation's minimum score.
    Trust(cmd::attest::TrustArgs),
    /// Connections: the systems agents reach, and their credentials in the OS keychain.
    #[command(subcommand)]
    Connection(cmd::connection::ConnectionCmd),
    /// Find credentials in an agent's project folder (masked; nothing is changed), move one
    /// into the keychain (--move), or undo a move (--undo, --moves).
    Scan(cmd::scan::ScanArgs),
    /// Run the localhost token endpoint (127.0.0.1, default port 6263) without the app.
    Serve(cmd::serve::ServeArgs),
    /// A team server you belong to: join it with an invite, invite others, and manage the
    /// team's agents, approvals and members under your role, signed in with your own key; and
    /// witness its audit log (`mandate team witness`).
    #[command(subcommand)]
    Team(cmd::team::TeamCmd),
    /// Run the team server: the endpoint for agents on other machines, over HTTPS, with keys in a PKCS#11 token.
    Server(cmd::server::ServerArgs),
    /// Run the endpoint at every login, so agents get tokens while the app is closed.
    #[command(subcommand)]
    Service(cmd::service::ServiceCmd),
    /// Print a fresh access token for an agent whose key is in the keychain (--json: the whole response).
    Token(cmd::token::TokenArgs),
    /// Run a program as an agent: proxy URLs and a fresh Mandate token in its environment, never an API's real key; a database's URL only under its NAME:connect scope (audited).
    Exec(cmd::exec::ExecArgs),
    /// MCP servers: register them, their tools as scopes (SERVER:tool), and the gateway
    /// (`mandate mcp run`) that shows each agent only its tools and audits every call.
    #[command(subcommand)]
    Mcp(cmd::mcp::McpCmd),
    /// Delegations: let an agent act for a team member, for a task, until a time.
    #[command(subcommand)]
    Delegation(cmd::delegation::DelegationCmd),
    /// The issuer's public keys (JWKS) for resource servers.
    #[command(subcommand)]
    Jwks(cmd::jwks::JwksCmd),
    /// The HTTPS endpoint's certificate (`serve --tls`): export it for clients to trust, rotate it.
    #[command(subcommand)]
    Tls(cmd::tls::TlsCmd),
    /// The audit trail: verify it, export it (PDF, evidence bundle, OCSF), checkpoints.
    #[command(subcommand)]
    Audit(cmd::audit::AuditCmd),
    /// The organisation name on the cover of audit reports (the app's Settings share it).
    Org(cmd::org::OrgArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    context::init_tracing();
    let pkcs11 = match (cli.pkcs11_module, cli.pkcs11_token) {
        (Some(module), Some(label)) => Some(mandate_pkcs11::TokenSpec { module, label }),
        _ => None,
    };
    let mut ctx = Ctx::new(cli.data_dir, cli.database, cli.json, cli.as_member).pkcs11(pkcs11);
    let result = match cli.command {
        Command::Member(c) => cmd::member::run(&mut ctx, c),
        Command::Agent(c) => cmd::agent::run(&mut ctx, c),
        Command::Approvals(c) => cmd::approvals::run(&mut ctx, c),
        Command::Attestor(c) => cmd::attest::run_attestor(&mut ctx, c),
        Command::Attest(c) => cmd::attest::run_attest(&mut ctx, c),
        Command::Trust(a) => cmd::attest::run_trust(&mut ctx, a),
        Command::Connection(c) => cmd::connection::run(&mut ctx, c),
        Command::Scan(a) => cmd::scan::run(&mut ctx, a),
        Command::Serve(a) => cmd::serve::run(&mut ctx, a),
        Command::Server(a) => cmd::server::run(&mut ctx, a),
        Command::Team(c) => cmd::team::run(&mut ctx, c),
        Command::Service(c) => cmd::service::run(&mut ctx, c),
        Command::Token(a) => cmd::token::run(&mut ctx, a),
        Command::Exec(a) => cmd::exec::run(&mut ctx, a),
        Command::Mcp(c) => cmd::mcp::run(&mut ctx, c),
        Command::Delegation(c) => cmd::delegation::run(&mut ctx, c),
        Command::Jwks(c) => cmd::jwks::run(&mut ctx, c),
        Command::Tls(c) => cmd::tls::run(&mut ctx, c),
        Command::Audit(c) => cmd::audit::run(&mut ctx, c),
        Command::Org(a) => cmd::org::run(&mut ctx, a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => ctx.report_error(&e),
    }
}
