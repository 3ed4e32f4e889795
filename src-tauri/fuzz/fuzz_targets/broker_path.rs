//! Path confinement of proxied calls (`broker::path::confine`) and action matching. Oracle: a
//! path that passes has no `.` or `..` segment in any spelling, no empty segment, no encoded or
//! raw slash, backslash or control character, and no double encoding, so an upstream that
//! decodes once more still sees the same segments under the connection's base path.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use mandate_core::broker::path::{confine, matching_actions};
use mandate_core::model::ConnectionAction;

#[derive(Arbitrary, Debug)]
struct Input {
    path: String,
    method: u8,
}

fn actions() -> Vec<ConnectionAction> {
    ["repo.read=GET:/repos/**", "issues.write=POST:/repos/*/*/issues", "user.read=GET:/user", "any=*:/v1/*"]
        .iter()
        .map(|a| ConnectionAction::parse(a).expect("a valid action"))
        .collect()
}

fuzz_target!(|input: Input| {
    let Ok(p) = confine(&input.path) else { return };
    assert_eq!(p.raw, input.path);
    assert!(p.raw.starts_with('/') && !p.raw.contains("//") && !p.raw.contains('\\'));
    let last = p.segments.len().saturating_sub(1);
    for (i, s) in p.segments.iter().enumerate() {
        assert!(!s.is_empty() || i == last, "an empty segment passed");
        let bare = s.split(';').next().unwrap_or("");
        assert!(bare != "." && bare != "..", "a dot segment passed: {s:?}");
        assert!(!s.contains('/') && !s.contains('\\') && !s.contains('%'), "{s:?} passed");
        assert!(!s.chars().any(char::is_control), "a control character passed");
        // Decoding once more changes nothing an upstream could act on.
        assert!(!s.contains("%2"), "double encoding passed");
    }
    let method = ["GET", "POST", "PUT", "DELETE", "get", "OPTIONS"][usize::from(input.method) % 6];
    let acts = actions();
    for a in matching_actions(&acts, method, &p) {
        assert!(a.method == "*" || a.method.eq_ignore_ascii_case(method));
    }
});
