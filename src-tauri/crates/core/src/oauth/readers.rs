//! Read-only connections for the endpoint's lookups (agents, keys, connections, token
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

use super::registry_memo::RegistryMemo;
use crate::Mandate;
use crate::error::{Error, Result};
use crate::store::{Conn, Tx};

/// A few read-only connections, used round-robin.
pub(crate) struct Readers {
    pool: Vec<Mutex<Conn>>,
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
        let mut pool = Vec::with_capacity(n);
        for _ in 0..n.max(1) {
            pool.push(Mutex::new(m.store().reader()?));
        }
        Ok(Readers {
            pool,
            next: AtomicUsize::new(0),
            registry: RegistryMemo::default(),
        })
    }

    /// Run `f` in one read transaction on a free connection (or wait for one).
    pub fn with<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..self.pool.len() {
            if let Ok(mut c) = self.pool[(start + i) % self.pool.len()].try_lock() {
                return c.snapshot(f);
            }
        }
        let mut c = self.pool[start % self.pool.len()]
            .lock()
            .map_err(|_| Error::Storage("a read connection was poisoned".into()))?;
        c.snapshot(f)
    }
}
