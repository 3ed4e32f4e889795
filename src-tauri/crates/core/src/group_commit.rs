//! Group commit: many concurrent writers share one durable SQLite transaction.
//!
//! With `synchronous=FULL` every commit costs an fsync, which caps one-transaction-per-write at
//! a few thousand per second (FACTS.md). [`Mandate::write_grouped`] lets each caller queue a
//! write; whichever caller next gets the connection becomes the leader, runs every queued write
//! in one `BEGIN IMMEDIATE` transaction (each inside its own savepoint, so one failing write
//! rolls back only itself), commits once, and hands each caller its result. A caller returns
//! only after the transaction holding its write has committed, so "audit before response"
//! holds for every caller, and nothing is lost on shutdown: a write is either committed before
//! its caller returns or reported as failed.
//!
//! There is no background thread: the leader is always a caller that is waiting anyway.
//! Followers sleep on a condition variable, not on the connection, so one commit wakes them
//! all at once; a caller that obtains the connection checks its result first, then leads.
//!
//! What it is not: a cache or a queue that outlives the call. Use [`Mandate::write`] for
//! single changes made by people; use this for high-rate writes (token issuance, denials,
//! introspection events) and any other audit appends that arrive concurrently.

use std::sync::mpsc::{SyncSender, TryRecvError, sync_channel};
use std::sync::{Condvar, Mutex, TryLockError};

use chrono::{DateTime, Utc};
use rusqlite::{Transaction, TransactionBehavior};

use crate::Mandate;
use crate::error::{Error, Result};

/// Hands a job's result to its caller; given the commit failure, if any.
type Deliver = Box<dyn FnOnce(Option<&Error>) + Send>;
/// A queued write: runs inside the shared transaction and returns whether it succeeded.
type Job = Box<dyn FnOnce(&Transaction<'_>, DateTime<Utc>) -> (bool, Deliver) + Send>;

/// Most writes committed in one transaction; the rest wait for the next leader.
const MAX_BATCH: usize = 512;

/// The queue of writes waiting for a leader.
#[derive(Default)]
pub(crate) struct GroupQueue {
    jobs: Mutex<Vec<Job>>,
    /// Bumped and signalled each time a leader has delivered a batch.
    delivered: Mutex<u64>,
    wake: Condvar,
}

impl std::fmt::Debug for GroupQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupQueue").finish_non_exhaustive()
    }
}

/// A queued write was dropped unrun: its leader could not start a transaction.
fn not_run() -> Error {
    Error::Storage("the database could not start a transaction for this write".into())
}

fn reissue(e: &Error) -> Error {
    match e {
        Error::Busy => Error::Busy,
        other => Error::Storage(match other {
            Error::Storage(m) => m.clone(),
            o => o.to_string(),
        }),
    }
}

impl Mandate {
    /// Run `f` in a transaction shared with other concurrent callers and return once it has
    /// committed durably. `f` runs inside a savepoint: if it fails, only its own writes are
    /// rolled back. Use `audit::append` inside `f` as in [`Mandate::write`].
    pub fn write_grouped<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>, DateTime<Utc>) -> Result<T> + Send + 'static,
    {
        let (tx_res, rx_res) = sync_channel::<Result<T>>(1);
        let job: Job = Box::new(move |tx, now| run_one(tx, now, f, tx_res));
        self.group
            .jobs
            .lock()
            .map_err(|_| Error::Storage("an earlier write panicked".into()))?
            .push(job);
        let out = self.finish_grouped(rx_res);
        // Signs an audit checkpoint when one is due (every N events or M minutes).
        self.after_write();
        out
    }

    /// Wait for our write: lead a batch whenever the connection is free, otherwise sleep
    /// until a leader has delivered (followers never queue on the connection itself, so one
    /// commit wakes all of them at once).
    fn finish_grouped<T>(&self, rx: std::sync::mpsc::Receiver<Result<T>>) -> Result<T> {
        loop {
            match rx.try_recv() {
                Ok(r) => return r,
                Err(TryRecvError::Disconnected) => return Err(not_run()),
                Err(TryRecvError::Empty) => {}
            }
            let seen = *self
                .group
                .delivered
                .lock()
                .map_err(|_| Error::Storage("an earlier write panicked".into()))?;
            let conn = match self.conn.try_lock() {
                Ok(c) => Some(c),
                Err(TryLockError::WouldBlock) => None,
                Err(TryLockError::Poisoned(_)) => {
                    return Err(Error::Storage(
                        "an earlier operation panicked while writing".into(),
                    ));
                }
            };
            let Some(mut conn) = conn else {
                // Someone holds the connection: a leader (which will wake us) or another
                // writer (so look again soon).
                let g = self
                    .group
                    .delivered
                    .lock()
                    .map_err(|_| Error::Storage("an earlier write panicked".into()))?;
                if *g == seen {
                    let _ = self
                        .group
                        .wake
                        .wait_timeout(g, std::time::Duration::from_millis(2));
                }
                continue;
            };
            // Our result may have been delivered between the check above and the lock.
            match rx.try_recv() {
                Ok(r) => return r,
                Err(TryRecvError::Disconnected) => return Err(not_run()),
                Err(TryRecvError::Empty) => {}
            }
            let jobs: Vec<Job> = {
                let mut q = self
                    .group
                    .jobs
                    .lock()
                    .map_err(|_| Error::Storage("an earlier write panicked".into()))?;
                let n = q.len().min(MAX_BATCH);
                q.drain(..n).collect()
            };
            let now = self.clock.now();
            let mut delivers = Vec::with_capacity(jobs.len());
            let outcome = (|| -> Result<()> {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                for job in jobs {
                    delivers.push(job(&tx, now));
                }
                tx.commit()?;
                Ok(())
            })();
            let err = outcome.err();
            for (_, deliver) in delivers {
                deliver(err.as_ref());
            }
            drop(conn);
            if let Ok(mut g) = self.group.delivered.lock() {
                *g += 1;
            }
            self.group.wake.notify_all();
        }
    }
}

fn run_one<T, F>(
    tx: &Transaction<'_>,
    now: DateTime<Utc>,
    f: F,
    sender: SyncSender<Result<T>>,
) -> (bool, Deliver)
where
    T: Send + 'static,
    F: FnOnce(&Transaction<'_>, DateTime<Utc>) -> Result<T>,
{
    // Cached statements: the leader runs these for every write of its batch while the others
    // wait, so parsing them each time would lengthen every batch.
    let exec = |sql: &str| {
        tx.prepare_cached(sql)
            .and_then(|mut s| s.execute([]))
            .map(|_| ())
    };
    let out = match exec("SAVEPOINT grouped_write") {
        Err(e) => Err(Error::from(e)),
        Ok(()) => {
            let r = f(tx, now);
            let end = if r.is_ok() {
                exec("RELEASE grouped_write")
            } else {
                exec("ROLLBACK TO grouped_write").and_then(|()| exec("RELEASE grouped_write"))
            };
            match (r, end) {
                (Ok(v), Ok(())) => Ok(v),
                (Err(e), _) => Err(e),
                (Ok(_), Err(e)) => Err(Error::from(e)),
            }
        }
    };
    let ok = out.is_ok();
    let deliver: Deliver = Box::new(move |commit_err| {
        let r = match commit_err {
            Some(e) => Err(reissue(e)),
            None => out,
        };
        let _ = sender.send(r);
    });
    (ok, deliver)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::audit::{Actor, Decision, NewEvent};
    use crate::secret::MemoryKeychain;
    use crate::{Mandate, OpenOptions};

    #[test]
    fn concurrent_writers_all_commit_and_the_chain_holds() {
        let dir = tempfile::tempdir().unwrap();
        let m = Arc::new(
            Mandate::open(OpenOptions::new(
                dir.path(),
                Arc::new(MemoryKeychain::new()),
                Actor::app("test", "t"),
            ))
            .unwrap(),
        );
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for i in 0..25 {
                        let ev = NewEvent::new(
                            &Actor::app("test", "t"),
                            "test.grouped",
                            Decision::Allow,
                        )
                        .details(serde_json::json!({"t": t, "i": i}));
                        m.write_grouped(move |tx, now| crate::audit::append(tx, now, ev))
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let r = m.verify_audit_chain().unwrap();
        assert!(r.ok());
        assert_eq!(r.events, 200);
    }

    #[test]
    fn a_failing_write_rolls_back_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let m = Mandate::open(OpenOptions::new(
            dir.path(),
            Arc::new(MemoryKeychain::new()),
            Actor::app("test", "t"),
        ))
        .unwrap();
        let r: crate::Result<()> = m.write_grouped(|tx, now| {
            crate::audit::append(
                tx,
                now,
                NewEvent::new(&Actor::app("t", "t"), "x", Decision::Allow),
            )?;
            Err(crate::Error::Conflict("no".into()))
        });
        assert!(r.is_err());
        m.write_grouped(|tx, now| {
            crate::audit::append(
                tx,
                now,
                NewEvent::new(&Actor::app("t", "t"), "y", Decision::Allow),
            )
        })
        .unwrap();
        let r = m.verify_audit_chain().unwrap();
        assert_eq!(r.events, 1);
    }
}
