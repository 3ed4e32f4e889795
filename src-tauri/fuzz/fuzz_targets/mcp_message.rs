//! The MCP gateway's message handling (`mandate-mcp`): one line from an agent or a server,
//! through what the relay does with it. The secrets are masked (as in what a server sends),
//! the envelope is read (`message::parse`), a request is classified by what it needs
//! (`gate::classify_request`), a list result is filtered to what the agent holds
//! (`gate::filter_list`), an outcome is read for the audit (`gate::outcome_of`), and a refusal
//! is written back (`gate::error_response`).
//!
//! Oracle, read with plain `serde_json` values: a message read has unique top-level members,
//! says `"jsonrpc": "2.0"` and is the kind it was classified as; a tool or prompt the gate says
//! is needed is the one the parameters name (given once); a method outside MCP's lists is
//! never relayed; a filtered list keeps only granted entries and every other member as it
//! was; a refusal is one JSON object carrying the request's id; masking keeps the length and
//! JSON validity and leaves no secret behind.
#![no_main]

use std::collections::BTreeSet;
use std::fmt;

use libfuzzer_sys::fuzz_target;
use mandate_core::mcp::Need;
use mandate_core::secret::Sensitive;
use mandate_mcp::gate::{self, ListKind};
use mandate_mcp::mask::Needles;
use mandate_mcp::message::{self, Message};
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Value, json};

const LIFECYCLE: &[&str] = &[
    "initialize",
    "ping",
    "logging/setLevel",
    "server/discover",
    "tasks/get",
    "tasks/list",
    "tasks/result",
    "tasks/cancel",
];
const RESOURCES: &[&str] = &[
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "subscriptions/listen",
];
const SECRETS: [&str; 2] = ["ghp_fuzzSECRET0123456789", "pa\"ss\\word-xyz"];

/// The member names of a JSON object, in order, duplicates kept.
struct Keys(Vec<String>);

impl<'de> Deserialize<'de> for Keys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Keys;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Keys, A::Error> {
                let mut keys = Vec::new();
                while let Some(k) = m.next_key::<String>()? {
                    m.next_value::<IgnoredAny>()?;
                    keys.push(k);
                }
                Ok(Keys(keys))
            }
        }
        d.deserialize_map(V)
    }
}

fn envelope_members_unique(text: &str) -> bool {
    let keys = serde_json::from_str::<Keys>(text).expect("an object").0;
    ["jsonrpc", "id", "method", "params", "result", "error"]
        .iter()
        .all(|m| keys.iter().filter(|k| k == m).count() <= 1)
}

fn unique_members(text: &str) -> bool {
    let keys = serde_json::from_str::<Keys>(text).expect("an object").0;
    let set: BTreeSet<&String> = keys.iter().collect();
    set.len() == keys.len()
}

fn value(raw: Option<&RawValue>) -> Value {
    raw.map_or(Value::Null, |r| {
        serde_json::from_str(r.get()).expect("relayed JSON")
    })
}

fn check_refusal(id: Option<&RawValue>, code: i64, message: &str) {
    let line = gate::error_response(id, code, message, Some(json!({"mandate_error": "x"})));
    // The id is echoed as written; a line from the stdio framing has no newline in it.
    assert!(
        id.is_some_and(|i| i.get().contains('\n')) || !line.contains('\n'),
        "a refusal spans lines: {line}"
    );
    assert!(
        serde_json::from_str::<&RawValue>(&line).is_ok(),
        "a refusal is not JSON: {line}"
    );
    // An id beyond f64 (1e400) is echoed as written; serde_json's values cannot hold it.
    let Ok(v) = serde_json::from_str::<Value>(&line) else {
        return;
    };
    assert_eq!(v["jsonrpc"], "2.0");
    assert_eq!(v["id"], value(id), "a refusal answers another id");
    assert_eq!(v["error"]["code"], code);
    assert_eq!(v["error"]["message"], message);
}

fn check_request(method: &str, id: &RawValue, params: Option<&RawValue>) {
    let p = value(params);
    match gate::classify_request(method, params) {
        Err(r) => {
            assert!(!r.message.is_empty());
            check_refusal(Some(id), r.rpc_code, &r.message);
        }
        Ok(c) => {
            match &c.need {
                Need::Nothing => assert!(LIFECYCLE.contains(&method), "{method} passed unscoped"),
                // A completion's `ref` may come as an object or, read by position, an array.
                Need::Resources => assert!(
                    RESOURCES.contains(&method) || method == "completion/complete",
                    "{method} classified as a resource request"
                ),
                Need::List => assert!(matches!(method, "tools/list" | "prompts/list")),
                // Parameters by position (an array) are read in the struct's order; the
                // server reads them the same way or refuses them. An object must name it once.
                Need::Tool(t) => {
                    assert_eq!(method, "tools/call");
                    if p.is_object() {
                        assert!(unique_members(params.expect("params").get()));
                        assert_eq!(
                            p["name"].as_str(),
                            Some(t.as_str()),
                            "another tool was checked"
                        );
                    }
                    assert!(c.arguments_sha256.as_ref().is_some_and(|h| h.len() == 64));
                }
                Need::Prompt(n) => match method {
                    "prompts/get" => {
                        if p.is_object() {
                            assert!(unique_members(params.expect("params").get()));
                            assert_eq!(
                                p["name"].as_str(),
                                Some(n.as_str()),
                                "another prompt was checked"
                            );
                        }
                    }
                    "completion/complete" => {
                        if p["ref"].is_object() {
                            assert_eq!(p["ref"]["type"], "ref/prompt");
                            assert_eq!(p["ref"]["name"].as_str(), Some(n.as_str()));
                        }
                    }
                    other => panic!("{other} classified as a prompt request"),
                },
            }
            assert_eq!(
                c.list,
                match method {
                    "tools/list" => Some(ListKind::Tools),
                    "prompts/list" => Some(ListKind::Prompts),
                    _ => None,
                }
            );
        }
    }
}

fn check_list(result: &RawValue) {
    let original: Value = serde_json::from_str(result.get()).expect("JSON");
    let granted: BTreeSet<String> = ["read_file", "prompts/b"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for (kind, key, prefix) in [
        (ListKind::Tools, "tools", ""),
        (ListKind::Prompts, "prompts", "prompts/"),
    ] {
        let Some(out) = gate::filter_list(result, kind, &granted) else {
            continue;
        };
        assert!(
            original[key].is_array(),
            "a result without a {key} list was relayed"
        );
        let out_v: Value = serde_json::from_str(out.get()).expect("a filtered list is JSON");
        assert!(
            unique_members(out.get()),
            "the filtered list repeats a member"
        );
        let (Value::Object(o), Value::Object(f)) = (&original, &out_v) else {
            panic!("a filtered list is not an object: {out_v}")
        };
        assert_eq!(o.len(), f.len(), "members added or lost");
        for (k, v) in o {
            if k != key {
                assert_eq!(f.get(k), Some(v), "member {k} changed");
            }
        }
        let kept = f[key].as_array().expect("the list stays a list");
        assert!(kept.len() <= o[key].as_array().map_or(0, Vec::len));
        for e in kept {
            // An entry that is not an object is no tool or prompt a client could use (serde
            // reads an array's first element as the name); only objects name what they offer.
            if e.is_object() {
                let name = e["name"].as_str().expect("a kept entry has a name");
                assert!(
                    granted.contains(&format!("{prefix}{name}")),
                    "{name} kept but not granted"
                );
            }
            assert!(
                o[key].as_array().unwrap().contains(e),
                "an entry was changed"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    // What a server sends is masked before anything else reads it.
    let secrets: Vec<Sensitive<String>> = SECRETS
        .iter()
        .map(|s| Sensitive::new(s.to_string()))
        .collect();
    let needles = Needles::new(&secrets);
    let mut masked = line.to_string();
    let hit = needles.mask(&mut masked);
    assert_eq!(masked.len(), line.len(), "masking changed the length");
    assert_eq!(hit, masked != line);
    assert!(
        !masked.contains(SECRETS[0]) && !masked.contains(r#"pa\"ss\\word-xyz"#),
        "a secret survived masking"
    );
    if serde_json::from_str::<Value>(line).is_ok() {
        assert!(
            serde_json::from_str::<Value>(&masked).is_ok(),
            "masking broke the JSON: {masked}"
        );
    }

    for text in [line, masked.as_str()] {
        let msg = match message::parse(text) {
            Err(message::Invalid::Request { reason, id }) => {
                check_refusal(id.as_deref(), gate::codes::INVALID_REQUEST, &reason);
                continue;
            }
            Err(_) => continue,
            Ok(m) => m,
        };
        // A number beyond f64 (1e400) is valid JSON that serde_json's values cannot hold.
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            continue;
        };
        // The members the gate reads, each given once; a member it does not read may repeat
        // (it is relayed as written, and nothing is decided on it).
        assert!(
            envelope_members_unique(text),
            "a message with a repeated envelope member was read"
        );
        assert_eq!(v["jsonrpc"], "2.0");
        let obj = v.as_object().expect("an object");
        match msg {
            Message::Request { id, method, params } => {
                assert_eq!(
                    obj.get("method").and_then(Value::as_str),
                    Some(method.as_str())
                );
                assert!(v["id"].is_string() || v["id"].is_number(), "id {}", v["id"]);
                // `"result": null` reads as no result (serde's Option), so it may ride along.
                assert!(
                    !obj.get("result").is_some_and(|r| !r.is_null())
                        && !obj.get("error").is_some_and(|r| !r.is_null())
                );
                assert_eq!(
                    value(params.as_deref()),
                    obj.get("params").cloned().unwrap_or(Value::Null)
                );
                check_request(&method, &id, params.as_deref());
            }
            Message::Notification { method, .. } => {
                assert!(!obj.contains_key("id"));
                assert_eq!(
                    obj.get("method").and_then(Value::as_str),
                    Some(method.as_str())
                );
                let _ = gate::notification_passes(&method);
            }
            Message::Response { id, result, error } => {
                assert!(obj.get("method").is_none_or(Value::is_null));
                assert_eq!(value(Some(&id)), v["id"]);
                assert!(result.is_some() != error.is_some());
                let (outcome, _, _) = gate::outcome_of(result.as_deref(), error.as_deref());
                assert_eq!(outcome == "rpc_error", error.is_some());
                if let Some(r) = result.as_deref() {
                    check_list(r);
                    let line = gate::result_response(&id, r);
                    assert!(serde_json::from_str::<Value>(&line).is_ok());
                }
            }
        }
    }
});
