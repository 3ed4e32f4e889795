//! What signing inside a PKCS#11 token costs a team server, for `docs/BENCHMARKS.md` (not a
//! test): Ed25519 signatures of a token-sized message through `Pkcs11Keys` (CKM_EDDSA, a pooled
//! session per thread, each signature checked against the public key as the server does),
//! beside ed25519-dalek in memory (the laptop's keychain key), on 1 and 4 threads.
//!
//! Run inside `scripts/with-softhsm` (token `t0`):
//!   scripts/with-softhsm cargo run --release -p mandate-pkcs11 --example sign_cost -- 20000
//! Prints one JSON line per run: signer, threads, signatures, per second, µs per signature.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark tool"
)]

use std::sync::Arc;
use std::time::Instant;

use mandate_core::secret::Sensitive;
use mandate_core::vault::{Ed25519Signer, KeyVault};
use mandate_pkcs11::{Pkcs11Keys, Token, TokenSpec};

fn run(name: &str, signer: Arc<dyn Ed25519Signer>, threads: usize, n: usize) {
    let msg = vec![b'x'; 400];
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (s, msg) = (signer.clone(), msg.clone());
            std::thread::spawn(move || {
                for _ in 0..n / threads {
                    s.try_sign(&msg).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{{\"signer\":\"{name}\",\"threads\":{threads},\"signatures\":{n},\"per_second\":{:.0},\"us_each\":{:.1}}}",
        n as f64 / secs,
        secs * 1e6 / n as f64
    );
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let module = std::env::var("MANDATE_TEST_PKCS11_MODULE")
        .expect("run inside scripts/with-softhsm (MANDATE_TEST_PKCS11_MODULE)");
    let token = Token::open(
        &TokenSpec {
            module: module.into(),
            label: "t0".into(),
        },
        Sensitive::new(std::env::var("MANDATE_PKCS11_PIN").unwrap()),
    )
    .unwrap();
    let keys = Pkcs11Keys(token);
    let hsm = keys.generate(&|_| "bench/issuer-key".into()).unwrap();
    let mem: Arc<dyn Ed25519Signer> = Arc::new(mandate_core::keys::generate());
    for threads in [1, 4] {
        run("softhsm2", hsm.clone(), threads, n);
        run("memory", mem.clone(), threads, n);
    }
    keys.destroy("bench/issuer-key").unwrap();
}
