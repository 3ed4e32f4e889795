//! The PDF test vectors of `docs/AUDIT_FORMAT.md` §6 (how a verifier finds a report's
//! attached bundle), generated here and checked for drift and for their verdicts.
//!
//! This is the one place that builds `docs/audit-vectors/cases/pdf-*.pdf`: a real report
//! rendered around `cases/bundle-of-3.jsonl` (by [`render_without_verifier`]: the attached
//! verifier page is no part of the lookup rules), and copies of it with one thing
//! changed per lookup rule. `MANDATE_BLESS=1 cargo test -p mandate-report vectors` rewrites
//! them (after a change to how reports are rendered); without it the test fails when a
//! committed file differs from what the code produces. Their entries in `expected.json` (what
//! each is, and the problems every verifier must report) are made by `mandate-core`'s vectors,
//! which own that file; the test here checks that both name the same cases and that
//! [`extract_bundle`] and the bundle check give each its stated verdict.
//!
//! What it is not: a test of the report's layout. The pages are not covered by verification
//! (§6), and the vectors only need a report as Mandate writes it.

use std::collections::BTreeSet;
use std::path::PathBuf;

use lopdf::{Dictionary, Document, IncrementalDocument, Object, ObjectId, Stream};
use mandate_core::audit::AuditEvent;
use mandate_core::audit::bundle;
use mandate_core::audit::verify::{VerifyReport, check_bundle};

use super::*;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../docs/audit-vectors")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(dir().join(name)).unwrap_or_else(|e| panic!("docs/audit-vectors/{name}: {e}"))
}

/// What a report of `bundle` shows: everything comes from the bundle itself, at fixed times.
fn report_data(bundle_bytes: &[u8]) -> ReportData {
    let check = check_bundle(bundle_bytes, &Default::default());
    assert!(
        check.ok(),
        "the vectors' bundle does not verify: {:?}",
        check.problems
    );
    let parsed = bundle::parse(bundle_bytes).unwrap();
    let events: Vec<AuditEvent> = parsed
        .events
        .iter()
        .map(|e| serde_json::from_value(e.value.clone()).unwrap())
        .collect();
    let cp = check.newest_checkpoint.clone().unwrap();
    let agents: Vec<AgentInfo> = events
        .iter()
        .filter(|e| e.action == "agent.created")
        .map(|e| AgentInfo {
            id: e.agent.clone().unwrap_or_default(),
            name: e
                .target
                .as_ref()
                .map(|t| t.name.clone())
                .unwrap_or_default(),
            purpose: e.details["purpose"].as_str().unwrap_or_default().into(),
            owner: Some(e.actor.name.clone()),
            status: "active".into(),
            status_reason: None,
            trust: "trusted".into(),
            scopes: e.details["scopes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect(),
            created: e.time.get(..10).unwrap_or_default().into(),
        })
        .collect();
    let people = people_of(&[], &agents, &events);
    let day = |t: &str| t.get(..16).unwrap_or_default().replace('T', " ") + " UTC";
    ReportData {
        organisation: "Example Ltd (test vector)".into(),
        generated: DateTime::parse_from_rfc3339(&parsed.header.generated)
            .unwrap()
            .with_timezone(&Utc),
        scope: "the whole audit log".into(),
        period: (
            day(&events.first().unwrap().time),
            day(&events.last().unwrap().time),
        ),
        origin: cp.origin.clone(),
        checkpoint_size: cp.size,
        checkpoint_root: cp.root.clone(),
        checkpoint_head: cp.chain_head.clone(),
        checkpoint_time: cp.time.clone(),
        key_fingerprint: cp.key_fingerprint.clone(),
        bundle_check: check,
        store_check: None,
        owners: agents.iter().filter_map(|a| a.owner.clone()).collect(),
        agents,
        connections: events
            .iter()
            .filter(|e| e.action == "connection.added")
            .map(|e| ConnectionInfo {
                name: e
                    .target
                    .as_ref()
                    .map(|t| t.name.clone())
                    .unwrap_or_default(),
                address: e.details["base_url"].as_str().unwrap_or_default().into(),
                ..Default::default()
            })
            .collect(),
        people,
        witnesses: Vec::new(),
        events,
        bundle: bundle_bytes.to_vec(),
    }
}

/// Apply `f` to every dictionary in `o`, nested ones and stream dictionaries included.
fn visit(o: &mut Object, f: &mut dyn FnMut(&mut Dictionary)) {
    match o {
        Object::Dictionary(d) => {
            f(d);
            for (_, v) in d.iter_mut() {
                visit(v, f);
            }
        }
        Object::Array(a) => a.iter_mut().for_each(|v| visit(v, f)),
        Object::Stream(s) => f(&mut s.dict),
        _ => {}
    }
}

/// Apply `f` to every dictionary of the objects `ids`; how many times `f` said it changed one.
fn each_dict(
    doc: &mut Document,
    ids: &[ObjectId],
    f: &mut dyn FnMut(&mut Dictionary) -> bool,
) -> usize {
    let mut changed = 0;
    for id in ids {
        if let Some(o) = doc.objects.get_mut(id) {
            visit(o, &mut |d| {
                if f(d) {
                    changed += 1;
                }
            });
        }
    }
    changed
}

fn all_ids(doc: &Document) -> Vec<ObjectId> {
    doc.objects.keys().copied().collect()
}

/// Is `d` the name-tree node that lists the attachment?
fn is_tree_node(d: &Dictionary) -> bool {
    d.get(b"Names").and_then(|n| n.as_array()).is_ok_and(|a| {
        a.iter()
            .any(|x| x.as_str().ok() == Some(ATTACHMENT_NAME.as_bytes()))
    })
}

/// The ids of the report's attachment: the object holding the name-tree node, the file
/// specification and the embedded file stream.
struct Ids {
    tree_holder: ObjectId,
    spec: ObjectId,
    stream: ObjectId,
}

fn ids(doc: &Document) -> Ids {
    let mut found = Vec::new();
    for (id, o) in &doc.objects {
        let mut o = o.clone();
        visit(&mut o, &mut |d| {
            if is_tree_node(d) {
                let names = d.get(b"Names").unwrap().as_array().unwrap();
                found.push((*id, names[1].as_reference().unwrap()));
            }
        });
    }
    let [(tree_holder, spec)] = found.as_slice() else {
        panic!("the report's name tree: {found:?}");
    };
    let spec_dict = doc.get_dictionary(*spec).unwrap();
    let ef = spec_dict.get(b"EF").unwrap().as_dict().unwrap();
    Ids {
        tree_holder: *tree_holder,
        spec: *spec,
        stream: ef.get(b"F").unwrap().as_reference().unwrap(),
    }
}

/// An uncompressed embedded file stream holding `bytes`, with its `/Params /Size`.
fn file_stream(bytes: &[u8]) -> Stream {
    let mut params = Dictionary::new();
    params.set("Size", bytes.len() as i64);
    let mut d = Dictionary::new();
    d.set("Type", Object::Name(b"EmbeddedFile".to_vec()));
    d.set("Params", params);
    Stream::new(d, bytes.to_vec())
}

/// A file specification of `ATTACHMENT_NAME` whose `/EF /F` is `stream`.
fn file_spec(stream: ObjectId) -> Dictionary {
    let mut ef = Dictionary::new();
    ef.set("F", stream);
    let mut spec = Dictionary::new();
    spec.set("Type", Object::Name(b"Filespec".to_vec()));
    spec.set("F", Object::string_literal(ATTACHMENT_NAME));
    spec.set("UF", Object::string_literal(ATTACHMENT_NAME));
    spec.set("EF", ef);
    spec
}

fn save(doc: &mut Document) -> Vec<u8> {
    let mut out = Vec::new();
    doc.save_to(&mut out).unwrap();
    out
}

/// `base` rewritten by lopdf with `edit` applied (a whole new file, no incremental update).
fn rewrite(base: &[u8], edit: &dyn Fn(&mut Document, &Ids)) -> Vec<u8> {
    let mut doc = Document::load_mem(base).unwrap();
    let ids = ids(&doc);
    edit(&mut doc, &ids);
    save(&mut doc)
}

/// `base` followed by an incremental update made by `edit` (ISO 32000 §7.5.6).
fn update(base: &[u8], edit: &dyn Fn(&mut IncrementalDocument, &Ids)) -> Vec<u8> {
    let mut inc: IncrementalDocument = base.try_into().unwrap();
    let ids = ids(inc.get_prev_documents());
    edit(&mut inc, &ids);
    let mut out = Vec::new();
    inc.save_to(&mut out).unwrap();
    assert!(
        out.starts_with(base),
        "an incremental update keeps the original bytes"
    );
    out
}

/// Every PDF vector, by case name, in the order of expected.json.
fn generate() -> Vec<(&'static str, Vec<u8>)> {
    let three = read("cases/bundle-of-3.jsonl");
    let five = read("bundle.jsonl");
    let after = read("cases/events-after-checkpoint.jsonl");
    let base = render_without_verifier(&report_data(&three), &mut |_, _| {}).unwrap();
    assert_eq!(extract_bundle(&base).unwrap(), three);
    let utf16: Vec<u8> = [0xfe, 0xff]
        .into_iter()
        .chain(ATTACHMENT_NAME.encode_utf16().flat_map(u16::to_be_bytes))
        .collect();
    vec![
        ("pdf-report", base.clone()),
        (
            "pdf-pages-edited",
            update(&base, &|inc, _| {
                let page = *inc.get_prev_documents().get_pages().get(&1).unwrap();
                let text = b"q 1 1 1 rg 0 0 2000 2000 re f Q \
                    BT /VectorFont 28 Tf 1 0 0 1 60 700 Tm 0 0 0 rg \
                    (This page was edited after export.) Tj ET"
                    .to_vec();
                let contents = inc
                    .new_document
                    .add_object(Stream::new(Dictionary::new(), text));
                let mut font = Dictionary::new();
                font.set("Type", Object::Name(b"Font".to_vec()));
                font.set("Subtype", Object::Name(b"Type1".to_vec()));
                font.set("BaseFont", Object::Name(b"Helvetica".to_vec()));
                let mut fonts = Dictionary::new();
                fonts.set("VectorFont", font);
                let mut resources = Dictionary::new();
                resources.set("Font", fonts);
                inc.opt_clone_object_to_new_document(page).unwrap();
                let page = inc.new_document.get_dictionary_mut(page).unwrap();
                page.set("Contents", contents);
                page.set("Resources", resources);
            }),
        ),
        (
            "pdf-no-attachment",
            rewrite(&base, &|doc, ids| {
                let n = each_dict(doc, &[ids.tree_holder], &mut |d| {
                    if is_tree_node(d) {
                        d.set("Names", Object::Array(Vec::new()));
                        return true;
                    }
                    false
                });
                assert_eq!(n, 1);
                // Nor any other reference to the file specification (the catalog's /AF).
                let every = all_ids(doc);
                each_dict(doc, &every, &mut |d| d.remove(b"AF").is_some());
                doc.objects.remove(&ids.spec);
                doc.objects.remove(&ids.stream);
            }),
        ),
        (
            "pdf-key-utf16",
            rewrite(&base, &|doc, ids| {
                let n = each_dict(doc, &[ids.tree_holder], &mut |d| {
                    if is_tree_node(d) {
                        let a = d.get_mut(b"Names").unwrap().as_array_mut().unwrap();
                        a[0] = Object::String(utf16.clone(), lopdf::StringFormat::Hexadecimal);
                        return true;
                    }
                    false
                });
                assert_eq!(n, 1);
            }),
        ),
        (
            "pdf-key-in-kids",
            rewrite(&base, &|doc, ids| {
                // The node's entries move to a child with /Limits; the node keeps /Kids only.
                let leaf = doc.new_object_id();
                let mut holder = doc.objects.get(&ids.tree_holder).unwrap().clone();
                let mut names = None;
                visit(&mut holder, &mut |d| {
                    if is_tree_node(d) {
                        names = d.remove(b"Names");
                        d.set("Kids", vec![Object::Reference(leaf)]);
                    }
                });
                let mut child = Dictionary::new();
                let key = || Object::string_literal(ATTACHMENT_NAME);
                child.set("Limits", vec![key(), key()]);
                child.set("Names", names.unwrap());
                doc.objects.insert(leaf, Object::Dictionary(child));
                doc.objects.insert(ids.tree_holder, holder);
            }),
        ),
        (
            "pdf-name-twice",
            rewrite(&base, &|doc, ids| {
                let other = doc.add_object(file_stream(&five));
                let spec = doc.add_object(file_spec(other));
                let n = each_dict(doc, &[ids.tree_holder], &mut |d| {
                    if is_tree_node(d) {
                        let a = d.get_mut(b"Names").unwrap().as_array_mut().unwrap();
                        a.push(Object::string_literal(ATTACHMENT_NAME));
                        a.push(Object::Reference(spec));
                        return true;
                    }
                    false
                });
                assert_eq!(n, 1);
            }),
        ),
        (
            "pdf-uf-only",
            rewrite(&base, &|doc, ids| {
                let spec = doc.get_dictionary_mut(ids.spec).unwrap();
                let ef = spec.get_mut(b"EF").unwrap().as_dict_mut().unwrap();
                let f = ef.remove(b"F").unwrap();
                ef.set("UF", f);
            }),
        ),
        (
            "pdf-f-uf-differ",
            rewrite(&base, &|doc, ids| {
                let other = doc.add_object(file_stream(&five));
                let spec = doc.get_dictionary_mut(ids.spec).unwrap();
                let ef = spec.get_mut(b"EF").unwrap().as_dict_mut().unwrap();
                ef.set("UF", other);
            }),
        ),
        (
            "pdf-size-mismatch",
            rewrite(&base, &|doc, ids| {
                let stream = doc
                    .get_object_mut(ids.stream)
                    .unwrap()
                    .as_stream_mut()
                    .unwrap();
                let size = three.len() as i64 + 1;
                match stream.dict.get_mut(b"Params") {
                    Ok(Object::Dictionary(p)) => p.set("Size", size),
                    _ => {
                        let mut p = Dictionary::new();
                        p.set("Size", size);
                        stream.dict.set("Params", p);
                    }
                }
            }),
        ),
        (
            "pdf-update-second-attachment",
            update(&base, &|inc, ids| {
                let other = inc.new_document.add_object(file_stream(&five));
                let spec = inc.new_document.add_object(file_spec(other));
                inc.opt_clone_object_to_new_document(ids.tree_holder)
                    .unwrap();
                let n = each_dict(&mut inc.new_document, &[ids.tree_holder], &mut |d| {
                    if is_tree_node(d) {
                        let a = d.get_mut(b"Names").unwrap().as_array_mut().unwrap();
                        a.push(Object::string_literal(ATTACHMENT_NAME));
                        a.push(Object::Reference(spec));
                        return true;
                    }
                    false
                });
                assert_eq!(n, 1);
            }),
        ),
        (
            "pdf-update-replaces-attachment",
            update(&base, &|inc, ids| {
                // The same object number, redefined: the last revision's stream is another
                // bundle.
                inc.new_document
                    .objects
                    .insert(ids.stream, Object::Stream(file_stream(&after)));
            }),
        ),
    ]
}

/// What `mandate audit verify FILE.pdf` checks (`pdf::check_report`: the attachment, and the
/// pages against their signed digests where the report has them), or one `malformed` problem
/// when no bundle can be found or read.
fn verify_pdf(pdf: &[u8]) -> VerifyReport {
    match mandate_core::audit::pdf::check_report(pdf, &Default::default()) {
        Ok(r) => r,
        Err(e) => VerifyReport::unreadable(e.to_string()),
    }
}

fn problem_set(r: &VerifyReport) -> BTreeSet<(String, Option<u64>)> {
    r.problems
        .iter()
        .map(|p| {
            let kind = serde_json::to_value(p.kind).unwrap();
            (kind.as_str().unwrap().to_string(), p.seq)
        })
        .collect()
}

#[test]
fn the_pdf_vectors_match_the_code_and_get_their_verdicts() {
    let bless = std::env::var("MANDATE_BLESS").as_deref() == Ok("1");
    let made = generate();
    for (name, bytes) in &made {
        let path = dir().join(format!("cases/{name}.pdf"));
        if bless {
            std::fs::write(&path, bytes).unwrap();
        }
        let on_disk = std::fs::read(&path).unwrap_or_default();
        assert!(
            &on_disk == bytes,
            "docs/audit-vectors/cases/{name}.pdf is stale: run MANDATE_BLESS=1 cargo test -p \
             mandate-report vectors"
        );
    }
    // expected.json (made by mandate-core) lists exactly these, each with its verdict.
    let expected: serde_json::Value = serde_json::from_slice(&read("expected.json")).unwrap();
    let cases: Vec<&serde_json::Value> = expected["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["file"].as_str().unwrap().ends_with(".pdf"))
        .collect();
    let listed: Vec<&str> = cases.iter().map(|c| c["name"].as_str().unwrap()).collect();
    let ours: Vec<&str> = made.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        listed, ours,
        "expected.json's PDF cases and this generator's"
    );
    for c in cases {
        let name = c["name"].as_str().unwrap();
        assert_eq!(c["file"], format!("cases/{name}.pdf"));
        let want: BTreeSet<(String, Option<u64>)> = c["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["kind"].as_str().unwrap().to_string(), p["seq"].as_u64()))
            .collect();
        let r = verify_pdf(&read(c["file"].as_str().unwrap()));
        assert_eq!(problem_set(&r), want, "{name}: {:#?}", r.problems);
    }
}

/// The updates are updates: each of those files begins with the whole valid report, so a
/// reader that stopped at the first revision would call them valid.
#[test]
fn the_pdf_update_vectors_begin_with_the_valid_report() {
    let made: std::collections::BTreeMap<&str, Vec<u8>> = generate().into_iter().collect();
    for name in [
        "pdf-pages-edited",
        "pdf-update-second-attachment",
        "pdf-update-replaces-attachment",
    ] {
        assert!(made[name].starts_with(&made["pdf-report"]), "{name}");
        assert!(made[name].len() > made["pdf-report"].len(), "{name}");
    }
    // The first revision alone verifies, and holds cases/bundle-of-3.jsonl.
    let first = &made["pdf-report"];
    assert_eq!(
        extract_bundle(first).unwrap(),
        read("cases/bundle-of-3.jsonl")
    );
    assert!(verify_pdf(first).ok());
    // These reports predate page digests: the edited page is not caught, and the verdict says
    // the pages are unbound instead of passing silently (AUDIT_FORMAT §6).
    let edited = verify_pdf(&made["pdf-pages-edited"]);
    assert!(edited.ok());
    assert!(
        edited
            .to_text("the report")
            .starts_with("OK: the report verified, its evidence only: its pages are not bound"),
        "{}",
        edited.to_text("the report")
    );
}

/// A report made now signs its pages: an update that rewrites one page's content fails,
/// naming that page, where the same edit to a report from before page digests only says the
/// pages are unbound (above).
#[test]
fn a_signed_report_whose_page_was_edited_fails_naming_the_page() {
    use mandate_core::audit::verify::ProblemKind;
    let dir = tempfile::tempdir().unwrap();
    let (m, _clock) = sample::installation(dir.path(), 40).unwrap();
    let built = build(&m, &PdfOptions::default(), &mut |_, _| {}).unwrap();
    assert!(verify_pdf(&built.pdf).ok());
    let mut inc: IncrementalDocument = built.pdf.as_slice().try_into().unwrap();
    let page = *inc.get_prev_documents().get_pages().get(&2).unwrap();
    let contents = inc.new_document.add_object(Stream::new(
        Dictionary::new(),
        b"BT /F1 12 Tf 60 700 Td (Verification: PASSED) Tj ET".to_vec(),
    ));
    inc.opt_clone_object_to_new_document(page).unwrap();
    inc.new_document
        .get_dictionary_mut(page)
        .unwrap()
        .set("Contents", contents);
    let mut edited = Vec::new();
    inc.save_to(&mut edited).unwrap();
    assert!(edited.starts_with(&built.pdf));
    let r = verify_pdf(&edited);
    assert!(!r.ok());
    assert!(
        r.problems.iter().any(|p| p.kind == ProblemKind::Edited
            && p.message.starts_with("page 2 of the report was changed")),
        "{:#?}",
        r.problems
    );
    assert!(
        r.to_text("the report")
            .starts_with("FAILED: the report did not verify.")
    );
}
