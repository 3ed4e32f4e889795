//! The decision for one proxied call, and its audit events.
//!
//! [`Broker::authorize`] takes what the HTTP adapter read (connection, method, raw path and
//! query, the URL the client addressed, the `Authorization` and `DPoP` headers) and returns
//! either a [`Permit`] (the upstream URL, the credential to inject, what to mask in the
//! response) or a [`Denial`] (status, code, sentence). In order: the token (the endpoint's own
//! checks, see `oauth::resource`), the connection, the audience, path confinement, the action
//! the method and path map to and the scope for it, the connection's trust floor, the rate
//! limit, the credential in the keychain; then, in one grouped transaction, whether the token
//! is still active (revocation and suspension bite here), the DPoP proof's freshness, the daily
//! budget (reserved in the same transaction) and the audit event. Nothing leaves for the
//! upstream before its `proxy.allowed` event is durable; every refusal is a `proxy.denied`
//! event; [`Mandate::record_proxy_outcome`] adds `proxy.completed` with the upstream status,
//! bytes and latency when the call ends.
//!
//! What it is not: HTTP. The adapter (`mandate-server`'s `proxy.rs`) forwards the request.

use serde_json::{Value, json};

use super::auth::Injection;
use super::config::{self, day_of};
use super::limits::{self, RateBuckets};
use super::path;
use crate::Mandate;
use crate::audit::{self, Actor, Decision, NewEvent, Target};
use crate::model::{Agent, AgentStatus, Connection};
use crate::oauth::TokenService;
use crate::oauth::resource::{self, ResourceToken, ResourceTokenError};
use crate::secret::Sensitive;
use crate::store::{Tx, params};

/// What the adapter read from the request.
#[derive(Debug)]
pub struct ProxyRequest {
    /// The `{connection}` route segment.
    pub connection: String,
    pub method: String,
    /// The path after `/proxy/{connection}`, still percent-encoded, starting with `/`.
    pub raw_path: String,
    pub raw_query: Option<String>,
    /// The URL the client addressed (for a DPoP proof's `htu`).
    pub url: String,
    pub authorization: Vec<Sensitive<String>>,
    pub dpop: Vec<Sensitive<String>>,
    /// The `Mandate-Approval` header: the id of an approval request the agent retries with.
    pub approval: Option<String>,
}

/// A refused call. Its texts never hold a token or a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub status: u16,
    pub code: &'static str,
    pub description: String,
    /// Seconds, for `Retry-After`.
    pub retry_after: Option<u64>,
    /// The `WWW-Authenticate` challenge for 401s.
    pub challenge: Option<&'static str>,
    /// With `approval_pending`: the request's id, for the `Mandate-Approval` header.
    pub approval: Option<String>,
    /// The refusal is the agent's own trust verdict enforced (below the floor), not
    /// something new it did: behaviour does not count it as a denial (see
    /// [`crate::audit::TRUST_GATE`]).
    pub trust_gate: bool,
}

impl Denial {
    fn new(status: u16, code: &'static str, description: impl Into<String>) -> Self {
        Denial {
            status,
            code,
            description: description.into(),
            retry_after: None,
            challenge: None,
            approval: None,
            trust_gate: false,
        }
    }

    fn unauthorized(code: &'static str, description: impl Into<String>, dpop: bool) -> Self {
        let mut d = Denial::new(401, code, description);
        d.challenge = Some(match (dpop, code) {
            (true, _) => "DPoP error=\"invalid_dpop_proof\", algs=\"EdDSA Ed25519\"",
            (false, "invalid_token") => "Bearer error=\"invalid_token\"",
            _ => "Bearer",
        });
        d
    }

    fn unavailable() -> Self {
        Denial::new(
            503,
            "temporarily_unavailable",
            "Mandate could not record this call in its audit trail, so it did not forward it; \
             the app or `mandate serve` logs say why. Try again later",
        )
    }
}

/// Who made an allowed call and what it was, for its completion event.
#[derive(Debug, Clone)]
pub struct CallRecord {
    pub agent_id: String,
    pub agent: String,
    pub on_behalf_of: Option<Actor>,
    pub connection_id: String,
    pub connection: String,
    pub action: String,
    pub method: String,
    pub path: String,
    pub token_jti: String,
    /// The sequence number of the `proxy.allowed` event.
    pub allowed_seq: u64,
}

/// An allowed call: where it goes and with what.
#[derive(Debug)]
pub struct Permit {
    /// base URL + confined path + query (with a `query:` credential in it, hence sensitive).
    pub url: Sensitive<String>,
    pub injection: Injection,
    /// Every spelling of the credential, to mask in the response.
    pub needles: Vec<Sensitive<String>>,
    /// The connection's base URL (to map upstream redirects back onto the proxy).
    pub base_url: String,
    pub call: CallRecord,
}

/// How a forwarded call ended.
#[derive(Debug, Clone)]
pub struct CallOutcome {
    /// The upstream status, if it answered.
    pub status: Option<u16>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub latency_ms: u64,
    /// `completed`, `upstream_unreachable`, `upstream_timeout`, `upstream_error`,
    /// `client_disconnected`.
    pub result: &'static str,
}

/// The broker's in-memory state (rate-limit buckets), shared by every request, and how long
/// it holds a call that waits for a person's approval.
#[derive(Debug)]
pub struct Broker {
    buckets: RateBuckets,
    hold: std::time::Duration,
}

impl Default for Broker {
    fn default() -> Self {
        Broker {
            buckets: RateBuckets::default(),
            hold: std::time::Duration::from_secs(crate::approvals::DEFAULT_HOLD_SECS),
        }
    }
}

/// A path, safe for the audit trail: printable, short, no token-like text.
fn printable_path(raw: &str) -> String {
    let s: String = raw
        .chars()
        .take(512)
        .collect::<String>()
        .escape_default()
        .to_string();
    if s.contains("eyJ") {
        "[a path holding token-like text was omitted]".into()
    } else {
        s
    }
}

/// What a denial event says about the request.
struct Context<'a> {
    req: &'a ProxyRequest,
    agent: Option<&'a Agent>,
    token: Option<&'a ResourceToken>,
    on_behalf_of: Option<Actor>,
    connection: Option<&'a Connection>,
    action: Option<&'a str>,
    /// The approval that let the call through, or the request it waits on.
    approval: Option<String>,
}

impl Context<'_> {
    fn details(&self, d: &Denial) -> Value {
        let mut v = json!({
            "connection": self.connection.map(|c| c.name.to_string()).unwrap_or_else(|| printable_path(&self.req.connection)),
            "method": self.req.method.chars().take(16).collect::<String>(),
            "path": printable_path(&self.req.raw_path),
            "status": d.status,
            "error": d.code,
        });
        if d.trust_gate {
            v[crate::audit::TRUST_GATE] = json!(true);
        }
        if let Some(a) = self.action {
            v["action"] = json!(a);
        }
        if let Some(id) = d.approval.as_ref().or(self.approval.as_ref()) {
            v["approval"] = json!(id);
        }
        if let Some(t) = self.token {
            v["token_jti"] = json!(t.jti);
            v["sub"] = json!(t.subject);
        }
        if let Some(a) = self.agent.filter(|a| !a.parents.is_empty()) {
            v["parent_chain"] = json!(a.parents);
        }
        v
    }

    fn event(&self, d: &Denial) -> NewEvent {
        let actor = match self.agent {
            Some(a) => Actor::agent(a.id.as_str(), a.name.as_str()),
            // No agent could be identified from the request (no token, or not ours): the
            // broker's own refusal.
            None => Actor::system("broker", "secret broker, no agent identified"),
        };
        let mut ev = NewEvent::new(&actor, "proxy.denied", Decision::Deny)
            .reason(d.description.clone())
            .details(self.details(d));
        if let Some(a) = self.agent {
            ev = ev.agent(a.id.as_str());
        }
        if let Some(c) = self.connection {
            ev = ev.target(Target::new("connection", c.id.as_str(), c.name.as_str()));
        }
        if let Some(m) = &self.on_behalf_of {
            ev = ev.on_behalf_of(m.clone());
        }
        ev
    }
}

impl Broker {
    pub fn new() -> Self {
        Broker::default()
    }

    /// A broker that holds calls waiting for approval up to `hold` (default 60 s).
    pub fn with_hold(hold: std::time::Duration) -> Self {
        Broker {
            hold,
            ..Broker::default()
        }
    }

    /// Decide one call (see the module docs for the order of checks). Every refusal is
    /// audited before it is returned; a permit is returned only after its `proxy.allowed`
    /// event and budget reservation are committed.
    pub fn authorize(&self, svc: &TokenService, req: &ProxyRequest) -> Result<Permit, Denial> {
        let m = svc.mandate();
        let mut ctx = Context {
            req,
            agent: None,
            token: None,
            on_behalf_of: None,
            connection: None,
            action: None,
            approval: None,
        };
        let deny = |ctx: &Context<'_>, d: Denial, count: Option<(&str, &str)>| -> Denial {
            let ev = ctx.event(&d);
            let day = day_of(m.now());
            let count = count.map(|(a, c)| (a.to_string(), c.to_string()));
            let res = m.write_grouped(move |tx, now| {
                if let Some((agent_id, connection_id)) = count {
                    bump(tx, &agent_id, &connection_id, &day, 0, false)?;
                }
                audit::append(tx, now, ev)
            });
            match res {
                Ok(_) => d,
                Err(e) => {
                    tracing::error!(error = %e, "the broker could not audit a refusal");
                    Denial::unavailable()
                }
            }
        };

        // 1. The token: the endpoint's own checks.
        let token =
            match svc.check_resource_token(&req.authorization, &req.dpop, &req.method, &req.url) {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => {
                    let d = match &e {
                        ResourceTokenError::Dpop(s) => {
                            Denial::unauthorized("invalid_dpop_proof", s.clone(), true)
                        }
                        ResourceTokenError::Missing(s) => {
                            Denial::unauthorized("invalid_request", s.clone(), false)
                        }
                        ResourceTokenError::Invalid(s) => {
                            Denial::unauthorized("invalid_token", s.clone(), false)
                        }
                    };
                    return Err(deny(&ctx, d, None));
                }
                Err(e) => {
                    tracing::error!(error = %e, "the broker could not check a token");
                    return Err(Denial::unavailable());
                }
            };
        let agent = match m.get_agent(&token.agent_id) {
            Ok(a) => a,
            Err(_) => {
                let d = Denial::unauthorized(
                    "invalid_token",
                    "the agent this token was issued to no longer exists",
                    false,
                );
                return Err(deny(&ctx, d, None));
            }
        };
        let on_behalf_of = match &token.delegation_id {
            Some(id) => m
                .delegation_row(id)
                .ok()
                .flatten()
                .map(|d| Actor::member(&d.member_id, &d.member)),
            None => None,
        };
        ctx.agent = Some(&agent);
        ctx.token = Some(&token);
        ctx.on_behalf_of = on_behalf_of.clone();
        // Checked again, authoritatively, in the transaction below; this early answer only
        // keeps a suspended agent from being told about trust floors or budgets.
        if agent.status != AgentStatus::Active {
            let d = Denial::unauthorized(
                "invalid_token",
                format!(
                    "the token is not active: its agent '{}' is {}",
                    agent.name, agent.status
                ),
                false,
            );
            return Err(deny(&ctx, d, None));
        }
        if let Some(held) = &agent.held_by_parent {
            let d = Denial::unauthorized(
                "invalid_token",
                format!("the token is not active: {}", held.message),
                false,
            );
            return Err(deny(&ctx, d, None));
        }

        // 2. The connection and the audience.
        let connection = match m.get_connection(&req.connection) {
            Ok(c) => c,
            Err(_) => {
                let d = Denial::new(
                    404,
                    "unknown_connection",
                    "there is no connection by that name; `mandate connection list` shows them",
                );
                return Err(deny(&ctx, d, None));
            }
        };
        ctx.connection = Some(&connection);
        let count = Some((agent.id.as_str(), connection.id.as_str()));
        if connection.kind == crate::model::ConnectionKind::Database {
            let d = Denial::new(
                400,
                "not_brokered",
                format!(
                    "'{}' is a database connection: the broker does not call it. Its URL is \
                     handed to the program by `mandate exec` when the token holds {}:connect",
                    connection.name, connection.name
                ),
            );
            return Err(deny(&ctx, d, count));
        }
        if !token.aud.contains(&connection.base_url) {
            let d = Denial::new(
                403,
                "insufficient_scope",
                format!(
                    "this token is not for '{}' (its audience does not include {}); ask for a \
                     token with a scope on it",
                    connection.name, connection.base_url
                ),
            );
            return Err(deny(&ctx, d, count));
        }

        // 3. The path, and the action it maps to.
        let confined = match path::confine(&req.raw_path) {
            Ok(p) => p,
            Err(why) => {
                let d = Denial::new(
                    403,
                    "path_not_allowed",
                    format!(
                        "{why}; the broker forwards only plain paths under the connection's base URL"
                    ),
                );
                return Err(deny(&ctx, d, count));
            }
        };
        let cfg = {
            match m.read(|tx| config::load(tx, &connection)) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "the broker could not read its settings");
                    return Err(Denial::unavailable());
                }
            }
        };
        let matching = path::matching_actions(&connection.actions, &req.method, &confined);
        let held = matching.iter().find(|a| {
            let scope = format!("{}:{}", connection.name, a.name);
            token.scopes.contains(&scope)
        });
        let Some(action) = held else {
            let description = if matching.is_empty() {
                format!(
                    "no action of '{}' allows {} {}; the connection's actions are listed by \
                     `mandate connection show {}`",
                    connection.name,
                    req.method.chars().take(16).collect::<String>(),
                    printable_path(&req.raw_path),
                    connection.name
                )
            } else {
                let needed: Vec<String> = matching
                    .iter()
                    .map(|a| format!("{}:{}", connection.name, a.name))
                    .collect();
                format!(
                    "this call needs the scope {}, which the token does not carry",
                    needed.join(" or ")
                )
            };
            let d = Denial::new(403, "insufficient_scope", description);
            return Err(deny(&ctx, d, count));
        };
        let scope = format!("{}:{}", connection.name, action.name);
        ctx.action = Some(&scope);
        let policy = cfg.action(&action.name);
        let cost = u64::from(policy.map_or(1, |p| p.cost));
        let essential = policy.is_some_and(|p| p.essential);

        // 4. Trust floor and rate limit.
        // A person may stand in for the floor (`below_floor`), or be asked every time
        // (`always`): the call is held while someone decides.
        let below = crate::trust::below_floor(
            agent.trust.state,
            agent.trust.score,
            connection.trust_floor,
            connection.min_score,
            agent.trust.organisation_floor,
        );
        let rule =
            match m.read(|c| crate::approvals::rule_for(c, connection.id.as_str(), &action.name)) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "the broker could not read an approval rule");
                    return Err(Denial::unavailable());
                }
            };
        let ask_why = match (rule, &below) {
            (Some(crate::approvals::ApprovalMode::Always), Some(why)) => Some(format!(
                "always asks a person, and the agent is below the floor: {why}"
            )),
            (Some(crate::approvals::ApprovalMode::Always), None) => {
                Some("this action always asks a person".to_string())
            }
            (Some(crate::approvals::ApprovalMode::BelowFloor), Some(why)) => Some(format!(
                "the agent is {} (score {}) but {why}",
                agent.trust.state, agent.trust.score
            )),
            _ => None,
        };
        if let Some(ask_why) = ask_why {
            // The person deciding sees the call itself, not only its action (no query string:
            // it may carry data the agent sends).
            let ask_why = format!(
                "{} {} \u{2014} {ask_why}",
                req.method.chars().take(16).collect::<String>(),
                printable_path(&req.raw_path)
                    .chars()
                    .take(200)
                    .collect::<String>()
            );
            let state = agent.trust.state.to_string();
            let ask = crate::approvals::Ask {
                agent_id: agent.id.as_str(),
                agent: agent.name.as_str(),
                connection_id: connection.id.as_str(),
                connection: connection.name.as_str(),
                action: &scope,
                on_behalf_of: on_behalf_of.as_ref(),
                why: &ask_why,
                trust_state: &state,
                trust_score: agent.trust.score,
                retry_id: req.approval.as_deref(),
            };
            match m.hold_for_approval(&ask, self.hold) {
                Ok(crate::approvals::Outcome::Approved(id)) => ctx.approval = Some(id),
                Ok(crate::approvals::Outcome::Denied { id, by, reason }) => {
                    let d = Denial::new(
                        403,
                        "access_denied",
                        format!("{by} denied this call (request {id}): {reason}"),
                    );
                    return Err(deny(&ctx, d, count));
                }
                Ok(crate::approvals::Outcome::Pending(id)) => {
                    let mut d = Denial::new(
                        403,
                        "approval_pending",
                        format!(
                            "this call waits for a person's approval ({ask_why}); nobody \
                             answered within {} s. Retry with the header `Mandate-Approval: \
                             {id}` once someone approves it in the app or with `mandate \
                             approvals approve {id}`",
                            self.hold.as_secs()
                        ),
                    );
                    d.retry_after = Some(5);
                    d.approval = Some(id);
                    return Err(deny(&ctx, d, count));
                }
                Err(e) => {
                    tracing::error!(error = %e, "the broker could not hold a call for approval");
                    return Err(Denial::unavailable());
                }
            }
        } else if let Some(why) = below {
            let mut d = Denial::new(
                403,
                "access_denied",
                format!(
                    "the agent '{}' is {} (score {}) but {why} for '{}'",
                    agent.name, agent.trust.state, agent.trust.score, connection.name
                ),
            );
            d.trust_gate = true;
            return Err(deny(&ctx, d, count));
        }
        if let Some(per_minute) = cfg.rate_per_minute
            && let Err(wait) = self.buckets.take(
                agent.id.as_str(),
                connection.id.as_str(),
                per_minute,
                m.now().timestamp_millis(),
            )
        {
            let mut d = Denial::new(
                429,
                "rate_limited",
                format!(
                    "more than {per_minute} calls per minute to '{}'; retry in {wait} s",
                    connection.name
                ),
            );
            d.retry_after = Some(wait);
            return Err(deny(&ctx, d, count));
        }

        // 5. The credential.
        let secret = match m.connection_secret(connection.id.as_str()) {
            Ok(Some(s)) => s,
            Ok(None) => {
                let d = Denial::new(
                    503,
                    "credential_missing",
                    format!(
                        "the connection '{}' has no credential yet; a person stores it with \
                         `mandate connection set-secret {}`",
                        connection.name, connection.name
                    ),
                );
                return Err(deny(&ctx, d, count));
            }
            Err(e) => {
                tracing::warn!(error = %e, "the broker could not read a credential");
                let d = Denial::new(
                    503,
                    "credential_unavailable",
                    "the OS keychain holding the connection's credential is locked or \
                     unreachable; unlock it and retry",
                );
                return Err(deny(&ctx, d, count));
            }
        };
        let injection = cfg.auth.inject(&secret);
        let needles = injection.needles(&secret);
        drop(secret);
        let url = match upstream_url(
            &connection.base_url,
            &confined.raw,
            req.raw_query.as_deref(),
            &injection,
        ) {
            Some(u) => u,
            None => {
                let d = Denial::new(
                    403,
                    "path_not_allowed",
                    "the path would leave the connection's base URL",
                );
                return Err(deny(&ctx, d, count));
            }
        };

        // 6. In one transaction: still active, fresh proof, budget, audit.
        let day = day_of(m.now());
        let details = ctx.details(&Denial::new(0, "", ""));
        let mut allow = NewEvent::new(
            &Actor::agent(agent.id.as_str(), agent.name.as_str()),
            "proxy.allowed",
            Decision::Allow,
        )
        .agent(agent.id.as_str())
        .target(Target::new(
            "connection",
            connection.id.as_str(),
            connection.name.as_str(),
        ));
        if let Some(mb) = &on_behalf_of {
            allow = allow.on_behalf_of(mb.clone());
        }
        let mut allow_details = details;
        if let Value::Object(o) = &mut allow_details {
            o.remove("status");
            o.remove("error");
            o.insert("cost".into(), json!(cost));
            o.insert("path".into(), json!(printable_path(&confined.raw)));
        }
        let allow = allow.details(allow_details);
        let deny_base = ctx.event(&Denial::new(403, "", ""));
        let budget = cfg.daily_budget;
        let (agent_id, connection_id) = (agent.id.to_string(), connection.id.to_string());
        let t = token.clone();
        let conn_name = connection.name.to_string();
        let action_name = scope.clone();
        let used = m.used_jtis().clone();
        let outcome = m.write_grouped(move |tx, now_dt| {
            let refuse = |d: Denial| -> crate::Result<Result<u64, Denial>> {
                let mut ev = deny_base;
                ev.reason = Some(d.description.clone());
                ev.details["status"] = json!(d.status);
                ev.details["error"] = json!(d.code);
                bump(tx, &agent_id, &connection_id, &day, 0, false)?;
                audit::append(tx, now_dt, ev)?;
                Ok(Err(d))
            };
            if let Err(why) = resource::confirm_active(&used, tx, &t, now_dt.timestamp())? {
                let dpop = t.proof.is_some() && why.contains("DPoP");
                let code = if dpop {
                    "invalid_dpop_proof"
                } else {
                    "invalid_token"
                };
                return refuse(Denial::unauthorized(code, why, dpop));
            }
            let (used, _, _) = config::usage_row(tx, &agent_id, &connection_id, &day)?;
            if let Err(r) = limits::check_budget(budget, used, cost, essential) {
                return refuse(Denial::new(
                    403,
                    r.code(),
                    r.describe(&conn_name, &action_name),
                ));
            }
            bump(tx, &agent_id, &connection_id, &day, cost, true)?;
            let ev = audit::append(tx, now_dt, allow)?;
            Ok(Ok(ev.seq))
        });
        let allowed_seq = match outcome {
            Ok(Ok(seq)) => seq,
            Ok(Err(d)) => return Err(d),
            Err(e) => {
                tracing::error!(error = %e, "the broker could not audit a call");
                return Err(Denial::unavailable());
            }
        };
        Ok(Permit {
            url,
            injection,
            needles,
            base_url: connection.base_url.clone(),
            call: CallRecord {
                agent_id: agent.id.to_string(),
                agent: agent.name.to_string(),
                on_behalf_of,
                connection_id: connection.id.to_string(),
                connection: connection.name.to_string(),
                action: scope,
                method: req.method.clone(),
                path: printable_path(&confined.raw),
                token_jti: token.jti.clone(),
                allowed_seq,
            },
        })
    }
}

/// Count a call (`units` reserved) or a refusal on the agent's row for `day`.
pub(crate) fn bump(
    tx: &Tx<'_>,
    agent_id: &str,
    connection_id: &str,
    day: &str,
    units: u64,
    allowed: bool,
) -> crate::Result<()> {
    tx.execute(
        "INSERT INTO broker_usage (agent_id, connection_id, day, units, calls, denied)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (agent_id, connection_id, day) DO UPDATE SET
             units = broker_usage.units + ?4, calls = broker_usage.calls + ?5,
             denied = broker_usage.denied + ?6",
        params![
            agent_id,
            connection_id,
            day,
            i64::try_from(units).unwrap_or(i64::MAX),
            i64::from(allowed),
            i64::from(!allowed)
        ],
    )?;
    Ok(())
}

/// base URL + confined path + query, with a `query:` credential appended (after removing the
/// agent's own parameter of that name). `None` if the result would not stay under the base
/// URL (it cannot, after `path::confine`; this is the second lock on the door).
fn upstream_url(
    base: &str,
    raw_path: &str,
    raw_query: Option<&str>,
    injection: &Injection,
) -> Option<Sensitive<String>> {
    let base_u = url::Url::parse(base).ok()?;
    let mut query: Vec<&str> = raw_query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .collect();
    if let Injection::Query { name, .. } = injection {
        query.retain(|p| {
            let key = p.split('=').next().unwrap_or("");
            let decoded: String = form_urlencoded::parse(key.as_bytes())
                .next()
                .map(|(k, _)| k.into_owned())
                .unwrap_or_default();
            decoded != *name
        });
    }
    let path_part = if raw_path == "/" && base_u.path() != "/" {
        String::new()
    } else {
        raw_path.to_string()
    };
    let mut url = format!("{}{}", base.trim_end_matches('/'), path_part);
    // Check the shape before the credential goes in, so nothing below ever formats it.
    let check = if query.is_empty() {
        url.clone()
    } else {
        format!("{url}?{}", query.join("&"))
    };
    let u = url::Url::parse(&check).ok()?;
    let base_path = base_u.path().trim_end_matches('/');
    if u.scheme() != base_u.scheme()
        || u.host_str() != base_u.host_str()
        || u.port_or_known_default() != base_u.port_or_known_default()
        || !u.username().is_empty()
        || u.password().is_some()
        || !(u.path() == base_path || u.path().starts_with(&format!("{base_path}/")))
    {
        return None;
    }
    if let Injection::Query { name, encoded } = injection {
        let mut q: Vec<String> = query.iter().map(|p| p.to_string()).collect();
        q.push(format!("{name}={}", encoded.expose()));
        url.push('?');
        url.push_str(&q.join("&"));
        return Some(Sensitive::new(url));
    }
    if !query.is_empty() {
        url.push('?');
        url.push_str(&query.join("&"));
    }
    Some(Sensitive::new(url))
}

impl Mandate {
    /// Record how an allowed call ended (`proxy.completed`), with the upstream status, bytes
    /// and latency.
    pub fn record_proxy_outcome(
        &self,
        call: &CallRecord,
        outcome: &CallOutcome,
    ) -> crate::Result<()> {
        let mut ev = NewEvent::new(
            &Actor::agent(&call.agent_id, &call.agent),
            "proxy.completed",
            Decision::Allow,
        )
        .agent(&call.agent_id)
        .target(Target::new(
            "connection",
            &call.connection_id,
            &call.connection,
        ))
        .details(json!({
            "connection": call.connection,
            "action": call.action,
            "method": call.method,
            "path": call.path,
            "token_jti": call.token_jti,
            "allowed_seq": call.allowed_seq,
            "upstream_status": outcome.status,
            "bytes_sent": outcome.bytes_sent,
            "bytes_received": outcome.bytes_received,
            "latency_ms": outcome.latency_ms,
            "result": outcome.result,
        }));
        if let Some(m) = &call.on_behalf_of {
            ev = ev.on_behalf_of(m.clone());
        }
        self.write_grouped(move |tx, now| audit::append(tx, now, ev))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::auth::CredentialPlacement;

    fn url_of(base: &str, path: &str, query: Option<&str>, how: &str) -> Option<String> {
        let inj = how
            .parse::<CredentialPlacement>()
            .unwrap()
            .inject(&Sensitive::new("s3cret-value".into()));
        upstream_url(base, path, query, &inj).map(|u| u.expose().clone())
    }

    #[test]
    fn upstream_url_is_base_plus_path_plus_query() {
        assert_eq!(
            url_of(
                "https://api.github.com",
                "/repos/a/b",
                Some("per_page=5"),
                "bearer"
            )
            .unwrap(),
            "https://api.github.com/repos/a/b?per_page=5"
        );
        assert_eq!(
            url_of(
                "https://api.openai.com/v1",
                "/chat/completions",
                None,
                "bearer"
            )
            .unwrap(),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(
            url_of(
                "http://127.0.0.1:9/api",
                "/x",
                Some("key=mine&a=1"),
                "query:key"
            )
            .unwrap(),
            "http://127.0.0.1:9/api/x?a=1&key=s3cret-value"
        );
        assert_eq!(
            url_of("http://127.0.0.1:9/api", "/", None, "bearer").unwrap(),
            "http://127.0.0.1:9/api"
        );
        // Whatever the path, the host stays (the confine step refuses these earlier).
        assert!(url_of("https://api.github.com", "@evil.example/x", None, "bearer").is_none());
        assert!(url_of("https://api.github.com", ".evil.example/x", None, "bearer").is_none());
    }
}
