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
use sha2::{Digest, Sha256};

use crate::bundle::{self, BundleScope};
use crate::keys;
use crate::merkle::{self, Frontier, Hash, leaf_hash};
use crate::note::{NoteError, NoteKey, SignedCheckpoint};
use crate::tag::{self, TagKey, Tiling};
use crate::{GENESIS, chain_link, hex};

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
    /// A witness the reader named (`--witness`) did not cosign any checkpoint in the file, or
    /// its cosignature does not verify.
    MissingCosignature,
}

impl ProblemKind {
    /// The kind's name as JSON and the text output write it (snake case).
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::Edited => "edited",
            ProblemKind::Deleted => "deleted",
            ProblemKind::Inserted => "inserted",
            ProblemKind::Reordered => "reordered",
            ProblemKind::Truncated => "truncated",
            ProblemKind::Rewritten => "rewritten",
            ProblemKind::ForgedCheckpoint => "forged_checkpoint",
            ProblemKind::UnknownKey => "unknown_key",
            ProblemKind::RolledBack => "rolled_back",
            ProblemKind::MissingCheckpointFile => "missing_checkpoint_file",
            ProblemKind::Malformed => "malformed",
            ProblemKind::ProofMismatch => "proof_mismatch",
            ProblemKind::BrokenSeal => "broken_seal",
            ProblemKind::Unauthenticated => "unauthenticated",
            ProblemKind::MissingCosignature => "missing_cosignature",
        }
    }

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
            ProblemKind::MissingCosignature => 14,
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
            (ProblemKind::MissingCosignature, _) => {
                "a witness you named did not vouch for this log: ask the team server's admin \
                 whether that witness syncs (`mandate team witness list`); a witness that \
                 refused to cosign saw a different history, so keep this file as evidence"
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
/// How messages name a checkpoint the reader brings (`--checkpoint`).
pub const BROUGHT: &str = "the checkpoint you brought";

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

    /// An empty report (nothing checked, nothing wrong) about `subject` (`store`, `bundle`,
    /// `excerpt` or `chain`) of the log `origin`.
    pub fn new(subject: &str, origin: &str) -> Self {
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

    /// The report on a file that could not be read as a bundle at all (a PDF report whose
    /// attachment cannot be found or read, AUDIT_FORMAT §6): one `malformed` problem, nothing
    /// else checked.
    pub fn unreadable(message: impl Into<String>) -> Self {
        let mut r = VerifyReport::new("bundle", "");
        r.problem(ProblemKind::Malformed, None, message);
        r
    }

    /// Record a problem.
    pub fn problem(&mut self, kind: ProblemKind, seq: Option<u64>, message: impl Into<String>) {
        self.problems.push(Problem {
            kind,
            seq,
            message: message.into(),
        });
    }
}

/// The note on a report made before page digests (AUDIT_FORMAT §6): its bundle may verify, but
/// nothing binds its pages to it. [`VerifyReport::to_text`] says so in the verdict line.
pub const PAGES_UNBOUND: &str = "pages unbound: this report was made before Mandate signed its \
     pages (it attaches no mandate-pages.json), so what its pages say may have been edited; rely \
     on this verifier's output, not on the pages, or ask for a report from a current Mandate";

impl VerifyReport {
    /// True when the file verified but is a report whose pages nothing binds to its evidence
    /// ([`PAGES_UNBOUND`]): a pass of its evidence only.
    pub fn evidence_only(&self) -> bool {
        self.ok() && self.notes.iter().any(|n| n == PAGES_UNBOUND)
    }

    /// The verdict in one line, the first of [`VerifyReport::to_text`] and the headline the
    /// verifier page shows: `OK:` (saying so when only the evidence, not the pages, verified)
    /// or `FAILED:` about `what`.
    pub fn headline(&self, what: &str) -> String {
        if self.evidence_only() {
            format!(
                "OK: {what} verified, its evidence only: its pages are not bound to it (see the \
                 note)."
            )
        } else if self.ok() {
            format!("OK: {what} verified.")
        } else {
            format!("FAILED: {what} did not verify.")
        }
    }

    /// The result as people read it, one line each: `OK:` or `FAILED:` about `what` (e.g. "the
    /// report q3.pdf"), the log, events, newest checkpoint and its key, notes and every
    /// problem. The CLI, `mandate-verify` and the verifier page all print this, so they say
    /// the same thing.
    pub fn to_text(&self, what: &str) -> String {
        use std::fmt::Write as _;
        let mut out = self.headline(what);
        out.push('\n');
        let _ = writeln!(out, "  log          {}", self.origin);
        let _ = if self.subject == "excerpt" {
            writeln!(
                out,
                "  events       {} (an excerpt of a log of {})",
                self.events, self.log_size
            )
        } else {
            writeln!(out, "  events       {}", self.events)
        };
        if let Some(c) = &self.newest_checkpoint {
            let _ = writeln!(
                out,
                "  checkpoint   {} events, signed {} by {}",
                c.size, c.time, c.key_fingerprint
            );
            let _ = writeln!(out, "  root         {}", c.root);
        }
        let _ = writeln!(out, "  checkpoints  {} verified", self.checkpoints_verified);
        for n in &self.notes {
            let _ = writeln!(out, "  note: {n}");
        }
        for p in &self.problems {
            let at = p.seq.map(|s| format!(" at #{s}")).unwrap_or_default();
            let _ = writeln!(out, "  problem ({}{at}): {}", p.kind.as_str(), p.message);
        }
        out
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
pub struct Anchor {
    pub cp: SignedCheckpoint,
    pub source: String,
    /// From outside the log (the file beside the database, or one the reader brings).
    pub outside: bool,
}

/// Check signatures and origins of `(note, source, outside)`; keep the good ones as anchors
/// (ascending by size), report the rest.
pub fn check_notes(
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
pub struct Columns<'a> {
    pub time: &'a str,
    pub action: &'a str,
    pub decision: &'a str,
    pub agent_id: Option<&'a str>,
}

/// Walks a contiguous log (the store, or a whole-log bundle) in order, in one pass: each
/// event's link, position and the columns kept beside it, the Merkle root as it grows, and the
/// anchors (checkpoints) as the walk reaches their sizes.
#[derive(Debug)]
pub struct Walk {
    report: VerifyReport,
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
    /// Whether a position missing here may still come later in the file (a bundle's lines can
    /// be out of order; the store's positions are its primary key). Then each gap is decided
    /// at the end, as deleted or reordered, from what came later: one pass, and memory that
    /// grows with the disorder, not with the log.
    deferred: bool,
    /// Gaps still to decide (bundles), in ascending order.
    gaps: Vec<Gap>,
    /// The previous event was out of place, so this one's link cannot hold either.
    after_anomaly: bool,
    /// Position `.0` held event `.1 = .0 + 1`: a swap if the next holds `.0`.
    swap: Option<u64>,
    /// The store's batch tags, checked along the walk (`audit/tag.rs`).
    tiling: Option<Tiling>,
}

/// Positions `from..to` were skipped when position `to` came; those that come later were
/// reordered, the others deleted. `at` is where in the problems the verdict goes.
#[derive(Debug)]
struct Gap {
    from: u64,
    to: u64,
    at: usize,
    came_later: BTreeSet<u64>,
}

impl Walk {
    /// A walk from event #1 that reports into `report` and holds the log against `anchors`.
    pub fn new(report: VerifyReport, anchors: Vec<Anchor>) -> Self {
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
            deferred: false,
            gaps: Vec::new(),
            after_anomaly: false,
            swap: None,
            tiling: None,
        }
    }

    /// One more anchor, found after the walk began (a checkpoint line out of order).
    pub fn add_anchor(&mut self, a: Anchor) {
        if self.anchors.iter().any(|b| b.cp.text == a.cp.text) {
            return;
        }
        let size = a.cp.checkpoint.size;
        let at = self.next_anchor
            + self.anchors[self.next_anchor..].partition_point(|b| b.cp.checkpoint.size <= size);
        self.anchors.insert(at, a);
    }

    /// Walk a bundle's event lines, which may come in any order (see `deferred`).
    pub fn for_bundle(report: VerifyReport, anchors: Vec<Anchor>) -> Self {
        let mut w = Walk::new(report, anchors);
        w.deferred = true;
        w
    }

    /// Check the store's batch tags with `key` along the walk (`tag`).
    pub fn check_tags(&mut self, key: TagKey) {
        self.tiling = Some(Tiling::new(key));
    }

    /// Record an event-level problem at `seq`.
    pub fn flag(&mut self, kind: ProblemKind, seq: u64, message: String) {
        self.first_problem.get_or_insert(seq);
        self.report.problem(kind, Some(seq), message);
    }

    /// One event at position `pos`: its canonical bytes, the hash stored with it, the store's
    /// columns and batch tag (none for bundles).
    pub fn event(
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
            let in_gap = self.gap_holding(pos).map(|g| {
                g.came_later.insert(pos);
            });
            if in_gap.is_none() {
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
        if pos > self.expected && self.deferred {
            self.first_problem.get_or_insert(self.expected);
            self.gaps.push(Gap {
                from: self.expected,
                to: pos,
                at: self.report.problems.len(),
                came_later: BTreeSet::new(),
            });
            explained = true;
            self.expected = pos;
        } else if pos > self.expected {
            // The store: a position that is not there was deleted.
            let (a, b) = (self.expected, pos - 1);
            let what = if a == b {
                format!("event #{a} is missing: it was deleted")
            } else {
                format!("events #{a} to #{b} are missing: they were deleted")
            };
            self.flag(ProblemKind::Deleted, a, what);
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

    /// The undecided gap that holds `pos`, if any.
    fn gap_holding(&mut self, pos: u64) -> Option<&mut Gap> {
        let i = self.gaps.partition_point(|g| g.to <= pos);
        self.gaps.get_mut(i).filter(|g| g.from <= pos)
    }

    /// Decide each gap: the positions that never came were deleted, those that came later
    /// were reordered. The verdicts go where the gap was found, in the order a walk that knew
    /// the whole file would have given them.
    fn decide_gaps(&mut self) {
        for g in std::mem::take(&mut self.gaps).into_iter().rev() {
            let mut verdicts = Vec::new();
            let missing = (g.from..g.to).filter(|p| !g.came_later.contains(p));
            let (mut first, mut last) = (None, None);
            for p in missing {
                first.get_or_insert(p);
                last = Some(p);
            }
            if let (Some(a), Some(b)) = (first, last) {
                let what = if a == b {
                    format!("event #{a} is missing: it was deleted")
                } else {
                    format!("events #{a} to #{b} are missing: they were deleted")
                };
                verdicts.push(Problem {
                    kind: ProblemKind::Deleted,
                    seq: Some(a),
                    message: what,
                });
            }
            if let Some(a) = g.came_later.first() {
                verdicts.push(Problem {
                    kind: ProblemKind::Reordered,
                    seq: Some(*a),
                    message: format!(
                        "event #{a} comes after event #{}: events were reordered",
                        g.to
                    ),
                });
            }
            let at = g.at.min(self.report.problems.len());
            self.report.problems.splice(at..at, verdicts);
        }
    }

    /// After the last event: anchors beyond the end mean the tail is gone. Returns the report.
    pub fn finish(mut self) -> VerifyReport {
        self.check_anchors();
        self.decide_gaps();
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
        self.report
    }
}

/// The keys the reader pins (`--key`), resolved: a verifier key stands for itself (its name
/// must be the log's origin); a `SHA256:` fingerprint or JWK thumbprint must name one of
/// `available`. A pin that resolves to nothing is reported as an untrusted key.
pub fn pinned(
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
    let mut walk = Walk::new(VerifyReport::new("chain", ""), Vec::new());
    for (pos, body, stored) in events {
        walk.event(pos, body, stored, None, None);
    }
    walk.finish()
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
    /// Witnesses (cosignature verifier keys, `NAME+KEYID+BASE64`) each of which must have
    /// cosigned a checkpoint in the bundle (C2SP `cosignature/v1`). An unreadable key is a
    /// problem of the reader's input: callers check them first ([`parse_witnesses`]).
    pub witnesses: Vec<String>,
}

/// Read the witness keys a reader names; the first that is not a cosignature verifier key is
/// the error, with why.
pub fn parse_witnesses(
    keys: &[String],
) -> Result<Vec<crate::cosignature::WitnessKey>, crate::cosignature::CosignatureError> {
    keys.iter()
        .map(|k| crate::cosignature::WitnessKey::parse_vkey(k))
        .collect()
}

/// Hold the bundle's checkpoint notes against each witness: a problem for a witness that
/// cosigned none (or whose every cosignature fails), a note naming the checkpoint each
/// cosigned. Only checkpoints the rest of the verification checked count, so this adds
/// nothing to a report that already failed.
fn check_witnesses(report: &mut VerifyReport, checkpoints: &[String], witnesses: &[String]) {
    use crate::cosignature::{CosignatureError, WitnessKey, verify_note};
    for w in witnesses {
        let key = match WitnessKey::parse_vkey(w) {
            Ok(k) => k,
            Err(e) => {
                report.problem(ProblemKind::MissingCosignature, None, e.to_string());
                continue;
            }
        };
        let mut best: Option<(u64, crate::cosignature::Cosignature)> = None;
        let mut failure: Option<(u64, CosignatureError)> = None;
        for n in checkpoints {
            let Ok(cp) = SignedCheckpoint::parse(n) else {
                continue;
            };
            let size = cp.checkpoint.size;
            match verify_note(n, &key) {
                Ok(c) if best.as_ref().is_none_or(|(s, _)| size > *s) => best = Some((size, c)),
                Ok(_) | Err(CosignatureError::Missing { .. }) => {}
                Err(e) => failure = Some((size, e)),
            }
        }
        match (best, failure) {
            (Some((size, c)), _) => report.notes.push(format!(
                "witness {} cosigned the checkpoint of {size} events (at {} UTC, POSIX time {})",
                key.name,
                unix_time_text(c.timestamp),
                c.timestamp
            )),
            (None, Some((size, e))) => report.problem(
                ProblemKind::MissingCosignature,
                Some(size),
                format!("on the checkpoint of {size} events, {e}"),
            ),
            (None, None) => report.problem(
                ProblemKind::MissingCosignature,
                None,
                format!(
                    "no checkpoint in this file is cosigned by witness {} (key id {})",
                    key.name,
                    hex(&key.key_id())
                ),
            ),
        }
    }
}

/// `YYYY-MM-DD HH:MM:SS` for POSIX seconds (civil-from-days, no clock or time zone needed).
pub fn unix_time_text(t: u64) -> String {
    let days = (t / 86_400) as i64;
    let secs = t % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
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

/// Verify an evidence bundle (JSON Lines) held in memory. The same as feeding its bytes to a
/// [`BundleCheck`].
pub fn check_bundle(bytes: &[u8], opts: &BundleOptions) -> VerifyReport {
    let mut check = BundleCheck::new(opts.clone());
    check.feed(bytes);
    check.finish()
}

/// Verifies an evidence bundle as its bytes arrive, in one pass: feed it chunks of any size
/// ([`feed`](Self::feed)), then [`finish`](Self::finish). It holds one line at a time, the
/// checkpoints, the right edge of the Merkle tree and the problems found, so its memory does
/// not grow with the number of events (a million-event bundle verifies in a browser tab).
///
/// The report is the one [`check_bundle`] gives, problems in the same order: key problems, the
/// seal and the end record, lines that break the format, checkpoints, then the events.
#[derive(Debug)]
pub struct BundleCheck {
    opts: BundleOptions,
    reader: bundle::Reader,
    /// Every byte before the end line, hashed as it comes.
    sealed: Sha256,
    /// The digest of the sealed bytes, once the end line came.
    digest: Option<Hash>,
    /// The start of a line whose newline has not come yet.
    partial: Vec<u8>,
    /// The file is not a bundle at all.
    fatal: Option<String>,
    report: VerifyReport,
    trusted: Vec<NoteKey>,
    checkpoints: Vec<String>,
    consistency: Vec<bundle::Consistency>,
    events: u64,
    /// Problems found about the checkpoints, before the events were walked.
    checkpoint_problems: Vec<Problem>,
    /// A checkpoint or consistency line came after the events had started (itself reported as
    /// out of order): the checkpoints are checked again at the end, all of them.
    late: bool,
    stage: Stage,
}

/// Where a [`BundleCheck`] is: collecting checkpoints, or walking events against them.
#[derive(Debug)]
enum Stage {
    Checkpoints,
    /// No checkpoint signed by a trusted key: nothing can be checked.
    Nothing,
    Full {
        walk: Box<Walk>,
        newest: u64,
        /// Positions of events after the newest checkpoint known when they came (none in a
        /// bundle Mandate made).
        beyond: Vec<u64>,
    },
    Excerpt {
        newest: Box<SignedCheckpoint>,
        /// Problems of the walk so far.
        problems: Vec<Problem>,
        last: Option<u64>,
    },
}

impl BundleCheck {
    pub fn new(opts: BundleOptions) -> Self {
        BundleCheck {
            opts,
            reader: bundle::Reader::new(),
            sealed: Sha256::new(),
            digest: None,
            partial: Vec::new(),
            fatal: None,
            report: VerifyReport::new("bundle", ""),
            trusted: Vec::new(),
            checkpoints: Vec::new(),
            consistency: Vec::new(),
            events: 0,
            checkpoint_problems: Vec::new(),
            late: false,
            stage: Stage::Checkpoints,
        }
    }

    /// The next bytes of the bundle, in order; chunks may split lines anywhere.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while let Some(nl) = bytes.iter().position(|b| *b == b'\n') {
            let (line, rest) = bytes.split_at(nl + 1);
            bytes = rest;
            if self.partial.is_empty() {
                self.line(line);
            } else {
                let mut whole = std::mem::take(&mut self.partial);
                whole.extend_from_slice(line);
                self.line(&whole);
                whole.clear();
                self.partial = whole;
            }
        }
        self.partial.extend_from_slice(bytes);
    }

    /// The keys this verification trusts (known once the header is read): the ones pinned,
    /// or those the bundle lists.
    pub fn trusted(&self) -> &[NoteKey] {
        &self.trusted
    }

    /// Bytes fed so far (for progress).
    pub fn bytes_read(&self) -> u64 {
        (self.reader.offset() + self.partial.len()) as u64
    }

    fn line(&mut self, raw: &[u8]) {
        if self.fatal.is_some() {
            return;
        }
        let before_end = self.reader.end.is_none();
        match self.reader.line(raw) {
            Err(e) => self.fatal = Some(e),
            Ok(item) => {
                if matches!(item, Some(bundle::Item::End)) {
                    self.digest = Some(self.sealed.clone().finalize().into());
                } else if before_end {
                    self.sealed.update(raw);
                }
                match item {
                    Some(bundle::Item::Header) => self.header(),
                    Some(bundle::Item::Checkpoint(n)) => {
                        if !matches!(self.stage, Stage::Checkpoints) {
                            self.late_checkpoint(&n);
                        }
                        self.checkpoints.push(n);
                    }
                    Some(bundle::Item::Consistency(c)) => {
                        self.late |= !matches!(self.stage, Stage::Checkpoints);
                        self.consistency.push(c);
                    }
                    Some(bundle::Item::Event(ev)) => {
                        self.events += 1;
                        self.event(ev);
                    }
                    Some(bundle::Item::End) | None => {}
                }
            }
        }
    }

    /// The header: the log's origin and the keys it lists (each named after the origin, its
    /// kid and fingerprint its own), and which of them to trust.
    fn header(&mut self) {
        let Some(header) = self.reader.header.clone() else {
            return;
        };
        let report = &mut self.report;
        report.origin = header.origin.clone();
        if matches!(header.scope, BundleScope::Excerpt { .. }) {
            report.subject = "excerpt".into();
        }
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
                            "the header lists the key {} as kid '{}' and fingerprint '{}', but \
                             that key's are '{}' and '{}'",
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
        self.trusted = if self.opts.pinned_keys.is_empty() {
            listed.clone()
        } else {
            pinned(
                report,
                &self.opts.pinned_keys,
                &listed,
                &header.origin,
                "the bundle",
            )
        };
        report.trusted_keys = self
            .trusted
            .iter()
            .map(|k| keys::fingerprint(&k.key))
            .collect();
        if self.opts.pinned_keys.is_empty() {
            report.notes.push(format!(
                "trusted the key(s) the bundle lists ({}); compare the fingerprint with the one \
                 you were given, or pass --key to pin it",
                report.trusted_keys.join(", ")
            ));
        }
    }

    /// Before the first event (or at the end, if there is none): check the checkpoints and
    /// consistency lines, and get ready to walk the events against the newest checkpoint.
    fn start_events(&mut self) {
        if !matches!(self.stage, Stage::Checkpoints) {
            return;
        }
        let Some(header) = self.reader.header.clone() else {
            self.stage = Stage::Nothing;
            return;
        };
        let (problems, anchors, newest) = self.checkpoint_checks(&header);
        self.checkpoint_problems = problems;
        let report = &mut self.report;
        let Some(newest) = newest else {
            self.stage = Stage::Nothing;
            return;
        };
        self.stage = match header.scope {
            BundleScope::Full => {
                let mut walk_report = VerifyReport::new(&report.subject, &report.origin);
                walk_report.newest_checkpoint = report.newest_checkpoint.clone();
                walk_report.checkpoints_verified = report.checkpoints_verified;
                Stage::Full {
                    walk: Box::new(Walk::for_bundle(walk_report, anchors)),
                    newest: newest.checkpoint.size,
                    beyond: Vec::new(),
                }
            }
            BundleScope::Excerpt { .. } => {
                let problems = excerpt_checkpoints(report, &self.consistency, &anchors, &newest);
                Stage::Excerpt {
                    newest: Box::new(newest),
                    problems,
                    last: None,
                }
            }
        };
    }

    /// The checkpoint lines read so far: strictly ascending, the consistency lines, each
    /// note's origin and signature. Returns their problems (apart from the report's), the
    /// anchors that verified and the newest of the bundle's own; sets the newest checkpoint.
    fn checkpoint_checks(
        &mut self,
        header: &bundle::Header,
    ) -> (Vec<Problem>, Vec<Anchor>, Option<SignedCheckpoint>) {
        // The key problems stay first; the checkpoint problems are kept apart until the end,
        // when the seal's and the lines' come before them.
        let keys_problems = std::mem::take(&mut self.report.problems);
        self.report.newest_checkpoint = None;
        let report = &mut self.report;
        // Checkpoint lines come in strictly ascending order of size.
        let mut previous: Option<u64> = None;
        for n in &self.checkpoints {
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
                        "the checkpoint of {size} events comes after the checkpoint of {p} \
                         events: checkpoints are listed in strictly ascending order of size"
                    ),
                );
            }
            previous = Some(previous.map_or(size, |p| p.max(size)));
        }
        // Consistency lines: only excerpts have them, one per pair of sizes.
        let mut pairs = BTreeSet::new();
        for c in &self.consistency {
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
        let mut notes: Vec<(String, String, bool)> = self
            .checkpoints
            .iter()
            .map(|n| {
                let size = SignedCheckpoint::parse(n)
                    .map(|c| c.checkpoint.size.to_string())
                    .unwrap_or_else(|_| "?".into());
                (n.clone(), format!("the checkpoint of {size} events"), false)
            })
            .collect();
        for (i, s) in self.opts.seen_checkpoints.iter().enumerate() {
            notes.push((s.clone(), format!("{BROUGHT} (#{})", i + 1), true));
        }
        let anchors = check_notes(report, notes, &self.trusted, &header.origin);
        let newest = anchors
            .iter()
            .rev()
            .filter(|a| !a.outside)
            .map(|a| a.cp.clone())
            .next();
        if newest.is_none() {
            report.problem(
                ProblemKind::Malformed,
                None,
                "the bundle holds no checkpoint signed by a trusted key, so nothing in it can be \
                 checked",
            );
        }
        let problems = std::mem::replace(&mut report.problems, keys_problems);
        (problems, anchors, newest)
    }

    /// A checkpoint line after the events began (out of order, and reported so): a whole-log
    /// walk still holds the rest of the log against it, as if it had come first.
    fn late_checkpoint(&mut self, note: &str) {
        self.late = true;
        let origin = self.report.origin.clone();
        let Stage::Full { walk, newest, .. } = &mut self.stage else {
            return;
        };
        let mut scratch = VerifyReport::new("bundle", &origin);
        let size = SignedCheckpoint::parse(note)
            .map(|c| c.checkpoint.size.to_string())
            .unwrap_or_else(|_| "?".into());
        let found = check_notes(
            &mut scratch,
            vec![(
                note.to_string(),
                format!("the checkpoint of {size} events"),
                false,
            )],
            &self.trusted,
            &origin,
        );
        for a in found {
            *newest = (*newest).max(a.cp.checkpoint.size);
            walk.add_anchor(a);
        }
    }

    fn event(&mut self, ev: bundle::ParsedEvent) {
        self.start_events();
        match &mut self.stage {
            Stage::Checkpoints | Stage::Nothing => {}
            Stage::Full {
                walk,
                newest,
                beyond,
            } => {
                // A whole-log bundle ends at its newest checkpoint: later events are covered by
                // no checkpoint, only by the seal, and an export never holds them.
                if ev.seq > *newest {
                    beyond.push(ev.seq);
                }
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
            Stage::Excerpt {
                newest,
                problems,
                last,
            } => {
                let scope = self
                    .reader
                    .header
                    .as_ref()
                    .map(|h| h.scope.clone())
                    .unwrap_or(BundleScope::Full);
                excerpt_event(problems, last, newest, &scope, &ev);
            }
        }
    }

    /// The last bytes have been fed: the verdict.
    pub fn finish(mut self) -> VerifyReport {
        if !self.partial.is_empty() {
            let last = std::mem::take(&mut self.partial);
            self.line(&last);
        }
        if let Some(e) = self.fatal.take() {
            let mut report = VerifyReport::new("bundle", "");
            report.problem(ProblemKind::Malformed, None, e);
            return report;
        }
        if self.reader.header.is_none() {
            let mut report = VerifyReport::new("bundle", "");
            report.problem(
                ProblemKind::Malformed,
                None,
                "the file is empty: it is not a Mandate evidence bundle",
            );
            return report;
        }
        self.start_events();
        if self.late
            && let Some(header) = self.reader.header.clone()
        {
            let (problems, _, _) = self.checkpoint_checks(&header);
            self.checkpoint_problems = problems;
        }
        let newest_checkpoint = self.report.newest_checkpoint.clone();
        let mut report = std::mem::replace(&mut self.report, VerifyReport::new("", ""));
        // The seal, and the end record's count.
        match &self.reader.end {
            None => report.problem(
                ProblemKind::Truncated,
                None,
                "the bundle is truncated: its last line is not the end record",
            ),
            Some(end) => {
                let digest = self.digest.unwrap_or_default();
                if hex(&digest) != end.sha256 {
                    report.problem(
                        ProblemKind::BrokenSeal,
                        None,
                        "the bundle was changed after it was exported: its bytes no longer \
                         match the SHA-256 in its end record",
                    );
                } else {
                    match bundle::check_seal(&digest, end, &self.trusted) {
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
                            "the bundle's seal signature does not verify: it was altered or \
                             forged",
                        ),
                    }
                }
                if end.events != self.events {
                    let kind = if end.events > self.events {
                        ProblemKind::Deleted
                    } else {
                        ProblemKind::Inserted
                    };
                    report.problem(
                        kind,
                        None,
                        format!(
                            "the bundle's end record says it holds {} events but it holds {}",
                            end.events, self.events
                        ),
                    );
                }
            }
        }
        for b in std::mem::take(&mut self.reader.bad_lines) {
            report.problem(
                ProblemKind::Malformed,
                b.seq,
                format!("line {}: {}", b.line, b.why),
            );
        }
        report
            .problems
            .append(&mut std::mem::take(&mut self.checkpoint_problems));
        if !self.opts.witnesses.is_empty() {
            check_witnesses(&mut report, &self.checkpoints, &self.opts.witnesses);
        }
        let newest_size = match &self.stage {
            Stage::Full { newest, .. } => Some(*newest),
            Stage::Excerpt { newest, .. } => Some(newest.checkpoint.size),
            Stage::Checkpoints | Stage::Nothing => None,
        };
        let Some(newest_size) = newest_size else {
            return report;
        };
        if let Some(end) = &self.reader.end
            && end.checkpoint != newest_size
        {
            report.problem(
                ProblemKind::Malformed,
                None,
                format!(
                    "the end record names the checkpoint of {} events but the newest one in the \
                     bundle covers {newest_size}",
                    end.checkpoint
                ),
            );
        }
        match std::mem::replace(&mut self.stage, Stage::Nothing) {
            Stage::Full {
                walk,
                newest,
                beyond,
            } => {
                let beyond: Vec<u64> = beyond.into_iter().filter(|s| *s > newest).collect();
                if let (Some(&first), Some(&last)) = (beyond.iter().min(), beyond.iter().max()) {
                    let which = if first == last {
                        format!("event #{first} comes")
                    } else {
                        format!("events #{first} to #{last} come")
                    };
                    report.problem(
                        ProblemKind::Inserted,
                        Some(first),
                        format!(
                            "{which} after the newest checkpoint (of {newest} events), so no \
                             checkpoint covers them; a Mandate export ends at its newest \
                             checkpoint"
                        ),
                    );
                }
                let mut walked = walk.finish();
                report.problems.append(&mut walked.problems);
                report.events = walked.events;
                report.log_size = walked.log_size;
                report.chain_head = walked.chain_head;
                report.root = walked.root;
                report.checkpoints_verified = walked.checkpoints_verified;
                report.newest_checkpoint = newest_checkpoint;
                report.notes.append(&mut walked.notes);
            }
            Stage::Excerpt { mut problems, .. } => {
                report.problems.append(&mut problems);
                report.events = self.events;
            }
            Stage::Checkpoints | Stage::Nothing => {}
        }
        report
    }
}

/// An excerpt's checkpoints: every other checkpoint must be consistent with the newest (by the
/// bundle's consistency proofs). Sets the report's size, root and checkpoints verified; returns
/// the problems, which come after the seal's and the lines'.
fn excerpt_checkpoints(
    report: &mut VerifyReport,
    consistency: &[bundle::Consistency],
    anchors: &[Anchor],
    newest: &SignedCheckpoint,
) -> Vec<Problem> {
    let size = newest.checkpoint.size;
    let root = newest.checkpoint.root;
    report.log_size = size;
    report.root = hex(&root);
    let mut problems = Vec::new();
    let mut problem = |kind: ProblemKind, seq: Option<u64>, message: String| {
        problems.push(Problem { kind, seq, message });
    };
    let proofs: BTreeMap<(u64, u64), &Vec<String>> = consistency
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
            problem(
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
            problem(
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
            problem(
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
            problem(
                ProblemKind::Malformed,
                Some(m),
                "a consistency proof is not hex hashes".into(),
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
            problem(
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
    problems
}

/// One event of an excerpt, against the newest checkpoint: in order, inside the log, its
/// inclusion proof, and inside the excerpt's stated selection.
fn excerpt_event(
    problems: &mut Vec<Problem>,
    last: &mut Option<u64>,
    newest: &SignedCheckpoint,
    scope: &BundleScope,
    ev: &bundle::ParsedEvent,
) {
    let size = newest.checkpoint.size;
    let root = newest.checkpoint.root;
    let mut problem = |kind: ProblemKind, seq: u64, message: String| {
        problems.push(Problem {
            kind,
            seq: Some(seq),
            message,
        });
    };
    let seq = ev.seq;
    if let Some(prev) = *last
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
        problem(kind, seq, msg);
    }
    *last = Some(seq);
    if seq == 0 || seq > size {
        problem(
            ProblemKind::Inserted,
            seq,
            format!("event #{seq} is outside the log of {size} events: it was inserted"),
        );
        return;
    }
    let Some(proof) = ev.proof.as_ref().and_then(|p| {
        p.iter()
            .map(|h| decode_hex_hash(h))
            .collect::<Option<Vec<_>>>()
    }) else {
        problem(
            ProblemKind::Malformed,
            seq,
            format!("event #{seq} has no inclusion proof, or it is not hex hashes"),
        );
        return;
    };
    if !merkle::verify_inclusion(seq - 1, size, &leaf_hash(&ev.canonical), &proof, &root) {
        problem(
            ProblemKind::Edited,
            seq,
            format!(
                "event #{seq} does not match its inclusion proof in the checkpoint of {size} \
                 events: the event was edited, or the proof belongs to another event"
            ),
        );
    }
    if let Err(why) = bundle::in_scope(scope, &ev.value) {
        problem(
            ProblemKind::Inserted,
            seq,
            format!("event #{seq} is outside the excerpt's stated selection ({why})"),
        );
    }
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
