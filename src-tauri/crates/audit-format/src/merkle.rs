//! RFC 9162 (Certificate Transparency v2) Merkle trees over the audit events.
//!
//! Leaf hash `SHA-256(0x00 || canonical event bytes)`, interior node `SHA-256(0x01 || left ||
//! right)`, the empty tree hashes to `SHA-256("")`; the tree splits at the largest power of
//! two smaller than its size (RFC 9162 §2.1.1). Inclusion and consistency proofs and their
//! verification follow §2.1.3 and §2.1.4 exactly, so any RFC 9162 / RFC 6962 library checks
//! them.
//!
//! What it is not: storage. [`Frontier`] keeps the right edge of a tree (one hash per set bit
//! of its size) so a checkpoint can extend the previous one without rereading old events;
//! [`Tree`] holds every level in memory for proof generation over one export.

use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The hash of the empty tree, `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The right edge of a tree: the roots of its perfect subtrees, largest (leftmost) first.
/// Appending a leaf and reading the root are both O(log n).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    stack: Vec<Hash>,
}

impl Frontier {
    /// An empty tree.
    pub fn new() -> Self {
        Frontier::default()
    }

    /// Rebuild from a stored size and the concatenated subtree roots ([`Frontier::to_bytes`]).
    /// `None` when the byte count does not match the size.
    pub fn from_bytes(size: u64, bytes: &[u8]) -> Option<Self> {
        if !bytes.len().is_multiple_of(32) || bytes.len() / 32 != size.count_ones() as usize {
            return None;
        }
        let stack = bytes
            .chunks_exact(32)
            .map(|c| {
                let mut h = [0u8; 32];
                h.copy_from_slice(c);
                h
            })
            .collect();
        Some(Frontier { size, stack })
    }

    /// The subtree roots, concatenated.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.stack.concat()
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Append a leaf given its leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut h = leaf;
        let mut s = self.size;
        while s & 1 == 1 {
            // A set low bit means a perfect subtree of the same height waits on the left.
            if let Some(left) = self.stack.pop() {
                h = node_hash(&left, &h);
            }
            s >>= 1;
        }
        self.stack.push(h);
        self.size += 1;
    }

    /// The RFC 9162 root of the tree so far.
    pub fn root(&self) -> Hash {
        let mut it = self.stack.iter().rev();
        let Some(last) = it.next() else {
            return empty_root();
        };
        let mut acc = *last;
        for left in it {
            acc = node_hash(left, &acc);
        }
        acc
    }
}

/// A whole tree in memory, every level kept, for proofs.
///
/// Level 0 holds the leaf hashes; a node of level `l + 1` is the node hash of two neighbours
/// of level `l`, and an odd last node is carried up unchanged. This layered form has the same
/// root and the same proofs as RFC 9162's recursive definition.
#[derive(Debug, Clone)]
pub struct Tree {
    levels: Vec<Vec<Hash>>,
}

impl Tree {
    /// Build from leaf hashes.
    pub fn from_leaves(leaves: Vec<Hash>) -> Self {
        let mut levels = vec![leaves];
        while levels.last().map(|l| l.len() > 1).unwrap_or(false) {
            let prev = levels.last().map(Vec::as_slice).unwrap_or(&[]);
            let mut next = Vec::with_capacity(prev.len().div_ceil(2));
            for pair in prev.chunks(2) {
                match pair {
                    [l, r] => next.push(node_hash(l, r)),
                    [one] => next.push(*one),
                    _ => {}
                }
            }
            levels.push(next);
        }
        Tree { levels }
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map(|l| l.len() as u64).unwrap_or(0)
    }

    /// The leaf hash at `index`.
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        self.levels.first()?.get(index as usize).copied()
    }

    /// The root of the whole tree.
    pub fn root(&self) -> Hash {
        match self.levels.last() {
            Some(l) if l.len() == 1 => l[0],
            _ => empty_root(),
        }
    }

    /// The root of the tree made of the first `size` leaves.
    pub fn root_at(&self, size: u64) -> Option<Hash> {
        if size > self.size() {
            return None;
        }
        if size == 0 {
            return Some(empty_root());
        }
        Some(self.range_hash(0, size))
    }

    /// MTH(D[lo:hi]) computed from the stored levels (O(log² n)).
    fn range_hash(&self, lo: u64, hi: u64) -> Hash {
        let n = hi - lo;
        if n == 1 {
            return self.levels[0][lo as usize];
        }
        // A perfect, aligned subtree is a stored node.
        if n.is_power_of_two() && lo.is_multiple_of(n) {
            let level = n.trailing_zeros() as usize;
            if let Some(h) = self
                .levels
                .get(level)
                .and_then(|l| l.get((lo / n) as usize))
            {
                return *h;
            }
        }
        let k = largest_power_of_two_below(n);
        node_hash(&self.range_hash(lo, lo + k), &self.range_hash(lo + k, hi))
    }

    /// The RFC 9162 inclusion proof of leaf `index` in the tree of the first `size` leaves.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Option<Vec<Hash>> {
        if index >= size || size > self.size() {
            return None;
        }
        let mut out = Vec::new();
        self.path(index, 0, size, &mut out);
        Some(out)
    }

    /// PATH(m, D[lo:hi]) with `m` relative to `lo`, siblings appended bottom-up.
    fn path(&self, m: u64, lo: u64, hi: u64, out: &mut Vec<Hash>) {
        let n = hi - lo;
        if n <= 1 {
            return;
        }
        let k = largest_power_of_two_below(n);
        if m < k {
            self.path(m, lo, lo + k, out);
            out.push(self.range_hash(lo + k, hi));
        } else {
            self.path(m - k, lo + k, hi, out);
            out.push(self.range_hash(lo, lo + k));
        }
    }

    /// The RFC 9162 consistency proof from the tree of `old` leaves to the tree of `new`.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Option<Vec<Hash>> {
        if old > new || new > self.size() {
            return None;
        }
        let mut out = Vec::new();
        if old == 0 || old == new {
            return Some(out);
        }
        self.subproof(old, 0, new, true, &mut out);
        Some(out)
    }

    /// SUBPROOF(m, D[lo:hi], b).
    fn subproof(&self, m: u64, lo: u64, hi: u64, b: bool, out: &mut Vec<Hash>) {
        let n = hi - lo;
        if m == n {
            if !b {
                out.push(self.range_hash(lo, hi));
            }
            return;
        }
        let k = largest_power_of_two_below(n);
        if m <= k {
            self.subproof(m, lo, lo + k, b, out);
            out.push(self.range_hash(lo + k, hi));
        } else {
            self.subproof(m - k, lo + k, hi, false, out);
            out.push(self.range_hash(lo, lo + k));
        }
    }
}

/// The largest power of two strictly smaller than `n` (n ≥ 2).
fn largest_power_of_two_below(n: u64) -> u64 {
    if n < 2 {
        return 0;
    }
    1 << (63 - (n - 1).leading_zeros())
}

/// Check an inclusion proof (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let mut fn_ = index;
    let mut sn = size - 1;
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && r == *root
}

/// Check a consistency proof (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> bool {
    if old_size > new_size {
        return false;
    }
    if old_size == new_size {
        return proof.is_empty() && old_root == new_root;
    }
    if old_size == 0 {
        return proof.is_empty();
    }
    let mut path: Vec<Hash> = proof.to_vec();
    if old_size.is_power_of_two() {
        path.insert(0, *old_root);
    }
    let mut fn_ = old_size - 1;
    let mut sn = new_size - 1;
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let mut fr = *first;
    let mut sr = *first;
    for c in rest {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    fr == *old_root && sr == *new_root && sn == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MTH exactly as RFC 9162 §2.1.1 defines it, to check the layered tree against.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = largest_power_of_two_below(n as u64) as usize;
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("leaf {i}").as_bytes()))
            .collect()
    }

    #[test]
    fn layered_tree_frontier_and_recursive_definition_agree() {
        for n in 0..70 {
            let l = leaves(n);
            let t = Tree::from_leaves(l.clone());
            let mut f = Frontier::new();
            for h in &l {
                f.push(*h);
            }
            assert_eq!(t.root(), mth(&l), "n={n}");
            assert_eq!(f.root(), mth(&l), "n={n}");
            let g = Frontier::from_bytes(f.size(), &f.to_bytes()).unwrap();
            assert_eq!(g, f);
            for m in 0..=n {
                assert_eq!(t.root_at(m as u64).unwrap(), mth(&l[..m]));
            }
        }
    }

    #[test]
    fn every_inclusion_and_consistency_proof_verifies_and_a_wrong_one_does_not() {
        for n in 1..40u64 {
            let l = leaves(n as usize);
            let t = Tree::from_leaves(l.clone());
            for size in 1..=n {
                let root = t.root_at(size).unwrap();
                for i in 0..size {
                    let p = t.inclusion_proof(i, size).unwrap();
                    assert!(verify_inclusion(i, size, &l[i as usize], &p, &root));
                    let other = leaf_hash(b"other");
                    assert!(!verify_inclusion(i, size, &other, &p, &root));
                }
                for old in 0..=size {
                    let p = t.consistency_proof(old, size).unwrap();
                    let old_root = t.root_at(old).unwrap();
                    assert!(
                        verify_consistency(old, size, &old_root, &root, &p),
                        "{old}->{size}"
                    );
                    if old > 0 && old < size {
                        assert!(!verify_consistency(old, size, &leaf_hash(b"x"), &root, &p));
                    }
                }
            }
        }
    }

    #[test]
    fn rfc_6962_test_vector_root() {
        // The 8-leaf example tree of the certificate-transparency test data.
        let data: [&[u8]; 8] = [
            b"",
            &[0x00],
            &[0x10],
            &[0x20, 0x21],
            &[0x30, 0x31],
            &[0x40, 0x41, 0x42, 0x43],
            &[0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
            &[
                0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d,
                0x6e, 0x6f,
            ],
        ];
        let t = Tree::from_leaves(data.iter().map(|d| leaf_hash(d)).collect());
        assert_eq!(
            super::super::hex(&t.root()),
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
        );
    }
}
