//! The SQLite store: opening the database safely and migrating its schema.
//!
//! WAL with `synchronous=FULL` (the only setting that survived simulated power cuts here, see
//! SECURITY.md), foreign keys on, a busy timeout so two processes queue instead of failing.
//! Migrations run all-or-nothing in one transaction and a database from a newer Mandate is
//! refused (STYLE invariant 7). Queries live with the code that owns them (`registry`, `audit`);
//! this module only owns the connection and the schema.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::error::{Error, Result};

/// The database file name inside the data folder.
pub const DB_FILE: &str = "mandate.db";

/// Each entry migrates from schema `index` to `index + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/001_initial.sql"),
    include_str!("migrations/002_oauth.sql"),
    include_str!("migrations/003_audit.sql"),
    include_str!("migrations/004_broker.sql"),
    include_str!("migrations/005_audit_members.sql"),
    include_str!("migrations/006_jti_log.sql"),
    include_str!("migrations/007_registry_generation.sql"),
    include_str!("migrations/008_credentials.sql"),
    include_str!("migrations/009_mcp.sql"),
    include_str!("migrations/010_audit_tags.sql"),
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

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
pub fn open(dir: &Path) -> Result<Connection> {
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
    migrate(&conn, &path)?;
    Ok(conn)
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

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(Duration::from_secs(10))?;
    // Room for the hot paths' cached statements (issuance, group commit, audit appends).
    conn.set_prepared_statement_cache_capacity(64);
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

fn migrate(conn: &Connection, path: &Path) -> Result<()> {
    // IMMEDIATE: two processes opening a fresh folder at once must not both migrate.
    let mut conn_tx = unchecked_immediate(conn)?;
    let found: i64 = conn_tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(Error::DatabaseTooNew {
            path: PathBuf::from(path),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        conn_tx.execute_batch(sql)?;
        conn_tx.pragma_update(None, "user_version", (i + 1) as i64)?;
    }
    conn_tx.set_drop_behavior(rusqlite::DropBehavior::Commit);
    conn_tx.commit()?;
    Ok(())
}

/// Start a `BEGIN IMMEDIATE` transaction on a shared connection reference.
fn unchecked_immediate(conn: &Connection) -> Result<rusqlite::Transaction<'_>> {
    Ok(rusqlite::Transaction::new_unchecked(
        conn,
        TransactionBehavior::Immediate,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_a_fresh_folder_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let c = open(dir.path()).unwrap();
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let fk: i64 = c
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(fk, 1);
        let sync: i64 = c.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
        assert_eq!(sync, 2, "synchronous=FULL");
        drop(c);
        open(dir.path()).unwrap();
    }

    #[test]
    fn upgrading_to_the_jti_log_keeps_every_used_jti() {
        let dir = tempfile::tempdir().unwrap();
        prepare_data_dir(dir.path()).unwrap();
        // A schema-5 database (before the log) with two used jtis.
        let c = Connection::open(dir.path().join(DB_FILE)).unwrap();
        for (i, sql) in MIGRATIONS[..5].iter().enumerate() {
            c.execute_batch(sql).unwrap();
            c.pragma_update(None, "user_version", (i + 1) as i64)
                .unwrap();
        }
        c.execute_batch(
            "INSERT INTO oauth_used_jtis (client, jti, expires_at) VALUES
                 ('agent-a', 'late', 200), ('dpop:xyz', 'early', 100);",
        )
        .unwrap();
        drop(c);
        let c = open(dir.path()).unwrap();
        let rows: Vec<(i64, String, String, i64)> = c
            .prepare("SELECT seq, client, jti, expires_at FROM oauth_used_jtis ORDER BY seq")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            rows,
            vec![
                (1, "dpop:xyz".into(), "early".into(), 100),
                (2, "agent-a".into(), "late".into(), 200)
            ]
        );
        // And the replay memory refuses them.
        let used = crate::oauth::replay::UsedJtis::default();
        assert!(!used.consume(&c, "agent-a", "late", 200, 0).unwrap());
        assert!(used.consume(&c, "agent-a", "fresh", 300, 0).unwrap());
    }

    #[test]
    fn refuses_a_database_from_a_newer_version() {
        let dir = tempfile::tempdir().unwrap();
        drop(open(dir.path()).unwrap());
        let c = Connection::open(dir.path().join(DB_FILE)).unwrap();
        c.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(c);
        let err = open(dir.path()).unwrap_err();
        assert!(matches!(err, Error::DatabaseTooNew { .. }));
        assert!(
            err.to_string().contains("newer version of Mandate"),
            "{err}"
        );
    }

    #[test]
    fn a_failing_migration_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        let c = Connection::open(&path).unwrap();
        // A table the first migration creates, so migration 1 fails half-way.
        c.execute_batch("CREATE TABLE agent_scopes (x INTEGER);")
            .unwrap();
        drop(c);
        assert!(open(dir.path()).is_err());
        let c = Connection::open(&path).unwrap();
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 0);
        let n: i64 = c
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name IN ('members','agents')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 0, "no table of the failed migration survives");
    }

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
