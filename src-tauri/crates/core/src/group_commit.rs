//! Group commit: many concurrent writers share one durable SQLite transaction.
//!
//! With `synchronous=FULL` every commit costs an fsync, which caps one-transaction-per-write at
//! a few thousand per second (FACTS.md). [`Mandate::submit_grouped`] queues a write for the
//! installation's *committer*, one thread that takes every write queued so far, runs them in one
//! `BEGIN IMMEDIATE` transaction (each inside its own savepoint, so one failing write rolls back
//! only itself; [`Mandate::submit_grouped_shared_fate`] skips the savepoint for writes that can
//! fail only when storage does), tags the batch's audit events as one batch (`audit::tag`),
//! commits once, and only then hands each caller its result
//! through the caller's own one-shot channel. While it commits, the next writes queue up and become the next batch.
//! A caller that is about to queue a write can announce it ([`Mandate::announce_write`]); while
//! writes are announced the committer holds its batch open for them, briefly, so that batches
//! grow with the load instead of each commit rewriting the same tail pages for a few writes.
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

use std::cell::Cell;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_channel::oneshot;

use crate::Mandate;
use crate::audit::tag::{self, TagKeys};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::store::{Conn, Tx};
use crate::store_identity::StoreIdentity;

/// Hands a job's result to its caller; given the commit failure, if any.
type Deliver = Box<dyn FnOnce(Option<&Error>) + Send>;
/// A queued write: runs inside the shared transaction and returns whether the whole batch must
/// be rolled back (a [`Fate::Shared`] write failed) and how to deliver its result.
type Job = Box<dyn FnOnce(Run<'_>) -> (bool, Deliver) + Send>;

/// How the committer hands a queued write its turn.
enum Run<'a> {
    /// Inside the batch's transaction.
    In(&'a Tx<'a>, DateTime<Utc>),
    /// Refused before any transaction could begin (storage failing, or the database file
    /// replaced: `store_identity.rs`): the write reports this error instead of running.
    Refused(&'a Error),
}

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

/// What the committer receives: a write, or a nudge to stop waiting for announced writes.
enum Msg {
    Job(Job),
    Wake,
}

/// The committer thread and the queue into it, started on the first grouped write.
#[derive(Default)]
pub(crate) struct GroupQueue {
    committer: OnceLock<Committer>,
    siblings: Arc<Siblings>,
}

/// Writes announced with [`Mandate::announce_write`] and not yet queued, whether the
/// committer is waiting for them, and for how long it may.
struct Siblings {
    announced: AtomicUsize,
    lingering: AtomicBool,
    linger: Duration,
}

impl Default for Siblings {
    fn default() -> Self {
        Siblings {
            announced: AtomicUsize::new(0),
            lingering: AtomicBool::new(false),
            linger: LINGER,
        }
    }
}

struct Committer {
    /// `None` when the thread could not be started: writes are refused instead of hanging.
    queue: Option<Sender<Msg>>,
    thread: Option<JoinHandle<()>>,
}

/// How long the committer may hold a batch open for announced writes (see
/// [`Mandate::announce_write`]). Measured at 32 connections: the bytes written per token fell
/// by a third, and the committer's CPU per token by a fifth (docs/BENCHMARKS.md).
const LINGER: Duration = Duration::from_micros(500);

/// A write its caller is about to queue (see [`Mandate::announce_write`]); dropping it
/// withdraws the announcement, whether or not the write was queued.
#[must_use = "the announcement lasts as long as this value"]
pub struct WriteAnnouncement<'a> {
    group: &'a GroupQueue,
}

thread_local! {
    /// The queue this thread has announced a write to and not queued yet (compared by address,
    /// never dereferenced). Queueing the write ends the announcement, so the committer never
    /// waits for a write it already has.
    static ANNOUNCED: Cell<*const Siblings> = const { Cell::new(std::ptr::null()) };
}

impl GroupQueue {
    /// A queue whose committer lingers `linger` for announced writes (tests make it long).
    #[cfg(test)]
    fn with_linger(linger: Duration) -> Self {
        GroupQueue {
            committer: OnceLock::new(),
            siblings: Arc::new(Siblings {
                linger,
                ..Siblings::default()
            }),
        }
    }

    /// End this thread's announcement to this queue, if it has one; wake a committer waiting
    /// for nothing else.
    fn withdraw(&self) {
        let me = Arc::as_ptr(&self.siblings);
        let had = ANNOUNCED.with(|a| {
            let had = a.get() == me;
            if had {
                a.set(std::ptr::null());
            }
            had
        });
        // SeqCst with the committer's `lingering` store and `announced` load: either it sees
        // this decrement and stops waiting, or this sees it waiting and wakes it.
        if had
            && self.siblings.announced.fetch_sub(1, SeqCst) == 1
            && self.siblings.lingering.load(SeqCst)
            && let Some(q) = self.committer.get().and_then(|c| c.queue.as_ref())
        {
            let _ = q.send(Msg::Wake);
        }
    }
}

impl std::fmt::Debug for WriteAnnouncement<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteAnnouncement").finish_non_exhaustive()
    }
}

impl Drop for WriteAnnouncement<'_> {
    fn drop(&mut self) {
        self.group.withdraw();
    }
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
        // The batch's tag needs the keychain: say so, with the keychain's own fix.
        Error::Keychain(k) => Error::Keychain(k.clone()),
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
    /// Announce a grouped write that this thread is about to queue (after it has done its
    /// reads and checks), for as long as the returned value lives.
    ///
    /// Why: the committer commits as soon as it has anything, so under load each batch holds
    /// only the few writes that arrived during the previous commit, and every commit rewrites
    /// the same partly filled pages of each table and index for them. While writes are
    /// announced, the committer holds its batch open for them (at most half a millisecond,
    /// PostgreSQL's `commit_delay` with `commit_siblings`), so batches grow with the load and
    /// the pages written per write fall. A lone caller never waits: queueing its write ends
    /// its announcement (as does dropping the returned value, for a path that writes nothing).
    pub fn announce_write(&self) -> WriteAnnouncement<'_> {
        let me = Arc::as_ptr(&self.group.siblings);
        let fresh = ANNOUNCED.with(|a| {
            let fresh = a.get().is_null();
            if fresh {
                a.set(me);
            }
            fresh
        });
        // One announcement per thread at a time: a nested one adds nothing, and whichever
        // ends first ends it.
        if fresh {
            self.group.siblings.announced.fetch_add(1, SeqCst);
        }
        WriteAnnouncement { group: &self.group }
    }

    /// Run `f` in a transaction shared with other concurrent callers and return once it has
    /// committed durably. `f` runs inside a savepoint: if it fails, only its own writes are
    /// rolled back. Use `audit::append` inside `f` as in `Mandate::write`.
    pub fn write_grouped<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Tx<'_>, DateTime<Utc>) -> Result<T> + Send + 'static,
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
        F: FnOnce(&Tx<'_>, DateTime<Utc>) -> Result<T> + Send + 'static,
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
        F: FnOnce(&Tx<'_>, DateTime<Utc>) -> Result<T> + Send + 'static,
    {
        self.submit(Fate::Shared, f)
    }

    fn submit<T, F>(&self, fate: Fate, f: F) -> Ticket<T>
    where
        T: Send + 'static,
        F: FnOnce(&Tx<'_>, DateTime<Utc>) -> Result<T> + Send + 'static,
    {
        let (tx_res, rx) = oneshot::channel::<Result<T>>();
        let job: Job = Box::new(move |run| match run {
            Run::In(tx, now) => run_one(tx, now, fate, f, tx_res),
            Run::Refused(e) => {
                let e = reissue(e);
                let deliver: Deliver = Box::new(move |_| {
                    let _ = tx_res.send(Err(e));
                });
                (false, deliver)
            }
        });
        let committer = self.group.committer.get_or_init(|| {
            start_committer(
                self.conn.clone(),
                self.clock.clone(),
                self.group.siblings.clone(),
                self.audit_tags().clone(),
                self.identity.clone(),
            )
        });
        let sent = committer
            .queue
            .as_ref()
            .is_some_and(|q| q.send(Msg::Job(job)).is_ok());
        // Queued (or refused): the committer no longer waits for this thread.
        self.group.withdraw();
        if !sent {
            return Ticket::ready(Err(not_run()));
        }
        Ticket { rx }
    }
}

fn start_committer(
    conn: Arc<Mutex<Conn>>,
    clock: Arc<dyn Clock>,
    siblings: Arc<Siblings>,
    tags: Arc<TagKeys>,
    identity: Arc<StoreIdentity>,
) -> Committer {
    let (tx, rx) = channel::<Msg>();
    let thread = std::thread::Builder::new()
        .name("mandate-commit".into())
        .spawn(move || commit_loop(&conn, &*clock, &rx, &siblings, &tags, &identity))
        .ok();
    Committer {
        queue: thread.is_some().then_some(tx),
        thread,
    }
}

/// The next batch: everything queued so far (up to [`MAX_BATCH`]), and while writes are
/// announced, what arrives within their [`LINGER`]. Empty when the queue has closed.
fn next_batch(rx: &Receiver<Msg>, siblings: &Siblings) -> Vec<Job> {
    let mut jobs = Vec::new();
    let take = |m: Msg, jobs: &mut Vec<Job>| {
        if let Msg::Job(j) = m {
            jobs.push(j);
        }
    };
    while jobs.is_empty() {
        match rx.recv() {
            Ok(m) => take(m, &mut jobs),
            Err(_) => return jobs,
        }
    }
    let drain = |jobs: &mut Vec<Job>| {
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(m) => take(m, jobs),
                Err(_) => break,
            }
        }
    };
    drain(&mut jobs);
    let until = Instant::now() + siblings.linger;
    siblings.lingering.store(true, SeqCst);
    while jobs.len() < MAX_BATCH && siblings.announced.load(SeqCst) > 0 {
        let left = until.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(m) => {
                take(m, &mut jobs);
                drain(&mut jobs);
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
        }
    }
    siblings.lingering.store(false, SeqCst);
    jobs
}

/// The committer: one batch per turn (see [`next_batch`]), its audit events tagged as one
/// batch (`audit/tag.rs`) before the commit.
fn commit_loop(
    conn: &Mutex<Conn>,
    clock: &dyn Clock,
    rx: &Receiver<Msg>,
    siblings: &Siblings,
    tags: &TagKeys,
    identity: &StoreIdentity,
) {
    loop {
        let mut jobs = next_batch(rx, siblings);
        if jobs.is_empty() {
            return;
        }
        let mut delivers = Vec::with_capacity(jobs.len());
        let err = match conn.lock() {
            Err(_) => Some(Error::Storage(
                "an earlier operation panicked while writing".into(),
            )),
            Ok(mut conn) => {
                let now = clock.now();
                // Rolled back (by the store) if this returns an error.
                let outcome = conn.write(|tx| {
                    identity.check(tx)?;
                    let before = tag::head(tx)?;
                    let mut batch_failed = false;
                    for job in jobs.drain(..) {
                        // After a failed shared-fate write the rest still run (the rare path),
                        // so that each caller learns why its write was not saved.
                        let (failed, deliver) = job(Run::In(tx, now));
                        batch_failed |= failed;
                        delivers.push(deliver);
                    }
                    if batch_failed {
                        return Err(Error::Storage(
                            "a write committed together with this one failed, so neither was \
                             saved; try again"
                                .into(),
                        ));
                    }
                    tag::seal(tx, before, tags)?;
                    Ok(())
                });
                match &outcome {
                    Ok(()) => {
                        let _ = conn.auto(|tx| {
                            identity.committed(tx);
                            Ok(())
                        });
                    }
                    // Refused before any write ran (storage failing, or the database replaced):
                    // each caller learns why, not just that its write did not run.
                    Err(e) => {
                        for job in jobs.drain(..) {
                            delivers.push(job(Run::Refused(e)).1);
                        }
                    }
                }
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
    tx: &Tx<'_>,
    now: DateTime<Utc>,
    fate: Fate,
    f: F,
    sender: oneshot::Sender<Result<T>>,
) -> (bool, Deliver)
where
    T: Send + 'static,
    F: FnOnce(&Tx<'_>, DateTime<Utc>) -> Result<T>,
{
    let guarded = |f: F, tx: &Tx<'_>| {
        catch_unwind(AssertUnwindSafe(|| f(tx, now))).unwrap_or_else(|_| {
            Err(Error::Storage(
                "a write failed unexpectedly and was rolled back".into(),
            ))
        })
    };
    let out = match fate {
        Fate::Shared => guarded(f, tx),
        Fate::Own => tx.savepoint(|sp| guarded(f, sp)),
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
    use std::sync::atomic::{AtomicI64, Ordering::SeqCst};
    use std::time::{Duration, Instant};

    use chrono::{DateTime, Utc};

    use super::GroupQueue;
    use crate::Mandate;
    use crate::audit::{Actor, Decision, NewEvent};
    use crate::clock::Clock;
    use crate::store::testing::{TestStore, each_store};

    #[test]
    fn concurrent_writers_all_commit_and_the_chain_holds() {
        each_store(|s| {
            let m = Arc::new(s.open());
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
        });
    }

    #[test]
    fn a_failing_write_rolls_back_only_itself() {
        each_store(|s| {
            let m = s.open();
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
        });
    }

    /// A clock one second later at every reading: writes committed together share one `now`.
    #[derive(Debug, Default)]
    struct Ticking(AtomicI64);

    impl Clock for Ticking {
        fn now(&self) -> DateTime<Utc> {
            DateTime::from_timestamp(1_800_000_000 + self.0.fetch_add(1, SeqCst), 0).unwrap()
        }
    }

    /// An installation whose committer lingers 5 s for announced writes.
    fn lingering(s: &TestStore) -> Mandate {
        let mut m = s.open();
        m.clock = Arc::new(Ticking::default());
        m.group = GroupQueue::with_linger(Duration::from_secs(5));
        m
    }

    /// Another thread announces a write and, once told to go, queues it (`write`) or withdraws
    /// the announcement; it has announced by the time this returns.
    fn announce_elsewhere(
        m: &Arc<Mandate>,
        write: bool,
    ) -> (
        std::sync::mpsc::Sender<()>,
        std::thread::JoinHandle<Option<DateTime<Utc>>>,
    ) {
        let (announced_tx, announced) = std::sync::mpsc::channel();
        let (go, go_rx) = std::sync::mpsc::channel::<()>();
        let m = m.clone();
        let other = std::thread::spawn(move || {
            let _announced = m.announce_write();
            announced_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            write.then(|| m.submit_grouped(|_, now| Ok(now)).wait().unwrap())
        });
        announced.recv().unwrap();
        (go, other)
    }

    #[test]
    fn an_announced_write_joins_the_batch_the_committer_holds_open_for_it() {
        each_store(|s| {
            let m = Arc::new(lingering(s));
            let (go, other) = announce_elsewhere(&m, true);
            let a = m.submit_grouped(|_, now| Ok(now));
            // Meanwhile the committer has taken `a` and waits for the other thread's write.
            std::thread::sleep(Duration::from_millis(100));
            go.send(()).unwrap();
            let b = other.join().unwrap().unwrap();
            assert_eq!(a.wait().unwrap(), b, "one transaction");
        });
    }

    #[test]
    fn the_committer_waits_only_for_writes_announced_and_not_yet_queued() {
        each_store(|s| {
            let m = Arc::new(lingering(s));
            // Nothing announced: a write commits at once.
            let start = Instant::now();
            let first = m.submit_grouped(|_, now| Ok(now)).wait().unwrap();
            assert!(
                start.elapsed() < Duration::from_secs(4),
                "a lone write waited"
            );
            // A thread's own announcement ends when it queues its write.
            let own = m.announce_write();
            let start = Instant::now();
            let second = m.submit_grouped(|_, now| Ok(now)).wait().unwrap();
            assert!(
                start.elapsed() < Duration::from_secs(4),
                "waited for itself"
            );
            drop(own);
            // An announcement withdrawn without a write ends the wait early.
            let (go, other) = announce_elsewhere(&m, false);
            let start = Instant::now();
            let t = m.submit_grouped(|_, now| Ok(now));
            std::thread::sleep(Duration::from_millis(100));
            go.send(()).unwrap();
            let third = t.wait().unwrap();
            other.join().unwrap();
            assert!(
                start.elapsed() < Duration::from_secs(4),
                "waited out the linger"
            );
            assert!(first < second && second < third);
        });
    }

    fn event(action: &str) -> NewEvent {
        NewEvent::new(&Actor::app("t", "t"), action, Decision::Allow)
    }

    #[test]
    fn a_panicking_write_is_rolled_back_and_the_committer_keeps_going() {
        each_store(|s| {
            let m = s.open();
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
        });
    }

    #[test]
    fn closing_the_installation_commits_every_queued_write_first() {
        each_store(|s| {
            let m = s.open();
            let tickets: Vec<_> = (0..50)
                .map(|i| {
                    m.submit_grouped(move |tx, now| {
                        crate::audit::append(tx, now, event(&format!("queued.{i}")))
                    })
                })
                .collect();
            // Nobody waits for the tickets: dropping the handle must still commit them all.
            drop(m);
            let r = s.open().verify_audit_chain().unwrap();
            assert!(r.ok());
            assert_eq!(r.events, 50);
            for t in tickets {
                assert!(t.wait().is_ok(), "every ticket reports its committed write");
            }
        });
    }

    #[test]
    fn a_ticket_can_be_awaited_and_yields_the_committed_result() {
        each_store(|s| {
            let m = s.open();
            let t = m.submit_grouped(|tx, now| crate::audit::append(tx, now, event("awaited")));
            // Polled as a future, as the endpoint does.
            let ev = futures_executor::block_on(t).unwrap();
            assert_eq!(ev.seq, 1);
            let stored = m.audit_events(None, 1, None).unwrap();
            assert_eq!(
                stored[0].action, "awaited",
                "committed before the ticket resolved"
            );
        });
    }

    #[test]
    fn a_failing_shared_fate_write_rolls_back_its_whole_batch_and_only_that() {
        each_store(|s| {
            let m = s.open();
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
        });
    }
}
