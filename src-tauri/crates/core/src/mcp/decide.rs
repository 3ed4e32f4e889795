//! The decision for one message an agent sends through the MCP gateway, and its audit events.
//!
//! A [`McpSession`] is one agent talking to one server (a `mandate mcp run` process, or one
//! Streamable HTTP session). For each message the protocol layer says what it needs
//! ([`Need`]); [`McpSession::authorize`] answers with a [`McpPermit`] or a [`McpDenial`]:
//!
//! 1. the agent must be active (a revocation or suspension applies to the next message);
//! 2. a tool call, prompt or resource read needs its scope (`SERVER:tool`, exact bytes);
//! 3. the agent's trust state must reach the server's trust floor;
//! 4. the server's rate limit (per agent, per minute) must have room;
//! 5. in one grouped transaction: the agent is still active and still holds the scope (read
//!    again, authoritatively), the daily budget is checked and reserved (at 90 % only
//!    essential tools pass), and the `mcp.tool_called` event is appended.
//!
//! Nothing reaches the server before that event is durable. Every refusal is an `mcp.denied`
//! event with its reason; [`McpSession::record_outcome`] appends `mcp.tool_completed` (result
//! status, `isError`, bytes, latency, how it ended) when the call ends, however it ends.
//! Listing (`tools/list`, `prompts/list`) and lifecycle messages need only an active agent;
//! the protocol layer filters what a list shows with [`McpSession::may`].
//!
//! What the session reads about the agent (status, scopes, trust, the server's settings) is
//! reused while the registry's generation number is unchanged (the same rule as the token
//! endpoint's memo, `oauth/registry_memo.rs`), so a quiet session reads one integer per
//! message, and any change that commits applies to the next message.
//!
//! What it is not: JSON-RPC. It never sees a message, only what the message asks for.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use crate::store::params;
use serde_json::{Value, json};

use super::registry::load_server;
use crate::Mandate;
use crate::audit::{self, Actor, Decision, NewEvent, Target};
use crate::broker::config::{BrokerConfig, day_of, usage_row};
use crate::broker::gate::bump;
use crate::broker::limits::{self, RateBuckets};
use crate::error::{Error, Result};
use crate::model::{AgentStatus, TrustState};

/// What a message asks of the server, as far as the gate is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// Lifecycle and utility messages (`initialize`, `ping`, notifications, responses):
    /// only an active agent.
    Nothing,
    /// A list whose result the protocol layer filters (`tools/list`, `prompts/list`).
    List,
    /// Calling this tool (the exact name the client sent).
    Tool(String),
    /// Getting this prompt.
    Prompt(String),
    /// Reading, listing or subscribing to resources.
    Resources,
}

impl Need {
    /// The action this need is granted under, if any.
    pub fn action(&self) -> Option<String> {
        match self {
            Need::Tool(t) => Some(t.clone()),
            Need::Prompt(p) => Some(format!("{}{p}", super::PROMPT_PREFIX)),
            Need::Resources => Some(super::RESOURCES_ACTION.to_string()),
            Need::Nothing | Need::List => None,
        }
    }
}

/// One message to decide.
#[derive(Debug, Clone)]
pub struct McpCall {
    /// The JSON-RPC method (already checked to be short and printable by the caller).
    pub method: String,
    pub need: Need,
    /// The JSON-RPC id, as JSON text, for the audit trail.
    pub request_id: Option<String>,
    /// Lower-case hex SHA-256 of the RFC 8785 canonical arguments.
    pub arguments_sha256: Option<String>,
    /// The arguments themselves: recorded only when the server opts in.
    pub arguments: Option<Value>,
    /// Size of the message in bytes.
    pub bytes: u64,
}

/// A refused message. Its sentence names the missing scope or the reason and never holds an
/// argument or a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpDenial {
    /// A stable code: `insufficient_scope`, `agent_inactive`, `access_denied`,
    /// `rate_limited`, `budget_exhausted`, `budget_reserved_for_essential`,
    /// `temporarily_unavailable`, or one the protocol layer chose (`invalid_request`...).
    pub code: &'static str,
    pub message: String,
    /// The scope the call needed, when that is why it was refused.
    pub scope: Option<String>,
    /// The agent's own trust verdict enforced (below the floor), not something new it did
    /// ([`crate::audit::TRUST_GATE`]).
    pub trust_gate: bool,
}

impl McpDenial {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        McpDenial {
            code,
            message: message.into(),
            scope: None,
            trust_gate: false,
        }
    }

    fn unavailable() -> Self {
        McpDenial::new(
            "temporarily_unavailable",
            "Mandate could not record this call in its audit trail, so it did not pass it on; \
             the logs of `mandate mcp run` say why. Try again later",
        )
    }
}

/// An allowed call, for its completion event.
#[derive(Debug, Clone)]
pub struct McpPermit {
    /// The scope it was allowed under (`None` for lists and lifecycle messages).
    pub scope: Option<String>,
    pub method: String,
    /// The sequence number of its `mcp.tool_called` event (`None` when none was written).
    pub called_seq: Option<u64>,
    pub request_id: Option<String>,
}

/// How an allowed call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpCallOutcome {
    /// `ok`, `tool_error` (the result's `isError`), `rpc_error` (a JSON-RPC error),
    /// `timeout`, `server_exited`, `client_disconnected`, `cancelled`.
    pub result: &'static str,
    /// The result's `isError` flag, when there was a result.
    pub is_error: Option<bool>,
    /// The JSON-RPC error code, when the server answered with one.
    pub error_code: Option<i64>,
    /// Bytes of the response relayed to the client.
    pub bytes: u64,
    pub latency_ms: u64,
}

/// What the session knows about its agent and server, valid for one registry generation.
#[derive(Debug, Clone)]
struct View {
    generation: i64,
    status: AgentStatus,
    scopes: BTreeSet<String>,
    trust: TrustState,
    score: i32,
    floor: TrustState,
    min_score: Option<i32>,
    organisation_floor: i32,
    cfg: BrokerConfig,
    audit_arguments: bool,
    parent_chain: Vec<String>,
    /// Why a suspended or revoked agent above holds this one back (it then gets nothing).
    held_by_parent: Option<String>,
}

impl View {
    /// Why the agent is below the server's floors (see `crate::trust::below_floor`).
    fn below_floor(&self) -> Option<String> {
        crate::trust::below_floor(
            self.trust,
            self.score,
            self.floor,
            self.min_score,
            self.organisation_floor,
        )
    }
}

/// One agent's conversation with one MCP server.
#[derive(Debug)]
pub struct McpSession {
    mandate: Arc<Mandate>,
    agent_id: String,
    agent: String,
    server_id: String,
    server: String,
    /// `stdio` (`mandate mcp run`) or `http` (the endpoint's `/mcp/{server}`).
    via: &'static str,
    on_behalf_of: Option<Actor>,
    /// Over HTTP: the access token of the latest request. A call needs its scope in the token
    /// too (a token may carry fewer than the agent holds), and the token must still be active
    /// (not revoked, its delegation valid) in the transaction of the call's event. `None` for
    /// the stdio bridge.
    token: Mutex<Option<crate::oauth::resource::ResourceToken>>,
    view: Mutex<Option<View>>,
    buckets: RateBuckets,
    /// How long a call that needs a person's approval is held before `approval_pending`.
    hold: std::time::Duration,
}

impl McpSession {
    /// Open a session for `agent` (name or id) on `server` (an MCP server's name). Fails if
    /// either does not exist; the agent's status is checked per message, not here, so a
    /// refused agent's attempts are audited.
    pub fn open(
        mandate: Arc<Mandate>,
        agent: &str,
        server: &str,
        via: &'static str,
    ) -> Result<Self> {
        let a = mandate.get_agent(agent)?;
        let s = mandate.get_mcp_server(server)?;
        Ok(McpSession {
            mandate,
            agent_id: a.id.to_string(),
            agent: a.name.to_string(),
            server_id: s.id.to_string(),
            server: s.name.to_string(),
            via,
            on_behalf_of: None,
            token: Mutex::new(None),
            view: Mutex::new(None),
            buckets: RateBuckets::default(),
            hold: crate::approvals::mcp_hold_from_env(),
        })
    }

    /// Hold calls that need a person's approval this long (0: answer `approval_pending` at
    /// once) instead of `MANDATE_APPROVAL_HOLD_SECS` or the gateway's 50 s default.
    pub fn with_approval_hold(mut self, hold: std::time::Duration) -> Self {
        self.hold = hold;
        self
    }

    /// Record that the agent acts for a team member (a delegation).
    pub fn acting_for(mut self, member: Actor) -> Self {
        self.on_behalf_of = Some(member);
        self
    }

    /// Limit the next messages to what this access token carries, and check it (revocation,
    /// the agent, a delegation) with every call. Its DPoP proof, if any, was checked and
    /// recorded by the caller for the request that carried it.
    pub fn use_token(&self, mut token: crate::oauth::resource::ResourceToken) {
        token.proof = None;
        if let Ok(mut t) = self.token.lock() {
            *t = Some(token);
        }
    }

    /// The agent's id.
    pub fn agent_id(&self) -> &str {
        &self.agent_id
    }

    fn token_allows(&self, scope: &str) -> bool {
        match self.token.lock() {
            Ok(t) => t
                .as_ref()
                .is_none_or(|t| t.scopes.iter().any(|s| s == scope)),
            Err(_) => false,
        }
    }

    pub fn agent(&self) -> &str {
        &self.agent
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    pub fn mandate(&self) -> &Arc<Mandate> {
        &self.mandate
    }

    /// The current view, re-read when the registry changed since it was read.
    fn view(&self) -> Result<View> {
        let generation: i64 = self.mandate.read(|tx| {
            tx.query_row(
                "SELECT n FROM registry_generation WHERE id = 1",
                params![],
                |r| r.get(0),
            )
        })?;
        let mut cached = self
            .view
            .lock()
            .map_err(|_| Error::Storage("an earlier MCP decision panicked".into()))?;
        if let Some(v) = cached.as_ref()
            && v.generation == generation
        {
            return Ok(v.clone());
        }
        let agent = self.mandate.get_agent(&self.agent_id)?;
        let (floor, min_score, cfg, audit_arguments) = self.mandate.read(|conn| {
            let s = load_server(conn, &self.server_id)?
                .ok_or_else(|| Error::not_found("MCP server", self.server.clone()))?;
            let c = crate::registry::connection_tx(conn, &self.server_id)?;
            Ok((
                s.trust_floor,
                c.min_score,
                crate::broker::config::load(conn, &c)?,
                s.audit_arguments,
            ))
        })?;
        let parent_chain = agent.parents.iter().map(|p| p.to_string()).collect();
        let v = View {
            generation,
            status: agent.status,
            held_by_parent: agent.held_by_parent.as_ref().map(|h| h.message.clone()),
            scopes: agent.scopes.iter().map(|s| s.to_string()).collect(),
            trust: agent.trust.state,
            score: agent.trust.score,
            floor,
            min_score,
            organisation_floor: agent.trust.organisation_floor,
            cfg,
            audit_arguments,
            parent_chain,
        };
        *cached = Some(v.clone());
        Ok(v)
    }

    /// Whether calls of `action` can wait for a person's approval (an approval rule on the
    /// tool or the server): such a tool stays listed below the floor.
    fn asks_a_person(&self, action: &str) -> bool {
        self.mandate
            .read(|c| crate::approvals::rule_for(c, &self.server_id, action))
            .ok()
            .flatten()
            .is_some()
    }

    /// Whether the agent may use `action` right now (for filtering lists): active, holding
    /// the scope and trusted enough for the server.
    pub fn may(&self, action: &str) -> bool {
        self.view().is_ok_and(|v| {
            let scope = super::tool_scope(&self.server, action);
            v.status == AgentStatus::Active
                && v.held_by_parent.is_none()
                && (v.below_floor().is_none() || self.asks_a_person(action))
                && v.scopes.contains(&scope)
                && self.token_allows(&scope)
        })
    }

    /// The actions the agent holds on this server (exact names).
    pub fn granted_actions(&self) -> Vec<String> {
        let prefix = format!("{}:", self.server);
        self.view()
            .map(|v| {
                v.scopes
                    .iter()
                    .filter(|s| self.token_allows(s))
                    .filter_map(|s| s.strip_prefix(&prefix).map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn base_details(&self, call: &McpCall, view: Option<&View>) -> Value {
        let mut d = json!({
            "server": self.server,
            "via": self.via,
            "method": call.method,
        });
        if let Some(a) = call.need.action() {
            d["tool"] = json!(a);
            d["scope"] = json!(super::tool_scope(&self.server, &a));
        }
        if let Some(id) = &call.request_id {
            d["request_id"] = json!(id);
        }
        if let Some(h) = &call.arguments_sha256 {
            d["arguments_sha256"] = json!(h);
        }
        if let Some(v) = view {
            if !v.parent_chain.is_empty() {
                d["parent_chain"] = json!(v.parent_chain);
            }
            if v.audit_arguments
                && let Some(a) = &call.arguments
            {
                d["arguments"] = a.clone();
            }
        }
        d["bytes"] = json!(call.bytes);
        d
    }

    fn event(&self, action: &str, decision: Decision, details: Value) -> NewEvent {
        let mut ev = NewEvent::new(&Actor::agent(&self.agent_id, &self.agent), action, decision)
            .agent(&self.agent_id)
            .target(Target::new("connection", &self.server_id, &self.server))
            .details(details);
        if let Some(m) = &self.on_behalf_of {
            ev = ev.on_behalf_of(m.clone());
        }
        ev
    }

    /// Audit a refusal the protocol layer decided (malformed message, batch, oversized,
    /// unknown method) and return it. Waits until the event is durable.
    pub async fn refuse(&self, call: &McpCall, denial: McpDenial) -> McpDenial {
        let view = self.view().ok();
        self.write_denial(call, denial, view.as_ref(), false).await
    }

    async fn write_denial(
        &self,
        call: &McpCall,
        d: McpDenial,
        view: Option<&View>,
        count: bool,
    ) -> McpDenial {
        let mut details = self.base_details(call, view);
        details["error"] = json!(d.code);
        if d.trust_gate {
            details[crate::audit::TRUST_GATE] = json!(true);
        }
        let ev = self
            .event("mcp.denied", Decision::Deny, details)
            .reason(d.message.clone());
        let (agent_id, server_id) = (self.agent_id.clone(), self.server_id.clone());
        let day = day_of(self.mandate.now());
        let ticket = self.mandate.submit_grouped(move |tx, now| {
            if count {
                bump(tx, &agent_id, &server_id, &day, 0, false)?;
            }
            audit::append(tx, now, ev)
        });
        match ticket.await {
            Ok(_) => {
                self.mandate.after_write();
                d
            }
            Err(e) => {
                tracing::error!(error = %e, "the MCP gateway could not audit a refusal");
                McpDenial::unavailable()
            }
        }
    }

    /// Decide one message (see the module docs for the order). A permit for a tool call,
    /// prompt or resource read is returned only after its `mcp.tool_called` event committed;
    /// every refusal is audited before it is returned.
    pub async fn authorize(&self, call: &McpCall) -> std::result::Result<McpPermit, McpDenial> {
        let view = match self.view() {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, "the MCP gateway could not read the registry");
                return Err(McpDenial::unavailable());
            }
        };
        if view.status != AgentStatus::Active {
            let d = McpDenial::new(
                "agent_inactive",
                format!(
                    "the agent '{}' is {}, so Mandate passes none of its messages to '{}'",
                    self.agent, view.status, self.server
                ),
            );
            return Err(self.write_denial(call, d, Some(&view), false).await);
        }
        if let Some(held) = &view.held_by_parent {
            let d = McpDenial::new(
                "agent_inactive",
                format!(
                    "Mandate passes none of its messages to '{}': {held}",
                    self.server
                ),
            );
            return Err(self.write_denial(call, d, Some(&view), false).await);
        }
        let Some(action) = call.need.action() else {
            return Ok(McpPermit {
                scope: None,
                method: call.method.clone(),
                called_seq: None,
                request_id: call.request_id.clone(),
            });
        };
        let scope = super::tool_scope(&self.server, &action);
        if !view.scopes.contains(&scope) || !self.token_allows(&scope) {
            let what = match &call.need {
                Need::Tool(t) => format!("the tool '{}'", t.escape_default()),
                Need::Prompt(p) => format!("the prompt '{}'", p.escape_default()),
                _ => "reading resources".to_string(),
            };
            let fix = if super::is_action_name(&action) {
                format!(
                    "; a person can grant it with `mandate agent edit {} --add-scope {scope}`",
                    self.agent
                )
            } else {
                String::new()
            };
            let mut d = McpDenial::new(
                "insufficient_scope",
                format!(
                    "Mandate refused {what}: it needs the scope {}, which the agent '{}' does \
                     not hold{fix}",
                    scope.escape_default(),
                    self.agent,
                ),
            );
            d.scope = Some(scope);
            return Err(self.write_denial(call, d, Some(&view), true).await);
        }
        // Approvals: a tool marked `always`, or `below_floor` while the agent is below the
        // server's floors, needs a person's yes. The gateway holds the call up to `hold` (on
        // a blocking thread, so other sessions go on) while someone decides, like the
        // broker; when nobody answers in time it says `approval_pending` with the request's
        // id, and the agent's next call of the tool joins that request.
        let below = view.below_floor();
        let rule = match self
            .mandate
            .read(|c| crate::approvals::rule_for(c, &self.server_id, &action))
        {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "the MCP gateway could not read an approval rule");
                return Err(McpDenial::unavailable());
            }
        };
        let ask_why = match (rule, &below) {
            (Some(crate::approvals::ApprovalMode::Always), _) => {
                Some("this tool always asks a person".to_string())
            }
            (Some(crate::approvals::ApprovalMode::BelowFloor), Some(why)) => Some(format!(
                "the agent is {} (score {}) but {why}",
                view.trust, view.score
            )),
            _ => None,
        };
        if let Some(ask_why) = ask_why {
            let held = {
                let m = self.mandate.clone();
                let (agent_id, agent) = (self.agent_id.clone(), self.agent.clone());
                let (server_id, server) = (self.server_id.clone(), self.server.clone());
                let (scope, why, on_behalf_of) =
                    (scope.clone(), ask_why.clone(), self.on_behalf_of.clone());
                let (state, score, hold) = (view.trust.to_string(), view.score, self.hold);
                move || {
                    let ask = crate::approvals::Ask {
                        agent_id: &agent_id,
                        agent: &agent,
                        connection_id: &server_id,
                        connection: &server,
                        action: &scope,
                        on_behalf_of: on_behalf_of.as_ref(),
                        why: &why,
                        trust_state: &state,
                        trust_score: score,
                        retry_id: None,
                    };
                    m.hold_for_approval(&ask, hold)
                }
            };
            let outcome = match tokio::runtime::Handle::try_current() {
                Ok(rt) => rt.spawn_blocking(held).await.unwrap_or_else(|e| {
                    Err(Error::Storage(format!("an approval wait stopped: {e}")))
                }),
                // No runtime (a test driving the future by hand): wait on this thread.
                Err(_) => held(),
            };
            match outcome {
                Ok(crate::approvals::Outcome::Approved(_)) => {}
                Ok(crate::approvals::Outcome::Denied { id, by, reason }) => {
                    let d = McpDenial::new(
                        "access_denied",
                        format!("{by} denied this call (request {id}): {reason}"),
                    );
                    return Err(self.write_denial(call, d, Some(&view), true).await);
                }
                Ok(crate::approvals::Outcome::Pending(id)) => {
                    let d = McpDenial::new(
                        "approval_pending",
                        format!(
                            "this call waits for a person's approval ({ask_why}); nobody \
                             answered within {} s (request {id}). Call the tool again once \
                             someone approves it in the app or with `mandate approvals \
                             approve {id}`",
                            self.hold.as_secs()
                        ),
                    );
                    return Err(self.write_denial(call, d, Some(&view), true).await);
                }
                Err(e) => {
                    tracing::error!(error = %e, "the MCP gateway could not ask for approval");
                    return Err(McpDenial::unavailable());
                }
            }
        } else if let Some(why) = below {
            let mut d = McpDenial::new(
                "access_denied",
                format!(
                    "the agent '{}' is {} (score {}) but {why} for '{}'",
                    self.agent, view.trust, view.score, self.server
                ),
            );
            d.trust_gate = true;
            return Err(self.write_denial(call, d, Some(&view), true).await);
        }
        if let Some(per_minute) = view.cfg.rate_per_minute
            && let Err(wait) = self.buckets.take(
                &self.agent_id,
                &self.server_id,
                per_minute,
                self.mandate.now().timestamp_millis(),
            )
        {
            let d = McpDenial::new(
                "rate_limited",
                format!(
                    "more than {per_minute} calls per minute to '{}'; retry in {wait} s",
                    self.server
                ),
            );
            return Err(self.write_denial(call, d, Some(&view), true).await);
        }
        let policy = view.cfg.action(&action);
        let cost = u64::from(policy.map_or(1, |p| p.cost));
        let essential = policy.is_some_and(|p| p.essential);
        let budget = view.cfg.daily_budget;
        let mut details = self.base_details(call, Some(&view));
        details["cost"] = json!(cost);
        let allow = self
            .event("mcp.tool_called", Decision::Allow, details.clone())
            .reason(format!("{} {}", self.via_word(), scope));
        let deny_base = self.event("mcp.denied", Decision::Deny, details);
        let (agent_id, server_id) = (self.agent_id.clone(), self.server_id.clone());
        let day = day_of(self.mandate.now());
        let (server, agent, scope_c) = (self.server.clone(), self.agent.clone(), scope.clone());
        let token = self.token.lock().ok().and_then(|t| t.clone());
        let used = self.mandate.used_jtis().clone();
        let ticket = self.mandate.submit_grouped(move |tx, now| {
            let refuse = |d: McpDenial| -> Result<std::result::Result<u64, McpDenial>> {
                let mut ev = deny_base;
                ev.reason = Some(d.message.clone());
                ev.details["error"] = json!(d.code);
                bump(tx, &agent_id, &server_id, &day, 0, false)?;
                audit::append(tx, now, ev)?;
                Ok(Err(d))
            };
            if let Some(t) = &token
                && let Err(why) =
                    crate::oauth::resource::confirm_active(&used, tx, t, now.timestamp())?
            {
                return refuse(McpDenial::new("invalid_token", why));
            }
            let status: Option<String> = tx.query_opt(
                "SELECT status FROM agents WHERE id = ?1",
                params![&agent_id],
                |r| r.get(0),
            )?;
            if status.as_deref() != Some("active") {
                return refuse(McpDenial::new(
                    "agent_inactive",
                    format!(
                        "the agent '{agent}' is {}, so Mandate passes none of its messages to \
                         '{server}'",
                        status.as_deref().unwrap_or("removed")
                    ),
                ));
            }
            // Authoritative too: a parent suspended or revoked since the view was read.
            if let Some(h) = crate::lineage::first_inactive_in_chain(tx, &agent_id)? {
                return refuse(McpDenial::new(
                    "agent_inactive",
                    format!(
                        "Mandate passes none of its messages to '{server}': {}",
                        crate::lineage::held_back(&agent, &h.name, h.status)
                    ),
                ));
            }
            let held = tx
                .query_opt(
                    "SELECT 1 FROM agent_scopes WHERE agent_id = ?1 AND scope = ?2",
                    params![&agent_id, &scope_c],
                    |_| Ok(()),
                )?
                .is_some();
            if !held {
                let mut d = McpDenial::new(
                    "insufficient_scope",
                    format!(
                        "Mandate refused this call: it needs the scope {scope_c}, which the \
                         agent '{agent}' no longer holds"
                    ),
                );
                d.scope = Some(scope_c.clone());
                return refuse(d);
            }
            let (used, _, _) = usage_row(tx, &agent_id, &server_id, &day)?;
            if let Err(r) = limits::check_budget(budget, used, cost, essential) {
                return refuse(McpDenial::new(r.code(), r.describe(&server, &scope_c)));
            }
            bump(tx, &agent_id, &server_id, &day, cost, true)?;
            Ok(Ok(audit::append(tx, now, allow)?.seq))
        });
        let outcome = ticket.await;
        self.mandate.after_write();
        match outcome {
            Ok(Ok(seq)) => Ok(McpPermit {
                scope: Some(scope),
                method: call.method.clone(),
                called_seq: Some(seq),
                request_id: call.request_id.clone(),
            }),
            Ok(Err(d)) => Err(d),
            Err(e) => {
                tracing::error!(error = %e, "the MCP gateway could not audit a call");
                Err(McpDenial::unavailable())
            }
        }
    }

    fn via_word(&self) -> &'static str {
        match self.via {
            "http" => "over HTTP with",
            _ => "with",
        }
    }

    /// Record how an allowed call ended (`mcp.tool_completed`). Waits until it is durable.
    pub async fn record_outcome(&self, permit: &McpPermit, outcome: &McpCallOutcome) -> Result<()> {
        let Some(scope) = &permit.scope else {
            return Ok(());
        };
        let tool = scope.split_once(':').map_or("", |(_, t)| t);
        let mut details = json!({
            "server": self.server,
            "via": self.via,
            "method": permit.method,
            "tool": tool,
            "scope": scope,
            "called_seq": permit.called_seq,
            "result": outcome.result,
            "is_error": outcome.is_error,
            "bytes": outcome.bytes,
            "latency_ms": outcome.latency_ms,
        });
        if let Some(c) = outcome.error_code {
            details["error_code"] = json!(c);
        }
        if let Some(id) = &permit.request_id {
            details["request_id"] = json!(id);
        }
        let reason = match outcome.result {
            "ok" => format!("{scope} answered"),
            "tool_error" => format!("{scope} answered with a tool error"),
            "rpc_error" => format!("{scope} failed: the server answered with an error"),
            "timeout" => format!("{scope}: the server did not answer in time"),
            "server_exited" => format!("{scope}: the server exited before answering"),
            "client_disconnected" => format!("{scope}: the client went away before the answer"),
            other => format!("{scope}: {other}"),
        };
        let ev = self
            .event("mcp.tool_completed", Decision::Allow, details)
            .reason(reason);
        let r = self
            .mandate
            .submit_grouped(move |tx, now| audit::append(tx, now, ev))
            .await;
        self.mandate.after_write();
        r.map(|_| ())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
mod tests {
    use super::*;
    use crate::mcp::{McpTransport, NewMcpServer, OfferedTool};
    use crate::registry::{KeyChoice, NewAgent};
    use crate::store::testing::each_store;

    fn setup(s: &crate::store::testing::TestStore) -> Arc<Mandate> {
        let m = s.open();
        m.add_mcp_server(NewMcpServer {
            name: "fs".into(),
            transport: McpTransport::Stdio {
                command: "server".into(),
                args: vec![],
            },
            env: vec![],
            secret_env: vec![],
            http_secret: None,
            auth: None,
            trust_floor: Some(TrustState::Untrusted),
            call_timeout_secs: None,
            audit_arguments: false,
        })
        .unwrap();
        let tools: Vec<OfferedTool> = ["read_file", "write_file"]
            .iter()
            .map(|n| OfferedTool {
                name: (*n).into(),
                kind: "tool".into(),
                ..Default::default()
            })
            .collect();
        m.set_mcp_tools("fs", &tools).unwrap();
        m.add_member("ann", None).unwrap();
        m.add_agent(NewAgent {
            name: "coder".into(),
            purpose: "writes code".into(),
            owner: "ann".into(),
            parent: None,
            scopes: vec!["fs:read_file".into()],
            key: KeyChoice::None,
        })
        .unwrap();
        Arc::new(m)
    }

    fn call(tool: &str) -> McpCall {
        McpCall {
            method: "tools/call".into(),
            need: Need::Tool(tool.into()),
            request_id: Some("1".into()),
            arguments_sha256: Some("ab".repeat(32)),
            arguments: Some(json!({"path": "/x"})),
            bytes: 10,
        }
    }

    fn actions(m: &Mandate) -> Vec<(String, String)> {
        m.audit_events(Some("coder"), 100, None)
            .unwrap()
            .into_iter()
            .rev()
            .map(|e| (e.action, e.reason.unwrap_or_default()))
            .collect()
    }

    #[test]
    fn granted_tool_passes_others_are_refused_naming_the_scope_and_revocation_bites() {
        each_store(|s| {
            let m = setup(s);
            let s = McpSession::open(m.clone(), "coder", "fs", "stdio").unwrap();
            let p = futures_executor::block_on(s.authorize(&call("read_file"))).unwrap();
            assert_eq!(p.scope.as_deref(), Some("fs:read_file"));
            futures_executor::block_on(s.record_outcome(
                &p,
                &McpCallOutcome {
                    result: "ok",
                    is_error: Some(false),
                    error_code: None,
                    bytes: 5,
                    latency_ms: 1,
                },
            ))
            .unwrap();
            for name in ["write_file", "READ_FILE", "read_filе"] {
                let d = futures_executor::block_on(s.authorize(&call(name))).unwrap_err();
                assert_eq!(d.code, "insufficient_scope", "{name}");
                assert!(d.message.contains("fs:"), "{}", d.message);
            }
            assert!(s.may("read_file") && !s.may("write_file"));
            m.revoke_agent("coder", "left the team").unwrap();
            let d = futures_executor::block_on(s.authorize(&call("read_file"))).unwrap_err();
            assert_eq!(d.code, "agent_inactive");
            let acts = actions(&m);
            let names: Vec<&str> = acts.iter().map(|(a, _)| a.as_str()).collect();
            assert_eq!(
                names[1..],
                [
                    "mcp.tool_called",
                    "mcp.tool_completed",
                    "mcp.denied",
                    "mcp.denied",
                    "mcp.denied",
                    "agent.revoked",
                    "mcp.denied"
                ][..],
                "{acts:?}"
            );
            assert!(
                acts[5].1.contains("fs:read_fil\\u{435}"),
                "escaped: {}",
                acts[5].1
            );
            // The arguments themselves are not recorded by default, only their hash.
            let ev = &m.audit_events(Some("coder"), 100, None).unwrap();
            let called = ev.iter().find(|e| e.action == "mcp.tool_called").unwrap();
            assert!(called.details.get("arguments").is_none());
            assert_eq!(called.details["arguments_sha256"], json!("ab".repeat(32)));
        });
    }

    /// A sub-agent kept working while its parent was suspended (issue 17 §4): the gateway
    /// holds it back too, naming the parent, and lets it through again once resumed.
    #[test]
    fn a_suspended_parent_holds_its_sub_agent_back_at_the_gateway() {
        each_store(|s| {
            let m = setup(s);
            m.add_agent(NewAgent {
                name: "coder-helper".into(),
                purpose: "helps the coder".into(),
                owner: "ann".into(),
                parent: Some("coder".into()),
                scopes: vec!["fs:read_file".into()],
                key: KeyChoice::None,
            })
            .unwrap();
            let s = McpSession::open(m.clone(), "coder-helper", "fs", "stdio").unwrap();
            assert!(futures_executor::block_on(s.authorize(&call("read_file"))).is_ok());
            m.suspend_agent("coder", Some("investigating")).unwrap();
            assert!(!s.may("read_file"));
            let d = futures_executor::block_on(s.authorize(&call("read_file"))).unwrap_err();
            assert_eq!(d.code, "agent_inactive");
            assert!(
                d.message.contains("parent agent 'coder' is suspended"),
                "{}",
                d.message
            );
            let ev = &m.audit_events(Some("coder-helper"), 1, None).unwrap()[0];
            assert_eq!(ev.action, "mcp.denied");
            assert_eq!(ev.details["parent_chain"], json!(["coder"]));
            m.resume_agent("coder").unwrap();
            assert!(futures_executor::block_on(s.authorize(&call("read_file"))).is_ok());
        });
    }

    #[test]
    fn budget_reserves_the_last_tenth_for_essential_tools() {
        each_store(|s| {
            let m = setup(s);
            m.edit_agent(
                "coder",
                crate::AgentEdit {
                    add_scopes: vec!["fs:write_file".into()],
                    ..Default::default()
                },
            )
            .unwrap();
            m.edit_connection(
                "fs",
                crate::broker::ConnectionEdit {
                    daily_budget: Some(Some(10)),
                    costs: vec![("write_file".into(), 9)],
                    essential: vec!["read_file".into()],
                    ..Default::default()
                },
            )
            .unwrap();
            let s = McpSession::open(m.clone(), "coder", "fs", "stdio").unwrap();
            futures_executor::block_on(s.authorize(&call("write_file"))).unwrap();
            let d = futures_executor::block_on(s.authorize(&call("write_file"))).unwrap_err();
            assert_eq!(d.code, "budget_exhausted");
            futures_executor::block_on(s.authorize(&call("read_file"))).unwrap();
        });
    }

    /// A refusal at the MCP server's floor only enforces the agent's trust verdict: audited
    /// with `trust_gate`, which behaviour does not count as a denial.
    #[test]
    fn a_refusal_at_the_floor_is_audited_as_the_trust_gate() {
        each_store(|s| {
            let m = setup(s);
            m.edit_connection(
                "fs",
                crate::broker::ConnectionEdit {
                    trust_floor: Some(TrustState::Trusted),
                    ..Default::default()
                },
            )
            .unwrap();
            let s = McpSession::open(m.clone(), "coder", "fs", "stdio").unwrap();
            let d = futures_executor::block_on(s.authorize(&call("read_file"))).unwrap_err();
            assert_eq!(d.code, "access_denied", "{}", d.message);
            assert!(d.trust_gate);
            let ev = &m.audit_events(Some("coder"), 1, None).unwrap()[0];
            assert_eq!(ev.action, "mcp.denied");
            assert_eq!(ev.details[crate::audit::TRUST_GATE], json!(true));
            // Another refusal is not marked.
            let d = futures_executor::block_on(s.authorize(&call("write_file"))).unwrap_err();
            assert!(!d.trust_gate, "{}", d.code);
            let ev = &m.audit_events(Some("coder"), 1, None).unwrap()[0];
            assert!(ev.details.get(crate::audit::TRUST_GATE).is_none());
        });
    }
}
