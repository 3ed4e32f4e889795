//! What every subcommand needs: the open core handle, the output mode and error reporting.
//!
//! Every change names a person (`mandate_core::people`): `--as MEMBER` or `MANDATE_ACTOR`,
//! else the member remembered for this OS login (`mandate member use NAME`, or the app's
//! choice), else the login name itself as an `os_user` actor, which the event states as "no
//! member chosen".
//!
//! The keychain is opened lazily through the `mandate-keychain` crate; when it cannot be
//! opened, read-only commands still work and commands that need a secret fail with the
//! keychain's own explanation. There is never an in-memory or plaintext fallback.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use mandate_core::audit::Actor;
use mandate_core::secret::{Keychain, KeychainError, Sensitive, UnavailableKeychain};
use mandate_core::store::DatabaseUrl;
use mandate_core::{Error, ErrorReport, Mandate, OpenOptions, paths, people};

/// The CLI's failure: a core error, or a CLI-level one with its own exit code.
#[derive(Debug)]
pub enum CliError {
    Core(Error),
    /// A failure with a message and an exit code chosen by the subcommand.
    Exit {
        code: u8,
        message: String,
    },
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        CliError::Core(e)
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Core(e) => write!(f, "{e}"),
            CliError::Exit { message, .. } => f.write_str(message),
        }
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;

/// Shared state of one `mandate` invocation.
#[derive(Debug)]
pub struct Ctx {
    data_dir: Option<PathBuf>,
    /// `--database` / `MANDATE_DATABASE_URL`, as given (it may hold a password: never print it).
    database: Option<String>,
    pub json: bool,
    as_member: Option<String>,
    /// A team server's PKCS#11 token (issuer key and sealed secrets), instead of the OS keychain.
    pkcs11: Option<mandate_pkcs11::TokenSpec>,
    mandate: Option<Arc<Mandate>>,
}

impl Ctx {
    pub fn new(
        data_dir: Option<PathBuf>,
        database: Option<String>,
        json: bool,
        as_member: Option<String>,
    ) -> Self {
        Ctx {
            data_dir,
            database: database.filter(|d| !d.trim().is_empty()),
            json,
            as_member,
            pkcs11: None,
            mandate: None,
        }
    }

    /// Whether a PostgreSQL database was named (`--database` / `MANDATE_DATABASE_URL`).
    pub fn uses_database(&self) -> bool {
        self.database.is_some()
    }

    /// Keep keys and secrets in this PKCS#11 token instead of the OS keychain.
    pub fn pkcs11(mut self, spec: Option<mandate_pkcs11::TokenSpec>) -> Self {
        self.pkcs11 = spec;
        self
    }

    /// The open installation (opened on first use).
    pub fn mandate(&mut self) -> CliResult<Arc<Mandate>> {
        if let Some(m) = &self.mandate {
            return Ok(m.clone());
        }
        let data_dir = match &self.data_dir {
            Some(d) => d.clone(),
            None => paths::data_dir()?,
        };
        let mut opts = match &self.pkcs11 {
            // A team server: the issuer key signs inside the token, secrets are sealed in the
            // database under its key; the OS keychain is not used at all.
            Some(spec) => {
                let pin = std::env::var(mandate_pkcs11::PIN_ENV).map_err(|_| {
                    Error::Keychain(KeychainError::Token(format!(
                        "set {} to the user PIN of PKCS#11 token '{}' (it is never read from \
                         the command line)",
                        mandate_pkcs11::PIN_ENV,
                        spec.label
                    )))
                })?;
                let token = mandate_pkcs11::Token::open(spec, Sensitive::new(pin))
                    .map_err(Error::Keychain)?;
                let unused: Arc<dyn Keychain> = Arc::new(UnavailableKeychain(
                    KeychainError::Token("the OS keychain is not used with a PKCS#11 token".into()),
                ));
                OpenOptions::without_person(data_dir, unused)
                    .issuer_keys(Arc::new(mandate_pkcs11::Pkcs11Keys(token.clone())))
                    .sealed_secrets(Arc::new(mandate_pkcs11::Pkcs11Sealer(token)))
            }
            None => {
                let keychain: Arc<dyn Keychain> =
                    match mandate_keychain::OsKeychain::open(&paths::keychain_service()) {
                        Ok(k) => Arc::new(k),
                        Err(e) => Arc::new(UnavailableKeychain(e)),
                    };
                OpenOptions::without_person(data_dir, keychain)
            }
        };
        if let Some(url) = &self.database {
            opts = opts.database(DatabaseUrl::parse(url)?);
        }
        let m = Mandate::open(opts)?;
        let (actor, _) = resolve_person(&m, self.as_member.as_deref())?;
        m.set_actor(actor);
        let m = Arc::new(m);
        self.mandate = Some(m.clone());
        Ok(m)
    }

    /// Who this invocation's changes are attributed to, and why.
    pub fn person(&mut self) -> CliResult<(Actor, PersonSource)> {
        let m = self.mandate()?;
        Ok(resolve_person(&m, self.as_member.as_deref())?)
    }

    /// Print an error the way the output mode asks and return the documented exit code.
    pub fn report_error(&self, e: &CliError) -> ExitCode {
        let (code, report) = match e {
            CliError::Core(e) => (e.code().exit_code() as u8, ErrorReport::from(e)),
            CliError::Exit { code, message } => {
                if self.json {
                    let v = serde_json::json!({"error": {"code": "failed", "message": message}});
                    eprintln!("{v}");
                } else {
                    eprintln!("error: {message}");
                }
                return ExitCode::from(*code);
            }
        };
        if self.json {
            let v = serde_json::json!({"error": report});
            eprintln!("{v}");
        } else {
            eprintln!("error: {}", report.message);
        }
        ExitCode::from(code)
    }
}

/// Where the person named in this invocation's events came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PersonSource {
    /// `--as MEMBER` or `MANDATE_ACTOR`.
    Flag,
    /// The member remembered for this OS login.
    Remembered { login: String },
    /// No member chosen: the OS login name itself.
    OsUser,
}

/// The OS login name (see `people::current_login`).
pub fn login() -> Option<String> {
    people::current_login()
}

/// `--as`/`MANDATE_ACTOR` (which must name a member), else the member remembered for this
/// login, else the login as an `os_user` actor.
fn resolve_person(m: &Mandate, as_member: Option<&str>) -> Result<(Actor, PersonSource), Error> {
    if let Some(member) = as_member.map(str::trim).filter(|s| !s.is_empty()) {
        return match m.member_actor(member) {
            Ok(a) => Ok((a, PersonSource::Flag)),
            Err(Error::NotFound { .. }) => Err(Error::NotFound {
                kind: "team member",
                name: member.to_string(),
                hint: format!(
                    " (named by --as or MANDATE_ACTOR); `mandate member list` shows the members, \
                     and `mandate member add {member}` adds one"
                ),
            }),
            Err(e) => Err(e),
        };
    }
    let login = login();
    if let Some(l) = &login
        && let Some(member) = m.remembered_member(l)?
    {
        return Ok((
            Actor::member(member.id.as_str(), member.name.as_str()),
            PersonSource::Remembered { login: l.clone() },
        ));
    }
    Ok((
        Actor::os_user(login.as_deref().unwrap_or("unknown")),
        PersonSource::OsUser,
    ))
}

/// Logs go to stderr, filtered by `MANDATE_LOG` (default: warnings). Secrets never reach
/// them: the core holds secrets only in `Sensitive`, which prints `[REDACTED]`.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MANDATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
