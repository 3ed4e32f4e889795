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
use super::merkle::{Tree, leaf_hash};
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

/// Every file of the vectors, by name.
fn generate() -> Vec<(&'static str, String)> {
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

#[test]
fn the_documented_vectors_match_the_code() {
    let files = generate();
    if std::env::var("MANDATE_BLESS").as_deref() == Ok("1") {
        std::fs::create_dir_all(dir()).unwrap();
        for (name, text) in &files {
            std::fs::write(dir().join(name), text).unwrap();
        }
    }
    for (name, text) in &files {
        let on_disk = std::fs::read_to_string(dir().join(name)).unwrap_or_default();
        assert!(
            &on_disk == text,
            "docs/audit-vectors/{name} is stale: run MANDATE_BLESS=1 cargo test -p mandate-core \
             vectors"
        );
    }
    // And they verify.
    let r = verify::check_bundle(files[0].1.as_bytes(), &Default::default());
    assert!(r.ok(), "{:?}", r.problems);
    let r = verify::check_bundle(files[1].1.as_bytes(), &Default::default());
    assert!(r.ok(), "{:?}", r.problems);
}
