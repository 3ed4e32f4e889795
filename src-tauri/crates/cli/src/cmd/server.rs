//! `mandate server`: the team server. The same token endpoint, broker and audit trail as
//! `mandate serve`, for agents on other machines: on a network address, HTTPS with the
//! operator's certificate, the public URL as issuer and Host allow-list, rate limits per agent
//! and per source address (`mandate_server::team`).
//!
//! - `mandate server init --public-url URL --admin NAME` records the public URL, makes the
//!   issuer key (in the PKCS#11 token given with `--pkcs11-module`/`--pkcs11-token`), the first
//!   admin and their one-time invite code (printed once; only its hash is stored).
//! - `mandate server --listen ADDR --tls-cert FILE --tls-key FILE` serves until SIGTERM or
//!   Ctrl-C, finishing requests in flight (their audit events commit first).
//! - `mandate server rotate-secrets-key` seals every secret again under a new key in the token.
//!
//! Keys and secrets: with `--pkcs11-module` and `--pkcs11-token` (PIN in `MANDATE_PKCS11_PIN`)
//! the issuer key signs inside the token and secrets are sealed in the database under the
//! token's AES key; nothing needs an OS keychain (see `docs/TEAM_SERVER.md`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use mandate_core::oauth::RateLimit;
use mandate_server::team::{DEFAULT_PER_SOURCE, TeamOptions, TlsFiles};
use mandate_server::{ServeError, ServeOptions};

use crate::context::{CliError, CliResult, Ctx};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ServerArgs {
    #[command(subcommand)]
    command: Option<ServerCmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum ServerCmd {
    /// Make this database a team server's: its public URL, the issuer key, the first admin
    /// and their one-time invite code.
    Init(InitArgs),
    /// Seal every connection secret again under a new key in the PKCS#11 token, then destroy
    /// the old key (audited).
    RotateSecretsKey,
}

#[derive(Debug, Args)]
struct InitArgs {
    /// The URL agents will use, which becomes the issuer: https://HOST[:PORT].
    #[arg(long, value_name = "URL")]
    public_url: String,
    /// The first admin's member name (lowercase, digits, dashes).
    #[arg(long, value_name = "NAME")]
    admin: String,
    /// The first admin's email address.
    #[arg(long, value_name = "EMAIL")]
    email: Option<String>,
    /// How long the invite code stays valid (at most 7d).
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = super::parse_duration)]
    invite_ttl: chrono::Duration,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Address and port to listen on. Off loopback, --tls-cert and --tls-key are required.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8443")]
    listen: SocketAddr,
    /// The public URL (as given to `mandate server init`; refused if it differs).
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// The server certificate chain (PEM) for the public URL's host.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM; not readable by every user).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Requests per minute from one source address (bursts of a tenth of it).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_PER_SOURCE.per_minute)]
    source_rate_limit: u32,
    /// Seconds between two refreshes of the agents' behaviour signals from the audit trail
    /// (default 10, from 1 to 3600), off the request path.
    #[arg(long, env = "MANDATE_TRUST_REFRESH_SECS", value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    trust_refresh_secs: Option<u64>,
    /// Turn off the per-agent and per-source rate limits (benchmarks only).
    #[arg(long, hide = true)]
    no_rate_limit: bool,
}

fn fail(code: u8, message: String) -> CliError {
    CliError::Exit { code, message }
}

pub fn run(ctx: &mut Ctx, a: ServerArgs) -> CliResult {
    match a.command {
        Some(ServerCmd::Init(i)) => init(ctx, i),
        Some(ServerCmd::RotateSecretsKey) => rotate(ctx),
        None => serve(ctx, a.run),
    }
}

fn init(ctx: &mut Ctx, a: InitArgs) -> CliResult {
    let m = ctx.mandate()?;
    let t = m.init_team(&a.public_url, &a.admin, a.email.as_deref(), a.invite_ttl)?;
    let expires = t
        .invite_expires_at
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    if ctx.json {
        return crate::output::json(&serde_json::json!({
            "public_url": t.public_url,
            "issuer_kid": t.issuer_kid,
            "issuer_keys": m.issuer_keys_description(),
            "admin": {"id": t.admin.id, "name": t.admin.name},
            "invite_code": t.invite_code.expose(),
            "invite_expires_at": expires,
        }));
    }
    print!(
        "Team server initialised for {url}\n\
         Issuer key: {kid} (in {vault})\n\
         First admin: {name}\n\
         Invite code for {name} (shown once; one use; valid until {expires}):\n  {code}\n\
         Give it to {name} with the URL; they enrol their own key with \
         `mandate team join {url} CODE`.\n",
        url = t.public_url,
        kid = t.issuer_kid,
        vault = m.issuer_keys_description(),
        name = t.admin.name,
        code = t.invite_code.expose(),
    );
    Ok(())
}

fn rotate(ctx: &mut Ctx) -> CliResult {
    let m = ctx.mandate()?;
    let r = m.rotate_sealing_key()?;
    if ctx.json {
        return crate::output::json(&serde_json::json!({
            "key": r.key, "retired": r.retired, "secrets": r.secrets,
        }));
    }
    println!(
        "Sealed {} secret(s) again under a new key in {}; {} old key(s) destroyed.",
        r.secrets,
        m.keychain_description(),
        r.retired.len()
    );
    Ok(())
}

fn serve(ctx: &mut Ctx, a: RunArgs) -> CliResult {
    let m = ctx.mandate()?;
    let recorded = m.team_public_url()?.ok_or_else(|| {
        fail(
            5,
            "this database is not a team server's yet; run `mandate server init --public-url \
             https://HOST:PORT --admin NAME` first"
                .into(),
        )
    })?;
    let public_url = match a.public_url {
        Some(u) => {
            let u = mandate_core::team::check_public_url(&u)?;
            if u != recorded {
                return Err(fail(
                    5,
                    format!(
                        "--public-url {u} differs from this team server's public URL {recorded}; \
                         every instance must use the recorded one (it is the issuer agents \
                         address)"
                    ),
                ));
            }
            u
        }
        None => recorded,
    };
    let mut opts = ServeOptions::default();
    if let Some(t) = a.trust_refresh_secs {
        opts.trust_refresh = std::time::Duration::from_secs(t);
    }
    let per_source = if a.no_rate_limit {
        opts.rate_limit = None;
        None
    } else {
        Some(RateLimit {
            per_minute: a.source_rate_limit,
            burst: (a.source_rate_limit / 10).max(1),
        })
    };
    let team = TeamOptions {
        listen: a.listen,
        public_url: public_url.clone(),
        tls: match (a.tls_cert, a.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            _ => None,
        },
        per_source,
    };
    let rt = super::serve::runtime()?;
    rt.block_on(async move {
        let mut server = mandate_server::serve_team(m.clone(), opts, team)
            .await
            .map_err(|e| match e {
                ServeError::Core(e) => CliError::Core(e),
                other => fail(5, other.to_string()),
            })?;
        print!(
            "Team server listening on {addr}\nIssuer: {public_url}\nIssuer key: {keys}\n\
             Secrets: {secrets}\n",
            addr = server.addr(),
            keys = m.issuer_keys_description(),
            secrets = m.keychain_description(),
        );
        let stop = server.stopper();
        tokio::spawn(async move {
            super::serve::shutdown_signal().await;
            if let Some(s) = stop {
                let _ = s.send(());
            }
        });
        server
            .wait()
            .await
            .map_err(|e| fail(1, format!("the team server stopped: {e}")))
    })
}
