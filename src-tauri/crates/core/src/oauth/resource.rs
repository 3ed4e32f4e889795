//! Checking an access token where it is used: at Mandate's own resource, the secret broker
//! (RFC 6750 bearer use, RFC 9449 §7 DPoP-bound use).
//!
//! This is the endpoint's own validation, not a second one: the signature, `typ`, `iss` and
//! `jti` are checked by the same `TokenService` code that checks a subject token, a DPoP proof
//! by the same `dpop::check` (here with `ath` and the token's `cnf.jkt`), and "active" by the
//! same `records::active_token` that introspection uses, so a revocation or suspension bites
//! on the very next proxied call. The two halves are split because the second must run inside
//! the caller's transaction (the one that also reserves budget and writes the audit event).
//!
//! What it is not: scope or audience policy. The broker decides which scope a call needs; this
//! module only says who holds the token and what it carries.

use serde_json::Value;

use super::dpop::{self, DpopProof};
use super::records;
use super::service::TokenService;
use crate::secret::Sensitive;
use crate::store::Tx;

/// A token whose signature (and DPoP proof, if bound) checked out. Never the token itself.
#[derive(Debug, Clone)]
pub struct ResourceToken {
    pub jti: String,
    /// The agent the token was issued to (the actor, also for delegated tokens).
    pub agent_id: String,
    /// `client_id`: the agent's name.
    pub client_id: String,
    /// `sub`: the agent, or the member it acts for.
    pub subject: String,
    pub act: Option<Value>,
    pub scopes: Vec<String>,
    pub aud: Vec<String>,
    pub delegation_id: Option<String>,
    /// The checked proof when the token is DPoP-bound.
    pub proof: Option<DpopProof>,
}

/// Why a token was refused at the resource. The message is a sentence that never echoes the
/// token or the proof.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceTokenError {
    /// No usable `Authorization` header.
    #[error("{0}")]
    Missing(String),
    /// Not a token of this issuer, malformed, or not active.
    #[error("{0}")]
    Invalid(String),
    /// The DPoP proof is missing or wrong.
    #[error("{0}")]
    Dpop(String),
}

impl TokenService {
    /// Check the `Authorization` (and `DPoP`) headers of a request to `method url` at a
    /// Mandate resource. Whether the token is still active is decided later, inside the
    /// caller's transaction, by [`confirm_active`].
    pub fn check_resource_token(
        &self,
        authorization: &[Sensitive<String>],
        dpop_headers: &[Sensitive<String>],
        method: &str,
        url: &str,
    ) -> Result<Result<ResourceToken, ResourceTokenError>, crate::Error> {
        use ResourceTokenError::*;
        let (scheme, token) = match authorization {
            [one] => match one.expose().split_once(' ') {
                Some((s, t)) if !t.trim().is_empty() => (s.to_ascii_lowercase(), t.trim()),
                _ => {
                    return Ok(Err(Missing(
                        "the Authorization header must be `Bearer TOKEN` or `DPoP TOKEN`".into(),
                    )));
                }
            },
            [] => {
                return Ok(Err(Missing(
                    "send a Mandate access token: `Authorization: Bearer TOKEN` (for example \
                     from $MANDATE_TOKEN_FILE or `mandate token AGENT`)"
                        .into(),
                )));
            }
            _ => {
                return Ok(Err(Missing(
                    "the request carries more than one Authorization header".into(),
                )));
            }
        };
        if scheme != "bearer" && scheme != "dpop" {
            return Ok(Err(Missing(
                "the Authorization scheme must be Bearer or DPoP".into(),
            )));
        }
        let Some(j) = self.verify_access_token(token)? else {
            return Ok(Err(Invalid(
                "the token is not an access token of this Mandate (malformed, or signed by \
                 another issuer)"
                    .into(),
            )));
        };
        let cnf = j
            .claims
            .get("cnf")
            .and_then(|c| c.get("jkt"))
            .and_then(Value::as_str);
        let now = self.mandate().now().timestamp();
        let proof = match (cnf, scheme.as_str()) {
            (None, "bearer") => None,
            (None, _) => {
                return Ok(Err(Dpop(
                    "the token is not DPoP-bound: send it with `Authorization: Bearer`".into(),
                )));
            }
            (Some(_), "bearer") => {
                return Ok(Err(Dpop(
                    "the token is DPoP-bound: send it with `Authorization: DPoP` and a DPoP \
                     proof"
                        .into(),
                )));
            }
            (Some(jkt), _) => {
                let [one] = dpop_headers else {
                    return Ok(Err(Dpop(
                        "a DPoP-bound token needs exactly one DPoP proof header".into(),
                    )));
                };
                match dpop::check(
                    one.expose(),
                    dpop::Expect {
                        htm: method,
                        htu: url,
                        now,
                        access_token: Some(token),
                        jkt: Some(jkt),
                    },
                ) {
                    Ok(p) => Some(p),
                    Err(e) => return Ok(Err(Dpop(e))),
                }
            }
        };
        let strs = |v: Option<&Value>| -> Vec<String> {
            match v {
                Some(Value::String(s)) => vec![s.clone()],
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect(),
                _ => Vec::new(),
            }
        };
        let jti = j.claim_str("jti").unwrap_or_default().to_string();
        // The row is the authority for who holds it and what it carries (the claims were
        // signed from it); a token without a row is not ours.
        let rec = self.mandate().read(|tx| records::load_token(tx, &jti))?;
        let Some(rec) = rec else {
            return Ok(Err(Invalid(
                "the token is not known to this Mandate".into(),
            )));
        };
        Ok(Ok(ResourceToken {
            jti,
            agent_id: rec.agent_id,
            client_id: j.claim_str("client_id").unwrap_or_default().to_string(),
            subject: rec.subject,
            act: rec.act,
            scopes: rec.scope.split_whitespace().map(String::from).collect(),
            aud: if rec.aud.is_empty() {
                strs(j.claims.get("aud"))
            } else {
                rec.aud
            },
            delegation_id: rec.delegation_id,
            proof,
        }))
    }
}

/// Inside the caller's transaction: is the token still active (its row, its agent, its
/// delegation, the chain it was exchanged from), and is its DPoP proof fresh (its `jti` is
/// recorded, so a replayed proof is refused even after a restart)? `Ok(Err(reason))` when
/// not.
pub(crate) fn confirm_active(
    used: &super::replay::UsedJtis,
    tx: &Tx<'_>,
    t: &ResourceToken,
    now: i64,
) -> crate::Result<Result<(), String>> {
    if let Err((why, _)) = records::active_token(tx, &t.jti, now)? {
        return Ok(Err(format!("the token is not active: {}", why.as_str())));
    }
    if let Some(p) = &t.proof
        && !used.consume(
            tx,
            &format!("dpop:{}", p.jkt),
            &p.jti,
            p.iat + dpop::IAT_WINDOW_SECS + super::SKEW_SECS,
            now,
        )?
    {
        return Ok(Err(
            "the DPoP proof's jti was already used (replay); make a new proof for every request"
                .into(),
        ));
    }
    Ok(Ok(()))
}

impl TokenService {
    /// [`confirm_active`] on its own grouped write, for a resource that has no transaction of
    /// its own to run it in (the MCP gateway's HTTP endpoint, per request): the token is still
    /// active and its DPoP proof's `jti` is recorded (a replay is refused). Returns once durable.
    pub async fn confirm_resource_token(
        &self,
        t: &ResourceToken,
    ) -> Result<Result<(), String>, crate::Error> {
        let m = self.mandate();
        let used = m.used_jtis().clone();
        let t = t.clone();
        m.submit_grouped(move |tx, now| confirm_active(&used, tx, &t, now.timestamp()))
            .await
    }
}
