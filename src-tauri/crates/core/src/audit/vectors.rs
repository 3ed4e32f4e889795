//! The test vectors of `docs/AUDIT_FORMAT.md`, generated from the code and checked for drift.
//!
//! `MANDATE_BLESS=1 cargo test -p mandate-core vectors` rewrites `docs/audit-vectors/`; without
//! it the test fails when the committed files differ from what the code produces, so the spec's
//! examples never go stale. Everything is fixed: key, times, ids.

use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::SigningKey;
use serde_json::json;

use super::bundle::{self, BundleScope, Header, KeyEntry};
use super::merkle::{Hash, Tree, leaf_hash};
use super::note::{Checkpoint, NoteKey};
use super::*;
use crate::keys;

const ORIGIN: &str = "mandate/00000000-0000-4000-8000-000000000001";
const AGENT: &str = "0190c0de-0000-7000-8000-00000000a9e1";

fn key() -> SigningKey {
    let mut seed = [0u8; 32];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = i as u8 + 1;
    }
    SigningKey::from_bytes(&seed)
}

fn events() -> Vec<AuditEvent> {
    let alice = Actor::member("0190c0de-0000-7000-8000-0000000a11ce", "alice");
    let agent = Actor::agent(AGENT, "billing-report-agent");
    let t = |s: u32| format!("2026-01-15T09:00:{s:02}.000000Z");
    let ev = |seq: u64,
              time: String,
              actor: &Actor,
              action: &str,
              decision: Decision,
              agent: Option<&str>,
              target: Option<Target>,
              reason: Option<&str>,
              details: serde_json::Value| AuditEvent {
        v: EVENT_VERSION,
        seq,
        time,
        actor: actor.clone(),
        on_behalf_of: None,
        agent: agent.map(str::to_string),
        action: action.into(),
        target,
        decision,
        reason: reason.map(str::to_string),
        details,
    };
    let mut out = vec![
        ev(
            1,
            t(1),
            &Actor::app("cli", "root"),
            "member.added",
            Decision::Allow,
            None,
            Some(Target::new("member", &alice.id, "alice")),
            None,
            json!({"email": "alice@example.com"}),
        ),
        ev(
            2,
            t(2),
            &alice,
            "agent.created",
            Decision::Allow,
            Some(AGENT),
            Some(Target::new("agent", AGENT, "billing-report-agent")),
            None,
            json!({"purpose": "monthly billing report — café ✓", "scopes": ["billing-db:invoices.read"]}),
        ),
        ev(
            3,
            t(3),
            &agent,
            "token.issued",
            Decision::Allow,
            Some(AGENT),
            Some(Target::new("token", "jti-0001", "")),
            None,
            json!({"scope": "billing-db:invoices.read", "ttl": 900}),
        ),
        ev(
            4,
            t(4),
            &agent,
            "token.denied",
            Decision::Deny,
            Some(AGENT),
            None,
            Some("invalid_scope: github:admin is not granted"),
            json!({"requested": "github:admin"}),
        ),
        ev(
            5,
            t(5),
            &agent,
            "token.issued",
            Decision::Allow,
            Some(AGENT),
            Some(Target::new("token", "jti-0002", "")),
            None,
            json!({"z": -1, "a": {"y": true, "b": null, "é": "\u{1}\"\\"}}),
        ),
    ];
    out[4].on_behalf_of = Some(alice);
    out
}

const CONSISTENCY: [(u64, u64); 5] = [(1, 5), (2, 5), (3, 5), (4, 5), (3, 4)];

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../docs/audit-vectors")
}

/// Every file of the main vectors, by name; `cases` is expected.json's list of cases.
fn generate(cases: serde_json::Value) -> Vec<(&'static str, String)> {
    let key = key();
    let evs = events();
    let canon: Vec<Vec<u8>> = evs
        .iter()
        .map(|e| canonical_bytes(e).unwrap_or_default())
        .collect();
    let mut chain = Vec::new();
    let mut prev = GENESIS;
    for c in &canon {
        prev = chain_hash(&prev, c);
        chain.push(prev);
    }
    let leaves: Vec<_> = canon.iter().map(|c| leaf_hash(c)).collect();
    let tree = Tree::from_leaves(leaves.clone());
    let cp = |size: u64, time: &str| Checkpoint {
        origin: ORIGIN.into(),
        size,
        root: tree.root_at(size).unwrap_or_default(),
        chain_head: chain[size as usize - 1],
        time: time.into(),
    };
    let cp3 = cp(3, "2026-01-15T09:00:10.000000Z");
    let cp5 = cp(5, "2026-01-15T09:00:20.000000Z");
    let note3 = cp3.sign(ORIGIN, &key);
    let note5 = cp5.sign(ORIGIN, &key);
    let nk = NoteKey::new(ORIGIN, key.verifying_key());
    let key_entry = KeyEntry {
        vkey: nk.vkey(),
        kid: keys::thumbprint(&key.verifying_key()),
        fingerprint: keys::fingerprint(&key.verifying_key()),
    };
    let header = |scope| Header {
        format: bundle::FORMAT.into(),
        origin: ORIGIN.into(),
        generated: "2026-01-15T10:00:00.000000Z".into(),
        scope,
        keys: vec![key_entry.clone()],
    };
    // Whole log.
    let mut w = bundle::Writer::new(&header(BundleScope::Full));
    w.checkpoint(&note3);
    w.checkpoint(&note5);
    for (c, h) in canon.iter().zip(&chain) {
        w.event(c, Some(h), None);
    }
    let full = w.finish(5, ORIGIN, &key);
    // Excerpt: the agent's events with proofs against the checkpoint of 5.
    let mut w = bundle::Writer::new(&header(BundleScope::Excerpt {
        agent: Some(AGENT.into()),
        agent_name: Some("billing-report-agent".into()),
        since: None,
        until: None,
    }));
    w.checkpoint(&note3);
    w.checkpoint(&note5);
    let cons = tree.consistency_proof(3, 5).unwrap_or_default();
    w.consistency(3, 5, &cons);
    for (i, c) in canon.iter().enumerate().skip(1) {
        let proof = tree.inclusion_proof(i as u64, 5).unwrap_or_default();
        w.event(c, None, Some(&proof));
    }
    let excerpt = w.finish(5, ORIGIN, &key);
    let seal = |b: &[u8]| {
        let text = String::from_utf8_lossy(b);
        let last = text.lines().last().unwrap_or_default().to_string();
        serde_json::from_str::<serde_json::Value>(&last).unwrap_or_default()
    };
    let cps = [(&cp3, &note3), (&cp5, &note5)];
    let expected = json!({
        "origin": ORIGIN,
        "key": {
            "seed_hex": hex(&key.to_bytes()),
            "public_key_hex": hex(key.verifying_key().as_bytes()),
            "vkey": nk.vkey(),
            "key_id_hex": hex(&nk.key_id()),
            "jwk_thumbprint": keys::thumbprint(&key.verifying_key()),
        },
        "events": evs.iter().enumerate().map(|(i, e)| json!({
            "seq": e.seq,
            "canonical": String::from_utf8_lossy(&canon[i]),
            "leaf_hash": hex(&leaves[i]),
            "chain_hash": hex(&chain[i]),
        })).collect::<Vec<_>>(),
        "empty_root": hex(&merkle::empty_root()),
        "roots": (1..=5u64).map(|n| json!({"size": n, "root": hex(&tree.root_at(n).unwrap_or_default())})).collect::<Vec<_>>(),
        "inclusion_proofs": (0..5u64).map(|i| json!({
            "index": i, "size": 5,
            "proof": tree.inclusion_proof(i, 5).unwrap_or_default().iter().map(|h| hex(h)).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "consistency_proofs": CONSISTENCY.iter().map(|(a, b)| json!({
            "from": a, "to": b,
            "proof": tree.consistency_proof(*a, *b).unwrap_or_default().iter().map(|h| hex(h)).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "checkpoints": cps.iter().map(|(c, n)| json!({
            "size": c.size,
            "signed_body": c.body(),
            "note": n,
            "signature_b64": n.lines().last().and_then(|l| l.rsplit(' ').next()).unwrap_or_default(),
            "signature_over_body_b64": STANDARD.encode(
                ed25519_dalek::Signer::sign(&key, c.body().as_bytes()).to_bytes()),
        })).collect::<Vec<_>>(),
        "bundle_seal": seal(&full),
        "excerpt_seal": seal(&excerpt),
        "cases": cases,
    });
    vec![
        ("bundle.jsonl", String::from_utf8_lossy(&full).into_owned()),
        (
            "excerpt.jsonl",
            String::from_utf8_lossy(&excerpt).into_owned(),
        ),
        (
            "expected.json",
            serde_json::to_string_pretty(&expected).unwrap_or_default() + "\n",
        ),
        ("checkpoint-5.txt", note5),
    ]
}

// ----- Cases: one vector for each rule of §6–7 that a verifier could read two ways ---------

/// A log of events given as JSON values, with everything derived from them.
struct Log {
    canon: Vec<Vec<u8>>,
    chain: Vec<Hash>,
    tree: Tree,
}

impl Log {
    fn new(events: &[serde_json::Value]) -> Log {
        let canon: Vec<Vec<u8>> = events
            .iter()
            .map(|e| serde_json_canonicalizer::to_vec(e).unwrap())
            .collect();
        let mut chain = Vec::new();
        let mut prev = GENESIS;
        for c in &canon {
            prev = chain_hash(&prev, c);
            chain.push(prev);
        }
        let tree = Tree::from_leaves(canon.iter().map(|c| leaf_hash(c)).collect());
        Log { canon, chain, tree }
    }

    fn checkpoint(&self, size: u64, time: &str) -> Checkpoint {
        Checkpoint {
            origin: ORIGIN.into(),
            size,
            root: self.tree.root_at(size).unwrap(),
            chain_head: if size == 0 {
                GENESIS
            } else {
                self.chain[size as usize - 1]
            },
            time: time.into(),
        }
    }

    fn note(&self, size: u64, time: &str) -> String {
        self.checkpoint(size, time).sign(ORIGIN, &key())
    }

    /// Event line `seq` (1-based) with its chain hash (whole log) or its proof in a tree of
    /// `proof_in` events (excerpt).
    fn event_line(&self, seq: u64, proof_in: Option<u64>) -> String {
        let mut w = bundle::Writer::new(&header(BundleScope::Full));
        let c = &self.canon[seq as usize - 1];
        match proof_in {
            None => w.event(c, Some(&self.chain[seq as usize - 1]), None),
            Some(n) => w.event(
                c,
                None,
                Some(&self.tree.inclusion_proof(seq - 1, n).unwrap()),
            ),
        }
        let text = String::from_utf8(w.finish(0, ORIGIN, &key())).unwrap();
        text.lines().nth(1).unwrap().to_string()
    }

    /// A whole-log bundle's lines (no end line): header, the notes, events 1..=`upto`.
    fn full(&self, notes: &[&str], upto: u64) -> Vec<String> {
        let mut out = vec![line(&bundle::Line::Header(header(BundleScope::Full)))];
        out.extend(notes.iter().map(|n| checkpoint_line(n)));
        out.extend((1..=upto).map(|s| self.event_line(s, None)));
        out
    }
}

fn line(l: &bundle::Line) -> String {
    serde_json::to_string(l).unwrap()
}

fn checkpoint_line(note: &str) -> String {
    line(&bundle::Line::Checkpoint { note: note.into() })
}

fn consistency_line(log: &Log, from: u64, to: u64) -> String {
    line(&bundle::Line::Consistency(bundle::Consistency {
        from,
        to,
        proof: log
            .tree
            .consistency_proof(from, to)
            .unwrap()
            .iter()
            .map(|h| hex(h))
            .collect(),
    }))
}

fn key_entry() -> KeyEntry {
    KeyEntry {
        vkey: NoteKey::new(ORIGIN, key().verifying_key()).vkey(),
        kid: keys::thumbprint(&key().verifying_key()),
        fingerprint: keys::fingerprint(&key().verifying_key()),
    }
}

fn header(scope: BundleScope) -> Header {
    Header {
        format: bundle::FORMAT.into(),
        origin: ORIGIN.into(),
        generated: "2026-01-15T10:00:00.000000Z".into(),
        scope,
        keys: vec![key_entry()],
    }
}

fn agent_scope() -> BundleScope {
    BundleScope::Excerpt {
        agent: Some(AGENT.into()),
        agent_name: Some("billing-report-agent".into()),
        since: None,
        until: None,
    }
}

/// Seal `lines` (every line but the end) as the exporter does, the key id made under `name`.
fn seal_as(lines: &[String], checkpoint: u64, name: &str) -> String {
    let mut body = String::new();
    for l in lines {
        body.push_str(l);
        body.push('\n');
    }
    let digest = bundle::seal_digest(body.as_bytes());
    let mut msg = bundle::SEAL_CONTEXT.to_vec();
    msg.extend_from_slice(&digest);
    let events = lines
        .iter()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l.trim_end_matches('\r'))
                .is_ok_and(|v| v["type"] == "event")
        })
        .count() as u64;
    let end = bundle::End {
        events,
        checkpoint,
        sha256: hex(&digest),
        key: hex(&super::note::key_id(name, &key().verifying_key())),
        signature: STANDARD.encode(ed25519_dalek::Signer::sign(&key(), &msg).to_bytes()),
    };
    body.push_str(&line(&bundle::Line::End(end)));
    body.push('\n');
    body
}

fn seal(lines: &[String], checkpoint: u64) -> String {
    seal_as(lines, checkpoint, ORIGIN)
}

/// Sign any checkpoint body (for notes whose lines break §5).
fn sign_body(body: &str) -> String {
    let sig = ed25519_dalek::Signer::sign(&key(), body.as_bytes());
    let mut blob = super::note::key_id(ORIGIN, &key().verifying_key()).to_vec();
    blob.extend_from_slice(&sig.to_bytes());
    format!("{body}\n\u{2014} {ORIGIN} {}\n", STANDARD.encode(blob))
}

/// One vector: a file (bytes, or the name of one of the main vectors), the arguments to
/// verify it with, and the problems every verifier must report, as (kind, seq).
struct Case {
    name: &'static str,
    what: &'static str,
    file: CaseFile,
    args: Vec<String>,
    problems: Vec<Expected>,
}

/// A problem every verifier must report: its kind and `seq`.
type Expected = (&'static str, Option<u64>);

enum CaseFile {
    Own(String),
    Main(&'static str),
    /// A PDF report in `cases/NAME.pdf`, made and checked by `mandate-report`'s vectors (this
    /// crate cannot read PDFs); only its entry in expected.json is made here.
    Pdf,
}

fn default_values() -> Vec<serde_json::Value> {
    events()
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect()
}

const T3: &str = "2026-01-15T09:00:10.000000Z";
const T5: &str = "2026-01-15T09:00:20.000000Z";

fn cases() -> Vec<Case> {
    let values = default_values();
    let l = Log::new(&values);
    let (n3, n5) = (l.note(3, T3), l.note(5, T5));
    let arg = |s: &str| s.to_string();
    let with = |edit: &dyn Fn(&mut Vec<serde_json::Value>)| {
        let mut v = values.clone();
        edit(&mut v);
        let log = Log::new(&v);
        let (a, b) = (log.note(3, T3), log.note(5, T5));
        seal(&log.full(&[&a, &b], 5), 5)
    };
    let edit_line = |lines: &mut Vec<String>, at: usize, f: &dyn Fn(&str) -> String| {
        let new = f(&lines[at]);
        assert_ne!(new, lines[at], "the edit changed nothing");
        lines[at] = new;
    };
    let full = l.full(&[&n3, &n5], 5);
    // Line indexes in `full`: 0 header, 1 and 2 checkpoints, 3.. events #1..
    let ev = |seq: usize| seq + 2;
    let fp = keys::fingerprint(&key().verifying_key());
    let mut out = Vec::new();
    let mut case = |name, what, file, args: Vec<String>, problems| {
        out.push(Case {
            name,
            what,
            file,
            args,
            problems,
        })
    };

    // Events (§2).
    let mut lines = full.clone();
    edit_line(&mut lines, ev(4), &|t| {
        t.replacen(
            "\"reason\":\"invalid_scope",
            "\"reason\":\"nothing to see\",\"reason\":\"invalid_scope",
            1,
        )
    });
    case(
        "duplicate-member",
        "event #4 holds the member reason twice; its hash covers the last value",
        CaseFile::Own(seal(&lines, 5)),
        vec![],
        vec![("malformed", Some(4))],
    );
    case(
        "event-version-2",
        "event #2 has v = 2, correctly hashed and signed",
        CaseFile::Own(with(&|v| v[1]["v"] = 2.into())),
        vec![],
        vec![("malformed", Some(2))],
    );
    case(
        "integer-2-53",
        "event #5's details hold 2^53, correctly hashed (RFC 8785) and signed",
        CaseFile::Own(with(&|v| v[4]["details"]["z"] = (1u64 << 53).into())),
        vec![],
        vec![("malformed", Some(5))],
    );
    case(
        "fraction",
        "event #5's details hold 0.5, correctly hashed (RFC 8785) and signed",
        CaseFile::Own(with(&|v| v[4]["details"]["z"] = serde_json::json!(0.5))),
        vec![],
        vec![("malformed", Some(5))],
    );
    // Hashed and signed with 0 (what -0 canonicalises to), then written as -0.
    let zero = with(&|v| v[4]["details"]["z"] = 0.into());
    let mut lines: Vec<String> = zero.lines().map(String::from).collect();
    lines.pop(); // the end line: resealed below
    edit_line(&mut lines, ev(5), &|t| t.replacen("\"z\":0", "\"z\":-0", 1));
    case(
        "negative-zero",
        "event #5's details hold -0 (canonically 0, so the hash holds)",
        CaseFile::Own(seal(&lines, 5)),
        vec![],
        vec![("malformed", Some(5))],
    );
    case(
        "unknown-decision",
        "event #3's decision is 'maybe', correctly hashed and signed",
        CaseFile::Own(with(&|v| v[2]["decision"] = "maybe".into())),
        vec![],
        vec![("malformed", Some(3))],
    );
    let mut lines = full.clone();
    edit_line(&mut lines, ev(5), &|t| {
        t.replacen("\"z\":-1", "\"s\":\"\\ud800\",\"z\":-1", 1)
    });
    case(
        "lone-surrogate",
        "event #5's line holds an escaped lone surrogate, which is not Unicode",
        CaseFile::Own(seal(&lines, 5)),
        vec![],
        vec![("malformed", None), ("truncated", Some(5))],
    );

    // Lines (§6).
    let mut lines = full.clone();
    lines.insert(3, r#"{"type":"comment","text":"reviewed"}"#.into());
    case(
        "unknown-line-type",
        "a sealed line of an unknown type",
        CaseFile::Own(seal(&lines, 5)),
        vec![],
        vec![("malformed", None)],
    );
    let mut lines = full.clone();
    lines.insert(ev(3), String::new());
    case(
        "blank-line",
        "a sealed blank line between events #2 and #3",
        CaseFile::Own(seal(&lines, 5)),
        vec![],
        vec![("malformed", None)],
    );
    let mut lines = full.clone();
    lines[ev(3)].push('\r');
    case(
        "crlf-line",
        "event #3's line ends with CR LF (sealed that way)",
        CaseFile::Own(seal(&lines, 5)),
        vec![],
        vec![("malformed", Some(3))],
    );
    let mut lines = full.clone();
    let cp5 = lines.remove(2);
    lines.push(cp5);
    case(
        "lines-out-of-order",
        "the checkpoint of 5 comes after the events (sealed)",
        CaseFile::Own(seal(&lines, 5)),
        vec![],
        vec![("malformed", None)],
    );
    let sealed = seal(&full, 5);
    case(
        "end-extra-member",
        "the end record has one more member, outside the seal",
        CaseFile::Own({
            let end = sealed.trim_end().rfind('\n').unwrap() + 1;
            let (body, last) = sealed.split_at(end);
            format!(
                "{body}{}",
                last.replacen("\"}\n", "\",\"comment\":\"verified\"}\n", 1)
            )
        }),
        vec![],
        vec![("malformed", None)],
    );
    case(
        "end-with-spaces",
        "the end record is written with spaces",
        CaseFile::Own(sealed.replacen("{\"type\":\"end\",", "{\"type\": \"end\", ", 1)),
        vec![],
        vec![("malformed", None)],
    );
    case(
        "format-version-2",
        "the header names format mandate-audit-bundle/2",
        CaseFile::Own(seal(
            &{
                let mut lines = full.clone();
                lines[0] = lines[0].replacen("mandate-audit-bundle/1", "mandate-audit-bundle/2", 1);
                lines
            },
            5,
        )),
        vec![],
        vec![("malformed", None)],
    );

    // Header keys and the seal's key (§6, §7.2).
    let mut lines = full.clone();
    edit_line(&mut lines, 0, &|t| {
        t.replacen(&fp, "SHA256:AAAAAAAAAAAAAAAA", 1)
    });
    case(
        "header-fingerprint",
        "the header gives the key a fingerprint that is not its own",
        CaseFile::Own(seal(&lines, 5)),
        vec![],
        vec![("malformed", None)],
    );
    case(
        "seal-key-name",
        "the seal's key id is computed with the key name 'mandate', not the origin",
        CaseFile::Own(seal_as(&full, 5, "mandate")),
        vec![],
        vec![("unknown_key", None)],
    );

    // Checkpoints (§5, §6).
    case(
        "checkpoints-descending",
        "the checkpoint of 5 is listed before the checkpoint of 3",
        CaseFile::Own(seal(&l.full(&[&n5, &n3], 5), 5)),
        vec![],
        vec![("malformed", Some(3))],
    );
    let n3b = l.note(3, "2026-01-15T09:00:11.000000Z");
    case(
        "checkpoints-same-size",
        "two different checkpoints of 3 events, both genuine",
        CaseFile::Own(seal(&l.full(&[&n3, &n3b, &n5], 5), 5)),
        vec![],
        vec![("malformed", Some(3))],
    );
    case(
        "events-after-checkpoint",
        "a whole-log bundle with events #4 and #5 after its newest checkpoint (of 3)",
        CaseFile::Own(seal(&l.full(&[&n3], 5), 3)),
        vec![],
        vec![("inserted", Some(4))],
    );
    let c5 = l.checkpoint(5, T5);
    let body = c5.body();
    let mut parts: Vec<&str> = body.lines().collect();
    parts.swap(3, 4);
    let swapped = sign_body(&(parts.join("\n") + "\n"));
    case(
        "checkpoint-extension-order",
        "the checkpoint of 5 has its time line before its chain-head line (signed)",
        CaseFile::Own(seal(&l.full(&[&n3, &swapped], 5), 5)),
        vec![],
        vec![("inserted", Some(4)), ("malformed", None)],
    );
    let extra = sign_body(&format!("{body}witness example.com 1\n"));
    case(
        "unknown-extension-line",
        "the checkpoint of 5 carries one more extension line, which is ignored (valid)",
        CaseFile::Own(seal(&l.full(&[&n3, &extra], 5), 5)),
        vec![],
        vec![],
    );

    // Degenerate sizes and proofs (§7.5, §7.6).
    let n0 = l.note(0, "2026-01-15T09:00:00.000000Z");
    case(
        "empty-log",
        "a whole-log bundle of no events with a checkpoint of size 0 (valid)",
        CaseFile::Own(seal(&l.full(&[&n0], 0), 0)),
        vec![],
        vec![],
    );
    case(
        "size-0-checkpoint",
        "a whole-log bundle whose first checkpoint has size 0 (valid)",
        CaseFile::Own(seal(&l.full(&[&n0, &n3, &n5], 5), 5)),
        vec![],
        vec![],
    );
    let mut lines = vec![line(&bundle::Line::Header(header(agent_scope())))];
    lines.extend([&n0, &n3, &n5].iter().map(|n| checkpoint_line(n)));
    lines.push(consistency_line(&l, 0, 5));
    lines.push(consistency_line(&l, 3, 5));
    lines.extend((2..=5).map(|s| l.event_line(s, Some(5))));
    case(
        "excerpt-size-0-checkpoint",
        "an excerpt with a checkpoint of size 0 and its (empty) consistency proof (valid)",
        CaseFile::Own(seal(&lines, 5)),
        vec![],
        vec![],
    );
    case(
        "bundle-of-3",
        "the log's first 3 events as a whole-log bundle (valid by itself)",
        CaseFile::Own(seal(&l.full(&[&n3], 3), 3)),
        vec![],
        vec![],
    );

    // The excerpt's scope matches the event's `agent` member, nothing else (§6).
    let mut v2 = values.clone();
    v2[1]["agent"] = serde_json::Value::Null;
    let l2 = Log::new(&v2);
    let mut lines = vec![line(&bundle::Line::Header(header(agent_scope())))];
    lines.push(checkpoint_line(&l2.note(5, T5)));
    lines.extend((2..=5).map(|s| l2.event_line(s, Some(5))));
    case(
        "excerpt-agent-member",
        "an excerpt of an agent holding event #2, whose target is the agent but whose agent \
         member is null",
        CaseFile::Own(seal(&lines, 5)),
        vec![],
        vec![("inserted", Some(2))],
    );

    // The reader's own checkpoints and keys (§7.6, §7.3).
    let cp = |f: &str| vec![arg("--checkpoint"), arg(f)];
    case(
        "excerpt-with-checkpoint-3",
        "excerpt.jsonl and a checkpoint of 3 the reader kept: its proof is in the bundle",
        CaseFile::Main("excerpt.jsonl"),
        cp("checkpoint-3.txt"),
        vec![],
    );
    case(
        "excerpt-with-checkpoint-4",
        "excerpt.jsonl and a genuine checkpoint of 4 the reader kept: no proof from 4",
        CaseFile::Main("excerpt.jsonl"),
        cp("checkpoint-4.txt"),
        vec![("proof_mismatch", Some(4))],
    );
    case(
        "excerpt-with-checkpoint-5",
        "excerpt.jsonl and the same checkpoint of 5 (m = N: no proof needed)",
        CaseFile::Main("excerpt.jsonl"),
        cp("checkpoint-5.txt"),
        vec![],
    );
    case(
        "excerpt-with-forked-checkpoint-5",
        "excerpt.jsonl and a checkpoint of 5 with another root, signed by the same key",
        CaseFile::Main("excerpt.jsonl"),
        cp("forked-checkpoint-5.txt"),
        vec![("rolled_back", Some(5))],
    );
    case(
        "bundle-with-checkpoint-4",
        "bundle.jsonl and a checkpoint of 4 the reader kept, checked at its size",
        CaseFile::Main("bundle.jsonl"),
        cp("checkpoint-4.txt"),
        vec![],
    );
    case(
        "bundle-of-3-with-checkpoint-5",
        "the first 3 events, and a checkpoint of 5 the reader kept: rolled back",
        CaseFile::Main("cases/bundle-of-3.jsonl"),
        cp("checkpoint-5.txt"),
        vec![("rolled_back", Some(4))],
    );
    case(
        "bundle-with-pinned-fingerprint",
        "bundle.jsonl with the vectors key pinned by fingerprint",
        CaseFile::Main("bundle.jsonl"),
        vec![arg("--key"), fp.clone()],
        vec![],
    );
    case(
        "bundle-with-pinned-verifier-key",
        "bundle.jsonl with the vectors key pinned as a verifier key",
        CaseFile::Main("bundle.jsonl"),
        vec![arg("--key"), key_entry().vkey],
        vec![],
    );
    let untrusted = vec![
        ("malformed", None),
        ("unknown_key", None),
        ("unknown_key", Some(3)),
        ("unknown_key", Some(5)),
    ];
    case(
        "bundle-with-another-key",
        "bundle.jsonl with another key pinned: nothing in it is signed by a trusted key",
        CaseFile::Main("bundle.jsonl"),
        vec![arg("--key"), arg("SHA256:AAAAAAAAAAAAAAAA")],
        untrusted.clone(),
    );
    case(
        "bundle-with-key-named-otherwise",
        "bundle.jsonl with its own public key pinned under the name 'mandate'",
        CaseFile::Main("bundle.jsonl"),
        vec![
            arg("--key"),
            NoteKey::new("mandate", key().verifying_key()).vkey(),
        ],
        untrusted,
    );
    pdf_cases(&mut case);
    out
}

/// The PDF reports of §6 (attachment lookup). Their files are made by `mandate-report`'s
/// generator (`src-tauri/crates/report/src/vectors.rs`), from `cases/bundle-of-3.jsonl`; that
/// generator also checks that the two lists name the same cases and that each verdict holds.
fn pdf_cases(
    case: &mut dyn FnMut(&'static str, &'static str, CaseFile, Vec<String>, Vec<Expected>),
) {
    let unreadable = || vec![("malformed", None)];
    case(
        "pdf-report",
        "a Mandate report whose attachment is cases/bundle-of-3.jsonl, compressed (valid)",
        CaseFile::Pdf,
        vec![],
        vec![],
    );
    case(
        "pdf-pages-edited",
        "pdf-report with an incremental update that rewrites its first page: the pages are not \
         covered, the attachment is unchanged (valid)",
        CaseFile::Pdf,
        vec![],
        vec![],
    );
    case(
        "pdf-no-attachment",
        "pdf-report without its name-tree entry: no attached bundle",
        CaseFile::Pdf,
        vec![],
        unreadable(),
    );
    case(
        "pdf-key-utf16",
        "pdf-report whose name-tree key is mandate-evidence.jsonl in UTF-16BE with a BOM: not the \
         bytes of the name, so no attached bundle",
        CaseFile::Pdf,
        vec![],
        unreadable(),
    );
    case(
        "pdf-key-in-kids",
        "pdf-report whose name tree holds the entry in a child node (/Kids, /Limits) (valid)",
        CaseFile::Pdf,
        vec![],
        vec![],
    );
    case(
        "pdf-name-twice",
        "pdf-report whose name tree lists mandate-evidence.jsonl twice, the second entry for \
         bundle.jsonl: two attachments, refused although each verifies",
        CaseFile::Pdf,
        vec![],
        unreadable(),
    );
    case(
        "pdf-uf-only",
        "pdf-report whose file specification's /EF has /UF and no /F (valid)",
        CaseFile::Pdf,
        vec![],
        vec![],
    );
    case(
        "pdf-f-uf-differ",
        "pdf-report whose /EF has /F for bundle-of-3.jsonl and /UF for bundle.jsonl",
        CaseFile::Pdf,
        vec![],
        unreadable(),
    );
    case(
        "pdf-size-mismatch",
        "pdf-report whose attachment's /Params /Size is one more than its decoded length",
        CaseFile::Pdf,
        vec![],
        unreadable(),
    );
    case(
        "pdf-update-second-attachment",
        "pdf-report with an incremental update whose name tree adds a second \
         mandate-evidence.jsonl (bundle.jsonl): two attachments in the last revision",
        CaseFile::Pdf,
        vec![],
        unreadable(),
    );
    case(
        "pdf-update-replaces-attachment",
        "pdf-report with an incremental update that points its one entry at \
         cases/events-after-checkpoint.jsonl: the last revision is what is verified",
        CaseFile::Pdf,
        vec![],
        vec![("inserted", Some(4))],
    );
}

/// The checkpoint files the cases bring.
fn case_checkpoints() -> Vec<(&'static str, String)> {
    let l = Log::new(&default_values());
    let mut forked = default_values();
    forked[4]["reason"] = "rewritten".into();
    vec![
        ("checkpoint-3.txt", l.note(3, T3)),
        ("checkpoint-4.txt", l.note(4, "2026-01-15T09:00:15.000000Z")),
        ("forked-checkpoint-5.txt", Log::new(&forked).note(5, T5)),
    ]
}

/// Every file the cases need, and their entries for expected.json.
fn case_files() -> (Vec<(String, String)>, serde_json::Value) {
    let mut files: Vec<(String, String)> = case_checkpoints()
        .into_iter()
        .map(|(n, t)| (n.to_string(), t))
        .collect();
    let mut entries = Vec::new();
    for c in cases() {
        let file = match c.file {
            CaseFile::Own(text) => {
                let name = format!("cases/{}.jsonl", c.name);
                files.push((name.clone(), text));
                name
            }
            CaseFile::Main(name) => name.to_string(),
            CaseFile::Pdf => format!("cases/{}.pdf", c.name),
        };
        let mut problems = c.problems.clone();
        problems.sort();
        problems.dedup();
        entries.push(json!({
            "name": c.name,
            "what": c.what,
            "file": file,
            "args": c.args,
            "valid": problems.is_empty(),
            "problems": problems.iter().map(|(k, s)| json!({"kind": k, "seq": s})).collect::<Vec<_>>(),
        }));
    }
    (files, serde_json::Value::Array(entries))
}

/// The (kind, seq) of a report's problems, sorted and without repeats, as expected.json has
/// them.
pub(crate) fn problem_set(r: &verify::VerifyReport) -> Vec<(String, Option<u64>)> {
    let mut v: Vec<(String, Option<u64>)> = r
        .problems
        .iter()
        .map(|p| {
            (
                serde_json::to_value(p.kind)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_string(),
                p.seq,
            )
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Write (with `MANDATE_BLESS=1`) or compare one vector file.
fn check_file(name: &str, text: &str) {
    let path = dir().join(name);
    if std::env::var("MANDATE_BLESS").as_deref() == Ok("1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == text,
        "docs/audit-vectors/{name} is stale: run MANDATE_BLESS=1 cargo test -p mandate-core \
         vectors"
    );
}

#[test]
fn the_documented_vectors_match_the_code() {
    let (case_files, case_entries) = case_files();
    for (name, text) in generate(case_entries) {
        check_file(name, &text);
    }
    for (name, text) in &case_files {
        check_file(name, text);
    }
    // And they verify.
    for name in ["bundle.jsonl", "excerpt.jsonl"] {
        let r = verify::check_bundle(
            &std::fs::read(dir().join(name)).unwrap(),
            &Default::default(),
        );
        assert!(r.ok(), "{name}: {:?}", r.problems);
    }
}

/// Every case gives exactly its expected problems here (the PDF cases in `mandate-report`'s
/// vectors); `tests/audit_commands.rs` holds the `mandate` binary and the Python verifier to
/// the same.
#[test]
fn every_case_gives_its_expected_problems() {
    for c in cases() {
        let bytes = match &c.file {
            CaseFile::Pdf => continue,
            CaseFile::Own(text) => text.clone().into_bytes(),
            CaseFile::Main(name) if name.starts_with("cases/") => {
                let own = name.trim_start_matches("cases/").trim_end_matches(".jsonl");
                match cases().into_iter().find(|x| x.name == own).unwrap().file {
                    CaseFile::Own(t) => t.into_bytes(),
                    CaseFile::Main(_) | CaseFile::Pdf => unreachable!(),
                }
            }
            CaseFile::Main(name) => generate(serde_json::Value::Null)
                .into_iter()
                .find(|(n, _)| n == name)
                .unwrap()
                .1
                .into_bytes(),
        };
        let mut opts = verify::BundleOptions::default();
        let mut args = c.args.iter();
        while let Some(a) = args.next() {
            let v = args.next().unwrap();
            match a.as_str() {
                "--key" => opts.pinned_keys.push(v.clone()),
                "--checkpoint" => opts.seen_checkpoints.push(
                    case_checkpoints()
                        .into_iter()
                        .chain([("checkpoint-5.txt", Log::new(&default_values()).note(5, T5))])
                        .find(|(n, _)| n == v)
                        .unwrap()
                        .1,
                ),
                other => panic!("unknown argument {other}"),
            }
        }
        let r = verify::check_bundle(&bytes, &opts);
        let mut want: Vec<(String, Option<u64>)> = c
            .problems
            .iter()
            .map(|(k, s)| (k.to_string(), *s))
            .collect();
        want.sort();
        want.dedup();
        assert_eq!(problem_set(&r), want, "{}: {:#?}", c.name, r.problems);
    }
}
