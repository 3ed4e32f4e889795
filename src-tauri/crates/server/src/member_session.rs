//! The member's session with the team server they joined, shared by the CLI (`mandate team`)
//! and the desktop app's team workspace.
//!
//! - [`join`]: make the member key in the OS keychain, redeem the invite, check the server
//!   enrolled that key, and remember the server and how its certificate is trusted. A refusal
//!   leaves nothing behind (the key made for the attempt is discarded).
//! - [`MemberSession`]: signed in as this machine's member. The DPoP-bound access token is
//!   cached in the keychain and renewed a minute before it expires; a request refused with
//!   `invalid_token` (the server's issuer key rotated, say) is tried once more with a new one.
//!   [`MemberSession::watch`] follows the event stream.
//!
//! What it is not: where the rules are (the server's) or how answers are shown (the CLI's
//! tables, the app's screens).

use std::sync::Arc;

use ed25519_dalek::SigningKey;
use mandate_core::Mandate;
use mandate_core::secret::Sensitive;
use mandate_core::team_client::{Membership, ServerTrustRecord};
use serde_json::Value;

use crate::client::ClientError;
use crate::member_client::{self, MemberKey, Method, StreamEnd, TeamEvent};
use crate::remote::{RemoteServer, ServerTrust};

/// Seconds before expiry at which a cached token is renewed.
pub const RENEW_MARGIN_SECS: i64 = 60;

/// Why a member's request did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The server refused, could not be reached, or answered nonsense.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// This machine's store or keychain failed.
    #[error(transparent)]
    Core(#[from] mandate_core::Error),
    /// This installation has not joined a team, or its record is unusable.
    #[error("{0}")]
    NotJoined(String),
}

/// The team server `url`, trusted as `trust` says.
pub fn server_of(url: &str, trust: &ServerTrustRecord) -> Result<RemoteServer, SessionError> {
    let trust = ServerTrust::from_record(trust).map_err(SessionError::NotJoined)?;
    RemoteServer::new(url, trust).map_err(SessionError::NotJoined)
}

/// Join the team server at `url` with the one-time invite `code`: the member key is made
/// (and kept in the keychain) before anything is sent; on any refusal it is discarded and
/// nothing is remembered.
pub async fn join(
    m: &Arc<Mandate>,
    url: &str,
    trust: ServerTrustRecord,
    code: Sensitive<String>,
) -> Result<Membership, SessionError> {
    let server = server_of(url, &trust)?;
    let key = m.new_member_key()?;
    let answer = member_client::join(&server, &code, &key.public_key).await;
    let v = match answer {
        Ok(v) => v,
        Err(e) => {
            let _ = m.discard_member_key(&key.kid);
            return Err(e.into());
        }
    };
    if v["kid"].as_str() != Some(key.kid.as_str()) {
        let _ = m.discard_member_key(&key.kid);
        return Err(ClientError::BadAnswer(
            "the team server enrolled another key than the one sent; nothing was kept".into(),
        )
        .into());
    }
    let membership = Membership {
        url: server.url().to_string(),
        member: v["member"].as_str().unwrap_or_default().to_string(),
        role: v["role"].as_str().unwrap_or_default().to_string(),
        kid: key.kid.clone(),
        trust,
        joined_at: m.now().to_rfc3339(),
    };
    m.record_membership(&membership)?;
    Ok(membership)
}

/// This machine, enrolled as a witness of the team's log.
#[derive(Debug, Clone)]
pub struct EnrolledWitness {
    pub name: String,
    /// The checkpoint it cosigned at once.
    pub cosigned_size: u64,
}

/// Signed in as this machine's member of the team server they joined.
pub struct MemberSession {
    m: Arc<Mandate>,
    pub membership: Membership,
    pub server: RemoteServer,
    key: SigningKey,
}

impl std::fmt::Debug for MemberSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberSession")
            .field("server", &self.membership.url)
            .field("member", &self.membership.member)
            .finish_non_exhaustive()
    }
}

impl MemberSession {
    /// The session of the team this installation joined, or `None` when it joined none.
    pub fn open(m: Arc<Mandate>) -> Result<Option<MemberSession>, SessionError> {
        let Some(membership) = m.team_membership()? else {
            return Ok(None);
        };
        let server = server_of(&membership.url, &membership.trust)?;
        let key = m.member_signing_key(&membership.kid)?;
        Ok(Some(MemberSession {
            m,
            membership,
            server,
            key,
        }))
    }

    /// The installation this session belongs to.
    pub fn mandate(&self) -> &Arc<Mandate> {
        &self.m
    }

    /// The cached token, or a new one (`fresh`: always a new one).
    pub async fn token(&self, fresh: bool) -> Result<Sensitive<String>, SessionError> {
        let kid = &self.membership.kid;
        if !fresh && let Some(t) = self.m.cached_member_token(kid, RENEW_MARGIN_SECS)? {
            return Ok(t);
        }
        let now = self.m.now();
        let t = member_client::member_token(
            &self.server,
            &MemberKey {
                name: &self.membership.member,
                kid,
                key: &self.key,
            },
            now.timestamp(),
        )
        .await?;
        self.m
            .cache_member_token(kid, &t.token, now + chrono::Duration::seconds(t.expires_in))?;
        Ok(t.token)
    }

    /// One member API request (`path` with its query), signed in.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, SessionError> {
        let token = self.token(false).await?;
        let ask = |token: Sensitive<String>| {
            let method = method.clone();
            async move {
                member_client::call(
                    &self.server,
                    &token,
                    &self.key,
                    method,
                    path,
                    body,
                    self.m.now().timestamp(),
                )
                .await
            }
        };
        match ask(token).await {
            // A cached token the server no longer takes: once more with a new one; a removed
            // member is refused at the token endpoint then.
            Err(ClientError::Refused { error, .. }) if error == "invalid_token" => {
                let _ = self.m.forget_member_token(&self.membership.kid);
                let token = self.token(true).await?;
                Ok(ask(token).await?)
            }
            other => Ok(other?),
        }
    }

    /// Follow the event stream after `after` (else from now) until it ends; `fresh` asks for a
    /// new token first (after `token_expired`); `on_open` runs once the server accepted it.
    pub async fn watch(
        &self,
        after: Option<u64>,
        fresh: bool,
        on_open: impl FnOnce() + Send,
        on_event: impl FnMut(TeamEvent) + Send,
    ) -> Result<StreamEnd, SessionError> {
        let token = self.token(fresh).await?;
        Ok(member_client::events(
            &self.server,
            &token,
            &self.key,
            after,
            self.m.now().timestamp(),
            on_open,
            on_event,
        )
        .await?)
    }

    /// Make (or reuse) this machine's witness key, register it with the team server in the
    /// member's name (already registered with the same key is fine), then cosign the log's
    /// newest checkpoint once. The default name is the server's host, the member and this
    /// installation (`mandate.acme.internal/alice-3f2a9c`).
    pub async fn enrol_witness(&self, name: Option<&str>) -> Result<EnrolledWitness, SessionError> {
        let m = &self.m;
        let key = match (m.witness_key(None), name) {
            (Ok((key, _)), None) => key,
            (_, Some(n)) => m.witness_key(Some(n))?.0,
            (Err(_), None) => {
                let install: String = m
                    .install_id()
                    .chars()
                    .filter(char::is_ascii_alphanumeric)
                    .take(6)
                    .collect();
                let name = format!(
                    "{}/{}-{install}",
                    self.server.host(),
                    self.membership.member
                );
                m.witness_key(Some(&name))?.0
            }
        };
        let body = serde_json::json!({"name": key.name, "public_key": key.vkey()});
        match self
            .call(Method::POST, "/team/v1/witnesses", Some(&body))
            .await
        {
            Ok(_) => {}
            // Enrolled before (a second enrol, or a join after `forget`): the same key is fine.
            Err(SessionError::Client(ClientError::Refused { error, .. }))
                if error == "conflict" =>
            {
                let listed = self.call(Method::GET, "/team/v1/witnesses", None).await?;
                let same = listed.as_array().into_iter().flatten().any(|w| {
                    w["vkey"].as_str() == Some(key.vkey().as_str()) && w["removed_at"].is_null()
                });
                if !same {
                    return Err(ClientError::Refused {
                        error: "conflict".into(),
                        description: format!(
                            "another witness is registered as '{}'; choose another name",
                            key.name
                        ),
                    }
                    .into());
                }
            }
            Err(e) => return Err(e),
        }
        let done = crate::witness_client::sync(m.clone(), &self.server, None)
            .await
            .map_err(|e| match e {
                crate::witness_client::SyncError::Client(c) => SessionError::Client(c),
                crate::witness_client::SyncError::Core(c) => SessionError::Core(c),
                other => SessionError::Client(ClientError::BadAnswer(other.to_string())),
            })?;
        Ok(EnrolledWitness {
            name: key.name,
            cosigned_size: done.cosigned.size,
        })
    }

    /// Forget the cached token (the server no longer takes it).
    pub fn forget_token(&self) {
        let _ = self.m.forget_member_token(&self.membership.kid);
    }
}
