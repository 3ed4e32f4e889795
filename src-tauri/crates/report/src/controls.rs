//! The control mapping: which sections of the report bear on SOC 2 CC6.1, CC6.2, CC6.3, CC7.2
//! and CC8.1 and on ISO/IEC 27001:2022 Annex A 5.15 to 5.18, 8.15 and 8.16, what the evidence
//! shows for each, and, as plainly, what it does not.
//!
//! What it is not: an assessment. The wording supports an auditor's judgement and claims
//! nothing the attached evidence cannot show; docs/REPORT.md explains each row.

use crate::ReportData;
use crate::layout::*;

/// One row: control, its name, the report's sections that bear on it, what they show, what
/// they do not show.
pub struct Control {
    pub id: &'static str,
    pub name: &'static str,
    pub sections: &'static str,
    pub shows: &'static str,
    pub not: &'static str,
}

pub const CONTROLS: &[Control] = &[
    Control {
        id: "SOC 2 CC6.1",
        name: "Logical access security: identification, authentication, restriction of access",
        sections: "Agents; Connections and secrets; How to verify",
        shows: "Each agent has its own identity and Ed25519 key; every token issued or refused \
                is an event naming the agent, the scopes and the decision. Tokens are \
                short-lived and signed by the issuer key on the cover. Connection secrets stay \
                in the OS keychain and reach a program only against a valid token, each \
                hand-over recorded.",
        not: "That the services agents call enforce the tokens, or that no agent used \
              credentials outside Mandate (see the credential scan).",
    },
    Control {
        id: "SOC 2 CC6.2",
        name: "Registering and authorising users before issuing credentials; removing them",
        sections: "Access changes; Agents; Summary (people)",
        shows: "Agent registration, key registration and rotation, suspension and revocation \
                are events naming the person who made them, in order, before any token for \
                that agent.",
        not: "Whether the person approving was entitled to, beyond being a registered team \
              member; approvals made outside Mandate.",
    },
    Control {
        id: "SOC 2 CC6.3",
        name: "Role-based access, least privilege, changes to access",
        sections: "Access changes; Agents",
        shows: "Scopes are explicit connection:action grants without wildcards; every grant \
                and withdrawal is listed with who made it; denials show requests beyond the \
                grant being refused.",
        not: "Whether each grant was the minimum needed for the agent's purpose: that is a \
              judgement for the reviewer.",
    },
    Control {
        id: "SOC 2 CC7.2",
        name: "Monitoring for anomalies and security events",
        sections: "Summary; Agents; Appendix",
        shows: "Denials, revocations and trust changes are recorded with reasons; the log is \
                tamper-evident (hash chain, signed Merkle checkpoints) and can be streamed to \
                a SIEM.",
        not: "That anyone reviewed the events or acted on alerts; this report is not evidence \
              of review.",
    },
    Control {
        id: "SOC 2 CC8.1",
        name: "Changes are authorised, documented, approved and implemented",
        sections: "Access changes; Connections and secrets; Approvals and attestations, when used",
        shows: "Every change to agents, scopes, connections, secrets, keys and settings is an \
                event with the person who made it and when, in the order made; where approval \
                rules are set, each request and its answer.",
        not: "Review or testing before a change, or change management for software and \
              infrastructure outside Mandate.",
    },
    Control {
        id: "ISO 27001:2022 A.5.15",
        name: "Access control",
        sections: "Agents; Access changes; Connections and secrets",
        shows: "Access rules per agent (scopes, trust floors per connection) and each decision \
                made under them.",
        not: "The written access control policy itself.",
    },
    Control {
        id: "ISO 27001:2022 A.5.16",
        name: "Identity management",
        sections: "Agents; Access changes; Summary (people)",
        shows: "The full life cycle of each agent identity: created, edited, suspended, \
                revoked, with owner, purpose and the person who acted.",
        not: "Identities of people outside the team members registered in Mandate.",
    },
    Control {
        id: "ISO 27001:2022 A.5.17",
        name: "Authentication information",
        sections: "Connections and secrets; How to verify",
        shows: "When each connection secret was stored, replaced, moved out of a file or handed \
                to a program, by whom; key creation and rotation. No secret appears in the log.",
        not: "How agents store their own private keys when they hold them outside the \
              keychain; secrets kept outside Mandate.",
    },
    Control {
        id: "ISO 27001:2022 A.5.18",
        name: "Access rights: provisioning, review, removal",
        sections: "Access changes; Approvals and attestations, when used",
        shows: "Provisioning and removal of scopes and agents, and token revocations, each with \
                actor and time; trust reviews and attestations where recorded.",
        not: "Periodic access reviews, unless recorded as events (a trust review or override \
              with a reason).",
    },
    Control {
        id: "ISO 27001:2022 A.8.15",
        name: "Logging",
        sections: "How to verify; Appendix; the attached bundle",
        shows: "Events are append-only, hash-chained, covered by signed RFC 9162 checkpoints \
                and verifiable offline from the attached bundle.",
        not: "Logs of other systems; protection against someone who also holds the issuer key \
              rewriting history before a checkpoint was shared outside.",
    },
    Control {
        id: "ISO 27001:2022 A.8.16",
        name: "Monitoring activities",
        sections: "Summary (activity chart); Agents; Appendix",
        shows: "Activity over time, denials and refusals by reason, revocations and suspensions \
                as they happened; the events can be streamed to a SIEM as they are written.",
        not: "That the activity was watched, or anomalies detected and answered; thresholds \
              and alerting outside Mandate.",
    },
];

/// The mapping page.
pub fn controls(p: &mut Pages<'_>, _d: &ReportData) {
    p.page("Controls");
    p.heading("Mapping to common controls", 16.0);
    p.para(
        8.5,
        Face::Sans,
        MUTED,
        "For each control, the sections of this report that bear on it, what their evidence \
         shows and what it does not. It supports an assessment; it is not one. ISO rows refer \
         to ISO/IEC 27001:2022 Annex A.",
        0.0,
    );
    let left = 128.0;
    let col = (CONTENT_W - left) / 2.0;
    let lead = 10.2;
    for c in CONTROLS {
        let l1 = p.fonts.wrap(Face::Sans, 7.8, c.shows, col - 10.0);
        let l2 = p.fonts.wrap(Face::Sans, 7.8, c.not, col - 10.0);
        let name = p.fonts.wrap(Face::Sans, 7.0, c.name, left - 12.0);
        let sections = format!("See: {}", c.sections);
        let secs = p.fonts.wrap(Face::Bold, 7.0, &sections, left - 14.0);
        let left_h = 20.0 + (name.len() + secs.len()) as f32 * 8.6 + 3.0;
        let lines = l1.len().max(l2.len());
        let h = (lines as f32 * lead + 16.0).max(left_h) + 2.0;
        p.need(h + 6.0);
        p.y += 6.0;
        let top = p.y;
        p.rect(MARGIN, top, CONTENT_W, h, ZEBRA);
        p.text(MARGIN + 6.0, top + 13.0, 8.0, Face::Bold, INK, c.id);
        let mut y = top + 24.0;
        for l in &name {
            p.text(MARGIN + 6.0, y, 7.0, Face::Sans, MUTED, l);
            y += 8.6;
        }
        y += 3.0;
        for l in &secs {
            p.text(MARGIN + 6.0, y, 7.0, Face::Bold, ACCENT, l);
            y += 8.6;
        }
        p.text(MARGIN + left, top + 12.0, 6.5, Face::Bold, ACCENT, "SHOWS");
        p.text(
            MARGIN + left + col,
            top + 12.0,
            6.5,
            Face::Bold,
            DENY,
            "DOES NOT SHOW",
        );
        for (i, l) in l1.iter().enumerate() {
            p.text(
                MARGIN + left,
                top + 23.0 + i as f32 * lead,
                7.8,
                Face::Sans,
                INK,
                l,
            );
        }
        for (i, l) in l2.iter().enumerate() {
            p.text(
                MARGIN + left + col,
                top + 23.0 + i as f32 * lead,
                7.8,
                Face::Sans,
                INK,
                l,
            );
        }
        p.y = top + h;
    }
}
