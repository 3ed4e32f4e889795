//! Issuance policy: which scopes and audiences a token carries, for how long, and whether the
//! agent may have it at all.
//!
//! - Scopes are a subset of the agent's grants (and, in an exchange, of the subject token's or
//!   the delegation's scopes). No scope asked: every grant for the requested audience that the
//!   agent may have now; grants held back by a connection's trust floor are left out and named
//!   (`Plan::withheld`), so one strict connection does not cost the agent its other grants.
//! - An audience (RFC 8707 `resource`) is a registered connection, named by its base URL or
//!   its name; the token's `aud` is the connection's base URL. Anything else is
//!   `invalid_target`: Mandate mints tokens only for systems it knows.
//! - Lifetime: the agent's maximum if it has one, else the endpoint default (15 minutes),
//!   never over 24 hours, never past the subject token or delegation.
//! - Each connection's trust floor against the agent's trust state: a scope or audience asked
//!   for by name is refused when its floor is above the agent; one only implied by "no scope"
//!   is left out.
//! - A per-agent token bucket.
//!
//! What it is not: it reads no request and writes nothing; `service` calls it and audits
//! the outcome.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use super::OAuthError;
use super::client_agent::ClientAgent;
use crate::error::Result;
use crate::model::{Scope, TrustState};
use crate::registry::MAX_TTL_SECS;
use crate::store::{Tx, params};

/// Most scopes a request may name.
const MAX_REQUESTED_SCOPES: usize = 64;

/// A per-agent token bucket: `per_minute` sustained, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_minute: u32,
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            per_minute: 600,
            burst: 60,
        }
    }
}

/// The buckets, keyed by agent id.
#[derive(Debug, Default)]
pub(crate) struct RateLimiter {
    buckets: Mutex<HashMap<String, (f64, i64)>>,
}

impl RateLimiter {
    /// Take one token from the agent's bucket at `now_ms`.
    pub fn take(&self, limit: RateLimit, agent_id: &str, now_ms: i64) -> Result<(), OAuthError> {
        let Ok(mut b) = self.buckets.lock() else {
            return Ok(());
        };
        let rate = f64::from(limit.per_minute) / 60_000.0;
        let cap = f64::from(limit.burst.max(1));
        let (tokens, last) = b.entry(agent_id.to_string()).or_insert((cap, now_ms));
        let elapsed = (now_ms - *last).max(0) as f64;
        *tokens = (*tokens + elapsed * rate).min(cap);
        *last = now_ms;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            let wait_ms = if rate > 0.0 {
                (1.0 - *tokens) / rate
            } else {
                60_000.0
            };
            Err(OAuthError::RateLimited {
                retry_after_secs: (wait_ms / 1000.0).ceil().max(1.0) as u64,
            })
        }
    }
}

/// What the policy needs of a connection.
#[derive(Debug, Clone)]
pub(crate) struct ConnInfo {
    pub name: String,
    pub base_url: String,
    pub floor: TrustState,
    /// The connection's minimum score, beside its state floor (None: none).
    pub min_score: Option<i32>,
    /// Whether calls to it (or some of its actions) ask a person below the floor: tokens are
    /// then issued and the broker or MCP gateway holds each call for approval.
    pub asks_approval: bool,
}

/// Every connection, cheaply.
pub(crate) fn connections(conn: &Tx<'_>) -> Result<Vec<ConnInfo>> {
    let rows = conn.query_map(
        "SELECT c.name, c.base_url, c.trust_floor, c.min_score,
                EXISTS (SELECT 1 FROM approval_rules r WHERE r.connection_id = c.id)
         FROM connections c",
        params![],
        |r| {
            Ok((
                r.get::<String>(0)?,
                r.get::<String>(1)?,
                r.get::<String>(2)?,
                r.get::<Option<i32>>(3)?,
                r.get::<bool>(4)?,
            ))
        },
    )?;
    let mut out = Vec::new();
    for (name, base_url, floor, min_score, asks_approval) in rows {
        out.push(ConnInfo {
            name,
            base_url,
            floor: floor.parse()?,
            min_score,
            asks_approval,
        });
    }
    Ok(out)
}

/// An upper bound from a subject token or a delegation.
#[derive(Debug, Clone)]
pub(crate) struct Ceiling {
    pub scopes: Vec<String>,
    /// `None`: any audience the scopes allow (a delegation).
    pub aud: Option<Vec<String>>,
    pub exp: i64,
    /// Names the bound in messages ("the subject token", "the delegation").
    pub what: &'static str,
}

/// What a token will carry.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub scopes: Vec<String>,
    pub aud: Vec<String>,
    pub exp: i64,
    /// Grants left out of a request that named no scope, and why.
    pub withheld: Vec<Withheld>,
}

/// A grant left out of a token because its connection's trust floor is above the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Withheld {
    pub scope: String,
    pub connection: String,
    pub floor: TrustState,
}

/// Whether the agent is below the connection's floor: its state floor, its minimum score or
/// the organisation's minimum score (the same rule as the broker's and the MCP gateway's,
/// `crate::trust::below_floor`).
/// A connection that asks a person below its floor is not a refusal here: the token is
/// issued and the broker or MCP gateway holds each call until someone approves it.
fn below_floor(agent: &ClientAgent, c: &ConnInfo) -> bool {
    !c.asks_approval
        && crate::trust::below_floor(
            agent.trust,
            agent.score,
            c.floor,
            c.min_score,
            agent.organisation_floor,
        )
        .is_some()
}

fn floor_refusal(agent: &ClientAgent, c: &ConnInfo) -> OAuthError {
    let why = crate::trust::below_floor(
        agent.trust,
        agent.score,
        c.floor,
        c.min_score,
        agent.organisation_floor,
    )
    .unwrap_or_default();
    OAuthError::BelowTrustFloor(format!(
        "the agent '{}' is {} (score {}) but {why} for the connection '{}'; raise its \
         trust (`mandate agent show {}` lists its signals) before it gets tokens for this \
         connection",
        agent.name, agent.trust, agent.score, c.name, agent.name
    ))
}

fn resolve_resource<'a>(conns: &'a [ConnInfo], r: &str) -> Option<&'a ConnInfo> {
    let r = r.trim_end_matches('/');
    conns
        .iter()
        .find(|c| c.base_url == r || c.name == r)
        .or_else(|| {
            // An MCP server's resource URL on the gateway, `http(s)://LOOPBACK:PORT/mcp/NAME`,
            // names the MCP connection `mcp://NAME` (its token audience).
            let name = crate::mcp::gateway_resource_name(r)?;
            let base = format!("{}{name}", crate::mcp::BASE_URL_SCHEME);
            conns.iter().find(|c| c.base_url == base)
        })
}

/// Decide scopes, audience and expiry for `agent`, or refuse with the reason.
pub(crate) fn plan(
    agent: &ClientAgent,
    conns: &[ConnInfo],
    scope_param: Option<&str>,
    resources: &[&str],
    ceiling: Option<&Ceiling>,
    default_ttl_secs: u32,
    now: i64,
) -> Result<Plan, OAuthError> {
    let mut available: BTreeSet<String> = agent
        .scopes
        .iter()
        .map(|s| s.as_str().to_string())
        .collect();
    if let Some(c) = ceiling {
        available.retain(|s| c.scopes.contains(s));
    }
    let mut targets: Vec<&ConnInfo> = Vec::new();
    for r in resources {
        let c = resolve_resource(conns, r).ok_or_else(|| {
            OAuthError::InvalidTarget(
                "a requested resource is not a registered connection; use a connection's base \
                 URL or name (see `mandate connection list`)"
                    .into(),
            )
        })?;
        if let Some(Some(aud)) = ceiling.map(|c| c.aud.as_ref())
            && !aud.contains(&c.base_url)
        {
            return Err(OAuthError::InvalidTarget(format!(
                "the resource '{}' is not an audience of {}; an exchanged token is never wider",
                c.name,
                ceiling.map_or("the subject token", |c| c.what)
            )));
        }
        if !targets.iter().any(|t| t.name == c.name) {
            targets.push(c);
        }
    }
    let target_names: BTreeSet<&str> = targets.iter().map(|t| t.name.as_str()).collect();
    let scopes: BTreeSet<String> = match scope_param.map(str::split_whitespace) {
        Some(words) => {
            let mut out = BTreeSet::new();
            for w in words {
                if out.len() >= MAX_REQUESTED_SCOPES {
                    return Err(OAuthError::InvalidScope(format!(
                        "more than {MAX_REQUESTED_SCOPES} scopes were requested"
                    )));
                }
                let s = Scope::parse(w).map_err(|_| {
                    OAuthError::InvalidScope(
                        "the scope parameter holds a value that is not connection:action".into(),
                    )
                })?;
                if !targets.is_empty() && !target_names.contains(s.connection()) {
                    return Err(OAuthError::InvalidScope(format!(
                        "the scope {s} is not for the requested resource"
                    )));
                }
                if !available.contains(s.as_str()) {
                    return Err(OAuthError::InvalidScope(match ceiling {
                        Some(c) if agent.scopes.iter().any(|g| g.as_str() == s.as_str()) => {
                            format!(
                                "the scope {s} is wider than {}: an exchanged token is never wider",
                                c.what
                            )
                        }
                        _ => match agent.capped.iter().find(|(c, _)| c.as_str() == s.as_str()) {
                            Some((_, parent)) => format!(
                                "the scope {s} is outside what the parent agent '{parent}' \
                                 holds, and a sub-agent never exceeds its parent"
                            ),
                            None => format!(
                                "the agent '{}' holds no grant for the scope {s}",
                                agent.name
                            ),
                        },
                    }));
                }
                out.insert(s.as_str().to_string());
            }
            out
        }
        None => available
            .iter()
            .filter(|s| {
                targets.is_empty()
                    || Scope::parse(s).is_ok_and(|s| target_names.contains(s.connection()))
            })
            .cloned()
            .collect(),
    };
    // No scope and no audience named: the grants whose connection's floor is above the agent
    // are left out (and named) instead of failing the whole request. If that leaves nothing,
    // the first floor is the answer, as if it had been asked for.
    let mut withheld = Vec::new();
    let mut scopes = scopes;
    if scope_param.is_none() && targets.is_empty() {
        let mut first_refusal = None;
        scopes.retain(|s| {
            let cname = s.split_once(':').map_or("", |(c, _)| c);
            match conns.iter().find(|c| c.name == cname) {
                Some(c) if below_floor(agent, c) => {
                    first_refusal.get_or_insert_with(|| floor_refusal(agent, c));
                    withheld.push(Withheld {
                        scope: s.clone(),
                        connection: c.name.clone(),
                        floor: c.floor,
                    });
                    false
                }
                _ => true,
            }
        });
        if scopes.is_empty()
            && let Some(e) = first_refusal
        {
            return Err(e);
        }
    }
    if scopes.is_empty() {
        return Err(OAuthError::InvalidScope(format!(
            "the agent '{}' holds no grant for that audience, so there is nothing to put in a token",
            agent.name
        )));
    }
    // The audience: the requested connections, or those of the scopes.
    let mut aud_conns: Vec<&ConnInfo> = targets;
    if aud_conns.is_empty() {
        for s in &scopes {
            let cname = s.split_once(':').map_or("", |(c, _)| c);
            if let Some(c) = conns.iter().find(|c| c.name == cname)
                && !aud_conns.iter().any(|t| t.name == c.name)
            {
                aud_conns.push(c);
            }
        }
    }
    if let Some(Some(allowed)) = ceiling.map(|c| c.aud.as_ref()) {
        aud_conns.retain(|c| allowed.contains(&c.base_url));
        if aud_conns.is_empty() {
            return Err(OAuthError::InvalidTarget(
                "no audience of the subject token fits the requested scopes".into(),
            ));
        }
    }
    for c in &aud_conns {
        if below_floor(agent, c) {
            return Err(floor_refusal(agent, c));
        }
    }
    let ttl = agent
        .max_token_ttl_secs
        .unwrap_or(default_ttl_secs)
        .clamp(1, MAX_TTL_SECS);
    let mut exp = now + i64::from(ttl);
    if let Some(c) = ceiling {
        exp = exp.min(c.exp);
    }
    if exp <= now {
        return Err(OAuthError::InvalidGrant(format!(
            "{} has expired",
            ceiling.map_or("the grant", |c| c.what)
        )));
    }
    Ok(Plan {
        scopes: scopes.into_iter().collect(),
        aud: aud_conns.iter().map(|c| c.base_url.clone()).collect(),
        exp,
        withheld,
    })
}
