//! The report's accountability sections: connections and the custody of their secrets, scope
//! grants and withdrawals, approvals and attestations, and the signing key with how to verify.
//!
//! Each reads only the exported events (plus the registry's list of connections) and says who
//! did what. None of them ever shows a secret: the events hold none, and these sections print
//! only what the events say happened to one (set, replaced, moved from a file, handed over).
//! Long trails stay short: the routine part (hand-overs, broker use) is counted per connection
//! and month once it would run past a few pages, and the full list is in the attached bundle.
//!
//! What it is not: the evidence. The attached bundle is; these pages are a reading aid.

use std::collections::BTreeMap;

use mandate_core::audit::{AuditEvent, Decision};

use crate::ReportData;
use crate::content::{actor_text, month_of, short_time, table};
use crate::layout::*;

/// Custody events listed one by one before hand-overs and broker use are counted per month.
const CUSTODY_LIST_MAX: usize = 120;
/// Scope changes, and approvals, listed before the rest is left to the bundle.
const CHANGES_LIST_MAX: usize = 250;

fn strs(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

fn connection_of(e: &AuditEvent) -> String {
    e.target
        .as_ref()
        .filter(|t| t.kind == "connection")
        .map(|t| {
            if t.name.is_empty() {
                t.id.clone()
            } else {
                t.name.clone()
            }
        })
        .unwrap_or_else(|| "–".into())
}

fn agent_name(d: &ReportData, e: &AuditEvent) -> String {
    let id = e.agent.as_deref().unwrap_or_default();
    d.agents
        .iter()
        .find(|a| a.id == id)
        .map(|a| a.name.clone())
        .or_else(|| {
            e.target
                .as_ref()
                .filter(|t| t.kind == "agent" && !t.name.is_empty())
                .map(|t| t.name.clone())
        })
        .or_else(|| (e.actor.kind == "agent").then(|| e.actor.name.clone()))
        .unwrap_or_else(|| id.to_string())
}

/// What happened to a connection or its secret, in words; `None` for events that are not
/// about custody. Routine ones (hand-overs, broker use) are flagged so long trails count them.
fn custody_text(e: &AuditEvent) -> Option<(String, bool)> {
    let d = &e.details;
    let s = |k: &str| d[k].as_str().map(str::to_string);
    let text = match e.action.as_str() {
        "connection.added" => match s("base_url") {
            Some(u) if !u.starts_with("urn:mandate:connection:") => {
                format!("connection added ({u})")
            }
            _ => "connection added".into(),
        },
        "connection.edited" => "connection edited".into(),
        "connection.removed" => "connection removed; its secret deleted".into(),
        "connection.broker_configured" => "broker settings changed".into(),
        "connection.secret_set" | "connection.secret_replaced" => {
            let verb = if e.action == "connection.secret_set" {
                "secret stored"
            } else {
                "secret replaced"
            };
            let place = match s("stored_in").as_deref() {
                Some("os-keychain") | None => "in the OS keychain".to_string(),
                Some(other) => format!("in {other}"),
            };
            let mut t = format!("{verb} {place}");
            if s("source").as_deref() == Some("moved_from_file") {
                t.push_str(&format!(
                    ", moved from {}{}",
                    s("file").unwrap_or_else(|| "a file".into()),
                    d["line"]
                        .as_u64()
                        .map(|l| format!(" line {l}"))
                        .unwrap_or_default()
                ));
            }
            let affected = strs(&d["agents_affected"]);
            if !affected.is_empty() {
                t.push_str(&format!("; {} agent(s) use it", affected.len()));
            }
            t
        }
        "credential.moved_to_keychain" => format!(
            "taken out of {}{}{}: {}",
            s("file").unwrap_or_else(|| "a file".into()),
            d["line"]
                .as_u64()
                .map(|l| format!(" line {l}"))
                .unwrap_or_default(),
            s("variable")
                .map(|v| format!(" (${v})"))
                .unwrap_or_default(),
            if d["file_rewritten"].as_bool() == Some(true) {
                "the file was rewritten without it"
            } else {
                "the file keeps its copy until someone deletes the line"
            }
        ),
        "credential.move_undone" => format!(
            "move undone: put back in {}",
            s("file").unwrap_or_else(|| "its file".into())
        ),
        "secret.handed_over" => {
            let mut t = format!(
                "handed to a program as ${}",
                s("variable").unwrap_or_else(|| "?".into())
            );
            if let Some(by) = d["started_by"]["name"].as_str() {
                t.push_str(&format!(", started by {by}"));
            }
            return Some((t, true));
        }
        "secret.handover_denied" => {
            return Some((
                format!(
                    "!deny:hand-over refused: {}",
                    e.reason.clone().unwrap_or_else(|| "denied".into())
                ),
                true,
            ));
        }
        "proxy.allowed" | "proxy.completed" => return Some(("used by the broker".into(), true)),
        "proxy.denied" => return Some(("!deny:broker refused the request".into(), true)),
        "secrets.sealing_key_created" => "the team server's sealing key created".into(),
        "secrets.sealing_key_rotated" => "the team server's sealing key rotated".into(),
        _ => return None,
    };
    Some((text, false))
}

/// Connections, and every change of custody of their secrets.
pub fn custody(p: &mut Pages<'_>, d: &ReportData) {
    // After the access changes on the same page when there is room.
    if !p.need(300.0) {
        p.y += 16.0;
    }
    p.heading("Connections and secrets", 16.0);
    p.para(
        8.5,
        Face::Sans,
        MUTED,
        "Which services agents reach through Mandate, and what happened to each one's secret: \
         when it was stored, replaced, moved out of a file or handed to a program, and by whom. \
         No secret value appears in this report or in the attached evidence; the events record \
         only that these things happened.",
        0.0,
    );
    p.y += 4.0;
    if d.connections.is_empty() {
        p.para(
            9.0,
            Face::Sans,
            MUTED,
            "No connection existed when this report was generated.",
            0.0,
        );
    } else {
        let rows: Vec<Vec<String>> = d
            .connections
            .iter()
            .map(|c| {
                vec![
                    c.name.clone(),
                    if c.address.starts_with("urn:mandate:connection:") {
                        "a database (its URL is the secret)".into()
                    } else {
                        c.address.clone()
                    },
                    if c.has_secret {
                        "held by Mandate".into()
                    } else {
                        "none stored".into()
                    },
                    c.secret_changed
                        .as_deref()
                        .map(|t| t.trim_end_matches(" UTC").to_string())
                        .unwrap_or_else(|| "–".into()),
                    if c.granted_to.is_empty() {
                        "no agent".into()
                    } else {
                        c.granted_to.join(", ")
                    },
                ]
            })
            .collect();
        table(
            p,
            &[
                ("CONNECTION", 68.0),
                ("ADDRESS", 142.0),
                ("SECRET", 72.0),
                ("CHANGED (UTC)", 94.0),
                ("AGENTS WITH SCOPES", 107.0),
            ],
            &rows,
            7.8,
            Some(4),
        );
    }
    let events: Vec<(&AuditEvent, String, bool)> = d
        .events
        .iter()
        .filter_map(|e| custody_text(e).map(|(t, routine)| (e, t, routine)))
        .collect();
    p.heading("Custody events", 12.0);
    if events.is_empty() {
        p.para(
            9.0,
            Face::Sans,
            MUTED,
            "No connection or secret changed hands in these events.",
            0.0,
        );
        return;
    }
    let long = events.len() > CUSTODY_LIST_MAX;
    let listed: Vec<&(&AuditEvent, String, bool)> =
        events.iter().filter(|(_, _, r)| !long || !r).collect();
    if long {
        p.para(
            8.0,
            Face::Sans,
            MUTED,
            &format!(
                "{} custody events: every change to a connection or its secret is listed; \
                 hand-overs to programs and use by the broker are counted per month below, and \
                 each one is in the attached bundle.",
                events.len()
            ),
            0.0,
        );
    }
    let rows: Vec<Vec<String>> = listed
        .iter()
        .take(CHANGES_LIST_MAX)
        .map(|(e, t, _)| {
            vec![
                short_time(&e.time),
                connection_of(e),
                t.clone(),
                actor_text(e),
            ]
        })
        .collect();
    if !rows.is_empty() {
        table(
            p,
            &[
                ("TIME (UTC)", 88.0),
                ("CONNECTION", 72.0),
                ("WHAT HAPPENED", 208.0),
                ("BY", 115.0),
            ],
            &rows,
            7.5,
            Some(2),
        );
    }
    if listed.len() > CHANGES_LIST_MAX {
        p.para(
            8.0,
            Face::Sans,
            MUTED,
            &format!(
                "… and {} more changes, oldest first in the attached bundle.",
                listed.len() - CHANGES_LIST_MAX
            ),
            0.0,
        );
    }
    if long {
        // (connection, month) -> (handed over, refused, broker use, broker refused)
        let mut per: BTreeMap<(String, String), [usize; 4]> = BTreeMap::new();
        for (e, _, routine) in &events {
            if !routine {
                continue;
            }
            let v = per
                .entry((connection_of(e), month_of(&e.time)))
                .or_default();
            let i = match (e.action.as_str(), e.decision) {
                ("secret.handed_over", _) => 0,
                ("secret.handover_denied", _) => 1,
                (_, Decision::Deny) => 3,
                _ => 2,
            };
            v[i] += 1;
        }
        let deny = |n: usize| {
            if n > 0 {
                format!("!deny:{n}")
            } else {
                "0".into()
            }
        };
        let rows: Vec<Vec<String>> = per
            .into_iter()
            .map(|((c, m), v)| {
                vec![
                    c,
                    m,
                    v[0].to_string(),
                    deny(v[1]),
                    v[2].to_string(),
                    deny(v[3]),
                ]
            })
            .collect();
        p.heading("Hand-overs and broker use per month", 11.0);
        table(
            p,
            &[
                ("CONNECTION", 110.0),
                ("MONTH", 60.0),
                ("HANDED OVER", 75.0),
                ("REFUSED", 70.0),
                ("BROKER USE", 85.0),
                ("BROKER REFUSED", 83.0),
            ],
            &rows,
            7.5,
            None,
        );
    }
}

/// A scope change in words, with the agent it concerns; `None` when the event is not one.
fn scope_change(e: &AuditEvent) -> Option<String> {
    let d = &e.details;
    let list = |k: &str| strs(&d[k]).join(", ");
    match e.action.as_str() {
        "agent.created" => {
            let s = list("scopes");
            Some(if s.is_empty() {
                "registered with no scopes".into()
            } else {
                format!("registered; granted {s}")
            })
        }
        "agent.edited" => {
            let mut parts = Vec::new();
            let added = list("scopes_added");
            if !added.is_empty() {
                parts.push(format!("granted {added}"));
            }
            let removed = list("scopes_removed");
            if !removed.is_empty() {
                let mut t = format!("withdrew {removed}");
                if let Some(p) = d["because_parent"].as_str() {
                    t.push_str(&format!(" (its parent agent {p} lost them)"));
                }
                parts.push(t);
            }
            (!parts.is_empty()).then(|| parts.join("; "))
        }
        "agent.suspended" => Some(format!(
            "suspended: no tokens until resumed{}",
            e.reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        )),
        "agent.resumed" => Some("resumed".into()),
        "agent.revoked" => Some(format!(
            "revoked: every scope withdrawn, its tokens refused{}",
            e.reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        )),
        "delegation.added" => Some("may now act on a member's behalf".into()),
        "delegation.revoked" => Some("may no longer act on a member's behalf".into()),
        _ => None,
    }
}

/// Every grant and withdrawal of access, with who made it.
pub fn scope_changes(p: &mut Pages<'_>, d: &ReportData) {
    p.page("Access changes");
    p.heading("Access changes", 16.0);
    p.para(
        8.5,
        Face::Sans,
        MUTED,
        "Every grant and withdrawal of what an agent may do: the scopes granted when it was registered, \
         scopes added and withdrawn later, suspensions and revocations, each with the person \
         who made it. A scope is one action on one connection (connection:action), never a \
         wildcard.",
        0.0,
    );
    p.y += 4.0;
    let rows: Vec<Vec<String>> = d
        .events
        .iter()
        .filter(|e| e.decision == Decision::Allow)
        .filter_map(|e| {
            scope_change(e).map(|t| vec![short_time(&e.time), agent_name(d, e), t, actor_text(e)])
        })
        .collect();
    if rows.is_empty() {
        p.para(
            9.0,
            Face::Sans,
            MUTED,
            "No agent's access changed in these events.",
            0.0,
        );
        return;
    }
    table(
        p,
        &[
            ("TIME (UTC)", 88.0),
            ("AGENT", 92.0),
            ("CHANGE", 188.0),
            ("BY", 115.0),
        ],
        &rows[..rows.len().min(CHANGES_LIST_MAX)],
        7.5,
        Some(2),
    );
    if rows.len() > CHANGES_LIST_MAX {
        p.para(
            8.0,
            Face::Sans,
            MUTED,
            &format!(
                "… and {} more access changes, in the attached bundle.",
                rows.len() - CHANGES_LIST_MAX
            ),
            0.0,
        );
    }
}

/// Whether an event is an approval, an attestation or a trust review.
pub fn is_approval_or_attestation(e: &AuditEvent) -> bool {
    e.action.starts_with("approval.")
        || e.action.starts_with("attestation.")
        || e.action.starts_with("attestor.")
        || e.action == "agent.reviewed"
        || e.action == "agent.trust_overridden"
}

fn approval_text(e: &AuditEvent) -> String {
    let d = &e.details;
    let s = |k: &str| d[k].as_str().map(str::to_string);
    let why = e
        .reason
        .as_ref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    let t = match e.action.as_str() {
        "approval.requested" => format!(
            "approval requested for {}{why}",
            s("action").unwrap_or_else(|| "an action".into())
        ),
        "approval.approved" => match s("valid_until") {
            Some(until) => format!("approved until {} UTC{why}", short_time(&until)),
            None => format!("approved once{why}"),
        },
        "approval.denied" => format!("!deny:approval refused{why}"),
        "approval.expired" => "approval request expired unanswered".into(),
        "approval.refused" => format!("!deny:approval attempt by another person refused{why}"),
        "approval.rule_set" => format!("approval rule set{why}"),
        "attestation.added" => format!(
            "attestation by {}: {}{}",
            s("attestor").unwrap_or_else(|| "an attestor".into()),
            s("result").unwrap_or_else(|| "recorded".into()),
            s("expires")
                .map(|x| format!(", valid until {}", short_time(&x)))
                .unwrap_or_default()
        ),
        "attestation.refused" => format!("!deny:attestation refused{why}"),
        "attestor.revoked" => format!(
            "attestor revoked; {} attestation(s) withdrawn{why}",
            d["attestations_withdrawn"].as_u64().unwrap_or(0)
        ),
        "agent.reviewed" => format!("trust reviewed{why}"),
        "agent.trust_overridden" => match s("override") {
            Some(state) => format!("trust set by hand to {state}{why}"),
            None => format!("manual trust decision cleared{why}"),
        },
        other => format!("{other}{why}"),
    };
    if e.decision == Decision::Deny && !t.starts_with("!deny:") {
        format!("!deny:{t}")
    } else {
        t
    }
}

/// Approvals, attestations and trust reviews; a page only when the events hold some.
pub fn approvals(p: &mut Pages<'_>, d: &ReportData) {
    let events: Vec<&AuditEvent> = d
        .events
        .iter()
        .filter(|e| is_approval_or_attestation(e))
        .collect();
    if events.is_empty() {
        return;
    }
    p.need(140.0);
    p.heading("Approvals and attestations", 14.0);
    p.para(
        8.5,
        Face::Sans,
        MUTED,
        "Requests that needed a person's approval and how each was answered, attestations \
         about agents (who signed them and until when), and trust reviews and overrides made by \
         people.",
        0.0,
    );
    p.y += 4.0;
    let rows: Vec<Vec<String>> = events
        .iter()
        .take(CHANGES_LIST_MAX)
        .map(|e| {
            vec![
                short_time(&e.time),
                agent_name(d, e),
                approval_text(e),
                actor_text(e),
            ]
        })
        .collect();
    table(
        p,
        &[
            ("TIME (UTC)", 88.0),
            ("AGENT", 92.0),
            ("WHAT", 188.0),
            ("BY", 115.0),
        ],
        &rows,
        7.5,
        Some(2),
    );
    if events.len() > CHANGES_LIST_MAX {
        p.para(
            8.0,
            Face::Sans,
            MUTED,
            &format!(
                "… and {} more, in the attached bundle.",
                events.len() - CHANGES_LIST_MAX
            ),
            0.0,
        );
    }
}

/// The signing key's anchor and how to check the report, in plain words.
/// The witnesses that cosigned the log's checkpoints (team servers only; nothing when none).
fn witnesses(p: &mut Pages<'_>, d: &ReportData) {
    if d.witnesses.is_empty() {
        return;
    }
    p.y += 8.0;
    p.heading("Witnesses", 12.0);
    p.para(
        8.8,
        Face::Sans,
        INK,
        "Each witness below is a machine outside this team server (a founder's desktop) that \
         checked the log only ever grew, with an RFC 9162 consistency proof against every \
         checkpoint it saw before, and then cosigned it (C2SP cosignature/v1). Whoever runs \
         the server cannot rewrite history a witness saw without that witness refusing to \
         cosign again. Ask each witness for \
         its verifier key (`mandate team witness key` on its machine), over a channel other \
         than the one that brought this PDF, and run `mandate audit verify <this file> \
         --witness <key>`: it fails unless that witness cosigned a checkpoint in the evidence.",
        0.0,
    );
    p.y += 2.0;
    let rows: Vec<Vec<String>> = d
        .witnesses
        .iter()
        .map(|w| {
            vec![
                w.name.clone(),
                w.key_id.clone(),
                format!("{} events", w.size),
                mandate_audit_format::verify::unix_time_text(w.timestamp) + " UTC",
            ]
        })
        .collect();
    table(
        p,
        &[
            ("WITNESS", 190.0),
            ("KEY ID", 70.0),
            ("COSIGNED CHECKPOINT", 110.0),
            ("AT", 113.0),
        ],
        &rows,
        7.5,
        None,
    );
}

pub fn verifying(p: &mut Pages<'_>, d: &ReportData) {
    p.page("How to verify");
    p.heading("How to verify this report", 16.0);
    p.para(
        9.0,
        Face::Sans,
        INK,
        "The \"Verification: PASSED\" box on the cover is what the generator found when it made \
         this PDF. It is a claim, not a proof: anyone can type PASSED into a document. Check it \
         yourself in three steps.",
        0.0,
    );
    let steps = [
        (
            "1. Verify the attached evidence.",
            format!(
                "This PDF carries its evidence as the attachment {}. Where the verifier page \
                 mandate-verifier.html is attached beside it, open it in any browser, offline, \
                 and drop this PDF on it; or run `mandate-verify <this file>` or `mandate audit \
                 verify <this file>`. Each recomputes every hash link, the RFC 9162 Merkle root and \
                 the Ed25519 signatures from the evidence alone. Anything other than a pass \
                 means this document is not what was signed.",
                crate::ATTACHMENT_NAME
            ),
        ),
        (
            "2. Check the signing key out of band.",
            format!(
                "The evidence is signed by the issuer key with fingerprint `{}`. A valid \
                 signature proves only that whoever held that key signed it, so compare the \
                 fingerprint with the one the organisation's Mandate app shows on its Audit \
                 screen, and with their published keys: in the output of `mandate jwks \
                 export`, the key whose \"kid\" begins with the 16 characters after \
                 \"SHA256:\". Ask for these over a channel other than the one that brought \
                 this PDF. `mandate audit verify <this file> --key {}` then accepts no other \
                 key.",
                d.key_fingerprint, d.key_fingerprint
            ),
        ),
        (
            "3. Compare the checkpoint.",
            format!(
                "The signed checkpoint covers {} events with Merkle root `{}`. Keep this report: a \
                 later one from the same organisation must contain these events unchanged. \
                 Save the signed note of the attached bundle's last `checkpoint` line as a \
                 file; `mandate audit verify <later file> --checkpoint <that file>` then proves \
                 that the log only grew since (an RFC 9162 consistency proof).",
                d.checkpoint_size, d.checkpoint_root
            ),
        ),
    ];
    for (title, body) in steps {
        p.y += 6.0;
        p.para(9.5, Face::Bold, INK, title, 0.0);
        p.para(8.8, Face::Sans, INK, &body, 12.0);
    }
    witnesses(p, d);
    p.y += 8.0;
    p.heading("The signing key", 12.0);
    let key_events: Vec<Vec<String>> = d
        .events
        .iter()
        .filter(|e| e.action.starts_with("issuer.key_"))
        .map(|e| {
            vec![
                short_time(&e.time),
                match e.action.as_str() {
                    "issuer.key_created" => "issuer key created".to_string(),
                    "issuer.key_rotated" => "issuer key rotated; the old one retired".into(),
                    other => other.to_string(),
                },
                actor_text(e),
            ]
        })
        .collect();
    p.para(
        8.5,
        Face::Sans,
        INK,
        &format!(
            "Fingerprint of the key that signed this report's checkpoint: `{}`.",
            d.key_fingerprint
        ),
        0.0,
    );
    if key_events.is_empty() {
        p.para(
            8.5,
            Face::Sans,
            MUTED,
            "The key was created before the events in this report.",
            0.0,
        );
    } else {
        p.y += 2.0;
        table(
            p,
            &[("TIME (UTC)", 88.0), ("WHAT", 250.0), ("BY", 145.0)],
            &key_events,
            7.5,
            None,
        );
    }
}
