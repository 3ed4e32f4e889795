//! The rows behind tokens: issued-token records, used `jti`s, and what "active" means.
//!
//! A token is active when its own row is unrevoked and unexpired, the agent it was issued to
//! and every agent above it (a sub-agent's parents) are active, its delegation (if any) is
//! unrevoked and unexpired, and the same holds for the token it was exchanged from, all the
//! way up. That is what makes revocation bite at once: introspection reads these rows on every
//! request, so the first request after a revocation commits sees it.

use crate::store::{Tx, params};
use serde_json::Value;

use crate::error::Result;

/// Longest exchange chain we follow (sub-agent of a sub-agent of ...).
const MAX_CHAIN: usize = 16;

/// What we keep of an issued token (never the token itself).
#[derive(Debug, Clone)]
pub(crate) struct TokenRecord {
    pub jti: String,
    pub agent_id: String,
    pub subject: String,
    pub act: Option<Value>,
    pub scope: String,
    pub aud: Vec<String>,
    pub kid: String,
    pub issued_at: i64,
    pub expires_at: i64,
    pub cnf_jkt: Option<String>,
    pub parent_jti: Option<String>,
    pub delegation_id: Option<String>,
    pub revoked_at: Option<i64>,
}

pub(crate) fn insert_token(conn: &Tx<'_>, r: &TokenRecord) -> Result<()> {
    conn.execute(
        "INSERT INTO oauth_tokens (jti, agent_id, subject, act, scope, aud, kid, issued_at,
                                   expires_at, cnf_jkt, parent_jti, delegation_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            r.jti,
            r.agent_id,
            r.subject,
            r.act.as_ref().map(Value::to_string),
            r.scope,
            serde_json::to_string(&r.aud).unwrap_or_else(|_| "[]".into()),
            r.kid,
            r.issued_at,
            r.expires_at,
            r.cnf_jkt,
            r.parent_jti,
            r.delegation_id,
        ],
    )?;
    Ok(())
}

pub(crate) fn load_token(conn: &Tx<'_>, jti: &str) -> Result<Option<TokenRecord>> {
    conn.query_opt(
        "SELECT jti, agent_id, subject, act, scope, aud, kid, issued_at, expires_at, cnf_jkt,
                    parent_jti, delegation_id, revoked_at
             FROM oauth_tokens WHERE jti = ?1",
        params![jti],
        |r| {
            let act: Option<String> = r.get(3)?;
            let aud: String = r.get(5)?;
            Ok(TokenRecord {
                jti: r.get(0)?,
                agent_id: r.get(1)?,
                subject: r.get(2)?,
                act: act.and_then(|a| serde_json::from_str(&a).ok()),
                scope: r.get(4)?,
                aud: serde_json::from_str(&aud).unwrap_or_default(),
                kid: r.get(6)?,
                issued_at: r.get(7)?,
                expires_at: r.get(8)?,
                cnf_jkt: r.get(9)?,
                parent_jti: r.get(10)?,
                delegation_id: r.get(11)?,
                revoked_at: r.get(12)?,
            })
        },
    )
}

/// Why a token is not active.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Inactive {
    Unknown,
    Expired,
    Revoked,
    AgentNotActive,
    ParentNotActive,
    DelegationEnded,
    ChainBroken,
}

impl Inactive {
    pub fn as_str(self) -> &'static str {
        match self {
            Inactive::Unknown => "unknown token",
            Inactive::Expired => "expired",
            Inactive::Revoked => "revoked",
            Inactive::AgentNotActive => "its agent is suspended or revoked",
            Inactive::ParentNotActive => "a parent agent of its agent is suspended or revoked",
            Inactive::DelegationEnded => "its delegation was revoked or has ended",
            Inactive::ChainBroken => "the token it was exchanged from is no longer active",
        }
    }
}

/// The record of `jti` if the token is active at `now`, else why not.
pub(crate) fn active_token(
    conn: &Tx<'_>,
    jti: &str,
    now: i64,
) -> Result<std::result::Result<TokenRecord, (Inactive, Option<TokenRecord>)>> {
    let Some(first) = load_token(conn, jti)? else {
        return Ok(Err((Inactive::Unknown, None)));
    };
    let mut cur = first.clone();
    for depth in 0..MAX_CHAIN {
        let why = check_one(conn, &cur, now)?;
        if let Some(why) = why {
            let why = if depth == 0 {
                why
            } else {
                Inactive::ChainBroken
            };
            return Ok(Err((why, Some(first))));
        }
        match &cur.parent_jti {
            None => return Ok(Ok(first)),
            Some(p) => match load_token(conn, p)? {
                Some(parent) => cur = parent,
                None => return Ok(Err((Inactive::ChainBroken, Some(first)))),
            },
        }
    }
    Ok(Err((Inactive::ChainBroken, Some(first))))
}

fn check_one(conn: &Tx<'_>, r: &TokenRecord, now: i64) -> Result<Option<Inactive>> {
    if r.revoked_at.is_some() {
        return Ok(Some(Inactive::Revoked));
    }
    if r.expires_at <= now {
        return Ok(Some(Inactive::Expired));
    }
    let exists = conn
        .query_opt(
            "SELECT 1 FROM agents WHERE id = ?1",
            params![&r.agent_id],
            |_| Ok(()),
        )?
        .is_some();
    if !exists {
        return Ok(Some(Inactive::AgentNotActive));
    }
    match crate::lineage::first_inactive_in_chain(conn, &r.agent_id)? {
        None => {}
        Some(h) if h.depth == 0 => return Ok(Some(Inactive::AgentNotActive)),
        Some(_) => return Ok(Some(Inactive::ParentNotActive)),
    }
    if let Some(d) = &r.delegation_id {
        let row: Option<(Option<i64>, i64)> = conn.query_opt(
            "SELECT revoked_at, not_after FROM delegations WHERE id = ?1",
            params![d],
            |x| Ok((x.get(0)?, x.get(1)?)),
        )?;
        match row {
            Some((None, not_after)) if not_after > now => {}
            _ => return Ok(Some(Inactive::DelegationEnded)),
        }
    }
    Ok(None)
}

/// Mark a token revoked. `false` if it was already revoked.
pub(crate) fn revoke_token(conn: &Tx<'_>, jti: &str, now: i64, by: &str) -> Result<bool> {
    let n = conn.execute(
        "UPDATE oauth_tokens SET revoked_at = ?2, revoked_by = ?3
         WHERE jti = ?1 AND revoked_at IS NULL",
        params![jti, now, by],
    )?;
    Ok(n == 1)
}
