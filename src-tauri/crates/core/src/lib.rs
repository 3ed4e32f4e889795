//! Mandate's core: the domain and the one API that the CLI, the HTTP endpoint and the desktop
//! app all call (STYLE invariant 2). Adapters parse input, call a method on [`Mandate`] and map
//! the [`Error`] to their medium; they hold no business rules of their own.
//!
//! What it is not: it does not know about HTTP, Tauri or terminals, and it never reads the
//! system clock directly (time comes from a [`clock::Clock`]). It depends on no GUI library,
//! so it builds and tests without GTK or WebKit.

pub mod approvals;
pub mod audit;
pub mod broker;
pub mod clock;
pub mod error;
pub mod fit;
pub mod group_commit;
pub mod keys;
mod lineage;
pub mod mcp;
pub mod migrate;
pub mod model;
pub mod oauth;
pub mod paths;
pub mod people;
pub mod private_file;
mod registry;
pub mod scan;
pub mod sealed;
pub mod secret;
pub mod store;
mod store_identity;
pub mod team;
pub mod team_access;
pub mod team_client;
pub mod tls;
pub mod trust;
pub mod vault;
pub mod views;
pub mod witness;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use chrono::{DateTime, Utc};

pub use error::{Error, ErrorCode, ErrorReport, Result};
pub use registry::{AgentEdit, KeyChoice, NewAgent, NewConnection};

use audit::{Actor, NewEvent};
use clock::{Clock, SystemClock};
use secret::{Keychain, SecretRef, Sensitive};
use store::{Conn, DatabaseUrl, Location, Store, Tx, params};

/// How to open a Mandate installation.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// The data folder (see [`paths::data_dir`]).
    pub data_dir: PathBuf,
    /// Where secrets go. The app and CLI pass the OS keychain; unit tests pass a
    /// [`secret::MemoryKeychain`].
    pub keychain: Arc<dyn Keychain>,
    /// Who the changes made through this handle are attributed to in the audit trail; `None`
    /// until a person is chosen (the desktop app at first run): changes are then refused.
    pub actor: Option<Actor>,
    /// The time source; `None` means the system clock.
    pub clock: Option<Arc<dyn Clock>>,
    /// A PostgreSQL database to use instead of SQLite in the data folder (a team server's).
    /// The data folder still holds this machine's files (the checkpoint file, key files, the
    /// endpoint's lock).
    pub database: Option<DatabaseUrl>,
    /// Where issuer keys live; `None` means the keychain (a PKCS#11 token on a team server).
    pub issuer_keys: Option<Arc<dyn vault::KeyVault>>,
    /// Seal secrets in the database under this token's key instead of using `keychain` (a
    /// headless team server, which has no OS keychain: see [`sealed`]).
    pub sealer: Option<Arc<dyn sealed::Sealer>>,
}

impl OpenOptions {
    pub fn new(data_dir: impl Into<PathBuf>, keychain: Arc<dyn Keychain>, actor: Actor) -> Self {
        OpenOptions {
            data_dir: data_dir.into(),
            keychain,
            actor: Some(actor),
            clock: None,
            database: None,
            issuer_keys: None,
            sealer: None,
        }
    }

    /// Open without a person: reads work, changes are refused until
    /// [`Mandate::set_actor`] names who makes them.
    pub fn without_person(data_dir: impl Into<PathBuf>, keychain: Arc<dyn Keychain>) -> Self {
        OpenOptions {
            data_dir: data_dir.into(),
            keychain,
            actor: None,
            clock: None,
            database: None,
            issuer_keys: None,
            sealer: None,
        }
    }

    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Keep the registry and the audit trail in this PostgreSQL database.
    pub fn database(mut self, url: DatabaseUrl) -> Self {
        self.database = Some(url);
        self
    }

    /// Keep issuer keys in `vault` (a PKCS#11 token) instead of the keychain.
    pub fn issuer_keys(mut self, vault: Arc<dyn vault::KeyVault>) -> Self {
        self.issuer_keys = Some(vault);
        self
    }

    /// Seal secrets in the database with `sealer` instead of the keychain.
    pub fn sealed_secrets(mut self, sealer: Arc<dyn sealed::Sealer>) -> Self {
        self.sealer = Some(sealer);
        self
    }
}

/// An open Mandate installation: the store, the keychain and the clock. Cheap to share
/// behind an `Arc`; every method is safe to call from several threads.
pub struct Mandate {
    store: Store,
    conn: Arc<Mutex<Conn>>,
    keychain: Arc<dyn Keychain>,
    /// Where issuer keys are made and sign (the keychain, or a PKCS#11 token).
    issuer_keys: Arc<dyn vault::KeyVault>,
    /// Set when secrets are sealed in the database (a team server), for rotation.
    sealed: Option<Arc<sealed::SealedKeychain>>,
    clock: Arc<dyn Clock>,
    actor: RwLock<Option<Actor>>,
    data_dir: PathBuf,
    install_id: String,
    group: group_commit::GroupQueue,
    audit_due: audit::checkpoint::DueThrottle,
    /// Set while a detached checkpoint thread runs (see `Mandate::after_write_detached`).
    checkpointing: std::sync::atomic::AtomicBool,
    /// Assertion and DPoP `jti`s already accepted, shared by every endpoint of this handle.
    used_jtis: Arc<oauth::replay::UsedJtis>,
    /// The key that tags every committed batch of audit events (`audit/tag.rs`).
    audit_tags: Arc<audit::tag::TagKeys>,
    /// The database file opened, checked before every write (`store_identity.rs`).
    identity: Arc<store_identity::StoreIdentity>,
}

impl fmt::Debug for Mandate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mandate")
            .field("data_dir", &self.data_dir)
            .field("store", &self.store.location())
            .field("install_id", &self.install_id)
            .finish_non_exhaustive()
    }
}

thread_local! {
    /// The member a team server request acts for (see [`Mandate::acting_as`]).
    static ACTING_AS: std::cell::RefCell<Option<Actor>> = const { std::cell::RefCell::new(None) };
}

impl Mandate {
    /// Open (and if needed create and migrate) the installation: SQLite in `opts.data_dir`, or
    /// the PostgreSQL database `opts.database`.
    /// Does not touch the keychain: listing agents works even while the keychain is locked.
    pub fn open(opts: OpenOptions) -> Result<Self> {
        let location = match &opts.database {
            Some(url) => {
                store::prepare_data_dir(&opts.data_dir)?;
                Location::Postgres(url.clone())
            }
            None => Location::Folder(opts.data_dir.clone()),
        };
        let (store, mut conn) = Store::open(location)?;
        store::narrow_data_files(&opts.data_dir)?;
        let read_id = |tx: &Tx<'_>| {
            tx.query_opt(
                "SELECT value FROM meta WHERE key = 'install_id'",
                params![],
                |r| r.get::<String>(0),
            )
        };
        let install_id = match conn.auto(read_id)? {
            Some(id) => id,
            // Two processes opening a new store at once: the first id written wins.
            None => conn.write(|tx| {
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('install_id', ?1) ON CONFLICT DO NOTHING",
                    params![uuid::Uuid::new_v4().to_string()],
                )?;
                read_id(tx)?.ok_or_else(|| Error::Storage("the installation id was not kept".into()))
            })?,
        };
        let clock: Arc<dyn Clock> = opts.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let sealed = match opts.sealer {
            Some(s) => Some(Arc::new(sealed::SealedKeychain::open(
                &store,
                &install_id,
                s,
                clock.clone(),
            )?)),
            None => None,
        };
        let keychain: Arc<dyn Keychain> = match &sealed {
            Some(s) => s.clone(),
            None => opts.keychain,
        };
        let issuer_keys = opts
            .issuer_keys
            .unwrap_or_else(|| Arc::new(vault::KeychainKeys(keychain.clone())));
        let audit_tags = Arc::new(audit::tag::TagKeys::new(
            keychain.clone(),
            SecretRef {
                account: format!("{install_id}/{}", SecretRef::audit_tag_key().account),
            },
        ));
        let identity =
            Arc::new(conn.auto(|tx| store_identity::StoreIdentity::new(store.location(), tx))?);
        Ok(Mandate {
            identity,
            store,
            conn: Arc::new(Mutex::new(conn)),
            keychain,
            issuer_keys,
            sealed,
            clock,
            actor: RwLock::new(opts.actor),
            data_dir: opts.data_dir,
            install_id,
            group: group_commit::GroupQueue::default(),
            audit_due: Default::default(),
            checkpointing: Default::default(),
            used_jtis: Default::default(),
            audit_tags,
        })
    }

    /// The store below this handle (for more connections: the endpoint's readers).
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// Where the registry and the audit trail are kept, for messages: the SQLite file, or the
    /// PostgreSQL address without its password.
    pub fn database_description(&self) -> String {
        self.store.location().describe()
    }

    /// The key that tags committed audit batches.
    pub(crate) fn audit_tags(&self) -> &Arc<audit::tag::TagKeys> {
        &self.audit_tags
    }

    /// The used-`jti` memory every endpoint of this handle checks replays against.
    pub(crate) fn used_jtis(&self) -> &Arc<oauth::replay::UsedJtis> {
        &self.used_jtis
    }

    /// The data folder this handle uses.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// This installation's id; it namespaces the keychain entries.
    pub fn install_id(&self) -> &str {
        &self.install_id
    }

    /// The current time from this handle's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Who changes made through this handle are attributed to. Every change asks for it, so
    /// until a person is chosen nothing can be changed in nobody's name.
    pub fn actor(&self) -> Result<Actor> {
        self.person()?.ok_or_else(|| {
            Error::Conflict(
                "nobody is named for this change yet: say who is using Mandate first (the \
                 prompt when the app starts, or Settings → You)"
                    .into(),
            )
        })
    }

    /// The person changes are attributed to, if one is chosen (inside [`Mandate::acting_as`],
    /// the member signed in to the team server).
    pub fn person(&self) -> Result<Option<Actor>> {
        if let Some(a) = ACTING_AS.with(|c| c.borrow().clone()) {
            return Ok(Some(a));
        }
        self.actor
            .read()
            .map(|a| a.clone())
            .map_err(|_| Error::Storage("the actor lock was poisoned".into()))
    }

    /// The actor of something Mandate does by itself as part of a person's work (an issuer
    /// key made on first use, a TLS certificate renewed): the person when one is chosen, else
    /// the system actor `part`/`what` (docs/ARCHITECTURE.md lists where that happens).
    pub fn actor_or_system(&self, part: &str, what: &str) -> Actor {
        match self.person() {
            Ok(Some(a)) => a,
            _ => Actor::system(part, what),
        }
    }

    /// Run `f` with every change it makes attributed to `actor`, on this thread only: a team
    /// server serves many signed-in members at once through one handle, so the member of a
    /// request must not become the handle's person. The core's changes ask for their actor on
    /// the calling thread before they write, so this covers all of them.
    pub fn acting_as<T>(&self, actor: Actor, f: impl FnOnce() -> T) -> T {
        struct Restore(Option<Actor>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let prev = self.0.take();
                ACTING_AS.with(|c| *c.borrow_mut() = prev);
            }
        }
        let prev = ACTING_AS.with(|c| c.borrow_mut().replace(actor));
        let _restore = Restore(prev);
        f()
    }

    /// Attribute later changes made through this handle (and its clones) to `actor`.
    pub fn set_actor(&self, actor: Actor) {
        if let Ok(mut a) = self.actor.write() {
            *a = Some(actor);
        }
    }

    /// The audit actor for a team member (by name or id).
    pub fn member_actor(&self, member: &str) -> Result<Actor> {
        let m = self
            .list_members()?
            .into_iter()
            .find(|m| m.name.as_str() == member || m.id.as_str() == member)
            .ok_or_else(|| {
                Error::not_found_hint(
                    "team member",
                    member,
                    format!("add them first with `mandate member add {member}`"),
                )
            })?;
        Ok(Actor::member(m.id.as_str(), m.name.as_str()))
    }

    /// A one-line description of the keychain backend.
    pub fn keychain_description(&self) -> String {
        self.keychain.describe()
    }

    /// Where secrets are kept, in words for a sentence: "the OS keychain", or, on a team
    /// server, "the database, sealed under the PKCS#11 token's key".
    pub fn secrets_home(&self) -> &'static str {
        if self.sealed.is_some() {
            "the database, sealed under the PKCS#11 token's key"
        } else {
            "the OS keychain"
        }
    }

    /// A one-line description of where the issuer keys live.
    pub fn issuer_keys_description(&self) -> String {
        self.issuer_keys.describe()
    }

    /// Seal every secret again under a new key in the token and destroy the old key (a team
    /// server whose secrets are sealed in the database; audited as
    /// `secrets.sealing_key_rotated`, naming this handle's actor).
    pub fn rotate_sealing_key(&self) -> Result<sealed::SealingRotation> {
        match &self.sealed {
            Some(s) => {
                let actor = self.actor()?;
                s.rotate(&actor, |f| self.write(|tx, _| f(tx)))
            }
            None => Err(Error::Conflict(format!(
                "secrets here are kept in {}, not sealed under a PKCS#11 key; there is no sealing \
                 key to rotate (give --pkcs11-module and --pkcs11-token to use the team \
                 server's token)",
                self.keychain.describe()
            ))),
        }
    }

    pub(crate) fn lock(&self) -> Result<MutexGuard<'_, Conn>> {
        self.conn
            .lock()
            .map_err(|_| Error::Storage("an earlier operation panicked while writing".into()))
    }

    /// Run `f` on this handle's connection outside a transaction: each statement sees the
    /// newest commit. For reads.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        self.lock()?.auto(f)
    }

    /// Run `f` in a write transaction, tag the audit events it appended and commit; roll back
    /// on error. Writers of the installation run one at a time (SQLite `BEGIN IMMEDIATE`,
    /// PostgreSQL's writer lock).
    pub(crate) fn write<T>(
        &self,
        f: impl FnOnce(&Tx<'_>, DateTime<Utc>) -> Result<T>,
    ) -> Result<T> {
        let mut conn = self.lock()?;
        let out = conn.write(|tx| {
            self.identity.check(tx)?;
            let before = audit::tag::head(tx)?;
            let out = f(tx, self.clock.now())?;
            audit::tag::seal(tx, before, &self.audit_tags)?;
            Ok(out)
        })?;
        let _ = conn.auto(|tx| {
            self.identity.committed(tx);
            Ok(())
        });
        drop(conn);
        self.after_write();
        Ok(out)
    }

    /// Keychain entries are namespaced by installation so that two data folders never share
    /// secrets.
    pub(crate) fn secret_ref(&self, r: SecretRef) -> SecretRef {
        SecretRef {
            account: format!("{}/{}", self.install_id, r.account),
        }
    }

    pub(crate) fn keychain_set(&self, r: SecretRef, s: &Sensitive<String>) -> Result<()> {
        Ok(self.keychain.set(&self.secret_ref(r), s)?)
    }

    pub(crate) fn keychain_get(&self, r: SecretRef) -> Result<Option<Sensitive<String>>> {
        Ok(self.keychain.get(&self.secret_ref(r))?)
    }

    pub(crate) fn keychain_delete(&self, r: SecretRef) -> Result<()> {
        Ok(self.keychain.delete(&self.secret_ref(r))?)
    }

    /// Record an event that is not tied to a registry change (for example a denied request).
    pub fn record(&self, ev: NewEvent) -> Result<audit::AuditEvent> {
        self.write(|tx, now| audit::append(tx, now, ev))
    }

    /// Check the whole audit chain of the live store.
    pub fn verify_audit_chain(&self) -> Result<audit::ChainReport> {
        self.read(audit::verify_store)
    }

    /// Audit events, newest first; `agent` limits them to one agent's.
    pub fn audit_events(
        &self,
        agent: Option<&str>,
        limit: u32,
        before_seq: Option<u64>,
    ) -> Result<Vec<audit::AuditEvent>> {
        let agent_id = match agent {
            Some(name) => Some(self.agent_id_by_name(name)?),
            None => None,
        };
        self.read(|tx| audit::list(tx, agent_id.as_ref().map(|a| a.as_str()), limit, before_seq))
    }
}
