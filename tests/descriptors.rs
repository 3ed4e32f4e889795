//! `mandate serve` keeps no descriptor for a connection that has ended (issue 22 §4, the
//! soak's "no file-descriptor growth"). The soak's total count follows its load generator's
//! connection pool (one descriptor per client connection the server holds open), so it rises
//! and falls with the clients; this test holds what a leak would break: after many
//! connections of every ending (answered and closed, kept alive and dropped, dropped in the
//! middle of a request, dropped before a byte), once the server has seen them all close it
//! holds no more descriptors than before them.
//!
//! Counted from /proc (Linux): the server's descriptors, and which of them are connections
//! accepted on its port (`/proc/PID/net/tcp`), so the test can wait until none is left.

use std::collections::HashSet;
use std::io::Write as _;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::faults::Served;
use crate::fixture::Env;

/// The inodes of the TCP connections (not the listener) on `port`, as `pid` sees them.
fn connection_inodes(pid: u32, port: u16) -> HashSet<String> {
    let mut out = HashSet::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 {
                continue;
            }
            let local_port = f[1]
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            // 0A is LISTEN.
            if local_port == Some(port) && f[3] != "0A" {
                out.insert(f[9].to_string());
            }
        }
    }
    out
}

/// (all descriptors, those that are connections accepted on `port`) of process `pid`.
fn descriptors(pid: u32, port: u16) -> (usize, usize) {
    let conns = connection_inodes(pid, port);
    let (mut all, mut accepted) = (0, 0);
    for e in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        let Ok(target) = std::fs::read_link(e.path()) else {
            continue;
        };
        all += 1;
        let t = target.to_string_lossy();
        if t.strip_prefix("socket:[")
            .and_then(|r| r.strip_suffix(']'))
            .is_some_and(|i| conns.contains(i))
        {
            accepted += 1;
        }
    }
    (all, accepted)
}

/// Wait until the server holds no accepted connection; its descriptor count then.
fn settled(pid: u32, port: u16) -> usize {
    let started = Instant::now();
    loop {
        let (all, accepted) = descriptors(pid, port);
        if accepted == 0 {
            return all;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the server still holds {accepted} client connections 15 s after every client closed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_keeps_no_descriptor_of_a_closed_connection() {
    let s = Served::new(Env::new());
    let pid = s.pid();
    // Warm-up: the store's readers and every lazily opened file are open after this.
    for _ in 0..40 {
        assert_eq!(s.token().status, 200);
    }
    let before = settled(pid, s.port);
    let rounds = 3;
    for _ in 0..rounds {
        // Answered and closed (each request on its own connection).
        for _ in 0..60 {
            assert_eq!(s.token().status, 200);
        }
        // Opened and held, then dropped by the client before a byte.
        let idle: Vec<TcpStream> = (0..40)
            .map(|_| TcpStream::connect(("127.0.0.1", s.port)).unwrap())
            .collect();
        // Dropped in the middle of a request (headers sent, body promised, never sent).
        let partial: Vec<TcpStream> = (0..40)
            .map(|_| {
                let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
                let head = format!(
                    "POST /oauth2/token HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\
                     Content-Type: application/x-www-form-urlencoded\r\n\
                     Content-Length: 500\r\n\r\nclient_id=",
                    s.port
                );
                c.write_all(head.as_bytes()).unwrap();
                c
            })
            .collect();
        // Accepted (out of the listen backlog) before they are dropped.
        let started = Instant::now();
        while descriptors(pid, s.port).1 < 80 {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the server did not accept the 80 open connections: {:?}",
                descriptors(pid, s.port)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(idle);
        drop(partial);
    }
    let after = settled(pid, s.port);
    assert!(
        after <= before,
        "mandate serve held {before} descriptors before {} connections and {after} after they \
         all closed: it keeps descriptors of closed connections",
        rounds * 140
    );
}
