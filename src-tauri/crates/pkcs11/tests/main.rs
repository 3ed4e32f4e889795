//! `mandate-pkcs11` against a real SoftHSM2 token (Debian's `softhsm2`), in a private token
//! folder made for this test run by `scripts/with-softhsm` (`SOFTHSM2_CONF`), never the
//! machine's own.
//!
//! - the issuer key is made inside the token, signs there (verified with ed25519-dalek), is
//!   sensitive and not extractable, is found again by a fresh login, and is gone once destroyed;
//! - sealing: round trip, and any change (a byte, the account, the key) refuses to open;
//! - wrong PIN and unknown token fail with sentences that name the fix;
//! - a whole installation on the token: issuer key, checkpoints, evidence bundle verified,
//!   connection secrets sealed (never plain in the database), both keys rotated.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use mandate_core::audit::Actor;
use mandate_core::audit::verify::{BundleOptions, check_bundle};
use mandate_core::sealed::Sealer;
use mandate_core::secret::{KeychainError, MemoryKeychain, Sensitive};
use mandate_core::vault::KeyVault;
use mandate_core::{Mandate, NewConnection, OpenOptions};
use mandate_pkcs11::{Pkcs11Keys, Pkcs11Sealer, Token, TokenSpec};

const TOKENS: usize = 8;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run these tests inside scripts/with-softhsm (a private SoftHSM2 \
             token store; scripts/test does), e.g. `scripts/with-softhsm cargo test -p \
             mandate-pkcs11`"
        )
    })
}

/// The SoftHSM2 module, as `scripts/with-softhsm` found it.
fn module() -> PathBuf {
    PathBuf::from(env("MANDATE_TEST_PKCS11_MODULE"))
}

fn pin() -> Sensitive<String> {
    Sensitive::new(env("MANDATE_PKCS11_PIN"))
}

/// A token of our own among `scripts/with-softhsm`'s `t0` ... `t7`, logged in.
fn token() -> Arc<Token> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let i = NEXT.fetch_add(1, Ordering::SeqCst);
    assert!(i < TOKENS - 1, "scripts/with-softhsm makes {TOKENS} tokens");
    Token::open(
        &TokenSpec {
            module: module(),
            label: format!("t{i}"),
        },
        pin(),
    )
    .unwrap()
}

fn reopen(t: &Token) -> Arc<Token> {
    Token::open(
        &TokenSpec {
            module: module(),
            label: t.label().to_string(),
        },
        pin(),
    )
    .unwrap()
}

#[test]
fn the_issuer_key_is_made_and_signs_inside_the_token_and_never_leaves_it() {
    let t = token();
    let keys = Pkcs11Keys(t.clone());
    let k = keys
        .generate(&|pk| format!("inst/issuer-key/{}", mandate_core::keys::thumbprint(pk)))
        .unwrap();
    let name = format!(
        "inst/issuer-key/{}",
        mandate_core::keys::thumbprint(&k.public_key())
    );
    let sig = k.try_sign(b"a JWS signing input").unwrap();
    k.public_key()
        .verify_strict(b"a JWS signing input", &sig)
        .unwrap();

    // Found again by another login, with the same public key; it signs the same (Ed25519 is
    // deterministic).
    let again = Pkcs11Keys(reopen(&t)).find(&name).unwrap().unwrap();
    assert_eq!(again.public_key(), k.public_key());
    assert_eq!(
        again.try_sign(b"a JWS signing input").unwrap().to_bytes(),
        sig.to_bytes()
    );

    // The private key is sensitive and was never extractable: the token will not hand it out.
    assert!(keys.is_locked_in(&name).unwrap());

    keys.destroy(&name).unwrap();
    assert!(keys.find(&name).unwrap().is_none());
    let e = k.try_sign(b"after").unwrap_err().to_string();
    assert!(e.contains("no key labelled"), "{e}");
    keys.destroy(&name).unwrap();
}

#[test]
fn sealed_secrets_open_only_unchanged_under_their_key_and_account() {
    let t = token();
    let s = Pkcs11Sealer(t.clone());
    s.generate("inst/sealing-key/a").unwrap();
    s.generate("inst/sealing-key/b").unwrap();
    let sealed = s
        .seal("inst/sealing-key/a", b"account-1", b"sk_live_secret")
        .unwrap();
    assert_eq!(sealed.len(), 12 + 14 + 16, "nonce, ciphertext, tag");
    assert!(!sealed.windows(14).any(|w| w == b"sk_live_secret"));
    assert_eq!(
        s.open("inst/sealing-key/a", b"account-1", &sealed)
            .unwrap()
            .expose(),
        b"sk_live_secret"
    );
    // Two seals of the same value differ (fresh nonces).
    assert_ne!(
        sealed,
        s.seal("inst/sealing-key/a", b"account-1", b"sk_live_secret")
            .unwrap()
    );
    let integrity = |r: Result<Sensitive<Vec<u8>>, KeychainError>| {
        let e = r.expect_err("must not open").to_string();
        assert!(e.contains("integrity"), "{e}");
    };
    integrity(s.open("inst/sealing-key/a", b"account-2", &sealed));
    integrity(s.open("inst/sealing-key/b", b"account-1", &sealed));
    for i in 0..sealed.len() {
        let mut bent = sealed.clone();
        bent[i] ^= 1;
        integrity(s.open("inst/sealing-key/a", b"account-1", &bent));
    }
    // Another login opens it too; a destroyed key opens nothing.
    let other = Pkcs11Sealer(reopen(&t));
    assert!(
        other
            .open("inst/sealing-key/a", b"account-1", &sealed)
            .is_ok()
    );
    s.destroy("inst/sealing-key/a").unwrap();
    let e = other
        .open("inst/sealing-key/a", b"account-1", &sealed)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("no key labelled"), "{e}");
}

#[test]
fn a_wrong_pin_or_an_unknown_token_says_what_to_fix() {
    let wrong = Token::open(
        &TokenSpec {
            module: module(),
            label: format!("t{}", TOKENS - 1),
        },
        Sensitive::new("not-the-pin".into()),
    )
    .unwrap_err()
    .to_string();
    assert!(
        wrong.contains("refused the PIN in MANDATE_PKCS11_PIN"),
        "{wrong}"
    );
    let missing = Token::open(
        &TokenSpec {
            module: module(),
            label: "no-such-token".into(),
        },
        pin(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        missing.contains("no PKCS#11 token labelled 'no-such-token'"),
        "{missing}"
    );
    assert!(missing.contains("t0"), "lists the tokens there: {missing}");
    let no_module = Token::open(
        &TokenSpec {
            module: "/nonexistent/libpkcs11.so".into(),
            label: "t0".into(),
        },
        pin(),
    )
    .unwrap_err()
    .to_string();
    assert!(no_module.contains("--pkcs11-module"), "{no_module}");
}

fn open_on(dir: &Path, t: &Arc<Token>) -> Mandate {
    Mandate::open(
        OpenOptions::new(
            dir,
            Arc::new(MemoryKeychain::new()),
            Actor::member("m-1", "founder"),
        )
        .issuer_keys(Arc::new(Pkcs11Keys(t.clone())))
        .sealed_secrets(Arc::new(Pkcs11Sealer(t.clone()))),
    )
    .unwrap()
}

#[test]
fn an_installation_on_the_token_signs_its_audit_trail_and_seals_its_secrets_and_rotates_both() {
    let t = token();
    let dir = tempfile::tempdir().unwrap();
    let m = open_on(dir.path(), &t);
    assert!(m.keychain_description().contains("sealed in the database"));
    assert!(m.issuer_keys_description().contains("PKCS#11 token"));
    // Init makes both keys in the token, each event naming who ran it.
    let init = m
        .init_team(
            "https://mandate.test:8443",
            "founder",
            None,
            mandate_core::team::DEFAULT_INVITE_TTL,
        )
        .unwrap();
    let made: Vec<_> = m
        .audit_events(None, 20, None)
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "secrets.sealing_key_created" || e.action == "issuer.key_created")
        .collect();
    assert_eq!(made.len(), 2, "{made:?}");
    assert!(made.iter().all(|e| e.actor.name == "founder"), "{made:?}");
    assert_eq!(init.admin.name.as_str(), "founder");
    m.add_connection(NewConnection {
        name: "stripe".into(),
        base_url: "https://api.stripe.com".into(),
        actions: vec!["charges.read=GET:/v1/charges".into()],
        trust_floor: None,
    })
    .unwrap();
    let secret = "sk_live_0123456789abcdef_team";
    m.set_connection_secret("stripe", Sensitive::new(secret.into()))
        .unwrap();
    assert_eq!(
        m.connection_secret("stripe").unwrap().unwrap().expose(),
        secret
    );

    let key = m.issuer_key().unwrap();
    let export = m
        .export_audit(&Default::default(), None)
        .expect("an export signed inside the token");
    let report = check_bundle(
        &export.bundle,
        &BundleOptions {
            pinned_keys: vec![mandate_core::keys::fingerprint(&key.public)],
            seen_checkpoints: vec![],
            witnesses: Vec::new(),
        },
    );
    assert!(report.ok(), "{report:?}");

    // A second handle (another server instance) reads the same key and secret.
    let m2 = open_on(dir.path(), &reopen(&t));
    assert_eq!(m2.issuer_key().unwrap().public, key.public);
    assert_eq!(
        m2.connection_secret("stripe").unwrap().unwrap().expose(),
        secret
    );

    // Rotation of the issuer key: a new key in the token, the old public key still published,
    // its private key destroyed in the token.
    let new_kid = m.rotate_issuer_key().unwrap();
    assert_ne!(new_kid, key.kid);
    let jwks = m.issuer_jwks().unwrap();
    let kids: Vec<&str> = jwks
        .keys
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, vec![new_kid.as_str(), key.kid.as_str()]);
    let old_name = format!("{}/issuer-key/{}", m.install_id(), key.kid);
    assert!(Pkcs11Keys(t.clone()).find(&old_name).unwrap().is_none());

    // Rotation of the sealing key: every secret sealed again, the old key destroyed.
    // Three sealed secrets: stripe's, the audit trail's tag key and the kept copy of the
    // newest checkpoint (both sealed in the database on a team server).
    let r = m.rotate_sealing_key().unwrap();
    assert_eq!(r.secrets, 3);
    assert_eq!(
        m2.connection_secret("stripe").unwrap().unwrap().expose(),
        secret
    );
    let sealer = Pkcs11Sealer(t.clone());
    for old in &r.retired {
        let e = sealer
            .open(old, b"x", &[0u8; 40])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("no key labelled"), "{e}");
    }

    // Nothing secret in the database files, whatever happened above.
    for f in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(f.unwrap().path()).unwrap();
        assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()));
    }
    // The trail names both rotations and who did them, and still verifies after them.
    let actions: Vec<String> = m
        .audit_events(None, 100, None)
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    for a in [
        "issuer.key_created",
        "issuer.key_rotated",
        "secrets.sealing_key_created",
        "secrets.sealing_key_rotated",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} in {actions:?}");
    }
    let export = m.export_audit(&Default::default(), None).unwrap();
    assert!(check_bundle(&export.bundle, &BundleOptions::default()).ok());
}
