//! What client authentication read about an agent, reused for as long as the registry has not
//! changed since.
//!
//! Why it exists: every token request needs the agent, its grants and keys, and every
//! connection. SQLite drops a read connection's whole page cache when any other connection has
//! committed, and the audit trail commits after every few tokens, so those reads started cold
//! on nearly every request: 15 % of the HTTP workers' CPU (docs/BENCHMARKS.md).
//!
//! Why it is safe: schema 7 keeps a generation number (`registry_generation.n`) that triggers
//! raise in the same transaction as any insert, update or delete of a member, connection,
//! agent, agent scope or agent key, the five tables these reads use; no code path can change
//! them without raising it. Each lookup reads the number *in the request's own snapshot* and
//! reuses facts only when they were read at exactly that number, so a request sees what a fresh
//! read in its snapshot would see: a revocation, suspension, removed key or raised trust floor
//! applies from the next request after it commits, as before. Facts read in an older snapshot
//! than the memo's never replace newer ones. Nothing that depends on the time is kept: the
//! trust state and key expiry are worked out for each request ([`AgentFacts::at`]).
//!
//! What it is not: a cache of decisions, or of anything outside those five tables (token state,
//! used `jti`s and delegations are read fresh on every request). Unknown client ids are never
//! remembered, and it holds at most [`MAX_AGENTS`] agents.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use super::client_agent::{self, AgentFacts};
use super::policy::{self, ConnInfo};
use crate::error::Result;

/// Most agents remembered for one generation; past that, lookups read without remembering.
pub(crate) const MAX_AGENTS: usize = 4096;

/// An agent's facts and every connection, as read in one snapshot.
pub(crate) type Found = (Arc<AgentFacts>, Arc<Vec<ConnInfo>>);

/// The registry as last read, for one generation.
#[derive(Debug, Default)]
struct Generation {
    n: i64,
    agents: HashMap<String, Arc<AgentFacts>>,
    conns: Option<Arc<Vec<ConnInfo>>>,
}

/// Facts about agents and connections, valid for one registry generation.
#[derive(Debug, Default)]
pub(crate) struct RegistryMemo {
    current: Mutex<Generation>,
    /// How many lookups read the agent tables (for tests).
    #[cfg(test)]
    pub reads: std::sync::atomic::AtomicUsize,
}

/// The registry's generation in `conn`'s snapshot.
pub(crate) fn generation(conn: &Connection) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT n FROM registry_generation WHERE id = 1")?
        .query_row([], |r| r.get(0))?)
}

impl RegistryMemo {
    /// The agent named exactly `name` and every connection, as in `conn`'s snapshot. `conn`
    /// must be inside a read transaction (see `Readers::with`), so that the generation and
    /// anything read after it come from one snapshot.
    pub fn agent(&self, conn: &Connection, name: &str) -> Result<Option<Found>> {
        let n = generation(conn)?;
        let (known, conns) = match self.current.lock() {
            Ok(g) if g.n == n => (g.agents.get(name).cloned(), g.conns.clone()),
            _ => (None, None),
        };
        if let (Some(a), Some(c)) = (&known, &conns) {
            return Ok(Some((a.clone(), c.clone())));
        }
        #[cfg(test)]
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Some(facts) = client_agent::facts(conn, name)? else {
            return Ok(None);
        };
        let facts = Arc::new(facts);
        let conns = match conns {
            Some(c) => c,
            None => Arc::new(policy::connections(conn)?),
        };
        if let Ok(mut g) = self.current.lock() {
            if n > g.n {
                *g = Generation {
                    n,
                    ..Generation::default()
                };
            }
            if n == g.n {
                if g.agents.len() < MAX_AGENTS {
                    g.agents.insert(name.to_string(), facts.clone());
                }
                g.conns.get_or_insert_with(|| conns.clone());
            }
        }
        Ok(Some((facts, conns)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use std::sync::atomic::Ordering;

    use rusqlite::{Connection, OpenFlags};

    use super::*;

    const T: &str = "2026-11-01T09:00:00.000000Z";

    /// A migrated database with one member, connection and agent (one scope, one key).
    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let w = crate::store::open(dir.path()).unwrap();
        w.execute_batch(&format!(
            "INSERT INTO members (id, name, created_at) VALUES ('m1', 'founder', '{T}');
             INSERT INTO connections (id, name, base_url, created_at, updated_at)
                 VALUES ('c1', 'github', 'https://api.github.com', '{T}', '{T}');
             INSERT INTO agents (id, name, purpose, owner_id, created_at, updated_at)
                 VALUES ('a1', 'bot', 'tests', 'm1', '{T}', '{T}');
             INSERT INTO agent_scopes (agent_id, scope, connection_id)
                 VALUES ('a1', 'github:repo.read', 'c1');
             INSERT INTO agent_keys (kid, agent_id, public_key, origin, created_at)
                 VALUES ('k1', 'a1', zeroblob(32), 'registered', '{T}');"
        ))
        .unwrap();
        (dir, w)
    }

    fn reader(dir: &tempfile::TempDir) -> Connection {
        Connection::open_with_flags(
            dir.path().join(crate::store::DB_FILE),
            OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap()
    }

    /// What the memo answers, and what a fresh read of the same snapshot gives, as text.
    fn both(memo: &RegistryMemo, c: &Connection) -> (String, String) {
        c.execute_batch("BEGIN").unwrap();
        let got = memo.agent(c, "bot").unwrap();
        let fresh = client_agent::facts(c, "bot")
            .unwrap()
            .map(|f| (f, policy::connections(c).unwrap()));
        c.execute_batch("COMMIT").unwrap();
        (
            format!("{:?}", got.map(|(a, c)| ((*a).clone(), (*c).clone()))),
            format!("{fresh:?}"),
        )
    }

    #[test]
    fn every_change_to_what_authentication_reads_raises_the_generation() {
        let (_dir, w) = db();
        let changes = [
            "INSERT INTO members (id, name, created_at) VALUES ('m2', 'cofounder', 'x')",
            "UPDATE members SET email = 'a@b.example' WHERE id = 'm2'",
            "DELETE FROM members WHERE id = 'm2'",
            "INSERT INTO connections (id, name, base_url, created_at, updated_at)
                 VALUES ('c2', 'slack', 'https://slack.com', 'x', 'x')",
            "UPDATE connections SET trust_floor = 'TRUSTED' WHERE id = 'c2'",
            "DELETE FROM connections WHERE id = 'c2'",
            "INSERT INTO agents (id, name, purpose, created_at, updated_at)
                 VALUES ('a2', 'other', 'p', 'x', 'x')",
            "UPDATE agents SET status = 'suspended' WHERE id = 'a1'",
            "INSERT INTO agent_scopes (agent_id, scope, connection_id)
                 VALUES ('a2', 'github:repo.read', 'c1')",
            "UPDATE agent_scopes SET scope = 'github:x' WHERE agent_id = 'a2'",
            "DELETE FROM agent_scopes WHERE agent_id = 'a2'",
            "INSERT INTO agent_keys (kid, agent_id, public_key, origin, created_at)
                 VALUES ('k2', 'a2', zeroblob(32), 'registered', 'x')",
            "UPDATE agent_keys SET expires_at = 'y' WHERE kid = 'k2'",
            "DELETE FROM agent_keys WHERE kid = 'k2'",
            "DELETE FROM agents WHERE id = 'a2'",
        ];
        let mut last = generation(&w).unwrap();
        for sql in changes {
            w.execute(sql, []).unwrap();
            let now = generation(&w).unwrap();
            assert!(now > last, "no new generation after: {sql}");
            last = now;
        }
        // What the audit trail and token state write is not part of it.
        w.execute(
            "INSERT INTO meta (key, value) VALUES ('unrelated', 'x')",
            [],
        )
        .unwrap();
        assert_eq!(generation(&w).unwrap(), last);
    }

    #[test]
    fn the_memo_answers_what_a_fresh_read_of_the_same_snapshot_would() {
        let (dir, w) = db();
        let r = reader(&dir);
        let memo = RegistryMemo::default();
        let (got, fresh) = both(&memo, &r);
        assert_eq!(got, fresh);
        assert!(got.contains("Active"), "{got}");
        assert_eq!(memo.reads.load(Ordering::Relaxed), 1);
        // Nothing changed: the second answer is the memo's, and the same.
        assert_eq!(both(&memo, &r), (got.clone(), fresh));
        assert_eq!(memo.reads.load(Ordering::Relaxed), 1);
        // An audit write (any other commit) changes nothing.
        w.execute("INSERT INTO meta (key, value) VALUES ('k', 'v')", [])
            .unwrap();
        both(&memo, &r);
        assert_eq!(memo.reads.load(Ordering::Relaxed), 1);

        let changes = [
            (
                "UPDATE agents SET status = 'suspended' WHERE id = 'a1'",
                "Suspended",
            ),
            (
                "UPDATE agent_keys SET expires_at = '2026-11-02T09:00:00.000000Z'",
                "2026-11-02",
            ),
            (
                "INSERT INTO agent_scopes (agent_id, scope, connection_id)
                     VALUES ('a1', 'github:repo.write', 'c1')",
                "repo.write",
            ),
            ("UPDATE connections SET trust_floor = 'TRUSTED'", "Trusted"),
            (
                "UPDATE agents SET owner_id = NULL; DELETE FROM members",
                "has_owner: false",
            ),
            ("UPDATE agents SET dpop_required = 1", "dpop_required: true"),
        ];
        for (i, (sql, shows)) in changes.into_iter().enumerate() {
            w.execute_batch(sql).unwrap();
            let (got, fresh) = both(&memo, &r);
            assert_eq!(got, fresh, "after: {sql}");
            assert!(
                got.contains(shows),
                "after {sql}, expected {shows} in {got}"
            );
            assert_eq!(memo.reads.load(Ordering::Relaxed), i + 2, "after: {sql}");
        }
        w.execute_batch("DELETE FROM agent_keys; DELETE FROM agent_scopes; DELETE FROM agents")
            .unwrap();
        assert_eq!(both(&memo, &r), ("None".into(), "None".into()));
    }

    #[test]
    fn an_older_snapshot_gets_its_own_answer_and_never_replaces_a_newer_one() {
        let (dir, w) = db();
        let (old, new) = (reader(&dir), reader(&dir));
        let memo = RegistryMemo::default();
        // `old` takes its snapshot before the suspension commits.
        old.execute_batch("BEGIN").unwrap();
        assert_eq!(generation(&old).unwrap(), generation(&w).unwrap());
        w.execute("UPDATE agents SET status = 'suspended'", [])
            .unwrap();
        let (got, _) = both(&memo, &new);
        assert!(got.contains("Suspended"), "{got}");
        let (a, _) = memo.agent(&old, "bot").unwrap().unwrap();
        assert!(
            format!("{a:?}").contains("Active"),
            "its own snapshot: {a:?}"
        );
        old.execute_batch("COMMIT").unwrap();
        let reads = memo.reads.load(Ordering::Relaxed);
        let (got, fresh) = both(&memo, &new);
        assert_eq!(got, fresh);
        assert!(got.contains("Suspended"), "{got}");
        assert_eq!(
            memo.reads.load(Ordering::Relaxed),
            reads,
            "still remembered"
        );
    }

    #[test]
    fn unknown_client_ids_are_not_remembered() {
        let (dir, _w) = db();
        let r = reader(&dir);
        let memo = RegistryMemo::default();
        r.execute_batch("BEGIN").unwrap();
        for i in 0..10 {
            assert!(memo.agent(&r, &format!("nobody-{i}")).unwrap().is_none());
        }
        r.execute_batch("COMMIT").unwrap();
        assert!(memo.current.lock().unwrap().agents.is_empty());
    }
}
