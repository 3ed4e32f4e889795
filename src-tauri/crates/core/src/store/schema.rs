//! The schema's versions and the migrations that reach them, one list per store.
//!
//! Both stores count the same versions: schema N means the same tables, columns and rules on
//! SQLite and PostgreSQL, so a future change adds one file to each list. SQLite keeps the
//! version in `PRAGMA user_version` and has a file per version since the first. PostgreSQL
//! support began at schema 8, so its first file creates schema 8 in one step; later versions
//! add one file each. Migrations run in one transaction that also holds the writer lock
//! (`BEGIN IMMEDIATE`, or the advisory lock on PostgreSQL, whose DDL is transactional): two
//! processes opening a fresh store at once never both migrate, a migration that fails leaves
//! the schema as it was, and a store written by a newer Mandate is refused, never modified.
//!
//! What it is not: a general migration tool. There is no down-migration; an older build refuses
//! a newer store.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::postgres::PgConn;
use super::{DatabaseUrl, Tx, params};
use crate::error::{Error, Result};

/// One step: after `sql` has run, the schema is at `version`.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub sql: &'static str,
}

const fn m(version: i64, sql: &'static str) -> Migration {
    Migration { version, sql }
}

/// SQLite: every version from the first.
pub const SQLITE: &[Migration] = &[
    m(1, include_str!("migrations/sqlite/001_initial.sql")),
    m(2, include_str!("migrations/sqlite/002_oauth.sql")),
    m(3, include_str!("migrations/sqlite/003_audit.sql")),
    m(4, include_str!("migrations/sqlite/004_broker.sql")),
    m(5, include_str!("migrations/sqlite/005_audit_members.sql")),
    m(6, include_str!("migrations/sqlite/006_jti_log.sql")),
    m(
        7,
        include_str!("migrations/sqlite/007_registry_generation.sql"),
    ),
    m(8, include_str!("migrations/sqlite/008_credentials.sql")),
    m(9, include_str!("migrations/sqlite/009_mcp.sql")),
    m(10, include_str!("migrations/sqlite/010_audit_tags.sql")),
    m(11, include_str!("migrations/sqlite/011_team_server.sql")),
    m(12, include_str!("migrations/sqlite/012_trust.sql")),
    m(13, include_str!("migrations/sqlite/013_team_members.sql")),
    m(14, include_str!("migrations/sqlite/014_witness.sql")),
];

/// PostgreSQL: schema 8 in one step, then one file per version.
pub const POSTGRES: &[Migration] = &[
    m(8, include_str!("migrations/postgres/008_baseline.sql")),
    m(9, include_str!("migrations/postgres/009_mcp.sql")),
    m(10, include_str!("migrations/postgres/010_audit_tags.sql")),
    m(11, include_str!("migrations/postgres/011_team_server.sql")),
    m(12, include_str!("migrations/postgres/012_trust.sql")),
    m(13, include_str!("migrations/postgres/013_team_members.sql")),
    m(14, include_str!("migrations/postgres/014_witness.sql")),
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 14;

const _: () = {
    assert!(SQLITE[SQLITE.len() - 1].version == SCHEMA_VERSION);
    assert!(POSTGRES[POSTGRES.len() - 1].version == SCHEMA_VERSION);
};

fn too_new(location: String, found: i64, elsewhere: &'static str) -> Error {
    Error::DatabaseTooNew {
        location,
        found,
        supported: SCHEMA_VERSION,
        elsewhere,
    }
}

/// Migrate the SQLite database `conn` (at `path`) to [`SCHEMA_VERSION`].
pub(crate) fn migrate_sqlite(conn: &Connection, path: &Path) -> Result<()> {
    migrate_sqlite_with(conn, path, SQLITE)
}

pub(crate) fn migrate_sqlite_with(
    conn: &Connection,
    path: &Path,
    migrations: &[Migration],
) -> Result<()> {
    // IMMEDIATE: two processes opening a fresh folder at once must not both migrate.
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let found: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let target = migrations.last().map_or(0, |m| m.version);
    if found > target {
        return Err(too_new(
            path.display().to_string(),
            found,
            "point MANDATE_DATA_DIR at another folder",
        ));
    }
    for step in migrations.iter().filter(|m| m.version > found) {
        tx.execute_batch(step.sql)?;
        tx.pragma_update(None, "user_version", step.version)?;
    }
    tx.commit()?;
    Ok(())
}

/// Migrate the PostgreSQL database behind `conn` to [`SCHEMA_VERSION`].
pub(crate) fn migrate_postgres(conn: &mut PgConn, url: &DatabaseUrl) -> Result<()> {
    migrate_postgres_with(conn, url, POSTGRES)
}

pub(crate) fn migrate_postgres_with(
    conn: &mut PgConn,
    url: &DatabaseUrl,
    migrations: &[Migration],
) -> Result<()> {
    let target = migrations.last().map_or(0, |m| m.version);
    conn.write(|tx| {
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS mandate_schema (
                 id      INTEGER PRIMARY KEY CHECK (id = 1),
                 version BIGINT NOT NULL
             )",
        )?;
        let found = postgres_version(tx)?;
        if found > target {
            return Err(too_new(
                url.describe(),
                found,
                "point the database URL (--database or MANDATE_DATABASE_URL) at another database",
            ));
        }
        for step in migrations.iter().filter(|m| m.version > found) {
            tx.execute_batch(step.sql)?;
            tx.execute(
                "INSERT INTO mandate_schema (id, version) VALUES (1, ?1)
                 ON CONFLICT (id) DO UPDATE SET version = excluded.version",
                params![step.version],
            )?;
        }
        Ok(())
    })
}

/// The schema version recorded in a PostgreSQL database (0 when it has none).
pub(crate) fn postgres_version(tx: &Tx<'_>) -> Result<i64> {
    Ok(tx
        .query_opt(
            "SELECT version FROM mandate_schema WHERE id = 1",
            params![],
            |r| r.get(0),
        )?
        .unwrap_or(0))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests")]
mod tests {
    use super::*;
    use crate::store::testing::{TestStore, each_store};
    use crate::store::{Conn, Dialect, Location, Store};

    /// The version recorded in the store, read behind Mandate's back.
    fn version(s: &TestStore) -> i64 {
        match &s.database {
            None => rusqlite::Connection::open(s.dir.path().join(super::super::DB_FILE))
                .unwrap()
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .unwrap(),
            Some(_) => s.raw_conn().auto(postgres_version).unwrap(),
        }
    }

    fn set_version(s: &TestStore, v: i64) {
        match &s.database {
            None => rusqlite::Connection::open(s.dir.path().join(super::super::DB_FILE))
                .unwrap()
                .pragma_update(None, "user_version", v)
                .unwrap(),
            Some(_) => {
                s.raw_conn()
                    .auto(|tx| tx.execute("UPDATE mandate_schema SET version = ?1", params![v]))
                    .unwrap();
            }
        }
    }

    fn table_exists(conn: &mut Conn, name: &str) -> bool {
        conn.auto(|tx| {
            let sql = tx.dialect().pick(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() \
                 AND tablename = ?1",
            );
            tx.query_row(sql, params![name], |r| r.get::<i64>(0))
        })
        .unwrap()
            == 1
    }

    #[test]
    fn migrates_a_fresh_store_and_reopens() {
        each_store(|s| {
            drop(Store::open(s.location()).unwrap());
            assert_eq!(version(s), SCHEMA_VERSION);
            let (_, mut conn) = Store::open(s.location()).unwrap();
            assert!(table_exists(&mut conn, "audit_events"));
            if s.dialect() == Dialect::Sqlite {
                conn.auto(|tx| {
                    assert_eq!(
                        tx.query_row("PRAGMA foreign_keys", params![], |r| r.get::<i64>(0))?,
                        1
                    );
                    let sync =
                        tx.query_row("PRAGMA synchronous", params![], |r| r.get::<i64>(0))?;
                    assert_eq!(sync, 2, "synchronous=FULL");
                    Ok(())
                })
                .unwrap();
            }
        });
    }

    #[test]
    fn refuses_a_store_written_by_a_newer_version() {
        each_store(|s| {
            drop(Store::open(s.location()).unwrap());
            set_version(s, SCHEMA_VERSION + 1);
            let err = Store::open(s.location()).unwrap_err();
            assert!(
                matches!(err, Error::DatabaseTooNew { found, .. } if found == SCHEMA_VERSION + 1)
            );
            let msg = err.to_string();
            assert!(msg.contains("newer version of Mandate"), "{msg}");
            match s.dialect() {
                Dialect::Sqlite => assert!(msg.contains("MANDATE_DATA_DIR"), "{msg}"),
                Dialect::Postgres => assert!(msg.contains("MANDATE_DATABASE_URL"), "{msg}"),
            }
            // Refused, never modified.
            assert_eq!(version(s), SCHEMA_VERSION + 1);
        });
    }

    /// A next version whose second statement fails: its first statement must not survive.
    const BROKEN_NEXT: &str = "CREATE TABLE half_done (x BIGINT);
                               INSERT INTO no_such_table VALUES (1);";

    #[test]
    fn a_migration_that_fails_midway_leaves_the_schema_at_the_old_version() {
        each_store(|s| {
            drop(Store::open(s.location()).unwrap());
            let err = match s.location() {
                Location::Folder(dir) => {
                    let path = dir.join(super::super::DB_FILE);
                    let c = rusqlite::Connection::open(&path).unwrap();
                    let mut list = SQLITE.to_vec();
                    list.push(m(SCHEMA_VERSION + 1, BROKEN_NEXT));
                    migrate_sqlite_with(&c, &path, &list).unwrap_err()
                }
                Location::Postgres(url) => {
                    let mut c = PgConn::connect(&url).unwrap();
                    let mut list = POSTGRES.to_vec();
                    list.push(m(SCHEMA_VERSION + 1, BROKEN_NEXT));
                    migrate_postgres_with(&mut c, &url, &list).unwrap_err()
                }
            };
            assert!(err.to_string().contains("no_such_table"), "{err}");
            assert_eq!(version(s), SCHEMA_VERSION);
            assert!(!table_exists(&mut s.conn(), "half_done"));
            // And the store still opens at its version.
            drop(Store::open(s.location()).unwrap());
        });
    }

    #[test]
    fn a_first_migration_that_fails_leaves_nothing_behind() {
        each_store(|s| {
            // A table the first migration creates already exists, so it fails part-way.
            match s.location() {
                Location::Folder(dir) => {
                    std::fs::create_dir_all(&dir).unwrap();
                    rusqlite::Connection::open(dir.join(super::super::DB_FILE))
                        .unwrap()
                        .execute_batch("CREATE TABLE agent_keys (x INTEGER);")
                        .unwrap();
                }
                Location::Postgres(url) => {
                    PgConn::connect(&url)
                        .unwrap()
                        .auto(|tx| tx.execute_batch("CREATE TABLE agent_keys (x BIGINT)"))
                        .unwrap();
                }
            }
            assert!(Store::open(s.location()).is_err());
            let mut raw = s.raw_conn();
            for t in ["members", "agents", "audit_events", "mandate_schema"] {
                assert!(
                    !table_exists(&mut raw, t),
                    "{t} survived the failed migration"
                );
            }
        });
    }

    #[test]
    fn two_handles_opening_a_fresh_store_at_once_migrate_it_once() {
        each_store(|s| {
            let loc = s.location();
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    let loc = loc.clone();
                    std::thread::spawn(move || Store::open(loc).map(|_| ()))
                })
                .collect();
            for t in threads {
                t.join().unwrap().unwrap();
            }
            assert_eq!(version(s), SCHEMA_VERSION);
        });
    }

    #[test]
    fn upgrading_sqlite_to_the_jti_log_keeps_every_used_jti() {
        let dir = tempfile::tempdir().unwrap();
        super::super::prepare_data_dir(dir.path()).unwrap();
        let path = dir.path().join(super::super::DB_FILE);
        // A schema-5 database (before the log) with two used jtis.
        let c = rusqlite::Connection::open(&path).unwrap();
        migrate_sqlite_with(&c, &path, &SQLITE[..5]).unwrap();
        c.execute_batch(
            "INSERT INTO oauth_used_jtis (client, jti, expires_at) VALUES
                 ('agent-a', 'late', 200), ('dpop:xyz', 'early', 100);",
        )
        .unwrap();
        drop(c);
        let mut c = Store::open(Location::Folder(dir.path().to_path_buf()))
            .unwrap()
            .1;
        let rows: Vec<(i64, String, String, i64)> = c
            .auto(|tx| {
                tx.query_map(
                    "SELECT seq, client, jti, expires_at FROM oauth_used_jtis ORDER BY seq",
                    params![],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
            })
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
        let tx = c.tx().unwrap();
        assert!(!used.consume(&tx, "agent-a", "late", 200, 0).unwrap());
        assert!(used.consume(&tx, "agent-a", "fresh", 300, 0).unwrap());
    }
}
