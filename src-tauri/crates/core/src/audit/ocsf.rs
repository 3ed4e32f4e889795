//! OCSF-shaped events for SIEMs (`mandate audit export --format jsonl`, syslog streaming).
//!
//! Each audit event becomes one object in the Open Cybersecurity Schema Framework 1.3 shape:
//! token events as Authentication (class 3002), every other change as Account Change (class
//! 3001), both in the Identity & Access Management category (3). The original event travels
//! unchanged under `unmapped.mandate`, with its sequence number in `metadata.sequence`, so a
//! SIEM rule can always go back to the signed log.
//!
//! What it is not: evidence. OCSF objects carry no hashes or proofs; the evidence bundle does.

use chrono::DateTime;
use serde_json::{Value, json};

use super::{AuditEvent, Decision};

/// The OCSF object for one event of the log named `origin`.
pub fn to_ocsf(origin: &str, ev: &AuditEvent) -> Value {
    let token = ev.action.starts_with("token.");
    let (class_uid, class_name) = if token {
        (3002, "Authentication")
    } else {
        (3001, "Account Change")
    };
    let (activity_id, activity_name) = match ev.action.rsplit('.').next().unwrap_or("") {
        "issued" | "exchanged" if token => (1, "Logon"),
        "revoked" if token => (2, "Logoff"),
        "added" | "created" | "key_created" if !token => (1, "Create"),
        "revoked" | "removed" if !token => (6, "Delete"),
        "suspended" if !token => (4, "Lock"),
        "resumed" | "reinstated" if !token => (5, "Unlock"),
        _ => (99, "Other"),
    };
    let time_ms = DateTime::parse_from_rfc3339(&ev.time)
        .map(|t| t.timestamp_millis())
        .unwrap_or(0);
    let (status_id, status, severity_id) = match ev.decision {
        Decision::Allow => (1, "Success", 1),
        Decision::Deny => (2, "Failure", 3),
    };
    let user = |a: &super::Actor| json!({"uid": a.id, "name": a.name, "type": a.kind});
    let mut o = json!({
        "category_uid": 3,
        "category_name": "Identity & Access Management",
        "class_uid": class_uid,
        "class_name": class_name,
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": class_uid * 100 + activity_id,
        "time": time_ms,
        "severity_id": severity_id,
        "status_id": status_id,
        "status": status,
        "message": format!("{} {} ({})", ev.actor.name, ev.action, ev.decision.as_str()),
        "actor": {"user": user(&ev.actor)},
        "metadata": {
            "version": "1.3.0",
            "product": {"name": "Mandate", "vendor_name": "Mandate"},
            "log_name": origin,
            "uid": format!("{origin}/{}", ev.seq),
            "sequence": ev.seq,
        },
        "unmapped": {"mandate": ev},
    });
    if let Some(r) = &ev.reason {
        o["status_detail"] = json!(r);
    }
    if let Some(t) = &ev.target {
        o["user"] = json!({"uid": t.id, "name": t.name, "type": t.kind});
    }
    if let Some(b) = &ev.on_behalf_of {
        o["actor"]["invoked_by"] = json!(b.name);
        o["actor"]["authorizations"] =
            json!([{"decision": "delegated", "policy": {"uid": b.id, "name": b.name}}]);
    }
    o
}
