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

use crate::store::{Tx, params};

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
pub(crate) fn generation(conn: &Tx<'_>) -> Result<i64> {
    conn.query_row(
        "SELECT n FROM registry_generation WHERE id = 1",
        params![],
        |r| r.get(0),
    )
}

impl RegistryMemo {
    /// The agent named exactly `name` and every connection, as in `conn`'s snapshot. `conn`
    /// must be inside a read transaction (see `Readers::with`), so that the generation and
    /// anything read after it come from one snapshot.
    pub fn agent(&self, conn: &Tx<'_>, name: &str) -> Result<Option<Found>> {
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

    use super::*;
    use crate::store::testing::{TestStore, each_store};
    use crate::store::{Conn, Dialect};

    const T: &str = "2026-11-01T09:00:00.000000Z";

    /// A 32-byte key in SQL, as each store spells it.
    fn zero32(s: &TestStore) -> &'static str {
        s.dialect()
            .pick("zeroblob(32)", "decode(repeat('00', 32), 'hex')")
    }

    /// A migrated database with one member, connection and agent (one scope, one key), and a
    /// connection to it for writes.
    fn db(s: &TestStore) -> Conn {
        let mut w = s.conn();
        let key = zero32(s);
        w.auto(|tx| {
            tx.execute_batch(&format!(
                "INSERT INTO members (id, name, created_at) VALUES ('m1', 'founder', '{T}');
                 INSERT INTO connections (id, name, base_url, created_at, updated_at)
                     VALUES ('c1', 'github', 'https://api.github.com', '{T}', '{T}');
                 INSERT INTO agents (id, name, purpose, owner_id, created_at, updated_at)
                     VALUES ('a1', 'bot', 'tests', 'm1', '{T}', '{T}');
                 INSERT INTO agent_scopes (agent_id, scope, connection_id)
                     VALUES ('a1', 'github:repo.read', 'c1');
                 INSERT INTO agent_keys (kid, agent_id, public_key, origin, created_at)
                     VALUES ('k1', 'a1', {key}, 'registered', '{T}');"
            ))
        })
        .unwrap();
        w
    }

    fn reader(s: &TestStore) -> Conn {
        crate::store::Store::open(s.location())
            .unwrap()
            .0
            .reader()
            .unwrap()
    }

    fn run(w: &mut Conn, sql: &str) {
        w.auto(|tx| tx.execute_batch(sql)).unwrap();
    }

    fn gen_of(c: &mut Conn) -> i64 {
        c.auto(generation).unwrap()
    }

    /// What the memo answers, and what a fresh read of the same snapshot gives, as text.
    fn both(memo: &RegistryMemo, c: &mut Conn) -> (String, String) {
        c.snapshot(|tx| {
            let got = memo.agent(tx, "bot").unwrap();
            let fresh = client_agent::facts(tx, "bot")
                .unwrap()
                .map(|f| (f, policy::connections(tx).unwrap()));
            Ok((
                format!("{:?}", got.map(|(a, c)| ((*a).clone(), (*c).clone()))),
                format!("{fresh:?}"),
            ))
        })
        .unwrap()
    }

    #[test]
    fn every_change_to_what_authentication_reads_raises_the_generation() {
        each_store(|s| {
            let mut w = db(s);
            let key = zero32(s);
            let changes = [
                "INSERT INTO members (id, name, created_at) VALUES ('m2', 'cofounder', 'x')".into(),
                "UPDATE members SET email = 'a@b.example' WHERE id = 'm2'".into(),
                "DELETE FROM members WHERE id = 'm2'".into(),
                "INSERT INTO connections (id, name, base_url, created_at, updated_at)
                     VALUES ('c2', 'slack', 'https://slack.com', 'x', 'x')"
                    .into(),
                "UPDATE connections SET trust_floor = 'TRUSTED' WHERE id = 'c2'".into(),
                "DELETE FROM connections WHERE id = 'c2'".into(),
                "INSERT INTO agents (id, name, purpose, created_at, updated_at)
                     VALUES ('a2', 'other', 'p', 'x', 'x')"
                    .into(),
                "UPDATE agents SET status = 'suspended' WHERE id = 'a1'".into(),
                "INSERT INTO agent_scopes (agent_id, scope, connection_id)
                     VALUES ('a2', 'github:repo.read', 'c1')"
                    .into(),
                "UPDATE agent_scopes SET scope = 'github:x' WHERE agent_id = 'a2'".into(),
                "DELETE FROM agent_scopes WHERE agent_id = 'a2'".into(),
                format!(
                    "INSERT INTO agent_keys (kid, agent_id, public_key, origin, created_at)
                     VALUES ('k2', 'a2', {key}, 'registered', 'x')"
                ),
                "UPDATE agent_keys SET expires_at = 'y' WHERE kid = 'k2'".into(),
                "DELETE FROM agent_keys WHERE kid = 'k2'".into(),
                "DELETE FROM agents WHERE id = 'a2'".into(),
            ];
            let mut last = gen_of(&mut w);
            for sql in changes {
                let sql: String = sql;
                run(&mut w, &sql);
                let now = gen_of(&mut w);
                assert!(now > last, "no new generation after: {sql}");
                last = now;
            }
            // What the audit trail and token state write is not part of it.
            run(
                &mut w,
                "INSERT INTO meta (key, value) VALUES ('unrelated', 'x')",
            );
            assert_eq!(gen_of(&mut w), last);
        });
    }

    #[test]
    fn the_memo_answers_what_a_fresh_read_of_the_same_snapshot_would() {
        each_store(|s| {
            let mut w = db(s);
            let mut r = reader(s);
            let memo = RegistryMemo::default();
            let (got, fresh) = both(&memo, &mut r);
            assert_eq!(got, fresh);
            assert!(got.contains("Active"), "{got}");
            assert_eq!(memo.reads.load(Ordering::Relaxed), 1);
            // Nothing changed: the second answer is the memo's, and the same.
            assert_eq!(both(&memo, &mut r), (got.clone(), fresh));
            assert_eq!(memo.reads.load(Ordering::Relaxed), 1);
            // An audit write (any other commit) changes nothing.
            run(&mut w, "INSERT INTO meta (key, value) VALUES ('k', 'v')");
            both(&memo, &mut r);
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
                run(&mut w, sql);
                let (got, fresh) = both(&memo, &mut r);
                assert_eq!(got, fresh, "after: {sql}");
                assert!(
                    got.contains(shows),
                    "after {sql}, expected {shows} in {got}"
                );
                assert_eq!(memo.reads.load(Ordering::Relaxed), i + 2, "after: {sql}");
            }
            run(
                &mut w,
                "DELETE FROM agent_keys; DELETE FROM agent_scopes; DELETE FROM agents",
            );
            assert_eq!(both(&memo, &mut r), ("None".into(), "None".into()));
        });
    }

    #[test]
    fn an_older_snapshot_gets_its_own_answer_and_never_replaces_a_newer_one() {
        each_store(|s| {
            let mut w = db(s);
            let (mut old, mut new) = (reader(s), reader(s));
            let memo = RegistryMemo::default();
            // `old` takes its snapshot before the suspension commits.
            old.snapshot(|otx| {
                assert_eq!(generation(otx).unwrap(), gen_of(&mut w));
                run(&mut w, "UPDATE agents SET status = 'suspended'");
                let (got, _) = both(&memo, &mut new);
                assert!(got.contains("Suspended"), "{got}");
                let (a, _) = memo.agent(otx, "bot").unwrap().unwrap();
                assert!(
                    format!("{a:?}").contains("Active"),
                    "its own snapshot: {a:?}"
                );
                Ok(())
            })
            .unwrap();
            let reads = memo.reads.load(Ordering::Relaxed);
            let (got, fresh) = both(&memo, &mut new);
            assert_eq!(got, fresh);
            assert!(got.contains("Suspended"), "{got}");
            assert_eq!(
                memo.reads.load(Ordering::Relaxed),
                reads,
                "still remembered"
            );
        });
    }

    #[test]
    fn unknown_client_ids_are_not_remembered() {
        each_store(|s| {
            let _w = db(s);
            let mut r = reader(s);
            let memo = RegistryMemo::default();
            r.snapshot(|tx| {
                for i in 0..10 {
                    assert!(memo.agent(tx, &format!("nobody-{i}")).unwrap().is_none());
                }
                Ok(())
            })
            .unwrap();
            assert!(memo.current.lock().unwrap().agents.is_empty());
            let _ = Dialect::Sqlite;
        });
    }
}
