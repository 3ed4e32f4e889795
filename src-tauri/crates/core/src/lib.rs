//! Mandate's core: the domain and the one API that the CLI, the HTTP endpoint and the desktop
//! app all call (STYLE invariant 2). Adapters parse input, call a method on [`Mandate`] and map
//! the [`Error`] to their medium; they hold no business rules of their own.
//!
//! What it is not: it does not know about HTTP, Tauri or terminals, and it never reads the
//! system clock directly (time comes from a [`clock::Clock`]). It depends on no GUI library,
//! so it builds and tests without GTK or WebKit.

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
pub mod secret;
pub mod store;
mod store_identity;
pub mod tls;
pub mod trust;
pub mod views;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

pub use error::{Error, ErrorCode, ErrorReport, Result};
pub use registry::{AgentEdit, KeyChoice, NewAgent, NewConnection};

use audit::{Actor, NewEvent};
use clock::{Clock, SystemClock};
use secret::{Keychain, SecretRef, Sensitive};

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
}

impl OpenOptions {
    pub fn new(data_dir: impl Into<PathBuf>, keychain: Arc<dyn Keychain>, actor: Actor) -> Self {
        OpenOptions {
            data_dir: data_dir.into(),
            keychain,
            actor: Some(actor),
            clock: None,
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
        }
    }

    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }
}

/// An open Mandate installation: the store, the keychain and the clock. Cheap to share
/// behind an `Arc`; every method is safe to call from several threads.
pub struct Mandate {
    conn: Arc<Mutex<Connection>>,
    keychain: Arc<dyn Keychain>,
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
            .field("install_id", &self.install_id)
            .finish_non_exhaustive()
    }
}

impl Mandate {
    /// Open (and if needed create and migrate) the installation in `opts.data_dir`.
    /// Does not touch the keychain: listing agents works even while the keychain is locked.
    pub fn open(opts: OpenOptions) -> Result<Self> {
        let conn = store::open(&opts.data_dir)?;
        store::narrow_data_files(&opts.data_dir)?;
        let install_id = {
            let existing: Option<String> = conn
                .query_row("SELECT value FROM meta WHERE key = 'install_id'", [], |r| {
                    r.get(0)
                })
                .optional()?;
            match existing {
                Some(id) => id,
                None => {
                    let id = uuid::Uuid::new_v4().to_string();
                    conn.execute(
                        "INSERT OR IGNORE INTO meta (key, value) VALUES ('install_id', ?1)",
                        [&id],
                    )?;
                    conn.query_row("SELECT value FROM meta WHERE key = 'install_id'", [], |r| {
                        r.get(0)
                    })?
                }
            }
        };
        let audit_tags = Arc::new(audit::tag::TagKeys::new(
            opts.keychain.clone(),
            SecretRef {
                account: format!("{install_id}/{}", SecretRef::audit_tag_key().account),
            },
        ));
        let identity = Arc::new(store_identity::StoreIdentity::new(
            opts.data_dir.join(store::DB_FILE),
            &conn,
        )?);
        Ok(Mandate {
            identity,
            conn: Arc::new(Mutex::new(conn)),
            keychain: opts.keychain,
            clock: opts.clock.unwrap_or_else(|| Arc::new(SystemClock)),
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

    /// The person changes are attributed to, if one is chosen.
    pub fn person(&self) -> Result<Option<Actor>> {
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

    pub(crate) fn lock(&self) -> Result<MutexGuard<'_, Connection>> {
        self.conn
            .lock()
            .map_err(|_| Error::Storage("an earlier operation panicked while writing".into()))
    }

    /// Run `f` in a `BEGIN IMMEDIATE` transaction, tag the audit events it appended and
    /// commit; roll back on error.
    pub(crate) fn write<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>, DateTime<Utc>) -> Result<T>,
    ) -> Result<T> {
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        self.identity.check(&tx)?;
        let before = audit::tag::head(&tx)?;
        let now = self.clock.now();
        let out = f(&tx, now)?;
        audit::tag::seal(&tx, before, &self.audit_tags)?;
        tx.commit()?;
        self.identity.committed(&conn);
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
        let conn = self.lock()?;
        audit::verify_store(&conn)
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
        let conn = self.lock()?;
        audit::list(
            &conn,
            agent_id.as_ref().map(|a| a.as_str()),
            limit,
            before_seq,
        )
    }
}

/// A fresh installation in `dir` with an in-memory keychain, for the crate's unit tests.
#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
pub(crate) fn open_for_test(dir: &Path) -> Mandate {
    Mandate::open(OpenOptions::new(
        dir,
        Arc::new(secret::MemoryKeychain::new()),
        Actor::app("test", "t"),
    ))
    .unwrap()
}
