//! An event's RFC 8785 (JCS) canonical bytes, quickly in the common case.
//!
//! Why it exists: canonicalising every appended event with `serde_json_canonicalizer` was about
//! a fifth of the audit committer's CPU at full token load (docs/BENCHMARKS.md), because that
//! library buffers every property of every object and sorts them. For an event whose `details`
//! hold only what `append` accepts, plain `serde_json` output of a view whose fields are
//! declared in sorted order *is* the canonical form:
//!
//! - JCS sorts an object's properties by their UTF-16 code units. The view's field names are
//!   fixed ASCII, declared in order; the `details` objects must iterate in strictly increasing
//!   key order with every key below U+E000, where UTF-8 (byte) order and UTF-16 order agree.
//! - JCS escapes strings as ECMAScript's `JSON.stringify` does, which is what `serde_json`
//!   writes: `\"`, `\\`, `\b \t \n \f \r`, `\u00xx` (lowercase) for other controls, nothing
//!   else.
//! - JCS writes numbers as ECMAScript does; for integers below 2^53 in magnitude that is their
//!   plain decimal form, as `serde_json` writes them. Any other number takes the library path.
//!
//! Anything outside those conditions goes to `serde_json_canonicalizer`, which stays the
//! reference: a property test checks that both paths give the same bytes for generated events.
//!
//! What it is not: a JSON canonicaliser. It knows one shape, [`AuditEvent`].

use serde::Serialize;
use serde_json::Value;

use super::{Actor, AuditEvent, Decision, Target};
use crate::error::{Error, Result};

/// The RFC 8785 canonical bytes of an event.
pub fn canonical_bytes(ev: &AuditEvent) -> Result<Vec<u8>> {
    let out = if ev.seq < MAX_SAFE && plain(&ev.details) {
        serde_json::to_vec(&View::of(ev)).map_err(|e| e.to_string())
    } else {
        serde_json_canonicalizer::to_vec(ev).map_err(|e| e.to_string())
    };
    out.map_err(|e| Error::Storage(format!("could not canonicalise an audit event: {e}")))
}

/// Integers below this magnitude are written alike by ECMAScript and `serde_json`.
const MAX_SAFE: u64 = 1 << 53;

/// Whether `serde_json` writes `v` exactly as JCS does (see the module docs).
fn plain(v: &Value) -> bool {
    const MAX: u64 = MAX_SAFE;
    match v {
        Value::Null | Value::Bool(_) | Value::String(_) => true,
        Value::Number(n) => {
            n.as_u64().is_some_and(|u| u < MAX)
                || n.as_i64().is_some_and(|i| i.unsigned_abs() < MAX)
        }
        Value::Array(a) => a.iter().all(plain),
        Value::Object(o) => {
            let mut last: Option<&str> = None;
            o.iter().all(|(k, v)| {
                let in_order = last.is_none_or(|l| l < k.as_str());
                last = Some(k);
                in_order && k.chars().all(|c| c < '\u{E000}') && plain(v)
            })
        }
    }
}

/// [`AuditEvent`] with its fields in JCS order. Adding a field to the event without adding it
/// here fails `the_fast_path_writes_what_the_library_writes`.
#[derive(Serialize)]
struct View<'a> {
    action: &'a str,
    actor: ActorView<'a>,
    agent: Option<&'a str>,
    decision: Decision,
    details: &'a Value,
    on_behalf_of: Option<ActorView<'a>>,
    reason: Option<&'a str>,
    seq: u64,
    target: Option<TargetView<'a>>,
    time: &'a str,
    v: u32,
}

#[derive(Serialize)]
struct ActorView<'a> {
    id: &'a str,
    kind: &'a str,
    name: &'a str,
}

#[derive(Serialize)]
struct TargetView<'a> {
    id: &'a str,
    kind: &'a str,
    name: &'a str,
}

impl<'a> View<'a> {
    fn of(ev: &'a AuditEvent) -> Self {
        let actor = |a: &'a Actor| ActorView {
            id: &a.id,
            kind: &a.kind,
            name: &a.name,
        };
        View {
            action: &ev.action,
            actor: actor(&ev.actor),
            agent: ev.agent.as_deref(),
            decision: ev.decision,
            details: &ev.details,
            on_behalf_of: ev.on_behalf_of.as_ref().map(actor),
            reason: ev.reason.as_deref(),
            seq: ev.seq,
            target: ev.target.as_ref().map(|t: &'a Target| TargetView {
                id: &t.id,
                kind: &t.kind,
                name: &t.name,
            }),
            time: &ev.time,
            v: ev.v,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn actor() -> impl Strategy<Value = Actor> {
        (any::<String>(), any::<String>(), any::<String>()).prop_map(|(kind, id, name)| Actor {
            kind,
            id,
            name,
        })
    }

    /// JSON values of every kind, including fractions, big integers and keys from every plane,
    /// so that both paths are exercised.
    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|i| json!(i)),
            (-(1i64 << 53) + 1..(1i64 << 53)).prop_map(|i| json!(i)),
            any::<u64>().prop_map(|u| json!(u)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            any::<String>().prop_map(Value::String),
            "[ -~\\n\\t\\u{7f}\\u{2028}\\u{e9}]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        any::<String>(),
                        "[a-z_]{1,8}",
                        "[\\u{e000}-\\u{ffff}\\u{10000}-\\u{10ffff}a]{1,3}"
                    ],
                    inner,
                    0..5
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn event() -> impl Strategy<Value = AuditEvent> {
        (
            (
                any::<u32>(),
                prop_oneof![4 => 0..MAX_SAFE, 1 => any::<u64>()],
                any::<String>(),
                actor(),
            ),
            (
                prop::option::of(actor()),
                prop::option::of(any::<String>()),
                any::<String>(),
                prop::option::of((any::<String>(), any::<String>(), any::<String>())),
            ),
            (any::<bool>(), prop::option::of(any::<String>()), value()),
        )
            .prop_map(
                |(
                    (v, seq, time, actor),
                    (obo, agent, action, target),
                    (allow, reason, details),
                )| {
                    AuditEvent {
                        v,
                        seq,
                        time,
                        actor,
                        on_behalf_of: obo,
                        agent,
                        action,
                        target: target.map(|(kind, id, name)| Target { kind, id, name }),
                        decision: if allow {
                            Decision::Allow
                        } else {
                            Decision::Deny
                        },
                        reason,
                        details,
                    }
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn the_fast_path_writes_what_the_library_writes(ev in event()) {
            let ours = canonical_bytes(&ev).unwrap();
            let reference = serde_json_canonicalizer::to_vec(&ev).unwrap();
            prop_assert_eq!(String::from_utf8(ours).unwrap(), String::from_utf8(reference).unwrap());
        }
    }

    #[test]
    fn a_token_event_takes_the_fast_path_and_odd_details_do_not() {
        assert!(plain(
            &json!({"aud": ["https://api.github.com"], "exp": 1_790_000_000,
            "jti": "x", "scope": ["github:repo.read"], "n": -5, "ok": true, "none": null})
        ));
        assert!(!plain(&json!({"f": 1.5})));
        assert!(!plain(&json!({"big": 1u64 << 53})));
        assert!(!plain(&json!({"\u{e000}": 1})));
        assert!(!plain(&json!([{"\u{1F600}": 1}])));
    }
}
