//! RFC 9162 inclusion and consistency proofs (`audit::merkle`) as a bundle carries them: real
//! trees, and proofs that are the real ones with changes or made of arbitrary hashes. Oracle: a
//! proof verifies only if it is exactly the tree's own proof for that leaf or those sizes (a
//! different proof that verified would let a forged event or a rewritten log pass).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use mandate_core::audit::merkle::{Tree, leaf_hash, verify_consistency, verify_inclusion};

#[derive(Arbitrary, Debug)]
enum ProofMode {
    Real,
    /// The real proof with one byte of one node changed.
    Flip(u8, u8, u8),
    /// The real proof with a node dropped, or one added.
    Drop(u8),
    Add([u8; 32]),
    Raw(Vec<[u8; 32]>),
}

#[derive(Arbitrary, Debug)]
struct Input {
    leaves: u8,
    a: u8,
    b: u8,
    consistency: bool,
    /// Check the proof for this (maybe wrong) index or size instead.
    claimed_shift: i8,
    mode: ProofMode,
}

fn apply(mode: &ProofMode, real: Vec<[u8; 32]>) -> Vec<[u8; 32]> {
    let mut p = real;
    match mode {
        ProofMode::Real => {}
        ProofMode::Flip(i, j, x) if !p.is_empty() => {
            let n = p.len();
            p[usize::from(*i) % n][usize::from(*j) % 32] ^= (*x).max(1);
        }
        ProofMode::Flip(..) => {}
        ProofMode::Drop(i) if !p.is_empty() => {
            let n = p.len();
            p.remove(usize::from(*i) % n);
        }
        ProofMode::Drop(_) => {}
        ProofMode::Add(h) => p.push(*h),
        ProofMode::Raw(v) => p = v.iter().take(70).copied().collect(),
    }
    p
}

fuzz_target!(|input: Input| {
    let n = u64::from(input.leaves % 64) + 1;
    let leaves: Vec<[u8; 32]> = (0..n).map(|i| leaf_hash(format!("event {i}").as_bytes())).collect();
    let tree = Tree::from_leaves(leaves.clone());
    if input.consistency {
        let new = u64::from(input.b) % n + 1;
        let old = u64::from(input.a) % new + 1;
        let Some(real) = tree.consistency_proof(old, new) else { return };
        let proof = apply(&input.mode, real.clone());
        let claimed_old = old.saturating_add_signed(i64::from(input.claimed_shift % 3)).max(1);
        let (Some(old_root), Some(new_root)) = (tree.root_at(claimed_old.min(new)), tree.root_at(new)) else { return };
        if verify_consistency(claimed_old, new, &old_root, &new_root, &proof) && claimed_old < new {
            assert_eq!(Some(proof), tree.consistency_proof(claimed_old, new), "a wrong consistency proof verified");
        }
    } else {
        let size = u64::from(input.b) % n + 1;
        let index = u64::from(input.a) % size;
        let Some(real) = tree.inclusion_proof(index, size) else { return };
        let proof = apply(&input.mode, real);
        let claimed = index.saturating_add_signed(i64::from(input.claimed_shift % 3));
        let Some(root) = tree.root_at(size) else { return };
        let leaf = leaves[index as usize];
        if verify_inclusion(claimed, size, &leaf, &proof, &root) {
            assert_eq!(claimed, index, "a leaf verified at another index");
            assert_eq!(Some(proof), tree.inclusion_proof(index, size), "a wrong inclusion proof verified");
        }
    }
});
