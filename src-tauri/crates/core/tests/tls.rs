//! The endpoint's loopback TLS certificate: exactly the loopback names, a server certificate
//! that is not a CA, the private key in the keychain and nowhere in the data folder, reused
//! while valid, renewed before it expires, replaced when its key is gone, rotated on request,
//! and every creation audited.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use mandate_core::Mandate;
use mandate_core::audit::Actor;
use mandate_core::clock::ManualClock;
use mandate_core::secret::{Keychain, MemoryKeychain, SecretRef};
use mandate_core::store::testing::{TestStore, each_store};
use mandate_core::tls::{CERT_FILE, VALID_DAYS};
use x509_parser::extensions::GeneralName;

struct Fx<'a> {
    s: &'a TestStore,
    m: Mandate,
    kc: Arc<MemoryKeychain>,
    clock: Arc<ManualClock>,
}

fn fx(s: &TestStore) -> Fx<'_> {
    let kc = Arc::new(MemoryKeychain::new());
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap(),
    ));
    let m = Mandate::open(
        s.options(kc.clone(), Actor::app("test", "tester"))
            .clock(clock.clone()),
    )
    .unwrap();
    Fx { s, m, kc, clock }
}

fn tls_keys(kc: &MemoryKeychain) -> Vec<String> {
    kc.accounts()
        .into_iter()
        .filter(|a| a.contains("/tls-key/"))
        .collect()
}

fn created_events(m: &Mandate) -> usize {
    m.audit_events(None, 1000, None)
        .unwrap()
        .iter()
        .filter(|e| e.action == "endpoint.tls_certificate_created")
        .count()
}

/// Every file under `dir`, read as bytes.
fn files(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn the_certificate_names_exactly_the_loopback_names_and_its_key_stays_in_the_keychain() {
    each_store(|s| {
        let f = fx(s);
        let t = f.m.loopback_tls().unwrap();
        assert!(t.created);
        assert_eq!(t.cert_path, f.s.dir.path().join(CERT_FILE));

        let (_, cert) = x509_parser::parse_x509_certificate(&t.cert_der).unwrap();
        let sans: BTreeSet<String> = cert
            .subject_alternative_name()
            .unwrap()
            .expect("a subjectAltName extension")
            .value
            .general_names
            .iter()
            .map(|g| match g {
                GeneralName::DNSName(d) => format!("dns:{d}"),
                GeneralName::IPAddress(ip) => match ip.len() {
                    4 => format!(
                        "ip:{}",
                        std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*ip).unwrap())
                    ),
                    16 => format!(
                        "ip:{}",
                        std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*ip).unwrap())
                    ),
                    n => format!("ip of {n} bytes"),
                },
                other => format!("other:{other:?}"),
            })
            .collect();
        let want: BTreeSet<String> = ["ip:127.0.0.1", "ip:::1", "dns:localhost"]
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(sans, want);
        // A server certificate, not a CA: trusting it trusts nothing else.
        assert!(!cert.is_ca());
        let eku = cert
            .extended_key_usage()
            .unwrap()
            .expect("extendedKeyUsage");
        assert!(eku.value.server_auth);
        assert!(!eku.value.any);
        // Valid now, for about VALID_DAYS.
        let now = f.m.now().timestamp();
        let v = cert.validity();
        assert!(v.not_before.timestamp() <= now && now < v.not_after.timestamp());
        let days = (v.not_after.timestamp() - now) / 86_400;
        assert!((VALID_DAYS - 1..=VALID_DAYS).contains(&days), "{days}");
        // The public key in the certificate is the key's.
        let pair = rcgen::KeyPair::try_from(t.key_pkcs8.expose().as_slice()).unwrap();
        assert_eq!(
            pair.public_key_raw(),
            cert.public_key().subject_public_key.data.as_ref()
        );

        // The private key: in the keychain, one item, and in no file of the data folder, in any
        // encoding.
        assert_eq!(tls_keys(&f.kc).len(), 1, "{:?}", f.kc.accounts());
        let key_der = t.key_pkcs8.expose().clone();
        let b64 = mandate_core::keys::b64url(&key_der);
        let data = files(f.s.dir.path());
        // Nor in the database (PostgreSQL's rows are not in the folder).
        assert!(!f.s.holds("PRIVATE KEY") && !f.s.holds(&b64));
        assert!(data.iter().any(|(p, _)| p.ends_with(CERT_FILE)));
        for (path, bytes) in &data {
            assert!(
                !contains(bytes, b"PRIVATE KEY"),
                "{} holds a PEM private key",
                path.display()
            );
            assert!(
                !contains(bytes, &key_der),
                "{} holds the key's DER",
                path.display()
            );
            assert!(
                !contains(bytes, b64.as_bytes()),
                "{} holds the key in base64url",
                path.display()
            );
        }
        let pem = std::fs::read_to_string(&t.cert_path).unwrap();
        assert_eq!(pem, t.cert_pem);
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(pem.matches("-----BEGIN").count(), 1);
        // Nothing secret in the audit trail either.
        let events = serde_json::to_string(&f.m.audit_events(None, 100, None).unwrap()).unwrap();
        assert!(!events.contains(&b64));
        assert_eq!(created_events(&f.m), 1);
        // Debug output of the bundle hides the key.
        assert!(!format!("{t:?}").contains(&b64));
    });
}

#[test]
fn the_certificate_is_reused_renewed_before_expiry_and_replaced_without_its_key() {
    each_store(|s| {
        let f = fx(s);
        let first = f.m.loopback_tls().unwrap();
        // Used again: the same certificate, nothing created, nothing audited.
        let again = f.m.loopback_tls().unwrap();
        assert!(!again.created);
        assert_eq!(again.fingerprint, first.fingerprint);
        assert_eq!(again.key_pkcs8.expose(), first.key_pkcs8.expose());
        assert_eq!(created_events(&f.m), 1);

        // Fewer than 30 days left: renewed, the old key deleted from the keychain.
        f.clock.advance(Duration::days(VALID_DAYS - 20));
        let renewed = f.m.loopback_tls().unwrap();
        assert!(renewed.created);
        assert_ne!(renewed.fingerprint, first.fingerprint);
        assert_eq!(tls_keys(&f.kc).len(), 1, "{:?}", f.kc.accounts());
        assert_eq!(created_events(&f.m), 2);

        // Its key gone from the keychain: a new certificate rather than one nobody can serve.
        for a in tls_keys(&f.kc) {
            f.kc.delete(&SecretRef { account: a }).unwrap();
        }
        let replaced = f.m.loopback_tls().unwrap();
        assert!(replaced.created);
        assert_ne!(replaced.fingerprint, renewed.fingerprint);

        // A file that is not a certificate (or another certificate) is replaced too.
        std::fs::write(&replaced.cert_path, "not a certificate").unwrap();
        let fixed = f.m.loopback_tls().unwrap();
        assert!(fixed.created);
        assert_eq!(
            std::fs::read_to_string(&fixed.cert_path).unwrap(),
            fixed.cert_pem
        );

        // Rotation on request: a new certificate and key, audited.
        let before = created_events(&f.m);
        let rotated = f.m.rotate_loopback_tls().unwrap();
        assert_ne!(rotated.fingerprint, fixed.fingerprint);
        assert_eq!(created_events(&f.m), before + 1);
        assert_eq!(tls_keys(&f.kc).len(), 1, "{:?}", f.kc.accounts());
        assert_eq!(f.m.loopback_tls().unwrap().fingerprint, rotated.fingerprint);
    });
}

#[test]
fn a_locked_keychain_creates_nothing() {
    each_store(|s| {
        let f = fx(s);
        f.kc.fail_with(Some(mandate_core::secret::KeychainError::Locked {
            detail: "locked".into(),
            fix: "unlock it".into(),
        }));
        let err = f.m.loopback_tls().unwrap_err();
        assert!(err.to_string().contains("locked"), "{err}");
        assert!(!f.m.tls_cert_path().exists());
        f.kc.fail_with(None);
        assert_eq!(created_events(&f.m), 0);
    });
}
