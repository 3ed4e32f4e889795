//! One JSON-RPC message as the gateway sees it: the few members it reads, and the text it
//! relays.
//!
//! A gateway must pass on messages it does not fully model (new protocol fields, `_meta`,
//! extensions), so a message is kept as the exact text the peer sent ([`RawValue`]) and only
//! its envelope is parsed: `jsonrpc`, `id`, `method`, `params`, and whether it carries
//! `result` or `error`. Parsing is strict where a lenient parser would let two readers
//! disagree: a member given twice (`"method"` twice, `"name"` twice) makes the message
//! invalid, as do lone surrogates (serde_json refuses them), so the server can never act on a
//! different reading of a message than the one the gate checked.
//!
//! What it is not: framing (rmcp's codec splits lines) or policy (`gate`).

use serde::Deserialize;
use serde_json::value::RawValue;

/// A message, classified.
#[derive(Debug)]
pub enum Message {
    /// A request: it has a method and an id, and expects an answer.
    Request {
        id: Box<RawValue>,
        method: String,
        params: Option<Box<RawValue>>,
    },
    /// A notification: a method without an id.
    Notification {
        method: String,
        params: Option<Box<RawValue>>,
    },
    /// A response (a `result` or an `error`) to the peer's request `id`.
    Response {
        id: Box<RawValue>,
        result: Option<Box<RawValue>>,
        error: Option<Box<RawValue>>,
    },
}

/// Why a line is not a message the gateway relays. The text is safe to show and audit (it
/// never quotes the message).
#[derive(Debug)]
pub enum Invalid {
    /// Not JSON (JSON-RPC -32700).
    Parse(String),
    /// A JSON-RPC batch (an array): MCP removed batching in 2025-06-18.
    Batch,
    /// JSON, but not a JSON-RPC 2.0 message (-32600); `id` when one could be read.
    Request {
        reason: String,
        id: Option<Box<RawValue>>,
    },
}

#[derive(Deserialize)]
struct Envelope {
    jsonrpc: Option<String>,
    /// `Some` whenever the member is present, `null` included (a plain `Option` would read
    /// `"id": null` as absent and turn a request into a notification).
    #[serde(default, deserialize_with = "present")]
    id: Option<Box<RawValue>>,
    method: Option<String>,
    params: Option<Box<RawValue>>,
    result: Option<Box<RawValue>>,
    error: Option<Box<RawValue>>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

/// Longest method name relayed (MCP's are under 40 bytes).
const MAX_METHOD: usize = 128;

/// A JSON-RPC id must be a string or a number (MCP forbids null).
fn valid_id(id: &RawValue) -> bool {
    let t = id.get().trim_start();
    t.starts_with('"') || t.starts_with('-') || t.starts_with(|c: char| c.is_ascii_digit())
}

/// Read one message from the text of one line.
pub fn parse(text: &str) -> Result<Message, Invalid> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        return if serde_json::from_str::<&RawValue>(text).is_ok() {
            Err(Invalid::Batch)
        } else {
            Err(Invalid::Parse("the message is not valid JSON".into()))
        };
    }
    if !trimmed.starts_with('{') {
        return match serde_json::from_str::<&RawValue>(text) {
            Ok(_) => Err(Invalid::Request {
                reason: "a JSON-RPC message must be a JSON object".into(),
                id: None,
            }),
            Err(_) => Err(Invalid::Parse("the message is not valid JSON".into())),
        };
    }
    let env: Envelope = serde_json::from_str(text).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            Invalid::Parse("the message is not valid JSON".into())
        } else {
            let what = e.to_string();
            let reason = if what.contains("duplicate field") {
                "a member of the message is given twice".to_string()
            } else {
                "the message's members have the wrong types".to_string()
            };
            Invalid::Request { reason, id: None }
        }
    })?;
    let bad = |reason: &str, id: Option<Box<RawValue>>| {
        Err(Invalid::Request {
            reason: reason.into(),
            id,
        })
    };
    if env.jsonrpc.as_deref() != Some("2.0") {
        return bad("the message must say \"jsonrpc\": \"2.0\"", env.id);
    }
    if let Some(id) = &env.id
        && !valid_id(id)
    {
        return bad("a JSON-RPC id must be a string or a number", None);
    }
    match (env.method, env.id, env.result, env.error) {
        (Some(method), id, None, None) => {
            if method.is_empty()
                || method.len() > MAX_METHOD
                || method.chars().any(|c| c.is_control())
            {
                return bad("the method name is empty, too long or unprintable", id);
            }
            Ok(match id {
                Some(id) => Message::Request {
                    id,
                    method,
                    params: env.params,
                },
                None => Message::Notification {
                    method,
                    params: env.params,
                },
            })
        }
        (None, Some(id), result, error) if result.is_some() != error.is_some() => {
            Ok(Message::Response { id, result, error })
        }
        (_, id, _, _) => bad(
            "the message is neither a request, a notification nor a response",
            id,
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn requests_notifications_and_responses() {
        match parse(r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x"}}"#)
            .unwrap()
        {
            Message::Request { id, method, params } => {
                assert_eq!(id.get(), "7");
                assert_eq!(method, "tools/call");
                assert_eq!(params.unwrap().get(), r#"{"name":"x"}"#);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap(),
            Message::Notification { .. }
        ));
        assert!(matches!(
            parse(r#"{"jsonrpc":"2.0","id":"a","result":{}}"#).unwrap(),
            Message::Response { .. }
        ));
    }

    #[test]
    fn malformed_batches_and_smuggled_members_are_refused() {
        assert!(matches!(parse("{not json"), Err(Invalid::Parse(_))));
        assert!(matches!(parse(""), Err(Invalid::Parse(_))));
        assert!(matches!(
            parse(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#),
            Err(Invalid::Batch)
        ));
        for bad in [
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/call"}"#,
            r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
            r#"{"id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{},"error":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":""}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":5}"#,
            r#""just a string""#,
        ] {
            assert!(
                matches!(parse(bad), Err(Invalid::Request { .. })),
                "{bad}: {:?}",
                parse(bad)
            );
        }
        // A lone surrogate is not valid JSON text for serde_json: refused, never reinterpreted.
        assert!(parse(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call\ud800"}"#).is_err());
    }
}
