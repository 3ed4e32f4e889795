//! OpenID CIBA (Client-Initiated Backchannel Authentication Core 1.0), poll mode: an agent
//! that can wait asks for a token on a member's behalf, a person answers in the approvals
//! inbox, and the agent polls the token endpoint until the answer is there.
//!
//! 1. `POST /oauth2/bc-authorize` (§7): the agent authenticates with `private_key_jwt` as at
//!    the token endpoint and sends `scope`, `login_hint` (the member's name) and optionally
//!    `binding_message` and `requested_expiry`. The request becomes an approval request in
//!    the inbox (`approval.requested`, id `ciba_…`) and the answer is its `auth_req_id`,
//!    `expires_in` and `interval` (§7.3).
//! 2. A person answers with `mandate approvals approve|deny` (or the app), as for a held
//!    broker call: the same rows, the same audit events. Only the member named may approve
//!    (the token will act as them); anyone may deny.
//! 3. The agent polls the token endpoint with grant `urn:openid:params:grant-type:ciba` and
//!    its `auth_req_id` (§10.1); it gets `authorization_pending`, `slow_down` (polled faster
//!    than `interval`), `expired_token`, `access_denied`, or, once approved, one token for
//!    the member (`sub`) with the agent as actor (`act`). Every answer is audited like any
//!    token request.
//!
//! What it is not: ping or push mode, `login_hint_token`, `id_token_hint`, signed
//! authentication requests or user codes; not an OpenID Provider (no ID token: `openid` in
//! the scope is accepted and ignored).

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::Duration;
use serde_json::{Value, json};

use super::client_agent::ClientAgent;
use super::policy::{self, Ceiling};
use super::service::{Minted, Pending, Stop, TokenService, consume_assertion, printable};
use super::{Form, OAuthError, SKEW_SECS};
use crate::approvals::{self, ApprovalStatus};
use crate::audit::{self, Actor, Decision, NewEvent, Target};
use crate::registry::ts;
use crate::store::params;

/// The least time between two polls of one request (§7.3 `interval`; the spec's default).
pub const INTERVAL_SECS: i64 = 5;
/// How long a request waits for a person unless the agent asks for less (`requested_expiry`).
pub const DEFAULT_EXPIRY_SECS: i64 = 600;
/// The longest `requested_expiry` accepted.
pub const MAX_EXPIRY_SECS: i64 = 3600;
/// The longest binding message (shown to the person who decides).
pub const MAX_BINDING_MESSAGE: usize = 100;
/// The prefix of a CIBA request's id among approval requests.
pub const ID_PREFIX: &str = approvals::CIBA_ID_PREFIX;

/// When each request was last polled (Unix seconds). In memory: a restart forgets it, which
/// costs at most one early poll answered `authorization_pending` instead of `slow_down`.
#[derive(Debug, Default)]
pub(crate) struct Polls(Mutex<HashMap<String, i64>>);

impl Polls {
    /// Record a poll at `now`; `false` when the last one was less than an interval ago.
    fn poll(&self, id: &str, now: i64) -> bool {
        let Ok(mut m) = self.0.lock() else {
            return true;
        };
        if m.len() > 10_000 {
            m.retain(|_, t| now - *t < MAX_EXPIRY_SECS);
        }
        match m.get(id) {
            Some(last) if now - *last < INTERVAL_SECS => false,
            _ => {
                m.insert(id.to_string(), now);
                true
            }
        }
    }

    fn forget(&self, id: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(id);
        }
    }
}

/// The scopes a CIBA request asks for: `scope` without `openid`.
fn requested_scopes(form: &Form) -> Result<String, OAuthError> {
    let scopes: Vec<&str> = form
        .get("scope")
        .unwrap_or_default()
        .split_whitespace()
        .filter(|s| *s != "openid")
        .collect();
    if scopes.is_empty() {
        return Err(OAuthError::InvalidScope(
            "name the scopes the agent asks for (CONNECTION:ACTION, space-separated) in scope"
                .into(),
        ));
    }
    Ok(scopes.join(" "))
}

impl TokenService {
    /// `POST /oauth2/bc-authorize`: open a CIBA request in the approvals inbox.
    pub fn backchannel_authorize(&self, body: &[u8]) -> Pending<Value> {
        let _announced = self.m.announce_write();
        Pending::new(&self.m, self.backchannel_rules(body))
    }

    fn backchannel_rules(
        &self,
        body: &[u8],
    ) -> Result<crate::group_commit::Ticket<Result<Value, OAuthError>>, Stop> {
        const ACTION: &str = "ciba.denied";
        let now = self.m.now().timestamp();
        let form = match Form::parse(body) {
            Ok(f) => f,
            Err(e) => return Err(self.deny(None, ACTION, e, Default::default(), None)),
        };
        let client = self.authenticate(&form, ACTION, now)?;
        let agent = &client.agent;
        let consume = (
            agent.name.to_string(),
            client.jti.clone(),
            client.exp + SKEW_SECS,
        );
        let mut details = Self::base_details(&form);
        if let Some(h) = printable(form.get("login_hint"), 100) {
            details.insert("login_hint".into(), json!(h));
        }
        let refuse = |e: OAuthError| {
            self.deny(
                Some(agent),
                ACTION,
                e,
                details.clone(),
                Some(consume.clone()),
            )
        };
        // Each request is a row in a person's inbox: the token endpoint's per-agent rate
        // limit applies.
        if let Some(limit) = self.cfg.rate_limit {
            let now_ms = self.m.now().timestamp_millis();
            self.limiter
                .take(limit, agent.id.as_str(), now_ms)
                .map_err(&refuse)?;
        }
        for unsupported in ["login_hint_token", "id_token_hint", "user_code", "request"] {
            if form.get(unsupported).is_some() {
                return Err(refuse(OAuthError::InvalidRequest(format!(
                    "Mandate does not support {unsupported}: name the member in login_hint"
                ))));
            }
        }
        let scope = requested_scopes(&form).map_err(&refuse)?;
        let Some(hint) = form.get("login_hint") else {
            return Err(refuse(OAuthError::InvalidRequest(
                "login_hint is missing: name the member on whose behalf the agent asks".into(),
            )));
        };
        let binding = match form.get("binding_message") {
            None => None,
            Some(b) => Some(
                printable(Some(b), MAX_BINDING_MESSAGE)
                    .filter(|b| !b.trim().is_empty())
                    .ok_or_else(|| {
                        refuse(OAuthError::InvalidBindingMessage(format!(
                            "the binding_message must be printable ASCII of at most \
                             {MAX_BINDING_MESSAGE} characters"
                        )))
                    })?,
            ),
        };
        let expiry = match form.get("requested_expiry") {
            None => DEFAULT_EXPIRY_SECS,
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|s| (1..=MAX_EXPIRY_SECS).contains(s))
                .ok_or_else(|| {
                    refuse(OAuthError::InvalidRequest(format!(
                        "requested_expiry must be a number of seconds from 1 to {MAX_EXPIRY_SECS}"
                    )))
                })?,
        };
        // The scopes must be ones the agent could get now; checked again when the token is
        // issued.
        policy::plan(
            agent,
            &client.conns,
            Some(&scope),
            &[],
            None,
            self.cfg.default_ttl_secs,
            now,
        )
        .map_err(&refuse)?;
        let first_connection = scope
            .split_whitespace()
            .next()
            .and_then(|s| s.split(':').next())
            .unwrap_or_default()
            .to_string();
        let found = self.readers.with(|c| {
            let member: Option<String> = c.query_opt(
                "SELECT id FROM members WHERE name = ?1",
                params![hint],
                |r| r.get(0),
            )?;
            let conn: Option<String> = c.query_opt(
                "SELECT id FROM connections WHERE name = ?1",
                params![&first_connection],
                |r| r.get(0),
            )?;
            Ok((member, conn))
        })?;
        let (Some(member_id), Some(connection_id)) = found else {
            return Err(refuse(match found.0 {
                None => OAuthError::UnknownUserId(format!(
                    "no member is called '{}'; `mandate member list` shows them",
                    hint.chars().take(60).collect::<String>().escape_default()
                )),
                Some(_) => OAuthError::InvalidScope(format!(
                    "no connection is called '{first_connection}'"
                )),
            }));
        };
        let member = hint.to_string();
        let id = format!("{ID_PREFIX}{}", uuid::Uuid::new_v4().simple());
        let why = match &binding {
            Some(b) => format!("asks for a token by CIBA: \u{201c}{b}\u{201d}"),
            None => "asks for a token by CIBA".to_string(),
        };
        let agent_id = agent.id.to_string();
        let agent_name = agent.name.to_string();
        let trust_state = agent.trust.to_string();
        let trust_score = agent.score;
        let used = self.m.used_jtis().clone();
        Ok(self.m.submit_grouped_shared_fate(move |tx, now_dt| {
            if let Some(e) = consume_assertion(&used, tx, now_dt, &consume, &agent_id, ACTION)? {
                return Ok(Err(e));
            }
            let expires = now_dt + Duration::seconds(expiry);
            tx.execute(
                "INSERT INTO approvals (id, agent_id, connection_id, action, on_behalf_of, why,
                     trust_state, trust_score, status, requested_at, expires_at, used)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending', ?9, ?10, 0)",
                params![
                    id,
                    agent_id,
                    connection_id,
                    scope,
                    member,
                    why,
                    trust_state,
                    trust_score,
                    ts(now_dt),
                    ts(expires),
                ],
            )?;
            let ev = NewEvent::new(
                &Actor::agent(&agent_id, &agent_name),
                "approval.requested",
                Decision::Allow,
            )
            .agent(&agent_id)
            .target(Target::new("agent", &agent_id, &agent_name))
            .on_behalf_of(Actor::member(&member_id, &member))
            .reason(why.clone())
            .details(json!({
                "approval": id,
                "ciba": true,
                "action": scope,
                "binding_message": binding,
                "trust_state": trust_state,
                "trust_score": trust_score,
                "expires": ts(expires),
            }));
            audit::append(tx, now_dt, ev)?;
            Ok(Ok(json!({
                "auth_req_id": id,
                "expires_in": expiry,
                "interval": INTERVAL_SECS,
            })))
        }))
    }

    /// The token endpoint's CIBA grant (§10.1): where the request stands, or the token.
    pub(super) fn ciba_poll(
        &self,
        form: &Form,
        agent: &ClientAgent,
        conns: &[policy::ConnInfo],
        resources: &[&str],
        now: i64,
    ) -> Result<Minted, OAuthError> {
        let unknown = || {
            OAuthError::InvalidGrant(format!(
                "'{}' has no CIBA request with that auth_req_id; start one at the backchannel \
                 authentication endpoint",
                agent.name
            ))
        };
        let Some(id) = form
            .get("auth_req_id")
            .filter(|id| id.starts_with(ID_PREFIX) && id.len() <= 64)
        else {
            return Err(match form.get("auth_req_id") {
                None => OAuthError::InvalidRequest("auth_req_id is missing".into()),
                Some(_) => unknown(),
            });
        };
        let found = self.readers.with(|c| {
            let used: Option<i64> = c.query_opt(
                "SELECT used FROM approvals WHERE id = ?1 AND agent_id = ?2",
                params![id, agent.id.as_str()],
                |r| r.get(0),
            )?;
            let Some(used) = used else {
                return Ok(None);
            };
            let a = approvals::load(c, id)?;
            let member: Option<String> = match a.as_ref().and_then(|a| a.on_behalf_of.clone()) {
                Some(name) => c.query_opt(
                    "SELECT id FROM members WHERE name = ?1",
                    params![name],
                    |r| r.get(0),
                )?,
                None => None,
            };
            Ok(a.map(|a| (a, used != 0, member)))
        })?;
        let Some((a, used, member_id)) = found else {
            return Err(unknown());
        };
        let terminal =
            !matches!(a.status, ApprovalStatus::Pending) || a.expires_at.timestamp() <= now;
        if !terminal && !self.ciba_polls.poll(id, now) {
            return Err(OAuthError::SlowDown(format!(
                "poll at most every {INTERVAL_SECS} s; wait {} s longer between polls",
                INTERVAL_SECS
            )));
        }
        if terminal {
            self.ciba_polls.forget(id);
        }
        match a.status {
            ApprovalStatus::Pending if a.expires_at.timestamp() > now => {
                Err(OAuthError::AuthorizationPending(format!(
                    "nobody has answered the request {id} yet; poll again in {INTERVAL_SECS} s"
                )))
            }
            ApprovalStatus::Pending | ApprovalStatus::Expired => Err(OAuthError::ExpiredToken(
                format!("nobody answered the request {id} before it expired; start a new one"),
            )),
            ApprovalStatus::Denied => Err(OAuthError::AccessDenied(format!(
                "{} denied the request {id}: {}",
                a.decided_by.as_deref().unwrap_or("a person"),
                a.reason.as_deref().unwrap_or("no reason given")
            ))),
            ApprovalStatus::Approved if used => Err(OAuthError::InvalidGrant(format!(
                "the request {id} already yielded its token; start a new one"
            ))),
            // The auth_req_id lives as long as the request (§7.3 expires_in), a yes included.
            ApprovalStatus::Approved if a.expires_at.timestamp() <= now => {
                Err(OAuthError::ExpiredToken(format!(
                    "the request {id} was approved but not collected before it expired; start a \
                     new one"
                )))
            }
            ApprovalStatus::Approved => {
                let (Some(member), Some(member_id)) = (a.on_behalf_of.clone(), member_id) else {
                    return Err(OAuthError::InvalidGrant(format!(
                        "the member the request {id} was made for no longer exists"
                    )));
                };
                let ceiling = Ceiling {
                    scopes: a.action.split_whitespace().map(String::from).collect(),
                    aud: None,
                    exp: a
                        .valid_until
                        .map_or(now + i64::from(u32::MAX), |t| t.timestamp()),
                    what: "the approved CIBA request",
                };
                let plan = policy::plan(
                    agent,
                    conns,
                    Some(&a.action),
                    resources,
                    Some(&ceiling),
                    self.cfg.default_ttl_secs,
                    now,
                )?;
                let mut extra = serde_json::Map::new();
                extra.insert("auth_req_id".into(), json!(id));
                extra.insert("approved_by".into(), json!(a.decided_by));
                Ok(Minted {
                    plan,
                    subject: member.clone(),
                    act: Some(json!({"sub": agent.name.as_str()})),
                    parent_jti: None,
                    delegation_id: None,
                    on_behalf_of: Some(Actor::member(&member_id, &member)),
                    extra,
                    ciba_request: Some(id.to_string()),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_poll_within_the_interval_is_told_to_slow_down() {
        let p = Polls::default();
        assert!(p.poll("ciba_a", 100));
        assert!(!p.poll("ciba_a", 100 + INTERVAL_SECS - 1));
        assert!(p.poll("ciba_b", 101));
        assert!(p.poll("ciba_a", 100 + INTERVAL_SECS));
    }

    #[test]
    fn openid_in_the_scope_is_ignored_and_an_empty_scope_refused() {
        let f = Form::parse(b"scope=openid%20billing%3Aread").unwrap();
        assert_eq!(requested_scopes(&f).unwrap(), "billing:read");
        let f = Form::parse(b"scope=openid").unwrap();
        assert_eq!(requested_scopes(&f).unwrap_err().code(), "invalid_scope");
    }
}
