//! The storage seam: one SQL-level interface under the core's rules, with two stores below it,
//! SQLite (the default: a file in the data folder) and PostgreSQL 15+ (a team's server).
//!
//! The rules stay in the core: every query is written once, in the core module that owns it,
//! against [`Tx`]. What differs between the stores lives here and nowhere else:
//!
//! - **Opening and migrating** ([`Store::open`]): SQLite in WAL with `synchronous=FULL`;
//!   PostgreSQL through `tokio-postgres` on a dedicated I/O thread ([`postgres`]). Each store
//!   has its own migration files (`migrations/sqlite/`, `migrations/postgres/`), numbered by
//!   the same schema versions; they run all-or-nothing in one transaction, and a database
//!   written by a newer Mandate is refused with a message ([`schema`]).
//! - **Transactions** ([`Conn::write`], [`Conn::snapshot`], [`Conn::auto`]): a write
//!   transaction serialises every writer of the installation: SQLite's `BEGIN IMMEDIATE`, and
//!   on PostgreSQL `pg_advisory_xact_lock` taken first in every write transaction, across
//!   processes and server instances. So the audit chain, which reads the previous hash, stays
//!   strictly linear on both, and a change commits with its audit event or not at all.
//! - **Placeholders**: shared SQL uses `?1`, `?2` ... (SQLite's own); PostgreSQL gets `$1`,
//!   `$2` ..., translated once per statement and cached with it ([`sql`]).
//! - **Values** ([`ValueRef`], [`Value`]): `Null | Int(i64) | Text | Blob`. Integers are
//!   `BIGINT` on PostgreSQL, blobs `BYTEA`, booleans stored as 0/1 integers on both.
//!
//! Shared SQL is the subset both engines run the same way: `ON CONFLICT` (never `INSERT OR`),
//! `RETURNING` (never `last_insert_rowid()`), `coalesce`, `CAST(x AS BIGINT)` around `sum`,
//! explicit comparisons (`has_secret = 1`, not `has_secret`). Where a query cannot be shared
//! (JSON inside an event body, index hints), the owner branches on [`Tx::dialect`] in place,
//! beside the other spelling.
//!
//! What it is not: an ORM or a repository layer. It never decides anything; it carries SQL.

pub mod postgres;
pub mod schema;
pub mod sql;
pub mod sqlite;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub use postgres::DatabaseUrl;
pub use schema::SCHEMA_VERSION;
pub use sqlite::{DB_FILE, narrow_data_files, prepare_data_dir};

/// Which SQL engine is below the seam.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// Pick the spelling of a statement for this engine (for the few that cannot be shared).
    pub fn pick<'a>(self, sqlite: &'a str, postgres: &'a str) -> &'a str {
        match self {
            Dialect::Sqlite => sqlite,
            Dialect::Postgres => postgres,
        }
    }
}

/// A value bound to a statement or read from a column, borrowed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    Null,
    Int(i64),
    Text(&'a str),
    Blob(&'a [u8]),
}

/// An owned [`ValueRef`], for parameter lists built at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

/// Something that can be bound to a statement parameter.
pub trait ToParam {
    fn to_param(&self) -> ValueRef<'_>;
}

impl<T: ToParam + ?Sized> ToParam for &T {
    fn to_param(&self) -> ValueRef<'_> {
        (**self).to_param()
    }
}

impl ToParam for ValueRef<'_> {
    fn to_param(&self) -> ValueRef<'_> {
        *self
    }
}

impl ToParam for Value {
    fn to_param(&self) -> ValueRef<'_> {
        match self {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Int(*i),
            Value::Text(s) => ValueRef::Text(s),
            Value::Blob(b) => ValueRef::Blob(b),
        }
    }
}

macro_rules! int_param {
    ($($t:ty),*) => {$(
        impl ToParam for $t {
            fn to_param(&self) -> ValueRef<'_> {
                ValueRef::Int(i64::from(*self))
            }
        }
    )*};
}
int_param!(i64, i32, u32, i16, u16, u8);

/// Counts, lengths and positions; none comes near 2^63, and one that did would be stored as
/// the largest integer rather than wrap to a negative one.
macro_rules! wide_int_param {
    ($($t:ty),*) => {$(
        impl ToParam for $t {
            fn to_param(&self) -> ValueRef<'_> {
                ValueRef::Int(i64::try_from(*self).unwrap_or(i64::MAX))
            }
        }
    )*};
}
wide_int_param!(u64, usize);

impl ToParam for bool {
    fn to_param(&self) -> ValueRef<'_> {
        ValueRef::Int(i64::from(*self))
    }
}

impl ToParam for str {
    fn to_param(&self) -> ValueRef<'_> {
        ValueRef::Text(self)
    }
}

impl ToParam for String {
    fn to_param(&self) -> ValueRef<'_> {
        ValueRef::Text(self)
    }
}

impl ToParam for [u8] {
    fn to_param(&self) -> ValueRef<'_> {
        ValueRef::Blob(self)
    }
}

impl ToParam for Vec<u8> {
    fn to_param(&self) -> ValueRef<'_> {
        ValueRef::Blob(self)
    }
}

impl<const N: usize> ToParam for [u8; N] {
    fn to_param(&self) -> ValueRef<'_> {
        ValueRef::Blob(self)
    }
}

impl<T: ToParam> ToParam for Option<T> {
    fn to_param(&self) -> ValueRef<'_> {
        match self {
            Some(v) => v.to_param(),
            None => ValueRef::Null,
        }
    }
}

/// A statement's parameters: `params![a, b, c]` binds `?1`, `?2`, `?3`.
macro_rules! params {
    () => {
        &[] as &[&dyn $crate::store::ToParam]
    };
    ($($p:expr),+ $(,)?) => {
        &[$(&$p as &dyn $crate::store::ToParam),+] as &[&dyn $crate::store::ToParam]
    };
}
pub(crate) use params;

/// A column value converted to a Rust type.
pub trait FromColumn: Sized {
    /// `Err` says what was found instead (for the error message).
    fn from_column(v: ValueRef<'_>) -> std::result::Result<Self, String>;
}

fn found(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Null => "NULL".into(),
        ValueRef::Int(_) => "an integer".into(),
        ValueRef::Text(_) => "text".into(),
        ValueRef::Blob(_) => "a blob".into(),
    }
}

impl FromColumn for i64 {
    fn from_column(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        match v {
            ValueRef::Int(i) => Ok(i),
            o => Err(format!("expected an integer, found {}", found(o))),
        }
    }
}

macro_rules! narrow_int_column {
    ($($t:ty),*) => {$(
        impl FromColumn for $t {
            fn from_column(v: ValueRef<'_>) -> std::result::Result<Self, String> {
                let i = i64::from_column(v)?;
                <$t>::try_from(i).map_err(|_| format!("{i} is out of range"))
            }
        }
    )*};
}
narrow_int_column!(i32, u32, u64, usize, u16, u8);

impl FromColumn for bool {
    fn from_column(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        Ok(i64::from_column(v)? != 0)
    }
}

impl FromColumn for String {
    fn from_column(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        match v {
            ValueRef::Text(s) => Ok(s.to_owned()),
            o => Err(format!("expected text, found {}", found(o))),
        }
    }
}

impl FromColumn for Vec<u8> {
    fn from_column(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        match v {
            ValueRef::Blob(b) => Ok(b.to_vec()),
            o => Err(format!("expected a blob, found {}", found(o))),
        }
    }
}

impl FromColumn for Value {
    fn from_column(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        Ok(match v {
            ValueRef::Null => Value::Null,
            ValueRef::Int(i) => Value::Int(i),
            ValueRef::Text(s) => Value::Text(s.to_owned()),
            ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        })
    }
}

impl<T: FromColumn> FromColumn for Option<T> {
    fn from_column(v: ValueRef<'_>) -> std::result::Result<Self, String> {
        match v {
            ValueRef::Null => Ok(None),
            v => T::from_column(v).map(Some),
        }
    }
}

/// One result row.
pub struct Row<'r>(RowInner<'r>);

enum RowInner<'r> {
    Sqlite(&'r rusqlite::Row<'r>),
    Postgres(&'r tokio_postgres::Row),
}

impl fmt::Debug for Row<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Row").finish_non_exhaustive()
    }
}

impl<'r> Row<'r> {
    /// Column `i` (from 0), borrowed from the row.
    pub fn get_ref(&self, i: usize) -> Result<ValueRef<'r>> {
        match &self.0 {
            RowInner::Sqlite(r) => sqlite::column(r, i),
            RowInner::Postgres(r) => postgres::column(r, i),
        }
    }

    /// Column `i` as bytes borrowed from the row (an error if it is not a blob).
    pub fn get_blob(&self, i: usize) -> Result<&'r [u8]> {
        match self.get_ref(i)? {
            ValueRef::Blob(b) => Ok(b),
            o => Err(Error::Storage(format!(
                "a stored value is unreadable (column {i}: expected a blob, found {})",
                found(o)
            ))),
        }
    }

    /// Column `i` as text borrowed from the row (an error if it is not text).
    pub fn get_str(&self, i: usize) -> Result<&'r str> {
        match self.get_ref(i)? {
            ValueRef::Text(t) => Ok(t),
            o => Err(Error::Storage(format!(
                "a stored value is unreadable (column {i}: expected text, found {})",
                found(o)
            ))),
        }
    }

    /// Column `i` (from 0) as a `T`.
    pub fn get<T: FromColumn>(&self, i: usize) -> Result<T> {
        T::from_column(self.get_ref(i)?)
            .map_err(|e| Error::Storage(format!("a stored value is unreadable (column {i}: {e})")))
    }
}

/// A connection inside a transaction (or, through [`Conn::auto`], outside one): the one way
/// core code reads and writes.
pub struct Tx<'c>(TxInner<'c>);

enum TxInner<'c> {
    Sqlite(&'c rusqlite::Connection),
    Postgres(&'c postgres::PgConn),
}

impl fmt::Debug for Tx<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Tx").field(&self.dialect()).finish()
    }
}

impl<'c> Tx<'c> {
    pub(crate) fn sqlite(c: &'c rusqlite::Connection) -> Self {
        Tx(TxInner::Sqlite(c))
    }

    /// Which engine this is, for the few statements spelled differently.
    pub fn dialect(&self) -> Dialect {
        match self.0 {
            TxInner::Sqlite(_) => Dialect::Sqlite,
            TxInner::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Run a statement; the number of rows it changed.
    pub fn execute(&self, sql: &str, params: &[&dyn ToParam]) -> Result<usize> {
        match self.0 {
            TxInner::Sqlite(c) => sqlite::execute(c, sql, params),
            TxInner::Postgres(c) => c.execute(sql, params),
        }
    }

    /// The first row of a query, through `f`; an error if there is none.
    pub fn query_row<T>(
        &self,
        sql: &str,
        params: &[&dyn ToParam],
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<T> {
        self.query_opt(sql, params, f)?
            .ok_or_else(|| Error::Storage("a query expected a row and found none".into()))
    }

    /// The first row of a query through `f`, or `None` when it returns no row.
    pub fn query_opt<T>(
        &self,
        sql: &str,
        params: &[&dyn ToParam],
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<Option<T>> {
        let mut f = Some(f);
        let mut out = None;
        self.for_each_until(sql, params, false, &mut |r| {
            if let Some(f) = f.take() {
                out = Some(f(r)?);
            }
            Ok(false)
        })?;
        Ok(out)
    }

    /// Every row of a query through `f`.
    pub fn query_map<T>(
        &self,
        sql: &str,
        params: &[&dyn ToParam],
        mut f: impl FnMut(&Row<'_>) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        self.for_each_until(sql, params, false, &mut |r| {
            out.push(f(r)?);
            Ok(true)
        })?;
        Ok(out)
    }

    /// Every row of a query through `f`, one at a time (streamed, for long scans such as
    /// verifying or exporting the whole audit log).
    pub fn query_each(
        &self,
        sql: &str,
        params: &[&dyn ToParam],
        mut f: impl FnMut(&Row<'_>) -> Result<()>,
    ) -> Result<()> {
        self.for_each_until(sql, params, true, &mut |r| {
            f(r)?;
            Ok(true)
        })
    }

    /// Rows through `f`, streamed, until it returns `false`.
    pub fn query_while(
        &self,
        sql: &str,
        params: &[&dyn ToParam],
        mut f: impl FnMut(&Row<'_>) -> Result<bool>,
    ) -> Result<()> {
        self.for_each_until(sql, params, true, &mut f)
    }

    /// Rows through `f` until it returns `false`.
    fn for_each_until(
        &self,
        sql: &str,
        params: &[&dyn ToParam],
        stream: bool,
        f: &mut dyn FnMut(&Row<'_>) -> Result<bool>,
    ) -> Result<()> {
        match self.0 {
            TxInner::Sqlite(c) => {
                sqlite::for_each(c, sql, params, &mut |r| f(&Row(RowInner::Sqlite(r))))
            }
            TxInner::Postgres(c) => {
                c.for_each(sql, params, stream, &mut |r| f(&Row(RowInner::Postgres(r))))
            }
        }
    }

    /// Run several statements without parameters (schema changes, tests).
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        match self.0 {
            TxInner::Sqlite(c) => Ok(c.execute_batch(sql)?),
            TxInner::Postgres(c) => c.batch(sql),
        }
    }

    /// Run `f` inside a savepoint: if it fails (or panics), only its own changes are undone
    /// and the transaction goes on. The group committer gives each write one.
    pub fn savepoint<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        match self.0 {
            TxInner::Sqlite(c) => sqlite::savepoint(c, || f(self)),
            TxInner::Postgres(c) => c.savepoint(|| f(self)),
        }
    }
}

/// One connection to the store. Not shared between threads at once: the core keeps each
/// behind a mutex (the write connection) or in a small pool (the endpoint's readers).
pub struct Conn(ConnInner);

enum ConnInner {
    Sqlite(rusqlite::Connection),
    Postgres(Box<postgres::PgConn>),
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Conn").field(&self.dialect()).finish()
    }
}

impl Conn {
    pub fn dialect(&self) -> Dialect {
        match self.0 {
            ConnInner::Sqlite(_) => Dialect::Sqlite,
            ConnInner::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Run `f` in a write transaction and commit; roll back if it fails or panics. Only one
    /// write transaction of the installation runs at a time, in any process or server
    /// instance (SQLite `BEGIN IMMEDIATE`; PostgreSQL `pg_advisory_xact_lock` first thing),
    /// so what `f` reads cannot change under it before it commits.
    pub fn write<T>(&mut self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        match &mut self.0 {
            ConnInner::Sqlite(c) => sqlite::write(c, f),
            ConnInner::Postgres(c) => c.write(f),
        }
    }

    /// Run `f` in a read-only transaction: every statement sees one snapshot, the newest
    /// committed when it starts.
    pub fn snapshot<T>(&mut self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        match &mut self.0 {
            ConnInner::Sqlite(c) => sqlite::snapshot(c, f),
            ConnInner::Postgres(c) => c.snapshot(f),
        }
    }

    /// This connection outside an explicit transaction (as [`Conn::auto`], for code that
    /// holds the connection for a few statements).
    pub fn tx(&mut self) -> Result<Tx<'_>> {
        match &mut self.0 {
            ConnInner::Sqlite(c) => Ok(Tx::sqlite(c)),
            ConnInner::Postgres(c) => c.auto_tx(),
        }
    }

    /// Run `f` outside an explicit transaction: each statement sees the newest commit and a
    /// statement that writes commits on its own. For single reads and for tests.
    pub fn auto<T>(&mut self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        match &mut self.0 {
            ConnInner::Sqlite(c) => f(&Tx::sqlite(c)),
            ConnInner::Postgres(c) => c.auto(f),
        }
    }
}

/// Where an installation's database is.
#[derive(Debug, Clone)]
pub enum Location {
    /// SQLite: `mandate.db` in this data folder.
    Folder(PathBuf),
    /// PostgreSQL at this URL.
    Postgres(DatabaseUrl),
}

impl Location {
    /// For messages: a path, or a PostgreSQL address without its password.
    pub fn describe(&self) -> String {
        match self {
            Location::Folder(d) => d.join(DB_FILE).display().to_string(),
            Location::Postgres(u) => u.describe(),
        }
    }
}

/// An opened, migrated store: opens more connections to it.
#[derive(Debug)]
pub struct Store {
    location: Location,
    dialect: Dialect,
}

impl Store {
    /// Open the store at `location` (creating and migrating it if needed) and return it with
    /// its first connection, which the core uses for writes.
    pub fn open(location: Location) -> Result<(Store, Conn)> {
        let conn = match &location {
            Location::Folder(dir) => Conn(ConnInner::Sqlite(sqlite::open(dir)?)),
            Location::Postgres(url) => {
                let mut c = postgres::PgConn::connect(url)?;
                schema::migrate_postgres(&mut c, url)?;
                Conn(ConnInner::Postgres(Box::new(c)))
            }
        };
        let dialect = conn.dialect();
        Ok((Store { location, dialect }, conn))
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Another connection for reads only (SQLite opens the file read-only; PostgreSQL opens a
    /// session whose transactions are read-only).
    pub fn reader(&self) -> Result<Conn> {
        Ok(match &self.location {
            Location::Folder(dir) => Conn(ConnInner::Sqlite(sqlite::open_reader(dir)?)),
            Location::Postgres(url) => Conn(ConnInner::Postgres(Box::new(
                postgres::PgConn::connect_reader(url)?,
            ))),
        })
    }

    /// Another read-write connection (a second writer in tests, a background job).
    pub fn connect(&self) -> Result<Conn> {
        Ok(match &self.location {
            Location::Folder(dir) => Conn(ConnInner::Sqlite(sqlite::open(dir)?)),
            Location::Postgres(url) => Conn(ConnInner::Postgres(Box::new(
                postgres::PgConn::connect(url)?,
            ))),
        })
    }
}

/// The SQLite database path in `dir` (for messages and tests).
pub fn sqlite_path(dir: &Path) -> PathBuf {
    dir.join(DB_FILE)
}
