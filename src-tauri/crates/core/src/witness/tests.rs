//! The witness's decisions and the server's bookkeeping, on real stores (SQLite, and
//! PostgreSQL when `MANDATE_TEST_POSTGRES` is set). The same with real processes, HTTP and a
//! history rewritten in PostgreSQL is `tests/team/witness.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use crate::Mandate;
use crate::audit::note::{Checkpoint, SignedCheckpoint};
use crate::audit::{Actor, Decision, NewEvent};
use crate::error::Error;
use crate::store::testing::{TestStore, each_store};
use mandate_audit_format::cosignature::{self, WitnessKey};

const URL: &str = "https://mandate.test:8443";

fn events(m: &Mandate, n: usize) {
    for i in 0..n {
        m.record(
            NewEvent::new(
                &Actor::member("m1", "alice"),
                "test.happened",
                Decision::Allow,
            )
            .details(serde_json::json!({ "i": i })),
        )
        .unwrap();
    }
}

fn actions(m: &Mandate) -> Vec<String> {
    m.audit_events(None, 1000, None)
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect()
}

/// One sync, as the client does it: begin, the proof if needed, finish, hand in.
fn sync(server: &Mandate, witness: &Mandate) -> crate::error::Result<u64> {
    let served = server.witness_checkpoint()?;
    let plan = witness.witness_begin(URL, &served, None)?;
    let proof = match plan.proof_needed() {
        Some((old, new)) => server.witness_consistency(old, new)?,
        None => Vec::new(),
    };
    let done = witness.witness_finish(&plan, &proof)?;
    server.accept_cosignature(done.size, &done.cosignature.line())?;
    Ok(done.size)
}

fn setup(s: &TestStore, w: &TestStore) -> (Mandate, Mandate, WitnessKey) {
    let server = s.open();
    let witness = w.open();
    let (key, made) = witness.witness_key(Some("witness.test/alice")).unwrap();
    assert!(made);
    assert_eq!(witness.witness_key(None).unwrap(), (key.clone(), false));
    server.add_witness(&key.name, &key.vkey()).unwrap();
    (server, witness, key)
}

#[test]
fn a_witness_cosigns_each_consistent_checkpoint_and_the_server_keeps_what_verifies() {
    each_store(|s| {
        let w = TestStore::sqlite();
        let (server, witness, key) = setup(s, &w);
        events(&server, 5);
        let first = sync(&server, &witness).unwrap();
        events(&server, 9);
        let second = sync(&server, &witness).unwrap();
        assert!(second > first, "{first} -> {second}");
        // Nothing new since: the same checkpoint again, cosigned again, kept once.
        assert!(sync(&server, &witness).unwrap() >= second);

        let kept = server.cosigned_checkpoints().unwrap();
        assert!(kept.len() >= 2, "{kept:?}");
        for note in &kept {
            cosignature::verify_note(note, &key).unwrap();
            // The log's own signature still verifies on the cosigned note.
            SignedCheckpoint::parse(note).unwrap();
        }
        let listed = server.witness(&key.name).unwrap();
        assert!(listed.last_cosigned_size.unwrap() >= second);
        assert!(actions(&server).contains(&"witness.cosigned".to_string()));
        assert!(actions(&witness).contains(&"witness.checkpoint_cosigned".to_string()));
        let seen = witness.witnessed_logs().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].origin, server.audit_origin());
    });
}

#[test]
fn a_rewritten_or_rolled_back_log_is_refused_loudly_recorded_and_not_cosigned() {
    let (s, w) = (TestStore::sqlite(), TestStore::sqlite());
    let (server, witness, _) = setup(&s, &w);
    events(&server, 6);
    sync(&server, &witness).unwrap();
    events(&server, 3);
    let seen = sync(&server, &witness).unwrap();
    let seen_root = witness.witnessed_logs().unwrap()[0].note.clone();

    // The operator holds the issuer key: it signs checkpoints over another history.
    let issuer = server.issuer_key().unwrap();
    let origin = server.audit_origin();
    let forged = |size: u64, root: [u8; 32]| -> String {
        Checkpoint {
            origin: origin.clone(),
            size,
            root,
            chain_head: [9; 32],
            time: "2026-12-04T22:00:00.000000Z".into(),
        }
        .sign_parts(&origin, &issuer.public, |m| issuer.signer.try_sign(m))
        .unwrap()
    };
    let served = |note: String| super::log::ServedCheckpoint {
        checkpoint: note,
        log_key: String::new(),
    };
    let before = witness.cosigned_count();

    // A larger tree whose proof cannot verify: the first `seen` events were rewritten.
    let plan = witness
        .witness_begin(URL, &served(forged(seen + 4, [7; 32])), None)
        .unwrap();
    assert_eq!(plan.proof_needed(), Some((seen, seen + 4)));
    let real = server.witness_consistency(seen - 2, seen).unwrap();
    let e = witness.witness_finish(&plan, &real).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::AuditFailed(_)), "{e:?}");
    assert!(msg.contains("REWRITTEN OR FORKED"), "{msg}");
    assert!(msg.contains(&format!("{seen} events")), "{msg}");
    assert!(msg.contains(&format!("{} events", seen + 4)), "{msg}");
    assert!(
        msg.contains("BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc="),
        "{msg}"
    );

    // A smaller tree (rolled back), and another root at the same size.
    let e = witness
        .witness_begin(URL, &served(forged(seen - 1, [5; 32])), None)
        .unwrap_err();
    assert!(e.to_string().contains("smaller than"), "{e}");
    let e = witness
        .witness_begin(URL, &served(forged(seen, [6; 32])), None)
        .unwrap_err();
    assert!(e.to_string().contains("for the same size"), "{e}");

    // Each refusal is in the witness's own trail; nothing was cosigned or remembered.
    let forks = actions(&witness)
        .iter()
        .filter(|a| *a == "witness.log_forked")
        .count();
    assert_eq!(forks, 3);
    assert_eq!(witness.cosigned_count(), before);
    assert_eq!(witness.witnessed_logs().unwrap()[0].note, seen_root);
    // The honest log still syncs afterwards: the refusal did not move what was seen.
    events(&server, 2);
    assert!(sync(&server, &witness).unwrap() > seen);
}

#[test]
fn a_checkpoint_from_another_key_or_log_is_refused() {
    let (s, w) = (TestStore::sqlite(), TestStore::sqlite());
    let (server, witness, _) = setup(&s, &w);
    events(&server, 2);
    sync(&server, &witness).unwrap();
    // Another team server (another log, another key) at the same URL.
    let other_store = TestStore::sqlite();
    let other = other_store.open();
    events(&other, 2);
    let e = witness
        .witness_begin(URL, &other.witness_checkpoint().unwrap(), None)
        .unwrap_err();
    assert!(e.to_string().contains("now serves the log"), "{e}");
    assert!(actions(&witness).contains(&"witness.checkpoint_refused".to_string()));
    // A first sync pinned to a given key refuses a checkpoint signed by another.
    let fresh = TestStore::sqlite();
    let w2 = fresh.open();
    w2.witness_key(Some("witness.test/bob")).unwrap();
    let pinned = server.witness_checkpoint().unwrap().log_key;
    let e = w2
        .witness_begin(
            "https://other.test",
            &other.witness_checkpoint().unwrap(),
            Some(&pinned),
        )
        .unwrap_err();
    assert!(e.to_string().contains("not signed by the log key"), "{e}");
}

#[test]
fn the_server_refuses_and_audits_cosignatures_it_cannot_verify() {
    each_store(|s| {
        let w = TestStore::sqlite();
        let (server, witness, key) = setup(s, &w);
        events(&server, 3);
        let served = server.witness_checkpoint().unwrap();
        let plan = witness.witness_begin(URL, &served, None).unwrap();
        let done = witness.witness_finish(&plan, &[]).unwrap();
        let line = done.cosignature.line();
        // For another checkpoint size.
        let e = server.accept_cosignature(done.size + 1, &line).unwrap_err();
        assert!(matches!(e, Error::Refused(_)), "{e:?}");
        // Tampered.
        let mut bent = done.cosignature.clone();
        bent.signature[0] ^= 1;
        let e = server
            .accept_cosignature(done.size, &bent.line())
            .unwrap_err();
        assert!(e.to_string().contains("does not verify"), "{e}");
        // By a witness nobody registered.
        let stranger_store = TestStore::sqlite();
        let stranger = stranger_store.open();
        stranger.witness_key(Some("witness.test/mallory")).unwrap();
        let plan = stranger.witness_begin(URL, &served, None).unwrap();
        let theirs = stranger.witness_finish(&plan, &[]).unwrap();
        let e = server
            .accept_cosignature(theirs.size, &theirs.cosignature.line())
            .unwrap_err();
        assert!(e.to_string().contains("team witness add"), "{e}");
        // Garbage.
        assert!(server.accept_cosignature(done.size, "hello").is_err());
        let refused = actions(&server)
            .iter()
            .filter(|a| *a == "witness.cosignature_refused")
            .count();
        assert_eq!(refused, 4);
        assert!(server.cosigned_checkpoints().unwrap().is_empty());
        // A removed witness's cosignatures stop counting.
        server.remove_witness(&key.name).unwrap();
        let e = server.accept_cosignature(done.size, &line).unwrap_err();
        assert!(e.to_string().contains("was removed"), "{e}");
    });
}

#[test]
fn registering_a_witness_checks_its_key_and_name() {
    let s = TestStore::sqlite();
    let m = s.open();
    let k = WitnessKey::new("witness.test/ann", crate::keys::generate().verifying_key()).unwrap();
    let e = m.add_witness("someone-else", &k.vkey()).unwrap_err();
    assert!(e.to_string().contains("not 'someone-else'"), "{e}");
    let e = m.add_witness("x", "not a key").unwrap_err();
    assert!(matches!(e, Error::Invalid(_)), "{e:?}");
    m.add_witness(&k.name, &k.vkey()).unwrap();
    assert!(matches!(
        m.add_witness(&k.name, &k.vkey()),
        Err(Error::AlreadyExists { .. })
    ));
    assert_eq!(m.witnesses().unwrap().len(), 1);
    assert!(actions(&m).contains(&"witness.added".to_string()));
}

impl Mandate {
    fn cosigned_count(&self) -> usize {
        self.audit_events(None, 1000, None)
            .unwrap()
            .iter()
            .filter(|e| e.action == "witness.checkpoint_cosigned")
            .count()
    }
}

#[test]
fn an_export_carries_the_cosignatures_and_verifying_with_witness_keys_checks_them() {
    use crate::audit::ExportSelection;
    use crate::audit::verify::{BundleOptions, ProblemKind, check_bundle};
    let (s, w) = (TestStore::sqlite(), TestStore::sqlite());
    let (server, witness, key) = setup(&s, &w);
    events(&server, 4);
    sync(&server, &witness).unwrap();
    events(&server, 2);
    let export = server
        .export_audit(&ExportSelection::default(), None)
        .unwrap();
    let check = |witnesses: Vec<String>| {
        check_bundle(
            &export.bundle,
            &BundleOptions {
                witnesses,
                ..Default::default()
            },
        )
    };
    // Without witnesses the bundle verifies as before; with the witness's key too, and the
    // report names the checkpoint it cosigned.
    assert!(check(vec![]).ok());
    let r = check(vec![key.vkey()]);
    assert!(r.ok(), "{:?}", r.problems);
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("witness witness.test/alice cosigned")),
        "{:?}",
        r.notes
    );
    // A witness that never cosigned: refused, with the reason.
    let stranger =
        WitnessKey::new("witness.test/zed", crate::keys::generate().verifying_key()).unwrap();
    let r = check(vec![stranger.vkey()]);
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
    assert_eq!(r.problems[0].kind, ProblemKind::MissingCosignature);
    assert!(
        r.problems[0]
            .message
            .contains("no checkpoint in this file is cosigned by witness witness.test/zed")
    );
    // A cosignature changed in the file: the seal breaks, and the witness's check says why.
    let text = String::from_utf8(export.bundle.clone()).unwrap();
    let line = cosignature::cosignatures(&server.cosigned_checkpoints().unwrap()[0])[0].line();
    let blob = line.rsplit_once(' ').unwrap().1;
    let mut bent: Vec<char> = blob.chars().collect();
    let at = bent.len() - 6;
    bent[at] = if bent[at] == 'A' { 'B' } else { 'A' };
    let bent: String = bent.into_iter().collect();
    let forged = text.replace(blob, &bent);
    assert_ne!(forged, text);
    let r = check_bundle(
        forged.as_bytes(),
        &BundleOptions {
            witnesses: vec![key.vkey()],
            ..Default::default()
        },
    );
    assert!(
        r.problems
            .iter()
            .any(|p| p.kind == ProblemKind::MissingCosignature
                && p.message.contains("does not verify")),
        "{:?}",
        r.problems
    );
}
