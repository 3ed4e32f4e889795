//! Writes a signed whole-log evidence bundle of N synthetic events to a file, streaming, for
//! `scripts/bench-verify` (a million events is about 800 MB: too large to build in memory
//! beside the verifier being measured).
//!
//! Each event is about 800 bytes, like a real token event with a long reason, and is made with
//! this crate's own chain, Merkle and bundle writer, signed with a fixed test key. It prints the
//! key's fingerprint, for `--key`.
//!
//! What it is not: a way to make evidence about anything. The events describe nothing real.
//!
//! Usage: cargo run --release -p mandate-audit-format --example synthetic_bundle -- N FILE

use std::io::Write as _;

use ed25519_dalek::SigningKey;
use mandate_audit_format::bundle::{BundleScope, FORMAT, Header, KeyEntry, Writer};
use mandate_audit_format::merkle::{Frontier, leaf_hash};
use mandate_audit_format::note::{Checkpoint, NoteKey};
use mandate_audit_format::{GENESIS, chain_link, keys};

const ORIGIN: &str = "mandate/synthetic";
const TIME: &str = "2026-12-04T00:00:00.000000Z";

fn event(seq: u64, reason: &str) -> Vec<u8> {
    // RFC 8785: members in code-point order, no whitespace.
    format!(
        r#"{{"action":"token.issue","agent":"ag_synthetic","decision":"allow","reason":"{reason}","seq":{seq},"time":"{TIME}","v":1}}"#
    )
    .into_bytes()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [n, path] = args.as_slice() else {
        return Err("usage: synthetic_bundle N FILE".into());
    };
    let n: u64 = n.parse()?;
    let key = SigningKey::from_bytes(&[42; 32]);
    let nk = NoteKey::new(ORIGIN, key.verifying_key());
    let reason = "a long reason that makes each event the size of a real one ".repeat(11);

    // First pass: the chain head and Merkle root the checkpoint (written before the events)
    // signs; nothing is kept per event.
    let (mut head, mut frontier) = (GENESIS, Frontier::new());
    for seq in 1..=n {
        let leaf = leaf_hash(&event(seq, &reason));
        head = chain_link(&head, &leaf);
        frontier.push(leaf);
    }
    let note = Checkpoint {
        origin: ORIGIN.into(),
        size: n,
        root: frontier.root(),
        chain_head: head,
        time: TIME.into(),
    }
    .sign(ORIGIN, &key);

    // Second pass: the bundle, written to the file a few MB at a time.
    let header = Header {
        format: FORMAT.into(),
        origin: ORIGIN.into(),
        generated: TIME.into(),
        scope: BundleScope::Full,
        keys: vec![KeyEntry {
            vkey: nk.vkey(),
            kid: keys::thumbprint(&key.verifying_key()),
            fingerprint: keys::fingerprint(&key.verifying_key()),
        }],
    };
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut w = Writer::new(&header);
    w.checkpoint(&note);
    let mut head = GENESIS;
    for seq in 1..=n {
        let canonical = event(seq, &reason);
        head = chain_link(&head, &leaf_hash(&canonical));
        w.event(&canonical, Some(&head), None);
        if seq % 4096 == 0 {
            out.write_all(&w.take())?;
        }
    }
    out.write_all(&w.finish(n, ORIGIN, &key))?;
    out.flush()?;
    println!("{}", keys::fingerprint(&key.verifying_key()));
    Ok(())
}
