//! Evidence bundles: the audit log, or an excerpt of it, as JSON Lines a reader can verify
//! offline (`docs/AUDIT_FORMAT.md` §5 is the normative description).
//!
//! Lines, in order: one `header` (origin, scope, the issuer's verifier keys), the signed
//! `checkpoint`s, for excerpts the `consistency` proofs from each older checkpoint to the
//! newest, the `event`s (each with its chain hash in a whole-log bundle, or its RFC 9162
//! inclusion proof in an excerpt), and one `end` record that seals every byte before it:
//! `SHA-256` of those bytes, signed with the issuer key over `"mandate-audit-bundle/1\n" ||
//! digest`. Any changed byte, removed line or missing tail is therefore detected.
//!
//! What it is not: the OCSF export for SIEMs (see `ocsf`), which carries no proofs.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::hex;
use super::merkle::Hash;
use super::note::{NoteError, NoteKey};

/// The format name in the header.
pub const FORMAT: &str = "mandate-audit-bundle/1";
/// Prefix of the message the seal signs.
pub const SEAL_CONTEXT: &[u8] = b"mandate-audit-bundle/1\n";

/// A key the bundle was signed with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyEntry {
    /// Signed-note verifier key: `<origin>+<key id hex>+<base64(0x01 || public key)>`.
    pub vkey: String,
    /// RFC 7638 JWK thumbprint (the `kid` of tokens this key signed).
    pub kid: String,
    /// `SHA256:` and the first 16 characters of the thumbprint, as the app shows it.
    pub fingerprint: String,
}

/// Which events a bundle holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BundleScope {
    /// Every event from #1 to the newest checkpoint, with chain hashes.
    Full,
    /// A selection, each event with an inclusion proof. `since` is inclusive, `until`
    /// exclusive; both compare the events' `time` strings.
    Excerpt {
        agent: Option<String>,
        agent_name: Option<String>,
        since: Option<String>,
        until: Option<String>,
    },
}

/// The first line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub format: String,
    pub origin: String,
    pub generated: String,
    pub scope: BundleScope,
    pub keys: Vec<KeyEntry>,
}

/// A consistency proof between two checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consistency {
    pub from: u64,
    pub to: u64,
    /// Hex hashes.
    pub proof: Vec<String>,
}

/// The last line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct End {
    /// Number of event lines.
    pub events: u64,
    /// Size of the newest checkpoint in the bundle.
    pub checkpoint: u64,
    /// Hex SHA-256 of every byte before this line.
    pub sha256: String,
    /// Hex key id (as in signed notes) of the sealing key.
    pub key: String,
    /// Base64 Ed25519 signature over `SEAL_CONTEXT || digest`.
    pub signature: String,
}

/// One line of a bundle, as read.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Line {
    Header(Header),
    Checkpoint {
        note: String,
    },
    Consistency(Consistency),
    Event {
        event: serde_json::Value,
        #[serde(default)]
        hash: Option<String>,
        #[serde(default)]
        proof: Option<Vec<String>>,
    },
    End(End),
}

/// An event line, parsed.
#[derive(Debug, Clone)]
pub struct ParsedEvent {
    pub seq: u64,
    /// RFC 8785 bytes of the `event` object: what the hashes cover.
    pub canonical: Vec<u8>,
    pub value: serde_json::Value,
    pub hash: Option<String>,
    pub proof: Option<Vec<String>>,
}

/// A line that breaks the format: where, which event if it is an event line, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based line number.
    pub line: usize,
    /// The event's `seq`, for an event line that has one.
    pub seq: Option<u64>,
    pub why: String,
}

/// A whole bundle, parsed but not verified.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub header: Header,
    pub checkpoints: Vec<String>,
    pub consistency: Vec<Consistency>,
    pub events: Vec<ParsedEvent>,
    pub end: Option<End>,
    /// Byte offset where the end line starts (the sealed bytes are before it).
    pub end_offset: usize,
    /// Lines that break the format. A line that could still be read takes part in the other
    /// steps too (an event is still hashed), so each fault is reported once, where it is.
    pub bad_lines: Vec<BadLine>,
}

/// The order lines come in; a line of an earlier kind after a later one is out of order.
fn stage(l: &Line) -> (u8, &'static str) {
    match l {
        Line::Header(_) => (0, "header"),
        Line::Checkpoint { .. } => (1, "checkpoint"),
        Line::Consistency(_) => (2, "consistency"),
        Line::Event { .. } => (3, "event"),
        Line::End(_) => (4, "end"),
    }
}

/// What is wrong with an event's values, if anything (§2: `v` is 1, `decision` is `allow` or
/// `deny`, numbers are integers below 2^53 in magnitude).
fn event_values(event: &serde_json::Value, number: Option<&str>) -> Option<String> {
    if let Some(n) = number {
        return Some(format!(
            "it holds the number {n}, and events hold only integers of magnitude below 2^53 (no \
             fractions, exponents or -0)"
        ));
    }
    match event.get("v") {
        Some(v) if v.as_u64() == Some(1) => {}
        Some(v) => {
            return Some(format!(
                "its format version is {v}; this verifier reads version 1"
            ));
        }
        None => return Some("it has no format version (v)".into()),
    }
    match event.get("decision").and_then(|d| d.as_str()) {
        Some("allow" | "deny") => None,
        Some(d) => Some(format!(
            "its decision is '{d}', and a decision is allow or deny"
        )),
        None => Some("it has no decision (allow or deny)".into()),
    }
}

/// One record a [`Reader`] hands on. The header and the end record are kept in the reader
/// (there is one of each); checkpoints, consistency proofs and events are handed on as they
/// come, so a reader of a large bundle never holds more than one event.
#[derive(Debug, Clone)]
pub enum Item {
    Header,
    Checkpoint(String),
    Consistency(Consistency),
    Event(ParsedEvent),
    End,
}

/// Reads a bundle line by line (`docs/AUDIT_FORMAT.md` §6, "Lines"): one pass, memory bounded
/// by the longest line. Lines that break the format are collected in `bad_lines`; a line that
/// could still be read is handed on too (an event is still hashed), so each fault is reported
/// once, where it is.
#[derive(Debug)]
pub struct Reader {
    /// The header, once the first line is read.
    pub header: Option<Header>,
    /// The end record, once read.
    pub end: Option<End>,
    /// Byte offset where the end line starts (the sealed bytes are before it).
    pub end_offset: usize,
    pub bad_lines: Vec<BadLine>,
    /// Lines read, and bytes.
    lines: usize,
    offset: usize,
    last_stage: (u8, &'static str),
}

impl Default for Reader {
    fn default() -> Self {
        Self::new()
    }
}

impl Reader {
    pub fn new() -> Self {
        Reader {
            header: None,
            end: None,
            end_offset: 0,
            bad_lines: Vec::new(),
            lines: 0,
            offset: 0,
            last_stage: (0, "header"),
        }
    }

    /// Bytes read so far.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Read the next line, `raw` with its newline (the last line may have none). Fails only
    /// when the file is not a bundle at all (its first line is not a header of this format).
    pub fn line(&mut self, raw: &[u8]) -> Result<Option<Item>, String> {
        let start = self.offset;
        self.offset += raw.len();
        self.lines += 1;
        let line = self.lines;
        let bad_lines = &mut self.bad_lines;
        let mut bad = |seq: Option<u64>, why: String| {
            bad_lines.push(BadLine { line, seq, why });
        };
        let complete = raw.ends_with(b"\n");
        let text = raw.strip_suffix(b"\n").unwrap_or(raw);
        if text.is_empty() {
            bad(
                None,
                "the line is blank, and a bundle has no blank lines".into(),
            );
            return Ok(None);
        }
        if self.end.is_some() {
            bad(None, "there are lines after the end record".into());
            return Ok(None);
        }
        let (value, findings) = match super::json::parse(text) {
            Ok(v) => v,
            Err(e) if self.header.is_none() => {
                return Err(format!(
                    "this is not a Mandate evidence bundle: its first line is not a header ({e})"
                ));
            }
            Err(e) if !complete => {
                bad(
                    None,
                    format!("the line is cut off ({e}): the bundle is truncated"),
                );
                return Ok(None);
            }
            Err(e) => {
                bad(None, format!("the line is not a valid record ({e})"));
                return Ok(None);
            }
        };
        let record: Line = match serde_json::from_value(value) {
            Ok(l) => l,
            Err(_) if self.header.is_none() => {
                return Err(
                    "this is not a Mandate evidence bundle: its first line is not a header".into(),
                );
            }
            Err(e) => {
                bad(None, format!("the line is not a valid record ({e})"));
                return Ok(None);
            }
        };
        let seq = match &record {
            Line::Event { event, .. } => event.get("seq").and_then(|s| s.as_u64()),
            _ => None,
        };
        if text.ends_with(b"\r") {
            bad(
                seq,
                "the line ends with a carriage return: its line endings were converted (CR LF); \
                 a bundle's lines end with LF alone"
                    .into(),
            );
        }
        if !complete {
            bad(
                seq,
                "the last line does not end with a newline: the file was cut off or changed".into(),
            );
        }
        if let Some(name) = &findings.duplicate {
            bad(
                seq,
                format!(
                    "the member '{name}' appears twice in one object, which I-JSON (RFC 7493) \
                     and so RFC 8785 forbid: two readers could see different values"
                ),
            );
        }
        if self.header.is_some() {
            let here = stage(&record);
            if here.0 < self.last_stage.0 || here.0 == 0 {
                bad(
                    seq,
                    format!(
                        "a {} line comes after a {} line: the lines are out of order",
                        here.1, self.last_stage.1
                    ),
                );
            } else {
                self.last_stage = here;
            }
        }
        match (record, self.header.is_some()) {
            (Line::Header(h), false) => {
                if h.format != FORMAT {
                    return Err(format!(
                        "the bundle's format is '{}', and this verifier reads '{FORMAT}' only: \
                         verify it with the Mandate version that made it, or a newer one",
                        h.format
                    ));
                }
                self.header = Some(h);
                Ok(Some(Item::Header))
            }
            (_, false) => {
                Err("this is not a Mandate evidence bundle: its first line is not a header".into())
            }
            (Line::Header(_), true) => Ok(None),
            (Line::Checkpoint { note }, true) => Ok(Some(Item::Checkpoint(note))),
            (Line::Consistency(c), true) => Ok(Some(Item::Consistency(c))),
            (Line::Event { event, hash, proof }, true) => {
                let Some(seq) = seq.filter(|s| *s >= 1) else {
                    bad(
                        None,
                        "an event without a sequence number (an integer from 1)".into(),
                    );
                    return Ok(None);
                };
                if let Some(why) = event_values(&event, findings.number.as_deref()) {
                    bad(Some(seq), format!("event #{seq}: {why}"));
                }
                match serde_json_canonicalizer::to_vec(&event) {
                    Ok(canonical) => Ok(Some(Item::Event(ParsedEvent {
                        seq,
                        canonical,
                        value: event,
                        hash,
                        proof,
                    }))),
                    Err(e) => {
                        bad(
                            Some(seq),
                            format!("event #{seq} has no canonical form ({e})"),
                        );
                        Ok(None)
                    }
                }
            }
            (Line::End(e), true) => {
                // The end line is the only part the seal cannot cover: accept only its exact
                // form, so no byte of a bundle goes unchecked (§6).
                let exact = serde_json::to_vec(&Line::End(e.clone())).unwrap_or_default();
                if exact != text {
                    bad(
                        None,
                        "the end record is not in its exact form (its members in order, no \
                         spaces, nothing else)"
                            .into(),
                    );
                }
                self.end = Some(e);
                self.end_offset = start;
                Ok(Some(Item::End))
            }
        }
    }
}

/// Read a whole bundle held in memory. Fails only when it is not a bundle at all; lines that
/// break the format are collected in `bad_lines` so verification can say which
/// (`docs/AUDIT_FORMAT.md` §6, "Lines"). Verification itself streams ([`Reader`]); this is for
/// tools and tests that want every record.
pub fn parse(bytes: &[u8]) -> Result<Parsed, String> {
    let mut reader = Reader::new();
    let mut checkpoints = Vec::new();
    let mut consistency = Vec::new();
    let mut events = Vec::new();
    for raw in bytes.split_inclusive(|b| *b == b'\n') {
        match reader.line(raw)? {
            Some(Item::Checkpoint(n)) => checkpoints.push(n),
            Some(Item::Consistency(c)) => consistency.push(c),
            Some(Item::Event(e)) => events.push(e),
            Some(Item::Header | Item::End) | None => {}
        }
    }
    let header = reader
        .header
        .ok_or("the file is empty: it is not a Mandate evidence bundle")?;
    Ok(Parsed {
        header,
        checkpoints,
        consistency,
        events,
        end_offset: if reader.end.is_some() {
            reader.end_offset
        } else {
            bytes.len()
        },
        end: reader.end,
        bad_lines: reader.bad_lines,
    })
}

/// SHA-256 of the sealed bytes.
pub fn seal_digest(bytes: &[u8]) -> Hash {
    Sha256::digest(bytes).into()
}

/// Check the end record's signature over `digest`.
pub fn check_seal(digest: &Hash, end: &End, trusted: &[NoteKey]) -> Result<(), NoteError> {
    let key = trusted
        .iter()
        .find(|k| hex(&k.key_id()) == end.key)
        .ok_or_else(|| NoteError::UnknownKey {
            name: String::new(),
            key_id: end.key.clone(),
        })?;
    let sig = STANDARD
        .decode(&end.signature)
        .ok()
        .and_then(|s| <[u8; 64]>::try_from(s.as_slice()).ok())
        .map(|s| Signature::from_bytes(&s))
        .ok_or(NoteError::BadSignature)?;
    let mut msg = SEAL_CONTEXT.to_vec();
    msg.extend_from_slice(digest);
    key.key
        .verify_strict(&msg, &sig)
        .map_err(|_| NoteError::BadSignature)
}

/// Whether an event belongs to an excerpt's selection.
pub fn in_scope(scope: &BundleScope, event: &serde_json::Value) -> Result<(), String> {
    let BundleScope::Excerpt {
        agent,
        since,
        until,
        ..
    } = scope
    else {
        return Ok(());
    };
    let time = event.get("time").and_then(|t| t.as_str()).unwrap_or("");
    if let Some(a) = agent
        && event.get("agent").and_then(|x| x.as_str()) != Some(a.as_str())
    {
        return Err(format!("it is not about agent {a}"));
    }
    if let Some(s) = since
        && time < s.as_str()
    {
        return Err(format!("its time {time} is before {s}"));
    }
    if let Some(u) = until
        && time >= u.as_str()
    {
        return Err(format!("its time {time} is not before {u}"));
    }
    Ok(())
}

/// Builds a bundle line by line; [`Writer::finish`] seals it.
///
/// A bundle too large to hold in memory is written as it grows: [`Writer::take`] hands over
/// the bytes written so far (the seal still covers them) and [`Writer::finish`] returns the
/// rest.
#[derive(Debug)]
pub struct Writer {
    out: Vec<u8>,
    events: u64,
    /// SHA-256 of the bytes already taken.
    taken: Sha256,
}

impl Writer {
    /// Start with the header.
    pub fn new(header: &Header) -> Self {
        let mut w = Writer {
            out: Vec::new(),
            events: 0,
            taken: Sha256::new(),
        };
        w.line(&Line::Header(header.clone()));
        w
    }

    fn line(&mut self, l: &Line) {
        // Serialising these plain structs cannot fail.
        if let Ok(v) = serde_json::to_vec(l) {
            self.out.extend_from_slice(&v);
        }
        self.out.push(b'\n');
    }

    pub fn checkpoint(&mut self, note: &str) {
        self.line(&Line::Checkpoint { note: note.into() });
    }

    pub fn consistency(&mut self, from: u64, to: u64, proof: &[Hash]) {
        self.line(&Line::Consistency(Consistency {
            from,
            to,
            proof: proof.iter().map(|h| hex(h)).collect(),
        }));
    }

    /// An event line with its canonical bytes verbatim, and its chain hash or proof.
    pub fn event(&mut self, canonical: &[u8], hash: Option<&Hash>, proof: Option<&[Hash]>) {
        self.out
            .extend_from_slice(b"{\"type\":\"event\",\"event\":");
        self.out.extend_from_slice(canonical);
        if let Some(h) = hash {
            self.out.extend_from_slice(b",\"hash\":\"");
            self.out.extend_from_slice(hex(h).as_bytes());
            self.out.push(b'"');
        }
        if let Some(p) = proof {
            self.out.extend_from_slice(b",\"proof\":[");
            for (i, h) in p.iter().enumerate() {
                if i > 0 {
                    self.out.push(b',');
                }
                self.out.push(b'"');
                self.out.extend_from_slice(hex(h).as_bytes());
                self.out.push(b'"');
            }
            self.out.push(b']');
        }
        self.out.extend_from_slice(b"}\n");
        self.events += 1;
    }

    /// The bytes written since the last call, to be stored in order before what
    /// [`Writer::finish`] returns; the seal covers them.
    pub fn take(&mut self) -> Vec<u8> {
        self.taken.update(&self.out);
        std::mem::take(&mut self.out)
    }

    /// Seal with `key` (signing under `origin`) and return the bytes not yet taken (all of
    /// them when [`Writer::take`] was never called).
    pub fn finish(self, checkpoint: u64, origin: &str, key: &SigningKey) -> Vec<u8> {
        match self.seal(checkpoint, origin, &key.verifying_key(), |m| {
            Ok::<_, std::convert::Infallible>(key.sign(m))
        }) {
            Ok(b) => b,
            Err(never) => match never {},
        }
    }

    /// [`Writer::finish`] with a key that signs where it lives (`sign` makes the Ed25519
    /// signature with the key whose public half is `public`; an issuer key in a PKCS#11 token
    /// may be out of reach, which is its error).
    pub fn seal<E>(
        mut self,
        checkpoint: u64,
        origin: &str,
        public: &VerifyingKey,
        sign: impl FnOnce(&[u8]) -> Result<Signature, E>,
    ) -> Result<Vec<u8>, E> {
        let digest: Hash = self.take_digest();
        let mut msg = SEAL_CONTEXT.to_vec();
        msg.extend_from_slice(&digest);
        let sig = sign(&msg)?;
        let end = End {
            events: self.events,
            checkpoint,
            sha256: hex(&digest),
            key: hex(&super::note::key_id(origin, public)),
            signature: STANDARD.encode(sig.to_bytes()),
        };
        self.line(&Line::End(end));
        Ok(self.out)
    }

    /// The seal's digest: every byte written before the end record, taken or not.
    fn take_digest(&mut self) -> Hash {
        let rest = std::mem::take(&mut self.out);
        let mut all = std::mem::replace(&mut self.taken, Sha256::new());
        all.update(&rest);
        self.out = rest;
        all.finalize().into()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    /// A bundle written in pieces (as a benchmark streams a million events to a file) is byte
    /// for byte the bundle written whole, seal included.
    #[test]
    fn a_bundle_taken_in_pieces_is_the_bundle_written_whole() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let header = Header {
            format: FORMAT.into(),
            origin: "o".into(),
            generated: "2026-12-04T00:00:00.000000Z".into(),
            scope: BundleScope::Full,
            keys: Vec::new(),
        };
        let write = |take_every: Option<u64>| {
            let mut w = Writer::new(&header);
            let mut out = Vec::new();
            for seq in 1..=10u64 {
                let canonical = format!(r#"{{"seq":{seq}}}"#);
                w.event(canonical.as_bytes(), Some(&[seq as u8; 32]), None);
                if take_every.is_some_and(|k| seq % k == 0) {
                    out.extend(w.take());
                }
            }
            out.extend(w.finish(10, "o", &key));
            out
        };
        let whole = write(None);
        assert_eq!(write(Some(3)), whole);
        assert_eq!(write(Some(1)), whole);
        let parsed = parse(&whole).unwrap();
        let end = parsed.end.unwrap();
        assert_eq!(end.sha256, hex(&seal_digest(&whole[..parsed.end_offset])));
    }
}
