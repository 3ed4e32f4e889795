//! The secret broker: agents call downstream APIs through Mandate and never hold the real
//! credential (issue 7).
//!
//! An agent sends its short-lived Mandate token to `/proxy/{connection}/{path}` on the local
//! endpoint; the broker checks the token with the endpoint's own code, maps the method and
//! path to one of the connection's actions, checks the scope, the limits and the budget,
//! reads the credential from the OS keychain, and lets the server adapter forward the call
//! with the credential added where the connection says. The credential exists only in
//! [`crate::secret::Sensitive`] values on the way out; it is never written to the database,
//! the audit trail, a log, an error or a response (the adapter masks any echo of it).
//!
//! - `path`: path confinement and action matching.
//! - `auth`: where the credential goes (`bearer`, `basic`, `header:NAME`, `query:NAME`).
//! - `limits`: rate limits and daily budgets with essential actions.
//! - `config`: the settings per connection, editing them, budget use per agent.
//! - `presets`: GitHub, Slack, Stripe, OpenAI, Anthropic and a generic HTTP API.
//! - `gate`: the decision for one call and its audit events.
//! - `handover`: database URLs, which cannot be brokered, handed to `mandate exec`'s program
//!   under a `NAME:connect` scope, each hand-over audited.
//!
//! What it is not: an HTTP client or server. `mandate-server`'s `proxy.rs` does the HTTP;
//! `mandate exec` (CLI) starts programs pointed at it.

pub mod auth;
pub(crate) mod config;
pub(crate) mod gate;
mod handover;
pub mod limits;
pub mod path;
pub mod presets;

pub use auth::{CredentialPlacement, Injection};
pub use config::{ActionPolicy, BrokerConfig, BrokerSetup, BudgetUsage, ConnectionEdit, day_of};
pub use gate::{Broker, CallOutcome, CallRecord, Denial, Permit, ProxyRequest};
pub use handover::{HandOverRefused, HandedOver};
pub use limits::BudgetState;

/// The route prefix the endpoint serves the broker under.
pub const PROXY_PREFIX: &str = "/proxy";

/// The environment variable `mandate exec` sets for a connection: `MANDATE_<NAME>_URL`, the
/// name upper-cased with `-` as `_`.
pub fn url_var(connection: &str) -> String {
    let name: String = connection
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("MANDATE_{name}_URL")
}
