use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use mandate_core::audit::Actor;
use mandate_core::clock::ManualClock;
use mandate_core::model::{AgentStatus, TrustState};
use mandate_core::secret::{KeychainError, MemoryKeychain, Sensitive};
use mandate_core::store::testing::{TestStore, each_store};
use mandate_core::{AgentEdit, KeyChoice, Mandate, NewAgent, NewConnection};

struct Fx {
    m: Mandate,
    kc: Arc<MemoryKeychain>,
    clock: Arc<ManualClock>,
}

fn fx(s: &TestStore) -> Fx {
    let kc = Arc::new(MemoryKeychain::new());
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap(),
    ));
    let m = Mandate::open(
        s.options(kc.clone(), Actor::app("test", "tester"))
            .clock(clock.clone()),
    )
    .unwrap();
    m.add_member("founder", Some("founder@example.com"))
        .unwrap();
    m.add_connection(NewConnection {
        name: "github".into(),
        base_url: "https://api.github.com/".into(),
        actions: vec!["repo.read=GET:/repos/**".into()],
        trust_floor: None,
    })
    .unwrap();
    Fx { m, kc, clock }
}

fn agent(name: &str, key: KeyChoice) -> NewAgent {
    NewAgent {
        name: name.into(),
        purpose: "monthly billing report".into(),
        owner: "founder".into(),
        parent: None,
        scopes: vec!["github:repo.read".into()],
        key,
    }
}

#[test]
fn trust_moves_from_pending_to_trusted_with_time() {
    each_store(|s| {
        let f = fx(s);
        let a =
            f.m.add_agent(agent("billing-report-agent", KeyChoice::GenerateInKeychain))
                .unwrap();
        assert_eq!(a.trust.state, TrustState::Pending);
        f.clock.advance(Duration::hours(25));
        let a = f.m.get_agent("billing-report-agent").unwrap();
        assert_eq!(a.trust.state, TrustState::Trusted);
        f.clock.advance(Duration::days(100));
        let a = f.m.get_agent("billing-report-agent").unwrap();
        assert_eq!(
            a.trust.state,
            TrustState::Pending,
            "a stale key pulls it back"
        );
    });
}

#[test]
fn a_keychain_failure_leaves_nothing_behind() {
    each_store(|s| {
        let f = fx(s);
        let events_before = f.m.audit_events(None, 1000, None).unwrap().len();
        // What the installation already keeps there (the audit trail's tag key).
        let accounts_before = accounts(&f);
        f.kc.fail_with(Some(KeychainError::Locked {
            detail: "collection locked".into(),
            fix: "unlock it".into(),
        }));
        let err =
            f.m.add_agent(agent("billing-report-agent", KeyChoice::GenerateInKeychain))
                .unwrap_err();
        assert_eq!(err.code(), mandate_core::ErrorCode::KeychainLocked);
        f.kc.fail_with(None);
        assert!(f.m.list_agents().unwrap().is_empty());
        assert_eq!(
            f.m.audit_events(None, 1000, None).unwrap().len(),
            events_before
        );
        assert_eq!(accounts(&f), accounts_before);
    });
}

#[test]
fn a_failed_transaction_removes_the_generated_key() {
    each_store(|s| {
        let f = fx(s);
        let before = accounts(&f);
        // The name check passes before key generation, but the parent does not exist: the
        // validation up front refuses before any key is made.
        let mut a = agent("child-agent", KeyChoice::GenerateInKeychain);
        a.parent = Some("missing-parent".into());
        assert!(f.m.add_agent(a).is_err());
        assert_eq!(accounts(&f), before, "no orphaned key in the keychain");
    });
}

/// The keychain's accounts, sorted.
fn accounts(f: &Fx) -> Vec<String> {
    let mut v = f.kc.accounts();
    v.sort();
    v
}

#[test]
fn the_issuer_key_is_created_once_and_audited() {
    each_store(|s| {
        let f = fx(s);
        let k1 = f.m.issuer_key().unwrap();
        let k2 = f.m.issuer_key().unwrap();
        assert_eq!(k1.kid, k2.kid);
        assert_eq!(k1.public, k2.public);
        let created: Vec<_> =
            f.m.audit_events(None, 100, None)
                .unwrap()
                .into_iter()
                .filter(|e| e.action == "issuer.key_created")
                .collect();
        assert_eq!(created.len(), 1);
        // The account is namespaced by installation.
        assert!(
            f.kc.accounts()
                .iter()
                .all(|a| a.starts_with(f.m.install_id()))
        );
    });
}

#[test]
fn every_change_is_chained_and_tampering_is_caught() {
    each_store(|s| {
        let f = fx(s);
        f.m.add_agent(agent("billing-report-agent", KeyChoice::GenerateInKeychain))
            .unwrap();
        f.m.edit_agent(
            "billing-report-agent",
            AgentEdit {
                purpose: Some("quarterly billing report".into()),
                ..Default::default()
            },
        )
        .unwrap();
        f.m.suspend_agent("billing-report-agent", Some("check"))
            .unwrap();
        f.m.resume_agent("billing-report-agent").unwrap();
        f.m.set_trust_override(
            "billing-report-agent",
            Some(TrustState::Trusted),
            "reviewed",
        )
        .unwrap();
        let a =
            f.m.revoke_agent("billing-report-agent", "replaced")
                .unwrap();
        assert_eq!(a.status, AgentStatus::Revoked);
        assert_eq!(a.trust.state, TrustState::Untrusted);
        assert_eq!(a.config_version, 6);
        let report = f.m.verify_audit_chain().unwrap();
        assert!(report.ok(), "{report:?}");
        let actions: Vec<String> =
            f.m.audit_events(Some("billing-report-agent"), 100, None)
                .unwrap()
                .into_iter()
                .map(|e| e.action)
                .collect();
        assert_eq!(
            actions,
            [
                "agent.revoked",
                "agent.trust_overridden",
                "agent.resumed",
                "agent.suspended",
                "agent.edited",
                "agent.created"
            ]
        );
        // The revoke event records who and why.
        let ev =
            &f.m.audit_events(Some("billing-report-agent"), 1, None)
                .unwrap()[0];
        assert_eq!(ev.reason.as_deref(), Some("replaced"));
        assert_eq!(ev.actor.name, "tester");

        // Edit one event's body behind Mandate's back: verification names it.
        let seq: i64 = s
            .conn()
            .auto(|tx| {
                tx.execute_batch(s.dialect().pick(
                    "UPDATE audit_events SET body = CAST(replace(CAST(body AS TEXT), 'replaced', 'REPLACED') AS BLOB) WHERE action = 'agent.revoked'",
                    "UPDATE audit_events SET body = convert_to(replace(convert_from(body, 'UTF8'), 'replaced', 'REPLACED'), 'UTF8') WHERE action = 'agent.revoked'",
                ))?;
                tx.query_row(
                    "SELECT seq FROM audit_events WHERE action = 'agent.revoked'",
                    &[],
                    |r| r.get(0),
                )
            })
            .unwrap();
        let report = f.m.verify_audit_chain().unwrap();
        let b = report.first_break.unwrap();
        assert_eq!(b.seq as i64, seq, "{}", b.problem);
    });
}

#[test]
fn secrets_are_stored_by_reference_only() {
    each_store(|s| {
        let f = fx(s);
        f.m.set_connection_secret("github", Sensitive::new("ghp_secret_value_123".into()))
            .unwrap();
        let c = f.m.get_connection("github").unwrap();
        assert!(c.has_secret);
        let json = serde_json::to_string(&c).unwrap();
        assert!(!json.contains("ghp_secret_value_123"));
        assert_eq!(
            f.m.connection_secret("github").unwrap().unwrap().expose(),
            "ghp_secret_value_123"
        );
        let events = serde_json::to_string(&f.m.audit_events(None, 100, None).unwrap()).unwrap();
        assert!(!events.contains("ghp_secret_value_123"));
        assert!(!s.holds("ghp_secret_value_123"));
    });
}
