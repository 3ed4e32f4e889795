//! Which client-assertion and DPoP-proof `jti`s were already accepted, so that each is
//! accepted once (RFC 7523 §3, RFC 9449 §11.1), also after a restart and across processes.
//!
//! Why not a unique index: a client picks its `jti` at random, so a table keyed by it gets one
//! random page dirtied per token to record the `jti` and another to forget it, which was the
//! largest share of the bytes written per token (docs/BENCHMARKS.md). Instead the table
//! `oauth_used_jtis` is an append-only log in `seq` order, forgotten from its oldest end (and
//! row by row behind a long-lived `jti` that holds that end back), and uniqueness is checked
//! here, in memory, against every row of it.
//!
//! How long: each `jti` is kept until its assertion or proof expires (plus the clock skew), so
//! a one-hour assertion (Authlib's default lifetime) is refused as a replay for that whole hour,
//! also after a restart, while a one-minute one is forgotten a minute later.
//!
//! Why that is as strict as the index was: [`UsedJtis::consume`] runs inside the write
//! transaction, which holds SQLite's write lock, so no other writer (another process, another
//! handle) can append meanwhile; and before each check it reads the rows appended since it
//! last looked. Its memory is trusted only while the newest row it knows is still the row at
//! that `seq`: if a rolled-back transaction took rows it had remembered, or someone else's
//! pruning passed it, it reloads the whole table.
//!
//! What it is not: a cache that can say "unused" wrongly. At worst (a batch that consumed a
//! `jti` and was then rolled back) it remembers a `jti` whose row is gone until its next
//! reload, and refuses that assertion as a replay; a client signs a fresh one per request.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashSet};
use std::sync::Mutex;

use crate::store::{Tx, params};
use sha2::{Digest, Sha256};

use crate::error::Result;

/// A used `jti`, by client: the first 16 bytes of SHA-256 over both (length-prefixed).
type Key = [u8; 16];

fn key(client: &str, jti: &str) -> Key {
    let mut h = Sha256::new();
    h.update((client.len() as u64).to_be_bytes());
    h.update(client.as_bytes());
    h.update(jti.as_bytes());
    let d = h.finalize();
    let mut k = [0u8; 16];
    k.copy_from_slice(&d[..16]);
    k
}

/// The used `jti`s of the installation, as far as this process knows them.
#[derive(Default)]
pub(crate) struct UsedJtis {
    state: Mutex<State>,
}

impl std::fmt::Debug for UsedJtis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsedJtis").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    /// The table has been read into memory (and the fields below describe it).
    loaded: bool,
    /// The newest row known (`seq`, key); memory matches the table while that row is still
    /// there unchanged.
    newest: Option<(i64, Key)>,
    seen: HashSet<Key>,
    /// The capacity `seen` had right after its last growth (see [`State::make_room`]).
    seen_full: usize,
    /// Every remembered row, soonest to expire first: `(expires_at, seq, key)`. Lifetimes
    /// differ (a 60 s assertion beside Authlib's one-hour default), so rows expire out of
    /// `seq` order; forgetting by expiry keeps memory to the `jti`s still live.
    by_expiry: BinaryHeap<Reverse<(i64, i64, Key)>>,
    /// The `seq` of every remembered row, so pruning knows which rows lie behind the oldest
    /// live one.
    live_seqs: BTreeSet<i64>,
    /// `jti`s recorded through this memory; every [`PRUNE_EVERY`]th prunes.
    consumed: u64,
}

/// How often (in `jti`s recorded) the expired ones are forgotten.
const PRUNE_EVERY: u64 = 1024;

impl State {
    /// Keep `seen` at most half full, growing it while the number of live `jti`s rises, so
    /// that it never grows once that number is steady.
    ///
    /// Why: the set forgets as many `jti`s as it learns, and a hash table (std's, hashbrown)
    /// marks a forgotten slot as a tombstone that does not count as free. When the tombstones
    /// have used up the free slots, the table cleans them in place if at most half of it is
    /// live, and otherwise doubles. Left to itself, a set whose live size is steady at 65 %
    /// doubled once, minutes after warm-up: the 4.4 MB step of the soak (docs/RELIABILITY.md).
    /// Growing to twice the live size as it rises moves that doubling into the warm-up.
    fn make_room(&mut self) {
        let wanted = self.seen.len() + 1;
        if wanted > self.seen_full / 2 {
            // Above half, more than `wanted` tombstones plus free slots are left, so this always
            // grows the table, to at least 2 × wanted (hashbrown rounds up to a power of two).
            self.seen.reserve(wanted + 1);
            self.seen_full = self.seen.capacity();
            // The heap holds one entry per remembered `jti`, so it never holds more than the
            // set's half (plus the one being added) before the set grows again. Sized here, it
            // does not double on its own when the live count, steady near a power of two,
            // drifts across it between two prunes. (Not the soak's step at minute 11: that
            // was transparent huge pages, docs/RELIABILITY.md, fifth look.)
            let most = self.seen_full / 2 + 2;
            self.by_expiry
                .reserve_exact(most.saturating_sub(self.by_expiry.len()));
        }
    }

    /// Forget, from memory, the `jti`s that expired before `cutoff`; their `seq`s, in expiry
    /// order.
    fn forget_expired(&mut self, cutoff: i64) -> Vec<i64> {
        let mut expired = Vec::new();
        while let Some(Reverse((exp, seq, k))) = self.by_expiry.peek().copied() {
            if exp >= cutoff {
                break;
            }
            self.by_expiry.pop();
            self.seen.remove(&k);
            self.live_seqs.remove(&seq);
            expired.push(seq);
        }
        expired
    }
}

impl State {
    fn remember(&mut self, seq: i64, k: Key, expires_at: i64) {
        self.make_room();
        if self.seen.insert(k) {
            self.by_expiry.push(Reverse((expires_at, seq, k)));
            self.live_seqs.insert(seq);
        }
        self.newest = Some((seq, k));
    }
}

impl UsedJtis {
    /// Record `client`'s `jti` as used until `expires_at` (Unix seconds). `false` when it was
    /// used before: a replay. Every [`PRUNE_EVERY`]th call also forgets the `jti`s that
    /// expired before `now` less the clock skew allowed. Call inside the write transaction.
    pub fn consume(
        &self,
        tx: &Tx<'_>,
        client: &str,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool> {
        let mut st = self.lock();
        catch_up(&mut st, tx)?;
        let k = key(client, jti);
        if st.seen.contains(&k) {
            return Ok(false);
        }
        let seq: i64 = tx.query_row(
            "INSERT INTO oauth_used_jtis (client, jti, expires_at) VALUES (?1, ?2, ?3)
             RETURNING seq",
            params![client, jti, expires_at],
            |r| r.get(0),
        )?;
        st.remember(seq, k, expires_at);
        st.consumed += 1;
        if st.consumed.is_multiple_of(PRUNE_EVERY) {
            prune(&mut st, tx, now - super::SKEW_SECS)?;
        }
        Ok(true)
    }

    /// Forget at once what [`UsedJtis::consume`] forgets in passing (see [`prune`]).
    #[cfg(test)]
    fn prune(&self, tx: &Tx<'_>, cutoff: i64) -> Result<()> {
        prune(&mut self.lock(), tx, cutoff)
    }

    /// How many `jti`s this memory holds (tests).
    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.lock().seen.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding it can have left memory half-updated: start over from the table.
        self.state.lock().unwrap_or_else(|poisoned| {
            self.state.clear_poison();
            let mut st = poisoned.into_inner();
            *st = State::default();
            st
        })
    }
}

/// Forget `jti`s that expired before `cutoff`: from memory (by expiry, whatever their order in
/// the table), and from the table: in one range from its oldest end up to the first row still
/// needed, and then one by one where an expired row sits behind a live one (a one-hour
/// assertion recorded before many one-minute ones must not keep them all for an hour). The
/// newest row always stays, so `seq` keeps growing (SQLite reuses the largest rowid + 1;
/// PostgreSQL's identity never goes back), which is how other writers' rows are told from ones
/// already seen. Inside the write transaction.
fn prune(st: &mut State, tx: &Tx<'_>, cutoff: i64) -> Result<()> {
    let expired = st.forget_expired(cutoff);
    let newest = st.newest.map_or(i64::MAX, |(seq, _)| seq);
    tx.execute(
        "DELETE FROM oauth_used_jtis
         WHERE seq < coalesce((SELECT seq FROM oauth_used_jtis WHERE expires_at >= ?1
                               ORDER BY seq LIMIT 1), 9223372036854775807)
           AND seq < (SELECT max(seq) FROM oauth_used_jtis)",
        params![cutoff],
    )?;
    if let Some(&first_live) = st.live_seqs.first() {
        for seq in expired
            .into_iter()
            .filter(|s| *s > first_live && *s != newest)
        {
            tx.execute("DELETE FROM oauth_used_jtis WHERE seq = ?1", params![seq])?;
        }
    }
    Ok(())
}

/// Bring memory up to the table: read the rows appended since the newest one known, or the
/// whole table when that row is gone or changed (a rollback, or pruning by another writer).
fn catch_up(st: &mut State, tx: &Tx<'_>) -> Result<()> {
    let from = match (st.loaded, st.newest) {
        (true, Some((seq, _))) => seq,
        (true, None) => 0,
        (false, _) => {
            *st = State::default();
            0
        }
    };
    let mut first = true;
    let mut reload = false;
    tx.query_while(
        "SELECT seq, client, jti, expires_at FROM oauth_used_jtis WHERE seq >= ?1 ORDER BY seq",
        params![from],
        |r| {
            let seq: i64 = r.get(0)?;
            let k = key(r.get_str(1)?, r.get_str(2)?);
            let expires_at: i64 = r.get(3)?;
            if first && st.loaded {
                first = false;
                if let Some(newest) = st.newest {
                    if newest == (seq, k) {
                        return Ok(true);
                    }
                    // Not the row remembered: reload everything.
                    reload = true;
                    return Ok(false);
                }
            }
            first = false;
            st.remember(seq, k, expires_at);
            Ok(true)
        },
    )?;
    // Not the row remembered, or the newest row remembered is gone and nothing came after it.
    if reload || (first && st.loaded && st.newest.is_some()) {
        st.loaded = false;
        return catch_up(st, tx);
    }
    st.loaded = true;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Conn;
    use crate::store::testing::{TestStore, each_store};

    /// A migrated store, and a connection of its own to it.
    fn db(s: &TestStore) -> Conn {
        drop(s.open());
        s.conn()
    }

    fn count(c: &Tx<'_>) -> i64 {
        c.query_row("SELECT count(*) FROM oauth_used_jtis", params![], |r| {
            r.get(0)
        })
        .unwrap()
    }

    #[test]
    fn a_jti_is_accepted_once_per_client() {
        each_store(|s| {
            let mut conn = db(s);
            let c = conn.tx().unwrap();
            let u = UsedJtis::default();
            assert!(u.consume(&c, "a", "j1", 100, 0).unwrap());
            assert!(!u.consume(&c, "a", "j1", 100, 0).unwrap());
            // Another client may use the same jti; the length prefix keeps ("a","bj") apart from
            // ("ab","j").
            assert!(u.consume(&c, "b", "j1", 100, 0).unwrap());
            assert!(u.consume(&c, "ab", "j", 100, 0).unwrap());
            assert!(u.consume(&c, "a", "bj", 100, 0).unwrap());
            assert_eq!(count(&c), 4);
        });
    }

    #[test]
    fn a_second_handle_and_a_restart_see_every_committed_jti() {
        each_store(|s| {
            let mut conn = db(s);
            let c = conn.tx().unwrap();
            let first = UsedJtis::default();
            let second = UsedJtis::default();
            assert!(first.consume(&c, "a", "j1", 100, 0).unwrap());
            // The second learns of j1 from the table, then the first of j2 from the table.
            assert!(!second.consume(&c, "a", "j1", 100, 0).unwrap());
            assert!(second.consume(&c, "a", "j2", 100, 0).unwrap());
            assert!(!first.consume(&c, "a", "j2", 100, 0).unwrap());
            // A restart: a fresh memory reads the table.
            let restarted = UsedJtis::default();
            assert!(!restarted.consume(&c, "a", "j1", 100, 0).unwrap());
            assert!(!restarted.consume(&c, "a", "j2", 100, 0).unwrap());
        });
    }

    #[test]
    fn a_rolled_back_row_whose_seq_another_writer_reused_is_not_missed() {
        each_store(|s| {
            let mut conn = db(s);
            let u = UsedJtis::default();
            assert!(u.consume(&conn.tx().unwrap(), "a", "j1", 100, 0).unwrap());
            let rolled_back: crate::Result<()> = conn.write(|tx| {
                assert!(u.consume(tx, "a", "j2", 100, 0).unwrap());
                Err(crate::Error::Conflict("roll back".into()))
            });
            // j2's row is gone; on SQLite its seq is free again.
            assert!(rolled_back.is_err());
            let c = conn.tx().unwrap();
            // Another writer takes that seq (SQLite) or the next one (PostgreSQL) for its own jti.
            let other = UsedJtis::default();
            assert!(other.consume(&c, "a", "j3", 100, 0).unwrap());
            // The first notices the row it remembered changed, reloads, and so knows j3.
            assert!(!u.consume(&c, "a", "j3", 100, 0).unwrap());
            assert!(!u.consume(&c, "a", "j1", 100, 0).unwrap());
            // j2 was never committed: after the reload it is accepted.
            assert!(u.consume(&c, "a", "j2", 100, 0).unwrap());
        });
    }

    #[test]
    fn pruning_forgets_expired_jtis_from_the_oldest_end_and_keeps_the_newest_row() {
        each_store(|s| {
            let mut conn = db(s);
            let c = conn.tx().unwrap();
            let u = UsedJtis::default();
            assert!(u.consume(&c, "a", "old1", 10, 0).unwrap());
            assert!(u.consume(&c, "a", "old2", 10, 0).unwrap());
            assert!(u.consume(&c, "a", "live", 500, 0).unwrap());
            assert!(u.consume(&c, "a", "old3", 10, 0).unwrap());
            u.prune(&c, 100).unwrap();
            // old1 and old2 are gone; old3 stays behind the live row (in the table, and it is
            // the newest row); "live" is still refused.
            assert_eq!(count(&c), 2);
            assert!(!u.consume(&c, "a", "live", 500, 0).unwrap());
            let seq_before: i64 = c
                .query_row("SELECT max(seq) FROM oauth_used_jtis", params![], |r| {
                    r.get(0)
                })
                .unwrap();
            u.prune(&c, 1000).unwrap();
            // Everything expired, yet the newest row stays so that seq keeps growing.
            assert_eq!(count(&c), 1);
            assert!(u.consume(&c, "a", "next", 2000, 0).unwrap());
            let seq_after: i64 = c
                .query_row("SELECT max(seq) FROM oauth_used_jtis", params![], |r| {
                    r.get(0)
                })
                .unwrap();
            assert!(seq_after > seq_before);
            // And a fresh reader still refuses "next".
            assert!(
                !UsedJtis::default()
                    .consume(&c, "a", "next", 2000, 0)
                    .unwrap()
            );
        });
    }

    #[test]
    fn recording_jtis_forgets_the_expired_ones_in_passing() {
        each_store(|s| {
            let mut conn = db(s);
            let c = conn.tx().unwrap();
            let u = UsedJtis::default();
            // Expired long before `now` (1000, less the skew).
            for i in 0..PRUNE_EVERY - 1 {
                assert!(u.consume(&c, "a", &format!("old{i}"), 10, 1000).unwrap());
            }
            assert_eq!(count(&c), (PRUNE_EVERY - 1) as i64);
            // The PRUNE_EVERY-th jti prunes: only it stays (it is the newest row, and live).
            assert!(u.consume(&c, "a", "live", 5000, 1000).unwrap());
            assert_eq!(count(&c), 1);
            assert!(!u.consume(&c, "a", "live", 5000, 1000).unwrap());
        });
    }

    #[test]
    fn a_one_hour_jti_is_kept_for_its_hour_without_keeping_the_short_ones_behind_it() {
        each_store(|s| {
            let mut conn = db(s);
            let c = conn.tx().unwrap();
            let u = UsedJtis::default();
            // Authlib's default: valid for an hour from t=0.
            assert!(u.consume(&c, "authlib", "long", 3600, 0).unwrap());
            for i in 0..100 {
                assert!(u.consume(&c, "a", &format!("short{i}"), 60, 0).unwrap());
            }
            assert!(u.consume(&c, "a", "newest", 120, 0).unwrap());
            // Ten minutes on: the one-minute jtis are gone from memory and from the table, although
            // the one-hour row is older than all of them; the newest row stays (seq keeps growing).
            u.prune(&c, 600).unwrap();
            assert_eq!(count(&c), 2, "the long-lived row and the newest row");
            assert_eq!(u.remembered(), 1);
            // The hour-long one is still refused, also by a restarted process reading the table.
            assert!(!u.consume(&c, "authlib", "long", 3600, 600).unwrap());
            assert!(
                !UsedJtis::default()
                    .consume(&c, "authlib", "long", 3600, 600)
                    .unwrap()
            );
            // Past its hour (and the skew), it is forgotten too.
            u.prune(&c, 3700).unwrap();
            assert_eq!(u.remembered(), 0);
            assert!(u.consume(&c, "a", "after", 5000, 3700).unwrap());
            assert_eq!(count(&c), 2, "the previous newest row and the new one");
        });
    }

    /// Memory steady after warm-up (the soak's bar): with as many `jti`s expiring as arriving,
    /// the set and the expiry heap reach their size while the live count rises and never grow
    /// after. Without [`State::make_room`], the tombstones of forgotten `jti`s doubled the set
    /// some minutes later, and a live count that drifts across a power of two between prunes
    /// doubled the heap (15,872 live is 2^14 - 512: up to 16,896 between two prunes).
    #[test]
    fn a_steady_flow_of_jtis_does_not_grow_the_memory_after_warm_up() {
        for live in [20_000_i64, 15_872] {
            let mut st = State::default();
            let (mut grew_at, mut largest) = (0, 0);
            let (mut heap_grew_at, mut heap_largest) = (0, 0);
            for seq in 1..12 * live {
                // Each jti lives for `live` arrivals; expired ones are forgotten every
                // PRUNE_EVERY.
                let k = key("agent", &format!("jti-{seq}"));
                st.remember(seq, k, seq + live);
                if seq % PRUNE_EVERY as i64 == 0 {
                    st.forget_expired(seq);
                }
                let cap = st.seen.capacity();
                if cap > largest {
                    (grew_at, largest) = (seq, cap);
                }
                let heap = st.by_expiry.capacity();
                if heap > heap_largest {
                    (heap_grew_at, heap_largest) = (seq, heap);
                }
            }
            assert!(
                grew_at <= live,
                "the set grew after warm-up, at jti {grew_at} of a steady {live} live"
            );
            assert!(
                heap_grew_at <= live,
                "the expiry heap grew after warm-up, at jti {heap_grew_at} of a steady {live} live"
            );
            assert!(
                largest <= 8 * live as usize,
                "{largest} slots for {live} live jtis"
            );
            assert!(
                heap_largest <= 4 * live as usize,
                "{heap_largest} heap entries for {live} live jtis"
            );
            assert_eq!(st.seen.len(), st.by_expiry.len());
        }
    }
}
