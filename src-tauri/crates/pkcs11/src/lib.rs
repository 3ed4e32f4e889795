//! A team server's keys in a PKCS#11 token: an HSM, a cloud KMS's PKCS#11 library, or SoftHSM2
//! in tests. The issuer's Ed25519 key is generated inside the token and signs there (CKM_EDDSA);
//! connection secrets are sealed with AES-256-GCM (CKM_AES_GCM) under an AES key generated
//! inside the token. Neither key is extractable: the server process never holds them.
//!
//! [`Token::open`] loads the module, finds the token by label and logs in with the user PIN.
//! [`Pkcs11Keys`] is the core's [`KeyVault`] over it (issuer keys), [`Pkcs11Sealer`] its
//! [`Sealer`] (secrets in the database). The core names every key (`<install id>/issuer-key/
//! <kid>`, `<install id>/sealing-key/<id>`), stored as the objects' `CKA_LABEL`, so several
//! installations can share one token.
//!
//! Sessions: a PKCS#11 session is not for two threads at once, so the token keeps a pool of
//! read-write sessions (the login is per application, shared by all of them). A session whose
//! call fails is closed, not reused. Object handles are cached by name and looked up again
//! when the token says a handle is stale (another server instance rotated a key away).
//!
//! What it is not: the rules for which key is current or when to rotate (the core decides and
//! records them), nor a cipher of our own: all cryptography runs inside the token.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Function, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::{AuthPin, Ulong};
use ed25519_dalek::{Signature, VerifyingKey};
use mandate_core::sealed::Sealer;
use mandate_core::secret::{KeychainError, Sensitive};
use mandate_core::vault::{Ed25519Signer, KeyVault};

/// The environment variable that holds the token's user PIN.
pub const PIN_ENV: &str = "MANDATE_PKCS11_PIN";

/// `CKA_EC_PARAMS` for Ed25519: the DER object identifier 1.3.101.112 (RFC 8410), which PKCS#11
/// 3.0 names first.
const ED25519_OID: [u8; 5] = [0x06, 0x03, 0x2b, 0x65, 0x70];
/// The same curve as the printable string "edwards25519", which older tokens want.
const ED25519_NAME: [u8; 14] = [
    0x13, 0x0c, b'e', b'd', b'w', b'a', b'r', b'd', b's', b'2', b'5', b'5', b'1', b'9',
];
/// AES-GCM nonce and tag sizes (NIST SP 800-38D's recommended 96-bit nonce, full tag).
const NONCE_LEN: usize = 12;
const TAG_BITS: u64 = 128;

/// Where to find the token.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    /// The PKCS#11 module (`/usr/lib/softhsm/libsofthsm2.so`, an HSM vendor's library).
    pub module: PathBuf,
    /// The token's label.
    pub label: String,
}

/// An open, logged-in PKCS#11 token.
pub struct Token {
    ctx: Pkcs11,
    slot: Slot,
    label: String,
    model: String,
    pin: AuthPin,
    sessions: Mutex<Vec<Session>>,
    handles: Mutex<HashMap<(Kind, String), ObjectHandle>>,
}

/// The kinds of object Mandate keeps in a token (a hashable stand-in for `ObjectClass`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Private,
    Public,
    Secret,
}

impl Kind {
    fn class(self) -> ObjectClass {
        match self {
            Kind::Private => ObjectClass::PRIVATE_KEY,
            Kind::Public => ObjectClass::PUBLIC_KEY,
            Kind::Secret => ObjectClass::SECRET_KEY,
        }
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("label", &self.label)
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

/// One context per module per process: `C_Initialize` may run only once.
fn context(module: &Path) -> Result<Pkcs11, KeychainError> {
    static CONTEXTS: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut map = CONTEXTS
        .get_or_init(Default::default)
        .lock()
        .map_err(|_| KeychainError::Token("a PKCS#11 module load panicked earlier".into()))?;
    if let Some(c) = map.get(module) {
        return Ok(c.clone());
    }
    let ctx = Pkcs11::new(module).map_err(|e| {
        KeychainError::Token(format!(
            "the PKCS#11 module {} could not be loaded ({e}); give the path of your HSM's \
             PKCS#11 library with --pkcs11-module (SoftHSM2: /usr/lib/softhsm/libsofthsm2.so)",
            module.display()
        ))
    })?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => {
            return Err(KeychainError::Token(format!(
                "the PKCS#11 module {} failed to start ({e})",
                module.display()
            )));
        }
    }
    map.insert(module.to_path_buf(), ctx.clone());
    Ok(ctx)
}

impl Token {
    /// Load `spec.module`, find the token labelled `spec.label` and log in with `pin`.
    pub fn open(spec: &TokenSpec, pin: Sensitive<String>) -> Result<Arc<Token>, KeychainError> {
        let ctx = context(&spec.module)?;
        let slots = ctx.get_slots_with_initialized_token().map_err(|e| {
            KeychainError::Token(format!("the PKCS#11 module lists no slots ({e})"))
        })?;
        let mut labels = Vec::new();
        let mut found = None;
        for s in slots {
            if let Ok(info) = ctx.get_token_info(s) {
                let l = info.label().trim_end().to_string();
                if l == spec.label {
                    found = Some((s, info.model().trim_end().to_string()));
                    break;
                }
                labels.push(l);
            }
        }
        let Some((slot, model)) = found else {
            return Err(KeychainError::Token(format!(
                "no PKCS#11 token labelled '{}' is in {} (tokens there: {}); initialise one \
                 (SoftHSM2: `softhsm2-util --init-token --free --label {}`) or name another \
                 with --pkcs11-token",
                spec.label,
                spec.module.display(),
                if labels.is_empty() {
                    "none".to_string()
                } else {
                    labels.join(", ")
                },
                spec.label
            )));
        };
        let token = Arc::new(Token {
            ctx,
            slot,
            label: spec.label.clone(),
            model,
            pin: AuthPin::new(pin.expose().clone().into()),
            sessions: Mutex::new(Vec::new()),
            handles: Mutex::new(HashMap::new()),
        });
        // Log in now, so a wrong PIN fails at start-up, not at the first request.
        let s = token.open_session()?;
        token.put_back(s);
        Ok(token)
    }

    /// The token's label.
    pub fn label(&self) -> &str {
        &self.label
    }

    fn describe(&self) -> String {
        format!("PKCS#11 token '{}' ({})", self.label, self.model)
    }

    fn fail(&self, what: &str, e: CkError) -> KeychainError {
        KeychainError::Token(format!(
            "the PKCS#11 token '{}' could not {what} ({e}); check that the token is present and \
             the server may use it",
            self.label
        ))
    }

    fn open_session(&self) -> Result<Session, KeychainError> {
        let s = self
            .ctx
            .open_rw_session(self.slot)
            .map_err(|e| self.fail("open a session", e))?;
        match s.login(UserType::User, Some(&self.pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(s),
            Err(CkError::Pkcs11(RvError::PinIncorrect | RvError::PinLenRange, _)) => {
                Err(KeychainError::Token(format!(
                    "the PKCS#11 token '{}' refused the PIN in {PIN_ENV}; set it to the token's \
                     user PIN (a token locks itself after a few wrong PINs)",
                    self.label
                )))
            }
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => Err(KeychainError::Token(format!(
                "the PKCS#11 token '{}' is locked after too many wrong PINs; its security officer \
                 must reset the user PIN",
                self.label
            ))),
            Err(e) => Err(self.fail("log in", e)),
        }
    }

    fn put_back(&self, s: Session) {
        if let Ok(mut pool) = self.sessions.lock() {
            pool.push(s);
        }
    }

    /// Run `f` on a pooled session. A session whose call failed is closed rather than
    /// returned to the pool.
    fn with_session<T>(
        &self,
        f: impl FnOnce(&Session) -> Result<T, CkError>,
    ) -> Result<Result<T, CkError>, KeychainError> {
        let pooled = self.sessions.lock().ok().and_then(|mut p| p.pop());
        let s = match pooled {
            Some(s) => s,
            None => self.open_session()?,
        };
        let out = f(&s);
        match &out {
            Ok(_) => self.put_back(s),
            Err(CkError::Pkcs11(
                RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::DeviceRemoved
                | RvError::DeviceError
                | RvError::TokenNotPresent
                | RvError::UserNotLoggedIn,
                _,
            )) => drop(s),
            Err(_) => self.put_back(s),
        }
        Ok(out)
    }

    /// The object of `class` labelled `name`, from the cache or the token.
    fn find(&self, kind: Kind, name: &str) -> Result<Option<ObjectHandle>, KeychainError> {
        let key = (kind, name.to_string());
        if let Some(h) = self.handles.lock().ok().and_then(|m| m.get(&key).copied()) {
            return Ok(Some(h));
        }
        let found = self
            .with_session(|s| {
                s.find_objects(&[
                    Attribute::Class(kind.class()),
                    Attribute::Token(true),
                    Attribute::Label(name.as_bytes().to_vec()),
                ])
            })?
            .map_err(|e| self.fail("search its objects", e))?;
        let h = found.first().copied();
        if let (Some(h), Ok(mut m)) = (h, self.handles.lock()) {
            m.insert(key, h);
        }
        Ok(h)
    }

    fn forget(&self, kind: Kind, name: &str) {
        if let Ok(mut m) = self.handles.lock() {
            m.remove(&(kind, name.to_string()));
        }
    }

    /// Run `f` with the handle of `name`, looking the handle up again once if the token says
    /// it is stale (another instance destroyed and remade it). The inner error is the token's
    /// own answer, for the caller to explain.
    fn with_object<T>(
        &self,
        kind: Kind,
        name: &str,
        f: impl Fn(&Session, ObjectHandle) -> Result<T, CkError>,
    ) -> Result<Result<T, CkError>, KeychainError> {
        let mut attempt = 0;
        loop {
            let h = self.find(kind, name)?.ok_or_else(|| {
                KeychainError::Token(format!(
                    "the PKCS#11 token '{}' has no key labelled {name}; it was destroyed or the \
                     server uses another token",
                    self.label
                ))
            })?;
            match self.with_session(|s| f(s, h))? {
                Err(CkError::Pkcs11(
                    RvError::KeyHandleInvalid | RvError::ObjectHandleInvalid,
                    _,
                )) if attempt == 0 => {
                    self.forget(kind, name);
                    attempt += 1;
                }
                other => return Ok(other),
            }
        }
    }

    fn destroy_all(&self, name: &str, kinds: &[Kind]) -> Result<(), KeychainError> {
        for kind in kinds {
            self.forget(*kind, name);
            let handles = self
                .with_session(|s| {
                    s.find_objects(&[
                        Attribute::Class(kind.class()),
                        Attribute::Token(true),
                        Attribute::Label(name.as_bytes().to_vec()),
                    ])
                })?
                .map_err(|e| self.fail("search its objects", e))?;
            for h in handles {
                match self.with_session(|s| s.destroy_object(h))? {
                    Ok(())
                    | Err(CkError::Pkcs11(RvError::ObjectHandleInvalid, Function::DestroyObject)) =>
                        {}
                    Err(e) => return Err(self.fail("destroy a key", e)),
                }
            }
        }
        Ok(())
    }
}

/// Read an Ed25519 public key from `CKA_EC_POINT`: the 32 bytes, DER-wrapped in an OCTET
/// STRING (what PKCS#11 3.0 and SoftHSM2 return) or bare.
fn ec_point(bytes: &[u8]) -> Option<VerifyingKey> {
    let raw: [u8; 32] = match bytes {
        [0x04, 0x20, rest @ ..] if rest.len() == 32 => rest.try_into().ok()?,
        raw if raw.len() == 32 => raw.try_into().ok()?,
        _ => return None,
    };
    VerifyingKey::from_bytes(&raw).ok()
}

/// The issuer's keys in the token: [`KeyVault`] for the core.
#[derive(Debug, Clone)]
pub struct Pkcs11Keys(pub Arc<Token>);

/// An Ed25519 private key inside the token.
#[derive(Debug)]
struct TokenKey {
    token: Arc<Token>,
    name: String,
    public: VerifyingKey,
}

impl Ed25519Signer for TokenKey {
    fn public_key(&self) -> VerifyingKey {
        self.public
    }

    fn try_sign(&self, msg: &[u8]) -> Result<Signature, KeychainError> {
        let sig = self
            .token
            .with_object(Kind::Private, &self.name, |s, h| {
                s.sign(
                    &Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)),
                    h,
                    msg,
                )
            })?
            .map_err(|e| self.token.fail("sign with the issuer key (CKM_EDDSA)", e))?;
        let bytes: [u8; 64] = sig.as_slice().try_into().map_err(|_| {
            KeychainError::Token(format!(
                "the PKCS#11 token '{}' returned a signature of {} bytes, not an Ed25519 one",
                self.token.label,
                sig.len()
            ))
        })?;
        let sig = Signature::from_bytes(&bytes);
        // A token that signs wrongly must not mint tokens nobody can verify.
        self.public.verify_strict(msg, &sig).map_err(|_| {
            KeychainError::Token(format!(
                "the PKCS#11 token '{}' made a signature that its own public key does not verify",
                self.token.label
            ))
        })?;
        Ok(sig)
    }
}

impl Pkcs11Keys {
    fn public_of(&self, name: &str) -> Result<Option<VerifyingKey>, KeychainError> {
        let t = &self.0;
        let Some(h) = t.find(Kind::Public, name)? else {
            return Ok(None);
        };
        let attrs = t
            .with_session(|s| s.get_attributes(h, &[AttributeType::EcPoint]))?
            .map_err(|e| t.fail("read a public key", e))?;
        for a in attrs {
            if let Attribute::EcPoint(p) = a {
                return ec_point(&p).map(Some).ok_or_else(|| {
                    KeychainError::Token(format!(
                        "the key labelled {name} in PKCS#11 token '{}' is not an Ed25519 key",
                        t.label
                    ))
                });
            }
        }
        Ok(None)
    }

    fn generate_pair(
        &self,
        params: &[u8],
    ) -> Result<Result<(ObjectHandle, ObjectHandle), CkError>, KeychainError> {
        let pending = format!("mandate-pending-{}", std::process::id());
        let public = [
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::EcParams(params.to_vec()),
            Attribute::Label(pending.as_bytes().to_vec()),
        ];
        let private = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Label(pending.as_bytes().to_vec()),
        ];
        self.0.with_session(|s| {
            s.generate_key_pair(&Mechanism::EccEdwardsKeyPairGen, &public, &private)
        })
    }
}

impl Pkcs11Keys {
    /// Whether the private key `name` is sensitive and was never extractable (`CKA_SENSITIVE`,
    /// `CKA_NEVER_EXTRACTABLE`, not `CKA_EXTRACTABLE`): the token will never hand it out.
    pub fn is_locked_in(&self, name: &str) -> Result<bool, KeychainError> {
        let t = &self.0;
        let attrs = t
            .with_object(Kind::Private, name, |s, h| {
                s.get_attributes(
                    h,
                    &[
                        AttributeType::Sensitive,
                        AttributeType::Extractable,
                        AttributeType::NeverExtractable,
                    ],
                )
            })?
            .map_err(|e| t.fail("read a key's attributes", e))?;
        let (mut sensitive, mut extractable, mut never) = (false, true, false);
        for a in attrs {
            match a {
                Attribute::Sensitive(b) => sensitive = b,
                Attribute::Extractable(b) => extractable = b,
                Attribute::NeverExtractable(b) => never = b,
                _ => {}
            }
        }
        Ok(sensitive && !extractable && never)
    }
}

impl KeyVault for Pkcs11Keys {
    fn generate(
        &self,
        name_for: &dyn Fn(&VerifyingKey) -> String,
    ) -> Result<Arc<dyn Ed25519Signer>, KeychainError> {
        let t = &self.0;
        let what = "generate an Ed25519 key (CKM_EC_EDWARDS_KEY_PAIR_GEN)";
        let (pub_h, priv_h) = match self.generate_pair(&ED25519_OID)? {
            Ok(p) => p,
            // Older tokens know the curve only by name.
            Err(CkError::Pkcs11(
                RvError::CurveNotSupported
                | RvError::AttributeValueInvalid
                | RvError::DomainParamsInvalid,
                _,
            )) => self
                .generate_pair(&ED25519_NAME)?
                .map_err(|e| t.fail(what, e))?,
            Err(e) => return Err(t.fail(what, e)),
        };
        let cleanup = |t: &Token| {
            let _ = t.with_session(|s| s.destroy_object(priv_h));
            let _ = t.with_session(|s| s.destroy_object(pub_h));
        };
        let point = t
            .with_session(|s| s.get_attributes(pub_h, &[AttributeType::EcPoint]))?
            .map_err(|e| t.fail("read the new public key", e));
        let public = match point {
            Ok(attrs) => attrs.into_iter().find_map(|a| match a {
                Attribute::EcPoint(p) => ec_point(&p),
                _ => None,
            }),
            Err(e) => {
                cleanup(t);
                return Err(e);
            }
        };
        let Some(public) = public else {
            cleanup(t);
            return Err(KeychainError::Token(format!(
                "the PKCS#11 token '{}' made a key whose public point is not Ed25519",
                t.label
            )));
        };
        let name = name_for(&public);
        let label = [Attribute::Label(name.as_bytes().to_vec())];
        let renamed = t
            .with_session(|s| {
                s.update_attributes(pub_h, &label)?;
                s.update_attributes(priv_h, &label)
            })
            .and_then(|r| r.map_err(|e| t.fail("label the new key", e)));
        if let Err(e) = renamed {
            cleanup(t);
            return Err(e);
        }
        Ok(Arc::new(TokenKey {
            token: t.clone(),
            name,
            public,
        }))
    }

    fn find(&self, name: &str) -> Result<Option<Arc<dyn Ed25519Signer>>, KeychainError> {
        if self.0.find(Kind::Private, name)?.is_none() {
            return Ok(None);
        }
        let public = self.public_of(name)?.ok_or_else(|| {
            KeychainError::Token(format!(
                "the PKCS#11 token '{}' holds the private key {name} but not its public key",
                self.0.label
            ))
        })?;
        Ok(Some(Arc::new(TokenKey {
            token: self.0.clone(),
            name: name.to_string(),
            public,
        })))
    }

    fn destroy(&self, name: &str) -> Result<(), KeychainError> {
        self.0.destroy_all(name, &[Kind::Private, Kind::Public])
    }

    fn describe(&self) -> String {
        self.0.describe()
    }
}

/// Secrets sealed under an AES-256 key inside the token: [`Sealer`] for the core.
#[derive(Debug, Clone)]
pub struct Pkcs11Sealer(pub Arc<Token>);

impl Sealer for Pkcs11Sealer {
    fn generate(&self, name: &str) -> Result<(), KeychainError> {
        let t = &self.0;
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen(Ulong::new(32)),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::Label(name.as_bytes().to_vec()),
        ];
        t.with_session(|s| s.generate_key(&Mechanism::AesKeyGen, &template))?
            .map_err(|e| t.fail("generate an AES-256 key (CKM_AES_KEY_GEN)", e))?;
        Ok(())
    }

    fn seal(&self, name: &str, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, KeychainError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand_core::RngCore::try_fill_bytes(&mut rand_core::OsRng, &mut nonce)
            .map_err(|e| KeychainError::Token(format!("no random nonce for sealing ({e})")))?;
        let ct = self
            .0
            .with_object(Kind::Secret, name, |s, h| {
                let mut iv = nonce;
                let params = GcmParams::new(&mut iv, aad, Ulong::new(TAG_BITS))?;
                s.encrypt(&Mechanism::AesGcm(params), h, plain)
            })?
            .map_err(|e| self.0.fail("seal a secret (CKM_AES_GCM)", e))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(out)
    }

    fn open(
        &self,
        name: &str,
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Sensitive<Vec<u8>>, KeychainError> {
        if sealed.len() < NONCE_LEN + 16 {
            return Err(KeychainError::Token(
                "a sealed secret is too short to be one; the database was changed".into(),
            ));
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let r = self.0.with_object(Kind::Secret, name, |s, h| {
            let mut iv = [0u8; NONCE_LEN];
            iv.copy_from_slice(nonce);
            let params = GcmParams::new(&mut iv, aad, Ulong::new(TAG_BITS))?;
            s.decrypt(&Mechanism::AesGcm(params), h, ct)
        })?;
        match r {
            Ok(plain) => Ok(Sensitive::new(plain)),
            // SoftHSM2 2.6 answers a failed GCM tag with CKR_GENERAL_ERROR; the standard codes
            // are the other two.
            Err(CkError::Pkcs11(
                RvError::EncryptedDataInvalid
                | RvError::EncryptedDataLenRange
                | RvError::GeneralError,
                _,
            )) => Err(KeychainError::Token(format!(
                "a sealed secret failed its integrity check under key {name}: it was changed or \
                 moved in the database; set it again"
            ))),
            Err(e) => Err(self.0.fail("open a sealed secret (CKM_AES_GCM)", e)),
        }
    }

    fn destroy(&self, name: &str) -> Result<(), KeychainError> {
        self.0.destroy_all(name, &[Kind::Secret])
    }

    fn describe(&self) -> String {
        self.0.describe()
    }
}
