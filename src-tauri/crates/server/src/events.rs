//! `GET /team/v1/events`: the team's audit trail as it grows, pushed to a signed-in member
//! as server-sent events (issue 21 §2), so the desktop app updates within a second or two
//! without polling the member API.
//!
//! - **What is sent.** Each new audit event the member may read (the core's `Visibility`:
//!   admins and auditors all, members their agents' events, their own acts and team-wide
//!   changes) is one SSE event: `event: audit`, `id: SEQ`, `data:` the event's JSON, the same
//!   object `GET /team/v1/audit` returns. Nothing old is replayed unless asked: the stream
//!   starts after `Last-Event-ID` (a reconnecting client's last seq) or `?after=SEQ`, else at
//!   the newest event. Keep-alive comments every 15 s.
//! - **How it learns of new events.** One read of the trail's newest seq every 250 ms per
//!   stream, which is one indexed `max(seq)`; events are read only when it moved. (The team
//!   server's instances share PostgreSQL, so an in-process notification would miss another
//!   instance's events.)
//! - **Where it starts and ends.** The first SSE event is `event: open` with `id:` the seq the
//!   stream starts after; the last is `event: end` with `id:` how far it read the trail, so a
//!   client resuming with `Last-Event-ID` misses nothing even when no event reached it.
//! - **When it ends.** With `event: end` and `data: {"reason", "message"}`, then the
//!   connection's body closes: `member_removed` (re-checked every 2 s: removed, key replaced
//!   or role changed), `token_expired` (at the member token's expiry; the client reconnects
//!   with a fresh token and `Last-Event-ID`), `shutdown` (the server stops: streams end
//!   first, so the graceful drain is not held open).
//! - **Bounded.** At most [`PER_MEMBER`] streams per member and [`OVERALL`] in all (429
//!   beyond). Each stream holds one bounded channel of [`BUFFER`] events: a reader that does
//!   not keep up stops the stream's reads of the trail (back-pressure), never the server's
//!   memory; the events wait in the database, and the stream resumes where the reader is.
//! - **Audited.** Opening a stream is `member.watch_started` (who, from which seq). The
//!   events read through it are not audited one by one: that would feed the stream its own
//!   reads.
//!
//! What it is not: the rules of visibility (the core's `team_access`), or the client
//! (`member_client::events`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use mandate_core::Mandate;
use mandate_core::team_access::SignedIn;
use serde_json::json;
use tokio::sync::{mpsc, watch};

/// Open streams one member may hold (a desktop window or two, and a CLI).
pub const PER_MEMBER: usize = 4;
/// Open streams in all.
pub const OVERALL: usize = 256;
/// Events waiting for one slow reader.
pub const BUFFER: usize = 64;
/// How often the trail's newest seq is read.
const POLL: Duration = Duration::from_millis(250);
/// How often membership is re-checked.
const RECHECK: Duration = Duration::from_secs(2);
/// Keep-alive comments, so proxies and clients see a live connection.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The server's open streams and its shutdown signal (one per running server).
#[derive(Debug)]
pub struct Streams {
    open: Mutex<HashMap<String, usize>>,
    stop: watch::Sender<bool>,
}

impl Default for Streams {
    fn default() -> Self {
        Streams {
            open: Mutex::new(HashMap::new()),
            stop: watch::channel(false).0,
        }
    }
}

impl Streams {
    /// End every stream (before the server drains its connections).
    pub fn shut_down(&self) {
        let _ = self.stop.send(true);
    }

    /// A place for one more stream of `member`, or why not.
    fn admit(self: &Arc<Self>, member: &str) -> Result<Slot, &'static str> {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if open.values().sum::<usize>() >= OVERALL {
            return Err(
                "the team server has as many event streams open as it allows; try again later",
            );
        }
        let n = open.entry(member.to_string()).or_default();
        if *n >= PER_MEMBER {
            return Err(
                "you have as many event streams open as a member may (4); close one (another \
                 window or `mandate team watch`) and try again",
            );
        }
        *n += 1;
        Ok(Slot {
            streams: self.clone(),
            member: member.to_string(),
        })
    }
}

/// One admitted stream; dropping it frees the place.
struct Slot {
    streams: Arc<Streams>,
    member: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .streams
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.member) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.member);
            }
        }
    }
}

/// Why a stream could not be opened.
#[derive(Debug)]
pub enum Refused {
    /// Too many streams (429).
    Busy(&'static str),
    /// The core failed (the caller maps it).
    Core(mandate_core::Error),
}

/// Open a stream for `who` after `after` (or at the newest event), audited.
pub async fn open(
    streams: &Arc<Streams>,
    m: Arc<Mandate>,
    who: SignedIn,
    after: Option<u64>,
) -> Result<Response, Refused> {
    let slot = streams.admit(who.member.as_str()).map_err(Refused::Busy)?;
    let start = {
        let (m, who) = (m.clone(), who.clone());
        tokio::task::spawn_blocking(move || {
            // A resume point past the head is not this trail's (a client that followed
            // another server, or this one before its database was restored): start at the
            // head rather than skip what comes next.
            let head = m.audit_head()?;
            let start = after.map_or(head, |s| s.min(head));
            m.team_watch_started(&who, start)?;
            Ok::<_, mandate_core::Error>(start)
        })
        .await
        .map_err(|e| Refused::Core(mandate_core::Error::Storage(e.to_string())))?
        .map_err(Refused::Core)?
    };
    let (tx, rx) = mpsc::channel::<Event>(BUFFER);
    let stop = streams.stop.subscribe();
    tokio::spawn(feed(m, who, start, tx, stop, slot));
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    Ok(Sse::new(body)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

/// The stream's last word. Its `id` is how far the stream read the trail (past events the
/// member may not see too), so a client that reconnects with it as `Last-Event-ID` misses
/// nothing and re-reads nothing, even when no event was sent.
fn end(reason: &str, message: &str, cursor: u64) -> Event {
    Event::default()
        .event("end")
        .id(cursor.to_string())
        .data(json!({"reason": reason, "message": message}).to_string())
}

/// Read the trail after `cursor` and send what `who` may see, until the stream ends.
async fn feed(
    m: Arc<Mandate>,
    who: SignedIn,
    mut cursor: u64,
    tx: mpsc::Sender<Event>,
    mut stop: watch::Receiver<bool>,
    _slot: Slot,
) {
    let mut checked = Instant::now();
    // First, where the stream starts: a client that asked for "from now" learns which seq
    // that was, so a reconnect before any event arrives leaves no gap.
    let opened = Event::default()
        .event("open")
        .id(cursor.to_string())
        .data(json!({"after": cursor}).to_string());
    if tx.send(opened).await.is_err() {
        return;
    }
    loop {
        if tx.is_closed() {
            return;
        }
        if *stop.borrow() {
            let _ = tx
                .send(end(
                    "shutdown",
                    "the team server is stopping; reconnect in a moment",
                    cursor,
                ))
                .await;
            return;
        }
        if m.now().timestamp() >= who.expires_at {
            let _ = tx
                .send(end(
                    "token_expired",
                    "your sign-in token expired; reconnect with a fresh one and Last-Event-ID",
                    cursor,
                ))
                .await;
            return;
        }
        if checked.elapsed() >= RECHECK {
            checked = Instant::now();
            let (m2, who2) = (m.clone(), who.clone());
            match tokio::task::spawn_blocking(move || m2.still_signed_in(&who2)).await {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => {
                    let _ = tx
                        .send(end(
                            "member_removed",
                            "you are no longer on this team with this key and role; ask an \
                             admin if that is a mistake",
                            cursor,
                        ))
                        .await;
                    return;
                }
                // The store is unreachable for a moment: keep the stream, check again.
                _ => {}
            }
        }
        let m2 = m.clone();
        let head = tokio::task::spawn_blocking(move || m2.audit_head()).await;
        if let Ok(Ok(head)) = head
            && head > cursor
        {
            let (m2, who2) = (m.clone(), who.clone());
            let read =
                tokio::task::spawn_blocking(move || m2.team_events_after(&who2, cursor)).await;
            if let Ok(Ok((events, last))) = read {
                for e in events {
                    let Ok(data) = serde_json::to_string(&e) else {
                        continue;
                    };
                    let ev = Event::default()
                        .event("audit")
                        .id(e.seq.to_string())
                        .data(data);
                    if tx.send(ev).await.is_err() {
                        return;
                    }
                }
                cursor = last;
                if cursor < head {
                    continue;
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            _ = stop.changed() => {}
        }
    }
}
