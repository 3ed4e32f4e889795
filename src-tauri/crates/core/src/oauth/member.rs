//! Team members sign in the way agents do (issue 21 §1): a `private_key_jwt` assertion (RFC
//! 7523) signed with the member's enrolled key gets a short-lived, DPoP-bound (RFC 9449)
//! access token from the server's token endpoint, and every call of the member API carries
//! that token with a fresh DPoP proof.
//!
//! Reused, not reinvented: the assertion's header, `typ`, audience, lifetime and `jti` rules
//! are the agents' (`assertion::check_claims`), the proof checks are `dpop::check`, and both
//! `jti`s go to the same replay log (`replay`) inside the transaction that records the
//! decision. What differs is only whose key signs:
//!
//! - **The client id is `member:NAME`.** Agent names never contain `:`, so a member can never
//!   pass for an agent nor an agent for a member; the token endpoint sends a request here when
//!   its client id (or its assertion's `sub`) has that prefix.
//! - **The token says it is a member's**: `typ` is `mandate-member+jwt` (never `at+jwt`, so
//!   no resource, the broker included, takes it for an agent's token: RFC 8725 §3.11's
//!   explicit typing), `sub` is `member:ID`, `aud` is `ISSUER/team`, and it lives five
//!   minutes. It is bound to the DPoP key (`cnf.jkt`), and names the enrolled key it was
//!   issued for (`mandate_kid`).
//! - **Membership is checked on every request**, not only at issue: a member removed, or a key
//!   revoked, is refused at the next call, whatever tokens they still hold.
//!
//! Every refusal is audited (`member.token_denied`, `team.request_denied`): naming the member
//! when the signature proved who they are, else the team server itself.
//!
//! What it is not: what a member may do once signed in (`team_access.rs`).

use ed25519_dalek::VerifyingKey;
use serde_json::{Value, json};

use super::assertion::{assertion_typ_ok, check_claims};
use super::dpop;
use super::jws::{self, Jws};
use super::service::{HttpContext, TokenService};
use super::{ASSERTION_TYPE_JWT_BEARER, Form, GRANT_CLIENT_CREDENTIALS, OAuthError, SKEW_SECS};
use crate::audit::{self, Actor, Decision, NewEvent, Target};
use crate::model::MemberId;
use crate::secret::Sensitive;
use crate::store::params;
use crate::team::Role;
use crate::team_access::{SignedIn, active_member};

/// The prefix of a member's client id (`member:alice`).
pub const MEMBER_CLIENT_PREFIX: &str = "member:";
/// The `typ` of a member's access token.
pub const MEMBER_TOKEN_TYP: &str = "mandate-member+jwt";
/// How long a member's token lives.
pub const MEMBER_TOKEN_TTL_SECS: i64 = 5 * 60;

/// Whether a token request is a member's: its `client_id`, or its assertion's `sub` (read
/// without checking anything; the member path checks everything).
pub fn is_member_request(body: &[u8]) -> bool {
    let Ok(form) = Form::parse(body) else {
        return false;
    };
    if let Some(c) = form.get("client_id") {
        return c.starts_with(MEMBER_CLIENT_PREFIX);
    }
    form.get("client_assertion")
        .and_then(|a| jws::parse(a).ok())
        .and_then(|j| {
            j.claim_str("sub")
                .map(|s| s.starts_with(MEMBER_CLIENT_PREFIX))
        })
        .unwrap_or(false)
}

/// The audience of members' tokens: the issuer's team API.
pub fn member_audience(issuer: &str) -> String {
    format!("{issuer}/team")
}

/// A member's token, as the token endpoint answers it.
pub struct MemberToken {
    pub access_token: Sensitive<String>,
    pub expires_in: i64,
    pub member: String,
    pub role: Role,
}

impl std::fmt::Debug for MemberToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberToken")
            .field("member", &self.member)
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

impl MemberToken {
    /// The RFC 6749 §5.1 body.
    pub fn to_json(&self) -> Value {
        json!({
            "access_token": self.access_token.expose(),
            "token_type": "DPoP",
            "expires_in": self.expires_in,
            "member": self.member,
            "role": self.role.as_str(),
        })
    }
}

/// Why a member request was refused before any role was considered (HTTP 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotSignedIn(pub String);

/// A member as the token endpoint reads them: id, role, removed at, the named key and when it
/// was revoked.
type MemberRow = (
    String,
    Option<String>,
    Option<String>,
    Option<Vec<u8>>,
    Option<String>,
);

fn nobody() -> Actor {
    Actor::system("team-server", "team server, no member identified")
}

impl TokenService {
    /// `POST /oauth2/token` for a member: `client_credentials` with `private_key_jwt` signed by
    /// the member's enrolled key, and a DPoP proof (required). Every answer, refusals
    /// included, leaves after its audit event committed.
    pub fn member_token(&self, body: &[u8], http: &HttpContext) -> Result<MemberToken, OAuthError> {
        let m = self.mandate().clone();
        let now = m.now().timestamp();
        // Checks that need no registry: refused as the team server, without a member.
        let pre = self.member_token_shape(body, http, now);
        let (jws, name, kid, proof) = match pre {
            Ok(x) => x,
            Err(e) => return self.deny_member_token(None, e),
        };
        let used = m.used_jtis().clone();
        let issuer = self.config().issuer.clone();
        let jti_assertion = jws.claim_str("jti").unwrap_or_default().to_string();
        let assertion_exp = jws::numeric_date(jws.claims.get("exp")).unwrap_or(now);
        let signer = self.signer().map_err(OAuthError::from)?;
        let out = m.write(|tx, now_dt| {
            let row: Option<MemberRow> = tx.query_opt(
                "SELECT m.id, r.role, r.removed_at, k.public_key, k.revoked_at
                     FROM members m
                     LEFT JOIN team_roles r ON r.member_id = m.id
                     LEFT JOIN member_keys k ON k.member_id = m.id AND k.kid = ?2
                     WHERE m.name = ?1",
                params![name, kid],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )?;
            let refuse =
                |who: &Actor, e: OAuthError| -> crate::Result<Result<MemberToken, OAuthError>> {
                    audit::append(
                        tx,
                        now_dt,
                        NewEvent::new(who, "member.token_denied", Decision::Deny)
                            .reason(e.to_string())
                            .details(json!({"client_id": format!("{MEMBER_CLIENT_PREFIX}{name}")})),
                    )?;
                    Ok(Err(e))
                };
            let Some((id, role, removed, pk, revoked)) = row else {
                return refuse(
                    &nobody(),
                    OAuthError::InvalidClient("no team member with this client_id".into()),
                );
            };
            // The signature first: until it verifies, nobody is identified.
            let key = pk
                .as_deref()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .and_then(|b| VerifyingKey::from_bytes(&b).ok());
            let Some(key) = key else {
                return refuse(
                    &nobody(),
                    OAuthError::InvalidClient(
                        "the client assertion was refused: its \"kid\" names no key enrolled for \
                         this member"
                            .into(),
                    ),
                );
            };
            if jws.verify(&key).is_err() {
                return refuse(
                    &nobody(),
                    OAuthError::InvalidClient(
                        "the client assertion was refused: its signature does not verify".into(),
                    ),
                );
            }
            let actor = Actor::member(&id, &name);
            let role = match (role.as_deref().and_then(Role::parse), removed, revoked) {
                (Some(r), None, None) => r,
                (None, _, _) => {
                    return refuse(
                        &actor,
                        OAuthError::InvalidClient(format!(
                            "{name} has not joined the team; redeem an invite with `mandate team \
                             join` first"
                        )),
                    );
                }
                (Some(_), Some(_), _) | (Some(_), None, Some(_)) => {
                    return refuse(
                        &actor,
                        OAuthError::InvalidClient(format!(
                            "{name} was removed from the team (or this key was replaced); ask an \
                             admin for a new invite"
                        )),
                    );
                }
            };
            let client = format!("{MEMBER_CLIENT_PREFIX}{name}");
            if !used.consume(tx, &client, &jti_assertion, assertion_exp, now)? {
                return refuse(
                    &actor,
                    OAuthError::InvalidClient(
                        "this client assertion was already used (replay); sign a new one for every \
                         request"
                            .into(),
                    ),
                );
            }
            if !used.consume(
                tx,
                &format!("dpop:{}", proof.jkt),
                &proof.jti,
                proof.iat + dpop::IAT_WINDOW_SECS + SKEW_SECS,
                now,
            )? {
                return refuse(
                    &actor,
                    OAuthError::InvalidDpopProof(
                        "the DPoP proof's jti was already used (replay); make a new proof for \
                         every request"
                            .into(),
                    ),
                );
            }
            let jti = uuid::Uuid::now_v7().to_string();
            let exp = now + MEMBER_TOKEN_TTL_SECS;
            let claims = json!({
                "iss": issuer,
                "sub": format!("{MEMBER_CLIENT_PREFIX}{id}"),
                "aud": member_audience(&issuer),
                "iat": now, "nbf": now, "exp": exp, "jti": jti,
                "client_id": client,
                "mandate_member": name,
                "mandate_kid": kid,
                "cnf": {"jkt": proof.jkt},
            });
            let header = json!({"alg": "EdDSA", "typ": MEMBER_TOKEN_TYP, "kid": signer.kid});
            let token = jws::sign_with(&header, &claims, |msg| signer.sign(msg))?;
            audit::append(
                tx,
                now_dt,
                NewEvent::new(&actor, "member.token_issued", Decision::Allow)
                    .target(Target::new("member", &id, &name))
                    .details(json!({
                        "jti": jti, "exp": exp, "kid": kid, "role": role.as_str(),
                        "jkt": proof.jkt,
                    })),
            )?;
            Ok(Ok(MemberToken {
                access_token: Sensitive::new(token),
                expires_in: MEMBER_TOKEN_TTL_SECS,
                member: name.clone(),
                role,
            }))
        });
        match out {
            Ok(r) => r,
            Err(e) => Err(OAuthError::from(e)),
        }
    }

    /// The checks of a member's token request that need no registry.
    fn member_token_shape(
        &self,
        body: &[u8],
        http: &HttpContext,
        now: i64,
    ) -> Result<(Jws, String, String, dpop::DpopProof), OAuthError> {
        let form = Form::parse(body)?;
        if form.get("grant_type") != Some(GRANT_CLIENT_CREDENTIALS) {
            return Err(OAuthError::UnsupportedGrantType(
                "team members get tokens with grant_type client_credentials".into(),
            ));
        }
        if form.get("client_assertion_type") != Some(ASSERTION_TYPE_JWT_BEARER) {
            return Err(OAuthError::InvalidClient(
                "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
                    .into(),
            ));
        }
        let refused = |why: &dyn std::fmt::Display| {
            OAuthError::InvalidClient(format!("the client assertion was refused: {why}"))
        };
        let assertion = form.secret("client_assertion").ok_or_else(|| {
            OAuthError::InvalidClient(
                "client authentication is required: a client_assertion signed with the member's \
                 key"
                .into(),
            )
        })?;
        let j = jws::parse(assertion.expose()).map_err(|e| refused(&e))?;
        j.check_common_header(false).map_err(|e| refused(&e))?;
        assertion_typ_ok(j.header.get("typ")).map_err(|e| refused(&e))?;
        let (Some(iss), Some(sub)) = (j.claim_str("iss"), j.claim_str("sub")) else {
            return Err(refused(
                &"it must carry \"iss\" and \"sub\" (the client_id)",
            ));
        };
        if iss != sub {
            return Err(refused(
                &"its \"iss\" and \"sub\" differ; both must be the client_id",
            ));
        }
        if let Some(c) = form.get("client_id")
            && c != sub
        {
            return Err(refused(&"its \"sub\" is not the client_id parameter"));
        }
        let name = sub
            .strip_prefix(MEMBER_CLIENT_PREFIX)
            .filter(|n| crate::model::MemberName::parse(n).is_ok_and(|p| p.as_str() == *n))
            .ok_or_else(|| refused(&"its \"sub\" is not member:NAME"))?
            .to_string();
        let kid = j
            .header_str("kid")
            .ok_or_else(|| refused(&"it must name the member's key with \"kid\""))?
            .to_string();
        check_claims(self.config(), &j, now).map_err(|e| refused(&e))?;
        let proof = match http.dpop.as_slice() {
            [one] => dpop::check(
                one.expose(),
                dpop::Expect {
                    htm: &http.method,
                    htu: &http.url,
                    now,
                    access_token: None,
                    jkt: None,
                },
            )
            .map_err(OAuthError::InvalidDpopProof)?,
            [] => {
                return Err(OAuthError::InvalidDpopProof(
                    "a team member's token must be DPoP-bound: send a DPoP proof header".into(),
                ));
            }
            _ => {
                return Err(OAuthError::InvalidDpopProof(
                    "send exactly one DPoP header".into(),
                ));
            }
        };
        Ok((j, name, kid, proof))
    }

    /// Audit a refusal made before any member was identified, then return it.
    fn deny_member_token<T>(&self, who: Option<Actor>, e: OAuthError) -> Result<T, OAuthError> {
        let ev = NewEvent::new(
            &who.unwrap_or_else(nobody),
            "member.token_denied",
            Decision::Deny,
        )
        .reason(e.to_string());
        match self.mandate().write(|tx, now| audit::append(tx, now, ev)) {
            Ok(_) => Err(e),
            Err(s) => Err(OAuthError::from(s)),
        }
    }

    /// Check a member API request: `Authorization: DPoP TOKEN` from this issuer for the team
    /// API, unexpired, with one fresh DPoP proof for this method and URL made with the key the
    /// token is bound to, from a member who is on the team now with the key the token names.
    /// The proof's `jti` is used up in the same transaction. The outer `Err` is a store
    /// failure; the inner one a refusal already audited (HTTP 401).
    pub fn member_session(
        &self,
        authorization: Option<&str>,
        dpop_headers: &[Sensitive<String>],
        htm: &str,
        htu: &str,
    ) -> crate::Result<Result<SignedIn, NotSignedIn>> {
        let m = self.mandate().clone();
        let now = m.now().timestamp();
        let checked = self.member_token_claims(authorization, dpop_headers, htm, htu, now);
        let (member_id, kid, proof, expires_at) = match checked {
            Ok(x) => x,
            Err(why) => {
                let ev = NewEvent::new(&nobody(), "team.request_denied", Decision::Deny)
                    .reason(why.clone())
                    .details(json!({"request": format!("{htm} {}", path_of(htu))}));
                m.write(|tx, now| audit::append(tx, now, ev))?;
                return Ok(Err(NotSignedIn(why)));
            }
        };
        let used = m.used_jtis().clone();
        m.write(|tx, now_dt| {
            let found = active_member(tx, &member_id, &kid)?;
            let refuse =
                |who: Actor, why: String| -> crate::Result<Result<SignedIn, NotSignedIn>> {
                    audit::append(
                        tx,
                        now_dt,
                        NewEvent::new(&who, "team.request_denied", Decision::Deny)
                            .reason(why.clone())
                            .details(json!({"request": format!("{htm} {}", path_of(htu))})),
                    )?;
                    Ok(Err(NotSignedIn(why)))
                };
            let name: Option<String> = tx.query_opt(
                "SELECT name FROM members WHERE id = ?1",
                params![member_id],
                |r| r.get(0),
            )?;
            let actor = match &name {
                Some(n) => Actor::member(&member_id, n),
                None => nobody(),
            };
            let Some((name, role, _)) = found else {
                return refuse(
                    actor,
                    "this member is no longer on the team (removed, or their key was replaced); \
                     ask an admin for a new invite"
                        .into(),
                );
            };
            if !used.consume(
                tx,
                &format!("dpop:{}", proof.jkt),
                &proof.jti,
                proof.iat + dpop::IAT_WINDOW_SECS + SKEW_SECS,
                now,
            )? {
                return refuse(
                    actor,
                    "the DPoP proof's jti was already used (replay); make a new proof for every \
                     request"
                        .into(),
                );
            }
            Ok(Ok(SignedIn {
                member: MemberId(member_id.clone()),
                name,
                role,
                kid: kid.clone(),
                expires_at,
            }))
        })
    }

    /// The token's and the proof's checks that need no registry: (member id, kid, proof, the
    /// token's expiry).
    fn member_token_claims(
        &self,
        authorization: Option<&str>,
        dpop_headers: &[Sensitive<String>],
        htm: &str,
        htu: &str,
        now: i64,
    ) -> Result<(String, String, dpop::DpopProof, i64), String> {
        let token = authorization
            .and_then(|a| a.strip_prefix("DPoP "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                "sign in first: send Authorization: DPoP with a team member's token (`mandate \
                 team` does this for you)"
                    .to_string()
            })?;
        let bad = || {
            "the access token is not a team member's token from this server, or it has expired; \
             get a new one"
                .to_string()
        };
        let j = jws::parse(token).map_err(|_| bad())?;
        j.check_common_header(false).map_err(|_| bad())?;
        if j.header_str("typ") != Some(MEMBER_TOKEN_TYP) {
            return Err(bad());
        }
        let kid = j.header_str("kid").ok_or_else(bad)?;
        let key = self
            .verifying_key(kid)
            .map_err(|e| e.to_string())?
            .ok_or_else(bad)?;
        j.verify(&key).map_err(|_| bad())?;
        let issuer = &self.config().issuer;
        if j.claim_str("iss") != Some(issuer.as_str())
            || j.claim_str("aud") != Some(member_audience(issuer).as_str())
        {
            return Err(bad());
        }
        let exp = jws::numeric_date(j.claims.get("exp")).ok_or_else(bad)?;
        if exp <= now {
            return Err(
                "the team member's token has expired; get a new one (`mandate team` does this \
                 for you)"
                    .into(),
            );
        }
        let member_id = j
            .claim_str("sub")
            .and_then(|s| s.strip_prefix(MEMBER_CLIENT_PREFIX))
            .ok_or_else(bad)?
            .to_string();
        let member_kid = j.claim_str("mandate_kid").ok_or_else(bad)?.to_string();
        let jkt = j
            .claims
            .get("cnf")
            .and_then(|c| c.get("jkt"))
            .and_then(Value::as_str)
            .ok_or_else(bad)?;
        let proof = match dpop_headers {
            [one] => dpop::check(
                one.expose(),
                dpop::Expect {
                    htm,
                    htu,
                    now,
                    access_token: Some(token),
                    jkt: Some(jkt),
                },
            )?,
            [] => {
                return Err(
                    "a team member's token is DPoP-bound: send a DPoP proof with every request"
                        .into(),
                );
            }
            _ => return Err("send exactly one DPoP header".into()),
        };
        Ok((member_id, member_kid, proof, exp))
    }
}

/// The path of a URL, for audit details (never its query).
fn path_of(url: &str) -> String {
    url::Url::parse(url)
        .map(|u| u.path().chars().take(200).collect())
        .unwrap_or_default()
}
