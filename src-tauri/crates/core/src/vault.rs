//! Where the issuer's private keys live, and how they sign without leaving it.
//!
//! On a laptop the issuer key is a secret in the OS keychain, loaded into memory to sign
//! ([`KeychainKeys`], what every installation used before this seam). On a headless team
//! server there is no OS keychain: the key is generated inside a PKCS#11 token (an HSM, a cloud
//! KMS's PKCS#11 library, SoftHSM2 in tests) and never leaves it; the token signs. Both sit
//! behind [`KeyVault`], so the token endpoint, the audit checkpoints, the evidence bundles and
//! the endpoint proof sign the same way wherever the key is.
//!
//! Keys are named by the core (`<install id>/issuer-key/<kid>`, the keychain account the key
//! always had), so one vault can hold the keys of several installations apart.
//!
//! What it is not: connection secrets (those stay behind [`crate::secret::Keychain`], which a
//! team server backs with [`crate::sealed`]), nor agent keys, which agents hold themselves.

use std::fmt;
use std::sync::Arc;

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

use crate::keys;
use crate::secret::{Keychain, KeychainError, SecretRef};

/// An Ed25519 private key that signs where it lives: in memory, or inside a PKCS#11 token.
pub trait Ed25519Signer: Send + Sync + fmt::Debug {
    /// The public half.
    fn public_key(&self) -> VerifyingKey;
    /// Sign `msg` (pure Ed25519, RFC 8032). Fails when the key's home cannot be reached (a
    /// token removed, a session lost); the message says what to do.
    fn try_sign(&self, msg: &[u8]) -> Result<Signature, KeychainError>;
}

impl Ed25519Signer for SigningKey {
    fn public_key(&self) -> VerifyingKey {
        self.verifying_key()
    }

    fn try_sign(&self, msg: &[u8]) -> Result<Signature, KeychainError> {
        Ok(self.sign(msg))
    }
}

/// Where issuer keys are made, found and destroyed.
pub trait KeyVault: Send + Sync + fmt::Debug {
    /// Make a new Ed25519 key pair whose private half never leaves the vault, and store it
    /// under the name `name_for` gives its public key.
    fn generate(
        &self,
        name_for: &dyn Fn(&VerifyingKey) -> String,
    ) -> Result<Arc<dyn Ed25519Signer>, KeychainError>;
    /// The key stored under `name`, if there is one.
    fn find(&self, name: &str) -> Result<Option<Arc<dyn Ed25519Signer>>, KeychainError>;
    /// Destroy the key stored under `name`; a missing key is not an error.
    fn destroy(&self, name: &str) -> Result<(), KeychainError>;
    /// A one-line description for status output ("PKCS#11 token 'mandate' (SoftHSM)").
    fn describe(&self) -> String;
}

/// Issuer keys as keychain secrets (base64url of the 32-byte seed), loaded to sign: the
/// laptop's vault.
#[derive(Debug)]
pub struct KeychainKeys(pub Arc<dyn Keychain>);

impl KeyVault for KeychainKeys {
    fn generate(
        &self,
        name_for: &dyn Fn(&VerifyingKey) -> String,
    ) -> Result<Arc<dyn Ed25519Signer>, KeychainError> {
        let key = keys::generate();
        let account = name_for(&key.verifying_key());
        self.0
            .set(&SecretRef { account }, &keys::signing_key_to_secret(&key))?;
        Ok(Arc::new(key))
    }

    fn find(&self, name: &str) -> Result<Option<Arc<dyn Ed25519Signer>>, KeychainError> {
        let Some(secret) = self.0.get(&SecretRef {
            account: name.to_string(),
        })?
        else {
            return Ok(None);
        };
        let key = keys::signing_key_from_secret(&secret)
            .map_err(|e| KeychainError::Failed(format!("the issuer key {name} is damaged: {e}")))?;
        Ok(Some(Arc::new(key)))
    }

    fn destroy(&self, name: &str) -> Result<(), KeychainError> {
        self.0.delete(&SecretRef {
            account: name.to_string(),
        })
    }

    fn describe(&self) -> String {
        format!("the OS keychain ({})", self.0.describe())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::secret::MemoryKeychain;

    #[test]
    fn keychain_keys_sign_what_the_public_key_verifies_and_are_gone_once_destroyed() {
        let v = KeychainKeys(Arc::new(MemoryKeychain::new()));
        let k = v
            .generate(&|pk| format!("i/issuer-key/{}", keys::thumbprint(pk)))
            .unwrap();
        let name = format!("i/issuer-key/{}", keys::thumbprint(&k.public_key()));
        let found = v.find(&name).unwrap().unwrap();
        assert_eq!(found.public_key(), k.public_key());
        let sig = found.try_sign(b"message").unwrap();
        k.public_key().verify_strict(b"message", &sig).unwrap();
        v.destroy(&name).unwrap();
        assert!(v.find(&name).unwrap().is_none());
        v.destroy(&name).unwrap();
    }
}
