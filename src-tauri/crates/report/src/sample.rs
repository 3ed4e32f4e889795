//! A realistic installation for tests and benchmarks: a team, connections, agents and a
//! stream of token issuance, denials and revocations over a few weeks.
//!
//! What it is not: fixtures for production code paths; nothing outside tests and benches
//! calls it.

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use mandate_core::audit::{Actor, Decision, NewEvent, Target};
use mandate_core::clock::ManualClock;
use mandate_core::people::PersonChoice;
use mandate_core::secret::MemoryKeychain;
use mandate_core::{KeyChoice, Mandate, NewAgent, NewConnection, OpenOptions, Result};

/// Open an installation in `dir` on a manual clock starting 2026-10-01 09:00 UTC, with three
/// members, two connections, four agents and `events` token events spread over 30 days.
pub fn installation(dir: &std::path::Path, events: u64) -> Result<(Mandate, Arc<ManualClock>)> {
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
    // Spread the events over 30 days.
    let step = Duration::seconds((30 * 86_400 / events.max(1) as i64).max(1));
    let founder = m.actor()?;
    let mut batch = Vec::new();
    for i in 0..events {
        clock.advance(step);
        let (id, name, scopes) = &ids[(i % ids.len() as u64) as usize];
        let agent = Actor::agent(id, name);
        let ev = if i % 37 == 5 {
            NewEvent::new(&agent, "token.denied", Decision::Deny)
                .reason("invalid_scope: the agent is not granted github:admin")
                .details(serde_json::json!({"requested": "github:admin"}))
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
