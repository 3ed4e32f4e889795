//! What the report says, page by page: cover, how to verify, summary, agents, access changes
//! (with approvals and attestations), connections and secrets, controls, appendix.
//!
//! Numbers come from the exported events (the bundle), never from mutable registry columns,
//! so what the PDF counts is what the attached evidence proves; the registry supplies only the
//! agents' and connections' current descriptions (purpose, owner, scopes, trust, whether a
//! secret is held), which the summary says.
//!
//! Long trails stay readable: an agent with more than [`TIMELINE_MAX`] events gets a summary
//! per month and its latest events, and a report of more than [`APPENDIX_MAX`] events replaces
//! the event-by-event appendix with months, the changes people made and denials by reason. The
//! full list is always in the attached bundle. The accountability sections are in
//! [`crate::sections`], the control mapping in [`crate::controls`].

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use mandate_core::audit::verify::VerifyReport;
use mandate_core::audit::{AuditEvent, Decision};

use crate::ReportData;
use crate::layout::*;

/// Events per agent listed one by one; above it, a summary per month and the latest events.
pub const TIMELINE_MAX: usize = 120;
/// The latest events listed for an agent summarised per month.
const TIMELINE_RECENT: usize = 25;
/// Events listed one by one in the appendix; above it, summaries (the bundle has them all).
pub const APPENDIX_MAX: usize = 1500;
/// Rows of (person, kind of change) in a summarised appendix.
const PEOPLE_CHANGES_MAX: usize = 200;
/// Denial reasons listed in a summarised appendix.
const DENIAL_REASONS_MAX: usize = 30;

fn is_token_issued(e: &AuditEvent) -> bool {
    e.decision == Decision::Allow && (e.action == "token.issued" || e.action == "token.exchanged")
}
fn is_revocation(e: &AuditEvent) -> bool {
    e.decision == Decision::Allow
        && (e.action == "token.revoked"
            || e.action == "agent.revoked"
            || e.action == "delegation.revoked")
}

/// `YYYY-MM` of an event time, for summaries per month.
pub(crate) fn month_of(t: &str) -> String {
    t.get(..7).unwrap_or(t).to_string()
}

/// Short UTC time for tables.
pub(crate) fn short_time(t: &str) -> String {
    DateTime::parse_from_rfc3339(t)
        .map(|d| {
            d.with_timezone(&Utc)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|_| t.to_string())
}

/// What an event acted on, in a few words: tokens by the start of their `jti` (the full one
/// is in the bundle), other things by kind and name; "–" when nothing.
fn target_text(e: &AuditEvent) -> String {
    e.target
        .as_ref()
        .map(|t| {
            if t.kind == "token" {
                let short: String = t.id.chars().take(8).collect();
                format!("token {short}…")
            } else if t.name.is_empty() {
                format!("{} {}", t.kind, t.id)
            } else {
                format!("{} {}", t.kind, t.name)
            }
        })
        .unwrap_or_else(|| "–".into())
}

/// The people who made changes, for the cover: "ann (ann@example.com), bob".
fn people_line(d: &ReportData) -> String {
    let named: Vec<String> = d
        .people
        .iter()
        .filter(|p| p.changes > 0)
        .map(|p| match &p.email {
            Some(e) => format!("{} ({e})", p.name),
            None => p.name.clone(),
        })
        .collect();
    if named.is_empty() {
        "no person made a change in these events".into()
    } else {
        named.join(", ")
    }
}

pub(crate) fn actor_text(e: &AuditEvent) -> String {
    let base = e.actor.describe();
    match &e.on_behalf_of {
        Some(b) => format!("{base} for {}", b.name),
        None => base,
    }
}

/// Lay out every page.
pub fn lay_out<'f>(d: &ReportData, fonts: &'f Fonts) -> Pages<'f> {
    let mut p = Pages::new(fonts);
    cover(&mut p, d);
    crate::sections::verifying(&mut p, d);
    summary(&mut p, d);
    agents(&mut p, d);
    crate::sections::scope_changes(&mut p, d);
    crate::sections::approvals(&mut p, d);
    crate::sections::custody(&mut p, d);
    crate::controls::controls(&mut p, d);
    appendix(&mut p, d);
    p
}

/// Running header and footer for page `i` of `n`.
pub fn decorate(d: &ReportData, fonts: &Fonts, i: usize, n: usize) -> Vec<Op> {
    let mut ops = Vec::new();
    let footer_y = PAGE_H - 30.0;
    ops.push(Op::Line {
        x1: MARGIN,
        y1: footer_y - 12.0,
        x2: PAGE_W - MARGIN,
        y2: footer_y - 12.0,
        width: 0.5,
        color: RULE,
    });
    let left = format!(
        "{} · checkpoint of {} events · root {}…",
        d.origin,
        d.checkpoint_size,
        &d.checkpoint_root.chars().take(16).collect::<String>()
    );
    ops.push(Op::Text {
        x: MARGIN,
        y: footer_y,
        size: 7.0,
        face: Face::Sans,
        color: MUTED,
        text: fonts.fit(Face::Sans, 7.0, &left, CONTENT_W - 80.0),
    });
    let right = format!("Page {} of {n}", i + 1);
    ops.push(Op::Text {
        x: PAGE_W - MARGIN - fonts.width(Face::Sans, 7.0, &right),
        y: footer_y,
        size: 7.0,
        face: Face::Sans,
        color: MUTED,
        text: right,
    });
    if i > 0 {
        let title = format!("Audit evidence report · {}", d.organisation);
        ops.push(Op::Text {
            x: MARGIN,
            y: 34.0,
            size: 7.5,
            face: Face::Sans,
            color: MUTED,
            text: fonts.fit(Face::Sans, 7.5, &title, CONTENT_W * 0.6),
        });
        ops.push(Op::Line {
            x1: MARGIN,
            y1: 40.0,
            x2: PAGE_W - MARGIN,
            y2: 40.0,
            width: 0.5,
            color: RULE,
        });
    }
    ops
}

fn verification_lines(label: &str, r: &VerifyReport) -> Vec<String> {
    let mut out = Vec::new();
    if r.ok() {
        let what = if r.subject == "excerpt" {
            format!(
                "{label}: passed. {} events, each proven to be in the log of {} events by an \
                 RFC 9162 inclusion proof against the signed checkpoint; {} checkpoint(s) \
                 verified.",
                r.events, r.log_size, r.checkpoints_verified
            )
        } else {
            format!(
                "{label}: passed. {} events; every hash link holds; the Merkle root and chain \
                 head match {} signed checkpoint(s).",
                r.events, r.checkpoints_verified
            )
        };
        out.push(what);
    } else {
        out.push(format!(
            "{label}: FAILED ({} problem(s)).",
            r.problems.len()
        ));
        for pr in r.problems.iter().take(8) {
            out.push(format!("• {}", pr.message));
        }
        if r.problems.len() > 8 {
            out.push(format!("• … and {} more", r.problems.len() - 8));
        }
    }
    out
}

fn cover(p: &mut Pages<'_>, d: &ReportData) {
    p.page("Cover");
    p.rect(0.0, 0.0, PAGE_W, 210.0, BAND);
    p.rect(0.0, 210.0, PAGE_W, 4.0, ACCENT);
    p.text(
        MARGIN,
        64.0,
        10.0,
        Face::Bold,
        Rgb(0x99, 0xf6, 0xe4),
        "MANDATE",
    );
    p.text(
        MARGIN,
        118.0,
        28.0,
        Face::Bold,
        WHITE,
        "Audit evidence report",
    );
    let org = p.fonts.fit(Face::Sans, 15.0, &d.organisation, CONTENT_W);
    p.text(MARGIN, 150.0, 15.0, Face::Sans, WHITE, &org);
    p.text(
        MARGIN,
        180.0,
        9.5,
        Face::Sans,
        Rgb(0xcb, 0xd5, 0xe1),
        &format!("{} to {}", d.period.0, d.period.1),
    );
    p.y = 250.0;
    let rows: Vec<(&str, String, Face)> = vec![
        ("Organisation", d.organisation.clone(), Face::Sans),
        (
            "Period",
            format!("{} to {}", d.period.0, d.period.1),
            Face::Sans,
        ),
        ("Covers", d.scope.clone(), Face::Sans),
        ("People", people_line(d), Face::Sans),
        (
            "Generated",
            d.generated.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            Face::Sans,
        ),
        (
            "Events in this report",
            d.events.len().to_string(),
            Face::Sans,
        ),
        (
            "Signed checkpoint",
            format!(
                "{} events, signed {}",
                d.checkpoint_size,
                short_time(&d.checkpoint_time)
            ),
            Face::Sans,
        ),
        (
            "Merkle root (RFC 9162)",
            d.checkpoint_root.clone(),
            Face::Mono,
        ),
        ("Hash chain head", d.checkpoint_head.clone(), Face::Mono),
        (
            "Issuer key fingerprint",
            d.key_fingerprint.clone(),
            Face::Mono,
        ),
        ("Log origin", d.origin.clone(), Face::Mono),
    ];
    let label_w = 150.0;
    for (label, value, face) in rows {
        let size = if face == Face::Mono { 8.4 } else { 10.0 };
        let lines = p.fonts.wrap(face, size, &value, CONTENT_W - label_w);
        p.y += 16.0;
        p.text(MARGIN, p.y, 8.5, Face::Sans, MUTED, label);
        for (i, l) in lines.iter().enumerate() {
            if i > 0 {
                p.y += 12.0;
            }
            p.text(MARGIN + label_w, p.y, size, face, INK, l);
        }
        p.y += 5.0;
        p.hline(MARGIN, MARGIN + CONTENT_W, p.y, 0.3, RULE);
    }
    // Verification box.
    let ok = d.bundle_check.ok() && d.store_check.as_ref().is_none_or(|s| s.ok());
    let mut lines = verification_lines("Attached evidence bundle", &d.bundle_check);
    if let Some(s) = &d.store_check {
        lines.extend(verification_lines("Live audit store when generated", s));
    }
    let wrapped: Vec<String> = lines
        .iter()
        .flat_map(|l| p.fonts.wrap(Face::Sans, 9.0, l, CONTENT_W - 36.0))
        .collect();
    let box_h = 44.0 + wrapped.len() as f32 * 13.0;
    p.y += 22.0;
    let top = p.y;
    p.rect(
        MARGIN,
        top,
        CONTENT_W,
        box_h,
        if ok { OK_BG } else { BAD_BG },
    );
    p.rect(MARGIN, top, 5.0, box_h, if ok { ACCENT } else { DENY });
    p.text(
        MARGIN + 20.0,
        top + 24.0,
        13.0,
        Face::Bold,
        if ok { ACCENT } else { DENY },
        if ok {
            "Verification: PASSED"
        } else {
            "Verification: FAILED"
        },
    );
    let mut y = top + 42.0;
    for l in &wrapped {
        p.text(MARGIN + 20.0, y, 9.0, Face::Sans, INK, l);
        y += 13.0;
    }
    p.y = top + box_h + 10.0;
    p.para(
        8.5,
        Face::Sans,
        MUTED,
        &format!(
            "The box above is the generator's own claim, made when it wrote this PDF; it is \
             not a proof. The evidence bundle is attached to this PDF as {}: check it with \
             `mandate audit verify <this file>`, `mandate-verify` or the verifier page where \
             one is attached, and compare the issuer key fingerprint with the organisation's, \
             as the next page explains. \
             The pages are a reading aid; the attached bundle is the evidence.",
            crate::ATTACHMENT_NAME
        ),
        0.0,
    );
}

fn stat_tiles(p: &mut Pages<'_>, tiles: &[(&str, String)]) {
    let per_row = 4usize;
    let gap = 10.0;
    let w = (CONTENT_W - gap * (per_row as f32 - 1.0)) / per_row as f32;
    for row in tiles.chunks(per_row) {
        p.need(62.0);
        p.y += 12.0;
        for (i, (label, value)) in row.iter().enumerate() {
            let x = MARGIN + i as f32 * (w + gap);
            p.rect(x, p.y, w, 50.0, ZEBRA);
            p.rect(x, p.y, w, 2.5, ACCENT);
            // A label too long for the tile takes two lines (the value moves up a little);
            // beyond that it is cut.
            let max = w - 20.0;
            let lines = p.fonts.wrap(Face::Sans, 7.5, label, max);
            if lines.len() == 1 {
                p.text(x + 10.0, p.y + 26.0, 16.0, Face::Bold, INK, value);
                p.text(x + 10.0, p.y + 42.0, 7.5, Face::Sans, MUTED, &lines[0]);
            } else {
                p.text(x + 10.0, p.y + 23.0, 16.0, Face::Bold, INK, value);
                let rest = lines[1..].join(" ");
                for (k, l) in [lines[0].clone(), rest].iter().enumerate() {
                    let l = p.fonts.fit(Face::Sans, 7.5, l, max);
                    p.text(
                        x + 10.0,
                        p.y + 35.0 + k as f32 * 9.0,
                        7.5,
                        Face::Sans,
                        MUTED,
                        &l,
                    );
                }
            }
        }
        p.y += 50.0;
    }
}

/// Events per day (or week, or month), split by decision.
fn buckets(events: &[AuditEvent]) -> (String, Vec<(String, u64, u64)>) {
    let days: Vec<NaiveDate> = events
        .iter()
        .filter_map(|e| DateTime::parse_from_rfc3339(&e.time).ok())
        .map(|t| t.with_timezone(&Utc).date_naive())
        .collect();
    let (Some(first), Some(last)) = (days.iter().min().copied(), days.iter().max().copied()) else {
        return ("day".into(), Vec::new());
    };
    let span = (last - first).num_days();
    let (unit, key): (&str, Box<dyn Fn(NaiveDate) -> NaiveDate>) = if span <= 45 {
        ("day", Box::new(|d| d))
    } else if span <= 400 {
        (
            "week",
            Box::new(|d: NaiveDate| d - Duration::days(d.weekday().num_days_from_monday() as i64)),
        )
    } else {
        ("month", Box::new(|d: NaiveDate| d.with_day(1).unwrap_or(d)))
    };
    let mut map: BTreeMap<NaiveDate, (u64, u64)> = BTreeMap::new();
    // Every bucket in the range, so quiet periods show as gaps.
    let mut d = key(first);
    while d <= last {
        map.entry(key(d)).or_default();
        d += Duration::days(1);
    }
    for (e, day) in events.iter().zip(days.iter()) {
        let v = map.entry(key(*day)).or_default();
        if e.decision == Decision::Deny {
            v.1 += 1;
        } else {
            v.0 += 1;
        }
    }
    let fmt = if unit == "month" { "%Y-%m" } else { "%m-%d" };
    (
        unit.into(),
        map.into_iter()
            .map(|(k, (a, b))| (k.format(fmt).to_string(), a, b))
            .collect(),
    )
}

fn chart(p: &mut Pages<'_>, events: &[AuditEvent]) {
    let (unit, data) = buckets(events);
    let h = 150.0;
    p.need(h + 60.0);
    p.y += 18.0;
    p.text(
        MARGIN,
        p.y,
        9.0,
        Face::Bold,
        INK,
        &format!("Activity over time (events per {unit})"),
    );
    // Legend.
    let lx = MARGIN + CONTENT_W - 150.0;
    p.rect(lx, p.y - 7.0, 8.0, 8.0, ACCENT);
    p.text(lx + 12.0, p.y, 7.5, Face::Sans, MUTED, "allowed / changes");
    p.rect(lx + 90.0, p.y - 7.0, 8.0, 8.0, DENY);
    p.text(lx + 102.0, p.y, 7.5, Face::Sans, MUTED, "denied");
    p.y += 10.0;
    let top = p.y;
    let axis_x = MARGIN + 30.0;
    let plot_w = CONTENT_W - 30.0;
    let max = data.iter().map(|(_, a, b)| a + b).max().unwrap_or(0).max(1);
    // Gridlines at 0, 1/2, 1 of a rounded maximum.
    let nice = nice_ceiling(max);
    for k in 0..=4u64 {
        let v = nice * k / 4;
        let y = top + h - (v as f32 / nice as f32) * h;
        p.hline(axis_x, axis_x + plot_w, y, 0.3, RULE);
        let label = v.to_string();
        p.text(
            axis_x - 4.0 - p.fonts.width(Face::Sans, 6.5, &label),
            y + 2.0,
            6.5,
            Face::Sans,
            MUTED,
            &label,
        );
    }
    if !data.is_empty() {
        let slot = plot_w / data.len() as f32;
        let bar = (slot * 0.7).clamp(0.8, 28.0);
        let label_every = ((data.len() as f32 * 30.0 / plot_w).ceil() as usize).max(1);
        for (i, (label, allow, deny)) in data.iter().enumerate() {
            let x = axis_x + i as f32 * slot + (slot - bar) / 2.0;
            let ha = *allow as f32 / nice as f32 * h;
            let hd = *deny as f32 / nice as f32 * h;
            if *allow > 0 {
                p.rect(x, top + h - ha, bar, ha, ACCENT);
            }
            if *deny > 0 {
                p.rect(x, top + h - ha - hd, bar, hd, DENY);
            }
            if i % label_every == 0 {
                // Centred under its bar, kept inside the plot.
                let lw = p.fonts.width(Face::Sans, 6.0, label);
                let lx = (x + bar / 2.0 - lw / 2.0).clamp(axis_x, axis_x + plot_w - lw);
                p.text(lx, top + h + 10.0, 6.0, Face::Sans, MUTED, label);
            }
        }
    }
    p.hline(axis_x, axis_x + plot_w, top + h, 0.8, MUTED);
    p.y = top + h + 18.0;
}

fn nice_ceiling(v: u64) -> u64 {
    let mut base = 1u64;
    while base * 10 < v {
        base *= 10;
    }
    for m in [1, 2, 4, 5, 10] {
        if base * m >= v {
            return (base * m).max(4);
        }
    }
    (base * 10).max(4)
}

/// A table with a header row; columns are (title, width in points).
/// Most lines a wrapped table cell takes; the rest is cut with an ellipsis.
const WRAP_LINES: usize = 4;

/// A zebra table that repeats its header on each page. Cells are cut to their column with an
/// ellipsis, except in column `wrap`, whose cells (reasons, in words) wrap onto up to
/// [`WRAP_LINES`] lines and make their row taller. A cell starting with `!deny:` is set in bold
/// red.
pub(crate) fn table(
    p: &mut Pages<'_>,
    cols: &[(&str, f32)],
    rows: &[Vec<String>],
    size: f32,
    wrap: Option<usize>,
) {
    let row_h = size * 1.75;
    let lead = size * 1.3;
    let header = |p: &mut Pages<'_>| {
        p.y += row_h;
        let mut x = MARGIN;
        for (t, w) in cols {
            let t = p.fonts.fit(Face::Bold, size * 0.95, t, w - 6.0);
            p.text(x + 3.0, p.y - 3.5, size * 0.95, Face::Bold, MUTED, &t);
            x += w;
        }
        p.hline(MARGIN, MARGIN + CONTENT_W, p.y + 1.0, 0.6, MUTED);
    };
    p.need(row_h * 3.0);
    header(p);
    for (n, r) in rows.iter().enumerate() {
        let cells: Vec<(Face, Rgb, Vec<String>)> = cols
            .iter()
            .zip(r.iter())
            .enumerate()
            .map(|(i, ((_, w), cell))| {
                let (face, color, text) = if let Some(t) = cell.strip_prefix("!deny:") {
                    (Face::Bold, DENY, t)
                } else {
                    (Face::Sans, INK, cell.as_str())
                };
                let max = w - 6.0;
                let lines = if wrap == Some(i) {
                    let mut l = p.fonts.wrap(face, size, text, max);
                    if l.len() > WRAP_LINES {
                        let rest = l.split_off(WRAP_LINES - 1).join(" ");
                        l.push(rest);
                    }
                    l.iter().map(|t| p.fonts.fit(face, size, t, max)).collect()
                } else {
                    vec![p.fonts.fit(face, size, text, max)]
                };
                (face, color, lines)
            })
            .collect();
        let extra = cells.iter().map(|c| c.2.len()).max().unwrap_or(1).max(1) - 1;
        let extra = extra as f32 * lead;
        if p.need(row_h + extra) {
            header(p);
        }
        p.y += row_h;
        if n % 2 == 1 {
            p.rect(MARGIN, p.y - row_h + 2.0, CONTENT_W, row_h + extra, ZEBRA);
        }
        let mut x = MARGIN;
        for ((_, w), (face, color, lines)) in cols.iter().zip(cells) {
            for (k, line) in lines.iter().enumerate() {
                let y = p.y - 3.5 + k as f32 * lead;
                p.text(x + 3.0, y, size, face, color, line);
            }
            x += w;
        }
        p.y += extra;
    }
}

fn summary(p: &mut Pages<'_>, d: &ReportData) {
    p.page("Summary");
    p.heading("Summary", 16.0);
    let ev = &d.events;
    let tokens = ev.iter().filter(|e| is_token_issued(e)).count();
    let denials = ev.iter().filter(|e| e.decision == Decision::Deny).count();
    let revocations = ev.iter().filter(|e| is_revocation(e)).count();
    let scopes: usize = d.agents.iter().map(|a| a.scopes.len()).sum();
    let trust = |s: &str| d.agents.iter().filter(|a| a.trust == s).count();
    p.para(
        9.0,
        Face::Sans,
        INK,
        &format!(
            "This report covers {} from {} to {}. Counts below are taken from the {} events in \
             the attached evidence bundle; agent descriptions (purpose, owner, scopes, trust) \
             are as the registry held them when the report was generated.",
            d.scope,
            d.period.0,
            d.period.1,
            ev.len()
        ),
        0.0,
    );
    stat_tiles(
        p,
        &[
            ("AGENTS", d.agents.len().to_string()),
            ("OWNERS", d.owners.len().to_string()),
            ("SCOPES GRANTED", scopes.to_string()),
            ("EVENTS", ev.len().to_string()),
            ("TOKENS ISSUED", tokens.to_string()),
            ("DENIALS", denials.to_string()),
            ("REVOCATIONS", revocations.to_string()),
            (
                "TRUSTED / PENDING / UNTRUSTED",
                format!(
                    "{} / {} / {}",
                    trust("TRUSTED"),
                    trust("PENDING"),
                    trust("UNTRUSTED")
                ),
            ),
        ],
    );
    chart(p, ev);
    p.heading("Agents", 12.0);
    let mut per: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    for e in ev {
        if let Some(a) = &e.agent {
            let v = per.entry(a.as_str()).or_default();
            v.0 += 1;
            if is_token_issued(e) {
                v.1 += 1;
            }
            if e.decision == Decision::Deny {
                v.2 += 1;
            }
        }
    }
    let rows: Vec<Vec<String>> = d
        .agents
        .iter()
        .map(|a| {
            let (n, t, den) = per.get(a.id.as_str()).copied().unwrap_or_default();
            vec![
                a.name.clone(),
                a.owner.clone().unwrap_or_else(|| "–".into()),
                a.status.clone(),
                a.trust.clone(),
                a.scopes.len().to_string(),
                n.to_string(),
                t.to_string(),
                if den > 0 {
                    format!("!deny:{den}")
                } else {
                    "0".into()
                },
            ]
        })
        .collect();
    if rows.is_empty() {
        p.para(9.0, Face::Sans, MUTED, "No agents are registered.", 0.0);
    } else {
        table(
            p,
            &[
                ("AGENT", 128.0),
                ("OWNER", 70.0),
                ("STATUS", 54.0),
                ("TRUST", 62.0),
                ("SCOPES", 40.0),
                ("EVENTS", 42.0),
                ("TOKENS", 42.0),
                ("DENIALS", 45.0),
            ],
            &rows,
            8.0,
            None,
        );
    }
    p.heading("People", 12.0);
    if d.people.is_empty() {
        p.para(
            9.0,
            Face::Sans,
            MUTED,
            "No team member made a change, owns an agent or was acted for in these events.",
            0.0,
        );
    } else {
        let rows: Vec<Vec<String>> = d
            .people
            .iter()
            .map(|x| {
                vec![
                    x.name.clone(),
                    x.email.clone().unwrap_or_else(|| "–".into()),
                    x.changes.to_string(),
                    if x.owns.is_empty() {
                        "–".into()
                    } else {
                        x.owns.join(", ")
                    },
                    x.acted_for.to_string(),
                ]
            })
            .collect();
        table(
            p,
            &[
                ("PERSON", 130.0),
                ("EMAIL", 130.0),
                ("CHANGES", 50.0),
                ("OWNS AGENTS", 118.0),
                ("ACTED FOR", 55.0),
            ],
            &rows,
            8.0,
            None,
        );
    }
    p.heading("Events by action", 12.0);
    let mut actions: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for e in ev {
        let v = actions.entry(e.action.as_str()).or_default();
        if e.decision == Decision::Deny {
            v.1 += 1;
        } else {
            v.0 += 1;
        }
    }
    let mut rows: Vec<(&str, (usize, usize))> = actions.into_iter().collect();
    rows.sort_by(|a, b| (b.1.0 + b.1.1).cmp(&(a.1.0 + a.1.1)).then(a.0.cmp(b.0)));
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|(a, (ok, deny))| {
            vec![
                a.to_string(),
                ok.to_string(),
                if *deny > 0 {
                    format!("!deny:{deny}")
                } else {
                    "0".into()
                },
            ]
        })
        .collect();
    table(
        p,
        &[("ACTION", 283.0), ("ALLOWED", 100.0), ("DENIED", 100.0)],
        &rows,
        8.0,
        None,
    );
}

fn agents(p: &mut Pages<'_>, d: &ReportData) {
    if d.agents.is_empty() {
        return;
    }
    p.page("Agents");
    p.heading("Agents", 16.0);
    let mut by_agent: BTreeMap<&str, Vec<&AuditEvent>> = BTreeMap::new();
    for e in &d.events {
        if let Some(a) = &e.agent {
            by_agent.entry(a.as_str()).or_default().push(e);
        }
    }
    for (i, a) in d.agents.iter().enumerate() {
        if i > 0 {
            p.need(200.0);
            p.y += 10.0;
        }
        p.heading(&a.name, 13.0);
        let evs = by_agent.get(a.id.as_str()).cloned().unwrap_or_default();
        let facts = vec![
            ("Purpose", a.purpose.clone()),
            (
                "Owner",
                a.owner.clone().unwrap_or_else(|| "none assigned".into()),
            ),
            (
                "Status",
                match &a.status_reason {
                    Some(r) => format!("{} ({r})", a.status),
                    None => a.status.clone(),
                },
            ),
            ("Trust", a.trust.clone()),
            ("Registered", a.created.clone()),
            (
                "Scopes",
                if a.scopes.is_empty() {
                    "none".into()
                } else {
                    a.scopes.join(", ")
                },
            ),
            (
                "In this period",
                format!(
                    "{} events, {} tokens issued, {} denied, {} revoked",
                    evs.len(),
                    evs.iter().filter(|e| is_token_issued(e)).count(),
                    evs.iter().filter(|e| e.decision == Decision::Deny).count(),
                    evs.iter().filter(|e| is_revocation(e)).count()
                ),
            ),
        ];
        for (k, v) in facts {
            let lines = p.fonts.wrap(Face::Sans, 8.5, &v, CONTENT_W - 90.0);
            p.need(12.0 * lines.len() as f32 + 2.0);
            p.y += 12.0;
            p.text(MARGIN, p.y, 8.0, Face::Sans, MUTED, k);
            for (j, l) in lines.iter().enumerate() {
                if j > 0 {
                    p.y += 11.0;
                }
                p.text(MARGIN + 90.0, p.y, 8.5, Face::Sans, INK, l);
            }
        }
        if evs.is_empty() {
            p.y += 4.0;
            p.para(
                8.5,
                Face::Sans,
                MUTED,
                "No events about this agent in this period.",
                0.0,
            );
            continue;
        }
        p.y += 6.0;
        let long = evs.len() > TIMELINE_MAX;
        if long {
            month_table(p, &evs);
            p.y += 4.0;
            p.para(
                8.0,
                Face::Sans,
                MUTED,
                &format!(
                    "Its latest {TIMELINE_RECENT} events (the other {} are in the attached \
                     bundle):",
                    evs.len() - TIMELINE_RECENT
                ),
                0.0,
            );
        }
        let skip = if long { evs.len() - TIMELINE_RECENT } else { 0 };
        let shown: Vec<Vec<String>> = evs
            .iter()
            .skip(skip)
            .map(|e| {
                vec![
                    format!("#{}", e.seq),
                    short_time(&e.time),
                    e.action.clone(),
                    if e.decision == Decision::Deny {
                        format!(
                            "!deny:{}",
                            e.reason.clone().unwrap_or_else(|| "denied".into())
                        )
                    } else {
                        e.reason.clone().unwrap_or_else(|| "allowed".into())
                    },
                    actor_text(e),
                ]
            })
            .collect();
        table(
            p,
            &[
                ("#", 44.0),
                ("TIME (UTC)", 88.0),
                ("EVENT", 110.0),
                ("OUTCOME", 126.0),
                ("BY", 115.0),
            ],
            &shown,
            7.5,
            Some(3),
        );
    }
}

/// Counts per month of `events`: events, tokens issued, denials, revocations, changes made by
/// people.
fn month_rows(events: &[&AuditEvent]) -> Vec<Vec<String>> {
    use mandate_core::audit::actor_kind;
    let mut per: BTreeMap<String, [usize; 5]> = BTreeMap::new();
    for e in events {
        let v = per.entry(month_of(&e.time)).or_default();
        v[0] += 1;
        if is_token_issued(e) {
            v[1] += 1;
        }
        if e.decision == Decision::Deny {
            v[2] += 1;
        }
        if is_revocation(e) {
            v[3] += 1;
        }
        if matches!(
            e.actor.kind.as_str(),
            actor_kind::MEMBER | actor_kind::OS_USER | actor_kind::APP
        ) {
            v[4] += 1;
        }
    }
    per.into_iter()
        .map(|(m, v)| {
            vec![
                m,
                v[0].to_string(),
                v[1].to_string(),
                if v[2] > 0 {
                    format!("!deny:{}", v[2])
                } else {
                    "0".into()
                },
                v[3].to_string(),
                v[4].to_string(),
            ]
        })
        .collect()
}

fn month_table(p: &mut Pages<'_>, events: &[&AuditEvent]) {
    table(
        p,
        &[
            ("MONTH", 73.0),
            ("EVENTS", 82.0),
            ("TOKENS ISSUED", 82.0),
            ("DENIED", 82.0),
            ("REVOCATIONS", 82.0),
            ("BY PEOPLE", 82.0),
        ],
        &month_rows(events),
        7.5,
        None,
    );
}

fn appendix(p: &mut Pages<'_>, d: &ReportData) {
    if d.events.len() > APPENDIX_MAX {
        return appendix_summarised(p, d);
    }
    p.page("Appendix: events");
    p.heading("Appendix: every event", 16.0);
    p.para(
        8.0,
        Face::Sans,
        MUTED,
        "Each event as recorded, oldest first. The attached bundle holds the same events in \
         canonical JSON with their hashes; where they differ, the bundle is authoritative.",
        0.0,
    );
    p.y += 6.0;
    let rows: Vec<Vec<String>> = d
        .events
        .iter()
        .map(|e| {
            vec![
                format!("#{}", e.seq),
                short_time(&e.time),
                actor_text(e),
                e.action.clone(),
                target_text(e),
                if e.decision == Decision::Deny {
                    "!deny:deny".into()
                } else {
                    "allow".into()
                },
            ]
        })
        .collect();
    table(
        p,
        &[
            ("#", 40.0),
            ("TIME (UTC)", 82.0),
            ("BY", 110.0),
            ("ACTION", 110.0),
            ("TARGET", 98.0),
            ("DECISION", 43.0),
        ],
        &rows,
        6.8,
        None,
    );
}

/// The appendix of a long trail: months, the changes people made by kind and denials by
/// reason; each event is in the attached bundle.
fn appendix_summarised(p: &mut Pages<'_>, d: &ReportData) {
    use mandate_core::audit::actor_kind;
    p.page("Appendix: events");
    p.heading("Appendix: the events, summarised", 16.0);
    p.para(
        8.0,
        Face::Sans,
        MUTED,
        &format!(
            "These {} events are too many to print one by one and stay readable. Below: the \
             events of each month, the changes people made by kind, and the denials by \
             reason. The attached bundle holds every event in canonical JSON with its hash, \
             one per line, for any JSON tool; `mandate audit export --format jsonl` writes \
             them for a SIEM.",
            d.events.len()
        ),
        0.0,
    );
    p.heading("Events per month", 12.0);
    let all: Vec<&AuditEvent> = d.events.iter().collect();
    month_table(p, &all);
    let changes: Vec<&AuditEvent> = d
        .events
        .iter()
        .filter(|e| {
            matches!(
                e.actor.kind.as_str(),
                actor_kind::MEMBER | actor_kind::OS_USER | actor_kind::APP
            )
        })
        .collect();
    p.heading("Changes made by people", 12.0);
    if changes.is_empty() {
        p.para(
            9.0,
            Face::Sans,
            MUTED,
            "No person made a change in these events.",
            0.0,
        );
    } else {
        p.para(
            8.0,
            Face::Sans,
            MUTED,
            "Each kind of change, by the person who made it. The access changes and the \
             custody events sections list the ones that change what an agent may do or hold \
             one by one.",
            0.0,
        );
        // (person, action) -> (times, first, last)
        let mut per: BTreeMap<(String, String), (usize, String, String)> = BTreeMap::new();
        for e in &changes {
            let v = per
                .entry((e.actor.describe(), e.action.clone()))
                .or_insert_with(|| (0, e.time.clone(), e.time.clone()));
            v.0 += 1;
            v.2 = e.time.clone();
        }
        let more = per.len().saturating_sub(PEOPLE_CHANGES_MAX);
        let rows: Vec<Vec<String>> = per
            .into_iter()
            .take(PEOPLE_CHANGES_MAX)
            .map(|((who, action), (n, first, last))| {
                vec![
                    who,
                    action,
                    n.to_string(),
                    short_time(&first),
                    short_time(&last),
                ]
            })
            .collect();
        table(
            p,
            &[
                ("BY", 120.0),
                ("ACTION", 125.0),
                ("TIMES", 46.0),
                ("FIRST (UTC)", 96.0),
                ("LAST (UTC)", 96.0),
            ],
            &rows,
            7.5,
            None,
        );
        if more > 0 {
            p.para(
                8.0,
                Face::Sans,
                MUTED,
                &format!("… and {more} more kinds, in the attached bundle."),
                0.0,
            );
        }
    }
    let mut reasons: BTreeMap<(String, String), usize> = BTreeMap::new();
    for e in d.events.iter().filter(|e| e.decision == Decision::Deny) {
        *reasons
            .entry((
                e.action.clone(),
                e.reason
                    .clone()
                    .unwrap_or_else(|| "no reason recorded".into()),
            ))
            .or_default() += 1;
    }
    p.heading("Denials by reason", 12.0);
    if reasons.is_empty() {
        p.para(
            9.0,
            Face::Sans,
            MUTED,
            "Nothing was denied in these events.",
            0.0,
        );
        return;
    }
    let mut rows: Vec<((String, String), usize)> = reasons.into_iter().collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let more = rows.len().saturating_sub(DENIAL_REASONS_MAX);
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .take(DENIAL_REASONS_MAX)
        .map(|((a, r), n)| vec![a, r, format!("!deny:{n}")])
        .collect();
    table(
        p,
        &[("ACTION", 100.0), ("REASON", 323.0), ("TIMES", 60.0)],
        &rows,
        7.5,
        Some(1),
    );
    if more > 0 {
        p.para(
            8.0,
            Face::Sans,
            MUTED,
            &format!("… and {more} rarer reasons, in the attached bundle."),
            0.0,
        );
    }
}
