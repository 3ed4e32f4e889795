//! Noticing that the database file was swapped under a running installation, and failing closed.
//!
//! Why: a person (or a sync tool, or a backup restore) can put an older copy of `mandate.db` in
//! place while the server runs. Renamed into place, the server would go on writing into the
//! old, now nameless file, and everything it acknowledged from then on would vanish at the next
//! start; copied over in place, it would read an older registry (an agent revoked since would
//! look active again, the registry memo's generation could repeat) and append to an older audit
//! trail. Neither may happen silently.
//!
//! How: when the installation opens, it records the file's identity (device and inode on Unix)
//! and, after every write, the newest audit sequence number it committed. Before each write
//! transaction (the group committer's batches and single writes alike, so before every audited
//! decision) it checks that the path still names the same file and that the trail in it is not
//! shorter than what it committed. On a mismatch it refuses that write and every later one
//! until the installation is opened again, with a sentence saying what happened and what to
//! do. Every decision of the token endpoint and the broker is audited before it is answered,
//! so refusing writes refuses service: fail closed.
//!
//! On PostgreSQL (a team server) there is no file to watch; the trail's length is checked
//! alone, which catches a database restored from an older backup under running instances (the
//! log only grows, whichever instance wrote it).
//!
//! What it is not: tamper evidence (the audit chain and its checkpoints are), nor protection
//! against someone who edits rows in place (`mandate audit verify` finds that). It costs one
//! `stat` and one indexed `max(seq)` per write transaction.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::store::{Location, Tx, params};
use crate::{Error, Result};

/// What identifies the file a path names (device and inode on Unix; elsewhere nothing, and
/// only the audit trail's length is checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId(u64, u64);

fn file_id(path: &Path) -> std::io::Result<Option<FileId>> {
    let meta = std::fs::metadata(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        Ok(Some(FileId(meta.dev(), meta.ino())))
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        Ok(None)
    }
}

fn newest_seq(conn: &Tx<'_>) -> Result<i64> {
    conn.query_row(
        "SELECT coalesce(max(seq), 0) FROM audit_events",
        params![],
        |r| r.get(0),
    )
}

/// The database file this installation opened, and how far its trail had grown.
#[derive(Debug)]
pub(crate) struct StoreIdentity {
    /// The SQLite file (`None` on PostgreSQL, where only the trail's length is checked).
    path: Option<PathBuf>,
    /// The store, for messages.
    what: String,
    file: Option<FileId>,
    /// The newest audit sequence number this process saw committed.
    high_seq: AtomicI64,
    /// Set at the first mismatch: from then on every write is refused with this sentence.
    broken: OnceLock<String>,
}

impl StoreIdentity {
    /// Record the identity of the store at `location`, just opened as `conn`.
    pub(crate) fn new(location: &Location, conn: &Tx<'_>) -> Result<Self> {
        let path = match location {
            Location::Folder(d) => Some(d.join(crate::store::DB_FILE)),
            Location::Postgres(_) => None,
        };
        let file = match &path {
            Some(p) => file_id(p)
                .map_err(|e| Error::Storage(format!("could not read {}: {e}", p.display())))?,
            None => None,
        };
        Ok(StoreIdentity {
            high_seq: AtomicI64::new(newest_seq(conn)?),
            what: match &path {
                Some(p) => format!("the database file {}", p.display()),
                None => format!("the database {}", location.describe()),
            },
            path,
            file,
            broken: OnceLock::new(),
        })
    }

    fn fail(&self, why: String) -> Error {
        let why = self.broken.get_or_init(|| {
            tracing::error!("{why}");
            why
        });
        Error::Storage(why.clone())
    }

    /// Before a write transaction on `conn`: the path still names the file opened, and its
    /// audit trail is not shorter than what this process committed.
    pub(crate) fn check(&self, conn: &Tx<'_>) -> Result<()> {
        if let Some(why) = self.broken.get() {
            return Err(Error::Storage(why.clone()));
        }
        let what_to_do = "Mandate refuses every change and request until it is restarted: stop \
                          it, put the right database file back (or keep the one now there, \
                          knowing what it lacks), run `mandate audit verify`, then start it again";
        match self.path.as_deref().map(file_id) {
            None => {}
            Some(Ok(now)) if now == self.file => {}
            Some(Ok(_)) => {
                return Err(self.fail(format!(
                    "the database file {} was replaced by another file while Mandate was \
                     running; {what_to_do}",
                    self.what.trim_start_matches("the database file ")
                )));
            }
            Some(Err(e)) => {
                return Err(self.fail(format!(
                    "the database file {} is gone or unreadable ({e}) while Mandate was \
                     running; {what_to_do}",
                    self.what.trim_start_matches("the database file ")
                )));
            }
        }
        let seq = newest_seq(conn)?;
        let high = self.high_seq.load(Ordering::SeqCst);
        if seq < high {
            return Err(self.fail(format!(
                "{} went back to an older copy while Mandate was running (its audit trail ends \
                 at event {seq}, but event {high} was already committed); {what_to_do}",
                self.what
            )));
        }
        Ok(())
    }

    /// After a write transaction committed on `conn`: remember how far the trail now reaches.
    pub(crate) fn committed(&self, conn: &Tx<'_>) {
        if let Ok(seq) = newest_seq(conn) {
            self.high_seq.fetch_max(seq, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;
    use rusqlite::Connection;

    fn db(dir: &Path) -> (Location, Connection) {
        let path = dir.join("mandate.db");
        let c = Connection::open(&path).unwrap();
        c.execute_batch("CREATE TABLE audit_events (seq INTEGER PRIMARY KEY, body BLOB)")
            .unwrap();
        (Location::Folder(dir.to_path_buf()), c)
    }

    #[test]
    fn a_database_file_renamed_into_place_is_refused_and_stays_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (loc, c) = db(dir.path());
        let path = dir.path().join("mandate.db");
        let id = StoreIdentity::new(&loc, &Tx::sqlite(&c)).unwrap();
        id.check(&Tx::sqlite(&c)).unwrap();
        let other = dir.path().join("older.db");
        std::fs::copy(&path, &other).unwrap();
        std::fs::rename(&other, &path).unwrap();
        let e = id.check(&Tx::sqlite(&c)).unwrap_err().to_string();
        assert!(e.contains("was replaced by another file"), "{e}");
        assert!(e.contains("restarted"), "{e}");
        // Putting it back does not lift the refusal: only a restart does.
        let e2 = id.check(&Tx::sqlite(&c)).unwrap_err().to_string();
        assert_eq!(e, e2);
    }

    #[test]
    fn an_older_copy_written_over_the_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (loc, c) = db(dir.path());
        c.execute("INSERT INTO audit_events (seq, body) VALUES (1, x'00')", [])
            .unwrap();
        let id = StoreIdentity::new(&loc, &Tx::sqlite(&c)).unwrap();
        c.execute("INSERT INTO audit_events (seq, body) VALUES (2, x'00')", [])
            .unwrap();
        id.committed(&Tx::sqlite(&c));
        id.check(&Tx::sqlite(&c)).unwrap();
        // The same file, its trail shorter than what was committed (as after an in-place copy).
        c.execute("DELETE FROM audit_events WHERE seq = 2", [])
            .unwrap();
        let e = id.check(&Tx::sqlite(&c)).unwrap_err().to_string();
        assert!(e.contains("went back to an older copy"), "{e}");
        assert!(e.contains("event 2 was already committed"), "{e}");
    }

    /// On both stores, through the real write path: a trail that lost committed events under
    /// a running handle (a restored backup) refuses the next change, naming the store.
    #[test]
    fn a_store_whose_trail_went_back_refuses_the_next_change_on_both_stores() {
        crate::store::testing::each_store(|s| {
            let m = s.open();
            m.add_member("ann", None).unwrap();
            m.add_member("bea", None).unwrap();
            s.conn()
                .write(|tx| {
                    tx.execute(
                        "DELETE FROM audit_events WHERE seq = (SELECT max(seq) FROM audit_events)",
                        params![],
                    )
                })
                .unwrap();
            let e = m.add_member("cat", None).unwrap_err().to_string();
            assert!(e.contains("went back to an older copy"), "{e}");
            assert!(
                m.list_members()
                    .unwrap()
                    .iter()
                    .all(|x| x.name.as_str() != "cat")
            );
        });
    }
}
