//! PostgreSQL below the seam: connections through `tokio-postgres`, driven by one dedicated
//! I/O thread, used synchronously by the core.
//!
//! Why `tokio-postgres` and not the blocking `postgres` crate: the blocking client drives its
//! connection with its own runtime's `block_on`, which panics on a tokio worker thread, and the
//! token endpoint runs the core's rules on exactly those. Here every connection's socket is
//! driven by a small runtime of our own (one thread, started on first use and never dropped),
//! and a caller waits for its answer with `futures_executor::block_on` on a channel, which is
//! safe on any thread. Why not sqlx: it is async-only (the same bridging), brings its own pool
//! and a second SQLite driver beside rusqlite.
//!
//! Transactions: a write transaction is `BEGIN` and `pg_advisory_xact_lock(WRITER_LOCK)` in
//! one round trip, so writers of one installation (other handles, processes and server
//! instances) queue, as SQLite's `BEGIN IMMEDIATE` makes them queue, for at most
//! `lock_timeout` (10 s, then [`Error::Busy`]). It runs at READ COMMITTED: every statement
//! after the lock sees every commit made before it. The lock is released by the commit, after
//! the commit is visible, so the next writer reads the chain head this one wrote. A read
//! snapshot is `REPEATABLE READ, READ ONLY`. PostgreSQL aborts a transaction at its first
//! failed statement and then turns `COMMIT` into a silent rollback; this module remembers any
//! failure and refuses to call such a transaction committed.
//!
//! Durability: a session whose server says `synchronous_commit=off` sets it back to `on`
//! (an acknowledged audit event must survive a crash of the server); stronger settings chosen
//! by the operator (`remote_apply` for a synchronous standby) are kept.
//!
//! What it is not: a pool or a failover client. A connection that breaks is reopened at the
//! start of the next transaction; the transaction that saw it break fails (503 at the
//! endpoint), and nothing is half-written because the server rolls it back.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use futures_util::StreamExt;
use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, Config, NoTls, Statement};

use super::{ToParam, Tx, TxInner, ValueRef};
use crate::error::{Error, Result};

/// The advisory lock every write transaction takes first: "mandate" and a version byte.
/// Advisory locks are per database, so installations in different databases never share it.
pub const WRITER_LOCK: i64 = 0x6d61_6e64_6174_6501;

/// How long a writer waits for another before giving up with [`Error::Busy`] (SQLite's busy
/// timeout is the same).
const LOCK_TIMEOUT: &str = "10s";

/// Most statements kept prepared per connection before the cache starts over.
const STATEMENT_CACHE: usize = 512;

/// A PostgreSQL connection URL (`postgres://user:password@host:port/dbname?...`, or the
/// `key=value` form). Its `Debug` and [`DatabaseUrl::describe`] never show the password.
#[derive(Clone)]
pub struct DatabaseUrl {
    config: Arc<Config>,
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DatabaseUrl")
            .field(&self.describe())
            .finish()
    }
}

impl DatabaseUrl {
    /// Parse a URL; the message of a refusal never repeats the text (it may hold a password).
    pub fn parse(raw: &str) -> Result<Self> {
        let raw = raw.trim();
        let looks_like_url = raw.starts_with("postgres://") || raw.starts_with("postgresql://");
        if !looks_like_url && !raw.contains('=') {
            return Err(Error::invalid(
                "the database URL is not a PostgreSQL URL; give one like \
                 postgres://mandate@db.example.internal:5432/mandate",
            ));
        }
        let config = Config::from_str(raw).map_err(|e| {
            Error::invalid(format!(
                "the database URL could not be read ({e}); give one like \
                 postgres://mandate@db.example.internal:5432/mandate"
            ))
        })?;
        if config.get_hosts().is_empty() {
            return Err(Error::invalid(
                "the database URL names no host; give one like \
                 postgres://mandate@db.example.internal:5432/mandate",
            ));
        }
        Ok(DatabaseUrl {
            config: Arc::new(config),
        })
    }

    /// `postgres://user@host:port/dbname`, without the password, for messages and logs.
    pub fn describe(&self) -> String {
        let c = &self.config;
        let hosts: Vec<String> = c
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let host = match h {
                    Host::Tcp(h) => h.clone(),
                    #[cfg(unix)]
                    Host::Unix(p) => p.display().to_string(),
                };
                let port = c
                    .get_ports()
                    .get(i)
                    .or_else(|| c.get_ports().first())
                    .copied()
                    .unwrap_or(5432);
                format!("{host}:{port}")
            })
            .collect();
        let user = c.get_user().map(|u| format!("{u}@")).unwrap_or_default();
        let db = c.get_dbname().or(c.get_user()).unwrap_or_default();
        format!("postgres://{user}{}/{db}", hosts.join(","))
    }

    /// The same server with another database name (tests make one database each).
    pub fn with_dbname(&self, name: &str) -> Self {
        let mut config = (*self.config).clone();
        config.dbname(name);
        DatabaseUrl {
            config: Arc::new(config),
        }
    }
}

/// The runtime whose one thread drives every PostgreSQL connection of this process. A static
/// is never dropped, so no thread ever drops a runtime from inside an async context.
fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> =
        OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("mandate-postgres")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| {
            Error::Storage(format!(
                "the PostgreSQL client could not start its I/O thread ({e})"
            ))
        })
}

/// Wait for `f`, whose I/O the runtime's thread does, parking this thread in between. Not
/// `futures_executor::block_on`: that refuses to run inside another executor, and a caller may
/// itself be inside one (a test's `block_on`, an async adapter polling core code); the socket
/// never depends on this thread, so blocking it here cannot stall the connection.
fn wait<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        // A spurious wake-up only polls once more.
        std::thread::park();
    }
}

/// One session with the server.
pub struct PgConn {
    client: Client,
    url: DatabaseUrl,
    read_only: bool,
    statements: RefCell<HashMap<Box<str>, Statement>>,
    /// A statement failed inside the open transaction: PostgreSQL has aborted it.
    failed: Cell<bool>,
}

impl fmt::Debug for PgConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConn")
            .field("url", &self.url)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

impl PgConn {
    /// Open a read-write session.
    pub(crate) fn connect(url: &DatabaseUrl) -> Result<Self> {
        Self::open(url, false)
    }

    /// Open a session whose transactions are read-only.
    pub(crate) fn connect_reader(url: &DatabaseUrl) -> Result<Self> {
        Self::open(url, true)
    }

    fn open(url: &DatabaseUrl, read_only: bool) -> Result<Self> {
        let rt = runtime()?;
        let mut config = (*url.config).clone();
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("mandate");
        }
        let task = rt.spawn(async move {
            let (client, connection) = config.connect(NoTls).await?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "a PostgreSQL connection ended");
                }
            });
            Ok::<_, tokio_postgres::Error>(client)
        });
        let client = wait(task)
            .map_err(|e| Error::Storage(format!("the PostgreSQL client stopped ({e})")))?
            .map_err(|e| unreachable_server(url, &e))?;
        let conn = PgConn {
            client,
            url: url.clone(),
            read_only,
            statements: RefCell::default(),
            failed: Cell::new(false),
        };
        conn.setup()?;
        Ok(conn)
    }

    fn setup(&self) -> Result<()> {
        let mut set = format!("SET lock_timeout = '{LOCK_TIMEOUT}';");
        if self.read_only {
            set.push_str("SET default_transaction_read_only = on;");
        }
        let sync = wait(self.client.simple_query("SHOW synchronous_commit"))
            .map_err(|e| self.error(&e))?
            .into_iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                _ => None,
            })
            .unwrap_or_default();
        if sync == "off" {
            tracing::warn!(
                database = %self.url.describe(),
                "the server has synchronous_commit=off; Mandate's sessions turn it on so that \
                 acknowledged audit events survive a crash"
            );
            set.push_str("SET synchronous_commit = on;");
        }
        self.batch(&set)
    }

    /// Reopen the session if the server closed it (a restart, a failover, a network cut).
    fn reconnect_if_closed(&mut self) -> Result<()> {
        if self.client.is_closed() {
            *self = Self::open(&self.url, self.read_only)?;
        }
        Ok(())
    }

    /// A failure as the core's error, remembering it if a transaction is open.
    fn error(&self, e: &tokio_postgres::Error) -> Error {
        self.failed.set(true);
        statement_error(&self.url, e, self.client.is_closed())
    }

    fn statement(&self, sql: &str) -> Result<Statement> {
        if let Some(s) = self.statements.borrow().get(sql) {
            return Ok(s.clone());
        }
        let translated = super::sql::to_postgres(sql);
        let s = wait(self.client.prepare(&translated)).map_err(|e| self.error(&e))?;
        let mut cache = self.statements.borrow_mut();
        if cache.len() >= STATEMENT_CACHE {
            cache.clear();
        }
        cache.insert(sql.into(), s.clone());
        Ok(s)
    }

    pub(super) fn batch(&self, sql: &str) -> Result<()> {
        wait(self.client.batch_execute(sql)).map_err(|e| self.error(&e))
    }

    pub(super) fn execute(&self, sql: &str, params: &[&dyn ToParam]) -> Result<usize> {
        let stmt = self.statement(sql)?;
        let bound = bind(params);
        let refs: Vec<&(dyn ToSql + Sync)> =
            bound.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let n = wait(self.client.execute(&stmt, &refs)).map_err(|e| self.error(&e))?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Rows through `f` until it says stop. `stream`: fetch them as they come (long scans);
    /// otherwise in one go (fewer waits for the usual few rows).
    pub(super) fn for_each(
        &self,
        sql: &str,
        params: &[&dyn ToParam],
        stream: bool,
        f: &mut dyn FnMut(&tokio_postgres::Row) -> Result<bool>,
    ) -> Result<()> {
        let stmt = self.statement(sql)?;
        let bound = bind(params);
        if !stream {
            let refs: Vec<&(dyn ToSql + Sync)> =
                bound.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
            let rows = wait(self.client.query(&stmt, &refs)).map_err(|e| self.error(&e))?;
            for r in &rows {
                if !f(r)? {
                    break;
                }
            }
            return Ok(());
        }
        let rows = wait(self.client.query_raw(&stmt, bound.iter())).map_err(|e| self.error(&e))?;
        let mut rows = std::pin::pin!(rows);
        // The caller's `f` runs between waits, never inside one.
        while let Some(r) = wait(rows.next()) {
            let r = r.map_err(|e| self.error(&e))?;
            if !f(&r)? {
                break;
            }
        }
        Ok(())
    }

    fn tx(&self) -> Tx<'_> {
        Tx(TxInner::Postgres(self))
    }

    /// `f` in a write transaction that holds the installation's writer lock.
    pub(super) fn write<T>(&mut self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        self.reconnect_if_closed()?;
        self.failed.set(false);
        let begin = format!(
            "BEGIN ISOLATION LEVEL READ COMMITTED, READ WRITE; \
             SELECT pg_advisory_xact_lock({WRITER_LOCK});"
        );
        if let Err(e) = self.batch(&begin) {
            self.end("ROLLBACK");
            return Err(e);
        }
        self.finish(f)
    }

    /// `f` in a read-only transaction on one snapshot.
    pub(super) fn snapshot<T>(&mut self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        self.reconnect_if_closed()?;
        self.failed.set(false);
        self.batch("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")?;
        let out = catch_unwind(AssertUnwindSafe(|| f(&self.tx())));
        self.end("COMMIT");
        match out {
            Ok(r) => r,
            Err(panic) => resume_unwind(panic),
        }
    }

    /// `f` with each statement in a transaction of its own.
    pub(super) fn auto<T>(&mut self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        f(&self.auto_tx()?)
    }

    /// This session outside a transaction, reopened first if the server closed it.
    pub(super) fn auto_tx(&mut self) -> Result<Tx<'_>> {
        self.reconnect_if_closed()?;
        self.failed.set(false);
        Ok(self.tx())
    }

    /// Run `f` in the open transaction, commit if it succeeded and no statement failed, roll
    /// back otherwise (also when it panics).
    fn finish<T>(&mut self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        let out = catch_unwind(AssertUnwindSafe(|| f(&self.tx())));
        match out {
            Ok(Ok(v)) if !self.failed.get() => {
                // A COMMIT that fails has ended the transaction too.
                self.batch("COMMIT")?;
                Ok(v)
            }
            Ok(Ok(_)) => {
                self.end("ROLLBACK");
                Err(Error::Storage(
                    "a statement failed inside this transaction, so PostgreSQL rolled all of it \
                     back; try again"
                        .into(),
                ))
            }
            Ok(Err(e)) => {
                self.end("ROLLBACK");
                Err(e)
            }
            Err(panic) => {
                self.end("ROLLBACK");
                resume_unwind(panic)
            }
        }
    }

    /// End a transaction whose outcome is already decided; a failure here leaves the session
    /// unusable, so it is closed and reopened next time.
    fn end(&self, sql: &str) {
        if wait(self.client.batch_execute(sql)).is_err() {
            self.statements.borrow_mut().clear();
        }
        self.failed.set(false);
    }

    /// `f` inside a savepoint: its failure (or a panic, or a statement that failed inside it)
    /// undoes only its own changes, and the transaction can go on.
    pub(super) fn savepoint<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let before = self.failed.replace(false);
        self.batch("SAVEPOINT mandate_write")?;
        let out = catch_unwind(AssertUnwindSafe(f));
        match out {
            Ok(Ok(v)) if !self.failed.get() => {
                let released = self.batch("RELEASE mandate_write");
                self.failed.set(before || self.failed.get());
                released.map(|()| v)
            }
            other => {
                let undone = wait(
                    self.client
                        .batch_execute("ROLLBACK TO mandate_write; RELEASE mandate_write"),
                );
                // Rolled back to the savepoint, the transaction is as good as before it.
                self.failed.set(before || undone.is_err());
                match other {
                    Err(panic) => resume_unwind(panic),
                    Ok(Err(e)) => Err(e),
                    Ok(Ok(_)) => Err(Error::Storage(
                        "a statement of this write failed, so it was rolled back; try again".into(),
                    )),
                }
            }
        }
    }
}

/// Parameters in the form tokio-postgres binds.
fn bind<'a>(params: &'a [&'a dyn ToParam]) -> Vec<PgParam<'a>> {
    params.iter().map(|p| PgParam(p.to_param())).collect()
}

/// A seam value bound to a PostgreSQL parameter of whatever type the statement gives it.
#[derive(Debug)]
struct PgParam<'a>(ValueRef<'a>);

impl ToSql for PgParam<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self.0 {
            ValueRef::Null => Ok(IsNull::Yes),
            ValueRef::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(i)?.to_sql(ty, out),
                Type::BOOL => (i != 0).to_sql(ty, out),
                _ => Err(format!("an integer cannot go into a {ty} parameter").into()),
            },
            ValueRef::Text(s) => match *ty {
                // jsonb's binary form is a version byte and the text.
                Type::JSONB => {
                    out.put_u8(1);
                    out.put_slice(s.as_bytes());
                    Ok(IsNull::No)
                }
                Type::JSON => {
                    out.put_slice(s.as_bytes());
                    Ok(IsNull::No)
                }
                _ if <&str as ToSql>::accepts(ty) => s.to_sql(ty, out),
                _ => Err(format!("text cannot go into a {ty} parameter").into()),
            },
            ValueRef::Blob(b) if <&[u8] as ToSql>::accepts(ty) => b.to_sql(ty, out),
            ValueRef::Blob(_) => Err(format!("bytes cannot go into a {ty} parameter").into()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// Column `i` of a PostgreSQL row as a seam value.
pub(super) fn column(r: &tokio_postgres::Row, i: usize) -> Result<ValueRef<'_>> {
    let ty = r
        .columns()
        .get(i)
        .ok_or_else(|| Error::Storage(format!("a query has no column {i}")))?
        .type_();
    let bad = |e: tokio_postgres::Error| {
        Error::Storage(format!("a stored value is unreadable (column {i}: {e})"))
    };
    Ok(match *ty {
        Type::INT8 => r
            .try_get::<_, Option<i64>>(i)
            .map_err(bad)?
            .map_or(ValueRef::Null, ValueRef::Int),
        Type::INT4 => r
            .try_get::<_, Option<i32>>(i)
            .map_err(bad)?
            .map_or(ValueRef::Null, |v| ValueRef::Int(i64::from(v))),
        Type::INT2 => r
            .try_get::<_, Option<i16>>(i)
            .map_err(bad)?
            .map_or(ValueRef::Null, |v| ValueRef::Int(i64::from(v))),
        Type::BOOL => r
            .try_get::<_, Option<bool>>(i)
            .map_err(bad)?
            .map_or(ValueRef::Null, |v| ValueRef::Int(i64::from(v))),
        Type::BYTEA => r
            .try_get::<_, Option<&[u8]>>(i)
            .map_err(bad)?
            .map_or(ValueRef::Null, ValueRef::Blob),
        ref t if <&str as FromSql>::accepts(t) => r
            .try_get::<_, Option<&str>>(i)
            .map_err(bad)?
            .map_or(ValueRef::Null, ValueRef::Text),
        ref t => {
            return Err(Error::Storage(format!(
                "a query returned a {t} column ({i}), which the store does not read; cast it \
                 to BIGINT, TEXT or BYTEA in the query"
            )));
        }
    })
}

fn unreachable_server(url: &DatabaseUrl, e: &tokio_postgres::Error) -> Error {
    if let Some(db) = e.as_db_error() {
        return Error::Storage(format!(
            "PostgreSQL at {} refused the connection: {}; check the user, password and \
             database name in the database URL",
            url.describe(),
            db.message()
        ));
    }
    Error::Storage(format!(
        "PostgreSQL at {} cannot be reached ({e}); check that it is running and that the \
         database URL (--database or MANDATE_DATABASE_URL) is right",
        url.describe()
    ))
}

fn statement_error(url: &DatabaseUrl, e: &tokio_postgres::Error, closed: bool) -> Error {
    let Some(db) = e.as_db_error() else {
        if closed {
            return Error::Storage(format!(
                "the connection to PostgreSQL at {} was lost ({e}); it is reopened on the next \
                 request",
                url.describe()
            ));
        }
        return Error::Storage(format!("PostgreSQL at {}: {e}", url.describe()));
    };
    let code = db.code();
    if *code == SqlState::LOCK_NOT_AVAILABLE
        || *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::T_R_DEADLOCK_DETECTED
    {
        return Error::Busy;
    }
    if *code == SqlState::DISK_FULL {
        return Error::Storage("the PostgreSQL server's disk is full".into());
    }
    if *code == SqlState::READ_ONLY_SQL_TRANSACTION && !closed {
        return Error::Storage(format!(
            "PostgreSQL at {} accepts no writes (a read-only standby, or a read-only \
             transaction); point the database URL at the primary",
            url.describe()
        ));
    }
    if code.code().starts_with("08") || code.code().starts_with("57P") {
        return Error::Storage(format!(
            "the connection to PostgreSQL at {} was lost ({}); it is reopened on the next \
             request",
            url.describe(),
            db.message()
        ));
    }
    Error::Storage(format!(
        "PostgreSQL at {} refused a statement: {} (SQLSTATE {})",
        url.describe(),
        db.message(),
        code.code()
    ))
}

#[cfg(test)]
mod tests {
    use super::DatabaseUrl;

    #[test]
    fn a_database_url_never_shows_its_password() {
        let u = DatabaseUrl::parse("postgres://ann:s3cret-pw@db.internal:6432/team").unwrap();
        assert_eq!(u.describe(), "postgres://ann@db.internal:6432/team");
        assert!(!format!("{u:?}").contains("s3cret"));
        let kv = DatabaseUrl::parse("host=/run/pg user=ann password=s3cret-pw dbname=t").unwrap();
        assert!(!kv.describe().contains("s3cret"), "{}", kv.describe());
    }

    #[test]
    fn a_bad_database_url_is_refused_without_repeating_it() {
        for bad in [
            "mysql://ann:s3cret-pw@db/x",
            "s3cret-pw",
            "postgres://ann:s3cret-pw@db:notaport/x",
        ] {
            let e = DatabaseUrl::parse(bad).unwrap_err().to_string();
            assert!(!e.contains("s3cret"), "{e}");
            assert!(e.contains("postgres://"), "{e}");
        }
    }
}
