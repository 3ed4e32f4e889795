//! The gate's pure rules: what a message needs, how a list is filtered, what a refusal looks
//! like on the wire. No I/O, no state: the decision itself (scopes, status, budget, audit) is
//! `mandate_core::mcp::McpSession`'s, and the bridge wires the two together.
//!
//! Requests are allowed by method, not refused by exception: lifecycle and utility methods
//! need only an active agent; `tools/call` needs the tool's scope, `prompts/get` (and a
//! completion for a prompt) the prompt's, anything about resources `SERVER:resources/read`;
//! `tools/list` and `prompts/list` pass and their results are filtered to what the agent holds.
//! Any other method is refused with JSON-RPC -32601 and never reaches the server.
//! The parameters the gate reads are parsed with rmcp's protocol types.
//!
//! What it is not: framing, or a validator of the whole protocol. Members the gate does not
//! read pass unchanged.

use std::collections::BTreeSet;

use mandate_core::mcp::Need;
use rmcp::model::{CallToolRequestParams, GetPromptRequestParams};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use sha2::Digest as _;

/// JSON-RPC error codes the gateway answers with.
pub mod codes {
    /// Not JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// Not a JSON-RPC request the gateway relays (batches, oversized, malformed).
    pub const INVALID_REQUEST: i64 = -32600;
    /// A method the gateway does not relay.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Parameters the gate must read are missing or malformed.
    pub const INVALID_PARAMS: i64 = -32602;
    /// The gateway itself failed (timeout, server gone, audit unavailable).
    pub const INTERNAL_ERROR: i64 = -32603;
    /// Mandate refused the call (scope, status, trust floor, rate limit, budget).
    pub const REFUSED: i64 = -32001;
}

/// Which list a response answers, so it can be filtered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    Tools,
    Prompts,
}

/// What a request asks for, as the gate read it.
#[derive(Debug, Clone, PartialEq)]
pub struct Classified {
    pub need: Need,
    pub list: Option<ListKind>,
    /// The tool call's arguments (for auditing when the server opts in).
    pub arguments: Option<Value>,
    /// SHA-256 (hex) of the RFC 8785 canonical arguments (`{}` when there are none).
    pub arguments_sha256: Option<String>,
}

impl Classified {
    fn needs(need: Need) -> Self {
        Classified {
            need,
            list: None,
            arguments: None,
            arguments_sha256: None,
        }
    }
}

/// A request the gate refuses before any decision: a JSON-RPC code, Mandate's code, and a
/// sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub rpc_code: i64,
    pub code: &'static str,
    pub message: String,
}

fn refusal(rpc_code: i64, code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        rpc_code,
        code,
        message: message.into(),
    }
}

/// Methods that need only an active agent.
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

/// Methods about resources: all need `SERVER:resources/read`.
const RESOURCES: &[&str] = &[
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "subscriptions/listen",
];

/// Notifications a client may send.
const CLIENT_NOTIFICATIONS: &[&str] = &[
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
    "notifications/tasks/status",
];

/// SHA-256 of the RFC 8785 canonical form of `v`.
pub fn canonical_sha256(v: &Value) -> String {
    let bytes = serde_json_canonicalizer::to_vec(v).unwrap_or_default();
    sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Read the parameters the gate decides on. Any member named twice, at any depth, is refused,
/// not only the ones the gate reads: readers disagree on such objects (serde's derive refuses
/// a repeat it reads, `serde_json::Value` keeps the last, many servers keep the first), and
/// the server may read a member the gate ignores. Repeats are found by the reader bundle
/// lines and JOSE headers go through (`mandate_audit_format::json`), names compared after
/// unescaping.
fn params_of<'a, T: Deserialize<'a>>(
    method: &str,
    params: Option<&'a RawValue>,
) -> Result<T, Refusal> {
    let raw = params.map_or("null", RawValue::get);
    let why = match mandate_audit_format::json::parse(raw.as_bytes()) {
        Ok((_, found)) if found.duplicate.is_some() => "a member is given twice",
        _ => match serde_json::from_str(raw) {
            Ok(p) => return Ok(p),
            Err(e) if e.to_string().contains("duplicate field") => "a member is given twice",
            Err(_) => "a required member is missing or has the wrong type",
        },
    };
    Err(refusal(
        codes::INVALID_PARAMS,
        "invalid_params",
        format!("the parameters of {method} are not what MCP specifies: {why}"),
    ))
}

#[derive(Deserialize)]
struct CompleteParams {
    #[serde(rename = "ref")]
    reference: CompleteRef,
}

#[derive(Deserialize)]
struct CompleteRef {
    #[serde(rename = "type")]
    kind: String,
    name: Option<String>,
}

/// What a client's request needs. `Err` for methods the gateway does not relay and for
/// parameters it must read but cannot.
pub fn classify_request(method: &str, params: Option<&RawValue>) -> Result<Classified, Refusal> {
    if LIFECYCLE.contains(&method) {
        return Ok(Classified::needs(Need::Nothing));
    }
    if RESOURCES.contains(&method) {
        return Ok(Classified::needs(Need::Resources));
    }
    match method {
        "tools/list" => Ok(Classified {
            list: Some(ListKind::Tools),
            ..Classified::needs(Need::List)
        }),
        "prompts/list" => Ok(Classified {
            list: Some(ListKind::Prompts),
            ..Classified::needs(Need::List)
        }),
        "tools/call" => {
            let p: CallToolRequestParams = params_of(method, params)?;
            let args = Value::Object(p.arguments.unwrap_or_default());
            Ok(Classified {
                arguments_sha256: Some(canonical_sha256(&args)),
                arguments: Some(args),
                ..Classified::needs(Need::Tool(p.name.into_owned()))
            })
        }
        "prompts/get" => {
            let p: GetPromptRequestParams = params_of(method, params)?;
            let args = serde_json::to_value(&p.arguments).unwrap_or(Value::Null);
            Ok(Classified {
                arguments_sha256: Some(canonical_sha256(&args)),
                arguments: Some(args),
                ..Classified::needs(Need::Prompt(p.name))
            })
        }
        "completion/complete" => {
            let p: CompleteParams = params_of(method, params)?;
            match (p.reference.kind.as_str(), p.reference.name) {
                ("ref/prompt", Some(name)) => Ok(Classified::needs(Need::Prompt(name))),
                ("ref/resource", _) => Ok(Classified::needs(Need::Resources)),
                _ => Err(refusal(
                    codes::INVALID_PARAMS,
                    "invalid_params",
                    "a completion must refer to a prompt (with its name) or a resource",
                )),
            }
        }
        other => Err(refusal(
            codes::METHOD_NOT_FOUND,
            "method_not_relayed",
            format!(
                "Mandate's MCP gateway does not pass the method '{}' to the server",
                other.escape_default()
            ),
        )),
    }
}

/// Whether a client notification is passed on.
pub fn notification_passes(method: &str) -> bool {
    CLIENT_NOTIFICATIONS.contains(&method)
}

#[derive(Deserialize)]
struct Named<'a> {
    #[serde(borrow)]
    name: Option<std::borrow::Cow<'a, str>>,
}

/// Keep only the entries of a `tools/list` or `prompts/list` result whose action the agent
/// holds (tool names exactly; prompts as `prompts/NAME`). Every other member of the result
/// (`nextCursor`, `_meta`...) and every kept entry pass exactly as the server wrote them.
/// `None` when the result is not an object with that list (it is then refused, not relayed).
pub fn filter_list(
    result: &RawValue,
    kind: ListKind,
    granted: &BTreeSet<String>,
) -> Option<Box<RawValue>> {
    let (key, prefix) = match kind {
        ListKind::Tools => ("tools", ""),
        ListKind::Prompts => ("prompts", mandate_core::mcp::PROMPT_PREFIX),
    };
    let members: Vec<(String, Box<RawValue>)> = {
        let map: serde_json::Map<String, Value> = serde_json::from_str(result.get()).ok()?;
        // Re-read as raw text per member to keep each exactly as written.
        let raw: std::collections::BTreeMap<String, Box<RawValue>> =
            serde_json::from_str(result.get()).ok()?;
        if !map.get(key).is_some_and(Value::is_array) {
            return None;
        }
        raw.into_iter().collect()
    };
    let mut out = String::from("{");
    for (i, (k, v)) in members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(k).ok()?);
        out.push(':');
        if k == key {
            let entries: Vec<&RawValue> = serde_json::from_str(v.get()).ok()?;
            let kept: Vec<&str> = entries
                .into_iter()
                .filter(|e| {
                    serde_json::from_str::<Named<'_>>(e.get())
                        .ok()
                        .and_then(|n| n.name)
                        .is_some_and(|n| granted.contains(&format!("{prefix}{n}")))
                })
                .map(RawValue::get)
                .collect();
            out.push('[');
            out.push_str(&kept.join(","));
            out.push(']');
        } else {
            out.push_str(v.get());
        }
    }
    out.push('}');
    RawValue::from_string(out).ok()
}

/// How a `tools/call` (or other) response ended, for the audit trail: (`result`, `isError`,
/// error code).
pub fn outcome_of(
    result: Option<&RawValue>,
    error: Option<&RawValue>,
) -> (&'static str, Option<bool>, Option<i64>) {
    #[derive(Deserialize)]
    struct Flag {
        #[serde(rename = "isError")]
        is_error: Option<bool>,
    }
    #[derive(Deserialize)]
    struct Code {
        code: Option<i64>,
    }
    if let Some(e) = error {
        let code = serde_json::from_str::<Code>(e.get())
            .ok()
            .and_then(|c| c.code);
        return ("rpc_error", None, code);
    }
    let flag = result
        .and_then(|r| serde_json::from_str::<Flag>(r.get()).ok())
        .and_then(|f| f.is_error);
    match flag {
        Some(true) => ("tool_error", Some(true), None),
        f => ("ok", Some(f.unwrap_or(false)), None),
    }
}

/// A JSON-RPC error response (one line, no newline). `id` is `null` when the request's id
/// could not be read.
pub fn error_response(
    id: Option<&RawValue>,
    code: i64,
    message: &str,
    data: Option<Value>,
) -> String {
    let mut err = json!({"code": code, "message": message});
    if let Some(d) = data {
        err["data"] = d;
    }
    format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":{},\"error\":{}}}",
        id.map_or("null", RawValue::get),
        err
    )
}

/// A JSON-RPC result response with `result` as written.
pub fn result_response(id: &RawValue, result: &RawValue) -> String {
    format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":{},\"result\":{}}}",
        id.get(),
        result.get()
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_string()).unwrap()
    }

    #[test]
    fn requests_need_what_they_touch() {
        let c = classify_request(
            "tools/call",
            Some(&raw(r#"{"name":"write_file","arguments":{"b":1,"a":"x"}}"#)),
        )
        .unwrap();
        assert_eq!(c.need, Need::Tool("write_file".into()));
        // The hash is over the canonical form: key order does not matter.
        let c2 = classify_request(
            "tools/call",
            Some(&raw(r#"{"arguments":{"a":"x","b":1},"name":"write_file"}"#)),
        )
        .unwrap();
        assert_eq!(c.arguments_sha256, c2.arguments_sha256);
        assert_eq!(
            classify_request("prompts/get", Some(&raw(r#"{"name":"simple-prompt"}"#)))
                .unwrap()
                .need,
            Need::Prompt("simple-prompt".into())
        );
        assert_eq!(
            classify_request("resources/read", Some(&raw(r#"{"uri":"file:///x"}"#)))
                .unwrap()
                .need,
            Need::Resources
        );
        assert_eq!(
            classify_request("tools/list", None).unwrap().list,
            Some(ListKind::Tools)
        );
        assert_eq!(
            classify_request("initialize", None).unwrap().need,
            Need::Nothing
        );
    }

    #[test]
    fn unknown_methods_and_smuggled_names_are_refused() {
        let r = classify_request("admin/shutdown", None).unwrap_err();
        assert_eq!(r.rpc_code, codes::METHOD_NOT_FOUND);
        let r = classify_request(
            "tools/call",
            Some(&raw(r#"{"name":"read_file","name":"write_file"}"#)),
        )
        .unwrap_err();
        assert_eq!(r.rpc_code, codes::INVALID_PARAMS);
        assert!(r.message.contains("twice"));
        assert!(classify_request("tools/call", None).is_err());
        assert!(classify_request("tools/call", Some(&raw(r#"{"name":5}"#))).is_err());
        assert!(!notification_passes("notifications/whatever"));
        assert!(notification_passes("notifications/cancelled"));
    }

    /// A member the gate does not read, given twice, could be read differently by the server
    /// (the fuzzer's finding of 2026-12-05): any repeat, at any depth, is refused.
    #[test]
    fn a_member_the_gate_does_not_read_is_not_given_twice_either() {
        for params in [
            r#"{"name":"read_file","task":1,"task":2}"#,
            r#"{"name":"read_file","_meta":{"progressToken":1,"progressToken":2}}"#,
            r#"{"name":"read_file","arguments":{"path":"a","path":"/etc/shadow"}}"#,
            r#"{"name":"read_file","arguments":{"list":[{"x":1,"\u0078":2}]}}"#,
        ] {
            let r = classify_request("tools/call", Some(&raw(params))).unwrap_err();
            assert_eq!(r.rpc_code, codes::INVALID_PARAMS, "{params}");
            assert!(r.message.contains("given twice"), "{params}: {}", r.message);
        }
        let r = classify_request(
            "prompts/get",
            Some(&raw(r#"{"name":"p","arguments":{"a":"1","a":"2"}}"#)),
        )
        .unwrap_err();
        assert!(r.message.contains("given twice"));
        // The same names in different objects are not repeats.
        let ok = classify_request(
            "tools/call",
            Some(&raw(r#"{"name":"read_file","arguments":{"name":"x","a":{"name":1},"b":[{"a":1},{"a":2}]}}"#)),
        )
        .unwrap();
        assert_eq!(ok.need, Need::Tool("read_file".into()));
    }

    #[test]
    fn lists_keep_only_granted_entries_exactly_as_written() {
        let result = raw(
            r#"{"tools":[{"name":"read_file","x":1.50},{"name":"write_file"},{"name":"Read_File"}],"nextCursor":"c2","_meta":{"k":[1,2]}}"#,
        );
        let granted: BTreeSet<String> = ["read_file".to_string()].into();
        let out = filter_list(&result, ListKind::Tools, &granted).unwrap();
        let v: Value = serde_json::from_str(out.get()).unwrap();
        assert_eq!(v["tools"].as_array().unwrap().len(), 1);
        assert!(out.get().contains(r#"{"name":"read_file","x":1.50}"#));
        assert_eq!(v["nextCursor"], "c2");
        assert_eq!(v["_meta"]["k"], json!([1, 2]));
        let prompts = raw(r#"{"prompts":[{"name":"a"},{"name":"b"}]}"#);
        let granted: BTreeSet<String> = ["prompts/b".to_string()].into();
        let out = filter_list(&prompts, ListKind::Prompts, &granted).unwrap();
        assert_eq!(out.get(), r#"{"prompts":[{"name":"b"}]}"#);
        assert!(filter_list(&raw(r#"{"nope":1}"#), ListKind::Tools, &granted).is_none());
    }

    #[test]
    fn outcomes_read_is_error_and_error_codes() {
        assert_eq!(
            outcome_of(Some(&raw(r#"{"content":[],"isError":true}"#)), None),
            ("tool_error", Some(true), None)
        );
        assert_eq!(
            outcome_of(Some(&raw(r#"{"content":[]}"#)), None),
            ("ok", Some(false), None)
        );
        assert_eq!(
            outcome_of(None, Some(&raw(r#"{"code":-32602,"message":"x"}"#))),
            ("rpc_error", None, Some(-32602))
        );
        assert_eq!(
            error_response(None, -32700, "bad", None),
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"bad"}}"#
        );
    }
}
