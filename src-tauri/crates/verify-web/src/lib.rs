//! The verifier page's engine: the audit format crate's verifier, compiled to WebAssembly and
//! called from the page's few lines of JavaScript through wasm-bindgen.
//!
//! The page hands it a dropped file in chunks ([`Verifier::feed`]), so a bundle of any size is
//! verified in one pass with memory that does not grow with it; a report (PDF) is gathered
//! whole and its attachment found the way every verifier finds it. The verdict is the same
//! [`VerifyReport`] the CLI prints, as JSON with the same text (`to_text`).
//!
//! What it is not: a second implementation. There is no verification logic here, only the
//! door; and it never touches the network (the page makes no request at all).

use mandate_audit_format::pdf::check_report;
use mandate_audit_format::verify::{BundleCheck, BundleOptions, PAGES_UNBOUND, VerifyReport};
use serde::Serialize;
use wasm_bindgen::prelude::wasm_bindgen;

/// What the page shows: the verdict, its headline, the CLI's text and one-line summary, and the
/// report.
#[derive(Debug, Serialize)]
pub struct Verdict {
    pub ok: bool,
    /// The first line of `text`: `OK:` or `FAILED:`, and for a report whose pages are not bound
    /// to its evidence, that it verified its evidence only.
    pub headline: String,
    /// Verified, but a report made before page digests: its pages may have been edited.
    pub evidence_only: bool,
    /// The same lines `mandate audit verify` and `mandate-verify` print.
    pub text: String,
    /// The main problem and what to do; for a pass of the evidence only, why the pages cannot
    /// be relied on; empty otherwise.
    pub summary: String,
    pub report: VerifyReport,
}

impl Verdict {
    fn new(report: VerifyReport, what: &str) -> Self {
        let summary = if report.evidence_only() {
            // The note as a sentence for the headline's box.
            let why = PAGES_UNBOUND.trim_start_matches("pages unbound: ");
            format!("Its pages are not bound to the evidence: {why}.")
        } else {
            report.summary().unwrap_or_default()
        };
        Verdict {
            ok: report.ok(),
            headline: report.headline(what),
            evidence_only: report.evidence_only(),
            text: report.to_text(what),
            summary,
            report,
        }
    }

    /// A failure before any verification (the PDF holds no readable bundle).
    fn refused(what: &str, why: String) -> Self {
        let mut report = VerifyReport::new("bundle", "");
        report.problem(
            mandate_audit_format::verify::ProblemKind::Malformed,
            None,
            why,
        );
        Verdict::new(report, what)
    }

    fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!(
                r#"{{"ok":false,"headline":"FAILED: could not show the result: {e}","text":"","summary":""}}"#
            )
        })
    }
}

/// One verification of one file, fed in order.
#[wasm_bindgen]
#[derive(Debug)]
pub struct Verifier {
    check: Option<BundleCheck>,
    /// A report is gathered whole (its attachment is found through the PDF's structure).
    pdf: Option<Vec<u8>>,
    started: bool,
    keys: Vec<String>,
}

impl Default for Verifier {
    fn default() -> Self {
        Self::new(String::new())
    }
}

#[wasm_bindgen]
impl Verifier {
    /// A verifier that trusts only `keys` (fingerprints or verifier keys, one per line), or,
    /// when none are given, the keys the file lists (whose fingerprints the result shows).
    #[wasm_bindgen(constructor)]
    pub fn new(keys: String) -> Verifier {
        let keys: Vec<String> = keys
            .lines()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_string)
            .collect();
        Verifier {
            check: Some(BundleCheck::new(BundleOptions {
                pinned_keys: keys.clone(),
                seen_checkpoints: Vec::new(),
                witnesses: Vec::new(),
            })),
            pdf: None,
            started: false,
            keys,
        }
    }

    /// The file's next bytes.
    pub fn feed(&mut self, chunk: &[u8]) {
        if !self.started {
            self.started = true;
            if chunk.starts_with(b"%PDF-") {
                self.pdf = Some(Vec::new());
            }
        }
        match (&mut self.pdf, &mut self.check) {
            (Some(p), _) => p.extend_from_slice(chunk),
            (None, Some(c)) => c.feed(chunk),
            (None, None) => {}
        }
    }

    /// The verdict as JSON (`ok`, `headline`, `evidence_only`, `text`, `summary`, `report`); `name` is the file's name.
    pub fn finish(&mut self, name: &str) -> String {
        let verdict = match self.pdf.take() {
            Some(pdf) => {
                let what = format!("the report {name}");
                let opts = BundleOptions {
                    pinned_keys: self.keys.clone(),
                    seen_checkpoints: Vec::new(),
                    witnesses: Vec::new(),
                };
                match check_report(&pdf, &opts) {
                    Ok(report) => Verdict::new(report, &what),
                    Err(e) => Verdict::refused(&what, e.to_string()),
                }
            }
            None => {
                let what = format!("the bundle {name}");
                match self.check.take() {
                    Some(c) => Verdict::new(c.finish(), &what),
                    None => Verdict::refused(&what, "this file was already verified".into()),
                }
            }
        };
        verdict.json()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_a_bundle_fails_with_the_clis_reason() {
        let mut v = Verifier::new(String::new());
        v.feed(b"hello\n");
        let out: serde_json::Value = serde_json::from_str(&v.finish("x.txt")).unwrap();
        assert_eq!(out["ok"], false);
        assert!(
            out["text"]
                .as_str()
                .unwrap()
                .starts_with("FAILED: the bundle x.txt did not verify."),
            "{out}"
        );
        assert!(
            out["summary"]
                .as_str()
                .unwrap()
                .contains("not a Mandate evidence bundle"),
            "{out}"
        );
    }

    /// A report made before page digests verifies its evidence only: the page's headline says
    /// so (not only a detail line), and its summary says why the pages cannot be relied on.
    #[test]
    fn a_report_from_before_page_digests_passes_as_evidence_only_in_the_headline() {
        let vectors = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../docs/audit-vectors/cases/"
        );
        for name in ["pdf-report.pdf", "pdf-pages-edited.pdf"] {
            let bytes = std::fs::read(format!("{vectors}{name}")).unwrap();
            let mut v = Verifier::new(String::new());
            for chunk in bytes.chunks(1000) {
                v.feed(chunk);
            }
            let out: serde_json::Value = serde_json::from_str(&v.finish(name)).unwrap();
            assert_eq!(out["ok"], true, "{name}: {out}");
            assert_eq!(out["evidence_only"], true, "{name}");
            assert_eq!(
                out["headline"],
                format!(
                    "OK: the report {name} verified, its evidence only: its pages are not \
                     bound to it (see the note)."
                ),
            );
            assert!(
                out["text"]
                    .as_str()
                    .unwrap()
                    .starts_with(out["headline"].as_str().unwrap())
            );
            let summary = out["summary"].as_str().unwrap();
            assert!(
                summary.starts_with("Its pages are not bound to the evidence: this report was made before Mandate signed its pages"),
                "{summary}"
            );
        }
        // A bundle is no report: a plain pass.
        let bundle = std::fs::read(format!("{vectors}bundle-of-3.jsonl")).unwrap();
        let mut v = Verifier::new(String::new());
        v.feed(&bundle);
        let out: serde_json::Value = serde_json::from_str(&v.finish("b.jsonl")).unwrap();
        assert_eq!(out["headline"], "OK: the bundle b.jsonl verified.");
        assert_eq!(out["evidence_only"], false);
        assert_eq!(out["summary"], "");
    }
}
