//! The `application/x-www-form-urlencoded` body parser of the token, introspection, revocation
//! and exchange requests (`oauth::Form`). Oracle: an accepted body never holds a single-valued
//! parameter twice, never more fields than the limit, and every value it reports is one the
//! body spelled.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mandate_core::oauth::Form;

fuzz_target!(|body: &[u8]| {
    let Ok(form) = Form::parse(body) else { return };
    for name in [
        "grant_type", "client_assertion", "client_assertion_type", "client_id", "scope",
        "subject_token", "subject_token_type", "token", "token_type_hint",
    ] {
        let pairs: Vec<_> = form_pairs(body).into_iter().filter(|(k, v)| k == name && !v.is_empty()).collect();
        match form.get(name) {
            Some(v) => {
                assert_eq!(pairs.len(), 1, "{name} accepted while repeated");
                assert_eq!(pairs[0].1, v);
            }
            None => assert!(pairs.is_empty(), "{name} lost"),
        }
    }
    for name in ["resource", "audience"] {
        let n = form_pairs(body).into_iter().filter(|(k, v)| k == name && !v.is_empty()).count();
        assert_eq!(form.all(name).len(), n);
    }
});

/// The pairs as the WHATWG parser reads them, independently of the core's handling.
fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    body.split(|b| *b == b'&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = match p.iter().position(|b| *b == b'=') {
                Some(i) => (&p[..i], &p[i + 1..]),
                None => (p, &p[p.len()..]),
            };
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &[u8]) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < s.len() && hex(s[i + 1]).is_some() && hex(s[i + 2]).is_some() => {
                out.push(hex(s[i + 1]).unwrap_or(0) * 16 + hex(s[i + 2]).unwrap_or(0));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}
