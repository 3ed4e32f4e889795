//! Group commit: many concurrent writers share one durable SQLite transaction.
//!
//! With `synchronous=FULL` every commit costs an fsync, which caps one-transaction-per-write at
//! a few thousand per second (FACTS.md). [`Mandate::submit_grouped`] queues a write for the
//! installation's *committer*, one thread that takes every write queued so far, runs them in one
//! `BEGIN IMMEDIATE` transaction (each inside its own savepoint, so one failing write rolls back
//! only itself; [`Mandate::submit_grouped_shared_fate`] skips the savepoint for writes that can
//! fail only when storage does), commits once, and only then hands each caller its result
//! through the caller's own one-shot channel. While it commits, the next writes queue up and become the next batch.
//!
//! Why a thread of its own: the earlier design let a waiting caller lead the batch and woke
//! every waiter with one condition variable after each commit, so each commit woke threads
//! whose writes were still queued, and a quarter of the endpoint's CPU went to futex wake-ups
//! and context switches (docs/BENCHMARKS.md). Now each caller is woken exactly once, when its
//! own result is ready, and an async caller (the token endpoint) holds no thread while it waits.
//!
//! Guarantees: a write's result is delivered only after the transaction holding it has
//! committed durably, so "audit before response" holds; dropping the [`Mandate`] waits for the
//! committer to finish every write already queued, so nothing is lost on shutdown; a write that
//! panics is rolled back and reported as failed without stopping the committer.
//!
//! What it is not: a cache or a queue that outlives the call. Use `Mandate::write` for
//! single changes made by people; use this for high-rate writes (token issuance, denials,
//! introspection events) and any other audit appends that arrive concurrently.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::thread::JoinHandle;

use chrono::{DateTime, Utc};
use futures_channel::oneshot;
use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::Mandate;
use crate::clock::Clock;
use crate::error::{Error, Result};

/// Hands a job's result to its caller; given the commit failure, if any.
type Deliver = Box<dyn FnOnce(Option<&Error>) + Send>;
/// A queued write: runs inside the shared transaction and returns whether the whole batch must
/// be rolled back (a [`Fate::Shared`] write failed) and how to deliver its result.
type Job = Box<dyn FnOnce(&Transaction<'_>, DateTime<Utc>) -> (bool, Deliver) + Send>;

/// What a failing write takes down with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// The write runs in its own savepoint: if it fails, only its own changes are undone.
    Own,
    /// No savepoint: if it fails, the whole batch is rolled back and every write in it fails.
    /// Cheaper (a savepoint makes SQLite copy every page it touches that the batch already
    /// changed, about a fifth of the committer's time at token rates), for writes that can
    /// only fail when storage does, which would fail the batch's commit anyway.
    Shared,
}

/// Most writes committed in one transaction; the rest form the next batch.
const MAX_BATCH: usize = 1024;

/// The committer thread and the queue into it, started on the first grouped write.
#[derive(Default)]
pub(crate) struct GroupQueue {
    committer: OnceLock<Committer>,
}

struct Committer {
    /// `None` when the thread could not be started: writes are refused instead of hanging.
    queue: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for GroupQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupQueue").finish_non_exhaustive()
    }
}

impl Drop for GroupQueue {
    /// Close the queue and wait until every write already queued has been committed.
    fn drop(&mut self) {
        if let Some(Committer { queue, thread }) = self.committer.take() {
            drop(queue);
            if let Some(t) = thread {
                let _ = t.join();
            }
        }
    }
}

/// A queued write was dropped unrun (the committer stopped or the installation was closed).
fn not_run() -> Error {
    Error::Storage(
        "the database could not run this write (its writer stopped, or Mandate is closing)".into(),
    )
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

/// A write queued with [`Mandate::submit_grouped`]: its result once the transaction holding it
/// has committed. Wait for it with [`Ticket::wait`] (blocking) or `.await` it (async; holds no
/// thread). Dropping it does not cancel the write.
#[must_use = "a ticket is the only way to learn whether the write committed"]
pub struct Ticket<T> {
    rx: oneshot::Receiver<Result<T>>,
}

impl<T> std::fmt::Debug for Ticket<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket").finish_non_exhaustive()
    }
}

impl<T> Ticket<T> {
    /// Block the calling thread until the write has committed (or failed).
    pub fn wait(self) -> Result<T> {
        futures_executor::block_on(self)
    }

    /// A ticket already holding its result (a write that could not be queued).
    fn ready(r: Result<T>) -> Self {
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(r);
        Ticket { rx }
    }
}

impl<T> Future for Ticket<T> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or_else(|_| Err(not_run())))
    }
}

impl Mandate {
    /// Run `f` in a transaction shared with other concurrent callers and return once it has
    /// committed durably. `f` runs inside a savepoint: if it fails, only its own writes are
    /// rolled back. Use `audit::append` inside `f` as in `Mandate::write`.
    pub fn write_grouped<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>, DateTime<Utc>) -> Result<T> + Send + 'static,
    {
        let out = self.submit_grouped(f).wait();
        // Signs an audit checkpoint when one is due (every N events or M minutes).
        self.after_write();
        out
    }

    /// Queue `f` for the next group commit without waiting; the [`Ticket`] yields its result
    /// once committed. The caller is responsible for [`Mandate::after_write`] (or
    /// [`Mandate::after_write_detached`]) once the ticket resolves.
    pub fn submit_grouped<T, F>(&self, f: F) -> Ticket<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>, DateTime<Utc>) -> Result<T> + Send + 'static,
    {
        self.submit(Fate::Own, f)
    }

    /// As [`Mandate::submit_grouped`], but without a savepoint of its own: if `f` fails, the
    /// whole batch it was committed with is rolled back and every write in it fails. For the
    /// endpoint's writes, which decide everything before they write and can fail only when
    /// the database does.
    pub fn submit_grouped_shared_fate<T, F>(&self, f: F) -> Ticket<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>, DateTime<Utc>) -> Result<T> + Send + 'static,
    {
        self.submit(Fate::Shared, f)
    }

    fn submit<T, F>(&self, fate: Fate, f: F) -> Ticket<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>, DateTime<Utc>) -> Result<T> + Send + 'static,
    {
        let (tx_res, rx) = oneshot::channel::<Result<T>>();
        let job: Job = Box::new(move |tx, now| run_one(tx, now, fate, f, tx_res));
        let committer = self
            .group
            .committer
            .get_or_init(|| start_committer(self.conn.clone(), self.clock.clone()));
        let sent = committer
            .queue
            .as_ref()
            .is_some_and(|q| q.send(job).is_ok());
        if !sent {
            return Ticket::ready(Err(not_run()));
        }
        Ticket { rx }
    }
}

fn start_committer(conn: Arc<Mutex<Connection>>, clock: Arc<dyn Clock>) -> Committer {
    let (tx, rx) = channel::<Job>();
    let thread = std::thread::Builder::new()
        .name("mandate-commit".into())
        .spawn(move || commit_loop(&conn, &*clock, &rx))
        .ok();
    Committer {
        queue: thread.is_some().then_some(tx),
        thread,
    }
}

/// The committer: one batch per turn, everything queued so far (up to [`MAX_BATCH`]).
fn commit_loop(conn: &Mutex<Connection>, clock: &dyn Clock, rx: &Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let mut delivers = Vec::with_capacity(jobs.len());
        let err = match conn.lock() {
            Err(_) => Some(Error::Storage(
                "an earlier operation panicked while writing".into(),
            )),
            Ok(mut conn) => {
                let now = clock.now();
                let outcome = (|| -> Result<()> {
                    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                    let mut batch_failed = false;
                    for job in jobs.drain(..) {
                        // After a failed shared-fate write the rest still run (the rare path),
                        // so that each caller learns why its write was not saved.
                        let (failed, deliver) = job(&tx, now);
                        batch_failed |= failed;
                        delivers.push(deliver);
                    }
                    if batch_failed {
                        // Dropping `tx` rolls the whole batch back.
                        return Err(Error::Storage(
                            "a write committed together with this one failed, so neither was \
                             saved; try again"
                                .into(),
                        ));
                    }
                    tx.commit()?;
                    Ok(())
                })();
                outcome.err()
            }
        };
        // Jobs never run (no transaction) are dropped here: their callers learn `not_run`.
        drop(jobs);
        for deliver in delivers {
            deliver(err.as_ref());
        }
    }
}

fn run_one<T, F>(
    tx: &Transaction<'_>,
    now: DateTime<Utc>,
    fate: Fate,
    f: F,
    sender: oneshot::Sender<Result<T>>,
) -> (bool, Deliver)
where
    T: Send + 'static,
    F: FnOnce(&Transaction<'_>, DateTime<Utc>) -> Result<T>,
{
    // Cached statements: the committer runs these for every write of its batch.
    let exec = |sql: &str| {
        tx.prepare_cached(sql)
            .and_then(|mut s| s.execute([]))
            .map(|_| ())
    };
    let guarded = |f: F| {
        catch_unwind(AssertUnwindSafe(|| f(tx, now))).unwrap_or_else(|_| {
            Err(Error::Storage(
                "a write failed unexpectedly and was rolled back".into(),
            ))
        })
    };
    let out = match fate {
        Fate::Shared => guarded(f),
        Fate::Own => match exec("SAVEPOINT grouped_write") {
            Err(e) => Err(Error::from(e)),
            Ok(()) => {
                let r = guarded(f);
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
        },
    };
    let batch_failed = fate == Fate::Shared && out.is_err();
    let deliver: Deliver = Box::new(move |commit_err| {
        // A write that failed itself reports its own error, whatever became of the batch.
        let r = match (commit_err, out) {
            (Some(e), Ok(_)) => Err(reissue(e)),
            (_, out) => out,
        };
        let _ = sender.send(r);
    });
    (batch_failed, deliver)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::Mandate;
    use crate::audit::{Actor, Decision, NewEvent};

    #[test]
    fn concurrent_writers_all_commit_and_the_chain_holds() {
        let dir = tempfile::tempdir().unwrap();
        let m = Arc::new(open(dir.path()));
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
        let m = open(dir.path());
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

    fn open(dir: &std::path::Path) -> Mandate {
        crate::open_for_test(dir)
    }

    fn event(action: &str) -> NewEvent {
        NewEvent::new(&Actor::app("t", "t"), action, Decision::Allow)
    }

    #[test]
    fn a_panicking_write_is_rolled_back_and_the_committer_keeps_going() {
        let dir = tempfile::tempdir().unwrap();
        let m = open(dir.path());
        let r: crate::Result<()> = m.write_grouped(|tx, now| {
            crate::audit::append(tx, now, event("half-written"))?;
            panic!("a bug in a write");
        });
        let err = r.unwrap_err().to_string();
        assert!(err.contains("rolled back"), "{err}");
        m.write_grouped(|tx, now| crate::audit::append(tx, now, event("after")))
            .unwrap();
        let events = m.audit_events(None, 10, None).unwrap();
        let actions: Vec<_> = events.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["after"]);
        assert!(m.verify_audit_chain().unwrap().ok());
    }

    #[test]
    fn closing_the_installation_commits_every_queued_write_first() {
        let dir = tempfile::tempdir().unwrap();
        let m = open(dir.path());
        let tickets: Vec<_> = (0..50)
            .map(|i| {
                m.submit_grouped(move |tx, now| {
                    crate::audit::append(tx, now, event(&format!("queued.{i}")))
                })
            })
            .collect();
        // Nobody waits for the tickets: dropping the handle must still commit them all.
        drop(m);
        let r = open(dir.path()).verify_audit_chain().unwrap();
        assert!(r.ok());
        assert_eq!(r.events, 50);
        for t in tickets {
            assert!(t.wait().is_ok(), "every ticket reports its committed write");
        }
    }

    #[test]
    fn a_ticket_can_be_awaited_and_yields_the_committed_result() {
        let dir = tempfile::tempdir().unwrap();
        let m = open(dir.path());
        let t = m.submit_grouped(|tx, now| crate::audit::append(tx, now, event("awaited")));
        // Polled as a future, as the endpoint does.
        let ev = futures_executor::block_on(t).unwrap();
        assert_eq!(ev.seq, 1);
        let stored = m.audit_events(None, 1, None).unwrap();
        assert_eq!(
            stored[0].action, "awaited",
            "committed before the ticket resolved"
        );
    }

    #[test]
    fn a_failing_shared_fate_write_rolls_back_its_whole_batch_and_only_that() {
        let dir = tempfile::tempdir().unwrap();
        let m = open(dir.path());
        m.write_grouped(|tx, now| crate::audit::append(tx, now, event("before")))
            .unwrap();
        // Hold the connection so that the next writes queue up and share one batch.
        let held = m.lock().unwrap();
        let failing = m.submit_grouped_shared_fate(|tx, now| -> crate::Result<()> {
            crate::audit::append(tx, now, event("failing"))?;
            Err(crate::Error::Storage("the disk is full".into()))
        });
        let bystander =
            m.submit_grouped(|tx, now| crate::audit::append(tx, now, event("bystander")));
        drop(held);
        let own = failing.wait().unwrap_err().to_string();
        assert!(own.contains("the disk is full"), "its own error: {own}");
        // The bystander either shared the batch (and failed, saying so) or ran in the next one.
        let bystander = bystander.wait();
        if let Err(e) = &bystander {
            assert!(e.to_string().contains("together"), "says why: {e}");
        }
        let bystander_ok = bystander.is_ok();
        m.write_grouped(|tx, now| crate::audit::append(tx, now, event("after")))
            .unwrap();
        let actions: Vec<String> = m
            .audit_events(None, 10, None)
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert!(!actions.contains(&"failing".to_string()), "{actions:?}");
        assert_eq!(
            actions.contains(&"bystander".to_string()),
            bystander_ok,
            "a write is stored exactly when its caller was told so: {actions:?}"
        );
        assert!(m.verify_audit_chain().unwrap().ok());
    }
}
