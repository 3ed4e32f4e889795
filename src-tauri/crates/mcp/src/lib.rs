//! Mandate's MCP gateway: every message an agent sends an MCP server passes a gate that knows
//! the agent's scopes (`SERVER:tool`), and every call is audited.
//!
//! - [`message`]: the envelope of one JSON-RPC message (what the gate reads, the rest relayed
//!   as written).
//! - [`gate`]: pure rules: what a request needs, filtering lists, errors on the wire.
//! - [`mask`]: the server's own secrets overwritten in what it sends back.
//! - [`bridge`]: the relay between a client and a server, with the gate and the audit.
//! - [`stdio`]: `mandate mcp run`: start the real server with its secrets from the keychain
//!   and relay the client's stdin/stdout to it.
//! - [`http`]: sessions of the Streamable HTTP endpoint `/mcp/{server}` (the same relay).
//! - [`remote`]: a remote (Streamable HTTP) server as the relay's server end, credential added.
//! - [`offer`]: reading a server's tools, prompts and resources with rmcp's client.
//!
//! The decisions and records are `mandate_core::mcp`'s: this crate owns the protocol and the
//! processes. MCP revision: written against 2026-07-28 (rmcp 3.11's newest); older revisions
//! (2024-11-05 to 2025-11-25, with `initialize`) relay unchanged, since the gate reads only
//! method names and the parameters of `tools/call`, `prompts/get` and `completion/complete`,
//! which every revision shares.
//!
//! What it is not: an MCP server or client of its own. It never answers for the server except
//! to refuse.

pub mod bridge;
pub mod gate;
pub mod http;
pub mod mask;
pub mod message;
pub mod offer;
pub mod remote;
pub mod stdio;
