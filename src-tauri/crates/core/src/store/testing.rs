//! Stores for tests: the core's tests run on SQLite always, and on PostgreSQL as well when
//! `MANDATE_TEST_POSTGRES` names a server (`scripts/with-postgres` starts a private one and
//! sets it; `scripts/test` runs the core suite inside it).
//!
//! Each [`TestStore`] is one installation's storage: a temporary data folder and, on
//! PostgreSQL, a database of its own, created for the test and dropped after it, so tests run
//! in parallel without seeing each other. [`each_store`] runs a test body once per store and
//! names the store on stderr, which the test harness shows when the body fails.
//!
//! What it is not: a mock. Both are the real engines; only the keychain of the handles it
//! opens is the in-memory one (the real keychain has its own tests).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test support"
)]

use std::sync::{Arc, Mutex, OnceLock};

use super::postgres::PgConn;
use super::{Conn, DatabaseUrl, Dialect, Location, Store, params};
use crate::audit::Actor;
use crate::secret::{Keychain, MemoryKeychain};
use crate::{Mandate, OpenOptions};

/// The variable that names the PostgreSQL server for tests (a URL whose database exists and
/// whose user may create databases).
pub const ENV: &str = "MANDATE_TEST_POSTGRES";

/// The server tests use, if `MANDATE_TEST_POSTGRES` names one. A value that cannot be read is
/// a failure, never a silent skip.
pub fn postgres_server() -> Option<DatabaseUrl> {
    let raw = std::env::var(ENV).ok().filter(|v| !v.trim().is_empty())?;
    Some(DatabaseUrl::parse(&raw).unwrap_or_else(|e| panic!("{ENV}: {e}")))
}

/// One installation's storage for a test.
pub struct TestStore {
    /// The data folder (SQLite's database, and on both stores the checkpoint file, keys...).
    pub dir: tempfile::TempDir,
    /// The PostgreSQL database, or `None` for SQLite.
    pub database: Option<DatabaseUrl>,
    /// The same database as a URL, for processes started by a test (`MANDATE_DATABASE_URL`).
    pub database_url: Option<String>,
    /// The in-memory keychain every handle from [`TestStore::open`] shares, so two handles
    /// see the same issuer key, as two processes on one machine share the OS keychain.
    pub keychain: Arc<MemoryKeychain>,
    dropped_by: Option<(DatabaseUrl, String)>,
}

impl std::fmt::Debug for TestStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestStore")
            .field("dialect", &self.dialect())
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

/// A session with the test server's maintenance database, shared by the tests of a process.
fn admin(server: &DatabaseUrl) -> &'static Mutex<PgConn> {
    static ADMIN: OnceLock<Mutex<PgConn>> = OnceLock::new();
    ADMIN.get_or_init(|| {
        Mutex::new(
            PgConn::connect(server)
                .unwrap_or_else(|e| panic!("{ENV} names a server that cannot be used: {e}")),
        )
    })
}

impl TestStore {
    /// A fresh SQLite store.
    pub fn sqlite() -> Self {
        TestStore {
            dir: tempfile::tempdir().unwrap(),
            database: None,
            database_url: None,
            keychain: Arc::new(MemoryKeychain::new()),
            dropped_by: None,
        }
    }

    /// A fresh database on the PostgreSQL server `server`.
    pub fn postgres(server: &DatabaseUrl) -> Self {
        let name = format!("mandate_test_{}", uuid::Uuid::new_v4().simple());
        {
            let mut admin = admin(server).lock().unwrap_or_else(|p| p.into_inner());
            admin
                .auto(|tx| tx.execute_batch(&format!("CREATE DATABASE {name} ENCODING 'UTF8'")))
                .unwrap_or_else(|e| panic!("could not create a test database: {e}"));
        }
        let raw = std::env::var(ENV).unwrap_or_default();
        let mut url = url::Url::parse(raw.trim())
            .unwrap_or_else(|e| panic!("{ENV} must be a postgres:// URL here ({e})"));
        url.set_path(&format!("/{name}"));
        TestStore {
            dir: tempfile::tempdir().unwrap(),
            database: Some(server.with_dbname(&name)),
            database_url: Some(url.to_string()),
            keychain: Arc::new(MemoryKeychain::new()),
            dropped_by: Some((server.clone(), name)),
        }
    }

    /// Which engine this store is.
    pub fn dialect(&self) -> Dialect {
        if self.database.is_some() {
            Dialect::Postgres
        } else {
            Dialect::Sqlite
        }
    }

    /// Where its database is.
    pub fn location(&self) -> Location {
        match &self.database {
            Some(u) => Location::Postgres(u.clone()),
            None => Location::Folder(self.dir.path().to_path_buf()),
        }
    }

    /// Options for a handle on this store with `keychain` and `actor`.
    pub fn options(&self, keychain: Arc<dyn Keychain>, actor: Actor) -> OpenOptions {
        let o = OpenOptions::new(self.dir.path(), keychain, actor);
        match &self.database {
            Some(u) => o.database(u.clone()),
            None => o,
        }
    }

    /// Options for a handle with the shared in-memory keychain, acting as a test app.
    pub fn default_options(&self) -> OpenOptions {
        self.options(self.keychain.clone(), Actor::app("test", "t"))
    }

    /// A connection of its own to the store, as a tool (or an intruder) editing the database
    /// behind Mandate's back would have.
    pub fn conn(&self) -> Conn {
        Store::open(self.location()).unwrap().1
    }

    /// A connection that neither creates nor migrates anything (for tests of migrations).
    pub fn raw_conn(&self) -> Conn {
        match &self.database {
            None => Conn(super::ConnInner::Sqlite(
                rusqlite::Connection::open(self.dir.path().join(super::DB_FILE)).unwrap(),
            )),
            Some(u) => Conn(super::ConnInner::Postgres(Box::new(
                PgConn::connect(u).unwrap(),
            ))),
        }
    }

    /// Whether `needle` appears anywhere in the stored data: the SQLite file and its
    /// write-ahead log byte for byte, or every row of every PostgreSQL table as text (bytes
    /// as hex, so the needle is looked for in hex too). For "no secret is ever stored" checks.
    pub fn holds(&self, needle: &str) -> bool {
        match &self.database {
            None => [super::DB_FILE, "mandate.db-wal"].iter().any(|f| {
                let bytes = std::fs::read(self.dir.path().join(f)).unwrap_or_default();
                bytes
                    .windows(needle.len().max(1))
                    .any(|w| w == needle.as_bytes())
            }),
            Some(_) => {
                let hex: String = needle.bytes().map(|b| format!("{b:02x}")).collect();
                let mut c = self.raw_conn();
                c.auto(|tx| {
                    let tables = tx.query_map(
                        "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema()",
                        params![],
                        |r| r.get::<String>(0),
                    )?;
                    let mut found = false;
                    for t in tables {
                        let rows =
                            tx.query_map(&format!("SELECT t::text FROM {t} t"), params![], |r| {
                                r.get::<String>(0)
                            })?;
                        found |= rows.iter().any(|r| r.contains(needle) || r.contains(&hex));
                    }
                    Ok(found)
                })
                .unwrap()
            }
        }
    }

    /// A handle on this store (another call gives another handle, with its own connections).
    pub fn open(&self) -> Mandate {
        Mandate::open(self.default_options()).unwrap()
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if let Some((server, name)) = self.dropped_by.take() {
            let mut admin = admin(&server).lock().unwrap_or_else(|p| p.into_inner());
            let _ = admin.auto(|tx| {
                tx.execute_batch(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            });
        }
    }
}

/// The stores this run tests on: SQLite, and PostgreSQL when [`ENV`] is set.
pub fn stores() -> Vec<TestStore> {
    let mut out = vec![TestStore::sqlite()];
    if let Some(server) = postgres_server() {
        out.push(TestStore::postgres(&server));
    }
    out
}

/// Run `body` once on each store of [`stores`], naming the store on stderr first.
pub fn each_store(body: impl Fn(&TestStore)) {
    for s in stores() {
        eprintln!("--- on {:?}", s.dialect());
        body(&s);
    }
}
