//! The token, introspection and revocation endpoints as plain functions over request bytes.
//!
//! Every decision is an audit event: each issuance and exchange is committed (in a group
//! commit, see `group_commit`) together with its token record and the used assertion `jti`
//! before the token is returned; each denial is recorded with its reason; revocations and
//! introspections of inactive tokens too. Events name the agent, the member it acts for, the
//! scopes, the audience and the token's `jti`, never the token (a SHA-256 where one must be
//! named).
//!
//! Each endpoint is split in two so that no thread waits for a commit: the rules run at once
//! and return a [`Pending`] answer whose write is already queued for the group commit; the
//! adapter awaits it ([`Pending::finish`]). Every path ends in at most one write, so every
//! answer, denials included, leaves only after its audit event has committed.
//!
//! What it is not: HTTP. The server adapter passes the body, the method and URL the client
//! addressed, and the `DPoP` header values; it maps [`OAuthError`] to a response.

use std::sync::{Arc, RwLock};

use crate::store::{Tx, params};
use ed25519_dalek::VerifyingKey;
use serde_json::{Value, json};

use super::assertion::{self, Client};
use super::client_agent::ClientAgent;
use super::dpop::{self, DpopProof};
use super::jws::{self, Jws};
use super::policy::{self, Ceiling, Plan, RateLimiter};
use super::readers::Readers;
use super::records::{self, TokenRecord};
use super::replay::UsedJtis;
use super::{
    EndpointConfig, Form, GRANT_CIBA, GRANT_CLIENT_CREDENTIALS, GRANT_TOKEN_EXCHANGE, OAuthError,
    SKEW_SECS, TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_DELEGATION, TOKEN_TYPE_JWT, issuer, token_hash,
};
use crate::Mandate;
use crate::audit::{self, Actor, Decision, NewEvent, Target};
use crate::group_commit::Ticket;
use crate::registry::IssuerKey;
use crate::secret::Sensitive;

/// The claim that names a sub-agent's parents in its tokens (and in introspection), parent
/// first: a private claim name (RFC 7519 §4.3), which JWT libraries pass through.
pub const PARENTS_CLAIM: &str = "mandate_parents";

/// How often the endpoint looks for an issuer key rotated by another process.
const SIGNER_RECHECK_SECS: i64 = 5;

/// What the HTTP adapter knows about the request that the rules need.
#[derive(Debug, Clone)]
pub struct HttpContext {
    /// The request method (`POST`).
    pub method: String,
    /// The URL the client addressed (`http://127.0.0.1:6263/oauth2/token`), for DPoP `htu`.
    pub url: String,
    /// Every `DPoP` header value (more than one is refused).
    pub dpop: Vec<Sensitive<String>>,
}

/// A successful token response (RFC 6749 §5.1). The token prints as `[REDACTED]`.
pub struct TokenResponse {
    pub access_token: Sensitive<String>,
    /// `Bearer`, or `DPoP` when bound.
    pub token_type: &'static str,
    pub expires_in: i64,
    pub scope: String,
    /// Set for token exchange (RFC 8693 §2.2.1).
    pub issued_token_type: Option<&'static str>,
    pub jti: String,
    /// Grants left out because a connection's trust floor is above the agent (requests that
    /// named no scope only), space-separated like `scope`, and why, as a sentence.
    pub withheld_scope: Option<String>,
    pub withheld_description: Option<String>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &self.access_token)
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .field("jti", &self.jti)
            .field("withheld_scope", &self.withheld_scope)
            .finish()
    }
}

impl TokenResponse {
    /// The JSON body. This is the one place the token leaves the core.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "access_token": self.access_token.expose(),
            "token_type": self.token_type,
            "expires_in": self.expires_in,
            "scope": self.scope,
        });
        if let Some(t) = self.issued_token_type {
            v["issued_token_type"] = json!(t);
        }
        // RFC 6749 §5.1 lets a server add parameters; clients ignore those they do not know.
        if let (Some(s), Some(d)) = (&self.withheld_scope, &self.withheld_description) {
            v["withheld_scope"] = json!(s);
            v["withheld_description"] = json!(d);
        }
        v
    }
}

/// The endpoint's rules, shared by every request (cheap to share behind an `Arc`).
pub struct TokenService {
    pub(super) m: Arc<Mandate>,
    pub(super) cfg: EndpointConfig,
    signer: RwLock<(Arc<IssuerKey>, i64)>,
    pub(super) limiter: RateLimiter,
    pub(super) readers: Readers,
    /// When each CIBA request was last polled (Unix seconds), for `slow_down`.
    pub(super) ciba_polls: super::ciba::Polls,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService")
            .field("issuer", &self.cfg.issuer)
            .finish_non_exhaustive()
    }
}

/// A value safe to put in the audit trail: short, printable, no token material.
pub(super) fn printable(s: Option<&str>, max: usize) -> Option<String> {
    s.filter(|s| s.len() <= max && s.chars().all(|c| c.is_ascii_graphic() || c == ' '))
        .filter(|s| !s.contains("eyJ"))
        .map(String::from)
}

/// What an issued token is, for its record and its audit event.
pub(super) struct Minted {
    pub(super) plan: Plan,
    pub(super) subject: String,
    pub(super) act: Option<Value>,
    pub(super) parent_jti: Option<String>,
    pub(super) delegation_id: Option<String>,
    pub(super) on_behalf_of: Option<Actor>,
    pub(super) extra: serde_json::Map<String, Value>,
    /// A CIBA request this token answers: marked used as the token is recorded (once).
    pub(super) ciba_request: Option<String>,
}

/// Why a request ends early: an answer to give as it is (malformed input the adapter refused,
/// or a failure of Mandate itself), or a denial whose audit event is queued; its ticket yields
/// the error to answer once the event has committed.
pub(super) enum Stop {
    Answer(OAuthError),
    Denied(Ticket<OAuthError>),
}

impl From<OAuthError> for Stop {
    fn from(e: OAuthError) -> Self {
        Stop::Answer(e)
    }
}

impl From<crate::Error> for Stop {
    fn from(e: crate::Error) -> Self {
        Stop::Answer(OAuthError::from(e))
    }
}

/// An endpoint's answer: ready now, or once the write it queued has committed. Await it with
/// [`Pending::finish`] (holds no thread while the commit runs).
#[must_use = "the answer is only known once its audit write has committed"]
pub struct Pending<T> {
    state: PendingState<T>,
    m: Arc<Mandate>,
}

enum PendingState<T> {
    Ready(Result<T, OAuthError>),
    Denied(Ticket<OAuthError>),
    Commit(Ticket<Result<T, OAuthError>>),
}

impl<T> std::fmt::Debug for Pending<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").finish_non_exhaustive()
    }
}

impl<T> Pending<T> {
    pub(super) fn new(m: &Arc<Mandate>, r: Result<Ticket<Result<T, OAuthError>>, Stop>) -> Self {
        let state = match r {
            Ok(t) => PendingState::Commit(t),
            Err(Stop::Answer(e)) => PendingState::Ready(Err(e)),
            Err(Stop::Denied(t)) => PendingState::Denied(t),
        };
        Pending {
            state,
            m: m.clone(),
        }
    }

    /// The answer, once its write (if any) has committed. A failed audit write answers 503:
    /// the endpoint fails closed.
    pub async fn finish(self) -> Result<T, OAuthError> {
        let out = match self.state {
            PendingState::Ready(r) => return r,
            PendingState::Denied(t) => Err(t.await.unwrap_or_else(OAuthError::from)),
            PendingState::Commit(t) => t.await.unwrap_or_else(|e| Err(OAuthError::from(e))),
        };
        // A signed audit checkpoint, when one is due, is made on a thread of its own.
        self.m.after_write_detached();
        out
    }
}

/// The audit event of a refusal.
fn denial_event(
    agent: Option<(&str, &str)>,
    action: &str,
    err: &OAuthError,
    mut details: serde_json::Map<String, Value>,
) -> NewEvent {
    details.insert("error".into(), json!(err.code()));
    if matches!(err, OAuthError::BelowTrustFloor(_)) {
        details.insert(crate::audit::TRUST_GATE.into(), json!(true));
    }
    let actor = match agent {
        Some((id, name)) => {
            details.insert("client_id".into(), json!(name));
            Actor::agent(id, name)
        }
        // No agent could be identified (a malformed request, an unknown client_id): the
        // endpoint's own refusal.
        None => Actor::system("endpoint", "token endpoint, no agent identified"),
    };
    let mut ev = NewEvent::new(&actor, action, Decision::Deny)
        .reason(err.to_string())
        .details(Value::Object(details));
    if let Some((id, _)) = agent {
        ev = ev.agent(id);
    }
    ev
}

/// Record the caller's client assertion `jti` (`(agent name, jti, keep until)`) as used. If it
/// was used before, write the replay's denial instead and return the error to answer.
pub(super) fn consume_assertion(
    used: &UsedJtis,
    tx: &Tx<'_>,
    now: chrono::DateTime<chrono::Utc>,
    (client, jti, keep_until): &(String, String, i64),
    agent_id: &str,
    action: &str,
) -> crate::Result<Option<OAuthError>> {
    if used.consume(tx, client, jti, *keep_until, now.timestamp())? {
        return Ok(None);
    }
    let e = OAuthError::InvalidClient(
        "this client assertion was already used (replay); sign a new one for every request".into(),
    );
    let ev = denial_event(Some((agent_id, client)), action, &e, Default::default());
    audit::append(tx, now, ev)?;
    Ok(Some(e))
}

impl TokenService {
    /// The rules for an endpoint at `cfg.issuer`. Loads (or creates) the issuer key, so it
    /// needs the keychain once.
    pub fn new(m: Arc<Mandate>, cfg: EndpointConfig) -> crate::Result<Self> {
        let key = m.issuer_key()?;
        let now = m.now().timestamp();
        // Rules run on every worker thread of the server at once, and the JWKS and exchange reads
        // beside them.
        let readers = Readers::open(&m, 4)?;
        Ok(TokenService {
            m,
            cfg,
            signer: RwLock::new((Arc::new(key), now)),
            limiter: RateLimiter::default(),
            readers,
            ciba_polls: Default::default(),
        })
    }

    pub fn config(&self) -> &EndpointConfig {
        &self.cfg
    }

    pub fn mandate(&self) -> &Arc<Mandate> {
        &self.m
    }

    /// RFC 8414 authorization server metadata.
    pub fn metadata(&self) -> Value {
        let i = &self.cfg.issuer;
        let algs = json!(["EdDSA", "Ed25519"]);
        json!({
            "issuer": i,
            "token_endpoint": format!("{i}/oauth2/token"),
            "jwks_uri": format!("{i}/.well-known/jwks.json"),
            "introspection_endpoint": format!("{i}/oauth2/introspect"),
            "revocation_endpoint": format!("{i}/oauth2/revoke"),
            "grant_types_supported": [GRANT_CLIENT_CREDENTIALS, GRANT_TOKEN_EXCHANGE, GRANT_CIBA],
            "backchannel_authentication_endpoint": self.cfg.backchannel_endpoint(),
            "backchannel_token_delivery_modes_supported": ["poll"],
            "backchannel_user_code_parameter_supported": false,
            "backchannel_authentication_request_signing_alg_values_supported": [],
            "response_types_supported": [],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": algs,
            "introspection_endpoint_auth_methods_supported": ["private_key_jwt"],
            "introspection_endpoint_auth_signing_alg_values_supported": algs,
            "revocation_endpoint_auth_methods_supported": ["private_key_jwt"],
            "revocation_endpoint_auth_signing_alg_values_supported": algs,
            "dpop_signing_alg_values_supported": algs,
            "service_documentation": "https://github.com/mandate-dev/mandate/blob/main/docs/ARCHITECTURE.md",
        })
    }

    /// Sign a local client's nonce with the issuer key (see [`super::endpoint_proof`]); `None`
    /// for a nonce of the wrong shape.
    pub fn endpoint_proof(
        &self,
        nonce: &str,
    ) -> crate::Result<Option<super::endpoint_proof::EndpointProof>> {
        let signer = self.signer()?;
        super::endpoint_proof::sign(&signer, &self.cfg.issuer, nonce)
    }

    /// The JWKS: the signing key in use and retired keys with tokens outstanding.
    pub fn jwks(&self) -> crate::Result<super::IssuerJwks> {
        let signer = self.signer()?;
        let vk = signer.public;
        let mut keys = vec![json!({
            "kty": "OKP", "crv": "Ed25519", "x": crate::keys::b64url(vk.as_bytes()),
            "kid": signer.kid, "alg": "EdDSA", "use": "sig",
        })];
        for (kid, k) in self
            .readers
            .with(|c| issuer::retired_keys_on(c, self.m.now().timestamp()))?
        {
            if kid != signer.kid {
                keys.push(json!({
                    "kty": "OKP", "crv": "Ed25519", "x": crate::keys::b64url(k.as_bytes()),
                    "kid": kid, "alg": "EdDSA", "use": "sig",
                }));
            }
        }
        Ok(super::IssuerJwks { keys })
    }

    /// The current signing key, re-read from the database and the vault now.
    fn refresh_signer(&self) -> crate::Result<Arc<IssuerKey>> {
        let key = Arc::new(self.m.issuer_key()?);
        let mut g = self
            .signer
            .write()
            .map_err(|_| crate::Error::Storage("the signer lock was poisoned".into()))?;
        *g = (key.clone(), self.m.now().timestamp());
        Ok(key)
    }

    /// The current signing key, re-read when another process may have rotated it.
    pub(super) fn signer(&self) -> crate::Result<Arc<IssuerKey>> {
        let now = self.m.now().timestamp();
        if let Ok(g) = self.signer.read()
            && now - g.1 < SIGNER_RECHECK_SECS
        {
            return Ok(g.0.clone());
        }
        let kid = self.readers.with(issuer::current_kid)?;
        let mut g = self
            .signer
            .write()
            .map_err(|_| crate::Error::Storage("the signer lock was poisoned".into()))?;
        if kid.as_deref() != Some(g.0.kid.as_str()) {
            g.0 = Arc::new(self.m.issuer_key()?);
        }
        g.1 = now;
        Ok(g.0.clone())
    }

    pub(super) fn verifying_key(&self, kid: &str) -> crate::Result<Option<VerifyingKey>> {
        let s = self.signer()?;
        if s.kid == kid {
            return Ok(Some(s.public));
        }
        Ok(self
            .readers
            .with(|c| issuer::retired_keys_on(c, self.m.now().timestamp()))?
            .into_iter()
            .find(|(k, _)| k == kid)
            .map(|(_, v)| v))
    }

    /// Verify that `token` is an access token this issuer signed; its claims if so.
    pub(super) fn verify_access_token(&self, token: &str) -> crate::Result<Option<Jws>> {
        let Ok(j) = jws::parse(token) else {
            return Ok(None);
        };
        if j.check_common_header(false).is_err() {
            return Ok(None);
        }
        let typ_ok = j
            .header_str("typ")
            .map(|t| t.to_ascii_lowercase())
            .is_some_and(|t| t == "at+jwt" || t == "application/at+jwt");
        let Some(kid) = j.header_str("kid").filter(|_| typ_ok) else {
            return Ok(None);
        };
        let Some(key) = self.verifying_key(kid)? else {
            return Ok(None);
        };
        if j.verify(&key).is_err() || j.claim_str("iss") != Some(self.cfg.issuer.as_str()) {
            return Ok(None);
        }
        if j.claim_str("jti").is_none() {
            return Ok(None);
        }
        Ok(Some(j))
    }

    // ----- audit ------------------------------------------------------------------------

    /// Queue the audit event of a refusal; the refusal is answered once it has committed (when
    /// the audit write fails, the endpoint fails closed with 503 instead).
    pub(super) fn deny(
        &self,
        agent: Option<&ClientAgent>,
        action: &str,
        err: OAuthError,
        details: serde_json::Map<String, Value>,
        consume: Option<(String, String, i64)>,
    ) -> Stop {
        let mut details = details;
        if let Some(a) = agent
            && !a.parents.is_empty()
        {
            details.insert("parent_chain".into(), json!(a.parents));
        }
        let ev = denial_event(
            agent.map(|a| (a.id.as_str(), a.name.as_str())),
            action,
            &err,
            details,
        );
        let used = self.m.used_jtis().clone();
        Stop::Denied(self.m.submit_grouped_shared_fate(move |tx, now| {
            if let Some((client, jti, exp)) = consume {
                used.consume(tx, &client, &jti, exp, now.timestamp())?;
            }
            audit::append(tx, now, ev)?;
            Ok(err)
        }))
    }

    pub(super) fn base_details(form: &Form) -> serde_json::Map<String, Value> {
        let mut d = serde_json::Map::new();
        if let Some(g) = printable(form.get("grant_type"), 100) {
            d.insert("grant_type".into(), json!(g));
        }
        if let Some(s) = printable(form.get("scope"), 1000) {
            d.insert("requested_scope".into(), json!(s));
        }
        let res: Vec<String> = form
            .all("resource")
            .into_iter()
            .chain(form.all("audience"))
            .filter_map(|r| printable(Some(r), 300))
            .collect();
        if !res.is_empty() {
            d.insert("requested_resource".into(), json!(res));
        }
        d
    }

    pub(super) fn authenticate(&self, form: &Form, action: &str, now: i64) -> Result<Client, Stop> {
        assertion::authenticate(&self.m, &self.readers, &self.cfg, form, now).map_err(|d| {
            // The registry could not be read: fail closed as for any storage failure (503,
            // see `OAuthError::from`), without a denial event.
            if let OAuthError::TemporarilyUnavailable(_) = d.err {
                return Stop::Answer(d.err);
            }
            let mut details = Self::base_details(form);
            details.insert("authenticated".into(), json!(false));
            self.deny(d.agent.as_deref(), action, d.err, details, None)
        })
    }

    // ----- POST /oauth2/token -------------------------------------------------------------

    /// A token request: `client_credentials` or token exchange, `private_key_jwt` client
    /// authentication, optional DPoP.
    pub fn token(&self, body: &[u8], http: &HttpContext) -> Pending<TokenResponse> {
        // Every path ends in at most one write: announce it (group_commit).
        let _announced = self.m.announce_write();
        Pending::new(&self.m, self.token_rules(body, http))
    }

    fn token_rules(
        &self,
        body: &[u8],
        http: &HttpContext,
    ) -> Result<Ticket<Result<TokenResponse, OAuthError>>, Stop> {
        const ACTION: &str = "token.denied";
        let now = self.m.now().timestamp();
        let form = match Form::parse(body) {
            Ok(f) => f,
            Err(e) => return Err(self.deny(None, ACTION, e, Default::default(), None)),
        };
        let grant = match form.get("grant_type") {
            None => {
                let e = OAuthError::InvalidRequest("grant_type is missing".into());
                return Err(self.deny(None, ACTION, e, Self::base_details(&form), None));
            }
            Some(g)
                if [GRANT_CLIENT_CREDENTIALS, GRANT_TOKEN_EXCHANGE, GRANT_CIBA].contains(&g) =>
            {
                g.to_string()
            }
            Some(_) => {
                let e = OAuthError::UnsupportedGrantType(
                    "Mandate supports client_credentials, token exchange \
                     (urn:ietf:params:oauth:grant-type:token-exchange) and CIBA \
                     (urn:openid:params:grant-type:ciba)"
                        .into(),
                );
                return Err(self.deny(None, ACTION, e, Self::base_details(&form), None));
            }
        };
        let client = self.authenticate(&form, ACTION, now)?;
        let agent = &client.agent;
        let consume = Some((
            agent.name.to_string(),
            client.jti.clone(),
            client.exp + SKEW_SECS,
        ));
        let refuse = |e: OAuthError| {
            self.deny(
                Some(agent),
                ACTION,
                e,
                Self::base_details(&form),
                consume.clone(),
            )
        };

        if let Some(limit) = self.cfg.rate_limit {
            let now_ms = self.m.now().timestamp_millis();
            self.limiter
                .take(limit, agent.id.as_str(), now_ms)
                .map_err(&refuse)?;
        }
        let proof: Option<DpopProof> = match http.dpop.as_slice() {
            [] => None,
            [one] => Some(
                dpop::check(
                    one.expose(),
                    dpop::Expect {
                        htm: &http.method,
                        htu: &http.url,
                        now,
                        access_token: None,
                        jkt: None,
                    },
                )
                .map_err(|e| refuse(OAuthError::InvalidDpopProof(e)))?,
            ),
            _ => {
                return Err(refuse(OAuthError::InvalidDpopProof(
                    "the request carries more than one DPoP header".into(),
                )));
            }
        };
        if proof.is_none() && agent.dpop_required {
            return Err(refuse(OAuthError::InvalidDpopProof(format!(
                "the agent '{}' must bind its tokens with DPoP: send a DPoP proof header",
                agent.name
            ))));
        }
        let scope = form.get("scope");
        let resources: Vec<&str> = form
            .all("resource")
            .into_iter()
            .chain(form.all("audience"))
            .collect();
        let minted = if grant == GRANT_CIBA {
            self.ciba_poll(&form, agent, &client.conns, &resources, now)
                .map_err(&refuse)?
        } else if grant == GRANT_CLIENT_CREDENTIALS {
            let plan = policy::plan(
                agent,
                &client.conns,
                scope,
                &resources,
                None,
                self.cfg.default_ttl_secs,
                now,
            )
            .map_err(&refuse)?;
            Minted {
                plan,
                subject: agent.name.to_string(),
                act: None,
                parent_jti: None,
                delegation_id: None,
                on_behalf_of: None,
                extra: Default::default(),
                ciba_request: None,
            }
        } else {
            self.exchange(&form, agent, &client.conns, &resources, proof.as_ref(), now)
                .map_err(&refuse)?
        };
        self.issue(&client, &grant, minted, proof, now)
    }

    /// RFC 8693: a sub-agent exchanging its parent's token, or an agent acting under a
    /// delegation. Never wider than the subject token or the delegation.
    fn exchange(
        &self,
        form: &Form,
        agent: &ClientAgent,
        conns: &[policy::ConnInfo],
        resources: &[&str],
        proof: Option<&DpopProof>,
        now: i64,
    ) -> Result<Minted, OAuthError> {
        if let Some(t) = form.get("requested_token_type")
            && t != TOKEN_TYPE_ACCESS_TOKEN
            && t != TOKEN_TYPE_JWT
        {
            return Err(OAuthError::InvalidRequest(
                "requested_token_type must be an access token".into(),
            ));
        }
        if form.get("actor_token").is_some() {
            return Err(OAuthError::InvalidRequest(
                "actor_token is not supported: the authenticated client is the actor".into(),
            ));
        }
        let (Some(subject_token), Some(subject_type)) =
            (form.secret("subject_token"), form.get("subject_token_type"))
        else {
            return Err(OAuthError::InvalidRequest(
                "token exchange needs subject_token and subject_token_type".into(),
            ));
        };
        let scope = form.get("scope");
        let mut extra = serde_json::Map::new();
        match subject_type {
            TOKEN_TYPE_ACCESS_TOKEN | TOKEN_TYPE_JWT => {
                let inactive = || {
                    OAuthError::InvalidGrant(
                        "the subject token is not an active access token of this issuer".into(),
                    )
                };
                let j = self
                    .verify_access_token(subject_token.expose())?
                    .ok_or_else(inactive)?;
                let jti = j.claim_str("jti").unwrap_or_default().to_string();
                let rec = { self.readers.with(|c| records::active_token(c, &jti, now))? };
                let rec = match rec {
                    Ok(r) => r,
                    Err((why, _)) => {
                        return Err(OAuthError::InvalidGrant(format!(
                            "the subject token is not active ({})",
                            why.as_str()
                        )));
                    }
                };
                let holder: Option<String> = self.readers.with(|c| {
                    c.query_opt(
                        "SELECT name FROM agents WHERE id = ?1",
                        params![&rec.agent_id],
                        |r| r.get(0),
                    )
                })?;
                if agent.parent.as_ref().map(|p| p.as_str()) != holder.as_deref() {
                    return Err(OAuthError::InvalidGrant(format!(
                        "only a sub-agent of the token's holder may exchange it, and '{}' is not one",
                        agent.name
                    )));
                }
                if let Some(bound) = &rec.cnf_jkt
                    && proof.map(|p| &p.jkt) != Some(bound)
                {
                    return Err(OAuthError::InvalidGrant(
                        "the subject token is DPoP-bound: present a DPoP proof made with its key"
                            .into(),
                    ));
                }
                let ceiling = Ceiling {
                    scopes: rec.scope.split_whitespace().map(String::from).collect(),
                    aud: Some(rec.aud.clone()),
                    exp: rec.expires_at,
                    what: "the subject token",
                };
                let plan = policy::plan(
                    agent,
                    conns,
                    scope,
                    resources,
                    Some(&ceiling),
                    self.cfg.default_ttl_secs,
                    now,
                )?;
                let mut act = json!({"sub": agent.name.as_str()});
                if let Some(prior) = &rec.act {
                    act["act"] = prior.clone();
                }
                let on_behalf_of = match &rec.delegation_id {
                    Some(d) => self
                        .readers
                        .with(|c| super::delegation::delegation_row_on(c, d, now))?
                        .map(|d| Actor::member(&d.member_id, &d.member)),
                    None => None,
                };
                extra.insert("subject_token_jti".into(), json!(rec.jti));
                if let Some(h) = &holder {
                    extra.insert("parent_agent".into(), json!(h));
                }
                Ok(Minted {
                    plan,
                    subject: rec.subject.clone(),
                    act: Some(act),
                    parent_jti: Some(rec.jti.clone()),
                    delegation_id: rec.delegation_id.clone(),
                    on_behalf_of,
                    extra,
                    ciba_request: None,
                })
            }
            TOKEN_TYPE_DELEGATION => {
                let id = subject_token.expose();
                let d = if id.len() <= 64 {
                    self.readers
                        .with(|c| super::delegation::delegation_row_on(c, id, now))?
                } else {
                    None
                };
                let Some(d) = d.filter(|d| d.agent_id == agent.id.as_str()) else {
                    return Err(OAuthError::InvalidGrant(format!(
                        "no delegation with that id lets '{}' act for anyone",
                        agent.name
                    )));
                };
                if !d.active {
                    return Err(OAuthError::InvalidGrant(format!(
                        "the delegation {} has been revoked or has ended",
                        d.id
                    )));
                }
                let ceiling = Ceiling {
                    scopes: d.scopes.clone(),
                    aud: None,
                    exp: d.until.timestamp(),
                    what: "the delegation",
                };
                let plan = policy::plan(
                    agent,
                    conns,
                    scope,
                    resources,
                    Some(&ceiling),
                    self.cfg.default_ttl_secs,
                    now,
                )?;
                extra.insert("delegation".into(), json!(d.id));
                extra.insert("task".into(), json!(d.task));
                Ok(Minted {
                    plan,
                    subject: d.member.clone(),
                    act: Some(json!({"sub": agent.name.as_str()})),
                    parent_jti: None,
                    delegation_id: Some(d.id.clone()),
                    on_behalf_of: Some(Actor::member(&d.member_id, &d.member)),
                    extra,
                    ciba_request: None,
                })
            }
            _ => Err(OAuthError::InvalidRequest(format!(
                "subject_token_type must be {TOKEN_TYPE_ACCESS_TOKEN} (a parent agent's token) or \
                 {TOKEN_TYPE_DELEGATION} (a delegation id)"
            ))),
        }
    }

    /// Sign the token, then commit its record, the used `jti`s and its audit event before
    /// returning it.
    fn issue(
        &self,
        client: &Client,
        grant: &str,
        minted: Minted,
        proof: Option<DpopProof>,
        now: i64,
    ) -> Result<Ticket<Result<TokenResponse, OAuthError>>, Stop> {
        let agent = &client.agent;
        let mut signer = self.signer()?;
        let jti = time_ordered_jti(self.m.now());
        let Minted {
            plan,
            subject,
            act,
            parent_jti,
            delegation_id,
            on_behalf_of,
            extra,
            ciba_request,
        } = minted;
        let scope = plan.scopes.join(" ");
        let (withheld_scope, withheld_description) = describe_withheld(agent, &plan.withheld);
        let aud_claim = match plan.aud.as_slice() {
            [one] => json!(one),
            many => json!(many),
        };
        let mut claims = json!({
            "iss": self.cfg.issuer,
            "sub": subject,
            "aud": aud_claim,
            "exp": plan.exp,
            "iat": now,
            "nbf": now,
            "jti": jti,
            "client_id": agent.name.as_str(),
            "scope": scope,
        });
        if let Some(a) = &act {
            claims["act"] = a.clone();
        }
        // A sub-agent's token names the agents above it, parent first (README, "Sub-agents").
        if !agent.parents.is_empty() {
            claims[PARENTS_CLAIM] = json!(agent.parents);
        }
        if let Some(p) = &proof {
            claims["cnf"] = json!({"jkt": p.jkt});
        }
        let header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": signer.kid});
        let token = match jws::sign_with(&header, &claims, |m| signer.sign(m)) {
            Ok(t) => t,
            // The key's vault failed (a PKCS#11 session lost, or the key rotated away by another
            // instance): look again for the current key and try once more, else 503.
            Err(first) => {
                tracing::warn!(error = %first, "the issuer key could not sign; re-reading it");
                signer = self.refresh_signer()?;
                let header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": signer.kid});
                jws::sign_with(&header, &claims, |m| signer.sign(m))?
            }
        };
        let exchanged = grant == GRANT_TOKEN_EXCHANGE;
        let token_type = if proof.is_some() { "DPoP" } else { "Bearer" };

        let record = TokenRecord {
            jti: jti.clone(),
            agent_id: agent.id.as_str().to_string(),
            subject: subject.clone(),
            act: act.clone(),
            scope: scope.clone(),
            aud: plan.aud.clone(),
            kid: signer.kid.clone(),
            issued_at: now,
            expires_at: plan.exp,
            cnf_jkt: proof.as_ref().map(|p| p.jkt.clone()),
            parent_jti,
            delegation_id,
            revoked_at: None,
        };
        let mut details = serde_json::Map::new();
        details.insert("client_id".into(), json!(agent.name.as_str()));
        details.insert("grant_type".into(), json!(grant));
        details.insert("sub".into(), json!(subject));
        details.insert("scopes".into(), json!(plan.scopes));
        details.insert("aud".into(), json!(plan.aud));
        details.insert("jti".into(), json!(jti));
        details.insert("exp".into(), json!(plan.exp));
        details.insert("token_type".into(), json!(token_type));
        details.insert("assertion_kid".into(), json!(client.kid));
        if let Some(a) = &act {
            details.insert("act".into(), a.clone());
        }
        if !agent.parents.is_empty() {
            details.insert("parent_chain".into(), json!(agent.parents));
        }
        if let Some(p) = &proof {
            details.insert("cnf_jkt".into(), json!(p.jkt));
        }
        if !plan.withheld.is_empty() {
            details.insert(
                "withheld_scopes".into(),
                plan.withheld
                    .iter()
                    .map(|w| {
                        json!({
                            "scope": w.scope,
                            "connection": w.connection,
                            "requires": w.floor.to_string(),
                            "agent_trust": agent.trust.to_string(),
                        })
                    })
                    .collect(),
            );
        }
        details.extend(extra);
        let actor = Actor::agent(agent.id.as_str(), agent.name.as_str());
        let agent_id = agent.id.to_string();
        let client_name = agent.name.to_string();
        let assertion = (client.jti.clone(), client.exp + SKEW_SECS);
        let dpop_jti = proof.as_ref().map(|p| {
            (
                format!("dpop:{}", p.jkt),
                p.jti.clone(),
                p.iat + dpop::IAT_WINDOW_SECS + SKEW_SECS,
            )
        });
        let action = if exchanged {
            "token.exchanged"
        } else {
            "token.issued"
        };
        let expires_in = plan.exp - now;
        let response = TokenResponse {
            access_token: Sensitive::new(token),
            token_type,
            expires_in,
            scope,
            issued_token_type: exchanged.then_some(TOKEN_TYPE_ACCESS_TOKEN),
            jti,
            withheld_scope,
            withheld_description,
        };
        let used = self.m.used_jtis().clone();
        Ok(self.m.submit_grouped_shared_fate(move |tx, now_dt| {
            let target = Target::new("token", &record.jti, "access token");
            let event = |decision: Decision| {
                let mut ev = NewEvent::new(&actor, action, decision)
                    .target(target.clone())
                    .agent(&agent_id)
                    .details(Value::Object(details.clone()));
                if let Some(m) = &on_behalf_of {
                    ev = ev.on_behalf_of(m.clone());
                }
                ev
            };
            let refuse = |err: OAuthError| -> crate::Result<Result<TokenResponse, OAuthError>> {
                let mut ev = event(Decision::Deny).reason(err.to_string());
                ev.action = "token.denied".into();
                ev.details["error"] = json!(err.code());
                if matches!(err, OAuthError::BelowTrustFloor(_)) {
                    ev.details[crate::audit::TRUST_GATE] = json!(true);
                }
                audit::append(tx, now_dt, ev)?;
                Ok(Err(err))
            };
            if !used.consume(tx, &client_name, &assertion.0, assertion.1, now)? {
                return refuse(OAuthError::InvalidClient(
                    "this client assertion was already used (replay); sign a new one with a \
                     fresh jti for every request"
                        .into(),
                ));
            }
            if let Some((client, jti, exp)) = &dpop_jti
                && !used.consume(tx, client, jti, *exp, now)?
            {
                return refuse(OAuthError::InvalidDpopProof(
                    "the DPoP proof's jti was already used (replay)".into(),
                ));
            }
            // Authoritative: the agent and every agent above it are still active as this
            // token is recorded.
            match crate::lineage::first_inactive_in_chain(tx, &agent_id)? {
                None => {}
                Some(held) if held.depth == 0 => {
                    return refuse(OAuthError::InvalidClient(format!(
                        "the agent '{client_name}' is {}: it gets no tokens",
                        held.status
                    )));
                }
                Some(held) => {
                    return refuse(OAuthError::InvalidClient(crate::lineage::held_back(
                        &client_name,
                        &held.name,
                        held.status,
                    )));
                }
            }
            // A CIBA approval yields one token: the first poll after the yes takes it.
            if let Some(id) = &ciba_request
                && tx.execute(
                    "UPDATE approvals SET used = 1 WHERE id = ?1 AND status = 'approved' \
                     AND used = 0",
                    params![id],
                )? == 0
            {
                return refuse(OAuthError::InvalidGrant(format!(
                    "the CIBA request {id} already yielded its token; start a new one"
                )));
            }
            records::insert_token(tx, &record)?;
            audit::append(tx, now_dt, event(Decision::Allow))?;
            Ok(Ok(response))
        }))
    }

    // ----- POST /oauth2/introspect ----------------------------------------------------------

    /// RFC 7662. The caller authenticates like a token request. Unknown, expired, revoked,
    /// malformed and foreign tokens all answer `{"active": false}` and nothing else.
    pub fn introspect(&self, body: &[u8]) -> Pending<Value> {
        // Every path ends in at most one write: announce it (group_commit).
        let _announced = self.m.announce_write();
        Pending::new(&self.m, self.introspect_rules(body))
    }

    fn introspect_rules(&self, body: &[u8]) -> Result<Ticket<Result<Value, OAuthError>>, Stop> {
        const ACTION: &str = "introspection.denied";
        let now = self.m.now().timestamp();
        let form =
            Form::parse(body).map_err(|e| self.deny(None, ACTION, e, Default::default(), None))?;
        let client = self.authenticate(&form, ACTION, now)?;
        let consume = (
            client.agent.name.to_string(),
            client.jti.clone(),
            client.exp + SKEW_SECS,
        );
        let Some(token) = form.secret("token") else {
            let e = OAuthError::InvalidRequest("the token parameter is missing".into());
            return Err(self.deny(
                Some(&client.agent),
                ACTION,
                e,
                Default::default(),
                Some(consume),
            ));
        };
        let verified = self.verify_access_token(token.expose())?;
        let state = match &verified {
            Some(j) => {
                let jti = j.claim_str("jti").unwrap_or_default();
                Some(self.readers.with(|c| records::active_token(c, jti, now))?)
            }
            None => None,
        };
        let (response, inactive_event) = match (&verified, state) {
            (Some(j), Some(Ok(rec))) => (active_response(j, &rec), None),
            (_, state) => {
                let (why, rec) = match state {
                    Some(Err((why, rec))) => (why.as_str(), rec),
                    _ => ("not a token of this issuer, or malformed", None),
                };
                let mut d = serde_json::Map::new();
                d.insert("token_sha256".into(), json!(token_hash(token.expose())));
                d.insert("inactive_because".into(), json!(why));
                d.insert("introspected_by".into(), json!(client.agent.name.as_str()));
                let mut owner = None;
                if let Some(r) = &rec {
                    d.insert("jti".into(), json!(r.jti));
                    d.insert("sub".into(), json!(r.subject));
                    d.insert(
                        "scopes".into(),
                        json!(r.scope.split_whitespace().collect::<Vec<_>>()),
                    );
                    d.insert("aud".into(), json!(r.aud));
                    if let Some(a) = &r.act {
                        d.insert("act".into(), a.clone());
                    }
                    owner = Some(r.agent_id.clone());
                }
                let mut ev = NewEvent::new(
                    &Actor::agent(client.agent.id.as_str(), client.agent.name.as_str()),
                    "token.introspected_inactive",
                    Decision::Deny,
                )
                .reason(format!("introspection: the token is inactive ({why})"))
                .details(Value::Object(d));
                ev = ev.agent(owner.as_deref().unwrap_or(client.agent.id.as_str()));
                if let Some(r) = &rec {
                    ev = ev.target(Target::new("token", &r.jti, "access token"));
                }
                (json!({"active": false}), Some(ev))
            }
        };
        let caller_id = client.agent.id.to_string();
        let used = self.m.used_jtis().clone();
        Ok(self.m.submit_grouped_shared_fate(move |tx, now_dt| {
            if let Some(e) = consume_assertion(&used, tx, now_dt, &consume, &caller_id, ACTION)? {
                return Ok(Err(e));
            }
            if let Some(ev) = inactive_event {
                audit::append(tx, now_dt, ev)?;
            }
            Ok(Ok(response))
        }))
    }

    // ----- POST /oauth2/revoke ----------------------------------------------------------------

    /// RFC 7009. Revoking an unknown or invalid token succeeds (§2.2); revoking another
    /// client's token is refused.
    pub fn revoke(&self, body: &[u8]) -> Pending<()> {
        // Every path ends in at most one write: announce it (group_commit).
        let _announced = self.m.announce_write();
        Pending::new(&self.m, self.revoke_rules(body))
    }

    fn revoke_rules(&self, body: &[u8]) -> Result<Ticket<Result<(), OAuthError>>, Stop> {
        const ACTION: &str = "token.revocation_denied";
        let now = self.m.now().timestamp();
        let form =
            Form::parse(body).map_err(|e| self.deny(None, ACTION, e, Default::default(), None))?;
        let client = self.authenticate(&form, ACTION, now)?;
        let agent = &client.agent;
        let consume = (
            agent.name.to_string(),
            client.jti.clone(),
            client.exp + SKEW_SECS,
        );
        let Some(token) = form.secret("token") else {
            let e = OAuthError::InvalidRequest("the token parameter is missing".into());
            return Err(self.deny(Some(agent), ACTION, e, Default::default(), Some(consume)));
        };
        let rec = match self.verify_access_token(token.expose())? {
            Some(j) => {
                let jti = j.claim_str("jti").unwrap_or_default();
                self.readers.with(|c| records::load_token(c, jti))?
            }
            None => None,
        };
        if let Some(r) = &rec
            && r.agent_id != agent.id.as_str()
        {
            let mut d = serde_json::Map::new();
            d.insert("jti".into(), json!(r.jti));
            let e = OAuthError::UnauthorizedClient(
                "this token was issued to another client; only its holder (or a person in the \
                 app) can revoke it"
                    .into(),
            );
            return Err(self.deny(Some(agent), ACTION, e, d, Some(consume)));
        }
        let actor = Actor::agent(agent.id.as_str(), agent.name.as_str());
        let agent_id = agent.id.to_string();
        let used = self.m.used_jtis().clone();
        Ok(self.m.submit_grouped_shared_fate(move |tx, now_dt| {
            if let Some(e) = consume_assertion(&used, tx, now_dt, &consume, &agent_id, ACTION)? {
                return Ok(Err(e));
            }
            if let Some(r) = rec
                && records::revoke_token(tx, &r.jti, now, &consume.0)?
            {
                let mut d = json!({
                    "jti": r.jti,
                    "sub": r.subject,
                    "scopes": r.scope.split_whitespace().collect::<Vec<_>>(),
                    "aud": r.aud,
                    "revoked_by": consume.0,
                });
                if let Some(a) = &r.act {
                    d["act"] = a.clone();
                }
                audit::append(
                    tx,
                    now_dt,
                    NewEvent::new(&actor, "token.revoked", Decision::Allow)
                        .target(Target::new("token", &r.jti, "access token"))
                        .agent(&agent_id)
                        .details(d),
                )?;
            }
            Ok(Ok(()))
        }))
    }
}

/// The grants a token left out, as `(scope list, sentence)`, or `(None, None)`.
fn describe_withheld(
    agent: &ClientAgent,
    withheld: &[policy::Withheld],
) -> (Option<String>, Option<String>) {
    if withheld.is_empty() {
        return (None, None);
    }
    let scopes: Vec<&str> = withheld.iter().map(|w| w.scope.as_str()).collect();
    let mut floors: Vec<String> = withheld
        .iter()
        .map(|w| format!("the connection '{}' requires {}", w.connection, w.floor))
        .collect();
    floors.dedup();
    let sentence = format!(
        "left out {}: the agent '{}' is {} and {}; raise the agent's trust or lower that trust \
         floor to include them",
        scopes.join(", "),
        agent.name,
        agent.trust,
        floors.join(" and ")
    );
    (Some(scopes.join(" ")), Some(sentence))
}

/// A fresh token `jti`: a UUIDv7 (Mandate's clock's milliseconds, then 74 random bits).
/// Time-ordered ids land at the end of `oauth_tokens`' primary-key index, so a group commit's
/// token rows dirty a page or two instead of one random leaf page per token (fewer WAL frames
/// written per commit). The time it reveals is the token's `iat` anyway.
fn time_ordered_jti(now: chrono::DateTime<chrono::Utc>) -> String {
    let ts = uuid::Timestamp::from_unix(
        uuid::NoContext,
        now.timestamp().max(0) as u64,
        now.timestamp_subsec_nanos(),
    );
    uuid::Uuid::new_v7(ts).to_string()
}

/// RFC 7662 §2.2 members for an active token.
fn active_response(j: &Jws, rec: &TokenRecord) -> Value {
    let mut v = json!({
        "active": true,
        "scope": rec.scope,
        "client_id": j.claims.get("client_id").cloned().unwrap_or(Value::Null),
        "sub": rec.subject,
        "aud": j.claims.get("aud").cloned().unwrap_or(Value::Null),
        "iss": j.claims.get("iss").cloned().unwrap_or(Value::Null),
        "exp": rec.expires_at,
        "iat": rec.issued_at,
        "nbf": j.claims.get("nbf").cloned().unwrap_or(Value::Null),
        "jti": rec.jti,
        "token_type": if rec.cnf_jkt.is_some() { "DPoP" } else { "Bearer" },
    });
    if let Some(p) = j.claims.get(PARENTS_CLAIM) {
        v[PARENTS_CLAIM] = p.clone();
    }
    if let Some(a) = &rec.act {
        v["act"] = a.clone();
    }
    if let Some(k) = &rec.cnf_jkt {
        v["cnf"] = json!({"jkt": k});
    }
    v
}

impl Mandate {
    /// Revoke an issued token by its `jti` (for people, through the app or CLI). Audited.
    pub fn revoke_token(&self, jti: &str, reason: &str) -> crate::Result<bool> {
        let actor = self.actor()?;
        let jti = jti.to_string();
        let reason = reason.trim().to_string();
        self.write(|tx, now| {
            let Some(r) = records::load_token(tx, &jti)? else {
                return Err(crate::Error::not_found("token", jti.clone()));
            };
            let changed = records::revoke_token(tx, &jti, now.timestamp(), &actor.name)?;
            if changed {
                let mut ev = NewEvent::new(&actor, "token.revoked", Decision::Allow)
                    .target(Target::new("token", &jti, "access token"))
                    .agent(&r.agent_id)
                    .details(json!({"jti": jti, "sub": r.subject, "scopes": r.scope.split_whitespace().collect::<Vec<_>>(), "aud": r.aud}));
                if !reason.is_empty() {
                    ev = ev.reason(reason.clone());
                }
                audit::append(tx, now, ev)?;
            }
            Ok(changed)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use chrono::{Duration, TimeZone, Utc};

    use super::time_ordered_jti;

    #[test]
    fn token_jtis_sort_by_issue_time_and_never_repeat() {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 23, 7, 0, 0).unwrap();
        let jtis: Vec<String> = (0..200)
            .map(|i| time_ordered_jti(t0 + Duration::milliseconds(i)))
            .collect();
        let mut sorted = jtis.clone();
        sorted.sort();
        assert_eq!(sorted, jtis, "later tokens must sort after earlier ones");
        // Within one millisecond the random bits still keep them apart.
        let same: std::collections::BTreeSet<String> =
            (0..1000).map(|_| time_ordered_jti(t0)).collect();
        assert_eq!(same.len(), 1000);
        let u = uuid::Uuid::parse_str(&jtis[0]).unwrap();
        assert_eq!(u.get_version_num(), 7);
    }
}
