//! Streaming the audit trail to a real rsyslog on loopback (RFC 5424 over TCP, octet
//! counting): every event arrives once the server is up, events written while it was down are
//! retried rather than dropped, and a second run sends only what is new.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mandate_core::audit::syslog::{StreamOptions, SyslogTarget};

use crate::endpoint::{AGENT, Endpoint};

/// A private rsyslogd listening on 127.0.0.1:`port`, writing each message's MSG part (our OCSF
/// JSON) as one line to `out`.
struct Rsyslog {
    child: Child,
    out: PathBuf,
}

impl Rsyslog {
    fn start(dir: &Path, port: u16) -> Self {
        Self::start_with(dir, port, None)
    }

    /// With `tls`: (certificate, key) PEM files; rsyslog's OpenSSL driver then accepts only
    /// TLS (RFC 5425) on the port.
    fn start_with(dir: &Path, port: u16, tls: Option<(&Path, &Path)>) -> Self {
        let out = dir.join("received.log");
        let work = dir.join("work");
        std::fs::create_dir_all(&work).unwrap();
        let conf = dir.join("rsyslog.conf");
        let (global_tls, module) = match tls {
            None => (String::new(), "module(load=\"imtcp\")".to_string()),
            Some((cert, key)) => (
                format!(
                    " defaultNetstreamDriver=\"ossl\" defaultNetstreamDriverCAFile=\"{c}\" \
                     defaultNetstreamDriverCertFile=\"{c}\" defaultNetstreamDriverKeyFile=\"{k}\"",
                    c = cert.display(),
                    k = key.display()
                ),
                "module(load=\"imtcp\" streamDriver.name=\"ossl\" streamDriver.mode=\"1\" \
                 streamDriver.authMode=\"anon\")"
                    .to_string(),
            ),
        };
        std::fs::write(
            &conf,
            format!(
                "global(workDirectory=\"{work}\"{global_tls})\n\
                 {module}\n\
                 input(type=\"imtcp\" port=\"{port}\" address=\"127.0.0.1\")\n\
                 template(name=\"msgonly\" type=\"string\" string=\"%msg%\\n\")\n\
                 *.* action(type=\"omfile\" file=\"{out}\" template=\"msgonly\")\n",
                work = work.display(),
                out = out.display()
            ),
        )
        .unwrap();
        let child = Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rsyslogd (apt-get install -y rsyslog)");
        // Wait until it listens.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "rsyslogd did not start listening"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Rsyslog { child, out }
    }

    /// The sequence numbers received so far. rsyslog may be writing a line while it is read,
    /// so only complete lines (ending in a newline) count.
    fn seqs(&self) -> Vec<u64> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .split_inclusive('\n')
            .filter(|l| l.ends_with('\n'))
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l.trim())
                    .unwrap_or_else(|e| panic!("not OCSF JSON ({e}): {l}"));
                assert_eq!(v["metadata"]["product"]["name"], "Mandate");
                v["metadata"]["sequence"].as_u64().unwrap()
            })
            .collect()
    }

    fn wait_for(&self, n: usize) -> Vec<u64> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.seqs();
            if s.len() >= n || Instant::now() > deadline {
                return s;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn fast() -> StreamOptions {
    StreamOptions {
        poll: Duration::from_millis(50),
        backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        hostname: "test-host".into(),
        ..Default::default()
    }
}

#[test]
fn events_reach_a_real_rsyslog_and_none_are_dropped_while_it_is_down() {
    let ep = Endpoint::start();
    for _ in 0..40 {
        ep.token(AGENT, &[]);
    }
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let target = SyslogTarget {
        address: format!("127.0.0.1:{port}"),
        tls: false,
        ca_file: None,
    };

    // Nobody listens: a one-shot run fails clearly and sends nothing.
    let stop = AtomicBool::new(false);
    let mut errors = Vec::new();
    let err =
        ep.m.stream_audit_syslog(
            &target,
            &StreamOptions {
                once: true,
                max_attempts: Some(2),
                ..fast()
            },
            &stop,
            &mut |e| errors.push(e.to_string()),
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("could not be reached") && err.contains("pending"),
        "{err}"
    );
    assert_eq!(
        errors.len(),
        2,
        "each failed attempt is reported: {errors:?}"
    );

    // A following stream started while the server is still down keeps retrying...
    let m = ep.m.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let seen_errors = Arc::new(Mutex::new(0usize));
    let follower = {
        let (stop, seen, target) = (stop.clone(), seen_errors.clone(), target.clone());
        std::thread::spawn(move || {
            m.stream_audit_syslog(&target, &fast(), &stop, &mut |_| {
                *seen.lock().unwrap() += 1;
            })
            .unwrap()
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(*seen_errors.lock().unwrap() > 0, "it is retrying");
    // ...and delivers everything once the server comes up, then new events as they happen.
    let server = Rsyslog::start(tmp.path(), port);
    let total = ep.m.verify_audit().unwrap().events as usize;
    let got = server.wait_for(total);
    assert_eq!(
        got,
        (1..=total as u64).collect::<Vec<_>>(),
        "every event, once, in order"
    );
    for _ in 0..5 {
        ep.token(AGENT, &[]);
    }
    let got = server.wait_for(total + 5);
    assert_eq!(got.len(), total + 5);
    stop.store(true, Ordering::Relaxed);
    let sent = follower.join().unwrap();
    assert_eq!(sent as usize, total + 5);

    // A later one-shot run resumes from the cursor: nothing is sent twice.
    let sent =
        ep.m.stream_audit_syslog(
            &target,
            &StreamOptions {
                once: true,
                ..fast()
            },
            &AtomicBool::new(false),
            &mut |_| {},
        )
        .unwrap();
    assert_eq!(sent, 0);
}

/// A self-signed certificate for 127.0.0.1 and localhost, made with the openssl command.
fn loopback_cert(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}-key.pem")),
    );
    let st = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        // A server certificate, not a CA: the client trusts this very certificate.
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl (apt-get install -y openssl)");
    assert!(st.success());
    (cert, key)
}

#[test]
fn events_reach_a_real_rsyslog_over_tls_and_an_untrusted_server_gets_nothing() {
    let ep = Endpoint::start();
    for _ in 0..10 {
        ep.token(AGENT, &[]);
    }
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = loopback_cert(tmp.path(), "syslog");
    let (other, _) = loopback_cert(tmp.path(), "other");
    let port = free_port();
    let server = Rsyslog::start_with(tmp.path(), port, Some((&cert, &key)));
    let once = StreamOptions {
        once: true,
        max_attempts: Some(2),
        ..fast()
    };

    // A client that trusts another certificate refuses the handshake and sends nothing.
    let untrusted = SyslogTarget {
        address: format!("127.0.0.1:{port}"),
        tls: true,
        ca_file: Some(other.clone()),
    };
    let mut errors = Vec::new();
    let err =
        ep.m.stream_audit_syslog(&untrusted, &once, &AtomicBool::new(false), &mut |e| {
            errors.push(e.to_string())
        })
        .unwrap_err()
        .to_string();
    assert!(
        err.to_lowercase().contains("certificate") || err.to_lowercase().contains("tls"),
        "{err}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        server.seqs().is_empty(),
        "nothing reached an untrusted server"
    );

    // Trusting its certificate, every event arrives, once, in order.
    let target = SyslogTarget {
        ca_file: Some(cert.clone()),
        ..untrusted
    };
    let sent =
        ep.m.stream_audit_syslog(&target, &once, &AtomicBool::new(false), &mut |_| {})
            .unwrap();
    let total = ep.m.verify_audit().unwrap().events as usize;
    assert_eq!(sent as usize, total);
    assert_eq!(
        server.wait_for(total),
        (1..=total as u64).collect::<Vec<_>>()
    );
    // The wire carried TLS, not plain syslog: a plain TCP client's message is not logged.
    let plain = SyslogTarget {
        tls: false,
        ca_file: None,
        ..target
    };
    ep.token(AGENT, &[]);
    let _ =
        ep.m.stream_audit_syslog(&plain, &once, &AtomicBool::new(false), &mut |_| {});
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(server.seqs().len(), total, "plain text was not accepted");
}
