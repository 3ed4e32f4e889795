//! Streaming audit events to a syslog server: RFC 5424 messages over TCP with RFC 6587
//! octet-counting framing (`<length> <message>`), optionally inside TLS (RFC 5425).
//!
//! Each event goes out as one message whose body is its OCSF object (see `ocsf`), with the
//! event's sequence number in structured data. Delivery is at least once and never silently
//! lossy: a per-destination cursor in `audit_stream_cursors` moves only after a batch was
//! written and flushed; on any failure the connection is dropped, the failure logged, and the
//! same events are sent again after a backoff. A stream that cannot deliver says so (the
//! caller sees every failed attempt through `on_error`), and its cursor shows how far it got.
//!
//! What it is not: a syslog server or a queue of its own; the audit log is the queue.

use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::store::params;
use rustls_pki_types::pem::PemObject as _;

use super::{AuditEvent, Decision, ocsf};
use crate::Mandate;
use crate::error::{Error, Result};

/// RFC 5424 facility 13, "log audit".
const FACILITY: u8 = 13;

/// Where to send, and how.
#[derive(Debug, Clone)]
pub struct SyslogTarget {
    /// `host:port`.
    pub address: String,
    /// Wrap the connection in TLS.
    pub tls: bool,
    /// PEM CA certificates to trust for TLS; `None` means the Mozilla roots (webpki-roots).
    pub ca_file: Option<PathBuf>,
}

impl SyslogTarget {
    /// The cursor key: scheme and address.
    pub fn destination(&self) -> String {
        format!(
            "{}://{}",
            if self.tls { "tls" } else { "tcp" },
            self.address
        )
    }
}

/// How a stream runs.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// Stop once everything written so far was sent (instead of following new events).
    pub once: bool,
    /// How often to look for new events.
    pub poll: Duration,
    /// First retry delay; doubles up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// With `once`, give up after this many failed attempts in a row (the events stay pending
    /// and the error says how many). `None`: retry forever.
    pub max_attempts: Option<u32>,
    /// The HOSTNAME field.
    pub hostname: String,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            once: false,
            poll: Duration::from_millis(500),
            backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            max_attempts: None,
            hostname: "-".into(),
        }
    }
}

/// Escape a structured-data parameter value (RFC 5424 §6.3.3).
fn sd_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace(']', "\\]")
}

/// One RFC 5424 message for `ev` (without framing).
pub fn message(origin: &str, hostname: &str, ev: &AuditEvent) -> Vec<u8> {
    let severity = match ev.decision {
        Decision::Allow => 6, // informational
        Decision::Deny => 4,  // warning
    };
    let pri = u16::from(FACILITY) * 8 + severity;
    let msgid: String = ev
        .action
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(32)
        .collect();
    let body = serde_json::to_string(&ocsf::to_ocsf(origin, ev)).unwrap_or_default();
    format!(
        "<{pri}>1 {} {} mandate - {} [mandate@32473 log=\"{}\" seq=\"{}\" decision=\"{}\"] {}",
        ev.time,
        if hostname.is_empty() { "-" } else { hostname },
        if msgid.is_empty() { "-".into() } else { msgid },
        sd_escape(origin),
        ev.seq,
        ev.decision.as_str(),
        body
    )
    .into_bytes()
}

/// RFC 6587 octet counting: `<length> <message>`.
pub fn frame(msg: &[u8]) -> Vec<u8> {
    let mut out = format!("{} ", msg.len()).into_bytes();
    out.extend_from_slice(msg);
    out
}

trait Conn: Write + Send {}
impl<T: Write + Send> Conn for T {}

fn connect(t: &SyslogTarget) -> std::result::Result<Box<dyn Conn>, String> {
    let addr = t
        .address
        .to_socket_addrs()
        .map_err(|e| format!("{} is not a reachable address ({e})", t.address))?
        .next()
        .ok_or_else(|| format!("{} resolves to nothing", t.address))?;
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("could not connect to {} ({e})", t.address))?;
    let _ = tcp.set_write_timeout(Some(Duration::from_secs(10)));
    let _ = tcp.set_nodelay(true);
    if !t.tls {
        return Ok(Box::new(tcp));
    }
    let mut roots = rustls::RootCertStore::empty();
    match &t.ca_file {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| format!("could not read {} ({e})", path.display()))?;
            for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| format!("{} is not PEM ({e})", path.display()))?;
                roots.add(cert).map_err(|e| {
                    format!("a certificate in {} is unusable ({e})", path.display())
                })?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let host = t
        .address
        .rsplit_once(':')
        .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'))
        .unwrap_or(&t.address)
        .to_string();
    let name = rustls_pki_types::ServerName::try_from(host)
        .map_err(|e| format!("bad server name ({e})"))?;
    let conn = rustls::ClientConnection::new(Arc::new(config), name)
        .map_err(|e| format!("TLS setup failed ({e})"))?;
    Ok(Box::new(rustls::StreamOwned::new(conn, tcp)))
}

impl Mandate {
    fn stream_cursor(&self, dest: &str) -> Result<u64> {
        let mut guard = self.lock()?;
        let conn = guard.tx()?;
        let v: Option<i64> = conn.query_opt(
            "SELECT last_seq FROM audit_stream_cursors WHERE destination = ?1",
            params![dest],
            |r| r.get(0),
        )?;
        Ok(v.unwrap_or(0) as u64)
    }

    fn set_stream_cursor(&self, dest: &str, seq: u64) -> Result<()> {
        let mut guard = self.lock()?;
        let conn = guard.tx()?;
        conn.execute(
            "INSERT INTO audit_stream_cursors (destination, last_seq) VALUES (?1, ?2)
             ON CONFLICT (destination) DO UPDATE SET last_seq = excluded.last_seq",
            params![dest, seq as i64],
        )?;
        Ok(())
    }

    fn events_after(&self, seq: u64, limit: u32) -> Result<Vec<AuditEvent>> {
        let mut guard = self.lock()?;
        let conn = guard.tx()?;
        let rows = conn.query_map(
            "SELECT body FROM audit_events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            params![seq as i64, limit as i64],
            |r| r.get::<Vec<u8>>(0),
        )?;
        let mut out = Vec::new();
        for b in rows {
            out.push(
                serde_json::from_slice(&b)
                    .map_err(|e| Error::Storage(format!("an audit event is unreadable: {e}")))?,
            );
        }
        Ok(out)
    }

    /// Send the audit events this destination has not received, then (unless `opts.once`)
    /// follow new ones until `stop` is set. Returns how many events were sent. Every failed
    /// attempt is passed to `on_error` and retried; nothing is skipped.
    pub fn stream_audit_syslog(
        &self,
        target: &SyslogTarget,
        opts: &StreamOptions,
        stop: &AtomicBool,
        on_error: &mut dyn FnMut(&str),
    ) -> Result<u64> {
        let dest = target.destination();
        let origin = self.audit_origin();
        let mut cursor = self.stream_cursor(&dest)?;
        let mut conn: Option<Box<dyn Conn>> = None;
        let mut sent = 0u64;
        let mut delay = opts.backoff;
        let mut failures = 0u32;
        while !stop.load(Ordering::Relaxed) {
            let batch = self.events_after(cursor, 500)?;
            if batch.is_empty() {
                if opts.once {
                    break;
                }
                std::thread::sleep(opts.poll);
                continue;
            }
            let attempt = (|| -> std::result::Result<(), String> {
                if conn.is_none() {
                    conn = Some(connect(target)?);
                }
                let c = conn.as_mut().ok_or("no connection")?;
                let mut buf = Vec::new();
                for ev in &batch {
                    buf.extend_from_slice(&frame(&message(&origin, &opts.hostname, ev)));
                }
                c.write_all(&buf)
                    .and_then(|_| c.flush())
                    .map_err(|e| format!("sending to {} failed ({e})", target.address))
            })();
            match attempt {
                Ok(()) => {
                    let last = batch.last().map(|e| e.seq).unwrap_or(cursor);
                    self.set_stream_cursor(&dest, last)?;
                    sent += batch.len() as u64;
                    cursor = last;
                    delay = opts.backoff;
                    failures = 0;
                }
                Err(e) => {
                    conn = None;
                    failures += 1;
                    let pending = batch.len();
                    let msg = format!(
                        "{e}; {pending}+ audit events after #{cursor} are pending and will be \
                         sent again (attempt {failures})"
                    );
                    tracing::warn!("{msg}");
                    on_error(&msg);
                    if opts.once && opts.max_attempts.is_some_and(|m| failures >= m) {
                        return Err(Error::Conflict(format!(
                            "the syslog server {} could not be reached; events after #{cursor} \
                             were not sent and stay pending for the next run: {e}",
                            target.address
                        )));
                    }
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(opts.max_backoff);
                }
            }
        }
        Ok(sent)
    }
}
