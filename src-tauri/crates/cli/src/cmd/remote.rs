//! `--server URL` for `mandate token` and `mandate exec`: an agent on another machine asks the
//! team server for its tokens (`mandate_server::remote`), signing with its own key file, and
//! trusting the server's certificate as told (`--server-ca` or `--server-fingerprint`). No data
//! folder and no OS keychain are needed on that machine.

use std::path::{Path, PathBuf};

use clap::Args;
use ed25519_dalek::SigningKey;
use mandate_core::secret::Sensitive;
use mandate_server::remote::{RemoteServer, ServerTrust};

use crate::context::{CliError, CliResult};

/// How to reach a team server.
#[derive(Debug, Args)]
pub struct RemoteArgs {
    /// Ask the team server at this URL (https://HOST[:PORT], as its admin gave it) instead of
    /// the endpoint on this machine.
    #[arg(long, env = "MANDATE_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// Trust only this CA (or the server's own certificate), PEM, for the team server.
    #[arg(
        long,
        env = "MANDATE_SERVER_CA",
        value_name = "FILE",
        conflicts_with = "server_fingerprint"
    )]
    pub server_ca: Option<PathBuf>,
    /// Trust exactly the team server certificate with this SHA-256 fingerprint
    /// (`openssl x509 -noout -fingerprint -sha256`).
    #[arg(long, env = "MANDATE_SERVER_FINGERPRINT", value_name = "SHA256")]
    pub server_fingerprint: Option<String>,
    /// The agent's private key file (PKCS#8 PEM or JWK, as `mandate agent add
    /// --generate-key-file` wrote it; readable by its owner only), for --server.
    #[arg(long, env = "MANDATE_AGENT_KEY_FILE", value_name = "FILE")]
    pub key_file: Option<PathBuf>,
}

fn fail(code: u8, message: String) -> CliError {
    CliError::Exit { code, message }
}

/// A team server, with the agent's key to sign with.
#[derive(Debug)]
pub struct Remote {
    pub server: RemoteServer,
    pub kid: String,
    pub key: SigningKey,
    /// The CA file given, for programs `mandate exec` starts.
    pub ca_file: Option<PathBuf>,
}

/// Read a private key file that only its owner may read.
fn read_key_file(path: &Path) -> CliResult<SigningKey> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let md = std::fs::metadata(path).map_err(|e| {
            fail(
                3,
                format!("the key file {} cannot be read ({e})", path.display()),
            )
        })?;
        if md.permissions().mode() & 0o077 != 0 {
            return Err(fail(
                3,
                format!(
                    "the key file {} can be read by other users; an agent's private key must be \
                     its owner's alone: `chmod 600 {}`",
                    path.display(),
                    path.display()
                ),
            ));
        }
    }
    let text = std::fs::read_to_string(path).map_err(|e| {
        fail(
            3,
            format!("the key file {} cannot be read ({e})", path.display()),
        )
    })?;
    Ok(mandate_core::keys::parse_private_key(&Sensitive::new(
        text,
    ))?)
}

impl RemoteArgs {
    /// The team server and key when `--server` is given; `None` for the local endpoint.
    pub fn resolve(&self) -> CliResult<Option<Remote>> {
        let Some(url) = &self.server else {
            if self.server_ca.is_some() || self.server_fingerprint.is_some() {
                return Err(fail(
                    2,
                    "--server-ca and --server-fingerprint go with --server URL".into(),
                ));
            }
            return Ok(None);
        };
        let key_file = self.key_file.as_ref().ok_or_else(|| {
            fail(
                2,
                "with --server, give the agent's private key file with --key-file (or \
                 MANDATE_AGENT_KEY_FILE)"
                    .into(),
            )
        })?;
        let key = read_key_file(key_file)?;
        let server = server_from_args(
            url,
            self.server_ca.as_deref(),
            self.server_fingerprint.as_deref(),
        )?;
        let ca_file = self
            .server_ca
            .as_ref()
            .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()));
        Ok(Some(Remote {
            server,
            kid: mandate_core::keys::thumbprint(&key.verifying_key()),
            key,
            ca_file,
        }))
    }
}

/// The team server at `url`, trusted as `--server-ca FILE` or `--server-fingerprint SHA256`
/// say (neither: the public Web PKI).
pub(crate) fn server_from_args(
    url: &str,
    ca: Option<&std::path::Path>,
    fingerprint: Option<&str>,
) -> CliResult<RemoteServer> {
    let trust = match (ca, fingerprint) {
        (Some(ca), _) => ServerTrust::Ca(std::fs::read(ca).map_err(|e| {
            fail(
                3,
                format!("the CA file {} cannot be read ({e})", ca.display()),
            )
        })?),
        (None, Some(fp)) => ServerTrust::fingerprint(fp).map_err(|e| fail(3, e))?,
        (None, None) => ServerTrust::WebPki,
    };
    RemoteServer::new(url, trust).map_err(|e| fail(3, e))
}
