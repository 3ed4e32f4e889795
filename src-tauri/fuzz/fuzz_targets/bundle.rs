//! Evidence bundles (JSON Lines: header, checkpoints, consistency proofs, events with inclusion
//! proofs, the sealed end) through the offline verifier (`audit::verify::check_bundle`), seeded
//! with the published test vectors (`docs/audit-vectors`). Oracle: a bundle that verifies under
//! the vectors' pinned key holds only events that key's checkpoints actually covered (any
//! other event passing would be a forgery the verifier missed).
#![no_main]

use std::collections::HashSet;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mandate_core::audit::bundle;
use mandate_core::audit::verify::{BundleOptions, check_bundle};

const FULL: &[u8] = include_bytes!("../../../docs/audit-vectors/bundle.jsonl");
const EXCERPT: &[u8] = include_bytes!("../../../docs/audit-vectors/excerpt.jsonl");
const CHECKPOINT: &str = include_str!("../../../docs/audit-vectors/checkpoint-5.txt");

struct Known {
    pinned: Vec<String>,
    events: HashSet<Vec<u8>>,
}

fn known() -> &'static Known {
    static K: OnceLock<Known> = OnceLock::new();
    K.get_or_init(|| {
        let full = bundle::parse(FULL).expect("the vector parses");
        let mut events: HashSet<Vec<u8>> = full.events.iter().map(|e| e.canonical.clone()).collect();
        events.extend(bundle::parse(EXCERPT).expect("the excerpt parses").events.into_iter().map(|e| e.canonical));
        Known {
            pinned: full.header.keys.iter().map(|k| k.vkey.clone()).collect(),
            events,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let k = known();
    // As a reader who trusts whatever keys the bundle lists (fingerprints shown to compare).
    let _ = check_bundle(data, &BundleOptions::default());
    // As a reader who pinned the key and saw checkpoint 5 before.
    let opts = BundleOptions {
        pinned_keys: k.pinned.clone(),
        seen_checkpoints: vec![CHECKPOINT.to_string()],
        witnesses: Vec::new(),
    };
    let report = check_bundle(data, &opts);
    if report.ok() {
        let parsed = bundle::parse(data).expect("a verified bundle parses");
        for e in &parsed.events {
            assert!(k.events.contains(&e.canonical), "a verified bundle holds an event nobody signed");
        }
    }
});
