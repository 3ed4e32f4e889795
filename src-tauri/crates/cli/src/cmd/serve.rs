//! `mandate serve`: run the localhost token endpoint without the app window.
//!
//! The same server the desktop app runs (`mandate_server::serve`): 127.0.0.1 only, one process
//! per data folder. It prints the address it listens on and stops cleanly on Ctrl-C or
//! SIGTERM, letting requests in flight commit their audit events first. With `--tls` it serves
//! HTTPS only, with the self-signed loopback certificate, and also prints where that
//! certificate is for clients to trust. `--service` (hidden; what `mandate service install`
//! runs at login) marks the endpoint as the background service and, while the app's endpoint
//! holds the data folder, waits and takes over when it stops.

use clap::Args;
use mandate_server::lock::LockError;
use mandate_server::{ServeError, ServeOptions, ServedBy};

use crate::context::{CliError, CliResult, Ctx};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Port on 127.0.0.1 (default 6263; 0 picks a free one).
    #[arg(long, env = "MANDATE_PORT", value_name = "N")]
    port: Option<u16>,
    /// Serve HTTPS only, for clients that insist (the MCP authorization spec does).
    ///
    /// Uses a self-signed certificate for 127.0.0.1, ::1 and localhost, created on first use,
    /// its private key in the OS keychain. Clients must trust it: give them the file this
    /// prints, or `mandate tls export --out FILE`. The issuer and every URL in the metadata
    /// become https://127.0.0.1:PORT.
    #[arg(long)]
    tls: bool,
    /// Largest request body the secret broker forwards to a connection's API, in bytes
    /// (default 33554432, 32 MiB); a larger one is answered 413.
    #[arg(long, env = "MANDATE_PROXY_MAX_BODY", value_name = "BYTES")]
    max_proxy_body: Option<u64>,
    /// Seconds between two refreshes of the agents' behaviour signals from the audit trail
    /// (default 10, from 1 to 3600). Off the request path; a longer interval delays how soon a
    /// burst of denials lowers an agent's score.
    #[arg(long, env = "MANDATE_TRUST_REFRESH_SECS", value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    trust_refresh_secs: Option<u64>,
    /// Turn off the per-agent rate limit (benchmarks only).
    #[arg(long, hide = true)]
    no_rate_limit: bool,
    /// Run as the background service (`mandate service install` writes this): marked as such
    /// for the app, and while another endpoint (the app's) serves the data folder, wait for it
    /// to stop and then take over instead of failing.
    #[arg(long, hide = true)]
    service: bool,
}

pub fn run(ctx: &mut Ctx, a: ServeArgs) -> CliResult {
    let m = ctx.mandate()?;
    // Which PostgreSQL database this endpoint serves (never its password); SQLite needs no line.
    let database = ctx.uses_database().then(|| m.database_description());
    let mut opts = ServeOptions::default();
    if let Some(p) = a.port {
        opts.port = p;
    }
    if a.no_rate_limit {
        opts.rate_limit = None;
    }
    opts.tls = a.tls;
    if a.service {
        opts.served_by = ServedBy::Service;
    }
    if let Some(b) = a.max_proxy_body {
        opts.max_proxy_body = b;
    }
    if let Some(t) = a.trust_refresh_secs {
        opts.trust_refresh = std::time::Duration::from_secs(t);
    }
    let rt = super::serve::runtime()?;
    rt.block_on(async move {
        let failed = |e: ServeError| match e {
            ServeError::Core(e) => CliError::Core(e),
            other => CliError::Exit {
                code: 5,
                message: other.to_string(),
            },
        };
        let mut waited = false;
        let mut server = loop {
            match mandate_server::serve(m.clone(), opts.clone()).await {
                Ok(s) => break s,
                // The service waits for the app's endpoint to close, then takes over, so agents
                // keep their endpoint when the window closes.
                Err(ServeError::Locked(LockError::Held { holder, .. })) if a.service => {
                    if !waited {
                        println!(
                            "Waiting: another Mandate endpoint{holder} serves this data folder; \
                             the service takes over when it stops."
                        );
                        waited = true;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                        _ = shutdown_signal() => return Ok(()),
                    }
                }
                Err(e) => return Err(failed(e)),
            }
        };
        // One write, so a reader that stops after the first line never breaks the pipe.
        let mut banner = format!("Listening on {}\n", server.url());
        if let Some(db) = database {
            banner.push_str(&format!("Database: {db}\n"));
        }
        if let Some(t) = server.tls() {
            banner.push_str(&format!("Certificate: {}\n", t.cert_path.display()));
            if t.created {
                banner.push_str(&format!(
                    "(A new certificate: clients must trust it, e.g. `curl --cacert {}`.)\n",
                    t.cert_path.display()
                ));
            }
            banner.push_str(&format!("SHA-256: {}\n", t.fingerprint));
        }
        print!("{banner}");

        let stop = server.stopper();
        tokio::spawn(async move {
            shutdown_signal().await;
            if let Some(s) = stop {
                let _ = s.send(());
            }
        });
        server.wait().await.map_err(|e| CliError::Exit {
            code: 1,
            message: format!("the endpoint stopped: {e}"),
        })
    })
}

/// Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// A Tokio runtime for the subcommands that speak HTTP.
pub fn runtime() -> CliResult<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Exit {
            code: 1,
            message: format!("could not start the async runtime: {e}"),
        })
}
