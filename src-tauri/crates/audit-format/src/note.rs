//! Checkpoints as C2SP signed notes (`c2sp.org/tlog-checkpoint`, `c2sp.org/signed-note`).
//!
//! A checkpoint commits to the audit log at one size: the origin line, the tree size, the
//! base64 RFC 9162 root, then two extension lines of ours, `chain-head <base64>` (the hash
//! chain value after the last event) and `time <RFC 3339>`. It is signed with the issuer's
//! Ed25519 key as a signed note: a blank line, then `— <key name> <base64(key id || sig)>`,
//! where the key id is the first four bytes of `SHA-256(key name || 0x0A || 0x01 || public
//! key)`. Existing note verifiers (Go's `golang.org/x/mod/sumdb/note`, sigsum, the
//! transparency-dev tools) read these checkpoints; they ignore our extension lines.
//!
//! What it is not: storage or policy (see `checkpoint`), or trust decisions: the caller says
//! which keys it trusts.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use super::merkle::Hash;

/// The signature algorithm byte of Ed25519 in signed notes.
const ALG_ED25519: u8 = 0x01;

/// Why a note could not be read or trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// The text is not a checkpoint in the expected format.
    #[error("the checkpoint is malformed: {0}")]
    Malformed(String),
    /// No trusted key has the signer's name and key id.
    #[error(
        "the checkpoint is signed by key '{name}' with id {key_id}, which is not a trusted \
         issuer key of this log"
    )]
    UnknownKey { name: String, key_id: String },
    /// The signature does not verify: the text was changed after signing, or forged.
    #[error("the checkpoint's signature does not verify: it was altered or forged")]
    BadSignature,
}

/// A public key that may sign notes, with the name it signs under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteKey {
    pub name: String,
    pub key: VerifyingKey,
}

impl NoteKey {
    pub fn new(name: &str, key: VerifyingKey) -> Self {
        NoteKey {
            name: name.into(),
            key,
        }
    }

    /// The first four bytes of `SHA-256(name || "\n" || 0x01 || public key)`.
    pub fn key_id(&self) -> [u8; 4] {
        key_id(&self.name, &self.key)
    }

    /// The signed-note verifier key string: `<name>+<hex key id>+<base64(0x01 || key)>`.
    pub fn vkey(&self) -> String {
        let mut k = vec![ALG_ED25519];
        k.extend_from_slice(self.key.as_bytes());
        format!(
            "{}+{}+{}",
            self.name,
            super::hex(&self.key_id()),
            STANDARD.encode(k)
        )
    }

    /// Parse a verifier key string (see [`NoteKey::vkey`]).
    pub fn parse_vkey(s: &str) -> Result<Self, NoteError> {
        let bad = |why: &str| NoteError::Malformed(format!("verifier key '{s}': {why}"));
        // Names never contain '+'; base64 may.
        let mut parts = s.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected NAME+KEYID+KEY"));
        };
        let raw = STANDARD
            .decode(b64)
            .map_err(|_| bad("the key is not base64"))?;
        if raw.len() != 33 || raw[0] != ALG_ED25519 {
            return Err(bad("not an Ed25519 key"));
        }
        let mut pk = [0u8; 32];
        pk.copy_from_slice(&raw[1..]);
        let key = VerifyingKey::from_bytes(&pk).map_err(|_| bad("not a valid Ed25519 point"))?;
        let k = NoteKey::new(name, key);
        if super::hex(&k.key_id()) != id.to_ascii_lowercase() {
            return Err(bad("the key id does not match the key"));
        }
        Ok(k)
    }
}

/// `SHA-256(name || 0x0A || 0x01 || key)[..4]`.
pub fn key_id(name: &str, key: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ALG_ED25519]);
    h.update(key.as_bytes());
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// What a checkpoint says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// `mandate/<install id>`.
    pub origin: String,
    /// Number of events covered.
    pub size: u64,
    /// RFC 9162 root of the first `size` events.
    pub root: Hash,
    /// The hash chain value after event `size` (32 zero bytes when `size` is 0).
    pub chain_head: Hash,
    /// When the checkpoint was made, RFC 3339 UTC with microseconds.
    pub time: String,
}

impl Checkpoint {
    /// The note text that is signed.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\nchain-head {}\ntime {}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root),
            STANDARD.encode(self.chain_head),
            self.time
        )
    }

    fn parse_body(body: &str) -> Result<Self, NoteError> {
        let bad = |why: String| NoteError::Malformed(why);
        let lines: Vec<&str> = body
            .strip_suffix('\n')
            .ok_or_else(|| bad("the text does not end with a newline".into()))?
            .split('\n')
            .collect();
        let [origin, size, root, rest @ ..] = lines.as_slice() else {
            return Err(bad("it has fewer than three lines".into()));
        };
        if origin.is_empty() {
            return Err(bad("the origin line is empty".into()));
        }
        if size.is_empty()
            || !size.bytes().all(|b| b.is_ascii_digit())
            || size.starts_with("0") && size.len() > 1
        {
            return Err(bad(format!("the size '{size}' is not a decimal number")));
        }
        let size: u64 = size
            .parse()
            .map_err(|_| bad(format!("the size '{size}' is out of range")))?;
        let root =
            decode_hash(root).ok_or_else(|| bad("the root is not 32 bytes of base64".into()))?;
        // Our two extension lines come first, in this order; C2SP lets notes carry more
        // extension lines after them, which are signed but mean nothing to this format.
        let [head_line, time_line, more @ ..] = rest else {
            return Err(bad(
                "the chain-head and time lines are missing (lines 4 and 5)".into(),
            ));
        };
        let chain_head = head_line
            .strip_prefix("chain-head ")
            .ok_or_else(|| bad("line 4 is not the chain-head line".into()))
            .and_then(|v| {
                decode_hash(v).ok_or_else(|| bad("the chain head is not 32 bytes of base64".into()))
            })?;
        let time = time_line
            .strip_prefix("time ")
            .ok_or_else(|| bad("line 5 is not the time line".into()))?;
        if !is_event_time(time) {
            return Err(bad(format!(
                "the time '{time}' is not RFC 3339 UTC with six fractional digits"
            )));
        }
        if more.iter().any(|l| l.is_empty()) {
            return Err(bad("an extension line is empty".into()));
        }
        if size == 0 && (root != super::merkle::empty_root() || chain_head != [0u8; 32]) {
            return Err(bad(
                "it covers no events but its root or chain head is not that of the empty log"
                    .into(),
            ));
        }
        Ok(Checkpoint {
            origin: origin.to_string(),
            size,
            root,
            chain_head,
            time: time.to_string(),
        })
    }

    /// Sign as a note under `name` (by convention the origin).
    pub fn sign(&self, name: &str, key: &SigningKey) -> String {
        match self.sign_parts(name, &key.verifying_key(), |m| {
            Ok::<_, std::convert::Infallible>(key.sign(m))
        }) {
            Ok(s) => s,
            Err(never) => match never {},
        }
    }

    /// Sign as a note under `name` with a key that signs where it lives (`sign` makes the
    /// Ed25519 signature of the bytes it is given with the key whose public half is `public`;
    /// an issuer key in a PKCS#11 token may be out of reach, which is its error).
    pub fn sign_parts<E>(
        &self,
        name: &str,
        public: &VerifyingKey,
        sign: impl FnOnce(&[u8]) -> Result<Signature, E>,
    ) -> Result<String, E> {
        let body = self.body();
        let sig = sign(body.as_bytes())?;
        let mut blob = key_id(name, public).to_vec();
        blob.extend_from_slice(&sig.to_bytes());
        Ok(format!(
            "{body}\n\u{2014} {name} {}\n",
            STANDARD.encode(blob)
        ))
    }
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`, the form events and checkpoints carry times in.
pub(crate) fn is_event_time(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() == 27
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            26 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

fn decode_hash(s: &str) -> Option<Hash> {
    let v = STANDARD.decode(s).ok()?;
    v.try_into().ok()
}

/// A checkpoint note as read, before or after its signature is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub checkpoint: Checkpoint,
    /// The whole note text.
    pub text: String,
    signatures: Vec<(String, [u8; 4], [u8; 64])>,
}

impl SignedCheckpoint {
    /// Parse a note (no signature check yet).
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let bad = |why: &str| NoteError::Malformed(why.to_string());
        let split = text
            .rfind("\n\n")
            .ok_or_else(|| bad("there is no blank line before the signatures"))?;
        let body = &text[..split + 1];
        let sigs = &text[split + 2..];
        let checkpoint = Checkpoint::parse_body(body)?;
        let mut signatures = Vec::new();
        for line in sigs
            .strip_suffix('\n')
            .ok_or_else(|| bad("the last signature line does not end with a newline"))?
            .split('\n')
        {
            let rest = line
                .strip_prefix("\u{2014} ")
                .ok_or_else(|| bad("a signature line does not start with an em dash"))?;
            let (name, b64) = rest
                .rsplit_once(' ')
                .ok_or_else(|| bad("a signature line has no signature"))?;
            let raw = STANDARD
                .decode(b64)
                .map_err(|_| bad("a signature is not base64"))?;
            if raw.len() != 68 {
                // Another algorithm's signature; not ours to check.
                continue;
            }
            let mut id = [0u8; 4];
            id.copy_from_slice(&raw[..4]);
            let mut sig = [0u8; 64];
            sig.copy_from_slice(&raw[4..]);
            signatures.push((name.to_string(), id, sig));
        }
        if signatures.is_empty() {
            return Err(bad("it carries no Ed25519 signature"));
        }
        Ok(SignedCheckpoint {
            checkpoint,
            text: text.to_string(),
            signatures,
        })
    }

    /// The signed body text.
    fn body(&self) -> &str {
        match self.text.rfind("\n\n") {
            Some(i) => &self.text[..i + 1],
            None => &self.text,
        }
    }

    /// The (name, hex key id) of the first signature, for messages.
    pub fn signer(&self) -> (String, String) {
        self.signatures
            .first()
            .map(|(n, id, _)| (n.clone(), super::hex(id)))
            .unwrap_or_default()
    }

    /// Check the signature with the first trusted key whose name and id match; returns it.
    pub fn verify<'k>(&self, trusted: &'k [NoteKey]) -> Result<&'k NoteKey, NoteError> {
        for (name, id, sig) in &self.signatures {
            if let Some(k) = trusted
                .iter()
                .find(|k| &k.name == name && &k.key_id() == id)
            {
                let sig = Signature::from_bytes(sig);
                return match k.key.verify_strict(self.body().as_bytes(), &sig) {
                    Ok(()) => Ok(k),
                    Err(_) => Err(NoteError::BadSignature),
                };
            }
        }
        let (name, key_id) = self.signer();
        Err(NoteError::UnknownKey { name, key_id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn cp() -> Checkpoint {
        Checkpoint {
            origin: "mandate/test".into(),
            size: 3,
            root: [7; 32],
            chain_head: [9; 32],
            time: "2026-01-01T00:00:00.000000Z".into(),
        }
    }

    #[test]
    fn signs_parses_and_verifies_and_refuses_changes_and_strangers() {
        let k = key(1);
        let text = cp().sign("mandate/test", &k);
        let trusted = [NoteKey::new("mandate/test", k.verifying_key())];
        let s = SignedCheckpoint::parse(&text).unwrap();
        assert_eq!(s.checkpoint, cp());
        s.verify(&trusted).unwrap();
        let changed = text.replacen("\n3\n", "\n4\n", 1);
        assert_eq!(
            SignedCheckpoint::parse(&changed).unwrap().verify(&trusted),
            Err(NoteError::BadSignature)
        );
        let other = cp().sign("mandate/test", &key(2));
        assert!(matches!(
            SignedCheckpoint::parse(&other).unwrap().verify(&trusted),
            Err(NoteError::UnknownKey { .. })
        ));
        assert!(SignedCheckpoint::parse("mandate/test\n3\n").is_err());
    }

    #[test]
    fn vkey_round_trips() {
        let k = NoteKey::new("mandate/x", key(3).verifying_key());
        assert_eq!(NoteKey::parse_vkey(&k.vkey()).unwrap(), k);
        let mut bad = k.vkey();
        bad.replace_range(10..12, "00");
        assert!(NoteKey::parse_vkey(&bad).is_err() || bad == k.vkey());
    }
}
