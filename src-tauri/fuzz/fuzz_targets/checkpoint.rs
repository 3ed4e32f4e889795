//! Signed checkpoints (C2SP signed notes, `audit::note`): parsing and verifying under the
//! vectors' key. Oracle: a note that verifies says exactly what a genuinely signed checkpoint
//! said (origin, size, root, chain head, time).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mandate_core::audit::note::{NoteKey, SignedCheckpoint};

const CHECKPOINT: &str = include_str!("../../../docs/audit-vectors/checkpoint-5.txt");
const BUNDLE: &[u8] = include_bytes!("../../../docs/audit-vectors/bundle.jsonl");

fn known() -> &'static (Vec<NoteKey>, Vec<SignedCheckpoint>) {
    static K: OnceLock<(Vec<NoteKey>, Vec<SignedCheckpoint>)> = OnceLock::new();
    K.get_or_init(|| {
        let parsed = mandate_core::audit::bundle::parse(BUNDLE).expect("the vector parses");
        let keys = parsed.header.keys.iter().map(|k| NoteKey::parse_vkey(&k.vkey).expect("vkey")).collect();
        let mut genuine: Vec<SignedCheckpoint> = parsed
            .checkpoints
            .iter()
            .map(|n| SignedCheckpoint::parse(n).expect("a genuine note parses"))
            .collect();
        genuine.push(SignedCheckpoint::parse(CHECKPOINT).expect("checkpoint-5 parses"));
        (keys, genuine)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = NoteKey::parse_vkey(text);
    let Ok(cp) = SignedCheckpoint::parse(text) else { return };
    let _ = cp.signer();
    let (keys, genuine) = known();
    if cp.verify(keys).is_ok() {
        assert!(
            genuine.iter().any(|g| g.checkpoint == cp.checkpoint),
            "a checkpoint verified that was never signed: {:?}",
            cp.checkpoint
        );
    }
});
