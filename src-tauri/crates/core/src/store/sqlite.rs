//! SQLite below the seam: the data folder, opening the database safely, and running the
//! seam's statements through rusqlite.
//!
//! WAL with `synchronous=FULL` (the only setting that survived simulated power cuts here, see
//! SECURITY.md), foreign keys on, a busy timeout so two processes queue instead of failing.
//! Statements are prepared once per connection (`prepare_cached`) and parameters are bound
//! borrowed, so the seam adds no copy to the hot paths.
//!
//! What it is not: the place for queries. Those live with the core module that owns them.

use std::path::Path;
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef as SqlValueRef};
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::{Tx, ValueRef};
use crate::error::{Error, Result};

/// The database file name inside the data folder.
pub const DB_FILE: &str = "mandate.db";

/// Make sure the data folder exists and is writable, creating it (mode 0700) if needed.
pub fn prepare_data_dir(dir: &Path) -> Result<()> {
    let fail = |reason: String| Error::DataDir {
        path: dir.to_path_buf(),
        reason,
    };
    if dir.exists() && !dir.is_dir() {
        return Err(fail("it is a file, not a folder".into()));
    }
    if !dir.exists() {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(dir)
            .map_err(|e| fail(format!("it could not be created ({e})")))?;
    }
    // Probe writability: SQLite would otherwise fail later with a vaguer message.
    let probe = dir.join(format!(".mandate-write-probe-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| fail(format!("it is not writable ({})", e.kind())))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// The files beside the database that hold data: SQLite's write-ahead log and shared-memory
/// index (which copy the database file's mode when SQLite creates them).
const DB_COMPANIONS: [&str; 2] = ["-wal", "-shm"];

/// Open (creating if needed) and migrate the database in `dir`. The database (and its WAL and
/// shared-memory files) are the owner's alone (0600), also in a folder that existed before
/// (`private_file`).
pub(crate) fn open(dir: &Path) -> Result<Connection> {
    prepare_data_dir(dir)?;
    let path = dir.join(DB_FILE);
    let private = |p: &Path, r: std::io::Result<()>| {
        r.map_err(|e| Error::DataDir {
            path: p.to_path_buf(),
            reason: format!("its permissions could not be narrowed to the owner ({e})"),
        })
    };
    // Create the file ourselves, 0600, before SQLite would create it 0644 under the umask.
    if let Err(e) = crate::private_file::options()
        .write(true)
        .create_new(true)
        .open(&path)
        && e.kind() != std::io::ErrorKind::AlreadyExists
    {
        return Err(Error::DataDir {
            path: path.clone(),
            reason: format!("the database could not be created ({e})"),
        });
    }
    for p in std::iter::once(path.clone()).chain(
        DB_COMPANIONS
            .iter()
            .map(|s| dir.join(format!("{DB_FILE}{s}"))),
    ) {
        private(&p, crate::private_file::narrow(&p))?;
    }
    let conn = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| Error::DataDir {
        path: path.clone(),
        reason: format!("the database could not be opened ({e})"),
    })?;
    configure(&conn)?;
    super::schema::migrate_sqlite(&conn, &path)?;
    Ok(conn)
}

/// A read-only connection to the (already migrated) database in `dir`.
pub(crate) fn open_reader(dir: &Path) -> Result<Connection> {
    let c = Connection::open_with_flags(
        dir.join(DB_FILE),
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.busy_timeout(Duration::from_secs(10))?;
    c.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(c)
}

/// Narrow the other data files an older installation may have left readable to others: the
/// checkpoint file, the HTTPS certificate and the endpoint's lock file (`serve.lock`, written by
/// `mandate-server`); their writers now create them 0600.
pub fn narrow_data_files(dir: &Path) -> Result<()> {
    for name in [
        crate::audit::checkpoint::FILE_NAME,
        crate::tls::CERT_FILE,
        "serve.lock",
    ] {
        let p = dir.join(name);
        crate::private_file::narrow(&p).map_err(|e| Error::DataDir {
            path: p.clone(),
            reason: format!("its permissions could not be narrowed to the owner ({e})"),
        })?;
    }
    Ok(())
}

/// Prepared statements kept per connection: every statement of the hot paths (issuance,
/// group commit, audit appends) plus the views a window asks for meanwhile.
const STATEMENT_CACHE: usize = 256;

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::Storage(format!(
            "the database refused write-ahead logging (journal mode {mode})"
        )));
    }
    conn.execute_batch(
        "PRAGMA synchronous=FULL;
         PRAGMA foreign_keys=ON;
         PRAGMA journal_size_limit=67108864;
         PRAGMA fullfsync=ON;",
    )?;
    Ok(())
}

impl rusqlite::ToSql for ValueRef<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            ValueRef::Null => SqlValueRef::Null,
            ValueRef::Int(i) => SqlValueRef::Integer(i),
            ValueRef::Text(s) => SqlValueRef::Text(s.as_bytes()),
            ValueRef::Blob(b) => SqlValueRef::Blob(b),
        }))
    }
}

fn bind(
    stmt: &mut rusqlite::CachedStatement<'_>,
    params: &[&dyn super::ToParam],
) -> rusqlite::Result<()> {
    let expected = stmt.parameter_count();
    if expected != params.len() {
        return Err(rusqlite::Error::InvalidParameterCount(
            params.len(),
            expected,
        ));
    }
    for (i, p) in params.iter().enumerate() {
        stmt.raw_bind_parameter(i + 1, p.to_param())?;
    }
    Ok(())
}

pub(super) fn execute(c: &Connection, sql: &str, params: &[&dyn super::ToParam]) -> Result<usize> {
    let mut stmt = c.prepare_cached(sql)?;
    bind(&mut stmt, params)?;
    Ok(stmt.raw_execute()?)
}

pub(super) fn for_each(
    c: &Connection,
    sql: &str,
    params: &[&dyn super::ToParam],
    f: &mut dyn FnMut(&rusqlite::Row<'_>) -> Result<bool>,
) -> Result<()> {
    let mut stmt = c.prepare_cached(sql)?;
    bind(&mut stmt, params)?;
    let mut rows = stmt.raw_query();
    while let Some(r) = rows.next()? {
        if !f(r)? {
            break;
        }
    }
    Ok(())
}

pub(super) fn column<'r>(r: &'r rusqlite::Row<'r>, i: usize) -> Result<ValueRef<'r>> {
    Ok(match r.get_ref(i)? {
        SqlValueRef::Null => ValueRef::Null,
        SqlValueRef::Integer(n) => ValueRef::Int(n),
        SqlValueRef::Text(t) => ValueRef::Text(std::str::from_utf8(t).map_err(|_| {
            Error::Storage(format!("a stored text value is not UTF-8 (column {i})"))
        })?),
        SqlValueRef::Blob(b) => ValueRef::Blob(b),
        SqlValueRef::Real(_) => {
            return Err(Error::Storage(format!(
                "a stored value is unreadable (column {i} holds a fraction)"
            )));
        }
    })
}

fn run(c: &Connection, sql: &str) -> Result<()> {
    c.prepare_cached(sql)?.execute([])?;
    Ok(())
}

pub(super) fn write<T>(c: &mut Connection, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
    let run = || {
        // Dropping the transaction (an error, or a panic unwinding through) rolls it back.
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&Tx::sqlite(&tx))?;
        tx.commit()?;
        Ok(out)
    };
    run().map_err(|e| name_read_only(c, e))
}

/// A filesystem that turns read-only under an open database (ext4 remounts itself read-only
/// after a disk error; an administrator's forced remount) fails SQLite's next write with
/// EROFS, which SQLite reports only as "disk I/O error". When a write fails with a storage
/// error and the database's filesystem is now read-only, say that, and what to do, instead.
/// Other errors pass unchanged.
fn name_read_only(c: &Connection, e: Error) -> Error {
    match (&e, c.path()) {
        (Error::Storage(_), Some(path)) if filesystem_read_only(Path::new(path)) => {
            Error::Storage(crate::error::DATABASE_READ_ONLY.into())
        }
        _ => e,
    }
}

/// Whether the filesystem holding the database at `path` refuses writes now, found by creating
/// (and removing) a probe file beside it. Neither the mount flags nor `access(2)` show ext4's
/// emergency read-only state, and opening the database file itself is out of the question:
/// closing any descriptor of it would drop SQLite's POSIX locks (ARCHITECTURE.md, the
/// `private_file::narrow` bug).
fn filesystem_read_only(path: &Path) -> bool {
    let Some(dir) = path.parent() else {
        return false;
    };
    let probe = dir.join(format!(".mandate-write-probe-{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            false
        }
        Err(e) => e.kind() == std::io::ErrorKind::ReadOnlyFilesystem,
    }
}

pub(super) fn snapshot<T>(c: &mut Connection, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
    run(c, "BEGIN")?;
    let out = f(&Tx::sqlite(c));
    // Ending a read transaction cannot lose anything; if it fails, the next BEGIN reports it.
    let _ = run(c, "COMMIT");
    out
}

pub(super) fn savepoint<T>(c: &Connection, f: impl FnOnce() -> Result<T>) -> Result<T> {
    run(c, "SAVEPOINT mandate_write")?;
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    let ok = matches!(out, Ok(Ok(_)));
    let end = if ok {
        run(c, "RELEASE mandate_write")
    } else {
        run(c, "ROLLBACK TO mandate_write").and_then(|()| run(c, "RELEASE mandate_write"))
    };
    match out {
        Err(panic) => std::panic::resume_unwind(panic),
        Ok(r) => {
            let v = r?;
            end?;
            Ok(v)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn the_database_and_its_wal_are_0600_in_a_folder_that_already_existed() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let c = open(dir.path()).unwrap();
        c.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .unwrap();
        for f in [DB_FILE, "mandate.db-wal", "mandate.db-shm"] {
            assert_eq!(mode(&dir.path().join(f)), 0o600, "{f}");
        }
        drop(c);
        // An older installation's 0644 database is narrowed when it is opened (the WAL went
        // with the last connection).
        std::fs::set_permissions(
            dir.path().join(DB_FILE),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        drop(open(dir.path()).unwrap());
        assert_eq!(mode(&dir.path().join(DB_FILE)), 0o600);
    }

    #[test]
    fn refuses_a_file_where_the_folder_should_be() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"").unwrap();
        let err = open(&file).unwrap_err().to_string();
        assert!(err.contains("not a folder"), "{err}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn refuses_a_read_only_folder_with_a_clear_message() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ro = dir.path().join("ro");
        std::fs::create_dir(&ro).unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o500)).unwrap();
        // Root ignores permission bits; /proc is read-only even for root.
        let ro = if std::fs::write(ro.join("x"), b"").is_ok() {
            std::path::PathBuf::from("/proc/self")
        } else {
            ro
        };
        let err = open(&ro).unwrap_err().to_string();
        assert!(
            err.contains("not writable") && err.contains("MANDATE_DATA_DIR"),
            "{err}"
        );
    }
}
