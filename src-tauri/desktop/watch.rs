//! Notifications for events that need a person: an approval waiting, a burst of denied
//! requests, a token request from a suspended or revoked agent.
//!
//! A background thread reads the audit events appended since it last looked (every few
//! seconds; the endpoint may run in this process or in `mandate serve`) and turns the ones that
//! need a person into OS notifications. Which events those are is decided by [`notices`], a pure
//! function with tests.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use mandate_core::Mandate;
use mandate_core::audit::{AuditEvent, Decision};
use mandate_core::views::AuditFilter;
use tauri::{AppHandle, Emitter};
use tauri_plugin_notification::NotificationExt;

/// How often the trail is read.
const POLL: Duration = Duration::from_secs(3);
/// The event the window's Approvals inbox listens to, so it reloads only when something changed.
pub const APPROVALS_CHANGED: &str = "approvals-changed";

/// Whether `events` asked for, decided or closed an approval (the inbox must reload).
pub fn touches_approvals(events: &[AuditEvent]) -> bool {
    events.iter().any(|e| e.action.starts_with("approval."))
}

/// This many denials in one look is a burst worth a notification.
pub const DENIED_BURST: usize = 5;

/// A notification to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub title: String,
    pub body: String,
}

fn target_name(e: &AuditEvent) -> String {
    e.target
        .as_ref()
        .map(|t| t.name.clone())
        .unwrap_or_else(|| e.actor.name.clone())
}

/// The notices for `events` (newest first, as read). `inactive_agent` says whether an agent
/// (by id) is suspended or revoked.
pub fn notices(events: &[AuditEvent], inactive_agent: &dyn Fn(&str) -> bool) -> Vec<Notice> {
    let mut out = Vec::new();
    for e in events.iter().rev() {
        if e.action.starts_with("approval.") && e.action.ends_with("requested") {
            out.push(Notice {
                title: "An approval is waiting".into(),
                body: match e.details.get("action").and_then(|a| a.as_str()) {
                    Some(action) => format!(
                        "{} asks to call {action}{}: {}. Open Approvals in Mandate to approve \
                         or deny it.",
                        e.actor.name,
                        e.on_behalf_of
                            .as_ref()
                            .map(|m| format!(" for {}", m.name))
                            .unwrap_or_default(),
                        e.reason.clone().unwrap_or_default()
                    ),
                    None => format!(
                        "{} asks: {}. Open Mandate to approve or refuse it.",
                        e.actor.name,
                        e.reason.clone().unwrap_or_else(|| e.action.clone())
                    ),
                },
            });
        }
    }
    let mut suspended: BTreeMap<String, usize> = BTreeMap::new();
    let mut denied = 0;
    for e in events.iter().filter(|e| e.decision == Decision::Deny) {
        denied += 1;
        if e.action.starts_with("token.") && e.agent.as_deref().is_some_and(inactive_agent) {
            *suspended.entry(target_name(e)).or_default() += 1;
        }
    }
    for (agent, n) in &suspended {
        out.push(Notice {
            title: "A stopped agent asked for a token".into(),
            body: format!(
                "{agent} is suspended or revoked but asked for a token{}. If it should not be \
                 running, stop it where it runs.",
                if *n > 1 {
                    format!(" {n} times")
                } else {
                    String::new()
                }
            ),
        });
    }
    if denied >= DENIED_BURST {
        out.push(Notice {
            title: format!("{denied} requests were denied"),
            body: "Several requests were refused in the last few seconds. Open the Audit screen \
                   and filter by decision \"deny\" to see who asked for what."
                .into(),
        });
    }
    out
}

/// Start watching the trail of `m`.
pub fn spawn(app: AppHandle, m: Arc<Mandate>) {
    let spawned = std::thread::Builder::new()
        .name("mandate-watch".into())
        .spawn(move || {
            let mut last = m.audit_head().unwrap_or(0);
            loop {
                std::thread::sleep(POLL);
                let head = match m.audit_head() {
                    Ok(h) => h,
                    Err(_) => continue,
                };
                if head <= last {
                    continue;
                }
                let fresh = m
                    .audit_page(&AuditFilter::default(), 500, None)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|e| e.seq > last)
                    .collect::<Vec<_>>();
                last = head;
                if fresh.is_empty() {
                    continue;
                }
                if touches_approvals(&fresh)
                    && let Err(e) = app.emit(APPROVALS_CHANGED, ())
                {
                    tracing::debug!(error = %e, "the window was not told about an approval");
                }
                let inactive = |agent_id: &str| {
                    m.get_agent(agent_id)
                        .is_ok_and(|a| a.status != mandate_core::model::AgentStatus::Active)
                };
                for n in notices(&fresh, &inactive) {
                    if let Err(e) = app
                        .notification()
                        .builder()
                        .title(&n.title)
                        .body(&n.body)
                        .show()
                    {
                        tracing::debug!(error = %e, "a notification could not be shown");
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "notifications are off: the watcher could not start");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use mandate_core::audit::{Actor, Target};

    fn ev(seq: u64, action: &str, decision: Decision, agent: Option<&str>) -> AuditEvent {
        AuditEvent {
            v: 1,
            seq,
            time: "2026-11-23T09:00:00.000000Z".into(),
            actor: Actor::agent("a1", "billing-report-agent"),
            on_behalf_of: None,
            agent: agent.map(String::from),
            action: action.into(),
            target: Some(Target::new("agent", "a1", "billing-report-agent")),
            decision,
            reason: None,
            details: serde_json::json!({}),
        }
    }

    #[test]
    fn a_token_request_from_a_suspended_agent_needs_a_person() {
        let events = vec![ev(2, "token.denied", Decision::Deny, Some("a1"))];
        let n = notices(&events, &|id| id == "a1");
        assert_eq!(n.len(), 1);
        assert!(n[0].body.contains("billing-report-agent"));
        assert!(notices(&events, &|_| false).is_empty());
    }

    #[test]
    fn a_burst_of_denials_is_one_notice() {
        let events: Vec<_> = (0..DENIED_BURST as u64)
            .map(|i| ev(i + 1, "token.denied", Decision::Deny, None))
            .collect();
        let n = notices(&events, &|_| false);
        assert_eq!(n.len(), 1);
        assert!(n[0].title.starts_with("5 requests"));
        assert!(notices(&events[1..], &|_| false).is_empty());
    }

    #[test]
    fn ordinary_changes_need_nobody() {
        let events = vec![ev(1, "agent.created", Decision::Allow, Some("a1"))];
        assert!(notices(&events, &|_| true).is_empty());
    }

    #[test]
    fn approval_events_reload_the_inbox_and_others_do_not() {
        assert!(touches_approvals(&[ev(
            1,
            "approval.requested",
            Decision::Allow,
            None
        )]));
        assert!(touches_approvals(&[ev(
            1,
            "approval.denied",
            Decision::Deny,
            None
        )]));
        assert!(!touches_approvals(&[ev(
            1,
            "agent.created",
            Decision::Allow,
            Some("a1")
        )]));
    }

    #[test]
    fn an_approval_request_is_announced() {
        let events = vec![ev(1, "approval.requested", Decision::Allow, None)];
        assert_eq!(
            notices(&events, &|_| false)[0].title,
            "An approval is waiting"
        );
    }
}
