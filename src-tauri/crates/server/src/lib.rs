//! Mandate's localhost token endpoint: an axum adapter over `mandate_core::oauth`.
//!
//! Each handler reads the request, calls one [`TokenService`] method on a blocking thread
//! (SQLite and the keychain block) and maps [`OAuthError`] to RFC 6749 §5.2 JSON with the
//! right status and `Cache-Control: no-store`. The rules live in the core; this crate owns only
//! HTTP and the process: binding 127.0.0.1 exclusively, the self-defence middleware
//! ([`guard`]), connection deadlines ([`conn`]), the one-server-per-data-folder lock
//! ([`lock`]), optional HTTPS ([`tls`]) and graceful shutdown.
//!
//! The desktop app and `mandate serve` both call [`serve`]; tests call [`router`] or
//! [`serve`] with port 0.
//!
//! What it is not: an admin API on a laptop. Agents, delegations and keys change through the
//! app's IPC or the local CLI; on a team server, signed-in members also change them through
//! the member API ([`members`]), under their roles.

pub mod client;
pub mod conn;
pub mod events;
pub mod guard;
pub mod lock;
pub mod mcp;
pub mod member_client;
pub mod member_session;
pub mod members;
pub mod proxy;
pub mod remote;
pub mod team;
pub mod tls;
pub mod witness;
pub mod witness_client;

use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use mandate_core::Mandate;
use mandate_core::oauth::{
    EndpointConfig, HttpContext, OAuthError, RateLimit, TokenService, endpoint_proof,
};
use mandate_core::secret::Sensitive;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use lock::{DataDirLock, ServedBy};

/// The port the endpoint uses unless told otherwise.
pub const DEFAULT_PORT: u16 = 6263;
/// Environment variable that overrides the port.
pub const PORT_ENV: &str = "MANDATE_PORT";
/// Largest request body accepted (checked before any crypto work).
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Largest request body the secret broker forwards unless configured otherwise (32 MiB).
pub const DEFAULT_MAX_PROXY_BODY: u64 = 32 * 1024 * 1024;
/// Environment variable that overrides the broker's body limit (bytes).
pub const PROXY_BODY_ENV: &str = "MANDATE_PROXY_MAX_BODY";
/// Seconds between two refreshes of the agents' behaviour signals (1 to 3600).
pub const TRUST_REFRESH_ENV: &str = "MANDATE_TRUST_REFRESH_SECS";
/// Longest a request may take before it is answered 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "port {port} on 127.0.0.1 is already in use by another program; Mandate does not move \
         to another port (agents would not find it). Stop that program, or choose another port \
         with --port or MANDATE_PORT"
    )]
    PortInUse { port: u16 },
    #[error("could not listen on 127.0.0.1:{port}: {reason}")]
    Bind { port: u16, reason: String },
    #[error("could not set up HTTPS: {0}")]
    Tls(String),
    #[error("could not listen on {addr}: {reason}")]
    BindAddr { addr: SocketAddr, reason: String },
    #[error(transparent)]
    Team(#[from] team::TeamConfigError),
    #[error(transparent)]
    Locked(#[from] lock::LockError),
    #[error(transparent)]
    Core(#[from] mandate_core::Error),
}

/// How to run the endpoint.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// 0 picks a free port (tests).
    pub port: u16,
    /// Per-agent rate limit; `None` turns it off.
    pub rate_limit: Option<RateLimit>,
    /// Serve HTTPS only, with the loopback certificate (created on first use; its key in the
    /// OS keychain). The issuer and every URL in the metadata are then `https://`.
    pub tls: bool,
    /// Who runs this endpoint, recorded in the lock file for clients and the app.
    pub served_by: lock::ServedBy,
    /// Largest request body the secret broker forwards to an upstream (bytes); a larger one
    /// is answered 413 and never (or, when streamed, never wholly) sent.
    pub max_proxy_body: u64,
    /// How often the behaviour signals are refreshed from the audit trail (and unanswered
    /// approval requests expired), off the request path.
    pub trust_refresh: std::time::Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            port: DEFAULT_PORT,
            rate_limit: Some(RateLimit::default()),
            tls: false,
            served_by: lock::ServedBy::default(),
            max_proxy_body: DEFAULT_MAX_PROXY_BODY,
            trust_refresh: std::time::Duration::from_secs(
                mandate_core::trust::behaviour::REFRESH_EVERY_SECS,
            ),
        }
    }
}

impl ServeOptions {
    /// The defaults, with the port from `MANDATE_PORT` and the broker's body limit from
    /// `MANDATE_PROXY_MAX_BODY` when they are set.
    pub fn from_env() -> Result<Self, String> {
        let mut o = ServeOptions::default();
        if let Ok(p) = std::env::var(PORT_ENV)
            && !p.is_empty()
        {
            o.port = p
                .parse()
                .map_err(|_| format!("{PORT_ENV}={p} is not a port number (0 to 65535)"))?;
        }
        if let Ok(b) = std::env::var(PROXY_BODY_ENV)
            && !b.is_empty()
        {
            o.max_proxy_body = b.parse().map_err(|_| {
                format!("{PROXY_BODY_ENV}={b} is not a number of bytes (for 64 MiB: 67108864)")
            })?;
        }
        if let Ok(t) = std::env::var(TRUST_REFRESH_ENV)
            && !t.is_empty()
        {
            let secs = t
                .parse::<u64>()
                .ok()
                .filter(|s| (1..=3600).contains(s))
                .ok_or_else(|| {
                    format!(
                        "{TRUST_REFRESH_ENV}={t} is not a number of seconds from 1 to 3600 \
                         (the default is {})",
                        mandate_core::trust::behaviour::REFRESH_EVERY_SECS
                    )
                })?;
            o.trust_refresh = std::time::Duration::from_secs(secs);
        }
        Ok(o)
    }
}

/// What every request handler shares.
#[derive(Debug)]
pub struct AppState {
    pub service: TokenService,
    pub port: u16,
    /// `"https"` when serving TLS, else `"http"`: the scheme of the URLs clients address.
    pub scheme: &'static str,
    /// See [`ServeOptions::max_proxy_body`].
    pub max_proxy_body: u64,
    /// Who may reach the endpoint: this machine only, or a team on a network address.
    pub exposure: Exposure,
    /// The open event streams of the member API, ended first when the server stops.
    pub streams: Arc<events::Streams>,
}

/// Who may reach the endpoint, which the guard enforces.
#[derive(Debug)]
pub enum Exposure {
    /// The laptop's endpoint: loopback peers, loopback Host names with our port.
    Loopback,
    /// A team server: any peer (rate-limited per source), Host = the public URL's.
    Team(team::TeamExposure),
}

impl AppState {
    /// The base of the URLs a client addresses: the team server's public URL, or
    /// `scheme://Host` on loopback (the Host header is already allow-listed by the guard).
    pub fn base_url(&self, headers: &HeaderMap) -> String {
        match &self.exposure {
            Exposure::Team(t) => t.public_url.clone(),
            Exposure::Loopback => {
                let host = headers
                    .get(header::HOST)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("127.0.0.1");
                format!("{}://{host}", self.scheme)
            }
        }
    }
}

/// The endpoint's routes with the self-defence middleware around them.
pub fn router(state: Arc<AppState>) -> Router {
    // Witnesses watch a team's log; a laptop's endpoint has none.
    let witness = match state.exposure {
        Exposure::Team(_) => witness::routes(),
        Exposure::Loopback => Router::new(),
    };
    Router::new()
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/.well-known/jwks.json", get(jwks))
        .route(endpoint_proof::PATH, get(prove_endpoint))
        .route("/oauth2/token", post(token))
        .route("/oauth2/introspect", post(introspect))
        .route("/oauth2/revoke", post(revoke))
        .route("/oauth2/bc-authorize", post(backchannel_authorize))
        .merge(proxy::routes(state.clone()))
        .merge(mcp::routes(state.clone()))
        .merge(members::routes())
        .merge(witness)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        .with_state(state)
}

/// A running endpoint. Dropping it without [`RunningServer::shutdown`] leaves it running
/// until the runtime stops.
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    tls: Option<TlsSummary>,
    /// It serves HTTPS (with the loopback certificate, or a team server's own).
    tls_on: bool,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// The address it listens on (`127.0.0.1:PORT`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (or `https://` with TLS), the issuer identifier of a laptop's
    /// endpoint (a team server's issuer is its public URL).
    pub fn url(&self) -> String {
        let scheme = if self.tls_on { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The certificate it presents, when it serves HTTPS.
    pub fn tls(&self) -> Option<&TlsSummary> {
        self.tls.as_ref()
    }

    /// Stop accepting connections, finish the requests in flight (their audit writes commit
    /// before their responses), then return.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.wait().await
    }

    /// Wait until the server stops (after [`RunningServer::shutdown`] or a fatal error).
    pub async fn wait(&mut self) -> std::io::Result<()> {
        match (&mut self.task).await {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e.to_string())),
        }
    }

    /// A handle that asks the server to stop, for a signal handler.
    pub fn stopper(&mut self) -> Option<oneshot::Sender<()>> {
        self.stop.take()
    }
}

/// The public facts about the certificate an HTTPS endpoint presents.
#[derive(Debug, Clone)]
pub struct TlsSummary {
    /// The certificate (PEM) in the data folder, for clients to trust.
    pub cert_path: std::path::PathBuf,
    /// Its SHA-256 fingerprint.
    pub fingerprint: String,
    /// Whether it was created for this start (clients must be given it).
    pub created: bool,
}

/// Bind 127.0.0.1:`port` exclusively, take the data-folder lock and serve until shut down.
pub async fn serve(mandate: Arc<Mandate>, opts: ServeOptions) -> Result<RunningServer, ServeError> {
    let dir = mandate.data_dir().to_path_buf();
    let mut lock = DataDirLock::acquire(&dir)?;
    // The certificate before the port: a locked keychain fails before anything listens.
    let tls = if opts.tls {
        let m = mandate.clone();
        let t = tokio::task::spawn_blocking(move || m.loopback_tls())
            .await
            .map_err(|e| ServeError::Tls(e.to_string()))??;
        let config = tls::server_config(&t).map_err(ServeError::Tls)?;
        let summary = TlsSummary {
            cert_path: t.cert_path.clone(),
            fingerprint: t.fingerprint.clone(),
            created: t.created,
        };
        Some((config, summary))
    } else {
        None
    };
    let listener = bind(opts.port)?;
    let addr = listener.local_addr().map_err(|e| ServeError::Bind {
        port: opts.port,
        reason: e.to_string(),
    })?;
    lock.record(addr.port(), tls.is_some(), opts.served_by)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut cfg = EndpointConfig::new(format!("{scheme}://{addr}"));
    cfg.rate_limit = opts.rate_limit;
    let service = token_service(&mandate, cfg, addr).await?;
    let state = AppState {
        service,
        port: addr.port(),
        scheme,
        max_proxy_body: opts.max_proxy_body,
        exposure: Exposure::Loopback,
        streams: Arc::default(),
    };
    let (config, summary) = match tls {
        Some((c, s)) => (Some(c), Some(s)),
        None => (None, None),
    };
    launch(
        listener,
        state,
        config,
        summary,
        Some(lock),
        opts.trust_refresh,
    )
}

/// Run the endpoint for a team (`mandate server`): on `team.listen`, HTTPS with the operator's
/// certificate (required off loopback), the public URL as issuer and Host allow-list, rate
/// limits per agent (`opts.rate_limit`) and per source address (see [`team`]). Unlike
/// [`serve`] it takes no data-folder lock: several instances serve one store (the database
/// serialises their writes and the audit chain; see docs/TEAM_SERVER.md).
pub async fn serve_team(
    mandate: Arc<Mandate>,
    opts: ServeOptions,
    team: team::TeamOptions,
) -> Result<RunningServer, ServeError> {
    let exposure = team::TeamExposure::new(&team)?;
    let config = match &team.tls {
        Some(files) => Some(team::server_config(files)?),
        None => None,
    };
    let listener = bind_addr(team.listen)?;
    let addr = listener.local_addr().map_err(|e| ServeError::BindAddr {
        addr: team.listen,
        reason: e.to_string(),
    })?;
    let mut cfg = EndpointConfig::new(exposure.public_url.clone());
    cfg.rate_limit = opts.rate_limit;
    let service = token_service(&mandate, cfg, addr).await?;
    let scheme = if config.is_some() { "https" } else { "http" };
    let state = AppState {
        service,
        port: addr.port(),
        scheme,
        max_proxy_body: opts.max_proxy_body,
        exposure: Exposure::Team(exposure),
        streams: Arc::default(),
    };
    launch(listener, state, config, None, None, opts.trust_refresh)
}

/// The endpoint's rules, made on a blocking thread (it reads the issuer key from its vault).
async fn token_service(
    mandate: &Arc<Mandate>,
    cfg: EndpointConfig,
    addr: SocketAddr,
) -> Result<TokenService, ServeError> {
    let m = mandate.clone();
    Ok(
        tokio::task::spawn_blocking(move || TokenService::new(m, cfg))
            .await
            .map_err(|e| ServeError::BindAddr {
                addr,
                reason: e.to_string(),
            })??,
    )
}

/// Serve `state` on `listener` (over TLS with `config`) until shut down; the task owns the
/// data-folder lock, so it is held exactly as long as the server runs.
fn launch(
    listener: StdListener,
    state: AppState,
    config: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    summary: Option<TlsSummary>,
    lock: Option<DataDirLock>,
    refresh_every: std::time::Duration,
) -> Result<RunningServer, ServeError> {
    let addr = listener.local_addr().map_err(|e| ServeError::Bind {
        port: state.port,
        reason: e.to_string(),
    })?;
    let bind_failed = |e: std::io::Error| ServeError::BindAddr {
        addr,
        reason: e.to_string(),
    };
    let tls = config.is_some();
    let m = state.service.mandate().clone();
    let streams = state.streams.clone();
    // `conn::serve` hands every request its peer (`ConnectInfo`), which the guard checks.
    let app = router(Arc::new(state));
    let listener = tokio::net::TcpListener::from_std(listener).map_err(bind_failed)?;
    let (stop, stopped) = oneshot::channel::<()>();
    let stopped = async move {
        let _ = stopped.await;
        // Event streams never end by themselves: end them, or the drain would wait forever.
        streams.shut_down();
    };
    let task = match config {
        Some(config) => {
            let listener = tls::TlsListener::new(listener, config).map_err(bind_failed)?;
            let m = m.clone();
            tokio::spawn(async move {
                let _lock = lock;
                let chores = tokio::spawn(chores(m, refresh_every));
                conn::serve(listener, app, stopped).await;
                chores.abort();
                Ok(())
            })
        }
        None => {
            // TCP_NODELAY: a streamed response (the broker's) is written as headers, then
            // body; with Nagle on, the body waits for the client's delayed ACK (40 ms on
            // Linux).
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            tokio::spawn(async move {
                let _lock = lock;
                let chores = tokio::spawn(chores(m, refresh_every));
                conn::serve(listener, app, stopped).await;
                chores.abort();
                Ok(())
            })
        }
    };
    tracing::info!(%addr, tls, "token endpoint listening");
    Ok(RunningServer {
        addr,
        tls: summary,
        tls_on: tls,
        stop: Some(stop),
        task,
    })
}

/// Everything a running endpoint does besides answering requests, until it stops.
async fn chores(m: Arc<Mandate>, refresh_every: std::time::Duration) {
    tokio::join!(housekeeping(m.clone()), refresh_trust(m, refresh_every));
}

/// Keep every agent's behaviour signals up to date with the audit trail, off the request
/// path (`Mandate::refresh_trust`), every few seconds: a burst of denials shows in the
/// agent's score, and so at the floors, within seconds (`ServeOptions::trust_refresh`). A
/// failure is logged and tried again.
async fn refresh_trust(m: Arc<Mandate>, every: std::time::Duration) {
    loop {
        let m2 = m.clone();
        match tokio::task::spawn_blocking(move || {
            m2.expire_approvals()?;
            m2.refresh_trust()
        })
        .await
        {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::debug!(agents = n, "trust signals changed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "trust signals could not be refreshed"),
            Err(e) => tracing::warn!(error = %e, "trust refresh failed"),
        }
        tokio::time::sleep(every).await;
    }
}

/// How often a running endpoint does its housekeeping.
const HOUSEKEEPING_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// What a running endpoint does besides answering, for as long as it runs: close credential
/// moves whose undo window has passed, deleting the credentials kept for them from the
/// keychain (`Mandate::close_expired_moves`), at start and every 10 minutes. A failure (a
/// locked keychain) is logged and tried again next time.
async fn housekeeping(m: Arc<Mandate>) {
    loop {
        let m2 = m.clone();
        match tokio::task::spawn_blocking(move || m2.close_expired_moves()).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => {
                tracing::info!(closed = n, "credential moves past their undo window closed")
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "expired credential moves could not be closed yet")
            }
            Err(e) => tracing::warn!(error = %e, "housekeeping failed"),
        }
        tokio::time::sleep(HOUSEKEEPING_EVERY).await;
    }
}

/// Bind `addr` without `SO_REUSEADDR` tricks (a team server's listen address).
fn bind_addr(addr: SocketAddr) -> Result<StdListener, ServeError> {
    let l = StdListener::bind(addr).map_err(|e| ServeError::BindAddr {
        addr,
        reason: if e.kind() == std::io::ErrorKind::AddrInUse {
            "the address is already in use by another program; stop it, or choose another \
             --listen address"
                .into()
        } else {
            e.to_string()
        },
    })?;
    l.set_nonblocking(true).map_err(|e| ServeError::BindAddr {
        addr,
        reason: e.to_string(),
    })?;
    Ok(l)
}

/// Bind without `SO_REUSEADDR` tricks: a second process on the same port fails.
fn bind(port: u16) -> Result<StdListener, ServeError> {
    let l = StdListener::bind((Ipv4Addr::LOCALHOST, port)).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            ServeError::PortInUse { port }
        } else {
            ServeError::Bind {
                port,
                reason: e.to_string(),
            }
        }
    })?;
    l.set_nonblocking(true).map_err(|e| ServeError::Bind {
        port,
        reason: e.to_string(),
    })?;
    Ok(l)
}

// ----- responses -----------------------------------------------------------------------------

/// A JSON response that no cache keeps (RFC 6749 §5.1).
pub(crate) fn no_store(status: StatusCode, body: &Value) -> Response {
    let mut r = (status, mandate_core::oauth::jws::json_bytes(body)).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

/// An RFC 6749 §5.2 error response. A 401 (client authentication failed) carries a
/// `WWW-Authenticate` challenge, as every 401 must (RFC 9110 §15.5.2), see [`client_challenge`].
pub fn oauth_error(e: &OAuthError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let description = e.to_string();
    let mut r = no_store(
        status,
        &json!({"error": e.code(), "error_description": description}),
    );
    if let Some(s) = e.retry_after()
        && let Ok(v) = HeaderValue::from_str(&s.to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            client_challenge(e.code(), &description),
        );
    }
    r
}

/// The `WWW-Authenticate` challenge of a refused client authentication.
///
/// No HTTP authentication scheme is registered for `private_key_jwt` (the client authenticates
/// in the form body, RFC 7523 §2.2), and naming `Basic` or `Bearer` would send a client after a
/// method Mandate refuses. So the scheme names the one method accepted, in the RFC 9110 §11.3
/// syntax that any header parser reads, with the RFC 6750-style `error` and
/// `error_description` parameters (the description cut to printable ASCII, quotes and
/// backslashes escaped).
pub fn client_challenge(code: &str, description: &str) -> HeaderValue {
    let desc: String = description
        .chars()
        .take(300)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    HeaderValue::from_str(&format!(
        "private_key_jwt realm=\"mandate\", error=\"{code}\", error_description=\"{desc}\""
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("private_key_jwt realm=\"mandate\""))
}

/// An error the middleware or router raises before the rules run.
pub fn plain_error(status: StatusCode, code: &str, description: &str) -> Response {
    no_store(
        status,
        &json!({"error": code, "error_description": description}),
    )
}

/// A route that exists, asked with a method it does not take: the same JSON error shape as
/// every other refusal (axum adds the `Allow` header).
async fn method_not_allowed(method: Method) -> Response {
    let name: String = method.as_str().chars().take(20).collect();
    plain_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request",
        &format!(
            "this endpoint does not take {} requests; the Allow header lists the methods it takes",
            name.escape_default()
        ),
    )
}

async fn not_found() -> Response {
    plain_error(
        StatusCode::NOT_FOUND,
        "invalid_request",
        "there is no such endpoint here",
    )
}

fn internal_failure() -> Response {
    plain_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "the endpoint failed unexpectedly; the app logs say more",
    )
}

/// Run an endpoint's rules on this worker thread: they only compute, read committed rows and
/// queue their one write, so they take tens of microseconds and never wait for a commit (the
/// returned answer is awaited, holding no thread). `None` after a panic there, which the
/// caller answers with a 500 without detail.
fn rules<T>(f: impl FnOnce() -> T) -> Option<T> {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    if r.is_err() {
        tracing::error!("an endpoint request panicked");
    }
    r.ok()
}

/// How many requests may run blocking core work (the broker's authorization of a proxied call,
/// the JWKS) at once; the rest wait their turn asynchronously before taking a thread.
///
/// Why: under a burst above capacity, every waiting request would hold a blocking thread parked
/// in the group commit, and the wake-ups and context switches eat the CPU the work needs (an
/// open-loop token load once collapsed that way, before the token endpoint stopped using
/// blocking threads). 4 per core, at least 16: enough concurrent writers for large batches.
fn work_permits() -> &'static tokio::sync::Semaphore {
    static PERMITS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    PERMITS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        tokio::sync::Semaphore::new((cores * 4).max(16))
    })
}

/// Run blocking core work; a panic there answers 500 without detail.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Response> {
    let failed = internal_failure;
    // The semaphore is never closed, so acquiring fails only if that changes.
    let permit = work_permits().acquire().await.map_err(|_| failed())?;
    // The permit is given back on the blocking thread as the work ends, so the thread is
    // nearly idle again when the next holder asks for one; given back here (after the thread
    // had answered but before the pool saw it idle), a burst started a thread for most
    // permits passed on (38 threads for 16 permits in
    // `a_burst_of_broker_calls_holds_no_more_threads_than_the_work_permits`).
    tokio::task::spawn_blocking(move || {
        let out = f();
        drop(permit);
        out
    })
    .await
    .map_err(|_| failed())
}

async fn metadata(State(s): State<Arc<AppState>>) -> Response {
    let mut r = axum::Json(s.service.metadata()).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

async fn jwks(State(s): State<Arc<AppState>>) -> Response {
    let st = s.clone();
    match blocking(move || st.service.jwks()).await {
        Ok(Ok(j)) => {
            let mut r = axum::Json(j).into_response();
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("max-age=60"),
            );
            r
        }
        Ok(Err(e)) => oauth_error(&OAuthError::from(e)),
        Err(r) => r,
    }
}

/// `GET /mandate/endpoint-proof?nonce=N`: the issuer key's signature over the nonce and our
/// issuer URL, so a local client knows this port is its own endpoint before it sends an
/// assertion (`mandate_core::oauth::endpoint_proof`). Nothing secret goes out: a signature over
/// a fixed-shape message that can be neither a token nor a checkpoint.
async fn prove_endpoint(State(s): State<Arc<AppState>>, req: Request) -> Response {
    let nonce = req
        .uri()
        .query()
        .and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "nonce")
                .map(|(_, v)| v.into_owned())
        })
        .unwrap_or_default();
    if !endpoint_proof::nonce_ok(&nonce) {
        return plain_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the nonce must be 43 base64url characters (32 random bytes)",
        );
    }
    let st = s.clone();
    match blocking(move || st.service.endpoint_proof(&nonce)).await {
        Ok(Ok(Some(p))) => no_store(StatusCode::OK, &json!(p)),
        Ok(Ok(None)) => plain_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the nonce must be 43 base64url characters (32 random bytes)",
        ),
        Ok(Err(e)) => oauth_error(&OAuthError::from(e)),
        Err(r) => r,
    }
}

/// Read a form body: the right content type and at most [`MAX_BODY_BYTES`].
pub(crate) async fn form_body(req: Request) -> Result<(HeaderMap, Bytes), Response> {
    let (parts, body) = req.into_parts();
    let ct = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    if ct.as_deref() != Some("application/x-www-form-urlencoded") {
        return Err(plain_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let too_big = || {
        plain_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            "the request body is larger than 16 KiB",
        )
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_big());
    }
    let bytes = axum::body::to_bytes(Body::new(body), MAX_BODY_BYTES)
        .await
        .map_err(|e| {
            // Past the limit, or a body that could not be read at all (a malformed chunked
            // encoding, a connection cut mid-body): only the first is "too large".
            let over_limit = e
                .into_inner()
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some();
            if over_limit {
                too_big()
            } else {
                plain_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "the request body could not be read (a malformed chunked encoding, or the \
                     connection ended mid-body); send it again with a Content-Length",
                )
            }
        })?;
    Ok((parts.headers, bytes))
}

/// The URL the client addressed (see [`AppState::base_url`]).
fn request_url(app: &AppState, headers: &HeaderMap, path: &str) -> String {
    format!("{}{path}", app.base_url(headers))
}

async fn token(State(s): State<Arc<AppState>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let (headers, body) = match form_body(req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let ctx = HttpContext {
        method: Method::POST.to_string(),
        url: request_url(&s, &headers, &path),
        dpop: headers
            .get_all("dpop")
            .iter()
            .map(|v| Sensitive::new(String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect(),
    };
    // A team member signs in at the same endpoint (`oauth/member.rs`); their client id is
    // `member:NAME`, which no agent's can be.
    if matches!(s.exposure, Exposure::Team(_))
        && mandate_core::oauth::member::is_member_request(&body)
    {
        let st = s.clone();
        return match tokio::task::spawn_blocking(move || st.service.member_token(&body, &ctx)).await
        {
            Ok(Ok(t)) => no_store(StatusCode::OK, &t.to_json()),
            Ok(Err(e)) => oauth_error(&e),
            Err(_) => internal_failure(),
        };
    }
    let pending = match rules(|| s.service.token(&body, &ctx)) {
        Some(p) => p,
        None => return internal_failure(),
    };
    match pending.finish().await {
        Ok(t) => no_store(StatusCode::OK, &t.to_json()),
        Err(e) => oauth_error(&e),
    }
}

async fn introspect(State(s): State<Arc<AppState>>, req: Request) -> Response {
    let (_, body) = match form_body(req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let pending = match rules(|| s.service.introspect(&body)) {
        Some(p) => p,
        None => return internal_failure(),
    };
    match pending.finish().await {
        Ok(v) => no_store(StatusCode::OK, &v),
        Err(e) => oauth_error(&e),
    }
}

/// OpenID CIBA's backchannel authentication endpoint (poll mode; see `mandate_core::oauth`).
async fn backchannel_authorize(State(s): State<Arc<AppState>>, req: Request) -> Response {
    let (_, body) = match form_body(req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let pending = match rules(|| s.service.backchannel_authorize(&body)) {
        Some(p) => p,
        None => return internal_failure(),
    };
    match pending.finish().await {
        Ok(v) => no_store(StatusCode::OK, &v),
        Err(e) => oauth_error(&e),
    }
}

async fn revoke(State(s): State<Arc<AppState>>, req: Request) -> Response {
    let (_, body) = match form_body(req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let pending = match rules(|| s.service.revoke(&body)) {
        Some(p) => p,
        None => return internal_failure(),
    };
    match pending.finish().await {
        Ok(()) => no_store(StatusCode::OK, &json!({})),
        Err(e) => oauth_error(&e),
    }
}
