//! Secrets: the type they travel in, and the keychain seam they are stored behind.
//!
//! [`Sensitive`] wraps secret material. Its `Debug` and `Display` print `[REDACTED]`, it does
//! not implement `Serialize` (so it cannot reach IPC, JSON output or the audit trail by
//! accident), and it zeroizes on drop. Reading the value needs an explicit
//! [`Sensitive::expose`], which is easy to find in review.
//!
//! [`Keychain`] is the seam to the OS keychain. The real implementation lives in the
//! `mandate-keychain` crate (keyring 4); [`MemoryKeychain`] exists only for fast unit tests of
//! the core and is never selected at run time: there is no silent in-memory fallback.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use zeroize::Zeroize;

/// Secret material. Never printed, never serialized, zeroized on drop.
pub struct Sensitive<T: Zeroize>(T);

impl<T: Zeroize> Sensitive<T> {
    pub fn new(value: T) -> Self {
        Sensitive(value)
    }

    /// Borrow the secret value. Every call site is a place where a secret is used.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T: Zeroize> Drop for Sensitive<T> {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl<T: Zeroize> fmt::Debug for Sensitive<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl<T: Zeroize> fmt::Display for Sensitive<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl<T: Zeroize + Clone> Clone for Sensitive<T> {
    fn clone(&self) -> Self {
        Sensitive(self.0.clone())
    }
}

impl From<String> for Sensitive<String> {
    fn from(s: String) -> Self {
        Sensitive(s)
    }
}

/// Where a secret lives in the keychain: one `account` under the installation's service.
///
/// The account string never contains secret material; it is a kind and an id, for example
/// `issuer-key/<kid>` or `connection/<connection id>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecretRef {
    pub account: String,
}

impl SecretRef {
    pub fn issuer_key(kid: &str) -> Self {
        SecretRef {
            account: format!("issuer-key/{kid}"),
        }
    }
    pub fn connection(connection_id: &str) -> Self {
        SecretRef {
            account: format!("connection/{connection_id}"),
        }
    }
    pub fn agent_key(kid: &str) -> Self {
        SecretRef {
            account: format!("agent-key/{kid}"),
        }
    }
    /// A team member's own key on their machine (`mandate team join`).
    pub fn member_key(kid: &str) -> Self {
        SecretRef {
            account: format!("member-key/{kid}"),
        }
    }
    /// The member's cached access token for the team server, with its expiry.
    pub fn team_token(kid: &str) -> Self {
        SecretRef {
            account: format!("team-token/{kid}"),
        }
    }
    /// The credential a connection held before a credential was moved into it, kept until
    /// the move's undo window closes.
    pub fn moved_previous(move_id: &str) -> Self {
        SecretRef {
            account: format!("moved-previous/{move_id}"),
        }
    }
    /// The key that authenticates each committed batch of audit events (`audit/tag.rs`).
    pub fn audit_tag_key() -> Self {
        SecretRef {
            account: "audit-tag-key".into(),
        }
    }
    /// A copy of the newest signed audit checkpoint, out of reach of a database writer.
    pub fn audit_checkpoint() -> Self {
        SecretRef {
            account: "audit-checkpoint".into(),
        }
    }
}

/// Why the keychain could not be used. Each message names the fix.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum KeychainError {
    /// No keychain service is reachable (no D-Bus session, no Secret Service...).
    #[error(
        "no OS keychain is reachable ({detail}); Mandate keeps keys and credentials only in the \
         OS keychain. {fix}"
    )]
    Unavailable { detail: String, fix: String },

    /// The keychain exists but is locked and could not be unlocked.
    #[error("the OS keychain is locked ({detail}); {fix}")]
    Locked { detail: String, fix: String },

    /// The keychain works but lacks an entry Mandate needs and cannot recreate (the issuer
    /// key, the audit authentication key): it was deleted, or this is another keychain.
    #[error("{0}")]
    Missing(String),

    /// Any other keychain failure. The detail never contains the secret.
    #[error("the OS keychain refused the operation: {0}")]
    Failed(String),

    /// A team server's PKCS#11 token (an HSM, or SoftHSM2) failed or refused; the sentence
    /// names the token and the fix. Never contains the PIN or key material.
    #[error("{0}")]
    Token(String),
}

/// The OS keychain, seen from the core. Implementations must be safe to call from any thread;
/// async callers run them on a blocking thread.
pub trait Keychain: Send + Sync + fmt::Debug {
    /// Store (or replace) a secret.
    fn set(&self, what: &SecretRef, secret: &Sensitive<String>) -> Result<(), KeychainError>;
    /// Store (or replace) a secret from inside `tx`, a write transaction on the installation's
    /// store. A keychain outside the store (the OS keychain) ignores `tx`; one kept in the store
    /// itself (a team server's sealed secrets) writes in it, since a second connection would
    /// wait for the writer lock `tx` holds.
    fn set_during(
        &self,
        tx: &crate::store::Tx<'_>,
        what: &SecretRef,
        secret: &Sensitive<String>,
    ) -> Result<(), KeychainError> {
        let _ = tx;
        self.set(what, secret)
    }
    /// Read a secret; `Ok(None)` when there is none.
    fn get(&self, what: &SecretRef) -> Result<Option<Sensitive<String>>, KeychainError>;
    /// Delete a secret; deleting a missing secret is not an error.
    fn delete(&self, what: &SecretRef) -> Result<(), KeychainError>;
    /// A one-line description of the backend for status screens ("Secret Service (gnome-keyring)").
    fn describe(&self) -> String;
}

/// Stands in for a keychain that could not be opened: every call fails with the reason, so
/// read-only work goes on and anything that needs a secret explains what to fix.
#[derive(Debug)]
pub struct UnavailableKeychain(pub KeychainError);

impl Keychain for UnavailableKeychain {
    fn set(&self, _: &SecretRef, _: &Sensitive<String>) -> Result<(), KeychainError> {
        Err(self.0.clone())
    }
    fn get(&self, _: &SecretRef) -> Result<Option<Sensitive<String>>, KeychainError> {
        Err(self.0.clone())
    }
    fn delete(&self, _: &SecretRef) -> Result<(), KeychainError> {
        Err(self.0.clone())
    }
    fn describe(&self) -> String {
        format!("unavailable: {}", self.0)
    }
}

/// An in-memory keychain for unit tests of the core. Never used by the app or the CLI.
#[derive(Default)]
pub struct MemoryKeychain {
    items: Mutex<HashMap<String, Sensitive<String>>>,
    fail_with: Mutex<Option<KeychainError>>,
}

impl fmt::Debug for MemoryKeychain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryKeychain").finish_non_exhaustive()
    }
}

impl MemoryKeychain {
    pub fn new() -> Self {
        Self::default()
    }

    /// Make every later call fail with `err` (to test how callers handle a locked keychain).
    pub fn fail_with(&self, err: Option<KeychainError>) {
        if let Ok(mut f) = self.fail_with.lock() {
            *f = err;
        }
    }

    /// The accounts currently stored (never the values).
    pub fn accounts(&self) -> Vec<String> {
        self.items
            .lock()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn check(&self) -> Result<(), KeychainError> {
        match self.fail_with.lock() {
            Ok(f) => f.clone().map_or(Ok(()), Err),
            Err(_) => Err(KeychainError::Failed("poisoned".into())),
        }
    }
}

impl Keychain for MemoryKeychain {
    fn set(&self, what: &SecretRef, secret: &Sensitive<String>) -> Result<(), KeychainError> {
        self.check()?;
        self.items
            .lock()
            .map_err(|_| KeychainError::Failed("poisoned".into()))?
            .insert(what.account.clone(), secret.clone());
        Ok(())
    }

    fn get(&self, what: &SecretRef) -> Result<Option<Sensitive<String>>, KeychainError> {
        self.check()?;
        Ok(self
            .items
            .lock()
            .map_err(|_| KeychainError::Failed("poisoned".into()))?
            .get(&what.account)
            .cloned())
    }

    fn delete(&self, what: &SecretRef) -> Result<(), KeychainError> {
        self.check()?;
        self.items
            .lock()
            .map_err(|_| KeychainError::Failed("poisoned".into()))?
            .remove(&what.account);
        Ok(())
    }

    fn describe(&self) -> String {
        "in-memory test keychain".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_never_prints_its_value() {
        let s = Sensitive::new("hunter2-very-secret".to_string());
        assert_eq!(format!("{s:?}"), "[REDACTED]");
        assert_eq!(format!("{s}"), "[REDACTED]");
        assert_eq!(format!("{:?}", Some(&s)), "Some([REDACTED])");
        assert_eq!(s.expose(), "hunter2-very-secret");
    }
}
