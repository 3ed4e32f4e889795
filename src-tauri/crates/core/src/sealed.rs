//! Secrets sealed in the database, for a headless team server that has no OS keychain.
//!
//! A laptop keeps connection credentials (and generated agent keys) in the OS keychain. A team
//! server has none, and several server instances must read the same secrets, so they live in
//! the shared database, each sealed with AES-256-GCM under a key generated inside the server's
//! PKCS#11 token (non-extractable: the plain key never exists outside the token). The database
//! holds only nonce, ciphertext and tag (`sealed_secrets`, schema 10); whoever reads it, or a
//! backup of it, learns nothing without the token. The account name is the authenticated data,
//! so a sealed value copied to another account's row does not open.
//!
//! [`SealedKeychain`] implements the [`Keychain`] trait, so the core stores and reads secrets
//! exactly as it does with the OS keychain. It uses its own connection to the database, as an
//! OS keychain is a separate store: a secret is written before the registry transaction that
//! refers to it and removed again if that fails (invariant 4).
//!
//! The sealing key is rotated with [`SealedKeychain::rotate`]: a new key is made in the token,
//! every sealed secret is opened and sealed again under it in one transaction (with its audit
//! event), and only after that commits is the old key destroyed. A writer that sealed under the
//! old key waits for the rotation's write lock and then reads the new key name, so no secret is
//! left under a destroyed key.
//!
//! What it is not: the cipher. [`Sealer`] is implemented by the `mandate-pkcs11` crate (the
//! token does the AES-GCM); this module only decides what is sealed under which key, and
//! where the sealed bytes go.

use std::fmt;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::audit::{self, Actor, Decision, NewEvent, Target};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::secret::{Keychain, KeychainError, SecretRef, Sensitive};
use crate::store::{Conn, Store, Tx, params};

/// Authenticated-data prefix: a sealed value is bound to this format and its account.
const AAD_PREFIX: &[u8] = b"mandate-sealed-secret/v1\0";

/// Encrypts and decrypts under keys that never leave their token.
pub trait Sealer: Send + Sync + fmt::Debug {
    /// Make a new AES-256 key named `name` inside the token (non-extractable).
    fn generate(&self, name: &str) -> Result<(), KeychainError>;
    /// Seal `plain` under key `name` with `aad` authenticated: nonce, ciphertext and tag.
    fn seal(&self, name: &str, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, KeychainError>;
    /// Open what [`Sealer::seal`] returned; fails if any byte or the `aad` differs.
    fn open(
        &self,
        name: &str,
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Sensitive<Vec<u8>>, KeychainError>;
    /// Destroy key `name`; a missing key is not an error.
    fn destroy(&self, name: &str) -> Result<(), KeychainError>;
    /// A one-line description ("PKCS#11 token 'mandate' (SoftHSM)").
    fn describe(&self) -> String;
}

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealingRotation {
    /// The new key's name in the token.
    pub key: String,
    /// The keys destroyed after every secret moved off them.
    pub retired: Vec<String>,
    /// How many secrets were sealed again.
    pub secrets: usize,
}

/// The [`Keychain`] of a team server: secrets sealed in the database under a token's key.
pub struct SealedKeychain {
    conn: Mutex<Conn>,
    sealer: Arc<dyn Sealer>,
    install_id: String,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for SealedKeychain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedKeychain")
            .field("sealer", &self.sealer)
            .finish_non_exhaustive()
    }
}

fn aad(account: &str) -> Vec<u8> {
    let mut a = AAD_PREFIX.to_vec();
    a.extend_from_slice(account.as_bytes());
    a
}

fn storage(e: Error) -> KeychainError {
    KeychainError::Failed(format!(
        "the sealed secrets could not be read or written: {e}"
    ))
}

impl SealedKeychain {
    /// Seal secrets in `store` (on a connection of its own) with `sealer`; `install_id` names
    /// the keys made in the token.
    pub fn open(
        store: &Store,
        install_id: &str,
        sealer: Arc<dyn Sealer>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        Ok(SealedKeychain {
            conn: Mutex::new(store.connect()?),
            sealer,
            install_id: install_id.to_string(),
            clock,
        })
    }

    /// The token the sealing keys live in.
    pub fn sealer(&self) -> &Arc<dyn Sealer> {
        &self.sealer
    }

    /// A write transaction on this keychain's own connection (the store's writer lock).
    fn with_tx<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        self.conn
            .lock()
            .map_err(|_| Error::Storage("an earlier sealed write panicked".into()))?
            .write(f)
    }

    /// Make sure the sealing key exists, made by `actor` if it is made now (`mandate server
    /// init` calls this, so the key is made by the admin who set the server up rather than by
    /// whoever stores the first secret). Returns its name.
    ///
    /// `write` runs its argument in the installation's write transaction (`Mandate::write`),
    /// so the event is tagged like every other (audit/tag.rs): a transaction of this
    /// keychain's own would leave it untagged, and verification would refuse it.
    pub fn ensure_key<W>(&self, actor: &Actor, write: W) -> Result<String>
    where
        W: FnOnce(&mut dyn FnMut(&Tx<'_>) -> Result<String>) -> Result<String>,
    {
        let now = self.clock.now();
        write(&mut |tx| self.current_key(tx, now, actor))
    }

    /// The current sealing key, made in the token (and recorded, audited) on first use.
    fn current_key(&self, tx: &Tx<'_>, now: DateTime<Utc>, actor: &Actor) -> Result<String> {
        let cur: Option<String> = tx.query_opt(
            "SELECT value FROM meta WHERE key = 'sealing_key'",
            params![],
            |r| r.get(0),
        )?;
        if let Some(k) = cur {
            return Ok(k);
        }
        let name = self.new_key_name();
        self.sealer.generate(&name)?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('sealing_key', ?1)",
            params![name],
        )?;
        audit::append(
            tx,
            now,
            NewEvent::new(actor, "secrets.sealing_key_created", Decision::Allow)
                .target(Target::new("key", &name, "secret sealing key"))
                .details(json!({"key": name, "alg": "A256GCM", "vault": self.sealer.describe()})),
        )?;
        Ok(name)
    }

    fn new_key_name(&self) -> String {
        format!(
            "{}/sealing-key/{}",
            self.install_id,
            uuid::Uuid::now_v7().simple()
        )
    }

    /// Make a new sealing key, seal every secret again under it in one transaction (audited as
    /// `secrets.sealing_key_rotated`, naming `actor`), then destroy the keys no secret uses any
    /// more. If anything fails before the commit, nothing changed and the new key is destroyed.
    /// `write` runs the re-sealing in the installation's write transaction, as for
    /// [`SealedKeychain::ensure_key`], so its event is tagged.
    pub fn rotate<W>(&self, actor: &Actor, write: W) -> Result<SealingRotation>
    where
        W: FnOnce(&mut dyn FnMut(&Tx<'_>) -> Result<SealingRotation>) -> Result<SealingRotation>,
    {
        let now = self.clock.now();
        let name = self.new_key_name();
        self.sealer.generate(&name)?;
        let res = write(&mut |tx| {
            let old: Option<String> = tx.query_opt(
                "SELECT value FROM meta WHERE key = 'sealing_key'",
                params![],
                |r| r.get(0),
            )?;
            let rows: Vec<(String, String, Vec<u8>)> = tx.query_map(
                "SELECT account, key_name, sealed FROM sealed_secrets ORDER BY account",
                params![],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            let mut retired: Vec<String> = old.into_iter().collect();
            for (account, key, sealed) in &rows {
                let plain = self.sealer.open(key, &aad(account), sealed)?;
                let again = self.sealer.seal(&name, &aad(account), plain.expose())?;
                tx.execute(
                    "UPDATE sealed_secrets SET key_name = ?2, sealed = ?3 WHERE account = ?1",
                    params![account, name, again],
                )?;
                if !retired.contains(key) {
                    retired.push(key.clone());
                }
            }
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('sealing_key', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![name],
            )?;
            audit::append(
                tx,
                now,
                NewEvent::new(actor, "secrets.sealing_key_rotated", Decision::Allow)
                    .target(Target::new("key", &name, "secret sealing key"))
                    .details(json!({
                        "key": name,
                        "retired": retired,
                        "secrets": rows.len(),
                        "vault": self.sealer.describe(),
                    })),
            )?;
            Ok(SealingRotation {
                key: name.clone(),
                retired,
                secrets: rows.len(),
            })
        });
        match res {
            Ok(r) => {
                for k in &r.retired {
                    if let Err(e) = self.sealer.destroy(k) {
                        tracing::warn!(key = %k, error = %e, "a retired sealing key could not be destroyed in the token");
                    }
                }
                Ok(r)
            }
            Err(e) => {
                let _ = self.sealer.destroy(&name);
                Err(e)
            }
        }
    }
}

impl SealedKeychain {
    /// Seal `secret` for `what` inside `tx` (a write transaction on the store).
    ///
    /// `tagged` says whether `tx` is the installation's write transaction (`Mandate::write`),
    /// whose events are tagged. Only there may the sealing key be made on first use: an event
    /// in this keychain's own transaction would be untagged, and verification would refuse it.
    fn seal_in(
        &self,
        tx: &Tx<'_>,
        what: &SecretRef,
        secret: &Sensitive<String>,
        tagged: bool,
    ) -> Result<()> {
        let now = self.clock.now();
        let key = if tagged {
            // Normally made by the admin at `mandate server init` (`ensure_key`); made here
            // only when the installation's first write stores a secret before that.
            let actor = Actor::system(
                "team-server",
                "sealing key made for the first secret stored",
            );
            self.current_key(tx, now, &actor)?
        } else {
            tx.query_opt(
                "SELECT value FROM meta WHERE key = 'sealing_key'",
                params![],
                |r| r.get(0),
            )?
            .ok_or_else(|| {
                Error::Keychain(KeychainError::Missing(
                    "secrets cannot be sealed yet: this server has no sealing key. \
                     Run `mandate server init` first; it makes the key in the token, \
                     recorded under your name"
                        .into(),
                ))
            })?
        };
        let sealed = self
            .sealer
            .seal(&key, &aad(&what.account), secret.expose().as_bytes())?;
        tx.execute(
            "INSERT INTO sealed_secrets (account, key_name, sealed, updated_at)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (account) DO UPDATE SET key_name = excluded.key_name,
                 sealed = excluded.sealed, updated_at = excluded.updated_at",
            params![what.account, key, sealed, audit::format_time(now)],
        )?;
        Ok(())
    }
}

fn keychain_error(e: Error) -> KeychainError {
    match e {
        Error::Keychain(k) => k,
        other => storage(other),
    }
}

impl Keychain for SealedKeychain {
    fn set(&self, what: &SecretRef, secret: &Sensitive<String>) -> Result<(), KeychainError> {
        self.with_tx(|tx| self.seal_in(tx, what, secret, false))
            .map_err(keychain_error)
    }

    /// In the caller's write transaction: a second connection would wait for the writer lock
    /// that transaction holds (the audit trail's tag key is made this way).
    fn set_during(
        &self,
        tx: &Tx<'_>,
        what: &SecretRef,
        secret: &Sensitive<String>,
    ) -> Result<(), KeychainError> {
        self.seal_in(tx, what, secret, true).map_err(keychain_error)
    }

    fn get(&self, what: &SecretRef) -> Result<Option<Sensitive<String>>, KeychainError> {
        let row: Option<(String, Vec<u8>)> = self
            .conn
            .lock()
            .map_err(|_| KeychainError::Failed("an earlier sealed write panicked".into()))?
            .auto(|tx| {
                tx.query_opt(
                    "SELECT key_name, sealed FROM sealed_secrets WHERE account = ?1",
                    params![what.account],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
            })
            .map_err(storage)?;
        let Some((key, sealed)) = row else {
            return Ok(None);
        };
        let plain = self.sealer.open(&key, &aad(&what.account), &sealed)?;
        let text = std::str::from_utf8(plain.expose()).map_err(|_| {
            KeychainError::Failed(format!(
                "the sealed secret {} is not text; it was not written by Mandate",
                what.account
            ))
        })?;
        Ok(Some(Sensitive::new(text.to_string())))
    }

    fn delete(&self, what: &SecretRef) -> Result<(), KeychainError> {
        self.with_tx(|tx| {
            tx.execute(
                "DELETE FROM sealed_secrets WHERE account = ?1",
                params![what.account],
            )?;
            Ok(())
        })
        .map_err(storage)
    }

    fn describe(&self) -> String {
        format!(
            "secrets sealed in the database under a key in {}",
            self.sealer.describe()
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::store::testing::each_store;
    use std::collections::HashMap;

    /// A stand-in token for unit tests: XOR with a per-key byte and a checksum, so that wrong
    /// keys and wrong accounts fail like AES-GCM would. The real cipher is tested with SoftHSM2
    /// in `mandate-pkcs11`.
    #[derive(Debug, Default)]
    struct ToyToken(Mutex<HashMap<String, u8>>);

    impl Sealer for ToyToken {
        fn generate(&self, name: &str) -> Result<(), KeychainError> {
            let mut m = self.0.lock().unwrap();
            let b = m.len() as u8 + 1;
            m.insert(name.into(), b);
            Ok(())
        }
        fn seal(&self, name: &str, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, KeychainError> {
            let k = *self
                .0
                .lock()
                .unwrap()
                .get(name)
                .ok_or_else(|| KeychainError::Failed(format!("no key {name}")))?;
            let sum = aad.iter().fold(k, |a, b| a.wrapping_add(*b));
            let mut out: Vec<u8> = plain.iter().map(|b| b ^ k).collect();
            out.push(sum);
            Ok(out)
        }
        fn open(
            &self,
            name: &str,
            aad: &[u8],
            sealed: &[u8],
        ) -> Result<Sensitive<Vec<u8>>, KeychainError> {
            let k = *self
                .0
                .lock()
                .unwrap()
                .get(name)
                .ok_or_else(|| KeychainError::Failed(format!("no key {name}")))?;
            let (body, sum) = sealed.split_at(sealed.len() - 1);
            if aad.iter().fold(k, |a, b| a.wrapping_add(*b)) != sum[0] {
                return Err(KeychainError::Failed("tag mismatch".into()));
            }
            Ok(Sensitive::new(body.iter().map(|b| b ^ k).collect()))
        }
        fn destroy(&self, name: &str) -> Result<(), KeychainError> {
            self.0.lock().unwrap().remove(name);
            Ok(())
        }
        fn describe(&self) -> String {
            "toy token".into()
        }
    }

    fn account(a: &str) -> SecretRef {
        SecretRef { account: a.into() }
    }

    #[test]
    fn secrets_are_sealed_in_the_database_never_plain_and_survive_a_rotation() {
        each_store(|ts| {
            let token = Arc::new(ToyToken::default());
            let (store, _) = Store::open(ts.location()).unwrap();
            let k = SealedKeychain::open(
                &store,
                "inst",
                token.clone(),
                Arc::new(crate::clock::SystemClock),
            )
            .unwrap();
            let secret = "sk_live_a_long_enough_secret";
            let mut c = ts.conn();
            k.ensure_key(&Actor::member("m1", "founder"), |f| c.write(|tx| f(tx)))
                .unwrap();
            k.set(
                &account("inst/connection/1"),
                &Sensitive::new(secret.into()),
            )
            .unwrap();
            k.set(
                &account("inst/connection/2"),
                &Sensitive::new("other-secret".into()),
            )
            .unwrap();
            assert_eq!(
                k.get(&account("inst/connection/1"))
                    .unwrap()
                    .unwrap()
                    .expose(),
                secret
            );
            assert!(!ts.holds(secret));
            // A sealed value moved to another account does not open there.
            c.write(|tx| {
                tx.execute(
                    "UPDATE sealed_secrets SET sealed = (SELECT sealed FROM sealed_secrets \
                     WHERE account = 'inst/connection/1') WHERE account = 'inst/connection/2'",
                    params![],
                )
            })
            .unwrap();
            assert!(k.get(&account("inst/connection/2")).is_err());
            k.set(
                &account("inst/connection/2"),
                &Sensitive::new("other-secret".into()),
            )
            .unwrap();
            let first: String = c
                .auto(|tx| {
                    tx.query_row(
                        "SELECT value FROM meta WHERE key = 'sealing_key'",
                        params![],
                        |r| r.get(0),
                    )
                })
                .unwrap();
            let r = k
                .rotate(&Actor::member("m1", "founder"), |f| c.write(|tx| f(tx)))
                .unwrap();
            assert_eq!(r.secrets, 2);
            assert_eq!(r.retired, vec![first.clone()]);
            assert!(
                token.0.lock().unwrap().get(&first).is_none(),
                "old key destroyed"
            );
            assert_eq!(
                k.get(&account("inst/connection/1"))
                    .unwrap()
                    .unwrap()
                    .expose(),
                secret
            );
            let names: Vec<String> = c
                .auto(|tx| {
                    tx.query_map(
                        "SELECT DISTINCT key_name FROM sealed_secrets",
                        params![],
                        |r| r.get(0),
                    )
                })
                .unwrap();
            assert_eq!(names, vec![r.key.clone()]);
            let actions: Vec<String> = c
                .auto(|tx| {
                    tx.query_map(
                        "SELECT action FROM audit_events ORDER BY seq",
                        params![],
                        |r| r.get(0),
                    )
                })
                .unwrap();
            assert_eq!(
                actions,
                vec!["secrets.sealing_key_created", "secrets.sealing_key_rotated"]
            );
            k.delete(&account("inst/connection/1")).unwrap();
            assert!(k.get(&account("inst/connection/1")).unwrap().is_none());
        });
    }

    #[test]
    fn a_secret_stored_before_server_init_made_the_sealing_key_with_an_untagged_event() {
        each_store(|ts| {
            let token = Arc::new(ToyToken::default());
            let (store, _) = Store::open(ts.location()).unwrap();
            let k = SealedKeychain::open(
                &store,
                "inst",
                token.clone(),
                Arc::new(crate::clock::SystemClock),
            )
            .unwrap();
            let err = k
                .set(
                    &account("inst/connection/1"),
                    &Sensitive::new("s3cret-value".into()),
                )
                .unwrap_err()
                .to_string();
            assert!(err.contains("mandate server init"), "{err}");
            assert!(!err.contains("s3cret-value"));
            let mut c = ts.conn();
            let (keys, events, rows): (i64, i64, i64) = c
                .auto(|tx| {
                    tx.query_row(
                        "SELECT (SELECT COUNT(*) FROM meta WHERE key = 'sealing_key'),
                                (SELECT COUNT(*) FROM audit_events),
                                (SELECT COUNT(*) FROM sealed_secrets)",
                        params![],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                })
                .unwrap();
            assert_eq!((keys, events, rows), (0, 0, 0), "nothing half-written");
            assert!(
                token.0.lock().unwrap().is_empty(),
                "no key made in the token"
            );
        });
    }
}
