//! What the report says, read back out of the PDF with poppler's `pdftotext` (an independent
//! reader, as an auditor's tools would be): the organisation and the people, custody of
//! secrets without their values, access changes with who made them, approvals and
//! attestations when recorded, the key anchor and the verification wording, the control
//! mapping, and a year of events in a bounded number of pages.

use std::time::Instant;

use mandate_core::audit::{Actor, Decision, NewEvent, Target};

use super::*;

/// The PDF's text as poppler reads it, every run of white space made one space.
fn pdf_text(pdf: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.pdf");
    std::fs::write(&path, pdf).unwrap();
    let out = std::process::Command::new("pdftotext")
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils) reads the report");
    assert!(out.status.success(), "pdftotext failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn pages(pdf: &[u8]) -> usize {
    lopdf::Document::load_mem(pdf).unwrap().get_pages().len()
}

fn sample_report(events: u64) -> (tempfile::TempDir, Mandate, Built, String) {
    let dir = tempfile::tempdir().unwrap();
    let (m, _clock) = sample::installation(dir.path(), events).unwrap();
    m.set_organisation_name("Example Robotics Ltd").unwrap();
    let built = build(&m, &PdfOptions::default(), &mut |_, _| {}).unwrap();
    let text = pdf_text(&built.pdf);
    (dir, m, built, text)
}

#[test]
fn the_report_names_the_organisation_and_the_people_who_acted() {
    let (_dir, _m, _built, text) = sample_report(200);
    assert!(text.contains("Example Robotics Ltd"), "{text}");
    assert!(text.contains("founder (founder@example.com)"));
    // ana withdrew a scope; the access changes name her, not "the app".
    assert!(text.contains("member ana"), "{text}");
    assert!(!text.contains("the app"));
}

/// Custody of secrets: when each was stored, replaced and handed to a program, by whom; the
/// values never appear, in the pages or in the attachment.
#[test]
fn custody_of_secrets_is_shown_without_their_values() {
    let (_dir, _m, built, text) = sample_report(200);
    for phrase in [
        "Connections and secrets",
        "https://api.github.com",
        "held by Mandate",
        "secret stored in the OS keychain",
        "secret replaced in the OS keychain",
        "handed to a program as $BILLING_API_KEY, started by founder",
    ] {
        assert!(text.contains(phrase), "{phrase:?} missing from: {text}");
    }
    for secret in [
        "ghp_sample_not_a_real_token",
        "ghp_sample_rotated_token",
        "bk_sample_billing_key",
    ] {
        assert!(!text.contains(secret), "the pages show a secret");
        let bundle = String::from_utf8_lossy(&built.data.bundle);
        assert!(!bundle.contains(secret), "the bundle holds a secret");
        let raw = String::from_utf8_lossy(&built.pdf);
        assert!(!raw.contains(secret), "the PDF bytes hold a secret");
    }
}

#[test]
fn access_changes_say_what_was_granted_and_withdrawn_and_by_whom() {
    let (_dir, _m, _built, text) = sample_report(200);
    assert!(text.contains("Access changes"));
    assert!(
        text.contains("registered; granted github:repo.read, github:issues.write"),
        "{text}"
    );
    assert!(text.contains("withdrew github:issues.write"), "{text}");
    assert!(text.contains("suspended: no tokens until resumed (owner on leave)"));
}

/// Every control the issue names is mapped, each with what it does not show.
#[test]
fn the_control_mapping_covers_soc2_and_iso_with_what_it_does_not_show() {
    let (_dir, _m, _built, text) = sample_report(60);
    let ids = [
        "SOC 2 CC6.1",
        "SOC 2 CC6.2",
        "SOC 2 CC6.3",
        "SOC 2 CC7.2",
        "SOC 2 CC8.1",
        "ISO 27001:2022 A.5.15",
        "ISO 27001:2022 A.5.16",
        "ISO 27001:2022 A.5.17",
        "ISO 27001:2022 A.5.18",
        "ISO 27001:2022 A.8.15",
        "ISO 27001:2022 A.8.16",
    ];
    for id in ids {
        assert!(text.contains(id), "{id} is not mapped");
    }
    assert_eq!(text.matches("DOES NOT SHOW").count(), ids.len());
    assert_eq!(controls::CONTROLS.len(), ids.len());
    // Each row points at sections the report has.
    for c in controls::CONTROLS {
        for s in c.sections.split("; ") {
            let heading = s.split(" (").next().unwrap();
            // Approvals have a section only when the events hold some.
            if heading != "the attached bundle" && !heading.ends_with(", when used") {
                assert!(text.contains(heading), "{}: no section {heading:?}", c.id);
            }
        }
    }
}

#[test]
fn passed_is_called_the_generators_claim_and_the_key_anchor_is_explained() {
    let (_dir, _m, built, text) = sample_report(60);
    assert!(text.contains("Verification: PASSED"));
    assert!(text.contains("the generator's own claim"), "{text}");
    assert!(text.contains("It is a claim, not a proof"));
    assert!(text.contains("mandate-verify"));
    assert!(text.contains("mandate jwks export"));
    let fp = &built.data.key_fingerprint;
    assert!(fp.starts_with("SHA256:"));
    assert!(text.contains(&format!("--key {fp}")), "{text}");
    assert!(text.contains("issuer key created"));
}

/// The trust branch's event kinds: a report shows them when they are there, and says nothing
/// about them when they are not.
#[test]
fn approvals_and_attestations_appear_only_when_recorded() {
    let intro = "Requests that needed a person's approval";
    let dir = tempfile::tempdir().unwrap();
    let (m, _clock) = sample::installation(dir.path(), 40).unwrap();
    let built = build(&m, &PdfOptions::default(), &mut |_, _| {}).unwrap();
    assert!(!pdf_text(&built.pdf).contains(intro));
    let bot = m.get_agent("triage-bot").unwrap();
    let agent = Actor::agent(bot.id.as_str(), "triage-bot");
    let ana = m.member_actor("ana").unwrap();
    m.record_many(vec![
        NewEvent::new(&agent, "approval.requested", Decision::Allow)
            .agent(bot.id.as_str())
            .target(Target::new("connection", "c1", "github"))
            .reason("close 40 stale issues")
            .details(serde_json::json!({"approval": "ap1", "action": "issues.write"})),
        NewEvent::new(&ana, "approval.approved", Decision::Allow)
            .agent(bot.id.as_str())
            .details(serde_json::json!({
                "approval": "ap1",
                "valid_until": "2026-11-30T13:00:00.000000Z",
            })),
        NewEvent::new(&ana, "attestation.added", Decision::Allow)
            .agent(bot.id.as_str())
            .target(Target::new("agent", bot.id.as_str(), "triage-bot"))
            .details(serde_json::json!({
                "attestor": "ci-provenance",
                "result": "pass",
                "expires": "2026-12-01T00:00:00.000000Z",
            })),
    ])
    .unwrap();
    m.set_actor(ana);
    m.set_trust_override(
        "triage-bot",
        Some(mandate_core::model::TrustState::Trusted),
        "reviewed its last 30 days",
    )
    .unwrap();
    let built = build(&m, &PdfOptions::default(), &mut |_, _| {}).unwrap();
    let text = pdf_text(&built.pdf);
    for phrase in [
        intro,
        "trust set by hand to TRUSTED: reviewed its last 30 days",
        "approval requested for issues.write: close 40 stale issues",
        "approved until 2026-11-30 13:00:00 UTC",
        "attestation by ci-provenance: pass, valid until 2026-12-01 00:00:00",
    ] {
        assert!(text.contains(phrase), "{phrase:?} missing from: {text}");
    }
}

/// A year of an active team's events (100,000) stays a document someone reads: summaries
/// per agent and per month, the full list left to the attachment, and a bounded page count.
#[test]
fn a_year_of_100k_events_is_summarised_in_a_bounded_number_of_pages() {
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let (m, _clock) = sample::installation_over(dir.path(), 100_000, 365).unwrap();
    let made = t.elapsed();
    let t = Instant::now();
    let built = build(&m, &PdfOptions::default(), &mut |_, _| {}).unwrap();
    let rendered = t.elapsed();
    assert!(built.data.events.len() > 100_000);
    assert!(built.data.bundle_check.ok());
    let n = pages(&built.pdf);
    eprintln!(
        "100k events over a year: {n} pages, {} bytes; installation {made:?}, report {rendered:?}",
        built.pdf.len()
    );
    // The bound the docs state (docs/REPORT.md): cover, how to verify, summary, two pages an
    // agent at most, access, custody, controls and a summarised appendix.
    assert!(n <= 20, "{n} pages");
    let text = pdf_text(&built.pdf);
    for phrase in [
        "Appendix: the events, summarised",
        "Events per month",
        "Denials by reason",
        "Changes made by people",
        "Hand-overs and broker use per month",
        "latest 25 events",
        "2026-10",
        "2027-09",
    ] {
        assert!(text.contains(phrase), "{phrase:?} missing");
    }
    // The bundle still carries every event.
    assert!(extract_bundle(&built.pdf).unwrap() == built.data.bundle);
    if let Some(out) = std::env::var_os("MANDATE_REPORT_YEAR_OUT") {
        std::fs::write(out, &built.pdf).unwrap();
    }
}
