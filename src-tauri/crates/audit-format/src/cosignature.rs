//! Witness cosignatures on checkpoints, as C2SP `tlog-cosignature` (`cosignature/v1`,
//! Ed25519).
//!
//! A witness that checked a checkpoint is consistent with every earlier one it saw signs
//!
//! ```text
//! cosignature/v1
//! time <POSIX seconds>
//! <the checkpoint's whole note body, extension lines included>
//! ```
//!
//! with its own Ed25519 key and adds a note signature line to the checkpoint:
//! `— <witness name> base64(key id || u64 big-endian timestamp || 64-byte signature)`, where
//! the key id is the first four bytes of `SHA-256(name || 0x0A || 0x04 || public key)` (0x04
//! is the cosignature algorithm byte, so a witness key id never collides with a log key's
//! 0x01). A witness key is written as a verifier key string
//! `<name>+<hex key id>+<base64(0x04 || public key)>`.
//!
//! The statement a cosignature makes is the spec's: as of its time, this is the largest tree
//! the witness has seen of that log, consistent with all it saw before. It says nothing about
//! our `chain-head` and `time` extension lines beyond having signed them.
//!
//! What it is not: the consistency check itself (RFC 9162 proofs are in [`crate::merkle`]),
//! or the witness's memory of what it saw (that lives in `mandate-core`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// The signature type byte of an Ed25519 `cosignature/v1` key.
pub const ALG_COSIGNATURE_V1: u8 = 0x04;
/// The first line of every cosigned message (domain separation).
pub const HEADER: &str = "cosignature/v1";
/// Length of the base64-decoded signature: key id, timestamp, Ed25519 signature.
const BLOB_LEN: usize = 4 + 8 + 64;

/// Why a cosignature or a witness key could not be read or trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CosignatureError {
    #[error("the witness key '{key}' is not usable: {why}")]
    BadKey { key: String, why: String },
    #[error("the cosignature line is malformed: {0}")]
    Malformed(String),
    #[error("the checkpoint carries no cosignature by witness '{name}' (key id {key_id})")]
    Missing { name: String, key_id: String },
    #[error(
        "the cosignature by witness '{name}' does not verify: the checkpoint was changed after \
         it was cosigned, or the cosignature was forged"
    )]
    BadSignature { name: String },
}

/// A witness's public key and the name it cosigns under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessKey {
    pub name: String,
    pub key: VerifyingKey,
}

impl WitnessKey {
    /// A witness key; the name must be non-empty and free of spaces, `+` and newlines (the
    /// signed-note rules for key names).
    pub fn new(name: &str, key: VerifyingKey) -> Result<Self, CosignatureError> {
        check_name(name)?;
        Ok(WitnessKey {
            name: name.to_string(),
            key,
        })
    }

    /// `SHA-256(name || "\n" || 0x04 || key)[..4]`.
    pub fn key_id(&self) -> [u8; 4] {
        let mut h = Sha256::new();
        h.update(self.name.as_bytes());
        h.update(b"\n");
        h.update([ALG_COSIGNATURE_V1]);
        h.update(self.key.as_bytes());
        let d = h.finalize();
        [d[0], d[1], d[2], d[3]]
    }

    /// The verifier key string: `<name>+<hex key id>+<base64(0x04 || key)>`.
    pub fn vkey(&self) -> String {
        let mut k = vec![ALG_COSIGNATURE_V1];
        k.extend_from_slice(self.key.as_bytes());
        format!(
            "{}+{}+{}",
            self.name,
            crate::hex(&self.key_id()),
            STANDARD.encode(k)
        )
    }

    /// Parse a verifier key string (see [`WitnessKey::vkey`]).
    pub fn parse_vkey(s: &str) -> Result<Self, CosignatureError> {
        let s = s.trim();
        let bad = |why: &str| CosignatureError::BadKey {
            key: s.to_string(),
            why: why.to_string(),
        };
        let mut parts = s.splitn(3, '+');
        let (Some(name), Some(id), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected NAME+KEYID+KEY"));
        };
        let raw = STANDARD
            .decode(b64)
            .map_err(|_| bad("the key is not base64"))?;
        if raw.len() != 33 {
            return Err(bad("it is not an Ed25519 key"));
        }
        if raw[0] != ALG_COSIGNATURE_V1 {
            return Err(bad(
                "its type is not 0x04 (an Ed25519 cosignature/v1 witness key); a log's own \
                 checkpoint key (type 0x01) is not a witness key",
            ));
        }
        let mut pk = [0u8; 32];
        pk.copy_from_slice(&raw[1..]);
        let key = VerifyingKey::from_bytes(&pk).map_err(|_| bad("not a valid Ed25519 point"))?;
        let k = WitnessKey::new(name, key)?;
        if crate::hex(&k.key_id()) != id.to_ascii_lowercase() {
            return Err(bad("the key id does not match the name and key"));
        }
        Ok(k)
    }
}

fn check_name(name: &str) -> Result<(), CosignatureError> {
    if name.is_empty()
        || name
            .chars()
            .any(|c| c == '+' || c.is_whitespace() || c.is_control())
    {
        return Err(CosignatureError::BadKey {
            key: name.to_string(),
            why: "a witness name must be non-empty, with no spaces, '+' or control characters \
                  (for example witness.acme.example/alice-laptop)"
                .into(),
        });
    }
    Ok(())
}

/// The message a witness signs for `note_body` (a checkpoint's text up to and including the
/// newline before the blank line) at `timestamp`.
pub fn signed_message(note_body: &str, timestamp: u64) -> String {
    format!("{HEADER}\ntime {timestamp}\n{note_body}")
}

/// One cosignature, as found on a signature line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosignature {
    /// The witness's name (the signature line's key name).
    pub name: String,
    pub key_id: [u8; 4],
    /// When it was made, POSIX seconds.
    pub timestamp: u64,
    pub signature: [u8; 64],
}

impl Cosignature {
    /// Cosign `note_body` as `witness` (whose private key is `key`) at `timestamp`.
    pub fn sign(
        note_body: &str,
        witness: &WitnessKey,
        key: &SigningKey,
        timestamp: u64,
    ) -> Cosignature {
        let sig = key.sign(signed_message(note_body, timestamp).as_bytes());
        Cosignature {
            name: witness.name.clone(),
            key_id: witness.key_id(),
            timestamp,
            signature: sig.to_bytes(),
        }
    }

    /// The note signature line, without its newline.
    pub fn line(&self) -> String {
        let mut blob = Vec::with_capacity(BLOB_LEN);
        blob.extend_from_slice(&self.key_id);
        blob.extend_from_slice(&self.timestamp.to_be_bytes());
        blob.extend_from_slice(&self.signature);
        format!("\u{2014} {} {}", self.name, STANDARD.encode(blob))
    }

    /// Read a note signature line (with or without its newline). Lines of other lengths (a
    /// log's own 68-byte Ed25519 signature) are not cosignatures: `Ok(None)`.
    pub fn parse_line(line: &str) -> Result<Option<Cosignature>, CosignatureError> {
        let bad = |why: &str| CosignatureError::Malformed(why.to_string());
        let line = line.strip_suffix('\n').unwrap_or(line);
        let rest = line
            .strip_prefix("\u{2014} ")
            .ok_or_else(|| bad("it does not start with an em dash and a space"))?;
        let (name, b64) = rest
            .rsplit_once(' ')
            .ok_or_else(|| bad("it has no signature after the name"))?;
        let raw = STANDARD
            .decode(b64)
            .map_err(|_| bad("the signature is not base64"))?;
        if raw.len() != BLOB_LEN {
            return Ok(None);
        }
        check_name(name).map_err(|_| bad("the witness name is not a valid key name"))?;
        let mut key_id = [0u8; 4];
        key_id.copy_from_slice(&raw[..4]);
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&raw[4..12]);
        let timestamp = u64::from_be_bytes(ts);
        if timestamp > i64::MAX as u64 {
            return Err(bad("the timestamp is above 2^63 - 1"));
        }
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&raw[12..]);
        Ok(Some(Cosignature {
            name: name.to_string(),
            key_id,
            timestamp,
            signature,
        }))
    }

    /// Whether this is `witness`'s (same name and key id).
    pub fn is_by(&self, witness: &WitnessKey) -> bool {
        self.name == witness.name && self.key_id == witness.key_id()
    }

    /// Check this cosignature of `note_body` with `witness`'s key.
    pub fn verify(&self, note_body: &str, witness: &WitnessKey) -> Result<(), CosignatureError> {
        if !self.is_by(witness) {
            return Err(CosignatureError::Missing {
                name: witness.name.clone(),
                key_id: crate::hex(&witness.key_id()),
            });
        }
        let sig = Signature::from_bytes(&self.signature);
        witness
            .key
            .verify_strict(signed_message(note_body, self.timestamp).as_bytes(), &sig)
            .map_err(|_| CosignatureError::BadSignature {
                name: witness.name.clone(),
            })
    }
}

/// The note body of a signed note (everything up to and including the newline before the
/// blank line that starts the signatures), or `None` when there is no blank line.
pub fn note_body(note: &str) -> Option<&str> {
    note.find("\n\n").map(|i| &note[..i + 1])
}

/// The signature lines of a signed note.
fn signature_lines(note: &str) -> impl Iterator<Item = &str> {
    note.find("\n\n")
        .map(|i| &note[i + 2..])
        .unwrap_or("")
        .lines()
        .filter(|l| !l.is_empty())
}

/// Every well-formed cosignature on `note` (a checkpoint with its signature lines).
pub fn cosignatures(note: &str) -> Vec<Cosignature> {
    signature_lines(note)
        .filter_map(|l| Cosignature::parse_line(l).ok().flatten())
        .collect()
}

/// Check that `note` carries a valid cosignature by `witness`; returns it.
pub fn verify_note(note: &str, witness: &WitnessKey) -> Result<Cosignature, CosignatureError> {
    let body = note_body(note)
        .ok_or_else(|| CosignatureError::Malformed("the note has no signatures".into()))?;
    let mine: Vec<Cosignature> = cosignatures(note)
        .into_iter()
        .filter(|c| c.is_by(witness))
        .collect();
    let Some(first) = mine.first() else {
        return Err(CosignatureError::Missing {
            name: witness.name.clone(),
            key_id: crate::hex(&witness.key_id()),
        });
    };
    // Any one valid cosignature by the witness is its statement; report the first failure
    // when none verifies.
    let mut err = None;
    for c in &mine {
        match c.verify(body, witness) {
            Ok(()) => return Ok(c.clone()),
            Err(e) => err = err.or(Some(e)),
        }
    }
    Err(err.unwrap_or_else(|| CosignatureError::BadSignature {
        name: first.name.clone(),
    }))
}

/// `note` with `cosignature`'s line added after its existing signature lines.
pub fn add_to_note(note: &str, cosignature: &Cosignature) -> String {
    let mut out = note.to_string();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&cosignature.line());
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note::{Checkpoint, NoteKey, SignedCheckpoint};

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn checkpoint() -> String {
        Checkpoint {
            origin: "mandate/test".into(),
            size: 5,
            root: [3; 32],
            chain_head: [4; 32],
            time: "2026-12-04T21:00:00.000000Z".into(),
        }
        .sign("mandate/test", &key(1))
    }

    #[test]
    fn a_cosigned_checkpoint_verifies_and_the_log_signature_still_does() {
        let w = WitnessKey::new("witness.acme.example/alice", key(7).verifying_key()).unwrap();
        let note = checkpoint();
        let body = note_body(&note).unwrap();
        let c = Cosignature::sign(body, &w, &key(7), 1_764_882_000);
        let cosigned = add_to_note(&note, &c);
        assert_eq!(verify_note(&cosigned, &w).unwrap(), c);
        // The log's own signature is untouched by the extra line.
        let log = NoteKey::new("mandate/test", key(1).verifying_key());
        SignedCheckpoint::parse(&cosigned)
            .unwrap()
            .verify(&[log])
            .unwrap();
        // The line round-trips.
        assert_eq!(Cosignature::parse_line(&c.line()).unwrap(), Some(c));
    }

    #[test]
    fn the_signed_message_is_the_spec_s_two_lines_then_the_whole_body() {
        // C2SP tlog-cosignature: "cosignature/v1\ntime <ts>\n" then the note body.
        let body =
            "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
        assert_eq!(
            signed_message(body, 1679315147),
            "cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\n\
             CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
        );
        // The key id uses algorithm byte 0x04, not the log key's 0x01.
        let w = WitnessKey::new("w", key(2).verifying_key()).unwrap();
        let log = NoteKey::new("w", key(2).verifying_key());
        assert_ne!(w.key_id(), log.key_id());
        let blob = STANDARD
            .decode(
                Cosignature::sign(body, &w, &key(2), 1)
                    .line()
                    .rsplit_once(' ')
                    .unwrap()
                    .1,
            )
            .unwrap();
        assert_eq!(blob.len(), 76);
        assert_eq!(&blob[4..12], &1u64.to_be_bytes());
    }

    #[test]
    fn a_changed_checkpoint_a_stranger_or_a_missing_cosignature_is_refused_with_its_reason() {
        let w = WitnessKey::new("w1", key(7).verifying_key()).unwrap();
        let other = WitnessKey::new("w2", key(8).verifying_key()).unwrap();
        let note = checkpoint();
        let c = Cosignature::sign(note_body(&note).unwrap(), &w, &key(7), 42);
        let cosigned = add_to_note(&note, &c);
        assert!(matches!(
            verify_note(&cosigned, &other),
            Err(CosignatureError::Missing { .. })
        ));
        let changed = cosigned.replacen("\n5\n", "\n6\n", 1);
        assert_eq!(
            verify_note(&changed, &w),
            Err(CosignatureError::BadSignature { name: "w1".into() })
        );
        // A different timestamp in the line breaks the signature too.
        let mut later = c.clone();
        later.timestamp = 43;
        let forged = add_to_note(&note, &later);
        assert!(matches!(
            verify_note(&forged, &w),
            Err(CosignatureError::BadSignature { .. })
        ));
        // The same key under another name is another witness.
        let renamed = WitnessKey::new("w3", key(7).verifying_key()).unwrap();
        assert!(matches!(
            verify_note(&cosigned, &renamed),
            Err(CosignatureError::Missing { .. })
        ));
    }

    #[test]
    fn vkeys_round_trip_and_a_log_key_or_bad_name_is_not_a_witness_key() {
        let w = WitnessKey::new("witness.acme.example/bob", key(9).verifying_key()).unwrap();
        assert_eq!(WitnessKey::parse_vkey(&w.vkey()).unwrap(), w);
        let log = NoteKey::new("witness.acme.example/bob", key(9).verifying_key());
        assert!(WitnessKey::parse_vkey(&log.vkey()).is_err());
        let mut wrong_id = w.vkey();
        let at = wrong_id.find('+').unwrap() + 1;
        let flipped = if &wrong_id[at..at + 1] == "0" {
            "1"
        } else {
            "0"
        };
        wrong_id.replace_range(at..at + 1, flipped);
        assert!(WitnessKey::parse_vkey(&wrong_id).is_err());
        assert!(WitnessKey::new("has space", key(9).verifying_key()).is_err());
        assert!(WitnessKey::new("", key(9).verifying_key()).is_err());
    }
}
