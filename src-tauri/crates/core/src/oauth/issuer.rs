//! The issuer's signing keys as resource servers see them: the JWKS, and rotation.
//!
//! The current key's private half lives in the vault: the OS keychain, or a team server's
//! PKCS#11 token (see `registry::issuer_key` and `vault`). A
//! rotation makes a new key current and moves the old public key to `issuer_keys_retired`,
//! published until every token it signed has expired (at least 24 hours, the longest token
//! lifetime, so that an endpoint in another process that has not yet noticed the rotation
//! cannot mint a token nobody can verify). The old private key is deleted.
//!
//! What it is not: agent keys (see `registry` and `keys`).

use crate::store::{Tx, params};
use ed25519_dalek::VerifyingKey;
use serde::Serialize;
use serde_json::json;

use crate::Mandate;
use crate::audit::{self, Decision, NewEvent, Target};
use crate::error::{Error, Result};
use crate::keys;
use crate::registry::MAX_TTL_SECS;

/// A JSON Web Key Set (RFC 7517 §5) of the issuer's public keys, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct IssuerJwks {
    pub keys: Vec<serde_json::Value>,
}

/// An issuer public key as a JWK.
fn jwk(kid: &str, key: &VerifyingKey) -> serde_json::Value {
    json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": keys::b64url(key.as_bytes()),
        "kid": kid,
        "alg": "EdDSA",
        "use": "sig",
    })
}

/// The retired issuer keys still published at `now`.
pub(crate) fn retired_keys(m: &Mandate, now: i64) -> Result<Vec<(String, VerifyingKey)>> {
    m.read(|tx| retired_keys_on(tx, now))
}

/// [`retired_keys`] on a given connection (the endpoint passes a read-only one).
pub(crate) fn retired_keys_on(conn: &Tx<'_>, now: i64) -> Result<Vec<(String, VerifyingKey)>> {
    let rows = conn.query_map(
        "SELECT kid, public_key FROM issuer_keys_retired WHERE publish_until > ?1
         ORDER BY retired_at DESC",
        params![now],
        |r| Ok((r.get::<String>(0)?, r.get::<Vec<u8>>(1)?)),
    )?;
    let mut out = Vec::new();
    for (kid, pk) in rows {
        let arr: [u8; 32] = pk
            .as_slice()
            .try_into()
            .map_err(|_| Error::Storage("a retired issuer key has the wrong length".into()))?;
        let vk = VerifyingKey::from_bytes(&arr)
            .map_err(|_| Error::Storage("a retired issuer key is not a valid point".into()))?;
        out.push((kid, vk));
    }
    Ok(out)
}

/// The current issuer key id as stored (cheap; no keychain access).
pub(crate) fn current_kid(conn: &Tx<'_>) -> Result<Option<String>> {
    conn.query_opt(
        "SELECT value FROM meta WHERE key = 'issuer_kid'",
        params![],
        |r| r.get(0),
    )
}

impl Mandate {
    /// The issuer's public keys: the current one (created on first use) and every retired
    /// one that may still have tokens outstanding. Needs the keychain for the current key.
    pub fn issuer_jwks(&self) -> Result<IssuerJwks> {
        let current = self.issuer_key()?;
        let mut keys = vec![jwk(&current.kid, &current.public)];
        for (kid, vk) in retired_keys(self, self.now().timestamp())? {
            keys.push(jwk(&kid, &vk));
        }
        Ok(IssuerJwks { keys })
    }

    /// Replace the issuer signing key. The old public key stays in the JWKS until its last
    /// token has expired (and for at least 24 hours). Returns the new `kid`.
    pub fn rotate_issuer_key(&self) -> Result<String> {
        let actor = self.actor()?;
        let old = self.issuer_key()?;
        let kid = self.generate_issuer_key()?.kid;
        let old_kid = old.kid.clone();
        let old_pub = old.public.to_bytes();
        let new_kid = kid.clone();
        let res = self.write(move |tx, now| {
            let cur: Option<String> = tx.query_opt(
                "SELECT value FROM meta WHERE key = 'issuer_kid'",
                params![],
                |r| r.get(0),
            )?;
            if cur.as_deref() != Some(old_kid.as_str()) {
                return Err(Error::Conflict(
                    "the issuer key was rotated by another process meanwhile; nothing was changed"
                        .into(),
                ));
            }
            let last_exp: Option<i64> = tx.query_row(
                "SELECT max(expires_at) FROM oauth_tokens WHERE kid = ?1",
                params![&old_kid],
                |r| r.get(0),
            )?;
            let t = now.timestamp();
            let until = last_exp.unwrap_or(t).max(t + i64::from(MAX_TTL_SECS));
            tx.execute(
                "INSERT INTO issuer_keys_retired (kid, public_key, retired_at, publish_until)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (kid) DO UPDATE SET public_key = excluded.public_key,
                     retired_at = excluded.retired_at, publish_until = excluded.publish_until",
                params![old_kid, old_pub.as_slice(), t, until],
            )?;
            tx.execute(
                "UPDATE meta SET value = ?1 WHERE key = 'issuer_kid'",
                params![&new_kid],
            )?;
            audit::append(
                tx,
                now,
                NewEvent::new(&actor, "issuer.key_rotated", Decision::Allow)
                    .target(Target::new("key", &new_kid, "issuer signing key"))
                    .details(json!({
                        "new_kid": new_kid,
                        "retired_kid": old_kid,
                        "retired_published_until": until,
                    })),
            )?;
            Ok(())
        });
        match res {
            Ok(()) => {
                if let Err(e) = self.destroy_issuer_key(&old.kid) {
                    tracing::warn!(kid = %old.kid, error = %e, "the retired issuer key could not be destroyed in its vault");
                }
                Ok(kid)
            }
            Err(e) => {
                let _ = self.destroy_issuer_key(&kid);
                Err(e)
            }
        }
    }
}
