//! Read-only SQLite connections for the endpoint's lookups (agents, keys, connections, token
//! state), so that reads never wait behind the group committer's fsync on the shared
//! write connection. Under WAL each read transaction (one per [`Readers::with`] call) sees the
//! newest state committed when it starts, so a revocation is visible to the next request after
//! it commits, as on the write connection.
//!
//! Statements are prepared once per connection (`prepare_cached`); only the parsed SQL is
//! kept, never a result. Each [`Readers::with`] call is one read transaction: its statements
//! see one snapshot, and SQLite takes its WAL read lock (and revalidates its page cache after
//! a commit) once per call instead of once per statement.
//!
//! What it is not: a cache. Nothing read here outlives the request, except the agent facts
//! that [`RegistryMemo`] keeps while the registry's generation is unchanged (see there).

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::registry_memo::RegistryMemo;
use crate::Mandate;
use crate::error::{Error, Result};

/// A few read-only connections, used round-robin.
pub(crate) struct Readers {
    pool: Vec<Mutex<Connection>>,
    next: AtomicUsize,
    /// Client authentication's reads of the registry, reused while it is unchanged.
    pub registry: RegistryMemo,
}

impl std::fmt::Debug for Readers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readers")
            .field("connections", &self.pool.len())
            .finish()
    }
}

impl Readers {
    /// Open `n` read-only connections to `m`'s database.
    pub fn open(m: &Mandate, n: usize) -> Result<Self> {
        let path = m.data_dir().join(crate::store::DB_FILE);
        let mut pool = Vec::with_capacity(n);
        for _ in 0..n.max(1) {
            let c = Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            c.busy_timeout(Duration::from_secs(10))?;
            c.set_prepared_statement_cache_capacity(64);
            pool.push(Mutex::new(c));
        }
        Ok(Readers {
            pool,
            next: AtomicUsize::new(0),
            registry: RegistryMemo::default(),
        })
    }

    /// Run `f` in one read transaction on a free connection (or wait for one).
    pub fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..self.pool.len() {
            if let Ok(c) = self.pool[(start + i) % self.pool.len()].try_lock() {
                return snapshot(&c, f);
            }
        }
        let c = self.pool[start % self.pool.len()]
            .lock()
            .map_err(|_| Error::Storage("a read connection was poisoned".into()))?;
        snapshot(&c, f)
    }
}

/// `f` inside `BEGIN` ... `COMMIT` (a read transaction; nothing to roll back).
fn snapshot<T>(c: &Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    c.prepare_cached("BEGIN")?.execute([])?;
    let out = f(c);
    // Ending a read transaction cannot lose anything; if it fails, the next BEGIN reports it.
    let _ = c.prepare_cached("COMMIT").and_then(|mut s| s.execute([]));
    out
}
