//! Verification of the audit log: the live store, or an evidence bundle offline.
//!
//! The result is a [`VerifyReport`] that names every problem found and where: an event edited,
//! deleted, inserted or reordered; the log rewritten behind a signed checkpoint; the tail
//! truncated; a checkpoint forged or signed by a key that is not the issuer's; the database
//! rolled back behind the checkpoint kept beside it; a bundle whose seal, proofs or lines are
//! wrong. A verification failure is a report with problems, not an `Err`: `Err` is kept for
//! "could not look" (I/O, a locked keychain).
//!
//! Each event's link is checked against the stored hash of the event before it, so one edited
//! event is reported as exactly that event, not as everything after it. Checkpoints are
//! compared while walking, in one pass: O(n) hashing and no second read.
//!
//! What it is not: a judge of the events' meaning. It proves the log is the one that was
//! signed; what the events say is for the reader.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::bundle::{self, BundleScope, Header};
use super::merkle::{self, Frontier, Hash, leaf_hash};
use super::note::{NoteError, NoteKey, SignedCheckpoint};
use super::tag::{self, TagKey, Tiling};
use super::{GENESIS, chain_link, hex};
use crate::error::Result;
use crate::keys;
use crate::store::{Tx, params};

/// What kind of problem verification found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// An event's contents no longer match its hash or its proof.
    Edited,
    /// Events are missing from the middle of the log.
    Deleted,
    /// An event appears that the log never had (or twice).
    Inserted,
    /// Events are out of order.
    Reordered,
    /// Events signed by a checkpoint are missing from the end of the log.
    Truncated,
    /// The events do not match a signed checkpoint although their hash chain holds: history
    /// was rewritten and the chain recomputed.
    Rewritten,
    /// A checkpoint's signature does not verify.
    ForgedCheckpoint,
    /// A checkpoint (or the bundle seal) is signed by a key that is not trusted.
    UnknownKey,
    /// The database is smaller or older than a checkpoint seen before.
    RolledBack,
    /// The checkpoint file beside the database is missing.
    MissingCheckpointFile,
    /// The bundle or a record in it is not in the documented format.
    Malformed,
    /// A proof does not verify.
    ProofMismatch,
    /// The bundle's seal (its signature over every byte before the end line) is wrong.
    BrokenSeal,
    /// Events in the store that no valid batch tag covers: written or re-chained by someone
    /// without the installation's keychain key (`audit/tag.rs`).
    Unauthenticated,
}

impl ProblemKind {
    /// How well a problem of this kind explains a failure by itself: the lowest rank leads the
    /// one-line summary (a cut-off or unreadable file explains the seal and count mismatches
    /// that follow from it, and an untrusted key explains why nothing could be checked).
    fn rank(self) -> u8 {
        match self {
            ProblemKind::Truncated => 0,
            ProblemKind::UnknownKey => 1,
            ProblemKind::Malformed => 2,
            ProblemKind::BrokenSeal => 3,
            ProblemKind::ForgedCheckpoint => 4,
            ProblemKind::RolledBack => 5,
            ProblemKind::MissingCheckpointFile => 6,
            ProblemKind::Rewritten => 7,
            ProblemKind::ProofMismatch => 8,
            ProblemKind::Edited => 9,
            ProblemKind::Deleted => 10,
            ProblemKind::Inserted => 11,
            ProblemKind::Reordered => 12,
            ProblemKind::Unauthenticated => 13,
        }
    }

    /// What the reader should do about a problem of this kind, in one sentence. `live` is true
    /// for the store on this machine, false for an exported bundle or report.
    pub fn advice(self, live: bool) -> &'static str {
        match (self, live) {
            (ProblemKind::Truncated, false) => {
                "the file is incomplete (cut off while copying or downloading?): get the whole \
                 file again from whoever exported it"
            }
            (ProblemKind::Malformed, false) => {
                "the file is damaged or is not a Mandate evidence bundle: get the original again, \
                 or export a new one with `mandate audit export --format bundle` or `--format pdf`"
            }
            (ProblemKind::BrokenSeal, false) => {
                "the file was changed after it was exported: do not rely on this copy; get the \
                 original from whoever exported it"
            }
            (ProblemKind::UnknownKey, false) => {
                "it is not signed by the key you trust: compare the fingerprint with the one you \
                 were given and pin it with --key; if they match, this file was tampered with"
            }
            (ProblemKind::RolledBack, false) => {
                "it is older than a checkpoint you saw before: ask for a current export"
            }
            (_, false) => {
                "do not rely on this file: ask its sender for the original export, or verify the \
                 live trail on the machine that made it (`mandate audit verify`)"
            }
            (ProblemKind::MissingCheckpointFile, true) => {
                "restore audit-checkpoint.txt from a backup of the data folder, or keep the data \
                 folder as evidence if you did not remove it"
            }
            (_, true) => {
                "the audit trail on this machine was altered or damaged: keep a copy of the data \
                 folder as evidence, and see every problem with `mandate audit verify --json`"
            }
        }
    }
}

/// How messages name a checkpoint the reader brought (`--checkpoint`).
const BROUGHT: &str = "the checkpoint you brought";

/// One thing that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Problem {
    pub kind: ProblemKind,
    /// The event it concerns (for checkpoints, their size).
    pub seq: Option<u64>,
    pub message: String,
}

/// A checkpoint as reported to people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct CheckpointSummary {
    pub origin: String,
    pub size: u64,
    /// RFC 9162 root, lower-case hex.
    pub root: String,
    /// Hash chain head, lower-case hex.
    pub chain_head: String,
    pub time: String,
    /// `SHA256:` fingerprint of the key that signed it.
    pub key_fingerprint: String,
}

/// The outcome of a verification.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct VerifyReport {
    /// What was checked: `store`, `bundle` or `excerpt`.
    pub subject: String,
    pub origin: String,
    /// Events checked.
    pub events: u64,
    /// Size of the log the events belong to (the newest checkpoint's size for excerpts).
    pub log_size: u64,
    /// Hash chain head after the last event checked (hex; empty for excerpts).
    pub chain_head: String,
    /// RFC 9162 root of the events checked (hex; for excerpts, the checkpoint's).
    pub root: String,
    /// Checkpoints whose signature and contents were verified.
    pub checkpoints_verified: u64,
    pub newest_checkpoint: Option<CheckpointSummary>,
    /// Fingerprints of the keys trusted for this verification.
    pub trusted_keys: Vec<String>,
    pub problems: Vec<Problem>,
    /// Remarks that are not failures.
    pub notes: Vec<String>,
}

impl VerifyReport {
    /// True when nothing is wrong.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The problem that best explains the failure (see [`ProblemKind`]'s ranking; the first
    /// found among equals).
    pub fn main_problem(&self) -> Option<&Problem> {
        self.problems.iter().min_by_key(|p| p.kind.rank())
    }

    /// One line for people: the main problem, how many others there are, and what to do.
    /// `None` when verification passed.
    pub fn summary(&self) -> Option<String> {
        let main = self.main_problem()?;
        let others = match self.problems.len() - 1 {
            0 => String::new(),
            1 => " (and 1 other problem)".into(),
            n => format!(" (and {n} other problems)"),
        };
        // A checkpoint the reader brought is theirs to check, whatever its kind of problem.
        let advice = if main.message.starts_with(BROUGHT) {
            "check that the checkpoint you brought is from this same log and from a copy you \
             trust; if it is, this file was tampered with"
        } else {
            main.kind.advice(self.subject == "store")
        };
        Some(format!("{}{others}; {advice}", main.message))
    }

    /// The report on a file that could not be read as a bundle at all (a PDF report whose
    /// attachment cannot be found or read, §6): one `malformed` problem, nothing else checked.
    pub fn unreadable(message: impl Into<String>) -> Self {
        let mut r = VerifyReport::new("bundle", "");
        r.problem(ProblemKind::Malformed, None, message);
        r
    }

    fn new(subject: &str, origin: &str) -> Self {
        VerifyReport {
            subject: subject.into(),
            origin: origin.into(),
            events: 0,
            log_size: 0,
            chain_head: String::new(),
            root: String::new(),
            checkpoints_verified: 0,
            newest_checkpoint: None,
            trusted_keys: Vec::new(),
            problems: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn problem(&mut self, kind: ProblemKind, seq: Option<u64>, message: impl Into<String>) {
        self.problems.push(Problem {
            kind,
            seq,
            message: message.into(),
        });
    }
}

fn summary(cp: &SignedCheckpoint, key: &NoteKey) -> CheckpointSummary {
    CheckpointSummary {
        origin: cp.checkpoint.origin.clone(),
        size: cp.checkpoint.size,
        root: hex(&cp.checkpoint.root),
        chain_head: hex(&cp.checkpoint.chain_head),
        time: cp.checkpoint.time.clone(),
        key_fingerprint: keys::fingerprint(&key.key),
    }
}

/// A checkpoint to hold the log against, and where it came from (for messages).
#[derive(Debug, Clone)]
struct Anchor {
    cp: SignedCheckpoint,
    source: String,
    /// From outside the log (the file beside the database, or one the reader brings).
    outside: bool,
}

/// Check signatures and origins; keep the good ones as anchors, report the rest.
fn check_notes(
    report: &mut VerifyReport,
    notes: Vec<(String, String, bool)>,
    trusted: &[NoteKey],
    origin: &str,
) -> Vec<Anchor> {
    let mut anchors: Vec<Anchor> = Vec::new();
    for (text, source, outside) in notes {
        let cp = match SignedCheckpoint::parse(&text) {
            Ok(cp) => cp,
            Err(e) => {
                report.problem(ProblemKind::Malformed, None, format!("{source}: {e}"));
                continue;
            }
        };
        let size = Some(cp.checkpoint.size);
        if cp.checkpoint.origin != origin {
            report.problem(
                ProblemKind::UnknownKey,
                size,
                format!(
                    "{source} belongs to another log ('{}', expected '{origin}')",
                    cp.checkpoint.origin
                ),
            );
            continue;
        }
        match cp.verify(trusted) {
            Ok(key) => {
                let newer = report
                    .newest_checkpoint
                    .as_ref()
                    .map(|n| n.size < cp.checkpoint.size)
                    .unwrap_or(true);
                if newer {
                    report.newest_checkpoint = Some(summary(&cp, key));
                }
                if !anchors.iter().any(|a| a.cp.text == cp.text) {
                    anchors.push(Anchor {
                        cp,
                        source,
                        outside,
                    });
                }
            }
            Err(NoteError::BadSignature) => report.problem(
                ProblemKind::ForgedCheckpoint,
                size,
                format!(
                    "{source} (covering {} events) has a signature that does not verify: it was \
                     altered or forged",
                    cp.checkpoint.size
                ),
            ),
            Err(NoteError::UnknownKey { name, key_id }) => report.problem(
                ProblemKind::UnknownKey,
                size,
                format!(
                    "{source} (covering {} events) is signed by another key ('{name}', key id \
                     {key_id}), not by this log's issuer key",
                    cp.checkpoint.size
                ),
            ),
            Err(e) => report.problem(ProblemKind::Malformed, size, format!("{source}: {e}")),
        }
    }
    anchors.sort_by_key(|a| a.cp.checkpoint.size);
    anchors
}

/// The fields of an event that verification looks at, read without copying.
#[derive(Debug, Deserialize)]
struct Light<'a> {
    seq: u64,
    #[serde(borrow)]
    time: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    action: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    decision: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    agent: Option<std::borrow::Cow<'a, str>>,
}

/// Read the top-level `seq`, `time`, `action`, `decision` and `agent` of canonical bytes
/// without building a JSON tree: members are walked in order and every value is skipped
/// structurally (strings with their escapes, nested objects and arrays by depth), so a member
/// inside `details` is never mistaken for a top-level one. Returns `None` when anything is
/// unusual (an escape in a wanted string, a missing member, not an object); the caller then
/// uses the full JSON parser, so this is only ever a faster route to the same answer.
fn scan(body: &[u8]) -> Option<Light<'_>> {
    let b = body;
    let mut i = 0usize;
    if b.first() != Some(&b'{') {
        return None;
    }
    i += 1;
    let (mut seq, mut time, mut action, mut decision, mut agent) = (None, None, None, None, None);
    // Index just past the string starting at `at` (which holds '"'), and whether it had escapes.
    let string_end = |at: usize| -> Option<(usize, bool)> {
        let mut j = at + 1;
        let mut esc = false;
        while j < b.len() {
            match b[j] {
                b'"' => return Some((j + 1, esc)),
                b'\\' => {
                    esc = true;
                    j += 2;
                }
                _ => j += 1,
            }
        }
        None
    };
    let skip_value = |at: usize| -> Option<usize> {
        match b.get(at)? {
            b'"' => string_end(at).map(|(e, _)| e),
            b'{' | b'[' => {
                let mut depth = 0usize;
                let mut j = at;
                while j < b.len() {
                    match b[j] {
                        b'"' => {
                            j = string_end(j)?.0;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                return Some(j + 1);
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
                None
            }
            _ => {
                let mut j = at;
                while j < b.len() && !matches!(b[j], b',' | b'}') {
                    j += 1;
                }
                Some(j)
            }
        }
    };
    loop {
        if b.get(i)? != &b'"' {
            return None;
        }
        let (kend, kesc) = string_end(i)?;
        if kesc {
            return None;
        }
        let key = &b[i + 1..kend - 1];
        if b.get(kend)? != &b':' {
            return None;
        }
        let vstart = kend + 1;
        let vend = skip_value(vstart)?;
        let raw = &b[vstart..vend];
        let text = scan_text;
        match key {
            b"seq" => seq = Some(std::str::from_utf8(raw).ok()?.parse::<u64>().ok()?),
            b"time" => time = Some(text(raw)?),
            b"action" => action = Some(text(raw)?),
            b"decision" => decision = Some(text(raw)?),
            b"agent" => {
                agent = Some(if raw == b"null" {
                    None
                } else {
                    Some(text(raw)?)
                })
            }
            _ => {}
        }
        i = vend;
        match b.get(i)? {
            b',' => i += 1,
            b'}' if i + 1 == b.len() => break,
            _ => return None,
        }
    }
    Some(Light {
        seq: seq?,
        time: std::borrow::Cow::Borrowed(time?),
        action: std::borrow::Cow::Borrowed(action?),
        decision: std::borrow::Cow::Borrowed(decision?),
        agent: agent?.map(std::borrow::Cow::Borrowed),
    })
}

/// The contents of a JSON string without escapes.
fn scan_text(raw: &[u8]) -> Option<&str> {
    let inner = raw.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    if inner.contains(&b'\\') {
        return None;
    }
    std::str::from_utf8(inner).ok()
}

/// Columns the store keeps beside each event body, for queries.
#[derive(Debug)]
pub(crate) struct Columns<'a> {
    pub time: &'a str,
    pub action: &'a str,
    pub decision: &'a str,
    pub agent_id: Option<&'a str>,
}

/// Walks a contiguous log (the store, or a whole-log bundle) in order.
struct Walk<'r> {
    report: &'r mut VerifyReport,
    /// The next position expected.
    expected: u64,
    /// The stored hash of the previous event.
    prev: Hash,
    frontier: Frontier,
    anchors: Vec<Anchor>,
    next_anchor: usize,
    /// Seq of the first event-level problem.
    first_problem: Option<u64>,
    /// Largest anchor matched so far.
    last_match: u64,
    /// Highest position seen (the log's size as its rows claim it).
    last_pos: u64,
    /// Positions present anywhere (bundles), to tell reordered from deleted.
    present: Option<BTreeSet<u64>>,
    /// Positions already reported as out of place.
    misplaced: BTreeSet<u64>,
    /// The previous event was out of place, so this one's link cannot hold either.
    after_anomaly: bool,
    /// Position `.0` held event `.1 = .0 + 1`: a swap if the next holds `.0`.
    swap: Option<u64>,
    /// The store's batch tags, checked along the walk (`audit/tag.rs`).
    tiling: Option<Tiling>,
}

impl<'r> Walk<'r> {
    fn new(report: &'r mut VerifyReport, anchors: Vec<Anchor>) -> Self {
        Walk {
            report,
            expected: 1,
            prev: GENESIS,
            frontier: Frontier::new(),
            anchors,
            next_anchor: 0,
            first_problem: None,
            last_match: 0,
            last_pos: 0,
            present: None,
            misplaced: BTreeSet::new(),
            after_anomaly: false,
            swap: None,
            tiling: None,
        }
    }

    fn flag(&mut self, kind: ProblemKind, seq: u64, message: String) {
        self.first_problem.get_or_insert(seq);
        self.report.problem(kind, Some(seq), message);
    }

    /// One event at position `pos`: its canonical bytes, the hash stored with it, the store's
    /// columns and batch tag (none for bundles).
    fn event(
        &mut self,
        pos: u64,
        body: &[u8],
        stored: &Hash,
        columns: Option<&Columns<'_>>,
        tag: Option<(u64, &[u8])>,
    ) {
        let before = self.report.problems.len();
        self.event_checks(pos, body, stored, columns);
        let flagged = self.report.problems.len() > before;
        if let Some(t) = &mut self.tiling {
            t.event(pos, stored, tag, flagged);
        }
    }

    fn event_checks(
        &mut self,
        pos: u64,
        body: &[u8],
        stored: &Hash,
        columns: Option<&Columns<'_>>,
    ) {
        // Anchors of size 0 (an empty log) match before the first event.
        self.check_anchors();
        self.last_pos = self.last_pos.max(pos);
        let mut explained = std::mem::take(&mut self.after_anomaly);
        let swap = self.swap.take();
        if pos < self.expected {
            // Only bundles can go backwards (the store's positions are its primary key).
            if !self.misplaced.contains(&pos) {
                let kind = if pos + 1 == self.expected {
                    ProblemKind::Inserted
                } else {
                    ProblemKind::Reordered
                };
                let msg = if kind == ProblemKind::Inserted {
                    format!("event #{pos} appears twice: an event was inserted")
                } else {
                    format!(
                        "event #{pos} comes after event #{}: events were reordered",
                        self.expected - 1
                    )
                };
                self.flag(kind, pos, msg);
            }
            self.prev = *stored;
            self.frontier.push(leaf_hash(body));
            self.after_anomaly = true;
            return;
        }
        if pos > self.expected {
            let missing: Vec<u64> = (self.expected..pos)
                .filter(|s| {
                    self.present
                        .as_ref()
                        .map(|p| !p.contains(s))
                        .unwrap_or(true)
                })
                .collect();
            let moved: Vec<u64> = (self.expected..pos)
                .filter(|s| {
                    self.present
                        .as_ref()
                        .map(|p| p.contains(s))
                        .unwrap_or(false)
                })
                .collect();
            if let (Some(a), Some(b)) = (missing.first(), missing.last()) {
                let what = if a == b {
                    format!("event #{a} is missing: it was deleted")
                } else {
                    format!("events #{a} to #{b} are missing: they were deleted")
                };
                self.flag(ProblemKind::Deleted, *a, what);
            }
            if let Some(a) = moved.first() {
                self.flag(
                    ProblemKind::Reordered,
                    *a,
                    format!("event #{a} comes after event #{pos}: events were reordered"),
                );
                self.misplaced.extend(moved.iter().copied());
            }
            explained = true;
            self.expected = pos;
        }
        let leaf = leaf_hash(body);
        let link_ok = chain_link(&self.prev, &leaf).as_slice() == stored.as_slice();
        // A bundle's position is its event's own `seq` and its values were checked when the
        // line was read; only the store has a position and columns of its own to compare.
        if let Some(columns) = columns {
            self.store_fields(pos, body, link_ok, explained, swap, columns);
        } else if !link_ok && !explained {
            self.flag(
                ProblemKind::Edited,
                pos,
                format!(
                    "event #{pos} was changed after it was written: its contents no longer \
                     match its hash"
                ),
            );
        }
        self.prev = *stored;
        self.frontier.push(leaf);
        self.expected = pos + 1;
        self.check_anchors();
    }

    /// The store's checks of one event's body against its row: its `seq` against the row's
    /// position, its link, its decision, and the indexed columns against the hashed event.
    fn store_fields(
        &mut self,
        pos: u64,
        body: &[u8],
        link_ok: bool,
        explained: bool,
        swap: Option<u64>,
        c: &Columns<'_>,
    ) {
        let light: std::result::Result<Light<'_>, serde_json::Error> = match scan(body) {
            Some(l) => Ok(l),
            None => serde_json::from_slice(body),
        };
        match &light {
            Err(e) => self.flag(
                ProblemKind::Edited,
                pos,
                format!("event #{pos} is not a readable event any more ({e}): it was edited"),
            ),
            Ok(l) if l.seq != pos => {
                self.after_anomaly = true;
                if l.seq == pos + 1 {
                    self.swap = Some(pos);
                    self.flag(
                        ProblemKind::Reordered,
                        pos,
                        format!(
                            "position #{pos} holds event #{}: events were reordered",
                            l.seq
                        ),
                    );
                } else if swap == Some(l.seq) {
                    self.flag(
                        ProblemKind::Reordered,
                        pos,
                        format!(
                            "position #{pos} holds event #{}: events #{} and #{pos} were swapped",
                            l.seq, l.seq
                        ),
                    );
                } else if l.seq < pos {
                    self.flag(
                        ProblemKind::Inserted,
                        pos,
                        format!(
                            "position #{pos} holds event #{}: an event was inserted before it, or \
                             an old event copied in",
                            l.seq
                        ),
                    );
                } else {
                    self.flag(
                        ProblemKind::Reordered,
                        pos,
                        format!(
                            "position #{pos} holds event #{}: events were reordered or renumbered",
                            l.seq
                        ),
                    );
                }
            }
            Ok(_) if !link_ok && !explained => {
                self.flag(
                    ProblemKind::Edited,
                    pos,
                    format!(
                        "event #{pos} was changed after it was written: its contents no longer \
                         match its hash"
                    ),
                );
            }
            Ok(l) if !matches!(l.decision.as_ref(), "allow" | "deny") => {
                self.flag(
                    ProblemKind::Edited,
                    pos,
                    format!(
                        "event #{pos} was edited: its decision is '{}', which Mandate never \
                         writes (a decision is allow or deny)",
                        l.decision
                    ),
                );
            }
            Ok(l) => {
                let agent = l.agent.as_deref();
                let mismatch = if c.action != l.action {
                    Some(("action", c.action.to_string(), l.action.to_string()))
                } else if c.decision != l.decision {
                    Some(("decision", c.decision.to_string(), l.decision.to_string()))
                } else if c.time != l.time {
                    Some(("time", c.time.to_string(), l.time.to_string()))
                } else if c.agent_id != agent {
                    Some((
                        "agent_id",
                        c.agent_id.unwrap_or_default().to_string(),
                        agent.unwrap_or_default().to_string(),
                    ))
                } else {
                    None
                };
                if let Some((col, stored_v, signed_v)) = mismatch {
                    self.flag(
                        ProblemKind::Edited,
                        pos,
                        format!(
                            "event #{pos} was edited: its stored {col} is '{stored_v}' but the \
                             hashed event says '{signed_v}'"
                        ),
                    );
                }
            }
        }
    }

    /// Compare every anchor whose size the walk has just reached.
    fn check_anchors(&mut self) {
        while let Some(a) = self.anchors.get(self.next_anchor) {
            let size = a.cp.checkpoint.size;
            let reached = self.frontier.size().max(self.last_pos);
            if size > reached {
                break;
            }
            self.next_anchor += 1;
            if size != self.frontier.size() || size < self.last_pos {
                // Passed through a gap or out of order: the event-level problem says why.
                if self.first_problem.is_none_or(|p| p > size) {
                    let msg = format!(
                        "the events do not line up with {} (covering {size} events)",
                        a.source
                    );
                    self.first_problem.get_or_insert(size);
                    self.report.problem(ProblemKind::Rewritten, Some(size), msg);
                }
                continue;
            }
            let head = if size == 0 { GENESIS } else { self.prev };
            let matches =
                self.frontier.root() == a.cp.checkpoint.root && head == a.cp.checkpoint.chain_head;
            if matches {
                if self.first_problem.is_none() {
                    self.report.checkpoints_verified += 1;
                    self.last_match = self.last_match.max(size);
                }
                continue;
            }
            if self.first_problem.is_some_and(|p| p <= size) {
                continue; // explained by the event-level problem already reported
            }
            let kind = if a.outside {
                ProblemKind::RolledBack
            } else {
                ProblemKind::Rewritten
            };
            let from = self.last_match + 1;
            let msg = format!(
                "the first {size} events do not match {} (signed {}), although each event still \
                 matches its hash: an event between #{from} and #{size} was edited, inserted or \
                 deleted and the hash chain recomputed{}",
                a.source,
                a.cp.checkpoint.time,
                if a.outside {
                    "; the database was replaced or rolled back"
                } else {
                    ""
                }
            );
            self.first_problem.get_or_insert(from);
            self.report.problem(kind, Some(from), msg);
        }
    }

    /// After the last event: anchors beyond the end mean the tail is gone.
    fn finish(mut self) -> Frontier {
        self.check_anchors();
        if let Some(t) = self.tiling.take() {
            for (first, last) in t.finish() {
                self.report.problem(
                    ProblemKind::Unauthenticated,
                    Some(first),
                    tag::gap_message(first, last),
                );
            }
        }
        let n = self.last_pos.max(self.frontier.size());
        let rest: Vec<Anchor> = self.anchors[self.next_anchor..].to_vec();
        let mut reported_truncation = false;
        for a in rest.iter().rev() {
            let size = a.cp.checkpoint.size;
            if size <= n || reported_truncation {
                continue;
            }
            reported_truncation = true;
            let (kind, extra) = if a.outside {
                (
                    ProblemKind::RolledBack,
                    "; the log's own newer checkpoints are gone too: it was truncated and rolled \
                     back to an older state",
                )
            } else {
                (ProblemKind::Truncated, "")
            };
            let removed = if n + 1 == size {
                format!("event #{size} was removed")
            } else {
                format!("events #{} to #{size} were removed", n + 1)
            };
            self.report.problem(
                kind,
                Some(n + 1),
                format!(
                    "the log ends at event #{n} but {} (signed {}) covers {size} events: \
                     {removed}{extra}",
                    a.source, a.cp.checkpoint.time,
                ),
            );
        }
        self.report.events = self.frontier.size();
        self.report.log_size = n;
        self.report.chain_head = hex(&if n == 0 { GENESIS } else { self.prev });
        self.report.root = hex(&self.frontier.root());
        self.frontier
    }
}

/// Inputs to a verification of the live store.
#[derive(Debug, Clone, Default)]
pub struct StoreInputs {
    /// `mandate/<install id>`.
    pub origin: String,
    /// The installation's issuer keys (the current one and those it retired).
    pub trusted: Vec<NoteKey>,
    /// Keys the reader trusts (`--key`: `SHA256:` fingerprints, JWK thumbprints or verifier
    /// keys). When any are given, only these are trusted.
    pub pinned_keys: Vec<String>,
    /// The text of the checkpoint file beside the database, if it exists.
    pub file_checkpoint: Option<String>,
    /// The copy of the newest checkpoint kept in the OS keychain, if there is one.
    pub keychain_checkpoint: Option<String>,
    /// Checkpoints the reader brings (`--checkpoint`): the log must not be older than any of
    /// them and must match each at its size.
    pub seen_checkpoints: Vec<String>,
    /// The key the batches were tagged with (`audit/tag.rs`); `None` when the keychain holds
    /// none (a log written before tags, or tags not checked).
    pub tag_key: Option<TagKey>,
}

/// How a verification names the file beside the database and the keychain's copy.
const FILE_SOURCE: &str = "the checkpoint kept beside the database";
const KEYCHAIN_SOURCE: &str = "the checkpoint kept in the OS keychain";

/// Verify the live store: every event and its batch tag, every stored checkpoint, the copies
/// of the newest checkpoint kept outside the database, and the reader's own checkpoints.
pub fn check_store(conn: &Tx<'_>, inputs: &StoreInputs) -> Result<VerifyReport> {
    let mut report = VerifyReport::new("store", &inputs.origin);
    let trusted = if inputs.pinned_keys.is_empty() {
        inputs.trusted.clone()
    } else {
        pinned(
            &mut report,
            &inputs.pinned_keys,
            &inputs.trusted,
            &inputs.origin,
            "the audit trail",
        )
    };
    report.trusted_keys = trusted.iter().map(|k| keys::fingerprint(&k.key)).collect();
    let stored = super::checkpoint::all(conn)?;
    let mut notes: Vec<(String, String, bool)> = stored
        .iter()
        .map(|c| {
            (
                c.note.clone(),
                format!("the checkpoint of {} events", c.size),
                false,
            )
        })
        .collect();
    if let Some(text) = &inputs.file_checkpoint {
        notes.push((text.clone(), FILE_SOURCE.into(), true));
    }
    if let Some(text) = &inputs.keychain_checkpoint {
        notes.push((text.clone(), KEYCHAIN_SOURCE.into(), true));
    }
    for (i, s) in inputs.seen_checkpoints.iter().enumerate() {
        notes.push((s.clone(), format!("{BROUGHT} (#{})", i + 1), true));
    }
    match (&inputs.file_checkpoint, &inputs.keychain_checkpoint) {
        (None, None) if !stored.is_empty() => report.problem(
            ProblemKind::MissingCheckpointFile,
            None,
            format!(
                "the checkpoint file beside the database ({}) is missing and the OS keychain \
                 holds no copy, so a rollback to an older state cannot be ruled out; if you \
                 moved the database on purpose, run `mandate audit checkpoint` to start a new \
                 one",
                super::checkpoint::FILE_NAME
            ),
        ),
        (None, Some(_)) if !stored.is_empty() => report.notes.push(format!(
            "the checkpoint file beside the database ({}) is missing; the copy in the OS \
             keychain stood in for it (`mandate audit checkpoint` writes the file again)",
            super::checkpoint::FILE_NAME
        )),
        _ => {}
    }
    for c in &stored {
        if let Ok(cp) = SignedCheckpoint::parse(&c.note)
            && cp.checkpoint.size != c.size
        {
            report.problem(
                ProblemKind::Malformed,
                Some(c.size),
                format!(
                    "the checkpoint stored for {} events says it covers {}",
                    c.size, cp.checkpoint.size
                ),
            );
        }
    }
    let anchors = check_notes(&mut report, notes, &trusted, &inputs.origin);
    let mut walk = Walk::new(&mut report, anchors);
    walk.tiling = inputs.tag_key.clone().map(Tiling::new);
    let mut tagged = false;
    conn.query_each(
        "SELECT seq, body, hash, time, action, decision, agent_id, tag_from, tag
         FROM audit_events ORDER BY seq",
        params![],
        |r| {
            use crate::store::ValueRef;
            let seq = r.get::<i64>(0)?;
            let blob = |i: usize| -> Result<&[u8]> {
                Ok(match r.get_ref(i)? {
                    ValueRef::Blob(b) => b,
                    _ => &[],
                })
            };
            let body = blob(1)?;
            let stored_hash: Hash = blob(2)?.try_into().unwrap_or([0xff; 32]);
            let text = |i: usize| -> Result<&str> {
                Ok(match r.get_ref(i)? {
                    ValueRef::Text(t) => t,
                    _ => "<not text>",
                })
            };
            let columns = Columns {
                time: text(3)?,
                action: text(4)?,
                decision: text(5)?,
                agent_id: match r.get_ref(6)? {
                    ValueRef::Null => None,
                    ValueRef::Text(t) => Some(t),
                    _ => Some("<not text>"),
                },
            };
            let tag = match (r.get_ref(7)?, r.get_ref(8)?) {
                (ValueRef::Int(from), ValueRef::Blob(tag)) => Some((from.max(0) as u64, tag)),
                _ => None,
            };
            tagged |= tag.is_some();
            if seq < 1 {
                walk.flag(
                    ProblemKind::Inserted,
                    0,
                    format!("a row with position {seq} was inserted (positions start at 1)"),
                );
                return Ok(());
            }
            walk.event(seq as u64, body, &stored_hash, Some(&columns), tag);
            Ok(())
        },
    )?;
    walk.finish();
    if inputs.tag_key.is_none() {
        if tagged {
            report.problem(
                ProblemKind::Unauthenticated,
                None,
                "the events carry authentication tags, but the OS keychain holds no key to \
                 check them: the keychain was reset or replaced, or this database belongs to \
                 another installation",
            );
        } else if report.events > 0 {
            report.notes.push(
                "the events are not authenticated yet: they were written before Mandate tagged \
                 each committed batch; the next change tags them"
                    .into(),
            );
        }
    }
    Ok(report)
}

/// The keys the reader pins (`--key`), resolved: a verifier key stands for itself (its name
/// must be the log's origin); a `SHA256:` fingerprint or JWK thumbprint must name one of
/// `available`. A pin that resolves to nothing is reported as an untrusted key.
fn pinned(
    report: &mut VerifyReport,
    pins: &[String],
    available: &[NoteKey],
    origin: &str,
    subject: &str,
) -> Vec<NoteKey> {
    let mut out = Vec::new();
    for p in pins {
        if let Ok(k) = NoteKey::parse_vkey(p) {
            if k.name == origin {
                out.push(k);
            } else {
                report.problem(
                    ProblemKind::UnknownKey,
                    None,
                    format!(
                        "the key you trust is named '{}', but this log's keys are named after \
                         its origin '{origin}'",
                        k.name
                    ),
                );
            }
        } else if let Some(k) = available
            .iter()
            .find(|k| keys::fingerprint(&k.key) == *p || keys::thumbprint(&k.key) == *p)
        {
            out.push(k.clone());
        } else {
            report.problem(
                ProblemKind::UnknownKey,
                None,
                format!(
                    "the key you trust ({p}) is not one {subject} was signed with (its keys: {})",
                    available
                        .iter()
                        .map(|k| keys::fingerprint(&k.key))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
    }
    out
}

/// Verify a contiguous run of events from #1 (position, canonical bytes, stored chain hash):
/// hash links, order and the Merkle root, without checkpoints. The core of [`check_store`],
/// exposed for benchmarks and tools that hold events in memory.
pub fn check_chain<'a>(
    events: impl IntoIterator<Item = (u64, &'a [u8], &'a Hash)>,
) -> VerifyReport {
    let mut report = VerifyReport::new("chain", "");
    let mut walk = Walk::new(&mut report, Vec::new());
    for (pos, body, stored) in events {
        walk.event(pos, body, stored, None, None);
    }
    walk.finish();
    report
}

/// Options for verifying a bundle offline.
#[derive(Debug, Clone, Default)]
pub struct BundleOptions {
    /// Trust only these keys (verifier key strings, or `SHA256:` fingerprints); when empty, the
    /// keys the bundle lists are used and their fingerprints reported for the reader to compare.
    pub pinned_keys: Vec<String>,
    /// Checkpoints the reader has seen before (signed notes); the bundle must be consistent
    /// with each and not older.
    pub seen_checkpoints: Vec<String>,
}

fn decode_hex_hash(s: &str) -> Option<Hash> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        let txt = std::str::from_utf8(chunk).ok()?;
        out[i] = u8::from_str_radix(txt, 16).ok()?;
    }
    Some(out)
}

/// Verify an evidence bundle (JSON Lines) offline.
pub fn check_bundle(bytes: &[u8], opts: &BundleOptions) -> VerifyReport {
    let mut report = VerifyReport::new("bundle", "");
    let parsed = match bundle::parse(bytes) {
        Ok(p) => p,
        Err(e) => {
            report.problem(ProblemKind::Malformed, None, e);
            return report;
        }
    };
    let header: Header = parsed.header.clone();
    report.origin = header.origin.clone();
    if matches!(header.scope, BundleScope::Excerpt { .. }) {
        report.subject = "excerpt".into();
    }
    // Keys: each listed key's name is the origin, and its kid and fingerprint are its own.
    let mut listed = Vec::new();
    for k in &header.keys {
        match NoteKey::parse_vkey(&k.vkey) {
            Ok(nk) if nk.name != header.origin => report.problem(
                ProblemKind::Malformed,
                None,
                format!(
                    "the bundle lists a key named '{}' for the log '{}'",
                    nk.name, header.origin
                ),
            ),
            Ok(nk)
                if keys::thumbprint(&nk.key) != k.kid
                    || keys::fingerprint(&nk.key) != k.fingerprint =>
            {
                report.problem(
                    ProblemKind::Malformed,
                    None,
                    format!(
                        "the header lists the key {} as kid '{}' and fingerprint '{}', but that \
                         key's are '{}' and '{}'",
                        k.vkey,
                        k.kid,
                        k.fingerprint,
                        keys::thumbprint(&nk.key),
                        keys::fingerprint(&nk.key)
                    ),
                );
                listed.push(nk);
            }
            Ok(nk) => listed.push(nk),
            Err(e) => report.problem(ProblemKind::Malformed, None, e.to_string()),
        }
    }
    let trusted: Vec<NoteKey> = if opts.pinned_keys.is_empty() {
        listed.clone()
    } else {
        pinned(
            &mut report,
            &opts.pinned_keys,
            &listed,
            &header.origin,
            "the bundle",
        )
    };
    report.trusted_keys = trusted.iter().map(|k| keys::fingerprint(&k.key)).collect();
    if opts.pinned_keys.is_empty() {
        report.notes.push(format!(
            "trusted the key(s) the bundle lists ({}); compare the fingerprint with the one you \
             were given, or pass --key to pin it",
            report.trusted_keys.join(", ")
        ));
    }
    // Seal.
    match &parsed.end {
        None => report.problem(
            ProblemKind::Truncated,
            None,
            "the bundle is truncated: its last line is not the end record",
        ),
        Some(end) => {
            let digest = bundle::seal_digest(&bytes[..parsed.end_offset]);
            if hex(&digest) != end.sha256 {
                report.problem(
                    ProblemKind::BrokenSeal,
                    None,
                    "the bundle was changed after it was exported: its bytes no longer match the \
                     SHA-256 in its end record",
                );
            } else {
                match bundle::check_seal(&digest, end, &trusted) {
                    Ok(()) => {}
                    Err(NoteError::UnknownKey { .. }) => report.problem(
                        ProblemKind::UnknownKey,
                        None,
                        format!(
                            "the bundle's seal is made with key id {}, not with a trusted key",
                            end.key
                        ),
                    ),
                    Err(_) => report.problem(
                        ProblemKind::BrokenSeal,
                        None,
                        "the bundle's seal signature does not verify: it was altered or forged",
                    ),
                }
            }
            let n_events = parsed.events.len() as u64;
            if end.events != n_events {
                let kind = if end.events > n_events {
                    ProblemKind::Deleted
                } else {
                    ProblemKind::Inserted
                };
                report.problem(
                    kind,
                    None,
                    format!(
                        "the bundle's end record says it holds {} events but it holds {n_events}",
                        end.events
                    ),
                );
            }
        }
    }
    for b in &parsed.bad_lines {
        report.problem(
            ProblemKind::Malformed,
            b.seq,
            format!("line {}: {}", b.line, b.why),
        );
    }
    // Checkpoint lines come in strictly ascending order of size.
    let mut previous: Option<u64> = None;
    for n in &parsed.checkpoints {
        let Ok(cp) = SignedCheckpoint::parse(n) else {
            continue;
        };
        let size = cp.checkpoint.size;
        if let Some(p) = previous
            && size <= p
        {
            report.problem(
                ProblemKind::Malformed,
                Some(size),
                format!(
                    "the checkpoint of {size} events comes after the checkpoint of {p} events: \
                     checkpoints are listed in strictly ascending order of size"
                ),
            );
        }
        previous = Some(previous.map_or(size, |p| p.max(size)));
    }
    // Consistency lines: only excerpts have them, one per pair of sizes.
    let mut pairs = BTreeSet::new();
    for c in &parsed.consistency {
        if matches!(header.scope, BundleScope::Full) {
            report.problem(
                ProblemKind::Malformed,
                None,
                "a whole-log bundle holds a consistency line; only excerpts have them",
            );
            break;
        }
        if !pairs.insert((c.from, c.to)) {
            report.problem(
                ProblemKind::Malformed,
                None,
                format!(
                    "two consistency lines are both from {} to {} events",
                    c.from, c.to
                ),
            );
        }
    }
    // Checkpoints.
    let mut notes: Vec<(String, String, bool)> = parsed
        .checkpoints
        .iter()
        .map(|n| {
            let size = SignedCheckpoint::parse(n)
                .map(|c| c.checkpoint.size.to_string())
                .unwrap_or_else(|_| "?".into());
            (n.clone(), format!("the checkpoint of {size} events"), false)
        })
        .collect();
    for (i, s) in opts.seen_checkpoints.iter().enumerate() {
        notes.push((s.clone(), format!("{BROUGHT} (#{})", i + 1), true));
    }
    let anchors = check_notes(&mut report, notes, &trusted, &header.origin);
    let Some(newest) = anchors
        .iter()
        .rev()
        .filter(|a| !a.outside)
        .map(|a| a.cp.clone())
        .next()
    else {
        report.problem(
            ProblemKind::Malformed,
            None,
            "the bundle holds no checkpoint signed by a trusted key, so nothing in it can be \
             checked",
        );
        return report;
    };
    match &parsed.end {
        Some(end) if end.checkpoint != newest.checkpoint.size => report.problem(
            ProblemKind::Malformed,
            None,
            format!(
                "the end record names the checkpoint of {} events but the newest one in the \
                 bundle covers {}",
                end.checkpoint, newest.checkpoint.size
            ),
        ),
        _ => {}
    }
    match &header.scope {
        BundleScope::Full => {
            check_full(&mut report, &parsed, anchors, newest.checkpoint.size);
        }
        BundleScope::Excerpt { .. } => check_excerpt(&mut report, &parsed, &anchors, &newest),
    }
    report
}

fn check_full(
    report: &mut VerifyReport,
    parsed: &bundle::Parsed,
    anchors: Vec<Anchor>,
    newest: u64,
) {
    // A whole-log bundle ends at its newest checkpoint: later events are covered by no
    // checkpoint, only by the seal, and an export never holds them.
    let beyond: Vec<u64> = parsed
        .events
        .iter()
        .map(|e| e.seq)
        .filter(|s| *s > newest)
        .collect();
    if let (Some(first), Some(last)) = (beyond.iter().min(), beyond.iter().max()) {
        let which = if first == last {
            format!("event #{first} comes")
        } else {
            format!("events #{first} to #{last} come")
        };
        report.problem(
            ProblemKind::Inserted,
            Some(*first),
            format!(
                "{which} after the newest checkpoint (of {newest} events), so no checkpoint \
                 covers them; a Mandate export ends at its newest checkpoint"
            ),
        );
    }
    let present: BTreeSet<u64> = parsed.events.iter().map(|e| e.seq).collect();
    let mut walk = Walk::new(report, anchors);
    walk.present = Some(present);
    for ev in &parsed.events {
        let stored = ev
            .hash
            .as_deref()
            .and_then(decode_hex_hash)
            .unwrap_or([0xff; 32]);
        if ev.hash.is_none() {
            walk.flag(
                ProblemKind::Malformed,
                ev.seq,
                format!("event #{} has no hash", ev.seq),
            );
        }
        walk.event(ev.seq, &ev.canonical, &stored, None, None);
    }
    walk.finish();
}

fn check_excerpt(
    report: &mut VerifyReport,
    parsed: &bundle::Parsed,
    anchors: &[Anchor],
    newest: &SignedCheckpoint,
) {
    let size = newest.checkpoint.size;
    let root = newest.checkpoint.root;
    report.log_size = size;
    report.root = hex(&root);
    // Consistency of every other checkpoint with the newest.
    let proofs: BTreeMap<(u64, u64), &Vec<String>> = parsed
        .consistency
        .iter()
        .map(|c| ((c.from, c.to), &c.proof))
        .collect();
    let mut verified = 1u64;
    for a in anchors {
        let m = a.cp.checkpoint.size;
        if a.cp.text == newest.text {
            continue;
        }
        // Degenerate cases need no proof: every log extends the empty one (whose root the
        // note's parser checked), and a checkpoint of the same size must have the same root.
        if m == 0 || (m == size && a.cp.checkpoint.root == root) {
            verified += 1;
            continue;
        }
        if m == size {
            let kind = if a.outside {
                ProblemKind::RolledBack
            } else {
                ProblemKind::Rewritten
            };
            report.problem(
                kind,
                Some(m),
                format!(
                    "{} (signed {}) covers the same {m} events as the bundle's checkpoint but \
                     with another root: history was rewritten",
                    a.source, a.cp.checkpoint.time
                ),
            );
            continue;
        }
        if m > size {
            report.problem(
                ProblemKind::RolledBack,
                Some(m),
                format!(
                    "{} covers {m} events but this excerpt's log has only {size}: the log was \
                     truncated or rolled back",
                    a.source
                ),
            );
            continue;
        }
        let Some(proof) = proofs.get(&(m, size)) else {
            report.problem(
                ProblemKind::ProofMismatch,
                Some(m),
                format!(
                    "the bundle has no consistency proof from {} to the checkpoint of {size} \
                     events",
                    a.source
                ),
            );
            continue;
        };
        let Some(path) = proof
            .iter()
            .map(|h| decode_hex_hash(h))
            .collect::<Option<Vec<_>>>()
        else {
            report.problem(
                ProblemKind::Malformed,
                Some(m),
                "a consistency proof is not hex hashes",
            );
            continue;
        };
        if merkle::verify_consistency(m, size, &a.cp.checkpoint.root, &root, &path) {
            verified += 1;
        } else {
            let kind = if a.outside {
                ProblemKind::RolledBack
            } else {
                ProblemKind::Rewritten
            };
            report.problem(
                kind,
                Some(m),
                format!(
                    "{} (signed {}) is not consistent with the checkpoint of {size} events: the \
                     log did not only grow between them, history was rewritten",
                    a.source, a.cp.checkpoint.time
                ),
            );
        }
    }
    report.checkpoints_verified = verified;
    // Each event against the newest checkpoint.
    let mut last: Option<u64> = None;
    for ev in &parsed.events {
        let seq = ev.seq;
        if let Some(prev) = last
            && seq <= prev
        {
            let (kind, msg) = if seq == prev {
                (
                    ProblemKind::Inserted,
                    format!("event #{seq} appears twice: an event was inserted"),
                )
            } else {
                (
                    ProblemKind::Reordered,
                    format!("event #{seq} comes after event #{prev}: events were reordered"),
                )
            };
            report.problem(kind, Some(seq), msg);
        }
        last = Some(seq);
        if seq == 0 || seq > size {
            report.problem(
                ProblemKind::Inserted,
                Some(seq),
                format!("event #{seq} is outside the log of {size} events: it was inserted"),
            );
            continue;
        }
        let Some(proof) = ev.proof.as_ref().and_then(|p| {
            p.iter()
                .map(|h| decode_hex_hash(h))
                .collect::<Option<Vec<_>>>()
        }) else {
            report.problem(
                ProblemKind::Malformed,
                Some(seq),
                format!("event #{seq} has no inclusion proof, or it is not hex hashes"),
            );
            continue;
        };
        if !merkle::verify_inclusion(seq - 1, size, &leaf_hash(&ev.canonical), &proof, &root) {
            report.problem(
                ProblemKind::Edited,
                Some(seq),
                format!(
                    "event #{seq} does not match its inclusion proof in the checkpoint of {size} \
                     events: the event was edited, or the proof belongs to another event"
                ),
            );
        }
        if let Err(why) = bundle::in_scope(&parsed.header.scope, &ev.value) {
            report.problem(
                ProblemKind::Inserted,
                Some(seq),
                format!("event #{seq} is outside the excerpt's stated selection ({why})"),
            );
        }
    }
    report.events = parsed.events.len() as u64;
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod scan_tests {
    use super::*;

    #[test]
    fn the_fast_scanner_reads_what_the_json_parser_reads_or_declines() {
        let bodies: Vec<&[u8]> = vec![
            br#"{"action":"token.issued","actor":{"id":"a","kind":"agent","name":"x"},"agent":"a","decision":"allow","details":{"seq":99,"x":[{"time":"no"}],"s":"a\"},\"seq\":7"},"on_behalf_of":null,"reason":null,"seq":5,"target":null,"time":"2026-01-01T00:00:00.000000Z","v":1}"#,
            br#"{"action":"a","actor":{"id":"","kind":"app","name":""},"agent":null,"decision":"deny","details":{},"on_behalf_of":null,"reason":"r","seq":1,"target":{"id":"i","kind":"k","name":"n"},"time":"t","v":1}"#,
        ];
        for b in bodies {
            let fast = scan(b).unwrap();
            let slow: Light<'_> = serde_json::from_slice(b).unwrap();
            assert_eq!(fast.seq, slow.seq);
            assert_eq!(fast.time, slow.time);
            assert_eq!(fast.action, slow.action);
            assert_eq!(fast.decision, slow.decision);
            assert_eq!(fast.agent, slow.agent);
        }
        // Declines what it does not fully understand.
        assert!(scan(br#"{"action":"a\u0041","seq":1}"#).is_none());
        assert!(scan(b"[1]").is_none());
        assert!(scan(br#"{"seq":1"#).is_none());
    }
}
