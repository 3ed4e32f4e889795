//! Issue 21 §2's live updates: `GET /team/v1/events` (server-sent events) followed by the real
//! `mandate team watch` on the members' machines (the remote host), against a real team
//! server on PostgreSQL. A change made by one member reaches another's watcher within 2
//! seconds; each sees only what their role lets them read; a watcher resumes after the last
//! event it saw without gaps or repeats (and one asked to resume past the head starts at the
//! head); a member's fifth stream is refused; a removed
//! member's stream ends.

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fixture::{PgCluster, RemoteHost, Team};
use crate::members::{Desk, add_agent};

/// A running `mandate --json team watch`: its events as they arrive, with when they arrived.
struct Watcher {
    child: Child,
    lines: mpsc::Receiver<(Instant, Value)>,
    seen: Vec<(Instant, Value)>,
}

impl Watcher {
    fn start(desk: &Desk<'_>, extra: &[&str]) -> Watcher {
        let mut args = vec!["--json", "team", "watch"];
        args.extend_from_slice(extra);
        let mut child = desk.spawn(&args);
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && tx.send((Instant::now(), v)).is_err()
                {
                    return;
                }
            }
        });
        Watcher {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Wait up to `within` for an event matching `want`; when it arrived.
    fn wait_for(&mut self, within: Duration, want: impl Fn(&Value) -> bool) -> Option<Instant> {
        let deadline = Instant::now() + within;
        if let Some((at, _)) = self.seen.iter().find(|(_, v)| want(v)) {
            return Some(*at);
        }
        while let Ok((at, v)) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            let hit = want(&v);
            self.seen.push((at, v));
            if hit {
                return Some(at);
            }
        }
        None
    }

    fn seqs(&self) -> Vec<u64> {
        self.seen
            .iter()
            .map(|(_, v)| v["seq"].as_u64().unwrap())
            .collect()
    }

    /// Wait for the process to end by itself: (exit code, stderr).
    fn ended(mut self, within: Duration) -> Option<(i32, String)> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut err = String::new();
                std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut err)
                    .unwrap();
                return Some((status.code().unwrap_or(-1), err));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn about(agent: &'static str, action: &'static str) -> impl Fn(&Value) -> bool {
    move |e: &Value| e["action"] == action && e["target"]["name"] == agent
}

#[test]
fn members_watch_the_team_trail_live_within_their_roles_and_a_removed_members_stream_ends() {
    let pg = PgCluster::new();
    let team = Team::on_postgres(&pg.url());
    let alice_code = team.init_with_admin("alice");
    team.mandate(&[
        "connection",
        "add",
        "billing-db",
        "--base-url",
        "https://billing.example",
        "--action",
        "invoices.read=GET:/invoices/**",
    ])
    .ok();
    let host = RemoteHost::new();
    let _server = team.start(host.server_ips[0], &[]);
    let alice = Desk::new(&host, &team, "alice");
    let bob = Desk::new(&host, &team, "bob");
    let carol = Desk::new(&host, &team, "carol");
    let join = |desk: &Desk<'_>, code: &str| {
        desk.mandate(&[
            "--json",
            "team",
            "join",
            &team.public_url(),
            code,
            "--server-ca",
            &crate::fixture::path_str(&team.path("ca.pem")),
            "--no-witness",
        ])
        .ok();
    };
    join(&alice, &alice_code);
    for (desk, name, role) in [(&bob, "bob", "member"), (&carol, "carol", "auditor")] {
        let inv = alice
            .mandate(&["--json", "team", "invite", name, "--role", role])
            .ok()
            .json();
        join(desk, inv["invite_code"].as_str().unwrap());
    }
    add_agent(&team, "ledger-bot", "alice");
    add_agent(&team, "ops-bot", "bob");

    let mut bobs = Watcher::start(&bob, &[]);
    let mut carols = Watcher::start(&carol, &[]);
    // Each stream's opening is audited (and, being bob's own act, is the first event he sees).
    assert!(
        bobs.wait_for(Duration::from_secs(10), |e| e["action"]
            == "member.watch_started")
            .is_some(),
        "bob's watcher started"
    );
    assert!(
        carols
            .wait_for(Duration::from_secs(10), |e| e["action"]
                == "member.watch_started")
            .is_some()
    );

    // Alice revokes bob's agent from her machine: bob sees it within 2 seconds of her
    // command's answer.
    alice
        .mandate(&["team", "revoke", "ops-bot", "--reason", "key leaked"])
        .ok();
    let done = Instant::now();
    let seen = bobs
        .wait_for(Duration::from_secs(5), about("ops-bot", "agent.revoked"))
        .expect("bob's watcher shows his agent revoked");
    let lag = seen.saturating_duration_since(done);
    assert!(
        lag <= Duration::from_secs(2),
        "seen {lag:?} after the change"
    );
    let ev = bobs
        .seen
        .iter()
        .find(|(_, e)| about("ops-bot", "agent.revoked")(e))
        .unwrap();
    assert_eq!(
        ev.1["actor"]["name"], "alice",
        "the change names who made it"
    );

    // Alice suspends her own agent: the auditor sees it, bob (a member who does not own it)
    // does not, however long he waits.
    alice
        .mandate(&["team", "suspend", "ledger-bot", "--reason", "rotating keys"])
        .ok();
    assert!(
        carols
            .wait_for(
                Duration::from_secs(5),
                about("ledger-bot", "agent.suspended")
            )
            .is_some(),
        "the auditor reads every event"
    );
    assert!(
        bobs.wait_for(
            Duration::from_secs(3),
            about("ledger-bot", "agent.suspended")
        )
        .is_none(),
        "bob reads no event of alice's agent"
    );
    assert!(
        bobs.seen
            .iter()
            .all(|(_, e)| e["target"]["name"] != "ledger-bot"),
        "{:?}",
        bobs.seen
    );

    // Resuming after an event gives exactly the events after it, in order.
    let carol_seqs = carols.seqs();
    let from = carol_seqs[0];
    let mut again = Watcher::start(&carol, &["--after", &from.to_string()]);
    let last = *carol_seqs.last().unwrap();
    again
        .wait_for(Duration::from_secs(10), |e| e["seq"].as_u64() >= Some(last))
        .expect("the resumed stream catches up");
    let resumed: Vec<u64> = again.seqs();
    assert_eq!(
        resumed[0],
        from + 1,
        "no gap after the resume point: {resumed:?}"
    );
    assert!(
        resumed.windows(2).all(|w| w[1] == w[0] + 1),
        "an auditor's resumed stream is every event, once, in order: {resumed:?}"
    );
    drop(again);

    // A resume point past the head (another server's, or this one's before a restore) starts
    // at the head: the stream's own opening is the first thing it shows.
    let mut ahead = Watcher::start(&carol, &["--after", "1000000"]);
    assert!(
        ahead
            .wait_for(Duration::from_secs(10), |e| e["action"]
                == "member.watch_started")
            .is_some(),
        "a stream asked to resume past the head shows nothing: {:?}",
        ahead.seen
    );
    drop(ahead);

    // A member may hold four streams; the fifth is refused with a sentence.
    let more: Vec<Watcher> = (0..3).map(|_| Watcher::start(&bob, &[])).collect();
    std::thread::sleep(Duration::from_secs(3));
    let fifth = bob.mandate(&["team", "watch"]);
    assert_ne!(fifth.code, 0);
    assert!(
        fifth
            .stderr
            .contains("as many event streams open as a member may"),
        "{}",
        fifth.stderr
    );
    drop(more);

    // Bob is removed: his stream ends within a few seconds, saying why.
    alice.mandate(&["team", "remove", "bob"]).ok();
    let (code, stderr) = bobs
        .ended(Duration::from_secs(8))
        .expect("a removed member's stream ends");
    assert_eq!(code, 9, "{stderr}");
    assert!(stderr.contains("no longer on this team"), "{stderr}");
}
