//! A realistic installation for tests and benchmarks: a team, connections with secrets, agents
//! and a stream of token issuance, denials, revocations and secret hand-overs over a few weeks
//! ([`installation`]) or any period ([`installation_over`]), with a scope withdrawn, a secret
//! replaced and an agent suspended along the way.
//!
//! What it is not: fixtures for production code paths; nothing outside tests and benches
//! calls it.

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use mandate_core::audit::{Actor, Decision, NewEvent, Target};
use mandate_core::clock::ManualClock;
use mandate_core::people::PersonChoice;
use mandate_core::secret::{MemoryKeychain, Sensitive};
use mandate_core::{AgentEdit, KeyChoice, Mandate, NewAgent, NewConnection, OpenOptions, Result};

/// Open an installation in `dir` on a manual clock starting 2026-10-01 09:00 UTC, with three
/// members, two connections, four agents and `events` token events spread over 30 days.
pub fn installation(dir: &std::path::Path, events: u64) -> Result<(Mandate, Arc<ManualClock>)> {
    installation_over(dir, events, 30)
}

/// [`installation`] with the events spread over `days` days.
pub fn installation_over(
    dir: &std::path::Path,
    events: u64,
    days: i64,
) -> Result<(Mandate, Arc<ManualClock>)> {
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 10, 1, 9, 0, 0)
            .single()
            .unwrap_or_default(),
    ));
    let m = Mandate::open(
        OpenOptions::without_person(dir, Arc::new(MemoryKeychain::new())).clock(clock.clone()),
    )?;
    // The founder says who they are at first run, then adds the team.
    m.choose_person(
        "founder",
        &PersonChoice {
            member: "founder".into(),
            email: Some("founder@example.com".into()),
        },
    )?;
    m.add_member("ana", Some("ana@example.com"))?;
    m.add_member("ops", None)?;
    m.add_connection(NewConnection {
        name: "github".into(),
        base_url: "https://api.github.com".into(),
        actions: vec![
            "repo.read=GET:/repos/**".into(),
            "issues.write=POST:/repos/*/*/issues".into(),
        ],
        trust_floor: None,
    })?;
    m.add_connection(NewConnection {
        name: "billing-db".into(),
        base_url: "https://billing.internal.example".into(),
        actions: vec!["invoices.read=GET:/invoices/**".into()],
        trust_floor: None,
    })?;
    // Secrets are stored by a person (the values are fakes, and never reach the report).
    m.set_connection_secret(
        "github",
        Sensitive::new("ghp_sample_not_a_real_token".into()),
    )?;
    m.set_connection_secret("billing-db", Sensitive::new("bk_sample_billing_key".into()))?;
    let agents = [
        (
            "billing-report-agent",
            "monthly billing report",
            "founder",
            vec!["billing-db:invoices.read"],
        ),
        (
            "triage-bot",
            "labels and answers new GitHub issues",
            "ana",
            vec!["github:repo.read", "github:issues.write"],
        ),
        (
            "release-notes-agent",
            "drafts release notes from merged pull requests",
            "ana",
            vec!["github:repo.read"],
        ),
        (
            "invoice-reconciler",
            "matches invoices against payments",
            "ops",
            vec!["billing-db:invoices.read"],
        ),
    ];
    let mut ids = Vec::new();
    for (name, purpose, owner, scopes) in &agents {
        let a = m.add_agent(NewAgent {
            name: (*name).into(),
            purpose: (*purpose).into(),
            owner: (*owner).into(),
            parent: None,
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            key: KeyChoice::GenerateInKeychain,
        })?;
        ids.push((a.id.to_string(), a.name.to_string(), scopes.clone()));
    }
    m.issuer_key()?;
    // Spread the events over the period.
    let step = Duration::seconds((days * 86_400 / events.max(1) as i64).max(1));
    let founder = m.actor()?;
    let mut batch = Vec::new();
    for i in 0..events {
        clock.advance(step);
        let (id, name, scopes) = &ids[(i % ids.len() as u64) as usize];
        let agent = Actor::agent(id, name);
        if events > 20 && i == events / 2 {
            m.record_many(std::mem::take(&mut batch))?;
            // Halfway: ana takes back a scope the triage bot no longer needs, and the GitHub
            // token is rotated.
            m.set_actor(m.member_actor("ana")?);
            m.edit_agent(
                "triage-bot",
                AgentEdit {
                    remove_scopes: vec!["github:issues.write".into()],
                    ..Default::default()
                },
            )?;
            m.set_actor(founder.clone());
            m.set_connection_secret("github", Sensitive::new("ghp_sample_rotated_token".into()))?;
        }
        let ev = if i % 37 == 5 {
            NewEvent::new(&agent, "token.denied", Decision::Deny)
                .reason("invalid_scope: the agent is not granted github:admin")
                .details(serde_json::json!({"requested": "github:admin"}))
        } else if i % 53 == 7 && name == "billing-report-agent" {
            // `mandate exec` handed the database URL to the agent's program.
            NewEvent::new(&agent, "secret.handed_over", Decision::Allow)
                .target(Target::new("connection", "conn-billing-db", "billing-db"))
                .details(serde_json::json!({
                    "variable": "BILLING_API_KEY",
                    "scope": "billing-db:invoices.read",
                    "token_jti": format!("jti-{i}"),
                    "started_by": {"kind": "member", "id": "founder", "name": "founder"},
                    "held_by_program": true,
                }))
        } else if i % 101 == 50 {
            NewEvent::new(&founder, "token.revoked", Decision::Allow)
                .reason("revoked by its owner")
                .target(Target::new("token", &format!("jti-{i}"), ""))
        } else {
            NewEvent::new(&agent, "token.issued", Decision::Allow)
                .target(Target::new("token", &format!("jti-{i}"), ""))
                .details(serde_json::json!({"scope": scopes.join(" "), "ttl": 900}))
        };
        batch.push(ev.agent(id));
        // About 200 transactions in all: events in one share its time.
        if batch.len() as u64 >= (events / 200).max(1) || i + 1 == events {
            m.record_many(std::mem::take(&mut batch))?;
        }
    }
    if events > 20 {
        m.suspend_agent("invoice-reconciler", Some("owner on leave"))?;
    }
    Ok((m, clock))
}
