//! The one way a credential reaches an agent's program itself: a database URL handed over by
//! `mandate exec` (issue 17).
//!
//! A database speaks its own protocol, so the broker cannot add a password on the way out as
//! it does for HTTP. Instead, a database connection's URL is handed to the program, in the
//! connection's variable (`DATABASE_URL` by default), when the program's token holds the scope
//! `NAME:connect`. The token is checked with the endpoint's own code
//! (`TokenService::check_resource_token`), and whether it is still active is decided inside
//! the same transaction that writes the events, as at the broker. Each connection handed over
//! is a `secret.handed_over` event (agent, connection, variable, token id; never the URL), and
//! each refusal a `secret.handover_denied` event with the reason.
//!
//! What it is not: brokering. Once handed over, the program holds the URL while it runs: a
//! revocation stops its next token, not a connection it already opened. The app and the docs
//! say so wherever a database connection is shown.

use serde_json::json;

use crate::audit::{self, Actor, Decision, NewEvent, Target};
use crate::model::{Agent, Connection, ConnectionKind, DATABASE_ACTION, DEFAULT_DATABASE_VARIABLE};
use crate::oauth::TokenService;
use crate::oauth::resource::{self, ResourceToken};
use crate::secret::{SecretRef, Sensitive};

/// A database URL for the program, and where it goes.
#[derive(Debug)]
pub struct HandedOver {
    pub connection: String,
    /// The environment variable to put it in.
    pub variable: String,
    pub url: Sensitive<String>,
}

/// Why nothing was handed over; a sentence that never holds a URL or a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HandOverRefused(pub String);

fn handover_event(
    action: &str,
    decision: Decision,
    agent: &Agent,
    on_behalf_of: Option<&Actor>,
    c: &Connection,
    details: serde_json::Value,
) -> NewEvent {
    let mut ev = NewEvent::new(
        &Actor::agent(agent.id.as_str(), agent.name.as_str()),
        action,
        decision,
    )
    .agent(agent.id.as_str())
    .target(Target::new("connection", c.id.as_str(), c.name.as_str()))
    .details(details);
    if let Some(m) = on_behalf_of {
        ev = ev.on_behalf_of(m.clone());
    }
    ev
}

impl TokenService {
    /// The database URLs the program holding `token` may have: one for each database
    /// connection the token holds `NAME:connect` on, read from the keychain. Nothing is handed
    /// over, and every such connection gets a `secret.handover_denied` event, when the token
    /// is not this endpoint's or not active, a URL is missing from the keychain, or two
    /// connections use the same variable. `Ok(Ok(vec![]))` when the token holds no such
    /// scope. `Err` only when storage fails.
    pub fn hand_over_database_urls(
        &self,
        token: &Sensitive<String>,
    ) -> crate::Result<Result<Vec<HandedOver>, HandOverRefused>> {
        let m = self.mandate();
        let auth = [Sensitive::new(format!("Bearer {}", token.expose()))];
        let issuer = self.config().issuer.clone();
        let t: ResourceToken = match self.check_resource_token(&auth, &[], "GET", &issuer)? {
            Ok(t) => t,
            Err(e) => return Ok(Err(HandOverRefused(e.to_string()))),
        };
        let agent = m.get_agent(&t.agent_id)?;
        let on_behalf_of = match &t.delegation_id {
            Some(id) => m
                .delegation_row(id)?
                .map(|d| Actor::member(&d.member_id, &d.member)),
            None => None,
        };
        let mut wanted: Vec<(Connection, String, String)> = Vec::new();
        for scope in &t.scopes {
            let Some((name, action)) = scope.split_once(':') else {
                continue;
            };
            if action != DATABASE_ACTION {
                continue;
            }
            let Ok(c) = m.get_connection(name) else {
                continue;
            };
            if c.kind != ConnectionKind::Database {
                continue;
            }
            let variable = c
                .variable
                .clone()
                .unwrap_or_else(|| DEFAULT_DATABASE_VARIABLE.to_string());
            wanted.push((c, variable, scope.clone()));
        }
        if wanted.is_empty() {
            return Ok(Ok(Vec::new()));
        }
        let refuse = |why: String| -> crate::Result<Result<Vec<HandedOver>, HandOverRefused>> {
            let events: Vec<NewEvent> = wanted
                .iter()
                .map(|(c, variable, scope)| {
                    handover_event(
                        "secret.handover_denied",
                        Decision::Deny,
                        &agent,
                        on_behalf_of.as_ref(),
                        c,
                        json!({"variable": variable, "scope": scope, "token_jti": t.jti}),
                    )
                    .reason(why.clone())
                })
                .collect();
            m.write(|tx, now| {
                for ev in events {
                    audit::append(tx, now, ev)?;
                }
                Ok(())
            })?;
            Ok(Err(HandOverRefused(why)))
        };
        // Two connections in one variable: the program would get one of them, silently.
        for (i, (c, v, _)) in wanted.iter().enumerate() {
            if let Some((other, _, _)) = wanted[..i].iter().find(|(_, w, _)| w == v) {
                return refuse(format!(
                    "'{}' and '{}' are both handed over as {v}, so the program would get only \
                     one of them; ask for one with --scope, or give one another variable",
                    other.name, c.name
                ));
            }
        }
        let mut out = Vec::new();
        for (c, variable, _) in &wanted {
            match m.keychain_get(SecretRef::connection(c.id.as_str()))? {
                Some(url) => out.push(HandedOver {
                    connection: c.name.to_string(),
                    variable: variable.clone(),
                    url,
                }),
                None => {
                    return refuse(format!(
                        "the database connection '{}' has no URL in the OS keychain yet; store \
                         it with `mandate connection set-secret {}` (or move it from the \
                         project's .env with the wizard or `mandate scan --move`)",
                        c.name, c.name
                    ));
                }
            }
        }
        let used = m.used_jtis().clone();
        // The person who ran `mandate exec` (none when a handle has no person).
        let started_by = m.person().ok().flatten();
        let outcome = m.write(|tx, now| {
            if let Err(why) = resource::confirm_active(&used, tx, &t, now.timestamp())? {
                return Ok(Err(why));
            }
            for (c, variable, scope) in &wanted {
                audit::append(
                    tx,
                    now,
                    handover_event(
                        "secret.handed_over",
                        Decision::Allow,
                        &agent,
                        on_behalf_of.as_ref(),
                        c,
                        json!({
                            "variable": variable,
                            "scope": scope,
                            "token_jti": t.jti,
                            "started_by": started_by,
                            "held_by_program": true,
                        }),
                    ),
                )?;
            }
            Ok(Ok(()))
        })?;
        match outcome {
            Ok(()) => Ok(Ok(out)),
            Err(why) => refuse(why),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::oauth::{EndpointConfig, HttpContext};
    use crate::store::testing::each_store;
    use crate::{KeyChoice, Mandate, NewAgent};

    const ISSUER: &str = "http://127.0.0.1:6263";

    fn token(svc: &TokenService, agent: &str, scope: Option<&str>) -> Sensitive<String> {
        let m = svc.mandate();
        let (kid, key) = m.agent_signing_key(agent).unwrap();
        let assertion = crate::oauth::client_assertion(
            agent,
            &kid,
            &key,
            &format!("{ISSUER}/oauth2/token"),
            m.now().timestamp(),
        );
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials")
            .append_pair(
                "client_assertion_type",
                crate::oauth::ASSERTION_TYPE_JWT_BEARER,
            )
            .append_pair("client_assertion", &assertion);
        if let Some(s) = scope {
            form.append_pair("scope", s);
        }
        let http = HttpContext {
            method: "POST".into(),
            url: format!("{ISSUER}/oauth2/token"),
            dpop: vec![],
        };
        let pending = svc.token(form.finish().as_bytes(), &http);
        futures_executor::block_on(pending.finish())
            .unwrap()
            .access_token
    }

    fn agent(m: &Mandate, name: &str, scopes: &[&str]) {
        m.add_agent(NewAgent {
            name: name.into(),
            purpose: "nightly warehouse report".into(),
            owner: "founder".into(),
            parent: None,
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            key: KeyChoice::GenerateInKeychain,
        })
        .unwrap();
    }

    fn events(m: &Mandate, action: &str) -> Vec<crate::audit::AuditEvent> {
        m.audit_events(None, 200, None)
            .unwrap()
            .into_iter()
            .filter(|e| e.action == action)
            .collect()
    }

    #[test]
    fn the_url_goes_only_to_a_token_with_the_connect_scope_and_each_hand_over_is_audited() {
        each_store(|s| {
            let m = Arc::new(s.open());
            let url = format!(
                "postgres://report:{}@db.internal:5432/warehouse",
                "w4re".repeat(4)
            );
            m.add_member("founder", None).unwrap();
            m.add_database_connection("warehouse", Some("WAREHOUSE_URL"), None)
                .unwrap();
            m.set_connection_secret("warehouse", Sensitive::new(url.clone()))
                .unwrap();
            m.add_preset_connection("github", "github").unwrap();
            agent(
                &m,
                "report-agent",
                &["warehouse:connect", "github:user.read"],
            );
            agent(&m, "other-agent", &["github:user.read"]);
            let svc = TokenService::new(m.clone(), EndpointConfig::new(ISSUER)).unwrap();

            let handed = svc
                .hand_over_database_urls(&token(&svc, "report-agent", None))
                .unwrap()
                .unwrap();
            assert_eq!(handed.len(), 1);
            assert_eq!(handed[0].connection, "warehouse");
            assert_eq!(handed[0].variable, "WAREHOUSE_URL");
            assert_eq!(handed[0].url.expose(), &url);
            let ev = &events(&m, "secret.handed_over")[0];
            assert_eq!(ev.actor.name, "report-agent");
            assert_eq!(ev.details["variable"], "WAREHOUSE_URL");
            assert_eq!(ev.target.as_ref().unwrap().name, "warehouse");
            // Without the scope in the token, nothing is handed over and nothing is recorded.
            for (who, scope) in [
                ("other-agent", None),
                ("report-agent", Some("github:user.read")),
            ] {
                let got = svc
                    .hand_over_database_urls(&token(&svc, who, scope))
                    .unwrap()
                    .unwrap();
                assert!(got.is_empty(), "{who}");
            }
            assert_eq!(events(&m, "secret.handed_over").len(), 1);
            // A suspended agent's token: refused and audited.
            let t = token(&svc, "report-agent", None);
            m.suspend_agent("report-agent", Some("investigating"))
                .unwrap();
            let refused = svc.hand_over_database_urls(&t).unwrap().unwrap_err();
            assert!(refused.0.contains("not active"), "{refused}");
            let denied = events(&m, "secret.handover_denied");
            assert_eq!(denied.len(), 1);
            assert_eq!(denied[0].decision, Decision::Deny);
            // A token that is not this endpoint's.
            let bogus = Sensitive::new("eyJhbGciOiJFZERTQSJ9.e30.c2ln".to_string());
            assert!(svc.hand_over_database_urls(&bogus).unwrap().is_err());
            // The URL is nowhere in the trail.
            let text = serde_json::to_string(&m.audit_events(None, 200, None).unwrap()).unwrap();
            assert!(!text.contains(&url));
        });
    }

    #[test]
    fn a_missing_url_or_a_shared_variable_hands_nothing_over() {
        each_store(|s| {
            let m = Arc::new(s.open());
            m.add_member("founder", None).unwrap();
            m.add_database_connection("orders", None, None).unwrap();
            m.add_database_connection("events", None, None).unwrap();
            m.set_connection_secret(
                "orders",
                Sensitive::new("postgres://o:pw123456@db/orders".into()),
            )
            .unwrap();
            agent(&m, "sync-agent", &["orders:connect", "events:connect"]);
            let svc = TokenService::new(m.clone(), EndpointConfig::new(ISSUER)).unwrap();
            let both = svc
                .hand_over_database_urls(&token(&svc, "sync-agent", None))
                .unwrap()
                .unwrap_err();
            assert!(
                both.0.contains("both handed over as DATABASE_URL"),
                "{both}"
            );
            let one = svc
                .hand_over_database_urls(&token(&svc, "sync-agent", Some("events:connect")))
                .unwrap()
                .unwrap_err();
            assert!(one.0.contains("has no URL in the OS keychain"), "{one}");
            assert_eq!(events(&m, "secret.handover_denied").len(), 3);
            assert!(events(&m, "secret.handed_over").is_empty());
        });
    }
}
