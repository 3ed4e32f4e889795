//! Masking the server's own credentials in what it sends the client.
//!
//! A server started with a secret in its environment can echo it (a debug tool that prints
//! the environment, an error message quoting a header). Every message the gateway relays to
//! the client is searched for each secret, as written and as JSON would escape it inside a
//! string, and each occurrence is overwritten with `*` of the same length, so the JSON stays
//! valid and lengths stay right. Secrets shorter than [`MIN_LEN`] bytes are not searched for
//! (they would match innocent text).
//!
//! What it is not: a guarantee against a server that encodes its secret (base64, reversed,
//! split across messages). The credential is kept out of what the client is given; a hostile
//! server is still a hostile server.

use mandate_core::secret::Sensitive;

/// Shortest secret that is masked.
pub const MIN_LEN: usize = 8;

/// The spellings to mask.
#[derive(Debug, Default)]
pub struct Needles(Vec<Sensitive<String>>);

impl Needles {
    /// Every spelling of each secret: raw, and JSON-escaped when that differs.
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a Sensitive<String>>) -> Self {
        let mut out: Vec<Sensitive<String>> = Vec::new();
        for s in secrets {
            let raw = s.expose();
            if raw.len() < MIN_LEN {
                continue;
            }
            let escaped = serde_json::to_string(raw).unwrap_or_default();
            let escaped = escaped
                .strip_prefix('"')
                .and_then(|e| e.strip_suffix('"'))
                .unwrap_or_default()
                .to_string();
            out.push(Sensitive::new(raw.clone()));
            if escaped != *raw && escaped.len() >= MIN_LEN {
                out.push(Sensitive::new(escaped));
            }
        }
        Needles(out)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Overwrite every occurrence in `text`; whether anything was masked.
    pub fn mask(&self, text: &mut String) -> bool {
        let mut hit = false;
        for n in &self.0 {
            let n = n.expose();
            if text.contains(n.as_str()) {
                *text = text.replace(n.as_str(), &"*".repeat(n.len()));
                hit = true;
            }
        }
        hit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_raw_and_json_escaped() {
        let a = Sensitive::new("ghp_0123456789abcdef".to_string());
        let b = Sensitive::new("pa\"ss\\word-xyz".to_string());
        let short = Sensitive::new("abc".to_string());
        let n = Needles::new([&a, &b, &short]);
        let mut t = r#"{"text":"token=ghp_0123456789abcdef pw=pa\"ss\\word-xyz abc"}"#.to_string();
        let before = t.len();
        assert!(n.mask(&mut t));
        assert_eq!(t.len(), before);
        assert!(!t.contains("ghp_") && !t.contains("word-xyz"), "{t}");
        assert!(t.contains(" abc"), "short secrets are left alone");
        assert!(serde_json::from_str::<serde_json::Value>(&t).is_ok());
    }
}
