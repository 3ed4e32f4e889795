//! The member's side of a team server, on their own machine: which server they joined, as
//! whom, how its certificate is trusted, their member key and their cached access token.
//!
//! - **The member key** is an Ed25519 key made on this machine and kept only in the OS keychain
//!   (`<install id>/member-key/<kid>`, as agents' generated keys are kept); the server holds
//!   only its public half.
//! - **The membership** (URL, member name, role, key id, trust in the server's certificate: a
//!   CA's PEM or a certificate fingerprint, both public) is the meta row `team_membership`,
//!   written with a `team.joined` event naming the person who joined.
//! - **The access token** is cached in the keychain beside the key (`team-token/<kid>`), and
//!   reused until a minute before it expires, so a burst of `mandate team` commands signs one
//!   assertion, not one each.
//!
//! What it is not: the HTTP client (`mandate-server`'s `member_client`) or the server's rules.

use chrono::{DateTime, Utc};
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::Mandate;
use crate::audit::{self, Decision, NewEvent, Target};
use crate::error::{Error, Result};
use crate::keys;
use crate::secret::{SecretRef, Sensitive};
use crate::store::params;

/// How this machine trusts the team server's certificate.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum ServerTrustRecord {
    /// These CA certificates (PEM), alone.
    Ca(String),
    /// Exactly the certificate with this SHA-256 (hex).
    Fingerprint(String),
    /// The public Web PKI roots.
    WebPki,
}

/// The team server this machine's person joined.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Membership {
    pub url: String,
    pub member: String,
    pub role: String,
    pub kid: String,
    pub trust: ServerTrustRecord,
    pub joined_at: String,
}

fn key_ref(kid: &str) -> SecretRef {
    SecretRef::member_key(kid)
}

fn token_ref(kid: &str) -> SecretRef {
    SecretRef::team_token(kid)
}

/// A member key made and kept in the keychain, not yet enrolled: [`Mandate::discard_member_key`]
/// removes it if the server refuses.
#[derive(Debug)]
pub struct PendingMemberKey {
    pub kid: String,
    /// base64url of the 32-byte public key, as `POST /team/join` takes it.
    pub public_key: String,
}

impl Mandate {
    /// Make a new Ed25519 member key and keep it in the keychain (before anything is sent).
    pub fn new_member_key(&self) -> Result<PendingMemberKey> {
        let key = keys::generate();
        let kid = keys::thumbprint(&key.verifying_key());
        self.keychain_set(key_ref(&kid), &keys::signing_key_to_secret(&key))?;
        Ok(PendingMemberKey {
            kid,
            public_key: keys::b64url(key.verifying_key().as_bytes()),
        })
    }

    /// Forget a member key the server did not enrol.
    pub fn discard_member_key(&self, kid: &str) -> Result<()> {
        self.keychain_delete(key_ref(kid))
    }

    /// Record that this machine's person joined `m.url` as `m.member` (`team.joined`). A
    /// membership of another server or key is replaced; its key is deleted from the keychain.
    pub fn record_membership(&self, m: &Membership) -> Result<()> {
        let actor = self.actor()?;
        let old = self.team_membership()?;
        let body = serde_json::to_string(m).map_err(|e| Error::Storage(e.to_string()))?;
        self.write(|tx, now| {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('team_membership', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![body],
            )?;
            audit::append(
                tx,
                now,
                NewEvent::new(&actor, "team.joined", Decision::Allow)
                    .target(Target::new("server", &m.url, "team server"))
                    .details(json!({
                        "member": m.member, "role": m.role, "kid": m.kid,
                    })),
            )?;
            Ok(())
        })?;
        if let Some(o) = old
            && o.kid != m.kid
        {
            let _ = self.keychain_delete(key_ref(&o.kid));
            let _ = self.keychain_delete(token_ref(&o.kid));
        }
        Ok(())
    }

    /// The team server this machine's person joined, if any.
    pub fn team_membership(&self) -> Result<Option<Membership>> {
        let raw: Option<String> = self.read(|tx| {
            tx.query_opt(
                "SELECT value FROM meta WHERE key = 'team_membership'",
                params![],
                |r| r.get(0),
            )
        })?;
        raw.map(|r| {
            serde_json::from_str(&r)
                .map_err(|e| Error::Storage(format!("the team membership is unreadable ({e})")))
        })
        .transpose()
    }

    /// The member key of `kid`, from the keychain.
    pub fn member_signing_key(&self, kid: &str) -> Result<SigningKey> {
        let s = self.keychain_get(key_ref(kid))?.ok_or_else(|| {
            Error::Conflict(
                "this machine's member key is not in the OS keychain any more; ask an admin for \
                 a new invite and join again (`mandate team join URL CODE`)"
                    .into(),
            )
        })?;
        keys::signing_key_from_secret(&s)
    }

    /// The cached access token for `kid`, if it is valid for at least `margin` more seconds.
    pub fn cached_member_token(&self, kid: &str, margin: i64) -> Result<Option<Sensitive<String>>> {
        let Some(raw) = self.keychain_get(token_ref(kid))? else {
            return Ok(None);
        };
        #[derive(Deserialize)]
        struct Cached {
            token: String,
            exp: i64,
        }
        let Ok(c) = serde_json::from_str::<Cached>(raw.expose()) else {
            return Ok(None);
        };
        if c.exp - margin <= self.now().timestamp() {
            return Ok(None);
        }
        Ok(Some(Sensitive::new(c.token)))
    }

    /// Cache `token`, valid until `exp`, for `kid`.
    pub fn cache_member_token(
        &self,
        kid: &str,
        token: &Sensitive<String>,
        exp: DateTime<Utc>,
    ) -> Result<()> {
        let v =
            Sensitive::new(json!({"token": token.expose(), "exp": exp.timestamp()}).to_string());
        self.keychain_set(token_ref(kid), &v)
    }

    /// Drop the cached token for `kid` (the server refused it).
    pub fn forget_member_token(&self, kid: &str) -> Result<()> {
        self.keychain_delete(token_ref(kid))
    }
}
