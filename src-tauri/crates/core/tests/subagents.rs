//! Sub-agents never exceed their parent (issue 17 §4), in the registry: what registration and
//! edits refuse, how narrowing a parent narrows its children, and how a suspended or revoked
//! parent holds them back. The same rules at the token endpoint, introspection and the broker
//! are tested through the real server in the workspace `tests/token_endpoint.rs`.

use std::sync::Arc;

use mandate_core::model::AgentStatus;
use mandate_core::people::PersonChoice;
use mandate_core::secret::MemoryKeychain;
use mandate_core::{AgentEdit, KeyChoice, Mandate, NewAgent, NewConnection, OpenOptions};

fn fx() -> (tempfile::TempDir, Mandate) {
    let dir = tempfile::tempdir().unwrap();
    let m = Mandate::open(OpenOptions::without_person(
        dir.path().join("data"),
        Arc::new(MemoryKeychain::new()),
    ))
    .unwrap();
    m.choose_person(
        "ann",
        &PersonChoice {
            member: "ann".into(),
            email: None,
        },
    )
    .unwrap();
    m.add_connection(NewConnection {
        name: "github".into(),
        base_url: "https://api.github.com".into(),
        actions: vec![
            "repo.read=GET:/repos/**".into(),
            "issues.write=POST:/repos/*/*/issues".into(),
            "admin=DELETE:/repos/**".into(),
        ],
        trust_floor: None,
    })
    .unwrap();
    (dir, m)
}

fn add(m: &Mandate, name: &str, parent: Option<&str>, scopes: &[&str]) -> mandate_core::Result<()> {
    m.add_agent(NewAgent {
        name: name.into(),
        purpose: "test agent".into(),
        owner: "ann".into(),
        parent: parent.map(String::from),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        key: KeyChoice::None,
    })
    .map(|_| ())
}

fn scopes(m: &Mandate, name: &str) -> Vec<String> {
    m.get_agent(name)
        .unwrap()
        .scopes
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Seen in a new user's walk: a sub-agent registered with a scope its parent lacked got
/// tokens for it.
#[test]
fn a_sub_agent_registered_beyond_its_parent_is_refused_and_nothing_is_written() {
    let (_d, m) = fx();
    add(&m, "report-agent", None, &["github:repo.read"]).unwrap();
    let before = m.audit_events(None, 1000, None).unwrap().len();
    let e = add(
        &m,
        "report-helper",
        Some("report-agent"),
        &["github:repo.read", "github:admin"],
    )
    .unwrap_err();
    assert_eq!(e.code(), mandate_core::ErrorCode::InvalidInput);
    let msg = e.to_string();
    assert!(
        msg.contains("github:admin") && msg.contains("'report-agent'") && msg.contains("first"),
        "{msg}"
    );
    assert!(m.get_agent("report-helper").is_err());
    assert_eq!(m.audit_events(None, 1000, None).unwrap().len(), before);
    // Within the parent's scopes it is registered, and its event names the chain.
    add(
        &m,
        "report-helper",
        Some("report-agent"),
        &["github:repo.read"],
    )
    .unwrap();
    let ev = &m.audit_events(Some("report-helper"), 1, None).unwrap()[0];
    assert_eq!(ev.action, "agent.created");
    assert_eq!(
        ev.details["parent_chain"],
        serde_json::json!(["report-agent"])
    );
    assert_eq!(ev.actor.kind, "member");
    assert_eq!(
        m.get_agent("report-helper").unwrap().parents[0].as_str(),
        "report-agent"
    );
}

#[test]
fn an_edit_never_widens_a_sub_agent_beyond_its_parent() {
    let (_d, m) = fx();
    add(&m, "report-agent", None, &["github:repo.read"]).unwrap();
    add(
        &m,
        "wide-agent",
        None,
        &["github:repo.read", "github:admin"],
    )
    .unwrap();
    add(
        &m,
        "report-helper",
        Some("report-agent"),
        &["github:repo.read"],
    )
    .unwrap();
    let e = m
        .edit_agent(
            "report-helper",
            AgentEdit {
                add_scopes: vec!["github:issues.write".into()],
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(e.to_string().contains("github:issues.write"), "{e}");
    assert_eq!(scopes(&m, "report-helper"), ["github:repo.read"]);
    // Giving it a wider parent is fine; moving a wide agent under a narrow one is not.
    m.edit_agent(
        "report-helper",
        AgentEdit {
            parent: Some(Some("wide-agent".into())),
            add_scopes: vec!["github:admin".into()],
            ..Default::default()
        },
    )
    .unwrap();
    let e = m
        .edit_agent(
            "report-helper",
            AgentEdit {
                parent: Some(Some("report-agent".into())),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(e.to_string().contains("github:admin"), "{e}");
    assert_eq!(
        m.get_agent("report-helper")
            .unwrap()
            .parent
            .unwrap()
            .as_str(),
        "wide-agent"
    );
    // Dropping the scope in the same edit makes the move fit.
    m.edit_agent(
        "report-helper",
        AgentEdit {
            parent: Some(Some("report-agent".into())),
            remove_scopes: vec!["github:admin".into()],
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(scopes(&m, "report-helper"), ["github:repo.read"]);
}

#[test]
fn narrowing_a_parent_narrows_every_agent_below_it_each_audited() {
    let (_d, m) = fx();
    add(&m, "top-agent", None, &["github:repo.read", "github:admin"]).unwrap();
    add(
        &m,
        "mid-agent",
        Some("top-agent"),
        &["github:repo.read", "github:admin"],
    )
    .unwrap();
    add(&m, "low-agent", Some("mid-agent"), &["github:admin"]).unwrap();
    add(&m, "side-agent", Some("top-agent"), &["github:repo.read"]).unwrap();
    m.edit_agent(
        "top-agent",
        AgentEdit {
            remove_scopes: vec!["github:admin".into()],
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(scopes(&m, "mid-agent"), ["github:repo.read"]);
    assert!(scopes(&m, "low-agent").is_empty());
    assert_eq!(scopes(&m, "side-agent"), ["github:repo.read"]);
    let top = &m.audit_events(Some("top-agent"), 1, None).unwrap()[0];
    assert_eq!(
        top.details["also_removed_from"],
        serde_json::json!(["mid-agent", "low-agent"])
    );
    for (child, chain) in [
        ("mid-agent", serde_json::json!(["top-agent"])),
        ("low-agent", serde_json::json!(["mid-agent", "top-agent"])),
    ] {
        let ev = &m.audit_events(Some(child), 1, None).unwrap()[0];
        assert_eq!(ev.action, "agent.edited", "{child}");
        assert_eq!(ev.actor.name, "ann");
        assert_eq!(
            ev.details["scopes_removed"],
            serde_json::json!(["github:admin"])
        );
        assert_eq!(ev.details["because_parent"], "top-agent");
        assert_eq!(ev.details["parent_chain"], chain);
        assert!(ev.reason.as_deref().unwrap().contains("never holds more"));
    }
    // The side agent had nothing to lose: no event for it.
    assert_eq!(
        m.audit_events(Some("side-agent"), 10, None).unwrap().len(),
        1
    );
    assert!(m.verify_audit_chain().unwrap().ok());
}

#[test]
fn a_suspended_or_revoked_parent_holds_its_children_back_until_resumed() {
    let (_d, m) = fx();
    add(&m, "top-agent", None, &["github:repo.read"]).unwrap();
    add(&m, "mid-agent", Some("top-agent"), &["github:repo.read"]).unwrap();
    add(&m, "low-agent", Some("mid-agent"), &["github:repo.read"]).unwrap();
    assert!(m.get_agent("low-agent").unwrap().held_by_parent.is_none());
    m.suspend_agent("top-agent", Some("investigating")).unwrap();
    let low = m.get_agent("low-agent").unwrap();
    assert_eq!(
        low.status,
        AgentStatus::Active,
        "its own status is unchanged"
    );
    let held = low.held_by_parent.unwrap();
    assert_eq!(
        (held.parent.as_str(), held.status),
        ("top-agent", AgentStatus::Suspended)
    );
    assert!(
        held.message.contains("until 'top-agent' is resumed"),
        "{}",
        held.message
    );
    m.resume_agent("top-agent").unwrap();
    assert!(m.get_agent("low-agent").unwrap().held_by_parent.is_none());
    m.revoke_agent("mid-agent", "compromised").unwrap();
    let held = m.get_agent("low-agent").unwrap().held_by_parent.unwrap();
    assert_eq!(held.parent.as_str(), "mid-agent");
    assert!(held.message.contains("--no-parent"), "{}", held.message);
}

#[test]
fn a_revocation_says_who_when_and_why() {
    let (_d, m) = fx();
    add(&m, "report-agent", None, &["github:repo.read"]).unwrap();
    assert!(m.last_status_change("report-agent").unwrap().is_none());
    m.suspend_agent("report-agent", None).unwrap();
    m.revoke_agent("report-agent", "replaced by report-agent-2")
        .unwrap();
    let c = m.last_status_change("report-agent").unwrap().unwrap();
    assert_eq!(c.action, "agent.revoked");
    assert_eq!((c.by.kind.as_str(), c.by.name.as_str()), ("member", "ann"));
    assert_eq!(c.reason.as_deref(), Some("replaced by report-agent-2"));
    assert!(c.time.ends_with('Z'));
}
