//! Finding the evidence bundle attached to a Mandate audit report (a PDF), as
//! `docs/AUDIT_FORMAT.md` §6 says to find it, with lopdf (a maintained PDF reader).
//!
//! It lives here, beside verification, so that every verifier (the CLI, `mandate-verify` and
//! the verifier page) finds the same attachment the same way.
//!
//! What it is not: a PDF writer (`mandate-report` makes the reports), or a check of the pages.

/// The attachment's name in every Mandate report.
pub const ATTACHMENT_NAME: &str = "mandate-evidence.jsonl";

/// Why no bundle could be taken from a PDF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachmentError {
    /// The file is not a PDF, or not one that can be read.
    NotPdf(String),
    /// The PDF has no evidence bundle attached.
    NoAttachment,
    /// The attachment is there but cannot be read back.
    Damaged(String),
}

impl std::fmt::Display for AttachmentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttachmentError::NotPdf(why) => write!(f, "this is not a readable PDF: {why}"),
            AttachmentError::NoAttachment => write!(
                f,
                "the PDF has no attached evidence bundle ({ATTACHMENT_NAME}): it is not a \
                 Mandate audit report, or the attachment was removed"
            ),
            AttachmentError::Damaged(why) => {
                write!(f, "the PDF's attached evidence bundle is damaged: {why}")
            }
        }
    }
}

impl std::error::Error for AttachmentError {}

/// The attached evidence bundle of a Mandate report (or any PDF that attaches one under
/// [`ATTACHMENT_NAME`]), as `docs/AUDIT_FORMAT.md` §6 says to find it: the PDF as its last
/// incremental update leaves it; exactly one entry of the `/Names /EmbeddedFiles` name tree
/// whose key is the bytes of [`ATTACHMENT_NAME`]; its file specification's `/EF /F` stream, or
/// `/EF /UF` when there is no `/F` (both, when present, must be the same stream); decoded
/// with its filters, and as long as its `/Params /Size` says, when it says. Two entries of
/// that name are refused: a reader could not tell which one a viewer shows.
pub fn extract_bundle(pdf: &[u8]) -> Result<Vec<u8>, AttachmentError> {
    attachment(&load(pdf)?, ATTACHMENT_NAME)
}

/// Read a PDF (the whole file, as its last incremental update leaves it).
fn load(pdf: &[u8]) -> Result<lopdf::Document, AttachmentError> {
    if !pdf.starts_with(b"%PDF-") {
        return Err(AttachmentError::NotPdf(
            "it does not start with %PDF-".into(),
        ));
    }
    lopdf::Document::load_mem(pdf).map_err(|e| AttachmentError::NotPdf(e.to_string()))
}

/// The attachment named `name` (see [`extract_bundle`] for how it is found).
fn attachment(doc: &lopdf::Document, name: &str) -> Result<Vec<u8>, AttachmentError> {
    use lopdf::Object;
    let deref = |o: &Object| -> Result<Object, AttachmentError> {
        match o {
            Object::Reference(id) => doc
                .get_object(*id)
                .cloned()
                .map_err(|e| AttachmentError::NotPdf(e.to_string())),
            other => Ok(other.clone()),
        }
    };
    let catalog = doc
        .catalog()
        .map_err(|e| AttachmentError::NotPdf(e.to_string()))?;
    let names = match catalog.get(b"Names") {
        Ok(n) => deref(n)?,
        Err(_) => return Err(AttachmentError::NoAttachment),
    };
    let Ok(names) = names.as_dict() else {
        return Err(AttachmentError::NoAttachment);
    };
    let Ok(ef) = names.get(b"EmbeddedFiles") else {
        return Err(AttachmentError::NoAttachment);
    };
    // Walk the whole name tree (Names arrays, possibly under Kids) and keep every match.
    let mut found: Vec<Object> = Vec::new();
    let mut stack = vec![deref(ef)?];
    let mut visited = 0usize;
    while let Some(node) = stack.pop() {
        visited += 1;
        if visited > 100_000 {
            return Err(AttachmentError::NotPdf("its name tree does not end".into()));
        }
        let Ok(d) = node.as_dict() else { continue };
        if let Ok(kids) = d.get(b"Kids").and_then(|k| k.as_array()) {
            for k in kids {
                stack.push(deref(k)?);
            }
        }
        let Ok(arr) = d.get(b"Names").and_then(|n| n.as_array()) else {
            continue;
        };
        for pair in arr.chunks(2) {
            let [key, spec] = pair else { continue };
            let key = deref(key)?;
            if key.as_str().ok() == Some(name.as_bytes()) {
                found.push(spec.clone());
            }
        }
    }
    let spec = match found.as_slice() {
        [] => return Err(AttachmentError::NoAttachment),
        [one] => deref(one)?,
        more => {
            return Err(AttachmentError::Damaged(format!(
                "it has {} attachments named {name}, and a report has one: which one a PDF \
                 viewer shows cannot be told",
                more.len()
            )));
        }
    };
    let spec = spec
        .as_dict()
        .map_err(|_| AttachmentError::Damaged("the file spec is not a dictionary".into()))?;
    let ef = deref(
        spec.get(b"EF")
            .map_err(|_| AttachmentError::Damaged("the file spec has no /EF".into()))?,
    )?;
    let ef = ef
        .as_dict()
        .map_err(|_| AttachmentError::Damaged("/EF is not a dictionary".into()))?;
    let stream_ref = match (ef.get(b"F").ok(), ef.get(b"UF").ok()) {
        (Some(f), Some(uf)) if f != uf => {
            return Err(AttachmentError::Damaged(
                "its /EF names two different file streams (/F and /UF)".into(),
            ));
        }
        (Some(f), _) | (None, Some(f)) => f,
        (None, None) => {
            return Err(AttachmentError::Damaged("/EF has no file stream".into()));
        }
    };
    let f = deref(stream_ref)?;
    let stream = f
        .as_stream()
        .map_err(|_| AttachmentError::Damaged("the attachment is not a stream".into()))?;
    let bytes = if stream.dict.get(b"Filter").is_ok() {
        stream
            .decompressed_content()
            .map_err(|e| AttachmentError::Damaged(format!("it cannot be decompressed ({e})")))?
    } else {
        stream.content.clone()
    };
    if let Ok(size) = stream.dict.get(b"Params").and_then(|p| match p {
        Object::Dictionary(d) => d.get(b"Size").and_then(|s| s.as_i64()),
        _ => Err(lopdf::Error::DictKey("Size".into())),
    }) && size != bytes.len() as i64
    {
        return Err(AttachmentError::Damaged(format!(
            "it is {} bytes long but the PDF says {size}",
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// The digest of each page's content (its content streams, decoded and concatenated), first
/// page first, as [`crate::pages`] signs them.
pub fn page_digests(pdf: &[u8]) -> Result<Vec<crate::merkle::Hash>, AttachmentError> {
    digests_of(&load(pdf)?)
}

/// At most this much decoded content per page: a report's pages hold a few kilobytes, so a
/// page that inflates beyond this is a decompression bomb, not a report.
const MAX_PAGE_CONTENT: usize = 64 << 20;

fn digests_of(doc: &lopdf::Document) -> Result<Vec<crate::merkle::Hash>, AttachmentError> {
    let mut out = Vec::new();
    for (n, id) in doc.get_pages() {
        let content = doc
            .get_page_content_with_limit(id, MAX_PAGE_CONTENT)
            .map_err(|e| AttachmentError::NotPdf(format!("page {n} cannot be read ({e})")))?;
        out.push(crate::pages::page_digest(&content));
    }
    Ok(out)
}

/// Verify a report: its attached evidence bundle, and its pages against the page digests
/// signed with it ([`crate::pages`]), with the same options as a bundle. A page that was
/// changed, removed or added is a problem naming the page. `Err` when the PDF holds no
/// readable bundle at all.
pub fn check_report(
    pdf: &[u8],
    opts: &crate::verify::BundleOptions,
) -> Result<crate::verify::VerifyReport, AttachmentError> {
    use crate::verify::{BundleCheck, ProblemKind};
    let doc = load(pdf)?;
    let bundle = attachment(&doc, ATTACHMENT_NAME)?;
    let mut check = BundleCheck::new(opts.clone());
    check.feed(&bundle);
    let trusted = check.trusted().to_vec();
    let mut report = check.finish();
    let manifest = match attachment(&doc, crate::pages::ATTACHMENT_NAME) {
        Ok(bytes) => serde_json::from_slice::<crate::pages::Manifest>(&bytes).map_err(|e| {
            format!(
                "the report's page digests ({}) cannot be read ({e})",
                crate::pages::ATTACHMENT_NAME
            )
        }),
        Err(AttachmentError::NoAttachment) => {
            // A report from before page digests: the bundle is what verifies, and the verdict
            // says its pages are unbound (AUDIT_FORMAT §6), never a silent pass.
            report.notes.push(crate::verify::PAGES_UNBOUND.into());
            return Ok(report);
        }
        Err(e) => Err(e.to_string()),
    };
    let wrong = match manifest {
        Err(why) => vec![why],
        Ok(m) => m.check(&bundle, &digests_of(&doc)?, &trusted),
    };
    for why in wrong {
        report.problem(ProblemKind::Edited, None, why);
    }
    if report.ok() {
        report
            .notes
            .push("every page of the report is the one signed with the evidence".into());
    }
    Ok(report)
}
