//! `mandate exec AGENT [--scope S]... -- CMD [ARGS]`: run a program as an agent, the way
//! `op run` and `aws-vault exec` do, except that the program never gets the real credential.
//!
//! It asks the running endpoint for a token (signed with the agent's key from the keychain,
//! like `mandate token`, and only after the endpoint proved it is this data folder's own), then
//! starts CMD with:
//!
//! - `MANDATE_<CONNECTION>_URL` (e.g. `MANDATE_GITHUB_URL`) for every connection the token has
//!   scopes on: the broker's `http://127.0.0.1:PORT/proxy/<connection>`;
//! - the base-URL variables of the connection's preset (`GITHUB_API_URL`, `OPENAI_BASE_URL`,
//!   `ANTHROPIC_BASE_URL`...) set to the same URL, and the preset SDK's key variables
//!   (`OPENAI_API_KEY`, `GITHUB_TOKEN`, `ANTHROPIC_AUTH_TOKEN`...) set to the *Mandate token*;
//! - `MANDATE_TOKEN` (the first token; environment variables cannot change later) and
//!   `MANDATE_TOKEN_FILE`, a file (mode 0600, in a private 0700 folder removed at exit) that a
//!   background refresher rewrites atomically before each token expires: long-running
//!   programs read the file;
//! - `MANDATE_AGENT`;
//! - for each database connection the token holds `NAME:connect` on, the database URL itself
//!   in the connection's variable (`DATABASE_URL` by default). A database cannot be brokered,
//!   so this is the one real secret a program is given; the core checks the token and audits
//!   each hand-over (`secret.handed_over`), and the program holds the URL while it runs.
//!
//! Other real secrets are never put in the child's environment, arguments or files, and any
//! inherited variable that holds a connection's real secret (a founder's shell often exports
//! `OPENAI_API_KEY`) is removed, as are the variables a preset's SDK would read a real key from.
//! SIGINT, SIGTERM, SIGHUP and SIGQUIT are forwarded to the child; its exit code (or 128 +
//! signal) is ours.
//!
//! With `--server URL` (an agent on another machine) the token comes from the team server
//! (`cmd::remote`: the agent's key file, the server's certificate trusted as told) and the
//! `MANDATE_<CONNECTION>_URL` variables point at that server's broker
//! (`https://HOST:PORT/proxy/<connection>`); with `--server-ca`, the usual CA-bundle
//! variables (`SSL_CERT_FILE`, `REQUESTS_CA_BUNDLE`, `CURL_CA_BUNDLE`, `NODE_EXTRA_CA_CERTS`)
//! name that file so the program's HTTP client trusts the broker too. The presets' SDK
//! variables need the registry, which stays on the server, so only the `MANDATE_*` variables
//! are set there.
//!
//! What it is not: a sandbox. The child runs as the same OS user; keeping the credential away
//! from it is about not *handing* it over (environment, files, logs, model context), not about
//! stopping a hostile program from asking the OS keychain itself.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use ed25519_dalek::SigningKey;
use mandate_core::Mandate;
use mandate_core::broker::{self, HandedOver, presets};
use mandate_core::model::DATABASE_ACTION;
use mandate_core::oauth::{EndpointConfig, TokenService};
use mandate_core::secret::Sensitive;
use mandate_server::client::EndpointAddr;

use crate::context::{CliError, CliResult, Ctx};

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The agent to run the program as.
    agent: String,
    /// A scope to ask for (repeatable); none: all of the agent's grants.
    #[arg(long = "scope", value_name = "S")]
    scopes: Vec<String>,
    /// The endpoint's port (default: the running endpoint's, else MANDATE_PORT, else 6263).
    #[arg(long, value_name = "N")]
    port: Option<u16>,
    #[command(flatten)]
    remote: super::remote::RemoteArgs,
    /// The program and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

fn fail(code: u8, message: String) -> CliError {
    CliError::Exit { code, message }
}

/// A token from the endpoint. The token prints as `[REDACTED]`.
#[derive(Debug)]
struct Fetched {
    token: Sensitive<String>,
    expires_in: u64,
    scope: String,
}

/// Where tokens come from: this machine's endpoint, or a team server.
#[derive(Debug, Clone)]
enum Issuer {
    Local { m: Arc<Mandate>, addr: EndpointAddr },
    Team(mandate_server::remote::RemoteServer),
}

/// What a refresh needs.
#[derive(Debug, Clone)]
struct Source {
    agent: String,
    kid: String,
    key: SigningKey,
    scopes: Vec<String>,
    issuer: Issuer,
}

async fn fetch(s: &Source) -> CliResult<Fetched> {
    let now = chrono::Utc::now().timestamp();
    let res = match &s.issuer {
        Issuer::Local { m, addr } => {
            mandate_server::client::request_token(
                m,
                addr,
                &mandate_server::client::TokenRequest {
                    agent: &s.agent,
                    kid: &s.kid,
                    key: &s.key,
                    scopes: &s.scopes,
                    resource: None,
                    now,
                },
            )
            .await
        }
        Issuer::Team(server) => {
            mandate_server::remote::request_token(
                server,
                &mandate_server::remote::RemoteTokenRequest {
                    agent: &s.agent,
                    kid: &s.kid,
                    key: &s.key,
                    scopes: &s.scopes,
                    resource: None,
                    now,
                },
            )
            .await
        }
    }
    .map_err(|e| fail(e.exit_code(), e.to_string()))?;
    if let Some(d) = &res.withheld_description {
        eprintln!("mandate exec: note: {d}");
    }
    Ok(Fetched {
        token: Sensitive::new(res.access_token),
        expires_in: res.expires_in,
        scope: res.scope.unwrap_or_default(),
    })
}

/// A private folder (0700) holding the token file; removed when dropped.
#[derive(Debug)]
struct PrivateDir(PathBuf);

impl PrivateDir {
    fn create() -> CliResult<Self> {
        let path = std::env::temp_dir().join(format!("mandate-exec-{}", uuid::Uuid::new_v4()));
        let mut b = std::fs::DirBuilder::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(&path).map_err(|e| {
            fail(
                1,
                format!("could not create a private folder for the token file: {e}"),
            )
        })?;
        Ok(PrivateDir(path))
    }

    fn token_file(&self) -> PathBuf {
        self.0.join("token")
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Replace the token file atomically (a new 0600 file renamed over the old one), so a reader
/// never sees half a token.
fn write_token(file: &Path, token: &Sensitive<String>) -> std::io::Result<()> {
    let tmp = file.with_extension(format!("tmp-{}", uuid::Uuid::new_v4()));
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(&tmp)?;
    f.write_all(token.expose().as_bytes())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, file).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Seconds until the next refresh: two thirds of the lifetime, at least 60 s before expiry
/// where the lifetime allows, never under 1 s.
fn refresh_after(expires_in: u64) -> u64 {
    let two_thirds = expires_in * 2 / 3;
    let before = expires_in.saturating_sub(60);
    two_thirds.min(before.max(expires_in / 2)).max(1)
}

/// Variables to set and to remove in the child's environment.
#[derive(Debug)]
struct ChildEnv {
    set: Vec<(String, String)>,
    remove: Vec<String>,
}

/// The child's environment: ours, minus real secrets and SDK key variables, plus the proxy
/// URLs and the Mandate token.
fn child_env(
    m: &Mandate,
    port: u16,
    agent: &str,
    first: &Fetched,
    token_file: &Path,
    handed: &[HandedOver],
) -> CliResult<ChildEnv> {
    let mut connections: Vec<&str> = first
        .scope
        .split_whitespace()
        .filter_map(|s| s.split_once(':').map(|(c, _)| c))
        .collect();
    connections.sort_unstable();
    connections.dedup();
    let mut set: Vec<(String, String)> = Vec::new();
    let mut remove: Vec<String> = Vec::new();
    let mut secrets: Vec<Sensitive<String>> = Vec::new();
    for c in &connections {
        if handed.iter().any(|h| h.connection == *c) {
            // A database: its URL is handed over below, and there is no proxy for it.
            if let Some(s) = m.connection_secret(c)? {
                secrets.push(s);
            }
            continue;
        }
        let url = format!("http://127.0.0.1:{port}{}/{c}", broker::PROXY_PREFIX);
        set.push((broker::url_var(c), url.clone()));
        let cfg = m.broker_config(c)?;
        if let Some(p) = cfg.preset.as_deref().and_then(presets::preset) {
            for v in p.url_vars {
                set.push((v.to_string(), url.clone()));
            }
            for v in p.token_vars {
                set.push((v.to_string(), first.token.expose().clone()));
            }
            remove.extend(p.scrub_vars.iter().map(|v| v.to_string()));
        }
        if let Some(s) = m.connection_secret(c)? {
            secrets.push(s);
        }
    }
    // Any inherited variable holding a real secret goes (a founder's shell often exports one).
    for (k, v) in std::env::vars_os() {
        let v = v.to_string_lossy();
        if secrets
            .iter()
            .any(|s| s.expose().len() >= 8 && v.contains(s.expose().as_str()))
        {
            let k = k.to_string_lossy().into_owned();
            eprintln!(
                "mandate exec: {k} holds a connection's real credential; the program does not \
                 get that value"
            );
            remove.push(k);
        }
    }
    set.push(("MANDATE_TOKEN".into(), first.token.expose().clone()));
    set.push((
        "MANDATE_TOKEN_FILE".into(),
        token_file.to_string_lossy().into_owned(),
    ));
    set.push(("MANDATE_AGENT".into(), agent.to_string()));
    for h in handed {
        set.push((h.variable.clone(), h.url.expose().clone()));
    }
    remove.push(mandate_pkcs11::PIN_ENV.into());
    remove.retain(|r| !set.iter().any(|(k, _)| k == r));
    Ok(ChildEnv { set, remove })
}

/// The child's environment for a team server's token: the broker URLs on that server, the
/// token, and the CA file for the program's HTTP client.
fn team_child_env(
    server: &mandate_server::remote::RemoteServer,
    ca_file: Option<&Path>,
    agent: &str,
    first: &Fetched,
    token_file: &Path,
) -> ChildEnv {
    let mut connections: Vec<&str> = first
        .scope
        .split_whitespace()
        .filter_map(|s| s.split_once(':').map(|(c, _)| c))
        .collect();
    connections.sort_unstable();
    connections.dedup();
    let mut set: Vec<(String, String)> = connections
        .iter()
        .map(|c| (broker::url_var(c), server.proxy_url(c)))
        .collect();
    if let Some(ca) = ca_file {
        let ca = ca.to_string_lossy().into_owned();
        for v in [
            "SSL_CERT_FILE",
            "REQUESTS_CA_BUNDLE",
            "CURL_CA_BUNDLE",
            "NODE_EXTRA_CA_CERTS",
        ] {
            set.push((v.into(), ca.clone()));
        }
    }
    set.push(("MANDATE_TOKEN".into(), first.token.expose().clone()));
    set.push((
        "MANDATE_TOKEN_FILE".into(),
        token_file.to_string_lossy().into_owned(),
    ));
    set.push(("MANDATE_AGENT".into(), agent.to_string()));
    set.push(("MANDATE_SERVER".into(), server.url().to_string()));
    ChildEnv {
        set,
        // A team server's PIN is never the program's business.
        remove: vec![mandate_pkcs11::PIN_ENV.into()],
    }
}

pub fn run(ctx: &mut Ctx, a: ExecArgs) -> CliResult {
    if let Some(r) = a.remote.resolve()? {
        let source = Source {
            agent: a.agent.clone(),
            kid: r.kid.clone(),
            key: r.key.clone(),
            scopes: a.scopes.clone(),
            issuer: Issuer::Team(r.server.clone()),
        };
        let ca = r.ca_file.clone();
        return launch(source, &a.command, None, move |first, file| {
            Ok(team_child_env(
                &r.server,
                ca.as_deref(),
                &a.agent,
                first,
                file,
            ))
        });
    }
    let m = ctx.mandate()?;
    let agent = m.get_agent(&a.agent)?;
    if agent.dpop_required {
        return Err(fail(
            5,
            format!(
                "'{}' must bind its tokens with DPoP, and a program started by `mandate exec` \
                 cannot make DPoP proofs with the agent's key; turn it off with `mandate agent \
                 edit {} --dpop-required false`, or have the program get its own DPoP tokens",
                agent.name, agent.name
            ),
        ));
    }
    let (kid, key) = m.client_signing_key(&a.agent)?;
    let port = a
        .port
        .or_else(|| mandate_server::lock::holder(m.data_dir()).map(|h| h.port))
        .or_else(|| {
            std::env::var(mandate_server::PORT_ENV)
                .ok()
                .and_then(|p| p.parse().ok())
        })
        .unwrap_or(mandate_server::DEFAULT_PORT);
    // The broker URLs handed to the program are plain HTTP; a program would have to be told
    // to trust the HTTPS endpoint's certificate, which exec cannot do for every SDK.
    if mandate_server::lock::holder(m.data_dir()).is_some_and(|h| h.tls && h.port == port) {
        return Err(fail(
            5,
            format!(
                "the endpoint on port {port} serves HTTPS only (`mandate serve --tls`), and \
                 `mandate exec` needs the plain-HTTP endpoint for now; run `mandate serve` \
                 without --tls for programs started by exec"
            ),
        ));
    }
    let source = Source {
        agent: agent.name.to_string(),
        kid,
        key,
        scopes: a.scopes.clone(),
        issuer: Issuer::Local {
            m: m.clone(),
            addr: EndpointAddr::http(port),
        },
    };
    let name = source.agent.clone();
    let mm = m.clone();
    launch(source, &a.command, Some(m), move |first, file| {
        let handed = hand_over(&mm, port, first)?;
        child_env(&mm, port, &name, first, file, &handed)
    })
}

/// Get the first token, start the program with the environment `env` makes, refresh the
/// token file until the program ends, and leave with its exit code. `m`, when there is one,
/// is closed before leaving.
fn launch(
    source: Source,
    command: &[String],
    m: Option<Arc<Mandate>>,
    env: impl FnOnce(&Fetched, &Path) -> CliResult<ChildEnv>,
) -> CliResult {
    let rt = super::serve::runtime()?;
    let code = rt.block_on(async {
        let first = fetch(&source).await?;
        let dir = PrivateDir::create()?;
        let file = dir.token_file();
        write_token(&file, &first.token)
            .map_err(|e| fail(1, format!("could not write the token file: {e}")))?;
        let ChildEnv { set, remove } = env(&first, &file)?;
        let (program, args) = command
            .split_first()
            .ok_or_else(|| fail(2, "give the program to run after --".into()))?;
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args);
        for r in &remove {
            cmd.env_remove(r);
        }
        cmd.envs(set.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let mut child = cmd.spawn().map_err(|e| {
            fail(
                if e.kind() == std::io::ErrorKind::NotFound {
                    127
                } else {
                    126
                },
                format!("could not start {program}: {e}"),
            )
        })?;
        drop(set);

        let refresher = {
            let source = source.clone();
            let file = file.clone();
            let mut wait = refresh_after(first.expires_in);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(wait)).await;
                    match fetch(&source).await {
                        Ok(t) => {
                            wait = refresh_after(t.expires_in);
                            if let Err(e) = write_token(&file, &t.token) {
                                eprintln!("mandate exec: could not refresh the token file: {e}");
                                wait = 10;
                            }
                        }
                        Err(e) => {
                            let why = match e {
                                CliError::Exit { message, .. } => message,
                                CliError::Core(e) => e.to_string(),
                            };
                            eprintln!("mandate exec: could not refresh the token ({why}); retrying in 10 s");
                            wait = 10;
                        }
                    }
                }
            })
        };
        let status = wait_forwarding_signals(&mut child).await;
        refresher.abort();
        drop(dir);
        status
    })?;
    drop(rt);
    drop(m);
    // Nothing is writing any more (the runtime is gone and the store was only read), so
    // leaving with the child's code is safe; a `CliError` would print an "error:" line.
    std::process::exit(code)
}

/// The database URLs the first token entitles the program to (see
/// `mandate_core::broker::handover`): checked and audited by the core.
fn hand_over(m: &Arc<Mandate>, port: u16, first: &Fetched) -> CliResult<Vec<HandedOver>> {
    if !first
        .scope
        .split_whitespace()
        .any(|s| s.ends_with(&format!(":{DATABASE_ACTION}")))
    {
        return Ok(Vec::new());
    }
    let svc = TokenService::new(
        m.clone(),
        EndpointConfig::new(format!("http://127.0.0.1:{port}")),
    )?;
    let handed = svc.hand_over_database_urls(&first.token)?.map_err(|why| {
        fail(
            9,
            format!("mandate exec will not hand the program a database URL: {why}"),
        )
    })?;
    for h in &handed {
        eprintln!(
            "mandate exec: the program gets the URL of database connection '{}' as {}, and \
             holds it while it runs",
            h.connection, h.variable
        );
    }
    Ok(handed)
}

/// Wait for the child, passing on SIGINT, SIGTERM, SIGHUP and SIGQUIT; its exit code, or
/// 128 + the signal that ended it.
async fn wait_forwarding_signals(child: &mut tokio::process::Child) -> CliResult<i32> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let pid = child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .and_then(rustix::process::Pid::from_raw);
        let mk = |k: SignalKind| {
            signal(k).map_err(|e| fail(1, format!("could not listen for signals: {e}")))
        };
        let (mut int, mut term, mut hup, mut quit) = (
            mk(SignalKind::interrupt())?,
            mk(SignalKind::terminate())?,
            mk(SignalKind::hangup())?,
            mk(SignalKind::quit())?,
        );
        use rustix::process::Signal;
        loop {
            let sig = tokio::select! {
                st = child.wait() => {
                    let st = st.map_err(|e| fail(1, format!("could not wait for the program: {e}")))?;
                    use std::os::unix::process::ExitStatusExt;
                    return Ok(st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0)));
                }
                _ = int.recv() => Signal::INT,
                _ = term.recv() => Signal::TERM,
                _ = hup.recv() => Signal::HUP,
                _ = quit.recv() => Signal::QUIT,
            };
            if let Some(pid) = pid {
                let _ = rustix::process::kill_process(pid, sig);
            }
        }
    }
    #[cfg(not(unix))]
    {
        let st = child
            .wait()
            .await
            .map_err(|e| fail(1, format!("could not wait for the program: {e}")))?;
        Ok(st.code().unwrap_or(1))
    }
}

#[cfg(test)]
mod tests {
    use super::refresh_after;

    #[test]
    fn refreshes_well_before_expiry() {
        assert_eq!(refresh_after(900), 600);
        assert_eq!(refresh_after(90), 45);
        assert_eq!(refresh_after(1), 1);
    }
}
