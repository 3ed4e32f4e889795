//! RFC 7523 `private_key_jwt` client authentication: the agent proves it holds one of its
//! registered Ed25519 keys by signing a short-lived JWT about itself.
//!
//! Rules (SECURITY.md, "Client authentication"): the key comes only from the registry, found
//! by exact `kid` match; the algorithm is fixed (Ed25519, named `EdDSA` or `Ed25519`), never
//! chosen by the header; `aud` is exactly the issuer or one of this server's endpoint URLs (a
//! single value: token, introspection or revocation endpoint, see
//! [`EndpointConfig::is_own_audience`]); `iss` = `sub` = `client_id`; `exp` is required, at
//! most one hour after `iat` (stock clients' default; SECURITY.md's five minutes refused
//! Authlib's unchanged defaults), with 60 s of skew; `jti` is required (whether it was used
//! before is decided inside the transaction that records the decision, see `service`, and it
//! is remembered until the assertion expires, see `replay`); an access token (`typ: at+jwt`)
//! or a DPoP proof is never accepted as an assertion.
//!
//! What it is not: it does not decide what the client may get (see `policy`).

use std::sync::Arc;

use ed25519_dalek::VerifyingKey;
use serde_json::Value;

use super::client_agent::ClientAgent;
use super::jws::{self, Jws};
use super::policy::ConnInfo;
use super::readers::Readers;
use super::{
    ASSERTION_TYPE_JWT_BEARER, EndpointConfig, Form, MAX_ASSERTION_LIFETIME_SECS, OAuthError,
    SKEW_SECS,
};
use crate::Mandate;
use crate::model::{AgentName, AgentStatus};

/// An authenticated client.
#[derive(Debug)]
pub(crate) struct Client {
    pub agent: ClientAgent,
    /// Every connection, read in the same snapshot as the agent, so that its grants and the
    /// connections' trust floors are judged against one committed state.
    pub conns: Arc<Vec<ConnInfo>>,
    pub kid: String,
    pub jti: String,
    pub exp: i64,
}

/// A refused authentication, with the agent it claimed to be when that agent exists.
#[derive(Debug)]
pub(crate) struct Denial {
    pub err: OAuthError,
    pub agent: Option<Box<ClientAgent>>,
}

impl Denial {
    fn new(msg: impl Into<String>) -> Self {
        Denial {
            err: OAuthError::InvalidClient(msg.into()),
            agent: None,
        }
    }
    fn about(agent: &ClientAgent, msg: impl Into<String>) -> Self {
        Denial {
            err: OAuthError::InvalidClient(msg.into()),
            agent: Some(Box::new(agent.clone())),
        }
    }
}

/// `typ` values an assertion may carry (compared case-insensitively, `application/` optional).
pub(super) fn assertion_typ_ok(typ: Option<&Value>) -> Result<(), &'static str> {
    let Some(v) = typ else { return Ok(()) };
    let Some(t) = v.as_str() else {
        return Err("its \"typ\" is not a string");
    };
    let t = t.to_ascii_lowercase();
    let t = t.strip_prefix("application/").unwrap_or(&t);
    match t {
        "jwt" | "client-authentication+jwt" => Ok(()),
        "at+jwt" => Err("it is an access token (typ at+jwt), not a client assertion"),
        "dpop+jwt" => Err("it is a DPoP proof (typ dpop+jwt), not a client assertion"),
        _ => Err("its \"typ\" is not JWT or client-authentication+jwt"),
    }
}

/// Authenticate the client of a token, introspection or revocation request.
pub(crate) fn authenticate(
    m: &Mandate,
    readers: &Readers,
    cfg: &EndpointConfig,
    form: &Form,
    now: i64,
) -> Result<Client, Denial> {
    let assertion = form.secret("client_assertion");
    let Some(assertion) = assertion else {
        if form.get("client_secret").is_some() {
            return Err(Denial::new(
                "Mandate authenticates agents only with private_key_jwt; client secrets are \
                 not accepted",
            ));
        }
        return Err(Denial::new(
            "client authentication is required: send client_assertion_type \
             urn:ietf:params:oauth:client-assertion-type:jwt-bearer and a client_assertion \
             signed with the agent's key",
        ));
    };
    if form.get("client_assertion_type") != Some(ASSERTION_TYPE_JWT_BEARER) {
        return Err(Denial::new(
            "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ));
    }
    let refused = |why: &dyn std::fmt::Display| format!("the client assertion was refused: {why}");
    let jws = jws::parse(assertion.expose()).map_err(|e| Denial::new(refused(&e)))?;
    jws.check_common_header(false)
        .map_err(|e| Denial::new(refused(&e)))?;
    assertion_typ_ok(jws.header.get("typ")).map_err(|e| Denial::new(refused(&e)))?;

    let (Some(iss), Some(sub)) = (jws.claim_str("iss"), jws.claim_str("sub")) else {
        return Err(Denial::new(refused(
            &"it must carry \"iss\" and \"sub\" (the client_id)",
        )));
    };
    if iss != sub {
        return Err(Denial::new(refused(
            &"its \"iss\" and \"sub\" differ; both must be the client_id",
        )));
    }
    if let Some(cid) = form.get("client_id")
        && cid != sub
    {
        return Err(Denial::new(refused(
            &"its \"sub\" is not the client_id parameter",
        )));
    }
    let (agent, conns) = find_agent(m, readers, sub)
        .map_err(|e| Denial {
            err: OAuthError::from(e),
            agent: None,
        })?
        .ok_or_else(|| Denial::new("no agent with this client_id is registered"))?;
    let key = pick_key(&agent, &jws, m.now()).map_err(|e| Denial::about(&agent, refused(&e)))?;
    jws.verify(&key.1)
        .map_err(|e| Denial::about(&agent, refused(&e)))?;
    check_claims(cfg, &jws, now).map_err(|e| Denial::about(&agent, refused(&e)))?;
    let jti = jws.claim_str("jti").unwrap_or_default().to_string();
    let exp = jws::numeric_date(jws.claims.get("exp")).unwrap_or(now);
    match agent.status {
        AgentStatus::Active => {}
        AgentStatus::Suspended => {
            return Err(Denial::about(
                &agent,
                format!(
                    "the agent '{}' is suspended: it gets no tokens until it is resumed",
                    agent.name
                ),
            ));
        }
        AgentStatus::Revoked => {
            return Err(Denial::about(
                &agent,
                format!("the agent '{}' is revoked: it gets no tokens", agent.name),
            ));
        }
    }
    if let Some((parent, status)) = &agent.held_by {
        return Err(Denial::about(
            &agent,
            crate::lineage::held_back(agent.name.as_str(), parent.as_str(), *status),
        ));
    }
    Ok(Client {
        kid: key.0,
        agent,
        conns,
        jti,
        exp,
    })
}

/// The agent whose name is exactly `client_id` (never by id, never by a near match), with
/// every connection as of the same snapshot. A registry that cannot be read is an error (the
/// endpoint fails closed with 503), never an unknown client.
fn find_agent(
    m: &Mandate,
    readers: &Readers,
    client_id: &str,
) -> crate::Result<Option<(ClientAgent, Arc<Vec<ConnInfo>>)>> {
    let Ok(name) = AgentName::parse(client_id) else {
        return Ok(None);
    };
    if name.as_str() != client_id {
        return Ok(None);
    }
    let found = readers.with(|c| readers.registry.agent(c, name.as_str()))?;
    let now = m.now();
    Ok(found
        .map(|(facts, conns)| (facts.at(now), conns))
        .filter(|(a, _)| a.name.as_str() == client_id))
}

/// The registered key the assertion names (exact `kid` match), or the only active key.
fn pick_key(
    agent: &ClientAgent,
    jws: &Jws,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(String, VerifyingKey), &'static str> {
    let active: Vec<_> = agent.keys.iter().filter(|k| k.is_active(now)).collect();
    let chosen = match jws.header.get("kid") {
        Some(Value::String(kid)) => active
            .iter()
            .find(|k| k.kid == *kid)
            .ok_or("its \"kid\" names no active key of this agent")?,
        Some(_) => return Err("its \"kid\" is not a string"),
        None => match active.as_slice() {
            [one] => one,
            [] => return Err("the agent has no active key"),
            _ => {
                return Err(
                    "the agent has several active keys, so the assertion must name one with \"kid\"",
                );
            }
        },
    };
    let vk = chosen
        .verifying_key()
        .map_err(|_| "a registered key is unreadable")?;
    Ok((chosen.kid.clone(), vk))
}

pub(super) fn check_claims(cfg: &EndpointConfig, jws: &Jws, now: i64) -> Result<(), &'static str> {
    let aud_ok = |a: &str| cfg.is_own_audience(a);
    match jws.claims.get("aud") {
        Some(Value::String(a)) if aud_ok(a) => {}
        Some(Value::Array(v)) if v.len() == 1 && v[0].as_str().is_some_and(aud_ok) => {}
        Some(_) => {
            return Err(
                "its \"aud\" must be exactly this server's issuer identifier or one of its \
                 endpoint URLs (see /.well-known/oauth-authorization-server)",
            );
        }
        None => return Err("it has no \"aud\""),
    }
    let exp = match jws.claims.get("exp") {
        None => return Err("it has no \"exp\""),
        Some(v) => jws::numeric_date(Some(v)).ok_or("its \"exp\" is not a number")?,
    };
    if exp + SKEW_SECS <= now {
        return Err("it has expired");
    }
    let iat = match jws.claims.get("iat") {
        None => None,
        Some(v) => Some(jws::numeric_date(Some(v)).ok_or("its \"iat\" is not a number")?),
    };
    if let Some(iat) = iat {
        if iat > now + SKEW_SECS {
            return Err("its \"iat\" is in the future");
        }
        if exp - iat > MAX_ASSERTION_LIFETIME_SECS {
            return Err("its lifetime (exp - iat) is over one hour");
        }
    } else if exp - now > MAX_ASSERTION_LIFETIME_SECS {
        return Err("it expires more than one hour from now");
    }
    if let Some(v) = jws.claims.get("nbf") {
        let nbf = jws::numeric_date(Some(v)).ok_or("its \"nbf\" is not a number")?;
        if nbf > now + SKEW_SECS {
            return Err("it is not valid yet (\"nbf\" is in the future)");
        }
    }
    match jws.claims.get("jti") {
        Some(Value::String(j)) if !j.is_empty() && j.len() <= 256 => Ok(()),
        Some(_) => Err("its \"jti\" must be a string of 1 to 256 characters"),
        None => Err("it has no \"jti\" (each assertion must be unique)"),
    }
}
