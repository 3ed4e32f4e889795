//! What a client on this machine (`mandate token`, `mandate exec`, the wizard's test token)
//! needs before it asks the endpoint for a token: the agent's private key from the keychain.
//!
//! Why a method of its own: revoking an agent destroys its keys, so a revoked agent's request
//! used to end in "its private key is missing from the OS keychain; rotate the key", which
//! sends a person after the wrong fix (a revoked agent can never get a key again). Here a
//! revoked agent is refused as the endpoint would refuse it ("it is revoked"), with
//! [`Error::Refused`] (the CLI's exit code 9), and the refusal is audited like the endpoint's
//! `token.denied`, since every authorization decision is on the record.
//!
//! What it is not: the decision itself for active or suspended agents. Those go to the
//! endpoint, which decides and audits (a suspended agent still has its key, so its request is
//! refused there, as `invalid_client`).

use ed25519_dalek::SigningKey;
use serde_json::json;

use crate::Mandate;
use crate::audit::{Actor, Decision, NewEvent};
use crate::error::{Error, Result};
use crate::model::AgentStatus;

impl Mandate {
    /// The key `name`'s client assertions are signed with (its newest active keychain key), for
    /// a token request made from this machine. A revoked agent is refused, and the refusal
    /// recorded as `token.denied`.
    pub fn client_signing_key(&self, name: &str) -> Result<(String, SigningKey)> {
        let agent = self.get_agent(name)?;
        if agent.status == AgentStatus::Revoked {
            let why = format!(
                "the agent '{}' is revoked: it gets no tokens, and revocation is final. Register a \
                 new agent (`mandate agent add`) if the job still needs doing",
                agent.name
            );
            self.record(
                NewEvent::new(
                    &Actor::agent(agent.id.as_str(), agent.name.as_str()),
                    "token.denied",
                    Decision::Deny,
                )
                .agent(agent.id.as_str())
                .reason(format!(
                    "the agent '{}' is revoked: it gets no tokens",
                    agent.name
                ))
                .details(json!({
                    "client_id": agent.name.as_str(),
                    "error": "invalid_client",
                    "refused_by": "local client",
                })),
            )?;
            return Err(Error::Refused(why));
        }
        self.agent_signing_key(name)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::testing::each_store;
    #[test]
    fn a_revoked_agent_is_refused_as_revoked_with_the_refusal_audited() {
        each_store(|s| {
            let m = s.open();
            m.add_member("founder", None).unwrap();
            m.add_agent(crate::NewAgent {
                name: "billing-report-agent".into(),
                purpose: "monthly billing report".into(),
                owner: "founder".into(),
                parent: None,
                scopes: vec![],
                key: crate::KeyChoice::GenerateInKeychain,
            })
            .unwrap();
            assert!(m.client_signing_key("billing-report-agent").is_ok());
            m.revoke_agent("billing-report-agent", "replaced").unwrap();
            let e = m.client_signing_key("billing-report-agent").unwrap_err();
            assert_eq!(e.code(), crate::ErrorCode::Refused);
            assert_eq!(e.code().exit_code(), 9);
            let msg = e.to_string();
            assert!(msg.contains("is revoked"), "{msg}");
            assert!(!msg.contains("keychain"), "{msg}");
            let ev = &m
                .audit_events(Some("billing-report-agent"), 1, None)
                .unwrap()[0];
            assert_eq!(ev.action, "token.denied");
            assert_eq!(ev.decision.as_str(), "deny");
        });
    }
}
