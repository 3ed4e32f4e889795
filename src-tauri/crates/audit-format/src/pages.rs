//! The pages of a report, bound to its evidence: a signed list of each page's digest.
//!
//! A report's visible pages (names, counts, the "PASSED" box) are drawn from the same data as
//! its attached bundle, but a PDF's pages can be edited without touching the attachment. So
//! every report carries a second attachment, `mandate-pages.json`: the SHA-256 of the attached
//! bundle and of each page's content (its content streams, decoded and concatenated, in page
//! order), signed with the issuer key that seals the bundle over
//! `"mandate-report-pages/1\n" || bundle digest || be32(page count) || page digests`.
//! A verifier recomputes the digests and names each page that differs, or is missing or added.
//!
//! What it is not: a check of what a page says (the reader compares that with the evidence),
//! or of a page's fonts and images: a page's content streams hold its text and layout, which
//! is what an editor of the report's claims would change.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer, SigningKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::hex;
use crate::merkle::Hash;
use crate::note::{NoteKey, key_id};

/// The manifest's format name, and the first line of what its signature covers.
pub const FORMAT: &str = "mandate-report-pages/1";
/// The attachment's name in every report.
pub const ATTACHMENT_NAME: &str = "mandate-pages.json";

/// The signed list of a report's page digests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    /// Hex SHA-256 of the attached evidence bundle.
    pub bundle_sha256: String,
    /// Hex SHA-256 of each page's decoded content, first page first.
    pub pages: Vec<String>,
    /// Hex key id (as in signed notes) of the signing key.
    pub key: String,
    /// Base64 Ed25519 signature (see the module docs).
    pub signature: String,
}

/// What the signature covers.
fn message(bundle: &Hash, pages: &[Hash]) -> Vec<u8> {
    let mut m = Vec::with_capacity(FORMAT.len() + 1 + 32 + 4 + 32 * pages.len());
    m.extend_from_slice(FORMAT.as_bytes());
    m.push(b'\n');
    m.extend_from_slice(bundle);
    m.extend_from_slice(&(pages.len() as u32).to_be_bytes());
    for p in pages {
        m.extend_from_slice(p);
    }
    m
}

/// SHA-256 of a page's decoded content.
pub fn page_digest(content: &[u8]) -> Hash {
    Sha256::digest(content).into()
}

impl Manifest {
    /// Sign the digests of `bundle` and of each page with the issuer key of the log `origin`.
    pub fn sign(bundle: &[u8], pages: &[Hash], origin: &str, key: &SigningKey) -> Manifest {
        match Self::sign_with(bundle, pages, origin, &key.verifying_key(), |m| {
            Ok::<_, std::convert::Infallible>(key.sign(m))
        }) {
            Ok(m) => m,
            Err(never) => match never {},
        }
    }

    /// [`Manifest::sign`] with a key that signs where it lives (`sign` makes the Ed25519
    /// signature with the key whose public half is `public`).
    pub fn sign_with<E>(
        bundle: &[u8],
        pages: &[Hash],
        origin: &str,
        public: &ed25519_dalek::VerifyingKey,
        sign: impl FnOnce(&[u8]) -> Result<Signature, E>,
    ) -> Result<Manifest, E> {
        let digest: Hash = Sha256::digest(bundle).into();
        let sig = sign(&message(&digest, pages))?;
        Ok(Manifest {
            format: FORMAT.into(),
            bundle_sha256: hex(&digest),
            pages: pages.iter().map(|p| hex(p)).collect(),
            key: hex(&key_id(origin, public)),
            signature: STANDARD.encode(sig.to_bytes()),
        })
    }

    /// Check the manifest against the bundle actually attached and the pages actually there,
    /// with the keys trusted for the bundle. Returns what is wrong, one sentence each, naming
    /// the pages (1-based); empty when the pages are the ones that were signed.
    pub fn check(&self, bundle: &[u8], pages: &[Hash], trusted: &[NoteKey]) -> Vec<String> {
        let mut wrong = Vec::new();
        if self.format != FORMAT {
            wrong.push(format!(
                "the report's page digests are in the format '{}', and this verifier reads \
                 '{FORMAT}'",
                self.format
            ));
            return wrong;
        }
        let signed: Option<Vec<Hash>> = self.pages.iter().map(|p| decode(p)).collect();
        let (Some(signed), Some(bundle_signed)) = (signed, decode(&self.bundle_sha256)) else {
            wrong.push("the report's page digests are not hex SHA-256 digests".into());
            return wrong;
        };
        // The signature first: unsigned digests say nothing.
        let Some(key) = trusted.iter().find(|k| hex(&k.key_id()) == self.key) else {
            wrong.push(format!(
                "the report's page digests are signed with key id {}, not with a trusted key",
                self.key
            ));
            return wrong;
        };
        let sig = STANDARD
            .decode(&self.signature)
            .ok()
            .and_then(|s| <[u8; 64]>::try_from(s.as_slice()).ok())
            .map(|b| Signature::from_bytes(&b));
        let good = sig.is_some_and(|s| {
            key.key
                .verify_strict(&message(&bundle_signed, &signed), &s)
                .is_ok()
        });
        if !good {
            wrong.push(
                "the report's page digests have a signature that does not verify: they were \
                 altered or forged"
                    .into(),
            );
            return wrong;
        }
        let attached: Hash = Sha256::digest(bundle).into();
        if attached != bundle_signed {
            wrong.push(
                "the report's pages were signed with another evidence bundle than the one \
                 attached"
                    .into(),
            );
        }
        for (i, (now, was)) in pages.iter().zip(&signed).enumerate() {
            if now != was {
                wrong.push(format!(
                    "page {} of the report was changed after it was made: its content no \
                     longer matches the digest signed with the evidence",
                    i + 1
                ));
            }
        }
        if pages.len() < signed.len() {
            let (a, b) = (pages.len() + 1, signed.len());
            wrong.push(if a == b {
                format!("page {a} of the report was removed")
            } else {
                format!("pages {a} to {b} of the report were removed")
            });
        } else if pages.len() > signed.len() {
            let (a, b) = (signed.len() + 1, pages.len());
            wrong.push(if a == b {
                format!("page {a} of the report was added after it was made")
            } else {
                format!("pages {a} to {b} of the report were added after it was made")
            });
        }
        wrong
    }
}

fn decode(s: &str) -> Option<Hash> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        let txt = std::str::from_utf8(chunk).ok()?;
        out[i] = u8::from_str_radix(txt, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    fn key() -> (SigningKey, NoteKey) {
        let sk = SigningKey::from_bytes(&[7; 32]);
        let nk = NoteKey::new("mandate/test", sk.verifying_key());
        (sk, nk)
    }

    #[test]
    fn signed_pages_verify_and_each_change_is_named_by_page() {
        let (sk, nk) = key();
        let pages = [
            page_digest(b"one"),
            page_digest(b"two"),
            page_digest(b"three"),
        ];
        let m = Manifest::sign(b"bundle", &pages, "mandate/test", &sk);
        assert!(
            m.check(b"bundle", &pages, std::slice::from_ref(&nk))
                .is_empty()
        );

        let mut edited = pages;
        edited[1] = page_digest(b"TWO");
        let wrong = m.check(b"bundle", &edited, std::slice::from_ref(&nk));
        assert_eq!(wrong.len(), 1);
        assert!(
            wrong[0].starts_with("page 2 of the report was changed"),
            "{wrong:?}"
        );

        let wrong = m.check(b"bundle", &pages[..2], std::slice::from_ref(&nk));
        assert_eq!(wrong, ["page 3 of the report was removed"]);

        let wrong = m.check(b"other", &pages, std::slice::from_ref(&nk));
        assert!(wrong[0].contains("another evidence bundle"), "{wrong:?}");

        let mut forged = m.clone();
        forged.pages[0] = hex(&page_digest(b"forged"));
        let wrong = forged.check(b"bundle", &pages, std::slice::from_ref(&nk));
        assert!(wrong[0].contains("does not verify"), "{wrong:?}");

        let other = NoteKey::new(
            "mandate/test",
            SigningKey::from_bytes(&[8; 32]).verifying_key(),
        );
        let wrong = m.check(b"bundle", &pages, &[other]);
        assert!(wrong[0].contains("not with a trusted key"), "{wrong:?}");
    }
}
