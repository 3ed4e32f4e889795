//! The due-diligence PDF: a readable account of the audit trail with the evidence bundle
//! attached, so `mandate audit verify report.pdf` checks the very document the reader holds.
//!
//! [`build`] exports (which signs a fresh checkpoint), verifies both the live store and the
//! bundle it is about to embed, and renders: a cover with the checkpoint, key fingerprint and
//! verification result; how to verify it; a summary with an activity chart; a section per
//! agent; access changes, approvals and attestations, connections and the custody of their
//! secrets; a page mapping the evidence to SOC 2 and ISO 27001 controls; an appendix of the
//! events (summarised for long trails; see docs/REPORT.md). [`render`] is the
//! pure part: the same [`ReportData`] always gives the same bytes (no clock, no random ids).
//! [`extract_bundle`] reads the attachment back out of any PDF.
//!
//! What it is not: the evidence itself. The PDF's text can be edited like any document; the
//! attached bundle is sealed with the issuer key and is what verification trusts.

mod content;
#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests: a failure is a failed test"
)]
mod content_tests;
mod controls;
mod layout;
#[doc(hidden)]
pub mod sample;
mod sections;
#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test-only generator: a failure is a failed test"
)]
mod vectors;

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use krilla::Document;
use krilla::embed::{AssociationKind, EmbeddedFile, MimeType};
use krilla::metadata::Metadata;
use mandate_core::Mandate;
use mandate_core::audit::verify::{self, BundleOptions, VerifyReport};
use mandate_core::audit::{AuditEvent, ExportSelection, bundle::BundleScope};
use mandate_core::model::Member;

/// The attachment's file name inside the PDF.
pub const ATTACHMENT_NAME: &str = "mandate-evidence.jsonl";

/// Why a report could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Core(#[from] mandate_core::Error),
    /// The PDF could not be produced.
    #[error("the PDF could not be produced: {0}")]
    Render(String),
    /// The file is not a PDF, or not one that can be read.
    #[error("this is not a readable PDF: {0}")]
    NotPdf(String),
    /// The PDF has no evidence bundle attached.
    #[error(
        "the PDF has no attached evidence bundle ({ATTACHMENT_NAME}): it is not a Mandate audit \
         report, or the attachment was removed"
    )]
    NoAttachment,
    /// The attachment is there but cannot be read back.
    #[error("the PDF's attached evidence bundle is damaged: {0}")]
    DamagedAttachment(String),
}

/// An agent as the report shows it.
#[derive(Debug, Clone)]
pub struct AgentInfo {
    pub id: String,
    pub name: String,
    pub purpose: String,
    pub owner: Option<String>,
    pub status: String,
    pub status_reason: Option<String>,
    pub trust: String,
    pub scopes: Vec<String>,
    pub created: String,
}

/// A connection as the report shows it: what exists and whether its secret is held, never the
/// secret itself.
#[derive(Debug, Clone, Default)]
pub struct ConnectionInfo {
    pub name: String,
    /// The base URL, or `urn:mandate:connection:NAME` for a database.
    pub address: String,
    /// Whether a secret is stored for it (in the OS keychain or the team server's sealed
    /// store).
    pub has_secret: bool,
    /// When the secret last changed, `YYYY-MM-DD HH:MM UTC`, if Mandate recorded it.
    pub secret_changed: Option<String>,
    /// Agents holding at least one scope on it.
    pub granted_to: Vec<String>,
}

/// A person the report names: a team member, or an OS login that chose no member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonInfo {
    /// "ann", or "OS user ann (no member chosen)".
    pub name: String,
    pub email: Option<String>,
    /// Changes they made in the events of this report.
    pub changes: usize,
    /// Agents in the report they own.
    pub owns: Vec<String>,
    /// Requests agents made on their behalf (delegations) in the events of this report.
    pub acted_for: usize,
}

/// The people of a report: every member who made a change, owns an agent in it or was acted
/// for, and every OS login that made changes without choosing a member; most changes first.
fn people_of(members: &[Member], agents: &[AgentInfo], events: &[AuditEvent]) -> Vec<PersonInfo> {
    use mandate_core::audit::actor_kind;
    use std::collections::BTreeMap;
    let mut changes: BTreeMap<(bool, String), usize> = BTreeMap::new();
    let mut acted_for: BTreeMap<String, usize> = BTreeMap::new();
    for e in events {
        match e.actor.kind.as_str() {
            actor_kind::MEMBER => *changes.entry((true, e.actor.id.clone())).or_default() += 1,
            actor_kind::OS_USER => *changes.entry((false, e.actor.name.clone())).or_default() += 1,
            _ => {}
        }
        if let Some(b) = e
            .on_behalf_of
            .as_ref()
            .filter(|b| b.kind == actor_kind::MEMBER)
        {
            *acted_for.entry(b.id.clone()).or_default() += 1;
        }
    }
    let mut out: Vec<PersonInfo> = members
        .iter()
        .map(|m| PersonInfo {
            name: m.name.to_string(),
            email: m.email.clone(),
            changes: changes.get(&(true, m.id.to_string())).copied().unwrap_or(0),
            owns: agents
                .iter()
                .filter(|a| a.owner.as_deref() == Some(m.name.as_str()))
                .map(|a| a.name.clone())
                .collect(),
            acted_for: acted_for.get(m.id.as_str()).copied().unwrap_or(0),
        })
        .filter(|p| p.changes > 0 || !p.owns.is_empty() || p.acted_for > 0)
        .collect();
    for ((is_member, login), n) in &changes {
        if !is_member {
            out.push(PersonInfo {
                name: mandate_core::audit::Actor::os_user(login).describe(),
                email: None,
                changes: *n,
                owns: Vec::new(),
                acted_for: 0,
            });
        }
    }
    out.sort_by(|a, b| b.changes.cmp(&a.changes).then(a.name.cmp(&b.name)));
    out
}

/// Everything the PDF shows.
#[derive(Debug, Clone)]
pub struct ReportData {
    pub organisation: String,
    pub generated: DateTime<Utc>,
    /// Human description of what the report covers.
    pub scope: String,
    /// First and last time covered.
    pub period: (String, String),
    pub origin: String,
    pub checkpoint_size: u64,
    pub checkpoint_root: String,
    pub checkpoint_head: String,
    pub checkpoint_time: String,
    pub key_fingerprint: String,
    /// The attached bundle, verified.
    pub bundle_check: VerifyReport,
    /// The live store, verified when the report was made.
    pub store_check: Option<VerifyReport>,
    pub agents: Vec<AgentInfo>,
    /// The connections that existed when the report was generated.
    pub connections: Vec<ConnectionInfo>,
    /// Names of the team members who own agents.
    pub owners: Vec<String>,
    /// The people who made changes, own agents or were acted for (see [`PersonInfo`]).
    pub people: Vec<PersonInfo>,
    pub events: Vec<AuditEvent>,
    pub bundle: Vec<u8>,
}

/// What to put in a report.
#[derive(Debug, Clone, Default)]
pub struct PdfOptions {
    /// Shown on the cover; defaults to the organisation name set in the app's Settings (or
    /// at the first export), else "Mandate installation <id>".
    pub organisation: Option<String>,
    pub selection: ExportSelection,
}

/// A finished report.
#[derive(Debug, Clone)]
pub struct Built {
    pub pdf: Vec<u8>,
    pub data: ReportData,
}

/// Progress for a progress bar: percent done (0–100) and what is happening.
pub type Progress<'a> = &'a mut dyn FnMut(u32, &str);

/// Export, verify and render a report of `m`'s audit trail.
pub fn build(m: &Mandate, opts: &PdfOptions, progress: Progress<'_>) -> Result<Built, ReportError> {
    progress(0, "exporting the evidence");
    let export = {
        let mut p = |done: u64, total: u64| {
            let pct = (done * 30 / total.max(1)) as u32;
            progress(pct.min(30), "exporting the evidence");
        };
        m.export_audit(&opts.selection, Some(&mut p))?
    };
    // After the export, so its checkpoint is among those verified (and a second report at the
    // same time is identical).
    progress(30, "verifying the audit trail");
    let store_check = m.verify_audit()?;
    let bundle_check = verify::check_bundle(&export.bundle, &BundleOptions::default());
    let all_agents = m.list_agents()?;
    let agent_ids: BTreeSet<String> = match &export.scope {
        BundleScope::Excerpt {
            agent: Some(id), ..
        } => [id.clone()].into(),
        _ => all_agents.iter().map(|a| a.id.to_string()).collect(),
    };
    let agents: Vec<AgentInfo> = all_agents
        .iter()
        .filter(|a| agent_ids.contains(a.id.as_str()))
        .map(|a| AgentInfo {
            id: a.id.to_string(),
            name: a.name.to_string(),
            purpose: a.purpose.clone(),
            owner: a.owner.as_ref().map(|o| o.to_string()),
            status: a.status.to_string(),
            status_reason: a.status_reason.clone(),
            trust: a.trust.state.to_string(),
            scopes: a.scopes.iter().map(|s| s.to_string()).collect(),
            created: a.created_at.format("%Y-%m-%d").to_string(),
        })
        .collect();
    let owners: Vec<String> = agents
        .iter()
        .filter_map(|a| a.owner.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let fmt = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
    let first = export.events.first().map(|e| e.time.clone());
    let last = export.events.last().map(|e| e.time.clone());
    let short = |s: Option<String>| {
        s.and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| fmt(t.with_timezone(&Utc)))
            .unwrap_or_else(|| "–".into())
    };
    let period = (
        opts.selection
            .since
            .map(fmt)
            .unwrap_or_else(|| short(first)),
        opts.selection.until.map(fmt).unwrap_or_else(|| short(last)),
    );
    let scope = match &export.scope {
        BundleScope::Full => "the whole audit log".to_string(),
        BundleScope::Excerpt {
            agent_name,
            agent,
            since,
            until,
        } => {
            let mut parts = Vec::new();
            if let Some(a) = agent_name.as_ref().or(agent.as_ref()) {
                parts.push(format!("events of agent {a}"));
            } else {
                parts.push("events".to_string());
            }
            if let Some(s) = since {
                parts.push(format!("from {s}"));
            }
            if let Some(u) = until {
                parts.push(format!("before {u}"));
            }
            format!("an excerpt: {}", parts.join(" "))
        }
    };
    let connections: Vec<ConnectionInfo> = m
        .list_connections()?
        .into_iter()
        .map(|c| ConnectionInfo {
            name: c.name.to_string(),
            address: c.base_url.clone(),
            has_secret: c.has_secret,
            secret_changed: c.secret_changed_at.map(fmt),
            granted_to: c.granted_to.iter().map(|a| a.to_string()).collect(),
        })
        .collect();
    let people = people_of(&m.list_members()?, &agents, &export.events);
    let organisation = match opts.organisation.clone() {
        Some(o) => Some(o),
        None => m.organisation_name()?,
    };
    let cp = &export.checkpoint.checkpoint;
    let data = ReportData {
        organisation: organisation.unwrap_or_else(|| {
            format!(
                "Mandate installation {}",
                m.install_id().chars().take(8).collect::<String>()
            )
        }),
        generated: export.generated,
        scope,
        period,
        origin: cp.origin.clone(),
        checkpoint_size: cp.size,
        checkpoint_root: mandate_core::audit::hex(&cp.root),
        checkpoint_head: mandate_core::audit::hex(&cp.chain_head),
        checkpoint_time: cp.time.clone(),
        key_fingerprint: export.key_fingerprint.clone(),
        bundle_check,
        store_check: Some(store_check),
        agents,
        connections,
        owners,
        people,
        events: export.events,
        bundle: export.bundle,
    };
    progress(35, "laying out pages");
    let pdf = {
        let mut p = |done: u64, total: u64| {
            let pct = 35 + (done * 64 / total.max(1)) as u32;
            progress(pct.min(99), "writing pages");
        };
        render(&data, &mut p)?
    };
    progress(100, "done");
    Ok(Built { pdf, data })
}

/// Render `data` as PDF bytes. Deterministic: the same data gives the same bytes.
pub fn render(
    data: &ReportData,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Vec<u8>, ReportError> {
    let fonts = layout::Fonts::load()?;
    let pages = content::lay_out(data, &fonts);
    let mut doc = Document::new();
    let date = krilla::metadata::DateTime::new(
        data.generated
            .format("%Y")
            .to_string()
            .parse()
            .unwrap_or(2026),
    )
    .month(data.generated.format("%m").to_string().parse().unwrap_or(1))
    .day(data.generated.format("%d").to_string().parse().unwrap_or(1))
    .hour(data.generated.format("%H").to_string().parse().unwrap_or(0))
    .minute(data.generated.format("%M").to_string().parse().unwrap_or(0))
    .second(data.generated.format("%S").to_string().parse().unwrap_or(0))
    .utc_offset_hour(0)
    .utc_offset_minute(0);
    let digest = mandate_core::audit::hex(&sha2_digest(&data.bundle));
    doc.set_metadata(
        Metadata::new()
            .title(format!("Audit evidence report: {}", data.organisation))
            .description(format!(
                "Mandate audit trail, {} events, checkpoint root {}",
                data.checkpoint_size, data.checkpoint_root
            ))
            .creator("Mandate".into())
            .producer("Mandate (krilla)".into())
            .language("en".into())
            .creation_date(date)
            .document_id(digest),
    );
    let mime = MimeType::new("application/jsonl")
        .ok_or_else(|| ReportError::Render("bad mime type".into()))?;
    doc.embed_file(EmbeddedFile {
        path: ATTACHMENT_NAME.into(),
        mime_type: Some(mime),
        description: Some(
            "Mandate evidence bundle: the audit events, signed checkpoints and seal (see \
             AUDIT_FORMAT.md)"
                .into(),
        ),
        association_kind: AssociationKind::Source,
        data: data.bundle.clone().into(),
        modification_date: Some(date),
        compress: Some(true),
        location: None,
    })
    .ok_or_else(|| ReportError::Render("the evidence bundle could not be attached".into()))?;
    let decorate = |i: usize, n: usize| content::decorate(data, &fonts, i, n);
    layout::render(&mut doc, &fonts, &pages.pages, &decorate, progress)?;
    doc.finish()
        .map_err(|e| ReportError::Render(format!("{e:?}")))
}

fn sha2_digest(b: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(b).into()
}

/// The attached evidence bundle of a Mandate report (or any PDF that attaches one under
/// [`ATTACHMENT_NAME`]), as `docs/AUDIT_FORMAT.md` §6 says to find it: the PDF as its last
/// incremental update leaves it; exactly one entry of the `/Names /EmbeddedFiles` name tree
/// whose key is the bytes of [`ATTACHMENT_NAME`]; its file specification's `/EF /F` stream, or
/// `/EF /UF` when there is no `/F` (both, when present, must be the same stream); decoded
/// with its filters, and as long as its `/Params /Size` says, when it says. Two entries of
/// that name are refused: a reader could not tell which one a viewer shows.
pub fn extract_bundle(pdf: &[u8]) -> Result<Vec<u8>, ReportError> {
    use lopdf::Object;
    if !pdf.starts_with(b"%PDF-") {
        return Err(ReportError::NotPdf("it does not start with %PDF-".into()));
    }
    let doc = lopdf::Document::load_mem(pdf).map_err(|e| ReportError::NotPdf(e.to_string()))?;
    let deref = |o: &Object| -> Result<Object, ReportError> {
        match o {
            Object::Reference(id) => doc
                .get_object(*id)
                .cloned()
                .map_err(|e| ReportError::NotPdf(e.to_string())),
            other => Ok(other.clone()),
        }
    };
    let catalog = doc
        .catalog()
        .map_err(|e| ReportError::NotPdf(e.to_string()))?;
    let names = match catalog.get(b"Names") {
        Ok(n) => deref(n)?,
        Err(_) => return Err(ReportError::NoAttachment),
    };
    let Ok(names) = names.as_dict() else {
        return Err(ReportError::NoAttachment);
    };
    let Ok(ef) = names.get(b"EmbeddedFiles") else {
        return Err(ReportError::NoAttachment);
    };
    // Walk the whole name tree (Names arrays, possibly under Kids) and keep every match.
    let mut found: Vec<Object> = Vec::new();
    let mut stack = vec![deref(ef)?];
    let mut visited = 0usize;
    while let Some(node) = stack.pop() {
        visited += 1;
        if visited > 100_000 {
            return Err(ReportError::NotPdf("its name tree does not end".into()));
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
            let [name, spec] = pair else { continue };
            let name = deref(name)?;
            if name.as_str().ok() == Some(ATTACHMENT_NAME.as_bytes()) {
                found.push(spec.clone());
            }
        }
    }
    let spec = match found.as_slice() {
        [] => return Err(ReportError::NoAttachment),
        [one] => deref(one)?,
        more => {
            return Err(ReportError::DamagedAttachment(format!(
                "it has {} attachments named {ATTACHMENT_NAME}, and a report has one: which one \
                 a PDF viewer shows cannot be told",
                more.len()
            )));
        }
    };
    let spec = spec
        .as_dict()
        .map_err(|_| ReportError::DamagedAttachment("the file spec is not a dictionary".into()))?;
    let ef = deref(
        spec.get(b"EF")
            .map_err(|_| ReportError::DamagedAttachment("the file spec has no /EF".into()))?,
    )?;
    let ef = ef
        .as_dict()
        .map_err(|_| ReportError::DamagedAttachment("/EF is not a dictionary".into()))?;
    let stream_ref = match (ef.get(b"F").ok(), ef.get(b"UF").ok()) {
        (Some(f), Some(uf)) if f != uf => {
            return Err(ReportError::DamagedAttachment(
                "its /EF names two different file streams (/F and /UF)".into(),
            ));
        }
        (Some(f), _) | (None, Some(f)) => f,
        (None, None) => {
            return Err(ReportError::DamagedAttachment(
                "/EF has no file stream".into(),
            ));
        }
    };
    let f = deref(stream_ref)?;
    let stream = f
        .as_stream()
        .map_err(|_| ReportError::DamagedAttachment("the attachment is not a stream".into()))?;
    let bytes = if stream.dict.get(b"Filter").is_ok() {
        stream.decompressed_content().map_err(|e| {
            ReportError::DamagedAttachment(format!("it cannot be decompressed ({e})"))
        })?
    } else {
        stream.content.clone()
    };
    if let Ok(size) = stream.dict.get(b"Params").and_then(|p| match p {
        Object::Dictionary(d) => d.get(b"Size").and_then(|s| s.as_i64()),
        _ => Err(lopdf::Error::DictKey("Size".into())),
    }) && size != bytes.len() as i64
    {
        return Err(ReportError::DamagedAttachment(format!(
            "it is {} bytes long but the PDF says {size}",
            bytes.len()
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]
mod tests {
    use super::*;
    use mandate_core::audit::verify::check_bundle;

    #[test]
    fn a_report_embeds_a_bundle_that_verifies_and_renders_deterministically() {
        let dir = tempfile::tempdir().unwrap();
        let (m, _clock) = sample::installation(dir.path(), 300).unwrap();
        let opts = PdfOptions {
            organisation: Some("Example Robotics Ltd".into()),
            ..Default::default()
        };
        let mut last = 0;
        let built = build(&m, &opts, &mut |pct, _| {
            assert!(pct >= last, "progress goes forward");
            last = pct;
        })
        .unwrap();
        assert_eq!(last, 100);
        assert!(
            built.data.bundle_check.ok(),
            "{:?}",
            built.data.bundle_check.problems
        );
        let bundle = extract_bundle(&built.pdf).unwrap();
        assert_eq!(bundle, built.data.bundle);
        assert!(check_bundle(&bundle, &Default::default()).ok());
        // Same data, same bytes.
        let again = render(&built.data, &mut |_, _| {}).unwrap();
        assert!(again == built.pdf, "rendering is deterministic");
        // And the same installation at the same time gives the same report.
        let rebuilt = build(&m, &opts, &mut |_, _| {}).unwrap();
        assert!(
            rebuilt.pdf == built.pdf,
            "a second build at the same time is identical"
        );
        if let Some(out) = std::env::var_os("MANDATE_REPORT_OUT") {
            std::fs::write(out, &built.pdf).unwrap();
        }
    }

    /// Every page of a busy report: no text runs past the right margin or below the bottom
    /// margin (the running header and footer live outside), no page is empty, and a denial's
    /// reason is printed whole (wrapped, not cut).
    #[test]
    fn nothing_overflows_the_page_and_reasons_are_printed_whole() {
        use layout::{BOTTOM, CONTENT_W, MARGIN, Op};
        let dir = tempfile::tempdir().unwrap();
        let (m, _clock) = sample::installation(dir.path(), 400).unwrap();
        let built = build(&m, &PdfOptions::default(), &mut |_, _| {}).unwrap();
        let fonts = layout::Fonts::load().unwrap();
        let pages = content::lay_out(&built.data, &fonts);
        assert!(pages.pages.len() > 3);
        let right = MARGIN + CONTENT_W + 0.5;
        let mut all_text = String::new();
        for (i, page) in pages.pages.iter().enumerate() {
            let n = i + 1;
            let mut texts = 0;
            for op in page {
                if let Op::Text {
                    x,
                    y,
                    size,
                    face,
                    text,
                    ..
                } = op
                {
                    texts += 1;
                    let end = x + fonts.width(*face, *size, text);
                    // The cover's band is full-bleed; everything else keeps the margins.
                    if n > 1 {
                        assert!(end <= right, "page {n}: {text:?} ends at {end} > {right}");
                        assert!(*y <= BOTTOM, "page {n}: {text:?} at y {y} below {BOTTOM}");
                        assert!(*x >= MARGIN - 0.5, "page {n}: {text:?} starts at {x}");
                    }
                    all_text.push_str(text);
                    all_text.push(' ');
                }
            }
            assert!(texts > 0, "page {n} is empty");
        }
        let reason = "invalid_scope: the agent is not granted github:admin";
        assert!(
            all_text.contains(reason),
            "the denial reason is printed whole"
        );
        for label in ["TRUSTED / PENDING /", "UNTRUSTED", "DECISION"] {
            assert!(all_text.contains(label), "{label:?} is printed");
        }
    }

    /// The report named no human: every change said "the app" (issue 17 §3).
    #[test]
    fn the_report_names_the_people_who_made_changes_and_the_organisation() {
        let dir = tempfile::tempdir().unwrap();
        let (m, _clock) = sample::installation(dir.path(), 50).unwrap();
        m.set_organisation_name("Example Robotics Ltd").unwrap();
        let built = build(&m, &PdfOptions::default(), &mut |_, _| {}).unwrap();
        let d = &built.data;
        assert_eq!(d.organisation, "Example Robotics Ltd");
        let founder = d.people.iter().find(|p| p.name == "founder").unwrap();
        assert_eq!(founder.email.as_deref(), Some("founder@example.com"));
        assert!(founder.changes > 5, "{founder:?}");
        assert!(!founder.owns.is_empty());
        let fonts = layout::Fonts::load().unwrap();
        let text: String = content::lay_out(d, &fonts)
            .pages
            .iter()
            .flatten()
            .filter_map(|op| match op {
                layout::Op::Text { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            text.contains("founder (founder@example.com)"),
            "cover names them"
        );
        assert!(text.contains("member founder"), "events name them");
        assert!(!text.contains("the app"), "no change is the app's");
        // A log written by a login that chose no member says so.
        m.set_actor(mandate_core::audit::Actor::os_user("ann"));
        m.add_member("zed", None).unwrap();
        let built = build(&m, &PdfOptions::default(), &mut |_, _| {}).unwrap();
        assert!(
            built
                .data
                .people
                .iter()
                .any(|p| p.name == "OS user ann (no member chosen)" && p.changes == 1),
            "{:?}",
            built.data.people
        );
    }

    #[test]
    fn a_pdf_without_the_attachment_is_refused_clearly() {
        let err = extract_bundle(b"not a pdf").unwrap_err();
        assert!(matches!(err, ReportError::NotPdf(_)));
        let data = ReportData {
            organisation: "x".into(),
            generated: chrono::DateTime::from_timestamp(0, 0).unwrap(),
            scope: String::new(),
            period: (String::new(), String::new()),
            origin: String::new(),
            checkpoint_size: 0,
            checkpoint_root: String::new(),
            checkpoint_head: String::new(),
            checkpoint_time: String::new(),
            key_fingerprint: String::new(),
            bundle_check: check_bundle(b"", &Default::default()),
            store_check: None,
            agents: Vec::new(),
            connections: Vec::new(),
            owners: Vec::new(),
            people: Vec::new(),
            events: Vec::new(),
            bundle: b"x".to_vec(),
        };
        let pdf = render(&data, &mut |_, _| {}).unwrap();
        // Rename the attachment: it is no longer found.
        let renamed =
            String::from_utf8_lossy(&pdf).replace(ATTACHMENT_NAME, "mandate-evidence.jsonX");
        let err = extract_bundle(renamed.as_bytes());
        assert!(err.is_err());
    }

    /// A PDF whose name tree lists `mandate-evidence.jsonl` twice, or whose file spec names
    /// two streams, was read by taking the first one found; a viewer might show the other.
    #[test]
    fn an_ambiguous_attachment_is_refused_not_picked() {
        use lopdf::{Dictionary, Object, Stream};
        let data = ReportData {
            organisation: "x".into(),
            generated: chrono::DateTime::from_timestamp(0, 0).unwrap(),
            scope: String::new(),
            period: (String::new(), String::new()),
            origin: String::new(),
            checkpoint_size: 0,
            checkpoint_root: String::new(),
            checkpoint_head: String::new(),
            checkpoint_time: String::new(),
            key_fingerprint: String::new(),
            bundle_check: check_bundle(b"", &Default::default()),
            store_check: None,
            agents: Vec::new(),
            connections: Vec::new(),
            owners: Vec::new(),
            people: Vec::new(),
            events: Vec::new(),
            bundle: b"the genuine bundle".to_vec(),
        };
        let pdf = render(&data, &mut |_, _| {}).unwrap();
        assert_eq!(extract_bundle(&pdf).unwrap(), b"the genuine bundle");
        let doc = lopdf::Document::load_mem(&pdf).unwrap();
        // Apply `f` to every dictionary in the document, nested ones included.
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
        let each_dict = |doc: &mut lopdf::Document, f: &mut dyn FnMut(&mut Dictionary)| {
            for o in doc.objects.values_mut() {
                visit(o, f);
            }
        };
        let save = |doc: &mut lopdf::Document| {
            let mut out = Vec::new();
            doc.save_to(&mut out).unwrap();
            out
        };
        let is_tree = |d: &Dictionary| {
            d.get(b"Names").and_then(|n| n.as_array()).is_ok_and(|a| {
                a.iter()
                    .any(|x| x.as_str().ok() == Some(ATTACHMENT_NAME.as_bytes()))
            })
        };
        // A second entry of the same name, pointing at another bundle.
        let mut twice = doc.clone();
        let other = twice.add_object(Stream::new(Dictionary::new(), b"another bundle".to_vec()));
        let mut ef = Dictionary::new();
        ef.set("F", other);
        let mut spec = Dictionary::new();
        spec.set("Type", Object::Name(b"Filespec".to_vec()));
        spec.set("EF", ef);
        let spec = twice.add_object(spec);
        let mut added = 0;
        each_dict(&mut twice, &mut |d| {
            if is_tree(d)
                && let Ok(a) = d.get_mut(b"Names").and_then(|n| n.as_array_mut())
            {
                a.push(Object::string_literal(ATTACHMENT_NAME));
                a.push(Object::Reference(spec));
                added += 1;
            }
        });
        assert_eq!(added, 1);
        let err = extract_bundle(&save(&mut twice)).unwrap_err().to_string();
        assert!(err.contains("it has 2 attachments named"), "{err}");
        // One entry whose /F and /UF are different streams.
        let mut two_streams = doc.clone();
        let other =
            two_streams.add_object(Stream::new(Dictionary::new(), b"another bundle".to_vec()));
        let mut set = 0;
        each_dict(&mut two_streams, &mut |d| {
            // The /EF dictionary: its /F is a reference to the file stream.
            if let Ok(Object::Reference(_)) = d.get(b"F") {
                d.set("UF", other);
                set += 1;
            }
        });
        assert_eq!(set, 1, "the /EF dictionary");
        let err = extract_bundle(&save(&mut two_streams))
            .unwrap_err()
            .to_string();
        assert!(err.contains("two different file streams"), "{err}");
    }
}
